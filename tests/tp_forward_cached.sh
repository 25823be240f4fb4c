#!/usr/bin/env bash
# tp_forward_cached.sh — tools/tp_forward_check under mpirun on a real checkpoint that a
# fetch script caches (UNIPREFILL_MODEL_CACHE, else ~/.cache/uniprefill-bench/models, as
# scripts/fetch-gemma3.sh): exit 77 (skip), saying where it looked, when it is not there.
# Usage: tp_forward_cached.sh MPIEXEC RANKS TOOL FILE METHOD TOL
set -euo pipefail
mpiexec=$1 ranks=$2 tool=$3 file=$4 method=$5 tol=$6
model=${UNIPREFILL_MODEL_CACHE:-$HOME/.cache/uniprefill-bench/models}/$file
if [[ ! -f $model ]]; then
  echo "SKIP: $file is not cached at $model (scripts/fetch-gemma3.sh fetches it)"
  exit 77
fi
exec "$mpiexec" --oversubscribe --bind-to none -np "$ranks" "$tool" "$model" "$method" "$tol"
