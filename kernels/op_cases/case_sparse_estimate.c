/* case_sparse_estimate.c — the drivers of the sparse baselines' estimation kernels
 * (kernels/sparse_attention_ops.h, reached through method_kernel): the backend under
 * test writes a pattern for the batch's sparse sequences (candidate[] set, prior 0) and
 * the CPU backend's estimator writes one from the same inputs; the two are compared
 * list row by list row as sets (the contract leaves the order inside a row free), and
 * the covered pairs the two return must agree. The error is the share of list rows
 * whose key sets differ: peaked inputs keep the reference's choices away from ties, and
 * the case's tolerance allows the few rows where a score within an ulp of a bf16
 * rounding boundary flips a choice (the GPU sums its dots in fp32, the reference in
 * float64). The totals the estimator reports (n_ranges, n_columns) must be its lists'.
 * Owns no kernel and no list of cases. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "kernels/op_cases/op_check.h"
#include "kernels/op_cases/paged_batch.h"
#include "kernels/sparse_attention_ops.h"

/* A pattern's buffers on one backend, with capacities for the method's worst case. */
typedef struct pattern_buffers {
  int32_t *qblock_start_host;
  up_sparse_pattern pattern;
} pattern_buffers;

typedef struct estimate_inputs {
  up_op_paged_batch pb;
  pattern_buffers buffers;
  double pairs; /* the last run's return */
} estimate_inputs;

typedef struct estimate_reference {
  int64_t n_rows;
  int32_t *range_ptr, *range_start, *column_ptr, *column_index;
  double pairs;
} estimate_reference;

/* One call of a driver's estimator on be. */
typedef double (*estimate_call)(up_backend *be, const up_op_case *c, up_sparse_pattern *pattern, const void *qkv,
                                const up_kv_pool *pool, const up_attn_batch *batch);

/* The case's density cap; a case that sets none (0) has none. */
static float case_cap(const up_op_case *c) {
  const float density = c->batch.sparse.density;
  return density > 0.0f && density < 1.0f ? density : 1.0f;
}

static double call_xattention(up_backend *be, const up_op_case *c, up_sparse_pattern *pattern, const void *qkv,
                              const up_kv_pool *pool, const up_attn_batch *batch) {
  const up_xattention_estimate_fn kernel = up_xattention_estimate_kernel(be);
  if (!kernel)
    UP_FATAL("%s: the %s backend has no %s kernel", c->label, be->ops->name, UP_XATTENTION_ESTIMATE_KERNEL);
  const up_xattention_params params = {.stride = c->batch.sparse.stride, .threshold = c->batch.sparse.threshold,
                                       .threshold_host = NULL, .density_cap = case_cap(c)};
  return kernel(be, pattern, qkv, pool, batch, &c->batch.shape, &params);
}

/* v and s the same for every head (the case's), the authors' forced counts. */
static double call_minference(up_backend *be, const up_op_case *c, up_sparse_pattern *pattern, const void *qkv,
                              const up_kv_pool *pool, const up_attn_batch *batch) {
  const up_minference_estimate_fn kernel = up_minference_estimate_kernel(be);
  if (!kernel)
    UP_FATAL("%s: the %s backend has no %s kernel", c->label, be->ops->name, UP_MINFERENCE_ESTIMATE_KERNEL);
  int32_t *vertical = up_malloc_or_die(sizeof(int32_t) * (size_t)c->batch.shape.n_heads, "vertical sizes");
  int32_t *slash = up_malloc_or_die(sizeof(int32_t) * (size_t)c->batch.shape.n_heads, "slash sizes");
  for (int32_t h = 0; h < c->batch.shape.n_heads; ++h) vertical[h] = c->batch.sparse.vertical, slash[h] = c->batch.sparse.slash;
  const up_minference_params params = {.last_q = 64, .forced_columns = 30, .forced_diagonals = 100,
                                       .vertical_host = vertical, .slash_host = slash,
                                       .density_cap = case_cap(c)};
  const double pairs = kernel(be, pattern, qkv, pool, batch, &c->batch.shape, &params);
  free(vertical);
  free(slash);
  return pairs;
}

