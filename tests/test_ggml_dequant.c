/* test_ggml_dequant.c — the decoders of the quantisation types Gemma 3 GGUFs use (Q5_0,
 * Q4_K, Q6_K beside Q8_0 and F32): real blocks of the 270M checkpoint against the floats
 * gguf-py decodes them to (tests/data/ggml_dequant_fixture.txt, always run); hand-built
 * blocks that pin the bit fields a fixture could miss; refusal of truncated or oversized
 * data and of unknown types before any byte is decoded; and, when the real model is
 * cached, whole tensors against ../shared/HYBRIDS.md A.6's reference values. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/checkpoint/ggml_dequant.h"
#include "engine/checkpoint/gguf.h"
#include "tests/gemma_model.h"

#define FIXTURE UP_TEST_DATA_DIR "/ggml_dequant_fixture.txt"
#define MAX_BLOCK_BYTES 256
#define MAX_BLOCK_ELEMS 256

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* Whether got equals the reference up to a few float32 rounding steps (the reference
 * multiplies in the same order, so most values are bit-identical). */
static bool close_to(float got, float want) {
  return fabsf(got - want) <= 4.0f * FLT_EPSILON * fabsf(want) + 1e-30f;
}

Test(ggml_dequant, real_gemma_blocks_match_gguf_py) {
  FILE *f = fopen(FIXTURE, "r");
  cr_assert_not_null(f, "cannot open %s", FIXTURE);
  static char line[1 << 14];
  int blocks_per_type[32] = {0};
  int n_blocks = 0;
  while (fgets(line, sizeof line, f)) {
    if (line[0] == '#') continue;
    char type_name[16], tensor[128], hex[2 * MAX_BLOCK_BYTES + 2];
    unsigned type_id, block_bytes;
    long block_index;
    cr_assert_eq(sscanf(line, "block %15s %u %127s %ld %u %513s", type_name, &type_id, tensor, &block_index,
                        &block_bytes, hex), 6, "bad fixture line: %.80s", line);
    cr_assert(up_ggml_type_is_known(type_id), "%s: type %s not accepted", tensor, type_name);
    cr_assert_str_eq(up_ggml_type_name((up_ggml_type)type_id), type_name);
    cr_assert_eq(block_bytes, up_ggml_block_bytes((up_ggml_type)type_id), "%s block size", type_name);
    cr_assert_eq(strlen(hex), 2 * (size_t)block_bytes);
    uint8_t raw[MAX_BLOCK_BYTES];
    for (unsigned i = 0; i < block_bytes; i++) raw[i] = (uint8_t)(hex_value(hex[2 * i]) * 16 + hex_value(hex[2 * i + 1]));

    cr_assert_not_null(fgets(line, sizeof line, f), "values line missing after %s block %ld", tensor, block_index);
    cr_assert(strncmp(line, "values ", 7) == 0);
    const int64_t n = up_ggml_block_size((up_ggml_type)type_id);
    float want[MAX_BLOCK_ELEMS], got[MAX_BLOCK_ELEMS];
    char *cursor = line + 7;
    for (int64_t j = 0; j < n; j++) {
      char *end;
      want[j] = strtof(cursor, &end);
      cr_assert(end != cursor, "%s block %ld: %lld values, expected %lld", tensor, block_index, (long long)j,
                (long long)n);
      cursor = end;
    }
    char err[256] = "";
    cr_assert(up_ggml_dequantize_checked((up_ggml_type)type_id, raw, block_bytes, got, n, tensor, err, sizeof err),
              "%s", err);
    for (int64_t j = 0; j < n; j++)
      cr_assert(close_to(got[j], want[j]), "%s (%s) block %ld element %lld: %.9g, gguf-py %.9g", tensor, type_name,
                block_index, (long long)j, got[j], want[j]);
    blocks_per_type[type_id]++;
    n_blocks++;
  }
  fclose(f);
  cr_assert_geq(blocks_per_type[UP_GGML_Q5_0], 3);
  cr_assert_geq(blocks_per_type[UP_GGML_Q8_0], 3);
  cr_assert_geq(blocks_per_type[UP_GGML_Q4_K], 3);
  cr_assert_geq(blocks_per_type[UP_GGML_Q6_K], 3);
  cr_assert_geq(blocks_per_type[UP_GGML_F32], 1);
  cr_assert_gt(n_blocks, 12);
}

