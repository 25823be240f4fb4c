/* eval_tasks.h — RULER-style synthetic long-context tasks for the fidelity evaluation
 * (uniprefill-bench --eval TASKS): their names, and a generator that builds one sample
 * from (task, seed, sample index) sized to a prompt-token target.
 *
 * Kinds (CLI names):
 *   niah_single     one needle "One of the special magic numbers for KEY is: NNNNNNN."
 *                   in the haystack prose; the question asks for KEY's number.
 *   niah_multikey   the asked-for needle among 3 distractor needles with other keys.
 *   niah_multivalue 4 needles with the same key and different numbers; all are asked for.
 *   kv_retrieval    the context is a JSON object of uuid keys and uuid values (no prose);
 *                   the question asks for one key's value.
 *   vt              variable tracking: "VAR ABCDE = 12345." then 4 hops "VAR FGHIJ = VAR
 *                   ABCDE." spread in order through the prose; the question asks for every
 *                   variable that holds 12345 (all 5 are the answers).
 * Aliases: "niah" = the three niah kinds, "all" = every kind.
 *
 * Sizing. The prompt the model reads is the chat rendering of the user text, followed
 * by the sample's answer prefix (RULER starts the assistant's answer this way). The
 * generator counts the fixed parts (template, instruction, question, answer prefix)
 * once with an empty context and each needle once, then fills the context with
 * haystack units (prose sentences, or JSON pairs) whose token counts add up to the rest
 * of the target. Sentence counts are cached per generator, so each corpus sentence is
 * counted at most once however many samples are drawn. Token counts of concatenations
 * are only approximately additive, so the whole prompt is then counted exactly and the
 * unit count corrected by the measured ratio of exact to per-piece counts until the
 * largest count that fits is found: one exact count when counts add up, two to four
 * when they do not. The result never exceeds the target. Needles sit between units at
 * their depth: the share of the context's tokens (by the per-piece counts) before them. */
#ifndef UP_EVAL_TASKS_H
#define UP_EVAL_TASKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "workloads/eval/chat_template.h"
#include "workloads/eval/haystack_corpus.h"

typedef enum up_eval_task_kind {
  UP_EVAL_NIAH_SINGLE = 0,
  UP_EVAL_NIAH_MULTIKEY = 1,
  UP_EVAL_NIAH_MULTIVALUE = 2,
  UP_EVAL_KV_RETRIEVAL = 3,
  UP_EVAL_VT = 4,
  UP_EVAL_TASK_COUNT = 5,
} up_eval_task_kind;

/* The CLI name, e.g. "niah_single"; "unknown" when out of range. */
const char *up_eval_task_name(up_eval_task_kind kind);

/* A comma-separated list of task names and aliases ("niah", "all") as a bit set (bit k
 * for kind k; duplicates are harmless). False with a message listing the names on an
 * unknown or empty entry. */
bool up_eval_tasks_parse(const char *list, uint32_t *mask, char *err, size_t err_size);

/* Tokens of text[0..len) as the model's tokenizer counts them (special-token text
 * included), or negative on failure. The driver passes the real tokenizer. */
typedef int32_t (*up_token_counter)(void *ctx, const char *text, size_t len);

typedef struct up_eval_generator up_eval_generator;

/* A generator over a loaded corpus, a chat template and a counter; corpus and chat must
 * outlive it. Not thread-safe (it caches sentence counts). */
up_eval_generator *up_eval_generator_create(const up_haystack_corpus *corpus, const up_chat_template *chat,
                                            up_token_counter count_tokens, void *count_ctx);
void up_eval_generator_free(up_eval_generator *gen);

typedef struct up_eval_request {
  up_eval_task_kind kind;
  uint64_t seed;
  uint64_t sample_index;  /* samples of one (kind, seed) differ by index; below 2^56 */
  int32_t target_tokens;  /* bound on the whole prompt's tokens */
  double depth;           /* the asked-for needle's depth in [0, 1]; negative: drawn from the seed */
} up_eval_request;

#define UP_EVAL_MAX_NEEDLES 8 /* needles one sample holds at most */

typedef struct up_eval_needle {
  size_t offset; /* bytes into user_text */
  size_t length;
  double depth;  /* share of the context's tokens before it, in [0, 1] */
  size_t prompt_offset; /* bytes into prompt (the chat rendering puts user_text there verbatim) */
  bool carries_answer;  /* the answer depends on it; false for niah_multikey's distractors */
} up_eval_needle;

typedef struct up_eval_sample {
  up_eval_task_kind kind;
  char *user_text;      /* instruction, context and question: the user turn's content */
  char *answer_prefix;  /* the start of the assistant's answer, already in prompt */
  char *prompt;         /* chat rendering of user_text followed by answer_prefix */
  size_t context_offset; /* the context's bytes within user_text */
  size_t context_length;
  char **answers;       /* every string the answer must contain */
  int32_t n_answers;
  int32_t target_tokens;
  int32_t prompt_tokens; /* the counter's exact count of prompt, <= target_tokens */
  double depth;          /* the asked-for needle's depth (vt: the value's assignment) */
  up_eval_needle *needles; /* every inserted needle, in context order */
  int32_t n_needles;
} up_eval_sample;

/* Build one sample. Deterministic in (corpus, chat, counter, request): the same request
 * gives the same bytes. False with a message when the target cannot hold the task's
 * fixed text, the depth is out of range, or the counter fails. */
bool up_eval_generate(up_eval_generator *gen, const up_eval_request *req, up_eval_sample *sample, char *err,
                      size_t err_size);

void up_eval_sample_free(up_eval_sample *sample);

#endif
