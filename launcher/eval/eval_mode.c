/* eval_mode.c — uniprefill-bench --eval TASKS: the fidelity evaluation of every method
 * on a trained checkpoint. Samples (workloads/eval/eval_tasks.h) are drawn from the seed
 * for each context and task, rendered in the model's chat template and tokenized by
 * the checkpoint's own tokenizer; every method then prefills and greedily decodes them
 * (engine/serve/generation.h), dense first, so each method's answer position can be compared
 * with dense's (top-1, KL). Samples are spread over ranks; rank 0 gathers each
 * context's rows, writes them to the run file, flushes, and prints the summary.
 * --eval-file samples (eval_file_set.h) join each context's prompts and take the same
 * path, scored by their file's rule. */
#include "launcher/eval/eval_mode.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/checkpoint/checkpoint.h"
#include "engine/serve/generation.h"
#include "engine/model/model.h"
#include "engine/tokenizer/tokenizer.h"
#include "core/clock.h"
#include "core/fatal.h"
#include "launcher/eval/eval_file_set.h"
#include "launcher/eval/eval_diagnostics.h"
#include "launcher/eval/eval_record.h"
#include "launcher/eval/eval_report.h"
#include "launcher/eval/fidelity_metrics.h"
#include "launcher/mpi_check.h"
#include "launcher/harness.h"
#include "launcher/run_setup.h"
#include "workloads/eval/eval_score.h"
#include "workloads/eval/eval_tasks.h"

/* The tokenizer as the task generator's counter: prompts are counted exactly as they
 * will be encoded. */
typedef struct prompt_encoder {
  const up_tokenizer *tok;
  bool add_bos;
} prompt_encoder;

static int32_t count_prompt_tokens(void *ctx, const char *text, size_t len) {
  const prompt_encoder *enc = ctx;
  char err[256];
  return up_tokenizer_encode(enc->tok, text, len, enc->add_bos, true, NULL, 0, err, sizeof err);
}

/* One prompt to evaluate: its sample (kept for the answers) and token ids. */
typedef struct eval_prompt {
  up_eval_sample sample;
  int32_t ctx;
  int32_t sample_index;
  int32_t *tokens;
  int32_t n_tokens;
  const up_eval_file_prompt *from_file; /* an --eval-file sample (which owns sample and tokens); NULL: generated */
  up_token_span needle_spans[UP_EVAL_MAX_NEEDLES]; /* the answer's needles in tokens (eval_diagnostics.h) */
  int32_t n_needle_spans;        /* < 1: none known */
} eval_prompt;

static double now_ms(void) { return 1e3 * up_clock_monotonic_s(); }

static void copy_joined(char *dst, size_t size, char *const *parts, int32_t n) {
  size_t used = 0;
  dst[0] = '\0';
  for (int32_t i = 0; i < n && used + 1 < size; ++i)
    used += (size_t)snprintf(dst + used, size - used, "%s%s", i ? "|" : "", parts[i]);
}

/* Everything --eval needs besides the model weights; false with a message. */
typedef struct eval_inputs {
  up_checkpoint *ck;
  up_tokenizer *tok;
  up_chat_template chat;
  up_haystack_corpus *corpus;
  uint32_t task_mask;
  int32_t ctx[UP_MAX_SWEEP];
  int32_t n_ctx;
  up_method methods[UP_MAX_SWEEP + 1];
  int32_t n_methods;
  prompt_encoder enc;          /* how prompts are counted and encoded: one rule for both */
  up_eval_file_set *files;     /* --eval-file samples; NULL when none */
  uint8_t *content_tokens;     /* [vocab] tokens that carry content (fidelity_metrics.h) */
} eval_inputs;

/* Distinct --eval-file task names one context may hold (a table row each). */
#define UP_EVAL_MAX_TASK_NAMES 256

/* The --eval-file samples, bucketed into the contexts; without contexts (--eval-file
 * alone and no --ctx) one group, ctx 0, of samples at their own lengths. */
