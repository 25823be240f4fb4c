/* op_case_list.c — the correctness cases of op_case_list.h, op by op. Tolerances: bf16
 * storage rounds to 2^-9, and sums of thousands of products keep the normalised error
 * near 1e-2 at worst, so 2e-2 for values; indices, copies and the selection's kept
 * rows must match exactly (a selection difference on a near tie is flagged, not
 * failed). */
#include "launcher/kernels/op_case_list.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "engine/model/model_config.h"
#include "kernels/op_cases/case_qwen.h"
#include "launcher/kernels/kernel_cases.h"

#define UP_VALUES_TOL 2e-2
#define UP_EXACT 0.0

typedef struct case_list {
  up_op_case *cases;
  int32_t n, capacity;
} case_list;

static up_op_case *add(case_list *l, const up_op_driver *driver, double tolerance, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static up_op_case *add(case_list *l, const up_op_driver *driver, double tolerance, const char *fmt, ...) {
  if (l->n == l->capacity) {
    l->capacity = l->capacity ? 2 * l->capacity : 64;
    l->cases = realloc(l->cases, sizeof *l->cases * (size_t)l->capacity);
    if (!l->cases) UP_FATAL("out of host memory for %d op cases", (int)l->capacity);
  }
  up_op_case *c = &l->cases[l->n++];
  memset(c, 0, sizeof *c);
  c->driver = driver;
  c->tolerance = tolerance;
  c->poison = true;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->label, sizeof c->label, fmt, ap);
  va_end(ap);
  return c;
}

static up_attn_shape heads(int32_t n_heads, int32_t n_kv_heads, int32_t head_dim) {
  return (up_attn_shape){n_heads, n_kv_heads, head_dim, 1.0f / sqrtf((float)head_dim)};
}

/* A batch of n sequences (at most UP_OP_CASE_MAX_SEQS) with their rows, prior entries
 * and candidate flags (NULL: every sequence a candidate). */
static void set_batch(up_op_case *c, up_attn_shape shape, int32_t block_tokens, int32_t n, const int32_t *rows,
                      const int32_t *prior, const uint8_t *candidate) {
  UP_ASSERT(n <= UP_OP_CASE_MAX_SEQS, "%d sequences in a listed batch", (int)n);
  up_op_batch_dims *d = &c->batch;
  d->shape = shape;
  d->block_tokens = block_tokens;
  d->n_seqs = n;
  d->per_sequence = true;
  for (int32_t s = 0; s < n; ++s) {
    d->rows[s] = rows[s];
    d->prior[s] = prior ? prior[s] : 0;
    d->candidate[s] = candidate ? candidate[s] : 1;
  }
  d->query_bound = d->qkv_bound = d->pool_bound = 1.0f;
  d->spare_blocks = true;
}

static void add_per_token_ops(case_list *l, const up_model_config *llama) {
  const int32_t hidden = llama->hidden, inter = llama->intermediate, vocab = llama->vocab;
  /* Llama-3.1-8B sizes, then odd ones that take the one-element-per-access paths. */
  const int32_t norm_shapes[2][2] = {{300, hidden}, {17, 1001}};
  for (int i = 0; i < 2; ++i) {
    const int32_t r = norm_shapes[i][0], d = norm_shapes[i][1];
    add(l, &up_op_rmsnorm, UP_VALUES_TOL, "rmsnorm %d x %d", r, d)->rows = (up_op_rows_dims){r, d, 0};
    add(l, &up_op_add_rmsnorm, UP_VALUES_TOL, "add_rmsnorm %d x %d", r, d)->rows = (up_op_rows_dims){r, d, 0};
  }
  add(l, &up_op_embed, UP_VALUES_TOL, "embed 300 tokens x %d (vocab 1000)", hidden)->rows =
      (up_op_rows_dims){300, hidden, 1000};
  add(l, &up_op_embed, UP_VALUES_TOL, "embed 13 tokens x 1001 (vocab 77)")->rows = (up_op_rows_dims){13, 1001, 77};
  add(l, &up_op_swiglu, UP_VALUES_TOL, "swiglu 300 x %d", inter)->rows = (up_op_rows_dims){300, inter, 0};
  add(l, &up_op_swiglu, UP_VALUES_TOL, "swiglu 7 x 1003")->rows = (up_op_rows_dims){7, 1003, 0};
  /* Gemma 3: GeGLU at the 12B's width and an odd one; q/k head norms at head_dim 256
   * (270M's 4/1 heads) and 128 (27B's 32/16); the embedding scale over 270M's rows. */
  add(l, &up_op_geglu, UP_VALUES_TOL, "geglu 300 x 15360")->rows = (up_op_rows_dims){300, 15360, 0};
  add(l, &up_op_geglu, UP_VALUES_TOL, "geglu 7 x 1003")->rows = (up_op_rows_dims){7, 1003, 0};
  add(l, &up_op_head_rmsnorm, UP_VALUES_TOL, "head_rmsnorm 300 rows of 4/1 heads x 256")->rope =
      (up_op_rope_dims){heads(4, 1, 256), 300, 0, NULL};
  add(l, &up_op_head_rmsnorm, UP_VALUES_TOL, "head_rmsnorm 33 rows of 32/16 heads x 128")->rope =
      (up_op_rope_dims){heads(32, 16, 128), 33, 0, NULL};
  add(l, &up_op_scale, UP_VALUES_TOL, "scale 300 x 640")->rows = (up_op_rows_dims){300, 640, 0};
  const int32_t gather_shapes[2][3] = {{300, hidden, 500}, {19, 1001, 50}};
  for (int i = 0; i < 2; ++i) {
    const up_op_rows_dims d = {gather_shapes[i][0], gather_shapes[i][1], gather_shapes[i][2]};
    add(l, &up_op_gather_rows, UP_VALUES_TOL, "gather_rows %d of %d rows x %d", d.rows, d.src_rows, d.dim)->rows = d;
    add(l, &up_op_gather_i32, UP_EXACT, "gather_i32 %d of %d values", d.rows, d.src_rows)->rows = d;
  }
  add(l, &up_op_argmax_rows, UP_EXACT, "argmax_rows 9 x %d", vocab)->rows = (up_op_rows_dims){9, vocab, 0};
  add(l, &up_op_argmax_rows, UP_EXACT, "argmax_rows 5 x 1001")->rows = (up_op_rows_dims){5, 1001, 0};
}

/* Frequencies: the model's own (llama3-scaled) at its head size, else theta 10000.
 * Positions at both ends of the context. */
