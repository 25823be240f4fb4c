/* model.c — a model on a backend: seeded random weights or a checkpoint's weights in
 * the same tensors, the per-step workspace, and the forward pass
 * over a packed batch of prefill and decode sequences. Per layer: RMSNorm, fused QKV,
 * RoPE at each row's original position, KV append at the layer's own length, causal
 * GQA attention, output projection, residual + RMSNorm, then — at a method's drop
 * layers — compaction of hidden state, residual and positions to the kept rows, then
 * the SwiGLU MLP on what remains. */
#include "engine/model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/fatal.h"

/* Weight stream ids: tensor kind in the low bits, layer above, so each tensor is an
 * independent stream and any subset can be regenerated alone. */
enum weight_stream {
  STREAM_EMBED = 1, STREAM_LM_HEAD, STREAM_WQKV, STREAM_WO, STREAM_GATE_UP, STREAM_DOWN,
};
static uint64_t weight_stream_id(int32_t layer, enum weight_stream kind) {
  return ((uint64_t)(layer + 1) << 8) | (uint64_t)kind;
}

static void upload_constant(up_backend *be, void *dst, size_t n, float value) {
  float *buf = up_malloc_or_die(sizeof(float) * n, "weight init buffer");
  for (size_t i = 0; i < n; ++i) buf[i] = value;
  be->ops->upload_f32(be, dst, 0, buf, n);
  free(buf);
}

int64_t up_model_weight_bytes(const up_model_config *cfg, up_dtype dtype) {
  return up_model_config_total_params(cfg) * (int64_t)up_dtype_size(dtype);
}

static void *alloc_tensor(up_model *m, size_t n, const char *what) {
  const size_t bytes = n * up_dtype_size(m->be->act_dtype);
  m->weight_bytes += (int64_t)bytes;
  return m->be->ops->alloc(m->be, bytes, what);
}

/* Every weight tensor allocated, contents undefined; RoPE frequencies uploaded. */
static up_model *model_alloc(const up_model_config *cfg, up_backend *be) {
  up_model *m = up_calloc_or_die(1, sizeof *m, "model");
  m->cfg = *cfg;
  m->be = be;
  const size_t h = (size_t)cfg->hidden, inter = (size_t)cfg->intermediate, vocab = (size_t)cfg->vocab;
  const size_t q_dim = (size_t)cfg->n_heads * cfg->head_dim, qkv_dim = (size_t)up_model_config_qkv_dim(cfg);
  m->embed = alloc_tensor(m, vocab * h, "embedding table");
  m->lm_head = alloc_tensor(m, vocab * h, "LM head");
  m->final_norm = alloc_tensor(m, h, "final norm");
  m->layers = up_calloc_or_die((size_t)cfg->n_layers, sizeof(up_layer_weights), "layer weights");
  for (int32_t l = 0; l < cfg->n_layers; ++l) {
    up_layer_weights *w = &m->layers[l];
    w->attn_norm = alloc_tensor(m, h, "attention norm");
    w->mlp_norm = alloc_tensor(m, h, "MLP norm");
    w->wqkv = alloc_tensor(m, qkv_dim * h, "QKV projection");
    w->wo = alloc_tensor(m, h * q_dim, "output projection");
    w->w_gate_up = alloc_tensor(m, 2 * inter * h, "gate/up projection");
    w->w_down = alloc_tensor(m, h * inter, "down projection");
  }
  float *inv_freq = up_malloc_or_die(sizeof(float) * (size_t)(cfg->head_dim / 2), "RoPE frequencies");
  up_model_config_rope_inv_freq(cfg, inv_freq);
  m->inv_freq = be->ops->alloc(be, sizeof(float) * (size_t)(cfg->head_dim / 2), "RoPE frequencies");
  /* inv_freq is fp32 on every backend: copy the bytes, not through the activation dtype. */
  be->ops->upload_i32(be, (int32_t *)m->inv_freq, (const int32_t *)inv_freq, (size_t)(cfg->head_dim / 2));
  free(inv_freq);
  return m;
}

