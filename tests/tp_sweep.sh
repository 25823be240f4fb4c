#!/usr/bin/env bash
# tp_sweep.sh — tensor parallelism end to end through the launcher, on the CPU under
# mpirun: the same sweep (dense and UniPrefill with a fixed budget, so rows drop) run as
# TP=1 on one rank, as --tp 2 on two ranks and as dp=2 x tp=2 on four. Each point's
# per-request records must be equal to TP=1's (compare_request_records.py): id,
# status, prompt, kept and output lengths, first output token (the greedy argmax of the
# group's all-gathered fp32 logits), KV bytes (cached, held, dense), kept tokens at
# every layer, output-token times recorded; not timings, nor the rank field. Only the
# groups' leaders, all of them, appear as a record's or a step's rank, UniPrefill must
# have dropped rows, and the run file records the layout. The measured collective time
# (tp_comm_ms, tp_comm_share) is 0 at TP=1 (the self transport) and positive and finite
# at --tp 2. (tp_cli.sh holds the refusals of what --tp > 1 cannot run.)
# Usage: tp_sweep.sh BINARY MPIEXEC PYTHON COMPARE_REQUEST_RECORDS [MODEL]
set -eu
source "$(dirname "$(realpath "$0")")/mpi_sweep_run.sh" # run NP FILE ARGS...
bin=$(realpath "$1") mpiexec=$2 python=$3 compare=$(realpath "$4") model=${5:-tiny-llama}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
sweep=(--backend cpu --model "$model" --ctx 300 --concurrency 2 --requests 4 --repetitions 1 --output-len 3
       --method dense,uniprefill:keep=0.3 --warmup 1 --threads 1 --quiet)

run 1 tp1.h5
run 2 tp2.h5 --tp 2
run 4 dp2_tp2.h5 --tp 2
for layout in "tp2.h5 1 0" "dp2_tp2.h5 2 0,2"; do
  read -r file dp leaders <<<"$layout"
  "$python" "$compare" tp1.h5 "$file"
  "$python" - tp1.h5 "$file" "$dp" "$leaders" <<'EOF'
import math, sys, h5py
whole, split, dp, leaders = sys.argv[1], sys.argv[2], int(sys.argv[3]), {int(r) for r in sys.argv[4].split(",")}
with h5py.File(whole, "r") as a, h5py.File(split, "r") as b:
    assert (b.attrs["tp_size"], b.attrs["dp_size"]) == (2, dp), (b.attrs["tp_size"], b.attrs["dp_size"])
    assert len(a["points"]) == 2, list(a["points"])
    dropped = 0
    for point in sorted(a["points"]):
        ra, rb, sb = a["points"][point]["requests"][:], b["points"][point]["requests"][:], b["points"][point]["steps"][:]
        assert len(ra) == 4 and all(ra["status"] == 2), (point, ra["status"])  # every request finished
        assert set(rb["rank"]) == leaders and set(sb["rank"]) == leaders, (point, set(rb["rank"]), set(sb["rank"]))
        dropped += int((ra["kept_len"] < ra["prompt_len"]).sum())
    assert dropped > 0, "UniPrefill dropped no rows: the comparison would not cover the drop"
    sa, sb = a["summary"][()], b["summary"][()]
    assert all(sa["tp_comm_ms"] == 0) and all(sa["tp_comm_share"] == 0), (sa["tp_comm_ms"], sa["tp_comm_share"])
    for field in ("tp_comm_ms", "tp_comm_share"):
        assert all(math.isfinite(v) and v > 0 for v in sb[field]), (field, sb[field])
    comm = ", ".join(f"{ms:.1f} ms ({share:.2f})" for ms, share in zip(sb["tp_comm_ms"], sb["tp_comm_share"]))
print(f"{split}: records of leaders {sorted(leaders)} only; {dropped} requests with dropped rows; collectives {comm}")
EOF
done
echo "ok: --tp 2 on 2 ranks and dp=2 x tp=2 on 4 write every request record TP=1 writes"
