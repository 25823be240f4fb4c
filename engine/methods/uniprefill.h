/* uniprefill.h — UniPrefill's options as the method stores them in a spec
 * (engine/methods/uniprefill.c), for the code that runs its kernel outside a forward
 * pass (--kernels) and for tests. Everything else reaches UniPrefill through the
 * method interface (method.h). */
#ifndef UP_METHOD_UNIPREFILL_H
#define UP_METHOD_UNIPREFILL_H

#include "engine/methods/method.h"
#include "kernels/uniprefill_ops.h"

typedef struct up_uniprefill_options {
  up_select_params select; /* p, keep, block, sink, last_q; p is NaN until resolved when it is
                              the model's (the option's "preset") */
  up_layer_list layers;    /* drop layers: after each, the selection keeps a subset of the prompt */
  int32_t min_rows;        /* a drop layer is skipped when the step has at most this many rows left;
                              -1 until resolved: the model's (drop_min_rows) */
  int32_t window;          /* how a sliding layer's window counts after a drop: up_uniprefill_window */
} up_uniprefill_options;

/* The `window` option. KEPT: a sliding layer's window is W cache entries, which after a
 * drop are W kept tokens reaching back over more than W original positions (the
 * reference, ../shared/HYBRIDS.md D.3). ORIGINAL: a row at original position p sees the
 * kept entries whose original positions are above p - W, as dense attention's window. */
typedef enum up_uniprefill_window {
  UP_UNIPREFILL_WINDOW_KEPT = 0,
  UP_UNIPREFILL_WINDOW_ORIGINAL = 1,
} up_uniprefill_window;

/* The options of a uniprefill spec; NULL for another method's. */
const up_uniprefill_options *up_uniprefill_options_of(const up_method_spec *spec);

/* The selection knobs with a preset p replaced by the model's default_top_p (what
 * resolving the spec does), for the selection kernel's benchmark. */
up_select_params up_uniprefill_select_params(const up_uniprefill_options *options, const up_model_config *cfg);

/* The group selection's score buffers on backend `be` (uniprefill_tp.c): made empty,
 * grown by each selection to the largest layer seen, freed with the method instance. */
typedef struct up_uniprefill_tp_buffers up_uniprefill_tp_buffers;
up_uniprefill_tp_buffers *up_uniprefill_tp_buffers_create(up_backend *be);
void up_uniprefill_tp_buffers_destroy(up_uniprefill_tp_buffers *buffers);

/* The selection on a tensor-parallel group of more than one rank (uniprefill_tp.c,
 * ../shared/PARALLEL.md 3.5): the same contract as the select hook, the same kept rows
 * on every rank of at->tp, derived from the group's per-head scores summed in global
 * head order. `scoring` is the rank's shape at the selector's scale; `buffers` are
 * be's (up_uniprefill_tp_buffers_create). */
int32_t up_uniprefill_select_tp(up_uniprefill_tp_buffers *buffers, up_backend *be, const up_method_layer *at,
                                const up_attn_shape *scoring, const up_select_params *params, int32_t *keep_rows,
                                int32_t *new_cu_seqlens_host);

/* The positions window=original keeps for instance m (NULL under window=kept): for
 * tests of what each window mode remembers. */
struct up_position_window *up_uniprefill_position_window(const up_method *m);

/* Test hook (fault injection, PARALLEL.md 3.6): from now on, rank `rank` of every group
 * adds one ulp to the first of its per-head scores before the all-gather; -1 stops.
 * The masks must still agree, since every rank selects from the gathered scores. */
void up_uniprefill_tp_inject_ulp(int32_t rank);

#endif
