/* sparse_xattention.c — the CPU reference of XAttention's block selection
 * (kernels/sparse_attention_ops.h, ../shared/BASELINES.md 3.2, the Triton path):
 * strided antidiagonal scores of S x S token tiles stored as bf16, a softmax with
 * reshaped-level causality, 128 x 128 block sums stored as bf16, and per query block
 * the float64 threshold walk with key block 0 and the diagonal forced and the crossing
 * block kept, and in the rows of the authors' first estimation chunk their code's
 * off-by-one walk (up_xattention_first_chunk_blocks). */
#include <math.h>
#include <stdbool.h>
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

void up_xattention_head_mask(const double *w, int32_t nq, double threshold, int32_t first_chunk_blocks,
                             uint8_t *mask) {
  double *others = up_malloc_or_die(sizeof(double) * (size_t)nq, "xattention others");
  memset(mask, 0, (size_t)nq * (size_t)nq);
  for (int32_t qb = 0; qb < nq; ++qb) {
    const double *wr = w + (int64_t)qb * nq;
    uint8_t *mr = mask + (int64_t)qb * nq;
    double total = 0.0;
    for (int32_t kb = 0; kb < nq; ++kb) total += wr[kb];
    mr[0] = mr[qb] = 1;
    /* BASELINES.md 3.2 (lines 221-225) forces key block 0 and the diagonal. In the
     * authors' first chunk the diagonal's identity overwrites block 0's forcing
     * (xattn/src/utils.py L99-106) while the running sum still reserves two forced
     * slots (L115-139): only the diagonal's mass comes first, block 0 is ranked with
     * the others, and each ranked block is weighed without the one ranked just before
     * it, so one block past the crossing one is kept; block 0 is kept all the same
     * (L142-145). */
    const bool first_chunk = qb > 0 && qb < first_chunk_blocks;
    const int32_t lo = first_chunk ? 0 : 1; /* the ranked causal blocks lo .. qb-1 */
    double before = wr[qb] + (first_chunk || qb == 0 ? 0.0 : wr[0]);
    const int32_t n_others = qb > lo ? qb - lo : 0;
    for (int32_t kb = lo; kb < qb; ++kb) others[kb - lo] = wr[kb];
    up_sparse_ranked *ranked = up_sparse_rank(others, n_others);
    const double required = total * threshold;
    int32_t kept = 0;
    while (kept < n_others && before < required) before += ranked[kept++].score;
    if (first_chunk && kept < n_others) ++kept;
    for (int32_t i = 0; i < kept; ++i) mr[ranked[i].index + lo] = 1;
    free(ranked);
  }
  free(others);
}

typedef struct xattention_ctx {
  const up_xattention_params *params;
  double *w;
  uint8_t *mask;
} xattention_ctx;

static void xattention_begin(void *ctx, int32_t n, int32_t nq) {
  xattention_ctx *x = ctx;
  (void)n;
  x->w = up_malloc_or_die(sizeof(double) * (size_t)nq * (size_t)nq, "xattention block scores");
  x->mask = up_malloc_or_die((size_t)nq * (size_t)nq, "xattention mask");
}

static void xattention_head(void *ctx, const up_sparse_head_input *in, up_sparse_rows *rows) {
  xattention_ctx *x = ctx;
  const up_xattention_params *params = x->params;
  up_xattention_head_scores(in->q, in->k, in->n, in->head_dim, params->stride, x->w);
  const double threshold = params->threshold_host ? params->threshold_host[in->head] : params->threshold;
  up_xattention_head_mask(x->w, in->nq, threshold, up_xattention_first_chunk_blocks(in->n), x->mask);
  up_sparse_block_cap(x->mask, x->w, in->nq, params->density_cap);
  up_sparse_rows_from_mask(rows, in->head, x->mask, in->nq, XATTENTION_BLOCK);
}

static void xattention_end(void *ctx) {
  xattention_ctx *x = ctx;
  free(x->w);
  free(x->mask);
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
  xattention_ctx ctx = {.params = params};
  const up_sparse_estimator est = {.kernel = "xattention_estimate", .block = B, .ctx = &ctx,
                                   .begin = xattention_begin, .head = xattention_head, .end = xattention_end};
  return up_sparse_estimate_heads(&est, pattern, qkv, pool, batch, shape);
}
