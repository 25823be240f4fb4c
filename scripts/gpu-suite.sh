#!/usr/bin/env bash
# gpu-suite.sh — everything a GPU machine should run in one go: configure with CUDA,
# build, run the gpu-labelled tests, then the kernel benchmark (uniprefill-bench
# --kernels) and an end-to-end sweep, writing every log, table and run file under
# OUTDIR and printing a short summary last.
# Usage: scripts/gpu-suite.sh OUTDIR [extra cmake args...]
# Environment: KERNEL_CASES (default gemm,attention,decode,selection), KERNEL_ARGS (more
# --kernels flags, e.g. "--ctx 4k,32k"), SKIP_E2E=1, E2E_CTX, BUILD_GPU, PYTHON.
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

ctest --test-dir "$build" -L gpu -V >"$out/ctest-gpu.log" 2>&1
gpu_rc=$?
log "ctest -L gpu: rc=$gpu_rc; $(grep -E 'tests passed|tests failed' "$out/ctest-gpu.log" | tail -1)"

# Kernel timings at the Llama-3.1-8B shapes (GEMMs at 32K tokens, attention 4K..128K,
# decode and selection batches): the table in kernels.md, every field in kernels.h5,
# whose values check_kernels_table.py then checks against the shape formulas.
python=${PYTHON:-/usr/bin/python3}
# shellcheck disable=SC2086 # KERNEL_ARGS is a list of flags
timeout 600 "$build/uniprefill-bench" --kernels --backend cuda --model llama-3.1-8b \
  --kernel-cases "${KERNEL_CASES:-gemm,attention,decode,selection}" --kernel-repeats 20 ${KERNEL_ARGS:-} \
  -o "$out/kernels.h5" >"$out/kernels.md" 2>"$out/kernels.log"
kernels_rc=$?
log "kernels: rc=$kernels_rc"
cat "$out/kernels.md" >>"$out/summary.txt"
if [[ $kernels_rc -eq 0 ]] && "$python" -c "import h5py" 2>/dev/null; then
  "$python" tests/check_kernels_table.py "$out/kernels.h5" >"$out/kernels-check.txt" 2>&1
  log "kernels table check: rc=$?; $(tail -1 "$out/kernels-check.txt")"
fi

# End to end on Llama-3.1-8B (random weights): dense against UniPrefill at top-p 0.99
# (random weights keep nearly everything) and at fixed budgets, batch 1 and 4 x 8K.
if [[ ${SKIP_E2E:-0} != 1 ]]; then
  methods=dense,uniprefill,uniprefill:keep=0.3,uniprefill:keep=0.5
  timeout 600 "$build/uniprefill-bench" --backend cuda --model llama-3.1-8b --ctx ${E2E_CTX:-8k,32k,64k} \
    --concurrency 1 --method $methods --output-len 1 --requests 2 -o "$out/e2e_batch1.h5" >"$out/e2e_batch1.txt" 2>&1
  log "e2e batch 1: rc=$?"
  timeout 300 "$build/uniprefill-bench" --backend cuda --model llama-3.1-8b --ctx 8k --concurrency 4 \
    --method $methods --output-len 4 --requests 8 -o "$out/e2e_4x8k.h5" >"$out/e2e_4x8k.txt" 2>&1
  log "e2e 4 x 8K: rc=$?"
fi

exit $gpu_rc
