/* report_table.h — the terminal tables, as markdown, CSV, JSON or JSON lines (cJSON): one
 * row per sweep point, or one per kernel case of --kernels. One printer serves both: a table is
 * a list of columns, each a typed field at an offset in the row struct. Only rank 0
 * calls it. */
#ifndef UP_REPORT_TABLE_H
#define UP_REPORT_TABLE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "launcher/cli.h"
#include "launcher/kernels/kernel_record.h"
#include "launcher/sweep/point_summary.h"

typedef enum up_column_kind {
  UP_COL_TEXT,     /* a char array; left-aligned in markdown; empty is missing */
  UP_COL_INTEGER,  /* int32_t */
  UP_COL_MS,       /* double: 2 decimals, or 3 significant digits below 1 */
  UP_COL_RATE,     /* double: 1 decimal */
  UP_COL_FRACTION, /* double: 3 decimals */
  UP_COL_SPEEDUP,  /* double: 2 decimals, "x" suffix in markdown */
  UP_COL_VERDICT,  /* int32_t: 1 "met", 0 "missed", anything else missing; a boolean in JSON */
  UP_COL_MIB,      /* double: a byte count shown in MiB, formatted as UP_COL_MS */
} up_column_kind;

/* Which formats show a column. */
typedef enum up_column_show {
  UP_SHOW_ALWAYS,
  UP_SHOW_MACHINE,  /* CSV and JSON only */
  UP_SHOW_WHEN_SET, /* CSV and JSON always; markdown when some row has a value (e.g. goodput once --slo is given) */
  UP_SHOW_WHEN_SPLIT, /* CSV and JSON always; markdown when some row's value is above 1 (tp once --tp > 1) */
  UP_SHOW_WITH_SPLIT, /* CSV and JSON always; markdown when the table shows a UP_SHOW_WHEN_SPLIT column
                       * (the measured collective time beside tp) */
} up_column_show;

typedef struct up_table_column {
  const char *name;
  up_column_kind kind;
  size_t offset; /* of the field in the row struct */
  up_column_show show;
} up_table_column;

/* What markdown adds to a column's cells from another field of the row (CSV and JSON
 * give that field a column of its own). */
typedef enum up_markup_kind {
  UP_MARKUP_SPREAD, /* a double: the cell reads "VALUE +- SPREAD" where it is finite */
  UP_MARKUP_FLAG,   /* an int32_t: where non-zero, a value gets a trailing "*" (see flag_note) */
} up_markup_kind;

typedef struct up_column_markup {
  const char *column; /* the column's name */
  up_markup_kind kind;
  size_t offset;      /* of the field in the row struct */
} up_column_markup;

typedef struct up_table_spec {
  const up_table_column *columns;
  int32_t n_columns;
  size_t row_size; /* sizeof the row struct */
  const up_column_markup *markups; /* markdown only; may be NULL */
  int32_t n_markups;
  const char *flag_note; /* markdown: printed under the table after "* " when some cell is flagged */
} up_table_spec;

/* Who produced a row: the run's identity, which every JSONL line carries. */
typedef struct up_report_identity {
  const char *tool_version;
  const char *git_commit;
  const char *backend;
  const char *device_names; /* comma-separated, one per rank */
  const char *model;
  int32_t world_size;
} up_report_identity;

/* Print n_rows rows (row_size bytes apart) in one format; markdown and CSV start with a
 * header row; JSONL is one compact JSON object per row and line. */
void up_report_rows_print(FILE *out, up_output_format format, const up_table_spec *spec, const void *rows,
                          int32_t n_rows);

/* The sweep's table: one row per point. */
void up_report_table_print(FILE *out, up_output_format format, const up_point_summary *rows, int32_t n_rows);

/* One sweep point as one line of JSON: the identity's fields, then every field the json
 * format gives the row. Flushed, so a reader sees each point as it finishes. */
void up_report_point_jsonl(FILE *out, const up_report_identity *identity, const up_point_summary *row);

/* The --kernels table: one row per kernel case. */
void up_report_kernels_print(FILE *out, up_output_format format, const up_kernel_record *rows, int32_t n_rows);

#endif
