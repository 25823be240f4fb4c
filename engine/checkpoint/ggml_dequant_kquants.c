/* ggml_dequant_kquants.c — fp32 conversion of ggml's k-quant super-blocks of 256
 * elements that GGUF files of the Q4_K_M/Q5_K_M/Q6_K families use: Q4_K (eight
 * sub-blocks of 32 with a 6-bit scale and a 6-bit min each, x = d*sc*q - dmin*m) and
 * Q6_K (sixteen sub-blocks of 16 with a signed 8-bit scale, x = d*sc*(q - 32)). The
 * layouts are ggml's (../shared/HYBRIDS.md A.6); sizes are checked by the caller
 * (ggml_dequant.c), so each decoder reads exactly n_blocks whole blocks. */
#include "engine/checkpoint/ggml_dequant_internal.h"

#include "core/float16.h"

/* Scale and min of Q4_K sub-block j (0..7) from the 12 packed bytes: sub-blocks 0..3
 * keep them in the low 6 bits of bytes j and j+4; 4..7 put their low 4 bits in the
 * nibbles of byte j+4 and their top 2 bits in the spare bits 6-7 of bytes j-4 and j. */
static void q4_k_scale_min(const uint8_t *scales, int j, int *scale, int *min) {
  if (j < 4) {
    *scale = scales[j] & 63;
    *min = scales[j + 4] & 63;
  } else {
    *scale = (scales[j + 4] & 0x0f) | (scales[j - 4] >> 6) << 4;
    *min = (scales[j + 4] >> 4) | (scales[j] >> 6) << 4;
  }
}

void up_ggml_dequantize_q4_k(const uint8_t *src, float *dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; b++, src += UP_Q4_K_BLOCK_BYTES, dst += UP_QK_K) {
    const float d = up_fp16_to_f32(up_ggml_load_u16(src));
    const float dmin = up_fp16_to_f32(up_ggml_load_u16(src + 2));
    const uint8_t *scales = src + 4, *q = src + 16;
    /* Each 32 bytes of q hold two sub-blocks: the low nibbles, then the high ones. */
    for (int pair = 0; pair < 4; pair++, q += 32) {
      int sc_lo, m_lo, sc_hi, m_hi;
      q4_k_scale_min(scales, 2 * pair, &sc_lo, &m_lo);
      q4_k_scale_min(scales, 2 * pair + 1, &sc_hi, &m_hi);
      const float d_lo = d * (float)sc_lo, min_lo = dmin * (float)m_lo;
      const float d_hi = d * (float)sc_hi, min_hi = dmin * (float)m_hi;
      float *y = dst + 64 * pair;
      for (int l = 0; l < 32; l++) {
        y[l] = d_lo * (float)(q[l] & 0x0f) - min_lo;
        y[l + 32] = d_hi * (float)(q[l] >> 4) - min_hi;
      }
    }
  }
}

void up_ggml_dequantize_q6_k(const uint8_t *src, float *dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; b++, src += UP_Q6_K_BLOCK_BYTES, dst += UP_QK_K) {
    const float d = up_fp16_to_f32(up_ggml_load_u16(src + UP_Q6_K_BLOCK_BYTES - 2));
    /* Two halves of 128: each reads 64 bytes of low nibbles, 32 of high 2-bit pairs and
     * 8 scales; one (ql, qh) pair position l feeds four elements 32 apart. */
    for (int half = 0; half < 2; half++) {
      const uint8_t *ql = src + 64 * half;
      const uint8_t *qh = src + UP_QK_K / 2 + 32 * half;
      const int8_t *sc = (const int8_t *)(src + UP_QK_K / 2 + UP_QK_K / 4) + 8 * half;
      float *y = dst + 128 * half;
      for (int l = 0; l < 32; l++) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0x0f) | ((qh[l] >> 0) & 3) << 4) - 32;
        const int q2 = ((ql[l + 32] & 0x0f) | ((qh[l] >> 2) & 3) << 4) - 32;
        const int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
        const int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
        y[l] = d * (float)sc[is] * (float)q1;
        y[l + 32] = d * (float)sc[is + 2] * (float)q2;
        y[l + 64] = d * (float)sc[is + 4] * (float)q3;
        y[l + 96] = d * (float)sc[is + 6] * (float)q4;
      }
    }
  }
}
