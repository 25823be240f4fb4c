/* test_sparse_methods.c — the sparse baselines as methods (engine/methods/minference.c,
 * flexprefill.c, xattention.c over sparse_method.c): bad options and table files
 * (MInference's sizes, XAttention's thresholds) name what is wrong; a backend without
 * the kernels, or CUDA at a head_dim its kernel lacks, is refused with a reason; through
 * the attention hook, a packed batch equals each request alone (decode rows dense), the
 * pairs reported match the pattern, gamma 1 equals dense attention, FlexPrefill leaves
 * short prompts dense, non-full layers stay dense, and the density cap holds; the
 * work reported counts whole tiles and BASELINES.md 4's estimation FLOPs, and the speed
 * model scales each layer's attention by that work (dense and windowed layers by 1). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/rng.h"
#include "engine/methods/method.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/cpu_ops.h"
#include "engine/serve/request.h"
#include "launcher/sweep/speed_model.h"
#include "tests/small_model.h"

static bool parse_and_resolve(const char *text, const up_model_config *cfg, up_method_spec *spec, char *err,
                              size_t size) {
  return up_method_spec_parse(text, NULL, spec, err, size) && up_method_spec_resolve(spec, cfg, err, size);
}

static void expect_refused(const char *text, const char *want) {
  const up_model_config cfg = small_config();
  up_method_spec spec;
  char err[512] = "";
  cr_expect(!parse_and_resolve(text, &cfg, &spec, err, sizeof err), "'%s' must be refused", text);
  cr_expect_neq(strstr(err, want), NULL, "'%s': message '%s' lacks '%s'", text, err, want);
}

Test(sparse_methods, bad_options_name_the_option) {
  expect_refused("minference:w=3", "unknown option 'w'");
  expect_refused("minference:v=0", "option v");
  expect_refused("minference:s=-5", "option s");
  expect_refused("flexprefill:gamma=0", "option gamma");
  expect_refused("flexprefill:gamma=1.5", "option gamma");
  expect_refused("flexprefill:tau=-0.1", "option tau");
  expect_refused("flexprefill:min_budget=x", "option min_budget");
  expect_refused("xattention:threshold=0", "option threshold");
  expect_refused("xattention:stride=32", "option stride");
  expect_refused("xattention:stride=12", "option stride: 12 is not 4, 8 or 16");
  expect_refused("xattention:density=0", "option density");
  expect_refused("flexprefill:density=1.01", "option density");
  expect_refused("minference:table=a,b", "option table");
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fputs(text, f);
  fclose(f);
}

/* A table file holding `text` makes `spec_text` fail to resolve with `want` in the message. */
static void expect_table_refused(const char *spec_text, const char *path, const char *text, const char *want) {
  const up_model_config cfg = small_config();
  up_method_spec spec;
  char err[512] = "";
  write_file(path, text);
  cr_expect(!parse_and_resolve(spec_text, &cfg, &spec, err, sizeof err), "'%s' must be refused", text);
  cr_expect_neq(strstr(err, want), NULL, "'%s': message '%s' lacks '%s'", text, err, want);
}

Test(sparse_methods, a_table_must_cover_the_models_layers_and_heads) {
  const up_model_config cfg = small_config(); /* 4 layers x 4 heads */
  char path[64], spec_text[128], err[512];
  snprintf(path, sizeof path, "/tmp/up_minference_table_%d.txt", (int)getpid());
  snprintf(spec_text, sizeof spec_text, "minference:table=%s", path);
  up_method_spec spec;
  char text[4096] = "# layer head v s\n";
  for (int l = 0; l < 4; ++l)
    for (int h = 0; h < 4; ++h) snprintf(text + strlen(text), sizeof text - strlen(text), "%d %d %d %d\n", l, h, 30 + h, 100);
  write_file(path, text);
  cr_expect(parse_and_resolve(spec_text, &cfg, &spec, err, sizeof err), "%s", err);

  expect_table_refused(spec_text, path, "0 0 30 100\n", path);
  expect_table_refused(spec_text, path, "0 0 30 100\n", "gives 1 of the model's 16");
  expect_table_refused(spec_text, path, "0 4 30 100\n", "outside the model's 4 layers x 4 heads");
  expect_table_refused(spec_text, path, "0 0 30 100\n0 0 30 100\n", "appears twice");
  expect_table_refused(spec_text, path, "0 0 30\n", "line 1");
  expect_table_refused(spec_text, path, "0 0 30.5 100\n", "line 1: sizes v=30.5 s=100 must be in [1, 16777216]");
  remove(path);
  cr_expect(!parse_and_resolve(spec_text, &cfg, &spec, err, sizeof err));
  cr_expect_neq(strstr(err, path), NULL, "a missing file is named: %s", err);
  cr_expect(!parse_and_resolve("minference:table=/tmp", &cfg, &spec, err, sizeof err));
  cr_expect_neq(strstr(err, "'/tmp': Is a directory"), NULL, "a directory is named as one: %s", err);
}

