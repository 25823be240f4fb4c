/* point_rounds.c — rounds of one sweep point joined into one result and summarised (see
 * point_rounds.h). Each round's records keep their own engine clock: times compare
 * within a round, so every rate is taken per round and only then averaged. */
#include "launcher/sweep/point_rounds.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "engine/model/arch.h"
#include "launcher/sweep/speed_model.h"

int64_t up_round_request_id(int32_t round, int32_t n_requests, int32_t i) {
  return (int64_t)round * n_requests + i;
}

void up_point_rounds_init(up_point_rounds *rounds, int32_t n_layers) {
  memset(rounds, 0, sizeof *rounds);
  rounds->all.n_layers = n_layers;
  rounds->all.token_offsets = up_calloc_or_die(1, sizeof(int64_t), "token offsets");
  rounds->round_begin = up_calloc_or_die(1, sizeof(int32_t), "round starts");
}

/* *array (count elements) grown by `more` elements of `size` bytes, the new ones copied from src. */
static void append_items(void **array, int64_t count, const void *src, int64_t more, size_t size, const char *what) {
  if (more <= 0) return;
  void *grown = realloc(*array, size * (size_t)(count + more));
  if (grown == NULL) UP_FATAL("out of memory appending %lld %s", (long long)more, what);
  memcpy((char *)grown + size * (size_t)count, src, size * (size_t)more);
  *array = grown;
}

/* *array (count int32 values) grown by `more` copies of value. */
static void append_repeated(int32_t **array, int64_t count, int32_t value, int64_t more, const char *what) {
  int32_t *grown = realloc(*array, sizeof(int32_t) * (size_t)(count + more > 0 ? count + more : 1));
  if (grown == NULL) UP_FATAL("out of memory appending %lld %s", (long long)more, what);
  for (int64_t k = 0; k < more; ++k) grown[count + k] = value;
  *array = grown;
}

void up_point_rounds_add(up_point_rounds *rounds, const up_point_result *round) {
  up_point_result *all = &rounds->all;
  UP_ASSERT(round->n_layers == all->n_layers, "a round of %d layers joins a point of %d", (int)round->n_layers,
            (int)all->n_layers);
  UP_ASSERT((int64_t)all->n_requests + round->n_requests <= INT32_MAX &&
                (int64_t)all->n_steps + round->n_steps <= INT32_MAX,
            "a point's rounds exceed %d records", INT32_MAX);
  const int32_t r = rounds->n_rounds;
  const size_t L = (size_t)all->n_layers;
  const int64_t times_before = all->token_offsets[all->n_requests];
  const int64_t round_times = round->n_requests > 0 ? round->token_offsets[round->n_requests] : 0;

  append_items((void **)&all->requests, all->n_requests, round->requests, round->n_requests,
               sizeof(up_request_record), "request records");
  append_items((void **)&all->request_layer_tokens, (int64_t)all->n_requests * (int64_t)L, round->request_layer_tokens,
               (int64_t)round->n_requests * (int64_t)L, sizeof(int32_t), "per-layer request rows");
  append_items((void **)&all->token_times, times_before, round->token_times, round_times, sizeof(double),
               "output-token times");
  /* The round's offsets, moved past the times already held. */
  int64_t *offsets = realloc(all->token_offsets, sizeof(int64_t) * (size_t)(all->n_requests + round->n_requests + 1));
  if (offsets == NULL) UP_FATAL("out of memory appending token offsets");
  for (int32_t i = 1; i <= round->n_requests; ++i)
    offsets[all->n_requests + i] = times_before + round->token_offsets[i];
  all->token_offsets = offsets;
  append_repeated(&rounds->request_round, all->n_requests, r, round->n_requests, "request rounds");

  append_items((void **)&all->steps, all->n_steps, round->steps, round->n_steps, sizeof(up_step_record),
               "step records");
  append_items((void **)&all->step_layer_tokens, (int64_t)all->n_steps * (int64_t)L, round->step_layer_tokens,
               (int64_t)round->n_steps * (int64_t)L, sizeof(int64_t), "per-layer step rows");
  append_items((void **)&all->step_layer_attn, (int64_t)all->n_steps * (int64_t)L, round->step_layer_attn,
               (int64_t)round->n_steps * (int64_t)L, sizeof(up_attn_work), "per-layer attention work");
  append_repeated(&rounds->step_round, all->n_steps, r, round->n_steps, "step rounds");

  all->n_requests += round->n_requests;
  all->n_steps += round->n_steps;
  /* Every round builds the same pool: its size, and the most any round used. */
  all->wall_s += round->wall_s;
  all->kv_block_bytes = round->kv_block_bytes;
  if (round->kv_blocks_total > all->kv_blocks_total) all->kv_blocks_total = round->kv_blocks_total;
  if (round->kv_blocks_peak > all->kv_blocks_peak) all->kv_blocks_peak = round->kv_blocks_peak;
  if (round->max_resident > all->max_resident) all->max_resident = round->max_resident;

  append_repeated(&rounds->round_begin, r + 1, all->n_requests, 1, "round starts");
  append_items((void **)&rounds->round_wall_s, r, &round->wall_s, 1, sizeof(double), "round durations");
  append_repeated(&rounds->round_max_resident, r, round->max_resident, 1, "round residents");
  rounds->n_rounds = r + 1;
}

