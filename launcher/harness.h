/* harness.h — one life cycle for the three modes of uniprefill-bench (the sweep,
 * --kernels, --eval), so none repeats it: begin (the backend, chosen and agreed on by
 * every rank, the tensor-parallel groups, then the `#` preamble and the groups' probe), agreement on each set-up failure so every rank
 * leaves with one exit code and none waits in a collective the others skipped, the
 * run file, and end (rank 0 closes the file, every rank takes rank 0's exit code, the
 * backend goes). A mode adds only what is its own: methods, workload, cases, tasks.
 * The steps themselves are run_setup.h's; this file owns their order. */
#ifndef UP_HARNESS_H
#define UP_HARNESS_H

#include <stdbool.h>

#include "kernels/ops.h"
#include "launcher/cli.h"
#include "launcher/output/results_h5.h"
#include "launcher/parallel/tp_groups.h"
#include "launcher/parallel/tp_probe.h"
#include "launcher/topology.h"

/* One --tp value: the ranks grouped dp x tp for it and its groups' communicators and
 * transport (a group of one, "self", unless that value or --comm asks for more). */
typedef struct up_tp_degree {
  up_topology topo;
  up_tp_groups groups;
} up_tp_degree;

typedef struct up_harness {
  const up_options *opt;
  const up_topology *topo;
  int argc;
  char **argv;
  up_backend *be;
  /* Every --tp value's grouping of the ranks, in --tp order: the sweep runs its points
   * degree by degree (degrees[0] is topo's grouping, the one the run file's layout
   * attributes record). Their communicators are all made at the start, before any
   * memory is measured, and live until up_harness_end. The probe's rows (every
   * degree's groups that have a transport, in --tp order) on rank 0. */
  up_tp_degree degrees[UP_MAX_SWEEP];
  int32_t n_degrees; /* degrees whose groups exist */
  up_tp_probe_row *tp_probe;
  int32_t n_tp_probe;
  up_results_file *results; /* rank 0, once up_harness_open_results succeeded; NULL elsewhere */
  char path[UP_PATH_MAX];   /* the run file's name on every rank, once opened */
} up_harness;

/* Collective. The backend (--backend, --attention-kernel) on every rank, the
 * tensor-parallel transport (--comm) checked against it and the model's heads for every
 * --tp value, each value's groups, then the preamble (unless --quiet) and the groups'
 * probe. Only the sweep runs --tp > 1 (a list of values, one after another); the other
 * modes are refused it here.
 * false on every rank, with the reason printed, when no backend can be had or --tp and
 * --comm cannot be served: the mode returns 2 and must not call up_harness_end. */
bool up_harness_begin(up_harness *h, const char *mode, const up_options *opt, int argc, char **argv,
                      const up_topology *topo);

/* Collective: whether any rank failed a check that every rank makes on the same inputs
 * (up_run_agree_on_check: reported once where all failed). */
bool up_harness_check_failed(const up_harness *h, int failed_here, const char *msg);

/* Collective: whether any rank failed a step that may fail on some ranks only (memory,
 * files, devices); each failing rank reports its own (up_run_agree_on_failure). */
bool up_harness_failed(const up_harness *h, int failed_here, const char *msg);

/* Collective: rank 0 creates the run file (-o, or results/runs/<UTC>.h5) with the run's
 * metadata; false on every rank, after the message, when it could not. */
bool up_harness_open_results(up_harness *h, const char *model_name);

/* Rank 0 says where the run file is ("wrote PATH"), unless --quiet. */
void up_harness_note_written(const up_harness *h);

/* Collective, the last call of a mode: rank 0 closes the run file (a failure there makes
 * the exit code 1), every rank takes rank 0's exit code, the backend is destroyed (the
 * mode destroys what it built on it first). Returns the exit code. */
int up_harness_end(up_harness *h, int exit_code);

#endif