/* An XAttention table of `t(layer, head)` for the small model's 4 layers x 4 heads,
 * written to path. */
static void write_threshold_table(const char *path, double (*t)(int layer, int head)) {
  char text[1024] = "# layer head threshold\n";
  for (int l = 0; l < 4; ++l)
    for (int h = 0; h < 4; ++h) snprintf(text + strlen(text), sizeof text - strlen(text), "%d %d %g\n", l, h, t(l, h));
  write_file(path, text);
}

static double half_then_all(int layer, int head) { return layer == 0 ? 0.5 : 1.0; }
static double one_head_at_half(int layer, int head) { return head == 0 ? 0.5 : 1.0; }

Test(sparse_methods, xattention_thresholds_table_is_checked_like_minferences) {
  const up_model_config cfg = small_config();
  char path[64], spec_text[128], err[512];
  snprintf(path, sizeof path, "/tmp/up_xattention_table_%d.txt", (int)getpid());
  snprintf(spec_text, sizeof spec_text, "xattention:table=%s", path);
  up_method_spec spec;
  write_threshold_table(path, half_then_all);
  cr_expect(parse_and_resolve(spec_text, &cfg, &spec, err, sizeof err), "%s", err);
  expect_table_refused(spec_text, path, "0 0 1.5\n", "line 1: threshold 1.5 must be in (0, 1]");
  expect_table_refused(spec_text, path, "0 0 0.5 7\n", "line 1: expected 'LAYER HEAD T'");
  expect_table_refused(spec_text, path, "0 0 0.5\n", "gives 1 of the model's 16");
  remove(path);
}

static up_method_kernel_fn no_method_kernels(up_backend *be, const char *name) { return NULL; }

Test(sparse_methods, a_backend_without_the_kernels_is_refused_with_the_reason) {
  up_backend *cpu = up_cpu_backend_create(1);
  up_backend_ops bare_ops = *cpu->ops;
  bare_ops.name = "cuda";
  bare_ops.method_kernel = no_method_kernels;
  up_backend bare = *cpu;
  bare.ops = &bare_ops;
  /* a "cuda" backend with the kernels: its sparse attention takes head_dim 64, 128 and 256 */
  up_backend_ops cuda_ops = *cpu->ops;
  cuda_ops.name = "cuda";
  up_backend cuda = *cpu;
  cuda.ops = &cuda_ops;
  up_model_config cfg = small_config(), hd128 = small_config(), hd64 = small_config();
  hd128.head_dim = 128;
  hd64.head_dim = 64; /* SmolLM2's */
  const char *names[3] = {"minference", "flexprefill", "xattention"};
  for (int i = 0; i < 3; ++i) {
    up_method_spec spec, spec128, spec64;
    up_method m;
    char err[512] = "";
    cr_assert(parse_and_resolve(names[i], &cfg, &spec, err, sizeof err), "%s", err);
    cr_expect(!up_method_init(&m, &spec, &bare, err, sizeof err), "%s on a bare backend", names[i]);
    cr_expect_str_eq(err, "the cuda backend has no sparse_attention kernel yet (the sparse baselines run on the cpu "
                          "backend)");
    cr_expect(!up_method_init(&m, &spec, &cuda, err, sizeof err), "%s at head_dim 16 on cuda", names[i]);
    cr_expect_str_eq(err, "the cuda backend's sparse_attention kernel takes head_dim 64, 128 or 256, the model has 16 "
                          "(use the cpu backend)");
    cr_assert(parse_and_resolve(names[i], &hd128, &spec128, err, sizeof err), "%s", err);
    cr_expect(up_method_init(&m, &spec128, &cuda, err, sizeof err), "%s at head_dim 128: %s", names[i], err);
    up_method_destroy(&m);
    cr_assert(parse_and_resolve(names[i], &hd64, &spec64, err, sizeof err), "%s", err);
    cr_expect(up_method_init(&m, &spec64, &cuda, err, sizeof err), "%s at head_dim 64: %s", names[i], err);
    up_method_destroy(&m);
    cr_expect(up_method_init(&m, &spec, cpu, err, sizeof err), "%s: %s", names[i], err);
    up_method_destroy(&m);
  }
  cpu->ops->destroy(cpu);
}

