#!/usr/bin/env bash
# gpu-suite.sh — everything a GPU machine should run in one go: configure with CUDA,
# build, run the gpu-labelled tests, then the kernel benchmark (uniprefill-bench
# --kernels), an end-to-end check, the fidelity evaluation on the real model and the
# context x concurrency sweep, writing every log, table and run file under OUTDIR and
# a short summary to OUTDIR/summary.txt.
# Usage: scripts/gpu-suite.sh OUTDIR [extra cmake args...]
# Environment: STAGES (comma list of build, test, kernels, e2e, eval, sweep, sparse,
# authors, trace, peers, qwen; default build,test,kernels,e2e,eval), CTEST_JOBS (gpu tests
# side by side, default 8), CTEST_TIMEOUT (seconds for all of them, default 3600), DEBS (Debian packages to unpack
# where a library is missing), KERNEL_CASES (default gemm,attention,decode,selection),
# KERNEL_ARGS (more --kernels flags, e.g. "--ctx 4k,32k"), ATTENTION_KERNELS (the other
# --attention-kernel choices timed after the default; "" for none), E2E_CTX, EVAL_MODEL (default
# the SmolLM2 GGUF in the model cache), EVAL_ARGS (more --eval flags, e.g.
# --eval-corpus), SWEEP_TIMEOUT (seconds, default 560), SPARSE_ATTENTION_KERNELS,
# SPARSE_CTX, SPARSE_BATCH4_CTX, SPARSE_METHODS, SPARSE_WARMUP, SPARSE_TIMEOUT, AUTHORS,
# AUTHORS_LENGTHS, QWEN_LAYERS, QWEN_CTX, QWEN_METHODS, QWEN_SPARSE_CTX,
# QWEN_SPARSE_METHODS, QWEN_PEER_CTX (each stage's comment says what it does with them),
# BUILD_GPU, PYTHON (default python3: on the lent machines the one with torch and h5py).
set -uo pipefail
out=${1:?usage: scripts/gpu-suite.sh OUTDIR [cmake args...]}
shift
mkdir -p "$out"
build=${BUILD_GPU:-build-gpu}
jobs=$(nproc)

stages=,${STAGES:-build,test,kernels,e2e,eval},
log() { echo "[gpu-suite] $*" | tee -a "$out/summary.txt"; }
stage() { [[ $stages == *",$1,"* ]]; }
python=${PYTHON:-python3}
# The SM clock, board power and temperature every 100 ms into FILE while a measurement
# runs (the power limit shows as a clock below the board's maximum): clocks_start FILE,
# the measurement, clocks_stop.
clocks_start() {
  nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu --format=csv -lms 100 >"$1" 2>&1 &
  clocks_pid=$!
}
clocks_stop() { kill "$clocks_pid" 2>/dev/null; }
gpu_rc=0

# The lent GPU machines lack cJSON (and may lack PCRE2's headers): Debian packages of them
# carried in DEBS (default .carry/debs; `apt-get download libcjson1 libcjson-dev
# libpcre2-dev` here) are unpacked where pkg-config cannot find them.
debs=${DEBS:-.carry/debs}
if [[ -d $debs ]]; then
  pkg-config --exists libcjson || for f in "$debs"/libcjson*.deb; do dpkg -x "$f" /; done
  pkg-config --exists libpcre2-8 || for f in "$debs"/libpcre2-dev*.deb; do dpkg -x "$f" /; done
  ldconfig 2>/dev/null || true
fi

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv >"$out/gpu.txt" 2>&1
log "gpu: $(tail -n +2 "$out/gpu.txt" | head -1)"

if stage build; then
  if ! cmake -S . -B "$build" -DUNIPREFILL_CUDA=ON -DCMAKE_BUILD_TYPE=Release "$@" >"$out/configure.log" 2>&1; then
    log "configure failed"; tail -40 "$out/configure.log"; exit 1
  fi
  if ! cmake --build "$build" -j "$jobs" >"$out/build.log" 2>&1; then
    log "build failed"; grep -E "error|Error" "$out/build.log" | head -40; exit 1
  fi
  log "build ok"
fi

