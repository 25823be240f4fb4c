/* cpu_attention.c — the CPU backend's paged KV cache writes and causal GQA attention
 * over it, full or over a sliding window of cache entries (kernels/ops.h). Attention
 * gathers one kv head of one sequence into contiguous scratch, then works through
 * query rows in tiles with two GEMMs each, so a 4096-token prefill stays well under a
 * second per layer on two cores; a tile's GEMMs span only the keys its rows see.
 * The same loop serves UniPrefill's bounded attention (kernels/uniprefill_ops.h), where
 * each row brings its own first visible entry instead of a window. */
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

/* Which entries each row sees: a window of entries (0: all before it), or per packed
 * row its first visible entry (first_entry, non-decreasing within a sequence). */
typedef struct visible_rule {
  int32_t window;
  const int32_t *first_entry;
} visible_rule;

/* The first cache entry packed row `row`, at cache index `index`, sees. */
static int32_t first_visible(const visible_rule *rule, int32_t row, int32_t index) {
  if (rule->first_entry) return rule->first_entry[row];
  return rule->window > 0 && index - rule->window + 1 > 0 ? index - rule->window + 1 : 0;
}

/* Row r of scores (packed row first_row + r, cache index first_index + r) holds keys
 * from cache entry key0 on and sees entries first_visible(..)..first_index + r: mask
 * the rest, then softmax in place. Masked entries become exact zeros so the P V GEMM
 * can run over the whole tile. */
static void causal_softmax_rows(float *scores, int32_t n_rows, int32_t n_keys, int32_t first_row,
                                int32_t first_index, int32_t key0, const visible_rule *rule) {
  for (int32_t r = 0; r < n_rows; ++r) {
    float *row = scores + (int64_t)r * n_keys;
    const int32_t from = first_visible(rule, first_row + r, first_index + r) - key0;
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

/* A rule's per-row first entries must lie in 0..the row's own index and never move
 * back within a sequence: the tiles gather from their first row's entry on. */
static void check_first_entries(const up_attn_batch *batch, const int32_t *first_entry) {
  for (int32_t s = 0; s < batch->n_seqs; ++s) {
    const int32_t first_row = batch->cu_seqlens[s], n_rows = batch->cu_seqlens[s + 1] - first_row;
    const int32_t prior = batch->kv_lens[s] - n_rows;
    for (int32_t t = 0; t < n_rows; ++t) {
      const int32_t e = first_entry[first_row + t];
      if (e < 0 || e > prior + t || (t > 0 && e < first_entry[first_row + t - 1]))
        UP_FATAL("bounded attention: row %d of sequence %d (cache index %d) starts at entry %d", t, s, prior + t, e);
    }
  }
}

static void attention_rows(const void *qkv, void *out, const up_kv_pool *pool, const up_attn_batch *batch,
                           const up_attn_shape *shape, const visible_rule *rule) {
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
    const int32_t first_entry = n_rows > 0 ? first_visible(rule, batch->cu_seqlens[s], entries - n_rows) : entries;
    for (int32_t b = first_entry / pool->block_tokens; b * pool->block_tokens < entries;
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
    const int32_t first_block = first_visible(rule, first_row, prior) / pool->block_tokens;
    const int32_t base = first_block * pool->block_tokens;
    const int32_t *block_table = batch->block_tables + (int64_t)s * batch->max_blocks_per_seq + first_block;
    for (int32_t kvh = 0; kvh < shape->n_kv_heads; ++kvh) {
      up_cpu_kv_gather(pool, block_table, batch->kv_lens[s] - base, kvh, hd, 0, keys);
      up_cpu_kv_gather(pool, block_table, batch->kv_lens[s] - base, kvh, hd, 1, values);
      for (int32_t h = kvh * group; h < (kvh + 1) * group; ++h) {
        for (int32_t t0 = 0; t0 < n_rows; t0 += ATTN_TILE_ROWS) {
          const int32_t tile = n_rows - t0 < ATTN_TILE_ROWS ? n_rows - t0 : ATTN_TILE_ROWS;
          /* The tile's keys: from what its first row sees to what its last row sees. */
          const int32_t key0 = first_visible(rule, first_row + t0, prior + t0);
          const int32_t n_keys = prior + t0 + tile - key0;
          const float *q = (const float *)qkv + (first_row + t0) * qkv_stride + (int64_t)h * hd;
          const float *k = keys + (int64_t)(key0 - base) * hd, *v = values + (int64_t)(key0 - base) * hd;
          float *o = (float *)out + (first_row + t0) * out_stride + (int64_t)h * hd;
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, tile, n_keys, hd, shape->scale, q,
                      (int)qkv_stride, k, hd, 0.0f, scores, n_keys);
          causal_softmax_rows(scores, tile, n_keys, first_row + t0, prior + t0, key0, rule);
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

void up_cpu_attention(up_backend *be, void *out, const void *qkv, const up_kv_pool *pool,
                      const up_attn_batch *batch, const up_attn_shape *shape, int32_t window) {
  (void)be;
  check_pool_shape(pool, shape, "attention");
  if (window < 0) UP_FATAL("attention: window %d must be 0 (full causal) or positive", window);
  attention_rows(qkv, out, pool, batch, shape, &(visible_rule){.window = window});
}

void up_cpu_bounded_attention(up_backend *be, void *out, const void *qkv, const up_kv_pool *pool,
                              const up_attn_batch *batch, const up_attn_shape *shape, const int32_t *first_entry) {
  (void)be;
  check_pool_shape(pool, shape, "bounded attention");
  check_first_entries(batch, first_entry);
  attention_rows(qkv, out, pool, batch, shape, &(visible_rule){.first_entry = first_entry});
}
