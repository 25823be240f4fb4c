/* test_sparse_fixtures.c — the C CPU reference of the three estimations
 * (kernels/cpu/sparse_*.c) against the fixtures that tests/reference/sparse_estimates.py,
 * an independent NumPy port written from ../shared/BASELINES.md, computed from the same
 * generated bf16 inputs: MInference's converted ranges and extra keys per 64-row block,
 * FlexPrefill's and XAttention's kept blocks per query block, line for line. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/sparse_ops.h"

/* The Python generator's twin: gain * (2u - 1) from a hash of (seed, stream, index). */
static float generated(uint64_t seed, uint64_t stream, uint64_t i, double gain) {
  uint64_t h = i * 0x9E3779B97F4A7C15ull + seed * 0xBF58476D1CE4E5B9ull + stream * 0x94D049BB133111EBull;
  h ^= h >> 31;
  h *= 0xD6E9F9A1B5D0A7E3ull;
  h ^= h >> 29;
  const double u = (double)(h >> 40) / (double)(1u << 24);
  return up_sparse_round_bf16((float)(gain * (2.0 * u - 1.0)));
}

typedef struct fixture {
  char method[32];
  double n, d, seed, gain, peak, v, s, gamma, tau, min_budget, stride, threshold;
  int32_t planted[8], n_planted;
  char **lines; /* the expected lines after the header */
  int32_t n_lines;
} fixture;

static void read_fixture(const char *name, fixture *f) {
  char path[512], line[8192];
  snprintf(path, sizeof path, "%s/sparse/%s.txt", UP_TEST_DATA_DIR, name);
  FILE *in = fopen(path, "r");
  cr_assert_not_null(in, "cannot open %s", path);
  memset(f, 0, sizeof *f);
  f->lines = calloc(4096, sizeof(char *));
  while (fgets(line, sizeof line, in)) {
    line[strcspn(line, "\n")] = '\0';
    if (line[0] == '#') continue;
    if (strncmp(line, "method ", 7) == 0) {
      snprintf(f->method, sizeof f->method, "%.31s", line + 7);
    } else if (strncmp(line, "params ", 7) == 0) {
      char *save = NULL;
      for (char *key = strtok_r(line + 7, " ", &save); key; key = strtok_r(NULL, " ", &save)) {
        const double value = atof(strtok_r(NULL, " ", &save));
        double *slot = !strcmp(key, "n") ? &f->n : !strcmp(key, "d") ? &f->d : !strcmp(key, "seed") ? &f->seed
                     : !strcmp(key, "gain") ? &f->gain : !strcmp(key, "peak") ? &f->peak : !strcmp(key, "v") ? &f->v
                     : !strcmp(key, "s") ? &f->s : !strcmp(key, "gamma") ? &f->gamma : !strcmp(key, "tau") ? &f->tau
                     : !strcmp(key, "min_budget") ? &f->min_budget : !strcmp(key, "stride") ? &f->stride
                     : !strcmp(key, "threshold") ? &f->threshold : NULL;
        cr_assert_not_null(slot, "%s: unknown parameter %s", name, key);
        *slot = value;
      }
    } else if (strncmp(line, "planted ", 8) == 0) {
      char *save = NULL;
      f->n_planted = atoi(strtok_r(line + 8, " ", &save));
      for (int32_t i = 0; i < f->n_planted; ++i) f->planted[i] = atoi(strtok_r(NULL, " ", &save));
    } else {
      cr_assert_lt(f->n_lines, 4096);
      f->lines[f->n_lines++] = strdup(line);
    }
  }
  fclose(in);
}

static void free_fixture(fixture *f) {
  for (int32_t i = 0; i < f->n_lines; ++i) free(f->lines[i]);
  free(f->lines);
}

static void make_inputs(const fixture *f, float **q, float **k) {
  const int32_t n = (int32_t)f->n, d = (int32_t)f->d;
  *q = malloc(sizeof(float) * (size_t)n * d);
  *k = malloc(sizeof(float) * (size_t)n * d);
  for (int64_t i = 0; i < (int64_t)n * d; ++i) {
    (*q)[i] = generated((uint64_t)f->seed, 1, (uint64_t)i, f->gain);
    (*k)[i] = generated((uint64_t)f->seed, 2, (uint64_t)i, 1.0);
  }
  if (f->n_planted)
    for (int32_t t = 0; t < n; ++t) (*q)[t * d] = up_sparse_round_bf16((float)f->peak);
  for (int32_t i = 0; i < f->n_planted; ++i) (*k)[f->planted[i] * d] = up_sparse_round_bf16((float)f->peak);
}

