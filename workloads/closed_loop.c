/* closed_loop.c — the closed-loop workload: a fixed number of requests in flight, a
 * new one issued the moment one finishes, fixed prompt and output lengths, prompts of
 * random token ids drawn from (seed, request id) or from a prompt source. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/fatal.h"
#include "workloads/closed_loop.h"
#include "workloads/prompt_source.h"

/* Stream id of prompt tokens: distinct from the weight streams (engine/model/model.c). */
#define UP_PROMPT_STREAM_BASE 0x50524F4D50540000ull

typedef struct closed_loop {
  up_closed_loop_params params;
  int64_t *ids;
  int32_t issued;
} closed_loop;

void up_workload_random_prompt(uint64_t seed, int64_t id, int32_t vocab, int32_t *tokens, int32_t n) {
  for (int32_t i = 0; i < n; ++i)
    tokens[i] = (int32_t)(up_rng_u64(seed, UP_PROMPT_STREAM_BASE + (uint64_t)id, (uint64_t)i) % (uint64_t)vocab);
}

static int32_t closed_loop_poll(up_workload *w, double now_s, int32_t in_flight, up_request **out, int32_t max) {
  closed_loop *cl = w->impl;
  int32_t n = 0;
  while (n < max && cl->issued < cl->params.n_requests && in_flight + n < cl->params.concurrency) {
    up_request *req = up_malloc_or_die(sizeof *req, "closed-loop request");
    const int64_t id = cl->ids[cl->issued++];
    up_request_init(req, id, cl->params.prompt_len, cl->params.output_len, cl->params.n_layers, now_s);
    if (cl->params.prompts) up_prompt_source_fill(cl->params.prompts, id, req->prompt, cl->params.prompt_len);
    else up_workload_random_prompt(cl->params.seed, id, cl->params.vocab, req->prompt, cl->params.prompt_len);
    out[n++] = req;
  }
  return n;
}

static double closed_loop_next_arrival(const up_workload *w) { return INFINITY; }

static bool closed_loop_done(const up_workload *w) {
  const closed_loop *cl = w->impl;
  return cl->issued >= cl->params.n_requests;
}

static void closed_loop_destroy(up_workload *w) {
  if (!w) return;
  closed_loop *cl = w->impl;
  free(cl->ids);
  free(cl);
  free(w);
}

static const up_workload_ops closed_loop_ops = {
    .name = "closed-loop",
    .poll = closed_loop_poll,
    .next_arrival_s = closed_loop_next_arrival,
    .done = closed_loop_done,
    .destroy = closed_loop_destroy,
};

up_workload *up_workload_closed_loop_create(const up_closed_loop_params *params) {
  UP_ASSERT(params->concurrency >= 1 && params->n_requests >= 0 && params->prompt_len >= 1 &&
                params->output_len >= 1 && params->vocab >= 1,
            "bad closed-loop parameters");
  closed_loop *cl = up_calloc_or_die(1, sizeof *cl, "closed-loop workload");
  cl->params = *params;
  cl->ids = up_calloc_or_die((size_t)(params->n_requests > 0 ? params->n_requests : 1), sizeof(int64_t), "request ids");
  if (params->n_requests > 0) memcpy(cl->ids, params->request_ids, sizeof(int64_t) * (size_t)params->n_requests);
  cl->params.request_ids = cl->ids;
  up_workload *w = up_calloc_or_die(1, sizeof *w, "workload");
  w->ops = &closed_loop_ops;
  w->impl = cl;
  return w;
}
