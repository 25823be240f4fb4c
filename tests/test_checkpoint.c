/* test_checkpoint.c — engine/checkpoint/checkpoint.h on checkpoints written here: one tiny llama
 * (2 layers, 2 query heads and 1 KV head of head_dim 8, F32 and F16 tensors of random
 * values) saved as a GGUF file, its query and key rows in llama.cpp's rotary order, and
 * as a Hugging Face directory, in transformers' order. Both must give the engine the
 * same weights (the source values, element for element) and the same logits and greedy
 * tokens on the CPU backend, tied or untied; a missing or misshapen tensor, an
 * unsupported architecture, partial rotary or rotary scaling other than llama3 must be
 * refused with a message naming the file and the tensor or field; and up_checkpoint_is_path
 * tells paths from preset names. */
#define _XOPEN_SOURCE 700 /* mkdtemp */
#include <criterion/criterion.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/checkpoint/checkpoint.h"
#include "engine/serve/generation.h"
#include "engine/methods/method.h"
#include "engine/model/model.h"
#include "kernels/cpu/cpu_backend.h"
#include "core/float16.h"
#include "tests/gguf_writer.h"
#include "tests/safetensors_writer.h"

enum { VOCAB = 32, HIDDEN = 16, N_HEADS = 2, N_KV_HEADS = 1, HEAD_DIM = 8, INTER = 24, N_LAYERS = 2, CONTEXT = 256 };
enum { GGUF_ALIGNMENT = 32, PROMPT_TOKENS = 20, MAX_NEW = 6 };

/* One tensor of the tiny model: its role, both formats' names, its [rows][cols] shape
 * (rows 0: a vector of cols), and its values in Hugging Face order. */
typedef struct tiny_tensor {
  up_tensor_role role; /* the engine weight it is part of */
  int32_t part;        /* which part of it (Q, K, V of the fused QKV; gate, up) */
  int32_t layer;
  char hf_name[96], gguf_name[96];
  int64_t rows, cols;
  bool f16;
  float *values;     /* exactly representable in the stored dtype */
  uint16_t *halves;  /* the fp16 bits when f16 */
} tiny_tensor;

#define MAX_TENSORS (3 + 9 * N_LAYERS)
typedef struct tiny_model {
  tiny_tensor t[MAX_TENSORS];
  int n;
} tiny_model;

static uint32_t next_random(uint32_t *state) {
  uint32_t x = *state;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return *state = x;
}

static void add_tensor(tiny_model *m, up_tensor_role role, int32_t part, int32_t layer, const char *hf,
                       const char *gguf, int64_t rows, int64_t cols, bool f16) {
  cr_assert_lt(m->n, MAX_TENSORS);
  tiny_tensor *t = &m->t[m->n];
  *t = (tiny_tensor){.role = role, .part = part, .layer = layer, .rows = rows, .cols = cols, .f16 = f16};
  if (layer < 0) {
    snprintf(t->hf_name, sizeof t->hf_name, "%s.weight", hf);
    snprintf(t->gguf_name, sizeof t->gguf_name, "%s.weight", gguf);
  } else {
    snprintf(t->hf_name, sizeof t->hf_name, "model.layers.%d.%s.weight", (int)layer, hf);
    snprintf(t->gguf_name, sizeof t->gguf_name, "blk.%d.%s.weight", (int)layer, gguf);
  }
  const int64_t n = (rows ? rows : 1) * cols;
  t->values = malloc(sizeof(float) * (size_t)n);
  t->halves = f16 ? malloc(sizeof(uint16_t) * (size_t)n) : NULL;
  uint32_t state = 0x9e3779b9u ^ (uint32_t)(m->n * 7919 + 17);
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t r = next_random(&state);
    if (rows == 0) {
      t->values[i] = 0.5f + (float)(r % 1024) / 1024.0f; /* norm weights around 1 */
    } else if (f16) {
      /* sign, exponent 9..14 (2^-6 .. 1), random mantissa */
      t->halves[i] = (uint16_t)(((r >> 31) << 15) | ((9u + (r >> 10) % 6u) << 10) | (r & 0x3ffu));
      t->values[i] = up_fp16_to_f32(t->halves[i]);
    } else {
      t->values[i] = ((float)(r % 65536) / 65536.0f - 0.5f) * 1.5f;
    }
  }
  m->n += 1;
}

/* F32 and F16 both appear in every kind of tensor across the two layers, the rotary
 * ones included. */