/* ---- through the attention hook ------------------------------------------------------ */

enum { H = 4, KVH = 2, D = 16, ROW = (H + 2 * KVH) * D, BT = 16 };

typedef struct hook_batch {
  up_backend *be;
  up_attn_shape shape;
  int32_t n_seqs, n_tokens, max_blocks;
  int32_t cu[8], kv_lens[8];
  uint8_t prefill[8];
  int32_t *block_tables;
  up_kv_pool pool;
  float *qkv;
} hook_batch;

/* Sequences of the given lengths; is_prefill 0 marks a decode row (a single new row
 * after `lens` - 1 cached entries: its cache holds more than its rows). */
static void hook_batch_init(hook_batch *b, const int32_t *lens, const uint8_t *prefill, int32_t n_seqs,
                            uint64_t seed, float q_gain) {
  memset(b, 0, sizeof *b);
  b->be = up_cpu_backend_create(1);
  b->shape = (up_attn_shape){.n_heads = H, .n_kv_heads = KVH, .head_dim = D, .scale = 0.25f};
  b->n_seqs = n_seqs;
  int32_t blocks = 0, entries = 0;
  for (int32_t s = 0; s < n_seqs; ++s) {
    const int32_t rows = prefill[s] ? lens[s] : 1;
    b->cu[s + 1] = b->cu[s] + rows;
    b->kv_lens[s] = lens[s];
    b->prefill[s] = prefill[s];
    const int32_t nb = (lens[s] + BT - 1) / BT;
    blocks += nb;
    entries += lens[s];
    if (nb > b->max_blocks) b->max_blocks = nb;
  }
  b->n_tokens = b->cu[n_seqs];
  /* every cache entry gets a row of random q/k/v; only the current rows stay in qkv */
  float *all = malloc(sizeof(float) * (size_t)entries * ROW);
  for (int64_t i = 0; i < (int64_t)entries * ROW; ++i)
    all[i] = ((i % ROW) < H * D ? q_gain : 1.0f) * up_rng_symmetric(seed, 3, (uint64_t)i);
  b->pool = (up_kv_pool){.n_blocks = blocks, .block_tokens = BT, .kv_dim = KVH * D};
  b->pool.k = calloc((size_t)blocks * BT * KVH * D, sizeof(float));
  b->pool.v = calloc((size_t)blocks * BT * KVH * D, sizeof(float));
  b->block_tables = malloc(sizeof(int32_t) * (size_t)n_seqs * b->max_blocks);
  b->qkv = malloc(sizeof(float) * (size_t)b->n_tokens * ROW);
  int32_t next = 0, entry = 0;
  for (int32_t s = 0; s < n_seqs; ++s) {
    for (int32_t k = 0; k < b->max_blocks; ++k)
      b->block_tables[s * b->max_blocks + k] = k * BT < lens[s] ? next++ : -1;
    for (int32_t t = 0; t < lens[s]; ++t) {
      const int32_t slot = b->block_tables[s * b->max_blocks + t / BT] * BT + t % BT;
      b->be->ops->kv_store(b->be, &b->pool, all + (int64_t)(entry + t) * ROW, &slot, 1, &b->shape);
    }
    const int32_t rows = b->cu[s + 1] - b->cu[s];
    memcpy(b->qkv + (int64_t)b->cu[s] * ROW, all + (int64_t)(entry + lens[s] - rows) * ROW,
           sizeof(float) * (size_t)rows * ROW);
    entry += lens[s];
  }
  free(all);
}

