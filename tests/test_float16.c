/* test_float16.c — fp16 and bf16 widening against a reference built from the format's
 * definition with ldexp, over every one of the 65536 bit patterns. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/float16.h"

Test(float16, every_fp16_bit_pattern) {
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    const int sign = bits & 0x8000 ? -1 : 1;
    const int exponent = (bits >> 10) & 0x1F;
    const int mantissa = bits & 0x3FF;
    const float got = up_fp16_to_f32((uint16_t)bits);
    if (exponent == 0x1F) {
      if (mantissa) cr_assert(isnan(got), "0x%04x is NaN", bits);
      else cr_assert(isinf(got) && (got > 0) == (sign > 0), "0x%04x is %cinf", bits, sign > 0 ? '+' : '-');
      continue;
    }
    const double magnitude = exponent ? ldexp(1.0 + mantissa / 1024.0, exponent - 15) : ldexp(mantissa, -24);
    const float expect = (float)(sign * magnitude);
    cr_assert(memcmp(&got, &expect, sizeof got) == 0, "0x%04x: %a, expected %a", bits, got, expect);
  }
}

Test(float16, every_bf16_bit_pattern) {
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    const float got = up_bf16_to_f32((uint16_t)bits);
    const uint32_t expect_bits = bits << 16;
    cr_assert(memcmp(&got, &expect_bits, sizeof got) == 0, "0x%04x", bits);
  }
  cr_assert_eq(up_bf16_to_f32(0x3F80), 1.0f);
  cr_assert_eq(up_bf16_to_f32(0xC040), -3.0f);
}
