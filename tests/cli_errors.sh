#!/usr/bin/env bash
# cli_errors.sh — bad command lines end with exit code 2, a message naming the
# problem, and no results file. Usage: cli_errors.sh BINARY TINY_GGUF (a small GGUF
# checkpoint, for --eval and --model PATH; those cases are left out without it)
set -u
bin=$(realpath "$1")
tiny=${2:+$(realpath "$2")}
tests_dir=$(dirname "$(realpath "$0")")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
failures=0
total=0

# Run the binary with "$@"; true when it exited 2 with pattern in its stderr, else
# false after saying why.
exits_2_with() {
  local pattern=$1; shift
  "$bin" "$@" >"$work/stdout" 2>"$work/stderr"
  local rc=$?
  if [[ $rc -ne 2 ]]; then
    echo "FAIL: '$*' exited $rc, expected 2; its stderr:"; head -n 60 "$work/stderr"; return 1
  elif ! grep -q -- "$pattern" "$work/stderr"; then
    echo "FAIL: '$*' stderr lacks '$pattern':"; cat "$work/stderr"; return 1
  fi
}

expect_error() {
  local pattern=$1; shift
  total=$((total + 1))
  if ! exits_2_with "$pattern" "$@" -o "$work/out.h5"; then
    failures=$((failures + 1))
  elif [[ -e "$work/out.h5" || -d "$work/results" ]]; then
    echo "FAIL: '$*' left a results file behind"; failures=$((failures + 1))
  else
    echo "ok: '$*' -> $(head -n1 "$work/stderr")"
  fi
  rm -f "$work/out.h5"
}

# As expect_error, with -o OUT given here: OUT (an input of the run, or a path no file
# can be written to) must be byte for byte what it was, and no temporary file is left.
expect_output_refused() {
  local pattern=$1 out=$2; shift 2
  total=$((total + 1))
  local before; before=$(cksum "$out" 2>/dev/null)
  if ! exits_2_with "$pattern" "$@" -o "$out"; then
    failures=$((failures + 1))
  elif [[ "$(cksum "$out" 2>/dev/null)" != "$before" ]]; then
    echo "FAIL: '$* -o $out' changed $out"; failures=$((failures + 1))
  elif compgen -G "$work/.*.tmp" >/dev/null; then
    echo "FAIL: '$* -o $out' left a temporary file behind"; failures=$((failures + 1))
  else
    echo "ok: '$* -o $out' -> $(head -n1 "$work/stderr")"
  fi
}

expect_error "--no-such-flag" --no-such-flag
expect_error "--ctx" --ctx 4q
expect_error "--concurrency" --concurrency 1,,4
expect_error "--uniprefill-p" --uniprefill-p 1.5
expect_error "unknown preset" --model llama-9000
expect_error "unknown method" --method dense,sparse
expect_error "drop layer" --method uniprefill:layers=3+40
expect_error "option stride: 12 is not 4, 8 or 16" --method dense,xattention:stride=12
expect_error "option gamma" --method flexprefill:gamma=1.5
expect_error "option density" --method minference:density=0
expect_error "table file '/nonexistent/table.txt'" --method minference:table=/nonexistent/table.txt
# The sparse baselines (issue 13): each unknown option and each value out of range names
# the option; a MInference table that does not fit the model's layers and heads names
# the file and the entry.
expect_error "unknown option 'foo' (minference" --method minference:foo=1
expect_error "unknown option 'v' (flexprefill" --method flexprefill:v=512
expect_error "unknown option 'gamma' (xattention" --method xattention:gamma=0.9
expect_error "option gamma: '0' must be in (0, 1]" --method flexprefill:gamma=0
expect_error "option tau: '1.5' must be in \[0, 1\]" --method flexprefill:tau=1.5
expect_error "option tau" --method flexprefill:tau=-0.1
expect_error "option min_budget" --method flexprefill:min_budget=-1
expect_error "option max_budget" --method flexprefill:max_budget=-5
expect_error "option threshold: '1.1' must be in (0, 1]" --method xattention:threshold=1.1
expect_error "option threshold" --method xattention:threshold=0
expect_error "option v: '0' must be >= 1" --method minference:v=0
expect_error "option s: '-3' must be >= 1" --method minference:s=-3
expect_error "option v: '99999999' must be <=" --method minference:v=99999999
expect_error "option stride: '32' must be <= 16" --method xattention:stride=32
expect_error "option stride: 5 is not 4, 8 or 16" --method xattention:stride=5
expect_error "option density: '1.5' must be in (0, 1]" --method flexprefill:density=1.5
expect_error "option density" --method xattention:density=0
echo "0 0 512 2048" >"$work/short_table.txt"
expect_error "table file '$work/short_table.txt' gives 1 of the model's" --method minference:table="$work/short_table.txt"
printf '0 0 512 2048\n999 0 512 2048\n' >"$work/outside_table.txt"
expect_error "table file '$work/outside_table.txt' line 2: layer 999 head 0 is outside" \
  --method minference:table="$work/outside_table.txt"