/* A batch of one whole prompt of n rows. */
static void one_prompt_batch(hook_batch *b, int32_t n, uint64_t seed, float q_gain) {
  const int32_t lens[1] = {n};
  const uint8_t prefill[1] = {1};
  hook_batch_init(b, lens, prefill, 1, seed, q_gain);
}

static void hook_batch_free(hook_batch *b) {
  free(b->qkv);
  free(b->pool.k);
  free(b->pool.v);
  free(b->block_tables);
  b->be->ops->destroy(b->be);
}

static up_attn_batch hook_view(const hook_batch *b, int32_t s0, int32_t n, int32_t *cu_local) {
  for (int32_t s = 0; s <= n; ++s) cu_local[s] = b->cu[s0 + s] - b->cu[s0];
  return (up_attn_batch){.n_seqs = n, .n_tokens = cu_local[n], .cu_seqlens = cu_local, .kv_lens = b->kv_lens + s0,
                         .block_tables = b->block_tables + s0 * b->max_blocks, .max_blocks_per_seq = b->max_blocks};
}

/* The hook over sequences [s0, s0 + n) of the batch at `layer`; returns its work. */
static up_attn_work hook_work(const up_method *m, const hook_batch *b, int32_t s0, int32_t n, int32_t layer,
                              float *out) {
  int32_t cu[9];
  const up_attn_batch view = hook_view(b, s0, n, cu);
  const up_method_layer at = {.layer = layer, .n_seqs = n, .is_prefill_host = b->prefill + s0, .cu_seqlens_host = cu,
                              .kv_lens_host = b->kv_lens + s0, .qkv = b->qkv + (int64_t)b->cu[s0] * ROW,
                              .pool = &b->pool, .batch = &view, .shape = &b->shape};
  up_attn_work work = {.causal = up_method_causal_pairs(&at)};
  m->ops->attention(m, b->be, &at, out, &work);
  return work;
}

/* The pairs the hook computed. */
static double run_hook(const up_method *m, const hook_batch *b, int32_t s0, int32_t n, int32_t layer, float *out) {
  return hook_work(m, b, s0, n, layer, out).computed;
}

static double causal_pairs_of(const hook_batch *b, int32_t s0, int32_t n) {
  int32_t cu[9];
  hook_view(b, s0, n, cu);
  const up_method_layer at = {.n_seqs = n, .is_prefill_host = b->prefill + s0, .cu_seqlens_host = cu,
                              .kv_lens_host = b->kv_lens + s0};
  return up_method_causal_pairs(&at);
}

static up_method make_method(const char *text, const up_model_config *cfg, up_backend *be) {
  up_method_spec spec;
  up_method m;
  char err[512] = "";
  cr_assert(parse_and_resolve(text, cfg, &spec, err, sizeof err), "%s: %s", text, err);
  cr_assert(up_method_init(&m, &spec, be, err, sizeof err), "%s: %s", text, err);
  return m;
}

