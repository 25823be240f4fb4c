/* op_expected.c — host reference outputs and their comparison (op_expected.h). */
#include "kernels/op_cases/op_expected.h"

#include <stdlib.h>

#include "core/fatal.h"
#include "kernels/op_cases/op_check.h"

up_op_expected *up_op_expected_new(size_t n0, size_t n1, size_t n_indices) {
  up_op_expected *e = up_calloc_or_die(1, sizeof *e, "reference outputs");
  e->n[0] = n0;
  e->n[1] = n1;
  e->n_indices = n_indices;
  for (int i = 0; i < 2; ++i) e->values[i] = up_malloc_or_die(sizeof(float) * (e->n[i] ? e->n[i] : 1), "reference");
  e->indices = up_malloc_or_die(sizeof(int32_t) * (n_indices ? n_indices : 1), "reference indices");
  return e;
}

void up_op_expected_free(void *expected) {
  up_op_expected *e = expected;
  if (!e) return;
  free(e->values[0]);
  free(e->values[1]);
  free(e->indices);
  free(e);
}

double up_op_error_of(up_backend *be, const void *buf, size_t offset, const float *values, size_t n) {
  float *got = up_op_download(be, buf, offset, n, "outputs under test");
  const double err = up_op_normalised_error(got, values, n);
  free(got);
  return err;
}
