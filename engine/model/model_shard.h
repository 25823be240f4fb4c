/* model_shard.h — which part of every weight one rank of a tensor-parallel group holds
 * (Megatron's layout as vLLM implements it, ../shared/PARALLEL.md 2.1-2.6): query heads,
 * KV heads (split, or one replicated head when the group is larger than the KV head
 * count), MLP intermediate columns, vocabulary rows, Gated DeltaNet key heads with their
 * value heads, and each routed expert's and the shared expert's intermediate columns
 * (TP of experts: every rank holds every expert, the router replicated). Which
 * dimension of a weight splits is read from the architecture's table (arch.h): a part
 * whose rows are head, intermediate or vocabulary rows is column-parallel (its rows
 * split), a weight whose columns are such values is row-parallel (its columns split);
 * hidden-sized, per-head and expert-count dimensions stay whole. Most dimensions split
 * into one contiguous range; the DeltaNet conv channels (q, k and v of every head, in
 * that order) split into three, one per segment. Pure geometry: no backend, no
 * communicator. */
#ifndef UP_MODEL_SHARD_H
#define UP_MODEL_SHARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/model/arch.h"
#include "engine/model/model_config.h"

typedef struct up_model_shard {
  int32_t tp_rank, tp_size;
  int32_t n_heads, first_head;         /* query heads of this rank: global [first_head, + n_heads) */
  int32_t n_kv_heads, first_kv_head;   /* KV heads it holds (replicated when tp_size > the model's) */
  int32_t intermediate, first_intermediate;
  int32_t vocab, first_vocab;          /* vocabulary rows of the embedding and the LM head */
  /* Gated DeltaNet: whole key heads with the value heads that read them (value head j
   * reads key head j / (value heads / key heads), so both ranges are contiguous). */
  int32_t n_linear_key_heads, first_linear_key_head;
  int32_t n_linear_value_heads, first_linear_value_head;
  int32_t moe_intermediate, first_moe_intermediate;       /* of every routed expert */
  int32_t shared_intermediate, first_shared_intermediate; /* of the shared expert */
} up_model_shard;

/* True when a group of tp_size ranks can split cfg: tp_size divides the query heads,
 * the vocabulary, and where the model has them the dense MLP's intermediate size, the
 * Gated DeltaNet key heads and the experts' intermediate sizes; the KV heads divide or
 * are divided by it. False with a message naming the dimension otherwise. */
bool up_model_shard_check(const up_model_config *cfg, int32_t tp_size, char *err, size_t err_size);

/* Rank tp_rank's shard of a group of tp_size (checked: up_model_shard_check). */
up_model_shard up_model_shard_of(const up_model_config *cfg, int32_t tp_rank, int32_t tp_size);

/* A contiguous piece of a dimension a rank holds, in elements of the dimension. */
typedef struct up_shard_segment {
  int64_t first, count;
} up_shard_segment;

#define UP_MAX_SHARD_SEGMENTS 3

/* The pieces of dimension `dim` a rank holds, in the order the shard stacks them;
 * returns how many (the whole dimension, once, for one that does not split). Fused
 * dimensions (a table splits them part by part) are a fatal error. */
int32_t up_model_shard_segments(const up_model_shard *shard, const up_model_config *cfg, up_dim dim,
                                up_shard_segment segments[UP_MAX_SHARD_SEGMENTS]);

/* The one range of dimension `dim` a rank holds: for dimensions that split into a single
 * piece (every one a weight's columns use); fatal for the DeltaNet conv channels. */
void up_model_shard_range(const up_model_shard *shard, const up_model_config *cfg, up_dim dim, int64_t *first,
                          int64_t *count);

/* Elements of dimension `dim` the rank holds (all of its pieces). */
int64_t up_model_shard_dim(const up_model_shard *shard, const up_model_config *cfg, up_dim dim);

/* Rows of one copy of a weight's table shape on this rank (its parts' local rows), and of
 * the whole weight: an expert stack holds one such copy per expert, every rank all of
 * them (up_arch_stack_experts), so every caller sizes a stack the same way. */
int64_t up_model_shard_copy_rows(const up_model_shard *shard, const up_model_config *cfg, const up_tensor_spec *spec);
int64_t up_model_shard_rows(const up_model_shard *shard, const up_model_config *cfg, const up_tensor_spec *spec);
int64_t up_model_shard_cols(const up_model_shard *shard, const up_model_config *cfg, const up_tensor_spec *spec);

/* Rows of part `part` of one copy of a weight that a rank holds, as runs of consecutive
 * rows: `rows` rows from row `global_row` of the whole copy to row `local_row` of the
 * shard's copy. The runs of a part land one after another in the shard. */
typedef struct up_shard_run {
  int64_t global_row, local_row, rows;
} up_shard_run;
int32_t up_model_shard_part_runs(const up_model_shard *shard, const up_model_config *cfg, const up_tensor_spec *spec,
                                 int32_t part, up_shard_run runs[UP_MAX_SHARD_SEGMENTS]);

/* Fused QKV values of one row on this rank: (local query heads + 2 local KV heads) x head_dim. */
int32_t up_model_shard_qkv_dim(const up_model_shard *shard, const up_model_config *cfg);

#endif