static void add_rope(case_list *l, const up_model_config *llama) {
  static float llama_inv_freq[128]; /* head_dim / 2 frequencies, for head sizes up to 256 */
  UP_ASSERT(llama->head_dim / 2 <= 128, "head_dim %d", (int)llama->head_dim);
  up_model_config_rope_inv_freq(llama, llama_inv_freq);
  const up_attn_shape llama_heads = heads(llama->n_heads, llama->n_kv_heads, llama->head_dim);
  const int32_t last = llama->max_context - 64;
  const struct {
    up_attn_shape shape;
    int32_t n_tokens, first;
    const float *inv_freq;
  } ropes[] = {{llama_heads, 64, 0, llama_inv_freq},
               {llama_heads, 64, last, llama_inv_freq},
               {heads(4, 2, 64), 33, 100000, NULL},
               {heads(3, 1, 6), 11, 131060, NULL}}; /* half = 3: the scalar path */
  for (size_t i = 0; i < sizeof ropes / sizeof ropes[0]; ++i) {
    up_op_case *c = add(l, &up_op_rope, UP_VALUES_TOL, "rope %d tokens of %d/%d heads x %d at %d", ropes[i].n_tokens,
                        ropes[i].shape.n_heads, ropes[i].shape.n_kv_heads, ropes[i].shape.head_dim, ropes[i].first);
    c->rope = (up_op_rope_dims){ropes[i].shape, ropes[i].n_tokens, ropes[i].first, ropes[i].inv_freq};
  }
}

/* One sequence continues a cache at entry 5, one starts empty. */
static void add_kv_store(case_list *l, const up_model_config *llama) {
  const int32_t rows[2] = {37, 60}, prior[2] = {5, 0};
  const up_attn_shape shapes[2] = {heads(llama->n_heads, llama->n_kv_heads, llama->head_dim), heads(3, 1, 6)};
  for (int i = 0; i < 2; ++i) {
    up_op_case *c = add(l, &up_op_kv_store, UP_VALUES_TOL, "kv_store %d/%d heads x %d, shuffled blocks",
                        shapes[i].n_heads, shapes[i].n_kv_heads, shapes[i].head_dim);
    set_batch(c, shapes[i], 16, 2, rows, prior, NULL);
  }
}

/* The layer's projections at 1 to 2048 rows, then odd shapes: tiny, a misaligned a
 * (cuBLASLt must be told), and k = 0. */
static void add_matmul(case_list *l, const up_model_config *llama) {
  up_gemm_shape gemms[UP_MAX_LAYER_TENSORS];
  const int32_t n_gemms = up_kernel_layer_gemms(llama, gemms);
  const int32_t ms[4] = {1, 7, 333, 2048};
  for (int32_t g = 0; g < n_gemms; ++g)
    for (int j = 0; j < 4; ++j)
      add(l, &up_op_matmul, UP_VALUES_TOL, "matmul %s m=%d n=%lld k=%lld", gemms[g].name, ms[j],
          (long long)gemms[g].n, (long long)gemms[g].k)->gemm = (up_op_gemm_dims){ms[j], gemms[g].n, gemms[g].k, 0};
  const int32_t odd[4][4] = {{5, 37, 19, 0}, {33, 64, 64, 1}, {64, 128, 256, 8}, {3, 5, 0, 0}};
  for (int i = 0; i < 4; ++i)
    add(l, &up_op_matmul, UP_VALUES_TOL, "matmul m=%d n=%d k=%d%s", odd[i][0], odd[i][1], odd[i][2],
        odd[i][3] ? " (a misaligned)" : "")->gemm = (up_op_gemm_dims){odd[i][0], odd[i][1], odd[i][2], odd[i][3]};
}

/* A listed case over a window: its batch, window and sampled rows. */
typedef struct window_case {
  const char *name;
  up_attn_shape shape;
  int32_t block_tokens, window, n_seqs;
  const int32_t *rows, *prior;
  int32_t sample;
} window_case;

/* One case of `driver` per entry, labelled "<op> <name>", with bounded values and NaN
 * in the pool rows no sequence owns (a read behind a window shows). */
static void add_window_cases(case_list *l, const up_op_driver *driver, const char *op, const window_case *cases,
                             size_t n) {
  for (size_t i = 0; i < n; ++i) {
    up_op_case *c = add(l, driver, UP_VALUES_TOL, "%s %s%s", op, cases[i].name,
                        cases[i].sample ? " (sampled rows)" : "");
    set_batch(c, cases[i].shape, cases[i].block_tokens, cases[i].n_seqs, cases[i].rows, cases[i].prior, NULL);
    c->batch.window = cases[i].window;
    c->batch.query_bound = c->batch.qkv_bound = 2.0f;
    c->batch.poison_unowned = true;
    c->sample = cases[i].sample;
  }
}

/* Sliding-window attention (kernels/ops.h; the blocks behind each sequence's window
 * are -1 in its table, kernels/op_cases/paged_batch.h): windows smaller than, equal to
 * and larger than the sequences, none a multiple of a key tile but one (64), W = 1;
 * prefill continuing a cached prefix longer than the window; decode over long caches;
 * head sizes 64/128/256 over pages of 8 to 128 entries (24 and 128 take the Hopper
 * cp.async kernel, 8-64 the TMA one at head_dim 256); long prompts on sampled rows. */
static void add_attention_windows(case_list *l) {
  enum { N = 6 };
  static const int32_t mixed[N] = {1, 17, 64, 100, 1000, 4100}, chunked[N] = {0, 5, 0, 300, 77, 2000};
  static const int32_t cont_rows[N] = {5, 130, 64, 255, 1000, 2049}, cont_prior[N] = {3, 0, 3000, 1, 77, 5000};
  const window_case cases[] = {
      {"hd128 gqa 32/8 window 100 mixed prefill bt16", heads(32, 8, 128), 16, 100, N, mixed, NULL, 0},
      {"hd128 gqa 32/8 window 1000 mixed chunked bt64", heads(32, 8, 128), 64, 1000, N, mixed, chunked, 0},
      {"hd128 gqa 32/8 window 300 continued prefix bt8", heads(32, 8, 128), 8, 300, N, cont_rows, cont_prior, 0},
      {"hd128 gqa 32/8 window 300 continued prefix bt128", heads(32, 8, 128), 128, 300, N, cont_rows, cont_prior, 0},
      {"hd128 gqa 32/8 window 700 continued prefix bt24", heads(32, 8, 128), 24, 700, N, cont_rows, cont_prior, 0},
      {"hd128 gqa 32/8 window 1 bt16", heads(32, 8, 128), 16, 1, 4, (const int32_t[]){1, 17, 130, 300},
       (const int32_t[]){0, 5, 0, 200}, 0},
      {"hd128 gqa 32/8 window 100000 (wider than every sequence) bt16", heads(32, 8, 128), 16, 100000, N, mixed,
       chunked, 0},
      {"hd64 8/8 window 64 mixed chunked bt64", heads(8, 8, 64), 64, 64, N, mixed, chunked, 0},
      {"hd64 8/8 window 200 continued prefix bt16", heads(8, 8, 64), 16, 200, N, cont_rows, cont_prior, 0},
      {"hd256 gqa 4/1 window 512 mixed chunked bt16", heads(4, 1, 256), 16, 512, N, mixed, chunked, 0},
      {"hd256 gqa 16/8 window 1000 continued prefix bt64", heads(16, 8, 256), 64, 1000, N, cont_rows, cont_prior, 0},
      {"hd256 gqa 16/8 window 333 continued prefix bt8", heads(16, 8, 256), 8, 333, N, cont_rows, cont_prior, 0},
      {"hd256 gqa 16/8 window 333 continued prefix bt128", heads(16, 8, 256), 128, 333, N, cont_rows, cont_prior, 0},
      {"hd128 gqa 32/8 decode window 1000 bt16", heads(32, 8, 128), 16, 1000, 8,
       (const int32_t[]){1, 1, 1, 1, 2, 4, 1, 3}, (const int32_t[]){99, 999, 1000, 4096, 19999, 5000, 0, 998}, 0},
      {"hd256 gqa 16/8 decode window 512 bt16", heads(16, 8, 256), 16, 512, 4, (const int32_t[]){1, 4, 1, 2},
       (const int32_t[]){2999, 100, 511, 9998}, 0},
      {"hd128 gqa 32/8 long 16384 rows window 4096 bt16", heads(32, 8, 128), 16, 4096, 1, (const int32_t[]){16384},
       NULL, 64},
      {"hd256 gqa 16/8 long 8192 rows after 8192 window 1000 bt16", heads(16, 8, 256), 16, 1000, 1,
       (const int32_t[]){8192}, (const int32_t[]){8192}, 64},
  };
  add_window_cases(l, &up_op_attention, "attention", cases, sizeof cases / sizeof cases[0]);
}

