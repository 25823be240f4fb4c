#!/usr/bin/env bash
# gpu-suite.sh — everything a GPU machine should run in one go: configure with CUDA,
# build, run the gpu-labelled tests, then the kernel benchmarks and an end-to-end
# sweep, writing every log and CSV under OUTDIR and printing a short summary last.
# Usage: scripts/gpu-suite.sh OUTDIR [extra cmake args...]
set -uo pipefail
out=${1:?usage: scripts/gpu-suite.sh OUTDIR [cmake args...]}
shift
mkdir -p "$out"
build=${BUILD_GPU:-build-gpu}
jobs=$(nproc)

log() { echo "[gpu-suite] $*" | tee -a "$out/summary.txt"; }

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv >"$out/gpu.txt" 2>&1
log "gpu: $(tail -n +2 "$out/gpu.txt" | head -1)"

if ! cmake -S . -B "$build" -DUNIPREFILL_CUDA=ON -DCMAKE_BUILD_TYPE=Release "$@" >"$out/configure.log" 2>&1; then
  log "configure failed"; tail -40 "$out/configure.log"; exit 1
fi
if ! cmake --build "$build" -j "$jobs" >"$out/build.log" 2>&1; then
  log "build failed"; grep -E "error|Error" "$out/build.log" | head -40; exit 1
fi
log "build ok"

ctest --test-dir "$build" -L gpu --output-on-failure >"$out/ctest-gpu.log" 2>&1
gpu_rc=$?
log "ctest -L gpu: rc=$gpu_rc; $(grep -E 'tests passed|tests failed' "$out/ctest-gpu.log" | tail -1)"

for bench in gpu_matmul_bench gpu_attention_bench; do
  exe="$build/tests/gpu/$bench"
  if [[ -x "$exe" ]]; then
    timeout 300 "$exe" "$out/$bench.csv" >"$out/$bench.txt" 2>&1
    log "$bench: rc=$?"
  fi
done

exit $gpu_rc
