/* minference_estimate.cu — MInference's vertical-slash estimation on the GPU
 * (kernels/sparse_attention_ops.h, UP_MINFERENCE_ESTIMATE_KERNEL; the CPU reference is
 * kernels/cpu/sparse_minference.c). No per-head host loop; one small host copy per layer.
 * A segment is one (sparse sequence, head): its 64 * nq score slots (nq query blocks, so
 * at least the n keys; the slots past n score -inf and are never chosen).
 * 1. scores: per (segment, chunk of 128 keys) the last lq queries' logits
 *    bf16(bf16(q.k) / sqrt(d)) (fp32 dots of bf16 values; the reference sums in float64
 *    before the same roundings), first for each query row's float64 maximum and sum of
 *    the chunk, combined per row, then again for the fp32 probabilities: each key's
 *    column sum is written by the chunk that owns it, the diagonal sums go through shared
 *    memory and a few float64 atomics per chunk.
 * 2. the forced columns and diagonals (+inf), then CUB's segmented radix sort (stable, so
 *    ties keep the lower index) of both score arrays, descending.
 * 3. per segment, the top nv columns marked and compacted ascending, the top ns offsets
 *    compacted descending (nv, ns after BASELINES.md: max(v, 30), max(s, 50), at most n;
 *    the density cap lowers v and s first).
 * 4. convert_vertical_slash_indexes, one thread per list row, run twice: to count each
 *    row's ranges and extra keys (scanned into range_ptr / column_ptr with CUB) and to
 *    write them, with each row's covered pairs. */
#include <cub/cub.cuh>
#include <math.h>

#include "kernels/cuda/attention/attn_common.cuh"
#include "kernels/cuda/cuda_backend_impl.h"
#include "kernels/cuda/sparse/sparse_cuda.h"
#include "kernels/cuda/sparse/sparse_estimate_common.cuh"

