/* safetensors.h — reader of one .safetensors file as Hugging Face writes it: an
 * 8-byte little-endian header length, a JSON header (tensor name -> dtype, shape,
 * data_offsets; an optional "__metadata__" string map), then the raw tensor bytes.
 * The file is memory-mapped read-only and the whole header is validated (lengths,
 * JSON types, dtypes, shape arithmetic, offsets inside the data and not overlapping,
 * unique names) before any pointer into it is handed out. A malformed file is an
 * error message naming the file and the tensor, never a crash. Mapping tensors onto
 * the engine's weights is engine/checkpoint/checkpoint.c's job, not this reader's. */
#ifndef UP_SAFETENSORS_H
#define UP_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Headers larger than this are refused: real checkpoints' headers are well under 1 MB. */
#define UP_ST_MAX_HEADER_BYTES (100u * 1000u * 1000u)
#define UP_ST_MAX_DIMS 8

/* The element types the engine reads. Other safetensors dtypes (F64, I8.., F8_*) are
 * a load error naming the tensor and its dtype. */
typedef enum up_st_dtype { UP_ST_F32 = 0, UP_ST_F16 = 1, UP_ST_BF16 = 2 } up_st_dtype;

size_t up_st_dtype_size(up_st_dtype dtype);
const char *up_st_dtype_name(up_st_dtype dtype); /* as the header spells it: "F32", "F16", "BF16" */

typedef struct up_st_tensor {
  const char *name;              /* NUL-terminated, owned by the reader */
  up_st_dtype dtype;
  int32_t n_dims;                /* 0 for a scalar */
  int64_t shape[UP_ST_MAX_DIMS]; /* row-major: shape[n_dims - 1] is the contiguous dimension */
  int64_t n_elements;
  uint64_t offset;               /* from the first byte after the header */
  uint64_t n_bytes;              /* n_elements x dtype size, inside the file */
  const void *data;              /* into the map or the caller's buffer; no alignment promised */
} up_st_tensor;

typedef struct up_safetensors up_safetensors;

/* Map and validate a file. On failure returns NULL and writes a message naming the
 * path (and the tensor, where one is at fault) into err. */
up_safetensors *up_safetensors_open(const char *path, char *err, size_t err_size);
/* Same over a caller-owned buffer that must outlive the reader (fuzzing, tests);
 * name is used in messages. */
up_safetensors *up_safetensors_open_buffer(const void *data, size_t size, const char *name, char *err,
                                           size_t err_size);
void up_safetensors_close(up_safetensors *st);

const char *up_safetensors_name(const up_safetensors *st); /* path or buffer name */

/* Tensors in header order. */
int64_t up_safetensors_tensor_count(const up_safetensors *st);
const up_st_tensor *up_safetensors_tensor_at(const up_safetensors *st, int64_t index); /* NULL out of range */
const up_st_tensor *up_safetensors_find(const up_safetensors *st, const char *name);   /* NULL when absent */

/* Name indexes (here and across a checkpoint's shards): sort pointers by tensor name,
 * then find by binary search; NULL when absent. */
void up_st_sort_by_name(const up_st_tensor **tensors, int64_t count);
const up_st_tensor *up_st_find_sorted(const up_st_tensor *const *sorted, int64_t count, const char *name);

/* A "__metadata__" value (for example "format" -> "pt"); NULL when absent. */
const char *up_safetensors_metadata(const up_safetensors *st, const char *key);

/* Convert elements [first, first + count) of t to fp32 (bf16 and fp16 widen exactly,
 * fp16 subnormals, infinities and NaNs included). A range outside the tensor is an
 * error naming it; out holds count floats. */
bool up_safetensors_to_f32(const up_st_tensor *t, float *out, int64_t first, int64_t count, char *err,
                           size_t err_size);

#ifdef __cplusplus
}
#endif

#endif
