/* case_moe_experts.c — the drivers of an MoE block's routed experts (case_qwen.h): the
 * gate/up GEMMs, the SwiGLU and the down GEMMs over rows already grouped by expert, run
 * by kernels/moe_expert_gemms.h as the forward runs them (one matmul per expert) or
 * with one grouped_matmul per projection (the alternative --kernels measures). The
 * rows' expert counts come from routing each token to top_k distinct experts at random;
 * the rows' values need no tokens behind them (the experts see only grouped rows). The
 * reference recomputes the rows of a sample of experts, at most SAMPLED_ROWS of each
 * (every row of every expert when sample is 0): rows are independent, and one expert
 * holding every row (the dense-equivalent case) stays cheap to check. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "core/rng.h"
#include "kernels/moe_expert_gemms.h"
#include "kernels/op_cases/case_qwen.h"
#include "kernels/op_cases/op_check.h"
#include "kernels/op_cases/op_expected.h"

enum { SAMPLED_ROWS = 128 };

typedef struct experts_inputs {
  int32_t *offsets; /* host [n_experts + 1]: expert e's grouped rows */
  up_moe_expert_rows rows;
  up_moe_expert_weights weights;
  void *x, *gate_up, *act, *out, *gate_up_w, *down_w; /* the buffers behind rows and weights */
} experts_inputs;

static int64_t pairs_of(const up_op_case *c) { return (int64_t)c->moe.tokens * c->moe.top_k; }

static double experts_work(const up_op_case *c) {
  return 3.0 * (double)pairs_of(c) * c->moe.inter * c->moe.hidden;
}

/* Each token's top_k distinct experts drawn uniformly: expert counts as a router with
 * balanced load gives, into offsets. */
static int32_t *route_counts(const up_op_moe_dims *d, uint64_t seed) {
  int32_t *offsets = up_calloc_or_die((size_t)d->n_experts + 1, sizeof(int32_t), "expert offsets");
  int32_t *chosen = up_malloc_or_die(sizeof(int32_t) * (size_t)d->top_k, "chosen experts");
  uint64_t draw = 0;
  for (int32_t t = 0; t < d->tokens; ++t)
    for (int32_t j = 0; j < d->top_k; ++j) {
      bool fresh;
      do {
        chosen[j] = (int32_t)(up_rng_u64(seed, 9, draw++) % (uint64_t)d->n_experts);
        fresh = true;
        for (int32_t i = 0; i < j; ++i) fresh = fresh && chosen[i] != chosen[j];
      } while (!fresh);
      offsets[chosen[j] + 1] += 1;
    }
  for (int32_t e = 0; e < d->n_experts; ++e) offsets[e + 1] += offsets[e];
  free(chosen);
  return offsets;
}

static void *experts_make(up_backend *be, const up_op_case *c, uint64_t seed) {
  const up_op_moe_dims *d = &c->moe;
  if (d->top_k < 1 || d->top_k > d->n_experts) UP_FATAL("moe experts case: top %d of %d experts", d->top_k, d->n_experts);
  experts_inputs *in = up_calloc_or_die(1, sizeof *in, "moe experts case");
  in->offsets = route_counts(d, seed);
  const size_t pairs = (size_t)pairs_of(c), h = (size_t)d->hidden, inter = (size_t)d->inter, e = (size_t)d->n_experts;
  in->x = up_op_alloc_filled(be, pairs * h, 1.0f, seed, 1, "expert inputs");
  in->gate_up_w = up_op_alloc_filled(be, e * 2 * inter * h, sqrtf(3.0f / (float)h), seed, 2, "experts' gate/up");
  in->down_w = up_op_alloc_filled(be, e * h * inter, sqrtf(3.0f / (float)inter), seed, 3, "experts' down");
  const size_t es = up_dtype_size(be->act_dtype);
  in->gate_up = be->ops->alloc(be, (pairs * 2 * inter + 1) * es, "expert gate/up");
  in->act = be->ops->alloc(be, (pairs * inter + 1) * es, "expert SwiGLU");
  in->out = be->ops->alloc(be, (pairs * h + 1) * es, "expert outputs");
  if (c->poison) up_op_fill_nan(be, in->out, 0, pairs * h);
  in->rows = (up_moe_expert_rows){.x = in->x, .gate_up = in->gate_up, .act = in->act, .out = in->out};
  in->weights = (up_moe_expert_weights){.gate_up = in->gate_up_w, .down = in->down_w, .n_experts = d->n_experts,
                                        .hidden = d->hidden, .inter = d->inter};
  return in;
}

static int64_t experts_run(up_backend *be, const up_op_case *c, void *inputs) {
  experts_inputs *in = inputs;
  up_moe_expert_gemms(be, &in->rows, &in->weights, in->offsets, c->driver == &up_op_moe_experts_grouped, NULL);
  return 0;
}

/* The experts the reference recomputes: `sample` of those with rows, spread evenly (all
 * when sample is 0); writes their ids, returns how many. */
