#!/usr/bin/env bash
# eval_smollm2.sh — uniprefill-bench --eval on a trained model: SmolLM2-135M-Instruct
# (Q4_1) must find the needle in both 1K-token niah_single samples (accuracy 1.0), and
# the run must stay within the CPU budget of the test suite. Exit 77 (skip) when the
# model has not been fetched (scripts/fetch-smollm2.sh).
# Usage: eval_smollm2.sh BINARY PYTHON CHECKER
set -eu
bin=$(realpath "$1") python=$2 checker=$(realpath "$3")
model=${UNIPREFILL_MODEL_CACHE:-$HOME/.cache/uniprefill-bench/models}/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -f "$model" ]; then
  echo "skip: $model is absent (scripts/fetch-smollm2.sh fetches it)"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
"$bin" --model "$model" --eval niah_single --ctx 1k --eval-samples 2 --method dense --quiet -o "$work/eval.h5" \
  >"$work/table.txt"
echo "SmolLM2 eval took $(( $(date +%s) - start )) s"
cat "$work/table.txt"
"$python" "$checker" "$work/eval.h5" --rows 2 --ctx 1024 --layers 30 --methods dense --max-new 32 --accuracy 1.0
