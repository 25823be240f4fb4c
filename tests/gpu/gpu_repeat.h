/* gpu_repeat.h — one case of the op-case list run twice on the same inputs, each run
 * from NaN outputs (so a run that skips an element cannot hide behind the one before
 * it), for the GPU tests that hold kernels to identical bits: they have no atomics, so
 * a difference means a race. One CHECK line per call (gpu_check.h). Used by
 * gpu_attention_test and gpu_sparse_attention_test. */
#ifndef UP_GPU_REPEAT_H
#define UP_GPU_REPEAT_H

#include <stdlib.h>
#include <string.h>

#include "kernels/op_cases/op_check.h"
#include "tests/gpu/gpu_check.h"

/* Runs c twice into out (n values of backend memory, rows of n_heads * head_dim) and
 * checks the bits agree, naming the case and `path` (the kernel or variant that ran);
 * returns the first run's values (malloc'd: the caller frees them). */
static inline float *gpu_repeat_twice(up_backend *gpu, const up_op_case *c, void *inputs, void *out, size_t n,
                                      const char *path) {
  up_op_fill_nan(gpu, out, 0, n);
  c->driver->run(gpu, c, inputs);
  float *first = up_op_download(gpu, out, 0, n, "first run");
  up_op_fill_nan(gpu, out, 0, n);
  c->driver->run(gpu, c, inputs);
  float *second = up_op_download(gpu, out, 0, n, "second run");
  size_t n_differ = 0, first_differ = 0;
  for (size_t i = 0; i < n; ++i) /* bf16 widens exactly: equal floats, equal bits */
    if (memcmp(&first[i], &second[i], sizeof(float)) != 0 && n_differ++ == 0) first_differ = i;
  free(second);
  const size_t head_dim = (size_t)c->batch.shape.head_dim, width = (size_t)c->batch.shape.n_heads * head_dim;
  CHECK(n_differ == 0, "%s, %s: two runs bitwise identical (%zu of %zu values differ, first at row %zu head %zu)",
        c->label, path, n_differ, n, n_differ ? first_differ / width : 0,
        n_differ ? first_differ % width / head_dim : 0);
  return first;
}

#endif
