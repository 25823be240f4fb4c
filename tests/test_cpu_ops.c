/* test_cpu_ops.c — every op of the CPU reference backend against a naive formula
 * written here in double, independently of kernels/cpu. Outputs are poisoned with NaN
 * before each call so an element an op forgets to write fails the comparison. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/uniprefill_select.h"

static const double max_rel_err = 1e-5; /* fp32 op vs double formula */

static up_backend *be;

static void open_backend(void) { be = up_cpu_backend_create(1); }
static void close_backend(void) { be->ops->destroy(be); }

TestSuite(cpu_ops, .init = open_backend, .fini = close_backend);

static float *random_floats(uint64_t seed, uint64_t stream, size_t n, float amplitude) {
  float *x = malloc(sizeof(float) * (n ? n : 1));
  cr_assert_not_null(x);
  for (size_t i = 0; i < n; ++i) x[i] = amplitude * up_rng_symmetric(seed, stream, i);
  return x;
}

static float *nan_floats(size_t n) {
  float *x = malloc(sizeof(float) * (n ? n : 1));
  cr_assert_not_null(x);
  for (size_t i = 0; i < n; ++i) x[i] = NAN;
  return x;
}

static double *zero_doubles(size_t n) {
  double *x = calloc(n ? n : 1, sizeof(double));
  cr_assert_not_null(x);
  return x;
}

