/* sparse_block_cap.cu — the block methods' density cap on the GPU and their masks'
 * conversions (sparse_block_cap.cuh). The cap runs for every (sequence, head) at once,
 * with no host loop and no host copy:
 * 1. each list row counts its kept non-forced blocks (1 <= kb < b) at its place in
 *    (sequence, head, query block) order, and CUB's scan turns the counts into offsets,
 *    so each (sequence, head) is one contiguous segment in (b, kb) order;
 * 2. each row writes its blocks' scores (double) and mask positions there;
 * 3. CUB's segmented radix sort ranks every segment descending; it is stable, so equal
 *    scores keep the lower (b, kb) first: the CPU reference's order;
 * 4. one CTA per segment clears the blocks ranked at or past the segment's budget.
 * Knows no method's selection rule. */
#include <cub/cub.cuh>

#include "core/fatal.h"
#include "kernels/cuda/sparse/sparse_block_cap.cuh"

namespace {

constexpr int CAP_THREADS = 128;

struct cap_rows {
  const int32_t *qblock_start, *cu_seqlens, *kv_lens;
  int32_t n_seqs, n_heads, max_nq;
  int64_t n_rows;
};

/* Where list row r lives: its sequence s, query block b, the sequence's first query
 * block and query-block count, and its place in (head, query block) order inside the
 * sequence's rows. */
struct row_place {
  int32_t s, b, qb0, nq, h;
  int64_t ordered; /* qb0 * H + h * nq + b */
};

__device__ __forceinline__ row_place place_of(const cap_rows &c, int64_t r) {
  row_place x;
  const int32_t qbg = (int32_t)(r / c.n_heads);
  x.h = (int32_t)(r % c.n_heads);
  x.s = up_sparse_qblock_seq(c.qblock_start, c.n_seqs, qbg);
  x.qb0 = __ldg(c.qblock_start + x.s);
  x.nq = __ldg(c.qblock_start + x.s + 1) - x.qb0;
  x.b = qbg - x.qb0;
  x.ordered = (int64_t)x.qb0 * c.n_heads + (int64_t)x.h * x.nq + x.b;
  return x;
}

__global__ void cap_count(const cap_rows c, const uint8_t *mask, int32_t *counts) {
  const int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= c.n_rows) return;
  const row_place x = place_of(c, r);
  const uint8_t *m = mask + r * c.max_nq;
  int32_t count = 0;
  for (int32_t kb = 1; kb < x.b; ++kb) count += m[kb] != 0;
  counts[x.ordered] = count;
}

template <typename Score>
__global__ void cap_fill(const cap_rows c, const uint8_t *mask, const Score *score, const int32_t *offsets,
                         double *keys, int32_t *where) {
  const int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= c.n_rows) return;
  const row_place x = place_of(c, r);
  const uint8_t *m = mask + r * c.max_nq;
  int64_t at = offsets[x.ordered];
  for (int32_t kb = 1; kb < x.b; ++kb)
    if (m[kb]) {
      keys[at] = (double)score[r * c.max_nq + kb];
      where[at++] = (int32_t)(r * c.max_nq + kb);
    }
}

/* Segment (s, h) = items [offsets[qb0 H + h nq], offsets[qb0 H + (h + 1) nq]). */
__global__ void cap_segments(const cap_rows c, const int32_t *offsets, int32_t *begin, int32_t *end) {
  const int32_t seg = blockIdx.x * blockDim.x + threadIdx.x;
  if (seg >= c.n_seqs * c.n_heads) return;
  const int32_t s = seg / c.n_heads, h = seg % c.n_heads;
  const int32_t qb0 = __ldg(c.qblock_start + s), nq = __ldg(c.qblock_start + s + 1) - qb0;
  begin[seg] = offsets[(int64_t)qb0 * c.n_heads + (int64_t)h * nq];
  end[seg] = offsets[(int64_t)qb0 * c.n_heads + (int64_t)(h + 1) * nq];
}

