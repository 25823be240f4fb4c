/* report_table.c — the terminal tables, one printer for every row type: markdown (for
 * people: aligned, "-" for a missing value, a spread as "+- S", a flag as "*"), CSV (for
 * spreadsheets: empty field) and JSON (for scripts: full-precision numbers, null), as
 * one array or as one line per row (JSONL, which the sweep streams point by point).
 * The sweep's markdown keeps to the prefill and KV-footprint columns so it stays
 * readable on one screen, plus goodput when --slo set it; CSV and JSON also carry the
 * decode-side latencies and throughputs and the spreads over rounds. The --kernels
 * table shows floors and targets in markdown only where some case has them. Reads
 * rows; computes nothing. */
#include "launcher/output/report_table.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"

#define UP_CELL_MAX 80
#define UP_MAX_COLUMNS 48

#define UP_COLUMN(name, kind, field, show) {name, kind, offsetof(up_point_summary, field), show}

static const up_table_column up_point_columns[] = {
    UP_COLUMN("method", UP_COL_TEXT, method, UP_SHOW_ALWAYS),
    UP_COLUMN("ctx", UP_COL_INTEGER, ctx, UP_SHOW_ALWAYS),
    UP_COLUMN("conc", UP_COL_INTEGER, concurrency, UP_SHOW_ALWAYS),
    UP_COLUMN("requests", UP_COL_INTEGER, n_requests, UP_SHOW_ALWAYS),
    UP_COLUMN("failed", UP_COL_INTEGER, n_failed, UP_SHOW_ALWAYS),
    UP_COLUMN("ttft_mean_ms", UP_COL_MS, ttft_mean_ms, UP_SHOW_ALWAYS),
    UP_COLUMN("ttft_p50_ms", UP_COL_MS, ttft_p50_ms, UP_SHOW_ALWAYS),
    UP_COLUMN("ttft_p99_ms", UP_COL_MS, ttft_p99_ms, UP_SHOW_ALWAYS),
    UP_COLUMN("prefill_tok_s", UP_COL_RATE, prefill_tokens_per_s, UP_SHOW_ALWAYS),
    /* CPU runs sit far below 1 TFLOP/s: the small-value format keeps their digits. */
    UP_COLUMN("model_tflops", UP_COL_MS, model_tflops_per_s, UP_SHOW_ALWAYS),
    UP_COLUMN("kept_frac", UP_COL_FRACTION, kept_fraction, UP_SHOW_ALWAYS),
    UP_COLUMN("speedup_vs_dense", UP_COL_SPEEDUP, speedup_vs_dense, UP_SHOW_ALWAYS),
    UP_COLUMN("predicted_speedup", UP_COL_SPEEDUP, predicted_speedup, UP_SHOW_ALWAYS),
    UP_COLUMN("kv_mib_req", UP_COL_MIB, kv_bytes_per_request, UP_SHOW_ALWAYS),
    UP_COLUMN("kv_vs_dense", UP_COL_FRACTION, kv_fraction_of_dense, UP_SHOW_ALWAYS),
    UP_COLUMN("max_resident", UP_COL_INTEGER, max_resident, UP_SHOW_ALWAYS),
    UP_COLUMN("tpot_p99_ms", UP_COL_MS, tpot_p99_ms, UP_SHOW_MACHINE),
    UP_COLUMN("itl_p99_ms", UP_COL_MS, itl_p99_ms, UP_SHOW_MACHINE),
    UP_COLUMN("e2e_p99_ms", UP_COL_MS, e2e_p99_ms, UP_SHOW_MACHINE),
    UP_COLUMN("req_s", UP_COL_RATE, requests_per_s, UP_SHOW_MACHINE),
    UP_COLUMN("output_tok_s", UP_COL_RATE, output_tokens_per_s, UP_SHOW_MACHINE),
    /* Goodput exists only with --slo. */
    UP_COLUMN("goodput_req_s", UP_COL_RATE, goodput_requests_per_s, UP_SHOW_WHEN_SET),
    /* Repetitions: after every earlier column, so those keep their places. Markdown
     * shows the spreads inside the mean cells and the flag as "*" (up_point_markups). */
    UP_COLUMN("repetitions", UP_COL_INTEGER, repetitions, UP_SHOW_MACHINE),
    UP_COLUMN("percentiles_few_requests", UP_COL_INTEGER, percentiles_few_requests, UP_SHOW_MACHINE),
    UP_COLUMN("ttft_mean_round_std_ms", UP_COL_MS, ttft_mean_round_std_ms, UP_SHOW_MACHINE),
    UP_COLUMN("prefill_tok_s_round_std", UP_COL_RATE, prefill_tokens_per_s_round_std, UP_SHOW_MACHINE),
    UP_COLUMN("model_tflops_round_std", UP_COL_MS, model_tflops_per_s_round_std, UP_SHOW_MACHINE),
    UP_COLUMN("req_s_round_std", UP_COL_RATE, requests_per_s_round_std, UP_SHOW_MACHINE),
    UP_COLUMN("output_tok_s_round_std", UP_COL_RATE, output_tokens_per_s_round_std, UP_SHOW_MACHINE),
    UP_COLUMN("goodput_req_s_round_std", UP_COL_RATE, goodput_requests_per_s_round_std, UP_SHOW_MACHINE),
    /* Which prefill each point ran, only when --prefill-chunk asked for chunks (a method
     * that drops tokens keeps whole-prompt prefill). */
    UP_COLUMN("prefill", UP_COL_TEXT, prefill, UP_SHOW_WHEN_SET),
    /* Tensor parallelism: in markdown once some point ran split (--tp > 1), and the
     * scaling against TP = 1 where the --tp list held 1 beside larger values. */
    UP_COLUMN("tp", UP_COL_INTEGER, tp, UP_SHOW_WHEN_SPLIT),
    UP_COLUMN("dp", UP_COL_INTEGER, dp, UP_SHOW_MACHINE),
    UP_COLUMN("tp_speedup", UP_COL_SPEEDUP, tp_speedup, UP_SHOW_WHEN_SET),
    UP_COLUMN("tp_eff", UP_COL_FRACTION, tp_efficiency, UP_SHOW_WHEN_SET),
    UP_COLUMN("tp_eff_model", UP_COL_FRACTION, tp_efficiency_model, UP_SHOW_WHEN_SET),
    UP_COLUMN("tp_comm_model_ms", UP_COL_MS, tp_comm_model_ms, UP_SHOW_MACHINE),
    /* The measured collective time (tp_comm.h), after every earlier column; in markdown
     * beside the TP columns above once some point ran split. */
    UP_COLUMN("tp_comm_ms", UP_COL_MS, tp_comm_ms, UP_SHOW_WITH_SPLIT),
    UP_COLUMN("tp_comm_share", UP_COL_FRACTION, tp_comm_share, UP_SHOW_WITH_SPLIT),
    /* The attention kernels' rate inside the model (issue 17: against --kernels alone). */
    UP_COLUMN("attn_tflops", UP_COL_MS, attention_tflops, UP_SHOW_WHEN_SET),
};

