/* test_uniprefill_select.c — UniPrefill selection (kernels/cpu/uniprefill_select.c)
 * against hand-worked examples and its defining properties: the crossing block is
 * kept, ties go to the lower index, p = 1 keeps everything, the kept set grows with p,
 * sinks and last queries always survive, and in a packed batch every sequence gets the
 * mask it would get alone. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/uniprefill_select.h"

static const up_select_params k_default_params = {.top_p = 0.99f, .keep_fraction = 0.0f, .block = 64, .sink = 128,
                                                  .last_q = 128};

Test(select_blocks, top_p_keeps_the_crossing_block) {
  /* Shares 1/8, 4/8, 2/8, 1/8. Ranked: b1 (share before 0), b2 (4/8), b0 (6/8), b3 (7/8). */
  const double scores[4] = {1, 4, 2, 1};
  uint8_t keep[4];
  cr_assert_eq(up_select_blocks(scores, 4, 0.625f, 0.0f, keep), 2);
  cr_assert(keep[1] && keep[2] && !keep[0] && !keep[3]);
  /* p = 0.5: b2's share before (0.5) is still <= p, so the block that crosses p is kept. */
  cr_assert_eq(up_select_blocks(scores, 4, 0.5f, 0.0f, keep), 2);
  cr_assert(keep[1] && keep[2]);
  /* Tiny p keeps the top block alone. */
  cr_assert_eq(up_select_blocks(scores, 4, 0.01f, 0.0f, keep), 1);
  cr_assert(keep[1]);
}

Test(select_blocks, ties_go_to_the_lower_index) {
  const double scores[4] = {1, 4, 2, 1};
  uint8_t keep[4];
  /* p = 0.75: b0 and b3 tie; b0 ranks first, its share before is exactly 6/8 -> kept; b3 not. */
  cr_assert_eq(up_select_blocks(scores, 4, 0.75f, 0.0f, keep), 3);
  cr_assert(keep[0] && keep[1] && keep[2] && !keep[3]);
  const double flat[5] = {2, 2, 2, 2, 2};
  uint8_t keep5[5];
  cr_assert_eq(up_select_blocks(flat, 5, 0.0f, 0.4f, keep5), 2);
  cr_assert(keep5[0] && keep5[1] && !keep5[2] && !keep5[3] && !keep5[4]);
}

Test(select_blocks, fixed_budget_rounds_up_and_keeps_at_least_one) {
  const double scores[4] = {1, 4, 2, 1};
  uint8_t keep[4];
  cr_assert_eq(up_select_blocks(scores, 4, 0.99f, 0.5f, keep), 2);
  cr_assert(keep[1] && keep[2]);
  cr_assert_eq(up_select_blocks(scores, 4, 0.99f, 0.3f, keep), 2); /* ceil(1.2) */
  cr_assert_eq(up_select_blocks(scores, 4, 0.99f, 0.01f, keep), 1);
  cr_assert_eq(up_select_blocks(scores, 4, 0.99f, 1.0f, keep), 4);
}

Test(select_blocks, p_one_keeps_everything_even_with_zero_scores) {
  enum { N = 257 };
  double scores[N];
  uint8_t keep[N];
  for (int trial = 0; trial < 20; ++trial) {
    for (int b = 0; b < N; ++b) {
      const double u = up_rng_unit(7, (uint64_t)trial, (uint64_t)b);
      scores[b] = u < 0.1 ? 0.0 : (u < 0.2 ? 1e-300 : u * 1e3);
    }
    cr_assert_eq(up_select_blocks(scores, N, 1.0f, 0.0f, keep), N, "trial %d", trial);
  }
}

Test(select_blocks, kept_set_grows_with_p) {
  enum { N = 200 };
  double scores[N];
  uint8_t lo[N], hi[N];
  for (int b = 0; b < N; ++b) scores[b] = exp(4.0 * up_rng_symmetric(11, 0, (uint64_t)b));
  const float ps[] = {0.05f, 0.2f, 0.5f, 0.8f, 0.9f, 0.99f, 0.999f, 1.0f};
  int32_t prev = 0;
  for (size_t i = 0; i + 1 < sizeof ps / sizeof ps[0]; ++i) {
    const int32_t n_lo = up_select_blocks(scores, N, ps[i], 0.0f, lo);
    const int32_t n_hi = up_select_blocks(scores, N, ps[i + 1], 0.0f, hi);
    cr_assert_geq(n_hi, n_lo);
    cr_assert_geq(n_lo, prev);
    prev = n_lo;
    for (int b = 0; b < N; ++b) cr_assert(!lo[b] || hi[b], "block %d kept at p=%g but not at p=%g", b, ps[i], ps[i + 1]);
  }
}