static bool open_eval_files(const up_options *opt, eval_inputs *in, const up_model_config *cfg, char *err,
                            size_t err_size) {
  const up_eval_file_setup setup = {.tok = in->tok, .add_bos = in->enc.add_bos, .chat = &in->chat, .ctx = in->ctx,
                                    .n_ctx = in->n_ctx, .max_new = opt->eval_max_new,
                                    .model_context = cfg->max_context};
  in->files = up_eval_file_set_open(opt->eval_files, opt->eval_lenient, &setup, err, err_size);
  if (!in->files) return false;
  /* A file task named like a generated one would share its rows and sample indices. */
  for (int32_t i = 0; i < in->files->n_prompts; ++i) {
    const up_eval_file_prompt *p = &in->files->prompts[i];
    for (int32_t k = 0; k < UP_EVAL_TASK_COUNT; ++k)
      if ((in->task_mask & (1u << k)) && strcmp(p->task, up_eval_task_name((up_eval_task_kind)k)) == 0)
        return up_error(err, err_size, "--eval-file %s:%d: its task '%s' is also a generated --eval task; rename the "
                        "file (or its \"dataset\") or leave the task out of --eval", p->source_file,
                        (int)p->source_line, p->task);
  }
  if (in->n_ctx == 0) in->ctx[in->n_ctx++] = 0;
  for (int32_t c = 0; c < in->n_ctx; ++c) {
    const char *names[UP_EVAL_MAX_TASK_NAMES + 1];
    if (up_eval_file_set_tasks(in->files, in->ctx[c], names, UP_EVAL_MAX_TASK_NAMES + 1) > UP_EVAL_MAX_TASK_NAMES)
      return up_error(err, err_size, "--eval-file: more than %d distinct tasks (\"dataset\" values or file names) in "
                      "one context", UP_EVAL_MAX_TASK_NAMES);
  }
  if (in->files->longest_kept == 0 && in->task_mask == 0) {
    char what[512];
    up_eval_file_set_describe(in->files, what, sizeof what);
    up_error(err, err_size, "--eval-file: no sample fits (%s)", what);
    return false;
  }
  return true;
}

static bool open_inputs(const up_options *opt, up_backend *be, eval_inputs *in, char *err, size_t err_size) {
  if (!up_run_model_is_checkpoint(opt)) {
    snprintf(err, err_size, "--eval needs --model PATH: a trained checkpoint with a tokenizer (a .gguf file or a Hugging Face "
             "directory with tokenizer.json); "
             "presets have random weights, so there is no answer to check");
    return false;
  }
  in->ck = up_checkpoint_open(opt->model, err, err_size);
  if (!in->ck) return false;
  in->tok = up_tokenizer_from_checkpoint(in->ck, err, err_size);
  if (!in->tok) return false;
  if (!up_chat_template_resolve(opt->chat_template[0] ? opt->chat_template : NULL,
                                up_tokenizer_chat_template(in->tok), &in->chat, err, err_size))
    return false;
  in->enc = (prompt_encoder){.tok = in->tok,
                             .add_bos = up_tokenizer_add_bos(in->tok) && !up_chat_renders_bos(in->chat.format)};
  in->content_tokens = up_content_token_mask(in->tok);
  if (!opt->eval_tasks[0]) {
    /* --eval-file alone: no generated task, so no haystack to load. */
  } else if (opt->eval_corpus[0]) {
    in->corpus = up_haystack_corpus_load_list(opt->eval_corpus, err, err_size);
  } else {
    in->corpus = up_haystack_corpus_load_default(err, err_size);
  }
  if (opt->eval_tasks[0] && (!in->corpus || !up_eval_tasks_parse(opt->eval_tasks, &in->task_mask, err, err_size)))
    return false;
  const up_model_config *cfg = up_checkpoint_config(in->ck);
  /* Default contexts: 2K, 4K and 8K, as far as the model's context reaches. */
  static const int32_t default_ctx[] = {2048, 4096, 8192};
  if (opt->ctx_given) {
    in->n_ctx = opt->n_ctx;
    memcpy(in->ctx, opt->ctx, sizeof(int32_t) * (size_t)opt->n_ctx);
  } else if (in->task_mask) {
    for (size_t i = 0; i < sizeof default_ctx / sizeof default_ctx[0]; ++i)
      if (default_ctx[i] <= cfg->max_context) in->ctx[in->n_ctx++] = default_ctx[i];
    if (in->n_ctx == 0) in->ctx[in->n_ctx++] = cfg->max_context;
  }
  for (int32_t c = 0; c < in->n_ctx; ++c)
    if (in->ctx[c] > cfg->max_context || in->ctx[c] <= opt->eval_max_new) {
      snprintf(err, err_size, "--ctx %d: an eval context holds the prompt and --eval-max-new %d answer tokens, and "
               "must be above that and at most %s's context of %d tokens", (int)in->ctx[c], (int)opt->eval_max_new,
               cfg->name, (int)cfg->max_context);
      return false;
    }
  if (opt->eval_files[0] && !open_eval_files(opt, in, cfg, err, err_size)) return false;
  /* Dense is the reference every other method is compared with: run it first, listed
   * or not. */
  int32_t dense_at = -1;
  for (int32_t i = 0; i < opt->n_methods; ++i)
    if (up_method_spec_is_reference(&opt->methods[i])) dense_at = i;
  up_method_spec specs[UP_MAX_SWEEP + 1];
  int32_t n = 0;
  if (dense_at < 0) up_method_spec_reference(&specs[n++]);
  else specs[n++] = opt->methods[dense_at];
  for (int32_t i = 0; i < opt->n_methods; ++i)
    if (i != dense_at) specs[n++] = opt->methods[i];
  for (int32_t i = 0; i < n; ++i) {
    char why[512];
    if (!up_method_spec_resolve(&specs[i], cfg, why, sizeof why)) {
      snprintf(err, err_size, "--method: %s", why);
      return false;
    }
    if (!up_method_init(&in->methods[i], &specs[i], be, why, sizeof why)) {
      snprintf(err, err_size, "--method %s: %s", specs[i].label, why);
      return false;
    }
    in->n_methods = i + 1; /* what close_inputs destroys */
  }
  in->n_methods = n;
  return true;
}

