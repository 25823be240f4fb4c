/* json_input.c — strict JSON reading on top of cJSON (see json_input.h). */
#include "engine/checkpoint/json_input.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fatal.h"

cJSON *up_json_parse_text(const char *text, size_t len, const char *source, char *err, size_t err_size) {
  /* cJSON wants a terminated string: parse a terminated copy, and refuse an embedded
   * NUL, which would end the copy's text early and hide what follows it. */
  if (memchr(text, '\0', len)) {
    up_error(err, err_size, "%s: contains a NUL byte", source);
    return NULL;
  }
  char *copy = up_malloc_or_die(len + 1, "JSON text");
  memcpy(copy, text, len);
  copy[len] = '\0';
  const char *parse_end = NULL;
  cJSON *root = cJSON_ParseWithOpts(copy, &parse_end, true);
  if (!root)
    up_error(err, err_size, "%s: not valid JSON (near byte %zu)", source, parse_end ? (size_t)(parse_end - copy) : 0);
  free(copy);
  return root;
}

cJSON *up_json_parse_file(const char *path, size_t max_bytes, char *err, size_t err_size) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    up_error(err, err_size, "%s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  struct stat sb;
  cJSON *root = NULL;
  if (fstat(fileno(f), &sb) != 0) {
    up_error(err, err_size, "%s: cannot stat: %s", path, strerror(errno));
  } else if (!S_ISREG(sb.st_mode)) {
    up_error(err, err_size, "%s: not a regular file", path);
  } else if ((uint64_t)sb.st_size > max_bytes) {
    up_error(err, err_size, "%s: %lld bytes, over the %zu-byte limit", path, (long long)sb.st_size, max_bytes);
  } else {
    const size_t size = (size_t)sb.st_size;
    char *text = up_malloc_or_die(size + 1, "JSON file");
    const size_t len = fread(text, 1, size, f);
    if (len != size) up_error(err, err_size, "%s: read %zu of %zu bytes: %s", path, len, size, strerror(errno));
    else root = up_json_parse_text(text, len, path, err, err_size);
    free(text);
  }
  if (fclose(f) != 0 && root) {
    up_error(err, err_size, "%s: close failed: %s", path, strerror(errno));
    cJSON_Delete(root);
    return NULL;
  }
  return root;
}

static int compare_keys(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char *up_json_duplicate_key(const cJSON *object) {
  const int n = cJSON_GetArraySize(object);
  if (n < 2) return NULL;
  const char **keys = up_malloc_or_die(sizeof *keys * (size_t)n, "JSON keys");
  int i = 0;
  const cJSON *child = NULL;
  cJSON_ArrayForEach(child, object) keys[i++] = child->string ? child->string : "";
  qsort(keys, (size_t)n, sizeof *keys, compare_keys);
  const char *dup = NULL;
  for (i = 1; i < n && !dup; ++i)
    if (strcmp(keys[i - 1], keys[i]) == 0) dup = keys[i];
  free(keys);
  return dup;
}

const char *up_json_duplicate_key_anywhere(const cJSON *item) {
  const char *dup = cJSON_IsObject(item) ? up_json_duplicate_key(item) : NULL;
  const cJSON *child = NULL;
  if (cJSON_IsObject(item) || cJSON_IsArray(item))
    cJSON_ArrayForEach(child, item) {
      if (dup) break;
      dup = up_json_duplicate_key_anywhere(child);
    }
  return dup;
}

bool up_json_integer(const cJSON *item, int64_t min, int64_t max, int64_t *out) {
  if (!cJSON_IsNumber(item)) return false;
  const double v = item->valuedouble;
  if (!isfinite(v) || floor(v) != v || v < (double)min || v > (double)max || fabs(v) > UP_JSON_MAX_EXACT_INTEGER)
    return false;
  *out = (int64_t)v;
  return true;
}