/* gamma, tau and min_budget the case's, no max budget, the authors' 128-blocks. */
static double call_flexprefill(up_backend *be, const up_op_case *c, up_sparse_pattern *pattern, const void *qkv,
                               const up_kv_pool *pool, const up_attn_batch *batch) {
  const up_flexprefill_estimate_fn kernel = up_flexprefill_estimate_kernel(be);
  if (!kernel)
    UP_FATAL("%s: the %s backend has no %s kernel", c->label, be->ops->name, UP_FLEXPREFILL_ESTIMATE_KERNEL);
  const up_flexprefill_params params = {.gamma = c->batch.sparse.gamma, .tau = c->batch.sparse.tau,
                                        .min_budget = c->batch.sparse.min_budget, .max_budget = 0,
                                        .block = c->batch.sparse.block_q, .density_cap = case_cap(c)};
  return kernel(be, pattern, qkv, pool, batch, &c->batch.shape, &params);
}

static estimate_call call_of(const up_op_case *c) {
  if (c->driver == &up_op_xattention_estimate) return call_xattention;
  if (c->driver == &up_op_flexprefill_estimate) return call_flexprefill;
  if (c->driver == &up_op_minference_estimate) return call_minference;
  UP_FATAL("%s: no sparse estimator behind this driver", c->label);
}

/* A uniform batch (rows_each, the --kernels cases) has every sequence a candidate. */
static bool is_sparse(const up_op_batch_dims *d, int32_t s) {
  return (!d->per_sequence || d->candidate[s]) && up_op_batch_prior(d, s) == 0 && up_op_batch_rows(d, s) > 0;
}

/* Buffers on be (host memory for the CPU backend) sized as the methods size them:
 * every causal block plus two per query block, and for MInference an extra key per
 * chosen column (at most max(v, 30) of them per list row). */
static void buffers_make(up_backend *be, const up_op_batch_dims *d, pattern_buffers *b) {
  const int32_t block = d->sparse.block_q;
  b->qblock_start_host = up_malloc_or_die(sizeof(int32_t) * (size_t)(d->n_seqs + 1), "query-block starts");
  b->qblock_start_host[0] = 0;
  int64_t ranges = 0;
  for (int32_t s = 0; s < d->n_seqs; ++s) {
    const int32_t n = up_op_batch_rows(d, s), nq = is_sparse(d, s) ? (n + block - 1) / block : 0;
    b->qblock_start_host[s + 1] = b->qblock_start_host[s] + nq;
    ranges += ((int64_t)nq * (nq + 1) / 2 + 2 * (int64_t)nq) * d->shape.n_heads;
  }
  const int64_t rows = (int64_t)b->qblock_start_host[d->n_seqs] * d->shape.n_heads;
  const int64_t columns = d->sparse.vertical > 0 ? rows * (d->sparse.vertical > 30 ? d->sparse.vertical : 30) : 0;
  b->pattern = (up_sparse_pattern){
      .n_seqs = d->n_seqs, .n_heads = d->shape.n_heads, .block_q = block, .block_k = d->sparse.block_k,
      .qblock_start_host = b->qblock_start_host,
      .qblock_start = up_op_upload_i32(be, b->qblock_start_host, (size_t)d->n_seqs + 1, "query-block starts"),
      .range_ptr = be->ops->alloc(be, sizeof(int32_t) * (size_t)(rows + 1), "range offsets"),
      .range_start = be->ops->alloc(be, sizeof(int32_t) * (size_t)(ranges ? ranges : 1), "key ranges"),
      .column_ptr = be->ops->alloc(be, sizeof(int32_t) * (size_t)(rows + 1), "extra-key offsets"),
      .column_index = columns ? be->ops->alloc(be, sizeof(int32_t) * (size_t)columns, "extra keys") : NULL,
      .range_capacity = ranges, .column_capacity = columns};
}

static void buffers_free(up_backend *be, pattern_buffers *b) {
  be->ops->free(be, (void *)b->pattern.qblock_start);
  be->ops->free(be, b->pattern.range_ptr);
  be->ops->free(be, b->pattern.range_start);
  be->ops->free(be, b->pattern.column_ptr);
  if (b->pattern.column_index) be->ops->free(be, b->pattern.column_index);
  free(b->qblock_start_host);
}

static void *estimate_make(up_backend *be, const up_op_case *c, uint64_t seed) {
  estimate_inputs *in = up_calloc_or_die(1, sizeof *in, "sparse estimate case");
  up_op_paged_batch_make(be, &c->batch, seed, &in->pb);
  buffers_make(be, &c->batch, &in->buffers);
  return in;
}

static int64_t estimate_run(up_backend *be, const up_op_case *c, void *inputs) {
  estimate_inputs *in = inputs;
  in->pairs = call_of(c)(be, c, &in->buffers.pattern, in->pb.qkv, &in->pb.pool, &in->pb.batch);
  return 0;
}

