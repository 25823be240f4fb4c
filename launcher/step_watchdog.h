/* step_watchdog.h — --step-timeout: the sweep's synchronization points (a round's start,
 * its record gather, a point's end) under a deadline, so a rank that was stopped (SIGSTOP) or hangs
 * cannot make the others wait forever. Each rank checks in with rank 0 by a non-blocking
 * message and waits for rank 0's go, polling: rank 0 names the ranks that did not check
 * in within the timeout, the others name rank 0 when its go does not come, and the job is
 * aborted (MPI_Abort, exit code UP_STEP_WATCHDOG_EXIT). A blocking call the caller makes
 * right after a check-in (the gather, the point's agreement) runs under an alarm of the same timeout, since a
 * rank can stop between the two. Owns its own communicator and the SIGALRM handler while
 * armed; touches nothing of the engine. */
#ifndef UP_STEP_WATCHDOG_H
#define UP_STEP_WATCHDOG_H

#include <mpi.h>
#include <stdbool.h>
#include <stdint.h>

/* The exit code of a job the watchdog aborts (README: exit codes). */
#define UP_STEP_WATCHDOG_EXIT 3

typedef struct up_step_watchdog {
  double timeout_s; /* 0: off (every call below does nothing but the plain barrier) */
  MPI_Comm comm;    /* a duplicate of MPI_COMM_WORLD, so check-ins match no other message */
  int rank;
  int world;
  int64_t checkins; /* check-ins so far: every rank makes the same ones, in the same order */
} up_step_watchdog;

/* Collective over MPI_COMM_WORLD: every rank calls it with the same timeout (0: off). */
void up_step_watchdog_init(up_step_watchdog *wd, double timeout_s);
void up_step_watchdog_free(up_step_watchdog *wd);

/* Wait until every rank has reached this point (`where` names it in the message). Off:
 * MPI_Barrier. On: the check-in above, aborting the job after timeout_s. */
void up_step_watchdog_sync(up_step_watchdog *wd, const char *where);

/* Bracket a blocking collective made right after a sync: while armed, a call that does
 * not return within timeout_s ends this rank with a message and the watchdog's exit
 * code, which ends the job. Nothing when off. */
void up_step_watchdog_arm(up_step_watchdog *wd, const char *where);
void up_step_watchdog_disarm(up_step_watchdog *wd);

#endif
