/* sparse_cuda.h — the CUDA backend's kernels of the sparse-attention baselines
 * (kernels/sparse_attention_ops.h), listed in the backend's method-kernel table
 * (cuda_backend.cu). C-callable. Owns only these declarations. */
#ifndef UP_CUDA_SPARSE_H
#define UP_CUDA_SPARSE_H

#include "kernels/ops.h"
#include "kernels/sparse_attention_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* UP_SPARSE_ATTENTION_KERNEL (sparse_attention.cu): qkv, out and the pool bf16 in GPU
 * memory, the batch and pattern arrays device int32 (qblock_start_host on the host).
 * Asynchronous. head_dim 64, 128 or 256. A sparse sequence whose cache length differs from
 * its rows, or whose query-block count does not match them, is reported by the next
 * synchronising call (the backend's index-error report) and its rows are left unwritten. */
void up_cuda_sparse_attention(up_backend *be, void *out, const void *qkv, const up_kv_pool *pool,
                              const up_attn_batch *batch, const up_attn_shape *shape,
                              const up_sparse_pattern *pattern);

/* UP_MINFERENCE_ESTIMATE_KERNEL (minference_estimate.cu): the pattern of the batch's
 * sparse sequences, written in device memory, and the covered pairs (the one host copy;
 * returns with the stream drained). last_q at most 64; head_dim a multiple of 8, at most
 * 256; the density cap lowers v and s as on the CPU. */
double up_cuda_minference_estimate(up_backend *be, up_sparse_pattern *pattern, const void *qkv,
                                   const up_kv_pool *pool, const up_attn_batch *batch, const up_attn_shape *shape,
                                   const up_minference_params *params);

/* UP_FLEXPREFILL_ESTIMATE_KERNEL (flexprefill_estimate.cu): the pattern of the batch's
 * sparse sequences, written in device memory, and the covered pairs (the one host copy;
 * returns with the stream drained). Sequences of at most 1024 blocks; head_dim a
 * multiple of 8, at most 256; the density cap as on the CPU (sparse_block_cap.cu). */
double up_cuda_flexprefill_estimate(up_backend *be, up_sparse_pattern *pattern, const void *qkv,
                                    const up_kv_pool *pool, const up_attn_batch *batch, const up_attn_shape *shape,
                                    const up_flexprefill_params *params);

/* UP_XATTENTION_ESTIMATE_KERNEL (xattention_estimate.cu): the pattern of the batch's
 * sparse sequences, written in device memory, and the covered pairs (the one host copy;
 * returns with the stream drained). Strides 2, 4, 8, 16, 32; sequences of at most
 * 1024 query blocks (128K tokens); head_dim a multiple of 8; the density cap as on the
 * CPU (sparse_block_cap.cu). */
double up_cuda_xattention_estimate(up_backend *be, up_sparse_pattern *pattern, const void *qkv,
                                   const up_kv_pool *pool, const up_attn_batch *batch, const up_attn_shape *shape,
                                   const up_xattention_params *params);

#ifdef __cplusplus
}
#endif

#endif
