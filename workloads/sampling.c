/* sampling.c — normal and gamma variates from counter-based uniforms (see sampling.h). */
#include "workloads/sampling.h"

#include <math.h>

#include "core/rng.h"

/* Uniform in (0, 1]: safe under log(). */
static double unit_open_low(uint64_t seed, uint64_t stream, uint64_t index) {
  return 1.0 - up_rng_unit(seed, stream, index);
}

/* Standard normal from uniforms 2k and 2k+1 of a sub-stream. */
static double normal_at(uint64_t seed, uint64_t sub, uint64_t k) {
  const double u1 = unit_open_low(seed, sub, 2 * k);
  const double u2 = up_rng_unit(seed, sub, 2 * k + 1);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

double up_sample_normal(uint64_t seed, uint64_t stream, uint64_t index) {
  return normal_at(seed, up_rng_u64(seed, stream, index), 0);
}

/* Marsaglia and Tsang (2000) for shape >= 1; shape < 1 is boosted: if X ~ Gamma(a + 1)
 * and U ~ U(0,1], X * U^(1/a) ~ Gamma(a). Normals use even-indexed pairs of the
 * sub-stream; the acceptance uniforms and the boost uniform use a second sub-stream. */
double up_sample_gamma(double shape, uint64_t seed, uint64_t stream, uint64_t index) {
  const uint64_t sub = up_rng_u64(seed, stream, index);
  const uint64_t sub_u = up_rng_mix(sub);
  const double a = shape < 1.0 ? shape + 1.0 : shape;
  const double d = a - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
  double x = d; /* unreachable fallback: acceptance is > 95% per try */
  for (uint64_t k = 0; k < 1000; ++k) {
    const double z = normal_at(seed, sub, k);
    const double t = 1.0 + c * z;
    if (t <= 0.0) continue;
    const double v = t * t * t;
    const double u = unit_open_low(seed, sub_u, k + 1);
    if (log(u) < 0.5 * z * z + d - d * v + d * log(v)) {
      x = d * v;
      break;
    }
  }
  if (shape < 1.0) x *= pow(unit_open_low(seed, sub_u, 0), 1.0 / shape);
  return x;
}
