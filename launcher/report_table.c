/* report_table.c — the terminal results table: markdown (for people: aligned, "-" for
 * a missing value), CSV (for spreadsheets: empty field) and JSON (for scripts:
 * full-precision numbers, null). Markdown keeps to the prefill and KV-footprint columns
 * so it stays readable on one screen, plus goodput when --slo set it; CSV and JSON also carry the
 * decode-side latencies and throughputs. Reads summaries; computes nothing. */
#include "launcher/report_table.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/fatal.h"

#define UP_CELL_MAX 80

typedef enum up_column_kind {
  UP_COL_TEXT,     /* left-aligned in markdown */
  UP_COL_INTEGER,
  UP_COL_MS,       /* 2 decimals, or 3 significant digits below 1 */
  UP_COL_RATE,     /* 1 decimal */
  UP_COL_FRACTION, /* 3 decimals */
  UP_COL_SPEEDUP,  /* 2 decimals, "x" suffix in markdown */
  UP_COL_MIB,      /* a byte count shown in MiB, formatted as UP_COL_MS */
} up_column_kind;

/* Which formats show a column. */
typedef enum up_column_show {
  UP_SHOW_ALWAYS,
  UP_SHOW_MACHINE,  /* CSV and JSON only */
  UP_SHOW_WITH_SLO, /* CSV and JSON always; markdown when some row has a goodput (--slo given) */
} up_column_show;

typedef struct up_column {
  const char *name;
  up_column_kind kind;
  size_t offset; /* of the field in up_point_summary: int32_t for integers, double otherwise */
  up_column_show show;
} up_column;

#define UP_COLUMN(name, kind, field, show) {name, kind, offsetof(up_point_summary, field), show}

static const up_column up_columns[] = {
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
    UP_COLUMN("goodput_req_s", UP_COL_RATE, goodput_requests_per_s, UP_SHOW_WITH_SLO),
};

#define UP_N_COLUMNS ((int32_t)(sizeof(up_columns) / sizeof(up_columns[0])))

/* The value of a numeric column of a row as a double. */
static double up_column_value(const up_point_summary *row, int32_t col) {
  const char *field = (const char *)row + up_columns[col].offset;
  if (up_columns[col].kind == UP_COL_INTEGER) {
    int32_t v;
    memcpy(&v, field, sizeof(v));
    return v;
  }
  double v;
  memcpy(&v, field, sizeof(v));
  return up_columns[col].kind == UP_COL_MIB ? v / 1048576.0 : v;
}

/* One cell as text; a missing (non-finite) number becomes `missing`. */
static void up_format_cell(char *cell, const up_point_summary *row, int32_t col, bool markdown,
                           const char *missing) {
  const up_column_kind kind = up_columns[col].kind;
  if (kind == UP_COL_TEXT) {
    snprintf(cell, UP_CELL_MAX, "%s", row->method);
    return;
  }
  const double v = up_column_value(row, col);
  if (!isfinite(v)) {
    snprintf(cell, UP_CELL_MAX, "%s", missing);
    return;
  }
  switch (kind) {
    case UP_COL_INTEGER: snprintf(cell, UP_CELL_MAX, "%.0f", v); break;
    case UP_COL_MS:
    case UP_COL_MIB:
      if (v != 0.0 && fabs(v) < 1.0) snprintf(cell, UP_CELL_MAX, "%.3g", v);
      else snprintf(cell, UP_CELL_MAX, "%.2f", v);
      break;
    case UP_COL_RATE: snprintf(cell, UP_CELL_MAX, "%.1f", v); break;
    case UP_COL_FRACTION: snprintf(cell, UP_CELL_MAX, "%.3f", v); break;
    case UP_COL_SPEEDUP: snprintf(cell, UP_CELL_MAX, markdown ? "%.2fx" : "%.2f", v); break;
    case UP_COL_TEXT: break;
  }
}

/* Indices of the columns a format shows, in table order; returns their count. */
static int32_t up_visible_columns(up_output_format format, const up_point_summary *rows, int32_t n_rows,
                                  int32_t *cols) {
  bool any_goodput = false;
  for (int32_t r = 0; r < n_rows; r++) any_goodput = any_goodput || isfinite(rows[r].goodput_requests_per_s);
  const bool markdown = format == UP_FORMAT_MARKDOWN;
  int32_t n = 0;
  for (int32_t c = 0; c < UP_N_COLUMNS; c++) {
    const up_column_show show = up_columns[c].show;
    if (!markdown || show == UP_SHOW_ALWAYS || (show == UP_SHOW_WITH_SLO && any_goodput)) cols[n++] = c;
  }
  return n;
}

