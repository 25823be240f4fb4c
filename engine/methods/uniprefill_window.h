/* uniprefill_window.h — UniPrefill's window=original (uniprefill_window.c): attention of
 * a sliding layer whose window counts original positions after a drop. It remembers,
 * per KV slot and layer, the original position of every cache entry (the engine's
 * memory does not store positions), so prefill and later decode rows alike start at the
 * first kept entry within W positions of their own. Owns that bookkeeping only; the
 * option and the hooks are uniprefill.c's, the kernel is the backend's bounded attention
 * (kernels/uniprefill_ops.h). */
#ifndef UP_METHOD_UNIPREFILL_WINDOW_H
#define UP_METHOD_UNIPREFILL_WINDOW_H

#include <stdint.h>

#include "engine/methods/method.h"

typedef struct up_position_window up_position_window;

up_position_window *up_position_window_create(up_backend *be);
void up_position_window_destroy(up_position_window *pw);

/* The first cache entry each of `n` rows sees: row t at cache index prior + t and
 * original position row_positions[t] starts at the first of entry_positions[0 ..
 * prior + t] above row_positions[t] - window (entry_positions ascending). Returns the
 * query-key pairs that makes. Exposed for the tests' direct computation. */
double up_position_window_first_entries(const int32_t *entry_positions, int32_t prior, const int32_t *row_positions,
                                        int32_t n, int32_t window, int32_t *first_entry);

/* Attention of a sliding layer (at->window > 0) with the window in original positions:
 * records this step's rows' positions as the layer's new entries of each sequence's
 * slot (a sequence whose cache held nothing before this step starts afresh), then runs
 * the backend's bounded attention. Returns the query-key pairs computed. */
double up_position_window_attention(up_position_window *pw, up_backend *be, const up_method_layer *at, void *out);

#endif
