/* case_moe.c — drivers of the MoE routing ops (case_qwen.h): moe_route (experts
 * exactly, weights as values), moe_sort (every index exactly) and moe_combine (values,
 * with or without the gated shared expert). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/fatal.h"
#include "core/rng.h"
#include "kernels/op_cases/case_qwen.h"
#include "kernels/op_cases/op_check.h"
#include "kernels/op_cases/op_expected.h"

typedef struct moe_inputs {
  void *logits, *expert_out, *shared_out, *shared_gate, *out;
  float *weights;
  float *weights_host;
  int32_t *experts, *rows, *slot_of;
  int32_t *experts_host, *slot_of_host;
  int32_t *offsets_host; /* moe_sort's host output */
} moe_inputs;

static void moe_destroy(up_backend *be, void *inputs) {
  moe_inputs *in = inputs;
  void *const buffers[] = {in->logits, in->expert_out, in->shared_out, in->shared_gate, in->out,
                           in->weights, in->experts, in->rows, in->slot_of};
  for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; ++i)
    if (buffers[i]) be->ops->free(be, buffers[i]);
  free(in->weights_host);
  free(in->experts_host);
  free(in->slot_of_host);
  free(in->offsets_host);
  free(in);
}

static size_t pairs_of(const up_op_case *c) { return (size_t)c->rows.rows * (size_t)c->rows.src_rows; }

/* --- moe_route: rows tokens, dim experts, src_rows top-k ------------------------------ */

static double route_work(const up_op_case *c) {
  return (double)c->rows.rows * c->rows.dim * (3.0 + c->rows.src_rows);
}

/* Logits of a few units, as a router's are: ties in bf16 happen, and both sides break
 * them by the lower expert. */
static void *route_make(up_backend *be, const up_op_case *c, uint64_t seed) {
  moe_inputs *in = up_calloc_or_die(1, sizeof *in, "route case");
  in->logits = up_op_alloc_filled(be, (size_t)c->rows.rows * c->rows.dim, 4.0f, seed, 1, "router logits");
  in->experts_host = up_malloc_or_die(sizeof(int32_t) * (pairs_of(c) + 1), "route poison");
  for (size_t i = 0; i < pairs_of(c); ++i) in->experts_host[i] = -1;
  in->experts = up_op_upload_i32(be, in->experts_host, pairs_of(c), "router experts");
  in->weights = (float *)up_op_upload_i32(be, in->experts_host, pairs_of(c), "router weights");
  return in;
}

static int64_t route_run(up_backend *be, const up_op_case *c, void *inputs) {
  moe_inputs *in = inputs;
  be->ops->moe_route(be, in->weights, in->experts, in->logits, c->rows.rows, c->rows.dim, c->rows.src_rows, 1);
  return 0;
}

static void *route_reference(up_backend *be, const up_op_case *c, void *inputs, up_backend *ref) {
  moe_inputs *in = inputs;
  float *logits = up_op_download(be, in->logits, 0, (size_t)c->rows.rows * c->rows.dim, "router logits");
  up_op_expected *e = up_op_expected_new(pairs_of(c), 0, pairs_of(c));
  ref->ops->moe_route(ref, e->values[0], e->indices, logits, c->rows.rows, c->rows.dim, c->rows.src_rows, 1);
  free(logits);
  return e;
}

static void route_compare(up_backend *be, const up_op_case *c, void *inputs, const void *reference,
                          up_op_check *check) {
  const up_op_expected *e = reference;
  const moe_inputs *in = inputs;
  int32_t *experts = up_op_download_i32(be, in->experts, pairs_of(c), "router experts");
  float *weights = up_op_download_f32_bits(be, in->weights, pairs_of(c), "router weights");
  const double mismatch = up_op_mismatch_share(experts, e->indices, pairs_of(c), sizeof(int32_t));
  const double w_err = up_op_normalised_error(weights, e->values[0], pairs_of(c));
  free(experts);
  free(weights);
  /* The experts must match exactly: a different choice counts as an error of 1, above
   * any value tolerance, however few tokens it touches. */
  check->error = mismatch > 0.0 ? fmax(w_err, 1.0) : w_err;
  snprintf(check->detail, sizeof check->detail, "%d tokens, top %d of %d: experts differ %.3e, weights %.3e",
           (int)c->rows.rows, (int)c->rows.src_rows, (int)c->rows.dim, mismatch, w_err);
}

