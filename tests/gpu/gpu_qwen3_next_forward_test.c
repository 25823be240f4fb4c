/* gpu_qwen3_next_forward_test.c — the Qwen3-Next forward (Gated DeltaNet, gated
 * attention, MoE) on the CUDA backend against the CPU reference. Same seed, same
 * weights; the CPU keeps fp32, the GPU bf16 activations (fp32 DeltaNet states), so the
 * last-row logits agree to a bf16 tolerance by normalised error (a NaN never passes).
 * Each model runs two scenarios over the same continuous-batching steps:
 *   step 0     prompts 0 and 1 (300 and 17 tokens) prefilled together;
 *   step 1     their decode tokens packed with prompt 2's prefill (650 tokens);
 *   steps 2-4  decode tokens of all three;
 * every sequence carrying its conv and recurrent state slot from step to step.
 *   dense  no drops;
 *   drop   UniPrefill drops after full-attention layer 3 (keep 0.3, block, sink and
 *          last_q 64): the GPU runs UniPrefill's own selection and the CPU applies the
 *          rows the GPU kept, so both compute over the same tokens (whether the two
 *          backends choose the same rows is gpu_uniprefill_forward_test's and
 *          gpu_select_test's concern). The DeltaNet layers after the drop run over the
 *          kept rows as one sequence, and decode continues from the states after the
 *          last kept token (README, "UniPrefill on Qwen3-Next").
 * Models: tiny-qwen3-next (both scenarios) and qwen3-next-80b-a3b cut to 4 layers
 * (DeltaNet heads of 128, attention heads of 256 with partial RoPE, 512 experts top 10;
 * dense only: its one full-attention layer is the last, so nothing follows a drop
 * there). The 4-layer model holds about 7.1 G parameters: 14 GB on the GPU and 28 GB of
 * host memory for the CPU reference.
 *
 * The tolerance is looser than gpu_forward_test's 3e-2: a router choice between two
 * near-equal experts can go either way in bf16, which moves that token's MoE output
 * by a whole expert's share (not measured yet: the GPU run prints each error).
 * Exits 77 without a GPU. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "engine/methods/method.h"
#include "tests/gpu/engine_side.h"

enum { N_SEQS = 3, DECODE_STEPS = 3, N_STEPS = 2 + DECODE_STEPS, MAX_ENTRIES = 700, MAX_DROPS = 4 };
enum { DROP_LAYER = 3, LATE_PREFILL = 2, SINK_AND_LAST_Q = 128 }; /* as DROP_SPEC */
#define DROP_SPEC "uniprefill:keep=0.3:block=64:sink=64:last_q=64:layers=3"
static const double LOGIT_TOL = 5e-2;
static const double DROP_CHANGES = 1e-3; /* the drop must move the logits at least this much */
static const int32_t PROMPT_LENS[N_SEQS] = {300, 17, 650};

static const up_method_ops dense_ops = {.name = "dense"};

/* --- the drop: the GPU's selection, recorded, replayed on the CPU ------------------- */

/* One selection of one forward: the rows entering it, the kept rows and new offsets. */
typedef struct drop_call {
  int32_t n_seqs, n_rows, kept;
  int32_t *rows;                               /* owned, [kept] */
  int32_t new_cu[ENGINE_SIDE_MAX_SEQS + 1];
} drop_call;

typedef struct drop_log {
  int32_t n_calls;
  drop_call calls[MAX_DROPS];
} drop_log;

/* The method state of one side: the GPU records into log, the CPU replays from it. */
typedef struct drop_side {
  drop_log *log;
  bool replay;
  int32_t next_call;
} drop_side;

static void drop_log_clear(drop_log *log) {
  for (int32_t c = 0; c < log->n_calls; ++c) free(log->calls[c].rows);
  memset(log, 0, sizeof *log);
}

