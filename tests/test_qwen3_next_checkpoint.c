/* test_qwen3_next_checkpoint.c — loading Qwen3-Next checkpoints (issue 14) on the
 * committed tiny fixtures (tests/data/qwen3_next/, written by
 * tests/reference/qwen3_next_fixtures.py with transformers): config.json in its forms
 * mapped to the model config; the weights the engine reads checked row by row against the
 * stored tensors with the layouts of ../shared/HYBRIDS.md C.3, C.7, C.8 (per-key-head
 * in_proj_qkvz and in_proj_ba, per-head [query | gate] q_proj, one tensor per expert or,
 * as transformers 5 keeps them, one for all), written out here rather than taken from the
 * readers; and the same model rewritten as llama.cpp's converter would
 * (tests/qwen3_next_gguf.h, both DeltaNet layouts, and the fused attention qkv and expert
 * gate/up llama.cpp also loads) reading back as the same weights. Broken checkpoints are
 * test_qwen3_next_bad_checkpoint.c's; the logits against transformers' are
 * checkpoint_tiny_qwen3_next_logits' (CTest). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/qwen3_next_copies.h"
#include "tests/qwen3_next_gguf.h"

/* A stored tensor's values as fp32 (the fixture's own bytes, no engine layout). */
static float *raw(const up_hf_checkpoint *hf, const char *fmt, int32_t layer, int32_t extra) {
  char name[160];
  snprintf(name, sizeof name, fmt, (int)layer, (int)extra);
  int64_t n;
  return qn_hf_values(hf, name, &n);
}

/* --- config ------------------------------------------------------------------------- */

Test(qwen3_next_checkpoint, config_json_of_transformers_5_maps_every_field) {
  up_checkpoint *ck = must_open(FIXTURE("tiny"));
  const up_model_config *c = up_checkpoint_config(ck);
  cr_expect_str_eq(c->architecture, "qwen3next");
  cr_expect_eq(c->n_layers, 4);
  for (int32_t l = 0; l < 4; ++l) {
    cr_expect_eq(c->layer_kind[l], l == 3 ? UP_LAYER_FULL_ATTENTION : UP_LAYER_LINEAR_ATTENTION, "layer %d", (int)l);
    cr_expect_eq(c->mlp_kind[l], UP_MLP_MOE);
  }
  cr_expect_eq(c->hidden, 32);
  cr_expect_eq(c->n_heads, 2);
  cr_expect_eq(c->n_kv_heads, 1);
  cr_expect_eq(c->head_dim, 64);
  cr_expect_eq(c->rotary_dim, 16); /* 64 x 0.25 */
  cr_expect_float_eq(c->rope_theta, 1e7f, 1.0f);
  cr_expect(c->attn_output_gate);
  cr_expect_eq(c->linear_key_heads, 2);
  cr_expect_eq(c->linear_value_heads, 4);
  cr_expect_eq(c->linear_head_dim, 32);
  cr_expect_eq(c->linear_conv_width, 4);
  cr_expect_eq(c->n_experts, 8);
  cr_expect_eq(c->n_experts_per_token, 2);
  cr_expect_eq(c->moe_intermediate, 16);
  cr_expect_eq(c->shared_expert_intermediate, 16);
  cr_expect(c->moe_renormalize);
  cr_expect_not(c->tie_word_embeddings);
  cr_expect_eq(c->vocab, 128);
  cr_expect_float_eq(c->norm_eps, 1e-6f, 1e-12f);
  up_checkpoint_close(ck);
}

Test(qwen3_next_checkpoint, released_config_json_form_maps_interval_and_partial_rotary) {
  up_checkpoint *ck = must_open(FIXTURE("interval3"));
  const up_model_config *c = up_checkpoint_config(ck);
  cr_expect_eq(c->n_layers, 6);
  cr_expect_eq(c->full_attention_interval, 3);
  for (int32_t l = 0; l < 6; ++l)
    cr_expect_eq(c->layer_kind[l], (l + 1) % 3 == 0 ? UP_LAYER_FULL_ATTENTION : UP_LAYER_LINEAR_ATTENTION, "layer %d",
                 (int)l);
  cr_expect_eq(c->rotary_dim, 32); /* 64 x 0.5 */
  cr_expect_float_eq(c->rope_theta, 1e6f, 1.0f);
  cr_expect_eq(c->linear_key_heads, 1);
  cr_expect_eq(c->linear_value_heads, 3);
  cr_expect_eq(c->n_experts, 12);
  cr_expect_eq(c->n_experts_per_token, 3);
  up_checkpoint_close(ck);
}

