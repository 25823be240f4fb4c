/* test_uniprefill_window.c — UniPrefill's `window` option on a sliding layer after a
 * drop: window=original against a direct softmax under an explicit positional mask
 * (a key is seen iff its original position is in (p - W, p]), for a packed prefill of
 * two sequences (one with dropped positions) and a decode step over the same slots;
 * window=kept against the entry-window mask (the reference's); positions without gaps
 * (before a drop), where window=original takes the plain windowed attention; the
 * option's text form.
 * The forward-level check (a tiny Gemma with a drop) is in test_gemma3.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "engine/methods/method.h"
#include "engine/methods/uniprefill.h"
#include "engine/methods/uniprefill_window.h"
#include "kernels/cpu/cpu_backend.h"

enum { HD = 16, N_HEADS = 2, N_KV = 1, STRIDE = (N_HEADS + 2 * N_KV) * HD, BLOCK = 16, WINDOW = 24 };
enum { MAX_ENTRIES = 256, MAX_BLOCKS = MAX_ENTRIES / BLOCK, N_SEQS = 2 };

/* A sequence's logical cache: its entries' original positions, keys and values. */
typedef struct seq_cache {
  int32_t slot;
  int32_t len;
  int32_t positions[MAX_ENTRIES];
  float k[MAX_ENTRIES][HD], v[MAX_ENTRIES][HD];
} seq_cache;

typedef struct layer_case {
  up_backend *be;
  up_kv_pool pool;
  int32_t tables[N_SEQS * MAX_BLOCKS];
  seq_cache seqs[N_SEQS];
} layer_case;

static float random_value(uint64_t stream, uint64_t i) { return up_rng_symmetric(11, stream, i) * 2.0f; }

/* A step of `rows[s]` new rows per sequence at the given positions: random q, k, v,
 * the keys and values stored in the pool at the sequence's next entries. */
static float *add_rows(layer_case *c, const int32_t *rows, const int32_t *const *positions, uint64_t stream,
                       int32_t *cu, int32_t *kv_lens, int32_t *all_positions) {
  cu[0] = 0;
  for (int s = 0; s < N_SEQS; ++s) cu[s + 1] = cu[s] + rows[s];
  float *qkv = malloc(sizeof(float) * (size_t)cu[N_SEQS] * STRIDE);
  for (int i = 0; i < cu[N_SEQS] * STRIDE; ++i) qkv[i] = random_value(stream, (uint64_t)i);
  for (int s = 0; s < N_SEQS; ++s) {
    seq_cache *sc = &c->seqs[s];
    for (int t = 0; t < rows[s]; ++t) {
      const float *row = qkv + (size_t)(cu[s] + t) * STRIDE;
      const int32_t e = sc->len++;
      cr_assert_lt(e, MAX_ENTRIES);
      sc->positions[e] = all_positions[cu[s] + t] = positions[s][t];
      memcpy(sc->k[e], row + N_HEADS * HD, sizeof sc->k[e]);
      memcpy(sc->v[e], row + (N_HEADS + N_KV) * HD, sizeof sc->v[e]);
      const size_t slot = (size_t)c->tables[s * MAX_BLOCKS + e / BLOCK] * BLOCK + e % BLOCK;
      memcpy((float *)c->pool.k + slot * HD, sc->k[e], sizeof sc->k[e]);
      memcpy((float *)c->pool.v + slot * HD, sc->v[e], sizeof sc->v[e]);
    }
    kv_lens[s] = sc->len;
  }
  return qkv;
}

/* Softmax attention per row over the entries `sees` admits, in double; returns the pairs. */
typedef bool (*sees_fn)(const seq_cache *sc, int32_t row_entry, int32_t key_entry);

static bool sees_original(const seq_cache *sc, int32_t row_entry, int32_t key_entry) {
  const int32_t p = sc->positions[row_entry], pk = sc->positions[key_entry];
  return pk <= p && pk > p - WINDOW;
}

