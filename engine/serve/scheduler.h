/* scheduler.h — continuous batching. Holds the waiting queue (FIFO) and the running
 * set, and plans each engine step: one decode token for every running request that
 * is past its prefill, then the next chunk of every running request still prefilling
 * (chunked prefill only), then prefills of waiting requests in arrival order while the
 * sequence cap, the token budget and the layer memory allow (prefill and decode share
 * the step: prefill-decode co-processing). A prefill is the whole prompt, or with
 * prefill_chunk > 0 at most that many prompt tokens per step (cut further to the
 * step's remaining token budget), as vLLM and Sarathi-Serve schedule them. Layer memory (KV blocks,
 * recurrent state) is reserved through the layer-memory door at admission for the
 * request's whole life at every layer and freed at finish; a request that can never
 * fit fails with a message and the run goes on. The scheduler never touches the
 * model: the engine executes the plan and reports back. */
#ifndef UP_SCHEDULER_H
#define UP_SCHEDULER_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/memory/layer_memory.h"
#include "engine/serve/request.h"

typedef struct up_scheduler_limits {
  int32_t max_seqs;          /* sequences in one step (and running at once) */
  int64_t max_batch_tokens;  /* tokens in one step; 0 = unlimited */
  int32_t max_context;       /* the model's context length */
  int32_t prefill_chunk;     /* prompt tokens of one request per step; 0 = the whole prompt */
} up_scheduler_limits;

typedef struct up_step_entry {
  up_request *req;
  bool is_prefill;  /* prefill: n_tokens prompt rows from prompt_offset; decode: one row (req->last_token) */
  int32_t n_tokens;
  int32_t prompt_offset; /* prefill: the first prompt position of these rows (0 unless chunked) */
} up_step_entry;

typedef struct up_step_plan {
  int32_t n_entries;        /* decode entries first, then prefill entries */
  up_step_entry *entries;   /* capacity max_seqs, owned by the scheduler */
  int64_t prefill_tokens;
  int64_t decode_tokens;
} up_step_plan;

typedef struct up_scheduler up_scheduler;

up_scheduler *up_scheduler_create(const up_scheduler_limits *limits, up_layer_memory *memory);
void up_scheduler_destroy(up_scheduler *sched);

/* Queue a request (status WAITING). A request that can never run (prompt plus output
 * longer than the context, longer than the token budget, or needing more than the
 * whole layer memory) is failed at once and reported by the next take_finished. */
void up_scheduler_submit(up_scheduler *sched, up_request *req, double now_s);

/* Plan the next step into *plan (valid until the next call). Admitted requests get a
 * memory slot and their reservation. Returns the number of entries (0: nothing to run). */
int32_t up_scheduler_plan_step(up_scheduler *sched, up_step_plan *plan, double now_s);

/* Record the step's outcome: next_tokens[i] is the token produced for plan entry i (a
 * prefill chunk before the prompt's last only advances the request's progress), or
 * -1 when its logits were not finite (that request fails with a message and frees its
 * slot; the others are unaffected). Updates timestamps, trims each prefilled request's reservation to what its layers
 * now hold plus its remaining decode tokens (recording that footprint in kv_entries,
 * where a sliding-window layer counts at most its window, and kv_blocks), finishes requests that produced
 * all their tokens and frees their slots. */
void up_scheduler_complete_step(up_scheduler *sched, const up_step_plan *plan, const int32_t *next_tokens,
                                double now_s);

/* Move finished and failed requests out (up to max); returns how many. */
int32_t up_scheduler_take_finished(up_scheduler *sched, up_request **out, int32_t max);

int32_t up_scheduler_waiting(const up_scheduler *sched);
int32_t up_scheduler_running(const up_scheduler *sched);
/* Requests submitted and not yet taken out through take_finished. */
int32_t up_scheduler_in_flight(const up_scheduler *sched);

#endif
