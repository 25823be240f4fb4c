/* test_gguf_keys.c — architecture-prefixed key names and optional keys with defaults
 * (engine/checkpoint/gguf_keys.h): absent keys give the default, present ones their
 * value, and a present key of the wrong type or out of range is an error naming it; on
 * the real Gemma 3 270M file (when cached) the keys HYBRIDS.md A.2 lists as absent fall
 * back to llama.cpp's Gemma 3 defaults. */
#include <criterion/criterion.h>
#include <string.h>

#include "engine/checkpoint/gguf_keys.h"
#include "tests/gemma_model.h"
#include "tests/gguf_writer.h"

static up_gguf *open_gemma_like(gguf_buf *b) {
  put_header(b, 3, 0, 6);
  put_kv_str(b, "general.architecture", "gemma3");
  put_kv_u32(b, "gemma3.attention.sliding_window", 512);
  put_kv_f32(b, "gemma3.rope.freq_base", 1e6f);
  put_kv_f32(b, "gemma3.rope.freq_base_swa", -1.0f);
  put_kv_str(b, "gemma3.attention.sliding_window_pattern", "six");
  put_kv_str(b, "gemma3.rope.scaling.type", "linear");
  pad_to(b, 32);
  char err[256] = "";
  up_gguf *g = up_gguf_open_buffer(b->data, b->len, "keys.gguf", err, sizeof err);
  cr_assert_not_null(g, "%s", err);
  return g;
}

Test(gguf_keys, defaults_values_and_errors) {
  gguf_buf b = {0};
  up_gguf *g = open_gemma_like(&b);
  char key[UP_GGUF_KEY_MAX], err[256] = "";
  cr_assert(up_gguf_arch_key(g, "attention.sliding_window", key, sizeof key, err, sizeof err), "%s", err);
  cr_assert_str_eq(key, "gemma3.attention.sliding_window");

  uint32_t u = 0;
  bool present = false;
  cr_assert(up_gguf_u32_or_default(g, key, 4096, 1, 1u << 20, &u, &present, err, sizeof err), "%s", err);
  cr_assert(present);
  cr_assert_eq(u, 512);
  cr_assert(up_gguf_u32_or_default(g, "gemma3.absent", 6, 1, 64, &u, &present, err, sizeof err));
  cr_assert_not(present);
  cr_assert_eq(u, 6);
  cr_assert_not(up_gguf_u32_or_default(g, "gemma3.attention.sliding_window_pattern", 6, 1, 64, &u, NULL, err,
                                       sizeof err));
  cr_assert(strstr(err, "keys.gguf: metadata 'gemma3.attention.sliding_window_pattern' is not an integer"), "%s", err);
  cr_assert_not(up_gguf_u32_or_default(g, "gemma3.attention.sliding_window", 6, 1, 256, &u, NULL, err, sizeof err));
  cr_assert(strstr(err, "'gemma3.attention.sliding_window' is 512, outside 1..256"), "%s", err);

  float f = 0.0f;
  cr_assert(up_gguf_positive_f32_or_default(g, "gemma3.rope.freq_base", 1e4f, &f, &present, err, sizeof err));
  cr_assert(present);
  cr_assert_eq(f, 1e6f);
  cr_assert(up_gguf_positive_f32_or_default(g, "gemma3.rope.scaling.factor", 1.0f, &f, &present, err, sizeof err));
  cr_assert_not(present);
  cr_assert_eq(f, 1.0f);
  cr_assert_not(up_gguf_positive_f32_or_default(g, "gemma3.rope.freq_base_swa", 1e4f, &f, NULL, err, sizeof err));
  cr_assert(strstr(err, "'gemma3.rope.freq_base_swa' must be a positive finite number"), "%s", err);

  char s[16];
  cr_assert(up_gguf_str_or_empty(g, "gemma3.rope.scaling.type", s, sizeof s, &present, err, sizeof err));
  cr_assert(present);
  cr_assert_str_eq(s, "linear");
  cr_assert(up_gguf_str_or_empty(g, "gemma3.absent", s, sizeof s, &present, err, sizeof err));
  cr_assert_not(present);
  cr_assert_str_eq(s, "");
  cr_assert_not(up_gguf_str_or_empty(g, "gemma3.rope.freq_base", s, sizeof s, NULL, err, sizeof err));
  cr_assert(strstr(err, "'gemma3.rope.freq_base' is not a string"), "%s", err);
  cr_assert_not(up_gguf_str_or_empty(g, "gemma3.rope.scaling.type", s, 4, NULL, err, sizeof err));
  cr_assert(strstr(err, "longer than 3 bytes"), "%s", err);
  up_gguf_close(g);
  free(b.data);

  /* No architecture key: no prefixed names. */
  gguf_buf bare = {0};
  put_header(&bare, 3, 0, 1);
  put_kv_u32(&bare, "x", 1);
  pad_to(&bare, 32);
  g = up_gguf_open_buffer(bare.data, bare.len, "bare.gguf", err, sizeof err);
  cr_assert_not_null(g, "%s", err);
  cr_assert_not(up_gguf_arch_key(g, "block_count", key, sizeof key, err, sizeof err));
  cr_assert(strstr(err, "bare.gguf: metadata 'general.architecture' is missing"), "%s", err);
  up_gguf_close(g);
  free(bare.data);
}

Test(gguf_keys, gemma3_270m_absent_keys_take_llama_cpp_defaults) {
  up_gguf *g = up_test_open_gemma3_270m_or_skip();
  char key[UP_GGUF_KEY_MAX], err[256] = "";
  uint32_t pattern = 0, window = 0;
  float local_base = 0.0f, global_base = 0.0f;
  bool present = true;
  cr_assert(up_gguf_arch_key(g, "attention.sliding_window_pattern", key, sizeof key, err, sizeof err), "%s", err);
  cr_assert(up_gguf_u32_or_default(g, key, 6, 1, 1024, &pattern, &present, err, sizeof err), "%s", err);
  cr_assert(!present && pattern == 6, "HYBRIDS.md A.2: the pattern key is absent");
  cr_assert(up_gguf_arch_key(g, "rope.freq_base_swa", key, sizeof key, err, sizeof err), "%s", err);
  cr_assert(up_gguf_positive_f32_or_default(g, key, 10000.0f, &local_base, &present, err, sizeof err), "%s", err);
  cr_assert(!present && local_base == 10000.0f, "HYBRIDS.md A.2: the local RoPE base is absent");
  cr_assert(up_gguf_arch_key(g, "rope.freq_base", key, sizeof key, err, sizeof err), "%s", err);
  cr_assert(up_gguf_positive_f32_or_default(g, key, 10000.0f, &global_base, &present, err, sizeof err), "%s", err);
  cr_assert(present && global_base == 1e6f);
  cr_assert(up_gguf_arch_key(g, "attention.sliding_window", key, sizeof key, err, sizeof err), "%s", err);
  cr_assert(up_gguf_u32_or_default(g, key, 0, 0, 1u << 20, &window, &present, err, sizeof err), "%s", err);
  cr_assert(present && window == 512);
  up_gguf_close(g);
}