static bool sees_kept(const seq_cache *sc, int32_t row_entry, int32_t key_entry) {
  (void)sc;
  return key_entry <= row_entry && key_entry > row_entry - WINDOW;
}

static double reference(const layer_case *c, const float *qkv, const int32_t *cu, const int32_t *kv_lens, sees_fn sees,
                        double *out) {
  double pairs = 0.0, p[MAX_ENTRIES];
  for (int s = 0; s < N_SEQS; ++s) {
    const seq_cache *sc = &c->seqs[s];
    const int32_t rows = cu[s + 1] - cu[s], prior = kv_lens[s] - rows;
    for (int t = 0; t < rows; ++t) {
      const int32_t me = prior + t;
      for (int j = 0; j <= me; ++j) pairs += sees(sc, me, j);
      for (int h = 0; h < N_HEADS; ++h) {
        const float *q = qkv + (size_t)(cu[s] + t) * STRIDE + h * HD;
        double max = -INFINITY, sum = 0.0;
        for (int j = 0; j <= me; ++j) {
          if (!sees(sc, me, j)) continue;
          double dot = 0.0;
          for (int d = 0; d < HD; ++d) dot += (double)q[d] * sc->k[j][d];
          p[j] = dot / sqrt(HD);
          if (p[j] > max) max = p[j];
        }
        for (int j = 0; j <= me; ++j)
          if (sees(sc, me, j)) sum += p[j] = exp(p[j] - max);
        double *o = out + (size_t)(cu[s] + t) * N_HEADS * HD + h * HD;
        for (int d = 0; d < HD; ++d) o[d] = 0.0;
        for (int j = 0; j <= me; ++j)
          if (sees(sc, me, j))
            for (int d = 0; d < HD; ++d) o[d] += p[j] / sum * sc->v[j][d];
      }
    }
  }
  return pairs;
}

static up_method make_method(up_backend *be, const char *text) {
  char err[256] = "";
  up_method_spec spec;
  cr_assert(up_method_spec_parse(text, NULL, &spec, err, sizeof err), "%s", err);
  up_method m;
  cr_assert(up_method_init(&m, &spec, be, err, sizeof err), "%s", err);
  return m;
}

/* One step through the method's attention hook at a sliding layer, against the
 * reference under `sees`; returns the largest absolute difference. */
static double run_step(layer_case *c, up_method *m, const int32_t *rows, const int32_t *const *positions,
                       uint64_t stream, bool prefill, sees_fn sees) {
  int32_t cu[N_SEQS + 1], kv_lens[N_SEQS], row_positions[2 * MAX_ENTRIES];
  float *qkv = add_rows(c, rows, positions, stream, cu, kv_lens, row_positions);
  const int32_t n = cu[N_SEQS];
  const up_attn_batch batch = {.n_seqs = N_SEQS, .n_tokens = n, .cu_seqlens = cu, .kv_lens = kv_lens,
                               .block_tables = c->tables, .max_blocks_per_seq = MAX_BLOCKS};
  const up_attn_shape shape = {.n_heads = N_HEADS, .n_kv_heads = N_KV, .head_dim = HD, .scale = 1.0f / sqrtf(HD)};
  const uint8_t is_prefill[N_SEQS] = {prefill, prefill};
  const int32_t slots[N_SEQS] = {c->seqs[0].slot, c->seqs[1].slot};
  const up_method_layer at = {.layer = 2, .n_seqs = N_SEQS, .is_prefill_host = is_prefill, .cu_seqlens_host = cu,
                              .kv_lens_host = kv_lens, .qkv = qkv, .pool = &c->pool, .batch = &batch,
                              .shape = &shape, .window = WINDOW, .positions = row_positions, .slots_host = slots};
  float *out = malloc(sizeof(float) * (size_t)n * N_HEADS * HD);
  double *ref = malloc(sizeof(double) * (size_t)n * N_HEADS * HD);
  up_attn_work work = {0};
  m->ops->attention(m, c->be, &at, out, &work);
  const double pairs = work.computed;
  const double ref_pairs = reference(c, qkv, cu, kv_lens, sees, ref);
  cr_assert_eq(pairs, ref_pairs, "the hook reports %.0f query-key pairs, the mask admits %.0f", pairs, ref_pairs);
  double worst = 0.0;
  for (int i = 0; i < n * N_HEADS * HD; ++i) worst = fmax(worst, fabs(out[i] - ref[i]));
  free(qkv), free(out), free(ref);
  return worst;
}

