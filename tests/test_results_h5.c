/* test_results_h5.c — the HDF5 run file read back with the plain HDF5 API (not the
 * writer's own layouts): root and point attributes, request and step tables, layer-token
 * datasets, the ragged token_times / token_offsets datasets, the round of each request
 * and step and the per-round rows (--repetitions), the summary table with every serving
 * metric, the spreads over rounds and its rewritten speedups; errors that name the path (bad token
 * offsets included); and a run killed after a point keeps that point; the --kernels table
 * grows by appends and a run killed after one keeps its rows. When UP_TEST_KEEP_H5 is set, the
 * round-trip file is written there and kept, for the summarize.py CTest fixture. */
#define _DEFAULT_SOURCE /* mkdtemp, fork */
#include <criterion/criterion.h>
#include <hdf5.h>
#include <hdf5_hl.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "launcher/output/results_h5.h"

#define N_LAYERS 4

/* ---- sample run ------------------------------------------------------------- */

typedef struct sample_point {
  up_point_params params;
  up_point_summary summary;
  up_point_result result;
  /* Point 1 ran in two rounds: each request's and step's round, and a row per round. */
  int32_t request_rounds[2];
  up_point_summary round_rows[2];
} sample_point;

static const up_run_info sample_info = {
    .tool_version = "0.1.0",
    .git_commit = "abc123def456",
    .argv_joined = "uniprefill-bench --model tiny --ctx 128",
    .hostnames = "node1,node2",
    .world_size = 2,
    .backend = "cpu",
    .device_names = "cpu0,cpu1",
    .model = "tiny-llama",
    .library_versions = "hdf5 1.10.8, openmpi 4.1.4",
    .started_utc = "2024-05-01T12:00:00Z",
};

static const char failed_message[] = "prompt of 9000 tokens exceeds the model's 8192";

static void fill_request(up_request_record *r, int64_t id, int32_t rank, double arrival) {
  memset(r, 0, sizeof *r); /* zero padding, so records compare with memcmp */
  r->id = id;
  r->rank = rank;
  r->status = 2;
  r->prompt_len = 128 + (int32_t)id;
  r->kept_len = 40 + (int32_t)id;
  r->output_len = 8;
  r->first_token = 1000 + (int32_t)id;
  r->prefill_steps = 1 + (int32_t)(id % 3);
  r->arrival_s = arrival;
  r->admitted_s = arrival + 0.001;
  r->first_token_s = arrival + 0.05;
  r->finish_s = arrival + 0.12;
  r->ttft_ms = 50.0;
  r->tpot_ms = 10.0;
  r->e2e_ms = 120.0;
  r->kv_bytes = 3000000000ll + id; /* above 2^31: the fields must be 64-bit */
  r->kv_held_bytes = 3000100000ll + id;
  r->kv_dense_bytes = 5000000000ll + id;
}

/* Point 0: dense, 3 requests (the last failed), 2 steps. Point 1: uniprefill, 2
 * requests, 0 steps (an empty table and a [0][layers] dataset). */
