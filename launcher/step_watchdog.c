/* step_watchdog.c — --step-timeout's check-ins and alarm (see step_watchdog.h). Polls
 * non-blocking point-to-point messages on its own communicator rather than calling a
 * blocking collective, so that waiting can end; allocates only per check-in. */
#include "launcher/step_watchdog.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/fatal.h"
#include "launcher/mpi_check.h"

enum { CHECKIN_TAG = 7101, GO_TAG = 7102 };

void up_step_watchdog_init(up_step_watchdog *wd, double timeout_s) {
  memset(wd, 0, sizeof *wd);
  wd->timeout_s = timeout_s > 0.0 ? timeout_s : 0.0;
  wd->comm = MPI_COMM_NULL;
  UP_CHECK_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &wd->rank));
  UP_CHECK_MPI(MPI_Comm_size(MPI_COMM_WORLD, &wd->world));
  if (wd->timeout_s > 0.0) UP_CHECK_MPI(MPI_Comm_dup(MPI_COMM_WORLD, &wd->comm));
}

void up_step_watchdog_free(up_step_watchdog *wd) {
  if (wd->comm != MPI_COMM_NULL) UP_CHECK_MPI(MPI_Comm_free(&wd->comm));
  wd->comm = MPI_COMM_NULL;
}

static void pause_briefly(void) {
  const struct timespec ms = {.tv_sec = 0, .tv_nsec = 1000000};
  nanosleep(&ms, NULL);
}

/* Poll until every request completes or `deadline` (MPI_Wtime) passes; done[i] says
 * which completed. True when all did. */
static bool wait_until(MPI_Request *reqs, bool *done, int n, double deadline) {
  for (;;) {
    int pending = 0;
    for (int i = 0; i < n; ++i) {
      if (done[i]) continue;
      int flag = 0;
      UP_CHECK_MPI(MPI_Test(&reqs[i], &flag, MPI_STATUS_IGNORE));
      done[i] = flag != 0;
      pending += !done[i];
    }
    if (pending == 0) return true;
    if (MPI_Wtime() > deadline) return false;
    pause_briefly();
  }
}

static _Noreturn void abort_job(const char *message) {
  fprintf(stderr, "%s\n", message);
  fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, UP_STEP_WATCHDOG_EXIT);
  _exit(UP_STEP_WATCHDOG_EXIT); /* MPI_Abort does not return; if it did, the job must still end */
}

/* Rank 0: every other rank's check-in, then its go. */
static void sync_root(up_step_watchdog *wd, const char *where) {
  const int n = wd->world - 1;
  MPI_Request *reqs = up_calloc_or_die((size_t)n, sizeof *reqs, "watchdog requests");
  bool *done = up_calloc_or_die((size_t)n, sizeof *done, "watchdog flags");
  int64_t *counts = up_calloc_or_die((size_t)n, sizeof *counts, "watchdog check-ins");
  for (int r = 1; r < wd->world; ++r)
    UP_CHECK_MPI(MPI_Irecv(&counts[r - 1], 1, MPI_INT64_T, r, CHECKIN_TAG, wd->comm, &reqs[r - 1]));
  if (!wait_until(reqs, done, n, MPI_Wtime() + wd->timeout_s)) {
    char message[1024];
    int used = snprintf(message, sizeof message, "uniprefill-bench: --step-timeout %g s: rank(s)", wd->timeout_s);
    for (int r = 1; r < wd->world && used < (int)sizeof message - 64; ++r)
      if (!done[r - 1]) used += snprintf(message + used, sizeof message - (size_t)used, " %d", r);
    snprintf(message + used, sizeof message - (size_t)used,
             " did not reach %s (stopped, hung, or slower than the timeout allows): aborting the job", where);
    abort_job(message);
  }
  for (int r = 1; r < wd->world; ++r)
    if (counts[r - 1] != wd->checkins)
      UP_FATAL("--step-timeout: rank %d checked in for sync %lld while rank 0 is at %lld", r,
               (long long)counts[r - 1], (long long)wd->checkins);
  for (int r = 1; r < wd->world; ++r) {
    done[r - 1] = false;
    UP_CHECK_MPI(MPI_Isend(&wd->checkins, 1, MPI_INT64_T, r, GO_TAG, wd->comm, &reqs[r - 1]));
  }
  if (!wait_until(reqs, done, n, MPI_Wtime() + wd->timeout_s))
    abort_job("uniprefill-bench: --step-timeout: a rank that checked in stopped taking messages: aborting the job");
  free(reqs);
  free(done);
  free(counts);
}

