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
  /* Qwen3-Next (../shared/HYBRIDS.md C.3, C.7, C.8) */
  UP_TENSOR_ATTN_GATE,      /* [n_heads * head_dim][hidden]: the attention output gate's projection */
  UP_TENSOR_GDN_QKVZ,       /* [q of every key head; k; v of every value head; z][hidden]: one GEMM */
  UP_TENSOR_GDN_BA,         /* [b of every value head; a of every value head][hidden] */
  UP_TENSOR_GDN_CONV,       /* [q, k, v channels][conv width]: depthwise causal conv, tap width-1 = current token */
  UP_TENSOR_GDN_A_LOG,      /* [value heads]: decay rate A = exp(A_log) */
  UP_TENSOR_GDN_DT_BIAS,    /* [value heads] */
  UP_TENSOR_GDN_NORM,       /* [head dim]: gated RMSNorm of each value head, plain w (never 1 + w) */
  UP_TENSOR_GDN_OUT,        /* [hidden][value heads * head dim] */
  UP_TENSOR_MOE_ROUTER,     /* [experts][hidden] */
  UP_TENSOR_MOE_GATE_UP,    /* [experts][gate rows; up rows][hidden]: expert e's SwiGLU input, one GEMM */
  UP_TENSOR_MOE_DOWN,       /* [experts][hidden][moe intermediate] */
  UP_TENSOR_SHARED_GATE_UP, /* [gate rows; up rows][hidden]: the shared expert */
  UP_TENSOR_SHARED_DOWN,    /* [hidden][shared intermediate] */
  UP_TENSOR_SHARED_GATE,    /* [hidden]: one logit per token; sigmoid of it scales the shared expert */
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
  UP_BLOCK_DELTANET,  /* Gated DeltaNet: linear attention with a recurrent state per sequence (Qwen3-Next) */
  UP_BLOCK_MOE,       /* routed SwiGLU experts plus a sigmoid-gated shared expert (Qwen3-Next) */
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
  /* Gated DeltaNet and MoE (Qwen3-Next) */
  UP_DIM_GDN_KEY,      /* linear key heads x linear head dim */
  UP_DIM_GDN_VALUE,    /* linear value heads x linear head dim (v, z, the output) */
  UP_DIM_GDN_CONV,     /* q, k and v channels: 2 GDN_KEY + GDN_VALUE */
  UP_DIM_GDN_QKVZ,     /* GDN_CONV + GDN_VALUE */
  UP_DIM_GDN_HEADS,    /* linear value heads: one b, a, A_log, dt_bias each */
  UP_DIM_GDN_BA,       /* 2 GDN_HEADS */
  UP_DIM_GDN_HEAD_DIM, /* linear head dim */
  UP_DIM_CONV_WIDTH,   /* conv taps */
  UP_DIM_EXPERTS,      /* routed experts */
  UP_DIM_MOE_INTER,    /* a routed expert's intermediate */
  UP_DIM_MOE_GATE_UP,  /* 2 MOE_INTER */
  UP_DIM_SHARED_INTER, /* the shared expert's intermediate */
  UP_DIM_SHARED_GATE_UP, /* 2 SHARED_INTER */
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
  UP_STREAM_ATTN_GATE = 7,
  UP_STREAM_GDN_QKVZ = 8,
  UP_STREAM_GDN_BA = 9,
  UP_STREAM_GDN_CONV = 10,
  UP_STREAM_GDN_A_LOG = 11,
  UP_STREAM_GDN_DT_BIAS = 12,
  UP_STREAM_GDN_OUT = 13,
  UP_STREAM_MOE_ROUTER = 14,
  UP_STREAM_SHARED_GATE_UP = 15,
  UP_STREAM_SHARED_DOWN = 16,
  UP_STREAM_SHARED_GATE = 17,
  UP_STREAM_MOE_GATE_UP = 18,
  UP_STREAM_MOE_DOWN = 19,
};

/* Which rows of the stored tensor a part takes, in engine order (up_arch_stored_row).
 * Qwen3-Next's checkpoints interleave what the engine keeps apart: q_proj holds
 * [query | gate] per attention head; in_proj_qkvz holds [q | k | v | z] per key head
 * (value heads grouped, j = 2g + s for 2 value heads per key head); in_proj_ba holds
 * [b | a] per key head (HYBRIDS.md C.3, C.7, C.10). */