#undef UP_COLUMN

#define UP_MARKUP(column, kind, field) {column, kind, offsetof(up_point_summary, field)}

/* Means over rounds read "mean +- stddev" as llama-bench prints its repetitions. */
static const up_column_markup up_point_markups[] = {
    UP_MARKUP("ttft_mean_ms", UP_MARKUP_SPREAD, ttft_mean_round_std_ms),
    UP_MARKUP("ttft_p50_ms", UP_MARKUP_FLAG, percentiles_few_requests),
    UP_MARKUP("ttft_p99_ms", UP_MARKUP_FLAG, percentiles_few_requests),
    UP_MARKUP("prefill_tok_s", UP_MARKUP_SPREAD, prefill_tokens_per_s_round_std),
    UP_MARKUP("model_tflops", UP_MARKUP_SPREAD, model_tflops_per_s_round_std),
    UP_MARKUP("goodput_req_s", UP_MARKUP_SPREAD, goodput_requests_per_s_round_std),
};

#undef UP_MARKUP

#define UP_FEW_REQUESTS_NOTE_(n) "percentile over fewer than " #n " successful requests (raise --requests or --repetitions)"
#define UP_FEW_REQUESTS_NOTE(n) UP_FEW_REQUESTS_NOTE_(n)

static const up_table_spec up_point_table = {
    .columns = up_point_columns,
    .n_columns = sizeof up_point_columns / sizeof up_point_columns[0],
    .row_size = sizeof(up_point_summary),
    .markups = up_point_markups,
    .n_markups = sizeof up_point_markups / sizeof up_point_markups[0],
    .flag_note = UP_FEW_REQUESTS_NOTE(UP_PERCENTILE_MIN_REQUESTS),
};

