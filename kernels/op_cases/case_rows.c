/* case_rows.c — drivers of the row-wise ops that read rows by index or pick one:
 * embed, gather_rows, gather_i32 and argmax_rows (op_case.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "kernels/op_cases/op_check.h"
#include "kernels/op_cases/op_expected.h"

typedef struct rows_inputs {
  void *src;         /* embed table, gather source rows, argmax input */
  void *out;         /* embed, gather_rows output */
  int32_t *index;    /* backend: embed tokens, gather rows */
  int32_t *index_host;
  int32_t *vals;     /* gather_i32 source (backend) and its host copy */
  int32_t *vals_host;
  int32_t *out_i32;  /* gather_i32 output (backend) */
  int32_t *out_host; /* argmax output (host, as the op writes it) */
} rows_inputs;

static void rows_destroy(up_backend *be, void *inputs) {
  rows_inputs *in = inputs;
  void *const buffers[] = {in->src, in->out, in->index, in->vals, in->out_i32};
  for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; ++i)
    if (buffers[i]) be->ops->free(be, buffers[i]);
  free(in->index_host);
  free(in->vals_host);
  free(in->out_host);
  free(in);
}

static size_t rows_out_n(const up_op_case *c) { return (size_t)c->rows.rows * (size_t)c->rows.dim; }

static double rows_work(const up_op_case *c) { return (double)c->rows.rows * (double)c->rows.dim; }

/* Source rows and an output of rows x dim; index: rows draws of [0, src_rows). */
static rows_inputs *rows_make_common(up_backend *be, const up_op_case *c, uint64_t seed, const char *what) {
  rows_inputs *in = up_calloc_or_die(1, sizeof *in, what);
  const up_op_rows_dims *d = &c->rows;
  in->src = up_op_alloc_filled(be, (size_t)d->src_rows * (size_t)d->dim, 1.0f, seed, 1, what);
  in->index_host = up_op_random_indices(seed, 2, (size_t)d->rows, d->src_rows);
  if (d->rows > 0) in->index_host[0] = d->src_rows - 1; /* the last source row too */
  in->index = up_op_upload_i32(be, in->index_host, (size_t)d->rows, what);
  in->out = be->ops->alloc(be, (rows_out_n(c) ? rows_out_n(c) : 1) * up_dtype_size(be->act_dtype), what);
  if (c->poison) up_op_fill_nan(be, in->out, 0, rows_out_n(c));
  return in;
}

static void values_compare(up_backend *be, const up_op_case *c, const void *out, const void *reference,
                           up_op_check *check) {
  const up_op_expected *e = reference;
  check->error = up_op_error_of(be, out, 0, e->values[0], e->n[0]);
  snprintf(check->detail, sizeof check->detail, "%d rows x %d", (int)c->rows.rows, (int)c->rows.dim);
}

/* --- embed and gather_rows: out[t] = src[index[t]], one op for token ids, one for rows --- */

/* The op a case of either driver calls, on the backend under test or the reference. */
static void copy_rows(up_backend *be, const up_op_case *c, void *out, const void *src, const int32_t *index) {
  if (c->driver == &up_op_embed) be->ops->embed(be, out, src, index, c->rows.rows, c->rows.dim);
  else be->ops->gather_rows(be, out, src, index, c->rows.rows, c->rows.dim);
}

static void *copy_make(up_backend *be, const up_op_case *c, uint64_t seed) {
  return rows_make_common(be, c, seed, c->driver->ops[0]);
}

static int64_t copy_run(up_backend *be, const up_op_case *c, void *inputs) {
  rows_inputs *in = inputs;
  copy_rows(be, c, in->out, in->src, in->index);
  return 0;
}

static void *copy_reference(up_backend *be, const up_op_case *c, void *inputs, up_backend *ref) {
  rows_inputs *in = inputs;
  float *src = up_op_download(be, in->src, 0, (size_t)c->rows.src_rows * (size_t)c->rows.dim, "source rows");
  up_op_expected *e = up_op_expected_new(rows_out_n(c), 0, 0);
  copy_rows(ref, c, e->values[0], src, in->index_host);
  free(src);
  return e;
}

static void copy_compare(up_backend *be, const up_op_case *c, void *inputs, const void *reference,
                         up_op_check *check) {
  values_compare(be, c, ((rows_inputs *)inputs)->out, reference, check);
}

const up_op_driver up_op_embed = {{"embed"}, copy_make, copy_run, copy_reference, copy_compare,
                                  up_op_expected_free, rows_destroy, rows_work};

const up_op_driver up_op_gather_rows = {{"gather_rows"}, copy_make, copy_run, copy_reference, copy_compare,
                                        up_op_expected_free, rows_destroy, rows_work};

/* --- gather_i32: exact ------------------------------------------------------------- */

