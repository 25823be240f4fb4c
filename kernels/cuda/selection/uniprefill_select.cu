/* uniprefill_select.cu — the CUDA backend's UniPrefill token selection (the
 * kernel of kernels/uniprefill_ops.h), equal in its choices to the CPU reference
 * kernels/cpu/uniprefill_select.c, and the per-backend workspace it keeps.
 *
 * Stages, all queued on the backend's stream (docs/kernels/uniprefill_select.md):
 *  1. block scores: score_b = sum over the query heads, the last last_q rows r and the
 *     keys k of block b of causal softmax(q_r . k * scale)_k, on bf16 mma.sync. Pass A
 *     streams every (head, query) row over the keys and writes per (unit of keys,
 *     kv head, row) the log2 max m and the sum l of exp2(logit - m) over the unit's
 *     visible keys; a combine kernel merges a row's units into its offset
 *     off_r = log2-sum-exp. Then one of two ways:
 *     - by block (block a multiple of the keys a warp owns, 32 or 16): a unit divides
 *       the block, so score_b = sum over rows and units u of b of exp2(m_ru - off_r) l_ru,
 *       which a block-score kernel sums in a fixed order. One pass over the logits, no
 *       token scores, no atomics;
 *     - by token (any other block, e.g. the 1-token and 48-token blocks of the tests):
 *       units are whole key chunks, pass B recomputes the logits and adds
 *       exp2(logit - off_r) into token scores s_j, and a block-sum kernel adds them up.
 *     Why pass B (the two-pass path) stays rather than a general per-block partial: the
 *     block option takes any size, and a block smaller than a warp's keys would need a
 *     partial per (block, row), 8 B x rows per block: at 1-token blocks that is 4 GB
 *     for 128K tokens of Llama-8B (pass B keeps 4 B per token). It is also the fallback
 *     of the by-block path when its partials would pass SEL_BLOCK_PARTIAL_MAX_BYTES
 *     (long batches with a large last_q). UP_SELECT_PATH=by_token takes it for every
 *     block: the GPU tests run the by-block blocks that way too (tests/gpu/select.cmake),
 *     since no test shape reaches the cap, and --kernels times the two paths side by side;
 *  2. block choice, one CTA per candidate: bitonic sort of (score, index) keys, then
 *     top-p over a deterministic prefix sum, or the fixed budget;
 *  3. the token mask (kept blocks, sinks, last queries; everything else passes);
 *  4. compaction: a two-kernel scan over packed rows writes keep_rows and the new
 *     offsets, then one small device-to-host copy brings the offsets (and an error
 *     word) back: the op's only wait on the GPU.
 * The per-head block scores of tensor parallelism (uniprefill_head_scores) are stage 1
 * by block with the block-score kernel in its per-head mode: each query head's own
 * scoring rows summed in the same fixed order into that head's row, nothing chosen.
 * Sequence lengths live on the device, so grids are sized from what the host knows,
 * as in attention_prefill.cu: sequence s owns the virtual units (key chunks, partial
 * units, scoring blocks) from cu_seqlens[s] / unit + s on, and a CTA finds its sequence
 * by binary search. Chunks, units and blocks all start at multiples of their size
 * counted from the sequence's first key, which is what lets a unit divide a chunk and
 * a block. Nothing is copied from the device before the final copy.
 *
 * Determinism: on the by-block path every sum is in a fixed order, so block scores are
 * the same from run to run. On the by-token path pass B adds each CTA's per-key sums
 * with atomicAdd (fp32), so token scores vary in their last bits from run to run; block
 * sums, the sort and the prefix sum are deterministic functions of those scores, so the
 * mask changes only when two block scores (or a prefix and p * total) are within
 * rounding of each other. Exactly equal scores always rank the lower block index first. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/attention/attn_common.cuh"
#include "kernels/cuda/cuda_backend_impl.h"
#include "kernels/cuda/selection/uniprefill_select.h"

enum {
  SEL_WARPS = 8,
  SEL_THREADS = SEL_WARPS * 32,
  SEL_QT = 64,                  /* scoring rows per streamed query tile */
  SEL_ROWS_PER_THREAD = 8,      /* packed rows per thread in the mask and compaction kernels */
  SEL_TILE_ROWS = SEL_THREADS * SEL_ROWS_PER_THREAD,
  SEL_SORT_THREADS = 1024,
  SEL_SORT_SMEM_KEYS = 16384,   /* beyond this many blocks per sequence, the sort runs in global memory */
  SEL_OUT_EXTRA = 3,            /* error code, sequence, value after the n_seqs + 1 offsets */
  SEL_COMBINE_WARPS = 16,       /* combine CTA: 16 warps over one group of 32 rows */
  SEL_COMBINE_BATCH = 8,        /* partials a combine lane loads before merging them */
};

/* The by-block path's pass-A partials may take this much; beyond it the by-token path
 * (partials per key chunk, 8x smaller at 32-key units) runs. Llama-8B at 128K tokens
 * and 64-token blocks needs 67 MB. */
#define SEL_BLOCK_PARTIAL_MAX_BYTES ((size_t)1 << 30)

/* Keys per warp in the score kernels: their B fragments take HD * KW / 64 registers,
 * 64 at head_dim 128 and 256 (32 at 64, where 64 keys per warp would spill in pass B). */
#define SEL_KW(HD) ((HD) == 256 ? 16 : 32)

/* Error codes a kernel leaves in the output word; reported by the host after the copy. */
enum { SEL_ERR_KV_LEN = 1, SEL_ERR_HEAD_BLOCKS = 2 };

/* What every kernel of the op reads, filled once per call on the host. */
typedef struct sel_args {
  up_attn_args attn;          /* qkv, K pool, batch arrays, strides, GQA group, scale (attn_common.cuh) */
  const uint8_t *candidate;
  float2 *partial;            /* [virtual unit][kv head][rows_pad]: pass A's (log2 max, sum) */
  float *row_off;             /* [seq][kv head][rows_pad]: log2 max + log2 sum per scoring row */
  float *token_scores;        /* [n_tokens]; the by-token path only */
  float *block_scores;        /* [virtual block] */
  uint8_t *keep_block;        /* [virtual block] */
  unsigned long long *sort_scratch; /* [2 * virtual blocks] when the sort does not fit shared memory */
  int32_t *keep_rows;
  int32_t *tile_counts;       /* kept rows per compaction tile */
  int32_t *excl;              /* [n_tokens + 1]: kept rows before each packed row */
  int32_t *out;               /* [n_seqs + 1 offsets, then SEL_OUT_EXTRA error words] */
  int32_t n_tokens, n_kv_heads;
  int32_t last_q, sink, block;
  int32_t min_rows;           /* candidates with at most sink + last_q rows are left alone */
  int32_t rows, rows_pad;     /* scoring rows per kv head: group * last_q, padded to SEL_QT */
  int32_t unit;               /* keys per pass-A partial: a chunk (by token) or a divisor of chunk and block */
  int32_t sort_in_smem;
  uint64_t last_q_mul;        /* r / last_q = (r * last_q_mul) >> last_q_shift for r < 2^24 */
  int32_t last_q_shift;
  float top_p, keep_fraction;
  /* Per-head mode (the uniprefill_head_scores kernel) when head_scores is set: the
   * block-score kernel writes head h's score of block b of sequence s to
   * head_scores[h * head_total + head_block_offsets[s] + b] instead of block_scores. */
  float *head_scores;
  const int32_t *head_block_offsets; /* device [n_seqs + 1] */
  int64_t head_total;
} sel_args;

/* --- device helpers ------------------------------------------------------------------ */

/* The sequence owning virtual unit v: the largest s with cu[s] / unit + s * with_index
 * <= v. With with_index 0 and unit 1 it is the sequence holding packed row v (empty
 * sequences are skipped because the largest such s is taken). */
