/* case_transfers.c — drivers of the memory ops: the upload/download round trips (f32
 * with rounding to the backend's dtype, int32 and raw bytes exactly), memory_available, and
 * fill_uniform against the reference's draw of the same (seed, stream) (op_case.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "core/rng.h"
#include "kernels/op_cases/op_check.h"
#include "kernels/op_cases/op_expected.h"

/* Halfway cases of bf16 rounding (1 + 2^-8 must go to the even neighbour), a value
 * near the top of the range and a subnormal. */
static const float up_tricky_values[4] = {1.00390625f, 1.01171875f, -3.0e38f, 1.0e-40f};
#define UP_TRICKY_N 4
#define UP_MIN_MEMORY_BYTES ((size_t)1 << 30)

/* What storing x in dtype gives back: bf16 rounds to nearest, ties to even. */
static float round_to_dtype(float x, up_dtype dtype) {
  if (dtype != UP_DTYPE_BF16 || isnan(x)) return x;
  uint32_t bits;
  memcpy(&bits, &x, sizeof bits);
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  bits &= 0xFFFF0000u;
  memcpy(&x, &bits, sizeof x);
  return x;
}

typedef struct transfer_inputs {
  float *source, *back;          /* host: n values in, n values out */
  float tricky_back[UP_TRICKY_N];
  int32_t *ints, *ints_back;     /* host */
  size_t n_ints;
  float *raw_back;               /* host: the source's fp32 bits after a byte round trip */
  void *buffer;                  /* backend: offset + n + 3 values */
  int32_t *int_buffer;           /* backend */
  void *byte_buffer;             /* backend: n fp32 values, never converted */
  size_t available;              /* memory_available after the buffers */
} transfer_inputs;

static void *transfers_make(up_backend *be, const up_op_case *c, uint64_t seed) {
  transfer_inputs *in = up_calloc_or_die(1, sizeof *in, "transfer case");
  const size_t n = c->span.n;
  in->source = up_malloc_or_die(sizeof(float) * (n ? n : 1), "transfer source");
  for (size_t i = 0; i < n; ++i) in->source[i] = 1000.0f * up_rng_symmetric(seed, 1, i);
  in->back = up_malloc_or_die(sizeof(float) * (n ? n : 1), "transfer result");
  in->n_ints = n / 100 + 3;
  in->ints = up_op_random_indices(seed, 2, in->n_ints, INT32_MAX);
  in->ints_back = up_calloc_or_die(in->n_ints, sizeof(int32_t), "int transfer result");
  in->buffer = be->ops->alloc(be, (c->span.offset + n + 3) * up_dtype_size(be->act_dtype), "transfer buffer");
  up_op_fill_nan(be, in->buffer, 0, c->span.offset + n + 3);
  in->int_buffer = be->ops->alloc(be, sizeof(int32_t) * in->n_ints, "int transfer buffer");
  in->raw_back = up_malloc_or_die(sizeof(float) * (n ? n : 1), "byte transfer result");
  in->byte_buffer = be->ops->alloc(be, sizeof(float) * (n ? n : 1), "byte transfer buffer");
  return in;
}

/* Every round trip once. */
static int64_t transfers_run(up_backend *be, const up_op_case *c, void *inputs) {
  transfer_inputs *in = inputs;
  be->ops->upload_f32(be, in->buffer, c->span.offset, in->source, c->span.n);
  be->ops->download_f32(be, in->back, in->buffer, c->span.offset, c->span.n);
  be->ops->upload_i32(be, in->int_buffer, in->ints, in->n_ints);
  be->ops->download_i32(be, in->ints_back, in->int_buffer, in->n_ints);
  be->ops->upload_bytes(be, in->byte_buffer, in->source, sizeof(float) * c->span.n);
  be->ops->download_bytes(be, in->raw_back, in->byte_buffer, sizeof(float) * c->span.n);
  be->ops->upload_f32(be, in->buffer, 0, up_tricky_values, UP_TRICKY_N);
  be->ops->download_f32(be, in->tricky_back, in->buffer, 0, UP_TRICKY_N);
  in->available = be->ops->memory_available(be);
  return 0;
}

/* values[0]: the source as the dtype stores it; values[1]: the tricky values likewise. */
static void *transfers_reference(up_backend *be, const up_op_case *c, void *inputs, up_backend *ref) {
  transfer_inputs *in = inputs;
  up_op_expected *e = up_op_expected_new(c->span.n, UP_TRICKY_N, 0);
  for (size_t i = 0; i < c->span.n; ++i) e->values[0][i] = round_to_dtype(in->source[i], be->act_dtype);
  for (int i = 0; i < UP_TRICKY_N; ++i) e->values[1][i] = round_to_dtype(up_tricky_values[i], be->act_dtype);
  return e;
}

