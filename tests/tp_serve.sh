#!/usr/bin/env bash
# tp_serve.sh — the serving loop on data-parallel x tensor-parallel groups
# (tools/tp_serve_check.c): the per-request records (status, lengths, first token,
# prefill steps, KV bytes, kept tokens per layer; not timings) of TP=2 on 2 ranks and
# of dp=2 x tp=2 on 4 ranks equal those of TP=1 on one rank, line for line, and every
# follower records nothing (the tool fails otherwise).
# Usage: tp_serve.sh TOOL MPIEXEC METHOD N_REQUESTS PROMPT_LEN
set -eu
tool=$(realpath "$1") mpiexec=$2 method=$3 n=$4 len=$5
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# run NP TP: the records of NP ranks in groups of TP
run() { "$mpiexec" -np "$1" --oversubscribe --bind-to none "$tool" "$2" "$method" "$n" "$len" >"$work/np$1_tp$2.txt"; }
run 1 1
run 2 2
run 4 2
for layout in np2_tp2 np4_tp2; do
  if ! diff "$work/np1_tp1.txt" "$work/$layout.txt"; then
    echo "$layout: request records differ from TP=1 on one rank ($method)" >&2
    exit 1
  fi
done
echo "TP=1, TP=2 and dp=2 x tp=2: the same $(wc -l <"$work/np1_tp1.txt") request records ($method)"