namespace {

constexpr int MI_BLOCK = 64;
constexpr int MI_MIN_VERTICAL = 30;
constexpr int MI_MIN_SLASH = 50;
constexpr int MI_CHUNK = 128; /* keys per scores CTA */
constexpr int MI_THREADS = 256;
constexpr int MI_MAX_LAST_Q = 64; /* query rows a scores CTA holds */

struct mi_params {
  const __nv_bfloat16 *qkv, *k_pool;
  const int32_t *cu_seqlens, *kv_lens, *block_tables, *qblock_start;
  const int32_t *seg_seq;      /* [n_segments] the sequence of each segment */
  const int32_t *seq_seg;      /* [n_seqs] the first segment of each sparse sequence (-1: none) */
  const int64_t *seg_offset;   /* [n_segments + 1] first slot of each segment */
  const int32_t *chunk_seg;    /* [n_chunks] the segment of each scores CTA */
  const int32_t *chunk_first;  /* [n_chunks] its first key */
  const int32_t *vertical, *slash; /* [n_heads] v and s */
  int64_t qkv_stride;
  int32_t n_seqs, n_heads, group, head_dim, kv_dim, max_blocks_per_seq;
  up_attn_divider block_tokens;
  int32_t last_q, forced_columns, forced_diagonals;
  float density_cap;
  float inv_sqrt_d;
  int32_t max_chunks;          /* chunks of the longest segment: the row statistics' stride */
  double *row_stats;           /* [n_segments][MI_MAX_LAST_Q][max_chunks][2] per chunk max, sum */
  double *row_final;           /* [n_segments][MI_MAX_LAST_Q][2] max, sum */
  double *vertical_score, *slash_score; /* [slots] */
  up_cuda_index_error *error;
};

__device__ __forceinline__ int32_t seg_rows(const mi_params &p, int32_t seg, int32_t *row0) {
  const int32_t s = __ldg(p.seg_seq + seg);
  *row0 = __ldg(p.cu_seqlens + s);
  return __ldg(p.cu_seqlens + s + 1) - *row0;
}

/* The segment's sequence is a whole-prompt prefill of the pattern's shape (else
 * reported, and the CTA reads nothing). */
__device__ __forceinline__ bool segment_ok(const mi_params &p, int32_t seg) {
  const int32_t s = __ldg(p.seg_seq + seg);
  const int32_t rows = __ldg(p.cu_seqlens + s + 1) - __ldg(p.cu_seqlens + s);
  const int32_t nq = __ldg(p.qblock_start + s + 1) - __ldg(p.qblock_start + s);
  return up_sparse_sequence_ok(p.error, s, rows, __ldg(p.kv_lens + s), nq, MI_BLOCK);
}

/* Logits of the lq last queries against the chunk's keys into logit[r][c] (fp32), -inf
 * where masked (key after the query, past n, or row past lq). Shared layout: queries
 * [MI_MAX_LAST_Q][d], keys [MI_CHUNK][d], bf16. */
__device__ void chunk_logits(const mi_params &p, int32_t seg, int32_t first_key, __nv_bfloat16 *q_s,
                             __nv_bfloat16 *k_s, float *logit, int32_t *n_out, int32_t *lq_out) {
  int32_t row0;
  const int32_t n = seg_rows(p, seg, &row0);
  const int32_t s = __ldg(p.seg_seq + seg);
  const int32_t h = (int32_t)(seg % p.n_heads), kvh = h / p.group, d = p.head_dim, ch = d / 8;
  const int32_t lq = min(p.last_q, n);
  const int32_t *block_table = p.block_tables + (int64_t)s * p.max_blocks_per_seq;
  for (int32_t i = threadIdx.x; i < MI_MAX_LAST_Q * ch; i += blockDim.x) {
    const int32_t r = i / ch, c = i % ch;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (r < lq) v = *(const uint4 *)(p.qkv + (int64_t)(row0 + n - lq + r) * p.qkv_stride + (int64_t)h * d + c * 8);
    *(uint4 *)(q_s + r * d + c * 8) = v;
  }
  for (int32_t i = threadIdx.x; i < MI_CHUNK * ch; i += blockDim.x) {
    const int32_t r = i / ch, c = i % ch, key = first_key + r;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (key < n)
      v = *(const uint4 *)(p.k_pool + up_attn_entry_offset(block_table, key, p.block_tokens, p.kv_dim) + kvh * d +
                           c * 8);
    *(uint4 *)(k_s + r * d + c * 8) = v;
  }
  __syncthreads();
  for (int32_t i = threadIdx.x; i < MI_MAX_LAST_Q * MI_CHUNK; i += blockDim.x) {
    const int32_t r = i / MI_CHUNK, c = i % MI_CHUNK, key = first_key + c;
    float out = -INFINITY;
    if (r < lq && key < n && key <= n - lq + r) {
      const __nv_bfloat162 *qa = (const __nv_bfloat162 *)(q_s + r * d);
      const __nv_bfloat162 *ka = (const __nv_bfloat162 *)(k_s + c * d);
      float acc = 0.0f;
      /* rotated start: the key rows of a warp hit different banks; the pair index wraps
       * by a compare, not a modulo by the runtime d / 2 per product (same order) */
      const int32_t half = d / 2;
      int32_t xx = c % half;
      for (int32_t x = 0; x < half; ++x) {
        const float2 a = __bfloat1622float2(qa[xx]), b = __bfloat1622float2(ka[xx]);
        acc = fmaf(a.x, b.x, acc);
        acc = fmaf(a.y, b.y, acc);
        if (++xx == half) xx = 0;
      }
      const float rounded = __bfloat162float(__float2bfloat16_rn(acc));
      out = __bfloat162float(__float2bfloat16_rn(rounded * p.inv_sqrt_d));
    }
    logit[i] = out;
  }
  __syncthreads();
  *n_out = n;
  *lq_out = lq;
}

__global__ void __launch_bounds__(MI_THREADS) mi_row_stats(const mi_params p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __nv_bfloat16 *q_s = (__nv_bfloat16 *)smem_raw;
  __nv_bfloat16 *k_s = q_s + MI_MAX_LAST_Q * p.head_dim;
  float *logit = (float *)(k_s + MI_CHUNK * p.head_dim);
  const int32_t chunk = blockIdx.x, seg = __ldg(p.chunk_seg + chunk), first_key = __ldg(p.chunk_first + chunk);
  const int32_t chunk_in_seg = first_key / MI_CHUNK;
  if (!segment_ok(p, seg)) return;
  int32_t n, lq;
  chunk_logits(p, seg, first_key, q_s, k_s, logit, &n, &lq);
  /* each of the first 64 threads folds one query row over the chunk, in key order */
  if (threadIdx.x < MI_MAX_LAST_Q) {
    double m = -INFINITY, z = 0.0;
    for (int32_t c = 0; c < MI_CHUNK; ++c) {
      const double x = logit[threadIdx.x * MI_CHUNK + c];
      if (x == -INFINITY) continue;
      if (x > m) z = z * exp(m - x), m = x;
      z += exp(x - m);
    }
    double *st = p.row_stats + (((int64_t)seg * MI_MAX_LAST_Q + threadIdx.x) * p.max_chunks + chunk_in_seg) * 2;
    st[0] = m, st[1] = z;
  }
}

/* One thread per (segment, query row): the row's maximum and sum over its chunks. */
__global__ void mi_row_combine(const mi_params p, int32_t n_segments) {
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (int64_t)n_segments * MI_MAX_LAST_Q) return;
  const int32_t seg = (int32_t)(i / MI_MAX_LAST_Q);
  const int32_t chunks = (int32_t)((__ldg(p.seg_offset + seg + 1) - __ldg(p.seg_offset + seg)) / MI_CHUNK);
  const double *st = p.row_stats + i * p.max_chunks * 2;
  double m = -INFINITY;
  for (int32_t c = 0; c < chunks; ++c) m = fmax(m, st[2 * c]);
  double z = 0.0;
  for (int32_t c = 0; c < chunks; ++c)
    if (st[2 * c] != -INFINITY) z += st[2 * c + 1] * exp(st[2 * c] - m);
  p.row_final[2 * i] = m, p.row_final[2 * i + 1] = z;
}

