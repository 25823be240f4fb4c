/* fatal.c — prints fatal errors with their location and ends the process through the
 * abort hook (MPI_Abort under the launcher, exit elsewhere). */
#include "core/fatal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static up_abort_hook g_abort_hook = NULL;
static char g_prefix[64] = "";

void up_fatal_set_abort_hook(up_abort_hook hook) { g_abort_hook = hook; }

void up_fatal_set_prefix(const char *prefix) {
  snprintf(g_prefix, sizeof g_prefix, "%s", prefix ? prefix : "");
}

static void report_and_end(const char *file, int line, const char *condition, const char *fmt, va_list ap)
    __attribute__((noreturn));

static void report_and_end(const char *file, int line, const char *condition, const char *fmt, va_list ap) {
  fprintf(stderr, "uniprefill-bench: %s%sfatal error at %s:%d: ", g_prefix, g_prefix[0] ? ": " : "", file, line);
  if (condition) fprintf(stderr, "assertion '%s' failed: ", condition);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  fflush(stderr);
  if (g_abort_hook) g_abort_hook(1);
  exit(1);
}

void up_fatal_at(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  report_and_end(file, line, NULL, fmt, ap);
}

void up_assert_fail(const char *file, int line, const char *condition, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  report_and_end(file, line, condition, fmt, ap);
}

bool up_error(char *err, size_t err_size, const char *fmt, ...) {
  if (err && err_size) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
  }
  return false;
}

void *up_malloc_or_die(size_t bytes, const char *what) {
  void *p = malloc(bytes ? bytes : 1);
  if (!p) UP_FATAL("out of host memory allocating %zu bytes for %s", bytes, what);
  return p;
}

void *up_calloc_or_die(size_t count, size_t size, const char *what) {
  void *p = calloc(count ? count : 1, size ? size : 1);
  if (!p) UP_FATAL("out of host memory allocating %zu x %zu bytes for %s", count, size, what);
  return p;
}
