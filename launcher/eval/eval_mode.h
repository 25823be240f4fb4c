/* eval_mode.h — uniprefill-bench --eval: the fidelity evaluation of every method on a
 * trained checkpoint (see eval_mode.c). Collective over MPI_COMM_WORLD. */
#ifndef UP_EVAL_MODE_H
#define UP_EVAL_MODE_H

#include "launcher/cli.h"
#include "launcher/topology.h"

/* Returns the process exit code (0, 1 on a failure while running, 2 on bad input). */
int up_eval_mode_run(const up_options *opt, int argc, char **argv, const up_topology *topo);

#endif