static void tiny_model_make(tiny_model *m) {
  memset(m, 0, sizeof *m);
  add_tensor(m, UP_TENSOR_EMBED, 0, -1, "model.embed_tokens", "token_embd", VOCAB, HIDDEN, false);
  add_tensor(m, UP_TENSOR_LM_HEAD, 0, -1, "lm_head", "output", VOCAB, HIDDEN, true);
  add_tensor(m, UP_TENSOR_FINAL_NORM, 0, -1, "model.norm", "output_norm", 0, HIDDEN, false);
  for (int32_t l = 0; l < N_LAYERS; ++l) {
    const bool odd = l % 2 == 1;
    add_tensor(m, UP_TENSOR_ATTN_NORM, 0, l, "input_layernorm", "attn_norm", 0, HIDDEN, false);
    add_tensor(m, UP_TENSOR_ATTN_QKV, 0, l, "self_attn.q_proj", "attn_q", N_HEADS * HEAD_DIM, HIDDEN, !odd);
    add_tensor(m, UP_TENSOR_ATTN_QKV, 1, l, "self_attn.k_proj", "attn_k", N_KV_HEADS * HEAD_DIM, HIDDEN, !odd);
    add_tensor(m, UP_TENSOR_ATTN_QKV, 2, l, "self_attn.v_proj", "attn_v", N_KV_HEADS * HEAD_DIM, HIDDEN, odd);
    add_tensor(m, UP_TENSOR_ATTN_OUT, 0, l, "self_attn.o_proj", "attn_output", HIDDEN, N_HEADS * HEAD_DIM, true);
    add_tensor(m, UP_TENSOR_MLP_NORM, 0, l, "post_attention_layernorm", "ffn_norm", 0, HIDDEN, false);
    add_tensor(m, UP_TENSOR_MLP_GATE_UP, 0, l, "mlp.gate_proj", "ffn_gate", INTER, HIDDEN, true);
    add_tensor(m, UP_TENSOR_MLP_GATE_UP, 1, l, "mlp.up_proj", "ffn_up", INTER, HIDDEN, odd);
    add_tensor(m, UP_TENSOR_MLP_DOWN, 0, l, "mlp.down_proj", "ffn_down", HIDDEN, INTER, !odd);
  }
}

static void tiny_model_free(tiny_model *m) {
  for (int i = 0; i < m->n; ++i) {
    free(m->t[i].values);
    free(m->t[i].halves);
  }
}

static const tiny_tensor *tiny_find(const tiny_model *m, up_tensor_role role, int32_t part, int32_t layer) {
  for (int i = 0; i < m->n; ++i)
    if (m->t[i].role == role && m->t[i].part == part && m->t[i].layer == layer) return &m->t[i];
  cr_assert_fail("no tensor for role %d part %d layer %d", (int)role, (int)part, (int)layer);
  return NULL;
}

/* What a test changes about the files. Zero-initialised: the plain model. */
typedef struct variant {
  const char *architecture;   /* GGUF general.architecture / HF model_type; NULL: llama */
  uint32_t rope_dims;         /* GGUF llama.rope.dimension_count; 0: head_dim */
  float rope_theta;           /* 0: 10000 */
  const float *rope_freqs;    /* GGUF rope_freqs.weight; NULL: absent */
  int32_t n_rope_freqs;
  bool tied;                  /* no output / lm_head tensor; HF config says tied */
  bool hf_claims_untied;      /* with tied: the HF config still says tie_word_embeddings false */
  const char *omit;           /* a tensor name (either format's) left out */
  const char *transpose;      /* a tensor name written with its two dimensions swapped */
  bool rotary_rows_unpermuted;/* GGUF q/k rows left in Hugging Face order */
  const char *extra_gguf[3];  /* tensors added to the GGUF file: F32 vectors of EXTRA_VALUES */
  const char *extra_hf[3];    /* the same for the Hugging Face file */
  bool head_stored_anyway;    /* with tied: the HF file still holds lm_head.weight */
} variant;

enum { EXTRA_VALUES = N_HEADS * HEAD_DIM }; /* a query bias's length; any length is as unknown */

static bool written(const variant *v, const tiny_tensor *t, const char *name) {
  if (v->tied && !v->head_stored_anyway && t->role == UP_TENSOR_LM_HEAD) return false;
  if (v->tied && t->role == UP_TENSOR_LM_HEAD && strcmp(name, t->gguf_name) == 0) return false;
  return !(v->omit && strcmp(v->omit, name) == 0);
}

/* The Hugging Face row stored at GGUF row r of a query or key matrix: llama.cpp's
 * converter writes, per head, HF row j*half + i at GGUF row 2i + j. */
static int64_t hf_row_of_gguf_row(const tiny_tensor *t, const variant *v, int64_t r) {
  const bool query_or_key = t->role == UP_TENSOR_ATTN_QKV && t->part < 2;
  if (!query_or_key || v->rotary_rows_unpermuted) return r;
  const int64_t head = r / HEAD_DIM, within = r % HEAD_DIM, half = HEAD_DIM / 2;
  return head * HEAD_DIM + (within % 2) * half + within / 2;
}

static void put_row(gguf_buf *b, const tiny_tensor *t, int64_t hf_row) {
  for (int64_t c = 0; c < t->cols; ++c) {
    const int64_t i = hf_row * t->cols + c;
    if (t->f16) {
      put_u8(b, (uint8_t)(t->halves[i] & 0xff));
      put_u8(b, (uint8_t)(t->halves[i] >> 8));
    } else {
      put_f32(b, t->values[i]);
    }
  }
}

