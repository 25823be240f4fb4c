/* parse_number.c — the strict number parsers of parse_number.h, on top of strtoll,
 * strtoull and strtod with their leniencies (leading blanks, '+', silent stops)
 * closed off. */
#include "core/parse_number.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>

static bool refuse(up_number_error *why, up_number_error reason) {
  if (why) *why = reason;
  return false;
}

static bool accept(up_number_error *why) {
  if (why) *why = UP_NUMBER_OK;
  return true;
}

/* A digit first, or '-' and then a digit where a minus is allowed. */
static bool starts_like_integer(const char *text, bool allow_minus) {
  if (text[0] == '-' && allow_minus) text++;
  return isdigit((unsigned char)text[0]);
}

static bool within(int64_t v, int64_t min, int64_t max, int64_t *value, up_number_error *why) {
  if (v < min) return refuse(why, UP_NUMBER_BELOW_MIN);
  if (v > max) return refuse(why, UP_NUMBER_ABOVE_MAX);
  *value = v;
  return accept(why);
}

bool up_parse_int64(const char *text, int64_t min, int64_t max, int64_t *value, up_number_error *why) {
  if (!starts_like_integer(text, true)) return refuse(why, UP_NUMBER_NOT_NUMBER);
  char *end = NULL;
  errno = 0;
  const long long v = strtoll(text, &end, 10);
  if (errno == ERANGE || *end != '\0') return refuse(why, UP_NUMBER_MALFORMED);
  return within((int64_t)v, min, max, value, why);
}

bool up_parse_uint64(const char *text, uint64_t *value, up_number_error *why) {
  if (!starts_like_integer(text, false)) return refuse(why, UP_NUMBER_NOT_NUMBER);
  char *end = NULL;
  errno = 0;
  const unsigned long long v = strtoull(text, &end, 10);
  if (errno == ERANGE || *end != '\0') return refuse(why, UP_NUMBER_MALFORMED);
  *value = (uint64_t)v;
  return accept(why);
}

bool up_parse_size_in(const char *text, int64_t min, int64_t max, int64_t *value, up_number_error *why) {
  if (!starts_like_integer(text, false)) return refuse(why, UP_NUMBER_NOT_NUMBER);
  char *end = NULL;
  errno = 0;
  const long long v = strtoll(text, &end, 10);
  if (errno == ERANGE) return refuse(why, UP_NUMBER_MALFORMED);
  int64_t multiplier = 1;
  if (*end == 'k' || *end == 'K') {
    multiplier = 1024;
    end++;
  } else if (*end == 'm' || *end == 'M') {
    multiplier = 1024 * 1024;
    end++;
  }
  if (*end != '\0' || v > INT64_MAX / multiplier) return refuse(why, UP_NUMBER_MALFORMED);
  return within((int64_t)v * multiplier, min, max, value, why);
}

bool up_parse_size(const char *text, int64_t *value) { return up_parse_size_in(text, 0, INT64_MAX, value, NULL); }

bool up_parse_real(const char *text, bool allow_minus, double *value, up_number_error *why) {
  if (!starts_like_integer(text, allow_minus) && text[0] != '.') return refuse(why, UP_NUMBER_NOT_NUMBER);
  char *end = NULL;
  errno = 0;
  const double v = strtod(text, &end);
  /* ERANGE covers underflow too: "1e-400" is refused rather than read as 0. */
  if (errno == ERANGE || *end != '\0' || !isfinite(v)) return refuse(why, UP_NUMBER_MALFORMED);
  *value = v;
  return accept(why);
}
