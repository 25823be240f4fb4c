/* test_model_shard.c — the tensor-parallel split of every weight (engine/model/model_shard.h)
 * as geometry, without ranks: Gated DeltaNet heads by key-head groups (the conv channels
 * in three pieces, each rank's lined up with its q|k|v), expert stacks sized by every
 * expert whatever the group, every weight whole at TP = 1, Gemma 3's single KV head
 * replicated, and the refusals naming the dimension that does not split. The numbers
 * these splits compute with are tools/tp_forward_check.c's (TP = 2 against TP = 1). */
#include <criterion/criterion.h>
#include <string.h>

#include "engine/model/arch.h"
#include "engine/model/model.h"
#include "engine/model/model_shard.h"

static up_model_config preset(const char *name) {
  const up_model_config *cfg = up_model_preset_find(name);
  cr_assert_not_null(cfg, "no preset %s", name);
  return *cfg;
}

/* The weight of `role` in layer `layer`'s table. */
static up_tensor_desc weight_of(const up_model_config *cfg, int32_t layer, up_tensor_role role) {
  up_tensor_desc tensors[UP_MAX_LAYER_TENSORS];
  const int32_t n = up_arch_layer_tensors(cfg, layer, tensors);
  for (int32_t i = 0; i < n; ++i)
    if (tensors[i].role == role) return tensors[i];
  cr_assert_fail("model %s has no weight %d in layer %d", cfg->name, (int)role, (int)layer);
  return tensors[0];
}

Test(model_shard, deltanet_conv_channels_split_by_key_head_groups) {
  /* tiny-qwen3-next: 2 key heads, 4 value heads of 16: q 0..31, k 32..63, v 64..127. */
  const up_model_config cfg = preset("tiny-qwen3-next");
  const up_model_shard r1 = up_model_shard_of(&cfg, 1, 2);
  cr_expect(r1.n_linear_key_heads == 1 && r1.first_linear_key_head == 1);
  cr_expect(r1.n_linear_value_heads == 2 && r1.first_linear_value_head == 2);
  up_shard_segment seg[UP_MAX_SHARD_SEGMENTS];
  cr_assert_eq(up_model_shard_segments(&r1, &cfg, UP_DIM_GDN_CONV, seg), 3);
  const int64_t want[3][2] = {{16, 16}, {48, 16}, {96, 32}};
  for (int i = 0; i < 3; ++i)
    cr_expect(seg[i].first == want[i][0] && seg[i].count == want[i][1], "piece %d: %lld + %lld", i,
              (long long)seg[i].first, (long long)seg[i].count);
  /* in_proj's rows on rank 1: its q, k, v channels back to back, then its z (after all
   * 128 conv rows of the whole weight, at the rank's 64th row). */
  const up_tensor_desc qkvz = weight_of(&cfg, 0, UP_TENSOR_GDN_QKVZ);
  up_shard_run runs[UP_MAX_SHARD_SEGMENTS];
  cr_assert_eq(up_model_shard_part_runs(&r1, &cfg, qkvz.spec, 0, runs), 3);
  cr_expect(runs[0].local_row == 0 && runs[1].local_row == 16 && runs[2].local_row == 32 && runs[2].rows == 32);
  cr_assert_eq(up_model_shard_part_runs(&r1, &cfg, qkvz.spec, 1, runs), 1);
  cr_expect(runs[0].global_row == 128 + 32 && runs[0].local_row == 64 && runs[0].rows == 32);
  cr_expect_eq(up_model_shard_rows(&r1, &cfg, qkvz.spec), 96);
  /* per-head A_log: the rank's two value heads, as columns of one row */
  const up_tensor_desc a_log = weight_of(&cfg, 0, UP_TENSOR_GDN_A_LOG);
  int64_t first, count;
  up_model_shard_range(&r1, &cfg, a_log.spec->cols, &first, &count);
  cr_expect(first == 2 && count == 2 && up_model_shard_rows(&r1, &cfg, a_log.spec) == 1);
}

Test(model_shard, every_conv_channel_on_exactly_one_rank) {
  /* Qwen3-Next-80B: 16 key heads, 32 value heads of 128, over every group that splits them. */
  const up_model_config cfg = preset("qwen3-next-80b-a3b");
  const int64_t conv = up_dim_size(&cfg, UP_DIM_GDN_CONV);
  static int32_t owners[2 * 16 * 128 + 32 * 128]; /* q and k of 16 key heads, v of 32 value heads */
  cr_assert_eq(conv, (int64_t)(sizeof owners / sizeof owners[0]));
  const int32_t groups[] = {1, 2, 4, 8, 16};
  for (size_t g = 0; g < sizeof groups / sizeof groups[0]; ++g) {
    const int32_t tp = groups[g];
    char err[256] = "";
    cr_assert(up_model_shard_check(&cfg, tp, err, sizeof err), "--tp %d: %s", (int)tp, err);
    memset(owners, 0, sizeof owners);
    for (int32_t r = 0; r < tp; ++r) {
      const up_model_shard s = up_model_shard_of(&cfg, r, tp);
      up_shard_segment seg[UP_MAX_SHARD_SEGMENTS];
      const int32_t n = up_model_shard_segments(&s, &cfg, UP_DIM_GDN_CONV, seg);
      int64_t local = 0;
      for (int32_t i = 0; i < n; ++i) {
        for (int64_t c = seg[i].first; c < seg[i].first + seg[i].count; ++c) owners[c] += 1;
        local += seg[i].count;
      }
      cr_expect_eq(local, conv / tp, "--tp %d rank %d holds %lld channels", (int)tp, (int)r, (long long)local);
    }
    for (int64_t c = 0; c < conv; ++c) cr_assert_eq(owners[c], 1, "--tp %d: channel %lld", (int)tp, (long long)c);
  }
}