/* Issue 18: NaN or inf activations used to abort the run here. A non-finite score keeps
 * every block (the sequence stays as dense would have it; its logits then fail it). */
Test(select_blocks, non_finite_scores_keep_every_block) {
  const double with_nan[4] = {1, NAN, 2, 1}, with_inf[4] = {1, INFINITY, 0, 0}, with_minus_inf[3] = {-INFINITY, 1, 1};
  uint8_t keep[4];
  cr_assert_eq(up_select_blocks(with_nan, 4, 0.5f, 0.0f, keep), 4);
  for (int b = 0; b < 4; ++b) cr_assert(keep[b], "block %d", b);
  cr_assert_eq(up_select_blocks(with_inf, 4, 0.99f, 0.25f, keep), 4, "the fixed budget too");
  for (int b = 0; b < 4; ++b) cr_assert(keep[b], "block %d", b);
  cr_assert_eq(up_select_blocks(with_minus_inf, 3, 0.1f, 0.0f, keep), 3);
}

Test(select_token_mask, sinks_and_last_queries_always_kept) {
  const up_select_params p = {.top_p = 0.5f, .block = 64, .sink = 128, .last_q = 128};
  enum { N = 1000 };
  const int32_t n_blocks = (N + 63) / 64;
  uint8_t keep_block[16] = {0};
  uint8_t keep_token[N];
  keep_block[7] = 1; /* tokens 448..511 */
  const int32_t kept = up_select_token_mask(keep_block, N, &p, keep_token);
  cr_assert_eq(n_blocks, 16);
  cr_assert_eq(kept, 128 + 64 + 128);
  for (int t = 0; t < N; ++t) {
    const int expect = t < 128 || (t >= 448 && t < 512) || t >= N - 128;
    cr_assert_eq(keep_token[t], expect, "token %d", t);
  }
}

/* --- the whole operator on a packed batch -------------------------------------- */

typedef struct batch_fixture {
  up_backend *be;
  up_attn_shape shape;
  int32_t n_seqs;
  int32_t cu[8];
  int32_t kv_lens[8];
  int32_t *block_tables;
  int32_t max_blocks;
  up_kv_pool pool;
  float *qkv;
  int32_t n_tokens;
} batch_fixture;

/* Random QKV rows for sequences of the given lengths, keys stored in a pool whose
 * blocks are handed out back to front (so tables are not the identity). */
static void fixture_init(batch_fixture *f, const int32_t *lens, int32_t n_seqs, uint64_t seed, float q_gain) {
  memset(f, 0, sizeof *f);
  f->be = up_cpu_backend_create(1);
  f->shape = (up_attn_shape){.n_heads = 4, .n_kv_heads = 2, .head_dim = 16, .scale = 0.25f};
  f->n_seqs = n_seqs;
  const int32_t bt = 16, row = (4 + 2 * 2) * 16, kv_dim = 2 * 16;
  int32_t total_blocks = 0;
  f->max_blocks = 0;
  for (int32_t s = 0; s < n_seqs; ++s) {
    f->cu[s + 1] = f->cu[s] + lens[s];
    f->kv_lens[s] = lens[s];
    const int32_t b = (lens[s] + bt - 1) / bt;
    total_blocks += b;
    f->max_blocks = b > f->max_blocks ? b : f->max_blocks;
  }
  f->n_tokens = f->cu[n_seqs];
  f->qkv = malloc(sizeof(float) * (size_t)f->n_tokens * row);
  for (int64_t i = 0; i < (int64_t)f->n_tokens * row; ++i) {
    const int32_t col = (int32_t)(i % row);
    f->qkv[i] = (col < 4 * 16 ? q_gain : 1.0f) * up_rng_symmetric(seed, 1, (uint64_t)i);
  }
  f->pool = (up_kv_pool){.n_blocks = total_blocks, .block_tokens = bt, .kv_dim = kv_dim};
  f->pool.k = calloc((size_t)total_blocks * bt * kv_dim, sizeof(float));
  f->pool.v = calloc((size_t)total_blocks * bt * kv_dim, sizeof(float));
  f->block_tables = malloc(sizeof(int32_t) * (size_t)n_seqs * f->max_blocks);
  int32_t next = total_blocks - 1;
  int32_t *slots = malloc(sizeof(int32_t) * (size_t)f->n_tokens);
  for (int32_t s = 0; s < n_seqs; ++s) {
    for (int32_t b = 0; b < f->max_blocks; ++b)
      f->block_tables[s * f->max_blocks + b] = b * bt < lens[s] ? next-- : -1;
    for (int32_t t = 0; t < lens[s]; ++t)
      slots[f->cu[s] + t] = f->block_tables[s * f->max_blocks + t / bt] * bt + t % bt;
  }
  f->be->ops->kv_store(f->be, &f->pool, f->qkv, slots, f->n_tokens, &f->shape);
  free(slots);
}

