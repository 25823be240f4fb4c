/* case_selection.h — what a test that looks closer at the selection op can reach of a
 * selection case (op_case.h's up_op_selection): the batch on the backend (to plant
 * constructed keys and queries before the reference reads them), the host copy the
 * reference ran on (to recompute token scores), and the rows the last run kept. */
#ifndef UP_CASE_SELECTION_H
#define UP_CASE_SELECTION_H

#include <stdint.h>

#include "kernels/op_cases/paged_batch.h"

/* The backend batch of a selection case's inputs. */
up_op_paged_batch *up_op_selection_batch(void *inputs);

/* The host batch the reference selected on (every sequence when the case has no sample). */
const up_op_host_batch *up_op_selection_reference_batch(const void *reference);

/* Rows the last run kept (host copy, malloc'd, *n_kept of them, packed batch indices). */
int32_t *up_op_selection_kept_rows(up_backend *be, void *inputs, int32_t *n_kept);

/* The smallest relative distance of the reference's block choice from another choice
 * over the scored sequences of hb (INFINITY when nothing is scored or nothing is
 * dropped): below about 1e-3, fp32 sums in another order may choose otherwise. */
double up_op_selection_margin(const up_op_host_batch *hb, const up_attn_shape *shape, const up_select_params *prm);

#endif