/* ||out - ref|| / ||ref||, after checking every element was written with a number. */
static void expect_close(const float *out, const double *ref, size_t n, const char *what) {
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < n; ++i) {
    cr_assert(!isnan(out[i]), "%s: element %zu is NaN (unwritten or broken)", what, i);
    diff += (out[i] - ref[i]) * (out[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  cr_assert_gt(norm, 0.0, "%s: reference is all zeros, the test checks nothing", what);
  const double err = sqrt(diff / norm);
  cr_expect_lt(err, max_rel_err, "%s: relative error %g", what, err);
}

static void shuffle_i32(int32_t *x, int32_t n, uint64_t seed) {
  for (int32_t i = n - 1; i > 0; --i) {
    const int32_t j = (int32_t)(up_rng_u64(seed, 99, (uint64_t)i) % (uint64_t)(i + 1));
    const int32_t tmp = x[i];
    x[i] = x[j];
    x[j] = tmp;
  }
}

/* --- backend plumbing --------------------------------------------------------- */

Test(cpu_ops, backend_fills_every_op_and_describes_itself) {
  const up_backend_ops *ops = be->ops;
  const void *entries[] = {
      (const void *)ops->alloc,        (const void *)ops->free,         (const void *)ops->memory_available,
      (const void *)ops->upload_f32,   (const void *)ops->download_f32, (const void *)ops->upload_i32,
      (const void *)ops->download_i32, (const void *)ops->upload_bytes, (const void *)ops->download_bytes,
      (const void *)ops->synchronize,  (const void *)ops->embed,
      (const void *)ops->rmsnorm,      (const void *)ops->add_rmsnorm,  (const void *)ops->matmul,
      (const void *)ops->rope,         (const void *)ops->swiglu,       (const void *)ops->gather_rows,
      (const void *)ops->gather_i32,   (const void *)ops->argmax_rows,  (const void *)ops->kv_store,
      (const void *)ops->attention,    (const void *)ops->method_kernel, (const void *)ops->destroy,
  };
  for (size_t i = 0; i < sizeof entries / sizeof entries[0]; ++i) cr_expect_not_null(entries[i], "op %zu", i);
  cr_expect(up_uniprefill_select_kernel(be) == (up_uniprefill_select_fn)up_cpu_uniprefill_select,
            "the CPU backend lists its UniPrefill selection kernel");
  cr_expect_null((const void *)ops->method_kernel(be, "no_such_kernel"), "an unknown method kernel is NULL");
  cr_expect_str_eq(ops->name, "cpu");
  cr_expect_eq(be->act_dtype, UP_DTYPE_F32);
  cr_expect_gt(strlen(be->device_name), 0);
  cr_expect_gt(ops->memory_available(be), (size_t)1 << 20, "a running machine has more than 1 MiB free");
}

Test(cpu_ops, memory_round_trips_at_an_offset) {
  float *dev = be->ops->alloc(be, sizeof(float) * 10, "test floats");
  const float src[4] = {1.5f, -2.0f, 3.25f, 1e-30f};
  float back[4] = {0};
  be->ops->upload_f32(be, dev, 3, src, 4);
  be->ops->synchronize(be);
  be->ops->download_f32(be, back, dev, 3, 4);
  cr_expect_arr_eq(back, src, sizeof src);
  cr_expect_eq(dev[3], src[0], "offset counts elements, not bytes");
  be->ops->free(be, dev);

  int32_t *idev = be->ops->alloc(be, sizeof(int32_t) * 5, "test ints");
  const int32_t isrc[5] = {7, -1, 0, 2147483647, 42};
  int32_t iback[5] = {0};
  be->ops->upload_i32(be, idev, isrc, 5);
  be->ops->download_i32(be, iback, idev, 5);
  cr_expect_arr_eq(iback, isrc, sizeof isrc);
  be->ops->free(be, idev);

  /* Raw bytes: fp32 bits (a NaN payload, a subnormal) come back unchanged. */
  const uint32_t bits[3] = {0x7fc01234u, 0x00000001u, 0xbf800000u};
  uint32_t bits_back[3] = {0};
  void *bdev = be->ops->alloc(be, sizeof bits, "test bytes");
  be->ops->upload_bytes(be, bdev, bits, sizeof bits);
  be->ops->download_bytes(be, bits_back, bdev, sizeof bits);
  cr_expect_arr_eq(bits_back, bits, sizeof bits);
  be->ops->free(be, bdev);
}

/* --- per-token ops ------------------------------------------------------------ */

Test(cpu_ops, embed_copies_table_rows) {
  enum { vocab = 11, dim = 7, n = 5 };
  const int32_t tokens[n] = {3, 0, 10, 3, 7};
  float *table = random_floats(1, 0, vocab * dim, 1.0f), *out = nan_floats(n * dim);
  double *ref = zero_doubles(n * dim);
  for (int t = 0; t < n; ++t)
    for (int i = 0; i < dim; ++i) ref[t * dim + i] = table[tokens[t] * dim + i];
  be->ops->embed(be, out, table, tokens, n, dim);
  expect_close(out, ref, n * dim, "embed");
  free(table), free(out), free(ref);
}

static void rmsnorm_reference(double *ref, const float *x, const float *weight, int rows, int dim, double eps) {
  for (int r = 0; r < rows; ++r) {
    double mean_sq = 0.0;
    for (int i = 0; i < dim; ++i) mean_sq += (double)x[r * dim + i] * x[r * dim + i] / dim;
    for (int i = 0; i < dim; ++i) ref[r * dim + i] = x[r * dim + i] / sqrt(mean_sq + eps) * weight[i];
  }
}

Test(cpu_ops, rmsnorm_matches_formula) {
  enum { rows = 5, dim = 67 };
  float *x = random_floats(2, 0, rows * dim, 3.0f), *w = random_floats(2, 1, dim, 1.0f);
  float *out = nan_floats(rows * dim);
  double *ref = zero_doubles(rows * dim);
  rmsnorm_reference(ref, x, w, rows, dim, 1e-5);
  be->ops->rmsnorm(be, out, x, w, rows, dim, 1e-5f);
  expect_close(out, ref, rows * dim, "rmsnorm");
  free(x), free(w), free(out), free(ref);
}

Test(cpu_ops, add_rmsnorm_updates_residual_and_normalises_it) {
  enum { rows = 4, dim = 45 };
  float *residual = random_floats(3, 0, rows * dim, 2.0f), *x = random_floats(3, 1, rows * dim, 2.0f);
  float *w = random_floats(3, 2, dim, 1.0f), *out = nan_floats(rows * dim), *sum = nan_floats(rows * dim);
  double *ref_residual = zero_doubles(rows * dim), *ref_out = zero_doubles(rows * dim);
  for (int i = 0; i < rows * dim; ++i) {
    ref_residual[i] = (double)residual[i] + x[i];
    sum[i] = residual[i] + x[i]; /* the fp32 sum the op normalises */
  }
  rmsnorm_reference(ref_out, sum, w, rows, dim, 1e-6);
  be->ops->add_rmsnorm(be, out, residual, x, w, rows, dim, 1e-6f);
  expect_close(residual, ref_residual, rows * dim, "add_rmsnorm residual");
  expect_close(out, ref_out, rows * dim, "add_rmsnorm out");
  free(residual), free(x), free(w), free(out), free(sum), free(ref_residual), free(ref_out);
}

Test(cpu_ops, swiglu_matches_formula) {
  enum { rows = 4, inter = 37 };
  float *gate_up = random_floats(4, 0, rows * 2 * inter, 6.0f), *out = nan_floats(rows * inter);
  double *ref = zero_doubles(rows * inter);
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < inter; ++i) {
      const double g = gate_up[r * 2 * inter + i], u = gate_up[r * 2 * inter + inter + i];
      ref[r * inter + i] = g / (1.0 + exp(-g)) * u;
    }
  be->ops->swiglu(be, out, gate_up, rows, inter);
  expect_close(out, ref, rows * inter, "swiglu");
  free(gate_up), free(out), free(ref);
}

Test(cpu_ops, matmul_matches_triple_loop_on_odd_shapes) {
  enum { m = 7, n = 13, k = 29 };
  float *a = random_floats(5, 0, m * k, 1.0f), *w = random_floats(5, 1, n * k, 1.0f), *out = nan_floats(m * n);
  double *ref = zero_doubles(m * n);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j)
      for (int p = 0; p < k; ++p) ref[i * n + j] += (double)a[i * k + p] * w[j * k + p];
  be->ops->matmul(be, out, a, w, m, n, k);
  expect_close(out, ref, m * n, "matmul");
  free(a), free(w), free(out), free(ref);
}

