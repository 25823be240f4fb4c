/* test_needle_spans.c — needles in token space (launcher/eval/needle_spans.h) on real
 * tokenizers: every task's samples, rendered and encoded as --eval does, locate each
 * needle in the prompt's bytes (the generator's prompt offsets) and in its tokens (the
 * span decodes to the needle, plus at most the separator before it, and no token of it
 * can go); niah_multikey's distractors carry no answer. Then survival: the count of
 * drop layers a set of needles outlived, against hand-made keep lists. The tiny
 * Llama-2 GGUF (SentencePiece) always runs; SmolLM2 (byte-level BPE) when fetched. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/checkpoint/gguf.h"
#include "launcher/eval/needle_spans.h"
#include "workloads/eval/chat_template.h"
#include "workloads/eval/eval_tasks.h"
#include "workloads/eval/haystack_corpus.h"

typedef struct encoder {
  const up_tokenizer *tok;
  bool add_bos;
} encoder;

static int32_t count_tokens(void *ctx, const char *text, size_t len) {
  const encoder *enc = ctx;
  char err[256];
  return up_tokenizer_encode(enc->tok, text, len, enc->add_bos, true, NULL, 0, err, sizeof err);
}

/* The decoded text of ids[first..end), special tokens as text; malloc'ed. */
static char *decode_range(const up_tokenizer *tok, const int32_t *ids, int32_t first, int32_t end) {
  char err[256] = "";
  const int64_t need = up_tokenizer_decode(tok, ids + first, (size_t)(end - first), true, NULL, 0, err, sizeof err);
  cr_assert_geq(need, 0, "%s", err);
  char *text = malloc((size_t)need + 1);
  up_tokenizer_decode(tok, ids + first, (size_t)(end - first), true, text, (size_t)need + 1, err, sizeof err);
  return text;
}

static bool range_holds(const up_tokenizer *tok, const int32_t *ids, int32_t first, int32_t end, const char *needle,
                        size_t len) {
  if (end <= first) return false;
  char *text = decode_range(tok, ids, first, end);
  bool holds = false;
  for (size_t at = 0; !holds && text[at]; ++at) holds = strncmp(text + at, needle, len) == 0;
  free(text);
  return holds;
}

