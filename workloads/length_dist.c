/* length_dist.c — length distributions of synthetic workloads: spec parsing, draws and
 * canonical text (see length_dist.h). */
#include "workloads/length_dist.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "workloads/sampling.h"

/* A token count >= 1 with an optional k (1024) or M suffix. */
static bool parse_length(const char *text, int32_t *out) {
  if (!isdigit((unsigned char)text[0])) return false;
  char *end = NULL;
  errno = 0;
  const long long v = strtoll(text, &end, 10);
  long long scale = 1;
  if (*end == 'k' || *end == 'K') scale = 1024, end++;
  else if (*end == 'm' || *end == 'M') scale = 1024 * 1024, end++;
  if (errno == ERANGE || *end != '\0' || v < 1 || v > INT32_MAX / scale) return false;
  *out = (int32_t)(v * scale);
  return true;
}

static bool parse_real(const char *text, double *out) {
  if (!isdigit((unsigned char)text[0]) && text[0] != '.') return false;
  char *end = NULL;
  errno = 0;
  const double v = strtod(text, &end);
  if (errno == ERANGE || *end != '\0' || !isfinite(v)) return false;
  *out = v;
  return true;
}

/* NULL when text is a valid spec (written to *dist), else what is wrong with it. */
static const char *parse_spec(const char *text, up_length_dist *dist) {
  char buf[96];
  if (text[0] == '\0') return "empty distribution";
  if (strlen(text) >= sizeof buf) return "too long";
  snprintf(buf, sizeof buf, "%s", text);
  char *parts[4] = {NULL};
  int n = 0;
  char *save = NULL;
  for (char *tok = strtok_r(buf, ":", &save); tok && n < 4; tok = strtok_r(NULL, ":", &save)) parts[n++] = tok;
  /* strtok_r folds empty fields, so the colons are counted to catch "uniform::0.5". */
  int n_colons = 0;
  for (const char *p = text; *p; ++p) n_colons += *p == ':';
  memset(dist, 0, sizeof *dist);
  if (n_colons == 0) {
    dist->kind = UP_LENGTH_FIXED;
    return parse_length(parts[0], &dist->value) ? NULL : "not a length";
  }
  static const char *const kinds[] = {"fixed", "uniform", "lognormal"}; /* up_length_kind order */
  static const int fields[] = {1, 2, 2};
  static const char *const wrong_fields[] = {"fixed takes 1 field", "uniform takes 2 fields",
                                             "lognormal takes 2 fields"};
  int k = 0;
  while (k < 3 && strcmp(parts[0] ? parts[0] : "", kinds[k]) != 0) k++;
  if (k == 3) return "unknown distribution";
  dist->kind = (up_length_kind)k;
  if (n != fields[k] + 1 || n_colons != fields[k]) return wrong_fields[k];
  if (!parse_length(parts[1], &dist->value)) return "not a length >= 1";
  if (dist->kind == UP_LENGTH_UNIFORM &&
      (!parse_real(parts[2], &dist->range_ratio) || dist->range_ratio < 0.0 || dist->range_ratio >= 1.0))
    return "the range ratio must be a number in [0, 1)";
  if (dist->kind == UP_LENGTH_LOGNORMAL &&
      (!parse_real(parts[2], &dist->sigma) || dist->sigma <= 0.0 || dist->sigma > 10.0))
    return "sigma must be a number in (0, 10]";
  return NULL;
}

bool up_length_dist_parse(const char *text, up_length_dist *dist, char *err, size_t err_size) {
  const char *what = parse_spec(text, dist);
  if (what && err && err_size > 0)
    snprintf(err, err_size, "'%s': %s (use fixed:N, uniform:N:RATIO or lognormal:MEDIAN:SIGMA, or a size like 4k)",
             text, what);
  return what == NULL;
}

static int32_t clamp_length(double v) {
  if (!(v >= 1.0)) return 1;
  if (v >= (double)INT32_MAX) return INT32_MAX;
  return (int32_t)v;
}

int32_t up_length_dist_draw(const up_length_dist *dist, uint64_t seed, uint64_t stream, uint64_t index) {
  switch (dist->kind) {
    case UP_LENGTH_FIXED: return dist->value;
    case UP_LENGTH_UNIFORM: {
      /* vLLM's random dataset: randint(int(L(1-r)), int(L(1+r)) + 1). */
      const int64_t lo = (int64_t)floor(dist->value * (1.0 - dist->range_ratio));
      const int64_t hi = (int64_t)floor(dist->value * (1.0 + dist->range_ratio));
      const uint64_t span = (uint64_t)(hi - lo + 1);
      return clamp_length((double)(lo + (int64_t)(up_rng_u64(seed, stream, index) % span)));
    }
    case UP_LENGTH_LOGNORMAL:
      return clamp_length(round(exp(log((double)dist->value) + dist->sigma * up_sample_normal(seed, stream, index))));
  }
  return dist->value;
}

void up_length_dist_format(const up_length_dist *dist, char *buf, size_t size) {
  switch (dist->kind) {
    case UP_LENGTH_FIXED: snprintf(buf, size, "fixed:%d", (int)dist->value); return;
    case UP_LENGTH_UNIFORM: snprintf(buf, size, "uniform:%d:%g", (int)dist->value, dist->range_ratio); return;
    case UP_LENGTH_LOGNORMAL: snprintf(buf, size, "lognormal:%d:%g", (int)dist->value, dist->sigma); return;
  }
  snprintf(buf, size, "?");
}