up_model *up_model_create_random(const up_model_config *cfg, up_backend *be, uint64_t seed) {
  up_model *m = model_alloc(cfg, be);
  const size_t h = (size_t)cfg->hidden, inter = (size_t)cfg->intermediate, vocab = (size_t)cfg->vocab;
  const size_t q_dim = (size_t)cfg->n_heads * cfg->head_dim, qkv_dim = (size_t)up_model_config_qkv_dim(cfg);
  /* Uniform(-b, b) has variance b^2/3: b = sqrt(3/fan_in) keeps projections at unit
   * variance; the two residual writers per layer are further scaled by 1/sqrt(2 L) so
   * the residual stream stays O(1) however deep the model is. */
  const float residual_scale = 1.0f / sqrtf(2.0f * (float)cfg->n_layers);
  be->ops->fill_uniform(be, m->embed, 0, vocab * h, sqrtf(3.0f), seed, weight_stream_id(-1, STREAM_EMBED));
  be->ops->fill_uniform(be, m->lm_head, 0, vocab * h, sqrtf(3.0f / (float)h), seed, weight_stream_id(-1, STREAM_LM_HEAD));
  upload_constant(be, m->final_norm, h, 1.0f);
  for (int32_t l = 0; l < cfg->n_layers; ++l) {
    up_layer_weights *w = &m->layers[l];
    upload_constant(be, w->attn_norm, h, 1.0f);
    upload_constant(be, w->mlp_norm, h, 1.0f);
    be->ops->fill_uniform(be, w->wqkv, 0, qkv_dim * h, sqrtf(3.0f / (float)h), seed, weight_stream_id(l, STREAM_WQKV));
    be->ops->fill_uniform(be, w->wo, 0, h * q_dim, residual_scale * sqrtf(3.0f / (float)q_dim), seed,
                   weight_stream_id(l, STREAM_WO));
    be->ops->fill_uniform(be, w->w_gate_up, 0, 2 * inter * h, sqrtf(3.0f / (float)h), seed, weight_stream_id(l, STREAM_GATE_UP));
    be->ops->fill_uniform(be, w->w_down, 0, h * inter, residual_scale * sqrtf(3.0f / (float)inter), seed,
                   weight_stream_id(l, STREAM_DOWN));
  }
  return m;
}

/* One checkpoint weight into dst at element offset `at` (fused tensors take several). */
static bool load_role(up_model *m, const up_checkpoint *ck, up_weight_role role, int32_t layer, void *dst,
                      size_t at, float *buf, char *err, size_t err_size) {
  int64_t rows, cols;
  up_checkpoint_role_shape(&m->cfg, role, &rows, &cols);
  if (!up_checkpoint_read(ck, role, layer, buf, err, err_size)) return false;
  m->be->ops->upload_f32(m->be, dst, at, buf, (size_t)(rows * cols));
  return true;
}