__device__ __forceinline__ int32_t sel_seq_of(const int32_t *cu, int32_t n_seqs, int32_t v, int32_t unit,
                                              int32_t with_index) {
  int32_t lo = 0, hi = n_seqs - 1;
  while (lo < hi) {
    const int32_t mid = (lo + hi + 1) >> 1;
    if (__ldg(cu + mid) / unit + mid * with_index <= v)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

/* A sequence is scored when it is a candidate, longer than sink + last_q, and its
 * cache holds exactly its rows (anything else is reported by the choice kernel). */
__device__ __forceinline__ bool sel_scored(const sel_args &a, int32_t s, int32_t n) {
  return a.candidate[s] && n > a.min_rows && __ldg(a.attn.kv_lens + s) == n;
}

/* Chunk c of row r of a tile with HD-value rows sits at chunk c ^ (r & 7), so the 8 rows
 * of an ldmatrix phase hit 8 different bank groups. */
template <int HD>
__device__ __forceinline__ int sel_swizzle(int r, int c) {
  return r * HD + ((c ^ (r & 7)) << 3);
}

/* Record the first error a kernel sees; the host reports it after the final copy. */
__device__ void sel_report(const sel_args &a, int32_t code, int32_t s, int32_t value) {
  int32_t *err = a.out + a.attn.n_seqs + 1;
  if (atomicCAS(err, 0, code) == 0) {
    err[1] = s;
    err[2] = value;
  }
}

/* Scoring rows [t * SEL_QT, +SEL_QT) of kv head g into a swizzled tile: row r is query
 * i = r % last_q of query head g * group + r / last_q, i.e. sequence row n - last_q + i.
 * Rows past group * last_q become zeros. r / last_q is a multiply and shift (an integer
 * divide by a runtime value costs conversions and a reciprocal on the exponential unit,
 * redone by ptxas for every chunk). */
template <int HD>
__device__ __forceinline__ void sel_load_q_tile(__nv_bfloat16 *dst, const sel_args &a, int32_t t, int32_t g,
                                                int32_t first_row) {
  constexpr int CH = HD / 8;
  for (int i = threadIdx.x; i < SEL_QT * CH; i += SEL_THREADS) {
    const int r = i / CH, c = i % CH;
    const int32_t qr = t * SEL_QT + r;
    const bool valid = qr < a.rows;
    int64_t off = 0;
    if (valid) {
      const int32_t hq = (int32_t)(((uint64_t)qr * a.last_q_mul) >> a.last_q_shift);
      const int32_t qi = qr - hq * a.last_q;
      off = (int64_t)(first_row + qi) * a.attn.qkv_stride + (int64_t)(g * a.attn.group + hq) * HD + c * 8;
    }
    up_attn_cp_async16(up_attn_smem_u32(dst + sel_swizzle<HD>(r, c)), a.attn.qkv + off, valid ? 16 : 0);
  }
}

/* --- stage 1: block scores ------------------------------------------------------------ */

/* What an m-tile's logits become, in three steps so that the exponentials can be
 * spread over the next m-tile's mma. This thread holds rows r_lo (values 0, 1 of each
 * n-tile) and r_lo + 8 (values 2, 3), counted from scoring row 0.
 * Prepare: MASK applies the causal limit (only the chunk that reaches the scoring rows
 * needs it); shift[h] becomes what each logit * scale_log2 of row half h loses before
 * its exp2: the row offset in pass B, the warp's row max in pass A (base[h] keeps it
 * for the partial, -inf for a row with all of this warp's keys masked). */
template <int NT, int PASS, bool MASK>
__device__ __forceinline__ void sel_mtile_prepare(float (&acc)[NT][4], const sel_args &a, int32_t r_lo,
                                                  int32_t first_q, int32_t key_lane, const float *off_row,
                                                  float (&shift)[2], float (&base)[2]) {
  const int lane = threadIdx.x & 31;
  if (MASK) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int32_t limit = first_q + (r_lo + 8 * h) % a.last_q; /* the last key this query sees */
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        if (key_lane + nt * 8 > limit) acc[nt][2 * h] = -INFINITY;
        if (key_lane + nt * 8 + 1 > limit) acc[nt][2 * h + 1] = -INFINITY;
      }
    }
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    if (PASS == 0) {
      float mx = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) mx = fmaxf(mx, fmaxf(acc[nt][2 * h], acc[nt][2 * h + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      base[h] = mx == -INFINITY ? -INFINITY : mx * a.attn.scale_log2;
      shift[h] = mx == -INFINITY ? 0.0f : base[h];
    } else {
      /* Padding rows carry +inf: their probabilities are exp2(-inf) = 0. */
      shift[h] = off_row[(lane >> 2) + 8 * h];
      base[h] = 0.0f;
    }
  }
}

/* Exponential j of the thread's 4 * NT logits (row half j / (2 NT), n-tile (j / 2) % NT,
 * column j % 2): into the row sum (pass A) or the key's running sum (pass B). */
template <int NT, int PASS>
__device__ __forceinline__ void sel_mtile_exp(const float (&acc)[NT][4], int j, const sel_args &a,
                                              const float (&shift)[2], float (&sum)[2], float (&ksum)[NT][2]) {
  const int h = j / (2 * NT), nt = (j / 2) % NT, e = j % 2;
  const float p = up_attn_exp2(fmaf(acc[nt][2 * h + e], a.attn.scale_log2, -shift[h]));
  if (PASS == 0)
    sum[h] += p;
  else
    ksum[nt][e] += p;
}

/* Pass A: the row sums over the warp's keys (lanes with equal lane / 4) and the partial. */
template <int PASS>
__device__ __forceinline__ void sel_mtile_store(float (&sum)[2], const float (&base)[2], float2 *stat_row) {
  const int lane = threadIdx.x & 31;
  if (PASS == 0) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      sum[h] += __shfl_xor_sync(0xffffffffu, sum[h], 1);
      sum[h] += __shfl_xor_sync(0xffffffffu, sum[h], 2);
      if ((lane & 3) == 0) stat_row[(lane >> 2) + 8 * h] = make_float2(base[h], sum[h]);
    }
  }
}

/* One m-tile's logits to their end: prepare, every exponential, store. */
template <int NT, int PASS, bool MASK>
__device__ __forceinline__ void sel_mtile_finish(float (&acc)[NT][4], const sel_args &a, int32_t r_lo,
                                                 int32_t first_q, int32_t key_lane, float2 *stat_row,
                                                 const float *off_row, float (&ksum)[NT][2]) {
  float shift[2], base[2], sum[2] = {0.0f, 0.0f};
  sel_mtile_prepare<NT, PASS, MASK>(acc, a, r_lo, first_q, key_lane, off_row, shift, base);
#pragma unroll
  for (int j = 0; j < 4 * NT; ++j) sel_mtile_exp<NT, PASS>(acc, j, a, shift, sum, ksum);
  sel_mtile_store<PASS>(sum, base, stat_row);
}

/* The 16 x KW logits of the next m-tile (16 scoring rows against this warp's keys) into
 * acc_next: KS k-steps, each one A fragment feeding NT mma with the resident keys. With
 * FINISH it finishes acc (the previous m-tile) at the same time: the source spreads
 * acc's exponentials evenly over the k-steps; ptxas (CUDA 13.0) still groups the mma
 * ahead of them, but the two m-tiles' work is independent within one block, which is
 * what measured faster (docs/kernels/uniprefill_select.md, v2). */
template <int HD, int PASS, bool MASK, bool FINISH>
__device__ __forceinline__ void sel_mtile_logits(float (&acc_next)[SEL_KW(HD) / 8][4], uint32_t q_tile_next,
                                                  const uint32_t (&q_x)[4],
                                                  const uint32_t (&kb)[HD / 16][SEL_KW(HD) / 8][2],
                                                  float (&acc)[SEL_KW(HD) / 8][4], const sel_args &a, int32_t r_lo,
                                                  int32_t first_q, int32_t key_lane, float2 *stat_row,
                                                  const float *off_row, float (&ksum)[SEL_KW(HD) / 8][2]) {
  constexpr int NT = SEL_KW(HD) / 8, KS = HD / 16, E = 4 * NT;
  float shift[2] = {0.0f, 0.0f}, base[2] = {0.0f, 0.0f}, sum[2] = {0.0f, 0.0f};
  if (FINISH) sel_mtile_prepare<NT, PASS, MASK>(acc, a, r_lo, first_q, key_lane, off_row, shift, base);
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) acc_next[nt][0] = acc_next[nt][1] = acc_next[nt][2] = acc_next[nt][3] = 0.0f;
#pragma unroll
  for (int kk = 0; kk < KS; ++kk) {
    uint32_t af[4];
    up_attn_ldmatrix_x4(af, q_tile_next + (kk >> 2) * 128 + q_x[kk & 3]);
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      up_attn_mma_bf16(acc_next[nt], af, kb[kk][nt][0], kb[kk][nt][1]);
#pragma unroll
      for (int j = 0; j < E; ++j) /* exponential j goes with mma slot j * KS * NT / E */
        if (FINISH && j * KS * NT / E == kk * NT + nt) sel_mtile_exp<NT, PASS>(acc, j, a, shift, sum, ksum);
    }
  }
  if (FINISH) sel_mtile_store<PASS>(sum, base, stat_row);
}

/* The scoring-row tiles of one CTA: the two-stage cp.async stream of query tiles and,
 * per tile, its SEL_QT / 16 m-tiles, software pipelined: the mma of m-tile mt + 1 are
 * issued before the exponentials of m-tile mt (two accumulator sets), so a warp has
 * independent tensor work in flight while it waits on the exponential unit. MASK: the
 * chunk reaches the scoring rows and the causal limit applies (decided once per CTA,
 * so the m-tile loop carries no branch). Pass A writes the partials of the chunk's
 * units from virtual unit vu on, units_left of them at most (the rest lie past the
 * sequence). */
