/* float16.h — widening IEEE binary16 (fp16) and bfloat16 storage values to fp32 on
 * the host, for readers of checkpoint files. Exact for every input: subnormals are
 * normalised, infinities kept, NaNs stay NaN with their payload's top bits. */
#ifndef UP_FLOAT16_H
#define UP_FLOAT16_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

float up_fp16_to_f32(uint16_t bits);
float up_bf16_to_f32(uint16_t bits);

#ifdef __cplusplus
}
#endif

#endif
