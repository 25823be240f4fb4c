/* test_fidelity_metrics.c — KL(dense || method) from logits and top-1 against values
 * computed by hand: zero for equal or shifted logits (softmax ignores a constant),
 * a closed form for two-token distributions, asymmetry, NaN propagation, ties. The
 * content-token rule: whitespace-only tokens skipped, the comparison at dense's first
 * content step, a method whose answer differs before it counted as disagreeing (no
 * KL), dense without content not counted; the mask from a real tokenizer. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/checkpoint/gguf.h"

#include "launcher/eval/fidelity_metrics.h"

Test(fidelity_metrics, kl_is_zero_for_equal_and_shifted_logits) {
  const float a[] = {1.0f, -2.0f, 0.5f, 3.0f};
  const float shifted[] = {11.0f, 8.0f, 10.5f, 13.0f};
  cr_assert_eq(up_kl_from_logits(a, a, 4), 0.0);
  cr_assert_lt(up_kl_from_logits(a, shifted, 4), 1e-12);
}

Test(fidelity_metrics, kl_matches_the_two_token_closed_form) {
  /* P = (0.5, 0.5) from equal logits; Q = (e/(1+e), 1/(1+e)) from logits (1, 0). */
  const float p[] = {0.0f, 0.0f}, q[] = {1.0f, 0.0f};
  const double q0 = exp(1.0) / (1.0 + exp(1.0)), q1 = 1.0 - q0;
  const double expected = 0.5 * log(0.5 / q0) + 0.5 * log(0.5 / q1);
  cr_assert_float_eq(up_kl_from_logits(p, q, 2), expected, 1e-12);
  /* KL is not symmetric. */
  const double reverse = q0 * log(q0 / 0.5) + q1 * log(q1 / 0.5);
  cr_assert_float_eq(up_kl_from_logits(q, p, 2), reverse, 1e-12);
  cr_assert_gt(fabs(expected - reverse), 1e-3);
}

Test(fidelity_metrics, kl_survives_large_logits_and_propagates_nan) {
  const float big[] = {1000.0f, 999.0f}, shifted[] = {0.0f, -1.0f};
  cr_assert_lt(up_kl_from_logits(big, shifted, 2), 1e-12);
  const float with_nan[] = {0.0f, NAN};
  cr_assert(isnan(up_kl_from_logits(with_nan, shifted, 2)));
}

Test(fidelity_metrics, argmax_takes_the_lowest_index_on_ties) {
  const float x[] = {0.0f, 2.0f, -1.0f, 2.0f};
  cr_assert_eq(up_argmax_logits(x, 4), 1);
}

/* ---- the content-token rule ---- */

/* A five-token vocabulary: 0 " ", 1 "\n", 2 "4", 3 "2", 4 stop (decodes to nothing). */
enum { TOY_VOCAB = 5, SPACE = 0, NEWLINE = 1, FOUR = 2, TWO = 3, STOP = 4 };
static const uint8_t toy_content[TOY_VOCAB] = {0, 0, 1, 1, 0};

/* Logits of `steps` steps, step i favouring token favour[i] by `margin`. */
static void toy_logits(float *out, const int32_t *favour, int32_t steps, float margin) {
  for (int32_t i = 0; i < steps; ++i)
    for (int32_t v = 0; v < TOY_VOCAB; ++v) out[i * TOY_VOCAB + v] = v == favour[i] ? margin : 0.0f;
}

/* Two answers of n tokens, each step's logits favouring the answer's token (the method's
 * by method_margin), compared at content. */
typedef struct toy_pair {
  float dense_logits[3 * TOY_VOCAB], method_logits[3 * TOY_VOCAB];
  up_answer_view dense, method;
} toy_pair;

static up_content_comparison compare_toy(toy_pair *t, const int32_t *dense_tokens, const int32_t *method_tokens,
                                         int32_t n, float method_margin) {
  cr_assert_leq(n, 3);
  toy_logits(t->dense_logits, dense_tokens, n, 3.0f);
  toy_logits(t->method_logits, method_tokens, n, method_margin);
  t->dense = (up_answer_view){dense_tokens, n, t->dense_logits, n};
  t->method = (up_answer_view){method_tokens, n, t->method_logits, n};
  return up_compare_at_content(&t->dense, &t->method, toy_content, TOY_VOCAB);
}

Test(content_tokens, first_content_step_skips_whitespace_and_stop_tokens) {
  const int32_t answer[] = {SPACE, NEWLINE, FOUR, TWO};
  cr_assert_eq(up_first_content_step(answer, 4, toy_content), 2);
  const int32_t digits_first[] = {FOUR, SPACE};
  cr_assert_eq(up_first_content_step(digits_first, 2, toy_content), 0);
  const int32_t blank[] = {SPACE, NEWLINE, STOP};
  cr_assert_eq(up_first_content_step(blank, 3, toy_content), -1);
  cr_assert_eq(up_first_content_step(blank, 0, toy_content), -1);
}

