/* sparse_minference.c — the CPU reference of MInference's vertical-slash estimation
 * (kernels/sparse_attention_ops.h, ../shared/BASELINES.md 1.3-1.4): scores of the
 * last queries with the authors' bf16 roundings, forced columns and diagonals, top
 * columns and diagonals per head, and the conversion into unaligned 64-wide key ranges
 * plus extra keys, walked the way convert_vertical_slash_indexes walks them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "kernels/cpu/sparse_ops.h"

enum { MINFERENCE_BLOCK = 64, MINFERENCE_MIN_VERTICAL = 30, MINFERENCE_MIN_SLASH = 50 };

static int ascending(const void *a, const void *b) {
  const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

static int descending(const void *a, const void *b) { return ascending(b, a); }

/* The indices of the k highest of scores[0..n) into out. */
static void top_k(const double *scores, int32_t n, int32_t k, int32_t *out) {
  up_sparse_ranked *r = up_sparse_rank(scores, n);
  for (int32_t i = 0; i < k; ++i) out[i] = r[i].index;
  free(r);
}

void up_minference_head_select(const float *q, const float *k, int32_t n, int32_t d, int32_t last_q,
                               int32_t forced_columns, int32_t forced_diagonals, int32_t v, int32_t s,
                               int32_t *columns, int32_t *n_columns, int32_t *offsets, int32_t *n_offsets) {
  const int32_t lq = last_q < n ? last_q : n;
  const int32_t nv = v < MINFERENCE_MIN_VERTICAL ? (MINFERENCE_MIN_VERTICAL < n ? MINFERENCE_MIN_VERTICAL : n)
                                                  : (v < n ? v : n);
  const int32_t ns = s < MINFERENCE_MIN_SLASH ? (MINFERENCE_MIN_SLASH < n ? MINFERENCE_MIN_SLASH : n) : (s < n ? s : n);
  const float inv_sqrt_d = 1.0f / sqrtf((float)d);
  double *vertical = up_calloc_or_die((size_t)n, sizeof(double), "minference vertical scores");
  double *slash = up_calloc_or_die((size_t)n, sizeof(double), "minference slash scores");
  double *row = up_malloc_or_die(sizeof(double) * (size_t)n, "minference scores row");
  for (int32_t r = 0; r < lq; ++r) {
    const int32_t i = n - lq + r; /* the query's position: keys after it are masked */
    const float *qi = q + (int64_t)i * d;
    double max = -INFINITY;
    for (int32_t j = 0; j <= i; ++j) {
      double dot = 0.0;
      for (int32_t c = 0; c < d; ++c) dot += (double)qi[c] * (double)k[(int64_t)j * d + c];
      const float logit = up_sparse_round_bf16(up_sparse_round_bf16((float)dot) * inv_sqrt_d);
      row[j] = logit;
      if (row[j] > max) max = row[j];
    }
    double sum = 0.0;
    for (int32_t j = 0; j <= i; ++j) sum += exp(row[j] - max);
    for (int32_t j = 0; j <= i; ++j) {
      const double p = (double)(float)(exp(row[j] - max) / sum); /* fp32 probabilities */
      vertical[j] += p;
      slash[i - j] += p;
    }
  }
  for (int32_t j = 0; j < forced_columns && j < n; ++j) vertical[j] = INFINITY;
  for (int32_t o = 0; o < forced_diagonals && o < n; ++o) slash[o] = INFINITY;
  top_k(vertical, n, nv, columns);
  top_k(slash, n, ns, offsets);
  qsort(columns, (size_t)nv, sizeof(int32_t), ascending);
  qsort(offsets, (size_t)ns, sizeof(int32_t), descending);
  *n_columns = nv;
  *n_offsets = ns;
  free(vertical);
  free(slash);
  free(row);
}

/* Stage the ranges [start, end) as 64-wide blocks from start. */
static void save_ranges(up_sparse_rows *rows, int32_t qblock, int32_t head, int32_t start, int32_t end) {
  for (int32_t a = start; a < end; a += MINFERENCE_BLOCK) up_sparse_rows_add_range(rows, qblock, head, a);
}