/* Head sizes 64/128/256 and GQA groups 4, 1, 2 and 4; packed batches of mixed lengths
 * after prior entries over shuffled pages of 8 to 128 entries (24: not a power of two),
 * pure decode, decode over tiny caches, and long prompts compared on sampled rows.
 * Queries twice the keys' range: scores of a few units, a softmax far from uniform. */
static void add_attention(case_list *l) {
  enum { N = 6 };
  static const int32_t mixed[N] = {1, 17, 64, 100, 1000, 4100}, chunked[N] = {0, 5, 0, 300, 77, 0};
  static const int32_t chunked_tail[N] = {0, 5, 0, 300, 77, 130};
  const struct {
    const char *name;
    up_attn_shape shape;
    int32_t block_tokens, n_seqs;
    const int32_t *rows, *prior;
    int32_t sample;
  } cases[] = {
      {"hd128 gqa 32/8 mixed prefill bt16", heads(32, 8, 128), 16, N, mixed, NULL, 0},
      {"hd64 8/8 mixed chunked bt64", heads(8, 8, 64), 64, N, mixed, chunked, 0},
      {"hd256 gqa 4/1 mixed chunked bt16", heads(4, 1, 256), 16, N, mixed, (const int32_t[]){3000, 0, 40, 0, 0, 1}, 0},
      {"hd128 gqa 32/8 few rows over caches bt24", heads(32, 8, 128), 24, N, (const int32_t[]){2, 3, 4, 5, 6, 130},
       (const int32_t[]){100, 1000, 0, 17, 4000, 50}, 0},
      {"hd128 gqa 32/8 pure decode bt16", heads(32, 8, 128), 16, 8, (const int32_t[]){1, 1, 1, 1, 1, 1, 1, 1},
       (const int32_t[]){99, 256, 999, 4096, 19999, 0, 32, 6999}, 0},
      {"hd64 8/8 pure decode bt64", heads(8, 8, 64), 64, 4, (const int32_t[]){1, 1, 1, 1},
       (const int32_t[]){4999, 63, 64, 11999}, 0},
      {"hd256 gqa 4/1 decode bt16", heads(4, 1, 256), 16, 3, (const int32_t[]){1, 4, 1},
       (const int32_t[]){2999, 100, 9998}, 0},
      {"hd128 gqa 32/8 mixed chunked bt64", heads(32, 8, 128), 64, N, mixed, chunked, 0},
      {"hd128 gqa 32/8 mixed chunked bt16", heads(32, 8, 128), 16, N, mixed, chunked_tail, 0},
      {"hd128 gqa 32/8 mixed chunked bt32", heads(32, 8, 128), 32, N, mixed, chunked_tail, 0},
      {"hd128 gqa 32/8 mixed chunked bt8", heads(32, 8, 128), 8, N, (const int32_t[]){5, 130, 64, 255, 1000, 2049},
       (const int32_t[]){3, 0, 64, 1, 77, 0}, 0},
      {"hd128 gqa 32/8 mixed chunked bt128", heads(32, 8, 128), 128, N, (const int32_t[]){1, 129, 64, 127, 1000, 4100},
       (const int32_t[]){0, 1, 128, 300, 0, 5}, 0},
      /* Decode over tiny caches: most key splits are empty, and several queries per CTA
       * put the partials of one split in more than one warp. */
      {"hd128 gqa 32/8 decode over tiny caches bt16", heads(32, 8, 128), 16, 7, (const int32_t[]){1, 2, 3, 4, 1, 4, 2},
       (const int32_t[]){0, 0, 0, 0, 1, 60, 3}, 0},
      {"hd64 8/8 multi-row decode over tiny caches bt64", heads(8, 8, 64), 64, 5, (const int32_t[]){2, 3, 4, 4, 2},
       (const int32_t[]){0, 1, 0, 70, 5}, 0},
      {"hd128 gqa 32/8 long 16384 rows bt64", heads(32, 8, 128), 64, 1, (const int32_t[]){16384}, NULL, 64},
      {"hd128 gqa 32/8 long 16384 rows bt16", heads(32, 8, 128), 16, 1, (const int32_t[]){16384}, NULL, 64},
      /* Gemma 3 12B's heads, over pages that take the Hopper TMA kernel (8-64) and
       * the cp.async one (128, 24) at head_dim 256. */
      {"hd256 gqa 16/8 mixed chunked bt64", heads(16, 8, 256), 64, N, mixed, chunked_tail, 0},
      {"hd256 gqa 16/8 mixed chunked bt8", heads(16, 8, 256), 8, N, (const int32_t[]){5, 130, 64, 255, 1000, 2049},
       (const int32_t[]){3, 0, 64, 1, 77, 0}, 0},
      {"hd256 gqa 16/8 mixed chunked bt128", heads(16, 8, 256), 128, N, (const int32_t[]){1, 129, 64, 127, 1000, 4100},
       (const int32_t[]){0, 1, 128, 300, 0, 5}, 0},
      {"hd256 gqa 16/8 mixed chunked bt24", heads(16, 8, 256), 24, N, mixed, chunked, 0},
      {"hd256 gqa 16/8 long 16384 rows bt16", heads(16, 8, 256), 16, 1, (const int32_t[]){16384}, NULL, 64},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    up_op_case *c = add(l, &up_op_attention, UP_VALUES_TOL, "attention %s%s", cases[i].name,
                        cases[i].sample ? " (sampled rows)" : "");
    set_batch(c, cases[i].shape, cases[i].block_tokens, cases[i].n_seqs, cases[i].rows, cases[i].prior, NULL);
    c->batch.query_bound = c->batch.qkv_bound = 2.0f;
    c->batch.poison_unowned = true;
    c->sample = cases[i].sample;
  }
}

/* Long candidates (short last blocks), a short candidate (at most sink + last_q: left
 * alone), decode rows and a long non-candidate, over head sizes 64/128/256 and GQA
 * groups 2-4, at top-p 0.9 / 0.5 / 0.75, fixed budgets 0.3 / 0.45, p = 1, odd block /
 * sink / last_q and 1-token blocks (the global-memory sort). Queries at 4x the keys'
 * range so attention is peaked (a power of two: the bf16 values stay exact). */
