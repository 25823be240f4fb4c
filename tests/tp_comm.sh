#!/usr/bin/env bash
# tp_comm.sh — the tensor-parallel communicator under mpirun (tools/tp_comm_check.c does
# the checking): the self transport and a one-rank MPI group, then MPI groups of 2, 3 and
# 4 ranks (oversubscribed, as on the 2-core CI). Then the failure paths: a rank that
# fails fatally, one that exits without MPI_Finalize and one that hangs, each while
# the others sit in an all-reduce, must end the job non-zero within a bound, and the
# message must name the rank (the failing one, or for a hang the one that timed out).
# With TRANSPORT nccl (the GPU test, label gpu) the same checks run on device buffers,
# one GPU per rank: one rank, then 2-4 ranks and the failure paths as far as the
# visible GPUs allow; no GPU at all skips (exit 77).
# Usage: tp_comm.sh CHECK_BINARY MPIEXEC [mpi|nccl]
set -u
check=$(realpath "$1") mpiexec=$2 transport=${3:-mpi}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mpirun_args=(--oversubscribe --bind-to none)
bound_s=120
passed=0 failed=0
pass() { echo "ok: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL: $1"; failed=$((failed + 1)); }

run_checks() { # NAME NP ARGS...
  local name=$1 np=$2
  shift 2
  if timeout "$bound_s" "$mpiexec" -np "$np" "${mpirun_args[@]}" "$check" "$@" >"$work/out.txt" 2>"$work/err.txt"; then
    pass "$name: $(tail -n 1 "$work/out.txt")"
  else
    fail "$name (exit $?):"
    cat "$work/out.txt" "$work/err.txt"
  fi
}

max_ranks=4
if [[ $transport == nccl ]]; then
  gpus=$("$check" --count-gpus) || { echo "FAIL: $check --count-gpus (exit $?)"; exit 1; }
  if ((gpus == 0)); then
    echo "SKIP: no CUDA device visible"
    exit 77
  fi
  ((gpus < max_ranks)) && max_ranks=$gpus
  ((max_ranks < 2)) && echo "note: $gpus GPU: the 2-rank checks and the failure paths need 2 GPUs, skipped"
else
  run_checks "self transport" 1 --transport self
fi
for ((np = 1; np <= max_ranks; ++np)); do run_checks "$transport transport, $np rank(s)" "$np" --transport "$transport"; done
timeout_ranks=$((max_ranks < 3 ? max_ranks : 3))
run_checks "$transport transport with a collective timeout, $timeout_ranks rank(s)" "$timeout_ranks" \
  --transport "$transport" --timeout 60
if ((max_ranks < 2)); then
  echo "$passed passed, $failed failed"
  ((failed == 0))
  exit
fi

# A failing rank ends the job: exit status non-zero, within the bound, the rank named.
run_fault() { # KIND NP FAULT_RANK EXPECTED_MESSAGE_REGEX [ARGS...]
  local kind=$1 np=$2 rank=$3 expect=$4
  shift 4
  local start=$SECONDS rc
  timeout "$bound_s" "$mpiexec" -np "$np" "${mpirun_args[@]}" "$check" --transport "$transport" --fault-rank "$rank" \
    --fault "$kind" "$@" \
    >"$work/out.txt" 2>"$work/err.txt"
  rc=$?
  local took=$((SECONDS - start))
  if ((rc == 124)); then
    fail "fault '$kind' on rank $rank of $np: the job still ran after ${bound_s} s"
  elif ((rc == 0)); then
    fail "fault '$kind' on rank $rank of $np: the job exited 0"
  elif ! grep -Eq "$expect" "$work/err.txt"; then
    fail "fault '$kind' on rank $rank of $np: no message matching /$expect/:"
    cat "$work/err.txt"
  else
    pass "fault '$kind' on rank $rank of $np: exit $rc after ${took} s: $(grep -Eo "$expect" "$work/err.txt" | head -n 1)"
  fi
}

run_fault fatal 2 1 "rank 1: fatal error at .*injected fault on rank 1 inside all_reduce_sum"
((max_ranks >= 3)) && run_fault fatal 3 1 "rank 1: fatal error at .*injected fault on rank 1 inside all_reduce_sum"
run_fault exit 2 1 "rank 1: exiting without MPI_Finalize"
# A hung rank: the others give up after --timeout and name themselves and the call
# (nccl also the GPU, found only when the queued work is waited for).
hung="rank 0: fatal error at .*all_reduce_sum of layer 0 attention output.*did not complete within"
[[ $transport == nccl ]] && hung+=".*GPU [0-9]"
run_fault hang 2 1 "$hung" --timeout 5

echo "$passed passed, $failed failed"
((failed == 0))
