/* sweep.h — the sweep driver: resolves the model and methods, checks that every point
 * can run before anything is written, then runs the cartesian product tp x ctx x
 * concurrency x method (tp outermost: one --tp value's groups and model at a time),
 * gathering each point to rank 0, which writes it to HDF5 at once and prints the table
 * at the end. */
#ifndef UP_SWEEP_H
#define UP_SWEEP_H

#include "launcher/cli.h"
#include "launcher/topology.h"

/* Collective. Returns the exit code, identical on every rank: 0 success, 1 a runtime
 * failure (results file), 2 a configuration that cannot run. */
int up_sweep_run(const up_options *opt, int argc, char **argv, const up_topology *topo);

#endif
