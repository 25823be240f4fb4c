/* test_kernel_cases.c — the --kernels case list: which cases the CPU and GPU defaults
 * give, the work formulas (FLOPs and bytes) from the shapes, floors at the device's
 * peaks (and none for an unknown device), the targets attached only to the
 * shapes they were set for, met / missed, and the errors that name the flag. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kernels/op_cases/case_qwen.h"
#include "launcher/cli.h"
#include "launcher/kernels/device_peaks.h"
#include "launcher/kernels/kernel_cases.h"
#include "launcher/kernels/kernel_targets.h"

#define H100_NAME "NVIDIA H100 80GB HBM3 (sm_90; 79.1 GiB)"

static const up_kernel_device cpu_device = {.on_gpu = false, .dtype = UP_DTYPE_F32, .name = "AMD EPYC (2 cores)"};
static const up_kernel_device h100_device = {.on_gpu = true, .dtype = UP_DTYPE_BF16, .name = H100_NAME};

/* Options from a command line (NULL-terminated, argv[0] added). */
static up_options parse(const char *const *args) {
  char *argv[32] = {"uniprefill-bench"};
  int argc = 1;
  for (; *args; ++args) argv[argc++] = (char *)*args;
  up_options opt;
  char err[512] = "";
  FILE *out = fopen("/dev/null", "w");
  cr_assert_not_null(out);
  const up_parse_status status = up_options_parse(argc, argv, &opt, out, err, sizeof err);
  fclose(out);
  cr_assert_eq(status, UP_PARSE_OK, "%s", err);
  return opt;
}

#define OPTIONS(...) parse((const char *const[]){__VA_ARGS__, NULL})

static up_kernel_plan build(const up_options *opt, const char *model, const up_kernel_device *dev) {
  up_kernel_plan plan;
  char err[512] = "";
  cr_assert(up_kernel_plan_build(&plan, opt, up_model_preset_find(model), dev, err, sizeof err), "%s", err);
  return plan;
}

static const up_kernel_record *find(const up_kernel_plan *plan, const char *label) {
  for (int32_t i = 0; i < plan->n_cases; ++i)
    if (strcmp(plan->cases[i].record.label, label) == 0) return &plan->cases[i].record;
  cr_assert_fail("no case '%s'", label);
  return NULL;
}