static int32_t record_select(const up_method *m, up_backend *be, const up_method_layer *at, int32_t *keep_rows,
                             int32_t *new_cu) {
  drop_side *side = m->state;
  const int32_t n_rows = at->cu_seqlens_host[at->n_seqs];
  if (side->replay) {
    if (side->next_call >= side->log->n_calls) {
      printf("FAIL cpu: a selection at layer %d the GPU's forward did not make\n", (int)at->layer);
      exit(1);
    }
    const drop_call *c = &side->log->calls[side->next_call++];
    if (c->n_seqs != at->n_seqs || c->n_rows != n_rows) {
      printf("FAIL cpu: %d sequences of %d rows enter the drop at layer %d, the GPU's %d of %d; the runs diverged\n",
             (int)at->n_seqs, (int)n_rows, (int)at->layer, (int)c->n_seqs, (int)c->n_rows);
      exit(1);
    }
    be->ops->upload_i32(be, keep_rows, c->rows, (size_t)c->kept);
    memcpy(new_cu, c->new_cu, sizeof(int32_t) * (size_t)(c->n_seqs + 1));
    return c->kept;
  }
  if (side->log->n_calls >= MAX_DROPS) {
    printf("FAIL gpu: more than %d drops in one forward\n", MAX_DROPS);
    exit(1);
  }
  const int32_t kept = m->spec.method->select(m, be, at, keep_rows, new_cu);
  drop_call *c = &side->log->calls[side->log->n_calls++];
  *c = (drop_call){.n_seqs = at->n_seqs, .n_rows = n_rows, .kept = kept};
  c->rows = up_malloc_or_die(sizeof(int32_t) * (size_t)(kept > 0 ? kept : 1), "recorded kept rows");
  be->ops->download_i32(be, c->rows, keep_rows, (size_t)kept);
  memcpy(c->new_cu, new_cu, sizeof(int32_t) * (size_t)(at->n_seqs + 1));
  return kept;
}

/* --- the steps ------------------------------------------------------------------------ */

typedef struct scenario {
  const char *label;
  const up_model_config *cfg;
  int32_t *prompts[N_SEQS];
  const up_method *methods[2]; /* [0] cpu, [1] gpu */
  drop_side *drop_sides[2];    /* NULL for dense */
  float *logits[N_STEPS][2];   /* [n][vocab] in batch order */
} scenario;

/* Step 0 prefills 0 and 1; step 1 decodes them beside the prefill of 2; then decodes. */
static int32_t step_batch(const engine_side *side, int32_t step, int32_t *const prompts[N_SEQS],
                          const int32_t *fed, int32_t *which, up_forward_seq *seqs) {
  int32_t n = 0;
  for (int32_t s = 0; s < N_SEQS; ++s) {
    const int32_t prefill_step = s == LATE_PREFILL ? 1 : 0;
    if (step < prefill_step) continue;
    const bool prefill = step == prefill_step;
    which[n] = s;
    /* the engine side keeps no layer memory: sequence s owns state slot s of the workspace */
    seqs[n++] = (up_forward_seq){.slot = side->slots[s], .n_tokens = prefill ? PROMPT_LENS[s] : 1,
                                 .tokens = prefill ? prompts[s] : &fed[s],
                                 .first_position = prefill ? 0 : PROMPT_LENS[s] + step - prefill_step - 1,
                                 .is_prefill = prefill, .state_slot = s};
  }
  return n;
}

static void acquire_slots(engine_side *side, const char *label) {
  for (int32_t s = 0; s < N_SEQS; ++s) {
    side->slots[s] = up_kv_cache_acquire_slot(side->cache);
    if (side->slots[s] < 0 || !up_kv_cache_reserve(side->cache, side->slots[s], MAX_ENTRIES)) {
      printf("FAIL %s: no KV room for sequence %d\n", label, (int)s);
      exit(1);
    }
  }
}

static void release_slots(engine_side *side) {
  for (int32_t s = 0; s < N_SEQS; ++s) up_kv_cache_release_slot(side->cache, side->slots[s]);
}

/* After a step with drops: every prompt longer than sink + last_q lost rows after the drop
 * layer and kept them to the end, the others kept all; the last layer's cache holds the
 * rows it saw. seqs carry the CPU's KV slots (the last side run); the GPU's are looked
 * up by sequence. */
