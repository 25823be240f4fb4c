/* test_sparse_kernels.c — the CPU reference of the sparse baselines' kernels
 * (kernels/cpu/sparse_*.c, contract kernels/sparse_attention_ops.h): the block-sparse
 * attention equals an explicit masked softmax over the same keys and, with every causal
 * block, the dense attention; MInference's index conversion on a hand-worked case and
 * the ideal mask inside what it computes; XAttention's threshold walk and block sums on
 * hand-worked values; FlexPrefill's forced blocks, gamma = 1 and a planted column; the
 * density cap. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/sparse_ops.h"

enum { H = 4, KVH = 2, D = 16, ROW = (H + 2 * KVH) * D, BT = 16 };

/* A packed batch of whole-prompt prefills in a paged pool (identity block tables). */
typedef struct sparse_batch {
  up_backend *be;
  up_attn_shape shape;
  int32_t n_seqs, n_tokens, max_blocks;
  int32_t cu[8], kv_lens[8];
  int32_t *block_tables;
  up_kv_pool pool;
  float *qkv;
} sparse_batch;

static void batch_init(sparse_batch *b, const int32_t *lens, int32_t n_seqs, uint64_t seed) {
  memset(b, 0, sizeof *b);
  b->be = up_cpu_backend_create(1);
  b->shape = (up_attn_shape){.n_heads = H, .n_kv_heads = KVH, .head_dim = D, .scale = 0.25f};
  b->n_seqs = n_seqs;
  int32_t blocks = 0;
  for (int32_t s = 0; s < n_seqs; ++s) {
    b->cu[s + 1] = b->cu[s] + lens[s];
    b->kv_lens[s] = lens[s];
    const int32_t nb = (lens[s] + BT - 1) / BT;
    blocks += nb;
    if (nb > b->max_blocks) b->max_blocks = nb;
  }
  b->n_tokens = b->cu[n_seqs];
  b->qkv = malloc(sizeof(float) * (size_t)b->n_tokens * ROW);
  for (int64_t i = 0; i < (int64_t)b->n_tokens * ROW; ++i) b->qkv[i] = 2.0f * up_rng_symmetric(seed, 3, (uint64_t)i);
  b->pool = (up_kv_pool){.n_blocks = blocks, .block_tokens = BT, .kv_dim = KVH * D};
  b->pool.k = calloc((size_t)blocks * BT * KVH * D, sizeof(float));
  b->pool.v = calloc((size_t)blocks * BT * KVH * D, sizeof(float));
  b->block_tables = malloc(sizeof(int32_t) * (size_t)n_seqs * b->max_blocks);
  int32_t *slots = malloc(sizeof(int32_t) * (size_t)b->n_tokens);
  int32_t next = 0;
  for (int32_t s = 0; s < n_seqs; ++s) {
    for (int32_t k = 0; k < b->max_blocks; ++k)
      b->block_tables[s * b->max_blocks + k] = k * BT < lens[s] ? next++ : -1;
    for (int32_t t = 0; t < lens[s]; ++t) slots[b->cu[s] + t] = b->block_tables[s * b->max_blocks + t / BT] * BT + t % BT;
  }
  b->be->ops->kv_store(b->be, &b->pool, b->qkv, slots, b->n_tokens, &b->shape);
  free(slots);
}

static void batch_free(sparse_batch *b) {
  free(b->qkv);
  free(b->pool.k);
  free(b->pool.v);
  free(b->block_tables);
  b->be->ops->destroy(b->be);
}

static up_attn_batch batch_view(const sparse_batch *b) {
  return (up_attn_batch){.n_seqs = b->n_seqs, .n_tokens = b->n_tokens, .cu_seqlens = b->cu, .kv_lens = b->kv_lens,
                         .block_tables = b->block_tables, .max_blocks_per_seq = b->max_blocks};
}

/* A pattern with room for anything the tests write, over the given query blocks. */
typedef struct test_pattern {
  up_sparse_pattern p;
  int32_t qstart[9];
} test_pattern;

