/* float16.h — widening IEEE binary16 (fp16) and bfloat16 storage values to fp32 on
 * the host, for readers of checkpoint files. Exact for every input: subnormals are
 * normalised, infinities kept, NaNs stay NaN with their payload's top bits. And the
 * one narrowing the host needs: fp32 to bf16, for sums staged in fp32. */
#ifndef UP_FLOAT16_H
#define UP_FLOAT16_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

float up_fp16_to_f32(uint16_t bits);
float up_bf16_to_f32(uint16_t bits);
/* Round to nearest, ties to even, as the GPU's __float2bfloat16 does; a NaN stays a
 * (quiet) NaN, infinities stay infinite. */
uint16_t up_f32_to_bf16(float value);

#ifdef __cplusplus
}
#endif

#endif
