/* test_gemma3.c — Gemma 3 in the engine: the presets' published shapes and layer
 * pattern (../shared/HYBRIDS.md B.2), per-type RoPE and attention scale, the weight
 * table's GGUF and Hugging Face names, windowed KV and attention cost, config
 * validation and the HF config reader, UniPrefill's drop-layer rules, the three CPU ops
 * Gemma adds against their formulas, and the forward's window (a sliding layer sees
 * only its last W entries). The logits against an independent recomputation are
 * checkpoint_tiny_gemma3_logits (tests/gemma3_reference_check.sh). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/checkpoint/hf_config.h"
#include "engine/methods/method.h"
#include "engine/methods/uniprefill.h"
#include "engine/model/arch.h"
#include "engine/model/layer_cost.h"
#include "engine/model/model.h"
#include "engine/model/model_config.h"
#include "engine/serve/generation.h"
#include "kernels/cpu/cpu_backend.h"

static const up_model_config *preset(const char *name) {
  const up_model_config *c = up_model_preset_find(name);
  cr_assert_not_null(c, "preset %s", name);
  return c;
}

/* --- presets ------------------------------------------------------------------------ */

Test(gemma3, presets_have_the_published_shapes_and_the_period_6_pattern) {
  const struct {
    const char *name;
    int32_t layers, hidden, heads, kv, head_dim, inter, window;
    float scalar;
    bool linear_x8;
  } want[] = {{"gemma-3-270m", 18, 640, 4, 1, 256, 2048, 512, 256, false},
              {"gemma-3-1b", 26, 1152, 4, 1, 256, 6912, 512, 256, false},
              {"gemma-3-4b", 34, 2560, 8, 4, 256, 10240, 1024, 256, true},
              {"gemma-3-12b", 48, 3840, 16, 8, 256, 15360, 1024, 256, true},
              {"gemma-3-27b", 62, 5376, 32, 16, 128, 21504, 1024, 168, true}};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; ++i) {
    const up_model_config *c = preset(want[i].name);
    char err[256] = "";
    cr_assert(up_model_config_validate(c, err, sizeof err), "%s: %s", c->name, err);
    cr_assert_str_eq(c->architecture, "gemma3");
    cr_assert(c->n_layers == want[i].layers && c->hidden == want[i].hidden && c->n_heads == want[i].heads &&
                  c->n_kv_heads == want[i].kv && c->head_dim == want[i].head_dim &&
                  c->intermediate == want[i].inter && c->sliding_window == want[i].window,
              "%s shape", c->name);
    cr_assert(c->tie_word_embeddings && c->scale_embeddings, "%s", c->name);
    cr_assert_eq(c->rope_scaling, want[i].linear_x8 ? UP_ROPE_SCALING_LINEAR : UP_ROPE_SCALING_NONE, "%s", c->name);
    cr_assert_float_eq(up_model_config_attention_scale(c), 1.0f / sqrtf(want[i].scalar), 1e-7f, "%s", c->name);
    for (int32_t l = 0; l < c->n_layers; ++l) {
      const bool global = (l + 1) % 6 == 0;
      cr_assert_eq(c->layer_kind[l], global ? UP_LAYER_FULL_ATTENTION : UP_LAYER_SLIDING_WINDOW, "%s layer %d",
                   c->name, (int)l);
      cr_assert_eq(c->mlp_kind[l], UP_MLP_GEGLU_TANH);
      cr_assert_eq(up_layer_window(c, l), global ? 0 : want[i].window);
    }
  }
  /* The 270M's parameters as HYBRIDS.md A.4 counts them: 268.1 M with the tied head once. */
  cr_assert_eq(up_model_total_params(preset("gemma-3-270m")), 268098176);
}

Test(gemma3, rope_is_per_layer_type) {
  const up_model_config *c = preset("gemma-3-12b");
  float global[128], sliding[128];
  up_model_config_rope_inv_freq(c, global);
  up_model_config_rope_inv_freq_sliding(c, sliding);
  for (int32_t i = 0; i < c->head_dim / 2; ++i) {
    const double e = (double)(2 * i) / c->head_dim;
    cr_assert_float_eq(global[i], (float)(pow(1e6, -e) / 8.0), 1e-6f * global[i] + 1e-30f, "global %d", (int)i);
    cr_assert_float_eq(sliding[i], (float)pow(1e4, -e), 1e-6f * sliding[i] + 1e-30f, "sliding %d", (int)i);
  }
  up_model_config_rope_inv_freq(preset("gemma-3-270m"), global); /* no scaling below 4B */
  cr_assert_float_eq(global[1], (float)pow(1e6, -2.0 / 256), 1e-9f);
}

