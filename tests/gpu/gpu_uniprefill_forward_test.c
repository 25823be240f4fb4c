/* gpu_uniprefill_forward_test.c — UniPrefill's compacted forward pass on the CUDA
 * backend against the CPU reference, over continuous-batching steps:
 *   step 0      request 0 (704 tokens) prefilled alone, dropped from;
 *   step 1      one packed batch: request 0's decode token, two long prompts (1024 and
 *               640 tokens, dropped from) and a short one (120 tokens, at most
 *               sink + last_q: left alone);
 *   steps 2-4   decode tokens of all four, appended at each layer's own KV length;
 * then (b) each request prefilled alone on the GPU against its row in the batch.
 * Models: tiny-llama (head_dim 64, 2 query heads per KV head, drops after layers 1, 3
 * and 5) and a 2-layer Llama-3.1-8B (head_dim 128, groups of 4, drop after layer 0);
 * fixed budget keep 0.3, block 64, sink 64, last_q 64.
 *
 * Random weights give near-uniform attention, where the block scores at the budget's
 * edge differ by about 1% and bf16 and fp32 pick different blocks. So the inputs make
 * the scores far apart: every query head is its KV head's key projection times 2 (on
 * both backends), so a query attends most to keys of its own token; the long prompts
 * end in LAST_Q copies of one token and hold fewer and fewer copies of it in the
 * blocks before (magnet_prompt), so at every drop the blocks to keep outscore the rest
 * by 50% or more (measured on the CPU: the smallest margin was 0.57 with bf16-rounded
 * weights too).
 *
 * Every selection is checked and then replaced by the GPU batch's: the test's method
 * runs the backend's own selection, compares its kept rows with the GPU batch's for the
 * same request and drop (count and rows, exactly), then applies the GPU batch's rows,
 * so logits are always compared over the same tokens and a selection that differs is
 * reported on its own: a failure, unless the CPU's block scores put the lowest kept
 * and the highest dropped block within NEAR_TIE of each other (then flagged, not
 * counted). Logits are compared by normalized error (bf16 tolerance), rows per layer
 * and KV lengths exactly. Exits 77 without a GPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/memory/kv_cache.h"
#include "engine/methods/method.h"
#include "engine/methods/uniprefill.h"
#include "engine/model/model.h"
#include "kernels/cpu/uniprefill_select.h"
#include "core/fatal.h"
#include "tests/gpu/engine_side.h"
#include "tests/gpu/gpu_check.h"

enum { N_REQ = 4, DECODE_STEPS = 3, N_STEPS = 2 + DECODE_STEPS, MAX_DROPS = 8 };
enum { BLOCK = 64, SINK = 64, LAST_Q = 64, MAGNET = 7 }; /* as METHOD_SPEC */
#define METHOD_SPEC "uniprefill:keep=0.3:block=64:sink=64:last_q=64"
static const float QUERY_GAIN = 2.0f;     /* a power of two: exact in bf16 */
static const double NEAR_TIE = 5e-2;      /* (lowest kept - highest dropped) / lowest kept, CPU block scores */
static const double LOGIT_TOL = 3e-2;     /* normalized error, bf16 vs fp32 (as gpu_forward_test) */
static const double ALONE_TOL = 3e-2;     /* bf16 batch vs bf16 alone: other GEMM shapes, other rounding */
static const int32_t PROMPT_LENS[N_REQ] = {704, 1024, 120, 640};
static const int32_t SHORT_REQ = 2;       /* 120 <= sink + last_q */
/* Copies of MAGNET in the blocks before the last, nearest first. */
static const int32_t MAGNET_COUNTS[] = {56, 44, 32, 20, 12, 8};

/* --- selections, per request ----------------------------------------------------- */

/* One selection call: for each sequence of the batch, the request it serves, the rows
 * it had entering the drop layer, and the kept ones as indices within those rows. */
typedef struct selection {
  int32_t n_seqs;
  int64_t ids[ENGINE_SIDE_MAX_SEQS];
  int32_t n_rows[ENGINE_SIDE_MAX_SEQS];
  int32_t n_kept[ENGINE_SIDE_MAX_SEQS];
  int32_t *kept[ENGINE_SIDE_MAX_SEQS]; /* owned */
  double margin[ENGINE_SIDE_MAX_SEQS]; /* CPU block-score margin; INFINITY: not scored or not computed */
} selection;

