/* model.c — a model on a backend: its weights, allocated and filled by its
 * architecture's tensor table (seeded random, or a checkpoint's tensors), and the
 * forward pass over a packed batch of prefill and decode sequences: embedding, then
 * layer by layer the blocks the architecture lists (engine/model/blocks/), each fed
 * the residual stream normalised by its input norm and its output added back, with —
 * at a method's drop layers, after attention — compaction of hidden state, residual
 * and positions to the kept rows; last, the final norm and the LM head on each
 * sequence's last row. */
#include "engine/model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "core/rng.h"
#include "engine/model/block_trace.h"
#include "engine/model/blocks/attention_block.h"
#include "engine/model/blocks/deltanet_block.h"
#include "engine/model/blocks/forward_step.h"
#include "engine/model/blocks/mlp_block.h"
#include "engine/model/blocks/moe_block.h"
#include "engine/model/layer_cost.h"

/* Weight stream ids: tensor kind in the low bits, layer above, so each tensor is an
 * independent stream and any subset can be regenerated alone. */
static uint64_t weight_stream_id(int32_t layer, int32_t kind) {
  return ((uint64_t)(layer + 1) << 8) | (uint64_t)kind;
}

static void upload_constant(up_backend *be, void *dst, size_t offset, size_t n, float value) {
  float *buf = up_malloc_or_die(sizeof(float) * n, "weight init buffer");
  for (size_t i = 0; i < n; ++i) buf[i] = value;
  be->ops->upload_f32(be, dst, offset, buf, n);
  free(buf);
}

int64_t up_model_weight_bytes(const up_model_config *cfg, up_dtype dtype) {
  return up_model_total_params(cfg) * (int64_t)up_dtype_size(dtype);
}

int64_t up_model_shard_weight_bytes(const up_model_config *cfg, up_dtype dtype, int32_t tp_size) {
  if (tp_size == 1) return up_model_weight_bytes(cfg, dtype);
  /* Shards differ in which rows they hold, not how many: rank 0's count for all. */
  const up_model_shard shard = up_model_shard_of(cfg, 0, tp_size);
  int64_t elements = 0;
  for (int32_t layer = -1; layer < cfg->n_layers; ++layer) {
    up_tensor_desc tensors[UP_MAX_LAYER_TENSORS];
    const int32_t n = up_arch_layer_tensors(cfg, layer, tensors);
    for (int32_t i = 0; i < n; ++i) {
      if (tensors[i].role == UP_TENSOR_LM_HEAD && cfg->tie_word_embeddings) continue;
      const int64_t rows = up_model_shard_rows(&shard, cfg, tensors[i].spec) + (tensors[i].role == UP_TENSOR_EMBED);
      elements += rows * up_model_shard_cols(&shard, cfg, tensors[i].spec);
    }
  }
  return elements * (int64_t)up_dtype_size(dtype);
}

static void **weight_slot(const up_model *m, up_tensor_role role, int32_t layer) {
  UP_ASSERT(layer >= -1 && layer < m->cfg.n_layers && role >= 0 && role < UP_TENSOR_ROLE_COUNT,
            "weight %d of layer %d", (int)role, (int)layer);
  return &m->weights[(size_t)(layer + 1) * UP_TENSOR_ROLE_COUNT + role];
}

void *up_model_weight(const up_model *m, up_tensor_role role, int32_t layer) {
  return *weight_slot(m, role, layer);
}

const float *up_model_rope_inv_freq(const up_model *m, int32_t layer) {
  return m->inv_freq_sliding && up_layer_window(&m->cfg, layer) > 0 ? m->inv_freq_sliding : m->inv_freq;
}

/* A tied head reads the embedding: it is neither allocated, filled nor freed apart. */
static bool is_tied_head(const up_model_config *cfg, up_tensor_role role) {
  return role == UP_TENSOR_LM_HEAD && cfg->tie_word_embeddings;
}

/* The fp32 value nearest to what the activation dtype stores for v (round to nearest
 * even): transformers multiplies bf16 embeddings by the scale cast to bf16 (HYBRIDS.md B.6). */