static void pattern_init(test_pattern *t, const sparse_batch *b, const uint8_t *sparse, int32_t block) {
  memset(t, 0, sizeof *t);
  for (int32_t s = 0; s < b->n_seqs; ++s)
    t->qstart[s + 1] = t->qstart[s] + (sparse[s] ? (b->cu[s + 1] - b->cu[s] + block - 1) / block : 0);
  const int64_t rows = (int64_t)t->qstart[b->n_seqs] * H;
  t->p = (up_sparse_pattern){.n_seqs = b->n_seqs, .n_heads = H, .block_q = block, .block_k = block,
                             .qblock_start_host = t->qstart, .qblock_start = t->qstart,
                             .range_ptr = calloc((size_t)rows + 1, sizeof(int32_t)),
                             .column_ptr = calloc((size_t)rows + 1, sizeof(int32_t)),
                             .range_capacity = rows * 64, .column_capacity = rows * 64};
  t->p.range_start = calloc((size_t)t->p.range_capacity, sizeof(int32_t));
  t->p.column_index = calloc((size_t)t->p.column_capacity, sizeof(int32_t));
}

static void pattern_free(test_pattern *t) {
  free(t->p.range_ptr);
  free(t->p.column_ptr);
  free(t->p.range_start);
  free(t->p.column_index);
}

/* The key set K(t) of list row r, as a 0/1 vector over keys 0..t (the header's rule). */
static void key_set(const up_sparse_pattern *p, int64_t r, int32_t t, uint8_t *in) {
  memset(in, 0, (size_t)t + 1);
  for (int32_t i = p->range_ptr[r]; i < p->range_ptr[r + 1]; ++i)
    for (int32_t j = p->range_start[i]; j < p->range_start[i] + p->block_k && j <= t; ++j) in[j] = 1;
  for (int32_t i = p->column_ptr[r]; i < p->column_ptr[r + 1]; ++i)
    if (p->column_index[i] <= t) in[p->column_index[i]] = 1;
}

/* Attention of row t of sequence s, head h, over an explicit key set, in double. */
static void explicit_row(const sparse_batch *b, int32_t s, int32_t h, int32_t t, const uint8_t *in, double *out) {
  const float *q = b->qkv + (int64_t)(b->cu[s] + t) * ROW + h * D;
  const int32_t g = h / (H / KVH);
  double max = -INFINITY, z = 0.0;
  double *logit = malloc(sizeof(double) * (size_t)(t + 1));
  for (int32_t j = 0; j <= t; ++j) {
    if (!in[j]) continue;
    const float *k = b->qkv + (int64_t)(b->cu[s] + j) * ROW + H * D + g * D;
    double dot = 0.0;
    for (int32_t c = 0; c < D; ++c) dot += (double)q[c] * k[c];
    logit[j] = dot * b->shape.scale;
    max = fmax(max, logit[j]);
  }
  memset(out, 0, sizeof(double) * D);
  for (int32_t j = 0; j <= t; ++j)
    if (in[j]) z += exp(logit[j] - max);
  for (int32_t j = 0; j <= t; ++j) {
    if (!in[j]) continue;
    const float *v = b->qkv + (int64_t)(b->cu[s] + j) * ROW + (H + KVH) * D + g * D;
    for (int32_t c = 0; c < D; ++c) out[c] += exp(logit[j] - max) / z * v[c];
  }
  free(logit);
}

/* Every row of every sparse sequence against the explicit attention over its K(t). */
static void expect_explicit(const sparse_batch *b, const up_sparse_pattern *p, const float *out) {
  uint8_t *in = malloc((size_t)b->n_tokens + 1);
  double ref[D];
  for (int32_t s = 0; s < b->n_seqs; ++s) {
    if (p->qblock_start_host[s + 1] == p->qblock_start_host[s]) continue;
    for (int32_t t = 0; t < b->cu[s + 1] - b->cu[s]; ++t)
      for (int32_t h = 0; h < H; ++h) {
        key_set(p, (int64_t)(p->qblock_start_host[s] + t / p->block_q) * H + h, t, in);
        explicit_row(b, s, h, t, in, ref);
        for (int32_t c = 0; c < D; ++c)
          cr_assert_float_eq(out[(int64_t)(b->cu[s] + t) * H * D + h * D + c], ref[c], 2e-5,
                             "sequence %d row %d head %d dim %d", s, t, h, c);
      }
  }
  free(in);
}

