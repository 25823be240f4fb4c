/* test_qwen3_next_uniprefill.c — UniPrefill's drop semantics on Qwen3-Next (README,
 * "UniPrefill on Qwen3-Next"): after a drop at full-attention layer 3 of tiny-qwen3-next,
 * the later DeltaNet layers run over the kept tokens as one contiguous sequence from
 * zero states, and decode continues from the states after the last kept token. The
 * forward with a method that keeps a fixed set of rows is checked against a direct
 * recomputation written here: layers 0-3 dense over the whole prompt, the residual
 * stream compacted on the host, then layers 4-7 over the kept rows as a fresh sequence
 * (their original positions, no initial state); both then decode through the forward. */
#include <criterion/criterion.h>
#include <string.h>

#include "engine/model/blocks/attention_block.h"
#include "engine/model/blocks/deltanet_block.h"
#include "engine/model/blocks/forward_step.h"
#include "engine/model/blocks/moe_block.h"
#include "tests/qwen3_next_harness.h"

enum { DROP_LAYER = 3, PROMPT = 140 };

/* Keep the first 4 rows, every third row after them, and the last 10: 56 of 140 (the
 * prompt spans three chunks of 64, the kept sequence one). */
static int32_t kept_rows(int32_t *rows) {
  int32_t n = 0;
  for (int32_t r = 0; r < PROMPT; ++r)
    if (r < 4 || r % 3 == 0 || r >= PROMPT - 10) rows[n++] = r;
  return n;
}

static bool drops_at_layer_3(const up_method *m, int32_t layer) {
  (void)m;
  return layer == DROP_LAYER;
}

static int32_t select_fixed(const up_method *m, up_backend *be, const up_method_layer *at, int32_t *keep_rows,
                            int32_t *new_cu_seqlens_host) {
  (void)m;
  cr_assert_eq(at->n_seqs, 1);
  int32_t rows[PROMPT];
  const int32_t n = kept_rows(rows);
  be->ops->upload_i32(be, keep_rows, rows, (size_t)n);
  new_cu_seqlens_host[0] = 0;
  new_cu_seqlens_host[1] = n;
  return n;
}

static const up_method_ops fixed_drop_ops = {.name = "fixed drop", .drops_after = drops_at_layer_3,
                                             .select = select_fixed};

/* Blocks of layers first..last over the step's rows, each followed by the residual add
 * and the next block's norm (the final norm after the model's last block). */
static void run_layers(up_forward_step *step, int32_t first, int32_t last) {
  const up_model *model = step->model;
  up_backend *be = model->be;
  for (int32_t l = first; l <= last; ++l) {
    if (model->cfg.layer_kind[l] == UP_LAYER_LINEAR_ATTENTION)
      up_deltanet_block(step, l);
    else
      up_attention_block(step, l);
    be->ops->add_rmsnorm(be, step->normed, step->residual, step->ws->delta,
                         up_model_weight(model, UP_TENSOR_MLP_NORM, l), step->n_rows, model->cfg.hidden,
                         model->cfg.norm_eps);
    up_moe_block(step, l);
    const void *next = l + 1 < model->cfg.n_layers ? up_model_weight(model, UP_TENSOR_ATTN_NORM, l + 1)
                                                   : up_model_weight(model, UP_TENSOR_FINAL_NORM, -1);
    be->ops->add_rmsnorm(be, step->normed, step->residual, step->ws->delta, next, step->n_rows, model->cfg.hidden,
                         model->cfg.norm_eps);
  }
}

/* The batch of one sequence of n rows at the given positions, with or without its state. */
static void set_rows(qn_harness *h, up_forward_step *step, const int32_t *positions, int32_t n, int32_t state_slot,
                     bool has_state) {
  up_forward_workspace *ws = h->ws;
  ws->h_cu_seqlens[0] = 0;
  ws->h_cu_seqlens[1] = n;
  ws->h_state_slots[0] = state_slot;
  ws->h_has_state[0] = has_state;
  h->be->ops->upload_i32(h->be, ws->cu_seqlens, ws->h_cu_seqlens, 2);
  h->be->ops->upload_i32(h->be, ws->positions, positions, (size_t)n);
  h->be->ops->upload_i32(h->be, ws->state_slots, ws->h_state_slots, 1);
  h->be->ops->upload_i32(h->be, ws->has_state, ws->h_has_state, 1);
  step->n_rows = n;
}

