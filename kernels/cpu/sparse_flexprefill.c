/* sparse_flexprefill.c — the CPU reference of FlexPrefill's block selection
 * (kernels/sparse_attention_ops.h, ../shared/BASELINES.md 2.3): last-block queries'
 * token-level vertical and slash distributions, gamma-coverage budgets turned into
 * blocks the way the authors' code does (k // 128 + 1), the Jensen-Shannon
 * query-aware test against mean-pooled keys, forced block 0 and diagonal, and the
 * global gamma * nb cover for query-aware heads. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "kernels/cpu/sparse_ops.h"

/* Tokens needed to cover gamma of a distribution: the count of descending prefix sums
 * <= gamma, plus one (the authors' score_cover_topk). */
static int32_t cover_count(const double *scores, int32_t n, double gamma) {
  up_sparse_ranked *r = up_sparse_rank(scores, n);
  double sum = 0.0;
  int32_t count = 0;
  for (int32_t i = 0; i < n; ++i) {
    sum += r[i].score;
    if (sum <= gamma) ++count;
  }
  free(r);
  return count + 1;
}

static double dot(const float *a, const float *b, int32_t d) {
  double s = 0.0;
  for (int32_t c = 0; c < d; ++c) s += (double)a[c] * (double)b[c];
  return s;
}

/* Mean of rows [from, to) of x [.][d], divided by `divisor`, rounded to bf16. */
static void mean_rows(const float *x, int32_t from, int32_t to, int32_t d, double divisor, float *out) {
  for (int32_t c = 0; c < d; ++c) {
    double s = 0.0;
    for (int32_t t = from; t < to; ++t) s += x[(int64_t)t * d + c];
    out[c] = up_sparse_round_bf16((float)(s / divisor));
  }
}

/* sqrt of the Jensen-Shannon divergence (natural log); NaN when an entry is 0, as the
 * authors' formula gives. */
static double sqrt_js(const double *p, const double *q, int32_t n) {
  double a = 0.0, b = 0.0;
  for (int32_t i = 0; i < n; ++i) {
    const double m = (p[i] + q[i]) / 2.0;
    a += p[i] * log(p[i] / m);
    b += q[i] * log(q[i] / m);
  }
  return sqrt(0.5 * a + 0.5 * b);
}

