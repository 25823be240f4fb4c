/* sparse_attention.cu — the CUDA block-sparse prefill attention of the sparse
 * baselines (kernels/sparse_attention_ops.h, UP_SPARSE_ATTENTION_KERNEL): the entry that
 * chooses the kernel, and an Ampere-level FlashAttention-2 style forward (bf16 mma.sync
 * m16n8k16, fp32 accumulators, online softmax in base 2) whose key tiles come from a
 * pattern's list rows instead of the whole causal prefix. Reads the shared PTX wrappers
 * and epilogue of kernels/cuda/attention/attn_common.cuh; owns nothing of the dense
 * attention op.
 *
 * Which kernel: on Hopper, patterns of 128-row query blocks (or multiples) without
 * extra keys (FlexPrefill, XAttention) go to the dense warp-specialised TMA kernel's
 * listed schedule (attention_prefill_sm90_tma.cu), unless the backend's attention
 * kernel was set away from TMA (--attention-kernel mma-sync or wgmma-cp-async, the
 * escape if that path misbehaves); everything else (MInference's 64-row blocks and
 * gathered keys, other GPUs, page sizes TMA cannot copy) runs this mma.sync kernel.
 *
 * One CTA = one query head x BM = 64 rows of one query block (a 128-row block takes two
 * CTAs), four warps of 16 rows. Its key tiles, BN keys each, are in order: every range
 * of the list row cut into ceil(block_k / BN) tiles of consecutive keys from its
 * (possibly unaligned) start, then the extra keys gathered BN at a time. All tiles feed
 * one online-softmax state, so the two passes of the contract are one loop. Each tile
 * row's key id sits in shared memory beside the tile; keys that are not data (past the
 * range, negative, at or past the cache end) load as zeros with id INT32_MAX, and the
 * causal mask is "id > row" on every tile that may hold such keys. Range tiles that lie
 * wholly after the CTA's last row are skipped before they are loaded.
 *
 * Sequences without query blocks (decode rows, prefills a method leaves dense) run in
 * the same launch as dense causal tiles over their cached entries: the grid's first
 * part is the pattern's query blocks, the rest the virtual tiles of
 * attention_prefill.cu's scheme, whose CTAs exit when their sequence has a pattern. */
#include <limits.h>
#include <math.h>

#include "kernels/cuda/attention/attn_common.cuh"
#include "kernels/cuda/attention/cuda_attention.h"
#include "kernels/cuda/cuda_backend_impl.h"
#include "kernels/cuda/sparse/sparse_cuda.h"
#include "kernels/cuda/sparse/sparse_estimate_common.cuh"

