/* gpu_rank_sum_test.c — the deterministic all-reduce's GPU sum (kernels/cuda/
 * cuda_rank_sum.h) against its CPU reference (kernels/cpu/cpu_rank_sum.h), bit for bit:
 * fp32 and bf16 slices of 1 to 8 ranks, odd sizes and one past a grid of 65535 blocks
 * of 256 threads (the grid-stride loop), values over several binades so that sums round
 * and the order shows. This is what makes the nccl transport's deterministic mode give
 * the mpi transport's bits; it runs on one GPU, where the transport's own test cannot
 * have more than one rank. Exits 77 without a GPU. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "core/float16.h"
#include "core/rng.h"
#include "kernels/cpu/cpu_rank_sum.h"
#include "kernels/cuda/cuda_rank_sum.h"
#include "tests/gpu/gpu_check.h"

static void cuda_or_die(cudaError_t rc, const char *what) {
  if (rc != cudaSuccess) UP_FATAL("%s: %s", what, cudaGetErrorString(rc));
}

/* Rank r's element i: uniform in [-1, 1) times 2^k, k in [-8, 8). */
static float slice_value(int r, size_t i) {
  const int exponent = (int)(up_rng_u64(23, (uint64_t)r + 50, i) % 16) - 8;
  return ldexpf(up_rng_symmetric(23, (uint64_t)r, i), exponent);
}

/* One size, one element type, one rank count: returns the number of differing elements. */
static size_t differing(up_backend *be, size_t count, int ranks, bool bf16) {
  const size_t es = bf16 ? sizeof(uint16_t) : sizeof(float);
  unsigned char *slices = up_malloc_or_die(count * (size_t)ranks * es, "slices");
  unsigned char *want = up_malloc_or_die(count * es, "cpu sum"), *got = up_malloc_or_die(count * es, "gpu sum");
  for (int r = 0; r < ranks; ++r)
    for (size_t i = 0; i < count; ++i) {
      const float v = slice_value(r, i);
      unsigned char *at = slices + ((size_t)r * count + i) * es;
      if (bf16) *(uint16_t *)at = up_f32_to_bf16(v);
      else *(float *)at = v;
    }
  up_cpu_sum_rank_slices(slices, want, count, ranks, bf16);

  cudaStream_t stream = up_cuda_backend_stream(be);
  void *d_slices = be->ops->alloc(be, count * (size_t)ranks * es, "slices");
  void *d_out = be->ops->alloc(be, count * es, "sum");
  cuda_or_die(cudaMemcpyAsync(d_slices, slices, count * (size_t)ranks * es, cudaMemcpyHostToDevice, stream), "upload");
  cuda_or_die(up_cuda_sum_rank_slices(stream, d_slices, d_out, count, ranks, bf16), "launch");
  cuda_or_die(cudaMemcpyAsync(got, d_out, count * es, cudaMemcpyDeviceToHost, stream), "download");
  cuda_or_die(cudaStreamSynchronize(stream), "the sum");
  be->ops->free(be, d_slices);
  be->ops->free(be, d_out);

  size_t bad = 0;
  for (size_t i = 0; i < count; ++i)
    if (memcmp(want + i * es, got + i * es, es) != 0 && bad++ == 0)
      fprintf(stderr, "%s, %d ranks, %zu elements: element %zu differs\n", bf16 ? "bf16" : "f32", ranks, count, i);
  free(slices);
  free(want);
  free(got);
  return bad;
}

int main(void) {
  up_backend *be = gpu_check_cuda_backend();
  /* The last size needs more than 65535 blocks of 256 threads. */
  static const size_t sizes[] = {1, 3, 257, 65537, (size_t)65535 * 256 + 13};
  static const int rank_counts[] = {1, 2, 3, 4, 8};
  for (int b = 0; b < 2; ++b)
    for (int k = 0; k < 5; ++k)
      for (int s = 0; s < 5; ++s) {
        if (s == 4 && rank_counts[k] > 2) continue; /* the grid-stride size once per type suffices */
        const size_t bad = differing(be, sizes[s], rank_counts[k], b == 1);
        CHECK(bad == 0, "rank-order sum %s, %d rank(s), %zu elements: %zu differ from the CPU", b ? "bf16" : "f32",
              rank_counts[k], sizes[s], bad);
      }
  /* Nothing to sum is not an error and launches nothing. */
  CHECK(up_cuda_sum_rank_slices(up_cuda_backend_stream(be), NULL, NULL, 0, 4, false) == cudaSuccess,
        "zero elements: no launch, no error");
  be->ops->destroy(be);
  return gpu_check_finish();
}
