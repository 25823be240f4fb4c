/* case_sparse_attention.c — the driver of the sparse baselines' attention kernel
 * (kernels/sparse_attention_ops.h, reached through method_kernel) over a paged batch in
 * which some sequences get a drawn pattern and the others (decode rows, dense
 * prefills) are attended densely by the same call. The pattern is drawn on the host
 * from the seed: per list row the diagonal range, the others kept with the case's
 * density, aligned (the block methods) or at arbitrary starts with gaps and one range
 * past the block's rows (MInference's slashes), plus gathered extra keys outside the
 * ranges. The reference is the CPU backend's kernel on the same pattern (or, for a
 * pattern of every causal block, the CPU's dense attention op: density 1 equals dense);
 * with a sample it runs only the sampled query blocks (the other list rows emptied) and
 * the dense sequences. Owns no kernel and no list of cases. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "core/rng.h"
#include "kernels/op_cases/case_sparse_attention.h"
#include "kernels/op_cases/op_check.h"
#include "kernels/op_cases/paged_batch.h"
#include "kernels/sparse_attention_ops.h"

/* Random streams of the pattern (paged_batch.c uses 3-6 and 2^32 on). */
enum { STREAM_PATTERN = 11 };

/* A growable int32 list. */
typedef struct i32_list {
  int32_t *v;
  int64_t n, cap;
} i32_list;

static void push(i32_list *l, int32_t x) {
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 256;
    l->v = realloc(l->v, sizeof(int32_t) * (size_t)l->cap);
    if (!l->v) UP_FATAL("out of host memory for a sparse pattern of %lld entries", (long long)l->cap);
  }
  l->v[l->n++] = x;
}

/* A pattern's arrays on the host. */
typedef struct host_pattern {
  int32_t *qblock_start; /* [n_seqs + 1] */
  i32_list range_ptr, range_start, column_ptr, column_index;
} host_pattern;

typedef struct sparse_inputs {
  up_op_paged_batch pb;
  host_pattern hp;
  up_sparse_pattern pattern; /* over backend copies of hp */
  void *out;
  int64_t width;
  double pairs; /* causal query-key pairs of the pattern plus the dense sequences', summed over heads */
} sparse_inputs;

typedef struct sparse_reference {
  int64_t n_rows;
  int64_t *rows; /* compared backend rows, ascending */
  float *expected;
  int64_t width;
} sparse_reference;

/* A uniform batch (rows_each, the --kernels cases) has every sequence a candidate. */
static bool is_sparse(const up_op_batch_dims *d, int32_t s) {
  return (!d->per_sequence || d->candidate[s]) && up_op_batch_prior(d, s) == 0 && up_op_batch_rows(d, s) > 0;
}

/* The next draw in [0, 1) of the pattern's stream. */
static double draw(uint64_t seed, uint64_t *i) { return up_rng_unit(seed, STREAM_PATTERN, (*i)++); }

/* One list row: query block [m0, end) of a sequence of n rows. covered is n bytes of scratch. */
static void draw_list_row(const up_op_sparse_dims *sd, int32_t n, int32_t m0, int32_t end, uint64_t seed,
                          uint64_t *k, uint8_t *covered, host_pattern *hp, double *pairs) {
  memset(covered, 0, (size_t)n);
  const int32_t bk = sd->block_k;
#define ADD_RANGE(a)                                                                        \
  do {                                                                                      \
    push(&hp->range_start, (a));                                                            \
    for (int32_t key = (a); key < (a) + bk && key < n; ++key) covered[key] = 1;             \
  } while (0)
  if (sd->unaligned) {
    /* the diagonal as consecutive ranges from the block's first row, then ranges below
     * at arbitrary starts with random gaps, and one past the block's last row */
    for (int32_t a = m0; a < end; a += bk) ADD_RANGE(a);
    for (int32_t cursor = m0;;) {
      const int32_t gap = draw(seed, k) < 0.5 ? (int32_t)(draw(seed, k) * bk) : 0;
      const int32_t stop = cursor - gap;
      if (stop < bk) break;
      if (draw(seed, k) < sd->density) ADD_RANGE(stop - bk);
      cursor = stop - bk;
    }
    push(&hp->range_start, end + (int32_t)(draw(seed, k) * bk));
  } else {
    const int32_t first_diag = m0 / bk, last = (end - 1) / bk;
    for (int32_t kb = 0; kb <= last; ++kb)
      if (kb == 0 || kb >= first_diag || draw(seed, k) < sd->density) ADD_RANGE(kb * bk);
  }
#undef ADD_RANGE
  for (int32_t e = 0, tries = 0; e < sd->extra_keys && m0 > 0 && tries < 8 * sd->extra_keys; ++tries) {
    const int32_t key = (int32_t)(draw(seed, k) * m0);
    if (covered[key]) continue;
    covered[key] = 1;
    push(&hp->column_index, key);
    ++e;
  }
  /* row t sees the covered keys <= t: a running count over the keys */
  int64_t seen = 0;
  for (int32_t key = 0; key < end; ++key) {
    seen += covered[key];
    if (key >= m0) *pairs += (double)seen;
  }
}

