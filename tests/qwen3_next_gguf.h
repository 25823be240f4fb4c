/* qwen3_next_gguf.h — for the tests: a Hugging Face qwen3_next directory (the committed
 * fixtures, tests/data/qwen3_next/) rewritten as llama.cpp's converter writes a qwen3next
 * GGUF (convert_hf_to_gguf.py's Qwen3NextModel over Qwen2MoeModel; ../shared/HYBRIDS.md
 * C.10), in either DeltaNet layout: the newer attn_qkv / attn_gate (in_proj_qkvz's rows
 * regrouped from per key head [q|k|v|z] to every q, every k, every v; every z), or the
 * legacy ssm_in (in_proj_qkvz as stored); or with the fused tensors llama.cpp's loader
 * also takes (a full-attention layer's q_proj, k_proj and v_proj as one attn_qkv, the
 * experts' gate and up projections as one ffn_gate_up_exps). As the converter does: 1 added to every norm
 * weight but linear_attn.norm, A_log stored as A = -exp(A_log) under ssm_a, dt_bias as
 * ssm_dt.bias, the conv squeezed to [channels, width], the experts stacked into one 3-D
 * tensor per projection, and no mtp tensor. F32 tensors. Written from that description,
 * not from the engine's readers, so the engine's GGUF path is checked against it. */
#ifndef UP_TESTS_QWEN3_NEXT_GGUF_H
#define UP_TESTS_QWEN3_NEXT_GGUF_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "engine/checkpoint/hf_checkpoint.h"
#include "engine/checkpoint/safetensors.h"
#include "tests/gguf_writer.h"

enum { QN_GGUF_ALIGNMENT = 32 };

typedef enum qn_gguf_layout {
  QN_GGUF_SPLIT = 0, /* attn_qkv / attn_gate in DeltaNet layers; attn_q/k/v; ffn_gate_exps, ffn_up_exps */
  QN_GGUF_LEGACY,    /* ssm_in in DeltaNet layers */
  QN_GGUF_FUSED,     /* as SPLIT, with attention attn_qkv and ffn_gate_up_exps */
  QN_GGUF_BOTH,      /* SPLIT and FUSED's tensors side by side: no converter's file */
} qn_gguf_layout;

/* One output tensor: its GGUF name, ggml dims (contiguous first) and F32 values. */
typedef struct qn_gguf_tensor {
  char name[96];
  uint32_t n_dims;
  uint64_t dims[3];
  float *values;
} qn_gguf_tensor;

typedef struct qn_gguf_list {
  qn_gguf_tensor *t;
  int32_t n, cap;
} qn_gguf_list;

static inline qn_gguf_tensor *qn_add(qn_gguf_list *l, const char *name, uint32_t n_dims, uint64_t d0, uint64_t d1,
                                     uint64_t d2) {
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 64;
    l->t = realloc(l->t, sizeof *l->t * (size_t)l->cap);
    UP_ASSERT(l->t, "qwen3next GGUF writer: out of memory");
  }
  qn_gguf_tensor *t = &l->t[l->n++];
  snprintf(t->name, sizeof t->name, "%s", name);
  t->n_dims = n_dims;
  t->dims[0] = d0, t->dims[1] = d1, t->dims[2] = d2;
  t->values = up_malloc_or_die(sizeof(float) * (size_t)(d0 * d1 * d2), "qwen3next GGUF tensor");
  return t;
}

/* A Hugging Face tensor's values as fp32 (the caller frees); fatal when absent. */
static inline float *qn_hf_values(const up_hf_checkpoint *hf, const char *name, int64_t *count) {
  const up_st_tensor *t = up_hf_checkpoint_find(hf, name);
  UP_ASSERT(t, "fixture has no tensor %s", name);
  float *v = up_malloc_or_die(sizeof(float) * (size_t)t->n_elements, "fixture tensor");
  char err[256];
  UP_ASSERT(up_safetensors_to_f32(t, v, 0, t->n_elements, err, sizeof err), "%s", err);
  *count = t->n_elements;
  return v;
}

