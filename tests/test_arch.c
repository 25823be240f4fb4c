/* test_arch.c — engine/model/arch.h on Llama, checked against this file's own list of
 * Llama's weights: on every preset each weight is present once per layer with the
 * config's shape, its checkpoint tensors stack to it row for row, every GGUF and
 * Hugging Face name maps to its tensor and back, only the query and key rows carry
 * llama.cpp's rotary order, a tied head is the embedding's tensor, the registry finds
 * llama and validation refuses an unregistered architecture; and a seeded model's
 * weights are the streams they were before the table (stream id (layer + 1) << 8 |
 * kind, the same bounds), element for element. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model/arch.h"
#include "engine/model/model.h"
#include "engine/model/model_config.h"
#include "kernels/cpu/cpu_backend.h"
#include "tests/small_model.h"

/* Llama's weights as this test knows them: file names, rows of each part. */
typedef struct expected_part {
  up_tensor_role role;
  int32_t part;
  bool per_layer;
  const char *gguf, *hf;
  bool rotary;
} expected_part;

static const expected_part llama_parts[] = {
    {UP_TENSOR_EMBED, 0, false, "token_embd", "model.embed_tokens", false},
    {UP_TENSOR_LM_HEAD, 0, false, "output", "lm_head", false},
    {UP_TENSOR_FINAL_NORM, 0, false, "output_norm", "model.norm", false},
    {UP_TENSOR_ATTN_NORM, 0, true, "attn_norm", "input_layernorm", false},
    {UP_TENSOR_ATTN_QKV, 0, true, "attn_q", "self_attn.q_proj", true},
    {UP_TENSOR_ATTN_QKV, 1, true, "attn_k", "self_attn.k_proj", true},
    {UP_TENSOR_ATTN_QKV, 2, true, "attn_v", "self_attn.v_proj", false},
    {UP_TENSOR_ATTN_OUT, 0, true, "attn_output", "self_attn.o_proj", false},
    {UP_TENSOR_MLP_NORM, 0, true, "ffn_norm", "post_attention_layernorm", false},
    {UP_TENSOR_MLP_GATE_UP, 0, true, "ffn_gate", "mlp.gate_proj", false},
    {UP_TENSOR_MLP_GATE_UP, 1, true, "ffn_up", "mlp.up_proj", false},
    {UP_TENSOR_MLP_DOWN, 0, true, "ffn_down", "mlp.down_proj", false},
};
enum { N_EXPECTED_PARTS = sizeof llama_parts / sizeof llama_parts[0] };

/* [rows][cols] of a weight, written out from the config. */
static void expected_shape(const up_model_config *c, up_tensor_role role, int64_t *rows, int64_t *cols) {
  const int64_t h = c->hidden, q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
  switch (role) {
    case UP_TENSOR_EMBED:
    case UP_TENSOR_LM_HEAD: *rows = c->vocab; *cols = h; return;
    case UP_TENSOR_FINAL_NORM:
    case UP_TENSOR_ATTN_NORM:
    case UP_TENSOR_MLP_NORM: *rows = 1; *cols = h; return;
    case UP_TENSOR_ATTN_QKV: *rows = q + 2 * kv; *cols = h; return;
    case UP_TENSOR_ATTN_OUT: *rows = h; *cols = q; return;
    case UP_TENSOR_MLP_GATE_UP: *rows = 2LL * c->intermediate; *cols = h; return;
    case UP_TENSOR_MLP_DOWN: *rows = h; *cols = c->intermediate; return;
    default: cr_assert_fail("role %d is not Llama's", (int)role);
  }
}

static int64_t expected_part_rows(const up_model_config *c, const expected_part *p) {
  int64_t rows, cols;
  expected_shape(c, p->role, &rows, &cols);
  if (p->role == UP_TENSOR_ATTN_QKV) return p->part == 0 ? (int64_t)c->n_heads * c->head_dim
                                                         : (int64_t)c->n_kv_heads * c->head_dim;
  if (p->role == UP_TENSOR_MLP_GATE_UP) return c->intermediate;
  return rows;
}

