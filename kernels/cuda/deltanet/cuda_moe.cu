/* cuda_moe.cu — the MoE routing ops of kernels/ops.h on the GPU: the router's fp32
 * softmax top-k (one block per token), the grouping of (token, choice) pairs by
 * expert (CUB's radix sort, which is stable, so pairs keep their order within an
 * expert as the CPU reference's counting sort does; its scratch lives on the backend),
 * and the weighted combination
 * with the sigmoid-gated shared expert. */
#include <cub/cub.cuh>
#include <limits.h>

#include "kernels/cuda/deltanet/deltanet_ops.h"

enum { ROUTE_THREADS = 256 };

/* --- moe_route -------------------------------------------------------------------------- */

/* The better of two (probability, expert): larger, the lower expert on equal values. */
static __device__ __forceinline__ void better(float *v, int32_t *e, float ov, int32_t oe) {
  if (oe == INT_MAX) return;
  if (*e == INT_MAX || ov > *v || (ov == *v && oe < *e)) {
    *v = ov;
    *e = oe;
  }
}

static __device__ float route_block_reduce(float v, bool take_max, float *scratch) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    const float o = __shfl_xor_sync(0xffffffffu, v, off);
    v = take_max ? fmaxf(v, o) : v + o;
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = scratch[0];
  for (int w = 1; w < ROUTE_THREADS / 32; ++w) v = take_max ? fmaxf(v, scratch[w]) : v + scratch[w];
  return v;
}

static __global__ void __launch_bounds__(ROUTE_THREADS)
    moe_route_kernel(float *weights, int32_t *experts, const __nv_bfloat16 *logits, int32_t n_experts, int32_t top_k,
                     int32_t renormalize) {
  extern __shared__ float p[]; /* n_experts probabilities; a taken expert becomes -1 */
  __shared__ float scratch[ROUTE_THREADS / 32];
  __shared__ float best_v[ROUTE_THREADS / 32];
  __shared__ int32_t best_e[ROUTE_THREADS / 32];
  const __nv_bfloat16 *row = logits + (int64_t)blockIdx.x * n_experts;
  float max = -INFINITY;
  for (int32_t e = threadIdx.x; e < n_experts; e += ROUTE_THREADS) {
    p[e] = __bfloat162float(row[e]);
    max = fmaxf(max, p[e]);
  }
  max = route_block_reduce(max, true, scratch);
  float sum = 0.0f;
  for (int32_t e = threadIdx.x; e < n_experts; e += ROUTE_THREADS) sum += p[e] = expf(p[e] - max);
  sum = route_block_reduce(sum, false, scratch);
  for (int32_t e = threadIdx.x; e < n_experts; e += ROUTE_THREADS) p[e] /= sum;
  __syncthreads();
  float *w = weights + (int64_t)blockIdx.x * top_k, chosen = 0.0f;
  int32_t *ex = experts + (int64_t)blockIdx.x * top_k;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int32_t j = 0; j < top_k; ++j) {
    float v = 0.0f;
    int32_t e = INT_MAX;
    for (int32_t i = threadIdx.x; i < n_experts; i += ROUTE_THREADS)
      if (p[i] >= 0.0f) better(&v, &e, p[i], i);
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, v, off);
      const int32_t oe = __shfl_xor_sync(0xffffffffu, e, off);
      better(&v, &e, ov, oe);
    }
    if (lane == 0) {
      best_v[warp] = v;
      best_e[warp] = e;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int wi = 1; wi < ROUTE_THREADS / 32; ++wi) better(&v, &e, best_v[wi], best_e[wi]);
      ex[j] = e;
      w[j] = v;
      chosen += v;
      p[e] = -1.0f;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0 && renormalize)
    for (int32_t j = 0; j < top_k; ++j) w[j] /= chosen;
}

extern "C" void up_cuda_moe_route(up_backend *be, float *weights, int32_t *experts, const void *logits,
                                  int32_t n_tokens, int32_t n_experts, int32_t top_k, int32_t renormalize) {
  if (top_k < 1 || top_k > n_experts) UP_FATAL("moe_route: top %d of %d experts", (int)top_k, (int)n_experts);
  if (n_tokens <= 0) return;
  up_cuda_backend *cb = up_cuda_impl(be);
  moe_route_kernel<<<(unsigned)n_tokens, ROUTE_THREADS, sizeof(float) * (size_t)n_experts, cb->stream>>>(
      weights, experts, (const __nv_bfloat16 *)logits, n_experts, top_k, renormalize);
  UP_CUDA_CHECK_LAUNCH();
}

/* --- moe_sort ---------------------------------------------------------------------------- */

static __global__ void iota_kernel(int32_t *x, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    x[i] = (int32_t)i;
}

static __global__ void scatter_pairs_kernel(int32_t *source_rows, int32_t *slot_of, const int32_t *pair_of_slot,
                                            int64_t n, int32_t top_k) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int32_t pair = pair_of_slot[i];
    source_rows[i] = pair / top_k;
    slot_of[pair] = (int32_t)i;
  }
}

/* offsets[e] = the first grouped slot whose expert is >= e (e = 0..n_experts). An id
 * outside [0, n_experts) sorts past every valid one (unsigned keys), so offsets[E]
 * then falls short of the pair count: the host reports it. */
static __global__ void expert_offsets_kernel(int32_t *offsets, const uint32_t *sorted, int64_t n, int32_t n_experts) {
  for (int32_t e = blockIdx.x * blockDim.x + threadIdx.x; e <= n_experts; e += gridDim.x * blockDim.x) {
    int64_t lo = 0, hi = n;
    while (lo < hi) {
      const int64_t mid = (lo + hi) / 2;
      if (sorted[mid] < (uint32_t)e) lo = mid + 1; else hi = mid;
    }
    offsets[e] = (int32_t)lo;
  }
}