Test(sparse_attention, equals_an_explicit_mask_with_unaligned_ranges_and_extra_keys) {
  const int32_t lens[2] = {200, 130};
  const uint8_t sparse[2] = {1, 1};
  sparse_batch b;
  batch_init(&b, lens, 2, 11);
  test_pattern t;
  pattern_init(&t, &b, sparse, 64);
  /* Per list row: the diagonal range, one unaligned range, and extra keys before it. */
  int32_t nr = 0, nc = 0;
  for (int32_t s = 0; s < 2; ++s)
    for (int32_t qb = 0; qb < t.qstart[s + 1] - t.qstart[s]; ++qb)
      for (int32_t h = 0; h < H; ++h) {
        const int64_t r = (int64_t)(t.qstart[s] + qb) * H + h;
        t.p.range_ptr[r] = nr;
        t.p.column_ptr[r] = nc;
        t.p.range_start[nr++] = qb * 64;
        const int32_t shifted = qb * 64 - 70 - 5 * h;
        if (shifted >= 0) t.p.range_start[nr++] = shifted; /* [shifted, shifted + 64) ends before qb * 64 */
        for (int32_t j = h; j < (shifted > 0 ? shifted : qb * 64); j += 7) t.p.column_index[nc++] = j;
        t.p.range_ptr[r + 1] = nr;
        t.p.column_ptr[r + 1] = nc;
      }
  float *out = calloc((size_t)b.n_tokens * H * D, sizeof(float));
  const up_attn_batch view = batch_view(&b);
  up_cpu_sparse_attention(b.be, out, b.qkv, &b.pool, &view, &b.shape, &t.p);
  expect_explicit(&b, &t.p, out);
  free(out);
  pattern_free(&t);
  batch_free(&b);
}

Test(sparse_attention, every_causal_block_equals_dense_and_other_sequences_stay_dense) {
  const int32_t lens[3] = {300, 5, 257};
  const uint8_t sparse[3] = {1, 0, 1};
  sparse_batch b;
  batch_init(&b, lens, 3, 5);
  test_pattern t;
  pattern_init(&t, &b, sparse, 128);
  int32_t nr = 0;
  for (int64_t r = 0; r < (int64_t)t.qstart[3] * H; ++r) {
    const int32_t qb = (int32_t)(r / H) - (r / H >= t.qstart[2] ? t.qstart[2] : 0);
    t.p.range_ptr[r] = nr;
    for (int32_t kb = qb; kb >= 0; --kb) t.p.range_start[nr++] = kb * 128; /* any order */
    t.p.range_ptr[r + 1] = nr;
  }
  float *out = calloc((size_t)b.n_tokens * H * D, sizeof(float));
  float *dense = calloc((size_t)b.n_tokens * H * D, sizeof(float));
  const up_attn_batch view = batch_view(&b);
  up_cpu_sparse_attention(b.be, out, b.qkv, &b.pool, &view, &b.shape, &t.p);
  up_cpu_attention(b.be, dense, b.qkv, &b.pool, &view, &b.shape, 0);
  for (int64_t i = 0; i < (int64_t)b.n_tokens * H * D; ++i) cr_assert_float_eq(out[i], dense[i], 1e-5, "value %ld", (long)i);
  free(out);
  free(dense);
  pattern_free(&t);
  batch_free(&b);
}

/* ---- MInference ------------------------------------------------------------------- */

/* Ranges and extra keys of (query block, head 0) of staged rows. */
static void expect_row(const up_sparse_rows *rows, int32_t qb, const int32_t *ranges, int32_t n_ranges,
                       const int32_t *columns, int32_t n_columns) {
  const int32_t lr = qb * rows->n_heads;
  cr_assert_eq(rows->n_ranges[lr], n_ranges, "block %d: %d ranges", qb, rows->n_ranges[lr]);
  for (int32_t i = 0; i < n_ranges; ++i) cr_expect_eq(rows->ranges[lr][i], ranges[i], "block %d range %d", qb, i);
  cr_assert_eq(rows->n_columns[lr], n_columns, "block %d: %d columns", qb, rows->n_columns[lr]);
  for (int32_t i = 0; i < n_columns; ++i) cr_expect_eq(rows->columns[lr][i], columns[i], "block %d column %d", qb, i);
}

