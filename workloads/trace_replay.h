/* trace_replay.h — replaying a request trace (workloads/trace.h) as a timed workload:
 * selects the rows (a time window or the first N), scales time by a speedup, fits
 * lengths to the model, and builds prompts in which Mooncake hash ids become shared
 * prefix blocks. The source is the timed source of open_loop.h. */
#ifndef UP_TRACE_REPLAY_H
#define UP_TRACE_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "workloads/length_dist.h"
#include "workloads/open_loop.h"
#include "workloads/prompt_source.h"
#include "workloads/trace.h"

typedef struct up_trace_replay_params {
  double speedup;           /* arrival times are divided by it, > 0 */
  double window_start_s;    /* trace time, before the speedup */
  double window_duration_s; /* > 0: only rows arriving in [start, start + duration) */
  int32_t limit;            /* > 0: only the first `limit` rows (by time) */
  const up_length_dist *output_len; /* NULL: the trace's output lengths; else draw i for request i */
  int32_t max_context;      /* model context: prompt + output are fitted to it */
  int32_t vocab;
  uint64_t seed;
  const up_prompt_source *prompts; /* NULL: random ids; else RANDOM or TEXT, outliving the replay */
} up_trace_replay_params;

/* The selected requests, ready to replay; the trace must outlive it. */
typedef struct up_trace_replay {
  const up_trace *trace;
  up_timed_request *requests; /* id i = the i-th selected row, arrival re-based so the first is at 0 */
  int32_t n_requests;
  int32_t *rows;              /* [n_requests] the trace row of each request */
  up_prompt_source random;    /* the prompts when the params gave none */
  const up_prompt_source *prompts;
  up_workload_stats stats;    /* fitting counts and the trace's skipped lines */
} up_trace_replay;

/* NULL with a message when the selection is empty. */
up_trace_replay *up_trace_replay_create(const up_trace *trace, const up_trace_replay_params *params, char *err,
                                        size_t err_size);
void up_trace_replay_destroy(up_trace_replay *replay);

/* This rank's share (id % world == rank) as a workload; the replay must outlive it. */
up_workload *up_trace_replay_source(const up_trace_replay *replay, int32_t rank, int32_t world,
                                    int32_t max_concurrency, int32_t n_layers);

/* Tokens of request `id` (an up_prompt_fill_fn over the replay): each hash id is a
 * block of UP_TRACE_HASH_BLOCK tokens of the prompt source's shared blocks (random ids
 * or prose from (seed, hash id)), so requests sharing leading ids share those tokens;
 * the rest is the source's prompt of request id. */
void up_trace_replay_fill_prompt(const void *replay, int64_t id, int32_t *tokens, int32_t n);

#endif
