/* test_forward.c — continuous-batching correctness of the forward pass on the CPU
 * backend: a packed batch gives each request the logits it gets alone (dense and
 * UniPrefill), UniPrefill at p = 1 is dense, and decode after a drop attends each
 * layer's own kept entries — checked against a recomputation that replays the same
 * drops on the prompt plus the generated tokens in one prefill. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/memory/kv_cache.h"
#include "engine/methods/method.h"
#include "engine/model/model.h"
#include "kernels/cpu/cpu_backend.h"
#include "tests/small_model.h"

enum { N_LAYERS = SMALL_N_LAYERS, BLOCK_TOKENS = 16, MAX_SEQS = 4, MAX_ENTRIES = 1024 };

/* A model, a cache and a workspace that a test runs forwards through. */
typedef struct harness {
  up_backend *be;
  up_model *model;
  up_kv_cache *cache;
  up_kv_pool pool;
  up_forward_workspace *ws;
} harness;

static void harness_init(harness *h) {
  const up_model_config cfg = small_config();
  h->be = up_cpu_backend_create(1);
  h->model = up_model_create_random(&cfg, h->be, 1234);
  const int32_t maxb = MAX_ENTRIES / BLOCK_TOKENS;
  const int32_t n_blocks = maxb * N_LAYERS * MAX_SEQS;
  h->cache = up_kv_cache_create(n_blocks, BLOCK_TOKENS, N_LAYERS, MAX_SEQS, maxb);
  const int32_t kv_dim = cfg.n_kv_heads * cfg.head_dim;
  h->pool = (up_kv_pool){.n_blocks = n_blocks, .block_tokens = BLOCK_TOKENS, .kv_dim = kv_dim};
  h->pool.k = h->be->ops->alloc(h->be, sizeof(float) * (size_t)n_blocks * BLOCK_TOKENS * kv_dim, "test K");
  h->pool.v = h->be->ops->alloc(h->be, sizeof(float) * (size_t)n_blocks * BLOCK_TOKENS * kv_dim, "test V");
  h->ws = up_forward_workspace_create(h->model, MAX_SEQS * MAX_ENTRIES, MAX_SEQS, maxb);
}

static void harness_free(harness *h) {
  up_forward_workspace_destroy(h->ws);
  h->be->ops->free(h->be, h->pool.k);
  h->be->ops->free(h->be, h->pool.v);
  up_kv_cache_destroy(h->cache);
  up_model_destroy(h->model);
  h->be->ops->destroy(h->be);
}

/* Prefill the given prompts together in fresh slots; logits [n][vocab], rows per layer [n][L]. */
static void prefill(harness *h, const up_method *method, int32_t *const *prompts, const int32_t *lens, int32_t n,
                    int32_t *slots, float *logits, int32_t *layer_rows) {
  up_forward_seq seqs[MAX_SEQS];
  for (int32_t s = 0; s < n; ++s) {
    slots[s] = up_kv_cache_acquire_slot(h->cache);
    cr_assert_geq(slots[s], 0);
    cr_assert(up_kv_cache_reserve(h->cache, slots[s], lens[s] + 8));
    seqs[s] = (up_forward_seq){.slot = slots[s], .n_tokens = lens[s], .tokens = prompts[s], .first_position = 0,
                               .is_prefill = true};
  }
  int32_t next[MAX_SEQS];
  up_forward_out out = {.next_tokens = next, .seq_layer_rows = layer_rows, .logits = logits};
  up_forward(h->model, h->ws, h->cache, &h->pool, method, seqs, n, &out);
}

static void release_all(harness *h, const int32_t *slots, int32_t n) {
  for (int32_t s = 0; s < n; ++s) up_kv_cache_release_slot(h->cache, slots[s]);
}

/* n random prompts of the given lengths; prompt s is drawn from seed + s. */
static void make_prompts(int32_t **prompts, const int32_t *lens, int32_t n, uint32_t seed) {
  for (int32_t s = 0; s < n; ++s) {
    prompts[s] = malloc(sizeof(int32_t) * (size_t)lens[s]);
    random_prompt(prompts[s], lens[s], seed + (uint32_t)s);
  }
}

static void free_prompts(int32_t **prompts, int32_t n) {
  for (int32_t s = 0; s < n; ++s) free(prompts[s]);
}

