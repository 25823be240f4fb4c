/* generation.c — packed prefill and batched greedy decode over one KV pool (see
 * generation.h). Decode rows go through the same forward as any serving step, so a
 * method's per-layer KV lengths after a drop are what decode attends. */
#include "engine/serve/generation.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/memory/layer_memory.h"
#include "core/fatal.h"

enum { GEN_BLOCK_TOKENS = 64 };

struct up_generator {
  const up_model *model;
  int32_t max_seqs, max_prompt, max_new;
  up_layer_memory *memory;
  up_kv_pool pool;
  up_forward_workspace *ws;
  int64_t bytes;
  const uint8_t *content_tokens; /* diagnostics (up_generator_set_diagnostics) */
  bool track_drops;
};

void up_generator_set_diagnostics(up_generator *gen, const uint8_t *content_tokens, bool track_drops) {
  gen->content_tokens = content_tokens;
  gen->track_drops = track_drops;
}

/* Whether sequence g still needs its next step's logits: no token so far carried content. */
static bool wants_lead_logits(const up_generator *gen, const up_generation *g) {
  return gen->content_tokens && g->n_lead == g->n_tokens &&
         (g->n_tokens == 0 || !gen->content_tokens[g->tokens[g->n_tokens - 1]]);
}

static void keep_lead_logits(up_generation *g, const float *logits, int32_t vocab) {
  g->lead_logits = realloc(g->lead_logits, sizeof(float) * (size_t)vocab * (size_t)(g->n_lead + 1));
  if (!g->lead_logits) UP_FATAL("out of memory for %d steps of answer logits", (int)(g->n_lead + 1));
  memcpy(g->lead_logits + (size_t)g->n_lead * vocab, logits, sizeof(float) * (size_t)vocab);
  g->n_lead += 1;
}

up_generator *up_generator_create(const up_model *model, int32_t max_seqs, int32_t max_prompt, int32_t max_new,
                                  char *err, size_t err_size) {
  UP_ASSERT(max_seqs >= 1 && max_prompt >= 1 && max_new >= 1, "generator: bad sizes");
  up_backend *be = model->be;
  const up_model_config *cfg = &model->cfg;
  up_memory_layout layout;
  if (!up_memory_layout_from_config(cfg, be->act_dtype, GEN_BLOCK_TOKENS, &layout, err, err_size)) return NULL;
  /* Each sequence reserves its prompt plus max_new entries (one more than its decodes
   * append, as this pool always has): the need of max_new + 1 output tokens. */
  const up_memory_need need = up_memory_layout_need(&layout, max_prompt, (int64_t)max_new + 1);
  const int32_t blocks_per_seq = need.table_blocks;
  const int64_t seq_blocks = need.blocks[UP_MEMORY_FULL_KV] + need.blocks[UP_MEMORY_SLIDING_KV];
  const int64_t n_blocks = (seq_blocks > 0 ? seq_blocks : 1) * max_seqs;
  const int32_t kv_dim = up_model_kv_dim(model); /* this rank's KV heads */
  const size_t block_bytes = (size_t)GEN_BLOCK_TOKENS * (size_t)kv_dim * up_dtype_size(be->act_dtype);
  const int64_t pool_bytes = 2 * (int64_t)block_bytes * n_blocks;
  const int64_t available = (int64_t)be->ops->memory_available(be);
  if (n_blocks > INT32_MAX || pool_bytes > available) {
    snprintf(err, err_size, "generation of %d prompts of %d tokens (+%d new) needs %.2f GiB of KV cache on the %s "
             "backend; %.2f GiB is available", (int)max_seqs, (int)max_prompt, (int)max_new,
             pool_bytes / 1073741824.0, be->ops->name, available / 1073741824.0);
    return NULL;
  }
  up_generator *gen = up_calloc_or_die(1, sizeof *gen, "generator");
  *gen = (up_generator){.model = model, .max_seqs = max_seqs, .max_prompt = max_prompt, .max_new = max_new};
  const up_layer_memory_capacity capacity = {
      .kv_blocks = (int32_t)n_blocks, .max_seqs = max_seqs, .max_blocks_per_seq = blocks_per_seq,
      .state_slots = up_memory_layout_layers_of(&layout, UP_MEMORY_RECURRENT) > 0 ? max_seqs : 0};
  gen->memory = up_layer_memory_create(&layout, &capacity);
  gen->pool = (up_kv_pool){.n_blocks = (int32_t)n_blocks, .block_tokens = GEN_BLOCK_TOKENS, .kv_dim = kv_dim};
  gen->pool.k = be->ops->alloc(be, block_bytes * (size_t)n_blocks, "generation KV keys");
  gen->pool.v = be->ops->alloc(be, block_bytes * (size_t)n_blocks, "generation KV values");
  gen->ws = up_forward_workspace_create(model, (int64_t)max_seqs * max_prompt, max_seqs, blocks_per_seq);
  gen->bytes = pool_bytes + up_forward_workspace_bytes(gen->ws);
  return gen;
}