Test(kernel_cases, cpu_defaults_and_work_formulas) {
  const up_options opt = OPTIONS("--kernels");
  up_kernel_plan plan = build(&opt, "tiny-llama", &cpu_device);
  const char *labels[] = {"gemm qkv",          "gemm o",           "gemm gate_up",     "gemm down",
                          "attention 1x512",   "attention 1x1K",   "decode 4x512",     "selection 1x512",
                          "selection 1x1K",    "selection 4x512",  "sparse 1x512 p1.0", "sparse 1x512 p0.3",
                          "sparse 1x512 p0.1", "sparse 1x1K p1.0", "sparse 1x1K p0.3", "sparse 1x1K p0.1",
                          "estimate minference 1x512", "estimate flexprefill 1x512", "estimate xattention 1x512",
                          "estimate minference 1x1K", "estimate flexprefill 1x1K", "estimate xattention 1x1K"};
  cr_assert_eq(plan.n_cases, 22);
  for (int32_t i = 0; i < plan.n_cases; ++i) {
    const up_kernel_record *r = &plan.cases[i].record;
    cr_expect_str_eq(r->label, labels[i]);
    cr_expect_eq(r->index, i);
    cr_expect(isnan(r->median_ms), "not measured yet");
    cr_expect(isnan(r->floor_ms), "%s: a CPU has no known peaks", r->label);
    cr_expect_eq(r->target_met, UP_VERDICT_NONE, "%s: no targets on the CPU", r->label);
    cr_expect_str_eq(r->target, "");
    cr_expect_eq(r->flush_bytes, 0);
    cr_expect_eq(r->warmup, 3);
    cr_expect_eq(r->repeats, 15);
  }
  /* tiny-llama: hidden 256, 4 q / 2 kv heads of 64, intermediate 704; fp32 on the CPU. */
  const up_kernel_record *qkv = find(&plan, "gemm qkv");
  cr_expect_eq(qkv->m, 512);
  cr_expect_eq(qkv->n, (4 + 2 * 2) * 64);
  cr_expect_eq(qkv->k, 256);
  cr_expect_str_eq(qkv->shape, "512x512x256");
  cr_expect_float_eq(qkv->flop, 2.0 * 512 * 512 * 256, 1e-6);
  cr_expect_float_eq(qkv->bytes, 4.0 * (512 * 256 + 512 * 256 + 512 * 512), 1e-6);
  const up_kernel_record *gate_up = find(&plan, "gemm gate_up");
  cr_expect_eq(gate_up->n, 2 * 704);
  const up_kernel_record *down = find(&plan, "gemm down");
  cr_expect_eq(down->n, 256);
  cr_expect_eq(down->k, 704);
  const up_kernel_record *attn = find(&plan, "attention 1x1K");
  cr_expect_eq(attn->tokens, 1024);
  cr_expect_eq(attn->n_heads, 4);
  cr_expect_eq(attn->n_kv_heads, 2);
  cr_expect_eq(attn->head_dim, 64);
  cr_expect_float_eq(attn->flop, 2.0 * 1024.0 * 1024.0 * 64 * 4, 1e-3); /* 4 L^2/2 d per head */
  cr_expect_float_eq(attn->bytes, 4.0 * (2.0 * 1024 * 256 + 2.0 * 1024 * 128), 1e-6);
  const up_kernel_record *decode = find(&plan, "decode 4x512");
  cr_expect_eq(decode->tokens, 4, "one new row per sequence");
  cr_expect_eq(decode->seq_len, 512);
  cr_expect_float_eq(decode->flop, 4 * 4.0 * 512 * 64 * 4, 1e-6);
  cr_expect_float_eq(decode->bytes, 4 * 4.0 * (2.0 * 256 + 2.0 * 512 * 128), 1e-6);
  const up_kernel_record *select = find(&plan, "selection 4x512");
  cr_expect_eq(select->tokens, 2048);
  cr_expect_float_eq(select->flop, 2048 * 2.0 * 64 * 4 * 128, 1e-3); /* one score pass over last_q = 128 queries */
  cr_expect_float_eq(select->bytes, 2048 * 2.0 * 4 * 128, 1e-6);
  /* Memory: a GEMM's three operands; a batch its rows, pool (whole 16-entry blocks) and output. */
  cr_expect_eq(up_kernel_case_bytes(&plan, &plan.cases[0]), 4 * (512 * 256 + 512 * 256 + 512 * 512));
  cr_expect_eq(up_kernel_case_pool_blocks(&plan, &plan.cases[6]), 4 * 32);
  up_kernel_plan_free(&plan);
}

/* Sparse cases: the sparse attention op case over one prompt with its density, FLOPs
 * from the pairs the drawn pattern covers on average (every causal pair at density 1),
 * the bytes of attention, and the pattern's lists in the memory estimate. */
