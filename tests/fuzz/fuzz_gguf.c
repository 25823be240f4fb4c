/* fuzz_gguf.c — libFuzzer target of the GGUF reader: every input is opened from memory;
 * a refused input must come with a message, an accepted one is walked completely
 * (every metadata getter on every key, every string of every string array, every
 * tensor found again by name, small tensors dequantized) so the sanitizers see any
 * read the validation let through. Broken invariants abort, which libFuzzer reports. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/checkpoint/ggml_dequant.h"
#include "engine/checkpoint/gguf.h"

/* Tensors up to this many elements are dequantized (larger ones are only range-checked). */
#define DEQUANT_MAX_ELEMENTS (1 << 16)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int condition, const char *what) {
  if (!condition) {
    fprintf(stderr, "fuzz_gguf: invariant broken: %s\n", what);
    abort();
  }
}

/* Reads each byte of a string so an out-of-bounds pointer trips AddressSanitizer. */
static unsigned touch(up_gguf_str s) {
  unsigned sum = 0;
  for (uint64_t i = 0; i < s.len; i++) sum += (unsigned char)s.data[i];
  return sum;
}

static void walk_array(const up_gguf *g, const char *key, const uint8_t *data, size_t size) {
  up_gguf_value_type elem_type;
  uint64_t count;
  require(up_gguf_get_array_info(g, key, &elem_type, &count), "array info of an array key");
  require(count <= size, "array count bounded by the input size");
  if (elem_type == UP_GGUF_STRING) {
    up_gguf_str s;
    for (uint64_t i = 0; i < count; i++) {
      require(up_gguf_get_array_str(g, key, i, &s), "string array element");
      require((const uint8_t *)s.data >= data && s.len <= size &&
                  (const uint8_t *)s.data + s.len <= data + size, "string inside the input");
      (void)touch(s);
    }
    require(!up_gguf_get_array_str(g, key, count, &s), "string array index past the end refused");
    return;
  }
  float *floats = malloc((count ? count : 1) * sizeof *floats);
  int32_t *ints = malloc((count ? count : 1) * sizeof *ints);
  require(floats && ints, "allocation");
  (void)up_gguf_get_array_f32(g, key, floats, count);
  (void)up_gguf_get_array_i32(g, key, ints, count);
  free(floats);
  free(ints);
}

static void walk_metadata(const up_gguf *g, const uint8_t *data, size_t size) {
  int64_t n = up_gguf_kv_count(g);
  for (int64_t i = 0; i < n; i++) {
    up_gguf_str key_str;
    up_gguf_value_type type;
    require(up_gguf_kv_at(g, i, &key_str, &type), "metadata entry in range");
    char *key = malloc(key_str.len + 1);
    require(key != NULL, "allocation");
    memcpy(key, key_str.data, key_str.len);
    key[key_str.len] = '\0';
    require(up_gguf_has_key(g, key), "every key found by name");
    (void)up_gguf_value_type_name(type);

    uint32_t u;
    float f;
    bool b;
    up_gguf_str s;
    (void)up_gguf_get_u32(g, key, &u);
    (void)up_gguf_get_f32(g, key, &f);
    (void)up_gguf_get_bool(g, key, &b);
    if (up_gguf_get_str(g, key, &s)) {
      require(type == UP_GGUF_STRING, "strings only from string keys");
      (void)touch(s);
    }
    if (type == UP_GGUF_ARRAY) walk_array(g, key, data, size);
    free(key);
  }
  require(!up_gguf_kv_at(g, n, NULL, NULL), "metadata index past the end refused");
}

static void walk_tensors(const up_gguf *g, const uint8_t *data, size_t size) {
  int64_t n = up_gguf_tensor_count(g);
  char err[512];
  for (int64_t i = 0; i < n; i++) {
    const up_gguf_tensor *t = up_gguf_tensor_at(g, i);
    require(t != NULL, "tensor in range");
    require(up_gguf_find_tensor(g, t->name) == t, "every tensor found by name");
    require(t->n_dims >= 1 && t->n_dims <= UP_GGUF_MAX_DIMS, "n_dims in range");
    require(t->n_bytes <= size && (const uint8_t *)t->data >= data &&
                (const uint8_t *)t->data + t->n_bytes <= data + size, "tensor data inside the input");
    require(t->offset % up_gguf_alignment(g) == 0, "aligned offset");
    uint64_t bytes;
    require(up_ggml_bytes_for(t->type, t->n_elements, &bytes) && bytes == t->n_bytes, "byte size matches");
    if (t->n_elements > DEQUANT_MAX_ELEMENTS) continue;
    float *out = malloc((size_t)(t->n_elements ? t->n_elements : 1) * sizeof *out);
    require(out != NULL, "allocation");
    require(up_gguf_tensor_to_f32(t, out, err, sizeof err), "validated tensors dequantize");
    free(out);
  }
  require(up_gguf_tensor_at(g, n) == NULL, "tensor index past the end refused");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[512];
  err[0] = '\0';
  up_gguf *g = up_gguf_open_buffer(data, size, "fuzz-input", err, sizeof err);
  if (!g) {
    require(strncmp(err, "fuzz-input: ", 12) == 0 && err[12] != '\0', "a refused input comes with a message");
    return 0;
  }
  require(up_gguf_version(g) == 2 || up_gguf_version(g) == 3, "version 2 or 3");
  uint64_t alignment = up_gguf_alignment(g);
  require(alignment != 0 && (alignment & (alignment - 1)) == 0, "power-of-two alignment");
  walk_metadata(g, data, size);
  walk_tensors(g, data, size);
  up_gguf_close(g);
  return 0;
}
