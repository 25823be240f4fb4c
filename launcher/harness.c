/* harness.c — the mode life cycle of harness.h on run_setup.h's steps. */
#include "launcher/harness.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "launcher/mpi_check.h"
#include "launcher/preamble.h"
#include "launcher/run_setup.h"

/* The transport of every --tp value, the model's heads against them (where the model
 * resolves here: a mode reports a model that does not, itself), then every value's
 * groups, the first's on topo's grouping. cfg receives the model where every rank
 * resolved it (n_layers 0 otherwise). */
static bool begin_tensor_parallel(up_harness *h, up_model_config *cfg) {
  const up_options *opt = h->opt;
  char err[1024] = "", why[1024] = "";
  up_transport_choice resolved[UP_MAX_SWEEP];
  bool ok = true;
  for (int32_t i = 0; i < opt->n_tp && ok; ++i)
    ok = up_tp_transport_resolve(opt->transport, h->be, opt->tp[i], &resolved[i], err, sizeof err);
  if (up_run_agree_on_check(h->topo, !ok, err)) return false;
  const int resolved_here = up_run_resolve_model(opt, h->be, cfg, why, sizeof why);
  int resolved_all = 0;
  UP_CHECK_MPI(MPI_Allreduce(&resolved_here, &resolved_all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
  if (!resolved_all) memset(cfg, 0, sizeof *cfg);
  if (up_run_agree_on_check(h->topo, resolved_all && !up_run_check_tp_heads(opt, cfg, err, sizeof err), err))
    return false;
  for (int32_t i = 0; i < opt->n_tp; ++i) {
    up_tp_degree *d = &h->degrees[i];
    d->topo = *h->topo;
    /* up_run_group_ranks grouped every value once already: this cannot fail now. */
    if (i > 0 && !up_topology_set_tp(&d->topo, opt->tp[i], opt->tp_cross_node, err, sizeof err))
      UP_FATAL("%s (it grouped the ranks at start-up)", err);
    up_tp_groups_create(&d->groups, &d->topo, resolved[i], h->be, opt->collective_timeout_s);
    h->n_degrees = i + 1;
  }
  return true;
}

/* Each group's all-reduce at the message size of a prefill step, for every --tp value
 * whose groups have a transport to measure (not the group of one) and a model to size
 * the message by; rank 0 keeps the rows of all of them, in --tp order. */
static void probe_tensor_parallel(up_harness *h, const up_model_config *cfg) {
  if (cfg->n_layers == 0) return;
  const up_options *opt = h->opt;
  const int64_t tokens = up_tp_probe_tokens(opt->ctx, opt->n_ctx, opt->max_batch_tokens, opt->prefill_chunk);
  int32_t n_rows = 0;
  for (int32_t i = 0; i < h->n_degrees; ++i)
    if (h->degrees[i].groups.transport != UP_TRANSPORT_SELF) n_rows += h->degrees[i].topo.dp_size;
  if (n_rows == 0) return;
  if (h->topo->world_rank == 0) {
    h->n_tp_probe = n_rows;
    h->tp_probe = up_calloc_or_die((size_t)n_rows, sizeof *h->tp_probe, "the probe's rows");
  }
  for (int32_t i = 0, row = 0; i < h->n_degrees; ++i) {
    up_tp_degree *d = &h->degrees[i];
    if (d->groups.transport == UP_TRANSPORT_SELF) continue;
    up_tp_probe_run(d->groups.comm, h->be, &d->topo, tokens, cfg->hidden, h->tp_probe ? h->tp_probe + row : NULL);
    row += d->topo.dp_size;
  }
  if (h->topo->world_rank == 0 && !opt->quiet) up_tp_probe_print(stderr, h->tp_probe, h->n_tp_probe);
}

/* Groups of more than one rank run the sweep only: it builds each --tp value's sharded
 * model in turn and serves through its groups (step_sync.h). --kernels and --eval time
 * and score whole models, so --tp > 1 is refused there (exit 2) after the checks and
 * the probe. */
static bool refuse_unbuilt_tensor_parallel(const up_harness *h, const char *mode) {
  int32_t largest = 1;
  for (int32_t i = 0; i < h->opt->n_tp; ++i)
    if (h->opt->tp[i] > largest) largest = h->opt->tp[i];
  char err[256] = "";
  if (largest > 1 && strcmp(mode, "sweep") != 0)
    snprintf(err, sizeof err, "--tp %d: the %s mode runs whole models only (use --tp 1)", (int)largest, mode);
  return !up_run_agree_on_check(h->topo, err[0] != '\0', err);
}

static void end_tensor_parallel(up_harness *h) {
  /* Destroyed in reverse: collective calls in the same order on every rank. */
  for (int32_t i = h->n_degrees - 1; i >= 0; --i) up_tp_groups_destroy(&h->degrees[i].groups);
  h->n_degrees = 0;
  free(h->tp_probe);
  h->tp_probe = NULL;
  h->n_tp_probe = 0;
}

bool up_harness_begin(up_harness *h, const char *mode, const up_options *opt, int argc, char **argv,
                      const up_topology *topo) {
  memset(h, 0, sizeof *h);
  h->opt = opt;
  h->topo = topo;
  h->argc = argc;
  h->argv = argv;
  h->be = up_run_select_backend(opt, topo);
  if (!h->be) return false;
  up_model_config cfg;
  if (!begin_tensor_parallel(h, &cfg)) {
    h->be->ops->destroy(h->be);
    h->be = NULL;
    return false;
  }
  up_preamble_print(stderr, mode, argc, argv, topo, h->be, opt->quiet);
  probe_tensor_parallel(h, &cfg);
  if (!refuse_unbuilt_tensor_parallel(h, mode)) {
    end_tensor_parallel(h);
    h->be->ops->destroy(h->be);
    h->be = NULL;
    return false;
  }
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
  h->results = up_run_open_results(h->opt, h->argc, h->argv, h->topo, h->be, model_name, &h->degrees[0].groups,
                                   h->tp_probe, h->n_tp_probe, h->path, &failed);
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
  end_tensor_parallel(h);
  h->be->ops->destroy(h->be);
  h->be = NULL;
  return exit_code;
}
