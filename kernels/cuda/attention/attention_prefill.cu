/* attention_prefill.cu — the prefill path of the CUDA attention op: a FlashAttention-2
 * style forward over the paged KV pool for every sequence with more than
 * UP_ATTN_DECODE_MAX_ROWS rows this step (shorter ones belong to attention_decode.cu),
 * full causal or over a sliding window (a CTA starts at the key tile of the first
 * entry its first row sees, so a sliding layer costs O(rows x window)).
 *
 * One CTA = one query head x one tile of BM rows of one sequence; each warp owns 16 or
 * 32 rows (one or two m16 tiles sharing every K/V fragment it reads). Keys and values stream through shared memory in tiles of BN entries with
 * cp.async, two stages deep, each 16-byte chunk addressed through the block table.
 * S = Q K^T and O += P V run on bf16 mma.sync m16n8k16 with fp32 accumulators; the
 * softmax is online, in base 2, in fp32. Ampere-level instructions: on Hopper, head_dim
 * 128 and 256 go to the wgmma kernels of attention_prefill_sm90*.cu instead
 * (docs/kernels/attention.md, docs/kernels/sliding_window.md).
 *
 * Sequence lengths live on the device, so the grid is sized from what the host knows:
 * sequence s owns the virtual tiles starting at cu_seqlens[s] / BM + s, which leaves
 * room for its ceil(rows / BM) tiles, and the whole batch needs at most
 * n_tokens / BM + n_seqs of them. A CTA finds its sequence by binary search over
 * cu_seqlens and exits when its tile is past the sequence's end (or the sequence is a
 * decode one). */
#include <math.h>

#include "kernels/cuda/attention/attn_common.cuh"
#include "kernels/cuda/attention/cuda_attention.h"

typedef up_attn_args prefill_params;

/* Copy ROWS cache entries starting at key `first` of one kv head into a swizzled tile;
 * entries before k_lo (the first any row of the CTA sees under a sliding window) or at
 * or past kv_len become zeros: they are masked, and the block table may hold anything
 * there (-1 for blocks given back behind the window). Each thread keeps one chunk
 * column, so one lookup per row. */
template <int HD, int ROWS, int THREADS>
__device__ __forceinline__ void load_kv_tile(__nv_bfloat16 *tile, const __nv_bfloat16 *pool,
                                             const int32_t *block_table, int32_t first, int32_t k_lo, int32_t kv_len,
                                             int32_t head_offset, const prefill_params &p) {
  constexpr int CH = HD / 8;
  constexpr int RSTEP = THREADS / CH;
  static_assert(THREADS % CH == 0 && ROWS % RSTEP == 0, "tile load mapping");
  const int c = threadIdx.x % CH;
#pragma unroll
  for (int i = 0; i < ROWS / RSTEP; ++i) {
    const int r = threadIdx.x / CH + i * RSTEP;
    const int32_t e = first + r;
    const bool valid = e >= k_lo && e < kv_len;
    const int64_t off = valid ? up_attn_entry_offset(block_table, e, p.block_tokens, p.kv_dim) + head_offset + c * 8 : 0;
    up_attn_cp_async16(up_attn_smem_u32(tile + up_attn_swz<HD>(r, c)), pool + off, valid ? 16 : 0);
  }
}

/* HD: head_dim; WARPS: 16 * MT query rows each (BM = 16 * MT * WARPS); MT: m16 tiles
 * per warp, each K or V fragment read from shared memory feeds MT of them; BN: keys
 * per tile; MIN_CTAS: CTAs per SM promised to the register allocator. */
