/* head_table.h — per-(layer, head) value tables of the sparse baselines' `table=`
 * options (MInference's vertical/slash sizes, XAttention's thresholds), read from a text
 * file and checked against the model's layers and heads. Owns the file format only;
 * what the values may be is the method's check.
 * File format: '#' starts a comment; every other non-blank line is
 *     LAYER HEAD VALUE...
 * two non-negative integers and the method's n_values numbers, one line for every
 * (layer, head) of the model exactly once (scripts/minference_table.py writes
 * MInference's from the authors' best_pattern JSON). */
#ifndef UP_HEAD_TABLE_H
#define UP_HEAD_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The method's rule for one line's values: false with the reason (e.g. "sizes v=0 s=5
 * must be in [1, 16777216]") when they are out of range. */
typedef bool (*up_head_table_check)(const double *values, char *why, size_t why_size);

/* A table's shape: n_values numbers per line, spelled `line_form` in messages (e.g.
 * "LAYER HEAD V S"), each line's values passed to check. */
typedef struct up_head_table_form {
  int32_t n_values;
  const char *line_form;
  up_head_table_check check;
} up_head_table_form;

/* Fill values[(layer * n_heads + head) * n_values + i] (n_layers * n_heads * n_values
 * entries) from the file; false with a message naming the file (and line) otherwise. */
bool up_head_table_load(const char *path, int32_t n_layers, int32_t n_heads, const up_head_table_form *form,
                        double *values, char *err, size_t err_size);

#endif
