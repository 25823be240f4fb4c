/* test_generation.c — engine/serve/generation.h on the CPU backend with a small random llama:
 * greedy generation ends at the first stop id (included, flagged) or at max_new, and a
 * sequence that stops early in a batch leaves the others decoding as alone; each
 * generated token is what a fresh prefill of the prompt plus the tokens before it picks;
 * a batch of prompts gives every prompt the first-position logits, rows per layer and
 * tokens it gets alone, dense and with UniPrefill's fixed budget on prompts long enough
 * to drop; a generator too large for the backend is refused with a message. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "engine/serve/generation.h"
#include "engine/methods/method.h"
#include "engine/model/model.h"
#include "kernels/cpu/cpu_backend.h"
#include "tests/small_model.h"

enum { MAX_SEQS = 3, MAX_PROMPT = 768, MAX_NEW = 8 };

typedef struct fixture {
  up_backend *be;
  up_model *model;
  up_generator *gen;
} fixture;

static void fixture_init(fixture *f) {
  const up_model_config cfg = small_config();
  f->be = up_cpu_backend_create(1);
  f->model = up_model_create_random(&cfg, f->be, 4321);
  char err[512] = "";
  f->gen = up_generator_create(f->model, MAX_SEQS, MAX_PROMPT, MAX_NEW, err, sizeof err);
  cr_assert_not_null(f->gen, "%s", err);
  cr_assert_gt(up_generator_bytes(f->gen), 0);
}

static void fixture_free(fixture *f) {
  up_generator_destroy(f->gen);
  up_model_destroy(f->model);
  f->be->ops->destroy(f->be);
}

static up_method dense(up_backend *be) {
  const up_method_spec spec = small_spec("dense");
  return small_method(&spec, be);
}

/* One prompt alone. */
static up_generation run_one(fixture *f, const up_method *m, const int32_t *prompt, int32_t len, int32_t max_new,
                             const int32_t *stops, int32_t n_stop) {
  up_generation g;
  up_generator_run(f->gen, m, &prompt, &len, 1, max_new, stops, n_stop, &g);
  return g;
}

static int32_t argmax(const float *v, int32_t n) {
  int32_t best = 0;
  for (int32_t i = 1; i < n; ++i)
    if (v[i] > v[best]) best = i;
  return best;
}

static bool contains(const int32_t *v, int32_t n, int32_t x) {
  for (int32_t i = 0; i < n; ++i)
    if (v[i] == x) return true;
  return false;
}

Test(generation, length_cap_and_stop_ids) {
  fixture f;
  fixture_init(&f);
  const up_method m = dense(f.be);
  int32_t prompt[100];
  random_prompt(prompt, 100, 5);

  /* No stop ids: exactly max_new tokens, the first the argmax of the first logits. */
  up_generation full = run_one(&f, &m, prompt, 100, MAX_NEW, NULL, 0);
  cr_assert_eq(full.n_tokens, MAX_NEW);
  cr_assert_not(full.stopped);
  cr_assert_eq(full.tokens[0], argmax(full.first_logits, SMALL_VOCAB));
  for (int32_t l = 0; l < SMALL_N_LAYERS; ++l) cr_assert_eq(full.layer_rows[l], 100, "dense keeps every row");

  /* A shorter cap than the generator's room. */
  up_generation capped = run_one(&f, &m, prompt, 100, 3, NULL, 0);
  cr_assert_eq(capped.n_tokens, 3);
  cr_assert_not(capped.stopped);
  cr_assert(memcmp(capped.tokens, full.tokens, 3 * sizeof(int32_t)) == 0, "a cap cuts the same sequence");
  up_generation_free(&capped);

  /* Each generated token as a stop id: generation ends at its first occurrence, included
   * (the seed gives several distinct tokens, so some stops come after the first). */
  int32_t distinct = 0;
  for (int32_t k = 0; k < MAX_NEW; ++k) {
    int32_t first = 0;
    while (full.tokens[first] != full.tokens[k]) ++first;
    distinct += first == k;
    const int32_t stops[2] = {SMALL_VOCAB + 7 /* never generated */, full.tokens[k]};
    up_generation g = run_one(&f, &m, prompt, 100, MAX_NEW, stops, 2);
    cr_assert(g.stopped, "stop id %d (token %d) ended generation", (int)full.tokens[k], (int)k);
    cr_assert_eq(g.n_tokens, first + 1, "stop id %d first generated at %d", (int)full.tokens[k], (int)first);
    cr_assert(memcmp(g.tokens, full.tokens, sizeof(int32_t) * (size_t)g.n_tokens) == 0);
    up_generation_free(&g);
  }
  cr_assert_geq(distinct, 3, "the sequence has %d distinct tokens", (int)distinct);

  /* A stop id never generated leaves the length cap in charge. */
  int32_t absent = 0;
  while (contains(full.tokens, MAX_NEW, absent)) ++absent;
  up_generation g = run_one(&f, &m, prompt, 100, MAX_NEW, &absent, 1);
  cr_assert_not(g.stopped);
  cr_assert_eq(g.n_tokens, MAX_NEW);
  up_generation_free(&g);
  up_generation_free(&full);
  fixture_free(&f);
}