Test(kernel_cases, sparse_cases_and_their_work) {
  cr_expect_float_eq(up_kernel_sparse_pairs(1024, 128, 1.0), 1024.0 * 1025 / 2, 1e-6, "density 1: every causal pair");
  /* 300 rows: blocks of 128, 128, 44; block 1 sees key block 0, block 2 key block 0
   * and block 1 with probability 0.5. */
  const double three = 128.0 * 129 / 2 + (128.0 * 129 / 2 + 128.0 * 128) + (44.0 * 45 / 2 + 44.0 * 128 * 1.5);
  cr_expect_float_eq(up_kernel_sparse_pairs(300, 128, 0.5), three, 1e-6);
  const up_options opt = OPTIONS("--kernels", "--kernel-cases", "sparse,attention", "--ctx", "32k");
  up_kernel_plan plan = build(&opt, "llama-3.1-8b", &h100_device);
  const char *labels[] = {"attention 1x32K",           "sparse 1x32K p1.0",          "sparse 1x32K p0.3",
                          "sparse 1x32K p0.1",         "estimate minference 1x32K", "estimate flexprefill 1x32K",
                          "estimate xattention 1x32K"};
  cr_assert_eq(plan.n_cases, 7);
  for (int32_t i = 0; i < plan.n_cases; ++i) cr_expect_str_eq(plan.cases[i].record.label, labels[i]);
  const up_kernel_case *dense = &plan.cases[0], *tenth = &plan.cases[3];
  cr_expect_eq(tenth->kind, UP_KERNEL_SPARSE);
  cr_expect_str_eq(tenth->record.kernel, "sparse");
  cr_expect_str_eq(tenth->record.shape, "1x32768 h32/8 d128 b128 p0.1");
  cr_expect_eq(tenth->op.driver, &up_op_sparse_attention);
  cr_expect_float_eq(tenth->op.batch.sparse.density, 0.1f, 1e-9);
  cr_expect_eq(tenth->op.batch.sparse.block_q, 128);
  cr_expect_eq(tenth->op.sample, 2, "the first and last query blocks are checked");
  cr_expect_float_eq(tenth->record.flop, 4.0 * up_kernel_sparse_pairs(32768, 128, 0.1) * 128 * 32, 1e-3);
  cr_expect_float_eq(plan.cases[1].record.flop / dense->record.flop, 32769.0 / 32768.0, 1e-9,
                     "density 1 counts the diagonal's L/2 pairs the FlashAttention convention leaves out");
  cr_expect_float_eq(tenth->record.bytes, dense->record.bytes, 1e-6);
  cr_expect_gt(up_kernel_case_bytes(&plan, tenth), up_kernel_case_bytes(&plan, dense), "the lists take memory");
  cr_expect(isnan(tenth->record.target_tflops_per_s) && tenth->record.target[0] == '\0', "no target");
  /* The estimators alone: BASELINES.md 4's FLOPs (2 x last queries x n d H, n^2 d H / 8),
   * K once (and Q where every query is read), the whole pattern checked but XAttention's
   * at 32K, whose CPU reference would take minutes. */
  const double n = 32768, d = 128, H = 32, kv_dim = 8 * 128;
  const up_kernel_case *mi = &plan.cases[4], *fp = &plan.cases[5], *xa = &plan.cases[6];
  const up_op_driver *drivers[3] = {&up_op_minference_estimate, &up_op_flexprefill_estimate,
                                    &up_op_xattention_estimate};
  for (int i = 0; i < 3; ++i) {
    const up_kernel_case *c = &plan.cases[4 + i];
    cr_expect_eq(c->kind, UP_KERNEL_SPARSE);
    cr_expect_str_eq(c->record.kernel, "sparse_estimate");
    cr_expect_eq(c->op.driver, drivers[i]);
    cr_expect_eq(c->unchecked, i == 2, "%s: only XAttention at 32K goes unchecked", c->record.label);
    cr_expect_gt(up_kernel_case_bytes(&plan, c), up_kernel_case_bytes(&plan, tenth), "%s: scratch", c->record.label);
  }
  cr_expect_str_eq(mi->record.shape, "1x32768 h32/8 d128 minference");
  cr_expect_float_eq(mi->record.flop, 2.0 * 64 * n * d * H, 1e-3);
  cr_expect_float_eq(mi->record.bytes, 2.0 * (n * kv_dim + 64 * H * d), 1e-6);
  cr_expect_eq(mi->op.batch.sparse.vertical, 512);
  cr_expect_eq(mi->op.batch.sparse.slash, 2048);
  cr_expect_float_eq(fp->record.flop, 2.0 * 128 * n * d * H, 1e-3);
  cr_expect_float_eq(fp->record.bytes, 2.0 * n * (H * d + kv_dim), 1e-6);
  cr_expect_float_eq(fp->op.batch.sparse.gamma, 0.95f, 1e-9);
  cr_expect_float_eq(xa->record.flop, n * n * d * H / 8, 1e-3);
  cr_expect_float_eq(xa->record.bytes, fp->record.bytes, 1e-6);
  cr_expect_eq(xa->op.batch.sparse.stride, 8);
  cr_expect_float_eq(xa->record.floor_ms, xa->record.flop / 989.5e12 * 1e3, 1e-9, "compute-bound at the bf16 peak");
  up_kernel_plan_free(&plan);
  /* The CUDA kernel takes head_dim 64 too (SmolLM2's): a tiny-llama (64) gets its cases on a GPU. */
  const up_options all = OPTIONS("--kernels", "--kernel-cases", "sparse", "--ctx", "1k");
  plan = build(&all, "tiny-llama", &h100_device);
  cr_expect_eq(plan.n_cases, 6, "three densities and three estimators");
  up_kernel_plan_free(&plan);
}

