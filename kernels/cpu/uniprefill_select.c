/* uniprefill_select.c — the CPU reference of UniPrefill's token selection, written
 * step by step after ../shared/ALGORITHMS.md: causal softmax scores of the last
 * queries, block sums, top-p (or fixed budget) with the crossing block kept, sinks and
 * last queries forced, then the surviving packed rows in order. */
#include "kernels/cpu/uniprefill_select.h"

#include <cblas.h>
#include <stdbool.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_backend.h"
#include "core/fatal.h"

/* Add query head h's share of the token scores into scores[0 .. n_tokens): the causal
 * softmax of its last n_q queries against the sequence's keys (gathered for its KV
 * head). Every sum runs in the order the whole-model selection has always used (per
 * query, then per key), so summing heads in ascending order reproduces it exactly. */
static void add_head_token_scores(const float *q_rows, int32_t n_tokens, const float *keys,
                                  const up_attn_shape *shape, int32_t h, int32_t n_q, float *logits,
                                  double *scores) {
  const int32_t hd = shape->head_dim;
  const int32_t row_stride = (shape->n_heads + 2 * shape->n_kv_heads) * hd;
  const int32_t first_q = n_tokens - n_q;
  /* The head's queries read in place from the fused rows (leading dimension row_stride). */
  const float *queries = q_rows + (size_t)first_q * row_stride + (size_t)h * hd;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_q, n_tokens, hd, shape->scale, queries, row_stride, keys,
              hd, 0.0f, logits, n_tokens);
  for (int32_t i = 0; i < n_q; ++i) {
    const int32_t visible = first_q + i + 1; /* causal: keys 0..first_q+i */
    const float *row = logits + (size_t)i * n_tokens;
    float max = row[0];
    for (int32_t j = 1; j < visible; ++j) max = row[j] > max ? row[j] : max;
    double denom = 0.0;
    for (int32_t j = 0; j < visible; ++j) denom += exp((double)row[j] - max);
    for (int32_t j = 0; j < visible; ++j) scores[j] += exp((double)row[j] - max) / denom;
  }
}

void up_select_token_scores(const float *q_rows, int32_t n_tokens, const up_kv_pool *pool,
                            const int32_t *block_table, const up_attn_shape *shape, int32_t last_q,
                            double *scores) {
  const int32_t hd = shape->head_dim;
  const int32_t group = shape->n_heads / shape->n_kv_heads;
  const int32_t n_q = last_q < n_tokens ? last_q : n_tokens;
  float *keys = up_malloc_or_die(sizeof(float) * (size_t)n_tokens * (size_t)hd, "selection keys");
  float *logits = up_malloc_or_die(sizeof(float) * (size_t)n_q * (size_t)n_tokens, "selection logits");
  memset(scores, 0, sizeof(double) * (size_t)n_tokens);
  for (int32_t g = 0; g < shape->n_kv_heads; ++g) {
    up_cpu_kv_gather(pool, block_table, n_tokens, g, hd, 0, keys);
    for (int32_t h = g * group; h < (g + 1) * group; ++h)
      add_head_token_scores(q_rows, n_tokens, keys, shape, h, n_q, logits, scores);
  }
  free(keys);
  free(logits);
}

/* Block sums of one sequence's token scores (the last block may be short). */
static void sum_blocks(const double *scores, int32_t n_tokens, int32_t block, double *block_scores) {
  const int32_t n_blocks = (n_tokens + block - 1) / block;
  for (int32_t b = 0; b < n_blocks; ++b) {
    block_scores[b] = 0.0;
    const int32_t end = (b + 1) * block < n_tokens ? (b + 1) * block : n_tokens;
    for (int32_t t = b * block; t < end; ++t) block_scores[b] += scores[t];
  }
}

