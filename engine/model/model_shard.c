/* model_shard.c — one rank's share of each weight dimension under tensor parallelism
 * (model_shard.h). Knows no architecture: the dimensions come from its table. */
#include "engine/model/model_shard.h"

#include <stdio.h>

#include "core/fatal.h"

bool up_model_shard_check(const up_model_config *cfg, int32_t tp_size, char *err, size_t err_size) {
  if (tp_size < 1) return up_error(err, err_size, "tensor-parallel size %d is not positive", (int)tp_size);
  /* Qwen3-Next's DeltaNet heads and MoE experts have no shard layout yet (PARALLEL.md 2.6). */
  for (int32_t l = 0; tp_size > 1 && l < cfg->n_layers; ++l)
    if (cfg->layer_kind[l] == UP_LAYER_LINEAR_ATTENTION || cfg->mlp_kind[l] == UP_MLP_MOE)
      return up_error(err, err_size,
                      "--tp %d: model %s has %s layers (layer %d), which are not split over tensor-parallel ranks yet",
                      (int)tp_size, cfg->name, cfg->mlp_kind[l] == UP_MLP_MOE ? "MoE" : "Gated DeltaNet", (int)l);
  if (cfg->n_heads % tp_size != 0)
    return up_error(err, err_size, "--tp %d does not divide model %s's %d query heads", (int)tp_size, cfg->name,
                    (int)cfg->n_heads);
  if (cfg->n_kv_heads % tp_size != 0 && tp_size % cfg->n_kv_heads != 0)
    return up_error(err, err_size, "--tp %d neither divides nor is a multiple of model %s's %d KV heads",
                    (int)tp_size, cfg->name, (int)cfg->n_kv_heads);
  if (cfg->intermediate % tp_size != 0)
    return up_error(err, err_size, "--tp %d does not divide model %s's MLP intermediate size %d", (int)tp_size,
                    cfg->name, (int)cfg->intermediate);
  if (cfg->vocab % tp_size != 0)
    return up_error(err, err_size, "--tp %d does not divide model %s's vocabulary of %d tokens", (int)tp_size,
                    cfg->name, (int)cfg->vocab);
  return true;
}

up_model_shard up_model_shard_of(const up_model_config *cfg, int32_t tp_rank, int32_t tp_size) {
  char why[256];
  UP_ASSERT(up_model_shard_check(cfg, tp_size, why, sizeof why), "%s", why);
  UP_ASSERT(tp_rank >= 0 && tp_rank < tp_size, "rank %d of a group of %d", (int)tp_rank, (int)tp_size);
  up_model_shard s = {.tp_rank = tp_rank, .tp_size = tp_size};
  s.n_heads = cfg->n_heads / tp_size;
  s.first_head = tp_rank * s.n_heads;
  /* More ranks than KV heads: each rank holds the one KV head its query heads read
   * (vLLM's replication, PARALLEL.md 2.2). */
  const int32_t replicas = tp_size > cfg->n_kv_heads ? tp_size / cfg->n_kv_heads : 1;
  s.n_kv_heads = replicas > 1 ? 1 : cfg->n_kv_heads / tp_size;
  s.first_kv_head = replicas > 1 ? tp_rank / replicas : tp_rank * s.n_kv_heads;
  s.intermediate = cfg->intermediate / tp_size;
  s.first_intermediate = tp_rank * s.intermediate;
  s.vocab = cfg->vocab / tp_size;
  s.first_vocab = tp_rank * s.vocab;
  return s;
}

void up_model_shard_range(const up_model_shard *shard, const up_model_config *cfg, up_dim dim, int64_t *first,
                          int64_t *count) {
  const int64_t hd = cfg->head_dim;
  switch (dim) {
    case UP_DIM_Q: *first = shard->first_head * hd; *count = shard->n_heads * hd; return;
    case UP_DIM_KV: *first = shard->first_kv_head * hd; *count = shard->n_kv_heads * hd; return;
    case UP_DIM_INTERMEDIATE: *first = shard->first_intermediate; *count = shard->intermediate; return;
    case UP_DIM_VOCAB: *first = shard->first_vocab; *count = shard->vocab; return;
    case UP_DIM_QKV:
    case UP_DIM_GATE_UP:
      /* Fused dimensions split part by part; a table names its parts. */
      UP_FATAL("fused dimension %d has no single shard range: split its parts", (int)dim);
    case UP_DIM_ONE:
    case UP_DIM_HIDDEN:
    case UP_DIM_HEAD: break;
    /* Gated DeltaNet and MoE dimensions stay whole: up_model_shard_check refuses their
     * models at TP > 1, so every rank holds them all. */
    case UP_DIM_GDN_KEY:
    case UP_DIM_GDN_VALUE:
    case UP_DIM_GDN_CONV:
    case UP_DIM_GDN_QKVZ:
    case UP_DIM_GDN_HEADS:
    case UP_DIM_GDN_BA:
    case UP_DIM_GDN_HEAD_DIM:
    case UP_DIM_CONV_WIDTH:
    case UP_DIM_EXPERTS:
    case UP_DIM_MOE_INTER:
    case UP_DIM_MOE_GATE_UP:
    case UP_DIM_SHARED_INTER:
    case UP_DIM_SHARED_GATE_UP: break;
  }
  *first = 0;
  *count = up_dim_size(cfg, dim);
}

int64_t up_model_shard_rows(const up_model_shard *shard, const up_model_config *cfg, const up_tensor_spec *spec) {
  int64_t rows = 0;
  for (int32_t p = 0; p < spec->n_parts; ++p) {
    int64_t first, count;
    up_model_shard_range(shard, cfg, spec->parts[p].rows, &first, &count);
    rows += count;
  }
  return rows;
}

int64_t up_model_shard_cols(const up_model_shard *shard, const up_model_config *cfg, const up_tensor_spec *spec) {
  int64_t first, count;
  up_model_shard_range(shard, cfg, spec->cols, &first, &count);
  return count;
}

int32_t up_model_shard_qkv_dim(const up_model_shard *shard, const up_model_config *cfg) {
  return (shard->n_heads + 2 * shard->n_kv_heads) * cfg->head_dim;
}
