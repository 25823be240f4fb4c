/* run_setup.c — the set-up every mode shares (see run_setup.h): backend choice and its
 * agreement across ranks, the model preset, and the results file with the run's
 * metadata (producer, command line, hosts, devices, library versions, start time). */
#include "launcher/run_setup.h"

#include "engine/checkpoint/checkpoint.h"

#include <errno.h>
#include <hdf5.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/fatal.h"
#include "launcher/backend_select.h"
#include "launcher/mpi_check.h"

int up_run_agree_on_failure(const up_topology *topo, int failed_here, const char *msg) {
  if (failed_here) {
    if (topo->world_size > 1)
      fprintf(stderr, "uniprefill-bench: rank %d: error: %s\n", topo->world_rank, msg);
    else
      fprintf(stderr, "uniprefill-bench: error: %s\n", msg);
  }
  int failed_any = 0;
  UP_CHECK_MPI(MPI_Allreduce(&failed_here, &failed_any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
  return failed_any;
}

int up_run_agree_on_check(const up_topology *topo, int failed_here, const char *msg) {
  int failed[2] = {failed_here, !failed_here}, totals[2] = {0, 0}; /* any failed, any passed */
  UP_CHECK_MPI(MPI_Allreduce(failed, totals, 2, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
  if (!totals[0]) return 0;
  if (totals[1]) { /* some ranks passed: the failure is this rank's own, so it says which rank it is */
    if (failed_here) fprintf(stderr, "uniprefill-bench: rank %d: error: %s\n", topo->world_rank, msg);
  } else if (topo->world_rank == 0) {
    fprintf(stderr, "uniprefill-bench: error: %s\n", msg);
  }
  return 1;
}

bool up_run_group_ranks(const up_options *opt, up_topology *topo, char *err, size_t err_size) {
  /* The last value is set first, so the first one's groups stay. */
  for (int32_t i = opt->n_tp - 1; i >= 0; --i)
    if (!up_topology_set_tp(topo, opt->tp[i], opt->tp_cross_node, err, err_size)) return false;
  return true;
}

bool up_run_check_tp_heads(const up_options *opt, const up_model_config *cfg, char *err, size_t err_size) {
  for (int32_t i = 0; i < opt->n_tp; ++i) {
    const int32_t tp = opt->tp[i];
    if (cfg->n_heads % tp != 0)
      return up_error(err, err_size, "--tp %d does not divide %s's %d query heads", (int)tp, cfg->name,
                      (int)cfg->n_heads);
    if (cfg->n_kv_heads % tp != 0 && tp % cfg->n_kv_heads != 0)
      return up_error(err, err_size, "--tp %d: %s's %d KV heads neither split over %d ranks nor replicate evenly "
                      "(the group size must divide them or be a multiple of them)", (int)tp, cfg->name,
                      (int)cfg->n_kv_heads, (int)tp);
  }
  return true;
}

bool up_run_on_gpu(const up_backend *be) { return strcmp(be->ops->name, "cuda") == 0; }

up_backend *up_run_select_backend(const up_options *opt, const up_topology *topo) {
  char err[1024] = "", notice[256] = "";
  up_backend *be = up_backend_select(opt->backend, opt->threads, topo->local_rank, notice, sizeof notice, err,
                                     sizeof err);
  if (up_run_agree_on_failure(topo, be == NULL, err)) {
    if (be) be->ops->destroy(be);
    return NULL;
  }
  if (topo->world_rank == 0 && notice[0] && !opt->quiet) fprintf(stderr, "uniprefill-bench: note: %s\n", notice);
  const bool kernel_ok = up_backend_set_attention_kernel(be, opt->attention_kernel, opt->kv_block, err, sizeof err);
  if (up_run_agree_on_failure(topo, !kernel_ok, err)) {
    be->ops->destroy(be);
    return NULL;
  }
  /* --backend auto may fall back to the CPU on some ranks only; the defaults (model,
   * contexts), and so the number of collectives, follow the backend. */
  const int on_gpu_here = up_run_on_gpu(be);
  int on_gpu_any = 0;
  UP_CHECK_MPI(MPI_Allreduce(&on_gpu_here, &on_gpu_any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
  snprintf(err, sizeof err, "this rank runs on the %s backend but another on cuda (use --backend cpu or give "
           "every rank a usable GPU)", be->ops->name);
  if (up_run_agree_on_failure(topo, on_gpu_here != on_gpu_any, err)) {
    be->ops->destroy(be);
    return NULL;
  }
  return be;
}

bool up_run_resolve_model(const up_options *opt, const up_backend *be, up_model_config *cfg, char *err,
                          size_t err_size) {
  const char *model_name = opt->model_given ? opt->model : (up_run_on_gpu(be) ? "llama-3.1-8b" : "tiny-llama");
  const up_model_config *preset = up_model_preset_find(model_name);
  if (up_run_model_is_checkpoint(opt)) {
    up_checkpoint *ck = up_checkpoint_open(model_name, err, err_size);
    if (!ck) return false;
    *cfg = *up_checkpoint_config(ck);
    up_checkpoint_close(ck);
    if (opt->layers > 0 && opt->layers != cfg->n_layers) {
      snprintf(err, err_size, "--layers %d: a checkpoint (%s) keeps its own depth of %d layers", (int)opt->layers,
               model_name, (int)cfg->n_layers);
      return false;
    }
    return true;
  }
  if (!preset) {
    size_t used = (size_t)snprintf(err, err_size, "--model: unknown preset '%s' (known:", model_name);
    for (int32_t i = 0; i < up_model_preset_count() && used < err_size; ++i)
      used += (size_t)snprintf(err + used, err_size - used, " %s", up_model_preset_at(i)->name);
    if (used < err_size) snprintf(err + used, err_size - used, ")");
    return false;
  }
  *cfg = *preset;
  if (opt->layers > 0 && !up_model_config_truncate(cfg, opt->layers)) {
    up_model_config_truncate_error(preset, opt->layers, err, err_size);
    return false;
  }
  return up_model_config_validate(cfg, err, err_size);
}

bool up_run_model_is_checkpoint(const up_options *opt) {
  /* A preset name stays a preset even where a file of that name exists. */
  return opt->model_given && !up_model_preset_find(opt->model) && up_checkpoint_is_path(opt->model);
}

up_model *up_run_create_model(const up_options *opt, const up_model_config *cfg, up_backend *be, up_tp_comm *tp,
                              char *err, size_t err_size) {
  if (!up_run_model_is_checkpoint(opt)) return up_model_create_random_shard(cfg, be, tp, opt->seed);
  up_checkpoint *ck = up_checkpoint_open(opt->model, err, err_size);
  if (!ck) return NULL;
  up_model *model = up_model_create_from_checkpoint_shard(ck, be, tp, err, err_size);
  up_checkpoint_close(ck);
  return model;
}

static void utc_now(char *buf, size_t size, const char *fmt) {
  const time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(buf, size, fmt, &tm);
}

/* mkdir -p of the directory part of path. */
static int make_parent_dirs(const char *path, char *err, size_t err_size) {
  char buf[UP_PATH_MAX];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; *p; ++p) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(buf, 0775) != 0 && errno != EEXIST) {
      snprintf(err, err_size, "cannot create directory %.900s: %s", buf, strerror(errno));
      return -1;
    }
    *p = '/';
  }
  return 0;
}

static void library_versions(char *buf, size_t size) {
  unsigned maj = 0, min = 0, rel = 0;
  H5get_libversion(&maj, &min, &rel);
  char mpi[MPI_MAX_LIBRARY_VERSION_STRING] = "";
  int len = 0;
  UP_CHECK_MPI(MPI_Get_library_version(mpi, &len));
  char *nl = strpbrk(mpi, ",\n");
  if (nl) *nl = '\0';
  snprintf(buf, size, "hdf5 %u.%u.%u; %s", maj, min, rel, mpi);
}

void up_run_join_argv(int argc, char **argv, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i < argc && used + 1 < size; ++i)
    used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? " " : "", argv[i]);
}

/* The tensor-parallel attributes (root attributes beside the run info) into an open file. */
static int write_tp_layout(up_results_file *results, const up_options *opt, const up_topology *topo,
                           const up_tp_groups *groups, const char *tp_ranks, const char *dp_ranks,
                           const up_tp_probe_row *probe, int32_t n_probe, char *err, size_t err_size) {
  char tp_list[UP_MAX_SWEEP * 12] = "", version[256], nccl_env[2048];
  for (int32_t i = 0, used = 0; i < opt->n_tp; ++i)
    used += snprintf(tp_list + used, sizeof tp_list - (size_t)used, "%s%d", i ? "," : "", (int)opt->tp[i]);
  up_tp_transport_version(groups->transport, version, sizeof version);
  up_tp_nccl_env(nccl_env, sizeof nccl_env);
  const up_tp_run_info info = {.tp_list = tp_list, .tp_size = topo->tp_size, .dp_size = topo->dp_size,
                               .tp_ranks = tp_ranks, .dp_ranks = dp_ranks, .tp_spans_hosts = topo->tp_spans_hosts,
                               .transport = up_tp_transport_name(groups->transport), .transport_version = version,
                               .nccl_env = nccl_env, .probe = probe, .n_probe = n_probe};
  return up_results_write_tp(results, &info, err, err_size);
}

up_results_file *up_run_open_results(const up_options *opt, int argc, char **argv, const up_topology *topo,
                                     const up_backend *be, const char *model_name, const up_tp_groups *groups,
                                     const up_tp_probe_row *probe, int32_t n_probe, char *path, int *failed) {
  const int root = topo->world_rank == 0;
  char *hostnames = up_topology_gather_strings(topo, topo->hostname);
  char *devices = up_topology_gather_strings(topo, be->device_name);
  char index[16];
  snprintf(index, sizeof index, "%d", topo->tp_rank);
  char *tp_ranks = up_topology_gather_strings(topo, index);
  snprintf(index, sizeof index, "%d", topo->dp_rank);
  char *dp_ranks = up_topology_gather_strings(topo, index);
  char started[64], argv_joined[4096], libs[512], err[1024] = "";
  utc_now(started, sizeof started, "%Y-%m-%dT%H:%M:%SZ");
  if (opt->output_path[0]) {
    snprintf(path, UP_PATH_MAX, "%s", opt->output_path);
  } else {
    char stamp[32];
    utc_now(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ");
    snprintf(path, UP_PATH_MAX, "results/runs/%s.h5", stamp);
  }
  UP_CHECK_MPI(MPI_Bcast(path, UP_PATH_MAX, MPI_CHAR, 0, MPI_COMM_WORLD));
  up_run_join_argv(argc, argv, argv_joined, sizeof argv_joined);
  library_versions(libs, sizeof libs);
  up_results_file *results = NULL;
  int open_failed = 0;
  if (root) {
    if (!opt->output_path[0] && make_parent_dirs(path, err, sizeof err) != 0) {
      open_failed = 1;
    } else {
      const up_run_info info = {.tool_version = UNIPREFILL_VERSION, .git_commit = UNIPREFILL_GIT_COMMIT,
                                .argv_joined = argv_joined, .hostnames = hostnames, .world_size = topo->world_size,
                                .backend = be->ops->name, .device_names = devices, .model = model_name,
                                .library_versions = libs, .started_utc = started};
      results = up_results_open(path, &info, err, sizeof err);
      if (results && write_tp_layout(results, opt, topo, groups, tp_ranks, dp_ranks, probe, n_probe, err,
                                     sizeof err) != 0) {
        char ignored[256];
        up_results_close(results, ignored, sizeof ignored); /* nothing was published: the file goes */
        results = NULL;
      }
      open_failed = results == NULL;
    }
  }
  free(hostnames);
  free(devices);
  free(tp_ranks);
  free(dp_ranks);
  *failed = up_run_agree_on_failure(topo, open_failed, err);
  return results;
}