/* A 2-D (or 1-D) Hugging Face tensor renamed, each value plus `add`. */
static inline void qn_copy(qn_gguf_list *l, const up_hf_checkpoint *hf, const char *hf_name, const char *gguf_name,
                           float add) {
  const up_st_tensor *st = up_hf_checkpoint_find(hf, hf_name);
  UP_ASSERT(st, "fixture has no tensor %s", hf_name);
  int64_t n;
  float *v = qn_hf_values(hf, hf_name, &n);
  /* [rows, cols] -> {cols, rows}; [n] -> {n}; [1, n] stays {n, 1} as the converter keeps it. */
  const uint64_t cols = (uint64_t)st->shape[st->n_dims - 1], rows = (uint64_t)(n / (int64_t)cols);
  qn_gguf_tensor *t = qn_add(l, gguf_name, st->n_dims == 1 ? 1 : 2, cols, rows, 1);
  for (int64_t i = 0; i < n; ++i) t->values[i] = v[i] + add;
  free(v);
}

/* in_proj_qkvz's per-key-head groups [q (dk) | k (dk) | v (r dv) | z (r dv)] as
 * attn_qkv = [q of every key head; k of every; v of every] and attn_gate = [z of every]. */
static inline void qn_split_qkvz(qn_gguf_list *l, const up_model_config *cfg, const float *w, int32_t layer) {
  const int64_t hk = cfg->linear_key_heads, d = cfg->linear_head_dim, h = cfg->hidden;
  const int64_t r = cfg->linear_value_heads / hk, group = 2 * d + 2 * r * d;
  char name[96];
  snprintf(name, sizeof name, "blk.%d.attn_qkv.weight", (int)layer);
  qn_gguf_tensor *qkv = qn_add(l, name, 2, (uint64_t)h, (uint64_t)(hk * (2 * d + r * d)), 1);
  snprintf(name, sizeof name, "blk.%d.attn_gate.weight", (int)layer);
  qn_gguf_tensor *z = qn_add(l, name, 2, (uint64_t)h, (uint64_t)(hk * r * d), 1);
  const size_t row = sizeof(float) * (size_t)h;
  for (int64_t g = 0; g < hk; ++g) {
    const float *src = w + g * group * h; /* key head g's group */
    for (int64_t i = 0; i < d; ++i) {
      memcpy(qkv->values + (g * d + i) * h, src + i * h, row);
      memcpy(qkv->values + (hk * d + g * d + i) * h, src + (d + i) * h, row);
    }
    for (int64_t i = 0; i < r * d; ++i) {
      memcpy(qkv->values + (2 * hk * d + g * r * d + i) * h, src + (2 * d + i) * h, row);
      memcpy(z->values + (g * r * d + i) * h, src + (2 * d + r * d + i) * h, row);
    }
  }
}

/* The experts' projections stacked: {cols, rows, experts}, each expert's block the rows
 * of projs[0], then of projs[1] (a fused gate/up) when n_projs is 2. */
static inline void qn_stack_experts(qn_gguf_list *l, const up_hf_checkpoint *hf, const up_model_config *cfg,
                                    int32_t layer, const char *const *projs, int32_t n_projs, const char *stem) {
  char hf_name[128], name[96];
  snprintf(hf_name, sizeof hf_name, "model.layers.%d.mlp.experts.0.%s.weight", (int)layer, projs[0]);
  const up_st_tensor *first = up_hf_checkpoint_find(hf, hf_name);
  UP_ASSERT(first && first->n_dims == 2, "fixture has no 2-D %s", hf_name);
  const int64_t rows = first->shape[0], cols = first->shape[1];
  snprintf(name, sizeof name, "blk.%d.%s.weight", (int)layer, stem);
  qn_gguf_tensor *t = qn_add(l, name, 3, (uint64_t)cols, (uint64_t)(n_projs * rows), (uint64_t)cfg->n_experts);
  for (int32_t e = 0; e < cfg->n_experts; ++e)
    for (int32_t p = 0; p < n_projs; ++p) {
      snprintf(hf_name, sizeof hf_name, "model.layers.%d.mlp.experts.%d.%s.weight", (int)layer, (int)e, projs[p]);
      int64_t n;
      float *v = qn_hf_values(hf, hf_name, &n);
      UP_ASSERT(n == rows * cols, "%s has %lld values, expert 0 %lld", hf_name, (long long)n,
                (long long)(rows * cols));
      memcpy(t->values + ((int64_t)e * n_projs + p) * rows * cols, v, sizeof(float) * (size_t)n);
      free(v);
    }
}

