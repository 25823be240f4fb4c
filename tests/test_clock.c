/* test_clock.c — core/clock.h: the monotonic clock never goes back, advances across
 * a sleep by at least the time slept, and reads in seconds (not milli- or nanoseconds). */
#include <criterion/criterion.h>
#include <time.h>

#include "core/clock.h"

Test(clock, monotonic_and_in_seconds) {
  double last = up_clock_monotonic_s();
  for (int i = 0; i < 100000; ++i) {
    const double now = up_clock_monotonic_s();
    cr_assert(now >= last, "the clock went back from %.9f to %.9f", last, now);
    last = now;
  }
  const double before = up_clock_monotonic_s();
  const struct timespec pause = {0, 20 * 1000 * 1000}; /* 20 ms */
  cr_assert_eq(nanosleep(&pause, NULL), 0);
  const double slept = up_clock_monotonic_s() - before;
  cr_expect(slept >= 0.020, "slept 20 ms, the clock says %.6f s", slept);
  cr_expect(slept < 5.0, "20 ms read as %.3f: not seconds", slept);
}
