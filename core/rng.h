/* rng.h — counter-based random streams (SplitMix64). A value depends only on
 * (seed, stream, index), never on call order, so weights and prompts come out the same
 * on any rank count, backend or thread split. */
#ifndef UP_RNG_H
#define UP_RNG_H

#include <stdint.h>

/* Callable from CUDA kernels too, so device-side initialisation draws the same values. */
#ifdef __CUDACC__
#define UP_RNG_FN static inline __host__ __device__
#else
#define UP_RNG_FN static inline
#endif

UP_RNG_FN uint64_t up_rng_mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/* The index-th 64-bit value of stream `stream` under `seed`. */
UP_RNG_FN uint64_t up_rng_u64(uint64_t seed, uint64_t stream, uint64_t index) {
  return up_rng_mix(up_rng_mix(seed ^ up_rng_mix(stream)) + index);
}

/* Uniform in [-1, 1). */
UP_RNG_FN float up_rng_symmetric(uint64_t seed, uint64_t stream, uint64_t index) {
  return (float)((double)(up_rng_u64(seed, stream, index) >> 11) * (2.0 / 9007199254740992.0) - 1.0);
}

/* Uniform in [0, 1). */
UP_RNG_FN double up_rng_unit(uint64_t seed, uint64_t stream, uint64_t index) {
  return (double)(up_rng_u64(seed, stream, index) >> 11) * (1.0 / 9007199254740992.0);
}

#endif
