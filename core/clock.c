/* clock.c — the monotonic clock of clock.h (POSIX clock_gettime). */
#include "core/clock.h"

#include <time.h>

#include "core/fatal.h"

double up_clock_monotonic_s(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) UP_FATAL("clock_gettime(CLOCK_MONOTONIC) failed");
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
