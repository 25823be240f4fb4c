/* attn_inputs.h — inputs of the GPU attention and selection tests: a packed batch over a
 * paged KV pool whose blocks are handed out in shuffled order, random bf16-representable
 * values (host bf16 bits for the device, the same values as fp32 for the CPU reference),
 * and the device copies. */
#ifndef UP_ATTN_INPUTS_H
#define UP_ATTN_INPUTS_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ops.h"
#include "kernels/cuda/cuda_check.h"
#include "tests/gpu/gpu_check.h"

static inline uint64_t attn_rng_next(uint64_t *s) { /* xorshift64* */
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 2685821657736338717ull;
}
/* Uniform in [-amp, amp). */
static inline float attn_rng_uniform(uint64_t *s, float amp) {
  return amp * ((float)(attn_rng_next(s) >> 40) / (float)(1 << 23) - 1.0f);
}

static inline uint16_t attn_f32_to_bf16(float f) { /* round to nearest even; inputs finite */
  uint32_t b;
  memcpy(&b, &f, 4);
  return (uint16_t)((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);
}
static inline float attn_bf16_to_f32(uint16_t h) {
  const uint32_t b = (uint32_t)h << 16;
  float f;
  memcpy(&f, &b, 4);
  return f;
}

/* n values, bf16 bits in h and the same values as floats in f (f may be NULL). */
static inline void attn_fill_random(uint64_t *rng, uint16_t *h, float *f, size_t n, float amp) {
  for (size_t i = 0; i < n; ++i) {
    h[i] = attn_f32_to_bf16(attn_rng_uniform(rng, amp));
    if (f) f[i] = attn_bf16_to_f32(h[i]);
  }
}

typedef struct attn_problem {
  up_attn_shape shape;
  int32_t n_seqs, n_tokens, block_tokens, n_blocks, max_blocks_per_seq;
  int64_t qkv_stride, out_stride;
  int32_t *cu_seqlens, *kv_lens, *block_tables; /* host */
  uint16_t *qkv_h, *k_h, *v_h;                  /* host bf16 */
  float *k_f, *v_f;                             /* host fp32 pool copies, when asked for */
  /* device */
  void *qkv_d, *k_d, *v_d, *out_d;
  int32_t *cu_d, *kv_d, *bt_d;
} attn_problem;

/* Sequences of rows[s] rows after prior[s] cached entries (prior may be NULL: 0). Blocks
 * are shuffled through the pool (plus a few unused ones), table slots past a sequence's
 * blocks hold -1. keep_f32: also keep fp32 copies of the pool for the CPU reference. */
static inline void attn_problem_make(attn_problem *p, uint64_t *rng, const up_attn_shape *shape, int32_t n_seqs,
                                     const int32_t *rows, const int32_t *prior, int32_t block_tokens, int keep_f32) {
  memset(p, 0, sizeof *p);
  p->shape = *shape;
  p->n_seqs = n_seqs;
  p->block_tokens = block_tokens;
  p->cu_seqlens = up_calloc_or_die((size_t)n_seqs + 1, sizeof(int32_t), "cu_seqlens");
  p->kv_lens = up_calloc_or_die((size_t)n_seqs, sizeof(int32_t), "kv_lens");
  int32_t total_blocks = 0;
  for (int32_t s = 0; s < n_seqs; ++s) {
    p->cu_seqlens[s + 1] = p->cu_seqlens[s] + rows[s];
    p->kv_lens[s] = rows[s] + (prior ? prior[s] : 0);
    const int32_t nb = (p->kv_lens[s] + block_tokens - 1) / block_tokens;
    total_blocks += nb;
    if (nb > p->max_blocks_per_seq) p->max_blocks_per_seq = nb;
  }
  p->max_blocks_per_seq += 1; /* a -1 slot past every sequence's last block */
  p->n_tokens = p->cu_seqlens[n_seqs];
  p->n_blocks = total_blocks + 3;
  int32_t *perm = up_malloc_or_die(sizeof(int32_t) * (size_t)p->n_blocks, "block permutation");
  for (int32_t i = 0; i < p->n_blocks; ++i) perm[i] = i;
  for (int32_t i = p->n_blocks - 1; i > 0; --i) {
    const int32_t j = (int32_t)(attn_rng_next(rng) % (uint64_t)(i + 1));
    const int32_t t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  p->block_tables = up_malloc_or_die(sizeof(int32_t) * (size_t)n_seqs * (size_t)p->max_blocks_per_seq, "block tables");
  int32_t next = 0;
  for (int32_t s = 0; s < n_seqs; ++s)
    for (int32_t b = 0; b < p->max_blocks_per_seq; ++b)
      p->block_tables[(int64_t)s * p->max_blocks_per_seq + b] =
          b * block_tokens < p->kv_lens[s] ? perm[next++] : -1;
  free(perm);

  const int32_t hd = shape->head_dim, kv_dim = shape->n_kv_heads * hd;
  p->qkv_stride = (int64_t)(shape->n_heads + 2 * shape->n_kv_heads) * hd;
  p->out_stride = (int64_t)shape->n_heads * hd;
  const size_t qkv_n = (size_t)p->n_tokens * (size_t)p->qkv_stride;
  const size_t pool_n = (size_t)p->n_blocks * (size_t)block_tokens * (size_t)kv_dim;
  p->qkv_h = up_malloc_or_die(2 * qkv_n, "qkv bf16");
  p->k_h = up_malloc_or_die(2 * pool_n, "k pool bf16");
  p->v_h = up_malloc_or_die(2 * pool_n, "v pool bf16");
  if (keep_f32) {
    p->k_f = up_malloc_or_die(4 * pool_n, "k pool f32");
    p->v_f = up_malloc_or_die(4 * pool_n, "v pool f32");
  }
  /* Queries twice the keys' range: scores of a few units, a softmax far from uniform. */
  attn_fill_random(rng, p->qkv_h, NULL, qkv_n, 2.0f);
  attn_fill_random(rng, p->k_h, p->k_f, pool_n, 1.0f);
  attn_fill_random(rng, p->v_h, p->v_f, pool_n, 1.0f);

  UP_CUDA_CHECK(cudaMalloc(&p->qkv_d, 2 * qkv_n));
  UP_CUDA_CHECK(cudaMalloc(&p->k_d, 2 * pool_n));
  UP_CUDA_CHECK(cudaMalloc(&p->v_d, 2 * pool_n));
  UP_CUDA_CHECK(cudaMalloc(&p->out_d, 2 * (size_t)p->n_tokens * (size_t)p->out_stride));
  UP_CUDA_CHECK(cudaMalloc((void **)&p->cu_d, sizeof(int32_t) * ((size_t)n_seqs + 1)));
  UP_CUDA_CHECK(cudaMalloc((void **)&p->kv_d, sizeof(int32_t) * (size_t)n_seqs));
  UP_CUDA_CHECK(cudaMalloc((void **)&p->bt_d, sizeof(int32_t) * (size_t)n_seqs * (size_t)p->max_blocks_per_seq));
  UP_CUDA_CHECK(cudaMemcpy(p->qkv_d, p->qkv_h, 2 * qkv_n, cudaMemcpyHostToDevice));
  UP_CUDA_CHECK(cudaMemcpy(p->k_d, p->k_h, 2 * pool_n, cudaMemcpyHostToDevice));
  UP_CUDA_CHECK(cudaMemcpy(p->v_d, p->v_h, 2 * pool_n, cudaMemcpyHostToDevice));
  UP_CUDA_CHECK(cudaMemcpy(p->cu_d, p->cu_seqlens, sizeof(int32_t) * ((size_t)n_seqs + 1), cudaMemcpyHostToDevice));
  UP_CUDA_CHECK(cudaMemcpy(p->kv_d, p->kv_lens, sizeof(int32_t) * (size_t)n_seqs, cudaMemcpyHostToDevice));
  UP_CUDA_CHECK(cudaMemcpy(p->bt_d, p->block_tables, sizeof(int32_t) * (size_t)n_seqs * (size_t)p->max_blocks_per_seq,
                       cudaMemcpyHostToDevice));
}

/* Pool rows that hold no entry of any sequence (the tail of each sequence's last page,
 * and the unused blocks) become bf16 NaNs on the device: a kernel that multiplies a
 * zero probability by such a row, instead of zeroing or skipping it, turns its output
 * into NaN. The fp32 copies are left alone: the reference reads only real entries. */
static inline void attn_problem_poison_unused(attn_problem *p) {
  const int64_t rows = (int64_t)p->n_blocks * p->block_tokens;
  const int32_t kv_dim = p->shape.n_kv_heads * p->shape.head_dim;
  unsigned char *used = up_calloc_or_die((size_t)rows, 1, "pool rows in use");
  for (int32_t s = 0; s < p->n_seqs; ++s)
    for (int32_t e = 0; e < p->kv_lens[s]; ++e)
      used[(int64_t)p->block_tables[(int64_t)s * p->max_blocks_per_seq + e / p->block_tokens] * p->block_tokens +
           e % p->block_tokens] = 1;
  for (int64_t r = 0; r < rows; ++r)
    if (!used[r])
      for (int32_t j = 0; j < kv_dim; ++j) {
        p->k_h[r * kv_dim + j] = 0xFFFF;
        p->v_h[r * kv_dim + j] = 0xFFFF;
      }
  free(used);
  const size_t pool_n = (size_t)rows * (size_t)kv_dim;
  UP_CUDA_CHECK(cudaMemcpy(p->k_d, p->k_h, 2 * pool_n, cudaMemcpyHostToDevice));
  UP_CUDA_CHECK(cudaMemcpy(p->v_d, p->v_h, 2 * pool_n, cudaMemcpyHostToDevice));
}

/* The device view of the problem, as up_cuda_attention takes it. */
static inline void attn_problem_device_view(const attn_problem *p, up_kv_pool *pool, up_attn_batch *batch) {
  pool->k = p->k_d;
  pool->v = p->v_d;
  pool->n_blocks = p->n_blocks;
  pool->block_tokens = p->block_tokens;
  pool->kv_dim = p->shape.n_kv_heads * p->shape.head_dim;
  batch->n_seqs = p->n_seqs;
  batch->n_tokens = p->n_tokens;
  batch->cu_seqlens = p->cu_d;
  batch->kv_lens = p->kv_d;
  batch->block_tables = p->bt_d;
  batch->max_blocks_per_seq = p->max_blocks_per_seq;
}

static inline void attn_problem_free(attn_problem *p) {
  free(p->cu_seqlens);
  free(p->kv_lens);
  free(p->block_tables);
  free(p->qkv_h);
  free(p->k_h);
  free(p->v_h);
  free(p->k_f);
  free(p->v_f);
  UP_CUDA_CHECK(cudaFree(p->qkv_d));
  UP_CUDA_CHECK(cudaFree(p->k_d));
  UP_CUDA_CHECK(cudaFree(p->v_d));
  UP_CUDA_CHECK(cudaFree(p->out_d));
  UP_CUDA_CHECK(cudaFree(p->cu_d));
  UP_CUDA_CHECK(cudaFree(p->kv_d));
  UP_CUDA_CHECK(cudaFree(p->bt_d));
}

#endif
