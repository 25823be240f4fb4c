/* model.h — a model instance on a backend: its weights (seeded random, or a trained
 * checkpoint's), allocated by its architecture's tensor table (arch.h), and the
 * forward pass over a packed batch of prefill and decode sequences with method hooks
 * at drop layers. */
#ifndef UP_MODEL_H
#define UP_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/checkpoint/checkpoint.h"
#include "engine/memory/kv_cache.h"
#include "engine/model/arch.h"
#include "engine/methods/method.h"
#include "engine/model/model_config.h"
#include "engine/model/model_shard.h"
#include "engine/parallel/tp_comm.h"
#include "kernels/ops.h"

typedef struct up_model {
  up_model_config cfg;
  const up_arch *arch;
  up_backend *be;
  /* Backend tensors by role: model-wide ones at [role], layer l's at
   * [(l + 1) * UP_TENSOR_ROLE_COUNT + role]; NULL where the architecture has none. */
  void **weights;
  float *inv_freq;  /* [head_dim/2] backend memory, fp32 */
  float *inv_freq_sliding; /* sliding-window layers' own frequencies, or NULL: they use inv_freq */
  float embed_scale;       /* embeddings times this (1: none), already rounded to the activation dtype */
  int64_t weight_bytes;
  /* Tensor parallelism: the group the forward's collectives run over (a group of one
   * when the model is whole) and this rank's share of every weight (model_shard.h).
   * Under TP > 1 the embedding shard has one more row, all zeros, that ids outside the
   * rank's vocabulary range read, so the all-reduce of the looked-up rows is exact. */
  up_tp_comm *tp;
  bool owns_tp;            /* the model made its own group of one and frees it */
  up_model_shard shard;
  /* Every how many forward steps the group compares a hash of UniPrefill's kept rows
   * after each drop (PARALLEL.md 3.5 step 6): 1 (the default, and the tests') every
   * step; 0 never. --tp-check-every sets it for benchmarks. */
  int32_t tp_check_every;
} up_model;

/* The backend tensor of a role at a layer (-1: model-wide); NULL when the model has none.
 * A tied model's LM head is its embedding table (one allocation). */
void *up_model_weight(const up_model *model, up_tensor_role role, int32_t layer);
/* The RoPE frequencies layer `layer` rotates with (backend memory, fp32). */
const float *up_model_rope_inv_freq(const up_model *model, int32_t layer);

/* Weights drawn from a seeded generator, one independent stream per tensor, scaled so
 * activations stay O(1) through every layer: the same seed gives the same model on any
 * backend and rank. */
up_model *up_model_create_random(const up_model_config *cfg, up_backend *be, uint64_t seed);
/* The shard of that model rank tp->rank of the group holds: every value is the one the
 * whole model holds at the same global index (core/rng.h draws by index), so TP = n
 * and TP = 1 compute with the same weights. tp outlives the model; the shapes must
 * split (up_model_shard_check: fatal otherwise, the launcher checks first). */
up_model *up_model_create_random_shard(const up_model_config *cfg, up_backend *be, up_tp_comm *tp, uint64_t seed);
/* Weights of a trained checkpoint (engine/checkpoint/checkpoint.h), dequantized to fp32 on the host
 * and stored in the backend's activation dtype. NULL with a message naming the file and
 * tensor when a weight is missing or misshapen. */
up_model *up_model_create_from_checkpoint(const up_checkpoint *ck, up_backend *be, char *err, size_t err_size);
/* The shard of a checkpoint's weights rank tp->rank holds: each tensor read whole and
 * sliced on the host (tp outlives the model). */
up_model *up_model_create_from_checkpoint_shard(const up_checkpoint *ck, up_backend *be, up_tp_comm *tp, char *err,
                                                size_t err_size);
void up_model_destroy(up_model *model);
/* KV values per cache entry on this rank: its KV heads x head_dim (the pool's kv_dim). */
int32_t up_model_kv_dim(const up_model *model);
/* Backend bytes the weights of cfg take, for checking before allocating. */
int64_t up_model_weight_bytes(const up_model_config *cfg, up_dtype dtype);
/* Backend bytes one rank's shard of cfg takes in a group of tp_size (the split
 * embedding's zero row included); up_model_weight_bytes at tp_size 1. */
int64_t up_model_shard_weight_bytes(const up_model_config *cfg, up_dtype dtype, int32_t tp_size);

