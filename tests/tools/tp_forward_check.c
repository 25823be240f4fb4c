/* tp_forward_check.c — a model split over the ranks of `mpirun -np N` (tensor
 * parallelism, engine/model/model_shard.h) computes what the whole model computes on
 * one rank: the same prompts through greedy generation (packed prefill, then decode)
 * on the CPU backend, on the shards and, on rank 0, on the whole model. Checks the
 * last-position logits of every prompt (max |TP - whole| <= TOL x max |whole|, fp32)
 * and every greedy token, and that every rank of the group holds the same logits
 * bit for bit. Prints one line per prompt; exit 0 when everything holds, 1 otherwise.
 *
 * usage: tp_forward_check MODEL METHOD TOL
 *   MODEL: a preset name (seeded random weights, drawn by global index on each shard)
 *          or a checkpoint path (loaded shard by shard)
 *   METHOD: a --method entry (dense) */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/checkpoint/checkpoint.h"
#include "engine/methods/method.h"
#include "engine/model/model.h"
#include "engine/serve/generation.h"
#include "kernels/cpu/cpu_backend.h"
#include "tests/tools/tp_test_comm.h"

enum { N_PROMPTS = 2, MAX_NEW = 4, SEED = 11 };
static const int32_t prompt_lens[N_PROMPTS] = {300, 517};

typedef struct run_output {
  float *logits;  /* [N_PROMPTS][vocab] */
  int32_t tokens[N_PROMPTS][MAX_NEW];
  int32_t n_tokens[N_PROMPTS];
} run_output;

static up_model *make_model(const char *name, const up_checkpoint *ck, up_backend *be, up_tp_comm *tp) {
  if (!ck) {
    const up_model_config *preset = up_model_preset_find(name);
    UP_ASSERT(preset, "no preset '%s'", name);
    return up_model_create_random_shard(preset, be, tp, SEED);
  }
  char err[512];
  up_model *m = up_model_create_from_checkpoint_shard(ck, be, tp, err, sizeof err);
  if (!m) UP_FATAL("%s", err);
  return m;
}

static void run(const up_model *model, const char *method_text, int32_t *const *prompts, run_output *out) {
  char err[512];
  up_method_spec spec;
  up_method method;
  if (!up_method_spec_parse(method_text, NULL, &spec, err, sizeof err) ||
      !up_method_spec_resolve(&spec, &model->cfg, err, sizeof err) ||
      !up_method_init(&method, &spec, model->be, err, sizeof err))
    UP_FATAL("method %s: %s", method_text, err);
  int32_t max_prompt = 0;
  for (int32_t i = 0; i < N_PROMPTS; ++i) max_prompt = prompt_lens[i] > max_prompt ? prompt_lens[i] : max_prompt;
  up_generator *gen = up_generator_create(model, N_PROMPTS, max_prompt, MAX_NEW, err, sizeof err);
  if (!gen) UP_FATAL("%s", err);
  up_generation g[N_PROMPTS];
  up_generator_run(gen, &method, (const int32_t *const *)prompts, prompt_lens, N_PROMPTS, MAX_NEW, NULL, 0, g);
  const int32_t vocab = model->cfg.vocab;
  out->logits = up_malloc_or_die(sizeof(float) * (size_t)vocab * N_PROMPTS, "logits");
  for (int32_t i = 0; i < N_PROMPTS; ++i) {
    memcpy(out->logits + (size_t)i * vocab, g[i].first_logits, sizeof(float) * (size_t)vocab);
    out->n_tokens[i] = g[i].n_tokens;
    memcpy(out->tokens[i], g[i].tokens, sizeof(int32_t) * (size_t)g[i].n_tokens);
    up_generation_free(&g[i]);
  }
  up_generator_destroy(gen);
  up_method_destroy(&method);
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
  if (argc != 4) {
    fprintf(stderr, "usage: tp_forward_check MODEL METHOD TOL\n");
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const char *model_name = argv[1], *method_text = argv[2];
  const double tol = strtod(argv[3], NULL);
  up_backend *be = up_cpu_backend_create(1);
  up_checkpoint *ck = NULL;
  if (!up_model_preset_find(model_name)) {
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
  run_output sharded;
  run(model, method_text, prompts, &sharded);

  /* Every rank of the group holds the same logits, bit for bit (they are gathered). */
  float *rank0 = up_malloc_or_die(sizeof(float) * (size_t)vocab * N_PROMPTS, "rank 0 logits");
  memcpy(rank0, sharded.logits, sizeof(float) * (size_t)vocab * N_PROMPTS);
  MPI_Bcast(rank0, vocab * N_PROMPTS, MPI_FLOAT, 0, MPI_COMM_WORLD);
  int identical = memcmp(rank0, sharded.logits, sizeof(float) * (size_t)vocab * N_PROMPTS) == 0, all_identical;
  MPI_Allreduce(&identical, &all_identical, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);

  int ok = all_identical;
  if (rank == 0) {
    printf("model %s, method %s, %d ranks: logits identical on every rank: %s\n", model_name, method_text, size,
           all_identical ? "yes" : "NO");
    up_model *whole = make_model(model_name, ck, be, NULL);
    run_output reference;
    run(whole, method_text, prompts, &reference);
    ok = compare(&sharded, &reference, vocab, tol, size) && ok;
    free(reference.logits);
    up_model_destroy(whole);
  }
  MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
  for (int32_t i = 0; i < N_PROMPTS; ++i) free(prompts[i]);
  free(rank0);
  free(sharded.logits);
  up_model_destroy(model);
  tp->ops->destroy(tp);
  if (ck) up_checkpoint_close(ck);
  be->ops->destroy(be);
  MPI_Finalize();
  return ok ? 0 : 1;
}