Test(content_tokens, compares_at_dense_first_content_step_not_at_the_space) {
  /* Both answers start with the space (the old top-1 agrees); at the number they part. */
  const int32_t dense_tokens[] = {SPACE, FOUR, TWO}, method_tokens[] = {SPACE, TWO, TWO};
  toy_pair t;
  const up_content_comparison c = compare_toy(&t, dense_tokens, method_tokens, 3, 1.0f);
  cr_assert_eq(c.step, 1);
  cr_assert_eq(c.dense_token, FOUR);
  cr_assert_eq(c.token, TWO);
  cr_assert_eq(c.top1_agrees, 0);
  /* KL at step 1 (not at step 0, whose logits differ too). */
  const double expected =
      up_kl_from_logits(t.dense_logits + TOY_VOCAB, t.method_logits + TOY_VOCAB, TOY_VOCAB);
  cr_assert_gt(expected, 0.1);
  cr_assert_float_eq(c.kl, expected, 1e-15);
  cr_assert_neq(up_kl_from_logits(t.dense_logits, t.method_logits, TOY_VOCAB), expected);
  /* The same answer agrees, with KL 0 against itself. */
  const up_content_comparison self = up_compare_at_content(&t.dense, &t.dense, toy_content, TOY_VOCAB);
  cr_assert_eq(self.top1_agrees, 1);
  cr_assert_eq(self.kl, 0.0);
}

Test(content_tokens, an_answer_that_differs_before_the_step_disagrees_without_kl) {
  const int32_t dense_tokens[] = {SPACE, FOUR}, method_tokens[] = {NEWLINE, FOUR};
  toy_pair t;
  const up_content_comparison c = compare_toy(&t, dense_tokens, method_tokens, 2, 3.0f);
  /* Its token at step 1 is dense's, but after another token: not the same context. */
  cr_assert_eq(c.step, 1);
  cr_assert_eq(c.token, FOUR);
  cr_assert_eq(c.top1_agrees, 0);
  cr_assert(isnan(c.kl));
  /* An answer that stopped before the step. */
  const int32_t stopped[] = {STOP};
  const up_answer_view short_answer = {stopped, 1, t.method_logits, 1};
  const up_content_comparison s = up_compare_at_content(&t.dense, &short_answer, toy_content, TOY_VOCAB);
  cr_assert_eq(s.token, -1);
  cr_assert_eq(s.top1_agrees, 0);
  cr_assert(isnan(s.kl));
}

Test(content_tokens, dense_without_content_is_not_counted) {
  const int32_t dense_tokens[] = {SPACE, STOP}, method_tokens[] = {FOUR, STOP};
  toy_pair t;
  const up_content_comparison c = compare_toy(&t, dense_tokens, method_tokens, 2, 1.0f);
  cr_assert_eq(c.step, -1);
  cr_assert_eq(c.dense_token, -1);
  cr_assert_eq(c.top1_agrees, -1);
  cr_assert(isnan(c.kl));
}

Test(content_tokens, mask_of_a_sentencepiece_vocabulary) {
  char err[512] = "";
  up_gguf *g = up_gguf_open(UP_SHARED_DIR "/models/llama-2-tiny-random.gguf", err, sizeof err);
  cr_assert_not_null(g, "%s", err);
  up_tokenizer *tok = up_tokenizer_from_gguf(g, err, sizeof err);
  cr_assert_not_null(tok, "%s", err);
  uint8_t *content = up_content_token_mask(tok);
  const struct {
    const char *piece;
    uint8_t carries;
  } cases[] = {{"\xe2\x96\x81", 0}, {"<0x0A>", 0}, {"<0x20>", 0}, {"\xe2\x96\x81\xe2\x96\x81", 0},
               {"\xe2\x96\x81One", 1}, {"4", 1}, {".", 1}, {"<0x41>", 1}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    const int32_t id = up_tokenizer_token_to_id(tok, cases[i].piece, strlen(cases[i].piece));
    cr_assert_geq(id, 0, "piece '%s' is in the vocabulary", cases[i].piece);
    cr_assert_eq(content[id], cases[i].carries, "piece '%s'", cases[i].piece);
  }
  cr_assert_eq(content[up_tokenizer_bos(tok)], 0, "BOS decodes to nothing");
  cr_assert_eq(content[up_tokenizer_eos(tok)], 0, "EOS decodes to nothing");
  free(content);
  up_tokenizer_free(tok);
  up_gguf_close(g);
}
