/* kernel_cases.c — builds the --kernels case list (see kernel_cases.h): defaults per
 * backend, the checks against the model, each case's shape, work, floors and targets. */
#include "launcher/kernels/kernel_cases.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "engine/model/layer_cost.h"
#include "engine/methods/uniprefill.h"
#include "kernels/op_cases/case_qwen.h"
#include "launcher/kernels/device_peaks.h"
#include "launcher/kernels/kernel_targets.h"

/* GPU defaults: the shapes of ../shared/ALGORITHMS.md's reference measurements. */
static const int32_t up_gpu_ctx[] = {4096, 16384, 32768, 65536, 131072};
static const int32_t up_gpu_batch_seqs[] = {4, 16, 4, 16};
static const int32_t up_gpu_batch_len[] = {8192, 8192, 32768, 32768};
#define UP_GPU_GEMM_TOKENS 32768
/* More than any GPU's L2 (50 MB on an H100), so every timed call starts from HBM. */
#define UP_GPU_FLUSH_BYTES (256LL << 20)

/* Sliding windows timed beside full attention at each --ctx for a model with sliding
 * layers (besides the model's own window), on a GPU: Gemma 3's 512 and 1024, and 4096. */
static const int32_t up_gpu_windows[] = {512, 1024, 4096};

/* CPU defaults: enough to exercise every op of the fp32 reference in seconds. */
static const int32_t up_cpu_ctx[] = {512, 1024};
static const int32_t up_cpu_batch_seqs[] = {4};
static const int32_t up_cpu_batch_len[] = {512};
#define UP_CPU_GEMM_TOKENS 512

/* Rows of each case checked against the CPU before it is timed (kernel_cases.h). */
#define UP_GEMM_SAMPLE_ROWS 16
#define UP_ATTENTION_SAMPLE_ROWS 8
#define UP_DECODE_SAMPLE_ROWS 4
#define UP_SELECTION_SAMPLE_SEQS 1
/* The delta rule's check: the first rows of the prompt (the CPU reference runs the
 * recurrence, about 5 ms a row at Qwen3-Next's 32 heads of 128 on one core). */
#define UP_DELTANET_SAMPLE_ROWS 512
#define UP_MOE_SAMPLE_EXPERTS 8
#define UP_VALUES_TOLERANCE 2e-2
/* Queries at twice the keys' range: scores of a few units, a softmax far from uniform. */
#define UP_QUERY_BOUND 2.0f
#define UP_VALUE_BOUND 1.0f

/* Sparse cases: the block methods' 128 x 128 blocks at these densities, and the query
 * blocks checked (the first and the last, the longest list). */
static const double up_sparse_densities[] = {1.0, 0.3, 0.1};
#define UP_SPARSE_BLOCK 128
#define UP_SPARSE_SAMPLE_BLOCKS 2

/* Estimate cases: the CPU check's most multiply-adds (a float64 reference; XAttention's
 * 2.7e11 at 32K would take minutes), and the methods' defaults timed. */
#define UP_ESTIMATE_CHECK_WORK 1e11
#define UP_MINFERENCE_LAST_Q 64
#define UP_FLEXPREFILL_BLOCK 128
#define UP_XATTENTION_STRIDE 8

/* Allowance for the selection op's workspace per token (token scores, per-row counts,
 * the first pass's partial sums: about 140 bytes on the GPU). */
#define UP_SELECT_WORKSPACE_PER_TOKEN 256

#define UP_N(a) ((int32_t)(sizeof(a) / sizeof((a)[0])))

/* "32K" for whole multiples of 1024, else the number. */
static void up_size_text(char *buf, size_t size, int64_t n) {
  if (n >= 1024 && n % 1024 == 0)
    snprintf(buf, size, "%lldK", (long long)(n / 1024));
  else
    snprintf(buf, size, "%lld", (long long)n);
}

static up_kernel_case *up_plan_add(up_kernel_plan *plan, int32_t *capacity, up_kernel_kind kind) {
  if (plan->n_cases == *capacity) {
    *capacity = *capacity ? 2 * *capacity : 16;
    up_kernel_case *grown = realloc(plan->cases, sizeof *grown * (size_t)*capacity);
    if (!grown) UP_FATAL("out of host memory for %d kernel cases", (int)*capacity);
    plan->cases = grown;
  }
  up_kernel_case *c = &plan->cases[plan->n_cases++];
  memset(c, 0, sizeof *c);
  c->kind = kind;
  snprintf(c->record.kernel, sizeof c->record.kernel, "%s", up_kernel_kind_names[kind]);
  c->record.batch = 1;
  c->record.warmup = plan->warmup;
  c->record.repeats = plan->repeats;
  c->record.flush_bytes = plan->flush_bytes;
  c->record.median_ms = c->record.min_ms = c->record.max_ms = NAN;
  c->record.tflops_per_s = c->record.gb_per_s = c->record.floor_fraction = NAN;
  c->record.kept_fraction = NAN;
  c->record.error = c->record.error_limit = NAN;
  return c;
}

