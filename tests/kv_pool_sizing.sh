#!/usr/bin/env bash
# kv_pool_sizing.sh — how the KV pool is sized from backend memory, end to end.
# --gpu-mem-fraction: a share too small for any request fails each request with the
# cache message (the run still exits 0 and records them), a reasonable share lets them
# all finish. --mem-limit-mib (points fitted "as memory allows", launcher/sweep/point_memory.h):
# a limit with room for one request at admission size makes dense requests queue (one
# resident at most, all finish) while UniPrefill's trimmed footprints let two in; a
# limit with room for none fails every request but still writes the run (exit 0); a
# limit below the weights refuses to start (exit 2). Tiny-llama's sizes are fixed, so
# these limits give the same pools on any machine with the memory free.
# Usage: kv_pool_sizing.sh BINARY PYTHON
set -eu
bin=$(realpath "$1") python=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# One round each (--repetitions 1): the checks below count one point's requests.
args=(--ctx 512 --concurrency 2 --method dense --output-len 2 --warmup 0 --repetitions 1 --threads 1 --quiet)
"$bin" "${args[@]}" --gpu-mem-fraction 0.000001 -o "$work/tiny.h5" >/dev/null
"$bin" "${args[@]}" --gpu-mem-fraction 0.01 -o "$work/some.h5" >/dev/null

limit=(--ctx 1k --concurrency 4 --output-len 2 --warmup 0 --repetitions 1 --threads 1)
"$bin" "${limit[@]}" --method dense,uniprefill:keep=0.3 --mem-limit-mib 120 -o "$work/queue.h5" \
  >"$work/queue.txt" 2>"$work/queue.err"
grep -q "does not fit .* room for 1 request(s) at once, the others wait for KV" "$work/queue.err" \
  || { echo "FAIL: no note on the fitted point:"; cat "$work/queue.err"; exit 1; }
grep -q "max_resident" "$work/queue.txt" || { echo "FAIL: the table lacks max_resident"; exit 1; }
"$bin" "${limit[@]}" --method dense --mem-limit-mib 100 -o "$work/none.h5" >/dev/null 2>"$work/none.err"
grep -q "no request fits" "$work/none.err" || { echo "FAIL: no note that nothing fits:"; cat "$work/none.err"; exit 1; }
if "$bin" "${limit[@]}" --method dense --mem-limit-mib 50 -o "$work/refused.h5" >/dev/null 2>"$work/refused.err"; then
  echo "FAIL: a limit below the weights ran"; exit 1
else
  rc=$?
  [ "$rc" -eq 2 ] || { echo "FAIL: exit $rc for a limit below the weights, expected 2"; exit 1; }
fi
grep -q "GiB of weights" "$work/refused.err" || { echo "FAIL: the refusal does not name the weights"; exit 1; }
[ ! -e "$work/refused.h5" ] || { echo "FAIL: a refused run wrote a file"; exit 1; }

"$python" - "$work" <<'PY'
import sys
import h5py
work = sys.argv[1]
tiny, some = (h5py.File(f"{work}/{n}.h5", "r")["points/0000"] for n in ("tiny", "some"))
t, s = tiny["requests"][()], some["requests"][()]
assert list(t["status"]) == [3, 3], t["status"]
assert all(b"KV blocks" in e for e in t["error"]), t["error"]
assert list(s["status"]) == [2, 2], s["status"]
assert some.attrs["kv_blocks_total"] > tiny.attrs["kv_blocks_total"] >= 1
print(f"pool of {tiny.attrs['kv_blocks_total']} block(s): both requests failed with the cache message; "
      f"pool of {some.attrs['kv_blocks_total']} blocks: both finished")

with h5py.File(f"{work}/queue.h5", "r") as f:
    summary = {row["method"].decode(): row for row in f["summary"][()]}
    dense, uni = f["points/0000"], f["points/0001"]
    for point in (dense, uni):
        req = point["requests"][()]
        assert list(req["status"]) == [2] * 4, req["status"]
        # One prompt per step, and a pool smaller than the four slots need.
        assert point.attrs["max_batch_tokens"] == 1024 + 4, point.attrs["max_batch_tokens"]
        assert point.attrs["kv_blocks_total"] < 4 * 65 * 8, point.attrs["kv_blocks_total"]
    assert dense.attrs["max_resident"] == 1 and summary["dense"]["max_resident"] == 1
    assert uni.attrs["max_resident"] == 2 and summary["uniprefill:keep=0.3"]["max_resident"] == 2
    req = dense["requests"][()]
    assert all(req["admitted_s"][1:] >= req["finish_s"][:-1]), "dense requests overlapped in a one-request pool"
    print(f"--mem-limit-mib 120: pool of {dense.attrs['kv_blocks_total']} blocks, step budget "
          f"{dense.attrs['max_batch_tokens']}: dense 1 resident at most, UniPrefill keep 0.3 2; all finished")

with h5py.File(f"{work}/none.h5", "r") as f:
    req = f["points/0000/requests"][()]
    assert list(req["status"]) == [3] * 4, req["status"]
    assert all(b"step token budget" in e or b"KV blocks" in e for e in req["error"]), req["error"]
    assert f["summary"][()]["n_failed"][0] == 4
print("--mem-limit-mib 100: every request failed with an error status, the run was written")
print("--mem-limit-mib 50: refused with exit 2 before writing")
print("5 passed, 0 failed")
PY
