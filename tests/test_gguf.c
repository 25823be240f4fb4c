/* test_gguf.c — the GGUF reader and ggml dequantization: the shared tiny Llama-2 file
 * and (when cached) SmolLM2-135M Q4_1 read with the expected metadata and shapes;
 * files built in memory by a small writer here round-trip, and each kind of corruption
 * (truncation at every length, bad magic/version/alignment/offsets/shapes/types/counts,
 * duplicates) is a NULL reader and a message naming the field, never a crash; every
 * accepted tensor type dequantizes hand-built blocks to hand-computed values. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/checkpoint/ggml_dequant.h"
#include "core/float16.h"
#include "engine/checkpoint/gguf.h"
#include "tests/gguf_writer.h"

#ifndef UP_SHARED_DIR
#error "UP_SHARED_DIR must point at ../shared (tests/CMakeLists.txt defines it)"
#endif
#define TINY_LLAMA_GGUF UP_SHARED_DIR "/models/llama-2-tiny-random.gguf"

/* The small valid file: every scalar kind of metadata, a string array, numeric arrays,
 * and three tensors (F32 [4], Q8_0 [32, 2], F16 [2, 3]) whose data ends at the file's
 * last byte, so every shorter prefix is missing something. */
static const float k_small_f32[4] = {1.5f, -2.0f, 0.0f, 1e-3f};
static const uint16_t k_small_f16[6] = {0x3c00, 0xc000, 0x0000, 0x3800, 0x7bff, 0x0001};

static gguf_buf small_file(void) {
  gguf_buf b = {0};
  put_header(&b, 3, 3, 10);
  put_kv_str(&b, "general.architecture", "llama");
  put_kv_u32(&b, "llama.block_count", 2);
  put_str(&b, "llama.rope.freq_base");
  put_u32(&b, UP_GGUF_F32);
  put_f32(&b, 10000.0f);
  put_str(&b, "test.i32_negative");
  put_u32(&b, UP_GGUF_I32);
  put_u32(&b, (uint32_t)-5);
  put_str(&b, "test.flag");
  put_u32(&b, UP_GGUF_BOOL);
  put_u8(&b, 1);
  put_str(&b, "test.f64_huge");
  put_u32(&b, UP_GGUF_F64);
  double huge = 1e300;
  uint64_t huge_bits;
  memcpy(&huge_bits, &huge, 8);
  put_u64(&b, huge_bits);
  put_array_header(&b, "tokenizer.ggml.tokens", UP_GGUF_STRING, 4);
  put_str(&b, "<unk>");
  put_str(&b, "");
  put_str(&b, "hello");
  put_str(&b, "world!");
  put_array_header(&b, "tokenizer.ggml.scores", UP_GGUF_F32, 3);
  put_f32(&b, 0.5f);
  put_f32(&b, -1.25f);
  put_f32(&b, 3.0f);
  put_array_header(&b, "tokenizer.ggml.token_type", UP_GGUF_I16, 2);
  put_u8(&b, 0xfe); /* -2 */
  put_u8(&b, 0xff);
  put_u8(&b, 7);
  put_u8(&b, 0);
  put_kv_u32(&b, "general.alignment", 64);

  const uint64_t d_f32[] = {4}, d_q8[] = {32, 2}, d_f16[] = {2, 3};
  put_tensor_info(&b, "norm.weight", 1, d_f32, UP_GGML_F32, 0);
  put_tensor_info(&b, "blk.0.attn_q.weight", 2, d_q8, UP_GGML_Q8_0, 64);
  put_tensor_info(&b, "embd.weight", 2, d_f16, UP_GGML_F16, 192);
  pad_to(&b, 64);
  size_t data_start = b.len;
  for (int i = 0; i < 4; i++) put_f32(&b, k_small_f32[i]);
  pad_to(&b, 64);
  cr_assert_eq(b.len - data_start, 64);
  /* Q8_0 blocks with q_j = j - 16 and d = 1.0 (fp16 0x3c00), then d = 0.5 (0x3800). */
  const uint16_t scales[2] = {0x3c00, 0x3800};
  for (int blk = 0; blk < 2; blk++) {
    put_u8(&b, (uint8_t)(scales[blk] & 0xff));
    put_u8(&b, (uint8_t)(scales[blk] >> 8));
    for (int j = 0; j < 32; j++) put_u8(&b, (uint8_t)(int8_t)(j - 16));
  }
  pad_to(&b, 64);
  cr_assert_eq(b.len - data_start, 192);
  for (int i = 0; i < 6; i++) {
    put_u8(&b, (uint8_t)(k_small_f16[i] & 0xff));
    put_u8(&b, (uint8_t)(k_small_f16[i] >> 8));
  }
  return b;
}

/* Open a copy of exactly len bytes, so the sanitizers catch any read past the end. */
static up_gguf *open_exact(const uint8_t *data, size_t len, char *err, size_t err_size, uint8_t **copy_out) {
  uint8_t *copy = malloc(len ? len : 1);
  cr_assert_not_null(copy);
  if (len) memcpy(copy, data, len);
  *copy_out = copy;
  return up_gguf_open_buffer(copy, len, "mem.gguf", err, err_size);
}

/* The file must be refused with a message containing each of the given fragments. */
static void expect_rejected(gguf_buf b, const char *fragment1, const char *fragment2) {
  char err[512] = "";
  uint8_t *copy;
  up_gguf *g = open_exact(b.data, b.len, err, sizeof err, &copy);
  cr_assert_null(g, "expected a load error mentioning '%s'", fragment1);
  up_gguf_close(g);
  cr_assert(strncmp(err, "mem.gguf: ", 10) == 0, "message names the file: %s", err);
  cr_assert_not_null(strstr(err, fragment1), "message '%s' lacks '%s'", err, fragment1);
  if (fragment2) cr_assert_not_null(strstr(err, fragment2), "message '%s' lacks '%s'", err, fragment2);
  free(copy);
  free(b.data);
}