static void up_add_gemm(up_kernel_plan *plan, int32_t *capacity, const char *name, int64_t m, int64_t n, int64_t k) {
  up_kernel_case *c = up_plan_add(plan, capacity, UP_KERNEL_GEMM);
  c->op = (up_op_case){.driver = &up_op_matmul, .tolerance = UP_VALUES_TOLERANCE, .sample = UP_GEMM_SAMPLE_ROWS,
                       .gemm = {.m = m, .n = n, .k = k}};
  up_kernel_record *r = &c->record;
  snprintf(r->label, sizeof r->label, "gemm %s", name);
  snprintf(r->shape, sizeof r->shape, "%lldx%lldx%lld", (long long)m, (long long)n, (long long)k);
  r->m = m;
  r->n = n;
  r->k = k;
  r->tokens = m;
  r->flop = 2.0 * (double)m * (double)n * (double)k;
  r->bytes = (double)plan->elem_size * ((double)m * (double)k + (double)n * (double)k + (double)m * (double)n);
}

double up_kernel_attention_pairs(int32_t seq_len, int32_t window) {
  const double L = seq_len, W = window;
  if (window <= 0 || window >= seq_len) return L * L / 2.0;
  return L * W - W * W / 2.0;
}

double up_kernel_sparse_pairs(int32_t seq_len, int32_t block, double density) {
  double pairs = 0.0;
  for (int64_t i = 0; i * block < seq_len; ++i) {
    const double rows = (double)(seq_len - i * block < block ? seq_len - i * block : block);
    const double earlier = i == 0 ? 0.0 : 1.0 + density * (double)(i - 1); /* key block 0, then the drawn ones */
    pairs += rows * (rows + 1.0) / 2.0 + rows * block * earlier;
  }
  return pairs;
}

/* The op call of an attention, decode or selection case: batch sequences, each with
 * seq_len cached entries (prefill and selection: all of them this step's rows; decode:
 * one new row), over pages handed out in shuffled order. */
static void up_describe_batch(const up_kernel_plan *plan, up_kernel_kind kind, int32_t batch, int32_t seq_len,
                              up_op_case *op) {
  const bool decode = kind == UP_KERNEL_DECODE, selection = kind == UP_KERNEL_SELECTION;
  *op = (up_op_case){.driver = selection ? &up_op_selection : &up_op_attention,
                     .tolerance = selection ? 2.0 * plan->select.block / seq_len : UP_VALUES_TOLERANCE,
                     .sample = selection ? UP_SELECTION_SAMPLE_SEQS
                               : decode  ? UP_DECODE_SAMPLE_ROWS
                                         : UP_ATTENTION_SAMPLE_ROWS};
  op->batch = (up_op_batch_dims){.shape = plan->shape, .block_tokens = plan->block_tokens, .n_seqs = batch,
                                 .rows_each = decode ? 1 : seq_len, .prior_each = decode ? seq_len - 1 : 0,
                                 .query_bound = UP_QUERY_BOUND, .qkv_bound = UP_QUERY_BOUND,
                                 .pool_bound = UP_VALUE_BOUND, .select = plan->select};
}

/* A 1xL --kernel-batches item is the --ctx case of length L when --ctx lists L. */
static bool up_batch_repeats_ctx(int32_t seqs, int32_t len, const int32_t *ctx, int32_t n_ctx) {
  for (int32_t j = 0; j < n_ctx; ++j)
    if (seqs == 1 && len == ctx[j]) return true;
  return false;
}

/* Attention, decode or selection over batch sequences of seq_len cached entries each;
 * window > 0 (attention only): a sliding window of that many entries, labelled "w<W>". */