static void make_point(sample_point *p, int32_t index) {
  memset(p, 0, sizeof *p);
  const int32_t n_req = index == 0 ? 3 : 2;
  const int32_t n_steps = index == 0 ? 2 : 0;
  p->params = (up_point_params){
      .index = index,
      .method = index == 0 ? "dense" : "uniprefill:keep=0.3",
      .ctx = 128,
      .concurrency = 2,
      .output_len = 8,
      .n_requests = n_req,
      .seed = 0xFEDCBA9876543210ull,
      .top_p = index == 0 ? NAN : 0.9f,
      .keep_fraction = index == 0 ? NAN : 0.3f,
      .block = 64,
      .sink = 4,
      .last_q = 16,
      .drop_layers = index == 0 ? "" : "1,2",
      .method_spec = index == 0 ? "dense" : "uniprefill:p=0.9:keep=0.3:block=64:sink=4:last_q=16:layers=1+2",
      .max_seqs = 8,
      .max_batch_tokens = 4096,
      .kv_block_tokens = 16,
      .kv_blocks_total = 1000,
      .kv_blocks_peak = 37 + index,
      .tp = 1 + index,
      .dp = 2 - index,
      .tp_transport = index == 0 ? "self" : "mpi",
      .kv_block_bytes = 8192,
      .max_resident = 2 + index,
  };
  up_point_result *r = &p->result;
  r->n_layers = N_LAYERS;
  r->n_requests = n_req;
  r->requests = calloc((size_t)n_req, sizeof *r->requests);
  r->request_layer_tokens = calloc((size_t)n_req * N_LAYERS, sizeof(int32_t));
  cr_assert(r->requests != NULL && r->request_layer_tokens != NULL);
  for (int32_t i = 0; i < n_req; i++) {
    fill_request(&r->requests[i], i, i % 2, 0.01 * i);
    for (int32_t l = 0; l < N_LAYERS; l++) r->request_layer_tokens[i * N_LAYERS + l] = 128 - 10 * l + i;
  }
  if (index == 0) {
    up_request_record *bad = &r->requests[n_req - 1];
    bad->status = 3;
    bad->kept_len = 0;
    bad->output_len = 0;
    bad->first_token = -1;
    bad->first_token_s = NAN;
    bad->ttft_ms = NAN;
    bad->tpot_ms = NAN;
    snprintf(bad->error, sizeof bad->error, "%s", failed_message);
  }
  /* Request i produced i + 1 output tokens (the failed one too, so the writer must not
   * assume finished requests only); times are distinct per token. */
  r->token_offsets = calloc((size_t)n_req + 1, sizeof(int64_t));
  cr_assert(r->token_offsets != NULL);
  for (int32_t i = 0; i < n_req; i++) r->token_offsets[i + 1] = r->token_offsets[i] + i + 1;
  const int64_t n_times = r->token_offsets[n_req];
  r->token_times = calloc((size_t)n_times, sizeof(double));
  cr_assert(r->token_times != NULL);
  for (int64_t t = 0; t < n_times; t++) r->token_times[t] = 0.05 + 0.0125 * (double)t + index;
  r->n_steps = n_steps;
  if (n_steps > 0) {
    r->steps = calloc((size_t)n_steps, sizeof *r->steps);
    r->step_layer_tokens = calloc((size_t)n_steps * N_LAYERS, sizeof(int64_t));
    r->step_layer_attn = calloc((size_t)n_steps * N_LAYERS, sizeof(up_attn_work));
    cr_assert(r->steps != NULL && r->step_layer_tokens != NULL && r->step_layer_attn != NULL);
  }
  for (int32_t s = 0; s < n_steps; s++) {
    r->steps[s] = (up_step_record){.index = s, .rank = 0, .n_seqs = 2, .prefill_tokens = 256 - 100 * s,
                                   .decode_tokens = s, .start_s = 0.02 * s, .end_s = 0.02 * s + 0.015};
    for (int32_t l = 0; l < N_LAYERS; l++) {
      r->step_layer_tokens[s * N_LAYERS + l] = 5000000000ll + 100 * s + l;
      /* Step s computes a fraction (l + 1) / (s + 2) of layer l's causal pairs; layer 0
       * of step 1 saw none (NaN density). */
      const double causal = s == 1 && l == 0 ? 0.0 : 1000.0 * (s + 1);
      r->step_layer_attn[s * N_LAYERS + l] = (up_attn_work){.computed = causal * (l + 1) / (s + 2), .causal = causal};
    }
  }
  r->wall_s = 0.5 + index;
  up_point_summary *sum = &p->summary;
  memset(sum, 0, sizeof *sum);
  sum->point_index = index;
  snprintf(sum->method, sizeof sum->method, "%s", p->params.method);
  sum->ctx = 128;
  sum->concurrency = 2;
  sum->output_len = 8;
  sum->n_requests = n_req;
  sum->n_ok = index == 0 ? 2 : 2;
  sum->n_failed = index == 0 ? 1 : 0;
  sum->ttft_mean_ms = 50.0 + index;
  sum->ttft_p50_ms = 49.0 + index;
  sum->ttft_p99_ms = 60.0 + index;
  sum->prefill_tokens_per_s = 1234.5 * (index + 1);
  sum->kept_fraction = index == 0 ? 1.0 : 0.3;
  sum->speedup_vs_dense = NAN;
  sum->wall_s = 0.75 + index;
  /* Every schema-2 metric gets its own value, so a field mapped to the wrong offset shows. */
  double *metric = &sum->ttft_std_ms;
  for (double *m = metric; m <= &sum->slo_tpot_ms; m++) *m = 3.0 + (double)(m - metric) + 0.5 * index;
  if (index == 0) sum->slo_tpot_ms = NAN; /* one SLO part not set */
  sum->n_good = 1 + index;
  sum->goodput_requests_per_s = 0.25 * (index + 1);
  sum->kv_bytes_per_request = 3e9 + index;
  sum->kv_held_bytes_per_request = 3.1e9 + index;
  sum->kv_dense_bytes_per_request = 5e9;
  sum->kv_fraction_of_dense = index == 0 ? 1.0 : 0.6;
  sum->max_resident = 2 + index;
  /* The repetition fields, each its own value; point 0 ran in one round and gives the
   * writer no round arrays (every row is round 0), point 1 in two. */
  sum->repetitions = 1 + index;
  sum->percentiles_few_requests = 1;
  double *spread = &sum->ttft_mean_round_std_ms;
  for (double *m = spread; m <= &sum->goodput_requests_per_s_round_std; m++)
    *m = index == 0 ? NAN : 0.125 + (double)(m - spread);
  p->params.repetitions = 1 + index;
  /* Point 1 ran at --tp 2 beside point 0's TP = 1; the comparisons are rewritten at the end. */
  sum->tp = 1 + index;
  sum->dp = 2 - index;
  sum->tp_speedup = sum->tp_efficiency = sum->tp_efficiency_model = NAN;
  sum->tp_comm_model_ms = 0.625 * index;
  sum->tp_comm_ms = 3.25 * index;  /* 0 at TP = 1, as the self transport records */
  sum->tp_comm_share = 0.125 * index;
  sum->attention_tflops = 500.0 + index;
  if (index == 1) {
    p->request_rounds[0] = 0;
    p->request_rounds[1] = 1;
    for (int32_t k = 0; k < 2; k++) {
      memcpy(&p->round_rows[k], sum, sizeof *sum);
      p->round_rows[k].repetitions = 1;
      p->round_rows[k].ttft_mean_ms = 48.0 + 4.0 * k;
    }
    p->params.request_rounds = p->request_rounds;
    p->params.round_rows = p->round_rows;
    p->params.n_round_rows = 2;
  }
}

static void free_point(sample_point *p) {
  free(p->result.token_offsets);
  free(p->result.token_times);
  free(p->result.requests);
  free(p->result.request_layer_tokens);
  free(p->result.steps);
  free(p->result.step_layer_tokens);
  free(p->result.step_layer_attn);
}

/* ---- temp dir ---------------------------------------------------------------- */

static char tmp_dir[64];
static char tmp_file[128];

static void make_tmp(void) {
  snprintf(tmp_dir, sizeof tmp_dir, "/tmp/up_results_h5_XXXXXX");
  cr_assert(mkdtemp(tmp_dir) != NULL);
  snprintf(tmp_file, sizeof tmp_file, "%s/run.h5", tmp_dir);
}

/* A fresh temp dir and a run file opened in it. */
static up_results_file *open_tmp_run(void) {
  make_tmp();
  char err[512] = "";
  up_results_file *f = up_results_open(tmp_file, &sample_info, err, sizeof err);
  cr_assert_not_null(f, "open: %s", err);
  return f;
}

static void remove_tmp(void) {
  unlink(tmp_file);
  rmdir(tmp_dir);
}

/* ---- readers ------------------------------------------------------------------ */

static void read_attr(hid_t loc, const char *name, hid_t type, void *out) {
  const hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  cr_assert(a >= 0, "attribute %s missing", name);
  cr_assert(H5Aread(a, type, out) >= 0, "attribute %s unreadable", name);
  H5Aclose(a);
}

static int32_t attr_i32(hid_t loc, const char *name) {
  int32_t v;
  read_attr(loc, name, H5T_NATIVE_INT32, &v);
  return v;
}

static int64_t attr_i64(hid_t loc, const char *name) {
  int64_t v;
  read_attr(loc, name, H5T_NATIVE_INT64, &v);
  return v;
}

/* Compares a variable-length string attribute with the expected text. */
static void expect_attr_str(hid_t loc, const char *name, const char *expected) {
  const hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  char *v = NULL;
  read_attr(loc, name, t, &v);
  cr_expect_str_eq(v, expected, "attribute %s", name);
  H5free_memory(v);
  H5Tclose(t);
}

