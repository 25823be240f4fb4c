/* open_loop.c — open-loop schedules, length fitting and the timed source that
 * releases scheduled requests under a concurrency cap (see open_loop.h). */
#include "workloads/open_loop.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "workloads/sampling.h"

/* Streams of the schedule: distinct from the prompt and weight streams. */
#define UP_GAP_STREAM 0x4152524956414C00ull
#define UP_PROMPT_LEN_STREAM 0x50524C454E000000ull
#define UP_OUTPUT_LEN_STREAM 0x4F55544C454E0000ull

double up_open_loop_gap_s(double rate, double burstiness, uint64_t seed, int64_t index) {
  if (isinf(rate)) return 0.0;
  return up_sample_gamma(burstiness, seed, UP_GAP_STREAM, (uint64_t)index) / (rate * burstiness);
}

up_timed_request *up_open_loop_schedule(const up_open_loop_params *params, int32_t *n) {
  UP_ASSERT(params->request_rate > 0.0 && params->burstiness > 0.0 && params->max_requests >= 0 &&
                params->duration_s >= 0.0 && (params->max_requests > 0 || params->duration_s > 0.0),
            "bad open-loop parameters");
  const int32_t limit = params->max_requests > 0 ? params->max_requests : UP_OPEN_LOOP_MAX_REQUESTS;
  int32_t cap = limit < 1024 ? limit : 1024, count = 0;
  up_timed_request *reqs = up_malloc_or_die(sizeof *reqs * (size_t)cap, "open-loop schedule");
  double t = 0.0;
  for (int32_t i = 0; i < limit; ++i) {
    if (i > 0) t += up_open_loop_gap_s(params->request_rate, params->burstiness, params->seed, i);
    if (params->duration_s > 0.0 && t >= params->duration_s) break;
    if (count == cap) {
      cap = cap > limit / 2 ? limit : 2 * cap;
      reqs = realloc(reqs, sizeof *reqs * (size_t)cap);
      if (!reqs) UP_FATAL("out of host memory for the open-loop schedule");
    }
    reqs[count++] = (up_timed_request){
        .id = i,
        .arrival_s = t,
        .prompt_len = up_length_dist_draw(&params->prompt_len, params->seed, UP_PROMPT_LEN_STREAM, (uint64_t)i),
        .output_len = up_length_dist_draw(&params->output_len, params->seed, UP_OUTPUT_LEN_STREAM, (uint64_t)i),
    };
  }
  *n = count;
  return reqs;
}

void up_timed_requests_fit(up_timed_request *reqs, int32_t n, int32_t max_context, up_workload_stats *stats) {
  UP_ASSERT(max_context >= 2, "max_context %d leaves no room for a prompt and an output", (int)max_context);
  for (int32_t i = 0; i < n; ++i) {
    up_timed_request *r = &reqs[i];
    if (r->prompt_len < 1) r->prompt_len = 1, stats->prompts_raised++;
    if (r->output_len < 1) r->output_len = 1, stats->outputs_raised++;
    /* An output that alone fills the context cannot be kept whole: it yields one token to the prompt. */
    if (r->output_len > max_context - 1) r->output_len = max_context - 1;
    if (r->prompt_len > max_context - r->output_len) r->prompt_len = max_context - r->output_len, stats->prompts_clamped++;
  }
}

void up_random_prompts_fill(const void *ctx, int64_t id, int32_t *tokens, int32_t n) {
  const up_random_prompts *rp = ctx;
  up_workload_random_prompt(rp->seed, id, rp->vocab, tokens, n);
}

typedef struct timed_source {
  up_timed_source_params params;
  up_timed_request *reqs; /* this rank's share, arrival order */
  int32_t n;
  int32_t issued;
} timed_source;

static int32_t timed_poll(up_workload *w, double now_s, int32_t in_flight, up_request **out, int32_t max) {
  timed_source *ts = w->impl;
  int32_t n = 0;
  while (n < max && ts->issued < ts->n && ts->reqs[ts->issued].arrival_s <= now_s &&
         in_flight + n < ts->params.max_concurrency) {
    const up_timed_request *r = &ts->reqs[ts->issued++];
    up_request *req = up_malloc_or_die(sizeof *req, "timed request");
    up_request_init(req, r->id, r->prompt_len, r->output_len, ts->params.n_layers, r->arrival_s);
    ts->params.fill(ts->params.fill_ctx, r->id, req->prompt, r->prompt_len);
    out[n++] = req;
  }
  return n;
}

/* The next request's scheduled arrival (already past while the cap holds it back), or
 * INFINITY once every request has been handed out. */
static double timed_next_arrival(const up_workload *w) {
  const timed_source *ts = w->impl;
  if (ts->issued >= ts->n) return INFINITY;
  return ts->reqs[ts->issued].arrival_s;
}

static bool timed_done(const up_workload *w) {
  const timed_source *ts = w->impl;
  return ts->issued >= ts->n;
}

static void timed_destroy(up_workload *w) {
  if (!w) return;
  timed_source *ts = w->impl;
  free(ts->reqs);
  free(ts);
  free(w);
}

static const up_workload_ops timed_ops = {
    .name = "timed",
    .poll = timed_poll,
    .next_arrival_s = timed_next_arrival,
    .done = timed_done,
    .destroy = timed_destroy,
};

static int compare_arrival(const void *a, const void *b) {
  const up_timed_request *x = a, *y = b;
  if (x->arrival_s != y->arrival_s) return x->arrival_s < y->arrival_s ? -1 : 1;
  return (x->id > y->id) - (x->id < y->id);
}

up_workload *up_workload_timed_create(const up_timed_source_params *params) {
  UP_ASSERT(params->n_requests >= 0 && params->world >= 1 && params->rank >= 0 && params->rank < params->world &&
                params->max_concurrency >= 1 && params->fill != NULL,
            "bad timed-source parameters");
  timed_source *ts = up_calloc_or_die(1, sizeof *ts, "timed source");
  ts->params = *params;
  ts->params.requests = NULL;
  ts->reqs = up_calloc_or_die((size_t)(params->n_requests > 0 ? params->n_requests : 1), sizeof *ts->reqs,
                              "timed share");
  for (int32_t i = 0; i < params->n_requests; ++i)
    if (params->requests[i].id % params->world == params->rank) ts->reqs[ts->n++] = params->requests[i];
  qsort(ts->reqs, (size_t)ts->n, sizeof *ts->reqs, compare_arrival);
  up_workload *w = up_calloc_or_die(1, sizeof *w, "workload");
  w->ops = &timed_ops;
  w->impl = ts;
  return w;
}
