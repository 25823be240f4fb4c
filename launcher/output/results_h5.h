/* results_h5.h — the HDF5 run file (schema in results/README.md): root attributes that
 * describe the producer and the machine, one group per sweep point with its
 * parameters as attributes and compound tables of requests and steps, a summary
 * table with one row per point, and for --kernels a table with one row per kernel
 * case. Every point (every group of kernel cases) is flushed as soon as it is written,
 * so a killed run keeps all finished ones. The file is written beside its path under a
 * temporary name (".NAME.PID.N.tmp") and renamed to its path by the first flush of a
 * point, eval context or kernel group: a run that fails before that writes nothing and
 * leaves an existing file at the path as it was. Only rank 0 writes. */
#ifndef UP_RESULTS_H5_H
#define UP_RESULTS_H5_H

#include <stdint.h>

#include "engine/serve/point_engine.h"
#include "launcher/eval/eval_record.h"
#include "launcher/kernels/kernel_record.h"
#include "launcher/parallel/tp_probe.h"
#include "launcher/sweep/point_summary.h"

/* 2: summary gained the serving metrics (TPOT, ITL, E2E, throughputs, goodput) and
 * points the ragged token_times / token_offsets datasets. */
#define UP_RESULTS_SCHEMA_VERSION 2

typedef struct up_results_file up_results_file;

/* Producer and machine description stored as root attributes. */
typedef struct up_run_info {
  const char *tool_version;
  const char *git_commit;
  const char *argv_joined;
  const char *hostnames;     /* comma-separated, one per rank */
  int32_t world_size;
  const char *backend;
  const char *device_names;  /* comma-separated, one per rank */
  const char *model;
  const char *library_versions; /* "hdf5 1.10.8; Open MPI v4.1.4" */
  const char *started_utc;   /* ISO 8601 */
} up_run_info;

/* The run's tensor-parallel layout, stored as root attributes beside up_run_info's,
 * and the start-up probe's rows as the /tp_probe table (none: no table). */
typedef struct up_tp_run_info {
  const char *tp_list;       /* the --tp values, "1" or "1,2,4" */
  int32_t tp_size;           /* the groups the run starts with: ranks per group */
  int32_t dp_size;           /* and their number */
  const char *tp_ranks;      /* comma-separated, each rank's index in its group */
  const char *dp_ranks;      /* comma-separated, each rank's group */
  int32_t tp_spans_hosts;    /* 1 when a group holds ranks of two hosts (--tp-cross-node) */
  const char *transport;     /* "self", "mpi" or "nccl" */
  const char *transport_version; /* e.g. "NCCL 2.28.9"; "" for self */
  const char *nccl_env;      /* the NCCL_* variables rank 0 saw, "NAME=VALUE" comma-separated */
  const up_tp_probe_row *probe;
  int32_t n_probe;
} up_tp_run_info;

/* Write the tensor-parallel attributes and the probe table into a freshly opened file
 * (before its first point). Returns 0 or -1 with err set. */
int up_results_write_tp(up_results_file *file, const up_tp_run_info *info, char *err, size_t err_size);