/* The selection calls of one forward, in drop-layer order. */
typedef struct forward_log {
  int32_t n_calls;
  selection calls[MAX_DROPS];
} forward_log;

static void forward_log_free(forward_log *log) {
  for (int32_t c = 0; c < log->n_calls; ++c)
    for (int32_t s = 0; s < log->calls[c].n_seqs; ++s) free(log->calls[c].kept[s]);
  memset(log, 0, sizeof *log);
}

/* Sequence index of request id in a selection, or -1. */
static int32_t selection_find(const selection *sel, int64_t id) {
  for (int32_t s = 0; s < sel->n_seqs; ++s)
    if (sel->ids[s] == id) return s;
  return -1;
}

/* The margin of the CPU's fixed-budget choice for each scored sequence: how far apart,
 * relative to the lowest kept block score, the lowest kept and the highest dropped
 * blocks are. qkv, the pool and the batch are host memory on the CPU backend. */
static void cpu_margins(selection *sel, const float *qkv, const up_kv_pool *pool, const up_attn_batch *batch,
                        const up_attn_shape *shape, const uint8_t *is_candidate, const up_select_params *prm,
                        const int32_t *cu) {
  const int32_t stride = (shape->n_heads + 2 * shape->n_kv_heads) * shape->head_dim;
  for (int32_t s = 0; s < batch->n_seqs; ++s) {
    sel->margin[s] = INFINITY;
    const int32_t n = cu[s + 1] - cu[s];
    if (!is_candidate[s] || n <= prm->sink + prm->last_q) continue;
    double *scores = up_malloc_or_die(sizeof(double) * (size_t)n, "token scores");
    up_select_token_scores(qkv + (size_t)cu[s] * stride, n, pool,
                           batch->block_tables + (size_t)s * batch->max_blocks_per_seq, shape, prm->last_q, scores);
    const int32_t nb = (n + prm->block - 1) / prm->block;
    double *block_scores = up_calloc_or_die((size_t)nb, sizeof(double), "block scores");
    uint8_t *keep = up_malloc_or_die((size_t)nb, "block mask");
    for (int32_t t = 0; t < n; ++t) block_scores[t / prm->block] += scores[t];
    const int32_t kept = up_select_blocks(block_scores, nb, prm->top_p, prm->keep_fraction, keep);
    double min_kept = INFINITY, max_dropped = 0.0;
    for (int32_t b = 0; b < nb; ++b) {
      if (keep[b]) min_kept = fmin(min_kept, block_scores[b]);
      else max_dropped = fmax(max_dropped, block_scores[b]);
    }
    if (kept < nb) sel->margin[s] = (min_kept - max_dropped) / min_kept;
    free(scores);
    free(block_scores);
    free(keep);
  }
}

/* --- the test's method: the backend's selection, checked, then the reference's ------ */

typedef struct checked_select {
  const char *side;              /* names the backend in messages */
  const int64_t *ids;            /* request id of each sequence of the forward */
  forward_log *own;              /* filled with this backend's own choices */
  const forward_log *reference;  /* the GPU batch's forward: compared with and applied; NULL: keep own */
  const forward_log *judge;      /* where the CPU margins of near ties come from; NULL: own (the CPU) */
  int compute_margins;           /* this side is the CPU */
  int32_t mismatched;            /* sequences whose rows differ from the reference beyond a near tie */
  int32_t near_ties;             /* ... and within one (flagged) */
  double min_margin;
  char first_mismatch[320];
} checked_select;

