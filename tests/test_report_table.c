/* test_report_table.c — the results table in each format on a few rows, one with a
 * missing speedup (NaN): markdown lines up and keeps to the prefill and KV columns (plus
 * goodput once an SLO gave one), CSV keeps its field count and leaves the missing value
 * empty, JSON parses back with null for it; rounds show "mean +- stddev" and a "*" on
 * percentiles over few requests; JSONL lines parse back with the run's identity. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "launcher/output/report_table.h"

#define N_ROWS 3
#define N_MD_COLUMNS 17 /* markdown without an SLO (attn_tflops: the rows carry it) */
#define N_COLUMNS 40    /* CSV and JSON */

/* One row per case: a plain dense row, one with sub-millisecond TTFT (3 significant
 * digits), one with a failure and no dense reference (NaN speedup). */
static void make_rows(up_point_summary *rows) {
  const up_point_summary cases[N_ROWS] = {
      {.method = "dense", .ttft_mean_ms = 1396.25, .ttft_p50_ms = 1390.0, .ttft_p99_ms = 1402.123,
       .prefill_tokens_per_s = 93900.4, .kept_fraction = 1.0, .speedup_vs_dense = 1.0},
      {.method = "uniprefill:keep=0.3", .ttft_mean_ms = 0.0123, .ttft_p50_ms = 0.5, .ttft_p99_ms = 600.0,
       .prefill_tokens_per_s = 12.0, .kept_fraction = 0.3, .speedup_vs_dense = 2.346},
      {.method = "uniprefill", .n_failed = 1, .ttft_mean_ms = 700.0, .ttft_p50_ms = 700.0, .ttft_p99_ms = 700.0,
       .prefill_tokens_per_s = 1e6, .kept_fraction = 0.5, .speedup_vs_dense = NAN},
  };
  for (int i = 0; i < N_ROWS; i++) {
    rows[i] = cases[i];
    rows[i].tpot_p99_ms = 20.0 + i;
    rows[i].itl_p99_ms = 21.5;
    rows[i].e2e_p99_ms = 1500.0;
    rows[i].requests_per_s = 2.5;
    rows[i].output_tokens_per_s = 40.0;
    rows[i].goodput_requests_per_s = NAN; /* no --slo */
    rows[i].model_tflops_per_s = 500.0 + i;
    rows[i].predicted_speedup = 3.0;
    rows[i].kv_bytes_per_request = 3.5 * 1048576.0 / (i + 1); /* 3.50, 1.75, 1.17 MiB */
    rows[i].kv_fraction_of_dense = 1.0 / (i + 1);
    rows[i].max_resident = 4 - i;
    rows[i].point_index = i;
    rows[i].ctx = 32768;
    rows[i].concurrency = 4;
    rows[i].n_requests = 4;
    rows[i].n_ok = 4 - rows[i].n_failed;
    /* As a one-round point: no spread; percentiles_few_requests stays 0 here (the tests
     * of rounds below set it). */
    rows[i].repetitions = 1;
    double *spread = &rows[i].ttft_mean_round_std_ms;
    for (double *m = spread; m <= &rows[i].goodput_requests_per_s_round_std; m++) *m = NAN;
    /* Without --tp: one rank per group, no TP = 1 comparison. */
    rows[i].tp = 1;
    rows[i].dp = 1;
    rows[i].tp_speedup = rows[i].tp_efficiency = rows[i].tp_efficiency_model = NAN;
    rows[i].tp_comm_model_ms = 0.0;
    rows[i].tp_comm_ms = rows[i].tp_comm_share = 0.0;
    rows[i].attention_tflops = 400.0 + i;
  }
}

/* A stream whose text ends up in a malloc'd string once capture_end closes it. */
typedef struct capture {
  char *text;
  size_t size;
  FILE *out;
} capture;

static FILE *capture_begin(capture *c) {
  c->text = NULL;
  c->out = open_memstream(&c->text, &c->size);
  cr_assert_not_null(c->out);
  return c->out;
}

static char *capture_end(capture *c) {
  fclose(c->out);
  return c->text;
}

