#!/usr/bin/env bash
# kv_pool_sizing.sh — --gpu-mem-fraction sizes the KV pool from free backend memory: a
# share too small for any request fails each request with the cache message (the run
# still exits 0 and records them), a reasonable share lets them all finish.
# Usage: kv_pool_sizing.sh BINARY PYTHON
set -eu
bin=$(realpath "$1") python=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
args=(--ctx 512 --concurrency 2 --method dense --output-len 2 --warmup 0 --threads 1 --quiet)
"$bin" "${args[@]}" --gpu-mem-fraction 0.000001 -o "$work/tiny.h5" >/dev/null
"$bin" "${args[@]}" --gpu-mem-fraction 0.01 -o "$work/some.h5" >/dev/null
"$python" - "$work/tiny.h5" "$work/some.h5" <<'PY'
import sys
import h5py
tiny, some = (h5py.File(p, "r")["points/0000"] for p in sys.argv[1:3])
t, s = tiny["requests"][()], some["requests"][()]
assert list(t["status"]) == [3, 3], t["status"]
assert all(b"KV blocks" in e for e in t["error"]), t["error"]
assert list(s["status"]) == [2, 2], s["status"]
assert some.attrs["kv_blocks_total"] > tiny.attrs["kv_blocks_total"] >= 1
print(f"pool of {tiny.attrs['kv_blocks_total']} block(s): both requests failed with the cache message; "
      f"pool of {some.attrs['kv_blocks_total']} blocks: both finished")
print("2 passed, 0 failed")
PY
