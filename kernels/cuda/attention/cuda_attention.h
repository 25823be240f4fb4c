/* cuda_attention.h — the CUDA backend's causal GQA attention over the paged KV pool
 * (the `attention` op of kernels/ops.h), full or over a sliding window of cache
 * entries, bf16 activations and pool, fp32 softmax.
 *
 * One call launches two paths on the backend's stream, each skipping the sequences
 * of the other, because which sequences are prefill and which decode is known only
 * on the device: sequences of more than UP_ATTN_DECODE_MAX_ROWS rows go through the
 * tensor-core prefill kernel (attention_prefill.cu), shorter ones through the split-K
 * decode kernels (attention_decode.cu). Nothing here synchronizes the host or reads
 * device arrays on the host. */
#ifndef UP_CUDA_ATTENTION_H
#define UP_CUDA_ATTENTION_H

#include <cuda_runtime_api.h>
#include <stdbool.h>

#include "kernels/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Sequences with at most this many rows this step take the decode path. */
#define UP_ATTN_DECODE_MAX_ROWS 4

/* ops->attention for the CUDA backend: out [n_tokens][n_heads*head_dim] bf16, qkv rows
 * as in ops.h (bf16), pool->k / pool->v bf16; batch arrays are device int32 arrays.
 * head_dim must be 64, 128 or 256. `be` must be a CUDA backend (up_cuda_backend_create):
 * the op runs on its stream and keeps its decode workspace in its state. The first call
 * per backend (and a call needing a larger decode workspace than any before) allocates
 * device memory; steady-state calls do not. window > 0: each row sees its own entry and
 * the window - 1 before it (kernels/ops.h); key tiles and blocks wholly before the
 * first entry a CTA's rows see are never read, so table entries behind the window may
 * be -1 (docs/kernels/sliding_window.md). */
void up_cuda_attention(up_backend *be, void *out, const void *qkv, const up_kv_pool *pool,
                       const up_attn_batch *batch, const up_attn_shape *shape, int32_t window);

/* Free the per-backend attention state (decode workspace); the backend's destroy calls it. */
void up_cuda_attention_release(up_backend *be);

/* --- internal: the two paths, called by up_cuda_attention (cuda_attention.cu) --- */
/* Prefill path; `variant` picks the head_dim-128 or 256 kernel (0 the default; the
 * others, described in attention_prefill.cu, so that the test and the benchmark cover
 * each; at head_dim 256 the two mma.sync variants are the same kernel). */
enum {
  UP_ATTN_PREFILL_DEFAULT = 0,     /* SM90_TMA on Hopper where the pages allow, else SM90, else MMA_SYNC */
  UP_ATTN_PREFILL_MMA_SYNC_V1 = 1, /* mma.sync, 16 rows per warp, 32-key tiles */
  UP_ATTN_PREFILL_MMA_SYNC = 2,    /* mma.sync, 256-row CTAs, 64-key tiles */
  UP_ATTN_PREFILL_SM90 = 3,        /* wgmma, cp.async loads, any page size */
  UP_ATTN_PREFILL_SM90_TMA = 4,    /* wgmma, TMA page copies, warp-specialised */
  UP_ATTN_PREFILL_LAST = 4,
};
void up_cuda_attention_prefill(cudaStream_t stream, void *out, const void *qkv, const up_kv_pool *pool,
                               const up_attn_batch *batch, const up_attn_shape *shape, int32_t window, int variant);
/* The Hopper (sm_90a, wgmma) prefill kernel for head_dim 128 and 256
 * (attention_prefill_sm90.cu), and whether the current device can run it (compute
 * capability 9.0). */
void up_cuda_attention_prefill_sm90(cudaStream_t stream, void *out, const void *qkv, const up_kv_pool *pool,
                                    const up_attn_batch *batch, const up_attn_shape *shape, int32_t window);