static size_t tensor_bytes(const tiny_tensor *t) {
  return (size_t)((t->rows ? t->rows : 1) * t->cols) * (t->f16 ? 2u : 4u);
}

static size_t aligned(size_t n) { return (n + GGUF_ALIGNMENT - 1) / GGUF_ALIGNMENT * GGUF_ALIGNMENT; }

static gguf_buf gguf_bytes(const tiny_model *m, const variant *v) {
  gguf_buf kv = {0};
  uint64_t n_kv = 0;
  put_kv_str(&kv, "general.architecture", v->architecture ? v->architecture : "llama"), ++n_kv;
  put_kv_u32(&kv, "llama.block_count", N_LAYERS), ++n_kv;
  put_kv_u32(&kv, "llama.embedding_length", HIDDEN), ++n_kv;
  put_kv_u32(&kv, "llama.feed_forward_length", INTER), ++n_kv;
  put_kv_u32(&kv, "llama.attention.head_count", N_HEADS), ++n_kv;
  put_kv_u32(&kv, "llama.attention.head_count_kv", N_KV_HEADS), ++n_kv;
  put_kv_u32(&kv, "llama.context_length", CONTEXT), ++n_kv;
  put_kv_u32(&kv, "llama.rope.dimension_count", v->rope_dims ? v->rope_dims : HEAD_DIM), ++n_kv;
  put_kv_f32(&kv, "llama.rope.freq_base", v->rope_theta > 0.0f ? v->rope_theta : 10000.0f), ++n_kv;
  put_kv_f32(&kv, "llama.attention.layer_norm_rms_epsilon", 1e-5f), ++n_kv;

  gguf_buf infos = {0}, data = {0};
  uint64_t n_tensors = 0;
  for (int i = 0; i < m->n; ++i) {
    const tiny_tensor *t = &m->t[i];
    if (!written(v, t, t->gguf_name)) continue;
    /* ggml order: the contiguous dimension first. */
    const bool swap = v->transpose && strcmp(v->transpose, t->gguf_name) == 0;
    const uint64_t dims[2] = {(uint64_t)(swap ? t->rows : t->cols), (uint64_t)(swap ? t->cols : t->rows)};
    put_tensor_info(&infos, t->gguf_name, t->rows ? 2 : 1, dims, t->f16 ? UP_GGML_F16 : UP_GGML_F32, data.len);
    for (int64_t r = 0; r < (t->rows ? t->rows : 1); ++r) put_row(&data, t, hf_row_of_gguf_row(t, v, r));
    pad_to(&data, GGUF_ALIGNMENT);
    cr_assert_eq(data.len % GGUF_ALIGNMENT, 0);
    cr_assert_geq(data.len, tensor_bytes(t));
    ++n_tensors;
  }
  for (int i = 0; i < 3 && v->extra_gguf[i]; ++i) {
    const uint64_t dims[1] = {EXTRA_VALUES};
    put_tensor_info(&infos, v->extra_gguf[i], 1, dims, UP_GGML_F32, data.len);
    for (int32_t e = 0; e < EXTRA_VALUES; ++e) put_f32(&data, 0.25f);
    pad_to(&data, GGUF_ALIGNMENT);
    ++n_tensors;
  }
  if (v->rope_freqs) {
    const uint64_t dims[1] = {(uint64_t)v->n_rope_freqs};
    put_tensor_info(&infos, "rope_freqs.weight", 1, dims, UP_GGML_F32, data.len);
    for (int32_t i = 0; i < v->n_rope_freqs; ++i) put_f32(&data, v->rope_freqs[i]);
    pad_to(&data, GGUF_ALIGNMENT);
    ++n_tensors;
  }
  gguf_buf file = {0};
  put_header(&file, 3, n_tensors, n_kv);
  put(&file, kv.data, kv.len);
  put(&file, infos.data, infos.len);
  pad_to(&file, GGUF_ALIGNMENT);
  put(&file, data.data, data.len);
  cr_assert_eq(aligned(file.len), file.len);
  free(kv.data);
  free(infos.data);
  free(data.data);
  return file;
}

/* A scratch directory holding model.gguf and hf/ (config.json, model.safetensors). */
typedef struct scratch {
  char dir[PATH_MAX], gguf[PATH_MAX], hf[PATH_MAX];
} scratch;

static void scratch_make(scratch *s) {
  char base[] = "/tmp/up_checkpoint_XXXXXX";
  cr_assert_not_null(mkdtemp(base));
  snprintf(s->dir, sizeof s->dir, "%s", base);
  snprintf(s->gguf, sizeof s->gguf, "%s/model.gguf", base);
  snprintf(s->hf, sizeof s->hf, "%s/hf", base);
  cr_assert_eq(mkdir(s->hf, 0700), 0);
}

static void remove_if_present(const char *path) {
  if (unlink(path) != 0) cr_assert(access(path, F_OK) != 0, "cannot remove %s", path);
}