static void check_drop_rows(const scenario *sc, const engine_side *gpu, int32_t step, const int32_t *which,
                            const up_forward_seq *seqs, int32_t n, const int32_t *layer_rows) {
  const int32_t L = sc->cfg->n_layers;
  for (int32_t i = 0; i < n; ++i) {
    if (!seqs[i].is_prefill) continue;
    const int32_t *rows = layer_rows + (size_t)i * L, len = seqs[i].n_tokens;
    if (len > SINK_AND_LAST_Q)
      CHECK(rows[DROP_LAYER] == len && rows[DROP_LAYER + 1] < len && rows[L - 1] == rows[DROP_LAYER + 1],
            "%s step %d: prompt %d (%d tokens) enters layers 0-%d whole and the later ones with the %d kept rows",
            sc->label, (int)step, (int)which[i], (int)len, DROP_LAYER, (int)rows[L - 1]);
    else
      CHECK(rows[L - 1] == len, "%s step %d: the short prompt %d (%d tokens) keeps every row (%d at the last layer)",
            sc->label, (int)step, (int)which[i], (int)len, (int)rows[L - 1]);
    const int32_t cached = up_kv_cache_len(gpu->cache, gpu->slots[which[i]], L - 1);
    CHECK(cached == rows[L - 1], "%s step %d: prompt %d caches %d entries at the last layer, the rows it saw (%d)",
          sc->label, (int)step, (int)which[i], (int)cached, (int)rows[L - 1]);
  }
}

static void run_scenario(scenario *sc, engine_side *cpu, engine_side *gpu) {
  const int32_t L = sc->cfg->n_layers, vocab = sc->cfg->vocab;
  engine_side *sides[2] = {cpu, gpu};
  for (int k = 0; k < 2; ++k) acquire_slots(sides[k], sc->label);
  int32_t fed[N_SEQS] = {0};
  for (int32_t step = 0; step < N_STEPS; ++step) {
    int32_t which[N_SEQS], n = 0, next[2][N_SEQS], layer_rows[2][N_SEQS * UP_MAX_LAYERS];
    up_forward_seq seqs[N_SEQS];
    for (int k = 1; k >= 0; --k) { /* the GPU first: its selections are the ones both apply */
      n = step_batch(sides[k], step, sc->prompts, fed, which, seqs);
      if (sc->drop_sides[k]) sc->drop_sides[k]->next_call = 0;
      up_forward_out out = {.next_tokens = next[k], .logits = sc->logits[step][k], .seq_layer_rows = layer_rows[k]};
      up_forward(sides[k]->model, sides[k]->ws, sides[k]->cache, &sides[k]->pool, sc->methods[k], seqs, n, &out);
    }
    int agree = 0;
    for (int32_t i = 0; i < n; ++i) agree += next[0][i] == next[1][i];
    CHECK_REL_ERR(logits_rel_err(sc->logits[step][1], sc->logits[step][0], (size_t)n * vocab), LOGIT_TOL,
                  "%s step %d (%d sequences%s; greedy tokens agree %d/%d)", sc->label, (int)step, (int)n,
                  step == 1 ? ", decodes beside a prefill" : "", agree, (int)n);
    CHECK(memcmp(layer_rows[0], layer_rows[1], sizeof(int32_t) * (size_t)n * L) == 0,
          "%s step %d: rows entering each layer equal on both backends", sc->label, (int)step);
    int32_t kv_diff = 0;
    for (int32_t i = 0; i < n; ++i)
      for (int32_t l = 0; l < L; ++l)
        kv_diff += up_kv_cache_len(cpu->cache, cpu->slots[which[i]], l) !=
                   up_kv_cache_len(gpu->cache, gpu->slots[which[i]], l);
    CHECK(kv_diff == 0, "%s step %d: KV lengths of every sequence and layer equal on both backends (%d differ)",
          sc->label, (int)step, (int)kv_diff);
    if (sc->drop_sides[1]) {
      CHECK(sc->drop_sides[0]->next_call == sc->drop_sides[1]->log->n_calls,
            "%s step %d: the CPU made the GPU's %d selections", sc->label, (int)step,
            (int)sc->drop_sides[1]->log->n_calls);
      check_drop_rows(sc, gpu, step, which, seqs, n, layer_rows[1]);
      drop_log_clear(sc->drop_sides[1]->log);
    }
    for (int32_t i = 0; i < n; ++i) fed[which[i]] = next[0][i]; /* both sides decode the CPU's token */
  }
  for (int k = 0; k < 2; ++k) release_slots(sides[k]);
}

/* --- the models ------------------------------------------------------------------------ */

