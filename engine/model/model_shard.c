/* model_shard.c — one rank's share of each weight dimension under tensor parallelism
 * (model_shard.h). Knows no architecture: the dimensions come from its table. */
#include "engine/model/model_shard.h"

#include <stdio.h>

#include "core/fatal.h"

static bool has_layer_kind(const up_model_config *cfg, up_layer_kind kind) {
  for (int32_t l = 0; l < cfg->n_layers; ++l)
    if (cfg->layer_kind[l] == kind) return true;
  return false;
}

/* Whether some layer's MLP is (true) or is not (false) an MoE block. */
static bool has_mlp_moe(const up_model_config *cfg, bool moe) {
  for (int32_t l = 0; l < cfg->n_layers; ++l)
    if ((cfg->mlp_kind[l] == UP_MLP_MOE) == moe) return true;
  return false;
}

static bool divides(int32_t tp_size, int32_t size, const up_model_config *cfg, const char *what, char *err,
                    size_t err_size) {
  if (size % tp_size == 0) return true;
  return up_error(err, err_size, "--tp %d does not divide model %s's %s (%d)", (int)tp_size, cfg->name, what,
                  (int)size);
}

bool up_model_shard_check(const up_model_config *cfg, int32_t tp_size, char *err, size_t err_size) {
  if (tp_size < 1) return up_error(err, err_size, "tensor-parallel size %d is not positive", (int)tp_size);
  if (cfg->n_heads % tp_size != 0)
    return up_error(err, err_size, "--tp %d does not divide model %s's %d query heads", (int)tp_size, cfg->name,
                    (int)cfg->n_heads);
  if (cfg->n_kv_heads % tp_size != 0 && tp_size % cfg->n_kv_heads != 0)
    return up_error(err, err_size, "--tp %d neither divides nor is a multiple of model %s's %d KV heads",
                    (int)tp_size, cfg->name, (int)cfg->n_kv_heads);
  if (has_mlp_moe(cfg, false) && cfg->intermediate % tp_size != 0)
    return up_error(err, err_size, "--tp %d does not divide model %s's MLP intermediate size %d", (int)tp_size,
                    cfg->name, (int)cfg->intermediate);
  if (cfg->vocab % tp_size != 0)
    return up_error(err, err_size, "--tp %d does not divide model %s's vocabulary of %d tokens", (int)tp_size,
                    cfg->name, (int)cfg->vocab);
  /* Value heads are a whole multiple of key heads (the architecture's config check),
   * so splitting key heads splits value heads with them (PARALLEL.md 2.6). */
  if (has_layer_kind(cfg, UP_LAYER_LINEAR_ATTENTION) &&
      !divides(tp_size, cfg->linear_key_heads, cfg, "Gated DeltaNet key heads", err, err_size))
    return false;
  if (has_mlp_moe(cfg, true) &&
      (!divides(tp_size, cfg->moe_intermediate, cfg, "routed experts' intermediate size", err, err_size) ||
       !divides(tp_size, cfg->shared_expert_intermediate, cfg, "shared expert's intermediate size", err, err_size)))
    return false;
  return true;
}

/* The rank's contiguous share of `size` items split evenly over the group. */
static void split_evenly(int32_t size, const up_model_shard *s, int32_t *count, int32_t *first) {
  *count = size / s->tp_size;
  *first = s->tp_rank * *count;
}

