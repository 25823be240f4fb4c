/* case_selection.c — the driver of the UniPrefill selection op: kept rows compared with
 * the reference's for every sequence or a sample of them, as the share of a sequence's
 * rows whose keep decision differs (the worst sequence counts). Where they differ, the
 * reference's block scores say whether it was a near tie (up_op_selection_margin). */
#include "kernels/op_cases/case_selection.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "kernels/cpu/uniprefill_select.h"
#include "kernels/uniprefill_ops.h"
#include "kernels/op_cases/op_check.h"

/* Relative distance of a block choice from another below which a difference is a near tie. */
#define UP_SELECT_NEAR_TIE 1e-3

typedef struct selection_inputs {
  up_op_paged_batch pb;
  int32_t *keep_rows;    /* backend [n_tokens] */
  int32_t *new_cu_host;  /* [n_seqs + 1] of the last run */
  int32_t kept;          /* rows the last run kept */
} selection_inputs;

typedef struct selection_reference {
  up_op_host_batch hb;
  int32_t *kept_rows;    /* host batch rows the reference kept */
  int32_t *new_cu;       /* [hb.batch.n_seqs + 1] */
  const up_op_case *c;
} selection_reference;

up_op_paged_batch *up_op_selection_batch(void *inputs) { return &((selection_inputs *)inputs)->pb; }

const up_op_host_batch *up_op_selection_reference_batch(const void *reference) {
  return &((const selection_reference *)reference)->hb;
}

/* The one call of the op, for the backend under test and the reference alike. */
static int32_t call_select(up_backend *be, const up_op_case *c, int32_t *keep_rows, int32_t *new_cu_host,
                           const void *qkv, const up_kv_pool *pool, const up_attn_batch *batch,
                           const uint8_t *candidate) {
  return up_uniprefill_select(be, keep_rows, new_cu_host, qkv, pool, batch, &c->batch.shape, candidate,
                              &c->batch.select);
}

static void *selection_make(up_backend *be, const up_op_case *c, uint64_t seed) {
  selection_inputs *in = up_calloc_or_die(1, sizeof *in, "selection case");
  up_op_paged_batch_make(be, &c->batch, seed, &in->pb);
  in->keep_rows = be->ops->alloc(be, sizeof(int32_t) * (size_t)(in->pb.n_tokens + 1), "selection kept rows");
  in->new_cu_host = up_calloc_or_die((size_t)in->pb.n_seqs + 1, sizeof(int32_t), "selection offsets");
  return in;
}

static int64_t selection_run(up_backend *be, const up_op_case *c, void *inputs) {
  selection_inputs *in = inputs;
  up_op_paged_batch *pb = &in->pb;
  in->kept = call_select(be, c, in->keep_rows, in->new_cu_host, pb->qkv, &pb->pool, &pb->batch, pb->candidate);
  return in->kept;
}

static void *selection_reference_of(up_backend *be, const up_op_case *c, void *inputs, up_backend *ref) {
  selection_inputs *in = inputs;
  const up_op_paged_batch *pb = &in->pb;
  selection_reference *r = up_calloc_or_die(1, sizeof *r, "selection reference");
  r->c = c;
  const int32_t n = c->sample > 0 && c->sample < pb->n_seqs ? c->sample : pb->n_seqs;
  int64_t *spread = up_malloc_or_die(sizeof(int64_t) * (size_t)(pb->n_seqs + 1), "sampled sequences");
  up_op_sample_rows(pb->n_seqs, n, spread);
  int32_t *seqs = up_malloc_or_die(sizeof(int32_t) * (size_t)(n + 1), "sampled sequences");
  for (int32_t k = 0; k < n; ++k) seqs[k] = (int32_t)spread[k];
  up_op_host_batch_of_sequences(be, pb, seqs, n, &r->hb);
  free(spread);
  free(seqs);
  r->kept_rows = up_malloc_or_die(sizeof(int32_t) * (size_t)(r->hb.batch.n_tokens + 1), "reference kept rows");
  r->new_cu = up_calloc_or_die((size_t)n + 1, sizeof(int32_t), "reference offsets");
  call_select(ref, c, r->kept_rows, r->new_cu, r->hb.qkv, &r->hb.pool, &r->hb.batch, r->hb.candidate);
  return r;
}

int32_t *up_op_selection_kept_rows(up_backend *be, void *inputs, int32_t *n_kept) {
  selection_inputs *in = inputs;
  *n_kept = in->kept;
  return up_op_download_i32(be, in->keep_rows, (size_t)in->kept, "kept rows under test");
}

/* Rows in exactly one of two ascending lists. */
static int32_t symmetric_difference(const int32_t *a, int32_t na, int32_t a_base, const int32_t *b, int32_t nb,
                                    int32_t b_base) {
  int32_t i = 0, j = 0, differ = 0;
  while (i < na || j < nb) {
    const int64_t x = i < na ? (int64_t)a[i] - a_base : INT64_MAX, y = j < nb ? (int64_t)b[j] - b_base : INT64_MAX;
    differ += x != y;
    if (x <= y) ++i;
    if (y <= x) ++j;
  }
  return differ;
}