bool up_cuda_attention_prefill_sm90_available(void);
/* The warp-specialised Hopper kernel (attention_prefill_sm90_tma.cu): a producer warp
 * copies K/V pages by TMA. It needs pages that tile a K/V tile evenly (block_tokens
 * 8..128 dividing 128 at head_dim 128; 8..64 dividing 64 at 256, whose tiles hold 64
 * entries) and 16-byte-aligned pools: _fits says whether this pool qualifies at this
 * head_dim. Two stages; the consumer warpgroups take turns (ping-pong). */
bool up_cuda_attention_prefill_sm90_tma_fits(const up_kv_pool *pool, int32_t head_dim);
/* The page-size part of that rule at head_dim 128, for choosing before any pool exists
 * (at head_dim 256 a page of 128 entries takes the cp.async kernel instead). */
bool up_cuda_attention_prefill_sm90_tma_block_fits(int32_t block_tokens);
void up_cuda_attention_prefill_sm90_tma(cudaStream_t stream, void *out, const void *qkv, const up_kv_pool *pool,
                                        const up_attn_batch *batch, const up_attn_shape *shape, int32_t window);
/* The warp-specialised kernel's listed schedule: block-sparse prefill over the key
 * lists of kernels/sparse_attention_ops.h (its pattern's device arrays, ranges only:
 * the gathered extra keys of MInference are not taken here), rows of sequences without
 * a list causal over their cache, decode rows included (sparse/sparse_attention.cu
 * chooses it). _fit: head_dim 128 or 256, query blocks of a multiple of 128 rows and a
 * pool the causal TMA kernel takes. A listed sequence whose cache is not exactly its
 * rows, or whose query-block count is wrong, is reported through `error`. */
#define UP_ATTN_SM90_QUERY_ROWS 128 /* query rows per CTA of the Hopper kernels */
struct up_cuda_index_error;
typedef struct up_attn_key_lists {
  const int32_t *qblock_start; /* [n_seqs + 1] */
  const int32_t *range_ptr;    /* [list rows + 1] */
  const int32_t *range_start;
  int32_t block_q, block_k;
  int32_t listed_ctas;         /* query blocks x block_q / UP_ATTN_SM90_QUERY_ROWS: the grid's first part */
  struct up_cuda_index_error *error; /* the backend's index-error slot (device) */
} up_attn_key_lists;
bool up_cuda_attention_prefill_sm90_tma_lists_fit(const up_kv_pool *pool, int32_t head_dim, int32_t block_q);
void up_cuda_attention_prefill_sm90_tma_lists(cudaStream_t stream, void *out, const void *qkv,
                                              const up_kv_pool *pool, const up_attn_batch *batch,
                                              const up_attn_shape *shape, const up_attn_key_lists *lists);
/* Decode path: workspace of up_cuda_attention_decode_workspace_bytes(...) bytes. The
 * split kernel is the backend's (attention_decode.cu): UP_DECODE_KERNEL=v1 in the
 * environment at its first decode call picks v1, else the per-warp kernel runs; the
 * setter overrides that (so the test covers both). The split count and the launch take
 * the backend for that choice, the CTAs per SM it caches and its stream. */
enum {
  UP_ATTN_DECODE_V1 = 1,   /* 64-key chunks per CTA with block barriers */
  UP_ATTN_DECODE_WARP = 2, /* every warp streams its own keys (the default) */
};
struct up_cuda_backend;
void up_cuda_attention_set_decode_kernel(up_backend *be, int kernel);
size_t up_cuda_attention_decode_workspace_bytes(const up_attn_batch *batch, const up_attn_shape *shape,
                                                int32_t n_splits);
int32_t up_cuda_attention_decode_splits(struct up_cuda_backend *cb, const up_kv_pool *pool,
                                        const up_attn_batch *batch, const up_attn_shape *shape, int32_t window);
void up_cuda_attention_decode(struct up_cuda_backend *cb, void *out, const void *qkv, const up_kv_pool *pool,
                              const up_attn_batch *batch, const up_attn_shape *shape, int32_t window,
                              int32_t n_splits, void *workspace);

#ifdef __cplusplus
}
#endif

#endif