template <int HD, int PASS, bool MASK>
__device__ __forceinline__ void sel_score_tiles(const sel_args &a, __nv_bfloat16 *q_s, float2 *stat_s, float *off_s,
                                                const uint32_t (&kb)[HD / 16][SEL_KW(HD) / 8][2],
                                                const uint32_t (&q_x)[4], uint32_t q_lane, int32_t g, int32_t vu,
                                                int32_t units_left, int32_t q_row0, int32_t first_q, int32_t key_lane,
                                                int64_t off_base, float (&ksum)[SEL_KW(HD) / 8][2]) {
  constexpr int NT = SEL_KW(HD) / 8;
  constexpr int MT = SEL_QT / 16;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int32_t n_qt = a.rows_pad / SEL_QT;
  /* Pass A's merge: warps_per_unit consecutive warps make one unit's partial; one
   * thread per (unit, row) of the tile. */
  const int32_t warps_per_unit = a.unit / SEL_KW(HD);
  const int32_t units_here = SEL_WARPS / warps_per_unit < units_left ? SEL_WARPS / warps_per_unit : units_left;
  for (int32_t t = 0; t < n_qt; ++t) {
    const int buf = t & 1;
    if (t + 1 < n_qt) {
      sel_load_q_tile<HD>(q_s + (buf ^ 1) * SEL_QT * HD, a, t + 1, g, q_row0);
      if (PASS == 1 && tid < SEL_QT / 4)
        up_attn_cp_async16(up_attn_smem_u32(off_s + (buf ^ 1) * SEL_QT + 4 * tid),
                           a.row_off + off_base + (t + 1) * SEL_QT + 4 * tid, 16);
    }
    up_attn_cp_async_commit(); /* possibly empty: keeps the wait count uniform */
    up_attn_cp_async_wait<1>();
    __syncthreads();

    const uint32_t q_buf = q_lane + (uint32_t)(buf * SEL_QT * HD * 2);
    float2 *stat_w = stat_s + (buf * SEL_WARPS + warp) * SEL_QT;
    const float *off_b = off_s + buf * SEL_QT;
    const int32_t r_tile = t * SEL_QT + (lane >> 2);
    float acc[2][NT][4];
    sel_mtile_logits<HD, PASS, MASK, false>(acc[0], q_buf, q_x, kb, acc[1], a, r_tile, first_q, key_lane, stat_w,
                                            off_b, ksum);
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      if (mt + 1 < MT)
        sel_mtile_logits<HD, PASS, MASK, true>(acc[(mt + 1) & 1], q_buf + (uint32_t)((mt + 1) * 16 * HD * 2), q_x,
                                               kb, acc[mt & 1], a, r_tile + mt * 16, first_q, key_lane,
                                               stat_w + mt * 16, off_b + mt * 16, ksum);
      else
        sel_mtile_finish<NT, PASS, MASK>(acc[mt & 1], a, r_tile + mt * 16, first_q, key_lane, stat_w + mt * 16,
                                         off_b + mt * 16, ksum);
    }
    __syncthreads(); /* every warp is done with q_s[buf] (and has written stat_s[buf]) */

    if (PASS == 0) {
      /* Merge each unit's warps, in warp order, for every row of the tile. stat_s[buf]
       * is rewritten only in tile t + 2, after the next tile's barrier, which these
       * threads reach after this. */
      for (int32_t i = tid; i < units_here * SEL_QT; i += SEL_THREADS) {
        const int32_t u = i / SEL_QT, row = i % SEL_QT;
        const float2 *warp_stat = stat_s + (buf * SEL_WARPS + u * warps_per_unit) * SEL_QT + row;
        float b = -INFINITY;
        for (int32_t w = 0; w < warps_per_unit; ++w) b = fmaxf(b, warp_stat[w * SEL_QT].x);
        /* A warp whose keys are all masked has (-inf, 0) and adds 0; one whose logits are
         * all NaN has (-inf, NaN), and the NaN must survive: the choice keeps every block
         * of a sequence with a non-finite score, as the CPU reference does. */
        float l = 0.0f;
        for (int32_t w = 0; w < warps_per_unit; ++w) {
          const float2 p = warp_stat[w * SEL_QT];
          l += b == -INFINITY ? p.y : p.y * exp2f(p.x - b);
        }
        a.partial[((int64_t)(vu + u) * a.n_kv_heads + g) * a.rows_pad + t * SEL_QT + row] = make_float2(b, l);
      }
    }
  }
}

/* One CTA = one kv head g x one chunk of CK keys of one sequence, against all
 * group * last_q scoring rows of that kv head. Each warp keeps the B fragments of its
 * KW keys in registers (64 registers at head_dim 128 and 256) and streams the scoring rows through
 * shared memory in tiles of SEL_QT, two stages deep, 16-row m-tiles software pipelined.
 * PASS 0 (pass A) reduces each row over each unit of the chunk's keys to (log2 max,
 * sum of exp2) and writes those partials; PASS 1 (pass B, by-token path only) turns
 * each logit into its probability with the
 * row's final offset, sums over rows per key in registers, reduces over the warp's
 * lanes and adds each key's total once per CTA. The causal limit matters only in the
 * chunk that reaches the scoring rows themselves. */
template <int HD, int PASS>
__global__ void __launch_bounds__(SEL_THREADS, HD == 256 ? 1 : 2) sel_score_kernel(const sel_args a) {
  constexpr int KW = SEL_KW(HD);      /* keys per warp */
  constexpr int CK = SEL_WARPS * KW;  /* keys per CTA */
  constexpr int NT = KW / 8;          /* n-tiles per warp */
  constexpr int KS = HD / 16;         /* k-steps */
  constexpr int CH = HD / 8;          /* 16-byte chunks per row */
  extern __shared__ __align__(128) unsigned char smem_raw[];
  __nv_bfloat16 *k_s = (__nv_bfloat16 *)smem_raw;                 /* [CK][HD] */
  __nv_bfloat16 *q_s = k_s + CK * HD;                               /* [2][SEL_QT][HD] */
  float2 *stat_s = (float2 *)(q_s + 2 * SEL_QT * HD);               /* [2][SEL_WARPS][SEL_QT] */
  float *off_s = (float *)(stat_s + 2 * SEL_WARPS * SEL_QT);        /* [2][SEL_QT] */
  float *sum_s = off_s + 2 * SEL_QT;                                /* [CK] */

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int32_t g = blockIdx.x, v = blockIdx.y;
  const int32_t s = sel_seq_of(a.attn.cu_seqlens, a.attn.n_seqs, v, CK, 1);
  const int32_t row0 = __ldg(a.attn.cu_seqlens + s), n = __ldg(a.attn.cu_seqlens + s + 1) - row0;
  if (!sel_scored(a, s, n)) return;
  const int32_t k0 = (v - (row0 / CK + s)) * CK;
  if (k0 >= n) return;
  const int32_t first_q = n - a.last_q; /* sequence row of scoring query 0 */
  const int64_t off_base = ((int64_t)s * a.n_kv_heads + g) * a.rows_pad;
  const int32_t vu = row0 / a.unit + s + k0 / a.unit;      /* virtual unit of the chunk's first key */
  const int32_t units_left = (n - k0 + a.unit - 1) / a.unit; /* units of the sequence from k0 on */

  /* The key chunk: one block-table lookup per 16-byte chunk; entries past the sequence
   * are zeros (masked below, never read through the table). */
  {
    const int32_t *table = a.attn.block_tables + (int64_t)s * a.attn.max_blocks_per_seq;
    const int c = tid % CH;
    for (int r = tid / CH; r < CK; r += SEL_THREADS / CH) {
      const int32_t e = k0 + r;
      const bool valid = e < n;
      const int64_t off = valid ? up_attn_entry_offset(table, e, a.attn.block_tokens, a.attn.kv_dim) + g * HD + c * 8 : 0;
      up_attn_cp_async16(up_attn_smem_u32(k_s + sel_swizzle<HD>(r, c)), a.attn.k_pool + off, valid ? 16 : 0);
    }
  }
  up_attn_cp_async_commit();
  sel_load_q_tile<HD>(q_s, a, 0, g, row0 + first_q);
  if (PASS == 1 && tid < SEL_QT / 4)
    up_attn_cp_async16(up_attn_smem_u32(off_s + 4 * tid), a.row_off + off_base + 4 * tid, 16);
  up_attn_cp_async_commit();
  up_attn_cp_async_wait<1>();
  __syncthreads();

  /* B fragments of this warp's keys: ldmatrix x4 over 16 keys x 16 dims gives the
   * (low, high) k-halves of two n-tiles. */
  uint32_t kb[KS][NT][2];
  {
    const int kr = warp * KW + (lane & 7) + ((lane >> 4) << 3), kc = (lane >> 3) & 1;
#pragma unroll
    for (int np = 0; np < NT / 2; ++np)
#pragma unroll
      for (int kk = 0; kk < KS; ++kk) {
        uint32_t b[4];
        up_attn_ldmatrix_x4(b, up_attn_smem_u32(k_s + sel_swizzle<HD>(kr + np * 16, 2 * kk + kc)));
        kb[kk][2 * np][0] = b[0];
        kb[kk][2 * np][1] = b[1];
        kb[kk][2 * np + 1][0] = b[2];
        kb[kk][2 * np + 1][1] = b[3];
      }
  }
  /* A-operand addresses: row lane & 15 of an m-tile, logical chunk 2 * kk + (lane >> 4).
   * Rows of an m-tile start at multiples of 8, so the swizzle XORs the low three chunk
   * bits with lane & 7: four per-lane offsets cover every k-step (kk >> 2 adds 128 B). */
  const uint32_t q_lane = up_attn_smem_u32(q_s) + (uint32_t)((lane & 15) * HD * 2);
  uint32_t q_x[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) q_x[i] = (uint32_t)(((2 * i + (lane >> 4)) ^ (lane & 7)) << 4);

  const int32_t key_lane = k0 + warp * KW + 2 * (lane & 3); /* sequence index of this lane's first column */
  float ksum[NT][2];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) ksum[nt][0] = ksum[nt][1] = 0.0f;
  /* Some key lies past query 0's causal limit: only then the tiles apply the mask. */
  if (k0 + CK - 1 > first_q)
    sel_score_tiles<HD, PASS, true>(a, q_s, stat_s, off_s, kb, q_x, q_lane, g, vu, units_left, row0 + first_q,
                                    first_q, key_lane, off_base, ksum);
  else
    sel_score_tiles<HD, PASS, false>(a, q_s, stat_s, off_s, kb, q_x, q_lane, g, vu, units_left, row0 + first_q,
                                     first_q, key_lane, off_base, ksum);
  up_attn_cp_async_wait<0>();

  if (PASS == 1) {
    /* Sum each key's column over the 8 row groups of the warp (lanes with equal lane & 3),
     * then one atomicAdd per key for the whole CTA. */
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        float x = ksum[nt][e];
        x += __shfl_xor_sync(0xffffffffu, x, 4);
        x += __shfl_xor_sync(0xffffffffu, x, 8);
        x += __shfl_xor_sync(0xffffffffu, x, 16);
        if (lane < 4) sum_s[warp * KW + nt * 8 + 2 * lane + e] = x;
      }
    __syncthreads();
    for (int i = tid; i < CK; i += SEL_THREADS)
      if (k0 + i < n) atomicAdd(a.token_scores + row0 + k0 + i, sum_s[i]);
  }
}