Test(minference, conversion_matches_a_hand_worked_walk) {
  /* 192 rows; columns {0, 5, 100}; offsets (descending) {64, 1, 0}.
   * Block 0 [0,64): 64 skipped; offset 1 -> range ending max(63, 64) = 64 -> [0,64);
   *   columns 0 and 5 inside it, 100 past it. Ranges {0}.
   * Block 1 [64,128): offset 64 -> [0,64); offset 1 ends at 127 <= 64 + 64: extend to
   *   [0,128); columns all covered. Ranges {0, 64}.
   * Block 2 [128,192): offset 64 -> [64,128): columns 0 and 5 lie before it -> extra
   *   keys; offset 1 ends at 191: extend to [64,192). Ranges {64, 128}, extra {0, 5}. */
  const int32_t columns[3] = {0, 5, 100}, offsets[3] = {64, 1, 0};
  up_sparse_rows rows;
  up_sparse_rows_init(&rows, 3, 1);
  up_minference_convert(&rows, 0, 192, columns, 3, offsets, 3);
  expect_row(&rows, 0, (const int32_t[]){0}, 1, NULL, 0);
  expect_row(&rows, 1, (const int32_t[]){0, 64}, 2, NULL, 0);
  expect_row(&rows, 2, (const int32_t[]){64, 128}, 2, (const int32_t[]){0, 5}, 2);
  /* An isolated far diagonal costs its own 64-wide range, not aligned to 64. */
  up_sparse_rows_free(&rows);
  up_sparse_rows_init(&rows, 3, 1);
  up_minference_convert(&rows, 0, 192, NULL, 0, (const int32_t[]){100, 0}, 2);
  expect_row(&rows, 2, (const int32_t[]){28, 128}, 2, NULL, 0); /* offset 100 in [128,192): keys [28, 92) */
  up_sparse_rows_free(&rows);
}

Test(minference, the_ideal_mask_lies_inside_the_converted_lists) {
  for (uint64_t trial = 0; trial < 40; ++trial) {
    const int32_t n = 65 + (int32_t)(up_rng_unit(21, trial, 0) * 600);
    int32_t *columns = malloc(sizeof(int32_t) * (size_t)n), *offsets = malloc(sizeof(int32_t) * (size_t)n);
    int32_t nc = 0, no = 0;
    const double pc = 0.02 + 0.2 * up_rng_unit(21, trial, 1), po = 0.02 + 0.3 * up_rng_unit(21, trial, 2);
    for (int32_t j = 0; j < n; ++j)
      if (up_rng_unit(22, trial, (uint64_t)j) < pc) columns[nc++] = j;
    for (int32_t o = n - 1; o >= 0; --o) /* descending; offset 0 always, as MInference forces it */
      if (o == 0 || up_rng_unit(23, trial, (uint64_t)o) < po) offsets[no++] = o;
    const int32_t nq = (n + 63) / 64;
    up_sparse_rows rows;
    up_sparse_rows_init(&rows, nq, 1);
    up_minference_convert(&rows, 0, n, columns, nc, offsets, no);
    uint8_t *in = malloc((size_t)n);
    double pairs = 0.0;
    for (int32_t t = 0; t < n; ++t) {
      const int32_t qb = t / 64;
      memset(in, 0, (size_t)n);
      for (int32_t i = 0; i < rows.n_ranges[qb]; ++i)
        for (int32_t j = rows.ranges[qb][i]; j < rows.ranges[qb][i] + 64 && j <= t; ++j) {
          cr_assert(!in[j], "trial %d row %d: key %d twice", (int)trial, t, j);
          in[j] = 1;
        }
      for (int32_t i = 0; i < rows.n_columns[qb]; ++i) {
        const int32_t j = rows.columns[qb][i];
        cr_assert_lt(j, qb * 64, "trial %d: extra key %d not before its row block", (int)trial, j);
        cr_assert(!in[j], "trial %d row %d: extra key %d also in a range", (int)trial, t, j);
        in[j] = 1;
      }
      for (int32_t i = 0; i < nc; ++i)
        if (columns[i] <= t) cr_assert(in[columns[i]], "trial %d row %d misses column %d", (int)trial, t, columns[i]);
      for (int32_t i = 0; i < no; ++i)
        if (offsets[i] <= t) cr_assert(in[t - offsets[i]], "trial %d row %d misses offset %d", (int)trial, t, offsets[i]);
      for (int32_t j = 0; j <= t; ++j) pairs += in[j];
    }
    cr_expect_float_eq(up_sparse_rows_pairs(&rows, n, 64, 64), pairs, 1e-9, "trial %d: covered pairs", (int)trial);
    free(in);
    up_sparse_rows_free(&rows);
    free(columns);
    free(offsets);
  }
}

