/* trace_replay.c — row selection, time scaling, length fitting and prefix-sharing
 * prompts of a trace replay (see trace_replay.h). */
#include "workloads/trace_replay.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/rng.h"
#include "core/fatal.h"

/* Stream of the output lengths drawn when the trace's are replaced. */#define UP_TRACE_OUTPUT_LEN_STREAM 0x54524F55544C454Eull

static int32_t to_int32(int64_t v) { return v > INT32_MAX ? INT32_MAX : (int32_t)v; }

up_trace_replay *up_trace_replay_create(const up_trace *trace, const up_trace_replay_params *params, char *err,
                                        size_t err_size) {
  UP_ASSERT(params->speedup > 0.0 && params->limit >= 0 && params->window_duration_s >= 0.0 && params->vocab >= 1,
            "bad trace-replay parameters");
  int32_t first = 0, end = trace->n_rows;
  if (params->window_duration_s > 0.0) {
    const double lo = params->window_start_s, hi = params->window_start_s + params->window_duration_s;
    while (first < trace->n_rows && trace->rows[first].arrival_s < lo) first++;
    end = first;
    while (end < trace->n_rows && trace->rows[end].arrival_s < hi) end++;
    if (end == first) {
      snprintf(err, err_size, "--trace-window %g:%g: no request arrives in that window (the trace spans %g s)", lo,
               params->window_duration_s, trace->rows[trace->n_rows - 1].arrival_s);
      return NULL;
    }
  }
  if (params->limit > 0 && end - first > params->limit) end = first + params->limit;

  up_trace_replay *r = up_calloc_or_die(1, sizeof *r, "trace replay");
  r->trace = trace;
  r->n_requests = end - first;
  up_prompt_source_random(&r->random, params->seed, params->vocab);
  r->prompts = params->prompts ? params->prompts : &r->random;
  r->requests = up_malloc_or_die(sizeof *r->requests * (size_t)r->n_requests, "replayed requests");
  r->rows = up_malloc_or_die(sizeof *r->rows * (size_t)r->n_requests, "replayed rows");
  const double t0 = trace->rows[first].arrival_s;
  for (int32_t i = 0; i < r->n_requests; ++i) {
    const up_trace_row *row = &trace->rows[first + i];
    r->rows[i] = first + i;
    r->requests[i] = (up_timed_request){
        .id = i,
        .arrival_s = (row->arrival_s - t0) / params->speedup,
        .prompt_len = to_int32(row->input_len),
        .output_len = params->output_len
                          ? up_length_dist_draw(params->output_len, params->seed, UP_TRACE_OUTPUT_LEN_STREAM, (uint64_t)i)
                          : to_int32(row->output_len),
    };
  }
  r->stats.lines_skipped = trace->lines_skipped;
  up_timed_requests_fit(r->requests, r->n_requests, params->max_context, &r->stats);
  return r;
}

void up_trace_replay_destroy(up_trace_replay *replay) {
  if (!replay) return;
  free(replay->requests);
  free(replay->rows);
  free(replay);
}

void up_trace_replay_fill_prompt(const void *ctx, int64_t id, int32_t *tokens, int32_t n) {
  const up_trace_replay *r = ctx;
  UP_ASSERT(id >= 0 && id < r->n_requests, "request %lld is not in the replay", (long long)id);
  up_prompt_source_fill(r->prompts, id, tokens, n);
  const up_trace_row *row = &r->trace->rows[r->rows[id]];
  const int64_t *hashes = r->trace->hash_ids + row->hash_first;
  for (int32_t b = 0; b < row->n_hash_ids && (int64_t)b * UP_TRACE_HASH_BLOCK < n; ++b) {
    const int32_t at = b * UP_TRACE_HASH_BLOCK;
    up_prompt_source_fill_block(r->prompts, (uint64_t)hashes[b], tokens + at,
                                n - at < UP_TRACE_HASH_BLOCK ? n - at : UP_TRACE_HASH_BLOCK);
  }
}

up_workload *up_trace_replay_source(const up_trace_replay *replay, int32_t rank, int32_t world,
                                    int32_t max_concurrency, int32_t n_layers) {
  const up_timed_source_params p = {.requests = replay->requests, .n_requests = replay->n_requests, .rank = rank,
                                    .world = world, .max_concurrency = max_concurrency, .n_layers = n_layers,
                                    .fill = up_trace_replay_fill_prompt, .fill_ctx = replay};
  return up_workload_timed_create(&p);
}