/* q_proj, k_proj and v_proj stacked by rows as one attn_qkv. */
static inline void qn_fuse_attention(qn_gguf_list *l, const up_hf_checkpoint *hf, const up_model_config *cfg,
                                     int32_t layer) {
  const char *projs[3] = {"q_proj", "k_proj", "v_proj"};
  float *v[3];
  int64_t n[3];
  char hf_name[128], name[96];
  for (int p = 0; p < 3; ++p) {
    snprintf(hf_name, sizeof hf_name, "model.layers.%d.self_attn.%s.weight", (int)layer, projs[p]);
    v[p] = qn_hf_values(hf, hf_name, &n[p]);
  }
  const int64_t cols = cfg->hidden;
  snprintf(name, sizeof name, "blk.%d.attn_qkv.weight", (int)layer);
  qn_gguf_tensor *t = qn_add(l, name, 2, (uint64_t)cols, (uint64_t)((n[0] + n[1] + n[2]) / cols), 1);
  memcpy(t->values, v[0], sizeof(float) * (size_t)n[0]);
  memcpy(t->values + n[0], v[1], sizeof(float) * (size_t)n[1]);
  memcpy(t->values + n[0] + n[1], v[2], sizeof(float) * (size_t)n[2]);
  for (int p = 0; p < 3; ++p) free(v[p]);
}

/* One decoder layer's tensors under GGUF names. */
static inline void qn_convert_layer(qn_gguf_list *l, const up_hf_checkpoint *hf, const up_model_config *cfg,
                                    int32_t layer, qn_gguf_layout layout) {
  char hf_name[128], name[96];
#define QN_COPY(hf_suffix, gguf_stem, add)                                                         \
  do {                                                                                             \
    snprintf(hf_name, sizeof hf_name, "model.layers.%d.%s", (int)layer, hf_suffix);                \
    snprintf(name, sizeof name, "blk.%d.%s", (int)layer, gguf_stem);                               \
    qn_copy(l, hf, hf_name, name, add);                                                            \
  } while (0)
  QN_COPY("input_layernorm.weight", "attn_norm.weight", 1.0f);
  QN_COPY("post_attention_layernorm.weight", "post_attention_norm.weight", 1.0f);
  if (cfg->layer_kind[layer] == UP_LAYER_FULL_ATTENTION) {
    if (layout == QN_GGUF_FUSED || layout == QN_GGUF_BOTH) qn_fuse_attention(l, hf, cfg, layer);
    if (layout != QN_GGUF_FUSED) {
      QN_COPY("self_attn.q_proj.weight", "attn_q.weight", 0.0f); /* [query | gate] per head, unchanged */
      QN_COPY("self_attn.k_proj.weight", "attn_k.weight", 0.0f);
      QN_COPY("self_attn.v_proj.weight", "attn_v.weight", 0.0f);
    }
    QN_COPY("self_attn.o_proj.weight", "attn_output.weight", 0.0f);
    QN_COPY("self_attn.q_norm.weight", "attn_q_norm.weight", 1.0f);
    QN_COPY("self_attn.k_norm.weight", "attn_k_norm.weight", 1.0f);
  } else {
    if (layout == QN_GGUF_LEGACY) {
      QN_COPY("linear_attn.in_proj_qkvz.weight", "ssm_in.weight", 0.0f);
    } else {
      int64_t n;
      snprintf(hf_name, sizeof hf_name, "model.layers.%d.linear_attn.in_proj_qkvz.weight", (int)layer);
      float *w = qn_hf_values(hf, hf_name, &n);
      qn_split_qkvz(l, cfg, w, layer);
      free(w);
    }
    QN_COPY("linear_attn.in_proj_ba.weight", "ssm_ba.weight", 0.0f);
    QN_COPY("linear_attn.conv1d.weight", "ssm_conv1d.weight", 0.0f); /* [C, 1, K] squeezed: {K, C} */
    QN_COPY("linear_attn.dt_bias", "ssm_dt.bias", 0.0f);
    QN_COPY("linear_attn.norm.weight", "ssm_norm.weight", 0.0f); /* plain w: no + 1 */
    QN_COPY("linear_attn.out_proj.weight", "ssm_out.weight", 0.0f);
    QN_COPY("linear_attn.A_log", "ssm_a", 0.0f);
    qn_gguf_tensor *a = &l->t[l->n - 1];
    for (uint64_t i = 0; i < a->dims[0]; ++i) a->values[i] = -expf(a->values[i]);
  }
  QN_COPY("mlp.gate.weight", "ffn_gate_inp.weight", 0.0f);
  QN_COPY("mlp.shared_expert.gate_proj.weight", "ffn_gate_shexp.weight", 0.0f);
  QN_COPY("mlp.shared_expert.up_proj.weight", "ffn_up_shexp.weight", 0.0f);
  QN_COPY("mlp.shared_expert.down_proj.weight", "ffn_down_shexp.weight", 0.0f);
  QN_COPY("mlp.shared_expert_gate.weight", "ffn_gate_inp_shexp.weight", 0.0f);
#undef QN_COPY
  const char *gate_up[2] = {"gate_proj", "up_proj"}, *down = "down_proj";
  if (layout == QN_GGUF_FUSED || layout == QN_GGUF_BOTH)
    qn_stack_experts(l, hf, cfg, layer, gate_up, 2, "ffn_gate_up_exps");
  if (layout != QN_GGUF_FUSED) {
    qn_stack_experts(l, hf, cfg, layer, &gate_up[0], 1, "ffn_gate_exps");
    qn_stack_experts(l, hf, cfg, layer, &gate_up[1], 1, "ffn_up_exps");
  }
  qn_stack_experts(l, hf, cfg, layer, &down, 1, "ffn_down_exps");
}