static void close_inputs(eval_inputs *in) {
  for (int32_t m = 0; m < in->n_methods; ++m) up_method_destroy(&in->methods[m]);
  if (in->corpus) up_haystack_corpus_free(in->corpus);
  up_eval_file_set_free(in->files);
  if (in->tok) up_tokenizer_free(in->tok);
  free(in->content_tokens);
  if (in->ck) up_checkpoint_close(in->ck);
}

/* The file samples of bucket ctx as prompts that borrow the set's sample and tokens. */
static int32_t add_file_prompts(const up_eval_file_set *files, int32_t ctx, eval_prompt *prompts) {
  int32_t n = 0;
  for (int32_t i = 0; files && i < files->n_prompts; ++i) {
    const up_eval_file_prompt *f = &files->prompts[i];
    if (f->ctx != ctx) continue;
    prompts[n++] = (eval_prompt){.sample = f->sample, .ctx = ctx, .sample_index = f->index, .tokens = f->tokens,
                                 .n_tokens = f->n_tokens, .from_file = f};
  }
  return n;
}

/* Every sample of one context, in a fixed order (the --eval-file samples in file order,
 * then the generated tasks, task then index), on every rank. */
static bool build_prompts(const up_options *opt, eval_inputs *in, up_eval_generator *gen, int32_t ctx,
                          eval_prompt **out, int32_t *n_out, char *err, size_t err_size) {
  const int32_t per_task = opt->eval_samples;
  const int32_t n_file = in->files ? in->files->n_prompts : 0;
  eval_prompt *prompts = up_calloc_or_die((size_t)UP_EVAL_TASK_COUNT * (size_t)per_task + (size_t)n_file + 1,
                                          sizeof *prompts, "eval prompts");
  int32_t n = add_file_prompts(in->files, ctx, prompts);
  for (int32_t k = 0; k < UP_EVAL_TASK_COUNT; ++k) {
    if (!(in->task_mask & (1u << k))) continue;
    for (int32_t i = 0; i < per_task; ++i) {
      eval_prompt *p = &prompts[n];
      /* The context holds prompt and answer: the prompt gets what the answer leaves. */
      const up_eval_request req = {.kind = (up_eval_task_kind)k, .seed = opt->seed, .sample_index = (uint64_t)i,
                                   .target_tokens = ctx - opt->eval_max_new, .depth = -1.0};
      if (!up_eval_generate(gen, &req, &p->sample, err, err_size)) {
        *out = prompts;
        *n_out = n;
        return false;
      }
      n += 1;
      p->ctx = ctx;
      p->sample_index = i;
      /* The generator counted the prompt with this encoder, so that count sizes it. */
      const int32_t count = p->sample.prompt_tokens;
      p->tokens = up_malloc_or_die(sizeof(int32_t) * (size_t)(count > 0 ? count : 1), "eval prompt tokens");
      p->n_tokens = up_tokenizer_encode(in->tok, p->sample.prompt, strlen(p->sample.prompt), in->enc.add_bos, true,
                                        p->tokens, count, err, err_size);
      if (p->n_tokens < 1 || p->n_tokens != count) {
        if (p->n_tokens >= 1)
          snprintf(err, err_size, "eval prompt encodes to %d tokens, its count said %d", (int)p->n_tokens, (int)count);
        *out = prompts;
        *n_out = n;
        return false;
      }
      p->n_needle_spans = up_answer_needle_spans(in->tok, p->tokens, p->n_tokens, in->enc.add_bos ? 1 : 0, &p->sample,
                                                 p->needle_spans, UP_EVAL_MAX_NEEDLES);
    }
  }
  *out = prompts;
  *n_out = n;
  return true;
}

