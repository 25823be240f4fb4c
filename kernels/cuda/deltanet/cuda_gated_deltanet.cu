/* cuda_gated_deltanet.cu — the Gated DeltaNet ops of kernels/ops.h on the GPU: the
 * gates, the chunked delta rule (HYBRIDS.md C.4) and the gated RMSNorm.
 *
 * The delta rule runs cuda_gdn_tensor.cu's kernels (parallel over chunks, then a scan
 * parallel over state columns, products on tensor cores) unless UP_GDN_KERNEL picks
 * cuda_gdn_chunked.cu's fp32 version of them (v2) or the first cut kept here (v1), for
 * A/B timing and as fallbacks. The first cut is one block of 256 threads per (sequence, value
 * head), fp32 CUDA-core arithmetic, the head's state (head_dim^2 fp32) and one chunk's
 * Q, K, U/V', W, A in shared memory (213.5 KiB at head_dim 128), chunks in sequence.
 * Both are correct for any mix of prefill and decode rows (a decode row is a chunk of
 * one). */
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/deltanet/deltanet_ops.h"

enum { GDN_CHUNK = 64, GDN_THREADS = 256, GDN_MAX_HEAD_DIM = 128 };

/* --- gates -------------------------------------------------------------------------- */

static __global__ void gdn_gates_kernel(float *g, float *beta, const __nv_bfloat16 *a, const __nv_bfloat16 *b,
                                        int32_t ab_stride, const __nv_bfloat16 *a_log, const __nv_bfloat16 *dt_bias,
                                        int32_t n_tokens, int32_t n_heads) {
  const int64_t n = (int64_t)n_tokens * n_heads;
  for (int64_t u = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; u < n; u += (int64_t)gridDim.x * blockDim.x) {
    const int64_t t = u / n_heads;
    const int32_t h = (int32_t)(u % n_heads);
    const float x = __bfloat162float(a[t * ab_stride + h]) + __bfloat162float(dt_bias[h]);
    const float softplus = x > 20.0f ? x : log1pf(expf(x)); /* torch's threshold */
    g[u] = -expf(__bfloat162float(a_log[h])) * softplus;
    beta[u] = 1.0f / (1.0f + expf(-__bfloat162float(b[t * ab_stride + h])));
  }
}

extern "C" void up_cuda_gdn_gates(up_backend *be, float *g, float *beta, const void *a, const void *b,
                                  int32_t ab_stride, const void *a_log, const void *dt_bias, int32_t n_tokens,
                                  int32_t n_heads) {
  if (n_tokens <= 0 || n_heads <= 0) return;
  up_cuda_backend *cb = up_cuda_impl(be);
  gdn_gates_kernel<<<up_deltanet_blocks((int64_t)n_tokens * n_heads), 256, 0, cb->stream>>>(
      g, beta, (const __nv_bfloat16 *)a, (const __nv_bfloat16 *)b, ab_stride, (const __nv_bfloat16 *)a_log,
      (const __nv_bfloat16 *)dt_bias, n_tokens, n_heads);
  UP_CUDA_CHECK_LAUNCH();
}

/* --- the chunked delta rule ------------------------------------------------------------ */

