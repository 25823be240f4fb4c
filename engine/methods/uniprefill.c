/* uniprefill.c — UniPrefill: after each of its drop layers, the backend's selection
 * kernel (kernels/uniprefill_ops.h) scores the prompt's blocks by the attention its
 * last queries pay them and keeps the top-p share (or a fixed budget) plus sinks and
 * last queries; later layers see only the kept tokens. Attention itself stays dense
 * over the rows that enter a layer, its sliding windows counted in kept entries (the
 * reference) or in original positions (window=original, uniprefill_window.c). Owns the
 * method's options, their checks against the model and its hooks; the kernels are
 * kernels/cpu and kernels/cuda/selection. */
#include "engine/methods/uniprefill.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "engine/methods/uniprefill_window.h"

extern const up_method_ops up_method_uniprefill; /* defined at the end, after its hooks */

_Static_assert(sizeof(up_uniprefill_options) <= UP_METHOD_OPTIONS_BYTES, "UniPrefill options outgrow a spec");

#define UP_UNIPREFILL_OPTION(member) offsetof(up_uniprefill_options, member)

static const up_method_option up_uniprefill_option_table[] = {
    {"p", UP_OPTION_REAL, UP_UNIPREFILL_OPTION(select.top_p), 0.0, 1.0, true, "preset", "top_p",
     "top-p share of block scores kept, 0 < P <= 1, or preset (the model's: 0.975 on Gemma 3 as the reference, "
     "0.99 elsewhere)"},
    {"keep", UP_OPTION_REAL, UP_UNIPREFILL_OPTION(select.keep_fraction), 0.0, 1.0, false, "0", "keep_fraction",
     "fixed-budget mode, 0 = off (top-p): at each drop layer keep the highest-scoring blocks until a fraction F of "
     "that layer's current blocks is kept (so drops compound); meant for speed studies on random weights, where "
     "top-p keeps nearly every block"},
    {"block", UP_OPTION_INT, UP_UNIPREFILL_OPTION(select.block), 1.0, 1 << 20, false, "64", "block",
     "tokens per scoring block"},
    {"sink", UP_OPTION_INT, UP_UNIPREFILL_OPTION(select.sink), 0.0, 1 << 24, false, "128", "sink",
     "first tokens always kept"},
    {"last_q", UP_OPTION_INT, UP_UNIPREFILL_OPTION(select.last_q), 1.0, 1 << 20, false, "128", "last_q",
     "last tokens: the scoring queries, always kept"},
    {"layers", UP_OPTION_LAYERS, UP_UNIPREFILL_OPTION(layers), 0.0, 0.0, false, "preset", "drop_layers",
     "0-indexed layers after which tokens are dropped, L+L+L, or preset (the model's: Gemma 3 12B/27B 29+35+41 as "
     "the reference; 270M 5+11 and 1B 5+11+17 are this suite's choice, the reference runs them dense); each must "
     "be a full-attention (global) layer"},
    {"min_rows", UP_OPTION_INT, UP_UNIPREFILL_OPTION(min_rows), -1.0, 1 << 30, false, "-1", NULL,
     "skip a drop layer when the step has at most N rows left (the reference's Gemma 3 rule: 1024); -1: the "
     "model's (1024 on Gemma 3, 0 elsewhere)"},
    {"window", UP_OPTION_CHOICE, UP_UNIPREFILL_OPTION(window), 0.0, 0.0, false, "kept|original", NULL,
     "how a sliding-window layer's window counts after a drop: kept (W kept tokens, reaching back over more "
     "original positions: the reference) or original (the kept tokens within W original positions)"},
};

const up_uniprefill_options *up_uniprefill_options_of(const up_method_spec *spec) {
  return spec->method == &up_method_uniprefill ? (const up_uniprefill_options *)(const void *)spec->options : NULL;
}

static const up_uniprefill_options *options_of(const up_method *m) {
  return (const up_uniprefill_options *)(const void *)m->spec.options;
}

