/* gguf_keys.c — architecture-prefixed key names and validated optional keys (see
 * gguf_keys.h). */
#include "engine/checkpoint/gguf_keys.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define ARCH_KEY "general.architecture"

bool up_gguf_arch_key(const up_gguf *g, const char *suffix, char *out, size_t out_size, char *err, size_t err_size) {
  up_gguf_str arch;
  if (!up_gguf_get_str(g, ARCH_KEY, &arch)) {
    snprintf(err, err_size, "%s: metadata '" ARCH_KEY "' is missing or not a string", up_gguf_name(g));
    return false;
  }
  const int n = snprintf(out, out_size, "%.*s.%s", (int)(arch.len > 64 ? 64 : arch.len), arch.data, suffix);
  if (arch.len > 64 || memchr(arch.data, '\0', arch.len) || n < 0 || (size_t)n >= out_size) {
    snprintf(err, err_size, "%s: key '%.*s.%s' is too long or malformed", up_gguf_name(g),
             (int)(arch.len > 64 ? 64 : arch.len), arch.data, suffix);
    return false;
  }
  return true;
}

static void set_present(bool *present, bool value) {
  if (present) *present = value;
}

bool up_gguf_u32_or_default(const up_gguf *g, const char *key, uint32_t fallback, uint32_t min, uint32_t max,
                            uint32_t *out, bool *present, char *err, size_t err_size) {
  set_present(present, up_gguf_has_key(g, key));
  if (!up_gguf_has_key(g, key)) {
    *out = fallback;
    return true;
  }
  uint32_t v = 0;
  if (!up_gguf_get_u32(g, key, &v)) {
    snprintf(err, err_size, "%s: metadata '%s' is not an integer in %u..%u", up_gguf_name(g), key, min, max);
    return false;
  }
  if (v < min || v > max) {
    snprintf(err, err_size, "%s: metadata '%s' is %u, outside %u..%u", up_gguf_name(g), key, v, min, max);
    return false;
  }
  *out = v;
  return true;
}

bool up_gguf_positive_f32_or_default(const up_gguf *g, const char *key, float fallback, float *out, bool *present,
                                     char *err, size_t err_size) {
  set_present(present, up_gguf_has_key(g, key));
  if (!up_gguf_has_key(g, key)) {
    *out = fallback;
    return true;
  }
  float v = 0.0f;
  if (!up_gguf_get_f32(g, key, &v) || !isfinite(v) || !(v > 0.0f)) {
    snprintf(err, err_size, "%s: metadata '%s' must be a positive finite number", up_gguf_name(g), key);
    return false;
  }
  *out = v;
  return true;
}

bool up_gguf_str_or_empty(const up_gguf *g, const char *key, char *out, size_t out_size, bool *present, char *err,
                          size_t err_size) {
  set_present(present, up_gguf_has_key(g, key));
  if (out_size > 0) out[0] = '\0';
  if (!up_gguf_has_key(g, key)) return true;
  up_gguf_str s;
  if (!up_gguf_get_str(g, key, &s)) {
    snprintf(err, err_size, "%s: metadata '%s' is not a string", up_gguf_name(g), key);
    return false;
  }
  if (s.len >= out_size || memchr(s.data, '\0', s.len)) {
    snprintf(err, err_size, "%s: metadata '%s' is longer than %zu bytes or holds a NUL", up_gguf_name(g), key,
             out_size ? out_size - 1 : 0);
    return false;
  }
  memcpy(out, s.data, s.len);
  out[s.len] = '\0';
  return true;
}
