/* cuda_gemma_ops.cu — the CUDA versions of the ops Gemma 3's layer adds to the
 * interface (kernels/ops.h): GeGLU with the tanh GELU, per-head RMSNorm on the fused
 * qkv rows, and the in-place scale of the embeddings. bf16 in memory, fp32 arithmetic,
 * one element per access: these are small next to the GEMMs around them (a q/k norm
 * touches the qkv rows once; GeGLU the intermediate once). The CPU references are
 * kernels/cpu/cpu_gemma_ops.c. Touches no attention kernel (kernels/cuda/attention/). */
#include "kernels/cuda/cuda_backend_impl.h"

enum { GEMMA_FLAT_THREADS = 256, HEAD_NORM_THREADS = 128 };

static unsigned gemma_flat_blocks(int64_t units) {
  const int64_t blocks = (units + GEMMA_FLAT_THREADS - 1) / GEMMA_FLAT_THREADS;
  return (unsigned)(blocks < (1 << 20) ? blocks : (1 << 20));
}

/* --- GeGLU ------------------------------------------------------------------------ */

/* out[t][i] = gelu_tanh(gate[t][i]) * up[t][i], gate and up the halves of a gate_up row. */
static __global__ void geglu_kernel(__nv_bfloat16 *out, const __nv_bfloat16 *gate_up, int64_t n_units,
                                    int32_t inter) {
  for (int64_t u = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; u < n_units; u += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = u / inter, c = u - r * inter;
    const float g = __bfloat162float(gate_up[r * 2 * inter + c]);
    const float up = __bfloat162float(gate_up[r * 2 * inter + inter + c]);
    const float inner = 0.7978845608028654f * (g + 0.044715f * g * g * g); /* sqrt(2/pi) */
    out[u] = __float2bfloat16_rn(0.5f * g * (1.0f + tanhf(inner)) * up);
  }
}

extern "C" void up_cuda_geglu(up_backend *be, void *out, const void *gate_up, int32_t n_rows, int32_t inter) {
  up_cuda_backend *cb = up_cuda_impl(be);
  if (n_rows <= 0 || inter <= 0) return;
  const int64_t units = (int64_t)n_rows * inter;
  geglu_kernel<<<gemma_flat_blocks(units), GEMMA_FLAT_THREADS, 0, cb->stream>>>(
      (__nv_bfloat16 *)out, (const __nv_bfloat16 *)gate_up, units, inter);
  UP_CUDA_CHECK_LAUNCH();
}

/* --- per-head RMSNorm --------------------------------------------------------------- */

/* One block per (row, head): the head's sum of squares over the block, then each
 * thread scales the elements it read. */
static __global__ void head_rmsnorm_kernel(__nv_bfloat16 *x, const __nv_bfloat16 *weight, int32_t row_stride,
                                           int32_t first_col, int32_t n_heads, int32_t head_dim, float eps) {
  __shared__ float partial[HEAD_NORM_THREADS / 32];
  const int64_t row = blockIdx.x / n_heads;
  const int32_t head = (int32_t)(blockIdx.x % n_heads);
  __nv_bfloat16 *v = x + row * row_stride + first_col + (int64_t)head * head_dim;
  float sum_sq = 0.0f;
  for (int32_t i = threadIdx.x; i < head_dim; i += blockDim.x) {
    const float f = __bfloat162float(v[i]);
    sum_sq += f * f;
  }
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) sum_sq += __shfl_xor_sync(0xffffffffu, sum_sq, off);
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = sum_sq;
  __syncthreads();
  float total = 0.0f;
#pragma unroll
  for (int w = 0; w < HEAD_NORM_THREADS / 32; ++w) total += partial[w];
  const float inv_rms = 1.0f / sqrtf(total / (float)head_dim + eps);
  for (int32_t i = threadIdx.x; i < head_dim; i += blockDim.x)
    v[i] = __float2bfloat16_rn(__bfloat162float(v[i]) * inv_rms * __bfloat162float(weight[i]));
}

extern "C" void up_cuda_head_rmsnorm(up_backend *be, void *x, const void *weight, int32_t n_rows, int32_t row_stride,
                                     int32_t first_col, int32_t n_heads, int32_t head_dim, float eps) {
  up_cuda_backend *cb = up_cuda_impl(be);
  if (head_dim < 1 || first_col < 0 || (int64_t)first_col + (int64_t)n_heads * head_dim > row_stride)
    UP_FATAL("head_rmsnorm: %d heads of %d from column %d do not fit rows of %d", n_heads, head_dim, first_col,
             row_stride);
  const int64_t blocks = (int64_t)n_rows * n_heads;
  if (blocks <= 0) return;
  if (blocks > 0x7fffffffLL) UP_FATAL("head_rmsnorm: %lld row heads exceed one grid", (long long)blocks);
  head_rmsnorm_kernel<<<(unsigned)blocks, HEAD_NORM_THREADS, 0, cb->stream>>>(
      (__nv_bfloat16 *)x, (const __nv_bfloat16 *)weight, row_stride, first_col, n_heads, head_dim, eps);
  UP_CUDA_CHECK_LAUNCH();
}

/* --- scale -------------------------------------------------------------------------- */

static __global__ void scale_kernel(__nv_bfloat16 *x, int64_t n, float factor) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    x[i] = __float2bfloat16_rn(__bfloat162float(x[i]) * factor);
}

extern "C" void up_cuda_scale(up_backend *be, void *x, size_t n, float factor) {
  up_cuda_backend *cb = up_cuda_impl(be);
  if (n == 0) return;
  scale_kernel<<<gemma_flat_blocks((int64_t)n), GEMMA_FLAT_THREADS, 0, cb->stream>>>((__nv_bfloat16 *)x,
                                                                                     (int64_t)n, factor);
  UP_CUDA_CHECK_LAUNCH();
}
