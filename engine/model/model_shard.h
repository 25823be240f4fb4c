/* model_shard.h — which part of every weight one rank of a tensor-parallel group holds
 * (Megatron's layout as vLLM implements it, ../shared/PARALLEL.md 2.1-2.4): query heads,
 * KV heads (split, or one replicated head when the group is larger than the KV head
 * count), MLP intermediate columns and vocabulary rows, each a contiguous range of its
 * dimension. Which dimension of a weight splits is read from the architecture's table
 * (arch.h): a part whose rows are query, KV, intermediate or vocabulary rows is
 * column-parallel (its rows split), a weight whose columns are query or intermediate
 * values is row-parallel (its columns split); hidden-sized and per-head dimensions stay
 * whole. Pure geometry: no backend, no communicator. */
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
} up_model_shard;

/* True when a group of tp_size ranks can split cfg: tp_size divides the query heads,
 * the intermediate size and the vocabulary, and the KV heads divide or are divided by
 * it. False with a message naming the dimension otherwise. */
bool up_model_shard_check(const up_model_config *cfg, int32_t tp_size, char *err, size_t err_size);

/* Rank tp_rank's shard of a group of tp_size (checked: up_model_shard_check). */
up_model_shard up_model_shard_of(const up_model_config *cfg, int32_t tp_rank, int32_t tp_size);

/* The range of dimension `dim` a rank holds, in elements of that dimension: the whole
 * dimension for one that does not split. */
void up_model_shard_range(const up_model_shard *shard, const up_model_config *cfg, up_dim dim, int64_t *first,
                          int64_t *count);

/* Local rows and columns of a weight (the parts' local rows stacked in order). */
int64_t up_model_shard_rows(const up_model_shard *shard, const up_model_config *cfg, const up_tensor_spec *spec);
int64_t up_model_shard_cols(const up_model_shard *shard, const up_model_config *cfg, const up_tensor_spec *spec);

/* Fused QKV values of one row on this rank: (local query heads + 2 local KV heads) x head_dim. */
int32_t up_model_shard_qkv_dim(const up_model_shard *shard, const up_model_config *cfg);

#endif