Test(qwen3_next_checkpoint, partial_rotary_factor_at_the_top_level_of_a_transformers_5_config) {
  scratch s;
  scratch_make(&s, "");
  write_broken_copy(&s, FIXTURE("tiny"), NULL, NULL, NULL);
  /* rope_parameters without the fraction, the top level with another one */
  edit_config(&s, "\"partial_rotary_factor\": 0.25,", "");
  edit_config(&s, "\"rms_norm_eps\"", "\"partial_rotary_factor\": 0.5, \"rms_norm_eps\"");
  char err[512] = "";
  up_checkpoint *ck = up_checkpoint_open(s.dir, err, sizeof err);
  cr_assert_not_null(ck, "%s", err);
  cr_expect_eq(up_checkpoint_config(ck)->rotary_dim, 32, "0.5 of head_dim 64");
  cr_expect_float_eq(up_checkpoint_config(ck)->rope_theta, 1e7f, 1.0f);
  up_checkpoint_close(ck);
  const char *files[] = {"model.safetensors", "config.json"};
  scratch_remove(&s, files, 2);
}

Test(qwen3_next_checkpoint, gguf_layer_kinds_from_recurrent_layers_before_the_interval) {
  scratch s;
  scratch_make(&s, "model.gguf");
  /* interval3's layers 2 and 5 are full attention; the file also says interval 3. */
  const bool recurrent[6] = {true, true, false, true, true, false};
  gguf_buf file = qn_gguf_from_hf_with(FIXTURE("interval3"), (qn_gguf_options){.recurrent_layers = recurrent});
  write_file_or_die(s.file, file.data, file.len);
  free(file.data);
  up_checkpoint *ck = must_open(s.file);
  const up_model_config *c = up_checkpoint_config(ck);
  cr_expect_eq(c->full_attention_interval, 3);
  for (int32_t l = 0; l < 6; ++l)
    cr_expect_eq(c->layer_kind[l], recurrent[l] ? UP_LAYER_LINEAR_ATTENTION : UP_LAYER_FULL_ATTENTION, "layer %d",
                 (int)l);
  up_checkpoint_close(ck);
  const char *files[] = {"model.gguf"};
  scratch_remove(&s, files, 1);
}

/* --- layouts, against the stored tensors ---------------------------------------------- */

static void expect_rows(const float *engine, int64_t engine_row, const float *stored, int64_t stored_row, int64_t cols,
                        const char *what) {
  for (int64_t c = 0; c < cols; ++c)
    cr_assert_eq(engine[engine_row * cols + c], stored[stored_row * cols + c], "%s: engine row %lld col %lld", what,
                 (long long)engine_row, (long long)c);
}

