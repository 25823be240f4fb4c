/* test_point_memory.c — fitting a sweep point into a memory budget (point_memory.h) on
 * tiny-llama's shape: a point that fits is left alone; one that does not first gets a
 * one-prompt step budget, then the KV pool that is left (giving the rest back to the
 * step budget when the whole pool fits); below one prompt's workspace the step budget
 * shrinks; sizes the user fixed are kept, and a budget nothing fits is an error. Every
 * fitted point fits UP_POINT_FIT_SHARE of its budget, and the MoE buffers of a Qwen3-Next
 * point count one chunk of rows. */
#include <criterion/criterion.h>
#include <string.h>

#include "engine/model/model.h"
#include "launcher/sweep/point_memory.h"

enum { PROMPT = 2048, SEQS = 4, BLOCK = 16 };

static const up_model_config *tiny(void) { return up_model_preset_find("tiny-llama"); }

/* The closed loop's sizing of PROMPT x SEQS with 2 output tokens: every slot's blocks at
 * every layer, and a workspace for every prompt in one step. */
static up_engine_params full_size(void) {
  const int64_t blocks_per_seq = (PROMPT + 2 + BLOCK - 1) / BLOCK;
  return (up_engine_params){.max_seqs = SEQS, .max_batch_tokens = 0, .kv_block_tokens = BLOCK,
                            .kv_blocks = blocks_per_seq * SEQS * tiny()->n_layers,
                            .workspace_tokens = (int64_t)SEQS * PROMPT, .max_seq_entries = PROMPT + 2};
}

static int64_t bytes_of(const up_engine_params *e) { return up_point_memory_bytes(tiny(), UP_DTYPE_F32, e); }

/* The budget whose fitting share is exactly the bytes of e. */
static int64_t budget_for(const up_engine_params *e) { return (int64_t)((double)bytes_of(e) / UP_POINT_FIT_SHARE) + 1; }

static bool fit(int64_t budget, bool kv_fixed, bool batch_fixed, up_engine_params *e, up_point_fit *f, char *err,
                size_t err_size) {
  return up_point_memory_fit(tiny(), UP_DTYPE_F32, budget, PROMPT, kv_fixed, batch_fixed, e, f, err, err_size);
}

Test(point_memory, a_point_that_fits_is_left_alone) {
  up_engine_params e = full_size();
  const up_engine_params planned = e;
  up_point_fit f;
  char err[512] = "";
  cr_assert(fit(bytes_of(&e), false, false, &e, &f, err, sizeof err), "%s", err);
  cr_expect(!f.shrunk);
  cr_expect_eq(memcmp(&e, &planned, sizeof e), 0);
}

Test(point_memory, the_step_budget_gives_way_before_the_kv_pool) {
  up_engine_params e = full_size();
  const up_engine_params planned = e;
  /* Room for the whole pool and a workspace of two prompts, not four. */
  up_engine_params two = planned;
  two.workspace_tokens = 2 * PROMPT;
  const int64_t budget = budget_for(&two);
  up_point_fit f;
  char err[512] = "";
  cr_assert(fit(budget, false, false, &e, &f, err, sizeof err), "%s", err);
  cr_expect(f.shrunk);
  cr_expect_eq(e.kv_blocks, planned.kv_blocks, "the whole pool stays");
  cr_expect_eq(f.kv_blocks_before, planned.kv_blocks);
  cr_expect_eq(f.max_batch_tokens_before, 0);
  /* What the pool leaves goes back to the step budget: two prompts' rows. */
  cr_expect_eq(e.workspace_tokens, 2 * PROMPT, "workspace %lld rows", (long long)e.workspace_tokens);
  cr_expect_eq(e.max_batch_tokens, e.workspace_tokens - SEQS);
  cr_expect_geq(e.max_batch_tokens, PROMPT + SEQS, "a whole prompt and the decodes still fit a step");
  cr_expect_leq(bytes_of(&e), (int64_t)(UP_POINT_FIT_SHARE * budget));
}

Test(point_memory, the_kv_pool_takes_what_one_prompt_leaves) {
  up_engine_params e = full_size();
  const up_engine_params planned = e;
  /* One prompt's workspace and half the pool. */
  up_engine_params half = planned;
  half.workspace_tokens = PROMPT + 2 * SEQS;
  half.kv_blocks = planned.kv_blocks / 2;
  const int64_t budget = budget_for(&half);
  up_point_fit f;
  char err[512] = "";
  cr_assert(fit(budget, false, false, &e, &f, err, sizeof err), "%s", err);
  cr_expect(f.shrunk);
  cr_expect_eq(e.max_batch_tokens, PROMPT + SEQS);
  cr_expect_eq(e.workspace_tokens, PROMPT + 2 * SEQS);
  cr_expect(e.kv_blocks == half.kv_blocks || e.kv_blocks == half.kv_blocks - 1, "%lld blocks for a half pool of %lld",
            (long long)e.kv_blocks, (long long)half.kv_blocks);
  cr_expect_leq(bytes_of(&e), (int64_t)(UP_POINT_FIT_SHARE * budget));
}

