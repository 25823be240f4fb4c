/* attn_common.cuh — what the attention kernels share: the
 * inline-PTX wrappers (cp.async, ldmatrix, bf16 mma.sync m16n8k16, ex2) and the
 * paged-pool address rule. Included by .cu files only. */
#ifndef UP_ATTN_COMMON_CUH
#define UP_ATTN_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/ops.h"

/* log2(e): softmax runs in base 2 so each exponential is one ex2 instruction. */
#define UP_ATTN_LOG2E 1.4426950408889634f

/* Division by block_tokens without a divide: q = (umulhi(e, magic) + e) >> shift with
 * shift = ceil(log2 d) and magic = floor(2^32 (2^shift - d) / d) + 1 (Granlund and
 * Montgomery), exact for every e < 2^31; a power of two gets magic 1 (umulhi 0). */
typedef struct up_attn_divider {
  int32_t d;
  uint32_t magic;
  uint32_t shift;
} up_attn_divider;

static inline up_attn_divider up_attn_divider_make(int32_t d) {
  up_attn_divider v;
  v.d = d;
  v.shift = 0;
  while ((1ull << v.shift) < (uint64_t)d) ++v.shift;
  v.magic = (uint32_t)(((1ull << 32) * ((1ull << v.shift) - (uint64_t)d)) / (uint64_t)d + 1);
  return v;
}

/* The block-table slot of cache entry e of a sequence: e / block_tokens. */
__device__ __forceinline__ int32_t up_attn_entry_block(int32_t e, up_attn_divider bt) {
  return (int32_t)((__umulhi((uint32_t)e, bt.magic) + (uint32_t)e) >> bt.shift);
}

/* The pool row (cache entry of the whole pool) that holds entry e of a sequence; fits
 * int32 for any pool under 2^31 entries. */
__device__ __forceinline__ int32_t up_attn_entry_row(const int32_t *block_table, int32_t e, up_attn_divider bt) {
  const int32_t b = up_attn_entry_block(e, bt);
  return __ldg(block_table + b) * bt.d + (e - b * bt.d);
}

/* Where cache entry e of a sequence sits in the pool, in elements, before the head
 * offset: the block table names the block, the remainder the slot inside it. */
__device__ __forceinline__ int64_t up_attn_entry_offset(const int32_t *block_table, int32_t e,
                                                        up_attn_divider bt, int32_t kv_dim) {
  const int32_t b = up_attn_entry_block(e, bt);
  const int32_t off = e - b * bt.d;
  const int32_t block = __ldg(block_table + b);
  return ((int64_t)block * bt.d + off) * kv_dim;
}

/* The first cache entry the row at cache index `index` sees: 0 under full causal
 * attention (window 0), else max(0, index - window + 1), itself and the window - 1
 * entries before it (kernels/ops.h). Nondecreasing in index, so a tile's first row
 * gives the first entry any of its rows sees, and its last row the first entry all of
 * them see. */
__device__ __forceinline__ int32_t up_attn_window_start(int32_t index, int32_t window) {
  return window > 0 ? max(0, index - window + 1) : 0;
}

/* The sequence that owns virtual query tile `vtile` of a prefill launch: sequence s
 * owns the tiles from cu_seqlens[s] / bm + s on (room for its ceil(rows / bm) tiles). */
