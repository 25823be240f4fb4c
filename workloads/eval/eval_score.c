/* eval_score.c — string-match scoring and its aggregation (see eval_score.h). */
#include "workloads/eval/eval_score.h"

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "core/fatal.h"

/* Whether needle occurs in haystack, ASCII letters compared case-insensitively. An empty
 * needle never counts as found: it would match any answer. */
static bool contains_ignoring_case(const char *haystack, const char *needle) {
  const size_t n = strlen(needle);
  if (n == 0) return false;
  for (const char *h = haystack; *h; ++h) {
    size_t i = 0;
    while (i < n && h[i] && tolower((unsigned char)h[i]) == tolower((unsigned char)needle[i])) i++;
    if (i == n) return true;
  }
  return false;
}

up_eval_score up_eval_score_answers(const char *generated, const char *const *expected, int32_t n_expected) {
  UP_ASSERT(n_expected > 0, "scoring needs at least one expected answer, got %d", n_expected);
  up_eval_score score = {.n_expected = n_expected};
  for (int32_t i = 0; i < n_expected; ++i) score.n_found += contains_ignoring_case(generated, expected[i]);
  score.all_found = score.n_found == n_expected ? 1.0 : 0.0;
  score.fraction = (double)score.n_found / (double)n_expected;
  return score;
}

static void tally_add(up_eval_tally *tally, up_eval_score score) {
  tally->n_samples++;
  tally->sum_all_found += score.all_found;
  tally->sum_fraction += score.fraction;
}

void up_eval_scoreboard_add(up_eval_scoreboard *board, up_eval_task_kind kind, up_eval_score score) {
  UP_ASSERT((unsigned)kind < UP_EVAL_TASK_COUNT, "task kind %d out of range", (int)kind);
  tally_add(&board->task[kind], score);
  tally_add(&board->overall, score);
}

double up_eval_tally_accuracy(const up_eval_tally *tally) {
  return tally->n_samples ? tally->sum_all_found / (double)tally->n_samples : NAN;
}

double up_eval_tally_partial(const up_eval_tally *tally) {
  return tally->n_samples ? tally->sum_fraction / (double)tally->n_samples : NAN;
}

double up_eval_scoreboard_task_mean(const up_eval_scoreboard *board) {
  double sum = 0.0;
  int n_tasks = 0;
  for (int k = 0; k < UP_EVAL_TASK_COUNT; ++k) {
    if (!board->task[k].n_samples) continue;
    sum += up_eval_tally_accuracy(&board->task[k]);
    n_tasks++;
  }
  return n_tasks ? sum / n_tasks : NAN;
}

/* The bytes of s without leading and trailing whitespace: [*start, *start + *len). */
static void trimmed(const char *s, const char **start, size_t *len) {
  while (isspace((unsigned char)*s)) s++;
  size_t n = strlen(s);
  while (n > 0 && isspace((unsigned char)s[n - 1])) n--;
  *start = s;
  *len = n;
}

static bool equal_normalised(const char *a, const char *b) {
  const char *sa, *sb;
  size_t na, nb;
  trimmed(a, &sa, &na);
  trimmed(b, &sb, &nb);
  if (na != nb || na == 0) return false;
  for (size_t i = 0; i < na; ++i)
    if (tolower((unsigned char)sa[i]) != tolower((unsigned char)sb[i])) return false;
  return true;
}

up_eval_score up_eval_score_exact(const char *generated, const char *const *expected, int32_t n_expected) {
  UP_ASSERT(n_expected > 0, "scoring needs at least one expected answer, got %d", n_expected);
  up_eval_score score = {.n_expected = n_expected};
  for (int32_t i = 0; i < n_expected; ++i) score.n_found += equal_normalised(generated, expected[i]);
  score.all_found = score.n_found > 0 ? 1.0 : 0.0;
  score.fraction = (double)score.n_found / (double)n_expected;
  return score;
}
