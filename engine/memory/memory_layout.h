/* memory_layout.h — what each layer of a model keeps per sequence (paged full KV, paged
 * sliding-window KV of W entries, or a fixed-size recurrent state), taken from the
 * model config, and the arithmetic on it that admission, records and memory sizing
 * share: what a request needs at once per kind, and how many entries a layer counts.
 * Pure arithmetic; the layer-memory door (layer_memory.h) holds the live state. */
#ifndef UP_MEMORY_LAYOUT_H
#define UP_MEMORY_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "engine/model/model_config.h"

typedef enum up_memory_kind {
  UP_MEMORY_FULL_KV = 0,    /* paged KV, every entry kept */
  UP_MEMORY_SLIDING_KV = 1, /* paged KV, the last `window` entries kept */
  UP_MEMORY_RECURRENT = 2,  /* one fixed-size state per sequence */
  UP_MEMORY_KIND_COUNT = 3
} up_memory_kind;

const char *up_memory_kind_name(up_memory_kind kind);

typedef struct up_memory_layout {
  int32_t n_layers;
  int32_t block_tokens;
  int64_t kv_entry_bytes;             /* K and V of one entry at one paged layer */
  up_memory_kind kind[UP_MAX_LAYERS];
  int32_t window[UP_MAX_LAYERS];      /* sliding layers: entries kept; 0 elsewhere */
  int64_t state_bytes[UP_MAX_LAYERS]; /* recurrent layers: one sequence's state; 0 elsewhere */
} up_memory_layout;

/* The layout of cfg's layers with KV entries in `dtype` and blocks of block_tokens
 * entries. False with a message for a layer whose size the config cannot give. */
bool up_memory_layout_from_config(const up_model_config *cfg, up_dtype dtype, int32_t block_tokens,
                                  up_memory_layout *out, char *err, size_t err_size);

int32_t up_memory_layout_layers_of(const up_memory_layout *layout, up_memory_kind kind);
int64_t up_memory_layout_block_bytes(const up_memory_layout *layout);
/* One sequence's recurrent state over every recurrent layer. */
int64_t up_memory_layout_state_bytes(const up_memory_layout *layout);

/* What one request of prompt_tokens prompt and output_tokens output tokens needs. It
 * appends prompt + output - 1 entries (the last output token is never fed back), the
 * prompt's in one step. */
typedef struct up_memory_need {
  /* Pool blocks reserved at admission (its peak), per kind, summed over the kind's
   * layers; a sliding layer's peak is its prompt's blocks or its window's, the larger. */
  int64_t blocks[UP_MEMORY_KIND_COUNT];
  /* Pool blocks it keeps while decoding after a prefill that kept every token. */
  int64_t resident_blocks[UP_MEMORY_KIND_COUNT];
  /* blocks x block bytes; recurrent: its state bytes. */
  int64_t bytes[UP_MEMORY_KIND_COUNT];
  int32_t table_blocks; /* block-table entries one paged layer addresses */
  int32_t state_slots;  /* 1 when the model has recurrent layers */
} up_memory_need;

up_memory_need up_memory_layout_need(const up_memory_layout *layout, int64_t prompt_tokens, int64_t output_tokens);

/* Entries a layer holding `len` counts in records and memory sizing: all of them at a
 * full layer, min(len, window) at a sliding one, none at a recurrent one. */
int64_t up_memory_layout_counted_entries(const up_memory_layout *layout, int32_t layer, int64_t len);

#endif
