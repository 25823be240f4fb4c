#!/usr/bin/env bash
# tp_cli.sh — tensor parallelism from the command line, on the CPU under mpirun: bad
# --tp / --comm input ends with exit 2, a message naming the problem and no run file
# (a --tp that does not divide the ranks or the model's query heads, self or nccl
# transports that cannot serve the group, what --tp > 1 cannot run yet; a --tp list
# with one such value); --tp 2 prints
# one preamble line per rank with its dp and tp index and the group's all-reduce probe
# nccl-tests style (busbw = algbw x 2(n-1)/n), then runs; --tp 1 --comm mpi on two
# ranks runs and records the layout and the probe's rows in the run file. Cross-host
# grouping needs several hosts: test_tp_grouping covers it on made-up host tables.
# Usage: tp_cli.sh BINARY MPIEXEC PYTHON
set -u
bin=$(realpath "$1") mpiexec=$2 python=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
passed=0 failed=0
pass() { echo "ok: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL: $1"; failed=$((failed + 1)); }
small=(--ctx 128 --concurrency 1 --requests 1 --repetitions 1 --output-len 2 --method dense --warmup 0 --threads 1)

run() { # NP ARGS...: the job's stdout and stderr in out.txt and err.txt, its exit status returned
  local np=$1
  shift
  if ((np == 1)); then # a singleton MPI process: the refusals of one rank without mpirun's start-up
    timeout 300 "$bin" "$@" >out.txt 2>err.txt
  else
    timeout 300 "$mpiexec" -np "$np" --oversubscribe --bind-to none "$bin" "$@" >out.txt 2>err.txt
  fi
}

expect_refusal() { # NP PATTERN ARGS...
  local np=$1 pattern=$2
  shift 2
  rm -f out.h5
  run "$np" "$@" -o out.h5
  local rc=$?
  if ((rc != 2)); then
    fail "-np $np $*: exit $rc, expected 2"
    cat err.txt
  elif ! grep -q -- "$pattern" err.txt; then
    fail "-np $np $*: no '$pattern' in stderr:"
    cat err.txt
  elif [[ -e out.h5 ]]; then
    fail "-np $np $*: left a run file behind"
  else
    pass "-np $np $*: $(grep -m1 -- "$pattern" err.txt)"
  fi
}

expect_refusal 2 "--tp 3 does not divide the job's 2 rank(s)" "${small[@]}" --tp 3
expect_refusal 2 "--tp 4 does not divide the job's 2 rank(s)" "${small[@]}" --tp 1,4
expect_refusal 1 "--tp: 0 in '0' must be >= 1" "${small[@]}" --tp 0
expect_refusal 1 "--tp: 2 appears twice" "${small[@]}" --tp 2,2
expect_refusal 3 "--tp 3 does not divide tiny-llama's 4 query heads" "${small[@]}" --tp 3
expect_refusal 2 "--comm self is a group of one rank, but --tp 2" "${small[@]}" --tp 2 --comm self
expect_refusal 1 "--comm nccl needs the cuda backend" "${small[@]}" --backend cpu --comm nccl
expect_refusal 1 "--comm: 'gloo' is not one of auto, self, mpi, nccl" "${small[@]}" --comm gloo
expect_refusal 1 "--collective-timeout: '-1' is not a number of seconds" "${small[@]}" --collective-timeout -1
# What --tp > 1 cannot run yet: methods choosing per head, whole-model modes; a list is
# refused up front for any value that cannot split the ranks or the model (tp_sweep_list.sh runs lists).
expect_refusal 2 "method 'minference' does not run with --tp 2" "${small[@]}" --method minference --tp 2
expect_refusal 3 "--tp 3 does not divide tiny-llama's 4 query heads" "${small[@]}" --tp 1,3
expect_refusal 2 "the kernels mode runs whole models only" --backend cpu --kernels --tp 2

# --tp 2 on two ranks: one group, its probe, then the sweep (tp_sweep.sh checks its records).
run 2 "${small[@]}" --tp 2 -o out.h5
rc=$?
if ! grep -Eq '^#  rank +0 .* dp +0  tp +0  backend cpu' err.txt || ! grep -Eq '^#  rank +1 .* dp +0  tp +1  backend cpu' err.txt; then
  fail "--tp 2: no preamble line per rank with its dp and tp index:"
  cat err.txt
elif ! grep -q '^# mode: sweep, 2 rank(s) = dp 1 x tp 2' err.txt; then
  fail "--tp 2: the mode line lacks 'dp 1 x tp 2'"
  cat err.txt
elif ! "$python" - err.txt <<'EOF'; then
import re, sys
rows = [l.split() for l in open(sys.argv[1]) if re.match(r"^# +\d+ +\d+ +mpi ", l)]
assert len(rows) == 1, f"expected one probe row, got {rows}"
_, group, ranks, transport, size, count, kind, time_us, algbw, busbw = rows[0]
assert (group, ranks, kind) == ("0", "2", "f32"), rows[0]
assert int(size) == 128 * 256 * 4 and int(count) == 128 * 256, rows[0]  # 128 tokens x tiny-llama's 256 hidden
assert float(time_us) > 0, rows[0]
# algbw = size / time; busbw = algbw x 2(n-1)/n = algbw for n = 2 (printed to 2 decimals)
assert abs(float(algbw) - int(size) / float(time_us) / 1e3) <= 0.006, rows[0]
assert busbw == algbw, rows[0]
print("probe row:", " ".join(rows[0][1:]))
EOF
  fail "--tp 2: the probe table is wrong:"
  cat err.txt
elif ((rc != 0)) || [[ ! -e out.h5 ]]; then
  fail "--tp 2: exit $rc; expected 0 and a run file"
  cat err.txt
else
  pass "--tp 2: preamble with dp/tp per rank, the group's probe, then the sweep (exit 0, run file)"
fi

# --tp 1 --comm mpi on two ranks: two groups of one through the MPI transport; the run
# file records the layout and the probe's two rows.
if ! run 2 "${small[@]}" --tp 1 --comm mpi -o layout.h5; then
  fail "--tp 1 --comm mpi: exit $?"
  cat err.txt
elif ! "$python" - layout.h5 <<'EOF'; then
import sys, h5py
f = h5py.File(sys.argv[1], "r")
a = f.attrs
got = {k: a[k] for k in ("tp_list", "tp_size", "dp_size", "tp_ranks", "dp_ranks", "tp_spans_hosts", "tp_transport")}
want = {"tp_list": "1", "tp_size": 1, "dp_size": 2, "tp_ranks": "0,0", "dp_ranks": "0,1", "tp_spans_hosts": 0,
        "tp_transport": "mpi"}
assert got == want, got
assert a["tp_transport_version"].startswith("Open MPI") or a["tp_transport_version"], a["tp_transport_version"]
assert "nccl_env" in a
p = f["tp_probe"][:]
assert list(p["group"]) == [0, 1] and list(p["ranks"]) == [1, 1], p
assert all(p["bytes"] == 128 * 256 * 4) and all(p["count"] == 128 * 256) and all(p["iters"] == 10), p
assert all(p["time_us"] > 0) and all(p["busbw_gbps"] == 0), p  # one rank: 2(n-1)/n = 0
assert all(abs(p["algbw_gbps"] - p["bytes"] / p["time_us"] / 1e3) < 1e-9), p
print("layout:", got, "probe rows:", len(p))
EOF
  fail "--tp 1 --comm mpi: the run file's layout or probe is wrong"
else
  pass "--tp 1 --comm mpi: two groups of one, layout and probe recorded"
fi

echo "$passed passed, $failed failed"
((failed == 0))
