/* test_kv_footprint.c — the KV cache bytes each request's record holds after its
 * prefill, from whole engine points on the CPU backend (tiny-llama: 8 layers, 2 KV
 * heads of 64 values, fp32): dense equals the formula prompt x layers x 2 x kv heads x
 * head_dim x 4 bytes, UniPrefill at keep 0.3 holds fewer bytes, exactly its kept tokens
 * per layer, and the pool blocks each holds are its per-layer counts plus the decode
 * tokens to come, block-rounded. The point summary averages them. A pool with room for
 * one request at a time makes requests wait (one resident at most) rather than fail,
 * and a request larger than the whole pool fails alone. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/serve/point_engine.h"
#include "engine/methods/method.h"
#include "engine/model/model.h"
#include "engine/serve/request.h"
#include "kernels/cpu/cpu_backend.h"
#include "launcher/sweep/point_summary.h"
#include "workloads/closed_loop.h"

enum { BLOCK_TOKENS = 16, PROMPT = 600, OUTPUT = 3, SEED = 7 };

/* One backend and model for every point of a test. */
typedef struct kv_bench {
  up_backend *be;
  up_model *model;
  int64_t entry_bytes; /* one token at one layer, K and V */
} kv_bench;

static void bench_init(kv_bench *b) {
  const up_model_config *cfg = up_model_preset_find("tiny-llama");
  cr_assert_not_null(cfg);
  b->be = up_cpu_backend_create(1);
  b->model = up_model_create_random(cfg, b->be, SEED);
  cr_assert_eq(b->be->act_dtype, UP_DTYPE_F32, "the CPU backend computes in fp32");
  /* The formula, written out for tiny-llama: 2 (K and V) x 2 KV heads x 64 x 4 bytes. */
  cr_assert_eq(cfg->n_kv_heads, 2);
  cr_assert_eq(cfg->head_dim, 64);
  b->entry_bytes = 2 * 2 * 64 * 4;
}

static void bench_free(kv_bench *b) {
  up_model_destroy(b->model);
  b->be->ops->destroy(b->be);
}

static up_method make_method(const up_model_config *cfg, up_backend *be, const char *text) {
  up_method_spec spec;
  char err[256];
  cr_assert(up_method_spec_parse(text, NULL, &spec, err, sizeof err), "%s", err);
  cr_assert(up_method_spec_resolve(&spec, cfg, err, sizeof err), "%s", err);
  up_method m;
  cr_assert(up_method_init(&m, &spec, be, err, sizeof err), "%s", err);
  return m;
}

/* A closed loop of n_requests prompts of prompt_len tokens, concurrency at a time, on a
 * pool of kv_blocks blocks (0: room for every slot at once). */
static void run_point(const kv_bench *b, const char *method_text, int32_t concurrency, int32_t n_requests,
                      int32_t prompt_len, int64_t kv_blocks, up_point_result *out) {
  const up_model_config *cfg = &b->model->cfg;
  const up_method method = make_method(cfg, b->be, method_text);
  const int64_t entries = (int64_t)prompt_len + OUTPUT;
  const int64_t blocks_per_seq = (entries + BLOCK_TOKENS - 1) / BLOCK_TOKENS;
  const up_engine_params params = {
      .max_seqs = concurrency, .max_batch_tokens = 0, .kv_block_tokens = BLOCK_TOKENS,
      .kv_blocks = kv_blocks > 0 ? kv_blocks : blocks_per_seq * cfg->n_layers * concurrency,
      .workspace_tokens = (int64_t)concurrency * prompt_len, .max_seq_entries = entries, .rank = 0};
  int64_t ids[16];
  cr_assert_leq(n_requests, 16);
  for (int32_t i = 0; i < n_requests; ++i) ids[i] = i;
  const up_closed_loop_params wl = {.concurrency = concurrency, .n_requests = n_requests, .request_ids = ids,
                                    .prompt_len = prompt_len, .output_len = OUTPUT, .vocab = cfg->vocab,
                                    .n_layers = cfg->n_layers, .seed = SEED};
  up_workload *w = up_workload_closed_loop_create(&wl);
  up_engine_run_point(b->model, &params, &method, w, out);
  w->ops->destroy(w);
  cr_assert_eq(out->n_requests, n_requests);
  cr_assert_eq(out->kv_block_bytes, BLOCK_TOKENS * b->entry_bytes, "a block is block_tokens entries");
}

static int64_t blocks_for(int64_t entries) { return (entries + BLOCK_TOKENS - 1) / BLOCK_TOKENS; }

static void summarize(const up_point_result *r, up_point_summary *sum) {
  memset(sum, 0, sizeof *sum);
  up_point_summary_compute(sum, r->requests, r->n_requests, r->token_times, r->token_offsets, NULL, NULL, r->wall_s);
}