/* The attention phase's rate in the forward over steps [s0, s1) (point_summary.h,
 * attention_tflops): every layer's kernel tiles at 4 q_dim FLOPs a pair over the steps'
 * summed attention time; NaN when a step has no phase time or nothing was timed. */
static double in_model_attention_tflops(const up_model_config *cfg, const up_point_result *all, int64_t s0,
                                        int64_t s1) {
  const double pair_flops = 4.0 * (double)up_dim_size(cfg, UP_DIM_Q);
  double flops = 0.0, ms = 0.0;
  for (int64_t s = s0; s < s1; ++s) {
    if (!isfinite(all->steps[s].attention_ms)) return NAN;
    ms += all->steps[s].attention_ms;
    for (int32_t l = 0; l < cfg->n_layers; ++l) flops += all->step_layer_attn[s * cfg->n_layers + l].tiles * pair_flops;
  }
  return ms > 0.0 && flops > 0.0 ? flops / (ms * 1e9) : NAN;
}

/* The metrics of requests [begin, end) of the joined result, whose steps are rows
 * [step_begin, step_end) (for the attention work each layer did). */
static void summarize_rows(const up_point_result *all, int32_t begin, int32_t end, int64_t step_begin,
                           int64_t step_end, const up_slo *slo, const up_model_config *cfg, double wall_s,
                           int32_t max_resident, up_point_summary *row) {
  memset(row, 0, sizeof *row);
  const up_request_record *records = all->requests ? all->requests + begin : NULL;
  /* Offsets index token_times as a whole, so a slice of them still finds its times. */
  up_point_summary_compute(row, records, end - begin, all->token_times, all->token_offsets + begin, slo, cfg, wall_s);
  double density[UP_MAX_LAYERS];
  if (cfg && all->step_layer_attn)
    up_speed_model_layer_work(cfg, all->step_layer_attn + step_begin * cfg->n_layers, step_end - step_begin,
                              density);
  row->predicted_speedup =
      cfg && end > begin
          ? up_speed_model_predicted_speedup_sparse(cfg, records,
                                                    all->request_layer_tokens + (size_t)begin * (size_t)cfg->n_layers,
                                                    end - begin, all->step_layer_attn ? density : NULL)
          : NAN;
  row->attention_tflops = cfg && all->step_layer_attn && all->steps
                              ? in_model_attention_tflops(cfg, all, step_begin, step_end)
                              : NAN;
  row->max_resident = max_resident;
}

void up_point_rounds_summarize(const up_point_rounds *rounds, const up_slo *slo, const up_model_config *cfg,
                               up_point_summary *round_rows, up_point_summary *point) {
  int64_t step_begin = 0;
  for (int32_t r = 0; r < rounds->n_rounds; ++r) {
    int64_t step_end = step_begin; /* a round's steps are contiguous, in round order */
    while (step_end < rounds->all.n_steps && rounds->step_round[step_end] == r) ++step_end;
    summarize_rows(&rounds->all, rounds->round_begin[r], rounds->round_begin[r + 1], step_begin, step_end, slo, cfg,
                   rounds->round_wall_s[r], rounds->round_max_resident[r], &round_rows[r]);
    step_begin = step_end;
  }
  summarize_rows(&rounds->all, 0, rounds->all.n_requests, 0, rounds->all.n_steps, slo, cfg, rounds->all.wall_s,
                 rounds->all.max_resident, point);
  up_point_summary_combine_rounds(point, round_rows, rounds->n_rounds);
}

void up_point_rounds_free(up_point_rounds *rounds) {
  up_point_result_free(&rounds->all);
  free(rounds->request_round);
  free(rounds->step_round);
  free(rounds->round_begin);
  free(rounds->round_wall_s);
  free(rounds->round_max_resident);
  memset(rounds, 0, sizeof *rounds);
}
