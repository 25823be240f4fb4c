/* needle_spans.c — needles in token space and their survival (see the header). */
#include "launcher/eval/needle_spans.h"

#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"

/* Bytes that ids[skip..k) decode to, special tokens written as their text (as the
 * prompt holds them). */
static int64_t decoded_prefix_bytes(const up_tokenizer *tok, const int32_t *ids, int32_t skip, int32_t k) {
  char err[128];
  if (k <= skip) return 0;
  return up_tokenizer_decode(tok, ids + skip, (size_t)(k - skip), true, NULL, 0, err, sizeof err);
}

/* The smallest k in [skip, n] whose decoded prefix is longer than `bytes` (at_least:
 * at least `bytes` long), or n + 1 when none is. Prefix lengths grow with k. */
static int32_t first_prefix_past(const up_tokenizer *tok, const int32_t *ids, int32_t n, int32_t skip, size_t bytes,
                                 bool at_least) {
  int32_t lo = skip, hi = n + 1;
  while (lo < hi) {
    const int32_t mid = lo + (hi - lo) / 2;
    const int64_t len = decoded_prefix_bytes(tok, ids, skip, mid);
    const bool past = at_least ? len >= (int64_t)bytes : len > (int64_t)bytes;
    if (past) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

bool up_prompt_token_span(const up_tokenizer *tok, const int32_t *ids, int32_t n_ids, int32_t skip,
                          const char *prompt, size_t byte_begin, size_t byte_end, up_token_span *span) {
  *span = (up_token_span){-1, -1};
  if (byte_end <= byte_begin || skip < 0 || skip >= n_ids) return false;
  const int32_t past_begin = first_prefix_past(tok, ids, n_ids, skip, byte_begin, false);
  const int32_t end = first_prefix_past(tok, ids, n_ids, skip, byte_end, true);
  if (past_begin > n_ids || end > n_ids || past_begin - 1 < skip || end <= past_begin - 1) return false;
  const int32_t first = past_begin - 1;
  char err[128];
  const int64_t need = up_tokenizer_decode(tok, ids + first, (size_t)(end - first), true, NULL, 0, err, sizeof err);
  if (need < 0) return false;
  char *text = up_malloc_or_die((size_t)need + 1, "needle span text");
  up_tokenizer_decode(tok, ids + first, (size_t)(end - first), true, text, (size_t)need + 1, err, sizeof err);
  const size_t len = byte_end - byte_begin;
  bool holds = false;
  for (int64_t at = 0; !holds && at + (int64_t)len <= need; ++at)
    holds = memcmp(text + at, prompt + byte_begin, len) == 0;
  free(text);
  if (holds) *span = (up_token_span){first, end};
  return holds;
}

int32_t up_answer_needle_spans(const up_tokenizer *tok, const int32_t *ids, int32_t n_ids, int32_t skip,
                               const up_eval_sample *sample, up_token_span *spans, int32_t capacity) {
  int32_t n = 0;
  for (int32_t i = 0; i < sample->n_needles; ++i) {
    const up_eval_needle *needle = &sample->needles[i];
    if (!needle->carries_answer) continue;
    if (n >= capacity || !up_prompt_token_span(tok, ids, n_ids, skip, sample->prompt, needle->prompt_offset,
                                               needle->prompt_offset + needle->length, &spans[n]))
      return -1;
    n += 1;
  }
  return n > 0 ? n : -1;
}

int32_t up_spans_drops_survived(const up_token_span *spans, int32_t n_spans, const int32_t *drops_survived) {
  if (n_spans < 1) return -1;
  int32_t least = INT32_MAX;
  for (int32_t i = 0; i < n_spans; ++i)
    for (int32_t t = spans[i].first; t < spans[i].end; ++t)
      least = drops_survived[t] < least ? drops_survived[t] : least;
  return least;
}
