/* tp_scaling.h — how a sweep point at --tp N compares with the TP = 1 point of the same
 * shape in the same run (../shared/PARALLEL.md 4.3-4.4): the measured speedup and
 * efficiency, and the no-overlap cost model's efficiency beside them, whose
 * communication is the point's all-reduce rows timed at the start-up probe's rate.
 * Reads summary rows, records and probe rows; owns no file and no collective. */
#ifndef UP_TP_SCALING_H
#define UP_TP_SCALING_H

#include <stdint.h>

#include "engine/model/model_config.h"
#include "engine/serve/records.h"
#include "launcher/parallel/tp_probe.h"
#include "launcher/sweep/point_summary.h"

/* The mean, over the finished requests, of the time a request's prefill spends in the
 * forward's all-reduces at --tp tp, in ms: its embedding rows (prompt_len) plus at
 * every layer the attention output's rows (the tokens entering it) and the MLP's (the
 * tokens it keeps: the next layer's, kept_len after the last), each row costing the
 * probe of that degree's time per call over its tokens (the slowest group's; the
 * message is tokens x hidden, so a row is hidden elements). The LM head's all-gather
 * of the last rows and UniPrefill's score all-gathers are left out (a few rows). 0 at
 * tp 1 (a group of one moves nothing); NaN when no probe row has tp ranks or no request
 * finished. layer_tokens is [n_requests][cfg->n_layers]. */
double up_tp_scaling_comm_model_ms(const up_model_config *cfg, const up_request_record *records,
                                   const int32_t *layer_tokens, int32_t n_requests, int32_t tp,
                                   const up_tp_probe_row *probe, int32_t n_probe);

/* The share of a point's busy time spent in collectives: comm_ms over the summed
 * durations (end_s - start_s) of its steps, the same steps' leaders whose collectives
 * comm_ms sums. Comparable with 1 - tp_efficiency_model, the model's communication share
 * of a split step. NaN when the steps took no time. */
double up_tp_scaling_comm_share(double comm_ms, const up_step_record *steps, int64_t n_steps);

/* For every row with a TP = 1 row of the same method, ctx, concurrency and output
 * length, in a sweep that has some row at tp > 1: tp_speedup = that row's ttft_mean_ms
 * / this one's, tp_efficiency = tp_speedup / tp, and tp_efficiency_model =
 * t / (t + tp_comm_model_ms) with t = the TP = 1 mean TTFT / tp (its compute split tp
 * ways, no overlap; NaN where tp_comm_model_ms is). The TP = 1 rows get 1. Every other
 * row gets NaN in the three. */
void up_tp_scaling_fill(up_point_summary *rows, int32_t n_rows);

#endif
