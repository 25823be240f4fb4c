/* sparse_estimate_common.cuh — what the CUDA kernels of the sparse baselines share
 * (kernels/cuda/sparse/): finding a query block's sequence, the per-sequence shape check
 * a kernel reports through the backend's index-error slot, a per-call scratch of
 * stream-ordered allocations, and the last steps of every estimator: key-range counts
 * scanned into range_ptr (CUB), the ranges written, and the one small host copy of the
 * layer (covered pairs and the range total, checked against the capacity). Included by
 * .cu files only; knows no method's selection rule. */
#ifndef UP_SPARSE_ESTIMATE_COMMON_CUH
#define UP_SPARSE_ESTIMATE_COMMON_CUH

#include <cub/cub.cuh>
#include <cuda_runtime.h>
#include <stdint.h>

#include "kernels/cuda/cuda_backend_impl.h"
#include "kernels/sparse_attention_ops.h"

/* The last i in [0, n) with starts[i] <= x (starts ascending, starts[0] <= x): the
 * owner of item x when starts[i] is where owner i's items begin. */
template <typename T>
__device__ __forceinline__ int32_t up_sparse_owner(const T *starts, int32_t n, int64_t x) {
  int32_t lo = 0, hi = n - 1;
  while (lo < hi) {
    const int32_t mid = (lo + hi + 1) >> 1;
    if ((int64_t)__ldg(starts + mid) <= x)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

/* The sequence whose query blocks include global query block qb (sequences without
 * blocks repeat a start and are never chosen for a block they lack). */
__device__ __forceinline__ int32_t up_sparse_qblock_seq(const int32_t *qblock_start, int32_t n_seqs, int32_t qb) {
  return up_sparse_owner(qblock_start, n_seqs, qb);
}

__device__ __forceinline__ void up_sparse_report(up_cuda_index_error *e, int32_t op, int32_t seq, int32_t value) {
  if (atomicCAS(&e->flagged, 0, 1) == 0) {
    e->op = op;
    e->row = seq;
    e->value = value;
  }
}

/* A sparse sequence must be a whole-prompt prefill (kv_len == n) with ceil(n / block_q)
 * query blocks; otherwise thread 0 reports it (UP_FATAL at the next synchronising call)
 * and the caller's CTA returns. */
__device__ __forceinline__ bool up_sparse_sequence_ok(up_cuda_index_error *e, int32_t s, int32_t n, int32_t kv_len,
                                                      int32_t nq, int32_t block_q) {
  if (kv_len != n) {
    if (threadIdx.x == 0) up_sparse_report(e, UP_CUDA_OP_SPARSE_KV_LEN, s, kv_len);
    return false;
  }
  if (nq != (n + block_q - 1) / block_q) {
    if (threadIdx.x == 0) up_sparse_report(e, UP_CUDA_OP_SPARSE_QBLOCKS, s, nq);
    return false;
  }
  return true;
}

/* What the estimators bring back to the host: the one small copy per layer. */
typedef struct up_sparse_totals {
  double pairs;   /* causal query-key pairs the pattern covers, summed over heads */
  int32_t ranges; /* range_ptr[n_list_rows] */
  int32_t columns;
} up_sparse_totals;

enum { UP_SPARSE_SCRATCH_MAX = 48 }; /* MInference takes about 24 */

/* Device memory of one estimator call, from the stream-ordered allocator (reused from its
 * pool, so no per-call cudaMalloc cost), freed in stream order by close. */
typedef struct up_sparse_scratch {
  cudaStream_t stream;
  void *items[UP_SPARSE_SCRATCH_MAX];
  int32_t n;
  up_sparse_totals *totals;
} up_sparse_scratch;

/* A pattern without list rows (no sparse sequence in the batch): its two offsets
 * arrays get their single 0, its totals 0, and true comes back; false when there are
 * rows. */
bool up_sparse_pattern_empty(up_sparse_pattern *pattern, cudaStream_t stream);

/* A buffer of `bytes` from the pool, named in the out-of-memory error. */
void *up_sparse_scratch_take(up_sparse_scratch *sc, size_t bytes, const char *what);
/* Starts a call's scratch on the stream, with zeroed totals. */
void up_sparse_scratch_open(up_sparse_scratch *sc, cudaStream_t stream);

/* ptr[0] = 0 and ptr[1 ..] the inclusive sum of counts[n_rows] (CUB), and ptr[n_rows]
 * copied to *total (device). */
void up_sparse_scan_counts(up_sparse_scratch *sc, const int32_t *counts, int32_t *ptr, int64_t n_rows,
                           int32_t *total);

/* Scan counts[n_rows] into range_ptr[1 ..] (range_ptr[0] = 0), then
 * range_start[range_ptr[r] + i] = kept[r * kept_stride + i] * block for i < counts[r]
 * (nothing past the capacity: close refuses the pattern then); column_ptr all zeros. */
void up_sparse_write_ranges(up_sparse_scratch *sc, up_sparse_pattern *pattern, const int32_t *counts,
                            const int32_t *kept, int32_t kept_stride, int32_t block, int64_t n_rows);

/* The layer's one host copy: the totals; then the scratch goes back to the pool, any
 * shape error a kernel reported is raised, and a pattern past its capacity is refused
 * naming `who`. Sets the pattern's n_ranges and n_columns; returns the covered pairs. */
double up_sparse_scratch_close(up_sparse_scratch *sc, up_backend *be, up_sparse_pattern *pattern,
                               const char *who);

#endif