/* Print N_ROWS rows in one format into a malloc'd string. */
static char *render_rows(up_output_format format, const up_point_summary *rows) {
  capture c;
  up_report_table_print(capture_begin(&c), format, rows, N_ROWS);
  return capture_end(&c);
}

/* The sample rows in one format. */
static char *render(up_output_format format) {
  up_point_summary rows[N_ROWS];
  make_rows(rows);
  return render_rows(format, rows);
}

/* Split text into lines in place; returns the count (no trailing empty line). */
static int split_lines(char *text, char **lines, int max) {
  int n = 0;
  for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    cr_assert_lt(n, max);
    lines[n++] = line;
  }
  return n;
}

Test(report_table, markdown_lines_up) {
  char *text = render(UP_FORMAT_MARKDOWN);
  cr_assert_not_null(strstr(text, "| method"), "%s", text);
  cr_expect_not_null(strstr(text, "speedup_vs_dense"));
  cr_expect_not_null(strstr(text, "2.35x"), "%s", text);
  cr_expect_not_null(strstr(text, "1396.25"), "%s", text);
  cr_expect_not_null(strstr(text, "0.0123"), "%s", text);
  cr_expect_not_null(strstr(text, "1000000.0"), "%s", text);
  cr_expect_not_null(strstr(text, "0.300"), "%s", text);
  cr_expect_not_null(strstr(text, "| kv_mib_req | kv_vs_dense | max_resident |"), "%s", text);
  cr_expect_not_null(strstr(text, "|       3.50 |       1.000 |            4 |"), "%s", text);
  char *lines[16];
  const int n = split_lines(text, lines, 16);
  cr_assert_eq(n, 2 + N_ROWS, "%d lines", n);
  for (int i = 1; i < n; i++)
    cr_expect_eq(strlen(lines[i]), strlen(lines[0]), "line %d '%s' vs '%s'", i, lines[i], lines[0]);
  /* Separator: method left-aligned, numbers right-aligned. */
  cr_expect_eq(strncmp(lines[1], "| ---", 5), 0, "%s", lines[1]);
  cr_expect_not_null(strstr(lines[1], "-: |"), "%s", lines[1]);
  /* The NaN speedup shows "-" right-aligned in its column, before the predicted speedup. */
  const char *last = lines[n - 1];
  cr_expect_not_null(strstr(last, " - |             3.00x |"), "%s", last);
  free(text);
}

Test(report_table, csv_fields_and_empty_nan) {
  char *text = render(UP_FORMAT_CSV);
  char *lines[16];
  const int n = split_lines(text, lines, 16);
  cr_assert_eq(n, 1 + N_ROWS);
  cr_expect_str_eq(lines[0], "method,ctx,conc,requests,failed,ttft_mean_ms,ttft_p50_ms,ttft_p99_ms,prefill_tok_s,"
                             "model_tflops,kept_frac,speedup_vs_dense,predicted_speedup,kv_mib_req,kv_vs_dense,max_resident,tpot_p99_ms,"
                             "itl_p99_ms,e2e_p99_ms,req_s,output_tok_s,goodput_req_s,repetitions,percentiles_few_requests,"
                             "ttft_mean_round_std_ms,prefill_tok_s_round_std,model_tflops_round_std,req_s_round_std,"
                             "output_tok_s_round_std,goodput_req_s_round_std,prefill,tp,dp,tp_speedup,tp_eff,tp_eff_model,"
                             "tp_comm_model_ms,tp_comm_ms,tp_comm_share,attn_tflops");
  for (int i = 0; i < n; i++) {
    int commas = 0;
    for (const char *p = lines[i]; *p; p++) commas += *p == ',';
    cr_expect_eq(commas, N_COLUMNS - 1, "line %d: %s", i, lines[i]);
  }
  cr_expect_str_eq(lines[1], "dense,32768,4,4,0,1396.25,1390.00,1402.12,93900.4,500.00,1.000,1.00,3.00,3.50,1.000,4,20.00,"
                             "21.50,1500.00,2.5,40.0,,1,0,,,,,,,,1,1,,,,0.00,0.00,0.000,400.00");
  cr_expect_str_eq(lines[2], "uniprefill:keep=0.3,32768,4,4,0,0.0123,0.5,600.00,12.0,501.00,0.300,2.35,3.00,1.75,0.500,3,"
                             "21.00,21.50,1500.00,2.5,40.0,,1,0,,,,,,,,1,1,,,,0.00,0.00,0.000,401.00");
  /* Missing speedup: an empty field. */
  cr_expect_not_null(strstr(lines[3], ",0.500,,3.00,1.17,0.333,2,22.00,"), "%s", lines[3]);
  free(text);
}