static __global__ void __launch_bounds__(GDN_THREADS)
    gdn_chunk_kernel(__nv_bfloat16 *out, const __nv_bfloat16 *q, const __nv_bfloat16 *k, const __nv_bfloat16 *v,
                     const float *g, const float *beta, float *state, const int32_t *cu, const int32_t *slots,
                     const int32_t *initial, int32_t hv, int32_t group, int32_t d, int32_t stride, float scale) {
  extern __shared__ float sm[];
  const int32_t h = blockIdx.x, s = blockIdx.y, tid = threadIdx.x, warp = tid / 32, n_warps = GDN_THREADS / 32;
  const int32_t C = GDN_CHUNK, dd = d * d;
  float *S = sm, *Q = S + dd, *K = Q + C * d, *U = K + C * d, *W = U + C * d, *A = W + C * d, *gam = A + C * C,
        *bet = gam + C;
  float *Sg = state + ((int64_t)slots[s] * hv + h) * dd;
  const bool has_state = initial[s] != 0;
  for (int32_t i = tid; i < dd; i += GDN_THREADS) S[i] = has_state ? Sg[i] : 0.0f;
  const int32_t end = cu[s + 1], kh = (h / group) * d;
  for (int32_t t0 = cu[s]; t0 < end; t0 += C) {
    const int32_t n = end - t0 < C ? end - t0 : C;
    for (int32_t i = warp; i < n; i += n_warps) {
      const int64_t row = (int64_t)(t0 + i) * stride;
      up_deltanet_l2_row(Q + i * d, q + row + kh, d, scale);
      up_deltanet_l2_row(K + i * d, k + row + kh, d, 1.0f);
      for (int32_t c = tid % 32; c < d; c += 32) U[i * d + c] = __bfloat162float(v[row + (int64_t)h * d + c]);
    }
    if (tid < n) {
      gam[tid] = g[(int64_t)(t0 + tid) * hv + h];
      bet[tid] = beta[(int64_t)(t0 + tid) * hv + h];
    }
    __syncthreads();
    if (tid == 0)
      for (int32_t i = 1; i < n; ++i) gam[i] += gam[i - 1];
    __syncthreads();
    /* A_ij = beta_i (k_i . k_j) exp(gamma_i - gamma_j), j < i. */
    for (int32_t idx = tid; idx < n * C; idx += GDN_THREADS) {
      const int32_t i = idx / C, j = idx % C;
      if (j >= i) continue;
      float dot = 0.0f;
      for (int32_t a = 0; a < d; ++a) dot += K[i * d + a] * K[j * d + a];
      A[i * C + j] = bet[i] * dot * expf(gam[i] - gam[j]);
    }
    __syncthreads();
    /* (I + A) U = diag(beta) V and (I + A) W = diag(beta exp(gamma)) K: each column on
     * its own, so a thread owns a column and walks the rows without a barrier. */
    for (int32_t col = tid; col < 2 * d; col += GDN_THREADS) {
      float *X = col < d ? U : W;
      const int32_t c = col < d ? col : col - d;
      for (int32_t i = 0; i < n; ++i) {
        float x = col < d ? bet[i] * U[i * d + c] : bet[i] * expf(gam[i]) * K[i * d + c];
        for (int32_t j = 0; j < i; ++j) x -= A[i * C + j] * X[j * d + c];
        X[i * d + c] = x;
      }
    }
    __syncthreads();
    /* V' = U - W S. */
    for (int32_t idx = tid; idx < n * d; idx += GDN_THREADS) {
      const int32_t i = idx / d, c = idx % d;
      float ws = 0.0f;
      for (int32_t a = 0; a < d; ++a) ws += W[i * d + a] * S[a * d + c];
      U[idx] -= ws;
    }
    __syncthreads();
    /* A now holds P_ij = (q_i . k_j) exp(gamma_i - gamma_j), j <= i. */
    for (int32_t idx = tid; idx < n * C; idx += GDN_THREADS) {
      const int32_t i = idx / C, j = idx % C;
      if (j > i) continue;
      float dot = 0.0f;
      for (int32_t a = 0; a < d; ++a) dot += Q[i * d + a] * K[j * d + a];
      A[i * C + j] = dot * expf(gam[i] - gam[j]);
    }
    __syncthreads();
    /* O_i = exp(gamma_i) q_i S + sum_{j <= i} P_ij V'_j. */
    for (int32_t idx = tid; idx < n * d; idx += GDN_THREADS) {
      const int32_t i = idx / d, c = idx % d;
      float qs = 0.0f, pv = 0.0f;
      for (int32_t a = 0; a < d; ++a) qs += Q[i * d + a] * S[a * d + c];
      for (int32_t j = 0; j <= i; ++j) pv += A[i * C + j] * U[j * d + c];
      out[((int64_t)(t0 + i) * hv + h) * d + c] = __float2bfloat16_rn(expf(gam[i]) * qs + pv);
    }
    __syncthreads();
    /* S = exp(gamma_last) S + sum_j exp(gamma_last - gamma_j) k_j V'_j^T. */
    const float last = gam[n - 1];
    for (int32_t idx = tid; idx < dd; idx += GDN_THREADS) {
      const int32_t a = idx / d, c = idx % d;
      float acc = expf(last) * S[idx];
      for (int32_t j = 0; j < n; ++j) acc += expf(last - gam[j]) * K[j * d + a] * U[j * d + c];
      S[idx] = acc;
    }
    __syncthreads();
  }
  for (int32_t i = tid; i < dd; i += GDN_THREADS) Sg[i] = S[i];
}

static size_t gdn_smem_bytes(int32_t d) {
  return sizeof(float) * ((size_t)d * d + 4u * GDN_CHUNK * d + (size_t)GDN_CHUNK * GDN_CHUNK + 2u * GDN_CHUNK);
}

/* UP_GDN_KERNEL picks the delta rule's kernel for A/B timing: unset (or "tensor") the
 * tensor-core one of cuda_gdn_tensor.cu, "v2" (or "chunked", its earlier name) the fp32
 * chunked one of cuda_gdn_chunked.cu, "v1" the first cut below. */
typedef enum { GDN_KERNEL_TENSOR, GDN_KERNEL_CHUNKED_FP32, GDN_KERNEL_FIRST_CUT } gdn_kernel_choice;

static gdn_kernel_choice gdn_kernel_chosen(void) {
  const char *choice = getenv("UP_GDN_KERNEL");
  /* tensor cores by default: 4.41 ms a layer at 32K on an H100 against the fp32 kernels' 18.36 */
  if (!choice || !*choice || strcmp(choice, "tensor") == 0) return GDN_KERNEL_TENSOR;
  if (strcmp(choice, "v2") == 0 || strcmp(choice, "chunked") == 0) return GDN_KERNEL_CHUNKED_FP32;
  if (strcmp(choice, "v1") == 0) return GDN_KERNEL_FIRST_CUT;
  UP_FATAL("UP_GDN_KERNEL=%s: expected \"tensor\" (the default), \"v2\" (the fp32 chunked kernels) or \"v1\" (the "
           "one-block-per-head first cut)", choice);
}