Test(gemma3, uniprefill_defaults_are_global_layers) {
  const struct {
    const char *name;
    int32_t n;
    int32_t layers[3];
  } want[] = {{"gemma-3-270m", 2, {5, 11}}, {"gemma-3-1b", 3, {5, 11, 17}}, {"gemma-3-4b", 1, {29}},
              {"gemma-3-12b", 3, {29, 35, 41}}, {"gemma-3-27b", 3, {29, 35, 41}}};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; ++i) {
    const up_model_config *c = preset(want[i].name);
    cr_assert_eq(c->n_drop_layers, want[i].n, "%s", c->name);
    for (int32_t k = 0; k < want[i].n; ++k) {
      cr_assert_eq(c->drop_layers[k], want[i].layers[k], "%s drop %d", c->name, (int)k);
      cr_assert_eq(c->layer_kind[c->drop_layers[k]], UP_LAYER_FULL_ATTENTION);
    }
    cr_assert_eq(c->drop_min_rows, 1024);
    cr_assert_float_eq(c->default_top_p, 0.975f, 1e-7f);
  }
  /* The method resolves min_rows from the model and refuses a sliding drop layer. */
  up_method_spec spec;
  char err[512] = "";
  cr_assert(up_method_spec_parse("uniprefill", NULL, &spec, err, sizeof err), "%s", err);
  cr_assert(up_method_spec_resolve(&spec, preset("gemma-3-12b"), err, sizeof err), "%s", err);
  cr_assert_eq(up_uniprefill_options_of(&spec)->min_rows, 1024);
  cr_assert(up_method_spec_parse("uniprefill:layers=5+10", NULL, &spec, err, sizeof err), "%s", err);
  cr_assert_not(up_method_spec_resolve(&spec, preset("gemma-3-270m"), err, sizeof err));
  cr_assert(strstr(err, "drop layer 10") && strstr(err, "sliding-window") && strstr(err, "5+11+17"), "%s", err);
}

/* --- validation and config.json ------------------------------------------------------ */

Test(gemma3, validation_refuses_what_cannot_run) {
  char err[512] = "";
  up_model_config c = *preset("gemma-3-270m");
  c.sliding_window = c.max_context + 1;
  cr_assert_not(up_model_config_validate(&c, err, sizeof err));
  cr_assert(strstr(err, "sliding_window") && strstr(err, "larger than the context"), "%s", err);
  c = *preset("gemma-3-270m");
  c.final_logit_softcap = 30.0f;
  cr_assert_not(up_model_config_validate(&c, err, sizeof err));
  cr_assert(strstr(err, "final_logit_softcapping"), "%s", err);
  c = *preset("gemma-3-270m");
  c.drop_layers[0] = 4;
  cr_assert_not(up_model_config_validate(&c, err, sizeof err));
  cr_assert(strstr(err, "drop layer 4 is a sliding-window layer"), "%s", err);
  c = *preset("gemma-3-270m");
  c.mlp_kind[3] = UP_MLP_SWIGLU;
  cr_assert_not(up_model_config_validate(&c, err, sizeof err));
  cr_assert(strstr(err, "gemma3 layer 3") && strstr(err, "GeGLU"), "%s", err);
  up_model_config llama = *preset("tiny-llama");
  llama.layer_kind[2] = UP_LAYER_SLIDING_WINDOW;
  llama.sliding_window = 16;
  cr_assert_not(up_model_config_validate(&llama, err, sizeof err));
  cr_assert(strstr(err, "llama layer 2"), "%s", err);
}