Test(kernel_cases, flags_choose_the_cases) {
  const up_options opt = OPTIONS("--kernels", "--kernel-cases", "selection,decode", "--ctx", "300,2k",
                                 "--kernel-batches", "1x2k,3x1000", "--kernel-repeats", "2", "--kernel-warmup", "0");
  up_kernel_plan plan = build(&opt, "tiny-llama", &cpu_device);
  /* decode at both batches, the selection at each ctx and at 3x1000; 1x2k repeats a ctx case. */
  const char *labels[] = {"decode 1x2K", "decode 3x1000", "selection 1x300", "selection 1x2K", "selection 3x1000"};
  cr_assert_eq(plan.n_cases, 5);
  for (int32_t i = 0; i < plan.n_cases; ++i) {
    cr_expect_str_eq(plan.cases[i].record.label, labels[i]);
    cr_expect_eq(plan.cases[i].record.repeats, 2);
    cr_expect_eq(plan.cases[i].record.warmup, 0);
  }
  cr_expect_eq(plan.cases[0].kind, UP_KERNEL_DECODE);
  cr_expect_eq(plan.cases[4].kind, UP_KERNEL_SELECTION);
  cr_expect_str_eq(plan.cases[4].record.kernel, "selection");
  up_kernel_plan_free(&plan);
}

Test(kernel_cases, gpu_defaults_floors_and_targets) {
  const up_options opt = OPTIONS("--kernels");
  up_kernel_plan plan = build(&opt, "llama-3.1-8b", &h100_device);
  cr_expect_eq(plan.n_cases, 4 + 5 + 4 + 5 + 4 + 15 + 15,
               "GEMMs, attention 4K..128K, four decode batches, 9 selections, sparse at 5 lengths x 3 densities "
               "and x 3 estimators");
  cr_expect_eq(plan.flush_bytes, 256LL << 20);
  const up_kernel_record *qkv = find(&plan, "gemm qkv");
  cr_expect_str_eq(qkv->shape, "32768x6144x4096");
  cr_expect_float_eq(qkv->peak_tflops_per_s, 989.5, 1e-9);
  cr_expect_float_eq(qkv->peak_gb_per_s, 3350.0, 1e-9);
  cr_expect_float_eq(qkv->flop_floor_ms, 2.0 * 32768 * 6144 * 4096 / 989.5e12 * 1e3, 1e-9);
  cr_expect_float_eq(qkv->byte_floor_ms, 2.0 * (32768.0 * 4096 + 6144.0 * 4096 + 32768.0 * 6144) / 3350e9 * 1e3, 1e-9);
  cr_expect_float_eq(qkv->floor_ms, qkv->flop_floor_ms, 1e-12, "compute-bound");
  cr_expect_float_eq(qkv->target_tflops_per_s, 0.95 * 782.0, 1e-9);
  cr_expect_float_eq(qkv->reference_tflops_per_s, 782.0, 1e-9);
  cr_expect_str_eq(qkv->target, ">= 742.9 TFLOP/s");
  cr_expect(isnan(find(&plan, "gemm o")->target_tflops_per_s), "ALGORITHMS.md has no o reference");
  cr_expect_float_eq(find(&plan, "gemm down")->target_tflops_per_s, 0.95 * 736.0, 1e-9);

  const up_kernel_record *attn16 = find(&plan, "attention 1x16K");
  cr_expect_float_eq(attn16->target_tflops_per_s, 350.0, 1e-9);
  cr_expect_float_eq(attn16->goal_tflops_per_s, 600.0, 1e-9);
  cr_expect_float_eq(attn16->reference_tflops_per_s, 343.0, 1e-9);
  cr_expect(isnan(find(&plan, "attention 1x32K")->reference_tflops_per_s));

  const up_kernel_record *decode = find(&plan, "decode 16x32K");
  cr_expect_eq(decode->target_met, UP_VERDICT_NONE);
  cr_expect_float_eq(decode->floor_ms, decode->byte_floor_ms, 1e-12, "memory-bound");

  cr_expect_float_eq(find(&plan, "selection 1x32K")->target_ms, 0.5, 1e-12);
  cr_expect_float_eq(find(&plan, "selection 1x128K")->target_ms, 2.0, 1e-12);
  cr_expect_float_eq(find(&plan, "selection 16x8K")->target_ms, 1.0, 1e-12);
  cr_expect_float_eq(find(&plan, "selection 16x8K")->reference_ms, 50.1, 1e-12);
  const up_kernel_record *four = find(&plan, "selection 4x8K");
  cr_expect(isnan(four->target_ms), "no target at 4x8K");
  cr_expect_float_eq(four->reference_ms, 11.3, 1e-12);
  find(&plan, "selection 16x32K");
  up_kernel_plan_free(&plan);
}

