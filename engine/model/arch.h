/* arch.h — what an architecture is to the engine: a table of its weights (each
 * addressed by role and layer, with its shape from the config, how a seeded model
 * draws it, and the tensors checkpoints store it as, named in GGUF and in Hugging
 * Face safetensors) and the blocks each layer runs, in order. The forward pass, the
 * checkpoint readers and the cost model read these tables and assume no
 * architecture; engine/model/arch/<name>.c describes one, arch_registry.c lists them.
 * Declarations only for what every architecture shares; no architecture's knowledge. */
#ifndef UP_ARCH_H
#define UP_ARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/model/model_config.h"

/* What a weight does, in the vocabulary the shared blocks use. An architecture lists
 * the roles it has; a new block brings its roles here (Gemma 3's q/k and post norms,
 * Qwen3-Next's DeltaNet projections and MoE router and expert stacks). */
typedef enum up_tensor_role {
  UP_TENSOR_EMBED = 0,   /* input embedding [vocab][hidden] */
  UP_TENSOR_LM_HEAD,     /* [vocab][hidden]; a tied model's reads the embedding */
  UP_TENSOR_FINAL_NORM,  /* [hidden] */
  UP_TENSOR_ATTN_NORM,   /* attention block's input norm */
  UP_TENSOR_ATTN_QKV,    /* fused [q rows; k rows; v rows][hidden]: one GEMM */
  UP_TENSOR_ATTN_OUT,    /* [hidden][n_heads * head_dim] */
  UP_TENSOR_MLP_NORM,    /* MLP block's input norm */
  UP_TENSOR_MLP_GATE_UP, /* fused [gate rows; up rows][hidden]: one GEMM */
  UP_TENSOR_MLP_DOWN,    /* [hidden][intermediate] */
  UP_TENSOR_ATTN_Q_NORM, /* [head_dim]: RMSNorm of each query head before RoPE (Gemma 3) */
  UP_TENSOR_ATTN_K_NORM, /* [head_dim]: RMSNorm of each key head before RoPE */
  UP_TENSOR_ATTN_POST_NORM, /* [hidden]: RMSNorm of the attention block's output before the residual add */
  UP_TENSOR_MLP_POST_NORM,  /* [hidden]: RMSNorm of the MLP block's output before the residual add */
  UP_TENSOR_ROLE_COUNT
} up_tensor_role;

/* The shared blocks a layer may run. Each is pre-norm: it reads the hidden state
 * normalised by its own input norm and writes a delta that the residual adds (a
 * block whose layer has its post-norm weight normalises the delta first: Gemma's
 * sandwich norms). Model weights (embedding, head, final norm) belong to UP_BLOCK_MODEL. */
typedef enum up_block_kind {
  UP_BLOCK_MODEL = 0,
  UP_BLOCK_ATTENTION, /* attention: full, or over the layer's window on sliding-window layers */
  UP_BLOCK_MLP,       /* gated MLP: SwiGLU or GeGLU by the layer's mlp_kind */
} up_block_kind;

#define UP_MAX_LAYER_BLOCKS 4
#define UP_MAX_LAYER_TENSORS 32
#define UP_MAX_TENSOR_PARTS 3

/* A dimension of a weight, resolved against a config (up_dim_size). */
typedef enum up_dim {
  UP_DIM_ONE = 0,    /* 1: the row count of a vector */
  UP_DIM_HIDDEN,
  UP_DIM_VOCAB,
  UP_DIM_Q,          /* n_heads x head_dim */
  UP_DIM_KV,         /* n_kv_heads x head_dim */
  UP_DIM_QKV,        /* Q + 2 KV */
  UP_DIM_INTERMEDIATE,
  UP_DIM_GATE_UP,    /* 2 x intermediate */
  UP_DIM_HEAD,       /* head_dim: per-head norm weights */
} up_dim;

/* How a seeded model draws a weight (model.c's up_model_create_random). */
typedef enum up_tensor_init {
  UP_INIT_ONES = 0, /* norm weights */
  UP_INIT_UNIT,     /* Uniform(-sqrt 3, sqrt 3): unit variance (the embedding) */
  UP_INIT_FAN_IN,   /* Uniform(-b, b), b = sqrt(3 / cols): outputs at unit variance */
  UP_INIT_RESIDUAL, /* FAN_IN scaled by 1 / sqrt(2 n_layers): a writer into the residual stream */
} up_tensor_init;

/* Seeded-weight stream kinds: the low byte of a tensor's stream id, its layer above.
 * Fixed values: changing one changes every seeded model (and the committed records). */
enum {
  UP_STREAM_NONE = 0,
  UP_STREAM_EMBED = 1,
  UP_STREAM_LM_HEAD = 2,
  UP_STREAM_WQKV = 3,
  UP_STREAM_WO = 4,
  UP_STREAM_GATE_UP = 5,
  UP_STREAM_DOWN = 6,
};

