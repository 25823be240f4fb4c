/* minference.c — MInference's vertical-slash sparse prefill (../shared/BASELINES.md 1):
 * on every full-attention layer, each whole-prompt prefill gets per-head columns and
 * diagonals estimated from its last 64 queries, converted into 64-wide key ranges plus
 * extra keys, and attends through the block-sparse kernel; decode rows and other
 * layers stay dense, and every token flows through every layer. Owns the method's
 * options (uniform v/s, the authors' Llama-3.1-8B v2 sizes by default, or a per-head
 * table file) and its hook; the kernels are kernels/sparse_attention_ops.h. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "engine/methods/head_table.h"
#include "engine/methods/sparse_method.h"

#include "core/fatal.h"

typedef struct minference_options {
  float density_cap;
  int32_t vertical;
  int32_t slash;
  char table[UP_METHOD_PATH_MAX];
  up_sparse_layers layers; /* resolved */
} minference_options;

_Static_assert(sizeof(minference_options) <= UP_METHOD_OPTIONS_BYTES, "MInference options outgrow a spec");

enum { MINFERENCE_LAST_Q = 64, MINFERENCE_FORCED_COLUMNS = 30, MINFERENCE_FORCED_DIAGONALS = 100 };

static const up_method_option minference_option_table[] = {
    {"v", UP_OPTION_INT, offsetof(minference_options, vertical), 1.0, 1 << 24, false, "512", NULL,
     "vertical columns kept per head (the authors' Llama-3.1-8B table: 512; at least 30 are used)"},
    {"s", UP_OPTION_INT, offsetof(minference_options, slash), 1.0, 1 << 24, false, "2048", NULL,
     "diagonals kept per head (the authors' Llama-3.1-8B table: 2048; at least 50 are used)"},
    {"table", UP_OPTION_PATH, offsetof(minference_options, table), 0.0, 0.0, false, "", NULL,
     "per-head sizes file of 'LAYER HEAD V S' lines for every layer and head (replaces v and s; "
     "scripts/minference_table.py converts the authors' JSON)"},
    UP_SPARSE_DENSITY_OPTION(minference_options),
};

static const minference_options *options_of(const up_method *m) {
  return (const minference_options *)(const void *)m->spec.options;
}

/* Per-head sizes of every layer: [n_layers * n_heads] each. */
typedef struct minference_sizes {
  int32_t *vertical, *slash;
} minference_sizes;

enum { MINFERENCE_TABLE_MAX_SIZE = 1 << 24 };

/* A table line's v and s: whole numbers of columns and diagonals. */
static bool check_table_sizes(const double *vs, char *why, size_t why_size) {
  for (int i = 0; i < 2; ++i)
    if (vs[i] < 1 || vs[i] > MINFERENCE_TABLE_MAX_SIZE || vs[i] != floor(vs[i]))
      return up_error(why, why_size, "sizes v=%g s=%g must be in [1, %d] (whole numbers)", vs[0], vs[1],
                      MINFERENCE_TABLE_MAX_SIZE);
  return true;
}

static const up_head_table_form minference_table_form = {2, "LAYER HEAD V S", check_table_sizes};

static bool load_sizes(const minference_options *o, minference_sizes *sizes, char *err, size_t err_size) {
  const size_t n = (size_t)o->layers.n_layers * (size_t)o->layers.n_heads;
  sizes->vertical = malloc(sizeof(int32_t) * (n ? n : 1));
  sizes->slash = malloc(sizeof(int32_t) * (n ? n : 1));
  if (!sizes->vertical || !sizes->slash) return up_error(err, err_size, "out of memory for MInference's sizes");
  if (!o->table[0]) {
    for (size_t i = 0; i < n; ++i) {
      sizes->vertical[i] = o->vertical;
      sizes->slash[i] = o->slash;
    }
    return true;
  }
  double *table = malloc(sizeof(double) * 2 * (n ? n : 1));
  if (!table) return up_error(err, err_size, "out of memory for MInference's table");
  const bool ok =
      up_head_table_load(o->table, o->layers.n_layers, o->layers.n_heads, &minference_table_form, table, err, err_size);
  for (size_t i = 0; ok && i < n; ++i) {
    sizes->vertical[i] = (int32_t)table[2 * i];
    sizes->slash[i] = (int32_t)table[2 * i + 1];
  }
  free(table);
  return ok;
}