/* Row indices for a selection of `sel` applied to the batch's rows (offsets cu). */
static int32_t apply_selection(const selection *ref, const checked_select *cs, int32_t n_seqs, const int32_t *cu,
                               int32_t *rows, int32_t *new_cu) {
  int32_t n = 0;
  new_cu[0] = 0;
  for (int32_t s = 0; s < n_seqs; ++s) {
    const int32_t r = selection_find(ref, cs->ids[s]);
    if (r < 0 || ref->n_rows[r] != cu[s + 1] - cu[s]) {
      printf("FAIL %s: request %lld has %d rows at this drop but the reference %s; the runs diverged\n", cs->side,
             (long long)cs->ids[s], cu[s + 1] - cu[s], r < 0 ? "lacks it" : "saw another count");
      exit(1);
    }
    for (int32_t i = 0; i < ref->n_kept[r]; ++i) rows[n++] = cu[s] + ref->kept[r][i];
    new_cu[s + 1] = n;
  }
  return n;
}

/* Compare own's choice of each sequence with the reference's. */
static void compare_selection(checked_select *cs, const selection *own, const selection *ref,
                              const selection *judge) {
  for (int32_t s = 0; s < own->n_seqs; ++s) {
    const int32_t r = selection_find(ref, own->ids[s]);
    const int same = r >= 0 && own->n_kept[s] == ref->n_kept[r] &&
                     memcmp(own->kept[s], ref->kept[r], sizeof(int32_t) * (size_t)own->n_kept[s]) == 0;
    const int32_t j = judge ? selection_find(judge, own->ids[s]) : s;
    const double margin = judge ? (j >= 0 ? judge->margin[j] : INFINITY) : own->margin[s];
    if (isfinite(margin)) cs->min_margin = fmin(cs->min_margin, margin);
    if (same) continue;
    if (margin < NEAR_TIE) {
      ++cs->near_ties;
      printf("FLAG %s: request %lld keeps %d rows, the GPU batch %d: a near tie (CPU margin %.4f < %.2f), not "
             "counted\n", cs->side, (long long)own->ids[s], own->n_kept[s], r >= 0 ? ref->n_kept[r] : -1, margin,
             NEAR_TIE);
      continue;
    }
    if (cs->mismatched++ == 0) {
      int32_t first = -1;
      for (int32_t i = 0; r >= 0 && i < own->n_kept[s] && i < ref->n_kept[r]; ++i)
        if (own->kept[s][i] != ref->kept[r][i]) {
          first = i;
          break;
        }
      snprintf(cs->first_mismatch, sizeof cs->first_mismatch,
               "; request %lld: %d rows kept of %d, the GPU batch %d, first differing kept row #%d (%d vs %d), CPU "
               "margin %.4f", (long long)own->ids[s], own->n_kept[s], own->n_rows[s], r >= 0 ? ref->n_kept[r] : -1,
               first, first >= 0 ? own->kept[s][first] : -1, first >= 0 ? ref->kept[r][first] : -1, margin);
    }
  }
}

static int32_t checked_select_rows(const up_method *m, up_backend *be, const up_method_layer *at, int32_t *keep_rows,
                                   int32_t *new_cu) {
  checked_select *cs = m->state;
  const up_select_params *prm = &up_uniprefill_options_of(&m->spec)->select;
  const void *qkv = at->qkv;
  const up_kv_pool *pool = at->pool;
  const up_attn_batch *batch = at->batch;
  const up_attn_shape *shape = at->shape;
  const uint8_t *is_candidate = at->is_prefill_host;
  const int32_t n_seqs = batch->n_seqs, d = cs->own->n_calls;
  if (d >= MAX_DROPS) {
    printf("FAIL %s: more than %d drops in one forward\n", cs->side, MAX_DROPS);
    exit(1);
  }
  int32_t cu[ENGINE_SIDE_MAX_SEQS + 1];
  be->ops->download_i32(be, cu, batch->cu_seqlens, (size_t)n_seqs + 1);
  const int32_t kept =
      up_uniprefill_select(be, keep_rows, new_cu, qkv, pool, batch, shape, is_candidate, prm);
  int32_t *rows = up_malloc_or_die(sizeof(int32_t) * (size_t)(cu[n_seqs] > 0 ? cu[n_seqs] : 1), "kept rows");
  be->ops->download_i32(be, rows, keep_rows, (size_t)kept);

  selection *own = &cs->own->calls[d];
  cs->own->n_calls++;
  own->n_seqs = n_seqs;
  for (int32_t s = 0; s < n_seqs; ++s) {
    own->ids[s] = cs->ids[s];
    own->n_rows[s] = cu[s + 1] - cu[s];
    own->n_kept[s] = new_cu[s + 1] - new_cu[s];
    own->kept[s] = up_malloc_or_die(sizeof(int32_t) * (size_t)(own->n_kept[s] > 0 ? own->n_kept[s] : 1), "kept");
    for (int32_t i = 0; i < own->n_kept[s]; ++i) own->kept[s][i] = rows[new_cu[s] + i] - cu[s];
    own->margin[s] = INFINITY;
  }
  if (cs->compute_margins) cpu_margins(own, qkv, pool, batch, shape, is_candidate, prm, cu);
  if (!cs->reference) {
    free(rows);
    return kept;
  }
  if (d >= cs->reference->n_calls) {
    printf("FAIL %s: drop %d has no counterpart in the GPU batch's %d\n", cs->side, d, cs->reference->n_calls);
    exit(1);
  }
  const selection *ref = &cs->reference->calls[d];
  compare_selection(cs, own, ref, cs->judge ? &cs->judge->calls[d] : NULL);
  const int32_t n = apply_selection(ref, cs, n_seqs, cu, rows, new_cu);
  be->ops->upload_i32(be, keep_rows, rows, (size_t)n);
  free(rows);
  return n;
}

