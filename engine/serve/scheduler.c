/* scheduler.c — continuous batching: the FIFO of waiting requests, the running set,
 * and the list of finished ones not yet taken. Plans each step (decodes first, then the
 * chunks of running prefills, then new prefills in strict arrival order) and books reservations through the
 * layer-memory door; never touches the model or the requests' kept counts (the engine's). */
#include "engine/serve/scheduler.h"

#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"

/* A growable ring buffer of requests: O(1) push at the back and pop at the front. */
typedef struct request_fifo {
  up_request **items;
  int32_t capacity;
  int32_t head;
  int32_t count;
} request_fifo;

static void request_fifo_push(request_fifo *fifo, up_request *req) {
  if (fifo->count == fifo->capacity) {
    const int32_t capacity = fifo->capacity ? 2 * fifo->capacity : 16;
    up_request **items = up_malloc_or_die(sizeof *items * (size_t)capacity, "scheduler request queue");
    for (int32_t i = 0; i < fifo->count; ++i) items[i] = fifo->items[(fifo->head + i) % fifo->capacity];
    free(fifo->items);
    fifo->items = items;
    fifo->capacity = capacity;
    fifo->head = 0;
  }
  fifo->items[(fifo->head + fifo->count) % fifo->capacity] = req;
  ++fifo->count;
}

static up_request *request_fifo_front(const request_fifo *fifo) {
  return fifo->count ? fifo->items[fifo->head] : NULL;
}

static up_request *request_fifo_pop(request_fifo *fifo) {
  UP_ASSERT(fifo->count > 0, "pop from an empty request queue");
  up_request *req = fifo->items[fifo->head];
  fifo->head = (fifo->head + 1) % fifo->capacity;
  --fifo->count;
  return req;
}

struct up_scheduler {
  up_scheduler_limits limits;
  up_layer_memory *memory;
  int32_t n_layers;

  request_fifo waiting;
  request_fifo finished;
  up_request **running;  /* [max_seqs], in admission order so decode order is stable */
  int32_t n_running;

  up_step_entry *entries;  /* [max_seqs], the plan's storage */
};

up_scheduler *up_scheduler_create(const up_scheduler_limits *limits, up_layer_memory *memory) {
  UP_ASSERT(limits->max_seqs >= 1, "max_seqs must be at least 1 (got %d)", limits->max_seqs);
  UP_ASSERT(limits->max_batch_tokens >= 0, "max_batch_tokens must be 0 (unlimited) or positive (got %lld)",
            (long long)limits->max_batch_tokens);
  /* Every running request gets one decode token per step regardless of the budget, so a
   * budget below max_seqs could not be kept. */
  UP_ASSERT(limits->max_batch_tokens == 0 || limits->max_batch_tokens >= limits->max_seqs,
            "max_batch_tokens %lld is below max_seqs %d: the decode tokens alone would exceed it",
            (long long)limits->max_batch_tokens, limits->max_seqs);
  UP_ASSERT(limits->max_context >= 1, "max_context must be positive (got %d)", limits->max_context);
  UP_ASSERT(limits->prefill_chunk >= 0, "prefill_chunk must be 0 (whole prompt) or positive (got %d)",
            limits->prefill_chunk);
  up_scheduler *sched = up_calloc_or_die(1, sizeof *sched, "scheduler");
  sched->limits = *limits;
  sched->memory = memory;
  sched->n_layers = up_layer_memory_layout(memory)->n_layers;
  sched->running = up_calloc_or_die((size_t)limits->max_seqs, sizeof *sched->running, "scheduler running set");
  sched->entries = up_calloc_or_die((size_t)limits->max_seqs, sizeof *sched->entries, "scheduler step plan");
  return sched;
}

void up_scheduler_destroy(up_scheduler *sched) {
  if (!sched) return;
  free(sched->waiting.items);
  free(sched->finished.items);
  free(sched->running);
  free(sched->entries);
  free(sched);
}

/* KV entries a request must have room for over its life: the prompt and every decode
 * token it appends (the last output token is never fed back, so it needs none). */
static int64_t lifetime_entries(const up_request *req) {
  return (int64_t)req->prompt_len + req->output_len - 1;
}