static float round_to_dtype(float v, up_dtype dtype) {
  if (dtype != UP_DTYPE_BF16) return v;
  uint32_t bits;
  memcpy(&bits, &v, sizeof bits);
  bits = (bits + 0x7fffu + ((bits >> 16) & 1u)) & 0xffff0000u;
  memcpy(&v, &bits, sizeof v);
  return v;
}

/* Frequencies of head_dim/2 values in backend memory: fp32 on every backend, so the
 * bytes are copied, not converted through the activation dtype. */
static float *upload_inv_freq(up_backend *be, const float *host, int32_t half) {
  float *dev = be->ops->alloc(be, sizeof(float) * (size_t)half, "RoPE frequencies");
  be->ops->upload_i32(be, (int32_t *)dev, (const int32_t *)host, (size_t)half);
  return dev;
}

/* Rows a weight has on this rank: its shard's (every expert's of a stack), plus the
 * zero row a split embedding keeps for ids another rank holds (model.h). */
static int64_t local_rows(const up_model *m, const up_tensor_desc *t) {
  const int64_t rows = up_model_shard_rows(&m->shard, &m->cfg, t->spec);
  return t->role == UP_TENSOR_EMBED && m->shard.tp_size > 1 ? rows + 1 : rows;
}

/* Every weight the table lists allocated at this rank's shard shape, contents
 * undefined; RoPE frequencies uploaded. tp NULL: a group of one the model owns. */
static up_model *model_alloc(const up_model_config *cfg, up_backend *be, up_tp_comm *tp) {
  up_model *m = up_calloc_or_die(1, sizeof *m, "model");
  m->cfg = *cfg;
  m->arch = up_arch_of(cfg);
  m->be = be;
  m->owns_tp = tp == NULL;
  m->tp = tp ? tp : up_tp_comm_create_self(NULL, NULL);
  m->shard = up_model_shard_of(cfg, m->tp->rank, m->tp->size);
  m->tp_check_every = 1;
  m->weights = up_calloc_or_die((size_t)(cfg->n_layers + 1) * UP_TENSOR_ROLE_COUNT, sizeof(void *), "weight table");
  const size_t elem = up_dtype_size(be->act_dtype);
  for (int32_t layer = -1; layer < cfg->n_layers; ++layer) {
    up_tensor_desc tensors[UP_MAX_LAYER_TENSORS];
    const int32_t n = up_arch_layer_tensors(cfg, layer, tensors);
    for (int32_t i = 0; i < n; ++i) {
      if (is_tied_head(cfg, tensors[i].role)) continue;
      const int64_t cols = up_model_shard_cols(&m->shard, cfg, tensors[i].spec);
      const size_t bytes = (size_t)(local_rows(m, &tensors[i]) * cols) * elem;
      void **slot = weight_slot(m, tensors[i].role, layer);
      UP_ASSERT(!*slot, "%s lists weight '%s' twice in layer %d", m->arch->name, tensors[i].spec->name, (int)layer);
      *slot = be->ops->alloc(be, bytes, tensors[i].spec->what);
      m->weight_bytes += (int64_t)bytes;
    }
  }
  if (cfg->tie_word_embeddings) *weight_slot(m, UP_TENSOR_LM_HEAD, -1) = *weight_slot(m, UP_TENSOR_EMBED, -1);
  const int32_t half = cfg->head_dim / 2;
  float *inv_freq = up_malloc_or_die(sizeof(float) * (size_t)half, "RoPE frequencies");
  up_model_config_rope_inv_freq(cfg, inv_freq);
  m->inv_freq = upload_inv_freq(be, inv_freq, half);
  if (up_model_config_has_sliding_rope(cfg)) {
    up_model_config_rope_inv_freq_sliding(cfg, inv_freq);
    m->inv_freq_sliding = upload_inv_freq(be, inv_freq, half);
  }
  free(inv_freq);
  m->embed_scale = cfg->scale_embeddings ? round_to_dtype(sqrtf((float)cfg->hidden), be->act_dtype) : 1.0f;
  return m;
}

/* The zero row after a split embedding's shard. */
static void clear_embed_spare_row(up_model *m) {
  if (m->shard.tp_size == 1) return;
  upload_constant(m->be, up_model_weight(m, UP_TENSOR_EMBED, -1), (size_t)m->shard.vocab * (size_t)m->cfg.hidden,
                  (size_t)m->cfg.hidden, 0.0f);
}

