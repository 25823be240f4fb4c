/* tp_scaling.c — TP speedup, efficiency and the cost model's efficiency (see tp_scaling.h). */
#include "launcher/sweep/tp_scaling.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "engine/serve/request.h"

/* The probe's time per row at tp ranks: its slowest group's call over its tokens, in ms;
 * NaN when no group of tp ranks was probed. */
static double probe_ms_per_row(int32_t tp, const up_tp_probe_row *probe, int32_t n_probe) {
  double slowest = NAN;
  for (int32_t i = 0; i < n_probe; ++i) {
    if (probe[i].ranks != tp || probe[i].tokens <= 0) continue;
    const double per_row = probe[i].time_us * 1e-3 / (double)probe[i].tokens;
    if (!(per_row <= slowest)) slowest = per_row;
  }
  return slowest;
}

double up_tp_scaling_comm_model_ms(const up_model_config *cfg, const up_request_record *records,
                                   const int32_t *layer_tokens, int32_t n_requests, int32_t tp,
                                   const up_tp_probe_row *probe, int32_t n_probe) {
  double rows = 0.0;
  int32_t finished = 0;
  for (int32_t i = 0; i < n_requests; ++i) {
    if (records[i].status != UP_REQUEST_FINISHED) continue;
    const int32_t *entering = layer_tokens + (int64_t)i * cfg->n_layers;
    rows += records[i].prompt_len;
    for (int32_t l = 0; l < cfg->n_layers; ++l)
      rows += (double)entering[l] + (double)(l + 1 < cfg->n_layers ? entering[l + 1] : records[i].kept_len);
    ++finished;
  }
  if (finished == 0) return NAN;
  if (tp == 1) return 0.0;
  return rows / finished * probe_ms_per_row(tp, probe, n_probe);
}

double up_tp_scaling_comm_share(double comm_ms, const up_step_record *steps, int64_t n_steps) {
  double busy_ms = 0.0;
  for (int64_t i = 0; i < n_steps; ++i) busy_ms += (steps[i].end_s - steps[i].start_s) * 1e3;
  return busy_ms > 0.0 ? comm_ms / busy_ms : NAN;
}

static bool same_shape(const up_point_summary *a, const up_point_summary *b) {
  return strcmp(a->method, b->method) == 0 && a->ctx == b->ctx && a->concurrency == b->concurrency &&
         a->output_len == b->output_len;
}

void up_tp_scaling_fill(up_point_summary *rows, int32_t n_rows) {
  bool split = false;
  for (int32_t i = 0; i < n_rows; ++i) split = split || rows[i].tp > 1;
  for (int32_t i = 0; i < n_rows; ++i) {
    up_point_summary *row = &rows[i];
    row->tp_speedup = row->tp_efficiency = row->tp_efficiency_model = NAN;
    const up_point_summary *whole = NULL;
    for (int32_t j = 0; j < n_rows && split && !whole; ++j)
      if (rows[j].tp == 1 && same_shape(&rows[j], row)) whole = &rows[j];
    if (!whole || !(row->ttft_mean_ms > 0.0)) continue;
    row->tp_speedup = whole->ttft_mean_ms / row->ttft_mean_ms;
    row->tp_efficiency = row->tp_speedup / row->tp;
    const double compute_ms = whole->ttft_mean_ms / row->tp;
    row->tp_efficiency_model = compute_ms / (compute_ms + row->tp_comm_model_ms);
  }
}
