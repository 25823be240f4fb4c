/* method.h — the interface every prefill method implements (dense, UniPrefill, later
 * the sparse-attention baselines), after a backend's op table: a method is one
 * up_method_ops table in its own file (engine/methods/<name>.c) plus one line in the
 * registry (method_registry.c). The table carries the method's name, its options
 * (parsed and described generically from a declarative list), validation against the
 * model, supports(backend), init/destroy of per-instance state, and the hooks the
 * forward pass calls: drops_after/select (which tokens survive into later layers)
 * and attention (which keys each query sees). Nothing outside engine/methods names a
 * method; the launcher asks these functions instead. */
#ifndef UP_METHOD_H
#define UP_METHOD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/model/model_config.h"
#include "engine/parallel/tp_comm.h"
#include "kernels/ops.h"

typedef struct up_method up_method;
typedef struct up_method_ops up_method_ops;

/* ---- options --------------------------------------------------------------- */

typedef enum up_method_option_kind {
  UP_OPTION_REAL,   /* float in [lo, hi], or (lo, hi] when lo_open */
  UP_OPTION_INT,    /* int32 in [lo, hi] */
  UP_OPTION_LAYERS, /* up_layer_list: "preset", or layer indices joined by '+' (or ','), each once */
  UP_OPTION_PATH,   /* char[UP_METHOD_PATH_MAX]: a file name ("" = none), without ':' or ',' (spec separators) */
  UP_OPTION_CHOICE, /* int32 index of a name among choices; default_value lists them joined by '|', the first
                     * being the default ("kept|original") */
} up_method_option_kind;

/* Layers an option names; n == -1 stands for the model's preset until the spec is
 * resolved against a model. */
typedef struct up_layer_list {
  int32_t n;
  int32_t layers[UP_MAX_LAYERS];
} up_layer_list;

/* One option of a method, as written in a spec ("uniprefill:p=0.95"): where its value
 * lives in the method's options struct, its range and its default. */
typedef struct up_method_option {
  const char *key;
  up_method_option_kind kind;
  size_t offset;             /* of the float, int32_t or up_layer_list in the options struct */
  double lo, hi;             /* REAL and INT range */
  bool lo_open;              /* REAL: lo itself is out of range */
  const char *default_value; /* parsed like a user's value (CHOICE: the choices, see above) */
  const char *run_file_attr; /* the fixed point attribute the run file has always kept this
                              * option in (results/README.md), or NULL */
  const char *help;
} up_method_option;

enum {
  UP_METHOD_OPTIONS_BYTES = 768, /* room for any method's options struct */
  UP_METHOD_LABEL_MAX = 64,      /* a label as tables store it; --method entries fit it whole */
  UP_METHOD_TEXT_MAX = 1024,     /* a spec's text, long enough for a description naming every layer */
  UP_METHOD_REGISTRY_MAX = 16,   /* methods the registry may hold */
  UP_METHOD_PATH_MAX = 256,      /* a PATH option's room, its terminating NUL included */
};

/* A method with its options: parsed from "name[:key=value...]". Copyable by value. */
typedef struct up_method_spec {
  const up_method_ops *method;
  char label[UP_METHOD_LABEL_MAX]; /* as the user wrote it, e.g. "uniprefill:keep=0.3"; a longer
                                      text (a description parsed back) keeps its first 63 characters */
  _Alignas(max_align_t) unsigned char options[UP_METHOD_OPTIONS_BYTES]; /* the method's options struct */
} up_method_spec;

/* The defaults each method's specs start from: the built-in ones, changed by alias
 * flags such as --uniprefill-p (launcher/cli.c). Indexed like the registry. */
typedef struct up_method_defaults {
  up_method_spec spec[UP_METHOD_REGISTRY_MAX];
} up_method_defaults;

/* Every registered method at its built-in defaults. */
void up_method_defaults_init(up_method_defaults *defaults);

/* Set the default of option `key` of `method` to `value` (the option's own syntax).
 * False with a message naming the value (and for an unknown method or key, those). */
bool up_method_defaults_set(up_method_defaults *defaults, const char *method, const char *key, const char *value,
                            char *err, size_t err_size);

