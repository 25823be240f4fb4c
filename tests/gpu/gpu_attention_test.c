/* gpu_attention_test.c — the CUDA attention op beyond what gpu_ops_test checks: every
 * attention case of the shared op-case list (launcher/kernels/op_case_list.c: head_dim
 * 64/128/256, GQA 32/8, 16/8, 8/8 and 4/1, mixed packed batches over shuffled pages of
 * 8 to 128 entries, prior cached entries, pure decode, long prompts on sampled rows,
 * sliding windows with the blocks behind them -1 in the table) through the default
 * kernel and, where a head_dim-128 or 256 sequence takes the prefill path, through
 * every prefill variant by number (cuda_attention.h; on a GPU without the Hopper
 * kernels a variant falls back as the op does). A case with decode sequences runs
 * through both decode split kernels (the per-warp default and v1, chosen through
 * up_cuda_attention_set_decode_kernel whatever UP_DECODE_KERNEL says), and a few
 * decode-only cases of this file's own add the GQA groups of 8 and 16 (the per-warp
 * kernel's 8-query CTAs, several per kv head) at each head_dim. Each run happens twice on the same
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
    "sm90 TMA"};

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

/* One variant of one case (and decode split kernel, named by `path`): two runs, the
 * same bits, the error against the reference. */
static void run_variant(up_backend *gpu, const up_op_case *c, void *inputs, const void *reference, int variant,
                        int decode_kernel, const char *path) {
  up_cuda_backend_set_attention_variant(gpu, variant);
  up_cuda_attention_set_decode_kernel(gpu, decode_kernel);
  size_t n = 0;
  void *out = up_op_attention_output(inputs, &n);
  float *first = gpu_repeat_twice(gpu, c, inputs, out, n, path);
  free(first);
  up_op_check check = {0};
  c->driver->compare(gpu, c, inputs, reference, &check);
  CHECK(check.error < c->tolerance, "%s, %s: error %.3e (limit %g); %s", c->label, path, check.error, c->tolerance,
        check.detail);
  if (!(check.error < SUSPECT_ERR)) {
    up_op_attention_view view;
    up_op_attention_view_of(gpu, inputs, reference, &view);
    print_breakdown(c, &view);
    free(view.got);
  }
  up_cuda_backend_set_attention_variant(gpu, UP_ATTN_PREFILL_DEFAULT);
  up_cuda_attention_set_decode_kernel(gpu, UP_ATTN_DECODE_WARP);
}

/* Whether some sequence of the case takes the prefill path at a head_dim with Hopper
 * kernels (128, 256), whose variants the test then runs one by one. */
static int uses_hopper_prefill(const up_op_case *c) {
  if (c->batch.shape.head_dim != 128 && c->batch.shape.head_dim != 256) return 0;
  for (int32_t s = 0; s < c->batch.n_seqs; ++s)
    if (up_op_batch_rows(&c->batch, s) > UP_ATTN_DECODE_MAX_ROWS) return 1;
  return 0;
}

/* Whether some sequence of the case takes the decode path. */
static int uses_decode(const up_op_case *c) {
  for (int32_t s = 0; s < c->batch.n_seqs; ++s)
    if (up_op_batch_rows(&c->batch, s) <= UP_ATTN_DECODE_MAX_ROWS) return 1;
  return 0;
}

/* Decode-only batches beyond the shared list's groups (1, 2, 4): groups of 8 and 16,
 * so the per-warp kernel's 8-query CTAs run, one per kv head at one row and up to eight
 * at four; ragged caches over pages of 8 to 64 entries, and a sliding window. */
typedef struct decode_case {
  const char *name;
  up_attn_shape shape;
  int32_t block_tokens, window, n_seqs;
  int32_t rows[UP_OP_CASE_MAX_SEQS], prior[UP_OP_CASE_MAX_SEQS];
} decode_case;

