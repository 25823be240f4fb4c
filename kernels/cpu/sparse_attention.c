/* sparse_attention.c — the CPU reference of the block-sparse attention kernel
 * (kernels/sparse_attention_ops.h): per (sparse sequence, head, query block) it
 * gathers the keys of the list row (ranges first, then the extra keys), masks those
 * after each row, and runs the block's softmax over them with two GEMMs; sequences
 * without query blocks go through the dense CPU attention unchanged. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/sparse_ops.h"

/* Dense causal attention of sequence s alone: the batch narrowed to it. */
static void dense_sequence(up_backend *be, void *out, const void *qkv, const up_kv_pool *pool,
                           const up_attn_batch *batch, const up_attn_shape *shape, int32_t s) {
  const int32_t first = batch->cu_seqlens[s];
  const int32_t cu[2] = {0, batch->cu_seqlens[s + 1] - first};
  const int64_t qkv_stride = (int64_t)(shape->n_heads + 2 * shape->n_kv_heads) * shape->head_dim;
  const int64_t out_stride = (int64_t)shape->n_heads * shape->head_dim;
  const up_attn_batch one = {.n_seqs = 1, .n_tokens = cu[1], .cu_seqlens = cu, .kv_lens = batch->kv_lens + s,
                             .block_tables = batch->block_tables + (int64_t)s * batch->max_blocks_per_seq,
                             .max_blocks_per_seq = batch->max_blocks_per_seq};
  up_cpu_attention(be, (float *)out + first * out_stride, (const float *)qkv + first * qkv_stride, pool, &one, shape,
                   0);
}

/* Keys of list row r inside [0, limit): the ranges' keys, then the extra keys. A row
 * naming more than `limit` keys repeats one, which the contract forbids. */
static int32_t list_keys(const up_sparse_pattern *p, int64_t r, int32_t limit, int32_t *keys) {
  int32_t n = 0;
#define PUSH_KEY(j)                                                                                              \
  do {                                                                                                           \
    if (n == limit) UP_FATAL("sparse attention: list row %lld names a key twice", (long long)r);                 \
    keys[n++] = (j);                                                                                             \
  } while (0)
  for (int32_t i = p->range_ptr[r]; i < p->range_ptr[r + 1]; ++i) {
    const int32_t a = p->range_start[i];
    if (a < 0) UP_FATAL("sparse attention: list row %lld has a range starting at %d", (long long)r, (int)a);
    for (int32_t j = a; j < a + p->block_k && j < limit; ++j) PUSH_KEY(j);
  }
  for (int32_t i = p->column_ptr[r]; i < p->column_ptr[r + 1]; ++i) {
    const int32_t j = p->column_index[i];
    if (j < 0) UP_FATAL("sparse attention: list row %lld has extra key %d", (long long)r, (int)j);
    if (j < limit) PUSH_KEY(j);
  }
#undef PUSH_KEY
  return n;
}

/* Scores rows [n_rows][n_keys] of rows first_row.. against keys: mask keys after each
 * row, softmax in place (a row with no visible key becomes zeros). */
static void masked_softmax(float *scores, int32_t n_rows, int32_t n_keys, const int32_t *keys, int32_t first_row) {
  for (int32_t i = 0; i < n_rows; ++i) {
    float *row = scores + (int64_t)i * n_keys;
    const int32_t t = first_row + i;
    float max = -INFINITY;
    for (int32_t c = 0; c < n_keys; ++c)
      if (keys[c] <= t && row[c] > max) max = row[c];
    double sum = 0.0;
    for (int32_t c = 0; c < n_keys; ++c) {
      row[c] = keys[c] <= t ? expf(row[c] - max) : 0.0f;
      sum += row[c];
    }
    const float inv = sum > 0.0 ? (float)(1.0 / sum) : 0.0f;
    for (int32_t c = 0; c < n_keys; ++c) row[c] *= inv;
  }
}

