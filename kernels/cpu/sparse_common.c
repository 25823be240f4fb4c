/* sparse_common.c — what the CPU estimators of the sparse baselines share: bf16
 * rounding (the authors' estimates run on bf16 tensors), per-head query and key
 * reads, staging a sequence's per (query block, head) key lists and writing them into
 * a pattern (kernels/sparse_attention_ops.h), the covered-pair count, the density
 * cap of the block methods, and the per (sequence, head) loop around a method's head
 * step. Knows no method's selection rule. */
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/sparse_ops.h"

int32_t up_sparse_sequence(const char *kernel, const up_sparse_pattern *pattern, const up_attn_batch *batch,
                           int32_t s, int32_t block, int32_t *first, int32_t *n) {
  const int32_t nq = pattern->qblock_start_host[s + 1] - pattern->qblock_start_host[s];
  *first = batch->cu_seqlens[s];
  *n = batch->cu_seqlens[s + 1] - *first;
  if (nq != 0 && (batch->kv_lens[s] != *n || nq != (*n + block - 1) / block))
    UP_FATAL("%s: sequence %d (%d rows, %d cached, %d query blocks) is not a whole-prompt prefill of the "
             "pattern's shape", kernel, (int)s, (int)*n, (int)batch->kv_lens[s], (int)nq);
  return nq;
}

float up_sparse_round_bf16(float x) {
  uint32_t bits;
  memcpy(&bits, &x, sizeof bits);
  if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu)) return x; /* NaN */
  bits += 0x7fffu + ((bits >> 16) & 1u);
  bits &= 0xffff0000u;
  float out;
  memcpy(&out, &bits, sizeof out);
  return out;
}

void up_sparse_head_queries(const float *q_rows, int32_t n, const up_attn_shape *shape, int32_t h, float *dst) {
  const int64_t stride = (int64_t)(shape->n_heads + 2 * shape->n_kv_heads) * shape->head_dim;
  for (int32_t t = 0; t < n; ++t)
    for (int32_t i = 0; i < shape->head_dim; ++i)
      dst[(int64_t)t * shape->head_dim + i] = up_sparse_round_bf16(q_rows[t * stride + (int64_t)h * shape->head_dim + i]);
}

void up_sparse_head_keys(const up_kv_pool *pool, const int32_t *block_table, int32_t n, int32_t g,
                         int32_t head_dim, float *dst) {
  up_cpu_kv_gather(pool, block_table, n, g, head_dim, 0, dst);
  for (int64_t i = 0; i < (int64_t)n * head_dim; ++i) dst[i] = up_sparse_round_bf16(dst[i]);
}

void up_sparse_rows_init(up_sparse_rows *rows, int32_t n_qblocks, int32_t n_heads) {
  const size_t n = (size_t)n_qblocks * (size_t)n_heads;
  rows->n_qblocks = n_qblocks;
  rows->n_heads = n_heads;
  rows->n_ranges = up_calloc_or_die(n ? n : 1, sizeof(int32_t), "sparse range counts");
  rows->n_columns = up_calloc_or_die(n ? n : 1, sizeof(int32_t), "sparse column counts");
  rows->range_cap = up_calloc_or_die(n ? n : 1, sizeof(int32_t), "sparse range capacities");
  rows->column_cap = up_calloc_or_die(n ? n : 1, sizeof(int32_t), "sparse column capacities");
  rows->ranges = up_calloc_or_die(n ? n : 1, sizeof(int32_t *), "sparse ranges");
  rows->columns = up_calloc_or_die(n ? n : 1, sizeof(int32_t *), "sparse columns");
}

void up_sparse_rows_free(up_sparse_rows *rows) {
  const size_t n = (size_t)rows->n_qblocks * (size_t)rows->n_heads;
  for (size_t i = 0; i < n; ++i) {
    free(rows->ranges[i]);
    free(rows->columns[i]);
  }
  free(rows->n_ranges);
  free(rows->n_columns);
  free(rows->range_cap);
  free(rows->column_cap);
  free(rows->ranges);
  free(rows->columns);
  memset(rows, 0, sizeof *rows);
}

static void push(int32_t **items, int32_t *count, int32_t *cap, int32_t value) {
  if (*count == *cap) {
    *cap = *cap ? 2 * *cap : 8;
    int32_t *grown = realloc(*items, sizeof(int32_t) * (size_t)*cap);
    if (!grown) UP_FATAL("out of memory growing a sparse key list to %d entries", (int)*cap);
    *items = grown;
  }
  (*items)[(*count)++] = value;
}