static bool str_eq(up_gguf_str s, const char *expect) {
  return s.len == strlen(expect) && memcmp(s.data, expect, s.len) == 0;
}

static void assert_u32_key(const up_gguf *g, const char *key, uint32_t expect) {
  uint32_t value = 0;
  cr_assert(up_gguf_get_u32(g, key, &value), "key %s readable as u32", key);
  cr_assert_eq(value, expect, "%s is %u, expected %u", key, value, expect);
}

/* ---- round trip and getters ------------------------------------------------------- */

Test(gguf, small_file_round_trips) {
  gguf_buf b = small_file();
  char err[512] = "";
  uint8_t *copy;
  up_gguf *g = open_exact(b.data, b.len, err, sizeof err, &copy);
  cr_assert_not_null(g, "%s", err);
  cr_assert_eq(up_gguf_version(g), 3);
  cr_assert_str_eq(up_gguf_name(g), "mem.gguf");
  cr_assert_eq(up_gguf_alignment(g), 64);
  cr_assert_eq(up_gguf_data_offset(g) % 64, 0);
  cr_assert_eq(up_gguf_kv_count(g), 10);

  up_gguf_str s;
  cr_assert(up_gguf_get_str(g, "general.architecture", &s));
  cr_assert(str_eq(s, "llama"));
  assert_u32_key(g, "llama.block_count", 2);
  float f = 0;
  cr_assert(up_gguf_get_f32(g, "llama.rope.freq_base", &f));
  cr_assert_eq(f, 10000.0f);
  cr_assert(up_gguf_get_f32(g, "llama.block_count", &f), "integers read as f32");
  cr_assert_eq(f, 2.0f);
  bool flag = false;
  cr_assert(up_gguf_get_bool(g, "test.flag", &flag));
  cr_assert(flag);

  up_gguf_value_type elem_type;
  uint64_t count = 0;
  cr_assert(up_gguf_get_array_info(g, "tokenizer.ggml.tokens", &elem_type, &count));
  cr_assert_eq(elem_type, UP_GGUF_STRING);
  cr_assert_eq(count, 4);
  const char *tokens[] = {"<unk>", "", "hello", "world!"};
  for (uint64_t i = 0; i < 4; i++) {
    cr_assert(up_gguf_get_array_str(g, "tokenizer.ggml.tokens", i, &s));
    cr_assert(str_eq(s, tokens[i]), "token %llu", (unsigned long long)i);
  }
  float scores[3];
  cr_assert(up_gguf_get_array_f32(g, "tokenizer.ggml.scores", scores, 3));
  cr_assert_eq(scores[0], 0.5f);
  cr_assert_eq(scores[1], -1.25f);
  cr_assert_eq(scores[2], 3.0f);
  int32_t types[2];
  cr_assert(up_gguf_get_array_i32(g, "tokenizer.ggml.token_type", types, 2));
  cr_assert_eq(types[0], -2);
  cr_assert_eq(types[1], 7);

  /* Walking the metadata gives back the keys in file order. */
  up_gguf_str key;
  up_gguf_value_type type;
  cr_assert(up_gguf_kv_at(g, 0, &key, &type));
  cr_assert(str_eq(key, "general.architecture"));
  cr_assert_eq(type, UP_GGUF_STRING);
  cr_assert(up_gguf_kv_at(g, 9, &key, &type));
  cr_assert(str_eq(key, "general.alignment"));
  cr_assert_not(up_gguf_kv_at(g, 10, &key, &type));
  cr_assert_str_eq(up_gguf_value_type_name(UP_GGUF_ARRAY), "array");

  cr_assert_eq(up_gguf_tensor_count(g), 3);
  const up_gguf_tensor *norm = up_gguf_find_tensor(g, "norm.weight");
  cr_assert_not_null(norm);
  cr_assert_eq(norm, up_gguf_tensor_at(g, 0));
  cr_assert_eq(norm->n_dims, 1);
  cr_assert_eq(norm->dims[0], 4);
  cr_assert_eq(norm->dims[1], 1, "unused dims are 1");
  cr_assert_eq(norm->type, UP_GGML_F32);
  cr_assert_eq(norm->n_bytes, 16);
  cr_assert_eq((const uint8_t *)norm->data, copy + up_gguf_data_offset(g));
  float out[64];
  cr_assert(up_gguf_tensor_to_f32(norm, out, err, sizeof err), "%s", err);
  for (int i = 0; i < 4; i++) cr_assert_eq(out[i], k_small_f32[i]);

  const up_gguf_tensor *q = up_gguf_find_tensor(g, "blk.0.attn_q.weight");
  cr_assert_not_null(q);
  cr_assert_eq(q->type, UP_GGML_Q8_0);
  cr_assert_eq(q->dims[0], 32);
  cr_assert_eq(q->dims[1], 2);
  cr_assert_eq(q->n_elements, 64);
  cr_assert_eq(q->n_bytes, 68);
  cr_assert_eq(q->offset, 64);
  cr_assert(up_gguf_tensor_to_f32(q, out, err, sizeof err), "%s", err);
  cr_assert_eq(out[0], -16.0f);
  cr_assert_eq(out[31], 15.0f);
  cr_assert_eq(out[32], -8.0f);
  cr_assert_eq(out[63], 7.5f);

  const up_gguf_tensor *e = up_gguf_tensor_at(g, 2);
  cr_assert_str_eq(e->name, "embd.weight");
  cr_assert(up_gguf_tensor_to_f32(e, out, err, sizeof err), "%s", err);
  cr_assert_eq(out[0], 1.0f);
  cr_assert_eq(out[1], -2.0f);
  cr_assert_eq(out[4], 65504.0f);
  cr_assert_eq((const uint8_t *)e->data + e->n_bytes, copy + b.len, "the last tensor ends the file");

  cr_assert_null(up_gguf_find_tensor(g, "missing.weight"));
  cr_assert_null(up_gguf_tensor_at(g, 3));
  cr_assert_null(up_gguf_tensor_at(g, -1));
  up_gguf_close(g);
  free(copy);
  free(b.data);
}

