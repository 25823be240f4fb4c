/* preamble.h — the `#` lines a run starts with on stderr, as nccl-tests prints its
 * header: the tool's version and commit, the mode, the command line, then one line per
 * rank (rank, local rank, pid, host, data- and tensor-parallel index, backend, device
 * and its key), formatted on each rank and gathered to rank 0 in rank order. stdout carries only the results table,
 * so it stays parseable; --quiet leaves the preamble out. Owns the text of those lines
 * and nothing else (the run file's metadata is run_setup.c's). */
#ifndef UP_PREAMBLE_H
#define UP_PREAMBLE_H

#include <stdio.h>

#include "kernels/ops.h"
#include "launcher/topology.h"

/* Collective over MPI_COMM_WORLD (every rank calls it). mode: "sweep", "kernels" or
 * "eval". Rank 0 writes to `out` unless its own `quiet` is set. */
void up_preamble_print(FILE *out, const char *mode, int argc, char **argv, const up_topology *topo,
                       const up_backend *be, int quiet);

#endif