static void free_prompts(eval_prompt *prompts, int32_t n) {
  for (int32_t i = 0; i < n; ++i) {
    if (prompts[i].from_file) continue;
    up_eval_sample_free(&prompts[i].sample);
    free(prompts[i].tokens);
  }
  free(prompts);
}

/* Task names of one context's group: the file samples' (in order of first appearance),
 * then the generated tasks'. */
static int32_t group_task_names(const eval_inputs *in, int32_t ctx, const char **names) {
  int32_t n = in->files ? up_eval_file_set_tasks(in->files, ctx, names, UP_EVAL_MAX_TASK_NAMES) : 0;
  for (int32_t k = 0; k < UP_EVAL_TASK_COUNT; ++k)
    if (in->task_mask & (1u << k)) names[n++] = up_eval_task_name((up_eval_task_kind)k);
  return n;
}

/* One finished generation as a record; dense_logits NULL for dense itself. */
static void fill_record(const eval_inputs *in, const up_method *method, const eval_prompt *p, const up_generation *g,
                        const float *dense_logits, int32_t dense_first, const up_dense_answer *dense_answer,
                        int32_t stop_eot, int32_t stop_eos, double ms, up_eval_record *r) {
  const up_model_config *cfg = up_checkpoint_config(in->ck);
  memset(r, 0, sizeof *r);
  snprintf(r->method, sizeof r->method, "%s", method->spec.label);
  snprintf(r->task, sizeof r->task, "%s", p->from_file ? p->from_file->task : up_eval_task_name(p->sample.kind));
  r->ctx = p->ctx;
  r->sample = p->sample_index;
  r->prompt_tokens = p->n_tokens;
  r->depth = (float)p->sample.depth;
  int32_t n_text = g->n_tokens;
  if (n_text > 0 && (g->tokens[n_text - 1] == stop_eot || g->tokens[n_text - 1] == stop_eos)) n_text -= 1;
  char err[256];
  const int64_t need = up_tokenizer_decode(in->tok, g->tokens, (size_t)n_text, false, NULL, 0, err, sizeof err);
  char *text = up_malloc_or_die((size_t)(need > 0 ? need : 0) + 1, "generated text");
  text[0] = '\0';
  if (need > 0) up_tokenizer_decode(in->tok, g->tokens, (size_t)n_text, false, text, (size_t)need + 1, err, sizeof err);
  const bool exact = p->from_file && p->from_file->exact;
  const char *const *answers = (const char *const *)p->sample.answers;
  /* Containment gives partial credit (RULER's string_match_all per sample) and any_found
   * (its string_match_part) whichever rule gives the score. */
  const up_eval_score contained = up_eval_score_answers(text, answers, p->sample.n_answers);
  const up_eval_score score = exact ? up_eval_score_exact(text, answers, p->sample.n_answers) : contained;
  r->any_found = contained.n_found > 0 ? 1.0f : 0.0f;
  snprintf(r->scoring, sizeof r->scoring, "%s", exact ? "exact" : "string_match");
  if (p->from_file) {
    snprintf(r->source_file, sizeof r->source_file, "%s", p->from_file->source_file);
    r->source_line = p->from_file->source_line;
  }
  snprintf(r->generated, sizeof r->generated, "%s", text);
  free(text);
  copy_joined(r->expected, sizeof r->expected, p->sample.answers, p->sample.n_answers);
  r->score = (float)score.all_found;
  r->partial = (float)contained.fraction;
  r->first_token = g->n_tokens > 0 ? g->tokens[0] : -1;
  r->dense_first_token = dense_logits ? dense_first : r->first_token;
  r->top1_agrees = r->first_token >= 0 && r->first_token == r->dense_first_token;
  r->kl_vs_dense = dense_logits ? up_kl_from_logits(dense_logits, g->first_logits, cfg->vocab) : 0.0;
  if (g->non_finite) {
    /* NaN or inf activations: no answer to score, whatever text came before; the note
     * stands in the answer's place and the KL is undefined (NaN). */
    snprintf(r->generated, sizeof r->generated, "[non-finite logits (NaN or inf activations) after %d tokens: "
             "scored 0]", (int)g->n_tokens);
    r->score = 0.0f;
    r->partial = 0.0f;
    r->any_found = 0.0f;
    r->kl_vs_dense = NAN;
  }
  int64_t rows = 0;
  for (int32_t l = 0; l < cfg->n_layers; ++l) rows += g->layer_rows[l];
  r->kept_fraction = (float)((double)rows / ((double)cfg->n_layers * p->n_tokens));
  r->generated_tokens = g->n_tokens;
  r->stopped = g->stopped;
  r->prefill_decode_ms = ms;
  up_eval_record_diagnostics(r, g, dense_logits ? dense_answer : NULL, in->content_tokens, cfg->vocab,
                             p->needle_spans, p->n_needle_spans);
}