static void expect_line(const fixture *f, int32_t i, const char *got, const char *name) {
  cr_assert_lt(i, f->n_lines, "%s: more lines than the fixture", name);
  cr_expect_str_eq(got, f->lines[i], "%s line %d: C '%s' vs NumPy '%s'", name, i, got, f->lines[i]);
}

static void append_ints(char *buf, size_t size, const int32_t *v, int32_t n) {
  for (int32_t i = 0; i < n; ++i) snprintf(buf + strlen(buf), size - strlen(buf), " %d", (int)v[i]);
}

static void check_minference(const char *name) {
  fixture f;
  read_fixture(name, &f);
  float *q, *k;
  make_inputs(&f, &q, &k);
  const int32_t n = (int32_t)f.n, nq = (n + 63) / 64;
  int32_t *columns = malloc(sizeof(int32_t) * (size_t)n), *offsets = malloc(sizeof(int32_t) * (size_t)n), nc, no;
  up_minference_head_select(q, k, n, (int32_t)f.d, 64, 30, 100, (int32_t)f.v, (int32_t)f.s, columns, &nc, offsets, &no);
  up_sparse_rows rows;
  up_sparse_rows_init(&rows, nq, 1);
  up_minference_convert(&rows, 0, n, columns, nc, offsets, no);
  cr_assert_eq(f.n_lines, nq, "%s: %d row blocks", name, nq);
  for (int32_t b = 0; b < nq; ++b) {
    char got[8192];
    snprintf(got, sizeof got, "%d ranges", (int)b);
    append_ints(got, sizeof got, rows.ranges[b], rows.n_ranges[b]);
    snprintf(got + strlen(got), sizeof got - strlen(got), " | extra");
    append_ints(got, sizeof got, rows.columns[b], rows.n_columns[b]);
    expect_line(&f, b, got, name);
  }
  up_sparse_rows_free(&rows);
  free(columns);
  free(offsets);
  free(q);
  free(k);
  free_fixture(&f);
}

/* "qb blocks j j j" lines of a block mask, from line `first` of the fixture on. */
static void check_mask(const fixture *f, const uint8_t *mask, int32_t nq, int32_t first, const char *name) {
  cr_assert_eq(f->n_lines - first, nq, "%s: %d query blocks", name, nq);
  for (int32_t qb = 0; qb < nq; ++qb) {
    char got[8192];
    snprintf(got, sizeof got, "%d blocks", (int)qb);
    for (int32_t kb = 0; kb < nq; ++kb)
      if (mask[qb * nq + kb]) snprintf(got + strlen(got), sizeof got - strlen(got), " %d", (int)kb);
    expect_line(f, first + qb, got, name);
  }
}

static void check_flexprefill(const char *name) {
  fixture f;
  read_fixture(name, &f);
  float *q, *k;
  make_inputs(&f, &q, &k);
  const int32_t n = (int32_t)f.n, nq = (n + 127) / 128;
  uint8_t *mask = malloc((size_t)nq * nq);
  const up_flexprefill_params p = {.gamma = (float)f.gamma, .tau = (float)f.tau, .min_budget = (int32_t)f.min_budget,
                                   .max_budget = 0, .block = 128, .density_cap = 1.0f};
  const int qa = up_flexprefill_head_mask(q, k, n, (int32_t)f.d, &p, mask, NULL);
  char got[64];
  snprintf(got, sizeof got, "query_aware %d", qa);
  expect_line(&f, 0, got, name);
  check_mask(&f, mask, nq, 1, name);
  free(mask);
  free(q);
  free(k);
  free_fixture(&f);
}

static void check_xattention(const char *name) {
  fixture f;
  read_fixture(name, &f);
  float *q, *k;
  make_inputs(&f, &q, &k);
  const int32_t n = (int32_t)f.n, nq = (n + 127) / 128;
  double *w = malloc(sizeof(double) * (size_t)nq * nq);
  uint8_t *mask = malloc((size_t)nq * nq);
  up_xattention_head_scores(q, k, n, (int32_t)f.d, (int32_t)f.stride, w);
  up_xattention_head_mask(w, nq, (double)(float)f.threshold, up_xattention_first_chunk_blocks(n), mask);
  check_mask(&f, mask, nq, 0, name);
  free(w);
  free(mask);
  free(q);
  free(k);
  free_fixture(&f);
}

Test(sparse_fixtures, minference_matches_the_numpy_port) {
  check_minference("minference_random");
  check_minference("minference_peaked");
}

Test(sparse_fixtures, flexprefill_matches_the_numpy_port) {
  check_flexprefill("flexprefill_random");
  check_flexprefill("flexprefill_query_aware");
  check_flexprefill("flexprefill_peaked");
}

Test(sparse_fixtures, xattention_matches_the_numpy_port) {
  check_xattention("xattention_random");
  check_xattention("xattention_peaked_s16");
  check_xattention("xattention_past_first_chunk");
}