/* --- the scenario ---------------------------------------------------------------- */

/* Make every query head of every layer its KV head's key projection times gain (the
 * fused QKV weight holds n_heads query heads, then n_kv_heads key heads, each head_dim
 * rows of hidden values), on the model's backend: a query then scores keys of its own
 * token highest. */
static void tie_queries_to_keys(up_model *model, float gain) {
  const up_model_config *cfg = &model->cfg;
  up_backend *be = model->be;
  const size_t head = (size_t)cfg->head_dim * (size_t)cfg->hidden;
  const int32_t group = cfg->n_heads / cfg->n_kv_heads;
  float *w = up_malloc_or_die(sizeof(float) * head, "key head weights");
  for (int32_t l = 0; l < cfg->n_layers; ++l)
    for (int32_t g = 0; g < cfg->n_kv_heads; ++g) {
      be->ops->download_f32(be, w, up_model_weight(model, UP_TENSOR_ATTN_QKV, l), ((size_t)cfg->n_heads + g) * head, head);
      for (size_t i = 0; i < head; ++i) w[i] *= gain;
      for (int32_t h = g * group; h < (g + 1) * group; ++h)
        be->ops->upload_f32(be, up_model_weight(model, UP_TENSOR_ATTN_QKV, l), (size_t)h * head, w, head);
    }
  free(w);
}

/* n random tokens, never MAGNET; when n is over sink + last_q, the last LAST_Q become
 * MAGNET and so do MAGNET_COUNTS[k] random places of the k-th block before the last,
 * for the budget's other blocks (ceil(0.3 blocks) - 1 of them). n is a multiple of
 * BLOCK, so the scoring queries fill the last block. */
static void magnet_prompt(int32_t *tokens, int32_t n, int32_t vocab, uint32_t *x) {
  for (int32_t i = 0; i < n; ++i) {
    do {
      *x = *x * 1664525u + 1013904223u;
      tokens[i] = (int32_t)((*x >> 8) % (uint32_t)vocab);
    } while (tokens[i] == MAGNET);
  }
  if (n <= SINK + LAST_Q) return;
  const int32_t n_blocks = n / BLOCK, budget = (int32_t)ceil(0.3 * n_blocks - 1e-4);
  for (int32_t i = n - LAST_Q; i < n; ++i) tokens[i] = MAGNET;
  for (int32_t k = 0; k + 1 < budget; ++k) {
    const int32_t first = (n_blocks - 2 - k) * BLOCK;
    for (int32_t c = 0; c < MAGNET_COUNTS[k];) {
      *x = *x * 1664525u + 1013904223u;
      int32_t *t = &tokens[first + (int32_t)((*x >> 8) % BLOCK)];
      if (*t != MAGNET) {
        *t = MAGNET;
        ++c;
      }
    }
  }
}

