/* attention_prefill_sm90.cu — the Hopper (sm_90a) prefill kernel for head_dim 128 and
 * 256 over a pool of any page size: S = Q K^T and O += P V on wgmma (64 x BN x 16 and
 * 64 x head_dim x 16 per warpgroup, fp32 accumulators in registers), the online softmax
 * in between, P passed to the second product from registers. Same contract as the
 * mma.sync kernel (packed varlen batch, GQA, paged KV pool, causal or sliding window,
 * decode sequences skipped). Where pages tile the K/V tile evenly,
 * attention_prefill_sm90_tma.cu takes over; this one stays for other page sizes (the
 * tiles and products it shares with that one are in attn_sm90_tiles.cuh).
 *
 * CTA = one query head x 128 rows of one sequence = two warpgroups of 64 rows (no
 * producer warp: every thread issues cp.async, one address per cache entry). K and V
 * tiles of BN entries (128 at head_dim 128, 64 at 256) stream through shared memory,
 * two stages each, one barrier per tile. The source orders each step for FlashAttention-3's intra-warpgroup overlap
 * (the softmax of one tile under the P V product of the previous one); ptxas places the
 * wait for that product ahead of the exponentials (docs/kernels/attention.md, v4). */
#include "kernels/cuda/attention/attn_sm90_tiles.cuh"
#include "kernels/cuda/attention/cuda_attention.h"

