/* run_setup.h — the set-up steps every mode of uniprefill-bench (the sweep, --kernels,
 * --eval) takes, which harness.h strings together: pick this rank's backend and check
 * that every rank got the same kind, resolve the model (a preset, by default the one
 * the backend suggests, or a checkpoint), group the ranks for tensor parallelism,
 * create the results file on rank 0 with the run's metadata (tensor-parallel layout and
 * probe included), and agree on failures so that every rank returns the same exit code.
 * All collective over MPI_COMM_WORLD. */
#ifndef UP_RUN_SETUP_H
#define UP_RUN_SETUP_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/model/model.h"
#include "engine/model/model_config.h"
#include "kernels/ops.h"
#include "launcher/cli.h"
#include "launcher/output/results_h5.h"
#include "launcher/parallel/tp_groups.h"
#include "launcher/topology.h"

/* Every rank reaches the same verdict: non-zero when any rank failed. Each failing rank
 * prints msg. */
int up_run_agree_on_failure(const up_topology *topo, int failed_here, const char *msg);

/* The same verdict for a check every rank makes on the same inputs (the options, the
 * model config): where every rank failed, rank 0 alone prints msg, once; where only
 * some did (a file one host cannot read), each of those prints it with its rank. */
int up_run_agree_on_check(const up_topology *topo, int failed_here, const char *msg);

/* Collective: every --tp value must group the job's ranks (topology.h: dividing the
 * world, groups inside one host unless --tp-cross-node); topo keeps the first value's
 * groups. false with the reason (bad input: exit 2), the same on every rank. */
bool up_run_group_ranks(const up_options *opt, up_topology *topo, char *err, size_t err_size);

/* Whether every --tp value splits the model's attention heads: it divides the query
 * heads, and the KV heads divide among the ranks or are replicated (KV heads dividing
 * the group size). false with the reason (bad input: exit 2). */
bool up_run_check_tp_heads(const up_options *opt, const up_model_config *cfg, char *err, size_t err_size);

/* This rank's backend (--backend), the same kind on every rank; NULL on every rank,
 * with the reason printed, when one cannot be had (exit code 2). Rank 0 prints the
 * note of an automatic fall-back to the CPU unless --quiet. */
up_backend *up_run_select_backend(const up_options *opt, const up_topology *topo);

/* Whether the backend is the GPU one (whose defaults differ: model, contexts). */
bool up_run_on_gpu(const up_backend *be);

/* The model config: --model (a preset, or a checkpoint's config.json / GGUF metadata) or
 * the backend's default preset (tiny-llama on the CPU, llama-3.1-8b on a GPU), a preset
 * reduced to --layers, validated; false with a message. */
bool up_run_resolve_model(const up_options *opt, const up_backend *be, up_model_config *cfg, char *err,
                          size_t err_size);

/* Whether --model names a checkpoint (a .gguf file or a Hugging Face directory) rather
 * than a preset; the one rule every mode uses. */
bool up_run_model_is_checkpoint(const up_options *opt);

/* This rank's shard (tp->rank of tp's group; the whole model in a group of one) of the
 * model the config came from: seeded random weights for a preset, the checkpoint's
 * weights for a path. NULL with a message when the checkpoint cannot be loaded. tp
 * outlives the model. */
up_model *up_run_create_model(const up_options *opt, const up_model_config *cfg, up_backend *be, up_tp_comm *tp,
                              char *err, size_t err_size);

/* argv joined by spaces into buf (cut at size), as the run file and the preamble show it. */
void up_run_join_argv(int argc, char **argv, char *buf, size_t size);

/* Rank 0 creates the results file (-o PATH, or results/runs/<UTC timestamp>.h5 with its
 * directories) holding the run's metadata, the groups' layout and the probe's rows
 * (rank 0's; n_probe 0: none); path (UP_PATH_MAX chars) receives its name on
 * every rank. Returns
 * the file on rank 0 and NULL elsewhere; *failed is the same on every rank, non-zero
 * (after the message) when it could not be created. */
up_results_file *up_run_open_results(const up_options *opt, int argc, char **argv, const up_topology *topo,
                                     const up_backend *be, const char *model_name, const up_tp_groups *groups,
                                     const up_tp_probe_row *probe, int32_t n_probe, char *path, int *failed);

#endif