/* --- RoPE ----------------------------------------------------------------------- */

static float *llama_inv_freq(int head_dim, double base) {
  float *f = malloc(sizeof(float) * (size_t)head_dim / 2);
  cr_assert_not_null(f);
  for (int i = 0; i < head_dim / 2; ++i) f[i] = (float)pow(base, -2.0 * i / head_dim);
  return f;
}

Test(cpu_ops, rope_rotates_queries_and_keys_but_not_values) {
  const up_attn_shape shape = {.n_heads = 4, .n_kv_heads = 2, .head_dim = 32, .scale = 1.0f};
  enum { n = 6, stride = (4 + 2 * 2) * 32, half = 16 };
  const int32_t positions[n] = {0, 1, 17, 4095, 100000, 131071};
  float *inv_freq = llama_inv_freq(32, 500000.0);
  float *qkv = random_floats(6, 0, n * stride, 1.0f), *before = malloc(sizeof(float) * n * stride);
  memcpy(before, qkv, sizeof(float) * n * stride);
  double *ref = zero_doubles(n * stride);
  for (int t = 0; t < n; ++t)
    for (int h = 0; h < 8; ++h) {
      const float *x = before + t * stride + h * 32;
      double *y = ref + t * stride + h * 32;
      for (int i = 0; i < half; ++i) {
        if (h >= 6) { /* the two value heads */
          y[i] = x[i], y[i + half] = x[i + half];
          continue;
        }
        const double angle = (double)positions[t] * inv_freq[i];
        y[i] = x[i] * cos(angle) - x[i + half] * sin(angle);
        y[i + half] = x[i + half] * cos(angle) + x[i] * sin(angle);
      }
    }
  be->ops->rope(be, qkv, positions, inv_freq, n, &shape);
  expect_close(qkv, ref, n * stride, "rope");
  for (int t = 0; t < n; ++t)
    cr_expect_arr_eq(qkv + t * stride + 6 * 32, before + t * stride + 6 * 32, sizeof(float) * 2 * 32,
                     "values of row %d changed", t);
  free(inv_freq), free(qkv), free(before), free(ref);
}

Test(cpu_ops, rope_is_identity_at_position_zero_and_keeps_pair_norms) {
  const up_attn_shape shape = {.n_heads = 2, .n_kv_heads = 1, .head_dim = 64, .scale = 1.0f};
  enum { n = 4, stride = (2 + 2) * 64, half = 32 };
  const int32_t positions[n] = {0, 3, 65536, 131071};
  float *inv_freq = llama_inv_freq(64, 10000.0);
  float *qkv = random_floats(7, 0, n * stride, 1.0f), *before = malloc(sizeof(float) * n * stride);
  memcpy(before, qkv, sizeof(float) * n * stride);
  be->ops->rope(be, qkv, positions, inv_freq, n, &shape);
  cr_expect_arr_eq(qkv, before, sizeof(float) * stride, "position 0 must leave the row unchanged");
  for (int t = 1; t < n; ++t)
    for (int h = 0; h < 3; ++h)
      for (int i = 0; i < half; ++i) {
        const float *x = before + t * stride + h * 64, *y = qkv + t * stride + h * 64;
        const double n0 = hypot(x[i], x[i + half]), n1 = hypot(y[i], y[i + half]);
        cr_expect_leq(fabs(n1 - n0), 1e-6 * (1.0 + n0), "row %d head %d pair %d: norm %g -> %g", t, h, i, n0, n1);
      }
  cr_expect_neq(memcmp(qkv + stride, before + stride, sizeof(float) * stride), 0, "position 3 must rotate");
  free(inv_freq), free(qkv), free(before);
}