printf '0 0 512\n' >"$work/bad_line_table.txt"
expect_error "line 1: expected 'LAYER HEAD V S'" --method minference:table="$work/bad_line_table.txt"
printf '0 0 0 2048\n' >"$work/zero_table.txt"
expect_error "sizes v=0 s=2048 must be in" --method minference:table="$work/zero_table.txt"
expect_error "--layers" --model tiny-llama --layers 99
expect_error "breaks model qwen3-next-80b-a3b's layer pattern" --model qwen3-next-80b-a3b --layers 6
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
expect_error "--chat-template: 'bogus' is not one of chatml, llama3, llama2, gemma, plain" --eval niah_single \
  --chat-template bogus
# Checkpoints that cannot be opened name the path (the sweep and --eval open them apart).
expect_error "/nonexistent.gguf: no such file or directory" --model /nonexistent.gguf
expect_error "/nonexistent.gguf: no such file or directory" --eval niah_single --model /nonexistent.gguf
# A tensor in a quantisation type the engine does not decode (Q5_K): named with the type.
expect_error "tensor 'w': unsupported ggml type Q5_K (id 13" --model "$tests_dir/fuzz/corpus/gguf/bad_unknown_type.gguf"
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

# --- Hostile input (issue 18): refused before anything is written ------------------
le64() { # a number as the printf escapes of its 8 little-endian bytes
  local i; for i in 0 1 2 3 4 5 6 7; do printf '\\x%02x' $(( ($1 >> (8 * i)) & 255 )); done
}
# patched_gguf OUT STRING SKIP BYTES: the tiny GGUF with BYTES (printf escapes) written
# SKIP bytes after the first occurrence of STRING (a metadata key or tensor name).
patched_gguf() {
  local out=$1 string=$2 skip=$3 bytes=$4 at
  cp "$tiny" "$out" && chmod u+w "$out"
  at=$(grep -obUa -- "$string" "$out" | head -n1 | cut -d: -f1)
  printf "$bytes" | dd of="$out" bs=1 seek=$((at + ${#string} + skip)) conv=notrunc status=none
}
# u64_after FILE STRING SKIP: the little-endian u64 at SKIP bytes after STRING.
u64_after() { od -A n -t u8 -j $(( $(grep -obUa -- "$2" "$1" | head -n1 | cut -d: -f1) + ${#2} + $3 )) -N 8 "$1"; }

# -o may not replace an input of the run, however it is named.
printf 'TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,30,4\n' >trace.csv
expect_output_refused "-o trace.csv is the --trace file trace.csv" trace.csv --trace trace.csv
ln -s trace.csv trace-link.h5
expect_output_refused "-o trace-link.h5 is the --trace file $work/trace.csv" trace-link.h5 --trace "$work/trace.csv"
expect_output_refused "-o hf-no-weights/config.json is hf-no-weights/config.json, a file of the --model directory" \
  hf-no-weights/config.json --model hf-no-weights --ctx 32
echo "Some haystack prose." >corpus.txt
ln corpus.txt corpus-hard-link.h5
expect_output_refused "-o corpus-hard-link.h5 is the --eval-corpus file corpus.txt" corpus-hard-link.h5 \
  --eval niah_single --eval-corpus corpus.txt
# -o names a file in a directory that exists, in words rather than HDF5's error stack.
expect_output_refused "-o $work is a directory" "$work"
expect_output_refused "-o $work/no-dir/run.h5: directory $work/no-dir: No such file or directory" "$work/no-dir/run.h5"
expect_output_refused "-o /dev/null is a character device, not a regular file" /dev/null

# Checkpoint errors found only while the weights load: exit 2, and an existing results
# file is untouched (a GGUF tensor of swapped dims, an HF directory without the head).
echo "earlier results" >"$work/out.h5"
if [[ -n "$tiny" ]]; then
  # Tensor infos: the name, n_dims (u32), the dims (u64 each), the type (u32), the data offset.
  patched_gguf bad-shape.gguf blk.0.ffn_gate.weight 4 \
    "$(le64 "$(u64_after "$tiny" blk.0.ffn_gate.weight 12)")$(le64 "$(u64_after "$tiny" blk.0.ffn_gate.weight 4)")"
  expect_output_refused "bad-shape.gguf: tensor 'blk.0.ffn_gate.weight' has ggml dims" "$work/out.h5" \
    --model bad-shape.gguf --ctx 256 --concurrency 1
fi
cp -r hf-no-weights hf-no-head
header='{"model.embed_tokens.weight":{"dtype":"F32","shape":[32,8],"data_offsets":[0,1024]}}'
while (( ${#header} % 8 )); do header+=" "; done
{ printf "$(le64 ${#header})"; printf '%s' "$header"; head -c 1024 /dev/zero; } >hf-no-head/model.safetensors
expect_output_refused "hf-no-head: tensor 'lm_head.weight'" "$work/out.h5" --model hf-no-head --ctx 32 --concurrency 1
# A tensor the engine would leave out: refused when the checkpoint opens.
cp -r hf-no-weights hf-bias
header='{"model.embed_tokens.weight":{"dtype":"F32","shape":[32,8],"data_offsets":[0,1024]},'
header+='"model.layers.0.self_attn.q_proj.bias":{"dtype":"F32","shape":[8],"data_offsets":[1024,1056]}}'
while (( ${#header} % 8 )); do header+=" "; done
{ printf "$(le64 ${#header})"; printf '%s' "$header"; head -c 1056 /dev/zero; } >hf-bias/model.safetensors
expect_output_refused "hf-bias/model.safetensors: tensor 'model.layers.0.self_attn.q_proj.bias' is not a weight" \
  "$work/out.h5" --model hf-bias --ctx 32 --concurrency 1
rm -f "$work/out.h5"

# Traces: regular files only, lines of at most 1 MiB, one JSON object per line with
# distinct keys.
expect_error "trace /dev/zero: is a character device, not a regular file" --trace /dev/zero
mkfifo fifo.csv
expect_error "trace fifo.csv: is a FIFO (named pipe), not a regular file" --trace fifo.csv
head -c 2000000 /dev/zero | tr '\0' 7 >long.csv
expect_error "trace long.csv:1: line longer than 1048576 bytes" --trace long.csv
row='{"timestamp": 0, "input_length": 10, "output_length": 2}'
echo "$row $row" >two.jsonl
expect_error "trace two.jsonl:1: text after the JSON object at column 58" --trace two.jsonl
echo "$row," >comma.jsonl
expect_error "trace comma.jsonl:1: text after the JSON object" --trace comma.jsonl
echo '{"timestamp": 0, "input_length": 10, "input_length": 20, "output_length": 2}' >duplicate.jsonl
expect_error "trace duplicate.jsonl:1: duplicate key 'input_length'" --trace duplicate.jsonl

# GGUF metadata the engine would take silently or assert on, and overlapping tensors.
if [[ -n "$tiny" ]]; then
  # Metadata values: the key, its u32 type, then the value.
  eps=llama.attention.layer_norm_rms_epsilon
  patched_gguf nan-eps.gguf $eps 4 '\x00\x00\xc0\x7f'
  expect_error "nan-eps.gguf: metadata '$eps' must be a positive finite number" --model nan-eps.gguf --ctx 256
  patched_gguf negative-eps.gguf $eps 4 '\x00\x00\x80\xbf'
  expect_error "negative-eps.gguf: metadata '$eps' must be a positive finite number" --model negative-eps.gguf
  patched_gguf deep.gguf llama.block_count 4 '\xc8\x00\x00\x00'
  expect_error "deep.gguf: metadata 'llama.block_count' is 200, outside 1..128" --model deep.gguf --ctx 256
  for key in llama.context_length llama.attention.head_count_kv llama.rope.dimension_count; do
    patched_gguf zero.gguf $key 4 '\x00\x00\x00\x00'
    expect_error "zero.gguf: metadata '$key' is 0, outside 1.." --model zero.gguf --ctx 256
  done
  # A tensor the engine would leave out (renamed in place: same length).
  patched_gguf qkv-bias.gguf blk.0.attn_q.weight -19 'blk.0.attn_qkv.bias'
  expect_error "qkv-bias.gguf: tensor 'blk.0.attn_qkv.bias' is not a weight of this 1-layer llama model" \
    --model qkv-bias.gguf --ctx 256
  patched_gguf overlap.gguf blk.0.attn_k.weight 24 "$(le64 "$(u64_after "$tiny" blk.0.attn_q.weight 24)")"
  expect_error "overlap.gguf: tensors 'blk.0.attn_q.weight' .* and 'blk.0.attn_k.weight' .* overlap" \
    --model overlap.gguf --ctx 256
fi

# Sizes that would trip an internal check or an allocation of gigabytes.
expect_error "--kv-cache-mib 1 holds no block of --kv-block 2048 entries" --kv-block 2048 --kv-cache-mib 1 \
  --ctx 256 --concurrency 1
expect_error "--requests: '2000000000' must be <= 10000000" --requests 2000000000

echo "$(( total - failures )) passed, $failures failed"
[[ $failures -eq 0 ]]
