/* sparse_method.h — what the three sparse-attention baselines (minference.c,
 * flexprefill.c, xattention.c) share: the layers they apply to (full-attention layers,
 * resolved from the model; sliding-window layers stay dense), the pattern buffers of
 * an instance, and the attention hook's frame: which sequences of a packed batch get a
 * pattern (whole-prompt prefills the method accepts), one estimation call, one
 * block-sparse attention call, and the pairs computed for the density records.
 * Each method supplies its estimation call; the kernels are
 * kernels/sparse_attention_ops.h. */
#ifndef UP_SPARSE_METHOD_H
#define UP_SPARSE_METHOD_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/methods/method.h"
#include "kernels/sparse_attention_ops.h"

/* Resolved from the model, not written by a user: kept in each method's options struct
 * so an instance needs nothing but its spec. */
typedef struct up_sparse_layers {
  uint8_t full[UP_MAX_LAYERS]; /* 1: a full-attention layer, where the method applies */
  int32_t sliding_window;      /* the window of the model's sliding layers (dense there) */
  int32_t n_layers, n_heads, head_dim;
} up_sparse_layers;

void up_sparse_layers_resolve(up_sparse_layers *layers, const up_model_config *cfg);

/* How one method fills a pattern. */
typedef struct up_sparse_method_kind {
  int32_t block;          /* block_q = block_k */
  /* Whether a whole-prompt prefill of n rows gets a pattern (else dense). */
  bool (*sparse_sequence)(const up_method *m, int32_t n);
  /* Extra keys a list row may hold at most at this layer (0 for the block methods). */
  int32_t (*max_columns)(const up_method *m, int32_t layer);
  /* Run the estimation kernel into pattern; returns the pairs it covers. */
  double (*estimate)(const up_method *m, up_backend *be, const up_method_layer *at, up_sparse_pattern *pattern);
  /* FLOPs of the estimation for one sequence of n rows, all heads (the speed model's
   * cost of choosing, ../shared/BASELINES.md 4). */
  double (*estimate_flops)(const up_method *m, int32_t n, const up_attn_shape *shape);
} up_sparse_method_kind;

/* The attention hook's frame (sparse_method.c): dense for other layers and for
 * sequences the method leaves alone, the kind's pattern for the rest; fills work
 * (method.h): pairs covered, pairs of the tiles computed, estimation FLOPs. */
void up_sparse_method_attention(const up_method *m, up_backend *be, const up_method_layer *at, void *out,
                                const up_sparse_method_kind *kind, const up_sparse_layers *layers,
                                up_attn_work *work);

/* supports(): the backend must have the attention kernel and the named estimator, and
 * take the model's head_dim (layers, resolved). */
bool up_sparse_method_supports(up_backend *be, const char *estimator, const up_sparse_layers *layers, char *why,
                               size_t why_size);

/* init/destroy of the shared state (pattern buffers grown on demand); `extra` (malloc'd
 * or NULL) is the method's own state, owned and freed by the shared one. */
bool up_sparse_method_init(up_method *m, up_backend *be, void *extra, char *err, size_t err_size);
void up_sparse_method_destroy(up_method *m);
void *up_sparse_method_extra(const up_method *m);

/* The per-method options every baseline has, at the start of each options struct. */
#define UP_SPARSE_DENSITY_OPTION(type)                                                                                \
  {"density", UP_OPTION_REAL, offsetof(type, density_cap), 0.0, 1.0, true, "1", NULL,                              \
   "density cap: keep at most this fraction of each head's causal blocks, highest scores first (forced blocks "    \
   "always); 1 = the method as published. For speed studies on random weights"}

#endif
