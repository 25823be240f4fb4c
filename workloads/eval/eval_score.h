/* eval_score.h — scoring generated answers of fidelity tasks by RULER's string match:
 * an expected answer counts as found when it occurs anywhere in the generated text,
 * ignoring ASCII case. A sample scores 1 when every expected answer is found (the
 * headline) and also reports the fraction found (partial credit); tallies aggregate
 * samples per task and overall. */
#ifndef UP_EVAL_SCORE_H
#define UP_EVAL_SCORE_H

#include <stdint.h>

#include "workloads/eval/eval_tasks.h"

typedef struct up_eval_score {
  int32_t n_expected;
  int32_t n_found;
  double all_found; /* 1 when n_found == n_expected, else 0 */
  double fraction;  /* n_found / n_expected */
} up_eval_score;

up_eval_score up_eval_score_answers(const char *generated, const char *const *expected, int32_t n_expected);

/* Exact match, for answers that are the whole output (LongBench-like --eval-file data):
 * the output and each expected answer are normalised by dropping leading and trailing
 * whitespace and folding ASCII case, and an answer counts as found when the two are then
 * equal. all_found is 1 when any expected answer matches (they are alternatives), and
 * fraction the share that match. */
up_eval_score up_eval_score_exact(const char *generated, const char *const *expected, int32_t n_expected);

typedef struct up_eval_tally {
  int64_t n_samples;
  double sum_all_found;
  double sum_fraction;
} up_eval_tally;

/* Per-task tallies and the overall one, by sample. */
typedef struct up_eval_scoreboard {
  up_eval_tally task[UP_EVAL_TASK_COUNT];
  up_eval_tally overall;
} up_eval_scoreboard;

void up_eval_scoreboard_add(up_eval_scoreboard *board, up_eval_task_kind kind, up_eval_score score);

/* Mean all-found score and mean fraction of a tally; NaN when it has no sample. */
double up_eval_tally_accuracy(const up_eval_tally *tally);
double up_eval_tally_partial(const up_eval_tally *tally);

/* RULER's headline: the mean over tasks that have samples of each task's accuracy
 * (every task weighs the same whatever its sample count); NaN when none has. */
double up_eval_scoreboard_task_mean(const up_eval_scoreboard *board);

#endif
