/* arch.c — reading an architecture's tables for one config (see arch.h): dimensions,
 * a layer's blocks and weights, and each weight's checkpoint tensors with their names
 * in both formats. Knows no architecture: every fact comes from the tables. */
#include "engine/model/arch.h"

#include <stdio.h>
#include <string.h>

#include "core/fatal.h"

int64_t up_dim_size(const up_model_config *cfg, up_dim dim) {
  switch (dim) {
    case UP_DIM_ONE: return 1;
    case UP_DIM_HIDDEN: return cfg->hidden;
    case UP_DIM_VOCAB: return cfg->vocab;
    case UP_DIM_Q: return (int64_t)cfg->n_heads * cfg->head_dim;
    case UP_DIM_KV: return (int64_t)cfg->n_kv_heads * cfg->head_dim;
    case UP_DIM_QKV: return up_model_config_qkv_dim(cfg);
    case UP_DIM_INTERMEDIATE: return cfg->intermediate;
    case UP_DIM_GATE_UP: return 2 * (int64_t)cfg->intermediate;
    case UP_DIM_HEAD: return cfg->head_dim;
  }
  UP_FATAL("unknown weight dimension %d", (int)dim);
}

int32_t up_arch_layer_blocks(const up_model_config *cfg, int32_t layer, up_block_kind blocks[UP_MAX_LAYER_BLOCKS]) {
  UP_ASSERT(layer >= 0 && layer < cfg->n_layers, "layer %d of %d", (int)layer, (int)cfg->n_layers);
  const int32_t n = up_arch_of(cfg)->layer_blocks(cfg, layer, blocks);
  UP_ASSERT(n >= 1 && n <= UP_MAX_LAYER_BLOCKS, "layer %d runs %d blocks", (int)layer, (int)n);
  return n;
}

up_tensor_role up_block_input_norm(up_block_kind block) {
  switch (block) {
    case UP_BLOCK_ATTENTION: return UP_TENSOR_ATTN_NORM;
    case UP_BLOCK_MLP: return UP_TENSOR_MLP_NORM;
    case UP_BLOCK_MODEL: break;
  }
  UP_FATAL("block kind %d has no input norm", (int)block);
}

static bool layer_runs(const up_block_kind *blocks, int32_t n_blocks, up_block_kind block) {
  for (int32_t i = 0; i < n_blocks; ++i)
    if (blocks[i] == block) return true;
  return false;
}

int32_t up_arch_layer_tensors(const up_model_config *cfg, int32_t layer, up_tensor_desc out[UP_MAX_LAYER_TENSORS]) {
  const up_arch *arch = up_arch_of(cfg);
  up_block_kind blocks[UP_MAX_LAYER_BLOCKS] = {UP_BLOCK_MODEL};
  const int32_t n_blocks = layer < 0 ? 1 : up_arch_layer_blocks(cfg, layer, blocks);
  int32_t n = 0;
  for (int32_t i = 0; i < arch->n_tensors; ++i) {
    const up_tensor_spec *spec = &arch->tensors[i];
    if (!layer_runs(blocks, n_blocks, spec->block)) continue;
    UP_ASSERT(n < UP_MAX_LAYER_TENSORS, "%s: more than %d weights in layer %d", arch->name, UP_MAX_LAYER_TENSORS,
              (int)layer);
    out[n++] = (up_tensor_desc){.spec = spec, .role = spec->role, .layer = layer, .expert = -1,
                                .rows = up_dim_size(cfg, spec->rows), .cols = up_dim_size(cfg, spec->cols)};
  }
  return n;
}

static const up_tensor_spec *find_spec(const up_model_config *cfg, up_tensor_role role, int32_t layer) {
  up_tensor_desc tensors[UP_MAX_LAYER_TENSORS];
  const int32_t n = up_arch_layer_tensors(cfg, layer, tensors);
  for (int32_t i = 0; i < n; ++i)
    if (tensors[i].role == role) return tensors[i].spec;
  return NULL;
}

bool up_arch_file_tensor(const up_model_config *cfg, up_tensor_role role, int32_t layer, int32_t part,
                         up_file_tensor *out) {
  if (layer < -1 || layer >= cfg->n_layers) return false;
  /* A tied head is stored once, as the embedding. */
  const up_tensor_role stored = role == UP_TENSOR_LM_HEAD && cfg->tie_word_embeddings ? UP_TENSOR_EMBED : role;
  const up_tensor_spec *spec = find_spec(cfg, stored, layer);
  if (!spec || part < 0 || part >= spec->n_parts) return false;
  memset(out, 0, sizeof *out);
  out->role = role;
  out->layer = layer;
  out->expert = -1;
  out->part = part;
  for (int32_t p = 0; p < part; ++p) out->row_offset += up_dim_size(cfg, spec->parts[p].rows);
  const up_tensor_part_spec *ps = &spec->parts[part];
  out->rows = up_dim_size(cfg, ps->rows);
  out->cols = up_dim_size(cfg, spec->cols);
  out->gguf_rotary_head_dim = ps->gguf_rotary_pairs ? cfg->head_dim : 0;
  out->hf_one_plus = ps->hf_one_plus;
  if (layer < 0) {
    snprintf(out->gguf_name, sizeof out->gguf_name, "%s.weight", ps->gguf);
    snprintf(out->hf_name, sizeof out->hf_name, "%s.weight", ps->hf);
  } else {
    snprintf(out->gguf_name, sizeof out->gguf_name, "blk.%d.%s.weight", (int)layer, ps->gguf);
    snprintf(out->hf_name, sizeof out->hf_name, "%s%d.%s.weight", up_arch_of(cfg)->hf_layer_prefix, (int)layer,
             ps->hf);
  }
  return true;
}

bool up_arch_find_file_tensor(const up_model_config *cfg, up_tensor_names names, const char *name,
                              up_file_tensor *out) {
  for (int32_t layer = -1; layer < cfg->n_layers; ++layer) {
    up_tensor_desc tensors[UP_MAX_LAYER_TENSORS];
    const int32_t n = up_arch_layer_tensors(cfg, layer, tensors);
    for (int32_t i = 0; i < n; ++i)
      for (int32_t p = 0; p < tensors[i].spec->n_parts; ++p) {
        up_file_tensor f;
        if (!up_arch_file_tensor(cfg, tensors[i].role, layer, p, &f)) continue;
        if (strcmp(names == UP_NAMES_GGUF ? f.gguf_name : f.hf_name, name) == 0) {
          *out = f;
          return true;
        }
      }
  }
  return false;
}