/* One CTA per segment. The budget in the CPU's double arithmetic, unfused. */
__global__ void cap_cut(const cap_rows c, float cap, const int32_t *begin, const int32_t *end,
                        const int32_t *where_sorted, uint8_t *mask) {
  const int32_t seg = blockIdx.x, s = seg / c.n_heads;
  const int64_t nq = __ldg(c.qblock_start + s + 1) - __ldg(c.qblock_start + s);
  if (nq == 0) return;
  const int64_t causal = nq * (nq + 1) / 2, forced = nq > 1 ? 2 * nq - 1 : 1;
  int64_t budget = (int64_t)__dadd_rn(__dmul_rn((double)cap, (double)causal), 1e-6) - forced;
  budget = budget < 0 ? 0 : budget;
  const int64_t first = begin[seg], last = end[seg];
  if (last - first <= budget) return;
  for (int64_t i = first + budget + threadIdx.x; i < last; i += blockDim.x) mask[where_sorted[i]] = 0;
}

__global__ void mask_from_lists(int64_t n_rows, uint8_t *mask, int32_t max_nq, const int32_t *counts,
                                const int32_t *kept, int32_t kept_stride) {
  const int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= n_rows) return;
  for (int32_t i = 0; i < counts[r]; ++i) mask[r * max_nq + kept[r * kept_stride + i]] = 1;
}

__global__ void lists_from_mask(const cap_rows c, const uint8_t *mask, int32_t block, int32_t *counts,
                                int32_t *kept, int32_t kept_stride, double *pairs) {
  const int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= c.n_rows) return;
  const row_place x = place_of(c, r);
  const int32_t row0 = __ldg(c.cu_seqlens + x.s), n = __ldg(c.cu_seqlens + x.s + 1) - row0;
  int32_t count = 0;
  double covered = 0.0;
  if (__ldg(c.kv_lens + x.s) == n && x.nq == (n + block - 1) / block) {
    const int32_t m0 = x.b * block, m1 = m0 + block < n ? m0 + block : n;
    const double len = (double)(m1 - m0);
    const uint8_t *m = mask + r * c.max_nq;
    for (int32_t kb = 0; kb <= x.b; ++kb)
      if (m[kb]) {
        kept[r * kept_stride + count++] = kb;
        covered += kb < x.b ? len * block : len * (len + 1) / 2;
      }
  }
  counts[r] = count;
  if (covered > 0.0) atomicAdd(pairs, covered);
}

cap_rows rows_of(const up_sparse_pattern *pattern, const up_attn_batch *batch, int32_t max_nq) {
  cap_rows c;
  c.qblock_start = pattern->qblock_start;
  c.cu_seqlens = batch->cu_seqlens, c.kv_lens = batch->kv_lens;
  c.n_seqs = pattern->n_seqs, c.n_heads = pattern->n_heads, c.max_nq = max_nq;
  c.n_rows = up_sparse_pattern_list_rows(pattern);
  return c;
}

unsigned row_grid(int64_t n_rows) { return (unsigned)((n_rows + CAP_THREADS - 1) / CAP_THREADS); }

}  // namespace

