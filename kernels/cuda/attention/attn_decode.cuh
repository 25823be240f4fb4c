/* attn_decode.cuh — what the two decode split kernels share with the host side of the
 * decode path (attention_decode.cu): the launch parameters, the layout of the fp32
 * partials both kernels write and the combine kernel reads, and the per-warp kernel's
 * entry points (attention_decode_warp.cu). Included by those two .cu files only. */
#ifndef UP_ATTN_DECODE_CUH
#define UP_ATTN_DECODE_CUH

#include "kernels/cuda/attention/attn_common.cuh"
#include "kernels/cuda/attention/cuda_attention.h"

enum {
  UP_DEC_SPLIT_KEYS = 64, /* a split's key range is a multiple of this (both kernels) */
  UP_DEC_MAX_SPLITS = 64
};

typedef struct decode_params {
  up_attn_args a;
  float *ws_o;  /* [n_seqs][n_heads][DECODE_MAX_ROWS][n_splits][head_dim] */
  float *ws_ml; /* same without head_dim, then {max, sum} */
  int32_t n_splits;
  int32_t n_qblocks; /* query blocks per kv head: ceil(group * DECODE_MAX_ROWS / queries per CTA) */
} decode_params;

/* Index of (sequence, query head, row, split) in the workspace. */
__device__ __forceinline__ int64_t ws_index(const decode_params &p, int32_t s, int32_t head, int32_t t,
                                            int32_t split) {
  return (((int64_t)s * p.a.n_heads + head) * UP_ATTN_DECODE_MAX_ROWS + t) * p.n_splits + split;
}

/* The key range [begin, end) of one split of sequence s, and the facts its masking
 * needs. The splits share the entries from the first one the sequence's first row sees
 * (0 under full causal attention, the window's start under a sliding window: the entries
 * before it, and their blocks, are never touched) to the cache end, in equal shares
 * rounded up to UP_DEC_SPLIT_KEYS, so short caches leave later splits empty. */
typedef struct decode_range {
  int32_t begin, end;
  int32_t prior; /* cache entries before the sequence's first row this step */
} decode_range;

__device__ __forceinline__ decode_range decode_split_range(const decode_params &p, int32_t s, int32_t n_rows,
                                                           int32_t split) {
  decode_range r;
  const int32_t kv_len = __ldg(p.a.kv_lens + s);
  r.prior = kv_len - n_rows;
  const int32_t k_lo = up_attn_window_start(r.prior, p.a.window);
  int32_t per_split = (kv_len - k_lo + p.n_splits - 1) / p.n_splits;
  per_split = (per_split + UP_DEC_SPLIT_KEYS - 1) / UP_DEC_SPLIT_KEYS * UP_DEC_SPLIT_KEYS;
  r.begin = k_lo + split * per_split;
  r.end = min(kv_len, r.begin + per_split);
  return r;
}

/* What a split CTA works on, from its grid position (x = key split, y = kv head *
 * n_qblocks + query block, z = sequence): query qi of a (sequence, kv head) is group
 * member qi / rows, row qi % rows, and the CTA takes queries [q_first, q_first + nq). */
typedef struct decode_cta {
  int32_t s, split, kvh;
  int32_t row0, n_rows;
  int32_t q_first, nq;
  decode_range keys;
  const int32_t *block_table;
} decode_cta;

/* False where the CTA has nothing to do: its sequence takes the prefill path, or its
 * query block lies past the sequence's queries (CTA-uniform, before any barrier). */
__device__ __forceinline__ bool decode_cta_of(const decode_params &p, int32_t queries_per_cta, decode_cta &c) {
  c.s = blockIdx.z;
  c.split = blockIdx.x;
  c.kvh = blockIdx.y / p.n_qblocks;
  c.row0 = __ldg(p.a.cu_seqlens + c.s);
  c.n_rows = __ldg(p.a.cu_seqlens + c.s + 1) - c.row0;
  if (c.n_rows <= 0 || c.n_rows > UP_ATTN_DECODE_MAX_ROWS) return false;
  c.q_first = (blockIdx.y % p.n_qblocks) * queries_per_cta;
  c.nq = min(queries_per_cta, p.a.group * c.n_rows - c.q_first);
  if (c.nq <= 0) return false;
  c.keys = decode_split_range(p, c.s, c.n_rows, c.split);
  c.block_table = p.a.block_tables + (int64_t)c.s * p.a.max_blocks_per_seq;
  return true;
}

/* The per-warp split kernel (attention_decode_warp.cu). Queries per CTA for a GQA group
 * (1, 2, 4 or 8: the group rounded up to a power of two, at most 8); the split CTAs one
 * SM holds for that instance (occupancy API; callers cache it); the launch of the split
 * kernel alone (the combine is the caller's). */
int32_t up_attn_decode_warp_queries(int32_t group);
int32_t up_attn_decode_warp_ctas_per_sm(int32_t head_dim, int32_t queries);
void up_attn_decode_warp_launch(cudaStream_t stream, const decode_params &p, int32_t n_kv_heads, int32_t head_dim,
                                int32_t queries);

#endif
