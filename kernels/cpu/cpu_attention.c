/* cpu_attention.c — the CPU backend's paged KV cache writes and causal GQA attention
 * over it, full or over a sliding window of cache entries (kernels/ops.h). Attention
 * gathers one kv head of one sequence into contiguous scratch, then works through
 * query rows in tiles with two GEMMs each, so a 4096-token prefill stays well under a
 * second per layer on two cores; a tile's GEMMs span only the keys its rows see. */
#include "kernels/cpu/cpu_ops.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_backend.h"
#include "core/fatal.h"

/* Query rows per tile: enough for efficient GEMMs, few enough that a tile's scores
 * (rows x cached entries) stay small for long prompts and little of the causal
 * triangle's masked half is computed. */
enum { ATTN_TILE_ROWS = 128 };

static void check_pool_shape(const up_kv_pool *pool, const up_attn_shape *shape, const char *op) {
  if (pool->kv_dim != shape->n_kv_heads * shape->head_dim)
    UP_FATAL("%s: pool kv_dim %d != n_kv_heads %d * head_dim %d", op, pool->kv_dim, shape->n_kv_heads,
             shape->head_dim);
  if (shape->n_kv_heads <= 0 || shape->n_heads % shape->n_kv_heads != 0)
    UP_FATAL("%s: n_heads %d is not a multiple of n_kv_heads %d", op, shape->n_heads, shape->n_kv_heads);
}

void up_cpu_kv_store(up_backend *be, const up_kv_pool *pool, const void *qkv, const int32_t *slot_mapping,
                     int32_t n_tokens, const up_attn_shape *shape) {
  check_pool_shape(pool, shape, "kv_store");
  const int32_t hd = shape->head_dim, kv_dim = pool->kv_dim;
  const int64_t row_stride = (int64_t)(shape->n_heads + 2 * shape->n_kv_heads) * hd;
  const int64_t n_slots = (int64_t)pool->n_blocks * pool->block_tokens;
  for (int32_t t = 0; t < n_tokens; ++t) {
    const int64_t slot = slot_mapping[t];
    if (slot < 0 || slot >= n_slots)
      UP_FATAL("kv_store: slot %lld of row %d outside the pool's %lld slots", (long long)slot, t,
               (long long)n_slots);
    const float *row = (const float *)qkv + t * row_stride;
    memcpy((float *)pool->k + slot * kv_dim, row + (int64_t)shape->n_heads * hd, sizeof(float) * (size_t)kv_dim);
    memcpy((float *)pool->v + slot * kv_dim, row + (int64_t)(shape->n_heads + shape->n_kv_heads) * hd,
           sizeof(float) * (size_t)kv_dim);
  }
}

/* The first cache entry the row at cache index `index` sees (window 0: the first). */
static int32_t first_visible(int32_t index, int32_t window) {
  return window > 0 && index - window + 1 > 0 ? index - window + 1 : 0;
}

/* Row r of scores holds keys from cache entry key0 on and sees entries
 * first_visible(first_index + r)..first_index + r: mask the rest, then softmax in
 * place. Masked entries become exact zeros so the P V GEMM can run over the whole tile. */
static void causal_softmax_rows(float *scores, int32_t n_rows, int32_t n_keys, int32_t first_index, int32_t key0,
                                int32_t window) {
  for (int32_t r = 0; r < n_rows; ++r) {
    float *row = scores + (int64_t)r * n_keys;
    const int32_t from = first_visible(first_index + r, window) - key0;
    const int32_t visible = first_index + r + 1 - key0;
    for (int32_t j = 0; j < from; ++j) row[j] = 0.0f;
    float max = row[from];
    for (int32_t j = from + 1; j < visible; ++j) max = row[j] > max ? row[j] : max;
    double sum = 0.0;
    for (int32_t j = from; j < visible; ++j) {
      row[j] = expf(row[j] - max);
      sum += row[j];
    }
    const float inv_sum = (float)(1.0 / sum);
    for (int32_t j = from; j < visible; ++j) row[j] *= inv_sum;
    for (int32_t j = visible; j < n_keys; ++j) row[j] = 0.0f;
  }
}