if stage test; then
  # Side by side: the tests' time is their CPU references, one core each (gpu_ops_test
  # runs as shards); the NCCL tests are RUN_SERIAL.
  start=$(date +%s)
  timeout "${CTEST_TIMEOUT:-3600}" ctest --test-dir "$build" -L gpu -j "${CTEST_JOBS:-8}" -V >"$out/ctest-gpu.log" 2>&1
  gpu_rc=$?
  log "ctest -L gpu took $(( $(date +%s) - start )) s"
  grep -E "Test +#[0-9]+:|tests passed|tests failed" "$out/ctest-gpu.log" >>"$out/summary.txt"
  log "ctest -L gpu: rc=$gpu_rc; $(grep -E 'tests passed|tests failed' "$out/ctest-gpu.log" | tail -1)"
fi

# Where the CUDA backend parts from the CPU on the Qwen3-Next fixture prompt that bf16
# routing decides (docs/kernels/gated_deltanet.md): layer 0's moe_router row 63 should
# show its 2nd and 3rd logits crossing.
if stage trace; then
  ids=$(grep -A1 "^prompt len64" tests/data/qwen3_next/tiny/reference.txt | sed -n 2p | cut -d' ' -f2)
  tests/tools/block_trace_diff.sh "$build/tests/checkpoint_logits" tests/data/qwen3_next/tiny "$ids" 1 \
    >"$out/trace_len64.txt" 2>&1
  log "block trace of tiny/len64: rc=$?; $(grep -E '^logits' "$out/trace_len64.txt")"
fi

# Kernel timings at the Llama-3.1-8B shapes (GEMMs at 32K tokens, attention 4K..128K,
# decode and selection batches): the table in kernels.md, every field in kernels.h5,
# whose values check_kernels_table.py then checks against the shape formulas.
if stage kernels; then
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
# The other head_dim-128 prefill kernels at the same shapes (docs/kernels/attention.md
# compares them): what the default gains over each.
for kernel in ${ATTENTION_KERNELS-wgmma-cp-async}; do
  timeout 300 "$build/uniprefill-bench" --kernels --backend cuda --model llama-3.1-8b --kernel-cases attention \
    --ctx 16k,32k,64k --kernel-repeats 10 --attention-kernel "$kernel" -o "$out/kernels-$kernel.h5" \
    >"$out/kernels-$kernel.md" 2>"$out/kernels-$kernel.log"
  log "attention --attention-kernel $kernel: rc=$?; TFLOP/s $(grep -E '^\| attention' "$out/kernels-$kernel.md" | awk -F'|' '{printf "%s", $6}')"
done
fi

# End to end on Llama-3.1-8B (random weights): dense against UniPrefill at top-p 0.99
# (random weights keep nearly everything) and at fixed budgets, batch 1 and 4 x 8K.
if stage e2e; then
  methods=dense,uniprefill,uniprefill:keep=0.3,uniprefill:keep=0.5
  timeout 600 "$build/uniprefill-bench" --backend cuda --model llama-3.1-8b --ctx ${E2E_CTX:-8k,32k,64k} \
    --concurrency 1 --method $methods --output-len 1 --requests 2 -o "$out/e2e_batch1.h5" >"$out/e2e_batch1.txt" 2>&1
  log "e2e batch 1: rc=$?"
  timeout 300 "$build/uniprefill-bench" --backend cuda --model llama-3.1-8b --ctx 8k --concurrency 4 \
    --method $methods --output-len 4 --requests 8 -o "$out/e2e_4x8k.h5" >"$out/e2e_4x8k.txt" 2>&1
  log "e2e 4 x 8K: rc=$?"
fi

# Fidelity on the real model (SmolLM2-135M-Instruct): every RULER-style task at 2K, 4K
# and 8K for dense, UniPrefill at top-p 0.99 and 0.9, and a fixed budget.
if stage eval; then
  model=${EVAL_MODEL:-${UNIPREFILL_MODEL_CACHE:-$HOME/.cache/uniprefill-bench/models}/SmolLM2-135M-Instruct.Q4_1.gguf}
  start=$(date +%s)
  # shellcheck disable=SC2086 # EVAL_ARGS is a list of flags
  timeout 600 "$build/uniprefill-bench" --backend cuda --model "$model" --eval all --ctx 2k,4k,8k \
    --eval-samples 8 --eval-batch 8 --method dense,uniprefill,uniprefill:p=0.9,uniprefill:keep=0.3 ${EVAL_ARGS:-} \
    -o "$out/eval.h5" >"$out/eval.md" 2>"$out/eval.log"
  log "eval: rc=$? in $(( $(date +%s) - start )) s"
  cat "$out/eval.md" >>"$out/summary.txt"
