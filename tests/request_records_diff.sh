#!/usr/bin/env bash
# request_records_diff.sh — the C records comparison (tools/request_records_diff.c, which
# the GPU test uses where Python has no h5py) on the CPU: the same small sweep on one rank
# and on two (data parallel) has equal records, and the tool says so (exit 0); a sweep
# with another seed (other prompts, so other first tokens) is found different (exit 1);
# --attr reads a root attribute's start (tp_transport "self" here; "mpi" is not it).
# Usage: request_records_diff.sh BINARY MPIEXEC DIFF_TOOL
set -eu
source "$(dirname "$(realpath "$0")")/mpi_sweep_run.sh" # run NP FILE ARGS...
bin=$(realpath "$1") mpiexec=$2 diff_tool=$(realpath "$3")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
sweep=(--backend cpu --model tiny-llama --ctx 200 --concurrency 2 --requests 2 --repetitions 1 --output-len 2
       --method dense,uniprefill:keep=0.3 --warmup 0 --threads 1 --quiet)
run 1 one.h5
run 2 two.h5
run 1 other.h5 --seed 7
"$diff_tool" one.h5 two.h5
if "$diff_tool" one.h5 other.h5 >diff.txt; then
  echo "FAIL: a sweep with another seed compared equal:" >&2
  cat diff.txt >&2
  exit 1
fi
rc=0
"$diff_tool" one.h5 other.h5 >/dev/null || rc=$?
if ((rc != 1)); then
  echo "FAIL: different records gave exit $rc, expected 1" >&2
  exit 1
fi
echo "different seeds: $(head -1 diff.txt)"
"$diff_tool" --attr one.h5 tp_transport self
if "$diff_tool" --attr one.h5 tp_transport mpi; then
  echo "FAIL: --attr took 'self' for a value starting with 'mpi'" >&2
  exit 1
fi
echo "ok: the C comparison finds equal records equal and different ones different"
