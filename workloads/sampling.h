/* sampling.h — continuous random variates from the counter-based streams of
 * engine/rng.h: standard normal (Box-Muller) and gamma (Marsaglia-Tsang). Each draw is
 * a pure function of (seed, stream, index): a draw that needs several uniforms, or a
 * variable number of them (rejection), takes them from its own sub-stream, which is a
 * hash of the triple, so draws never share uniforms and call order does not matter. */
#ifndef UP_SAMPLING_H
#define UP_SAMPLING_H

#include <stdint.h>

/* N(0, 1). */
double up_sample_normal(uint64_t seed, uint64_t stream, uint64_t index);

/* Gamma(shape, scale 1), shape > 0; mean = shape, variance = shape. */
double up_sample_gamma(double shape, uint64_t seed, uint64_t stream, uint64_t index);

#endif