static const char k_gemma3_270m_config[] =
    "{\"architectures\": [\"Gemma3ForCausalLM\"], \"model_type\": \"gemma3_text\", \"hidden_size\": 640,"
    " \"intermediate_size\": 2048, \"num_hidden_layers\": 18, \"num_attention_heads\": 4,"
    " \"num_key_value_heads\": 1, \"head_dim\": 256, \"vocab_size\": 262144, \"max_position_embeddings\": 32768,"
    " \"rms_norm_eps\": 1e-06, \"rope_theta\": 1000000.0, \"rope_local_base_freq\": 10000.0,"
    " \"rope_scaling\": null, \"query_pre_attn_scalar\": 256, \"sliding_window\": 512,"
    " \"layer_types\": [\"sliding_attention\", \"sliding_attention\", \"sliding_attention\", \"sliding_attention\","
    " \"sliding_attention\", \"full_attention\", \"sliding_attention\", \"sliding_attention\", \"sliding_attention\","
    " \"sliding_attention\", \"sliding_attention\", \"full_attention\", \"sliding_attention\", \"sliding_attention\","
    " \"sliding_attention\", \"sliding_attention\", \"sliding_attention\", \"full_attention\"],"
    " \"hidden_activation\": \"gelu_pytorch_tanh\", \"final_logit_softcapping\": null,"
    " \"attn_logit_softcapping\": null, \"torch_dtype\": \"bfloat16\"}";

Test(gemma3, hf_config_of_the_270m_matches_the_preset) {
  up_model_config cfg;
  char err[512] = "";
  cr_assert(up_hf_config_parse(k_gemma3_270m_config, strlen(k_gemma3_270m_config), "gemma-3-270m", "config.json",
                               &cfg, err, sizeof err),
            "%s", err);
  const up_model_config *p = preset("gemma-3-270m");
  cr_assert(cfg.n_layers == p->n_layers && cfg.hidden == p->hidden && cfg.head_dim == p->head_dim &&
            cfg.sliding_window == p->sliding_window && cfg.vocab == p->vocab && cfg.tie_word_embeddings);
  cr_assert(memcmp(cfg.layer_kind, p->layer_kind, sizeof cfg.layer_kind) == 0, "the listed types are the pattern");
  cr_assert(cfg.rope_theta == p->rope_theta && cfg.rope_sliding_theta == p->rope_sliding_theta &&
            cfg.rope_scaling == UP_ROPE_SCALING_NONE && cfg.query_pre_attn_scalar == 256.0f);
  cr_assert(cfg.n_drop_layers == 2 && cfg.drop_layers[0] == 5 && cfg.drop_layers[1] == 11);
  const struct {
    const char *from, *to, *says;
  } bad[] = {{"\"gelu_pytorch_tanh\"", "\"silu\"", "hidden_activation 'silu'"},
             {"\"sliding_window\": 512", "\"sliding_window\": 40000", "sliding_window 40000 is larger"},
             {"\"rope_scaling\": null", "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4}", "'yarn'"},
             {"\"final_logit_softcapping\": null", "\"final_logit_softcapping\": 30.0", "final_logit_softcapping"},
             {"\"full_attention\"]", "\"global\"]", "layer_types[17]"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
    char text[sizeof k_gemma3_270m_config + 128];
    const char *at = strstr(k_gemma3_270m_config, bad[i].from);
    cr_assert_not_null(at, "%s", bad[i].from);
    snprintf(text, sizeof text, "%.*s%s%s", (int)(at - k_gemma3_270m_config), k_gemma3_270m_config, bad[i].to,
             at + strlen(bad[i].from));
    cr_assert_not(up_hf_config_parse(text, strlen(text), "x", "config.json", &cfg, err, sizeof err), "%s", bad[i].to);
    cr_assert(strstr(err, "config.json: ") && strstr(err, bad[i].says), "'%s' in: %s", bad[i].says, err);
  }
}

/* --- the weight table ---------------------------------------------------------------- */

Test(gemma3, names_are_llama_cpp_and_transformers_ones) {
  const up_model_config *c = preset("gemma-3-270m");
  const struct {
    up_tensor_role role;
    int32_t part;
    const char *gguf, *hf;
    bool one_plus;
  } want[] = {{UP_TENSOR_ATTN_NORM, 0, "blk.3.attn_norm.weight", "model.layers.3.input_layernorm.weight", true},
              {UP_TENSOR_ATTN_QKV, 0, "blk.3.attn_q.weight", "model.layers.3.self_attn.q_proj.weight", false},
              {UP_TENSOR_ATTN_QKV, 1, "blk.3.attn_k.weight", "model.layers.3.self_attn.k_proj.weight", false},
              {UP_TENSOR_ATTN_Q_NORM, 0, "blk.3.attn_q_norm.weight", "model.layers.3.self_attn.q_norm.weight", true},
              {UP_TENSOR_ATTN_K_NORM, 0, "blk.3.attn_k_norm.weight", "model.layers.3.self_attn.k_norm.weight", true},
              {UP_TENSOR_ATTN_POST_NORM, 0, "blk.3.post_attention_norm.weight",
               "model.layers.3.post_attention_layernorm.weight", true},
              {UP_TENSOR_MLP_NORM, 0, "blk.3.ffn_norm.weight", "model.layers.3.pre_feedforward_layernorm.weight", true},
              {UP_TENSOR_MLP_POST_NORM, 0, "blk.3.post_ffw_norm.weight",
               "model.layers.3.post_feedforward_layernorm.weight", true},
              {UP_TENSOR_MLP_DOWN, 0, "blk.3.ffn_down.weight", "model.layers.3.mlp.down_proj.weight", false}};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; ++i) {
    up_file_tensor f;
    cr_assert(up_arch_file_tensor(c, want[i].role, 3, want[i].part, &f), "%s", want[i].gguf);
    cr_assert_str_eq(f.gguf_name, want[i].gguf);
    cr_assert_str_eq(f.hf_name, want[i].hf);
    cr_assert_eq(f.hf_one_plus, want[i].one_plus, "%s", want[i].hf);
    cr_assert_eq(f.gguf_rotary_head_dim, 0, "Gemma's converter does not permute %s", want[i].gguf);
  }
  up_file_tensor q_norm, head;
  cr_assert(up_arch_file_tensor(c, UP_TENSOR_ATTN_Q_NORM, 0, 0, &q_norm));
  cr_assert(q_norm.rows == 1 && q_norm.cols == 256);
  cr_assert(up_arch_file_tensor(c, UP_TENSOR_LM_HEAD, -1, 0, &head));
  cr_assert_str_eq(head.gguf_name, "token_embd.weight", "the tied head is the embedding");
  cr_assert(up_arch_file_tensor(c, UP_TENSOR_FINAL_NORM, -1, 0, &head));
  cr_assert(head.hf_one_plus && strcmp(head.hf_name, "model.norm.weight") == 0);
}