static up_method dense_method(up_backend *be) {
  const up_method_spec spec = small_spec("dense");
  return small_method(&spec, be);
}

static up_method uniprefill_method(up_backend *be, float top_p, float keep_fraction) {
  const up_method_spec spec = uniprefill_spec(top_p, keep_fraction);
  return small_method(&spec, be);
}

static void check_batch_equals_alone(const up_method_spec *spec) {
  harness h;
  harness_init(&h);
  const up_method method = small_method(spec, h.be);
  const int32_t lens[3] = {700, 40, 520};
  int32_t *prompts[3];
  make_prompts(prompts, lens, 3, 1);
  const int32_t vocab = h.model->cfg.vocab;
  float *batch_logits = malloc(sizeof(float) * 3 * (size_t)vocab), *alone_logits = malloc(sizeof(float) * (size_t)vocab);
  int32_t batch_rows[3 * N_LAYERS], alone_rows[N_LAYERS], slots[3];
  prefill(&h, &method, prompts, lens, 3, slots, batch_logits, batch_rows);
  release_all(&h, slots, 3);
  for (int32_t s = 0; s < 3; ++s) {
    prefill(&h, &method, &prompts[s], &lens[s], 1, slots, alone_logits, alone_rows);
    release_all(&h, slots, 1);
    for (int32_t l = 0; l < N_LAYERS; ++l)
      cr_assert_eq(batch_rows[s * N_LAYERS + l], alone_rows[l], "%s: request %d layer %d rows", spec->label, s, l);
    const double err = max_rel_diff(batch_logits + (size_t)s * vocab, alone_logits, vocab);
    cr_assert_lt(err, 1e-4, "%s: request %d logits differ by %g", spec->label, s, err);
  }
  free_prompts(prompts, 3);
  free(batch_logits);
  free(alone_logits);
  harness_free(&h);
}

Test(forward, packed_batch_equals_each_request_alone_dense) {
  const up_method_spec spec = small_spec("dense");
  check_batch_equals_alone(&spec);
}

Test(forward, packed_batch_equals_each_request_alone_uniprefill) {
  const up_method_spec spec = uniprefill_spec(0.99f, 0.3f);
  check_batch_equals_alone(&spec);
}

Test(forward, uniprefill_at_p_one_is_dense) {
  harness h;
  harness_init(&h);
  const up_model_config cfg = small_config();
  const up_method dense = dense_method(h.be), uni = uniprefill_method(h.be, 1.0f, 0.0f);
  const int32_t lens[2] = {900, 300};
  int32_t *prompts[2];
  make_prompts(prompts, lens, 2, 77);
  float *a = malloc(sizeof(float) * 2 * cfg.vocab), *b = malloc(sizeof(float) * 2 * cfg.vocab);
  int32_t rows_a[2 * N_LAYERS], rows_b[2 * N_LAYERS], slots[2];
  prefill(&h, &dense, prompts, lens, 2, slots, a, rows_a);
  release_all(&h, slots, 2);
  prefill(&h, &uni, prompts, lens, 2, slots, b, rows_b);
  release_all(&h, slots, 2);
  for (int32_t i = 0; i < 2 * N_LAYERS; ++i) cr_assert_eq(rows_a[i], rows_b[i]);
  cr_assert_lt(max_rel_diff(b, a, 2 * cfg.vocab), 1e-6);
  free_prompts(prompts, 2);
  free(a);
  free(b);
  harness_free(&h);
}

/* The per-layer record of attention work: dense and UniPrefill attend every causal
 * pair of the rows that enter a layer, so computed equals causal, and the causal
 * pairs of a prefill on an empty cache are r (r + 1) / 2 for r rows entering. */