Test(gguf, getters_refuse_what_the_type_cannot_represent) {
  gguf_buf b = small_file();
  char err[512] = "";
  uint8_t *copy;
  up_gguf *g = open_exact(b.data, b.len, err, sizeof err, &copy);
  cr_assert_not_null(g, "%s", err);
  uint32_t u = 77;
  cr_assert_not(up_gguf_get_u32(g, "test.i32_negative", &u), "negative i32 is no u32");
  cr_assert_not(up_gguf_get_u32(g, "general.architecture", &u), "a string is no number");
  cr_assert_not(up_gguf_get_u32(g, "llama.rope.freq_base", &u), "a float is no integer");
  cr_assert_not(up_gguf_get_u32(g, "no.such.key", &u));
  cr_assert_eq(u, 77, "out untouched on failure");
  float f = 7.0f;
  cr_assert_not(up_gguf_get_f32(g, "test.f64_huge", &f), "1e300 does not fit f32");
  cr_assert(up_gguf_get_f32(g, "test.i32_negative", &f));
  cr_assert_eq(f, -5.0f);
  bool flag;
  cr_assert_not(up_gguf_get_bool(g, "llama.block_count", &flag));
  up_gguf_str s;
  cr_assert_not(up_gguf_get_str(g, "llama.block_count", &s));
  cr_assert_not(up_gguf_get_array_str(g, "tokenizer.ggml.tokens", 4, &s), "index past the end");
  cr_assert_not(up_gguf_get_array_str(g, "tokenizer.ggml.scores", 0, &s), "not a string array");
  float scores[4] = {9, 9, 9, 9};
  cr_assert_not(up_gguf_get_array_f32(g, "tokenizer.ggml.scores", scores, 2), "count must match");
  cr_assert_not(up_gguf_get_array_f32(g, "tokenizer.ggml.tokens", scores, 4), "strings are no floats");
  cr_assert_eq(scores[0], 9.0f);
  int32_t ints[3];
  cr_assert_not(up_gguf_get_array_i32(g, "tokenizer.ggml.scores", ints, 3), "floats are no i32");
  cr_assert_not(up_gguf_get_array_info(g, "llama.block_count", NULL, NULL));
  cr_assert(up_gguf_has_key(g, "general.alignment"));
  cr_assert_not(up_gguf_has_key(g, "general.alignmen"));
  up_gguf_close(g);
  free(copy);
  free(b.data);
}

Test(gguf, version_2_and_default_alignment) {
  gguf_buf b = {0};
  put_header(&b, 2, 1, 1);
  put_kv_str(&b, "general.architecture", "llama");
  const uint64_t dims[] = {2};
  put_tensor_info(&b, "w", 1, dims, UP_GGML_BF16, 0);
  pad_to(&b, 32);
  size_t data_start = b.len;
  put_u8(&b, 0x80), put_u8(&b, 0x3f); /* bf16 1.0 */
  put_u8(&b, 0x40), put_u8(&b, 0xc0); /* bf16 -3.0 */
  char err[512] = "";
  uint8_t *copy;
  up_gguf *g = open_exact(b.data, b.len, err, sizeof err, &copy);
  cr_assert_not_null(g, "%s", err);
  cr_assert_eq(up_gguf_version(g), 2);
  cr_assert_eq(up_gguf_alignment(g), 32);
  cr_assert_eq(up_gguf_data_offset(g), data_start);
  float out[2];
  cr_assert(up_gguf_tensor_to_f32(up_gguf_tensor_at(g, 0), out, err, sizeof err), "%s", err);
  cr_assert_eq(out[0], 1.0f);
  cr_assert_eq(out[1], -3.0f);
  up_gguf_close(g);
  free(copy);
  free(b.data);
}

Test(gguf, file_entry_point_reports_missing_file) {
  char err[512] = "";
  cr_assert_null(up_gguf_open("/nonexistent/dir/model.gguf", err, sizeof err));
  cr_assert_not_null(strstr(err, "/nonexistent/dir/model.gguf: cannot open"), "%s", err);
  cr_assert_null(up_gguf_open("/", err, sizeof err));
  cr_assert_not_null(strstr(err, "not a regular file"), "%s", err);
}

/* ---- malformed files --------------------------------------------------------------- */

Test(gguf, truncation_at_every_length_is_an_error) {
  gguf_buf b = small_file();
  for (size_t len = 0; len < b.len; len++) {
    char err[512] = "";
    uint8_t *copy;
    up_gguf *g = open_exact(b.data, len, err, sizeof err, &copy);
    cr_assert_null(g, "a %zu-byte prefix of the %zu-byte file was accepted", len, b.len);
    cr_assert(strncmp(err, "mem.gguf: ", 10) == 0 && strlen(err) > 12, "prefix %zu: message '%s'", len, err);
    free(copy);
  }
  free(b.data);
}

Test(gguf, bad_magic) {
  gguf_buf b = small_file();
  b.data[0] = 'X';
  expect_rejected(b, "not a GGUF file", "58 47 55 46");
}

Test(gguf, version_1_is_refused) {
  gguf_buf b = small_file();
  b.data[4] = 1;
  expect_rejected(b, "GGUF version 1 is not supported", NULL);
}

Test(gguf, big_endian_is_refused) {
  gguf_buf b = small_file();
  b.data[4] = 0, b.data[7] = 3;
  expect_rejected(b, "big-endian", NULL);
}