/* How a weight's shard sits in the whole weight: the rows of each copy (an expert
 * stack has one per expert) in the whole and in the shard, and the shard's columns. */
typedef struct shard_layout {
  int64_t copies;
  int64_t global_copy_rows, local_copy_rows;
  int64_t first_col, cols, global_cols;
} shard_layout;

static shard_layout layout_of(const up_model *m, const up_tensor_desc *t) {
  shard_layout s = {.copies = up_tensor_copies(t->n_experts), .global_cols = t->cols};
  s.global_copy_rows = up_dim_size(&m->cfg, t->spec->rows);
  s.local_copy_rows = up_model_shard_copy_rows(&m->shard, &m->cfg, t->spec);
  up_model_shard_range(&m->shard, &m->cfg, t->spec->cols, &s.first_col, &s.cols);
  return s;
}

/* A shard of a seeded weight: each value drawn by its index in the whole weight, on
 * the host, one run of rows at a time (the backend's fill draws indices from 0 only). */
static void fill_uniform_shard(up_model *m, const up_tensor_desc *t, void *dst, float bound, uint64_t seed,
                               uint64_t stream) {
  const shard_layout s = layout_of(m, t);
  const int64_t copy_values = s.local_copy_rows * s.cols;
  float *buf = up_malloc_or_die(sizeof(float) * (size_t)(copy_values > 0 ? copy_values : 1), "weight shard draw");
  for (int32_t p = 0; p < t->spec->n_parts; ++p) {
    up_shard_run runs[UP_MAX_SHARD_SEGMENTS];
    const int32_t n_runs = up_model_shard_part_runs(&m->shard, &m->cfg, t->spec, p, runs);
    for (int64_t e = 0; e < s.copies; ++e)
      for (int32_t i = 0; i < n_runs; ++i) {
        for (int64_t r = 0; r < runs[i].rows; ++r) {
          const int64_t global_row = e * s.global_copy_rows + runs[i].global_row + r;
          const uint64_t base = (uint64_t)(global_row * s.global_cols + s.first_col);
          for (int64_t c = 0; c < s.cols; ++c) buf[r * s.cols + c] = bound * up_rng_symmetric(seed, stream, base + c);
        }
        m->be->ops->upload_f32(m->be, dst, (size_t)((e * s.local_copy_rows + runs[i].local_row) * s.cols), buf,
                               (size_t)(runs[i].rows * s.cols));
      }
  }
  free(buf);
}

/* Draw a weight: the backend's fill where the rank holds it whole (TP = 1 keeps its
 * path and its numbers), by global index otherwise. */
static void fill_uniform_weight(up_model *m, const up_tensor_desc *t, float bound, uint64_t seed, uint64_t stream) {
  void *dst = up_model_weight(m, t->role, t->layer);
  if (m->shard.tp_size == 1)
    m->be->ops->fill_uniform(m->be, dst, 0, (size_t)(t->rows * t->cols), bound, seed, stream);
  else
    fill_uniform_shard(m, t, dst, bound, seed, stream);
}

up_model *up_model_create_random(const up_model_config *cfg, up_backend *be, uint64_t seed) {
  return up_model_create_random_shard(cfg, be, NULL, seed);
}

up_model *up_model_create_random_shard(const up_model_config *cfg, up_backend *be, up_tp_comm *tp, uint64_t seed) {
  up_model *m = model_alloc(cfg, be, tp);
  /* Uniform(-b, b) has variance b^2/3: b = sqrt(3/fan_in) keeps projections at unit
   * variance; the residual writers of each layer are further scaled by 1/sqrt(2 L) so
   * the residual stream stays O(1) however deep the model is. Bounds come from the
   * whole weight's shape (t->cols), whatever the shard. */
  const float residual_scale = 1.0f / sqrtf(2.0f * (float)cfg->n_layers);
  for (int32_t layer = -1; layer < cfg->n_layers; ++layer) {
    up_tensor_desc tensors[UP_MAX_LAYER_TENSORS];
    const int32_t n = up_arch_layer_tensors(cfg, layer, tensors);
    for (int32_t i = 0; i < n; ++i) {
      const up_tensor_desc *t = &tensors[i];
      if (is_tied_head(cfg, t->role)) continue;
      const uint64_t stream = weight_stream_id(layer, t->spec->stream);
      switch (t->spec->init) {
        case UP_INIT_ONES:
          upload_constant(be, up_model_weight(m, t->role, layer), 0,
                          (size_t)(local_rows(m, t) * up_model_shard_cols(&m->shard, cfg, t->spec)), 1.0f);
          break;
        case UP_INIT_UNIT: fill_uniform_weight(m, t, sqrtf(3.0f), seed, stream); break;
        case UP_INIT_FAN_IN: fill_uniform_weight(m, t, sqrtf(3.0f / (float)t->cols), seed, stream); break;
        case UP_INIT_RESIDUAL:
          fill_uniform_weight(m, t, residual_scale * sqrtf(3.0f / (float)t->cols), seed, stream);
          break;
      }
    }
  }
  clear_embed_spare_row(m);
  return m;
}

