/* attention_prefill_sm90.cu — the Hopper (sm_90a) prefill kernel for head_dim 128:
 * S = Q K^T and O += P V on wgmma (64 x 128 x 16 per warpgroup, fp32 accumulators in
 * registers), the online softmax of attention_prefill.cu in between, P passed to the
 * second product from registers. Same contract as the mma.sync kernel (packed varlen
 * batch, GQA, paged KV pool, causal, decode sequences skipped); the mma.sync kernel
 * stays for other head dims and for GPUs without sm_90a.
 *
 * CTA = one query head x 128 rows of one sequence = two warpgroups of 64 rows (no
 * producer warp: every thread issues cp.async, since a paged pool needs one address per
 * cache entry). K and V tiles of 128 entries stream through shared memory three stages
 * deep with one barrier per tile, so the two warpgroups drift apart inside a tile and
 * one's softmax overlaps the other's products on the tensor cores.
 *
 * Shared-memory tiles use wgmma's 128-byte swizzle: a tile of R rows x 128 bf16 is two
 * halves (columns 0-63, 64-127) of R rows x 128 bytes; 16-byte chunk c of row r sits at
 * chunk c ^ (r & 7) of its 128-byte row, in 1024-byte-aligned groups of 8 rows. Q and K
 * are read K-major (rows of the product's K dimension contiguous), V MN-major. */
#include <math.h>

#include "kernels/cuda/attn_common.cuh"
#include "kernels/cuda/cuda_attention.h"

/* wgmma exists only on sm_90a: the device pass of any other target (the compute_90 PTX
 * kept for newer GPUs) compiles the kernel as a trap and none of its helpers. */
#if !defined(__CUDA_ARCH__) || defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define UP_ATTN_HAVE_WGMMA 1
#else
#define UP_ATTN_HAVE_WGMMA 0
#endif

namespace {

constexpr int HD = 128;
constexpr int BM = 128;      /* query rows per CTA: two warpgroups of 64 */
constexpr int BN = 128;      /* cache entries per K/V tile */
constexpr int STAGES = 3;    /* K/V tiles in shared memory */
constexpr int THREADS = 256; /* two warpgroups */
constexpr int TILE_BYTES = BN * HD * 2;
constexpr int Q_BYTES = BM * HD * 2;
constexpr size_t SMEM_BYTES = Q_BYTES + (size_t)STAGES * 2 * TILE_BYTES + 1024; /* + alignment slack */

#if UP_ATTN_HAVE_WGMMA
/* Byte offset of 16-byte chunk c (0..15) of row r in a swizzled tile of `rows` rows. */
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
__device__ __forceinline__ void wgmma_wait_all(void) { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
/* cp.async writes are generic-proxy writes; wgmma reads through the async proxy. */
__device__ __forceinline__ void fence_proxy_async(void) { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

/* d[64x128] (+)= A[64x16] B[16x128]: A and B K-major in shared memory (descriptors);
 * accumulate 0 overwrites d. */
__device__ __forceinline__ void wgmma_ss_m64n128(float d[64], uint64_t desc_a, uint64_t desc_b, int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(desc_a), "l"(desc_b), "r"(accumulate));
}

/* d[64x128] += A[64x16] B[16x128]: A in registers (the mma.sync m16n8k16 A layout per
 * warp), B MN-major in shared memory (transposed: rows of B's K are contiguous N). */
__device__ __forceinline__ void wgmma_rs_m64n128_bt(float d[64], const uint32_t a[4], uint64_t desc_b) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b));
}

/* Copy BN cache entries from key `first` of one kv head into a swizzled tile; entries
 * at or past kv_len become zeros (masked later; the block table may hold anything). */
