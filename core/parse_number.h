/* parse_number.h — strict parsing of numbers people type (flags, specs): the whole
 * text is the number. The C library's strto* skip white space, take a '+', and stop
 * quietly at junk; here a text must begin with a digit (or '-', or '.' for reals, where
 * allowed), integers are decimal, and anything left over refuses it. Each parser says
 * why it refused, so the caller can name the problem in its own words. Owns no
 * messages: the command line (launcher/cli.c) writes them. */
#ifndef UP_PARSE_NUMBER_H
#define UP_PARSE_NUMBER_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Why a text was refused. */
typedef enum up_number_error {
  UP_NUMBER_OK = 0,
  UP_NUMBER_NOT_NUMBER, /* does not begin like a number: empty, white space, '+', a letter, '-' where refused */
  UP_NUMBER_MALFORMED,  /* begins like one, but characters follow it or it lies outside the type */
  UP_NUMBER_BELOW_MIN,
  UP_NUMBER_ABOVE_MAX,
} up_number_error;

/* A decimal integer ("-12", "4096") within [min, max]. `why` may be NULL. */
bool up_parse_int64(const char *text, int64_t min, int64_t max, int64_t *value, up_number_error *why);

/* A non-negative decimal integer up to UINT64_MAX (a seed). */
bool up_parse_uint64(const char *text, uint64_t *value, up_number_error *why);

/* A size: a non-negative decimal integer with an optional k/K (x 1024) or m/M
 * (x 1024 * 1024) suffix ("4096", "4k", "2M"), within [min, max]. */
bool up_parse_size_in(const char *text, int64_t min, int64_t max, int64_t *value, up_number_error *why);

/* A size of any non-negative int64 value; false when malformed, negative or too large. */
bool up_parse_size(const char *text, int64_t *value);

/* A finite real in strtod's syntax ("0.5", ".5", "1e3"), beginning with a digit or '.',
 * or with '-' when allow_minus. "inf" and "nan" are refused (callers that take an
 * infinity test for their own spelling first). Ranges are the caller's: their
 * intervals differ in which ends are open. */
bool up_parse_real(const char *text, bool allow_minus, double *value, up_number_error *why);

#ifdef __cplusplus
}
#endif

#endif
