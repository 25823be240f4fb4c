/* attention_decode_warp.cu — the default decode split kernel: every warp streams its own
 * share of the CTA's key range through its own shared-memory ring and keeps its own
 * online softmax, so nothing in the key loop waits on another warp; one cross-warp
 * log-sum-exp merge at the end writes the split's partials in the layout the combine
 * kernel of attention_decode.cu reads (attn_decode.cuh). Owns only this kernel and its
 * launch; the split count, the workspace and the combine stay in attention_decode.cu.
 *
 * Why this shape (docs/kernels/attention.md, "Decode"): the v1 kernel's chunk loop
 * (load, wait, three block barriers of CUDA-core work) left HBM idle while a CTA scored
 * its chunk, and four CTAs per SM did not cover that. Here a lane reads 16 bytes (8
 * dims) of a key row, HD/8 lanes hold one key, and the lane that copies a chunk
 * (cp.async) is the only one that reads it back: a warp needs no barrier at all, only
 * its own cp.async groups, and keeps STAGES - 1 tiles in flight while it scores one. */
#include <math.h>

#include "kernels/cuda/attention/attn_decode.cuh"

enum {
  DW_WARPS = 4,
  DW_THREADS = DW_WARPS * 32,
  DW_STAGES = 3 /* tiles per warp's ring: two in flight while the third is scored */
};

/* Per (head_dim, queries per CTA): LPK lanes hold a key (8 dims each), KPL keys per
 * warp-wide 16-byte load, U loads per lane per tile (fewer at 8 queries, whose q and
 * accumulators take 128 registers), TILE keys per tile. */
template <int HD, int NQ>
struct dw_cfg {
  static constexpr int LPK = HD / 8;
  static constexpr int KPL = 32 / LPK;
  static constexpr int U = NQ >= 8 ? 2 : 4;
  static constexpr int TILE = U * KPL;
  static constexpr int RING_U4 = DW_STAGES * U * 2 * 32; /* 16-byte slots of one warp's ring */
  /* 4 CTAs (16 warps) per SM at up to 4 queries: 128 registers a thread. */
  static constexpr int MIN_BLOCKS = NQ >= 8 ? 2 : 4;
};

template <int HD, int NQ>
static size_t dw_smem_bytes(void) {
  using C = dw_cfg<HD, NQ>;
  const size_t ring = (size_t)DW_WARPS * C::RING_U4 * 16;
  const size_t merge = sizeof(float) * (size_t)DW_WARPS * NQ * (HD + 2);
  return ring > merge ? ring : merge;
}

__device__ __forceinline__ void dw_bf16x8_to_float(const uint4 raw, float (&f)[8]) {
  const __nv_bfloat162 *h = (const __nv_bfloat162 *)&raw;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 v = __bfloat1622float2(h[i]);
    f[2 * i] = v.x;
    f[2 * i + 1] = v.y;
  }
}