typedef struct field {
  const char *name;
  size_t offset, size;
} field;

/* A request or step row as read back: the engine's record, then the round field. */
typedef struct request_row {
  up_request_record record;
  int32_t round;
} request_row;

typedef struct step_row {
  up_step_record record;
  int32_t round;
} step_row;

#define F(st, m) {#m, offsetof(st, m), sizeof(((st *)0)->m)}
#define R(st, m) {#m, offsetof(st, record.m), sizeof(((st *)0)->record.m)}
static const field request_fields[] = {
    R(request_row, id),          R(request_row, rank),       R(request_row, status),
    R(request_row, prompt_len),  R(request_row, kept_len),   R(request_row, output_len),
    R(request_row, first_token), R(request_row, prefill_steps), R(request_row, arrival_s), R(request_row, admitted_s),
    R(request_row, first_token_s), R(request_row, finish_s), R(request_row, ttft_ms),
    R(request_row, tpot_ms),     R(request_row, e2e_ms),     R(request_row, kv_bytes),
    R(request_row, kv_held_bytes), R(request_row, kv_dense_bytes), R(request_row, error),
    F(request_row, round),
};
static const field step_fields[] = {
    R(step_row, index),          R(step_row, rank),          R(step_row, n_seqs),
    R(step_row, prefill_tokens), R(step_row, decode_tokens), R(step_row, start_s),
    R(step_row, end_s),          R(step_row, gemm_ms),       R(step_row, attention_ms),
    R(step_row, selection_ms),   R(step_row, other_ms),      F(step_row, round),
};
#undef R
static const field summary_fields[] = {
    F(up_point_summary, point_index),  F(up_point_summary, method),        F(up_point_summary, ctx),
    F(up_point_summary, concurrency),  F(up_point_summary, output_len),    F(up_point_summary, n_requests),
    F(up_point_summary, n_ok),         F(up_point_summary, n_failed),      F(up_point_summary, ttft_mean_ms),
    F(up_point_summary, ttft_p50_ms),  F(up_point_summary, ttft_p99_ms),   F(up_point_summary, prefill_tokens_per_s),
    F(up_point_summary, model_tflops_per_s),
    F(up_point_summary, kept_fraction), F(up_point_summary, speedup_vs_dense), F(up_point_summary, predicted_speedup), F(up_point_summary, wall_s),
    F(up_point_summary, ttft_std_ms),  F(up_point_summary, ttft_p90_ms),   F(up_point_summary, tpot_mean_ms),
    F(up_point_summary, tpot_p50_ms),  F(up_point_summary, tpot_std_ms),   F(up_point_summary, tpot_p90_ms),
    F(up_point_summary, tpot_p99_ms),  F(up_point_summary, itl_mean_ms),   F(up_point_summary, itl_p50_ms),
    F(up_point_summary, itl_std_ms),   F(up_point_summary, itl_p90_ms),    F(up_point_summary, itl_p99_ms),
    F(up_point_summary, e2e_mean_ms),  F(up_point_summary, e2e_p50_ms),    F(up_point_summary, e2e_std_ms),
    F(up_point_summary, e2e_p90_ms),   F(up_point_summary, e2e_p99_ms),    F(up_point_summary, duration_s),
    F(up_point_summary, requests_per_s), F(up_point_summary, input_tokens_per_s),
    F(up_point_summary, output_tokens_per_s), F(up_point_summary, total_tokens_per_s),
    F(up_point_summary, slo_ttft_ms),  F(up_point_summary, slo_tpot_ms),   F(up_point_summary, n_good),
    F(up_point_summary, goodput_requests_per_s), F(up_point_summary, kv_bytes_per_request),
    F(up_point_summary, kv_held_bytes_per_request), F(up_point_summary, kv_dense_bytes_per_request),
    F(up_point_summary, kv_fraction_of_dense), F(up_point_summary, max_resident),
    F(up_point_summary, repetitions),  F(up_point_summary, percentiles_few_requests),
    F(up_point_summary, ttft_mean_round_std_ms), F(up_point_summary, tpot_mean_round_std_ms),
    F(up_point_summary, itl_mean_round_std_ms), F(up_point_summary, e2e_mean_round_std_ms),
    F(up_point_summary, prefill_tokens_per_s_round_std), F(up_point_summary, model_tflops_per_s_round_std),
    F(up_point_summary, duration_round_std_s), F(up_point_summary, requests_per_s_round_std),
    F(up_point_summary, input_tokens_per_s_round_std), F(up_point_summary, output_tokens_per_s_round_std),
    F(up_point_summary, total_tokens_per_s_round_std), F(up_point_summary, goodput_requests_per_s_round_std),
    F(up_point_summary, tp),           F(up_point_summary, dp),            F(up_point_summary, tp_speedup),
    F(up_point_summary, tp_efficiency), F(up_point_summary, tp_comm_model_ms),
    F(up_point_summary, tp_efficiency_model), F(up_point_summary, tp_comm_ms),
    F(up_point_summary, tp_comm_share), F(up_point_summary, attention_tflops),
};
static const field kernel_fields[] = {
    F(up_kernel_record, index),        F(up_kernel_record, rank),          F(up_kernel_record, kernel),
    F(up_kernel_record, label),        F(up_kernel_record, shape),         F(up_kernel_record, m),
    F(up_kernel_record, n),            F(up_kernel_record, k),             F(up_kernel_record, batch),
    F(up_kernel_record, seq_len),      F(up_kernel_record, tokens),        F(up_kernel_record, n_heads),
    F(up_kernel_record, n_kv_heads),   F(up_kernel_record, head_dim),      F(up_kernel_record, warmup),
    F(up_kernel_record, repeats),      F(up_kernel_record, flush_bytes),   F(up_kernel_record, median_ms),
    F(up_kernel_record, min_ms),       F(up_kernel_record, max_ms),        F(up_kernel_record, flop),
    F(up_kernel_record, bytes),        F(up_kernel_record, tflops_per_s),  F(up_kernel_record, gb_per_s),
    F(up_kernel_record, peak_tflops_per_s), F(up_kernel_record, peak_gb_per_s), F(up_kernel_record, flop_floor_ms),
    F(up_kernel_record, byte_floor_ms), F(up_kernel_record, floor_ms),     F(up_kernel_record, floor_fraction),
    F(up_kernel_record, target),       F(up_kernel_record, target_tflops_per_s), F(up_kernel_record, target_ms),
    F(up_kernel_record, goal_tflops_per_s), F(up_kernel_record, target_met), F(up_kernel_record, goal_met),
    F(up_kernel_record, reference_tflops_per_s), F(up_kernel_record, reference_ms), F(up_kernel_record, basis),
    F(up_kernel_record, kept_fraction), F(up_kernel_record, error),    F(up_kernel_record, error_limit),
};
#undef F
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Reads table NAME (checking its field names and sizes) into a zeroed array of
 * record_size records; returns the record count. */