/* Merge pass A's per-unit partials of each scoring row into its offset
 * log2 max + log2 sum (padding rows get +inf, a row with a NaN partial NaN). Grid
 * (rows_pad / 32, kv heads, seqs); lane = row, warp w takes the runs of
 * SEL_COMBINE_BATCH units starting at w * SEL_COMBINE_BATCH, every
 * SEL_COMBINE_WARPS-th run, each run loaded at once: at 1 x 128K only 128 CTAs run,
 * each over 2,048 units (64-token blocks), so what hides the memory latency is the
 * loads in flight per SM. Then warp 0 merges the warps' results in a fixed order. */
__global__ void __launch_bounds__(SEL_COMBINE_WARPS * 32) sel_combine_kernel(const sel_args a) {
  __shared__ float2 part_s[SEL_COMBINE_WARPS][32];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int32_t s = blockIdx.z, g = blockIdx.y, r = blockIdx.x * 32 + lane;
  const int32_t row0 = __ldg(a.attn.cu_seqlens + s), n = __ldg(a.attn.cu_seqlens + s + 1) - row0;
  if (!sel_scored(a, s, n)) return;
  const int32_t n_units = (n + a.unit - 1) / a.unit;
  const int64_t unit_stride = (int64_t)a.n_kv_heads * a.rows_pad;
  const float2 *part = a.partial + ((int64_t)(row0 / a.unit + s) * a.n_kv_heads + g) * a.rows_pad + r;
  float b = -INFINITY, l = 0.0f;
  for (int32_t c0 = warp * SEL_COMBINE_BATCH; c0 < n_units; c0 += SEL_COMBINE_WARPS * SEL_COMBINE_BATCH) {
    float2 p[SEL_COMBINE_BATCH];
#pragma unroll
    for (int k = 0; k < SEL_COMBINE_BATCH; ++k)
      p[k] = c0 + k < n_units ? __ldg(part + (c0 + k) * unit_stride) : make_float2(-INFINITY, 0.0f);
    float bm = b;
#pragma unroll
    for (int k = 0; k < SEL_COMBINE_BATCH; ++k) bm = fmaxf(bm, p[k].x);
    if (bm == -INFINITY) {
      /* Every key so far masked (sums 0) or NaN: add the sums so a NaN survives. */
#pragma unroll
      for (int k = 0; k < SEL_COMBINE_BATCH; ++k) l += p[k].y;
      continue;
    }
    l *= exp2f(b - bm); /* 0 while b is -inf (l is 0 then, or NaN and stays NaN) */
#pragma unroll
    for (int k = 0; k < SEL_COMBINE_BATCH; ++k) l += p[k].y * exp2f(p[k].x - bm); /* masked: 0 * 0 */
    b = bm;
  }
  part_s[warp][lane] = make_float2(b, l);
  __syncthreads();
  if (warp != 0) return;
  float bm = -INFINITY;
#pragma unroll
  for (int w = 0; w < SEL_COMBINE_WARPS; ++w) bm = fmaxf(bm, part_s[w][lane].x);
  float lm = 0.0f;
#pragma unroll
  for (int w = 0; w < SEL_COMBINE_WARPS; ++w)
    lm += bm == -INFINITY ? part_s[w][lane].y : part_s[w][lane].y * exp2f(part_s[w][lane].x - bm);
  /* lm is 0 only for a row that sees no key (padding rows); NaN stays NaN. */
  a.row_off[((int64_t)s * a.n_kv_heads + g) * a.rows_pad + r] =
      r >= a.rows || lm == 0.0f ? INFINITY : bm + log2f(lm);
}

/* The by-block path's block scores: one CTA per virtual scoring block b of sequence s,
 * score_b = sum over kv heads g, scoring rows r and the block's units u of
 * exp2(m_gru - off_gr) * l_gru. The block's partials are consecutive slabs of rows_pad
 * (unit-major, then kv head); thread t takes rows t, t + SEL_THREADS, ... of every slab
 * in slab order, then a fixed shuffle tree and a fixed sum over the warps: the score is
 * the same from run to run, and blocks with equal partials score bitwise alike. Blocks
 * of sequences that are not scored get 0 (read only by the diagnostic).
 * Per-head mode (a.head_scores set; blockIdx.y = query head h of kv head g = h / group):
 * the same sum over h's own last_q scoring rows of g's slabs only (every n_kv_heads-th
 * slab), in the same fixed order, written to h's row of the per-head scores; sequences
 * without blocks there have no slot and are skipped. */
__global__ void __launch_bounds__(SEL_THREADS) sel_block_score_kernel(const sel_args a) {
  __shared__ float warp_s[SEL_WARPS];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int32_t vb = blockIdx.x;
  const bool per_head = a.head_scores != NULL;
  const int32_t s = sel_seq_of(a.attn.cu_seqlens, a.attn.n_seqs, vb, a.block, 1);
  const int32_t row0 = __ldg(a.attn.cu_seqlens + s), n = __ldg(a.attn.cu_seqlens + s + 1) - row0;
  const int64_t lo = (int64_t)(vb - (row0 / a.block + s)) * a.block;
  if (lo >= n) return;
  if (!sel_scored(a, s, n)) {
    if (!per_head && threadIdx.x == 0) a.block_scores[vb] = 0.0f;
    return;
  }
  const int32_t h = blockIdx.y;
  const int32_t g_lo = per_head ? h / a.attn.group : 0, n_g = per_head ? 1 : a.n_kv_heads;
  const int32_t r_lo = per_head ? (h % a.attn.group) * a.last_q : 0, r_hi = per_head ? r_lo + a.last_q : a.rows;
  const int64_t slab_step = (int64_t)(per_head ? a.n_kv_heads : 1) * a.rows_pad; /* between summed slabs */
  const int32_t u_lo = (int32_t)(lo / a.unit);
  const int32_t u_end = (n + a.unit - 1) / a.unit, u_next = u_lo + a.block / a.unit;
  const int32_t u_hi = u_next < u_end ? u_next : u_end; /* the last block may be short */
  const int32_t n_slabs = (u_hi - u_lo) * n_g;
  const float2 *part = a.partial + ((int64_t)(row0 / a.unit + s + u_lo) * a.n_kv_heads + g_lo) * a.rows_pad;
  const float *off = a.row_off + ((int64_t)s * a.n_kv_heads + g_lo) * a.rows_pad;
  float sum = 0.0f;
  for (int32_t r = r_lo + threadIdx.x; r < r_hi; r += SEL_THREADS) {
    int32_t g = 0;
#pragma unroll 4
    for (int32_t j = 0; j < n_slabs; ++j) {
      const float2 p = __ldg(part + j * slab_step + r);
      /* off >= m, so the factor is at most 1; a masked unit adds exp2(-inf) * 0. */
      sum += exp2f(p.x - __ldg(off + g * a.rows_pad + r)) * p.y;
      g = g + 1 == n_g ? 0 : g + 1;
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  if (lane == 0) warp_s[warp] = sum;
  __syncthreads();
  if (threadIdx.x == 0) {
    float total = 0.0f;
#pragma unroll
    for (int w = 0; w < SEL_WARPS; ++w) total += warp_s[w];
    if (!per_head) {
      a.block_scores[vb] = total;
      return;
    }
    /* A sequence whose blocks disagree with its slot count is reported by the check
     * kernel; never write past its slots. */
    const int32_t first = __ldg(a.head_block_offsets + s), slots = __ldg(a.head_block_offsets + s + 1) - first;
    const int32_t b = (int32_t)(lo / a.block);
    if (b < slots) a.head_scores[(int64_t)h * a.head_total + first + b] = total;
  }
}

/* Per-head mode: every sequence given blocks must be scored whole (kernels/uniprefill_ops.h):
 * its cache holds exactly its rows, it is longer than sink + last_q, and it has
 * ceil(rows / block) slots. One thread per sequence; the first failure is reported. */
__global__ void __launch_bounds__(SEL_THREADS) sel_head_check_kernel(const sel_args a) {
  for (int32_t s = blockIdx.x * SEL_THREADS + threadIdx.x; s < a.attn.n_seqs; s += gridDim.x * SEL_THREADS) {
    const int32_t slots = __ldg(a.head_block_offsets + s + 1) - __ldg(a.head_block_offsets + s);
    if (slots == 0) continue;
    const int32_t n = __ldg(a.attn.cu_seqlens + s + 1) - __ldg(a.attn.cu_seqlens + s);
    const int32_t kv_len = __ldg(a.attn.kv_lens + s);
    if (kv_len != n)
      sel_report(a, SEL_ERR_KV_LEN, s, kv_len);
    else if (n <= a.min_rows || (n - 1) / a.block + 1 != slots)
      sel_report(a, SEL_ERR_HEAD_BLOCKS, s, n);
  }
}

/* The by-token path's block scores: one warp per virtual scoring block, a lane-strided
 * sum and a fixed shuffle tree, so the block sum is a deterministic function of the
 * token scores. Blocks of sequences that are not scored get 0 (read only by the
 * diagnostic). */
__global__ void __launch_bounds__(SEL_THREADS) sel_block_sum_kernel(const sel_args a, int32_t n_units) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int32_t vb = blockIdx.x * SEL_WARPS + warp;
  if (vb >= n_units) return;
  const int32_t s = sel_seq_of(a.attn.cu_seqlens, a.attn.n_seqs, vb, a.block, 1);
  const int32_t row0 = __ldg(a.attn.cu_seqlens + s), n = __ldg(a.attn.cu_seqlens + s + 1) - row0;
  const int64_t lo = (int64_t)(vb - (row0 / a.block + s)) * a.block;
  if (lo >= n) return;
  if (!sel_scored(a, s, n)) {
    if (lane == 0) a.block_scores[vb] = 0.0f;
    return;
  }
  const int64_t hi = lo + a.block < n ? lo + a.block : n;
  float sum = 0.0f;
  for (int64_t t = lo + lane; t < hi; t += 32) sum += a.token_scores[row0 + t];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  if (lane == 0) a.block_scores[vb] = sum;
}

/* --- stage 2: block choice ------------------------------------------------------------ */

/* Sort key: descending order of the key is descending score (non-negative floats order
 * as their bits), then ascending block index. Padding keys are 0 and sort last. */
__device__ __forceinline__ unsigned long long sel_sort_key(float score, int32_t index) {
  const uint32_t bits = score > 0.0f ? __float_as_uint(score) : 0u;
  return ((unsigned long long)bits << 32) | (unsigned long long)(~(uint32_t)index);
}

/* Inclusive scan of x over the CTA's 32 warps (in double, fixed order); returns the
 * exclusive prefix and leaves the CTA total in *total. */
__device__ double sel_block_scan_excl(double x, double *warp_s, double *total) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  double incl = x;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const double y = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += y;
  }
  double excl = __shfl_up_sync(0xffffffffu, incl, 1);
  if (lane == 0) excl = 0.0;
  if (lane == 31) warp_s[warp] = incl;
  __syncthreads();
  if (warp == 0) {
    double wi = warp_s[lane];
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const double y = __shfl_up_sync(0xffffffffu, wi, o);
      if (lane >= o) wi += y;
    }
    warp_s[lane] = wi; /* inclusive totals per warp */
  }
  __syncthreads();
  *total = warp_s[31];
  return (warp > 0 ? warp_s[warp - 1] : 0.0) + excl;
}