/* In a batch, a sequence that stops leaves the others decoding as they would alone. */
Test(generation, batch_with_an_early_stop_equals_each_alone) {
  fixture f;
  fixture_init(&f);
  const up_method m = dense(f.be);
  int32_t a[100], b[60];
  random_prompt(a, 100, 5);
  random_prompt(b, 60, 6);
  up_generation full_a = run_one(&f, &m, a, 100, MAX_NEW, NULL, 0), full_b = run_one(&f, &m, b, 60, MAX_NEW, NULL, 0);
  /* A's earliest token that B never generates stops A there and leaves B to the cap. */
  int32_t stop = -1;
  for (int32_t k = 0; k < MAX_NEW && stop < 0; ++k)
    if (!contains(full_b.tokens, MAX_NEW, full_a.tokens[k])) stop = full_a.tokens[k];
  cr_assert_geq(stop, 0, "the two prompts generate different tokens");
  const int32_t *prompts[2] = {a, b};
  const int32_t lens[2] = {100, 60};
  up_generation batch[2];
  up_generator_run(f.gen, &m, prompts, lens, 2, MAX_NEW, &stop, 1, batch);
  cr_assert(batch[0].stopped);
  cr_assert_lt(batch[0].n_tokens, MAX_NEW);
  cr_assert_eq(batch[0].tokens[batch[0].n_tokens - 1], stop);
  cr_assert(memcmp(batch[0].tokens, full_a.tokens, sizeof(int32_t) * (size_t)batch[0].n_tokens) == 0);
  cr_assert_not(batch[1].stopped);
  cr_assert_eq(batch[1].n_tokens, MAX_NEW);
  cr_assert(memcmp(batch[1].tokens, full_b.tokens, sizeof(int32_t) * MAX_NEW) == 0,
            "B decodes the same tokens after A stopped");
  for (int32_t s = 0; s < 2; ++s) up_generation_free(&batch[s]);
  up_generation_free(&full_a);
  up_generation_free(&full_b);
  fixture_free(&f);
}

/* Decode through the cache picks what a fresh prefill of everything before picks. */
Test(generation, decoded_tokens_equal_fresh_prefills) {
  fixture f;
  fixture_init(&f);
  const up_method m = dense(f.be);
  int32_t tokens[300 + MAX_NEW];
  random_prompt(tokens, 300, 9);
  up_generation full = run_one(&f, &m, tokens, 300, MAX_NEW, NULL, 0);
  memcpy(tokens + 300, full.tokens, sizeof(int32_t) * MAX_NEW);
  for (int32_t k = 1; k < MAX_NEW; ++k) {
    up_generation g = run_one(&f, &m, tokens, 300 + k, 1, NULL, 0);
    cr_assert_eq(g.tokens[0], full.tokens[k], "token %d: decode picked %d, a prefill of %d tokens picks %d", (int)k,
                 (int)full.tokens[k], (int)(300 + k), (int)g.tokens[0]);
    up_generation_free(&g);
  }
  up_generation_free(&full);
  fixture_free(&f);
}

