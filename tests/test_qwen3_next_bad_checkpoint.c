/* test_qwen3_next_bad_checkpoint.c — broken Qwen3-Next checkpoints (issue 14), made from
 * the committed tiny fixture (tests/qwen3_next_copies.h, tests/qwen3_next_gguf.h): a
 * DeltaNet, expert or router tensor missing or misshapen, a part stored in neither of its
 * forms or in both, a tensor that is no weight of the model, a GGUF ssm_a no converter
 * writes: each refused with the tensor named. Also what is left out knowingly: the
 * multi-token-prediction head transformers does not load. Through the binary (exit 2):
 * qwen3_next_bad_checkpoint.sh. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/checkpoint/gguf.h"
#include "tests/qwen3_next_copies.h"
#include "tests/qwen3_next_gguf.h"

/* Opening and reading every weight of the broken copy fails, naming the tensor. */
static void expect_refused(const char *drop, const char *reshape, const char *shape, const char *needle) {
  scratch s;
  scratch_make(&s, "");
  write_broken_copy(&s, FIXTURE("tiny"), drop, reshape, shape);
  char err[512] = "";
  up_checkpoint *ck = up_checkpoint_open(s.dir, err, sizeof err);
  const bool refused = !ck || !read_everything(ck, err, sizeof err);
  if (ck) up_checkpoint_close(ck);
  cr_expect(refused, "a copy without/reshaping %s loaded", drop ? drop : reshape);
  cr_expect(strstr(err, needle) != NULL, "message \"%s\" lacks \"%s\"", err, needle);
  const char *files[] = {"model.safetensors", "config.json"};
  scratch_remove(&s, files, 2);
}

Test(qwen3_next_bad_checkpoint, missing_deltanet_expert_or_router_tensor_is_named) {
  expect_refused("model.layers.1.linear_attn.A_log", NULL, NULL,
                 "tensor 'model.layers.1.linear_attn.A_log' is missing");
  expect_refused("model.layers.0.linear_attn.in_proj_qkvz.weight", NULL, NULL,
                 "tensor 'model.layers.0.linear_attn.in_proj_qkvz.weight' is missing");
  expect_refused("model.layers.2.mlp.experts.5.down_proj.weight", NULL, NULL,
                 "tensor 'model.layers.2.mlp.experts.5.down_proj.weight' is missing");
  expect_refused("model.layers.3.mlp.gate.weight", NULL, NULL, "tensor 'model.layers.3.mlp.gate.weight' is missing");
}

Test(qwen3_next_bad_checkpoint, misshapen_deltanet_expert_or_router_tensor_is_named) {
  /* in_proj_ba [8, 32] as [4, 64]: the same values, not this model's layout */
  expect_refused(NULL, "model.layers.0.linear_attn.in_proj_ba.weight", "4,64",
                 "tensor 'model.layers.0.linear_attn.in_proj_ba.weight' has shape [4, 64], the config needs [8, 32]");
  expect_refused(NULL, "model.layers.1.linear_attn.conv1d.weight", "128,1,8",
                 "tensor 'model.layers.1.linear_attn.conv1d.weight' has shape [128, 1, 8], the config needs [256, 4]");
  expect_refused(NULL, "model.layers.2.mlp.experts.7.up_proj.weight", "32,16",
                 "tensor 'model.layers.2.mlp.experts.7.up_proj.weight' has shape [32, 16], the config needs [16, 32]");
  expect_refused(NULL, "model.layers.3.mlp.gate.weight", "32,8",
                 "tensor 'model.layers.3.mlp.gate.weight' has shape [32, 8], the config needs [8, 32]");
}

Test(qwen3_next_bad_checkpoint, multi_token_prediction_tensors_are_left_out_as_transformers_does) {
  scratch s;
  scratch_make(&s, "");
  write_broken_copy(&s, FIXTURE("tiny"), "+mtp.layers.0.input_layernorm.weight", NULL, NULL);
  char err[512] = "";
  up_checkpoint *ck = up_checkpoint_open(s.dir, err, sizeof err);
  cr_expect_not_null(ck, "%s", err);
  if (ck) cr_expect(read_everything(ck, err, sizeof err), "%s", err);
  up_checkpoint_close(ck);
  /* Any other stranger is still refused. */
  write_broken_copy(&s, FIXTURE("tiny"), "+model.layers.0.linear_attn.in_proj_qkvz.bias", NULL, NULL);
  cr_expect_null(ck = up_checkpoint_open(s.dir, err, sizeof err));
  cr_expect(strstr(err, "tensor 'model.layers.0.linear_attn.in_proj_qkvz.bias' is not a weight") != NULL, "%s", err);
  up_checkpoint_close(ck);
  const char *files[] = {"model.safetensors", "config.json"};
  scratch_remove(&s, files, 2);
}

/* A GGUF of the tiny fixture without one tensor opens (every tensor it holds is a
 * weight) and fails to read, naming the table's tensor and the one that may stand in. */
static void expect_gguf_missing(qn_gguf_layout layout, const char *leave_out, const char *needle) {
  scratch s;
  scratch_make(&s, "model.gguf");
  gguf_buf file = qn_gguf_from_hf_with(FIXTURE("tiny"), (qn_gguf_options){.layout = layout, .leave_out = leave_out});
  write_file_or_die(s.file, file.data, file.len);
  free(file.data);
  up_checkpoint *ck = must_open(s.file);
  char err[512] = "";
  cr_expect_not(read_everything(ck, err, sizeof err), "a GGUF without %s loaded", leave_out);
  cr_expect(strstr(err, needle) != NULL, "message \"%s\" lacks \"%s\"", err, needle);
  up_checkpoint_close(ck);
  const char *files[] = {"model.gguf"};
  scratch_remove(&s, files, 1);
}

