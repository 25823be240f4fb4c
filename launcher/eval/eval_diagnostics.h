/* eval_diagnostics.h — the fidelity record's diagnostic fields, which the accuracy and
 * the answer-position top-1 hide: agreement with dense at the first answer token that
 * carries content, whether the whole answer equals dense's, and whether the needles the
 * answer depends on survived each drop layer. Dense's answers are kept here while the
 * other methods run (dense runs first). No I/O, no MPI. */
#ifndef UP_EVAL_DIAGNOSTICS_H
#define UP_EVAL_DIAGNOSTICS_H

#include <stdint.h>

#include "engine/serve/generation.h"
#include "launcher/eval/eval_record.h"
#include "launcher/eval/needle_spans.h"

/* Dense's greedy answer to one prompt and its logits up to its first content token. */
typedef struct up_dense_answer {
  int32_t *tokens;
  int32_t n_tokens;
  float *lead_logits;
  int32_t n_lead;
} up_dense_answer;

/* Copy what later methods are compared with out of dense's generation. */
void up_dense_answer_keep(up_dense_answer *dense, const up_generation *g, int32_t vocab);
void up_dense_answer_free(up_dense_answer *dense);

/* Fill r's content, same-answer and needle fields from generation g (made with
 * up_generator_set_diagnostics on). dense is NULL on dense's own row (compared with
 * itself). spans are the prompt's answer needles (n_spans < 1: none known). */
void up_eval_record_diagnostics(up_eval_record *r, const up_generation *g, const up_dense_answer *dense,
                                const uint8_t *content, int32_t vocab, const up_token_span *spans, int32_t n_spans);

#endif