/* --- gathers and argmax ------------------------------------------------------------ */

Test(cpu_ops, gather_rows_and_gather_i32_pick_the_listed_rows) {
  enum { src_rows = 9, dim = 5, n = 6 };
  const int32_t rows[n] = {8, 0, 3, 3, 7, 1};
  float *src = random_floats(8, 0, src_rows * dim, 1.0f), *dst = nan_floats(n * dim);
  be->ops->gather_rows(be, dst, src, rows, n, dim);
  for (int r = 0; r < n; ++r)
    cr_expect_arr_eq(dst + r * dim, src + rows[r] * dim, sizeof(float) * dim, "row %d", r);

  int32_t positions[src_rows], out[n];
  for (int i = 0; i < src_rows; ++i) positions[i] = 1000 + 7 * i;
  for (int i = 0; i < n; ++i) out[i] = -1;
  be->ops->gather_i32(be, out, positions, rows, n);
  for (int r = 0; r < n; ++r) cr_expect_eq(out[r], 1000 + 7 * rows[r], "index %d", r);
  free(src), free(dst);
}

Test(cpu_ops, argmax_rows_takes_lowest_index_on_ties) {
  enum { rows = 5, cols = 6 };
  const float x[rows][cols] = {
      {1, 5, 5, 2, 5, 0},             /* tie among 1, 2, 4 */
      {3, 3, 3, 3, 3, 3},             /* all equal */
      {-9, -8, -7, -6, -5, -4},       /* max at the end */
      {-INFINITY, -1e30f, -1e30f, -2, -3, -2}, /* tie among negatives */
      {0, 0, 0, 0, 0, 1e-38f},        /* tiny but largest */
  };
  const int32_t expected[rows] = {1, 0, 5, 3, 5};
  int32_t out[rows] = {-1, -1, -1, -1, -1};
  be->ops->argmax_rows(be, out, x, rows, cols);
  for (int r = 0; r < rows; ++r) cr_expect_eq(out[r], expected[r], "row %d: got %d", r, out[r]);
}

/* Issue 18: a NaN or +inf anywhere in a row (non-finite activations) gives -1, so the
 * caller fails that sequence alone; -inf is an ordinary value. */
Test(cpu_ops, argmax_rows_flags_non_finite_rows) {
  enum { rows = 5, cols = 4 };
  const float x[rows][cols] = {
      {1, NAN, 2, 0},            /* NaN off the maximum */
      {NAN, NAN, NAN, NAN},
      {1, 2, 3, INFINITY},       /* +inf would win an ordinary comparison */
      {-INFINITY, 4, 1, 2},      /* -inf: the maximum is still 4 */
      {0, 1, 2, NAN},            /* NaN in the last column */
  };
  const int32_t expected[rows] = {-1, -1, -1, 1, -1};
  int32_t out[rows] = {7, 7, 7, 7, 7};
  be->ops->argmax_rows(be, out, x, rows, cols);
  for (int r = 0; r < rows; ++r) cr_expect_eq(out[r], expected[r], "row %d: got %d", r, out[r]);
}

/* --- KV store and attention ---------------------------------------------------------- */

