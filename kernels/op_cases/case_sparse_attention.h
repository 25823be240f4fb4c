/* case_sparse_attention.h — what a test that runs a sparse-attention case more than once
 * (op_case.h's up_op_sparse_attention) can see of its inputs: the output buffer, so that
 * each run can start from NaN and two runs can be compared bit for bit
 * (tests/gpu/gpu_sparse_attention_test.c). */
#ifndef UP_CASE_SPARSE_ATTENTION_H
#define UP_CASE_SPARSE_ATTENTION_H

#include <stddef.h>

/* The output buffer of a sparse-attention case's inputs (backend memory, *n values:
 * every row of the batch, n_heads * head_dim each). */
void *up_op_sparse_attention_output(void *inputs, size_t *n);

#endif