void up_cpu_uniprefill_head_scores(up_backend *be, float *head_scores, const void *qkv, const up_kv_pool *pool,
                                   const up_attn_batch *batch, const up_attn_shape *shape,
                                   const int32_t *block_offsets_host, const up_select_params *params) {
  const int32_t hd = shape->head_dim, group = shape->n_heads / shape->n_kv_heads;
  const int32_t row_stride = (shape->n_heads + 2 * shape->n_kv_heads) * hd;
  const int32_t total_blocks = block_offsets_host[batch->n_seqs];
  int32_t max_rows = 1;
  for (int32_t s = 0; s < batch->n_seqs; ++s) {
    const int32_t n = batch->cu_seqlens[s + 1] - batch->cu_seqlens[s];
    max_rows = n > max_rows ? n : max_rows;
  }
  const int32_t max_q = params->last_q < max_rows ? params->last_q : max_rows;
  float *keys = up_malloc_or_die(sizeof(float) * (size_t)max_rows * (size_t)hd, "selection keys");
  float *logits = up_malloc_or_die(sizeof(float) * (size_t)max_q * (size_t)max_rows, "selection logits");
  double *scores = up_malloc_or_die(sizeof(double) * (size_t)max_rows, "token scores");
  double *block_scores = up_malloc_or_die(sizeof(double) * (size_t)(max_rows / params->block + 1), "block scores");
  for (int32_t s = 0; s < batch->n_seqs; ++s) {
    const int32_t n_blocks = block_offsets_host[s + 1] - block_offsets_host[s];
    if (n_blocks == 0) continue;
    const int32_t first = batch->cu_seqlens[s];
    const int32_t n = batch->cu_seqlens[s + 1] - first;
    UP_ASSERT(batch->kv_lens[s] == n && n_blocks == (n + params->block - 1) / params->block,
              "head scores need a whole-prompt prefill in whole blocks: sequence %d has %d cached entries, %d rows, "
              "%d blocks", (int)s, (int)batch->kv_lens[s], (int)n, (int)n_blocks);
    const float *q_rows = (const float *)qkv + (size_t)first * row_stride;
    const int32_t n_q = params->last_q < n ? params->last_q : n;
    for (int32_t g = 0; g < shape->n_kv_heads; ++g) {
      up_cpu_kv_gather(pool, batch->block_tables + (size_t)s * batch->max_blocks_per_seq, n, g, hd, 0, keys);
      for (int32_t h = g * group; h < (g + 1) * group; ++h) {
        memset(scores, 0, sizeof(double) * (size_t)n);
        add_head_token_scores(q_rows, n, keys, shape, h, n_q, logits, scores);
        sum_blocks(scores, n, params->block, block_scores);
        float *out = head_scores + (size_t)h * total_blocks + block_offsets_host[s];
        for (int32_t b = 0; b < n_blocks; ++b) out[b] = (float)block_scores[b];
      }
    }
  }
  free(keys);
  free(logits);
  free(scores);
  free(block_scores);
}

typedef struct ranked_block {
  double score;
  int32_t index;
} ranked_block;

/* Descending score; equal scores rank the lower block index first (determinism). */
static int compare_ranked(const void *a, const void *b) {
  const ranked_block *x = a, *y = b;
  if (x->score != y->score) return x->score > y->score ? -1 : 1;
  return (x->index > y->index) - (x->index < y->index);
}

int32_t up_select_blocks(const double *block_scores, int32_t n_blocks, float top_p, float keep_fraction,
                         uint8_t *keep_block) {
  memset(keep_block, 0, (size_t)n_blocks);
  if (n_blocks <= 0) return 0;
  for (int32_t b = 0; b < n_blocks; ++b) {
    if (isfinite(block_scores[b])) continue;
    /* NaN or inf in the sequence's queries or keys: no ranking means anything. Keeping
     * every block leaves the sequence as dense would, and the non-finite values reach
     * its logits, where the argmax flags the sequence and its request fails alone. */
    memset(keep_block, 1, (size_t)n_blocks);
    return n_blocks;
  }
  ranked_block *ranked = up_malloc_or_die(sizeof(ranked_block) * (size_t)n_blocks, "ranked blocks");
  for (int32_t b = 0; b < n_blocks; ++b) {
    /* Sums of softmax probabilities: a finite negative score is a bug, not an input. */
    UP_ASSERT(block_scores[b] >= 0.0, "block %d has score %g", (int)b, block_scores[b]);
    ranked[b] = (ranked_block){block_scores[b], b};
  }
  qsort(ranked, (size_t)n_blocks, sizeof(ranked_block), compare_ranked);
  int32_t kept = 0;
  if (keep_fraction > 0.0f) {
    /* keep_fraction is a float: 0.4f * 5 is 2.00000003, which must count as 2. */
    int32_t budget = (int32_t)ceil((double)keep_fraction * n_blocks - 1e-4);
    if (budget < 1) budget = 1;
    if (budget > n_blocks) budget = n_blocks;
    for (; kept < budget; ++kept) keep_block[ranked[kept].index] = 1;
  } else {
    /* The total is summed in rank order, so every running prefix is <= it in floating
     * point too: p = 1 keeps every block exactly. */
    double total = 0.0;
    for (int32_t r = 0; r < n_blocks; ++r) total += ranked[r].score;
    double before = 0.0;
    for (int32_t r = 0; r < n_blocks; ++r) {
      if (r > 0 && before > (double)top_p * total) break;
      keep_block[ranked[r].index] = 1;
      ++kept;
      before += ranked[r].score;
    }
  }
  free(ranked);
  return kept;
}

