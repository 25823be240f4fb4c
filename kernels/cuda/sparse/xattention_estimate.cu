/* xattention_estimate.cu — XAttention's block selection on the GPU
 * (kernels/sparse_attention_ops.h, UP_XATTENTION_ESTIMATE_KERNEL; the CPU reference is
 * kernels/cpu/sparse_xattention.c). Three launches and one small host copy per layer,
 * no per-head host loop:
 * 1. block scores: one CTA per (head, query block of a sparse sequence). The block's
 *    128/S reshaped query rows (q[rS + S-1-i], i < S, concatenated; tokens past n are
 *    zeros) stay in shared memory while the causal key blocks stream through it, twice:
 *    first for each reshaped row's softmax maximum and sum (float64), then for the
 *    normalised block sums W[qb][kb], rounded to bf16 as the reference stores them.
 *    Dots are fp32 sums of bf16 products, rounded to bf16 (the reference sums in
 *    float64 before the same rounding: a score within an ulp of a rounding boundary may
 *    differ, which only matters at near-ties).
 * 2. the threshold walk: one CTA per list row sorts the non-forced causal blocks by W
 *    descending with CUB's block radix sort (stable, so ties keep the lower index),
 *    scans their masses, and keeps each block whose preceding mass (forced blocks
 *    first) is below threshold x row total: the reference's walk, since the running
 *    mass only grows. In the rows of the authors' first chunk
 *    (up_xattention_first_chunk_blocks) only the diagonal is forced, block 0 is sorted
 *    with the others and the block ranked just after the last one so kept is kept too,
 *    as the reference does. It counts the kept blocks and their covered query-key pairs.
 * 3. CUB's device scan turns the counts into range_ptr, and the rows' key ranges are
 *    written there; column_ptr is all zeros (no extra keys).
 * The density cap (density_cap < 1) ranks the walk's blocks across all query blocks of
 * a head (sparse_block_cap.cu) before step 3. */
#include <cub/cub.cuh>
#include <math.h>

#include "kernels/cuda/attention/attn_common.cuh"
#include "kernels/cuda/cuda_backend_impl.h"
#include "kernels/cuda/sparse/sparse_block_cap.cuh"
#include "kernels/cuda/sparse/sparse_cuda.h"
#include "kernels/cuda/sparse/sparse_estimate_common.cuh"
#include "kernels/cuda/sparse/xattention_scores_mma.cuh"