__device__ __forceinline__ int32_t up_attn_tile_seq(const int32_t *cu_seqlens, int32_t n_seqs, int32_t vtile,
                                                    int32_t bm) {
  int32_t lo = 0, hi = n_seqs - 1;
  while (lo < hi) {
    const int32_t mid = (lo + hi + 1) >> 1;
    if (__ldg(cu_seqlens + mid) / bm + mid <= vtile)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

__device__ __forceinline__ uint32_t up_attn_smem_u32(const void *p) {
  return (uint32_t)__cvta_generic_to_shared(p);
}

/* 16-byte global -> shared copy, bypassing L1; src_bytes 0 writes zeros (rows past the end). */
__device__ __forceinline__ void up_attn_cp_async16(uint32_t dst, const void *src, int32_t src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void up_attn_cp_async_commit(void) {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
/* Wait until at most n groups committed by this thread are still in flight. */
template <int N>
__device__ __forceinline__ void up_attn_cp_async_wait(void) {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void up_attn_ldmatrix_x4(uint32_t r[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void up_attn_ldmatrix_x4_trans(uint32_t r[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

/* c[16x8] += a[16x16] (row-major bf16) * b[16x8] (col-major bf16), fp32 accumulate. */
__device__ __forceinline__ void up_attn_mma_bf16(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Two floats to a bf16 pair, the first in the low half (the lower column of a fragment). */
__device__ __forceinline__ uint32_t up_attn_pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *(const uint32_t *)&v;
}

/* 2^x; -inf gives +0, which the masked scores rely on. */
__device__ __forceinline__ float up_attn_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

/* What both attention paths read, filled once per call on the host. */
typedef struct up_attn_args {
  __nv_bfloat16 *out;
  const __nv_bfloat16 *qkv;
  const __nv_bfloat16 *k_pool;
  const __nv_bfloat16 *v_pool;
  const int32_t *cu_seqlens;
  const int32_t *kv_lens;
  const int32_t *block_tables;
  int64_t qkv_stride; /* elements per qkv row */
  int64_t out_stride; /* elements per output row */
  int32_t n_seqs;
  int32_t max_blocks_per_seq;
  int32_t n_heads;
  int32_t group; /* query heads per kv head */
  int32_t kv_dim;
  up_attn_divider block_tokens;
  float scale_log2; /* softmax scale * log2(e) */
  int32_t window;   /* cache entries each row sees (kernels/ops.h); 0: full causal */
} up_attn_args;

static inline up_attn_args up_attn_args_make(void *out, const void *qkv, const up_kv_pool *pool,
                                             const up_attn_batch *batch, const up_attn_shape *shape) {
  up_attn_args a;
  a.out = (__nv_bfloat16 *)out;
  a.qkv = (const __nv_bfloat16 *)qkv;
  a.k_pool = (const __nv_bfloat16 *)pool->k;
  a.v_pool = (const __nv_bfloat16 *)pool->v;
  a.cu_seqlens = batch->cu_seqlens;
  a.kv_lens = batch->kv_lens;
  a.block_tables = batch->block_tables;
  a.qkv_stride = (int64_t)(shape->n_heads + 2 * shape->n_kv_heads) * shape->head_dim;
  a.out_stride = (int64_t)shape->n_heads * shape->head_dim;
  a.n_seqs = batch->n_seqs;
  a.max_blocks_per_seq = batch->max_blocks_per_seq;
  a.n_heads = shape->n_heads;
  a.group = shape->n_heads / shape->n_kv_heads;
  a.kv_dim = pool->kv_dim;
  a.block_tokens = up_attn_divider_make(pool->block_tokens);
  a.scale_log2 = shape->scale * UP_ATTN_LOG2E;
  a.window = 0; /* the attention paths set theirs; the selection's scores are full causal */
  return a;
}

/* Shared-memory tiles of the mma.sync kernels are rows of HD bf16 = HD/8 chunks of 16
 * bytes. Chunk c of row r is stored at chunk c ^ (r & 7): the 8 rows an ldmatrix phase
 * reads at one logical chunk land on 8 different 16-byte bank groups, and cp.async
 * writes whole chunks, so the writer and the readers agree through this one function.
 * Returns the element offset. */
template <int HD>
__device__ __forceinline__ int up_attn_swz(int r, int c) {
  return r * HD + ((c ^ (r & 7)) << 3);
}

/* 1 / (a row's softmax sum), from the partial sums of the four threads of a quad that
 * hold the row (the accumulator layouts of mma.sync and wgmma alike); 0 for a row that
 * saw no key, whose output is then zeros. */
__device__ __forceinline__ float up_attn_row_inverse(float partial) {
  float sum = partial;
  sum += __shfl_xor_sync(0xffffffffu, sum, 1);
  sum += __shfl_xor_sync(0xffffffffu, sum, 2);
  return sum > 0.0f ? 1.0f / sum : 0.0f;
}

/* The epilogue of the mma.sync kernels (attention_prefill.cu, sparse/sparse_attention.cu),
 * for one warp's m16 tile: normalise its 16 rows (o in the m16n8 accumulator layout, l
 * the thread's partial sums of rows lane/4 and lane/4 + 8) and stage them as bf16 at
 * rows [stage_row, stage_row + 16) of a swizzled tile, the warp's own rows of its Q tile,
 * which nothing reads any more. */
template <int HD>
__device__ __forceinline__ void up_attn_stage_rows16(const float (&o)[HD / 8][4], const float (&l)[2],
                                                     __nv_bfloat16 *tile, int stage_row) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float inv = up_attn_row_inverse(l[r]);
    const int row = stage_row + (lane >> 2) + r * 8;
#pragma unroll
    for (int d = 0; d < HD / 8; ++d)
      *(uint32_t *)(tile + up_attn_swz<HD>(row, d) + 2 * (lane & 3)) =
          up_attn_pack_bf16(o[d][2 * r] * inv, o[d][2 * r + 1] * inv);
  }
}

/* Then the warp writes its ROWS staged rows (from stage_row) whole, in 16-byte chunks,
 * to output rows out_row, out_row + 1, ... of query head `head`; rows from n_valid on
 * lie past their sequence (or query block) and are not written. */
template <int HD, int ROWS>
__device__ __forceinline__ void up_attn_write_staged(const __nv_bfloat16 *tile, int stage_row, const up_attn_args &p,
                                                     int64_t out_row, int32_t n_valid, int head) {
  constexpr int CH = HD / 8;
#pragma unroll
  for (int i = threadIdx.x & 31; i < ROWS * CH; i += 32) {
    const int r = i / CH, c = i % CH;
    if (r < n_valid)
      *(uint4 *)(p.out + (out_row + r) * p.out_stride + (int64_t)head * HD + c * 8) =
          *(const uint4 *)(tile + up_attn_swz<HD>(stage_row + r, c));
  }
}

#endif
