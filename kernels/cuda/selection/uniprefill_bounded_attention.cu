/* uniprefill_bounded_attention.cu — the CUDA backend's bounded attention
 * (kernels/uniprefill_ops.h): packed row r at cache index i of its sequence attends
 * entries first_entry[r]..i of the paged pool, equal to the CPU reference
 * kernels/cpu/cpu_attention.c up to bf16 storage and summation order.
 *
 * A plain kernel, not a tuned one: one warp per (row, query head) streams the row's
 * keys with an online softmax, each lane owning head_dim / 32 contiguous dimensions
 * and the warp reducing each dot product by shuffles. UniPrefill's window=original
 * calls it only on sliding layers after a drop, where a row sees at most the window's
 * entries (512 on Gemma 3 270M/1B, 1024 on 4B-27B), so its work is rows x heads x
 * window x head_dim and memory reads come from L2 for neighbouring rows. Owns this
 * kernel only; the dense attention paths are kernels/cuda/attention. */
#include "kernels/cuda/attention/attn_common.cuh"
#include "kernels/cuda/cuda_backend_impl.h"
#include "kernels/cuda/selection/uniprefill_bounded_attention.h"

enum { BOUNDED_WARPS = 4, BOUNDED_THREADS = BOUNDED_WARPS * 32 };

/* The sequence that owns packed row `row`: the last s with cu_seqlens[s] <= row (an
 * empty sequence shares its offset with the next one, which then wins). */