__global__ void __launch_bounds__(MI_THREADS) mi_accumulate(const mi_params p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __nv_bfloat16 *q_s = (__nv_bfloat16 *)smem_raw;
  __nv_bfloat16 *k_s = q_s + MI_MAX_LAST_Q * p.head_dim;
  float *logit = (float *)(k_s + MI_CHUNK * p.head_dim);
  double *diag = (double *)(logit + MI_MAX_LAST_Q * MI_CHUNK); /* [MI_CHUNK + MI_MAX_LAST_Q] */
  const int32_t chunk = blockIdx.x, seg = __ldg(p.chunk_seg + chunk), first_key = __ldg(p.chunk_first + chunk);
  if (!segment_ok(p, seg)) return; /* reported by mi_row_stats; no pool reads past the cache */
  for (int32_t i = threadIdx.x; i < MI_CHUNK + MI_MAX_LAST_Q; i += blockDim.x) diag[i] = 0.0;
  int32_t n, lq;
  chunk_logits(p, seg, first_key, q_s, k_s, logit, &n, &lq);
  const double *fin = p.row_final + (int64_t)seg * MI_MAX_LAST_Q * 2;
  /* probabilities as fp32 (the reference's), in place */
  for (int32_t i = threadIdx.x; i < MI_MAX_LAST_Q * MI_CHUNK; i += blockDim.x) {
    const int32_t r = i / MI_CHUNK;
    const float x = logit[i];
    logit[i] = x == -INFINITY ? 0.0f : (float)(exp((double)x - fin[2 * r]) / fin[2 * r + 1]);
  }
  __syncthreads();
  const int64_t slot0 = __ldg(p.seg_offset + seg);
  /* column sums: one thread per key of the chunk; diagonal offsets o = (n - lq + r) - key
   * span [n - lq - last key, n - 1 - first key]: local index o - (n - lq - first_key - 127) */
  const int32_t o_base = n - lq - first_key - (MI_CHUNK - 1);
  if (threadIdx.x < MI_CHUNK) {
    const int32_t c = threadIdx.x, key = first_key + c;
    double col = 0.0;
    for (int32_t r = 0; r < lq; ++r) col += (double)logit[r * MI_CHUNK + c];
    p.vertical_score[slot0 + key] = key < n ? col : -INFINITY;
  }
  /* diagonal sums: thread t owns local diagonal t (and t + 256 ...), summing its entries in row order */
  for (int32_t t = threadIdx.x; t < MI_CHUNK + MI_MAX_LAST_Q - 1; t += blockDim.x) {
    double acc = 0.0;
    for (int32_t r = 0; r < lq; ++r) {
      /* o = n - lq + r - key = o_base + t  ->  c = (n - lq + r) - first_key - (o_base + t) */
      const int32_t c = (MI_CHUNK - 1) + r - t;
      if (c >= 0 && c < MI_CHUNK) acc += (double)logit[r * MI_CHUNK + c];
    }
    diag[t] = acc;
  }
  __syncthreads();
  for (int32_t t = threadIdx.x; t < MI_CHUNK + MI_MAX_LAST_Q - 1; t += blockDim.x) {
    const int32_t o = o_base + t;
    if (o >= 0 && o < n && diag[t] != 0.0) atomicAdd(p.slash_score + slot0 + o, diag[t]);
  }
}