void up_cpu_attention(up_backend *be, void *out, const void *qkv, const up_kv_pool *pool,
                      const up_attn_batch *batch, const up_attn_shape *shape, int32_t window) {
  check_pool_shape(pool, shape, "attention");
  if (window < 0) UP_FATAL("attention: window %d must be 0 (full causal) or positive", window);
  const int32_t hd = shape->head_dim, group = shape->n_heads / shape->n_kv_heads;
  const int64_t qkv_stride = (int64_t)(shape->n_heads + 2 * shape->n_kv_heads) * hd;
  const int64_t out_stride = (int64_t)shape->n_heads * hd;
  const int64_t seq_capacity = (int64_t)batch->max_blocks_per_seq * pool->block_tokens;

  int32_t max_entries = 0;
  for (int32_t s = 0; s < batch->n_seqs; ++s) {
    const int32_t n_rows = batch->cu_seqlens[s + 1] - batch->cu_seqlens[s];
    const int32_t entries = batch->kv_lens[s];
    if (n_rows < 0 || entries < n_rows || entries > seq_capacity)
      UP_FATAL("attention: sequence %d has %d rows and %d cached entries (block table holds %lld)", s, n_rows,
               entries, (long long)seq_capacity);
    /* Blocks wholly before the first row's window may have gone back to the pool. */
    const int32_t *block_table = batch->block_tables + (int64_t)s * batch->max_blocks_per_seq;
    for (int32_t b = first_visible(entries - n_rows, window) / pool->block_tokens; b * pool->block_tokens < entries;
         ++b)
      if (block_table[b] < 0 || block_table[b] >= pool->n_blocks)
        UP_FATAL("attention: sequence %d block %d is %d, outside the pool's %d blocks", s, b, block_table[b],
                 pool->n_blocks);
    if (entries > max_entries) max_entries = entries;
  }
  if (max_entries == 0) return;

  float *keys = up_malloc_or_die(sizeof(float) * (size_t)max_entries * (size_t)hd, "attention keys");
  float *values = up_malloc_or_die(sizeof(float) * (size_t)max_entries * (size_t)hd, "attention values");
  float *scores = up_malloc_or_die(sizeof(float) * (size_t)ATTN_TILE_ROWS * (size_t)max_entries,
                                   "attention scores");
  for (int32_t s = 0; s < batch->n_seqs; ++s) {
    const int32_t first_row = batch->cu_seqlens[s];
    const int32_t n_rows = batch->cu_seqlens[s + 1] - first_row;
    if (n_rows == 0) continue;
    const int32_t prior = batch->kv_lens[s] - n_rows; /* entries cached before this step */
    /* Gather from the block of the first entry any row sees: entry e sits at e - base. */
    const int32_t first_block = first_visible(prior, window) / pool->block_tokens;
    const int32_t base = first_block * pool->block_tokens;
    const int32_t *block_table = batch->block_tables + (int64_t)s * batch->max_blocks_per_seq + first_block;
    for (int32_t kvh = 0; kvh < shape->n_kv_heads; ++kvh) {
      up_cpu_kv_gather(pool, block_table, batch->kv_lens[s] - base, kvh, hd, 0, keys);
      up_cpu_kv_gather(pool, block_table, batch->kv_lens[s] - base, kvh, hd, 1, values);
      for (int32_t h = kvh * group; h < (kvh + 1) * group; ++h) {
        for (int32_t t0 = 0; t0 < n_rows; t0 += ATTN_TILE_ROWS) {
          const int32_t tile = n_rows - t0 < ATTN_TILE_ROWS ? n_rows - t0 : ATTN_TILE_ROWS;
          /* The tile's keys: from what its first row sees to what its last row sees. */
          const int32_t key0 = first_visible(prior + t0, window);
          const int32_t n_keys = prior + t0 + tile - key0;
          const float *q = (const float *)qkv + (first_row + t0) * qkv_stride + (int64_t)h * hd;
          const float *k = keys + (int64_t)(key0 - base) * hd, *v = values + (int64_t)(key0 - base) * hd;
          float *o = (float *)out + (first_row + t0) * out_stride + (int64_t)h * hd;
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, tile, n_keys, hd, shape->scale, q,
                      (int)qkv_stride, k, hd, 0.0f, scores, n_keys);
          causal_softmax_rows(scores, tile, n_keys, prior + t0, key0, window);
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, tile, hd, n_keys, 1.0f, scores, n_keys, v,
                      hd, 0.0f, o, (int)out_stride);
        }
      }
    }
  }
  free(keys);
  free(values);
  free(scores);
}