/* One CTA per sequence. A sequence with a NaN or infinite block score keeps every block
 * (the CPU reference's rule). Scored sequences sort their blocks' keys (bitonic, in shared
 * memory up to SEL_SORT_SMEM_KEYS blocks, else in the sequence's slice of a global
 * scratch), then keep the first K ranks: K = the fixed budget, or the first rank r > 0
 * whose preceding score sum exceeds p * total (p >= 1 keeps every block outright,
 * which the CPU reaches through its sequential sums). */
__global__ void __launch_bounds__(SEL_SORT_THREADS) sel_choose_kernel(const sel_args a) {
  extern __shared__ unsigned long long keys_smem[];
  __shared__ double warp_s[32];
  __shared__ int32_t stop_s;
  __shared__ int32_t non_finite_s;
  const int tid = threadIdx.x;
  const int32_t s = blockIdx.x;
  const int32_t row0 = __ldg(a.attn.cu_seqlens + s), n = __ldg(a.attn.cu_seqlens + s + 1) - row0;
  if (!a.candidate[s] || n <= a.min_rows) return;
  const int32_t kv_len = __ldg(a.attn.kv_lens + s);
  if (kv_len != n) {
    if (tid == 0) sel_report(a, SEL_ERR_KV_LEN, s, kv_len);
    return;
  }
  const int32_t vb0 = row0 / a.block + s;
  const int32_t nb = (n - 1) / a.block + 1;
  int32_t cap = 1;
  while (cap < nb) cap <<= 1;
  unsigned long long *keys = a.sort_in_smem ? keys_smem : a.sort_scratch + 2 * (int64_t)vb0;
  if (tid == 0) non_finite_s = 0;
  __syncthreads();
  for (int32_t i = tid; i < cap; i += SEL_SORT_THREADS) {
    unsigned long long k = 0;
    if (i < nb) {
      const float score = a.block_scores[vb0 + i];
      if (!isfinite(score)) non_finite_s = 1;
      k = sel_sort_key(score, i);
    }
    keys[i] = k;
  }
  __syncthreads();
  if (non_finite_s) {
    /* NaN or inf in the sequence's queries or keys, as the CPU reference: keep every
     * block; the values reach the logits, where argmax_rows flags the sequence. */
    for (int32_t r = tid; r < nb; r += SEL_SORT_THREADS) a.keep_block[vb0 + r] = 1;
    return;
  }
  for (int32_t k = 2; k <= cap; k <<= 1)
    for (int32_t j = k >> 1; j > 0; j >>= 1) {
      for (int32_t i = tid; i < cap; i += SEL_SORT_THREADS) {
        const int32_t l = i ^ j;
        if (l > i) {
          const unsigned long long x = keys[i], y = keys[l];
          /* Runs with bit k clear end up descending; at k = cap that is all of them. */
          if ((i & k) == 0 ? x < y : x > y) {
            keys[i] = y;
            keys[l] = x;
          }
        }
      }
      __syncthreads();
    }

  int32_t kept = nb;
  if (a.keep_fraction > 0.0f) {
    /* The CPU's formula: 0.4f * 5 is 2.00000003 and must count as 2. */
    kept = (int32_t)ceil((double)a.keep_fraction * nb - 1e-4);
    kept = kept < 1 ? 1 : (kept > nb ? nb : kept);
  } else if (a.top_p < 1.0f) {
    const int32_t per = (nb + SEL_SORT_THREADS - 1) / SEL_SORT_THREADS;
    const int32_t lo = tid * per < nb ? tid * per : nb, hi = lo + per < nb ? lo + per : nb;
    double local = 0.0;
    for (int32_t r = lo; r < hi; ++r) local += (double)__uint_as_float((uint32_t)(keys[r] >> 32));
    if (tid == 0) stop_s = nb;
    double total;
    double before = sel_block_scan_excl(local, warp_s, &total);
    const double limit = (double)a.top_p * total;
    for (int32_t r = lo; r < hi; ++r) {
      if (r > 0 && before > limit) {
        atomicMin(&stop_s, r);
        break;
      }
      before += (double)__uint_as_float((uint32_t)(keys[r] >> 32));
    }
    __syncthreads();
    kept = stop_s;
  }
  for (int32_t r = tid; r < nb; r += SEL_SORT_THREADS)
    a.keep_block[vb0 + (int32_t)~(uint32_t)(keys[r] & 0xffffffffu)] = r < kept;
}

/* --- stages 3 and 4: token mask and compaction ---------------------------------------- */

/* Keep bits of packed rows [x0, x0 + SEL_ROWS_PER_THREAD): bit i for row x0 + i. */
__device__ uint32_t sel_row_bits(const sel_args &a, int32_t x0) {
  if (x0 >= a.n_tokens) return 0;
  int32_t s = sel_seq_of(a.attn.cu_seqlens, a.attn.n_seqs, x0, 1, 0);
  int32_t row0 = __ldg(a.attn.cu_seqlens + s), end = __ldg(a.attn.cu_seqlens + s + 1);
  bool scored = sel_scored(a, s, end - row0);
  const int32_t x_end = x0 + SEL_ROWS_PER_THREAD < a.n_tokens ? x0 + SEL_ROWS_PER_THREAD : a.n_tokens;
  uint32_t bits = 0;
  for (int32_t x = x0; x < x_end; ++x) {
    while (x >= end && s + 1 < a.attn.n_seqs) {
      ++s;
      row0 = end;
      end = __ldg(a.attn.cu_seqlens + s + 1);
      scored = sel_scored(a, s, end - row0);
    }
    const int32_t t = x - row0, n = end - row0;
    const bool keep = !scored || t < a.sink || t >= n - a.last_q || a.keep_block[row0 / a.block + s + t / a.block];
    bits |= (uint32_t)keep << (x - x0);
  }
  return bits;
}

/* Sum of x over the CTA (all threads get it). */
__device__ int32_t sel_block_sum_i32(int32_t x, int32_t *warp_s) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  __syncthreads(); /* warp_s may still be read from a previous call */
  if (lane == 0) warp_s[warp] = x;
  __syncthreads();
  int32_t total = 0;
#pragma unroll
  for (int w = 0; w < SEL_WARPS; ++w) total += warp_s[w];
  return total;
}

/* Kept rows per tile of SEL_TILE_ROWS packed rows. */
__global__ void __launch_bounds__(SEL_THREADS) sel_count_kernel(const sel_args a) {
  __shared__ int32_t warp_s[SEL_WARPS];
  const uint32_t bits = sel_row_bits(a, blockIdx.x * SEL_TILE_ROWS + threadIdx.x * SEL_ROWS_PER_THREAD);
  const int32_t total = sel_block_sum_i32(__popc(bits), warp_s);
  if (threadIdx.x == 0) a.tile_counts[blockIdx.x] = total;
}

/* Each tile adds up the counts of the tiles before it, scans its own rows and writes
 * keep_rows in order plus every row's exclusive kept count (the last tile also the total). */
__global__ void __launch_bounds__(SEL_THREADS) sel_compact_kernel(const sel_args a) {
  __shared__ int32_t warp_s[SEL_WARPS];
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  int32_t before = 0;
  for (int32_t i = tid; i < (int32_t)blockIdx.x; i += SEL_THREADS) before += a.tile_counts[i];
  before = sel_block_sum_i32(before, warp_s);
  const int32_t x0 = blockIdx.x * SEL_TILE_ROWS + tid * SEL_ROWS_PER_THREAD;
  const uint32_t bits = sel_row_bits(a, x0);
  const int32_t cnt = __popc(bits);
  int32_t incl = cnt;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int32_t y = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += y;
  }
  __syncthreads(); /* warp_s was read by sel_block_sum_i32 */
  if (lane == 31) warp_s[warp] = incl;
  __syncthreads();
  int32_t pos = before + incl - cnt, tile_total = 0;