Test(cpu_ops, kv_store_writes_keys_and_values_to_scattered_slots) {
  const up_attn_shape shape = {.n_heads = 4, .n_kv_heads = 2, .head_dim = 32, .scale = 1.0f};
  enum { n_blocks = 8, block_tokens = 16, kv_dim = 64, stride = 8 * 32, n = 21 };
  int32_t all_slots[n_blocks * block_tokens];
  for (int i = 0; i < n_blocks * block_tokens; ++i) all_slots[i] = i;
  shuffle_i32(all_slots, n_blocks * block_tokens, 9);
  const int32_t *slots = all_slots; /* the first n of a permutation: distinct, scattered */
  float *qkv = random_floats(9, 0, n * stride, 1.0f);
  up_kv_pool pool = {.k = nan_floats(n_blocks * block_tokens * kv_dim),
                     .v = nan_floats(n_blocks * block_tokens * kv_dim),
                     .n_blocks = n_blocks, .block_tokens = block_tokens, .kv_dim = kv_dim};
  be->ops->kv_store(be, &pool, qkv, slots, n, &shape);
  const float *k = pool.k, *v = pool.v;
  for (int t = 0; t < n; ++t) {
    cr_expect_arr_eq(k + slots[t] * kv_dim, qkv + t * stride + 4 * 32, sizeof(float) * kv_dim, "K of row %d", t);
    cr_expect_arr_eq(v + slots[t] * kv_dim, qkv + t * stride + 6 * 32, sizeof(float) * kv_dim, "V of row %d", t);
  }
  int untouched = 0;
  for (int i = 0; i < n_blocks * block_tokens * kv_dim; ++i) untouched += isnan(k[i]) && isnan(v[i]);
  cr_expect_eq(untouched, (n_blocks * block_tokens - n) * kv_dim, "kv_store wrote outside its slots");
  free(qkv), free(pool.k), free(pool.v);
}

/* A packed batch with its cache: rows[s] new rows per sequence over kv_lens[s] cached
 * entries (the last rows[s] of them this step's keys and values), and the attention
 * window (0: full causal). */
typedef struct attn_case {
  int32_t n_seqs;
  const int32_t *rows;
  const int32_t *kv_lens;
  int32_t n_heads, n_kv_heads, head_dim;
  uint64_t seed;
  int32_t window;
} attn_case;

/* The first cache entry the row at cache index i sees under the window. */
static int32_t window_start(int32_t i, int32_t window) { return window > 0 && i - window + 1 > 0 ? i - window + 1 : 0; }

/* Builds the batch with blocks scattered out of order through a pool whose unused
 * entries are NaN, runs the op, and compares with a plain softmax per row over the
 * entries its window (or full causal mask) lets it see. With a window, the blocks
 * wholly before each sequence's first visible entry leave its block table (-1), as
 * the layer memory gives them back; a window at least as long as every cache must
 * give exactly the full causal result. */