void up_generator_destroy(up_generator *gen) {
  if (!gen) return;
  up_backend *be = gen->model->be;
  up_forward_workspace_destroy(gen->ws);
  be->ops->free(be, gen->pool.k);
  be->ops->free(be, gen->pool.v);
  up_layer_memory_destroy(gen->memory);
  free(gen);
}

int64_t up_generator_bytes(const up_generator *gen) { return gen->bytes; }

static bool is_stop(int32_t token, const int32_t *stop_ids, int32_t n_stop) {
  for (int32_t i = 0; i < n_stop; ++i)
    if (token == stop_ids[i]) return true;
  return false;
}

/* Append a step's token to g; true while the sequence goes on decoding. A -1 token
 * (non-finite logits) ends it without a token. */
static bool take_token(up_generation *g, int32_t token, int32_t max_new, const int32_t *stop_ids, int32_t n_stop) {
  if (token < 0) {
    g->non_finite = true;
    return false;
  }
  g->tokens[g->n_tokens++] = token;
  g->stopped = is_stop(token, stop_ids, n_stop);
  return !g->stopped && g->n_tokens < max_new;
}

void up_generator_run(up_generator *gen, const up_method *method, const int32_t *const *prompts,
                      const int32_t *prompt_lens, int32_t n, int32_t max_new, const int32_t *stop_ids,
                      int32_t n_stop, up_generation *out) {
  const up_model_config *cfg = &gen->model->cfg;
  UP_ASSERT(n >= 1 && n <= gen->max_seqs, "generator: %d prompts for room of %d", (int)n, (int)gen->max_seqs);
  UP_ASSERT(max_new >= 1 && max_new <= gen->max_new, "generator: %d new tokens for room of %d", (int)max_new,
            (int)gen->max_new);
  const int32_t L = cfg->n_layers, V = cfg->vocab;
  up_forward_seq *seqs = up_calloc_or_die((size_t)n, sizeof *seqs, "generation batch");
  int32_t *slots = up_calloc_or_die((size_t)n, sizeof(int32_t), "generation slots");
  int32_t *next = up_calloc_or_die((size_t)n, sizeof(int32_t), "next tokens");
  int32_t *layer_rows = up_calloc_or_die((size_t)n * L, sizeof(int32_t), "rows per layer");
  float *logits = up_calloc_or_die((size_t)n * V, sizeof(float), "first logits");
  for (int32_t s = 0; s < n; ++s) {
    UP_ASSERT(prompt_lens[s] >= 1 && prompt_lens[s] <= gen->max_prompt, "generator: prompt %d has %d tokens (room %d)",
              (int)s, (int)prompt_lens[s], (int)gen->max_prompt);
    slots[s] = up_layer_memory_acquire(gen->memory);
    UP_ASSERT(slots[s] >= 0 && up_layer_memory_reserve(gen->memory, slots[s], prompt_lens[s],
                                                       (int64_t)prompt_lens[s] + max_new),
              "generator: KV cache sized for this batch is full");
    seqs[s] = (up_forward_seq){.slot = slots[s], .n_tokens = prompt_lens[s], .tokens = prompts[s],
                               .first_position = 0, .is_prefill = true,
                               .state_slot = up_layer_memory_state_slot(gen->memory, slots[s])};
    out[s] = (up_generation){.first_logits = up_malloc_or_die(sizeof(float) * (size_t)V, "first logits"),
                             .tokens = up_calloc_or_die((size_t)max_new, sizeof(int32_t), "generated tokens"),
                             .layer_rows = up_malloc_or_die(sizeof(int32_t) * (size_t)L, "rows per layer"),
                             .layer_density = up_malloc_or_die(sizeof(double) * (size_t)L, "density per layer")};
  }
  int64_t batch_prompt_tokens = 0;
  for (int32_t s = 0; s < n; ++s) batch_prompt_tokens += prompt_lens[s];
  int32_t *drops_survived =
      gen->track_drops ? up_calloc_or_die((size_t)batch_prompt_tokens, sizeof(int32_t), "drops survived") : NULL;
  up_attn_work *layer_attn = up_calloc_or_die((size_t)L, sizeof(up_attn_work), "attention work per layer");
  up_forward_out fout = {.next_tokens = next, .seq_layer_rows = layer_rows, .logits = logits,
                         .layer_attn = layer_attn, .row_drops_survived = drops_survived};
  up_forward(gen->model, gen->ws, up_layer_memory_kv(gen->memory), &gen->pool, method, seqs, n, &fout);
  for (int32_t s = 0, row = 0; s < n; row += prompt_lens[s], ++s) {
    memcpy(out[s].first_logits, logits + (size_t)s * V, sizeof(float) * (size_t)V);
    memcpy(out[s].layer_rows, layer_rows + (size_t)s * L, sizeof(int32_t) * (size_t)L);
    for (int32_t l = 0; l < L; ++l)
      out[s].layer_density[l] = layer_attn[l].causal > 0.0 ? layer_attn[l].computed / layer_attn[l].causal : NAN;
    if (wants_lead_logits(gen, &out[s])) keep_lead_logits(&out[s], out[s].first_logits, V);
    if (drops_survived) {
      out[s].prompt_drops_survived = up_malloc_or_die(sizeof(int32_t) * (size_t)prompt_lens[s], "drops survived");
      memcpy(out[s].prompt_drops_survived, drops_survived + row, sizeof(int32_t) * (size_t)prompt_lens[s]);
    }
  }
  free(drops_survived);
  free(layer_attn);
  /* Decode: every unfinished sequence feeds back its last token at its next position. */
  int32_t *active = up_calloc_or_die((size_t)n, sizeof(int32_t), "active sequences");
  int32_t *positions = up_calloc_or_die((size_t)n, sizeof(int32_t), "decode positions");
  int32_t n_active = 0;
  for (int32_t s = 0; s < n; ++s) {
    positions[s] = prompt_lens[s];
    if (take_token(&out[s], next[s], max_new, stop_ids, n_stop)) active[n_active++] = s;
  }
  fout = (up_forward_out){.next_tokens = next};
  while (n_active > 0) {
    bool lead_step = false; /* some answer has no content token yet: its logits are kept */
    for (int32_t a = 0; a < n_active; ++a) {
      const int32_t s = active[a];
      seqs[a] = (up_forward_seq){.slot = slots[s], .n_tokens = 1, .tokens = &out[s].tokens[out[s].n_tokens - 1],
                                 .first_position = positions[s], .is_prefill = false,
                                 .state_slot = up_layer_memory_state_slot(gen->memory, slots[s])};
      lead_step = lead_step || wants_lead_logits(gen, &out[s]);
    }
    fout.logits = lead_step ? logits : NULL;
    up_forward(gen->model, gen->ws, up_layer_memory_kv(gen->memory), &gen->pool, method, seqs, n_active, &fout);
    int32_t still = 0;
    for (int32_t a = 0; a < n_active; ++a) {
      const int32_t s = active[a];
      if (lead_step && wants_lead_logits(gen, &out[s])) keep_lead_logits(&out[s], logits + (size_t)a * V, V);
      positions[s] += 1;
      if (take_token(&out[s], next[a], max_new, stop_ids, n_stop)) active[still++] = s;
    }
    n_active = still;
  }
  for (int32_t s = 0; s < n; ++s) up_layer_memory_release(gen->memory, slots[s]);
  free(active);
  free(positions);
  free(seqs);
  free(slots);
  free(next);
  free(layer_rows);
  free(logits);
}

void up_generation_free(up_generation *g) {
  free(g->first_logits);
  free(g->tokens);
  free(g->layer_rows);
  free(g->layer_density);
  free(g->lead_logits);
  free(g->prompt_drops_survived);
  memset(g, 0, sizeof *g);
}
