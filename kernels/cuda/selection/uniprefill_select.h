/* uniprefill_select.h — the CUDA backend's UniPrefill token-selection kernel (an
 * up_uniprefill_select_fn of kernels/uniprefill_ops.h, listed in the backend's
 * method-kernel table; kernels/cuda/selection/uniprefill_select.cu), its per-head
 * block scores for tensor parallelism (listed too), and one
 * diagnostic that tests use to compare the GPU's block scores with the CPU reference's.
 * C-callable. */
#ifndef UP_CUDA_UNIPREFILL_SELECT_H
#define UP_CUDA_UNIPREFILL_SELECT_H

#include <stdint.h>

#include "kernels/ops.h"
#include "kernels/uniprefill_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The selection kernel of the CUDA backend: qkv rows and the pool bf16 in GPU memory,
 * batch arrays and keep_rows device int32, is_candidate_host and params host. Queues
 * every stage on the backend's stream and ends with the one device-to-host copy the
 * contract needs (the new offsets), so it returns with the stream drained. head_dim
 * must be 64, 128 or 256. The first call (and a call needing more room than any
 * before) allocates the backend's selection workspace. */
int32_t up_cuda_uniprefill_select(up_backend *be, int32_t *keep_rows, int32_t *new_cu_seqlens_host,
                                  const void *qkv, const up_kv_pool *pool, const up_attn_batch *batch,
                                  const up_attn_shape *shape, const uint8_t *is_candidate_host,
                                  const up_select_params *params);

/* The per-head block scores kernel of the CUDA backend (an up_uniprefill_head_scores_fn,
 * tensor parallelism): head_scores device fp32, block_offsets_host and params host.
 * Pass A and the combine of the selection above, then its block-score kernel in a
 * per-head mode: every sum in a fixed order, so repeated calls give identical bits.
 * Only the by-block path exists here: params->block must be a multiple of 32 keys (16
 * at head_dim 256), else the call is fatal and says so. Shares the selection's
 * workspace but not its last block scores (the diagnostic below still reads the last
 * selection's). Ends with the stream drained (one small copy of the error word). */
void up_cuda_uniprefill_head_scores(up_backend *be, float *head_scores, const void *qkv, const up_kv_pool *pool,
                                    const up_attn_batch *batch, const up_attn_shape *shape,
                                    const int32_t *block_offsets_host, const up_select_params *params);

/* Diagnostic: the fp32 block scores of the last call, sequence after sequence:
 * sequence s's ceil(n_s / block) blocks (n_s its rows in cu_seqlens_host, which must be
 * the last call's offsets) start at dst_host[sum over s' < s of ceil(n_s' / block)].
 * Blocks of sequences that were not scored hold 0. Returns the number written.
 * Synchronizes. */
int32_t up_cuda_uniprefill_select_block_scores(up_backend *be, float *dst_host, const int32_t *cu_seqlens_host,
                                               int32_t n_seqs);

#ifdef __cplusplus
}
#endif

#endif