/* What a test may change in the file the converter would write. */
typedef struct qn_gguf_options {
  qn_gguf_layout layout;
  const char *leave_out;         /* a tensor not written (NULL: every tensor) */
  const bool *recurrent_layers;  /* attention.recurrent_layers, one per layer (NULL: the key absent) */
} qn_gguf_options;

/* The metadata the converter writes for a qwen3next model, from the config. */
static inline uint64_t qn_put_metadata(gguf_buf *kv, const up_model_config *cfg, const bool *recurrent_layers) {
  uint64_t n = 0;
  put_kv_str(kv, "general.architecture", "qwen3next"), ++n;
  put_kv_u32(kv, "qwen3next.block_count", (uint32_t)cfg->n_layers), ++n;
  put_kv_u32(kv, "qwen3next.context_length", (uint32_t)cfg->max_context), ++n;
  put_kv_u32(kv, "qwen3next.embedding_length", (uint32_t)cfg->hidden), ++n;
  put_kv_u32(kv, "qwen3next.feed_forward_length", (uint32_t)cfg->intermediate), ++n;
  put_kv_u32(kv, "qwen3next.attention.head_count", (uint32_t)cfg->n_heads), ++n;
  put_kv_u32(kv, "qwen3next.attention.head_count_kv", (uint32_t)cfg->n_kv_heads), ++n;
  put_kv_u32(kv, "qwen3next.attention.key_length", (uint32_t)cfg->head_dim), ++n;
  put_kv_u32(kv, "qwen3next.attention.value_length", (uint32_t)cfg->head_dim), ++n;
  put_kv_f32(kv, "qwen3next.attention.layer_norm_rms_epsilon", cfg->norm_eps), ++n;
  put_kv_f32(kv, "qwen3next.rope.freq_base", cfg->rope_theta), ++n;
  put_kv_u32(kv, "qwen3next.rope.dimension_count", (uint32_t)cfg->rotary_dim), ++n;
  put_kv_u32(kv, "qwen3next.expert_count", (uint32_t)cfg->n_experts), ++n;
  put_kv_u32(kv, "qwen3next.expert_used_count", (uint32_t)cfg->n_experts_per_token), ++n;
  put_kv_u32(kv, "qwen3next.expert_feed_forward_length", (uint32_t)cfg->moe_intermediate), ++n;
  put_kv_u32(kv, "qwen3next.expert_shared_feed_forward_length", (uint32_t)cfg->shared_expert_intermediate), ++n;
  put_kv_u32(kv, "qwen3next.ssm.conv_kernel", (uint32_t)cfg->linear_conv_width), ++n;
  put_kv_u32(kv, "qwen3next.ssm.state_size", (uint32_t)cfg->linear_head_dim), ++n;
  put_kv_u32(kv, "qwen3next.ssm.group_count", (uint32_t)cfg->linear_key_heads), ++n;
  put_kv_u32(kv, "qwen3next.ssm.time_step_rank", (uint32_t)cfg->linear_value_heads), ++n;
  put_kv_u32(kv, "qwen3next.ssm.inner_size", (uint32_t)(cfg->linear_value_heads * cfg->linear_head_dim)), ++n;
  put_kv_u32(kv, "qwen3next.full_attention_interval", (uint32_t)cfg->full_attention_interval), ++n;
  if (recurrent_layers) {
    put_array_header(kv, "qwen3next.attention.recurrent_layers", UP_GGUF_BOOL, (uint64_t)cfg->n_layers), ++n;
    for (int32_t l = 0; l < cfg->n_layers; ++l) put_u8(kv, recurrent_layers[l] ? 1 : 0);
  }
  return n;
}