#define UP_KERNEL_COLUMN(name, kind, field, show) {name, kind, offsetof(up_kernel_record, field), show}

/* Floors need known device peaks and targets exist only for the shapes on a
 * GPU: markdown shows those columns only when some case has them. */
static const up_table_column up_kernel_columns[] = {
    UP_KERNEL_COLUMN("case", UP_COL_TEXT, label, UP_SHOW_ALWAYS),
    UP_KERNEL_COLUMN("shape", UP_COL_TEXT, shape, UP_SHOW_ALWAYS),
    UP_KERNEL_COLUMN("rank", UP_COL_INTEGER, rank, UP_SHOW_MACHINE),
    UP_KERNEL_COLUMN("median_ms", UP_COL_MS, median_ms, UP_SHOW_ALWAYS),
    UP_KERNEL_COLUMN("min_ms", UP_COL_MS, min_ms, UP_SHOW_ALWAYS),
    UP_KERNEL_COLUMN("max_ms", UP_COL_MS, max_ms, UP_SHOW_MACHINE),
    UP_KERNEL_COLUMN("tflops", UP_COL_MS, tflops_per_s, UP_SHOW_ALWAYS),
    UP_KERNEL_COLUMN("gb_s", UP_COL_RATE, gb_per_s, UP_SHOW_ALWAYS),
    UP_KERNEL_COLUMN("floor_ms", UP_COL_MS, floor_ms, UP_SHOW_WHEN_SET),
    UP_KERNEL_COLUMN("of_floor", UP_COL_FRACTION, floor_fraction, UP_SHOW_WHEN_SET),
    UP_KERNEL_COLUMN("kept_frac", UP_COL_FRACTION, kept_fraction, UP_SHOW_WHEN_SET),
    UP_KERNEL_COLUMN("target", UP_COL_TEXT, target, UP_SHOW_WHEN_SET),
    UP_KERNEL_COLUMN("met", UP_COL_VERDICT, target_met, UP_SHOW_WHEN_SET),
    UP_KERNEL_COLUMN("goal_met", UP_COL_VERDICT, goal_met, UP_SHOW_WHEN_SET),
    /* Last, so the columns before keep their places for readers that count them. */
    UP_KERNEL_COLUMN("error", UP_COL_MS, error, UP_SHOW_ALWAYS),
    UP_KERNEL_COLUMN("error_limit", UP_COL_MS, error_limit, UP_SHOW_MACHINE),
};

#undef UP_KERNEL_COLUMN

static const up_table_spec up_kernel_table = {.columns = up_kernel_columns,
                                              .n_columns = sizeof up_kernel_columns / sizeof up_kernel_columns[0],
                                              .row_size = sizeof(up_kernel_record)};

/* A row of the table by index. */
static const void *up_row_at(const up_table_spec *spec, const void *rows, int32_t r) {
  return (const char *)rows + (size_t)r * spec->row_size;
}

/* The value of a numeric column of a row as a double; a verdict other than met (1) or
 * missed (0) is missing (NaN). */
static double up_column_value(const up_table_column *col, const void *row) {
  const char *field = (const char *)row + col->offset;
  if (col->kind == UP_COL_INTEGER || col->kind == UP_COL_VERDICT) {
    int32_t v;
    memcpy(&v, field, sizeof(v));
    if (col->kind == UP_COL_VERDICT && v != 0 && v != 1) return NAN;
    return v;
  }
  double v;
  memcpy(&v, field, sizeof(v));
  return col->kind == UP_COL_MIB ? v / 1048576.0 : v;
}

/* A text column's string (a char array in the row). */
static const char *up_column_text(const up_table_column *col, const void *row) {
  return (const char *)row + col->offset;
}