static layer_case *new_case(up_backend *be) {
  layer_case *c = calloc(1, sizeof *c);
  c->be = be;
  const int32_t n_blocks = N_SEQS * MAX_BLOCKS;
  c->pool = (up_kv_pool){.k = calloc((size_t)n_blocks * BLOCK * HD, sizeof(float)),
                         .v = calloc((size_t)n_blocks * BLOCK * HD, sizeof(float)),
                         .n_blocks = n_blocks, .block_tokens = BLOCK, .kv_dim = HD};
  for (int i = 0; i < n_blocks; ++i) c->tables[i] = (i * 7) % n_blocks; /* blocks out of order */
  c->seqs[0].slot = 3;
  c->seqs[1].slot = 0;
  return c;
}

static void free_case(layer_case *c) {
  free(c->pool.k), free(c->pool.v), free(c);
}

/* Sequence 0 kept 150 of 400 prompt positions in runs with gaps (then its last 40,
 * as UniPrefill keeps the tail); sequence 1 kept all of its 40. Then one decode row each. */
static void prompt_positions(int32_t *a, int32_t *b) {
  int32_t n = 0;
  for (int32_t p = 0; p < 360 && n < 110; ++p)
    if ((p / 5) % 3 != 1 || p < 10) a[n++] = p; /* every third run of 5 dropped */
  for (int32_t p = 360; p < 400; ++p) a[n++] = p;
  cr_assert_eq(n, 150);
  for (int32_t p = 0; p < 40; ++p) b[p] = p;
}

Test(uniprefill_window, original_equals_a_positional_mask_in_prefill_and_decode) {
  up_backend *be = up_cpu_backend_create(1);
  layer_case *c = new_case(be);
  up_method m = make_method(be, "uniprefill:window=original");
  int32_t a[150], b[40];
  prompt_positions(a, b);
  const int32_t prompt_rows[N_SEQS] = {150, 40}, decode_rows[N_SEQS] = {1, 1};
  const int32_t *prompt[N_SEQS] = {a, b};
  const double err = run_step(c, &m, prompt_rows, prompt, 1, true, sees_original);
  cr_assert_lt(err, 1e-5, "prefill: window=original differs from the positional mask by %g", err);
  for (int32_t step = 0; step < 3; ++step) {
    const int32_t pa = 400 + step, pb = 40 + step;
    const int32_t *next[N_SEQS] = {&pa, &pb};
    const double derr = run_step(c, &m, decode_rows, next, 2 + (uint64_t)step, false, sees_original);
    cr_assert_lt(derr, 1e-5, "decode step %d: window=original differs from the positional mask by %g", step, derr);
  }
  up_method_destroy(&m);
  free_case(c);
  be->ops->destroy(be);
}