static hsize_t read_table(hid_t loc, const char *name, const field *fields, size_t n_fields, size_t record_size,
                          void **out) {
  hsize_t nf = 0, nr = 0;
  cr_assert(H5TBget_table_info(loc, name, &nf, &nr) >= 0, "table %s missing", name);
  cr_assert_eq(nf, n_fields, "table %s has %llu fields", name, (unsigned long long)nf);
  char *names[96];
  size_t sizes[96], offsets[96], dst_offsets[96], dst_sizes[96], type_size = 0;
  for (size_t i = 0; i < n_fields; i++) names[i] = calloc(1, 256);
  cr_assert(H5TBget_field_info(loc, name, names, sizes, offsets, &type_size) >= 0);
  for (size_t i = 0; i < n_fields; i++) {
    cr_expect_neq(names[i][0], '\0', "table %s field %zu has an empty name", name, i);
    cr_expect_str_eq(names[i], fields[i].name, "table %s field %zu", name, i);
    cr_expect_eq(sizes[i], fields[i].size, "table %s field %s size", name, fields[i].name);
    dst_offsets[i] = fields[i].offset;
    dst_sizes[i] = fields[i].size;
    free(names[i]);
  }
  *out = calloc(nr > 0 ? nr : 1, record_size);
  cr_assert(*out != NULL);
  if (nr > 0) cr_assert(H5TBread_table(loc, name, record_size, dst_offsets, dst_sizes, *out) >= 0);
  return nr;
}

