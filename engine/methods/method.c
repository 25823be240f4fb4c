/* method.c — method specs ("uniprefill:keep=0.3:p=0.95") and the hook tables of the
 * methods: dense (no hooks) and UniPrefill (token selection after its drop layers,
 * through the backend's selection op). */
#include "engine/methods/method.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *up_method_kind_name(up_method_kind kind) {
  return kind == UP_METHOD_UNIPREFILL ? "uniprefill" : "dense";
}

void up_method_spec_default(up_method_spec *spec, up_method_kind kind) {
  memset(spec, 0, sizeof *spec);
  spec->kind = kind;
  snprintf(spec->label, sizeof spec->label, "%s", up_method_kind_name(kind));
  spec->select.top_p = 0.99f;
  spec->select.keep_fraction = 0.0f;
  spec->select.block = 64;
  spec->select.sink = 128;
  spec->select.last_q = 128;
  spec->n_drop_layers = -1;
}

static bool parse_float_in(const char *text, double lo, double hi, bool lo_open, float *out) {
  char *end = NULL;
  errno = 0;
  const double v = strtod(text, &end);
  if (errno || end == text || *end != '\0' || !isfinite(v)) return false;
  if (v > hi || v < lo || (lo_open && v == lo)) return false;
  *out = (float)v;
  return true;
}

static bool parse_int_in(const char *text, long lo, long hi, int32_t *out) {
  char *end = NULL;
  errno = 0;
  const long v = strtol(text, &end, 10);
  if (errno || end == text || *end != '\0' || v < lo || v > hi) return false;
  *out = (int32_t)v;
  return true;
}

/* "7+11+15" -> ascending unique layer list. */
static bool parse_layer_list(const char *text, up_method_spec *spec) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s", text);
  int32_t n = 0;
  char *save = NULL;
  for (char *tok = strtok_r(buf, "+", &save); tok; tok = strtok_r(NULL, "+", &save)) {
    int32_t layer;
    if (n >= UP_MAX_LAYERS || !parse_int_in(tok, 0, UP_MAX_LAYERS - 1, &layer)) return false;
    spec->drop_layers[n++] = layer;
  }
  if (n == 0) return false;
  for (int32_t i = 1; i < n; ++i)
    if (spec->drop_layers[i] <= spec->drop_layers[i - 1]) return false;
  spec->n_drop_layers = n;
  return true;
}

bool up_method_spec_parse(const char *text, const up_method_spec *uniprefill_defaults, up_method_spec *out,
                          char *err, size_t err_size) {
  if (strlen(text) >= sizeof out->label) {
    snprintf(err, err_size, "method spec '%s' is longer than %zu characters", text, sizeof out->label - 1);
    return false;
  }
  char buf[sizeof out->label];
  snprintf(buf, sizeof buf, "%s", text);
  char *save = NULL;
  const char *name = strtok_r(buf, ":", &save);
  if (!name) {
    snprintf(err, err_size, "empty method name (known: dense, uniprefill)");
    return false;
  }
  if (strcmp(name, "dense") == 0) {
    up_method_spec_default(out, UP_METHOD_DENSE);
  } else if (strcmp(name, "uniprefill") == 0) {
    *out = *uniprefill_defaults;
    out->kind = UP_METHOD_UNIPREFILL;
  } else {
    snprintf(err, err_size, "unknown method '%s' (known: dense, uniprefill)", name);
    return false;
  }
  snprintf(out->label, sizeof out->label, "%s", text);
  for (char *opt = strtok_r(NULL, ":", &save); opt; opt = strtok_r(NULL, ":", &save)) {
    if (out->kind == UP_METHOD_DENSE) {
      snprintf(err, err_size, "method '%s': dense takes no options", text);
      return false;
    }
    char *eq = strchr(opt, '=');
    if (!eq) {
      snprintf(err, err_size, "method '%s': option '%s' is not key=value", text, opt);
      return false;
    }
    *eq = '\0';
    const char *key = opt, *value = eq + 1;
    bool ok;
    if (strcmp(key, "p") == 0) ok = parse_float_in(value, 0.0, 1.0, true, &out->select.top_p);
    else if (strcmp(key, "keep") == 0) ok = parse_float_in(value, 0.0, 1.0, false, &out->select.keep_fraction);
    else if (strcmp(key, "block") == 0) ok = parse_int_in(value, 1, 1 << 20, &out->select.block);
    else if (strcmp(key, "sink") == 0) ok = parse_int_in(value, 0, 1 << 24, &out->select.sink);
    else if (strcmp(key, "last_q") == 0) ok = parse_int_in(value, 1, 1 << 20, &out->select.last_q);
    else if (strcmp(key, "layers") == 0) ok = parse_layer_list(value, out);
    else {
      snprintf(err, err_size, "method '%s': unknown option '%s' (p, keep, block, sink, last_q, layers)", text, key);
      return false;
    }
    if (!ok) {
      snprintf(err, err_size, "method '%s': bad value '%s' for %s", text, value, key);
      return false;
    }
  }
  return true;
}

bool up_method_spec_resolve(up_method_spec *spec, const up_model_config *cfg, char *err, size_t err_size) {
  if (spec->kind == UP_METHOD_DENSE) {
    spec->n_drop_layers = 0;
    return true;
  }
  if (spec->n_drop_layers < 0) {
    spec->n_drop_layers = cfg->n_drop_layers;
    memcpy(spec->drop_layers, cfg->drop_layers, sizeof(int32_t) * (size_t)cfg->n_drop_layers);
  }
  for (int32_t i = 0; i < spec->n_drop_layers; ++i) {
    const int32_t l = spec->drop_layers[i];
    if (l < 0 || l >= cfg->n_layers) {
      snprintf(err, err_size, "method '%s': drop layer %d is outside model %s's layers 0..%d", spec->label, (int)l,
               cfg->name, (int)cfg->n_layers - 1);
      return false;
    }
    if (cfg->layer_kind[l] != UP_LAYER_FULL_ATTENTION) {
      snprintf(err, err_size, "method '%s': drop layer %d of %s is not a full-attention layer", spec->label,
               (int)l, cfg->name);
      return false;
    }
  }
  return true;
}

static bool uniprefill_drops_after(const up_method *m, int32_t layer) {
  for (int32_t i = 0; i < m->spec.n_drop_layers; ++i)
    if (m->spec.drop_layers[i] == layer) return true;
  return false;
}

static int32_t uniprefill_select(const up_method *m, up_backend *be, int32_t *keep_rows,
                                 int32_t *new_cu_seqlens_host, const void *qkv, const up_kv_pool *pool,
                                 const up_attn_batch *batch, const up_attn_shape *shape,
                                 const uint8_t *is_candidate_host) {
  return up_uniprefill_select(be, keep_rows, new_cu_seqlens_host, qkv, pool, batch, shape, is_candidate_host,
                              &m->spec.select);
}

static const up_method_ops g_dense_ops = {.name = "dense"};

static const up_method_ops g_uniprefill_ops = {
    .name = "uniprefill",
    .drops_after = uniprefill_drops_after,
    .select = uniprefill_select,
};

const up_method_ops *up_method_ops_for(up_method_kind kind) {
  return kind == UP_METHOD_UNIPREFILL ? &g_uniprefill_ops : &g_dense_ops;
}

void up_method_init(up_method *m, const up_method_spec *spec) {
  m->ops = up_method_ops_for(spec->kind);
  m->spec = *spec;
  m->state = NULL;
}
