/* closed_loop.h — the closed-loop request source (a fixed number of requests in flight)
 * and the seeded random prompts every synthetic source draws from. */
#ifndef UP_CLOSED_LOOP_H
#define UP_CLOSED_LOOP_H

#include <stdint.h>

#include "engine/serve/request_source.h"

struct up_prompt_source;

/* Closed loop: keep `concurrency` requests in flight until `n_requests` have been
 * issued. Request ids are given (this rank's share); prompts depend on (seed, id)
 * alone (random ids, or the prompt source's), so every rank layout yields the same prompts. */
typedef struct up_closed_loop_params {
  int32_t concurrency;
  int32_t n_requests;
  const int64_t *request_ids; /* [n_requests], copied */
  int32_t prompt_len;
  int32_t output_len;
  int32_t vocab;
  int32_t n_layers;
  uint64_t seed;
  const struct up_prompt_source *prompts; /* NULL: random ids from (seed, id); else must outlive the workload */
} up_closed_loop_params;

up_workload *up_workload_closed_loop_create(const up_closed_loop_params *params);

/* Fill a prompt with the random ids of request `id` under `seed`. */
void up_workload_random_prompt(uint64_t seed, int64_t id, int32_t vocab, int32_t *tokens, int32_t n);

#endif
