/* point_memory.h — what a sweep point takes in backend memory beyond the weights (the
 * KV pool plus the forward workspace, estimated from the model's shape), and fitting a
 * point into the memory a rank has, so big sweeps run "as memory allows": a point whose
 * full sizing does not fit gets a step budget of one whole prompt (plus a decode token
 * per other sequence) and the KV pool that is left, and its requests wait in the queue
 * for KV instead of the run refusing to start. Requests that can never fit the fitted
 * sizes fail alone, with an error status (the scheduler's checks). Sizes the user set
 * (--kv-cache-mib, --gpu-mem-fraction, --max-batch-tokens) are kept as given. */
#ifndef UP_POINT_MEMORY_H
#define UP_POINT_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/serve/point_engine.h"
#include "engine/model/model_config.h"
#include "kernels/ops.h"

/* Bytes of one KV block: K and V of block_tokens entries at one layer. */
int64_t up_point_kv_block_bytes(const up_model_config *cfg, up_dtype dtype, int32_t block_tokens);

/* KV blocks of block_tokens entries that fit kv_cache_mib MiB (--kv-cache-mib), without
 * overflow for any MiB count. */
int64_t up_point_kv_blocks_in_mib(const up_model_config *cfg, up_dtype dtype, int64_t kv_cache_mib,
                                  int32_t block_tokens);

/* Whether a --kv-cache-mib pool holds between one block and the engine's limit of
 * INT32_MAX blocks; false with a message naming --kv-cache-mib and --kv-block. */
bool up_point_kv_cache_check(const up_model_config *cfg, up_dtype dtype, int64_t kv_cache_mib, int32_t block_tokens,
                             char *err, size_t err_size);

/* Backend bytes of the point's KV pool and workspace (estimated), beyond the weights. */
int64_t up_point_memory_bytes(const up_model_config *cfg, up_dtype dtype, const up_engine_params *e);

/* What fitting changed. */
typedef struct up_point_fit {
  bool shrunk;                     /* the sizes were reduced to fit the budget */
  int64_t kv_blocks_before;        /* as planned for the point */
  int64_t max_batch_tokens_before; /* 0: unlimited */
} up_point_fit;

/* Keep e as it is when it fits budget_bytes (the memory left after the weights);
 * otherwise shrink it to fit UP_POINT_FIT_SHARE of the budget: first the step budget to
 * longest_prompt + max_seqs tokens (unless batch_fixed), then the KV pool to what is
 * left (unless kv_fixed); if the whole pool fits, the rest goes back to the step
 * budget; when not even one prompt's workspace fits, the step budget takes what does
 * (longer prompts then fail). False with a message naming the sizes when even that
 * does not fit. */
bool up_point_memory_fit(const up_model_config *cfg, up_dtype dtype, int64_t budget_bytes, int32_t longest_prompt,
                         bool kv_fixed, bool batch_fixed, up_engine_params *e, up_point_fit *fit, char *err,
                         size_t err_size);

/* --gpu-mem-fraction: the KV pool takes `fraction` of free_bytes once the workspace is
 * set aside. The planned workspace (the point's prompts together in one step) stays
 * when the pool still gets planned_kv_blocks beside it (every sequence's whole life)
 * or when batch_fixed (--max-batch-tokens); otherwise the step budget becomes what the
 * scheduler must put in one step (one_step_prompt tokens of one prompt, beside a decode
 * token per other sequence) and the memory it frees goes to the pool, so a request whose
 * KV and one step fit runs instead of failing beside a workspace it never fills. The
 * pool holds between 1 and INT32_MAX blocks; fit says what changed. */
void up_point_memory_fit_fraction(const up_model_config *cfg, up_dtype dtype, int64_t free_bytes, double fraction,
                                  int32_t one_step_prompt, int64_t planned_kv_blocks, bool batch_fixed,
                                  up_engine_params *e, up_point_fit *fit);

/* Requests of prompt_tokens + output_tokens tokens the pool of e holds at once (their
 * admission reservations, memory_layout.h); 0 when not even one fits. */
int64_t up_point_requests_resident(const up_model_config *cfg, up_dtype dtype, const up_engine_params *e,
                                   int64_t prompt_tokens, int64_t output_tokens);

/* The longest prompt (at most max_prompt) whose request, with output_tokens outputs,
 * the sizes of e can run: its reservation in the pool and, unless prefill is chunked
 * (chunked), the whole prompt in one step's budget. 0 when none can. */
int32_t up_point_longest_runnable_prompt(const up_model_config *cfg, up_dtype dtype, const up_engine_params *e,
                                         int32_t max_prompt, int32_t output_tokens, bool chunked);

/* A fitted point takes at most this share of the budget: the estimate leaves out
 * allocator rounding and library workspaces (cuBLASLt), so sizing a point to the last
 * byte would risk an out-of-memory abort mid-sweep. */
#define UP_POINT_FIT_SHARE 0.9

#endif
