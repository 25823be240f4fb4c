#!/usr/bin/env bash
# kernels_mode.sh — end to end: `uniprefill-bench --kernels` on the CPU backend with
# tiny-llama at tiny sizes finishes in seconds, exits 0, prints one table row per case
# with an error column and writes a /kernels table that check_kernels_table.py accepts
# (positive times, FLOPs and bytes equal to the shape formulas, no floors or targets on
# a CPU, error 0: the CPU is the reference); then two ranks
# on this one host: only the first times (they share the CPU), and rank 0 writes the
# same cases; then tiny-qwen3-next's delta rule and experts (5 cases); last, the time
# account under the table (per prompt length, block kinds summed over the layers).
# Usage: kernels_mode.sh BINARY PYTHON CHECK_SCRIPT MPIEXEC
set -u
bin=$(realpath "$1")
python=$2
check=$3
mpiexec=$4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# 4 GEMMs, attention at 2 lengths and 1 batch, 1 decode batch, selection at 2 lengths and
# 1 batch, sparse attention at 2 lengths x 3 densities, the three estimators at 2 lengths.
cases=23
args=(--kernels --backend cpu --threads 1 --kernel-tokens 64 --ctx 300,512 --kernel-batches 2x300
      --kernel-repeats 3 --kernel-warmup 1 --quiet)

start=$(date +%s)
"$bin" "${args[@]}" -o "$work/one.h5" >"$work/stdout" 2>"$work/stderr"
rc=$?
elapsed=$(( $(date +%s) - start ))
if [[ $rc -ne 0 ]]; then
  echo "FAIL: --kernels exited $rc"; cat "$work/stderr"; exit 1
fi
rows=$(sed -n '1,/^$/p' "$work/stdout" | grep -c '^| [a-z]') # the kernels table: up to the time account
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

# The time account: tiny-qwen3-next's 6 DeltaNet, 2 attention and 8 MoE layers, each
# block's total the sum of its kernel and GEMM parts, the timed total their sum.
"$bin" --kernels --backend cpu --threads 1 --model tiny-qwen3-next --kernel-cases gemm,attention,deltanet,moe \
  --ctx 130 --kernel-tokens 130 --kernel-repeats 3 --kernel-warmup 1 --quiet -o "$work/account.h5" \
  >"$work/stdout4" 2>"$work/stderr4"
rc=$?
if [[ $rc -ne 0 ]]; then
  echo "FAIL: --kernels for the time account exited $rc"; cat "$work/stderr4"; exit 1
fi
"$python" - "$work/stdout4" <<'PY' || exit 1
import sys
text = open(sys.argv[1]).read()
assert "Time account of one 130-token prompt, model tiny-qwen3-next, 8 layers:" in text, text
rows = {}
for line in text.split("Time account", 1)[1].splitlines():
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) == 10 and cells[1].isdigit():
        rows[cells[0]] = [float(c) for c in cells[1:5]]
assert {k: v[0] for k, v in rows.items()} == {"deltanet": 6, "attention": 2, "moe": 8, "timed total": 8}, rows
for name, (layers, kernel, gemm, total) in rows.items():
    assert kernel > 0 and gemm > 0 and abs(kernel + gemm - total) <= 0.011 * total + 0.002, (name, rows[name])
parts = sum(v[3] for k, v in rows.items() if k != "timed total")
assert abs(parts - rows["timed total"][3]) <= 0.011 * parts + 0.005, rows
print("ok: the time account sums its blocks")
PY
