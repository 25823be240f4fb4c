/* tp_forward_check.c — a model split over the ranks of `mpirun -np N` (tensor
 * parallelism, engine/model/model_shard.h) computes what the whole model computes on
 * one rank: the same prompts through greedy generation (packed prefill, then decode)
 * on the CPU backend, on the shards and, on rank 0, on the whole model. Every rank of
 * the group must hold the same logits bit for bit, and allocate the weight bytes the
 * launcher's memory check counts for a shard (up_model_shard_weight_bytes: expert
 * stacks included). Prints one line per check; exit 0
 * when everything holds, 1 otherwise.
 *
 * usage: tp_forward_check MODEL METHOD TOL [fault]
 *   MODEL: a preset name or tiny-gemma3 (below) (seeded random weights, drawn by
 *          global index on each shard), or a checkpoint path (loaded shard by shard)
 *   METHOD: a --method entry. Dense: the last-position logits of every prompt within
 *          TOL (max |TP - whole| <= TOL x max |whole|, fp32) and every greedy token equal.
 *          A method that drops tokens (UniPrefill) runs twice on the group:
 *          replaying the rows the whole model kept at each drop layer (the same
 *          logits and tokens are required: numerics apart from selection), and free
 *          running through the group's selection (uniprefill_tp.c, its mask hash
 *          checked at every drop): the prompt tokens whose drop count differs from
 *          the whole model's are reported as flips (random weights give near-tied
 *          block scores, PARALLEL.md 3.6), and the ranks must agree.
 *   fault: rank 1 adds one ulp to its per-head scores before the all-gather
 *          (PARALLEL.md 3.6): the ranks must still agree. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/checkpoint/checkpoint.h"
#include "engine/methods/method.h"
#include "engine/methods/uniprefill.h"
#include "engine/model/model.h"
#include "engine/serve/generation.h"
#include "kernels/cpu/cpu_backend.h"
#include "tests/tools/tp_test_comm.h"

enum { N_PROMPTS = 2, MAX_NEW = 4, SEED = 11 };
static const int32_t prompt_lens[N_PROMPTS] = {300, 517};

enum { MAX_PROMPT = 517, MAX_DROPS = 16 };

typedef struct run_output {
  float *logits;  /* [N_PROMPTS][vocab] */
  int32_t tokens[N_PROMPTS][MAX_NEW];
  int32_t n_tokens[N_PROMPTS];
  int32_t drops_survived[N_PROMPTS][MAX_PROMPT];
} run_output;

/* The rows the whole model kept at each drop of its prefill, for the replay. */
typedef struct kept_log {
  int32_t n_drops;
  int32_t kept[MAX_DROPS];
  int32_t new_cu[MAX_DROPS][N_PROMPTS + 1];
  int32_t rows[MAX_DROPS][N_PROMPTS * MAX_PROMPT];
} kept_log;

typedef enum select_hook { HOOK_NONE, HOOK_RECORD, HOOK_REPLAY } select_hook;

static kept_log g_log;
static int32_t g_replayed;
static up_method_ops g_hooked_ops;

static int32_t recording_select(const up_method *m, up_backend *be, const up_method_layer *at, int32_t *keep_rows,
                                int32_t *new_cu_seqlens_host) {
  const int32_t kept = m->spec.method->select(m, be, at, keep_rows, new_cu_seqlens_host);
  const int32_t d = g_log.n_drops++;
  UP_ASSERT(d < MAX_DROPS && at->n_seqs == N_PROMPTS, "drop %d of %d sequences", (int)d, (int)at->n_seqs);
  g_log.kept[d] = kept;
  memcpy(g_log.new_cu[d], new_cu_seqlens_host, sizeof g_log.new_cu[d]);
  be->ops->download_i32(be, g_log.rows[d], keep_rows, (size_t)kept);
  return kept;
}

static int32_t replaying_select(const up_method *m, up_backend *be, const up_method_layer *at, int32_t *keep_rows,
                                int32_t *new_cu_seqlens_host) {
  const int32_t d = g_replayed++;
  UP_ASSERT(d < g_log.n_drops && (d == 0 || at->cu_seqlens_host[at->n_seqs] == g_log.kept[d - 1]),
            "replay of drop %d does not meet the rows the whole model had", (int)d);
  memcpy(new_cu_seqlens_host, g_log.new_cu[d], sizeof g_log.new_cu[d]);
  be->ops->upload_i32(be, keep_rows, g_log.rows[d], (size_t)g_log.kept[d]);
  return g_log.kept[d];
}

/* tiny-gemma3: Gemma 3 at CPU-test size with what its split must get right: per-head
 * q/k norms, GeGLU, sliding layers (window 64, shorter than the prompts) around global
 * layers 3 and 7 (UniPrefill drops after 3), one KV head (replicated on every rank, as
 * on the 270M and 1B), tied embeddings scaled by sqrt(hidden), a softmax scale other
 * than head_dim's. Otherwise the preset registry's model of that name. */