static void up_add_attention_kind(up_kernel_plan *plan, int32_t *capacity, up_kernel_kind kind, int32_t batch,
                                  int32_t seq_len, int32_t window) {
  up_kernel_case *c = up_plan_add(plan, capacity, kind);
  up_kernel_record *r = &c->record;
  const up_attn_shape *s = &plan->shape;
  up_describe_batch(plan, kind, batch, seq_len, &c->op);
  c->op.batch.window = window;
  char len_text[16], window_text[24] = "";
  up_size_text(len_text, sizeof len_text, seq_len);
  if (window > 0) snprintf(window_text, sizeof window_text, " w%d", (int)window);
  snprintf(r->label, sizeof r->label, "%s %dx%s%s", up_kernel_kind_names[kind], (int)batch, len_text, window_text);
  snprintf(r->shape, sizeof r->shape, "%dx%d h%d/%d d%d%s", (int)batch, (int)seq_len, (int)s->n_heads,
           (int)s->n_kv_heads, (int)s->head_dim, window_text);
  r->batch = batch;
  r->seq_len = seq_len;
  r->n_heads = s->n_heads;
  r->n_kv_heads = s->n_kv_heads;
  r->head_dim = s->head_dim;
  const double e = (double)plan->elem_size, L = seq_len, d = s->head_dim, H = s->n_heads;
  const double q_dim = H * d, kv_dim = (double)s->n_kv_heads * d;
  switch (kind) {
    case UP_KERNEL_ATTENTION:
      r->tokens = (int64_t)batch * seq_len;
      r->flop = batch * 4.0 * up_kernel_attention_pairs(seq_len, window) * d * H;
      r->bytes = batch * e * (2.0 * L * q_dim + 2.0 * L * kv_dim);
      break;
    case UP_KERNEL_DECODE:
      r->tokens = batch;
      r->flop = batch * 4.0 * L * d * H;
      r->bytes = batch * e * (2.0 * q_dim + 2.0 * L * kv_dim);
      break;
    case UP_KERNEL_SELECTION:
      r->tokens = (int64_t)batch * seq_len;
      /* One score pass (QK^T of the last_q rows against every key): the CUDA selection's
       * path for blocks that are a multiple of a warp's keys, the default 64 included. */
      r->flop = (double)r->tokens * 2.0 * d * H * plan->select.last_q;
      r->bytes = (double)r->tokens * 2.0 * e * kv_dim;
      break;
    case UP_KERNEL_GEMM:
    case UP_KERNEL_SPARSE: /* up_add_sparse */
    case UP_KERNEL_DELTANET:
    case UP_KERNEL_MOE:
    case UP_KERNEL_KIND_COUNT: UP_FATAL("kernel kind %d is no attention case", (int)kind);
  }
}

/* The sparse attention kernel over one prompt of seq_len rows, blocks kept at `density`
 * (kernel_cases.h): the attention case of that prompt (heads, tokens, bytes, sampled
 * bounds), then its own kind, label, pattern and FLOPs. */
static void up_add_sparse(up_kernel_plan *plan, int32_t *capacity, int32_t seq_len, double density) {
  up_add_attention_kind(plan, capacity, UP_KERNEL_ATTENTION, 1, seq_len, 0);
  up_kernel_case *c = &plan->cases[plan->n_cases - 1];
  up_kernel_record *r = &c->record;
  c->kind = UP_KERNEL_SPARSE;
  snprintf(r->kernel, sizeof r->kernel, "%s", up_kernel_kind_names[UP_KERNEL_SPARSE]);
  c->op.driver = &up_op_sparse_attention;
  c->op.sample = UP_SPARSE_SAMPLE_BLOCKS;
  c->op.batch.sparse = (up_op_sparse_dims){.block_q = UP_SPARSE_BLOCK, .block_k = UP_SPARSE_BLOCK,
                                           .density = (float)density};
  char len_text[16];
  up_size_text(len_text, sizeof len_text, seq_len);
  snprintf(r->label, sizeof r->label, "sparse 1x%s p%.1f", len_text, density);
  const size_t used = strlen(r->shape); /* the attention case's "1xL hH/KV dD" */
  snprintf(r->shape + used, sizeof r->shape - used, " b%d p%.1f", UP_SPARSE_BLOCK, density);
  r->flop = 4.0 * up_kernel_sparse_pairs(seq_len, UP_SPARSE_BLOCK, density) * plan->shape.head_dim *
            plan->shape.n_heads;
}

/* One sparse baseline's estimation stage over one prompt of seq_len rows at the method's
 * defaults (kernel_cases.h): the attention case of that prompt (heads, tokens), then the
 * estimator's driver, label and work. */
