/* prompt_file.c — reading, checking and tokenizing a JSONL prompt file, and cutting or
 * repeating its prompts to a length (see prompt_file.h). */
#include "workloads/prompt_file.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "engine/checkpoint/json_input.h"
#include "workloads/jsonl_line.h"

typedef struct file_builder {
  up_prompt_file *file;
  int64_t n_tokens, cap_tokens;
  int32_t cap_prompts;
} file_builder;

static int32_t *reserve_tokens(file_builder *b, int64_t n) {
  if (b->n_tokens + n > b->cap_tokens) {
    int64_t cap = b->cap_tokens ? b->cap_tokens : 4096;
    while (cap < b->n_tokens + n) cap *= 2;
    int32_t *grown = realloc(b->file->tokens, sizeof *grown * (size_t)cap);
    if (!grown) UP_FATAL("out of memory for %lld prompt tokens", (long long)cap);
    b->file->tokens = grown;
    b->cap_tokens = cap;
  }
  return b->file->tokens + b->n_tokens;
}

static void add_prompt(file_builder *b, int64_t n_tokens, bool has_bos) {
  up_prompt_file *f = b->file;
  if (f->n_prompts + 1 >= b->cap_prompts) {
    b->cap_prompts = b->cap_prompts ? b->cap_prompts * 2 : 64;
    int64_t *starts = realloc(f->starts, sizeof *starts * (size_t)b->cap_prompts);
    uint8_t *bos = realloc(f->has_bos, (size_t)b->cap_prompts);
    if (!starts || !bos) UP_FATAL("out of memory for %d prompts", b->cap_prompts);
    f->starts = starts;
    f->has_bos = bos;
  }
  f->starts[f->n_prompts] = b->n_tokens;
  f->has_bos[f->n_prompts] = has_bos;
  f->n_prompts++;
  b->n_tokens += n_tokens;
  f->starts[f->n_prompts] = b->n_tokens;
  if (n_tokens > f->longest) f->longest = (int32_t)n_tokens;
}

static bool text_prompt(file_builder *b, const cJSON *text, const up_prompt_tokenizer *tok, int32_t vocab, char *why,
                        size_t why_size) {
  if (!cJSON_IsString(text)) return up_error(why, why_size, "\"text\" is not a string");
  if (!tok)
    return up_error(why, why_size, "a \"text\" prompt needs the checkpoint's tokenizer (--model PATH with one); "
                    "give token ids as {\"ids\": [...]} instead");
  const size_t len = strlen(text->valuestring);
  if (len + 2 > INT32_MAX) return up_error(why, why_size, "\"text\" is too long");
  const int32_t first = tok->bos >= 0;
  int32_t *out = reserve_tokens(b, (int64_t)len + 2 + first);
  char sub[256];
  const int32_t n = tok->encode(tok->ctx, text->valuestring, len, true, out + first, (int32_t)len + 2, sub, sizeof sub);
  if (n < 0) return up_error(why, why_size, "%s", sub);
  if (n == 0) return up_error(why, why_size, "\"text\" makes no token");
  if (n > (int32_t)len + 2) return up_error(why, why_size, "%s made more tokens than bytes", tok->name);
  if (first) out[0] = tok->bos;
  for (int32_t i = 0; i < n + first; ++i)
    if (out[i] < 0 || out[i] >= vocab)
      return up_error(why, why_size, "%s gives token %d, outside the model's vocabulary of %d ids", tok->name,
                      (int)out[i], (int)vocab);
  add_prompt(b, n + first, first);
  return true;
}

static bool ids_prompt(file_builder *b, const cJSON *ids, int32_t vocab, char *why, size_t why_size) {
  if (!cJSON_IsArray(ids)) return up_error(why, why_size, "\"ids\" is not an array of token ids");
  const int n = cJSON_GetArraySize(ids);
  if (n == 0) return up_error(why, why_size, "\"ids\" is empty (a prompt needs a token)");
  int32_t *out = reserve_tokens(b, n);
  int32_t k = 0;
  for (const cJSON *id = ids->child; id; id = id->next, ++k) {
    int64_t v = 0;
    if (!cJSON_IsNumber(id) || !up_json_integer(id, -(int64_t)UP_JSON_MAX_EXACT_INTEGER, (int64_t)UP_JSON_MAX_EXACT_INTEGER, &v))
      return up_error(why, why_size, "\"ids\"[%d] is not an integer", (int)k);
    if (v < 0 || v >= vocab)
      return up_error(why, why_size, "\"ids\"[%d] = %lld is outside the model's vocabulary of %d ids", (int)k,
                      (long long)v, (int)vocab);
    out[k] = (int32_t)v;
  }
  add_prompt(b, n, false);
  return true;
}