/* Forced entries +inf, slots past n -inf (slash only: the columns' are written above). */
__global__ void mi_finalize(const mi_params p, int64_t n_slots, int32_t n_segments) {
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n_slots) return;
  const int32_t seg = up_sparse_owner(p.seg_offset, n_segments, i);
  int32_t row0;
  const int32_t n = seg_rows(p, seg, &row0);
  const int32_t j = (int32_t)(i - __ldg(p.seg_offset + seg));
  if (j >= n) {
    p.slash_score[i] = -INFINITY;
    return;
  }
  if (j < p.forced_columns) p.vertical_score[i] = INFINITY;
  if (j < p.forced_diagonals) p.slash_score[i] = INFINITY;
}

__global__ void mi_iota(int32_t *values, const int64_t *seg_offset, int64_t n_slots, int32_t n_segments) {
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n_slots) return;
  values[i] = (int32_t)(i - __ldg(seg_offset + up_sparse_owner(seg_offset, n_segments, i)));
}

/* v and s of head h for a sequence of n rows: the density cap first, then the floors. */
__device__ __forceinline__ void budgets(const mi_params &p, int32_t h, int32_t n, int32_t *nv, int32_t *ns) {
  int32_t v = __ldg(p.vertical + h), s = __ldg(p.slash + h);
  if (p.density_cap < 1.0f) {
    const int32_t cap = (int32_t)floor((double)p.density_cap * n);
    if (v > cap) v = cap > p.forced_columns ? cap : p.forced_columns;
    if (s > cap) s = cap > p.forced_diagonals ? cap : p.forced_diagonals;
  }
  *nv = v < MI_MIN_VERTICAL ? min(MI_MIN_VERTICAL, n) : min(v, n);
  *ns = s < MI_MIN_SLASH ? min(MI_MIN_SLASH, n) : min(s, n);
}

/* One CTA per segment: mark the top nv columns and ns offsets (sorted indices in
 * sorted_*), then compact them in index order: columns ascending, offsets descending,
 * into columns / offsets at the segment's slots. */
__global__ void __launch_bounds__(1024) mi_select(const mi_params p, const int32_t *sorted_columns,
                                                  const int32_t *sorted_offsets, uint8_t *mark_columns,
                                                  uint8_t *mark_offsets, int32_t *columns, int32_t *offsets,
                                                  int32_t *counts /* [n_segments][2] */) {
  typedef cub::BlockScan<int32_t, 1024> scanner;
  __shared__ typename scanner::TempStorage tmp;
  const int32_t seg = blockIdx.x;
  int32_t row0;
  const int32_t n = seg_rows(p, seg, &row0);
  const int32_t h = seg % p.n_heads;
  int32_t nv, ns;
  budgets(p, h, n, &nv, &ns);
  const int64_t slot0 = __ldg(p.seg_offset + seg);
  const int32_t len = (int32_t)(__ldg(p.seg_offset + seg + 1) - slot0);
  for (int32_t i = threadIdx.x; i < len; i += blockDim.x) mark_columns[slot0 + i] = 0, mark_offsets[slot0 + i] = 0;
  __syncthreads();
  for (int32_t i = threadIdx.x; i < nv; i += blockDim.x) mark_columns[slot0 + sorted_columns[slot0 + i]] = 1;
  for (int32_t i = threadIdx.x; i < ns; i += blockDim.x) mark_offsets[slot0 + sorted_offsets[slot0 + i]] = 1;
  __syncthreads();
  int32_t carried_c = 0, carried_o = 0;
  for (int32_t base = 0; base < n; base += 1024) {
    const int32_t j = base + threadIdx.x;
    const int32_t jd = n - 1 - j; /* offsets walked from the largest */
    const int32_t fc = j < n ? mark_columns[slot0 + j] : 0;
    const int32_t fo = j < n ? mark_offsets[slot0 + jd] : 0;
    int32_t pc, po, tc, to;
    scanner(tmp).ExclusiveSum(fc, pc, tc);
    __syncthreads();
    scanner(tmp).ExclusiveSum(fo, po, to);
    __syncthreads();
    if (fc) columns[slot0 + carried_c + pc] = j;
    if (fo) offsets[slot0 + carried_o + po] = jd;
    carried_c += tc, carried_o += to;
  }
  if (threadIdx.x == 0) counts[2 * seg] = carried_c, counts[2 * seg + 1] = carried_o;
}

/* Rows t in [m0, m1) see keys j <= t of [a, e): sum of max(0, min(t, e-1) - a + 1), for
 * t from max(m0, a), in closed form: rows before e - 1 see t - a + 1 keys (an arithmetic
 * series), the rest all e - a. Whole numbers far below 2^53, so the double is the loop's
 * sum exactly (no per-row loop: a list row's walk holds up to n / 64 ranges). */
