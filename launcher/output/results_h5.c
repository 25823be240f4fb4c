/* results_h5.c — writes the HDF5 run file described in results/README.md: root
 * attributes, one group per sweep point (parameter attributes, request and step tables,
 * per-layer token datasets, ragged output-token times) and the appendable /summary
 * table. Owns the mapping from the record structs to HDF5 compound types; it never
 * computes metrics (point_summary.c does) and never talks MPI (only rank 0 calls it).
 * Every HDF5 call is checked and a failure becomes a message naming the file, the
 * object and HDF5's own cause. The file is written under a temporary name beside its
 * target and renamed into place when its first point (eval context, kernel group) is
 * flushed: a run that fails before that leaves nothing, and an existing file at the
 * target stays untouched. */
#include "launcher/output/results_h5.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <hdf5_hl.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fatal.h"

/* Enough for the widest record (up_point_summary has 62 members). */
#define UP_TABLE_MAX_FIELDS 72
/* Records per chunk of the per-point tables: large enough to keep chunk overhead low
 * for thousands of requests, small enough not to bloat tiny points. */
#define UP_TABLE_CHUNK_RECORDS 1024
/* /summary grows one row per point; a sweep has tens to hundreds of points. */
#define UP_SUMMARY_CHUNK_RECORDS 64
/* /kernels grows a group of cases at a time; a run has tens of cases per rank. */
#define UP_KERNELS_CHUNK_RECORDS 64

/* A record struct described as an H5TB table: names, offsets and sizes from the C
 * struct, HDF5 member types owned (copied) so they can all be closed the same way. */
typedef struct up_table_layout {
  const char *title;
  size_t n_fields;
  size_t record_size;
  const char *names[UP_TABLE_MAX_FIELDS];
  size_t offsets[UP_TABLE_MAX_FIELDS];
  size_t sizes[UP_TABLE_MAX_FIELDS];
  hid_t types[UP_TABLE_MAX_FIELDS];
} up_table_layout;

struct up_results_file {
  char *path;
  char *temp_path; /* where the file is written until it is published at path */
  bool published;
  hid_t file;
  hid_t points; /* the /points group */
  hsize_t n_summary_rows;
  up_table_layout summary_layout;
  up_table_layout request_layout;
  up_table_layout step_layout;
  up_table_layout kernel_layout; /* built by the first kernel append (n_fields 0 until then) */
  bool kernels_created;
  up_table_layout eval_sample_layout;  /* --eval tables, built by the first append */
  up_table_layout eval_summary_layout;
  bool eval_samples_created, eval_summary_created;
  int32_t n_eval_groups;               /* /eval_layer_rows/NNNN datasets written */
};

/* Where a failure is reported: the file's path names it in every message. */
typedef struct up_h5_err {
  const char *path;
  char *buf;
  size_t size;
} up_h5_err;

/* ---- error reporting -------------------------------------------------------- */

/* H5E_WALK_UPWARD visits the innermost error first: the place that detected the
 * problem, whose description carries the useful detail (errno text, names). */
static herr_t up_h5_first_error(unsigned n, const H5E_error2_t *desc, void *client) {
  char *cause = client;
  if (n == 0 && desc->desc != NULL && desc->desc[0] != '\0') {
    snprintf(cause, 512, "%s (in %s)", desc->desc, desc->func_name ? desc->func_name : "?");
  }
  return 0;
}