/* Every checkpoint tensor of a weight, into its rows: each read whole (an expert
 * stack's part expert by expert: its rows of each expert's block), then this rank's
 * rows and columns of each copy packed to the front of the buffer (each row moves to a
 * lower or equal offset, so in place) and uploaded to the shard's rows of that copy. */
static bool load_weight(up_model *m, const up_checkpoint *ck, const up_tensor_desc *t, float *buf, char *err,
                        size_t err_size) {
  const shard_layout s = layout_of(m, t);
  for (int32_t p = 0; p < t->spec->n_parts; ++p) {
    up_file_tensor f;
    UP_ASSERT(up_arch_file_tensor(&m->cfg, t->role, t->layer, p, &f), "weight '%s' has no part %d",
              t->spec->name, (int)p);
    if (!up_checkpoint_read(ck, &f, buf, err, err_size)) return false;
    const int64_t copies = up_tensor_copies(f.experts), count = f.rows * f.cols;
    UP_ASSERT(copies == s.copies && s.global_cols == f.cols,
              "weight '%s' part %d: %lld copies of %lld columns in the file, %lld of %lld in the table",
              t->spec->name, (int)p, (long long)copies, (long long)f.cols, (long long)s.copies,
              (long long)s.global_cols);
    if (f.hf_one_plus && up_checkpoint_format_of(ck) == UP_CHECKPOINT_HF)
      for (int64_t i = 0; i < copies * count; ++i) buf[i] += 1.0f;
    up_shard_run runs[UP_MAX_SHARD_SEGMENTS];
    const int32_t n_runs = up_model_shard_part_runs(&m->shard, &m->cfg, t->spec, p, runs);
    const int64_t part_local_row0 = runs[0].local_row;
    int64_t packed = 0; /* values packed so far: copy e's rows start at e x part_rows x cols */
    for (int64_t e = 0; e < copies; ++e)
      for (int32_t i = 0; i < n_runs; ++i)
        for (int64_t r = 0; r < runs[i].rows; ++r, packed += s.cols) {
          const int64_t from = e * count + (runs[i].global_row - f.row_offset + r) * f.cols + s.first_col;
          if (from != packed) memmove(buf + packed, buf + from, sizeof(float) * (size_t)s.cols);
        }
    const int64_t part_values = packed / copies;
    for (int64_t e = 0; e < copies; ++e)
      m->be->ops->upload_f32(m->be, up_model_weight(m, t->role, t->layer),
                             (size_t)((e * s.local_copy_rows + part_local_row0) * s.cols), buf + e * part_values,
                             (size_t)part_values);
  }
  return true;
}

up_model *up_model_create_from_checkpoint(const up_checkpoint *ck, up_backend *be, char *err, size_t err_size) {
  return up_model_create_from_checkpoint_shard(ck, be, NULL, err, err_size);
}

