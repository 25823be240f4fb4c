/* workload_plan.c — building the run's workload from the options and sizing a rank's
 * share of it (see workload_plan.h). */
#include "launcher/sweep/workload_plan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fatal.h"
#include "engine/checkpoint/checkpoint.h"
#include "engine/tokenizer/tokenizer.h"
#include "launcher/run_setup.h"

static const char *base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

/* ---- prompts -------------------------------------------------------------------- */

typedef struct plan_tokenizer {
  up_tokenizer *tok;
  up_prompt_tokenizer as_prompts;
  char name[UP_PATH_MAX + 32];
} plan_tokenizer;

static int32_t encode_text(void *ctx, const char *text, size_t len, bool parse_special, int32_t *out, int32_t cap,
                           char *err, size_t err_size) {
  return up_tokenizer_encode(ctx, text, len, false, parse_special, out, cap, err, err_size);
}

/* The checkpoint's tokenizer. 1: loaded; 0: the model has none (why says so: a preset,
 * a GGUF without tokenizer metadata, a Hugging Face directory); -1: error in err. */
static int load_tokenizer(const up_options *opt, plan_tokenizer *pt, char *err, size_t err_size) {
  if (!up_run_model_is_checkpoint(opt)) {
    snprintf(err, err_size, "the model is a preset, with random weights and no vocabulary");
    return 0;
  }
  up_checkpoint *ck = up_checkpoint_open(opt->model, err, err_size);
  if (!ck) return -1;
  const up_gguf *g = up_checkpoint_gguf(ck);
  int rc = 1;
  char tokenizer_json[4200];
  snprintf(tokenizer_json, sizeof tokenizer_json, "%s/tokenizer.json", opt->model);
  struct stat st;
  if (g && !up_gguf_has_key(g, "tokenizer.ggml.model")) {
    snprintf(err, err_size, "%.300s carries no tokenizer (no tokenizer.ggml.model)", opt->model);
    rc = 0;
  } else if (!g && stat(tokenizer_json, &st) != 0) {
    snprintf(err, err_size, "%.300s has no tokenizer.json", opt->model);
    rc = 0;
  } else if (!(pt->tok = up_tokenizer_from_checkpoint(ck, err, err_size))) {
    rc = -1;
  }
  up_checkpoint_close(ck);
  if (rc != 1) return rc;
  snprintf(pt->name, sizeof pt->name, "the tokenizer of %s", base_name(opt->model));
  const int32_t bos = up_tokenizer_bos(pt->tok);
  pt->as_prompts = (up_prompt_tokenizer){.encode = encode_text, .ctx = pt->tok,
                                         .bos = up_tokenizer_add_bos(pt->tok) && bos >= 0 ? bos : -1,
                                         .name = pt->name};
  return 1;
}

static int plan_prompts(up_workload_plan *plan, const up_options *opt, const up_model_config *cfg, char *err,
                        size_t err_size) {
  up_prompt_choice choice = opt->prompt_source;
  const bool needs_tokenizer = choice.kind == UP_PROMPTS_DEFAULT || choice.kind == UP_PROMPTS_TEXT ||
                               (choice.kind == UP_PROMPTS_FILE && up_run_model_is_checkpoint(opt));
  plan_tokenizer pt = {0};
  char why[640] = "";
  const int have = needs_tokenizer ? load_tokenizer(opt, &pt, why, sizeof why) : 0;
  if (have < 0) {
    snprintf(err, err_size, "--prompt-source: %s", why);
    return -1;
  }
  if (choice.kind == UP_PROMPTS_DEFAULT) choice.kind = have ? UP_PROMPTS_TEXT : UP_PROMPTS_RANDOM;
  if (choice.kind == UP_PROMPTS_TEXT && !have) {
    snprintf(err, err_size, "--prompt-source text needs the checkpoint's tokenizer, but %s (use random, or token ids "
             "in a FILE.jsonl)", why);
    return -1;
  }
  char sub[1024];
  const bool ok = up_prompt_source_open(&plan->prompts, &choice, have ? &pt.as_prompts : NULL, opt->seed, cfg->vocab,
                                        sub, sizeof sub);
  if (pt.tok) up_tokenizer_free(pt.tok);
  if (!ok) {
    char spelled[UP_PROMPT_CHOICE_MAX + 16];
    up_prompt_choice_format(&choice, spelled, sizeof spelled);
    snprintf(err, err_size, "--prompt-source %.600s: %s", spelled, sub);
    return -1;
  }
  const up_prompt_source *src = &plan->prompts;
  if (src->kind == UP_PROMPTS_TEXT)
    snprintf(plan->prompt_note, sizeof plan->prompt_note, "%.400s: %lld tokens of prose by %.300s, read cyclically from a "
             "per-request offset%s", src->spec, (long long)src->text->n_tokens, pt.name,
             src->text->bos >= 0 ? ", BOS first" : "");
  else if (src->kind == UP_PROMPTS_FILE)
    snprintf(plan->prompt_note, sizeof plan->prompt_note, "%.400s: %d prompts, the longest %d tokens", src->spec,
             (int)src->file->n_prompts, (int)src->file->longest);
  else
    snprintf(plan->prompt_note, sizeof plan->prompt_note, "random token ids from (seed, request id)%s%s%s",
             opt->prompt_source.kind == UP_PROMPTS_DEFAULT ? " (the default: " : "",
             opt->prompt_source.kind == UP_PROMPTS_DEFAULT ? why : "",
             opt->prompt_source.kind == UP_PROMPTS_DEFAULT ? ")" : "");
  return 0;
}

