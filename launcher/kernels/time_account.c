/* time_account.c — the predicted prefill time by block kind from the --kernels rows
 * (see time_account.h): finding each layer's rows, scaling the GEMM and MoE rows to the
 * prompt length, the sums and the markdown table. */
#include "launcher/kernels/time_account.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "engine/model/arch.h"
#include "engine/model/layer_cost.h"
#include "kernels/op_cases/case_qwen.h"
#include "launcher/output/report_table.h"

typedef enum up_account_block { UP_ACC_DELTANET, UP_ACC_ATTENTION, UP_ACC_MOE, UP_ACC_MLP, UP_ACC_COUNT } up_account_block;

static const char *const up_account_names[UP_ACC_COUNT] = {"deltanet", "attention", "moe", "mlp"};

/* One line of the table: a block kind over the layers that run it, or the total. */
typedef struct up_account_row {
  char block[24];
  int32_t layers;
  double kernel_ms;      /* the kind's own kernel row (delta rule, attention, routed experts) x its layers */
  double gemm_ms;        /* the kind's other GEMMs x its layers, at the prompt's tokens */
  double total_ms;
  double share;          /* of the timed total */
  double gflop, gbytes;  /* 1e9 FLOPs and 1e9 bytes */
  double floor_ms;       /* each part's floor, summed */
  double floor_fraction; /* floor_ms / total_ms */
} up_account_row;

#define UP_ACCOUNT_COLUMN(name, kind, field) {name, kind, offsetof(up_account_row, field), UP_SHOW_ALWAYS}
static const up_table_column up_account_columns[] = {
    UP_ACCOUNT_COLUMN("block", UP_COL_TEXT, block),
    UP_ACCOUNT_COLUMN("layers", UP_COL_INTEGER, layers),
    UP_ACCOUNT_COLUMN("kernel_ms", UP_COL_MS, kernel_ms),
    UP_ACCOUNT_COLUMN("gemm_ms", UP_COL_MS, gemm_ms),
    UP_ACCOUNT_COLUMN("total_ms", UP_COL_MS, total_ms),
    UP_ACCOUNT_COLUMN("share", UP_COL_FRACTION, share),
    UP_ACCOUNT_COLUMN("gflop", UP_COL_MS, gflop),
    UP_ACCOUNT_COLUMN("gbytes", UP_COL_MS, gbytes),
    UP_ACCOUNT_COLUMN("floor_ms", UP_COL_MS, floor_ms),
    UP_ACCOUNT_COLUMN("floor_fraction", UP_COL_FRACTION, floor_fraction),
};
#undef UP_ACCOUNT_COLUMN

static const up_table_spec up_account_table = {
    .columns = up_account_columns,
    .n_columns = sizeof up_account_columns / sizeof up_account_columns[0],
    .row_size = sizeof(up_account_row)};

/* Time, work and floor of one part of a layer at the prompt's length. */
typedef struct up_account_part {
  double ms, flop, bytes;
} up_account_part;

static double up_part_floor_ms(const up_kernel_record *r, const up_account_part *p) {
  return fmax(p->flop / (r->peak_tflops_per_s * 1e12), p->bytes / (r->peak_gb_per_s * 1e9)) * 1e3;
}

static bool up_timed(const up_kernel_case *c) { return isfinite(c->record.median_ms); }

static const up_kernel_case *up_find_gemm(const up_kernel_plan *plan, const char *name) {
  for (int32_t i = 0; i < plan->n_cases; ++i) {
    const up_kernel_case *c = &plan->cases[i];
    if (c->kind == UP_KERNEL_GEMM && strncmp(c->record.label, "gemm ", 5) == 0 &&
        strcmp(c->record.label + 5, name) == 0 && up_timed(c))
      return c;
  }
  return NULL;
}

/* The mixer kernel's row of a prompt of seq_len rows: the delta rule, or attention over
 * `window` entries (0: all). */
static const up_kernel_case *up_find_mixer(const up_kernel_plan *plan, up_kernel_kind kind, int32_t seq_len,
                                           int32_t window) {
  for (int32_t i = 0; i < plan->n_cases; ++i) {
    const up_kernel_case *c = &plan->cases[i];
    if (c->kind == kind && c->record.batch == 1 && c->record.seq_len == seq_len && up_timed(c) &&
        (kind != UP_KERNEL_ATTENTION || c->op.batch.window == window))
      return c;
  }
  return NULL;
}

