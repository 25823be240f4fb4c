/* xattention.c — XAttention's antidiagonal-scored block-sparse prefill
 * (../shared/BASELINES.md 3, the Triton path's semantics): on every full-attention
 * layer, each whole-prompt prefill gets per-head 128 x 128 blocks whose strided
 * antidiagonal scores reach the threshold (block 0 and the diagonal forced, the
 * crossing block kept; in the authors' first estimation chunk their code's walk, see
 * kernels/sparse_attention_ops.h), and attends through the block-sparse kernel; decode rows and
 * other layers stay dense. Owns the options (one threshold, or a per-head table file)
 * and the hook; the kernels are kernels/sparse_attention_ops.h. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/methods/head_table.h"
#include "engine/methods/sparse_method.h"

#include "core/fatal.h"

typedef struct xattention_options {
  float density_cap;
  float threshold;
  int32_t stride;
  char table[UP_METHOD_PATH_MAX];
  up_sparse_layers layers; /* resolved */
} xattention_options;

_Static_assert(sizeof(xattention_options) <= UP_METHOD_OPTIONS_BYTES, "XAttention options outgrow a spec");

enum { XATTENTION_BLOCK = 128 };

static const up_method_option xattention_option_table[] = {
    {"threshold", UP_OPTION_REAL, offsetof(xattention_options, threshold), 0.0, 1.0, true, "0.9", NULL,
     "share of each query block's estimated attention its kept blocks must reach, 0 < T <= 1"},
    {"stride", UP_OPTION_INT, offsetof(xattention_options, stride), 4.0, 16.0, false, "8", NULL,
     "antidiagonal stride of the estimate: 4, 8 or 16"},
    {"table", UP_OPTION_PATH, offsetof(xattention_options, table), 0.0, 0.0, false, "", NULL,
     "per-head thresholds file of 'LAYER HEAD T' lines for every layer and head (replaces threshold)"},
    UP_SPARSE_DENSITY_OPTION(xattention_options),
};

static const xattention_options *options_of(const up_method *m) {
  return (const xattention_options *)(const void *)m->spec.options;
}

/* A table line's threshold: the option's range. */
static bool check_table_threshold(const double *t, char *why, size_t why_size) {
  if (t[0] > 0.0 && t[0] <= 1.0) return true;
  return up_error(why, why_size, "threshold %g must be in (0, 1]", t[0]);
}

static const up_head_table_form xattention_table_form = {1, "LAYER HEAD T", check_table_threshold};

/* The per-head thresholds of every layer [n_layers * n_heads] from the table file, or
 * NULL (with the reason in err) when it does not fit the model. */
static float *load_thresholds(const xattention_options *o, char *err, size_t err_size) {
  const size_t n = (size_t)o->layers.n_layers * (size_t)o->layers.n_heads;
  double *table = malloc(sizeof(double) * (n ? n : 1));
  float *thresholds = malloc(sizeof(float) * (n ? n : 1));
  bool ok = table && thresholds;
  if (!ok) up_error(err, err_size, "out of memory for XAttention's thresholds");
  ok = ok && up_head_table_load(o->table, o->layers.n_layers, o->layers.n_heads, &xattention_table_form, table, err,
                                err_size);
  for (size_t i = 0; ok && i < n; ++i) thresholds[i] = (float)table[i];
  free(table);
  if (!ok) {
    free(thresholds);
    return NULL;
  }
  return thresholds;
}

/* The table file is read here too, so a file that does not fit the model is refused
 * before anything runs. */
static bool xattention_resolve(void *options, const up_model_config *cfg, char *err, size_t err_size) {
  xattention_options *o = options;
  if (o->stride != 4 && o->stride != 8 && o->stride != 16)
    return up_error(err, err_size, "option stride: %d is not 4, 8 or 16", (int)o->stride);
  up_sparse_layers_resolve(&o->layers, cfg);
  if (!o->table[0]) return true;
  float *thresholds = load_thresholds(o, err, err_size);
  free(thresholds);
  return thresholds != NULL;
}

static bool xattention_supports(const up_method_spec *spec, up_backend *be, char *why, size_t why_size) {
  const up_sparse_layers *layers = &((const xattention_options *)(const void *)spec->options)->layers;
  return up_sparse_method_supports(be, UP_XATTENTION_ESTIMATE_KERNEL, layers, why, why_size);
}

/* The method's extra state: the table's thresholds, or NULL for one threshold. */
static bool xattention_init(up_method *m, up_backend *be, char *err, size_t err_size) {
  const xattention_options *o = options_of(m);
  float *thresholds = NULL;
  if (o->table[0] && !(thresholds = load_thresholds(o, err, err_size))) return false;
  return up_sparse_method_init(m, be, thresholds, err, err_size);
}

/* No length threshold in the authors' code: one block is trivially dense. */
static bool xattention_sparse_sequence(const up_method *m, int32_t n) { return n > 0; }

static int32_t no_columns(const up_method *m, int32_t layer) { return 0; }

static double xattention_estimate(const up_method *m, up_backend *be, const up_method_layer *at,
                                  up_sparse_pattern *pattern) {
  const xattention_options *o = options_of(m);
  const float *thresholds = up_sparse_method_extra(m);
  const up_xattention_params params = {
      .stride = o->stride,
      .threshold = o->threshold,
      .threshold_host = thresholds ? thresholds + (size_t)at->layer * o->layers.n_heads : NULL,
      .density_cap = o->density_cap};
  return up_xattention_estimate_kernel(be)(be, pattern, at->qkv, at->pool, at->batch, at->shape, &params);
}

/* The antidiagonal scores: (n/S)^2 / 2 causal reshaped pairs, each a dot of S * d
 * (BASELINES.md 4: n^2 d / S per head, 6.25% of dense attention at S = 8). */
static double xattention_estimate_flops(const up_method *m, int32_t n, const up_attn_shape *shape) {
  return (double)n * n * shape->head_dim * shape->n_heads / options_of(m)->stride;
}

static const up_sparse_method_kind xattention_kind = {
    .block = XATTENTION_BLOCK,
    .sparse_sequence = xattention_sparse_sequence,
    .max_columns = no_columns,
    .estimate = xattention_estimate,
    .estimate_flops = xattention_estimate_flops,
};

static void xattention_attention(const up_method *m, up_backend *be, const up_method_layer *at, void *out,
                                  up_attn_work *work) {
  up_sparse_method_attention(m, be, at, out, &xattention_kind, &options_of(m)->layers, work);
}

const up_method_ops up_method_xattention = {
    .name = "xattention",
    .usage = "xattention:threshold=T:stride=S:table=FILE:density=F",
    .summary = "XAttention antidiagonal-scored block-sparse attention on full-attention layers (all tokens kept)",
    .options = xattention_option_table,
    .n_options = (int32_t)(sizeof xattention_option_table / sizeof xattention_option_table[0]),
    .options_size = sizeof(xattention_options),
    .resolve = xattention_resolve,
    .supports = xattention_supports,
    .init = xattention_init,
    .destroy = up_sparse_method_destroy,
    .attention = xattention_attention,
};