up_model *up_model_create_from_checkpoint_shard(const up_checkpoint *ck, up_backend *be, up_tp_comm *tp, char *err,
                                                size_t err_size) {
  const up_model_config *cfg = up_checkpoint_config(ck);
  up_model *m = model_alloc(cfg, be, tp);
  /* One host buffer big enough for the largest single checkpoint tensor. */
  size_t largest = 0;
  for (int32_t layer = -1; layer < cfg->n_layers; ++layer) {
    up_tensor_desc tensors[UP_MAX_LAYER_TENSORS];
    const int32_t n = up_arch_layer_tensors(cfg, layer, tensors);
    for (int32_t i = 0; i < n; ++i)
      for (int32_t p = 0; p < tensors[i].spec->n_parts; ++p) {
        const size_t count = (size_t)(up_dim_size(cfg, tensors[i].spec->parts[p].rows) * tensors[i].cols *
                                      up_tensor_copies(tensors[i].n_experts));
        largest = count > largest ? count : largest;
      }
  }
  float *buf = up_malloc_or_die(sizeof(float) * largest, "checkpoint staging buffer");
  bool ok = true;
  for (int32_t layer = -1; ok && layer < cfg->n_layers; ++layer) {
    up_tensor_desc tensors[UP_MAX_LAYER_TENSORS];
    const int32_t n = up_arch_layer_tensors(cfg, layer, tensors);
    for (int32_t i = 0; ok && i < n; ++i)
      if (!is_tied_head(cfg, tensors[i].role)) ok = load_weight(m, ck, &tensors[i], buf, err, err_size);
  }
  free(buf);
  if (!ok) {
    up_model_destroy(m);
    return NULL;
  }
  clear_embed_spare_row(m);
  return m;
}

int32_t up_model_kv_dim(const up_model *model) { return model->shard.n_kv_heads * model->cfg.head_dim; }

void up_model_destroy(up_model *m) {
  if (!m) return;
  up_backend *be = m->be;
  const size_t n_slots = (size_t)(m->cfg.n_layers + 1) * UP_TENSOR_ROLE_COUNT;
  for (size_t i = 0; i < n_slots; ++i)
    if (m->weights[i] && !(i == UP_TENSOR_LM_HEAD && m->cfg.tie_word_embeddings)) be->ops->free(be, m->weights[i]);
  be->ops->free(be, m->inv_freq);
  if (m->inv_freq_sliding) be->ops->free(be, m->inv_freq_sliding);
  free(m->weights);
  if (m->owns_tp) m->tp->ops->destroy(m->tp);
  free(m);
}

/* --- forward ------------------------------------------------------------------- */

static void swap_ptr(void **a, void **b) {
  void *t = *a;
  *a = *b;
  *b = t;
}

static void run_block(up_forward_step *step, up_block_kind block, int32_t layer) {
  switch (block) {
    case UP_BLOCK_ATTENTION: up_attention_block(step, layer); return;
    case UP_BLOCK_MLP: up_mlp_block(step, layer); return;
    case UP_BLOCK_DELTANET: up_deltanet_block(step, layer); return;
    case UP_BLOCK_MOE: up_moe_block(step, layer); return;
    case UP_BLOCK_MODEL: break;
  }
  UP_FATAL("layer %d lists block kind %d, which no shared block runs", (int)layer, (int)block);
}

static const void *first_block_norm(const up_model *model, int32_t layer) {
  up_block_kind blocks[UP_MAX_LAYER_BLOCKS];
  up_arch_layer_blocks(&model->cfg, layer, blocks);
  return up_model_weight(model, up_block_input_norm(blocks[0]), layer);
}

/* The input norm of the block after block b of layer l: the layer's next block's, or
 * the next layer's first block's; NULL after the last block (the final norm is
 * applied to each sequence's last row only). */
static const void *next_block_norm(const up_model *model, int32_t layer, int32_t b, int32_t n_blocks,
                                   const up_block_kind *blocks) {
  if (b + 1 < n_blocks) return up_model_weight(model, up_block_input_norm(blocks[b + 1]), layer);
  return layer + 1 < model->cfg.n_layers ? first_block_norm(model, layer + 1) : NULL;
}

/* The method's drop hook after layer `layer`'s attention: choose the surviving rows
 * and compact the residual stream, its normalised copy and the positions to them. */