/* Every task's samples at a few depths through one tokenizer, as eval_mode renders them. */
static void check_spans(const char *gguf_path) {
  char err[512] = "";
  up_gguf *g = up_gguf_open(gguf_path, err, sizeof err);
  cr_assert_not_null(g, "%s", err);
  up_tokenizer *tok = up_tokenizer_from_gguf(g, err, sizeof err);
  cr_assert_not_null(tok, "%s", err);
  up_chat_template chat;
  cr_assert(up_chat_template_resolve(NULL, up_tokenizer_chat_template(tok), &chat, err, sizeof err), "%s", err);
  encoder enc = {.tok = tok, .add_bos = up_tokenizer_add_bos(tok) && !up_chat_renders_bos(chat.format)};
  up_haystack_corpus *corpus = up_haystack_corpus_load_default(err, sizeof err);
  cr_assert_not_null(corpus, "%s", err);
  up_eval_generator *gen = up_eval_generator_create(corpus, &chat, count_tokens, &enc);
  const double depths[] = {0.0, 0.37, 1.0};
  for (int kind = 0; kind < UP_EVAL_TASK_COUNT; ++kind)
    for (size_t d = 0; d < sizeof depths / sizeof depths[0]; ++d) {
      const up_eval_request req = {.kind = (up_eval_task_kind)kind, .seed = 7, .sample_index = d,
                                   .target_tokens = 600, .depth = depths[d]};
      up_eval_sample s;
      cr_assert(up_eval_generate(gen, &req, &s, err, sizeof err), "%s", err);
      const char *task = up_eval_task_name(s.kind);
      int32_t *ids = malloc(sizeof(int32_t) * (size_t)s.prompt_tokens);
      const int32_t n = up_tokenizer_encode(tok, s.prompt, strlen(s.prompt), enc.add_bos, true, ids,
                                            s.prompt_tokens, err, sizeof err);
      cr_assert_eq(n, s.prompt_tokens, "%s: %s", task, err);
      int32_t answer_needles = 0;
      for (int32_t i = 0; i < s.n_needles; ++i) {
        const up_eval_needle *nd = &s.needles[i];
        cr_assert_eq(memcmp(s.prompt + nd->prompt_offset, s.user_text + nd->offset, nd->length), 0,
                     "%s: needle %d is at its prompt offset", task, (int)i);
        answer_needles += nd->carries_answer;
        up_token_span span;
        cr_assert(up_prompt_token_span(tok, ids, n, enc.add_bos ? 1 : 0, s.prompt, nd->prompt_offset,
                                       nd->prompt_offset + nd->length, &span),
                  "%s depth %g: needle %d has a token span", task, depths[d], (int)i);
        cr_assert(span.first >= 0 && span.first < span.end && span.end <= n);
        const char *needle = s.prompt + nd->prompt_offset;
        /* Its own tokens: the span holds the needle, and holds it no more without its
         * first or its last token. */
        cr_assert(range_holds(tok, ids, span.first, span.end, needle, nd->length));
        cr_assert(!range_holds(tok, ids, span.first + 1, span.end, needle, nd->length),
                  "%s: the span's first token is part of the needle", task);
        cr_assert(!range_holds(tok, ids, span.first, span.end - 1, needle, nd->length),
                  "%s: the span's last token is part of the needle", task);
        /* Prose needles follow a space: the span is that space and the needle exactly. */
        if (s.kind <= UP_EVAL_NIAH_MULTIVALUE && nd->prompt_offset > 0 && s.prompt[nd->prompt_offset - 1] == ' ') {
          char *text = decode_range(tok, ids, span.first, span.end);
          const char *at = text;
          while (*at == ' ') at++;
          cr_assert(strlen(at) == nd->length && memcmp(at, needle, nd->length) == 0,
                    "%s: span decodes to '%s', the needle is '%.*s'", task, text, (int)nd->length, needle);
          free(text);
        }
      }
      cr_assert_eq(answer_needles, s.kind == UP_EVAL_NIAH_MULTIKEY ? 1 : s.n_needles,
                   "%s: needles that carry the answer", task);
      up_token_span spans[UP_EVAL_MAX_NEEDLES];
      cr_assert_eq(up_answer_needle_spans(tok, ids, n, enc.add_bos ? 1 : 0, &s, spans, UP_EVAL_MAX_NEEDLES),
                   answer_needles, "%s", task);
      free(ids);
      up_eval_sample_free(&s);
    }
  up_eval_generator_free(gen);
  up_haystack_corpus_free(corpus);
  up_tokenizer_free(tok);
  up_gguf_close(g);
}

Test(needle_spans, every_task_on_the_sentencepiece_tokenizer) {
  check_spans(UP_SHARED_DIR "/models/llama-2-tiny-random.gguf");
}

