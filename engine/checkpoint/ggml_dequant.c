/* ggml_dequant.c — block layouts of the accepted ggml types and their conversion to
 * fp32. Layouts follow ggml: Q8_0 is an fp16 scale d and 32 int8 q (x = q*d); Q4_0 is
 * d and 16 bytes of nibbles (x = (q-8)*d); Q4_1 is d, an fp16 minimum m and 16 bytes of
 * nibbles (x = q*d + m). In both Q4 types byte j holds element j in its low nibble and
 * element j+16 in its high nibble; Q5_0 adds a fifth bit per element from a 32-bit mask.
 * The k-quants (Q4_K, Q6_K) live in ggml_dequant_kquants.c. Every decoder here is
 * handed whole blocks whose byte count the caller checked against the layout. */
#include "engine/checkpoint/ggml_dequant.h"

#include "core/float16.h"
#include "engine/checkpoint/ggml_dequant_internal.h"

#include <stdio.h>
#include <string.h>

#define QK 32 /* elements per block of the Qn_0 / Qn_1 types */

typedef struct type_layout {
  up_ggml_type type;
  const char *name;
  int64_t block_size;
  uint64_t block_bytes;
} type_layout;

static const type_layout g_layouts[] = {
    {UP_GGML_F32, "F32", 1, 4},
    {UP_GGML_F16, "F16", 1, 2},
    {UP_GGML_BF16, "BF16", 1, 2},
    {UP_GGML_Q8_0, "Q8_0", QK, 2 + QK},
    {UP_GGML_Q4_0, "Q4_0", QK, 2 + QK / 2},
    {UP_GGML_Q4_1, "Q4_1", QK, 2 + 2 + QK / 2},
    {UP_GGML_Q5_0, "Q5_0", QK, 2 + 4 + QK / 2},
    {UP_GGML_Q4_K, "Q4_K", UP_QK_K, UP_Q4_K_BLOCK_BYTES},
    {UP_GGML_Q6_K, "Q6_K", UP_QK_K, UP_Q6_K_BLOCK_BYTES},
};

/* Names of the ggml types this reader does not decode, so a refusal can say which
 * format a file uses (ggml's numbering; gaps are ids ggml retired). */
static const char *const g_other_type_names[] = {
    [4] = "Q4_2 (retired)", [5] = "Q4_3 (retired)", [7] = "Q5_1", [9] = "Q8_1",
    [10] = "Q2_K", [11] = "Q3_K", [13] = "Q5_K", [15] = "Q8_K", [16] = "IQ2_XXS", [17] = "IQ2_XS",
    [18] = "IQ3_XXS", [19] = "IQ1_S", [20] = "IQ4_NL", [21] = "IQ3_S", [22] = "IQ2_S", [23] = "IQ4_XS",
    [24] = "I8", [25] = "I16", [26] = "I32", [27] = "I64", [28] = "F64", [29] = "IQ1_M",
    [34] = "TQ1_0", [35] = "TQ2_0", [39] = "MXFP4", [40] = "NVFP4", [41] = "Q1_0",
};

static const type_layout *layout_of(uint32_t type_id) {
  for (size_t i = 0; i < sizeof g_layouts / sizeof g_layouts[0]; i++) {
    if ((uint32_t)g_layouts[i].type == type_id) return &g_layouts[i];
  }
  return NULL;
}

bool up_ggml_type_is_known(uint32_t type_id) { return layout_of(type_id) != NULL; }

const char *up_ggml_type_id_name(uint32_t type_id) {
  const type_layout *l = layout_of(type_id);
  if (l) return l->name;
  if (type_id < sizeof g_other_type_names / sizeof g_other_type_names[0] && g_other_type_names[type_id])
    return g_other_type_names[type_id];
  return "unknown";
}

const char *up_ggml_accepted_type_names(void) { return "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q6_K"; }

const char *up_ggml_type_name(up_ggml_type type) {
  const type_layout *l = layout_of((uint32_t)type);
  return l ? l->name : "unknown";
}

int64_t up_ggml_block_size(up_ggml_type type) {
  const type_layout *l = layout_of((uint32_t)type);
  return l ? l->block_size : 0;
}

uint64_t up_ggml_block_bytes(up_ggml_type type) {
  const type_layout *l = layout_of((uint32_t)type);
  return l ? l->block_bytes : 0;
}

bool up_ggml_bytes_for(up_ggml_type type, int64_t n_elements, uint64_t *out) {
  const type_layout *l = layout_of((uint32_t)type);
  if (!l || n_elements < 0 || n_elements % l->block_size != 0) return false;
  uint64_t blocks = (uint64_t)(n_elements / l->block_size);
  if (blocks != 0 && l->block_bytes > UINT64_MAX / blocks) return false;
  *out = blocks * l->block_bytes;
  return true;
}

uint16_t up_ggml_load_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static void dequantize_q8_0(const uint8_t *src, float *dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; b++, src += 2 + QK, dst += QK) {
    float d = up_fp16_to_f32(up_ggml_load_u16(src));
    for (int j = 0; j < QK; j++) dst[j] = (float)(int8_t)src[2 + j] * d;
  }
}