static void scratch_remove(const scratch *s) {
  char path[PATH_MAX + 32];
  remove_if_present(s->gguf);
  snprintf(path, sizeof path, "%s/config.json", s->hf);
  remove_if_present(path);
  snprintf(path, sizeof path, "%s/model.safetensors", s->hf);
  remove_if_present(path);
  cr_assert_eq(rmdir(s->hf), 0);
  cr_assert_eq(rmdir(s->dir), 0);
}

static void write_gguf(const scratch *s, const tiny_model *m, const variant *v) {
  gguf_buf file = gguf_bytes(m, v);
  write_file_or_die(s->gguf, file.data, file.len);
  free(file.data);
}

static void write_hf(const scratch *s, const tiny_model *m, const variant *v) {
  char config[1024], path[PATH_MAX + 32];
  const bool tie_flag = v->tied && !v->hf_claims_untied;
  snprintf(config, sizeof config,
           "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"%s\", \"hidden_size\": %d,"
           " \"intermediate_size\": %d, \"num_attention_heads\": %d, \"num_key_value_heads\": %d,"
           " \"num_hidden_layers\": %d, \"head_dim\": %d, \"vocab_size\": %d, \"max_position_embeddings\": %d,"
           " \"rms_norm_eps\": 1e-05, \"rope_theta\": %.1f, \"tie_word_embeddings\": %s, \"torch_dtype\": \"float32\"}",
           v->architecture ? v->architecture : "llama", HIDDEN, INTER, N_HEADS, N_KV_HEADS, N_LAYERS, HEAD_DIM, VOCAB,
           CONTEXT, v->rope_theta > 0.0f ? (double)v->rope_theta : 10000.0, tie_flag ? "true" : "false");
  snprintf(path, sizeof path, "%s/config.json", s->hf);
  write_file_or_die(path, config, strlen(config));
  st_writer *w = calloc(1, sizeof *w);
  cr_assert_not_null(w);
  for (int i = 0; i < m->n; ++i) {
    const tiny_tensor *t = &m->t[i];
    if (!written(v, t, t->hf_name)) continue;
    const bool swap = v->transpose && strcmp(v->transpose, t->hf_name) == 0;
    const int64_t shape[2] = {swap ? t->cols : t->rows, swap ? t->rows : t->cols};
    const int64_t vec[1] = {t->cols};
    const void *bytes = t->f16 ? (const void *)t->halves : (const void *)t->values;
    st_writer_add(w, t->hf_name, t->f16 ? "F16" : "F32", t->rows ? shape : vec, t->rows ? 2 : 1, bytes,
                  tensor_bytes(t));
  }
  static const float extra_values[EXTRA_VALUES] = {0.25f};
  const int64_t extra_shape[1] = {EXTRA_VALUES};
  for (int i = 0; i < 3 && v->extra_hf[i]; ++i)
    st_writer_add(w, v->extra_hf[i], "F32", extra_shape, 1, extra_values, sizeof extra_values);
  snprintf(path, sizeof path, "%s/model.safetensors", s->hf);
  st_writer_save(w, path);
  free(w);
}

/* Every test gets the tiny model and an empty scratch directory (Criterion runs each
 * test in its own process, so these are per test). */
static tiny_model source;
static scratch files;

static void suite_init(void) {
  tiny_model_make(&source);
  scratch_make(&files);
}

static void suite_fini(void) {
  scratch_remove(&files);
  tiny_model_free(&source);
}

TestSuite(checkpoint, .init = suite_init, .fini = suite_fini);

static up_checkpoint *open_ok(const char *path) {
  char err[1024] = "";
  up_checkpoint *ck = up_checkpoint_open(path, err, sizeof err);
  cr_assert_not_null(ck, "%s: %s", path, err);
  return ck;
}

/* The checkpoint must open but its model must fail to load, naming path and tensor. */
static void expect_load_error(const char *path, const char *tensor, const char *fragment) {
  up_checkpoint *ck = open_ok(path);
  up_backend *be = up_cpu_backend_create(1);
  char err[1024] = "";
  up_model *model = up_model_create_from_checkpoint(ck, be, err, sizeof err);
  cr_assert_null(model, "%s loaded without '%s'", path, tensor);
  cr_assert(strstr(err, path) != NULL, "the message names the file %s: %s", path, err);
  char quoted[128];
  snprintf(quoted, sizeof quoted, "'%s'", tensor);
  cr_assert(strstr(err, quoted) != NULL, "the message names the tensor %s: %s", tensor, err);
  cr_assert(strstr(err, fragment) != NULL, "the message says '%s': %s", fragment, err);
  be->ops->destroy(be);
  up_checkpoint_close(ck);
}

static void expect_open_error(const char *path, const char *fragment) {
  char err[1024] = "";
  up_checkpoint *ck = up_checkpoint_open(path, err, sizeof err);
  cr_assert_null(ck, "%s opened", path);
  cr_assert(strstr(err, path) != NULL, "the message names the file %s: %s", path, err);
  cr_assert(strstr(err, fragment) != NULL, "the message says '%s': %s", fragment, err);
}

