#!/usr/bin/env bash
# trace_replay_smoke.sh — end to end: replay the first 30 rows of the Azure conversation
# trace (sped up 50x, 2 layers, 2 output tokens, so it takes seconds) and check the
# exit code and that the file's point holds 30 requests at the trace's arrival times;
# then a bad trace must end with exit 2 and no results file.
# Usage: trace_replay_smoke.sh BINARY PYTHON SHARED_DIR
set -u
bin=$(realpath "$1")
python=$2
trace="$3/traces/AzureLLMInferenceTrace_conv.csv"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
[[ -r "$trace" ]] || { echo "FAIL: trace $trace is missing"; exit 1; }

"$bin" --trace "$trace" --trace-limit 30 --trace-speedup 50 --concurrency 4 --method dense --layers 2 \
  --output-len-dist fixed:2 --warmup 0 --quiet -o "$work/run.h5" >"$work/stdout" 2>"$work/stderr"
rc=$?
if [[ $rc -ne 0 ]]; then
  echo "FAIL: replay exited $rc"; cat "$work/stderr"; exit 1
fi
"$python" - "$work/run.h5" <<'PY' || exit 1
import sys
import h5py
import numpy as np
with h5py.File(sys.argv[1], "r") as f:
    point = f["points/0000"]
    requests = point["requests"][:]
    workload = point.attrs["workload"]
    workload = workload.decode() if isinstance(workload, bytes) else str(workload)
    assert len(requests) == 30, f"{len(requests)} requests, expected 30"
    assert point.attrs["ctx"] == 0, point.attrs["ctx"]
    assert workload.startswith("trace:AzureLLMInferenceTrace_conv.csv"), workload
    assert point.attrs["prompts_clamped"] == 0 and point.attrs["lines_skipped"] == 0
    assert (requests["status"] == 2).all(), requests["status"]
    # Rows 1 and 2 of the trace: 374 and 396 prompt tokens, 4.3145 s apart (/50).
    assert list(requests["prompt_len"][:2]) == [374, 396], requests["prompt_len"][:2]
    assert abs(requests["arrival_s"][1] - 4.314579 / 50) < 1e-6, requests["arrival_s"][1]
    assert np.all(np.diff(requests["arrival_s"]) >= 0)
    print(f"ok: {len(requests)} requests, workload '{workload}'")
PY

printf 'TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,374,44\n2023-11-16 18:15:47,abc,1\n' >"$work/bad.csv"
"$bin" --trace "$work/bad.csv" --quiet -o "$work/bad.h5" >"$work/stdout" 2>"$work/stderr"
rc=$?
if [[ $rc -ne 2 ]] || ! grep -q "bad.csv:3:" "$work/stderr" || [[ -e "$work/bad.h5" ]]; then
  echo "FAIL: bad trace: exit $rc (expected 2), stderr:"; cat "$work/stderr"; exit 1
fi
echo "ok: bad trace -> $(head -n1 "$work/stderr")"
