/* test_safetensors.c — the .safetensors reader: files written here round-trip their
 * bf16/f16/f32 values, names, shapes and metadata through a buffer and through the
 * memory map; every malformed header (each truncation of a small file, bad lengths,
 * bad JSON, unsupported dtypes, shape/offset mismatches, overlaps, duplicates) is an
 * error message naming the file and tensor, not a crash. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/checkpoint/safetensors.h"
#include "tests/safetensors_writer.h"

static const float k_f32_values[6] = {1.0f, -2.5f, 3.25e-3f, 65504.0f, -0.0f, 1e30f};
/* bf16 bit patterns and their values: 1, -2, 0.15625, 2^-133 (bf16 keeps fp32's range), inf. */
static const uint16_t k_bf16_bits[5] = {0x3F80, 0xC000, 0x3E20, 0x0001, 0x7F80};
/* fp16 bit patterns: 1, -2, 65504 (largest), 2^-24 (smallest subnormal), largest
 * subnormal, -0, -inf. */
static const uint16_t k_f16_bits[7] = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x03FF, 0x8000, 0xFC00};

static void le16(uint8_t *out, const uint16_t *bits, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = (uint8_t)(bits[i] & 0xFF);
    out[2 * i + 1] = (uint8_t)(bits[i] >> 8);
  }
}

/* Three tensors of the three dtypes plus metadata, every byte of data used. */
static void write_sample(st_writer *w) {
  memset(w, 0, sizeof *w);
  st_writer_raw_entry(w, "\"__metadata__\": {\"format\": \"pt\"}");
  const int64_t shape_f32[2] = {2, 3};
  st_writer_add(w, "model.f32", "F32", shape_f32, 2, k_f32_values, sizeof k_f32_values); /* host is little-endian */
  uint8_t bytes[32];
  le16(bytes, k_bf16_bits, 5);
  const int64_t shape_bf16[1] = {5};
  st_writer_add(w, "model.bf16", "BF16", shape_bf16, 1, bytes, 10);
  le16(bytes, k_f16_bits, 7);
  const int64_t shape_f16[3] = {7, 1, 1};
  st_writer_add(w, "model.f16", "F16", shape_f16, 3, bytes, 14);
}

static void check_sample(const up_safetensors *st) {
  cr_assert_eq(up_safetensors_tensor_count(st), 3);
  cr_assert_str_eq(up_safetensors_tensor_at(st, 0)->name, "model.f32", "header order is kept");
  cr_assert_str_eq(up_safetensors_tensor_at(st, 2)->name, "model.f16");
  cr_assert_null(up_safetensors_tensor_at(st, 3));
  cr_assert_null(up_safetensors_tensor_at(st, -1));
  cr_assert_str_eq(up_safetensors_metadata(st, "format"), "pt");
  cr_assert_null(up_safetensors_metadata(st, "missing"));
  cr_assert_null(up_safetensors_find(st, "model.f64"));
  char err[256] = "";
  float out[8];

  const up_st_tensor *t = up_safetensors_find(st, "model.f32");
  cr_assert_not_null(t);
  cr_assert_eq(t->dtype, UP_ST_F32);
  cr_assert_eq(t->n_dims, 2);
  cr_assert_eq(t->shape[0], 2);
  cr_assert_eq(t->shape[1], 3);
  cr_assert_eq(t->n_elements, 6);
  cr_assert_eq(t->n_bytes, 24);
  cr_assert(up_safetensors_to_f32(t, out, 0, 6, err, sizeof err), "%s", err);
  for (int i = 0; i < 6; ++i) cr_assert(memcmp(&out[i], &k_f32_values[i], 4) == 0, "f32 element %d", i);
  cr_assert(signbit(out[4]), "-0 keeps its sign");

  t = up_safetensors_find(st, "model.bf16");
  cr_assert_eq(t->dtype, UP_ST_BF16);
  cr_assert(up_safetensors_to_f32(t, out, 0, 5, err, sizeof err), "%s", err);
  const float bf16_expect[4] = {1.0f, -2.0f, 0.15625f, ldexpf(1.0f, -133)};
  for (int i = 0; i < 4; ++i) cr_assert_eq(out[i], bf16_expect[i], "bf16 element %d: %g", i, out[i]);
  cr_assert(isinf(out[4]) && out[4] > 0);

  t = up_safetensors_find(st, "model.f16");
  cr_assert_eq(t->dtype, UP_ST_F16);
  cr_assert_eq(t->n_dims, 3);
  cr_assert(up_safetensors_to_f32(t, out, 0, 7, err, sizeof err), "%s", err);
  const float f16_expect[5] = {1.0f, -2.0f, 65504.0f, ldexpf(1.0f, -24), 1023.0f * ldexpf(1.0f, -24)};
  for (int i = 0; i < 5; ++i) cr_assert_eq(out[i], f16_expect[i], "f16 element %d: %g", i, out[i]);
  cr_assert(out[5] == 0.0f && signbit(out[5]), "-0");
  cr_assert(isinf(out[6]) && out[6] < 0, "-inf");

  /* A sub-range, and ranges outside the tensor. */
  cr_assert(up_safetensors_to_f32(t, out, 2, 2, err, sizeof err), "%s", err);
  cr_assert_eq(out[0], 65504.0f);
  cr_assert_eq(out[1], ldexpf(1.0f, -24));
  cr_assert(up_safetensors_to_f32(t, out, 7, 0, err, sizeof err), "an empty range at the end is fine");
  cr_assert_not(up_safetensors_to_f32(t, out, 6, 2, err, sizeof err));
  cr_assert(strstr(err, "model.f16") && strstr(err, "outside"), "%s", err);
  cr_assert_not(up_safetensors_to_f32(t, out, -1, 1, err, sizeof err));
}