void up_sparse_rows_add_range(up_sparse_rows *rows, int32_t qblock, int32_t head, int32_t start) {
  const int32_t lr = qblock * rows->n_heads + head;
  push(&rows->ranges[lr], &rows->n_ranges[lr], &rows->range_cap[lr], start);
}

void up_sparse_rows_add_column(up_sparse_rows *rows, int32_t qblock, int32_t head, int32_t key) {
  const int32_t lr = qblock * rows->n_heads + head;
  push(&rows->columns[lr], &rows->n_columns[lr], &rows->column_cap[lr], key);
}

/* Rows t in [m0, m1) see keys j <= t of [a, e): sum of max(0, min(t, e-1) - a + 1). */
static double range_pairs(int64_t a, int64_t e, int64_t m0, int64_t m1) {
  double pairs = 0.0;
  for (int64_t t = m0 > a ? m0 : a; t < m1; ++t) pairs += (double)((t < e - 1 ? t : e - 1) - a + 1);
  return pairs;
}

double up_sparse_rows_pairs(const up_sparse_rows *rows, int32_t n, int32_t block_q, int32_t block_k) {
  double pairs = 0.0;
  for (int32_t b = 0; b < rows->n_qblocks; ++b) {
    const int64_t m0 = (int64_t)b * block_q, m1 = m0 + block_q < n ? m0 + block_q : n;
    for (int32_t h = 0; h < rows->n_heads; ++h) {
      const int32_t lr = b * rows->n_heads + h;
      for (int32_t i = 0; i < rows->n_ranges[lr]; ++i) {
        const int64_t a = rows->ranges[lr][i], e = a + block_k < n ? a + block_k : n;
        if (a < e) pairs += range_pairs(a, e, m0, m1);
      }
      for (int32_t i = 0; i < rows->n_columns[lr]; ++i) {
        const int64_t j = rows->columns[lr][i];
        pairs += (double)(m1 - (j > m0 ? j : m0) > 0 ? m1 - (j > m0 ? j : m0) : 0);
      }
    }
  }
  return pairs;
}

void up_sparse_rows_write(const up_sparse_rows *rows, up_sparse_pattern *pattern, int32_t s, int64_t *next_range,
                          int64_t *next_column) {
  const int32_t first = pattern->qblock_start_host[s];
  if (pattern->qblock_start_host[s + 1] - first != rows->n_qblocks || rows->n_heads != pattern->n_heads)
    UP_FATAL("sparse pattern: sequence %d has %d query blocks x %d heads, its lists %d x %d", (int)s,
             (int)(pattern->qblock_start_host[s + 1] - first), (int)pattern->n_heads, (int)rows->n_qblocks,
             (int)rows->n_heads);
  for (int32_t b = 0; b < rows->n_qblocks; ++b)
    for (int32_t h = 0; h < rows->n_heads; ++h) {
      const int32_t lr = b * rows->n_heads + h;
      const int64_t r = (int64_t)(first + b) * pattern->n_heads + h;
      if (*next_range + rows->n_ranges[lr] > pattern->range_capacity ||
          *next_column + rows->n_columns[lr] > pattern->column_capacity)
        UP_FATAL("sparse pattern: sequence %d overflows the lists' capacity (%lld ranges, %lld columns)", (int)s,
                 (long long)pattern->range_capacity, (long long)pattern->column_capacity);
      pattern->range_ptr[r] = (int32_t)*next_range;
      pattern->column_ptr[r] = (int32_t)*next_column;
      if (rows->n_ranges[lr])
        memcpy(pattern->range_start + *next_range, rows->ranges[lr], sizeof(int32_t) * (size_t)rows->n_ranges[lr]);
      if (rows->n_columns[lr])
        memcpy(pattern->column_index + *next_column, rows->columns[lr],
               sizeof(int32_t) * (size_t)rows->n_columns[lr]);
      *next_range += rows->n_ranges[lr];
      *next_column += rows->n_columns[lr];
      pattern->range_ptr[r + 1] = (int32_t)*next_range;
      pattern->column_ptr[r + 1] = (int32_t)*next_column;
    }
}

static int compare_ranked(const void *a, const void *b) {
  const up_sparse_ranked *x = a, *y = b;
  if (x->score != y->score) return x->score > y->score ? -1 : 1;
  return (x->index > y->index) - (x->index < y->index);
}

