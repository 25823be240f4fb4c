/* length_dist.c — length distributions of synthetic workloads: spec parsing, draws and
 * canonical text (see length_dist.h). */
#include "workloads/length_dist.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/rng.h"
#include "workloads/sampling.h"

static bool dist_fail(char *err, size_t err_size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static bool dist_fail(char *err, size_t err_size, const char *fmt, ...) {
  if (err && err_size > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
  }
  return false;
}

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

bool up_length_dist_parse(const char *text, up_length_dist *dist, char *err, size_t err_size) {
  static const char *const usage = "use fixed:N, uniform:N:RATIO or lognormal:MEDIAN:SIGMA, or a bare size like 4k";
  char buf[96];
  if (text[0] == '\0') return dist_fail(err, err_size, "empty distribution (%s)", usage);
  if (strlen(text) >= sizeof buf) return dist_fail(err, err_size, "'%s' is too long", text);
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
    if (!parse_length(parts[0], &dist->value)) return dist_fail(err, err_size, "'%s' is not a length (%s)", text, usage);
    dist->kind = UP_LENGTH_FIXED;
    return true;
  }
  const char *kind = n > 0 ? parts[0] : "";
  int expected = 0;
  if (strcmp(kind, "fixed") == 0) dist->kind = UP_LENGTH_FIXED, expected = 2;
  else if (strcmp(kind, "uniform") == 0) dist->kind = UP_LENGTH_UNIFORM, expected = 3;
  else if (strcmp(kind, "lognormal") == 0) dist->kind = UP_LENGTH_LOGNORMAL, expected = 3;
  else return dist_fail(err, err_size, "'%s': unknown distribution '%s' (%s)", text, kind, usage);
  if (n != expected || n_colons != expected - 1)
    return dist_fail(err, err_size, "'%s': %s takes %d field%s after the name (%s)", text, kind, expected - 1,
                     expected == 2 ? "" : "s", usage);
  if (!parse_length(parts[1], &dist->value))
    return dist_fail(err, err_size, "'%s': '%s' is not a length >= 1", text, parts[1]);
  if (dist->kind == UP_LENGTH_UNIFORM &&
      (!parse_real(parts[2], &dist->range_ratio) || dist->range_ratio < 0.0 || dist->range_ratio >= 1.0))
    return dist_fail(err, err_size, "'%s': range ratio '%s' must be a number in [0, 1)", text, parts[2]);
  if (dist->kind == UP_LENGTH_LOGNORMAL && (!parse_real(parts[2], &dist->sigma) || dist->sigma <= 0.0 ||
                                            dist->sigma > 10.0))
    return dist_fail(err, err_size, "'%s': sigma '%s' must be a number in (0, 10]", text, parts[2]);
  return true;
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
