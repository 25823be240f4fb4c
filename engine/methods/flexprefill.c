/* flexprefill.c — FlexPrefill's context-aware sparse prefill (../shared/BASELINES.md
 * 2): on every full-attention layer, each whole-prompt prefill longer than the
 * authors' dense threshold gets per-head 128 x 128 blocks chosen by gamma coverage of
 * its last-block attention (vertical-slash, or the global pooled cover for heads the
 * Jensen-Shannon test calls query-aware), and attends through the block-sparse kernel;
 * decode rows, short prompts and other layers stay dense. Defaults are the authors'
 * Llama-3.1-8B scripts (gamma 0.95, tau 0.1, min_budget 1024). Owns the options and
 * the hook; the kernels are kernels/sparse_attention_ops.h. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "engine/methods/sparse_method.h"

typedef struct flexprefill_options {
  float density_cap;
  float gamma;
  float tau;
  int32_t min_budget;
  int32_t max_budget;
  up_sparse_layers layers; /* resolved */
} flexprefill_options;

_Static_assert(sizeof(flexprefill_options) <= UP_METHOD_OPTIONS_BYTES, "FlexPrefill options outgrow a spec");

enum { FLEXPREFILL_BLOCK = 128 };

static const up_method_option flexprefill_option_table[] = {
    {"gamma", UP_OPTION_REAL, offsetof(flexprefill_options, gamma), 0.0, 1.0, true, "0.95", NULL,
     "attention coverage each head's selection must reach, 0 < G <= 1"},
    {"tau", UP_OPTION_REAL, offsetof(flexprefill_options, tau), 0.0, 1.0, false, "0.1", NULL,
     "query-aware threshold on the sqrt Jensen-Shannon distance, 0 <= T <= 1 (0: no head is query-aware)"},
    {"min_budget", UP_OPTION_INT, offsetof(flexprefill_options, min_budget), 0.0, 1 << 24, false, "1024", NULL,
     "tokens each head keeps at least (as 128-blocks); prompts of up to max(256, this rounded up to 128) "
     "tokens stay dense"},
    {"max_budget", UP_OPTION_INT, offsetof(flexprefill_options, max_budget), 0.0, 1 << 24, false, "0", NULL,
     "tokens each head keeps at most per vertical or slash list (as 128-blocks), 0 = unlimited"},
    UP_SPARSE_DENSITY_OPTION(flexprefill_options),
};

static const flexprefill_options *options_of(const up_method *m) {
  return (const flexprefill_options *)(const void *)m->spec.options;
}

static bool flexprefill_resolve(void *options, const up_model_config *cfg, char *err, size_t err_size) {
  flexprefill_options *o = options; /* a max_budget below min_budget wins, as in the authors' clamp order */
  up_sparse_layers_resolve(&o->layers, cfg);
  return true;
}

static bool flexprefill_supports(const up_method_spec *spec, up_backend *be, char *why, size_t why_size) {
  const up_sparse_layers *layers = &((const flexprefill_options *)(const void *)spec->options)->layers;
  return up_sparse_method_supports(be, UP_FLEXPREFILL_ESTIMATE_KERNEL, layers, why, why_size);
}

static bool flexprefill_init(up_method *m, up_backend *be, char *err, size_t err_size) {
  return up_sparse_method_init(m, be, NULL, err, err_size);
}

/* The authors' dense fallback: n <= max(2 * block, ceil(min_budget / block) * block). */
static bool flexprefill_sparse_sequence(const up_method *m, int32_t n) {
  const int64_t B = FLEXPREFILL_BLOCK, budget = (options_of(m)->min_budget + B - 1) / B * B;
  return n > (2 * B > budget ? 2 * B : budget);
}

static int32_t no_columns(const up_method *m, int32_t layer) { return 0; }

static double flexprefill_estimate(const up_method *m, up_backend *be, const up_method_layer *at,
                                   up_sparse_pattern *pattern) {
  const flexprefill_options *o = options_of(m);
  const up_flexprefill_params params = {.gamma = o->gamma, .tau = o->tau, .min_budget = o->min_budget,
                                        .max_budget = o->max_budget, .block = FLEXPREFILL_BLOCK,
                                        .density_cap = o->density_cap};
  return up_flexprefill_estimate_kernel(be)(be, pattern, at->qkv, at->pool, at->batch, at->shape, &params);
}

/* Scores of the last block of queries against every key (BASELINES.md 4: 2 * 128 * n * d
 * per head). A query-aware head's pooled block attention (about n^2/64 more, 0.006% of
 * dense at 128K) is left out: which heads are query-aware is not known here. */
static double flexprefill_estimate_flops(const up_method *m, int32_t n, const up_attn_shape *shape) {
  const double last_q = n < FLEXPREFILL_BLOCK ? n : FLEXPREFILL_BLOCK;
  return 2.0 * last_q * n * shape->head_dim * shape->n_heads;
}

static const up_sparse_method_kind flexprefill_kind = {
    .block = FLEXPREFILL_BLOCK,
    .sparse_sequence = flexprefill_sparse_sequence,
    .max_columns = no_columns,
    .estimate = flexprefill_estimate,
    .estimate_flops = flexprefill_estimate_flops,
};

static void flexprefill_attention(const up_method *m, up_backend *be, const up_method_layer *at, void *out,
                                   up_attn_work *work) {
  up_sparse_method_attention(m, be, at, out, &flexprefill_kind, &options_of(m)->layers, work);
}

const up_method_ops up_method_flexprefill = {
    .name = "flexprefill",
    .usage = "flexprefill:gamma=G:tau=T:min_budget=N:max_budget=N:density=F",
    .summary = "FlexPrefill query-aware block-sparse attention on full-attention layers (all tokens kept)",
    .options = flexprefill_option_table,
    .n_options = (int32_t)(sizeof flexprefill_option_table / sizeof flexprefill_option_table[0]),
    .options_size = sizeof(flexprefill_options),
    .resolve = flexprefill_resolve,
    .supports = flexprefill_supports,
    .init = flexprefill_init,
    .destroy = up_sparse_method_destroy,
    .attention = flexprefill_attention,
};
