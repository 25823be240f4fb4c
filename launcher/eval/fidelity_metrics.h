/* fidelity_metrics.h — how far a method's output distribution moves from dense
 * prefill's at the same position: KL(dense || method) over the full vocabulary from
 * raw logits, and top-1 agreement. Double precision throughout, since the KL of two
 * nearly equal distributions is a small difference of large sums. */
#ifndef UP_FIDELITY_METRICS_H
#define UP_FIDELITY_METRICS_H

#include <stdint.h>

#include "engine/tokenizer/tokenizer.h"

/* KL(P || Q) in nats where P = softmax(p_logits), Q = softmax(q_logits); >= 0, NaN if
 * any logit is NaN. */
double up_kl_from_logits(const float *p_logits, const float *q_logits, int32_t n);
/* Index of the largest logit; the lowest index on ties (as greedy decoding picks). */
int32_t up_argmax_logits(const float *logits, int32_t n);

/* The answer's first token is often a bare space (" 4215244" starts with " "), which a
 * method agrees with even when it has lost the number. So agreement is also measured at
 * the first token that carries content: one whose decoded text (special tokens dropped)
 * holds a character other than ASCII whitespace. A stop token or a token that decodes
 * to nothing carries none. */

/* [vocab] 1 for each token that carries content, else 0; free() it. */
uint8_t *up_content_token_mask(const up_tokenizer *tok);
/* The first step (index into tokens) whose token carries content, or -1. */
int32_t up_first_content_step(const int32_t *tokens, int32_t n_tokens, const uint8_t *content);

/* One greedy answer with the logits of its steps up to its first content token. */
typedef struct up_answer_view {
  const int32_t *tokens;
  int32_t n_tokens;
  const float *lead_logits; /* [n_lead][vocab] logits of steps 0 .. n_lead - 1 */
  int32_t n_lead;
} up_answer_view;

/* A method's answer against dense's at dense's first content step p. Both decode
 * greedily from their own prefill; their next-token distributions at step p are
 * comparable only when the method's tokens before p are dense's (the same context):
 * then top-1 is 1 when its token at p is dense's and kl is KL(dense || method) there.
 * A method whose answer differs before p disagrees (top-1 0) and has no KL (NaN). */
typedef struct up_content_comparison {
  int32_t step;          /* p, dense's first content step; -1 when dense's answer has none */
  int32_t dense_token;   /* dense's token at p; -1 when step is -1 */
  int32_t token;         /* the method's token at p; -1 when its answer ended before p */
  int32_t top1_agrees;   /* 1, 0, or -1 when step is -1 (not counted) */
  double kl;             /* nats; NaN when the prefixes differ or step is -1 */
} up_content_comparison;

up_content_comparison up_compare_at_content(const up_answer_view *dense, const up_answer_view *method,
                                            const uint8_t *content, int32_t vocab);

#endif
