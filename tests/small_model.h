/* small_model.h — the small random llama the engine tests run forwards through (the
 * tiny-llama preset cut to 4 layers of hidden 64, 4 query and 2 KV heads of 16, vocab
 * 512, drops after layers 1 and 2), seeded prompts for it, UniPrefill resolved against
 * it, and the normalised logit difference the tests bound. */
#ifndef UP_TESTS_SMALL_MODEL_H
#define UP_TESTS_SMALL_MODEL_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/methods/method.h"
#include "engine/model/model_config.h"

enum { SMALL_N_LAYERS = 4, SMALL_VOCAB = 512 };

static inline up_model_config small_config(void) {
  up_model_config cfg = *up_model_preset_find("tiny-llama");
  cfg.n_layers = SMALL_N_LAYERS;
  cfg.hidden = 64;
  cfg.n_heads = 4;
  cfg.n_kv_heads = 2;
  cfg.head_dim = 16;
  cfg.intermediate = 128;
  cfg.vocab = SMALL_VOCAB;
  cfg.n_drop_layers = 2;
  cfg.drop_layers[0] = 1;
  cfg.drop_layers[1] = 2;
  return cfg;
}

/* n tokens of a xorshift stream drawn from seed. */
static inline void random_prompt(int32_t *tokens, int32_t n, uint32_t seed) {
  uint32_t x = seed * 2654435761u + 1;
  for (int32_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    tokens[i] = (int32_t)(x % SMALL_VOCAB);
  }
}

/* max |a - b| over max |b|. */
static inline double max_rel_diff(const float *a, const float *b, int32_t n) {
  double diff = 0.0, scale = 0.0;
  for (int32_t i = 0; i < n; ++i) {
    cr_assert(!isnan(a[i]) && !isnan(b[i]), "NaN in logits at %d", i);
    diff = fmax(diff, fabs((double)a[i] - b[i]));
    scale = fmax(scale, fabs((double)b[i]));
  }
  return diff / scale;
}

/* A method spec (e.g. "dense") resolved against the small model. */
static inline up_method_spec small_spec(const char *text) {
  up_method_spec spec;
  const up_model_config cfg = small_config();
  char err[256];
  cr_assert(up_method_spec_parse(text, NULL, &spec, err, sizeof err), "%s: %s", text, err);
  cr_assert(up_method_spec_resolve(&spec, &cfg, err, sizeof err), "%s", err);
  return spec;
}

/* UniPrefill at the small model's drop layers with the given top-p and fixed budget (0: off). */
static inline up_method_spec uniprefill_spec(float top_p, float keep_fraction) {
  char text[96];
  snprintf(text, sizeof text, "uniprefill:p=%.9g:keep=%.9g", (double)top_p, (double)keep_fraction);
  return small_spec(text);
}

/* An instance of a resolved spec on a backend. */
static inline up_method small_method(const up_method_spec *spec, up_backend *be) {
  up_method m;
  char err[256];
  cr_assert(up_method_init(&m, spec, be, err, sizeof err), "%s: %s", spec->label, err);
  return m;
}

#endif
