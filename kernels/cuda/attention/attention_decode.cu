/* attention_decode.cu — the decode path of the CUDA attention op: sequences with at most
 * UP_ATTN_DECODE_MAX_ROWS rows this step (one new token over a long cache, or a short
 * chunk), which the prefill kernel skips. Reading the cache is the whole cost, so the
 * keys of each sequence are split across CTAs (flash-decoding): each CTA reads its key
 * range of one kv head once for every query of that head's GQA group, keeps a partial
 * (max, sum, unnormalised output) per query in an fp32 workspace, and a combine kernel
 * merges the splits by log-sum-exp and writes bf16. Under a sliding window the splits
 * share only the entries from the first one the sequence's first row sees, so decode
 * reads the last window entries, not the whole cache.
 *
 * Two split kernels write the same partials: the per-warp one (attention_decode_warp.cu,
 * the default) and v1 here (a CTA stages 64-key chunks with block barriers), kept
 * selectable for side-by-side timing by UP_DECODE_KERNEL=v1, read once per backend and
 * kept in its state with the CTAs per SM each kernel instance gets (the occupancy API,
 * asked once per backend and instance). This file owns v1, the combine, the split
 * count and that choice.
 *
 * The arithmetic is plain fp32 FMA: at group x rows <= 16 queries per kv head it is
 * 4 to 16 FMAs per byte of cache read, at or under what the CUDA cores sustain next to
 * HBM bandwidth (docs/kernels/attention.md). The split count comes from the CTAs an
 * SM actually holds, so the last wave is not a mostly idle one. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/attention/attn_decode.cuh"
#include "kernels/cuda/cuda_backend_impl.h"

enum {
  DEC_CHUNK = UP_DEC_SPLIT_KEYS, /* keys staged in shared memory at a time (v1) */
  DEC_MAXQ = 16,                 /* queries (group member x row) per CTA (v1) */
  DEC_THREADS = 128
};

/* grid: x = key split, y = kv head * n_qblocks + query block, z = sequence. Query qi of
 * a (sequence, kv head) is group member qi / rows, row qi % rows. */
