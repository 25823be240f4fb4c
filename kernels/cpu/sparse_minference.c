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

double up_cpu_minference_estimate(up_backend *be, up_sparse_pattern *pattern, const void *qkv, const up_kv_pool *pool,
                                  const up_attn_batch *batch, const up_attn_shape *shape,
                                  const up_minference_params *params) {
  if (pattern->block_q != MINFERENCE_BLOCK || pattern->block_k != MINFERENCE_BLOCK)
    UP_FATAL("minference_estimate: the pattern's blocks are %d x %d, MInference's are 64 x 64", (int)pattern->block_q,
             (int)pattern->block_k);
  const int32_t hd = shape->head_dim, group = shape->n_heads / shape->n_kv_heads;
  const int64_t row_stride = (int64_t)(shape->n_heads + 2 * shape->n_kv_heads) * hd;
  int64_t next_range = 0, next_column = 0;
  double pairs = 0.0;
  pattern->range_ptr[0] = pattern->column_ptr[0] = 0;
  for (int32_t s = 0; s < batch->n_seqs; ++s) {
    int32_t first, n;
    const int32_t nq = up_sparse_sequence("minference_estimate", pattern, batch, s, MINFERENCE_BLOCK, &first, &n);
    if (nq == 0) continue;
    float *q = up_malloc_or_die(sizeof(float) * (size_t)n * (size_t)hd, "minference queries");
    float *k = up_malloc_or_die(sizeof(float) * (size_t)n * (size_t)hd, "minference keys");
    int32_t *columns = up_malloc_or_die(sizeof(int32_t) * (size_t)n, "minference columns");
    int32_t *offsets = up_malloc_or_die(sizeof(int32_t) * (size_t)n, "minference offsets");
    const int32_t lq = params->last_q < n ? params->last_q : n;
    /* A density cap scales the fixed budgets down, never below the forced entries. */
    const int32_t cap_size = params->density_cap < 1.0f ? (int32_t)floor((double)params->density_cap * n) : n;
    up_sparse_rows rows;
    up_sparse_rows_init(&rows, nq, shape->n_heads);
    for (int32_t g = 0; g < shape->n_kv_heads; ++g) {
      up_sparse_head_keys(pool, batch->block_tables + (int64_t)s * batch->max_blocks_per_seq, n, g, hd, k);
      for (int32_t h = g * group; h < (g + 1) * group; ++h) {
        up_sparse_head_queries((const float *)qkv + (first + n - lq) * row_stride, lq, shape, h,
                               q + (int64_t)(n - lq) * hd);
        int32_t v = params->vertical_host[h], sl = params->slash_host[h];
        if (v > cap_size) v = cap_size > params->forced_columns ? cap_size : params->forced_columns;
        if (sl > cap_size) sl = cap_size > params->forced_diagonals ? cap_size : params->forced_diagonals;
        int32_t n_columns = 0, n_offsets = 0;
        up_minference_head_select(q, k, n, hd, params->last_q, params->forced_columns, params->forced_diagonals, v, sl,
                                  columns, &n_columns, offsets, &n_offsets);
        up_minference_convert(&rows, h, n, columns, n_columns, offsets, n_offsets);
      }
    }
    pairs += up_sparse_rows_pairs(&rows, n, MINFERENCE_BLOCK, MINFERENCE_BLOCK);
    up_sparse_rows_write(&rows, pattern, s, &next_range, &next_column);
    up_sparse_rows_free(&rows);
    free(q);
    free(k);
    free(columns);
    free(offsets);
  }
  return pairs;
}
