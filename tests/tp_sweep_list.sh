#!/usr/bin/env bash
# tp_sweep_list.sh — a --tp list in one run, on the CPU under mpirun: --tp 1,2,4 on four
# ranks runs the same sweep (tiny-llama, dense and UniPrefill with a fixed budget) at
# TP = 1 (dp 4), 2 (dp 2) and 4 (dp 1), one degree after another. Each degree's points
# must hold the per-request records of the TP = 1 points (compare_request_records.py's
# fields and kept tokens per layer), say their tp, dp and transport, and the summary must
# carry the TP scaling against the TP = 1 point of the same shape: tp_speedup = TTFT
# ratio, tp_efficiency = tp_speedup / tp, the modelled collective time (0 at TP = 1,
# positive above) and the cost model's efficiency t / (t + comm), t = TTFT(TP = 1) / tp;
# the measured collective time and its share of the busy time are 0 at TP = 1 (self)
# and positive and finite above, and NaN in the rounds' rows.
# The CSV table shows the new columns, the measured time last. (tp_cli.sh refuses a list with a bad value.)
# Usage: tp_sweep_list.sh BINARY MPIEXEC PYTHON COMPARE_REQUEST_RECORDS
set -eu
bin=$(realpath "$1") mpiexec=$2 python=$3 compare=$(realpath "$4")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
if ! timeout 400 "$mpiexec" -np 4 --oversubscribe --bind-to none "$bin" --backend cpu --model tiny-llama --ctx 300 \
  --concurrency 2 --requests 4 --repetitions 1 --output-len 3 --method dense,uniprefill:keep=0.3 --warmup 1 \
  --threads 1 --quiet --format csv --tp 1,2,4 -o list.h5 >table.csv 2>err.txt; then
  echo "FAIL: --tp 1,2,4 on 4 ranks: the sweep failed" >&2
  cat err.txt >&2
  exit 1
fi
"$python" - list.h5 table.csv "$compare" <<'EOF_PY'
import csv, math, os, sys
import h5py
import numpy as np
run, table, compare = sys.argv[1:4]
sys.path.insert(0, os.path.dirname(compare))
from compare_request_records import FIELDS  # the per-request fields that must not depend on the layout

with h5py.File(run, "r") as f:
    assert f.attrs["tp_list"] == "1,2,4", f.attrs["tp_list"]
    points = [f["points"][name] for name in sorted(f["points"])]
    assert len(points) == 6, len(points)
    layout = [(int(p.attrs["tp"]), int(p.attrs["dp"]), p.attrs["tp_transport"]) for p in points]
    assert layout == [(1, 4, "self")] * 2 + [(2, 2, "mpi")] * 2 + [(4, 1, "mpi")] * 2, layout
    dropped = 0
    for i, p in enumerate(points[2:], start=2):
        whole = points[i % 2]  # the TP = 1 point of the same method
        assert p.attrs["method"] == whole.attrs["method"], (p.attrs["method"], whole.attrs["method"])
        a, b = whole["requests"][()], p["requests"][()]
        assert len(a) == len(b) == 4 and all(a["status"] == 2), (len(a), len(b), a["status"])
        for field in FIELDS:
            assert np.array_equal(a[field], b[field]), (i, field, a[field], b[field])
        assert np.array_equal(whole["request_layer_tokens"][()], p["request_layer_tokens"][()]), i
        dropped += int((b["kept_len"] < b["prompt_len"]).sum())
    assert dropped > 0, "UniPrefill dropped no rows: the comparison would not cover the drop"
    probe = f["tp_probe"][()]
    assert sorted(zip(probe["ranks"], probe["group"])) == [(2, 0), (2, 1), (4, 0)], probe
    s = f["summary"][()]
    assert list(s["tp"]) == [1, 1, 2, 2, 4, 4] and list(s["dp"]) == [4, 4, 2, 2, 1, 1], (s["tp"], s["dp"])
    for i, row in enumerate(s):
        whole = s[i % 2]
        tp = int(row["tp"])
        speedup = whole["ttft_mean_ms"] / row["ttft_mean_ms"]
        assert math.isclose(row["tp_speedup"], speedup, rel_tol=1e-12), (i, row["tp_speedup"], speedup)
        assert math.isclose(row["tp_efficiency"], speedup / tp, rel_tol=1e-12), (i, row["tp_efficiency"])
        comm = row["tp_comm_model_ms"]
        assert (comm == 0) if tp == 1 else (comm > 0), (i, comm)
        t = whole["ttft_mean_ms"] / tp
        assert math.isclose(row["tp_efficiency_model"], t / (t + comm), rel_tol=1e-12), (i, row["tp_efficiency_model"])
        assert 0 < row["tp_efficiency_model"] <= 1, (i, row["tp_efficiency_model"])
        for field in ("tp_comm_ms", "tp_comm_share"):
            measured = row[field]
            assert (measured == 0) if tp == 1 else (math.isfinite(measured) and measured > 0), (i, field, measured)
        # speedup_vs_dense compares within one degree: each dense row is its own reference
        if i % 2 == 0:
            assert row["speedup_vs_dense"] == 1.0, (i, row["speedup_vs_dense"])
        else:
            assert math.isclose(row["speedup_vs_dense"], s[i - 1]["ttft_mean_ms"] / row["ttft_mean_ms"]), i
    for p in points:
        rounds = p["rounds"][()]
        assert all(np.isnan(rounds["tp_comm_ms"])) and all(np.isnan(rounds["tp_comm_share"])), rounds["tp_comm_ms"]
    effs = ", ".join(f"tp {r['tp']} {r['method'].decode()}: {r['tp_efficiency']:.2f} (model {r['tp_efficiency_model']:.2f}, "
                     f"{r['tp_comm_share']:.2f} of busy time in collectives, model {1 - r['tp_efficiency_model']:.2f})"
                     for r in s[2:])
rows = list(csv.DictReader(open(table)))
assert [r["tp"] for r in rows] == ["1", "1", "2", "2", "4", "4"], [r.get("tp") for r in rows]
assert [r["dp"] for r in rows] == ["4", "4", "2", "2", "1", "1"], [r.get("dp") for r in rows]
assert all(r["tp_speedup"] and r["tp_eff"] and r["tp_eff_model"] for r in rows), rows[0]
header = list(rows[0])
assert header[-3:] == ["tp_comm_ms", "tp_comm_share", "attn_tflops"] and header[-4] == "tp_comm_model_ms", header[-4:]
assert [float(r["tp_comm_ms"]) > 0 for r in rows] == [False] * 2 + [True] * 4, [r["tp_comm_ms"] for r in rows]
print(f"records equal at tp 1, 2, 4; {dropped} requests with dropped rows; efficiency {effs}")
EOF_PY
echo "ok: --tp 1,2,4 on 4 ranks runs each degree in turn with TP = 1's records and the TP scaling recorded"
