/* forward_step.h — the state of one forward step as the layer loop (model.c) hands it
 * to the shared blocks: the batch, the residual stream and its normalised copy (both
 * swapped for compacted copies when a method drops rows), the cache, the method and
 * the layer as the method's hooks see it.
 * A block reads `normed` (already normalised by its input norm) and writes ws->delta;
 * the loop adds the delta and normalises for the next block. */
#ifndef UP_FORWARD_STEP_H
#define UP_FORWARD_STEP_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/model/forward_workspace.h"
#include "engine/model/model.h"

typedef struct up_forward_step {
  const up_model *model;
  up_forward_workspace *ws;
  up_kv_cache *cache;
  const up_kv_pool *pool;
  const up_method *method;
  const up_forward_seq *seqs;
  int32_t n_seqs;
  bool any_prefill;         /* a decode-only step never drops: the selection is skipped */
  int32_t n_rows;           /* rows in the batch now: fewer after a drop */
  void *residual, *normed;  /* [n_rows][hidden] */
  void *spare_residual, *spare_normed;
  int32_t *positions, *spare_positions; /* original position of each row */
  up_attn_shape shape;
  up_attn_batch view;       /* the batch as the last attention block saw it: the drop hook selects over it */
  up_method_layer at;       /* the same layer as the method's hooks see it */
  up_attn_work *layer_attn; /* [n_layers] attention work per layer (up_forward_out); may be NULL */
} up_forward_step;

/* Backend memory `values` activation values past p (a row or column offset into an
 * activation buffer, in the backend's dtype). */
static inline void *up_forward_act_at(const up_backend *be, void *p, int64_t values) {
  return (char *)p + values * (int64_t)up_dtype_size(be->act_dtype);
}

/* Attribute the work queued from here on to a phase of the step's time breakdown. */
static inline void up_forward_mark(up_backend *be, up_phase phase) {
  if (be->ops->phase_mark) be->ops->phase_mark(be, phase);
}

/* The communicator's element type for activations of the backend's dtype. */
static inline up_comm_elem up_forward_comm_elem(const up_backend *be) {
  return be->act_dtype == UP_DTYPE_BF16 ? UP_COMM_BF16 : UP_COMM_F32;
}

/* Sum a row-parallel projection's partial outputs over the tensor-parallel group, in
 * place (a group of one leaves them as they are): `rows` activation rows of the
 * hidden size. `what` and the layer name the call if it fails. */
static inline void up_forward_all_reduce_rows(const up_forward_step *step, void *rows_buf, int32_t rows,
                                              int32_t layer, const char *what) {
  const up_model *model = step->model;
  char name[96];
  snprintf(name, sizeof name, "layer %d %s", (int)layer, what);
  model->tp->ops->all_reduce_sum(model->tp, rows_buf, rows_buf, (size_t)rows * (size_t)model->cfg.hidden,
                                 up_forward_comm_elem(model->be), name);
}

#endif
