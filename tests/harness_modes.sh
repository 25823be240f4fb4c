#!/usr/bin/env bash
# harness_modes.sh — what launcher/harness.c promises every mode, end to end on the CPU:
# (1) the `#` preamble on stderr (version and commit, mode, argv, one line per rank with
#     rank, pid, host, backend and device), none of it on stdout, none under --quiet;
# (2) a set-up check that fails on one rank only (each rank gets its own argv through
#     mpirun's MPMD form) ends every rank with exit code 2, names the failing rank, writes
#     no run file and does not hang, in the sweep, --kernels and --eval.
# Usage: harness_modes.sh BINARY MPIEXEC TINY_GGUF (a small GGUF checkpoint for --eval)
set -u
bin=$(realpath "$1")
mpiexec=$2
tiny=$(realpath "$3")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

small=(--ctx 256 --concurrency 1 --method dense --output-len 2 --warmup 0 --threads 1)
"$mpiexec" --oversubscribe -np 2 "$bin" "${small[@]}" -o "$work/run.h5" >"$work/stdout" 2>"$work/stderr" ||
  fail "two-rank sweep exited $?"
grep -q '^# uniprefill-bench .*, commit ' "$work/stderr" || fail "no version and commit line"
grep -q '^# mode: sweep, 2 rank(s)' "$work/stderr" || fail "no mode line"
grep -q "^# argv: .*uniprefill-bench --ctx 256 " "$work/stderr" || fail "no argv line"
for rank in 0 1; do
  grep -Eq "^#  rank +$rank  local +[01]  pid +[0-9]+  host .*backend cpu +device .*\[cpu\]$" "$work/stderr" ||
    fail "no preamble line for rank $rank"
done
if grep -q '^#' "$work/stdout"; then fail "preamble lines on stdout"; fi
grep -q '^| dense' "$work/stdout" || fail "the table is missing from stdout"
"$bin" "${small[@]}" --quiet -o "$work/quiet.h5" >"$work/stdout" 2>"$work/stderr" || fail "--quiet run exited $?"
if grep -q '^#' "$work/stderr"; then fail "--quiet still prints the preamble"; fi
[[ $failures -eq 0 ]] && echo "ok: preamble on stderr, one line per rank, none with --quiet"

# One rank fails a check the other passes.
expect_agreed_failure() {
  local what=$1 pattern=$2; shift 2
  local -a good=() bad=()
  while [[ $1 != "::" ]]; do good+=("$1"); shift; done
  shift
  bad=("$@")
  rm -f "$work/agree.h5"
  timeout 120 "$mpiexec" --oversubscribe -np 1 "$bin" "${good[@]}" -o "$work/agree.h5" : \
    -np 1 "$bin" "${bad[@]}" -o "$work/agree.h5" >"$work/stdout" 2>"$work/stderr"
  local rc=$?
  if [[ $rc -eq 124 ]]; then fail "$what: hung"; return; fi
  if [[ $rc -ne 2 ]]; then fail "$what: exited $rc, expected 2"; cat "$work/stderr"; return; fi
  grep -q -- "rank 1: error: .*$pattern" "$work/stderr" || { fail "$what: rank 1's message lacks '$pattern'"; cat "$work/stderr"; return; }
  if grep -q "rank 0: error" "$work/stderr"; then fail "$what: rank 0 reports an error it did not have"; return; fi
  if [[ -e "$work/agree.h5" ]]; then fail "$what: left a run file"; return; fi
  echo "ok: $what: rank 1 fails alone, both exit 2"
}
expect_agreed_failure "sweep, unknown preset on rank 1" "unknown preset 'llama-9000'" \
  "${small[@]}" --quiet :: "${small[@]}" --quiet --model llama-9000
expect_agreed_failure "--kernels, missing checkpoint on rank 1" "/nonexistent.gguf: no such file" \
  --kernels --ctx 300 --quiet :: --kernels --ctx 300 --quiet --model /nonexistent.gguf
expect_agreed_failure "--eval, a preset instead of a checkpoint on rank 1" "--eval needs --model PATH" \
  --eval niah_single --model "$tiny" --ctx 256 --eval-samples 1 --quiet :: \
  --eval niah_single --model tiny-llama --ctx 256 --eval-samples 1 --quiet
[[ $failures -eq 0 ]] || exit 1