static up_attn_shape heads(int32_t n_heads, int32_t n_kv_heads, int32_t head_dim) {
  return (up_attn_shape){n_heads, n_kv_heads, head_dim, 1.0f / sqrtf((float)head_dim)};
}

static up_op_case *decode_cases(int32_t *n_out) {
  const decode_case list[] = {
      {"hd128 gqa 32/4 decode bt16", heads(32, 4, 128), 16, 0, 6, {1, 1, 2, 4, 1, 3}, {5000, 31, 64, 2047, 0, 12000}},
      {"hd64 gqa 16/1 decode bt32", heads(16, 1, 64), 32, 0, 4, {1, 4, 2, 1}, {7000, 100, 1, 3333}},
      {"hd256 gqa 8/1 decode bt64", heads(8, 1, 256), 64, 0, 4, {1, 2, 1, 4}, {2500, 9000, 0, 600}},
      {"hd128 gqa 16/2 decode window 700 bt8", heads(16, 2, 128), 8, 700, 4, {1, 4, 1, 2}, {3000, 77, 15000, 699}},
  };
  const int32_t n = (int32_t)(sizeof list / sizeof list[0]);
  up_op_case *cases = calloc((size_t)n, sizeof *cases);
  if (!cases) {
    printf("FAIL out of host memory for %d decode cases\n", (int)n);
    exit(1);
  }
  for (int32_t i = 0; i < n; ++i) {
    up_op_case *c = &cases[i];
    c->driver = &up_op_attention;
    c->tolerance = 2e-2; /* as the shared list's attention cases (op_case_list.c) */
    c->poison = true;
    snprintf(c->label, sizeof c->label, "attention %s", list[i].name);
    up_op_batch_dims *d = &c->batch;
    d->shape = list[i].shape;
    d->block_tokens = list[i].block_tokens;
    d->window = list[i].window;
    d->n_seqs = list[i].n_seqs;
    d->per_sequence = true;
    for (int32_t s = 0; s < list[i].n_seqs; ++s) {
      d->rows[s] = list[i].rows[s];
      d->prior[s] = list[i].prior[s];
      d->candidate[s] = 1;
    }
    d->query_bound = d->qkv_bound = 2.0f;
    d->pool_bound = 1.0f;
    d->spare_blocks = true;
    d->poison_unowned = true;
  }
  *n_out = n;
  return cases;
}

/* Every variant the case reaches, then v1 for its decode sequences. */
static void run_case(up_backend *gpu, up_backend *cpu, const up_op_case *c, uint64_t seed) {
  void *inputs = c->driver->make(gpu, c, seed);
  const clock_t t0 = clock();
  void *reference = c->driver->reference(gpu, c, inputs, cpu);
  printf("# %s: reference in %.1f s of CPU\n", c->label, (double)(clock() - t0) / CLOCKS_PER_SEC);
  const int last = uses_hopper_prefill(c) ? UP_ATTN_PREFILL_LAST : UP_ATTN_PREFILL_DEFAULT;
  for (int variant = UP_ATTN_PREFILL_DEFAULT; variant <= last; ++variant)
    run_variant(gpu, c, inputs, reference, variant, UP_ATTN_DECODE_WARP, variant_names[variant]);
  if (uses_decode(c))
    run_variant(gpu, c, inputs, reference, UP_ATTN_PREFILL_DEFAULT, UP_ATTN_DECODE_V1, "default, decode v1");
  c->driver->free_reference(reference);
  c->driver->destroy(gpu, inputs);
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
  for (int32_t i = 0; i < n; ++i)
    if (cases[i].driver == &up_op_attention) run_case(gpu, cpu, &cases[i], seed + (uint64_t)i);
  free(cases);
  int32_t n_decode = 0;
  up_op_case *decode = decode_cases(&n_decode);
  for (int32_t i = 0; i < n_decode; ++i) run_case(gpu, cpu, &decode[i], seed + (uint64_t)(n + i));
  free(decode);
  cpu->ops->destroy(cpu);
  gpu->ops->destroy(gpu);
  return gpu_check_finish();
}