static void up_add_sparse_estimate(up_kernel_plan *plan, int32_t *capacity, int32_t seq_len,
                                   const up_op_driver *driver) {
  up_add_attention_kind(plan, capacity, UP_KERNEL_ATTENTION, 1, seq_len, 0);
  up_kernel_case *c = &plan->cases[plan->n_cases - 1];
  up_kernel_record *r = &c->record;
  c->kind = UP_KERNEL_SPARSE;
  snprintf(r->kernel, sizeof r->kernel, "sparse_estimate");
  c->op.driver = driver;
  c->op.tolerance = 0.02; /* a share of list rows (case_sparse_estimate.c) */
  c->op.sample = 1;       /* the one sequence, every list row of it (case_sparse_estimate.c) */
  c->op.batch.query_bound = 8.0f; /* peaked, as the op cases: choices off near-ties */
  const double e = (double)plan->elem_size, n = seq_len, d = plan->shape.head_dim, H = plan->shape.n_heads;
  const double kv_dim = (double)plan->shape.n_kv_heads * d;
  const char *name;
  if (driver == &up_op_minference_estimate) {
    name = "minference";
    c->op.batch.sparse = (up_op_sparse_dims){.block_q = 64, .block_k = 64, .density = 1.0f, .vertical = 512,
                                             .slash = 2048};
    const double lq = n < UP_MINFERENCE_LAST_Q ? n : UP_MINFERENCE_LAST_Q;
    r->flop = 2.0 * lq * n * d * H;
    r->bytes = e * (n * kv_dim + lq * H * d);
  } else if (driver == &up_op_flexprefill_estimate) {
    name = "flexprefill";
    c->op.batch.sparse = (up_op_sparse_dims){.block_q = UP_FLEXPREFILL_BLOCK, .block_k = UP_FLEXPREFILL_BLOCK,
                                             .gamma = 0.95f, .tau = 0.1f, .min_budget = 1024};
    const double lq = n < UP_FLEXPREFILL_BLOCK ? n : UP_FLEXPREFILL_BLOCK;
    r->flop = 2.0 * lq * n * d * H;
    r->bytes = e * n * (H * d + kv_dim);
  } else {
    name = "xattention";
    c->op.batch.sparse = (up_op_sparse_dims){.block_q = 128, .block_k = 128, .stride = UP_XATTENTION_STRIDE,
                                             .threshold = 0.9f};
    r->flop = n * n * d * H / UP_XATTENTION_STRIDE;
    r->bytes = e * n * (H * d + kv_dim);
  }
  c->unchecked = driver->work(&c->op) > UP_ESTIMATE_CHECK_WORK;
  char len_text[16];
  up_size_text(len_text, sizeof len_text, seq_len);
  snprintf(r->label, sizeof r->label, "estimate %s 1x%s", name, len_text);
  const size_t used = strlen(r->shape); /* the attention case's "1xL hH/KV dD" */
  snprintf(r->shape + used, sizeof r->shape - used, " %s", name);
}

/* The chunked delta rule over one prompt of seq_len rows at cfg's DeltaNet heads, from
 * zero states; its sample is a prefix (kernels/op_cases/case_deltanet.c). */
static void up_add_deltanet(up_kernel_plan *plan, int32_t *capacity, const up_model_config *cfg, int32_t seq_len) {
  up_kernel_case *c = up_plan_add(plan, capacity, UP_KERNEL_DELTANET);
  up_kernel_record *r = &c->record;
  const int32_t hv = cfg->linear_value_heads, hk = cfg->linear_key_heads, d = cfg->linear_head_dim;
  c->op = (up_op_case){.driver = &up_op_gated_deltanet, .tolerance = UP_VALUES_TOLERANCE,
                       .sample = UP_DELTANET_SAMPLE_ROWS};
  c->op.batch = (up_op_batch_dims){.shape = {hv, hk, d, 0.0f}, .block_tokens = plan->block_tokens, .n_seqs = 1,
                                   .rows_each = seq_len};
  char len_text[16];
  up_size_text(len_text, sizeof len_text, seq_len);
  snprintf(r->label, sizeof r->label, "deltanet 1x%s", len_text);
  snprintf(r->shape, sizeof r->shape, "1x%d h%d/%d d%d", (int)seq_len, (int)hv, (int)hk, (int)d);
  r->seq_len = seq_len;
  r->tokens = seq_len;
  r->n_heads = hv;
  r->n_kv_heads = hk;
  r->head_dim = d;
  const double e = (double)plan->elem_size, L = seq_len;
  r->flop = L * up_delta_rule_token_flops(cfg);
  r->bytes = L * (e * 2.0 * (hk + hv) * d + 2.0 * sizeof(float) * hv) + 2.0 * sizeof(float) * hv * (double)d * d;
}

