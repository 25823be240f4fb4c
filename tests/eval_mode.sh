#!/usr/bin/env bash
# eval_mode.sh — uniprefill-bench --eval end to end on the tiny random Llama-2 GGUF
# (hidden 8, head_dim 4, 1 layer; random weights, so accuracy is whatever it is): the
# run file's eval tables check out (tests/check_eval_file.py), two ranks give the same
# rows as one, and the serving sweep runs on the same checkpoint via --model PATH; a
# copy whose embedding is NaN scores every sample 0 with a note and fails every sweep
# request with the error status, exit 0 both (issue 18).
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
for column in "top-1 content = dense" "KL content" "same answer" "needles after drops"; do
  grep -q "| $column |" "$work/one.txt" || { echo "the table lacks '$column'"; cat "$work/one.txt"; exit 1; }
done
"${check[@]}" "$work/one.h5" --rows 2 --ctx 512 --layers 1 --methods "$methods" --max-new 4

echo "== the same on two ranks (the second has no prompt)"
"${mpi[@]}" "$bin" "${eval_args[@]}" --eval niah_single --eval-samples 1 -o "$work/one_2ranks.h5" >/dev/null
"${check[@]}" --same "$work/one.h5" "$work/one_2ranks.h5"

echo "== two tasks x 3 samples in batches of 2, one rank and two"
"$bin" "${eval_args[@]}" --eval niah_single,kv_retrieval --eval-samples 3 --eval-batch 2 -o "$work/six.h5" >/dev/null
"${mpi[@]}" "$bin" "${eval_args[@]}" --eval niah_single,kv_retrieval --eval-samples 3 --eval-batch 2 \
  -o "$work/six_2ranks.h5" >/dev/null
"${check[@]}" "$work/six.h5" --rows 12 --ctx 512 --layers 1 --methods "$methods" --max-new 4 >/dev/null
"$python" - "$work/six.h5" <<'PY'
import sys
import h5py
with h5py.File(sys.argv[1], "r") as f:
    samples = f["eval_samples"][()]
    summary = f["eval_summary"][()]
# Both tasks place needles the answer depends on (a niah sentence, a JSON pair): every
# sample knows its needle's tokens, and the method (one drop layer) has one rate.
assert all(samples["needle_tokens"] > 0), samples["needle_tokens"]
for s in summary:
    rates = s["needle_survival"].decode()
    expected = 0 if s["method"] == b"dense" else 1
    assert (len(rates.split(",")) if rates else 0) == expected, (s["method"], rates)
    assert s["n_needle_samples"] == s["n_samples"], s
print(f"{sys.argv[1]}: every sample's needle placed, one survival rate per drop layer")
PY
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
echo "== non-finite activations: every sample scored 0 with a note, the run goes on (issue 18)"
# A copy of the model whose embedding bytes are all 0xff: NaN in every float type and
# in every quantized block's scale, so each prompt's logits are NaN.
"$python" - "$model" "$work/nan.gguf" "$(dirname "$checker")/reference" <<'PY'
import shutil
import sys
sys.path.insert(0, sys.argv[3])
from llama_gguf_reference import GGML_TYPES, GGUFReader
reader = GGUFReader(sys.argv[1])
dims, ggml_type, offset = reader.tensors["token_embd.weight"]
_, block_elems, block_bytes = GGML_TYPES[ggml_type]
n_bytes = dims[0] * dims[1] // block_elems * block_bytes
shutil.copyfile(sys.argv[1], sys.argv[2])
with open(sys.argv[2], "r+b") as f:
    f.seek(reader.data_start + offset)
    f.write(b"\xff" * n_bytes)
PY
"$bin" "${eval_args[@]:2}" --model "$work/nan.gguf" --eval niah_single --eval-samples 2 -o "$work/nan.h5" \
  >"$work/nan.txt"
"$python" - "$work/nan.h5" <<'PY'
import math
import sys
import h5py
with h5py.File(sys.argv[1], "r") as f:
    samples = f["eval_samples"][()]
    assert len(samples) == 4, len(samples)
    for row in samples:
        assert row["score"] == 0 and row["partial"] == 0, row
        assert row["generated"].startswith(b"[non-finite logits"), row["generated"]
        assert row["first_token"] == -1 and row["top1_agrees"] == 0, row
        assert math.isnan(row["kl_vs_dense"]), row["kl_vs_dense"]
    summary = f["eval_summary"][()]
    assert all(row["accuracy"] == 0 for row in summary), summary["accuracy"]
    print(f"{sys.argv[1]}: {len(samples)} samples with NaN logits, each scored 0 with a note")
PY
# The sweep on the same copy: every request fails with the error status, counted, exit 0.
"$bin" --model "$work/nan.gguf" --ctx 256 --concurrency 2 --method "$methods" --output-len 2 --warmup 0 --threads 1 --repetitions 1 \
  --quiet -o "$work/nan_sweep.h5" >/dev/null
"$python" - "$work/nan_sweep.h5" <<'PY'
import sys
import h5py
with h5py.File(sys.argv[1], "r") as f:
    for name in sorted(f["points"]):
        requests = f["points"][name]["requests"][()]
        assert list(requests["status"]) == [3, 3], requests["status"]
        assert all(e.startswith(b"non-finite activations") for e in requests["error"]), requests["error"]
    summary = f["summary"][()]
    assert len(summary) == 2 and list(summary["n_failed"]) == [2, 2], summary["n_failed"]
    print(f"{sys.argv[1]}: every request of {len(f['points'])} points failed with non-finite activations")
PY
echo "eval_mode: all checks passed"
