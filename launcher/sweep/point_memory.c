/* point_memory.c — a point's memory estimate and its fitting into a budget (see
 * point_memory.h). Pure arithmetic on the engine sizes: allocates nothing. */
#include "launcher/sweep/point_memory.h"

#include <stdio.h>

#include "engine/memory/memory_layout.h"
#include "engine/model/model.h"
#include "engine/model/layer_cost.h"

int64_t up_point_kv_block_bytes(const up_model_config *cfg, up_dtype dtype, int32_t block_tokens) {
  return (int64_t)block_tokens * up_model_kv_entry_bytes(cfg, dtype);
}

#define MIB 1048576

int64_t up_point_kv_blocks_in_mib(const up_model_config *cfg, up_dtype dtype, int64_t kv_cache_mib,
                                  int32_t block_tokens) {
  const int64_t block_bytes = up_point_kv_block_bytes(cfg, dtype, block_tokens);
  /* floor(kv_cache_mib * MIB / block_bytes) without forming the product: with
   * kv_cache_mib = whole * block_bytes + rest, it is whole * MIB + rest * MIB / block_bytes. */
  const int64_t whole = kv_cache_mib / block_bytes, rest = kv_cache_mib % block_bytes;
  if (whole > INT64_MAX / MIB - 1) return INT64_MAX;
  const int64_t part = rest <= INT64_MAX / MIB ? rest * MIB / block_bytes : (int64_t)((double)rest / block_bytes * MIB);
  return whole * MIB + part;
}

bool up_point_kv_cache_check(const up_model_config *cfg, up_dtype dtype, int64_t kv_cache_mib, int32_t block_tokens,
                             char *err, size_t err_size) {
  const int64_t blocks = up_point_kv_blocks_in_mib(cfg, dtype, kv_cache_mib, block_tokens);
  const double block_mib = (double)up_point_kv_block_bytes(cfg, dtype, block_tokens) / MIB;
  if (blocks < 1) {
    snprintf(err, err_size, "--kv-cache-mib %lld holds no block of --kv-block %d entries: one block of model %s takes "
             "%.2f MiB (K and V of %d entries at one layer); raise --kv-cache-mib or lower --kv-block",
             (long long)kv_cache_mib, (int)block_tokens, cfg->name, block_mib, (int)block_tokens);
    return false;
  }
  if (blocks > INT32_MAX) {
    snprintf(err, err_size, "--kv-cache-mib %lld makes %lld blocks of --kv-block %d entries, more than the KV pool's "
             "limit of %d blocks; lower --kv-cache-mib or raise --kv-block", (long long)kv_cache_mib,
             (long long)blocks, (int)block_tokens, INT32_MAX);
    return false;
  }
  return true;
}

/* Workspace bytes per activation row: residual, normed, delta and their compaction
 * spares, one more hidden row of slack, QKV, attention output, gate/up and SwiGLU
 * output, plus six int32 index arrays (model.c's workspace). */
static int64_t workspace_row_bytes(const up_model_config *cfg, up_dtype dtype) {
  return (5LL * cfg->hidden + up_model_config_qkv_dim(cfg) + (int64_t)cfg->n_heads * cfg->head_dim +
          3LL * cfg->intermediate) * (int64_t)up_dtype_size(dtype) + 6 * 4 +
         up_forward_workspace_hybrid_row_bytes(cfg, dtype);
}

/* The workspace of `rows` rows: every row's buffers, and the MoE block's for at most
 * one chunk of rows (model.h, UP_MOE_CHUNK_ROWS). */
static int64_t workspace_bytes(const up_model_config *cfg, up_dtype dtype, int64_t rows) {
  return rows * workspace_row_bytes(cfg, dtype) +
         up_forward_workspace_moe_rows(rows) * up_forward_workspace_moe_row_bytes(cfg, dtype);
}

/* The most rows whose workspace fits in `bytes` (the inverse of workspace_bytes). */
static int64_t workspace_rows_in(const up_model_config *cfg, up_dtype dtype, int64_t bytes) {
  if (bytes <= 0) return 0;
  const int64_t row = workspace_row_bytes(cfg, dtype), moe = up_forward_workspace_moe_row_bytes(cfg, dtype);
  const int64_t chunk = up_forward_workspace_moe_rows(INT64_MAX);
  if (bytes <= chunk * (row + moe)) return bytes / (row + moe);
  return chunk + (bytes - chunk * (row + moe)) / row;
}