static bool parse_line(file_builder *b, const char *line, size_t len, const up_prompt_tokenizer *tok, int32_t vocab,
                       char *why, size_t why_size) {
  cJSON *obj = up_jsonl_object(line, len, why, why_size);
  if (!obj) return false;
  const cJSON *text = NULL, *ids = NULL;
  bool ok = true;
  for (const cJSON *item = obj->child; item && ok; item = item->next) {
    if (strcmp(item->string, "text") == 0) text = item;
    else if (strcmp(item->string, "ids") == 0) ids = item;
    else ok = up_error(why, why_size, "unknown key '%.60s' (a line holds \"text\" or \"ids\")", item->string);
  }
  if (ok && text && ids) ok = up_error(why, why_size, "both \"text\" and \"ids\" (give one)");
  else if (ok && !text && !ids) ok = up_error(why, why_size, "no \"text\" or \"ids\" key");
  else if (ok) ok = text ? text_prompt(b, text, tok, vocab, why, why_size) : ids_prompt(b, ids, vocab, why, why_size);
  cJSON_Delete(obj);
  return ok;
}

static bool is_blank(const char *s, size_t len) {
  for (size_t i = 0; i < len; ++i)
    if (!isspace((unsigned char)s[i])) return false;
  return true;
}

up_prompt_file *up_prompt_file_read(const char *path, const up_prompt_tokenizer *tok, int32_t vocab, char *err,
                                    size_t err_size) {
  FILE *f = up_open_regular_file(path, "prompt file", err, err_size);
  if (!f) return NULL;
  file_builder b = {.file = up_calloc_or_die(1, sizeof(up_prompt_file), "prompt file")};
  char *buf = NULL;
  size_t buf_cap = 0;
  size_t len = 0;
  up_line_status status;
  int64_t line_no = 0;
  bool ok = true;
  while (ok && (status = up_read_bounded_line(f, &buf, &buf_cap, UP_PROMPT_FILE_MAX_LINE_BYTES, &len)) != UP_LINE_END_OF_FILE) {
    ++line_no;
    char *line = buf;
    if (line_no == 1 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) line += 3, len -= 3;
    while (len > 0 && line[len - 1] == '\r') line[--len] = '\0';
    char why[512] = "";
    if (status == UP_LINE_TOO_LONG)
      snprintf(why, sizeof why, "line longer than %d bytes", UP_PROMPT_FILE_MAX_LINE_BYTES);
    else if (memchr(line, '\0', len))
      snprintf(why, sizeof why, "contains a NUL byte (not a text line)");
    else if (is_blank(line, len) || parse_line(&b, line, len, tok, vocab, why, sizeof why))
      continue;
    snprintf(err, err_size, "prompt file %s:%lld: %s", path, (long long)line_no, why);
    ok = false;
  }
  const bool read_error = ferror(f);
  free(buf);
  fclose(f);
  if (ok && read_error) ok = up_error(err, err_size, "prompt file %s: read error after line %lld", path,
                                      (long long)line_no);
  if (ok && b.file->n_prompts == 0) ok = up_error(err, err_size, "prompt file %s: no prompt lines", path);
  if (!ok) {
    up_prompt_file_free(b.file);
    return NULL;
  }
  return b.file;
}

void up_prompt_file_free(up_prompt_file *file) {
  if (!file) return;
  free(file->starts);
  free(file->tokens);
  free(file->has_bos);
  free(file);
}

static int32_t prompt_index(const up_prompt_file *file, int64_t id) {
  const int64_t n = file->n_prompts;
  return (int32_t)(((id % n) + n) % n);
}

int32_t up_prompt_file_length(const up_prompt_file *file, int64_t id) {
  const int32_t i = prompt_index(file, id);
  return (int32_t)(file->starts[i + 1] - file->starts[i]);
}

void up_prompt_file_fill(const up_prompt_file *file, int64_t id, int32_t *tokens, int32_t n) {
  const int32_t i = prompt_index(file, id);
  const int32_t *p = file->tokens + file->starts[i];
  const int32_t len = (int32_t)(file->starts[i + 1] - file->starts[i]);
  const int32_t lead = file->has_bos[i] && len > 1 ? 1 : 0; /* BOS once; the rest repeats */
  for (int32_t k = 0; k < n; ++k) tokens[k] = k < len ? p[k] : p[lead + (k - lead) % (len - lead)];
}
