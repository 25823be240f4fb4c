#!/usr/bin/env bash
# qwen3_next_fixture_check.sh — the engine's Qwen3-Next against Hugging Face transformers
# on the committed tiny fixtures (tests/data/qwen3_next/<name>/: the checkpoint and
# reference.txt, written by tests/reference/qwen3_next_fixtures.py): each Hugging Face
# directory as it is, then the same model as llama.cpp's converter would write it, in the
# newer (attn_qkv / attn_gate) and the legacy (ssm_in) GGUF layout, and with the fused
# attention attn_qkv and ffn_gate_up_exps llama.cpp also loads. Per prompt the
# top-64 logits and the logsumexp must agree within MAX_ERR of the reference's logit RMS,
# the top-1 must agree, and the first MIN_GREEDY greedy tokens (decode steps from the
# DeltaNet and KV states) must be transformers' (tests/tools/gemma3_fixture_check.c).
# Usage: qwen3_next_fixture_check.sh CHECK_TOOL TO_GGUF_TOOL FIXTURES_DIR BACKEND MAX_ERR MIN_GREEDY
# Exit 77 (skip) where the backend is absent.
set -euo pipefail
check=$1 to_gguf=$2 fixtures=$3 backend=$4 max_err=$5 min_greedy=$6
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run() { # MODEL REFERENCE
  set +e
  "$check" check "$backend" "$1" "$2" "$max_err" "$min_greedy"
  local rc=$?
  set -e
  [ $rc -eq 77 ] && exit 77
  [ $rc -eq 0 ] || { echo "FAIL: $1 against $2 (exit $rc)"; exit 1; }
}
for dir in "$fixtures"/*/; do
  name=$(basename "$dir")
  echo "== $name: Hugging Face directory"
  run "$dir" "$dir/reference.txt"
  echo "== $name: GGUF, attn_qkv / attn_gate"
  "$to_gguf" "$dir" "$work/$name.gguf"
  run "$work/$name.gguf" "$dir/reference.txt"
  echo "== $name: GGUF, legacy ssm_in"
  "$to_gguf" "$dir" "$work/$name-legacy.gguf" --legacy
  run "$work/$name-legacy.gguf" "$dir/reference.txt"
  echo "== $name: GGUF, fused attn_qkv and ffn_gate_up_exps"
  "$to_gguf" "$dir" "$work/$name-fused.gguf" --fused
  run "$work/$name-fused.gguf" "$dir/reference.txt"
done
echo "qwen3_next fixtures: every checkpoint form matches transformers"
