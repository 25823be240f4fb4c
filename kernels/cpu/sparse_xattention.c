/* sparse_xattention.c — the CPU reference of XAttention's block selection
 * (kernels/sparse_attention_ops.h, ../shared/BASELINES.md 3.2, the Triton path):
 * strided antidiagonal scores of S x S token tiles stored as bf16, a softmax with
 * reshaped-level causality, 128 x 128 block sums stored as bf16, and per query block
 * the float64 threshold walk with key block 0 and the diagonal forced and the crossing
 * block kept. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "kernels/cpu/sparse_ops.h"

enum { XATTENTION_BLOCK = 128 };

void up_xattention_head_scores(const float *q, const float *k, int32_t n, int32_t d, int32_t stride, double *w) {
  const int32_t S = stride, nb = (n + XATTENTION_BLOCK - 1) / XATTENTION_BLOCK, per_block = XATTENTION_BLOCK / S;
  const int32_t n_r = (n + S - 1) / S; /* reshaped rows holding a real query; later ones are zeroed */
  const double scale = 1.0 / (sqrt((double)d) * S);
  double *row = up_malloc_or_die(sizeof(double) * (size_t)n_r, "xattention row");
  double *sums = up_calloc_or_die((size_t)nb * (size_t)nb, sizeof(double), "xattention block sums");
  for (int32_t r = 0; r < n_r; ++r) {
    double max = -INFINITY;
    for (int32_t c = 0; c <= r; ++c) {
      double dot = 0.0;
      for (int32_t i = 0; i < S; ++i) {
        const int32_t qi = r * S + S - 1 - i, kj = c * S + i; /* the tile's antidiagonal; tokens past n are zeros */
        if (qi >= n || kj >= n) continue;
        for (int32_t e = 0; e < d; ++e) dot += (double)q[(int64_t)qi * d + e] * (double)k[(int64_t)kj * d + e];
      }
      row[c] = (double)up_sparse_round_bf16((float)dot) * scale;
      if (row[c] > max) max = row[c];
    }
    double z = 0.0;
    for (int32_t c = 0; c <= r; ++c) z += exp(row[c] - max);
    for (int32_t c = 0; c <= r; ++c) sums[(int64_t)(r / per_block) * nb + c / per_block] += (float)(exp(row[c] - max) / z);
  }
  for (int64_t i = 0; i < (int64_t)nb * nb; ++i) w[i] = up_sparse_round_bf16((float)sums[i]);
  free(row);
  free(sums);
}

void up_xattention_head_mask(const double *w, int32_t nq, double threshold, uint8_t *mask) {
  double *others = up_malloc_or_die(sizeof(double) * (size_t)nq, "xattention others");
  memset(mask, 0, (size_t)nq * (size_t)nq);
  for (int32_t qb = 0; qb < nq; ++qb) {
    const double *wr = w + (int64_t)qb * nq;
    uint8_t *mr = mask + (int64_t)qb * nq;
    double total = 0.0;
    for (int32_t kb = 0; kb < nq; ++kb) total += wr[kb];
    mr[0] = mr[qb] = 1;
    double before = wr[0] + (qb > 0 ? wr[qb] : 0.0);
    /* the causal non-forced blocks 1..qb-1, ranked */
    const int32_t n_others = qb > 1 ? qb - 1 : 0;
    for (int32_t kb = 1; kb < qb; ++kb) others[kb - 1] = wr[kb];
    up_sparse_ranked *ranked = up_sparse_rank(others, n_others);
    const double required = total * threshold;
    for (int32_t i = 0; i < n_others && before < required; ++i) {
      mr[ranked[i].index + 1] = 1;
      before += ranked[i].score;
    }
    free(ranked);
  }
  free(others);
}

double up_cpu_xattention_estimate(up_backend *be, up_sparse_pattern *pattern, const void *qkv, const up_kv_pool *pool,
                                  const up_attn_batch *batch, const up_attn_shape *shape,
                                  const up_xattention_params *params) {
  const int32_t B = XATTENTION_BLOCK;
  if (pattern->block_q != B || pattern->block_k != B)
    UP_FATAL("xattention_estimate: the pattern's blocks are %d x %d, XAttention's 128 x 128", (int)pattern->block_q,
             (int)pattern->block_k);
  if (params->stride <= 0 || B % params->stride != 0)
    UP_FATAL("xattention_estimate: stride %d does not divide the block of %d", (int)params->stride, (int)B);
  const int32_t hd = shape->head_dim, group = shape->n_heads / shape->n_kv_heads;
  const int64_t row_stride = (int64_t)(shape->n_heads + 2 * shape->n_kv_heads) * hd;
  int64_t next_range = 0, next_column = 0;
  double pairs = 0.0;
  pattern->range_ptr[0] = pattern->column_ptr[0] = 0;
  for (int32_t s = 0; s < batch->n_seqs; ++s) {
    int32_t first, n;
    const int32_t nq = up_sparse_sequence("xattention_estimate", pattern, batch, s, B, &first, &n);
    if (nq == 0) continue;
    float *q = up_malloc_or_die(sizeof(float) * (size_t)n * (size_t)hd, "xattention queries");
    float *k = up_malloc_or_die(sizeof(float) * (size_t)n * (size_t)hd, "xattention keys");
    double *w = up_malloc_or_die(sizeof(double) * (size_t)nq * (size_t)nq, "xattention block scores");
    uint8_t *mask = up_malloc_or_die((size_t)nq * (size_t)nq, "xattention mask");
    up_sparse_rows rows;
    up_sparse_rows_init(&rows, nq, shape->n_heads);
    for (int32_t g = 0; g < shape->n_kv_heads; ++g) {
      up_sparse_head_keys(pool, batch->block_tables + (int64_t)s * batch->max_blocks_per_seq, n, g, hd, k);
      for (int32_t h = g * group; h < (g + 1) * group; ++h) {
        up_sparse_head_queries((const float *)qkv + first * row_stride, n, shape, h, q);
        up_xattention_head_scores(q, k, n, hd, params->stride, w);
        const double threshold = params->threshold_host ? params->threshold_host[h] : params->threshold;
        up_xattention_head_mask(w, nq, threshold, mask);
        up_sparse_block_cap(mask, w, nq, params->density_cap);
        up_sparse_rows_from_mask(&rows, h, mask, nq, B);
      }
    }
    pairs += up_sparse_rows_pairs(&rows, n, B, B);
    up_sparse_rows_write(&rows, pattern, s, &next_range, &next_column);
    up_sparse_rows_free(&rows);
    free(q);
    free(k);
    free(w);
    free(mask);
  }
  return pairs;
}
