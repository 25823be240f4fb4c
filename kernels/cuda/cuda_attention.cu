/* cuda_attention.cu — the attention op's entry point for the CUDA backend: checks the
 * shapes, keeps the per-backend decode workspace, and queues the prefill and decode
 * paths on the backend's stream (each skips the other's sequences on the device).
 *
 * The op has no init hook, so per-backend state lives in a small table keyed on the
 * backend pointer: the first call of a backend allocates the workspace (cudaMalloc,
 * which may synchronize: once), a call that needs more grows it, steady-state calls
 * allocate nothing. up_cuda_attention_release frees an entry. */
#include "kernels/cuda/attn_common.cuh"
#include "kernels/cuda/cuda_attention.h"

enum { ATTN_MAX_BACKENDS = 16 };

typedef struct attn_state {
  up_backend *be;
  int32_t n_sms;
  void *workspace;
  size_t workspace_bytes;
} attn_state;

/* One process drives its backends from one thread (one rank, one GPU). */
static attn_state attn_states[ATTN_MAX_BACKENDS];

static attn_state *attn_state_of(up_backend *be) {
  attn_state *free_slot = NULL;
  for (int i = 0; i < ATTN_MAX_BACKENDS; ++i) {
    if (attn_states[i].be == be) return &attn_states[i];
    if (!attn_states[i].be && !free_slot) free_slot = &attn_states[i];
  }
  if (!free_slot) UP_FATAL("attention: more than %d CUDA backends alive", ATTN_MAX_BACKENDS);
  int dev = 0;
  UP_CUDA_CHECK(cudaGetDevice(&dev));
  UP_CUDA_CHECK(cudaDeviceGetAttribute(&free_slot->n_sms, cudaDevAttrMultiProcessorCount, dev));
  free_slot->be = be;
  free_slot->workspace = NULL;
  free_slot->workspace_bytes = 0;
  return free_slot;
}

extern "C" void up_cuda_attention_release(up_backend *be) {
  for (int i = 0; i < ATTN_MAX_BACKENDS; ++i) {
    if (attn_states[i].be != be) continue;
    if (attn_states[i].workspace) UP_CUDA_CHECK(cudaFree(attn_states[i].workspace));
    attn_states[i].be = NULL;
    attn_states[i].workspace = NULL;
    attn_states[i].workspace_bytes = 0;
  }
}

extern "C" void up_cuda_attention(up_backend *be, void *out, const void *qkv, const up_kv_pool *pool,
                                  const up_attn_batch *batch, const up_attn_shape *shape) {
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

  attn_state *st = attn_state_of(be);
  const cudaStream_t stream = up_cuda_backend_stream(be);
  const int32_t n_splits = up_cuda_attention_decode_splits(pool, batch, shape, st->n_sms);
  const size_t need = up_cuda_attention_decode_workspace_bytes(batch, shape, n_splits);
  if (need > st->workspace_bytes) {
    /* cudaFree waits for queued work that may still read the old buffer. */
    if (st->workspace) UP_CUDA_CHECK(cudaFree(st->workspace));
    st->workspace = NULL;
    UP_CUDA_CHECK(cudaMalloc(&st->workspace, need));
    st->workspace_bytes = need;
  }
  up_cuda_attention_prefill(stream, out, qkv, pool, batch, shape, 0);
  up_cuda_attention_decode(stream, out, qkv, pool, batch, shape, n_splits, st->workspace);
}