static void *estimate_reference_of(up_backend *be, const up_op_case *c, void *inputs, up_backend *ref) {
  estimate_inputs *in = inputs;
  const up_op_paged_batch *pb = &in->pb;
  int32_t *all = up_malloc_or_die(sizeof(int32_t) * (size_t)(pb->n_seqs + 1), "every sequence");
  for (int32_t s = 0; s < pb->n_seqs; ++s) all[s] = s;
  up_op_host_batch hb;
  up_op_host_batch_of_sequences(be, pb, all, pb->n_seqs, &hb);
  free(all);
  pattern_buffers b;
  buffers_make(ref, &c->batch, &b);
  estimate_reference *r = up_calloc_or_die(1, sizeof *r, "sparse estimate reference");
  r->pairs = call_of(c)(ref, c, &b.pattern, hb.qkv, &hb.pool, &hb.batch);
  r->n_rows = up_sparse_pattern_list_rows(&b.pattern);
  /* keep the lists (CPU backend memory is host memory) */
  r->range_ptr = up_malloc_or_die(sizeof(int32_t) * (size_t)(r->n_rows + 1), "reference range offsets");
  memcpy(r->range_ptr, b.pattern.range_ptr, sizeof(int32_t) * (size_t)(r->n_rows + 1));
  r->column_ptr = up_malloc_or_die(sizeof(int32_t) * (size_t)(r->n_rows + 1), "reference extra-key offsets");
  memcpy(r->column_ptr, b.pattern.column_ptr, sizeof(int32_t) * (size_t)(r->n_rows + 1));
  const int32_t nr = r->range_ptr[r->n_rows], nc = r->column_ptr[r->n_rows];
  r->range_start = up_malloc_or_die(sizeof(int32_t) * (size_t)(nr + 1), "reference ranges");
  memcpy(r->range_start, b.pattern.range_start, sizeof(int32_t) * (size_t)nr);
  r->column_index = up_malloc_or_die(sizeof(int32_t) * (size_t)(nc + 1), "reference extra keys");
  if (nc) memcpy(r->column_index, b.pattern.column_index, sizeof(int32_t) * (size_t)nc);
  buffers_free(ref, &b);
  up_op_host_batch_free(&hb);
  return r;
}

