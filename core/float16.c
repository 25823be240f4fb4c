/* float16.c — fp16 and bf16 to fp32, and fp32 to bf16, by bit manipulation (see float16.h). */
#include "core/float16.h"

#include <string.h>

static float float_from_bits(uint32_t bits) {
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

float up_fp16_to_f32(uint16_t bits) {
  const uint32_t sign = (uint32_t)(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1Fu;
  uint32_t mantissa = bits & 0x3FFu;
  if (exponent == 0x1Fu) return float_from_bits(sign | 0x7F800000u | (mantissa << 13)); /* inf, NaN */
  if (exponent != 0) return float_from_bits(sign | ((exponent + (127 - 15)) << 23) | (mantissa << 13));
  if (mantissa == 0) return float_from_bits(sign); /* signed zero */
  /* Subnormal, mantissa x 2^-24: shift the leading one up to the implicit bit and
   * lower the fp32 exponent by the shift (2^-14 is fp32 exponent 113). */
  uint32_t exponent32 = 127 - 14;
  while (!(mantissa & 0x400u)) {
    mantissa <<= 1;
    --exponent32;
  }
  return float_from_bits(sign | (exponent32 << 23) | ((mantissa & 0x3FFu) << 13));
}

float up_bf16_to_f32(uint16_t bits) { return float_from_bits((uint32_t)bits << 16); }

uint16_t up_f32_to_bf16(float value) {
  uint32_t bits;
  memcpy(&bits, &value, sizeof bits);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((bits >> 16) | 0x0040u); /* NaN: keep it one */
  /* Adding 0x7FFF plus the lowest kept bit rounds to nearest with ties to even; a carry
   * into the exponent is the right result (up to infinity). */
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return (uint16_t)(bits >> 16);
}
