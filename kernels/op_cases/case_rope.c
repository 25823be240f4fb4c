/* case_rope.c — the driver of rope: the query and key parts of a qkv batch rotated in
 * place at positions first_position + t, with the case's frequencies (the model's own
 * where the list has them, else theta 10000), against the reference's rotation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "kernels/op_cases/op_check.h"
#include "kernels/op_cases/op_expected.h"

typedef struct rope_inputs {
  void *qkv;
  int32_t *positions, *positions_host;
  float *inv_freq, *inv_freq_host; /* backend fp32, and its host copy */
} rope_inputs;

static size_t rope_n(const up_op_case *c) {
  const up_attn_shape *s = &c->rope.shape;
  return (size_t)c->rope.n_tokens * (size_t)(s->n_heads + 2 * s->n_kv_heads) * (size_t)s->head_dim;
}

static void *rope_make(up_backend *be, const up_op_case *c, uint64_t seed) {
  rope_inputs *in = up_calloc_or_die(1, sizeof *in, "rope case");
  const int32_t half = c->rope.shape.head_dim / 2, n_tokens = c->rope.n_tokens;
  in->qkv = up_op_alloc_filled(be, rope_n(c), 2.0f, seed, 1, "rope qkv");
  in->positions_host = up_malloc_or_die(sizeof(int32_t) * (size_t)(n_tokens ? n_tokens : 1), "rope positions");
  for (int32_t t = 0; t < n_tokens; ++t) in->positions_host[t] = c->rope.first_position + t;
  in->positions = up_op_upload_i32(be, in->positions_host, (size_t)n_tokens, "rope positions");
  in->inv_freq_host = up_malloc_or_die(sizeof(float) * (size_t)(half ? half : 1), "rope frequencies");
  for (int32_t i = 0; i < half; ++i)
    in->inv_freq_host[i] = c->rope.inv_freq ? c->rope.inv_freq[i]
                                            : (float)pow(10000.0, -2.0 * i / c->rope.shape.head_dim);
  /* fp32 frequencies travel as raw bytes, as engine/model/model.c sends them */
  in->inv_freq = (float *)up_op_upload_i32(be, (const int32_t *)in->inv_freq_host, (size_t)half, "rope frequencies");
  return in;
}

static int64_t rope_run(up_backend *be, const up_op_case *c, void *inputs) {
  rope_inputs *in = inputs;
  be->ops->rope(be, in->qkv, in->positions, in->inv_freq, c->rope.n_tokens, &c->rope.shape);
  return 0;
}

static void *rope_reference(up_backend *be, const up_op_case *c, void *inputs, up_backend *ref) {
  rope_inputs *in = inputs;
  up_op_expected *e = up_op_expected_new(rope_n(c), 0, 0);
  be->ops->download_f32(be, e->values[0], in->qkv, 0, rope_n(c));
  ref->ops->rope(ref, e->values[0], in->positions_host, in->inv_freq_host, c->rope.n_tokens, &c->rope.shape);
  return e;
}

static void rope_compare(up_backend *be, const up_op_case *c, void *inputs, const void *reference,
                         up_op_check *check) {
  const up_op_expected *e = reference;
  check->error = up_op_error_of(be, ((rope_inputs *)inputs)->qkv, 0, e->values[0], e->n[0]);
  const up_attn_shape *s = &c->rope.shape;
  snprintf(check->detail, sizeof check->detail, "%d tokens of %d/%d heads x %d at positions %d..%d",
           (int)c->rope.n_tokens, (int)s->n_heads, (int)s->n_kv_heads, (int)s->head_dim, (int)c->rope.first_position,
           (int)(c->rope.first_position + c->rope.n_tokens - 1));
}

static void rope_destroy(up_backend *be, void *inputs) {
  rope_inputs *in = inputs;
  be->ops->free(be, in->qkv);
  be->ops->free(be, in->positions);
  be->ops->free(be, in->inv_freq);
  free(in->positions_host);
  free(in->inv_freq_host);
  free(in);
}

static double rope_work(const up_op_case *c) { return 3.0 * (double)rope_n(c); }

const up_op_driver up_op_rope = {{"rope"}, rope_make, rope_run, rope_reference, rope_compare,
                                 up_op_expected_free, rope_destroy, rope_work};