up_model *up_model_create_from_checkpoint(const up_checkpoint *ck, up_backend *be, char *err, size_t err_size) {
  const up_model_config *cfg = up_checkpoint_config(ck);
  up_model *m = model_alloc(cfg, be);
  const size_t h = (size_t)cfg->hidden, inter = (size_t)cfg->intermediate;
  const size_t q_rows = (size_t)cfg->n_heads * cfg->head_dim, kv_rows = (size_t)cfg->n_kv_heads * cfg->head_dim;
  /* One host buffer big enough for the largest single weight. */
  size_t largest = 0;
  for (int r = 0; r < UP_WEIGHT_ROLE_COUNT; ++r) {
    int64_t rows, cols;
    up_checkpoint_role_shape(cfg, (up_weight_role)r, &rows, &cols);
    largest = (size_t)(rows * cols) > largest ? (size_t)(rows * cols) : largest;
  }
  float *buf = up_malloc_or_die(sizeof(float) * largest, "checkpoint staging buffer");
  bool ok = load_role(m, ck, UP_WEIGHT_EMBED, -1, m->embed, 0, buf, err, err_size) &&
            load_role(m, ck, UP_WEIGHT_LM_HEAD, -1, m->lm_head, 0, buf, err, err_size) &&
            load_role(m, ck, UP_WEIGHT_FINAL_NORM, -1, m->final_norm, 0, buf, err, err_size);
  for (int32_t l = 0; ok && l < cfg->n_layers; ++l) {
    up_layer_weights *w = &m->layers[l];
    /* Fused layouts: wqkv is [q rows; k rows; v rows], w_gate_up is [gate rows; up rows]. */
    ok = load_role(m, ck, UP_WEIGHT_ATTN_NORM, l, w->attn_norm, 0, buf, err, err_size) &&
         load_role(m, ck, UP_WEIGHT_Q, l, w->wqkv, 0, buf, err, err_size) &&
         load_role(m, ck, UP_WEIGHT_K, l, w->wqkv, q_rows * h, buf, err, err_size) &&
         load_role(m, ck, UP_WEIGHT_V, l, w->wqkv, (q_rows + kv_rows) * h, buf, err, err_size) &&
         load_role(m, ck, UP_WEIGHT_O, l, w->wo, 0, buf, err, err_size) &&
         load_role(m, ck, UP_WEIGHT_MLP_NORM, l, w->mlp_norm, 0, buf, err, err_size) &&
         load_role(m, ck, UP_WEIGHT_GATE, l, w->w_gate_up, 0, buf, err, err_size) &&
         load_role(m, ck, UP_WEIGHT_UP, l, w->w_gate_up, inter * h, buf, err, err_size) &&
         load_role(m, ck, UP_WEIGHT_DOWN, l, w->w_down, 0, buf, err, err_size);
  }
  free(buf);
  if (!ok) {
    up_model_destroy(m);
    return NULL;
  }
  return m;
}

void up_model_destroy(up_model *m) {
  if (!m) return;
  up_backend *be = m->be;
  for (int32_t l = 0; l < m->cfg.n_layers; ++l) {
    up_layer_weights *w = &m->layers[l];
    void *tensors[] = {w->attn_norm, w->mlp_norm, w->wqkv, w->wo, w->w_gate_up, w->w_down};
    for (size_t i = 0; i < sizeof tensors / sizeof tensors[0]; ++i) be->ops->free(be, tensors[i]);
  }
  be->ops->free(be, m->embed);
  be->ops->free(be, m->lm_head);
  be->ops->free(be, m->final_norm);
  be->ops->free(be, m->inv_freq);
  free(m->layers);
  free(m);
}

/* --- workspace ----------------------------------------------------------------- */

struct up_forward_workspace {
  up_backend *be;
  int64_t max_tokens;
  int32_t max_seqs;
  int32_t max_blocks_per_seq;
  int64_t bytes;
  /* activations */
  void *residual, *normed, *delta, *spare_residual, *spare_normed;
  void *qkv, *attn, *gate_up, *mlp_act;
  void *last_residual, *last_delta, *last_normed, *logits;
  /* backend index arrays */
  int32_t *tokens, *positions, *spare_positions, *slot_mapping, *cu_seqlens, *kv_lens, *block_tables;
  int32_t *keep_rows, *last_rows;
  /* host mirrors */
  int32_t *h_tokens, *h_positions, *h_slot_mapping, *h_cu_seqlens, *h_new_cu_seqlens, *h_kv_lens;
  int32_t *h_block_tables, *h_last_rows;
  uint8_t *h_is_candidate;
};

static void *ws_alloc(up_forward_workspace *ws, size_t bytes, const char *what) {
  ws->bytes += (int64_t)bytes;
  return ws->be->ops->alloc(ws->be, bytes, what);
}