fi

# Issue 5's sweep on Llama-3.1-8B (random weights): context x concurrency for dense,
# fixed budgets 0.2 / 0.3 / 0.5 and top-p 0.99; long contexts at the concurrencies the
# 80 GB fit (more requests than the KV pool holds wait in the queue).
if stage sweep; then
  methods=dense,uniprefill:keep=0.2,uniprefill:keep=0.3,uniprefill:keep=0.5,uniprefill
  t=${SWEEP_TIMEOUT:-560}
  start=$(date +%s)
  timeout "$t" "$build/uniprefill-bench" --backend cuda --model llama-3.1-8b --ctx 8k,32k --concurrency 1,4,8,16 \
    --method $methods --output-len 4 --gpu-mem-fraction 0.9 -o "$out/sweep_8k_32k.h5" >"$out/sweep_8k_32k.md" \
    2>"$out/sweep_8k_32k.log"
  log "sweep 8K/32K x 1/4/8/16: rc=$? in $(( $(date +%s) - start )) s"
  # 127K: a 128K prompt plus its output tokens would exceed the 131,072-token context.
  for point in "64k 1,4" "127k 1"; do
    set -- $point
    start=$(date +%s)
    timeout "$t" "$build/uniprefill-bench" --backend cuda --model llama-3.1-8b --ctx "$1" --concurrency "$2" \
      --method $methods --output-len 2 --warmup 0 --gpu-mem-fraction 0.9 -o "$out/sweep_$1.h5" \
      >"$out/sweep_$1.md" 2>"$out/sweep_$1.log"
    log "sweep $1 x $2: rc=$? in $(( $(date +%s) - start )) s"
  done
fi

# Issue 13's open GPU rows: the sparse estimators and kernels per layer at 32K with both
# XAttention score kernels (UP_XA_SCORES), then TTFT of every method at its defaults and
# at density caps, measured against the speed model's prediction (docs/kernels/sparse_attention.md).
if stage sparse; then
  # The dense and block-sparse kernels side by side (the 5 % requirement at density 1),
  # once per prefill kernel choice: the default (the listed TMA schedule on Hopper) and
  # mma-sync (the sparse methods' other kernel), with the SM clock sampled.
  for kernel in ${SPARSE_ATTENTION_KERNELS-auto mma-sync}; do
    clocks_start "$out/clocks_sparse_$kernel.csv"
    timeout 300 "$build/uniprefill-bench" --kernels --backend cuda --model llama-3.1-8b --ctx 32k \
      --kernel-cases attention,sparse --attention-kernel "$kernel" -o "$out/sparse_kernels_$kernel.h5" \
      >"$out/sparse_kernels_$kernel.md" 2>"$out/sparse_kernels_$kernel.log"
    log "attention and sparse kernels, --attention-kernel $kernel: rc=$?"
    clocks_stop
    cat "$out/sparse_kernels_$kernel.md" >>"$out/summary.txt"
  done
  # TTFT per method at SPARSE_CTX (a comma list, batch 1) and SPARSE_BATCH4_CTX (4 prompts
  # at once, each length in turn);
  # SPARSE_ATTENTION_KERNELS="" skips the per-layer rows above. UP_XA_SCORES from the
  # environment picks XAttention's score kernel for these runs too.
  methods=${SPARSE_METHODS:-dense,uniprefill:keep=0.3,minference,minference:density=0.3,flexprefill,flexprefill:density=0.3,flexprefill:density=0.1,xattention,xattention:density=0.3,xattention:density=0.1}
  # One run file over every length (analysis/sparse_comparison.py draws speedup against
  # length from it); each point is flushed as it ends, so a cut run keeps what it did.
  ctx=${SPARSE_CTX:-32k}
  start=$(date +%s)
  timeout "${SPARSE_TIMEOUT:-560}" "$build/uniprefill-bench" --backend cuda --model llama-3.1-8b --ctx "$ctx" \
    --concurrency 1 --method "$methods" --output-len 1 --requests 1 --warmup "${SPARSE_WARMUP:-1}" \
    -o "$out/sparse_ttft_1x.h5" >"$out/sparse_ttft_1x.md" 2>"$out/sparse_ttft_1x.log"
  log "sparse TTFT 1 x $ctx (UP_XA_SCORES=${UP_XA_SCORES:-mma}): rc=$? in $(( $(date +%s) - start )) s"
  cat "$out/sparse_ttft_1x.md" >>"$out/summary.txt"
  for ctx in ${SPARSE_BATCH4_CTX:-}; do
    start=$(date +%s)
    timeout 560 "$build/uniprefill-bench" --backend cuda --model llama-3.1-8b --ctx "$ctx" --concurrency 4 \
      --method "$methods" --output-len 1 --requests 4 --warmup 0 -o "$out/sparse_ttft_4x$ctx.h5" \
      >"$out/sparse_ttft_4x$ctx.md" 2>"$out/sparse_ttft_4x$ctx.log"
    log "sparse TTFT 4 x $ctx (UP_XA_SCORES=${UP_XA_SCORES:-mma}): rc=$? in $(( $(date +%s) - start )) s"
    cat "$out/sparse_ttft_4x$ctx.md" >>"$out/summary.txt"
  done
