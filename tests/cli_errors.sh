#!/usr/bin/env bash
# cli_errors.sh — bad command lines end with exit code 2, a message naming the
# problem, and no results file. Usage: cli_errors.sh BINARY
set -u
bin=$(realpath "$1")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
failures=0
total=0

expect_error() {
  local pattern=$1; shift
  total=$((total + 1))
  "$bin" "$@" -o "$work/out.h5" >"$work/stdout" 2>"$work/stderr"
  local rc=$?
  if [[ $rc -ne 2 ]]; then
    echo "FAIL: '$*' exited $rc, expected 2"; failures=$((failures + 1))
  elif ! grep -q -- "$pattern" "$work/stderr"; then
    echo "FAIL: '$*' stderr lacks '$pattern':"; cat "$work/stderr"; failures=$((failures + 1))
  elif [[ -e "$work/out.h5" || -d "$work/results" ]]; then
    echo "FAIL: '$*' left a results file behind"; failures=$((failures + 1))
  else
    echo "ok: '$*' -> $(head -n1 "$work/stderr")"
  fi
  rm -f "$work/out.h5"
}

expect_error "--no-such-flag" --no-such-flag
expect_error "--ctx" --ctx 4q
expect_error "--concurrency" --concurrency 1,,4
expect_error "--uniprefill-p" --uniprefill-p 1.5
expect_error "unknown preset" --model llama-9000
expect_error "unknown method" --method dense,sparse
expect_error "drop layer" --method uniprefill:layers=3+40
expect_error "--layers" --model tiny-llama --layers 99
expect_error "GiB" --model llama-3.1-70b --ctx 1k --backend cpu
expect_error "--backend" --backend tpu
# --kernels: flags, cases the model cannot run, memory.
expect_error "--kernel-tokens needs --kernels" --kernel-tokens 4k
expect_error "--kernel-tokens" --kernels --kernel-tokens 0
expect_error "--kernel-cases" --kernels --kernel-cases gemm,softmax
expect_error "--kernel-batches" --kernels --kernel-batches 4x
expect_error "--kernel-repeats" --kernels --kernel-repeats 0
expect_error "cannot be combined" --kernels --method dense
expect_error "sink + last_q" --kernels --backend cpu --ctx 200
expect_error "context of" --kernels --backend cpu --ctx 256k --kernel-cases attention
expect_error "GiB" --kernels --backend cpu --model llama-3.1-70b --kernel-tokens 1M --kernel-cases gemm

echo "$(( total - failures )) passed, $failures failed"
[[ $failures -eq 0 ]]
