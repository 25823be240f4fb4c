/* prompt_file.h — prompts replayed from a JSONL file (--prompt-source FILE.jsonl): one
 * prompt per line, {"text": "..."} (tokenized by the checkpoint's tokenizer, control
 * tokens written in the text parsed as theirs, BOS first when the tokenizer puts one) or
 * {"ids": [...]} (token ids used verbatim, nothing added: exact cross-checks against
 * other engines). Strict: one object per line, the one key "text" or "ids", distinct
 * keys, no trailing text, ids inside the model's vocabulary; blank lines are skipped; a
 * UTF-8 byte order mark before the first line is ignored. Request id takes prompt
 * id mod n; a length asked for is met by cutting the prompt or repeating it (its BOS
 * once, then the rest over and over). Owns the file's prompts; not the tokenizer. */
#ifndef UP_PROMPT_FILE_H
#define UP_PROMPT_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "workloads/text_prompts.h"

/* A line longer than this is refused: a million-token prompt takes under 8 MiB as ids. */
#define UP_PROMPT_FILE_MAX_LINE_BYTES (16 << 20)

typedef struct up_prompt_file {
  int32_t n_prompts;
  int64_t *starts;   /* [n_prompts + 1]: prompt i is tokens[starts[i] .. starts[i + 1]) */
  int32_t *tokens;
  uint8_t *has_bos;  /* [n_prompts]: its first token is the BOS the tokenizer put there */
  int32_t longest;
} up_prompt_file;

/* Read and tokenize the file; tok may be NULL (a preset has no tokenizer: "text" lines
 * are then an error). NULL with "prompt file FILE:LINE: what" (or "prompt file FILE:
 * what") in err. */
up_prompt_file *up_prompt_file_read(const char *path, const up_prompt_tokenizer *tok, int32_t vocab, char *err,
                                    size_t err_size);
void up_prompt_file_free(up_prompt_file *file);

/* Tokens of request id's prompt as the file gives them. */
int32_t up_prompt_file_length(const up_prompt_file *file, int64_t id);

/* Request id's prompt cut or repeated to exactly n tokens. */
void up_prompt_file_fill(const up_prompt_file *file, int64_t id, int32_t *tokens, int32_t n);

#endif