Test(needle_spans, every_task_on_smollm2_byte_level_bpe) {
  char path[1024];
  const char *cache = getenv("UNIPREFILL_MODEL_CACHE"), *home = getenv("HOME");
  if (cache && *cache) snprintf(path, sizeof path, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", cache);
  else snprintf(path, sizeof path, "%s/.cache/uniprefill-bench/models/SmolLM2-135M-Instruct.Q4_1.gguf", home ? home : "");
  FILE *f = fopen(path, "rb");
  if (!f) cr_skip_test("SmolLM2 GGUF not found at %s (make model fetches it)", path);
  fclose(f);
  check_spans(path);
}

Test(needle_spans, a_span_the_decoding_cannot_place_is_refused) {
  char err[512] = "";
  up_gguf *g = up_gguf_open(UP_SHARED_DIR "/models/llama-2-tiny-random.gguf", err, sizeof err);
  cr_assert_not_null(g, "%s", err);
  up_tokenizer *tok = up_tokenizer_from_gguf(g, err, sizeof err);
  cr_assert_not_null(tok, "%s", err);
  const char text[] = "Some prose. One of the special magic numbers for x is: 1234567. More prose.";
  int32_t ids[64];
  const int32_t n = up_tokenizer_encode(tok, text, strlen(text), false, true, ids, 64, err, sizeof err);
  cr_assert_gt(n, 0, "%s", err);
  up_token_span span;
  const char *at = strstr(text, "One of");
  const size_t begin = (size_t)(at - text), end = (size_t)(strstr(text, " More") - text);
  cr_assert(up_prompt_token_span(tok, ids, n, 0, text, begin, end, &span));
  /* Another text than the one encoded: its bytes are not where the tokens put them. */
  char other[sizeof text];
  memcpy(other, text, sizeof text);
  memcpy(other + begin, "Two", 3);
  cr_assert_not(up_prompt_token_span(tok, ids, n, 0, other, begin, end, &span));
  cr_assert_eq(span.first, -1);
  cr_assert_not(up_prompt_token_span(tok, ids, n, 0, text, end, begin, &span), "an empty range");
  up_tokenizer_free(tok);
  up_gguf_close(g);
}

/* ---- survival: counts from keep lists ---- */

/* What the forward reports, from the rows each drop layer kept (each list a subset of
 * the one before, as drops nest). */
static void drops_from_keep_lists(int32_t *drops_survived, int32_t n_tokens, const int32_t *const *keep,
                                  const int32_t *n_keep, int32_t n_drops) {
  memset(drops_survived, 0, sizeof(int32_t) * (size_t)n_tokens);
  for (int32_t d = 0; d < n_drops; ++d)
    for (int32_t i = 0; i < n_keep[d]; ++i) drops_survived[keep[d][i]] += 1;
}

Test(needle_survival, counts_the_drops_every_needle_token_outlived) {
  enum { N = 20 };
  /* Drop 0 loses row 5; drop 1 keeps 8..12 and 17..19; drop 2 keeps 9..11 and 19. */
  const int32_t keep0[] = {0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19};
  const int32_t keep1[] = {8, 9, 10, 11, 12, 17, 18, 19};
  const int32_t keep2[] = {9, 10, 11, 19};
  const int32_t *keep[] = {keep0, keep1, keep2};
  const int32_t n_keep[] = {19, 8, 4};
  int32_t drops[N];
  drops_from_keep_lists(drops, N, keep, n_keep, 3);
  const up_token_span lost_first[] = {{3, 7}};   /* holds row 5 */
  const up_token_span lost_second[] = {{13, 15}}; /* survives drop 0 only */
  const up_token_span lost_third[] = {{8, 12}};  /* row 8 goes at drop 2 */
  const up_token_span whole[] = {{9, 12}};       /* every drop keeps 9..11 */
  cr_assert_eq(up_spans_drops_survived(lost_first, 1, drops), 0);
  cr_assert_eq(up_spans_drops_survived(lost_second, 1, drops), 1);
  cr_assert_eq(up_spans_drops_survived(lost_third, 1, drops), 2);
  cr_assert_eq(up_spans_drops_survived(whole, 1, drops), 3);
  /* Several needles: the first drop that loses any of them. */
  const up_token_span both[] = {{9, 12}, {17, 19}}; /* 17 and 18 go at drop 2 */
  cr_assert_eq(up_spans_drops_survived(both, 2, drops), 2);
  const up_token_span with_prose[] = {{13, 15}, {9, 12}};
  cr_assert_eq(up_spans_drops_survived(with_prose, 2, drops), 1);
  const up_token_span with_last[] = {{9, 12}, {19, 20}};
  cr_assert_eq(up_spans_drops_survived(with_last, 2, drops), 3);
  cr_assert_eq(up_spans_drops_survived(whole, 0, drops), -1, "no needle: unknown");
}