/* Rank 0 receives every rank's rows (records, their per-layer prompt rows and per-layer
 * attention densities). */
static void gather_rows(const up_topology *topo, const up_eval_record *mine, const int32_t *my_layers,
                        const double *my_density, int32_t n_mine, int32_t n_layers, up_eval_record **all,
                        int32_t **all_layers, double **all_density, int32_t *n_all) {
  const int world = topo->world_size, root = topo->world_rank == 0;
  int *counts = up_calloc_or_die((size_t)world, sizeof(int), "eval gather counts");
  UP_CHECK_MPI(MPI_Gather(&n_mine, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD));
  int *bytes = up_calloc_or_die((size_t)world, sizeof(int), "eval gather bytes");
  int *displs = up_calloc_or_die((size_t)world, sizeof(int), "eval gather offsets");
  int total = 0;
  for (int r = 0; r < world; ++r) total += counts[r];
  *n_all = total;
  *all = root ? up_calloc_or_die((size_t)total + 1, sizeof(up_eval_record), "eval rows") : NULL;
  *all_layers = root ? up_calloc_or_die((size_t)total * (size_t)n_layers + 1, sizeof(int32_t), "eval layer rows") : NULL;
  *all_density = root ? up_calloc_or_die((size_t)total * (size_t)n_layers + 1, sizeof(double), "eval layer density")
                      : NULL;
  const void *sends[3] = {mine, my_layers, my_density};
  void *receives[3] = {*all, *all_layers, *all_density};
  const size_t units[3] = {sizeof(up_eval_record), sizeof(int32_t) * (size_t)n_layers,
                           sizeof(double) * (size_t)n_layers};
  for (int pass = 0; pass < 3; ++pass) {
    for (int r = 0, at = 0; r < world; ++r) {
      bytes[r] = counts[r] * (int)units[pass];
      displs[r] = at;
      at += bytes[r];
    }
    UP_CHECK_MPI(MPI_Gatherv(sends[pass], n_mine * (int)units[pass], MPI_BYTE, receives[pass], bytes, displs, MPI_BYTE,
                             0, MPI_COMM_WORLD));
  }
  free(counts);
  free(bytes);
  free(displs);
}