static void drop_after_attention(up_forward_step *step, int32_t layer) {
  const up_method *method = step->method;
  const up_method_ops *mops = method->ops;
  if (!(step->any_prefill && mops->drops_after && mops->drops_after(method, layer))) return;
  up_forward_workspace *ws = step->ws;
  up_backend *be = ws->be;
  const up_backend_ops *ops = be->ops;
  const int32_t h = step->model->cfg.hidden;
  up_forward_mark(be, UP_PHASE_SELECTION);
  const int32_t kept = mops->select(method, be, &step->at, ws->keep_rows, ws->h_new_cu_seqlens);
  up_forward_mark(be, UP_PHASE_OTHER);
  if (kept >= step->n_rows) return;
  ops->gather_rows(be, step->spare_residual, step->residual, ws->keep_rows, kept, h);
  ops->gather_rows(be, step->spare_normed, step->normed, ws->keep_rows, kept, h);
  ops->gather_i32(be, step->spare_positions, step->positions, ws->keep_rows, kept);
  swap_ptr(&step->residual, &step->spare_residual);
  swap_ptr(&step->normed, &step->spare_normed);
  swap_ptr((void **)&step->positions, (void **)&step->spare_positions);
  for (int32_t s = 0; s < step->n_seqs; ++s) ws->h_cu_seqlens[s + 1] = ws->h_new_cu_seqlens[s + 1];
  ops->upload_i32(be, ws->cu_seqlens, ws->h_cu_seqlens, (size_t)step->n_seqs + 1);
  step->n_rows = kept;
}

/* After drop layer `layer`: one more survived drop for every input row still present.
 * Rows are found by their original positions, which compaction carries. */
static void count_surviving_rows(const up_forward_step *step, int32_t layer, int32_t *row_drops_survived) {
  const up_method *method = step->method;
  if (!(step->any_prefill && method->ops->drops_after && method->ops->drops_after(method, layer))) return;
  up_forward_workspace *ws = step->ws;
  int32_t *kept_positions = up_malloc_or_die(sizeof(int32_t) * (size_t)(step->n_rows > 0 ? step->n_rows : 1),
                                             "surviving row positions");
  ws->be->ops->download_i32(ws->be, kept_positions, step->positions, (size_t)step->n_rows);
  int64_t input_start = 0;
  for (int32_t s = 0; s < step->n_seqs; ++s) {
    const up_forward_seq *seq = &step->seqs[s];
    for (int32_t r = ws->h_cu_seqlens[s]; r < ws->h_cu_seqlens[s + 1]; ++r) {
      const int32_t offset = kept_positions[r] - seq->first_position;
      UP_ASSERT(offset >= 0 && offset < seq->n_tokens, "kept row at position %d outside sequence %d",
                (int)kept_positions[r], (int)s);
      row_drops_survived[input_start + offset] += 1;
    }
    input_start += seq->n_tokens;
  }
  free(kept_positions);
}

/* Each sequence's recurrent state slot, and whether it continues from it: a sequence
 * whose first row is not at position 0 has computed tokens before (a decode step, a
 * later prefill chunk); one that starts at 0 starts from zero states. */
static void upload_recurrent_view(up_forward_workspace *ws, const up_forward_seq *seqs, int32_t n_seqs) {
  for (int32_t s = 0; s < n_seqs; ++s) {
    UP_ASSERT(seqs[s].state_slot >= 0 && seqs[s].state_slot < ws->max_seqs,
              "sequence %d has recurrent state slot %d; the workspace holds %d", (int)s, (int)seqs[s].state_slot,
              (int)ws->max_seqs);
    ws->h_state_slots[s] = seqs[s].state_slot;
    ws->h_has_state[s] = seqs[s].first_position > 0;
  }
  ws->be->ops->upload_i32(ws->be, ws->state_slots, ws->h_state_slots, (size_t)n_seqs);
  ws->be->ops->upload_i32(ws->be, ws->has_state, ws->h_has_state, (size_t)n_seqs);
}

/* Token ids as this rank's embedding shard indexes them: its own vocabulary range
 * shifted to its first row, every other id to the zero row after the shard. */
static void localize_token_ids(const up_model *model, int32_t *ids, int64_t n) {
  const up_model_shard *shard = &model->shard;
  if (shard->tp_size == 1) return;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t local = ids[i] - shard->first_vocab;
    ids[i] = local >= 0 && local < shard->vocab ? local : shard->vocab;
  }
}

/* Logits of each sequence's last row into ws->logits [n_seqs][vocab]. Under TP each
 * rank computes its vocabulary slice; the slices are all-gathered (rank-major:
 * [rank][seq][slice]) and their rows put back in sequence-major order, so every rank
 * holds the whole rows and takes the same argmax. */