#pragma unroll
  for (int w = 0; w < SEL_WARPS; ++w) {
    pos += w < warp ? warp_s[w] : 0;
    tile_total += warp_s[w];
  }
  for (int i = 0; i < SEL_ROWS_PER_THREAD && x0 + i < a.n_tokens; ++i) {
    a.excl[x0 + i] = pos;
    if (bits >> i & 1u) a.keep_rows[pos++] = x0 + i;
  }
  if (blockIdx.x == gridDim.x - 1 && tid == 0) a.excl[a.n_tokens] = before + tile_total;
}

/* New offsets: the kept rows before each sequence's first row. */
__global__ void __launch_bounds__(SEL_THREADS) sel_offsets_kernel(const sel_args a) {
  for (int32_t s = threadIdx.x; s <= a.attn.n_seqs; s += SEL_THREADS) a.out[s] = a.excl[__ldg(a.attn.cu_seqlens + s)];
}

/* --- host side ------------------------------------------------------------------------ */

typedef enum sel_buffer {
  SEL_BUF_CANDIDATE,
  SEL_BUF_TOKEN_SCORES,
  SEL_BUF_PARTIAL,
  SEL_BUF_ROW_OFF,
  SEL_BUF_BLOCK_SCORES,
  SEL_BUF_KEEP_BLOCK,
  SEL_BUF_SORT,
  SEL_BUF_TILE_COUNTS,
  SEL_BUF_EXCL,
  SEL_BUF_OUT,
  SEL_BUF_HEAD_OFFSETS, /* the per-head scores' block offsets */
  SEL_BUF_COUNT
} sel_buffer;

/* The per-backend workspace (cb->select_state): device buffers that only grow, and two
 * pinned host buffers for the candidate flags going up and the offsets coming back. */
struct up_cuda_select_state {
  void *dev[SEL_BUF_COUNT];
  size_t dev_bytes[SEL_BUF_COUNT];
  uint8_t *candidate_host;
  size_t candidate_host_bytes;
  int32_t *out_host;
  size_t out_host_bytes;
  /* The last call, for the block-score diagnostic. */
  int32_t last_n_tokens, last_n_seqs, last_block;
  bool last_scored; /* some sequence was a candidate: the block scores were written */
};

/* A buffer of at least `bytes`: reallocated (a quarter larger, so slowly growing
 * batches do not reallocate every step) only when the current one is too small.
 * cudaFree waits for queued work that may still use the old one. */
static void *sel_device_buffer(up_cuda_select_state *st, sel_buffer which, size_t bytes) {
  if (bytes > st->dev_bytes[which] || !st->dev[which]) {
    if (st->dev[which]) UP_CUDA_CHECK(cudaFree(st->dev[which]));
    st->dev[which] = NULL;
    st->dev_bytes[which] = 0;
    const size_t cap = (bytes ? bytes : 16) + bytes / 4;
    UP_CUDA_CHECK(cudaMalloc(&st->dev[which], cap));
    st->dev_bytes[which] = cap;
  }
  return st->dev[which];
}

static void *sel_pinned_buffer(void **ptr, size_t *have, size_t bytes) {
  if (bytes > *have || !*ptr) {
    if (*ptr) UP_CUDA_CHECK(cudaFreeHost(*ptr));
    *ptr = NULL;
    *have = 0;
    const size_t cap = (bytes ? bytes : 16) + bytes / 4;
    UP_CUDA_CHECK(cudaHostAlloc(ptr, cap, cudaHostAllocDefault));
    *have = cap;
  }
  return *ptr;
}

void up_cuda_uniprefill_select_release(up_cuda_backend *cb) {
  up_cuda_select_state *st = cb->select_state;
  if (!st) return;
  for (int i = 0; i < SEL_BUF_COUNT; ++i)
    if (st->dev[i]) UP_CUDA_CHECK(cudaFree(st->dev[i]));
  if (st->candidate_host) UP_CUDA_CHECK(cudaFreeHost(st->candidate_host));
  if (st->out_host) UP_CUDA_CHECK(cudaFreeHost(st->out_host));
  free(st);
  cb->select_state = NULL;
}

template <int HD>
static size_t sel_score_smem_bytes(void) {
  const size_t ck = SEL_WARPS * SEL_KW(HD);
  return ck * HD * 2 + 2 * SEL_QT * HD * 2 + 2 * SEL_WARPS * SEL_QT * sizeof(float2) + 2 * SEL_QT * sizeof(float) +
         ck * sizeof(float);
}

/* The score kernels' grid: kv heads x virtual key chunks. */
template <int HD>
static dim3 sel_score_grid(const sel_args &a) {
  constexpr int CK = SEL_WARPS * SEL_KW(HD);
  const int64_t chunks = (int64_t)a.n_tokens / CK + a.attn.n_seqs;
  if (chunks > 65535 || a.attn.n_seqs > 65535)
    UP_FATAL("uniprefill_select: %lld key chunks or %d sequences exceed the grid limit 65535", (long long)chunks,
             a.attn.n_seqs);
  return dim3((unsigned)a.n_kv_heads, (unsigned)chunks);
}

/* Pass A and the combine for head_dim HD: the partials and row offsets of every scored
 * sequence, what both the selection and the per-head scores start from. */
