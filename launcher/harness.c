/* harness.c — the mode life cycle of harness.h on run_setup.h's steps. */
#include "launcher/harness.h"

#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "launcher/mpi_check.h"
#include "launcher/preamble.h"
#include "launcher/run_setup.h"

bool up_harness_begin(up_harness *h, const char *mode, const up_options *opt, int argc, char **argv,
                      const up_topology *topo) {
  memset(h, 0, sizeof *h);
  h->opt = opt;
  h->topo = topo;
  h->argc = argc;
  h->argv = argv;
  h->be = up_run_select_backend(opt, topo);
  if (!h->be) return false;
  up_preamble_print(stderr, mode, argc, argv, topo, h->be, opt->quiet);
  return true;
}

bool up_harness_check_failed(const up_harness *h, int failed_here, const char *msg) {
  return up_run_agree_on_check(h->topo, failed_here, msg) != 0;
}

bool up_harness_failed(const up_harness *h, int failed_here, const char *msg) {
  return up_run_agree_on_failure(h->topo, failed_here, msg) != 0;
}

bool up_harness_open_results(up_harness *h, const char *model_name) {
  int failed = 0;
  h->results = up_run_open_results(h->opt, h->argc, h->argv, h->topo, h->be, model_name, h->path, &failed);
  return !failed;
}

void up_harness_note_written(const up_harness *h) {
  if (h->topo->world_rank == 0 && !h->opt->quiet) fprintf(stderr, "uniprefill-bench: wrote %s\n", h->path);
}

int up_harness_end(up_harness *h, int exit_code) {
  char err[1024] = "";
  if (h->results && up_results_close(h->results, err, sizeof err) != 0) {
    fprintf(stderr, "uniprefill-bench: error: %s\n", err);
    exit_code = 1;
  }
  h->results = NULL;
  UP_CHECK_MPI(MPI_Bcast(&exit_code, 1, MPI_INT, 0, MPI_COMM_WORLD));
  h->be->ops->destroy(h->be);
  h->be = NULL;
  return exit_code;
}
