/* gguf.h — reader of GGUF v2/v3 files as llama.cpp writes them: the header, typed
 * metadata, tensor infos and the aligned data section, read from a memory map and
 * validated field by field (bounds, overflow, alignment, dtype, shape) before any
 * pointer into the file is handed out. A malformed file is an error message naming
 * the file and the field or tensor, never a crash. Dequantization of tensor data
 * lives in engine/checkpoint/ggml_dequant.h. */
#ifndef UP_GGUF_H
#define UP_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Metadata value types, numbered as the GGUF specification numbers them. */
typedef enum up_gguf_value_type {
  UP_GGUF_U8 = 0, UP_GGUF_I8 = 1, UP_GGUF_U16 = 2, UP_GGUF_I16 = 3,
  UP_GGUF_U32 = 4, UP_GGUF_I32 = 5, UP_GGUF_F32 = 6, UP_GGUF_BOOL = 7,
  UP_GGUF_STRING = 8, UP_GGUF_ARRAY = 9, UP_GGUF_U64 = 10, UP_GGUF_I64 = 11, UP_GGUF_F64 = 12,
} up_gguf_value_type;

/* Tensor element types, numbered as ggml numbers them. Only these are accepted;
 * any other type id is a load error naming the tensor. */
typedef enum up_ggml_type {
  UP_GGML_F32 = 0, UP_GGML_F16 = 1, UP_GGML_Q4_0 = 2, UP_GGML_Q4_1 = 3,
  UP_GGML_Q5_0 = 6, UP_GGML_Q8_0 = 8, UP_GGML_Q4_K = 12, UP_GGML_Q6_K = 14, UP_GGML_BF16 = 30,
} up_ggml_type;

#define UP_GGUF_MAX_DIMS 4

/* A string inside the file: NOT NUL-terminated, points into the map. */
typedef struct up_gguf_str {
  const char *data;
  uint64_t len;
} up_gguf_str;

typedef struct up_gguf_tensor {
  const char *name;              /* NUL-terminated copy owned by the reader */
  int32_t n_dims;
  int64_t dims[UP_GGUF_MAX_DIMS]; /* ggml order: dims[0] is the contiguous (innermost) one */
  int64_t n_elements;
  up_ggml_type type;
  uint64_t offset;               /* from the start of the data section */
  uint64_t n_bytes;              /* validated to lie inside the file */
  const void *data;              /* into the map (or the caller's buffer) */
} up_gguf_tensor;

typedef struct up_gguf up_gguf;

/* Map and validate a file. On failure returns NULL and writes a message naming the
 * path and the offending field into err. */
up_gguf *up_gguf_open(const char *path, char *err, size_t err_size);
/* Same over a caller-owned buffer that must outlive the reader (fuzzing, tests);
 * name is used in messages. */
up_gguf *up_gguf_open_buffer(const void *data, size_t size, const char *name, char *err, size_t err_size);
void up_gguf_close(up_gguf *g);

uint32_t up_gguf_version(const up_gguf *g);
const char *up_gguf_name(const up_gguf *g); /* path or buffer name */
uint64_t up_gguf_alignment(const up_gguf *g);
/* File offset where the data section (and tensor offset 0) starts. */
uint64_t up_gguf_data_offset(const up_gguf *g);

/* --- metadata ------------------------------------------------------------------
 * Getters return false when the key is absent or its type cannot represent the
 * requested one (for example a negative I32 asked for as u32, or a string asked for
 * as a number); out is untouched then. */
bool up_gguf_has_key(const up_gguf *g, const char *key);
bool up_gguf_get_u32(const up_gguf *g, const char *key, uint32_t *out); /* any integer type in range */
bool up_gguf_get_f32(const up_gguf *g, const char *key, float *out);    /* F32, F64 or an integer */
bool up_gguf_get_bool(const up_gguf *g, const char *key, bool *out);
bool up_gguf_get_str(const up_gguf *g, const char *key, up_gguf_str *out);
/* Arrays: the element type and count of an array-valued key. */
bool up_gguf_get_array_info(const up_gguf *g, const char *key, up_gguf_value_type *elem_type, uint64_t *count);
/* The i-th string of a string array, in O(1). */
bool up_gguf_get_array_str(const up_gguf *g, const char *key, uint64_t i, up_gguf_str *out);
/* Copy a whole numeric array converted to f32 / i32 (out holds count elements, the
 * count from up_gguf_get_array_info); false on a type that cannot convert. */
bool up_gguf_get_array_f32(const up_gguf *g, const char *key, float *out, uint64_t count);
bool up_gguf_get_array_i32(const up_gguf *g, const char *key, int32_t *out, uint64_t count);
/* Copy a whole bool array (out holds count elements); false on another element type. */
bool up_gguf_get_array_bool(const up_gguf *g, const char *key, bool *out, uint64_t count);
/* Walking all metadata in file order: the key (no NUL inside) and value type of entry
 * index; false when index is out of range. */
int64_t up_gguf_kv_count(const up_gguf *g);
bool up_gguf_kv_at(const up_gguf *g, int64_t index, up_gguf_str *key, up_gguf_value_type *type);
/* "u8", "string", "array", ...; "unknown" outside the enum. */
const char *up_gguf_value_type_name(up_gguf_value_type type);

/* --- tensors -------------------------------------------------------------------- */
int64_t up_gguf_tensor_count(const up_gguf *g);
const up_gguf_tensor *up_gguf_tensor_at(const up_gguf *g, int64_t index);
const up_gguf_tensor *up_gguf_find_tensor(const up_gguf *g, const char *name); /* NULL when absent */

#ifdef __cplusplus
}
#endif

#endif
