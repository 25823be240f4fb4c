/* attn_sm90_tiles.cuh — what the Hopper (sm_90a) prefill kernels share, for head_dim
 * 128 and 256: the wgmma wrappers and 128-byte-swizzled tile addressing, the
 * CTA-to-query-tile rule, the Q load, the two products, the online softmax of one
 * 64 x BN score tile and the output write. attention_prefill_sm90.cu (every thread
 * copies K/V with cp.async, any page size) and attention_prefill_sm90_tma.cu (a
 * producer warp copies whole pages by TMA) differ only in how K/V tiles reach shared
 * memory and how the warpgroups wait for them. Included by .cu files only.
 *
 * Shared-memory tiles use wgmma's 128-byte swizzle: a tile of R rows x HD bf16 is
 * HD / 64 column blocks (columns 0-63, 64-127, ...) of R rows x 128 bytes; 16-byte
 * chunk c of row r sits at chunk c ^ (r & 7) of its 128-byte row, in 1024-byte-aligned
 * groups of 8 rows (the layout TMA's 128-byte swizzle writes). Q and K are read
 * K-major, V MN-major.
 *
 * Tile sizes per head_dim (sm90_geom): 128 query rows per CTA (two warpgroups of 64)
 * for both; K/V tiles of 128 entries at head_dim 128 (the kernel as measured in
 * docs/kernels/attention.md), 64 at 256, where the output accumulator doubles to 128
 * registers a thread and a 128-entry tile would need 256 KB of shared memory for two
 * stages (docs/kernels/sliding_window.md). */
#ifndef UP_ATTN_SM90_TILES_CUH
#define UP_ATTN_SM90_TILES_CUH

#include <math.h>

#include "kernels/cuda/attention/attn_common.cuh"
#include "kernels/cuda/attention/cuda_attention.h"

/* wgmma exists only on sm_90a: the device pass of any other target (the compute_90 PTX
 * kept for newer GPUs) compiles the kernel as a trap and none of its helpers. */
#if !defined(__CUDA_ARCH__) || defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define UP_ATTN_HAVE_WGMMA 1
#else
#define UP_ATTN_HAVE_WGMMA 0
#endif

namespace {

constexpr int BM = 128; /* query rows per CTA: two warpgroups of 64 */

/* The tile geometry of head_dim HD (128 or 256). */
template <int HD>
struct sm90_geom {
  static_assert(HD == 128 || HD == 256, "the Hopper kernels take head_dim 128 or 256");
  static constexpr int BN = HD == 128 ? 128 : 64; /* cache entries per K/V tile */
  static constexpr int CH = HD / 8;               /* 16-byte chunks per row */
  static constexpr int TILE_BYTES = BN * HD * 2;
  static constexpr int Q_BYTES = BM * HD * 2;
  static constexpr int S_REGS = BN / 2; /* score accumulators a thread holds (64 rows x BN / 128) */
  static constexpr int O_REGS = HD / 2; /* output accumulators a thread holds */
};

#if UP_ATTN_HAVE_WGMMA
/* Byte offset of 16-byte chunk c (0 .. HD/8 - 1) of row r in a swizzled tile of `rows` rows. */
__device__ __forceinline__ uint32_t sw128(int rows, int r, int c) {
  return (uint32_t)((c >> 3) * rows * 128 + r * 128 + (((c & 7) ^ (r & 7)) << 4));
}

/* wgmma shared-memory descriptor, 128-byte swizzle: start address, leading and stride
 * byte offsets (all in 16-byte units). */
__device__ __forceinline__ uint64_t sw128_desc(uint32_t addr, uint32_t lbo, uint32_t sbo) {
  return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)(lbo >> 4) << 16) | ((uint64_t)(sbo >> 4) << 32) |
         (1ull << 62);
}

/* The compiler sees a wgmma's accumulators as written when the instruction issues; this
 * empty asm on each of them after the wait keeps their readers from moving above it. */
