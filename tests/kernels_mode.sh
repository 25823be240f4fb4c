#!/usr/bin/env bash
# kernels_mode.sh — end to end: `uniprefill-bench --kernels` on the CPU backend with
# tiny-llama at tiny sizes finishes in seconds, exits 0, prints one table row per case
# with an error column and writes a /kernels table that check_kernels_table.py accepts
# (positive times, FLOPs and bytes equal to the shape formulas, no floors or targets on
# a CPU, error 0: the CPU is the reference); then two ranks
# on this one host: only the first times (they share the CPU), and rank 0 writes the
# same cases; last, tiny-qwen3-next's delta rule and experts (5 cases).
# Usage: kernels_mode.sh BINARY PYTHON CHECK_SCRIPT MPIEXEC
set -u
bin=$(realpath "$1")
python=$2
check=$3
mpiexec=$4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# 4 GEMMs, attention at 2 lengths, 1 decode batch, selection at 2 lengths and 1 batch,
# sparse attention at 2 lengths x 3 densities, the three estimators at 2 lengths.
cases=22
args=(--kernels --backend cpu --threads 1 --kernel-tokens 64 --ctx 300,512 --kernel-batches 2x300
      --kernel-repeats 3 --kernel-warmup 1 --quiet)

start=$(date +%s)
"$bin" "${args[@]}" -o "$work/one.h5" >"$work/stdout" 2>"$work/stderr"
rc=$?
elapsed=$(( $(date +%s) - start ))
if [[ $rc -ne 0 ]]; then
  echo "FAIL: --kernels exited $rc"; cat "$work/stderr"; exit 1
fi
rows=$(grep -c '^| [a-z]' "$work/stdout")
if [[ $rows -ne $((cases + 1)) ]]; then # the header row starts with "| case"
  echo "FAIL: the table has $((rows - 1)) case rows, expected $cases:"; cat "$work/stdout"; exit 1
fi
if ! grep -Eq '^\| case .*\| +error +\|$' "$work/stdout"; then
  echo "FAIL: the table has no error column (the last):"; cat "$work/stdout"; exit 1
fi
echo "ok: --kernels on the CPU in ${elapsed}s, $cases rows"
if [[ $elapsed -gt 60 ]]; then
  echo "FAIL: a tiny --kernels run took ${elapsed}s"; exit 1
fi
"$python" "$check" "$work/one.h5" --cases $cases || exit 1

"$mpiexec" --oversubscribe -np 2 "$bin" "${args[@]}" -o "$work/two.h5" \
  >"$work/stdout2" 2>"$work/stderr2"
rc=$?
if [[ $rc -ne 0 ]]; then
  echo "FAIL: two ranks exited $rc"; cat "$work/stderr2"; exit 1
fi
"$python" "$check" "$work/two.h5" --cases $cases || exit 1
"$python" - "$work/two.h5" <<'PY' || exit 1
import sys
import h5py
with h5py.File(sys.argv[1], "r") as f:
    assert int(f.attrs["world_size"]) == 2, f.attrs["world_size"]
    ranks = set(int(r) for r in f["kernels"]["rank"])
    assert ranks == {0}, f"ranks {ranks} timed; only rank 0 owns this host's CPU"
print("ok: two ranks on one host: rank 0 timed, rank 1 waited")
PY

# A Gated DeltaNet model with MoE layers: the delta rule at two lengths (a chunk boundary
# inside each), the routed experts (a matmul per expert, and grouped) and their dense
# equivalent, checked against the same formulas.
"$bin" --kernels --backend cpu --threads 1 --model tiny-qwen3-next --kernel-cases deltanet,moe --ctx 130,300 \
  --kernel-tokens 64 \
  --kernel-repeats 3 --kernel-warmup 1 --quiet -o "$work/deltanet.h5" >"$work/stdout3" 2>"$work/stderr3"
rc=$?
if [[ $rc -ne 0 ]]; then
  echo "FAIL: --kernels --kernel-cases deltanet,moe exited $rc"; cat "$work/stderr3"; exit 1
fi
"$python" "$check" "$work/deltanet.h5" --cases 5 || exit 1