/* Greedy generation from a fixed prompt: first-position logits and tokens. */
typedef struct run_result {
  float logits[VOCAB];
  int32_t tokens[MAX_NEW];
  int32_t n_tokens;
} run_result;

static run_result generate(const up_checkpoint *ck) {
  up_backend *be = up_cpu_backend_create(1);
  char err[1024] = "";
  up_model *model = up_model_create_from_checkpoint(ck, be, err, sizeof err);
  cr_assert_not_null(model, "%s", err);
  up_generator *gen = up_generator_create(model, 1, PROMPT_TOKENS, MAX_NEW, err, sizeof err);
  cr_assert_not_null(gen, "%s", err);
  int32_t prompt[PROMPT_TOKENS];
  for (int32_t i = 0; i < PROMPT_TOKENS; ++i) prompt[i] = (7 * i + 3) % VOCAB;
  const int32_t *prompts[1] = {prompt};
  const int32_t lens[1] = {PROMPT_TOKENS};
  up_method_spec spec;
  up_method_spec_reference(&spec);
  up_method dense;
  char method_err[256];
  cr_assert(up_method_init(&dense, &spec, be, method_err, sizeof method_err), "%s", method_err);
  up_generation g;
  up_generator_run(gen, &dense, prompts, lens, 1, MAX_NEW, NULL, 0, &g);
  run_result r;
  memcpy(r.logits, g.first_logits, sizeof r.logits);
  cr_assert_eq(g.n_tokens, MAX_NEW);
  memcpy(r.tokens, g.tokens, sizeof(int32_t) * MAX_NEW);
  r.n_tokens = g.n_tokens;
  up_generation_free(&g);
  up_generator_destroy(gen);
  up_model_destroy(model);
  be->ops->destroy(be);
  for (int32_t i = 0; i < VOCAB; ++i) cr_assert(isfinite(r.logits[i]), "logit %d is %g", i, (double)r.logits[i]);
  return r;
}

static double max_abs_diff(const float *a, const float *b, int64_t n) {
  double d = 0.0;
  for (int64_t i = 0; i < n; ++i) d = fmax(d, fabs((double)a[i] - (double)b[i]));
  return d;
}

/* The architecture's description of a tiny tensor: the names written here and the
 * shape (a tied LM head is the embedding's tensor). */
static up_file_tensor file_tensor_of(const up_checkpoint *ck, const tiny_tensor *t, const tiny_tensor *stored) {
  up_file_tensor f;
  cr_assert(up_arch_file_tensor(up_checkpoint_config(ck), t->role, t->layer, t->part, &f), "%s is not in the table",
            t->hf_name);
  cr_assert_str_eq(f.hf_name, stored->hf_name);
  cr_assert_str_eq(f.gguf_name, stored->gguf_name);
  cr_assert_eq(f.rows, t->rows ? t->rows : 1, "%s rows", t->hf_name);
  cr_assert_eq(f.cols, t->cols, "%s cols", t->hf_name);
  return f;
}

/* Every weight of ck equals the source values (for the LM head: of lm_head_source). */
static void expect_weights(const up_checkpoint *ck, const tiny_model *m, up_tensor_role lm_head_source) {
  float *buf = malloc(sizeof(float) * VOCAB * HIDDEN);
  for (int i = 0; i < m->n; ++i) {
    const tiny_tensor *t = &m->t[i];
    const tiny_tensor *src = t->role == UP_TENSOR_LM_HEAD ? tiny_find(m, lm_head_source, 0, -1) : t;
    const up_file_tensor f = file_tensor_of(ck, t, src);
    const int64_t rows = f.rows, cols = f.cols;
    char err[1024] = "";
    cr_assert(up_checkpoint_read(ck, &f, buf, err, sizeof err), "%s", err);
    for (int64_t e = 0; e < rows * cols; ++e)
      cr_assert_eq(buf[e], src->values[e], "%s: %s element %lld (row %lld) is %g, expected %g",
                   up_checkpoint_path(ck), t->hf_name, (long long)e, (long long)(e / cols), (double)buf[e],
                   (double)src->values[e]);
  }
  free(buf);
}

static void expect_tiny_shape(const up_model_config *c) {
  cr_assert_str_eq(c->architecture, "llama");
  cr_assert_eq(c->n_layers, N_LAYERS);
  cr_assert_eq(c->hidden, HIDDEN);
  cr_assert_eq(c->n_heads, N_HEADS);
  cr_assert_eq(c->n_kv_heads, N_KV_HEADS);
  cr_assert_eq(c->head_dim, HEAD_DIM);
  cr_assert_eq(c->intermediate, INTER);
  cr_assert_eq(c->vocab, VOCAB);
  cr_assert_eq(c->max_context, CONTEXT);
}

