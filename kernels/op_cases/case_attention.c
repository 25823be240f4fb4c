/* case_attention.c — the driver of attention over a paged batch (prefill rows, decode
 * rows, or both in one call), full causal or over a sliding window (the case's
 * batch.window; the blocks behind each sequence's window are -1 in its table,
 * paged_batch.h). The reference recomputes every row, or a sample: the rows at tile
 * edges (0, 1, 15, 16, ..., 4096) and the last two, then rows spread evenly; each
 * sampled row becomes a one-row sequence over the entries up to its own, which gives it
 * the same output as in the batch (the window is the same rule on the same cache index)
 * at a fraction of the work. */
#include "kernels/op_cases/case_attention.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "kernels/op_cases/op_check.h"
#include "kernels/op_cases/paged_batch.h"

typedef struct attention_inputs {
  up_op_paged_batch pb;
  void *out;     /* [n_tokens][width] */
  int64_t width; /* n_heads * head_dim */
} attention_inputs;

typedef struct attention_reference {
  int32_t n_rows;
  int64_t *rows;       /* compared backend rows, ascending */
  int32_t *seq, *row_in_seq;
  float *expected;     /* [n_rows][width] */
  int64_t width;
} attention_reference;

/* The one call of the op, for the backend under test and the reference alike. */
static void call_attention(up_backend *be, const up_op_case *c, void *out, const void *qkv, const up_kv_pool *pool,
                           const up_attn_batch *batch) {
  be->ops->attention(be, out, qkv, pool, batch, &c->batch.shape, c->batch.window);
}

static int64_t out_width(const up_op_case *c) { return (int64_t)c->batch.shape.n_heads * c->batch.shape.head_dim; }

static void *attention_make(up_backend *be, const up_op_case *c, uint64_t seed) {
  attention_inputs *in = up_calloc_or_die(1, sizeof *in, "attention case");
  up_op_paged_batch_make(be, &c->batch, seed, &in->pb);
  in->width = out_width(c);
  const size_t out_n = (size_t)in->pb.n_tokens * (size_t)in->width;
  in->out = be->ops->alloc(be, (out_n ? out_n : 1) * up_dtype_size(be->act_dtype), "attention output");
  if (c->poison) up_op_fill_nan(be, in->out, 0, out_n);
  return in;
}

static int64_t attention_run(up_backend *be, const up_op_case *c, void *inputs) {
  attention_inputs *in = inputs;
  call_attention(be, c, in->out, in->pb.qkv, &in->pb.pool, &in->pb.batch);
  return 0;
}

