/* test_parse_number.c — core/parse_number.h: what each parser accepts, the reason it
 * gives for each refusal (the command line's messages hang on it), the ranges with
 * their inclusive ends, and the edges of the types. */
#include <criterion/criterion.h>
#include <stdint.h>

#include "core/parse_number.h"

Test(parse_number, int64_accepts_decimal_within_range) {
  int64_t v = 0;
  up_number_error why = UP_NUMBER_MALFORMED;
  cr_expect(up_parse_int64("42", 0, 100, &v, &why) && v == 42 && why == UP_NUMBER_OK);
  cr_expect(up_parse_int64("-7", -10, 10, &v, NULL) && v == -7);
  cr_expect(up_parse_int64("0", 0, 0, &v, NULL) && v == 0, "both ends are inclusive");
  cr_expect(up_parse_int64("9223372036854775807", INT64_MIN, INT64_MAX, &v, NULL) && v == INT64_MAX);
  cr_expect(up_parse_int64("-9223372036854775808", INT64_MIN, INT64_MAX, &v, NULL) && v == INT64_MIN);
  cr_expect(up_parse_int64("010", 0, 100, &v, NULL) && v == 10, "decimal, never octal");
}

Test(parse_number, int64_says_why) {
  struct {
    const char *text;
    up_number_error why;
  } cases[] = {
      {"", UP_NUMBER_NOT_NUMBER},           {" 1", UP_NUMBER_NOT_NUMBER},        {"+1", UP_NUMBER_NOT_NUMBER},
      {"abc", UP_NUMBER_NOT_NUMBER},        {"-", UP_NUMBER_NOT_NUMBER},         {"--1", UP_NUMBER_NOT_NUMBER},
      {"1x", UP_NUMBER_MALFORMED},          {"1 ", UP_NUMBER_MALFORMED},         {"1.5", UP_NUMBER_MALFORMED},
      {"0x10", UP_NUMBER_MALFORMED},        {"9223372036854775808", UP_NUMBER_MALFORMED},
      {"-11", UP_NUMBER_BELOW_MIN},         {"11", UP_NUMBER_ABOVE_MAX},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    int64_t v = 12345;
    up_number_error why = UP_NUMBER_OK;
    cr_expect(!up_parse_int64(cases[i].text, -10, 10, &v, &why), "'%s' accepted", cases[i].text);
    cr_expect_eq(why, cases[i].why, "'%s': reason %d, expected %d", cases[i].text, (int)why, (int)cases[i].why);
    cr_expect_eq(v, 12345, "'%s': a refused text leaves the value alone", cases[i].text);
  }
}

Test(parse_number, uint64_takes_the_whole_unsigned_range) {
  uint64_t v = 0;
  up_number_error why = UP_NUMBER_OK;
  cr_expect(up_parse_uint64("18446744073709551615", &v, NULL) && v == UINT64_MAX);
  cr_expect(up_parse_uint64("0", &v, NULL) && v == 0);
  cr_expect(!up_parse_uint64("-1", &v, &why) && why == UP_NUMBER_NOT_NUMBER, "strtoull would wrap -1 around");
  cr_expect(!up_parse_uint64("18446744073709551616", &v, &why) && why == UP_NUMBER_MALFORMED);
  cr_expect(!up_parse_uint64("7 ", &v, &why) && why == UP_NUMBER_MALFORMED);
  cr_expect(!up_parse_uint64(" 7", &v, &why) && why == UP_NUMBER_NOT_NUMBER);
}

Test(parse_number, sizes_with_suffixes_and_ranges) {
  int64_t v = 0;
  up_number_error why = UP_NUMBER_OK;
  cr_expect(up_parse_size("4k", &v) && v == 4096);
  cr_expect(up_parse_size("4K", &v) && v == 4096);
  cr_expect(up_parse_size("3m", &v) && v == 3 * 1048576);
  cr_expect(up_parse_size("3M", &v) && v == 3 * 1048576);
  cr_expect(up_parse_size("8796093022207M", &v) && v == 8796093022207LL * 1048576, "the largest M that fits");
  cr_expect(!up_parse_size("8796093022208M", &v), "one more overflows int64");
  cr_expect(!up_parse_size("4G", &v) && !up_parse_size("4kb", &v) && !up_parse_size("k", &v));
  cr_expect(up_parse_size_in("2k", 1, 2048, &v, &why) && v == 2048 && why == UP_NUMBER_OK, "max is inclusive");
  cr_expect(!up_parse_size_in("2049", 1, 2048, &v, &why) && why == UP_NUMBER_ABOVE_MAX);
  cr_expect(!up_parse_size_in("0", 1, 2048, &v, &why) && why == UP_NUMBER_BELOW_MIN);
  cr_expect(!up_parse_size_in("-1", -5, 5, &v, &why) && why == UP_NUMBER_NOT_NUMBER, "sizes are never negative");
  cr_expect(!up_parse_size_in("1.5k", 0, INT64_MAX, &v, &why) && why == UP_NUMBER_MALFORMED);
}

Test(parse_number, reals_finite_and_strict) {
  double v = 0.0;
  up_number_error why = UP_NUMBER_OK;
  cr_expect(up_parse_real("0.25", false, &v, NULL) && v == 0.25);
  cr_expect(up_parse_real(".5", false, &v, NULL) && v == 0.5);
  cr_expect(up_parse_real("1e3", false, &v, NULL) && v == 1000.0);
  cr_expect(up_parse_real("-0.5", true, &v, NULL) && v == -0.5);
  cr_expect(!up_parse_real("-0.5", false, &v, &why) && why == UP_NUMBER_NOT_NUMBER);
  cr_expect(!up_parse_real("-.5", true, &v, &why) && why == UP_NUMBER_NOT_NUMBER, "a minus needs a digit after it");
  const char *not_numbers[] = {"", " 1", "+1", "inf", "nan", "x"};
  for (size_t i = 0; i < sizeof not_numbers / sizeof not_numbers[0]; ++i)
    cr_expect(!up_parse_real(not_numbers[i], true, &v, &why) && why == UP_NUMBER_NOT_NUMBER, "'%s'", not_numbers[i]);
  const char *malformed[] = {".", "1x", "0.5 ", "1e400", "1e-400", "1..2"};
  for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; ++i)
    cr_expect(!up_parse_real(malformed[i], true, &v, &why) && why == UP_NUMBER_MALFORMED, "'%s'", malformed[i]);
}
