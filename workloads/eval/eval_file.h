/* eval_file.h — reading external evaluation samples for --eval-file: JSON Lines files
 * of prompts with their expected answers, in one of two layouts, detected per file
 * from its first valid line.
 *
 *   ruler      RULER's generated data: "input" (the whole prompt text, no chat
 *              template of its own), "outputs" (the strings the answer must contain),
 *              and optionally "length" (tokens in RULER's tokenizer), "index",
 *              "answer_prefix" (the start of the assistant's answer), and any other
 *              key (length_w_model_temp, token_position_answer, ...), which is kept
 *              out of the prompt. Scored by string match (every answer contained).
 *   longbench  LongBench-like: "context", "input" (the question) and "answers" (the
 *              accepted answers), optionally "length", "dataset", "_id" and
 *              "all_classes". The user turn is the context, a blank line, then the
 *              question. Scored by exact match against any accepted answer.
 *
 * A line must be one JSON object with distinct keys and nothing after it, at most
 * UP_EVAL_FILE_MAX_LINE_BYTES long, without NUL bytes, of the file's layout, with the
 * layout's keys of the right types and at least one non-empty answer. Blank lines are
 * skipped; a UTF-8 byte order mark before the first line is too. Errors name the file
 * and the 1-based line; in lenient mode a bad line is skipped and counted instead.
 * This file reads and checks; rendering, tokenizing and scoring happen elsewhere. */
#ifndef UP_EVAL_FILE_H
#define UP_EVAL_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A RULER sample at 128K tokens takes about half a MiB; the cap keeps a file without
 * newlines (or a device) from filling memory. */
#define UP_EVAL_FILE_MAX_LINE_BYTES (64 << 20)

/* The longest task name: a longer file name is cut to it, a longer "dataset" refused. */
#define UP_EVAL_FILE_TASK_MAX 47

typedef enum up_eval_file_format {
  UP_EVAL_FILE_RULER = 1,
  UP_EVAL_FILE_LONGBENCH = 2,
} up_eval_file_format;

/* "ruler" or "longbench". */
const char *up_eval_file_format_name(up_eval_file_format format);

typedef struct up_eval_file_sample {
  char *user_text;     /* the user turn's content */
  char *answer_prefix; /* RULER's answer_prefix, "" when none */
  char **answers;      /* at least one, none empty */
  int32_t n_answers;
  char *task;          /* LongBench's "dataset" when given, else the file's name without directory and
                        * extension (for RULER's DIR/validation.jsonl: DIR), cut to UP_EVAL_FILE_TASK_MAX */
  int64_t line;        /* 1-based line in the file */
  int64_t file_length; /* the line's "length" (tokens in the data's own tokenizer), -1 when absent */
} up_eval_file_sample;

typedef struct up_eval_file {
  char *path;
  up_eval_file_format format;
  up_eval_file_sample *samples; /* file order */
  int32_t n_samples;
  int64_t lines_skipped; /* bad lines skipped in lenient mode */
} up_eval_file;

/* Read a whole file. NULL with "eval file FILE:LINE: what" (or "eval file FILE: what")
 * in err when the path is not a readable regular file, a line is bad (unless lenient)
 * or no sample is left. Free with up_eval_file_free. */
up_eval_file *up_eval_file_read(const char *path, bool lenient, char *err, size_t err_size);

void up_eval_file_free(up_eval_file *file);

#endif