static void check_deltanet_rows(const char *fixture) {
  up_checkpoint *ck = must_open(fixture);
  char err[512];
  up_hf_checkpoint *hf = up_hf_checkpoint_open(fixture, err, sizeof err);
  cr_assert_not_null(hf, "%s", err);
  const up_model_config *c = up_checkpoint_config(ck);
  const int64_t hk = c->linear_key_heads, d = c->linear_head_dim, r = c->linear_value_heads / hk, h = c->hidden;
  const int64_t group = 2 * d + 2 * r * d; /* in_proj_qkvz rows per key head: [q | k | v | z] */
  up_file_tensor f;
  float *qkvz = raw(hf, "model.layers.%d.linear_attn.in_proj_qkvz.weight", 0, 0);
  float *conv_rows = must_read(ck, UP_TENSOR_GDN_QKVZ, 0, 0, &f), *z = must_read(ck, UP_TENSOR_GDN_QKVZ, 0, 1, &f);
  for (int64_t g = 0; g < hk; ++g)
    for (int64_t i = 0; i < d; ++i) {
      expect_rows(conv_rows, g * d + i, qkvz, g * group + i, h, "q");
      expect_rows(conv_rows, hk * d + g * d + i, qkvz, g * group + d + i, h, "k");
    }
  for (int64_t g = 0; g < hk; ++g)
    for (int64_t i = 0; i < r * d; ++i) { /* value head g r + s of key head g: grouped */
      expect_rows(conv_rows, 2 * hk * d + g * r * d + i, qkvz, g * group + 2 * d + i, h, "v");
      expect_rows(z, g * r * d + i, qkvz, g * group + 2 * d + r * d + i, h, "z");
    }
  float *ba = raw(hf, "model.layers.%d.linear_attn.in_proj_ba.weight", 0, 0);
  float *b = must_read(ck, UP_TENSOR_GDN_BA, 0, 0, &f), *a = must_read(ck, UP_TENSOR_GDN_BA, 0, 1, &f);
  for (int64_t g = 0; g < hk; ++g)
    for (int64_t s = 0; s < r; ++s) { /* per key head [b (r) | a (r)] */
      expect_rows(b, g * r + s, ba, g * 2 * r + s, h, "b");
      expect_rows(a, g * r + s, ba, g * 2 * r + r + s, h, "a");
    }
  float *conv = raw(hf, "model.layers.%d.linear_attn.conv1d.weight", 0, 0); /* [C, 1, K] */
  float *engine_conv = must_read(ck, UP_TENSOR_GDN_CONV, 0, 0, &f);
  cr_assert_eq(f.rows, 2 * hk * d + hk * r * d);
  cr_assert_eq(f.cols, c->linear_conv_width);
  expect_rows(engine_conv, 0, conv, 0, f.rows * f.cols, "conv");
  float *a_log = raw(hf, "model.layers.%d.linear_attn.A_log", 0, 0), *engine_a_log = must_read(
      ck, UP_TENSOR_GDN_A_LOG, 0, 0, &f);
  expect_rows(engine_a_log, 0, a_log, 0, hk * r, "A_log");
  float *norm = raw(hf, "model.layers.%d.linear_attn.norm.weight", 0, 0), *engine_norm = must_read(
      ck, UP_TENSOR_GDN_NORM, 0, 0, &f);
  cr_expect_not(f.hf_one_plus, "the DeltaNet output norm is plain w");
  expect_rows(engine_norm, 0, norm, 0, d, "gated norm");
  float *stores[] = {qkvz, conv_rows, z, ba, b, a, conv, engine_conv, a_log, engine_a_log, norm, engine_norm};
  for (size_t i = 0; i < sizeof stores / sizeof stores[0]; ++i) free(stores[i]);
  up_hf_checkpoint_close(hf);
  up_checkpoint_close(ck);
}

Test(qwen3_next_checkpoint, deltanet_projections_regrouped_from_per_key_head_order) {
  check_deltanet_rows(FIXTURE("tiny"));      /* 2 value heads per key head */
  check_deltanet_rows(FIXTURE("interval3")); /* 3 value heads, one key head */
}

Test(qwen3_next_checkpoint, gated_attention_query_and_gate_split_per_head) {
  up_checkpoint *ck = must_open(FIXTURE("tiny"));
  char err[512];
  up_hf_checkpoint *hf = up_hf_checkpoint_open(FIXTURE("tiny"), err, sizeof err);
  cr_assert_not_null(hf, "%s", err);
  const up_model_config *c = up_checkpoint_config(ck);
  const int64_t hd = c->head_dim, h = c->hidden;
  up_file_tensor f;
  float *q_proj = raw(hf, "model.layers.%d.self_attn.q_proj.weight", 3, 0);
  float *q = must_read(ck, UP_TENSOR_ATTN_QKV, 3, 0, &f), *gate = must_read(ck, UP_TENSOR_ATTN_GATE, 3, 0, &f);
  for (int64_t head = 0; head < c->n_heads; ++head)
    for (int64_t i = 0; i < hd; ++i) { /* per head [query (hd) | gate (hd)] */
      expect_rows(q, head * hd + i, q_proj, head * 2 * hd + i, h, "query");
      expect_rows(gate, head * hd + i, q_proj, head * 2 * hd + hd + i, h, "gate");
    }
  float *k_proj = raw(hf, "model.layers.%d.self_attn.k_proj.weight", 3, 0), *k = must_read(ck, UP_TENSOR_ATTN_QKV, 3, 1,
                                                                                         &f);
  cr_expect_eq(f.row_offset, c->n_heads * hd);
  expect_rows(k, 0, k_proj, 0, c->n_kv_heads * hd * h, "k");
  free(q_proj), free(q), free(gate), free(k_proj), free(k);
  up_hf_checkpoint_close(hf);
  up_checkpoint_close(ck);
}

