#!/usr/bin/env bash
# gemma3_270m_check.sh — runs tests/tools/gemma3_fixture_check on the real Gemma 3 270M
# where scripts/fetch-gemma3.sh caches it (UNIPREFILL_MODEL_CACHE, else
# ~/.cache/uniprefill-bench/models), against tests/data/gemma3_270m/reference.txt.
# Usage: gemma3_270m_check.sh TOOL FIXTURE BACKEND MAX_ERR MIN_GREEDY_MATCH
# Exit 77 (skip) when the model or the backend is absent.
set -euo pipefail
tool=$1 fixture=$2 backend=$3 max_err=$4 min_greedy=$5
model=${UNIPREFILL_MODEL_CACHE:-$HOME/.cache/uniprefill-bench/models}/gemma-3-270m-q4_k_m.gguf
exec "$tool" check "$backend" "$model" "$fixture" "$max_err" "$min_greedy"
