/* fuzz_ggml_dequant.c — libFuzzer target of the quantised-block decoders on their own,
 * fed sizes the GGUF reader would never pass: byte 0 is a raw ggml type id (accepted or
 * not), bytes 1-2 a little-endian element count, the rest the block data, exactly that
 * long and no longer (a heap copy, so AddressSanitizer sees a read one byte past it).
 * Refusals must come with a message; a decode may succeed only when the count is whole
 * blocks of a known type filling the data exactly. Broken invariants abort. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/checkpoint/ggml_dequant.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int condition, const char *what) {
  if (!condition) {
    fprintf(stderr, "fuzz_ggml_dequant: invariant broken: %s\n", what);
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3) return 0;
  const uint32_t type_id = data[0];
  const int64_t n = (int64_t)(data[1] | data[2] << 8);
  const size_t n_bytes = size - 3;
  uint8_t *blocks = malloc(n_bytes ? n_bytes : 1);
  float *out = malloc((size_t)(n ? n : 1) * sizeof *out);
  require(blocks && out, "allocation");
  memcpy(blocks, data + 3, n_bytes);

  char err[512];
  err[0] = '\0';
  const bool ok = up_ggml_dequantize_checked((up_ggml_type)type_id, blocks, n_bytes, out, n, "fuzz block", err,
                                             sizeof err);
  uint64_t expected = 0;
  const bool fits = up_ggml_type_is_known(type_id) && up_ggml_bytes_for((up_ggml_type)type_id, n, &expected) &&
                    expected == n_bytes;
  require(ok == fits, "decoded exactly when the data is whole blocks of a known type");
  if (!ok) require(strncmp(err, "fuzz block: ", 12) == 0 && err[12] != '\0', "a refusal comes with a message");
  (void)up_ggml_type_id_name(type_id);
  free(blocks);
  free(out);
  return 0;
}
