/* case_bounded_attention.c — the driver of UniPrefill's bounded attention
 * (kernels/uniprefill_ops.h, reached through method_kernel): a paged batch whose rows
 * each bring their own first visible entry, drawn as window=original makes them on a
 * sliding layer after a drop. Row t of a sequence (cache index i) starts at
 * max(the previous row's start, i - w_t + 1) with w_t drawn in 1..batch.window, so
 * starts never move back and never reach behind the window, whose blocks are -1 in the
 * table (paged_batch.h). The reference is the CPU backend's kernel on every row, or on
 * evenly spread rows each made a one-row sequence over the entries up to its own (its
 * start is the same cache index there). Owns no kernel and no list of cases. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "core/rng.h"
#include "kernels/op_cases/op_check.h"
#include "kernels/op_cases/paged_batch.h"

/* Random stream of the first entries (paged_batch.c uses 3-6 and 2^32 on). */
enum { STREAM_FIRST_ENTRY = 12 };

typedef struct bounded_inputs {
  up_op_paged_batch pb;
  int32_t *first_host; /* [n_tokens] */
  int32_t *first;      /* backend copy */
  void *out;
  int64_t width;
  double pairs; /* query-key pairs per head */
} bounded_inputs;

typedef struct bounded_reference {
  int32_t n_rows;
  int64_t *rows; /* compared backend rows, ascending */
  float *expected;
  int64_t width;
} bounded_reference;

static void call_bounded(up_backend *be, const up_op_case *c, void *out, const void *qkv, const up_kv_pool *pool,
                         const up_attn_batch *batch, const int32_t *first_entry) {
  const up_bounded_attention_fn kernel = up_bounded_attention_kernel(be);
  if (!kernel)
    UP_FATAL("%s: the %s backend has no %s kernel", c->label, be->ops->name, UP_UNIPREFILL_BOUNDED_ATTENTION_KERNEL);
  kernel(be, out, qkv, pool, batch, &c->batch.shape, first_entry);
}

static void draw_first_entries(const up_op_batch_dims *d, const up_op_paged_batch *pb, uint64_t seed,
                               int32_t *first, double *pairs) {
  if (d->window <= 0) UP_FATAL("bounded attention case: window %d must be positive", (int)d->window);
  for (int32_t s = 0; s < pb->n_seqs; ++s) {
    const int32_t row0 = pb->cu_seqlens[s], n = pb->cu_seqlens[s + 1] - row0, prior = up_op_batch_prior(d, s);
    int32_t start = up_op_batch_window_start(prior, d->window);
    for (int32_t t = 0; t < n; ++t) {
      const int32_t index = prior + t;
      const int32_t reach = 1 + (int32_t)(up_rng_unit(seed, STREAM_FIRST_ENTRY, (uint64_t)(row0 + t)) * d->window);
      const int32_t lowest = index - (reach < d->window ? reach : d->window) + 1;
      if (lowest > start) start = lowest;
      first[row0 + t] = start;
      *pairs += (double)(index - start + 1);
    }
  }
}

static void *bounded_make(up_backend *be, const up_op_case *c, uint64_t seed) {
  bounded_inputs *in = up_calloc_or_die(1, sizeof *in, "bounded attention case");
  up_op_paged_batch_make(be, &c->batch, seed, &in->pb);
  in->first_host = up_malloc_or_die(sizeof(int32_t) * (size_t)(in->pb.n_tokens + 1), "first visible entries");
  draw_first_entries(&c->batch, &in->pb, seed, in->first_host, &in->pairs);
  in->first = up_op_upload_i32(be, in->first_host, (size_t)in->pb.n_tokens, "first visible entries");
  in->width = (int64_t)c->batch.shape.n_heads * c->batch.shape.head_dim;
  const size_t out_n = (size_t)in->pb.n_tokens * (size_t)in->width;
  in->out = be->ops->alloc(be, (out_n ? out_n : 1) * up_dtype_size(be->act_dtype), "bounded attention output");
  if (c->poison) up_op_fill_nan(be, in->out, 0, out_n);
  return in;
}