static gguf_buf file_with_alignment(uint32_t alignment) {
  gguf_buf b = {0};
  put_header(&b, 3, 0, 1);
  put_kv_u32(&b, "general.alignment", alignment);
  return b;
}

Test(gguf, alignment_must_be_a_power_of_two) {
  expect_rejected(file_with_alignment(24), "'general.alignment' is 24", "power of two");
  expect_rejected(file_with_alignment(0), "'general.alignment' is 0", "power of two");
  gguf_buf b = {0};
  put_header(&b, 3, 0, 1);
  put_kv_str(&b, "general.alignment", "32");
  expect_rejected(b, "'general.alignment' has type string", NULL);
}

/* One tensor of n_dims/dims/type at offset, after one metadata entry, with data_bytes
 * of zeros after the aligned header. */
static gguf_buf file_with_tensor(const char *name, uint32_t n_dims, const uint64_t *dims, uint32_t type,
                                 uint64_t offset, size_t data_bytes) {
  gguf_buf b = {0};
  put_header(&b, 3, 1, 1);
  put_kv_str(&b, "general.architecture", "llama");
  put_tensor_info(&b, name, n_dims, dims, type, offset);
  pad_to(&b, 32);
  for (size_t i = 0; i < data_bytes; i++) put_u8(&b, 0);
  return b;
}

Test(gguf, misaligned_tensor_offset) {
  const uint64_t dims[] = {4};
  expect_rejected(file_with_tensor("blk.0.attn_norm.weight", 1, dims, UP_GGML_F32, 4, 64),
                  "tensor 'blk.0.attn_norm.weight': data offset 4 is not a multiple of the alignment 32", NULL);
}

Test(gguf, tensor_data_past_the_end_of_the_file) {
  const uint64_t dims[] = {8, 8};
  gguf_buf b = file_with_tensor("blk.0.attn_q.weight", 2, dims, UP_GGML_F32, 32, 64);
  char expect[256];
  size_t data_start = b.len - 64;
  snprintf(expect, sizeof expect,
           "tensor 'blk.0.attn_q.weight': data [%zu..%zu) lies beyond the end of the file (size %zu)",
           data_start + 32, data_start + 32 + 256, b.len);
  expect_rejected(b, expect, NULL);
  /* An offset near 2^64 must not wrap around into the file. */
  const uint64_t one[] = {1};
  expect_rejected(file_with_tensor("w", 1, one, UP_GGML_F32, UINT64_MAX - 31, 64), "tensor 'w': data [",
                  "lies beyond the end of the file");
}

/* Two tensors whose data share bytes: each would read the other's values. */
Test(gguf, overlapping_tensor_data) {
  const uint64_t dims[] = {16};
  gguf_buf b = {0};
  put_header(&b, 3, 3, 0);
  put_tensor_info(&b, "blk.0.attn_norm.weight", 1, dims, UP_GGML_F32, 0);
  put_tensor_info(&b, "blk.0.ffn_norm.weight", 1, dims, UP_GGML_F32, 128);
  put_tensor_info(&b, "output_norm.weight", 1, dims, UP_GGML_F32, 32);
  pad_to(&b, 32);
  for (int i = 0; i < 192; i++) put_u8(&b, 0);
  expect_rejected(b, "tensors 'blk.0.attn_norm.weight' (data offsets [0..64)) and 'output_norm.weight' ([32..96))",
                  "overlap");
  /* Back to back is fine, in any order of the tensor infos. */
  gguf_buf ok = {0};
  put_header(&ok, 3, 2, 0);
  put_tensor_info(&ok, "b", 1, dims, UP_GGML_F32, 64);
  put_tensor_info(&ok, "a", 1, dims, UP_GGML_F32, 0);
  pad_to(&ok, 32);
  for (int i = 0; i < 128; i++) put_u8(&ok, 0);
  char err[512] = "";
  uint8_t *copy;
  up_gguf *g = open_exact(ok.data, ok.len, err, sizeof err, &copy);
  cr_expect_not_null(g, "adjacent tensors refused: %s", err);
  up_gguf_close(g);
  free(copy);
  free(ok.data);
}

Test(gguf, dims_overflow) {
  const uint64_t dims[] = {1ull << 40, 1ull << 40};
  expect_rejected(file_with_tensor("big", 2, dims, UP_GGML_F32, 0, 0), "tensor 'big'", "overflows");
  const uint64_t negative[] = {1ull << 63};
  expect_rejected(file_with_tensor("neg", 1, negative, UP_GGML_F32, 0, 0), "tensor 'neg'", "beyond int64");
  /* Elements fit int64 but bytes do not: 2^62 F32 elements are 2^64 bytes. */
  const uint64_t wide[] = {1ull << 62};
  expect_rejected(file_with_tensor("wide", 1, wide, UP_GGML_F32, 0, 0), "tensor 'wide'", "overflows");
}

Test(gguf, bad_tensor_shapes) {
  const uint64_t dims[] = {1, 1, 1, 1, 1};
  expect_rejected(file_with_tensor("t5", 5, dims, UP_GGML_F32, 0, 32), "tensor 't5': 5 dimensions", NULL);
  expect_rejected(file_with_tensor("t0", 0, dims, UP_GGML_F32, 0, 32), "tensor 't0': 0 dimensions", NULL);
  const uint64_t q_dims[] = {16, 4};
  expect_rejected(file_with_tensor("blk.0.ffn_up.weight", 2, q_dims, UP_GGML_Q4_0, 0, 64),
                  "tensor 'blk.0.ffn_up.weight': first dimension 16 is not a multiple of the Q4_0 block size 32", NULL);
}