static int cmp_i32(const void *a, const void *b) {
  const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

/* Whether the entries [a0, a1) of a and [b0, b1) of b hold the same set (sorts both in place). */
static bool same_set(int32_t *a, int32_t a0, int32_t a1, int32_t *b, int32_t b0, int32_t b1) {
  if (a1 - a0 != b1 - b0) return false;
  qsort(a + a0, (size_t)(a1 - a0), sizeof *a, cmp_i32);
  qsort(b + b0, (size_t)(b1 - b0), sizeof *b, cmp_i32);
  return memcmp(a + a0, b + b0, sizeof *a * (size_t)(a1 - a0)) == 0;
}

static void estimate_compare(up_backend *be, const up_op_case *c, void *inputs, const void *reference,
                             up_op_check *check) {
  estimate_inputs *in = inputs;
  const estimate_reference *r = reference;
  const up_sparse_pattern *p = &in->buffers.pattern;
  int32_t *range_ptr = up_op_download_i32(be, p->range_ptr, (size_t)(r->n_rows + 1), "range offsets");
  int32_t *column_ptr = up_op_download_i32(be, p->column_ptr, (size_t)(r->n_rows + 1), "extra-key offsets");
  int64_t differing = 0, broken = 0;
  /* the totals the estimator reports on the host (the speed model's tiles) are the lists' */
  if (range_ptr[0] != 0 || column_ptr[0] != 0 || p->n_ranges != range_ptr[r->n_rows] ||
      p->n_columns != column_ptr[r->n_rows])
    broken = 1;
  for (int64_t i = 0; i < r->n_rows && !broken; ++i)
    if (range_ptr[i + 1] < range_ptr[i] || range_ptr[i + 1] > p->range_capacity || column_ptr[i + 1] < column_ptr[i] ||
        column_ptr[i + 1] > p->column_capacity)
      broken = 1;
  if (!broken) {
    int32_t *ranges = up_op_download_i32(be, p->range_start, (size_t)range_ptr[r->n_rows], "key ranges");
    int32_t *columns = column_ptr[r->n_rows]
                           ? up_op_download_i32(be, p->column_index, (size_t)column_ptr[r->n_rows], "extra keys")
                           : up_malloc_or_die(sizeof(int32_t), "no extra keys");
    int32_t *ref_ranges = up_malloc_or_die(sizeof(int32_t) * (size_t)(r->range_ptr[r->n_rows] + 1), "ranges copy");
    memcpy(ref_ranges, r->range_start, sizeof(int32_t) * (size_t)r->range_ptr[r->n_rows]);
    int32_t *ref_columns = up_malloc_or_die(sizeof(int32_t) * (size_t)(r->column_ptr[r->n_rows] + 1), "keys copy");
    memcpy(ref_columns, r->column_index, sizeof(int32_t) * (size_t)r->column_ptr[r->n_rows]);
    for (int64_t i = 0; i < r->n_rows; ++i)
      differing += !same_set(ranges, range_ptr[i], range_ptr[i + 1], ref_ranges, r->range_ptr[i], r->range_ptr[i + 1]) ||
                   !same_set(columns, column_ptr[i], column_ptr[i + 1], ref_columns, r->column_ptr[i],
                             r->column_ptr[i + 1]);
    free(ranges);
    free(columns);
    free(ref_ranges);
    free(ref_columns);
  }
  free(range_ptr);
  free(column_ptr);
  const bool pairs_agree = fabs(in->pairs - r->pairs) <= 1e-9 * fabs(r->pairs);
  check->error = broken ? INFINITY : r->n_rows ? (double)differing / (double)r->n_rows : 0.0;
  if (!broken && differing == 0 && !pairs_agree) check->error = INFINITY;
  snprintf(check->detail, sizeof check->detail,
           "%d seqs, %lld list rows (%lld differ), %d/%d heads x %d, pairs %.6g (reference %.6g)%s",
           (int)in->pb.n_seqs, (long long)r->n_rows, (long long)differing, (int)c->batch.shape.n_heads,
           (int)c->batch.shape.n_kv_heads, (int)c->batch.shape.head_dim, in->pairs, r->pairs,
           broken ? ", lists not a valid CSR of the totals" : "");
}

static void estimate_free_reference(void *reference) {
  estimate_reference *r = reference;
  free(r->range_ptr);
  free(r->range_start);
  free(r->column_ptr);
  free(r->column_index);
  free(r);
}

static void estimate_destroy(up_backend *be, void *inputs) {
  estimate_inputs *in = inputs;
  buffers_free(be, &in->buffers);
  up_op_paged_batch_free(be, &in->pb);
  free(in);
}

/* XAttention's reference: the reshaped scores, n^2 d / (2 S) multiply-adds per head. */
static double xattention_work(const up_op_case *c) {
  const up_op_batch_dims *d = &c->batch;
  double work = 0.0;
  for (int32_t s = 0; s < d->n_seqs; ++s)
    if (is_sparse(d, s)) {
      const double n = up_op_batch_rows(d, s);
      work += n * n * d->shape.head_dim / (2.0 * (d->sparse.stride > 0 ? d->sparse.stride : 1));
    }
  return work * d->shape.n_heads;
}

/* MInference's reference: the last 64 queries against every key, per head. */
static double minference_work(const up_op_case *c) {
  const up_op_batch_dims *d = &c->batch;
  double work = 0.0;
  for (int32_t s = 0; s < d->n_seqs; ++s)
    if (is_sparse(d, s)) work += 64.0 * up_op_batch_rows(d, s) * d->shape.head_dim;
  return work * d->shape.n_heads;
}

/* FlexPrefill's reference: the last block's queries against every key, and for
 * query-aware heads the pooled block attention, per head. */
static double flexprefill_work(const up_op_case *c) {
  const up_op_batch_dims *d = &c->batch;
  double work = 0.0;
  for (int32_t s = 0; s < d->n_seqs; ++s)
    if (is_sparse(d, s)) {
      const double n = up_op_batch_rows(d, s), nb = ceil(n / d->sparse.block_q);
      work += (d->sparse.block_q * n + nb * nb) * d->shape.head_dim;
    }
  return work * d->shape.n_heads;
}

const up_op_driver up_op_flexprefill_estimate = {{"method_kernel"},   estimate_make,   estimate_run,
                                                 estimate_reference_of, estimate_compare, estimate_free_reference,
                                                 estimate_destroy,  flexprefill_work};

const up_op_driver up_op_minference_estimate = {{"method_kernel"},   estimate_make,   estimate_run,
                                                estimate_reference_of, estimate_compare, estimate_free_reference,
                                                estimate_destroy,  minference_work};

const up_op_driver up_op_xattention_estimate = {{"method_kernel"},   estimate_make,   estimate_run,
                                                estimate_reference_of, estimate_compare, estimate_free_reference,
                                                estimate_destroy,  xattention_work};