static void lm_head(const up_model *model, up_forward_workspace *ws, int32_t n_seqs) {
  up_backend *be = model->be;
  const up_backend_ops *ops = be->ops;
  const up_model_shard *shard = &model->shard;
  const int32_t h = model->cfg.hidden;
  const void *head = up_model_weight(model, UP_TENSOR_LM_HEAD, -1);
  up_forward_mark(be, UP_PHASE_GEMM);
  if (shard->tp_size == 1) {
    ops->matmul(be, ws->logits, ws->last_normed, head, n_seqs, model->cfg.vocab, h);
    up_forward_mark(be, UP_PHASE_OTHER);
    return;
  }
  ops->matmul(be, ws->logits_shard, ws->last_normed, head, n_seqs, shard->vocab, h);
  up_forward_mark(be, UP_PHASE_OTHER);
  model->tp->ops->all_gather(model->tp, ws->logits_shard, ws->logits_gathered, (size_t)n_seqs * shard->vocab,
                             up_forward_comm_elem(be), "LM head logits all-gather");
  int32_t *order = up_malloc_or_die(sizeof(int32_t) * (size_t)n_seqs * shard->tp_size, "logit row order");
  for (int32_t s = 0; s < n_seqs; ++s)
    for (int32_t r = 0; r < shard->tp_size; ++r) order[s * shard->tp_size + r] = r * n_seqs + s;
  ops->upload_i32(be, ws->logit_rows, order, (size_t)n_seqs * shard->tp_size);
  free(order);
  ops->gather_rows(be, ws->logits, ws->logits_gathered, ws->logit_rows, n_seqs * shard->tp_size, shard->vocab);
}