template <int HD>
__global__ void __launch_bounds__(DEC_THREADS) decode_v1_kernel(const decode_params p) {
  constexpr int KS = HD + 8;              /* padded row: 16-byte reads of 8 rows hit 8 bank groups */
  constexpr int QSETS = 256 / HD;         /* thread groups over queries in the P V phase */
  constexpr int QPT = DEC_MAXQ / QSETS;   /* queries per thread in the P V phase */
  constexpr int CH = HD / 8;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  float *q_sm = (float *)smem_raw;                           /* [DEC_MAXQ][HD] */
  float *p_sm = q_sm + DEC_MAXQ * HD;                        /* [DEC_MAXQ][DEC_CHUNK] */
  float *m_sm = p_sm + DEC_MAXQ * DEC_CHUNK;                 /* [DEC_MAXQ] */
  float *l_sm = m_sm + DEC_MAXQ;
  float *corr_sm = l_sm + DEC_MAXQ;
  __nv_bfloat16 *k_sm = (__nv_bfloat16 *)(corr_sm + DEC_MAXQ); /* [DEC_CHUNK][KS] */
  __nv_bfloat16 *v_sm = k_sm + DEC_CHUNK * KS;

  const int tid = threadIdx.x;
  decode_cta cta;
  if (!decode_cta_of(p, DEC_MAXQ, cta)) return;
  const int32_t s = cta.s, split = cta.split, kvh = cta.kvh, row0 = cta.row0, n_rows = cta.n_rows;
  const int32_t q_first = cta.q_first, nq = cta.nq;
  const int32_t prior = cta.keys.prior, k_begin = cta.keys.begin, k_end = cta.keys.end;
  const int32_t *block_table = cta.block_table;

  for (int i = tid; i < DEC_MAXQ * HD; i += DEC_THREADS) {
    const int qi = i / HD, d = i % HD;
    float v = 0.0f;
    if (qi < nq) {
      const int32_t g = (q_first + qi) / n_rows, t = (q_first + qi) % n_rows;
      v = __bfloat162float(p.a.qkv[(int64_t)(row0 + t) * p.a.qkv_stride + (int64_t)(kvh * p.a.group + g) * HD + d]);
    }
    q_sm[i] = v;
  }
  if (tid < DEC_MAXQ) {
    m_sm[tid] = -INFINITY;
    l_sm[tid] = 0.0f;
  }
  /* Warp 0 initialised m and l, but other warps read them: in the chunk loop (after its
   * barriers) and, for a split whose key range is empty and so runs no loop at all, in
   * the partials at the end. Without this barrier that last read races with the
   * initialisation (head_dim 128: queries 1, 3, ... belong to warp 2; 64: warps 1-3)
   * and can pick up a stale max and sum from shared memory, which the combine then
   * weighs in as a real split. */
  __syncthreads();

  const int dp = tid % (HD / 2), qs = tid / (HD / 2);
  float acc[QPT][2];
#pragma unroll
  for (int k = 0; k < QPT; ++k) acc[k][0] = acc[k][1] = 0.0f;

  for (int32_t c0 = k_begin; c0 < k_end; c0 += DEC_CHUNK) {
    for (int i = tid; i < DEC_CHUNK * CH; i += DEC_THREADS) {
      const int r = i / CH, c = i % CH;
      const int32_t e = c0 + r;
      const bool valid = e < k_end;
      const int64_t off =
          valid ? up_attn_entry_offset(block_table, e, p.a.block_tokens, p.a.kv_dim) + kvh * HD + c * 8 : 0;
      up_attn_cp_async16(up_attn_smem_u32(k_sm + r * KS + c * 8), p.a.k_pool + off, valid ? 16 : 0);
      up_attn_cp_async16(up_attn_smem_u32(v_sm + r * KS + c * 8), p.a.v_pool + off, valid ? 16 : 0);
    }
    up_attn_cp_async_commit();
    up_attn_cp_async_wait<0>();
    __syncthreads();

    /* Scores: thread = one key x every other query (warp-uniform query, so Q reads broadcast). */
    {
      const int kc = tid % DEC_CHUNK, qg = tid / DEC_CHUNK;
      constexpr int QG = DEC_THREADS / DEC_CHUNK;
      float dot[DEC_MAXQ / QG];
#pragma unroll
      for (int k = 0; k < DEC_MAXQ / QG; ++k) dot[k] = 0.0f;
#pragma unroll 4
      for (int d8 = 0; d8 < CH; ++d8) {
        const uint4 raw = *(const uint4 *)(k_sm + kc * KS + d8 * 8);
        const __nv_bfloat162 *kp = (const __nv_bfloat162 *)&raw;
        float kf[8];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const float2 f = __bfloat1622float2(kp[i]);
          kf[2 * i] = f.x;
          kf[2 * i + 1] = f.y;
        }
#pragma unroll
        for (int k = 0; k < DEC_MAXQ / QG; ++k) {
          const int qi = qg + k * QG;
          if (qi < nq) {
            const float4 a = *(const float4 *)(q_sm + qi * HD + d8 * 8);
            const float4 b = *(const float4 *)(q_sm + qi * HD + d8 * 8 + 4);
            dot[k] += a.x * kf[0] + a.y * kf[1] + a.z * kf[2] + a.w * kf[3] + b.x * kf[4] + b.y * kf[5] +
                      b.z * kf[6] + b.w * kf[7];
          }
        }
      }
      const int32_t key = c0 + kc;
#pragma unroll
      for (int k = 0; k < DEC_MAXQ / QG; ++k) {
        const int qi = qg + k * QG;
        const int32_t t = (q_first + qi) % n_rows;
        const bool valid =
            qi < nq && key < k_end && key <= prior + t && key >= up_attn_window_start(prior + t, p.a.window);
        p_sm[qi * DEC_CHUNK + kc] = valid ? dot[k] * p.a.scale_log2 : -INFINITY;
      }
    }
    __syncthreads();

    /* Online softmax per query: warp w owns queries w, w + 4, ...; lanes own 2 keys. */
    {
      const int warp = tid >> 5, lane = tid & 31;
      for (int qi = warp; qi < nq; qi += DEC_THREADS / 32) {
        const float x0 = p_sm[qi * DEC_CHUNK + lane], x1 = p_sm[qi * DEC_CHUNK + lane + 32];
        float mx = fmaxf(x0, x1);
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
        const float m_old = m_sm[qi];
        const float m_new = fmaxf(m_old, mx);
        const float base = m_new == -INFINITY ? 0.0f : m_new; /* no -inf - -inf */
        const float e0 = up_attn_exp2(x0 - base), e1 = up_attn_exp2(x1 - base);
        float sum = e0 + e1;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
        p_sm[qi * DEC_CHUNK + lane] = e0;
        p_sm[qi * DEC_CHUNK + lane + 32] = e1;
        __syncwarp();
        if (lane == 0) {
          const float corr = up_attn_exp2(m_old - base);
          m_sm[qi] = m_new;
          l_sm[qi] = l_sm[qi] * corr + sum;
          corr_sm[qi] = corr;
        }
      }
    }
    __syncthreads();

    /* O = O * corr + P V: thread = two adjacent dims x queries qs, qs + QSETS, ... */
#pragma unroll
    for (int k = 0; k < QPT; ++k) {
      const int qi = qs + k * QSETS;
      if (qi < nq) {
        const float corr = corr_sm[qi];
        float a0 = acc[k][0] * corr, a1 = acc[k][1] * corr;
        const float *pr = p_sm + qi * DEC_CHUNK;
#pragma unroll 8
        for (int kc = 0; kc < DEC_CHUNK; ++kc) {
          const float2 v = __bfloat1622float2(*(const __nv_bfloat162 *)(v_sm + kc * KS + 2 * dp));
          a0 = fmaf(pr[kc], v.x, a0);
          a1 = fmaf(pr[kc], v.y, a1);
        }
        acc[k][0] = a0;
        acc[k][1] = a1;
      }
    }
    __syncthreads(); /* before the next chunk overwrites K, V and P */
  }

  /* Partials, written even for an empty key range (max -inf, sum 0: weight 0 in the combine). */