/* --- cost and memory --------------------------------------------------------------- */

Test(gemma3, sliding_layers_hold_and_cost_their_window) {
  const up_model_config *c = preset("gemma-3-270m");
  const int64_t entry = up_attention_kv_entry_bytes(c, UP_DTYPE_BF16);
  const int64_t lengths[] = {1, 511, 512, 513, 8192};
  for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; ++i) {
    const int64_t L = lengths[i], sliding = L < 512 ? L : 512;
    cr_assert_eq(up_model_dense_kv_bytes(c, UP_DTYPE_BF16, L), (3 * L + 15 * sliding) * entry, "%lld", (long long)L);
  }
  /* Windowed attention FLOPs against a count of every (query, key) pair the mask allows. */
  const int64_t q_lens[] = {1, 7, 600, 1000}, k_len = 1000;
  for (size_t i = 0; i < sizeof q_lens / sizeof q_lens[0]; ++i) {
    double pairs = 0.0;
    for (int64_t q = k_len - q_lens[i]; q < k_len; ++q) pairs += (double)(q + 1 < 512 ? q + 1 : 512);
    const double want = 4.0 * (pairs - 0.5 * (double)q_lens[i]) * 4 * 256;
    cr_assert_float_eq(up_layer_attention_flops(c, 0, q_lens[i], k_len), want, 1e-9 * want, "%lld queries",
                       (long long)q_lens[i]);
  }
  /* A global layer keeps the causal count; a short prompt does not reach the window. */
  cr_assert(up_layer_attention_flops(c, 5, 1000, 1000) == 2.0 * 1000 * 1000 * 4 * 256);
  cr_assert(up_layer_attention_flops(c, 0, 300, 300) == up_layer_attention_flops(c, 5, 300, 300));
}

/* --- the CPU ops Gemma adds ---------------------------------------------------------- */