Test(minference, a_planted_column_is_selected_beside_the_forced_ones) {
  /* A key aligned with every query (column 200) draws most of the last queries'
   * attention: with room for one free column it is the one chosen. */
  enum { N = 400, DD = 8 };
  float *q = calloc(N * DD, sizeof(float)), *k = calloc(N * DD, sizeof(float));
  for (int32_t t = 0; t < N; ++t) {
    q[t * DD] = 4.0f;
    for (int32_t c = 1; c < DD; ++c) k[t * DD + c] = up_sparse_round_bf16(0.5f * up_rng_symmetric(5, 1, (uint64_t)(t * DD + c)));
  }
  k[200 * DD] = 6.0f;
  int32_t columns[N], offsets[N], nc = 0, no = 0;
  up_minference_head_select(q, k, N, DD, 64, 30, 100, 31, 101, columns, &nc, offsets, &no);
  cr_assert_eq(nc, 31);
  cr_assert_eq(no, 101);
  for (int32_t i = 0; i < 30; ++i) cr_expect_eq(columns[i], i, "forced columns first (ascending)");
  cr_expect_eq(columns[30], 200, "the planted column is the one free choice");
  /* offsets come descending: one free choice above 99, then the forced 99..0 */
  cr_expect_gt(offsets[0], 99);
  for (int32_t i = 1; i < 101; ++i) cr_expect_eq(offsets[i], 100 - i, "forced diagonals 0..99");
  free(q);
  free(k);
}

/* ---- XAttention -------------------------------------------------------------------- */

Test(xattention, threshold_walk_keeps_the_crossing_block) {
  /* Past the authors' first chunk (first_chunk_blocks 0 here), BASELINES.md 3.2's walk.
   * Row 3 of 4: W = {0.1, 0.5, 0.2, 0.2 (diagonal)}, total 1.0; forced mass 0.3. */
  double w[16] = {1, 0, 0, 0, 0.5, 0.5, 0, 0, 0.3, 0.3, 0.4, 0, 0.1, 0.5, 0.2, 0.2};
  uint8_t mask[16];
  up_xattention_head_mask(w, 4, 0.6, 0, mask); /* 0.3 < 0.6: block 1 (0.5) kept, then 0.8 >= 0.6 */
  cr_expect(mask[12] && mask[13] && !mask[14] && mask[15]);
  up_xattention_head_mask(w, 4, 0.85, 0, mask); /* 0.8 < 0.85: block 2 kept too */
  cr_expect(mask[12] && mask[13] && mask[14] && mask[15]);
  up_xattention_head_mask(w, 4, 0.3, 0, mask); /* forced mass already reaches 0.3: forced only */
  cr_expect(mask[12] && !mask[13] && !mask[14] && mask[15]);
  /* Row 2: {0.3, 0.3, 0.4}: forced 0.7 < 0.9 -> block 1 kept; nothing above the diagonal. */
  up_xattention_head_mask(w, 4, 0.9, 0, mask);
  cr_expect(mask[8] && mask[9] && mask[10] && !mask[11]);
}