up_model_shard up_model_shard_of(const up_model_config *cfg, int32_t tp_rank, int32_t tp_size) {
  char why[256];
  UP_ASSERT(up_model_shard_check(cfg, tp_size, why, sizeof why), "%s", why);
  UP_ASSERT(tp_rank >= 0 && tp_rank < tp_size, "rank %d of a group of %d", (int)tp_rank, (int)tp_size);
  up_model_shard s = {.tp_rank = tp_rank, .tp_size = tp_size};
  split_evenly(cfg->n_heads, &s, &s.n_heads, &s.first_head);
  /* More ranks than KV heads: each rank holds the one KV head its query heads read
   * (vLLM's replication, PARALLEL.md 2.2). */
  const int32_t replicas = tp_size > cfg->n_kv_heads ? tp_size / cfg->n_kv_heads : 1;
  s.n_kv_heads = replicas > 1 ? 1 : cfg->n_kv_heads / tp_size;
  s.first_kv_head = replicas > 1 ? tp_rank / replicas : tp_rank * s.n_kv_heads;
  split_evenly(cfg->intermediate, &s, &s.intermediate, &s.first_intermediate);
  split_evenly(cfg->vocab, &s, &s.vocab, &s.first_vocab);
  /* The check makes these whole multiples where the model has such layers; elsewhere
   * nothing reads them. */
  split_evenly(cfg->linear_key_heads, &s, &s.n_linear_key_heads, &s.first_linear_key_head);
  split_evenly(cfg->linear_value_heads, &s, &s.n_linear_value_heads, &s.first_linear_value_head);
  split_evenly(cfg->moe_intermediate, &s, &s.moe_intermediate, &s.first_moe_intermediate);
  split_evenly(cfg->shared_expert_intermediate, &s, &s.shared_intermediate, &s.first_shared_intermediate);
  return s;
}

int32_t up_model_shard_segments(const up_model_shard *shard, const up_model_config *cfg, up_dim dim,
                                up_shard_segment seg[UP_MAX_SHARD_SEGMENTS]) {
  const int64_t hd = cfg->head_dim, ld = cfg->linear_head_dim;
  switch (dim) {
    case UP_DIM_Q: seg[0] = (up_shard_segment){shard->first_head * hd, shard->n_heads * hd}; return 1;
    case UP_DIM_KV: seg[0] = (up_shard_segment){shard->first_kv_head * hd, shard->n_kv_heads * hd}; return 1;
    case UP_DIM_INTERMEDIATE: seg[0] = (up_shard_segment){shard->first_intermediate, shard->intermediate}; return 1;
    case UP_DIM_VOCAB: seg[0] = (up_shard_segment){shard->first_vocab, shard->vocab}; return 1;
    case UP_DIM_GDN_KEY:
      seg[0] = (up_shard_segment){shard->first_linear_key_head * ld, shard->n_linear_key_heads * ld};
      return 1;
    case UP_DIM_GDN_VALUE:
      seg[0] = (up_shard_segment){shard->first_linear_value_head * ld, shard->n_linear_value_heads * ld};
      return 1;
    case UP_DIM_GDN_HEADS:
      seg[0] = (up_shard_segment){shard->first_linear_value_head, shard->n_linear_value_heads};
      return 1;
    case UP_DIM_GDN_CONV: {
      /* q of every key head, k of every key head, v of every value head: the rank's
       * heads of each, so its channels line up with its [q | k | v] (vLLM's
       * mamba_v2_sharded_weight_loader cuts the same three segments). */
      const int64_t key = up_dim_size(cfg, UP_DIM_GDN_KEY);
      up_shard_segment k[UP_MAX_SHARD_SEGMENTS], v[UP_MAX_SHARD_SEGMENTS];
      up_model_shard_segments(shard, cfg, UP_DIM_GDN_KEY, k);
      up_model_shard_segments(shard, cfg, UP_DIM_GDN_VALUE, v);
      seg[0] = k[0];
      seg[1] = (up_shard_segment){key + k[0].first, k[0].count};
      seg[2] = (up_shard_segment){2 * key + v[0].first, v[0].count};
      return 3;
    }
    case UP_DIM_MOE_INTER:
      seg[0] = (up_shard_segment){shard->first_moe_intermediate, shard->moe_intermediate};
      return 1;
    case UP_DIM_SHARED_INTER:
      seg[0] = (up_shard_segment){shard->first_shared_intermediate, shard->shared_intermediate};
      return 1;
    case UP_DIM_QKV:
    case UP_DIM_GATE_UP:
    case UP_DIM_GDN_QKVZ:
    case UP_DIM_GDN_BA:
    case UP_DIM_MOE_GATE_UP:
    case UP_DIM_SHARED_GATE_UP:
      /* Fused dimensions split part by part; a table names its parts. */
      UP_FATAL("fused dimension %d has no shard of its own: split its parts", (int)dim);
    /* Whole on every rank: norms, per-head weights, conv taps, the router's experts. */
    case UP_DIM_ONE:
    case UP_DIM_HIDDEN:
    case UP_DIM_HEAD:
    case UP_DIM_GDN_HEAD_DIM:
    case UP_DIM_CONV_WIDTH:
    case UP_DIM_EXPERTS: break;
  }
  seg[0] = (up_shard_segment){0, up_dim_size(cfg, dim)};
  return 1;
}

