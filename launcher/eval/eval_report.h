/* eval_report.h — the fidelity evaluation's summary: rows per method, context and task
 * (plus "all" per method and context) computed from the per-sample records, and the
 * terminal table of them. Rank 0 only. */
#ifndef UP_EVAL_REPORT_H
#define UP_EVAL_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "engine/methods/method.h"
#include "engine/model/model_config.h"
#include "launcher/cli.h"
#include "launcher/eval/eval_record.h"

/* Summary rows of one context's records (all methods), in method order, each method's
 * tasks in task order followed by its "all" row. *rows is malloc'ed; returns the count.
 * layer_rows is [n_records][n_layers]: prompt rows entering each layer. */
int32_t up_eval_summarize(const up_model_config *cfg, const up_method *methods, int32_t n_methods, uint32_t task_mask,
                          const up_eval_record *records, const int32_t *layer_rows, int32_t n_records,
                          up_eval_summary **rows);

/* The same over named tasks (generated task names, --eval-file task names), in the
 * order given; a task name compares with the records' task field as stored (cut to fit). */
int32_t up_eval_summarize_tasks(const up_model_config *cfg, const up_method *methods, int32_t n_methods,
                                const char *const *tasks, int32_t n_tasks, const up_eval_record *records,
                                const int32_t *layer_rows, int32_t n_records, up_eval_summary **rows);

void up_eval_report_print(FILE *out, up_output_format format, const up_eval_summary *rows, int32_t n_rows);

#endif
