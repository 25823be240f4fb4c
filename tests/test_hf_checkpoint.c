/* test_hf_checkpoint.c — Hugging Face checkpoint directories written here: a
 * Llama-3.1-8B config.json maps to the llama-3.1-8b preset's shapes, RoPE and drop
 * layers; defaults, transformers-5 rope_parameters and every refused field give the
 * expected config or message; single-file and sharded (indexed) checkpoints find each
 * tensor across shards with its values; a missing or inconsistent shard, index or
 * config is an error naming the directory or file. */
#define _XOPEN_SOURCE 700 /* mkdtemp */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/checkpoint/hf_checkpoint.h"
#include "engine/checkpoint/hf_config.h"
#include "engine/model/layer_cost.h"
#include "tests/safetensors_writer.h"

/* Meta-Llama-3.1-8B's config.json, as published. */
static const char k_llama31_8b_config[] =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"attention_bias\": false, \"attention_dropout\": 0.0,"
    " \"bos_token_id\": 128000, \"eos_token_id\": 128001, \"hidden_act\": \"silu\", \"hidden_size\": 4096,"
    " \"initializer_range\": 0.02, \"intermediate_size\": 14336, \"max_position_embeddings\": 131072,"
    " \"mlp_bias\": false, \"model_type\": \"llama\", \"num_attention_heads\": 32, \"num_hidden_layers\": 32,"
    " \"num_key_value_heads\": 8, \"pretraining_tp\": 1, \"rms_norm_eps\": 1e-05,"
    " \"rope_scaling\": {\"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0,"
    " \"original_max_position_embeddings\": 8192, \"rope_type\": \"llama3\"}, \"rope_theta\": 500000.0,"
    " \"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\", \"transformers_version\": \"4.43.0.dev0\","
    " \"use_cache\": true, \"vocab_size\": 128256}";

/* A tiny llama: hidden 8, 2 heads of 4, 1 kv head, 1 layer, intermediate 16, vocab 32. */
static const char k_tiny_config[] =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": 8,"
    " \"intermediate_size\": 16, \"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"num_hidden_layers\": 1,"
    " \"vocab_size\": 32, \"max_position_embeddings\": 64, \"rms_norm_eps\": 1e-06, \"rope_theta\": 10000.0,"
    " \"tie_word_embeddings\": true, \"torch_dtype\": \"bfloat16\"}";

/* The 8B config with one top-level key replaced by value_json (added if absent),
 * or removed when value_json is NULL. Caller frees. */
static char *config_with(const char *base, const char *key, const char *value_json) {
  cJSON *root = cJSON_Parse(base);
  cr_assert_not_null(root);
  cJSON_DeleteItemFromObjectCaseSensitive(root, key);
  if (value_json) {
    cJSON *value = cJSON_Parse(value_json);
    cr_assert_not_null(value, "test value %s", value_json);
    cJSON_AddItemToObject(root, key, value);
  }
  char *text = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  return text;
}

static bool parse_config(const char *text, up_model_config *cfg, char *err, size_t err_size) {
  return up_hf_config_parse(text, strlen(text), "Meta-Llama-3.1-8B", "cfg.json", cfg, err, err_size);
}

/* The 8B config with key set to value_json must be refused with a message naming
 * the file and containing fragment. */
static void expect_config_error(const char *key, const char *value_json, const char *fragment) {
  char *text = config_with(k_llama31_8b_config, key, value_json);
  up_model_config cfg;
  char err[512] = "";
  cr_assert_not(parse_config(text, &cfg, err, sizeof err), "%s = %s accepted", key, value_json ? value_json : "(none)");
  cr_assert(strncmp(err, "cfg.json: ", 10) == 0, "names the file: %s", err);
  cr_assert(strstr(err, fragment) != NULL, "%s = %s: '%s' in: %s", key, value_json ? value_json : "(none)", fragment,
            err);
  cJSON_free(text);
}