Test(gemma3, cpu_ops_follow_their_formulas) {
  up_backend *be = up_cpu_backend_create(1);
  enum { ROWS = 3, INTER = 5, HEADS = 2, KV = 1, HD = 4, STRIDE = (HEADS + 2 * KV) * HD };
  float gate_up[ROWS * 2 * INTER], out[ROWS * INTER];
  for (int i = 0; i < ROWS * 2 * INTER; ++i) gate_up[i] = (float)(i % 7) - 3.2f + 0.1f * (float)i;
  be->ops->geglu(be, out, gate_up, ROWS, INTER);
  for (int r = 0; r < ROWS; ++r)
    for (int i = 0; i < INTER; ++i) {
      const double g = gate_up[r * 2 * INTER + i], u = gate_up[r * 2 * INTER + INTER + i];
      const double want = 0.5 * g * (1.0 + tanh(sqrt(2.0 / 3.14159265358979323846) * (g + 0.044715 * g * g * g))) * u;
      cr_assert_float_eq(out[r * INTER + i], want, 1e-5 * (fabs(want) + 1), "geglu %d %d", r, i);
    }
  float qkv[ROWS * STRIDE], before[ROWS * STRIDE];
  const float weight[HD] = {1.5f, 0.25f, 1.0f, 2.0f};
  for (int i = 0; i < ROWS * STRIDE; ++i) before[i] = qkv[i] = (float)((i * 37) % 11) - 5.0f;
  be->ops->head_rmsnorm(be, qkv, weight, ROWS, STRIDE, HEADS * HD, KV, HD, 1e-6f); /* the key heads */
  for (int r = 0; r < ROWS; ++r)
    for (int c = 0; c < STRIDE; ++c) {
      const bool key = c >= HEADS * HD && c < (HEADS + KV) * HD;
      double want = before[r * STRIDE + c];
      if (key) {
        const float *head = before + r * STRIDE + HEADS * HD;
        double ss = 0.0;
        for (int i = 0; i < HD; ++i) ss += (double)head[i] * head[i];
        want = want / sqrt(ss / HD + 1e-6) * weight[(c - HEADS * HD) % HD];
      }
      cr_assert_float_eq(qkv[r * STRIDE + c], want, 1e-5 * (fabs(want) + 1), "row %d col %d (%s)", r, c,
                         key ? "key head" : "untouched");
    }
  float values[4] = {1.0f, -2.0f, 0.5f, 0.0f};
  be->ops->scale(be, values, 4, 25.25f);
  cr_assert(values[0] == 25.25f && values[1] == -50.5f && values[2] == 12.625f && values[3] == 0.0f);
  be->ops->destroy(be);
}

/* --- the forward's window ------------------------------------------------------------ */

/* A small random Gemma of n_layers whose global layers are every `period`-th (1000: all
 * sliding, window 4 either way), run with a method spec for max_new tokens: the last
 * prompt row's logits, the prompt rows entering each layer and the tokens generated. */
typedef struct small_run {
  float logits[64];
  int32_t layer_rows[8];
  int32_t tokens[8];
  int32_t n_tokens;
} small_run;

static small_run run_small(int32_t n_layers, int32_t period, const char *method, const int32_t *tokens, int32_t n,
                           int32_t max_new) {
  up_model_config cfg = *preset("gemma-3-270m");
  cfg.n_layers = n_layers;
  cfg.hidden = 32;
  cfg.n_heads = 2;
  cfg.n_kv_heads = 1;
  cfg.head_dim = 16;
  cfg.intermediate = 48;
  cfg.vocab = 64;
  cfg.sliding_window = 4;
  up_model_config_set_sliding_pattern(&cfg, period);
  up_model_config_gemma3_uniprefill_defaults(&cfg);
  char err[256] = "";
  cr_assert(up_model_config_validate(&cfg, err, sizeof err), "%s", err);
  up_backend *be = up_cpu_backend_create(1);
  up_model *model = up_model_create_random(&cfg, be, 5);
  up_generator *gen = up_generator_create(model, 1, n, max_new, err, sizeof err);
  cr_assert_not_null(gen, "%s", err);
  up_method_spec spec;
  cr_assert(up_method_spec_parse(method, NULL, &spec, err, sizeof err), "%s", err);
  cr_assert(up_method_spec_resolve(&spec, &cfg, err, sizeof err), "%s", err);
  up_method m;
  cr_assert(up_method_init(&m, &spec, be, err, sizeof err), "%s", err);
  up_generation g;
  up_generator_run(gen, &m, &tokens, &n, 1, max_new, NULL, 0, &g);
  small_run out = {.n_tokens = g.n_tokens};
  cr_assert(!g.non_finite && g.n_tokens <= 8);
  memcpy(out.logits, g.first_logits, sizeof out.logits);
  memcpy(out.layer_rows, g.layer_rows, sizeof(int32_t) * (size_t)n_layers);
  memcpy(out.tokens, g.tokens, sizeof(int32_t) * (size_t)g.n_tokens);
  up_generation_free(&g);
  up_method_destroy(&m);
  up_generator_destroy(gen);
  up_model_destroy(model);
  be->ops->destroy(be);
  return out;
}

