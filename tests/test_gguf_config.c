/* test_gguf_config.c — the llama hyper-parameters read from GGUF metadata
 * (checkpoint_gguf.c) refuse what the engine would otherwise take silently or trip an
 * assertion on: a non-finite, zero or negative RMS-norm epsilon, a depth above the
 * engine's layer limit, and 0 for a key (context length, KV heads, rotary dimensions)
 * that would otherwise quietly become its default. Each message names the file and the
 * key. Files are built in memory (tests/gguf_writer.h). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/checkpoint/checkpoint_internal.h"
#include "engine/checkpoint/gguf.h"
#include "tests/gguf_writer.h"

enum { HIDDEN = 16, VOCAB = 32 };

/* One metadata entry of the test file; NULL key ends a list. */
typedef struct meta_entry {
  const char *key;
  bool is_float;
  uint32_t u;
  float f;
} meta_entry;

static const meta_entry k_llama[] = {
    {"llama.block_count", false, 2, 0},          {"llama.embedding_length", false, HIDDEN, 0},
    {"llama.feed_forward_length", false, 24, 0}, {"llama.attention.head_count", false, 2, 0},
    {"llama.attention.head_count_kv", false, 1, 0}, {"llama.context_length", false, 256, 0},
    {"llama.rope.dimension_count", false, 8, 0}, {"llama.attention.layer_norm_rms_epsilon", true, 0, 1e-5f},
};
#define N_LLAMA (sizeof k_llama / sizeof k_llama[0])

/* The llama metadata with `change` replacing the entry of the same key, and a token
 * embedding [VOCAB][HIDDEN]; config parsed into cfg. Returns whether it was accepted. */
static bool read_config(meta_entry change, up_model_config *cfg, char *err, size_t err_size) {
  gguf_buf b = {0};
  put_header(&b, 3, 1, 1 + N_LLAMA);
  put_kv_str(&b, "general.architecture", "llama");
  for (size_t i = 0; i < N_LLAMA; ++i) {
    const meta_entry *e = change.key && strcmp(change.key, k_llama[i].key) == 0 ? &change : &k_llama[i];
    if (e->is_float) put_kv_f32(&b, e->key, e->f);
    else put_kv_u32(&b, e->key, e->u);
  }
  const uint64_t dims[] = {HIDDEN, VOCAB};
  put_tensor_info(&b, "token_embd.weight", 2, dims, UP_GGML_F32, 0);
  pad_to(&b, 32);
  for (int i = 0; i < HIDDEN * VOCAB * 4; ++i) put_u8(&b, 0);
  up_gguf *g = up_gguf_open_buffer(b.data, b.len, "cfg.gguf", err, err_size);
  cr_assert_not_null(g, "the test file itself is malformed: %s", err);
  const bool ok = up_checkpoint_gguf_config(g, cfg, err, err_size);
  up_gguf_close(g);
  free(b.data);
  return ok;
}

static void expect_refused(meta_entry change, const char *fragment) {
  up_model_config cfg;
  char err[512] = "";
  cr_expect_not(read_config(change, &cfg, err, sizeof err), "%s accepted", change.key);
  cr_expect(strncmp(err, "cfg.gguf: ", 10) == 0, "message does not name the file: %s", err);
  cr_expect(strstr(err, change.key) != NULL, "message does not name '%s': %s", change.key, err);
  cr_expect(strstr(err, fragment) != NULL, "message '%s' lacks '%s'", err, fragment);
}

Test(gguf_config, the_test_file_is_accepted) {
  up_model_config cfg;
  char err[512] = "";
  cr_assert(read_config((meta_entry){0}, &cfg, err, sizeof err), "%s", err);
  cr_expect_eq(cfg.n_layers, 2);
  cr_expect_eq(cfg.n_kv_heads, 1);
  cr_expect_eq(cfg.max_context, 256);
  cr_expect_float_eq(cfg.norm_eps, 1e-5f, 1e-12f);
}

Test(gguf_config, rms_epsilon_must_be_positive_and_finite) {
  const char *key = "llama.attention.layer_norm_rms_epsilon";
  expect_refused((meta_entry){key, true, 0, NAN}, "must be a positive finite number");
  expect_refused((meta_entry){key, true, 0, INFINITY}, "must be a positive finite number");
  expect_refused((meta_entry){key, true, 0, -1e-5f}, "must be a positive finite number");
  expect_refused((meta_entry){key, true, 0, 0.0f}, "must be a positive finite number");
}

Test(gguf_config, depth_above_the_layer_limit) {
  char limit[64];
  snprintf(limit, sizeof limit, "is %d, outside 1..%d", UP_MAX_LAYERS + 1, UP_MAX_LAYERS);
  expect_refused((meta_entry){"llama.block_count", false, UP_MAX_LAYERS + 1, 0}, limit);
  expect_refused((meta_entry){"llama.block_count", false, 0, 0}, "is 0, outside 1..");
}

Test(gguf_config, zero_is_no_default) {
  expect_refused((meta_entry){"llama.context_length", false, 0, 0}, "is 0, outside 1..");
  expect_refused((meta_entry){"llama.attention.head_count_kv", false, 0, 0}, "is 0, outside 1..");
  expect_refused((meta_entry){"llama.rope.dimension_count", false, 0, 0}, "is 0, outside 1..");
}