static void check_attention(const attn_case *c) {
  enum { block_tokens = 16 };
  const int32_t hd = c->head_dim, kv_dim = c->n_kv_heads * hd;
  const int32_t stride = (c->n_heads + 2 * c->n_kv_heads) * hd, group = c->n_heads / c->n_kv_heads;
  int32_t cu[16] = {0}, max_blocks = 0, used_blocks = 0;
  cr_assert_lt(c->n_seqs, 16);
  for (int s = 0; s < c->n_seqs; ++s) {
    cu[s + 1] = cu[s] + c->rows[s];
    const int32_t blocks = (c->kv_lens[s] + block_tokens - 1) / block_tokens;
    used_blocks += blocks;
    if (blocks + 1 > max_blocks) max_blocks = blocks + 1; /* a spare column per row */
  }
  const int32_t n_tokens = cu[c->n_seqs], n_blocks = used_blocks + 5;
  int32_t *block_ids = malloc(sizeof(int32_t) * n_blocks), *tables = malloc(sizeof(int32_t) * c->n_seqs * max_blocks);
  for (int b = 0; b < n_blocks; ++b) block_ids[b] = b;
  shuffle_i32(block_ids, n_blocks, c->seed);
  for (int i = 0, next = 0; i < c->n_seqs * max_blocks; ++i) {
    const int s = i / max_blocks, b = i % max_blocks;
    tables[i] = b * block_tokens < c->kv_lens[s] ? block_ids[next++] : -1;
  }

  float *qkv = random_floats(c->seed, 0, (size_t)n_tokens * stride, 2.0f);
  up_kv_pool pool = {.k = nan_floats((size_t)n_blocks * block_tokens * kv_dim),
                     .v = nan_floats((size_t)n_blocks * block_tokens * kv_dim),
                     .n_blocks = n_blocks, .block_tokens = block_tokens, .kv_dim = kv_dim};
  /* Logical cache of each sequence: prior entries random, then this step's K and V. */
  float **cache_k = malloc(sizeof(float *) * c->n_seqs), **cache_v = malloc(sizeof(float *) * c->n_seqs);
  for (int s = 0; s < c->n_seqs; ++s) {
    const int32_t len = c->kv_lens[s], prior = len - c->rows[s];
    cache_k[s] = random_floats(c->seed, 1 + 2 * s, (size_t)len * kv_dim, 2.0f);
    cache_v[s] = random_floats(c->seed, 2 + 2 * s, (size_t)len * kv_dim, 2.0f);
    for (int t = 0; t < c->rows[s]; ++t) {
      const float *row = qkv + (size_t)(cu[s] + t) * stride;
      memcpy(cache_k[s] + (size_t)(prior + t) * kv_dim, row + c->n_heads * hd, sizeof(float) * kv_dim);
      memcpy(cache_v[s] + (size_t)(prior + t) * kv_dim, row + (c->n_heads + c->n_kv_heads) * hd,
             sizeof(float) * kv_dim);
    }
    for (int e = 0; e < len; ++e) {
      const size_t slot = (size_t)tables[s * max_blocks + e / block_tokens] * block_tokens + e % block_tokens;
      memcpy((float *)pool.k + slot * kv_dim, cache_k[s] + (size_t)e * kv_dim, sizeof(float) * kv_dim);
      memcpy((float *)pool.v + slot * kv_dim, cache_v[s] + (size_t)e * kv_dim, sizeof(float) * kv_dim);
    }
  }

  const double scale = 1.0 / sqrt(hd);
  double *ref = zero_doubles((size_t)n_tokens * c->n_heads * hd);
  double *p = zero_doubles(4096);
  for (int s = 0; s < c->n_seqs; ++s)
    for (int t = 0; t < c->rows[s]; ++t) {
      const int32_t visible = c->kv_lens[s] - c->rows[s] + t + 1;
      const int32_t from = window_start(visible - 1, c->window);
      cr_assert_leq(visible, 4096);
      for (int h = 0; h < c->n_heads; ++h) {
        const float *q = qkv + (size_t)(cu[s] + t) * stride + h * hd;
        const int kvh = h / group;
        double max = -INFINITY, sum = 0.0;
        for (int j = from; j < visible; ++j) {
          double dot = 0.0;
          for (int d = 0; d < hd; ++d) dot += (double)q[d] * cache_k[s][(size_t)j * kv_dim + kvh * hd + d];
          p[j] = dot * scale;
          if (p[j] > max) max = p[j];
        }
        for (int j = from; j < visible; ++j) sum += p[j] = exp(p[j] - max);
        double *o = ref + (size_t)(cu[s] + t) * c->n_heads * hd + h * hd;
        for (int j = from; j < visible; ++j)
          for (int d = 0; d < hd; ++d) o[d] += p[j] / sum * cache_v[s][(size_t)j * kv_dim + kvh * hd + d];
      }
    }

  const up_attn_batch batch = {.n_seqs = c->n_seqs, .n_tokens = n_tokens, .cu_seqlens = cu,
                               .kv_lens = c->kv_lens, .block_tables = tables, .max_blocks_per_seq = max_blocks};
  const up_attn_shape shape = {.n_heads = c->n_heads, .n_kv_heads = c->n_kv_heads, .head_dim = hd,
                               .scale = (float)scale};
  int32_t longest = 0, dead_blocks = 0;
  for (int s = 0; s < c->n_seqs; ++s) {
    if (c->kv_lens[s] > longest) longest = c->kv_lens[s];
    for (int b = 0; b < window_start(c->kv_lens[s] - c->rows[s], c->window) / block_tokens; ++b, ++dead_blocks)
      tables[s * max_blocks + b] = -1;
  }
  const size_t out_n = (size_t)n_tokens * c->n_heads * hd;
  float *out = nan_floats(out_n);
  be->ops->attention(be, out, qkv, &pool, &batch, &shape, c->window);
  expect_close(out, ref, out_n, "attention");
  if (c->window >= longest) {
    cr_assert_eq(dead_blocks, 0);
    float *full = nan_floats(out_n);
    be->ops->attention(be, full, qkv, &pool, &batch, &shape, 0);
    cr_assert_arr_eq(out, full, sizeof(float) * out_n, "window %d >= every cache differs from full causal",
                     c->window);
    free(full);
  }

  for (int s = 0; s < c->n_seqs; ++s) free(cache_k[s]), free(cache_v[s]);
  free(cache_k), free(cache_v), free(block_ids), free(tables), free(qkv), free(pool.k), free(pool.v);
  free(ref), free(p), free(out);
}