Test(qwen3_next_checkpoint, experts_stacked_from_one_tensor_each) {
  up_checkpoint *ck = must_open(FIXTURE("tiny"));
  char err[512];
  up_hf_checkpoint *hf = up_hf_checkpoint_open(FIXTURE("tiny"), err, sizeof err);
  cr_assert_not_null(hf, "%s", err);
  const up_model_config *c = up_checkpoint_config(ck);
  const int64_t inter = c->moe_intermediate, h = c->hidden;
  up_file_tensor f;
  float *gate = must_read(ck, UP_TENSOR_MOE_GATE_UP, 2, 0, &f);
  cr_assert_eq(f.experts, c->n_experts);
  cr_assert_eq(f.expert_rows, 2 * inter);
  float *up = must_read(ck, UP_TENSOR_MOE_GATE_UP, 2, 1, &f), *down = must_read(ck, UP_TENSOR_MOE_DOWN, 2, 0, &f);
  cr_assert_eq(f.rows, h);
  for (int32_t e = 0; e < c->n_experts; ++e) {
    float *g = raw(hf, "model.layers.%d.mlp.experts.%d.gate_proj.weight", 2, e);
    float *u = raw(hf, "model.layers.%d.mlp.experts.%d.up_proj.weight", 2, e);
    float *dn = raw(hf, "model.layers.%d.mlp.experts.%d.down_proj.weight", 2, e);
    expect_rows(gate + e * inter * h, 0, g, 0, inter * h, "expert gate");
    expect_rows(up + e * inter * h, 0, u, 0, inter * h, "expert up");
    expect_rows(down + e * h * inter, 0, dn, 0, h * inter, "expert down");
    free(g), free(u), free(dn);
  }
  float *router = raw(hf, "model.layers.%d.mlp.gate.weight", 2, 0), *engine_router = must_read(ck, UP_TENSOR_MOE_ROUTER,
                                                                                             2, 0, &f);
  expect_rows(engine_router, 0, router, 0, c->n_experts * h, "router");
  float *shared_gate = raw(hf, "model.layers.%d.mlp.shared_expert_gate.weight", 2, 0); /* stored [1, hidden] */
  float *engine_shared_gate = must_read(ck, UP_TENSOR_SHARED_GATE, 2, 0, &f);
  expect_rows(engine_shared_gate, 0, shared_gate, 0, h, "shared expert gate");
  free(gate), free(up), free(down), free(router), free(engine_router), free(shared_gate), free(engine_shared_gate);
  up_hf_checkpoint_close(hf);
  up_checkpoint_close(ck);
}

Test(qwen3_next_checkpoint, experts_stacked_as_transformers_5_keeps_them_read_as_one_tensor_each) {
  scratch s;
  scratch_make(&s, "");
  write_stacked_experts_copy(&s, FIXTURE("tiny"), NULL, false);
  up_checkpoint *each = must_open(FIXTURE("tiny")), *stacked = must_open(s.dir);
  const up_model_config *c = up_checkpoint_config(each);
  const up_tensor_role roles[2] = {UP_TENSOR_MOE_GATE_UP, UP_TENSOR_MOE_DOWN};
  for (int32_t layer = 0; layer < c->n_layers; ++layer)
    for (int r = 0; r < 2; ++r)
      for (int32_t p = 0; p < (r == 0 ? 2 : 1); ++p) {
        up_file_tensor f;
        float *want = must_read(each, roles[r], layer, p, &f), *got = must_read(stacked, roles[r], layer, p, &f);
        for (int64_t k = 0; k < f.experts * f.rows * f.cols; ++k)
          cr_assert_eq(got[k], want[k], "layer %d role %d part %d [%lld]", (int)layer, (int)roles[r], (int)p,
                       (long long)k);
        free(want), free(got);
      }
  char err[512] = "";
  cr_expect(read_everything(stacked, err, sizeof err), "%s", err);
  up_checkpoint_close(each);
  up_checkpoint_close(stacked);
  const char *files[] = {"model.safetensors", "config.json"};
  scratch_remove(&s, files, 2);
}