Test(qwen3_next_bad_checkpoint, gguf_without_a_part_in_any_form_names_both_forms) {
  expect_gguf_missing(QN_GGUF_LEGACY, "blk.1.ssm_in.weight",
                      "tensor 'blk.1.attn_qkv.weight' is missing (and so is 'blk.1.ssm_in.weight'");
  expect_gguf_missing(QN_GGUF_FUSED, "blk.3.attn_qkv.weight",
                      "tensor 'blk.3.attn_q.weight' is missing (and so is 'blk.3.attn_qkv.weight'");
  expect_gguf_missing(QN_GGUF_FUSED, "blk.2.ffn_gate_up_exps.weight",
                      "tensor 'blk.2.ffn_gate_exps.weight' is missing (and so is 'blk.2.ffn_gate_up_exps.weight'");
  expect_gguf_missing(QN_GGUF_SPLIT, "blk.0.ssm_ba.weight", "tensor 'blk.0.ssm_ba.weight' is missing");
}

/* The tiny fixture's GGUF, written with `options`, fails to open with every one of the
 * n needles in its message. */
static void expect_gguf_not_opened(qn_gguf_options options, const char *const *needles, int n) {
  scratch s;
  scratch_make(&s, "model.gguf");
  gguf_buf file = qn_gguf_from_hf_with(FIXTURE("tiny"), options);
  write_file_or_die(s.file, file.data, file.len);
  free(file.data);
  char err[512] = "";
  up_checkpoint *ck = up_checkpoint_open(s.file, err, sizeof err);
  cr_expect_null(ck, "the GGUF opened");
  up_checkpoint_close(ck);
  for (int i = 0; i < n; ++i)
    cr_expect(strstr(err, needles[i]) != NULL, "message \"%s\" lacks \"%s\"", err, needles[i]);
  const char *files[] = {"model.gguf"};
  scratch_remove(&s, files, 1);
}

Test(qwen3_next_bad_checkpoint, gguf_holding_a_weight_in_both_forms_is_refused) {
  /* The first stranger in file order: layer 0's fused experts; then layers 1-3's and layer 3's attn_qkv. */
  const char *needles[] = {"tensor 'blk.0.ffn_gate_up_exps.weight' is not a weight",
                           "(5 tensors of the checkpoint are unknown or unused)"};
  expect_gguf_not_opened((qn_gguf_options){.layout = QN_GGUF_BOTH}, needles, 2);
}

Test(qwen3_next_bad_checkpoint, gguf_ssm_a_that_no_converter_writes_is_refused) {
  scratch s;
  scratch_make(&s, "model.gguf");
  gguf_buf file = qn_gguf_from_hf(FIXTURE("tiny"), QN_GGUF_SPLIT);
  /* A = -exp(A_log) is negative: flip the sign of blk.1.ssm_a's first value. */
  const up_gguf_tensor *t;
  char err[512] = "";
  up_gguf *g = up_gguf_open_buffer(file.data, file.len, "model.gguf", err, sizeof err);
  cr_assert_not_null(g, "%s", err);
  t = up_gguf_find_tensor(g, "blk.1.ssm_a");
  cr_assert_not_null(t);
  float first;
  memcpy(&first, t->data, sizeof first);
  first = -first;
  memcpy(file.data + ((const uint8_t *)t->data - file.data), &first, sizeof first);
  up_gguf_close(g);
  write_file_or_die(s.file, file.data, file.len);
  free(file.data);
  up_checkpoint *ck = must_open(s.file);
  cr_expect_not(read_everything(ck, err, sizeof err));
  cr_expect(strstr(err, "tensor 'blk.1.ssm_a' entry 0") != NULL, "message: %s", err);
  up_checkpoint_close(ck);
  const char *files[] = {"model.gguf"};
  scratch_remove(&s, files, 1);
}

Test(qwen3_next_bad_checkpoint, stacked_experts_missing_or_beside_their_own_tensors_are_refused) {
  scratch s;
  scratch_make(&s, "");
  char err[512] = "";
  write_stacked_experts_copy(&s, FIXTURE("tiny"), "model.layers.1.mlp.experts.gate_up_proj", false);
  up_checkpoint *ck = must_open(s.dir);
  cr_expect_not(read_everything(ck, err, sizeof err));
  cr_expect(strstr(err, "tensor 'model.layers.1.mlp.experts.0.gate_proj.weight' is missing (and so is "
                        "'model.layers.1.mlp.experts.gate_up_proj'") != NULL, "message: %s", err);
  up_checkpoint_close(ck);
  write_stacked_experts_copy(&s, FIXTURE("tiny"), NULL, true);
  cr_expect_null(ck = up_checkpoint_open(s.dir, err, sizeof err), "a directory with both forms opened");
  up_checkpoint_close(ck);
  cr_expect(strstr(err, "tensor 'model.layers.0.mlp.experts.gate_up_proj' is not a weight") != NULL, "message: %s",
            err);
  cr_expect(strstr(err, "(1 tensor of the checkpoint is unknown or unused)") != NULL, "message: %s", err);
  const char *files[] = {"model.safetensors", "config.json"};
  scratch_remove(&s, files, 2);
}

Test(qwen3_next_bad_checkpoint, gguf_recurrent_layers_other_than_the_interval_pattern_is_refused) {
  const bool swapped[4] = {true, true, false, false}; /* full attention at layers 2 and 3 */
  const char *needles[] = {"qwen3next.attention.recurrent_layers is not full attention every n-th layer",
                           "(layer 3 breaks the pattern)"};
  expect_gguf_not_opened((qn_gguf_options){.recurrent_layers = swapped}, needles, 2);
}