static void draw_pattern(const up_op_batch_dims *d, uint64_t seed, host_pattern *hp, double *pairs) {
  const up_op_sparse_dims *sd = &d->sparse;
  if (sd->block_q <= 0 || sd->block_k <= 0 || (sd->unaligned && sd->block_q != sd->block_k))
    UP_FATAL("sparse attention case: blocks %d x %d%s", (int)sd->block_q, (int)sd->block_k,
             sd->unaligned ? " (unaligned ranges need block_q == block_k)" : "");
  hp->qblock_start = up_malloc_or_die(sizeof(int32_t) * (size_t)(d->n_seqs + 1), "query-block starts");
  hp->qblock_start[0] = 0;
  push(&hp->range_ptr, 0);
  push(&hp->column_ptr, 0);
  uint64_t k = 0;
  for (int32_t s = 0; s < d->n_seqs; ++s) {
    const int32_t n = up_op_batch_rows(d, s), prior = up_op_batch_prior(d, s);
    if (!is_sparse(d, s)) {
      hp->qblock_start[s + 1] = hp->qblock_start[s];
      *pairs += d->shape.n_heads * ((double)n * prior + (double)n * (n + 1) / 2);
      continue;
    }
    const int32_t nq = (n + sd->block_q - 1) / sd->block_q;
    hp->qblock_start[s + 1] = hp->qblock_start[s] + nq;
    uint8_t *covered = up_malloc_or_die((size_t)n, "covered keys");
    for (int32_t b = 0; b < nq; ++b)
      for (int32_t h = 0; h < d->shape.n_heads; ++h) {
        const int32_t m0 = b * sd->block_q, end = m0 + sd->block_q < n ? m0 + sd->block_q : n;
        draw_list_row(sd, n, m0, end, seed, &k, covered, hp, pairs);
        push(&hp->range_ptr, (int32_t)hp->range_start.n);
        push(&hp->column_ptr, (int32_t)hp->column_index.n);
      }
    free(covered);
  }
}

static void host_pattern_free(host_pattern *hp) {
  free(hp->qblock_start);
  free(hp->range_ptr.v);
  free(hp->range_start.v);
  free(hp->column_ptr.v);
  free(hp->column_index.v);
}

static up_sparse_pattern pattern_over(const up_op_batch_dims *d, const host_pattern *hp, const int32_t *qblock_start,
                                      int32_t *range_ptr, int32_t *range_start, int32_t *column_ptr,
                                      int32_t *column_index) {
  return (up_sparse_pattern){.n_seqs = d->n_seqs, .n_heads = d->shape.n_heads, .block_q = d->sparse.block_q,
                             .block_k = d->sparse.block_k, .qblock_start_host = hp->qblock_start,
                             .qblock_start = qblock_start, .range_ptr = range_ptr, .range_start = range_start,
                             .column_ptr = column_ptr, .column_index = column_index,
                             .range_capacity = hp->range_start.n, .column_capacity = hp->column_index.n};
}

static void call_sparse(up_backend *be, const up_op_case *c, void *out, const void *qkv, const up_kv_pool *pool,
                        const up_attn_batch *batch, const up_sparse_pattern *pattern) {
  const up_sparse_attention_fn kernel = up_sparse_attention_kernel(be);
  if (!kernel) UP_FATAL("%s: the %s backend has no %s kernel", c->label, be->ops->name, UP_SPARSE_ATTENTION_KERNEL);
  kernel(be, out, qkv, pool, batch, &c->batch.shape, pattern);
}

static void *sparse_make(up_backend *be, const up_op_case *c, uint64_t seed) {
  sparse_inputs *in = up_calloc_or_die(1, sizeof *in, "sparse attention case");
  up_op_paged_batch_make(be, &c->batch, seed, &in->pb);
  draw_pattern(&c->batch, seed, &in->hp, &in->pairs);
  const host_pattern *hp = &in->hp;
  in->pattern = pattern_over(
      &c->batch, hp, up_op_upload_i32(be, hp->qblock_start, (size_t)c->batch.n_seqs + 1, "query-block starts"),
      up_op_upload_i32(be, hp->range_ptr.v, (size_t)hp->range_ptr.n, "range offsets"),
      up_op_upload_i32(be, hp->range_start.v, (size_t)hp->range_start.n, "key ranges"),
      up_op_upload_i32(be, hp->column_ptr.v, (size_t)hp->column_ptr.n, "extra-key offsets"),
      up_op_upload_i32(be, hp->column_index.v, (size_t)hp->column_index.n, "extra keys"));
  in->width = (int64_t)c->batch.shape.n_heads * c->batch.shape.head_dim;
  const size_t out_n = (size_t)in->pb.n_tokens * (size_t)in->width;
  in->out = be->ops->alloc(be, (out_n ? out_n : 1) * up_dtype_size(be->act_dtype), "sparse attention output");
  if (c->poison) up_op_fill_nan(be, in->out, 0, out_n);
  return in;
}