Test(xattention, first_chunk_walk_is_the_authors_off_by_one) {
  /* The same W with all four rows in the authors' first chunk (xattn/src/utils.py
   * L99-145, worked by hand from their tensors): only the diagonal's mass is forced, key
   * block 0 is ranked with the others, and a ranked block is kept while the mass before
   * the block ranked just ahead of it is below the target. Row 3: diagonal 0.2; ranked
   * 1 (0.5), 2 (0.2), 0 (0.1); their running sums "without self" are 0, 0.2, 0.7. */
  double w[16] = {1, 0, 0, 0, 0.5, 0.5, 0, 0, 0.3, 0.3, 0.4, 0, 0.1, 0.5, 0.2, 0.2};
  uint8_t mask[16];
  up_xattention_head_mask(w, 4, 0.2, 4, mask); /* 0 < 0.2: block 1; 0.2 is not: block 2 dropped */
  cr_expect(mask[12] && mask[13] && !mask[14] && mask[15], "the top ranked block is kept even at the target");
  up_xattention_head_mask(w, 4, 0.6, 4, mask); /* 0.2 < 0.6: block 2 too (the walk above stops at 1) */
  cr_expect(mask[12] && mask[13] && mask[14] && mask[15]);
  /* Row 2: {0.3, 0.3, 0.4}: the diagonal's 0.4 < 0.5 keeps block 0 (ranked first on the
   * tie), and block 1 after it, where the walk above keeps the forced blocks only. */
  up_xattention_head_mask(w, 4, 0.5, 4, mask);
  cr_expect(mask[8] && mask[9] && mask[10] && !mask[11]);
  up_xattention_head_mask(w, 4, 0.5, 0, mask);
  cr_expect(mask[8] && !mask[9] && mask[10] && !mask[11]);
  /* first_chunk_blocks 3: row 3 is past the chunk and walks as above (forced 0.3 >= 0.2) */
  up_xattention_head_mask(w, 4, 0.2, 3, mask);
  cr_expect(mask[12] && !mask[13] && !mask[14] && mask[15]);
}

Test(xattention, first_chunk_is_xattention_prefills_chunk_size) {
  /* max(min(max(2048, P), 2^28 / P), 2048) tokens, P the next power of two >= n */
  const int32_t n[] = {1, 1000, 2048, 4096, 8192, 8193, 16384, 16385, 32768, 65536, 131072, 1 << 20};
  const int32_t rows[] = {16, 16, 16, 32, 64, 128, 128, 64, 64, 32, 16, 16};
  for (size_t i = 0; i < sizeof n / sizeof n[0]; ++i)
    cr_expect_eq(up_xattention_first_chunk_blocks(n[i]), rows[i], "n = %d", (int)n[i]);
}

Test(xattention, block_sums_are_row_counts_of_a_causal_softmax) {
  /* Every full query block's row of W sums to B / S reshaped rows of probability 1 each,
   * and nothing lands above the diagonal. */
  enum { N = 300, DD = 8, S = 8 };
  float *q = malloc(sizeof(float) * N * DD), *k = malloc(sizeof(float) * N * DD);
  for (int32_t i = 0; i < N * DD; ++i) {
    q[i] = up_sparse_round_bf16(up_rng_symmetric(9, 1, (uint64_t)i));
    k[i] = up_sparse_round_bf16(up_rng_symmetric(9, 2, (uint64_t)i));
  }
  const int32_t nq = 3;
  double w[9];
  up_xattention_head_scores(q, k, N, DD, S, w);
  cr_expect_float_eq(w[0] + w[1] + w[2], 16.0, 0.1);
  cr_expect_float_eq(w[3] + w[4] + w[5], 16.0, 0.1);
  /* the last block: reshaped rows 32..37 hold real queries (300 = 37 * 8 + 4) */
  cr_expect_float_eq(w[6] + w[7] + w[8], 6.0, 0.05);
  cr_expect_eq(w[1], 0.0);
  cr_expect_eq(w[2], 0.0);
  cr_expect_eq(w[5], 0.0);
  for (int32_t i = 0; i < nq * nq; ++i) cr_expect_eq(w[i], (double)up_sparse_round_bf16((float)w[i]), "bf16 storage");
  free(q);
  free(k);
}

/* ---- FlexPrefill ------------------------------------------------------------------- */

static void random_head(float *q, float *k, int32_t n, int32_t d, uint64_t seed) {
  for (int64_t i = 0; i < (int64_t)n * d; ++i) {
    q[i] = up_sparse_round_bf16(up_rng_symmetric(seed, 1, (uint64_t)i));
    k[i] = up_sparse_round_bf16(up_rng_symmetric(seed, 2, (uint64_t)i));
  }
}