/* Fails the request with a message when no state of the engine could ever run it. */
static bool reject_if_never_runnable(const up_scheduler *sched, up_request *req, double now_s) {
  const up_scheduler_limits *lim = &sched->limits;
  if (req->prompt_len < 1 || req->output_len < 1) {
    up_request_fail(req, now_s, "request needs at least 1 prompt token and 1 output token (got %d and %d)",
                    req->prompt_len, req->output_len);
    return true;
  }
  const int64_t total = (int64_t)req->prompt_len + req->output_len;
  if (total > lim->max_context) {
    up_request_fail(req, now_s, "prompt of %d tokens + %d output tokens exceeds the model context of %d",
                    req->prompt_len, req->output_len, lim->max_context);
    return true;
  }
  if (lim->prefill_chunk == 0 && lim->max_batch_tokens > 0 && req->prompt_len > lim->max_batch_tokens) {
    up_request_fail(req, now_s, "prompt of %d tokens exceeds the step token budget of %lld (prefill is whole-prompt)",
                    req->prompt_len, (long long)lim->max_batch_tokens);
    return true;
  }
  const up_memory_need need = up_memory_layout_need(up_layer_memory_layout(sched->memory), req->prompt_len,
                                                    req->output_len);
  char why[sizeof req->error];
  if (!up_layer_memory_could_hold(sched->memory, &need, why, sizeof why)) {
    up_request_fail(req, now_s, "%s", why);
    return true;
  }
  return false;
}

void up_scheduler_submit(up_scheduler *sched, up_request *req, double now_s) {
  req->slot = -1;
  if (reject_if_never_runnable(sched, req, now_s)) {
    request_fifo_push(&sched->finished, req);
    return;
  }
  req->status = UP_REQUEST_WAITING;
  request_fifo_push(&sched->waiting, req);
}

/* Prompt tokens of req this step may carry, step_tokens being planned already: the rest
 * of its prompt, or with chunking at most one chunk cut to the budget left; 0 when the
 * budget has no room for them. */
static int32_t prefill_tokens_now(const up_scheduler *sched, const up_request *req, int64_t step_tokens) {
  const up_scheduler_limits *lim = &sched->limits;
  int64_t tokens = (int64_t)req->prompt_len - req->prefilled;
  if (lim->prefill_chunk > 0 && tokens > lim->prefill_chunk) tokens = lim->prefill_chunk;
  if (lim->max_batch_tokens > 0) {
    const int64_t room = lim->max_batch_tokens - step_tokens;
    if (lim->prefill_chunk > 0 && tokens > room) tokens = room;
    if (tokens > room) return 0;
  }
  return tokens > 0 ? (int32_t)tokens : 0;
}

/* Admit the head of the queue if a slot, the step budget and its memory reservation
 * allow; *tokens gets the prompt tokens it carries this step. */
static bool try_admit(up_scheduler *sched, up_request *req, int64_t step_tokens, int32_t *tokens, double now_s) {
  const up_scheduler_limits *lim = &sched->limits;
  if (sched->n_running >= lim->max_seqs) return false;
  *tokens = prefill_tokens_now(sched, req, step_tokens);
  if (*tokens < 1) return false;
  const int32_t slot = up_layer_memory_acquire(sched->memory);
  if (slot < 0) return false;
  if (!up_layer_memory_reserve(sched->memory, slot, req->prompt_len, lifetime_entries(req))) {
    up_layer_memory_release(sched->memory, slot);
    return false;
  }
  req->status = UP_REQUEST_RUNNING;
  req->slot = slot;
  req->admitted_s = now_s;
  sched->running[sched->n_running++] = req;
  return true;
}

int32_t up_scheduler_plan_step(up_scheduler *sched, up_step_plan *plan, double now_s) {
  const int32_t max_seqs = sched->limits.max_seqs;
  plan->entries = sched->entries;
  plan->n_entries = 0;
  plan->prefill_tokens = 0;
  plan->decode_tokens = 0;

  for (int32_t i = 0; i < sched->n_running && plan->n_entries < max_seqs; ++i) {
    up_request *req = sched->running[i];
    if (req->n_generated < 1 || req->n_generated >= req->output_len) continue;
    plan->entries[plan->n_entries++] = (up_step_entry){.req = req, .is_prefill = false, .n_tokens = 1};
    plan->decode_tokens += 1;
  }

  /* Chunked prefills under way go on before anyone new is admitted, in admission order. */
  for (int32_t i = 0; i < sched->n_running && plan->n_entries < max_seqs; ++i) {
    up_request *req = sched->running[i];
    if (req->n_generated > 0 || req->prefilled >= req->prompt_len || req->prefilled == 0) continue;
    const int32_t tokens = prefill_tokens_now(sched, req, plan->prefill_tokens + plan->decode_tokens);
    if (tokens < 1) break;
    plan->entries[plan->n_entries++] =
        (up_step_entry){.req = req, .is_prefill = true, .n_tokens = tokens, .prompt_offset = req->prefilled};
    plan->prefill_tokens += tokens;
  }

  /* Strict FIFO: the first waiting request that does not fit stops admission, so a
   * large request is never overtaken by smaller ones behind it. */
  while (plan->n_entries < max_seqs) {
    up_request *req = request_fifo_front(&sched->waiting);
    int32_t tokens = 0;
    if (!req || !try_admit(sched, req, plan->prefill_tokens + plan->decode_tokens, &tokens, now_s)) break;
    request_fifo_pop(&sched->waiting);
    plan->entries[plan->n_entries++] = (up_step_entry){.req = req, .is_prefill = true, .n_tokens = tokens};
    plan->prefill_tokens += tokens;
  }
  return plan->n_entries;
}