#pragma unroll
  for (int k = 0; k < QPT; ++k) {
    const int qi = qs + k * QSETS;
    if (qi < nq) {
      const int32_t g = (q_first + qi) / n_rows, t = (q_first + qi) % n_rows;
      const int64_t w = ws_index(p, s, kvh * p.a.group + g, t, split);
      *(float2 *)(p.ws_o + w * HD + 2 * dp) = make_float2(acc[k][0], acc[k][1]);
      if (dp == 0) *(float2 *)(p.ws_ml + 2 * w) = make_float2(m_sm[qi], l_sm[qi]);
    }
  }
}

/* grid: x = query head, y = sequence; one thread per dimension. Merges the splits:
 * weight 2^(m_i - M) per split, output sum(w_i o_i) / sum(w_i l_i). */
template <int HD>
__global__ void __launch_bounds__(HD) decode_combine_kernel(const decode_params p) {
  const int32_t s = blockIdx.y, head = blockIdx.x, d = threadIdx.x;
  const int32_t row0 = __ldg(p.a.cu_seqlens + s);
  const int32_t n_rows = __ldg(p.a.cu_seqlens + s + 1) - row0;
  if (n_rows <= 0 || n_rows > UP_ATTN_DECODE_MAX_ROWS) return;
  for (int32_t t = 0; t < n_rows; ++t) {
    const int64_t w0 = ws_index(p, s, head, t, 0);
    float mx = -INFINITY;
    for (int32_t i = 0; i < p.n_splits; ++i) mx = fmaxf(mx, p.ws_ml[2 * (w0 + i)]);
    float num = 0.0f, den = 0.0f;
    for (int32_t i = 0; i < p.n_splits; ++i) {
      const float m = p.ws_ml[2 * (w0 + i)];
      if (m == -INFINITY) continue; /* split saw no key of this row */
      const float wgt = up_attn_exp2(m - mx);
      den += wgt * p.ws_ml[2 * (w0 + i) + 1];
      num += wgt * p.ws_o[(w0 + i) * HD + d];
    }
    p.a.out[(int64_t)(row0 + t) * p.a.out_stride + (int64_t)head * HD + d] =
        __float2bfloat16(den > 0.0f ? num / den : 0.0f);
  }
}

