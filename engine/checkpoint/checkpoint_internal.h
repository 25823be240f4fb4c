/* checkpoint_internal.h — what engine/checkpoint/checkpoint.c asks of each format's side
 * (checkpoint_gguf.c, checkpoint_hf.c): the config from the format's metadata, and one
 * tensor in the engine's layout; of checkpoint_tensor_names.c, that every stored
 * tensor is one the model uses; and what the sides share for weights stored in
 * another row order or one tensor per expert (checkpoint_layout.c) and for Qwen3-Next's
 * GGUF conventions (checkpoint_qwen3_next.c). Not for use outside the checkpoint module. */
#ifndef UP_CHECKPOINT_INTERNAL_H
#define UP_CHECKPOINT_INTERNAL_H

#include "engine/checkpoint/checkpoint.h"

typedef struct up_hf_checkpoint up_hf_checkpoint;

bool up_checkpoint_gguf_config(const up_gguf *g, up_model_config *cfg, char *err, size_t err_size);
/* One weight part into out: rows x cols floats, or for an expert stack (tensor->experts
 * > 0) experts x rows x cols, expert by expert. */
bool up_checkpoint_gguf_read(const up_gguf *g, const up_model_config *cfg, const up_file_tensor *tensor, float *out,
                             char *err, size_t err_size);

/* True when every tensor of the file is a part of a weight of cfg's model or one the
 * reader consumes knowingly; otherwise false with a message naming the file, the first
 * unknown tensor and how many there are. */
bool up_checkpoint_gguf_check_tensors(const up_gguf *g, const up_model_config *cfg, char *err, size_t err_size);
bool up_checkpoint_hf_check_tensors(const up_hf_checkpoint *hf, const up_model_config *cfg, char *err,
                                    size_t err_size);

bool up_checkpoint_hf_read(const up_hf_checkpoint *hf, const up_file_tensor *tensor, float *out, char *err,
                           size_t err_size);

/* --- checkpoint_layout.c ---------------------------------------------------------- */
/* Rows of the stored tensor a part of `rows` engine rows in row order `order` is taken from. */
int64_t up_checkpoint_stored_rows(const up_model_config *cfg, up_row_order order, int64_t rows);
/* out (rows x cols) = the rows of stored (up_checkpoint_stored_rows x cols) the order takes. */
void up_checkpoint_take_rows(const up_model_config *cfg, up_row_order order, const float *stored, float *out,
                             int64_t rows, int64_t cols);
/* pattern with its "*" replaced by the expert (unchanged without one); false when too long. */
bool up_checkpoint_expert_name(const char *pattern, int32_t expert, char *out, size_t out_size);
/* True when the shapes agree once dimensions of size 1 are left out (the same bytes). */
bool up_checkpoint_dims_match(const int64_t *dims, int32_t n_dims, const int64_t *want, int32_t n_want);
/* "a, b, c" into out (for messages). */
void up_checkpoint_format_dims(const int64_t *dims, int32_t n_dims, char *out, size_t out_size);

/* An integer key in [1, max]; out untouched when absent and not required (checkpoint_gguf.c). */
bool up_checkpoint_gguf_count(const up_gguf *g, const char *key, bool required, int64_t max, int32_t *out, char *err,
                              size_t err_size);
/* A positive finite number key; out untouched when absent. */
bool up_checkpoint_gguf_positive(const up_gguf *g, const char *key, float *out, char *err, size_t err_size);

/* --- checkpoint_qwen3_next.c ------------------------------------------------------ */
/* Where a part's rows are stored when not in a tensor of its own: a tensor of stored_rows
 * rows per expert, the part taking, in row order `order`, rows of the slice that starts
 * at first_row. A GGUF table tensor is {its name, its order, 0, up_checkpoint_stored_rows}. */
typedef struct up_stored_source {
  char name[160];
  up_row_order order;
  int64_t first_row, stored_rows;
} up_stored_source;

/* The n of a layer list that is full attention every n-th layer and linear attention
 * between (n_layers + 1 when no layer is full), the one pattern the engine runs; -1
 * when the list is not such, *breaking then the first layer that breaks it. */
int32_t up_checkpoint_qwen3_next_period(const bool *full, int32_t n_layers, int32_t *breaking);
/* Qwen3-Next's hyper-parameters from a qwen3next GGUF's metadata; cfg already holds the
 * keys every architecture shares (checkpoint_gguf.c). */
bool up_checkpoint_gguf_qwen3_next_config(const up_gguf *g, up_model_config *cfg, char *err, size_t err_size);
/* The other tensor a qwen3next GGUF may hold a part in when it lacks the table's: a
 * legacy file's blk.N.ssm_in (in_proj_qkvz as Hugging Face orders it) for attn_qkv /
 * attn_gate, a fused attention blk.N.attn_qkv for attn_q / attn_k / attn_v, a fused
 * blk.N.ffn_gate_up_exps for ffn_gate_exps / ffn_up_exps. False when there is none. */
bool up_checkpoint_gguf_qwen3_next_fallback(const up_model_config *cfg, const up_file_tensor *tensor,
                                            up_stored_source *source);
/* Undo what llama.cpp's converter did to a value the engine keeps as Hugging Face has it
 * (ssm_a holds A = -exp(A_log): back to A_log); false with a message naming the tensor
 * when a value cannot have come from the converter. */
bool up_checkpoint_gguf_qwen3_next_values(const up_gguf *g, const up_model_config *cfg, const up_file_tensor *tensor,
                                          float *values, int64_t count, char *err, size_t err_size);
/* True for a tensor of g that is not in the table but is read in place of table
 * tensors the file lacks (up_checkpoint_gguf_qwen3_next_fallback). */
bool up_checkpoint_gguf_qwen3_next_alias(const up_gguf *g, const up_model_config *cfg, const char *name);
/* A Hugging Face expert stack saved by transformers 5 in its own layout
 * (save_original_format=False): mlp.experts.gate_up_proj [experts, 2 I, hidden], each
 * expert's gate rows then its up rows, and mlp.experts.down_proj [experts, hidden, I], in
 * place of one tensor per expert. False when the part has no such form. */
bool up_checkpoint_hf_qwen3_next_fused_experts(const up_model_config *cfg, const up_file_tensor *tensor,
                                               up_stored_source *source);
/* True for a tensor of hf that is not in the table but is read in place of the experts'
 * own tensors, which hf lacks (up_checkpoint_hf_qwen3_next_fused_experts). */
bool up_checkpoint_hf_qwen3_next_alias(const up_hf_checkpoint *hf, const up_model_config *cfg, const char *name);

#endif
