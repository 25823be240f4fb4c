/* minference_table.c — reads MInference's per-head size table (format in
 * minference_table.h) and refuses any file that does not give exactly one entry per
 * layer and head of the model. */
#include "engine/methods/minference_table.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"

enum { TABLE_MAX_SIZE = 1 << 24 };

bool up_minference_table_load(const char *path, int32_t n_layers, int32_t n_heads, int32_t *vertical,
                              int32_t *slash, char *err, size_t err_size) {
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
    long long layer, head, v, s;
    char extra;
    const int got = sscanf(line, "%lld %lld %lld %lld %c", &layer, &head, &v, &s, &extra);
    if (got <= 0) continue; /* blank or comment */
    if (got != 4) {
      ok = up_error(err, err_size, "table file '%s' line %d: expected 'LAYER HEAD V S'", path, line_no);
    } else if (layer < 0 || layer >= n_layers || head < 0 || head >= n_heads) {
      ok = up_error(err, err_size, "table file '%s' line %d: layer %lld head %lld is outside the model's %d layers x "
                    "%d heads", path, line_no, layer, head, (int)n_layers, (int)n_heads);
    } else if (v < 1 || s < 1 || v > TABLE_MAX_SIZE || s > TABLE_MAX_SIZE) {
      ok = up_error(err, err_size, "table file '%s' line %d: sizes v=%lld s=%lld must be in [1, %d]", path, line_no, v,
                    s, TABLE_MAX_SIZE);
    } else if (seen[layer * n_heads + head]) {
      ok = up_error(err, err_size, "table file '%s' line %d: layer %lld head %lld appears twice", path, line_no, layer,
                    head);
    } else {
      seen[layer * n_heads + head] = 1;
      vertical[layer * n_heads + head] = (int32_t)v;
      slash[layer * n_heads + head] = (int32_t)s;
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
