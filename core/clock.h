/* clock.h — the one monotonic clock of the tool, in seconds. Every timestamp the
 * engine records, the CPU backend's phase clock and the launcher's timers read it, so
 * their numbers share an origin and a resolution. */
#ifndef UP_CLOCK_H
#define UP_CLOCK_H

#ifdef __cplusplus
extern "C" {
#endif

/* Seconds on CLOCK_MONOTONIC (unaffected by changes of the wall clock); only
 * differences mean anything. */
double up_clock_monotonic_s(void);

#ifdef __cplusplus
}
#endif

#endif