void up_minference_convert(up_sparse_rows *rows, int32_t head, int32_t n, const int32_t *columns, int32_t n_columns,
                           const int32_t *offsets, int32_t n_offsets) {
  const int32_t B = MINFERENCE_BLOCK;
  for (int32_t b = 0; b * B < n; ++b) {
    const int32_t end_m = b * B + B; /* not clipped to n, as the authors' walk */
    int32_t vi = 0, si = 0;
    /* The column under consideration; past the last one, a key no range reaches. */
    int32_t col = vi < n_columns ? columns[vi++] : end_m + B;
    int32_t off = si < n_offsets ? offsets[si++] : -1;
    while (off >= end_m && si < n_offsets) off = offsets[si++];
    /* An offset is a diagonal; in this row block it covers the 64 keys ending at end. */
    int32_t end = off >= end_m ? end_m + B : (end_m - off > B ? end_m - off : B);
    int32_t range_start = end - B, range_end = end;
    for (;;) {
      if (col < range_end) {
        if (col < range_start) up_sparse_rows_add_column(rows, b, head, col);
        col = vi < n_columns ? columns[vi++] : end_m + B;
        continue;
      }
      if (si >= n_offsets) {
        save_ranges(rows, b, head, range_start, range_end);
        break;
      }
      const int32_t o = offsets[si++];
      end = end_m - o > B ? end_m - o : B;
      if (end > range_end + B) {
        save_ranges(rows, b, head, range_start, range_end);
        range_start = end - B;
        range_end = end;
      } else if (end > range_end) {
        range_end += B;
      }
    }
  }
}

typedef struct minference_ctx {
  const up_minference_params *params;
  int32_t *columns, *offsets;
  int32_t cap_size;
} minference_ctx;

static void minference_begin(void *ctx, int32_t n, int32_t nq) {
  minference_ctx *m = ctx;
  (void)nq;
  m->columns = up_malloc_or_die(sizeof(int32_t) * (size_t)n, "minference columns");
  m->offsets = up_malloc_or_die(sizeof(int32_t) * (size_t)n, "minference offsets");
  /* A density cap scales the fixed budgets down, never below the forced entries. */
  m->cap_size = m->params->density_cap < 1.0f ? (int32_t)floor((double)m->params->density_cap * n) : n;
}

static void minference_head(void *ctx, const up_sparse_head_input *in, up_sparse_rows *rows) {
  minference_ctx *m = ctx;
  const up_minference_params *params = m->params;
  int32_t v = params->vertical_host[in->head], sl = params->slash_host[in->head];
  if (v > m->cap_size) v = m->cap_size > params->forced_columns ? m->cap_size : params->forced_columns;
  if (sl > m->cap_size) sl = m->cap_size > params->forced_diagonals ? m->cap_size : params->forced_diagonals;
  int32_t n_columns = 0, n_offsets = 0;
  up_minference_head_select(in->q, in->k, in->n, in->head_dim, params->last_q, params->forced_columns,
                            params->forced_diagonals, v, sl, m->columns, &n_columns, m->offsets, &n_offsets);
  up_minference_convert(rows, in->head, in->n, m->columns, n_columns, m->offsets, n_offsets);
}

static void minference_end(void *ctx) {
  minference_ctx *m = ctx;
  free(m->columns);
  free(m->offsets);
}

double up_cpu_minference_estimate(up_backend *be, up_sparse_pattern *pattern, const void *qkv, const up_kv_pool *pool,
                                  const up_attn_batch *batch, const up_attn_shape *shape,
                                  const up_minference_params *params) {
  if (pattern->block_q != MINFERENCE_BLOCK || pattern->block_k != MINFERENCE_BLOCK)
    UP_FATAL("minference_estimate: the pattern's blocks are %d x %d, MInference's are 64 x 64", (int)pattern->block_q,
             (int)pattern->block_k);
  minference_ctx ctx = {.params = params};
  const up_sparse_estimator est = {.kernel = "minference_estimate", .block = MINFERENCE_BLOCK,
                                   .last_queries = params->last_q, .ctx = &ctx, .begin = minference_begin,
                                   .head = minference_head, .end = minference_end};
  return up_sparse_estimate_heads(&est, pattern, qkv, pool, batch, shape);
}
