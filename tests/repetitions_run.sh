#!/usr/bin/env bash
# repetitions_run.sh — --repetitions and --format jsonl end to end on tiny-llama (CPU):
# a closed-loop sweep of 4 points in 3 rounds streams one JSON line per point (parsed back
# with python3's json: the run's identity and every field of the json format on each, one
# line per point, values equal to the run file's summary); the run file keeps every
# request with its round (ids of round r follow round r-1's), the steps' rounds, one row
# per round in each point's rounds table, and the summary's mean and sample stddev of the
# round means beside percentiles pooled over all requests, with the fewer-than-20 mark.
# An open-loop point runs once by default, and --repetitions 2 with it is refused (exit 2).
# Usage: repetitions_run.sh BINARY PYTHON
set -eu
bin=$(realpath "$1") python=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$bin" --ctx 256 --concurrency 1,2 --method dense,uniprefill:keep=0.3 --output-len 2 --warmup 0 --threads 1 \
  --repetitions 3 --format jsonl --quiet -o "$work/rounds.h5" >"$work/rounds.jsonl"
"$bin" --request-rate inf --requests 2 --concurrency 2 --prompt-len 128 --output-len-dist 2 --method dense \
  --layers 1 --warmup 0 --threads 1 --quiet -o "$work/open.h5" >/dev/null
if "$bin" --request-rate 2 --requests 2 --repetitions 2 --quiet -o "$work/refused.h5" >/dev/null 2>"$work/refused.err"; then
  echo "FAIL: --repetitions 2 with --request-rate ran"; exit 1
else
  rc=$?
  [ "$rc" -eq 2 ] || { echo "FAIL: exit $rc for --repetitions 2 with --request-rate, expected 2"; exit 1; }
fi
grep -q -- "--repetitions 2 cannot be combined with --request-rate" "$work/refused.err" ||
  { echo "FAIL: the refusal does not name the flags:"; cat "$work/refused.err"; exit 1; }
[ ! -e "$work/refused.h5" ] || { echo "FAIL: a refused run wrote a file"; exit 1; }

"$python" - "$work" <<'PY'
import json
import math
import sys

import h5py
import numpy as np

work = sys.argv[1]
IDENTITY = ("tool_version", "git_commit", "backend", "device_names", "model", "world_size")
JSON_FIELDS = ("method", "ctx", "conc", "requests", "failed", "ttft_mean_ms", "ttft_p50_ms", "ttft_p99_ms",
               "prefill_tok_s", "model_tflops", "kept_frac", "speedup_vs_dense", "predicted_speedup", "kv_mib_req",
               "kv_vs_dense", "max_resident", "tpot_p99_ms", "itl_p99_ms", "e2e_p99_ms", "req_s", "output_tok_s",
               "goodput_req_s", "repetitions", "percentiles_few_requests", "ttft_mean_round_std_ms",
               "prefill_tok_s_round_std", "model_tflops_round_std", "req_s_round_std", "output_tok_s_round_std",
               "goodput_req_s_round_std", "prefill", "tp", "dp", "tp_speedup", "tp_eff", "tp_eff_model",
               "tp_comm_model_ms", "tp_comm_ms", "tp_comm_share", "attn_tflops")
ROUNDS = 3
failures = 0


def check(ok, what):
    global failures
    if not ok:
        failures += 1
        print(f"FAIL: {what}")


with open(f"{work}/rounds.jsonl") as f:
    text = f.read()
