/* flexprefill_estimate.cu — FlexPrefill's block selection on the GPU
 * (kernels/sparse_attention_ops.h, UP_FLEXPREFILL_ESTIMATE_KERNEL; the CPU reference is
 * kernels/cpu/sparse_flexprefill.c). Every step runs for all (head, sequence) pairs at
 * once, with one small host copy per layer and no per-head host loop:
 * 1. last-block distributions: one CTA per (head, sequence) walks the last `block`
 *    query rows in order; for each it scores every causal key (bf16 products summed in
 *    float64 in the reference's order, rounded to bf16), takes the row's softmax and adds
 *    it to the token-level vertical and slash sums, rows in the reference's order, so
 *    the sums match it bit for bit (the softmax denominator is a tree sum: it may move
 *    a probability by one float ulp).
 * 2. CUB's segmented radix sort orders each (distribution, head, sequence) descending.
 * 3. selection: one CTA per (head, sequence) counts the gamma cover of both sorted
 *    distributions, pools them into 128-blocks, runs the Jensen-Shannon test against
 *    softmax(mean query . mean-pooled keys), picks the top vertical and slash blocks
 *    (ties to the lower index), writes the (query block, key block) mask, and for a
 *    query-aware head the block-causal pooled attention of every query block.
 * 4. a second segmented sort ranks each query-aware head's pooled attention (stable, so
 *    ties keep the lower index), and one thread per head adds its global gamma*nb cover.
 * 5. one thread per list row turns its mask row into key ranges and covered pairs;
 *    CUB's scan writes range_ptr (sparse_estimate_common.cuh).
 * The density cap is not on the GPU yet: this kernel refuses it by name. */
#include <cub/cub.cuh>
#include <math.h>

#include "kernels/cuda/attention/attn_common.cuh"
#include "kernels/cuda/cuda_backend_impl.h"
#include "kernels/cuda/sparse/sparse_cuda.h"
#include "kernels/cuda/sparse/sparse_estimate_common.cuh"

