#!/usr/bin/env bash
# mpi_equivalence.sh — the same sweep on one rank and on two ranks under mpirun gives
# the same per-request records (ids, statuses, lengths, kept tokens per layer, first
# token). Two rounds (--repetitions 2): each round's requests are split over the ranks
# as a point's are, and the rounds' ids and prompts must not depend on the rank count.
# Usage: mpi_equivalence.sh BINARY MPIEXEC PYTHON COMPARE_SCRIPT
set -eu
bin=$(realpath "$1") mpiexec=$2 python=$3 compare=$(realpath "$4")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
args=(--ctx 300,700 --concurrency 1,3 --requests 5 --repetitions 2 --output-len 3 --method dense,uniprefill:keep=0.3
      --warmup 0 --threads 1 --quiet)
"$bin" "${args[@]}" -o "$work/one.h5" >"$work/one.txt"
"$mpiexec" -np 2 --oversubscribe --bind-to none "$bin" "${args[@]}" -o "$work/two.h5" >"$work/two.txt"
"$python" "$compare" "$work/one.h5" "$work/two.h5"