__device__ __forceinline__ double range_pairs(int64_t a, int64_t e, int64_t m0, int64_t m1) {
  const int64_t t0 = m0 > a ? m0 : a;
  if (t0 >= m1) return 0.0;
  const int64_t rising_end = m1 < e - 1 ? m1 : e - 1; /* rows [t0, rising_end) see t - a + 1 keys */
  const int64_t rising = rising_end > t0 ? rising_end - t0 : 0;
  const int64_t flat_start = t0 > e - 1 ? t0 : e - 1; /* rows [flat_start, m1) see e - a keys */
  const int64_t flat = m1 > flat_start ? m1 - flat_start : 0;
  return (double)(rising * (t0 - a + 1) + rising * (rising - 1) / 2 + flat * (e - a));
}

/* convert_vertical_slash_indexes for list row (segment seg, query block b), after
 * kernels/cpu/sparse_minference.c's walk. With write false it only counts. */
__device__ void convert_row(const int32_t *columns, int32_t n_columns, const int32_t *offsets, int32_t n_offsets,
                            int32_t b, int32_t n, bool write, int32_t *range_out, int32_t *column_out,
                            int64_t range_room, int64_t column_room, int32_t *n_ranges, int32_t *n_cols,
                            double *pairs) {
  const int32_t B = MI_BLOCK;
  const int32_t end_m = b * B + B;
  const int64_t m0 = (int64_t)b * B, m1 = min(end_m, n);
  int32_t nr = 0, nc = 0;
  double pr = 0.0;
#define SAVE_RANGES(start, stop)                                                   \
  do {                                                                             \
    for (int32_t a = (start); a < (stop); a += B) {                                \
      if (write && nr < range_room) range_out[nr] = a;                             \
      const int64_t e = a + B < n ? a + B : n;                                     \
      if (a < e) pr += range_pairs(a, e, m0, m1);                                  \
      ++nr;                                                                        \
    }                                                                              \
  } while (0)
  int32_t vi = 0, si = 0;
  int32_t col = vi < n_columns ? columns[vi++] : end_m + B;
  int32_t off = si < n_offsets ? offsets[si++] : -1;
  while (off >= end_m && si < n_offsets) off = offsets[si++];
  int32_t end = off >= end_m ? end_m + B : (end_m - off > B ? end_m - off : B);
  int32_t range_start = end - B, range_end = end;
  for (;;) {
    if (col < range_end) {
      if (col < range_start) {
        if (write && nc < column_room) column_out[nc] = col;
        pr += (double)(m1 - (col > m0 ? col : m0) > 0 ? m1 - (col > m0 ? col : m0) : 0);
        ++nc;
      }
      col = vi < n_columns ? columns[vi++] : end_m + B;
      continue;
    }
    if (si >= n_offsets) {
      SAVE_RANGES(range_start, range_end);
      break;
    }
    const int32_t o = offsets[si++];
    end = end_m - o > B ? end_m - o : B;
    if (end > range_end + B) {
      SAVE_RANGES(range_start, range_end);
      range_start = end - B;
      range_end = end;
    } else if (end > range_end) {
      range_end += B;
    }
  }
#undef SAVE_RANGES
  *n_ranges = nr, *n_cols = nc, *pairs = pr;
}

/* One thread per list row. Pass 0 counts its ranges and extra keys into range_counts
 * and column_counts; pass 1 writes them at the scanned offsets and adds the covered pairs. */
__global__ void mi_convert(const mi_params p, int64_t n_rows, const int32_t *columns, const int32_t *offsets,
                           const int32_t *seg_counts, int32_t *range_counts, int32_t *column_counts, int pass,
                           const int32_t *range_ptr, const int32_t *column_ptr, int32_t *range_start,
                           int32_t *column_index, int64_t range_capacity, int64_t column_capacity,
                           up_sparse_totals *totals) {
  const int64_t row = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (row >= n_rows) return;
  const int32_t qb = (int32_t)(row / p.n_heads), h = (int32_t)(row % p.n_heads);
  const int32_t s = up_sparse_qblock_seq(p.qblock_start, p.n_seqs, qb);
  const int32_t b = qb - __ldg(p.qblock_start + s);
  const int32_t n = __ldg(p.cu_seqlens + s + 1) - __ldg(p.cu_seqlens + s);
  const int32_t seg = __ldg(p.seq_seg + s) + h;
  const int64_t slot0 = __ldg(p.seg_offset + seg);
  const int32_t n_columns = seg_counts[2 * seg], n_offsets = seg_counts[2 * seg + 1];
  int32_t nr, nc;
  double pairs;
  if (pass == 0) {
    convert_row(columns + slot0, n_columns, offsets + slot0, n_offsets, b, n, false, NULL, NULL, 0, 0, &nr, &nc,
                &pairs);
    range_counts[row] = nr, column_counts[row] = nc;
    return;
  }
  const int64_t r0 = range_ptr[row], c0 = column_ptr[row];
  convert_row(columns + slot0, n_columns, offsets + slot0, n_offsets, b, n, true, range_start + r0, column_index + c0,
              range_capacity - r0, column_capacity - c0, &nr, &nc, &pairs);
  atomicAdd(&totals->pairs, pairs);
}

}  // namespace