/* The preset p and drop layers come from the model; every drop layer must be one of its
 * full-attention layers. */
up_select_params up_uniprefill_select_params(const up_uniprefill_options *options, const up_model_config *cfg) {
  up_select_params select = options->select;
  if (isnan(select.top_p)) select.top_p = cfg->default_top_p;
  return select;
}

static bool uniprefill_resolve(void *options, const up_model_config *cfg, char *err, size_t err_size) {
  up_uniprefill_options *uni = options;
  uni->select = up_uniprefill_select_params(uni, cfg);
  up_layer_list *layers = &((up_uniprefill_options *)options)->layers;
  int32_t *min_rows = &((up_uniprefill_options *)options)->min_rows;
  if (*min_rows < 0) *min_rows = cfg->drop_min_rows;
  if (layers->n < 0) {
    layers->n = cfg->n_drop_layers;
    memcpy(layers->layers, cfg->drop_layers, sizeof(int32_t) * (size_t)cfg->n_drop_layers);
  }
  for (int32_t i = 0; i < layers->n; ++i) {
    const int32_t l = layers->layers[i];
    if (l < 0 || l >= cfg->n_layers) {
      snprintf(err, err_size, "drop layer %d is outside model %s's layers 0..%d", (int)l, cfg->name,
               (int)cfg->n_layers - 1);
      return false;
    }
    if (cfg->layer_kind[l] != UP_LAYER_FULL_ATTENTION) {
      char globals[256] = "";
      size_t used = 0;
      for (int32_t g = 0; g < cfg->n_layers && used < sizeof globals; ++g)
        if (cfg->layer_kind[g] == UP_LAYER_FULL_ATTENTION)
          used += (size_t)snprintf(globals + used, sizeof globals - used, "%s%d", used ? "+" : "", (int)g);
      snprintf(err, err_size, "drop layer %d of %s is not a full-attention layer (it is %s; the full-attention layers "
               "are %s)", (int)l, cfg->name, cfg->layer_kind[l] == UP_LAYER_SLIDING_WINDOW ? "sliding-window" : "linear attention",
               globals[0] ? globals : "none");
      return false;
    }
  }
  return true;
}

static bool uniprefill_supports(const up_method_spec *spec, up_backend *be, char *why, size_t why_size) {
  if (!up_uniprefill_select_kernel(be)) {
    snprintf(why, why_size, "the %s backend has no UniPrefill selection operator", be->ops->name);
    return false;
  }
  const up_uniprefill_options *options = up_uniprefill_options_of(spec);
  if (options->window == UP_UNIPREFILL_WINDOW_ORIGINAL && !up_bounded_attention_kernel(be)) {
    snprintf(why, why_size, "window=original needs attention bounded per row, which the %s backend lacks (use "
             "window=kept there)", be->ops->name);
    return false;
  }
  return true;
}

/* An instance's state: the positions of every cache entry under window=original (NULL
 * under window=kept, which needs none), and the group selection's score buffers, empty
 * until a tensor-parallel selection first grows them. */
typedef struct uniprefill_state {
  up_position_window *window;
  up_uniprefill_tp_buffers *tp_buffers;
} uniprefill_state;

static uniprefill_state *state_of(const up_method *m) { return m->state; }

static bool uniprefill_init(up_method *m, up_backend *be, char *err, size_t err_size) {
  (void)err;
  (void)err_size;
  uniprefill_state *st = up_calloc_or_die(1, sizeof *st, "UniPrefill state");
  if (options_of(m)->window == UP_UNIPREFILL_WINDOW_ORIGINAL) st->window = up_position_window_create(be);
  st->tp_buffers = up_uniprefill_tp_buffers_create(be);
  m->state = st;
  return true;
}

static void uniprefill_destroy(up_method *m) {
  uniprefill_state *st = state_of(m);
  if (!st) return;
  up_position_window_destroy(st->window);
  up_uniprefill_tp_buffers_destroy(st->tp_buffers);
  free(st);
}