static void fixture_free(batch_fixture *f) {
  free(f->qkv);
  free(f->pool.k);
  free(f->pool.v);
  free(f->block_tables);
  f->be->ops->destroy(f->be);
}

static up_attn_batch fixture_view(const batch_fixture *f) {
  return (up_attn_batch){.n_seqs = f->n_seqs, .n_tokens = f->n_tokens, .cu_seqlens = f->cu, .kv_lens = f->kv_lens,
                         .block_tables = f->block_tables, .max_blocks_per_seq = f->max_blocks};
}

Test(select_token_scores, match_an_explicit_softmax) {
  const int32_t lens[1] = {300};
  batch_fixture f;
  fixture_init(&f, lens, 1, 3, 2.0f);
  double scores[300], expect[300] = {0};
  const int32_t last_q = 128, hd = 16, row = 8 * 16;
  up_select_token_scores(f.qkv, 300, &f.pool, f.block_tables, &f.shape, last_q, scores);
  for (int32_t h = 0; h < 4; ++h) {
    const int32_t g = h / 2;
    for (int32_t i = 300 - last_q; i < 300; ++i) {
      double logits[300], max = -INFINITY, denom = 0.0;
      for (int32_t j = 0; j <= i; ++j) {
        double dot = 0.0;
        for (int32_t d = 0; d < hd; ++d)
          dot += (double)f.qkv[i * row + h * hd + d] * f.qkv[j * row + 4 * hd + g * hd + d];
        logits[j] = dot * 0.25;
        max = fmax(max, logits[j]);
      }
      for (int32_t j = 0; j <= i; ++j) denom += exp(logits[j] - max);
      for (int32_t j = 0; j <= i; ++j) expect[j] += exp(logits[j] - max) / denom;
    }
  }
  double total = 0.0;
  for (int32_t j = 0; j < 300; ++j) {
    cr_assert(fabs(scores[j] - expect[j]) <= 1e-5 * (1.0 + fabs(expect[j])), "token %d: %g vs %g", j, scores[j],
              expect[j]);
    total += scores[j];
  }
  cr_assert(fabs(total - 4 * 128) < 1e-3, "scores of 4 heads x 128 queries sum to %g", total);
  fixture_free(&f);
}

Test(uniprefill_select, concentrated_attention_keeps_that_block) {
  /* One sequence of 640 tokens: the last queries point along dim 0 of every head and
   * only block 5 (tokens 320..383) has keys along it, so nearly all attention lands there. */
  const int32_t lens[1] = {640};
  batch_fixture f;
  fixture_init(&f, lens, 1, 5, 0.0f);
  const int32_t row = 8 * 16;
  for (int32_t t = 0; t < 640; ++t) {
    for (int32_t h = 0; h < 4; ++h) f.qkv[t * row + h * 16] = 8.0f;
    for (int32_t g = 0; g < 2; ++g) f.qkv[t * row + 64 + g * 16] = (t >= 320 && t < 384) ? 8.0f : 0.0f;
  }
  int32_t slots[640];
  for (int32_t t = 0; t < 640; ++t) slots[t] = f.block_tables[t / 16] * 16 + t % 16;
  f.be->ops->kv_store(f.be, &f.pool, f.qkv, slots, 640, &f.shape);
  const up_attn_batch view = fixture_view(&f);
  const uint8_t candidate[1] = {1};
  int32_t keep_rows[640], new_cu[2];
  up_select_params p = k_default_params;
  p.top_p = 0.5f;
  const int32_t kept = up_cpu_uniprefill_select(f.be, keep_rows, new_cu, f.qkv, &f.pool, &view, &f.shape, candidate, &p);
  cr_assert_eq(kept, 128 + 64 + 128);
  cr_assert_eq(new_cu[0], 0);
  cr_assert_eq(new_cu[1], kept);
  for (int32_t i = 0; i < kept; ++i) {
    const int32_t t = keep_rows[i];
    cr_assert(t < 128 || (t >= 320 && t < 384) || t >= 512, "row %d should have been dropped", t);
    if (i) cr_assert_gt(t, keep_rows[i - 1], "kept rows keep their order");
  }
  fixture_free(&f);
}

