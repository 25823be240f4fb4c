/* cuda_gated_attention.cu — the gated full attention's helpers of kernels/ops.h on the
 * GPU (HYBRIDS.md C.7): the per-head query/gate split, the sigmoid output gate and
 * rope on the first rotary_dim dims of each head. Element-wise, grid-stride loops. */
#include "kernels/cuda/deltanet/deltanet_ops.h"

static __global__ void split_query_gate_kernel(__nv_bfloat16 *q, int32_t q_stride, __nv_bfloat16 *gate,
                                               const __nv_bfloat16 *qg, int32_t n_tokens, int32_t n_heads,
                                               int32_t head_dim) {
  const int64_t width = (int64_t)n_heads * head_dim, n = (int64_t)n_tokens * width;
  for (int64_t u = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; u < n; u += (int64_t)gridDim.x * blockDim.x) {
    const int64_t t = u / width, hc = u % width, h = hc / head_dim, c = hc % head_dim;
    const __nv_bfloat16 *src = qg + (t * n_heads + h) * 2 * head_dim + c;
    q[t * q_stride + hc] = src[0];
    gate[u] = src[head_dim];
  }
}

extern "C" void up_cuda_split_query_gate(up_backend *be, void *q, int32_t q_stride, void *gate, const void *qg,
                                         int32_t n_tokens, int32_t n_heads, int32_t head_dim) {
  const int64_t n = (int64_t)n_tokens * n_heads * head_dim;
  if (n <= 0) return;
  up_cuda_backend *cb = up_cuda_impl(be);
  split_query_gate_kernel<<<up_deltanet_blocks(n), 256, 0, cb->stream>>>(
      (__nv_bfloat16 *)q, q_stride, (__nv_bfloat16 *)gate, (const __nv_bfloat16 *)qg, n_tokens, n_heads, head_dim);
  UP_CUDA_CHECK_LAUNCH();
}

static __global__ void sigmoid_gate_kernel(__nv_bfloat16 *x, const __nv_bfloat16 *gate, int64_t n) {
  for (int64_t u = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; u < n; u += (int64_t)gridDim.x * blockDim.x)
    x[u] = __float2bfloat16_rn(__bfloat162float(x[u]) * up_deltanet_sigmoid(__bfloat162float(gate[u])));
}

extern "C" void up_cuda_sigmoid_gate(up_backend *be, void *x, const void *gate, int32_t n_rows, int32_t dim) {
  const int64_t n = (int64_t)n_rows * dim;
  if (n <= 0) return;
  up_cuda_backend *cb = up_cuda_impl(be);
  sigmoid_gate_kernel<<<up_deltanet_blocks(n), 256, 0, cb->stream>>>((__nv_bfloat16 *)x,
                                                                      (const __nv_bfloat16 *)gate, n);
  UP_CUDA_CHECK_LAUNCH();
}

/* One thread per (token, rotated head, pair): the angle in double, as rope's. */
static __global__ void rope_partial_kernel(__nv_bfloat16 *qkv, const int32_t *positions, const float *inv_freq,
                                           int32_t n_tokens, int32_t rotated_heads, int32_t head_dim, int32_t half,
                                           int64_t row_stride) {
  const int64_t per_token = (int64_t)rotated_heads * half, n = (int64_t)n_tokens * per_token;
  for (int64_t u = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; u < n; u += (int64_t)gridDim.x * blockDim.x) {
    const int64_t t = u / per_token, h = (u % per_token) / half;
    const int32_t i = (int32_t)(u % half);
    double sn, cs;
    sincos((double)positions[t] * (double)inv_freq[i], &sn, &cs);
    const float c = (float)cs, s = (float)sn;
    __nv_bfloat16 *x1 = qkv + t * row_stride + h * head_dim + i, *x2 = x1 + half;
    const float a = __bfloat162float(*x1), b = __bfloat162float(*x2);
    *x1 = __float2bfloat16_rn(a * c - b * s);
    *x2 = __float2bfloat16_rn(b * c + a * s);
  }
}

extern "C" void up_cuda_rope_partial(up_backend *be, void *qkv, const int32_t *positions, const float *inv_freq,
                                     int32_t n_tokens, const up_attn_shape *shape, int32_t rotary_dim) {
  const int32_t hd = shape->head_dim;
  if (rotary_dim < 2 || rotary_dim % 2 != 0 || rotary_dim > hd)
    UP_FATAL("rope_partial: rotary dim %d of head_dim %d", (int)rotary_dim, (int)hd);
  const int32_t rotated_heads = shape->n_heads + shape->n_kv_heads;
  const int64_t n = (int64_t)n_tokens * rotated_heads * (rotary_dim / 2);
  if (n <= 0) return;
  up_cuda_backend *cb = up_cuda_impl(be);
  rope_partial_kernel<<<up_deltanet_blocks(n), 256, 0, cb->stream>>>(
      (__nv_bfloat16 *)qkv, positions, inv_freq, n_tokens, rotated_heads, hd, rotary_dim / 2,
      (int64_t)(shape->n_heads + 2 * shape->n_kv_heads) * hd);
  UP_CUDA_CHECK_LAUNCH();
}
