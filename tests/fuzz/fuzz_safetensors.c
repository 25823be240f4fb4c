/* fuzz_safetensors.c — libFuzzer entry for the .safetensors reader: any input must
 * either open and then read back consistently (every tensor inside the input, found
 * by its own name, small ones converted to fp32) or fail with a message; never crash,
 * leak or read outside the buffer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/checkpoint/safetensors.h"
#include "core/fatal.h"

#define FUZZ_MAX_CONVERTED 4096 /* elements converted per tensor */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[512] = "";
  up_safetensors *st = up_safetensors_open_buffer(data, size, "fuzz", err, sizeof err);
  if (!st) {
    UP_ASSERT(err[0] != '\0', "a rejected input must come with a message");
    return 0;
  }
  static float out[FUZZ_MAX_CONVERTED];
  const int64_t n = up_safetensors_tensor_count(st);
  for (int64_t i = 0; i < n; ++i) {
    const up_st_tensor *t = up_safetensors_tensor_at(st, i);
    UP_ASSERT(up_safetensors_find(st, t->name) == t, "tensor '%s' is found by its name", t->name);
    const uint8_t *bytes = t->data;
    UP_ASSERT(bytes >= data && t->n_bytes <= size && bytes + t->n_bytes <= data + size,
              "tensor '%s' lies inside the input", t->name);
    const int64_t count = t->n_elements < FUZZ_MAX_CONVERTED ? t->n_elements : FUZZ_MAX_CONVERTED;
    UP_ASSERT(up_safetensors_to_f32(t, out, t->n_elements - count, count, err, sizeof err), "%s", err);
    UP_ASSERT(!up_safetensors_to_f32(t, out, t->n_elements, 1, err, sizeof err), "a range past the end is refused");
  }
  up_safetensors_metadata(st, "format");
  up_safetensors_close(st);
  return 0;
}
