/* checkpoint_tensor_names.c — the allow-list of a checkpoint's tensor names: every
 * tensor a file stores must be a part of a weight of the model (the architecture's
 * table, engine/model/arch.h, resolved for the config) or one of the few that the
 * format's reader consumes knowingly, listed here per format with the reason. A
 * tensor the engine would silently leave out (a bias, a layer past the config's depth,
 * another architecture's weight) would give an answer other than the model's, so the
 * checkpoint is refused, naming it. Owns the name check only; reading tensors is
 * checkpoint_gguf.c's and checkpoint_hf.c's. */
#include "engine/checkpoint/checkpoint_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "engine/checkpoint/gguf.h"
#include "engine/checkpoint/hf_checkpoint.h"
#include "engine/checkpoint/safetensors.h"

/* A checkpoint name of either format fits in the larger of up_file_tensor's fields. */
typedef char weight_name[sizeof((up_file_tensor *)0)->hf_name];

static int compare_names(const void *a, const void *b) { return strcmp((const char *)a, (const char *)b); }

/* The names of every tensor part of the model in one format, sorted. Each (layer, table
 * line, part) is asked once, the layers that do not run a line's block answering
 * false: linear in the model's size, so checking n stored names costs n log n. A
 * Hugging Face expert stack is one tensor per expert, each listed. */
static weight_name *model_tensor_names(const up_model_config *cfg, up_tensor_names names, int64_t *count) {
  const up_arch *arch = up_arch_of(cfg);
  const int64_t per_layer = (int64_t)arch->n_tensors * UP_MAX_TENSOR_PARTS;
  const int64_t slots = per_layer * (cfg->n_layers + 1); /* layer -1 holds the model-wide weights */
  int64_t cap = slots > 0 ? slots : 1, n = 0;
  weight_name *out = up_calloc_or_die((size_t)cap, sizeof *out, "model tensor names");
  for (int64_t k = 0; k < slots; ++k) {
    const int32_t layer = (int32_t)(k / per_layer) - 1, line = (int32_t)(k % per_layer / UP_MAX_TENSOR_PARTS);
    up_file_tensor f;
    /* A tied LM head resolves to the embedding's tensor: listed twice, harmlessly. */
    if (!up_arch_file_tensor(cfg, arch->tensors[line].role, layer, (int32_t)(k % UP_MAX_TENSOR_PARTS), &f)) continue;
    const int32_t copies = names == UP_NAMES_HF && f.experts > 0 ? f.experts : 1;
    if (n + copies > cap) {
      cap = (n + copies) * 2;
      out = realloc(out, (size_t)cap * sizeof *out);
      UP_ASSERT(out, "model tensor names: out of memory for %lld names", (long long)cap);
    }
    for (int32_t e = 0; e < copies; ++e)
      UP_ASSERT(up_checkpoint_expert_name(names == UP_NAMES_GGUF ? f.gguf_name : f.hf_name, e, out[n++],
                                          sizeof out[0]),
                "tensor name of expert %d too long", (int)e);
  }
  qsort(out, (size_t)n, sizeof out[0], compare_names);
  *count = n;
  return out;
}

/* A tensor as a checkpoint stores it: its name and the file holding it (for messages). */
typedef struct stored_tensor {
  const char *name;
  const char *file;
} stored_tensor;

static bool check_names(const up_model_config *cfg, up_tensor_names names, const stored_tensor *stored,
                        int64_t n_stored, char *err, size_t err_size) {
  int64_t n_known = 0;
  weight_name *known = model_tensor_names(cfg, names, &n_known);
  int64_t n_unknown = 0, first = -1;
  for (int64_t i = 0; i < n_stored; ++i) {
    if (bsearch(stored[i].name, known, (size_t)n_known, sizeof known[0], compare_names)) continue;
    if (first < 0) first = i;
    ++n_unknown;
  }
  free(known);
  if (n_unknown == 0) return true;
  snprintf(err, err_size,
           "%s: tensor '%s' is not a weight of this %d-layer %s model: the engine would leave it out and compute "
           "something other than the model the file describes (%lld tensor%s of the checkpoint %s unknown or unused)",
           stored[first].file, stored[first].name, (int)cfg->n_layers, cfg->architecture, (long long)n_unknown,
           n_unknown == 1 ? "" : "s", n_unknown == 1 ? "is" : "are");
  return false;
}

