/* method.c — what every method shares beyond its spec text (method_options.c):
 * resolving a spec against the model, instances (supports, init, destroy), the
 * questions the launcher asks a method instead of naming it, and the causal work a
 * layer's attention is measured against. */
#include "engine/methods/method.h"

#include <string.h>

#include "core/fatal.h"

bool up_method_spec_resolve(up_method_spec *spec, const up_model_config *cfg, char *err, size_t err_size) {
  char why[512] = "";
  if (!spec->method->resolve || spec->method->resolve(spec->options, cfg, why, sizeof why)) return true;
  snprintf(err, err_size, "method '%s': %s", spec->label, why);
  return false;
}

const up_method_option *up_method_spec_option_for_attr(const up_method_spec *spec, const char *attr) {
  for (int32_t i = 0; i < spec->method->n_options; ++i) {
    const up_method_option *o = &spec->method->options[i];
    if (o->run_file_attr && strcmp(o->run_file_attr, attr) == 0) return o;
  }
  return NULL;
}

double up_method_spec_number(const up_method_spec *spec, const up_method_option *option) {
  const unsigned char *at = spec->options + option->offset;
  return option->kind == UP_OPTION_REAL ? (double)*(const float *)(const void *)at
                                        : (double)*(const int32_t *)(const void *)at;
}

const up_layer_list *up_method_spec_layers(const up_method_spec *spec, const up_method_option *option) {
  return (const up_layer_list *)(const void *)(spec->options + option->offset);
}

static const up_method_ops *reference_method(void) {
  const up_method_ops *dense = up_method_find("dense");
  UP_ASSERT(dense != NULL, "the registry has no dense method");
  return dense;
}

bool up_method_spec_is_reference(const up_method_spec *spec) { return spec->method == reference_method(); }

void up_method_spec_reference(up_method_spec *spec) { up_method_spec_default(spec, reference_method()); }

bool up_method_init(up_method *m, const up_method_spec *spec, up_backend *be, char *err, size_t err_size) {
  *m = (up_method){.ops = spec->method, .spec = *spec, .state = NULL};
  if (spec->method->supports && !spec->method->supports(spec, be, err, err_size)) return false;
  return !spec->method->init || spec->method->init(m, be, err, err_size);
}

void up_method_destroy(up_method *m) {
  if (m->spec.method && m->spec.method->destroy) m->spec.method->destroy(m);
  m->state = NULL;
}

bool up_method_drops_tokens(const up_method *m, int32_t n_layers) {
  for (int32_t l = 0; m->ops->drops_after && l < n_layers; ++l)
    if (m->ops->drops_after(m, l)) return true;
  return false;
}

double up_method_causal_pairs(const up_method_layer *at) {
  double pairs = 0.0;
  for (int32_t s = 0; s < at->n_seqs; ++s) {
    const double rows = at->cu_seqlens_host[s + 1] - at->cu_seqlens_host[s];
    const double before = at->kv_lens_host[s] - rows; /* entries cached by earlier steps */
    pairs += rows * before + rows * (rows + 1.0) / 2.0;
  }
  return pairs;
}

double up_method_window_pairs(const up_method_layer *at, int32_t window) {
  if (window <= 0) return up_method_causal_pairs(at);
  double pairs = 0.0;
  for (int32_t s = 0; s < at->n_seqs; ++s) {
    const int64_t rows = at->cu_seqlens_host[s + 1] - at->cu_seqlens_host[s];
    const int64_t first = at->kv_lens_host[s] - rows; /* cache index of the first row */
    for (int64_t i = first; i < first + rows; ++i) pairs += (double)(i + 1 < window ? i + 1 : window);
  }
  return pairs;
}