Test(sparse_methods, a_packed_batch_equals_each_request_alone) {
  /* Long prompts, a decode row and a short prompt, each method with settings that make
   * it select fewer blocks than dense (sizes of the small model's 4 x 16 heads). */
  const int32_t lens[4] = {700, 40, 300, 900};
  const uint8_t prefill[4] = {1, 0, 1, 1};
  hook_batch b;
  hook_batch_init(&b, lens, prefill, 4, 17, 3.0f);
  const up_model_config cfg = small_config();
  const char *specs[4] = {"minference:v=30:s=64", "flexprefill:gamma=0.6:min_budget=0",
                          "xattention:threshold=0.5", "xattention:stride=16:density=0.4"};
  float *together = calloc((size_t)b.n_tokens * H * D, sizeof(float));
  float *alone = calloc((size_t)b.n_tokens * H * D, sizeof(float));
  for (int i = 0; i < 4; ++i) {
    up_method m = make_method(specs[i], &cfg, b.be);
    const up_attn_work work = hook_work(&m, &b, 0, 4, 0, together);
    const double pairs = work.computed;
    up_attn_work alone_sum = {0};
    for (int32_t s = 0; s < 4; ++s) {
      const up_attn_work w = hook_work(&m, &b, s, 1, 0, alone + (int64_t)b.cu[s] * H * D);
      alone_sum.computed += w.computed;
      alone_sum.tiles += w.tiles;
      alone_sum.estimate_flops += w.estimate_flops;
    }
    cr_expect_float_eq(pairs, alone_sum.computed, 1e-6, "%s: pairs", specs[i]);
    cr_expect_float_eq(work.tiles, alone_sum.tiles, 1e-6, "%s: tiles", specs[i]);
    cr_expect_float_eq(work.estimate_flops, alone_sum.estimate_flops, 1e-6, "%s: estimation", specs[i]);
    cr_expect_geq(work.tiles, pairs, "%s: whole tiles hold at least the pairs they compute", specs[i]);
    cr_expect_lt(pairs, causal_pairs_of(&b, 0, 4), "%s computes less than dense", specs[i]);
    cr_expect_gt(pairs, 0.0);
    for (int64_t k = 0; k < (int64_t)b.n_tokens * H * D; ++k)
      cr_assert_eq(together[k], alone[k], "%s: value %ld", specs[i], (long)k);
    up_method_destroy(&m);
  }
  free(together);
  free(alone);
  hook_batch_free(&b);
}

/* The hook's output against the backend's dense attention; returns the largest gap. */
static double gap_to_dense(const up_method *m, const hook_batch *b, up_attn_work *work) {
  float *out = calloc((size_t)b->n_tokens * H * D, sizeof(float));
  float *dense = calloc((size_t)b->n_tokens * H * D, sizeof(float));
  *work = hook_work(m, b, 0, b->n_seqs, 0, out);
  int32_t cu[9];
  const up_attn_batch view = hook_view(b, 0, b->n_seqs, cu);
  up_cpu_attention(b->be, dense, b->qkv, &b->pool, &view, &b->shape, 0);
  double gap = 0.0;
  for (int64_t k = 0; k < (int64_t)b->n_tokens * H * D; ++k) gap = fmax(gap, fabs((double)out[k] - dense[k]));
  free(out);
  free(dense);
  return gap;
}

/* The estimation FLOPs of ../shared/BASELINES.md 4 for one sparse sequence of n rows:
 * the last 64 (MInference) or 128 (FlexPrefill) queries against every key, or
 * XAttention's n^2 d / S antidiagonal scores; all heads. */
static double baselines_estimate_flops(const char *method, double n, double stride) {
  if (strcmp(method, "minference") == 0) return 2.0 * fmin(64.0, n) * n * D * H;
  if (strcmp(method, "flexprefill") == 0) return 2.0 * fmin(128.0, n) * n * D * H;
  return n * n * D * H / stride;
}

Test(sparse_methods, full_coverage_equals_dense_and_counts_every_causal_pair_and_tile) {
  const int32_t lens[3] = {1100, 30, 600};
  const uint8_t prefill[3] = {1, 0, 1};
  hook_batch b;
  hook_batch_init(&b, lens, prefill, 3, 23, 1.0f);
  const up_model_config cfg = small_config();
  /* gamma 1 covers every token (budgets reach every block); v and s as large as the
   * prompt cover every column and diagonal; threshold 1 keeps every block with mass. */
  const struct {
    const char *spec, *method;
    double block;
  } cases[3] = {{"flexprefill:gamma=1:min_budget=0", "flexprefill", 128.0},
                {"minference:v=1100:s=1100", "minference", 64.0},
                {"xattention:threshold=1", "xattention", 128.0}};
  const double causal = causal_pairs_of(&b, 0, 3);
  for (int i = 0; i < 3; ++i) {
    up_method m = make_method(cases[i].spec, &cfg, b.be);
    up_attn_work work;
    cr_expect_lt(gap_to_dense(&m, &b, &work), 1e-5, "%s", cases[i].spec);
    cr_expect_float_eq(work.computed, causal, 1e-6, "%s: every causal pair (%.0f of %.0f)", cases[i].spec,
                       work.computed, causal);
    /* each query block b computes its b + 1 key tiles whole (masked corners included),
     * the decode row its 30 pairs; the estimation counts for the two prompts only */
    double tiles = 30.0, estimate = 0.0;
    for (int32_t s = 0; s < 3; s += 2) {
      const double nq = ceil(lens[s] / cases[i].block);
      tiles += cases[i].block * cases[i].block * nq * (nq + 1.0) / 2.0;
      estimate += baselines_estimate_flops(cases[i].method, lens[s], 8.0);
    }
    cr_expect_float_eq(work.tiles, tiles, 1e-6, "%s: tiles %.0f, the triangle %.0f", cases[i].spec, work.tiles, tiles);
    cr_expect_float_eq(work.estimate_flops, estimate, 1e-6, "%s: estimation %.0f of %.0f", cases[i].spec,
                       work.estimate_flops, estimate);
    up_method_destroy(&m);
  }
  hook_batch_free(&b);
}