static void expect_same_config(const up_model_config *a, const up_model_config *b) {
  expect_tiny_shape(a);
  expect_tiny_shape(b);
  cr_assert_eq(a->norm_eps, b->norm_eps);
  cr_assert_eq(a->rope_theta, b->rope_theta);
  cr_assert_eq(a->rope_scaling, b->rope_scaling);
  cr_assert_eq(a->tie_word_embeddings, b->tie_word_embeddings);
}

/* Both formats of one variant: same config, the source weights, identical logits and tokens. */
static void check_formats_agree(const variant *v) {
  write_gguf(&files, &source, v);
  write_hf(&files, &source, v);
  up_checkpoint *gguf = open_ok(files.gguf), *hf = open_ok(files.hf);
  cr_assert_eq(up_checkpoint_format_of(gguf), UP_CHECKPOINT_GGUF);
  cr_assert_eq(up_checkpoint_format_of(hf), UP_CHECKPOINT_HF);
  cr_assert_not_null(up_checkpoint_gguf(gguf));
  cr_assert_null(up_checkpoint_gguf(hf));
  expect_same_config(up_checkpoint_config(gguf), up_checkpoint_config(hf));
  cr_assert_eq(up_checkpoint_config(gguf)->tie_word_embeddings, v->tied);
  const up_tensor_role head = v->tied ? UP_TENSOR_EMBED : UP_TENSOR_LM_HEAD;
  expect_weights(gguf, &source, head);
  expect_weights(hf, &source, head);
  const run_result a = generate(gguf), b = generate(hf);
  cr_assert(memcmp(a.logits, b.logits, sizeof a.logits) == 0, "GGUF and HF logits differ by up to %g",
            max_abs_diff(a.logits, b.logits, VOCAB));
  cr_assert(memcmp(a.tokens, b.tokens, sizeof a.tokens) == 0, "GGUF and HF generate different tokens");
  double spread = 0.0;
  for (int32_t i = 1; i < VOCAB; ++i) spread = fmax(spread, fabs((double)a.logits[i] - (double)a.logits[0]));
  cr_assert_gt(spread, 1e-3, "the logits depend on the token (spread %g)", spread);
  up_checkpoint_close(gguf);
  up_checkpoint_close(hf);
}

Test(checkpoint, gguf_and_hugging_face_give_the_same_weights_and_logits) {
  const variant v = {0};
  check_formats_agree(&v);
}

Test(checkpoint, tied_embeddings_in_both_formats) {
  const variant v = {.tied = true};
  check_formats_agree(&v);
}

/* The comparison above would notice a loader that left llama.cpp's rotary rows as they
 * are: a GGUF whose q/k rows are in HF order loads to different weights and logits. */
Test(checkpoint, rotary_row_order_matters) {
  const variant plain = {0}, unpermuted = {.rotary_rows_unpermuted = true};
  write_hf(&files, &source, &plain);
  write_gguf(&files, &source, &unpermuted);
  up_checkpoint *gguf = open_ok(files.gguf), *hf = open_ok(files.hf);
  float *q = malloc(sizeof(float) * N_HEADS * HEAD_DIM * HIDDEN);
  char err[1024] = "";
  const tiny_tensor *hf_q = tiny_find(&source, UP_TENSOR_ATTN_QKV, 0, 0);
  const up_file_tensor f = file_tensor_of(gguf, hf_q, hf_q);
  cr_assert(up_checkpoint_read(gguf, &f, q, err, sizeof err), "%s", err);
  cr_assert(memcmp(q, hf_q->values, sizeof(float) * N_HEADS * HEAD_DIM * HIDDEN) != 0);
  /* Row j*half + i of the engine's layout is file row 2i + j: head 0, i = 1, j = 0 is file row 2. */
  cr_assert(memcmp(q + 1 * HIDDEN, hf_q->values + 2 * HIDDEN, sizeof(float) * HIDDEN) == 0);
  const run_result a = generate(gguf), b = generate(hf);
  cr_assert_gt(max_abs_diff(a.logits, b.logits, VOCAB), 1e-4, "row order left no trace in the logits");
  free(q);
  up_checkpoint_close(gguf);
  up_checkpoint_close(hf);
}

Test(checkpoint, untied_hugging_face_config_without_lm_head_is_refused) {
  const variant v = {.tied = true, .hf_claims_untied = true};
  write_hf(&files, &source, &v);
  expect_load_error(files.hf, "lm_head.weight", "missing");
}

Test(checkpoint, missing_tensor_names_file_and_tensor) {
  const variant gguf_v = {.omit = "blk.1.ffn_down.weight"}, hf_v = {.omit = "model.layers.1.mlp.down_proj.weight"};
  write_gguf(&files, &source, &gguf_v);
  write_hf(&files, &source, &hf_v);
  expect_load_error(files.gguf, "blk.1.ffn_down.weight", "missing");
  expect_load_error(files.hf, "model.layers.1.mlp.down_proj.weight", "missing");
  /* The embedding is needed before any weight is read: the GGUF config takes its vocab there. */
  const variant no_embed = {.omit = "token_embd.weight"};
  write_gguf(&files, &source, &no_embed);
  expect_open_error(files.gguf, "'token_embd.weight'");
}