/* One checkpoint tensor a weight is made of: its rows (the weight's columns), its
 * name stem in each format, whether llama.cpp's converter stored its rows with
 * rotary pairs adjacent (the engine rotates halves; the GGUF reader puts rows back),
 * and whether Hugging Face stores w for a norm that multiplies by 1 + w (Gemma: the
 * loader adds the 1; llama.cpp's converter already did for GGUF). */
typedef struct up_tensor_part_spec {
  up_dim rows;
  const char *gguf; /* "attn_q" -> blk.<layer>.attn_q.weight; model-wide "token_embd" -> token_embd.weight */
  const char *hf;   /* "self_attn.q_proj" -> <hf_layer_prefix><layer>.self_attn.q_proj.weight */
  bool gguf_rotary_pairs;
  bool hf_one_plus;
} up_tensor_part_spec;

/* One line of an architecture's weight table. */
typedef struct up_tensor_spec {
  up_tensor_role role;
  up_block_kind block;   /* whose weight: a layer holds the weights of the blocks it runs */
  const char *name;      /* short name: GEMM case labels ("qkv") */
  const char *what;      /* for messages ("QKV projection") */
  up_dim rows, cols;     /* engine layout [rows][cols], row-major */
  up_tensor_init init;
  int32_t stream;        /* UP_STREAM_*; UP_STREAM_NONE for UP_INIT_ONES */
  int32_t n_parts;       /* checkpoint tensors, stacked by rows in this order */
  up_tensor_part_spec parts[UP_MAX_TENSOR_PARTS];
} up_tensor_spec;

typedef struct up_arch {
  const char *name;            /* up_model_config.architecture; GGUF general.architecture */
  const char *hf_layer_prefix; /* Hugging Face per-layer tensor names start with this, then the layer */
  const up_tensor_spec *tensors;
  int32_t n_tensors;
  /* The blocks layer `layer` runs, in order; returns how many (at most UP_MAX_LAYER_BLOCKS). */
  int32_t (*layer_blocks)(const up_model_config *cfg, int32_t layer, up_block_kind blocks[UP_MAX_LAYER_BLOCKS]);
  /* The layer kinds and MLP kinds this architecture runs: false with a message naming
   * the layer otherwise (called by up_model_config_validate, so layer_blocks may assert). */
  bool (*check_config)(const up_model_config *cfg, char *err, size_t err_size);
} up_arch;

/* A weight of one model: its line of the table at a layer (-1: model-wide). */
typedef struct up_tensor_desc {
  const up_tensor_spec *spec;
  up_tensor_role role;
  int32_t layer;   /* -1: model-wide */
  int32_t expert;  /* -1: not one expert's (MoE architectures address experts here) */
  int64_t rows, cols;
} up_tensor_desc;

/* A weight part as a checkpoint stores it, resolved for one model: what the readers
 * in engine/checkpoint/ load by. */
typedef struct up_file_tensor {
  up_tensor_role role; /* the weight it fills */
  int32_t layer, expert;
  int32_t part;
  int64_t row_offset;  /* first row of the weight it fills */
  int64_t rows, cols;  /* engine layout; rows 1: stored as a vector */
  char gguf_name[96];
  char hf_name[128];
  int32_t gguf_rotary_head_dim; /* > 0: GGUF rows are in rotary-pair order per head of this size */
  bool hf_one_plus;             /* Hugging Face stores w where the engine multiplies by 1 + w */
} up_file_tensor;

typedef enum up_tensor_names {
  UP_NAMES_GGUF = 0,
  UP_NAMES_HF = 1,
} up_tensor_names;

/* The registry (arch_registry.c): NULL when no architecture has that name. */
const up_arch *up_arch_find(const char *name);
int32_t up_arch_count(void);
const up_arch *up_arch_at(int32_t index);
/* The architecture a config names; fatal when unregistered (configs are validated). */
const up_arch *up_arch_of(const up_model_config *cfg);

int64_t up_dim_size(const up_model_config *cfg, up_dim dim);

/* The blocks of a layer (the architecture's order); returns how many. */
int32_t up_arch_layer_blocks(const up_model_config *cfg, int32_t layer, up_block_kind blocks[UP_MAX_LAYER_BLOCKS]);
/* The weights of layer `layer` (-1: the model-wide ones) in table order; returns how many. */
int32_t up_arch_layer_tensors(const up_model_config *cfg, int32_t layer, up_tensor_desc out[UP_MAX_LAYER_TENSORS]);
/* The input norm of a block (the weight its pre-norm reads). */
up_tensor_role up_block_input_norm(up_block_kind block);

/* Part `part` of weight `role` at `layer` as checkpoints store it. A tied model's LM
 * head resolves to the embedding's tensor. False when the model has no such part. */
bool up_arch_file_tensor(const up_model_config *cfg, up_tensor_role role, int32_t layer, int32_t part,
                         up_file_tensor *out);
/* The part a checkpoint tensor name denotes in this model; false when none. */
bool up_arch_find_file_tensor(const up_model_config *cfg, up_tensor_names names, const char *name,
                              up_file_tensor *out);

#endif