Test(kernel_cases, targets_only_for_their_shapes) {
  /* Other GEMM rows, other heads (70B: 64 q heads), other selection knobs: no target. */
  up_options opt = OPTIONS("--kernels", "--kernel-tokens", "16k", "--ctx", "32k", "--uniprefill-block", "128");
  up_kernel_plan plan = build(&opt, "llama-3.1-8b", &h100_device);
  cr_expect(isnan(find(&plan, "gemm qkv")->target_tflops_per_s));
  cr_expect(isnan(find(&plan, "selection 1x32K")->target_ms));
  cr_expect_float_eq(find(&plan, "attention 1x32K")->target_tflops_per_s, 350.0, 1e-9);
  up_kernel_plan_free(&plan);
  opt = OPTIONS("--kernels", "--ctx", "32k", "--kernel-batches", "16x8k");
  plan = build(&opt, "llama-3.1-70b", &h100_device);
  for (int32_t i = 0; i < plan.n_cases; ++i) {
    const up_kernel_record *r = &plan.cases[i].record;
    cr_expect(isnan(r->target_tflops_per_s) && isnan(r->target_ms), "%s has a target", r->label);
    cr_expect(!isnan(r->floor_ms), "%s: the H100's peaks hold for any model", r->label);
  }
  up_kernel_plan_free(&plan);
}

/* A model with sliding layers: each full attention case is followed by the same prompt
 * over the model's window and, on a GPU, windows 512 / 1024 / 4096 shorter than it,
 * with FLOPs from the pairs the window leaves, the bytes of the full case, no target. */
