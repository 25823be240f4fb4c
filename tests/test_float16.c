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

/* fp32 to bf16 against the nearest of the two neighbouring bf16 values computed in
 * double, ties to the even one: every bf16 value round-trips, and every midpoint and
 * quarter point between two neighbours rounds as round-to-nearest-even says. */
Test(float16, f32_to_bf16_rounds_to_nearest_even) {
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    const float exact = up_bf16_to_f32((uint16_t)bits);
    if (isnan(exact)) {
      cr_assert(isnan(up_bf16_to_f32(up_f32_to_bf16(exact))), "NaN 0x%04x stays NaN", bits);
      continue;
    }
    cr_assert_eq(up_f32_to_bf16(exact), bits, "0x%04x round-trips", bits);
    if ((bits & 0x7FFF) >= 0x7F7F) continue; /* the largest finite value and infinity have no upper neighbour here */
    const uint32_t low = bits << 16;
    for (uint32_t step = 0x4000; step < 0x10000; step += 0x4000) { /* 1/4, 1/2, 3/4 of the way up */
      const uint32_t between_bits = low + step;
      float between;
      memcpy(&between, &between_bits, sizeof between);
      const uint16_t want = step < 0x8000 ? (uint16_t)bits
                            : step > 0x8000 ? (uint16_t)(bits + 1)
                                            : (uint16_t)((bits & 1) ? bits + 1 : bits);
      cr_assert_eq(up_f32_to_bf16(between), want, "0x%08x rounds to 0x%04x", between_bits, want);
    }
  }
  cr_assert_eq(up_f32_to_bf16(INFINITY), 0x7F80);
  cr_assert_eq(up_f32_to_bf16(-INFINITY), 0xFF80);
  cr_assert_eq(up_f32_to_bf16(3.4028235e38f), 0x7F80, "the largest float rounds up to infinity");
}