static void remove_running(up_scheduler *sched, const up_request *req) {
  for (int32_t i = 0; i < sched->n_running; ++i) {
    if (sched->running[i] != req) continue;
    memmove(&sched->running[i], &sched->running[i + 1], sizeof *sched->running * (size_t)(sched->n_running - i - 1));
    --sched->n_running;
    return;
  }
  UP_FATAL("request %lld finished but is not in the running set", (long long)req->id);
}

/* A running request that finished or failed gives back its memory and waits to be taken. */
static void retire(up_scheduler *sched, up_request *req) {
  up_layer_memory_release(sched->memory, req->slot);
  req->slot = -1;
  remove_running(sched, req);
  request_fifo_push(&sched->finished, req);
}

void up_scheduler_complete_step(up_scheduler *sched, const up_step_plan *plan, const int32_t *next_tokens,
                                double now_s) {
  for (int32_t i = 0; i < plan->n_entries; ++i) {
    const up_step_entry *entry = &plan->entries[i];
    up_request *req = entry->req;
    UP_ASSERT(req->status == UP_REQUEST_RUNNING && req->n_generated < req->output_len,
              "request %lld completed a step while %s with %d of %d tokens", (long long)req->id,
              up_request_status_name(req->status), req->n_generated, req->output_len);
    const int32_t token = next_tokens[i];
    if (token < 0) {
      /* The forward pass found NaN or inf in this sequence's logits: its answer is
       * meaningless, so it fails alone and the batch's other requests go on. */
      up_request_fail(req, now_s, "non-finite activations: the logits of %s held NaN or inf (output token %d)",
                      entry->is_prefill ? "the prompt's last position" : "a decode step", req->n_generated + 1);
      retire(sched, req);
      continue;
    }
    if (entry->is_prefill) {
      req->prefilled += entry->n_tokens;
      req->prefill_steps += 1;
      /* A chunk before the prompt's last: its row's token is not an output. */
      if (req->prefilled < req->prompt_len) continue;
      req->first_token = token;
      req->first_token_s = now_s;
      /* Layers after a drop hold fewer entries than the prompt, and a sliding-window
       * layer only its window: give back what the reservation made for them beyond
       * their own length plus the decodes to come. What is left is the request's KV
       * footprint, recorded before a one-token request releases its slot below. */
      req->kv_entries = 0;
      req->kv_blocks = 0;
      for (int32_t layer = 0; layer < sched->n_layers; ++layer) {
        const int32_t entries = up_layer_memory_len(sched->memory, req->slot, layer);
        up_layer_memory_trim(sched->memory, req->slot, layer, (int64_t)entries + req->output_len - 1);
        req->kv_entries += up_layer_memory_counted_entries(sched->memory, req->slot, layer);
        req->kv_blocks += up_layer_memory_blocks_held(sched->memory, req->slot, layer);
      }
    }
    req->token_times_s[req->n_generated] = now_s;
    ++req->n_generated;
    req->last_token = token;
    if (req->n_generated == req->output_len) {
      req->status = UP_REQUEST_FINISHED;
      req->finish_s = now_s;
      retire(sched, req);
    }
  }
}

int32_t up_scheduler_take_finished(up_scheduler *sched, up_request **out, int32_t max) {
  int32_t taken = 0;
  while (taken < max && sched->finished.count > 0) out[taken++] = request_fifo_pop(&sched->finished);
  return taken;
}

int32_t up_scheduler_waiting(const up_scheduler *sched) { return sched->waiting.count; }
int32_t up_scheduler_running(const up_scheduler *sched) { return sched->n_running; }

int32_t up_scheduler_in_flight(const up_scheduler *sched) {
  return sched->waiting.count + sched->n_running + sched->finished.count;
}
