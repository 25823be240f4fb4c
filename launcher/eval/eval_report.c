/* eval_report.c — summary rows of the fidelity evaluation and their table. */
#include "launcher/eval/eval_report.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "launcher/output/report_table.h"
#include "workloads/eval/eval_tasks.h"

/* Fold the records of one method and context that match `task` ("all": every task).
 * kept_after_drops follows the layers the method itself drops after, ascending (a
 * `layers=` spec or --drop-layers may differ from the model's), so dense, which drops
 * nothing, has none. */
static void summarize_group(const up_model_config *cfg, const up_method *m, const char *task, int32_t ctx,
                            const up_eval_record *records, const int32_t *layer_rows, int32_t n_records,
                            up_eval_summary *row) {
  const char *method = m->spec.label;
  int32_t drops[UP_MAX_LAYERS], n_drops = 0;
  for (int32_t l = 0; m->ops->drops_after && l < cfg->n_layers; ++l)
    if (m->ops->drops_after(m, l)) drops[n_drops++] = l;
  memset(row, 0, sizeof *row);
  snprintf(row->method, sizeof row->method, "%s", method);
  snprintf(row->task, sizeof row->task, "%s", task);
  row->ctx = ctx;
  const bool all = strcmp(task, "all") == 0;
  double after_drop[UP_MAX_LAYERS] = {0};
  int32_t n_kl = 0;
  int32_t needle_survived[UP_MAX_LAYERS] = {0}; /* samples whose answer needles survived drop d */
  int32_t n_content = 0, needle_survived_all = 0;
  for (int32_t i = 0; i < n_records; ++i) {
    const up_eval_record *r = &records[i];
    if (strcmp(r->method, method) != 0 || r->ctx != ctx || (!all && strcmp(r->task, task) != 0)) continue;
    row->n_samples += 1;
    row->accuracy += r->score;
    row->partial += r->partial;
    row->top1_agreement += r->top1_agrees;
    /* A sample with non-finite logits has no KL (NaN; it scores 0): the KL columns
     * cover the samples that have one, rather than turning NaN for the whole group. */
    if (!isnan(r->kl_vs_dense)) {
      n_kl += 1;
      row->kl_mean += r->kl_vs_dense;
      row->kl_max = r->kl_vs_dense > row->kl_max ? r->kl_vs_dense : row->kl_max;
    }
    row->kept_fraction += r->kept_fraction;
    row->prompt_tokens_mean += r->prompt_tokens;
    row->same_answer += r->same_answer;
    if (r->top1_content_agrees >= 0) {
      n_content += 1;
      row->top1_content_agreement += r->top1_content_agrees;
    }
    if (!isnan(r->kl_content)) {
      row->n_kl_content += 1;
      row->kl_content_mean += r->kl_content;
    }
    if (r->needle_drops_survived >= 0) {
      row->n_needle_samples += 1;
      needle_survived_all += r->needle_drops_survived >= n_drops;
      for (int32_t d = 0; d < n_drops; ++d) needle_survived[d] += r->needle_drops_survived > d;
    }
    /* Rows entering the layer after each drop layer: what the drop left. */
    for (int32_t d = 0; d < n_drops; ++d) {
      const int32_t next = drops[d] + 1;
      if (next < cfg->n_layers)
        after_drop[d] += (double)layer_rows[(size_t)i * cfg->n_layers + next] / r->prompt_tokens;
    }
  }
  if (row->n_samples == 0) return;
  const double n = row->n_samples;
  row->accuracy /= n;
  row->partial /= n;
  row->top1_agreement /= n;
  row->kl_mean = n_kl > 0 ? row->kl_mean / n_kl : NAN;
  if (n_kl == 0) row->kl_max = NAN;
  row->kept_fraction /= n;
  row->prompt_tokens_mean /= n;
  row->same_answer /= n;
  row->top1_content_agreement = n_content > 0 ? row->top1_content_agreement / n_content : NAN;
  row->kl_content_mean = row->n_kl_content > 0 ? row->kl_content_mean / row->n_kl_content : NAN;
  row->needle_survival_all = row->n_needle_samples > 0 ? (double)needle_survived_all / row->n_needle_samples : NAN;
  size_t used = 0;
  for (int32_t d = 0; d < n_drops && drops[d] + 1 < cfg->n_layers; ++d)
    if (used < sizeof row->kept_after_drops)
      used += (size_t)snprintf(row->kept_after_drops + used, sizeof row->kept_after_drops - used, "%s%.3f",
                               d ? "," : "", after_drop[d] / n);
  /* Every drop layer counts here, the last layer's too: a needle lost there is lost. */
  used = 0;
  for (int32_t d = 0; row->n_needle_samples > 0 && d < n_drops; ++d)
    if (used < sizeof row->needle_survival)
      used += (size_t)snprintf(row->needle_survival + used, sizeof row->needle_survival - used, "%s%.3f",
                               d ? "," : "", (double)needle_survived[d] / row->n_needle_samples);
}