void *up_op_sparse_attention_output(void *inputs, size_t *n) {
  sparse_inputs *in = inputs;
  *n = (size_t)in->pb.n_tokens * (size_t)in->width;
  return in->out;
}

static int64_t sparse_run(up_backend *be, const up_op_case *c, void *inputs) {
  sparse_inputs *in = inputs;
  call_sparse(be, c, in->out, in->pb.qkv, &in->pb.pool, &in->pb.batch, &in->pattern);
  return 0;
}

/* Whether query block b of nq is compared: all without a sample, else the first, the
 * last and evenly spread ones. */
static bool block_sampled(int32_t b, int32_t nq, int32_t sample) {
  if (sample <= 0 || sample >= nq) return true;
  if (b == 0 || b == nq - 1) return true;
  for (int32_t i = 0; i < sample - 2; ++i)
    if (b == (int32_t)(((int64_t)2 * i + 1) * nq / (2 * (sample - 2)))) return true;
  return false;
}

static void *sparse_reference_of(up_backend *be, const up_op_case *c, void *inputs, up_backend *ref) {
  sparse_inputs *in = inputs;
  const up_op_paged_batch *pb = &in->pb;
  const up_op_batch_dims *d = &c->batch;
  const host_pattern *hp = &in->hp;
  sparse_reference *r = up_calloc_or_die(1, sizeof *r, "sparse attention reference");
  r->width = in->width;
  r->rows = up_malloc_or_die(sizeof(int64_t) * (size_t)(pb->n_tokens + 1), "compared rows");
  /* The pattern with the unsampled list rows emptied, and the rows compared. */
  int32_t *range_ptr = up_malloc_or_die(sizeof(int32_t) * (size_t)hp->range_ptr.n, "reference range offsets");
  int32_t *column_ptr = up_malloc_or_die(sizeof(int32_t) * (size_t)hp->column_ptr.n, "reference extra-key offsets");
  int32_t *range_start = up_malloc_or_die(sizeof(int32_t) * (size_t)(hp->range_start.n + 1), "reference ranges");
  int32_t *column_index = up_malloc_or_die(sizeof(int32_t) * (size_t)(hp->column_index.n + 1), "reference keys");
  int64_t nr = 0, nc = 0;
  range_ptr[0] = column_ptr[0] = 0;
  for (int32_t s = 0; s < d->n_seqs; ++s) {
    const int32_t first = pb->cu_seqlens[s], n = pb->cu_seqlens[s + 1] - first;
    const int32_t nq = hp->qblock_start[s + 1] - hp->qblock_start[s];
    if (nq == 0)
      for (int32_t t = 0; t < n; ++t) r->rows[r->n_rows++] = first + t;
    for (int32_t b = 0; b < nq; ++b) {
      const bool keep = block_sampled(b, nq, c->sample);
      const int32_t m0 = b * d->sparse.block_q;
      for (int32_t t = m0; keep && t < n && t < m0 + d->sparse.block_q; ++t) r->rows[r->n_rows++] = first + t;
      for (int32_t h = 0; h < d->shape.n_heads; ++h) {
        const int64_t row = (int64_t)(hp->qblock_start[s] + b) * d->shape.n_heads + h;
        for (int32_t i = hp->range_ptr.v[row]; keep && i < hp->range_ptr.v[row + 1]; ++i)
          range_start[nr++] = hp->range_start.v[i];
        for (int32_t i = hp->column_ptr.v[row]; keep && i < hp->column_ptr.v[row + 1]; ++i)
          column_index[nc++] = hp->column_index.v[i];
        range_ptr[row + 1] = (int32_t)nr;
        column_ptr[row + 1] = (int32_t)nc;
      }
    }
  }
  int32_t *all = up_malloc_or_die(sizeof(int32_t) * (size_t)(pb->n_seqs + 1), "every sequence");
  for (int32_t s = 0; s < pb->n_seqs; ++s) all[s] = s;
  up_op_host_batch hb;
  up_op_host_batch_of_sequences(be, pb, all, pb->n_seqs, &hb);
  free(all);
  const up_sparse_pattern pattern =
      pattern_over(d, hp, hp->qblock_start, range_ptr, range_start, column_ptr, column_index);
  float *full = up_malloc_or_die(sizeof(float) * (size_t)(pb->n_tokens * r->width + 1), "reference output");
  if (d->sparse.dense_reference) {
    if (d->sparse.density < 1.0f || d->sparse.extra_keys > 0 || d->sparse.unaligned)
      UP_FATAL("%s: a dense reference needs a pattern of every causal block (density 1, aligned, no extra keys)",
               c->label);
    ref->ops->attention(ref, full, hb.qkv, &hb.pool, &hb.batch, &c->batch.shape, 0);
  } else {
    call_sparse(ref, c, full, hb.qkv, &hb.pool, &hb.batch, &pattern);
  }
  r->expected = up_malloc_or_die(sizeof(float) * (size_t)(r->n_rows * r->width + 1), "reference rows");
  for (int64_t i = 0; i < r->n_rows; ++i)
    memcpy(r->expected + i * r->width, full + r->rows[i] * r->width, sizeof(float) * (size_t)r->width);
  free(full);
  free(range_ptr);
  free(column_ptr);
  free(range_start);
  free(column_index);
  up_op_host_batch_free(&hb);
  return r;
}

