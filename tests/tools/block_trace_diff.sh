#!/usr/bin/env bash
# block_trace_diff.sh — where two backends part ways on one prompt: runs
# checkpoint_logits on BACKEND_A and BACKEND_B (default cpu and cuda) with UP_TRACE_BLOCKS
# set (engine/model/block_trace.h), then prints, per forward step, layer and block, the
# normalised error of B's activations against A's. The first block whose error jumps is
# where to look; errors of later blocks inherit it.
# Usage: block_trace_diff.sh CHECKPOINT_LOGITS MODEL TOKENS [GREEDY_STEPS]
set -euo pipefail
tool=${1:?usage: block_trace_diff.sh CHECKPOINT_LOGITS MODEL TOKENS [GREEDY_STEPS]}
model=${2:?model}
tokens=${3:?tokens}
greedy=${4:-1}
a=${BACKEND_A:-cpu} b=${BACKEND_B:-cuda}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for side in "$a" "$b"; do
  mkdir -p "$work/$side"
  UP_TRACE_BLOCKS="$work/$side" "$tool" "$side" "$model" "$tokens" "$work/$side.f32" "$greedy" >"$work/$side.txt"
  echo "$side: $(cat "$work/$side.txt")"
done
# in the order the forward wrote them (oldest first)
ls -1tr "$work/$a" | sed -E 's/^step([0-9]+)_layer(-?[0-9]+)_(.*)\.f32$/\1 \2 \3/' |
  while read -r step layer what; do
    f=step${step}_layer${layer}_${what}.f32
    [[ -f $work/$b/$f ]] || { echo "step $step layer $layer $what: missing on $b"; continue; }
    printf 'step %s layer %3s %-16s ' "$step" "$layer" "$what"
    "$tool" compare "$work/$b/$f" "$work/$a/$f" 1e30 | sed 's/ (tolerance.*)//' || true
  done
printf 'logits                            '
"$tool" compare "$work/$b.f32" "$work/$a.f32" 1e30 | sed 's/ (tolerance.*)//' || true