/* The direct recomputation's prefill; last-row logits into logits. */
static void direct_prefill(qn_harness *h, int32_t slot, const int32_t *tokens, float *logits) {
  const up_model_config *cfg = &h->cfg;
  up_forward_workspace *ws = h->ws;
  up_backend *be = h->be;
  const int32_t H = cfg->hidden;
  const up_forward_seq seq = qn_seq(h, slot, tokens, PROMPT, 0);
  up_forward_step step = {.model = h->model, .ws = ws, .cache = up_layer_memory_kv(h->mem), .pool = &h->pool,
                          .method = &qn_dense, .seqs = &seq, .n_seqs = 1, .any_prefill = true,
                          .residual = ws->residual, .normed = ws->normed, .positions = ws->positions,
                          .shape = {.n_heads = cfg->n_heads, .n_kv_heads = cfg->n_kv_heads, .head_dim = cfg->head_dim,
                                    .scale = up_model_config_attention_scale(cfg)}};
  int32_t positions[PROMPT];
  for (int32_t t = 0; t < PROMPT; ++t) positions[t] = t;
  set_rows(h, &step, positions, PROMPT, seq.state_slot, false);
  be->ops->upload_i32(be, ws->tokens, tokens, PROMPT);
  be->ops->embed(be, ws->residual, up_model_weight(h->model, UP_TENSOR_EMBED, -1), ws->tokens, PROMPT, H);
  be->ops->rmsnorm(be, ws->normed, ws->residual, up_model_weight(h->model, UP_TENSOR_ATTN_NORM, 0), PROMPT, H,
                   cfg->norm_eps);
  run_layers(&step, 0, DROP_LAYER);

  /* The kept rows of the residual stream become a new sequence of their own. */
  float *residual = malloc(sizeof(float) * PROMPT * (size_t)H);
  be->ops->download_f32(be, residual, ws->residual, 0, (size_t)PROMPT * H);
  int32_t rows[PROMPT];
  const int32_t n = kept_rows(rows);
  for (int32_t i = 0; i < n; ++i) {
    memmove(residual + (size_t)i * H, residual + (size_t)rows[i] * H, sizeof(float) * (size_t)H);
    positions[i] = rows[i];
  }
  be->ops->upload_f32(be, ws->residual, 0, residual, (size_t)n * H);
  free(residual);
  set_rows(h, &step, positions, n, seq.state_slot, false);
  be->ops->rmsnorm(be, ws->normed, ws->residual, up_model_weight(h->model, UP_TENSOR_ATTN_NORM, DROP_LAYER + 1), n,
                   H, cfg->norm_eps);
  run_layers(&step, DROP_LAYER + 1, cfg->n_layers - 1);
  /* ws->normed holds final-normed rows: the LM head on the last */
  float *last = malloc(sizeof(float) * (size_t)H);
  be->ops->download_f32(be, last, ws->normed, (size_t)(n - 1) * H, (size_t)H);
  be->ops->upload_f32(be, ws->last_normed, 0, last, (size_t)H);
  be->ops->matmul(be, ws->logits, ws->last_normed, up_model_weight(h->model, UP_TENSOR_LM_HEAD, -1), 1, cfg->vocab,
                  H);
  be->ops->download_f32(be, logits, ws->logits, 0, (size_t)cfg->vocab);
  free(last);
}

Test(qwen3_next_uniprefill, drop_then_deltanet_over_kept_tokens_matches_direct_recomputation) {
  int32_t tokens[PROMPT + 2];
  qn_prompt(tokens, PROMPT + 2, 77, 512);
  int32_t rows[PROMPT];
  const int32_t n_kept = kept_rows(rows);
  qn_harness a, b;
  qn_init(&a);
  qn_init(&b);
  const int32_t V = a.cfg.vocab;
  float *la = malloc(sizeof(float) * (size_t)V), *lb = malloc(sizeof(float) * (size_t)V);
  float *dense = malloc(sizeof(float) * (size_t)V);

  /* the engine's forward with the drop */
  const up_method fixed = {.ops = &fixed_drop_ops};
  const int32_t slot_a = qn_admit(&a, PROMPT, PROMPT + 3);
  up_forward_seq seq = qn_seq(&a, slot_a, tokens, PROMPT, 0);
  int32_t kept = 0;
  qn_forward(&a, &fixed, &seq, 1, la, &kept);
  cr_assert_eq(kept, n_kept);
  cr_assert_eq(up_layer_memory_len(a.mem, slot_a, DROP_LAYER), PROMPT, "the drop layer caches every row");
  cr_assert_eq(up_layer_memory_len(a.mem, slot_a, 7), n_kept, "a later layer caches the kept rows");

  /* the recomputation */
  const int32_t slot_b = qn_admit(&b, PROMPT, PROMPT + 3);
  direct_prefill(&b, slot_b, tokens, lb);
  double d = qn_rel_diff(la, lb, V);
  cr_assert_lt(d, 1e-5, "prefill logits after the drop differ from the recomputation by %g", d);

  /* the drop changed the result: the test compares something the drop decides */
  const int32_t slot_c = qn_admit(&b, PROMPT, PROMPT + 3);
  seq = qn_seq(&b, slot_c, tokens, PROMPT, 0);
  qn_forward(&b, &qn_dense, &seq, 1, dense, NULL);
  cr_assert_gt(qn_rel_diff(dense, lb, V), 1e-3, "dropping 60%% of the rows left the logits unchanged");

  /* decode continues from the states after the last kept token, in both */
  for (int32_t t = PROMPT; t < PROMPT + 2; ++t) {
    seq = qn_seq(&a, slot_a, &tokens[t], 1, t);
    qn_forward(&a, &fixed, &seq, 1, la, NULL);
    seq = qn_seq(&b, slot_b, &tokens[t], 1, t);
    qn_forward(&b, &qn_dense, &seq, 1, lb, NULL);
    d = qn_rel_diff(la, lb, V);
    cr_assert_lt(d, 1e-5, "decode at position %d differs from the recomputation's by %g", (int)t, d);
  }
  free(la);
  free(lb);
  free(dense);
  qn_free(&a);
  qn_free(&b);
}