Test(hf_config, llama_3_1_8b_matches_the_preset) {
  up_model_config cfg;
  char err[512] = "";
  cr_assert(parse_config(k_llama31_8b_config, &cfg, err, sizeof err), "%s", err);
  const up_model_config *p = up_model_preset_find("llama-3.1-8b");
  cr_assert_str_eq(cfg.name, "Meta-Llama-3.1-8B");
  cr_assert_str_eq(cfg.architecture, p->architecture);
  cr_assert_eq(cfg.n_layers, p->n_layers);
  cr_assert_eq(cfg.hidden, p->hidden);
  cr_assert_eq(cfg.n_heads, p->n_heads);
  cr_assert_eq(cfg.n_kv_heads, p->n_kv_heads);
  cr_assert_eq(cfg.head_dim, p->head_dim);
  cr_assert_eq(cfg.intermediate, p->intermediate);
  cr_assert_eq(cfg.vocab, p->vocab);
  cr_assert_eq(cfg.max_context, p->max_context);
  cr_assert_eq(cfg.norm_eps, p->norm_eps);
  cr_assert_eq(cfg.rope_theta, p->rope_theta);
  cr_assert_eq(cfg.rope_scaling, UP_ROPE_SCALING_LLAMA3);
  cr_assert_eq(cfg.rope_factor, p->rope_factor);
  cr_assert_eq(cfg.rope_low_freq_factor, p->rope_low_freq_factor);
  cr_assert_eq(cfg.rope_high_freq_factor, p->rope_high_freq_factor);
  cr_assert_eq(cfg.rope_original_context, p->rope_original_context);
  cr_assert_eq(cfg.tie_word_embeddings, false);
  cr_assert_eq(cfg.default_top_p, p->default_top_p);
  cr_assert_eq(cfg.n_drop_layers, p->n_drop_layers);
  for (int32_t i = 0; i < cfg.n_drop_layers; ++i) cr_assert_eq(cfg.drop_layers[i], p->drop_layers[i]);
  for (int32_t l = 0; l < cfg.n_layers; ++l)
    cr_assert(cfg.layer_kind[l] == UP_LAYER_FULL_ATTENTION && cfg.mlp_kind[l] == UP_MLP_SWIGLU);
  float f_cfg[64], f_preset[64];
  up_model_config_rope_inv_freq(&cfg, f_cfg);
  up_model_config_rope_inv_freq(p, f_preset);
  cr_assert(memcmp(f_cfg, f_preset, sizeof f_cfg) == 0, "same RoPE frequencies");
  cr_assert_eq(up_model_body_params(&cfg), up_model_body_params(p));
}

Test(hf_config, defaults_and_optional_fields) {
  up_model_config cfg;
  char err[512] = "";
  /* No kv heads, head_dim, rope_theta, rope_scaling, tie: heads, hidden/heads, 10000, none, false. */
  char *a = config_with(k_llama31_8b_config, "num_key_value_heads", NULL);
  char *b = config_with(a, "rope_theta", NULL);
  char *c = config_with(b, "rope_scaling", "null");
  char *d = config_with(c, "tie_word_embeddings", NULL);
  cr_assert(parse_config(d, &cfg, err, sizeof err), "%s", err);
  cr_assert_eq(cfg.n_kv_heads, 32);
  cr_assert_eq(cfg.head_dim, 128);
  cr_assert_eq(cfg.rope_theta, 10000.0f);
  cr_assert_eq(cfg.rope_scaling, UP_ROPE_SCALING_NONE);
  cr_assert_not(cfg.tie_word_embeddings);
  cJSON_free(a), cJSON_free(b), cJSON_free(c), cJSON_free(d);

  a = config_with(k_llama31_8b_config, "head_dim", "64"); /* head_dim need not be hidden / heads */
  b = config_with(a, "tie_word_embeddings", "true");
  cr_assert(parse_config(b, &cfg, err, sizeof err), "%s", err);
  cr_assert_eq(cfg.head_dim, 64);
  cr_assert(cfg.tie_word_embeddings);
  cJSON_free(a), cJSON_free(b);

  a = config_with(k_llama31_8b_config, "rope_scaling", "{\"type\": \"default\"}");
  cr_assert(parse_config(a, &cfg, err, sizeof err), "%s", err);
  cr_assert_eq(cfg.rope_scaling, UP_ROPE_SCALING_NONE);
  cJSON_free(a);

  /* transformers 5: theta and scaling together in rope_parameters. */
  a = config_with(k_llama31_8b_config, "rope_scaling", NULL);
  b = config_with(a, "rope_theta", NULL);
  c = config_with(b, "rope_parameters",
                  "{\"rope_theta\": 500000.0, \"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0,"
                  " \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192}");
  cr_assert(parse_config(c, &cfg, err, sizeof err), "%s", err);
  cr_assert_eq(cfg.rope_theta, 500000.0f);
  cr_assert_eq(cfg.rope_scaling, UP_ROPE_SCALING_LLAMA3);
  cr_assert_eq(cfg.rope_original_context, 8192);
  cJSON_free(a), cJSON_free(b), cJSON_free(c);

  /* A shallow checkpoint takes drop layers by depth too. */
  a = config_with(k_llama31_8b_config, "num_hidden_layers", "16");
  cr_assert(parse_config(a, &cfg, err, sizeof err), "%s", err);
  int32_t expect[UP_MAX_LAYERS];
  cr_assert_eq(cfg.n_drop_layers, up_model_config_drop_layers_by_depth(16, expect));
  for (int32_t i = 0; i < cfg.n_drop_layers; ++i) cr_assert_eq(cfg.drop_layers[i], expect[i]);
  cJSON_free(a);
}

