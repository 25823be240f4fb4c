/* flexprefill_estimate.cu — FlexPrefill's block selection on the GPU
 * (kernels/sparse_attention_ops.h, UP_FLEXPREFILL_ESTIMATE_KERNEL; the CPU reference is
 * kernels/cpu/sparse_flexprefill.c). Every step runs for all (head, sequence) pairs at
 * once, with one small host copy per layer and no per-head host loop:
 * 1. last-block distributions, over (query block, head) CTAs: the last `block` query
 *    rows' logits against each block of keys (bf16 products summed in float64 in the
 *    reference's order, rounded to bf16, kept as bf16), each row's maximum and softmax
 *    sum, then the token-level vertical and slash sums, rows added in the reference's
 *    order, so the sums match it bit for bit (the softmax denominator is a tree sum: it
 *    may move a probability by one float ulp).
 * 2. CUB's segmented radix sort orders each (distribution, head, sequence) descending.
 * 3. selection: one CTA per (head, sequence) counts the gamma cover of both sorted
 *    distributions, pools them into 128-blocks, runs the Jensen-Shannon test against
 *    softmax(mean query . mean-pooled keys), picks the top vertical and slash blocks
 *    (ties to the lower index) and writes the (query block, key block) mask; then one
 *    CTA per (query block, head) of a query-aware head writes that block's row of the
 *    block-causal pooled attention.
 * 4. a second segmented sort ranks each query-aware head's pooled attention (stable, so
 *    ties keep the lower index), and one thread per head adds its global gamma*nb cover.
 * 5. under a density cap, each block's score vertB[kb] + slashB[nb-1-(b-kb)] (the block
 *    sums step 3 left before forcing block 0 and the diagonal) ranks the mask's blocks
 *    across the query blocks of each (sequence, head), and the cap clears the rest
 *    (sparse_block_cap.cu);
 * 6. one thread per list row turns its mask row into key ranges and covered pairs
 *    (sparse_block_cap.cu); CUB's scan writes range_ptr (sparse_estimate_common.cuh). */
#include <cub/cub.cuh>
#include <math.h>

#include "kernels/cuda/attention/attn_common.cuh"
#include "kernels/cuda/cuda_backend_impl.h"
#include "kernels/cuda/sparse/sparse_block_cap.cuh"
#include "kernels/cuda/sparse/sparse_cuda.h"
#include "kernels/cuda/sparse/sparse_estimate_common.cuh"