static void *gather_i32_make(up_backend *be, const up_op_case *c, uint64_t seed) {
  rows_inputs *in = up_calloc_or_die(1, sizeof *in, "gather_i32 case");
  const up_op_rows_dims *d = &c->rows;
  in->index_host = up_op_random_indices(seed, 2, (size_t)d->rows, d->src_rows);
  in->index = up_op_upload_i32(be, in->index_host, (size_t)d->rows, "gather_i32 rows");
  in->vals_host = up_op_random_indices(seed, 3, (size_t)d->src_rows, INT32_MAX);
  in->vals = up_op_upload_i32(be, in->vals_host, (size_t)d->src_rows, "gather_i32 source");
  int32_t *poison = up_malloc_or_die(sizeof(int32_t) * (size_t)(d->rows ? d->rows : 1), "gather_i32 poison");
  for (int32_t r = 0; r < d->rows; ++r) poison[r] = -1;
  in->out_i32 = up_op_upload_i32(be, poison, (size_t)d->rows, "gather_i32 output");
  free(poison);
  return in;
}

static int64_t gather_i32_run(up_backend *be, const up_op_case *c, void *inputs) {
  rows_inputs *in = inputs;
  be->ops->gather_i32(be, in->out_i32, in->vals, in->index, c->rows.rows);
  return 0;
}

static void *gather_i32_reference(up_backend *be, const up_op_case *c, void *inputs, up_backend *ref) {
  rows_inputs *in = inputs;
  up_op_expected *e = up_op_expected_new(0, 0, (size_t)c->rows.rows);
  ref->ops->gather_i32(ref, e->indices, in->vals_host, in->index_host, c->rows.rows);
  return e;
}

static void gather_i32_compare(up_backend *be, const up_op_case *c, void *inputs, const void *reference,
                               up_op_check *check) {
  const up_op_expected *e = reference;
  int32_t *got = up_op_download_i32(be, ((rows_inputs *)inputs)->out_i32, (size_t)c->rows.rows, "gather_i32 out");
  check->error = up_op_mismatch_share(got, e->indices, e->n_indices, sizeof(int32_t));
  snprintf(check->detail, sizeof check->detail, "%d of %d values, exact", (int)c->rows.rows, (int)c->rows.src_rows);
  free(got);
}

static double gather_i32_work(const up_op_case *c) { return (double)c->rows.rows; }

const up_op_driver up_op_gather_i32 = {{"gather_i32"}, gather_i32_make, gather_i32_run, gather_i32_reference,
                                       gather_i32_compare, up_op_expected_free, rows_destroy, gather_i32_work};

/* --- argmax_rows: exact, with ties --------------------------------------------------- */

/* Values in [-1, 1) tie often at the maximum already (bf16 resolution 2^-8 near 1);
 * every other row also gets a maximum planted at two or three columns, and row 1 ties
 * its first and last column. The lowest index must win every tie. */
static void *argmax_make(up_backend *be, const up_op_case *c, uint64_t seed) {
  rows_inputs *in = up_calloc_or_die(1, sizeof *in, "argmax case");
  const int32_t rows = c->rows.rows, cols = c->rows.dim;
  in->src = up_op_alloc_filled(be, (size_t)rows * (size_t)cols, 1.0f, seed, 1, "argmax input");
  int32_t *where = up_op_random_indices(seed, 2, (size_t)rows * 3, cols);
  const float planted = 4.0f, tie = 8.0f;
  for (int32_t r = 0; r < rows; r += 2)
    for (int32_t j = 0; j < 2 + (r / 2) % 2; ++j)
      be->ops->upload_f32(be, in->src, (size_t)r * cols + (size_t)where[r * 3 + j], &planted, 1);
  if (rows > 1) {
    be->ops->upload_f32(be, in->src, (size_t)cols, &tie, 1);
    be->ops->upload_f32(be, in->src, (size_t)2 * cols - 1, &tie, 1);
  }
  free(where);
  in->out_host = up_malloc_or_die(sizeof(int32_t) * (size_t)(rows ? rows : 1), "argmax output");
  for (int32_t r = 0; r < rows; ++r) in->out_host[r] = -1;
  return in;
}

static int64_t argmax_run(up_backend *be, const up_op_case *c, void *inputs) {
  rows_inputs *in = inputs;
  be->ops->argmax_rows(be, in->out_host, in->src, c->rows.rows, c->rows.dim);
  return 0;
}

static void *argmax_reference(up_backend *be, const up_op_case *c, void *inputs, up_backend *ref) {
  rows_inputs *in = inputs;
  float *x = up_op_download(be, in->src, 0, rows_out_n(c), "argmax input");
  up_op_expected *e = up_op_expected_new(0, 0, (size_t)c->rows.rows);
  ref->ops->argmax_rows(ref, e->indices, x, c->rows.rows, c->rows.dim);
  free(x);
  return e;
}

static void argmax_compare(up_backend *be, const up_op_case *c, void *inputs, const void *reference,
                           up_op_check *check) {
  const up_op_expected *e = reference;
  const int32_t *got = ((rows_inputs *)inputs)->out_host;
  check->error = up_op_mismatch_share(got, e->indices, e->n_indices, sizeof(int32_t));
  snprintf(check->detail, sizeof check->detail, "%d x %d with ties, exact (row 0: %d, reference %d)",
           (int)c->rows.rows, (int)c->rows.dim, c->rows.rows ? (int)got[0] : -1,
           c->rows.rows ? (int)e->indices[0] : -1);
}

const up_op_driver up_op_argmax_rows = {{"argmax_rows"}, argmax_make, argmax_run, argmax_reference, argmax_compare,
                                        up_op_expected_free, rows_destroy, rows_work};