Test(forward, attention_work_record_counts_the_rows_entering_each_layer) {
  harness h;
  harness_init(&h);
  const up_method uni = uniprefill_method(h.be, 0.99f, 0.4f);
  const int32_t lens[2] = {700, 40};
  int32_t *prompts[2], slots[2];
  make_prompts(prompts, lens, 2, 31);
  up_forward_seq seqs[2];
  for (int32_t s = 0; s < 2; ++s) {
    slots[s] = up_kv_cache_acquire_slot(h.cache);
    cr_assert(slots[s] >= 0 && up_kv_cache_reserve(h.cache, slots[s], lens[s] + 1));
    seqs[s] = (up_forward_seq){.slot = slots[s], .n_tokens = lens[s], .tokens = prompts[s], .is_prefill = true};
  }
  int32_t next[2], rows[2 * N_LAYERS];
  up_attn_work work[N_LAYERS];
  up_forward_out out = {.next_tokens = next, .seq_layer_rows = rows, .layer_attn = work};
  up_forward(h.model, h.ws, h.cache, &h.pool, &uni, seqs, 2, &out);
  for (int32_t l = 0; l < N_LAYERS; ++l) {
    double causal = 0.0;
    for (int32_t s = 0; s < 2; ++s) causal += rows[s * N_LAYERS + l] * (rows[s * N_LAYERS + l] + 1.0) / 2.0;
    cr_expect_float_eq(work[l].causal, causal, 1e-9, "layer %d", l);
    cr_expect_eq(work[l].computed, work[l].causal, "layer %d: dense attention computes every causal pair", l);
  }
  cr_expect_lt(work[N_LAYERS - 1].causal, work[0].causal, "the drops shrink the later layers' work");
  release_all(&h, slots, 2);
  free_prompts(prompts, 2);
  harness_free(&h);
}

/* --- decode after a drop --------------------------------------------------------- */

/* Records which rows UniPrefill keeps at each drop layer of one sequence. */
typedef struct drop_record {
  int32_t n_drops;
  int32_t n_kept[N_LAYERS];
  int32_t *kept[N_LAYERS];
  int32_t extra_rows; /* replay: rows after the prompt that always survive */
  int32_t prompt_rows[N_LAYERS];
} drop_record;

static int32_t recording_select(const up_method *m, up_backend *be, const up_method_layer *at, int32_t *keep_rows,
                                int32_t *new_cu) {
  drop_record *rec = m->state;
  const int32_t kept = m->spec.method->select(m, be, at, keep_rows, new_cu);
  rec->kept[rec->n_drops] = malloc(sizeof(int32_t) * (size_t)kept);
  memcpy(rec->kept[rec->n_drops], keep_rows, sizeof(int32_t) * (size_t)kept);
  rec->prompt_rows[rec->n_drops] = at->batch->n_tokens;
  rec->n_kept[rec->n_drops++] = kept;
  return kept;
}

/* Replays recorded drops on the prompt rows and keeps every row after them. */
static int32_t replay_select(const up_method *m, up_backend *be, const up_method_layer *at, int32_t *keep_rows,
                             int32_t *new_cu) {
  drop_record *rec = m->state;
  const int32_t d = rec->n_drops++;
  cr_assert_eq(at->batch->n_tokens, rec->prompt_rows[d] + rec->extra_rows, "replay sees the recorded rows plus extras");
  int32_t n = 0;
  for (int32_t i = 0; i < rec->n_kept[d]; ++i) keep_rows[n++] = rec->kept[d][i];
  for (int32_t i = 0; i < rec->extra_rows; ++i) keep_rows[n++] = rec->prompt_rows[d] + i;
  new_cu[0] = 0;
  new_cu[1] = n;
  return n;
}

