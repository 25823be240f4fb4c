/* gpu_attention_test.c — the CUDA attention op beyond what gpu_ops_test checks: every
 * attention case of the shared op-case list (launcher/kernels/op_case_list.c: head_dim
 * 64/128/256, GQA 32/8, 16/8, 8/8 and 4/1, mixed packed batches over shuffled pages of
 * 8 to 128 entries, prior cached entries, pure decode, long prompts on sampled rows,
 * sliding windows with the blocks behind them -1 in the table) through the default
 * kernel and, where a head_dim-128 or 256 sequence takes the prefill path, through
 * every prefill variant by number (cuda_attention.h; on a GPU without the Hopper
 * kernels a variant falls back as the op does). Each run happens twice on the same
 * inputs and must give identical bits: the kernels have no atomics, so a difference
 * means a race. The CPU reference is computed once per case. A run that fails, or lands
 * above the bf16 noise level, prints a per-sequence breakdown ("#" lines) that says
 * which sequence, row and head carry the error. Fresh inputs every run (seed printed;
 * UP_TEST_SEED repeats one). Plain C with its own harness: exit 77 without a GPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cuda/attention/cuda_attention.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/op_cases/case_attention.h"
#include "kernels/op_cases/op_check.h"
#include "kernels/op_cases/paged_batch.h"
#include "launcher/kernels/op_case_list.h"
#include "tests/gpu/gpu_check.h"
#include "tests/gpu/gpu_repeat.h"

/* Above this a passing run still prints its breakdown: the bf16 rounding of the output
 * (and of P in prefill) gives 1.5e-3 to 2.5e-3, so more means something real. */
#define SUSPECT_ERR 5e-3

static const char *const variant_names[UP_ATTN_PREFILL_LAST + 1] = {
    "default", "mma.sync 16 rows/warp, 32 keys", "mma.sync 256-row CTAs, 64 keys", "sm90 wgmma cp.async",
    "sm90 TMA", "sm90 TMA no ping-pong", "sm90 TMA three stages", "sm90 TMA persistent"};

typedef struct acc {
  double num, den;
} acc;

static double acc_rel(acc a) { return a.den > 0.0 ? sqrt(a.num / a.den) : sqrt(a.num); }

static acc acc_span(const float *got, const float *ref, size_t n, size_t *bad) {
  acc a = {0.0, 0.0};
  for (size_t i = 0; i < n; ++i) {
    if (!isfinite(got[i])) {
      ++*bad;
      continue;
    }
    const double d = (double)got[i] - (double)ref[i];
    a.num += d * d;
    a.den += (double)ref[i] * (double)ref[i];
  }
  return a;
}

/* Where the error of a run sits: one "#" line per sequence with compared rows (rows,
 * prior, which path took it, relative error over its compared rows, the worst row with
 * its worst head, rows over the limit and where they start and end), then how the
 * (row, head) pairs over the limit spread over the members of a GQA group and over the
 * 16-row slots of a 128-row tile (the prefill kernels' warps). */
static void print_breakdown(const up_op_case *c, const up_op_attention_view *v) {
  const up_op_batch_dims *d = &c->batch;
  const int32_t hd = d->shape.head_dim, n_heads = d->shape.n_heads, group = n_heads / d->shape.n_kv_heads;
  int64_t bad_by_member[64] = {0}, bad_by_slot[8] = {0};
  printf("# %s: per sequence (rows, prior, path, rel error, worst row t of the sequence with its error and worst "
         "head, rows over %.0e)\n", c->label, c->tolerance);
  for (int32_t i = 0; i < v->n_rows;) {
    const int32_t s = v->seq[i], n_rows = up_op_batch_rows(d, s), prior = up_op_batch_prior(d, s);
    acc seq = {0.0, 0.0};
    size_t nonfinite = 0;
    double worst = -1.0, worst_head_err = 0.0;
    int32_t worst_t = -1, worst_head = -1, bad_rows = 0, first_bad = -1, last_bad = -1;
    for (; i < v->n_rows && v->seq[i] == s; ++i) {
      const int32_t t = v->row_in_seq[i];
      size_t row_nonfinite = 0;
      double row_worst = -1.0;
      int32_t row_worst_head = -1;
      acc row = {0.0, 0.0};
      for (int32_t h = 0; h < n_heads; ++h) {
        size_t head_nonfinite = 0;
        const size_t at = (size_t)i * (size_t)v->width + (size_t)h * (size_t)hd;
        const acc a = acc_span(v->got + at, v->expected + at, (size_t)hd, &head_nonfinite);
        const double e = head_nonfinite ? INFINITY : acc_rel(a);
        if (e > row_worst) {
          row_worst = e;
          row_worst_head = h;
        }
        if (!(e < c->tolerance)) {
          ++bad_by_member[h % group < 64 ? h % group : 63];
          ++bad_by_slot[(t % 128) / 16];
        }
        row.num += a.num;
        row.den += a.den;
        row_nonfinite += head_nonfinite;
      }
      seq.num += row.num;
      seq.den += row.den;
      nonfinite += row_nonfinite;
      const double e = row_nonfinite ? INFINITY : acc_rel(row);
      if (e > worst) {
        worst = e;
        worst_t = t;
        worst_head = row_worst_head;
        worst_head_err = row_worst;
      }
      if (!(e < c->tolerance)) {
        ++bad_rows;
        if (first_bad < 0) first_bad = t;
        last_bad = t;
      }
    }
    printf("#   seq %d: %d rows, prior %d, %s: rel error %.3e (%zu non-finite); worst row t=%d (cache index %d) "
           "%.3e, its worst head %d (member %d of the group) %.3e; %d rows over, t %d..%d\n",
           s, n_rows, prior, n_rows <= UP_ATTN_DECODE_MAX_ROWS ? "decode" : "prefill", acc_rel(seq), nonfinite,
           worst_t, prior + worst_t, worst, worst_head, worst_head >= 0 ? worst_head % group : -1, worst_head_err,
           bad_rows, first_bad, last_bad);
  }
  printf("#   (row, head) pairs over the limit by group member:");
  for (int32_t g = 0; g < group && g < 64; ++g) printf(" %lld", (long long)bad_by_member[g]);
  printf("\n#   ... by 16-row slot of a 128-row tile (row %% 128 / 16):");
  for (int i = 0; i < 8; ++i) printf(" %lld", (long long)bad_by_slot[i]);
  printf("\n");
  fflush(stdout);
}