Test(kv_footprint, dense_holds_the_formula) {
  kv_bench b;
  bench_init(&b);
  const int32_t L = b.model->cfg.n_layers;
  up_point_result r;
  run_point(&b, "dense", 2, 3, PROMPT, 0, &r);
  const int64_t dense = (int64_t)PROMPT * L * b.entry_bytes;
  for (int32_t i = 0; i < r.n_requests; ++i) {
    const up_request_record *rec = &r.requests[i];
    cr_assert_eq(rec->status, UP_REQUEST_FINISHED, "request %d: %s", i, rec->error);
    cr_expect_eq(rec->kv_bytes, dense, "request %d: %lld bytes, formula %lld", i, (long long)rec->kv_bytes,
                 (long long)dense);
    cr_expect_eq(rec->kv_dense_bytes, dense);
    /* Every layer holds the prompt plus room for the OUTPUT - 1 tokens fed back. */
    const int64_t held = L * blocks_for(PROMPT + OUTPUT - 1) * BLOCK_TOKENS * b.entry_bytes;
    cr_expect_eq(rec->kv_held_bytes, held, "request %d: held %lld, expected %lld", i, (long long)rec->kv_held_bytes,
                 (long long)held);
  }
  up_point_summary sum;
  summarize(&r, &sum);
  cr_expect_float_eq(sum.kv_bytes_per_request, (double)dense, 1e-6);
  cr_expect_float_eq(sum.kv_dense_bytes_per_request, (double)dense, 1e-6);
  cr_expect_float_eq(sum.kv_fraction_of_dense, 1.0, 1e-12);
  cr_expect_eq(r.max_resident, 2, "both slots were in use at once");
  up_point_result_free(&r);
  bench_free(&b);
}

Test(kv_footprint, uniprefill_holds_its_kept_tokens_per_layer) {
  kv_bench b;
  bench_init(&b);
  const int32_t L = b.model->cfg.n_layers;
  up_point_result r;
  run_point(&b, "uniprefill:keep=0.3", 2, 3, PROMPT, 0, &r);
  const int64_t dense = (int64_t)PROMPT * L * b.entry_bytes;
  double sum_bytes = 0.0;
  for (int32_t i = 0; i < r.n_requests; ++i) {
    const up_request_record *rec = &r.requests[i];
    cr_assert_eq(rec->status, UP_REQUEST_FINISHED, "request %d: %s", i, rec->error);
    const int32_t *tokens = r.request_layer_tokens + (size_t)i * L;
    int64_t entries = 0, blocks = 0;
    for (int32_t l = 0; l < L; ++l) {
      entries += tokens[l];
      blocks += blocks_for((int64_t)tokens[l] + OUTPUT - 1);
    }
    cr_assert_lt(tokens[L - 1], PROMPT, "request %d: the drops removed tokens", i);
    cr_expect_eq(rec->kv_bytes, entries * b.entry_bytes, "request %d: %lld bytes for %lld kept entries", i,
                 (long long)rec->kv_bytes, (long long)entries);
    cr_expect_eq(rec->kv_held_bytes, blocks * BLOCK_TOKENS * b.entry_bytes, "request %d: held %lld for %lld blocks",
                 i, (long long)rec->kv_held_bytes, (long long)blocks);
    cr_expect_lt(rec->kv_bytes, dense);
    cr_expect_lt(rec->kv_held_bytes, L * blocks_for(PROMPT + OUTPUT - 1) * BLOCK_TOKENS * b.entry_bytes);
    cr_expect_eq(rec->kv_dense_bytes, dense, "the dense equivalent depends on the prompt only");
    sum_bytes += (double)rec->kv_bytes;
  }
  up_point_summary sum;
  summarize(&r, &sum);
  cr_expect_float_eq(sum.kv_bytes_per_request, sum_bytes / r.n_requests, 1e-6);
  cr_expect_float_eq(sum.kv_fraction_of_dense, sum_bytes / ((double)dense * r.n_requests), 1e-12);
  /* Layers 0 and 1 keep everything (the first drop is after layer 1), the others about 30%. */
  cr_expect_lt(sum.kv_fraction_of_dense, 0.7, "kv fraction %g", sum.kv_fraction_of_dense);
  up_point_result_free(&r);
  bench_free(&b);
}

/* A pool with room for one request: the second waits for the first to finish instead
 * of failing, so at most one is resident. */
Test(kv_footprint, small_pool_queues_requests) {
  kv_bench b;
  bench_init(&b);
  const int32_t L = b.model->cfg.n_layers;
  up_point_result r;
  const int64_t one_request = blocks_for(PROMPT + OUTPUT - 1) * L;
  run_point(&b, "dense", 2, 3, PROMPT, one_request, &r);
  for (int32_t i = 0; i < r.n_requests; ++i)
    cr_expect_eq(r.requests[i].status, UP_REQUEST_FINISHED, "request %d: %s", i, r.requests[i].error);
  cr_expect_eq(r.max_resident, 1, "%d resident at most", r.max_resident);
  cr_expect_geq(r.requests[1].admitted_s, r.requests[0].finish_s, "the second request waited for the first");
  cr_expect_eq(r.kv_blocks_peak, one_request);
  up_point_result_free(&r);
  bench_free(&b);
}

/* A prompt needing more blocks than the whole pool fails with a message; the run goes on. */
Test(kv_footprint, request_larger_than_the_pool_fails_alone) {
  kv_bench b;
  bench_init(&b);
  up_point_result r;
  run_point(&b, "dense", 1, 2, PROMPT, 10, &r);
  for (int32_t i = 0; i < r.n_requests; ++i) {
    cr_expect_eq(r.requests[i].status, UP_REQUEST_ERROR);
    cr_expect_not_null(strstr(r.requests[i].error, "KV blocks"), "%s", r.requests[i].error);
    cr_expect_eq(r.requests[i].kv_bytes, 0, "a request that never ran holds nothing");
  }
  cr_expect_eq(r.max_resident, 0);
  up_point_summary sum;
  summarize(&r, &sum);
  cr_expect_eq(sum.n_failed, 2);
  cr_expect(isnan(sum.kv_bytes_per_request), "no successful request: NaN");
  up_point_result_free(&r);
  bench_free(&b);
}
