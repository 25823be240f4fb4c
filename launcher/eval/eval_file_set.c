/* eval_file_set.c — --eval-file samples as tokenized, bucketed prompts (see
 * eval_file_set.h). Owns no scoring and no generation: eval_mode.c does both for
 * generated and file prompts alike. */
#include "launcher/eval/eval_file_set.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "launcher/eval/eval_record.h"

_Static_assert(UP_EVAL_FILE_TASK_MAX < UP_EVAL_TASK_MAX, "an eval file's task name must fit the records' task field");

/* The smallest context that holds need tokens, or -1. */
static int32_t bucket_for(const up_eval_file_setup *setup, int32_t need) {
  int32_t best = -1;
  for (int32_t c = 0; c < setup->n_ctx; ++c)
    if (setup->ctx[c] >= need && (best < 0 || setup->ctx[c] < best)) best = setup->ctx[c];
  return best;
}

/* Render, tokenize and place one sample; false with a message when the tokenizer fails. */
static bool prepare(const up_eval_file_setup *setup, const up_eval_file *file, const up_eval_file_sample *s,
                    up_eval_file_prompt *p, char *err, size_t err_size) {
  memset(p, 0, sizeof *p);
  p->task = s->task;
  p->source_file = file->path;
  p->source_line = s->line > INT32_MAX ? INT32_MAX : (int32_t)s->line;
  p->exact = file->format == UP_EVAL_FILE_LONGBENCH;
  up_eval_sample *x = &p->sample;
  x->depth = NAN;
  x->prompt = up_chat_render_user_turn(setup->chat, s->user_text, s->answer_prefix);
  const size_t len = strlen(x->prompt);
  char why[256];
  const int32_t n = up_tokenizer_encode(setup->tok, x->prompt, len, setup->add_bos, true, NULL, 0, why, sizeof why);
  if (n < 1) {
    up_error(err, err_size, "eval file %s:%lld: cannot tokenize the prompt: %s", file->path, (long long)s->line,
             n < 0 ? why : "it encodes to no token");
    return false;
  }
  p->tokens = up_malloc_or_die(sizeof(int32_t) * (size_t)n, "eval file prompt tokens");
  p->n_tokens = up_tokenizer_encode(setup->tok, x->prompt, len, setup->add_bos, true, p->tokens, n, why, sizeof why);
  if (p->n_tokens != n) {
    up_error(err, err_size, "eval file %s:%lld: the prompt encodes to %d tokens, then to %d", file->path,
             (long long)s->line, (int)n, (int)p->n_tokens);
    return false;
  }
  x->prompt_tokens = x->target_tokens = n;
  x->user_text = strdup(s->user_text);
  x->answer_prefix = strdup(s->answer_prefix);
  x->answers = up_calloc_or_die((size_t)s->n_answers, sizeof *x->answers, "eval file answers");
  if (!x->user_text || !x->answer_prefix) UP_FATAL("out of host memory for eval file prompts");
  for (int32_t a = 0; a < s->n_answers; ++a) {
    x->answers[a] = strdup(s->answers[a]);
    if (!x->answers[a]) UP_FATAL("out of host memory for eval file answers");
    x->n_answers = a + 1;
  }
  /* The budget holds the prompt and the answer tokens. */
  const int64_t need = (int64_t)n + setup->max_new;
  if (need > setup->model_context) p->ctx = -1;
  else if (setup->n_ctx == 0) p->ctx = 0;
  else p->ctx = bucket_for(setup, (int32_t)need);
  return true;
}

/* Each kept sample's index within its task and bucket, and the longest kept prompt. */
static void number_and_count(up_eval_file_set *set) {
  for (int32_t i = 0; i < set->n_prompts; ++i) {
    up_eval_file_prompt *p = &set->prompts[i];
    if (p->ctx < 0) continue;
    if (p->n_tokens > set->longest_kept) set->longest_kept = p->n_tokens;
    for (int32_t j = 0; j < i; ++j)
      if (set->prompts[j].ctx == p->ctx && strcmp(set->prompts[j].task, p->task) == 0) p->index += 1;
  }
}

