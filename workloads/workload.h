/* workload.h — the interface every workload source implements (closed loop here; the
 * timed open-loop and trace-replay sources in open_loop.h and trace_replay.h). A
 * source owns the clock of arrivals: the engine asks it which requests have arrived
 * and submits them. */
#ifndef UP_WORKLOAD_H
#define UP_WORKLOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/request.h"

typedef struct up_workload up_workload;

typedef struct up_workload_ops {
  const char *name;
  /* Requests that have arrived by now_s, given in_flight of this source's requests not
   * yet finished; writes up to max newly allocated requests (arrival_s set) to out. */
  int32_t (*poll)(up_workload *w, double now_s, int32_t in_flight, up_request **out, int32_t max);
  /* When the next request arrives if nothing finishes first; INFINITY when arrivals wait on completions. */
  double (*next_arrival_s)(const up_workload *w);
  /* Every request has been handed out. */
  bool (*done)(const up_workload *w);
  void (*destroy)(up_workload *w);
} up_workload_ops;

struct up_workload {
  const up_workload_ops *ops;
  void *impl;
};

/* Closed loop: keep `concurrency` requests in flight until `n_requests` have been
 * issued. Request ids are given (this rank's share); prompts are random token ids
 * drawn from (seed, id) alone, so every rank layout yields the same prompts. */
typedef struct up_closed_loop_params {
  int32_t concurrency;
  int32_t n_requests;
  const int64_t *request_ids; /* [n_requests], copied */
  int32_t prompt_len;
  int32_t output_len;
  int32_t vocab;
  int32_t n_layers;
  uint64_t seed;
} up_closed_loop_params;

up_workload *up_workload_closed_loop_create(const up_closed_loop_params *params);

/* Fill a prompt with the random ids of request `id` under `seed`. */
void up_workload_random_prompt(uint64_t seed, int64_t id, int32_t vocab, int32_t *tokens, int32_t n);

#endif