fi

# The authors' estimation code on the same q/k as ours (AUTHORS: a folder holding
# checkouts named minference, flexprefill and xattention).
if stage authors; then
  authors=${AUTHORS:?AUTHORS must name the folder of the checkouts of the three methods}
  timeout 560 "$python" tests/reference/sparse_authors_compare.py --minference "$authors/minference" \
    --flexprefill "$authors/flexprefill" --xattention "$authors/xattention" --lengths ${AUTHORS_LENGTHS:-8192,32768} \
    --out "$out/authors.tsv" >"$out/authors.txt" 2>"$out/authors.log"
  log "authors' estimators: rc=$?"
  cat "$out/authors.txt" >>"$out/summary.txt"
fi

# Issue 17's peers in the same call: PyTorch SDPA forced to cuDNN on the attention shapes
# the kernels stage times (32 q / 8 kv heads of 128 at 8K-128K, batch 1 and 4; Gemma 3
# 12B's 16 / 8 of 256), ours on the head_dim-256 shapes, and the end-to-end Llama-3.1-8B
# prefill against transformers with cuDNN attention (1 x 8K, 1 x 32K, 4 x 8K).
if stage peers; then
  peer=scripts/peer_ttft.py
  "$python" "$peer" attention --heads 32 --kv-heads 8 --head-dim 128 --ctx 8k,32k,64k,128k --backend cudnn \
    --out "$out/peers.csv" >>"$out/peers.log" 2>&1
  "$python" "$peer" attention --heads 32 --kv-heads 8 --head-dim 128 --ctx 8k,32k --batch 4 --backend cudnn \
    --out "$out/peers.csv" >>"$out/peers.log" 2>&1
  "$python" "$peer" attention --heads 16 --kv-heads 8 --head-dim 256 --ctx 8k,32k --backend cudnn \
    --out "$out/peers.csv" >>"$out/peers.log" 2>&1
  log "cuDNN attention: rc=$?"
  timeout 300 "$build/uniprefill-bench" --kernels --backend cuda --model gemma-3-12b --kernel-cases attention \
    --ctx 8k,32k --kernel-repeats 10 -o "$out/kernels_hd256.h5" >"$out/kernels_hd256.md" 2>"$out/kernels_hd256.log"
  log "attention head_dim 256 (gemma-3-12b): rc=$?"
  # The SM clock and board power while the model runs (attn_tflops against --kernels'
  # attention rows: how much of the in-model loss is the clock).
  clocks_start "$out/clocks_e2e.csv"
  timeout 300 "$build/uniprefill-bench" --backend cuda --model llama-3.1-8b --ctx 8k,32k --concurrency 1 \
    --method dense --output-len 1 --requests 3 -o "$out/e2e_dense_1x.h5" >"$out/e2e_dense_1x.md" 2>"$out/e2e_dense_1x.log"
  rc=$?
  clocks_stop
  log "ours, Llama-3.1-8B 1 x 8K / 32K: rc=$rc"
  timeout 300 "$build/uniprefill-bench" --backend cuda --model llama-3.1-8b --ctx 8k --concurrency 4 \
    --method dense --output-len 1 --requests 4 -o "$out/e2e_dense_4x8k.h5" >"$out/e2e_dense_4x8k.md" 2>"$out/e2e_dense_4x8k.log"
  log "ours, Llama-3.1-8B 4 x 8K: rc=$?"
  "$python" "$peer" model --model llama-3.1-8b --ctx 8k,32k --attn cudnn --out "$out/peers.csv" >>"$out/peers.log" 2>&1
  "$python" "$peer" model --model llama-3.1-8b --ctx 8k --batch 4 --attn cudnn --out "$out/peers.csv" \
    >>"$out/peers.log" 2>&1
  log "transformers + cuDNN, Llama-3.1-8B: rc=$?"
  cat "$out/peers.csv" "$out/kernels_hd256.md" "$out/e2e_dense_1x.md" "$out/e2e_dense_4x8k.md" >>"$out/summary.txt"