typedef struct scenario {
  const char *label;
  const up_model_config *cfg;
  up_method_spec spec;
  int32_t *prompts[N_REQ];
  int32_t max_entries;
  /* per step and side (0 cpu, 1 gpu): last-row logits [N_REQ][vocab] in batch order */
  float *logits[N_STEPS][2];
  forward_log logs[N_STEPS][2];
  int32_t tokens[N_REQ]; /* the next decode input of each request: the CPU's greedy token */
} scenario;

/* The requests of a step in batch order: step 0 prefills request 0; step 1 decodes it
 * beside the prefills of the others; later steps decode all. */
static int32_t step_batch(const scenario *sc, const engine_side *side, int32_t step, int64_t *ids,
                          up_forward_seq *seqs) {
  int32_t n = 0;
  for (int32_t r = 0; r < N_REQ; ++r) {
    const int32_t prefill_step = r == 0 ? 0 : 1;
    if (step < prefill_step) continue;
    const int prefill = step == prefill_step;
    ids[n] = r;
    seqs[n] = (up_forward_seq){.slot = side->slots[r], .n_tokens = prefill ? PROMPT_LENS[r] : 1,
                               .tokens = prefill ? sc->prompts[r] : &sc->tokens[r],
                               .first_position = prefill ? 0 : PROMPT_LENS[r] + step - prefill_step - 1,
                               .is_prefill = prefill};
    ++n;
  }
  return n;
}

static up_method checked_method(const up_method_spec *spec, checked_select *cs, up_method_ops *ops) {
  *ops = (up_method_ops){.name = "checked uniprefill",
                         .drops_after = spec->method->drops_after,
                         .select = checked_select_rows};
  return (up_method){.ops = ops, .spec = *spec, .state = cs};
}

/* One forward of a step on one side; the selection is checked against `reference`. */
static void run_step(scenario *sc, engine_side *side, int k, int32_t step, const forward_log *reference,
                     checked_select *cs, int32_t *layer_rows, int32_t *next) {
  int64_t ids[N_REQ];
  up_forward_seq seqs[N_REQ];
  const int32_t n = step_batch(sc, side, step, ids, seqs);
  *cs = (checked_select){.side = k ? "gpu batch" : "cpu", .ids = ids, .own = &sc->logs[step][k],
                         .reference = reference, .compute_margins = k == 0, .min_margin = INFINITY};
  up_method_ops ops;
  const up_method method = checked_method(&sc->spec, cs, &ops);
  up_forward_out out = {.next_tokens = next, .seq_layer_rows = layer_rows, .logits = sc->logits[step][k]};
  up_forward(side->model, side->ws, side->cache, &side->pool, &method, seqs, n, &out);
}

/* Steps 0 .. N_STEPS-1 on both sides: GPU first (its selections are the reference),
 * then the CPU, which checks its own choices against them and applies them. */