typedef enum up_row_order {
  UP_ROWS_AS_STORED = 0,
  UP_ROWS_HEAD_PAIR_FIRST,  /* the first head_dim rows of every 2 head_dim (q_proj's queries) */
  UP_ROWS_HEAD_PAIR_SECOND, /* the second head_dim rows of every 2 head_dim (q_proj's gates) */
  UP_ROWS_GDN_QKV,          /* per-key-head [q|k|v|z] groups -> every q, every k, every v */
  UP_ROWS_GDN_Z,            /* per-key-head [q|k|v|z] groups -> every z */
  UP_ROWS_GDN_B,            /* per-key-head [b|a] groups -> every b */
  UP_ROWS_GDN_A,            /* per-key-head [b|a] groups -> every a */
} up_row_order;

/* One checkpoint tensor a weight is made of: its rows (the weight's columns), its
 * name stem in each format, whether llama.cpp's converter stored its rows with
 * rotary pairs adjacent (the engine rotates halves; the GGUF reader puts rows back),
 * and whether Hugging Face stores w for a norm that multiplies by 1 + w (Gemma: the
 * loader adds the 1; llama.cpp's converter already did for GGUF). */
typedef struct up_tensor_part_spec {
  up_dim rows;
  const char *gguf; /* "attn_q" -> blk.<layer>.attn_q.weight; model-wide "token_embd" -> token_embd.weight */
  const char *hf;   /* "self_attn.q_proj" -> <hf_layer_prefix><layer>.self_attn.q_proj.weight; in an
                     * expert weight's part, "*" stands for the expert ("mlp.experts.*.gate_proj") */
  bool gguf_rotary_pairs;
  bool hf_one_plus;
} up_tensor_part_spec;

/* What a part of some architectures' weights needs beyond its table line (Qwen3-Next):
 * an architecture lists these apart (up_arch.part_layouts), so the tables of the others
 * stay as they are; a part without a line is stored as is, named with ".weight". */
typedef struct up_tensor_part_layout {
  up_tensor_role role;
  int32_t part;
  up_row_order gguf_order, hf_order; /* rows taken from the stored tensor in each format */
  bool bare_name; /* the stored name is the stem itself, no ".weight" (A_log, dt_bias, ssm_dt.bias) */
} up_tensor_part_layout;

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
  /* Parts stored in another row order or under a bare name (NULL: none). */
  const up_tensor_part_layout *part_layouts;
  int32_t n_part_layouts;
  /* Weights that are stacks of n_experts copies of their table shape, the parts
   * stacked within each copy (NULL: none). */
  const up_tensor_role *expert_stacks;
  int32_t n_expert_stacks;
} up_arch;

/* A weight of one model: its line of the table at a layer (-1: model-wide). */
typedef struct up_tensor_desc {
  const up_tensor_spec *spec;
  up_tensor_role role;
  int32_t layer;   /* -1: model-wide */
  int32_t expert;  /* -1: not one expert's (MoE architectures address experts here) */
  int32_t n_experts; /* a stack of this many experts' copies of the table shape; 0: not a stack */
  int64_t rows, cols; /* the whole weight: a stack of experts counts every expert's rows */
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
  up_row_order gguf_order, hf_order; /* which stored rows, in engine order (up_arch_stored_row) */
  /* A stack of experts: `experts` copies of expert_rows engine rows, this part filling
   * rows row_offset .. row_offset + rows of each (HF: one tensor per expert, its name
   * with "*" for the expert; GGUF: one tensor of every expert's rows). 0: not experts. */
  int32_t experts;
  int64_t expert_rows;
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

/* The experts a weight of `role` stacks in this model (the architecture's expert_stacks):
 * cfg->n_experts for a stack, 0 for a weight of one copy (up_tensor_desc.n_experts). */
int32_t up_arch_stack_experts(const up_model_config *cfg, up_tensor_role role);
/* Copies of the table shape a weight holds from its stack count (up_tensor_desc.n_experts,
 * up_file_tensor.experts): one per expert of a stack, one for a weight that is no stack
 * (count 0), so every size and loop over copies reads the same. */
static inline int32_t up_tensor_copies(int32_t stack_experts) { return stack_experts > 0 ? stack_experts : 1; }

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
/* The stored tensor's row that engine row `row` of a part in row order `order` comes
 * from (UP_ROWS_AS_STORED: the same row). */
int64_t up_arch_stored_row(const up_model_config *cfg, up_row_order order, int64_t row);
/* The part a checkpoint tensor name denotes in this model; false when none. */
bool up_arch_find_file_tensor(const up_model_config *cfg, up_tensor_names names, const char *name,
                              up_file_tensor *out);

#endif
