/* memory_layout.c — the per-layer memory description from a model config and the
 * per-request arithmetic on it (see memory_layout.h). The block counts come from the
 * KV cache's own rules (kv_cache.h), so what admission asks for is what a reservation
 * takes. */
#include "engine/memory/memory_layout.h"

#include <string.h>

#include "core/fatal.h"
#include "engine/memory/kv_cache.h"
#include "engine/model/layer_cost.h"

const char *up_memory_kind_name(up_memory_kind kind) {
  switch (kind) {
    case UP_MEMORY_FULL_KV: return "full KV";
    case UP_MEMORY_SLIDING_KV: return "sliding-window KV";
    case UP_MEMORY_RECURRENT: return "recurrent state";
    default: return "unknown";
  }
}

bool up_memory_layout_from_config(const up_model_config *cfg, up_dtype dtype, int32_t block_tokens,
                                  up_memory_layout *out, char *err, size_t err_size) {
  UP_ASSERT(cfg->n_layers >= 1 && cfg->n_layers <= UP_MAX_LAYERS && block_tokens >= 1,
            "memory layout of %d layers with blocks of %d entries", cfg->n_layers, block_tokens);
  memset(out, 0, sizeof *out);
  out->n_layers = cfg->n_layers;
  out->block_tokens = block_tokens;
  out->kv_entry_bytes = up_attention_kv_entry_bytes(cfg, dtype);
  for (int32_t l = 0; l < cfg->n_layers; ++l) {
    switch (cfg->layer_kind[l]) {
      case UP_LAYER_FULL_ATTENTION:
        out->kind[l] = UP_MEMORY_FULL_KV;
        break;
      case UP_LAYER_SLIDING_WINDOW:
        if (cfg->sliding_window < 1)
          return up_error(err, err_size, "model %s: layer %d is sliding-window attention, but the config gives no "
                          "window (sliding_window %d)", cfg->name, (int)l, (int)cfg->sliding_window);
        out->kind[l] = UP_MEMORY_SLIDING_KV;
        out->window[l] = up_layer_window(cfg, l);
        break;
      case UP_LAYER_LINEAR_ATTENTION:
        out->kind[l] = UP_MEMORY_RECURRENT;
        out->state_bytes[l] = up_layer_recurrent_state_bytes(cfg, dtype, l);
        if (out->state_bytes[l] < 1)
          return up_error(err, err_size, "model %s: layer %d is linear attention without a recurrent state",
                          cfg->name, (int)l);
        break;
      default:
        return up_error(err, err_size, "model %s: layer %d has unknown kind %d", cfg->name, (int)l,
                        (int)cfg->layer_kind[l]);
    }
  }
  return true;
}

int32_t up_memory_layout_layers_of(const up_memory_layout *layout, up_memory_kind kind) {
  int32_t n = 0;
  for (int32_t l = 0; l < layout->n_layers; ++l) n += layout->kind[l] == kind;
  return n;
}

int64_t up_memory_layout_block_bytes(const up_memory_layout *layout) {
  return (int64_t)layout->block_tokens * layout->kv_entry_bytes;
}

int64_t up_memory_layout_state_bytes(const up_memory_layout *layout) {
  int64_t bytes = 0;
  for (int32_t l = 0; l < layout->n_layers; ++l)
    if (layout->kind[l] == UP_MEMORY_RECURRENT) bytes += layout->state_bytes[l];
  return bytes;
}

up_memory_need up_memory_layout_need(const up_memory_layout *layout, int64_t prompt_tokens, int64_t output_tokens) {
  UP_ASSERT(prompt_tokens >= 1 && output_tokens >= 1, "memory need of %lld prompt and %lld output tokens",
            (long long)prompt_tokens, (long long)output_tokens);
  up_memory_need need = {0};
  const int32_t bt = layout->block_tokens;
  const int64_t entries = prompt_tokens + output_tokens - 1;
  const int32_t life = up_kv_blocks_for_entries(bt, entries);
  for (int32_t l = 0; l < layout->n_layers; ++l) {
    const up_memory_kind kind = layout->kind[l];
    if (kind == UP_MEMORY_RECURRENT) {
      need.state_slots = 1;
      need.bytes[kind] += layout->state_bytes[l];
      continue;
    }
    need.table_blocks = life;
    if (kind == UP_MEMORY_FULL_KV) {
      need.blocks[kind] += life;
      need.resident_blocks[kind] += life;
    } else {
      need.blocks[kind] += up_kv_window_peak_blocks(bt, layout->window[l], prompt_tokens, entries);
      need.resident_blocks[kind] += up_kv_window_peak_blocks(bt, layout->window[l], 0, entries);
    }
  }
  need.bytes[UP_MEMORY_FULL_KV] = need.blocks[UP_MEMORY_FULL_KV] * up_memory_layout_block_bytes(layout);
  need.bytes[UP_MEMORY_SLIDING_KV] = need.blocks[UP_MEMORY_SLIDING_KV] * up_memory_layout_block_bytes(layout);
  return need;
}

int64_t up_memory_layout_counted_entries(const up_memory_layout *layout, int32_t layer, int64_t len) {
  UP_ASSERT(layer >= 0 && layer < layout->n_layers, "layer %d out of range [0, %d)", layer, layout->n_layers);
  switch (layout->kind[layer]) {
    case UP_MEMORY_FULL_KV: return len;
    case UP_MEMORY_SLIDING_KV: return len < layout->window[layer] ? len : layout->window[layer];
    default: return 0;
  }
}