Test(gguf, unknown_tensor_type) {
  const uint64_t dims[] = {32};
  expect_rejected(file_with_tensor("blk.3.ffn_down.weight", 1, dims, 13 /* Q5_K */, 0, 256),
                  "tensor 'blk.3.ffn_down.weight': unsupported ggml type Q5_K (id 13", NULL);
  expect_rejected(file_with_tensor("w", 1, dims, 200, 0, 256), "tensor 'w': unsupported ggml type unknown (id 200",
                  NULL);
}

Test(gguf, huge_string_length) {
  gguf_buf b = {0};
  put_header(&b, 3, 0, 1);
  put_u64(&b, 1ull << 60); /* key length */
  put(&b, "general.name", 12);
  expect_rejected(b, "string length 1152921504606846976", "exceeds the 12 bytes left");

  gguf_buf v = {0};
  put_header(&v, 3, 0, 1);
  put_str(&v, "general.name");
  put_u32(&v, UP_GGUF_STRING);
  put_u64(&v, UINT64_MAX);
  expect_rejected(v, "string length 18446744073709551615", NULL);
}

Test(gguf, huge_array_count) {
  gguf_buf b = {0};
  put_header(&b, 3, 0, 1);
  put_array_header(&b, "tokenizer.ggml.tokens", UP_GGUF_STRING, 1ull << 60);
  put_str(&b, "a");
  expect_rejected(b, "metadata 'tokenizer.ggml.tokens': array of 1152921504606846976 string elements", "cannot fit");

  gguf_buf n = {0};
  put_header(&n, 3, 0, 1);
  put_array_header(&n, "tokenizer.ggml.scores", UP_GGUF_F32, UINT64_MAX / 2);
  put_f32(&n, 1.0f);
  expect_rejected(n, "metadata 'tokenizer.ggml.scores': array of", "cannot fit");
}

Test(gguf, huge_header_counts) {
  gguf_buf b = {0};
  put_header(&b, 3, 0, UINT64_MAX);
  put_kv_u32(&b, "a", 1);
  expect_rejected(b, "header claims 18446744073709551615 metadata entries", NULL);
  gguf_buf t = {0};
  put_header(&t, 3, 1ull << 61, 0);
  put_u64(&t, 0);
  expect_rejected(t, "header claims 2305843009213693952 tensors", NULL);
}

Test(gguf, duplicate_tensor_name) {
  gguf_buf b = {0};
  put_header(&b, 3, 2, 0);
  const uint64_t dims[] = {8};
  put_tensor_info(&b, "output_norm.weight", 1, dims, UP_GGML_F32, 0);
  put_tensor_info(&b, "output_norm.weight", 1, dims, UP_GGML_F32, 32);
  pad_to(&b, 32);
  for (int i = 0; i < 64; i++) put_u8(&b, 0);
  expect_rejected(b, "duplicate tensor name 'output_norm.weight'", NULL);
}

Test(gguf, duplicate_key) {
  gguf_buf b = {0};
  put_header(&b, 3, 0, 2);
  put_kv_u32(&b, "llama.block_count", 1);
  put_kv_u32(&b, "llama.block_count", 2);
  expect_rejected(b, "duplicate metadata key 'llama.block_count'", NULL);
}

Test(gguf, malformed_values) {
  gguf_buf nested = {0};
  put_header(&nested, 3, 0, 1);
  put_array_header(&nested, "test.nested", UP_GGUF_ARRAY, 0);
  expect_rejected(nested, "metadata 'test.nested': nested arrays are not supported", NULL);

  gguf_buf type = {0};
  put_header(&type, 3, 0, 1);
  put_str(&type, "test.type");
  put_u32(&type, 13);
  put_u32(&type, 0);
  expect_rejected(type, "metadata 'test.type': unknown value type 13", NULL);

  gguf_buf boolean = {0};
  put_header(&boolean, 3, 0, 1);
  put_str(&boolean, "test.flag");
  put_u32(&boolean, UP_GGUF_BOOL);
  put_u8(&boolean, 2);
  expect_rejected(boolean, "metadata 'test.flag': bool value 2", NULL);

  gguf_buf nul = {0};
  put_header(&nul, 3, 0, 1);
  put_u64(&nul, 3);
  put(&nul, "a\0b", 3);
  put_u32(&nul, UP_GGUF_U8);
  put_u8(&nul, 0);
  expect_rejected(nul, "name holds a NUL byte", NULL);
}

Test(gguf, empty_buffer) {
  char err[512] = "";
  cr_assert_null(up_gguf_open_buffer(NULL, 0, "empty", err, sizeof err));
  cr_assert_not_null(strstr(err, "empty: 0 bytes"), "%s", err);
}

/* ---- dequantization known answers ----------------------------------------------- */

Test(ggml_dequant, fp16_special_values) {
  cr_assert_eq(up_fp16_to_f32(0x3c00), 1.0f);
  cr_assert_eq(up_fp16_to_f32(0xc000), -2.0f);
  cr_assert_eq(up_fp16_to_f32(0x3555), 0.333251953125f); /* 1365/4096 */
  cr_assert_eq(up_fp16_to_f32(0x7bff), 65504.0f);        /* largest normal */
  cr_assert_eq(up_fp16_to_f32(0x0400), 6.103515625e-05f); /* smallest normal 2^-14 */
  cr_assert_eq(up_fp16_to_f32(0x0001), 5.9604644775390625e-08f); /* smallest subnormal 2^-24 */
  cr_assert_eq(up_fp16_to_f32(0x03ff), 6.097555160522461e-05f);  /* largest subnormal 1023 * 2^-24 */
  cr_assert_eq(up_fp16_to_f32(0x8001), -5.9604644775390625e-08f);
  float neg_zero = up_fp16_to_f32(0x8000);
  cr_assert(neg_zero == 0.0f && signbit(neg_zero));
  cr_assert(isinf(up_fp16_to_f32(0x7c00)) && up_fp16_to_f32(0x7c00) > 0);
  cr_assert(isinf(up_fp16_to_f32(0xfc00)) && up_fp16_to_f32(0xfc00) < 0);
  cr_assert(isnan(up_fp16_to_f32(0x7e00)));
  cr_assert(isnan(up_fp16_to_f32(0xfc01)));
}