Test(sparse_methods, flexprefill_leaves_short_prompts_and_other_layers_dense) {
  const int32_t lens[2] = {1024, 257};
  const uint8_t prefill[2] = {1, 1};
  hook_batch b;
  hook_batch_init(&b, lens, prefill, 2, 29, 3.0f);
  up_model_config cfg = small_config();
  /* min_budget 1024: prompts of up to 1024 tokens stay dense (the authors' threshold) */
  up_method m = make_method("flexprefill:gamma=0.3", &cfg, b.be);
  up_attn_work work;
  cr_expect_eq(gap_to_dense(&m, &b, &work), 0.0);
  const double causal = causal_pairs_of(&b, 0, 2);
  cr_expect_float_eq(work.computed, causal, 1e-6);
  cr_expect_float_eq(work.tiles, causal, 1e-6, "dense sequences cost their pairs");
  cr_expect_eq(work.estimate_flops, 0.0, "nothing estimated for sequences left dense");
  up_method_destroy(&m);
  /* With min_budget 0 the 1024-token prompt goes sparse, the 257-token one too (> 256). */
  m = make_method("flexprefill:gamma=0.3:min_budget=0", &cfg, b.be);
  cr_expect_gt(gap_to_dense(&m, &b, &work), 0.0);
  cr_expect_lt(work.computed, causal);
  up_method_destroy(&m);
  /* A sliding-window layer is dense whatever the method (the model's window there). */
  cfg.layer_kind[1] = UP_LAYER_SLIDING_WINDOW;
  cfg.sliding_window = 5000;
  m = make_method("flexprefill:gamma=0.3:min_budget=0", &cfg, b.be);
  float *out = calloc((size_t)b.n_tokens * H * D, sizeof(float)), *dense = calloc((size_t)b.n_tokens * H * D, sizeof(float));
  work = hook_work(&m, &b, 0, 2, 1, out);
  int32_t cu[3];
  const up_attn_batch view = hook_view(&b, 0, 2, cu);
  up_cpu_attention(b.be, dense, b.qkv, &b.pool, &view, &b.shape, 5000);
  for (int64_t k = 0; k < (int64_t)b.n_tokens * H * D; ++k) cr_assert_eq(out[k], dense[k]);
  cr_expect_float_eq(work.computed, causal, 1e-6);
  up_method_destroy(&m);
  /* a window of 100 reached: each prompt's first 100 rows see 1..100 keys, the rest 100,
   * as the dense path counts a window */
  cfg.sliding_window = 100;
  m = make_method("flexprefill:gamma=0.3:min_budget=0", &cfg, b.be);
  work = hook_work(&m, &b, 0, 2, 1, out);
  const double windowed = 2 * 5050.0 + (1024 - 100) * 100.0 + (257 - 100) * 100.0;
  cr_expect_float_eq(work.computed, windowed, 1e-6, "%.0f pairs, the window's %.0f", work.computed, windowed);
  cr_expect_float_eq(work.tiles, windowed, 1e-6);
  free(out);
  free(dense);
  up_method_destroy(&m);
  hook_batch_free(&b);
}

