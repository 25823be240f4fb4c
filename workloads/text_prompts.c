/* text_prompts.c — the tokenized prose stream and its per-request windows (see
 * text_prompts.h). */
#include "workloads/text_prompts.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/fatal.h"
#include "core/rng.h"
#include "workloads/eval/text_buffer.h"

/* Streams of the offsets: distinct from the random prompts' and the weights'. */
#define UP_TEXT_OFFSET_STREAM 0x54455854424153ull  /* "TEXTBAS" */
#define UP_TEXT_BLOCK_STREAM 0x54455854424C4Bull   /* "TEXTBLK" */

static uint64_t gcd_u64(uint64_t a, uint64_t b) {
  while (b) {
    const uint64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/* Near the golden section of the length, so consecutive ids start far apart; coprime to
 * it, so they start at distinct tokens. */
static uint64_t coprime_stride(uint64_t length) {
  if (length <= 2) return 1;
  uint64_t stride = (uint64_t)((double)length * 0.6180339887498949);
  if (stride == 0) stride = 1;
  while (gcd_u64(stride, length) != 1) stride++;
  return stride % length;
}

up_text_prompts *up_text_prompts_create(const up_haystack_corpus *corpus, const up_prompt_tokenizer *tok,
                                        int32_t vocab, uint64_t seed, char *err, size_t err_size) {
  up_text_buffer text = {0};
  for (int32_t i = 0; i < corpus->n_sentences; ++i) {
    if (i) up_text_buffer_append(&text, " ", 1);
    up_text_buffer_append(&text, up_haystack_sentence(corpus, i), corpus->lengths[i]);
  }
  /* No tokenizer here makes more tokens than bytes plus a prefix mark. */
  const size_t cap = text.len + 2;
  if (cap > INT32_MAX) {
    snprintf(err, err_size, "prompt text: %zu bytes of prose is more than one tokenizer call takes", text.len);
    up_text_buffer_free(&text);
    return NULL;
  }
  int32_t *tokens = up_malloc_or_die(sizeof *tokens * cap, "text prompt tokens");
  const int32_t n = tok->encode(tok->ctx, text.data ? text.data : "", text.len, false, tokens, (int32_t)cap, err,
                                err_size);
  up_text_buffer_free(&text);
  if (n <= 0 || (size_t)n > cap) {
    if (n == 0) snprintf(err, err_size, "prompt text: %s makes no token of the prose", tok->name);
    else if (n > 0) snprintf(err, err_size, "prompt text: %s made more tokens than bytes", tok->name);
    free(tokens);
    return NULL;
  }
  for (int32_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= vocab) {
      snprintf(err, err_size, "prompt text: %s gives token %d, outside the model's vocabulary of %d ids", tok->name,
               (int)tokens[i], (int)vocab);
      free(tokens);
      return NULL;
    }
  if (tok->bos >= vocab) {
    snprintf(err, err_size, "prompt text: %s's BOS %d is outside the model's vocabulary of %d ids", tok->name,
             (int)tok->bos, (int)vocab);
    free(tokens);
    return NULL;
  }
  up_text_prompts *tp = up_calloc_or_die(1, sizeof *tp, "text prompts");
  int32_t *fitted = realloc(tokens, sizeof *tokens * (size_t)n);
  tp->tokens = fitted ? fitted : tokens;
  tp->n_tokens = n;
  tp->bos = tok->bos;
  tp->seed = seed;
  tp->base = up_rng_u64(seed, UP_TEXT_OFFSET_STREAM, 0) % (uint64_t)n;
  tp->stride = coprime_stride((uint64_t)n);
  return tp;
}

void up_text_prompts_free(up_text_prompts *tp) {
  if (!tp) return;
  free(tp->tokens);
  free(tp);
}

uint64_t up_text_prompts_offset(const up_text_prompts *tp, int64_t id) {
  const int64_t len = tp->n_tokens;
  const uint64_t index = (uint64_t)(((id % len) + len) % len); /* < 2^31, so the product fits */
  return (tp->base + index * tp->stride) % (uint64_t)len;
}

static void copy_cyclic(const up_text_prompts *tp, uint64_t offset, int32_t *tokens, int32_t n) {
  int32_t done = 0;
  while (done < n) {
    const int64_t run = tp->n_tokens - (int64_t)offset < n - done ? tp->n_tokens - (int64_t)offset : n - done;
    for (int64_t i = 0; i < run; ++i) tokens[done + i] = tp->tokens[offset + (uint64_t)i];
    done += (int32_t)run;
    offset = 0;
  }
}

void up_text_prompts_fill(const up_text_prompts *tp, int64_t id, int32_t *tokens, int32_t n) {
  if (n <= 0) return;
  int32_t first = 0;
  if (tp->bos >= 0) tokens[first++] = tp->bos;
  copy_cyclic(tp, up_text_prompts_offset(tp, id), tokens + first, n - first);
}

void up_text_prompts_fill_block(const up_text_prompts *tp, uint64_t key, int32_t *tokens, int32_t n) {
  if (n <= 0) return;
  copy_cyclic(tp, up_rng_u64(tp->seed, UP_TEXT_BLOCK_STREAM, key) % (uint64_t)tp->n_tokens, tokens, n);
}