/* The GGUF file's bytes for the checkpoint directory hf_dir (the caller frees .data). */
static inline gguf_buf qn_gguf_from_hf_with(const char *hf_dir, qn_gguf_options options) {
  const qn_gguf_layout layout = options.layout;
  const char *leave_out = options.leave_out;
  char err[512] = "";
  up_hf_checkpoint *hf = up_hf_checkpoint_open(hf_dir, err, sizeof err);
  UP_ASSERT(hf, "%s", err);
  const up_model_config *cfg = up_hf_checkpoint_config(hf);
  qn_gguf_list l = {0};
  qn_copy(&l, hf, "model.embed_tokens.weight", "token_embd.weight", 0.0f);
  qn_copy(&l, hf, "model.norm.weight", "output_norm.weight", 1.0f);
  if (!cfg->tie_word_embeddings) qn_copy(&l, hf, "lm_head.weight", "output.weight", 0.0f);
  for (int32_t layer = 0; layer < cfg->n_layers; ++layer) qn_convert_layer(&l, hf, cfg, layer, layout);
  gguf_buf kv = {0}, infos = {0}, data = {0}, file = {0};
  const uint64_t n_kv = qn_put_metadata(&kv, cfg, options.recurrent_layers);
  int32_t kept = 0;
  for (int32_t i = 0; i < l.n; ++i) {
    const qn_gguf_tensor *t = &l.t[i];
    if (leave_out && strcmp(t->name, leave_out) == 0) {
      free(t->values);
      continue;
    }
    ++kept;
    put_tensor_info(&infos, t->name, t->n_dims, t->dims, UP_GGML_F32, data.len);
    for (uint64_t k = 0; k < t->dims[0] * t->dims[1] * t->dims[2]; ++k) put_f32(&data, t->values[k]);
    pad_to(&data, QN_GGUF_ALIGNMENT);
    free(t->values);
  }
  UP_ASSERT(!leave_out || kept == l.n - 1, "the GGUF of %s has no tensor %s to leave out", hf_dir, leave_out);
  put_header(&file, 3, (uint64_t)kept, n_kv);
  put(&file, kv.data, kv.len);
  put(&file, infos.data, infos.len);
  pad_to(&file, QN_GGUF_ALIGNMENT);
  put(&file, data.data, data.len);
  free(kv.data);
  free(infos.data);
  free(data.data);
  free(l.t);
  up_hf_checkpoint_close(hf);
  return file;
}

static inline gguf_buf qn_gguf_from_hf(const char *hf_dir, qn_gguf_layout layout) {
  return qn_gguf_from_hf_with(hf_dir, (qn_gguf_options){.layout = layout});
}

#endif