Test(report_table, json_parses_back_with_null_for_nan) {
  char *text = render(UP_FORMAT_JSON);
  cJSON *root = cJSON_Parse(text);
  cr_assert_not_null(root, "%s", text);
  cr_assert(cJSON_IsArray(root));
  cr_assert_eq(cJSON_GetArraySize(root), N_ROWS);
  const char *keys[N_COLUMNS] = {"method",      "ctx",         "conc",          "requests",  "failed",
                                 "ttft_mean_ms", "ttft_p50_ms", "ttft_p99_ms", "prefill_tok_s", "model_tflops", "kept_frac",
                                 "speedup_vs_dense", "predicted_speedup", "kv_mib_req", "kv_vs_dense", "max_resident",
                                 "tpot_p99_ms", "itl_p99_ms", "e2e_p99_ms", "req_s", "output_tok_s", "goodput_req_s",
                                 "repetitions", "percentiles_few_requests", "ttft_mean_round_std_ms",
                                 "prefill_tok_s_round_std", "model_tflops_round_std", "req_s_round_std",
                                 "output_tok_s_round_std", "goodput_req_s_round_std", "prefill", "tp", "dp",
                                 "tp_speedup", "tp_eff", "tp_eff_model", "tp_comm_model_ms", "tp_comm_ms",
                                 "tp_comm_share", "attn_tflops"};
  for (int r = 0; r < N_ROWS; r++) {
    const cJSON *row = cJSON_GetArrayItem(root, r);
    cr_assert(cJSON_IsObject(row));
    cr_expect_eq(cJSON_GetArraySize(row), N_COLUMNS);
    for (int k = 0; k < N_COLUMNS; k++)
      cr_expect_not_null(cJSON_GetObjectItemCaseSensitive(row, keys[k]), "row %d lacks %s", r, keys[k]);
  }
  const cJSON *row1 = cJSON_GetArrayItem(root, 1);
  cr_expect_str_eq(cJSON_GetObjectItemCaseSensitive(row1, "method")->valuestring, "uniprefill:keep=0.3");
  cr_expect_eq(cJSON_GetObjectItemCaseSensitive(row1, "ctx")->valueint, 32768);
  cr_expect_float_eq(cJSON_GetObjectItemCaseSensitive(row1, "speedup_vs_dense")->valuedouble, 2.346, 1e-12);
  /* Bytes are shown in MiB at full precision. */
  cr_expect_float_eq(cJSON_GetObjectItemCaseSensitive(row1, "kv_mib_req")->valuedouble, 1.75, 1e-12);
  cr_expect_eq(cJSON_GetObjectItemCaseSensitive(row1, "max_resident")->valueint, 3);
  const cJSON *row2 = cJSON_GetArrayItem(root, 2);
  cr_expect(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(row2, "speedup_vs_dense")));
  cr_expect_eq(cJSON_GetObjectItemCaseSensitive(row2, "failed")->valueint, 1);
  cr_expect(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(row2, "goodput_req_s")), "no SLO: null goodput");
  cr_expect_float_eq(cJSON_GetObjectItemCaseSensitive(row2, "tpot_p99_ms")->valuedouble, 22.0, 1e-12);
  cJSON_Delete(root);
  free(text);
}

Test(report_table, empty_table_prints_headers) {
  capture c;
  FILE *out = capture_begin(&c);
  up_report_table_print(out, UP_FORMAT_MARKDOWN, NULL, 0);
  up_report_table_print(out, UP_FORMAT_JSON, NULL, 0);
  char *text = capture_end(&c);
  cr_expect_not_null(strstr(text, "| method"), "%s", text);
  cr_expect_not_null(strstr(text, "[]"), "%s", text);
  free(text);
}

