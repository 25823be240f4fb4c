/* deltanet_ops.h — private to kernels/cuda: the CUDA versions of the Qwen3-Next ops of
 * kernels/ops.h (issue 14) that cuda_backend.cu puts in its table, and the helpers the
 * .cu files of this folder share. bf16 activations, fp32 arithmetic, and fp32 g, beta,
 * router weights and DeltaNet state, as the op contracts say. */
#ifndef UP_CUDA_DELTANET_OPS_H
#define UP_CUDA_DELTANET_OPS_H

#include "kernels/cuda/cuda_backend_impl.h"

/* Blocks for a grid-stride loop over n items of 256 threads, capped (the loops stride). */
static inline unsigned up_deltanet_blocks(int64_t n) {
  const int64_t blocks = (n + 255) / 256;
  return (unsigned)(blocks < 1 ? 1 : blocks < (1 << 20) ? blocks : (1 << 20));
}

/* Index of the sequence that owns row t of a packed batch: the last s with cu[s] <= t. */
static __device__ __forceinline__ int32_t up_deltanet_seq_of(const int32_t *cu, int32_t n_seqs, int32_t t) {
  int32_t lo = 0, hi = n_seqs - 1;
  while (lo < hi) {
    const int32_t mid = (lo + hi + 1) / 2;
    if (cu[mid] <= t) lo = mid; else hi = mid - 1;
  }
  return lo;
}

static __device__ __forceinline__ float up_deltanet_warp_sum(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

/* dst[0..d) = src / sqrt(sum src^2 + 1e-6) * scale (the delta rule's q/k norm), by one warp. */
static __device__ __forceinline__ void up_deltanet_l2_row(float *dst, const __nv_bfloat16 *src, int32_t d,
                                                          float scale) {
  const int lane = threadIdx.x % 32;
  float ss = 0.0f;
  for (int32_t c = lane; c < d; c += 32) {
    const float v = __bfloat162float(src[c]);
    dst[c] = v;
    ss += v * v;
  }
  const float f = scale * rsqrtf(up_deltanet_warp_sum(ss) + 1e-6f);
  __syncwarp();
  for (int32_t c = lane; c < d; c += 32) dst[c] *= f;
}

static __device__ __forceinline__ float up_deltanet_sigmoid(float x) { return 1.0f / (1.0f + __expf(-x)); }

extern "C" {
/* cuda_causal_conv.cu */
void up_cuda_causal_conv1d(up_backend *be, void *out, const void *x, int32_t x_stride, const void *weight,
                           void *conv_state, const up_recurrent_batch *batch, int32_t channels, int32_t width);
/* cuda_gated_deltanet.cu */
void up_cuda_gdn_gates(up_backend *be, float *g, float *beta, const void *a, const void *b, int32_t ab_stride,
                       const void *a_log, const void *dt_bias, int32_t n_tokens, int32_t n_heads);
void up_cuda_gated_deltanet(up_backend *be, void *out, const void *q, const void *k, const void *v, const float *g,
                            const float *beta, float *state, const up_recurrent_batch *batch,
                            const up_gdn_shape *shape);
/* cuda_gdn_chunked.cu: the multi-kernel fp32 chunked delta rule (UP_GDN_KERNEL=v2; shapes
 * already checked by up_cuda_gated_deltanet), and the release of its workspace. */
void up_cuda_gdn_chunked(up_cuda_backend *cb, __nv_bfloat16 *out, const __nv_bfloat16 *q, const __nv_bfloat16 *k,
                         const __nv_bfloat16 *v, const float *g, const float *beta, float *state,
                         const up_recurrent_batch *batch, const up_gdn_shape *shape);
void up_cuda_gdn_chunked_release(up_cuda_backend *cb);
/* The workspace grown to the batch and its chunk index filled (cuda_gdn_chunked.cu): the
 * T|P area (64 fp32 per token and value head, then extra_per_token bytes per token)
 * returned, the index in *first. */
void *up_cuda_gdn_chunk_index(up_cuda_backend *cb, const up_recurrent_batch *batch, int32_t hv,
                              size_t extra_per_token, int32_t **first);
/* cuda_gdn_tensor.cu: the same split with its products on tensor cores (the default). */
void up_cuda_gdn_tensor(up_cuda_backend *cb, __nv_bfloat16 *out, const __nv_bfloat16 *q, const __nv_bfloat16 *k,
                        const __nv_bfloat16 *v, const float *g, const float *beta, float *state,
                        const up_recurrent_batch *batch, const up_gdn_shape *shape);
void up_cuda_gated_rmsnorm(up_backend *be, void *out, const void *x, const void *z, int32_t z_stride,
                           const void *weight, int32_t n_tokens, int32_t n_heads, int32_t head_dim, float eps);
/* cuda_moe.cu */
void up_cuda_moe_route(up_backend *be, float *weights, int32_t *experts, const void *logits, int32_t n_tokens,
                       int32_t n_experts, int32_t top_k, int32_t renormalize);
void up_cuda_moe_sort(up_backend *be, int32_t *source_rows, int32_t *slot_of, int32_t *expert_offsets_host,
                      const int32_t *experts, int32_t n_tokens, int32_t top_k, int32_t n_experts);
void up_cuda_moe_combine(up_backend *be, void *out, const void *expert_out, const int32_t *slot_of,
                         const float *weights, const void *shared_out, const void *shared_gate, int32_t n_tokens,
                         int32_t top_k, int32_t dim);
/* cuda_gated_attention.cu */
void up_cuda_split_query_gate(up_backend *be, void *q, int32_t q_stride, void *gate, const void *qg,
                              int32_t n_tokens, int32_t n_heads, int32_t head_dim);
void up_cuda_sigmoid_gate(up_backend *be, void *x, const void *gate, int32_t n_rows, int32_t dim);
void up_cuda_rope_partial(up_backend *be, void *qkv, const int32_t *positions, const float *inv_freq,
                          int32_t n_tokens, const up_attn_shape *shape, int32_t rotary_dim);
}

#endif
