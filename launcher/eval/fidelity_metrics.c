/* fidelity_metrics.c — KL divergence and top-1 of logit vectors (see the header). */
#include "launcher/eval/fidelity_metrics.h"

#include <math.h>

static double log_sum_exp(const float *x, int32_t n, double max) {
  double sum = 0.0;
  for (int32_t i = 0; i < n; ++i) sum += exp((double)x[i] - max);
  return max + log(sum);
}

static double max_of(const float *x, int32_t n) {
  double m = -INFINITY;
  for (int32_t i = 0; i < n; ++i) {
    if (isnan(x[i])) return NAN;
    if (x[i] > m) m = x[i];
  }
  return m;
}

double up_kl_from_logits(const float *p_logits, const float *q_logits, int32_t n) {
  const double p_max = max_of(p_logits, n), q_max = max_of(q_logits, n);
  if (isnan(p_max) || isnan(q_max)) return NAN;
  const double p_lse = log_sum_exp(p_logits, n, p_max), q_lse = log_sum_exp(q_logits, n, q_max);
  double kl = 0.0;
  for (int32_t i = 0; i < n; ++i) {
    const double log_p = (double)p_logits[i] - p_lse, log_q = (double)q_logits[i] - q_lse;
    kl += exp(log_p) * (log_p - log_q);
  }
  /* Rounding can leave a tiny negative value for identical inputs. */
  return kl > 0.0 ? kl : 0.0;
}

int32_t up_argmax_logits(const float *logits, int32_t n) {
  int32_t best = 0;
  for (int32_t i = 1; i < n; ++i)
    if (logits[i] > logits[best]) best = i;
  return best;
}
