/* qwen3_next_to_gguf.c — writes a tiny Qwen3-Next fixture (a Hugging Face directory under
 * tests/data/qwen3_next/) as the qwen3next GGUF llama.cpp's converter would make of it
 * (tests/qwen3_next_gguf.h), so the engine's GGUF path is checked against transformers'
 * logits too (tests/qwen3_next_fixture_check.sh), and a truncated one is refused
 * (tests/qwen3_next_bad_checkpoint.sh).
 *   qwen3_next_to_gguf HF_DIR OUT.gguf [--legacy | --fused] [--leave-out TENSOR]
 * (--legacy: blk.N.ssm_in, no attn_qkv/attn_gate; --fused: attention attn_qkv, ffn_gate_up_exps;
 *  --leave-out: the file without that tensor) */
#include <stdio.h>
#include <string.h>

#include "tests/qwen3_next_gguf.h"
#include "tests/safetensors_writer.h"

int main(int argc, char **argv) {
  qn_gguf_layout layout = QN_GGUF_SPLIT;
  const char *leave_out = NULL;
  bool ok = argc >= 3;
  for (int i = 3; ok && i < argc; ++i) {
    if (strcmp(argv[i], "--legacy") == 0) layout = QN_GGUF_LEGACY;
    else if (strcmp(argv[i], "--fused") == 0) layout = QN_GGUF_FUSED;
    else if (strcmp(argv[i], "--leave-out") == 0 && i + 1 < argc) leave_out = argv[++i];
    else ok = false;
  }
  if (!ok) {
    fprintf(stderr, "usage: qwen3_next_to_gguf HF_DIR OUT.gguf [--legacy | --fused] [--leave-out TENSOR]\n");
    return 2;
  }
  gguf_buf file = qn_gguf_from_hf_with(argv[1], (qn_gguf_options){.layout = layout, .leave_out = leave_out});
  write_file_or_die(argv[2], file.data, file.len);
  free(file.data);
  return 0;
}