template <int N>
__device__ __forceinline__ void fence_accumulators(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}
__device__ __forceinline__ void wgmma_fence(void) { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit(void) { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
/* Wait until at most N of this warpgroup's committed groups are still running. */
template <int N>
__device__ __forceinline__ void wgmma_wait(void) {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
/* cp.async writes are generic-proxy writes; wgmma reads through the async proxy. */
__device__ __forceinline__ void fence_proxy_async(void) {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

/* Accumulator operand lists: %0..%31 (m64n64), %0..%63 (m64n128), %0..%127 (m64n256). */
#define WGMMA_D32_REGS \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
#define WGMMA_D64_REGS \
  WGMMA_D32_REGS ", %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
#define WGMMA_D128_REGS \
  WGMMA_D64_REGS ", %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, " \
  "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, " \
  "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, " \
  "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
#define WGMMA_OUT8(d, i) \
  "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), \
      "+f"(d[i + 7])
#define WGMMA_D32_OUTPUTS(d) WGMMA_OUT8(d, 0), WGMMA_OUT8(d, 8), WGMMA_OUT8(d, 16), WGMMA_OUT8(d, 24)
#define WGMMA_D64_OUTPUTS(d) WGMMA_D32_OUTPUTS(d), WGMMA_OUT8(d, 32), WGMMA_OUT8(d, 40), WGMMA_OUT8(d, 48), WGMMA_OUT8(d, 56)
#define WGMMA_D128_OUTPUTS(d) \
  WGMMA_D64_OUTPUTS(d), WGMMA_OUT8(d, 64), WGMMA_OUT8(d, 72), WGMMA_OUT8(d, 80), WGMMA_OUT8(d, 88), \
      WGMMA_OUT8(d, 96), WGMMA_OUT8(d, 104), WGMMA_OUT8(d, 112), WGMMA_OUT8(d, 120)

/* d[64xN] (+)= A[64x16] B[16xN]: A and B K-major in shared memory (descriptors);
 * accumulate 0 overwrites d. N = 128 (head_dim 128's score tile) or 64 (256's). */
__device__ __forceinline__ void wgmma_ss(float (&d)[64], uint64_t desc_a, uint64_t desc_b, int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {" WGMMA_D64_REGS "}, "
      "%64, %65, p, 1, 1, 0, 0;\n}\n"
      : WGMMA_D64_OUTPUTS(d)
      : "l"(desc_a), "l"(desc_b), "r"(accumulate));
}
__device__ __forceinline__ void wgmma_ss(float (&d)[32], uint64_t desc_a, uint64_t desc_b, int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {" WGMMA_D32_REGS "}, "
      "%32, %33, p, 1, 1, 0, 0;\n}\n"
      : WGMMA_D32_OUTPUTS(d)
      : "l"(desc_a), "l"(desc_b), "r"(accumulate));
}

/* d[64xN] += A[64x16] B[16xN]: A in registers (the mma.sync m16n8k16 A layout per
 * warp), B MN-major in shared memory (transposed: rows of B's K are contiguous N).
 * N = head_dim: 128 or 256. */
__device__ __forceinline__ void wgmma_rs_bt(float (&d)[64], const uint32_t (&a)[4], uint64_t desc_b) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {" WGMMA_D64_REGS "}, "
      "{%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
      : WGMMA_D64_OUTPUTS(d)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b));
}
__device__ __forceinline__ void wgmma_rs_bt(float (&d)[128], const uint32_t (&a)[4], uint64_t desc_b) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {" WGMMA_D128_REGS "}, "
      "{%128, %129, %130, %131}, %132, p, 1, 1, 1;\n}\n"
      : WGMMA_D128_OUTPUTS(d)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b));
}

/* Where a CTA works: its sequence and first row, or false when it has nothing to do
 * (past its sequence's tiles, or a decode sequence). Sequence s owns the virtual tiles
 * from cu_seqlens[s] / BM + s on; the grid runs them in reverse (latest rows first). */
struct prefill_job {
  int32_t seq, row0, n_rows, q0, kv_len, prior, n_tiles;
  const int32_t *block_table;
};

/* The job of virtual tile vtile; sequences of at most max_skipped_rows rows are left to
 * another kernel (the decode path's: UP_ATTN_DECODE_MAX_ROWS). */
template <int HD>
__device__ __forceinline__ bool find_job_at(const up_attn_args &p, int32_t vtile, int32_t max_skipped_rows,
                                            prefill_job &jb) {
  constexpr int BN = sm90_geom<HD>::BN;
  const int32_t lo = up_attn_tile_seq(p.cu_seqlens, p.n_seqs, vtile, BM);
  jb.seq = lo;
  jb.row0 = __ldg(p.cu_seqlens + lo);
  jb.n_rows = __ldg(p.cu_seqlens + lo + 1) - jb.row0;
  jb.q0 = (vtile - (jb.row0 / BM + lo)) * BM;
  if (jb.n_rows <= max_skipped_rows || jb.q0 >= jb.n_rows) return false;
  jb.kv_len = __ldg(p.kv_lens + lo);
  jb.prior = jb.kv_len - jb.n_rows;
  jb.block_table = p.block_tables + (int64_t)lo * p.max_blocks_per_seq;
  jb.n_tiles = (jb.prior + min(jb.q0 + BM, jb.n_rows) + BN - 1) / BN; /* the last row's keys */
  return true;
}