bool up_checkpoint_gguf_check_tensors(const up_gguf *g, const up_model_config *cfg, char *err, size_t err_size) {
  const int64_t n = up_gguf_tensor_count(g);
  stored_tensor *stored = up_calloc_or_die((size_t)(n > 0 ? n : 1), sizeof *stored, "GGUF tensor names");
  int64_t n_stored = 0;
  for (int64_t i = 0; i < n; ++i) {
    const char *name = up_gguf_tensor_at(g, i)->name;
    /* llama.cpp's rotary divisors: checkpoint_gguf.c's check_rope_freqs has already
     * compared them with the config's rotary scaling (and refused any it cannot
     * reproduce), so the engine's own frequencies are the ones the file holds. */
    if (strcmp(name, "rope_freqs.weight") == 0) continue;
    /* A qwen3next file's legacy or fused form of table tensors it lacks, read in their
     * place (checkpoint_qwen3_next.c). */
    if (up_checkpoint_gguf_qwen3_next_alias(g, cfg, name)) continue;
    stored[n_stored++] = (stored_tensor){name, up_gguf_name(g)};
  }
  const bool ok = check_names(cfg, UP_NAMES_GGUF, stored, n_stored, err, err_size);
  free(stored);
  return ok;
}

static bool ends_with(const char *s, const char *suffix) {
  const size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Tensors a Hugging Face checkpoint may store that transformers itself does not load,
 * so that the engine's answer is transformers' without them. */
static bool hf_consumed_knowingly(const up_model_config *cfg, const up_st_tensor *t, const char *untied_head,
                                  const char *file, bool *ok, char *err, size_t err_size) {
  /* Older transformers saved each attention's rotary inverse frequencies as a buffer;
   * current versions derive them from the config on load and drop the stored ones, as
   * the engine does (up_model_config_rope_inv_freq). */
  if (ends_with(t->name, ".rotary_emb.inv_freq")) return true;
  /* Qwen3-Next's multi-token-prediction head: transformers does not load it
   * (_keys_to_ignore_on_load_unexpected), nor does prefill use it. */
  if (strcmp(cfg->architecture, "qwen3next") == 0 && strncmp(t->name, "mtp.", 4) == 0) return true;
  /* A tied model may still store its head: transformers ties lm_head to the embedding
   * after loading, so the stored copy is never used, and the engine reads the
   * embedding as transformers does. A copy of another shape is a broken checkpoint
   * (transformers refuses it too). */
  if (cfg->tie_word_embeddings && strcmp(t->name, untied_head) == 0) {
    if (!(t->n_dims == 2 && t->shape[0] == cfg->vocab && t->shape[1] == cfg->hidden)) {
      snprintf(err, err_size, "%s: tensor '%s' of a tied model has %d dims (first %lld), the config needs [%d, %d]",
               file, t->name, (int)t->n_dims, (long long)(t->n_dims > 0 ? t->shape[0] : 0), (int)cfg->vocab,
               (int)cfg->hidden);
      *ok = false;
    }
    return true;
  }
  return false;
}

bool up_checkpoint_hf_check_tensors(const up_hf_checkpoint *hf, const up_model_config *cfg, char *err,
                                    size_t err_size) {
  /* The head's stored name, from the table: the name a tied model would not use. */
  up_model_config untied = *cfg;
  untied.tie_word_embeddings = false;
  up_file_tensor head;
  const bool has_head = up_arch_file_tensor(&untied, UP_TENSOR_LM_HEAD, -1, 0, &head);
  const int64_t n = up_hf_checkpoint_tensor_count(hf);
  stored_tensor *stored = up_calloc_or_die((size_t)(n > 0 ? n : 1), sizeof *stored, "safetensors tensor names");
  int64_t n_stored = 0;
  bool ok = true;
  for (int32_t s = 0; ok && s < up_hf_checkpoint_shard_count(hf); ++s) {
    const up_safetensors *shard = up_hf_checkpoint_shard_at(hf, s);
    for (int64_t i = 0; ok && i < up_safetensors_tensor_count(shard); ++i) {
      const up_st_tensor *t = up_safetensors_tensor_at(shard, i);
      if (hf_consumed_knowingly(cfg, t, has_head ? head.hf_name : "", up_safetensors_name(shard), &ok, err,
                                err_size))
        continue;
      /* Qwen3-Next's experts stacked in one tensor, read in place of the per-expert
       * ones the directory lacks (checkpoint_qwen3_next.c). */
      if (up_checkpoint_hf_qwen3_next_alias(hf, cfg, t->name)) continue;
      UP_ASSERT(n_stored < n, "%s: shards hold more tensors than the checkpoint lists", up_hf_checkpoint_dir(hf));
      stored[n_stored++] = (stored_tensor){t->name, up_safetensors_name(shard)};
    }
  }
  ok = ok && check_names(cfg, UP_NAMES_HF, stored, n_stored, err, err_size);
  free(stored);
  return ok;
}