namespace {

constexpr int SPARSE_WARPS = 4;
constexpr int SPARSE_BM = 16 * SPARSE_WARPS;
constexpr int SPARSE_THREADS = 32 * SPARSE_WARPS;

struct sparse_params {
  up_attn_args a;
  const int32_t *qblock_start; /* [n_seqs + 1] */
  const int32_t *range_ptr;
  const int32_t *range_start;
  const int32_t *column_ptr;
  const int32_t *column_index;
  int32_t block_q, block_k;
  int32_t sub_tiles;      /* CTAs per query block: ceil(block_q / BM) */
  int32_t sparse_ctas;    /* query blocks of all sequences x sub_tiles */
  up_cuda_index_error *error;
};

/* One key tile: `count` keys from `first` (consecutive) or the extra keys
 * column_index[col0 .. col0 + count) (gathered). */
struct key_tile {
  int32_t first, count, col0;
  bool gathered;
};

/* What one CTA iterates: dense tiles of BN from key 0, or a list row's range tiles
 * then its gathered tiles. */
struct tile_plan {
  bool dense;
  int32_t n_dense;            /* dense: tiles */
  int32_t range0, n_ranges;   /* sparse: the list row's ranges */
  int32_t col0, n_cols;       /* sparse: its extra keys */
  int32_t per_range;          /* tiles per range */
  int32_t n_tiles;            /* all tiles of the plan */
  int32_t last_key;           /* the CTA's last row's causal limit: later keys are masked */
};

template <int BN>
__device__ __forceinline__ key_tile tile_at(const tile_plan &tp, const sparse_params &p, int32_t j) {
  key_tile t;
  if (tp.dense) {
    t.first = j * BN, t.count = BN, t.col0 = 0, t.gathered = false;
  } else if (j < tp.n_ranges * tp.per_range) {
    const int32_t r = j / tp.per_range, sub = j - r * tp.per_range;
    t.first = __ldg(p.range_start + tp.range0 + r) + sub * BN;
    t.count = min(BN, p.block_k - sub * BN);
    t.col0 = 0, t.gathered = false;
  } else {
    const int32_t c = (j - tp.n_ranges * tp.per_range) * BN;
    t.first = 0, t.col0 = tp.col0 + c, t.count = min(BN, tp.n_cols - c), t.gathered = true;
  }
  return t;
}

/* The first tile at or after j that holds a key some row of the CTA may see: range
 * tiles wholly after the last row (or wholly negative, a caller's bug) are skipped. */
template <int BN>
__device__ __forceinline__ int32_t next_tile(const tile_plan &tp, const sparse_params &p, int32_t j) {
  if (tp.dense) return j;
  for (; j < tp.n_ranges * tp.per_range; ++j) {
    const key_tile t = tile_at<BN>(tp, p, j);
    if (t.first <= tp.last_key && t.first + t.count > 0) break;
  }
  return j;
}

/* The key of tile row r, or -1 when the row holds none. */
__device__ __forceinline__ int32_t tile_key(const key_tile &t, const sparse_params &p, int r) {
  if (r >= t.count) return -1;
  return t.gathered ? __ldg(p.column_index + t.col0 + r) : t.first + r;
}

/* Copy a key tile of one kv head into a swizzled stage; rows without a readable key
 * (none, negative, at or past kv_len) become zeros. With ids != NULL also record each
 * row's key id, INT32_MAX for those rows, so the mask hides them. */
template <int HD, int BN>
__device__ __forceinline__ void load_tile(__nv_bfloat16 *stage, int32_t *ids, const __nv_bfloat16 *pool,
                                          const int32_t *block_table, const key_tile &t, int32_t kv_len,
                                          int32_t head_offset, const sparse_params &p) {
  constexpr int CH = HD / 8;
  constexpr int RSTEP = SPARSE_THREADS / CH;
  static_assert(SPARSE_THREADS % CH == 0 && BN % RSTEP == 0, "tile load mapping");
  const int c = threadIdx.x % CH;
#pragma unroll
  for (int i = 0; i < BN / RSTEP; ++i) {
    const int r = threadIdx.x / CH + i * RSTEP;
    const int32_t e = tile_key(t, p, r);
    const bool valid = e >= 0 && e < kv_len;
    const int64_t off =
        valid ? up_attn_entry_offset(block_table, e, p.a.block_tokens, p.a.kv_dim) + head_offset + c * 8 : 0;
    up_attn_cp_async16(up_attn_smem_u32(stage + up_attn_swz<HD>(r, c)), pool + off, valid ? 16 : 0);
    if (ids && c == 0) ids[r] = valid ? e : INT32_MAX;
  }
}

template <int HD, int BN, int MIN_CTAS>
__global__ void __launch_bounds__(SPARSE_THREADS, MIN_CTAS) sparse_attention_kernel(const sparse_params p) {
  constexpr int BM = SPARSE_BM;
  constexpr int CH = HD / 8;
  constexpr int NT = BN / 8;
  constexpr int DT = HD / 8;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  __nv_bfloat16 *q_s = (__nv_bfloat16 *)smem_raw;
  __nv_bfloat16 *k_s = q_s + BM * HD; /* [2][BN][HD] */
  __nv_bfloat16 *v_s = k_s + 2 * BN * HD;
  int32_t *id_s = (int32_t *)(v_s + 2 * BN * HD); /* [2][BN] key ids of the K stages */

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int h = blockIdx.x;
  const int32_t y = (int32_t)(gridDim.y - 1 - blockIdx.y); /* the longest dense tiles first */

  int32_t s, row0, n_rows, q0, q_end;
  tile_plan tp;
  if (y < p.sparse_ctas) {
    const int32_t qb = y / p.sub_tiles, sub = y - qb * p.sub_tiles;
    s = up_sparse_qblock_seq(p.qblock_start, p.a.n_seqs, qb);
    row0 = __ldg(p.a.cu_seqlens + s);
    n_rows = __ldg(p.a.cu_seqlens + s + 1) - row0;
    const int32_t b = qb - __ldg(p.qblock_start + s);
    const int32_t nq = __ldg(p.qblock_start + s + 1) - __ldg(p.qblock_start + s);
    if (!up_sparse_sequence_ok(p.error, s, n_rows, __ldg(p.a.kv_lens + s), nq, p.block_q)) return;
    q0 = b * p.block_q + sub * BM;
    q_end = min(min(b * p.block_q + p.block_q, q0 + BM), n_rows);
    if (q0 >= q_end) return;
    const int64_t r = (int64_t)qb * p.a.n_heads + h;
    tp.dense = false;
    tp.n_dense = 0;
    tp.range0 = __ldg(p.range_ptr + r);
    tp.n_ranges = __ldg(p.range_ptr + r + 1) - tp.range0;
    tp.col0 = __ldg(p.column_ptr + r);
    tp.n_cols = __ldg(p.column_ptr + r + 1) - tp.col0;
    tp.per_range = (p.block_k + BN - 1) / BN;
    tp.n_tiles = tp.n_ranges * tp.per_range + (tp.n_cols + BN - 1) / BN;
  } else {
    const int32_t vtile = y - p.sparse_ctas;
    s = up_attn_tile_seq(p.a.cu_seqlens, p.a.n_seqs, vtile, BM);
    if (__ldg(p.qblock_start + s + 1) > __ldg(p.qblock_start + s)) return; /* its rows are sparse CTAs' */
    row0 = __ldg(p.a.cu_seqlens + s);
    n_rows = __ldg(p.a.cu_seqlens + s + 1) - row0;
    q0 = (vtile - (row0 / BM + s)) * BM;
    if (q0 >= n_rows) return;
    q_end = min(q0 + BM, n_rows);
    tp.dense = true;
    tp.range0 = tp.n_ranges = tp.col0 = tp.n_cols = 0;
    tp.per_range = 1;
  }
  const int32_t kv_len = __ldg(p.a.kv_lens + s);
  const int32_t prior = kv_len - n_rows; /* 0 for a sparse sequence */
  tp.last_key = prior + q_end - 1;
  if (tp.dense) tp.n_dense = tp.n_tiles = (tp.last_key + BN) / BN;
  const int32_t kvh = h / p.a.group;
  const int32_t *block_table = p.a.block_tables + (int64_t)s * p.a.max_blocks_per_seq;
  const int32_t kv_head_offset = kvh * HD;

  {
    const int c = tid % CH;
#pragma unroll
    for (int i = 0; i < BM / (SPARSE_THREADS / CH); ++i) {
      const int r = tid / CH + i * (SPARSE_THREADS / CH);
      const bool valid = q0 + r < q_end;
      const int64_t off = valid ? (int64_t)(row0 + q0 + r) * p.a.qkv_stride + (int64_t)h * HD + c * 8 : 0;
      up_attn_cp_async16(up_attn_smem_u32(q_s + up_attn_swz<HD>(r, c)), p.a.qkv + off, valid ? 16 : 0);
    }
  }
  int32_t j = next_tile<BN>(tp, p, 0);
  key_tile cur = tile_at<BN>(tp, p, j);
  if (j < tp.n_tiles) load_tile<HD, BN>(k_s, id_s, p.a.k_pool, block_table, cur, kv_len, kv_head_offset, p);
  up_attn_cp_async_commit();
  if (j < tp.n_tiles) load_tile<HD, BN>(v_s, nullptr, p.a.v_pool, block_table, cur, kv_len, kv_head_offset, p);
  up_attn_cp_async_commit();

  float o[DT][4];
#pragma unroll
  for (int d = 0; d < DT; ++d) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  const int32_t warp_row = q0 + warp * 16;
  const int32_t my_row = warp_row + (lane >> 2);
  const bool warp_has_rows = warp_row < q_end;

  uint32_t q_addr[4], kv_addr[4];
  {
    const uint32_t q0a = up_attn_smem_u32(q_s) + 2 * up_attn_swz<HD>(warp * 16 + (lane & 15), lane >> 4);
    const uint32_t k0a = up_attn_smem_u32(k_s) + 2 * up_attn_swz<HD>(lane & 15, lane >> 4);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      q_addr[i] = q0a ^ (uint32_t)(i << 5);
      kv_addr[i] = k0a ^ (uint32_t)(i << 5);
    }
  }
  for (int32_t it = 0; j < tp.n_tiles; ++it) {
    const int buf = it & 1;
    const int32_t jn = next_tile<BN>(tp, p, j + 1);
    const key_tile nxt = tile_at<BN>(tp, p, jn);
    up_attn_cp_async_wait<1>();
    __syncthreads();
    if (jn < tp.n_tiles)
      load_tile<HD, BN>(k_s + (buf ^ 1) * BN * HD, id_s + (buf ^ 1) * BN, p.a.k_pool, block_table, nxt, kv_len,
                        kv_head_offset, p);
    up_attn_cp_async_commit();

    /* A warp whose rows all precede a consecutive tile adds nothing (causal). */
    const bool warp_active = warp_has_rows && (cur.gathered || cur.first <= prior + warp_row + 15);
    uint32_t pa[BN / 16][4];
    if (warp_active) {
      float sc[NT][4];
#pragma unroll
      for (int t = 0; t < NT; ++t) sc[t][0] = sc[t][1] = sc[t][2] = sc[t][3] = 0.0f;
      const uint32_t k_stage = (uint32_t)(buf * BN * HD * 2);
#pragma unroll
      for (int kk = 0; kk < HD / 16; ++kk) {
        uint32_t a[4];
        up_attn_ldmatrix_x4(a, q_addr[kk & 3] + (kk >> 2) * 128);
#pragma unroll
        for (int np = 0; np < BN / 16; ++np) {
          uint32_t b[4];
          up_attn_ldmatrix_x4(b, kv_addr[kk & 3] + k_stage + np * 16 * HD * 2 + (kk >> 2) * 128);
          up_attn_mma_bf16(sc[2 * np], a, b[0], b[2]);
          up_attn_mma_bf16(sc[2 * np + 1], a, b[1], b[3]);
        }
      }
      /* Mask by the recorded ids where the tile may hold a key after some row of the
       * warp or a row without a key; a full consecutive tile before the warp needs none. */
      const bool needs_mask = cur.gathered || cur.count < BN || cur.first < 0 ||
                              cur.first + BN - 1 > prior + warp_row || cur.first + BN > kv_len;
      if (needs_mask) {
        const int32_t *ids = id_s + buf * BN;
#pragma unroll
        for (int t = 0; t < NT; ++t)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int32_t key = ids[t * 8 + 2 * (lane & 3) + (e & 1)];
            const int32_t row = my_row + (e >> 1) * 8;
            if (key > prior + row) sc[t][e] = -INFINITY;
          }
      }
      /* Online softmax; a row that has seen no key keeps m = -inf and base 0, so its
       * exponentials are 0, not NaN. */
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float mx = m[r];
#pragma unroll
        for (int t = 0; t < NT; ++t) mx = fmaxf(mx, fmaxf(sc[t][2 * r], sc[t][2 * r + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float base = mx == -INFINITY ? 0.0f : mx * p.a.scale_log2;
        const float corr = up_attn_exp2(m[r] * p.a.scale_log2 - base);
        m[r] = mx;
        float sum = 0.0f;
#pragma unroll
        for (int t = 0; t < NT; ++t) {
          sc[t][2 * r] = up_attn_exp2(fmaf(sc[t][2 * r], p.a.scale_log2, -base));
          sc[t][2 * r + 1] = up_attn_exp2(fmaf(sc[t][2 * r + 1], p.a.scale_log2, -base));
          sum += sc[t][2 * r] + sc[t][2 * r + 1];
        }
        l[r] = l[r] * corr + sum;
#pragma unroll
        for (int d = 0; d < DT; ++d) {
          o[d][2 * r] *= corr;
          o[d][2 * r + 1] *= corr;
        }
      }
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        pa[kk][0] = up_attn_pack_bf16(sc[2 * kk][0], sc[2 * kk][1]);
        pa[kk][1] = up_attn_pack_bf16(sc[2 * kk][2], sc[2 * kk][3]);
        pa[kk][2] = up_attn_pack_bf16(sc[2 * kk + 1][0], sc[2 * kk + 1][1]);
        pa[kk][3] = up_attn_pack_bf16(sc[2 * kk + 1][2], sc[2 * kk + 1][3]);
      }
    }

    up_attn_cp_async_wait<1>();
    __syncthreads();
    if (jn < tp.n_tiles)
      load_tile<HD, BN>(v_s + (buf ^ 1) * BN * HD, nullptr, p.a.v_pool, block_table, nxt, kv_len, kv_head_offset,
                        p);
    up_attn_cp_async_commit();

    if (warp_active) {
      const uint32_t v_stage = (uint32_t)(buf * BN * HD * 2);
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
#pragma unroll
        for (int dp = 0; dp < HD / 16; ++dp) {
          uint32_t b[4];
          up_attn_ldmatrix_x4_trans(b, kv_addr[dp & 3] + 4 * BN * HD + v_stage + kk * 16 * HD * 2 + (dp >> 2) * 128);
          up_attn_mma_bf16(o[2 * dp], pa[kk], b[0], b[1]);
          up_attn_mma_bf16(o[2 * dp + 1], pa[kk], b[2], b[3]);
        }
      }
    }
    j = jn;
    cur = nxt;
  }
  up_attn_cp_async_wait<0>();

  /* Normalise into the warp's own rows of the Q tile, then write whole 16-byte chunks
   * (the dense kernel's epilogue, attn_common.cuh). */
  __syncwarp();
  up_attn_stage_rows16<HD>(o, l, q_s, warp * 16);
  __syncwarp();
  up_attn_write_staged<HD, 16>(q_s, warp * 16, p.a, (int64_t)row0 + warp_row, q_end - warp_row, h);
}