extern "C" void up_cuda_gated_deltanet(up_backend *be, void *out, const void *q, const void *k, const void *v,
                                       const float *g, const float *beta, float *state,
                                       const up_recurrent_batch *batch, const up_gdn_shape *shape) {
  const int32_t hk = shape->n_key_heads, hv = shape->n_value_heads, d = shape->head_dim;
  if (hk < 1 || hv < hk || hv % hk != 0 || d < 1 || d > GDN_MAX_HEAD_DIM || shape->qkv_stride < hv * d)
    UP_FATAL("gated_deltanet: %d key heads, %d value heads of %d (at most %d here), row stride %d", (int)hk, (int)hv,
             (int)d, GDN_MAX_HEAD_DIM, (int)shape->qkv_stride);
  if (batch->n_seqs <= 0) return;
  up_cuda_backend *cb = up_cuda_impl(be);
  const gdn_kernel_choice kernel = gdn_kernel_chosen();
  if (kernel == GDN_KERNEL_TENSOR) {
    up_cuda_gdn_tensor(cb, (__nv_bfloat16 *)out, (const __nv_bfloat16 *)q, (const __nv_bfloat16 *)k,
                       (const __nv_bfloat16 *)v, g, beta, state, batch, shape);
    return;
  }
  if (kernel == GDN_KERNEL_CHUNKED_FP32) {
    up_cuda_gdn_chunked(cb, (__nv_bfloat16 *)out, (const __nv_bfloat16 *)q, (const __nv_bfloat16 *)k,
                        (const __nv_bfloat16 *)v, g, beta, state, batch, shape);
    return;
  }
  const size_t smem = gdn_smem_bytes(d);
  UP_CUDA_CHECK(cudaFuncSetAttribute(gdn_chunk_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  gdn_chunk_kernel<<<dim3((unsigned)hv, (unsigned)batch->n_seqs), GDN_THREADS, smem, cb->stream>>>(
      (__nv_bfloat16 *)out, (const __nv_bfloat16 *)q, (const __nv_bfloat16 *)k, (const __nv_bfloat16 *)v, g, beta,
      state, batch->cu_seqlens, batch->state_slots, batch->has_initial_state, hv, hv / hk, d, shape->qkv_stride,
      shape->scale);
  UP_CUDA_CHECK_LAUNCH();
}

/* --- gated RMSNorm ---------------------------------------------------------------------- */

/* One warp per (token, head) row: x / rms(x) * w * silu(z). */
static __global__ void gated_rmsnorm_kernel(__nv_bfloat16 *out, const __nv_bfloat16 *x, const __nv_bfloat16 *z,
                                            int32_t z_stride, const __nv_bfloat16 *w, int64_t n_rows,
                                            int32_t n_heads, int32_t head_dim, float eps) {
  const int lane = threadIdx.x % 32;
  for (int64_t r = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32; r < n_rows;
       r += (int64_t)gridDim.x * blockDim.x / 32) {
    const __nv_bfloat16 *xr = x + r * head_dim;
    const __nv_bfloat16 *zr = z + (r / n_heads) * z_stride + (r % n_heads) * head_dim;
    float ss = 0.0f;
    for (int32_t c = lane; c < head_dim; c += 32) {
      const float v = __bfloat162float(xr[c]);
      ss += v * v;
    }
    const float inv = rsqrtf(up_deltanet_warp_sum(ss) / (float)head_dim + eps);
    for (int32_t c = lane; c < head_dim; c += 32) {
      const float zv = __bfloat162float(zr[c]);
      out[r * head_dim + c] =
          __float2bfloat16_rn(__bfloat162float(xr[c]) * inv * __bfloat162float(w[c]) * zv * up_deltanet_sigmoid(zv));
    }
  }
}

extern "C" void up_cuda_gated_rmsnorm(up_backend *be, void *out, const void *x, const void *z, int32_t z_stride,
                                      const void *weight, int32_t n_tokens, int32_t n_heads, int32_t head_dim,
                                      float eps) {
  const int64_t rows = (int64_t)n_tokens * n_heads;
  if (rows <= 0 || head_dim <= 0) return;
  up_cuda_backend *cb = up_cuda_impl(be);
  gated_rmsnorm_kernel<<<up_deltanet_blocks(rows * 32), 256, 0, cb->stream>>>(
      (__nv_bfloat16 *)out, (const __nv_bfloat16 *)x, (const __nv_bfloat16 *)z, z_stride,
      (const __nv_bfloat16 *)weight, rows, n_heads, head_dim, eps);
  UP_CUDA_CHECK_LAUNCH();
}