static void add_selection(case_list *l) {
  const up_select_params defaults = {.top_p = 0.99f, .keep_fraction = 0.0f, .block = 64, .sink = 128, .last_q = 128};
  up_select_params p90 = defaults, p50 = defaults, keep30 = defaults, p100 = defaults, p70 = defaults, p80 = defaults;
  p90.top_p = 0.9f, p50.top_p = 0.5f, keep30.keep_fraction = 0.3f, p100.top_p = 1.0f, p70.top_p = 0.7f, p80.top_p = 0.8f;
  const up_select_params odd75 = {.top_p = 0.75f, .block = 48, .sink = 37, .last_q = 100};
  const up_select_params odd45 = {.top_p = 0.99f, .keep_fraction = 0.45f, .block = 48, .sink = 37, .last_q = 100};
  const up_select_params blocks1 = {.top_p = 0.3f, .block = 1, .sink = 16, .last_q = 64};
  const struct {
    const char *name;
    up_attn_shape shape;
    int32_t n_seqs;
    const int32_t *rows, *prior;
    const uint8_t *candidate;
    up_select_params params;
  } cases[] = {
#define MIXED_BATCH 7, (const int32_t[]){700, 1, 4100, 200, 1, 2000, 9000}, (const int32_t[]){0, 40, 0, 0, 70, 0, 0}, \
                    (const uint8_t[]){1, 0, 1, 1, 0, 0, 1}
      {"hd128 8/2 mixed batch", heads(8, 2, 128), MIXED_BATCH, p90},
      {"hd128 8/2 mixed batch", heads(8, 2, 128), MIXED_BATCH, p50},
      {"hd128 8/2 mixed batch", heads(8, 2, 128), MIXED_BATCH, keep30},
      {"hd128 8/2 mixed batch", heads(8, 2, 128), MIXED_BATCH, p100},
#undef MIXED_BATCH
      {"hd128 32/8 llama shape", heads(32, 8, 128), 3, (const int32_t[]){3000, 1, 5000}, (const int32_t[]){0, 33, 0},
       (const uint8_t[]){1, 0, 1}, p90},
      {"hd64 8/2", heads(8, 2, 64), 2, (const int32_t[]){1500, 3}, (const int32_t[]){0, 0}, (const uint8_t[]){1, 1}, p70},
      {"hd64 8/2", heads(8, 2, 64), 2, (const int32_t[]){1500, 3}, (const int32_t[]){0, 0}, (const uint8_t[]){1, 1},
       keep30},
      {"hd256 4/2", heads(4, 2, 256), 2, (const int32_t[]){2500, 1}, (const int32_t[]){0, 9}, (const uint8_t[]){1, 0},
       p80},
      {"hd128 6/2", heads(6, 2, 128), 3, (const int32_t[]){1000, 1, 2100}, (const int32_t[]){0, 5, 0},
       (const uint8_t[]){1, 0, 1}, odd75},
      {"hd128 6/2", heads(6, 2, 128), 3, (const int32_t[]){1000, 1, 2100}, (const int32_t[]){0, 5, 0},
       (const uint8_t[]){1, 0, 1}, odd45},
      {"hd128 8/2 1-token blocks (global-memory sort)", heads(8, 2, 128), 2, (const int32_t[]){20000, 1},
       (const int32_t[]){0, 3}, (const uint8_t[]){1, 0}, blocks1},
      {"hd128 8/2 no candidates", heads(8, 2, 128), 3, (const int32_t[]){5, 1, 300}, (const int32_t[]){0, 12, 0},
       (const uint8_t[]){0, 0, 0}, p50},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    const up_select_params *p = &cases[i].params;
    up_op_case *c = add(l, &up_op_selection, UP_EXACT, "selection %s, %s %.2f, block %d sink %d last_q %d",
                        cases[i].name, p->keep_fraction > 0.0f ? "keep" : "top-p",
                        (double)(p->keep_fraction > 0.0f ? p->keep_fraction : p->top_p), (int)p->block, (int)p->sink,
                        (int)p->last_q);
    set_batch(c, cases[i].shape, 16, cases[i].n_seqs, cases[i].rows, cases[i].prior, cases[i].candidate);
    c->batch.select = *p;
    c->batch.query_bound = 8.0f;
    c->batch.qkv_bound = 2.0f;
  }
}

/* --- Qwen3-Next ops (issue 14; drivers in kernels/op_cases/case_qwen.h) ----------------
 * Shapes of Qwen3-Next-80B-A3B (../shared/HYBRIDS.md C.1), written out here until its
 * preset lands (then they come from it): DeltaNet 16 key / 32 value heads of 128,
 * attention 16 / 2 heads of 256, 512 experts, top 10, hidden 2048. Small shapes beside
 * them run CPU against CPU in test_op_cases; the 8192-row prefill is the GPU's (and
 * its time, printed by gpu_ops_test, the first-cut kernel's). */
enum { QN_KEY_HEADS = 16, QN_VALUE_HEADS = 32, QN_GDN_DIM = 128, QN_HEADS = 16, QN_KV_HEADS = 2, QN_HEAD_DIM = 256,
       QN_EXPERTS = 512, QN_TOP_K = 10, QN_HIDDEN = 2048, QN_MOE_INTER = 512 };