Test(hf_config, unknown_architectures) {
  expect_config_error("model_type", "\"qwen3_next\"", "qwen3_next rope scaling 'llama3'"); /* Llama 3.1's RoPE */
  expect_config_error("model_type", "\"gemma3\"", "only text-only gemma3_text checkpoints load");
  expect_config_error("model_type", "\"mistral\"", "model_type 'mistral' is not supported");
  expect_config_error("model_type", NULL, "missing field 'model_type'");
  expect_config_error("model_type", "3", "'model_type' must be a string");
  expect_config_error("architectures", "[\"LlamaForSequenceClassification\"]", "LlamaForCausalLM");
  expect_config_error("architectures", "\"LlamaForCausalLM\"", "'architectures' must be an array");
}

Test(hf_config, bad_fields) {
  expect_config_error("hidden_size", NULL, "missing field 'hidden_size'");
  expect_config_error("hidden_size", "\"4096\"", "'hidden_size' must be an integer");
  expect_config_error("hidden_size", "-4096", "'hidden_size' must be an integer");
  expect_config_error("hidden_size", "4096.5", "'hidden_size' must be an integer");
  expect_config_error("num_hidden_layers", "0", "'num_hidden_layers' must be an integer in 1..128");
  expect_config_error("num_hidden_layers", "129", "'num_hidden_layers'");
  expect_config_error("num_key_value_heads", "5", "kv heads");
  expect_config_error("num_attention_heads", "33", "not a multiple of num_attention_heads");
  expect_config_error("head_dim", "127", "head_dim 127 must be even");
  expect_config_error("vocab_size", "1e300", "'vocab_size'");
  expect_config_error("max_position_embeddings", "null", "'max_position_embeddings'");
  expect_config_error("rms_norm_eps", "0", "'rms_norm_eps' must be a positive number");
  expect_config_error("rms_norm_eps", NULL, "missing field 'rms_norm_eps'");
  expect_config_error("rope_theta", "-1", "'rope_theta'");
  expect_config_error("rope_theta", "1e300", "'rope_theta'"); /* finite as a double, not as a float */
  expect_config_error("tie_word_embeddings", "1", "'tie_word_embeddings' must be true or false");
  expect_config_error("hidden_act", "\"gelu\"", "hidden_act 'gelu' is not supported");
  expect_config_error("attention_bias", "true", "'attention_bias' is true");
  expect_config_error("mlp_bias", "true", "'mlp_bias' is true");
  expect_config_error("torch_dtype", "16", "'torch_dtype' must be a string");
  expect_config_error("rope_scaling", "{\"rope_type\": \"yarn\", \"factor\": 4.0}", "type 'yarn' is not supported");
  expect_config_error("rope_scaling", "{\"type\": \"linear\", \"factor\": 2.0}", "type 'linear' is not supported");
  expect_config_error("rope_scaling", "{\"factor\": 2.0}", "no 'rope_type'");
  expect_config_error("rope_scaling", "[]", "'rope_scaling' must be null or an object");
  expect_config_error("rope_scaling",
                      "{\"rope_type\": \"llama3\", \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0,"
                      " \"original_max_position_embeddings\": 8192}",
                      "missing field 'factor'");
  expect_config_error("rope_scaling",
                      "{\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 4.0, \"high_freq_factor\": 4.0,"
                      " \"original_max_position_embeddings\": 8192}",
                      "high_freq_factor > low_freq_factor");
  expect_config_error("rope_scaling",
                      "{\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0,"
                      " \"original_max_position_embeddings\": 0}",
                      "'original_max_position_embeddings'");
  expect_config_error("rope_parameters", "7", "'rope_parameters' must be an object");

  /* No head_dim and a hidden size the heads do not divide. */
  char *a = config_with(k_llama31_8b_config, "hidden_size", "4000");
  char *b = config_with(a, "num_attention_heads", "48");
  char *c = config_with(b, "num_key_value_heads", "8");
  up_model_config cfg;
  char err[512] = "";
  cr_assert_not(parse_config(c, &cfg, err, sizeof err));
  cr_assert(strstr(err, "not a multiple of num_attention_heads 48"), "%s", err);
  cJSON_free(a), cJSON_free(b), cJSON_free(c);

  const char *bad_json[] = {"", "{", "[]", "{\"model_type\": \"llama\",}", "{\"model_type\": \"llama\"} x"};
  for (int i = 0; i < 5; ++i) {
    cr_assert_not(parse_config(bad_json[i], &cfg, err, sizeof err), "'%s' accepted", bad_json[i]);
    cr_assert(strncmp(err, "cfg.json: ", 10) == 0, "%s", err);
  }
  const char dup[] = "{\"model_type\": \"llama\", \"model_type\": \"gemma3\"}";
  cr_assert_not(parse_config(dup, &cfg, err, sizeof err));
  cr_assert(strstr(err, "'model_type' appears twice"), "%s", err);
}