Test(ggml_dequant, q5_0_fifth_bit_comes_from_the_mask) {
  /* d = 1; every nibble 0; mask bit j set for j = 0 and j = 16 + 1: element 0 is 16 - 16
   * = 0, element 17 is 0, the others (no fifth bit) are -16. Nibble 0xf in byte 2's low
   * half with bit 2 set makes element 2 = 31 - 16 = 15. */
  uint8_t block[22] = {0x00, 0x3c};
  const uint32_t qh = 1u << 0 | 1u << 17 | 1u << 2;
  for (int i = 0; i < 4; i++) block[2 + i] = (uint8_t)(qh >> (8 * i));
  block[6 + 2] = 0x0f;
  float out[32];
  cr_assert(up_ggml_dequantize(UP_GGML_Q5_0, block, out, 32));
  for (int j = 0; j < 32; j++) {
    const float want = j == 0 || j == 17 ? 0.0f : j == 2 ? 15.0f : -16.0f;
    cr_assert_eq(out[j], want, "element %d: %g", j, out[j]);
  }
}

Test(ggml_dequant, q4_k_upper_sub_blocks_take_the_spare_scale_bits) {
  /* d = 1, dmin = 0.5. Sub-block 5 (elements 160..191, the high nibbles of q[32..63]):
   * scale = low nibble of byte 9 (3) | top bits of byte 1 (2) << 4 = 35; min = high
   * nibble of byte 9 (1) | top bits of byte 5 (1) << 4 = 17. Every nibble is 2, so those
   * elements are 35*2 - 0.5*17 = 61.5; sub-block 0 (scale byte 0 = 0) gives 0. */
  uint8_t block[144] = {0x00, 0x3c, 0x00, 0x38};
  uint8_t *scales = block + 4;
  scales[1] = 2u << 6;
  scales[5] = 1u << 6;
  scales[9] = 0x13;
  memset(block + 16, 0x22, 128);
  float out[256];
  cr_assert(up_ggml_dequantize(UP_GGML_Q4_K, block, out, 256));
  for (int j = 160; j < 192; j++) cr_assert_eq(out[j], 61.5f, "element %d: %g", j, out[j]);
  for (int j = 0; j < 32; j++) cr_assert_eq(out[j], 0.0f, "element %d: %g", j, out[j]);
}

Test(ggml_dequant, q6_k_signed_scales_and_d_last) {
  /* d = 0.5 stored in the last two bytes; scale of sub-block 15 = -2. Elements 240..255
   * come from half 1, group q4 (ql[64+32+l] high nibble, qh[32+l] bits 6-7) with l = 16..31:
   * all ql 0xff and qh 0xff give q = 63 - 32 = 31, so 0.5 * -2 * 31 = -31. */
  uint8_t block[210];
  memset(block, 0xff, 192);
  memset(block + 192, 1, 16);
  block[192 + 15] = (uint8_t)(int8_t)-2;
  block[208] = 0x00, block[209] = 0x38;
  float out[256];
  cr_assert(up_ggml_dequantize(UP_GGML_Q6_K, block, out, 256));
  for (int j = 240; j < 256; j++) cr_assert_eq(out[j], -31.0f, "element %d: %g", j, out[j]);
  for (int j = 0; j < 16; j++) cr_assert_eq(out[j], 15.5f, "element %d: %g", j, out[j]);
}

