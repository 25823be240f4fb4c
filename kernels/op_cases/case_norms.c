/* case_norms.c — drivers of the element-wise row ops: rmsnorm, add_rmsnorm (its output
 * and the residual it updates in place are both checked) and swiglu (op_case.h). */
#include <stdio.h>
#include <stdlib.h>

#include "core/fatal.h"
#include "kernels/op_cases/op_check.h"
#include "kernels/op_cases/op_expected.h"

#define UP_NORM_EPS 1e-5f

typedef struct norm_inputs {
  void *residual; /* rmsnorm's input; add_rmsnorm's residual stream; swiglu's gate_up */
  void *x;        /* add_rmsnorm's addend */
  void *weight;
  void *out;
} norm_inputs;

static size_t norm_n(const up_op_case *c) { return (size_t)c->rows.rows * (size_t)c->rows.dim; }

static double norm_work(const up_op_case *c) { return 3.0 * (double)norm_n(c); }

/* Residual rows a few units wide, an addend of one, weights up to 2. */
static void *norm_make(up_backend *be, const up_op_case *c, uint64_t seed) {
  norm_inputs *in = up_calloc_or_die(1, sizeof *in, "norm case");
  const size_t n = norm_n(c);
  in->residual = up_op_alloc_filled(be, n, 4.0f, seed, 1, "norm residual");
  in->x = up_op_alloc_filled(be, n, 1.0f, seed, 2, "norm addend");
  in->weight = up_op_alloc_filled(be, (size_t)c->rows.dim, 2.0f, seed, 3, "norm weight");
  in->out = be->ops->alloc(be, (n ? n : 1) * up_dtype_size(be->act_dtype), "norm output");
  if (c->poison) up_op_fill_nan(be, in->out, 0, n);
  return in;
}

static void norm_destroy(up_backend *be, void *inputs) {
  norm_inputs *in = inputs;
  void *const buffers[] = {in->residual, in->x, in->weight, in->out};
  for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; ++i)
    if (buffers[i]) be->ops->free(be, buffers[i]);
  free(in);
}

static void out_compare(up_backend *be, const up_op_case *c, void *inputs, const void *reference,
                        up_op_check *check) {
  const up_op_expected *e = reference;
  check->error = up_op_error_of(be, ((norm_inputs *)inputs)->out, 0, e->values[0], e->n[0]);
  snprintf(check->detail, sizeof check->detail, "%d x %d", (int)c->rows.rows, (int)c->rows.dim);
}

/* --- rmsnorm ---------------------------------------------------------------------- */

static int64_t rmsnorm_run(up_backend *be, const up_op_case *c, void *inputs) {
  norm_inputs *in = inputs;
  be->ops->rmsnorm(be, in->out, in->residual, in->weight, c->rows.rows, c->rows.dim, UP_NORM_EPS);
  return 0;
}

static void *rmsnorm_reference(up_backend *be, const up_op_case *c, void *inputs, up_backend *ref) {
  norm_inputs *in = inputs;
  float *x = up_op_download(be, in->residual, 0, norm_n(c), "rmsnorm input");
  float *w = up_op_download(be, in->weight, 0, (size_t)c->rows.dim, "rmsnorm weight");
  up_op_expected *e = up_op_expected_new(norm_n(c), 0, 0);
  ref->ops->rmsnorm(ref, e->values[0], x, w, c->rows.rows, c->rows.dim, UP_NORM_EPS);
  free(x);
  free(w);
  return e;
}

const up_op_driver up_op_rmsnorm = {{"rmsnorm"}, norm_make, rmsnorm_run, rmsnorm_reference, out_compare,
                                    up_op_expected_free, norm_destroy, norm_work};

/* --- add_rmsnorm ------------------------------------------------------------------ */

static int64_t add_rmsnorm_run(up_backend *be, const up_op_case *c, void *inputs) {
  norm_inputs *in = inputs;
  be->ops->add_rmsnorm(be, in->out, in->residual, in->x, in->weight, c->rows.rows, c->rows.dim, UP_NORM_EPS);
  return 0;
}

/* values[0]: the output; values[1]: the residual after the op. */
static void *add_rmsnorm_reference(up_backend *be, const up_op_case *c, void *inputs, up_backend *ref) {
  norm_inputs *in = inputs;
  up_op_expected *e = up_op_expected_new(norm_n(c), norm_n(c), 0);
  be->ops->download_f32(be, e->values[1], in->residual, 0, norm_n(c));
  float *x = up_op_download(be, in->x, 0, norm_n(c), "add_rmsnorm addend");
  float *w = up_op_download(be, in->weight, 0, (size_t)c->rows.dim, "add_rmsnorm weight");
  ref->ops->add_rmsnorm(ref, e->values[0], e->values[1], x, w, c->rows.rows, c->rows.dim, UP_NORM_EPS);
  free(x);
  free(w);
  return e;
}

static void add_rmsnorm_compare(up_backend *be, const up_op_case *c, void *inputs, const void *reference,
                                up_op_check *check) {
  const up_op_expected *e = reference;
  const norm_inputs *in = inputs;
  const double out_err = up_op_error_of(be, in->out, 0, e->values[0], e->n[0]);
  const double res_err = up_op_error_of(be, in->residual, 0, e->values[1], e->n[1]);
  check->error = out_err > res_err ? out_err : res_err;
  snprintf(check->detail, sizeof check->detail, "%d x %d: out %.3e, residual %.3e", (int)c->rows.rows,
           (int)c->rows.dim, out_err, res_err);
}

const up_op_driver up_op_add_rmsnorm = {{"add_rmsnorm"}, norm_make, add_rmsnorm_run, add_rmsnorm_reference,
                                        add_rmsnorm_compare, up_op_expected_free, norm_destroy, norm_work};

/* --- swiglu: rows x 2*dim in, rows x dim out ---------------------------------------- */

/* Gates of several units, where silu bends. */
static void *swiglu_make(up_backend *be, const up_op_case *c, uint64_t seed) {
  norm_inputs *in = up_calloc_or_die(1, sizeof *in, "swiglu case");
  in->residual = up_op_alloc_filled(be, 2 * norm_n(c), 6.0f, seed, 1, "swiglu gate_up");
  in->out = be->ops->alloc(be, (norm_n(c) ? norm_n(c) : 1) * up_dtype_size(be->act_dtype), "swiglu output");
  if (c->poison) up_op_fill_nan(be, in->out, 0, norm_n(c));
  return in;
}

static int64_t swiglu_run(up_backend *be, const up_op_case *c, void *inputs) {
  norm_inputs *in = inputs;
  be->ops->swiglu(be, in->out, in->residual, c->rows.rows, c->rows.dim);
  return 0;
}

static void *swiglu_reference(up_backend *be, const up_op_case *c, void *inputs, up_backend *ref) {
  norm_inputs *in = inputs;
  float *gate_up = up_op_download(be, in->residual, 0, 2 * norm_n(c), "swiglu gate_up");
  up_op_expected *e = up_op_expected_new(norm_n(c), 0, 0);
  ref->ops->swiglu(ref, e->values[0], gate_up, c->rows.rows, c->rows.dim);
  free(gate_up);
  return e;
}

const up_op_driver up_op_swiglu = {{"swiglu"}, swiglu_make, swiglu_run, swiglu_reference, out_compare,
                                   up_op_expected_free, norm_destroy, norm_work};