namespace {

constexpr int THREADS = 256; /* two warpgroups */

#if UP_ATTN_HAVE_WGMMA
/* Copy BN cache entries from key `first` of one kv head into a swizzled tile; entries
 * at or past kv_len, or (WINDOW) before k_lo, the first any row of the CTA sees, become
 * zeros (masked later; the block table may hold anything there, -1 behind a window).
 * The pool row of each of the thread's entries (-1 where zeroed) goes to rows, so that
 * the V tile of the same keys can skip the block-table lookups. */
template <int HD>
struct kv_copy { /* cache entries each thread copies per tile */
  static constexpr int ROWS = sm90_geom<HD>::BN / (THREADS / sm90_geom<HD>::CH);
};

template <int HD, bool WINDOW>
__device__ __forceinline__ void load_kv_tile_sw128(uint32_t tile, const __nv_bfloat16 *pool, const int32_t *block_table,
                                                   int32_t first, int32_t k_lo, int32_t kv_len, int32_t head_offset,
                                                   const up_attn_args &p, int32_t (&rows)[kv_copy<HD>::ROWS]) {
  constexpr int BN = sm90_geom<HD>::BN, CH = sm90_geom<HD>::CH;
  const int c = threadIdx.x % CH;
#pragma unroll
  for (int i = 0; i < kv_copy<HD>::ROWS; ++i) {
    const int r = threadIdx.x / CH + i * (THREADS / CH);
    const int32_t e = first + r;
    const bool valid = (!WINDOW || e >= k_lo) && e < kv_len;
    rows[i] = valid ? up_attn_entry_row(block_table, e, p.block_tokens) : -1;
    const int64_t off = valid ? (int64_t)rows[i] * p.kv_dim + head_offset + c * 8 : 0;
    up_attn_cp_async16(tile + sw128(BN, r, c), pool + off, valid ? 16 : 0);
  }
}

/* The same copy from pool rows found by an earlier load_kv_tile_sw128 of these keys. */
template <int HD>
__device__ __forceinline__ void load_kv_tile_rows(uint32_t tile, const __nv_bfloat16 *pool,
                                                  const int32_t (&rows)[kv_copy<HD>::ROWS], int32_t head_offset,
                                                  const up_attn_args &p) {
  constexpr int BN = sm90_geom<HD>::BN, CH = sm90_geom<HD>::CH;
  const int c = threadIdx.x % CH;
#pragma unroll
  for (int i = 0; i < kv_copy<HD>::ROWS; ++i) {
    const int r = threadIdx.x / CH + i * (THREADS / CH);
    const bool valid = rows[i] >= 0;
    const int64_t off = valid ? (int64_t)rows[i] * p.kv_dim + head_offset + c * 8 : 0;
    up_attn_cp_async16(tile + sw128(BN, r, c), pool + off, valid ? 16 : 0);
  }
}

#endif /* UP_ATTN_HAVE_WGMMA */

/* FlashAttention-3's intra-warpgroup overlap: step j issues S_{j+1} =
 * Q K_{j+1}^T and then P_j V_j, and computes the softmax of S_{j+1} while the tensor
 * cores run P_j V_j; one score register set, P_j held packed. One barrier per step; at
 * the barrier of step j every warpgroup has finished S_j and P_{j-1} V_{j-1}, so step j
 * loads K_{j+2} over K_j and V_{j+1} over V_{j-1}: two stages each (Q 32 KB + 4 x 32 KB
 * at head_dim 128, 64 KB + 4 x 32 KB at 256). */
constexpr int STAGES = 2; /* a third stage measured no faster (docs/kernels/attention.md) */
template <int HD>
constexpr size_t smem_bytes(void) { /* + alignment slack */
  return sm90_geom<HD>::Q_BYTES + (size_t)2 * STAGES * sm90_geom<HD>::TILE_BYTES + 1024;
}

/* WINDOW: sliding-window attention (p.window > 0): the CTA starts at the tile of the
 * first entry its first row sees, and masks each row's window start. false: full
 * causal, the code as it was before windows existed. */
template <int HD, bool WINDOW>
__global__ void __launch_bounds__(THREADS, 1) prefill_sm90_kernel(const up_attn_args p) {
#if !UP_ATTN_HAVE_WGMMA
  __trap(); /* built for a target without wgmma: the host never launches this there */
#else
  extern __shared__ unsigned char smem_raw[];
  const uint32_t smem = (up_attn_smem_u32(smem_raw) + 1023u) & ~1023u; /* swizzle atoms: 1024-aligned */
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int wg = warp >> 2, wrow = (warp & 3) * 16;
  using G = sm90_geom<HD>;
  constexpr int BN = G::BN, TILE_BYTES = G::TILE_BYTES;
  prefill_job jb;
  if (!find_job<HD>(p, jb)) return;
  const uint32_t q_wg = smem + (uint32_t)(wg * 64 * 128);
  const uint32_t k_s = smem + G::Q_BYTES, v_s = k_s + STAGES * TILE_BYTES; /* [STAGES] K tiles, [STAGES] V tiles */
  const int32_t wg_row = jb.q0 + wg * 64;
  const int32_t my_row = wg_row + wrow + (lane >> 2);
  const int32_t kv_head_offset = (blockIdx.x / p.group) * HD;
  /* Tiles this warpgroup takes part in (causal): j0 .. n_wg - 1, at least one, since
   * every row sees its own entry, which lies at or after k_lo. Both warpgroups start at
   * j0: under a window the second one may find its first tile wholly masked (one step). */
  const int32_t n_wg = min(jb.n_tiles, (jb.prior + wg_row + 63) / BN + 1);
  const int32_t k_lo = job_first_entry<WINDOW>(p, jb);
  const int32_t j0 = k_lo / BN;
  /* Pool rows of the newest K tile loaded: the V tile of the same keys, loaded one step
   * later, reuses them instead of repeating the block-table loads and address math.
   * (Declared here, not at namespace scope: the PTX-only pass never reaches this.) */
  int32_t rows[kv_copy<HD>::ROWS];
  auto load_k = [&](int32_t t) {
    load_kv_tile_sw128<HD, WINDOW>(k_s + (uint32_t)((t % STAGES) * TILE_BYTES), p.k_pool, jb.block_table, t * BN, k_lo,
                               jb.kv_len, kv_head_offset, p, rows);
  };
  auto load_v = [&](int32_t t) { /* K_t must be the newest K tile loaded */
    load_kv_tile_rows<HD>(v_s + (uint32_t)((t % STAGES) * TILE_BYTES), p.v_pool, rows, kv_head_offset, p);
  };

  /* Prologue: Q, K_j0, V_j0 and K_j0+1 land; S_j0 and its softmax give P_j0. */
  load_q_rows<HD, THREADS>(smem, p, jb, threadIdx.x, 0, BM);
  load_k(j0);
  load_v(j0);
  if (jb.n_tiles > j0 + 1) load_k(j0 + 1);
  up_attn_cp_async_commit();
  up_attn_cp_async_wait<STAGES - 2>();
  fence_proxy_async();
  __syncthreads();

  float o[G::O_REGS], sc[G::S_REGS], corr[2];
  uint32_t pa[BN / 16][4];
#pragma unroll
  for (int i = 0; i < G::O_REGS; ++i) o[i] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  issue_scores<HD>(sc, q_wg, k_s + (uint32_t)((j0 % STAGES) * TILE_BYTES));
  wgmma_wait<0>();
  fence_accumulators(sc);
  softmax_tile<HD, WINDOW>(sc, m, l, corr, j0 * BN, my_row, wg_row, jb, p.scale_log2, p.window);
  rescale_and_pack<HD>(o, corr, sc, pa);

  /* Step j begins when K_{j+1} and V_j have landed for everyone (issued STAGES - 1
   * steps before), which also means every warpgroup is done with S_j and
   * P_{j-1} V_{j-1}; it then loads V_{j+STAGES-1} over V_{j-1} and K_{j+STAGES} over
   * K_j. The steps where this warpgroup has products to issue come as separate loops
   * without branches around the wgmmas (a divergent-looking branch makes ptxas
   * serialise them). */
  auto begin_step = [&]() {
    up_attn_cp_async_wait<STAGES - 2>();
    fence_proxy_async();
    __syncthreads();
  };
  auto load_ahead = [&](int32_t j) {
    if (j + STAGES - 1 < jb.n_tiles) load_v(j + STAGES - 1);
    if (j + STAGES < jb.n_tiles) load_k(j + STAGES);
    up_attn_cp_async_commit();
  };
  int32_t j = j0;
  for (; j < n_wg - 1; ++j) {
    begin_step();
    issue_scores<HD>(sc, q_wg, k_s + (uint32_t)(((j + 1) % STAGES) * TILE_BYTES));
    issue_pv<HD>(o, pa, v_s + (uint32_t)((j % STAGES) * TILE_BYTES));
    load_ahead(j);
    wgmma_wait<1>(); /* S_{j+1} complete; P_j V_j may still run */
    fence_accumulators(sc);
    softmax_tile<HD, WINDOW>(sc, m, l, corr, (j + 1) * BN, my_row, wg_row, jb, p.scale_log2, p.window);
    wgmma_wait<0>(); /* P_j V_j complete: O and P may change */
    fence_accumulators(o);
    rescale_and_pack<HD>(o, corr, sc, pa);
  }
  begin_step(); /* this warpgroup's last tile */
  issue_pv<HD>(o, pa, v_s + (uint32_t)((j % STAGES) * TILE_BYTES));
  load_ahead(j);
  wgmma_wait<0>();
  fence_accumulators(o);
  for (++j; j < jb.n_tiles; ++j) { /* the other warpgroup's remaining tiles */
    begin_step();
    load_ahead(j);
  }
  up_attn_cp_async_wait<0>();
  __syncthreads(); /* every product of both warpgroups is complete before Q rows are overwritten */
  write_out<HD>(o, l, smem_raw + (smem - up_attn_smem_u32(smem_raw)), p, jb, wg, wrow);
#endif
}

/* One instance of the kernel: its shared memory limit, then the launch. */
template <int HD, bool WINDOW>
void launch_sm90(cudaStream_t stream, const up_attn_args &p, int32_t n_heads, int64_t tiles) {
  constexpr size_t smem = smem_bytes<HD>();
  /* Cheap and per device: set each call rather than track which devices have it. */
  UP_CUDA_CHECK(
      cudaFuncSetAttribute(prefill_sm90_kernel<HD, WINDOW>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  prefill_sm90_kernel<HD, WINDOW><<<dim3((unsigned)n_heads, (unsigned)tiles), THREADS, smem, stream>>>(p);
  UP_CUDA_CHECK_LAUNCH();
}

template <int HD>
void launch_sm90_window(cudaStream_t stream, const up_attn_args &p, int32_t n_heads, int64_t tiles) {
  if (p.window > 0)
    launch_sm90<HD, true>(stream, p, n_heads, tiles);
  else
    launch_sm90<HD, false>(stream, p, n_heads, tiles);
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
                                               const up_attn_batch *batch, const up_attn_shape *shape,
                                               int32_t window) {
  if (shape->head_dim != 128 && shape->head_dim != 256)
    UP_FATAL("attention: the sm_90a prefill kernel takes head_dim 128 or 256, not %d", shape->head_dim);
  if (batch->n_tokens <= 0 || batch->n_seqs <= 0) return;
  up_attn_args p = up_attn_args_make(out, qkv, pool, batch, shape);
  p.window = window;
  const int64_t tiles = (int64_t)batch->n_tokens / BM + p.n_seqs;
  if (tiles > 65535) UP_FATAL("attention: %lld query tiles exceed the grid limit 65535", (long long)tiles);
  if (shape->head_dim == 128)
    launch_sm90_window<128>(stream, p, shape->n_heads, tiles);
  else
    launch_sm90_window<256>(stream, p, shape->n_heads, tiles);
}
