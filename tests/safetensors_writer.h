/* safetensors_writer.h — a small writer of .safetensors files for the tests: tensor
 * entries are appended as header JSON text plus data bytes, so a test can also append
 * a deliberately malformed entry and write the result to a buffer or a file. */
#ifndef UP_TESTS_SAFETENSORS_WRITER_H
#define UP_TESTS_SAFETENSORS_WRITER_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"

typedef struct st_writer {
  char json[16384];
  size_t json_len;
  uint8_t data[16384];
  size_t data_len;
} st_writer;

static inline void st_writer_json(st_writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static inline void st_writer_json(st_writer *w, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  const int n = vsnprintf(w->json + w->json_len, sizeof w->json - w->json_len, fmt, ap);
  va_end(ap);
  UP_ASSERT(n >= 0 && (size_t)n < sizeof w->json - w->json_len, "test header overflows the writer");
  w->json_len += (size_t)n;
}

/* Append a header member written out verbatim ("\"name\": {...}"). */
static inline void st_writer_raw_entry(st_writer *w, const char *member) {
  st_writer_json(w, "%s%s", w->json_len ? ", " : "", member);
}

/* Append a well-formed tensor entry and its data. */
static inline void st_writer_add(st_writer *w, const char *name, const char *dtype, const int64_t *shape, int n_dims,
                                 const void *bytes, size_t n_bytes) {
  st_writer_json(w, "%s\"%s\": {\"dtype\": \"%s\", \"shape\": [", w->json_len ? ", " : "", name, dtype);
  for (int i = 0; i < n_dims; ++i) st_writer_json(w, "%s%lld", i ? ", " : "", (long long)shape[i]);
  st_writer_json(w, "], \"data_offsets\": [%zu, %zu]}", w->data_len, w->data_len + n_bytes);
  UP_ASSERT(w->data_len + n_bytes <= sizeof w->data, "test data overflows the writer");
  if (n_bytes) memcpy(w->data + w->data_len, bytes, n_bytes);
  w->data_len += n_bytes;
}

/* The whole file: 8-byte little-endian header length, "{...}", data. Caller frees. */
static inline uint8_t *st_writer_bytes(const st_writer *w, size_t *size) {
  const size_t header_len = w->json_len + 2;
  *size = 8 + header_len + w->data_len;
  uint8_t *buf = up_malloc_or_die(*size, "test safetensors file");
  for (int i = 0; i < 8; ++i) buf[i] = (uint8_t)((uint64_t)header_len >> (8 * i));
  buf[8] = '{';
  memcpy(buf + 9, w->json, w->json_len);
  buf[9 + w->json_len] = '}';
  memcpy(buf + 8 + header_len, w->data, w->data_len);
  return buf;
}

static inline void write_file_or_die(const char *path, const void *bytes, size_t size) {
  FILE *f = fopen(path, "wb");
  UP_ASSERT(f, "cannot create %s", path);
  UP_ASSERT(fwrite(bytes, 1, size, f) == size, "cannot write %s", path);
  UP_ASSERT(fclose(f) == 0, "cannot close %s", path);
}

static inline void st_writer_save(const st_writer *w, const char *path) {
  size_t size;
  uint8_t *bytes = st_writer_bytes(w, &size);
  write_file_or_die(path, bytes, size);
  free(bytes);
}

#endif