__device__ __forceinline__ void load_kv_tile_sw128(uint32_t tile, const __nv_bfloat16 *pool, const int32_t *block_table,
                                                   int32_t first, int32_t kv_len, int32_t head_offset,
                                                   const up_attn_args &p) {
  const int c = threadIdx.x & 15;
#pragma unroll
  for (int i = 0; i < BN / (THREADS / 16); ++i) {
    const int r = (threadIdx.x >> 4) + i * (THREADS / 16);
    const int32_t e = first + r;
    const bool valid = e < kv_len;
    const int64_t off = valid ? up_attn_entry_offset(block_table, e, p.block_tokens, p.kv_dim) + head_offset + c * 8 : 0;
    up_attn_cp_async16(tile + sw128(BN, r, c), pool + off, valid ? 16 : 0);
  }
}

#endif /* UP_ATTN_HAVE_WGMMA */

__global__ void __launch_bounds__(THREADS, 1) prefill_sm90_kernel(const up_attn_args p) {
#if !UP_ATTN_HAVE_WGMMA
  __trap(); /* built for a target without wgmma: the host never launches this there */
#else
  extern __shared__ unsigned char smem_raw[];
  /* The swizzle works on address bits, so every tile starts 1024-byte aligned. */
  const uint32_t smem = (up_attn_smem_u32(smem_raw) + 1023u) & ~1023u;
  const uint32_t q_s = smem;
  const uint32_t kv_s = smem + Q_BYTES; /* stage s: K at kv_s + 2 s TILE_BYTES, V after it */

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int wg = warp >> 2;          /* warpgroup: rows 64 wg .. 64 wg + 63 of the tile */
  const int wrow = (warp & 3) * 16;  /* the warp's 16 rows within its warpgroup */
  const int h = blockIdx.x;
  const int32_t vtile = (int32_t)(gridDim.y - 1 - blockIdx.y); /* latest rows first */

  int32_t lo = 0, hi = p.n_seqs - 1;
  while (lo < hi) {
    const int32_t mid = (lo + hi + 1) >> 1;
    if (__ldg(p.cu_seqlens + mid) / BM + mid <= vtile)
      lo = mid;
    else
      hi = mid - 1;
  }
  const int32_t s = lo;
  const int32_t row0 = __ldg(p.cu_seqlens + s);
  const int32_t n_rows = __ldg(p.cu_seqlens + s + 1) - row0;
  const int32_t q0 = (vtile - (row0 / BM + s)) * BM;
  if (n_rows <= UP_ATTN_DECODE_MAX_ROWS || q0 >= n_rows) return;

  const int32_t kv_len = __ldg(p.kv_lens + s);
  const int32_t prior = kv_len - n_rows;
  const int32_t *block_table = p.block_tables + (int64_t)s * p.max_blocks_per_seq;
  const int32_t kv_head_offset = (h / p.group) * HD;
  const int32_t q_end = min(q0 + BM, n_rows);
  const int32_t n_tiles = (prior + q_end + BN - 1) / BN;

  /* Prologue: Q with tile 0 in one commit group, then tiles 1 .. STAGES-2. */
  {
    const int c = tid & 15;
#pragma unroll
    for (int i = 0; i < BM / (THREADS / 16); ++i) {
      const int r = (tid >> 4) + i * (THREADS / 16);
      const bool valid = q0 + r < n_rows;
      const int64_t off = valid ? (int64_t)(row0 + q0 + r) * p.qkv_stride + (int64_t)h * HD + c * 8 : 0;
      up_attn_cp_async16(q_s + sw128(BM, r, c), p.qkv + off, valid ? 16 : 0);
    }
  }
#pragma unroll
  for (int t = 0; t < STAGES - 1; ++t) {
    if (t < n_tiles) {
      const uint32_t k_t = kv_s + (uint32_t)(2 * t * TILE_BYTES);
      load_kv_tile_sw128(k_t, p.k_pool, block_table, t * BN, kv_len, kv_head_offset, p);
      load_kv_tile_sw128(k_t + TILE_BYTES, p.v_pool, block_table, t * BN, kv_len, kv_head_offset, p);
    }
    up_attn_cp_async_commit();
  }

  float o[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) o[i] = 0.0f;
  /* Rows g = lane/4 and g + 8 of the warp's 16; m is the raw running max. */
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  const int32_t wg_row = q0 + wg * 64;                /* first row of the warpgroup */
  const int32_t my_row = wg_row + wrow + (lane >> 2); /* within the sequence */
  const uint32_t q_wg = q_s + (uint32_t)(wg * 64 * 128);

  for (int32_t j = 0; j < n_tiles; ++j) {
    const int stage = j % STAGES;
    const int32_t k_first = j * BN;
    up_attn_cp_async_wait<STAGES - 2>(); /* this thread's part of tile j has landed */
    fence_proxy_async();
    __syncthreads(); /* everyone's part has; every read of tile j-1's stage is done */
    if (j + STAGES - 1 < n_tiles) {
      const uint32_t k_t = kv_s + (uint32_t)(2 * ((j + STAGES - 1) % STAGES) * TILE_BYTES);
      load_kv_tile_sw128(k_t, p.k_pool, block_table, k_first + (STAGES - 1) * BN, kv_len, kv_head_offset, p);
      load_kv_tile_sw128(k_t + TILE_BYTES, p.v_pool, block_table, k_first + (STAGES - 1) * BN, kv_len,
                         kv_head_offset, p);
    }
    up_attn_cp_async_commit();

    /* A warpgroup whose 64 rows all precede this tile has nothing to add (causal). */
    if (k_first > prior + wg_row + 63) continue;
    const uint32_t k_t = kv_s + (uint32_t)(2 * stage * TILE_BYTES);
    const uint32_t v_t = k_t + TILE_BYTES;

    float sc[64];
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
      const uint32_t koff = (uint32_t)((kk & 3) * 32); /* 16 columns = 32 bytes into the swizzled row */
      wgmma_ss_m64n128(sc, sw128_desc(q_wg + (uint32_t)((kk >> 2) * BM * 128) + koff, 16, 1024),
                       sw128_desc(k_t + (uint32_t)((kk >> 2) * BN * 128) + koff, 16, 1024), kk > 0);
    }
    wgmma_commit();
    wgmma_wait_all();
    fence_accumulators(sc);

    /* sc[4t + e]: row g + 8 (e >> 1), entry k_first + 8t + 2 (lane & 3) + (e & 1). */
    if (k_first + BN - 1 > prior + wg_row || k_first + BN > kv_len) {
#pragma unroll
      for (int t = 0; t < BN / 8; ++t)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int32_t key = k_first + t * 8 + 2 * (lane & 3) + (e & 1);
          const int32_t row = my_row + (e >> 1) * 8;
          if (key > prior + row || key >= kv_len) sc[4 * t + e] = -INFINITY;
        }
    }
    /* Online softmax in base 2; a row with every key so far masked keeps m = -inf and
     * uses base 0 so that exp2(-inf - base) = 0 rather than NaN. */
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = m[r];
#pragma unroll
      for (int t = 0; t < BN / 8; ++t) mx = fmaxf(mx, fmaxf(sc[4 * t + 2 * r], sc[4 * t + 2 * r + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float base = mx == -INFINITY ? 0.0f : mx * p.scale_log2;
      const float corr = up_attn_exp2(m[r] * p.scale_log2 - base);
      m[r] = mx;
      float sum = 0.0f;
#pragma unroll
      for (int t = 0; t < BN / 8; ++t) {
        sc[4 * t + 2 * r] = up_attn_exp2(fmaf(sc[4 * t + 2 * r], p.scale_log2, -base));
        sc[4 * t + 2 * r + 1] = up_attn_exp2(fmaf(sc[4 * t + 2 * r + 1], p.scale_log2, -base));
        sum += sc[4 * t + 2 * r] + sc[4 * t + 2 * r + 1];
      }
      l[r] = l[r] * corr + sum;
#pragma unroll
      for (int t = 0; t < HD / 8; ++t) {
        o[4 * t + 2 * r] *= corr;
        o[4 * t + 2 * r + 1] *= corr;
      }
    }
    /* Accumulator n-tiles 2kk, 2kk+1 are the register A operand of k-step kk. */
    uint32_t pa[BN / 16][4];
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      pa[kk][0] = up_attn_pack_bf16(sc[8 * kk + 0], sc[8 * kk + 1]);
      pa[kk][1] = up_attn_pack_bf16(sc[8 * kk + 2], sc[8 * kk + 3]);
      pa[kk][2] = up_attn_pack_bf16(sc[8 * kk + 4], sc[8 * kk + 5]);
      pa[kk][3] = up_attn_pack_bf16(sc[8 * kk + 6], sc[8 * kk + 7]);
    }
    fence_accumulators(o);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk)
      wgmma_rs_m64n128_bt(o, pa[kk], sw128_desc(v_t + (uint32_t)(kk * 16 * 128), BN * 128, 1024));
    wgmma_commit();
    wgmma_wait_all();
    fence_accumulators(o);
  }
  up_attn_cp_async_wait<0>();
  /* Every product of both warpgroups is complete before any Q row is overwritten. */
  __syncthreads();

  /* Normalise and stage the warp's 16 rows in its own rows of the Q tile (the products
   * that read them are complete), then write whole rows in 16-byte chunks. */
  __syncwarp();
  unsigned char *smem_gen = smem_raw + (smem - up_attn_smem_u32(smem_raw));
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float sum = l[r];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    const int row = wg * 64 + wrow + (lane >> 2) + r * 8;
#pragma unroll
    for (int t = 0; t < HD / 8; ++t)
      *(uint32_t *)(smem_gen + sw128(BM, row, t) + 4 * (lane & 3)) =
          up_attn_pack_bf16(o[4 * t + 2 * r] * inv, o[4 * t + 2 * r + 1] * inv);
  }
  __syncwarp();