up_position_window *up_uniprefill_position_window(const up_method *m) {
  UP_ASSERT(m->spec.method == &up_method_uniprefill, "method '%s' is not UniPrefill", m->spec.label);
  return state_of(m) ? state_of(m)->window : NULL;
}

/* Dense attention over the rows entering the layer; on a sliding layer under
 * window=original, each row's window starts at its first kept entry within W original
 * positions (before any drop that is the same window). */
static void uniprefill_attention(const up_method *m, up_backend *be, const up_method_layer *at, void *out,
                                 up_attn_work *work) {
  const uniprefill_state *st = state_of(m);
  if (at->window > 0 && st && st->window) {
    work->computed = work->tiles = up_position_window_attention(st->window, be, at, out);
    return;
  }
  be->ops->attention(be, out, at->qkv, at->pool, at->batch, at->shape, at->window);
  work->computed = work->tiles = up_method_window_pairs(at, at->window);
}

static bool uniprefill_drops_after(const up_method *m, int32_t layer) {
  const up_layer_list *layers = &options_of(m)->layers;
  for (int32_t i = 0; i < layers->n; ++i)
    if (layers->layers[i] == layer) return true;
  return false;
}

static int32_t uniprefill_select(const up_method *m, up_backend *be, const up_method_layer *at, int32_t *keep_rows,
                                 int32_t *new_cu_seqlens_host) {
  /* A step this short keeps every row (the forward leaves the rows as they are). */
  if (at->batch->n_tokens <= options_of(m)->min_rows) return at->batch->n_tokens;
  /* The selector scores with 1/sqrt(head_dim) whatever the model's own scale (Gemma 3
   * 27B attends with 1/sqrt(168)): the reference's operator (HYBRIDS.md D.3). */
  up_attn_shape scoring = *at->shape;
  scoring.scale = 1.0f / sqrtf((float)scoring.head_dim);
  if (at->tp && at->tp->size > 1) {
    UP_ASSERT(state_of(m), "UniPrefill '%s' selects on a tensor-parallel group without its state (up_method_init)",
              m->spec.label);
    return up_uniprefill_select_tp(state_of(m)->tp_buffers, be, at, &scoring, &options_of(m)->select, keep_rows,
                                   new_cu_seqlens_host);
  }
  return up_uniprefill_select(be, keep_rows, new_cu_seqlens_host, at->qkv, at->pool, at->batch, &scoring,
                              at->is_prefill_host, &options_of(m)->select);
}

/* Under TP the selection needs the backend's per-head scores (the CPU reference and
 * the CUDA backend have them). */
static bool uniprefill_supports_tp(const up_method_spec *spec, up_backend *be, int32_t tp_size, char *why,
                                   size_t why_size) {
  if (up_uniprefill_head_scores_kernel(be)) return true;
  snprintf(why, why_size, "the %s backend has no per-head block scores (%s) for the group's selection",
           be->ops->name, UP_UNIPREFILL_HEAD_SCORES_KERNEL);
  return false;
}

const up_method_ops up_method_uniprefill = {
    .name = "uniprefill",
    .usage = "uniprefill:keep=F:p=P:block=B:sink=S:last_q=Q:layers=L+L+L:min_rows=N:window=kept|original",
    .summary = "token dropping at chosen layers (any subset of the keys)",
    .options = up_uniprefill_option_table,
    .n_options = (int32_t)(sizeof up_uniprefill_option_table / sizeof up_uniprefill_option_table[0]),
    .options_size = sizeof(up_uniprefill_options),
    .resolve = uniprefill_resolve,
    .supports = uniprefill_supports,
    .init = uniprefill_init,
    .destroy = uniprefill_destroy,
    .drops_after = uniprefill_drops_after,
    .select = uniprefill_select,
    .attention = uniprefill_attention,
    .supports_tp = uniprefill_supports_tp,
};