up_forward_workspace *up_forward_workspace_create(const up_model *model, int64_t max_tokens, int32_t max_seqs,
                                                  int32_t max_blocks_per_seq) {
  UP_ASSERT(max_tokens >= 1 && max_seqs >= 1 && max_blocks_per_seq >= 1, "bad workspace size");
  const up_model_config *cfg = &model->cfg;
  up_forward_workspace *ws = up_calloc_or_die(1, sizeof *ws, "forward workspace");
  ws->be = model->be;
  ws->max_tokens = max_tokens;
  ws->max_seqs = max_seqs;
  ws->max_blocks_per_seq = max_blocks_per_seq;
  const size_t es = up_dtype_size(model->be->act_dtype), T = (size_t)max_tokens, S = (size_t)max_seqs;
  const size_t h = (size_t)cfg->hidden;
  ws->residual = ws_alloc(ws, T * h * es, "residual stream");
  ws->normed = ws_alloc(ws, T * h * es, "normed hidden state");
  ws->delta = ws_alloc(ws, T * h * es, "sub-block output");
  ws->spare_residual = ws_alloc(ws, T * h * es, "compacted residual");
  ws->spare_normed = ws_alloc(ws, T * h * es, "compacted hidden state");
  ws->qkv = ws_alloc(ws, T * (size_t)up_model_config_qkv_dim(cfg) * es, "QKV activations");
  ws->attn = ws_alloc(ws, T * (size_t)cfg->n_heads * cfg->head_dim * es, "attention output");
  ws->gate_up = ws_alloc(ws, T * 2 * (size_t)cfg->intermediate * es, "gate/up activations");
  ws->mlp_act = ws_alloc(ws, T * (size_t)cfg->intermediate * es, "SwiGLU output");
  ws->last_residual = ws_alloc(ws, S * h * es, "last-row residual");
  ws->last_delta = ws_alloc(ws, S * h * es, "last-row sub-block output");
  ws->last_normed = ws_alloc(ws, S * h * es, "last-row final norm");
  ws->logits = ws_alloc(ws, S * (size_t)cfg->vocab * es, "logits");
  const size_t i4 = sizeof(int32_t);
  ws->tokens = ws_alloc(ws, T * i4, "token ids");
  ws->positions = ws_alloc(ws, T * i4, "positions");
  ws->spare_positions = ws_alloc(ws, T * i4, "compacted positions");
  ws->slot_mapping = ws_alloc(ws, T * i4, "KV slot mapping");
  ws->keep_rows = ws_alloc(ws, T * i4, "kept rows");
  ws->cu_seqlens = ws_alloc(ws, (S + 1) * i4, "sequence offsets");
  ws->kv_lens = ws_alloc(ws, S * i4, "KV lengths");
  ws->last_rows = ws_alloc(ws, S * i4, "last rows");
  ws->block_tables = ws_alloc(ws, S * (size_t)max_blocks_per_seq * i4, "block tables");
  ws->h_tokens = up_malloc_or_die(T * i4, "token ids");
  ws->h_positions = up_malloc_or_die(T * i4, "positions");
  ws->h_slot_mapping = up_malloc_or_die(T * i4, "KV slot mapping");
  ws->h_cu_seqlens = up_malloc_or_die((S + 1) * i4, "sequence offsets");
  ws->h_new_cu_seqlens = up_malloc_or_die((S + 1) * i4, "sequence offsets");
  ws->h_kv_lens = up_malloc_or_die(S * i4, "KV lengths");
  ws->h_last_rows = up_malloc_or_die(S * i4, "last rows");
  ws->h_block_tables = up_malloc_or_die(S * (size_t)max_blocks_per_seq * i4, "block tables");
  ws->h_is_candidate = up_malloc_or_die(S, "selection candidates");
  return ws;
}