static void run_batch(scenario *sc, engine_side *cpu, engine_side *gpu) {
  const int32_t L = sc->cfg->n_layers, vocab = sc->cfg->vocab;
  for (int k = 0; k < 2; ++k) {
    engine_side *side = k ? gpu : cpu;
    for (int32_t r = 0; r < N_REQ; ++r) {
      side->slots[r] = up_kv_cache_acquire_slot(side->cache);
      if (side->slots[r] < 0 || !up_kv_cache_reserve(side->cache, side->slots[r], sc->max_entries)) {
        printf("FAIL %s: no KV room for request %d\n", sc->label, (int)r);
        exit(1);
      }
    }
  }
  for (int32_t step = 0; step < N_STEPS; ++step) {
    int32_t rows[2][N_REQ * UP_MAX_LAYERS], next[2][N_REQ];
    checked_select cs_gpu, cs_cpu;
    run_step(sc, gpu, 1, step, NULL, &cs_gpu, rows[1], next[1]);
    run_step(sc, cpu, 0, step, &sc->logs[step][1], &cs_cpu, rows[0], next[0]);
    int64_t ids[N_REQ];
    up_forward_seq seqs[N_REQ];
    const int32_t n = step_batch(sc, cpu, step, ids, seqs);
    const char *what = step == 0 ? "prefill of request 0" : step == 1 ? "decode of 0 + prefills 1024, 120, 640"
                                                                      : "decode of all four";

    if (sc->logs[step][1].n_calls > 0)
      CHECK(cs_cpu.mismatched == 0, "%s step %d (%s): CPU keeps the GPU's rows at all %d drops (%d near ties "
            "flagged, smallest CPU margin %.4f)%s", sc->label, (int)step, what, sc->logs[step][1].n_calls,
            cs_cpu.near_ties, cs_cpu.min_margin, cs_cpu.first_mismatch);
    CHECK(memcmp(rows[0], rows[1], sizeof(int32_t) * (size_t)n * L) == 0,
          "%s step %d: rows entering each layer equal on both backends", sc->label, (int)step);

    /* KV lengths per layer: equal on both backends, and the drops reached the cache. */
    int32_t kv_diff = 0;
    for (int32_t r = 0; r < n; ++r)
      for (int32_t l = 0; l < L; ++l)
        kv_diff += up_kv_cache_len(cpu->cache, cpu->slots[ids[r]], l) != up_kv_cache_len(gpu->cache, gpu->slots[ids[r]], l);
    CHECK(kv_diff == 0, "%s step %d: KV lengths of every request and layer equal on both backends (%d differ)",
          sc->label, (int)step, kv_diff);

    double worst = 0.0;
    char per_req[160] = "";
    size_t used = 0;
    for (int32_t r = 0; r < n; ++r) {
      const double err = logits_rel_err(sc->logits[step][1] + (size_t)r * vocab,
                                        sc->logits[step][0] + (size_t)r * vocab, (size_t)vocab);
      worst = fmax(worst, err);
      used += (size_t)snprintf(per_req + used, sizeof per_req - used, "%s%lld: %.2e (argmax %s)", r ? ", " : "",
                               (long long)ids[r], err, next[0][r] == next[1][r] ? "same" : "differs");
    }
    CHECK_REL_ERR(worst, LOGIT_TOL, "%s step %d (%s) logits, worst request [%.150s]", sc->label, (int)step, what,
                  per_req);
    for (int32_t r = 0; r < n; ++r) sc->tokens[ids[r]] = next[0][r];

    if (step == 1) {
      /* The inputs do what the test says: long prompts lose rows, the short one none. */
      for (int32_t r = 0; r < n; ++r) {
        const int32_t first = rows[1][r * L], last = rows[1][r * L + L - 1];
        if (!seqs[r].is_prefill) continue;
        if (ids[r] == SHORT_REQ)
          CHECK(last == first, "%s: the short prompt (%d tokens) keeps every row (%d at the last layer)", sc->label,
                first, last);
        else
          CHECK(last < first, "%s: prompt of %d tokens dropped to %d rows by the last layer", sc->label, first, last);
        const int32_t cached = up_kv_cache_len(gpu->cache, gpu->slots[ids[r]], L - 1);
        CHECK(cached == last, "%s: request %lld caches %d entries at the last layer, the rows that entered it (%d)",
              sc->label, (long long)ids[r], cached, last);
      }
    }
  }
}

/* (b) Each request prefilled alone on the GPU, in fresh slots: the same kept rows as in
 * the batch (checked, near ties judged by the CPU's margins) and its batch logits. */