static void check_batch_equals_alone(const up_method_spec *spec, bool expect_drops) {
  fixture f;
  fixture_init(&f);
  const up_method m = small_method(spec, f.be);
  const int32_t lens[MAX_SEQS] = {700, 40, 520};
  int32_t *prompts[MAX_SEQS];
  for (int32_t s = 0; s < MAX_SEQS; ++s) {
    prompts[s] = malloc(sizeof(int32_t) * (size_t)lens[s]);
    random_prompt(prompts[s], lens[s], 100 + (uint32_t)s);
  }
  up_generation batch[MAX_SEQS];
  up_generator_run(f.gen, &m, (const int32_t *const *)prompts, lens, MAX_SEQS, MAX_NEW, NULL, 0, batch);
  for (int32_t s = 0; s < MAX_SEQS; ++s) {
    up_generation alone = run_one(&f, &m, prompts[s], lens[s], MAX_NEW, NULL, 0);
    for (int32_t l = 0; l < SMALL_N_LAYERS; ++l)
      cr_assert_eq(batch[s].layer_rows[l], alone.layer_rows[l], "%s: prompt %d layer %d rows", spec->label, (int)s,
                   (int)l);
    const double err = max_rel_diff(batch[s].first_logits, alone.first_logits, SMALL_VOCAB);
    cr_assert_lt(err, 1e-4, "%s: prompt %d first logits differ by %g", spec->label, (int)s, err);
    cr_assert_eq(batch[s].n_tokens, alone.n_tokens);
    cr_assert(memcmp(batch[s].tokens, alone.tokens, sizeof(int32_t) * (size_t)alone.n_tokens) == 0,
              "%s: prompt %d generates other tokens in the batch", spec->label, (int)s);
    up_generation_free(&alone);
  }
  const int32_t *rows = batch[0].layer_rows;
  if (expect_drops) {
    cr_assert_lt(rows[SMALL_N_LAYERS - 1], rows[0], "%s dropped rows of the %d-token prompt", spec->label,
                 (int)lens[0]);
    cr_assert_eq(batch[1].layer_rows[SMALL_N_LAYERS - 1], lens[1], "the 40-token prompt is too short to drop from");
  } else {
    cr_assert_eq(rows[SMALL_N_LAYERS - 1], rows[0]);
  }
  for (int32_t s = 0; s < MAX_SEQS; ++s) {
    up_generation_free(&batch[s]);
    free(prompts[s]);
  }
  fixture_free(&f);
}

Test(generation, batch_equals_each_prompt_alone_dense) {
  const up_method_spec spec = small_spec("dense");
  check_batch_equals_alone(&spec, false);
}

Test(generation, batch_equals_each_prompt_alone_uniprefill_keep) {
  const up_method_spec spec = uniprefill_spec(0.99f, 0.3f);
  check_batch_equals_alone(&spec, true);
}

Test(generation, oversized_generator_is_refused) {
  const up_model_config cfg = small_config();
  up_backend *be = up_cpu_backend_create(1);
  up_model *model = up_model_create_random(&cfg, be, 1);
  char err[512] = "";
  up_generator *gen = up_generator_create(model, 256, 1 << 30, 32, err, sizeof err);
  cr_assert_null(gen);
  cr_assert(strstr(err, "GiB of KV cache") != NULL, "%s", err);
  up_model_destroy(model);
  be->ops->destroy(be);
}