lines = text.splitlines()
check(len(lines) == 4, f"{len(lines)} JSON lines, expected one per point (4)")
points = [json.loads(line) for line in lines]
with h5py.File(f"{work}/rounds.h5", "r") as run:
    summary = run["summary"][()]
    for k, line in enumerate(points):
        check(tuple(line) == IDENTITY + JSON_FIELDS, f"line {k}: keys {list(line)}")
        check(line["git_commit"] == run.attrs["git_commit"] and line["model"] == run.attrs["model"] == "tiny-llama"
              and line["backend"] == run.attrs["backend"] == "cpu"
              and line["device_names"] == run.attrs["device_names"] and line["world_size"] == 1,
              f"line {k}: identity differs from the run file's")
        row = summary[k]
        check(line["method"] == row["method"].decode() and line["conc"] == row["concurrency"], f"line {k}: point")
        check(math.isclose(line["ttft_mean_ms"], row["ttft_mean_ms"], rel_tol=1e-12)
              and math.isclose(line["ttft_mean_round_std_ms"], row["ttft_mean_round_std_ms"], rel_tol=1e-12)
              and math.isclose(line["ttft_p99_ms"], row["ttft_p99_ms"], rel_tol=1e-12),
              f"line {k}: TTFT differs from the summary")
        check(line["repetitions"] == ROUNDS and line["requests"] == ROUNDS * line["conc"], f"line {k}: counts")

    for row in summary:
        point = run["points"][f"{row['point_index']:04d}"]
        req, steps, rounds = point["requests"][()], point["steps"][()], point["rounds"][()]
        per_round = int(row["concurrency"])  # --requests defaults to the concurrency
        name = f"point {row['point_index']}"
        check(len(req) == ROUNDS * per_round == row["n_requests"] == point.attrs["n_requests"],
              f"{name}: {len(req)} requests, expected {ROUNDS} rounds of {per_round}")
        check(list(req["id"]) == list(range(len(req))), f"{name}: ids {req['id']}")
        check(np.array_equal(req["round"], req["id"] // per_round), f"{name}: rounds {req['round']}")
        check(set(steps["round"]) == set(range(ROUNDS)) and np.all(np.diff(steps["round"]) >= 0),
              f"{name}: step rounds {steps['round']}")
        check(point.attrs["repetitions"] == ROUNDS and row["repetitions"] == ROUNDS, f"{name}: repetitions")
        check(len(rounds) == ROUNDS, f"{name}: {len(rounds)} rows in its rounds table")
        ok = req["status"] == 2
        check(ok.all(), f"{name}: a request failed")
        for r in range(ROUNDS):
            mine = req[(req["round"] == r) & ok]
            check(np.isclose(rounds["ttft_mean_ms"][r], mine["ttft_ms"].mean()), f"{name}: round {r}'s TTFT mean")
            check(rounds["n_requests"][r] == per_round, f"{name}: round {r}'s request count")
        means = rounds["ttft_mean_ms"]
        check(np.isclose(row["ttft_mean_ms"], means.mean()), f"{name}: TTFT mean is not the mean of the rounds'")
        check(np.isclose(row["ttft_mean_round_std_ms"], means.std(ddof=1)), f"{name}: not the rounds' sample stddev")
        check(np.isclose(row["prefill_tokens_per_s"], rounds["prefill_tokens_per_s"].mean())
              and np.isclose(row["prefill_tokens_per_s_round_std"], rounds["prefill_tokens_per_s"].std(ddof=1)),
              f"{name}: prefill rate and its spread")
        ttft = req["ttft_ms"][ok]
        check(np.isclose(row["ttft_p50_ms"], np.percentile(ttft, 50))
              and np.isclose(row["ttft_p99_ms"], np.percentile(ttft, 99))
              and np.isclose(row["ttft_std_ms"], ttft.std()), f"{name}: percentiles are not pooled over all requests")
        check(row["percentiles_few_requests"] == 1, f"{name}: {ok.sum()} requests and no few-requests mark")
        check(np.isclose(row["wall_s"], rounds["wall_s"].sum()), f"{name}: wall_s is not the rounds' sum")

with h5py.File(f"{work}/open.h5", "r") as run:
    row = run["summary"][()][0]
    req = run["points/0000/requests"][()]
    check(row["repetitions"] == 1 and len(run["points/0000/rounds"]) == 1, "open loop: not one round")
    check(list(req["round"]) == [0, 0] and math.isnan(row["ttft_mean_round_std_ms"]),
          "open loop: rounds or a spread with one round")

if failures:
    sys.exit(1)
print("repetitions_run: 4 JSON lines and 4 points of 3 rounds checked; open loop ran once; "
      "--repetitions 2 with --request-rate refused")
PY
