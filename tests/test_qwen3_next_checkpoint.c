/* test_qwen3_next_checkpoint.c — loading Qwen3-Next checkpoints (issue 14) on the
 * committed tiny fixtures (tests/data/qwen3_next/, written by
 * tests/reference/qwen3_next_fixtures.py with transformers): config.json in both of its
 * forms mapped to the model config; the weights the engine reads checked row by row
 * against the stored tensors with the layouts of ../shared/HYBRIDS.md C.3, C.7, C.8
 * (per-key-head in_proj_qkvz and in_proj_ba, per-head [query | gate] q_proj, one tensor
 * per expert or, as transformers 5 keeps them, one for all), written out here rather than
 * taken from the readers; the same model rewritten as llama.cpp's converter would
 * (tests/qwen3_next_gguf.h, both DeltaNet layouts, and the fused attention qkv and
 * expert gate/up llama.cpp also loads) reading back as the same weights; and broken
 * copies (a DeltaNet, expert or router tensor missing or misshapen, a part in neither
 * form or in both, a GGUF ssm_a no converter writes) refused with the tensor named. The
 * logits against transformers' are checkpoint_tiny_qwen3_next_logits' (CTest). */
#include <criterion/criterion.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/checkpoint/checkpoint.h"
#include "engine/checkpoint/hf_checkpoint.h"
#include "engine/checkpoint/safetensors.h"
#include "tests/qwen3_next_gguf.h"
#include "tests/safetensors_writer.h"

#define FIXTURE(name) UP_TEST_DATA_DIR "/qwen3_next/" name

/* --- reading ------------------------------------------------------------------------ */

/* Every value of a part (all experts of a stack), or NULL with the reader's message. */
static float *read_part(const up_checkpoint *ck, up_tensor_role role, int32_t layer, int32_t part,
                        up_file_tensor *f, char *err, size_t err_size) {
  cr_assert(up_arch_file_tensor(up_checkpoint_config(ck), role, layer, part, f), "no part %d of role %d layer %d",
            (int)part, (int)role, (int)layer);
  const int64_t n = (f->experts > 0 ? f->experts : 1) * f->rows * f->cols;
  float *out = up_malloc_or_die(sizeof(float) * (size_t)n, "part");
  if (up_checkpoint_read(ck, f, out, err, err_size)) return out;
  free(out);
  return NULL;
}

static float *must_read(const up_checkpoint *ck, up_tensor_role role, int32_t layer, int32_t part,
                        up_file_tensor *f) {
  char err[512] = "";
  float *v = read_part(ck, role, layer, part, f, err, sizeof err);
  cr_assert_not_null(v, "%s", err);
  return v;
}

/* A stored tensor's values as fp32 (the fixture's own bytes, no engine layout). */
static float *raw(const up_hf_checkpoint *hf, const char *fmt, int32_t layer, int32_t extra) {
  char name[160];
  snprintf(name, sizeof name, fmt, (int)layer, (int)extra);
  int64_t n;
  return qn_hf_values(hf, name, &n);
}

/* Reads every part of every weight; the first failure's message into err. */
static bool read_everything(const up_checkpoint *ck, char *err, size_t err_size) {
  const up_model_config *cfg = up_checkpoint_config(ck);
  for (int32_t layer = -1; layer < cfg->n_layers; ++layer) {
    up_tensor_desc t[UP_MAX_LAYER_TENSORS];
    const int32_t n = up_arch_layer_tensors(cfg, layer, t);
    for (int32_t i = 0; i < n; ++i)
      for (int32_t p = 0; p < t[i].spec->n_parts; ++p) {
        up_file_tensor f;
        float *v = read_part(ck, t[i].role, layer, p, &f, err, err_size);
        if (!v) return false;
        free(v);
      }
  }
  return true;
}