static void free_sizes(minference_sizes *sizes) {
  free(sizes->vertical);
  free(sizes->slash);
}

/* The table file is read here too, so a file that does not fit the model is refused
 * before anything runs. */
static bool minference_resolve(void *options, const up_model_config *cfg, char *err, size_t err_size) {
  minference_options *o = options;
  up_sparse_layers_resolve(&o->layers, cfg);
  minference_sizes sizes = {0};
  const bool ok = load_sizes(o, &sizes, err, err_size);
  free_sizes(&sizes);
  return ok;
}

static bool minference_supports(const up_method_spec *spec, up_backend *be, char *why, size_t why_size) {
  const up_sparse_layers *layers = &((const minference_options *)(const void *)spec->options)->layers;
  return up_sparse_method_supports(be, UP_MINFERENCE_ESTIMATE_KERNEL, layers, why, why_size);
}

static bool minference_init(up_method *m, up_backend *be, char *err, size_t err_size) {
  minference_sizes *sizes = calloc(1, sizeof *sizes);
  if (!sizes) return up_error(err, err_size, "out of memory for MInference's sizes");
  if (!load_sizes(options_of(m), sizes, err, err_size)) {
    free_sizes(sizes);
    free(sizes);
    return false;
  }
  return up_sparse_method_init(m, be, sizes, err, err_size);
}

static void minference_destroy(up_method *m) {
  minference_sizes *sizes = m->state ? up_sparse_method_extra(m) : NULL;
  if (sizes) free_sizes(sizes);
  up_sparse_method_destroy(m);
}

/* The authors run the sparse path on every prompt of two or more tokens. */
static bool minference_sparse_sequence(const up_method *m, int32_t n) { return n > 1; }

static int32_t minference_max_columns(const up_method *m, int32_t layer) {
  const minference_sizes *sizes = up_sparse_method_extra(m);
  const int32_t H = options_of(m)->layers.n_heads;
  int32_t most = MINFERENCE_FORCED_COLUMNS;
  for (int32_t h = 0; h < H; ++h)
    if (sizes->vertical[layer * H + h] > most) most = sizes->vertical[layer * H + h];
  return most;
}

static double minference_estimate(const up_method *m, up_backend *be, const up_method_layer *at,
                                  up_sparse_pattern *pattern) {
  const minference_sizes *sizes = up_sparse_method_extra(m);
  const int32_t H = options_of(m)->layers.n_heads;
  const up_minference_params params = {
      .last_q = MINFERENCE_LAST_Q,
      .forced_columns = MINFERENCE_FORCED_COLUMNS,
      .forced_diagonals = MINFERENCE_FORCED_DIAGONALS,
      .vertical_host = sizes->vertical + (size_t)at->layer * H,
      .slash_host = sizes->slash + (size_t)at->layer * H,
      .density_cap = options_of(m)->density_cap,
  };
  return up_minference_estimate_kernel(be)(be, pattern, at->qkv, at->pool, at->batch, at->shape, &params);
}

/* Scores of the last queries against every key (BASELINES.md 4: 2 * 64 * n * d per head). */
static double minference_estimate_flops(const up_method *m, int32_t n, const up_attn_shape *shape) {
  const double last_q = n < MINFERENCE_LAST_Q ? n : MINFERENCE_LAST_Q;
  return 2.0 * last_q * n * shape->head_dim * shape->n_heads;
}

static const up_sparse_method_kind minference_kind = {
    .block = 64,
    .sparse_sequence = minference_sparse_sequence,
    .max_columns = minference_max_columns,
    .estimate = minference_estimate,
    .estimate_flops = minference_estimate_flops,
};

static void minference_attention(const up_method *m, up_backend *be, const up_method_layer *at, void *out,
                                  up_attn_work *work) {
  up_sparse_method_attention(m, be, at, out, &minference_kind, &options_of(m)->layers, work);
}

const up_method_ops up_method_minference = {
    .name = "minference",
    .usage = "minference:v=V:s=S:table=FILE:density=F",
    .summary = "MInference vertical-slash sparse attention on full-attention layers (all tokens kept)",
    .options = minference_option_table,
    .n_options = (int32_t)(sizeof minference_option_table / sizeof minference_option_table[0]),
    .options_size = sizeof(minference_options),
    .resolve = minference_resolve,
    .supports = minference_supports,
    .init = minference_init,
    .destroy = minference_destroy,
    .attention = minference_attention,
};