namespace {

constexpr int XA_BLOCK = 128;
constexpr int XA_THREADS = 256;
/* The walk sorts one query block's key blocks in one CTA: 4 per thread. */
constexpr int XA_WALK_ITEMS = 4;
constexpr int XA_MAX_QBLOCKS = XA_THREADS * XA_WALK_ITEMS;

struct xa_params {
  const __nv_bfloat16 *qkv;
  const __nv_bfloat16 *k_pool;
  const int32_t *cu_seqlens, *kv_lens, *block_tables;
  const int32_t *qblock_start;
  int64_t qkv_stride;
  int32_t n_seqs, n_heads, group, head_dim, kv_dim, max_blocks_per_seq;
  up_attn_divider block_tokens;
  int32_t stride;      /* S */
  int32_t max_nq;      /* W's row stride */
  double scale;        /* 1 / (sqrt(d) S) */
  float *w;            /* [n_list_rows][max_nq] */
  up_cuda_index_error *error;
};

/* The fp32 dot of reshaped query row rr and key row cc, split over `split` adjacent
 * threads (every one of them gets the sum). */
__device__ __forceinline__ float reshaped_score(const __nv_bfloat16 *q_s, const __nv_bfloat16 *k_s, int32_t row_len,
                                                int32_t padded, int rr, int cc, int part, int split) {
  const int32_t chunk = row_len / split;
  const __nv_bfloat162 *qa = (const __nv_bfloat162 *)(q_s + (int64_t)rr * padded + part * chunk);
  const __nv_bfloat162 *ka = (const __nv_bfloat162 *)(k_s + (int64_t)cc * padded + part * chunk);
  float acc = 0.0f;
  for (int32_t x = 0; x < chunk / 2; ++x) {
    const float2 a = __bfloat1622float2(qa[x]), b = __bfloat1622float2(ka[x]);
    acc = fmaf(a.x, b.x, acc);
    acc = fmaf(a.y, b.y, acc);
  }
  for (int off = split >> 1; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
  return acc;
}

/* Load the P reshaped rows of token block kb (tokens kb*128 ..) of one head: row c holds
 * tokens cS + i, i < S, in order (keys) or reversed (queries), zeros past n. */
__device__ void load_reshaped(__nv_bfloat16 *dst, int32_t padded, const xa_params &p, bool queries, int32_t row0,
                              const int32_t *block_table, int32_t h, int32_t kvh, int32_t kb, int32_t n) {
  const int32_t d = p.head_dim, S = p.stride;
  const int32_t ch = d / 8;
  for (int32_t i = threadIdx.x; i < XA_BLOCK * ch; i += blockDim.x) {
    const int32_t tok_in_block = i / ch, c = i % ch;
    const int32_t rr = tok_in_block / S, within = tok_in_block % S;
    const int32_t token = kb * XA_BLOCK + rr * S + within;
    const int32_t slot = queries ? S - 1 - within : within;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (token < n) {
      const __nv_bfloat16 *src =
          queries ? p.qkv + (int64_t)(row0 + token) * p.qkv_stride + (int64_t)h * d + c * 8
                  : p.k_pool + up_attn_entry_offset(block_table, token, p.block_tokens, p.kv_dim) + kvh * d + c * 8;
      v = *(const uint4 *)src;
    }
    /* 4-byte stores: padded rows are not 16-byte aligned */
    uint32_t *out = (uint32_t *)(dst + (int64_t)rr * padded + slot * d + c * 8);
    out[0] = v.x, out[1] = v.y, out[2] = v.z, out[3] = v.w;
  }
}

__global__ void __launch_bounds__(XA_THREADS) xa_block_scores(const xa_params p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int32_t S = p.stride, P = XA_BLOCK / S, row_len = S * p.head_dim, padded = row_len + 2;
  __nv_bfloat16 *q_s = (__nv_bfloat16 *)smem_raw;
  __nv_bfloat16 *k_s = q_s + (int64_t)P * padded;
  double *row_max = (double *)(smem_raw + (((size_t)2 * P * padded * 2 + 15) & ~(size_t)15));
  double *row_sum = row_max + P;
  double *tile = row_sum + P; /* [P][P] one key block's logits, -inf outside the causal triangle */
  double *partial = tile + P * P;

  const int32_t h = blockIdx.x, qb_global = blockIdx.y;
  const int32_t s = up_sparse_qblock_seq(p.qblock_start, p.n_seqs, qb_global);
  const int32_t row0 = __ldg(p.cu_seqlens + s), n = __ldg(p.cu_seqlens + s + 1) - row0;
  const int32_t b = qb_global - __ldg(p.qblock_start + s);
  const int32_t nq = __ldg(p.qblock_start + s + 1) - __ldg(p.qblock_start + s);
  if (!up_sparse_sequence_ok(p.error, s, n, __ldg(p.kv_lens + s), nq, XA_BLOCK)) return;
  const int32_t kvh = h / p.group;
  const int32_t *block_table = p.block_tables + (int64_t)s * p.max_blocks_per_seq;
  const int32_t n_r = (n + S - 1) / S; /* reshaped rows holding a real query */
  /* below 256 pairs (S >= 8) adjacent threads split a dot; from 256 on (S <= 4) each
   * thread takes every (256)th pair */
  const int split = P * P >= XA_THREADS ? 1 : XA_THREADS / (P * P);
  const int part = threadIdx.x % split;
  float *w_row = p.w + ((int64_t)qb_global * p.n_heads + h) * p.max_nq;

  load_reshaped(q_s, padded, p, true, row0, block_table, h, kvh, b, n);
  if (threadIdx.x < P) row_max[threadIdx.x] = -INFINITY, row_sum[threadIdx.x] = 0.0;
  for (int pass = 0; pass < 2; ++pass)
    for (int32_t kb = 0; kb <= b; ++kb) {
      __syncthreads(); /* the previous key block's readers are done */
      load_reshaped(k_s, padded, p, false, row0, block_table, h, kvh, kb, n);
      __syncthreads();
      for (int pair = threadIdx.x / split; pair < P * P; pair += XA_THREADS / split) {
        const int rr = pair / P, cc = pair % P;
        const int32_t r = b * P + rr, c = kb * P + cc;
        const float dot = reshaped_score(q_s, k_s, row_len, padded, rr, cc, part, split);
        const bool live = r < n_r && c <= r;
        if (part == 0)
          tile[rr * P + cc] = live ? (double)__bfloat162float(__float2bfloat16_rn(dot)) * p.scale : -INFINITY;
      }
      __syncthreads();
      if (pass == 0) {
        /* each row's running maximum and sum over the columns so far, in order */
        if (threadIdx.x < P) {
          double m = row_max[threadIdx.x], z = row_sum[threadIdx.x];
          for (int j = 0; j < P; ++j) {
            const double x = tile[threadIdx.x * P + j];
            if (x == -INFINITY) continue;
            if (x > m) z = z * exp(m - x), m = x;
            z += exp(x - m);
          }
          row_max[threadIdx.x] = m, row_sum[threadIdx.x] = z;
        }
      } else {
        /* the block's mass: each row's probabilities (as float, like the reference) summed */
        if (threadIdx.x < P) {
          double acc = 0.0;
          for (int j = 0; j < P; ++j) {
            const double x = tile[threadIdx.x * P + j];
            if (x != -INFINITY) acc += (float)(exp(x - row_max[threadIdx.x]) / row_sum[threadIdx.x]);
          }
          partial[threadIdx.x] = acc;
        }
        __syncthreads();
        if (threadIdx.x == 0) {
          double sum = 0.0;
          for (int j = 0; j < P; ++j) sum += partial[j];
          w_row[kb] = __bfloat162float(__float2bfloat16_rn((float)sum));
        }
      }
    }
}

/* One CTA per list row: the walk over W[qb][.] (see the file comment). Writes the row's
 * kept key blocks to kept[row][0 .. counts[row]) (rows max_nq + 2 long: the forced two,
 * then the others as the walk keeps them) and adds its covered pairs. */
__global__ void __launch_bounds__(XA_THREADS) xa_walk(const xa_params p, const float *threshold_per_head,
                                                      float threshold, int32_t *counts, int32_t *kept,
                                                      double *pairs) {
  typedef cub::BlockRadixSort<float, XA_THREADS, XA_WALK_ITEMS, int32_t> sorter;
  typedef cub::BlockScan<double, XA_THREADS> scanner;
  typedef cub::BlockReduce<double, XA_THREADS> reducer;
  __shared__ union {
    typename sorter::TempStorage sort;
    typename scanner::TempStorage scan;
    typename reducer::TempStorage reduce;
  } tmp;
  __shared__ double total_s;
  __shared__ int32_t n_kept_s, n_walked_s;
  const int32_t row = blockIdx.x; /* list row */
  const int32_t qb_global = row / p.n_heads, h = row % p.n_heads;
  const int32_t s = up_sparse_qblock_seq(p.qblock_start, p.n_seqs, qb_global);
  const int32_t row0 = __ldg(p.cu_seqlens + s), n = __ldg(p.cu_seqlens + s + 1) - row0;
  const int32_t b = qb_global - __ldg(p.qblock_start + s);
  const float *w_row = p.w + (int64_t)row * p.max_nq;
  int32_t *kept_row = kept + (int64_t)row * (p.max_nq + 2);

  /* the row total over the causal blocks, in float64 */
  double mine = 0.0;
  for (int32_t kb = threadIdx.x; kb <= b; kb += XA_THREADS) mine += w_row[kb];
  const double total = reducer(tmp.reduce).Sum(mine);
  if (threadIdx.x == 0) total_s = total, n_kept_s = 0, n_walked_s = 0;
  __syncthreads();
  const double th = threshold_per_head ? (double)__ldg(threshold_per_head + h) : (double)threshold;
  const double required = total_s * th;
  /* BASELINES.md 3.2 (lines 221-225); the first chunk as the authors' find_blocks_chunked
   * walks it (xattn/src/utils.py L99-145, kernels/cpu/sparse_xattention.c) */
  const bool first_chunk = b > 0 && b < up_xattention_first_chunk_blocks(n);
  const int32_t lo = first_chunk ? 0 : 1; /* the sorted causal blocks lo .. b-1 */
  const double forced = (double)w_row[b] + (first_chunk || b == 0 ? 0.0 : (double)w_row[0]);

  /* the non-forced causal blocks, descending; -inf pads sort last */
  float keys[XA_WALK_ITEMS];
  int32_t idx[XA_WALK_ITEMS];
  for (int i = 0; i < XA_WALK_ITEMS; ++i) {
    const int32_t kb = lo + threadIdx.x * XA_WALK_ITEMS + i;
    const bool in = kb < b;
    keys[i] = in ? w_row[kb] : -INFINITY;
    idx[i] = in ? kb : INT32_MAX;
  }
  __syncthreads();
  sorter(tmp.sort).SortDescendingBlockedToStriped(keys, idx);
  /* striped: item i of thread t is rank i * XA_THREADS + t; the scan wants blocked order,
   * so rank the masses through a second exchange-free pass: each thread scans its own
   * striped items in rank order through the block scan, one item column at a time.
   * Block 0 is already first in the row's list: a first-chunk walk counts it, lists it
   * once. */
  double carried = 0.0;
  for (int i = 0; i < XA_WALK_ITEMS; ++i) {
    __syncthreads();
    const double mass = idx[i] != INT32_MAX ? (double)keys[i] : 0.0;
    double before, column_total;
    scanner(tmp.scan).ExclusiveSum(mass, before, column_total);
    if (idx[i] != INT32_MAX && forced + carried + before < required) {
      atomicAdd(&n_walked_s, 1);
      if (idx[i] != 0) kept_row[2 + atomicAdd(&n_kept_s, 1)] = idx[i];
    }
    carried += column_total;
  }
  __syncthreads();
  /* the walk kept ranks 0 .. walked-1; a first-chunk row keeps rank `walked` as well */
  const int32_t walked = n_walked_s;
  if (first_chunk && walked < b - lo && threadIdx.x == walked % XA_THREADS) {
    int32_t next = INT32_MAX;
    for (int i = 0; i < XA_WALK_ITEMS; ++i)
      if (i == walked / XA_THREADS) next = idx[i];
    if (next != 0) kept_row[2 + n_kept_s++] = next;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    /* the forced blocks first in the row's list: key block 0 and the diagonal */
    const int32_t m0 = b * XA_BLOCK, m1 = min(m0 + XA_BLOCK, n);
    const int32_t extra = n_kept_s;
    kept_row[0] = 0;
    int32_t count = 1;
    if (b > 0) kept_row[count++] = b;
    for (int32_t i = 0; i < extra; ++i) kept_row[count++] = kept_row[2 + i];
    counts[row] = count;
    /* covered pairs: full blocks before the rows, and the diagonal's triangle */
    const double len = (double)(m1 - m0);
    const double below = b > 0 ? (double)(count - 1) * XA_BLOCK * len : 0.0;
    atomicAdd(pairs, below + len * (len + 1) / 2);
  }
}

}  // namespace

extern "C" double up_cuda_xattention_estimate(up_backend *be, up_sparse_pattern *pattern, const void *qkv,
                                              const up_kv_pool *pool, const up_attn_batch *batch,
                                              const up_attn_shape *shape, const up_xattention_params *params) {
  if (pattern->block_q != XA_BLOCK || pattern->block_k != XA_BLOCK)
    UP_FATAL("xattention_estimate: the pattern's blocks are %d x %d, XAttention's 128 x 128", (int)pattern->block_q,
             (int)pattern->block_k);
  const int32_t S = params->stride;
  if (S < 2 || S > 32 || XA_BLOCK % S != 0) /* a dot is split over at most one warp */
    UP_FATAL("xattention_estimate: stride %d is not one the CUDA kernel takes (2, 4, 8, 16 or 32)", (int)S);
  if (shape->head_dim % 8 != 0)
    UP_FATAL("xattention_estimate: head_dim %d is not a multiple of 8", (int)shape->head_dim);
  up_cuda_backend *cb = up_cuda_impl(be);
  const cudaStream_t stream = cb->stream;
  if (up_sparse_pattern_empty(pattern, stream)) return 0.0;
  const int64_t n_rows = up_sparse_pattern_list_rows(pattern);
  int32_t max_nq = 0;
  for (int32_t s = 0; s < pattern->n_seqs; ++s) {
    const int32_t nq = pattern->qblock_start_host[s + 1] - pattern->qblock_start_host[s];
    max_nq = nq > max_nq ? nq : max_nq;
  }
  if (max_nq > XA_MAX_QBLOCKS)
    UP_FATAL("xattention_estimate: a sequence of %d query blocks exceeds the CUDA walk's %d (%d tokens)", (int)max_nq,
             (int)XA_MAX_QBLOCKS, (int)(XA_MAX_QBLOCKS * XA_BLOCK));
  up_sparse_scratch scratch;
  up_sparse_scratch_open(&scratch, stream);
  xa_params p;
  p.qkv = (const __nv_bfloat16 *)qkv;
  p.k_pool = (const __nv_bfloat16 *)pool->k;
  p.cu_seqlens = batch->cu_seqlens, p.kv_lens = batch->kv_lens, p.block_tables = batch->block_tables;
  p.qblock_start = pattern->qblock_start;
  p.qkv_stride = (int64_t)(shape->n_heads + 2 * shape->n_kv_heads) * shape->head_dim;
  p.n_seqs = batch->n_seqs, p.n_heads = shape->n_heads, p.group = shape->n_heads / shape->n_kv_heads;
  p.head_dim = shape->head_dim, p.kv_dim = pool->kv_dim, p.max_blocks_per_seq = batch->max_blocks_per_seq;
  p.block_tokens = up_attn_divider_make(pool->block_tokens);
  p.stride = S;
  p.max_nq = max_nq;
  p.scale = 1.0 / (sqrt((double)shape->head_dim) * S);
  p.w = (float *)up_sparse_scratch_take(&scratch, sizeof(float) * (size_t)n_rows * (size_t)max_nq, "xattention W");
  p.error = cb->index_error;
  int32_t *counts = (int32_t *)up_sparse_scratch_take(&scratch, sizeof(int32_t) * (size_t)n_rows, "xattention counts");
  int32_t *kept = (int32_t *)up_sparse_scratch_take(&scratch, sizeof(int32_t) * (size_t)n_rows * (size_t)(max_nq + 2),
                                                    "xattention kept blocks");
  float *thresholds = NULL;
  if (params->threshold_host) {
    thresholds = (float *)up_sparse_scratch_take(&scratch, sizeof(float) * (size_t)shape->n_heads, "thresholds");
    UP_CUDA_CHECK(cudaMemcpyAsync(thresholds, params->threshold_host, sizeof(float) * (size_t)shape->n_heads,
                                  cudaMemcpyHostToDevice, stream));
  }

  /* scores on tensor cores (xattention_scores_mma.cu) unless UP_XA_SCORES=v1, where the stride is one it takes */
  const up_xa_scores_args scores = {qkv, pool, batch, shape, pattern, S, max_nq, p.w, cb->index_error};
  if (up_xa_scores_v1_selected() || !up_xa_scores_mma(&scratch, &scores)) {
    const int32_t P = XA_BLOCK / S, padded = S * shape->head_dim + 2;
    const size_t smem =
        (((size_t)2 * P * padded * 2 + 15) & ~(size_t)15) + (size_t)(3 * P + P * P) * sizeof(double);
    if (smem > 227 * 1024)
      UP_FATAL("xattention_estimate: stride %d at head_dim %d needs %zu bytes of shared memory, more than a CTA has",
               (int)S, (int)shape->head_dim, smem);
    UP_CUDA_CHECK(cudaFuncSetAttribute(xa_block_scores, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    const int64_t n_qblocks = pattern->qblock_start_host[pattern->n_seqs];
    if (n_qblocks > 65535)
      UP_FATAL("xattention_estimate: %lld query blocks exceed the grid limit", (long long)n_qblocks);
    xa_block_scores<<<dim3((unsigned)shape->n_heads, (unsigned)n_qblocks), XA_THREADS, smem, stream>>>(p);
    UP_CUDA_CHECK_LAUNCH();
  }
  xa_walk<<<(unsigned)n_rows, XA_THREADS, 0, stream>>>(p, thresholds, params->threshold, counts, kept, &scratch.totals->pairs);
  UP_CUDA_CHECK_LAUNCH();
  if (params->density_cap < 1.0f)
    up_cuda_sparse_cap_lists(&scratch, pattern, batch, max_nq, XA_BLOCK, p.w, params->density_cap, counts, kept,
                             max_nq + 2, &scratch.totals->pairs);
  up_sparse_write_ranges(&scratch, pattern, counts, kept, max_nq + 2, XA_BLOCK, n_rows);
  return up_sparse_scratch_close(&scratch, be, pattern, "xattention_estimate");
}
