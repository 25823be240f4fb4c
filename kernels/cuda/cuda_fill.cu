/* cuda_fill.cu — device-side weight initialisation: the same counter-based draws as the
 * host (core/rng.h), computed where the weights live, so an 8B-parameter model
 * initialises in milliseconds instead of streaming tens of GB from the host. */
#include "kernels/cuda/cuda_backend_impl.h"
#include "core/rng.h"

static __global__ void fill_uniform_kernel(__nv_bfloat16 *dst, int64_t n, float bound, uint64_t seed,
                                           uint64_t stream) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dst[i] = __float2bfloat16_rn(bound * up_rng_symmetric(seed, stream, (uint64_t)i));
}

extern "C" void up_cuda_fill_uniform(up_backend *be, void *dst, size_t offset, size_t n, float bound, uint64_t seed,
                                     uint64_t stream) {
  if (n == 0) return;
  up_cuda_backend *cb = up_cuda_impl(be);
  const int threads = 256;
  const int64_t want = ((int64_t)n + threads - 1) / threads;
  const unsigned blocks = (unsigned)(want < (1 << 20) ? want : (1 << 20));
  fill_uniform_kernel<<<blocks, threads, 0, cb->stream>>>((__nv_bfloat16 *)dst + offset, (int64_t)n, bound, seed,
                                                          stream);
  UP_CUDA_CHECK_LAUNCH();
}
