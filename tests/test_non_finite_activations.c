/* test_non_finite_activations.c — issue 18: NaN activations used to abort the whole
 * sweep through an assertion in UniPrefill's selection. A small random llama whose
 * embedding row of one token is NaN runs that token in one prompt of a batch: the
 * request fails with the error status and a message (counted as failed by the point
 * summary), while the prompt batched with it finishes with the tokens it gets alone,
 * dense and with UniPrefill (whose selection then meets NaN scores); greedy generation
 * (--eval's path) flags the poisoned prompt and leaves its batch-mate untouched. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/methods/method.h"
#include "engine/model/model.h"
#include "engine/serve/generation.h"
#include "engine/serve/point_engine.h"
#include "engine/serve/request.h"
#include "kernels/cpu/cpu_backend.h"
#include "launcher/sweep/point_summary.h"
#include "tests/small_model.h"

/* Prompts longer than UniPrefill's sinks and last queries (128 + 128), so its drop
 * layers select rows; the poisoned token sits in the middle of the first prompt. */
enum { PROMPT = 600, OUTPUT = 4, POISON = 7, POISON_AT = 300, BLOCK_TOKENS = 16, SEED = 2024 };

typedef struct fixture {
  up_backend *be;
  up_model *model;
  int32_t poisoned[PROMPT], clean[PROMPT];
} fixture;

/* A prompt without the poisoned token, from seed. */
static void clean_prompt(int32_t *tokens, uint32_t seed) {
  random_prompt(tokens, PROMPT, seed);
  for (int32_t i = 0; i < PROMPT; ++i)
    if (tokens[i] == POISON) tokens[i] = POISON + 1;
}

static void fixture_init(fixture *f) {
  const up_model_config cfg = small_config();
  f->be = up_cpu_backend_create(1);
  f->model = up_model_create_random(&cfg, f->be, SEED);
  cr_assert_eq(f->be->act_dtype, UP_DTYPE_F32, "the CPU backend keeps weights as host fp32");
  float *embedding = up_model_weight(f->model, UP_TENSOR_EMBED, -1);
  for (int32_t c = 0; c < cfg.hidden; ++c) embedding[(size_t)POISON * cfg.hidden + c] = NAN;
  clean_prompt(f->poisoned, 11);
  f->poisoned[POISON_AT] = POISON;
  clean_prompt(f->clean, 12);
}

static void fixture_free(fixture *f) {
  up_model_destroy(f->model);
  f->be->ops->destroy(f->be);
}

/* --- a request source handing out given prompts, all at time 0 ---------------------- */

typedef struct given_prompts {
  const int32_t *const *prompts;
  int32_t n, next, n_layers;
} given_prompts;

static int32_t given_poll(up_workload *w, double now_s, int32_t in_flight, up_request **out, int32_t max) {
  (void)now_s, (void)in_flight;
  given_prompts *g = w->impl;
  int32_t count = 0;
  for (; g->next < g->n && count < max; ++g->next) {
    up_request *req = calloc(1, sizeof *req);
    cr_assert_not_null(req);
    up_request_init(req, g->next, PROMPT, OUTPUT, g->n_layers, 0.0);
    memcpy(req->prompt, g->prompts[g->next], sizeof(int32_t) * PROMPT);
    out[count++] = req;
  }
  return count;
}

static double given_next_arrival(const up_workload *w) {
  const given_prompts *g = w->impl;
  return g->next < g->n ? 0.0 : INFINITY;
}

static bool given_done(const up_workload *w) {
  const given_prompts *g = w->impl;
  return g->next == g->n;
}

static void given_destroy(up_workload *w) { (void)w; }

static const up_workload_ops given_ops = {.name = "given prompts", .poll = given_poll,
                                          .next_arrival_s = given_next_arrival, .done = given_done,
                                          .destroy = given_destroy};

