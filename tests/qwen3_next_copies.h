/* qwen3_next_copies.h — for the Qwen3-Next checkpoint tests (test_qwen3_next_checkpoint.c,
 * test_qwen3_next_bad_checkpoint.c): the committed tiny fixtures (tests/data/qwen3_next/)
 * opened and read part by part, and copies of them written to a scratch directory with a
 * tensor left out, reshaped or added, the experts stacked as transformers 5 keeps them,
 * or config.json edited. Criterion assertions: for Criterion tests only. */
#ifndef UP_TESTS_QWEN3_NEXT_COPIES_H
#define UP_TESTS_QWEN3_NEXT_COPIES_H

#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/checkpoint/checkpoint.h"
#include "engine/checkpoint/hf_checkpoint.h"
#include "engine/checkpoint/safetensors.h"
#include "tests/safetensors_writer.h"

#define FIXTURE(name) UP_TEST_DATA_DIR "/qwen3_next/" name

/* --- reading ------------------------------------------------------------------------ */

/* Every value of a part (all experts of a stack), or NULL with the reader's message. */
static inline float *read_part(const up_checkpoint *ck, up_tensor_role role, int32_t layer, int32_t part,
                        up_file_tensor *f, char *err, size_t err_size) {
  cr_assert(up_arch_file_tensor(up_checkpoint_config(ck), role, layer, part, f), "no part %d of role %d layer %d",
            (int)part, (int)role, (int)layer);
  const int64_t n = (f->experts > 0 ? f->experts : 1) * f->rows * f->cols;
  float *out = up_malloc_or_die(sizeof(float) * (size_t)n, "part");
  if (up_checkpoint_read(ck, f, out, err, err_size)) return out;
  free(out);
  return NULL;
}

static inline float *must_read(const up_checkpoint *ck, up_tensor_role role, int32_t layer, int32_t part,
                        up_file_tensor *f) {
  char err[512] = "";
  float *v = read_part(ck, role, layer, part, f, err, sizeof err);
  cr_assert_not_null(v, "%s", err);
  return v;
}

/* Reads every part of every weight; the first failure's message into err. */
static inline bool read_everything(const up_checkpoint *ck, char *err, size_t err_size) {
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

static inline up_checkpoint *must_open(const char *path) {
  char err[512] = "";
  up_checkpoint *ck = up_checkpoint_open(path, err, sizeof err);
  cr_assert_not_null(ck, "%s", err);
  return ck;
}

/* --- scratch copies ----------------------------------------------------------------- */

typedef struct scratch {
  char dir[PATH_MAX], file[PATH_MAX + 32];
} scratch;

static inline void scratch_make(scratch *s, const char *file) {
  char base[] = "/tmp/up_qwen3_next_XXXXXX";
  cr_assert_not_null(mkdtemp(base));
  snprintf(s->dir, sizeof s->dir, "%s", base);
  snprintf(s->file, sizeof s->file, "%s/%s", base, file);
}

static inline void scratch_remove(const scratch *s, const char *const *files, int n) {
  char path[PATH_MAX + 64];
  for (int i = 0; i < n; ++i) {
    snprintf(path, sizeof path, "%s/%s", s->dir, files[i]);
    unlink(path);
  }
  cr_assert_eq(rmdir(s->dir), 0, "scratch directory %s not empty", s->dir);
}

/* A safetensors file being written: header members and data, growing. */
typedef struct st_copy {
  char *json;
  uint8_t *data;
  size_t json_len, data_len;
} st_copy;

enum { ST_COPY_JSON = 1 << 20, ST_COPY_DATA = 1 << 22 };

static inline st_copy st_copy_begin(void) {
  return (st_copy){up_malloc_or_die(ST_COPY_JSON, "header"), up_malloc_or_die(ST_COPY_DATA, "data"), 0, 0};
}

/* One tensor: dims as written in the header ("4,64"). */
static inline void st_copy_add(st_copy *c, const char *name, up_st_dtype dtype, const char *dims, const void *bytes,
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

static inline void st_copy_add_stored(st_copy *c, const up_st_tensor *t, const char *name, const char *dims) {
  char own[96] = "";
  for (int32_t d = 0; d < t->n_dims; ++d)
    snprintf(own + strlen(own), sizeof own - strlen(own), "%s%lld", d ? "," : "", (long long)t->shape[d]);
  st_copy_add(c, name ? name : t->name, t->dtype, dims ? dims : own, t->data, (size_t)t->n_bytes);
}

/* s.dir/model.safetensors from c (freed), and the fixture's config.json beside it. */
static inline void st_copy_finish(st_copy *c, const scratch *s, const char *fixture) {
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
static inline void write_broken_copy(const scratch *s, const char *fixture, const char *drop, const char *reshape,
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
static inline void write_stacked_experts_copy(const scratch *s, const char *fixture, const char *leave_out,
                                              bool keep_one) {
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

/* s.dir's config.json with `from` replaced by `to`. */
static inline void edit_config(const scratch *s, const char *from, const char *to) {
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

#endif
