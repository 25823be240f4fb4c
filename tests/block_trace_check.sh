#!/usr/bin/env bash
# block_trace_check.sh — the UP_TRACE_BLOCKS taps and tests/tools/block_trace_diff.sh on the
# CPU against itself: every tap of every step is written (embedding, the blocks of every
# layer and the intermediates of each kind of block present), and two runs of the same
# prompt agree exactly, so a difference the tool shows between backends is the backends'.
set -euo pipefail
tool=$1 model=$2 tokens=$3 expect_taps=$4
out=$(BACKEND_A=cpu BACKEND_B=cpu "$(dirname "$0")/tools/block_trace_diff.sh" "$tool" "$model" "$tokens" 2)
echo "$out"
taps=$(grep -c '^step' <<<"$out")
[ "$taps" -eq "$expect_taps" ] || { echo "FAIL: $taps taps written, $expect_taps expected"; exit 1; }
if grep -E '^(step|logits)' <<<"$out" | grep -v '= 0.000e+00;' >/dev/null; then
  echo "FAIL: a CPU run differs from itself"
  exit 1
fi
echo "block trace: $taps taps, identical"