double up_op_selection_margin(const up_op_host_batch *hb, const up_attn_shape *shape, const up_select_params *prm) {
  const int32_t stride = (shape->n_heads + 2 * shape->n_kv_heads) * shape->head_dim;
  double margin = INFINITY;
  for (int32_t s = 0; s < hb->batch.n_seqs; ++s) {
    const int32_t first = hb->cu_seqlens[s], n = hb->cu_seqlens[s + 1] - first;
    if (!hb->candidate[s] || n <= prm->sink + prm->last_q) continue;
    double *scores = up_malloc_or_die(sizeof(double) * (size_t)n, "token scores");
    up_select_token_scores(hb->qkv + (size_t)first * (size_t)stride, n, &hb->pool,
                           hb->block_tables + (size_t)s * (size_t)hb->batch.max_blocks_per_seq, shape, prm->last_q,
                           scores);
    const int32_t nb = (n + prm->block - 1) / prm->block;
    double *block_scores = up_calloc_or_die((size_t)nb, sizeof(double), "block scores");
    uint8_t *keep = up_malloc_or_die((size_t)nb, "block choice");
    for (int32_t t = 0; t < n; ++t) block_scores[t / prm->block] += scores[t];
    const int32_t kept = up_select_blocks(block_scores, nb, prm->top_p, prm->keep_fraction, keep);
    double total = 0.0, sum_kept = 0.0, min_kept = INFINITY, max_dropped = 0.0;
    for (int32_t b = 0; b < nb; ++b) {
      total += block_scores[b];
      if (keep[b]) {
        sum_kept += block_scores[b];
        min_kept = fmin(min_kept, block_scores[b]);
      } else {
        max_dropped = fmax(max_dropped, block_scores[b]);
      }
    }
    /* The gap between the lowest kept and the highest dropped block, and for top-p how
     * far the sums before the first dropped and the last kept rank lie from p. */
    const int top_p_mode = prm->keep_fraction <= 0.0f && prm->top_p < 1.0f;
    if (kept < nb && (top_p_mode || prm->keep_fraction > 0.0f)) margin = fmin(margin, (min_kept - max_dropped) / min_kept);
    if (top_p_mode) {
      const double limit = (double)prm->top_p * total;
      if (kept < nb) margin = fmin(margin, (sum_kept - limit) / total);
      if (kept > 1) margin = fmin(margin, (limit - (sum_kept - min_kept)) / total);
    }
    free(scores);
    free(block_scores);
    free(keep);
  }
  return margin;
}

static void selection_compare(up_backend *be, const up_op_case *c, void *inputs, const void *reference,
                              up_op_check *check) {
  selection_inputs *in = inputs;
  const selection_reference *r = reference;
  const up_op_paged_batch *pb = &in->pb;
  int32_t kept = 0;
  int32_t *got = up_op_selection_kept_rows(be, inputs, &kept);
  double worst = 0.0;
  int32_t worst_seq = -1, differ_at_worst = 0;
  for (int32_t k = 0; k < r->hb.batch.n_seqs; ++k) {
    const int32_t s = r->hb.source_seq[k], rows = pb->cu_seqlens[s + 1] - pb->cu_seqlens[s];
    const int32_t lo = in->new_cu_host[s], hi = in->new_cu_host[s + 1];
    const int32_t ok_range = lo >= 0 && lo <= hi && hi <= kept;
    const int32_t differ = ok_range ? symmetric_difference(got + lo, hi - lo, pb->cu_seqlens[s],
                                                           r->kept_rows + r->new_cu[k], r->new_cu[k + 1] - r->new_cu[k],
                                                           r->hb.cu_seqlens[k])
                                    : rows;
    const double share = rows > 0 ? (double)differ / rows : (differ ? 1.0 : 0.0);
    if (share > worst || worst_seq < 0) {
      worst = share;
      worst_seq = s;
      differ_at_worst = differ;
    }
  }
  free(got);
  check->error = worst;
  check->near_tie = worst > 0.0 && up_op_selection_margin(&r->hb, &c->batch.shape, &c->batch.select) <
                                       UP_SELECT_NEAR_TIE;
  snprintf(check->detail, sizeof check->detail,
           "%d seqs (%d compared), %d rows, %s %.2f, block %d sink %d last_q %d: kept %d; worst seq %d, %d rows differ",
           (int)pb->n_seqs, (int)r->hb.batch.n_seqs, (int)pb->n_tokens,
           c->batch.select.keep_fraction > 0.0f ? "keep" : "top-p",
           (double)(c->batch.select.keep_fraction > 0.0f ? c->batch.select.keep_fraction : c->batch.select.top_p),
           (int)c->batch.select.block, (int)c->batch.select.sink, (int)c->batch.select.last_q, (int)kept,
           (int)worst_seq, (int)differ_at_worst);
}

static void selection_free_reference(void *reference) {
  selection_reference *r = reference;
  up_op_host_batch_free(&r->hb);
  free(r->kept_rows);
  free(r->new_cu);
  free(r);
}

static void selection_destroy(up_backend *be, void *inputs) {
  selection_inputs *in = inputs;
  up_op_paged_batch_free(be, &in->pb);
  be->ops->free(be, in->keep_rows);
  free(in->new_cu_host);
  free(in);
}

/* Two passes of the last queries over every entry of a scored sequence. */
static double selection_work(const up_op_case *c) {
  const up_op_batch_dims *d = &c->batch;
  double rows = 0.0;
  for (int32_t s = 0; s < d->n_seqs; ++s) rows += up_op_batch_rows(d, s);
  const double share = c->sample > 0 && c->sample < d->n_seqs ? (double)c->sample / d->n_seqs : 1.0;
  /* One score pass over every key, as in the kernels table (launcher/kernels/kernel_cases.c). */
  return share * rows * 2.0 * d->select.last_q * d->shape.n_heads * d->shape.head_dim;
}

const up_op_driver up_op_selection = {{"method_kernel"}, selection_make, selection_run, selection_reference_of,
                                      selection_compare, selection_free_reference, selection_destroy,
                                      selection_work};
