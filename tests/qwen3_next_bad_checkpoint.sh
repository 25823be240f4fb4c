#!/usr/bin/env bash
# qwen3_next_bad_checkpoint.sh — broken copies of the tiny Qwen3-Next fixture
# (tests/data/qwen3_next/tiny) given to the binary: a config the engine cannot run (top-k
# above the expert count, value heads that do not group over key heads, dense MLP
# layers, a layer pattern other than full attention every n-th layer, two rotary
# fractions, scaled RoPE), one whose shapes the stored DeltaNet, expert or router
# tensors do not have, or its GGUF without a DeltaNet, expert or router tensor. Each must
# end with exit 2, a message naming the field or the tensor, and no results file.
# Usage: qwen3_next_bad_checkpoint.sh BINARY TO_GGUF_TOOL FIXTURE_DIR
set -u
bin=$(realpath "$1")
to_gguf=$(realpath "$2")
fixture=$(realpath "$3")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
failures=0 total=0

# refused NAME MODEL PATTERN: the binary given MODEL must exit 2 with PATTERN in its
# message and write nothing.
refused() {
  local name=$1 model=$2 pattern=$3
  "$bin" --model "$model" --ctx 64 --concurrency 1 -o "$work/$name.h5" >"$work/stdout" 2>"$work/stderr"
  local rc=$?
  if [[ $rc -ne 2 ]]; then
    echo "FAIL: $name exited $rc, expected 2:"; tail -n 20 "$work/stderr"; failures=$((failures + 1))
  elif ! grep -qF -- "$pattern" "$work/stderr"; then
    echo "FAIL: $name: the message lacks '$pattern':"; cat "$work/stderr"; failures=$((failures + 1))
  elif [[ -e "$work/$name.h5" ]]; then
    echo "FAIL: $name left a results file behind"; failures=$((failures + 1))
  else
    echo "ok: $name -> $(grep -m1 error "$work/stderr")"
  fi
}

# broken NAME SED_EXPRESSION PATTERN: the fixture with config.json edited by the
# expression.
broken() {
  local name=$1 expr=$2 pattern=$3
  total=$((total + 1))
  cp -r "$fixture" "$name" && chmod -R u+w "$name"
  sed -i "$expr" "$name/config.json"
  if cmp -s "$fixture/config.json" "$name/config.json"; then
    echo "FAIL: $name: '$expr' changed nothing in config.json"; failures=$((failures + 1)); return
  fi
  refused "$name" "$name" "$pattern"
}

# truncated NAME TENSOR PATTERN [LAYOUT_FLAG]: the fixture as a GGUF without TENSOR.
truncated() {
  local name=$1 tensor=$2 pattern=$3
  total=$((total + 1))
  if ! "$to_gguf" "$fixture" "$work/$name.gguf" ${4:-} --leave-out "$tensor"; then
    echo "FAIL: $name: could not write the GGUF"; failures=$((failures + 1)); return
  fi
  refused "$name" "$work/$name.gguf" "$pattern"
}

broken top-k 's/"num_experts_per_tok": 2/"num_experts_per_tok": 9/' "num_experts_per_tok 9 is more than num_experts 8"
broken value-heads 's/"linear_num_value_heads": 4/"linear_num_value_heads": 3/' \
  "linear_num_value_heads 3 is not a multiple of linear_num_key_heads 2"
broken dense-layer 's/"mlp_only_layers": \[\]/"mlp_only_layers": [1]/' "mlp_only_layers is not empty"
broken sparse-step 's/"decoder_sparse_step": 1/"decoder_sparse_step": 2/' "decoder_sparse_step 2 gives some layers a dense MLP"
broken expert-shape 's/"moe_intermediate_size": 16/"moe_intermediate_size": 12/' \
  "tensor 'model.layers.0.mlp.experts.0.gate_proj.weight' has shape [16, 32], the config needs [12, 32]"
broken conv-shape 's/"linear_conv_kernel_dim": 4/"linear_conv_kernel_dim": 3/' \
  "tensor 'model.layers.0.linear_attn.conv1d.weight' has shape [256, 1, 4], the config needs [256, 3]"
broken deltanet-shape 's/"linear_num_value_heads": 4/"linear_num_value_heads": 6/' \
  "tensor 'model.layers.0.linear_attn.in_proj_qkvz.weight' has shape [384, 32], the config needs [512, 32]"
broken layer-pattern '0,/"linear_attention"/s//"full_attention"/' "layer_types is not full attention every n-th layer"
broken rope-twice 's/"rms_norm_eps"/"partial_rotary_factor": 0.5, "rms_norm_eps"/' \
  "'partial_rotary_factor' is 0.5 at the top level and 0.25 in 'rope_parameters'"
broken rope-scaled 's/"rope_type": "default"/"rope_type": "yarn"/' "qwen3_next rope scaling 'yarn' is not supported"
broken router-experts 's/"num_experts": 8/"num_experts": 7/' "is not a weight of this 4-layer qwen3next model"
truncated no-ssm-a blk.1.ssm_a "tensor 'blk.1.ssm_a' is missing"
truncated no-legacy-ssm-in blk.0.ssm_in.weight \
  "tensor 'blk.0.attn_qkv.weight' is missing (and so is 'blk.0.ssm_in.weight'" --legacy
truncated no-experts blk.2.ffn_down_exps.weight "tensor 'blk.2.ffn_down_exps.weight' is missing"
truncated no-router blk.3.ffn_gate_inp.weight "tensor 'blk.3.ffn_gate_inp.weight' is missing"
echo "$((total - failures)) of $total broken checkpoints refused"
[[ $failures -eq 0 ]]
