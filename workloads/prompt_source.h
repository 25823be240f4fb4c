/* prompt_source.h — where every request's prompt tokens come from (--prompt-source):
 *   random        seeded random ids from (seed, request id) (closed_loop.h)
 *   text[:PATHS]  real prose at the exact length (text_prompts.h): the haystack corpus,
 *                 or the given files cleaned the same way
 *   FILE.jsonl    prompts replayed from a file (prompt_file.h)
 * Parsing the choice touches no file; opening the source loads and tokenizes once, on
 * every rank alike, and from then on a prompt depends only on (source, seed, request id,
 * length), so any rank layout gets the same prompts. Owns the choice, the dispatch and
 * the trace's shared prefix blocks; not the tokenizer (the launcher passes it). */
#ifndef UP_PROMPT_SOURCE_H
#define UP_PROMPT_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "workloads/prompt_file.h"
#include "workloads/text_prompts.h"

typedef enum up_prompt_kind {
  UP_PROMPTS_DEFAULT = 0, /* not given: text with a checkpoint that has a tokenizer, random otherwise */
  UP_PROMPTS_RANDOM = 1,
  UP_PROMPTS_TEXT = 2,
  UP_PROMPTS_FILE = 3,
} up_prompt_kind;

#define UP_PROMPT_CHOICE_MAX 1024

typedef struct up_prompt_choice {
  up_prompt_kind kind;
  char paths[UP_PROMPT_CHOICE_MAX]; /* text: comma-separated files, "" = the haystack corpus; file: its path */
} up_prompt_choice;

/* "random", "text", "text:a.txt,b.gz" or a path ending in ".jsonl". False with a
 * message (without the flag's name) otherwise. */
bool up_prompt_choice_parse(const char *text, up_prompt_choice *choice, char *err, size_t err_size);

/* The choice as --prompt-source spells it (so the run file's value reproduces it). */
void up_prompt_choice_format(const up_prompt_choice *choice, char *buf, size_t size);

typedef struct up_prompt_source {
  up_prompt_kind kind; /* RANDOM, TEXT or FILE */
  uint64_t seed;
  int32_t vocab;
  up_text_prompts *text;
  up_prompt_file *file;
  char spec[UP_PROMPT_CHOICE_MAX + 16]; /* up_prompt_choice_format of what it was opened with */
} up_prompt_source;

/* Random ids: needs nothing else. */
void up_prompt_source_random(up_prompt_source *src, uint64_t seed, int32_t vocab);

/* Open a RANDOM, TEXT or FILE choice. tok may be NULL (no tokenizer): TEXT is then an
 * error, and so is any "text" line of a file. False with a message naming the file. */
bool up_prompt_source_open(up_prompt_source *src, const up_prompt_choice *choice, const up_prompt_tokenizer *tok,
                           uint64_t seed, int32_t vocab, char *err, size_t err_size);
void up_prompt_source_close(up_prompt_source *src);

/* Request id's prompt of exactly n tokens (an up_prompt_fill_fn over the source). */
void up_prompt_source_fill(const void *src, int64_t id, int32_t *tokens, int32_t n);

/* n tokens shared by every request naming `key` (a trace's hash id); RANDOM and TEXT. */
void up_prompt_source_fill_block(const up_prompt_source *src, uint64_t key, int32_t *tokens, int32_t n);

#endif