/* One sequence of a forward batch. */
typedef struct up_forward_seq {
  int32_t slot;          /* KV cache slot, reserved for at least kv_len + n_tokens entries at every layer */
  int32_t n_tokens;      /* prompt length (prefill) or 1 (decode) */
  const int32_t *tokens; /* host */
  int32_t first_position;/* original position of the first token */
  bool is_prefill;       /* whole prompt on an empty cache: may be dropped from */
  int32_t state_slot;    /* recurrent state slot (up_layer_memory_state_slot) of a model with linear-attention
                          * layers, which continue from it unless first_position is 0; ignored otherwise */
} up_forward_seq;

/* Per-step workspace sized for a token and sequence capacity; no allocation per step. */
typedef struct up_forward_workspace up_forward_workspace;
up_forward_workspace *up_forward_workspace_create(const up_model *model, int64_t max_tokens, int32_t max_seqs,
                                                  int32_t max_blocks_per_seq);
void up_forward_workspace_destroy(up_forward_workspace *ws);
int64_t up_forward_workspace_bytes(const up_forward_workspace *ws);
/* Workspace bytes per batch row of a linear-attention hybrid's buffers (gate, DeltaNet),
 * per row of the MoE block's buffers, and per sequence slot (recurrent states and their
 * indices): 0 for a model without linear attention or MoE. The memory fit adds them to
 * what it counts for every model (forward_workspace_hybrid.c); the MoE buffers hold at
 * most up_forward_workspace_moe_rows(step rows) rows. */
int64_t up_forward_workspace_hybrid_row_bytes(const up_model_config *cfg, up_dtype dtype);
int64_t up_forward_workspace_moe_row_bytes(const up_model_config *cfg, up_dtype dtype);
int64_t up_forward_workspace_hybrid_seq_bytes(const up_model_config *cfg, up_dtype dtype);

/* The MoE block runs a step's rows in chunks of at most this many (moe_block.c): its
 * per-row buffers (the top-k copies of every row, about 121 KB a row at Qwen3-Next's
 * shapes) would otherwise take 16 GB at 128K rows. 32K rows keep about 640 rows per
 * expert in each grouped GEMM, the size --kernels times the experts at. */
#define UP_MOE_CHUNK_ROWS 32768
/* Rows the MoE buffers hold for a step of max_tokens rows: at most UP_MOE_CHUNK_ROWS,
 * fewer where the environment's UP_MOE_CHUNK_ROWS asks for fewer (a test hook: smaller
 * chunks, same results). */
int64_t up_forward_workspace_moe_rows(int64_t max_tokens);

/* What one forward reports back (host arrays owned by the caller). */
typedef struct up_forward_out {
  int32_t *next_tokens;     /* [n_seqs] greedy token of each sequence's last row; -1 where its
                             * logits hold a NaN or +inf (non-finite activations: the caller
                             * fails that sequence alone) */
  int32_t *seq_layer_rows;  /* [n_seqs][n_layers] rows of each sequence entering each layer; may be NULL */
  int64_t *layer_rows;      /* [n_layers] batch rows entering each layer; may be NULL */
  int32_t *seq_kept_rows;   /* [n_seqs] rows of each sequence left after the last layer; may be NULL */
  float *logits;            /* [n_seqs][vocab] last-row logits, for tests; may be NULL */
  up_attn_work *layer_attn;  /* [n_layers] attention work of each layer (method.h); may be NULL */
  /* [input rows, packed in sequence order] how many of the method's drop layers each
   * input row survived: d when the row was dropped at the d-th drop layer (from 0),
   * the number of drop layers when it was kept to the end. Drops nest (a dropped row
   * never returns), so "survived drop d" is "value > d". Filled by downloading the kept
   * rows' positions after each drop layer, so only diagnostics should ask; may be NULL
   * (then nothing is downloaded). The caller zeroes it. */
  int32_t *row_drops_survived;
} up_forward_out;

/* Run every layer over the batch: KV entries are appended to the cache at each layer's
 * own length; the method may drop prefill rows after its drop layers. */
void up_forward(const up_model *model, up_forward_workspace *ws, up_kv_cache *cache, const up_kv_pool *pool,
                const up_method *method, const up_forward_seq *seqs, int32_t n_seqs, up_forward_out *out);

#endif