static size_t decode_v1_smem_bytes(int32_t hd) {
  return sizeof(float) * (size_t)(DEC_MAXQ * hd + DEC_MAXQ * DEC_CHUNK + 3 * DEC_MAXQ) +
         sizeof(__nv_bfloat16) * (size_t)(2 * DEC_CHUNK * (hd + 8));
}

extern "C" size_t up_cuda_attention_decode_workspace_bytes(const up_attn_batch *batch, const up_attn_shape *shape,
                                                           int32_t n_splits) {
  const size_t per_split = (size_t)batch->n_seqs * (size_t)shape->n_heads * UP_ATTN_DECODE_MAX_ROWS * (size_t)n_splits;
  return sizeof(float) * per_split * (size_t)(shape->head_dim + 2);
}

/* UP_DECODE_KERNEL: unset, empty or "warp" for the per-warp kernel (0.74 ms at 16 x 32K on
 * an H100 against v1's 1.20, docs/kernels/attention.md), "v1" for the first. */
static int32_t decode_kernel_from_env(void) {
  const char *choice = getenv("UP_DECODE_KERNEL");
  if (!choice || !*choice || strcmp(choice, "warp") == 0) return UP_ATTN_DECODE_WARP;
  if (strcmp(choice, "v1") == 0) return UP_ATTN_DECODE_V1;
  UP_FATAL("UP_DECODE_KERNEL=%s: expected \"warp\" (the default, per-warp key streams) or \"v1\" (64-key chunks "
           "with block barriers)",
           choice);
}

/* The backend's split kernel: the environment's choice, read at its first decode call,
 * unless up_cuda_attention_set_decode_kernel chose first. */
static int32_t decode_kernel(up_cuda_backend *cb) {
  if (cb->attn_decode_kernel == 0) cb->attn_decode_kernel = decode_kernel_from_env();
  return cb->attn_decode_kernel;
}

extern "C" void up_cuda_attention_set_decode_kernel(up_backend *be, int kernel) {
  if (kernel != UP_ATTN_DECODE_V1 && kernel != UP_ATTN_DECODE_WARP)
    UP_FATAL("attention: decode kernel %d is neither v1 (%d) nor per-warp (%d)", kernel, UP_ATTN_DECODE_V1,
             UP_ATTN_DECODE_WARP);
  up_cuda_impl(be)->attn_decode_kernel = kernel;
}

/* Queries (group member x row) one CTA of the kernel takes. */
static int32_t decode_queries_per_cta(int32_t kernel, int32_t group) {
  return kernel == UP_ATTN_DECODE_V1 ? DEC_MAXQ : up_attn_decode_warp_queries(group);
}

static int decode_head_dim_index(int32_t hd) {
  switch (hd) {
    case 64: return 0;
    case 128: return 1;
    case 256: return 2;
    default: UP_FATAL("attention: head_dim %d not supported by the CUDA kernels (64, 128, 256)", hd);
  }
}