/* One cell as text; a missing value (a non-finite number, an empty text) becomes `missing`. */
static void up_format_cell(char *cell, const up_table_column *col, const void *row, bool markdown,
                           const char *missing) {
  if (col->kind == UP_COL_TEXT) {
    const char *text = up_column_text(col, row);
    snprintf(cell, UP_CELL_MAX, "%s", text[0] ? text : missing);
    return;
  }
  const double v = up_column_value(col, row);
  if (!isfinite(v)) {
    snprintf(cell, UP_CELL_MAX, "%s", missing);
    return;
  }
  switch (col->kind) {
    case UP_COL_INTEGER: snprintf(cell, UP_CELL_MAX, "%.0f", v); break;
    case UP_COL_MS:
    case UP_COL_MIB:
      if (v != 0.0 && fabs(v) < 1.0) snprintf(cell, UP_CELL_MAX, "%.3g", v);
      else snprintf(cell, UP_CELL_MAX, "%.2f", v);
      break;
    case UP_COL_RATE: snprintf(cell, UP_CELL_MAX, "%.1f", v); break;
    case UP_COL_FRACTION: snprintf(cell, UP_CELL_MAX, "%.3f", v); break;
    case UP_COL_SPEEDUP: snprintf(cell, UP_CELL_MAX, markdown ? "%.2fx" : "%.2f", v); break;
    case UP_COL_VERDICT: snprintf(cell, UP_CELL_MAX, "%s", v == 1.0 ? "met" : "missed"); break;
    case UP_COL_TEXT: break;
  }
}

/* The markdown cell of a column: its value, then what the table's markups add from the
 * row (" +- SPREAD", a trailing "*"). *flagged is set when a "*" was added. */
static void up_format_markdown_cell(char *cell, const up_table_spec *spec, const up_table_column *col,
                                    const void *row, bool *flagged) {
  up_format_cell(cell, col, row, true, "-");
  if (col->kind == UP_COL_TEXT || !isfinite(up_column_value(col, row))) return;
  for (int32_t m = 0; m < spec->n_markups; m++) {
    const up_column_markup *mk = &spec->markups[m];
    if (strcmp(mk->column, col->name) != 0) continue;
    const char *field = (const char *)row + mk->offset;
    const size_t used = strlen(cell);
    if (mk->kind == UP_MARKUP_SPREAD) {
      double spread;
      memcpy(&spread, field, sizeof spread);
      if (!isfinite(spread)) continue;
      /* The spread in the value's own format and unit, through a copy of the column. */
      const up_table_column as_value = {col->name, col->kind, 0, col->show};
      char text[UP_CELL_MAX];
      up_format_cell(text, &as_value, &spread, true, "-");
      snprintf(cell + used, UP_CELL_MAX - used, " +- %s", text);
    } else {
      int32_t flag;
      memcpy(&flag, field, sizeof flag);
      if (flag == 0) continue;
      snprintf(cell + used, UP_CELL_MAX - used, "*");
      *flagged = true;
    }
  }
}

/* Whether some row has a value in the column. */
static bool up_column_has_value(const up_table_spec *spec, int32_t c, const void *rows, int32_t n_rows) {
  const up_table_column *col = &spec->columns[c];
  for (int32_t r = 0; r < n_rows; r++) {
    const void *row = up_row_at(spec, rows, r);
    if (col->kind == UP_COL_TEXT ? up_column_text(col, row)[0] != '\0' : isfinite(up_column_value(col, row)))
      return true;
  }
  return false;
}

/* Whether some row's value in the column is above 1. */
static bool up_column_above_one(const up_table_spec *spec, int32_t c, const void *rows, int32_t n_rows) {
  for (int32_t r = 0; r < n_rows; r++)
    if (up_column_value(&spec->columns[c], up_row_at(spec, rows, r)) > 1.0) return true;
  return false;
}

/* Indices of the columns a format shows, in table order; returns their count. */
static int32_t up_visible_columns(up_output_format format, const up_table_spec *spec, const void *rows,
                                  int32_t n_rows, int32_t *cols) {
  UP_ASSERT(spec->n_columns <= UP_MAX_COLUMNS, "a table of %d columns", (int)spec->n_columns);
  const bool markdown = format == UP_FORMAT_MARKDOWN;
  bool split = false;
  for (int32_t c = 0; c < spec->n_columns && !split; c++)
    split = spec->columns[c].show == UP_SHOW_WHEN_SPLIT && up_column_above_one(spec, c, rows, n_rows);
  int32_t n = 0;
  for (int32_t c = 0; c < spec->n_columns; c++) {
    const up_column_show show = spec->columns[c].show;
    if (!markdown || show == UP_SHOW_ALWAYS ||
        (show == UP_SHOW_WHEN_SET && up_column_has_value(spec, c, rows, n_rows)) ||
        (show == UP_SHOW_WHEN_SPLIT && up_column_above_one(spec, c, rows, n_rows)) ||
        (show == UP_SHOW_WITH_SPLIT && split))
      cols[n++] = c;
  }
  return n;
}