static up_checkpoint *must_open(const char *path) {
  char err[512] = "";
  up_checkpoint *ck = up_checkpoint_open(path, err, sizeof err);
  cr_assert_not_null(ck, "%s", err);
  return ck;
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

/* --- GGUF, both DeltaNet layouts -------------------------------------------------------- */

typedef struct scratch {
  char dir[PATH_MAX], file[PATH_MAX + 32];
} scratch;

static void scratch_make(scratch *s, const char *file) {
  char base[] = "/tmp/up_qwen3_next_XXXXXX";
  cr_assert_not_null(mkdtemp(base));
  snprintf(s->dir, sizeof s->dir, "%s", base);
  snprintf(s->file, sizeof s->file, "%s/%s", base, file);
}

static void scratch_remove(const scratch *s, const char *const *files, int n) {
  char path[PATH_MAX + 64];
  for (int i = 0; i < n; ++i) {
    snprintf(path, sizeof path, "%s/%s", s->dir, files[i]);
    unlink(path);
  }
  cr_assert_eq(rmdir(s->dir), 0, "scratch directory %s not empty", s->dir);
}

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

/* --- broken checkpoints ------------------------------------------------------------------ */

/* A safetensors file being written: header members and data, growing. */
typedef struct st_copy {
  char *json;
  uint8_t *data;
  size_t json_len, data_len;
} st_copy;

enum { ST_COPY_JSON = 1 << 20, ST_COPY_DATA = 1 << 22 };

static st_copy st_copy_begin(void) {
  return (st_copy){up_malloc_or_die(ST_COPY_JSON, "header"), up_malloc_or_die(ST_COPY_DATA, "data"), 0, 0};
}

/* One tensor: dims as written in the header ("4,64"). */
static void st_copy_add(st_copy *c, const char *name, up_st_dtype dtype, const char *dims, const void *bytes,
                        size_t n_bytes) {
  c->json_len += (size_t)snprintf(c->json + c->json_len, ST_COPY_JSON - c->json_len,
                                  "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[%s],\"data_offsets\":[%zu,%zu]}",
                                  c->json_len ? "," : "{", name, up_st_dtype_name(dtype), dims, c->data_len,
                                  c->data_len + n_bytes);
  cr_assert_lt(c->json_len, (size_t)ST_COPY_JSON);
  cr_assert_leq(c->data_len + n_bytes, (size_t)ST_COPY_DATA);
  memcpy(c->data + c->data_len, bytes, n_bytes);
  c->data_len += n_bytes;
}

static void st_copy_add_stored(st_copy *c, const up_st_tensor *t, const char *name, const char *dims) {
  char own[96] = "";
  for (int32_t d = 0; d < t->n_dims; ++d)
    snprintf(own + strlen(own), sizeof own - strlen(own), "%s%lld", d ? "," : "", (long long)t->shape[d]);
  st_copy_add(c, name ? name : t->name, t->dtype, dims ? dims : own, t->data, (size_t)t->n_bytes);
}

/* s.dir/model.safetensors from c (freed), and the fixture's config.json beside it. */
static void st_copy_finish(st_copy *c, const scratch *s, const char *fixture) {
  char path[PATH_MAX + 64];
  c->json_len += (size_t)snprintf(c->json + c->json_len, ST_COPY_JSON - c->json_len, "}");
  while (c->json_len % 8) c->json[c->json_len++] = ' ';
  snprintf(path, sizeof path, "%s/model.safetensors", s->dir);
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  for (int b = 0; b < 8; ++b) fputc((int)((uint64_t)c->json_len >> (8 * b)) & 0xff, f);
  cr_assert_eq(fwrite(c->json, 1, c->json_len, f), c->json_len);
  cr_assert_eq(fwrite(c->data, 1, c->data_len, f), c->data_len);
  cr_assert_eq(fclose(f), 0);
  free(c->json);
  free(c->data);
  char from[PATH_MAX + 64], text[8192];
  snprintf(from, sizeof from, "%s/config.json", fixture);
  FILE *in = fopen(from, "rb");
  cr_assert_not_null(in);
  const size_t n = fread(text, 1, sizeof text, in);
  fclose(in);
  snprintf(path, sizeof path, "%s/config.json", s->dir);
  write_file_or_die(path, text, n);
}

/* The fixture copied into s.dir with tensor `drop` left out, or `reshape` stored under
 * `shape` (the same bytes, another shape): what a truncated or misconverted file holds.
 * `drop` "+NAME" instead adds a copy of the first tensor named NAME. */
static void write_broken_copy(const scratch *s, const char *fixture, const char *drop, const char *reshape,
                              const char *shape) {
  char err[512];
  up_hf_checkpoint *hf = up_hf_checkpoint_open(fixture, err, sizeof err);
  cr_assert_not_null(hf, "%s", err);
  st_copy c = st_copy_begin();
  const bool add = drop && drop[0] == '+';
  for (int64_t k = add ? -1 : 0; k < up_hf_checkpoint_tensor_count(hf); ++k) {
    const up_st_tensor *t = up_hf_checkpoint_tensor_at(hf, k < 0 ? 0 : k); /* k = -1: the added copy */
    if (drop && strcmp(t->name, drop) == 0) continue;
    st_copy_add_stored(&c, t, k < 0 ? drop + 1 : NULL, reshape && strcmp(t->name, reshape) == 0 ? shape : NULL);
  }
  up_hf_checkpoint_close(hf);
  st_copy_finish(&c, s, fixture);
}

/* The fixture copied into s.dir with every layer's experts stacked as transformers 5
 * keeps them (mlp.experts.gate_up_proj [E, 2I, H], each expert's gate rows then its up
 * rows; mlp.experts.down_proj [E, H, I]), without the stacked tensor `leave_out` (NULL:
 * none), and with layer 0's expert 0 gate_proj kept besides when keep_one. */
static void write_stacked_experts_copy(const scratch *s, const char *fixture, const char *leave_out, bool keep_one) {
  char err[512], name[160], dims[64];
  up_hf_checkpoint *hf = up_hf_checkpoint_open(fixture, err, sizeof err);
  cr_assert_not_null(hf, "%s", err);
  const up_model_config *cfg = up_hf_checkpoint_config(hf);
  st_copy c = st_copy_begin();
  for (int64_t k = 0; k < up_hf_checkpoint_tensor_count(hf); ++k) {
    const up_st_tensor *t = up_hf_checkpoint_tensor_at(hf, k);
    const char *experts = strstr(t->name, ".mlp.experts.");
    const bool per_expert = experts && experts[13] >= '0' && experts[13] <= '9';
    if (!per_expert || (keep_one && strcmp(t->name, "model.layers.0.mlp.experts.0.gate_proj.weight") == 0))
      st_copy_add_stored(&c, t, NULL, NULL);
  }
  const int64_t n_experts = cfg->n_experts, inter = cfg->moe_intermediate, h = cfg->hidden;
  const char *const projs[3] = {"gate_proj", "up_proj", "down_proj"};
  for (int32_t layer = 0; layer < cfg->n_layers; ++layer)
    for (int stack = 0; stack < 2; ++stack) { /* gate_up_proj, then down_proj */
      snprintf(name, sizeof name, "model.layers.%d.mlp.experts.%s", (int)layer, stack ? "down_proj" : "gate_up_proj");
      if (leave_out && strcmp(name, leave_out) == 0) continue;
      uint8_t *bytes = up_malloc_or_die((size_t)ST_COPY_DATA, "stacked experts");
      size_t used = 0;
      up_st_dtype dtype = UP_ST_F32;
      for (int64_t e = 0; e < n_experts; ++e)
        for (int p = stack ? 2 : 0; p < (stack ? 3 : 2); ++p) {
          char own[160];
          snprintf(own, sizeof own, "model.layers.%d.mlp.experts.%d.%s.weight", (int)layer, (int)e, projs[p]);
          const up_st_tensor *t = up_hf_checkpoint_find(hf, own);
          cr_assert_not_null(t, "fixture has no %s", own);
          cr_assert_leq(used + (size_t)t->n_bytes, (size_t)ST_COPY_DATA);
          memcpy(bytes + used, t->data, (size_t)t->n_bytes);
          used += (size_t)t->n_bytes;
          dtype = t->dtype;
        }
      snprintf(dims, sizeof dims, "%lld,%lld,%lld", (long long)n_experts, (long long)(stack ? h : 2 * inter),
               (long long)(stack ? inter : h));
      st_copy_add(&c, name, dtype, dims, bytes, used);
      free(bytes);
    }
  up_hf_checkpoint_close(hf);
  st_copy_finish(&c, s, fixture);
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

Test(qwen3_next_checkpoint, stacked_experts_missing_or_beside_their_own_tensors_are_refused) {
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

/* s.dir's config.json with `from` replaced by `to`. */
static void edit_config(const scratch *s, const char *from, const char *to) {
  char path[PATH_MAX + 64], text[8192], edited[8192 + 256];
  snprintf(path, sizeof path, "%s/config.json", s->dir);
  FILE *in = fopen(path, "rb");
  cr_assert_not_null(in);
  const size_t n = fread(text, 1, sizeof text - 1, in);
  fclose(in);
  text[n] = '\0';
  const char *at = strstr(text, from);
  cr_assert_not_null(at, "config.json has no \"%s\"", from);
  const int len = snprintf(edited, sizeof edited, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
  cr_assert(len > 0 && (size_t)len < sizeof edited);
  write_file_or_die(path, edited, (size_t)len);
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

Test(qwen3_next_checkpoint, missing_deltanet_expert_or_router_tensor_is_named) {
  expect_refused("model.layers.1.linear_attn.A_log", NULL, NULL,
                 "tensor 'model.layers.1.linear_attn.A_log' is missing");
  expect_refused("model.layers.0.linear_attn.in_proj_qkvz.weight", NULL, NULL,
                 "tensor 'model.layers.0.linear_attn.in_proj_qkvz.weight' is missing");
  expect_refused("model.layers.2.mlp.experts.5.down_proj.weight", NULL, NULL,
                 "tensor 'model.layers.2.mlp.experts.5.down_proj.weight' is missing");
  expect_refused("model.layers.3.mlp.gate.weight", NULL, NULL, "tensor 'model.layers.3.mlp.gate.weight' is missing");
}

Test(qwen3_next_checkpoint, misshapen_deltanet_expert_or_router_tensor_is_named) {
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

Test(qwen3_next_checkpoint, multi_token_prediction_tensors_are_left_out_as_transformers_does) {
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
  gguf_buf file = qn_gguf_from_hf_leaving_out(FIXTURE("tiny"), layout, leave_out);
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

Test(qwen3_next_checkpoint, gguf_without_a_part_in_any_form_names_both_forms) {
  expect_gguf_missing(QN_GGUF_LEGACY, "blk.1.ssm_in.weight",
                      "tensor 'blk.1.attn_qkv.weight' is missing (and so is 'blk.1.ssm_in.weight'");
  expect_gguf_missing(QN_GGUF_FUSED, "blk.3.attn_qkv.weight",
                      "tensor 'blk.3.attn_q.weight' is missing (and so is 'blk.3.attn_qkv.weight'");
  expect_gguf_missing(QN_GGUF_FUSED, "blk.2.ffn_gate_up_exps.weight",
                      "tensor 'blk.2.ffn_gate_exps.weight' is missing (and so is 'blk.2.ffn_gate_up_exps.weight'");
  expect_gguf_missing(QN_GGUF_SPLIT, "blk.0.ssm_ba.weight", "tensor 'blk.0.ssm_ba.weight' is missing");
}

Test(qwen3_next_checkpoint, gguf_holding_a_weight_in_both_forms_is_refused) {
  scratch s;
  scratch_make(&s, "model.gguf");
  gguf_buf file = qn_gguf_from_hf(FIXTURE("tiny"), QN_GGUF_BOTH);
  write_file_or_die(s.file, file.data, file.len);
  free(file.data);
  char err[512] = "";
  up_checkpoint *ck = up_checkpoint_open(s.file, err, sizeof err);
  cr_expect_null(ck, "a GGUF with both attn_q and a fused attn_qkv opened");
  up_checkpoint_close(ck);
  /* The first stranger in file order: layer 0's fused experts; then layers 1-3's and layer 3's attn_qkv. */
  cr_expect(strstr(err, "tensor 'blk.0.ffn_gate_up_exps.weight' is not a weight") != NULL, "message: %s", err);
  cr_expect(strstr(err, "(5 tensors of the checkpoint are unknown or unused)") != NULL, "message: %s", err);
  const char *files[] = {"model.gguf"};
  scratch_remove(&s, files, 1);
}

Test(qwen3_next_checkpoint, gguf_ssm_a_that_no_converter_writes_is_refused) {
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
