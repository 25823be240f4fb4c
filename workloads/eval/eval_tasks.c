/* eval_tasks.c — the fidelity tasks: names, the per-kind text (instruction, needles,
 * question, answer prefix, answers) drawn from the seed, and sizing the context to the
 * token target (see eval_tasks.h). */
#include "workloads/eval/eval_tasks.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "core/rng.h"
#include "workloads/eval/text_buffer.h"

enum {
  MAX_NEEDLES = UP_EVAL_MAX_NEEDLES,
  MULTIKEY_DISTRACTORS = 3,
  MULTIVALUE_VALUES = 4,
  VT_HOPS = 4,
  MAX_FIT_ROUNDS = 16,
};

static const char *const task_names[UP_EVAL_TASK_COUNT] = {"niah_single", "niah_multikey", "niah_multivalue",
                                                           "kv_retrieval", "vt"};

const char *up_eval_task_name(up_eval_task_kind kind) {
  return (unsigned)kind < UP_EVAL_TASK_COUNT ? task_names[kind] : "unknown";
}

bool up_eval_tasks_parse(const char *list, uint32_t *mask, char *err, size_t err_size) {
  static const uint32_t niah_mask = (1u << UP_EVAL_NIAH_SINGLE) | (1u << UP_EVAL_NIAH_MULTIKEY) |
                                    (1u << UP_EVAL_NIAH_MULTIVALUE);
  *mask = 0;
  const char *entry = list;
  for (;;) {
    const size_t len = strcspn(entry, ",");
    uint32_t bits = 0;
    if (len == 3 && strncmp(entry, "all", 3) == 0) bits = (1u << UP_EVAL_TASK_COUNT) - 1;
    else if (len == 4 && strncmp(entry, "niah", 4) == 0) bits = niah_mask;
    for (int k = 0; k < UP_EVAL_TASK_COUNT && !bits; ++k)
      if (strlen(task_names[k]) == len && strncmp(entry, task_names[k], len) == 0) bits = 1u << k;
    if (!bits) {
      snprintf(err, err_size,
               "unknown eval task '%.*s' in '%s' (use niah_single, niah_multikey, niah_multivalue, kv_retrieval, vt, "
               "niah or all, comma-separated)",
               (int)len, entry, list);
      return false;
    }
    *mask |= bits;
    if (entry[len] == '\0') return true;
    entry += len + 1;
  }
}

/* ---- random draws: the i-th value of a sample's stream, in draw order ---- */

typedef struct draws {
  uint64_t seed, stream, next;
} draws;

static uint64_t draw_u64(draws *d) { return up_rng_u64(d->seed, d->stream, d->next++); }
static uint64_t draw_below(draws *d, uint64_t n) { return draw_u64(d) % n; }
static double draw_unit(draws *d) { return (double)(draw_u64(d) >> 11) * (1.0 / 9007199254740992.0); }

/* Needle keys are adjective-noun pairs ("quiet-harbor"): 48 x 48 of them. */
static const char *const key_adjectives[] = {
    "amber", "brave", "calm", "dusty", "eager", "faint", "gentle", "hollow",
    "icy", "jolly", "keen", "lively", "mellow", "narrow", "odd", "pale",
    "quiet", "rapid", "silent", "tidy", "upper", "vivid", "wary", "young",
    "zesty", "bold", "crisp", "deep", "early", "fuzzy", "golden", "humble",
    "ivory", "jagged", "kind", "lofty", "misty", "noble", "olive", "proud",
    "royal", "sharp", "tender", "urban", "velvet", "wild", "windy", "rustic"};
static const char *const key_nouns[] = {
    "anchor", "badger", "canyon", "dolphin", "ember", "falcon", "garden", "harbor",
    "island", "jacket", "kettle", "lantern", "meadow", "needle", "orchard", "pebble",
    "quarry", "river", "saddle", "tunnel", "umbrella", "valley", "walrus", "yard",
    "zephyr", "beacon", "candle", "desert", "engine", "forest", "glacier", "hammer",
    "igloo", "jungle", "kitten", "ladder", "mirror", "nectar", "otter", "parrot",
    "ribbon", "summit", "teapot", "violin", "window", "willow", "marble", "comet"};
