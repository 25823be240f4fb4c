#!/usr/bin/env bash
# regression_check.sh — the CI regression run: a small CPU sweep (about 10 s on 2 cores)
# whose within-run ratios (UniPrefill TTFT / dense TTFT at the same point, kept-token
# fractions, failures) analysis/compare.py checks against the committed baseline.
#
#   regression_check.sh BINARY PYTHON COMPARE BASELINE [MAX_REGRESS]   check (CTest)
#   regression_check.sh --refresh BINARY PYTHON BASELINE               rewrite the baseline
#
# The sweep is defined here only, so the check and the baseline always use the same
# command. One thread per run: with two threads a busy neighbour on a 2-core machine
# stalls every step of one method and not the other, and the ratios scatter. --refresh
# runs the sweep seven times and keeps the most typical run (analysis/pick_baseline.py).
# A check fails only when two runs in a row regress.
set -eu
here=$(dirname "$(realpath "$0")")
# One round (--repetitions 1), as the committed baseline was taken.
sweep=(--ctx 1k,2k --concurrency 1,2 --method dense,uniprefill:keep=0.3 --output-len 2 --requests 2 --warmup 1
       --repetitions 1 --threads 1 --seed 42 --quiet)

if [ "${1:-}" = "--refresh" ]; then
  [ $# -eq 4 ] || { echo "usage: $0 --refresh BINARY PYTHON BASELINE" >&2; exit 2; }
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  for i in 1 2 3 4 5 6 7; do "$2" "${sweep[@]}" -o "$work/run$i.h5" >/dev/null; done
  "$3" "$here/../analysis/pick_baseline.py" "$work"/run*.h5 -o "$4"
  exit 0
fi

[ $# -ge 4 ] || { echo "usage: $0 BINARY PYTHON COMPARE BASELINE [MAX_REGRESS]" >&2; exit 2; }
bin=$(realpath "$1") python=$2 compare=$(realpath "$3") baseline=$(realpath "$4") max_regress=${5:-40%}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A regression must show twice: one run can land in a burst of load from elsewhere on
# the machine, a real slowdown shows in every run. Bad input (exit 2) fails at once.
for attempt in 1 2; do
  start=$(date +%s%N)
  "$bin" "${sweep[@]}" -o "$work/new.h5"
  echo "sweep took $(( ($(date +%s%N) - start) / 1000000 )) ms"
  rc=0
  "$python" "$compare" "$baseline" "$work/new.h5" --max-regress "$max_regress" || rc=$?
  [ "$rc" -eq 1 ] && [ "$attempt" -eq 1 ] && { echo "regressed once; running the sweep again to confirm"; continue; }
  exit "$rc"
done