template <int HD>
__device__ __forceinline__ bool find_job(const up_attn_args &p, prefill_job &jb) {
  return find_job_at<HD>(p, (int32_t)(gridDim.y - 1 - blockIdx.y), UP_ATTN_DECODE_MAX_ROWS, jb);
}

/* Query rows [row_begin, row_begin + n) of the CTA's BM into the swizzled Q tile, by
 * NT threads (tid 0..NT-1); rows past the sequence are zeros. */
template <int HD, int NT>
__device__ __forceinline__ void load_q_rows(uint32_t q_s, const up_attn_args &p, const prefill_job &jb, int tid,
                                            int row_begin, int n) {
  constexpr int CH = sm90_geom<HD>::CH;
  const int c = tid % CH;
#pragma unroll
  for (int i = 0; i < n / (NT / CH); ++i) {
    const int r = row_begin + tid / CH + i * (NT / CH);
    const bool valid = jb.q0 + r < jb.n_rows;
    const int64_t off = valid ? (int64_t)(jb.row0 + jb.q0 + r) * p.qkv_stride + (int64_t)blockIdx.x * HD + c * 8 : 0;
    up_attn_cp_async16(q_s + sw128(BM, r, c), p.qkv + off, valid ? 16 : 0);
  }
}

/* Issue S = Q K^T for the warpgroup's 64 rows against one K tile (not waited). */
template <int HD>
__device__ __forceinline__ void issue_scores(float (&sc)[sm90_geom<HD>::S_REGS], uint32_t q_wg, uint32_t k_t) {
  constexpr int BN = sm90_geom<HD>::BN;
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < HD / 16; ++kk) {
    const uint32_t koff = (uint32_t)((kk & 3) * 32); /* 16 columns = 32 bytes into the swizzled row */
    wgmma_ss(sc, sw128_desc(q_wg + (uint32_t)((kk >> 2) * BM * 128) + koff, 16, 1024),
             sw128_desc(k_t + (uint32_t)((kk >> 2) * BN * 128) + koff, 16, 1024), kk > 0);
  }
  wgmma_commit();
}

/* Issue O += P V for one V tile (not waited); P in registers, V read MN-major: the
 * head_dim's column blocks lie BN * 128 bytes apart (the leading byte offset). */
template <int HD>
__device__ __forceinline__ void issue_pv(float (&o)[sm90_geom<HD>::O_REGS],
                                         const uint32_t (&pa)[sm90_geom<HD>::BN / 16][4], uint32_t v_t) {
  constexpr int BN = sm90_geom<HD>::BN;
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < BN / 16; ++kk) wgmma_rs_bt(o, pa[kk], sw128_desc(v_t + (uint32_t)(kk * 16 * 128), BN * 128, 1024));
  wgmma_commit();
}

/* The first cache entry any row of the CTA sees: 0 under full causal attention (the
 * WINDOW = false kernels, whose code stays that of the full-causal kernel), else
 * the first row's window start (kernels/ops.h). */
template <bool WINDOW>
__device__ __forceinline__ int32_t job_first_entry(const up_attn_args &p, const prefill_job &jb) {
  return WINDOW ? up_attn_window_start(jb.prior + jb.q0, p.window) : 0;
}

/* Mask a score tile and turn it into unnormalised probabilities in place (online
 * softmax in base 2), updating the running max and sum; returns through corr the
 * factor that rescales the output rows. sc[4t + e] is row my_row + 8 (e >> 1), entry
 * k_first + 8t + 2 (lane & 3) + (e & 1). A row with every key so far masked keeps
 * m = -inf and uses base 0 so that exp2(-inf - base) = 0 rather than NaN. WINDOW
 * also masks the keys before each row's sliding-window start; SPAN (a key tile of a
 * sparse pattern's list, which may start before or reach past the list's range) the
 * entries outside [span_lo, span_hi). */
