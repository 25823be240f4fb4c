/* op_expected.h — the reference outputs most drivers produce: up to two host fp32
 * arrays (add_rmsnorm checks its output and its residual, kv_store both pools) or host
 * int32 values, with the helpers that compare a backend buffer against them. Private to
 * kernels/op_cases. */
#ifndef UP_OP_EXPECTED_H
#define UP_OP_EXPECTED_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/op_cases/op_case.h"

typedef struct up_op_expected {
  float *values[2];
  size_t n[2];
  int32_t *indices;
  size_t n_indices;
} up_op_expected;

/* Room for n0 and n1 values (n1 may be 0) and n_indices int32. */
up_op_expected *up_op_expected_new(size_t n0, size_t n1, size_t n_indices);

/* free_reference of the drivers that use it. */
void up_op_expected_free(void *expected);

/* Normalised error of backend buffer buf (n values from offset) against values. */
double up_op_error_of(up_backend *be, const void *buf, size_t offset, const float *values, size_t n);

#endif