Test(kernel_cases, sliding_window_cases_beside_full_attention) {
  up_model_config sliding = *up_model_preset_find("llama-3.1-8b");
  sliding.sliding_window = 1024;
  up_options opt = OPTIONS("--kernels", "--kernel-cases", "attention", "--ctx", "4k,32k");
  up_kernel_plan plan;
  char err[512] = "";
  cr_assert(up_kernel_plan_build(&plan, &opt, &sliding, &h100_device, err, sizeof err), "%s", err);
  const char *labels[] = {"attention 1x4K", "attention 1x4K w512", "attention 1x4K w1024", "attention 1x32K",
                          "attention 1x32K w512", "attention 1x32K w1024", "attention 1x32K w4096"};
  cr_assert_eq(plan.n_cases, 7);
  for (int32_t i = 0; i < plan.n_cases; ++i) cr_expect_str_eq(plan.cases[i].record.label, labels[i]);
  const up_kernel_record *full = find(&plan, "attention 1x32K"), *w = find(&plan, "attention 1x32K w4096");
  cr_expect_str_eq(w->shape, "1x32768 h32/8 d128 w4096");
  cr_expect_float_eq(w->flop, 4.0 * (32768.0 * 4096 - 4096.0 * 4096 / 2) * 128 * 32, 1e-3);
  cr_expect_float_eq(w->bytes, full->bytes, 1e-6, "every entry is read once either way");
  cr_expect_float_eq(w->flop_floor_ms / full->flop_floor_ms, (32768.0 * 4096 - 4096.0 * 4096 / 2) / (32768.0 * 32768 / 2),
                     1e-9, "the window's floor is its share of the pairs");
  cr_expect(isnan(w->target_tflops_per_s) && w->target[0] == '\0', "no full-attention target on a window");
  cr_expect_float_eq(full->target_tflops_per_s, 350.0, 1e-9);
  cr_expect_eq(plan.cases[6].op.batch.window, 4096);
  cr_expect_eq(plan.cases[3].op.batch.window, 0);
  up_kernel_plan_free(&plan);
  /* On the CPU only the model's own window, and only below the prompt's length. */
  sliding = *up_model_preset_find("tiny-llama");
  sliding.sliding_window = 512;
  opt = OPTIONS("--kernels", "--kernel-cases", "attention");
  cr_assert(up_kernel_plan_build(&plan, &opt, &sliding, &cpu_device, err, sizeof err), "%s", err);
  const char *cpu_labels[] = {"attention 1x512", "attention 1x1K", "attention 1x1K w512"};
  cr_assert_eq(plan.n_cases, 3);
  for (int32_t i = 0; i < plan.n_cases; ++i) cr_expect_str_eq(plan.cases[i].record.label, cpu_labels[i]);
  cr_expect_float_eq(plan.cases[2].record.flop, 4.0 * (1024.0 * 512 - 512.0 * 512 / 2) * 64 * 4, 1e-3);
  up_kernel_plan_free(&plan);
}

Test(kernel_cases, judge_met_and_missed) {
  up_kernel_record r = {.n_heads = 32, .n_kv_heads = 8, .head_dim = 128, .batch = 1, .seq_len = 16384};
  up_kernel_targets_attach(&r, UP_KERNEL_ATTENTION, &(up_select_params){0.99f, 0.0f, 64, 128, 128}, true);
  r.median_ms = 5.0;
  r.tflops_per_s = 400.0;
  up_kernel_targets_judge(&r);
  cr_expect_eq(r.target_met, UP_VERDICT_MET);
  cr_expect_eq(r.goal_met, UP_VERDICT_MISSED);
  r.tflops_per_s = 254.0;
  up_kernel_targets_judge(&r);
  cr_expect_eq(r.target_met, UP_VERDICT_MISSED);

  up_kernel_record s = {.n_heads = 32, .n_kv_heads = 8, .head_dim = 128, .batch = 16, .seq_len = 8192};
  up_kernel_targets_attach(&s, UP_KERNEL_SELECTION, &(up_select_params){0.99f, 0.0f, 64, 128, 128}, true);
  s.median_ms = 1.183;
  up_kernel_targets_judge(&s);
  cr_expect_eq(s.target_met, UP_VERDICT_MISSED, "1.183 ms against 1 ms");
  cr_expect_eq(s.goal_met, UP_VERDICT_NONE);
  s.median_ms = 1.0;
  up_kernel_targets_judge(&s);
  cr_expect_eq(s.target_met, UP_VERDICT_MET, "the bound is inclusive");

  up_kernel_targets_attach(&s, UP_KERNEL_SELECTION, &(up_select_params){0.99f, 0.0f, 64, 128, 128}, false);
  up_kernel_targets_judge(&s);
  cr_expect_eq(s.target_met, UP_VERDICT_NONE, "GPU targets do not apply to the CPU");
}

Test(kernel_cases, device_peaks_by_name) {
  cr_expect_str_eq(up_device_peaks_find(H100_NAME).name, "H100 SXM");
  cr_expect_str_eq(up_device_peaks_find("NVIDIA H100 PCIe (sm_90; 79.1 GiB)").name, "H100 PCIe");
  cr_expect_float_eq(up_device_peaks_find("NVIDIA H100 PCIe").gb_per_s, 2000.0, 1e-9);
  cr_expect_str_eq(up_device_peaks_find("NVIDIA H100 NVL").name, "H100 NVL");
  cr_expect_str_eq(up_device_peaks_find("NVIDIA H200 (sm_90; 139.8 GiB)").name, "H200 SXM");
  cr_expect_float_eq(up_device_peaks_find("NVIDIA H200").gb_per_s, 4800.0, 1e-9);
  const char *unknown[] = {"NVIDIA A10G", "Intel(R) Xeon(R) CPU (16 cores)", "cpu", "", NULL};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; ++i) {
    const up_device_peaks p = up_device_peaks_find(unknown[i]);
    cr_expect_str_eq(p.name, "unknown");
    cr_expect(isnan(p.bf16_tflops) && isnan(p.gb_per_s));
  }
}

