/* case_attention.h — what a test that looks closer at attention can see of an
 * attention case (op_case.h's up_op_attention): the rows it compared, their place in
 * the batch, the reference's values and the backend's. gpu_attention_test uses it to
 * say which sequence, row and head carry an error. */
#ifndef UP_CASE_ATTENTION_H
#define UP_CASE_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/op_cases/op_case.h"

typedef struct up_op_attention_view {
  int32_t n_rows;            /* rows compared */
  int64_t width;             /* values per row: n_heads * head_dim */
  const float *expected;     /* [n_rows][width], the reference's */
  float *got;                /* [n_rows][width], the backend's now (malloc'd: the caller frees it) */
  const int32_t *seq;        /* each compared row's sequence */
  const int32_t *row_in_seq; /* ... and its index among that sequence's rows this step */
} up_op_attention_view;

/* The output buffer of an attention case's inputs (backend memory, *n values). */
void *up_op_attention_output(void *inputs, size_t *n);

/* (row, entry) pairs that n rows after `prior` cached entries attend to: each row its
 * own entry and the ones before it, at most `window` in all when window > 0. */
double up_op_attention_pairs(double n, double prior, double window);

/* The view of an attention case's inputs (after run) and reference. */
void up_op_attention_view_of(up_backend *be, void *inputs, const void *reference, up_op_attention_view *view);

#endif