static bool test_model_config(const char *name, up_model_config *cfg) {
  if (strcmp(name, "tiny-gemma3") == 0) {
    *cfg = *up_model_preset_find("gemma-3-270m");
    snprintf(cfg->name, sizeof cfg->name, "%s", name);
    cfg->n_layers = 8;
    cfg->hidden = 64;
    cfg->n_heads = 4;
    cfg->n_kv_heads = 1;
    cfg->head_dim = 32;
    cfg->intermediate = 96;
    cfg->vocab = 512;
    cfg->sliding_window = 64;
    cfg->query_pre_attn_scalar = 24.0f;
    up_model_config_set_sliding_pattern(cfg, 4);
    up_model_config_gemma3_uniprefill_defaults(cfg);
    char err[256];
    UP_ASSERT(up_model_config_validate(cfg, err, sizeof err), "%s", err);
    return true;
  }
  const up_model_config *preset = up_model_preset_find(name);
  if (preset) *cfg = *preset;
  return preset != NULL;
}

static up_model *make_model(const char *name, const up_checkpoint *ck, up_backend *be, up_tp_comm *tp) {
  if (!ck) {
    up_model_config cfg;
    UP_ASSERT(test_model_config(name, &cfg), "no preset '%s'", name);
    return up_model_create_random_shard(&cfg, be, tp, SEED);
  }
  char err[512];
  up_model *m = up_model_create_from_checkpoint_shard(ck, be, tp, err, sizeof err);
  if (!m) UP_FATAL("%s", err);
  return m;
}

static void run(const up_model *model, const char *method_text, int32_t *const *prompts, select_hook hook,
                run_output *out) {
  char err[512];
  up_method_spec spec;
  up_method method;
  if (!up_method_spec_parse(method_text, NULL, &spec, err, sizeof err) ||
      !up_method_spec_resolve(&spec, &model->cfg, err, sizeof err) ||
      !up_method_init(&method, &spec, model->be, err, sizeof err))
    UP_FATAL("method %s: %s", method_text, err);
  if (hook != HOOK_NONE) {
    /* The method's own hooks with its select replaced (a test's own table, method.h). */
    g_hooked_ops = *spec.method;
    g_hooked_ops.select = hook == HOOK_RECORD ? recording_select : replaying_select;
    method.ops = &g_hooked_ops;
    g_replayed = 0;
    if (hook == HOOK_RECORD) g_log.n_drops = 0;
  }
  up_generator *gen = up_generator_create(model, N_PROMPTS, MAX_PROMPT, MAX_NEW, err, sizeof err);
  if (!gen) UP_FATAL("%s", err);
  up_generator_set_diagnostics(gen, NULL, true);
  up_generation g[N_PROMPTS];
  up_generator_run(gen, &method, (const int32_t *const *)prompts, prompt_lens, N_PROMPTS, MAX_NEW, NULL, 0, g);
  const int32_t vocab = model->cfg.vocab;
  out->logits = up_malloc_or_die(sizeof(float) * (size_t)vocab * N_PROMPTS, "logits");
  for (int32_t i = 0; i < N_PROMPTS; ++i) {
    memcpy(out->logits + (size_t)i * vocab, g[i].first_logits, sizeof(float) * (size_t)vocab);
    out->n_tokens[i] = g[i].n_tokens;
    memcpy(out->tokens[i], g[i].tokens, sizeof(int32_t) * (size_t)g[i].n_tokens);
    memcpy(out->drops_survived[i], g[i].prompt_drops_survived, sizeof(int32_t) * (size_t)prompt_lens[i]);
    up_generation_free(&g[i]);
  }
  UP_ASSERT(hook != HOOK_REPLAY || g_replayed == g_log.n_drops, "replayed %d of %d drops", (int)g_replayed,
            (int)g_log.n_drops);
  up_generator_destroy(gen);
  up_method_destroy(&method);
}

/* Prompt tokens whose drop count differs between two runs. */
static int32_t count_flips(const run_output *a, const run_output *b) {
  int32_t flips = 0;
  for (int32_t i = 0; i < N_PROMPTS; ++i)
    for (int32_t t = 0; t < prompt_lens[i]; ++t) flips += a->drops_survived[i][t] != b->drops_survived[i][t];
  return flips;
}