extern "C" void up_cuda_moe_sort(up_backend *be, int32_t *source_rows, int32_t *slot_of, int32_t *expert_offsets_host,
                                 const int32_t *experts, int32_t n_tokens, int32_t top_k, int32_t n_experts) {
  const int64_t pairs = (int64_t)n_tokens * top_k;
  if (n_experts < 1 || top_k < 1 || pairs > INT_MAX)
    UP_FATAL("moe_sort: %d tokens x top %d of %d experts", (int)n_tokens, (int)top_k, (int)n_experts);
  up_cuda_backend *cb = up_cuda_impl(be);
  cudaStream_t st = cb->stream;
  /* One scratch buffer: sorted keys, pair ids in and out, offsets, CUB's temp. Kept on
   * the backend and grown on demand: allocating it per call (stream-ordered) returned
   * its memory to the driver at the sync below and mapped it again in every MoE layer. */
  size_t temp_bytes = 0;
  UP_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, (const uint32_t *)nullptr, (uint32_t *)nullptr,
                                                (const int32_t *)nullptr, (int32_t *)nullptr, (int)pairs, 0, 32, st));
  const size_t n = (size_t)(pairs > 0 ? pairs : 1), words = 3 * n + (size_t)n_experts + 1;
  const size_t need = sizeof(int32_t) * words + temp_bytes + 256;
  if (need > cb->moe_sort_scratch_bytes) {
    if (cb->moe_sort_scratch) UP_CUDA_CHECK(cudaFree(cb->moe_sort_scratch)); /* waits for its last reader */
    cb->moe_sort_scratch = NULL;
    cb->moe_sort_scratch_bytes = 0;
    const size_t grown = need + need / 4; /* a little room: the next batch may route a few more pairs */
    const cudaError_t rc = cudaMalloc(&cb->moe_sort_scratch, grown);
    if (rc != cudaSuccess) UP_FATAL("moe_sort: %zu bytes of sort scratch: %s", grown, cudaGetErrorString(rc));
    cb->moe_sort_scratch_bytes = grown;
  }
  char *scratch = (char *)cb->moe_sort_scratch;
  uint32_t *sorted = (uint32_t *)scratch;
  int32_t *ids = (int32_t *)(sorted + n), *ids_sorted = ids + n, *offsets = ids_sorted + n;
  void *temp = scratch + ((sizeof(int32_t) * words + 255) / 256) * 256;
  if (pairs > 0) {
    iota_kernel<<<up_deltanet_blocks(pairs), 256, 0, st>>>(ids, pairs);
    UP_CUDA_CHECK_LAUNCH();
    UP_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, (const uint32_t *)experts, sorted, ids,
                                                  ids_sorted, (int)pairs, 0, 32, st));
    scatter_pairs_kernel<<<up_deltanet_blocks(pairs), 256, 0, st>>>(source_rows, slot_of, ids_sorted, pairs, top_k);
    UP_CUDA_CHECK_LAUNCH();
  }
  expert_offsets_kernel<<<up_deltanet_blocks((int64_t)n_experts + 1), 256, 0, st>>>(offsets, sorted, pairs,
                                                                                   n_experts);
  UP_CUDA_CHECK_LAUNCH();
  UP_CUDA_CHECK(cudaMemcpyAsync(expert_offsets_host, offsets, sizeof(int32_t) * ((size_t)n_experts + 1),
                                cudaMemcpyDeviceToHost, st));
  up_cuda_sync_and_check(cb);
  if (expert_offsets_host[n_experts] != pairs)
    UP_FATAL("moe_sort: %lld of %lld (token, choice) pairs name an expert outside 0..%d",
             (long long)(pairs - expert_offsets_host[n_experts]), (long long)pairs, (int)n_experts - 1);
}

/* --- moe_combine ------------------------------------------------------------------------ */

static __global__ void moe_combine_kernel(__nv_bfloat16 *out, const __nv_bfloat16 *expert_out, const int32_t *slot_of,
                                          const float *weights, const __nv_bfloat16 *shared_out,
                                          const __nv_bfloat16 *shared_gate, int32_t n_tokens, int32_t top_k,
                                          int32_t dim) {
  const int64_t n = (int64_t)n_tokens * dim;
  for (int64_t u = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; u < n; u += (int64_t)gridDim.x * blockDim.x) {
    const int64_t t = u / dim;
    const int32_t i = (int32_t)(u % dim);
    float acc = shared_out ? up_deltanet_sigmoid(__bfloat162float(shared_gate[t])) * __bfloat162float(shared_out[u])
                           : 0.0f;
    for (int32_t j = 0; j < top_k; ++j) {
      const int64_t pair = t * top_k + j;
      acc += weights[pair] * __bfloat162float(expert_out[(int64_t)slot_of[pair] * dim + i]);
    }
    out[u] = __float2bfloat16_rn(acc);
  }
}

extern "C" void up_cuda_moe_combine(up_backend *be, void *out, const void *expert_out, const int32_t *slot_of,
                                    const float *weights, const void *shared_out, const void *shared_gate,
                                    int32_t n_tokens, int32_t top_k, int32_t dim) {
  if (n_tokens <= 0 || dim <= 0) return;
  up_cuda_backend *cb = up_cuda_impl(be);
  moe_combine_kernel<<<up_deltanet_blocks((int64_t)n_tokens * dim), 256, 0, cb->stream>>>(
      (__nv_bfloat16 *)out, (const __nv_bfloat16 *)expert_out, slot_of, weights, (const __nv_bfloat16 *)shared_out,
      (const __nv_bfloat16 *)shared_gate, n_tokens, top_k, dim);
  UP_CUDA_CHECK_LAUNCH();
}
