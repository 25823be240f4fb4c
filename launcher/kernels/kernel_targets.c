/* kernel_targets.c — the targets and references of kernel_targets.h, as tables keyed
 * by shape. */
#include "launcher/kernels/kernel_targets.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>

/* The GEMM references: cuBLAS bf16 at the Llama-3.1-8B projections for 32K tokens. */
typedef struct up_gemm_reference {
  int64_t m, n, k;
  double tflops;
} up_gemm_reference;

static const up_gemm_reference up_gemm_references[] = {
    {32768, 6144, 4096, 782.0},  /* qkv */
    {32768, 28672, 4096, 770.0}, /* gate_up */
    {32768, 4096, 14336, 736.0}, /* down */
};

#define UP_GEMM_TARGET_SHARE 0.95

/* FlashAttention-2, causal, batch 1. */
typedef struct up_attention_reference {
  int32_t seq_len;
  double tflops;
} up_attention_reference;

static const up_attention_reference up_attention_references[] = {{4096, 238.0}, {16384, 343.0}, {65536, 346.0}};

#define UP_ATTENTION_TARGET_TFLOPS 350.0
#define UP_ATTENTION_GOAL_TFLOPS 600.0

/* The selection: the targets (0: none) and the reference Triton operator. */
typedef struct up_selection_reference {
  int32_t batch, seq_len;
  double target_ms;
  double reference_ms;
} up_selection_reference;

static const up_selection_reference up_selection_references[] = {
    {1, 8192, 0.0, 3.96},  {1, 32768, 0.5, 26.9}, {1, 131072, 2.0, 119.0},
    {4, 8192, 0.0, 11.3},  {16, 8192, 1.0, 50.1}, {4, 32768, 0.0, 60.9},
};

static bool up_llama8b_heads(const up_kernel_record *r) {
  return r->n_heads == 32 && r->n_kv_heads == 8 && r->head_dim == 128;
}

static void up_attach_gemm(up_kernel_record *r) {
  for (size_t i = 0; i < sizeof up_gemm_references / sizeof up_gemm_references[0]; ++i) {
    const up_gemm_reference *g = &up_gemm_references[i];
    if (g->m != r->m || g->n != r->n || g->k != r->k) continue;
    r->reference_tflops_per_s = g->tflops;
    r->target_tflops_per_s = UP_GEMM_TARGET_SHARE * g->tflops;
    snprintf(r->target, sizeof r->target, ">= %.1f TFLOP/s", r->target_tflops_per_s);
    snprintf(r->basis, sizeof r->basis, "issue 4: 95%% of cuBLAS %.0f TFLOP/s (H100, ALGORITHMS.md)", g->tflops);
  }
}

static void up_attach_attention(up_kernel_record *r) {
  if (r->batch != 1 || !up_llama8b_heads(r)) return;
  r->target_tflops_per_s = UP_ATTENTION_TARGET_TFLOPS;
  r->goal_tflops_per_s = UP_ATTENTION_GOAL_TFLOPS;
  snprintf(r->target, sizeof r->target, ">= %.0f TFLOP/s (goal %.0f)", UP_ATTENTION_TARGET_TFLOPS,
           UP_ATTENTION_GOAL_TFLOPS);
  snprintf(r->basis, sizeof r->basis, "issue 4: %.0f TFLOP/s required, %.0f the goal", UP_ATTENTION_TARGET_TFLOPS,
           UP_ATTENTION_GOAL_TFLOPS);
  for (size_t i = 0; i < sizeof up_attention_references / sizeof up_attention_references[0]; ++i)
    if (up_attention_references[i].seq_len == r->seq_len) {
      r->reference_tflops_per_s = up_attention_references[i].tflops;
      snprintf(r->basis, sizeof r->basis,
               "issue 4: %.0f TFLOP/s required, %.0f the goal; reference FlashAttention-2 (H100, ALGORITHMS.md)",
               UP_ATTENTION_TARGET_TFLOPS, UP_ATTENTION_GOAL_TFLOPS);
    }
}

static void up_attach_selection(up_kernel_record *r, const up_select_params *select) {
  if (!up_llama8b_heads(r) || select->block != 64 || select->sink != 128 || select->last_q != 128) return;
  for (size_t i = 0; i < sizeof up_selection_references / sizeof up_selection_references[0]; ++i) {
    const up_selection_reference *s = &up_selection_references[i];
    if (s->batch != r->batch || s->seq_len != r->seq_len) continue;
    r->reference_ms = s->reference_ms;
    if (s->target_ms > 0.0) {
      r->target_ms = s->target_ms;
      snprintf(r->target, sizeof r->target, "<= %g ms", s->target_ms);
      snprintf(r->basis, sizeof r->basis, "issue 4; reference: the Triton operator, %.3g ms (H100, ALGORITHMS.md)",
               s->reference_ms);
    } else {
      snprintf(r->basis, sizeof r->basis, "reference: the Triton operator, %.3g ms (H100, ALGORITHMS.md)",
               s->reference_ms);
    }
  }
}

void up_kernel_targets_attach(up_kernel_record *r, up_kernel_kind kind, const up_select_params *select,
                              bool on_gpu) {
  r->target[0] = '\0';
  r->basis[0] = '\0';
  r->target_tflops_per_s = r->target_ms = r->goal_tflops_per_s = NAN;
  r->reference_tflops_per_s = r->reference_ms = NAN;
  r->target_met = r->goal_met = UP_VERDICT_NONE;
  if (!on_gpu) return;
  switch (kind) {
    case UP_KERNEL_GEMM: up_attach_gemm(r); return;
    case UP_KERNEL_ATTENTION: up_attach_attention(r); return;
    case UP_KERNEL_SELECTION: up_attach_selection(r, select); return;
    case UP_KERNEL_DECODE:
    case UP_KERNEL_SPARSE: /* issue 13's check is against the dense kernel: the two lines side by side */
    case UP_KERNEL_DELTANET:
    case UP_KERNEL_MOE:
    case UP_KERNEL_KIND_COUNT: return;
  }
}

/* Met, missed, or none when there is no target (or nothing was measured). */
static int32_t up_verdict(double measured, double bound, bool at_least) {
  if (isnan(bound) || isnan(measured)) return UP_VERDICT_NONE;
  return (at_least ? measured >= bound : measured <= bound) ? UP_VERDICT_MET : UP_VERDICT_MISSED;
}

void up_kernel_targets_judge(up_kernel_record *r) {
  r->target_met = !isnan(r->target_ms) ? up_verdict(r->median_ms, r->target_ms, false)
                                       : up_verdict(r->tflops_per_s, r->target_tflops_per_s, true);
  r->goal_met = up_verdict(r->tflops_per_s, r->goal_tflops_per_s, true);
}
