/* kernel_cases.h — the case list of --kernels: which calls of which op, at which
 * shapes, are timed, and the work each does. From the model config: the four GEMMs of
 * a layer (qkv, o, gate_up, down) at --kernel-tokens rows; causal prefill attention of
 * one prompt at each --ctx; decode attention (one new row per sequence over a cache)
 * and the UniPrefill selection at each --kernel-batches NxL, the selection also at 1xL
 * for each --ctx. Defaults follow the backend (large on a GPU, small on the CPU).
 *
 * Work counted per call (element size e of the backend's activations):
 *   gemm       flop 2 m n k; bytes e (m k + n k + m n)
 *   attention  flop 2 L^2 d H per sequence (4 L^2/2 d per head, the FlashAttention
 *              convention); bytes e (2 tokens H d + 2 L kv_dim) per sequence (Q, O, K, V once);
 *              over a sliding window W < L, 4 (L W - W^2/2) d H (the same convention on the
 *              (row, entry) pairs the window leaves), bytes unchanged
 * A model with sliding layers (cfg->sliding_window > 0) also gets, after each full
 * attention case, the same prompt over its window and, on a GPU, over windows 512, 1024
 * and 4096 (those shorter than the prompt): "attention 1x32K w1024". They carry no
 * target (issue 4's are for full causal attention).
 *   decode     flop 4 L d H per sequence; bytes e (2 H d + 2 L kv_dim) per sequence
 *   selection  flop 2 d H last_q per token (one score pass); bytes 2 e kv_dim per token (K read by each pass where two run)
 *   sparse     flop 4 d H times the (row, key) pairs the drawn pattern is expected to cover
 *              (up_kernel_sparse_pairs: 128 x 128 blocks, key block 0 and the diagonal always,
 *              each other causal block with probability p); bytes those of attention
 * The sparse cases time the sparse baselines' attention kernel over one prompt at each
 * --ctx at block densities p = 1, 0.3 and 0.1 (labels "sparse 1x32K p0.3"; on a GPU only
 * at head_dim 64, 128 or 256, the CUDA kernel's), the pattern drawn as the op case does
 * (kernels/op_cases/case_sparse_attention.c), the first and last query blocks checked.
 * Beside them, each method's estimation stage alone over the same prompt (labels
 * "estimate minference 1x32K", kernel "sparse_estimate"; the estimators' own kernels at
 * the authors' Llama-3.1-8B defaults: MInference v 512 s 2048, FlexPrefill gamma 0.95
 * tau 0.1 min_budget 1024, XAttention stride 8 threshold 0.9; peaked queries as the op
 * cases draw them), so a run shows what choosing costs beside the attention it saves.
 * Work is the method's estimate as ../shared/BASELINES.md 4 counts it (the speed
 * model's estimate_flops, engine/methods/):
 *   minference   flop 2 lq n d H (lq = min(64, n)); bytes e (n kv_dim + lq H d)
 *   flexprefill  flop 2 lq n d H (lq = min(128, n)); bytes e n (H d + kv_dim) (every
 *                query and key is pooled)
 *   xattention   flop n^2 d H / S; bytes e n (H d + kv_dim)
 * so the floor is that of a tensor-core GEMM of the scores at the bf16 peak. Their check
 * is the whole pattern against the CPU's (at most 2 % of list rows differing); where the
 * CPU reference would exceed UP_ESTIMATE_CHECK_WORK multiply-adds (XAttention from
 * 32K) the case is timed unchecked (error NaN, said on stderr).
 *   deltanet   (models with Gated DeltaNet layers: the gated_deltanet op over one prompt at each --ctx, from
 *              zero states) flop per token Hv (6 d^2 + 5 C d), C = 64 (engine/model/layer_cost.h); bytes
 *              per token e (2 Hk + 2 Hv) d (q, k, v read, output written) + 8 Hv (fp32 g, beta), plus the
 *              fp32 state read and written once (8 Hv d^2); heads are the value heads Hv, kv heads the
 *              key heads Hk. Its check is the prompt's first 512 rows (a recurrence: the CPU runs them all)
 *   moe        (models with MoE layers, at --kernel-tokens T) the routed experts' GEMMs and SwiGLU as the
 *              MoE block runs them (kernels/moe_expert_gemms.h: one matmul per expert), the same with one
 *              grouped_matmul per projection ("... grouped"), rows = T x top-k spread over E experts of
 *              intermediate I at random, and the dense MLP of the same FLOPs (one expert of top-k x I, all
 *              T rows): flop 6 rows I hidden; bytes e (3 E I hidden + 2 rows hidden) (weights, inputs and
 *              outputs once). Checked on the first 128 rows of 8 experts
 * Floors are these at the device's peaks (device_peaks.h). Each case also carries the
 * op case (kernels/op_cases) that makes its inputs, runs it, and checks a sample of its
 * outputs against the CPU reference: 16 GEMM rows, 8 attention rows, 4 decode rows
 * (each its own sequence), one selection sequence; the selection may differ from the
 * CPU by one block swapped at the boundary (a near tie of bf16 and fp32 sums) per
 * sequence, 2 block / L of its rows. Only descriptions here: kernel_bench.c runs and
 * times them. */