Test(ggml_dequant, wrong_byte_counts_are_refused_before_decoding) {
  static const up_ggml_type types[] = {UP_GGML_Q5_0, UP_GGML_Q4_K, UP_GGML_Q6_K, UP_GGML_Q8_0, UP_GGML_F32};
  uint8_t raw[2 * MAX_BLOCK_BYTES] = {0};
  float out[2 * MAX_BLOCK_ELEMS];
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
    const up_ggml_type type = types[i];
    const int64_t n = up_ggml_block_size(type);
    const uint64_t bytes = up_ggml_block_bytes(type);
    char err[256] = "";
    for (int j = 0; j < 2 * MAX_BLOCK_ELEMS; j++) out[j] = 7.0f;
    cr_assert_not(up_ggml_dequantize_checked(type, raw, bytes - 1, out, n, "tensor 't'", err, sizeof err));
    cr_assert(strstr(err, "tensor 't'") && strstr(err, up_ggml_type_name(type)), "message: %s", err);
    cr_assert_not(up_ggml_dequantize_checked(type, raw, bytes + 1, out, n, "tensor 't'", err, sizeof err));
    cr_assert_not(up_ggml_dequantize_checked(type, raw, bytes, out, 2 * n, "tensor 't'", err, sizeof err),
                  "two blocks' worth of elements from one block of bytes");
    for (int j = 0; j < 2 * MAX_BLOCK_ELEMS; j++) cr_assert_eq(out[j], 7.0f, "%s: output written on refusal",
                                                                up_ggml_type_name(type));
    if (n > 1) {
      cr_assert_not(up_ggml_dequantize_checked(type, raw, bytes, out, n - 1, "tensor 't'", err, sizeof err),
                    "%s: a partial block", up_ggml_type_name(type));
    }
    cr_assert(up_ggml_dequantize_checked(type, raw, bytes, out, n, "tensor 't'", err, sizeof err), "%s", err);
  }
}

Test(ggml_dequant, unknown_types_are_named) {
  uint8_t raw[176] = {0};
  float out[256];
  char err[256] = "";
  cr_assert_not(up_ggml_dequantize_checked((up_ggml_type)13, raw, sizeof raw, out, 256,
                                           "tensor 'blk.0.ffn_down.weight'", err, sizeof err));
  cr_assert(strstr(err, "tensor 'blk.0.ffn_down.weight': unsupported ggml type Q5_K (id 13; accepted: "),
            "message: %s", err);
  cr_assert_not(up_ggml_dequantize_checked((up_ggml_type)77, raw, 4, out, 1, "tensor 'x'", err, sizeof err));
  cr_assert(strstr(err, "tensor 'x': unsupported ggml type unknown (id 77"), "message: %s", err);
  cr_assert_str_eq(up_ggml_type_id_name(14), "Q6_K");
  cr_assert_str_eq(up_ggml_type_id_name(23), "IQ4_XS");
}

Test(ggml_dequant, k_quant_and_q5_0_sizes) {
  uint64_t bytes = 0;
  cr_assert_eq(up_ggml_block_bytes(UP_GGML_Q5_0), 22);
  cr_assert_eq(up_ggml_block_bytes(UP_GGML_Q4_K), 144);
  cr_assert_eq(up_ggml_block_bytes(UP_GGML_Q6_K), 210);
  cr_assert_eq(up_ggml_block_size(UP_GGML_Q4_K), 256);
  cr_assert(up_ggml_bytes_for(UP_GGML_Q5_0, 640, &bytes));
  cr_assert_eq(bytes, 440); /* a 640-wide Gemma 270M row (A.6) */
  cr_assert(up_ggml_bytes_for(UP_GGML_Q4_K, 1024, &bytes));
  cr_assert_eq(bytes, 576);
  cr_assert(up_ggml_bytes_for(UP_GGML_Q6_K, 2048, &bytes));
  cr_assert_eq(bytes, 1680);
  cr_assert_not(up_ggml_bytes_for(UP_GGML_Q4_K, 640, &bytes), "k-quant rows are whole 256-blocks");
}

/* --- the real checkpoint ----------------------------------------------------------------- */

typedef struct reference_tensor {
  const char *name;
  up_ggml_type type;
  float first[6]; /* row 0 */
  double sum;     /* of every weight */
} reference_tensor;