int up_flexprefill_head_mask(const float *q, const float *k, int32_t n, int32_t d, const up_flexprefill_params *p,
                             uint8_t *mask, double *score) {
  const int32_t B = p->block, nb = (n + B - 1) / B, lq = B < n ? B : n;
  const double inv_sqrt_d = 1.0 / sqrt((double)d);
  float *qs = up_malloc_or_die(sizeof(float) * (size_t)lq * (size_t)d, "flexprefill queries");
  for (int32_t r = 0; r < lq; ++r)
    for (int32_t c = 0; c < d; ++c)
      qs[(int64_t)r * d + c] = up_sparse_round_bf16((float)(q[(int64_t)(n - lq + r) * d + c] * inv_sqrt_d));
  double *vert = up_calloc_or_die((size_t)n, sizeof(double), "flexprefill vertical");
  double *slash_o = up_calloc_or_die((size_t)n, sizeof(double), "flexprefill slash"); /* by offset */
  double *row = up_malloc_or_die(sizeof(double) * (size_t)n, "flexprefill row");
  for (int32_t r = 0; r < lq; ++r) {
    const int32_t i = n - lq + r;
    double max = -INFINITY, sum = 0.0;
    for (int32_t j = 0; j <= i; ++j) {
      row[j] = up_sparse_round_bf16((float)dot(qs + (int64_t)r * d, k + (int64_t)j * d, d));
      if (row[j] > max) max = row[j];
    }
    for (int32_t j = 0; j <= i; ++j) sum += exp(row[j] - max);
    for (int32_t j = 0; j <= i; ++j) {
      const double pr = (double)(float)(exp(row[j] - max) / sum);
      vert[j] += pr / lq;
      slash_o[i - j] += pr / lq;
    }
  }
  /* token t of the slash vector is offset n-1-t (the authors' diagonal sums) */
  double *slash = up_malloc_or_die(sizeof(double) * (size_t)n, "flexprefill slash by token");
  for (int32_t t = 0; t < n; ++t) slash[t] = slash_o[n - 1 - t];

  const int32_t min_blocks = (p->min_budget + B - 1) / B;
  int32_t max_blocks = p->max_budget > 0 ? (p->max_budget + B - 1) / B : nb;
  if (max_blocks > nb) max_blocks = nb;
  int32_t n_vertical = cover_count(vert, n, p->gamma) / 128 + 1;
  int32_t n_slash = cover_count(slash, n, p->gamma) / 128 + 1;
  if (n_vertical < min_blocks) n_vertical = min_blocks;
  if (n_vertical > max_blocks) n_vertical = max_blocks;
  if (n_slash < min_blocks) n_slash = min_blocks;
  if (n_slash > max_blocks) n_slash = max_blocks;

  double *vert_b = up_calloc_or_die((size_t)nb, sizeof(double), "flexprefill vertical blocks");
  double *slash_b = up_calloc_or_die((size_t)nb, sizeof(double), "flexprefill slash blocks");
  for (int32_t t = 0; t < n; ++t) {
    vert_b[t / B] += vert[t];
    slash_b[t / B] += slash[t];
  }

  /* the query-aware test: mean last query against mean-pooled keys, per block */
  float *kbar = up_malloc_or_die(sizeof(float) * (size_t)nb * (size_t)d, "flexprefill pooled keys");
  for (int32_t b = 0; b < nb; ++b) {
    const int32_t end = (b + 1) * B < n ? (b + 1) * B : n;
    mean_rows(k, b * B, end, d, end - b * B, kbar + (int64_t)b * d);
  }
  float *qbar = up_malloc_or_die(sizeof(float) * (size_t)d, "flexprefill mean query");
  mean_rows(qs, 0, lq, d, lq, qbar);
  double *a_est = up_malloc_or_die(sizeof(double) * (size_t)nb, "flexprefill block estimate");
  double max = -INFINITY, sum = 0.0;
  for (int32_t b = 0; b < nb; ++b) {
    a_est[b] = up_sparse_round_bf16((float)dot(qbar, kbar + (int64_t)b * d, d));
    if (a_est[b] > max) max = a_est[b];
  }
  for (int32_t b = 0; b < nb; ++b) sum += exp(a_est[b] - max);
  for (int32_t b = 0; b < nb; ++b) a_est[b] = (double)(float)(exp(a_est[b] - max) / sum);
  const int query_aware = sqrt_js(a_est, vert_b, nb) < p->tau; /* NaN: not query-aware */
  if (query_aware) n_vertical = n_slash = min_blocks < nb ? min_blocks : nb;

  if (score)
    for (int32_t i = 0; i < nb; ++i)
      for (int32_t j = 0; j <= i; ++j) score[(int64_t)i * nb + j] = vert_b[j] + slash_b[nb - 1 - (i - j)];

  vert_b[0] = INFINITY;
  slash_b[nb - 1] = INFINITY;
  memset(mask, 0, (size_t)nb * (size_t)nb);
  up_sparse_ranked *rv = up_sparse_rank(vert_b, nb), *rs = up_sparse_rank(slash_b, nb);
  for (int32_t i = 0; i < n_vertical; ++i)
    for (int32_t r = rv[i].index; r < nb; ++r) mask[(int64_t)r * nb + rv[i].index] = 1;
  for (int32_t i = 0; i < n_slash; ++i) {
    const int32_t off = nb - 1 - rs[i].index;
    for (int32_t r = off; r < nb; ++r) mask[(int64_t)r * nb + (r - off)] = 1;
  }
  mask[0] = 1; /* the authors' unused top-k slots point at block (0, 0) */
  free(rv);
  free(rs);

  if (query_aware) {
    /* block-causal pooled attention of every query block; keep the global gamma*nb cover */
    float *qblock = up_malloc_or_die(sizeof(float) * (size_t)d, "flexprefill block query");
    double *att = up_malloc_or_die(sizeof(double) * (size_t)nb * (size_t)nb, "flexprefill block attention");
    for (int32_t i = 0; i < nb; ++i) {
      const int32_t end = (i + 1) * B < n ? (i + 1) * B : n;
      mean_rows(q, i * B, end, d, B, qblock); /* zero-padded mean, then the last block rescaled */
      if (end - i * B < B)
        for (int32_t c = 0; c < d; ++c)
          qblock[c] = up_sparse_round_bf16(up_sparse_round_bf16(qblock[c] * (float)B) / (float)(end - i * B));
      for (int32_t c = 0; c < d; ++c) qblock[c] = up_sparse_round_bf16((float)(qblock[c] * inv_sqrt_d));
      double m = -INFINITY, z = 0.0;
      for (int32_t j = 0; j <= i; ++j) {
        att[(int64_t)i * nb + j] = up_sparse_round_bf16((float)dot(qblock, kbar + (int64_t)j * d, d));
        if (att[(int64_t)i * nb + j] > m) m = att[(int64_t)i * nb + j];
      }
      for (int32_t j = 0; j <= i; ++j) z += exp(att[(int64_t)i * nb + j] - m);
      for (int32_t j = 0; j < nb; ++j)
        att[(int64_t)i * nb + j] = j <= i ? (double)(float)(exp(att[(int64_t)i * nb + j] - m) / z) : 0.0;
    }
    up_sparse_ranked *ra = up_sparse_rank(att, nb * nb);
    double cum = 0.0;
    for (int32_t i = 0; i < nb * nb; ++i) {
      cum += ra[i].score;
      if (cum > (double)p->gamma * nb) break;
      mask[ra[i].index] = 1;
    }
    free(ra);
    free(att);
    free(qblock);
  }
  free(qs);
  free(vert);
  free(slash_o);
  free(slash);
  free(row);
  free(vert_b);
  free(slash_b);
  free(kbar);
  free(qbar);
  free(a_est);
  return query_aware;
}