static int32_t sampled_experts(const up_op_case *c, const experts_inputs *in, int32_t *ids) {
  int32_t with_rows = 0;
  for (int32_t e = 0; e < c->moe.n_experts; ++e) with_rows += in->offsets[e + 1] > in->offsets[e];
  const int32_t want = c->sample > 0 && c->sample < with_rows ? c->sample : with_rows;
  int32_t n = 0, seen = 0;
  for (int32_t e = 0; e < c->moe.n_experts && n < want; ++e) {
    if (in->offsets[e + 1] == in->offsets[e]) continue;
    /* the seen-th expert with rows is taken when it reaches the next of `want` even steps */
    if ((int64_t)seen * want >= (int64_t)n * with_rows) ids[n++] = e;
    ++seen;
  }
  return n;
}

/* The first rows of expert e the reference recomputes. */
static int32_t checked_rows(const up_op_case *c, const experts_inputs *in, int32_t e) {
  const int32_t n = in->offsets[e + 1] - in->offsets[e];
  return c->sample > 0 && n > SAMPLED_ROWS ? SAMPLED_ROWS : n;
}

/* values[0]: the sampled experts' checked output rows, in expert order. */
static void *experts_reference(up_backend *be, const up_op_case *c, void *inputs, up_backend *ref) {
  experts_inputs *in = inputs;
  const int64_t h = c->moe.hidden, inter = c->moe.inter;
  int32_t *ids = up_malloc_or_die(sizeof(int32_t) * (size_t)c->moe.n_experts, "sampled experts");
  const int32_t n_ids = sampled_experts(c, in, ids);
  size_t rows = 0;
  for (int32_t i = 0; i < n_ids; ++i) rows += (size_t)checked_rows(c, in, ids[i]);
  up_op_expected *e = up_op_expected_new(rows * (size_t)h, 0, 0);
  float *gate_up = up_malloc_or_die(sizeof(float) * (rows * 2 * (size_t)inter + 1), "reference gate/up");
  float *act = up_malloc_or_die(sizeof(float) * (rows * (size_t)inter + 1), "reference SwiGLU");
  size_t at = 0;
  for (int32_t i = 0; i < n_ids; ++i) {
    const int32_t first = in->offsets[ids[i]], n = checked_rows(c, in, ids[i]);
    float *x = up_op_download(be, in->x, (size_t)first * h, (size_t)n * h, "expert inputs");
    float *wg = up_op_download(be, in->gate_up_w, (size_t)ids[i] * 2 * inter * h, (size_t)(2 * inter * h),
                               "expert gate/up weights");
    float *wd = up_op_download(be, in->down_w, (size_t)ids[i] * h * inter, (size_t)(h * inter), "expert down weights");
    ref->ops->matmul(ref, gate_up, x, wg, n, (int32_t)(2 * inter), (int32_t)h);
    ref->ops->swiglu(ref, act, gate_up, n, (int32_t)inter);
    ref->ops->matmul(ref, e->values[0] + at * (size_t)h, act, wd, n, (int32_t)h, (int32_t)inter);
    at += (size_t)n;
    free(x);
    free(wg);
    free(wd);
  }
  free(gate_up);
  free(act);
  free(ids);
  return e;
}

static void experts_compare(up_backend *be, const up_op_case *c, void *inputs, const void *reference,
                            up_op_check *check) {
  const up_op_expected *e = reference;
  const experts_inputs *in = inputs;
  const size_t h = (size_t)c->moe.hidden;
  int32_t *ids = up_malloc_or_die(sizeof(int32_t) * (size_t)c->moe.n_experts, "sampled experts");
  const int32_t n_ids = sampled_experts(c, in, ids);
  float *out = up_malloc_or_die(sizeof(float) * (e->n[0] + 1), "expert outputs");
  size_t at = 0;
  for (int32_t i = 0; i < n_ids; ++i) {
    const int32_t first = in->offsets[ids[i]], n = checked_rows(c, in, ids[i]);
    be->ops->download_f32(be, out + at * h, in->out, (size_t)first * h, (size_t)n * h);
    at += (size_t)n;
  }
  check->error = up_op_normalised_error(out, e->values[0], e->n[0]);
  snprintf(check->detail, sizeof check->detail, "%d tokens x top %d of %d experts (%d checked, %zu rows), inter %d, "
           "hidden %d", (int)c->moe.tokens, (int)c->moe.top_k, (int)c->moe.n_experts, (int)n_ids, at,
           (int)c->moe.inter, (int)c->moe.hidden);
  free(out);
  free(ids);
}

static void experts_destroy(up_backend *be, void *inputs) {
  experts_inputs *in = inputs;
  void *const buffers[] = {in->x, in->gate_up, in->act, in->out, in->gate_up_w, in->down_w};
  for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; ++i)
    if (buffers[i]) be->ops->free(be, buffers[i]);
  free(in->offsets);
  free(in);
}

const up_op_driver up_op_moe_experts = {{"matmul", "swiglu"}, experts_make, experts_run, experts_reference,
                                        experts_compare, up_op_expected_free, experts_destroy, experts_work};
const up_op_driver up_op_moe_experts_grouped = {{"grouped_matmul", "swiglu"}, experts_make, experts_run,
                                                experts_reference, experts_compare, up_op_expected_free,
                                                experts_destroy, experts_work};
