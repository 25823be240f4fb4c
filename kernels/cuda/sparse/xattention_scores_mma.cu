/* xattention_scores_mma.cu — XAttention's block scores W (kernels/sparse_attention_ops.h;
 * the CPU reference is up_xattention_head_scores in kernels/cpu/sparse_xattention.c) as
 * bf16 mma.sync GEMM tiles, in one pass over the keys. Owns the scoring step only
 * (xattention_scores_mma.cuh); may not touch the walk or the method's rules.
 *
 * One CTA per (query block, chunk of hpc query heads sharing a kv head). The reshaped
 * query rows of the chunk (row rr of head hl: tokens rr S + S-1-i, i < S, concatenated:
 * the S x S tile's antidiagonal) stay in shared memory; each causal key block streams
 * through cp.async stages (two; one where shared memory is short: head_dim 256 at
 * S = 16), its 128/S reshaped key rows being S consecutive tokens each. Warps own one
 * m16 tile of reshaped rows and every k_split-th k-step of the S d dimension; their
 * fp32 partial dots meet in shared memory, where each (reshaped row, key block) gets its
 * logits bf16(dot) log2(e) / (sqrt(d) S), causally masked at the reshaped level (column
 * c <= row r; rows past the sequence's last real query dropped), and their partial
 * maximum and sum of 2^(x - max), stored in the scratch.
 * After the last key block the CTA combines each row's partials exactly (the online
 * softmax's rescaling, done once at the end) and writes
 *     W[qb][kb] = bf16( sum over rows of s_kb 2^(m_kb - M) / Z ),
 * which is the reference's block sum of the row-normalised probabilities, summed in
 * another order (rounding differences only). */
#include <cuda_bf16.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "kernels/cuda/attention/attn_common.cuh"
#include "kernels/cuda/sparse/xattention_scores_mma.cuh"

namespace {

constexpr int XS_BLOCK = 128;   /* XAttention's 128 x 128 blocks */
constexpr int XS_MAX_ROWS = 128; /* reshaped rows of a CTA: at most 8 m16 tiles */
constexpr int XS_MAX_WARPS = 8;
constexpr int XS_PAD = 8;       /* bf16 entries after each reshaped row: rows 4 banks apart, conflict-free ldmatrix */

struct xs_params {
  const __nv_bfloat16 *qkv;
  const __nv_bfloat16 *k_pool;
  const int32_t *cu_seqlens, *kv_lens, *block_tables, *qblock_start;
  int64_t qkv_stride;
  int32_t n_seqs, n_heads, group, head_dim, kv_dim, max_blocks_per_seq;
  up_attn_divider block_tokens;
  int32_t stride;            /* S */
  int32_t hpc;               /* query heads of a CTA */
  int32_t rows;              /* hpc * 128 / S reshaped rows */
  int32_t m_tiles, k_split;  /* warps = m_tiles * k_split */
  int32_t stages;            /* key-block buffers: 2 (the next one loads during the MMAs) or 1 (head_dim 256, S 16) */
  int32_t max_nq;            /* W's row stride */
  float scale2;              /* log2(e) / (sqrt(d) S) */
  int64_t tri_total;         /* sum over sequences of nq (nq + 1) / 2 */
  float2 *partial;           /* [H / hpc][tri_total][rows]: (max, sum) of (row, key block) */
  float *w;
  up_cuda_index_error *error;
};

__device__ __forceinline__ void ldmatrix_x2(uint32_t r[2], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(addr));
}

/* (m, z) <- the softmax state of both parts: the maximum and the sum rescaled to it. */
__device__ __forceinline__ void softmax_merge(float &m, float &z, float m2, float z2) {
  if (m2 == -INFINITY) return;
  if (m == -INFINITY) {
    m = m2, z = z2;
  } else if (m2 > m) {
    z = z * exp2f(m - m2) + z2, m = m2;
  } else {
    z += z2 * exp2f(m2 - m);
  }
}

