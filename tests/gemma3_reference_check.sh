#!/usr/bin/env bash
# gemma3_reference_check.sh — the engine's Gemma 3 forward against an independent numpy
# recomputation (tests/reference/gemma3_hf_reference.py) on a tiny random checkpoint
# written by tests/tools/make_tiny_gemma3.py: the Hugging Face directory (transformers 5
# and 4 RoPE keys) and the same model as a GGUF (norms + 1, no pattern or local-base
# keys). The 40-token prompt outruns the window of 16, so sliding layers are exercised.
# Last-position logits must agree within MAX_REL_ERR (normalised) with the same top-1.
# Usage: gemma3_reference_check.sh TOOL PYTHON TESTS_DIR BACKEND MAX_REL_ERR
# Exit 77 (skip) where PYTHON has no numpy or the backend is absent.
set -euo pipefail
tool=$1 python=$2 tests=$3 backend=$4 max_rel_err=$5
"$python" -c "import numpy" 2>/dev/null || { echo "SKIP: $python has no numpy"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tokens=2,17,40,255,3,99,120,7,7,7,31,64,200,150,11,12,13,14,15,16,280,1,0,44,45,46,47,48,90,91,92,93,94,95,96,97,98,99,100,101
check() { # CHECKPOINT REFERENCE_DIR
  set +e
  "$tool" "$backend" "$1" "$tokens" "$work/engine.f32" 4
  local rc=$?
  set -e
  [ $rc -eq 77 ] && exit 77
  [ $rc -eq 0 ] || { echo "checkpoint_logits failed on $1 (exit $rc)"; exit 1; }
  "$python" "$tests/reference/gemma3_hf_reference.py" "$2" --tokens "$tokens" --out "$work/reference.f32"
  "$python" "$tests/reference/compare_logits.py" "$work/engine.f32" "$work/reference.f32" \
    --max-rel-err "$max_rel_err" --require-argmax
}
"$python" "$tests/tools/make_tiny_gemma3.py" "$work/hf"
check "$work/hf" "$work/hf"
"$python" "$tests/tools/make_tiny_gemma3.py" "$work/hf_legacy" --legacy-rope
check "$work/hf_legacy" "$work/hf_legacy"
# GGUF has no query_pre_attn_scalar (llama.cpp uses head_dim): both files say 32.
"$python" "$tests/tools/make_tiny_gemma3.py" "$work/hf32" --query-pre-attn-scalar 32 --gguf "$work/tiny.gguf"
check "$work/tiny.gguf" "$work/hf32"
echo "gemma3 reference check: HF (two RoPE layouts) and GGUF agree"