Test(safetensors, round_trip_from_a_buffer_and_a_file) {
  st_writer w;
  write_sample(&w);
  size_t size;
  uint8_t *bytes = st_writer_bytes(&w, &size);
  char err[256] = "";
  up_safetensors *st = up_safetensors_open_buffer(bytes, size, "sample", err, sizeof err);
  cr_assert_not_null(st, "%s", err);
  cr_assert_str_eq(up_safetensors_name(st), "sample");
  check_sample(st);
  up_safetensors_close(st);

  char path[] = "/tmp/up_st_XXXXXX";
  const int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  close(fd);
  write_file_or_die(path, bytes, size);
  st = up_safetensors_open(path, err, sizeof err);
  cr_assert_not_null(st, "%s", err);
  cr_assert_str_eq(up_safetensors_name(st), path);
  check_sample(st);
  up_safetensors_close(st);
  unlink(path);
  free(bytes);
}

Test(safetensors, scalars_empty_tensors_and_unknown_fields) {
  st_writer w = {0};
  const float one = 1.0f;
  st_writer_add(&w, "scalar", "F32", NULL, 0, &one, 4);
  const int64_t empty_shape[2] = {0, 4096};
  st_writer_add(&w, "empty", "BF16", empty_shape, 2, NULL, 0);
  /* An empty tensor at the same offset as another sits on no bytes, so it overlaps nothing. */
  st_writer_raw_entry(&w, "\"empty2\": {\"dtype\": \"F16\", \"shape\": [0], \"data_offsets\": [0, 0], \"note\": 1}");
  size_t size;
  uint8_t *bytes = st_writer_bytes(&w, &size);
  char err[256] = "";
  up_safetensors *st = up_safetensors_open_buffer(bytes, size, "edge", err, sizeof err);
  cr_assert_not_null(st, "%s", err);
  const up_st_tensor *s = up_safetensors_find(st, "scalar");
  cr_assert_eq(s->n_dims, 0);
  cr_assert_eq(s->n_elements, 1);
  float out;
  cr_assert(up_safetensors_to_f32(s, &out, 0, 1, err, sizeof err));
  cr_assert_eq(out, 1.0f);
  cr_assert_eq(up_safetensors_find(st, "empty")->n_elements, 0);
  cr_assert_null(up_safetensors_metadata(st, "format"), "no metadata in this file");
  up_safetensors_close(st);
  free(bytes);
}

