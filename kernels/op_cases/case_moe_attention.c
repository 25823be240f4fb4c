/* case_moe_attention.c — drivers of the gated full attention's helpers (case_qwen.h):
 * split_query_gate (both outputs, q into a fused qkv-wide row), sigmoid_gate and
 * rope_partial (a quarter of each head rotated, theta 1e7 unless the case gives
 * frequencies). Their dims are rope's: shape, n_tokens, first_position. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/fatal.h"
#include "kernels/op_cases/case_qwen.h"
#include "kernels/op_cases/op_check.h"
#include "kernels/op_cases/op_expected.h"

#define QWEN3_NEXT_ROPE_THETA 1e7

typedef struct gate_inputs {
  void *qg, *q, *gate, *x;
  int32_t *positions, *positions_host;
  float *inv_freq, *inv_freq_host;
} gate_inputs;

static void gate_destroy(up_backend *be, void *inputs) {
  gate_inputs *in = inputs;
  void *const buffers[] = {in->qg, in->q, in->gate, in->x, in->positions, in->inv_freq};
  for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; ++i)
    if (buffers[i]) be->ops->free(be, buffers[i]);
  free(in->positions_host);
  free(in->inv_freq_host);
  free(in);
}

static size_t q_width(const up_op_case *c) { return (size_t)c->rope.shape.n_heads * c->rope.shape.head_dim; }
static int32_t qkv_width(const up_op_case *c) {
  return (c->rope.shape.n_heads + 2 * c->rope.shape.n_kv_heads) * c->rope.shape.head_dim;
}
static size_t tokens(const up_op_case *c) { return (size_t)c->rope.n_tokens; }

static double gate_work(const up_op_case *c) { return 2.0 * (double)tokens(c) * q_width(c); }

/* --- split_query_gate ----------------------------------------------------------------- */

static void *split_make(up_backend *be, const up_op_case *c, uint64_t seed) {
  gate_inputs *in = up_calloc_or_die(1, sizeof *in, "split case");
  in->qg = up_op_alloc_filled(be, 2 * tokens(c) * q_width(c), 4.0f, seed, 1, "split q|gate");
  in->q = be->ops->alloc(be, (tokens(c) * qkv_width(c) + 1) * up_dtype_size(be->act_dtype), "split q");
  in->gate = be->ops->alloc(be, (tokens(c) * q_width(c) + 1) * up_dtype_size(be->act_dtype), "split gate");
  /* Poisoned whole: the k|v part of each qkv row must stay NaN (compared as such). */
  up_op_fill_nan(be, in->q, 0, tokens(c) * qkv_width(c));
  up_op_fill_nan(be, in->gate, 0, tokens(c) * q_width(c));
  return in;
}

static int64_t split_run(up_backend *be, const up_op_case *c, void *inputs) {
  gate_inputs *in = inputs;
  be->ops->split_query_gate(be, in->q, qkv_width(c), in->gate, in->qg, c->rope.n_tokens, c->rope.shape.n_heads,
                            c->rope.shape.head_dim);
  return 0;
}

/* values[0]: the queries, compacted to n_heads*head_dim per row; values[1]: the gates. */
static void *split_reference(up_backend *be, const up_op_case *c, void *inputs, up_backend *ref) {
  gate_inputs *in = inputs;
  float *qg = up_op_download(be, in->qg, 0, 2 * tokens(c) * q_width(c), "split q|gate");
  up_op_expected *e = up_op_expected_new(tokens(c) * q_width(c), tokens(c) * q_width(c), 0);
  ref->ops->split_query_gate(ref, e->values[0], (int32_t)q_width(c), e->values[1], qg, c->rope.n_tokens,
                             c->rope.shape.n_heads, c->rope.shape.head_dim);
  free(qg);
  return e;
}

static void split_compare(up_backend *be, const up_op_case *c, void *inputs, const void *reference,
                          up_op_check *check) {
  const up_op_expected *e = reference;
  const gate_inputs *in = inputs;
  float *q = up_op_download(be, in->q, 0, tokens(c) * qkv_width(c), "split q");
  float *qs = up_malloc_or_die(sizeof(float) * (e->n[0] + 1), "split q rows");
  size_t touched = 0;
  for (size_t t = 0; t < tokens(c); ++t)
    for (int32_t i = 0; i < qkv_width(c); ++i) {
      const float v = q[t * (size_t)qkv_width(c) + (size_t)i];
      if ((size_t)i < q_width(c)) qs[t * q_width(c) + (size_t)i] = v;
      else touched += !isnan(v);
    }
  const double q_err = up_op_normalised_error(qs, e->values[0], e->n[0]);
  const double g_err = up_op_error_of(be, in->gate, 0, e->values[1], e->n[1]);
  free(q);
  free(qs);
  check->error = touched ? fmax(1.0, q_err) : fmax(q_err, g_err);
  snprintf(check->detail, sizeof check->detail, "%d tokens x %d heads x %d: q %.3e, gate %.3e, %zu k|v values written",
           (int)c->rope.n_tokens, (int)c->rope.shape.n_heads, (int)c->rope.shape.head_dim, q_err, g_err, touched);
}