Test(kernel_cases, qwen3_next_gemms_per_expert_delta_rule_and_experts) {
  const up_options opt = OPTIONS("--kernels", "--kernel-cases", "gemm,deltanet,moe", "--ctx", "8k,32k");
  up_kernel_plan plan = build(&opt, "qwen3-next-80b-a3b", &h100_device);
  /* Layer 0 (DeltaNet, MoE) first, then what layer 3's gated attention adds; no conv GEMM. */
  const char *labels[] = {"gemm qkvz", "gemm ba", "gemm gdn_out", "gemm router", "gemm experts_gate_up",
                          "gemm experts_down", "gemm shared_gate_up", "gemm shared_down", "gemm qkv", "gemm gate",
                          "gemm o", "deltanet 1x8K", "deltanet 1x32K", "moe 32K top10/512",
                          "moe 32K top10/512 grouped", "moe 32K dense 5120"};
  cr_assert_eq(plan.n_cases, 16);
  for (int32_t i = 0; i < plan.n_cases; ++i) cr_expect_str_eq(plan.cases[i].record.label, labels[i]);
  /* One expert's GEMM over its share of 32K tokens x top 10 of 512 experts: 640 rows. */
  const up_kernel_record *gate_up = find(&plan, "gemm experts_gate_up"), *down = find(&plan, "gemm experts_down");
  cr_expect_eq(gate_up->m, 640);
  cr_expect_eq(gate_up->n, 2 * 512);
  cr_expect_eq(gate_up->k, 2048);
  cr_expect_eq(down->m, 640);
  cr_expect_eq(down->n, 2048);
  cr_expect_eq(down->k, 512);
  cr_expect_eq(find(&plan, "gemm qkvz")->n, 2 * 2048 + 2 * 4096);
  cr_expect_eq(find(&plan, "gemm qkv")->m, 32768);
  /* 32 value heads, 16 key heads of 128, bf16 */
  const up_kernel_record *d = find(&plan, "deltanet 1x32K");
  cr_expect_str_eq(d->kernel, "deltanet");
  cr_expect_str_eq(d->shape, "1x32768 h32/16 d128");
  cr_expect_eq(d->tokens, 32768);
  cr_expect_eq(d->m, 0);
  cr_expect_float_eq(d->flop, 32768.0 * 32 * (6.0 * 128 * 128 + 5.0 * 64 * 128), 1e-3);
  cr_expect_float_eq(d->bytes, 32768.0 * (2.0 * 2 * (16 + 32) * 128 + 8.0 * 32) + 8.0 * 32 * 128 * 128, 1e-3);
  cr_expect(isfinite(d->floor_ms) && d->floor_ms == fmax(d->flop_floor_ms, d->byte_floor_ms), "a floor at the H100's peaks");
  cr_expect(d->byte_floor_ms > d->flop_floor_ms, "memory-bound at these shapes (docs/kernels/gated_deltanet.md)");
  cr_expect_eq(d->target_met, UP_VERDICT_NONE, "no target of issue 4");
  cr_expect_eq(plan.cases[12].op.sample, 512, "its check is a prefix");
  cr_expect_eq(plan.cases[12].op.batch.rows_each, 32768);
  cr_expect_gt(up_kernel_case_bytes(&plan, &plan.cases[12]), (int64_t)32768 * 2 * 2 * 48 * 128);
  /* The routed experts and the dense MLP of the same FLOPs (top 10 x 512 = 5120). */
  const up_kernel_record *moe = find(&plan, "moe 32K top10/512"), *dense = find(&plan, "moe 32K dense 5120");
  cr_expect_str_eq(moe->kernel, "moe");
  cr_expect_str_eq(moe->shape, "32768x10 of 512 i512 h2048");
  cr_expect_eq(moe->m, 327680);
  cr_expect_eq(moe->n, 512);
  cr_expect_eq(moe->k, 2048);
  cr_expect_eq(moe->n_heads, 512);
  cr_expect_eq(moe->n_kv_heads, 10);
  cr_expect_float_eq(moe->flop, 6.0 * 327680 * 512 * 2048, 1e-3);
  cr_expect_float_eq(moe->bytes, 2.0 * (3.0 * 512 * 512 * 2048 + 2.0 * 327680 * 2048), 1e-3);
  cr_expect(moe->floor_ms == moe->flop_floor_ms && dense->floor_ms == dense->flop_floor_ms,
            "both compute-bound at 32K: one floor for both");
  cr_expect_eq(dense->m, 32768);
  cr_expect_eq(dense->n, 5120);
  cr_expect_float_eq(dense->flop, moe->flop, 1e-3, "the same active FLOPs");
  cr_expect_lt(dense->bytes, moe->bytes, "one expert's weights and a tenth of the rows");
  cr_expect_eq(plan.cases[13].op.moe.n_experts, 512);
  cr_expect(plan.cases[13].op.driver == &up_op_moe_experts && plan.cases[14].op.driver == &up_op_moe_experts_grouped,
            "the loop as the forward runs it, then the grouped call");
  const up_kernel_record *grouped = find(&plan, "moe 32K top10/512 grouped");
  cr_expect(grouped->flop == moe->flop && grouped->bytes == moe->bytes, "the same work either way");
  cr_expect_eq(plan.cases[15].op.moe.top_k, 1);
  cr_expect_eq(plan.cases[13].op.sample, 8);
  up_kernel_plan_free(&plan);
}