/* Point parameters stored as the point group's attributes. */
typedef struct up_point_params {
  int32_t index;
  const char *method;        /* label */
  int32_t ctx;
  int32_t concurrency;
  int32_t output_len;
  int32_t n_requests;
  uint64_t seed;
  const char *workload;      /* "closed-loop", "open-loop rate=...", "trace:FILE speedup=..." */
  const char *prompt_source; /* --prompt-source as resolved: "random", "text", "text:PATHS" or FILE.jsonl */
  int64_t prompts_clamped;   /* timed workloads: lengths fitted to the model (open_loop.h) */
  int64_t prompts_raised;
  int64_t outputs_raised;
  int64_t lines_skipped;     /* trace lines skipped with --trace-lenient */
  float top_p;               /* UniPrefill knobs; NaN for other methods */
  float keep_fraction;
  int32_t block;
  int32_t sink;
  int32_t last_q;
  const char *drop_layers;   /* "7,11,15" or "" */
  const char *method_spec;   /* the method with every option spelled out (up_method_spec_describe) */
  int32_t max_seqs;
  int64_t max_batch_tokens;
  int32_t kv_block_tokens;
  int64_t kv_blocks_total;
  int64_t kv_blocks_peak;
  int64_t kv_block_bytes;
  int32_t max_resident;      /* most requests holding KV at once (summed over ranks) */
  int32_t repetitions;       /* rounds the point's requests ran in (--repetitions) */
  int32_t prefill_chunk;     /* prefill policy the point ran: 0 whole prompt, N chunks of N tokens */
  int32_t tp;                /* ranks per tensor-parallel group the point ran on (--tp) */
  int32_t dp;                /* its data-parallel replicas: world size / tp */
  const char *tp_transport;  /* its groups' transport: "self", "mpi" or "nccl" */
  /* Not attributes: the round of each request row and each step row (NULL: all 0), and
   * the point's rounds as summary rows, round r in row r (the "rounds" table; NULL: none). */
  const int32_t *request_rounds;
  const int32_t *step_rounds;
  const up_point_summary *round_rows;
  int32_t n_round_rows;
} up_point_params;

/* Create the file under its temporary name (its directory must exist and be
 * writable; path must not be a directory); returns NULL with a message naming the path
 * and the cause. */
up_results_file *up_results_open(const char *path, const up_run_info *info, char *err, size_t err_size);

/* Write one point: group /points/NNNN with attributes, tables "requests", "steps" and "rounds",
 * datasets "request_layer_tokens" [n_requests][n_layers], "step_layer_tokens"
 * [n_steps][n_layers], "step_attention_density" [n_steps][n_layers],
 * "attention_density" [n_layers], "token_offsets" [n_requests + 1] and "token_times"
 * [token_offsets[n_requests]]; append its row to /summary; flush. Returns 0 or -1
 * with err set. */
int up_results_write_point(up_results_file *file, const up_point_params *params, const up_point_summary *summary,
                           const up_point_result *result, char *err, size_t err_size);

/* Rewrite the columns of /summary that compare points (speedup_vs_dense and the TP
 * scaling: tp_speedup, tp_efficiency, tp_efficiency_model) once all points are known
 * (rows in point order). */
int up_results_update_speedups(up_results_file *file, const up_point_summary *rows, int32_t n_rows, char *err,
                               size_t err_size);

/* The --kernels run's settings, stored as attributes of /kernels: what every row's
 * inputs were made with beyond its own fields. */
typedef struct up_kernel_table_params {
  int32_t kv_block_tokens; /* KV pool block size of the attention and selection cases */
  float top_p;             /* the selection's knobs (--uniprefill-*) */
  float keep_fraction;
  int32_t block;
  int32_t sink;
  int32_t last_q;
  uint64_t seed;           /* of the random inputs */
} up_kernel_table_params;

/* Append rows to the /kernels table (the first call creates it, with zero rows too,
 * and writes params as its attributes), then flush. Returns 0 or -1 with err set. */
int up_results_append_kernels(up_results_file *file, const up_kernel_table_params *params,
                              const up_kernel_record *rows, int32_t n_rows, char *err, size_t err_size);

/* Append one group of --eval rows (one context: every method's samples and summary
 * rows) to the /eval_samples and /eval_summary tables, the samples' prompt rows per
 * layer [n_records][n_layers] as /eval_layer_rows/NNNN and their prefills' attention
 * density per layer (same shape, float64) as /eval_layer_density/NNNN; flush. 0 or -1
 * with err set. */
int up_results_append_eval(up_results_file *file, const up_eval_record *records, const int32_t *layer_rows,
                           const double *layer_density, int32_t n_records, int32_t n_layers,
                           const up_eval_summary *summaries, int32_t n_summaries, char *err, size_t err_size);

/* Close the file, and remove it when nothing was flushed to it (it never reached its
 * path); returns 0 or -1 with err set. */
int up_results_close(up_results_file *file, char *err, size_t err_size);

#endif