/* Markdown shows tp and the measured collective time once some point ran split and the
 * TP scaling where it has values; dp and the modelled collective time stay in CSV and JSON. */
Test(report_table, markdown_adds_tp_columns_only_under_tp) {
  char *plain = render(UP_FORMAT_MARKDOWN);
  cr_expect_null(strstr(plain, " tp "), "%s", plain);
  cr_expect_null(strstr(plain, "tp_speedup"), "%s", plain);
  cr_expect_null(strstr(plain, "tp_comm_ms"), "%s", plain);
  free(plain);
  up_point_summary rows[N_ROWS];
  make_rows(rows);
  rows[2].tp = 2;
  rows[2].tp_speedup = 1.5;
  rows[2].tp_efficiency = 0.75;
  rows[2].tp_efficiency_model = 0.9;
  rows[2].tp_comm_ms = 12.5;
  rows[2].tp_comm_share = 0.25;
  char *split = render_rows(UP_FORMAT_MARKDOWN, rows);
  cr_expect_not_null(strstr(split, "|  tp | tp_speedup | tp_eff | tp_eff_model | tp_comm_ms | tp_comm_share |"), "%s",
                     split);
  cr_expect_not_null(strstr(split, "|   2 |      1.50x |  0.750 |        0.900 |      12.50 |         0.250 |"), "%s",
                     split);
  cr_expect_null(strstr(split, "tp_comm_model_ms"), "%s", split);
  cr_expect_null(strstr(split, "| dp"), "%s", split);
  free(split);
}

/* Markdown shows the decode-side columns never, and goodput only once --slo gave one. */
Test(report_table, markdown_adds_goodput_only_with_an_slo) {
  char *plain = render(UP_FORMAT_MARKDOWN);
  cr_expect_null(strstr(plain, "goodput"), "%s", plain);
  cr_expect_null(strstr(plain, "tpot_p99_ms"), "%s", plain);
  int bars = 0;
  for (const char *p = plain; *p && *p != '\n'; p++) bars += *p == '|';
  cr_expect_eq(bars, N_MD_COLUMNS + 1, "%s", plain);
  free(plain);

  up_point_summary rows[N_ROWS];
  make_rows(rows);
  rows[0].goodput_requests_per_s = 1.75;
  rows[1].goodput_requests_per_s = 0.0;
  char *text = render_rows(UP_FORMAT_MARKDOWN, rows);
  cr_expect_not_null(strstr(text, "goodput_req_s |"), "%s", text);
  cr_expect_not_null(strstr(text, " 1.8 |"), "%s", text);
  char *lines[16];
  const int n = split_lines(text, lines, 16);
  for (int i = 1; i < n; i++) cr_expect_eq(strlen(lines[i]), strlen(lines[0]), "line %d", i);
  free(text);
}

/* A point run in rounds: markdown reads "mean +- stddev" in the mean and rate cells, a
 * "*" on the percentiles of a point with fewer than 20 successful requests and one
 * footnote under the table; CSV gives the spreads columns of their own. */
Test(report_table, rounds_show_spread_and_few_request_marks) {
  up_point_summary rows[N_ROWS];
  make_rows(rows);
  rows[0].repetitions = 5;
  rows[0].ttft_mean_round_std_ms = 2.25;
  rows[0].prefill_tokens_per_s_round_std = 150.25;
  rows[0].n_ok = 20; /* enough: no mark */
  rows[1].repetitions = 5;
  rows[1].percentiles_few_requests = 1;
  char *text = render_rows(UP_FORMAT_MARKDOWN, rows);
  cr_expect_not_null(strstr(text, " 1396.25 +- 2.25 |"), "%s", text);
  cr_expect_not_null(strstr(text, " 93900.4 +- 150.2 |"), "%s", text);
  cr_expect_not_null(strstr(text, " 0.5* |"), "%s", text);
  cr_expect_not_null(strstr(text, " 600.00* |"), "%s", text);
  cr_expect_null(strstr(text, "1390.00*"), "%s", text);
  cr_expect_not_null(strstr(text, "\n* percentile over fewer than 20 successful requests"), "%s", text);
  char *lines[16];
  const int n = split_lines(text, lines, 16);
  cr_assert_eq(n, 2 + N_ROWS + 1, "%d lines", n);
  for (int i = 1; i < 2 + N_ROWS; i++) cr_expect_eq(strlen(lines[i]), strlen(lines[0]), "line %d", i);
  free(text);

  text = render_rows(UP_FORMAT_CSV, rows);
  cr_assert_eq(split_lines(text, lines, 16), 1 + N_ROWS);
  cr_expect_not_null(strstr(lines[1], ",5,0,2.25,150.2,,,,"), "%s", lines[1]);
  cr_expect_not_null(strstr(lines[2], ",5,1,,,,,,"), "%s", lines[2]);
  free(text);
}