void up_forward_workspace_destroy(up_forward_workspace *ws) {
  if (!ws) return;
  up_backend *be = ws->be;
  void *dev[] = {ws->residual, ws->normed, ws->delta, ws->spare_residual, ws->spare_normed, ws->qkv, ws->attn,
                 ws->gate_up, ws->mlp_act, ws->last_residual, ws->last_delta, ws->last_normed, ws->logits,
                 ws->tokens, ws->positions, ws->spare_positions, ws->slot_mapping, ws->keep_rows, ws->cu_seqlens,
                 ws->kv_lens, ws->last_rows, ws->block_tables};
  for (size_t i = 0; i < sizeof dev / sizeof dev[0]; ++i) be->ops->free(be, dev[i]);
  void *host[] = {ws->h_tokens, ws->h_positions, ws->h_slot_mapping, ws->h_cu_seqlens, ws->h_new_cu_seqlens,
                  ws->h_kv_lens, ws->h_last_rows, ws->h_block_tables, ws->h_is_candidate};
  for (size_t i = 0; i < sizeof host / sizeof host[0]; ++i) free(host[i]);
  free(ws);
}

int64_t up_forward_workspace_bytes(const up_forward_workspace *ws) { return ws->bytes; }

/* --- forward ------------------------------------------------------------------- */

/* Rows of sequence s in the current (possibly compacted) batch. */
static int32_t seq_rows(const up_forward_workspace *ws, int32_t s) {
  return ws->h_cu_seqlens[s + 1] - ws->h_cu_seqlens[s];
}

/* Attribute the work queued from here on to a phase of the step's time breakdown. */
static void mark(up_backend *be, up_phase phase) {
  if (be->ops->phase_mark) be->ops->phase_mark(be, phase);
}

static void swap_ptr(void **a, void **b) {
  void *t = *a;
  *a = *b;
  *b = t;
}

/* Describe layer `layer` of the batch to the backend: entry counts including this
 * step's rows, where each row's K/V go, and the block tables. The sequence offsets
 * change only at a drop: up_forward uploads them then, not per layer. */
static void upload_layer_view(up_forward_workspace *ws, const up_kv_cache *cache, const up_forward_seq *seqs,
                              int32_t n_seqs, int32_t layer, int32_t n_rows, up_attn_batch *view) {
  up_backend *be = ws->be;
  const int32_t maxb = ws->max_blocks_per_seq;
  for (int32_t s = 0; s < n_seqs; ++s) {
    const int32_t cached = up_kv_cache_len(cache, seqs[s].slot, layer);
    const int32_t rows = seq_rows(ws, s);
    ws->h_kv_lens[s] = cached + rows;
    for (int32_t t = 0; t < rows; ++t)
      ws->h_slot_mapping[ws->h_cu_seqlens[s] + t] = up_kv_cache_slot_of(cache, seqs[s].slot, layer, cached + t);
    memcpy(ws->h_block_tables + (size_t)s * maxb, up_kv_cache_block_table(cache, seqs[s].slot, layer),
           sizeof(int32_t) * (size_t)maxb);
  }
  be->ops->upload_i32(be, ws->kv_lens, ws->h_kv_lens, (size_t)n_seqs);
  be->ops->upload_i32(be, ws->slot_mapping, ws->h_slot_mapping, (size_t)n_rows);
  be->ops->upload_i32(be, ws->block_tables, ws->h_block_tables, (size_t)n_seqs * maxb);
  *view = (up_attn_batch){.n_seqs = n_seqs, .n_tokens = n_rows, .cu_seqlens = ws->cu_seqlens,
                          .kv_lens = ws->kv_lens, .block_tables = ws->block_tables, .max_blocks_per_seq = maxb};
}