Test(cpu_ops, attention_prefill_gqa_head_dim_32) {
  const int32_t rows[] = {37, 300, 5}; /* 300 spans several query tiles */
  check_attention(&(attn_case){.n_seqs = 3, .rows = rows, .kv_lens = rows, .n_heads = 4, .n_kv_heads = 2,
                               .head_dim = 32, .seed = 11});
}

Test(cpu_ops, attention_prefill_gqa_head_dim_64) {
  const int32_t rows[] = {129, 17, 64, 1};
  check_attention(&(attn_case){.n_seqs = 4, .rows = rows, .kv_lens = rows, .n_heads = 4, .n_kv_heads = 2,
                               .head_dim = 64, .seed = 12});
}

Test(cpu_ops, attention_prefill_without_grouping) {
  const int32_t rows[] = {50, 9, 200};
  check_attention(&(attn_case){.n_seqs = 3, .rows = rows, .kv_lens = rows, .n_heads = 4, .n_kv_heads = 4,
                               .head_dim = 64, .seed = 13});
}

Test(cpu_ops, attention_decode_row_over_existing_cache) {
  const int32_t rows[] = {1, 40, 1}, kv_lens[] = {101, 40, 17};
  check_attention(&(attn_case){.n_seqs = 3, .rows = rows, .kv_lens = kv_lens, .n_heads = 4, .n_kv_heads = 2,
                               .head_dim = 64, .seed = 14});
}

Test(cpu_ops, attention_chunk_over_prior_entries) {
  const int32_t rows[] = {20, 150, 3}, kv_lens[] = {57, 170, 3};
  check_attention(&(attn_case){.n_seqs = 3, .rows = rows, .kv_lens = kv_lens, .n_heads = 4, .n_kv_heads = 2,
                               .head_dim = 32, .seed = 15});
}

Test(cpu_ops, attention_chunk_over_prior_entries_without_grouping) {
  const int32_t rows[] = {33, 2, 140}, kv_lens[] = {48, 2, 300};
  check_attention(&(attn_case){.n_seqs = 3, .rows = rows, .kv_lens = kv_lens, .n_heads = 4, .n_kv_heads = 4,
                               .head_dim = 32, .seed = 16});
}

Test(cpu_ops, attention_sliding_window_prefill_across_tiles) {
  const int32_t rows[] = {37, 300, 5}; /* 300 rows: three query tiles, each over its own key span */
  check_attention(&(attn_case){.n_seqs = 3, .rows = rows, .kv_lens = rows, .n_heads = 4, .n_kv_heads = 2,
                               .head_dim = 32, .seed = 21, .window = 24});
}

Test(cpu_ops, attention_sliding_window_decode_and_chunks_skip_returned_blocks) {
  /* Decode rows over long caches and a chunk over prior entries: their first blocks
   * are gone from the tables. */
  const int32_t rows[] = {1, 20, 1, 150}, kv_lens[] = {101, 57, 17, 170};
  check_attention(&(attn_case){.n_seqs = 4, .rows = rows, .kv_lens = kv_lens, .n_heads = 4, .n_kv_heads = 2,
                               .head_dim = 64, .seed = 22, .window = 7});
}

Test(cpu_ops, attention_window_of_one_sees_only_itself) {
  const int32_t rows[] = {40, 1}, kv_lens[] = {40, 33};
  check_attention(&(attn_case){.n_seqs = 2, .rows = rows, .kv_lens = kv_lens, .n_heads = 4, .n_kv_heads = 4,
                               .head_dim = 32, .seed = 23, .window = 1});
}

Test(cpu_ops, attention_window_at_least_the_length_is_full_causal) {
  const int32_t rows[] = {37, 300, 5}, kv_lens[] = {37, 300, 9};
  check_attention(&(attn_case){.n_seqs = 3, .rows = rows, .kv_lens = kv_lens, .n_heads = 4, .n_kv_heads = 2,
                               .head_dim = 32, .seed = 24, .window = 300});
  check_attention(&(attn_case){.n_seqs = 3, .rows = rows, .kv_lens = kv_lens, .n_heads = 4, .n_kv_heads = 2,
                               .head_dim = 32, .seed = 24, .window = 4096});
}

Test(cpu_ops, attention_negative_window_is_fatal, .exit_code = 1) {
  const int32_t rows[] = {4};
  check_attention(&(attn_case){.n_seqs = 1, .rows = rows, .kv_lens = rows, .n_heads = 2, .n_kv_heads = 2,
                               .head_dim = 32, .seed = 25, .window = -1});
}