template <int HD, int BN, int MIN_CTAS>
void launch(cudaStream_t stream, const sparse_params &p, int32_t n_heads, int64_t ctas) {
  const size_t smem = (size_t)(SPARSE_BM * HD + 4 * BN * HD) * sizeof(__nv_bfloat16) + 2 * BN * sizeof(int32_t);
  UP_CUDA_CHECK(cudaFuncSetAttribute(sparse_attention_kernel<HD, BN, MIN_CTAS>,
                                     cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  const dim3 grid((unsigned)n_heads, (unsigned)ctas);
  sparse_attention_kernel<HD, BN, MIN_CTAS><<<grid, SPARSE_THREADS, smem, stream>>>(p);
  UP_CUDA_CHECK_LAUNCH();
}

/* Whether the pattern runs on the TMA kernel's listed schedule (the file's head). */
bool listed_on_hopper(const up_cuda_backend *cb, const up_kv_pool *pool, const up_attn_shape *shape,
                      const up_sparse_pattern *pattern) {
  const int v = cb->attn_prefill_variant;
  const bool tma_chosen = v < UP_ATTN_PREFILL_MMA_SYNC_V1 || v > UP_ATTN_PREFILL_LAST || v >= UP_ATTN_PREFILL_SM90_TMA;
  return tma_chosen && pattern->column_capacity == 0 &&
         up_cuda_attention_prefill_sm90_tma_lists_fit(pool, shape->head_dim, pattern->block_q) &&
         up_cuda_attention_prefill_sm90_available();
}

} /* namespace */

extern "C" void up_cuda_sparse_attention(up_backend *be, void *out, const void *qkv, const up_kv_pool *pool,
                                         const up_attn_batch *batch, const up_attn_shape *shape,
                                         const up_sparse_pattern *pattern) {
  if (pattern->n_seqs != batch->n_seqs || pattern->n_heads != shape->n_heads || pattern->block_q <= 0 ||
      pattern->block_k <= 0)
    UP_FATAL("sparse attention: pattern of %d sequences x %d heads (blocks %d x %d) for a batch of %d x %d",
             (int)pattern->n_seqs, (int)pattern->n_heads, (int)pattern->block_q, (int)pattern->block_k,
             (int)batch->n_seqs, (int)shape->n_heads);
  if (batch->n_tokens <= 0 || batch->n_seqs <= 0) return;
  up_cuda_backend *cb = up_cuda_impl(be);
  if (listed_on_hopper(cb, pool, shape, pattern)) {
    const up_attn_key_lists lists = {pattern->qblock_start, pattern->range_ptr, pattern->range_start,
                                     pattern->block_q, pattern->block_k,
                                     pattern->qblock_start_host[pattern->n_seqs] * (pattern->block_q / UP_ATTN_SM90_QUERY_ROWS),
                                     cb->index_error};
    up_cuda_attention_prefill_sm90_tma_lists(cb->stream, out, qkv, pool, batch, shape, &lists);
    return;
  }
  sparse_params p;
  p.a = up_attn_args_make(out, qkv, pool, batch, shape);
  p.qblock_start = pattern->qblock_start;
  p.range_ptr = pattern->range_ptr;
  p.range_start = pattern->range_start;
  p.column_ptr = pattern->column_ptr;
  p.column_index = pattern->column_index;
  p.block_q = pattern->block_q;
  p.block_k = pattern->block_k;
  p.sub_tiles = (pattern->block_q + SPARSE_BM - 1) / SPARSE_BM;
  const int64_t sparse_ctas = (int64_t)pattern->qblock_start_host[pattern->n_seqs] * p.sub_tiles;
  const int64_t ctas = sparse_ctas + (int64_t)batch->n_tokens / SPARSE_BM + batch->n_seqs;
  if (ctas > 65535)
    UP_FATAL("sparse attention: %lld query tiles exceed the grid limit 65535 (%d tokens, %d sequences)",
             (long long)ctas, (int)batch->n_tokens, (int)batch->n_seqs);
  p.sparse_ctas = (int32_t)sparse_ctas;
  p.error = cb->index_error;
  /* head_dim 256 doubles the accumulators: 32-key tiles keep the registers and shared
   * memory of two CTAs per SM. Head_dim 64 (SmolLM2) takes the 128's tiles at half the
   * width (the dense mma.sync kernel's 64-key tiles at that size). */
  switch (shape->head_dim) {
    case 64: launch<64, 64, 2>(cb->stream, p, shape->n_heads, ctas); break;
    case 128: launch<128, 64, 2>(cb->stream, p, shape->n_heads, ctas); break;
    case 256: launch<256, 32, 2>(cb->stream, p, shape->n_heads, ctas); break;
    default:
      UP_FATAL("sparse attention: head_dim %d not supported by the CUDA kernel (64, 128, 256)", shape->head_dim);
  }
}