fi

# Issue 14 at reduced depth (QWEN_LAYERS, default 16: drops after layers 7, 11 and 15):
# dense and UniPrefill at fixed budgets at 8K-128K, the sparse baselines at QWEN_SPARSE_CTX
# ("" for none), the time account of --kernels, and transformers' Qwen3-Next at the same
# depth.
if stage qwen; then
  layers=${QWEN_LAYERS:-16}
  start=$(date +%s)
  timeout 400 "$build/uniprefill-bench" --backend cuda --model qwen3-next-80b-a3b --layers "$layers" \
    --ctx "${QWEN_CTX:-8k,32k,64k,128k}" --concurrency 1 --method "${QWEN_METHODS:-dense,uniprefill:keep=0.3,uniprefill:keep=0.5}" \
    --output-len 1 --requests 1 -o "$out/qwen_ttft.h5" >"$out/qwen_ttft.md" 2>"$out/qwen_ttft.log"
  log "Qwen3-Next $layers layers TTFT: rc=$? in $(( $(date +%s) - start )) s"
  # The sparse baselines touch only the 1 in 4 full-attention layers.
  if [[ -n ${QWEN_SPARSE_CTX-32k} ]]; then
    start=$(date +%s)
    timeout 300 "$build/uniprefill-bench" --backend cuda --model qwen3-next-80b-a3b --layers "$layers" \
      --ctx "${QWEN_SPARSE_CTX-32k}" --concurrency 1 \
      --method "${QWEN_SPARSE_METHODS:-dense,minference,flexprefill,flexprefill:density=0.1,xattention,xattention:density=0.1}" \
      --output-len 1 --requests 1 -o "$out/qwen_sparse.h5" >"$out/qwen_sparse.md" 2>"$out/qwen_sparse.log"
    log "Qwen3-Next $layers layers, sparse baselines: rc=$? in $(( $(date +%s) - start )) s"
    cat "$out/qwen_sparse.md" >>"$out/summary.txt"
  fi
  timeout 300 "$build/uniprefill-bench" --kernels --backend cuda --model qwen3-next-80b-a3b --layers "$layers" \
    --ctx 8k,32k --kernel-tokens 32768 --kernel-cases gemm,attention,deltanet,moe -o "$out/qwen_kernels.h5" \
    >"$out/qwen_kernels.md" 2>"$out/qwen_kernels.log"
  log "Qwen3-Next --kernels: rc=$?"
  "$python" scripts/peer_ttft.py model --model qwen3-next-80b-a3b --layers "$layers" --ctx "${QWEN_PEER_CTX:-8k,32k}" \
    --out "$out/qwen_peer.csv" >"$out/qwen_peer.log" 2>&1
  log "transformers Qwen3-Next $layers layers: rc=$?"
  cat "$out/qwen_ttft.md" "$out/qwen_kernels.md" "$out/qwen_peer.csv" >>"$out/summary.txt"
fi

exit $gpu_rc