extern "C" double up_cuda_minference_estimate(up_backend *be, up_sparse_pattern *pattern, const void *qkv,
                                              const up_kv_pool *pool, const up_attn_batch *batch,
                                              const up_attn_shape *shape, const up_minference_params *params) {
  if (pattern->block_q != MI_BLOCK || pattern->block_k != MI_BLOCK)
    UP_FATAL("minference_estimate: the pattern's blocks are %d x %d, MInference's are 64 x 64", (int)pattern->block_q,
             (int)pattern->block_k);
  if (params->last_q <= 0 || params->last_q > MI_MAX_LAST_Q)
    UP_FATAL("minference_estimate: last_q %d is not one the CUDA kernel takes (1 .. %d)", (int)params->last_q,
             MI_MAX_LAST_Q);
  if (shape->head_dim % 8 != 0 || shape->head_dim > 256)
    UP_FATAL("minference_estimate: head_dim %d is not one the CUDA kernel takes (a multiple of 8, at most 256)",
             (int)shape->head_dim);
  up_cuda_backend *cb = up_cuda_impl(be);
  const cudaStream_t stream = cb->stream;
  if (up_sparse_pattern_empty(pattern, stream)) return 0.0;
  const int64_t n_rows = up_sparse_pattern_list_rows(pattern);
  /* segments, their slots and the scores CTAs' chunks, from the host's query-block counts */
  const int32_t H = shape->n_heads;
  int32_t n_segments = 0, max_chunks = 0;
  int64_t n_slots = 0, n_chunks = 0;
  for (int32_t s = 0; s < pattern->n_seqs; ++s) {
    const int32_t nq = pattern->qblock_start_host[s + 1] - pattern->qblock_start_host[s];
    if (nq == 0) continue;
    const int32_t chunks = (nq * MI_BLOCK + MI_CHUNK - 1) / MI_CHUNK;
    n_segments += H;
    n_slots += (int64_t)H * chunks * MI_CHUNK;
    n_chunks += (int64_t)H * chunks;
    max_chunks = chunks > max_chunks ? chunks : max_chunks;
  }
  int32_t *seg_seq_h = (int32_t *)up_malloc_or_die(sizeof(int32_t) * (size_t)n_segments, "minference segments");
  int32_t *seq_seg_h = (int32_t *)up_malloc_or_die(sizeof(int32_t) * (size_t)pattern->n_seqs, "minference sequences");
  int64_t *seg_offset_h = (int64_t *)up_malloc_or_die(sizeof(int64_t) * (size_t)(n_segments + 1), "minference slots");
  int32_t *chunk_seg_h = (int32_t *)up_malloc_or_die(sizeof(int32_t) * (size_t)n_chunks, "minference chunks");
  int32_t *chunk_first_h = (int32_t *)up_malloc_or_die(sizeof(int32_t) * (size_t)n_chunks, "minference chunk keys");
  {
    int32_t seg = 0;
    int64_t slot = 0, chunk = 0;
    for (int32_t s = 0; s < pattern->n_seqs; ++s) {
      const int32_t nq = pattern->qblock_start_host[s + 1] - pattern->qblock_start_host[s];
      seq_seg_h[s] = nq ? seg : -1;
      if (nq == 0) continue;
      const int32_t chunks = (nq * MI_BLOCK + MI_CHUNK - 1) / MI_CHUNK;
      for (int32_t h = 0; h < H; ++h, ++seg) {
        seg_seq_h[seg] = s;
        seg_offset_h[seg] = slot;
        slot += (int64_t)chunks * MI_CHUNK;
        for (int32_t c = 0; c < chunks; ++c, ++chunk) chunk_seg_h[chunk] = seg, chunk_first_h[chunk] = c * MI_CHUNK;
      }
    }
    seg_offset_h[n_segments] = slot;
  }
  if (n_chunks > INT32_MAX || n_slots > INT32_MAX)
    UP_FATAL("minference_estimate: %lld score slots exceed the sort's int range", (long long)n_slots);

  up_sparse_scratch scratch;
  up_sparse_scratch_open(&scratch, stream);
#define TAKE(type, count, what) (type *)up_sparse_scratch_take(&scratch, sizeof(type) * (size_t)(count), what)
  mi_params p;
  p.qkv = (const __nv_bfloat16 *)qkv;
  p.k_pool = (const __nv_bfloat16 *)pool->k;
  p.cu_seqlens = batch->cu_seqlens, p.kv_lens = batch->kv_lens, p.block_tables = batch->block_tables;
  p.qblock_start = pattern->qblock_start;
  int32_t *seg_seq = TAKE(int32_t, n_segments, "minference segments");
  int32_t *seq_seg = TAKE(int32_t, pattern->n_seqs, "minference sequences");
  int64_t *seg_offset = TAKE(int64_t, n_segments + 1, "minference slots");
  int32_t *chunk_seg = TAKE(int32_t, n_chunks, "minference chunks");
  int32_t *chunk_first = TAKE(int32_t, n_chunks, "minference chunk keys");
  int32_t *budget = TAKE(int32_t, 2 * H, "minference budgets");
  UP_CUDA_CHECK(cudaMemcpyAsync(seg_seq, seg_seq_h, sizeof(int32_t) * (size_t)n_segments, cudaMemcpyHostToDevice, stream));
  UP_CUDA_CHECK(cudaMemcpyAsync(seq_seg, seq_seg_h, sizeof(int32_t) * (size_t)pattern->n_seqs, cudaMemcpyHostToDevice,
                                stream));
  UP_CUDA_CHECK(cudaMemcpyAsync(seg_offset, seg_offset_h, sizeof(int64_t) * (size_t)(n_segments + 1),
                                cudaMemcpyHostToDevice, stream));
  UP_CUDA_CHECK(cudaMemcpyAsync(chunk_seg, chunk_seg_h, sizeof(int32_t) * (size_t)n_chunks, cudaMemcpyHostToDevice, stream));
  UP_CUDA_CHECK(cudaMemcpyAsync(chunk_first, chunk_first_h, sizeof(int32_t) * (size_t)n_chunks, cudaMemcpyHostToDevice,
                                stream));
  UP_CUDA_CHECK(cudaMemcpyAsync(budget, params->vertical_host, sizeof(int32_t) * (size_t)H, cudaMemcpyHostToDevice, stream));
  UP_CUDA_CHECK(cudaMemcpyAsync(budget + H, params->slash_host, sizeof(int32_t) * (size_t)H, cudaMemcpyHostToDevice, stream));
  /* the pageable sources above are copied before the calls return; free them */
  free(seg_seq_h);
  free(seq_seg_h);
  free(seg_offset_h);
  free(chunk_seg_h);
  free(chunk_first_h);
  p.seg_seq = seg_seq, p.seq_seg = seq_seg, p.seg_offset = seg_offset, p.chunk_seg = chunk_seg, p.chunk_first = chunk_first;
  p.vertical = budget, p.slash = budget + H;
  p.qkv_stride = (int64_t)(shape->n_heads + 2 * shape->n_kv_heads) * shape->head_dim;
  p.n_seqs = batch->n_seqs, p.n_heads = H, p.group = H / shape->n_kv_heads;
  p.head_dim = shape->head_dim, p.kv_dim = pool->kv_dim, p.max_blocks_per_seq = batch->max_blocks_per_seq;
  p.block_tokens = up_attn_divider_make(pool->block_tokens);
  p.last_q = params->last_q, p.forced_columns = params->forced_columns, p.forced_diagonals = params->forced_diagonals;
  p.density_cap = params->density_cap;
  p.inv_sqrt_d = 1.0f / sqrtf((float)shape->head_dim);
  p.max_chunks = max_chunks;
  p.row_stats = TAKE(double, (int64_t)n_segments * MI_MAX_LAST_Q * max_chunks * 2, "minference row statistics");
  p.row_final = TAKE(double, (int64_t)n_segments * MI_MAX_LAST_Q * 2, "minference row totals");
  p.vertical_score = TAKE(double, n_slots, "minference column scores");
  p.slash_score = TAKE(double, n_slots, "minference diagonal scores");
  p.error = cb->index_error;
  UP_CUDA_CHECK(cudaMemsetAsync(p.slash_score, 0, sizeof(double) * (size_t)n_slots, stream));

  const size_t smem = (size_t)(MI_MAX_LAST_Q + MI_CHUNK) * shape->head_dim * 2 +
                      (size_t)MI_MAX_LAST_Q * MI_CHUNK * sizeof(float) + (MI_CHUNK + MI_MAX_LAST_Q) * sizeof(double);
  UP_CUDA_CHECK(cudaFuncSetAttribute(mi_row_stats, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  UP_CUDA_CHECK(cudaFuncSetAttribute(mi_accumulate, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  mi_row_stats<<<(unsigned)n_chunks, MI_THREADS, smem, stream>>>(p);
  UP_CUDA_CHECK_LAUNCH();
  const int64_t stat_rows = (int64_t)n_segments * MI_MAX_LAST_Q;
  mi_row_combine<<<(unsigned)((stat_rows + 255) / 256), 256, 0, stream>>>(p, n_segments);
  UP_CUDA_CHECK_LAUNCH();
  mi_accumulate<<<(unsigned)n_chunks, MI_THREADS, smem, stream>>>(p);
  UP_CUDA_CHECK_LAUNCH();
  const unsigned slot_grid = (unsigned)((n_slots + 255) / 256);
  mi_finalize<<<slot_grid, 256, 0, stream>>>(p, n_slots, n_segments);
  UP_CUDA_CHECK_LAUNCH();

  /* both score arrays sorted per segment, descending, indices riding along */
  int32_t *iota = TAKE(int32_t, n_slots, "minference indices");
  mi_iota<<<slot_grid, 256, 0, stream>>>(iota, seg_offset, n_slots, n_segments);
  UP_CUDA_CHECK_LAUNCH();
  double *sorted_keys = TAKE(double, n_slots, "minference sorted scores");
  int32_t *sorted_columns = TAKE(int32_t, n_slots, "minference ranked columns");
  int32_t *sorted_offsets = TAKE(int32_t, n_slots, "minference ranked offsets");
  size_t temp_bytes = 0;
  UP_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
      NULL, temp_bytes, p.vertical_score, sorted_keys, iota, sorted_columns, (int)n_slots, n_segments, seg_offset,
      seg_offset + 1, 0, (int)(sizeof(double) * 8), stream));
  void *temp = up_sparse_scratch_take(&scratch, temp_bytes, "minference sort");
  UP_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
      temp, temp_bytes, p.vertical_score, sorted_keys, iota, sorted_columns, (int)n_slots, n_segments, seg_offset,
      seg_offset + 1, 0, (int)(sizeof(double) * 8), stream));
  UP_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
      temp, temp_bytes, p.slash_score, sorted_keys, iota, sorted_offsets, (int)n_slots, n_segments, seg_offset,
      seg_offset + 1, 0, (int)(sizeof(double) * 8), stream));

  /* the chosen columns ascending and offsets descending, per segment */
  uint8_t *mark_columns = TAKE(uint8_t, n_slots, "minference column marks");
  uint8_t *mark_offsets = TAKE(uint8_t, n_slots, "minference offset marks");
  int32_t *columns = iota; /* the sorts are done with it */
  int32_t *offsets = (int32_t *)sorted_keys;
  int32_t *seg_counts = TAKE(int32_t, 2 * n_segments, "minference chosen counts");
  mi_select<<<(unsigned)n_segments, 1024, 0, stream>>>(p, sorted_columns, sorted_offsets, mark_columns, mark_offsets,
                                                       columns, offsets, seg_counts);
  UP_CUDA_CHECK_LAUNCH();

  /* the conversion: count, scan, write */
  int32_t *range_counts = TAKE(int32_t, n_rows, "minference range counts");
  int32_t *column_counts = TAKE(int32_t, n_rows, "minference extra-key counts");
  const unsigned row_grid = (unsigned)((n_rows + 127) / 128);
  mi_convert<<<row_grid, 128, 0, stream>>>(p, n_rows, columns, offsets, seg_counts, range_counts, column_counts, 0,
                                           NULL, NULL, NULL, NULL, 0, 0, scratch.totals);
  UP_CUDA_CHECK_LAUNCH();
  up_sparse_scan_counts(&scratch, range_counts, pattern->range_ptr, n_rows, &scratch.totals->ranges);
  up_sparse_scan_counts(&scratch, column_counts, pattern->column_ptr, n_rows, &scratch.totals->columns);
  mi_convert<<<row_grid, 128, 0, stream>>>(p, n_rows, columns, offsets, seg_counts, range_counts, column_counts, 1,
                                           pattern->range_ptr, pattern->column_ptr, pattern->range_start,
                                           pattern->column_index, pattern->range_capacity, pattern->column_capacity,
                                           scratch.totals);
  UP_CUDA_CHECK_LAUNCH();
#undef TAKE
  return up_sparse_scratch_close(&scratch, be, pattern, "minference_estimate");
}
