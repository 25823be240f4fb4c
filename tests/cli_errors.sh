#!/usr/bin/env bash
# cli_errors.sh — bad command lines end with exit code 2, a message naming the
# problem, and no results file. Usage: cli_errors.sh BINARY TINY_GGUF (a small GGUF
# checkpoint, for --eval and --model PATH; those cases are left out without it)
set -u
bin=$(realpath "$1")
tiny=${2:+$(realpath "$2")}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
failures=0
total=0

expect_error() {
  local pattern=$1; shift
  total=$((total + 1))
  "$bin" "$@" -o "$work/out.h5" >"$work/stdout" 2>"$work/stderr"
  local rc=$?
  if [[ $rc -ne 2 ]]; then
    echo "FAIL: '$*' exited $rc, expected 2"; failures=$((failures + 1))
  elif ! grep -q -- "$pattern" "$work/stderr"; then
    echo "FAIL: '$*' stderr lacks '$pattern':"; cat "$work/stderr"; failures=$((failures + 1))
  elif [[ -e "$work/out.h5" || -d "$work/results" ]]; then
    echo "FAIL: '$*' left a results file behind"; failures=$((failures + 1))
  else
    echo "ok: '$*' -> $(head -n1 "$work/stderr")"
  fi
  rm -f "$work/out.h5"
}

expect_error "--no-such-flag" --no-such-flag
expect_error "--ctx" --ctx 4q
expect_error "--concurrency" --concurrency 1,,4
expect_error "--uniprefill-p" --uniprefill-p 1.5
expect_error "unknown preset" --model llama-9000
expect_error "unknown method" --method dense,sparse
expect_error "drop layer" --method uniprefill:layers=3+40
expect_error "--layers" --model tiny-llama --layers 99
expect_error "GiB" --model llama-3.1-70b --ctx 1k --backend cpu
expect_error "--backend" --backend tpu
expect_error "picks a CUDA kernel, but this rank runs on the cpu backend" --backend cpu --attention-kernel tma
# --kernels: flags, cases the model cannot run, memory.
expect_error "--kernel-tokens needs --kernels" --kernel-tokens 4k
expect_error "--kernel-tokens" --kernels --kernel-tokens 0
expect_error "--kernel-cases" --kernels --kernel-cases gemm,softmax
expect_error "--kernel-batches" --kernels --kernel-batches 4x
expect_error "--kernel-repeats" --kernels --kernel-repeats 0
expect_error "cannot be combined" --kernels --method dense
expect_error "sink + last_q" --kernels --backend cpu --ctx 200
expect_error "context of" --kernels --backend cpu --ctx 256k --kernel-cases attention
expect_error "GiB" --kernels --backend cpu --model llama-3.1-70b --kernel-tokens 1M --kernel-cases gemm

# --eval: it needs a checkpoint, runs no sweep, and checks its own flags.
expect_error "--eval needs --model PATH: a trained checkpoint" --eval niah_single
expect_error "--eval needs --model PATH: a trained checkpoint" --eval niah_single --model tiny-llama
mkdir tiny-llama  # a preset name stays a preset where a directory of that name exists
expect_error "--eval needs --model PATH: a trained checkpoint" --eval niah_single --model tiny-llama
rmdir tiny-llama
expect_error "--eval and --concurrency cannot be combined" --eval niah_single --concurrency 2
expect_error "--eval and --kernels cannot be combined" --eval niah_single --kernels
expect_error "--eval and --trace cannot be combined" --eval niah_single --trace trace.csv
expect_error "--eval-samples needs --eval" --eval-samples 2
expect_error "--eval-batch: '0' must be >= 1" --eval niah_single --eval-batch 0
expect_error "--eval-batch: '257' must be <= 256" --eval niah_single --eval-batch 257
expect_error "--chat-template: 'bogus' is not one of chatml, llama3, llama2, plain" --eval niah_single \
  --chat-template bogus
# Checkpoints that cannot be opened name the path (the sweep and --eval open them apart).
expect_error "/nonexistent.gguf: no such file or directory" --model /nonexistent.gguf
expect_error "/nonexistent.gguf: no such file or directory" --eval niah_single --model /nonexistent.gguf
mkdir hf-no-weights
echo '{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8, "intermediate_size": 16,
  "num_attention_heads": 2, "num_hidden_layers": 1, "vocab_size": 32, "max_position_embeddings": 64,
  "rms_norm_eps": 1e-06}' \
  >hf-no-weights/config.json
expect_error "hf-no-weights: no model.safetensors.index.json, model.safetensors or other .safetensors file" \
  --model hf-no-weights --ctx 32
if [[ -n "$tiny" ]]; then
  expect_error "unknown eval task 'bogus_task'" --eval bogus_task --model "$tiny"
  expect_error "at most llama-2-tiny-random's context of 4096 tokens" --eval niah_single --model "$tiny" --ctx 1M
  expect_error "a checkpoint ($tiny) keeps its own depth" --model "$tiny" --layers 3
  # Cut in the metadata (the sweep), and in the tensor data (--eval).
  head -c 100000 "$tiny" >cut-metadata.gguf
  head -c $(( $(stat -c %s "$tiny") - 1000 )) "$tiny" >cut-data.gguf
  expect_error "cut-metadata.gguf: metadata 'tokenizer.ggml.tokens'" --model cut-metadata.gguf --ctx 256
  expect_error "cut-data.gguf: tensor '.*': data .* lies beyond the end of the file" --eval niah_single \
    --model cut-data.gguf --ctx 256
fi

echo "$(( total - failures )) passed, $failures failed"
[[ $failures -eq 0 ]]