namespace {

constexpr int FP_THREADS = 256;
constexpr int FP_MAX_QBLOCKS = 1024; /* the selection keeps a sequence's block sums in shared memory */
constexpr int FP_MAX_HEAD_DIM = 256;
constexpr int FP_MAX_LAST_ROWS = 128;     /* step 1's query rows: the last block's */
constexpr int64_t FP_LOGITS_BYTES = 512ll << 20; /* step 1's logits of one pass of heads */

struct fp_params {
  const __nv_bfloat16 *qkv;
  const __nv_bfloat16 *k_pool;
  const int32_t *cu_seqlens, *kv_lens, *block_tables;
  const int32_t *qblock_start;
  int64_t qkv_stride;
  int32_t n_seqs, n_heads, group, head_dim, kv_dim, max_blocks_per_seq;
  up_attn_divider block_tokens;
  int32_t block;          /* B */
  int32_t max_nq;         /* a mask row's length */
  int64_t tokens;         /* token slots per head: every query block's B */
  int64_t att_per_head;   /* sum over sequences of nq^2 */
  double inv_sqrt_d;
  double gamma, tau;
  int32_t min_blocks, max_budget;
  double *dist;           /* [2][n_heads][tokens]: vertical, then slash by token */
  double *dist_sorted;    /* the same, each segment descending */
  int32_t *dist_begin, *dist_end; /* [2 * n_heads * n_seqs] segments (distribution, head, sequence) */
  __nv_bfloat16 *logits;  /* [heads of a pass][block][tokens]: the last rows' logits (step 1) */
  double *row_stats;      /* [heads of a pass][n_seqs][block][2]: each last row's maximum and sum */
  int32_t head0;          /* step 1: the pass's first head */
  float *kbar;            /* [n_heads][total query blocks][head_dim] mean-pooled keys */
  float *att, *att_sorted;
  int32_t *att_index, *att_index_sorted;
  int32_t *att_begin, *att_end; /* [n_heads * n_seqs]; empty unless query-aware */
  uint8_t *mask;          /* [n_list_rows][max_nq] */
  double *vert_blocks, *slash_blocks; /* [n_heads][total query blocks]: the cap's block sums (NULL: no cap) */
  up_cuda_index_error *error;
};

__device__ __forceinline__ float round_bf16(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }

__device__ __forceinline__ float bf16_at(const __nv_bfloat16 *x) { return __bfloat162float(*x); }

/* Where sequence s's rows start, its rows, first query block and query blocks. */
struct fp_seq {
  int32_t row0, n, qb0, nb;
};

__device__ __forceinline__ fp_seq seq_of(const fp_params &p, int32_t s) {
  fp_seq q;
  q.row0 = __ldg(p.cu_seqlens + s);
  q.n = __ldg(p.cu_seqlens + s + 1) - q.row0;
  q.qb0 = __ldg(p.qblock_start + s);
  q.nb = __ldg(p.qblock_start + s + 1) - q.qb0;
  return q;
}

/* Whether the sequence has a pattern of the right shape (the first kernel reports it). */
__device__ __forceinline__ bool seq_live(const fp_params &p, int32_t s, const fp_seq &q) {
  return q.nb > 0 && __ldg(p.kv_lens + s) == q.n && q.nb == (q.n + p.block - 1) / p.block;
}

/* Key row t of kv head g (bf16 values in the pool). */
__device__ __forceinline__ const __nv_bfloat16 *key_row(const fp_params &p, const int32_t *block_table, int32_t t,
                                                        int32_t g) {
  return p.k_pool + up_attn_entry_offset(block_table, t, p.block_tokens, p.kv_dim) + (int64_t)g * p.head_dim;
}

/* sum_c a[c] * b[c] in float64, c ascending. */
__device__ __forceinline__ double dot_key_f(const float *a, const float *b, int32_t d) {
  double acc = 0.0;
  for (int32_t c = 0; c < d; ++c) acc += (double)a[c] * (double)b[c];
  return acc;
}

/* The CTA's maximum (is_max) or sum of v; shared holds 33 doubles. */
template <bool is_max>
__device__ double block_reduce(double v, double *shared) {
  for (int off = 16; off > 0; off >>= 1) {
    const double o = __shfl_xor_sync(0xffffffffu, v, off);
    v = is_max ? fmax(v, o) : v + o;
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
  __syncthreads(); /* a previous call's readers are done */
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < (int)(blockDim.x / 32) ? shared[lane] : (is_max ? -INFINITY : 0.0);
    for (int off = 16; off > 0; off >>= 1) {
      const double o = __shfl_xor_sync(0xffffffffu, v, off);
      v = is_max ? fmax(v, o) : v + o;
    }
    if (lane == 0) shared[32] = v;
  }
  __syncthreads();
  return shared[32];
}

/* Step 1, split so every SM works and the keys are read once per chunk, coalesced
 * (one CTA per head walking every key 128 times, each thread its own key row: about
 * 190 ms a layer at 32K on an H100). Every value is the one the single-CTA walk computed:
 * - fp_prepare (heads x sequences): the sort segments, and a sequence of the wrong
 *   shape reported;
 * - fp_chunk_logits (query blocks x heads of the pass): the bf16 logits of the last lq
 *   rows against the block's 128 keys, each dot in float64 with c ascending (the
 *   products of bf16 values are exact, so an FMA or a multiply and add give the same
 *   sum), stored as bf16 (they are bf16 values) in `logits`;
 * - fp_row_stats (rows x sequences x heads of the pass, 256 threads): each row's
 *   maximum and softmax sum with the same thread-strided partial sums and the same
 *   block reduction as the walk, so both are its bits;
 * - fp_column_sums (query blocks x heads of the pass, a thread per key or per offset): each probability (float, as the reference) over lq added row after row,
 *   the reference's order, into the vertical sums and the slash sums (the latter
 *   written by token, n - 1 - offset, as the walk left them).
 * The logits take 2 lq bytes a key per head, so heads run in passes that keep them
 * under FP_LOGITS_BYTES. */
__global__ void fp_prepare(const fp_params p) {
  const int32_t h = blockIdx.x, s = blockIdx.y, B = p.block;
  const fp_seq q = seq_of(p, s);
  const int32_t n_segs = p.n_heads * p.n_seqs, seg = h * p.n_seqs + s;
  const int64_t begin = (int64_t)h * p.tokens + (int64_t)q.qb0 * B;
  const bool live = q.nb > 0 && up_sparse_sequence_ok(p.error, s, q.n, __ldg(p.kv_lens + s), q.nb, B);
  if (threadIdx.x == 0) {
    const int64_t len = live ? q.n : 0;
    p.dist_begin[seg] = (int32_t)begin, p.dist_end[seg] = (int32_t)(begin + len);
    const int64_t slash_begin = begin + (int64_t)p.n_heads * p.tokens;
    p.dist_begin[n_segs + seg] = (int32_t)slash_begin, p.dist_end[n_segs + seg] = (int32_t)(slash_begin + len);
  }
}

constexpr int FP_TILE_ROWS = 8; /* a thread's logits: 8 rows x 4 keys (keys kg + 32 x) */
constexpr int FP_TILE_KEYS = 4;
constexpr int FP_CHUNK = 128;   /* keys per fp_chunk_logits CTA: the method's block */
static_assert(FP_TILE_KEYS * 32 == FP_CHUNK && FP_MAX_LAST_ROWS == FP_CHUNK && FP_MAX_LAST_ROWS % FP_TILE_ROWS == 0,
              "a CTA's tiles cover the block's rows and keys");

/* logits[(hl * block + r) * tokens + token slot] (bf16) of head h = head0 + hl. */
__device__ __forceinline__ int64_t logit_at(const fp_params &p, int32_t hl, int32_t r, int64_t slot) {
  return ((int64_t)hl * p.block + r) * p.tokens + slot;
}

__global__ void __launch_bounds__(FP_THREADS) fp_chunk_logits(const fp_params p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int32_t qbg = blockIdx.x, hl = blockIdx.y, h = p.head0 + hl, B = p.block, d = p.head_dim;
  const int32_t s = up_sparse_qblock_seq(p.qblock_start, p.n_seqs, qbg);
  const fp_seq q = seq_of(p, s);
  if (!seq_live(p, s, q)) return; /* reported by fp_prepare */
  const int32_t n = q.n, lq = B < n ? B : n, b = qbg - q.qb0, k0 = b * FP_CHUNK, g = h / p.group;
  const int32_t key_stride = d + 2; /* bf16 entries a key row takes: odd words, so a warp's 32 keys hit 32 banks */
  float *qs = (float *)smem_raw;                                        /* [B][d] */
  __nv_bfloat16 *ks = (__nv_bfloat16 *)(qs + (int64_t)B * d);          /* [FP_CHUNK][d + 2] */
  const int32_t *block_table = p.block_tables + (int64_t)s * p.max_blocks_per_seq;
  for (int32_t x = threadIdx.x; x < B * d; x += blockDim.x) {
    const int32_t r = x / d, c = x % d, i = n - lq + r; /* rows past lq: zeros, never written out */
    qs[x] = r >= lq ? 0.0f
                    : round_bf16((float)((double)bf16_at(p.qkv + (int64_t)(q.row0 + i) * p.qkv_stride +
                                                         (int64_t)h * d + c) *
                                         p.inv_sqrt_d));
  }
  for (int32_t x = threadIdx.x; x < FP_CHUNK * (d / 2); x += blockDim.x) {
    const int32_t kk = x / (d / 2), c2 = x % (d / 2), j = k0 + kk;
    __nv_bfloat162 v = __floats2bfloat162_rn(0.0f, 0.0f);
    if (j < n) v = ((const __nv_bfloat162 *)key_row(p, block_table, j, g))[c2];
    *(__nv_bfloat162 *)(ks + (int64_t)kk * key_stride + 2 * c2) = v;
  }
  __syncthreads();
  constexpr int row_groups = FP_MAX_LAST_ROWS / FP_TILE_ROWS, tiles = row_groups * 32;
  for (int32_t t = threadIdx.x; t < tiles; t += blockDim.x) {
    const int32_t r0 = (t / 32) * FP_TILE_ROWS, kg = t % 32;
    if (r0 >= lq) continue; /* a warp shares r0: the whole warp skips */
    double acc[FP_TILE_ROWS][FP_TILE_KEYS];
#pragma unroll
    for (int a = 0; a < FP_TILE_ROWS; ++a)
#pragma unroll
      for (int k = 0; k < FP_TILE_KEYS; ++k) acc[a][k] = 0.0;
    for (int32_t c = 0; c < d; c += 2) {
      double kx[FP_TILE_KEYS], ky[FP_TILE_KEYS];
#pragma unroll
      for (int k = 0; k < FP_TILE_KEYS; ++k) {
        const float2 kv = __bfloat1622float2(*(const __nv_bfloat162 *)(ks + (int64_t)(kg + 32 * k) * key_stride + c));
        kx[k] = (double)kv.x, ky[k] = (double)kv.y;
      }
#pragma unroll
      for (int a = 0; a < FP_TILE_ROWS; ++a) {
        const float2 qv = *(const float2 *)(qs + (int64_t)(r0 + a) * d + c);
        const double qx = (double)qv.x, qy = (double)qv.y;
#pragma unroll
        for (int k = 0; k < FP_TILE_KEYS; ++k) {
          acc[a][k] += qx * kx[k]; /* element c, then c + 1: the reference's order */
          acc[a][k] += qy * ky[k];
        }
      }
    }
#pragma unroll
    for (int a = 0; a < FP_TILE_ROWS; ++a) {
      const int32_t r = r0 + a, i = n - lq + r;
#pragma unroll
      for (int k = 0; k < FP_TILE_KEYS; ++k) {
        const int32_t j = k0 + kg + 32 * k;
        if (r < lq && j <= i)
          p.logits[logit_at(p, hl, r, (int64_t)q.qb0 * B + j)] = __float2bfloat16_rn(round_bf16((float)acc[a][k]));
      }
    }
  }
}

/* The row's maximum and softmax sum, as the single-CTA walk took them: thread t's
 * keys t, t + 256, ... then block_reduce (blockDim must be FP_THREADS). */
__global__ void __launch_bounds__(FP_THREADS) fp_row_stats(const fp_params p) {
  __shared__ double red[33];
  const int32_t r = blockIdx.x, s = blockIdx.y, hl = blockIdx.z, B = p.block;
  const fp_seq q = seq_of(p, s);
  if (!seq_live(p, s, q)) return;
  const int32_t n = q.n, lq = B < n ? B : n, i = n - lq + r;
  if (r >= lq) return; /* the whole CTA: block_reduce's barriers stay uniform */
  const __nv_bfloat16 *row = p.logits + logit_at(p, hl, r, (int64_t)q.qb0 * B);
  double mx = -INFINITY;
  for (int32_t j = threadIdx.x; j <= i; j += blockDim.x) mx = fmax(mx, (double)__bfloat162float(row[j]));
  mx = block_reduce<true>(mx, red);
  double z = 0.0;
  for (int32_t j = threadIdx.x; j <= i; j += blockDim.x) z += exp((double)__bfloat162float(row[j]) - mx);
  z = block_reduce<false>(z, red);
  if (threadIdx.x == 0) {
    double *st = p.row_stats + (((int64_t)hl * p.n_seqs + s) * B + r) * 2;
    st[0] = mx, st[1] = z;
  }
}

/* Probability of (row r, key j) as the walk rounded it. */
__device__ __forceinline__ double fp_prob(const __nv_bfloat16 *logits, const double *stats, int32_t r, int64_t at) {
  return (double)(float)(exp((double)__bfloat162float(logits[at]) - stats[2 * r]) / stats[2 * r + 1]);
}

/* kind 0: vertical sums of keys [k0, k0 + 128); kind 1: slash sums of offsets
 * [k0, k0 + 128), written at token n - 1 - offset. Rows in order, as the walk added them. */
__global__ void fp_column_sums(const fp_params p, int kind) {
  __shared__ double stats[2 * FP_MAX_LAST_ROWS];
  const int32_t qbg = blockIdx.x, hl = blockIdx.y, h = p.head0 + hl, B = p.block;
  const int32_t s = up_sparse_qblock_seq(p.qblock_start, p.n_seqs, qbg);
  const fp_seq q = seq_of(p, s);
  if (!seq_live(p, s, q)) return;
  const int32_t n = q.n, lq = B < n ? B : n, b = qbg - q.qb0;
  const double *st = p.row_stats + ((int64_t)hl * p.n_seqs + s) * B * 2;
  for (int32_t x = threadIdx.x; x < 2 * lq; x += blockDim.x) stats[x] = st[x];
  __syncthreads();
  const int32_t x = b * FP_CHUNK + (int32_t)threadIdx.x; /* the key (kind 0) or offset (kind 1) */
  if (threadIdx.x >= FP_CHUNK || x >= n) return;
  const int64_t slot0 = (int64_t)q.qb0 * B;
  const int64_t begin = (int64_t)h * p.tokens + slot0;
  double acc = 0.0;
  for (int32_t r = 0; r < lq; ++r) {
    const int32_t i = n - lq + r, j = kind == 0 ? x : i - x;
    if (kind == 0 ? j > i : j < 0) continue;
    acc += fp_prob(p.logits, stats, r, logit_at(p, hl, r, slot0 + j)) / lq;
  }
  if (kind == 0)
    p.dist[begin + x] = acc;
  else
    p.dist[(int64_t)p.n_heads * p.tokens + begin + (n - 1 - x)] = acc;
}

/* Tokens covering gamma of a descending distribution: prefix sums <= gamma, plus one. */
__device__ int32_t cover_count(const double *sorted, int32_t n, double gamma) {
  double sum = 0.0;
  int32_t count = 0;
  for (int32_t i = 0; i < n; ++i) {
    sum += sorted[i];
    if (sum > gamma) break; /* the sums only grow */
    ++count;
  }
  return count + 1;
}

/* Whether x[j] is among the top k of x[0 .. nb) (descending, ties to the lower index). */
__device__ __forceinline__ bool in_top(const double *x, int32_t nb, int32_t j, int32_t k) {
  int32_t ahead = 0;
  for (int32_t m = 0; m < nb && ahead < k; ++m) ahead += x[m] > x[j] || (x[m] == x[j] && m < j);
  return ahead < k;
}

/* Step 3 (grid: heads x sequences). */
__global__ void __launch_bounds__(FP_THREADS) fp_select(const fp_params p) {
  __shared__ double vert_b[FP_MAX_QBLOCKS], slash_b[FP_MAX_QBLOCKS], a_est[FP_MAX_QBLOCKS];
  __shared__ float qv[FP_MAX_HEAD_DIM];
  __shared__ uint8_t vsel[FP_MAX_QBLOCKS], ssel[FP_MAX_QBLOCKS];
  __shared__ int32_t counts_s[2];
  __shared__ int32_t query_aware_s;
  const int32_t h = blockIdx.x, s = blockIdx.y, B = p.block, d = p.head_dim;
  const fp_seq q = seq_of(p, s);
  const int32_t seg = h * p.n_seqs + s;
  int64_t att_base = (int64_t)h * p.att_per_head;
  for (int32_t x = 0; x < s; ++x) {
    const int64_t nq = __ldg(p.qblock_start + x + 1) - __ldg(p.qblock_start + x);
    att_base += nq * nq;
  }
  if (!seq_live(p, s, q)) {
    if (threadIdx.x == 0) p.att_begin[seg] = p.att_end[seg] = (int32_t)att_base;
    return;
  }
  const int32_t n = q.n, nb = q.nb, lq = B < n ? B : n, g = h / p.group;
  const int64_t begin = (int64_t)h * p.tokens + (int64_t)q.qb0 * B, slash_off = (int64_t)p.n_heads * p.tokens;
  const double *vert = p.dist + begin, *slash = p.dist + slash_off + begin;
  const int32_t *block_table = p.block_tables + (int64_t)s * p.max_blocks_per_seq;
  float *kbar = p.kbar + ((int64_t)h * (p.tokens / B) + q.qb0) * d;
  const __nv_bfloat16 *q_rows = p.qkv + (int64_t)q.row0 * p.qkv_stride + (int64_t)h * d;

  if (threadIdx.x == 0) counts_s[0] = cover_count(p.dist_sorted + begin, n, p.gamma);
  if (threadIdx.x == 32) counts_s[1] = cover_count(p.dist_sorted + slash_off + begin, n, p.gamma);
  for (int32_t b = threadIdx.x; b < nb; b += blockDim.x) {
    const int32_t end = (b + 1) * B < n ? (b + 1) * B : n;
    double v = 0.0, sl = 0.0;
    for (int32_t t = b * B; t < end; ++t) v += vert[t], sl += slash[t];
    vert_b[b] = v, slash_b[b] = sl;
    if (p.vert_blocks) {
      const int64_t at = (int64_t)h * (p.tokens / B) + q.qb0 + b;
      p.vert_blocks[at] = v, p.slash_blocks[at] = sl;
    }
  }
  for (int32_t x = threadIdx.x; x < nb * d; x += blockDim.x) {
    const int32_t b = x / d, c = x % d, end = (b + 1) * B < n ? (b + 1) * B : n;
    double sum = 0.0;
    for (int32_t t = b * B; t < end; ++t) sum += bf16_at(key_row(p, block_table, t, g) + c);
    kbar[(int64_t)b * d + c] = round_bf16((float)(sum / (end - b * B)));
  }
  for (int32_t c = threadIdx.x; c < d; c += blockDim.x) {
    double sum = 0.0;
    for (int32_t t = n - lq; t < n; ++t)
      sum += round_bf16((float)((double)bf16_at(q_rows + (int64_t)t * p.qkv_stride + c) * p.inv_sqrt_d));
    qv[c] = round_bf16((float)(sum / lq));
  }
  __syncthreads();
  for (int32_t b = threadIdx.x; b < nb; b += blockDim.x)
    a_est[b] = round_bf16((float)dot_key_f(qv, kbar + (int64_t)b * d, d));
  __syncthreads();
  if (threadIdx.x == 0) {
    double mx = -INFINITY, sum = 0.0;
    for (int32_t b = 0; b < nb; ++b) mx = fmax(mx, a_est[b]);
    for (int32_t b = 0; b < nb; ++b) sum += exp(a_est[b] - mx);
    double ja = 0.0, jb = 0.0; /* sqrt Jensen-Shannon; an entry of 0 gives NaN: not query-aware */
    for (int32_t b = 0; b < nb; ++b) {
      const double pa = (double)(float)(exp(a_est[b] - mx) / sum), m = (pa + vert_b[b]) / 2.0;
      ja += pa * log(pa / m);
      jb += vert_b[b] * log(vert_b[b] / m);
    }
    const int32_t query_aware = sqrt(0.5 * ja + 0.5 * jb) < p.tau;
    int32_t max_blocks = p.max_budget > 0 ? (p.max_budget + B - 1) / B : nb;
    if (max_blocks > nb) max_blocks = nb;
    int32_t nv = counts_s[0] / 128 + 1, ns = counts_s[1] / 128 + 1;
    nv = nv < p.min_blocks ? p.min_blocks : nv;
    nv = nv > max_blocks ? max_blocks : nv;
    ns = ns < p.min_blocks ? p.min_blocks : ns;
    ns = ns > max_blocks ? max_blocks : ns;
    if (query_aware) nv = ns = p.min_blocks < nb ? p.min_blocks : nb;
    counts_s[0] = nv, counts_s[1] = ns, query_aware_s = query_aware;
    vert_b[0] = INFINITY;
    slash_b[nb - 1] = INFINITY;
  }
  __syncthreads();
  for (int32_t j = threadIdx.x; j < nb; j += blockDim.x) {
    vsel[j] = in_top(vert_b, nb, j, counts_s[0]);
    ssel[j] = in_top(slash_b, nb, j, counts_s[1]);
  }
  __syncthreads();
  for (int32_t x = threadIdx.x; x < nb * nb; x += blockDim.x) {
    const int32_t r = x / nb, j = x % nb;
    if (j <= r)
      p.mask[((int64_t)(q.qb0 + r) * p.n_heads + h) * p.max_nq + j] =
          vsel[j] || ssel[nb - 1 - (r - j)] || (r == 0 && j == 0);
  }
  const bool query_aware = query_aware_s != 0;
  if (threadIdx.x == 0) {
    p.att_begin[seg] = (int32_t)att_base;
    p.att_end[seg] = (int32_t)(att_base + (query_aware ? (int64_t)nb * nb : 0));
  }
}

/* Step 3b (grid: query blocks x heads): a query-aware head's block-causal pooled
 * attention, one CTA per query block i (thread 0 of one CTA per head walked every row
 * serially: ~33K float64 exponentials a head at 32K). Row i: the zero-padded mean query
 * of block i (the last rescaled to its rows), scaled, against the pooled keys of
 * fp_select; the maximum by a block reduction (exact in any order), the exponentials in
 * parallel, their sum by one thread in the reference's order, so the probabilities are
 * the serial walk's bits. */
__global__ void __launch_bounds__(FP_THREADS) fp_pooled_rows(const fp_params p) {
  __shared__ float qv[FP_MAX_HEAD_DIM];
  __shared__ double ex[FP_MAX_QBLOCKS];
  __shared__ double red[33];
  __shared__ double z_s;
  const int32_t qbg = blockIdx.x, h = blockIdx.y, B = p.block, d = p.head_dim;
  const int32_t s = up_sparse_qblock_seq(p.qblock_start, p.n_seqs, qbg), seg = h * p.n_seqs + s;
  const int32_t begin = p.att_begin[seg];
  if (p.att_end[seg] == begin) return; /* not query-aware (or not live): the whole CTA */
  const fp_seq q = seq_of(p, s);
  const int32_t n = q.n, nb = q.nb, i = qbg - q.qb0;
  const int32_t end = (i + 1) * B < n ? (i + 1) * B : n, rows = end - i * B;
  const float *kbar = p.kbar + ((int64_t)h * (p.tokens / B) + q.qb0) * d;
  const __nv_bfloat16 *q_rows = p.qkv + (int64_t)q.row0 * p.qkv_stride + (int64_t)h * d;
  float *att = p.att + begin + (int64_t)i * nb;
  int32_t *att_index = p.att_index + begin + (int64_t)i * nb;
  for (int32_t c = threadIdx.x; c < d; c += blockDim.x) {
    double sum = 0.0;
    for (int32_t t = i * B; t < end; ++t) sum += bf16_at(q_rows + (int64_t)t * p.qkv_stride + c);
    float v = round_bf16((float)(sum / B));
    if (rows < B) v = round_bf16(round_bf16(v * (float)B) / (float)rows);
    qv[c] = round_bf16((float)(v * p.inv_sqrt_d));
  }
  __syncthreads();
  double mx = -INFINITY;
  for (int32_t j = threadIdx.x; j < nb; j += blockDim.x) {
    const float logit = j <= i ? round_bf16((float)dot_key_f(qv, kbar + (int64_t)j * d, d)) : 0.0f;
    att[j] = logit;
    att_index[j] = i * nb + j;
    if (j <= i) ex[j] = (double)logit, mx = fmax(mx, (double)logit);
  }
  mx = block_reduce<true>(mx, red);
  for (int32_t j = threadIdx.x; j <= i; j += blockDim.x) ex[j] = exp(ex[j] - mx);
  __syncthreads();
  if (threadIdx.x == 0) {
    double z = 0.0;
    for (int32_t j = 0; j <= i; ++j) z += ex[j];
    z_s = z;
  }
  __syncthreads();
  for (int32_t j = threadIdx.x; j <= i; j += blockDim.x) att[j] = (float)(ex[j] / z_s);
}

/* Step 4 (grid: heads x sequences, one working thread): the global cover of a
 * query-aware head's ranked pooled attention. */
__global__ void fp_global_cover(const fp_params p) {
  const int32_t h = blockIdx.x, s = blockIdx.y, seg = h * p.n_seqs + s;
  if (threadIdx.x != 0) return;
  const int32_t begin = p.att_begin[seg], end = p.att_end[seg];
  if (begin == end) return;
  const fp_seq q = seq_of(p, s);
  const double limit = p.gamma * q.nb;
  double cum = 0.0;
  for (int32_t k = begin; k < end; ++k) {
    cum += p.att_sorted[k];
    if (cum > limit) break;
    const int32_t idx = p.att_index_sorted[k], i = idx / q.nb, j = idx % q.nb;
    if (j <= i) p.mask[((int64_t)(q.qb0 + i) * p.n_heads + h) * p.max_nq + j] = 1;
  }
}

/* Step 5 under a cap (one thread per list row): the score of each causal block, the
 * reference's vertB[kb] + slashB[nb - 1 - (b - kb)] in float64. */
__global__ void fp_cap_scores(const fp_params p, int64_t n_rows, double *score) {
  const int64_t row = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (row >= n_rows) return;
  const int32_t qb_global = (int32_t)(row / p.n_heads), h = (int32_t)(row % p.n_heads);
  const int32_t s = up_sparse_qblock_seq(p.qblock_start, p.n_seqs, qb_global);
  const fp_seq q = seq_of(p, s);
  const int32_t b = qb_global - q.qb0;
  const double *vb = p.vert_blocks + (int64_t)h * (p.tokens / p.block) + q.qb0;
  const double *sb = p.slash_blocks + (int64_t)h * (p.tokens / p.block) + q.qb0;
  for (int32_t kb = 0; kb <= b; ++kb) score[row * p.max_nq + kb] = vb[kb] + sb[q.nb - 1 - (b - kb)];
}

}  // namespace