Test(point_memory, below_one_prompt_the_step_budget_shrinks_and_prompts_will_fail) {
  up_engine_params e = full_size();
  up_engine_params small = full_size();
  small.kv_blocks = 1;
  small.workspace_tokens = PROMPT / 2;
  const int64_t budget = budget_for(&small);
  up_point_fit f;
  char err[512] = "";
  cr_assert(fit(budget, false, false, &e, &f, err, sizeof err), "%s", err);
  cr_expect_eq(e.kv_blocks, 1, "at least one block, so requests fail with the cache's message");
  cr_expect_lt(e.max_batch_tokens, PROMPT, "the scheduler will fail the prompts");
  cr_expect_geq(e.max_batch_tokens, SEQS, "a step still holds every decode token");
  cr_expect_eq(e.workspace_tokens, e.max_batch_tokens + SEQS);
  cr_expect_leq(bytes_of(&e), (int64_t)(UP_POINT_FIT_SHARE * budget));
}

Test(point_memory, a_budget_nothing_fits_is_an_error) {
  up_engine_params e = full_size();
  up_point_fit f;
  char err[512] = "";
  cr_assert(!fit(4096, false, false, &e, &f, err, sizeof err));
  cr_expect_not_null(strstr(err, "GiB left beside the weights"), "%s", err);
}

Test(point_memory, sizes_the_user_set_are_kept) {
  /* --kv-cache-mib: the pool stays, the workspace gives way. */
  up_engine_params e = full_size();
  const up_engine_params planned = e;
  up_engine_params one = planned;
  one.workspace_tokens = PROMPT + 2 * SEQS;
  up_point_fit f;
  char err[512] = "";
  cr_assert(fit(budget_for(&one), true, false, &e, &f, err, sizeof err), "%s", err);
  cr_expect_eq(e.kv_blocks, planned.kv_blocks);
  cr_expect_lt(e.workspace_tokens, planned.workspace_tokens);
  /* ... and with less room than the pool alone the point is refused. */
  e = planned;
  up_engine_params pool_only = planned;
  pool_only.workspace_tokens = 0;
  cr_assert(!fit(bytes_of(&pool_only) / 2, true, false, &e, &f, err, sizeof err));
  cr_expect_not_null(strstr(err, "as the options set it"), "%s", err);

  /* --max-batch-tokens: the workspace stays, the pool gives way. */
  e = planned;
  e.max_batch_tokens = 4 * PROMPT;
  e.workspace_tokens = 4 * PROMPT + SEQS;
  const int64_t rows = e.workspace_tokens;
  up_engine_params half = e;
  half.kv_blocks = planned.kv_blocks / 2;
  cr_assert(fit(budget_for(&half), false, true, &e, &f, err, sizeof err), "%s", err);
  cr_expect_eq(e.workspace_tokens, rows);
  cr_expect_eq(e.max_batch_tokens, 4 * PROMPT);
  cr_expect_lt(e.kv_blocks, planned.kv_blocks);
}

/* --gpu-mem-fraction: with room for the planned pool beside the planned workspace, both
 * stay (prompts keep sharing steps); without it, the workspace becomes one prompt's step
 * and the pool takes what that frees, holding at least one whole request. */
