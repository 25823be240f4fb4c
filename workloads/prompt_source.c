/* prompt_source.c — parsing --prompt-source, opening the source, and filling prompts
 * and shared blocks from it (see prompt_source.h). */
#include "workloads/prompt_source.h"

#include <stdio.h>
#include <string.h>

#include "core/fatal.h"
#include "core/rng.h"
#include "workloads/closed_loop.h"

/* Random tokens of a shared block (trace hash ids): the stream each key has had since
 * traces were first replayed, so random prompts stay as they were. */
#define UP_HASH_BLOCK_STREAM_BASE 0x48415348424C0000ull

static bool ends_with(const char *s, const char *suffix) {
  const size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

bool up_prompt_choice_parse(const char *text, up_prompt_choice *choice, char *err, size_t err_size) {
  memset(choice, 0, sizeof *choice);
  if (strlen(text) >= sizeof choice->paths) {
    snprintf(err, err_size, "'%.40s...' is longer than %d characters", text, UP_PROMPT_CHOICE_MAX - 1);
    return false;
  }
  if (strcmp(text, "random") == 0) {
    choice->kind = UP_PROMPTS_RANDOM;
  } else if (strcmp(text, "text") == 0) {
    choice->kind = UP_PROMPTS_TEXT;
  } else if (strncmp(text, "text:", 5) == 0) {
    const char *paths = text + 5;
    if (!paths[0] || paths[0] == ',' || ends_with(paths, ",") || strstr(paths, ",,")) {
      snprintf(err, err_size, "'%s': text:PATHS takes a comma-separated list of files, none empty", text);
      return false;
    }
    choice->kind = UP_PROMPTS_TEXT;
    snprintf(choice->paths, sizeof choice->paths, "%s", paths);
  } else if (ends_with(text, ".jsonl") && strlen(text) > 6) {
    choice->kind = UP_PROMPTS_FILE;
    snprintf(choice->paths, sizeof choice->paths, "%s", text);
  } else {
    snprintf(err, err_size, "'%s' is not random, text, text:PATHS or a FILE.jsonl", text);
    return false;
  }
  return true;
}

void up_prompt_choice_format(const up_prompt_choice *choice, char *buf, size_t size) {
  switch (choice->kind) {
    case UP_PROMPTS_DEFAULT: snprintf(buf, size, "default"); return;
    case UP_PROMPTS_RANDOM: snprintf(buf, size, "random"); return;
    case UP_PROMPTS_TEXT: snprintf(buf, size, choice->paths[0] ? "text:%s" : "text", choice->paths); return;
    case UP_PROMPTS_FILE: snprintf(buf, size, "%s", choice->paths); return;
  }
  snprintf(buf, size, "?");
}

void up_prompt_source_random(up_prompt_source *src, uint64_t seed, int32_t vocab) {
  memset(src, 0, sizeof *src);
  src->kind = UP_PROMPTS_RANDOM;
  src->seed = seed;
  src->vocab = vocab;
  snprintf(src->spec, sizeof src->spec, "random");
}

static bool open_text(up_prompt_source *src, const up_prompt_choice *choice, const up_prompt_tokenizer *tok,
                      char *err, size_t err_size) {
  if (!tok) {
    snprintf(err, err_size, "text prompts need the checkpoint's tokenizer, and this model has none (a preset has "
             "random weights and no vocabulary: use random, or token ids in a FILE.jsonl)");
    return false;
  }
  up_haystack_corpus *corpus = choice->paths[0] ? up_haystack_corpus_load_list(choice->paths, err, err_size)
                                                : up_haystack_corpus_load_default(err, err_size);
  if (!corpus) return false;
  src->text = up_text_prompts_create(corpus, tok, src->vocab, src->seed, err, err_size);
  up_haystack_corpus_free(corpus);
  return src->text != NULL;
}

bool up_prompt_source_open(up_prompt_source *src, const up_prompt_choice *choice, const up_prompt_tokenizer *tok,
                           uint64_t seed, int32_t vocab, char *err, size_t err_size) {
  UP_ASSERT(choice->kind != UP_PROMPTS_DEFAULT, "the default prompt source is resolved by the caller");
  up_prompt_source_random(src, seed, vocab);
  src->kind = choice->kind;
  up_prompt_choice_format(choice, src->spec, sizeof src->spec);
  bool ok = true;
  if (choice->kind == UP_PROMPTS_TEXT) ok = open_text(src, choice, tok, err, err_size);
  else if (choice->kind == UP_PROMPTS_FILE) ok = (src->file = up_prompt_file_read(choice->paths, tok, vocab, err,
                                                                                  err_size)) != NULL;
  if (!ok) up_prompt_source_close(src);
  return ok;
}

void up_prompt_source_close(up_prompt_source *src) {
  up_text_prompts_free(src->text);
  up_prompt_file_free(src->file);
  memset(src, 0, sizeof *src);
}

void up_prompt_source_fill(const void *ctx, int64_t id, int32_t *tokens, int32_t n) {
  const up_prompt_source *src = ctx;
  switch (src->kind) {
    case UP_PROMPTS_TEXT: up_text_prompts_fill(src->text, id, tokens, n); return;
    case UP_PROMPTS_FILE: up_prompt_file_fill(src->file, id, tokens, n); return;
    case UP_PROMPTS_RANDOM:
    case UP_PROMPTS_DEFAULT: break;
  }
  up_workload_random_prompt(src->seed, id, src->vocab, tokens, n);
}

void up_prompt_source_fill_block(const up_prompt_source *src, uint64_t key, int32_t *tokens, int32_t n) {
  UP_ASSERT(src->kind != UP_PROMPTS_FILE, "a prompt file has no shared blocks");
  if (src->kind == UP_PROMPTS_TEXT) {
    up_text_prompts_fill_block(src->text, key, tokens, n);
    return;
  }
  for (int32_t j = 0; j < n; ++j)
    tokens[j] = (int32_t)(up_rng_u64(src->seed, UP_HASH_BLOCK_STREAM_BASE + key, (uint64_t)j) % (uint64_t)src->vocab);
}
