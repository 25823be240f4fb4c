/* cuda_rank_sum.cu — the rank-order sum of gathered slices (see cuda_rank_sum.h). One
 * thread per element walks the slices in rank order; __fadd_rn keeps each addition a
 * plain IEEE add, never contracted or reassociated. */
#include "kernels/cuda/cuda_rank_sum.h"

#include <cuda_bf16.h>

__global__ void sum_rank_slices_f32(const float *slices, float *out, size_t count, int ranks) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x) {
    float acc = slices[i];
    for (int r = 1; r < ranks; ++r) acc = __fadd_rn(acc, slices[(size_t)r * count + i]);
    out[i] = acc;
  }
}

__global__ void sum_rank_slices_bf16(const __nv_bfloat16 *slices, __nv_bfloat16 *out, size_t count, int ranks) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x) {
    float acc = __bfloat162float(slices[i]);
    for (int r = 1; r < ranks; ++r) acc = __fadd_rn(acc, __bfloat162float(slices[(size_t)r * count + i]));
    out[i] = __float2bfloat16_rn(acc);
  }
}

extern "C" cudaError_t up_cuda_sum_rank_slices(cudaStream_t stream, const void *slices, void *out, size_t count,
                                               int ranks, bool bf16) {
  if (count == 0) return cudaSuccess;
  const int threads = 256;
  const size_t wanted = (count + threads - 1) / threads;
  const int blocks = wanted < 65535 ? (int)wanted : 65535; /* a grid-stride loop covers the rest */
  if (bf16)
    sum_rank_slices_bf16<<<blocks, threads, 0, stream>>>((const __nv_bfloat16 *)slices, (__nv_bfloat16 *)out, count,
                                                         ranks);
  else
    sum_rank_slices_f32<<<blocks, threads, 0, stream>>>((const float *)slices, (float *)out, count, ranks);
  return cudaGetLastError();
}