Test(safetensors, every_truncation_is_an_error) {
  st_writer w;
  write_sample(&w);
  size_t size;
  uint8_t *bytes = st_writer_bytes(&w, &size);
  char err[256];
  for (size_t n = 0; n < size; ++n) {
    /* A fresh copy of exactly n bytes, so AddressSanitizer sees any read past the end. */
    uint8_t *prefix = malloc(n ? n : 1);
    memcpy(prefix, bytes, n);
    err[0] = '\0';
    up_safetensors *st = up_safetensors_open_buffer(prefix, n, "cut", err, sizeof err);
    cr_assert_null(st, "prefix of %zu of %zu bytes opened", n, size);
    cr_assert(strncmp(err, "cut: ", 5) == 0, "prefix %zu: message names the file: %s", n, err);
    free(prefix);
  }
  free(bytes);
}

/* Open the header text given (length field computed) followed by data_size zero bytes;
 * expect an error containing each of the fragments. */
static void expect_header_error(const char *header, size_t data_size, const char *frag1, const char *frag2) {
  const size_t header_len = strlen(header);
  const size_t size = 8 + header_len + data_size;
  uint8_t *buf = calloc(1, size);
  for (int i = 0; i < 8; ++i) buf[i] = (uint8_t)((uint64_t)header_len >> (8 * i));
  memcpy(buf + 8, header, header_len);
  char err[512] = "";
  up_safetensors *st = up_safetensors_open_buffer(buf, size, "bad.safetensors", err, sizeof err);
  cr_assert_null(st, "header accepted: %s", header);
  cr_assert(strstr(err, "bad.safetensors") != NULL, "names the file: %s", err);
  cr_assert(strstr(err, frag1) != NULL, "'%s' in: %s (header %s)", frag1, err, header);
  if (frag2) cr_assert(strstr(err, frag2) != NULL, "'%s' in: %s (header %s)", frag2, err, header);
  free(buf);
}

Test(safetensors, bad_header_length) {
  char err[256] = "";
  uint8_t buf[16] = {0};
  cr_assert_null(up_safetensors_open_buffer(buf, 16, "zero", err, sizeof err));
  cr_assert(strstr(err, "header length 0") != NULL, "%s", err);
  buf[0] = 9; /* one byte more than there is */
  cr_assert_null(up_safetensors_open_buffer(buf, 16, "long", err, sizeof err));
  cr_assert(strstr(err, "header length 9") != NULL, "%s", err);
  memset(buf, 0xFF, 8); /* 2^64 - 1: must not wrap around */
  cr_assert_null(up_safetensors_open_buffer(buf, 16, "huge", err, sizeof err));
  cr_assert(strstr(err, "does not fit") != NULL, "%s", err);
  cr_assert_null(up_safetensors_open_buffer(buf, 7, "short", err, sizeof err));
  cr_assert(strstr(err, "too short") != NULL, "%s", err);
}

Test(safetensors, header_over_the_size_cap) {
  /* A sparse file, so the cap is reached without writing 100 MB. */
  char path[] = "/tmp/up_st_big_XXXXXX";
  const int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  const uint64_t header_len = UP_ST_MAX_HEADER_BYTES + 1ull;
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = (uint8_t)(header_len >> (8 * i));
  cr_assert_eq(write(fd, len, 8), 8);
  cr_assert_eq(ftruncate(fd, (off_t)(8 + header_len + 8)), 0);
  close(fd);
  char err[256] = "";
  cr_assert_null(up_safetensors_open(path, err, sizeof err));
  cr_assert(strstr(err, path) && strstr(err, "limit"), "%s", err);
  unlink(path);
}

Test(safetensors, files_that_cannot_be_opened) {
  char err[256] = "";
  cr_assert_null(up_safetensors_open("/nonexistent/x.safetensors", err, sizeof err));
  cr_assert(strstr(err, "/nonexistent/x.safetensors") && strstr(err, "cannot open"), "%s", err);
  cr_assert_null(up_safetensors_open("/tmp", err, sizeof err));
  cr_assert(strstr(err, "not a regular file"), "%s", err);
  char path[] = "/tmp/up_st_empty_XXXXXX";
  const int fd = mkstemp(path);
  close(fd);
  cr_assert_null(up_safetensors_open(path, err, sizeof err), "an empty file");
  cr_assert(strstr(err, "too short"), "%s", err);
  unlink(path);
}