/* Bytes that do not scale with rows or blocks: one row of logits per sequence, and
 * each sequence slot's recurrent state (linear-attention layers). */
static int64_t per_step_bytes(const up_model_config *cfg, up_dtype dtype, int32_t max_seqs) {
  return (int64_t)max_seqs * (cfg->vocab * (int64_t)up_dtype_size(dtype) +
                              up_forward_workspace_hybrid_seq_bytes(cfg, dtype));
}

int64_t up_point_memory_bytes(const up_model_config *cfg, up_dtype dtype, const up_engine_params *e) {
  return e->kv_blocks * up_point_kv_block_bytes(cfg, dtype, e->kv_block_tokens) +
         workspace_bytes(cfg, dtype, e->workspace_tokens) + per_step_bytes(cfg, dtype, e->max_seqs);
}

/* Workspace rows for a step budget, as the sweep sizes them: the budget plus one row
 * per sequence. */
static int64_t rows_for_budget(const up_engine_params *e, int64_t batch_tokens) {
  return batch_tokens + e->max_seqs;
}

bool up_point_memory_fit(const up_model_config *cfg, up_dtype dtype, int64_t budget_bytes, int32_t longest_prompt,
                         bool kv_fixed, bool batch_fixed, up_engine_params *e, up_point_fit *fit, char *err,
                         size_t err_size) {
  *fit = (up_point_fit){.kv_blocks_before = e->kv_blocks, .max_batch_tokens_before = e->max_batch_tokens};
  if (up_point_memory_bytes(cfg, dtype, e) <= budget_bytes) return true;
  const int64_t target = (int64_t)(UP_POINT_FIT_SHARE * (double)(budget_bytes > 0 ? budget_bytes : 0));
  const int64_t block_bytes = up_point_kv_block_bytes(cfg, dtype, e->kv_block_tokens);

  const int64_t rows_before = e->workspace_tokens;
  /* One whole prompt per step, beside a decode token of every other sequence: prefills
   * then run one after another and the memory goes to KV, i.e. to residents. */
  if (!batch_fixed) {
    const int64_t one_prompt = (int64_t)longest_prompt + e->max_seqs;
    if (rows_for_budget(e, one_prompt) < e->workspace_tokens) {
      e->max_batch_tokens = one_prompt;
      e->workspace_tokens = rows_for_budget(e, one_prompt);
      fit->shrunk = true;
    }
  }
  /* The KV pool takes what the workspace leaves; at least one block, so that requests
   * larger than the pool fail with the cache's message rather than the run. */
  if (!kv_fixed && up_point_memory_bytes(cfg, dtype, e) > target) {
    const int64_t planned = e->kv_blocks;
    e->kv_blocks = 0;
    const int64_t left = target - up_point_memory_bytes(cfg, dtype, e);
    const int64_t blocks = left > 0 ? left / block_bytes : 0;
    e->kv_blocks = blocks < 1 ? 1 : (blocks < planned ? blocks : planned);
    fit->shrunk = true;
  }
  /* The whole pool fits beside one prompt's workspace: what is left goes back to the
   * step budget, so several prompts may again share a step. A pool of 0 blocks is one
   * --gpu-mem-fraction sizes at run time (up_point_memory_fit_fraction): nothing is
   * left over for the workspace before it has taken its share. */
  if (!batch_fixed && fit->kv_blocks_before > 0 && e->kv_blocks == fit->kv_blocks_before && e->workspace_tokens < rows_before) {
    const int64_t one_prompt_rows = e->workspace_tokens;
    e->workspace_tokens = 0;
    const int64_t left = target - up_point_memory_bytes(cfg, dtype, e);
    const int64_t rows = workspace_rows_in(cfg, dtype, left);
    e->workspace_tokens = rows < one_prompt_rows ? one_prompt_rows : (rows < rows_before ? rows : rows_before);
    if (e->workspace_tokens == rows_before) {
      e->max_batch_tokens = fit->max_batch_tokens_before;
    } else {
      e->max_batch_tokens = e->workspace_tokens - e->max_seqs;
    }
  }
  /* Not even one prompt's workspace fits: the step budget takes what does, and prompts
   * longer than it fail alone. */
  if (!batch_fixed && up_point_memory_bytes(cfg, dtype, e) > target) {
    const int64_t saved_rows = e->workspace_tokens;
    e->workspace_tokens = 0;
    const int64_t left = target - up_point_memory_bytes(cfg, dtype, e);
    const int64_t rows = workspace_rows_in(cfg, dtype, left);
    const int64_t batch_tokens = rows - e->max_seqs;
    if (batch_tokens >= e->max_seqs) {
      e->max_batch_tokens = batch_tokens;
      e->workspace_tokens = rows_for_budget(e, batch_tokens);
      fit->shrunk = true;
    } else {
      e->workspace_tokens = saved_rows;
    }
  }
  const int64_t need = up_point_memory_bytes(cfg, dtype, e);
  if (need <= budget_bytes) return true;
  snprintf(err, err_size,
           "%.2f GiB left beside the weights, but even reduced the point needs %.2f GiB (KV pool of %lld blocks%s, "
           "workspace of %lld rows%s, %d sequences)",
           (double)budget_bytes / 1073741824.0, (double)need / 1073741824.0, (long long)e->kv_blocks,
           kv_fixed ? " as the options set it" : "", (long long)e->workspace_tokens,
           batch_fixed ? " for --max-batch-tokens" : "", (int)e->max_seqs);
  return false;
}

