/* preamble.c — the `#` header of a run (see preamble.h). Each rank formats its own
 * line into a fixed-size slot, so one MPI_Gather collects them without a length
 * exchange; a device name longer than the slot is cut, never the gather. */
#include "launcher/preamble.h"

#include <mpi.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/fatal.h"
#include "launcher/backend_select.h"
#include "launcher/mpi_check.h"
#include "launcher/run_setup.h"

enum { UP_PREAMBLE_LINE = 640 }; /* room for the longest hostname, device name and key */

/* This rank's line, without the leading "#". */
static void format_rank_line(char *line, const up_topology *topo, const up_backend *be) {
  char key[64];
  up_backend_device_key(be, key, sizeof key);
  snprintf(line, UP_PREAMBLE_LINE,
           "  rank %3d  local %2d  pid %7ld  host %-16s  dp %3d  tp %3d  backend %-4s  device %s [%s]",
           topo->world_rank, topo->local_rank, (long)getpid(), topo->hostname, topo->dp_rank, topo->tp_rank,
           be->ops->name, be->device_name, key);
}

void up_preamble_print(FILE *out, const char *mode, int argc, char **argv, const up_topology *topo,
                       const up_backend *be, int quiet) {
  /* Every rank joins the gather unless all are quiet: ranks launched with different
   * flags (mpirun's MPMD form) must not leave rank 0 waiting. */
  const int loud_here = !quiet;
  int loud_any = 0;
  UP_CHECK_MPI(MPI_Allreduce(&loud_here, &loud_any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
  if (!loud_any) return;
  const int root = topo->world_rank == 0;
  char mine[UP_PREAMBLE_LINE];
  format_rank_line(mine, topo, be);
  char *lines = root ? up_malloc_or_die((size_t)UP_PREAMBLE_LINE * (size_t)topo->world_size, "preamble lines") : NULL;
  UP_CHECK_MPI(MPI_Gather(mine, UP_PREAMBLE_LINE, MPI_CHAR, lines, UP_PREAMBLE_LINE, MPI_CHAR, 0, MPI_COMM_WORLD));
  if (!root || quiet) {
    free(lines);
    return;
  }
  char joined[4096];
  up_run_join_argv(argc, argv, joined, sizeof joined);
  fprintf(out, "# uniprefill-bench %s, commit %s\n", UNIPREFILL_VERSION, UNIPREFILL_GIT_COMMIT);
  fprintf(out, "# mode: %s, %d rank(s) = dp %d x tp %d%s\n", mode, topo->world_size, topo->dp_size, topo->tp_size,
          topo->tp_spans_hosts ? " (tensor-parallel groups span hosts: --tp-cross-node)" : "");
  fprintf(out, "# argv: %s\n", joined);
  fprintf(out, "# Using devices\n");
  for (int r = 0; r < topo->world_size; ++r) fprintf(out, "#%s\n", lines + (size_t)r * UP_PREAMBLE_LINE);
  fflush(out);
  free(lines);
}
