/* sparse_block_cap.cuh — the density cap of the block methods (XAttention, FlexPrefill)
 * on the GPU, and the (list row, key block) masks it works on: the CUDA side of the CPU's
 * up_sparse_block_cap (kernels/cpu/sparse_common.c), which it follows in its budget and
 * its selection order. Knows no method's selection rule: the method hands it its mask
 * and its block scores. Included by .cu files only (sparse_block_cap.cu). */
#ifndef UP_SPARSE_BLOCK_CAP_CUH
#define UP_SPARSE_BLOCK_CAP_CUH

#include <stdint.h>

#include "kernels/cuda/sparse/sparse_estimate_common.cuh"

/* A block method's mask: mask[r * max_nq + kb] = 1 when list row r (query block b)
 * keeps key block kb <= b. Scores have the same layout (entries kb <= b read). */

/* The cap (sparse_attention_ops.h): per (sequence, head) with nq query blocks, of the
 * kept blocks with 1 <= kb < b the budget = floor(cap * nq (nq + 1) / 2 + 1e-6) - forced
 * (forced: 2 nq - 1, or 1 for one block) highest by score stay, ties to the lower
 * (b, kb); the others are cleared. Exactly one of score_f / score_d is given (float
 * scores are widened to double, as the CPU holds them). cap >= 1 does nothing. */
void up_cuda_sparse_block_cap(up_sparse_scratch *sc, const up_sparse_pattern *pattern, const up_attn_batch *batch,
                              uint8_t *mask, int32_t max_nq, const float *score_f, const double *score_d, float cap);

/* mask (zeroed first) from per-row lists kept[r * kept_stride + i], i < counts[r]. */
void up_cuda_sparse_mask_from_lists(up_sparse_scratch *sc, int64_t n_rows, uint8_t *mask, int32_t max_nq,
                                    const int32_t *counts, const int32_t *kept, int32_t kept_stride);

/* The lists back from the mask: counts[r] and kept[r * kept_stride ..] (key blocks
 * ascending), and *pairs (device) set to the causal query-key pairs they cover, summed
 * over heads; rows of a sequence of the wrong shape get no blocks. */
void up_cuda_sparse_lists_from_mask(up_sparse_scratch *sc, const up_sparse_pattern *pattern,
                                    const up_attn_batch *batch, const uint8_t *mask, int32_t max_nq, int32_t block,
                                    int32_t *counts, int32_t *kept, int32_t kept_stride, double *pairs);

/* The cap on a method's lists (counts, kept as above): mask from them, capped with
 * float scores, lists and *pairs back. */
void up_cuda_sparse_cap_lists(up_sparse_scratch *sc, const up_sparse_pattern *pattern, const up_attn_batch *batch,
                              int32_t max_nq, int32_t block, const float *score, float cap, int32_t *counts,
                              int32_t *kept, int32_t kept_stride, double *pairs);

#endif