/* Another rank: check in, then wait for rank 0's go. It waits twice the timeout, so that
 * when some other rank is silent, rank 0 (which knows which) speaks first. */
static void sync_member(up_step_watchdog *wd, const char *where) {
  MPI_Request reqs[2];
  bool done[2] = {false, false};
  int64_t go = -1;
  UP_CHECK_MPI(MPI_Isend(&wd->checkins, 1, MPI_INT64_T, 0, CHECKIN_TAG, wd->comm, &reqs[0]));
  UP_CHECK_MPI(MPI_Irecv(&go, 1, MPI_INT64_T, 0, GO_TAG, wd->comm, &reqs[1]));
  if (!wait_until(reqs, done, 2, MPI_Wtime() + 2.0 * wd->timeout_s)) {
    char message[512];
    snprintf(message, sizeof message,
             "uniprefill-bench: --step-timeout %g s: rank %d waited %g s at %s for rank 0, which did not answer "
             "(stopped or hung): aborting the job", wd->timeout_s, wd->rank, 2.0 * wd->timeout_s, where);
    abort_job(message);
  }
  if (go != wd->checkins)
    UP_FATAL("--step-timeout: rank 0 answered sync %lld while rank %d is at %lld", (long long)go, wd->rank,
             (long long)wd->checkins);
}

void up_step_watchdog_sync(up_step_watchdog *wd, const char *where) {
  if (wd->timeout_s <= 0.0) {
    UP_CHECK_MPI(MPI_Barrier(MPI_COMM_WORLD));
    return;
  }
  if (wd->world > 1) {
    if (wd->rank == 0)
      sync_root(wd, where);
    else
      sync_member(wd, where);
  }
  wd->checkins++;
}

/* What the alarm handler writes: formatted when armed, since the handler may only write. */
static char alarm_message[512];
static size_t alarm_message_len;
static struct sigaction previous_alarm;

static void on_alarm(int sig) {
  (void)sig;
  ssize_t ignored = write(STDERR_FILENO, alarm_message, alarm_message_len);
  (void)ignored;
  _exit(UP_STEP_WATCHDOG_EXIT);
}

void up_step_watchdog_arm(up_step_watchdog *wd, const char *where) {
  if (wd->timeout_s <= 0.0 || wd->world < 2) return;
  const int n = snprintf(alarm_message, sizeof alarm_message,
                         "uniprefill-bench: --step-timeout %g s: rank %d is stuck in %s, which another rank left "
                         "or never entered (stopped or hung): ending the job\n", wd->timeout_s, wd->rank, where);
  alarm_message_len = n > 0 && (size_t)n < sizeof alarm_message ? (size_t)n : strlen(alarm_message);
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = on_alarm;
  sigemptyset(&action.sa_mask);
  if (sigaction(SIGALRM, &action, &previous_alarm) != 0) UP_FATAL("--step-timeout: cannot install the alarm handler");
  alarm((unsigned)ceil(wd->timeout_s));
}

void up_step_watchdog_disarm(up_step_watchdog *wd) {
  if (wd->timeout_s <= 0.0 || wd->world < 2) return;
  alarm(0);
  if (sigaction(SIGALRM, &previous_alarm, NULL) != 0) UP_FATAL("--step-timeout: cannot restore the alarm handler");
}