/* The capped XAttention layer of the_density_cap_bounds_the_computed_pairs_and_tiles (1280 rows)
 * keeps only its 19 forced 128x128 blocks per head (10 diagonal, 9 in column 0), counted
 * whole, and its estimate reads n^2 d / S FLOPs per head; the speed model turns that
 * work, at every layer, into the predicted speedup. */
static void expect_the_capped_layers_speedup(const up_attn_work *work) {
  const up_model_config cfg = small_config();
  const double n = 1280.0, causal = n * (n + 1.0) / 2.0;
  const double tiles = 19.0 * 128.0 * 128.0, estimate = n * n * D * H / 8.0;
  cr_expect_float_eq(work->causal, causal, 1e-6);
  cr_expect_float_eq(work->tiles, tiles, 1e-6, "19 whole tiles per head: %.0f", work->tiles);
  cr_expect_float_eq(work->estimate_flops, estimate, 1e-6);

  /* the density the model uses adds the estimate in pairs of 4 * q_dim FLOPs each */
  const int32_t L = cfg.n_layers;
  up_attn_work steps[UP_MAX_LAYERS];
  for (int32_t l = 0; l < L; ++l) steps[l] = *work;
  double density[UP_MAX_LAYERS];
  up_speed_model_layer_work(&cfg, steps, 1, density);
  const double rho = (tiles + estimate / (4.0 * H * D)) / causal;
  for (int32_t l = 0; l < L; ++l) cr_expect_float_eq(density[l], rho, 1e-12, "layer %d", (int)l);
  cr_expect_lt(rho, 0.5, "at 10 query blocks the kept tiles and the estimate are under half of dense");

  /* dense / (dense - (1 - rho) * attention), attention being the layer's causal FLOPs as
   * layer_cost counts them (half the diagonal left out) */
  up_request_record rec = {.status = UP_REQUEST_FINISHED, .prompt_len = 1280, .kept_len = 1280};
  int32_t rows[UP_MAX_LAYERS];
  for (int32_t l = 0; l < L; ++l) rows[l] = 1280;
  const double q = H * D, h = cfg.hidden;
  const double linear = 2.0 * n * (h * up_model_config_qkv_dim(&cfg) + h * q + 3.0 * h * cfg.intermediate);
  const double attention = 4.0 * (n * n - 0.5 * n * n) * q, head = 2.0 * h * cfg.vocab;
  const double dense = head + L * (linear + attention), sparse = head + L * (linear + rho * attention);
  cr_expect_float_eq(up_speed_model_predicted_speedup_sparse(&cfg, &rec, rows, 1, density), dense / sparse, 1e-9);
  cr_expect_float_eq(up_speed_model_predicted_speedup_sparse(&cfg, &rec, rows, 1, NULL), 1.0, 1e-12);
}

Test(sparse_methods, the_density_cap_bounds_the_computed_pairs_and_tiles) {
  hook_batch b;
  one_prompt_batch(&b, 1280, 31, 1.0f);
  const up_model_config cfg = small_config();
  /* Random weights: threshold 0.95 keeps nearly every block. A cap of 0.3 allows
   * floor(0.3 * 55) = 16 of each head's 55 causal blocks of 128, fewer than the 19 forced
   * ones (block 0 of each row and the diagonal), which always stay: exactly those remain. */
  up_method open = make_method("xattention:threshold=0.95", &cfg, b.be);
  up_method capped = make_method("xattention:threshold=0.95:density=0.3", &cfg, b.be);
  float *out = calloc((size_t)b.n_tokens * H * D, sizeof(float));
  const double all = run_hook(&open, &b, 0, 1, 0, out);
  const up_attn_work capped_work = hook_work(&capped, &b, 0, 1, 0, out);
  const double some = capped_work.computed;
  const double full_block = 128.0 * 128.0, diagonal_block = 128.0 * 129.0 / 2.0;
  cr_expect_gt(all, 0.6 * causal_pairs_of(&b, 0, 1), "near-uniform attention keeps most blocks");
  cr_expect_float_eq(some, 10 * diagonal_block + 9 * full_block, 1e-6, "pairs are per row, the mean over heads");
  cr_expect_lt(some, all);
  expect_the_capped_layers_speedup(&capped_work);
  free(out);
  up_method_destroy(&open);
  up_method_destroy(&capped);
  hook_batch_free(&b);
}

