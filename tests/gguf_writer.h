/* gguf_writer.h — a small writer of GGUF files for the tests: little-endian primitives,
 * the header, typed metadata entries and tensor infos appended to a growable buffer, so
 * a test can build a valid file or a deliberately malformed one in memory. */
#ifndef UP_TESTS_GGUF_WRITER_H
#define UP_TESTS_GGUF_WRITER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/checkpoint/gguf.h"
#include "core/fatal.h"

typedef struct gguf_buf {
  uint8_t *data;
  size_t len, cap;
} gguf_buf;

static inline void put(gguf_buf *b, const void *bytes, size_t n) {
  if (b->len + n > b->cap) {
    b->cap = (b->len + n) * 2 + 64;
    b->data = realloc(b->data, b->cap);
    UP_ASSERT(b->data, "test GGUF writer: out of memory at %zu bytes", b->cap);
  }
  if (n) memcpy(b->data + b->len, bytes, n);
  b->len += n;
}

static inline void put_u8(gguf_buf *b, uint8_t v) { put(b, &v, 1); }
static inline void put_u32(gguf_buf *b, uint32_t v) {
  for (int i = 0; i < 4; i++) put_u8(b, (uint8_t)(v >> (8 * i)));
}
static inline void put_u64(gguf_buf *b, uint64_t v) {
  for (int i = 0; i < 8; i++) put_u8(b, (uint8_t)(v >> (8 * i)));
}
static inline void put_f32(gguf_buf *b, float f) {
  uint32_t bits;
  memcpy(&bits, &f, 4);
  put_u32(b, bits);
}
static inline void put_str(gguf_buf *b, const char *s) {
  put_u64(b, strlen(s));
  put(b, s, strlen(s));
}

static inline void put_header(gguf_buf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
  put(b, "GGUF", 4);
  put_u32(b, version);
  put_u64(b, n_tensors);
  put_u64(b, n_kv);
}

static inline void put_kv_u32(gguf_buf *b, const char *key, uint32_t v) {
  put_str(b, key);
  put_u32(b, UP_GGUF_U32);
  put_u32(b, v);
}

static inline void put_kv_f32(gguf_buf *b, const char *key, float v) {
  put_str(b, key);
  put_u32(b, UP_GGUF_F32);
  put_f32(b, v);
}

static inline void put_kv_bool(gguf_buf *b, const char *key, bool v) {
  put_str(b, key);
  put_u32(b, UP_GGUF_BOOL);
  put_u8(b, v);
}

static inline void put_kv_str(gguf_buf *b, const char *key, const char *v) {
  put_str(b, key);
  put_u32(b, UP_GGUF_STRING);
  put_str(b, v);
}

/* Key, ARRAY, element type and count; the caller writes the elements. */
static inline void put_array_header(gguf_buf *b, const char *key, uint32_t elem_type, uint64_t count) {
  put_str(b, key);
  put_u32(b, UP_GGUF_ARRAY);
  put_u32(b, elem_type);
  put_u64(b, count);
}

static inline void put_kv_str_array(gguf_buf *b, const char *key, char *const *v, size_t n) {
  put_array_header(b, key, UP_GGUF_STRING, n);
  for (size_t i = 0; i < n; i++) put_str(b, v[i]);
}

static inline void put_kv_i32_array(gguf_buf *b, const char *key, const int32_t *v, size_t n) {
  put_array_header(b, key, UP_GGUF_I32, n);
  for (size_t i = 0; i < n; i++) put_u32(b, (uint32_t)v[i]);
}

static inline void put_kv_f32_array(gguf_buf *b, const char *key, const float *v, size_t n) {
  put_array_header(b, key, UP_GGUF_F32, n);
  for (size_t i = 0; i < n; i++) put_f32(b, v[i]);
}

static inline void put_tensor_info(gguf_buf *b, const char *name, uint32_t n_dims, const uint64_t *dims,
                                   uint32_t type, uint64_t offset) {
  put_str(b, name);
  put_u32(b, n_dims);
  for (uint32_t d = 0; d < n_dims; d++) put_u64(b, dims[d]);
  put_u32(b, type);
  put_u64(b, offset);
}

static inline void pad_to(gguf_buf *b, size_t alignment) {
  while (b->len % alignment) put_u8(b, 0);
}

#endif