int32_t up_select_token_mask(const uint8_t *keep_block, int32_t n_tokens, const up_select_params *params,
                             uint8_t *keep_token) {
  int32_t kept = 0;
  for (int32_t t = 0; t < n_tokens; ++t) {
    keep_token[t] = keep_block[t / params->block] || t < params->sink || t >= n_tokens - params->last_q;
    kept += keep_token[t];
  }
  return kept;
}

int32_t up_select_append_rows(const uint8_t *keep_block, int32_t first, int32_t n_tokens,
                              const up_select_params *params, uint8_t *keep_token, int32_t *keep_rows, int32_t out) {
  up_select_token_mask(keep_block, n_tokens, params, keep_token);
  for (int32_t t = 0; t < n_tokens; ++t)
    if (keep_token[t]) keep_rows[out++] = first + t;
  return out;
}

int32_t up_cpu_uniprefill_select(up_backend *be, int32_t *keep_rows, int32_t *new_cu_seqlens_host,
                                 const void *qkv, const up_kv_pool *pool, const up_attn_batch *batch,
                                 const up_attn_shape *shape, const uint8_t *is_candidate_host,
                                 const up_select_params *params) {
  const int32_t row_stride = (shape->n_heads + 2 * shape->n_kv_heads) * shape->head_dim;
  int32_t max_rows = 1;
  for (int32_t s = 0; s < batch->n_seqs; ++s) {
    const int32_t n = batch->cu_seqlens[s + 1] - batch->cu_seqlens[s];
    max_rows = n > max_rows ? n : max_rows;
  }
  const int32_t max_blocks = (max_rows + params->block - 1) / params->block;
  double *scores = up_malloc_or_die(sizeof(double) * (size_t)max_rows, "token scores");
  double *block_scores = up_malloc_or_die(sizeof(double) * (size_t)max_blocks, "block scores");
  uint8_t *keep_block = up_malloc_or_die((size_t)max_blocks, "block mask");
  uint8_t *keep_token = up_malloc_or_die((size_t)max_rows, "token mask");
  int32_t out = 0;
  new_cu_seqlens_host[0] = 0;
  for (int32_t s = 0; s < batch->n_seqs; ++s) {
    const int32_t first = batch->cu_seqlens[s];
    const int32_t n = batch->cu_seqlens[s + 1] - first;
    const bool candidate = is_candidate_host[s] && n > params->sink + params->last_q;
    if (!candidate) {
      for (int32_t t = 0; t < n; ++t) keep_rows[out++] = first + t;
    } else {
      UP_ASSERT(batch->kv_lens[s] == n, "selection needs a whole-prompt prefill: sequence %d has %d cached entries "
                "for %d rows", (int)s, (int)batch->kv_lens[s], (int)n);
      up_select_token_scores((const float *)qkv + (size_t)first * row_stride, n, pool,
                             batch->block_tables + (size_t)s * batch->max_blocks_per_seq, shape, params->last_q,
                             scores);
      const int32_t n_blocks = (n + params->block - 1) / params->block;
      sum_blocks(scores, n, params->block, block_scores);
      up_select_blocks(block_scores, n_blocks, params->top_p, params->keep_fraction, keep_block);
      out = up_select_append_rows(keep_block, first, n, params, keep_token, keep_rows, out);
    }
    new_cu_seqlens_host[s + 1] = out;
  }
  free(scores);
  free(block_scores);
  free(keep_block);
  free(keep_token);
  return out;
}