const up_op_driver up_op_moe_route = {{"moe_route"}, route_make, route_run, route_reference, route_compare,
                                      up_op_expected_free, moe_destroy, route_work};

/* --- moe_sort --------------------------------------------------------------------------- */

static double sort_work(const up_op_case *c) { return 4.0 * (double)pairs_of(c) + c->rows.dim; }

/* Random experts per pair (repeats within a token are allowed: the op does not care). */
static void *sort_make(up_backend *be, const up_op_case *c, uint64_t seed) {
  moe_inputs *in = up_calloc_or_die(1, sizeof *in, "sort case");
  int32_t *experts = up_op_random_indices(seed, 1, pairs_of(c), c->rows.dim);
  in->experts = up_op_upload_i32(be, experts, pairs_of(c), "sort experts");
  free(experts);
  int32_t *poison = up_malloc_or_die(sizeof(int32_t) * (pairs_of(c) + 1), "sort poison");
  for (size_t i = 0; i < pairs_of(c); ++i) poison[i] = -1;
  in->rows = up_op_upload_i32(be, poison, pairs_of(c), "sort source rows");
  in->slot_of = up_op_upload_i32(be, poison, pairs_of(c), "sort slots");
  free(poison);
  in->offsets_host = up_malloc_or_die(sizeof(int32_t) * ((size_t)c->rows.dim + 1), "sort offsets");
  return in;
}

static int64_t sort_run(up_backend *be, const up_op_case *c, void *inputs) {
  moe_inputs *in = inputs;
  be->ops->moe_sort(be, in->rows, in->slot_of, in->offsets_host, in->experts, c->rows.rows, c->rows.src_rows,
                    c->rows.dim);
  return 0;
}

/* indices: source rows, then slots, then the offsets. */
static void *sort_reference(up_backend *be, const up_op_case *c, void *inputs, up_backend *ref) {
  moe_inputs *in = inputs;
  const size_t n = pairs_of(c);
  int32_t *experts = up_op_download_i32(be, in->experts, n, "sort experts");
  up_op_expected *e = up_op_expected_new(0, 0, 2 * n + (size_t)c->rows.dim + 1);
  ref->ops->moe_sort(ref, e->indices, e->indices + n, e->indices + 2 * n, experts, c->rows.rows, c->rows.src_rows,
                     c->rows.dim);
  free(experts);
  return e;
}

static void sort_compare(up_backend *be, const up_op_case *c, void *inputs, const void *reference,
                         up_op_check *check) {
  const up_op_expected *e = reference;
  const moe_inputs *in = inputs;
  const size_t n = pairs_of(c);
  int32_t *rows = up_op_download_i32(be, in->rows, n, "sort source rows");
  int32_t *slots = up_op_download_i32(be, in->slot_of, n, "sort slots");
  const double rows_off = up_op_mismatch_share(rows, e->indices, n, sizeof(int32_t));
  const double slots_off = up_op_mismatch_share(slots, e->indices + n, n, sizeof(int32_t));
  const double offsets_off = up_op_mismatch_share(in->offsets_host, e->indices + 2 * n, (size_t)c->rows.dim + 1,
                                                  sizeof(int32_t));
  free(rows);
  free(slots);
  check->error = fmax(rows_off, fmax(slots_off, offsets_off));
  snprintf(check->detail, sizeof check->detail, "%d tokens x top %d of %d: rows %.3e, slots %.3e, offsets %.3e differ",
           (int)c->rows.rows, (int)c->rows.src_rows, (int)c->rows.dim, rows_off, slots_off, offsets_off);
}

const up_op_driver up_op_moe_sort = {{"moe_sort"}, sort_make, sort_run, sort_reference, sort_compare,
                                     up_op_expected_free, moe_destroy, sort_work};

/* --- moe_combine: gemm m tokens, n dim, k top-k, a_offset 1 with the shared expert ---- */

static double combine_work(const up_op_case *c) { return (double)c->gemm.m * c->gemm.n * (c->gemm.k + 1.0); }