up_eval_file_set *up_eval_file_set_open(const char *list, bool lenient, const up_eval_file_setup *setup, char *err,
                                        size_t err_size) {
  up_eval_file_set *set = up_calloc_or_die(1, sizeof *set, "eval file set");
  const size_t list_len = strlen(list);
  char *paths = up_malloc_or_die(list_len + 1, "eval file list");
  memcpy(paths, list, list_len + 1);
  bool ok = true;
  for (char *save = NULL, *path = strtok_r(paths, ",", &save); path && ok; path = strtok_r(NULL, ",", &save)) {
    if (set->n_files == UP_EVAL_MAX_FILES) {
      up_error(err, err_size, "--eval-file: more than %d files", UP_EVAL_MAX_FILES);
      ok = false;
      break;
    }
    up_eval_file *file = up_eval_file_read(path, lenient, err, err_size);
    if (!file) {
      ok = false;
      break;
    }
    set->files[set->n_files++] = file;
    set->lines_skipped += file->lines_skipped;
    set->prompts = realloc(set->prompts, sizeof *set->prompts * (size_t)(set->n_prompts + file->n_samples));
    if (!set->prompts) UP_FATAL("out of host memory for eval file prompts");
    for (int32_t s = 0; s < file->n_samples && ok; ++s) {
      ok = prepare(setup, file, &file->samples[s], &set->prompts[set->n_prompts], err, err_size);
      set->n_prompts += 1; /* counted even when it failed, so that free releases it */
      const int32_t ctx = set->prompts[set->n_prompts - 1].ctx;
      if (ok && ctx < 0) {
        const int64_t need = (int64_t)set->prompts[set->n_prompts - 1].n_tokens + setup->max_new;
        if (need > setup->model_context) set->over_model += 1;
        else set->over_buckets += 1;
      }
    }
  }
  free(paths);
  if (ok && set->n_files == 0) {
    up_error(err, err_size, "--eval-file: no file named");
    ok = false;
  }
  if (ok) number_and_count(set);
  if (!ok) {
    up_eval_file_set_free(set);
    return NULL;
  }
  return set;
}

int32_t up_eval_file_set_tasks(const up_eval_file_set *set, int32_t ctx, const char **names, int32_t cap) {
  int32_t n = 0;
  for (int32_t i = 0; i < set->n_prompts; ++i) {
    const up_eval_file_prompt *p = &set->prompts[i];
    if (p->ctx != ctx) continue;
    bool seen = false;
    for (int32_t k = 0; k < n && !seen; ++k) seen = strcmp(names[k], p->task) == 0;
    if (!seen && n < cap) names[n++] = p->task;
  }
  return n;
}

void up_eval_file_set_describe(const up_eval_file_set *set, char *out, size_t out_size) {
  const int32_t kept = set->n_prompts - set->over_buckets - set->over_model;
  snprintf(out, out_size,
           "eval files: %d sample(s) from %d file(s), %d run; skipped: %lld malformed line(s), %d longer than every "
           "--ctx bucket (prompt + --eval-max-new), %d longer than the model's context",
           (int)set->n_prompts, (int)set->n_files, (int)kept, (long long)set->lines_skipped, (int)set->over_buckets,
           (int)set->over_model);
}

void up_eval_file_set_free(up_eval_file_set *set) {
  if (!set) return;
  for (int32_t i = 0; i < set->n_prompts; ++i) {
    up_eval_sample_free(&set->prompts[i].sample);
    free(set->prompts[i].tokens);
  }
  free(set->prompts);
  for (int32_t f = 0; f < set->n_files; ++f) up_eval_file_free(set->files[f]);
  free(set);
}