/* An MoE block's routed experts over `tokens` rows: n_experts experts of `inter`, top_k
 * of them per token (the model's), one matmul per expert as the forward runs them or one
 * grouped_matmul per projection; or the dense MLP of the same FLOPs (one expert of top_k
 * x inter, top 1). Checked on the first rows of 8 experts (case_moe_experts.c). */
typedef enum up_moe_variant { UP_MOE_LOOP, UP_MOE_GROUPED, UP_MOE_DENSE } up_moe_variant;

static void up_add_moe(up_kernel_plan *plan, int32_t *capacity, const up_model_config *cfg, int64_t tokens,
                       up_moe_variant variant) {
  up_kernel_case *c = up_plan_add(plan, capacity, UP_KERNEL_MOE);
  up_kernel_record *r = &c->record;
  const bool dense = variant == UP_MOE_DENSE;
  const int32_t experts = dense ? 1 : cfg->n_experts, top_k = dense ? 1 : cfg->n_experts_per_token;
  const int32_t inter = dense ? cfg->n_experts_per_token * cfg->moe_intermediate : cfg->moe_intermediate;
  c->op = (up_op_case){.driver = variant == UP_MOE_GROUPED ? &up_op_moe_experts_grouped : &up_op_moe_experts,
                       .tolerance = UP_VALUES_TOLERANCE, .sample = UP_MOE_SAMPLE_EXPERTS,
                       .moe = {(int32_t)tokens, cfg->hidden, inter, experts, top_k}};
  char len_text[16];
  up_size_text(len_text, sizeof len_text, tokens);
  if (dense)
    snprintf(r->label, sizeof r->label, "moe %s dense %d", len_text, (int)inter);
  else
    snprintf(r->label, sizeof r->label, "moe %s top%d/%d%s", len_text, (int)top_k, (int)experts,
             variant == UP_MOE_GROUPED ? " grouped" : "");
  snprintf(r->shape, sizeof r->shape, "%lldx%d of %d i%d h%d", (long long)tokens, (int)top_k, (int)experts,
           (int)inter, (int)cfg->hidden);
  r->tokens = tokens;
  r->m = tokens * top_k;
  r->n = inter;
  r->k = cfg->hidden;
  r->n_heads = experts;
  r->n_kv_heads = top_k;
  const double e = (double)plan->elem_size, rows = (double)r->m, n = inter, k = cfg->hidden;
  r->flop = 6.0 * rows * n * k;
  r->bytes = e * (3.0 * experts * n * k + 2.0 * rows * k); /* weights, inputs, outputs: the rest may stay on chip */
}

static bool up_has_moe_layers(const up_model_config *cfg) {
  for (int32_t l = 0; l < cfg->n_layers; ++l)
    if (cfg->mlp_kind[l] == UP_MLP_MOE) return true;
  return false;
}

static bool up_has_linear_layers(const up_model_config *cfg) {
  for (int32_t l = 0; l < cfg->n_layers; ++l)
    if (cfg->layer_kind[l] == UP_LAYER_LINEAR_ATTENTION) return true;
  return false;
}

/* A model with sliding layers: after the full-attention case at seq_len, the same
 * prompt over the model's window and (GPU) the windows of up_gpu_windows, each shorter
 * than the prompt and timed once, ascending. */
static void up_add_window_cases(up_kernel_plan *plan, int32_t *capacity, const up_model_config *cfg, bool gpu,
                                int32_t seq_len) {
  if (cfg->sliding_window <= 0) return;
  int32_t windows[UP_N(up_gpu_windows) + 1], n = 0;
  for (int32_t i = 0; gpu && i < UP_N(up_gpu_windows); ++i) windows[n++] = up_gpu_windows[i];
  windows[n++] = cfg->sliding_window;
  for (int32_t i = 1; i < n; ++i) /* ascending */
    for (int32_t j = i; j > 0 && windows[j - 1] > windows[j]; --j) {
      const int32_t t = windows[j];
      windows[j] = windows[j - 1];
      windows[j - 1] = t;
    }
  for (int32_t i = 0; i < n; ++i)
    if (windows[i] < seq_len && (i == 0 || windows[i] != windows[i - 1]))
      up_add_attention_kind(plan, capacity, UP_KERNEL_ATTENTION, 1, seq_len, windows[i]);
}

