/* harness.c — the mode life cycle of harness.h on run_setup.h's steps. */
#include "launcher/harness.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "launcher/mpi_check.h"
#include "launcher/preamble.h"
#include "launcher/run_setup.h"

/* The transport of every --tp value, the model's heads against them (where the model
 * resolves here: a mode reports a model that does not, itself), then the groups. cfg
 * receives the model where every rank resolved it (n_layers 0 otherwise). */
static bool begin_tensor_parallel(up_harness *h, up_model_config *cfg) {
  const up_options *opt = h->opt;
  char err[1024] = "", why[1024] = "";
  up_transport_choice first = UP_TRANSPORT_SELF;
  bool ok = true;
  for (int32_t i = 0; i < opt->n_tp && ok; ++i) {
    up_transport_choice resolved;
    ok = up_tp_transport_resolve(opt->transport, h->be, opt->tp[i], &resolved, err, sizeof err);
    if (i == 0) first = resolved;
  }
  if (up_run_agree_on_check(h->topo, !ok, err)) return false;
  const int resolved_here = up_run_resolve_model(opt, h->be, cfg, why, sizeof why);
  int resolved_all = 0;
  UP_CHECK_MPI(MPI_Allreduce(&resolved_here, &resolved_all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
  if (!resolved_all) memset(cfg, 0, sizeof *cfg);
  if (up_run_agree_on_check(h->topo, resolved_all && !up_run_check_tp_heads(opt, cfg, err, sizeof err), err))
    return false;
  up_tp_groups_create(&h->tp, h->topo, first, h->be, opt->collective_timeout_s);
  h->tp_created = true;
  return true;
}

/* Each group's all-reduce at the message size of a prefill step, where there is a
 * transport to measure (not the group of one) and a model to size the message by. */
static void probe_tensor_parallel(up_harness *h, const up_model_config *cfg) {
  if (h->tp.transport == UP_TRANSPORT_SELF || cfg->n_layers == 0) return;
  const up_options *opt = h->opt;
  const int64_t tokens = up_tp_probe_tokens(opt->ctx, opt->n_ctx, opt->max_batch_tokens, opt->prefill_chunk);
  if (h->topo->world_rank == 0) {
    h->n_tp_probe = h->topo->dp_size;
    h->tp_probe = up_calloc_or_die((size_t)h->n_tp_probe, sizeof *h->tp_probe, "the probe's rows");
  }
  up_tp_probe_run(h->tp.comm, h->be, h->topo, tokens, cfg->hidden, h->tp_probe);
  if (h->topo->world_rank == 0 && !opt->quiet) up_tp_probe_print(stderr, h->tp_probe, h->n_tp_probe);
}

/* Groups of more than one rank run the sweep of one --tp value: the sweep builds the
 * sharded model and serves through the group (step_sync.h). --kernels and --eval time
 * and score whole models, and a --tp list would regroup the ranks between points:
 * neither is built yet, so both are refused (exit 2) after the checks and the probe. */
static bool refuse_unbuilt_tensor_parallel(const up_harness *h, const char *mode) {
  int32_t largest = 1;
  for (int32_t i = 0; i < h->opt->n_tp; ++i)
    if (h->opt->tp[i] > largest) largest = h->opt->tp[i];
  char err[256] = "";
  if (largest > 1 && strcmp(mode, "sweep") != 0)
    snprintf(err, sizeof err, "--tp %d: the %s mode runs whole models only (use --tp 1)", (int)largest, mode);
  else if (largest > 1 && h->opt->n_tp > 1)
    snprintf(err, sizeof err, "--tp: a list of group sizes is not swept yet (give one value, not %d)",
             (int)h->opt->n_tp);
  return !up_run_agree_on_check(h->topo, err[0] != '\0', err);
}

static void end_tensor_parallel(up_harness *h) {
  if (h->tp_created) up_tp_groups_destroy(&h->tp);
  h->tp_created = false;
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
  h->results = up_run_open_results(h->opt, h->argc, h->argv, h->topo, h->be, model_name, &h->tp, h->tp_probe,
                                   h->n_tp_probe, h->path, &failed);
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