const up_op_driver up_op_split_query_gate = {{"split_query_gate"}, split_make, split_run, split_reference,
                                             split_compare, up_op_expected_free, gate_destroy, gate_work};

/* --- sigmoid_gate ------------------------------------------------------------------------ */

static void *sigmoid_make(up_backend *be, const up_op_case *c, uint64_t seed) {
  gate_inputs *in = up_calloc_or_die(1, sizeof *in, "sigmoid gate case");
  in->x = up_op_alloc_filled(be, tokens(c) * q_width(c), 2.0f, seed, 1, "sigmoid gate input");
  in->gate = up_op_alloc_filled(be, tokens(c) * q_width(c), 6.0f, seed, 2, "sigmoid gate logits");
  return in;
}

static int64_t sigmoid_run(up_backend *be, const up_op_case *c, void *inputs) {
  gate_inputs *in = inputs;
  be->ops->sigmoid_gate(be, in->x, in->gate, c->rope.n_tokens, (int32_t)q_width(c));
  return 0;
}

static void *sigmoid_reference(up_backend *be, const up_op_case *c, void *inputs, up_backend *ref) {
  gate_inputs *in = inputs;
  up_op_expected *e = up_op_expected_new(tokens(c) * q_width(c), 0, 0);
  be->ops->download_f32(be, e->values[0], in->x, 0, e->n[0]);
  float *gate = up_op_download(be, in->gate, 0, e->n[0], "sigmoid gate logits");
  ref->ops->sigmoid_gate(ref, e->values[0], gate, c->rope.n_tokens, (int32_t)q_width(c));
  free(gate);
  return e;
}

static void x_compare(up_backend *be, const up_op_case *c, void *inputs, const void *reference,
                      up_op_check *check) {
  const up_op_expected *e = reference;
  check->error = up_op_error_of(be, ((gate_inputs *)inputs)->x, 0, e->values[0], e->n[0]);
  snprintf(check->detail, sizeof check->detail, "%d tokens of %d/%d heads x %d", (int)c->rope.n_tokens,
           (int)c->rope.shape.n_heads, (int)c->rope.shape.n_kv_heads, (int)c->rope.shape.head_dim);
}

const up_op_driver up_op_sigmoid_gate = {{"sigmoid_gate"}, sigmoid_make, sigmoid_run, sigmoid_reference, x_compare,
                                         up_op_expected_free, gate_destroy, gate_work};

/* --- rope_partial: the first quarter of each head -------------------------------------- */

static int32_t rotary_dim(const up_op_case *c) { return c->rope.shape.head_dim / 4; }

static void *rope_partial_make(up_backend *be, const up_op_case *c, uint64_t seed) {
  gate_inputs *in = up_calloc_or_die(1, sizeof *in, "rope_partial case");
  const int32_t half = rotary_dim(c) / 2;
  in->x = up_op_alloc_filled(be, tokens(c) * (size_t)qkv_width(c), 2.0f, seed, 1, "rope_partial qkv");
  in->positions_host = up_malloc_or_die(sizeof(int32_t) * (tokens(c) + 1), "rope_partial positions");
  for (size_t t = 0; t < tokens(c); ++t) in->positions_host[t] = c->rope.first_position + (int32_t)t;
  in->positions = up_op_upload_i32(be, in->positions_host, tokens(c), "rope_partial positions");
  in->inv_freq_host = up_malloc_or_die(sizeof(float) * (size_t)(half + 1), "rope_partial frequencies");
  for (int32_t i = 0; i < half; ++i)
    in->inv_freq_host[i] = c->rope.inv_freq ? c->rope.inv_freq[i]
                                            : (float)pow(QWEN3_NEXT_ROPE_THETA, -2.0 * i / (double)rotary_dim(c));
  in->inv_freq = up_op_upload_f32_bits(be, in->inv_freq_host, (size_t)half, "rope_partial frequencies");
  return in;
}

static int64_t rope_partial_run(up_backend *be, const up_op_case *c, void *inputs) {
  gate_inputs *in = inputs;
  be->ops->rope_partial(be, in->x, in->positions, in->inv_freq, c->rope.n_tokens, &c->rope.shape, rotary_dim(c));
  return 0;
}

static void *rope_partial_reference(up_backend *be, const up_op_case *c, void *inputs, up_backend *ref) {
  gate_inputs *in = inputs;
  up_op_expected *e = up_op_expected_new(tokens(c) * (size_t)qkv_width(c), 0, 0);
  be->ops->download_f32(be, e->values[0], in->x, 0, e->n[0]);
  ref->ops->rope_partial(ref, e->values[0], in->positions_host, in->inv_freq_host, c->rope.n_tokens, &c->rope.shape,
                         rotary_dim(c));
  return e;
}

static double rope_partial_work(const up_op_case *c) { return 6.0 * (double)tokens(c) * qkv_width(c); }

const up_op_driver up_op_rope_partial = {{"rope_partial"}, rope_partial_make, rope_partial_run,
                                         rope_partial_reference, x_compare, up_op_expected_free, gate_destroy,
                                         rope_partial_work};