/* Floors at the device's peaks (NaN when unknown) and the targets that apply. */
static void up_finish_cases(up_kernel_plan *plan, const up_kernel_device *dev) {
  const up_device_peaks peaks = up_device_peaks_find(dev->name);
  for (int32_t i = 0; i < plan->n_cases; ++i) {
    up_kernel_case *c = &plan->cases[i];
    up_kernel_record *r = &c->record;
    r->index = i;
    snprintf(c->op.label, sizeof c->op.label, "%s", r->label);
    r->peak_tflops_per_s = peaks.bf16_tflops;
    r->peak_gb_per_s = peaks.gb_per_s;
    r->flop_floor_ms = r->flop / (peaks.bf16_tflops * 1e12) * 1e3;
    r->byte_floor_ms = r->bytes / (peaks.gb_per_s * 1e9) * 1e3;
    r->floor_ms = fmax(r->flop_floor_ms, r->byte_floor_ms); /* NaN only when both are */
    /* Issue 4's targets and FlashAttention-2's references are for full causal
     * attention: a sliding-window case gets none (as on the CPU). */
    up_kernel_targets_attach(r, c->kind, &plan->select, dev->on_gpu && c->op.batch.window == 0);
  }
}

/* A length the model can hold; for the selection also one it would score. */
static bool up_check_length(const up_kernel_plan *plan, const up_model_config *cfg, const char *flag, int32_t len,
                            bool selection, char *err, size_t err_size) {
  if (len > cfg->max_context) {
    snprintf(err, err_size, "%s: %d tokens is longer than model %s's context of %d", flag, (int)len, cfg->name,
             (int)cfg->max_context);
    return false;
  }
  const int32_t short_len = plan->select.sink + plan->select.last_q;
  if (selection && len <= short_len) {
    snprintf(err, err_size,
             "%s: the selection leaves prompts of at most sink + last_q = %d tokens alone, so %d would time "
             "nothing (give longer prompts, or leave selection out of --kernel-cases)",
             flag, (int)short_len, (int)len);
    return false;
  }
  return true;
}

int32_t up_kernel_layer_gemms(const up_model_config *cfg, up_gemm_shape gemms[UP_MAX_LAYER_TENSORS]) {
  int32_t n = 0;
  for (int32_t l = 0; l < cfg->n_layers; ++l) {
    up_gemm_shape layer[UP_MAX_LAYER_TENSORS];
    const int32_t n_layer = up_layer_gemm_shapes(cfg, l, layer);
    for (int32_t i = 0; i < n_layer; ++i) {
      bool seen = false;
      for (int32_t j = 0; j < n && !seen; ++j) seen = strcmp(gemms[j].name, layer[i].name) == 0;
      if (!seen && n < UP_MAX_LAYER_TENSORS) gemms[n++] = layer[i];
    }
  }
  return n;
}

