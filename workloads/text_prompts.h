/* text_prompts.h — prompts of real prose at any exact token length (--prompt-source
 * text). The prose (the haystack corpus, eval/haystack_corpus.h: its sentences joined
 * by single spaces, in file order) is tokenized once, by the checkpoint's tokenizer, into
 * one token stream that is read cyclically. Request id's prompt is BOS (when the
 * tokenizer puts one first) followed by the stream from a start offset drawn from
 * (seed, id): offsets are base + id * stride modulo the stream length, with the stride
 * coprime to it, so any stream-length run of consecutive ids starts at distinct tokens.
 * A prompt of n tokens is the first n tokens of the prompt of n + 1 (as random prompts
 * are), and filling one is a copy: nothing is tokenized while a point runs.
 * Owns the stream and the offsets; not the corpus, the tokenizer or the request source. */
#ifndef UP_TEXT_PROMPTS_H
#define UP_TEXT_PROMPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "workloads/eval/haystack_corpus.h"

/* The checkpoint's tokenizer, as the launcher hands it to workloads (which never
 * include the engine's tokenizer). */
typedef struct up_prompt_tokenizer {
  /* Tokens of text[0..len) without BOS; parse_special makes control tokens written in
   * the text (e.g. "<|im_start|>") their ids. Returns the count and writes the first
   * min(count, cap) ids to out, or -1 with a message in err. */
  int32_t (*encode)(void *ctx, const char *text, size_t len, bool parse_special, int32_t *out, int32_t cap,
                    char *err, size_t err_size);
  void *ctx;
  int32_t bos;       /* put first in every prompt built from text, or -1: the tokenizer adds none */
  const char *name;  /* for messages: "the tokenizer of FILE" */
} up_prompt_tokenizer;

typedef struct up_text_prompts {
  int32_t *tokens;   /* the stream */
  int64_t n_tokens;  /* >= 1 */
  int32_t bos;
  uint64_t seed;
  uint64_t base;     /* request 0's offset */
  uint64_t stride;   /* coprime to n_tokens */
} up_text_prompts;

/* Tokenize the corpus. NULL with a message when the tokenizer fails, the prose yields
 * no token, or a token is outside the model's vocabulary of `vocab` ids. */
up_text_prompts *up_text_prompts_create(const up_haystack_corpus *corpus, const up_prompt_tokenizer *tok,
                                        int32_t vocab, uint64_t seed, char *err, size_t err_size);
void up_text_prompts_free(up_text_prompts *tp);

/* Where request id's text starts in the stream (any id, warm-up's negative ones too). */
uint64_t up_text_prompts_offset(const up_text_prompts *tp, int64_t id);

/* Request id's prompt of exactly n tokens. */
void up_text_prompts_fill(const up_text_prompts *tp, int64_t id, int32_t *tokens, int32_t n);

/* n tokens of prose from an offset drawn from (seed, key), without BOS: a block that
 * every request naming the same key shares (trace hash ids). */
void up_text_prompts_fill_block(const up_text_prompts *tp, uint64_t key, int32_t *tokens, int32_t n);

#endif