Test(gemma3, a_sliding_layer_sees_only_its_window) {
  int32_t a[20], b[20];
  for (int i = 0; i < 20; ++i) a[i] = b[i] = (i * 13 + 5) % 64;
  b[2] = (a[2] + 1) % 64; /* 17 positions before the last: beyond two windows of 4 */
  small_run ra = run_small(2, 1000, "dense", a, 20, 1), rb = run_small(2, 1000, "dense", b, 20, 1);
  cr_assert(memcmp(ra.logits, rb.logits, sizeof ra.logits) == 0, "a token outside every window changed the logits");
  ra = run_small(2, 2, "dense", a, 20, 1); /* layer 1 global */
  rb = run_small(2, 2, "dense", b, 20, 1);
  cr_assert(memcmp(ra.logits, rb.logits, sizeof ra.logits) != 0, "a global layer sees every earlier token");
}

/* UniPrefill drops after global layer 1 of 4 (layer 3 global too); the sliding layer 2
 * then runs over the kept rows, and decoding continues over the windows. min_rows at
 * the prompt's length or above skips the drop. */
Test(gemma3, uniprefill_drops_at_a_global_layer_and_sliding_layers_follow) {
  enum { N = 300 };
  int32_t prompt[N];
  for (int i = 0; i < N; ++i) prompt[i] = (i * 29 + 3) % 64;
  const small_run dense = run_small(4, 2, "dense", prompt, N, 4);
  const small_run dropped = run_small(4, 2, "uniprefill:keep=0.3:layers=1:min_rows=0:sink=16:last_q=16", prompt, N, 4);
  cr_assert(dropped.layer_rows[0] == N && dropped.layer_rows[1] == N, "layers up to the drop see the prompt");
  cr_assert_lt(dropped.layer_rows[2], N, "layer 2 runs on the kept rows");
  cr_assert_eq(dropped.layer_rows[3], dropped.layer_rows[2]);
  cr_assert_eq(dropped.n_tokens, 4, "decoding goes on after the drop");
  const small_run skipped = run_small(4, 2, "uniprefill:keep=0.3:layers=1:min_rows=300:sink=16:last_q=16", prompt, N, 4);
  for (int l = 0; l < 4; ++l) cr_assert_eq(skipped.layer_rows[l], N, "min_rows 300: layer %d keeps the prompt", l);
  cr_assert(memcmp(skipped.logits, dense.logits, sizeof dense.logits) == 0, "a skipped drop is dense");
  cr_assert(memcmp(skipped.tokens, dense.tokens, sizeof(int32_t) * 4) == 0);
}

/* UniPrefill's window option: before a drop the two semantics are the same window; after
 * one, window=original (the kept rows within W original positions) changes the sliding
 * layer's result (the tokens kept stay the same), and decoding goes on over it. The
 * equality with an explicit positional mask is test_uniprefill_window.c's. */
Test(gemma3, uniprefill_window_semantics_differ_only_after_a_drop) {
  enum { N = 300 };
  int32_t prompt[N];
  for (int i = 0; i < N; ++i) prompt[i] = (i * 29 + 3) % 64;
  const char *drop = "uniprefill:keep=0.3:layers=1:min_rows=0:sink=16:last_q=16";
  char original[128];
  snprintf(original, sizeof original, "%s:window=original", drop);
  const small_run kept = run_small(4, 2, drop, prompt, N, 4), orig = run_small(4, 2, original, prompt, N, 4);
  for (int l = 0; l < 4; ++l) cr_assert_eq(orig.layer_rows[l], kept.layer_rows[l], "layer %d rows", l);
  cr_assert_lt(orig.layer_rows[2], N);
  cr_assert(memcmp(orig.logits, kept.logits, sizeof kept.logits) != 0, "layer 2's windows differ after the drop");
  cr_assert_eq(orig.n_tokens, 4, "decoding goes on under window=original");
  const small_run dense = run_small(4, 2, "dense", prompt, N, 4);
  const small_run undropped = run_small(4, 2, "uniprefill:layers=1:min_rows=300:window=original", prompt, N, 4);
  cr_assert(memcmp(undropped.logits, dense.logits, sizeof dense.logits) == 0, "without a drop both are dense's");
  cr_assert(memcmp(undropped.tokens, dense.tokens, sizeof(int32_t) * 4) == 0);
}