/* Evaluate every method on this rank's share of one context's prompts. */
static int32_t run_context(const up_options *opt, const eval_inputs *in, up_generator *gen, const up_topology *topo,
                           const eval_prompt *prompts, int32_t n_prompts, up_eval_record *records,
                           int32_t *layer_rows, double *layer_density) {
  const up_model_config *cfg = up_checkpoint_config(in->ck);
  const int32_t V = cfg->vocab, L = cfg->n_layers;
  /* Sized to the prompts: a fixed array would drop prompts past its end unnoticed. */
  int32_t *mine = up_calloc_or_die((size_t)n_prompts + 1, sizeof(int32_t), "this rank's eval prompts"), n_mine = 0;
  for (int32_t i = 0; i < n_prompts; ++i)
    if (i % topo->world_size == topo->world_rank) mine[n_mine++] = i;
  float *dense_logits = up_malloc_or_die(sizeof(float) * (size_t)V * (size_t)(n_mine + 1), "dense logits");
  int32_t *dense_first = up_calloc_or_die((size_t)n_mine + 1, sizeof(int32_t), "dense first tokens");
  up_dense_answer *dense_answers = up_calloc_or_die((size_t)n_mine + 1, sizeof *dense_answers, "dense answers");
  int32_t stops[2], n_stop = 0;
  const int32_t eot = up_tokenizer_eot(in->tok), eos = up_tokenizer_eos(in->tok);
  if (eot >= 0) stops[n_stop++] = eot;
  if (eos >= 0 && eos != eot) stops[n_stop++] = eos;
  int32_t n_rec = 0;
  for (int32_t m = 0; m < in->n_methods; ++m) {
    const bool is_dense = m == 0;
    for (int32_t b = 0; b < n_mine; b += opt->eval_batch) {
      const int32_t nb = n_mine - b < opt->eval_batch ? n_mine - b : opt->eval_batch;
      const int32_t *batch_tokens[UP_EVAL_MAX_BATCH];
      int32_t batch_lens[UP_EVAL_MAX_BATCH];
      for (int32_t j = 0; j < nb; ++j) {
        batch_tokens[j] = prompts[mine[b + j]].tokens;
        batch_lens[j] = prompts[mine[b + j]].n_tokens;
      }
      up_generation out[UP_EVAL_MAX_BATCH];
      const double t0 = now_ms();
      up_generator_run(gen, &in->methods[m], batch_tokens, batch_lens, nb, opt->eval_max_new, stops, n_stop, out);
      const double ms = (now_ms() - t0) / nb;
      for (int32_t j = 0; j < nb; ++j) {
        const int32_t local = b + j;
        if (is_dense) {
          memcpy(dense_logits + (size_t)local * V, out[j].first_logits, sizeof(float) * (size_t)V);
          dense_first[local] = out[j].n_tokens > 0 ? out[j].tokens[0] : -1;
          up_dense_answer_keep(&dense_answers[local], &out[j], V);
        }
        fill_record(in, &in->methods[m], &prompts[mine[local]], &out[j],
                    is_dense ? NULL : dense_logits + (size_t)local * V, dense_first[local], &dense_answers[local],
                    eot, eos, ms, &records[n_rec]);
        memcpy(layer_rows + (size_t)n_rec * L, out[j].layer_rows, sizeof(int32_t) * (size_t)L);
        memcpy(layer_density + (size_t)n_rec * L, out[j].layer_density, sizeof(double) * (size_t)L);
        n_rec += 1;
        up_generation_free(&out[j]);
      }
    }
  }
  free(mine);
  free(dense_logits);
  free(dense_first);
  for (int32_t i = 0; i < n_mine; ++i) up_dense_answer_free(&dense_answers[i]);
  free(dense_answers);
  return n_rec;
}