/* The grid and the queries of a CTA as v1's (decode_cta_of). */
template <int HD, int NQ>
__global__ void __launch_bounds__(DW_THREADS, dw_cfg<HD, NQ>::MIN_BLOCKS) decode_warp_kernel(const decode_params p) {
  using C = dw_cfg<HD, NQ>;
  constexpr int LPK = C::LPK, KPL = C::KPL, U = C::U, TILE = C::TILE;
  extern __shared__ __align__(16) unsigned char smem_raw[];

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int kg = lane / LPK; /* which key of a load */
  const int ch = lane % LPK; /* which 16-byte chunk (dims 8ch..8ch+7) of the key row */
  decode_cta cta;
  if (!decode_cta_of(p, NQ, cta)) return;
  const int32_t s = cta.s, split = cta.split, kvh = cta.kvh, row0 = cta.row0, n_rows = cta.n_rows;
  const int32_t q_first = cta.q_first, nq = cta.nq;
  const decode_range r = cta.keys;
  const int32_t *block_table = cta.block_table;
  /* Every key at or after this is seen by every row (window), every key at or before
   * prior by every row (causal): tiles inside both need no mask. */
  const int32_t all_rows_from = up_attn_window_start(r.prior + n_rows - 1, p.a.window);

  /* This lane's 8 dims of each query, pre-scaled so a dot product is a base-2 score. */
  float q[NQ][8];
#pragma unroll
  for (int i = 0; i < NQ; ++i) {
    const int32_t qi = q_first + i;
    const __nv_bfloat16 *src =
        p.a.qkv + (int64_t)(row0 + qi % n_rows) * p.a.qkv_stride + (int64_t)(kvh * p.a.group + qi / n_rows) * HD + ch * 8;
#pragma unroll
    for (int j = 0; j < 8; ++j) q[i][j] = i < nq ? __bfloat162float(src[j]) * p.a.scale_log2 : 0.0f;
  }

  /* Online softmax per query: m is the same in every lane; l and acc are this lane's
   * key slot's share (acc: its 8 dims), summed over the KPL slots at the end. */
  float m[NQ], l[NQ], acc[NQ][8];
#pragma unroll
  for (int i = 0; i < NQ; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.0f;
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[i][j] = 0.0f;
  }

  /* The warp takes tiles warp, warp + DW_WARPS, ... of the split: neighbouring warps read
   * neighbouring keys (the same pages and table entries). */
  const int32_t n_tiles = r.end > r.begin ? (r.end - r.begin + TILE - 1) / TILE : 0;
  const int32_t n_mine = n_tiles > warp ? (n_tiles - warp + DW_WARPS - 1) / DW_WARPS : 0;
  uint4 *ring = (uint4 *)smem_raw + warp * C::RING_U4;

  /* Copy my chunks of the mine-th tile into ring stage `stage`; keys past the range are
   * zero-filled without touching the table. */
  auto issue = [&](int32_t mine, int stage) {
    const int32_t t0 = r.begin + (warp + mine * DW_WARPS) * TILE;
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int32_t e = t0 + u * KPL + kg;
      const bool valid = e < r.end;
      const int64_t off =
          valid ? up_attn_entry_offset(block_table, e, p.a.block_tokens, p.a.kv_dim) + kvh * HD + ch * 8 : 0;
      uint4 *slot = ring + ((stage * U + u) * 2) * 32 + lane;
      up_attn_cp_async16(up_attn_smem_u32(slot), p.a.k_pool + off, valid ? 16 : 0);
      up_attn_cp_async16(up_attn_smem_u32(slot + 32), p.a.v_pool + off, valid ? 16 : 0);
    }
  };

#pragma unroll
  for (int i = 0; i < DW_STAGES - 1; ++i) {
    if (i < n_mine) issue(i, i);
    up_attn_cp_async_commit(); /* empty groups too: the wait below counts groups */
  }

  for (int32_t i = 0; i < n_mine; ++i) {
    if (i + DW_STAGES - 1 < n_mine) issue(i + DW_STAGES - 1, (i + DW_STAGES - 1) % DW_STAGES);
    up_attn_cp_async_commit();
    up_attn_cp_async_wait<DW_STAGES - 1>(); /* tile i has landed (this lane's chunks of it) */
    const uint4 *tile = ring + (i % DW_STAGES) * U * 2 * 32 + lane;
    const int32_t t0 = r.begin + (warp + i * DW_WARPS) * TILE;

    /* Scores: partial dots over my 8 dims, summed over the key's LPK lanes. */
    float sc[NQ][U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      float kf[8];
      dw_bf16x8_to_float(tile[u * 64], kf);
#pragma unroll
      for (int i2 = 0; i2 < NQ; ++i2) {
        float d0 = q[i2][0] * kf[0], d1 = q[i2][1] * kf[1];
#pragma unroll
        for (int j = 2; j < 8; j += 2) {
          d0 = fmaf(q[i2][j], kf[j], d0);
          d1 = fmaf(q[i2][j + 1], kf[j + 1], d1);
        }
        sc[i2][u] = d0 + d1;
      }
    }
#pragma unroll
    for (int o = LPK / 2; o > 0; o >>= 1)
#pragma unroll
      for (int i2 = 0; i2 < NQ; ++i2)
#pragma unroll
        for (int u = 0; u < U; ++u) sc[i2][u] += __shfl_xor_sync(0xffffffffu, sc[i2][u], o);

    /* Masks only where a tile reaches past the range, past a row's causal limit or
     * before a row's window (the same for the LPK lanes of a key). */
    if (!(t0 + TILE <= r.end && t0 + TILE - 1 <= r.prior && t0 >= all_rows_from)) {
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int32_t e = t0 + u * KPL + kg;
#pragma unroll
        for (int i2 = 0; i2 < NQ; ++i2) {
          const int32_t idx = r.prior + (q_first + i2) % n_rows; /* the row's cache index */
          if (!(e < r.end && e <= idx && e >= up_attn_window_start(idx, p.a.window))) sc[i2][u] = -INFINITY;
        }
      }
    }

    /* Online softmax: the tile's max over the warp's keys is the same in every lane, so
     * the rescale branch never diverges; rows with no visible key yet stay at -inf. */
