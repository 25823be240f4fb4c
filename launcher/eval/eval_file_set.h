/* eval_file_set.h — the --eval-file samples of one run, ready for the evaluation:
 * every file read (workloads/eval/eval_file.h), each sample rendered in the chat
 * template and tokenized exactly as --eval's generated prompts are, then placed in a
 * context bucket. The evaluation (eval_mode.c) runs them through the same generation,
 * scoring and report path as its generated tasks; this file only prepares them.
 *
 * Buckets. With contexts (--ctx, or --eval's defaults when generated tasks run too), a
 * sample goes to the smallest context that holds its prompt plus max_new answer tokens;
 * a sample longer than every context is skipped and counted. Without contexts every
 * sample runs at its own length, in one group of ctx 0. A sample whose prompt plus
 * max_new exceeds the model's context is skipped and counted either way. */
#ifndef UP_EVAL_FILE_SET_H
#define UP_EVAL_FILE_SET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/tokenizer/tokenizer.h"
#include "workloads/eval/chat_template.h"
#include "workloads/eval/eval_file.h"
#include "workloads/eval/eval_tasks.h"

#define UP_EVAL_MAX_FILES 16

typedef struct up_eval_file_prompt {
  up_eval_sample sample; /* user_text, answer_prefix, prompt, answers, prompt_tokens; depth NaN, no needles */
  const char *task;      /* the sample's task name (owned by its file) */
  const char *source_file;
  int32_t source_line;
  bool exact;            /* scored by exact match (LongBench-like), else by string match (RULER) */
  int32_t *tokens;
  int32_t n_tokens;
  int32_t ctx;           /* its bucket; 0: its own length; -1: skipped */
  int32_t index;         /* among the kept samples of its task and bucket, in file order */
} up_eval_file_prompt;

typedef struct up_eval_file_set {
  up_eval_file *files[UP_EVAL_MAX_FILES];
  int32_t n_files;
  up_eval_file_prompt *prompts; /* every file's samples, files in the order given */
  int32_t n_prompts;
  int64_t lines_skipped;        /* malformed lines skipped (lenient) */
  int32_t over_buckets;         /* longer than every context */
  int32_t over_model;           /* longer than the model's context */
  int32_t longest_kept;         /* tokens of the longest prompt kept */
} up_eval_file_set;

/* How samples become prompts: the same rules as the generated tasks'. */
typedef struct up_eval_file_setup {
  const up_tokenizer *tok;
  bool add_bos;
  const up_chat_template *chat;
  const int32_t *ctx; /* ascending or not; n_ctx 0: samples at their own lengths */
  int32_t n_ctx;
  int32_t max_new;
  int32_t model_context;
} up_eval_file_setup;

/* Read a comma-separated list of files (at most UP_EVAL_MAX_FILES) and prepare their
 * samples. NULL with a message on a bad file or line (see up_eval_file_read), a
 * tokenizer failure, or when no sample fits. */
up_eval_file_set *up_eval_file_set_open(const char *list, bool lenient, const up_eval_file_setup *setup, char *err,
                                        size_t err_size);

/* Distinct task names of the kept samples in bucket ctx, in order of first appearance;
 * returns the count (at most cap). */
int32_t up_eval_file_set_tasks(const up_eval_file_set *set, int32_t ctx, const char **names, int32_t cap);

/* A one-line account of what was read and skipped, for the run's notes. */
void up_eval_file_set_describe(const up_eval_file_set *set, char *out, size_t out_size);

void up_eval_file_set_free(up_eval_file_set *set);

#endif
