/* qwen3_next_to_gguf.c — writes a tiny Qwen3-Next fixture (a Hugging Face directory under
 * tests/data/qwen3_next/) as the qwen3next GGUF llama.cpp's converter would make of it
 * (tests/qwen3_next_gguf.h), so the engine's GGUF path is checked against transformers'
 * logits too (tests/qwen3_next_fixture_check.sh).
 *   qwen3_next_to_gguf HF_DIR OUT.gguf [--legacy | --fused]
 * (--legacy: blk.N.ssm_in, no attn_qkv/attn_gate; --fused: attention attn_qkv, ffn_gate_up_exps) */
#include <stdio.h>
#include <string.h>

#include "tests/qwen3_next_gguf.h"
#include "tests/safetensors_writer.h"

int main(int argc, char **argv) {
  const bool legacy = argc == 4 && strcmp(argv[3], "--legacy") == 0;
  const bool fused = argc == 4 && strcmp(argv[3], "--fused") == 0;
  if (argc < 3 || argc > 4 || (argc == 4 && !legacy && !fused)) {
    fprintf(stderr, "usage: qwen3_next_to_gguf HF_DIR OUT.gguf [--legacy | --fused]\n");
    return 2;
  }
  gguf_buf file = qn_gguf_from_hf(argv[1], legacy ? QN_GGUF_LEGACY : fused ? QN_GGUF_FUSED : QN_GGUF_SPLIT);
  write_file_or_die(argv[2], file.data, file.len);
  free(file.data);
  return 0;
}