static void run_alone(scenario *sc, engine_side *gpu) {
  const int32_t vocab = sc->cfg->vocab;
  for (int32_t r = 0; r < N_REQ; ++r) up_kv_cache_release_slot(gpu->cache, gpu->slots[r]);
  float *logits = up_malloc_or_die(sizeof(float) * (size_t)vocab, "alone logits");
  for (int32_t r = 0; r < N_REQ; ++r) {
    const int32_t step = r == 0 ? 0 : 1;
    const int32_t slot = up_kv_cache_acquire_slot(gpu->cache);
    if (slot < 0 || !up_kv_cache_reserve(gpu->cache, slot, sc->max_entries)) {
      printf("FAIL %s: no KV room for request %d alone\n", sc->label, (int)r);
      exit(1);
    }
    const int64_t id = r;
    forward_log alone = {0};
    checked_select cs = {.side = "gpu alone", .ids = &id, .own = &alone, .reference = &sc->logs[step][1],
                         .judge = &sc->logs[step][0], .min_margin = INFINITY};
    up_method_ops ops;
    const up_method method = checked_method(&sc->spec, &cs, &ops);
    const up_forward_seq seq = {.slot = slot, .n_tokens = PROMPT_LENS[r], .tokens = sc->prompts[r],
                                .first_position = 0, .is_prefill = true};
    int32_t next;
    up_forward_out out = {.next_tokens = &next, .logits = logits};
    up_forward(gpu->model, gpu->ws, gpu->cache, &gpu->pool, &method, &seq, 1, &out);
    up_kv_cache_release_slot(gpu->cache, slot);
    /* Request r's row in the batch of its prefill step: request 0 alone at step 0; at
     * step 1 request 0's decode comes first, so request r sits at row r. */
    const float *batch_logits = sc->logits[step][1] + (size_t)r * vocab;
    CHECK(cs.mismatched == 0, "%s: request %d alone keeps its batch rows at all %d drops (%d near ties flagged)%s",
          sc->label, (int)r, alone.n_calls, cs.near_ties, cs.first_mismatch);
    CHECK_REL_ERR(logits_rel_err(logits, batch_logits, (size_t)vocab), ALONE_TOL,
                  "%s: request %d (%d tokens) alone vs in the batch, GPU logits", sc->label, (int)r, PROMPT_LENS[r]);
    forward_log_free(&alone);
  }
  free(logits);
}

/* Both runs on one model; a model without preset drop layers (the 2-layer Llama) drops
 * after layer 0. */
static void run_scenario(const char *label, const up_model_config *cfg, up_backend *cpu_be, up_backend *gpu_be) {
  const char *layers = cfg->n_drop_layers > 0 ? NULL : "0";
  scenario sc = {.label = label, .cfg = cfg, .max_entries = 1024 + N_STEPS + 1};
  char text[64], err[256];
  snprintf(text, sizeof text, METHOD_SPEC "%s%s", layers ? ":layers=" : "",
           layers ? layers : "");
  if (!up_method_spec_parse(text, NULL, &sc.spec, err, sizeof err) ||
      !up_method_spec_resolve(&sc.spec, cfg, err, sizeof err)) {
    printf("FAIL %s: method %s: %s\n", label, text, err);
    exit(1);
  }
  uint32_t x = 4242;
  for (int32_t r = 0; r < N_REQ; ++r) {
    sc.prompts[r] = up_malloc_or_die(sizeof(int32_t) * (size_t)PROMPT_LENS[r], "prompt");
    magnet_prompt(sc.prompts[r], PROMPT_LENS[r], cfg->vocab, &x);
  }
  for (int32_t step = 0; step < N_STEPS; ++step)
    for (int k = 0; k < 2; ++k)
      sc.logits[step][k] = up_calloc_or_die((size_t)N_REQ * cfg->vocab, sizeof(float), "logits");

  int64_t workspace = N_REQ;
  for (int32_t r = 0; r < N_REQ; ++r) workspace += PROMPT_LENS[r];
  engine_side cpu, gpu;
  engine_side_init(&cpu, cpu_be, cfg, N_REQ, sc.max_entries, workspace);
  engine_side_init(&gpu, gpu_be, cfg, N_REQ, sc.max_entries, workspace);
  tie_queries_to_keys(cpu.model, QUERY_GAIN);
  tie_queries_to_keys(gpu.model, QUERY_GAIN);

  run_batch(&sc, &cpu, &gpu);
  run_alone(&sc, &gpu);

  for (int32_t step = 0; step < N_STEPS; ++step)
    for (int k = 0; k < 2; ++k) {
      free(sc.logits[step][k]);
      forward_log_free(&sc.logs[step][k]);
    }
  for (int32_t r = 0; r < N_REQ; ++r) free(sc.prompts[r]);
  engine_side_free(&cpu);
  engine_side_free(&gpu);
}

int main(void) { return engine_side_main(run_scenario); }