static void sparse_sequence(const void *qkv, void *out, const up_kv_pool *pool, const up_attn_batch *batch,
                            const up_attn_shape *shape, const up_sparse_pattern *p, int32_t s) {
  const int32_t first = batch->cu_seqlens[s], n = batch->cu_seqlens[s + 1] - first, hd = shape->head_dim;
  const int32_t nq = (n + p->block_q - 1) / p->block_q, group = shape->n_heads / shape->n_kv_heads;
  if (batch->kv_lens[s] != n)
    UP_FATAL("sparse attention: sequence %d has %d cached entries for %d rows (needs a whole-prompt prefill)", (int)s,
             (int)batch->kv_lens[s], (int)n);
  if (p->qblock_start_host[s + 1] - p->qblock_start_host[s] != nq)
    UP_FATAL("sparse attention: sequence %d has %d query blocks in the pattern, %d rows need %d", (int)s,
             (int)(p->qblock_start_host[s + 1] - p->qblock_start_host[s]), (int)n, (int)nq);
  const int64_t qkv_stride = (int64_t)(shape->n_heads + 2 * shape->n_kv_heads) * hd;
  const int64_t out_stride = (int64_t)shape->n_heads * hd;
  /* A list row holds distinct keys below n: at most n of them. */
  float *keys = up_malloc_or_die(sizeof(float) * (size_t)n * (size_t)hd, "sparse attention keys");
  float *values = up_malloc_or_die(sizeof(float) * (size_t)n * (size_t)hd, "sparse attention values");
  float *k_sel = up_malloc_or_die(sizeof(float) * (size_t)n * (size_t)hd, "sparse attention gathered keys");
  float *v_sel = up_malloc_or_die(sizeof(float) * (size_t)n * (size_t)hd, "sparse attention gathered values");
  int32_t *key_index = up_malloc_or_die(sizeof(int32_t) * (size_t)n, "sparse attention key list");
  float *scores = up_malloc_or_die(sizeof(float) * (size_t)p->block_q * (size_t)n, "sparse attention scores");
  const int32_t *block_table = batch->block_tables + (int64_t)s * batch->max_blocks_per_seq;
  for (int32_t g = 0; g < shape->n_kv_heads; ++g) {
    up_cpu_kv_gather(pool, block_table, n, g, hd, 0, keys);
    up_cpu_kv_gather(pool, block_table, n, g, hd, 1, values);
    for (int32_t h = g * group; h < (g + 1) * group; ++h)
      for (int32_t b = 0; b < nq; ++b) {
        const int32_t m0 = b * p->block_q, rows = n - m0 < p->block_q ? n - m0 : p->block_q;
        const int64_t r = (int64_t)(p->qblock_start_host[s] + b) * p->n_heads + h;
        const int32_t count = list_keys(p, r, m0 + rows, key_index);
        float *o = (float *)out + (first + m0) * out_stride + (int64_t)h * hd;
        if (count == 0) {
          for (int32_t i = 0; i < rows; ++i) memset(o + i * out_stride, 0, sizeof(float) * (size_t)hd);
          continue;
        }
        for (int32_t c = 0; c < count; ++c) {
          memcpy(k_sel + (int64_t)c * hd, keys + (int64_t)key_index[c] * hd, sizeof(float) * (size_t)hd);
          memcpy(v_sel + (int64_t)c * hd, values + (int64_t)key_index[c] * hd, sizeof(float) * (size_t)hd);
        }
        const float *q = (const float *)qkv + (first + m0) * qkv_stride + (int64_t)h * hd;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, count, hd, shape->scale, q, (int)qkv_stride, k_sel,
                    hd, 0.0f, scores, count);
        masked_softmax(scores, rows, count, key_index, m0);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, count, 1.0f, scores, count, v_sel, hd, 0.0f,
                    o, (int)out_stride);
      }
  }
  free(keys);
  free(values);
  free(k_sel);
  free(v_sel);
  free(key_index);
  free(scores);
}

void up_cpu_sparse_attention(up_backend *be, void *out, const void *qkv, const up_kv_pool *pool,
                             const up_attn_batch *batch, const up_attn_shape *shape, const up_sparse_pattern *p) {
  if (p->n_seqs != batch->n_seqs || p->n_heads != shape->n_heads || p->block_q <= 0 || p->block_k <= 0)
    UP_FATAL("sparse attention: pattern of %d sequences x %d heads (blocks %d x %d) for a batch of %d x %d",
             (int)p->n_seqs, (int)p->n_heads, (int)p->block_q, (int)p->block_k, (int)batch->n_seqs,
             (int)shape->n_heads);
  for (int32_t s = 0; s < batch->n_seqs; ++s) {
    if (batch->cu_seqlens[s + 1] == batch->cu_seqlens[s]) continue;
    if (p->qblock_start_host[s + 1] > p->qblock_start_host[s])
      sparse_sequence(qkv, out, pool, batch, shape, p, s);
    else
      dense_sequence(be, out, qkv, pool, batch, shape, s);
  }
}