template <int HD, int WARPS, int MT, int BN, int MIN_CTAS>
__global__ void __launch_bounds__(WARPS * 32, MIN_CTAS) prefill_kernel(const prefill_params p) {
  constexpr int WR = 16 * MT; /* rows per warp */
  constexpr int BM = WR * WARPS;
  constexpr int THREADS = WARPS * 32;
  constexpr int CH = HD / 8;
  constexpr int NT = BN / 8;  /* n-tiles of S per warp */
  constexpr int DT = HD / 8;  /* n-tiles of O per warp */
  extern __shared__ __align__(128) unsigned char smem_raw[];
  __nv_bfloat16 *q_s = (__nv_bfloat16 *)smem_raw;
  __nv_bfloat16 *k_s = q_s + BM * HD; /* [2][BN][HD] */
  __nv_bfloat16 *v_s = k_s + 2 * BN * HD;

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int h = blockIdx.x;
  /* Reversed: the last virtual tiles are the latest rows, the longest under the causal
   * mask; starting them first shortens the tail of the launch. */
  const int32_t vtile = (int32_t)(gridDim.y - 1 - blockIdx.y);

  const int32_t s = up_attn_tile_seq(p.cu_seqlens, p.n_seqs, vtile, BM);
  const int32_t row0 = __ldg(p.cu_seqlens + s);
  const int32_t n_rows = __ldg(p.cu_seqlens + s + 1) - row0;
  const int32_t q0 = (vtile - (row0 / BM + s)) * BM;
  if (n_rows <= UP_ATTN_DECODE_MAX_ROWS || q0 >= n_rows) return;

  const int32_t kv_len = __ldg(p.kv_lens + s);
  const int32_t prior = kv_len - n_rows; /* entries cached before this step's rows */
  const int32_t kvh = h / p.group;
  const int32_t *block_table = p.block_tables + (int64_t)s * p.max_blocks_per_seq;
  const int32_t kv_head_offset = kvh * HD;
  const int32_t q_end = min(q0 + BM, n_rows);
  const int32_t n_tiles = (prior + q_end + BN - 1) / BN; /* the tile's last row sees prior + q_end keys */
  /* Under a sliding window the CTA's first row sees nothing before k_lo: the key tiles
   * wholly before it are never loaded (a sliding layer costs O(rows x window)). */
  const int32_t k_lo = up_attn_window_start(prior + q0, p.window);
  const int32_t j0 = k_lo / BN;

  /* Q tile: rows past the sequence's end are zeros and never written back. */
  {
    const int c = tid % CH;
#pragma unroll
    for (int i = 0; i < BM / (THREADS / CH); ++i) {
      const int r = tid / CH + i * (THREADS / CH);
      const bool valid = q0 + r < n_rows;
      const int64_t off = valid ? (int64_t)(row0 + q0 + r) * p.qkv_stride + (int64_t)h * HD + c * 8 : 0;
      up_attn_cp_async16(up_attn_smem_u32(q_s + up_attn_swz<HD>(r, c)), p.qkv + off, valid ? 16 : 0);
    }
  }
  load_kv_tile<HD, BN, THREADS>(k_s, p.k_pool, block_table, j0 * BN, k_lo, kv_len, kv_head_offset, p);
  up_attn_cp_async_commit();
  load_kv_tile<HD, BN, THREADS>(v_s, p.v_pool, block_table, j0 * BN, k_lo, kv_len, kv_head_offset, p);
  up_attn_cp_async_commit();

  float o[MT][DT][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int d = 0; d < DT; ++d) o[mt][d][0] = o[mt][d][1] = o[mt][d][2] = o[mt][d][3] = 0.0f;
  /* Per thread and m-tile mt: rows g = lane/4 and g + 8 of its 16; m is the raw running max. */
  float m[MT][2], l[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) m[mt][0] = m[mt][1] = -INFINITY, l[mt][0] = l[mt][1] = 0.0f;
  const int32_t warp_row = q0 + warp * WR;  /* first row of this warp, within the sequence */
  const int32_t my_row = warp_row + (lane >> 2);
  /* The first entry the warp's first row sees, and the first its last row sees. */
  const int32_t warp_lo_first = up_attn_window_start(prior + warp_row, p.window);
  const int32_t warp_lo_last = up_attn_window_start(prior + warp_row + WR - 1, p.window);

  /* ldmatrix lane addresses. Every operand is read in 16x16 blocks with lane l at row
   * l & 15 of the block, logical chunk 2i + (l >> 4): the four 8x8 matrices are rows
   * 0-7 / 8-15 by chunk 2i / 2i + 1. Since row starts are 128-byte aligned and blocks
   * start at multiples of 16 rows, the chunk swizzle of i is an XOR of (i & 3) << 5 on
   * the byte address and the rest is an added multiple of 128. So four precomputed
   * addresses for Q and four shared by K and V (their tiles differ by a constant)
   * cover every k-step; everything else is an immediate. */
  uint32_t q_addr[4], kv_addr[4];
  {
    const uint32_t q0a = up_attn_smem_u32(q_s) + 2 * up_attn_swz<HD>(warp * WR + (lane & 15), lane >> 4);
    const uint32_t k0a = up_attn_smem_u32(k_s) + 2 * up_attn_swz<HD>(lane & 15, lane >> 4);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      q_addr[i] = q0a ^ (uint32_t)(i << 5);
      kv_addr[i] = k0a ^ (uint32_t)(i << 5);
    }
  }
  for (int32_t j = j0; j < n_tiles; ++j) {
    const int buf = (j - j0) & 1;
    const int32_t k_first = j * BN;
    /* Groups in flight: ..., K_j, V_j. Wait for K_j (and Q), then reuse the other K
     * stage, which every warp finished reading in iteration j-1. */
    up_attn_cp_async_wait<1>();
    __syncthreads();
    if (j + 1 < n_tiles)
      load_kv_tile<HD, BN, THREADS>(k_s + (buf ^ 1) * BN * HD, p.k_pool, block_table, k_first + BN, k_lo, kv_len,
                                    kv_head_offset, p);
    up_attn_cp_async_commit(); /* possibly empty: keeps the wait counts uniform */

    /* A warp whose rows all precede this tile (causal) or whose rows' windows all start
     * after it has nothing to add. */
    const bool warp_active = k_first <= prior + warp_row + WR - 1 && k_first + BN > warp_lo_first;
    uint32_t pa[MT][BN / 16][4];
    if (warp_active) {
      float sc[MT][NT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int t = 0; t < NT; ++t) sc[mt][t][0] = sc[mt][t][1] = sc[mt][t][2] = sc[mt][t][3] = 0.0f;
      const uint32_t k_stage = (uint32_t)(buf * BN * HD * 2);
#pragma unroll
      for (int kk = 0; kk < HD / 16; ++kk) {
        uint32_t a[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
          up_attn_ldmatrix_x4(a[mt], q_addr[kk & 3] + mt * 16 * HD * 2 + (kk >> 2) * 128);
#pragma unroll
        for (int np = 0; np < BN / 16; ++np) {
          uint32_t b[4];
          /* b[0], b[1]: keys 0-7, 8-15 at k 0-7; b[2], b[3]: the same at k 8-15. */
          up_attn_ldmatrix_x4(b, kv_addr[kk & 3] + k_stage + np * 16 * HD * 2 + (kk >> 2) * 128);
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            up_attn_mma_bf16(sc[mt][2 * np], a[mt], b[0], b[2]);
            up_attn_mma_bf16(sc[mt][2 * np + 1], a[mt], b[1], b[3]);
          }
        }
      }

      /* Causal limit (row t sees entries <= prior + t), the window's start and the cache
       * end; only the tiles that reach past the warp's first row, start before its last
       * row's window or reach past kv_len need it. */
      if (k_first + BN - 1 > prior + warp_row || k_first < warp_lo_last || k_first + BN > kv_len) {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int t = 0; t < NT; ++t)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              const int32_t key = k_first + t * 8 + 2 * (lane & 3) + (e & 1);
              const int32_t row = my_row + mt * 16 + (e >> 1) * 8;
              if (key > prior + row || key < up_attn_window_start(prior + row, p.window) || key >= kv_len)
                sc[mt][t][e] = -INFINITY;
            }
      }

      /* Online softmax. A row with every key so far masked keeps m = -inf; its base is
       * then 0 so that exp2(-inf - base) = 0 instead of NaN. */
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          float mx = m[mt][r];
#pragma unroll
          for (int t = 0; t < NT; ++t) mx = fmaxf(mx, fmaxf(sc[mt][t][2 * r], sc[mt][t][2 * r + 1]));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
          const float base = mx == -INFINITY ? 0.0f : mx * p.scale_log2;
          const float corr = up_attn_exp2(m[mt][r] * p.scale_log2 - base);
          m[mt][r] = mx;
          float sum = 0.0f;
