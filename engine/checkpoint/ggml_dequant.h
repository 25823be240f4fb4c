/* ggml_dequant.h — the ggml tensor element types the GGUF reader accepts: their block
 * layout (elements per block, bytes per block), overflow-checked byte sizes, and
 * conversion of their data to fp32. Reads bytes one by one, so tensor data need not be
 * aligned for its element type, and never reads past the n elements it is given. */
#ifndef UP_GGML_DEQUANT_H
#define UP_GGML_DEQUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/checkpoint/gguf.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Whether a raw type id from a file is one of up_ggml_type. */
bool up_ggml_type_is_known(uint32_t type_id);
/* "F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q4_K", "Q6_K"; "unknown" for any
 * other id. */
const char *up_ggml_type_name(up_ggml_type type);
/* The ggml name of any raw type id, also of those not decoded here ("Q5_K", "IQ4_XS"),
 * so refusals can name the format; "unknown" for ids ggml does not define. */
const char *up_ggml_type_id_name(uint32_t type_id);
/* The accepted types as a comma-separated list, for messages. */
const char *up_ggml_accepted_type_names(void);
/* Elements per block (1 for plain floats, 32 for the Q types); 0 for an unknown type. */
int64_t up_ggml_block_size(up_ggml_type type);
/* Bytes per block; 0 for an unknown type. */
uint64_t up_ggml_block_bytes(up_ggml_type type);

/* Bytes that n_elements of type take. False when the type is unknown, n_elements is
 * negative or not a multiple of the block size, or the size overflows 64 bits. */
bool up_ggml_bytes_for(up_ggml_type type, int64_t n_elements, uint64_t *out);

/* Convert n elements (a multiple of the block size) at src, which holds exactly
 * up_ggml_bytes_for(type, n) bytes, to fp32. False, writing nothing, when the type is
 * unknown or n is not a whole number of blocks. */
bool up_ggml_dequantize(up_ggml_type type, const void *src, float *dst, int64_t n);

/* The same for untrusted sizes: src holds src_bytes bytes, and anything but an accepted
 * type whose n elements take exactly src_bytes is refused before a byte is decoded.
 * False with a message starting with what (e.g. "tensor 'blk.0.attn_q.weight'") and
 * naming the type otherwise. */
bool up_ggml_dequantize_checked(up_ggml_type type, const void *src, uint64_t src_bytes, float *dst, int64_t n,
                                const char *what, char *err, size_t err_size);

/* A whole GGUF tensor to fp32: out holds t->n_elements floats. On failure writes a
 * message naming the tensor into err. */
bool up_gguf_tensor_to_f32(const up_gguf_tensor *t, float *out, char *err, size_t err_size);

#ifdef __cplusplus
}
#endif

#endif