/* --- checkpoint directories -------------------------------------------------------- */

typedef struct temp_dir {
  char path[PATH_MAX];
} temp_dir;

static void temp_dir_make(temp_dir *d, const char *leaf) {
  char base[] = "/tmp/up_hf_XXXXXX";
  cr_assert_not_null(mkdtemp(base));
  snprintf(d->path, sizeof d->path, "%s/%s", base, leaf);
  cr_assert_eq(mkdir(d->path, 0700), 0);
}

static void temp_dir_file(const temp_dir *d, const char *name, char *path, size_t size) {
  cr_assert_lt((size_t)snprintf(path, size, "%s/%s", d->path, name), size);
}

static void temp_dir_write(const temp_dir *d, const char *name, const char *text) {
  char path[PATH_MAX];
  temp_dir_file(d, name, path, sizeof path);
  write_file_or_die(path, text, strlen(text));
}

static void temp_dir_save(const temp_dir *d, const char *name, const st_writer *w) {
  char path[PATH_MAX];
  temp_dir_file(d, name, path, sizeof path);
  st_writer_save(w, path);
}

static void temp_dir_remove(const temp_dir *d) {
  DIR *dir = opendir(d->path);
  cr_assert_not_null(dir);
  const struct dirent *e;
  while ((e = readdir(dir)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    char path[PATH_MAX];
    temp_dir_file(d, e->d_name, path, sizeof path);
    cr_assert_eq(unlink(path), 0, "%s", path);
  }
  cr_assert_eq(closedir(dir), 0);
  cr_assert_eq(rmdir(d->path), 0);
  char base[PATH_MAX];
  snprintf(base, sizeof base, "%s", d->path);
  *strrchr(base, '/') = '\0';
  cr_assert_eq(rmdir(base), 0);
}

/* The tiny llama's tensors, split over two writers at "model.layers.0.mlp": embedding,
 * attention and norms (bf16) in the first, the MLP (f16) and final norm (f32) in the
 * second (which may be the first writer again, for a single file). */
static const char *const k_tiny_tensors[] = {
    "model.embed_tokens.weight", "model.layers.0.input_layernorm.weight", "model.layers.0.self_attn.q_proj.weight",
    "model.layers.0.self_attn.k_proj.weight", "model.layers.0.self_attn.v_proj.weight",
    "model.layers.0.self_attn.o_proj.weight", "model.layers.0.post_attention_layernorm.weight",
    "model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.down_proj.weight",
    "model.norm.weight"};
#define N_TINY_TENSORS 11
#define FIRST_SHARD2_TENSOR 7
static const int64_t k_tiny_shapes[N_TINY_TENSORS][2] = {{32, 8}, {8, 0}, {8, 8}, {4, 8}, {4, 8}, {8, 8},
                                                         {8, 0}, {16, 8}, {16, 8}, {8, 16}, {8, 0}};

/* Value j of tensor i: small integers, exact in bf16, f16 and f32. */
static float tiny_value(int i, int64_t j) { return (float)((i * 7 + j) % 17) - 8.0f; }

static void write_tiny_tensors(st_writer *shard1, st_writer *shard2) {
  memset(shard1, 0, sizeof *shard1);
  if (shard2 != shard1) memset(shard2, 0, sizeof *shard2);
  for (int i = 0; i < N_TINY_TENSORS; ++i) {
    const int n_dims = k_tiny_shapes[i][1] ? 2 : 1;
    const int64_t n = k_tiny_shapes[i][0] * (n_dims == 2 ? k_tiny_shapes[i][1] : 1);
    uint8_t bytes[1024];
    const char *dtype = i < FIRST_SHARD2_TENSOR ? "BF16" : i < N_TINY_TENSORS - 1 ? "F16" : "F32";
    for (int64_t j = 0; j < n; ++j) {
      const float v = tiny_value(i, j);
      if (dtype[0] == 'B') {
        uint32_t bits;
        memcpy(&bits, &v, 4);
        bytes[2 * j] = (uint8_t)(bits >> 16), bytes[2 * j + 1] = (uint8_t)(bits >> 24);
      } else if (dtype[1] == '1') { /* f16 of a small integer: sign, exponent, 10-bit mantissa */
        const float a = fabsf(v);
        uint16_t h = 0;
        if (a > 0) {
          const int e = (int)floorf(log2f(a));
          h = (uint16_t)(((e + 15) << 10) | (uint16_t)((a / ldexpf(1.0f, e) - 1.0f) * 1024.0f));
        }
        if (v < 0) h |= 0x8000;
        bytes[2 * j] = (uint8_t)h, bytes[2 * j + 1] = (uint8_t)(h >> 8);
      } else {
        memcpy(bytes + 4 * j, &v, 4);
      }
    }
    st_writer_add(i < FIRST_SHARD2_TENSOR ? shard1 : shard2, k_tiny_tensors[i], dtype, k_tiny_shapes[i], n_dims,
                  bytes, (size_t)n * (dtype[1] == '3' ? 4 : 2));
  }
}

static void check_tiny_tensors(const up_hf_checkpoint *ck) {
  cr_assert_eq(up_hf_checkpoint_tensor_count(ck), N_TINY_TENSORS);
  for (int64_t i = 1; i < N_TINY_TENSORS; ++i)
    cr_assert_lt(strcmp(up_hf_checkpoint_tensor_at(ck, i - 1)->name, up_hf_checkpoint_tensor_at(ck, i)->name), 0,
                 "sorted by name");
  cr_assert_null(up_hf_checkpoint_tensor_at(ck, N_TINY_TENSORS));
  cr_assert_null(up_hf_checkpoint_find(ck, "lm_head.weight"), "tied: no LM head");
  char err[256] = "";
  for (int i = 0; i < N_TINY_TENSORS; ++i) {
    const up_st_tensor *t = up_hf_checkpoint_find(ck, k_tiny_tensors[i]);
    cr_assert_not_null(t, "%s", k_tiny_tensors[i]);
    cr_assert_eq(t->shape[0], k_tiny_shapes[i][0]);
    float out[512];
    cr_assert(up_safetensors_to_f32(t, out, 0, t->n_elements, err, sizeof err), "%s", err);
    for (int64_t j = 0; j < t->n_elements; ++j)
      cr_assert_eq(out[j], tiny_value(i, j), "%s[%lld]", t->name, (long long)j);
  }
  const up_model_config *cfg = up_hf_checkpoint_config(ck);
  cr_assert_str_eq(cfg->name, "tiny-llama-hf", "named after the directory");
  cr_assert_eq(cfg->hidden, 8);
  cr_assert_eq(cfg->head_dim, 4);
  cr_assert(cfg->tie_word_embeddings);
}

static const char k_tiny_index[] =
    "{\"metadata\": {\"total_size\": 1392}, \"weight_map\": {"
    "\"model.embed_tokens.weight\": \"model-00001-of-00002.safetensors\","
    " \"model.layers.0.input_layernorm.weight\": \"model-00001-of-00002.safetensors\","
    " \"model.layers.0.self_attn.q_proj.weight\": \"model-00001-of-00002.safetensors\","
    " \"model.layers.0.self_attn.k_proj.weight\": \"model-00001-of-00002.safetensors\","
    " \"model.layers.0.self_attn.v_proj.weight\": \"model-00001-of-00002.safetensors\","
    " \"model.layers.0.self_attn.o_proj.weight\": \"model-00001-of-00002.safetensors\","
    " \"model.layers.0.post_attention_layernorm.weight\": \"model-00001-of-00002.safetensors\","
    " \"model.layers.0.mlp.gate_proj.weight\": \"model-00002-of-00002.safetensors\","
    " \"model.layers.0.mlp.up_proj.weight\": \"model-00002-of-00002.safetensors\","
    " \"model.layers.0.mlp.down_proj.weight\": \"model-00002-of-00002.safetensors\","
    " \"model.norm.weight\": \"model-00002-of-00002.safetensors\"}}";

/* A sharded tiny checkpoint: config, index (index_text), both shards. */
static void write_sharded(const temp_dir *d, const char *index_text) {
  st_writer s1, s2;
  write_tiny_tensors(&s1, &s2);
  temp_dir_write(d, "config.json", k_tiny_config);
  temp_dir_write(d, "model.safetensors.index.json", index_text);
  temp_dir_save(d, "model-00001-of-00002.safetensors", &s1);
  temp_dir_save(d, "model-00002-of-00002.safetensors", &s2);
}

static void expect_open_error(const temp_dir *d, const char *frag1, const char *frag2) {
  char err[1024] = "";
  up_hf_checkpoint *ck = up_hf_checkpoint_open(d->path, err, sizeof err);
  cr_assert_null(ck, "opened; expected an error with '%s'", frag1);
  cr_assert(strstr(err, d->path) != NULL, "names the directory or a file in it: %s", err);
  cr_assert(strstr(err, frag1) != NULL, "'%s' in: %s", frag1, err);
  if (frag2) cr_assert(strstr(err, frag2) != NULL, "'%s' in: %s", frag2, err);
}

Test(hf_checkpoint, single_file) {
  temp_dir d;
  temp_dir_make(&d, "tiny-llama-hf");
  st_writer w;
  write_tiny_tensors(&w, &w);
  temp_dir_write(&d, "config.json", k_tiny_config);
  temp_dir_save(&d, "model.safetensors", &w);
  temp_dir_save(&d, "consolidated.safetensors", &w); /* ignored: model.safetensors is there */
  char err[1024] = "";
  up_hf_checkpoint *ck = up_hf_checkpoint_open(d.path, err, sizeof err);
  cr_assert_not_null(ck, "%s", err);
  cr_assert_str_eq(up_hf_checkpoint_dir(ck), d.path);
  cr_assert_eq(up_hf_checkpoint_shard_count(ck), 1);
  cr_assert(strstr(up_safetensors_name(up_hf_checkpoint_shard_at(ck, 0)), "/model.safetensors"));
  cr_assert_null(up_hf_checkpoint_shard_at(ck, 1));
  check_tiny_tensors(ck);
  up_hf_checkpoint_close(ck);

  /* Without model.safetensors, the only .safetensors file there is; the directory
   * given with a trailing slash still names the config. */
  char path[PATH_MAX];
  temp_dir_file(&d, "model.safetensors", path, sizeof path);
  cr_assert_eq(unlink(path), 0);
  char with_slash[PATH_MAX + 1];
  snprintf(with_slash, sizeof with_slash, "%s/", d.path);
  ck = up_hf_checkpoint_open(with_slash, err, sizeof err);
  cr_assert_not_null(ck, "%s", err);
  cr_assert(strstr(up_safetensors_name(up_hf_checkpoint_shard_at(ck, 0)), "consolidated.safetensors"));
  check_tiny_tensors(ck);
  up_hf_checkpoint_close(ck);

  /* Two candidates and no index: ambiguous. */
  temp_dir_save(&d, "other.safetensors", &w);
  expect_open_error(&d, "2 .safetensors files", "model.safetensors.index.json");
  temp_dir_remove(&d);
}

Test(hf_checkpoint, sharded_with_an_index) {
  temp_dir d;
  temp_dir_make(&d, "tiny-llama-hf");
  write_sharded(&d, k_tiny_index);
  char err[1024] = "";
  up_hf_checkpoint *ck = up_hf_checkpoint_open(d.path, err, sizeof err);
  cr_assert_not_null(ck, "%s", err);
  cr_assert_eq(up_hf_checkpoint_shard_count(ck), 2);
  check_tiny_tensors(ck);
  /* Each tensor comes from the shard the index names. */
  const up_safetensors *shard2 = up_hf_checkpoint_shard_at(ck, 1);
  cr_assert(strstr(up_safetensors_name(shard2), "model-00002-of-00002.safetensors"));
  cr_assert_eq(up_hf_checkpoint_find(ck, "model.norm.weight"), up_safetensors_find(shard2, "model.norm.weight"));
  up_hf_checkpoint_close(ck);
  temp_dir_remove(&d);
}

/* The index with one replacement applied to its text. */
static char *index_edited(const char *from, const char *to) {
  const char *at = strstr(k_tiny_index, from);
  cr_assert_not_null(at, "'%s' is in the index", from);
  char *text = malloc(sizeof k_tiny_index + strlen(to));
  snprintf(text, sizeof k_tiny_index + strlen(to), "%.*s%s%s", (int)(at - k_tiny_index), k_tiny_index, to,
           at + strlen(from));
  return text;
}

static void expect_index_error(const char *from, const char *to, const char *frag1, const char *frag2) {
  temp_dir d;
  temp_dir_make(&d, "tiny-llama-hf");
  char *text = index_edited(from, to);
  write_sharded(&d, text);
  expect_open_error(&d, frag1, frag2);
  free(text);
  temp_dir_remove(&d);
}

Test(hf_checkpoint, index_and_shards_must_agree) {
  /* A shard the index names that does not exist. */
  expect_index_error("\"model.norm.weight\": \"model-00002-of-00002.safetensors\"",
                     "\"model.norm.weight\": \"model-00003-of-00003.safetensors\"",
                     "shard 'model-00003-of-00003.safetensors'", "No such file");
  /* A tensor mapped to a shard that does not hold it (it is in the other one). */
  expect_index_error("\"model.norm.weight\": \"model-00002-of-00002.safetensors\"",
                     "\"model.norm.weight\": \"model-00001-of-00002.safetensors\"",
                     "tensor 'model.norm.weight' is mapped to shard 'model-00001-of-00002.safetensors' but is not in it",
                     NULL);
  /* A mapped tensor no shard has. */
  expect_index_error("\"model.norm.weight\"", "\"lm_head.weight\"", "tensor 'lm_head.weight' is mapped", NULL);
  /* A tensor in a shard that the index does not list (the map lost one entry). */
  expect_index_error("\"model.norm.weight\": \"model-00002-of-00002.safetensors\"}",
                     "\"x\": \"model-00002-of-00002.safetensors\"}", "tensor 'x' is mapped", NULL);
  expect_index_error(", \"model.norm.weight\": \"model-00002-of-00002.safetensors\"", "",
                     "holds tensor 'model.norm.weight', which 'weight_map' does not list", NULL);
  /* Shard names must stay in the directory; the map must be a map of strings. */
  expect_index_error("\"model.norm.weight\": \"model-00002-of-00002.safetensors\"",
                     "\"model.norm.weight\": \"../model-00002-of-00002.safetensors\"",
                     "'model.norm.weight' is mapped to something other than a file name", NULL);
  expect_index_error("\"model.norm.weight\": \"model-00002-of-00002.safetensors\"", "\"model.norm.weight\": 2",
                     "'model.norm.weight' is mapped to something other than a file name", NULL);
  expect_index_error("\"model.norm.weight\": \"model-00002-of-00002.safetensors\"",
                     "\"model.norm.weight\": \"model-00002-of-00002.safetensors\","
                     " \"model.norm.weight\": \"model-00002-of-00002.safetensors\"",
                     "'model.norm.weight' appears twice in 'weight_map'", NULL);
  expect_index_error("\"weight_map\"", "\"weights\"", "'weight_map' must be a non-empty object", NULL);
  expect_index_error("}}", "}", "model.safetensors.index.json: not valid JSON", NULL);
}

Test(hf_checkpoint, a_tensor_in_two_shards) {
  temp_dir d;
  temp_dir_make(&d, "tiny-llama-hf");
  st_writer s1, s2;
  write_tiny_tensors(&s1, &s2);
  const float one = 1.0f;
  st_writer_add(&s1, "model.norm.weight", "F32", NULL, 0, &one, 4); /* also in shard 2, where the index says */
  temp_dir_write(&d, "config.json", k_tiny_config);
  temp_dir_write(&d, "model.safetensors.index.json", k_tiny_index);
  temp_dir_save(&d, "model-00001-of-00002.safetensors", &s1);
  temp_dir_save(&d, "model-00002-of-00002.safetensors", &s2);
  expect_open_error(&d, "tensor 'model.norm.weight' is in shard 'model-00001-of-00002.safetensors' too", NULL);
  temp_dir_remove(&d);
}

Test(hf_checkpoint, broken_directories) {
  char err[1024] = "";
  cr_assert_null(up_hf_checkpoint_open("/nonexistent/ckpt", err, sizeof err));
  cr_assert(strstr(err, "/nonexistent/ckpt") && strstr(err, "No such file"), "%s", err);

  temp_dir d;
  temp_dir_make(&d, "tiny-llama-hf");
  char file[PATH_MAX];
  temp_dir_file(&d, "config.json", file, sizeof file);
  temp_dir_write(&d, "config.json", k_tiny_config);
  cr_assert_null(up_hf_checkpoint_open(file, err, sizeof err));
  cr_assert(strstr(err, "not a directory"), "%s", err);

  expect_open_error(&d, "no model.safetensors.index.json, model.safetensors or other .safetensors file", NULL);

  /* A corrupt shard: the message names the shard file. */
  const char garbage[] = "not a safetensors file";
  temp_dir_file(&d, "model.safetensors", file, sizeof file);
  write_file_or_die(file, garbage, sizeof garbage);
  expect_open_error(&d, "model.safetensors: header length", NULL);

  /* The config is read first: missing, incomplete, malformed. */
  temp_dir_file(&d, "config.json", file, sizeof file);
  cr_assert_eq(unlink(file), 0);
  expect_open_error(&d, "config.json: cannot open", NULL);
  temp_dir_write(&d, "config.json", "{\"model_type\": \"qwen3_next\"}");
  expect_open_error(&d, "config.json: missing field 'num_hidden_layers'", NULL);
  temp_dir_write(&d, "config.json", "{\"model_type\": ");
  expect_open_error(&d, "config.json: not valid JSON", NULL);
  temp_dir_remove(&d);
}