static void add_qwen3_next_ops(case_list *l) {
  const up_attn_shape gdn = {QN_VALUE_HEADS, QN_KEY_HEADS, QN_GDN_DIM, 0.0f}, gdn_small = {4, 2, 32, 0.0f};
  /* Lengths at, below and above the 64-row chunk, decode rows (1 row from a state) and
   * a prefill continuing a cached prefix. */
  const int32_t rows[6] = {1, 63, 64, 65, 200, 1}, prior[6] = {0, 0, 0, 1, 1, 1};
  /* Several chunks per sequence, with and without a state, a head size the 32-column
   * state tiles of the chunked CUDA kernel do not divide, and a one-row prefill. */
  const int32_t several_chunks[4] = {257, 128, 191, 1}, several_chunks_prior[4] = {1, 0, 1, 0};
  const struct {
    const char *name;
    up_attn_shape shape;
    int32_t n_seqs;
    const int32_t *rows, *prior;
  } batches[] = {
      {"4/2 heads x 32 mixed", gdn_small, 6, rows, prior},
      {"Qwen3-Next 32/16 heads x 128 mixed", gdn, 6, rows, prior},
      {"Qwen3-Next 32/16 heads x 128 decode", gdn, 4, (const int32_t[]){1, 1, 1, 1}, (const int32_t[]){1, 1, 1, 1}},
      {"Qwen3-Next 32/16 heads x 128 prefill 8192", gdn, 1, (const int32_t[]){8192}, (const int32_t[]){0}},
      {"4/2 heads x 80 chunks across sequences", {4, 2, 80, 0.0f}, 4, several_chunks, several_chunks_prior},
      /* 72: not a multiple of the tensor-core kernel's 16-wide product steps. */
      {"4/2 heads x 72 chunks across sequences", {4, 2, 72, 0.0f}, 4, several_chunks, several_chunks_prior},
      {"Qwen3-Next 32/16 heads x 128 chunks across sequences", gdn, 4, several_chunks, several_chunks_prior},
  };
  for (size_t i = 0; i < sizeof batches / sizeof batches[0]; ++i) {
    up_op_case *c = add(l, &up_op_gated_deltanet, UP_VALUES_TOL, "gated_deltanet %s", batches[i].name);
    set_batch(c, batches[i].shape, 16, batches[i].n_seqs, batches[i].rows, batches[i].prior, NULL);
    if (i < 3) {
      c = add(l, &up_op_causal_conv1d, UP_VALUES_TOL, "causal_conv1d %s", batches[i].name);
      set_batch(c, batches[i].shape, 16, batches[i].n_seqs, batches[i].rows, batches[i].prior, NULL);
    }
  }
  add(l, &up_op_gdn_gates, UP_VALUES_TOL, "gdn_gates 300 x %d heads", QN_VALUE_HEADS)->rows =
      (up_op_rows_dims){300, QN_VALUE_HEADS, 0};
  add(l, &up_op_gdn_gates, UP_VALUES_TOL, "gdn_gates 7 x 3 heads")->rows = (up_op_rows_dims){7, 3, 0};
  add(l, &up_op_gated_rmsnorm, UP_VALUES_TOL, "gated_rmsnorm 300 x %d heads x %d", QN_VALUE_HEADS, QN_GDN_DIM)->rows =
      (up_op_rows_dims){300, QN_GDN_DIM, QN_VALUE_HEADS};
  add(l, &up_op_gated_rmsnorm, UP_VALUES_TOL, "gated_rmsnorm 5 x 3 heads x 37")->rows = (up_op_rows_dims){5, 37, 3};
  add(l, &up_op_moe_route, UP_VALUES_TOL, "moe_route 300 x top %d of %d", QN_TOP_K, QN_EXPERTS)->rows =
      (up_op_rows_dims){300, QN_EXPERTS, QN_TOP_K};
  add(l, &up_op_moe_route, UP_VALUES_TOL, "moe_route 9 x top 2 of 6")->rows = (up_op_rows_dims){9, 6, 2};
  add(l, &up_op_moe_sort, UP_EXACT, "moe_sort 300 x top %d of %d", QN_TOP_K, QN_EXPERTS)->rows =
      (up_op_rows_dims){300, QN_EXPERTS, QN_TOP_K};
  add(l, &up_op_moe_sort, UP_EXACT, "moe_sort 4096 x top %d of %d", QN_TOP_K, QN_EXPERTS)->rows =
      (up_op_rows_dims){4096, QN_EXPERTS, QN_TOP_K};
  add(l, &up_op_moe_sort, UP_EXACT, "moe_sort 9 x top 2 of 6")->rows = (up_op_rows_dims){9, 6, 2};
  add(l, &up_op_moe_combine, UP_VALUES_TOL, "moe_combine 300 x top %d x %d + shared", QN_TOP_K, QN_HIDDEN)->gemm =
      (up_op_gemm_dims){300, QN_HIDDEN, QN_TOP_K, 1};
  add(l, &up_op_moe_combine, UP_VALUES_TOL, "moe_combine 5 x top 2 x 7")->gemm = (up_op_gemm_dims){5, 7, 2, 0};
  /* The routed experts as the block runs them: at the model's shapes (8 experts checked),
   * small, and one expert with every row (the dense MLP of the same active FLOPs). */
  up_op_case *experts = add(l, &up_op_moe_experts, UP_VALUES_TOL, "moe experts 300 x top %d of %d, %d x %d",
                            QN_TOP_K, QN_EXPERTS, QN_MOE_INTER, QN_HIDDEN);
  experts->moe = (up_op_moe_dims){300, QN_HIDDEN, QN_MOE_INTER, QN_EXPERTS, QN_TOP_K};
  experts->sample = 8;
  add(l, &up_op_moe_experts, UP_VALUES_TOL, "moe experts 37 x top 2 of 6, 16 x 24")->moe =
      (up_op_moe_dims){37, 24, 16, 6, 2};
  add(l, &up_op_moe_experts, UP_VALUES_TOL, "moe experts 37 x 1 expert, 32 x 24")->moe =
      (up_op_moe_dims){37, 24, 32, 1, 1};
  experts = add(l, &up_op_moe_experts_grouped, UP_VALUES_TOL, "moe experts grouped 300 x top %d of %d, %d x %d",
                QN_TOP_K, QN_EXPERTS, QN_MOE_INTER, QN_HIDDEN);
  experts->moe = (up_op_moe_dims){300, QN_HIDDEN, QN_MOE_INTER, QN_EXPERTS, QN_TOP_K};
  experts->sample = 8;
  /* 74 rows over 40 experts: some groups empty, as at decode sizes */
  add(l, &up_op_moe_experts_grouped, UP_VALUES_TOL, "moe experts grouped 37 x top 2 of 40, 16 x 24")->moe =
      (up_op_moe_dims){37, 24, 16, 40, 2};
  const up_op_rope_dims attn = {heads(QN_HEADS, QN_KV_HEADS, QN_HEAD_DIM), 300, 0, NULL};
  const up_op_rope_dims attn_late = {heads(QN_HEADS, QN_KV_HEADS, QN_HEAD_DIM), 64, 262080, NULL};
  const up_op_rope_dims odd = {heads(3, 1, 12), 7, 5, NULL};
  add(l, &up_op_split_query_gate, UP_VALUES_TOL, "split_query_gate 300 x %d heads x %d", QN_HEADS, QN_HEAD_DIM)->rope =
      attn;
  add(l, &up_op_split_query_gate, UP_VALUES_TOL, "split_query_gate 7 x 3 heads x 12")->rope = odd;
  add(l, &up_op_sigmoid_gate, UP_VALUES_TOL, "sigmoid_gate 300 x %d", QN_HEADS * QN_HEAD_DIM)->rope = attn;
  add(l, &up_op_sigmoid_gate, UP_VALUES_TOL, "sigmoid_gate 7 x 36")->rope = odd;
  add(l, &up_op_rope_partial, UP_VALUES_TOL, "rope_partial 64 of %d, 300 tokens at 0", QN_HEAD_DIM)->rope = attn;
  add(l, &up_op_rope_partial, UP_VALUES_TOL, "rope_partial 64 of %d, 64 tokens at 262080", QN_HEAD_DIM)->rope =
      attn_late;
  add(l, &up_op_rope_partial, UP_VALUES_TOL, "rope_partial 4 of 16, 7 tokens at 5")->rope =
      (up_op_rope_dims){heads(3, 1, 16), 7, 5, NULL};
}