static void transfers_compare(up_backend *be, const up_op_case *c, void *inputs, const void *reference,
                              up_op_check *check) {
  const transfer_inputs *in = inputs;
  const up_op_expected *e = reference;
  const double f32 = up_op_mismatch_share(in->back, e->values[0], c->span.n, sizeof(float));
  const double tricky = up_op_mismatch_share(in->tricky_back, e->values[1], UP_TRICKY_N, sizeof(float));
  const double ints = up_op_mismatch_share(in->ints_back, in->ints, in->n_ints, sizeof(int32_t));
  /* Bytes come back bit for bit on any backend: the source itself is the reference. */
  const double raw = up_op_mismatch_share(in->raw_back, in->source, c->span.n, sizeof(float));
  const double memory = in->available >= UP_MIN_MEMORY_BYTES ? 0.0 : 1.0;
  check->error = fmax(fmax(fmax(f32, tricky), fmax(ints, raw)), memory);
  snprintf(check->detail, sizeof check->detail,
           "%zu f32 at offset %zu: %.2g differ; rounding %g -> %g: %.2g; %zu int32: %.2g; raw: %.2g; %.2f GiB "
           "available",
           c->span.n, c->span.offset, f32, (double)up_tricky_values[0], (double)in->tricky_back[0], tricky,
           in->n_ints, ints, raw, (double)in->available / 1073741824.0);
}

static void transfers_destroy(up_backend *be, void *inputs) {
  transfer_inputs *in = inputs;
  be->ops->free(be, in->buffer);
  be->ops->free(be, in->int_buffer);
  be->ops->free(be, in->byte_buffer);
  free(in->raw_back);
  free(in->source);
  free(in->back);
  free(in->ints);
  free(in->ints_back);
  free(in);
}

static double span_work(const up_op_case *c) { return (double)c->span.n; }

const up_op_driver up_op_transfers = {
    {"upload_f32", "download_f32", "upload_i32", "download_i32", "upload_bytes", "download_bytes",
     "memory_available"},
    transfers_make, transfers_run, transfers_reference, transfers_compare, up_op_expected_free, transfers_destroy,
    span_work};

/* --- fill_uniform ---------------------------------------------------------------- */

#define UP_FILL_BOUND 0.75f
#define UP_FILL_STREAM 12345

typedef struct fill_inputs {
  void *buffer;
  uint64_t seed;
} fill_inputs;

static void *fill_make(up_backend *be, const up_op_case *c, uint64_t seed) {
  fill_inputs *in = up_calloc_or_die(1, sizeof *in, "fill case");
  in->buffer = be->ops->alloc(be, (c->span.offset + c->span.n + 1) * up_dtype_size(be->act_dtype), "fill buffer");
  in->seed = seed;
  return in;
}

static int64_t fill_run(up_backend *be, const up_op_case *c, void *inputs) {
  fill_inputs *in = inputs;
  be->ops->fill_uniform(be, in->buffer, c->span.offset, c->span.n, UP_FILL_BOUND, in->seed, UP_FILL_STREAM);
  return 0;
}

static void *fill_reference(up_backend *be, const up_op_case *c, void *inputs, up_backend *ref) {
  fill_inputs *in = inputs;
  up_op_expected *e = up_op_expected_new(c->span.offset + c->span.n, 0, 0);
  ref->ops->fill_uniform(ref, e->values[0], c->span.offset, c->span.n, UP_FILL_BOUND, in->seed, UP_FILL_STREAM);
  return e;
}

static void fill_compare(up_backend *be, const up_op_case *c, void *inputs, const void *reference,
                         up_op_check *check) {
  const up_op_expected *e = reference;
  check->error = up_op_error_of(be, ((fill_inputs *)inputs)->buffer, c->span.offset, e->values[0] + c->span.offset,
                                c->span.n);
  snprintf(check->detail, sizeof check->detail, "n=%zu offset=%zu", c->span.n, c->span.offset);
}

static void fill_destroy(up_backend *be, void *inputs) {
  fill_inputs *in = inputs;
  be->ops->free(be, in->buffer);
  free(in);
}

const up_op_driver up_op_fill = {{"fill_uniform"}, fill_make, fill_run, fill_reference, fill_compare,
                                 up_op_expected_free, fill_destroy, span_work};