#define N_ADJECTIVES (sizeof key_adjectives / sizeof key_adjectives[0])
#define N_NOUNS (sizeof key_nouns / sizeof key_nouns[0])

static void draw_key(draws *d, char *out, size_t size) {
  const char *adjective = key_adjectives[draw_below(d, N_ADJECTIVES)];
  snprintf(out, size, "%s-%s", adjective, key_nouns[draw_below(d, N_NOUNS)]);
}

static void draw_uuid(draws *d, char *out, size_t size) {
  const uint64_t hi = draw_u64(d), lo = draw_u64(d);
  snprintf(out, size, "%08x-%04x-%04x-%04x-%012llx", (unsigned)(hi >> 32), (unsigned)(hi >> 16) & 0xffffu,
           (unsigned)hi & 0xffffu, (unsigned)(lo >> 48), (unsigned long long)(lo & 0xffffffffffffull));
}

static void draw_var_name(draws *d, char *out) {
  for (int i = 0; i < 5; ++i) out[i] = (char)('A' + draw_below(d, 26));
  out[5] = '\0';
}

static bool in_list(char list[][48], int n, const char *s) {
  for (int i = 0; i < n; ++i)
    if (strcmp(list[i], s) == 0) return true;
  return false;
}

/* ---- one task's text: everything but the haystack units ---- */

typedef struct task_text {
  up_text_buffer head, question, prefix;
  char *needles[MAX_NEEDLES];
  double needle_depth[MAX_NEEDLES]; /* asked for; achieved depths are computed when placed */
  bool distractor[MAX_NEEDLES];     /* a needle the answer does not depend on */
  int32_t n_needles;                /* needle 0 is the one the sample's depth refers to */
  char *answers[MAX_NEEDLES];
  int32_t n_answers;
  bool json;                        /* kv_retrieval: units are JSON pairs, not sentences */
  int32_t first_sentence;           /* prose: the haystack starts here and wraps around */
  uint64_t seed, unit_stream;       /* json: the pairs' random draws */
} task_text;

static char *format_alloc(const char *fmt, const char *a, const char *b) {
  up_text_buffer buf = {0};
  up_text_buffer_printf(&buf, fmt, a, b);
  return up_text_buffer_take(&buf);
}

static void add_needle(task_text *t, char *text, double depth) {
  UP_ASSERT(t->n_needles < MAX_NEEDLES, "more than %d needles", MAX_NEEDLES);
  t->needles[t->n_needles] = text;
  t->needle_depth[t->n_needles] = depth;
  t->n_needles++;
}

static void add_answer(task_text *t, const char *answer) {
  UP_ASSERT(t->n_answers < MAX_NEEDLES, "more than %d answers", MAX_NEEDLES);
  t->answers[t->n_answers++] = strdup(answer);
  if (!t->answers[t->n_answers - 1]) UP_FATAL("out of memory for an eval answer");
}

static const char niah_head[] =
    "Below is a long text with some special magic numbers hidden in it. Read it carefully and remember every "
    "special magic number: afterwards you will be asked about one of them.";
static const char niah_needle[] = "One of the special magic numbers for %s is: %s.";

static void seven_digits(draws *d, char *out, size_t size) {
  snprintf(out, size, "%07u", (unsigned)(1000000 + draw_below(d, 9000000)));
}