/* Blocks `fraction` of free_bytes holds once the workspace of e is set aside. */
static int64_t fraction_blocks(const up_model_config *cfg, up_dtype dtype, int64_t free_bytes, double fraction,
                               up_engine_params *e) {
  e->kv_blocks = 0;
  const int64_t left = free_bytes - up_point_memory_bytes(cfg, dtype, e);
  if (left <= 0) return 0;
  return (int64_t)(fraction * (double)left) / up_point_kv_block_bytes(cfg, dtype, e->kv_block_tokens);
}

void up_point_memory_fit_fraction(const up_model_config *cfg, up_dtype dtype, int64_t free_bytes, double fraction,
                                  int32_t one_step_prompt, int64_t planned_kv_blocks, bool batch_fixed,
                                  up_engine_params *e, up_point_fit *fit) {
  *fit = (up_point_fit){.kv_blocks_before = planned_kv_blocks, .max_batch_tokens_before = e->max_batch_tokens};
  int64_t blocks = fraction_blocks(cfg, dtype, free_bytes, fraction, e);
  const int64_t one_step = (int64_t)one_step_prompt + e->max_seqs;
  if (!batch_fixed && blocks < planned_kv_blocks && rows_for_budget(e, one_step) < e->workspace_tokens) {
    e->max_batch_tokens = one_step;
    e->workspace_tokens = rows_for_budget(e, one_step);
    fit->shrunk = true;
    blocks = fraction_blocks(cfg, dtype, free_bytes, fraction, e);
  }
  e->kv_blocks = blocks < 1 ? 1 : (blocks < INT32_MAX ? blocks : INT32_MAX);
}

/* Pool blocks the admission of one request reserves: every paged layer's peak. */
static int64_t reserved_blocks(const up_memory_layout *layout, int64_t prompt_tokens, int64_t output_tokens) {
  const up_memory_need need = up_memory_layout_need(layout, prompt_tokens, output_tokens);
  return need.blocks[UP_MEMORY_FULL_KV] + need.blocks[UP_MEMORY_SLIDING_KV];
}

static bool layout_of(const up_model_config *cfg, up_dtype dtype, const up_engine_params *e, up_memory_layout *out) {
  char why[256];
  return up_memory_layout_from_config(cfg, dtype, e->kv_block_tokens, out, why, sizeof why);
}

int64_t up_point_requests_resident(const up_model_config *cfg, up_dtype dtype, const up_engine_params *e,
                                   int64_t prompt_tokens, int64_t output_tokens) {
  up_memory_layout layout;
  if (!layout_of(cfg, dtype, e, &layout)) return 0;
  const int64_t per_request = reserved_blocks(&layout, prompt_tokens, output_tokens);
  return per_request > 0 ? e->kv_blocks / per_request : 0;
}

int32_t up_point_longest_runnable_prompt(const up_model_config *cfg, up_dtype dtype, const up_engine_params *e,
                                         int32_t max_prompt, int32_t output_tokens, bool chunked) {
  up_memory_layout layout;
  if (!layout_of(cfg, dtype, e, &layout)) return 0;
  int64_t hi = max_prompt;
  if (!chunked && e->max_batch_tokens > 0 && e->max_batch_tokens < hi) hi = e->max_batch_tokens;
  /* Reservations grow with the prompt: the longest that fits is found by bisection. */
  int64_t lo = 0;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo + 1) / 2;
    if (reserved_blocks(&layout, mid, output_tokens) <= e->kv_blocks)
      lo = mid;
    else
      hi = mid - 1;
  }
  return (int32_t)lo;
}
