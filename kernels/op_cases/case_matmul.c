/* case_matmul.c — the driver of matmul (out[m][n] = a[m][k] w[n][k]^T). A sampled check
 * recomputes only some rows of out (evenly spread, first and last included): all of w
 * and those rows of a are read back, so even a 32K-row GEMM checks in seconds. The
 * operands are the values --kernels has always timed (streams 1 and 2, |x| < 1). */
#include <stdio.h>
#include <stdlib.h>

#include "core/fatal.h"
#include "kernels/op_cases/op_check.h"
#include "kernels/op_cases/op_expected.h"

enum { UP_STREAM_GEMM_A = 1, UP_STREAM_GEMM_W = 2 };

typedef struct matmul_inputs {
  void *a, *w, *out;
} matmul_inputs;

typedef struct matmul_reference {
  up_op_expected *rows; /* values[0]: the sampled rows of out */
  int64_t *row_index;
  int64_t n_rows;
} matmul_reference;

static void *matmul_make(up_backend *be, const up_op_case *c, uint64_t seed) {
  const up_op_gemm_dims *d = &c->gemm;
  matmul_inputs *in = up_calloc_or_die(1, sizeof *in, "matmul case");
  /* Random operands, never zeros: a GEMM on zeros runs faster than on real data. */
  in->a = up_op_alloc_filled(be, (size_t)(d->m * d->k) + (size_t)d->a_offset, 1.0f, seed, UP_STREAM_GEMM_A,
                             "GEMM activations");
  in->w = up_op_alloc_filled(be, (size_t)(d->n * d->k), 1.0f, seed, UP_STREAM_GEMM_W, "GEMM weights");
  const size_t out_n = (size_t)(d->m * d->n);
  in->out = be->ops->alloc(be, (out_n ? out_n : 1) * up_dtype_size(be->act_dtype), "GEMM output");
  if (c->poison) up_op_fill_nan(be, in->out, 0, out_n);
  return in;
}

static int64_t matmul_run(up_backend *be, const up_op_case *c, void *inputs) {
  matmul_inputs *in = inputs;
  const up_op_gemm_dims *d = &c->gemm;
  const void *a = (const char *)in->a + (size_t)d->a_offset * up_dtype_size(be->act_dtype);
  be->ops->matmul(be, in->out, a, in->w, (int32_t)d->m, (int32_t)d->n, (int32_t)d->k);
  return 0;
}

static void *matmul_reference_of(up_backend *be, const up_op_case *c, void *inputs, up_backend *ref) {
  matmul_inputs *in = inputs;
  const up_op_gemm_dims *d = &c->gemm;
  matmul_reference *r = up_calloc_or_die(1, sizeof *r, "matmul reference");
  r->row_index = up_malloc_or_die(sizeof(int64_t) * (size_t)(d->m ? d->m : 1), "sampled GEMM rows");
  r->n_rows = up_op_sample_rows(d->m, c->sample, r->row_index);
  float *a = up_malloc_or_die(sizeof(float) * (size_t)(r->n_rows * d->k + 1), "sampled GEMM activations");
  for (int64_t i = 0; i < r->n_rows; ++i)
    if (d->k) be->ops->download_f32(be, a + i * d->k, in->a, (size_t)(d->a_offset + r->row_index[i] * d->k), (size_t)d->k);
  float *w = up_op_download(be, in->w, 0, (size_t)(d->n * d->k), "GEMM weights");
  r->rows = up_op_expected_new((size_t)(r->n_rows * d->n), 0, 0);
  ref->ops->matmul(ref, r->rows->values[0], a, w, (int32_t)r->n_rows, (int32_t)d->n, (int32_t)d->k);
  free(a);
  free(w);
  return r;
}

static void matmul_compare(up_backend *be, const up_op_case *c, void *inputs, const void *reference,
                           up_op_check *check) {
  const matmul_inputs *in = inputs;
  const matmul_reference *r = reference;
  const up_op_gemm_dims *d = &c->gemm;
  float *got = up_malloc_or_die(sizeof(float) * (size_t)(r->n_rows * d->n + 1), "GEMM rows under test");
  for (int64_t i = 0; i < r->n_rows; ++i)
    be->ops->download_f32(be, got + i * d->n, in->out, (size_t)(r->row_index[i] * d->n), (size_t)d->n);
  check->error = up_op_normalised_error(got, r->rows->values[0], (size_t)(r->n_rows * d->n));
  free(got);
  snprintf(check->detail, sizeof check->detail, "m=%lld n=%lld k=%lld%s, %lld of %lld rows compared",
           (long long)d->m, (long long)d->n, (long long)d->k, d->a_offset ? " (a misaligned)" : "",
           (long long)r->n_rows, (long long)d->m);
}

static void matmul_free_reference(void *reference) {
  matmul_reference *r = reference;
  up_op_expected_free(r->rows);
  free(r->row_index);
  free(r);
}

static void matmul_destroy(up_backend *be, void *inputs) {
  matmul_inputs *in = inputs;
  be->ops->free(be, in->a);
  be->ops->free(be, in->w);
  be->ops->free(be, in->out);
  free(in);
}

static double matmul_work(const up_op_case *c) {
  const up_op_gemm_dims *d = &c->gemm;
  const double rows = c->sample > 0 && c->sample < d->m ? (double)c->sample : (double)d->m;
  return rows * (double)d->n * (double)d->k;
}

const up_op_driver up_op_matmul = {{"matmul"}, matmul_make, matmul_run, matmul_reference_of, matmul_compare,
                                   matmul_free_reference, matmul_destroy, matmul_work};
