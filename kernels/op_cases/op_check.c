/* op_check.c — running a case against the reference (op_check.h) and the buffer
 * helpers every driver uses. */
#include "kernels/op_cases/op_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "core/rng.h"

void up_op_case_validate(const up_op_case *c, up_backend *be, void *inputs, up_backend *ref, up_op_check *out) {
  memset(out, 0, sizeof *out);
  void *expected = c->driver->reference(be, c, inputs, ref);
  double ms[UP_PHASE_COUNT] = {0};
  be->ops->phase_mark(be, UP_PHASE_OTHER);
  c->driver->run(be, c, inputs);
  be->ops->phase_collect(be, ms);
  be->ops->synchronize(be);
  out->ms = ms[UP_PHASE_OTHER];
  c->driver->compare(be, c, inputs, expected, out);
  c->driver->free_reference(expected);
  out->passed = out->error <= c->tolerance; /* NaN and +inf never pass */
}

void up_op_case_check(const up_op_case *c, up_backend *be, up_backend *ref, uint64_t seed, up_op_check *out) {
  void *inputs = c->driver->make(be, c, seed);
  up_op_case_validate(c, be, inputs, ref, out);
  c->driver->destroy(be, inputs);
}

bool up_op_case_calls(const up_op_case *c, const char *op) {
  for (int i = 0; c->driver->ops[i]; ++i)
    if (strcmp(c->driver->ops[i], op) == 0) return true;
  return false;
}

double up_op_normalised_error(const float *out, const float *ref, size_t n) {
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < n; ++i) {
    if (!isfinite(out[i])) return INFINITY;
    const double d = (double)out[i] - (double)ref[i];
    diff += d * d;
    norm += (double)ref[i] * (double)ref[i];
  }
  return norm > 0.0 ? sqrt(diff / norm) : sqrt(diff);
}

double up_op_mismatch_share(const void *a, const void *b, size_t n, size_t elem_size) {
  if (n == 0) return 0.0;
  size_t differ = 0;
  for (size_t i = 0; i < n; ++i)
    differ += memcmp((const char *)a + i * elem_size, (const char *)b + i * elem_size, elem_size) != 0;
  return (double)differ / (double)n;
}

int64_t up_op_sample_rows(int64_t total, int64_t count, int64_t *rows) {
  if (count <= 0 || count >= total) count = total;
  for (int64_t i = 0; i < count; ++i) rows[i] = count > 1 ? i * (total - 1) / (count - 1) : 0;
  return count;
}

void *up_op_alloc_filled(up_backend *be, size_t n, float bound, uint64_t seed, uint64_t stream, const char *what) {
  void *p = be->ops->alloc(be, (n ? n : 1) * up_dtype_size(be->act_dtype), what);
  be->ops->fill_uniform(be, p, 0, n, bound, seed, stream);
  return p;
}

void up_op_fill_nan(up_backend *be, void *dst, size_t offset, size_t n) {
  enum { CHUNK = 1 << 20 }; /* bounded host memory for any buffer size */
  const size_t chunk_n = n < CHUNK ? n : CHUNK;
  float *nan_host = up_malloc_or_die(sizeof(float) * (chunk_n ? chunk_n : 1), "NaN poison");
  for (size_t i = 0; i < chunk_n; ++i) nan_host[i] = NAN;
  for (size_t done = 0; done < n; done += chunk_n)
    be->ops->upload_f32(be, dst, offset + done, nan_host, n - done < chunk_n ? n - done : chunk_n);
  free(nan_host);
}

int32_t *up_op_upload_i32(up_backend *be, const int32_t *host, size_t n, const char *what) {
  int32_t *dev = be->ops->alloc(be, sizeof(int32_t) * (n ? n : 1), what);
  if (n) be->ops->upload_i32(be, dev, host, n);
  return dev;
}

float *up_op_download(up_backend *be, const void *src, size_t offset, size_t n, const char *what) {
  float *host = up_malloc_or_die(sizeof(float) * (n ? n : 1), what);
  if (n) be->ops->download_f32(be, host, src, offset, n);
  return host;
}

size_t up_op_count_not_finite(up_backend *be, const void *src, size_t n, const char *what) {
  float *host = up_op_download(be, src, 0, n, what);
  size_t bad = 0;
  for (size_t i = 0; i < n; ++i) bad += !isfinite(host[i]);
  free(host);
  return bad;
}

float *up_op_upload_f32_bits(up_backend *be, const float *host, size_t n, const char *what) {
  float *dev = be->ops->alloc(be, sizeof(float) * (n ? n : 1), what);
  if (n) be->ops->upload_bytes(be, dev, host, sizeof(float) * n);
  return dev;
}

float *up_op_download_f32_bits(up_backend *be, const float *src, size_t n, const char *what) {
  float *host = up_malloc_or_die(sizeof(float) * (n ? n : 1), what);
  if (n) be->ops->download_bytes(be, host, src, sizeof(float) * n);
  return host;
}

int32_t *up_op_download_i32(up_backend *be, const int32_t *src, size_t n, const char *what) {
  int32_t *host = up_malloc_or_die(sizeof(int32_t) * (n ? n : 1), what);
  if (n) be->ops->download_i32(be, host, src, n);
  return host;
}

int32_t *up_op_random_indices(uint64_t seed, uint64_t stream, size_t n, int32_t bound) {
  int32_t *x = up_malloc_or_die(sizeof(int32_t) * (n ? n : 1), "random indices");
  for (size_t i = 0; i < n; ++i) x[i] = (int32_t)(up_rng_unit(seed, stream, i) * bound);
  return x;
}