Test(ggml_dequant, bf16_values) {
  cr_assert_eq(up_bf16_to_f32(0x3f80), 1.0f);
  cr_assert_eq(up_bf16_to_f32(0xc040), -3.0f);
  cr_assert_eq(up_bf16_to_f32(0x4049), 3.140625f);
  cr_assert_eq(up_bf16_to_f32(0x0001), 9.183549615799121e-41f); /* subnormal 2^-133 */
  cr_assert(isinf(up_bf16_to_f32(0xff80)) && up_bf16_to_f32(0xff80) < 0);
  cr_assert(isnan(up_bf16_to_f32(0x7fc0)));
}

Test(ggml_dequant, block_layouts_and_sizes) {
  cr_assert_eq(up_ggml_block_size(UP_GGML_F32), 1);
  cr_assert_eq(up_ggml_block_bytes(UP_GGML_F32), 4);
  cr_assert_eq(up_ggml_block_bytes(UP_GGML_F16), 2);
  cr_assert_eq(up_ggml_block_bytes(UP_GGML_BF16), 2);
  cr_assert_eq(up_ggml_block_size(UP_GGML_Q8_0), 32);
  cr_assert_eq(up_ggml_block_bytes(UP_GGML_Q8_0), 34);
  cr_assert_eq(up_ggml_block_bytes(UP_GGML_Q4_0), 18);
  cr_assert_eq(up_ggml_block_bytes(UP_GGML_Q4_1), 20);
  cr_assert_not(up_ggml_type_is_known(13));
  cr_assert(up_ggml_type_is_known(30));
  cr_assert_str_eq(up_ggml_type_name(UP_GGML_Q4_1), "Q4_1");
  cr_assert_str_eq(up_ggml_type_name((up_ggml_type)99), "unknown");
  cr_assert_eq(up_ggml_block_size((up_ggml_type)99), 0);

  uint64_t bytes = 0;
  cr_assert(up_ggml_bytes_for(UP_GGML_Q4_1, 576 * 576, &bytes));
  cr_assert_eq(bytes, 207360); /* SmolLM2's blk.0.attn_q.weight */
  cr_assert(up_ggml_bytes_for(UP_GGML_Q8_0, 0, &bytes));
  cr_assert_eq(bytes, 0);
  cr_assert_not(up_ggml_bytes_for(UP_GGML_Q8_0, 33, &bytes), "not whole blocks");
  cr_assert_not(up_ggml_bytes_for(UP_GGML_F32, -4, &bytes));
  cr_assert_not(up_ggml_bytes_for(UP_GGML_F32, INT64_MAX, &bytes), "2^63 - 1 floats of 4 bytes overflow 64 bits");
  cr_assert(up_ggml_bytes_for(UP_GGML_Q8_0, INT64_MAX / 32 * 32, &bytes), "2^58 - 1 blocks of 34 bytes fit");
  cr_assert_eq(bytes, (uint64_t)(INT64_MAX / 32) * 34);
  cr_assert_not(up_ggml_bytes_for((up_ggml_type)7, 32, &bytes));
  float out[1];
  cr_assert_not(up_ggml_dequantize(UP_GGML_Q4_0, "", out, 16));
}

Test(ggml_dequant, f32_from_unaligned_bytes) {
  /* 1.0f, -0.5f little-endian, one byte into the buffer. */
  const uint8_t bytes[] = {0xaa, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xbf};
  float out[2];
  cr_assert(up_ggml_dequantize(UP_GGML_F32, bytes + 1, out, 2));
  cr_assert_eq(out[0], 1.0f);
  cr_assert_eq(out[1], -0.5f);
}

Test(ggml_dequant, q8_0_blocks) {
  /* Block 0: d = 0.5 (fp16 0x3800), q_j = j - 16: values -8, -7.5, ..., 7.5.
   * Block 1: d = -2 (0xc000), q = {-128, 127, 0, 1, 0...}: 256, -254, -0, -2, -0... */
  uint8_t blocks[68] = {0};
  blocks[0] = 0x00, blocks[1] = 0x38;
  for (int j = 0; j < 32; j++) blocks[2 + j] = (uint8_t)(int8_t)(j - 16);
  blocks[34] = 0x00, blocks[35] = 0xc0;
  blocks[36] = 0x80, blocks[37] = 0x7f, blocks[39] = 0x01;
  float out[64];
  cr_assert(up_ggml_dequantize(UP_GGML_Q8_0, blocks, out, 64));
  const float expect0[32] = {-8, -7.5, -7, -6.5, -6, -5.5, -5, -4.5, -4, -3.5, -3, -2.5, -2, -1.5, -1, -0.5,
                             0,  0.5,  1,  1.5,  2,  2.5,  3,  3.5,  4,  4.5,  5,  5.5,  6,  6.5,  7,  7.5};
  for (int j = 0; j < 32; j++) cr_assert_eq(out[j], expect0[j], "element %d: %g", j, out[j]);
  cr_assert_eq(out[32], 256.0f);
  cr_assert_eq(out[33], -254.0f);
  cr_assert_eq(out[34], 0.0f);
  cr_assert_eq(out[35], -2.0f);
  for (int j = 36; j < 64; j++) cr_assert_eq(out[j], 0.0f);
}