up_sparse_ranked *up_sparse_rank(const double *scores, int32_t n) {
  up_sparse_ranked *r = up_malloc_or_die(sizeof(up_sparse_ranked) * (size_t)(n > 0 ? n : 1), "sparse ranking");
  for (int32_t i = 0; i < n; ++i) r[i] = (up_sparse_ranked){scores[i], i};
  qsort(r, (size_t)(n > 0 ? n : 0), sizeof(up_sparse_ranked), compare_ranked);
  return r;
}

void up_sparse_block_cap(uint8_t *mask, const double *score, int32_t nq, float cap) {
  if (cap >= 1.0f) return;
  const int64_t causal = (int64_t)nq * (nq + 1) / 2;
  const int64_t forced = nq > 1 ? 2 * (int64_t)nq - 1 : 1;
  /* the float cap times an integer: 0.3f * 10 must count as 3 */
  int64_t budget = (int64_t)((double)cap * (double)causal + 1e-6) - forced;
  up_sparse_ranked *others = up_malloc_or_die(sizeof(up_sparse_ranked) * (size_t)(causal ? causal : 1), "capped blocks");
  int64_t n_others = 0;
  for (int32_t qb = 0; qb < nq; ++qb)
    for (int32_t kb = 1; kb < qb; ++kb)
      if (mask[(int64_t)qb * nq + kb])
        others[n_others++] = (up_sparse_ranked){score[(int64_t)qb * nq + kb], qb * nq + kb};
  if (budget < 0) budget = 0;
  if (n_others > budget) {
    qsort(others, (size_t)n_others, sizeof(up_sparse_ranked), compare_ranked);
    for (int64_t i = budget; i < n_others; ++i) mask[others[i].index] = 0;
  }
  free(others);
}

void up_sparse_rows_from_mask(up_sparse_rows *rows, int32_t head, const uint8_t *mask, int32_t nq, int32_t block_k) {
  for (int32_t qb = 0; qb < nq; ++qb)
    for (int32_t kb = 0; kb <= qb; ++kb)
      if (mask[(int64_t)qb * nq + kb]) up_sparse_rows_add_range(rows, qb, head, kb * block_k);
}

double up_sparse_estimate_heads(const up_sparse_estimator *est, up_sparse_pattern *pattern, const void *qkv,
                                const up_kv_pool *pool, const up_attn_batch *batch, const up_attn_shape *shape) {
  const int32_t hd = shape->head_dim, group = shape->n_heads / shape->n_kv_heads;
  const int64_t row_stride = (int64_t)(shape->n_heads + 2 * shape->n_kv_heads) * hd;
  int64_t next_range = 0, next_column = 0;
  double pairs = 0.0;
  pattern->range_ptr[0] = pattern->column_ptr[0] = 0;
  for (int32_t s = 0; s < batch->n_seqs; ++s) {
    int32_t first, n;
    const int32_t nq = up_sparse_sequence(est->kernel, pattern, batch, s, est->block, &first, &n);
    if (nq == 0) continue;
    float *q = up_malloc_or_die(sizeof(float) * (size_t)n * (size_t)hd, "sparse estimate queries");
    float *k = up_malloc_or_die(sizeof(float) * (size_t)n * (size_t)hd, "sparse estimate keys");
    const int32_t lq = est->last_queries > 0 && est->last_queries < n ? est->last_queries : n;
    if (est->begin) est->begin(est->ctx, n, nq);
    up_sparse_rows rows;
    up_sparse_rows_init(&rows, nq, shape->n_heads);
    for (int32_t g = 0; g < shape->n_kv_heads; ++g) {
      up_sparse_head_keys(pool, batch->block_tables + (int64_t)s * batch->max_blocks_per_seq, n, g, hd, k);
      for (int32_t h = g * group; h < (g + 1) * group; ++h) {
        up_sparse_head_queries((const float *)qkv + (int64_t)(first + n - lq) * row_stride, lq, shape, h,
                               q + (int64_t)(n - lq) * hd);
        const up_sparse_head_input in = {.n = n, .nq = nq, .head = h, .head_dim = hd, .q = q, .k = k};
        est->head(est->ctx, &in, &rows);
      }
    }
    pairs += up_sparse_rows_pairs(&rows, n, est->block, est->block);
    up_sparse_rows_write(&rows, pattern, s, &next_range, &next_column);
    up_sparse_rows_free(&rows);
    if (est->end) est->end(est->ctx);
    free(q);
    free(k);
  }
  pattern->n_ranges = next_range;
  pattern->n_columns = next_column;
  return pairs;
}
