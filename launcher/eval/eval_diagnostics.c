/* eval_diagnostics.c — content-token, same-answer and needle-survival fields of a
 * fidelity record (see the header). */
#include "launcher/eval/eval_diagnostics.h"

#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "launcher/eval/fidelity_metrics.h"

void up_dense_answer_keep(up_dense_answer *dense, const up_generation *g, int32_t vocab) {
  dense->n_tokens = g->n_tokens;
  dense->tokens = up_malloc_or_die(sizeof(int32_t) * (size_t)(g->n_tokens > 0 ? g->n_tokens : 1), "dense answer");
  memcpy(dense->tokens, g->tokens, sizeof(int32_t) * (size_t)g->n_tokens);
  dense->n_lead = g->n_lead;
  const size_t lead = (size_t)vocab * (size_t)g->n_lead;
  dense->lead_logits = up_malloc_or_die(sizeof(float) * (lead > 0 ? lead : 1), "dense answer logits");
  if (lead > 0) memcpy(dense->lead_logits, g->lead_logits, sizeof(float) * lead);
}

void up_dense_answer_free(up_dense_answer *dense) {
  free(dense->tokens);
  free(dense->lead_logits);
  memset(dense, 0, sizeof *dense);
}

void up_eval_record_diagnostics(up_eval_record *r, const up_generation *g, const up_dense_answer *dense,
                                const uint8_t *content, int32_t vocab, const up_token_span *spans, int32_t n_spans) {
  const up_answer_view mine = {.tokens = g->tokens, .n_tokens = g->n_tokens, .lead_logits = g->lead_logits,
                               .n_lead = g->n_lead};
  const up_answer_view reference =
      dense ? (up_answer_view){.tokens = dense->tokens, .n_tokens = dense->n_tokens,
                               .lead_logits = dense->lead_logits, .n_lead = dense->n_lead}
            : mine;
  const up_content_comparison c = up_compare_at_content(&reference, &mine, content, vocab);
  r->content_step = c.step;
  r->content_token = c.token;
  r->dense_content_token = c.dense_token;
  r->top1_content_agrees = c.top1_agrees;
  r->kl_content = c.kl;
  r->same_answer = reference.n_tokens == mine.n_tokens &&
                   memcmp(reference.tokens, mine.tokens, sizeof(int32_t) * (size_t)mine.n_tokens) == 0;
  r->needle_tokens = 0;
  r->needle_drops_survived = -1;
  if (n_spans >= 1 && g->prompt_drops_survived) {
    for (int32_t i = 0; i < n_spans; ++i) r->needle_tokens += spans[i].end - spans[i].first;
    r->needle_drops_survived = up_spans_drops_survived(spans, n_spans, g->prompt_drops_survived);
  }
}