int32_t up_eval_summarize(const up_model_config *cfg, const up_method *methods, int32_t n_methods, uint32_t task_mask,
                          const up_eval_record *records, const int32_t *layer_rows, int32_t n_records,
                          up_eval_summary **rows) {
  const char *tasks[UP_EVAL_TASK_COUNT];
  int32_t n_tasks = 0;
  for (int32_t k = 0; k < UP_EVAL_TASK_COUNT; ++k)
    if (task_mask & (1u << k)) tasks[n_tasks++] = up_eval_task_name((up_eval_task_kind)k);
  return up_eval_summarize_tasks(cfg, methods, n_methods, tasks, n_tasks, records, layer_rows, n_records, rows);
}

int32_t up_eval_summarize_tasks(const up_model_config *cfg, const up_method *methods, int32_t n_methods,
                                const char *const *tasks, int32_t n_tasks, const up_eval_record *records,
                                const int32_t *layer_rows, int32_t n_records, up_eval_summary **rows) {
  const int32_t ctx = n_records > 0 ? records[0].ctx : 0;
  *rows = up_calloc_or_die((size_t)n_methods * (size_t)(n_tasks + 1), sizeof(up_eval_summary), "eval summary");
  int32_t n = 0;
  for (int32_t m = 0; m < n_methods; ++m) {
    for (int32_t k = 0; k < n_tasks; ++k)
      summarize_group(cfg, &methods[m], tasks[k], ctx, records, layer_rows, n_records, &(*rows)[n++]);
    summarize_group(cfg, &methods[m], "all", ctx, records, layer_rows, n_records, &(*rows)[n++]);
  }
  return n;
}

#define COL(name, kind, member, show) {name, kind, offsetof(up_eval_summary, member), show}
static const up_table_column g_eval_columns[] = {
    COL("method", UP_COL_TEXT, method, UP_SHOW_ALWAYS),
    COL("ctx", UP_COL_INTEGER, ctx, UP_SHOW_ALWAYS),
    COL("task", UP_COL_TEXT, task, UP_SHOW_ALWAYS),
    COL("samples", UP_COL_INTEGER, n_samples, UP_SHOW_ALWAYS),
    COL("prompt tokens", UP_COL_RATE, prompt_tokens_mean, UP_SHOW_ALWAYS),
    COL("accuracy", UP_COL_FRACTION, accuracy, UP_SHOW_ALWAYS),
    COL("partial", UP_COL_FRACTION, partial, UP_SHOW_MACHINE),
    COL("top-1 = dense", UP_COL_FRACTION, top1_agreement, UP_SHOW_ALWAYS),
    COL("KL mean", UP_COL_MS, kl_mean, UP_SHOW_ALWAYS),
    COL("KL max", UP_COL_MS, kl_max, UP_SHOW_MACHINE),
    COL("kept", UP_COL_FRACTION, kept_fraction, UP_SHOW_ALWAYS),
    COL("kept after drops", UP_COL_TEXT, kept_after_drops, UP_SHOW_ALWAYS),
    /* Added later, so every column before keeps its place for readers that count. */
    COL("top-1 content = dense", UP_COL_FRACTION, top1_content_agreement, UP_SHOW_ALWAYS),
    COL("KL content", UP_COL_MS, kl_content_mean, UP_SHOW_ALWAYS),
    COL("same answer", UP_COL_FRACTION, same_answer, UP_SHOW_ALWAYS),
    COL("needles after drops", UP_COL_TEXT, needle_survival, UP_SHOW_ALWAYS),
    COL("needles kept", UP_COL_FRACTION, needle_survival_all, UP_SHOW_MACHINE),
};

void up_eval_report_print(FILE *out, up_output_format format, const up_eval_summary *rows, int32_t n_rows) {
  const up_table_spec spec = {.columns = g_eval_columns,
                              .n_columns = (int32_t)(sizeof g_eval_columns / sizeof g_eval_columns[0]),
                              .row_size = sizeof(up_eval_summary)};
  up_report_rows_print(out, format, &spec, rows, n_rows);
}