/* The routed experts as the forward runs them: one grouped_matmul per projection. */
static const up_kernel_case *up_find_moe(const up_kernel_plan *plan) {
  for (int32_t i = 0; i < plan->n_cases; ++i) {
    const up_kernel_case *c = &plan->cases[i];
    if (c->kind == UP_KERNEL_MOE && c->op.driver == &up_op_moe_experts_grouped && up_timed(c)) return c;
  }
  return NULL;
}


static void up_add_part(up_account_row *row, const up_kernel_record *r, const up_account_part *p, bool kernel) {
  if (kernel)
    row->kernel_ms += p->ms;
  else
    row->gemm_ms += p->ms;
  row->gflop += p->flop / 1e9;
  row->gbytes += p->bytes / 1e9;
  row->floor_ms += up_part_floor_ms(r, p);
}

/* Names a missing row once in `missing`. */
static void up_note_missing(char *missing, size_t size, const char *what) {
  if (strstr(missing, what)) return;
  const size_t used = strlen(missing);
  snprintf(missing + used, size - used, "%s\"%s\"", used ? ", " : "", what);
}

/* One layer's parts into rows[]; what the plan lacks into missing. */
static void up_account_layer(const up_kernel_plan *plan, const up_model_config *cfg, int32_t layer, int32_t seq_len,
                             up_account_row rows[UP_ACC_COUNT], char *missing, size_t missing_size) {
  const double L = seq_len, e = (double)plan->elem_size;
  const bool linear = cfg->layer_kind[layer] == UP_LAYER_LINEAR_ATTENTION, moe = cfg->mlp_kind[layer] == UP_MLP_MOE;
  up_account_row *mixer = &rows[linear ? UP_ACC_DELTANET : UP_ACC_ATTENTION];
  up_account_row *ffn = &rows[moe ? UP_ACC_MOE : UP_ACC_MLP];
  mixer->layers += 1;
  ffn->layers += 1;
  char what[64];

  int32_t window = up_layer_window(cfg, layer);
  if (window >= seq_len) window = 0; /* the window holds the whole prompt: full attention */
  const up_kernel_case *mix = up_find_mixer(plan, linear ? UP_KERNEL_DELTANET : UP_KERNEL_ATTENTION, seq_len, window);
  if (mix) {
    const up_account_part p = {mix->record.median_ms, mix->record.flop, mix->record.bytes};
    up_add_part(mixer, &mix->record, &p, true);
  } else {
    snprintf(what, sizeof what, "%s 1x%d%s", linear ? "deltanet" : "attention", (int)seq_len, window ? " window" : "");
    up_note_missing(missing, missing_size, what);
  }

  up_tensor_desc tensors[UP_MAX_LAYER_TENSORS];
  const int32_t n = up_arch_layer_tensors(cfg, layer, tensors);
  for (int32_t i = 0; i < n; ++i) {
    const up_tensor_desc *t = &tensors[i];
    /* Vectors and the conv's taps are no GEMM; an expert stack is the moe row's. */
    if (t->spec->rows == UP_DIM_ONE || t->role == UP_TENSOR_GDN_CONV || t->n_experts > 0) continue;
    const up_kernel_case *g = up_find_gemm(plan, t->spec->name);
    if (!g) {
      snprintf(what, sizeof what, "gemm %s", t->spec->name);
      up_note_missing(missing, missing_size, what);
      continue;
    }
    const double nn = (double)g->record.n, k = (double)g->record.k;
    const up_account_part p = {g->record.median_ms * L / (double)g->record.m, 2.0 * L * nn * k,
                               e * (L * k + nn * k + L * nn)};
    up_add_part(t->spec->block == UP_BLOCK_MLP || t->spec->block == UP_BLOCK_MOE ? ffn : mixer, &g->record, &p, false);
  }

  if (!moe) return;
  const up_kernel_case *x = up_find_moe(plan);
  if (!x) {
    up_note_missing(missing, missing_size, "moe ... grouped");
    return;
  }
  const up_kernel_record *r = &x->record;
  const double rows_L = L * r->n_kv_heads, inter = (double)r->n, h = (double)r->k;
  const up_account_part p = {r->median_ms * L / (double)r->tokens, 6.0 * rows_L * inter * h,
                             e * (3.0 * r->n_heads * inter * h + 2.0 * rows_L * h)};
  up_add_part(ffn, r, &p, true);
}

