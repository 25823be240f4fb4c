/* length_dist.h — token-length distributions of synthetic workloads (fixed, uniform
 * with a range ratio as in vLLM's random dataset, lognormal by median and sigma), their
 * text specs, and counter-based draws: the i-th length depends only on (seed, stream, i). */
#ifndef UP_LENGTH_DIST_H
#define UP_LENGTH_DIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum up_length_kind {
  UP_LENGTH_FIXED = 0,
  UP_LENGTH_UNIFORM = 1,   /* integers in [floor(L(1-r)), floor(L(1+r))], at least 1 */
  UP_LENGTH_LOGNORMAL = 2, /* exp(ln(median) + sigma * N(0,1)), rounded, at least 1 */
} up_length_kind;

typedef struct up_length_dist {
  up_length_kind kind;
  int32_t value;      /* the fixed length, the uniform centre or the lognormal median */
  double range_ratio; /* uniform: 0 <= r < 1 */
  double sigma;       /* lognormal: > 0 */
} up_length_dist;

/* Parse "fixed:4096", "uniform:4096:0.5", "lognormal:2048:0.8" or a bare size ("4k" =
 * fixed:4096). Lengths take k / M suffixes. False with a message on error. */
bool up_length_dist_parse(const char *text, up_length_dist *dist, char *err, size_t err_size);

/* The index-th length of stream `stream` under `seed`, >= 1 and <= INT32_MAX. */
int32_t up_length_dist_draw(const up_length_dist *dist, uint64_t seed, uint64_t stream, uint64_t index);

/* Canonical spec text, e.g. "lognormal:2048:0.8". */
void up_length_dist_format(const up_length_dist *dist, char *buf, size_t size);

#endif