void up_cuda_sparse_block_cap(up_sparse_scratch *sc, const up_sparse_pattern *pattern, const up_attn_batch *batch,
                              uint8_t *mask, int32_t max_nq, const float *score_f, const double *score_d, float cap) {
  if (cap >= 1.0f) return;
  if ((score_f == NULL) == (score_d == NULL))
    UP_FATAL("sparse density cap: exactly one of the float and double block scores must be given");
  const cap_rows c = rows_of(pattern, batch, max_nq);
  if (c.n_rows == 0) return;
  int64_t items = 0; /* at most every causal block of every (sequence, head) */
  for (int32_t s = 0; s < pattern->n_seqs; ++s) {
    const int64_t nq = pattern->qblock_start_host[s + 1] - pattern->qblock_start_host[s];
    items += nq * (nq + 1) / 2 * pattern->n_heads;
  }
  if (items > INT32_MAX || c.n_rows * (int64_t)max_nq > INT32_MAX || c.n_rows + 1 > INT32_MAX)
    UP_FATAL("sparse density cap: %lld blocks of %lld list rows exceed the sorts' int range", (long long)items,
             (long long)c.n_rows);
  const int32_t n_segs = pattern->n_seqs * pattern->n_heads;
  const cudaStream_t stream = sc->stream;
  int32_t *counts = (int32_t *)up_sparse_scratch_take(sc, sizeof(int32_t) * 2 * (size_t)(c.n_rows + 1), "cap counts");
  int32_t *offsets = counts + c.n_rows + 1;
  double *keys = (double *)up_sparse_scratch_take(sc, sizeof(double) * 2 * (size_t)items, "cap scores");
  int32_t *where = (int32_t *)up_sparse_scratch_take(sc, sizeof(int32_t) * 2 * (size_t)items, "cap positions");
  int32_t *segments = (int32_t *)up_sparse_scratch_take(sc, sizeof(int32_t) * 2 * (size_t)n_segs, "cap segments");
  size_t scan_temp = 0, sort_temp = 0;
  UP_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(NULL, scan_temp, counts, offsets, (int)(c.n_rows + 1), stream));
  UP_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
      NULL, sort_temp, keys, keys + items, where, where + items, (int)items, n_segs, segments, segments + n_segs, 0,
      (int)(sizeof(double) * 8), stream));
  void *temp = up_sparse_scratch_take(sc, scan_temp > sort_temp ? scan_temp : sort_temp, "cap scan and sort");

  UP_CUDA_CHECK(cudaMemsetAsync(counts, 0, sizeof(int32_t) * (size_t)(c.n_rows + 1), stream));
  cap_count<<<row_grid(c.n_rows), CAP_THREADS, 0, stream>>>(c, mask, counts);
  UP_CUDA_CHECK_LAUNCH();
  UP_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(temp, scan_temp, counts, offsets, (int)(c.n_rows + 1), stream));
  if (score_f)
    cap_fill<float><<<row_grid(c.n_rows), CAP_THREADS, 0, stream>>>(c, mask, score_f, offsets, keys, where);
  else
    cap_fill<double><<<row_grid(c.n_rows), CAP_THREADS, 0, stream>>>(c, mask, score_d, offsets, keys, where);
  UP_CUDA_CHECK_LAUNCH();
  cap_segments<<<(unsigned)((n_segs + CAP_THREADS - 1) / CAP_THREADS), CAP_THREADS, 0, stream>>>(
      c, offsets, segments, segments + n_segs);
  UP_CUDA_CHECK_LAUNCH();
  UP_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
      temp, sort_temp, keys, keys + items, where, where + items, (int)items, n_segs, segments, segments + n_segs, 0,
      (int)(sizeof(double) * 8), stream));
  cap_cut<<<(unsigned)n_segs, 256, 0, stream>>>(c, cap, segments, segments + n_segs, where + items, mask);
  UP_CUDA_CHECK_LAUNCH();
}

void up_cuda_sparse_mask_from_lists(up_sparse_scratch *sc, int64_t n_rows, uint8_t *mask, int32_t max_nq,
                                    const int32_t *counts, const int32_t *kept, int32_t kept_stride) {
  UP_CUDA_CHECK(cudaMemsetAsync(mask, 0, (size_t)n_rows * (size_t)max_nq, sc->stream));
  mask_from_lists<<<row_grid(n_rows), CAP_THREADS, 0, sc->stream>>>(n_rows, mask, max_nq, counts, kept, kept_stride);
  UP_CUDA_CHECK_LAUNCH();
}

void up_cuda_sparse_lists_from_mask(up_sparse_scratch *sc, const up_sparse_pattern *pattern,
                                    const up_attn_batch *batch, const uint8_t *mask, int32_t max_nq, int32_t block,
                                    int32_t *counts, int32_t *kept, int32_t kept_stride, double *pairs) {
  const cap_rows c = rows_of(pattern, batch, max_nq);
  UP_CUDA_CHECK(cudaMemsetAsync(pairs, 0, sizeof(double), sc->stream));
  if (c.n_rows == 0) return;
  lists_from_mask<<<row_grid(c.n_rows), CAP_THREADS, 0, sc->stream>>>(c, mask, block, counts, kept, kept_stride,
                                                                       pairs);
  UP_CUDA_CHECK_LAUNCH();
}

void up_cuda_sparse_cap_lists(up_sparse_scratch *sc, const up_sparse_pattern *pattern, const up_attn_batch *batch,
                              int32_t max_nq, int32_t block, const float *score, float cap, int32_t *counts,
                              int32_t *kept, int32_t kept_stride, double *pairs) {
  const int64_t n_rows = up_sparse_pattern_list_rows(pattern);
  uint8_t *mask = (uint8_t *)up_sparse_scratch_take(sc, (size_t)n_rows * (size_t)max_nq, "capped block mask");
  up_cuda_sparse_mask_from_lists(sc, n_rows, mask, max_nq, counts, kept, kept_stride);
  up_cuda_sparse_block_cap(sc, pattern, batch, mask, max_nq, score, NULL, cap);
  up_cuda_sparse_lists_from_mask(sc, pattern, batch, mask, max_nq, block, counts, kept, kept_stride, pairs);
}