/* The spec a method's entries start from; NULL for an unknown method. */
const up_method_spec *up_method_defaults_of(const up_method_defaults *defaults, const char *method);

/* A spec of `method` at its built-in defaults, labelled with the method's name. */
void up_method_spec_default(up_method_spec *spec, const up_method_ops *method);

/* Parse "name[:key=value...]" over `defaults` (NULL: built-in). Unknown methods and
 * keys, a key given twice, an empty option (a trailing ':'), a value that is not
 * key=value or is out of range are errors whose message names the option. */
bool up_method_spec_parse(const char *text, const up_method_defaults *defaults, up_method_spec *out, char *err,
                          size_t err_size);

/* The spec with every option spelled out in table order, e.g.
 * "uniprefill:p=0.99:keep=0:block=64:sink=128:last_q=128:layers=1+3+5": what the run
 * file records, and a valid --method entry that parses back to the same options.
 * False when it does not fit `size`. */
bool up_method_spec_describe(const up_method_spec *spec, char *buf, size_t size);

/* Check the options against the model and fill what depends on it (a preset layer
 * list); false with "method 'LABEL': why" on error. */
bool up_method_spec_resolve(up_method_spec *spec, const up_model_config *cfg, char *err, size_t err_size);

/* The option whose value the run file's fixed attribute `attr` has always held, or NULL. */
const up_method_option *up_method_spec_option_for_attr(const up_method_spec *spec, const char *attr);
/* The value of a REAL or INT option of spec's method. */
double up_method_spec_number(const up_method_spec *spec, const up_method_option *option);
/* The value of a LAYERS option of spec's method. */
const up_layer_list *up_method_spec_layers(const up_method_spec *spec, const up_method_option *option);

/* The method every other one is compared with (the fidelity evaluation's reference):
 * whether spec is one of it, and a spec of it at its defaults. */
bool up_method_spec_is_reference(const up_method_spec *spec);
void up_method_spec_reference(up_method_spec *spec);

/* ---- the forward pass's view -------------------------------------------------- */

/* What the hooks see of one layer of a forward batch. */
typedef struct up_method_layer {
  int32_t layer;
  int32_t n_seqs;
  const uint8_t *is_prefill_host; /* [n_seqs] 1: whole-prompt prefill (may be dropped from); 0: decode */
  const int32_t *cu_seqlens_host; /* [n_seqs + 1] rows of each sequence entering the layer */
  const int32_t *kv_lens_host;    /* [n_seqs] cache entries including this step's rows */
  const void *qkv;                /* this layer's fused QKV rows (backend memory) */
  const up_kv_pool *pool;
  const up_attn_batch *batch;     /* the same batch as backend arrays */
  const up_attn_shape *shape;     /* this rank's heads under tensor parallelism */
  int32_t window;                 /* the layer's sliding window in cache entries (0: full attention) */
  const int32_t *positions;       /* [rows] original position of each row (backend memory) */
  const int32_t *slots_host;      /* [n_seqs] each sequence's KV slot: the same sequence across steps */
  /* Tensor parallelism: the group (size 1 when the model is whole); this rank's first
   * global query head; the forward step's index on this workspace (the same on every
   * rank of the group) and every how many steps the ranks' selections are compared
   * (up_model.tp_check_every). */
  up_tp_comm *tp;
  int32_t first_head;
  int64_t step;
  int32_t tp_check_every;
} up_method_layer;

/* The attention work of a layer, in query-key pairs: what was computed against what
 * causal attention over the rows entering the layer computes. Density is their ratio
 * (1 for dense attention; a sparse method counts the causal pairs of the blocks it
 * computed). */
typedef struct up_attn_work {
  double computed;
  double causal;
  /* What the kernel's work costs, in the same per-row pairs: the query-key pairs of the
   * tiles it computes, counted whole (masked parts included; a sparse method's 64x64 or
   * 128x128 tiles and its gathered columns, ../shared/BASELINES.md 4), and its
   * estimation's FLOPs over all heads (0 without an estimation). Dense attention sets
   * tiles = computed, so the speed model of dense and UniPrefill stays in causal pairs. */
  double tiles;
  double estimate_flops;
} up_attn_work;