/* JSONL: one compact line per row; a sweep point's line starts with the run's identity
 * and has every field of the json format. */
Test(report_table, jsonl_lines_parse_back_with_the_identity) {
  up_point_summary rows[N_ROWS];
  make_rows(rows);
  const up_report_identity id = {.tool_version = "0.1.0", .git_commit = "abc123", .backend = "cpu",
                                 .device_names = "cpu0,cpu1", .model = "tiny-llama", .world_size = 2};
  capture c;
  FILE *out = capture_begin(&c);
  for (int r = 0; r < N_ROWS; r++) up_report_point_jsonl(out, &id, &rows[r]);
  char *text = capture_end(&c);
  char *lines[16];
  const int n = split_lines(text, lines, 16);
  cr_assert_eq(n, N_ROWS, "%s", text);
  for (int r = 0; r < N_ROWS; r++) {
    cJSON *obj = cJSON_Parse(lines[r]);
    cr_assert_not_null(obj, "line %d: %s", r, lines[r]);
    cr_expect_eq(cJSON_GetArraySize(obj), N_COLUMNS + 6, "line %d: %s", r, lines[r]);
    cr_expect_str_eq(cJSON_GetObjectItemCaseSensitive(obj, "git_commit")->valuestring, "abc123");
    cr_expect_str_eq(cJSON_GetObjectItemCaseSensitive(obj, "device_names")->valuestring, "cpu0,cpu1");
    cr_expect_str_eq(cJSON_GetObjectItemCaseSensitive(obj, "model")->valuestring, "tiny-llama");
    cr_expect_eq(cJSON_GetObjectItemCaseSensitive(obj, "world_size")->valueint, 2);
    cr_expect_str_eq(cJSON_GetObjectItemCaseSensitive(obj, "method")->valuestring, rows[r].method);
    cr_expect(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(obj, "ttft_mean_round_std_ms")), "one round: null");
    cJSON_Delete(obj);
  }
  free(text);

  /* The table printer's JSONL: the same rows, one per line, without the identity. */
  text = render_rows(UP_FORMAT_JSONL, rows);
  cr_assert_eq(split_lines(text, lines, 16), N_ROWS);
  cJSON *first = cJSON_Parse(lines[0]);
  cr_assert_not_null(first, "%s", lines[0]);
  cr_expect_eq(cJSON_GetArraySize(first), N_COLUMNS);
  cJSON_Delete(first);
  free(text);
}

/* Kernel rows: a GEMM with a target it missed, an attention case with a target met and
 * a goal missed, a CPU-like case with no peaks and no target. */
static void make_kernel_rows(up_kernel_record *rows) {
  const up_kernel_record cases[3] = {
      {.label = "gemm qkv", .shape = "32768x6144x4096", .median_ms = 2.019, .min_ms = 2.0, .tflops_per_s = 816.7,
       .gb_per_s = 357.1, .floor_ms = 1.667, .floor_fraction = 0.826, .target = ">= 742.9 TFLOP/s",
       .target_met = UP_VERDICT_MET, .goal_met = UP_VERDICT_NONE, .kept_fraction = NAN, .error = 0.0031,
       .error_limit = 0.02},
      {.label = "attention 1x32K", .shape = "1x32768 h32/8 d128", .median_ms = 34.73, .min_ms = 34.5,
       .tflops_per_s = 253.3, .gb_per_s = 19.3, .floor_ms = 8.89, .floor_fraction = 0.256,
       .target = ">= 350 TFLOP/s (goal 600)", .target_met = UP_VERDICT_MISSED, .goal_met = UP_VERDICT_MISSED,
       .kept_fraction = NAN, .error = 0.0024, .error_limit = 0.02},
      {.label = "selection 1x512", .shape = "1x512 h4/2 d64", .median_ms = 3.93, .min_ms = 2.88, .tflops_per_s = 0.0171,
       .gb_per_s = 0.1, .floor_ms = NAN, .floor_fraction = NAN, .target_met = UP_VERDICT_NONE,
       .goal_met = UP_VERDICT_NONE, .kept_fraction = 1.0, .error = 0.0, .error_limit = 0.25},
  };
  memcpy(rows, cases, sizeof cases);
}