Test(checkpoint, misshapen_tensor_names_file_and_tensor) {
  const variant gguf_v = {.transpose = "blk.0.attn_k.weight"},
                hf_v = {.transpose = "model.layers.0.self_attn.k_proj.weight"};
  write_gguf(&files, &source, &gguf_v);
  write_hf(&files, &source, &hf_v);
  expect_load_error(files.gguf, "blk.0.attn_k.weight", "the config needs [16, 8]");
  expect_load_error(files.hf, "model.layers.0.self_attn.k_proj.weight", "the config needs [8, 16]");
}

Test(checkpoint, unsupported_architecture_is_refused) {
  const variant v = {.architecture = "mamba2"};
  write_gguf(&files, &source, &v);
  write_hf(&files, &source, &v);
  expect_open_error(files.gguf, "architecture 'mamba2' is not supported");
  expect_open_error(files.hf, "mamba2");
}

Test(checkpoint, partial_rotary_is_refused) {
  const variant v = {.rope_dims = HEAD_DIM / 2};
  write_gguf(&files, &source, &v);
  expect_open_error(files.gguf, "llama.rope.dimension_count 4 differs from head_dim 8");
}

/* Llama-3.1's published scaling (factor 8, low 1, high 4, original context 8192) as
 * per-frequency divisors, computed here from the formula. */
static void llama3_divisors(float theta, float *out) {
  const double factor = 8.0, low = 1.0, high = 4.0, original = 8192.0;
  for (int32_t i = 0; i < HEAD_DIM / 2; ++i) {
    const double freq = pow((double)theta, -2.0 * i / HEAD_DIM), wavelen = 2.0 * M_PI / freq;
    double scaled;
    if (wavelen < original / high) scaled = freq;
    else if (wavelen > original / low) scaled = freq / factor;
    else {
      const double smooth = (original / wavelen - low) / (high - low);
      scaled = (1.0 - smooth) * freq / factor + smooth * freq;
    }
    out[i] = (float)(freq / scaled);
  }
}

Test(checkpoint, rope_freqs_must_be_llama3_scaling) {
  /* theta 500000 puts the four frequencies in every band: unscaled, unscaled, smoothed, divided by 8. */
  float divisors[HEAD_DIM / 2];
  llama3_divisors(500000.0f, divisors);
  cr_assert_eq(divisors[0], 1.0f);
  cr_assert(divisors[2] > 1.0f && divisors[2] < 8.0f, "a smoothed band: %g", (double)divisors[2]);
  cr_assert_float_eq(divisors[3], 8.0f, 1e-6);
  const variant llama3 = {.rope_theta = 500000.0f, .rope_freqs = divisors, .n_rope_freqs = HEAD_DIM / 2};
  write_gguf(&files, &source, &llama3);
  up_checkpoint *ck = open_ok(files.gguf);
  const up_model_config *cfg = up_checkpoint_config(ck);
  cr_assert_eq(cfg->rope_scaling, UP_ROPE_SCALING_LLAMA3);
  cr_assert_eq(cfg->rope_factor, 8.0f);
  cr_assert_eq(cfg->rope_original_context, 8192);
  float inv_freq[HEAD_DIM / 2];
  up_model_config_rope_inv_freq(cfg, inv_freq);
  for (int32_t i = 0; i < HEAD_DIM / 2; ++i) {
    const double plain = pow(500000.0, -2.0 * i / HEAD_DIM);
    cr_assert_float_eq((double)inv_freq[i], plain / divisors[i], 1e-6 * plain, "frequency %d", (int)i);
  }
  up_checkpoint_close(ck);

  const float ones[HEAD_DIM / 2] = {1.0f, 1.0f, 1.0f, 1.0f};
  const variant unscaled = {.rope_theta = 500000.0f, .rope_freqs = ones, .n_rope_freqs = HEAD_DIM / 2};
  write_gguf(&files, &source, &unscaled);
  expect_open_error(files.gguf, "'rope_freqs.weight'");
  expect_open_error(files.gguf, "other than Llama-3.1's llama3 scaling");
  const variant short_tensor = {.rope_theta = 500000.0f, .rope_freqs = divisors, .n_rope_freqs = 3};
  write_gguf(&files, &source, &short_tensor);
  expect_open_error(files.gguf, "'rope_freqs.weight' has 3 elements");
}

Test(checkpoint, truncated_gguf_names_the_file) {
  const variant v = {0};
  gguf_buf file = gguf_bytes(&source, &v);
  write_file_or_die(files.gguf, file.data, file.len - 100);
  expect_open_error(files.gguf, "beyond the end of the file");
  free(file.data);
}

