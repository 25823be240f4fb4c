/* ggml_dequant.c — block layouts of the accepted ggml types and their conversion to
 * fp32. Layouts follow ggml: Q8_0 is an fp16 scale d and 32 int8 q (x = q*d); Q4_0 is
 * d and 16 bytes of nibbles (x = (q-8)*d); Q4_1 is d, an fp16 minimum m and 16 bytes of
 * nibbles (x = q*d + m). In both Q4 types byte j holds element j in its low nibble and
 * element j+16 in its high nibble. */
#include "engine/checkpoint/ggml_dequant.h"

#include "core/float16.h"

#include <stdio.h>
#include <string.h>

#define QK 32 /* elements per block of every Q type accepted */

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
};

static const type_layout *layout_of(uint32_t type_id) {
  for (size_t i = 0; i < sizeof g_layouts / sizeof g_layouts[0]; i++) {
    if ((uint32_t)g_layouts[i].type == type_id) return &g_layouts[i];
  }
  return NULL;
}

bool up_ggml_type_is_known(uint32_t type_id) { return layout_of(type_id) != NULL; }

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

static uint16_t load_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static void dequantize_q8_0(const uint8_t *src, float *dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; b++, src += 2 + QK, dst += QK) {
    float d = up_fp16_to_f32(load_u16(src));
    for (int j = 0; j < QK; j++) dst[j] = (float)(int8_t)src[2 + j] * d;
  }
}

static void dequantize_q4_0(const uint8_t *src, float *dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; b++, src += 2 + QK / 2, dst += QK) {
    float d = up_fp16_to_f32(load_u16(src));
    const uint8_t *q = src + 2;
    for (int j = 0; j < QK / 2; j++) {
      dst[j] = (float)((int)(q[j] & 0x0f) - 8) * d;
      dst[j + QK / 2] = (float)((int)(q[j] >> 4) - 8) * d;
    }
  }
}

static void dequantize_q4_1(const uint8_t *src, float *dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; b++, src += 4 + QK / 2, dst += QK) {
    float d = up_fp16_to_f32(load_u16(src));
    float m = up_fp16_to_f32(load_u16(src + 2));
    const uint8_t *q = src + 4;
    for (int j = 0; j < QK / 2; j++) {
      dst[j] = (float)(q[j] & 0x0f) * d + m;
      dst[j + QK / 2] = (float)(q[j] >> 4) * d + m;
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
    for (int64_t i = 0; i < n; i++) dst[i] = up_fp16_to_f32(load_u16(bytes + 2 * i));
    return true;
  case UP_GGML_BF16:
    for (int64_t i = 0; i < n; i++) dst[i] = up_bf16_to_f32(load_u16(bytes + 2 * i));
    return true;
  case UP_GGML_Q8_0: dequantize_q8_0(bytes, dst, n / QK); return true;
  case UP_GGML_Q4_0: dequantize_q4_0(bytes, dst, n / QK); return true;
  case UP_GGML_Q4_1: dequantize_q4_1(bytes, dst, n / QK); return true;
  }
  return false;
}

bool up_gguf_tensor_to_f32(const up_gguf_tensor *t, float *out, char *err, size_t err_size) {
  uint64_t expected_bytes = 0;
  if (!up_ggml_bytes_for(t->type, t->n_elements, &expected_bytes) || expected_bytes != t->n_bytes) {
    snprintf(err, err_size, "tensor '%s': %lld elements of type %s (id %u) do not make %llu bytes of data",
             t->name, (long long)t->n_elements, up_ggml_type_name(t->type), (unsigned)t->type,
             (unsigned long long)t->n_bytes);
    return false;
  }
  if (!up_ggml_dequantize(t->type, t->data, out, t->n_elements)) {
    snprintf(err, err_size, "tensor '%s': cannot convert type %s (id %u) to f32", t->name,
             up_ggml_type_name(t->type), (unsigned)t->type);
    return false;
  }
  return true;
}
