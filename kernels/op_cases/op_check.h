/* op_check.h — the compare-against-the-CPU helper that the GPU tests and --kernels
 * share: run a case on the backend under test and on the CPU reference, and measure how
 * far apart the outputs are (normalised error for values, share of mismatches for
 * indices); plus the small buffer helpers the drivers build inputs with. */
#ifndef UP_OP_CHECK_H
#define UP_OP_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/op_cases/op_case.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The whole check of one case: make its inputs on be from seed, compute the reference
 * on ref (the CPU backend), run the op once on be (timed by its phase clock), compare.
 * be may be a second CPU backend: the errors are then those of the harness alone. */
void up_op_case_check(const up_op_case *c, up_backend *be, up_backend *ref, uint64_t seed, up_op_check *out);

/* The same on inputs already made (--kernels validates the buffers it then times). */
void up_op_case_validate(const up_op_case *c, up_backend *be, void *inputs, up_backend *ref, up_op_check *out);

/* Whether some op of c's driver is `op` (an up_backend_ops member name). */
bool up_op_case_calls(const up_op_case *c, const char *op);

/* ||out - ref|| / ||ref|| (||out - ref|| where ref is all zeros); +inf where out holds
 * a NaN or an infinity. */
double up_op_normalised_error(const float *out, const float *ref, size_t n);

/* The share of n elements of elem_size bytes that differ (0 when n is 0). */
double up_op_mismatch_share(const void *a, const void *b, size_t n, size_t elem_size);

/* `count` row indices of [0, total) spread evenly, the first and the last included
 * (all of them where count is 0 or at least total); returns how many. */
int64_t up_op_sample_rows(int64_t total, int64_t count, int64_t *rows);

/* Backend buffers: n elements of be's activation dtype drawn by fill_uniform; n NaNs;
 * n int32 uploaded from host. Never NULL (an empty buffer gets one element). */
void *up_op_alloc_filled(up_backend *be, size_t n, float bound, uint64_t seed, uint64_t stream, const char *what);
void up_op_fill_nan(up_backend *be, void *dst, size_t offset, size_t n);
int32_t *up_op_upload_i32(up_backend *be, const int32_t *host, size_t n, const char *what);

/* Host copies: n values from offset of a backend activation buffer, as fp32; n int32. */
float *up_op_download(up_backend *be, const void *src, size_t offset, size_t n, const char *what);
int32_t *up_op_download_i32(up_backend *be, const int32_t *src, size_t n, const char *what);
/* fp32 backend buffers whatever the activation dtype (g, beta, router weights, states):
 * upload_f32 / download_f32 convert to and from the activation dtype, so these travel
 * as raw bytes (upload_bytes / download_bytes). Never NULL. */
float *up_op_upload_f32_bits(up_backend *be, const float *host, size_t n, const char *what);
float *up_op_download_f32_bits(up_backend *be, const float *src, size_t n, const char *what);
/* How many of the first n values of a backend activation buffer are NaN or infinite
 * (a poisoned output the op left unwritten shows as NaN). */
size_t up_op_count_not_finite(up_backend *be, const void *src, size_t n, const char *what);

/* n host int32 uniform in [0, bound) from (seed, stream). */
int32_t *up_op_random_indices(uint64_t seed, uint64_t stream, size_t n, int32_t bound);

#ifdef __cplusplus
}
#endif

#endif
