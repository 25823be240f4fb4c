/* point_rounds.h — a closed-loop sweep point run in rounds (--repetitions). Owns how
 * round requests are numbered, the joining of each round's gathered records into one
 * point result that remembers every request's and step's round, and the point's rows
 * from it: one summary row per round and the point's row (means over rounds with their
 * spread, percentiles pooled over every request; point_summary.h). Rank 0 only: no MPI,
 * no I/O, and it never runs the engine (sweep.c does). */
#ifndef UP_POINT_ROUNDS_H
#define UP_POINT_ROUNDS_H

#include <stdint.h>

#include "engine/model/model_config.h"
#include "engine/serve/point_engine.h"
#include "launcher/sweep/point_summary.h"
#include "launcher/sweep/serving_metrics.h"

/* Request i of round r (0-based, i < the point's n_requests) has id r x n_requests + i:
 * round r's ids follow round r-1's, round 0's are those of a point without rounds, and
 * since a prompt is drawn from (seed, id) every round has prompts of its own, the same
 * on every run with that seed. */
int64_t up_round_request_id(int32_t round, int32_t n_requests, int32_t i);

typedef struct up_point_rounds {
  int32_t n_rounds;
  up_point_result all;        /* every round's records, round after round (so in id order) */
  int32_t *request_round;     /* [all.n_requests]: the round of each request row */
  int32_t *step_round;        /* [all.n_steps]: the round of each step row */
  int32_t *round_begin;       /* [n_rounds + 1]: round r's requests are rows round_begin[r] .. round_begin[r + 1] - 1 */
  double *round_wall_s;       /* [n_rounds]: each round's duration on its slowest rank */
  int32_t *round_max_resident; /* [n_rounds] */
} up_point_rounds;

/* An empty point of n_layers layers. */
void up_point_rounds_init(up_point_rounds *rounds, int32_t n_layers);

/* Append one round's gathered result (copied; the caller still frees it). Its rows must
 * have the point's depth. */
void up_point_rounds_add(up_point_rounds *rounds, const up_point_result *round);

/* round_rows[r] (n_rounds of them) from round r's records alone; *point from all of
 * them (up_point_summary_combine_rounds). Both get every metric field, the predicted
 * speedup (when cfg is given) and max_resident; the parameter fields (method, ctx, ...)
 * are the caller's. The pool figures of rounds.all are each round's most, the point's
 * wall time the rounds' sum. slo and cfg may be NULL (no goodput, no FLOP figures). */
void up_point_rounds_summarize(const up_point_rounds *rounds, const up_slo *slo, const up_model_config *cfg,
                               up_point_summary *round_rows, up_point_summary *point);

void up_point_rounds_free(up_point_rounds *rounds);

#endif