static void test_model(const char *label, const up_model_config *cfg, bool with_drop, up_backend *cpu_be,
                       up_backend *gpu_be) {
  printf("%s: %d layers, hidden %d, %d experts top %d\n", label, (int)cfg->n_layers, (int)cfg->hidden,
         (int)cfg->n_experts, (int)cfg->n_experts_per_token);
  engine_side cpu, gpu;
  engine_side_init(&cpu, cpu_be, cfg, N_SEQS, MAX_ENTRIES, (int64_t)N_SEQS * MAX_ENTRIES);
  engine_side_init(&gpu, gpu_be, cfg, N_SEQS, MAX_ENTRIES, (int64_t)N_SEQS * MAX_ENTRIES);
  int32_t *prompts[N_SEQS];
  uint32_t x = 777;
  for (int32_t s = 0; s < N_SEQS; ++s) {
    prompts[s] = up_malloc_or_die(sizeof(int32_t) * (size_t)PROMPT_LENS[s], "prompt");
    for (int32_t i = 0; i < PROMPT_LENS[s]; ++i) {
      x = x * 1664525u + 1013904223u;
      prompts[s][i] = (int32_t)((x >> 8) % (uint32_t)cfg->vocab);
    }
  }
  const up_method dense = {.ops = &dense_ops};
  char name[96];
  snprintf(name, sizeof name, "%s dense", label);
  scenario sc_dense = {.label = name, .cfg = cfg, .methods = {&dense, &dense}};
  memcpy(sc_dense.prompts, prompts, sizeof prompts);
  for (int32_t step = 0; step < N_STEPS; ++step)
    for (int k = 0; k < 2; ++k)
      sc_dense.logits[step][k] = up_calloc_or_die((size_t)N_SEQS * cfg->vocab, sizeof(float), "logits");
  run_scenario(&sc_dense, &cpu, &gpu);

  if (with_drop) {
    up_method_spec spec;
    char err[256];
    if (!up_method_spec_parse(DROP_SPEC, NULL, &spec, err, sizeof err) ||
        !up_method_spec_resolve(&spec, cfg, err, sizeof err)) {
      printf("FAIL %s: method %s: %s\n", label, DROP_SPEC, err);
      exit(1);
    }
    const up_method_ops drop_ops = {.name = "recorded uniprefill", .drops_after = spec.method->drops_after,
                                    .select = record_select};
    drop_log log = {0};
    drop_side cpu_side = {.log = &log, .replay = true}, gpu_side = {.log = &log};
    const up_method cpu_m = {.ops = &drop_ops, .spec = spec, .state = &cpu_side};
    const up_method gpu_m = {.ops = &drop_ops, .spec = spec, .state = &gpu_side};
    snprintf(name, sizeof name, "%s drop after layer %d", label, DROP_LAYER);
    scenario sc_drop = {.label = name, .cfg = cfg, .methods = {&cpu_m, &gpu_m}, .drop_sides = {&cpu_side, &gpu_side}};
    memcpy(sc_drop.prompts, prompts, sizeof prompts);
    for (int32_t step = 0; step < N_STEPS; ++step)
      for (int k = 0; k < 2; ++k)
        sc_drop.logits[step][k] = up_calloc_or_die((size_t)N_SEQS * cfg->vocab, sizeof(float), "logits");
    run_scenario(&sc_drop, &cpu, &gpu);
    /* Step 0 packs the same batch in both scenarios: the drop must have changed it. */
    const double moved = logits_rel_err(sc_drop.logits[0][1], sc_dense.logits[0][1], (size_t)2 * cfg->vocab);
    CHECK(moved > DROP_CHANGES, "%s: the drop moved the GPU's step-0 logits from the dense ones (rel diff %.3e > %.0e)",
          label, moved, DROP_CHANGES);
    drop_log_clear(&log);
    for (int32_t step = 0; step < N_STEPS; ++step)
      for (int k = 0; k < 2; ++k) free(sc_drop.logits[step][k]);
  }
  for (int32_t step = 0; step < N_STEPS; ++step)
    for (int k = 0; k < 2; ++k) free(sc_dense.logits[step][k]);
  for (int32_t s = 0; s < N_SEQS; ++s) free(prompts[s]);
  engine_side_free(&cpu);
  engine_side_free(&gpu);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  up_backend *gpu = gpu_check_cuda_backend();
  up_backend *cpu = up_cpu_backend_create(0);
  test_model("tiny-qwen3-next", up_model_preset_find("tiny-qwen3-next"), true, cpu, gpu);
  up_model_config four = *up_model_preset_find("qwen3-next-80b-a3b");
  if (!up_model_config_truncate(&four, 4)) {
    printf("FAIL qwen3-next-80b-a3b: 4 layers refused\n");
    return 1;
  }
  test_model(four.name, &four, false, cpu, gpu);
  cpu->ops->destroy(cpu);
  gpu->ops->destroy(gpu);
  return gpu_check_finish();
}
