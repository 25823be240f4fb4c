/* jsonl_line.c — bounded line reading and strict JSONL objects (see jsonl_line.h). */
#include "workloads/jsonl_line.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "core/file_kind.h"
#include "engine/checkpoint/json_input.h"

/* Checked before opening (opening a FIFO would block), then again on the open file. */
FILE *up_open_regular_file(const char *what, const char *path, char *err, size_t err_size) {
  struct stat st;
  if (stat(path, &st) != 0) {
    snprintf(err, err_size, "%s %s: cannot open: %s", what, path, strerror(errno));
    return NULL;
  }
  if (!S_ISREG(st.st_mode)) {
    snprintf(err, err_size, "%s %s: is %s, not a regular file", what, path, up_file_kind(st.st_mode));
    return NULL;
  }
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, err_size, "%s %s: cannot open: %s", what, path, strerror(errno));
    return NULL;
  }
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    snprintf(err, err_size, "%s %s: changed while being opened and is no longer a regular file", what, path);
    fclose(f);
    return NULL;
  }
  return f;
}

up_line_status up_read_bounded_line(FILE *f, char *buf, size_t max_bytes, size_t *len) {
  size_t n = 0;
  bool any = false, too_long = false;
  int c;
  while ((c = getc_unlocked(f)) != EOF) {
    any = true;
    if (c == '\n') break;
    if (n < max_bytes) buf[n++] = (char)c;
    else too_long = true;
  }
  buf[n] = '\0';
  *len = n;
  if (!any) return UP_LINE_END_OF_FILE;
  return too_long ? UP_LINE_TOO_LONG : UP_LINE_OK;
}

cJSON *up_jsonl_object(const char *line, size_t len, char *why, size_t why_size) {
  const char *end = NULL;
  cJSON *obj = cJSON_ParseWithLengthOpts(line, len, &end, false);
  if (!obj) {
    snprintf(why, why_size, "not valid JSON (truncated line?)");
    return NULL;
  }
  while (end < line + len && isspace((unsigned char)*end)) end++;
  const char *dup = NULL;
  if (!cJSON_IsObject(obj))
    snprintf(why, why_size, "not a JSON object");
  else if (end < line + len)
    snprintf(why, why_size, "text after the JSON object at column %zu: '%.20s' (one object per line)",
             (size_t)(end - line) + 1, end);
  else if ((dup = up_json_duplicate_key_anywhere(obj)) != NULL)
    snprintf(why, why_size, "duplicate key '%.60s'", dup);
  else
    return obj;
  cJSON_Delete(obj);
  return NULL;
}