Test(uniprefill_select, packed_batch_equals_each_sequence_alone) {
  /* A long prompt, a decode-like row, a short prompt (<= sink + last_q: untouched) and another long prompt. */
  const int32_t lens[4] = {700, 1, 250, 1000};
  const uint8_t candidate[4] = {1, 0, 1, 1};
  batch_fixture f;
  fixture_init(&f, lens, 4, 9, 3.0f);
  const up_attn_batch view = fixture_view(&f);
  up_select_params p = k_default_params;
  p.top_p = 0.6f;
  int32_t *keep_rows = malloc(sizeof(int32_t) * (size_t)f.n_tokens);
  int32_t new_cu[5];
  const int32_t kept = up_cpu_uniprefill_select(f.be, keep_rows, new_cu, f.qkv, &f.pool, &view, &f.shape, candidate, &p);
  cr_assert_eq(new_cu[4], kept);
  cr_assert_eq(new_cu[2] - new_cu[1], 1, "the decode row passes through");
  cr_assert_eq(new_cu[3] - new_cu[2], 250, "a short prompt is left alone");
  cr_assert_lt(new_cu[1] - new_cu[0], 700, "a long prompt at p=0.6 loses tokens");
  for (int32_t s = 0; s < 4; ++s) {
    /* The same sequence alone: its own rows, block table and offsets. */
    const int32_t n = lens[s];
    const int32_t cu_alone[2] = {0, n};
    const up_attn_batch alone = {.n_seqs = 1, .n_tokens = n, .cu_seqlens = cu_alone, .kv_lens = &f.kv_lens[s],
                                 .block_tables = f.block_tables + s * f.max_blocks, .max_blocks_per_seq = f.max_blocks};
    int32_t *rows_alone = malloc(sizeof(int32_t) * (size_t)n);
    int32_t cu_out[2];
    const int32_t kept_alone = up_cpu_uniprefill_select(f.be, rows_alone, cu_out, f.qkv + (size_t)f.cu[s] * 8 * 16,
                                                        &f.pool, &alone, &f.shape, &candidate[s], &p);
    cr_assert_eq(kept_alone, new_cu[s + 1] - new_cu[s], "sequence %d", s);
    for (int32_t i = 0; i < kept_alone; ++i)
      cr_assert_eq(keep_rows[new_cu[s] + i], f.cu[s] + rows_alone[i], "sequence %d row %d", s, i);
    /* Sinks and last queries of long candidates survive. */
    if (candidate[s] && n > 256) {
      for (int32_t t = 0; t < 128; ++t) cr_assert_eq(rows_alone[t], t);
      for (int32_t t = 0; t < 128; ++t) cr_assert_eq(rows_alone[kept_alone - 128 + t], n - 128 + t);
    }
    free(rows_alone);
  }
  p.top_p = 1.0f;
  cr_assert_eq(up_cpu_uniprefill_select(f.be, keep_rows, new_cu, f.qkv, &f.pool, &view, &f.shape, candidate, &p),
               f.n_tokens, "p = 1 keeps every row");
  free(keep_rows);
  fixture_free(&f);
}

/* A NaN or an infinity in one sequence's last queries: that sequence keeps every row,
 * the other sequence of the batch is selected as it would be alone. */
static void check_non_finite_query(float bad) {
  const int32_t lens[2] = {700, 1000};
  const uint8_t candidate[2] = {1, 1};
  batch_fixture f;
  fixture_init(&f, lens, 2, 9, 3.0f);
  f.qkv[(size_t)(700 - 1) * 8 * 16 + 3] = bad; /* sequence 0's last query, head 0 */
  const up_attn_batch view = fixture_view(&f);
  up_select_params p = k_default_params;
  p.top_p = 0.6f;
  int32_t *keep_rows = malloc(sizeof(int32_t) * (size_t)f.n_tokens);
  int32_t new_cu[3], rows_alone[1000], cu_out[2];
  up_cpu_uniprefill_select(f.be, keep_rows, new_cu, f.qkv, &f.pool, &view, &f.shape, candidate, &p);
  cr_assert_eq(new_cu[1], 700, "the sequence with %g keeps every row", (double)bad);
  for (int32_t t = 0; t < 700; ++t) cr_assert_eq(keep_rows[t], t);
  const int32_t cu_alone[2] = {0, 1000};
  const up_attn_batch alone = {.n_seqs = 1, .n_tokens = 1000, .cu_seqlens = cu_alone, .kv_lens = &f.kv_lens[1],
                               .block_tables = f.block_tables + f.max_blocks, .max_blocks_per_seq = f.max_blocks};
  const int32_t kept_alone = up_cpu_uniprefill_select(f.be, rows_alone, cu_out, f.qkv + (size_t)700 * 8 * 16,
                                                      &f.pool, &alone, &f.shape, &candidate[1], &p);
  cr_assert_lt(kept_alone, 1000, "the healthy sequence is still selected");
  cr_assert_eq(new_cu[2] - new_cu[1], kept_alone);
  for (int32_t i = 0; i < kept_alone; ++i) cr_assert_eq(keep_rows[700 + i], 700 + rows_alone[i], "row %d", i);
  free(keep_rows);
  fixture_free(&f);
}

Test(uniprefill_select, non_finite_query_keeps_its_sequence_whole) {
  check_non_finite_query(NAN);
  check_non_finite_query(INFINITY);
}