static char *render_kernels(up_output_format format, const up_kernel_record *rows, int32_t n) {
  capture c;
  up_report_kernels_print(capture_begin(&c), format, rows, n);
  return capture_end(&c);
}

Test(report_table, kernel_rows_show_targets_and_verdicts) {
  up_kernel_record rows[3];
  make_kernel_rows(rows);
  char *text = render_kernels(UP_FORMAT_MARKDOWN, rows, 3);
  char *lines[8];
  const int n = split_lines(text, lines, 8);
  cr_assert_eq(n, 5, "%s", text);
  for (int i = 1; i < n; i++) cr_expect_eq(strlen(lines[i]), strlen(lines[0]), "line %d", i);
  cr_expect_not_null(strstr(lines[0], "| case "), "%s", lines[0]);
  cr_expect_not_null(strstr(lines[0], " target "), "%s", lines[0]);
  cr_expect_not_null(strstr(lines[0], " goal_met |  error |"), "the error last: %s", lines[0]);
  cr_expect_null(strstr(lines[0], "max_ms"), "machine-only column in markdown: %s", lines[0]);
  cr_expect_null(strstr(lines[0], "error_limit"), "machine-only column in markdown: %s", lines[0]);
  cr_expect_not_null(strstr(lines[2], "| 0.0031 |"), "%s", lines[2]);
  cr_expect_not_null(strstr(lines[2], "816.70"), "%s", lines[2]);
  cr_expect_not_null(strstr(lines[2], "| >= 742.9 TFLOP/s "), "%s", lines[2]);
  cr_expect_not_null(strstr(lines[2], "|    met |"), "%s", lines[2]);
  cr_expect_not_null(strstr(lines[3], "| missed |   missed |"), "%s", lines[3]);
  cr_expect_not_null(strstr(lines[4], "0.0171"), "%s", lines[4]);
  cr_expect_not_null(strstr(lines[4], "|      - |        - |"), "no target: %s", lines[4]);
  free(text);

  /* Without floors or targets (a CPU run) markdown drops those columns. */
  text = render_kernels(UP_FORMAT_MARKDOWN, rows + 2, 1);
  cr_expect_null(strstr(text, "target"), "%s", text);
  cr_expect_null(strstr(text, "floor"), "%s", text);
  cr_expect_not_null(strstr(text, "kept_frac"), "%s", text);
  free(text);

  text = render_kernels(UP_FORMAT_JSON, rows, 3);
  cJSON *root = cJSON_Parse(text);
  cr_assert_not_null(root, "%s", text);
  cr_assert_eq(cJSON_GetArraySize(root), 3);
  cr_expect(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(root, 0), "met")));
  cr_expect(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(root, 1), "goal_met")));
  cr_expect(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(root, 2), "met")));
  cr_expect(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(root, 2), "floor_ms")));
  cr_expect_str_eq(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(root, 2), "target")->valuestring, "");
  cJSON_Delete(root);
  free(text);

  text = render_kernels(UP_FORMAT_CSV, rows, 3);
  cr_expect_not_null(strstr(text, "case,shape,rank,median_ms,min_ms,max_ms,tflops,gb_s,floor_ms,of_floor,kept_frac,"
                                  "target,met,goal_met,error,error_limit\n"), "%s", text);
  cr_expect_not_null(strstr(text, "gemm qkv,32768x6144x4096,0,2.02,2.00,0.00,816.70,357.1,1.67,0.826,,>= 742.9 "
                                  "TFLOP/s,met,,0.0031,0.02\n"), "%s", text);
  free(text);
}
