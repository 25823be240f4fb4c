#!/usr/bin/env bash
# checkpoint_logits_check.sh — the engine's logits for a real checkpoint against an
# independent numpy recomputation (tests/reference/llama_gguf_reference.py): the
# engine loads MODEL on BACKEND, prefills TOKENS, and its last-position logits must
# match the reference within MAX_REL_ERR (normalised) with the same top-1 token.
# Where numpy is missing, a GPU backend is checked against the CPU engine instead.
# Exit 77 (skip) when the model or the backend is absent.
set -euo pipefail
tool=$1 python=$2 refdir=$3 backend=$4 model=$5 tokens=$6 max_rel_err=$7
# "smollm2" names the real model where scripts/fetch-smollm2.sh puts it.
if [ "$model" = smollm2 ]; then
  model=${UNIPREFILL_MODEL_CACHE:-$HOME/.cache/uniprefill-bench/models}/SmolLM2-135M-Instruct.Q4_1.gguf
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
set +e
"$tool" "$backend" "$model" "$tokens" "$work/engine.f32" 8 | tee "$work/engine.txt"
rc=${PIPESTATUS[0]}
set -e
[ $rc -eq 77 ] && exit 77
[ $rc -eq 0 ] || { echo "checkpoint_logits failed (exit $rc)"; exit 1; }
if "$python" -c "import numpy" 2>/dev/null; then
  "$python" "$refdir/llama_gguf_reference.py" "$model" --tokens "$tokens" --out "$work/reference.f32"
  "$python" "$refdir/compare_logits.py" "$work/engine.f32" "$work/reference.f32" --max-rel-err "$max_rel_err" \
    --require-argmax
elif [ "$backend" != cpu ]; then
  # No numpy here (the lent GPU machines): the CPU engine, which CI checks against the
  # numpy recomputation, is the reference.
  echo "no numpy: comparing with the engine's CPU backend instead"
  "$tool" cpu "$model" "$tokens" "$work/reference.f32" 8 | tee "$work/reference.txt"
  "$tool" compare "$work/engine.f32" "$work/reference.f32" "$max_rel_err"
  # bf16 weights and activations through a deep model move the logits by a few percent
  # (see the bound in tests/CMakeLists.txt); the answer itself must not change.
  cmp -s "$work/engine.txt" "$work/reference.txt" || { echo "greedy continuations differ"; exit 1; }
else
  echo "SKIP: $python has no numpy for the reference recomputation"
  exit 77
fi
