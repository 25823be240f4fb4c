/* cuda_attention.cu — the attention op's entry point for the CUDA backend: checks the
 * shapes, keeps the backend's decode workspace, and queues the prefill and decode
 * paths on the backend's stream (each skips the other's sequences on the device).
 *
 * The decode workspace lives in the backend's state (up_cuda_backend.attn_workspace,
 * like the selection's select_state): the first call allocates it (cudaMalloc, which
 * may synchronize: once), a call that needs more grows it, steady-state calls allocate
 * nothing. up_cuda_attention_release frees it from the backend's destroy. */
#include "kernels/cuda/attention/attn_common.cuh"
#include "kernels/cuda/attention/cuda_attention.h"
#include "kernels/cuda/cuda_backend_impl.h"

extern "C" void up_cuda_attention_release(up_backend *be) {
  up_cuda_backend *cb = up_cuda_impl(be);
  if (cb->attn_workspace) UP_CUDA_CHECK(cudaFree(cb->attn_workspace));
  cb->attn_workspace = NULL;
  cb->attn_workspace_bytes = 0;
}

extern "C" void up_cuda_attention(up_backend *be, void *out, const void *qkv, const up_kv_pool *pool,
                                  const up_attn_batch *batch, const up_attn_shape *shape, int32_t window) {
  if (window < 0) UP_FATAL("attention: window %d must be 0 (full causal) or positive", window);
  if (shape->n_kv_heads <= 0 || shape->n_heads % shape->n_kv_heads != 0)
    UP_FATAL("attention: n_heads %d is not a multiple of n_kv_heads %d", shape->n_heads, shape->n_kv_heads);
  if (pool->kv_dim != shape->n_kv_heads * shape->head_dim)
    UP_FATAL("attention: pool kv_dim %d != n_kv_heads %d * head_dim %d", pool->kv_dim, shape->n_kv_heads,
             shape->head_dim);
  if (shape->head_dim != 64 && shape->head_dim != 128 && shape->head_dim != 256)
    UP_FATAL("attention: head_dim %d not supported by the CUDA kernels (64, 128, 256)", shape->head_dim);
  /* The prefill kernel takes row maxima of raw scores: that order is the softmax's only
   * for a positive scale. */
  if (!(shape->scale > 0.0f)) UP_FATAL("attention: softmax scale %g must be positive", (double)shape->scale);
  if (pool->block_tokens <= 0) UP_FATAL("attention: block_tokens %d must be positive", pool->block_tokens);
  if (batch->n_tokens <= 0 || batch->n_seqs <= 0) return;

  up_cuda_backend *cb = up_cuda_impl(be);
  const cudaStream_t stream = cb->stream;
  const int32_t n_splits = up_cuda_attention_decode_splits(cb, pool, batch, shape, window);
  const size_t need = up_cuda_attention_decode_workspace_bytes(batch, shape, n_splits);
  if (need > cb->attn_workspace_bytes) {
    /* cudaFree waits for queued work that may still read the old buffer. */
    if (cb->attn_workspace) UP_CUDA_CHECK(cudaFree(cb->attn_workspace));
    cb->attn_workspace = NULL;
    cb->attn_workspace_bytes = 0;
    UP_CUDA_CHECK(cudaMalloc(&cb->attn_workspace, need));
    cb->attn_workspace_bytes = need;
  }
  up_cuda_attention_prefill(stream, out, qkv, pool, batch, shape, window, cb->attn_prefill_variant);
  up_cuda_attention_decode(cb, out, qkv, pool, batch, shape, window, n_splits, cb->attn_workspace);
}