#pragma unroll
    for (int i2 = 0; i2 < NQ; ++i2) {
      float mt = sc[i2][0];
#pragma unroll
      for (int u = 1; u < U; ++u) mt = fmaxf(mt, sc[i2][u]);
#pragma unroll
      for (int o = LPK; o < 32; o <<= 1) mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, o));
      if (mt > m[i2]) {
        const float corr = up_attn_exp2(m[i2] - mt); /* 0 from -inf */
        l[i2] *= corr;
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i2][j] *= corr;
        m[i2] = mt;
      }
      const float base = m[i2] == -INFINITY ? 0.0f : m[i2]; /* no -inf - -inf */
#pragma unroll
      for (int u = 0; u < U; ++u) {
        sc[i2][u] = up_attn_exp2(sc[i2][u] - base);
        l[i2] += sc[i2][u];
      }
    }

    /* acc += P V over my key slot's keys, my 8 dims. */
#pragma unroll
    for (int u = 0; u < U; ++u) {
      float vf[8];
      dw_bf16x8_to_float(tile[u * 64 + 32], vf);
#pragma unroll
      for (int i2 = 0; i2 < NQ; ++i2)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i2][j] = fmaf(sc[i2][u], vf[j], acc[i2][j]);
    }
    /* This lane's reads of the stage come before its next copy into it (i + 1 issues
     * into stage (i + DW_STAGES) % DW_STAGES, this one). */
    __syncwarp();
  }
  up_attn_cp_async_wait<0>();

  /* The warp's sums over its KPL key slots (lanes ch, ch + LPK, ...). */
#pragma unroll
  for (int o = LPK; o < 32; o <<= 1)
#pragma unroll
    for (int i2 = 0; i2 < NQ; ++i2) {
      l[i2] += __shfl_xor_sync(0xffffffffu, l[i2], o);
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[i2][j] += __shfl_xor_sync(0xffffffffu, acc[i2][j], o);
    }

  /* Cross-warp merge through shared memory (over the rings, once every warp is done). */
  __syncthreads();
  float *acc_sm = (float *)smem_raw;             /* [DW_WARPS][NQ][HD] */
  float *ml_sm = acc_sm + DW_WARPS * NQ * HD;     /* [DW_WARPS][NQ][2] */
  if (lane < LPK) {
#pragma unroll
    for (int i2 = 0; i2 < NQ; ++i2) {
      float *dst = acc_sm + (warp * NQ + i2) * HD + ch * 8;
      *(float4 *)dst = make_float4(acc[i2][0], acc[i2][1], acc[i2][2], acc[i2][3]);
      *(float4 *)(dst + 4) = make_float4(acc[i2][4], acc[i2][5], acc[i2][6], acc[i2][7]);
      if (lane == 0) *(float2 *)(ml_sm + 2 * (warp * NQ + i2)) = make_float2(m[i2], l[i2]);
    }
  }
  __syncthreads();

  /* Partials, written even for an empty key range (max -inf, sum 0: weight 0 in the combine). */
  for (int idx = threadIdx.x; idx < nq * HD; idx += DW_THREADS) {
    const int i2 = idx / HD, d = idx % HD;
    float mx = -INFINITY;
#pragma unroll
    for (int w = 0; w < DW_WARPS; ++w) mx = fmaxf(mx, ml_sm[2 * (w * NQ + i2)]);
    float o = 0.0f, sum = 0.0f;
#pragma unroll
    for (int w = 0; w < DW_WARPS; ++w) {
      const float mw = ml_sm[2 * (w * NQ + i2)];
      if (mw == -INFINITY) continue; /* this warp saw no key of the row */
      const float wgt = up_attn_exp2(mw - mx);
      o = fmaf(wgt, acc_sm[(w * NQ + i2) * HD + d], o);
      sum = fmaf(wgt, ml_sm[2 * (w * NQ + i2) + 1], sum);
    }
    const int32_t qi = q_first + i2;
    const int64_t at = ws_index(p, s, kvh * p.a.group + qi / n_rows, qi % n_rows, split);
    p.ws_o[at * HD + d] = o;
    if (d == 0) *(float2 *)(p.ws_ml + 2 * at) = make_float2(mx, sum);
  }
}

