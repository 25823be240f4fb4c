/* fidelity_metrics.c — KL divergence and top-1 of logit vectors (see the header). */
#include "launcher/eval/fidelity_metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"

static double log_sum_exp(const float *x, int32_t n, double max) {
  double sum = 0.0;
  for (int32_t i = 0; i < n; ++i) sum += exp((double)x[i] - max);
  return max + log(sum);
}

static double max_of(const float *x, int32_t n) {
  double m = -INFINITY;
  for (int32_t i = 0; i < n; ++i) {
    if (isnan(x[i])) return NAN;
    if (x[i] > m) m = x[i];
  }
  return m;
}

double up_kl_from_logits(const float *p_logits, const float *q_logits, int32_t n) {
  const double p_max = max_of(p_logits, n), q_max = max_of(q_logits, n);
  if (isnan(p_max) || isnan(q_max)) return NAN;
  const double p_lse = log_sum_exp(p_logits, n, p_max), q_lse = log_sum_exp(q_logits, n, q_max);
  double kl = 0.0;
  for (int32_t i = 0; i < n; ++i) {
    const double log_p = (double)p_logits[i] - p_lse, log_q = (double)q_logits[i] - q_lse;
    kl += exp(log_p) * (log_p - log_q);
  }
  /* Rounding can leave a tiny negative value for identical inputs. */
  return kl > 0.0 ? kl : 0.0;
}

int32_t up_argmax_logits(const float *logits, int32_t n) {
  int32_t best = 0;
  for (int32_t i = 1; i < n; ++i)
    if (logits[i] > logits[best]) best = i;
  return best;
}

static bool has_non_whitespace(const char *text, int64_t len) {
  for (int64_t i = 0; i < len; ++i) {
    const char c = text[i];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\v' && c != '\f') return true;
  }
  return false;
}

uint8_t *up_content_token_mask(const up_tokenizer *tok) {
  const int32_t vocab = up_tokenizer_vocab_size(tok);
  uint8_t *content = up_calloc_or_die((size_t)vocab, 1, "content token mask");
  char text[256], err[128];
  for (int32_t id = 0; id < vocab; ++id) {
    const int64_t len = up_tokenizer_decode(tok, &id, 1, false, text, sizeof text, err, sizeof err);
    /* A piece longer than the buffer has more than whitespace in any vocabulary we read;
     * its first bytes decide all the same. */
    content[id] = len > 0 && has_non_whitespace(text, len < (int64_t)sizeof text ? len : (int64_t)sizeof text - 1);
  }
  return content;
}

int32_t up_first_content_step(const int32_t *tokens, int32_t n_tokens, const uint8_t *content) {
  for (int32_t i = 0; i < n_tokens; ++i)
    if (content[tokens[i]]) return i;
  return -1;
}

up_content_comparison up_compare_at_content(const up_answer_view *dense, const up_answer_view *method,
                                            const uint8_t *content, int32_t vocab) {
  up_content_comparison c = {.step = -1, .dense_token = -1, .token = -1, .top1_agrees = -1, .kl = NAN};
  const int32_t p = up_first_content_step(dense->tokens, dense->n_tokens, content);
  if (p < 0) return c;
  UP_ASSERT(dense->n_lead > p, "dense kept %d steps of logits, its first content step is %d", (int)dense->n_lead,
            (int)p);
  c.step = p;
  c.dense_token = dense->tokens[p];
  c.token = method->n_tokens > p ? method->tokens[p] : -1;
  const bool same_prefix =
      method->n_tokens > p && memcmp(method->tokens, dense->tokens, sizeof(int32_t) * (size_t)p) == 0;
  c.top1_agrees = same_prefix && c.token == c.dense_token;
  if (same_prefix) {
    /* The method's tokens before p are dense's, none carrying content, so it kept step p. */
    UP_ASSERT(method->n_lead > p, "the method kept %d steps of logits, step %d is needed", (int)method->n_lead,
              (int)p);
    c.kl = up_kl_from_logits(dense->lead_logits + (size_t)p * vocab, method->lead_logits + (size_t)p * vocab, vocab);
  }
  return c;
}