void up_forward(const up_model *model, up_forward_workspace *ws, up_kv_cache *cache, const up_kv_pool *pool,
                const up_method *method, const up_forward_seq *seqs, int32_t n_seqs, up_forward_out *out) {
  const up_model_config *cfg = &model->cfg;
  up_backend *be = model->be;
  const up_backend_ops *ops = be->ops;
  const up_method_ops *mops = method->ops;
  UP_ASSERT(n_seqs >= 1 && n_seqs <= ws->max_seqs, "%d sequences for a workspace of %d", (int)n_seqs,
            (int)ws->max_seqs);
  UP_ASSERT(up_kv_cache_max_blocks_per_seq(cache) == ws->max_blocks_per_seq, "workspace and cache disagree");

  /* Pack the batch: token ids, original positions, per-sequence offsets. */
  int32_t n_rows = 0;
  bool any_prefill = false; /* decode-only steps never drop: skip the selection */
  ws->h_cu_seqlens[0] = 0;
  for (int32_t s = 0; s < n_seqs; ++s) {
    UP_ASSERT(seqs[s].n_tokens >= 1, "sequence %d has no tokens", (int)s);
    UP_ASSERT(n_rows + (int64_t)seqs[s].n_tokens <= ws->max_tokens, "batch exceeds the workspace of %lld rows",
              (long long)ws->max_tokens);
    for (int32_t t = 0; t < seqs[s].n_tokens; ++t) {
      ws->h_tokens[n_rows + t] = seqs[s].tokens[t];
      ws->h_positions[n_rows + t] = seqs[s].first_position + t;
    }
    n_rows += seqs[s].n_tokens;
    ws->h_cu_seqlens[s + 1] = n_rows;
    ws->h_is_candidate[s] = seqs[s].is_prefill;
    any_prefill = any_prefill || seqs[s].is_prefill;
  }
  ops->upload_i32(be, ws->tokens, ws->h_tokens, (size_t)n_rows);
  ops->upload_i32(be, ws->positions, ws->h_positions, (size_t)n_rows);
  ops->upload_i32(be, ws->cu_seqlens, ws->h_cu_seqlens, (size_t)n_seqs + 1);

  const int32_t h = cfg->hidden, qkv_dim = up_model_config_qkv_dim(cfg), q_dim = cfg->n_heads * cfg->head_dim;
  const up_attn_shape shape = {.n_heads = cfg->n_heads, .n_kv_heads = cfg->n_kv_heads, .head_dim = cfg->head_dim,
                               .scale = 1.0f / sqrtf((float)cfg->head_dim)};
  void *residual = ws->residual, *normed = ws->normed, *spare_residual = ws->spare_residual,
       *spare_normed = ws->spare_normed;
  int32_t *positions = ws->positions, *spare_positions = ws->spare_positions;

  mark(be, UP_PHASE_OTHER);
  ops->embed(be, residual, model->embed, ws->tokens, n_rows, h);
  ops->rmsnorm(be, normed, residual, model->layers[0].attn_norm, n_rows, h, cfg->norm_eps);
  for (int32_t l = 0; l < cfg->n_layers; ++l) {
    const up_layer_weights *w = &model->layers[l];
    if (out->layer_rows) out->layer_rows[l] = n_rows;
    if (out->seq_layer_rows)
      for (int32_t s = 0; s < n_seqs; ++s) out->seq_layer_rows[(size_t)s * cfg->n_layers + l] = seq_rows(ws, s);

    up_attn_batch view;
    upload_layer_view(ws, cache, seqs, n_seqs, l, n_rows, &view);
    mark(be, UP_PHASE_GEMM);
    ops->matmul(be, ws->qkv, normed, w->wqkv, n_rows, qkv_dim, h);
    mark(be, UP_PHASE_OTHER);
    ops->rope(be, ws->qkv, positions, model->inv_freq, n_rows, &shape);
    ops->kv_store(be, pool, ws->qkv, ws->slot_mapping, n_rows, &shape);
    mark(be, UP_PHASE_ATTENTION);
    if (mops->attention)
      mops->attention(method, be, ws->attn, ws->qkv, pool, &view, &shape);
    else
      ops->attention(be, ws->attn, ws->qkv, pool, &view, &shape, 0);
    for (int32_t s = 0; s < n_seqs; ++s) up_kv_cache_append(cache, seqs[s].slot, l, seq_rows(ws, s));
    mark(be, UP_PHASE_GEMM);
    ops->matmul(be, ws->delta, ws->attn, w->wo, n_rows, h, q_dim);
    mark(be, UP_PHASE_OTHER);
    ops->add_rmsnorm(be, normed, residual, ws->delta, w->mlp_norm, n_rows, h, cfg->norm_eps);

    if (any_prefill && mops->drops_after && mops->drops_after(method, l)) {
      mark(be, UP_PHASE_SELECTION);
      const int32_t kept = mops->select(method, be, ws->keep_rows, ws->h_new_cu_seqlens, ws->qkv, pool, &view,
                                        &shape, ws->h_is_candidate);
      mark(be, UP_PHASE_OTHER);
      if (kept < n_rows) {
        ops->gather_rows(be, spare_residual, residual, ws->keep_rows, kept, h);
        ops->gather_rows(be, spare_normed, normed, ws->keep_rows, kept, h);
        ops->gather_i32(be, spare_positions, positions, ws->keep_rows, kept);
        swap_ptr(&residual, &spare_residual);
        swap_ptr(&normed, &spare_normed);
        swap_ptr((void **)&positions, (void **)&spare_positions);
        for (int32_t s = 0; s < n_seqs; ++s) ws->h_cu_seqlens[s + 1] = ws->h_new_cu_seqlens[s + 1];
        ops->upload_i32(be, ws->cu_seqlens, ws->h_cu_seqlens, (size_t)n_seqs + 1);
        n_rows = kept;
      }
    }

    mark(be, UP_PHASE_GEMM);
    ops->matmul(be, ws->gate_up, normed, w->w_gate_up, n_rows, 2 * cfg->intermediate, h);
    mark(be, UP_PHASE_OTHER);
    ops->swiglu(be, ws->mlp_act, ws->gate_up, n_rows, cfg->intermediate);
    mark(be, UP_PHASE_GEMM);
    ops->matmul(be, ws->delta, ws->mlp_act, w->w_down, n_rows, h, cfg->intermediate);
    mark(be, UP_PHASE_OTHER);
    if (l + 1 < cfg->n_layers)
      ops->add_rmsnorm(be, normed, residual, ws->delta, model->layers[l + 1].attn_norm, n_rows, h, cfg->norm_eps);
  }

  if (out->seq_kept_rows)
    for (int32_t s = 0; s < n_seqs; ++s) out->seq_kept_rows[s] = seq_rows(ws, s);
  /* Logits only for each sequence's last row (always kept). */
  for (int32_t s = 0; s < n_seqs; ++s) ws->h_last_rows[s] = ws->h_cu_seqlens[s + 1] - 1;
  ops->upload_i32(be, ws->last_rows, ws->h_last_rows, (size_t)n_seqs);
  ops->gather_rows(be, ws->last_residual, residual, ws->last_rows, n_seqs, h);
  ops->gather_rows(be, ws->last_delta, ws->delta, ws->last_rows, n_seqs, h);
  ops->add_rmsnorm(be, ws->last_normed, ws->last_residual, ws->last_delta, model->final_norm, n_seqs, h,
                   cfg->norm_eps);
  mark(be, UP_PHASE_GEMM);
  ops->matmul(be, ws->logits, ws->last_normed, model->lm_head, n_seqs, cfg->vocab, h);
  mark(be, UP_PHASE_OTHER);
  ops->argmax_rows(be, out->next_tokens, ws->logits, n_seqs, cfg->vocab);
  if (out->logits) ops->download_f32(be, out->logits, ws->logits, 0, (size_t)n_seqs * cfg->vocab);
}
