/* report_table.h — the terminal tables, as markdown, CSV or JSON (cJSON): one row per
 * sweep point, or one per kernel case of --kernels. One printer serves both: a table is
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
} up_column_show;

typedef struct up_table_column {
  const char *name;
  up_column_kind kind;
  size_t offset; /* of the field in the row struct */
  up_column_show show;
} up_table_column;

typedef struct up_table_spec {
  const up_table_column *columns;
  int32_t n_columns;
  size_t row_size; /* sizeof the row struct */
} up_table_spec;

/* Print n_rows rows (row_size bytes apart) in one format; markdown and CSV start with a header row. */
void up_report_rows_print(FILE *out, up_output_format format, const up_table_spec *spec, const void *rows,
                          int32_t n_rows);

/* The sweep's table: one row per point. */
void up_report_table_print(FILE *out, up_output_format format, const up_point_summary *rows, int32_t n_rows);

/* The --kernels table: one row per kernel case. */
void up_report_kernels_print(FILE *out, up_output_format format, const up_kernel_record *rows, int32_t n_rows);

#endif