static int cmp_i64(const void *a, const void *b) {
  const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* The rows a sampled check compares: tile edges of the prefill kernels, the last two,
 * then evenly spread ones, ascending and each once. */
static int32_t pick_rows(int64_t total, int32_t sample, int64_t *rows) {
  if (sample <= 0 || sample >= total) return (int32_t)up_op_sample_rows(total, total, rows);
  static const int64_t edges[] = {0, 1, 15, 16, 31, 32, 63, 64, 127, 128, 129, 255, 4095, 4096};
  int32_t n = 0;
  for (size_t i = 0; i < sizeof edges / sizeof edges[0] && n < sample; ++i)
    if (edges[i] < total) rows[n++] = edges[i];
  if (n < sample) rows[n++] = total - 1;
  if (n < sample) rows[n++] = total - 2;
  const int64_t spread = sample - n;
  for (int64_t i = 0; i < spread; ++i) rows[n++] = (i * 2 + 1) * total / (2 * spread);
  qsort(rows, (size_t)n, sizeof rows[0], cmp_i64);
  int32_t unique = 0;
  for (int32_t i = 0; i < n; ++i)
    if (unique == 0 || rows[unique - 1] != rows[i]) rows[unique++] = rows[i];
  return unique;
}

static void *attention_reference_of(up_backend *be, const up_op_case *c, void *inputs, up_backend *ref) {
  attention_inputs *in = inputs;
  const up_op_paged_batch *pb = &in->pb;
  attention_reference *r = up_calloc_or_die(1, sizeof *r, "attention reference");
  r->width = out_width(c);
  r->rows = up_malloc_or_die(sizeof(int64_t) * (size_t)(pb->n_tokens + 16), "compared rows");
  r->n_rows = pick_rows(pb->n_tokens, c->sample, r->rows);
  r->seq = up_malloc_or_die(sizeof(int32_t) * (size_t)(r->n_rows + 1), "compared rows' sequences");
  r->row_in_seq = up_malloc_or_die(sizeof(int32_t) * (size_t)(r->n_rows + 1), "compared rows' places");
  up_op_host_batch hb;
  if (r->n_rows == pb->n_tokens) { /* every row: the batch as it is */
    int32_t *all = up_malloc_or_die(sizeof(int32_t) * (size_t)(pb->n_seqs + 1), "every sequence");
    for (int32_t s = 0; s < pb->n_seqs; ++s) all[s] = s;
    up_op_host_batch_of_sequences(be, pb, all, pb->n_seqs, &hb);
    free(all);
  } else {
    up_op_host_batch_of_rows(be, pb, r->rows, r->n_rows, &hb);
  }
  for (int32_t i = 0, s = 0; i < r->n_rows; ++i) {
    while (pb->cu_seqlens[s + 1] <= r->rows[i]) ++s;
    r->seq[i] = s;
    r->row_in_seq[i] = (int32_t)(r->rows[i] - pb->cu_seqlens[s]);
  }
  r->expected = up_malloc_or_die(sizeof(float) * (size_t)(r->n_rows * r->width + 1), "reference attention");
  call_attention(ref, c, r->expected, hb.qkv, &hb.pool, &hb.batch);
  up_op_host_batch_free(&hb);
  return r;
}

/* The backend's outputs at the compared rows. */
static float *rows_under_test(up_backend *be, const attention_inputs *in, const attention_reference *r) {
  float *got = up_malloc_or_die(sizeof(float) * (size_t)(r->n_rows * r->width + 1), "attention under test");
  for (int32_t i = 0; i < r->n_rows;) {
    int32_t run = 1; /* consecutive rows in one download */
    while (i + run < r->n_rows && r->rows[i + run] == r->rows[i] + run) ++run;
    be->ops->download_f32(be, got + (int64_t)i * r->width, in->out, (size_t)(r->rows[i] * r->width),
                          (size_t)(run * r->width));
    i += run;
  }
  return got;
}

static void attention_compare(up_backend *be, const up_op_case *c, void *inputs, const void *reference,
                              up_op_check *check) {
  const attention_inputs *in = inputs;
  const attention_reference *r = reference;
  float *got = rows_under_test(be, in, r);
  check->error = up_op_normalised_error(got, r->expected, (size_t)(r->n_rows * r->width));
  free(got);
  size_t unwritten = 0;
  if (c->poison) { /* every element written and finite, not only the compared rows */
    const size_t n = (size_t)in->pb.n_tokens * (size_t)r->width;
    float *all = up_op_download(be, in->out, 0, n, "attention output");
    for (size_t i = 0; i < n; ++i) unwritten += !isfinite(all[i]);
    free(all);
    if (unwritten) check->error = INFINITY;
  }
  char window[32] = "";
  if (c->batch.window > 0) snprintf(window, sizeof window, ", window %d", (int)c->batch.window);
  snprintf(check->detail, sizeof check->detail, "%d seqs, %d rows (%d compared), %d/%d heads x %d, block %d%s%s",
           (int)in->pb.n_seqs, (int)in->pb.n_tokens, (int)r->n_rows, (int)c->batch.shape.n_heads,
           (int)c->batch.shape.n_kv_heads, (int)c->batch.shape.head_dim, (int)in->pb.block_tokens, window,
           unwritten ? ", some outputs unwritten or not finite" : "");
}

static void attention_free_reference(void *reference) {
  attention_reference *r = reference;
  free(r->rows);
  free(r->seq);
  free(r->row_in_seq);
  free(r->expected);
  free(r);
}

static void attention_destroy(up_backend *be, void *inputs) {
  attention_inputs *in = inputs;
  up_op_paged_batch_free(be, &in->pb);
  be->ops->free(be, in->out);
  free(in);
}

/* (row, entry) pairs of n rows after `prior` cached entries, each row seeing its own
 * entry and, under a window W > 0, at most W - 1 before it. */
double up_op_attention_pairs(double n, double prior, double window) {
  const double full = n * prior + n * (n + 1) / 2;
  if (window <= 0.0 || window >= prior + n) return full;
  /* Rows at cache index i < W - 1 see i + 1 entries, the rest W each. */
  const double short_rows = fmax(0.0, fmin(n, window - 1 - prior)); /* rows with index < W - 1 */
  const double first = prior + 1, last = prior + short_rows;          /* their entry counts */
  return short_rows * (first + last) / 2 + (n - short_rows) * window;
}

/* The reference's multiply-adds: each compared row against the entries it sees. */
static double attention_work(const up_op_case *c) {
  const up_op_batch_dims *d = &c->batch;
  double entries = 0.0, rows = 0.0;
  for (int32_t s = 0; s < d->n_seqs; ++s) {
    const double n = up_op_batch_rows(d, s), prior = up_op_batch_prior(d, s);
    entries += up_op_attention_pairs(n, prior, d->window);
    rows += n;
  }
  const double share = c->sample > 0 && c->sample < rows ? c->sample / rows : 1.0;
  return 2.0 * share * entries * d->shape.n_heads * d->shape.head_dim;
}

const up_op_driver up_op_attention = {{"attention"}, attention_make, attention_run, attention_reference_of,
                                      attention_compare, attention_free_reference, attention_destroy,
                                      attention_work};

void up_op_attention_view_of(up_backend *be, void *inputs, const void *reference, up_op_attention_view *view) {
  const attention_reference *r = reference;
  *view = (up_op_attention_view){.n_rows = r->n_rows, .width = r->width, .expected = r->expected,
                                 .got = rows_under_test(be, inputs, r), .seq = r->seq, .row_in_seq = r->row_in_seq};
}

void *up_op_attention_output(void *inputs, size_t *n) {
  const attention_inputs *in = inputs;
  *n = (size_t)in->pb.n_tokens * (size_t)in->width;
  return in->out;
}
