/* open_loop.h — timed workloads: requests that arrive at scheduled times whatever the
 * engine is doing. Owns the open-loop schedule (gamma inter-arrival times at a given
 * rate and burstiness, lengths from length distributions), the clamping of lengths to
 * the model's context, and the source that releases a timed schedule under a cap on
 * requests in flight (used by trace replay too). */
#ifndef UP_OPEN_LOOP_H
#define UP_OPEN_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "workloads/length_dist.h"
#include "workloads/closed_loop.h"

/* One scheduled request of a timed workload. */
typedef struct up_timed_request {
  int64_t id;        /* global request index: the rank split and the prompt stream use it */
  double arrival_s;  /* scheduled arrival on the engine clock (0 = the point's start) */
  int32_t prompt_len;
  int32_t output_len;
} up_timed_request;

/* What was changed or dropped while building a timed workload (stored with each point). */
typedef struct up_workload_stats {
  int64_t prompts_clamped; /* prompt cut to the model's context minus the output */
  int64_t prompts_raised;  /* prompt of 0 tokens made 1 */
  int64_t outputs_raised;  /* output of < 1 token made 1 */
  int64_t lines_skipped;   /* malformed trace lines skipped (--trace-lenient) */
} up_workload_stats;

typedef struct up_open_loop_params {
  double request_rate;        /* requests per second; INFINITY: all arrive at 0 */
  double burstiness;          /* gamma shape of the inter-arrival times; 1 = Poisson */
  int32_t max_requests;       /* 0: no count limit (then duration_s bounds the schedule) */
  double duration_s;          /* arrivals at or after this are not issued; 0: no limit */
  up_length_dist prompt_len;
  up_length_dist output_len;
  uint64_t seed;
} up_open_loop_params;

/* Largest schedule a duration may produce (the launcher checks rate x duration against it). */
#define UP_OPEN_LOOP_MAX_REQUESTS 10000000

/* Gap between request index-1 and request index (index >= 1): Gamma(shape B, scale
 * 1/(R B)), so the mean is 1/R and the coefficient of variation 1/sqrt(B). */
double up_open_loop_gap_s(double rate, double burstiness, uint64_t seed, int64_t index);

/* The schedule: request 0 arrives at 0, request i at the sum of gaps 1..i; lengths are
 * draw i of the prompt and output streams. A pure function of the parameters, so every
 * rank computes the same one. Returns a malloc'd array and its length in *n. */
up_timed_request *up_open_loop_schedule(const up_open_loop_params *params, int32_t *n);

/* Fit every request into max_context tokens (prompt + output): prompts < 1 become 1,
 * outputs < 1 become 1, then prompts longer than max_context - output are cut. Counts go to stats. */
void up_timed_requests_fit(up_timed_request *reqs, int32_t n, int32_t max_context, up_workload_stats *stats);

/* Fills a request's prompt; ctx is the filler's own state. */
typedef void (*up_prompt_fill_fn)(const void *ctx, int64_t id, int32_t *tokens, int32_t n);

typedef struct up_timed_source_params {
  const up_timed_request *requests; /* the whole schedule in arrival order; this rank's share is copied */
  int32_t n_requests;
  int32_t rank, world;              /* this rank takes the requests with id % world == rank */
  int32_t max_concurrency;          /* this rank's cap on requests in flight, >= 1 */
  int32_t n_layers;
  up_prompt_fill_fn fill;
  const void *fill_ctx;             /* must outlive the source */
} up_timed_source_params;

/* A source that hands out each request once the clock reaches its arrival time and
 * fewer than max_concurrency are in flight. A request held back by the cap keeps its
 * scheduled arrival_s, so the wait shows in its TTFT. */
up_workload *up_workload_timed_create(const up_timed_source_params *params);

/* The open-loop source: the timed source over a schedule, prompts random from (seed, id). */
typedef struct up_random_prompts {
  uint64_t seed;
  int32_t vocab;
} up_random_prompts;
void up_random_prompts_fill(const void *ctx, int64_t id, int32_t *tokens, int32_t n);

#endif