static void up_print_markdown(FILE *out, const up_table_spec *spec, const void *rows, int32_t n_rows) {
  int32_t cols[UP_MAX_COLUMNS];
  const int32_t n_cols = up_visible_columns(UP_FORMAT_MARKDOWN, spec, rows, n_rows, cols);
  char(*cells)[UP_MAX_COLUMNS][UP_CELL_MAX] =
      up_malloc_or_die(sizeof(*cells) * (size_t)(n_rows > 0 ? n_rows : 1), "markdown table cells");
  int widths[UP_MAX_COLUMNS];
  for (int32_t i = 0; i < n_cols; i++) {
    widths[i] = (int)strlen(spec->columns[cols[i]].name);
    if (widths[i] < 3) widths[i] = 3; /* the separator needs "---" or "--:" */
  }
  bool flagged = false;
  for (int32_t r = 0; r < n_rows; r++)
    for (int32_t i = 0; i < n_cols; i++) {
      up_format_markdown_cell(cells[r][i], spec, &spec->columns[cols[i]], up_row_at(spec, rows, r), &flagged);
      const int len = (int)strlen(cells[r][i]);
      if (len > widths[i]) widths[i] = len;
    }
  for (int32_t i = 0; i < n_cols; i++) {
    const up_table_column *col = &spec->columns[cols[i]];
    fprintf(out, "| %*s ", col->kind == UP_COL_TEXT ? -widths[i] : widths[i], col->name);
  }
  fprintf(out, "|\n");
  for (int32_t i = 0; i < n_cols; i++) {
    const bool right = spec->columns[cols[i]].kind != UP_COL_TEXT;
    fputs("| ", out);
    for (int k = 0; k < widths[i] - (right ? 1 : 0); k++) fputc('-', out);
    fputs(right ? ": " : " ", out);
  }
  fprintf(out, "|\n");
  for (int32_t r = 0; r < n_rows; r++) {
    for (int32_t i = 0; i < n_cols; i++)
      fprintf(out, "| %*s ", spec->columns[cols[i]].kind == UP_COL_TEXT ? -widths[i] : widths[i], cells[r][i]);
    fprintf(out, "|\n");
  }
  if (flagged && spec->flag_note) fprintf(out, "\n* %s\n", spec->flag_note);
  free(cells);
}

/* RFC 4180: quote a field only when it holds a comma, quote or line break. */
static void up_print_csv_field(FILE *out, const char *field) {
  if (strpbrk(field, ",\"\r\n") == NULL) {
    fputs(field, out);
    return;
  }
  fputc('"', out);
  for (const char *p = field; *p; p++) {
    if (*p == '"') fputc('"', out);
    fputc(*p, out);
  }
  fputc('"', out);
}

static void up_print_csv(FILE *out, const up_table_spec *spec, const void *rows, int32_t n_rows) {
  int32_t cols[UP_MAX_COLUMNS];
  const int32_t n_cols = up_visible_columns(UP_FORMAT_CSV, spec, rows, n_rows, cols);
  for (int32_t i = 0; i < n_cols; i++) fprintf(out, "%s%s", i ? "," : "", spec->columns[cols[i]].name);
  fputc('\n', out);
  char cell[UP_CELL_MAX];
  for (int32_t r = 0; r < n_rows; r++) {
    for (int32_t i = 0; i < n_cols; i++) {
      if (i) fputc(',', out);
      up_format_cell(cell, &spec->columns[cols[i]], up_row_at(spec, rows, r), false, "");
      up_print_csv_field(out, cell);
    }
    fputc('\n', out);
  }
}

static void up_check_json(const void *item, const char *what) {
  if (item == NULL) UP_FATAL("cJSON could not allocate %s", what);
}

