/* head_table.c — reads a sparse method's per-(layer, head) table (format in
 * head_table.h) and refuses any file that does not give exactly one valid line per
 * layer and head of the model. */
#include "engine/methods/head_table.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"

enum { HEAD_TABLE_MAX_VALUES = 8 };

/* Parse "LAYER HEAD v1 .. vn" (nothing else on the line); returns the count of fields
 * read: n + 2 when the line is well formed, 0 when it is blank. */
static int parse_line(const char *line, int32_t n_values, long long *layer, long long *head, double *values) {
  const char *at = line;
  int fields = 0;
  for (;; ++fields) {
    while (*at == ' ' || *at == '\t' || *at == '\r') ++at;
    if (*at == '\0') return fields;
    if (fields >= n_values + 2) return -1; /* too many */
    char *end;
    errno = 0;
    if (fields < 2) {
      const long long v = strtoll(at, &end, 10);
      *(fields == 0 ? layer : head) = v;
    } else {
      values[fields - 2] = strtod(at, &end);
      if (!isfinite(values[fields - 2])) return -1;
    }
    if (end == at || errno != 0 || (*end != '\0' && *end != ' ' && *end != '\t' && *end != '\r')) return -1;
    at = end;
  }
}

bool up_head_table_load(const char *path, int32_t n_layers, int32_t n_heads, const up_head_table_form *form,
                        double *values, char *err, size_t err_size) {
  UP_ASSERT(form->n_values > 0 && form->n_values <= HEAD_TABLE_MAX_VALUES, "a head table of %d values",
            (int)form->n_values);
  FILE *f = fopen(path, "r");
  if (!f) return up_error(err, err_size, "table file '%s': %s", path, strerror(errno));
  const size_t n = (size_t)n_layers * (size_t)n_heads;
  uint8_t *seen = calloc(n ? n : 1, 1);
  if (!seen) {
    fclose(f);
    return up_error(err, err_size, "table file '%s': out of memory", path);
  }
  char line[512];
  bool ok = true;
  size_t filled = 0;
  for (int line_no = 1; ok && fgets(line, sizeof line, f); ++line_no) {
    line[strcspn(line, "#\n")] = '\0';
    long long layer = 0, head = 0;
    double v[HEAD_TABLE_MAX_VALUES];
    char why[160];
    const int got = parse_line(line, form->n_values, &layer, &head, v);
    if (got == 0) continue; /* blank or comment */
    if (got != form->n_values + 2) {
      ok = up_error(err, err_size, "table file '%s' line %d: expected '%s'", path, line_no, form->line_form);
    } else if (layer < 0 || layer >= n_layers || head < 0 || head >= n_heads) {
      ok = up_error(err, err_size, "table file '%s' line %d: layer %lld head %lld is outside the model's %d layers x "
                    "%d heads", path, line_no, layer, head, (int)n_layers, (int)n_heads);
    } else if (!form->check(v, why, sizeof why)) {
      ok = up_error(err, err_size, "table file '%s' line %d: %s", path, line_no, why);
    } else if (seen[layer * n_heads + head]) {
      ok = up_error(err, err_size, "table file '%s' line %d: layer %lld head %lld appears twice", path, line_no, layer,
                    head);
    } else {
      seen[layer * n_heads + head] = 1;
      memcpy(values + (size_t)(layer * n_heads + head) * (size_t)form->n_values, v,
             sizeof(double) * (size_t)form->n_values);
      ++filled;
    }
  }
  /* a directory opens, then fails its first read (EISDIR) */
  if (ok && ferror(f)) ok = up_error(err, err_size, "table file '%s': %s", path, strerror(errno));
  if (ok && filled != n) {
    size_t first = 0;
    while (first < n && seen[first]) ++first;
    ok = up_error(err, err_size, "table file '%s' gives %zu of the model's %zu (layer, head) entries; layer %zu head %zu "
                  "is missing", path, filled, n, first / (size_t)n_heads, first % (size_t)n_heads);
  }
  free(seen);
  fclose(f);
  return ok;
}