Test(safetensors, bad_json) {
  expect_header_error("{\"a\": }", 0, "not valid JSON", NULL);
  expect_header_error("{} trailing", 0, "not valid JSON", NULL);
  expect_header_error("[1, 2]", 0, "not a JSON object", NULL);
  expect_header_error("\"str\"", 0, "not a JSON object", NULL);
  expect_header_error("{\"a\": {\"dtype\": \"F32\"}}", 0, "missing field 'shape'", NULL);
  /* An embedded NUL (the header is copied, so the length is what counts). */
  const char with_nul[] = "{}\0{}";
  uint8_t buf[8 + sizeof with_nul - 1] = {sizeof with_nul - 1};
  memcpy(buf + 8, with_nul, sizeof with_nul - 1);
  char err[256] = "";
  cr_assert_null(up_safetensors_open_buffer(buf, sizeof buf, "nul", err, sizeof err));
  cr_assert(strstr(err, "NUL byte"), "%s", err);
  /* Deep nesting is refused by the parser, not by the stack. */
  char deep[4096];
  size_t n = 0;
  deep[n++] = '{';
  deep[n++] = '"', deep[n++] = 'a', deep[n++] = '"', deep[n++] = ':';
  for (int i = 0; i < 1500; ++i) deep[n++] = '[';
  deep[n] = '\0';
  expect_header_error(deep, 0, "not valid JSON", NULL);
}

Test(safetensors, unsupported_and_unknown_dtypes) {
  expect_header_error("{\"w.weight\": {\"dtype\": \"F64\", \"shape\": [1], \"data_offsets\": [0, 8]}}", 8, "w.weight",
                      "dtype F64 is not supported");
  expect_header_error("{\"w.weight\": {\"dtype\": \"F8_E4M3\", \"shape\": [1], \"data_offsets\": [0, 1]}}", 1,
                      "w.weight", "F8_E4M3 is not supported");
  expect_header_error("{\"w.weight\": {\"dtype\": \"Q4\", \"shape\": [1], \"data_offsets\": [0, 1]}}", 1, "w.weight",
                      "unknown dtype 'Q4'");
  expect_header_error("{\"w.weight\": {\"dtype\": 7, \"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "w.weight",
                      "'dtype' is not a string");
}

Test(safetensors, bad_shapes) {
  expect_header_error("{\"t\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 20]}}", 24, "'t'",
                      "span 20 bytes but F32 shape needs 24");
  expect_header_error("{\"t\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", 4, "shape[0]", NULL);
  expect_header_error("{\"t\": {\"dtype\": \"F32\", \"shape\": [1, 1.5], \"data_offsets\": [0, 4]}}", 4, "shape[1]",
                      NULL);
  expect_header_error("{\"t\": {\"dtype\": \"F32\", \"shape\": [\"4\"], \"data_offsets\": [0, 16]}}", 16, "shape[0]",
                      NULL);
  expect_header_error("{\"t\": {\"dtype\": \"F32\", \"shape\": 4, \"data_offsets\": [0, 16]}}", 16,
                      "'shape' is not an array", NULL);
  expect_header_error("{\"t\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 4]}}", 4,
                      "9 dimensions", NULL);
  expect_header_error("{\"t\": {\"dtype\": \"F32\", \"shape\": [1e300], \"data_offsets\": [0, 4]}}", 4, "shape[0]",
                      NULL);
  /* 2^40 x 2^40 elements overflow 64 bits; 2^31 x 2^31 elements fit, their 2^64 bytes do not.
   * Extents past 2^53 are refused outright: a double cannot hold them exactly. */
  expect_header_error("{\"t\": {\"dtype\": \"F32\", \"shape\": [1099511627776, 1099511627776], \"data_offsets\": [0, 4]}}",
                      4, "overflows", NULL);
  expect_header_error("{\"t\": {\"dtype\": \"F32\", \"shape\": [4611686018427387904, 2], \"data_offsets\": [0, 4]}}",
                      4, "shape[0]", "2^53");
  expect_header_error("{\"t\": {\"dtype\": \"F32\", \"shape\": [2147483648, 2147483648], \"data_offsets\": [0, 4]}}",
                      4, "overflows", NULL);
}

