/* test_fidelity_metrics.c — KL(dense || method) from logits and top-1 against values
 * computed by hand: zero for equal or shifted logits (softmax ignores a constant),
 * a closed form for two-token distributions, asymmetry, NaN propagation, ties. */
#include <criterion/criterion.h>
#include <math.h>

#include "launcher/eval/fidelity_metrics.h"

Test(fidelity_metrics, kl_is_zero_for_equal_and_shifted_logits) {
  const float a[] = {1.0f, -2.0f, 0.5f, 3.0f};
  const float shifted[] = {11.0f, 8.0f, 10.5f, 13.0f};
  cr_assert_eq(up_kl_from_logits(a, a, 4), 0.0);
  cr_assert_lt(up_kl_from_logits(a, shifted, 4), 1e-12);
}

Test(fidelity_metrics, kl_matches_the_two_token_closed_form) {
  /* P = (0.5, 0.5) from equal logits; Q = (e/(1+e), 1/(1+e)) from logits (1, 0). */
  const float p[] = {0.0f, 0.0f}, q[] = {1.0f, 0.0f};
  const double q0 = exp(1.0) / (1.0 + exp(1.0)), q1 = 1.0 - q0;
  const double expected = 0.5 * log(0.5 / q0) + 0.5 * log(0.5 / q1);
  cr_assert_float_eq(up_kl_from_logits(p, q, 2), expected, 1e-12);
  /* KL is not symmetric. */
  const double reverse = q0 * log(q0 / 0.5) + q1 * log(q1 / 0.5);
  cr_assert_float_eq(up_kl_from_logits(q, p, 2), reverse, 1e-12);
  cr_assert_gt(fabs(expected - reverse), 1e-3);
}

Test(fidelity_metrics, kl_survives_large_logits_and_propagates_nan) {
  const float big[] = {1000.0f, 999.0f}, shifted[] = {0.0f, -1.0f};
  cr_assert_lt(up_kl_from_logits(big, shifted, 2), 1e-12);
  const float with_nan[] = {0.0f, NAN};
  cr_assert(isnan(up_kl_from_logits(with_nan, shifted, 2)));
}

Test(fidelity_metrics, argmax_takes_the_lowest_index_on_ties) {
  const float x[] = {0.0f, 2.0f, -1.0f, 2.0f};
  cr_assert_eq(up_argmax_logits(x, 4), 1);
}
