#!/usr/bin/env bash
# tp_nccl_one_rank.sh — issue 15's one-GPU check of the nccl transport in the real run:
# the same dense and UniPrefill sweep on the cuda backend with --tp 1 through the group
# of one (--comm self, today's path) and through a one-rank NCCL communicator (--comm
# nccl) gives the same per-request records (compare_request_records.py: ids, lengths,
# kept tokens per layer, first token; timings ignored), and the nccl run file records
# the transport, its library and the probe's one row. Exits 77 without a GPU.
# Usage: tp_nccl_one_rank.sh BINARY MPIEXEC PYTHON COMPARE_SCRIPT TP_COMM_CHECK
set -eu
bin=$(realpath "$1") mpiexec=$2 python=$3 compare=$(realpath "$4") check=$(realpath "$5")
if (($("$check" --count-gpus) == 0)); then
  echo "SKIP: no CUDA device visible"
  exit 77
fi
if ! "$python" -c "import h5py" 2>/dev/null; then
  echo "SKIP: $python has no h5py to read the run files with"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
args=(--backend cuda --tp 1 --ctx 300,700 --concurrency 1,3 --requests 4 --repetitions 1 --output-len 3
      --method dense,uniprefill:keep=0.3 --warmup 0 --quiet)
"$mpiexec" -np 1 --bind-to none "$bin" "${args[@]}" --comm self -o "$work/self.h5" >"$work/self.txt"
"$mpiexec" -np 1 --bind-to none "$bin" "${args[@]}" --comm nccl -o "$work/nccl.h5" >"$work/nccl.txt"
"$python" "$compare" "$work/self.h5" "$work/nccl.h5"
"$python" - "$work/nccl.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    a = f.attrs
    assert a["tp_transport"] == "nccl" and a["tp_size"] == 1 and a["dp_size"] == 1, dict(a)
    assert a["tp_transport_version"].startswith("NCCL "), a["tp_transport_version"]
    p = f["tp_probe"][:]
    assert len(p) == 1 and p["ranks"][0] == 1 and p["time_us"][0] > 0 and p["busbw_gbps"][0] == 0, p
    print(f"nccl run: {a['tp_transport_version']}, probe {p['bytes'][0]} B in {p['time_us'][0]:.1f} us")
PY
echo "ok: --tp 1 through a one-rank NCCL communicator gives the records of the group of one"