/* The sparse baselines' attention kernel over drawn patterns: 64x64 ranges at arbitrary
 * starts with extra keys (MInference), aligned 128x128 blocks (FlexPrefill, XAttention)
 * at densities 0.1 / 0.3 / 0.5 / 1, short last blocks, and decode rows and dense prefills in
 * the same batch, at head sizes 64, 128 and 256. On Hopper, 128-row blocks without extra keys
 * on pages of 8-128 (hd128) or 8-64 (hd256) entries take the TMA kernel's listed schedule
 * (kernels/cuda/sparse/sparse_attention.cu), the rest the mma.sync kernel; the "TMA"
 * lines below are meant for the former (256x128: two CTAs per query block; "shifted":
 * 128-key ranges at arbitrary starts, so tiles start at page boundaries before them and
 * mask the entries outside; "against dense": density 1 compared with the CPU's dense
 * attention op). tests/gpu/gpu_sparse_attention_test.c runs them through both kernels. */
static void add_sparse_attention(case_list *l) {
  const up_op_sparse_dims slashes = {.block_q = 64, .block_k = 64, .density = 0.3f, .unaligned = true, .extra_keys = 40};
  const up_op_sparse_dims blocks10 = {.block_q = 128, .block_k = 128, .density = 0.1f};
  const up_op_sparse_dims blocks30 = {.block_q = 128, .block_k = 128, .density = 0.3f};
  const up_op_sparse_dims blocks50x = {.block_q = 128, .block_k = 128, .density = 0.5f, .extra_keys = 9};
  const up_op_sparse_dims all = {.block_q = 128, .block_k = 128, .density = 1.0f};
  const up_op_sparse_dims all_as_dense = {.block_q = 128, .block_k = 128, .density = 1.0f, .dense_reference = true};
  const up_op_sparse_dims tall30 = {.block_q = 256, .block_k = 128, .density = 0.3f};
  const up_op_sparse_dims shifted30 = {.block_q = 128, .block_k = 128, .density = 0.3f, .unaligned = true};
  const struct {
    const char *name;
    up_attn_shape shape;
    int32_t block_tokens, n_seqs;
    const int32_t *rows, *prior;
    const uint8_t *sparse;
    up_op_sparse_dims pattern;
  } cases[] = {
      {"hd128 8/2 small slashes bt16", heads(8, 2, 128), 16, 2, (const int32_t[]){600, 1}, (const int32_t[]){0, 20},
       (const uint8_t[]){1, 0}, slashes},
      {"hd128 32/8 slashes, mixed batch bt16", heads(32, 8, 128), 16, 5, (const int32_t[]){1000, 1, 300, 4100, 5},
       (const int32_t[]){0, 77, 0, 0, 33}, (const uint8_t[]){1, 0, 0, 1, 0}, slashes},
      {"hd128 32/8 blocks, mixed batch bt24", heads(32, 8, 128), 24, 3, (const int32_t[]){2000, 1, 4100},
       (const int32_t[]){0, 50, 0}, (const uint8_t[]){1, 0, 1}, blocks30},
      {"hd128 32/8 all blocks bt64", heads(32, 8, 128), 64, 2, (const int32_t[]){3000, 130}, (const int32_t[]){0, 0},
       (const uint8_t[]){1, 1}, all},
      {"hd256 4/1 blocks and extra keys bt16", heads(4, 1, 256), 16, 2, (const int32_t[]){3000, 129},
       (const int32_t[]){0, 0}, (const uint8_t[]){1, 1}, blocks50x},
      {"hd256 4/1 slashes, decode rows bt16", heads(4, 1, 256), 16, 2, (const int32_t[]){1500, 2},
       (const int32_t[]){0, 1000}, (const uint8_t[]){1, 0}, slashes},
      {"hd128 32/8 TMA blocks, mixed batch bt16", heads(32, 8, 128), 16, 4, (const int32_t[]){2000, 1, 4100, 300},
       (const int32_t[]){0, 50, 0, 0}, (const uint8_t[]){1, 0, 1, 0}, blocks30},
      {"hd128 32/8 TMA blocks, batch of 3 bt32", heads(32, 8, 128), 32, 3, (const int32_t[]){3000, 1000, 2100},
       (const int32_t[]){0, 0, 0}, (const uint8_t[]){1, 1, 1}, blocks10},
      {"hd128 8/2 TMA tall blocks, decode row bt8", heads(8, 2, 128), 8, 3, (const int32_t[]){1800, 3, 700},
       (const int32_t[]){0, 400, 0}, (const uint8_t[]){1, 0, 1}, tall30},
      {"hd128 32/8 TMA, 2 seqs bt16", heads(32, 8, 128), 16, 2, (const int32_t[]){2500, 700},
       (const int32_t[]){0, 0}, (const uint8_t[]){1, 1}, all_as_dense},
      {"hd256 4/1 TMA blocks, mixed batch bt16", heads(4, 1, 256), 16, 3, (const int32_t[]){3000, 2, 1500},
       (const int32_t[]){0, 1000, 0}, (const uint8_t[]){1, 0, 1}, blocks30},
      {"hd256 8/2 TMA blocks, batch of 2 bt64", heads(8, 2, 256), 64, 2, (const int32_t[]){2600, 1300},
       (const int32_t[]){0, 0}, (const uint8_t[]){1, 1}, blocks10},
      {"hd256 4/1 TMA, 2 seqs bt16", heads(4, 1, 256), 16, 2, (const int32_t[]){2000, 900},
       (const int32_t[]){0, 0}, (const uint8_t[]){1, 1}, all_as_dense},
      {"hd128 8/2 TMA shifted ranges, decode row bt16", heads(8, 2, 128), 16, 3, (const int32_t[]){2100, 1, 900},
       (const int32_t[]){0, 300, 0}, (const uint8_t[]){1, 0, 1}, shifted30},
      {"hd256 4/1 TMA shifted ranges bt32", heads(4, 1, 256), 32, 2, (const int32_t[]){1700, 640},
       (const int32_t[]){0, 0}, (const uint8_t[]){1, 1}, shifted30},
      {"hd128 32/8 blocks and extra keys bt16", heads(32, 8, 128), 16, 2, (const int32_t[]){2000, 1100},
       (const int32_t[]){0, 0}, (const uint8_t[]){1, 1}, blocks50x},
      /* SmolLM2's 9 query / 3 kv heads of 64: the mma.sync kernel at head_dim 64 */
      {"hd64 9/3 smollm2 slashes, decode row bt16", heads(9, 3, 64), 16, 2, (const int32_t[]){1500, 1},
       (const int32_t[]){0, 40}, (const uint8_t[]){1, 0}, slashes},
      {"hd64 9/3 smollm2 blocks, mixed batch bt16", heads(9, 3, 64), 16, 3, (const int32_t[]){2000, 1, 700},
       (const int32_t[]){0, 30, 0}, (const uint8_t[]){1, 0, 1}, blocks30},
      {"hd64 9/3 smollm2 blocks and extra keys bt32", heads(9, 3, 64), 32, 2, (const int32_t[]){1300, 129},
       (const int32_t[]){0, 0}, (const uint8_t[]){1, 1}, blocks50x},
      {"hd64 9/3 smollm2, 2 seqs bt16", heads(9, 3, 64), 16, 2, (const int32_t[]){1700, 300},
       (const int32_t[]){0, 0}, (const uint8_t[]){1, 1}, all_as_dense},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    const up_op_sparse_dims *p = &cases[i].pattern;
    up_op_case *c = add(l, &up_op_sparse_attention, UP_VALUES_TOL, "sparse attention %s, %dx%d%s density %.1f%s",
                        cases[i].name, (int)p->block_q, (int)p->block_k, p->unaligned ? " unaligned" : "",
                        (double)p->density, p->dense_reference ? " against dense" : "");
    set_batch(c, cases[i].shape, cases[i].block_tokens, cases[i].n_seqs, cases[i].rows, cases[i].prior,
              cases[i].sparse);
    c->batch.sparse = *p;
    c->batch.query_bound = c->batch.qkv_bound = 2.0f;
    c->batch.poison_unowned = true;
  }
  /* Llama-3.1-8B shapes at 32K, 128-blocks at densities 1 / 0.3 / 0.1, four query blocks
   * compared: the one-call times of these lines are the kernel's first timings
   * (docs/kernels/sparse_attention.md has the floors); on Hopper they run the TMA
   * kernel's listed schedule. */
  static const float densities[] = {1.0f, 0.3f, 0.1f};
  for (size_t i = 0; i < sizeof densities / sizeof densities[0]; ++i) {
    up_op_case *c = add(l, &up_op_sparse_attention, UP_VALUES_TOL,
                        "sparse attention hd128 32/8 llama 32K bt16, 128x128 density %.1f (sampled blocks)",
                        (double)densities[i]);
    set_batch(c, heads(32, 8, 128), 16, 1, (const int32_t[]){32768}, NULL, NULL);
    c->batch.sparse = (up_op_sparse_dims){.block_q = 128, .block_k = 128, .density = densities[i]};
    c->batch.query_bound = c->batch.qkv_bound = 2.0f;
    c->sample = 4;
  }
}