/* Reads a 2-D dataset, checking its shape; returns a malloc'd buffer (NULL when empty). */
static void *read_matrix(hid_t loc, const char *name, hid_t type, size_t elem, hsize_t rows, hsize_t cols) {
  const hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
  cr_assert(d >= 0, "dataset %s missing", name);
  const hid_t s = H5Dget_space(d);
  hsize_t dims[2] = {99, 99};
  cr_assert_eq(H5Sget_simple_extent_ndims(s), 2);
  H5Sget_simple_extent_dims(s, dims, NULL);
  cr_expect_eq(dims[0], rows, "%s rows", name);
  cr_expect_eq(dims[1], cols, "%s cols", name);
  void *buf = NULL;
  if (rows * cols > 0) {
    buf = calloc(rows * cols, elem);
    cr_assert(H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
  }
  H5Sclose(s);
  H5Dclose(d);
  return buf;
}

/* Reads a 1-D dataset of n elements; returns a malloc'd buffer (NULL when empty). */
static void *read_vector(hid_t loc, const char *name, hid_t type, size_t elem, hsize_t n) {
  const hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
  cr_assert(d >= 0, "dataset %s missing", name);
  const hid_t s = H5Dget_space(d);
  cr_assert_eq(H5Sget_simple_extent_ndims(s), 1, "%s must be 1-D", name);
  hsize_t dim = 99;
  H5Sget_simple_extent_dims(s, &dim, NULL);
  cr_expect_eq(dim, n, "%s has %llu elements", name, (unsigned long long)dim);
  const hid_t t = H5Dget_type(d);
  cr_expect(H5Tequal(t, type) > 0, "%s has the wrong element type", name);
  H5Tclose(t);
  void *buf = NULL;
  if (n > 0) {
    buf = calloc(n, elem);
    cr_assert(H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
  }
  H5Sclose(s);
  H5Dclose(d);
  return buf;
}

/* Per step and layer computed / causal pairs, and per layer their sums' ratio; NaN
 * where a layer saw no causal work. */
static void check_attention_density(hid_t g, const up_point_result *r) {
  double *step = read_matrix(g, "step_attention_density", H5T_NATIVE_DOUBLE, sizeof(double), (hsize_t)r->n_steps,
                             N_LAYERS);
  double *point = read_vector(g, "attention_density", H5T_IEEE_F64LE, sizeof(double), N_LAYERS);
  for (int32_t l = 0; l < N_LAYERS; l++) {
    double computed = 0.0, causal = 0.0;
    for (int32_t s = 0; s < r->n_steps; s++) {
      const up_attn_work w = r->step_layer_attn[s * N_LAYERS + l];
      if (w.causal == 0.0) cr_expect(isnan(step[s * N_LAYERS + l]), "step %d layer %d: no work, NaN", s, l);
      else cr_expect_float_eq(step[s * N_LAYERS + l], (l + 1.0) / (s + 2.0), 1e-12, "step %d layer %d", s, l);
      computed += w.computed;
      causal += w.causal;
    }
    if (r->n_steps == 0) cr_expect(isnan(point[l]), "layer %d of a point without steps: NaN", l);
    else cr_expect_float_eq(point[l], computed / causal, 1e-12, "layer %d over the point", l);
  }
  if (r->n_steps > 0) cr_expect_float_eq(point[0], 0.5, 1e-12, "layer 0: only step 0's work, half of it");
  free(step);
  free(point);
}

static void check_point(hid_t file, const sample_point *p) {
  char name[32];
  snprintf(name, sizeof name, "/points/%04d", p->params.index);
  const hid_t g = H5Gopen2(file, name, H5P_DEFAULT);
  cr_assert(g >= 0, "group %s missing", name);
  const up_point_params *pp = &p->params;

  cr_expect_eq(attr_i32(g, "index"), pp->index);
  expect_attr_str(g, "method", pp->method);
  cr_expect_eq(attr_i32(g, "ctx"), pp->ctx);
  cr_expect_eq(attr_i32(g, "concurrency"), pp->concurrency);
  cr_expect_eq(attr_i32(g, "output_len"), pp->output_len);
  cr_expect_eq(attr_i32(g, "n_requests"), pp->n_requests);
  uint64_t seed = 0;
  read_attr(g, "seed", H5T_NATIVE_UINT64, &seed);
  cr_expect_eq(seed, pp->seed);
  float top_p = 0, keep = 0;
  read_attr(g, "top_p", H5T_NATIVE_FLOAT, &top_p);
  read_attr(g, "keep_fraction", H5T_NATIVE_FLOAT, &keep);
  if (isnan(pp->top_p)) {
    cr_expect(isnan(top_p) && isnan(keep), "NaN knobs must stay NaN");
  } else {
    cr_expect_eq(top_p, pp->top_p);
    cr_expect_eq(keep, pp->keep_fraction);
  }
  cr_expect_eq(attr_i32(g, "block"), pp->block);
  cr_expect_eq(attr_i32(g, "sink"), pp->sink);
  cr_expect_eq(attr_i32(g, "last_q"), pp->last_q);
  expect_attr_str(g, "drop_layers", pp->drop_layers);
  expect_attr_str(g, "method_spec", pp->method_spec);
  cr_expect_eq(attr_i32(g, "max_seqs"), pp->max_seqs);
  cr_expect_eq(attr_i64(g, "max_batch_tokens"), pp->max_batch_tokens);
  cr_expect_eq(attr_i32(g, "kv_block_tokens"), pp->kv_block_tokens);
  cr_expect_eq(attr_i64(g, "kv_blocks_total"), pp->kv_blocks_total);
  cr_expect_eq(attr_i64(g, "kv_blocks_peak"), pp->kv_blocks_peak);
  cr_expect_eq(attr_i64(g, "kv_block_bytes"), pp->kv_block_bytes);
  cr_expect_eq(attr_i32(g, "max_resident"), pp->max_resident);
  cr_expect_eq(attr_i32(g, "repetitions"), pp->repetitions);
  cr_expect_eq(attr_i32(g, "tp"), pp->tp);
  cr_expect_eq(attr_i32(g, "dp"), pp->dp);
  expect_attr_str(g, "tp_transport", pp->tp_transport);
  double wall = 0;
  read_attr(g, "wall_s", H5T_NATIVE_DOUBLE, &wall);
  cr_expect_eq(wall, p->summary.wall_s);

  const up_point_result *r = &p->result;
  request_row *reqs = NULL;
  const hsize_t nr = read_table(g, "requests", request_fields, N_OF(request_fields), sizeof(request_row), (void **)&reqs);
  cr_assert_eq(nr, (hsize_t)r->n_requests);
  for (hsize_t i = 0; i < nr; i++) {
    /* memcmp also covers NaN fields bit for bit; the explicit checks say which failed. */
    cr_expect_eq(reqs[i].record.id, r->requests[i].id);
    cr_expect_eq(reqs[i].record.status, r->requests[i].status);
    cr_expect_str_eq(reqs[i].record.error, r->requests[i].error);
    cr_expect_eq(memcmp(&reqs[i].record, &r->requests[i], sizeof reqs[i].record), 0, "request %llu differs",
                 (unsigned long long)i);
    cr_expect_eq(reqs[i].round, pp->request_rounds ? pp->request_rounds[i] : 0, "request %llu's round",
                 (unsigned long long)i);
  }
  if (pp->index == 0) {
    cr_expect_eq(reqs[2].record.status, 3);
    cr_expect_str_eq(reqs[2].record.error, failed_message);
    cr_expect(isnan(reqs[2].record.tpot_ms));
    cr_expect_str_eq(reqs[0].record.error, "");
  }
  free(reqs);

  step_row *steps = NULL;
  const hsize_t ns = read_table(g, "steps", step_fields, N_OF(step_fields), sizeof(step_row), (void **)&steps);
  cr_assert_eq(ns, (hsize_t)r->n_steps);
  for (hsize_t i = 0; i < ns; i++) {
    cr_expect_eq(memcmp(&steps[i].record, &r->steps[i], sizeof steps[i].record), 0, "step %llu differs",
                 (unsigned long long)i);
    cr_expect_eq(steps[i].round, 0, "step %llu's round", (unsigned long long)i);
  }
  free(steps);

  /* The rounds table: /summary's fields, one row per round given. */
  up_point_summary *rounds = NULL;
  const hsize_t n_rounds = read_table(g, "rounds", summary_fields, N_OF(summary_fields), sizeof(up_point_summary),
                                      (void **)&rounds);
  cr_assert_eq(n_rounds, (hsize_t)(pp->round_rows ? pp->n_round_rows : 0));
  for (hsize_t k = 0; k < n_rounds; k++)
    cr_expect_eq(memcmp(&rounds[k], &pp->round_rows[k], sizeof rounds[k]), 0, "round row %llu differs",
                 (unsigned long long)k);
  free(rounds);

  int32_t *rlt = read_matrix(g, "request_layer_tokens", H5T_NATIVE_INT32, sizeof(int32_t), (hsize_t)r->n_requests,
                             N_LAYERS);
  cr_expect_eq(memcmp(rlt, r->request_layer_tokens, sizeof(int32_t) * (size_t)r->n_requests * N_LAYERS), 0);
  free(rlt);
  int64_t *slt =
      read_matrix(g, "step_layer_tokens", H5T_NATIVE_INT64, sizeof(int64_t), (hsize_t)r->n_steps, N_LAYERS);
  if (r->n_steps > 0) {
    cr_expect_eq(memcmp(slt, r->step_layer_tokens, sizeof(int64_t) * (size_t)r->n_steps * N_LAYERS), 0);
  }
  free(slt);
  check_attention_density(g, r);

  int64_t *offsets = read_vector(g, "token_offsets", H5T_NATIVE_INT64, sizeof(int64_t), (hsize_t)r->n_requests + 1);
  cr_expect_eq(memcmp(offsets, r->token_offsets, sizeof(int64_t) * ((size_t)r->n_requests + 1)), 0);
  const int64_t n_times = r->token_offsets[r->n_requests];
  double *times = read_vector(g, "token_times", H5T_IEEE_F64LE, sizeof(double), (hsize_t)n_times);
  cr_expect_eq(memcmp(times, r->token_times, sizeof(double) * (size_t)n_times), 0);
  free(offsets);
  free(times);
  H5Gclose(g);
}

static void write_points(up_results_file *f, sample_point *pts, int n) {
  char err[512] = "";
  for (int i = 0; i < n; i++) {
    const int rc = up_results_write_point(f, &pts[i].params, &pts[i].summary, &pts[i].result, err, sizeof err);
    cr_assert_eq(rc, 0, "write_point %d: %s", i, err);
  }
}

/* ---- tests ------------------------------------------------------------------ */

Test(results_h5, round_trip) {
  const char *keep = getenv("UP_TEST_KEEP_H5");
  make_tmp();
  const char *path = keep != NULL && keep[0] != '\0' ? keep : tmp_file;
  char err[512] = "";
  sample_point pts[2];
  make_point(&pts[0], 0);
  make_point(&pts[1], 1);

  up_results_file *f = up_results_open(path, &sample_info, err, sizeof err);
  cr_assert_not_null(f, "open: %s", err);
  write_points(f, pts, 2);
  up_point_summary rows[2];
  /* memcpy, not assignment, so the padding compared by memcmp below is copied too. */
  memcpy(&rows[0], &pts[0].summary, sizeof rows[0]);
  memcpy(&rows[1], &pts[1].summary, sizeof rows[1]);
  rows[0].speedup_vs_dense = 1.0;
  rows[1].speedup_vs_dense = 2.5;
  /* The TP scaling is rewritten with it, each field on its own ("tp_speedup" is not "tp"). */
  rows[0].tp_speedup = rows[0].tp_efficiency = rows[0].tp_efficiency_model = 1.0;
  rows[1].tp_speedup = 1.5;
  rows[1].tp_efficiency = 0.75;
  rows[1].tp_efficiency_model = 0.875;
  cr_assert_eq(up_results_update_speedups(f, rows, 2, err, sizeof err), 0, "%s", err);
  cr_assert_eq(up_results_close(f, err, sizeof err), 0, "close: %s", err);

  const hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  cr_assert(file >= 0);
  cr_expect_eq(attr_i32(file, "schema_version"), UP_RESULTS_SCHEMA_VERSION);
  expect_attr_str(file, "tool", "uniprefill-bench");
  expect_attr_str(file, "tool_version", sample_info.tool_version);
  expect_attr_str(file, "git_commit", sample_info.git_commit);
  expect_attr_str(file, "argv", sample_info.argv_joined);
  expect_attr_str(file, "hostnames", sample_info.hostnames);
  cr_expect_eq(attr_i32(file, "world_size"), sample_info.world_size);
  expect_attr_str(file, "backend", sample_info.backend);
  expect_attr_str(file, "device_names", sample_info.device_names);
  expect_attr_str(file, "model", sample_info.model);
  expect_attr_str(file, "library_versions", sample_info.library_versions);
  expect_attr_str(file, "started_utc", sample_info.started_utc);

  check_point(file, &pts[0]);
  check_point(file, &pts[1]);

  up_point_summary *sum = NULL;
  const hsize_t n = read_table(file, "summary", summary_fields, N_OF(summary_fields), sizeof(up_point_summary),
                               (void **)&sum);
  cr_assert_eq(n, 2);
  for (int i = 0; i < 2; i++) {
    cr_expect_str_eq(sum[i].method, rows[i].method);
    cr_expect_eq(memcmp(&sum[i], &rows[i], sizeof sum[i]), 0, "summary row %d differs", i);
  }
  cr_expect_eq(sum[1].speedup_vs_dense, 2.5);
  cr_expect_eq(sum[1].tp, 2);
  cr_expect_eq(sum[1].tp_speedup, 1.5);
  cr_expect_eq(sum[1].tp_efficiency_model, 0.875);
  /* Written with the point, and kept apart from tp_comm_model_ms by the reader's names. */
  cr_expect_eq(sum[0].tp_comm_ms, 0.0);
  cr_expect_eq(sum[1].tp_comm_ms, 3.25);
  cr_expect_eq(sum[1].tp_comm_share, 0.125);
  cr_expect_eq(sum[1].attention_tflops, 501.0);
  cr_expect_eq(sum[1].tp_comm_model_ms, 0.625);
  free(sum);
  H5Fclose(file);

  free_point(&pts[0]);
  free_point(&pts[1]);
  if (path == tmp_file) unlink(tmp_file);
  remove_tmp();
}

Test(results_h5, missing_directory_names_the_path) {
  char err[512] = "";
  const char *path = "/tmp/up_results_h5_no_such_dir/sub/run.h5";
  up_results_file *f = up_results_open(path, &sample_info, err, sizeof err);
  cr_assert_null(f);
  cr_expect(strstr(err, path) != NULL, "message lacks the path: %s", err);
}

Test(results_h5, bad_token_offsets_are_refused) {
  up_results_file *f = open_tmp_run();
  char err[512] = "";
  sample_point p;
  make_point(&p, 1);
  p.result.token_offsets[1] = 5; /* then 3: offsets decrease */
  cr_expect_eq(up_results_write_point(f, &p.params, &p.summary, &p.result, err, sizeof err), -1);
  cr_expect(strstr(err, "token offsets decrease") != NULL, "%s", err);
  p.result.token_offsets[1] = 1;
  p.result.token_offsets[0] = 1;
  cr_expect_eq(up_results_write_point(f, &p.params, &p.summary, &p.result, err, sizeof err), -1);
  cr_expect(strstr(err, "not starting at 0") != NULL, "%s", err);
  p.result.token_offsets[0] = 0;
  int64_t *offsets = p.result.token_offsets;
  p.result.token_offsets = NULL;
  cr_expect_eq(up_results_write_point(f, &p.params, &p.summary, &p.result, err, sizeof err), -1);
  p.result.token_offsets = offsets;
  cr_expect_eq(up_results_close(f, err, sizeof err), 0, "%s", err);
  free_point(&p);
  remove_tmp();
}

/* A point whose every request was lost to a crash still gets offsets {0} and no times. */
Test(results_h5, point_without_requests_has_one_offset) {
  up_results_file *f = open_tmp_run();
  char err[512] = "";
  sample_point p;
  make_point(&p, 1);
  up_point_result empty = {.n_layers = N_LAYERS};
  cr_assert_eq(up_results_write_point(f, &p.params, &p.summary, &empty, err, sizeof err), 0, "%s", err);
  cr_assert_eq(up_results_close(f, err, sizeof err), 0, "%s", err);
  const hid_t file = H5Fopen(tmp_file, H5F_ACC_RDONLY, H5P_DEFAULT);
  cr_assert(file >= 0);
  const hid_t g = H5Gopen2(file, "/points/0001", H5P_DEFAULT);
  int64_t *offsets = read_vector(g, "token_offsets", H5T_NATIVE_INT64, sizeof(int64_t), 1);
  cr_expect_eq(offsets[0], 0);
  free(offsets);
  cr_expect_null(read_vector(g, "token_times", H5T_IEEE_F64LE, sizeof(double), 0));
  H5Gclose(g);
  H5Fclose(file);
  free_point(&p);
  remove_tmp();
}

Test(results_h5, point_written_twice_fails) {
  up_results_file *f = open_tmp_run();
  char err[512] = "";
  sample_point p;
  make_point(&p, 1);
  write_points(f, &p, 1);
  cr_expect_eq(up_results_write_point(f, &p.params, &p.summary, &p.result, err, sizeof err), -1);
  cr_expect(strstr(err, "/points/0001") != NULL, "message lacks the group: %s", err);
  cr_expect(strstr(err, tmp_file) != NULL, "message lacks the path: %s", err);
  /* The speedups must match the rows actually written. */
  cr_expect_eq(up_results_update_speedups(f, &p.summary, 2, err, sizeof err), -1);
  cr_expect_eq(up_results_close(f, err, sizeof err), 0, "%s", err);
  free_point(&p);
  remove_tmp();
}

/* Wait for a child that wrote tmp_file and exited without closing it (as a killed run
 * would), then open what it left. */
static hid_t open_after_killed_writer(pid_t child) {
  int status = 0;
  cr_assert_eq(waitpid(child, &status, 0), child);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed: status %d", status);
  const hid_t file = H5Fopen(tmp_file, H5F_ACC_RDONLY, H5P_DEFAULT);
  cr_assert(file >= 0, "a killed run's file must open");
  return file;
}

Test(results_h5, killed_run_keeps_finished_points) {
  make_tmp();
  const pid_t child = fork();
  cr_assert(child >= 0);
  if (child == 0) {
    /* Write one point and die without closing, as a killed run would. */
    char err[512] = "";
    sample_point p;
    make_point(&p, 0);
    up_results_file *f = up_results_open(tmp_file, &sample_info, err, sizeof err);
    if (f == NULL) _exit(2);
    if (up_results_write_point(f, &p.params, &p.summary, &p.result, err, sizeof err) != 0) _exit(3);
    _exit(0);
  }
  const hid_t file = open_after_killed_writer(child);
  cr_expect(H5Lexists(file, "points", H5P_DEFAULT) > 0);
  const hid_t points = H5Gopen2(file, "points", H5P_DEFAULT);
  cr_assert(points >= 0);
  cr_expect(H5Lexists(points, "0000", H5P_DEFAULT) > 0, "point 0 lost");
  H5Gclose(points);
  up_point_summary *sum = NULL;
  const hsize_t n = read_table(file, "summary", summary_fields, N_OF(summary_fields), sizeof(up_point_summary),
                               (void **)&sum);
  cr_expect_eq(n, 1);
  cr_expect_eq(sum[0].point_index, 0);
  cr_expect_str_eq(sum[0].method, "dense");
  free(sum);
  H5Fclose(file);
  remove_tmp();
}

/* Kernel rows as the --kernels mode writes them: one group, then the next. */
static void make_kernel_rows(up_kernel_record *rows, int32_t n, int32_t first) {
  for (int32_t i = 0; i < n; i++) {
    up_kernel_record *r = &rows[i];
    memset(r, 0, sizeof *r); /* zero padding, so records compare with memcmp */
    r->index = first + i;
    r->rank = i % 2;
    snprintf(r->kernel, sizeof r->kernel, "%s", first == 0 ? "gemm" : "selection");
    snprintf(r->label, sizeof r->label, "case %d", (int)(first + i));
    snprintf(r->shape, sizeof r->shape, "%dx%d", 32768, 4096 + i);
    r->m = 32768;
    r->n = 4096 + i;
    r->k = 14336;
    r->tokens = 32768;
    r->repeats = 15;
    r->flush_bytes = 256LL << 20;
    r->median_ms = 5.0 + i;
    r->min_ms = 4.5;
    r->max_ms = 6.5;
    r->flop = 2.0 * r->m * r->n * r->k;
    r->tflops_per_s = r->flop / (r->median_ms * 1e-3) / 1e12;
    r->peak_tflops_per_s = NAN;
    r->target_ms = i == 0 ? 0.5 : NAN;
    r->target_met = i == 0 ? UP_VERDICT_MISSED : UP_VERDICT_NONE;
    snprintf(r->target, sizeof r->target, "%s", i == 0 ? "<= 0.5 ms" : "");
    snprintf(r->basis, sizeof r->basis, "issue 4");
    r->kept_fraction = 0.25 * i;
  }
}

static const up_kernel_table_params sample_kernel_params = {
    .kv_block_tokens = 16, .top_p = 0.99f, .keep_fraction = 0.0f, .block = 64, .sink = 128, .last_q = 128, .seed = 42};

static void expect_kernel_rows(hid_t file, const up_kernel_record *want, hsize_t n_want) {
  const hid_t table = H5Dopen2(file, "kernels", H5P_DEFAULT);
  cr_assert(table >= 0);
  cr_expect_eq(attr_i32(table, "last_q"), 128);
  cr_expect_eq(attr_i32(table, "kv_block_tokens"), 16);
  float top_p = 0.0f;
  read_attr(table, "top_p", H5T_NATIVE_FLOAT, &top_p);
  cr_expect_float_eq(top_p, 0.99f, 1e-7);
  H5Dclose(table);
  up_kernel_record *got = NULL;
  const hsize_t n = read_table(file, "kernels", kernel_fields, N_OF(kernel_fields), sizeof(up_kernel_record),
                               (void **)&got);
  cr_assert_eq(n, n_want);
  for (hsize_t i = 0; i < n; i++) {
    cr_expect_str_eq(got[i].label, want[i].label);
    cr_expect_eq(got[i].index, want[i].index);
    cr_expect_float_eq(got[i].flop, want[i].flop, 1e-3);
    cr_expect(isnan(got[i].peak_tflops_per_s), "NaN stays NaN");
    cr_expect_eq(got[i].target_met, want[i].target_met);
    cr_expect_eq(memcmp(&got[i], &want[i], offsetof(up_kernel_record, peak_tflops_per_s)), 0, "row %llu",
                 (unsigned long long)i);
  }
  free(got);
}

Test(results_h5, kernels_table_grows_by_appends) {
  up_results_file *f = open_tmp_run();
  up_kernel_record rows[5];
  make_kernel_rows(rows, 3, 0);
  make_kernel_rows(rows + 3, 2, 3);
  char err[512] = "";
  cr_assert_eq(up_results_append_kernels(f, &sample_kernel_params, rows, 3, err, sizeof err), 0, "%s", err);
  cr_assert_eq(up_results_append_kernels(f, &sample_kernel_params, rows, 0, err, sizeof err), 0, "%s", err);
  cr_assert_eq(up_results_append_kernels(f, &sample_kernel_params, rows + 3, 2, err, sizeof err), 0, "%s", err);
  cr_assert_eq(up_results_close(f, err, sizeof err), 0, "%s", err);
  const hid_t file = H5Fopen(tmp_file, H5F_ACC_RDONLY, H5P_DEFAULT);
  cr_assert(file >= 0);
  expect_kernel_rows(file, rows, 5);
  H5Fclose(file);
  remove_tmp();
}

Test(results_h5, killed_run_keeps_its_kernel_rows) {
  make_tmp();
  up_kernel_record rows[2];
  make_kernel_rows(rows, 2, 0);
  const pid_t child = fork();
  cr_assert(child >= 0);
  if (child == 0) {
    /* One group of cases written, then death without closing, as a run that fails in the next group. */
    char err[512] = "";
    up_results_file *f = up_results_open(tmp_file, &sample_info, err, sizeof err);
    if (f == NULL) _exit(2);
    if (up_results_append_kernels(f, &sample_kernel_params, rows, 2, err, sizeof err) != 0) _exit(3);
    _exit(0);
  }
  const hid_t file = open_after_killed_writer(child);
  expect_kernel_rows(file, rows, 2);
  H5Fclose(file);
  remove_tmp();
}

Test(results_h5, sweep_files_have_no_kernels_table) {
  up_results_file *f = open_tmp_run();
  char err[512] = "";
  sample_point p;
  make_point(&p, 0);
  write_points(f, &p, 1);
  free_point(&p);
  cr_assert_eq(up_results_close(f, err, sizeof err), 0, "%s", err);
  const hid_t file = H5Fopen(tmp_file, H5F_ACC_RDONLY, H5P_DEFAULT);
  cr_assert(file >= 0);
  cr_expect_eq(H5Lexists(file, "kernels", H5P_DEFAULT), 0);
  H5Fclose(file);
  remove_tmp();
}

/* ---- the file appears at its path with its first point (issue 18) ------------------ */

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fputs(text, f);
  fclose(f);
}

static void expect_text(const char *path, const char *text) {
  char buf[256] = "";
  FILE *f = fopen(path, "r");
  cr_assert_not_null(f, "%s is gone", path);
  const size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  cr_expect_str_eq(buf, text, "%s was changed", path);
}

static int entries_in(const char *dir) {
  DIR *d = opendir(dir);
  cr_assert_not_null(d);
  int n = 0;
  for (const struct dirent *e = readdir(d); e; e = readdir(d)) n += e->d_name[0] != '.' || strlen(e->d_name) > 2;
  closedir(d);
  return n;
}

/* A run file opened over an earlier file at the same path. */
static up_results_file *open_over_earlier_results(void) {
  make_tmp();
  write_text(tmp_file, "earlier results\n");
  char err[512] = "";
  up_results_file *f = up_results_open(tmp_file, &sample_info, err, sizeof err);
  cr_assert_not_null(f, "open: %s", err);
  return f;
}

/* A run that fails before its first point (a checkpoint that cannot load) leaves an
 * existing file as it was, and no temporary file behind. */
Test(results_h5, a_run_without_points_leaves_the_old_file) {
  up_results_file *f = open_over_earlier_results();
  char err[512] = "";
  expect_text(tmp_file, "earlier results\n");
  cr_expect_eq(entries_in(tmp_dir), 2, "the run is written beside its path, not over it");
  cr_assert_eq(up_results_close(f, err, sizeof err), 0, "%s", err);
  expect_text(tmp_file, "earlier results\n");
  cr_expect_eq(entries_in(tmp_dir), 1, "the temporary file was left behind");
  remove_tmp();
}

Test(results_h5, the_first_point_replaces_the_old_file) {
  up_results_file *f = open_over_earlier_results();
  char err[512] = "";
  sample_point p[2];
  make_point(&p[0], 0);
  make_point(&p[1], 1);
  write_points(f, p, 1);
  cr_expect_eq(entries_in(tmp_dir), 1, "the file was not moved into place");
  /* HDF5 will not open a file a second time in the process that writes it: the
   * signature shows the path now holds the run (killed_run_keeps_finished_points reads
   * a published file whose writer died). */
  char signature[8] = "";
  FILE *raw = fopen(tmp_file, "rb");
  cr_assert_not_null(raw);
  cr_expect_eq(fread(signature, 1, sizeof signature, raw), sizeof signature);
  fclose(raw);
  cr_expect_eq(memcmp(signature, "\x89HDF\r\n\x1a\n", 8), 0, "the path does not hold the HDF5 file yet");
  write_points(f, p + 1, 1);
  cr_assert_eq(up_results_close(f, err, sizeof err), 0, "%s", err);
  const hid_t file = H5Fopen(tmp_file, H5F_ACC_RDONLY, H5P_DEFAULT);
  cr_assert(file >= 0);
  check_point(file, &p[0]);
  check_point(file, &p[1]);
  H5Fclose(file);
  free_point(&p[0]);
  free_point(&p[1]);
  remove_tmp();
}

/* Output-path problems are plain words, not HDF5's error stack. */
Test(results_h5, path_errors_are_plain) {
  make_tmp();
  char err[512] = "";
  cr_expect_null(up_results_open(tmp_dir, &sample_info, err, sizeof err));
  cr_expect(strstr(err, tmp_dir) != NULL && strstr(err, "is a directory") != NULL, "%s", err);
  char path[192];
  snprintf(path, sizeof path, "%s/no_dir/run.h5", tmp_dir);
  cr_expect_null(up_results_open(path, &sample_info, err, sizeof err));
  cr_expect(strstr(err, "cannot create a file in directory") != NULL && strstr(err, "No such file or directory"),
            "%s", err);
  cr_expect(strstr(err, "H5") == NULL, "HDF5 internals in '%s'", err);
  write_text(tmp_file, "a file, not a directory\n");
  snprintf(path, sizeof path, "%s/run.h5", tmp_file);
  cr_expect_null(up_results_open(path, &sample_info, err, sizeof err));
  cr_expect(strstr(err, "Not a directory") != NULL, "%s", err);
  remove_tmp();
}