Test(point_memory, a_fraction_keeps_the_workspace_only_while_the_pool_still_fits) {
  const up_engine_params planned = full_size();
  up_engine_params e = planned;
  up_point_fit f;
  up_engine_params no_pool = planned;
  no_pool.kv_blocks = 0;
  const int64_t plenty = 4 * bytes_of(&planned);
  up_point_memory_fit_fraction(tiny(), UP_DTYPE_F32, plenty, 0.9, PROMPT, planned.kv_blocks, false, &e, &f);
  cr_expect(!f.shrunk);
  cr_expect_eq(e.workspace_tokens, planned.workspace_tokens);
  cr_expect_geq(e.kv_blocks, planned.kv_blocks);

  /* The planned workspace plus half a request's KV: the pool would hold no request. */
  const int64_t one_request = (PROMPT + 2 + BLOCK - 1) / BLOCK * tiny()->n_layers;
  const int64_t block_bytes = up_point_kv_block_bytes(tiny(), UP_DTYPE_F32, BLOCK);
  const int64_t tight = bytes_of(&no_pool) + one_request / 2 * block_bytes;
  e = planned;
  up_point_memory_fit_fraction(tiny(), UP_DTYPE_F32, tight, 1.0, PROMPT, planned.kv_blocks, false, &e, &f);
  cr_expect(f.shrunk);
  cr_expect_eq(e.max_batch_tokens, PROMPT + SEQS, "one prompt beside a decode per sequence");
  cr_expect_eq(e.workspace_tokens, PROMPT + 2 * SEQS);
  cr_expect_geq(e.kv_blocks, one_request, "%lld blocks, one request needs %lld", (long long)e.kv_blocks,
                (long long)one_request);
  cr_expect_eq(up_point_longest_runnable_prompt(tiny(), UP_DTYPE_F32, &e, PROMPT, 2, false), PROMPT);
  cr_expect_geq(up_point_requests_resident(tiny(), UP_DTYPE_F32, &e, PROMPT, 2), 1);

  /* --max-batch-tokens fixes the workspace: the pool gets what is left, too small. */
  e = planned;
  up_point_memory_fit_fraction(tiny(), UP_DTYPE_F32, tight, 1.0, PROMPT, planned.kv_blocks, true, &e, &f);
  cr_expect(!f.shrunk);
  cr_expect_eq(e.workspace_tokens, planned.workspace_tokens);
  cr_expect_lt(e.kv_blocks, one_request);
  cr_expect_eq(up_point_requests_resident(tiny(), UP_DTYPE_F32, &e, PROMPT, 2), 0);
  cr_expect_lt(up_point_longest_runnable_prompt(tiny(), UP_DTYPE_F32, &e, PROMPT, 2, false), PROMPT);
}

/* Qwen3-Next's MoE buffers hold one chunk of rows (model.h, UP_MOE_CHUNK_ROWS), so past
 * the chunk a row costs only its other buffers, and a budget between one chunk and one
 * 128K prompt is filled to the row: the most rows whose workspace fits, not fewer. */
Test(point_memory, moe_buffers_hold_one_chunk_of_rows) {
  const up_model_config *qwen = up_model_preset_find("qwen3-next-80b-a3b");
  cr_assert_not_null(qwen);
  const int64_t C = UP_MOE_CHUNK_ROWS, moe = up_forward_workspace_moe_row_bytes(qwen, UP_DTYPE_BF16);
  cr_assert_gt(moe, 0);
  up_engine_params e = {.max_seqs = 1, .kv_block_tokens = BLOCK, .kv_blocks = 0, .max_seq_entries = 131088};
  int64_t at[4];
  const int64_t rows[4] = {0, 1000, C, C + 1000};
  for (int i = 0; i < 4; ++i) {
    e.workspace_tokens = rows[i];
    at[i] = up_point_memory_bytes(qwen, UP_DTYPE_BF16, &e);
  }
  const int64_t full_row = (at[1] - at[0]) / 1000;
  cr_expect_eq(at[3] - at[2], 1000 * (full_row - moe), "past the chunk, rows pay no MoE buffers");
  cr_expect_eq(at[2] - at[0], C * full_row);

  /* A 128K prompt against a budget that holds 100,000 rows of workspace and one KV block. */
  up_engine_params want = {.max_seqs = 1, .kv_block_tokens = BLOCK, .kv_blocks = 1, .workspace_tokens = 100000,
                           .max_seq_entries = 131088};
  const int64_t budget = (int64_t)((double)up_point_memory_bytes(qwen, UP_DTYPE_BF16, &want) / UP_POINT_FIT_SHARE) + 1;
  up_engine_params got = {.max_seqs = 1, .kv_block_tokens = BLOCK, .kv_blocks = 131088 / BLOCK * 12,
                          .workspace_tokens = 131073, .max_seq_entries = 131088};
  up_point_fit f;
  char err[512] = "";
  cr_assert(up_point_memory_fit(qwen, UP_DTYPE_BF16, budget, 131072, false, false, &got, &f, err, sizeof err), "%s",
            err);
  const int64_t target = (int64_t)(UP_POINT_FIT_SHARE * (double)budget);
  cr_expect_leq(up_point_memory_bytes(qwen, UP_DTYPE_BF16, &got), target);
  got.workspace_tokens += 1;
  cr_expect_gt(up_point_memory_bytes(qwen, UP_DTYPE_BF16, &got), target, "one row more would not fit: %lld rows",
               (long long)got.workspace_tokens - 1);
}