bool up_kernel_plan_build(up_kernel_plan *plan, const up_options *opt, const up_model_config *cfg,
                          const up_kernel_device *dev, char *err, size_t err_size) {
  memset(plan, 0, sizeof *plan);
  plan->shape = (up_attn_shape){cfg->n_heads, cfg->n_kv_heads, cfg->head_dim, 1.0f / sqrtf((float)cfg->head_dim)};
  plan->hidden = cfg->hidden;
  plan->intermediate = cfg->intermediate;
  /* The selection kernel is UniPrefill's: time it with that method's defaults (--uniprefill-*). */
  plan->select = up_uniprefill_select_params(
      up_uniprefill_options_of(up_method_defaults_of(&opt->method_defaults, "uniprefill")), cfg);
  plan->block_tokens = opt->kv_block;
  plan->warmup = opt->kernel_warmup;
  plan->repeats = opt->kernel_repeats;
  plan->flush_bytes = dev->on_gpu ? UP_GPU_FLUSH_BYTES : 0;
  plan->elem_size = up_dtype_size(dev->dtype);

  const bool gpu = dev->on_gpu;
  const int32_t *ctx = opt->ctx_given ? opt->ctx : gpu ? up_gpu_ctx : up_cpu_ctx;
  const int32_t n_ctx = opt->ctx_given ? opt->n_ctx : gpu ? UP_N(up_gpu_ctx) : UP_N(up_cpu_ctx);
  const int32_t *batch_seqs = opt->n_kernel_batches ? opt->kernel_batch_seqs : gpu ? up_gpu_batch_seqs : up_cpu_batch_seqs;
  const int32_t *batch_len = opt->n_kernel_batches ? opt->kernel_batch_len : gpu ? up_gpu_batch_len : up_cpu_batch_len;
  const int32_t n_batches =
      opt->n_kernel_batches ? opt->n_kernel_batches : gpu ? UP_N(up_gpu_batch_seqs) : UP_N(up_cpu_batch_seqs);
  const int64_t m = opt->kernel_tokens > 0 ? opt->kernel_tokens : gpu ? UP_GPU_GEMM_TOKENS : UP_CPU_GEMM_TOKENS;
  const uint32_t kinds = opt->kernel_kinds;
  const bool want_attention = kinds & (1u << UP_KERNEL_ATTENTION), want_decode = kinds & (1u << UP_KERNEL_DECODE);
  const bool want_selection = kinds & (1u << UP_KERNEL_SELECTION);
  /* The CUDA sparse kernel takes head_dim 64, 128 and 256 (kernels/cuda/sparse/). */
  const bool want_sparse = (kinds & (1u << UP_KERNEL_SPARSE)) &&
                           (!gpu || cfg->head_dim == 64 || cfg->head_dim == 128 || cfg->head_dim == 256);
  /* Every kind is asked for by default: a model without DeltaNet layers skips this one,
   * unless it is all that was asked for. */
  const bool want_deltanet = (kinds & (1u << UP_KERNEL_DELTANET)) && up_has_linear_layers(cfg);
  if (kinds == (1u << UP_KERNEL_DELTANET) && !want_deltanet) {
    snprintf(err, err_size, "--kernel-cases deltanet: model %s has no Gated DeltaNet (linear-attention) layers",
             cfg->name);
    return false;
  }
  const bool want_moe = (kinds & (1u << UP_KERNEL_MOE)) && up_has_moe_layers(cfg);
  if (kinds == (1u << UP_KERNEL_MOE) && !want_moe) {
    snprintf(err, err_size, "--kernel-cases moe: model %s has no MoE layers", cfg->name);
    return false;
  }

  for (int32_t i = 0; i < n_ctx; ++i)
    if ((want_attention || want_selection || want_sparse || want_deltanet) &&
        !up_check_length(plan, cfg, "--ctx", ctx[i], want_selection, err, err_size))
      return false;
  for (int32_t i = 0; i < n_batches; ++i)
    if ((want_decode || want_selection) &&
        !up_check_length(plan, cfg, "--kernel-batches", batch_len[i], want_selection, err, err_size))
      return false;

  int32_t capacity = 0;
  if (kinds & (1u << UP_KERNEL_GEMM)) {
    up_gemm_shape gemms[UP_MAX_LAYER_TENSORS];
    const int32_t n_gemms = up_kernel_layer_gemms(cfg, gemms);
    for (int32_t g = 0; g < n_gemms; ++g) {
      /* One expert's GEMM over its share of the routed rows: m top-k / experts, at least one. */
      const int64_t rows = gemms[g].experts > 0 ? (m * gemms[g].per_token + gemms[g].experts - 1) / gemms[g].experts : m;
      up_add_gemm(plan, &capacity, gemms[g].name, rows, gemms[g].n, gemms[g].k);
    }
  }
  for (int32_t i = 0; want_attention && i < n_ctx; ++i) {
    up_add_attention_kind(plan, &capacity, UP_KERNEL_ATTENTION, 1, ctx[i], 0);
    up_add_window_cases(plan, &capacity, cfg, gpu, ctx[i]);
  }
  for (int32_t i = 0; want_decode && i < n_batches; ++i)
    up_add_attention_kind(plan, &capacity, UP_KERNEL_DECODE, batch_seqs[i], batch_len[i], 0);
  /* Prefill attention also over each packed batch the user named (issue 17 compares batch
   * 4 with cuDNN); the default batches are sized for decode and would add 16x32K prefills. */
  for (int32_t i = 0; want_attention && opt->n_kernel_batches && i < n_batches; ++i)
    if (!up_batch_repeats_ctx(batch_seqs[i], batch_len[i], ctx, n_ctx))
      up_add_attention_kind(plan, &capacity, UP_KERNEL_ATTENTION, batch_seqs[i], batch_len[i], 0);
  for (int32_t i = 0; want_selection && i < n_ctx; ++i)
    up_add_attention_kind(plan, &capacity, UP_KERNEL_SELECTION, 1, ctx[i], 0);
  for (int32_t i = 0; want_selection && i < n_batches; ++i)
    if (!up_batch_repeats_ctx(batch_seqs[i], batch_len[i], ctx, n_ctx))
      up_add_attention_kind(plan, &capacity, UP_KERNEL_SELECTION, batch_seqs[i], batch_len[i], 0);
  for (int32_t i = 0; want_sparse && i < n_ctx; ++i)
    for (int32_t j = 0; j < UP_N(up_sparse_densities); ++j) up_add_sparse(plan, &capacity, ctx[i], up_sparse_densities[j]);
  static const up_op_driver *const estimators[] = {&up_op_minference_estimate, &up_op_flexprefill_estimate,
                                                   &up_op_xattention_estimate};
  for (int32_t i = 0; want_sparse && i < n_ctx; ++i)
    for (int32_t j = 0; j < UP_N(estimators); ++j) up_add_sparse_estimate(plan, &capacity, ctx[i], estimators[j]);
  for (int32_t i = 0; want_deltanet && i < n_ctx; ++i) up_add_deltanet(plan, &capacity, cfg, ctx[i]);
  if (want_moe)
    for (int v = UP_MOE_LOOP; v <= UP_MOE_DENSE; ++v) up_add_moe(plan, &capacity, cfg, m, (up_moe_variant)v);
  up_finish_cases(plan, dev);
  return true;
}

