/* case_gemma_ops.c — drivers of the ops Gemma 3's layer adds (op_case.h): geglu (rows x
 * 2*dim in, rows x dim out), head_rmsnorm (the query heads, then the key heads, of
 * fused qkv rows, in place: the value heads must come back untouched) and scale (in
 * place). Each reference is the CPU backend on the inputs read back before the call. */
#include <stdio.h>
#include <stdlib.h>

#include "core/fatal.h"
#include "kernels/op_cases/op_check.h"
#include "kernels/op_cases/op_expected.h"

#define UP_HEAD_NORM_EPS 1e-6f
#define UP_EMBED_SCALE 25.25f /* sqrt(640) as bf16 stores it: Gemma 3 270M's embedding scale */

typedef struct gemma_inputs {
  void *in;     /* geglu's gate_up; head_rmsnorm's qkv; scale's values (the last two written in place) */
  void *weight; /* head_rmsnorm: [head_dim], shared by the heads */
  void *out;    /* geglu */
} gemma_inputs;

static void gemma_destroy(up_backend *be, void *inputs) {
  gemma_inputs *in = inputs;
  void *const buffers[] = {in->in, in->weight, in->out};
  for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; ++i)
    if (buffers[i]) be->ops->free(be, buffers[i]);
  free(in);
}

static size_t rows_n(const up_op_case *c) { return (size_t)c->rows.rows * (size_t)c->rows.dim; }

/* --- geglu -------------------------------------------------------------------------- */

/* Gates of several units: tanh-GELU bends near zero and is near-linear beyond. */
static void *geglu_make(up_backend *be, const up_op_case *c, uint64_t seed) {
  gemma_inputs *in = up_calloc_or_die(1, sizeof *in, "geglu case");
  in->in = up_op_alloc_filled(be, 2 * rows_n(c), 6.0f, seed, 1, "geglu gate_up");
  in->out = be->ops->alloc(be, (rows_n(c) ? rows_n(c) : 1) * up_dtype_size(be->act_dtype), "geglu output");
  if (c->poison) up_op_fill_nan(be, in->out, 0, rows_n(c));
  return in;
}

static int64_t geglu_run(up_backend *be, const up_op_case *c, void *inputs) {
  gemma_inputs *in = inputs;
  be->ops->geglu(be, in->out, in->in, c->rows.rows, c->rows.dim);
  return 0;
}

static void *geglu_reference(up_backend *be, const up_op_case *c, void *inputs, up_backend *ref) {
  gemma_inputs *in = inputs;
  float *gate_up = up_op_download(be, in->in, 0, 2 * rows_n(c), "geglu gate_up");
  up_op_expected *e = up_op_expected_new(rows_n(c), 0, 0);
  ref->ops->geglu(ref, e->values[0], gate_up, c->rows.rows, c->rows.dim);
  free(gate_up);
  return e;
}

static void geglu_compare(up_backend *be, const up_op_case *c, void *inputs, const void *reference,
                          up_op_check *check) {
  const up_op_expected *e = reference;
  check->error = up_op_error_of(be, ((gemma_inputs *)inputs)->out, 0, e->values[0], e->n[0]);
  snprintf(check->detail, sizeof check->detail, "%d x %d", (int)c->rows.rows, (int)c->rows.dim);
}

static double geglu_work(const up_op_case *c) { return 12.0 * (double)rows_n(c); }

const up_op_driver up_op_geglu = {{"geglu"}, geglu_make, geglu_run, geglu_reference, geglu_compare,
                                  up_op_expected_free, gemma_destroy, geglu_work};

/* --- head_rmsnorm: the rope dims describe the qkv rows ------------------------------ */

static int32_t qkv_width(const up_op_case *c) {
  const up_attn_shape *s = &c->rope.shape;
  return (s->n_heads + 2 * s->n_kv_heads) * s->head_dim;
}

static size_t qkv_n(const up_op_case *c) { return (size_t)c->rope.n_tokens * (size_t)qkv_width(c); }

/* Rows a few units wide and weights around one (Gemma's q/k norm weights are 1 + w). */
static void *head_norm_make(up_backend *be, const up_op_case *c, uint64_t seed) {
  gemma_inputs *in = up_calloc_or_die(1, sizeof *in, "head_rmsnorm case");
  in->in = up_op_alloc_filled(be, qkv_n(c), 4.0f, seed, 1, "head_rmsnorm qkv");
  in->weight = up_op_alloc_filled(be, (size_t)c->rope.shape.head_dim, 2.0f, seed, 2, "head_rmsnorm weight");
  return in;
}

