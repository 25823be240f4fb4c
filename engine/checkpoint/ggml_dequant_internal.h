/* ggml_dequant_internal.h — what ggml_dequant.c shares with the k-quant decoders in
 * ggml_dequant_kquants.c and nothing else may use: the super-block geometry and the
 * decoders of whole blocks (the caller has checked the byte count). */
#ifndef UP_GGML_DEQUANT_INTERNAL_H
#define UP_GGML_DEQUANT_INTERNAL_H

#include <stdint.h>

#define UP_QK_K 256 /* elements per k-quant super-block */
/* fp16 d, fp16 dmin, 12 bytes of packed 6-bit scales and mins, 128 bytes of nibbles. */
#define UP_Q4_K_BLOCK_BYTES (2 + 2 + 12 + UP_QK_K / 2)
/* 128 bytes of low nibbles, 64 of 2-bit high parts, 16 int8 scales, fp16 d last. */
#define UP_Q6_K_BLOCK_BYTES (UP_QK_K / 2 + UP_QK_K / 4 + UP_QK_K / 16 + 2)

/* A little-endian uint16 from two bytes, whatever their alignment. */
uint16_t up_ggml_load_u16(const uint8_t *p);

void up_ggml_dequantize_q4_k(const uint8_t *src, float *dst, int64_t n_blocks);
void up_ggml_dequantize_q6_k(const uint8_t *src, float *dst, int64_t n_blocks);

#endif