static void up_print_markdown(FILE *out, const up_point_summary *rows, int32_t n_rows) {
  int32_t cols[UP_N_COLUMNS];
  const int32_t n_cols = up_visible_columns(UP_FORMAT_MARKDOWN, rows, n_rows, cols);
  char(*cells)[UP_N_COLUMNS][UP_CELL_MAX] =
      up_malloc_or_die(sizeof(*cells) * (size_t)(n_rows > 0 ? n_rows : 1), "markdown table cells");
  int widths[UP_N_COLUMNS];
  for (int32_t i = 0; i < n_cols; i++) {
    widths[i] = (int)strlen(up_columns[cols[i]].name);
    if (widths[i] < 3) widths[i] = 3; /* the separator needs "---" or "--:" */
  }
  for (int32_t r = 0; r < n_rows; r++)
    for (int32_t i = 0; i < n_cols; i++) {
      up_format_cell(cells[r][i], &rows[r], cols[i], true, "-");
      const int len = (int)strlen(cells[r][i]);
      if (len > widths[i]) widths[i] = len;
    }
  for (int32_t i = 0; i < n_cols; i++) {
    const up_column *col = &up_columns[cols[i]];
    fprintf(out, "| %*s ", col->kind == UP_COL_TEXT ? -widths[i] : widths[i], col->name);
  }
  fprintf(out, "|\n");
  for (int32_t i = 0; i < n_cols; i++) {
    const bool right = up_columns[cols[i]].kind != UP_COL_TEXT;
    fputs("| ", out);
    for (int k = 0; k < widths[i] - (right ? 1 : 0); k++) fputc('-', out);
    fputs(right ? ": " : " ", out);
  }
  fprintf(out, "|\n");
  for (int32_t r = 0; r < n_rows; r++) {
    for (int32_t i = 0; i < n_cols; i++)
      fprintf(out, "| %*s ", up_columns[cols[i]].kind == UP_COL_TEXT ? -widths[i] : widths[i], cells[r][i]);
    fprintf(out, "|\n");
  }
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

static void up_print_csv(FILE *out, const up_point_summary *rows, int32_t n_rows) {
  int32_t cols[UP_N_COLUMNS];
  const int32_t n_cols = up_visible_columns(UP_FORMAT_CSV, rows, n_rows, cols);
  for (int32_t i = 0; i < n_cols; i++) fprintf(out, "%s%s", i ? "," : "", up_columns[cols[i]].name);
  fputc('\n', out);
  char cell[UP_CELL_MAX];
  for (int32_t r = 0; r < n_rows; r++) {
    for (int32_t i = 0; i < n_cols; i++) {
      if (i) fputc(',', out);
      up_format_cell(cell, &rows[r], cols[i], false, "");
      up_print_csv_field(out, cell);
    }
    fputc('\n', out);
  }
}

static void up_check_json(const void *item, const char *what) {
  if (item == NULL) UP_FATAL("cJSON could not allocate %s", what);
}

static void up_print_json(FILE *out, const up_point_summary *rows, int32_t n_rows) {
  int32_t cols[UP_N_COLUMNS];
  const int32_t n_cols = up_visible_columns(UP_FORMAT_JSON, rows, n_rows, cols);
  cJSON *array = cJSON_CreateArray();
  up_check_json(array, "the results array");
  for (int32_t r = 0; r < n_rows; r++) {
    cJSON *obj = cJSON_CreateObject();
    up_check_json(obj, "a results row");
    cJSON_AddItemToArray(array, obj);
    for (int32_t i = 0; i < n_cols; i++) {
      const int32_t c = cols[i];
      if (up_columns[c].kind == UP_COL_TEXT) {
        up_check_json(cJSON_AddStringToObject(obj, up_columns[c].name, rows[r].method), "a method name");
        continue;
      }
      const double v = up_column_value(&rows[r], c);
      /* JSON has no NaN or infinity. */
      const cJSON *item = isfinite(v) ? cJSON_AddNumberToObject(obj, up_columns[c].name, v)
                                      : cJSON_AddNullToObject(obj, up_columns[c].name);
      up_check_json(item, "a results value");
    }
  }
  char *text = cJSON_Print(array);
  up_check_json(text, "the JSON text");
  fprintf(out, "%s\n", text);
  cJSON_free(text);
  cJSON_Delete(array);
}

void up_report_table_print(FILE *out, up_output_format format, const up_point_summary *rows, int32_t n_rows) {
  switch (format) {
    case UP_FORMAT_MARKDOWN: up_print_markdown(out, rows, n_rows); return;
    case UP_FORMAT_CSV: up_print_csv(out, rows, n_rows); return;
    case UP_FORMAT_JSON: up_print_json(out, rows, n_rows); return;
  }
  UP_FATAL("unknown output format %d", (int)format);
}