typedef struct flexprefill_ctx {
  const up_flexprefill_params *params;
  uint8_t *mask;
  double *score; /* only under a density cap */
} flexprefill_ctx;

static void flexprefill_begin(void *ctx, int32_t n, int32_t nq) {
  flexprefill_ctx *f = ctx;
  (void)n;
  f->mask = up_malloc_or_die((size_t)nq * (size_t)nq, "flexprefill mask");
  f->score = f->params->density_cap < 1.0f
                 ? up_malloc_or_die(sizeof(double) * (size_t)nq * (size_t)nq, "flexprefill cap scores")
                 : NULL;
}

static void flexprefill_head(void *ctx, const up_sparse_head_input *in, up_sparse_rows *rows) {
  flexprefill_ctx *f = ctx;
  up_flexprefill_head_mask(in->q, in->k, in->n, in->head_dim, f->params, f->mask, f->score);
  if (f->score) up_sparse_block_cap(f->mask, f->score, in->nq, f->params->density_cap);
  up_sparse_rows_from_mask(rows, in->head, f->mask, in->nq, f->params->block);
}

static void flexprefill_end(void *ctx) {
  flexprefill_ctx *f = ctx;
  free(f->mask);
  free(f->score);
}

double up_cpu_flexprefill_estimate(up_backend *be, up_sparse_pattern *pattern, const void *qkv,
                                   const up_kv_pool *pool, const up_attn_batch *batch, const up_attn_shape *shape,
                                   const up_flexprefill_params *params) {
  const int32_t B = params->block;
  if (pattern->block_q != B || pattern->block_k != B)
    UP_FATAL("flexprefill_estimate: the pattern's blocks are %d x %d, the method's %d", (int)pattern->block_q,
             (int)pattern->block_k, (int)B);
  flexprefill_ctx ctx = {.params = params};
  const up_sparse_estimator est = {.kernel = "flexprefill_estimate", .block = B, .ctx = &ctx,
                                   .begin = flexprefill_begin, .head = flexprefill_head, .end = flexprefill_end};
  return up_sparse_estimate_heads(&est, pattern, qkv, pool, batch, shape);
}