/* UniPrefill's bounded attention (window=original on a sliding layer after a drop):
 * each row's first entry drawn within the window, on Gemma 3 shapes (270M 4/1, 12B
 * 16/8 at head_dim 256; 27B 32/16 at 128) with prefills, prefixes and decode rows in
 * one call, a tiny window at head_dim 64, and the 12B at 32K rows on sampled rows. */
static void add_bounded_attention(case_list *l) {
  const window_case cases[] = {
      {"hd256 4/1 gemma-3-270m window 512, mixed batch bt16", heads(4, 1, 256), 16, 512, 3,
       (const int32_t[]){600, 1, 300}, (const int32_t[]){0, 900, 0}, 0},
      {"hd256 16/8 gemma-3-12b window 1024, continued prefix and decode bt64", heads(16, 8, 256), 64, 1024, 2,
       (const int32_t[]){2000, 3}, (const int32_t[]){1500, 3000}, 0},
      {"hd128 32/16 gemma-3-27b window 1024 bt24", heads(32, 16, 128), 24, 1024, 1, (const int32_t[]){1300}, NULL, 0},
      {"hd64 8/8 window 7 bt8", heads(8, 8, 64), 8, 7, 2, (const int32_t[]){100, 1}, (const int32_t[]){0, 50}, 0},
      {"hd256 16/8 gemma-3-12b 32K rows window 1024 bt16", heads(16, 8, 256), 16, 1024, 1,
       (const int32_t[]){32768}, NULL, 64},
  };
  add_window_cases(l, &up_op_bounded_attention, "bounded attention", cases, sizeof cases / sizeof cases[0]);
}

/* An estimator case's batch and pattern: peaked queries (8x the keys' range) and no
 * poisoned outputs, since the outputs are lists compared whole. */
static void set_estimate_batch(up_op_case *c, up_attn_shape shape, int32_t n_seqs, const int32_t *rows,
                               const int32_t *prior, const uint8_t *sparse, up_op_sparse_dims pattern) {
  set_batch(c, shape, 16, n_seqs, rows, prior, sparse);
  c->batch.sparse = pattern;
  c->batch.query_bound = 8.0f;
  c->batch.qkv_bound = 2.0f;
  c->poison = false;
}

/* The sparse baselines' estimators against the CPU's lists: peaked queries (8x the keys'
 * range, as the selection cases) keep the reference's choices off near-ties; a decode
 * row and a dense prefill ride along without a pattern. At most 2% of list rows may
 * differ (a block score within an ulp of a bf16 boundary, fp32 against float64 sums). */