/* Set the message "results file 'PATH': WHAT: CAUSE" from HDF5's error stack. */
static void up_h5_fail(const up_h5_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void up_h5_fail(const up_h5_err *e, const char *fmt, ...) {
  if (e->buf == NULL || e->size == 0) return;
  char what[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  char cause[512] = "no detail from HDF5";
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, up_h5_first_error, cause);
  H5Eclear2(H5E_DEFAULT);
  snprintf(e->buf, e->size, "results file '%s': %s: %s", e->path, what, cause);
}

/* A failure found by this file (bad arguments), not by HDF5. */
static void up_h5_fail_plain(const up_h5_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void up_h5_fail_plain(const up_h5_err *e, const char *fmt, ...) {
  if (e->buf == NULL || e->size == 0) return;
  char what[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  snprintf(e->buf, e->size, "results file '%s': %s", e->path, what);
}

/* ---- field specs ------------------------------------------------------------ */

/* How a struct member is stored. UP_KIND_CHARS is a char array inside a record (a
 * fixed-length table string); UP_KIND_CSTR a const char * member (an attribute). */
typedef enum up_field_kind {
  UP_KIND_I32,
  UP_KIND_I64,
  UP_KIND_U64,
  UP_KIND_F32,
  UP_KIND_F64,
  UP_KIND_CHARS,
  UP_KIND_CSTR,
} up_field_kind;

/* One struct member: the HDF5 name is the member's name, so files and C agree. */
typedef struct up_field_spec {
  const char *name;
  size_t offset;
  size_t size;
  up_field_kind kind;
} up_field_spec;

#define UP_FIELD(st, m, kind) {#m, offsetof(st, m), sizeof(((st *)0)->m), kind}
#define UP_N_SPECS(a) (sizeof(a) / sizeof((a)[0]))

static const up_field_spec up_summary_specs[] = {
    UP_FIELD(up_point_summary, point_index, UP_KIND_I32),
    UP_FIELD(up_point_summary, method, UP_KIND_CHARS),
    UP_FIELD(up_point_summary, ctx, UP_KIND_I32),
    UP_FIELD(up_point_summary, concurrency, UP_KIND_I32),
    UP_FIELD(up_point_summary, output_len, UP_KIND_I32),
    UP_FIELD(up_point_summary, n_requests, UP_KIND_I32),
    UP_FIELD(up_point_summary, n_ok, UP_KIND_I32),
    UP_FIELD(up_point_summary, n_failed, UP_KIND_I32),
    UP_FIELD(up_point_summary, ttft_mean_ms, UP_KIND_F64),
    UP_FIELD(up_point_summary, ttft_p50_ms, UP_KIND_F64),
    UP_FIELD(up_point_summary, ttft_p99_ms, UP_KIND_F64),
    UP_FIELD(up_point_summary, prefill_tokens_per_s, UP_KIND_F64),
    UP_FIELD(up_point_summary, model_tflops_per_s, UP_KIND_F64),
    UP_FIELD(up_point_summary, kept_fraction, UP_KIND_F64),
    UP_FIELD(up_point_summary, speedup_vs_dense, UP_KIND_F64),
    UP_FIELD(up_point_summary, predicted_speedup, UP_KIND_F64),
    UP_FIELD(up_point_summary, wall_s, UP_KIND_F64),
    UP_FIELD(up_point_summary, ttft_std_ms, UP_KIND_F64),
    UP_FIELD(up_point_summary, ttft_p90_ms, UP_KIND_F64),
    UP_FIELD(up_point_summary, tpot_mean_ms, UP_KIND_F64),
    UP_FIELD(up_point_summary, tpot_p50_ms, UP_KIND_F64),
    UP_FIELD(up_point_summary, tpot_std_ms, UP_KIND_F64),
    UP_FIELD(up_point_summary, tpot_p90_ms, UP_KIND_F64),
    UP_FIELD(up_point_summary, tpot_p99_ms, UP_KIND_F64),
    UP_FIELD(up_point_summary, itl_mean_ms, UP_KIND_F64),
    UP_FIELD(up_point_summary, itl_p50_ms, UP_KIND_F64),
    UP_FIELD(up_point_summary, itl_std_ms, UP_KIND_F64),
    UP_FIELD(up_point_summary, itl_p90_ms, UP_KIND_F64),
    UP_FIELD(up_point_summary, itl_p99_ms, UP_KIND_F64),
    UP_FIELD(up_point_summary, e2e_mean_ms, UP_KIND_F64),
    UP_FIELD(up_point_summary, e2e_p50_ms, UP_KIND_F64),
    UP_FIELD(up_point_summary, e2e_std_ms, UP_KIND_F64),
    UP_FIELD(up_point_summary, e2e_p90_ms, UP_KIND_F64),
    UP_FIELD(up_point_summary, e2e_p99_ms, UP_KIND_F64),
    UP_FIELD(up_point_summary, duration_s, UP_KIND_F64),
    UP_FIELD(up_point_summary, requests_per_s, UP_KIND_F64),
    UP_FIELD(up_point_summary, input_tokens_per_s, UP_KIND_F64),
    UP_FIELD(up_point_summary, output_tokens_per_s, UP_KIND_F64),
    UP_FIELD(up_point_summary, total_tokens_per_s, UP_KIND_F64),
    UP_FIELD(up_point_summary, slo_ttft_ms, UP_KIND_F64),
    UP_FIELD(up_point_summary, slo_tpot_ms, UP_KIND_F64),
    UP_FIELD(up_point_summary, n_good, UP_KIND_I32),
    UP_FIELD(up_point_summary, goodput_requests_per_s, UP_KIND_F64),
    UP_FIELD(up_point_summary, kv_bytes_per_request, UP_KIND_F64),
    UP_FIELD(up_point_summary, kv_held_bytes_per_request, UP_KIND_F64),
    UP_FIELD(up_point_summary, kv_dense_bytes_per_request, UP_KIND_F64),
    UP_FIELD(up_point_summary, kv_fraction_of_dense, UP_KIND_F64),
    UP_FIELD(up_point_summary, max_resident, UP_KIND_I32),
    UP_FIELD(up_point_summary, repetitions, UP_KIND_I32),
    UP_FIELD(up_point_summary, percentiles_few_requests, UP_KIND_I32),
    UP_FIELD(up_point_summary, ttft_mean_round_std_ms, UP_KIND_F64),
    UP_FIELD(up_point_summary, tpot_mean_round_std_ms, UP_KIND_F64),
    UP_FIELD(up_point_summary, itl_mean_round_std_ms, UP_KIND_F64),
    UP_FIELD(up_point_summary, e2e_mean_round_std_ms, UP_KIND_F64),
    UP_FIELD(up_point_summary, prefill_tokens_per_s_round_std, UP_KIND_F64),
    UP_FIELD(up_point_summary, model_tflops_per_s_round_std, UP_KIND_F64),
    UP_FIELD(up_point_summary, duration_round_std_s, UP_KIND_F64),
    UP_FIELD(up_point_summary, requests_per_s_round_std, UP_KIND_F64),
    UP_FIELD(up_point_summary, input_tokens_per_s_round_std, UP_KIND_F64),
    UP_FIELD(up_point_summary, output_tokens_per_s_round_std, UP_KIND_F64),
    UP_FIELD(up_point_summary, total_tokens_per_s_round_std, UP_KIND_F64),
    UP_FIELD(up_point_summary, goodput_requests_per_s_round_std, UP_KIND_F64),
    UP_FIELD(up_point_summary, tp, UP_KIND_I32),
    UP_FIELD(up_point_summary, dp, UP_KIND_I32),
    UP_FIELD(up_point_summary, tp_speedup, UP_KIND_F64),
    UP_FIELD(up_point_summary, tp_efficiency, UP_KIND_F64),
    UP_FIELD(up_point_summary, tp_comm_model_ms, UP_KIND_F64),
    UP_FIELD(up_point_summary, tp_efficiency_model, UP_KIND_F64),
    UP_FIELD(up_point_summary, tp_comm_ms, UP_KIND_F64),
    UP_FIELD(up_point_summary, tp_comm_share, UP_KIND_F64),
    UP_FIELD(up_point_summary, attention_tflops, UP_KIND_F64),
};

/* The rows of the per-point request and step tables: the engine's record and the round
 * (--repetitions) it belongs to, which only the sweep knows. */
typedef struct up_request_row {
  up_request_record record;
  int32_t round;
} up_request_row;

typedef struct up_step_row {
  up_step_record record;
  int32_t round;
} up_step_row;

/* A member of the record inside a row, named as the record names it. */
#define UP_ROW_FIELD(st, m, kind) {#m, offsetof(st, record.m), sizeof(((st *)0)->record.m), kind}

static const up_field_spec up_request_specs[] = {
    UP_ROW_FIELD(up_request_row, id, UP_KIND_I64),
    UP_ROW_FIELD(up_request_row, rank, UP_KIND_I32),
    UP_ROW_FIELD(up_request_row, status, UP_KIND_I32),
    UP_ROW_FIELD(up_request_row, prompt_len, UP_KIND_I32),
    UP_ROW_FIELD(up_request_row, kept_len, UP_KIND_I32),
    UP_ROW_FIELD(up_request_row, output_len, UP_KIND_I32),
    UP_ROW_FIELD(up_request_row, first_token, UP_KIND_I32),
    UP_ROW_FIELD(up_request_row, prefill_steps, UP_KIND_I32),
    UP_ROW_FIELD(up_request_row, arrival_s, UP_KIND_F64),
    UP_ROW_FIELD(up_request_row, admitted_s, UP_KIND_F64),
    UP_ROW_FIELD(up_request_row, first_token_s, UP_KIND_F64),
    UP_ROW_FIELD(up_request_row, finish_s, UP_KIND_F64),
    UP_ROW_FIELD(up_request_row, ttft_ms, UP_KIND_F64),
    UP_ROW_FIELD(up_request_row, tpot_ms, UP_KIND_F64),
    UP_ROW_FIELD(up_request_row, e2e_ms, UP_KIND_F64),
    UP_ROW_FIELD(up_request_row, kv_bytes, UP_KIND_I64),
    UP_ROW_FIELD(up_request_row, kv_held_bytes, UP_KIND_I64),
    UP_ROW_FIELD(up_request_row, kv_dense_bytes, UP_KIND_I64),
    UP_ROW_FIELD(up_request_row, error, UP_KIND_CHARS),
    UP_FIELD(up_request_row, round, UP_KIND_I32),
};

static const up_field_spec up_step_specs[] = {
    UP_ROW_FIELD(up_step_row, index, UP_KIND_I64),
    UP_ROW_FIELD(up_step_row, rank, UP_KIND_I32),
    UP_ROW_FIELD(up_step_row, n_seqs, UP_KIND_I32),
    UP_ROW_FIELD(up_step_row, prefill_tokens, UP_KIND_I64),
    UP_ROW_FIELD(up_step_row, decode_tokens, UP_KIND_I64),
    UP_ROW_FIELD(up_step_row, start_s, UP_KIND_F64),
    UP_ROW_FIELD(up_step_row, end_s, UP_KIND_F64),
    UP_ROW_FIELD(up_step_row, gemm_ms, UP_KIND_F64),
    UP_ROW_FIELD(up_step_row, attention_ms, UP_KIND_F64),
    UP_ROW_FIELD(up_step_row, selection_ms, UP_KIND_F64),
    UP_ROW_FIELD(up_step_row, other_ms, UP_KIND_F64),
    UP_FIELD(up_step_row, round, UP_KIND_I32),
};

static const up_field_spec up_eval_sample_specs[] = {
    UP_FIELD(up_eval_record, method, UP_KIND_CHARS),
    UP_FIELD(up_eval_record, task, UP_KIND_CHARS),
    UP_FIELD(up_eval_record, ctx, UP_KIND_I32),
    UP_FIELD(up_eval_record, sample, UP_KIND_I32),
    UP_FIELD(up_eval_record, prompt_tokens, UP_KIND_I32),
    UP_FIELD(up_eval_record, depth, UP_KIND_F32),
    UP_FIELD(up_eval_record, score, UP_KIND_F32),
    UP_FIELD(up_eval_record, partial, UP_KIND_F32),
    UP_FIELD(up_eval_record, first_token, UP_KIND_I32),
    UP_FIELD(up_eval_record, dense_first_token, UP_KIND_I32),
    UP_FIELD(up_eval_record, top1_agrees, UP_KIND_I32),
    UP_FIELD(up_eval_record, kl_vs_dense, UP_KIND_F64),
    UP_FIELD(up_eval_record, kept_fraction, UP_KIND_F32),
    UP_FIELD(up_eval_record, generated_tokens, UP_KIND_I32),
    UP_FIELD(up_eval_record, stopped, UP_KIND_I32),
    UP_FIELD(up_eval_record, prefill_decode_ms, UP_KIND_F64),
    UP_FIELD(up_eval_record, expected, UP_KIND_CHARS),
    UP_FIELD(up_eval_record, generated, UP_KIND_CHARS),
    UP_FIELD(up_eval_record, source_file, UP_KIND_CHARS),
    UP_FIELD(up_eval_record, source_line, UP_KIND_I32),
    UP_FIELD(up_eval_record, scoring, UP_KIND_CHARS),
    UP_FIELD(up_eval_record, any_found, UP_KIND_F32),
    UP_FIELD(up_eval_record, content_step, UP_KIND_I32),
    UP_FIELD(up_eval_record, content_token, UP_KIND_I32),
    UP_FIELD(up_eval_record, dense_content_token, UP_KIND_I32),
    UP_FIELD(up_eval_record, top1_content_agrees, UP_KIND_I32),
    UP_FIELD(up_eval_record, kl_content, UP_KIND_F64),
    UP_FIELD(up_eval_record, same_answer, UP_KIND_I32),
    UP_FIELD(up_eval_record, needle_tokens, UP_KIND_I32),
    UP_FIELD(up_eval_record, needle_drops_survived, UP_KIND_I32),
};

static const up_field_spec up_eval_summary_specs[] = {
    UP_FIELD(up_eval_summary, method, UP_KIND_CHARS),
    UP_FIELD(up_eval_summary, task, UP_KIND_CHARS),
    UP_FIELD(up_eval_summary, ctx, UP_KIND_I32),
    UP_FIELD(up_eval_summary, n_samples, UP_KIND_I32),
    UP_FIELD(up_eval_summary, accuracy, UP_KIND_F64),
    UP_FIELD(up_eval_summary, partial, UP_KIND_F64),
    UP_FIELD(up_eval_summary, top1_agreement, UP_KIND_F64),
    UP_FIELD(up_eval_summary, kl_mean, UP_KIND_F64),
    UP_FIELD(up_eval_summary, kl_max, UP_KIND_F64),
    UP_FIELD(up_eval_summary, kept_fraction, UP_KIND_F64),
    UP_FIELD(up_eval_summary, kept_after_drops, UP_KIND_CHARS),
    UP_FIELD(up_eval_summary, prompt_tokens_mean, UP_KIND_F64),
    UP_FIELD(up_eval_summary, top1_content_agreement, UP_KIND_F64),
    UP_FIELD(up_eval_summary, kl_content_mean, UP_KIND_F64),
    UP_FIELD(up_eval_summary, n_kl_content, UP_KIND_I32),
    UP_FIELD(up_eval_summary, same_answer, UP_KIND_F64),
    UP_FIELD(up_eval_summary, needle_survival, UP_KIND_CHARS),
    UP_FIELD(up_eval_summary, needle_survival_all, UP_KIND_F64),
    UP_FIELD(up_eval_summary, n_needle_samples, UP_KIND_I32),
};

static const up_field_spec up_kernel_specs[] = {
    UP_FIELD(up_kernel_record, index, UP_KIND_I32),
    UP_FIELD(up_kernel_record, rank, UP_KIND_I32),
    UP_FIELD(up_kernel_record, kernel, UP_KIND_CHARS),
    UP_FIELD(up_kernel_record, label, UP_KIND_CHARS),
    UP_FIELD(up_kernel_record, shape, UP_KIND_CHARS),
    UP_FIELD(up_kernel_record, m, UP_KIND_I64),
    UP_FIELD(up_kernel_record, n, UP_KIND_I64),
    UP_FIELD(up_kernel_record, k, UP_KIND_I64),
    UP_FIELD(up_kernel_record, batch, UP_KIND_I32),
    UP_FIELD(up_kernel_record, seq_len, UP_KIND_I32),
    UP_FIELD(up_kernel_record, tokens, UP_KIND_I64),
    UP_FIELD(up_kernel_record, n_heads, UP_KIND_I32),
    UP_FIELD(up_kernel_record, n_kv_heads, UP_KIND_I32),
    UP_FIELD(up_kernel_record, head_dim, UP_KIND_I32),
    UP_FIELD(up_kernel_record, warmup, UP_KIND_I32),
    UP_FIELD(up_kernel_record, repeats, UP_KIND_I32),
    UP_FIELD(up_kernel_record, flush_bytes, UP_KIND_I64),
    UP_FIELD(up_kernel_record, median_ms, UP_KIND_F64),
    UP_FIELD(up_kernel_record, min_ms, UP_KIND_F64),
    UP_FIELD(up_kernel_record, max_ms, UP_KIND_F64),
    UP_FIELD(up_kernel_record, flop, UP_KIND_F64),
    UP_FIELD(up_kernel_record, bytes, UP_KIND_F64),
    UP_FIELD(up_kernel_record, tflops_per_s, UP_KIND_F64),
    UP_FIELD(up_kernel_record, gb_per_s, UP_KIND_F64),
    UP_FIELD(up_kernel_record, peak_tflops_per_s, UP_KIND_F64),
    UP_FIELD(up_kernel_record, peak_gb_per_s, UP_KIND_F64),
    UP_FIELD(up_kernel_record, flop_floor_ms, UP_KIND_F64),
    UP_FIELD(up_kernel_record, byte_floor_ms, UP_KIND_F64),
    UP_FIELD(up_kernel_record, floor_ms, UP_KIND_F64),
    UP_FIELD(up_kernel_record, floor_fraction, UP_KIND_F64),
    UP_FIELD(up_kernel_record, target, UP_KIND_CHARS),
    UP_FIELD(up_kernel_record, target_tflops_per_s, UP_KIND_F64),
    UP_FIELD(up_kernel_record, target_ms, UP_KIND_F64),
    UP_FIELD(up_kernel_record, goal_tflops_per_s, UP_KIND_F64),
    UP_FIELD(up_kernel_record, target_met, UP_KIND_I32),
    UP_FIELD(up_kernel_record, goal_met, UP_KIND_I32),
    UP_FIELD(up_kernel_record, reference_tflops_per_s, UP_KIND_F64),
    UP_FIELD(up_kernel_record, reference_ms, UP_KIND_F64),
    UP_FIELD(up_kernel_record, basis, UP_KIND_CHARS),
    UP_FIELD(up_kernel_record, kept_fraction, UP_KIND_F64),
    UP_FIELD(up_kernel_record, error, UP_KIND_F64),
    UP_FIELD(up_kernel_record, error_limit, UP_KIND_F64),
};

static const up_field_spec up_kernel_table_specs[] = {
    UP_FIELD(up_kernel_table_params, kv_block_tokens, UP_KIND_I32),
    UP_FIELD(up_kernel_table_params, top_p, UP_KIND_F32),
    UP_FIELD(up_kernel_table_params, keep_fraction, UP_KIND_F32),
    UP_FIELD(up_kernel_table_params, block, UP_KIND_I32),
    UP_FIELD(up_kernel_table_params, sink, UP_KIND_I32),
    UP_FIELD(up_kernel_table_params, last_q, UP_KIND_I32),
    UP_FIELD(up_kernel_table_params, seed, UP_KIND_U64),
};

static const up_field_spec up_run_info_specs[] = {
    UP_FIELD(up_run_info, tool_version, UP_KIND_CSTR),
    UP_FIELD(up_run_info, git_commit, UP_KIND_CSTR),
    {"argv", offsetof(up_run_info, argv_joined), sizeof(const char *), UP_KIND_CSTR},
    UP_FIELD(up_run_info, hostnames, UP_KIND_CSTR),
    UP_FIELD(up_run_info, world_size, UP_KIND_I32),
    UP_FIELD(up_run_info, backend, UP_KIND_CSTR),
    UP_FIELD(up_run_info, device_names, UP_KIND_CSTR),
    UP_FIELD(up_run_info, model, UP_KIND_CSTR),
    UP_FIELD(up_run_info, library_versions, UP_KIND_CSTR),
    UP_FIELD(up_run_info, started_utc, UP_KIND_CSTR),
};

static const up_field_spec up_tp_run_info_specs[] = {
    UP_FIELD(up_tp_run_info, tp_list, UP_KIND_CSTR),
    UP_FIELD(up_tp_run_info, tp_size, UP_KIND_I32),
    UP_FIELD(up_tp_run_info, dp_size, UP_KIND_I32),
    UP_FIELD(up_tp_run_info, tp_ranks, UP_KIND_CSTR),
    UP_FIELD(up_tp_run_info, dp_ranks, UP_KIND_CSTR),
    UP_FIELD(up_tp_run_info, tp_spans_hosts, UP_KIND_I32),
    {"tp_transport", offsetof(up_tp_run_info, transport), sizeof(const char *), UP_KIND_CSTR},
    {"tp_transport_version", offsetof(up_tp_run_info, transport_version), sizeof(const char *), UP_KIND_CSTR},
    UP_FIELD(up_tp_run_info, nccl_env, UP_KIND_CSTR),
};

static const up_field_spec up_tp_probe_specs[] = {
    UP_FIELD(up_tp_probe_row, group, UP_KIND_I32),
    UP_FIELD(up_tp_probe_row, ranks, UP_KIND_I32),
    UP_FIELD(up_tp_probe_row, transport, UP_KIND_CHARS),
    UP_FIELD(up_tp_probe_row, type, UP_KIND_CHARS),
    UP_FIELD(up_tp_probe_row, tokens, UP_KIND_I64),
    UP_FIELD(up_tp_probe_row, hidden, UP_KIND_I64),
    UP_FIELD(up_tp_probe_row, count, UP_KIND_I64),
    UP_FIELD(up_tp_probe_row, bytes, UP_KIND_I64),
    UP_FIELD(up_tp_probe_row, iters, UP_KIND_I32),
    UP_FIELD(up_tp_probe_row, time_us, UP_KIND_F64),
    UP_FIELD(up_tp_probe_row, algbw_gbps, UP_KIND_F64),
    UP_FIELD(up_tp_probe_row, busbw_gbps, UP_KIND_F64),
};

static const up_field_spec up_point_params_specs[] = {
    UP_FIELD(up_point_params, index, UP_KIND_I32),
    UP_FIELD(up_point_params, method, UP_KIND_CSTR),
    UP_FIELD(up_point_params, ctx, UP_KIND_I32),
    UP_FIELD(up_point_params, concurrency, UP_KIND_I32),
    UP_FIELD(up_point_params, output_len, UP_KIND_I32),
    UP_FIELD(up_point_params, n_requests, UP_KIND_I32),
    UP_FIELD(up_point_params, seed, UP_KIND_U64),
    UP_FIELD(up_point_params, workload, UP_KIND_CSTR),
    UP_FIELD(up_point_params, prompt_source, UP_KIND_CSTR),
    UP_FIELD(up_point_params, prompts_clamped, UP_KIND_I64),
    UP_FIELD(up_point_params, prompts_raised, UP_KIND_I64),
    UP_FIELD(up_point_params, outputs_raised, UP_KIND_I64),
    UP_FIELD(up_point_params, lines_skipped, UP_KIND_I64),
    UP_FIELD(up_point_params, top_p, UP_KIND_F32),
    UP_FIELD(up_point_params, keep_fraction, UP_KIND_F32),
    UP_FIELD(up_point_params, block, UP_KIND_I32),
    UP_FIELD(up_point_params, sink, UP_KIND_I32),
    UP_FIELD(up_point_params, last_q, UP_KIND_I32),
    UP_FIELD(up_point_params, drop_layers, UP_KIND_CSTR),
    UP_FIELD(up_point_params, method_spec, UP_KIND_CSTR),
    UP_FIELD(up_point_params, max_seqs, UP_KIND_I32),
    UP_FIELD(up_point_params, max_batch_tokens, UP_KIND_I64),
    UP_FIELD(up_point_params, kv_block_tokens, UP_KIND_I32),
    UP_FIELD(up_point_params, kv_blocks_total, UP_KIND_I64),
    UP_FIELD(up_point_params, kv_blocks_peak, UP_KIND_I64),
    UP_FIELD(up_point_params, kv_block_bytes, UP_KIND_I64),
    UP_FIELD(up_point_params, max_resident, UP_KIND_I32),
    UP_FIELD(up_point_params, repetitions, UP_KIND_I32),
    UP_FIELD(up_point_params, prefill_chunk, UP_KIND_I32),
    UP_FIELD(up_point_params, tp, UP_KIND_I32),
    UP_FIELD(up_point_params, dp, UP_KIND_I32),
    UP_FIELD(up_point_params, tp_transport, UP_KIND_CSTR),
};

/* A new HDF5 type for one member (the caller closes it): native numbers; a fixed,
 * NUL-terminated string the size of a char array; a variable-length UTF-8 string for a
 * const char *, so h5py returns str. Negative on failure. */
static hid_t up_spec_type(const up_field_spec *f) {
  switch (f->kind) {
    case UP_KIND_I32: return H5Tcopy(H5T_NATIVE_INT32);
    case UP_KIND_I64: return H5Tcopy(H5T_NATIVE_INT64);
    case UP_KIND_U64: return H5Tcopy(H5T_NATIVE_UINT64);
    case UP_KIND_F32: return H5Tcopy(H5T_NATIVE_FLOAT);
    case UP_KIND_F64: return H5Tcopy(H5T_NATIVE_DOUBLE);
    case UP_KIND_CHARS:
    case UP_KIND_CSTR: break;
  }
  const hid_t t = H5Tcopy(H5T_C_S1);
  if (t < 0) return t;
  const herr_t rc = f->kind == UP_KIND_CHARS
                        ? (H5Tset_size(t, f->size) < 0 ? -1 : H5Tset_strpad(t, H5T_STR_NULLTERM))
                        : (H5Tset_size(t, H5T_VARIABLE) < 0 ? -1 : H5Tset_cset(t, H5T_CSET_UTF8));
  if (rc < 0) {
    H5Tclose(t);
    return H5I_INVALID_HID;
  }
  return t;
}

/* ---- table layouts ---------------------------------------------------------- */

static int up_layout_close(up_table_layout *l, const up_h5_err *e) {
  int rc = 0;
  for (size_t i = 0; i < l->n_fields; i++) {
    if (H5Tclose(l->types[i]) < 0 && rc == 0) {
      up_h5_fail(e, "cannot close the type of field '%s' of table '%s'", l->names[i], l->title);
      rc = -1;
    }
  }
  l->n_fields = 0;
  return rc;
}

static int up_layout_build(up_table_layout *l, const char *title, size_t record_size, const up_field_spec *specs,
                           size_t n_specs, const up_h5_err *e) {
  UP_ASSERT(n_specs <= UP_TABLE_MAX_FIELDS, "table %s has %zu fields", title, n_specs);
  *l = (up_table_layout){.title = title, .record_size = record_size};
  for (size_t i = 0; i < n_specs; i++) {
    const hid_t t = up_spec_type(&specs[i]);
    if (t < 0) {
      up_h5_fail(e, "cannot build the type of field '%s' of table '%s'", specs[i].name, title);
      up_layout_close(l, e);
      return -1;
    }
    UP_ASSERT(H5Tget_size(t) == specs[i].size, "field %s: C size %zu differs from the HDF5 type's", specs[i].name,
              specs[i].size);
    l->names[i] = specs[i].name;
    l->offsets[i] = specs[i].offset;
    l->sizes[i] = specs[i].size;
    l->types[i] = t;
    l->n_fields = i + 1;
  }
  return 0;
}

/* Create table NAME under LOC holding N records (zero is allowed: H5TB then makes an
 * empty chunked dataset with an unlimited dimension and writes nothing). */
static int up_table_create(hid_t loc, const char *loc_name, const char *name, const up_table_layout *l,
                           hsize_t chunk, hsize_t n, const void *records, const up_h5_err *e) {
  /* H5TB's prototype lacks the inner const; it only reads the names. Compress 1 turns
   * on deflate through the table's creation property list. */
  const char **names = (const char **)l->names;
  if (H5TBmake_table(l->title, loc, name, l->n_fields, n, l->record_size, names, l->offsets, l->types, chunk, NULL,
                     1, n > 0 ? records : NULL) < 0) {
    up_h5_fail(e, "cannot create table '%s/%s' with %llu records", loc_name, name, (unsigned long long)n);
    return -1;
  }
  return 0;
}

/* ---- attributes ------------------------------------------------------------- */

/* Scalar attribute stored with the native type of its C value. */
static int up_attr_write(hid_t loc, const char *loc_name, const char *name, hid_t type, const void *value,
                         const up_h5_err *e) {
  const hid_t space = H5Screate(H5S_SCALAR);
  if (space < 0) {
    up_h5_fail(e, "cannot create the dataspace of attribute '%s' of '%s'", name, loc_name);
    return -1;
  }
  const hid_t attr = H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  int rc = 0;
  if (attr < 0) {
    up_h5_fail(e, "cannot create attribute '%s' of '%s'", name, loc_name);
    rc = -1;
  } else if (H5Awrite(attr, type, value) < 0) {
    up_h5_fail(e, "cannot write attribute '%s' of '%s'", name, loc_name);
    rc = -1;
  }
  if (attr >= 0 && H5Aclose(attr) < 0 && rc == 0) {
    up_h5_fail(e, "cannot close attribute '%s' of '%s'", name, loc_name);
    rc = -1;
  }
  if (H5Sclose(space) < 0 && rc == 0) {
    up_h5_fail(e, "cannot close the dataspace of attribute '%s' of '%s'", name, loc_name);
    rc = -1;
  }
  return rc;
}

/* One scalar attribute per spec, read from the struct at BASE; a NULL string is "". */
static int up_attrs_write(hid_t loc, const char *loc_name, const void *base, const up_field_spec *specs,
                          size_t n_specs, const up_h5_err *e) {
  for (size_t i = 0; i < n_specs; i++) {
    const up_field_spec *f = &specs[i];
    const char *member = (const char *)base + f->offset;
    const void *value = member;
    const char *text = NULL;
    if (f->kind == UP_KIND_CSTR) {
      memcpy(&text, member, sizeof text);
      if (text == NULL) text = "";
      value = &text;
    }
    const hid_t type = up_spec_type(f);
    if (type < 0) {
      up_h5_fail(e, "cannot build the type of attribute '%s' of '%s'", f->name, loc_name);
      return -1;
    }
    const int rc = up_attr_write(loc, loc_name, f->name, type, value, e);
    if (H5Tclose(type) < 0 && rc == 0) {
      up_h5_fail(e, "cannot close the type of attribute '%s' of '%s'", f->name, loc_name);
      return -1;
    }
    if (rc < 0) return -1;
  }
  return 0;
}

static int up_write_root_attrs(hid_t file, const up_run_info *info, const up_h5_err *e) {
  /* schema_version and tool identify a run file; the rest describe the run. */
  const int32_t schema = UP_RESULTS_SCHEMA_VERSION;
  const char *const tool = "uniprefill-bench";
  static const up_field_spec tool_spec = {"tool", 0, sizeof(const char *), UP_KIND_CSTR};
  if (up_attr_write(file, "/", "schema_version", H5T_NATIVE_INT32, &schema, e) < 0 ||
      up_attrs_write(file, "/", &tool, &tool_spec, 1, e) < 0 ||
      up_attrs_write(file, "/", info, up_run_info_specs, UP_N_SPECS(up_run_info_specs), e) < 0) {
    return -1;
  }
  return 0;
}

/* ---- datasets --------------------------------------------------------------- */

/* A plain 1-D or 2-D dataset; when any dimension is zero nothing is written (an empty
 * selection has no buffer to read from). */
static int up_array_write(hid_t loc, const char *loc_name, const char *name, hid_t type, int rank,
                          const hsize_t *dims, const void *data, const up_h5_err *e) {
  hsize_t n_elems = 1;
  for (int i = 0; i < rank; i++) n_elems *= dims[i];
  const hid_t space = H5Screate_simple(rank, dims, NULL);
  if (space < 0) {
    up_h5_fail(e, "cannot create the dataspace of dataset '%s/%s'", loc_name, name);
    return -1;
  }
  const hid_t dset = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  int rc = 0;
  if (dset < 0) {
    up_h5_fail(e, "cannot create dataset '%s/%s'", loc_name, name);
    rc = -1;
  } else if (n_elems > 0 && H5Dwrite(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    up_h5_fail(e, "cannot write dataset '%s/%s'", loc_name, name);
    rc = -1;
  }
  if (dset >= 0 && H5Dclose(dset) < 0 && rc == 0) {
    up_h5_fail(e, "cannot close dataset '%s/%s'", loc_name, name);
    rc = -1;
  }
  if (H5Sclose(space) < 0 && rc == 0) {
    up_h5_fail(e, "cannot close the dataspace of dataset '%s/%s'", loc_name, name);
    rc = -1;
  }
  return rc;
}

static int up_matrix_write(hid_t loc, const char *loc_name, const char *name, hid_t type, hsize_t rows,
                           hsize_t cols, const void *data, const up_h5_err *e) {
  const hsize_t dims[2] = {rows, cols};
  return up_array_write(loc, loc_name, name, type, 2, dims, data, e);
}

static int up_vector_write(hid_t loc, const char *loc_name, const char *name, hid_t type, hsize_t n,
                           const void *data, const up_h5_err *e) {
  return up_array_write(loc, loc_name, name, type, 1, &n, data, e);
}

/* The ragged output-token times: token_offsets [n_requests + 1] and token_times flat,
 * so readers slice request i as token_times[token_offsets[i]:token_offsets[i + 1]]. A
 * point without requests has the offsets {0} and no times. */
static int up_token_times_write(hid_t group, const char *full, const up_point_result *r, const up_h5_err *e) {
  static const int64_t no_offsets[1] = {0};
  const int64_t *offsets = r->n_requests > 0 ? r->token_offsets : no_offsets;
  const hsize_t n_times = (hsize_t)offsets[r->n_requests];
  if (up_vector_write(group, full, "token_offsets", H5T_NATIVE_INT64, (hsize_t)r->n_requests + 1, offsets, e) < 0 ||
      up_vector_write(group, full, "token_times", H5T_NATIVE_DOUBLE, n_times, r->token_times, e) < 0) {
    return -1;
  }
  return 0;
}

/* Attention density (engine/methods/method.h): computed over causal query-key pairs,
 * per step and layer (step_attention_density) and per layer over the point's steps
 * (attention_density); NaN where a layer saw no causal work. */
static int up_attention_density_write(hid_t group, const char *full, const up_point_result *r, const up_h5_err *e) {
  const size_t L = (size_t)r->n_layers, n = (size_t)r->n_steps;
  double *steps = up_malloc_or_die(sizeof(double) * (n * L > 0 ? n * L : 1), "step attention density");
  double *point = up_malloc_or_die(sizeof(double) * (L > 0 ? L : 1), "attention density");
  for (size_t l = 0; l < L; l++) {
    double computed = 0.0, causal = 0.0;
    for (size_t i = 0; i < n; i++) {
      const up_attn_work *w = &r->step_layer_attn[i * L + l];
      steps[i * L + l] = w->causal > 0.0 ? w->computed / w->causal : NAN;
      computed += w->computed;
      causal += w->causal;
    }
    point[l] = causal > 0.0 ? computed / causal : NAN;
  }
  int rc = 0;
  if (up_matrix_write(group, full, "step_attention_density", H5T_NATIVE_DOUBLE, n, L, steps, e) < 0 ||
      up_vector_write(group, full, "attention_density", H5T_NATIVE_DOUBLE, L, point, e) < 0)
    rc = -1;
  free(steps);
  free(point);
  return rc;
}

/* ---- public API ------------------------------------------------------------- */

static void up_results_free(up_results_file *f) {
  free(f->path);
  free(f->temp_path);
  free(f);
}

/* Attempts at a free temporary name before giving up (names carry the pid, so only a
 * leftover of a killed run with the same pid can be in the way). */
#define UP_TEMP_NAME_ATTEMPTS 100

/* Create an empty file ".BASE.PID.N.tmp" beside path, created here rather than by HDF5
 * so that a directory that is missing or not writable gets errno's plain words. */
static char *up_create_temp(const char *path, const up_h5_err *e) {
  const char *slash = strrchr(path, '/');
  const int dir_len = slash ? (int)(slash - path) + 1 : 0;
  const char *base = slash ? slash + 1 : path;
  const size_t size = strlen(path) + 64;
  char *temp = up_malloc_or_die(size, "temporary results path");
  for (int n = 0; n < UP_TEMP_NAME_ATTEMPTS; n++) {
    snprintf(temp, size, "%.*s.%s.%ld.%d.tmp", dir_len, path, base, (long)getpid(), n);
    const int fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) {
      close(fd);
      return temp;
    }
    if (errno != EEXIST) {
      const int err_no = errno;
      char dir[4096] = ".";
      if (dir_len > 0) snprintf(dir, sizeof dir, "%.*s", dir_len > 1 ? dir_len - 1 : 1, path);
      up_h5_fail_plain(e, "cannot create a file in directory '%s': %s", dir, strerror(err_no));
      free(temp);
      return NULL;
    }
  }
  up_h5_fail_plain(e, "%d temporary names beside it are taken (leftovers of killed runs?)", UP_TEMP_NAME_ATTEMPTS);
  free(temp);
  return NULL;
}

/* Rename the flushed file into place, once: from then on the target holds every point
 * flushed so far, and a killed run keeps them. */
static int up_results_publish(up_results_file *f, const up_h5_err *e) {
  if (f->published) return 0;
  if (rename(f->temp_path, f->path) != 0) {
    up_h5_fail_plain(e, "cannot move the written file %s into place: %s", f->temp_path, strerror(errno));
    return -1;
  }
  f->published = true;
  return 0;
}

up_results_file *up_results_open(const char *path, const up_run_info *info, char *err, size_t err_size) {
  const up_h5_err e = {.path = path, .buf = err, .size = err_size};
  /* Our messages replace HDF5's stack dumps on stderr; the stack is still read for causes. */
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  if (path == NULL || info == NULL) {
    up_h5_fail_plain(&e, "no path or run info given");
    return NULL;
  }

  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    up_h5_fail_plain(&e, "is a directory (give a file name inside it)");
    return NULL;
  }
  up_results_file *f = up_calloc_or_die(1, sizeof *f, "results file handle");
  f->path = strdup(path);
  if (f->path == NULL) UP_FATAL("out of memory copying the results path");
  f->temp_path = up_create_temp(path, &e);
  if (f->temp_path == NULL) {
    up_results_free(f);
    return NULL;
  }
  f->file = H5I_INVALID_HID;
  f->points = H5I_INVALID_HID;
  if (up_layout_build(&f->summary_layout, "point summary", sizeof(up_point_summary), up_summary_specs,
                      UP_N_SPECS(up_summary_specs), &e) < 0 ||
      up_layout_build(&f->request_layout, "requests", sizeof(up_request_row), up_request_specs,
                      UP_N_SPECS(up_request_specs), &e) < 0 ||
      up_layout_build(&f->step_layout, "steps", sizeof(up_step_row), up_step_specs, UP_N_SPECS(up_step_specs),
                      &e) < 0) {
    goto fail_layouts;
  }

  /* v1.8 format at least, so readers built on HDF5 1.8+ open it and, unlike the 1.10
   * superblock, no "file is open" flag is left behind when a run is killed. SEMI close
   * makes H5Fclose fail loudly if an object was left open instead of deferring it. */
  const hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl < 0 || H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST) < 0 ||
      H5Pset_fclose_degree(fapl, H5F_CLOSE_SEMI) < 0) {
    up_h5_fail(&e, "cannot build the file access property list");
    if (fapl >= 0) H5Pclose(fapl);
    goto fail_layouts;
  }
  f->file = H5Fcreate(f->temp_path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  if (f->file < 0) {
    /* Before H5Pclose: every API call clears the error stack the cause is read from. */
    up_h5_fail(&e, "cannot create the file as %s", f->temp_path);
    H5Pclose(fapl);
    goto fail_layouts;
  }
  if (H5Pclose(fapl) < 0) {
    up_h5_fail(&e, "cannot close the file access property list");
    goto fail_file;
  }
  if (up_write_root_attrs(f->file, info, &e) < 0) goto fail_file;
  f->points = H5Gcreate2(f->file, "points", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (f->points < 0) {
    up_h5_fail(&e, "cannot create group '/points'");
    goto fail_file;
  }
  if (up_table_create(f->file, "", "summary", &f->summary_layout, UP_SUMMARY_CHUNK_RECORDS, 0, NULL, &e) < 0) {
    goto fail_file;
  }
  if (H5Fflush(f->file, H5F_SCOPE_GLOBAL) < 0) {
    up_h5_fail(&e, "cannot flush the file after creating it");
    goto fail_file;
  }
  return f;

fail_file:
  if (f->points >= 0) H5Gclose(f->points);
  H5Fclose(f->file);
fail_layouts:
  up_layout_close(&f->summary_layout, &e);
  up_layout_close(&f->request_layout, &e);
  up_layout_close(&f->step_layout, &e);
  unlink(f->temp_path);
  up_results_free(f);
  return NULL;
}

int up_results_write_tp(up_results_file *file, const up_tp_run_info *info, char *err, size_t err_size) {
  const up_h5_err e = {.path = file != NULL ? file->path : "(none)", .buf = err, .size = err_size};
  if (file == NULL || info == NULL || info->n_probe < 0 || (info->probe == NULL && info->n_probe > 0)) {
    up_h5_fail_plain(&e, "write_tp needs an open file and the run's tensor-parallel layout");
    return -1;
  }
  if (up_attrs_write(file->file, "/", info, up_tp_run_info_specs, UP_N_SPECS(up_tp_run_info_specs), &e) < 0)
    return -1;
  if (info->n_probe == 0) return 0;
  up_table_layout layout;
  if (up_layout_build(&layout, "tensor-parallel probe", sizeof(up_tp_probe_row), up_tp_probe_specs,
                      UP_N_SPECS(up_tp_probe_specs), &e) < 0)
    return -1;
  const int rc = up_table_create(file->file, "", "tp_probe", &layout, (hsize_t)info->n_probe,
                                 (hsize_t)info->n_probe, info->probe, &e);
  return up_layout_close(&layout, &e) < 0 || rc < 0 ? -1 : 0;
}

static int up_check_point_args(const up_point_params *params, const up_point_summary *summary,
                               const up_point_result *r, const up_h5_err *e) {
  if (params == NULL || summary == NULL || r == NULL) {
    up_h5_fail_plain(e, "write_point needs params, summary and result");
    return -1;
  }
  if (params->index < 0) {
    up_h5_fail_plain(e, "point index %d is negative", params->index);
    return -1;
  }
  if (r->n_layers < 0 || r->n_requests < 0 || r->n_steps < 0) {
    up_h5_fail_plain(e, "point %d: negative count (layers %d, requests %d, steps %d)", params->index, r->n_layers,
                     r->n_requests, r->n_steps);
    return -1;
  }
  if ((r->n_requests > 0 && (r->requests == NULL || (r->n_layers > 0 && r->request_layer_tokens == NULL))) ||
      (r->n_steps > 0 && (r->steps == NULL || (r->n_layers > 0 && (r->step_layer_tokens == NULL ||
                                                                    r->step_layer_attn == NULL))))) {
    up_h5_fail_plain(e, "point %d: result has records counted but no arrays", params->index);
    return -1;
  }
  if (r->n_requests > 0) {
    /* The offsets must describe a ragged array the writer can slice. */
    const int64_t *o = r->token_offsets;
    if (o == NULL || o[0] != 0) {
      up_h5_fail_plain(e, "point %d: token offsets missing or not starting at 0", params->index);
      return -1;
    }
    for (int32_t i = 0; i < r->n_requests; i++) {
      if (o[i + 1] < o[i]) {
        up_h5_fail_plain(e, "point %d: token offsets decrease at request row %d", params->index, i);
        return -1;
      }
    }
    if (o[r->n_requests] > 0 && r->token_times == NULL) {
      up_h5_fail_plain(e, "point %d: %lld token times counted but no array", params->index,
                       (long long)o[r->n_requests]);
      return -1;
    }
  }
  return 0;
}

/* The request and step tables' rows: each record with its round from `rounds` (NULL: round 0). */
static up_request_row *up_request_rows(const up_point_result *r, const int32_t *rounds) {
  up_request_row *rows = up_calloc_or_die((size_t)(r->n_requests > 0 ? r->n_requests : 1), sizeof *rows, "request rows");
  for (int32_t i = 0; i < r->n_requests; i++) rows[i] = (up_request_row){r->requests[i], rounds ? rounds[i] : 0};
  return rows;
}

static up_step_row *up_step_rows(const up_point_result *r, const int32_t *rounds) {
  up_step_row *rows = up_calloc_or_die((size_t)(r->n_steps > 0 ? r->n_steps : 1), sizeof *rows, "step rows");
  for (int32_t i = 0; i < r->n_steps; i++) rows[i] = (up_step_row){r->steps[i], rounds ? rounds[i] : 0};
  return rows;
}

/* The point's "rounds" table: /summary's fields, one row per round. */
static int up_rounds_write(up_results_file *file, hid_t group, const char *full, const up_point_params *params,
                           const up_h5_err *e) {
  up_table_layout layout = file->summary_layout; /* shares the types; only the title differs */
  layout.title = "point rounds";
  return up_table_create(group, full, "rounds", &layout, UP_SUMMARY_CHUNK_RECORDS,
                         (hsize_t)(params->round_rows ? params->n_round_rows : 0), params->round_rows, e);
}

int up_results_write_point(up_results_file *file, const up_point_params *params, const up_point_summary *summary,
                           const up_point_result *result, char *err, size_t err_size) {
  const up_h5_err e = {.path = file != NULL ? file->path : "(none)", .buf = err, .size = err_size};
  if (file == NULL) {
    up_h5_fail_plain(&e, "write_point on a file that is not open");
    return -1;
  }
  if (up_check_point_args(params, summary, result, &e) < 0) return -1;

  char name[32], full[48];
  snprintf(name, sizeof name, "%04d", params->index);
  snprintf(full, sizeof full, "/points/%s", name);
  const hid_t group = H5Gcreate2(file->points, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (group < 0) {
    up_h5_fail(&e, "cannot create group '%s' (was point %d written twice?)", full, params->index);
    return -1;
  }
  /* The point's duration is the longest rank's, as in /summary. */
  int rc = 0;
  up_request_row *request_rows = up_request_rows(result, params->request_rounds);
  up_step_row *step_rows = up_step_rows(result, params->step_rounds);
  if (up_attrs_write(group, full, params, up_point_params_specs, UP_N_SPECS(up_point_params_specs), &e) < 0 ||
      up_attr_write(group, full, "wall_s", H5T_NATIVE_DOUBLE, &summary->wall_s, &e) < 0 ||
      up_table_create(group, full, "requests", &file->request_layout, UP_TABLE_CHUNK_RECORDS,
                      (hsize_t)result->n_requests, request_rows, &e) < 0 ||
      up_table_create(group, full, "steps", &file->step_layout, UP_TABLE_CHUNK_RECORDS, (hsize_t)result->n_steps,
                      step_rows, &e) < 0 ||
      up_rounds_write(file, group, full, params, &e) < 0 ||
      up_matrix_write(group, full, "request_layer_tokens", H5T_NATIVE_INT32, (hsize_t)result->n_requests,
                      (hsize_t)result->n_layers, result->request_layer_tokens, &e) < 0 ||
      up_matrix_write(group, full, "step_layer_tokens", H5T_NATIVE_INT64, (hsize_t)result->n_steps,
                      (hsize_t)result->n_layers, result->step_layer_tokens, &e) < 0 ||
      up_attention_density_write(group, full, result, &e) < 0 || up_token_times_write(group, full, result, &e) < 0) {
    rc = -1;
  }
  free(request_rows);
  free(step_rows);
  if (H5Gclose(group) < 0 && rc == 0) {
    up_h5_fail(&e, "cannot close group '%s'", full);
    rc = -1;
  }
  if (rc < 0) return -1;

  const up_table_layout *l = &file->summary_layout;
  if (H5TBappend_records(file->file, "summary", 1, l->record_size, l->offsets, l->sizes, summary) < 0) {
    up_h5_fail(&e, "cannot append the row of point %d to table '/summary'", params->index);
    return -1;
  }
  file->n_summary_rows++;
  /* Flush now so a run killed later keeps this point. */
  if (H5Fflush(file->file, H5F_SCOPE_GLOBAL) < 0) {
    up_h5_fail(&e, "cannot flush after writing point '%s'", full);
    return -1;
  }
  return up_results_publish(file, &e);
}

int up_results_update_speedups(up_results_file *file, const up_point_summary *rows, int32_t n_rows, char *err,
                               size_t err_size) {
  const up_h5_err e = {.path = file != NULL ? file->path : "(none)", .buf = err, .size = err_size};
  if (file == NULL || (rows == NULL && n_rows > 0) || n_rows < 0) {
    up_h5_fail_plain(&e, "update_speedups needs an open file and %d rows", n_rows);
    return -1;
  }
  if ((hsize_t)n_rows != file->n_summary_rows) {
    up_h5_fail_plain(&e, "update_speedups got %d rows but table '/summary' has %llu", n_rows,
                     (unsigned long long)file->n_summary_rows);
    return -1;
  }
  if (n_rows == 0) return 0;
  /* Read each field straight out of the row structs: the memory type H5TB builds is
   * a record of the struct's size holding only that field at its offset. The field is
   * named by its index in the table's layout, found by exact name: H5TB's by-name
   * writes match the last name of a list as a prefix of a member's name, which would
   * also select "tp" for "tp_speedup" and "tp_efficiency" for "tp_efficiency_model". */
  static const char *const comparing[] = {"speedup_vs_dense", "tp_speedup", "tp_efficiency", "tp_efficiency_model"};
  const up_table_layout *l = &file->summary_layout;
  for (size_t i = 0; i < UP_N_SPECS(comparing); ++i) {
    int index = -1;
    for (size_t f = 0; f < l->n_fields && index < 0; ++f)
      if (strcmp(l->names[f], comparing[i]) == 0) index = (int)f;
    if (index < 0) {
      up_h5_fail_plain(&e, "table '/summary' has no field '%s'", comparing[i]);
      return -1;
    }
    if (H5TBwrite_fields_index(file->file, "summary", 1, &index, 0, (hsize_t)n_rows, l->record_size,
                               &l->offsets[index], &l->sizes[index], rows) < 0) {
      up_h5_fail(&e, "cannot rewrite field '%s' of table '/summary'", comparing[i]);
      return -1;
    }
  }
  if (H5Fflush(file->file, H5F_SCOPE_GLOBAL) < 0) {
    up_h5_fail(&e, "cannot flush after updating the speedups");
    return -1;
  }
  return 0;
}

/* Open /kernels and write the run's settings as its attributes. */
static int up_kernel_attrs_write(hid_t file, const up_kernel_table_params *params, const up_h5_err *e) {
  const hid_t table = H5Dopen2(file, "kernels", H5P_DEFAULT);
  if (table < 0) {
    up_h5_fail(e, "cannot open table '/kernels' to write its attributes");
    return -1;
  }
  int rc = up_attrs_write(table, "/kernels", params, up_kernel_table_specs, UP_N_SPECS(up_kernel_table_specs), e);
  if (H5Dclose(table) < 0 && rc == 0) {
    up_h5_fail(e, "cannot close table '/kernels'");
    rc = -1;
  }
  return rc;
}

/* Append rows to a root-level table, creating it (and its layout) on first use; the
 * modes that add tables after the sweep's (--kernels, --eval) share this. */
static int up_root_table_append(hid_t file, const char *name, const char *what, const up_field_spec *specs,
                                size_t n_specs, size_t record_size, up_table_layout *layout, bool *created,
                                const void *rows, int32_t n_rows, const up_h5_err *e) {
  if (!*created) {
    if ((layout->n_fields == 0 && up_layout_build(layout, what, record_size, specs, n_specs, e) < 0) ||
        up_table_create(file, "", name, layout, UP_KERNELS_CHUNK_RECORDS, (hsize_t)n_rows, rows, e) < 0)
      return -1;
    *created = true;
  } else if (n_rows > 0 &&
             H5TBappend_records(file, name, (hsize_t)n_rows, layout->record_size, layout->offsets, layout->sizes,
                                rows) < 0) {
    up_h5_fail(e, "cannot append %d rows to table '/%s'", n_rows, name);
    return -1;
  }
  return 0;
}

int up_results_append_kernels(up_results_file *file, const up_kernel_table_params *params,
                              const up_kernel_record *rows, int32_t n_rows, char *err, size_t err_size) {
  const up_h5_err e = {.path = file != NULL ? file->path : "(none)", .buf = err, .size = err_size};
  if (file == NULL || params == NULL || n_rows < 0 || (rows == NULL && n_rows > 0)) {
    up_h5_fail_plain(&e, "append_kernels needs an open file, the table's parameters and %d rows", n_rows);
    return -1;
  }
  const bool first = !file->kernels_created;
  if (up_root_table_append(file->file, "kernels", "kernel cases", up_kernel_specs, UP_N_SPECS(up_kernel_specs),
                           sizeof(up_kernel_record), &file->kernel_layout, &file->kernels_created, rows, n_rows,
                           &e) < 0 ||
      (first && up_kernel_attrs_write(file->file, params, &e) < 0))
    return -1;
  /* Flush now so a run that fails later keeps these cases. */
  if (H5Fflush(file->file, H5F_SCOPE_GLOBAL) < 0) {
    up_h5_fail(&e, "cannot flush after writing kernel cases");
    return -1;
  }
  return up_results_publish(file, &e);
}

/* One context's [n_records][n_layers] matrix as dataset NNNN (the call's number) of the
 * root group `group` ("/eval_layer_rows"), created by the run's first call. */
static int up_eval_group_write(const up_results_file *file, const char *group, hid_t type, int32_t n_records,
                               int32_t n_layers, const void *values, const up_h5_err *e) {
  const char *name_in_root = group + 1;
  if (file->n_eval_groups == 0) {
    const hid_t g = H5Gcreate2(file->file, name_in_root, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0 || H5Gclose(g) < 0) {
      up_h5_fail(e, "cannot create group '%s'", group);
      return -1;
    }
  }
  char name[64];
  snprintf(name, sizeof name, "%04d", (int)file->n_eval_groups);
  const hid_t g = H5Gopen2(file->file, name_in_root, H5P_DEFAULT);
  if (g < 0) {
    up_h5_fail(e, "cannot open group '%s'", group);
    return -1;
  }
  const int rc = up_matrix_write(g, group, name, type, (hsize_t)n_records, (hsize_t)n_layers, values, e);
  if (H5Gclose(g) < 0 || rc < 0) {
    if (rc == 0) up_h5_fail(e, "cannot close group '%s'", group);
    return -1;
  }
  return 0;
}

int up_results_append_eval(up_results_file *file, const up_eval_record *records, const int32_t *layer_rows,
                           const double *layer_density, int32_t n_records, int32_t n_layers,
                           const up_eval_summary *summaries, int32_t n_summaries, char *err, size_t err_size) {
  const up_h5_err e = {.path = file != NULL ? file->path : "(none)", .buf = err, .size = err_size};
  if (file == NULL || n_records < 0 || n_summaries < 0 || n_layers < 1) {
    up_h5_fail_plain(&e, "append_eval needs an open file, rows and the model's depth");
    return -1;
  }
  if (up_root_table_append(file->file, "eval_samples", "eval samples", up_eval_sample_specs,
                           UP_N_SPECS(up_eval_sample_specs), sizeof(up_eval_record), &file->eval_sample_layout,
                           &file->eval_samples_created, records, n_records, &e) < 0 ||
      up_root_table_append(file->file, "eval_summary", "eval summary", up_eval_summary_specs,
                           UP_N_SPECS(up_eval_summary_specs), sizeof(up_eval_summary), &file->eval_summary_layout,
                           &file->eval_summary_created, summaries, n_summaries, &e) < 0)
    return -1;
  /* Prompt rows entering each layer and the prefill's attention density there, one
   * dataset each per call, rows in eval_samples order. */
  if (up_eval_group_write(file, "/eval_layer_rows", H5T_NATIVE_INT32, n_records, n_layers, layer_rows, &e) < 0 ||
      up_eval_group_write(file, "/eval_layer_density", H5T_NATIVE_DOUBLE, n_records, n_layers, layer_density, &e) < 0)
    return -1;
  file->n_eval_groups += 1;
  if (H5Fflush(file->file, H5F_SCOPE_GLOBAL) < 0) {
    up_h5_fail(&e, "cannot flush after writing eval rows");
    return -1;
  }
  return up_results_publish(file, &e);
}

int up_results_close(up_results_file *file, char *err, size_t err_size) {
  if (file == NULL) return 0;
  const up_h5_err e = {.path = file->path, .buf = err, .size = err_size};
  int rc = 0;
  if (H5Gclose(file->points) < 0) {
    up_h5_fail(&e, "cannot close group '/points'");
    rc = -1;
  }
  if (up_layout_close(&file->summary_layout, &e) < 0) rc = -1;
  if (up_layout_close(&file->request_layout, &e) < 0) rc = -1;
  if (up_layout_close(&file->step_layout, &e) < 0) rc = -1;
  if (up_layout_close(&file->kernel_layout, &e) < 0) rc = -1;
  if (up_layout_close(&file->eval_sample_layout, &e) < 0) rc = -1;
  if (up_layout_close(&file->eval_summary_layout, &e) < 0) rc = -1;
  if (H5Fclose(file->file) < 0 && rc == 0) {
    up_h5_fail(&e, "cannot close the file (an object may still be open)");
    rc = -1;
  }
  /* Nothing was flushed: the run failed before its first point, and the target keeps
   * whatever it held. */
  if (!file->published && unlink(file->temp_path) != 0 && rc == 0) {
    up_h5_fail_plain(&e, "cannot remove the unused file %s: %s", file->temp_path, strerror(errno));
    rc = -1;
  }
  up_results_free(file);
  return rc;
}