Test(checkpoint, is_path_tells_paths_from_presets) {
  cr_assert_not(up_checkpoint_is_path("tiny-llama"));
  cr_assert_not(up_checkpoint_is_path("llama-3.1-8b"));
  cr_assert_not(up_checkpoint_is_path("no-such-model"));
  cr_assert(up_checkpoint_is_path("model.gguf"), "a .gguf name is a path even before it exists");
  cr_assert(up_checkpoint_is_path("./SmolLM2"));
  cr_assert(up_checkpoint_is_path("/nonexistent/dir"));
  cr_assert(up_checkpoint_is_path("models/llama"));
  cr_assert_not(up_checkpoint_is_path("model.gguf.txt"));
  /* A bare name is a path when it exists in the working directory. */
  char cwd[PATH_MAX];
  cr_assert_not_null(getcwd(cwd, sizeof cwd));
  cr_assert_eq(chdir(files.dir), 0);
  cr_assert_not(up_checkpoint_is_path("hf-checkpoint"));
  cr_assert_eq(mkdir("hf-checkpoint", 0700), 0);
  cr_assert(up_checkpoint_is_path("hf-checkpoint"));
  cr_assert_eq(rmdir("hf-checkpoint"), 0);
  cr_assert_eq(chdir(cwd), 0);
}

Test(checkpoint, missing_path_is_refused) {
  expect_open_error("/nonexistent/model.gguf", "no such file or directory");
}

/* Issue 18: a tensor the engine does not use would be left out of the answer; the
 * checkpoint is refused at open, naming the file, the first such tensor and the count. */
Test(checkpoint, unused_bias_is_refused_by_name) {
  const variant gguf_v = {.extra_gguf = {"blk.0.attn_q.bias"}},
                hf_v = {.extra_hf = {"model.layers.0.self_attn.q_proj.bias"}};
  write_gguf(&files, &source, &gguf_v);
  write_hf(&files, &source, &hf_v);
  expect_open_error(files.gguf, "tensor 'blk.0.attn_q.bias' is not a weight of this 2-layer llama model");
  expect_open_error(files.gguf, "(1 tensor of the checkpoint is unknown or unused)");
  char shard[PATH_MAX + 32];
  snprintf(shard, sizeof shard, "%s/model.safetensors", files.hf);
  expect_open_error(files.hf, shard);
  expect_open_error(files.hf, "tensor 'model.layers.0.self_attn.q_proj.bias' is not a weight");
}

Test(checkpoint, every_unknown_tensor_is_counted) {
  /* A bias, a layer past the config's depth, another architecture's weight. */
  const variant gguf_v = {.extra_gguf = {"blk.1.attn_k.bias", "blk.2.attn_q.weight", "v.patch_embd.weight"}},
                hf_v = {.extra_hf = {"model.layers.1.mlp.up_proj.bias", "model.layers.2.mlp.up_proj.weight",
                                     "vision_tower.embeddings.weight"}};
  write_gguf(&files, &source, &gguf_v);
  write_hf(&files, &source, &hf_v);
  expect_open_error(files.gguf, "'blk.1.attn_k.bias'");
  expect_open_error(files.gguf, "(3 tensors of the checkpoint are unknown or unused)");
  /* Safetensors headers come back sorted by name: the first unknown is the first name. */
  expect_open_error(files.hf, "'model.layers.1.mlp.up_proj.bias'");
  expect_open_error(files.hf, "(3 tensors of the checkpoint are unknown or unused)");
  /* The untied head is a weight of an untied model only. */
  const variant tied = {.tied = true, .extra_gguf = {"output.weight"}};
  write_gguf(&files, &source, &tied);
  up_checkpoint *ck = open_ok(files.gguf);
  cr_assert_not(up_checkpoint_config(ck)->tie_word_embeddings, "a GGUF with output.weight is untied");
  up_checkpoint_close(ck);
}

/* What transformers itself drops on load is accepted, and the weights are as without it:
 * a tied model's stored head (the embedding is the head) and rotary inverse frequencies
 * (derived from the config). GGUF's rope_freqs.weight: rope_freqs_must_be_llama3_scaling. */
Test(checkpoint, tensors_transformers_ignores_are_accepted) {
  const variant v = {.tied = true, .head_stored_anyway = true,
                     .extra_hf = {"model.layers.0.self_attn.rotary_emb.inv_freq",
                                  "model.layers.1.self_attn.rotary_emb.inv_freq"}};
  write_hf(&files, &source, &v);
  up_checkpoint *ck = open_ok(files.hf);
  cr_assert(up_checkpoint_config(ck)->tie_word_embeddings);
  expect_weights(ck, &source, UP_TENSOR_EMBED);
  up_checkpoint_close(ck);
  /* A stored head of the wrong shape is a broken checkpoint, tied or not. */
  const variant misshapen = {.tied = true, .head_stored_anyway = true, .transpose = "lm_head.weight"};
  write_hf(&files, &source, &misshapen);
  expect_open_error(files.hf, "tensor 'lm_head.weight' of a tied model has 2 dims (first 16), the config needs [32, 16]");
}