/* True when every rank holds rank 0's logits bit for bit. */
static bool same_on_every_rank(const run_output *out, int32_t vocab) {
  const size_t n = (size_t)vocab * N_PROMPTS;
  float *rank0 = up_malloc_or_die(sizeof(float) * n, "rank 0 logits");
  memcpy(rank0, out->logits, sizeof(float) * n);
  MPI_Bcast(rank0, (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD);
  int identical = memcmp(rank0, out->logits, sizeof(float) * n) == 0, all_identical;
  MPI_Allreduce(&identical, &all_identical, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  free(rank0);
  return all_identical != 0;
}

/* Compare rank 0's TP run with the whole model's; true when within tolerance. */
static bool compare(const run_output *tp, const run_output *whole, int32_t vocab, double tol, int tp_size) {
  bool ok = true;
  for (int32_t i = 0; i < N_PROMPTS; ++i) {
    const float *a = tp->logits + (size_t)i * vocab, *b = whole->logits + (size_t)i * vocab;
    double diff = 0.0, scale = 0.0;
    bool finite = true;
    for (int32_t v = 0; v < vocab; ++v) {
      finite = finite && isfinite(a[v]) && isfinite(b[v]);
      diff = fmax(diff, fabs((double)a[v] - b[v]));
      scale = fmax(scale, fabs((double)b[v]));
    }
    const double rel = scale > 0 ? diff / scale : diff;
    bool same_tokens = tp->n_tokens[i] == whole->n_tokens[i];
    for (int32_t t = 0; same_tokens && t < tp->n_tokens[i]; ++t) same_tokens = tp->tokens[i][t] == whole->tokens[i][t];
    const bool pass = finite && rel <= tol && same_tokens;
    printf("prompt %d (%d tokens): TP=%d vs TP=1 max|diff| = %.3g, max|logit| = %.3g, ratio %.3g (tolerance "
           "%.3g), greedy tokens %s (%d of them): %s\n",
           (int)i, (int)prompt_lens[i], tp_size, diff, scale, rel, tol, same_tokens ? "equal" : "DIFFER",
           (int)tp->n_tokens[i], pass ? "ok" : "FAIL");
    ok = ok && pass;
  }
  return ok;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  if (argc != 4 && !(argc == 5 && strcmp(argv[4], "fault") == 0)) {
    fprintf(stderr, "usage: tp_forward_check MODEL METHOD TOL [fault]\n");
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const char *model_name = argv[1], *method_text = argv[2];
  const double tol = strtod(argv[3], NULL);
  if (argc == 5) up_uniprefill_tp_inject_ulp(1);
  up_backend *be = up_cpu_backend_create(1);
  up_checkpoint *ck = NULL;
  up_model_config named;
  if (!test_model_config(model_name, &named)) {
    char err[512];
    ck = up_checkpoint_open(model_name, err, sizeof err);
    if (!ck) UP_FATAL("%s", err);
  }
  up_tp_comm *tp = tp_test_comm_create(MPI_COMM_WORLD);
  up_model *model = make_model(model_name, ck, be, tp);
  const int32_t vocab = model->cfg.vocab;
  int32_t *prompts[N_PROMPTS];
  for (int32_t i = 0; i < N_PROMPTS; ++i) {
    prompts[i] = up_malloc_or_die(sizeof(int32_t) * (size_t)prompt_lens[i], "prompt");
    uint32_t x = 2654435761u * (uint32_t)(i + 1);
    for (int32_t t = 0; t < prompt_lens[i]; ++t) {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      prompts[i][t] = (int32_t)(x % (uint32_t)vocab);
    }
  }
  /* The whole model on rank 0 first (recording its kept rows), then the group. */
  static run_output whole, replayed, free_running;
  if (rank == 0) {
    up_model *one = make_model(model_name, ck, be, NULL);
    run(one, method_text, prompts, HOOK_RECORD, &whole);
    up_model_destroy(one);
  }
  MPI_Bcast(&g_log, (int)sizeof g_log, MPI_BYTE, 0, MPI_COMM_WORLD);
  const bool drops = g_log.n_drops > 0;

  const int64_t counted = up_model_shard_weight_bytes(&model->cfg, be->act_dtype, size);
  int sized = model->weight_bytes == counted, all_sized;
  MPI_Allreduce(&sized, &all_sized, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (rank == 0)
    printf("shard weights: %lld bytes allocated on rank 0, %lld counted per rank: %s\n",
           (long long)model->weight_bytes, (long long)counted, all_sized ? "equal on every rank" : "DIFFER");
  run(model, method_text, prompts, HOOK_NONE, &free_running);
  bool ok = all_sized && same_on_every_rank(&free_running, vocab);
  if (rank == 0)
    printf("model %s, method %s, %d ranks%s: logits identical on every rank: %s\n", model_name, method_text, size,
           argc == 5 ? " (rank 1's scores one ulp off)" : "", ok ? "yes" : "NO");
  if (drops) {
    run(model, method_text, prompts, HOOK_REPLAY, &replayed);
    if (rank == 0) {
      printf("UniPrefill free running: %d prompt tokens dropped at another layer than by the whole model (flips), "
             "of %d\n", (int)count_flips(&free_running, &whole), (int)(prompt_lens[0] + prompt_lens[1]));
      printf("UniPrefill with the whole model's kept rows replayed (%d drops):\n", (int)g_log.n_drops);
      ok = compare(&replayed, &whole, vocab, tol, size) && ok;
    }
    free(replayed.logits);
  } else if (rank == 0) {
    ok = compare(&free_running, &whole, vocab, tol, size) && ok;
  }
  int verdict = ok;
  MPI_Bcast(&verdict, 1, MPI_INT, 0, MPI_COMM_WORLD);
  for (int32_t i = 0; i < N_PROMPTS; ++i) free(prompts[i]);
  free(free_running.logits);
  free(whole.logits);
  up_model_destroy(model);
  tp->ops->destroy(tp);
  if (ck) up_checkpoint_close(ck);
  be->ops->destroy(be);
  MPI_Finalize();
  return verdict ? 0 : 1;
}