Test(ggml_dequant, q4_0_block) {
  /* d = 2 (0x4000); byte j = j | (15 - j) << 4: element j (low nibble) is (j - 8) * 2,
   * element j + 16 (high nibble) is (15 - j - 8) * 2. */
  uint8_t block[18] = {0x00, 0x40};
  for (int j = 0; j < 16; j++) block[2 + j] = (uint8_t)(j | (15 - j) << 4);
  float out[32];
  cr_assert(up_ggml_dequantize(UP_GGML_Q4_0, block, out, 32));
  const float expect[32] = {-16, -14, -12, -10, -8, -6, -4, -2, 0,  2,  4,  6,  8,  10,  12,  14,
                            14,  12,  10,  8,   6,  4,  2,  0,  -2, -4, -6, -8, -10, -12, -14, -16};
  for (int j = 0; j < 32; j++) cr_assert_eq(out[j], expect[j], "element %d: %g", j, out[j]);
}

Test(ggml_dequant, q4_1_blocks) {
  /* Block 0: d = 0.25 (0x3400), m = -1 (0xbc00); byte j = j | (15 - j) << 4:
   * element j is j/4 - 1, element j + 16 is (15 - j)/4 - 1.
   * Block 1: d = 1, m = 0.5 (0x3c00, 0x3800), every byte 0xf0: low 0.5, high 15.5. */
  uint8_t blocks[40] = {0x00, 0x34, 0x00, 0xbc};
  for (int j = 0; j < 16; j++) blocks[4 + j] = (uint8_t)(j | (15 - j) << 4);
  blocks[20] = 0x00, blocks[21] = 0x3c, blocks[22] = 0x00, blocks[23] = 0x38;
  for (int j = 0; j < 16; j++) blocks[24 + j] = 0xf0;
  float out[64];
  cr_assert(up_ggml_dequantize(UP_GGML_Q4_1, blocks, out, 64));
  const float expect0[32] = {-1,   -0.75, -0.5, -0.25, 0,     0.25, 0.5,  0.75, 1,     1.25, 1.5,
                             1.75, 2,     2.25, 2.5,   2.75,  2.75, 2.5,  2.25, 2,     1.75, 1.5,
                             1.25, 1,     0.75, 0.5,   0.25,  0,    -0.25, -0.5, -0.75, -1};
  for (int j = 0; j < 32; j++) cr_assert_eq(out[j], expect0[j], "element %d: %g", j, out[j]);
  for (int j = 0; j < 16; j++) {
    cr_assert_eq(out[32 + j], 0.5f);
    cr_assert_eq(out[48 + j], 15.5f);
  }
}

Test(ggml_dequant, f16_and_bf16_rows) {
  const uint8_t f16[] = {0x00, 0x3c, 0x01, 0x00, 0x00, 0x7c};
  float out[3];
  cr_assert(up_ggml_dequantize(UP_GGML_F16, f16, out, 3));
  cr_assert_eq(out[0], 1.0f);
  cr_assert_eq(out[1], 5.9604644775390625e-08f);
  cr_assert(isinf(out[2]));
  const uint8_t bf16[] = {0x80, 0x3f, 0x40, 0xc0};
  cr_assert(up_ggml_dequantize(UP_GGML_BF16, bf16, out, 2));
  cr_assert_eq(out[0], 1.0f);
  cr_assert_eq(out[1], -3.0f);
}

/* ---- real files -------------------------------------------------------------------- */

Test(gguf, shared_tiny_llama) {
  char err[512] = "";
  up_gguf *g = up_gguf_open(TINY_LLAMA_GGUF, err, sizeof err);
  cr_assert_not_null(g, "%s", err);
  cr_assert_eq(up_gguf_version(g), 3);
  up_gguf_str s;
  cr_assert(up_gguf_get_str(g, "general.architecture", &s));
  cr_assert(str_eq(s, "llama"));
  assert_u32_key(g, "llama.block_count", 1);
  assert_u32_key(g, "llama.embedding_length", 8);
  assert_u32_key(g, "llama.attention.head_count", 2);
  assert_u32_key(g, "llama.attention.head_count_kv", 2);
  assert_u32_key(g, "llama.feed_forward_length", 32);
  float eps;
  cr_assert(up_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &eps));
  cr_assert_float_eq(eps, 1e-5f, 1e-12f);
  cr_assert(up_gguf_get_str(g, "tokenizer.ggml.model", &s));
  cr_assert(str_eq(s, "llama"));

  up_gguf_value_type elem_type;
  uint64_t count = 0;
  cr_assert(up_gguf_get_array_info(g, "tokenizer.ggml.tokens", &elem_type, &count));
  cr_assert_eq(elem_type, UP_GGUF_STRING);
  cr_assert_eq(count, 32000);
  const char *first[] = {"<unk>", "<s>", "</s>", "<0x00>"};
  for (uint64_t i = 0; i < 4; i++) {
    cr_assert(up_gguf_get_array_str(g, "tokenizer.ggml.tokens", i, &s));
    cr_assert(str_eq(s, first[i]), "token %llu is '%.*s'", (unsigned long long)i, (int)s.len, s.data);
  }
  cr_assert(up_gguf_get_array_str(g, "tokenizer.ggml.tokens", 31999, &s));
  cr_assert_gt(s.len, 0);
  cr_assert(up_gguf_get_array_info(g, "tokenizer.ggml.scores", &elem_type, &count));
  cr_assert_eq(elem_type, UP_GGUF_F32);
  cr_assert_eq(count, 32000);
  float *scores = malloc(32000 * sizeof *scores);
  cr_assert(up_gguf_get_array_f32(g, "tokenizer.ggml.scores", scores, 32000));
  for (int i = 0; i < 32000; i++) cr_assert(isfinite(scores[i]));
  free(scores);
  int32_t *token_types = malloc(32000 * sizeof *token_types);
  cr_assert(up_gguf_get_array_i32(g, "tokenizer.ggml.token_type", token_types, 32000));
  cr_assert_eq(token_types[0], 2, "<unk> is UNKNOWN");
  cr_assert_eq(token_types[1], 3, "<s> is CONTROL");
  free(token_types);

  cr_assert_eq(up_gguf_tensor_count(g), 12);
  const char *layer_tensors[] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                                 "ffn_norm",  "ffn_gate", "ffn_up", "ffn_down"};
  for (int i = 0; i < 9; i++) {
    char name[64];
    snprintf(name, sizeof name, "blk.0.%s.weight", layer_tensors[i]);
    cr_assert_not_null(up_gguf_find_tensor(g, name), "%s", name);
  }
  const up_gguf_tensor *q = up_gguf_find_tensor(g, "blk.0.attn_q.weight");
  cr_assert_eq(q->type, UP_GGML_F16);
  cr_assert_eq(q->n_dims, 2);
  cr_assert_eq(q->dims[0], 8);
  cr_assert_eq(q->dims[1], 8);
  const up_gguf_tensor *down = up_gguf_find_tensor(g, "blk.0.ffn_down.weight");
  cr_assert_eq(down->dims[0], 32);
  cr_assert_eq(down->dims[1], 8);
  const up_gguf_tensor *norm = up_gguf_find_tensor(g, "output_norm.weight");
  cr_assert_not_null(norm);
  cr_assert_eq(norm->type, UP_GGML_F32);
  cr_assert_eq(norm->n_dims, 1);
  cr_assert_eq(norm->dims[0], 8);
  cr_assert_not_null(up_gguf_find_tensor(g, "output.weight"));

  const up_gguf_tensor *embd = up_gguf_find_tensor(g, "token_embd.weight");
  cr_assert_not_null(embd);
  cr_assert_eq(embd->type, UP_GGML_F16);
  cr_assert_eq(embd->dims[0], 8);
  cr_assert_eq(embd->dims[1], 32000);
  cr_assert_eq(embd->n_bytes, 8 * 32000 * 2);
  float *values = malloc((size_t)embd->n_elements * sizeof *values);
  cr_assert(up_gguf_tensor_to_f32(embd, values, err, sizeof err), "%s", err);
  int nonzero = 0;
  for (int64_t i = 0; i < embd->n_elements; i++) {
    cr_assert(isfinite(values[i]), "element %lld", (long long)i);
    nonzero += values[i] != 0.0f;
  }
  cr_assert_gt(nonzero, embd->n_elements / 2, "random weights are mostly non-zero");
  free(values);
  up_gguf_close(g);
}