/* ---- timed workloads ------------------------------------------------------------- */

static int plan_open_loop(up_workload_plan *plan, const up_options *opt, const up_model_config *cfg) {
  const up_open_loop_params p = {.request_rate = opt->request_rate, .burstiness = opt->burstiness,
                                 .max_requests = opt->requests, .duration_s = opt->duration_s,
                                 .prompt_len = opt->prompt_len, .output_len = opt->output_len_dist, .seed = opt->seed};
  plan->schedule = up_open_loop_schedule(&p, &plan->n_requests);
  /* A prompt file's prompts keep their own lengths. */
  const up_prompt_file *file = plan->prompts.file;
  for (int32_t i = 0; file && i < plan->n_requests; ++i)
    plan->schedule[i].prompt_len = up_prompt_file_length(file, plan->schedule[i].id);
  up_timed_requests_fit(plan->schedule, plan->n_requests, cfg->max_context, &plan->stats);
  char prompt[64], output[64];
  if (file) snprintf(prompt, sizeof prompt, "from-file");
  else up_length_dist_format(&opt->prompt_len, prompt, sizeof prompt);
  up_length_dist_format(&opt->output_len_dist, output, sizeof output);
  snprintf(plan->description, sizeof plan->description,
           "open-loop rate=%g burstiness=%g requests=%d duration=%g prompt=%s output=%s", opt->request_rate,
           opt->burstiness, (int)plan->n_requests, opt->duration_s, prompt, output);
  return 0;
}

static int plan_trace(up_workload_plan *plan, const up_options *opt, const up_model_config *cfg, char *err,
                      size_t err_size) {
  plan->trace = up_trace_read(opt->trace_path, opt->trace_format, opt->trace_lenient, err, err_size);
  if (!plan->trace) return -1;
  const up_trace_replay_params p = {.speedup = opt->trace_speedup, .window_start_s = opt->trace_window_start_s,
                                    .window_duration_s = opt->trace_window_s, .limit = opt->trace_limit,
                                    .output_len = opt->output_len_dist_given ? &opt->output_len_dist : NULL,
                                    .max_context = cfg->max_context, .vocab = cfg->vocab, .seed = opt->seed,
                                    .prompts = &plan->prompts};
  plan->replay = up_trace_replay_create(plan->trace, &p, err, err_size);
  if (!plan->replay) return -1;
  plan->stats = plan->replay->stats;
  int used = snprintf(plan->description, sizeof plan->description, "trace:%s format=%s speedup=%g",
                      base_name(opt->trace_path), up_trace_format_name(plan->trace->format), opt->trace_speedup);
  const size_t size = sizeof plan->description;
  if (opt->trace_limit > 0 && used >= 0 && (size_t)used < size)
    used += snprintf(plan->description + used, size - (size_t)used, " limit=%d", (int)opt->trace_limit);
  if (opt->trace_window_s > 0.0 && used >= 0 && (size_t)used < size)
    used += snprintf(plan->description + used, size - (size_t)used, " window=%g:%g", opt->trace_window_start_s,
                     opt->trace_window_s);
  if (opt->output_len_dist_given && used >= 0 && (size_t)used < size) {
    char output[64];
    up_length_dist_format(&opt->output_len_dist, output, sizeof output);
    snprintf(plan->description + used, size - (size_t)used, " output=%s", output);
  }
  return 0;
}