/* Diagnostics on (eval): per prompt token, the drop layers it survived, consistent with
 * the rows entering each layer after a drop (drops at layers 1 and 2); the logits of
 * every step up to the first content token, each picking that step's token; the
 * generated tokens are the same as without diagnostics. */
Test(generation, diagnostics_report_surviving_rows_and_lead_logits) {
  fixture f;
  fixture_init(&f);
  const up_method_spec spec = uniprefill_spec(0.99f, 0.3f);
  const up_method m = small_method(&spec, f.be);
  const int32_t lens[MAX_SEQS] = {700, 40, 520};
  int32_t *prompts[MAX_SEQS];
  for (int32_t s = 0; s < MAX_SEQS; ++s) {
    prompts[s] = malloc(sizeof(int32_t) * (size_t)lens[s]);
    random_prompt(prompts[s], lens[s], 200 + (uint32_t)s);
  }
  up_generation plain[MAX_SEQS], watched[MAX_SEQS];
  up_generator_run(f.gen, &m, (const int32_t *const *)prompts, lens, MAX_SEQS, MAX_NEW, NULL, 0, plain);
  /* Every seventh token carries content: answers reach one after a few steps, or not. */
  uint8_t content[SMALL_VOCAB];
  for (int32_t v = 0; v < SMALL_VOCAB; ++v) content[v] = v % 7 == 0;
  up_generator_set_diagnostics(f.gen, content, true);
  up_generator_run(f.gen, &m, (const int32_t *const *)prompts, lens, MAX_SEQS, MAX_NEW, NULL, 0, watched);
  const int32_t drop_layers[] = {1, 2};
  for (int32_t s = 0; s < MAX_SEQS; ++s) {
    const up_generation *g = &watched[s];
    cr_assert_null(plain[s].prompt_drops_survived);
    cr_assert_null(plain[s].lead_logits);
    cr_assert_eq(g->n_tokens, plain[s].n_tokens);
    cr_assert(memcmp(g->tokens, plain[s].tokens, sizeof(int32_t) * (size_t)g->n_tokens) == 0,
              "prompt %d: diagnostics changed the answer", (int)s);
    cr_assert_not_null(g->prompt_drops_survived);
    for (int32_t d = 0; d < 2; ++d) {
      int32_t survivors = 0;
      for (int32_t t = 0; t < lens[s]; ++t) survivors += g->prompt_drops_survived[t] > d;
      cr_assert_eq(survivors, g->layer_rows[drop_layers[d] + 1], "prompt %d: rows after drop %d", (int)s, (int)d);
    }
    for (int32_t t = 0; t < lens[s]; ++t)
      cr_assert(g->prompt_drops_survived[t] >= 0 && g->prompt_drops_survived[t] <= 2);
    cr_assert_eq(g->prompt_drops_survived[lens[s] - 1], 2, "the last row is always kept");
    int32_t first_content = -1;
    for (int32_t k = 0; k < g->n_tokens && first_content < 0; ++k)
      if (content[g->tokens[k]]) first_content = k;
    cr_assert_eq(g->n_lead, first_content >= 0 ? first_content + 1 : g->n_tokens, "prompt %d", (int)s);
    cr_assert(memcmp(g->lead_logits, g->first_logits, sizeof(float) * SMALL_VOCAB) == 0);
    for (int32_t k = 0; k < g->n_lead; ++k)
      cr_assert_eq(argmax(g->lead_logits + (size_t)k * SMALL_VOCAB, SMALL_VOCAB), g->tokens[k],
                   "prompt %d step %d: kept logits pick the step's token", (int)s, (int)k);
  }
  cr_assert_lt(watched[0].layer_rows[SMALL_N_LAYERS - 1], lens[0], "the long prompt lost rows");
  for (int32_t s = 0; s < MAX_SEQS; ++s) {
    up_generation_free(&plain[s]);
    up_generation_free(&watched[s]);
    free(prompts[s]);
  }
  fixture_free(&f);
}