/* The GEMM rows' token count, for the scaling note (0: no GEMM row). */
static int64_t up_gemm_tokens(const up_kernel_plan *plan) {
  for (int32_t i = 0; i < plan->n_cases; ++i)
    if (plan->cases[i].kind == UP_KERNEL_GEMM || plan->cases[i].kind == UP_KERNEL_MOE)
      return plan->cases[i].record.tokens;
  return 0;
}

static void up_account_print_length(FILE *out, const up_kernel_plan *plan, const up_model_config *cfg,
                                    int32_t seq_len) {
  up_account_row rows[UP_ACC_COUNT + 1];
  memset(rows, 0, sizeof rows);
  char missing[512] = "";
  for (int32_t l = 0; l < cfg->n_layers; ++l) up_account_layer(plan, cfg, l, seq_len, rows, missing, sizeof missing);
  if (missing[0]) {
    fprintf(out, "\nTime account of one %d-token prompt: not made, the run has no timed rows %s "
            "(--kernel-cases gemm,attention,deltanet,moe times them)\n", (int)seq_len, missing);
    return;
  }
  up_account_row *total = &rows[UP_ACC_COUNT];
  snprintf(total->block, sizeof total->block, "timed total");
  total->layers = cfg->n_layers;
  up_account_row shown[UP_ACC_COUNT + 1];
  int32_t n_shown = 0;
  for (int32_t b = 0; b < UP_ACC_COUNT; ++b) {
    up_account_row *row = &rows[b];
    if (row->layers == 0) continue;
    snprintf(row->block, sizeof row->block, "%s", up_account_names[b]);
    row->total_ms = row->kernel_ms + row->gemm_ms;
    total->kernel_ms += row->kernel_ms;
    total->gemm_ms += row->gemm_ms;
    total->gflop += row->gflop;
    total->gbytes += row->gbytes;
    total->floor_ms += row->floor_ms;
  }
  total->total_ms = total->kernel_ms + total->gemm_ms;
  for (int32_t b = 0; b <= UP_ACC_COUNT; ++b) {
    if (rows[b].layers == 0) continue;
    rows[b].share = rows[b].total_ms / total->total_ms;
    rows[b].floor_fraction = rows[b].floor_ms / rows[b].total_ms;
    shown[n_shown++] = rows[b];
  }
  const int64_t gemm_tokens = up_gemm_tokens(plan);
  fprintf(out, "\nTime account of one %d-token prompt, model %s, %d layers", (int)seq_len, cfg->name,
          (int)cfg->n_layers);
  if (gemm_tokens != seq_len)
    fprintf(out, " (GEMM and MoE rows timed at %lld tokens, scaled to %d)", (long long)gemm_tokens, (int)seq_len);
  fprintf(out, ":\n\n");
  up_report_rows_print(out, UP_FORMAT_MARKDOWN, &up_account_table, shown, n_shown);
}

void up_time_account_print(FILE *out, up_output_format format, const up_kernel_plan *plan,
                           const up_model_config *cfg) {
  if (format != UP_FORMAT_MARKDOWN) return;
  int32_t printed = 0;
  for (int32_t i = 0; i < plan->n_cases; ++i) {
    const up_kernel_case *c = &plan->cases[i];
    const bool prompt = (c->kind == UP_KERNEL_ATTENTION && c->op.batch.window == 0 && c->record.batch == 1) ||
                        c->kind == UP_KERNEL_DELTANET;
    bool seen = false; /* a length once, where its first prompt case stands */
    for (int32_t j = 0; j < i && prompt && !seen; ++j) {
      const up_kernel_case *o = &plan->cases[j];
      seen = o->record.seq_len == c->record.seq_len &&
             ((o->kind == UP_KERNEL_ATTENTION && o->op.batch.window == 0 && o->record.batch == 1) ||
              o->kind == UP_KERNEL_DELTANET);
    }
    if (!prompt || seen) continue;
    up_account_print_length(out, plan, cfg, c->record.seq_len);
    ++printed;
  }
  if (printed)
    fprintf(out, "\nNot timed, so not in the totals: norms, the DeltaNet conv, gates and gated norm, the attention's "
            "q/gate split, q/k norms, rope and output gate, MoE routing (route, sort and its host round trip, "
            "gather, combine), residual adds, embedding and LM head. A measured TTFT minus the timed total is "
            "their share.\n");
}