template <int HD, int NQ>
static int32_t dw_ctas_per_sm(void) {
  const size_t smem = dw_smem_bytes<HD, NQ>();
  UP_CUDA_CHECK(cudaFuncSetAttribute(decode_warp_kernel<HD, NQ>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  int n = 0;
  UP_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, decode_warp_kernel<HD, NQ>, DW_THREADS, smem));
  if (n < 1)
    UP_FATAL("attention: the per-warp decode kernel for head_dim %d, %d queries fits no SM (%zu bytes of shared memory)",
             HD, NQ, smem);
  return n;
}

template <int HD, int NQ>
static void dw_launch(cudaStream_t stream, const decode_params &p, int32_t n_kv_heads) {
  const size_t smem = dw_smem_bytes<HD, NQ>();
  UP_CUDA_CHECK(cudaFuncSetAttribute(decode_warp_kernel<HD, NQ>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  const dim3 grid((unsigned)p.n_splits, (unsigned)(n_kv_heads * p.n_qblocks), (unsigned)p.a.n_seqs);
  decode_warp_kernel<HD, NQ><<<grid, DW_THREADS, smem, stream>>>(p);
  UP_CUDA_CHECK_LAUNCH();
}

int32_t up_attn_decode_warp_queries(int32_t group) {
  return group <= 1 ? 1 : group <= 2 ? 2 : group <= 4 ? 4 : 8;
}

/* The instances by (head_dim, queries): one switch for both entry points. */
#define DW_DISPATCH(hd, nq, CALL)                                                                   \
  switch ((hd) * 16 + (nq)) {                                                                       \
    case 64 * 16 + 1: CALL(64, 1); case 64 * 16 + 2: CALL(64, 2);                                   \
    case 64 * 16 + 4: CALL(64, 4); case 64 * 16 + 8: CALL(64, 8);                                   \
    case 128 * 16 + 1: CALL(128, 1); case 128 * 16 + 2: CALL(128, 2);                               \
    case 128 * 16 + 4: CALL(128, 4); case 128 * 16 + 8: CALL(128, 8);                               \
    case 256 * 16 + 1: CALL(256, 1); case 256 * 16 + 2: CALL(256, 2);                               \
    case 256 * 16 + 4: CALL(256, 4); case 256 * 16 + 8: CALL(256, 8);                               \
    default:                                                                                        \
      UP_FATAL("attention: no per-warp decode kernel for head_dim %d, %d queries per CTA", (int)(hd), (int)(nq)); \
  }

int32_t up_attn_decode_warp_ctas_per_sm(int32_t head_dim, int32_t queries) {
#define DW_OCCUPANCY(H, Q) return dw_ctas_per_sm<H, Q>()
  DW_DISPATCH(head_dim, queries, DW_OCCUPANCY)
#undef DW_OCCUPANCY
}

void up_attn_decode_warp_launch(cudaStream_t stream, const decode_params &p, int32_t n_kv_heads, int32_t head_dim,
                                int32_t queries) {
#define DW_LAUNCH(H, Q) \
  dw_launch<H, Q>(stream, p, n_kv_heads); \
  return
  DW_DISPATCH(head_dim, queries, DW_LAUNCH)
#undef DW_LAUNCH
}
