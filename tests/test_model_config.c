/* test_model_config.c — presets carry the published shapes, arithmetic on configs
 * matches hand counts (parameters, prefill FLOPs as ALGORITHMS.md counts them), the
 * llama3 RoPE scaling keeps high frequencies, slows low ones by the factor and blends
 * the band between, and truncation and validation behave. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "engine/model/layer_cost.h"
#include "engine/model/model_config.h"

Test(model_config, llama_3_1_8b_shapes_and_parameters) {
  const up_model_config *c = up_model_preset_find("llama-3.1-8b");
  cr_assert_not_null(c);
  cr_assert_eq(c->n_layers, 32);
  cr_assert_eq(c->hidden, 4096);
  cr_assert_eq(c->n_heads, 32);
  cr_assert_eq(c->n_kv_heads, 8);
  cr_assert_eq(c->intermediate, 14336);
  cr_assert_eq(c->vocab, 128256);
  /* ALGORITHMS.md: parameters other than the input embedding and LM head, 6.98e9. */
  cr_assert(fabs((double)up_model_body_params(c) - 6.98e9) < 0.005e9, "%lld",
            (long long)up_model_body_params(c));
  const int32_t expect[] = {7, 11, 15, 19, 23, 27};
  cr_assert_eq(c->n_drop_layers, 6);
  for (int i = 0; i < 6; ++i) cr_assert_eq(c->drop_layers[i], expect[i]);
}

Test(model_config, prefill_flops_match_the_reference_count) {
  const up_model_config *c = up_model_preset_find("llama-3.1-8b");
  const double L = 8192.0;
  const double expect = 2.0 * (double)up_model_body_params(c) * L + 2.0 * 4096.0 * 128256.0 +
                        32.0 * 2.0 * L * L * 4096.0;
  cr_assert_float_eq(up_model_prefill_flops(c, 8192), expect, 1.0);
  /* ALGORITHMS.md: 258 ms at 1x8K is 510 TFLOP/s. */
  cr_assert(fabs(up_model_prefill_flops(c, 8192) / 0.258 / 1e12 - 510.0) < 3.0);
}

Test(model_config, llama3_rope_scaling) {
  const up_model_config *c = up_model_preset_find("llama-3.1-8b");
  float f[64];
  up_model_config_rope_inv_freq(c, f);
  const double pi = 3.14159265358979323846;
  for (int i = 0; i < 64; ++i) {
    const double base = 1.0 / pow(500000.0, 2.0 * i / 128.0);
    const double wavelen = 2.0 * pi / base;
    if (wavelen < 8192.0 / 4.0)
      cr_assert(fabs(f[i] - base) <= 1e-6 * base, "high frequency %d kept", i);
    else if (wavelen > 8192.0)
      cr_assert(fabs(f[i] - base / 8.0) <= 1e-6 * base, "low frequency %d divided by 8", i);
    else
      cr_assert(f[i] < base && f[i] > base / 8.0, "band frequency %d blended", i);
    if (i) cr_assert_lt(f[i], f[i - 1], "frequencies decrease");
  }
}

Test(model_config, truncate_and_validate) {
  up_model_config c = *up_model_preset_find("llama-3.1-8b");
  cr_assert(up_model_config_truncate(&c, 12));
  cr_assert_eq(c.n_layers, 12);
  cr_assert_eq(c.n_drop_layers, 2, "drops at 7 and 11 remain");
  cr_assert_str_eq(c.name, "llama-3.1-8b-12layers");
  cr_assert_not(up_model_config_truncate(&c, 13));
  char err[256];
  cr_assert(up_model_config_validate(&c, err, sizeof err), "%s", err);
  c.n_kv_heads = 5;
  cr_assert_not(up_model_config_validate(&c, err, sizeof err));
  cr_assert(strstr(err, "kv heads") != NULL, "%s", err);
  cr_assert_null(up_model_preset_find("no-such-model"));
}

Test(model_config, drop_layers_by_depth) {
  int32_t layers[UP_MAX_LAYERS];
  const int32_t at_32[] = {7, 11, 15, 19, 23, 27};
  cr_assert_eq(up_model_config_drop_layers_by_depth(32, layers), 6);
  for (int i = 0; i < 6; ++i) cr_assert_eq(layers[i], at_32[i], "the reference layers at the reference depth");
  const up_model_config *c70 = up_model_preset_find("llama-3.1-70b");
  const int32_t at_80[] = {17, 27, 37, 47, 57, 67};
  cr_assert_eq(c70->n_drop_layers, 6);
  for (int i = 0; i < 6; ++i) cr_assert_eq(c70->drop_layers[i], at_80[i], "70B preset: 8B's scaled by 2.5");
  cr_assert_eq(up_model_config_drop_layers_by_depth(2, layers), 2, "repeats are removed");
  cr_assert(layers[0] == 0 && layers[1] == 1);
  cr_assert_eq(up_model_config_drop_layers_by_depth(1, layers), 1);
  cr_assert_eq(layers[0], 0);
  for (int32_t depth = 1; depth <= UP_MAX_LAYERS; ++depth) {
    const int32_t n = up_model_config_drop_layers_by_depth(depth, layers);
    cr_assert(n >= 1 && n <= 6);
    for (int32_t i = 0; i < n; ++i) {
      cr_assert(layers[i] >= 0 && layers[i] < depth, "depth %d: layer %d in range", depth, layers[i]);
      if (i) cr_assert_gt(layers[i], layers[i - 1], "depth %d: ascending", depth);
    }
  }
  for (int32_t i = 0; i < up_model_preset_count(); ++i)
    cr_assert_eq(up_model_preset_at(i)->tie_word_embeddings, strcmp(up_model_preset_at(i)->architecture, "gemma3") == 0,
                 "%s: only the Gemma 3 presets tie their LM head to the embedding", up_model_preset_at(i)->name);
}