#pragma unroll
          for (int t = 0; t < NT; ++t) {
            sc[mt][t][2 * r] = up_attn_exp2(fmaf(sc[mt][t][2 * r], p.scale_log2, -base));
            sc[mt][t][2 * r + 1] = up_attn_exp2(fmaf(sc[mt][t][2 * r + 1], p.scale_log2, -base));
            sum += sc[mt][t][2 * r] + sc[mt][t][2 * r + 1];
          }
          l[mt][r] = l[mt][r] * corr + sum;
#pragma unroll
          for (int d = 0; d < DT; ++d) {
            o[mt][d][2 * r] *= corr;
            o[mt][d][2 * r + 1] *= corr;
          }
        }
      /* The S accumulator layout of n-tiles 2kk and 2kk+1 is the A-operand layout of
       * k-step kk: P never leaves registers. */
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int kk = 0; kk < BN / 16; ++kk) {
          pa[mt][kk][0] = up_attn_pack_bf16(sc[mt][2 * kk][0], sc[mt][2 * kk][1]);
          pa[mt][kk][1] = up_attn_pack_bf16(sc[mt][2 * kk][2], sc[mt][2 * kk][3]);
          pa[mt][kk][2] = up_attn_pack_bf16(sc[mt][2 * kk + 1][0], sc[mt][2 * kk + 1][1]);
          pa[mt][kk][3] = up_attn_pack_bf16(sc[mt][2 * kk + 1][2], sc[mt][2 * kk + 1][3]);
        }
    }

    /* Wait for V_j; the other V stage was last read in iteration j-1's P V. */
    up_attn_cp_async_wait<1>();
    __syncthreads();
    if (j + 1 < n_tiles)
      load_kv_tile<HD, BN, THREADS>(v_s + (buf ^ 1) * BN * HD, p.v_pool, block_table, k_first + BN, k_lo, kv_len,
                                    kv_head_offset, p);
    up_attn_cp_async_commit();

    if (warp_active) {
      const uint32_t v_stage = (uint32_t)(buf * BN * HD * 2);
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
#pragma unroll
        for (int dp = 0; dp < HD / 16; ++dp) {
          uint32_t b[4];
          up_attn_ldmatrix_x4_trans(b, kv_addr[dp & 3] + 4 * BN * HD + v_stage + kk * 16 * HD * 2 + (dp >> 2) * 128);
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            up_attn_mma_bf16(o[mt][2 * dp], pa[mt][kk], b[0], b[1]);
            up_attn_mma_bf16(o[mt][2 * dp + 1], pa[mt][kk], b[2], b[3]);
          }
        }
      }
    }
  }
  up_attn_cp_async_wait<0>();

  /* Normalise and stage the warp's rows in its own (finished) rows of the Q tile,
   * then write 16-byte chunks of whole rows. */
  __syncwarp();
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) up_attn_stage_rows16<HD>(o[mt], l[mt], q_s, warp * WR + mt * 16);
  __syncwarp();
  up_attn_write_staged<HD, WR>(q_s, warp * WR, p, (int64_t)row0 + warp_row, n_rows - warp_row, h);
}