static void make_niah(task_text *t, up_eval_task_kind kind, draws *d, double asked_depth) {
  char keys[MAX_NEEDLES][48];
  char number[16];
  draw_key(d, keys[0], sizeof keys[0]);
  up_text_buffer_append_str(&t->head, niah_head);
  if (kind == UP_EVAL_NIAH_MULTIVALUE) {
    char values[MAX_NEEDLES][48];
    for (int v = 0; v < MULTIVALUE_VALUES; ++v) {
      do seven_digits(d, values[v], sizeof values[v]);
      while (in_list(values, v, values[v]));
      add_needle(t, format_alloc(niah_needle, keys[0], values[v]), v == 0 ? asked_depth : draw_unit(d));
      add_answer(t, values[v]);
    }
    up_text_buffer_printf(&t->question,
                          "Question: The text above gives several special magic numbers for %s. What are all of them?",
                          keys[0]);
    up_text_buffer_printf(&t->prefix, "The special magic numbers for %s given in the text are", keys[0]);
    return;
  }
  seven_digits(d, number, sizeof number);
  add_needle(t, format_alloc(niah_needle, keys[0], number), asked_depth);
  add_answer(t, number);
  if (kind == UP_EVAL_NIAH_MULTIKEY) {
    for (int k = 1; k <= MULTIKEY_DISTRACTORS; ++k) {
      do draw_key(d, keys[k], sizeof keys[k]);
      while (in_list(keys, k, keys[k]));
      seven_digits(d, number, sizeof number);
      add_needle(t, format_alloc(niah_needle, keys[k], number), draw_unit(d));
      t->distractor[t->n_needles - 1] = true;
    }
  }
  up_text_buffer_printf(&t->question, "Question: Which special magic number does the text above give for %s?",
                        keys[0]);
  up_text_buffer_printf(&t->prefix, "The special magic number for %s given in the text is", keys[0]);
}

static void make_kv(task_text *t, draws *d, double asked_depth) {
  char key[48], value[48];
  draw_uuid(d, key, sizeof key);
  draw_uuid(d, value, sizeof value);
  up_text_buffer_append_str(&t->head,
                            "Below is a JSON object whose keys and values are random identifiers. Find the value "
                            "that belongs to the key asked about after it.");
  add_needle(t, format_alloc("\"%s\": \"%s\"", key, value), asked_depth);
  add_answer(t, value);
  up_text_buffer_printf(&t->question, "Question: What is the value of the key \"%s\" in the JSON object above?", key);
  up_text_buffer_printf(&t->prefix, "The value of the key \"%s\" is", key);
  t->json = true;
}

