/* fidelity_metrics.h — how far a method's output distribution moves from dense
 * prefill's at the same position: KL(dense || method) over the full vocabulary from
 * raw logits, and top-1 agreement. Double precision throughout, since the KL of two
 * nearly equal distributions is a small difference of large sums. */
#ifndef UP_FIDELITY_METRICS_H
#define UP_FIDELITY_METRICS_H

#include <stdint.h>

/* KL(P || Q) in nats where P = softmax(p_logits), Q = softmax(q_logits); >= 0, NaN if
 * any logit is NaN. */
double up_kl_from_logits(const float *p_logits, const float *q_logits, int32_t n);
/* Index of the largest logit; the lowest index on ties (as greedy decoding picks). */
int32_t up_argmax_logits(const float *logits, int32_t n);

#endif