/* A random permutation as slot_of (each grouped row read once), weights in (0, 1). */
static void *combine_make(up_backend *be, const up_op_case *c, uint64_t seed) {
  moe_inputs *in = up_calloc_or_die(1, sizeof *in, "combine case");
  const size_t pairs = (size_t)c->gemm.m * (size_t)c->gemm.k, dim = (size_t)c->gemm.n;
  in->expert_out = up_op_alloc_filled(be, pairs * dim, 2.0f, seed, 1, "combine expert rows");
  in->slot_of_host = up_malloc_or_die(sizeof(int32_t) * (pairs + 1), "combine slots");
  for (size_t i = 0; i < pairs; ++i) in->slot_of_host[i] = (int32_t)i;
  for (size_t i = pairs; i > 1; --i) { /* Fisher-Yates from the case's seed */
    const size_t j = (size_t)(up_rng_unit(seed, 2, i) * (double)i);
    const int32_t t = in->slot_of_host[i - 1];
    in->slot_of_host[i - 1] = in->slot_of_host[j];
    in->slot_of_host[j] = t;
  }
  in->slot_of = up_op_upload_i32(be, in->slot_of_host, pairs, "combine slots");
  in->weights_host = up_malloc_or_die(sizeof(float) * (pairs + 1), "combine weights");
  for (size_t i = 0; i < pairs; ++i) in->weights_host[i] = (float)up_rng_unit(seed, 3, i);
  in->weights = up_op_upload_f32_bits(be, in->weights_host, pairs, "combine weights");
  if (c->gemm.a_offset) {
    in->shared_out = up_op_alloc_filled(be, (size_t)c->gemm.m * dim, 2.0f, seed, 4, "combine shared expert");
    in->shared_gate = up_op_alloc_filled(be, (size_t)c->gemm.m, 4.0f, seed, 5, "combine shared gate");
  }
  in->out = be->ops->alloc(be, ((size_t)c->gemm.m * dim + 1) * up_dtype_size(be->act_dtype), "combine output");
  if (c->poison) up_op_fill_nan(be, in->out, 0, (size_t)c->gemm.m * dim);
  return in;
}

static int64_t combine_run(up_backend *be, const up_op_case *c, void *inputs) {
  moe_inputs *in = inputs;
  be->ops->moe_combine(be, in->out, in->expert_out, in->slot_of, in->weights, in->shared_out, in->shared_gate,
                       (int32_t)c->gemm.m, (int32_t)c->gemm.k, (int32_t)c->gemm.n);
  return 0;
}

static void *combine_reference(up_backend *be, const up_op_case *c, void *inputs, up_backend *ref) {
  moe_inputs *in = inputs;
  const size_t pairs = (size_t)c->gemm.m * (size_t)c->gemm.k, dim = (size_t)c->gemm.n;
  float *rows = up_op_download(be, in->expert_out, 0, pairs * dim, "combine expert rows");
  float *shared = c->gemm.a_offset ? up_op_download(be, in->shared_out, 0, (size_t)c->gemm.m * dim, "shared") : NULL;
  float *gate = c->gemm.a_offset ? up_op_download(be, in->shared_gate, 0, (size_t)c->gemm.m, "shared gate") : NULL;
  up_op_expected *e = up_op_expected_new((size_t)c->gemm.m * dim, 0, 0);
  ref->ops->moe_combine(ref, e->values[0], rows, in->slot_of_host, in->weights_host, shared, gate,
                        (int32_t)c->gemm.m, (int32_t)c->gemm.k, (int32_t)c->gemm.n);
  free(rows);
  free(shared);
  free(gate);
  return e;
}

static void combine_compare(up_backend *be, const up_op_case *c, void *inputs, const void *reference,
                            up_op_check *check) {
  const up_op_expected *e = reference;
  check->error = up_op_error_of(be, ((moe_inputs *)inputs)->out, 0, e->values[0], e->n[0]);
  snprintf(check->detail, sizeof check->detail, "%lld tokens x top %lld x %lld%s", (long long)c->gemm.m,
           (long long)c->gemm.k, (long long)c->gemm.n, c->gemm.a_offset ? " + shared expert" : "");
}

const up_op_driver up_op_moe_combine = {{"moe_combine"}, combine_make, combine_run, combine_reference,
                                        combine_compare, up_op_expected_free, moe_destroy, combine_work};