#ifndef UP_KERNEL_CASES_H
#define UP_KERNEL_CASES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/model/layer_cost.h"
#include "engine/model/model_config.h"
#include "kernels/op_cases/op_case.h"
#include "kernels/ops.h"
#include "kernels/uniprefill_ops.h"
#include "launcher/cli.h"
#include "launcher/kernels/kernel_record.h"

/* The device the cases are for. */
typedef struct up_kernel_device {
  bool on_gpu;      /* GPU defaults, targets and the L2 flush */
  up_dtype dtype;   /* activation dtype: the element size of every buffer */
  const char *name; /* the reported device name, for its peaks */
} up_kernel_device;

typedef struct up_kernel_case {
  up_kernel_kind kind;
  up_kernel_record record; /* described: shape, work, floors, targets; times NaN until measured */
  up_op_case op;           /* the op call it times, its inputs and the sample checked against the CPU */
  bool unchecked;          /* timed without the CPU check (its reference would take minutes): error NaN */
} up_kernel_case;

/* The GEMMs of cfg's layers (qkv, o, gate_up, down for Llama) into gemms, each name once
 * in the order the layers first run it (a hybrid's layers differ: Qwen3-Next's first is
 * a DeltaNet layer, its fourth has the attention's); returns how many. The one source of
 * the GEMM shapes for --kernels and the op-case list, as the architecture's table gives
 * them (engine/model/layer_cost). An expert stack's GEMM is one expert's, and --kernels
 * times it over that expert's average share of the rows (--kernel-tokens x top-k /
 * experts, rounded up): "gemm experts_gate_up" at 640 x 1024 x 2048 for Qwen3-Next at
 * 32K tokens; the grouped call runs experts of them. */
int32_t up_kernel_layer_gemms(const up_model_config *cfg, up_gemm_shape gemms[UP_MAX_LAYER_TENSORS]);

typedef struct up_kernel_plan {
  int32_t n_cases;
  up_kernel_case *cases;   /* grouped by kind, in up_kernel_kind order */
  up_attn_shape shape;     /* the model's attention heads */
  int32_t hidden, intermediate;
  up_select_params select; /* the --uniprefill-* knobs */
  int32_t block_tokens;    /* KV pool block size (--kv-block) */
  int32_t warmup, repeats;
  int64_t flush_bytes;     /* written before each timed call on a GPU: more than any L2 */
  size_t elem_size;
} up_kernel_plan;

/* The cases for this model, options and device; false with a message (naming the flag)
 * when the options ask for something the model cannot do. */
bool up_kernel_plan_build(up_kernel_plan *plan, const up_options *opt, const up_model_config *cfg,
                          const up_kernel_device *dev, char *err, size_t err_size);

void up_kernel_plan_free(up_kernel_plan *plan);

/* (row, entry) pairs of a causal prompt of seq_len rows, under a sliding window of
 * `window` entries when 0 < window < seq_len, in the FlashAttention convention (L^2/2
 * for full attention): the flop count of an attention case is 4 d H times this. */
double up_kernel_attention_pairs(int32_t seq_len, int32_t window);

/* (row, key) pairs a sparse case's pattern covers on average: per query block of `block`
 * rows its diagonal block causally, key block 0 and each other earlier block with
 * probability `density` (density 1: every causal pair, L (L + 1) / 2). */
double up_kernel_sparse_pairs(int32_t seq_len, int32_t block, double density);

/* Backend bytes one case needs: its inputs, outputs, KV pool and an allowance for the
 * op's workspace (the L2 flush buffer not included). */
int64_t up_kernel_case_bytes(const up_kernel_plan *plan, const up_kernel_case *c);

/* KV pool blocks of a case: every sequence's cached entries in whole blocks. */
int32_t up_kernel_case_pool_blocks(const up_kernel_plan *plan, const up_kernel_case *c);

#endif