static void sparse_compare(up_backend *be, const up_op_case *c, void *inputs, const void *reference,
                           up_op_check *check) {
  const sparse_inputs *in = inputs;
  const sparse_reference *r = reference;
  float *got = up_malloc_or_die(sizeof(float) * (size_t)(r->n_rows * r->width + 1), "sparse attention under test");
  for (int64_t i = 0; i < r->n_rows;) {
    int64_t run = 1; /* consecutive rows in one download */
    while (i + run < r->n_rows && r->rows[i + run] == r->rows[i] + run) ++run;
    be->ops->download_f32(be, got + i * r->width, in->out, (size_t)(r->rows[i] * r->width), (size_t)(run * r->width));
    i += run;
  }
  check->error = up_op_normalised_error(got, r->expected, (size_t)(r->n_rows * r->width));
  free(got);
  size_t unwritten = 0;
  if (c->poison) { /* every element written and finite, not only the compared rows */
    const size_t n = (size_t)in->pb.n_tokens * (size_t)r->width;
    float *all = up_op_download(be, in->out, 0, n, "sparse attention output");
    for (size_t i = 0; i < n; ++i) unwritten += !isfinite(all[i]);
    free(all);
    if (unwritten) check->error = INFINITY;
  }
  const double causal = (double)in->pairs; /* computed pairs, for the detail */
  snprintf(check->detail, sizeof check->detail,
           "%d seqs, %d rows (%lld compared), %d/%d heads x %d, blocks %dx%d, %lld ranges, %lld extra keys, "
           "%.3g pairs%s",
           (int)in->pb.n_seqs, (int)in->pb.n_tokens, (long long)r->n_rows, (int)c->batch.shape.n_heads,
           (int)c->batch.shape.n_kv_heads, (int)c->batch.shape.head_dim, (int)c->batch.sparse.block_q,
           (int)c->batch.sparse.block_k, (long long)in->hp.range_start.n, (long long)in->hp.column_index.n, causal,
           unwritten ? ", some outputs unwritten or not finite" : "");
}

static void sparse_free_reference(void *reference) {
  sparse_reference *r = reference;
  free(r->rows);
  free(r->expected);
  free(r);
}

static void sparse_destroy(up_backend *be, void *inputs) {
  sparse_inputs *in = inputs;
  be->ops->free(be, (void *)in->pattern.qblock_start);
  be->ops->free(be, in->pattern.range_ptr);
  be->ops->free(be, in->pattern.range_start);
  be->ops->free(be, in->pattern.column_ptr);
  be->ops->free(be, in->pattern.column_index);
  host_pattern_free(&in->hp);
  up_op_paged_batch_free(be, &in->pb);
  be->ops->free(be, in->out);
  free(in);
}

/* The reference's multiply-adds, from the dense bound scaled by the case's density (the
 * drawn pairs are known only once the inputs exist). */
static double sparse_work(const up_op_case *c) {
  const up_op_batch_dims *d = &c->batch;
  double entries = 0.0;
  for (int32_t s = 0; s < d->n_seqs; ++s) {
    const double n = up_op_batch_rows(d, s), prior = up_op_batch_prior(d, s);
    entries += (n * prior + n * (n + 1) / 2) * (is_sparse(d, s) ? d->sparse.density : 1.0);
  }
  return 2.0 * entries * d->shape.n_heads * d->shape.head_dim;
}

const up_op_driver up_op_sparse_attention = {{"method_kernel"}, sparse_make, sparse_run, sparse_reference_of,
                                             sparse_compare, sparse_free_reference, sparse_destroy, sparse_work};
