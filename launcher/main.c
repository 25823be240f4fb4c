/* main.c — the uniprefill-bench entry point: MPI start-up with every MPI error routed
 * to a message and MPI_Abort (so no rank hangs), option parsing, the check that -o
 * spares the run's inputs, the ranks' tensor-parallel grouping (--tp), the sweep, the
 * kernel benchmark (--kernels) or the fidelity evaluation (--eval), shutdown. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/fatal.h"
#include "launcher/cli.h"
#include "launcher/eval/eval_mode.h"
#include "launcher/kernels/kernel_bench.h"
#include "launcher/mpi_check.h"
#include "launcher/output/output_path.h"
#include "launcher/run_setup.h"
#include "launcher/sweep/sweep.h"
#include "launcher/topology.h"

static void abort_job(int exit_code) { MPI_Abort(MPI_COMM_WORLD, exit_code); }

int main(int argc, char **argv) {
  const int init_rc = MPI_Init(&argc, &argv);
  if (init_rc != MPI_SUCCESS) {
    fprintf(stderr, "uniprefill-bench: error: MPI_Init failed (code %d)\n", init_rc);
    return 1;
  }
  up_fatal_set_abort_hook(abort_job);
  UP_CHECK_MPI(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  up_topology topo;
  up_topology_init(&topo, 1);
  char prefix[32];
  snprintf(prefix, sizeof prefix, "rank %d", topo.world_rank);
  up_fatal_set_prefix(topo.world_size > 1 ? prefix : NULL);

  /* Every rank parses the same argv; rank 0 alone speaks. */
  up_options *opt = malloc(sizeof *opt);
  if (!opt) UP_FATAL("out of host memory for options");
  FILE *out = topo.world_rank == 0 ? stdout : fopen("/dev/null", "w");
  if (!out) UP_FATAL("cannot open /dev/null for a non-root rank's output");
  char err[1024] = "";
  const up_parse_status status = up_options_parse(argc, argv, opt, out, err, sizeof err);
  if (out != stdout) fclose(out);
  int exit_code = 0;
  if (status == UP_PARSE_ERROR) {
    if (topo.world_rank == 0)
      fprintf(stderr, "uniprefill-bench: error: %s\nTry 'uniprefill-bench --help'.\n", err);
    exit_code = 2;
  } else if (status == UP_PARSE_OK) {
    /* -o must not replace an input; only rank 0 writes it, so only rank 0 looks. */
    const int bad_output = topo.world_rank == 0 && !up_output_path_check_options(opt, err, sizeof err);
    if (up_run_agree_on_failure(&topo, bad_output, err)) exit_code = 2;
    else if (up_run_agree_on_check(&topo, !up_run_group_ranks(opt, &topo, err, sizeof err), err)) exit_code = 2;
    else if (opt->kernels) exit_code = up_kernel_bench_run(opt, argc, argv, &topo);
    else if (opt->eval_tasks[0] || opt->eval_files[0]) exit_code = up_eval_mode_run(opt, argc, argv, &topo);
    else exit_code = up_sweep_run(opt, argc, argv, &topo);
  }
  free(opt);
  MPI_Finalize();
  return exit_code;
}