static int compare_doubles(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* One chain: the value's assignment first, each hop after the one it copies. */
static void make_vt(task_text *t, draws *d, double asked_depth) {
  char names[VT_HOPS + 1][48];
  char value[16];
  snprintf(value, sizeof value, "%05u", (unsigned)(10000 + draw_below(d, 90000)));
  for (int v = 0; v <= VT_HOPS; ++v) {
    do draw_var_name(d, names[v]);
    while (in_list(names, v, names[v]));
  }
  /* The assignment of the value sits at the asked depth, the hops after it in order. */
  double depths[VT_HOPS];
  for (int h = 0; h < VT_HOPS; ++h) depths[h] = asked_depth + (1.0 - asked_depth) * draw_unit(d);
  qsort(depths, VT_HOPS, sizeof depths[0], compare_doubles);
  up_text_buffer_append_str(&t->head,
                            "Below is a long text with variable assignments hidden in it. A statement of the form "
                            "\"VAR name = number\" gives a variable a number, and one of the form \"VAR name = VAR "
                            "other\" gives it the value of another variable. Follow every assignment.");
  add_needle(t, format_alloc("VAR %s = %s.", names[0], value), asked_depth);
  add_answer(t, names[0]);
  for (int h = 1; h <= VT_HOPS; ++h) {
    add_needle(t, format_alloc("VAR %s = VAR %s.", names[h], names[h - 1]), depths[h - 1]);
    add_answer(t, names[h]);
  }
  up_text_buffer_printf(&t->question,
                        "Question: Which variables hold the value %s after all the assignments in the text above? "
                        "Name every one.",
                        value);
  up_text_buffer_printf(&t->prefix, "The variables that hold the value %s are:", value);
}

static void task_text_free(task_text *t) {
  up_text_buffer_free(&t->head);
  up_text_buffer_free(&t->question);
  up_text_buffer_free(&t->prefix);
  for (int32_t i = 0; i < t->n_needles; ++i) free(t->needles[i]);
  for (int32_t i = 0; i < t->n_answers; ++i) free(t->answers[i]);
}

/* ---- the generator: haystack units, their token counts, and fitting ---- */

struct up_eval_generator {
  const up_haystack_corpus *corpus;
  const up_chat_template *chat;
  up_token_counter count_tokens;
  void *count_ctx;
  int32_t *sentence_tokens; /* per corpus sentence; -1 until counted */
};

up_eval_generator *up_eval_generator_create(const up_haystack_corpus *corpus, const up_chat_template *chat,
                                            up_token_counter count_tokens, void *count_ctx) {
  UP_ASSERT(corpus && chat && count_tokens, "eval generator needs a corpus, a chat template and a token counter");
  up_eval_generator *gen = up_calloc_or_die(1, sizeof *gen, "eval generator");
  gen->corpus = corpus;
  gen->chat = chat;
  gen->count_tokens = count_tokens;
  gen->count_ctx = count_ctx;
  gen->sentence_tokens = up_malloc_or_die((size_t)corpus->n_sentences * sizeof *gen->sentence_tokens,
                                          "haystack sentence token counts");
  for (int32_t i = 0; i < corpus->n_sentences; ++i) gen->sentence_tokens[i] = -1;
  return gen;
}

void up_eval_generator_free(up_eval_generator *gen) {
  if (!gen) return;
  free(gen->sentence_tokens);
  free(gen);
}

static bool count_text(up_eval_generator *gen, const char *text, size_t len, int32_t *tokens, char *err,
                       size_t err_size) {
  *tokens = gen->count_tokens(gen->count_ctx, text, len);
  if (*tokens < 0) {
    snprintf(err, err_size, "eval tasks: the token counter failed (%d) on %zu bytes starting '%.40s'", *tokens, len,
             text);
    return false;
  }
  return true;
}

/* The context's haystack units so far (grown on demand) and their token counts. */
typedef struct unit_list {
  int32_t n, cap;
  int32_t *tokens;
  size_t *json_offset; /* json: where pair i starts in json_text */
  up_text_buffer json_text;
  int64_t *prefix_tokens; /* prefix_tokens[k]: tokens of units [0, k); n + 1 entries */
} unit_list;

static const char *unit_text(const up_eval_generator *gen, const task_text *t, const unit_list *u, int32_t i,
                             size_t *len) {
  if (t->json) {
    const size_t end = i + 1 < u->n ? u->json_offset[i + 1] : u->json_text.len;
    *len = end - u->json_offset[i];
    return u->json_text.data + u->json_offset[i];
  }
  const int32_t s = (int32_t)(((int64_t)t->first_sentence + i) % gen->corpus->n_sentences);
  *len = gen->corpus->lengths[s];
  return up_haystack_sentence(gen->corpus, s);
}

/* Make sure units [0, n) exist and are counted. */
static bool ensure_units(up_eval_generator *gen, const task_text *t, unit_list *u, int32_t n, char *err,
                         size_t err_size) {
  if (n > u->cap || u->cap == 0) {
    int32_t cap = u->cap ? u->cap : 256;
    while (cap < n) cap *= 2;
    u->tokens = realloc(u->tokens, (size_t)cap * sizeof *u->tokens);
    u->json_offset = realloc(u->json_offset, (size_t)cap * sizeof *u->json_offset);
    u->prefix_tokens = realloc(u->prefix_tokens, ((size_t)cap + 1) * sizeof *u->prefix_tokens);
    if (!u->tokens || !u->json_offset || !u->prefix_tokens) UP_FATAL("out of memory for %d eval context units", cap);
    u->cap = cap;
  }
  if (u->n == 0) u->prefix_tokens[0] = 0;
  while (u->n < n) {
    const int32_t i = u->n;
    int32_t tokens;
    if (t->json) {
      draws d = {.seed = t->seed, .stream = t->unit_stream, .next = 4 * (uint64_t)i}; /* a uuid takes 2 draws */
      char key[48], value[48];
      draw_uuid(&d, key, sizeof key);
      draw_uuid(&d, value, sizeof value);
      u->json_offset[i] = u->json_text.len;
      up_text_buffer_printf(&u->json_text, "\"%s\": \"%s\"", key, value);
      if (!count_text(gen, u->json_text.data + u->json_offset[i], u->json_text.len - u->json_offset[i], &tokens, err,
                      err_size))
        return false;
    } else {
      const int32_t s = (int32_t)(((int64_t)t->first_sentence + i) % gen->corpus->n_sentences);
      if (gen->sentence_tokens[s] < 0 &&
          !count_text(gen, up_haystack_sentence(gen->corpus, s), gen->corpus->lengths[s], &gen->sentence_tokens[s],
                      err, err_size))
        return false;
      tokens = gen->sentence_tokens[s];
    }
    u->tokens[i] = tokens;
    u->prefix_tokens[i + 1] = u->prefix_tokens[i] + tokens;
    u->n++;
  }
  return true;
}

static void unit_list_free(unit_list *u) {
  free(u->tokens);
  free(u->json_offset);
  free(u->prefix_tokens);
  up_text_buffer_free(&u->json_text);
}

/* A rendering of the task with its first n_units units. */
typedef struct built {
  char *user_text, *prompt;
  size_t context_offset, context_length;
  up_eval_needle needles[MAX_NEEDLES]; /* in context order */
  int32_t asked_position;              /* where the asked-for needle is in needles[] */
  int32_t n_units;
  int32_t prompt_tokens;
} built;

static void built_free(built *b) {
  free(b->user_text);
  free(b->prompt);
  b->user_text = b->prompt = NULL;
}

/* Needles in the order they go into the context: by asked depth, ties by index (vt's
 * chain order). */
static void needle_order(const task_text *t, int32_t order[MAX_NEEDLES]) {
  for (int32_t j = 0; j < t->n_needles; ++j) order[j] = j;
  for (int32_t a = 1; a < t->n_needles; ++a)
    for (int32_t b = a; b > 0 && t->needle_depth[order[b]] < t->needle_depth[order[b - 1]]; --b) {
      const int32_t swap = order[b];
      order[b] = order[b - 1];
      order[b - 1] = swap;
    }
}

static void build(const up_eval_generator *gen, const task_text *t, const unit_list *u,
                  const int32_t needle_tokens[MAX_NEEDLES], int32_t n_units, built *out) {
  int32_t order[MAX_NEEDLES];
  needle_order(t, order);
  const int64_t unit_total = u->prefix_tokens[n_units];
  int64_t total = unit_total;
  for (int32_t j = 0; j < t->n_needles; ++j) total += needle_tokens[j];
  const char *separator = t->json ? ", " : " ";

  up_text_buffer text = {0};
  up_text_buffer_append(&text, t->head.data, t->head.len);
  up_text_buffer_append_str(&text, "\n\n");
  out->context_offset = text.len;
  if (t->json) up_text_buffer_append_str(&text, "{");
  bool first = true;
  int32_t next_needle = 0;
  int64_t tokens_before = 0;
  for (int32_t k = 0; k <= n_units; ++k) {
    /* A needle goes before the first unit at or past its depth's share of the units. */
    while (next_needle < t->n_needles &&
           (k == n_units || (double)u->prefix_tokens[k] >= t->needle_depth[order[next_needle]] * (double)unit_total)) {
      const int32_t j = order[next_needle];
      if (!first) up_text_buffer_append_str(&text, separator);
      first = false;
      out->needles[next_needle] = (up_eval_needle){
          .offset = text.len,
          .length = strlen(t->needles[j]),
          .depth = total > 0 ? (double)tokens_before / (double)total : 0.0,
          .carries_answer = !t->distractor[j],
      };
      if (j == 0) out->asked_position = next_needle;
      up_text_buffer_append_str(&text, t->needles[j]);
      tokens_before += needle_tokens[j];
      next_needle++;
    }
    if (k == n_units) break;
    size_t len;
    const char *unit = unit_text(gen, t, u, k, &len);
    if (!first) up_text_buffer_append_str(&text, separator);
    first = false;
    up_text_buffer_append(&text, unit, len);
    tokens_before += u->tokens[k];
  }
  if (t->json) up_text_buffer_append_str(&text, "}");
  out->context_length = text.len - out->context_offset;
  up_text_buffer_append_str(&text, "\n\n");
  up_text_buffer_append(&text, t->question.data, t->question.len);
  out->user_text = up_text_buffer_take(&text);
  out->prompt = up_chat_render_user_turn(gen->chat, out->user_text, t->prefix.data);
  out->n_units = n_units;
}

/* The largest n whose units [0, n) add up to at most budget tokens, capped at limit;
 * counts units as it goes. */
static bool units_within(up_eval_generator *gen, const task_text *t, unit_list *u, int64_t budget, int32_t limit,
                         int32_t *n, char *err, size_t err_size) {
  int32_t k = 0;
  int64_t used = 0;
  while (k < limit) {
    if (k >= u->n && !ensure_units(gen, t, u, k + 1, err, err_size)) return false;
    const int64_t step = u->tokens[k] > 0 ? u->tokens[k] : 1; /* a 0-token unit still must end the loop */
    if (used + step > budget) break;
    used += step;
    k++;
  }
  *n = k;
  return true;
}

/* The fixed text's tokens: the prompt with no needle and no unit. */
static bool count_fixed(up_eval_generator *gen, const task_text *t, const unit_list *units, int32_t *fixed,
                        char *err, size_t err_size) {
  task_text bare = *t;
  bare.n_needles = 0;
  const int32_t no_needles[MAX_NEEDLES] = {0};
  built empty = {0};
  build(gen, &bare, units, no_needles, 0, &empty);
  const bool ok = count_text(gen, empty.prompt, strlen(empty.prompt), fixed, err, err_size);
  built_free(&empty);
  return ok;
}

/* Fit the context to the target. The first unit count comes from the per-piece counts;
 * then each exact count of the whole prompt gives the rate at which the context's exact
 * tokens grow with its per-piece sum, and the next count assumes that rate (a secant
 * step), kept strictly between the largest count known to fit and the smallest known
 * not to; late rounds bisect that interval instead. Stops when no further unit fits.
 * best gets the largest rendering that fits. */
static bool fit(up_eval_generator *gen, const task_text *t, int32_t target, const char *task, built *best,
                char *err, size_t err_size) {
  enum { SECANT_ROUNDS = 6 };
  unit_list units = {0};
  int32_t needle_tokens[MAX_NEEDLES] = {0};
  built trial = {0};
  bool ok = false;
  int32_t fixed;
  if (!ensure_units(gen, t, &units, 0, err, err_size) || !count_fixed(gen, t, &units, &fixed, err, err_size))
    goto done;
  int64_t base = fixed; /* the prompt without units, by the pieces' counts */
  for (int32_t j = 0; j < t->n_needles; ++j) {
    if (!count_text(gen, t->needles[j], strlen(t->needles[j]), &needle_tokens[j], err, err_size)) goto done;
    base += needle_tokens[j];
  }
  if (base > target) {
    snprintf(err, err_size,
             "eval task %s: a target of %d tokens cannot hold the task's fixed text and needles (%lld tokens)", task,
             target, (long long)base);
    goto done;
  }
  int32_t n;
  if (!units_within(gen, t, &units, target - base, INT32_MAX, &n, err, err_size)) goto done;
  int32_t fits = -1, fails = INT32_MAX; /* unit counts known to fit and not to */
  for (int round = 0; round < MAX_FIT_ROUNDS && fits + 1 < fails; ++round) {
    build(gen, t, &units, needle_tokens, n, &trial);
    if (!count_text(gen, trial.prompt, strlen(trial.prompt), &trial.prompt_tokens, err, err_size)) goto done;
    const int64_t exact = trial.prompt_tokens;
    if (exact <= target) {
      fits = n;
      built_free(best);
      *best = trial;
      trial = (built){0};
    } else {
      fails = n;
      built_free(&trial);
    }
    const int64_t pieces = units.prefix_tokens[n];
    const double rate = pieces > 0 && exact > base ? (double)(exact - base) / (double)pieces : 1.0;
    int32_t next;
    if (!units_within(gen, t, &units, (int64_t)floor((double)(target - base) / rate), fails - 1, &next, err,
                      err_size))
      goto done;
    if (round >= SECANT_ROUNDS && fails != INT32_MAX) next = fits + (fails - fits) / 2;
    if (next <= fits) {
      if (fits >= 0) break;
      next = 0; /* nothing fit yet: try the bare prompt */
    }
    n = next;
  }
  if (fits < 0) {
    snprintf(err, err_size,
             "eval task %s: a target of %d tokens cannot hold the task's fixed text and needles once counted together",
             task, target);
    goto done;
  }
  ok = true;
done:
  built_free(&trial);
  unit_list_free(&units);
  return ok;
}

bool up_eval_generate(up_eval_generator *gen, const up_eval_request *req, up_eval_sample *sample, char *err,
                      size_t err_size) {
  memset(sample, 0, sizeof *sample);
  if ((unsigned)req->kind >= UP_EVAL_TASK_COUNT) {
    snprintf(err, err_size, "eval task kind %d out of range", (int)req->kind);
    return false;
  }
  const char *task = task_names[req->kind];
  if (!(req->depth < 0.0) && !(req->depth <= 1.0)) {
    snprintf(err, err_size, "eval task %s: depth %g is not in [0, 1] (negative: drawn from the seed)", task,
             req->depth);
    return false;
  }
  if (req->target_tokens <= 0) {
    snprintf(err, err_size, "eval task %s: target of %d tokens must be positive", task, req->target_tokens);
    return false;
  }
  /* One stream per (kind, sample); the JSON pairs draw from a stream derived from it. */
  draws d = {.seed = req->seed, .stream = ((uint64_t)(req->kind + 1) << 56) ^ req->sample_index, .next = 0};
  task_text t = {.seed = req->seed, .unit_stream = up_rng_mix(d.stream)};
  t.first_sentence = (int32_t)draw_below(&d, (uint64_t)gen->corpus->n_sentences);
  const double asked_depth = req->depth < 0.0 ? draw_unit(&d) : req->depth;
  switch (req->kind) {
    case UP_EVAL_NIAH_SINGLE:
    case UP_EVAL_NIAH_MULTIKEY:
    case UP_EVAL_NIAH_MULTIVALUE: make_niah(&t, req->kind, &d, asked_depth); break;
    case UP_EVAL_KV_RETRIEVAL: make_kv(&t, &d, asked_depth); break;
    case UP_EVAL_VT: make_vt(&t, &d, asked_depth); break;
    case UP_EVAL_TASK_COUNT: break;
  }
  built result = {0};
  if (!fit(gen, &t, req->target_tokens, task, &result, err, err_size)) {
    task_text_free(&t);
    return false;
  }
  sample->kind = req->kind;
  sample->user_text = result.user_text;
  sample->prompt = result.prompt;
  sample->answer_prefix = up_text_buffer_take(&t.prefix);
  sample->context_offset = result.context_offset;
  sample->context_length = result.context_length;
  sample->target_tokens = req->target_tokens;
  sample->prompt_tokens = result.prompt_tokens;
  sample->n_answers = t.n_answers;
  sample->answers = up_malloc_or_die((size_t)t.n_answers * sizeof *sample->answers, "eval answers");
  for (int32_t i = 0; i < t.n_answers; ++i) sample->answers[i] = t.answers[i];
  t.n_answers = 0; /* handed over */
  sample->n_needles = t.n_needles;
  sample->needles = up_malloc_or_die((size_t)t.n_needles * sizeof *sample->needles, "eval needles");
  memcpy(sample->needles, result.needles, (size_t)t.n_needles * sizeof *sample->needles);
  /* Every chat format writes the user text verbatim once, after fixed markers. */
  const char *user_at = strstr(sample->prompt, sample->user_text);
  UP_ASSERT(user_at, "eval task %s: the chat rendering does not hold the user text verbatim", task);
  for (int32_t i = 0; i < sample->n_needles; ++i)
    sample->needles[i].prompt_offset = (size_t)(user_at - sample->prompt) + sample->needles[i].offset;
  sample->depth = result.needles[result.asked_position].depth;
  task_text_free(&t);
  return true;
}

void up_eval_sample_free(up_eval_sample *sample) {
  free(sample->user_text);
  free(sample->answer_prefix);
  free(sample->prompt);
  for (int32_t i = 0; i < sample->n_answers; ++i) free(sample->answers[i]);
  free(sample->answers);
  free(sample->needles);
  memset(sample, 0, sizeof *sample);
}