/* One variant of one case: two runs, the same bits, the error against the reference. */
static void run_variant(up_backend *gpu, const up_op_case *c, void *inputs, const void *reference, int variant) {
  up_cuda_backend_set_attention_variant(gpu, variant);
  size_t n = 0;
  void *out = up_op_attention_output(inputs, &n);
  float *first = gpu_repeat_twice(gpu, c, inputs, out, n, variant_names[variant]);
  free(first);
  up_op_check check = {0};
  c->driver->compare(gpu, c, inputs, reference, &check);
  CHECK(check.error < c->tolerance, "%s, %s: error %.3e (limit %g); %s", c->label, variant_names[variant],
        check.error, c->tolerance, check.detail);
  if (!(check.error < SUSPECT_ERR)) {
    up_op_attention_view view;
    up_op_attention_view_of(gpu, inputs, reference, &view);
    print_breakdown(c, &view);
    free(view.got);
  }
  up_cuda_backend_set_attention_variant(gpu, UP_ATTN_PREFILL_DEFAULT);
}

/* Whether some sequence of the case takes the prefill path at a head_dim with Hopper
 * kernels (128, 256), whose variants the test then runs one by one. */
static int uses_hopper_prefill(const up_op_case *c) {
  if (c->batch.shape.head_dim != 128 && c->batch.shape.head_dim != 256) return 0;
  for (int32_t s = 0; s < c->batch.n_seqs; ++s)
    if (up_op_batch_rows(&c->batch, s) > UP_ATTN_DECODE_MAX_ROWS) return 1;
  return 0;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  uint64_t seed = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull;
  const char *env = getenv("UP_TEST_SEED");
  if (env) seed = strtoull(env, NULL, 0);
  printf("# gpu_attention_test: seed %llu (UP_TEST_SEED repeats it)\n", (unsigned long long)seed);
  up_backend *gpu = gpu_check_cuda_backend();
  up_backend *cpu = up_cpu_backend_create(0);
  up_op_case *cases = NULL;
  const int32_t n = up_op_case_list(&cases);
  for (int32_t i = 0; i < n; ++i) {
    const up_op_case *c = &cases[i];
    if (c->driver != &up_op_attention) continue;
    void *inputs = c->driver->make(gpu, c, seed + (uint64_t)i);
    const clock_t t0 = clock();
    void *reference = c->driver->reference(gpu, c, inputs, cpu);
    printf("# %s: reference in %.1f s of CPU\n", c->label, (double)(clock() - t0) / CLOCKS_PER_SEC);
    const int last = uses_hopper_prefill(c) ? UP_ATTN_PREFILL_LAST : UP_ATTN_PREFILL_DEFAULT;
    for (int variant = UP_ATTN_PREFILL_DEFAULT; variant <= last; ++variant)
      run_variant(gpu, c, inputs, reference, variant);
    c->driver->free_reference(reference);
    c->driver->destroy(gpu, inputs);
  }
  free(cases);
  cpu->ops->destroy(cpu);
  gpu->ops->destroy(gpu);
  return gpu_check_finish();
}