/* Causal query-key pairs of a layer: row t of a sequence with n rows and kv entries
 * attends kv - n + t + 1 of them. */
double up_method_causal_pairs(const up_method_layer *at);
/* Query-key pairs attention over a window of `window` cache entries computes at a layer
 * (each row sees at most `window` entries, itself included); the causal count for 0. */
double up_method_window_pairs(const up_method_layer *at, int32_t window);

/* ---- the method table ------------------------------------------------------------ */

struct up_method_ops {
  const char *name;
  const char *usage;   /* the spec form --help shows, e.g. "dense" */
  const char *summary; /* one line for --help */
  const up_method_option *options;
  int32_t n_options;
  size_t options_size; /* bytes of the options struct, at most UP_METHOD_OPTIONS_BYTES */

  /* Check the options against the model and fill what depends on it; the message
   * needs no label. NULL: nothing to check. */
  bool (*resolve)(void *options, const up_model_config *cfg, char *err, size_t err_size);
  /* False with the reason when the backend lacks a kernel the method needs. NULL: any. */
  bool (*supports)(const up_method_spec *spec, up_backend *be, char *why, size_t why_size);
  /* Per-instance state in m->state (the sparse baselines keep per-head patterns
   * there). NULL: none. */
  bool (*init)(up_method *m, up_backend *be, char *err, size_t err_size);
  void (*destroy)(up_method *m);

  /* Hooks of the forward pass; NULL means the method does nothing there. */
  /* True when prefill rows may be dropped after this layer's attention. */
  bool (*drops_after)(const up_method *m, int32_t layer);
  /* Choose the surviving rows at such a layer (a decode row always survives): writes
   * their packed indices to keep_rows (backend memory) and the new offsets to
   * new_cu_seqlens_host; returns the kept count. */
  int32_t (*select)(const up_method *m, up_backend *be, const up_method_layer *at, int32_t *keep_rows,
                    int32_t *new_cu_seqlens_host);
  /* Attention of the layer into out (n_heads*head_dim values per row); fills work's
   * computed, tiles and estimate_flops (causal comes in set). NULL: the backend's dense
   * causal attention. */
  void (*attention)(const up_method *m, up_backend *be, const up_method_layer *at, void *out, up_attn_work *work);
  /* False with the reason when the method cannot run on a tensor-parallel group of
   * tp_size > 1 ranks on this backend. NULL: a method without select or attention
   * hooks runs under any TP (dense); one with them does not. */
  bool (*supports_tp)(const up_method_spec *spec, up_backend *be, int32_t tp_size, char *why, size_t why_size);
};

/* A method instance: its hooks (the spec's method's, or a test's own), its resolved
 * spec and its state. */
struct up_method {
  const up_method_ops *ops;
  up_method_spec spec;
  void *state;
};

/* An instance of a resolved spec on a backend: false with a message when the backend
 * cannot run the method or its state cannot be made. */
bool up_method_init(up_method *m, const up_method_spec *spec, up_backend *be, char *err, size_t err_size);
void up_method_destroy(up_method *m);

/* True when the method runs on a tensor-parallel group of tp_size ranks (any method at
 * tp_size 1); false with "method 'LABEL' ...: why" otherwise (the launcher's exit 2). */
bool up_method_supports_tp(const up_method_spec *spec, up_backend *be, int32_t tp_size, char *err,
                           size_t err_size);

/* True when the method drops tokens after some layer of an n_layers model. */
bool up_method_drops_tokens(const up_method *m, int32_t n_layers);

/* ---- the registry (method_registry.c) --------------------------------------------- */

int32_t up_method_count(void);
const up_method_ops *up_method_at(int32_t index);
/* The method registered under name, NULL when none is. */
const up_method_ops *up_method_find(const char *name);
/* Index of a registered method, -1 for another table. */
int32_t up_method_index(const up_method_ops *method);
/* "dense, uniprefill": every registered name, for messages. */
void up_method_names(char *buf, size_t size);
/* Every method with its spec form and options, for --help. */
void up_method_print_help(FILE *out);

#endif