void up_kernel_plan_free(up_kernel_plan *plan) {
  free(plan->cases);
  plan->cases = NULL;
  plan->n_cases = 0;
}

int32_t up_kernel_case_pool_blocks(const up_kernel_plan *plan, const up_kernel_case *c) {
  const int64_t per_seq = (c->record.seq_len + plan->block_tokens - 1) / plan->block_tokens;
  return (int32_t)(per_seq * c->record.batch);
}

int64_t up_kernel_case_bytes(const up_kernel_plan *plan, const up_kernel_case *c) {
  const up_kernel_record *r = &c->record;
  const int64_t e = (int64_t)plan->elem_size;
  if (c->kind == UP_KERNEL_GEMM) return e * (r->m * r->k + r->n * r->k + r->m * r->n);
  if (c->kind == UP_KERNEL_MOE) /* weights, inputs, gate/up, SwiGLU and outputs */
    return e * (3 * r->n_heads * r->n * r->k + r->m * (2 * r->k + 3 * r->n)) + 4 * (r->n_heads + 1);
  if (c->kind == UP_KERNEL_DELTANET) { /* q|k|v rows, output, g and beta, two state slots */
    const int64_t hv = r->n_heads, hk = r->n_kv_heads, d = r->head_dim;
    return r->tokens * (e * (2 * hk + 2 * hv) * d + 8 * hv) + 2 * hv * d * d * 4 + 64;
  }
  const up_attn_shape *s = &plan->shape;
  const int64_t qkv_dim = (int64_t)(s->n_heads + 2 * s->n_kv_heads) * s->head_dim;
  const int64_t kv_dim = (int64_t)s->n_kv_heads * s->head_dim;
  const int64_t blocks = up_kernel_case_pool_blocks(plan, c);
  const int64_t pool = 2 * blocks * plan->block_tokens * kv_dim * e;
  const int64_t index_arrays = 4 * (2LL * r->batch + 1 + blocks);
  const int64_t qkv = r->tokens * qkv_dim * e;
  if (c->kind == UP_KERNEL_SELECTION)
    return qkv + pool + index_arrays + r->tokens * (4 + UP_SELECT_WORKSPACE_PER_TOKEN);
  if (c->kind == UP_KERNEL_SPARSE) { /* the pattern: a start per kept block, offsets per list row */
    const int64_t nq = (r->seq_len + UP_SPARSE_BLOCK - 1) / UP_SPARSE_BLOCK;
    const int64_t lists = 4 * ((int64_t)s->n_heads * (nq * (nq + 1) / 2 + 2 * nq + 2) + 2);
    if (c->op.driver != &up_op_sparse_attention) {
      /* an estimator: MInference's 64-blocks (four times the lists) and extra keys, and its
       * scratch: per head float64 scores per key (about 64 bytes a key in all), the block
       * methods' per (query block, key block) scores, marks and ranks (16 bytes), and
       * FlexPrefill's last-block logits (256 bytes a key per head, at most 512 MiB) */
      const int64_t extra_keys = 4 * (int64_t)s->n_heads * 2 * nq * 512;
      const int64_t logits = 256 * r->tokens * (int64_t)s->n_heads;
      const int64_t scratch = (int64_t)s->n_heads * (64 * r->tokens + 16 * nq * nq) +
                              (logits < (512LL << 20) ? logits : (512LL << 20));
      return qkv + pool + index_arrays + 4 * lists + extra_keys + scratch;
    }
    return qkv + pool + index_arrays + lists + r->tokens * (int64_t)s->n_heads * s->head_dim * e;
  }
  return qkv + pool + index_arrays + r->tokens * (int64_t)s->n_heads * s->head_dim * e;
}
