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
    case UP_DIM_GDN_KEY: return (int64_t)cfg->linear_key_heads * cfg->linear_head_dim;
    case UP_DIM_GDN_VALUE: return (int64_t)cfg->linear_value_heads * cfg->linear_head_dim;
    case UP_DIM_GDN_CONV: return 2 * up_dim_size(cfg, UP_DIM_GDN_KEY) + up_dim_size(cfg, UP_DIM_GDN_VALUE);
    case UP_DIM_GDN_QKVZ: return up_dim_size(cfg, UP_DIM_GDN_CONV) + up_dim_size(cfg, UP_DIM_GDN_VALUE);
    case UP_DIM_GDN_HEADS: return cfg->linear_value_heads;
    case UP_DIM_GDN_BA: return 2 * (int64_t)cfg->linear_value_heads;
    case UP_DIM_GDN_HEAD_DIM: return cfg->linear_head_dim;
    case UP_DIM_CONV_WIDTH: return cfg->linear_conv_width;
    case UP_DIM_EXPERTS: return cfg->n_experts;
    case UP_DIM_MOE_INTER: return cfg->moe_intermediate;
    case UP_DIM_MOE_GATE_UP: return 2 * (int64_t)cfg->moe_intermediate;
    case UP_DIM_SHARED_INTER: return cfg->shared_expert_intermediate;
    case UP_DIM_SHARED_GATE_UP: return 2 * (int64_t)cfg->shared_expert_intermediate;
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
    case UP_BLOCK_ATTENTION:
    case UP_BLOCK_DELTANET: return UP_TENSOR_ATTN_NORM; /* the token mixer's input norm, whichever mixer */
    case UP_BLOCK_MLP:
    case UP_BLOCK_MOE: return UP_TENSOR_MLP_NORM;
    case UP_BLOCK_MODEL: break;
  }
  UP_FATAL("block kind %d has no input norm", (int)block);
}

static bool layer_runs(const up_block_kind *blocks, int32_t n_blocks, up_block_kind block) {
  for (int32_t i = 0; i < n_blocks; ++i)
    if (blocks[i] == block) return true;
  return false;
}

static bool is_expert_stack(const up_arch *arch, up_tensor_role role) {
  for (int32_t i = 0; i < arch->n_expert_stacks; ++i)
    if (arch->expert_stacks[i] == role) return true;
  return false;
}

int32_t up_arch_stack_experts(const up_model_config *cfg, up_tensor_role role) {
  return is_expert_stack(up_arch_of(cfg), role) ? cfg->n_experts : 0;
}

static const up_tensor_part_layout *part_layout(const up_arch *arch, up_tensor_role role, int32_t part) {
  for (int32_t i = 0; i < arch->n_part_layouts; ++i)
    if (arch->part_layouts[i].role == role && arch->part_layouts[i].part == part) return &arch->part_layouts[i];
  return NULL;
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
    const int32_t experts = up_arch_stack_experts(cfg, spec->role);
    out[n++] = (up_tensor_desc){.spec = spec, .role = spec->role, .layer = layer, .expert = -1,
                                .n_experts = experts,
                                .rows = up_dim_size(cfg, spec->rows) * up_tensor_copies(experts),
                                .cols = up_dim_size(cfg, spec->cols)};
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
  const up_arch *arch = up_arch_of(cfg);
  const up_tensor_part_layout *layout = part_layout(arch, stored, part);
  if (layout) {
    out->gguf_order = layout->gguf_order;
    out->hf_order = layout->hf_order;
  }
  if (is_expert_stack(arch, stored)) {
    out->experts = cfg->n_experts;
    out->expert_rows = up_dim_size(cfg, spec->rows);
  }
  const char *suffix = layout && layout->bare_name ? "" : ".weight";
  if (layer < 0) {
    snprintf(out->gguf_name, sizeof out->gguf_name, "%s%s", ps->gguf, suffix);
    snprintf(out->hf_name, sizeof out->hf_name, "%s%s", ps->hf, suffix);
  } else {
    snprintf(out->gguf_name, sizeof out->gguf_name, "blk.%d.%s%s", (int)layer, ps->gguf, suffix);
    snprintf(out->hf_name, sizeof out->hf_name, "%s%d.%s%s", up_arch_of(cfg)->hf_layer_prefix, (int)layer, ps->hf,
             suffix);
  }
  return true;
}

/* Row r of a per-key-head group layout: key head g's group holds `sizes[i]` rows of
 * each of its n_fields fields in turn; the engine keeps field `field` of every key
 * head together (key head g's rows at g * sizes[field]). */
static int64_t grouped_row(int64_t row, int32_t key_heads, const int64_t *sizes, int32_t n_fields, int32_t field) {
  int64_t group = 0, before = 0;
  for (int32_t i = 0; i < n_fields; ++i) group += sizes[i];
  for (int32_t i = 0; i < field; ++i) before += sizes[i];
  const int64_t head = row / sizes[field];
  UP_ASSERT(head < key_heads, "row %lld beyond %d key heads of %lld", (long long)row, (int)key_heads,
            (long long)sizes[field]);
  return head * group + before + row % sizes[field];
}

int64_t up_arch_stored_row(const up_model_config *cfg, up_row_order order, int64_t row) {
  const int64_t hd = cfg->head_dim, dk = cfg->linear_head_dim;
  const int32_t hk = cfg->linear_key_heads;
  const int64_t per_key = hk > 0 ? (int64_t)cfg->linear_value_heads / hk : 0; /* value heads per key head */
  const int64_t qkvz[4] = {dk, dk, per_key * dk, per_key * dk}, ba[2] = {per_key, per_key};
  switch (order) {
    case UP_ROWS_AS_STORED: return row;
    case UP_ROWS_HEAD_PAIR_FIRST: return (row / hd) * 2 * hd + row % hd;
    case UP_ROWS_HEAD_PAIR_SECOND: return (row / hd) * 2 * hd + hd + row % hd;
    case UP_ROWS_GDN_QKV: {
      /* engine q (hk dk), k (hk dk), v (hk per_key dk): find the field, then its group row */
      const int64_t key = hk * dk;
      if (row < key) return grouped_row(row, hk, qkvz, 4, 0);
      if (row < 2 * key) return grouped_row(row - key, hk, qkvz, 4, 1);
      return grouped_row(row - 2 * key, hk, qkvz, 4, 2);
    }
    case UP_ROWS_GDN_Z: return grouped_row(row, hk, qkvz, 4, 3);
    case UP_ROWS_GDN_B: return grouped_row(row, hk, ba, 2, 0);
    case UP_ROWS_GDN_A: return grouped_row(row, hk, ba, 2, 1);
  }
  UP_FATAL("unknown row order %d", (int)order);
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
