/* method.h — prefill methods as plug-ins. A method may drop tokens after a layer's
 * attention (UniPrefill: which tokens survive into later layers) and, later, may
 * replace the attention of full-attention layers (the sparse-attention baselines:
 * which keys each query sees). The forward pass calls only these hooks. */
#ifndef UP_METHOD_H
#define UP_METHOD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/model/model_config.h"
#include "kernels/ops.h"
#include "kernels/uniprefill_ops.h"

typedef enum up_method_kind {
  UP_METHOD_DENSE = 0,
  UP_METHOD_UNIPREFILL = 1,
} up_method_kind;

/* Everything a method is configured with; parsed from "name[:key=value...]". */
typedef struct up_method_spec {
  up_method_kind kind;
  char label[64];              /* as the user wrote it, e.g. "uniprefill:keep=0.3" */
  up_select_params select;     /* UniPrefill knobs */
  int32_t n_drop_layers;       /* -1: the model preset's drop layers */
  int32_t drop_layers[UP_MAX_LAYERS];
} up_method_spec;

/* Defaults for a method kind (top_p 0.99, block 64, sink 128, last_q 128, preset layers). */
void up_method_spec_default(up_method_spec *spec, up_method_kind kind);

/* Parse "dense", "uniprefill", "uniprefill:keep=0.3:p=0.95:block=64:sink=128:last_q=128:layers=7+11"
 * over a base spec holding the command-line defaults. On error writes a message and returns false. */
bool up_method_spec_parse(const char *text, const up_method_spec *uniprefill_defaults, up_method_spec *out,
                          char *err, size_t err_size);

/* Resolve preset drop layers against a model and check ranges; false with a message on error. */
bool up_method_spec_resolve(up_method_spec *spec, const up_model_config *cfg, char *err, size_t err_size);

typedef struct up_method up_method;

/* The hooks the forward pass calls. A NULL hook means the method does nothing there. */
typedef struct up_method_ops {
  const char *name;
  /* True when tokens may be dropped after this layer's attention. */
  bool (*drops_after)(const up_method *m, int32_t layer);
  /* Choose surviving rows (kernels/uniprefill_ops.h); returns the kept count. */
  int32_t (*select)(const up_method *m, up_backend *be, int32_t *keep_rows, int32_t *new_cu_seqlens_host,
                    const void *qkv, const up_kv_pool *pool, const up_attn_batch *batch,
                    const up_attn_shape *shape, const uint8_t *is_candidate_host);
  /* Sparse attention for full-attention layers; NULL: dense causal attention. */
  void (*attention)(const up_method *m, up_backend *be, void *out, const void *qkv, const up_kv_pool *pool,
                    const up_attn_batch *batch, const up_attn_shape *shape);
} up_method_ops;

/* A method instance: its hooks, its resolved spec, and whatever state it keeps
 * (the sparse-attention baselines will keep per-head patterns there). */
struct up_method {
  const up_method_ops *ops;
  up_method_spec spec;
  void *state;
};

/* The built-in method for a resolved spec. */
void up_method_init(up_method *m, const up_method_spec *spec);

const up_method_ops *up_method_ops_for(up_method_kind kind);
const char *up_method_kind_name(up_method_kind kind);

#endif