Test(forward, decode_after_drop_matches_replayed_recomputation) {
  harness h;
  harness_init(&h);
  const up_model_config cfg = small_config();
  const up_method_spec spec = uniprefill_spec(0.99f, 0.4f);
  drop_record rec = {0};
  const up_method_ops recording_ops = {.name = "recording", .drops_after = spec.method->drops_after,
                                       .select = recording_select};
  const up_method recording = {.ops = &recording_ops, .spec = spec, .state = &rec};

  enum { PROMPT = 640, STEPS = 3 };
  int32_t tokens[PROMPT + STEPS];
  random_prompt(tokens, PROMPT, 99);
  int32_t *prompt = tokens;
  const int32_t len = PROMPT;
  float *logits = malloc(sizeof(float) * (size_t)cfg.vocab), *ref = malloc(sizeof(float) * (size_t)cfg.vocab);
  int32_t rows[N_LAYERS], slot;
  prefill(&h, &recording, &prompt, &len, 1, &slot, logits, rows);
  cr_assert_eq(rec.n_drops, 2);
  cr_assert_lt(rows[N_LAYERS - 1], rows[0], "the drops removed tokens");
  for (int32_t l = 0; l < N_LAYERS; ++l)
    cr_assert_eq(up_kv_cache_len(h.cache, slot, l), rows[l], "layer %d caches exactly its kept rows", l);

  /* Decode STEPS tokens after the drop. */
  float decode_logits[STEPS][512];
  int32_t next = 0;
  for (int32_t k = 0; k < STEPS; ++k) {
    tokens[PROMPT + k] = (int32_t)((37 * k + 11) % cfg.vocab);
    const up_forward_seq seq = {.slot = slot, .n_tokens = 1, .tokens = &tokens[PROMPT + k],
                                .first_position = PROMPT + k, .is_prefill = false};
    up_forward_out out = {.next_tokens = &next, .logits = decode_logits[k]};
    up_forward(h.model, h.ws, h.cache, &h.pool, &recording, &seq, 1, &out);
    for (int32_t l = 0; l < N_LAYERS; ++l)
      cr_assert_eq(up_kv_cache_len(h.cache, slot, l), rows[l] + k + 1, "decode appends at layer %d's own length", l);
  }
  cr_assert_eq(rec.n_drops, 2, "decode rows are never dropped");
  up_kv_cache_release_slot(h.cache, slot);

  /* Recompute: one prefill of prompt + k+1 tokens with the same drops replayed. */
  const up_method_ops replay_ops = {.name = "replay", .drops_after = recording_ops.drops_after, .select = replay_select};
  for (int32_t k = 0; k < STEPS; ++k) {
    rec.n_drops = 0;
    rec.extra_rows = k + 1;
    const up_method replay = {.ops = &replay_ops, .spec = spec, .state = &rec};
    const int32_t total = PROMPT + k + 1;
    int32_t *all = tokens;
    prefill(&h, &replay, &all, &total, 1, &slot, ref, rows);
    up_kv_cache_release_slot(h.cache, slot);
    const double diff = max_rel_diff(decode_logits[k], ref, cfg.vocab);
    cr_assert_lt(diff, 1e-4, "decode step %d differs from recomputation by %g", k, diff);
  }
  for (int32_t d = 0; d < 2; ++d) free(rec.kept[d]);
  free(logits);
  free(ref);
  harness_free(&h);
}

/* The step-time breakdown: every phase is accounted for, selection only where a method selects. */
static void timed_prefill(harness *h, const up_method *method, double *ms, double *wall_ms) {
  const int32_t lens[2] = {900, 700};
  int32_t *prompts[2], slots[2];
  make_prompts(prompts, lens, 2, 500);
  int32_t rows[2 * N_LAYERS];
  float *logits = malloc(sizeof(float) * 2 * (size_t)h->model->cfg.vocab);
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  prefill(h, method, prompts, lens, 2, slots, logits, rows);
  for (int p = 0; p < UP_PHASE_COUNT; ++p) ms[p] = 0.0;
  h->be->ops->phase_collect(h->be, ms);
  clock_gettime(CLOCK_MONOTONIC, &b);
  *wall_ms = 1e3 * (double)(b.tv_sec - a.tv_sec) + 1e-6 * (double)(b.tv_nsec - a.tv_nsec);
  release_all(h, slots, 2);
  free_prompts(prompts, 2);
  free(logits);
}

Test(forward, step_time_breakdown_accounts_for_the_forward) {
  harness h;
  harness_init(&h);
  const up_method dense = dense_method(h.be), uni = uniprefill_method(h.be, 0.99f, 0.4f);
  double ms[UP_PHASE_COUNT], wall;
  timed_prefill(&h, &dense, ms, &wall);
  double sum = 0.0;
  for (int p = 0; p < UP_PHASE_COUNT; ++p) {
    cr_assert_geq(ms[p], 0.0);
    sum += ms[p];
  }
  cr_assert_eq(ms[UP_PHASE_SELECTION], 0.0, "dense never selects");
  cr_assert_gt(ms[UP_PHASE_GEMM], 0.0);
  cr_assert_gt(ms[UP_PHASE_ATTENTION], 0.0);
  cr_assert_leq(sum, wall + 1e-3, "phases %.3f ms within the forward's %.3f ms", sum, wall);
  cr_assert_geq(sum, 0.9 * wall, "phases %.3f ms cover the forward's %.3f ms", sum, wall);
  timed_prefill(&h, &uni, ms, &wall);
  cr_assert_gt(ms[UP_PHASE_SELECTION], 0.0, "UniPrefill's selection is timed");
  harness_free(&h);
}
