/* fatal.h — fatal-error reporting shared by every layer.
 *
 * A failure that cannot become a per-request status (a broken invariant, a failed
 * library call) is reported once with file, line, what failed and why, then the
 * process ends through an abort hook. The launcher points that hook at MPI_Abort so a
 * failing rank takes the whole job down instead of leaving the other ranks hanging;
 * tests and tools without MPI keep the default, exit(1). Errors in input a reader
 * can refuse (a malformed file) are not fatal: up_error only formats their message. */
#ifndef UP_FATAL_H
#define UP_FATAL_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*up_abort_hook)(int exit_code);

/* Replace the function that ends the process after a fatal error (NULL: exit). */
void up_fatal_set_abort_hook(up_abort_hook hook);

/* Prefix for fatal messages, e.g. "rank 3" (copied; NULL clears it). */
void up_fatal_set_prefix(const char *prefix);

/* Report "file:line: message" on stderr and end the process through the abort hook. */
void up_fatal_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

#define UP_FATAL(...) up_fatal_at(__FILE__, __LINE__, __VA_ARGS__)

/* Internal invariant: when it fails the program is wrong, not the input. The condition
 * travels as an argument, so a '%' in it is never read as a format. */
void up_assert_fail(const char *file, int line, const char *condition, const char *fmt, ...)
    __attribute__((format(printf, 4, 5), noreturn));

#define UP_ASSERT(cond, ...)                                        \
  do {                                                              \
    if (!(cond)) up_assert_fail(__FILE__, __LINE__, #cond, __VA_ARGS__); \
  } while (0)

/* The recoverable counterpart, for readers of untrusted input: write a message into
 * the caller's err buffer (nothing when err is NULL or err_size 0) and return false,
 * so a check can end with `return up_error(err, err_size, "...", ...)`. */
bool up_error(char *err, size_t err_size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* malloc/calloc that name what they allocate when memory runs out. */
void *up_malloc_or_die(size_t bytes, const char *what);
void *up_calloc_or_die(size_t count, size_t size, const char *what);

#ifdef __cplusplus
}
#endif

#endif