Test(arch, registry_finds_llama_and_validation_refuses_the_unknown) {
  cr_assert_geq(up_arch_count(), 1);
  const up_arch *llama = up_arch_find("llama");
  cr_assert_not_null(llama);
  cr_assert_str_eq(llama->name, "llama");
  cr_assert_not_null(up_arch_find("gemma3"));
  cr_assert_not_null(up_arch_find("qwen3next"));
  cr_assert_null(up_arch_find("qwen3_next"), "the GGUF name, not Hugging Face's model_type");
  cr_assert_null(up_arch_at(up_arch_count()));
  for (int32_t i = 0; i < up_model_preset_count(); ++i)
    cr_assert_str_eq(up_arch_of(up_model_preset_at(i))->name, up_model_preset_at(i)->architecture);
  up_model_config c = *up_model_preset_find("tiny-llama");
  snprintf(c.architecture, sizeof c.architecture, "mamba");
  char err[256] = "";
  cr_assert_not(up_model_config_validate(&c, err, sizeof err));
  cr_assert(strstr(err, "'mamba'") && strstr(err, "not registered"), "%s", err);
}

Test(arch, llama_layers_run_attention_then_the_mlp) {
  const up_model_config *c = up_model_preset_find("llama-3.1-8b");
  for (int32_t l = 0; l < c->n_layers; ++l) {
    up_block_kind blocks[UP_MAX_LAYER_BLOCKS];
    cr_assert_eq(up_arch_layer_blocks(c, l, blocks), 2);
    cr_assert_eq(blocks[0], UP_BLOCK_ATTENTION);
    cr_assert_eq(blocks[1], UP_BLOCK_MLP);
  }
  cr_assert_eq(up_block_input_norm(UP_BLOCK_ATTENTION), UP_TENSOR_ATTN_NORM);
  cr_assert_eq(up_block_input_norm(UP_BLOCK_MLP), UP_TENSOR_MLP_NORM);
}

/* Every weight once per layer, with the config's shape, its parts stacked row for row. */
Test(arch, every_llama_weight_once_with_the_config_shape) {
  static const up_tensor_role model_roles[] = {UP_TENSOR_EMBED, UP_TENSOR_LM_HEAD, UP_TENSOR_FINAL_NORM};
  static const up_tensor_role layer_roles[] = {UP_TENSOR_ATTN_NORM, UP_TENSOR_ATTN_QKV, UP_TENSOR_ATTN_OUT,
                                               UP_TENSOR_MLP_NORM, UP_TENSOR_MLP_GATE_UP, UP_TENSOR_MLP_DOWN};
  for (int32_t i = 0; i < up_model_preset_count(); ++i) {
    const up_model_config *c = up_model_preset_at(i);
    if (strcmp(c->architecture, "llama") != 0) continue; /* test_gemma3.c checks Gemma's table */
    for (int32_t layer = -1; layer < c->n_layers; ++layer) {
      const up_tensor_role *roles = layer < 0 ? model_roles : layer_roles;
      const int32_t n_roles = layer < 0 ? 3 : 6;
      up_tensor_desc t[UP_MAX_LAYER_TENSORS];
      const int32_t n = up_arch_layer_tensors(c, layer, t);
      cr_assert_eq(n, n_roles, "%s layer %d: %d weights", c->name, (int)layer, (int)n);
      for (int32_t r = 0; r < n_roles; ++r) {
        int found = 0;
        for (int32_t k = 0; k < n; ++k) {
          if (t[k].role != roles[r]) continue;
          ++found;
          int64_t rows, cols;
          expected_shape(c, roles[r], &rows, &cols);
          cr_assert_eq(t[k].rows, rows, "%s layer %d %s rows", c->name, (int)layer, t[k].spec->name);
          cr_assert_eq(t[k].cols, cols, "%s layer %d %s cols", c->name, (int)layer, t[k].spec->name);
          cr_assert_eq(t[k].layer, layer);
          cr_assert_eq(t[k].expert, -1);
          int64_t next_row = 0;
          for (int32_t p = 0; p < t[k].spec->n_parts; ++p) {
            up_file_tensor f;
            cr_assert(up_arch_file_tensor(c, t[k].role, layer, p, &f));
            cr_assert_eq(f.row_offset, next_row, "%s part %d starts at row %lld", f.hf_name, (int)p,
                         (long long)f.row_offset);
            cr_assert_eq(f.cols, cols);
            next_row += f.rows;
          }
          cr_assert_eq(next_row, rows, "%s layer %d: parts cover %lld of %lld rows", t[k].spec->name, (int)layer,
                       (long long)next_row, (long long)rows);
          up_file_tensor beyond;
          cr_assert_not(up_arch_file_tensor(c, t[k].role, layer, t[k].spec->n_parts, &beyond));
        }
        cr_assert_eq(found, 1, "%s layer %d: role %d found %d times", c->name, (int)layer, (int)roles[r], found);
      }
    }
  }
}