int up_workload_plan_init(up_workload_plan *plan, const up_options *opt, const up_model_config *cfg, char *err,
                          size_t err_size) {
  memset(plan, 0, sizeof *plan);
  int rc = plan_prompts(plan, opt, cfg, err, err_size);
  if (rc != 0) {
    up_workload_plan_free(plan);
    return rc;
  }
  if (opt->trace_path[0]) {
    plan->kind = UP_WORKLOAD_TRACE;
    rc = plan_trace(plan, opt, cfg, err, err_size);
    if (rc == 0) {
      plan->requests = plan->replay->requests;
      plan->n_requests = plan->replay->n_requests;
    }
  } else if (opt->request_rate > 0.0) {
    plan->kind = UP_WORKLOAD_OPEN_LOOP;
    rc = plan_open_loop(plan, opt, cfg);
    plan->requests = plan->schedule;
  } else {
    plan->kind = UP_WORKLOAD_CLOSED_LOOP;
    snprintf(plan->description, sizeof plan->description, "closed-loop");
  }
  if (rc != 0) up_workload_plan_free(plan);
  return rc;
}

void up_workload_plan_free(up_workload_plan *plan) {
  up_trace_replay_destroy(plan->replay);
  up_trace_free(plan->trace);
  free(plan->schedule);
  up_prompt_source_close(&plan->prompts);
  memset(plan, 0, sizeof *plan);
}

static int compare_desc_i64(const void *a, const void *b) {
  const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x < y) - (x > y);
}

/* Sum of the k largest values (sorts values in place). */
static int64_t sum_largest(int64_t *values, int32_t n, int32_t k) {
  qsort(values, (size_t)n, sizeof *values, compare_desc_i64);
  int64_t sum = 0;
  for (int32_t i = 0; i < n && i < k; ++i) sum += values[i];
  return sum;
}

void up_workload_plan_rank_sizing(const up_workload_plan *plan, int32_t rank, int32_t world, int32_t max_seqs,
                                  int32_t kv_block_tokens, up_rank_sizing *sizing) {
  UP_ASSERT(plan->kind != UP_WORKLOAD_CLOSED_LOOP, "rank sizing is for timed workloads");
  memset(sizing, 0, sizeof *sizing);
  const size_t cap = (size_t)(plan->n_requests > 0 ? plan->n_requests : 1);
  int64_t *blocks = up_malloc_or_die(sizeof *blocks * cap, "request blocks");
  int64_t *prompts = up_malloc_or_die(sizeof *prompts * cap, "request prompts");
  for (int32_t i = 0; i < plan->n_requests; ++i) {
    const up_timed_request *r = &plan->requests[i];
    if (r->id % world != rank) continue;
    const int64_t entries = (int64_t)r->prompt_len + r->output_len;
    blocks[sizing->n_requests] = (entries + kv_block_tokens - 1) / kv_block_tokens;
    prompts[sizing->n_requests] = r->prompt_len;
    sizing->n_requests++;
    if (entries > sizing->max_seq_entries) sizing->max_seq_entries = entries;
    if (r->prompt_len > sizing->max_prompt_len) sizing->max_prompt_len = r->prompt_len;
  }
  sizing->kv_blocks_per_layer = sum_largest(blocks, sizing->n_requests, max_seqs);
  sizing->max_step_rows = sum_largest(prompts, sizing->n_requests, max_seqs);
  free(blocks);
  free(prompts);
}

up_workload *up_workload_plan_source(const up_workload_plan *plan, int32_t rank, int32_t world,
                                     int32_t max_concurrency, int32_t n_layers) {
  if (plan->kind == UP_WORKLOAD_TRACE)
    return up_trace_replay_source(plan->replay, rank, world, max_concurrency, n_layers);
  UP_ASSERT(plan->kind == UP_WORKLOAD_OPEN_LOOP, "no timed source for the closed loop");
  const up_timed_source_params p = {.requests = plan->requests, .n_requests = plan->n_requests, .rank = rank,
                                    .world = world, .max_concurrency = max_concurrency, .n_layers = n_layers,
                                    .fill = up_prompt_source_fill, .fill_ctx = &plan->prompts};
  return up_workload_timed_create(&p);
}