Test(gguf, smollm2_135m_q4_1) {
  const char *home = getenv("HOME");
  char path[1024];
  snprintf(path, sizeof path, "%s/.cache/uniprefill-bench/models/SmolLM2-135M-Instruct.Q4_1.gguf",
           home ? home : "");
  FILE *probe = home ? fopen(path, "rb") : NULL;
  if (!probe) cr_skip_test("SmolLM2-135M-Instruct.Q4_1.gguf is not cached at %s", path);
  fclose(probe);

  char err[512] = "";
  up_gguf *g = up_gguf_open(path, err, sizeof err);
  cr_assert_not_null(g, "%s", err);
  cr_assert_eq(up_gguf_tensor_count(g), 272);
  const up_gguf_tensor *embd = up_gguf_find_tensor(g, "token_embd.weight");
  cr_assert_not_null(embd);
  cr_assert_eq(embd->type, UP_GGML_Q8_0);
  cr_assert_eq(embd->n_dims, 2);
  cr_assert_eq(embd->dims[0], 576);
  cr_assert_eq(embd->dims[1], 49152);
  const up_gguf_tensor *q = up_gguf_find_tensor(g, "blk.0.attn_q.weight");
  cr_assert_not_null(q);
  cr_assert_eq(q->type, UP_GGML_Q4_1);
  cr_assert_eq(q->dims[0], 576);
  cr_assert_eq(q->dims[1], 576);

  assert_u32_key(g, "llama.block_count", 30);
  assert_u32_key(g, "llama.attention.head_count", 9);
  assert_u32_key(g, "llama.attention.head_count_kv", 3);
  float base;
  cr_assert(up_gguf_get_f32(g, "llama.rope.freq_base", &base));
  cr_assert_eq(base, 100000.0f);
  up_gguf_str s;
  cr_assert(up_gguf_get_str(g, "tokenizer.ggml.model", &s));
  cr_assert(str_eq(s, "gpt2"));
  up_gguf_value_type elem_type;
  uint64_t count;
  cr_assert(up_gguf_get_array_info(g, "tokenizer.ggml.merges", &elem_type, &count));
  cr_assert_eq(elem_type, UP_GGUF_STRING);
  cr_assert_eq(count, 48900);
  cr_assert(up_gguf_get_array_info(g, "tokenizer.ggml.tokens", &elem_type, &count));
  cr_assert_eq(count, 49152);
  cr_assert(up_gguf_get_array_str(g, "tokenizer.ggml.tokens", 0, &s));
  cr_assert(str_eq(s, "<|endoftext|>"));
  bool add_bos;
  cr_assert(up_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos));

  /* The quantized weights decode to finite values of a trained model's scale. */
  float *values = malloc((size_t)q->n_elements * sizeof *values);
  cr_assert(up_gguf_tensor_to_f32(q, values, err, sizeof err), "%s", err);
  double sum_sq = 0;
  for (int64_t i = 0; i < q->n_elements; i++) {
    cr_assert(isfinite(values[i]));
    sum_sq += (double)values[i] * values[i];
  }
  double rms = sqrt(sum_sq / (double)q->n_elements);
  cr_assert(rms > 1e-3 && rms < 10.0, "attn_q rms %g", rms);
  free(values);
  float row[576];
  cr_assert(up_ggml_dequantize(embd->type, embd->data, row, 576));
  for (int i = 0; i < 576; i++) cr_assert(isfinite(row[i]));
  up_gguf_close(g);
}
