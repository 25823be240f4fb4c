/* jsonl_line.c — bounded line reading and strict JSONL objects (see jsonl_line.h). */
#include "workloads/jsonl_line.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fatal.h"
#include "core/file_kind.h"
#include "engine/checkpoint/json_input.h"

up_line_status up_read_bounded_line(FILE *f, char **buf, size_t *cap, size_t max_bytes, size_t *len) {
  size_t n = 0;
  bool any = false, too_long = false;
  int c;
  if (*cap == 0) {
    *cap = max_bytes + 1 < 4096 ? max_bytes + 1 : 4096;
    *buf = up_malloc_or_die(*cap, "input line");
  }
  while ((c = getc_unlocked(f)) != EOF) {
    any = true;
    if (c == '\n') break;
    if (n == max_bytes) {
      too_long = true;
      continue;
    }
    if (n + 1 >= *cap) { /* grow by doubling, never past max_bytes + 1 */
      *cap = *cap * 2 > max_bytes + 1 ? max_bytes + 1 : *cap * 2;
      *buf = realloc(*buf, *cap);
      if (!*buf) UP_FATAL("out of host memory for an input line of %zu bytes", *cap);
    }
    (*buf)[n++] = (char)c;
  }
  (*buf)[n] = '\0';
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