static void add_sparse_estimates(case_list *l) {
  const struct {
    const char *name;
    up_attn_shape shape;
    int32_t n_seqs;
    const int32_t *rows, *prior;
    const uint8_t *sparse;
    int32_t stride;
    float threshold;
    float cap; /* the density cap; 1: none */
  } xattention[] = {
      {"hd128 8/2 small", heads(8, 2, 128), 2, (const int32_t[]){1000, 1}, (const int32_t[]){0, 9},
       (const uint8_t[]){1, 0}, 8, 0.9f, 1.0f},
      {"hd128 32/8 mixed batch", heads(32, 8, 128), 4, (const int32_t[]){3000, 1, 300, 2100},
       (const int32_t[]){0, 40, 0, 0}, (const uint8_t[]){1, 0, 0, 1}, 8, 0.7f, 1.0f},
      {"hd256 4/1 stride 16", heads(4, 1, 256), 2, (const int32_t[]){1500, 700}, (const int32_t[]){0, 0},
       (const uint8_t[]){1, 1}, 16, 0.5f, 1.0f},
      {"hd128 8/2 stride 4", heads(8, 2, 128), 1, (const int32_t[]){1000}, NULL, NULL, 4, 0.8f, 1.0f},
      {"hd64 9/3 smollm2", heads(9, 3, 64), 1, (const int32_t[]){1300}, NULL, NULL, 8, 0.9f, 1.0f},
      /* 64 query blocks: long key walks through the tensor-core scores' two stages and
       * their partial softmax states (xattention_scores_mma.cu) */
      {"hd128 8/2 8K", heads(8, 2, 128), 1, (const int32_t[]){8192}, NULL, NULL, 8, 0.9f, 1.0f},
      /* the density cap on the GPU (sparse_block_cap.cu): threshold 1 keeps nearly every
       * block, so the cap's ranking across query blocks decides */
      {"hd128 8/2 capped 0.3", heads(8, 2, 128), 1, (const int32_t[]){3000}, NULL, NULL, 8, 1.0f, 0.3f},
      {"hd128 32/8 mixed batch capped 0.1", heads(32, 8, 128), 4, (const int32_t[]){3000, 1, 300, 2100},
       (const int32_t[]){0, 40, 0, 0}, (const uint8_t[]){1, 0, 0, 1}, 8, 1.0f, 0.1f},
      /* past 16K tokens the authors' first chunk (64 rows here) ends inside the prompt */
      {"hd64 2/1 past the first chunk", heads(2, 1, 64), 1, (const int32_t[]){17000}, NULL, NULL, 8, 0.9f, 1.0f},
  };
  for (size_t i = 0; i < sizeof xattention / sizeof xattention[0]; ++i) {
    up_op_case *c = add(l, &up_op_xattention_estimate, 0.02, "xattention estimate %s, stride %d threshold %.2f",
                        xattention[i].name, (int)xattention[i].stride, (double)xattention[i].threshold);
    set_estimate_batch(c, xattention[i].shape, xattention[i].n_seqs, xattention[i].rows, xattention[i].prior,
                       xattention[i].sparse,
                       (up_op_sparse_dims){.block_q = 128, .block_k = 128, .density = xattention[i].cap,
                                           .stride = xattention[i].stride, .threshold = xattention[i].threshold});
  }
  /* MInference: the authors' sizes scaled to the lengths, an odd-length sequence, and a
   * density cap that lowers v and s */
  const struct {
    const char *name;
    up_attn_shape shape;
    int32_t n_seqs;
    const int32_t *rows, *prior;
    const uint8_t *sparse;
    int32_t vertical, slash;
    float cap;
  } minference[] = {
      {"hd128 8/2 small", heads(8, 2, 128), 2, (const int32_t[]){1000, 1}, (const int32_t[]){0, 9},
       (const uint8_t[]){1, 0}, 40, 60, 1.0f},
      {"hd128 32/8 mixed batch", heads(32, 8, 128), 4, (const int32_t[]){4100, 1, 300, 2077},
       (const int32_t[]){0, 40, 0, 0}, (const uint8_t[]){1, 0, 0, 1}, 512, 2048, 1.0f},
      {"hd256 4/1 capped 0.1", heads(4, 1, 256), 2, (const int32_t[]){3000, 700}, (const int32_t[]){0, 0},
       (const uint8_t[]){1, 1}, 512, 2048, 0.1f},
      {"hd64 9/3 smollm2", heads(9, 3, 64), 1, (const int32_t[]){2500}, NULL, NULL, 128, 512, 1.0f},
      /* the benchmark's shape: its one-call time is the estimate's first timing */
      {"hd128 32/8 llama 32K", heads(32, 8, 128), 1, (const int32_t[]){32768}, NULL, NULL, 512, 2048, 1.0f},
  };
  for (size_t i = 0; i < sizeof minference / sizeof minference[0]; ++i) {
    up_op_case *c = add(l, &up_op_minference_estimate, 0.02, "minference estimate %s, v %d s %d cap %.1f",
                        minference[i].name, (int)minference[i].vertical, (int)minference[i].slash,
                        (double)minference[i].cap);
    set_estimate_batch(c, minference[i].shape, minference[i].n_seqs, minference[i].rows, minference[i].prior,
                       minference[i].sparse,
                       (up_op_sparse_dims){.block_q = 64, .block_k = 64, .density = minference[i].cap,
                                           .vertical = minference[i].vertical, .slash = minference[i].slash});
  }
  /* FlexPrefill: tau 0 keeps every head vertical-slash, tau 1 makes every head
   * query-aware (the sqrt Jensen-Shannon distance is below sqrt(ln 2)), 0.1 is the
   * authors'; min_budget below the authors' 1024 lets the small cases choose */
  const struct {
    const char *name;
    up_attn_shape shape;
    int32_t n_seqs;
    const int32_t *rows, *prior;
    const uint8_t *sparse;
    float gamma, tau;
    int32_t min_budget;
    float cap; /* the density cap; 1: none */
  } flexprefill[] = {
      {"hd128 8/2 small", heads(8, 2, 128), 2, (const int32_t[]){1000, 1}, (const int32_t[]){0, 9},
       (const uint8_t[]){1, 0}, 0.9f, 0.1f, 256, 1.0f},
      {"hd128 8/2 query-aware", heads(8, 2, 128), 1, (const int32_t[]){1500}, NULL, NULL, 0.9f, 1.0f, 256, 1.0f},
      {"hd128 32/8 mixed batch", heads(32, 8, 128), 4, (const int32_t[]){3000, 1, 300, 2100},
       (const int32_t[]){0, 40, 0, 0}, (const uint8_t[]){1, 0, 0, 1}, 0.95f, 0.1f, 1024, 1.0f},
      {"hd256 4/1 vertical-slash", heads(4, 1, 256), 2, (const int32_t[]){1500, 700}, (const int32_t[]){0, 0},
       (const uint8_t[]){1, 1}, 0.8f, 0.0f, 256, 1.0f},
      {"hd64 9/3 smollm2", heads(9, 3, 64), 1, (const int32_t[]){2000}, NULL, NULL, 0.9f, 0.1f, 256, 1.0f},
      /* the benchmark's shape: its one-call time is the estimate's first timing */
      {"hd128 32/8 llama 32K", heads(32, 8, 128), 1, (const int32_t[]){32768}, NULL, NULL, 0.95f, 0.1f, 1024, 1.0f},
      /* the density cap on the GPU (sparse_block_cap.cu), on vertical-slash and on
       * query-aware heads (whose global cover adds blocks the cap then ranks) */
      {"hd128 32/8 mixed batch capped 0.3", heads(32, 8, 128), 4, (const int32_t[]){3000, 1, 300, 2100},
       (const int32_t[]){0, 40, 0, 0}, (const uint8_t[]){1, 0, 0, 1}, 0.95f, 0.1f, 1024, 0.3f},
      {"hd128 8/2 query-aware capped 0.2", heads(8, 2, 128), 1, (const int32_t[]){3000}, NULL, NULL, 0.9f, 1.0f, 256,
       0.2f},
  };
  for (size_t i = 0; i < sizeof flexprefill / sizeof flexprefill[0]; ++i) {
    up_op_case *c = add(l, &up_op_flexprefill_estimate, 0.02, "flexprefill estimate %s, gamma %.2f tau %.1f",
                        flexprefill[i].name, (double)flexprefill[i].gamma, (double)flexprefill[i].tau);
    set_estimate_batch(c, flexprefill[i].shape, flexprefill[i].n_seqs, flexprefill[i].rows, flexprefill[i].prior,
                       flexprefill[i].sparse,
                       (up_op_sparse_dims){.block_q = 128, .block_k = 128, .density = flexprefill[i].cap,
                                           .gamma = flexprefill[i].gamma, .tau = flexprefill[i].tau,
                                           .min_budget = flexprefill[i].min_budget});
  }
}

int32_t up_op_case_list(up_op_case **cases) {
  const up_model_config *llama = up_model_preset_find("llama-3.1-8b");
  UP_ASSERT(llama != NULL, "the llama-3.1-8b preset is missing");
  case_list l = {0};
  add(&l, &up_op_transfers, UP_EXACT, "transfers: 10000019 values at offset 5")->span = (up_op_span_dims){10000019, 5};
  add(&l, &up_op_fill, UP_VALUES_TOL, "fill_uniform 3000001 values")->span = (up_op_span_dims){3000001, 0};
  add(&l, &up_op_fill, UP_VALUES_TOL, "fill_uniform 1000 values at offset 7")->span = (up_op_span_dims){1000, 7};
  add_per_token_ops(&l, llama);
  add_rope(&l, llama);
  add_kv_store(&l, llama);
  add_matmul(&l, llama);
  add_attention(&l);
  add_attention_windows(&l);
  add_selection(&l);
  add_qwen3_next_ops(&l);
  add_sparse_attention(&l);
  add_bounded_attention(&l);
  add_sparse_estimates(&l);
  *cases = l.cases;
  return l.n;
}