namespace {

constexpr int FP_THREADS = 256;
constexpr int FP_MAX_QBLOCKS = 1024; /* the selection keeps a sequence's block sums in shared memory */
constexpr int FP_MAX_HEAD_DIM = 256;

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
  float *scores;          /* [n_heads][tokens]: one last-block row's logits */
  float *kbar;            /* [n_heads][total query blocks][head_dim] mean-pooled keys */
  float *att, *att_sorted;
  int32_t *att_index, *att_index_sorted;
  int32_t *att_begin, *att_end; /* [n_heads * n_seqs]; empty unless query-aware */
  uint8_t *mask;          /* [n_list_rows][max_nq] */
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

/* sum_c a[c] * key[c] in float64, c ascending (the reference's order). */
__device__ __forceinline__ double dot_key(const float *a, const __nv_bfloat16 *key, int32_t d) {
  const __nv_bfloat162 *k2 = (const __nv_bfloat162 *)key;
  double acc = 0.0;
  for (int32_t c = 0; c < d / 2; ++c) {
    const float2 kv = __bfloat1622float2(k2[c]);
    acc += (double)a[2 * c] * (double)kv.x;
    acc += (double)a[2 * c + 1] * (double)kv.y;
  }
  return acc;
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

/* Step 1 (grid: heads x sequences). */
__global__ void __launch_bounds__(FP_THREADS) fp_last_rows(const fp_params p) {
  __shared__ float qs[FP_MAX_HEAD_DIM];
  __shared__ double red[33];
  const int32_t h = blockIdx.x, s = blockIdx.y, B = p.block, d = p.head_dim;
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
  if (!live) return;
  double *vert = p.dist + begin;
  double *slash = vert + (int64_t)p.n_heads * p.tokens; /* by offset i - j until the end */
  float *row = p.scores + begin;
  const int32_t *block_table = p.block_tables + (int64_t)s * p.max_blocks_per_seq;
  const int32_t g = h / p.group, n = q.n, lq = B < n ? B : n;
  for (int32_t t = threadIdx.x; t < n; t += blockDim.x) vert[t] = 0.0, slash[t] = 0.0;
  for (int32_t r = 0; r < lq; ++r) {
    const int32_t i = n - lq + r;
    __syncthreads(); /* the previous row's readers of qs and its slash writers are done */
    for (int32_t c = threadIdx.x; c < d; c += blockDim.x)
      qs[c] = round_bf16((float)((double)bf16_at(p.qkv + (int64_t)(q.row0 + i) * p.qkv_stride + (int64_t)h * d + c) *
                                 p.inv_sqrt_d));
    __syncthreads();
    double mx = -INFINITY;
    for (int32_t j = threadIdx.x; j <= i; j += blockDim.x) {
      const float v = round_bf16((float)dot_key(qs, key_row(p, block_table, j, g), d));
      row[j] = v;
      mx = fmax(mx, (double)v);
    }
    mx = block_reduce<true>(mx, red);
    double z = 0.0;
    for (int32_t j = threadIdx.x; j <= i; j += blockDim.x) z += exp((double)row[j] - mx);
    z = block_reduce<false>(z, red);
    /* thread j % T owns vert[j] in every row; offsets i - j are distinct within a row */
    for (int32_t j = threadIdx.x; j <= i; j += blockDim.x) {
      const double pr = (double)(float)(exp((double)row[j] - mx) / z);
      vert[j] += pr / lq;
      slash[i - j] += pr / lq;
    }
  }
  __syncthreads();
  /* token t of the slash vector is offset n-1-t */
  for (int32_t t = threadIdx.x; t < n / 2; t += blockDim.x) {
    const double a = slash[t];
    slash[t] = slash[n - 1 - t];
    slash[n - 1 - t] = a;
  }
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
  __shared__ double row_max_s, row_sum_s;
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
  if (!query_aware) return;
  /* block-causal pooled attention: zero-padded mean query of each block (the last
   * rescaled to its rows), scaled, against the pooled keys */
  float *att = p.att + att_base;
  int32_t *att_index = p.att_index + att_base;
  for (int32_t i = 0; i < nb; ++i) {
    const int32_t end = (i + 1) * B < n ? (i + 1) * B : n, rows = end - i * B;
    __syncthreads(); /* the previous row's readers of qv are done */
    for (int32_t c = threadIdx.x; c < d; c += blockDim.x) {
      double sum = 0.0;
      for (int32_t t = i * B; t < end; ++t) sum += bf16_at(q_rows + (int64_t)t * p.qkv_stride + c);
      float v = round_bf16((float)(sum / B));
      if (rows < B) v = round_bf16(round_bf16(v * (float)B) / (float)rows);
      qv[c] = round_bf16((float)(v * p.inv_sqrt_d));
    }
    __syncthreads();
    for (int32_t j = threadIdx.x; j < nb; j += blockDim.x) {
      att[(int64_t)i * nb + j] = j <= i ? round_bf16((float)dot_key_f(qv, kbar + (int64_t)j * d, d)) : 0.0f;
      att_index[(int64_t)i * nb + j] = i * nb + j;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      double mx = -INFINITY, z = 0.0;
      for (int32_t j = 0; j <= i; ++j) mx = fmax(mx, (double)att[(int64_t)i * nb + j]);
      for (int32_t j = 0; j <= i; ++j) z += exp((double)att[(int64_t)i * nb + j] - mx);
      row_max_s = mx, row_sum_s = z;
    }
    __syncthreads();
    for (int32_t j = threadIdx.x; j <= i; j += blockDim.x)
      att[(int64_t)i * nb + j] = (float)(exp((double)att[(int64_t)i * nb + j] - row_max_s) / row_sum_s);
  }
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

/* Step 5 (one thread per list row): the row's key blocks, ascending, and its pairs. */
__global__ void fp_rows(const fp_params p, int64_t n_rows, int32_t *counts, int32_t *kept, double *pairs) {
  const int64_t row = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (row >= n_rows) return;
  const int32_t qb_global = (int32_t)(row / p.n_heads);
  const int32_t s = up_sparse_qblock_seq(p.qblock_start, p.n_seqs, qb_global);
  const fp_seq q = seq_of(p, s);
  int32_t count = 0;
  double covered = 0.0;
  if (seq_live(p, s, q)) {
    const int32_t b = qb_global - q.qb0, m0 = b * p.block, m1 = m0 + p.block < q.n ? m0 + p.block : q.n;
    const double len = (double)(m1 - m0);
    const uint8_t *mask_row = p.mask + row * p.max_nq;
    for (int32_t kb = 0; kb <= b; ++kb)
      if (mask_row[kb]) {
        kept[row * p.max_nq + count++] = kb;
        covered += kb < b ? len * p.block : len * (len + 1) / 2;
      }
  }
  counts[row] = count;
  if (covered > 0.0) atomicAdd(pairs, covered);
}

}  // namespace

extern "C" double up_cuda_flexprefill_estimate(up_backend *be, up_sparse_pattern *pattern, const void *qkv,
                                               const up_kv_pool *pool, const up_attn_batch *batch,
                                               const up_attn_shape *shape, const up_flexprefill_params *params) {
  const int32_t B = params->block;
  if (pattern->block_q != B || pattern->block_k != B || B <= 0)
    UP_FATAL("flexprefill_estimate: the pattern's blocks are %d x %d, the method's %d", (int)pattern->block_q,
             (int)pattern->block_k, (int)B);
  if (params->density_cap < 1.0f)
    UP_FATAL("flexprefill_estimate: the density cap (%g) is not implemented on the CUDA backend yet; run without "
             "it or on the cpu backend", (double)params->density_cap);
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
  p.scores = (float *)up_sparse_scratch_take(&scratch, sizeof(float) * (size_t)(H * tokens), "flexprefill logits");
  p.kbar = (float *)up_sparse_scratch_take(&scratch, sizeof(float) * (size_t)(H * total_qb * d),
                                           "flexprefill pooled keys");
  p.att = (float *)up_sparse_scratch_take(&scratch, sizeof(float) * (size_t)(2 * att_items), "flexprefill pooled "
                                          "attention");
  p.att_sorted = p.att + att_items;
  p.att_index = (int32_t *)up_sparse_scratch_take(&scratch, sizeof(int32_t) * (size_t)(2 * att_items),
                                                  "flexprefill pooled attention ranks");
  p.att_index_sorted = p.att_index + att_items;
  p.mask = (uint8_t *)up_sparse_scratch_take(&scratch, (size_t)(n_rows * max_nq), "flexprefill block mask");
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
  fp_last_rows<<<grid, FP_THREADS, 0, stream>>>(p);
  UP_CUDA_CHECK_LAUNCH();
  UP_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortKeysDescending(
      temp, dist_temp, p.dist, p.dist_sorted, (int)dist_items, (int)(2 * n_segs), p.dist_begin, p.dist_end, 0,
      (int)(sizeof(double) * 8), stream));
  fp_select<<<grid, FP_THREADS, 0, stream>>>(p);
  UP_CUDA_CHECK_LAUNCH();
  UP_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
      temp, att_temp, p.att, p.att_sorted, p.att_index, p.att_index_sorted, (int)att_items, (int)n_segs, p.att_begin,
      p.att_end, 0, (int)(sizeof(float) * 8), stream));
  fp_global_cover<<<grid, 32, 0, stream>>>(p);
  UP_CUDA_CHECK_LAUNCH();
  fp_rows<<<(unsigned)((n_rows + 127) / 128), 128, 0, stream>>>(p, n_rows, counts, kept, &scratch.totals->pairs);
  UP_CUDA_CHECK_LAUNCH();
  up_sparse_write_ranges(&scratch, pattern, counts, kept, max_nq, B, n_rows);
  return up_sparse_scratch_close(&scratch, be, pattern, "flexprefill_estimate");
}
