/* minference_table.h — MInference's per-head vertical/slash sizes read from a table file
 * (the `table=` option of minference.c), checked against the model's layers and heads.
 * File format (text): '#' starts a comment; every other non-blank line is
 *     LAYER HEAD V S
 * four non-negative integers, one line for every (layer, head) of the model exactly once
 * (scripts/minference_table.py writes it from the authors' best_pattern JSON). */
#ifndef UP_MINFERENCE_TABLE_H
#define UP_MINFERENCE_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Fill vertical[layer * n_heads + head] and slash[...] (n_layers * n_heads each) from the
 * file; false with a message naming the file (and line) otherwise. */
bool up_minference_table_load(const char *path, int32_t n_layers, int32_t n_heads, int32_t *vertical,
                              int32_t *slash, char *err, size_t err_size);

#endif
