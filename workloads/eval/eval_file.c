/* eval_file.c — reading --eval-file samples (see eval_file.h). Owns the line reader,
 * the layout detection and the per-layout key checks; it knows nothing of tokenizers,
 * chat templates or scoring. */
#include "workloads/eval/eval_file.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "core/file_kind.h"
#include "engine/checkpoint/json_input.h"
#include "workloads/jsonl_line.h"

const char *up_eval_file_format_name(up_eval_file_format format) {
  switch (format) {
    case UP_EVAL_FILE_RULER: return "ruler";
    case UP_EVAL_FILE_LONGBENCH: return "longbench";
  }
  return "?";
}

typedef struct line_problem {
  char text[320];
} line_problem;

/* Every check ends with `return problem(p, "...")`: the message, and false. */
#define problem(p, ...) up_error((p)->text, sizeof (p)->text, __VA_ARGS__)

static char *copy_string(const char *s) {
  const size_t n = strlen(s);
  char *c = up_malloc_or_die(n + 1, "eval file text");
  memcpy(c, s, n + 1);
  return c;
}

/* The task name of a file's samples: its name without directory and extension, or for
 * RULER's output name, validation.jsonl, which every task shares, the directory's name
 * (RULER writes <task>/validation.jsonl). */
static char *file_stem(const char *path) {
  const char *slash = strrchr(path, '/');
  char *stem = copy_string(slash ? slash + 1 : path);
  char *dot = strrchr(stem, '.');
  if (dot && dot != stem) *dot = '\0';
  if (strcmp(stem, "validation") == 0 && slash && slash != path) {
    const char *dir_end = slash, *dir = slash;
    while (dir > path && dir[-1] != '/') dir--;
    if (dir_end > dir && !(dir_end - dir == 1 && dir[0] == '.')) {
      free(stem);
      stem = up_malloc_or_die((size_t)(dir_end - dir) + 1, "eval file task name");
      memcpy(stem, dir, (size_t)(dir_end - dir));
      stem[dir_end - dir] = '\0';
    }
  }
  if (strlen(stem) > UP_EVAL_FILE_TASK_MAX) stem[UP_EVAL_FILE_TASK_MAX] = '\0';
  return stem;
}

/* ---- keys --------------------------------------------------------------------------- */

static bool need_string(const cJSON *obj, const char *key, bool required, const char **out, line_problem *p) {
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
  *out = NULL;
  if (!item) return required ? problem(p, "missing key \"%s\"", key) : true;
  if (!cJSON_IsString(item)) return problem(p, "\"%s\" must be a string", key);
  *out = item->valuestring;
  return true;
}

static bool optional_integer(const cJSON *obj, const char *key, int64_t *out, line_problem *p) {
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
  *out = -1;
  if (!item) return true;
  if (!up_json_integer(item, 0, (int64_t)UP_JSON_MAX_EXACT_INTEGER, out))
    return problem(p, "\"%s\" must be a non-negative integer", key);
  return true;
}

/* A list of strings; with answers, at least one and none empty (an empty answer would be
 * found in every output, or never, depending on the rule: either way meaningless). */
static bool check_string_list(const cJSON *item, const char *key, bool answers, line_problem *p) {
  if (!cJSON_IsArray(item)) return problem(p, "\"%s\" must be a list of strings", key);
  if (answers && cJSON_GetArraySize(item) == 0) return problem(p, "\"%s\" is empty: nothing to score against", key);
  int i = 0;
  const cJSON *e = NULL;
  cJSON_ArrayForEach(e, item) {
    if (!cJSON_IsString(e)) return problem(p, "\"%s\"[%d] must be a string", key, i);
    if (answers && e->valuestring[0] == '\0') return problem(p, "\"%s\"[%d] is an empty answer", key, i);
    i++;
  }
  return true;
}

static void take_answers(const cJSON *list, up_eval_file_sample *s) {
  s->n_answers = cJSON_GetArraySize(list);
  s->answers = up_calloc_or_die((size_t)s->n_answers, sizeof *s->answers, "eval file answers");
  int i = 0;
  const cJSON *e = NULL;
  cJSON_ArrayForEach(e, list) s->answers[i++] = copy_string(e->valuestring);
}