int up_eval_mode_run(const up_options *opt, int argc, char **argv, const up_topology *topo) {
  const int root = topo->world_rank == 0;
  char err[1024] = "";
  up_harness h;
  if (!up_harness_begin(&h, "eval", opt, argc, argv, topo)) return 2;
  up_backend *be = h.be;
  eval_inputs in;
  memset(&in, 0, sizeof in);
  const int bad_inputs = !open_inputs(opt, be, &in, err, sizeof err);
  if (up_harness_failed(&h, bad_inputs, err)) {
    close_inputs(&in);
    return up_harness_end(&h, 2);
  }
  const up_model_config *cfg = up_checkpoint_config(in.ck);
  /* --eval-file alone generates nothing, so it has no corpus and no generator. */
  up_eval_generator *tasks = in.corpus ? up_eval_generator_create(in.corpus, &in.chat, count_prompt_tokens, &in.enc)
                                       : NULL;
  /* The longest prompt any group holds: a context's share, or the longest file sample. */
  int32_t max_prompt = in.files ? in.files->longest_kept : 0;
  for (int32_t c = 0; c < in.n_ctx; ++c)
    if (in.ctx[c] - opt->eval_max_new > max_prompt) max_prompt = in.ctx[c] - opt->eval_max_new;
  if (root && in.files && !opt->quiet) {
    char what[512];
    up_eval_file_set_describe(in.files, what, sizeof what);
    fprintf(stderr, "uniprefill-bench: %s\n", what);
  }

  up_model *model = up_model_create_from_checkpoint(in.ck, be, err, sizeof err);
  up_generator *gen = model ? up_generator_create(model, opt->eval_batch, max_prompt,
                                                  opt->eval_max_new, err, sizeof err)
                            : NULL;
  if (up_harness_failed(&h, gen == NULL, err)) {
    up_generator_destroy(gen);
    up_model_destroy(model);
    up_eval_generator_free(tasks);
    close_inputs(&in);
    return up_harness_end(&h, 2); /* a checkpoint that cannot load is bad input */
  }
  up_generator_set_diagnostics(gen, in.content_tokens, true);
  int exit_code = up_harness_open_results(&h, cfg->name) ? 0 : 2; /* an -o that cannot be written is bad input */
  up_results_file *results = h.results;
  up_eval_summary *summaries = NULL;
  int32_t n_summaries = 0;
  for (int32_t c = 0; c < in.n_ctx && exit_code == 0; ++c) {
    eval_prompt *prompts = NULL;
    int32_t n_prompts = 0;
    const int bad = !build_prompts(opt, &in, tasks, in.ctx[c], &prompts, &n_prompts, err, sizeof err);
    if (up_harness_failed(&h, bad, err)) {
      free_prompts(prompts, n_prompts);
      exit_code = 2;
      break;
    }
    if (n_prompts == 0) { /* a bucket no file sample fell into, without generated tasks */
      free_prompts(prompts, n_prompts);
      continue;
    }
    if (root && !opt->quiet)
      fprintf(stderr, "uniprefill-bench: eval ctx %d: %d prompts x %d methods on %d rank(s)\n", (int)in.ctx[c],
              (int)n_prompts, (int)in.n_methods, (int)topo->world_size);
    const size_t cap = (size_t)n_prompts * (size_t)in.n_methods + 1;
    up_eval_record *records = up_calloc_or_die(cap, sizeof *records, "eval records");
    int32_t *layer_rows = up_calloc_or_die(cap * (size_t)cfg->n_layers, sizeof(int32_t), "eval layer rows");
    double *layer_density = up_calloc_or_die(cap * (size_t)cfg->n_layers, sizeof(double), "eval layer density");
    const int32_t n_rec = run_context(opt, &in, gen, topo, prompts, n_prompts, records, layer_rows, layer_density);
    up_eval_record *all = NULL;
    int32_t *all_layers = NULL, n_all = 0;
    double *all_density = NULL;
    gather_rows(topo, records, layer_rows, layer_density, n_rec, cfg->n_layers, &all, &all_layers, &all_density,
                &n_all);
    int write_failed = 0;
    if (root) {
      up_eval_summary *rows = NULL;
      const char *task_names[UP_EVAL_TASK_COUNT + UP_EVAL_MAX_TASK_NAMES];
      const int32_t n_tasks = group_task_names(&in, in.ctx[c], task_names);
      const int32_t n_rows = up_eval_summarize_tasks(cfg, in.methods, in.n_methods, task_names, n_tasks, all,
                                                     all_layers, n_all, &rows);
      write_failed = up_results_append_eval(results, all, all_layers, all_density, n_all, cfg->n_layers, rows,
                                            n_rows, err, sizeof err) != 0;
      summaries = realloc(summaries, sizeof *summaries * (size_t)(n_summaries + n_rows));
      if (!summaries) UP_FATAL("out of memory for eval summaries");
      memcpy(summaries + n_summaries, rows, sizeof *rows * (size_t)n_rows);
      n_summaries += n_rows;
      free(rows);
    }
    free(all);
    free(all_layers);
    free(all_density);
    free(records);
    free(layer_rows);
    free(layer_density);
    free_prompts(prompts, n_prompts);
    if (up_harness_failed(&h, write_failed, err)) exit_code = 1;
  }
  if (root && exit_code == 0) {
    up_eval_report_print(stdout, opt->format, summaries, n_summaries);
    fflush(stdout);
    up_harness_note_written(&h);
  }
  free(summaries);
  up_generator_destroy(gen);
  up_model_destroy(model);
  up_eval_generator_free(tasks);
  close_inputs(&in);
  return up_harness_end(&h, exit_code);
}
