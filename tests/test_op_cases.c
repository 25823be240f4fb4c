/* test_op_cases.c — the op cases shared by the GPU tests and --kernels, on the CPU:
 * the op index covers every member of up_backend_ops (its rows tile the struct), every
 * op that computes has a case in the correctness list, the cheap cases of that list and
 * every --kernels case agree with the reference when the backend under test is a
 * second CPU backend (so any error is the harness's own), and an op that computes
 * wrongly is caught. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model/model_config.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/op_cases/op_check.h"
#include "kernels/op_cases/op_index.h"
#include "launcher/cli.h"
#include "launcher/kernels/kernel_cases.h"
#include "launcher/kernels/op_case_list.h"

/* Above this many multiply-adds a case is left to the GPU machine (the CPU reference
 * there is the slow side too). */
#define CHEAP_WORK 1e9
/* fp32 against fp32 on the same values: only summation order may differ. */
#define CPU_AGAINST_CPU 1e-5

Test(op_cases, the_index_tiles_up_backend_ops) {
  size_t next = offsetof(up_backend_ops, name) + sizeof(((up_backend_ops *)0)->name);
  for (int32_t i = 0; i < up_op_index_count(); ++i) {
    const up_op_entry *e = up_op_index_at(i);
    cr_expect_eq(e->offset, next, "%s starts at %zu, the member before it ends at %zu: a member of "
                 "up_backend_ops has no row in kernels/op_cases/op_index.c", e->name, e->offset, next);
    cr_expect_eq(up_op_index_find(e->name), e, "%s is listed twice", e->name);
    cr_expect(e->role == UP_OP_COMPUTES || (e->why && e->why[0]), "harness op %s says where it runs", e->name);
    next = e->offset + e->size;
  }
  cr_expect_eq(next, sizeof(up_backend_ops), "members after the last row (%zu of %zu bytes covered): add them to "
               "kernels/op_cases/op_index.c", next, sizeof(up_backend_ops));
}

Test(op_cases, every_op_that_computes_has_a_case) {
  up_op_case *cases = NULL;
  const int32_t n = up_op_case_list(&cases);
  cr_assert_gt(n, 0);
  for (int32_t i = 0; i < up_op_index_count(); ++i) {
    const up_op_entry *e = up_op_index_at(i);
    if (e->role != UP_OP_COMPUTES) continue;
    int32_t covering = 0;
    for (int32_t k = 0; k < n; ++k) covering += up_op_case_calls(&cases[k], e->name);
    cr_expect_gt(covering, 0, "no case in launcher/kernels/op_case_list.c calls %s", e->name);
  }
  for (int32_t k = 0; k < n; ++k)
    for (int j = 0; cases[k].driver->ops[j]; ++j)
      cr_expect_not_null(up_op_index_find(cases[k].driver->ops[j]), "case '%s' calls '%s', which is no op",
                         cases[k].label, cases[k].driver->ops[j]);
  free(cases);
}

Test(op_cases, cheap_cases_agree_cpu_against_cpu) {
  up_op_case *cases = NULL;
  const int32_t n = up_op_case_list(&cases);
  up_backend *ref = up_cpu_backend_create(1), *be = up_cpu_backend_create(1);
  int32_t ran = 0;
  for (int32_t k = 0; k < n; ++k) {
    if (cases[k].driver->work(&cases[k]) > CHEAP_WORK) continue;
    up_op_check check;
    up_op_case_check(&cases[k], be, ref, 1234 + (uint64_t)k, &check);
    cr_expect(check.passed && check.error <= CPU_AGAINST_CPU, "%s: error %.3e (%s)", cases[k].label, check.error,
              check.detail);
    cr_log_info("%s: error %.3e (%s)", cases[k].label, check.error, check.detail);
    ++ran;
  }
  cr_expect_gt(ran, n / 2, "only %d of %d cases are cheap enough to run here", (int)ran, (int)n);
  be->ops->destroy(be);
  ref->ops->destroy(ref);
  free(cases);
}

/* --- a backend that computes wrongly ------------------------------------------------ */

static up_backend_ops wrong_ops;
static const up_backend_ops *right_ops;

static void matmul_off_by_five_percent(up_backend *be, void *out, const void *a, const void *w, int32_t m, int32_t n,
                                       int32_t k) {
  right_ops->matmul(be, out, a, w, m, n, k);
  for (int64_t i = 0; i < (int64_t)m * n; ++i) ((float *)out)[i] *= 1.05f;
}