Test(safetensors, bad_offsets) {
  expect_header_error("{\"t\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", 8, "'t'",
                      "past the 8 data bytes");
  expect_header_error("{\"t\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [8, 4]}}", 8, "'t'",
                      "end before they begin");
  const char *const not_a_pair[] = {"[0]", "[-4, 0]", "[0, 4, 8]", "{\"b\": 0}", "[0.5, 4]", "\"0,4\""};
  for (size_t i = 0; i < sizeof not_a_pair / sizeof not_a_pair[0]; ++i) {
    char header[128];
    snprintf(header, sizeof header, "{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": %s}}",
             not_a_pair[i]);
    expect_header_error(header, 8, "'t'", "'data_offsets'");
  }
  expect_header_error("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                      " \"b\": {\"dtype\": \"F16\", \"shape\": [2], \"data_offsets\": [6, 10]}}",
                      16, "'a' and 'b' overlap", NULL);
  expect_header_error("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                      " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}",
                      16, "overlap", NULL);
}

Test(safetensors, bad_entries_and_metadata) {
  expect_header_error("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                      " \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
                      8, "'a' appears twice", NULL);
  expect_header_error("{\"a\": {\"dtype\": \"F32\", \"dtype\": \"F16\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4,
                      "'a'", "'dtype' appears twice");
  expect_header_error("{\"a\": [1, 2]}", 0, "'a'", "not a JSON object");
  expect_header_error("{\"a\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "'a'", "missing field 'dtype'");
  expect_header_error("{\"\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "empty name", NULL);
  expect_header_error("{\"__metadata__\": {\"format\": 1}}", 0, "'__metadata__'", "not a string");
  expect_header_error("{\"__metadata__\": [\"pt\"]}", 0, "'__metadata__' is not a JSON object", NULL);
  expect_header_error("{\"__metadata__\": {\"k\": \"a\", \"k\": \"b\"}}", 0, "'k' appears twice", NULL);
  expect_header_error("{\"__metadata__\": {}, \"__metadata__\": {}}", 0, "'__metadata__' appears twice", NULL);
}

Test(safetensors, null_metadata_is_no_metadata) {
  const char header[] = "{\"__metadata__\": null}";
  uint8_t buf[8 + sizeof header - 1] = {sizeof header - 1};
  memcpy(buf + 8, header, sizeof header - 1);
  char err[256] = "";
  up_safetensors *st = up_safetensors_open_buffer(buf, sizeof buf, "nullmeta", err, sizeof err);
  cr_assert_not_null(st, "%s", err);
  cr_assert_eq(up_safetensors_tensor_count(st), 0);
  cr_assert_null(up_safetensors_metadata(st, "format"));
  up_safetensors_close(st);
}

Test(safetensors, header_padded_with_spaces) {
  /* The reference writer pads the header with spaces so the data starts 8-aligned. */
  const char header[] = "{\"t\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[0,2]}}     ";
  uint8_t buf[8 + sizeof header - 1 + 2] = {sizeof header - 1};
  memcpy(buf + 8, header, sizeof header - 1);
  buf[sizeof buf - 1] = 0x3F, buf[sizeof buf - 2] = 0x80; /* bf16 1.0, little-endian */
  char err[256] = "";
  up_safetensors *st = up_safetensors_open_buffer(buf, sizeof buf, "padded", err, sizeof err);
  cr_assert_not_null(st, "%s", err);
  float v = 0.0f;
  cr_assert(up_safetensors_to_f32(up_safetensors_find(st, "t"), &v, 0, 1, err, sizeof err), "%s", err);
  cr_assert_eq(v, 1.0f);
  up_safetensors_close(st);
}