static int64_t bounded_run(up_backend *be, const up_op_case *c, void *inputs) {
  bounded_inputs *in = inputs;
  call_bounded(be, c, in->out, in->pb.qkv, &in->pb.pool, &in->pb.batch, in->first);
  return 0;
}

static void *bounded_reference_of(up_backend *be, const up_op_case *c, void *inputs, up_backend *ref) {
  bounded_inputs *in = inputs;
  const up_op_paged_batch *pb = &in->pb;
  bounded_reference *r = up_calloc_or_die(1, sizeof *r, "bounded attention reference");
  r->width = in->width;
  r->rows = up_malloc_or_die(sizeof(int64_t) * (size_t)(pb->n_tokens + 1), "compared rows");
  r->n_rows = (int32_t)up_op_sample_rows(pb->n_tokens, c->sample, r->rows);
  up_op_host_batch hb;
  up_op_host_batch_of_compared(be, pb, r->rows, r->n_rows, &hb);
  int32_t *first = up_malloc_or_die(sizeof(int32_t) * (size_t)(r->n_rows + 1), "reference first entries");
  for (int32_t i = 0; i < r->n_rows; ++i) first[i] = in->first_host[r->rows[i]];
  r->expected = up_malloc_or_die(sizeof(float) * (size_t)(r->n_rows * r->width + 1), "reference attention");
  call_bounded(ref, c, r->expected, hb.qkv, &hb.pool, &hb.batch, first);
  free(first);
  up_op_host_batch_free(&hb);
  return r;
}

static void bounded_compare(up_backend *be, const up_op_case *c, void *inputs, const void *reference,
                            up_op_check *check) {
  const bounded_inputs *in = inputs;
  const bounded_reference *r = reference;
  float *got = up_malloc_or_die(sizeof(float) * (size_t)(r->n_rows * r->width + 1), "bounded attention under test");
  for (int32_t i = 0; i < r->n_rows; ++i)
    be->ops->download_f32(be, got + (int64_t)i * r->width, in->out, (size_t)(r->rows[i] * r->width),
                          (size_t)r->width);
  check->error = up_op_normalised_error(got, r->expected, (size_t)(r->n_rows * r->width));
  free(got);
  /* every element written and finite, not only the compared rows */
  const size_t unwritten = c->poison ? up_op_count_not_finite(be, in->out, (size_t)in->pb.n_tokens * (size_t)r->width,
                                                              "bounded attention output")
                                     : 0;
  if (unwritten) check->error = INFINITY;
  snprintf(check->detail, sizeof check->detail,
           "%d seqs, %d rows (%d compared), %d/%d heads x %d, block %d, window %d, %.3g pairs per head%s",
           (int)in->pb.n_seqs, (int)in->pb.n_tokens, (int)r->n_rows, (int)c->batch.shape.n_heads,
           (int)c->batch.shape.n_kv_heads, (int)c->batch.shape.head_dim, (int)in->pb.block_tokens,
           (int)c->batch.window, in->pairs, unwritten ? ", some outputs unwritten or not finite" : "");
}

static void bounded_free_reference(void *reference) {
  bounded_reference *r = reference;
  free(r->rows);
  free(r->expected);
  free(r);
}

static void bounded_destroy(up_backend *be, void *inputs) {
  bounded_inputs *in = inputs;
  up_op_paged_batch_free(be, &in->pb);
  be->ops->free(be, in->first);
  be->ops->free(be, in->out);
  free(in->first_host);
  free(in);
}

/* The reference's multiply-adds, bounded by each compared row's full window (the drawn
 * starts, known once the inputs exist, shorten it by about a half). */
static double bounded_work(const up_op_case *c) {
  const up_op_batch_dims *d = &c->batch;
  double rows = 0.0;
  for (int32_t s = 0; s < d->n_seqs; ++s) rows += up_op_batch_rows(d, s);
  const double compared = c->sample > 0 && c->sample < rows ? c->sample : rows;
  return 2.0 * compared * d->window * d->shape.n_heads * d->shape.head_dim;
}

const up_op_driver up_op_bounded_attention = {{"method_kernel"}, bounded_make, bounded_run, bounded_reference_of,
                                              bounded_compare, bounded_free_reference, bounded_destroy,
                                              bounded_work};