Test(model_shard, expert_stacks_count_every_expert) {
  const up_model_config cfg = preset("tiny-qwen3-next"); /* 8 experts of 32, shared expert 32, hidden 64 */
  const up_tensor_desc gate_up = weight_of(&cfg, 0, UP_TENSOR_MOE_GATE_UP);
  const up_tensor_desc down = weight_of(&cfg, 0, UP_TENSOR_MOE_DOWN);
  cr_assert_eq(gate_up.n_experts, 8);
  const up_model_shard whole = up_model_shard_of(&cfg, 0, 1), half = up_model_shard_of(&cfg, 1, 2);
  cr_expect_eq(up_model_shard_rows(&whole, &cfg, gate_up.spec), gate_up.rows);
  cr_expect_eq(up_model_shard_rows(&half, &cfg, gate_up.spec), 8 * 32);
  cr_expect_eq(up_model_shard_copy_rows(&half, &cfg, gate_up.spec), 32);
  cr_expect_eq(up_model_shard_rows(&half, &cfg, down.spec), 8 * 64);
  cr_expect_eq(up_model_shard_cols(&half, &cfg, down.spec), 16);
  /* the router stays whole: every rank routes every row */
  const up_tensor_desc router = weight_of(&cfg, 0, UP_TENSOR_MOE_ROUTER);
  cr_expect_eq(up_model_shard_rows(&half, &cfg, router.spec), 8);
  /* the shard's weight count counts the stacks: at TP = 2 more than half the whole (the
   * router, norms and replicated KV head), less than all of it */
  const int64_t all = up_model_weight_bytes(&cfg, UP_DTYPE_F32);
  const int64_t shard = up_model_shard_weight_bytes(&cfg, UP_DTYPE_F32, 2);
  cr_expect(shard > all / 2 && shard < all, "shard %lld of %lld bytes", (long long)shard, (long long)all);
}

Test(model_shard, every_weight_is_whole_at_tp_1) {
  const char *names[] = {"tiny-llama", "gemma-3-270m", "tiny-qwen3-next", "qwen3-next-80b-a3b"};
  for (size_t m = 0; m < sizeof names / sizeof names[0]; ++m) {
    const up_model_config cfg = preset(names[m]);
    const up_model_shard whole = up_model_shard_of(&cfg, 0, 1);
    int64_t elements = 0;
    for (int32_t layer = -1; layer < cfg.n_layers; ++layer) {
      up_tensor_desc tensors[UP_MAX_LAYER_TENSORS];
      const int32_t n = up_arch_layer_tensors(&cfg, layer, tensors);
      for (int32_t i = 0; i < n; ++i) {
        cr_expect_eq(up_model_shard_rows(&whole, &cfg, tensors[i].spec), tensors[i].rows, "%s: %s rows", names[m],
                     tensors[i].spec->name);
        cr_expect_eq(up_model_shard_cols(&whole, &cfg, tensors[i].spec), tensors[i].cols, "%s: %s columns",
                     names[m], tensors[i].spec->name);
        if (!(tensors[i].role == UP_TENSOR_LM_HEAD && cfg.tie_word_embeddings))
          elements += tensors[i].rows * tensors[i].cols;
      }
    }
    cr_expect_eq(elements * 4, up_model_weight_bytes(&cfg, UP_DTYPE_F32), "%s", names[m]);
  }
}

Test(model_shard, gemma3_single_kv_head_is_replicated) {
  const up_model_config cfg = preset("gemma-3-270m"); /* 4 query heads, 1 KV head, vocabulary 262144 */
  for (int32_t tp = 2; tp <= 4; tp *= 2)
    for (int32_t r = 0; r < tp; ++r) {
      const up_model_shard s = up_model_shard_of(&cfg, r, tp);
      cr_expect(s.n_kv_heads == 1 && s.first_kv_head == 0 && s.n_heads == 4 / tp && s.first_head == r * 4 / tp);
      cr_expect(s.vocab == 262144 / tp && s.first_vocab == r * (262144 / tp));
    }
  char err[256] = "";
  cr_expect_not(up_model_shard_check(&cfg, 8, err, sizeof err));
  cr_expect(strstr(err, "4 query heads") != NULL, "%s", err);
}

Test(model_shard, refusals_name_the_dimension) {
  char err[256] = "";
  up_model_config cfg = preset("tiny-qwen3-next");
  cfg.intermediate = 97; /* no dense MLP layer reads it */
  cr_expect(up_model_shard_check(&cfg, 2, err, sizeof err), "%s", err);
  cfg.linear_key_heads = 1;
  cfg.linear_value_heads = 3; /* the interval3 fixture's DeltaNet */
  cr_expect_not(up_model_shard_check(&cfg, 2, err, sizeof err));
  cr_expect(strstr(err, "--tp 2") && strstr(err, "Gated DeltaNet key heads (1)"), "%s", err);
  cfg = preset("tiny-qwen3-next");
  cfg.moe_intermediate = 33;
  cr_expect_not(up_model_shard_check(&cfg, 2, err, sizeof err));
  cr_expect(strstr(err, "routed experts' intermediate size (33)") != NULL, "%s", err);
  cfg = preset("tiny-qwen3-next");
  cfg.shared_expert_intermediate = 17;
  cr_expect_not(up_model_shard_check(&cfg, 2, err, sizeof err));
  cr_expect(strstr(err, "shared expert's intermediate size (17)") != NULL, "%s", err);
  cfg = preset("tiny-llama");
  cfg.intermediate = 705;
  cr_expect_not(up_model_shard_check(&cfg, 2, err, sizeof err));
  cr_expect(strstr(err, "MLP intermediate size 705") != NULL, "%s", err);
}