__device__ __forceinline__ int32_t bounded_row_seq(const int32_t *cu_seqlens, int32_t n_seqs, int32_t row) {
  int32_t lo = 0, hi = n_seqs - 1;
  while (lo < hi) {
    const int32_t mid = (lo + hi + 1) >> 1;
    if (__ldg(cu_seqlens + mid) <= row)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

/* PER bf16 values from src (PER even) as floats. */
template <int PER>
__device__ __forceinline__ void load_bf16(float *dst, const __nv_bfloat16 *src) {
#pragma unroll
  for (int i = 0; i < PER; i += 2) {
    const float2 f = __bfloat1622float2(*(const __nv_bfloat162 *)(src + i));
    dst[i] = f.x;
    dst[i + 1] = f.y;
  }
}

template <int HD>
__global__ void __launch_bounds__(BOUNDED_THREADS)
    bounded_attention_kernel(up_attn_args a, const int32_t *first_entry, int32_t n_tokens,
                             up_cuda_index_error *error) {
  constexpr int PER = HD / 32;
  const int32_t lane = threadIdx.x & 31;
  const int64_t unit = (int64_t)blockIdx.x * BOUNDED_WARPS + (threadIdx.x >> 5);
  if (unit >= (int64_t)n_tokens * a.n_heads) return;
  const int32_t row = (int32_t)(unit / a.n_heads), h = (int32_t)(unit % a.n_heads);
  const int32_t s = bounded_row_seq(a.cu_seqlens, a.n_seqs, row);
  const int32_t first_row = __ldg(a.cu_seqlens + s), n_rows = __ldg(a.cu_seqlens + s + 1) - first_row;
  const int32_t index = __ldg(a.kv_lens + s) - n_rows + (row - first_row);
  const int32_t first = __ldg(first_entry + row);
  __nv_bfloat16 *o = a.out + (int64_t)row * a.out_stride + (int64_t)h * HD + lane * PER;
  if (first < 0 || first > index) {
    /* The method computes first entries on the host; a wrong one is its bug: flag it and
     * leave NaN, which the next synchronisation reports before anything reads it. */
    if (lane == 0 && atomicCAS(&error->flagged, 0, 1) == 0) {
      error->op = UP_CUDA_OP_BOUNDED_FIRST_ENTRY;
      error->row = row;
      error->value = first;
    }
#pragma unroll
    for (int i = 0; i < PER; ++i) o[i] = __float2bfloat16(__int_as_float(0x7fc00000));
    return;
  }
  const int32_t kvh = h / a.group;
  const int32_t *block_table = a.block_tables + (int64_t)s * a.max_blocks_per_seq;
  float q[PER], acc[PER];
  load_bf16<PER>(q, a.qkv + (int64_t)row * a.qkv_stride + (int64_t)h * HD + lane * PER);
#pragma unroll
  for (int i = 0; i < PER; ++i) acc[i] = 0.0f;
  float m = -INFINITY, l = 0.0f; /* running max (log2 domain) and sum of the softmax */
  for (int32_t e = first; e <= index; ++e) {
    const int64_t at = up_attn_entry_offset(block_table, e, a.block_tokens, a.kv_dim) + (int64_t)kvh * HD + lane * PER;
    float k[PER], v[PER];
    load_bf16<PER>(k, a.k_pool + at);
    load_bf16<PER>(v, a.v_pool + at);
    float dot = 0.0f;
#pragma unroll
    for (int i = 0; i < PER; ++i) dot += q[i] * k[i];
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, off);
    const float score = dot * a.scale_log2;
    const float m_new = fmaxf(m, score);
    const float correction = exp2f(m - m_new), p = exp2f(score - m_new);
    l = l * correction + p;
#pragma unroll
    for (int i = 0; i < PER; ++i) acc[i] = acc[i] * correction + p * v[i];
    m = m_new;
  }
  const float inv = 1.0f / l; /* the row's own entry is always seen: l >= 1 */
#pragma unroll
  for (int i = 0; i < PER; i += 2)
    *(__nv_bfloat162 *)(o + i) = __floats2bfloat162_rn(acc[i] * inv, acc[i + 1] * inv);
}

extern "C" void up_cuda_bounded_attention(up_backend *be, void *out, const void *qkv, const up_kv_pool *pool,
                                          const up_attn_batch *batch, const up_attn_shape *shape,
                                          const int32_t *first_entry) {
  if (shape->n_kv_heads <= 0 || shape->n_heads % shape->n_kv_heads != 0)
    UP_FATAL("bounded attention: n_heads %d is not a multiple of n_kv_heads %d", shape->n_heads, shape->n_kv_heads);
  if (pool->kv_dim != shape->n_kv_heads * shape->head_dim)
    UP_FATAL("bounded attention: pool kv_dim %d != n_kv_heads %d * head_dim %d", pool->kv_dim, shape->n_kv_heads,
             shape->head_dim);
  if (pool->block_tokens <= 0) UP_FATAL("bounded attention: block_tokens %d must be positive", pool->block_tokens);
  if (batch->n_tokens <= 0 || batch->n_seqs <= 0) return;
  up_cuda_backend *cb = up_cuda_impl(be);
  const up_attn_args a = up_attn_args_make(out, qkv, pool, batch, shape);
  const int64_t units = (int64_t)batch->n_tokens * shape->n_heads;
  const unsigned grid = (unsigned)((units + BOUNDED_WARPS - 1) / BOUNDED_WARPS);
  switch (shape->head_dim) {
    case 64:
      bounded_attention_kernel<64><<<grid, BOUNDED_THREADS, 0, cb->stream>>>(a, first_entry, batch->n_tokens,
                                                                              cb->index_error);
      break;
    case 128:
      bounded_attention_kernel<128><<<grid, BOUNDED_THREADS, 0, cb->stream>>>(a, first_entry, batch->n_tokens,
                                                                               cb->index_error);
      break;
    case 256:
      bounded_attention_kernel<256><<<grid, BOUNDED_THREADS, 0, cb->stream>>>(a, first_entry, batch->n_tokens,
                                                                               cb->index_error);
      break;
    default:
      UP_FATAL("bounded attention: head_dim %d not supported by the CUDA kernel (64, 128, 256)", shape->head_dim);
  }
  UP_CUDA_CHECK_LAUNCH();
}