extern "C" double up_cuda_flexprefill_estimate(up_backend *be, up_sparse_pattern *pattern, const void *qkv,
                                               const up_kv_pool *pool, const up_attn_batch *batch,
                                               const up_attn_shape *shape, const up_flexprefill_params *params) {
  const int32_t B = params->block;
  if (pattern->block_q != B || pattern->block_k != B || B <= 0)
    UP_FATAL("flexprefill_estimate: the pattern's blocks are %d x %d, the method's %d", (int)pattern->block_q,
             (int)pattern->block_k, (int)B);
  if (B != FP_CHUNK) /* step 1's CTAs take one block of keys and the block's last rows */
    UP_FATAL("flexprefill_estimate: block %d is not the CUDA kernel's %d", (int)B, FP_CHUNK);
  if (shape->head_dim % 8 != 0 || shape->head_dim > FP_MAX_HEAD_DIM)
    UP_FATAL("flexprefill_estimate: head_dim %d is not a multiple of 8 up to %d", (int)shape->head_dim,
             FP_MAX_HEAD_DIM);
  up_cuda_backend *cb = up_cuda_impl(be);
  const cudaStream_t stream = cb->stream;
  if (up_sparse_pattern_empty(pattern, stream)) return 0.0;
  const int64_t n_rows = up_sparse_pattern_list_rows(pattern);
  int32_t max_nq = 0;
  int64_t att_per_head = 0;
  for (int32_t s = 0; s < pattern->n_seqs; ++s) {
    const int32_t nq = pattern->qblock_start_host[s + 1] - pattern->qblock_start_host[s];
    max_nq = nq > max_nq ? nq : max_nq;
    att_per_head += (int64_t)nq * nq;
  }
  if (max_nq > FP_MAX_QBLOCKS)
    UP_FATAL("flexprefill_estimate: a sequence of %d query blocks exceeds the CUDA kernel's %d", (int)max_nq,
             FP_MAX_QBLOCKS);
  const int32_t H = shape->n_heads, n_seqs = batch->n_seqs, d = shape->head_dim;
  const int64_t total_qb = pattern->qblock_start_host[pattern->n_seqs], tokens = total_qb * B;
  if (2 * H * tokens > INT32_MAX || H * att_per_head > INT32_MAX)
    UP_FATAL("flexprefill_estimate: %lld query blocks x %d heads exceed the sorts' int range", (long long)total_qb,
             (int)H);
  if (n_seqs > 65535) UP_FATAL("flexprefill_estimate: %d sequences exceed the grid limit", (int)n_seqs);

  up_sparse_scratch scratch;
  up_sparse_scratch_open(&scratch, stream);
  fp_params p;
  p.qkv = (const __nv_bfloat16 *)qkv;
  p.k_pool = (const __nv_bfloat16 *)pool->k;
  p.cu_seqlens = batch->cu_seqlens, p.kv_lens = batch->kv_lens, p.block_tables = batch->block_tables;
  p.qblock_start = pattern->qblock_start;
  p.qkv_stride = (int64_t)(H + 2 * shape->n_kv_heads) * d;
  p.n_seqs = n_seqs, p.n_heads = H, p.group = H / shape->n_kv_heads;
  p.head_dim = d, p.kv_dim = pool->kv_dim, p.max_blocks_per_seq = batch->max_blocks_per_seq;
  p.block_tokens = up_attn_divider_make(pool->block_tokens);
  p.block = B, p.max_nq = max_nq, p.tokens = tokens, p.att_per_head = att_per_head;
  p.inv_sqrt_d = 1.0 / sqrt((double)d);
  p.gamma = (double)params->gamma, p.tau = (double)params->tau;
  p.min_blocks = (params->min_budget + B - 1) / B, p.max_budget = params->max_budget;
  p.error = cb->index_error;
  const int64_t dist_items = 2 * H * tokens, att_items = H * att_per_head, n_segs = (int64_t)H * n_seqs;
  p.dist = (double *)up_sparse_scratch_take(&scratch, sizeof(double) * (size_t)(2 * dist_items), "flexprefill "
                                            "distributions");
  p.dist_sorted = p.dist + dist_items;
  int32_t *segments = (int32_t *)up_sparse_scratch_take(&scratch, sizeof(int32_t) * (size_t)(6 * n_segs),
                                                        "flexprefill sort segments");
  p.dist_begin = segments, p.dist_end = segments + 2 * n_segs;
  p.att_begin = segments + 4 * n_segs, p.att_end = segments + 5 * n_segs;
  /* step 1's logits, in passes of heads (see fp_prepare's comment) */
  const int64_t logit_bytes_per_head = (int64_t)B * tokens * (int64_t)sizeof(__nv_bfloat16);
  int32_t heads_per_pass = (int32_t)(FP_LOGITS_BYTES / logit_bytes_per_head);
  heads_per_pass = heads_per_pass < 1 ? 1 : heads_per_pass > H ? H : heads_per_pass;
  p.logits = (__nv_bfloat16 *)up_sparse_scratch_take(
      &scratch, (size_t)(logit_bytes_per_head * heads_per_pass), "flexprefill last-block logits");
  p.row_stats = (double *)up_sparse_scratch_take(
      &scratch, sizeof(double) * 2 * (size_t)B * (size_t)n_seqs * (size_t)heads_per_pass,
      "flexprefill last-block row statistics");
  p.head0 = 0;
  p.kbar = (float *)up_sparse_scratch_take(&scratch, sizeof(float) * (size_t)(H * total_qb * d),
                                           "flexprefill pooled keys");
  p.att = (float *)up_sparse_scratch_take(&scratch, sizeof(float) * (size_t)(2 * att_items), "flexprefill pooled "
                                          "attention");
  p.att_sorted = p.att + att_items;
  p.att_index = (int32_t *)up_sparse_scratch_take(&scratch, sizeof(int32_t) * (size_t)(2 * att_items),
                                                  "flexprefill pooled attention ranks");
  p.att_index_sorted = p.att_index + att_items;
  p.mask = (uint8_t *)up_sparse_scratch_take(&scratch, (size_t)(n_rows * max_nq), "flexprefill block mask");
  const bool capped = params->density_cap < 1.0f;
  p.vert_blocks = p.slash_blocks = NULL;
  if (capped) {
    p.vert_blocks = (double *)up_sparse_scratch_take(&scratch, sizeof(double) * 2 * (size_t)(H * total_qb),
                                                     "flexprefill cap block sums");
    p.slash_blocks = p.vert_blocks + H * total_qb;
  }
  int32_t *counts = (int32_t *)up_sparse_scratch_take(&scratch, sizeof(int32_t) * (size_t)n_rows,
                                                      "flexprefill counts");
  int32_t *kept = (int32_t *)up_sparse_scratch_take(&scratch, sizeof(int32_t) * (size_t)(n_rows * max_nq),
                                                    "flexprefill kept blocks");
  size_t dist_temp = 0, att_temp = 0;
  UP_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortKeysDescending(
      NULL, dist_temp, p.dist, p.dist_sorted, (int)dist_items, (int)(2 * n_segs), p.dist_begin, p.dist_end, 0,
      (int)(sizeof(double) * 8), stream));
  UP_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
      NULL, att_temp, p.att, p.att_sorted, p.att_index, p.att_index_sorted, (int)att_items, (int)n_segs, p.att_begin,
      p.att_end, 0, (int)(sizeof(float) * 8), stream));
  const size_t temp_bytes = dist_temp > att_temp ? dist_temp : att_temp;
  void *temp = up_sparse_scratch_take(&scratch, temp_bytes, "flexprefill sorts");

  const dim3 grid((unsigned)H, (unsigned)n_seqs);
  fp_prepare<<<grid, 32, 0, stream>>>(p);
  UP_CUDA_CHECK_LAUNCH();
  const size_t logits_smem = (size_t)B * d * sizeof(float) + (size_t)FP_CHUNK * (d + 2) * sizeof(__nv_bfloat16);
  UP_CUDA_CHECK(cudaFuncSetAttribute(fp_chunk_logits, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)logits_smem));
  for (int32_t head0 = 0; head0 < H; head0 += heads_per_pass) {
    fp_params pass = p;
    pass.head0 = head0;
    const unsigned heads = (unsigned)(H - head0 < heads_per_pass ? H - head0 : heads_per_pass);
    fp_chunk_logits<<<dim3((unsigned)total_qb, heads), FP_THREADS, logits_smem, stream>>>(pass);
    UP_CUDA_CHECK_LAUNCH();
    fp_row_stats<<<dim3((unsigned)B, (unsigned)n_seqs, heads), FP_THREADS, 0, stream>>>(pass);
    UP_CUDA_CHECK_LAUNCH();
    fp_column_sums<<<dim3((unsigned)total_qb, heads), FP_CHUNK, 0, stream>>>(pass, 0);
    UP_CUDA_CHECK_LAUNCH();
    fp_column_sums<<<dim3((unsigned)total_qb, heads), FP_CHUNK, 0, stream>>>(pass, 1);
    UP_CUDA_CHECK_LAUNCH();
  }
  UP_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortKeysDescending(
      temp, dist_temp, p.dist, p.dist_sorted, (int)dist_items, (int)(2 * n_segs), p.dist_begin, p.dist_end, 0,
      (int)(sizeof(double) * 8), stream));
  fp_select<<<grid, FP_THREADS, 0, stream>>>(p);
  UP_CUDA_CHECK_LAUNCH();
  fp_pooled_rows<<<dim3((unsigned)total_qb, (unsigned)H), FP_THREADS, 0, stream>>>(p);
  UP_CUDA_CHECK_LAUNCH();
  UP_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
      temp, att_temp, p.att, p.att_sorted, p.att_index, p.att_index_sorted, (int)att_items, (int)n_segs, p.att_begin,
      p.att_end, 0, (int)(sizeof(float) * 8), stream));
  fp_global_cover<<<grid, 32, 0, stream>>>(p);
  UP_CUDA_CHECK_LAUNCH();
  if (capped) {
    double *score = (double *)up_sparse_scratch_take(&scratch, sizeof(double) * (size_t)(n_rows * max_nq),
                                                     "flexprefill cap scores");
    fp_cap_scores<<<(unsigned)((n_rows + 127) / 128), 128, 0, stream>>>(p, n_rows, score);
    UP_CUDA_CHECK_LAUNCH();
    up_cuda_sparse_block_cap(&scratch, pattern, batch, p.mask, max_nq, NULL, score, params->density_cap);
  }
  up_cuda_sparse_lists_from_mask(&scratch, pattern, batch, p.mask, max_nq, B, counts, kept, max_nq,
                                 &scratch.totals->pairs);
  up_sparse_write_ranges(&scratch, pattern, counts, kept, max_nq, B, n_rows);
  return up_sparse_scratch_close(&scratch, be, pattern, "flexprefill_estimate");
}