Test(uniprefill_window, kept_is_the_entry_window_and_differs_after_gaps) {
  up_backend *be = up_cpu_backend_create(1);
  int32_t a[150], b[40];
  prompt_positions(a, b);
  const int32_t prompt_rows[N_SEQS] = {150, 40};
  const int32_t *prompt[N_SEQS] = {a, b};
  layer_case *c = new_case(be);
  up_method m = make_method(be, "uniprefill:window=kept");
  cr_assert_null(up_uniprefill_position_window(&m), "window=kept keeps no positions");
  const double err = run_step(c, &m, prompt_rows, prompt, 1, true, sees_kept);
  cr_assert_lt(err, 1e-5, "window=kept differs from the entry-window mask by %g", err);
  /* Over the gapped sequence the original-position window admits fewer keys. */
  int32_t first[150];
  const double original_pairs = up_position_window_first_entries(a, 0, a, 150, WINDOW, first);
  double kept_pairs = 0.0;
  for (int t = 0; t < 150; ++t) kept_pairs += t + 1 < WINDOW ? t + 1 : WINDOW;
  cr_assert_lt(original_pairs, kept_pairs, "gaps shrink the original-position window");
  up_method_destroy(&m);
  free_case(c);
  be->ops->destroy(be);
}

Test(uniprefill_window, first_entries_follow_positions) {
  const int32_t positions[] = {0, 1, 2, 10, 11, 30, 31, 32};
  int32_t first[8];
  const double pairs = up_position_window_first_entries(positions, 0, positions, 8, 4, first);
  /* window 4: position p sees (p - 4, p] */
  const int32_t expected[8] = {0, 0, 0, 3, 3, 5, 5, 5};
  for (int i = 0; i < 8; ++i) cr_assert_eq(first[i], expected[i], "row %d starts at %d, not %d", i, first[i], expected[i]);
  cr_assert_eq(pairs, 1 + 2 + 3 + 1 + 2 + 1 + 2 + 3);
}

Test(uniprefill_window, the_option_reads_and_describes_by_name) {
  char err[256] = "", text[UP_METHOD_TEXT_MAX];
  up_method_spec spec;
  cr_assert(up_method_spec_parse("uniprefill", NULL, &spec, err, sizeof err), "%s", err);
  cr_assert_eq(up_uniprefill_options_of(&spec)->window, UP_UNIPREFILL_WINDOW_KEPT, "the reference's is the default");
  cr_assert(up_method_spec_describe(&spec, text, sizeof text));
  cr_assert_not_null(strstr(text, ":window=kept"), "%s", text);
  cr_assert(up_method_spec_parse("uniprefill:window=original", NULL, &spec, err, sizeof err), "%s", err);
  cr_assert_eq(up_uniprefill_options_of(&spec)->window, UP_UNIPREFILL_WINDOW_ORIGINAL);
  cr_assert(up_method_spec_describe(&spec, text, sizeof text));
  cr_assert_not_null(strstr(text, ":window=original"), "%s", text);
  up_method_spec back;
  cr_assert(up_method_spec_parse(text, NULL, &back, err, sizeof err), "%s", err);
  cr_assert_eq(up_uniprefill_options_of(&back)->window, UP_UNIPREFILL_WINDOW_ORIGINAL);
  cr_assert_not(up_method_spec_parse("uniprefill:window=positions", NULL, &spec, err, sizeof err));
  cr_assert_not_null(strstr(err, "'positions' is not one of kept|original"), "%s", err);
}

/* Before any drop every entry sits at its own position: window=original takes the
 * backend's windowed attention then, which the positional mask must still describe. */
Test(uniprefill_window, original_without_gaps_is_the_plain_window) {
  up_backend *be = up_cpu_backend_create(1);
  layer_case *c = new_case(be);
  up_method m = make_method(be, "uniprefill:window=original");
  int32_t a[100], b[40];
  for (int32_t p = 0; p < 100; ++p) a[p] = p;
  for (int32_t p = 0; p < 40; ++p) b[p] = p;
  const int32_t rows[N_SEQS] = {100, 40};
  const int32_t *prompt[N_SEQS] = {a, b};
  const double err = run_step(c, &m, rows, prompt, 5, true, sees_original);
  cr_assert_lt(err, 1e-5, "window=original without gaps differs from the positional mask by %g", err);
  up_method_destroy(&m);
  free_case(c);
  be->ops->destroy(be);
}