#pragma unroll
  for (int i = lane; i < 16 * (HD / 8); i += 32) {
    const int r = i / (HD / 8), c = i % (HD / 8);
    const int32_t t = wg_row + wrow + r;
    if (t < n_rows)
      *(uint4 *)(p.out + (int64_t)(row0 + t) * p.out_stride + (int64_t)h * HD + c * 8) =
          *(const uint4 *)(smem_gen + sw128(BM, wg * 64 + wrow + r, c));
  }
#endif
}

} /* namespace */

extern "C" bool up_cuda_attention_prefill_sm90_available(void) {
  int dev = 0, major = 0, minor = 0;
  UP_CUDA_CHECK(cudaGetDevice(&dev));
  UP_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  UP_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
  return major == 9 && minor == 0;
}

extern "C" void up_cuda_attention_prefill_sm90(cudaStream_t stream, void *out, const void *qkv, const up_kv_pool *pool,
                                               const up_attn_batch *batch, const up_attn_shape *shape) {
  if (shape->head_dim != HD) UP_FATAL("attention: the sm_90a prefill kernel takes head_dim %d, not %d", HD, shape->head_dim);
  if (batch->n_tokens <= 0 || batch->n_seqs <= 0) return;
  const up_attn_args p = up_attn_args_make(out, qkv, pool, batch, shape);
  const int64_t tiles = (int64_t)batch->n_tokens / BM + p.n_seqs;
  if (tiles > 65535) UP_FATAL("attention: %lld query tiles exceed the grid limit 65535", (long long)tiles);
  /* Cheap and per device: set each call rather than track which devices have it. */
  UP_CUDA_CHECK(cudaFuncSetAttribute(prefill_sm90_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)SMEM_BYTES));
  prefill_sm90_kernel<<<dim3((unsigned)shape->n_heads, (unsigned)tiles), THREADS, SMEM_BYTES, stream>>>(p);
  UP_CUDA_CHECK_LAUNCH();
}