static void expected_names(const expected_part *p, int32_t layer, char *gguf, size_t gguf_size, char *hf,
                           size_t hf_size) {
  if (p->per_layer) {
    snprintf(gguf, gguf_size, "blk.%d.%s.weight", (int)layer, p->gguf);
    snprintf(hf, hf_size, "model.layers.%d.%s.weight", (int)layer, p->hf);
  } else {
    snprintf(gguf, gguf_size, "%s.weight", p->gguf);
    snprintf(hf, hf_size, "%s.weight", p->hf);
  }
}

/* (role, layer, part) -> names -> (role, layer, part), for every tensor of every preset. */
Test(arch, names_map_both_ways) {
  for (int32_t i = 0; i < up_model_preset_count(); ++i) {
    const up_model_config *c = up_model_preset_at(i);
    if (strcmp(c->architecture, "llama") != 0) continue;
    int32_t n_named = 0;
    for (int32_t layer = -1; layer < c->n_layers; ++layer)
      for (int32_t e = 0; e < N_EXPECTED_PARTS; ++e) {
        const expected_part *p = &llama_parts[e];
        if (p->per_layer != (layer >= 0)) continue;
        up_file_tensor f;
        cr_assert(up_arch_file_tensor(c, p->role, layer, p->part, &f), "%s layer %d %s", c->name, (int)layer, p->hf);
        char gguf[96], hf[128];
        expected_names(p, layer, gguf, sizeof gguf, hf, sizeof hf);
        cr_assert_str_eq(f.gguf_name, gguf);
        cr_assert_str_eq(f.hf_name, hf);
        cr_assert_eq(f.rows, expected_part_rows(c, p), "%s rows", hf);
        cr_assert_eq(f.gguf_rotary_head_dim, p->rotary ? c->head_dim : 0, "%s rotary order", gguf);
        const char *names[2] = {gguf, hf};
        for (int32_t kind = 0; kind < 2; ++kind) {
          up_file_tensor back;
          cr_assert(up_arch_find_file_tensor(c, (up_tensor_names)kind, names[kind], &back), "%s not found",
                    names[kind]);
          cr_assert(back.role == p->role && back.layer == layer && back.part == p->part,
                    "%s maps back to role %d layer %d part %d", names[kind], (int)back.role, (int)back.layer,
                    (int)back.part);
        }
        ++n_named;
      }
    cr_assert_eq(n_named, 3 + 9 * c->n_layers);
  }
  const up_model_config *tiny = up_model_preset_find("tiny-llama");
  up_file_tensor f;
  cr_assert_not(up_arch_find_file_tensor(tiny, UP_NAMES_GGUF, "blk.8.attn_q.weight", &f), "beyond the last layer");
  cr_assert_not(up_arch_find_file_tensor(tiny, UP_NAMES_HF, "model.layers.0.self_attn.q_norm.weight", &f));
  cr_assert_not(up_arch_file_tensor(tiny, UP_TENSOR_ATTN_QKV, tiny->n_layers, 0, &f));
}

