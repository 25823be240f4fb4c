/* needle_spans.h — where a sample's needles sit in its token ids, and whether they
 * outlived a method's drop layers. The task generator knows each needle's bytes in the
 * rendered prompt (workloads/eval/eval_tasks.h); this maps them onto the tokens the
 * checkpoint's tokenizer made of that prompt, and folds the per-token survival counts
 * the forward pass reports (up_forward_out.row_drops_survived) into one count per
 * sample. Owns nothing of the engine or the generator. */
#ifndef UP_NEEDLE_SPANS_H
#define UP_NEEDLE_SPANS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/tokenizer/tokenizer.h"
#include "workloads/eval/eval_tasks.h"

/* Tokens [first, end) of a prompt's ids. */
typedef struct up_token_span {
  int32_t first, end;
} up_token_span;

/* The tokens of ids[0..n_ids) (the encoding of `prompt`, whose first `skip` ids are
 * added ones such as a BOS the text does not hold) that hold any of the prompt's bytes
 * [byte_begin, byte_end). Found from the lengths of decoded prefixes, then checked: the
 * span's decoded text must contain those bytes. False when it does not (a tokenizer
 * whose decoding does not give back the prompt), so no wrong span is ever reported. */
bool up_prompt_token_span(const up_tokenizer *tok, const int32_t *ids, int32_t n_ids, int32_t skip,
                          const char *prompt, size_t byte_begin, size_t byte_end, up_token_span *span);

/* Spans of the sample's needles that carry its answer (niah_multikey's distractors
 * left out), in context order; returns their count (at most capacity), or -1 when the
 * sample has none or one could not be placed. */
int32_t up_answer_needle_spans(const up_tokenizer *tok, const int32_t *ids, int32_t n_ids, int32_t skip,
                               const up_eval_sample *sample, up_token_span *spans, int32_t capacity);

/* How many leading drop layers every token of every span survived: the least
 * drops_survived[t] over the spans' tokens (drops nest, so a needle whole after drop d
 * was whole after every earlier one). -1 when n_spans < 1. */
int32_t up_spans_drops_survived(const up_token_span *spans, int32_t n_spans, const int32_t *drops_survived);

#endif