/* Add the row's visible columns to obj, one member each. */
static void up_add_json_row(cJSON *obj, const up_table_spec *spec, const int32_t *cols, int32_t n_cols,
                            const void *row) {
  for (int32_t i = 0; i < n_cols; i++) {
    const up_table_column *col = &spec->columns[cols[i]];
    if (col->kind == UP_COL_TEXT) {
      up_check_json(cJSON_AddStringToObject(obj, col->name, up_column_text(col, row)), "a text cell");
      continue;
    }
    const double v = up_column_value(col, row);
    /* JSON has no NaN or infinity; a verdict is a boolean. */
    const cJSON *item = !isfinite(v) ? cJSON_AddNullToObject(obj, col->name)
                        : col->kind == UP_COL_VERDICT ? cJSON_AddBoolToObject(obj, col->name, v == 1.0)
                                                      : cJSON_AddNumberToObject(obj, col->name, v);
    up_check_json(item, "a results value");
  }
}

/* One object per line, written compact; the object is freed. */
static void up_print_json_line(FILE *out, cJSON *obj) {
  char *text = cJSON_PrintUnformatted(obj);
  up_check_json(text, "a JSON line");
  fprintf(out, "%s\n", text);
  cJSON_free(text);
  cJSON_Delete(obj);
}

static void up_print_jsonl(FILE *out, const up_table_spec *spec, const void *rows, int32_t n_rows) {
  int32_t cols[UP_MAX_COLUMNS];
  const int32_t n_cols = up_visible_columns(UP_FORMAT_JSON, spec, rows, n_rows, cols);
  for (int32_t r = 0; r < n_rows; r++) {
    cJSON *obj = cJSON_CreateObject();
    up_check_json(obj, "a results row");
    up_add_json_row(obj, spec, cols, n_cols, up_row_at(spec, rows, r));
    up_print_json_line(out, obj);
  }
}

static void up_print_json(FILE *out, const up_table_spec *spec, const void *rows, int32_t n_rows) {
  int32_t cols[UP_MAX_COLUMNS];
  const int32_t n_cols = up_visible_columns(UP_FORMAT_JSON, spec, rows, n_rows, cols);
  cJSON *array = cJSON_CreateArray();
  up_check_json(array, "the results array");
  for (int32_t r = 0; r < n_rows; r++) {
    cJSON *obj = cJSON_CreateObject();
    up_check_json(obj, "a results row");
    cJSON_AddItemToArray(array, obj);
    up_add_json_row(obj, spec, cols, n_cols, up_row_at(spec, rows, r));
  }
  char *text = cJSON_Print(array);
  up_check_json(text, "the JSON text");
  fprintf(out, "%s\n", text);
  cJSON_free(text);
  cJSON_Delete(array);
}

void up_report_rows_print(FILE *out, up_output_format format, const up_table_spec *spec, const void *rows,
                          int32_t n_rows) {
  switch (format) {
    case UP_FORMAT_MARKDOWN: up_print_markdown(out, spec, rows, n_rows); return;
    case UP_FORMAT_CSV: up_print_csv(out, spec, rows, n_rows); return;
    case UP_FORMAT_JSON: up_print_json(out, spec, rows, n_rows); return;
    case UP_FORMAT_JSONL: up_print_jsonl(out, spec, rows, n_rows); return;
  }
  UP_FATAL("unknown output format %d", (int)format);
}

void up_report_table_print(FILE *out, up_output_format format, const up_point_summary *rows, int32_t n_rows) {
  up_report_rows_print(out, format, &up_point_table, rows, n_rows);
}

void up_report_point_jsonl(FILE *out, const up_report_identity *identity, const up_point_summary *row) {
  int32_t cols[UP_MAX_COLUMNS];
  const int32_t n_cols = up_visible_columns(UP_FORMAT_JSON, &up_point_table, row, 1, cols);
  cJSON *obj = cJSON_CreateObject();
  up_check_json(obj, "a results line");
  const char *const texts[][2] = {{"tool_version", identity->tool_version}, {"git_commit", identity->git_commit},
                                  {"backend", identity->backend},           {"device_names", identity->device_names},
                                  {"model", identity->model}};
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
    up_check_json(cJSON_AddStringToObject(obj, texts[i][0], texts[i][1] ? texts[i][1] : ""), "an identity field");
  up_check_json(cJSON_AddNumberToObject(obj, "world_size", identity->world_size), "an identity field");
  up_add_json_row(obj, &up_point_table, cols, n_cols, row);
  up_print_json_line(out, obj);
  fflush(out);
}

void up_report_kernels_print(FILE *out, up_output_format format, const up_kernel_record *rows, int32_t n_rows) {
  up_report_rows_print(out, format, &up_kernel_table, rows, n_rows);
}