Test(sparse_methods, xattention_takes_each_layers_and_heads_threshold_from_its_table) {
  hook_batch b;
  one_prompt_batch(&b, 1280, 37, 3.0f);
  const up_model_config cfg = small_config();
  char path[64], spec_text[128];
  snprintf(path, sizeof path, "/tmp/up_xattention_hook_table_%d.txt", (int)getpid());
  snprintf(spec_text, sizeof spec_text, "xattention:table=%s", path);
  float *out = calloc((size_t)b.n_tokens * H * D, sizeof(float));
  float *want = calloc((size_t)b.n_tokens * H * D, sizeof(float));
  up_method half = make_method("xattention:threshold=0.5", &cfg, b.be);
  up_method all = make_method("xattention:threshold=1", &cfg, b.be);
  const double half_pairs = hook_work(&half, &b, 0, 1, 0, want).computed;
  const double all_pairs = hook_work(&all, &b, 0, 1, 0, out).computed;
  cr_assert_lt(half_pairs, all_pairs, "threshold 0.5 keeps fewer blocks than 1");
  /* layer 0 at 0.5 and layer 1 at 1: each layer reads its own row of the table */
  write_threshold_table(path, half_then_all);
  up_method by_layer = make_method(spec_text, &cfg, b.be);
  cr_expect_float_eq(hook_work(&by_layer, &b, 0, 1, 0, out).computed, half_pairs, 1e-6);
  for (int64_t k = 0; k < (int64_t)b.n_tokens * H * D; ++k) cr_assert_eq(out[k], want[k], "value %ld", (long)k);
  cr_expect_float_eq(hook_work(&by_layer, &b, 0, 1, 1, out).computed, all_pairs, 1e-6);
  /* head 0 at 0.5, the others at 1: in between */
  write_threshold_table(path, one_head_at_half);
  up_method by_head = make_method(spec_text, &cfg, b.be);
  const double mixed = hook_work(&by_head, &b, 0, 1, 0, out).computed;
  cr_expect(mixed > half_pairs && mixed < all_pairs, "%.0f pairs, between %.0f and %.0f", mixed, half_pairs,
            all_pairs);
  remove(path);
  free(out);
  free(want);
  up_method_destroy(&half);
  up_method_destroy(&all);
  up_method_destroy(&by_layer);
  up_method_destroy(&by_head);
  hook_batch_free(&b);
}

Test(sparse_methods, the_speed_model_leaves_dense_and_windowed_layers_at_one) {
  up_model_config cfg = small_config();
  cfg.layer_kind[1] = UP_LAYER_SLIDING_WINDOW;
  cfg.sliding_window = 512;
  const int32_t L = cfg.n_layers;
  /* two steps: a prefill (dense at layer 0, a window at layer 1, a sparse layer 2 that
   * estimated, nothing at layer 3) and a decode row everywhere */
  up_attn_work work[2 * UP_MAX_LAYERS];
  for (int32_t l = 0; l < L; ++l) {
    work[l] = (up_attn_work){.computed = 1000.0, .tiles = 1000.0, .causal = 1000.0};
    work[L + l] = (up_attn_work){.computed = 64.0, .tiles = 64.0, .causal = 64.0};
  }
  work[1] = (up_attn_work){.computed = 400.0, .tiles = 400.0, .causal = 1000.0};
  work[2] = (up_attn_work){.computed = 300.0, .tiles = 450.0, .causal = 1000.0, .estimate_flops = 64.0 * 4.0 * 50.0};
  work[3] = work[L + 3] = (up_attn_work){0};
  double density[UP_MAX_LAYERS];
  up_speed_model_layer_work(&cfg, work, 2, density);
  cr_expect_float_eq(density[0], 1.0, 1e-12, "dense");
  cr_expect_float_eq(density[1], 1.0, 1e-12, "the window is the layer cost's already");
  cr_expect_float_eq(density[2], (450.0 + 50.0 + 64.0) / 1064.0, 1e-12, "tiles plus 50 pairs of estimate");
  cr_expect_float_eq(density[3], 1.0, 1e-12, "no causal work recorded");
}