/* A line's layout from its keys: "outputs" marks RULER, "answers" LongBench. */
static bool line_format(const cJSON *obj, up_eval_file_format *format, line_problem *p) {
  const bool ruler = cJSON_HasObjectItem(obj, "outputs"), longbench = cJSON_HasObjectItem(obj, "answers");
  if (ruler && longbench)
    return problem(p, "has both \"outputs\" (RULER) and \"answers\" (LongBench-like): which layout is it?");
  if (!ruler && !longbench)
    return problem(p, "has neither \"outputs\" (RULER layout) nor \"answers\" (LongBench-like layout)");
  *format = ruler ? UP_EVAL_FILE_RULER : UP_EVAL_FILE_LONGBENCH;
  return true;
}

static bool ruler_sample(const cJSON *obj, up_eval_file_sample *s, line_problem *p) {
  const char *input = NULL, *prefix = NULL;
  int64_t index = 0;
  const cJSON *outputs = cJSON_GetObjectItemCaseSensitive(obj, "outputs");
  if (!need_string(obj, "input", true, &input, p) || !check_string_list(outputs, "outputs", true, p) ||
      !need_string(obj, "answer_prefix", false, &prefix, p) || !optional_integer(obj, "length", &s->file_length, p) ||
      !optional_integer(obj, "index", &index, p) ||
      !optional_integer(obj, "length_w_model_temp", &index, p) ||
      !optional_integer(obj, "token_position_answer", &index, p))
    return false;
  if (input[0] == '\0') return problem(p, "\"input\" is empty: there is no prompt");
  s->user_text = copy_string(input);
  s->answer_prefix = copy_string(prefix ? prefix : "");
  take_answers(outputs, s);
  return true;
}

static bool longbench_sample(const cJSON *obj, up_eval_file_sample *s, const char **dataset, line_problem *p) {
  const char *context = NULL, *input = NULL, *id = NULL;
  const cJSON *answers = cJSON_GetObjectItemCaseSensitive(obj, "answers");
  const cJSON *classes = cJSON_GetObjectItemCaseSensitive(obj, "all_classes");
  if (!need_string(obj, "context", true, &context, p) || !need_string(obj, "input", true, &input, p) ||
      !check_string_list(answers, "answers", true, p) || !optional_integer(obj, "length", &s->file_length, p) ||
      !need_string(obj, "dataset", false, dataset, p) || !need_string(obj, "_id", false, &id, p))
    return false;
  if (classes && !cJSON_IsNull(classes) && !check_string_list(classes, "all_classes", false, p)) return false;
  if (*dataset && ((*dataset)[0] == '\0' || strlen(*dataset) > UP_EVAL_FILE_TASK_MAX))
    return problem(p, "\"dataset\" must name the task in 1 to %d characters", UP_EVAL_FILE_TASK_MAX);
  if (context[0] == '\0' && input[0] == '\0') return problem(p, "\"context\" and \"input\" are both empty");
  /* The question follows the context, as LongBench's prompts put it. */
  const size_t nc = strlen(context), ni = strlen(input);
  s->user_text = up_malloc_or_die(nc + ni + 3, "eval file prompt");
  memcpy(s->user_text, context, nc);
  size_t at = nc;
  if (nc && ni) memcpy(s->user_text + at, "\n\n", 2), at += 2;
  memcpy(s->user_text + at, input, ni + 1);
  s->answer_prefix = copy_string("");
  take_answers(answers, s);
  return true;
}

static void sample_free(up_eval_file_sample *s) {
  free(s->user_text);
  free(s->answer_prefix);
  for (int32_t i = 0; i < s->n_answers; ++i) free(s->answers[i]);
  free(s->answers);
  free(s->task);
  memset(s, 0, sizeof *s);
}