/* --- GGUF, in every layout llama.cpp loads ------------------------------------------- */


/* Every weight of the GGUF equals the Hugging Face reading, plus the 1 the converter
 * added to (1 + w) norms; A_log comes back through log(-(-exp(A_log))). */
static void check_gguf_matches_hf(const char *fixture, qn_gguf_layout layout) {
  scratch s;
  scratch_make(&s, "model.gguf");
  gguf_buf file = qn_gguf_from_hf(fixture, layout);
  write_file_or_die(s.file, file.data, file.len);
  free(file.data);
  up_checkpoint *hf = must_open(fixture), *gg = must_open(s.file);
  const up_model_config *c = up_checkpoint_config(hf), *cg = up_checkpoint_config(gg);
  cr_assert_eq(cg->n_layers, c->n_layers);
  cr_expect_eq(cg->full_attention_interval, c->full_attention_interval);
  cr_expect_eq(cg->rotary_dim, c->rotary_dim);
  cr_expect_eq(cg->vocab, c->vocab);
  cr_expect_eq(cg->linear_value_heads, c->linear_value_heads);
  cr_expect_eq(cg->n_experts_per_token, c->n_experts_per_token);
  cr_expect_eq(cg->n_drop_layers, c->n_drop_layers);
  int64_t compared = 0;
  for (int32_t layer = -1; layer < c->n_layers; ++layer) {
    up_tensor_desc t[UP_MAX_LAYER_TENSORS];
    const int32_t n = up_arch_layer_tensors(c, layer, t);
    for (int32_t i = 0; i < n; ++i)
      for (int32_t p = 0; p < t[i].spec->n_parts; ++p) {
        up_file_tensor fh, fg;
        float *vh = must_read(hf, t[i].role, layer, p, &fh), *vg = must_read(gg, t[i].role, layer, p, &fg);
        const int64_t count = (fh.experts > 0 ? fh.experts : 1) * fh.rows * fh.cols;
        for (int64_t k = 0; k < count; ++k) {
          const float want = vh[k] + (fh.hf_one_plus ? 1.0f : 0.0f);
          if (t[i].role == UP_TENSOR_GDN_A_LOG)
            cr_assert_float_eq(vg[k], want, 1e-5f * (1.0f + fabsf(want)), "%s [%lld]", fg.gguf_name, (long long)k);
          else
            cr_assert_eq(vg[k], want, "%s [%lld]: GGUF %g, Hugging Face %g", fg.gguf_name, (long long)k,
                         (double)vg[k], (double)want);
        }
        compared += count;
        free(vh), free(vg);
      }
  }
  cr_assert_gt(compared, 0);
  up_checkpoint_close(hf);
  up_checkpoint_close(gg);
  const char *files[] = {"model.gguf"};
  scratch_remove(&s, files, 1);
}

Test(qwen3_next_checkpoint, gguf_with_attn_qkv_and_attn_gate_reads_as_the_hf_directory) {
  check_gguf_matches_hf(FIXTURE("tiny"), QN_GGUF_SPLIT);
  check_gguf_matches_hf(FIXTURE("interval3"), QN_GGUF_SPLIT);
}

Test(qwen3_next_checkpoint, legacy_gguf_with_ssm_in_reads_as_the_hf_directory) {
  check_gguf_matches_hf(FIXTURE("tiny"), QN_GGUF_LEGACY);
  check_gguf_matches_hf(FIXTURE("interval3"), QN_GGUF_LEGACY);
}

Test(qwen3_next_checkpoint, gguf_with_fused_attention_qkv_and_expert_gate_up_reads_as_the_hf_directory) {
  check_gguf_matches_hf(FIXTURE("tiny"), QN_GGUF_FUSED);
  check_gguf_matches_hf(FIXTURE("interval3"), QN_GGUF_FUSED);
}
