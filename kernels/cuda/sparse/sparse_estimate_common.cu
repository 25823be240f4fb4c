/* sparse_estimate_common.cu — the host side of sparse_estimate_common.cuh: the per-call
 * scratch, the range writing every estimator ends with, and the layer's host copy. */
#include "kernels/cuda/sparse/sparse_estimate_common.cuh"

#include "core/fatal.h"

bool up_sparse_pattern_empty(up_sparse_pattern *pattern, cudaStream_t stream) {
  if (up_sparse_pattern_list_rows(pattern) != 0) return false;
  pattern->n_ranges = pattern->n_columns = 0;
  UP_CUDA_CHECK(cudaMemsetAsync(pattern->range_ptr, 0, sizeof(int32_t), stream));
  UP_CUDA_CHECK(cudaMemsetAsync(pattern->column_ptr, 0, sizeof(int32_t), stream));
  return true;
}

void *up_sparse_scratch_take(up_sparse_scratch *sc, size_t bytes, const char *what) {
  if (sc->n == UP_SPARSE_SCRATCH_MAX)
    UP_FATAL("sparse estimate: more than %d scratch buffers (%s)", UP_SPARSE_SCRATCH_MAX, what);
  void *p = NULL;
  const cudaError_t rc = cudaMallocAsync(&p, bytes ? bytes : 1, sc->stream);
  if (rc != cudaSuccess)
    UP_FATAL("sparse estimate: out of GPU memory allocating %zu bytes for %s: %s", bytes, what,
             cudaGetErrorString(rc));
  sc->items[sc->n++] = p;
  return p;
}

/* Bytes the device's default pool keeps mapped across a stream drain. Its default, 0,
 * hands every freed scratch buffer back to the driver at each layer's one sync, so the
 * next layer maps its ~60 MB (32K, MInference) again: a candidate for MInference's
 * unexplained ~50 ms a layer (docs/kernels/sparse_attention.md). Bounded, so that the
 * multi-GB buffers of 128K prompts are still returned for the rest of the step. */
#define SPARSE_SCRATCH_KEPT_BYTES (512ull << 20)

void up_sparse_scratch_open(up_sparse_scratch *sc, cudaStream_t stream) {
  int device = 0;
  cudaMemPool_t pool;
  uint64_t kept = SPARSE_SCRATCH_KEPT_BYTES;
  UP_CUDA_CHECK(cudaGetDevice(&device));
  UP_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
  UP_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &kept));
  sc->stream = stream;
  sc->n = 0;
  sc->totals = (up_sparse_totals *)up_sparse_scratch_take(sc, sizeof(up_sparse_totals), "sparse estimate totals");
  UP_CUDA_CHECK(cudaMemsetAsync(sc->totals, 0, sizeof(up_sparse_totals), stream));
}

void up_sparse_scan_counts(up_sparse_scratch *sc, const int32_t *counts, int32_t *ptr, int64_t n_rows,
                           int32_t *total) {
  if (n_rows > INT32_MAX) UP_FATAL("sparse estimate: %lld list rows exceed the scan's int range", (long long)n_rows);
  UP_CUDA_CHECK(cudaMemsetAsync(ptr, 0, sizeof(int32_t), sc->stream));
  size_t temp_bytes = 0;
  UP_CUDA_CHECK(cub::DeviceScan::InclusiveSum(NULL, temp_bytes, counts, ptr + 1, (int)n_rows, sc->stream));
  void *temp = up_sparse_scratch_take(sc, temp_bytes, "sparse estimate scan");
  UP_CUDA_CHECK(cub::DeviceScan::InclusiveSum(temp, temp_bytes, counts, ptr + 1, (int)n_rows, sc->stream));
  UP_CUDA_CHECK(cudaMemcpyAsync(total, ptr + n_rows, sizeof(int32_t), cudaMemcpyDeviceToDevice, sc->stream));
}

/* One warp per list row. */
static __global__ void write_ranges_kernel(const int32_t *range_ptr, const int32_t *counts, const int32_t *kept,
                                           int32_t kept_stride, int32_t block, int64_t n_rows, int32_t *range_start,
                                           int64_t capacity) {
  const int64_t r = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x & 31;
  if (r >= n_rows) return;
  const int64_t start = range_ptr[r];
  const int32_t count = counts[r];
  for (int32_t i = lane; i < count; i += 32)
    if (start + i < capacity) range_start[start + i] = kept[r * kept_stride + i] * block;
}

void up_sparse_write_ranges(up_sparse_scratch *sc, up_sparse_pattern *pattern, const int32_t *counts,
                            const int32_t *kept, int32_t kept_stride, int32_t block, int64_t n_rows) {
  UP_CUDA_CHECK(cudaMemsetAsync(pattern->column_ptr, 0, sizeof(int32_t) * (size_t)(n_rows + 1), sc->stream));
  up_sparse_scan_counts(sc, counts, pattern->range_ptr, n_rows, &sc->totals->ranges);
  const unsigned grid = (unsigned)((n_rows + 7) / 8);
  write_ranges_kernel<<<grid, 256, 0, sc->stream>>>(pattern->range_ptr, counts, kept, kept_stride, block, n_rows,
                                                    pattern->range_start, pattern->range_capacity);
  UP_CUDA_CHECK_LAUNCH();
}

double up_sparse_scratch_close(up_sparse_scratch *sc, up_backend *be, up_sparse_pattern *pattern,
                               const char *who) {
  up_cuda_backend *cb = up_cuda_impl(be);
  up_sparse_totals host;
  UP_CUDA_CHECK(cudaMemcpyAsync(&host, sc->totals, sizeof host, cudaMemcpyDeviceToHost, sc->stream));
  for (int32_t i = 0; i < sc->n; ++i) UP_CUDA_CHECK(cudaFreeAsync(sc->items[i], sc->stream));
  sc->n = 0;
  up_cuda_sync_and_check(cb); /* also raises a shape error a kernel reported */
  if (host.ranges > pattern->range_capacity || host.columns > pattern->column_capacity)
    UP_FATAL("%s: the pattern needs %d key ranges and %d extra keys, its capacity is %lld and %lld", who,
             (int)host.ranges, (int)host.columns, (long long)pattern->range_capacity,
             (long long)pattern->column_capacity);
  pattern->n_ranges = host.ranges;
  pattern->n_columns = host.columns;
  return host.pairs;
}
