/* uniprefill_select.h — the CPU reference of UniPrefill's selection kernel
 * (kernels/uniprefill_ops.h), listed in the CPU backend's method-kernel table, and its
 * pieces, exposed so tests can check each against hand-worked examples and the CUDA
 * operator can be checked piece by piece: token scores, block choice (top-p or fixed
 * budget), and the token mask with sinks and last queries. */
#ifndef UP_UNIPREFILL_SELECT_H
#define UP_UNIPREFILL_SELECT_H

#include <stdint.h>

#include "kernels/ops.h"
#include "kernels/uniprefill_ops.h"

/* The selection kernel (an up_uniprefill_select_fn) on the CPU backend. */
int32_t up_cpu_uniprefill_select(up_backend *be, int32_t *keep_rows, int32_t *new_cu_seqlens_host,
                                 const void *qkv, const up_kv_pool *pool, const up_attn_batch *batch,
                                 const up_attn_shape *shape, const uint8_t *is_candidate_host,
                                 const up_select_params *params);

/* The per-head block scores kernel (an up_uniprefill_head_scores_fn) on the CPU backend. */
void up_cpu_uniprefill_head_scores(up_backend *be, float *head_scores, const void *qkv, const up_kv_pool *pool,
                                   const up_attn_batch *batch, const up_attn_shape *shape,
                                   const int32_t *block_offsets_host, const up_select_params *params);

/* s_j = sum over query heads h and the last min(last_q, n) rows i of
 * softmax_j<=i(q_i . k_j * scale) for one sequence whose cache holds exactly its n
 * current rows. q_rows points at the sequence's first fused-QKV row. */
void up_select_token_scores(const float *q_rows, int32_t n_tokens, const up_kv_pool *pool,
                            const int32_t *block_table, const up_attn_shape *shape, int32_t last_q,
                            double *scores);

/* Choose blocks from non-negative block scores (any scale); a NaN or infinite score
 * (non-finite activations) keeps every block. Top-p: rank blocks by score
 * (ties: lower index first) and keep each block while the share of the blocks ranked
 * before it is <= top_p, so the block that crosses p is kept and the top block always
 * is. Fixed budget (keep_fraction > 0): keep the top ceil(F * n_blocks) blocks (at
 * least one). Writes keep_block[n_blocks] as 0/1 and returns the number kept. */
int32_t up_select_blocks(const double *block_scores, int32_t n_blocks, float top_p, float keep_fraction,
                         uint8_t *keep_block);

/* Token mask of one sequence: tokens of kept blocks (block b covers tokens
 * [b*block, (b+1)*block)), the first sink tokens and the last last_q tokens. Returns the
 * number of kept tokens. */
int32_t up_select_token_mask(const uint8_t *keep_block, int32_t n_tokens, const up_select_params *params,
                             uint8_t *keep_token);

/* The token mask of one sequence (up_select_token_mask, into keep_token) and its kept
 * rows, packed row indices from `first`, appended to keep_rows at `out`; returns the
 * new end. */
int32_t up_select_append_rows(const uint8_t *keep_block, int32_t first, int32_t n_tokens,
                              const up_select_params *params, uint8_t *keep_token, int32_t *keep_rows, int32_t out);

#endif