template <int HD>
static int32_t decode_v1_occupancy(void) {
  const size_t smem = decode_v1_smem_bytes(HD);
  UP_CUDA_CHECK(cudaFuncSetAttribute(decode_v1_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  int n = 0;
  UP_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, decode_v1_kernel<HD>, DEC_THREADS, smem));
  if (n < 1) UP_FATAL("attention: the decode kernel for head_dim %d fits no SM (%zu bytes of shared memory)", HD, smem);
  return n;
}

/* Split CTAs one SM holds at once for this kernel instance, asked of the runtime once
 * per backend and instance (slots: v1 by head_dim, then the per-warp kernel by head_dim
 * and queries per CTA). */
static int32_t decode_ctas_per_sm(up_cuda_backend *cb, int32_t kernel, int32_t hd, int32_t queries) {
  const int h = decode_head_dim_index(hd);
  const int q = queries == 1 ? 0 : queries == 2 ? 1 : queries == 4 ? 2 : 3;
  const int slot = kernel == UP_ATTN_DECODE_V1 ? h : 3 + 4 * h + q;
  static_assert(3 + 4 * 3 <= UP_CUDA_DECODE_INSTANCES, "a slot per decode kernel instance");
  int32_t *cached = &cb->attn_decode_ctas_per_sm[slot];
  if (*cached == 0) {
    if (kernel == UP_ATTN_DECODE_WARP)
      *cached = up_attn_decode_warp_ctas_per_sm(hd, queries);
    else
      *cached = hd == 64 ? decode_v1_occupancy<64>() : hd == 128 ? decode_v1_occupancy<128>() : decode_v1_occupancy<256>();
  }
  return *cached;
}

/* The split count that finishes soonest under a simple model: every split of the longest
 * cache the batch can hold reads ceil(keys / splits) rounded up to whole chunks, one more
 * chunk's worth goes to starting up and writing partials, and the CTAs run in
 * waves of (SMs x CTAs per SM). More splits shorten each CTA but can leave a last wave
 * that is mostly idle (16 x 32K on an H100 at 9 splits: 1152 CTAs in 528 slots, a third
 * wave 18% full); ties go to fewer splits, which means less combining. Never more splits
 * than chunks a sequence could read (the block table's capacity, or a sliding window's
 * entries plus the rows of a multi-row step). The per-warp kernel's CTAs are counted for
 * one row a sequence (plain decode): its query blocks past a one-row sequence's queries
 * exit at once, while v1's 16-query blocks hold a group of 4 at every row count. */
extern "C" int32_t up_cuda_attention_decode_splits(struct up_cuda_backend *cb, const up_kv_pool *pool,
                                                   const up_attn_batch *batch, const up_attn_shape *shape,
                                                   int32_t window) {
  const int32_t kernel = decode_kernel(cb);
  const int32_t group = shape->n_heads / shape->n_kv_heads;
  const int32_t queries = decode_queries_per_cta(kernel, group);
  const int64_t rows = kernel == UP_ATTN_DECODE_V1 ? UP_ATTN_DECODE_MAX_ROWS : 1;
  const int64_t n_qblocks = (group * rows + queries - 1) / queries;
  const int64_t ctas = (int64_t)(batch->n_seqs > 0 ? batch->n_seqs : 1) * shape->n_kv_heads * n_qblocks;
  int64_t keys = (int64_t)batch->max_blocks_per_seq * pool->block_tokens;
  if (window > 0 && (int64_t)window + UP_ATTN_DECODE_MAX_ROWS - 1 < keys) keys = (int64_t)window + UP_ATTN_DECODE_MAX_ROWS - 1;
  if (keys < 1) keys = 1;
  const int32_t per_sm = decode_ctas_per_sm(cb, kernel, shape->head_dim, queries);
  const int64_t slots = (int64_t)(cb->sm_count > 0 ? cb->sm_count : 1) * per_sm;
  const int64_t max_useful = (keys + DEC_CHUNK - 1) / DEC_CHUNK;
  const int64_t limit = max_useful < UP_DEC_MAX_SPLITS ? max_useful : UP_DEC_MAX_SPLITS;
  int64_t best = 1, best_cost = -1;
  for (int64_t s = 1; s <= limit; ++s) {
    const int64_t chunks = ((keys + s - 1) / s + DEC_CHUNK - 1) / DEC_CHUNK; /* per split, as the kernel rounds */
    const int64_t used = (keys + chunks * DEC_CHUNK - 1) / (chunks * DEC_CHUNK);
    const int64_t waves = (ctas * used + slots - 1) / slots;
    const int64_t cost = waves * (chunks + 1);
    if (best_cost < 0 || cost < best_cost) {
      best = s;
      best_cost = cost;
    }
  }
  return (int32_t)best;
}

