/* kernel_bench.h — `uniprefill-bench --kernels`: times the engine's ops (matmul,
 * attention, uniprefill_select) at the model's shapes on the selected backend, on
 * random inputs, with the backend's own clock (kernels/ops.h phase timing: CUDA events
 * on the GPU, the host clock on the CPU): untimed warm-up calls, then timed repeats,
 * each preceded on a GPU by a write that evicts L2; before them, a backend other than
 * the CPU checks a sample of the case's outputs against the CPU reference on the same
 * inputs (the error column). Prints one row per case and stores
 * them as the /kernels table of the run file, a group of cases (one kernel) at a time;
 * in markdown, then the time account of each prompt length (time_account.h).
 *
 * With several ranks, every rank that is the first on its host to use its device
 * (GPUs told apart by PCI bus id, so any CUDA_VISIBLE_DEVICES split works) times the
 * cases on that device, all at once (a loaded node, as in serving), and rank 0
 * gathers the rows, each tagged with its rank. Ranks that share a device with a lower
 * rank (more ranks than GPUs, or the CPU backend) only wait: two ranks timing on one
 * device would measure each other. */
#ifndef UP_KERNEL_BENCH_H
#define UP_KERNEL_BENCH_H

#include "launcher/cli.h"
#include "launcher/topology.h"

/* Collective. Returns the exit code, identical on every rank: 0 success, 1 a runtime
 * failure (results file), 2 a configuration that cannot run (nothing is written). */
int up_kernel_bench_run(const up_options *opt, int argc, char **argv, const up_topology *topo);

#endif