/* The 128 tokens of block kb, reshaped rows of S tokens in order (keys) into dst. */
__device__ __forceinline__ void load_key_block(__nv_bfloat16 *dst, int32_t ld, const xs_params &p,
                                               const int32_t *block_table, int32_t kvh, int32_t kb, int32_t n) {
  const int32_t d = p.head_dim, S = p.stride, ch = d / 8;
  for (int32_t i = threadIdx.x; i < XS_BLOCK * ch; i += blockDim.x) {
    const int32_t tok = i / ch, c = i % ch, token = kb * XS_BLOCK + tok;
    const bool real = token < n;
    const __nv_bfloat16 *src =
        real ? p.k_pool + up_attn_entry_offset(block_table, token, p.block_tokens, p.kv_dim) + (int64_t)kvh * d + c * 8
             : p.k_pool;
    up_attn_cp_async16(up_attn_smem_u32(dst + (int64_t)(tok / S) * ld + (tok % S) * d + c * 8), src, real ? 16 : 0);
  }
}

template <int NT> /* n8 tiles of a key block: 128 / S / 8 */
__global__ void __launch_bounds__(XS_MAX_WARPS * 32) xa_scores_mma(const xs_params p) {
  constexpr int P = NT * 8; /* reshaped rows of a token block */
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int32_t S = p.stride, d = p.head_dim, row_len = S * d, ld = row_len + XS_PAD;
  const int32_t rows_pad = p.m_tiles * 16;
  __nv_bfloat16 *q_s = (__nv_bfloat16 *)smem_raw;          /* [rows_pad][ld] */
  __nv_bfloat16 *k_s = q_s + (int64_t)rows_pad * ld;        /* [stages][P][ld] */
  float *dots = (float *)(k_s + (int64_t)p.stages * P * ld); /* [k_split][rows_pad][P] */
  float *row_m = dots + (int64_t)p.k_split * rows_pad * P;  /* [XS_MAX_ROWS] */
  float *row_z = row_m + XS_MAX_ROWS;

  /* the last query blocks (the longest key walks) first */
  const int32_t chunk = blockIdx.x, qbg = (int32_t)(gridDim.y - 1 - blockIdx.y);
  const int32_t h0 = chunk * p.hpc, kvh = h0 / p.group;
  const int32_t s = up_sparse_qblock_seq(p.qblock_start, p.n_seqs, qbg);
  const int32_t row0 = __ldg(p.cu_seqlens + s), n = __ldg(p.cu_seqlens + s + 1) - row0;
  const int32_t qb0 = __ldg(p.qblock_start + s), b = qbg - qb0, nq = __ldg(p.qblock_start + s + 1) - qb0;
  if (!up_sparse_sequence_ok(p.error, s, n, __ldg(p.kv_lens + s), nq, XS_BLOCK)) return;
  const int32_t *block_table = p.block_tables + (int64_t)s * p.max_blocks_per_seq;
  const int32_t n_r = (n + S - 1) / S; /* reshaped rows holding a real query */
  int64_t tri_before = (int64_t)b * (b + 1) / 2;
  for (int32_t x = 0; x < s; ++x) {
    const int64_t m = __ldg(p.qblock_start + x + 1) - __ldg(p.qblock_start + x);
    tri_before += m * (m + 1) / 2;
  }
  float2 *part = p.partial + ((int64_t)chunk * p.tri_total + tri_before) * p.rows;

  /* the chunk's reshaped queries (reversed within each S-token group), zeros past n and
   * in the padding rows of the last m16 tile */
  const int32_t ch = d / 8;
  for (int32_t i = threadIdx.x; i < (rows_pad - p.rows) * (ld / 8); i += blockDim.x)
    *(uint4 *)(q_s + (int64_t)p.rows * ld + (int64_t)i * 8) = make_uint4(0, 0, 0, 0);
  for (int32_t i = threadIdx.x; i < p.hpc * XS_BLOCK * ch; i += blockDim.x) {
    const int32_t hl = i / (XS_BLOCK * ch), rem = i % (XS_BLOCK * ch), tok = rem / ch, c = rem % ch;
    const int32_t token = b * XS_BLOCK + tok;
    const bool real = token < n;
    const __nv_bfloat16 *src = real ? p.qkv + (int64_t)(row0 + token) * p.qkv_stride + (int64_t)(h0 + hl) * d + c * 8
                                    : p.qkv;
    __nv_bfloat16 *dst = q_s + (int64_t)(hl * P + tok / S) * ld + (S - 1 - tok % S) * d + c * 8;
    up_attn_cp_async16(up_attn_smem_u32(dst), src, real ? 16 : 0);
  }
  load_key_block(k_s, ld, p, block_table, kvh, 0, n);
  up_attn_cp_async_commit();

  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
  const int mt = warp % p.m_tiles, ks = warp / p.m_tiles;
  const int32_t k_steps = row_len / 16;
  /* ldmatrix row addresses: A rows mt*16 + (lane & 15), columns + 8 for lanes 16..31;
   * B (key rows as n, k contiguous): matrix lane/8 = (n half, k half) */
  const uint32_t a_addr = up_attn_smem_u32(q_s + (int64_t)(mt * 16 + (lane & 15)) * ld + (lane >> 4) * 8);
  const int32_t b_row = ((lane >> 4) & 1) * 8 + (lane & 7), b_col = ((lane >> 3) & 1) * 8;

  const bool two = p.stages == 2;
  for (int32_t kb = 0; kb <= b; ++kb) {
    if (two && kb < b) load_key_block(k_s + (int64_t)((kb + 1) & 1) * P * ld, ld, p, block_table, kvh, kb + 1, n);
    up_attn_cp_async_commit(); /* possibly empty: the waits below count groups */
    if (two)
      up_attn_cp_async_wait<1>();
    else
      up_attn_cp_async_wait<0>();
    __syncthreads(); /* key block kb (and the queries) landed for every thread */
    float acc[NT][4];
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = 0.0f;
    const __nv_bfloat16 *kt = k_s + (int64_t)(two ? kb & 1 : 0) * P * ld;
    const uint32_t b_addr = up_attn_smem_u32(kt + (int64_t)b_row * ld + b_col);
    for (int32_t step = ks; step < k_steps; step += p.k_split) {
      const uint32_t k_bytes = (uint32_t)step * 32u;
      uint32_t a[4];
      up_attn_ldmatrix_x4(a, a_addr + k_bytes);
      if constexpr (NT == 1) {
        uint32_t bf[2];
        ldmatrix_x2(bf, b_addr + k_bytes); /* .x2 reads lanes 0..15's addresses only */
        up_attn_mma_bf16(acc[0], a, bf[0], bf[1]);
      } else {
#pragma unroll
        for (int np = 0; np < NT / 2; ++np) {
          uint32_t bf[4];
          up_attn_ldmatrix_x4(bf, b_addr + (uint32_t)(np * 16 * ld * 2) + k_bytes);
          up_attn_mma_bf16(acc[2 * np], a, bf[0], bf[1]);
          up_attn_mma_bf16(acc[2 * np + 1], a, bf[2], bf[3]);
        }
      }
    }
    {
      const int g = lane >> 2, t = lane & 3;
      float *out = dots + ((int64_t)ks * rows_pad + mt * 16 + g) * P;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        out[nt * 8 + 2 * t] = acc[nt][0], out[nt * 8 + 2 * t + 1] = acc[nt][1];
        out[8 * P + nt * 8 + 2 * t] = acc[nt][2], out[8 * P + nt * 8 + 2 * t + 1] = acc[nt][3];
      }
    }
    __syncthreads(); /* every split's dots are in; key block kb's stage may be refilled */
    if (!two && kb < b) load_key_block(k_s, ld, p, block_table, kvh, kb + 1, n); /* lands during the softmax below */
    /* a row's P columns are P consecutive lanes (P divides 32, blockDim is whole warps,
     * rows_pad * P a multiple of 32: every warp runs the same iterations) */
    for (int32_t e = threadIdx.x; e < rows_pad * P; e += blockDim.x) {
      const int32_t row = e / P, cc = e % P, rr = row % P;
      float dot = 0.0f;
      for (int32_t sp = 0; sp < p.k_split; ++sp) dot += dots[(int64_t)sp * rows_pad * P + e];
      const int32_t r = b * P + rr, c = kb * P + cc;
      const bool live = row < p.rows && r < n_r && c <= r;
      const float x = live ? __bfloat162float(__float2bfloat16_rn(dot)) * p.scale2 : -INFINITY;
      float m = x;
#pragma unroll
      for (int off = P / 2; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
      float z = m == -INFINITY ? 0.0f : exp2f(x - m);
#pragma unroll
      for (int off = P / 2; off > 0; off >>= 1) z += __shfl_xor_sync(0xffffffffu, z, off);
      if (cc == 0 && row < p.rows) part[(int64_t)kb * p.rows + row] = make_float2(m, z);
    }
  }
  __syncthreads(); /* the partials written above are visible to the whole CTA */

  /* each row's maximum and sum over its key blocks: a warp per row */
  const int n_warps = (int)(blockDim.x / 32);
  for (int32_t row = warp; row < p.rows; row += n_warps) {
    float m = -INFINITY, z = 0.0f;
    for (int32_t kb = lane; kb <= b; kb += 32) {
      const float2 pz = part[(int64_t)kb * p.rows + row];
      softmax_merge(m, z, pz.x, pz.y);
    }
    for (int off = 16; off > 0; off >>= 1) {
      const float m2 = __shfl_xor_sync(0xffffffffu, m, off), z2 = __shfl_xor_sync(0xffffffffu, z, off);
      softmax_merge(m, z, m2, z2);
    }
    if (lane == 0) row_m[row] = m, row_z[row] = z;
  }
  __syncthreads();
  /* W of each (head, key block): the rows' normalised masses */
  for (int32_t it = threadIdx.x; it < p.hpc * (b + 1); it += blockDim.x) {
    const int32_t hl = it / (b + 1), kb = it % (b + 1);
    const float2 *pk = part + (int64_t)kb * p.rows + hl * P;
    double mass = 0.0;
    for (int32_t rr = 0; rr < P; ++rr) {
      const int32_t row = hl * P + rr;
      const float2 pz = pk[rr];
      if (row_m[row] == -INFINITY || pz.x == -INFINITY) continue; /* a row past n, or no live column here */
      mass += (double)(pz.y * exp2f(pz.x - row_m[row]) / row_z[row]);
    }
    p.w[((int64_t)qbg * p.n_heads + h0 + hl) * p.max_nq + kb] = __bfloat162float(__float2bfloat16_rn((float)mass));
  }
}