Test(arch, a_tied_head_is_the_embedding_tensor) {
  up_model_config c = *up_model_preset_find("tiny-llama");
  c.tie_word_embeddings = true;
  up_file_tensor head, embed;
  cr_assert(up_arch_file_tensor(&c, UP_TENSOR_LM_HEAD, -1, 0, &head));
  cr_assert(up_arch_file_tensor(&c, UP_TENSOR_EMBED, -1, 0, &embed));
  cr_assert_eq(head.role, UP_TENSOR_LM_HEAD);
  cr_assert_str_eq(head.gguf_name, "token_embd.weight");
  cr_assert_str_eq(head.hf_name, "model.embed_tokens.weight");
  cr_assert_eq(head.rows, embed.rows);
  cr_assert_eq(head.cols, embed.cols);
  up_file_tensor f;
  cr_assert_not(up_arch_find_file_tensor(&c, UP_NAMES_GGUF, "output.weight", &f));
  cr_assert_not(up_arch_find_file_tensor(&c, UP_NAMES_HF, "lm_head.weight", &f));
}

/* The seeded streams before the tensor table: kind 1..6 = embedding, LM head, QKV,
 * output, gate/up, down; the same bounds; norms all ones. */
static void expect_weight(up_backend *be, const up_model *m, up_tensor_role role, int32_t layer, int kind,
                          float bound, uint64_t seed) {
  int64_t rows, cols;
  expected_shape(&m->cfg, role, &rows, &cols);
  const size_t n = (size_t)(rows * cols);
  float *got = malloc(sizeof(float) * n), *want = malloc(sizeof(float) * n);
  cr_assert(got && want);
  be->ops->download_f32(be, got, up_model_weight(m, role, layer), 0, n);
  if (kind == 0) {
    for (size_t i = 0; i < n; ++i) want[i] = 1.0f;
  } else {
    void *ref = be->ops->alloc(be, sizeof(float) * n, "reference stream");
    be->ops->fill_uniform(be, ref, 0, n, bound, seed, ((uint64_t)(layer + 1) << 8) | (uint64_t)kind);
    be->ops->download_f32(be, want, ref, 0, n);
    be->ops->free(be, ref);
  }
  cr_assert(memcmp(got, want, sizeof(float) * n) == 0, "weight %d of layer %d differs from its stream", (int)role,
            (int)layer);
  free(got);
  free(want);
}

Test(arch, seeded_weights_are_the_streams_they_were) {
  const up_model_config cfg = small_config();
  up_backend *be = up_cpu_backend_create(1);
  cr_assert_eq(be->act_dtype, UP_DTYPE_F32);
  const uint64_t seed = 1234;
  up_model *m = up_model_create_random(&cfg, be, seed);
  cr_assert_eq(m->weight_bytes, up_model_weight_bytes(&cfg, be->act_dtype));
  const float h = (float)cfg.hidden, q = (float)(cfg.n_heads * cfg.head_dim), inter = (float)cfg.intermediate;
  const float residual = 1.0f / sqrtf(2.0f * (float)cfg.n_layers);
  expect_weight(be, m, UP_TENSOR_EMBED, -1, 1, sqrtf(3.0f), seed);
  expect_weight(be, m, UP_TENSOR_LM_HEAD, -1, 2, sqrtf(3.0f / h), seed);
  expect_weight(be, m, UP_TENSOR_FINAL_NORM, -1, 0, 0.0f, seed);
  for (int32_t l = 0; l < cfg.n_layers; ++l) {
    expect_weight(be, m, UP_TENSOR_ATTN_NORM, l, 0, 0.0f, seed);
    expect_weight(be, m, UP_TENSOR_MLP_NORM, l, 0, 0.0f, seed);
    expect_weight(be, m, UP_TENSOR_ATTN_QKV, l, 3, sqrtf(3.0f / h), seed);
    expect_weight(be, m, UP_TENSOR_ATTN_OUT, l, 4, residual * sqrtf(3.0f / q), seed);
    expect_weight(be, m, UP_TENSOR_MLP_GATE_UP, l, 5, sqrtf(3.0f / h), seed);
    expect_weight(be, m, UP_TENSOR_MLP_DOWN, l, 6, residual * sqrtf(3.0f / inter), seed);
  }
  up_model_destroy(m);
  be->ops->destroy(be);
}