Test(kernel_cases, errors_name_the_flag) {
  struct {
    const char *args[8];
    const char *model;
    const char *want1, *want2;
  } cases[] = {
      {{"--kernels", "--ctx", "256k"}, "llama-3.1-8b", "--ctx: 262144 tokens", "context of 131072"},
      {{"--kernels", "--ctx", "256"}, "tiny-llama", "--ctx", "sink + last_q = 256"},
      {{"--kernels", "--kernel-batches", "2x200"}, "tiny-llama", "--kernel-batches", "selection"},
      {{"--kernels", "--kernel-batches", "2x200k", "--kernel-cases", "decode"}, "tiny-llama", "--kernel-batches",
       "longer than model tiny-llama's context"},
      {{"--kernels", "--kernel-cases", "deltanet"}, "tiny-llama", "--kernel-cases deltanet", "no Gated DeltaNet"},
      {{"--kernels", "--kernel-cases", "moe"}, "tiny-llama", "--kernel-cases moe", "no MoE layers"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    const up_options opt = parse(cases[i].args);
    up_kernel_plan plan;
    char err[512] = "";
    const bool ok = up_kernel_plan_build(&plan, &opt, up_model_preset_find(cases[i].model), &cpu_device, err, sizeof err);
    cr_expect(!ok, "case %zu built", i);
    cr_expect_not_null(strstr(err, cases[i].want1), "'%s' lacks '%s'", err, cases[i].want1);
    cr_expect_not_null(strstr(err, cases[i].want2), "'%s' lacks '%s'", err, cases[i].want2);
  }
  /* Short prompts are fine for attention and decode alone; a batch given on the command
   * line is a prefill attention case too, with its prompts' work. */
  const up_options opt = OPTIONS("--kernels", "--ctx", "64", "--kernel-batches", "2x64", "--kernel-cases",
                                 "attention,decode");
  up_kernel_plan plan = build(&opt, "tiny-llama", &cpu_device);
  cr_assert_eq(plan.n_cases, 3);
  const up_kernel_record *one = find(&plan, "attention 1x64"), *two = find(&plan, "attention 2x64");
  cr_assert(one && two && find(&plan, "decode 2x64"));
  cr_expect_eq(two->tokens, 128);
  cr_expect_float_eq(two->flop, 2.0 * one->flop, 1e-9);
  up_kernel_plan_free(&plan);
}