template <int HD>
static void launch_decode_v1(cudaStream_t stream, const decode_params &p, int32_t n_kv_heads) {
  const size_t smem = decode_v1_smem_bytes(HD);
  UP_CUDA_CHECK(cudaFuncSetAttribute(decode_v1_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  const dim3 grid((unsigned)p.n_splits, (unsigned)(n_kv_heads * p.n_qblocks), (unsigned)p.a.n_seqs);
  decode_v1_kernel<HD><<<grid, DEC_THREADS, smem, stream>>>(p);
  UP_CUDA_CHECK_LAUNCH();
}

template <int HD>
static void launch_combine(cudaStream_t stream, const decode_params &p) {
  decode_combine_kernel<HD><<<dim3((unsigned)p.a.n_heads, (unsigned)p.a.n_seqs), HD, 0, stream>>>(p);
  UP_CUDA_CHECK_LAUNCH();
}

extern "C" void up_cuda_attention_decode(struct up_cuda_backend *cb, void *out, const void *qkv,
                                         const up_kv_pool *pool, const up_attn_batch *batch,
                                         const up_attn_shape *shape, int32_t window, int32_t n_splits,
                                         void *workspace) {
  if (batch->n_tokens <= 0 || batch->n_seqs <= 0) return;
  const int32_t kernel = decode_kernel(cb);
  const int32_t hd = shape->head_dim;
  decode_head_dim_index(hd); /* refuses other sizes before anything is queued */
  decode_params p;
  p.a = up_attn_args_make(out, qkv, pool, batch, shape);
  p.a.window = window;
  const size_t partials = (size_t)batch->n_seqs * (size_t)shape->n_heads * UP_ATTN_DECODE_MAX_ROWS * (size_t)n_splits;
  p.ws_o = (float *)workspace;
  p.ws_ml = p.ws_o + partials * (size_t)hd;
  p.n_splits = n_splits;
  const int32_t queries = decode_queries_per_cta(kernel, p.a.group);
  p.n_qblocks = (p.a.group * UP_ATTN_DECODE_MAX_ROWS + queries - 1) / queries;
  if (p.a.n_seqs > 65535 || (int64_t)shape->n_kv_heads * p.n_qblocks > 65535)
    UP_FATAL("attention: decode grid of %d sequences x %d kv heads x %d query blocks exceeds 65535", p.a.n_seqs,
             shape->n_kv_heads, p.n_qblocks);
  const cudaStream_t stream = cb->stream;
  if (kernel == UP_ATTN_DECODE_WARP)
    up_attn_decode_warp_launch(stream, p, shape->n_kv_heads, hd, queries);
  else if (hd == 64)
    launch_decode_v1<64>(stream, p, shape->n_kv_heads);
  else if (hd == 128)
    launch_decode_v1<128>(stream, p, shape->n_kv_heads);
  else
    launch_decode_v1<256>(stream, p, shape->n_kv_heads);
  if (hd == 64)
    launch_combine<64>(stream, p);
  else if (hd == 128)
    launch_combine<128>(stream, p);
  else
    launch_combine<256>(stream, p);
}
