#!/usr/bin/env bash
# eval_mode.sh — uniprefill-bench --eval end to end on the tiny random Llama-2 GGUF
# (hidden 8, head_dim 4, 1 layer; random weights, so accuracy is whatever it is): the
# run file's eval tables check out (tests/check_eval_file.py), two ranks give the same
# rows as one, and the serving sweep runs on the same checkpoint via --model PATH.
# Usage: eval_mode.sh BINARY PYTHON CHECKER MPIEXEC MODEL
set -eu
bin=$(realpath "$1") python=$2 checker=$(realpath "$3") mpiexec=$4 model=$(realpath "$5")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
methods=dense,uniprefill:keep=0.3
eval_args=(--model "$model" --ctx 512 --eval-max-new 4 --method "$methods" --threads 1 --quiet)
check=("$python" "$checker")
mpi=("$mpiexec" -np 2 --oversubscribe --bind-to none)

echo "== one sample, one rank"
"$bin" "${eval_args[@]}" --eval niah_single --eval-samples 1 -o "$work/one.h5" >"$work/one.txt"
grep -q "uniprefill:keep=0.3 | 512 | niah_single" "$work/one.txt" || { cat "$work/one.txt"; exit 1; }
"${check[@]}" "$work/one.h5" --rows 2 --ctx 512 --layers 1 --methods "$methods" --max-new 4

echo "== the same on two ranks (the second has no prompt)"
"${mpi[@]}" "$bin" "${eval_args[@]}" --eval niah_single --eval-samples 1 -o "$work/one_2ranks.h5" >/dev/null
"${check[@]}" --same "$work/one.h5" "$work/one_2ranks.h5"

echo "== two tasks x 3 samples in batches of 2, one rank and two"
"$bin" "${eval_args[@]}" --eval niah_single,kv_retrieval --eval-samples 3 --eval-batch 2 -o "$work/six.h5" >/dev/null
"${mpi[@]}" "$bin" "${eval_args[@]}" --eval niah_single,kv_retrieval --eval-samples 3 --eval-batch 2 \
  -o "$work/six_2ranks.h5" >/dev/null
"${check[@]}" "$work/six.h5" --rows 12 --ctx 512 --layers 1 --methods "$methods" --max-new 4 >/dev/null
"${check[@]}" --same "$work/six.h5" "$work/six_2ranks.h5"

echo "== the serving sweep with --model PATH"
"$bin" --model "$model" --ctx 256 --concurrency 1 --method dense --output-len 2 --warmup 0 --repetitions 1 \
  --threads 1 --quiet -o "$work/sweep.h5" >/dev/null
"$python" - "$work/sweep.h5" <<'PY'
import sys
import h5py
with h5py.File(sys.argv[1], "r") as f:
    assert f.attrs["model"] == "llama-2-tiny-random", f.attrs["model"]
    requests = f["points/0000/requests"][()]
    assert list(requests["status"]) == [2], requests["status"]
    assert list(requests["prompt_len"]) == [256] and list(requests["output_len"]) == [2], requests
    assert 0 <= requests["first_token"][0] < 32000, requests["first_token"]
    print(f"{sys.argv[1]}: one request of 256 + 2 tokens on {f.attrs['model']} finished")
PY
echo "eval_mode: all checks passed"