void up_forward(const up_model *model, up_forward_workspace *ws, up_kv_cache *cache, const up_kv_pool *pool,
                const up_method *method, const up_forward_seq *seqs, int32_t n_seqs, up_forward_out *out) {
  const up_model_config *cfg = &model->cfg;
  up_backend *be = model->be;
  const up_backend_ops *ops = be->ops;
  UP_ASSERT(n_seqs >= 1 && n_seqs <= ws->max_seqs, "%d sequences for a workspace of %d", (int)n_seqs,
            (int)ws->max_seqs);
  UP_ASSERT(up_kv_cache_max_blocks_per_seq(cache) == ws->max_blocks_per_seq, "workspace and cache disagree");
  if (model->tp->size > 1) {
    char why[512];
    UP_ASSERT(up_method_supports_tp(&method->spec, be, model->tp->size, why, sizeof why), "%s", why);
  }

  /* Pack the batch: token ids, original positions, per-sequence offsets. */
  up_forward_step step = {
      .model = model, .ws = ws, .cache = cache, .pool = pool, .method = method, .seqs = seqs, .n_seqs = n_seqs,
      .layer_attn = out->layer_attn,
      .residual = ws->residual, .normed = ws->normed, .spare_residual = ws->spare_residual,
      .spare_normed = ws->spare_normed, .positions = ws->positions, .spare_positions = ws->spare_positions,
      .shape = {.n_heads = model->shard.n_heads, .n_kv_heads = model->shard.n_kv_heads, .head_dim = cfg->head_dim,
                .scale = up_model_config_attention_scale(cfg)},
  };
  ws->h_cu_seqlens[0] = 0;
  for (int32_t s = 0; s < n_seqs; ++s) {
    UP_ASSERT(seqs[s].n_tokens >= 1, "sequence %d has no tokens", (int)s);
    UP_ASSERT(step.n_rows + (int64_t)seqs[s].n_tokens <= ws->max_tokens, "batch exceeds the workspace of %lld rows",
              (long long)ws->max_tokens);
    for (int32_t t = 0; t < seqs[s].n_tokens; ++t) {
      ws->h_tokens[step.n_rows + t] = seqs[s].tokens[t];
      ws->h_positions[step.n_rows + t] = seqs[s].first_position + t;
    }
    step.n_rows += seqs[s].n_tokens;
    ws->h_cu_seqlens[s + 1] = step.n_rows;
    ws->h_is_candidate[s] = seqs[s].is_prefill;
    ws->h_slots[s] = seqs[s].slot;
    step.any_prefill = step.any_prefill || seqs[s].is_prefill;
  }
  localize_token_ids(model, ws->h_tokens, step.n_rows);
  ops->upload_i32(be, ws->tokens, ws->h_tokens, (size_t)step.n_rows);
  ops->upload_i32(be, ws->positions, ws->h_positions, (size_t)step.n_rows);
  ops->upload_i32(be, ws->cu_seqlens, ws->h_cu_seqlens, (size_t)n_seqs + 1);
  if (ws->n_linear_layers > 0) upload_recurrent_view(ws, seqs, n_seqs);

  const int32_t h = cfg->hidden;
  up_forward_mark(be, UP_PHASE_OTHER);
  ops->embed(be, step.residual, up_model_weight(model, UP_TENSOR_EMBED, -1), ws->tokens, step.n_rows, h);
  /* Vocabulary-parallel embedding: one rank looked each row up, the others read zeros;
   * the sum is exact. The scale comes after it, as vLLM's Gemma 3 applies it. */
  model->tp->ops->all_reduce_sum(model->tp, step.residual, step.residual, (size_t)step.n_rows * (size_t)h,
                                 up_forward_comm_elem(be), "embedding all-reduce");
  if (model->embed_scale != 1.0f) ops->scale(be, step.residual, (size_t)step.n_rows * (size_t)h, model->embed_scale);
  ops->rmsnorm(be, step.normed, step.residual, first_block_norm(model, 0), step.n_rows, h, cfg->norm_eps);
  up_block_trace(be, ws->steps_run, -1, "embed", step.residual, step.n_rows, h);
  for (int32_t l = 0; l < cfg->n_layers; ++l) {
    if (out->layer_rows) out->layer_rows[l] = step.n_rows;
    if (out->seq_layer_rows)
      for (int32_t s = 0; s < n_seqs; ++s)
        out->seq_layer_rows[(size_t)s * cfg->n_layers + l] = up_forward_seq_rows(ws, s);
    up_block_kind blocks[UP_MAX_LAYER_BLOCKS];
    const int32_t n_blocks = up_arch_layer_blocks(cfg, l, blocks);
    for (int32_t b = 0; b < n_blocks; ++b) {
      run_block(&step, blocks[b], l);
      static const char *const block_names[UP_MAX_LAYER_BLOCKS] = {"block0", "block1", "block2", "block3"};
      up_block_trace(be, ws->steps_run, l, block_names[b], ws->delta, step.n_rows, h);
      const void *next_norm = next_block_norm(model, l, b, n_blocks, blocks);
      if (next_norm)
        ops->add_rmsnorm(be, step.normed, step.residual, ws->delta, next_norm, step.n_rows, h, cfg->norm_eps);
      if (blocks[b] == UP_BLOCK_ATTENTION) {
        drop_after_attention(&step, l);
        if (out->row_drops_survived) count_surviving_rows(&step, l, out->row_drops_survived);
      }
    }
  }

  if (out->seq_kept_rows)
    for (int32_t s = 0; s < n_seqs; ++s) out->seq_kept_rows[s] = up_forward_seq_rows(ws, s);
  /* Logits only for each sequence's last row (always kept). */
  for (int32_t s = 0; s < n_seqs; ++s) ws->h_last_rows[s] = ws->h_cu_seqlens[s + 1] - 1;
  ops->upload_i32(be, ws->last_rows, ws->h_last_rows, (size_t)n_seqs);
  ops->gather_rows(be, ws->last_residual, step.residual, ws->last_rows, n_seqs, h);
  ops->gather_rows(be, ws->last_delta, ws->delta, ws->last_rows, n_seqs, h);
  ops->add_rmsnorm(be, ws->last_normed, ws->last_residual, ws->last_delta,
                   up_model_weight(model, UP_TENSOR_FINAL_NORM, -1), n_seqs, h, cfg->norm_eps);
  lm_head(model, ws, n_seqs);
  ops->argmax_rows(be, out->next_tokens, ws->logits, n_seqs, cfg->vocab);
  if (out->logits) ops->download_f32(be, out->logits, ws->logits, 0, (size_t)n_seqs * cfg->vocab);
  ws->steps_run += 1;
}