static void dequantize_q4_0(const uint8_t *src, float *dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; b++, src += 2 + QK / 2, dst += QK) {
    float d = up_fp16_to_f32(up_ggml_load_u16(src));
    const uint8_t *q = src + 2;
    for (int j = 0; j < QK / 2; j++) {
      dst[j] = (float)((int)(q[j] & 0x0f) - 8) * d;
      dst[j + QK / 2] = (float)((int)(q[j] >> 4) - 8) * d;
    }
  }
}

static void dequantize_q4_1(const uint8_t *src, float *dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; b++, src += 4 + QK / 2, dst += QK) {
    float d = up_fp16_to_f32(up_ggml_load_u16(src));
    float m = up_fp16_to_f32(up_ggml_load_u16(src + 2));
    const uint8_t *q = src + 4;
    for (int j = 0; j < QK / 2; j++) {
      dst[j] = (float)(q[j] & 0x0f) * d + m;
      dst[j + QK / 2] = (float)(q[j] >> 4) * d + m;
    }
  }
}

/* The fifth bit of element j comes from bit j of the 32-bit little-endian mask qh:
 * bits 0..15 for the low nibbles (elements 0..15), 16..31 for the high ones. */
static void dequantize_q5_0(const uint8_t *src, float *dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; b++, src += 6 + QK / 2, dst += QK) {
    const float d = up_fp16_to_f32(up_ggml_load_u16(src));
    const uint32_t qh = (uint32_t)src[2] | (uint32_t)src[3] << 8 | (uint32_t)src[4] << 16 | (uint32_t)src[5] << 24;
    const uint8_t *q = src + 6;
    for (int j = 0; j < QK / 2; j++) {
      const int lo = (q[j] & 0x0f) | (int)((qh >> j) & 1u) << 4;
      const int hi = (q[j] >> 4) | (int)((qh >> (j + 16)) & 1u) << 4;
      dst[j] = (float)(lo - 16) * d;
      dst[j + QK / 2] = (float)(hi - 16) * d;
    }
  }
}

bool up_ggml_dequantize(up_ggml_type type, const void *src, float *dst, int64_t n) {
  const type_layout *l = layout_of((uint32_t)type);
  if (!l || n < 0 || n % l->block_size != 0) return false;
  const uint8_t *bytes = src;
  switch (type) {
  case UP_GGML_F32:
    memcpy(dst, bytes, sizeof(float) * (size_t)n); /* little-endian files on little-endian hosts */
    return true;
  case UP_GGML_F16:
    for (int64_t i = 0; i < n; i++) dst[i] = up_fp16_to_f32(up_ggml_load_u16(bytes + 2 * i));
    return true;
  case UP_GGML_BF16:
    for (int64_t i = 0; i < n; i++) dst[i] = up_bf16_to_f32(up_ggml_load_u16(bytes + 2 * i));
    return true;
  case UP_GGML_Q8_0: dequantize_q8_0(bytes, dst, n / QK); return true;
  case UP_GGML_Q4_0: dequantize_q4_0(bytes, dst, n / QK); return true;
  case UP_GGML_Q4_1: dequantize_q4_1(bytes, dst, n / QK); return true;
  case UP_GGML_Q5_0: dequantize_q5_0(bytes, dst, n / QK); return true;
  case UP_GGML_Q4_K: up_ggml_dequantize_q4_k(bytes, dst, n / UP_QK_K); return true;
  case UP_GGML_Q6_K: up_ggml_dequantize_q6_k(bytes, dst, n / UP_QK_K); return true;
  }
  return false;
}

bool up_ggml_dequantize_checked(up_ggml_type type, const void *src, uint64_t src_bytes, float *dst, int64_t n,
                                const char *what, char *err, size_t err_size) {
  if (!up_ggml_type_is_known((uint32_t)type)) {
    snprintf(err, err_size, "%s: unsupported ggml type %s (id %u; accepted: %s)", what,
             up_ggml_type_id_name((uint32_t)type), (unsigned)type, up_ggml_accepted_type_names());
    return false;
  }
  uint64_t expected_bytes = 0;
  if (!up_ggml_bytes_for(type, n, &expected_bytes) || expected_bytes != src_bytes) {
    snprintf(err, err_size, "%s: %lld elements of type %s (blocks of %lld in %llu bytes) do not make %llu bytes of data",
             what, (long long)n, up_ggml_type_name(type), (long long)up_ggml_block_size(type),
             (unsigned long long)up_ggml_block_bytes(type), (unsigned long long)src_bytes);
    return false;
  }
  if (!up_ggml_dequantize(type, src, dst, n)) {
    snprintf(err, err_size, "%s: cannot convert type %s (id %u) to f32", what, up_ggml_type_name(type), (unsigned)type);
    return false;
  }
  return true;
}

bool up_gguf_tensor_to_f32(const up_gguf_tensor *t, float *out, char *err, size_t err_size) {
  char what[320];
  snprintf(what, sizeof what, "tensor '%s'", t->name);
  return up_ggml_dequantize_checked(t->type, t->data, t->n_bytes, out, t->n_elements, what, err, err_size);
}