/* Every row attends one entry short of its cache: its own key is never seen. */
static void attention_one_short(up_backend *be, void *out, const void *qkv, const up_kv_pool *pool,
                                const up_attn_batch *batch, const up_attn_shape *shape, int32_t window) {
  int32_t *kv_lens = malloc(sizeof(int32_t) * (size_t)batch->n_seqs);
  for (int32_t s = 0; s < batch->n_seqs; ++s) kv_lens[s] = batch->kv_lens[s] - 1;
  up_attn_batch shorter = *batch;
  shorter.kv_lens = kv_lens;
  right_ops->attention(be, out, qkv, pool, &shorter, shape, window);
  free(kv_lens);
}

static void argmax_off_by_one(up_backend *be, int32_t *dst_host, const void *x, int32_t n_rows, int32_t n_cols) {
  right_ops->argmax_rows(be, dst_host, x, n_rows, n_cols);
  for (int32_t r = 0; r < n_rows; ++r) dst_host[r] = (dst_host[r] + 1) % n_cols;
}

/* Keeps every row, whatever the scores say. */
static int32_t select_keeps_everything(up_backend *be, int32_t *keep_rows, int32_t *new_cu_seqlens_host,
                                       const void *qkv, const up_kv_pool *pool, const up_attn_batch *batch,
                                       const up_attn_shape *shape, const uint8_t *is_candidate_host,
                                       const up_select_params *params) {
  be->ops->download_i32(be, new_cu_seqlens_host, batch->cu_seqlens, (size_t)batch->n_seqs + 1);
  for (int32_t t = 0; t < batch->n_tokens; ++t) keep_rows[t] = t; /* host memory on the CPU backend */
  return batch->n_tokens;
}

/* The method-kernel lookup with the selection swapped for the one above. */
static up_method_kernel_fn wrong_method_kernel(up_backend *be, const char *name) {
  if (strcmp(name, UP_UNIPREFILL_SELECT_KERNEL) == 0) return (up_method_kernel_fn)select_keeps_everything;
  return right_ops->method_kernel(be, name);
}

static up_backend *wrong_backend(void) {
  up_backend *be = up_cpu_backend_create(1);
  right_ops = be->ops;
  wrong_ops = *be->ops;
  wrong_ops.matmul = matmul_off_by_five_percent;
  wrong_ops.attention = attention_one_short;
  wrong_ops.argmax_rows = argmax_off_by_one;
  wrong_ops.method_kernel = wrong_method_kernel;
  be->ops = &wrong_ops;
  return be;
}

Test(op_cases, a_wrong_op_is_caught) {
  up_backend *ref = up_cpu_backend_create(1), *be = wrong_backend();
  enum { N_CASES = 4 };
  up_op_case cases[N_CASES] = {
      {.driver = &up_op_matmul, .label = "matmul", .tolerance = 2e-2, .gemm = {.m = 40, .n = 24, .k = 16}},
      {.driver = &up_op_attention, .label = "attention", .tolerance = 2e-2, .sample = 5},
      {.driver = &up_op_argmax_rows, .label = "argmax", .tolerance = 0.0, .rows = {.rows = 6, .dim = 50}},
      {.driver = &up_op_selection, .label = "selection", .tolerance = 0.0},
  };
  cases[1].batch = (up_op_batch_dims){.shape = {4, 2, 16, 0.25f}, .block_tokens = 8, .n_seqs = 2, .rows_each = 30,
                                      .prior_each = 3, .query_bound = 2.0f, .qkv_bound = 2.0f, .pool_bound = 1.0f};
  cases[3].batch = (up_op_batch_dims){.shape = {4, 2, 16, 0.25f}, .block_tokens = 16, .n_seqs = 2, .rows_each = 400,
                                      .query_bound = 8.0f, .qkv_bound = 2.0f, .pool_bound = 1.0f,
                                      .select = {.top_p = 0.5f, .block = 32, .sink = 16, .last_q = 32}};
  for (int i = 0; i < N_CASES; ++i) {
    up_op_check check;
    up_op_case_check(&cases[i], be, ref, 99, &check);
    cr_expect(!check.passed, "%s: a wrong op passed with error %.3e (%s)", cases[i].label, check.error, check.detail);
    cr_expect_gt(check.error, cases[i].tolerance, "%s", cases[i].label);
  }
  /* The same cases pass on an honest backend: the failures above are the ops' own. */
  up_backend *honest = up_cpu_backend_create(1);
  for (int i = 0; i < N_CASES; ++i) {
    up_op_check check;
    up_op_case_check(&cases[i], honest, ref, 99, &check);
    cr_expect(check.passed, "%s: error %.3e (%s)", cases[i].label, check.error, check.detail);
  }
  honest->ops->destroy(honest);
  be->ops->destroy(be);
  ref->ops->destroy(ref);
}