Test(flexprefill, forced_blocks_always_and_gamma_one_is_dense) {
  enum { N = 1000, DD = 16, NB = 8 };
  float *q = malloc(sizeof(float) * N * DD), *k = malloc(sizeof(float) * N * DD);
  random_head(q, k, N, DD, 4);
  uint8_t mask[NB * NB];
  const up_flexprefill_params sparse = {.gamma = 0.05f, .tau = 0.0f, .min_budget = 0, .block = 128, .density_cap = 1};
  up_flexprefill_head_mask(q, k, N, DD, &sparse, mask, NULL);
  int32_t kept = 0;
  for (int32_t i = 0; i < NB; ++i) {
    cr_expect(mask[i * NB] && mask[i * NB + i], "row %d keeps block 0 and its diagonal", i);
    for (int32_t j = i + 1; j < NB; ++j) cr_expect(!mask[i * NB + j], "nothing above the diagonal");
    for (int32_t j = 0; j <= i; ++j) kept += mask[i * NB + j];
  }
  cr_expect_lt(kept, NB * (NB + 1) / 2, "gamma 0.05 on random keys leaves blocks out");
  const up_flexprefill_params all = {.gamma = 1.0f, .tau = 0.0f, .min_budget = 0, .block = 128, .density_cap = 1};
  up_flexprefill_head_mask(q, k, N, DD, &all, mask, NULL);
  for (int32_t i = 0; i < NB; ++i)
    for (int32_t j = 0; j <= i; ++j) cr_expect(mask[i * NB + j], "gamma 1 keeps block (%d, %d)", i, j);
  free(q);
  free(k);
}

Test(flexprefill, a_planted_key_block_becomes_a_vertical) {
  /* Keys of block 3 aligned with every query draw over half the last queries' attention;
   * gamma 0.9 then needs more than 128 tokens, so two vertical blocks: block 0 (forced)
   * and the planted one, kept in every row from 3 on. */
  enum { N = 1024, DD = 16, NB = 8 };
  float *q = malloc(sizeof(float) * N * DD), *k = malloc(sizeof(float) * N * DD);
  random_head(q, k, N, DD, 6);
  for (int32_t t = 0; t < N; ++t) q[t * DD] = 3.0f;
  for (int32_t t = 3 * 128; t < 4 * 128; ++t) k[t * DD] = 3.0f;
  uint8_t mask[NB * NB];
  const up_flexprefill_params p = {.gamma = 0.9f, .tau = 0.0f, .min_budget = 0, .block = 128, .density_cap = 1};
  up_flexprefill_head_mask(q, k, N, DD, &p, mask, NULL);
  for (int32_t i = 3; i < NB; ++i) cr_expect(mask[i * NB + 3], "row %d keeps the planted block", i);
  free(q);
  free(k);
}

/* ---- the density cap ---------------------------------------------------------------- */

Test(sparse_cap, keeps_forced_blocks_and_the_best_others_within_the_budget) {
  enum { NQ = 6 };
  uint8_t mask[NQ * NQ];
  double score[NQ * NQ];
  for (int32_t i = 0; i < NQ * NQ; ++i) {
    mask[i] = i % NQ <= i / NQ; /* every causal block */
    score[i] = (double)((i * 7) % 11);
  }
  up_sparse_block_cap(mask, score, NQ, 0.6f); /* 21 causal, 11 forced: floor(12.6) - 11 = 1 other */
  int32_t kept = 0, others = 0;
  for (int32_t qb = 0; qb < NQ; ++qb)
    for (int32_t kb = 0; kb <= qb; ++kb) {
      kept += mask[qb * NQ + kb];
      if (kb == 0 || kb == qb) cr_expect(mask[qb * NQ + kb], "forced (%d, %d) kept", qb, kb);
      else if (mask[qb * NQ + kb]) ++others;
    }
  cr_expect_eq(kept, 12);
  cr_expect_eq(others, 1);
  /* the one kept is a best-scored non-forced causal block */
  double best = -1.0;
  for (int32_t qb = 2; qb < NQ; ++qb)
    for (int32_t kb = 1; kb < qb; ++kb) best = fmax(best, score[qb * NQ + kb]);
  for (int32_t qb = 2; qb < NQ; ++qb)
    for (int32_t kb = 1; kb < qb; ++kb)
      if (mask[qb * NQ + kb]) cr_expect_eq(score[qb * NQ + kb], best);
}