template <int HD, bool WINDOW, bool SPAN = false>
__device__ __forceinline__ void softmax_tile(float (&sc)[sm90_geom<HD>::S_REGS], float (&m)[2], float (&l)[2],
                                             float (&corr)[2], int32_t k_first, int32_t my_row, int32_t wg_row,
                                             const prefill_job &jb, float scale_log2, int32_t window,
                                             int32_t span_lo = 0, int32_t span_hi = 0) {
  constexpr int BN = sm90_geom<HD>::BN;
  const int lane = threadIdx.x & 31;
  if (k_first + BN - 1 > jb.prior + wg_row || k_first + BN > jb.kv_len ||
      (WINDOW && k_first < up_attn_window_start(jb.prior + wg_row + 63, window)) ||
      (SPAN && (k_first < span_lo || k_first + BN > span_hi))) {
#pragma unroll
    for (int t = 0; t < BN / 8; ++t)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int32_t key = k_first + t * 8 + 2 * (lane & 3) + (e & 1);
        const int32_t row = my_row + (e >> 1) * 8;
        if (key > jb.prior + row || key >= jb.kv_len || (WINDOW && key < up_attn_window_start(jb.prior + row, window)) ||
            (SPAN && (key < span_lo || key >= span_hi)))
          sc[4 * t + e] = -INFINITY;
      }
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float mx = m[r];
#pragma unroll
    for (int t = 0; t < BN / 8; ++t) mx = fmaxf(mx, fmaxf(sc[4 * t + 2 * r], sc[4 * t + 2 * r + 1]));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float base = mx == -INFINITY ? 0.0f : mx * scale_log2;
    corr[r] = up_attn_exp2(m[r] * scale_log2 - base);
    m[r] = mx;
    float sum = 0.0f;
#pragma unroll
    for (int t = 0; t < BN / 8; ++t) {
      sc[4 * t + 2 * r] = up_attn_exp2(fmaf(sc[4 * t + 2 * r], scale_log2, -base));
      sc[4 * t + 2 * r + 1] = up_attn_exp2(fmaf(sc[4 * t + 2 * r + 1], scale_log2, -base));
      sum += sc[4 * t + 2 * r] + sc[4 * t + 2 * r + 1];
    }
    l[r] = l[r] * corr[r] + sum;
  }
}

/* Rescale the output rows, then pack P as the register A operand: accumulator n-tiles
 * 2kk and 2kk+1 are the A fragment of k-step kk. */
template <int HD>
__device__ __forceinline__ void rescale_and_pack(float (&o)[sm90_geom<HD>::O_REGS], const float (&corr)[2],
                                                 const float (&sc)[sm90_geom<HD>::S_REGS],
                                                 uint32_t (&pa)[sm90_geom<HD>::BN / 16][4]) {
#pragma unroll
  for (int t = 0; t < HD / 8; ++t) {
    o[4 * t + 0] *= corr[0];
    o[4 * t + 1] *= corr[0];
    o[4 * t + 2] *= corr[1];
    o[4 * t + 3] *= corr[1];
  }
#pragma unroll
  for (int kk = 0; kk < sm90_geom<HD>::BN / 16; ++kk) {
    pa[kk][0] = up_attn_pack_bf16(sc[8 * kk + 0], sc[8 * kk + 1]);
    pa[kk][1] = up_attn_pack_bf16(sc[8 * kk + 2], sc[8 * kk + 3]);
    pa[kk][2] = up_attn_pack_bf16(sc[8 * kk + 4], sc[8 * kk + 5]);
    pa[kk][3] = up_attn_pack_bf16(sc[8 * kk + 6], sc[8 * kk + 7]);
  }
}

/* Normalise the warp's 16 rows, stage them in its own rows of the Q tile (every
 * product has completed: the caller's barrier), then write whole rows in 16-byte chunks. */
template <int HD>
__device__ __forceinline__ void write_out(const float (&o)[sm90_geom<HD>::O_REGS], const float (&l)[2],
                                          unsigned char *q_gen, const up_attn_args &p, const prefill_job &jb, int wg,
                                          int wrow) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float inv = up_attn_row_inverse(l[r]);
    const int row = wg * 64 + wrow + (lane >> 2) + r * 8;
#pragma unroll
    for (int t = 0; t < HD / 8; ++t)
      *(uint32_t *)(q_gen + sw128(BM, row, t) + 4 * (lane & 3)) =
          up_attn_pack_bf16(o[4 * t + 2 * r] * inv, o[4 * t + 2 * r + 1] * inv);
  }
  __syncwarp();
#pragma unroll
  for (int i = lane; i < 16 * (HD / 8); i += 32) {
    const int r = i / (HD / 8), c = i % (HD / 8);
    const int32_t t = jb.q0 + wg * 64 + wrow + r;
    if (t < jb.n_rows)
      *(uint4 *)(p.out + (int64_t)(jb.row0 + t) * p.out_stride + (int64_t)blockIdx.x * HD + c * 8) =
          *(const uint4 *)(q_gen + sw128(BM, wg * 64 + wrow + r, c));
  }
}

#endif /* UP_ATTN_HAVE_WGMMA */

} /* namespace */

#endif