/* ../shared/HYBRIDS.md A.6, computed there with gguf.quants.dequantize (6 printed digits). */
static const reference_tensor g_reference[] = {
    {"blk.0.attn_q.weight", UP_GGML_Q5_0, {-0.003784f, 0.007568f, -0.015137f, -0.005676f, 0.011353f, 0.009460f},
     -51.693369},
    {"blk.0.attn_v.weight", UP_GGML_Q8_0, {0.006088f, -0.039574f, -0.031456f, -0.056824f, -0.042618f, 0.054794f},
     1.554487},
    {"blk.2.attn_v.weight", UP_GGML_Q5_0, {-0.017548f, -0.021057f, -0.007019f, 0.010529f, -0.007019f, -0.0f}, 0.765915},
    {"blk.0.attn_output.weight", UP_GGML_Q4_K, {-0.015705f, 0.049669f, -0.037497f, 0.060565f, -0.004809f, 0.038774f},
     -1.833076},
    {"blk.0.ffn_down.weight", UP_GGML_Q6_K, {0.005212f, 0.021715f, -0.025190f, 0.013898f, 0.026927f, -0.015635f},
     6.480194},
    {"blk.2.ffn_down.weight", UP_GGML_Q4_K, {-0.016777f, -0.004513f, -0.004513f, -0.020865f, 0.020015f, -0.037217f},
     3.058990},
};

Test(ggml_dequant, gemma3_270m_tensors_match_hybrids_a6) {
  up_gguf *g = up_test_open_gemma3_270m_or_skip();
  char err[512] = "";
  cr_assert_eq(up_gguf_tensor_count(g), 236);
  for (size_t i = 0; i < sizeof g_reference / sizeof g_reference[0]; i++) {
    const reference_tensor *r = &g_reference[i];
    const up_gguf_tensor *t = up_gguf_find_tensor(g, r->name);
    cr_assert_not_null(t, "%s missing", r->name);
    cr_assert_eq(t->type, r->type, "%s is %s", r->name, up_ggml_type_name(t->type));
    float *w = malloc((size_t)t->n_elements * sizeof *w);
    cr_assert_not_null(w);
    cr_assert(up_gguf_tensor_to_f32(t, w, err, sizeof err), "%s", err);
    for (int j = 0; j < 6; j++)
      cr_assert(fabsf(w[j] - r->first[j]) <= 6e-7f, "%s[0][%d] = %.7f, A.6 says %.6f", r->name, j, w[j], r->first[j]);
    double sum = 0.0;
    for (int64_t j = 0; j < t->n_elements; j++) sum += w[j];
    cr_assert(fabs(sum - r->sum) <= 1e-4 * fabs(r->sum) + 1e-5, "%s: sum %.6f, A.6 says %.6f", r->name, sum, r->sum);
    free(w);
  }

  /* <bos>'s embedding row (Q8_0): the first values and its L2 norm. */
  const up_gguf_tensor *embd = up_gguf_find_tensor(g, "token_embd.weight");
  cr_assert_not_null(embd);
  cr_assert_eq(embd->dims[0], 640);
  const uint64_t row_bytes = 640 / 32 * 34;
  float row[640];
  cr_assert(up_ggml_dequantize_checked(embd->type, (const uint8_t *)embd->data + 2 * row_bytes, row_bytes, row, 640,
                                       "token_embd row 2", err, sizeof err), "%s", err);
  static const float bos_first[6] = {-0.014242f, 0.010567f, 0.013324f, 0.012405f, 0.004824f, -0.003216f};
  double norm = 0.0;
  for (int j = 0; j < 640; j++) norm += (double)row[j] * row[j];
  for (int j = 0; j < 6; j++) cr_assert(fabsf(row[j] - bos_first[j]) <= 6e-7f, "bos[%d] = %.7f", j, row[j]);
  cr_assert(fabs(sqrt(norm) - 1.031615) <= 1e-5, "L2 norm of <bos>'s row %.6f", sqrt(norm));
  up_gguf_close(g);
}