/* Shared memory of a CTA of the given shape. */
size_t xs_smem(int32_t S, int32_t d, int32_t m_tiles, int32_t k_split, int32_t stages) {
  const size_t P = (size_t)(XS_BLOCK / S), ld = (size_t)(S * d + XS_PAD);
  return (size_t)m_tiles * 16 * ld * 2 + (size_t)stages * P * ld * 2 + (size_t)k_split * m_tiles * 16 * P * 4 +
         2 * (size_t)XS_MAX_ROWS * 4;
}

template <int NT>
void xs_launch(const xs_params &p, dim3 grid, size_t smem, cudaStream_t stream) {
  UP_CUDA_CHECK(cudaFuncSetAttribute(xa_scores_mma<NT>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  xa_scores_mma<NT><<<grid, (unsigned)(p.m_tiles * p.k_split * 32), smem, stream>>>(p);
  UP_CUDA_CHECK_LAUNCH();
}

}  // namespace

bool up_xa_scores_v1_selected(void) {
  const char *choice = getenv("UP_XA_SCORES");
  /* tensor cores by default: 11.2 against 130.2 ms a layer at 32K on an H100
   * (docs/kernels/sparse_attention.md); v1 stays for side-by-side runs */
  if (!choice || !*choice || strcmp(choice, "mma") == 0) return false;
  if (strcmp(choice, "v1") == 0) return true;
  UP_FATAL("UP_XA_SCORES=%s: expected \"mma\" (the default: tensor-core scores, one pass) or \"v1\" (CUDA-core "
           "dots, two passes)", choice);
}

bool up_xa_scores_mma(up_sparse_scratch *scratch, const up_xa_scores_args *a) {
  const int32_t S = a->stride, d = a->shape->head_dim, H = a->shape->n_heads;
  const int32_t group = H / a->shape->n_kv_heads;
  if (S != 4 && S != 8 && S != 16) return false; /* a row's 128/S columns within a warp, whole n8 tiles */
  if (d % 8 != 0) return false;
  int device = 0, smem_limit = 0;
  UP_CUDA_CHECK(cudaGetDevice(&device));
  UP_CUDA_CHECK(cudaDeviceGetAttribute(&smem_limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  const int32_t P = XS_BLOCK / S;
  /* the most heads of the group whose rows fit with two key stages (keys are then read
   * once for all of them), else with one */
  int32_t hpc = 0, m_tiles = 0, k_split = 0, stages = 0;
  size_t smem = 0;
  for (int32_t st = 2; st >= 1 && hpc == 0; --st)
    for (int32_t cand = group; cand >= 1 && hpc == 0; --cand) {
      if (group % cand != 0 || cand * P > XS_MAX_ROWS) continue;
      const int32_t mt = (cand * P + 15) / 16;
      int32_t ksp = XS_MAX_WARPS / mt;
      ksp = ksp < 1 ? 1 : ksp > S * d / 16 ? S * d / 16 : ksp;
      const size_t bytes = xs_smem(S, d, mt, ksp, st);
      if (bytes <= (size_t)smem_limit) hpc = cand, m_tiles = mt, k_split = ksp, stages = st, smem = bytes;
    }
  if (hpc == 0) return false;
  const up_sparse_pattern *pattern = a->pattern;
  const int64_t n_qblocks = pattern->qblock_start_host[pattern->n_seqs];
  if (n_qblocks > 65535) UP_FATAL("xattention scores: %lld query blocks exceed the grid limit", (long long)n_qblocks);
  int64_t tri_total = 0;
  for (int32_t s = 0; s < pattern->n_seqs; ++s) {
    const int64_t nq = pattern->qblock_start_host[s + 1] - pattern->qblock_start_host[s];
    tri_total += nq * (nq + 1) / 2;
  }
  xs_params p;
  p.qkv = (const __nv_bfloat16 *)a->qkv;
  p.k_pool = (const __nv_bfloat16 *)a->pool->k;
  p.cu_seqlens = a->batch->cu_seqlens, p.kv_lens = a->batch->kv_lens, p.block_tables = a->batch->block_tables;
  p.qblock_start = pattern->qblock_start;
  p.qkv_stride = (int64_t)(H + 2 * a->shape->n_kv_heads) * d;
  p.n_seqs = a->batch->n_seqs, p.n_heads = H, p.group = group, p.head_dim = d, p.kv_dim = a->pool->kv_dim;
  p.max_blocks_per_seq = a->batch->max_blocks_per_seq;
  p.block_tokens = up_attn_divider_make(a->pool->block_tokens);
  p.stride = S, p.hpc = hpc, p.rows = hpc * P, p.m_tiles = m_tiles, p.k_split = k_split, p.stages = stages;
  p.max_nq = a->max_nq;
  p.scale2 = (float)(1.4426950408889634 / (sqrt((double)d) * S));
  p.tri_total = tri_total;
  p.partial = (float2 *)up_sparse_scratch_take(scratch, sizeof(float2) * (size_t)H * (size_t)P * (size_t)tri_total,
                                               "xattention partial softmax states");
  p.w = a->w;
  p.error = a->error;
  const dim3 grid((unsigned)(H / hpc), (unsigned)n_qblocks);
  switch (P / 8) {
    case 4: xs_launch<4>(p, grid, smem, scratch->stream); break;
    case 2: xs_launch<2>(p, grid, smem, scratch->stream); break;
    default: xs_launch<1>(p, grid, smem, scratch->stream); break;
  }
  return true;
}