/* One point over the prompts, all in one batch. */
static void run_point(const fixture *f, const up_method_spec *spec, const int32_t *const *prompts, int32_t n,
                      up_point_result *out) {
  const up_model_config *cfg = &f->model->cfg;
  const up_method method = small_method(spec, f->be);
  const int64_t blocks_per_seq = (PROMPT + OUTPUT + BLOCK_TOKENS - 1) / BLOCK_TOKENS;
  const up_engine_params params = {.max_seqs = n, .kv_block_tokens = BLOCK_TOKENS,
                                   .kv_blocks = blocks_per_seq * cfg->n_layers * n,
                                   .workspace_tokens = (int64_t)n * PROMPT, .max_seq_entries = PROMPT + OUTPUT};
  given_prompts source = {.prompts = prompts, .n = n, .n_layers = cfg->n_layers};
  up_workload w = {.ops = &given_ops, .impl = &source};
  up_engine_run_point(f->model, &params, &method, &w, out);
  cr_assert_eq(out->n_requests, n);
  cr_assert_gt(out->n_steps, 0);
  cr_assert_eq(out->steps[0].n_seqs, n, "every prompt prefills in the first step");
}

static void check_point(const up_method_spec *spec) {
  fixture f;
  fixture_init(&f);
  const int32_t *both[2] = {f.poisoned, f.clean}, *alone[1] = {f.clean};
  up_point_result batch, solo;
  run_point(&f, spec, both, 2, &batch);
  run_point(&f, spec, alone, 1, &solo);

  const up_request_record *bad = &batch.requests[0], *good = &batch.requests[1];
  cr_assert_eq(bad->status, UP_REQUEST_ERROR, "%s: the poisoned request ends %d", spec->label, bad->status);
  cr_assert(strstr(bad->error, "non-finite activations") != NULL, "%s: %s", spec->label, bad->error);
  cr_assert_eq(bad->output_len, 0);
  cr_assert_eq(bad->first_token, -1);
  cr_assert_eq(good->status, UP_REQUEST_FINISHED, "%s: %s", spec->label, good->error);
  cr_assert_eq(good->output_len, OUTPUT);
  cr_assert_eq(good->first_token, solo.requests[0].first_token, "%s: the batch-mate answers as alone", spec->label);
  cr_assert_eq(good->kept_len, solo.requests[0].kept_len);
  if (strcmp(spec->label, "dense") != 0)
    cr_assert_lt(good->kept_len, PROMPT, "%s dropped rows of the healthy prompt", spec->label);

  up_point_summary sum;
  memset(&sum, 0, sizeof sum);
  up_point_summary_compute(&sum, batch.requests, batch.n_requests, batch.token_times, batch.token_offsets, NULL,
                           NULL, batch.wall_s);
  cr_assert_eq(sum.n_failed, 1, "the table counts the failure");
  up_point_result_free(&batch);
  up_point_result_free(&solo);
  fixture_free(&f);
}

Test(non_finite_activations, request_fails_alone_dense_and_uniprefill) {
  const up_method_spec specs[2] = {small_spec("dense"), uniprefill_spec(0.99f, 0.3f)};
  for (int i = 0; i < 2; ++i) check_point(&specs[i]);
}

Test(non_finite_activations, generation_flags_the_sequence) {
  fixture f;
  fixture_init(&f);
  char err[512] = "";
  up_generator *gen = up_generator_create(f.model, 2, PROMPT, OUTPUT, err, sizeof err);
  cr_assert_not_null(gen, "%s", err);
  const up_method_spec spec = uniprefill_spec(0.99f, 0.3f);
  const up_method method = small_method(&spec, f.be);
  const int32_t *both[2] = {f.poisoned, f.clean}, lens[2] = {PROMPT, PROMPT};
  up_generation out[2], alone;
  up_generator_run(gen, &method, both, lens, 2, OUTPUT, NULL, 0, out);
  up_generator_run(gen, &method, &both[1], &lens[1], 1, OUTPUT, NULL, 0, &alone);
  cr_assert(out[0].non_finite);
  cr_assert_eq(out[0].n_tokens, 0, "no token comes from NaN logits");
  cr_assert_not(out[0].stopped);
  cr_assert_not(out[1].non_finite);
  cr_assert_not(alone.non_finite);
  cr_assert_eq(out[1].n_tokens, OUTPUT);
  cr_assert(memcmp(out[1].tokens, alone.tokens, sizeof(int32_t) * OUTPUT) == 0, "the batch-mate answers as alone");
  for (int32_t i = 0; i < 2; ++i) up_generation_free(&out[i]);
  up_generation_free(&alone);
  up_generator_destroy(gen);
  fixture_free(&f);
}
