#!/usr/bin/env bash
# seams_equivalence.sh — holds the engine to the per-request records it produced before
# the engine-seams refactor (issue 11). Each case is a fixed run whose records must equal
# the file committed in tests/data/seams/CASE.json (ids, statuses, lengths, first and
# generated tokens, kept tokens per layer; tests/record_fingerprint.py says what is
# compared). Cases:
#   sweep_tiny_llama  CPU sweep on tiny-llama: 1k,2k x concurrency 1,4 x dense, top-p, keep 0.3
#   eval_tiny_llama2  --eval on the tiny random Llama-2 GGUF (MODEL), drops at layer 0
#   eval_smollm2      --eval on SmolLM2-135M (MODEL, default the model cache's); exit 77 (skip)
#                     when it is not fetched
# Usage: seams_equivalence.sh BINARY PYTHON FINGERPRINT_SCRIPT DATA_DIR CASE [MODEL]
# UP_SEAMS_REGENERATE=1 rewrites the expected file instead: only from a commit whose
# behaviour is the reference.
set -eu
bin=$(realpath "$1") python=$2 fingerprint=$(realpath "$3") data=$(realpath "$4") case=$5 model=${6:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
common=(--threads 1 --warmup 0 --seed 7 --quiet -o "$work/run.h5")

case $case in
  sweep_tiny_llama)
    # One round, as the records were taken before --repetitions existed (its default is 5).
    "$bin" --ctx 1k,2k --concurrency 1,4 --method dense,uniprefill,uniprefill:keep=0.3 --repetitions 1 "${common[@]}" \
      >"$work/out.txt" ;;
  eval_tiny_llama2)
    "$bin" --model "$model" --eval niah_single,kv_retrieval --eval-samples 2 --ctx 512 --eval-max-new 4 \
      --method dense,uniprefill:keep=0.3:layers=0 "${common[@]}" >"$work/out.txt" ;;
  eval_smollm2)
    model=${model:-${UNIPREFILL_MODEL_CACHE:-$HOME/.cache/uniprefill-bench/models}/SmolLM2-135M-Instruct.Q4_1.gguf}
    if [[ ! -f $model ]]; then
      echo "skip: SmolLM2 is absent at '$model' (make model fetches it)"
      exit 77
    fi
    "$bin" --model "$model" --eval niah_single --eval-samples 2 --ctx 1k --eval-max-new 8 \
      --method dense,uniprefill,uniprefill:keep=0.3 "${common[@]}" >"$work/out.txt" ;;
  *) echo "unknown case '$case'" >&2; exit 2 ;;
esac

if [[ ${UP_SEAMS_REGENERATE:-0} == 1 ]]; then
  "$python" "$fingerprint" "$work/run.h5" >"$data/$case.json"
  echo "$case: wrote $data/$case.json"
else
  "$python" "$fingerprint" "$work/run.h5" "$data/$case.json"
fi