template <int HD, int WARPS, int MT, int BN, int MIN_CTAS>
static void launch_prefill(cudaStream_t stream, const prefill_params &p, int32_t n_heads, int32_t n_tokens) {
  constexpr int BM = 16 * MT * WARPS;
  const size_t smem = (size_t)(BM * HD + 4 * BN * HD) * sizeof(__nv_bfloat16);
  const int64_t tiles = (int64_t)n_tokens / BM + p.n_seqs;
  if (tiles > 65535) UP_FATAL("attention: %lld query tiles exceed the grid limit 65535", (long long)tiles);
  /* Cheap and per device: set each call rather than track which devices have it. */
  UP_CUDA_CHECK(cudaFuncSetAttribute(prefill_kernel<HD, WARPS, MT, BN, MIN_CTAS>,
                                     cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  const dim3 grid((unsigned)n_heads, (unsigned)tiles);
  prefill_kernel<HD, WARPS, MT, BN, MIN_CTAS><<<grid, WARPS * 32, smem, stream>>>(p);
  UP_CUDA_CHECK_LAUNCH();
}

/* head_dim-128 kernels by `variant` (docs/kernels/attention.md has their timings):
 * 1: 8 warps x 16 rows, 32-key tiles (128 registers, 64 KB, 2 CTAs/SM: the v1 kernel);
 * 2: 8 warps x 32 rows, 64-key tiles (256-row CTAs, 255 registers, 160 KB, 1 CTA/SM);
 * 3: the Hopper wgmma kernel with cp.async loads (attention_prefill_sm90.cu), else 2;
 * 4: the warp-specialised Hopper kernel with TMA page copies
 *    (attention_prefill_sm90_tma.cu) where the device and the page size allow, else 3.
 * 0 (and anything else): 4 on Hopper where the page size allows, else 3, else 2.
 * head_dim 256 takes the same numbers, its Hopper kernels with 64-entry K/V tiles
 * (docs/kernels/sliding_window.md); 1 and 2 are both its one mma.sync kernel. */
extern "C" void up_cuda_attention_prefill(cudaStream_t stream, void *out, const void *qkv, const up_kv_pool *pool,
                                          const up_attn_batch *batch, const up_attn_shape *shape, int32_t window,
                                          int variant) {
  if (batch->n_tokens <= 0 || batch->n_seqs <= 0) return;
  const bool hopper_head_dim = shape->head_dim == 128 || shape->head_dim == 256;
  if (hopper_head_dim && (variant < UP_ATTN_PREFILL_MMA_SYNC_V1 || variant > UP_ATTN_PREFILL_LAST))
    variant = UP_ATTN_PREFILL_SM90_TMA;
  if (hopper_head_dim && variant >= UP_ATTN_PREFILL_SM90) {
    if (up_cuda_attention_prefill_sm90_available()) {
      if (variant >= UP_ATTN_PREFILL_SM90_TMA && up_cuda_attention_prefill_sm90_tma_fits(pool, shape->head_dim)) {
        up_cuda_attention_prefill_sm90_tma(stream, out, qkv, pool, batch, shape, window);
        return;
      }
      up_cuda_attention_prefill_sm90(stream, out, qkv, pool, batch, shape, window);
      return;
    }
    variant = UP_ATTN_PREFILL_MMA_SYNC;
  }
  prefill_params p = up_attn_args_make(out, qkv, pool, batch, shape);
  p.window = window;
  /* 8 warps share each K/V tile at head_dim 64; at 256 the accumulators double, so 4
   * warps and 32-key tiles keep two CTAs per SM. */
  switch (shape->head_dim) {
    case 64: launch_prefill<64, 8, 1, 64, 2>(stream, p, shape->n_heads, batch->n_tokens); break;
    case 128:
      if (variant == UP_ATTN_PREFILL_MMA_SYNC_V1)
        launch_prefill<128, 8, 1, 32, 2>(stream, p, shape->n_heads, batch->n_tokens);
      else
        launch_prefill<128, 8, 2, 64, 1>(stream, p, shape->n_heads, batch->n_tokens);
      break;
    case 256: launch_prefill<256, 4, 1, 32, 2>(stream, p, shape->n_heads, batch->n_tokens); break;
    default: UP_FATAL("attention: head_dim %d not supported by the CUDA kernels (64, 128, 256)", shape->head_dim);
  }
}
