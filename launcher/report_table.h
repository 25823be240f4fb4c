/* report_table.h — the terminal results table, one row per sweep point, as markdown,
 * CSV or JSON (cJSON). Only rank 0 calls it. */
#ifndef UP_REPORT_TABLE_H
#define UP_REPORT_TABLE_H

#include <stdio.h>

#include "launcher/cli.h"
#include "launcher/point_summary.h"

/* Print all rows in one format; markdown and CSV start with a header row. */
void up_report_table_print(FILE *out, up_output_format format, const up_point_summary *rows, int32_t n_rows);

#endif