void up_model_shard_range(const up_model_shard *shard, const up_model_config *cfg, up_dim dim, int64_t *first,
                          int64_t *count) {
  up_shard_segment seg[UP_MAX_SHARD_SEGMENTS];
  UP_ASSERT(up_model_shard_segments(shard, cfg, dim, seg) == 1, "dimension %d splits into several pieces",
            (int)dim);
  *first = seg[0].first;
  *count = seg[0].count;
}

int64_t up_model_shard_dim(const up_model_shard *shard, const up_model_config *cfg, up_dim dim) {
  up_shard_segment seg[UP_MAX_SHARD_SEGMENTS];
  const int32_t n = up_model_shard_segments(shard, cfg, dim, seg);
  int64_t count = 0;
  for (int32_t i = 0; i < n; ++i) count += seg[i].count;
  return count;
}

int64_t up_model_shard_copy_rows(const up_model_shard *shard, const up_model_config *cfg, const up_tensor_spec *spec) {
  int64_t rows = 0;
  for (int32_t p = 0; p < spec->n_parts; ++p) rows += up_model_shard_dim(shard, cfg, spec->parts[p].rows);
  return rows;
}

int64_t up_model_shard_rows(const up_model_shard *shard, const up_model_config *cfg, const up_tensor_spec *spec) {
  return up_model_shard_copy_rows(shard, cfg, spec) * up_tensor_copies(up_arch_stack_experts(cfg, spec->role));
}

int64_t up_model_shard_cols(const up_model_shard *shard, const up_model_config *cfg, const up_tensor_spec *spec) {
  int64_t first, count;
  up_model_shard_range(shard, cfg, spec->cols, &first, &count);
  return count;
}

int32_t up_model_shard_part_runs(const up_model_shard *shard, const up_model_config *cfg, const up_tensor_spec *spec,
                                 int32_t part, up_shard_run runs[UP_MAX_SHARD_SEGMENTS]) {
  UP_ASSERT(part >= 0 && part < spec->n_parts, "weight '%s' has no part %d", spec->name, (int)part);
  int64_t global_row0 = 0, local_row0 = 0;
  for (int32_t p = 0; p < part; ++p) {
    global_row0 += up_dim_size(cfg, spec->parts[p].rows);
    local_row0 += up_model_shard_dim(shard, cfg, spec->parts[p].rows);
  }
  up_shard_segment seg[UP_MAX_SHARD_SEGMENTS];
  const int32_t n = up_model_shard_segments(shard, cfg, spec->parts[part].rows, seg);
  for (int32_t i = 0; i < n; ++i) {
    runs[i] = (up_shard_run){.global_row = global_row0 + seg[i].first, .local_row = local_row0, .rows = seg[i].count};
    local_row0 += seg[i].count;
  }
  return n;
}

int32_t up_model_shard_qkv_dim(const up_model_shard *shard, const up_model_config *cfg) {
  return (shard->n_heads + 2 * shard->n_kv_heads) * cfg->head_dim;
}