/* The attention block's two calls: the query heads, then the key heads, one weight for
 * both here (the model has one each; the op cannot tell). */
static void head_norm_apply(up_backend *be, const up_op_case *c, void *qkv, const void *weight) {
  const up_attn_shape *s = &c->rope.shape;
  be->ops->head_rmsnorm(be, qkv, weight, c->rope.n_tokens, qkv_width(c), 0, s->n_heads, s->head_dim,
                        UP_HEAD_NORM_EPS);
  be->ops->head_rmsnorm(be, qkv, weight, c->rope.n_tokens, qkv_width(c), s->n_heads * s->head_dim, s->n_kv_heads,
                        s->head_dim, UP_HEAD_NORM_EPS);
}

static int64_t head_norm_run(up_backend *be, const up_op_case *c, void *inputs) {
  gemma_inputs *in = inputs;
  head_norm_apply(be, c, in->in, in->weight);
  return 0;
}

static void *head_norm_reference(up_backend *be, const up_op_case *c, void *inputs, up_backend *ref) {
  gemma_inputs *in = inputs;
  up_op_expected *e = up_op_expected_new(qkv_n(c), 0, 0);
  be->ops->download_f32(be, e->values[0], in->in, 0, qkv_n(c));
  float *w = up_op_download(be, in->weight, 0, (size_t)c->rope.shape.head_dim, "head_rmsnorm weight");
  head_norm_apply(ref, c, e->values[0], w);
  free(w);
  return e;
}

static void head_norm_compare(up_backend *be, const up_op_case *c, void *inputs, const void *reference,
                              up_op_check *check) {
  const up_op_expected *e = reference;
  check->error = up_op_error_of(be, ((gemma_inputs *)inputs)->in, 0, e->values[0], e->n[0]);
  snprintf(check->detail, sizeof check->detail, "%d rows of %d/%d heads x %d", (int)c->rope.n_tokens,
           (int)c->rope.shape.n_heads, (int)c->rope.shape.n_kv_heads, (int)c->rope.shape.head_dim);
}

static double head_norm_work(const up_op_case *c) { return 3.0 * (double)qkv_n(c); }

const up_op_driver up_op_head_rmsnorm = {{"head_rmsnorm"}, head_norm_make, head_norm_run, head_norm_reference,
                                         head_norm_compare, up_op_expected_free, gemma_destroy, head_norm_work};

/* --- scale -------------------------------------------------------------------------- */

static void *scale_make(up_backend *be, const up_op_case *c, uint64_t seed) {
  gemma_inputs *in = up_calloc_or_die(1, sizeof *in, "scale case");
  in->in = up_op_alloc_filled(be, rows_n(c), 1.0f, seed, 1, "scale values");
  return in;
}

static int64_t scale_run(up_backend *be, const up_op_case *c, void *inputs) {
  be->ops->scale(be, ((gemma_inputs *)inputs)->in, rows_n(c), UP_EMBED_SCALE);
  return 0;
}

static void *scale_reference(up_backend *be, const up_op_case *c, void *inputs, up_backend *ref) {
  up_op_expected *e = up_op_expected_new(rows_n(c), 0, 0);
  be->ops->download_f32(be, e->values[0], ((gemma_inputs *)inputs)->in, 0, rows_n(c));
  ref->ops->scale(ref, e->values[0], rows_n(c), UP_EMBED_SCALE);
  return e;
}

static void scale_compare(up_backend *be, const up_op_case *c, void *inputs, const void *reference,
                          up_op_check *check) {
  const up_op_expected *e = reference;
  check->error = up_op_error_of(be, ((gemma_inputs *)inputs)->in, 0, e->values[0], e->n[0]);
  snprintf(check->detail, sizeof check->detail, "%d x %d times %g", (int)c->rows.rows, (int)c->rows.dim,
           (double)UP_EMBED_SCALE);
}

static double scale_work(const up_op_case *c) { return (double)rows_n(c); }

const up_op_driver up_op_scale = {{"scale"}, scale_make, scale_run, scale_reference, scale_compare,
                                  up_op_expected_free, gemma_destroy, scale_work};