/* One line into a sample of the file's layout (set by the first valid line). */
static bool parse_line(const char *line, size_t len, up_eval_file *file, int64_t *format_line, int64_t line_no,
                       const char *stem, up_eval_file_sample *s, line_problem *p) {
  if (memchr(line, '\0', len)) return problem(p, "contains a NUL byte (not a text line)");
  const char *end = NULL;
  cJSON *obj = cJSON_ParseWithLengthOpts(line, len, &end, false);
  if (!obj) return problem(p, "not valid JSON");
  while (end < line + len && isspace((unsigned char)*end)) end++;
  const char *dup = NULL, *dataset = NULL;
  up_eval_file_format format = UP_EVAL_FILE_RULER;
  bool ok;
  memset(s, 0, sizeof *s);
  s->line = line_no;
  if (!cJSON_IsObject(obj)) ok = problem(p, "not a JSON object");
  else if (end < line + len)
    ok = problem(p, "text after the JSON object at column %zu: '%.20s' (one object per line)",
                 (size_t)(end - line) + 1, end);
  else if ((dup = up_json_duplicate_key_anywhere(obj)) != NULL) ok = problem(p, "duplicate key '%.60s'", dup);
  else if (!line_format(obj, &format, p)) ok = false;
  else if (file->format && format != file->format)
    ok = problem(p, "a %s sample in a %s file (layout set by line %lld): one layout per file",
                 up_eval_file_format_name(format), up_eval_file_format_name(file->format), (long long)*format_line);
  else ok = format == UP_EVAL_FILE_RULER ? ruler_sample(obj, s, p) : longbench_sample(obj, s, &dataset, p);
  if (ok) {
    s->task = copy_string(dataset ? dataset : stem);
    if (!file->format) file->format = format, *format_line = line_no;
  } else {
    sample_free(s);
  }
  cJSON_Delete(obj);
  return ok;
}

/* ---- the file ----------------------------------------------------------------------- */

static bool blank(const char *s, size_t len) {
  for (size_t i = 0; i < len; ++i)
    if (!isspace((unsigned char)s[i])) return false;
  return true;
}

up_eval_file *up_eval_file_read(const char *path, bool lenient, char *err, size_t err_size) {
  FILE *f = up_open_regular_file(path, "eval file", err, err_size);
  if (!f) return NULL;
  up_eval_file *file = up_calloc_or_die(1, sizeof *file, "eval file");
  file->path = copy_string(path);
  char *stem = file_stem(path);
  size_t cap = 0, len = 0;
  char *buf = NULL;
  int32_t cap_samples = 0;
  int64_t line_no = 0, format_line = 0;
  bool ok = true, any_content = false;
  up_line_status status;
  while (ok && (status = up_read_bounded_line(f, &buf, &cap, UP_EVAL_FILE_MAX_LINE_BYTES, &len)) != UP_LINE_END_OF_FILE) {
    char *line = buf;
    ++line_no;
    if (line_no == 1 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) line += 3, len -= 3;
    while (len > 0 && line[len - 1] == '\r') line[--len] = '\0';
    if (status == UP_LINE_OK && blank(line, len)) continue;
    any_content = true;
    line_problem p = {{0}};
    up_eval_file_sample s;
    bool good;
    if (status == UP_LINE_TOO_LONG) good = problem(&p, "line longer than %d bytes", UP_EVAL_FILE_MAX_LINE_BYTES);
    else good = parse_line(line, len, file, &format_line, line_no, stem, &s, &p);
    if (good) {
      if (file->n_samples == cap_samples) {
        if (cap_samples >= INT32_MAX / 4) UP_FATAL("eval file %s has too many samples", path);
        cap_samples = cap_samples ? 2 * cap_samples : 64;
        file->samples = realloc(file->samples, sizeof *file->samples * (size_t)cap_samples);
        if (!file->samples) UP_FATAL("out of host memory for eval file samples");
      }
      file->samples[file->n_samples++] = s;
    } else if (lenient) {
      file->lines_skipped++;
    } else {
      up_error(err, err_size, "eval file %s:%lld: %s", path, (long long)line_no, p.text);
      ok = false;
    }
  }
  if (ok && ferror(f)) {
    up_error(err, err_size, "eval file %s: read error after line %lld", path, (long long)line_no);
    ok = false;
  }
  fclose(f);
  free(buf);
  free(stem);
  if (ok && file->n_samples == 0) {
    if (!any_content) up_error(err, err_size, "eval file %s: empty file", path);
    else up_error(err, err_size, "eval file %s: no valid sample (%lld bad lines skipped)", path,
                  (long long)file->lines_skipped);
    ok = false;
  }
  if (!ok) {
    up_eval_file_free(file);
    return NULL;
  }
  return file;
}

void up_eval_file_free(up_eval_file *file) {
  if (!file) return;
  for (int32_t i = 0; i < file->n_samples; ++i) sample_free(&file->samples[i]);
  free(file->samples);
  free(file->path);
  free(file);
}