/* --kernels validates every case on a sample before timing it: on a second CPU backend
 * the samples must agree, through the same make / validate path kernel_bench.c takes.
 * The plan of the command line args (argv[0] added) for model cfg. */
static void validate_kernel_cases(const char *const *args, int n_args, const up_model_config *cfg,
                                  int32_t expected_cases) {
  char *argv[16] = {"uniprefill-bench"};
  for (int i = 0; i < n_args; ++i) argv[i + 1] = (char *)args[i];
  up_options opt;
  char err[512] = "";
  FILE *devnull = fopen("/dev/null", "w");
  cr_assert_eq(up_options_parse(n_args + 1, argv, &opt, devnull, err, sizeof err), UP_PARSE_OK, "%s", err);
  fclose(devnull);
  const up_kernel_device dev = {.on_gpu = false, .dtype = UP_DTYPE_F32, .name = "cpu"};
  up_kernel_plan plan;
  cr_assert(up_kernel_plan_build(&plan, &opt, cfg, &dev, err, sizeof err), "%s", err);
  if (expected_cases > 0) cr_assert_eq(plan.n_cases, expected_cases);
  up_backend *ref = up_cpu_backend_create(1), *be = up_cpu_backend_create(1);
  for (int32_t i = 0; i < plan.n_cases; ++i) {
    up_kernel_case *c = &plan.cases[i];
    cr_expect_str_eq(c->op.label, c->record.label);
    cr_expect(c->op.sample > 0, "%s: --kernels checks a sample", c->record.label);
    void *inputs = c->op.driver->make(be, &c->op, 42);
    up_op_check check;
    up_op_case_validate(&c->op, be, inputs, ref, &check);
    cr_expect(check.passed && check.error <= CPU_AGAINST_CPU, "%s: error %.3e (%s)", c->record.label, check.error,
              check.detail);
    c->op.driver->destroy(be, inputs);
  }
  up_kernel_plan_free(&plan);
  be->ops->destroy(be);
  ref->ops->destroy(ref);
}

Test(op_cases, kernel_cases_validate_on_samples) {
  const char *args[] = {"--kernels", "--kernel-tokens", "200", "--ctx", "300", "--kernel-batches", "3x300"};
  validate_kernel_cases(args, 7, up_model_preset_find("tiny-llama"), 0);
}

/* The sliding-window --kernels cases of a model with sliding layers validate the same
 * way (full attention, then the model's window of 100 under the prompt's 300 rows). */
Test(op_cases, sliding_window_kernel_cases_validate_on_samples) {
  up_model_config sliding = *up_model_preset_find("tiny-llama");
  sliding.sliding_window = 100;
  const char *args[] = {"--kernels", "--kernel-cases", "attention", "--ctx", "300"};
  validate_kernel_cases(args, 5, &sliding, 2);
}

/* Windowed attention cases are not the full ones under another name: a backend that
 * ignores the window fails them, and one that keeps it passes. */
static void attention_ignoring_window(up_backend *be, void *out, const void *qkv, const up_kv_pool *pool,
                                      const up_attn_batch *batch, const up_attn_shape *shape, int32_t window) {
  (void)window;
  right_ops->attention(be, out, qkv, pool, batch, shape, 0);
}

Test(op_cases, a_backend_ignoring_the_window_is_caught) {
  up_backend *ref = up_cpu_backend_create(1), *be = up_cpu_backend_create(1);
  right_ops = be->ops;
  wrong_ops = *be->ops;
  wrong_ops.attention = attention_ignoring_window;
  be->ops = &wrong_ops;
  /* No cached prefix: every block stays in the table, so ignoring the window reads
   * only real entries and shows as a wrong value, not a crash. */
  up_op_case c = {.driver = &up_op_attention, .label = "window", .tolerance = 2e-2, .sample = 6};
  c.batch = (up_op_batch_dims){.shape = {4, 2, 16, 0.25f}, .block_tokens = 8, .n_seqs = 2, .rows_each = 90,
                               .query_bound = 2.0f, .qkv_bound = 2.0f, .pool_bound = 1.0f, .window = 20};
  up_op_check check;
  up_op_case_check(&c, be, ref, 5, &check);
  cr_expect(!check.passed, "a backend ignoring the window passed with error %.3e (%s)", check.error, check.detail);
  up_backend *honest = up_cpu_backend_create(1);
  up_op_case_check(&c, honest, ref, 5, &check);
  cr_expect(check.passed, "error %.3e (%s)", check.error, check.detail);
  honest->ops->destroy(honest);
  be->ops->destroy(be);
  ref->ops->destroy(ref);
}