template <int HD>
static void sel_launch_partials(cudaStream_t stream, const sel_args &a) {
  const size_t smem = sel_score_smem_bytes<HD>();
  const dim3 grid = sel_score_grid<HD>(a);
  /* Cheap and per device: set at each call rather than track which devices have it. */
  UP_CUDA_CHECK(cudaFuncSetAttribute(sel_score_kernel<HD, 0>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  sel_score_kernel<HD, 0><<<grid, SEL_THREADS, smem, stream>>>(a);
  UP_CUDA_CHECK_LAUNCH();
  const dim3 combine_grid((unsigned)(a.rows_pad / 32), (unsigned)a.n_kv_heads, (unsigned)a.attn.n_seqs);
  sel_combine_kernel<<<combine_grid, SEL_COMBINE_WARPS * 32, 0, stream>>>(a);
  UP_CUDA_CHECK_LAUNCH();
}

/* Stage 1 for head_dim HD: the partials, then the block-score kernel (by block) or
 * pass B and the block sums (by token). */
template <int HD>
static void sel_launch_scores(cudaStream_t stream, const sel_args &a, bool by_block, int64_t n_blocks_virtual) {
  sel_launch_partials<HD>(stream, a);
  if (by_block) {
    sel_block_score_kernel<<<(unsigned)n_blocks_virtual, SEL_THREADS, 0, stream>>>(a);
    UP_CUDA_CHECK_LAUNCH();
    return;
  }
  const size_t smem = sel_score_smem_bytes<HD>();
  UP_CUDA_CHECK(cudaFuncSetAttribute(sel_score_kernel<HD, 1>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  sel_score_kernel<HD, 1><<<sel_score_grid<HD>(a), SEL_THREADS, smem, stream>>>(a);
  UP_CUDA_CHECK_LAUNCH();
  sel_block_sum_kernel<<<(unsigned)((n_blocks_virtual + SEL_WARPS - 1) / SEL_WARPS), SEL_THREADS, 0, stream>>>(
      a, (int32_t)n_blocks_virtual);
  UP_CUDA_CHECK_LAUNCH();
}

static void sel_validate(const up_kv_pool *pool, const up_attn_batch *batch, const up_attn_shape *shape,
                         const up_select_params *params) {
  if (shape->n_kv_heads <= 0 || shape->n_heads <= 0 || shape->n_heads % shape->n_kv_heads != 0)
    UP_FATAL("uniprefill_select: n_heads %d is not a multiple of n_kv_heads %d", shape->n_heads, shape->n_kv_heads);
  if (shape->head_dim != 64 && shape->head_dim != 128 && shape->head_dim != 256)
    UP_FATAL("uniprefill_select: head_dim %d not supported by the CUDA kernels (64, 128, 256)", shape->head_dim);
  if (pool->kv_dim != shape->n_kv_heads * shape->head_dim)
    UP_FATAL("uniprefill_select: pool kv_dim %d != n_kv_heads %d * head_dim %d", pool->kv_dim, shape->n_kv_heads,
             shape->head_dim);
  if (pool->block_tokens <= 0) UP_FATAL("uniprefill_select: block_tokens %d must be positive", pool->block_tokens);
  /* Row maxima of raw dot products order the softmax only for a positive scale. */
  if (!(shape->scale > 0.0f)) UP_FATAL("uniprefill_select: softmax scale %g must be positive", (double)shape->scale);
  if (params->block < 1 || params->sink < 0 || params->last_q < 1)
    UP_FATAL("uniprefill_select: block %d, sink %d, last_q %d out of range", params->block, params->sink,
             params->last_q);
  if (!(params->top_p >= 0.0f && params->top_p <= 1.0f) ||
      !(params->keep_fraction >= 0.0f && params->keep_fraction <= 1.0f))
    UP_FATAL("uniprefill_select: top_p %g and keep_fraction %g must lie in [0, 1]", (double)params->top_p,
             (double)params->keep_fraction);
  if (batch->n_seqs < 0 || batch->n_tokens < 0)
    UP_FATAL("uniprefill_select: %d sequences, %d rows", batch->n_seqs, batch->n_tokens);
}

/* The backend's workspace, made on first use. */
static up_cuda_select_state *sel_state(up_cuda_backend *cb) {
  if (!cb->select_state)
    cb->select_state = (up_cuda_select_state *)up_calloc_or_die(1, sizeof(up_cuda_select_state), "selection state");
  return cb->select_state;
}

/* Scoring rows per kv head (group x last_q), padded to whole query tiles. */
static int64_t sel_rows_pad(const up_attn_shape *shape, const up_select_params *params, int64_t *rows) {
  *rows = (int64_t)(shape->n_heads / shape->n_kv_heads) * params->last_q;
  const int64_t rows_pad = (*rows + SEL_QT - 1) / SEL_QT * SEL_QT;
  if (rows_pad > (1 << 24)) UP_FATAL("uniprefill_select: %lld scoring rows per kv head", (long long)*rows);
  return rows_pad;
}

/* UP_SELECT_PATH: unset, empty or "auto" for the choice below; "by_token" for the
 * two-pass path at every block (the cap's fallback, tested and timed on any shape). */
static bool sel_forced_by_token(void) {
  const char *choice = getenv("UP_SELECT_PATH");
  if (!choice || !*choice || strcmp(choice, "auto") == 0) return false;
  if (strcmp(choice, "by_token") == 0) return true;
  UP_FATAL("UP_SELECT_PATH=%s: expected \"auto\" (the default: by block where the block allows and the partials "
           "fit) or \"by_token\" (the two-pass path at every block)", choice);
}

/* The unit of pass A's partials, and in *by_block whether the by-block path runs: when
 * a warp's keys divide the block and the partials fit their cap (any size with
 * ignore_cap), the unit is gcd(block, chunk): a warp's keys doubled while they divide
 * the block, up to a chunk (a chunk is 8 warps' keys). By token, with a unit of one
 * chunk, otherwise, or when force_by_token. */
static int32_t sel_partial_unit(int32_t hd, int32_t block, int32_t n_tokens, int32_t n_seqs, int32_t n_kv,
                                int64_t rows_pad, bool ignore_cap, bool force_by_token, bool *by_block) {
  const int32_t chunk = SEL_WARPS * SEL_KW(hd);
  *by_block = false;
  if (force_by_token || block % SEL_KW(hd) != 0) return chunk;
  int32_t block_unit = SEL_KW(hd);
  while (block_unit < chunk && block % (2 * block_unit) == 0) block_unit *= 2;
  const double bytes = ((double)n_tokens / block_unit + n_seqs) * (double)n_kv * (double)rows_pad * sizeof(float2);
  *by_block = ignore_cap || bytes <= (double)SEL_BLOCK_PARTIAL_MAX_BYTES;
  return *by_block ? block_unit : chunk;
}

/* What every kernel of a call reads, before its buffers are attached. */
static sel_args sel_args_make(const void *qkv, const up_kv_pool *pool, const up_attn_batch *batch,
                              const up_attn_shape *shape, const up_select_params *params, int64_t rows,
                              int64_t rows_pad, int32_t unit) {
  sel_args a;
  memset(&a, 0, sizeof a);
  a.attn = up_attn_args_make(NULL, qkv, pool, batch, shape);
  a.n_tokens = batch->n_tokens;
  a.n_kv_heads = shape->n_kv_heads;
  a.last_q = params->last_q;
  {
    /* Division by last_q without a divide: with L = ceil(log2 last_q) and
     * M = ceil(2^(32 + L) / last_q), (r * M) >> (32 + L) = r / last_q for r < 2^24. */
    int32_t l = 0;
    while ((1LL << l) < (int64_t)params->last_q) ++l;
    a.last_q_shift = 32 + l;
    a.last_q_mul = ((1ULL << (32 + l)) + (uint64_t)params->last_q - 1) / (uint64_t)params->last_q;
  }
  a.sink = params->sink;
  a.block = params->block;
  a.min_rows = (int32_t)((int64_t)params->sink + params->last_q < INT32_MAX ? params->sink + params->last_q
                                                                            : INT32_MAX);
  a.rows = (int32_t)rows;
  a.rows_pad = (int32_t)rows_pad;
  a.unit = unit;
  a.top_p = params->top_p;
  a.keep_fraction = params->keep_fraction;
  return a;
}

/* Candidate flags up through pinned memory (the previous call's copy has finished:
 * every call ends with a stream synchronisation). */
static void sel_upload_candidates(up_cuda_select_state *st, cudaStream_t stream, const sel_args &a,
                                  const uint8_t *flags_host, int32_t n_seqs) {
  uint8_t *cand_host = (uint8_t *)sel_pinned_buffer((void **)&st->candidate_host, &st->candidate_host_bytes,
                                                    (size_t)n_seqs);
  memcpy(cand_host, flags_host, (size_t)n_seqs);
  UP_CUDA_CHECK(cudaMemcpyAsync((void *)a.candidate, cand_host, (size_t)n_seqs, cudaMemcpyHostToDevice, stream));
}

/* Pass A and the combine at the call's head_dim. */
static void sel_launch_partials_hd(cudaStream_t stream, const sel_args &a, int32_t hd) {
  switch (hd) {
    case 64: sel_launch_partials<64>(stream, a); break;
    case 128: sel_launch_partials<128>(stream, a); break;
    default: sel_launch_partials<256>(stream, a); break;
  }
}

extern "C" int32_t up_cuda_uniprefill_select(up_backend *be, int32_t *keep_rows, int32_t *new_cu_seqlens_host,
                                             const void *qkv, const up_kv_pool *pool, const up_attn_batch *batch,
                                             const up_attn_shape *shape, const uint8_t *is_candidate_host,
                                             const up_select_params *params) {
  sel_validate(pool, batch, shape, params);
  const int32_t n_seqs = batch->n_seqs, n_tokens = batch->n_tokens;
  up_cuda_backend *cb = up_cuda_impl(be);
  up_cuda_select_state *st = sel_state(cb);
  st->last_n_tokens = n_tokens;
  st->last_n_seqs = n_seqs;
  st->last_block = params->block;
  st->last_scored = false;
  for (int32_t s = 0; s <= n_seqs; ++s) new_cu_seqlens_host[s] = 0;
  if (n_seqs == 0 || n_tokens == 0) return 0;
  const cudaStream_t stream = cb->stream;

  const int32_t hd = shape->head_dim, n_kv = shape->n_kv_heads;
  int64_t rows;
  const int64_t rows_pad = sel_rows_pad(shape, params, &rows);
  bool by_block;
  const int32_t unit =
      sel_partial_unit(hd, params->block, n_tokens, n_seqs, n_kv, rows_pad, false, sel_forced_by_token(), &by_block);
  const int64_t n_partial_units = (int64_t)n_tokens / unit + n_seqs; /* virtual units */
  const int64_t n_units = (int64_t)n_tokens / params->block + n_seqs; /* virtual scoring blocks */
  const int64_t n_tiles = ((int64_t)n_tokens + SEL_TILE_ROWS - 1) / SEL_TILE_ROWS;
  const int64_t max_blocks = ((int64_t)n_tokens - 1) / params->block + 1;
  int64_t cap_max = 1;
  while (cap_max < max_blocks) cap_max <<= 1;

  bool any_candidate = false;
  for (int32_t s = 0; s < n_seqs; ++s) any_candidate = any_candidate || is_candidate_host[s];

  sel_args a = sel_args_make(qkv, pool, batch, shape, params, rows, rows_pad, unit);
  a.keep_rows = keep_rows;
  a.sort_in_smem = cap_max <= SEL_SORT_SMEM_KEYS;

  a.candidate = (const uint8_t *)sel_device_buffer(st, SEL_BUF_CANDIDATE, (size_t)n_seqs);
  a.tile_counts = (int32_t *)sel_device_buffer(st, SEL_BUF_TILE_COUNTS, sizeof(int32_t) * (size_t)n_tiles);
  a.excl = (int32_t *)sel_device_buffer(st, SEL_BUF_EXCL, sizeof(int32_t) * ((size_t)n_tokens + 1));
  const size_t out_n = (size_t)n_seqs + 1 + SEL_OUT_EXTRA;
  a.out = (int32_t *)sel_device_buffer(st, SEL_BUF_OUT, sizeof(int32_t) * out_n);
  if (any_candidate) {
    a.partial = (float2 *)sel_device_buffer(st, SEL_BUF_PARTIAL, sizeof(float2) * (size_t)n_partial_units *
                                                                     (size_t)n_kv * (size_t)rows_pad);
    if (!by_block)
      a.token_scores = (float *)sel_device_buffer(st, SEL_BUF_TOKEN_SCORES, sizeof(float) * (size_t)n_tokens);
    a.row_off = (float *)sel_device_buffer(st, SEL_BUF_ROW_OFF,
                                           sizeof(float) * (size_t)n_seqs * (size_t)n_kv * (size_t)rows_pad);
    a.block_scores = (float *)sel_device_buffer(st, SEL_BUF_BLOCK_SCORES, sizeof(float) * (size_t)n_units);
    a.keep_block = (uint8_t *)sel_device_buffer(st, SEL_BUF_KEEP_BLOCK, (size_t)n_units);
    if (!a.sort_in_smem)
      a.sort_scratch = (unsigned long long *)sel_device_buffer(st, SEL_BUF_SORT,
                                                               sizeof(unsigned long long) * 2 * (size_t)n_units);
  }

  sel_upload_candidates(st, stream, a, is_candidate_host, n_seqs);
  if (a.token_scores) UP_CUDA_CHECK(cudaMemsetAsync(a.token_scores, 0, sizeof(float) * (size_t)n_tokens, stream));
  UP_CUDA_CHECK(cudaMemsetAsync(a.out + n_seqs + 1, 0, sizeof(int32_t) * SEL_OUT_EXTRA, stream));

  if (any_candidate) {
    switch (hd) {
      case 64: sel_launch_scores<64>(stream, a, by_block, n_units); break;
      case 128: sel_launch_scores<128>(stream, a, by_block, n_units); break;
      default: sel_launch_scores<256>(stream, a, by_block, n_units); break;
    }
    st->last_scored = true;
    const size_t sort_smem = a.sort_in_smem ? sizeof(unsigned long long) * (size_t)cap_max : 0;
    UP_CUDA_CHECK(cudaFuncSetAttribute(sel_choose_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       (int)(sizeof(unsigned long long) * SEL_SORT_SMEM_KEYS)));
    sel_choose_kernel<<<(unsigned)n_seqs, SEL_SORT_THREADS, sort_smem, stream>>>(a);
    UP_CUDA_CHECK_LAUNCH();
  }
  sel_count_kernel<<<(unsigned)n_tiles, SEL_THREADS, 0, stream>>>(a);
  UP_CUDA_CHECK_LAUNCH();
  sel_compact_kernel<<<(unsigned)n_tiles, SEL_THREADS, 0, stream>>>(a);
  UP_CUDA_CHECK_LAUNCH();
  sel_offsets_kernel<<<1, SEL_THREADS, 0, stream>>>(a);
  UP_CUDA_CHECK_LAUNCH();

  /* The op's one device-to-host copy: the offsets the caller needs on the host, with the
   * error word behind them. */
  int32_t *out_host =
      (int32_t *)sel_pinned_buffer((void **)&st->out_host, &st->out_host_bytes, sizeof(int32_t) * out_n);
  UP_CUDA_CHECK(cudaMemcpyAsync(out_host, a.out, sizeof(int32_t) * out_n, cudaMemcpyDeviceToHost, stream));
  UP_CUDA_CHECK(cudaStreamSynchronize(stream));
  const int32_t *err = out_host + n_seqs + 1;
  if (err[0] == SEL_ERR_KV_LEN)
    UP_FATAL("selection needs a whole-prompt prefill: sequence %d has %d cached entries for its rows", err[1], err[2]);
  memcpy(new_cu_seqlens_host, out_host, sizeof(int32_t) * ((size_t)n_seqs + 1));
  return new_cu_seqlens_host[n_seqs];
}

extern "C" void up_cuda_uniprefill_head_scores(up_backend *be, float *head_scores, const void *qkv,
                                               const up_kv_pool *pool, const up_attn_batch *batch,
                                               const up_attn_shape *shape, const int32_t *block_offsets_host,
                                               const up_select_params *params) {
  sel_validate(pool, batch, shape, params);
  const int32_t n_seqs = batch->n_seqs, n_tokens = batch->n_tokens, hd = shape->head_dim;
  if (n_seqs == 0 || block_offsets_host[n_seqs] == 0) return; /* no slot to write */
  if (params->block % SEL_KW(hd) != 0)
    UP_FATAL("uniprefill_head_scores: block %d is not a multiple of the %d keys a warp scores at head_dim %d (the "
             "CUDA per-head scores have only the by-block path; use such a block under --tp > 1)",
             params->block, SEL_KW(hd), hd);
  up_cuda_backend *cb = up_cuda_impl(be);
  up_cuda_select_state *st = sel_state(cb);
  const cudaStream_t stream = cb->stream;
  int64_t rows;
  const int64_t rows_pad = sel_rows_pad(shape, params, &rows);
  /* The per-head scores exist only by block: no cap (a rank's share of the kv heads
   * keeps its partials small; an allocation that still fails is fatal and says so). */
  bool by_block;
  const int32_t unit = sel_partial_unit(hd, params->block, n_tokens, n_seqs, shape->n_kv_heads, rows_pad, true,
                                        false, &by_block);
  UP_ASSERT(by_block, "uniprefill_head_scores: block %d took the by-token path", params->block);
  const int64_t n_partial_units = (int64_t)n_tokens / unit + n_seqs;
  const int64_t n_units = (int64_t)n_tokens / params->block + n_seqs;
  if (n_units > INT32_MAX || shape->n_heads > 65535)
    UP_FATAL("uniprefill_head_scores: %lld blocks or %d heads exceed the grid", (long long)n_units, shape->n_heads);

  sel_args a = sel_args_make(qkv, pool, batch, shape, params, rows, rows_pad, unit);
  a.head_scores = head_scores;
  a.head_total = block_offsets_host[n_seqs];
  /* Candidates are the sequences given slots. The selection's workspace is borrowed
   * (partials, row offsets, candidate flags, the error word and the pinned copy);
   * its block scores and the diagnostic's record of the last selection are left alone. */
  uint8_t *flags = (uint8_t *)up_malloc_or_die((size_t)n_seqs, "head-score candidates");
  for (int32_t s = 0; s < n_seqs; ++s) flags[s] = block_offsets_host[s + 1] > block_offsets_host[s];
  a.candidate = (const uint8_t *)sel_device_buffer(st, SEL_BUF_CANDIDATE, (size_t)n_seqs);
  const size_t out_n = (size_t)n_seqs + 1 + SEL_OUT_EXTRA;
  a.out = (int32_t *)sel_device_buffer(st, SEL_BUF_OUT, sizeof(int32_t) * out_n);
  int32_t *offsets_dev =
      (int32_t *)sel_device_buffer(st, SEL_BUF_HEAD_OFFSETS, sizeof(int32_t) * ((size_t)n_seqs + 1));
  a.head_block_offsets = offsets_dev;
  a.partial = (float2 *)sel_device_buffer(st, SEL_BUF_PARTIAL, sizeof(float2) * (size_t)n_partial_units *
                                                                   (size_t)shape->n_kv_heads * (size_t)rows_pad);
  a.row_off = (float *)sel_device_buffer(st, SEL_BUF_ROW_OFF, sizeof(float) * (size_t)n_seqs *
                                                                  (size_t)shape->n_kv_heads * (size_t)rows_pad);

  sel_upload_candidates(st, stream, a, flags, n_seqs);
  free(flags);
  int32_t *offsets_host = (int32_t *)sel_pinned_buffer((void **)&st->out_host, &st->out_host_bytes,
                                                       sizeof(int32_t) * out_n);
  memcpy(offsets_host, block_offsets_host, sizeof(int32_t) * ((size_t)n_seqs + 1));
  UP_CUDA_CHECK(cudaMemcpyAsync(offsets_dev, offsets_host, sizeof(int32_t) * ((size_t)n_seqs + 1),
                                cudaMemcpyHostToDevice, stream));
  UP_CUDA_CHECK(cudaMemsetAsync(a.out + n_seqs + 1, 0, sizeof(int32_t) * SEL_OUT_EXTRA, stream));

  sel_head_check_kernel<<<(unsigned)((n_seqs + SEL_THREADS - 1) / SEL_THREADS), SEL_THREADS, 0, stream>>>(a);
  UP_CUDA_CHECK_LAUNCH();
  sel_launch_partials_hd(stream, a, hd);
  sel_block_score_kernel<<<dim3((unsigned)n_units, (unsigned)shape->n_heads), SEL_THREADS, 0, stream>>>(a);
  UP_CUDA_CHECK_LAUNCH();

  /* The error words back (the offsets' pinned copy has been read by then: same stream). */
  UP_CUDA_CHECK(cudaMemcpyAsync(offsets_host, a.out + n_seqs + 1, sizeof(int32_t) * SEL_OUT_EXTRA,
                                cudaMemcpyDeviceToHost, stream));
  UP_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (offsets_host[0] == SEL_ERR_KV_LEN)
    UP_FATAL("uniprefill_head_scores needs a whole-prompt prefill: sequence %d has %d cached entries for its rows",
             offsets_host[1], offsets_host[2]);
  if (offsets_host[0] == SEL_ERR_HEAD_BLOCKS)
    UP_FATAL("uniprefill_head_scores: sequence %d of %d rows is given %d block slots (it needs more than sink + "
             "last_q = %d rows and ceil(rows / %d) slots)", offsets_host[1], offsets_host[2],
             block_offsets_host[offsets_host[1] + 1] - block_offsets_host[offsets_host[1]], a.min_rows, a.block);
}

extern "C" int32_t up_cuda_uniprefill_select_block_scores(up_backend *be, float *dst_host,
                                                           const int32_t *cu_seqlens_host, int32_t n_seqs) {
  up_cuda_backend *cb = up_cuda_impl(be);
  const up_cuda_select_state *st = cb->select_state;
  if (!st || n_seqs != st->last_n_seqs || n_seqs < 0 || cu_seqlens_host[n_seqs] != st->last_n_tokens)
    UP_FATAL("uniprefill_select block scores: %d sequences of %d rows asked, the last call had %d of %d", n_seqs,
             n_seqs >= 0 ? cu_seqlens_host[n_seqs] : 0, st ? st->last_n_seqs : 0, st ? st->last_n_tokens : 0);
  const int32_t block = st->last_block;
  const size_t n_virtual = (size_t)st->last_n_tokens / (size_t)block + (size_t)n_seqs;
  float *virtual_scores = (float *)up_calloc_or_die(n_virtual + 1, sizeof(float), "block scores (virtual)");
  if (st->last_scored && n_virtual > 0) {
    UP_CUDA_CHECK(cudaMemcpyAsync(virtual_scores, st->dev[SEL_BUF_BLOCK_SCORES], sizeof(float) * n_virtual,
                                  cudaMemcpyDeviceToHost, cb->stream));
    UP_CUDA_CHECK(cudaStreamSynchronize(cb->stream));
  }
  int32_t out = 0;
  for (int32_t s = 0; s < n_seqs; ++s) {
    const int32_t first = cu_seqlens_host[s], nb = (cu_seqlens_host[s + 1] - first + block - 1) / block;
    for (int32_t b = 0; b < nb; ++b) dst_host[out++] = virtual_scores[first / block + s + b];
  }
  free(virtual_scores);
  return out;
}
