#!/usr/bin/env bash
# step_watchdog.sh — --step-timeout ends a two-rank job whose rank 1 was stopped with a
# real SIGSTOP: rank 0 stops waiting at the next synchronization point, names rank 1,
# and the job exits with the watchdog's code (3) well within a bound, where without the
# watchdog it would wait forever. The sweep is many tiny rounds, so rank 0 reaches a
# check-in soon after the stop wherever rank 1 was. Bounds are generous for a loaded
# 2-core CI machine. Usage: step_watchdog.sh BINARY MPIEXEC
set -u
bin=$(realpath "$1") mpiexec=$2
work=$(mktemp -d)
job= pid=
cleanup() {
  # Only what this script started, by id: the stopped rank is continued, the job ended.
  [[ -n $pid ]] && kill -CONT "$pid" 2>/dev/null
  if [[ -n $job ]] && kill -0 "$job" 2>/dev/null; then
    kill -TERM "$job" 2>/dev/null
    sleep 2
    kill -9 "$job" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT
timeout_s=10
bound_s=120

"$mpiexec" -np 2 --oversubscribe --bind-to none "$bin" --ctx 128 --concurrency 2 --requests 2 --repetitions 1000 \
  --output-len 2 --method dense --warmup 0 --threads 1 --step-timeout "$timeout_s" -o "$work/run.h5" \
  >"$work/out.txt" 2>"$work/err.txt" &
job=$!

# The rank whose environment says it is rank 1 of the job, among mpirun's descendants.
rank1_pid() {
  local pid
  for pid in $(pgrep -P "$job") $(for p in $(pgrep -P "$job"); do pgrep -P "$p"; done); do
    if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1'; then
      echo "$pid"
      return 0
    fi
  done
  return 1
}

# Wait for the sweep proper (rank 0 announces the watchdog just before its first point).
for _ in $(seq 1 600); do
  grep -q "# step timeout" "$work/err.txt" 2>/dev/null && break
  kill -0 "$job" 2>/dev/null || { echo "FAIL: the job ended before the sweep:"; cat "$work/err.txt"; exit 1; }
  sleep 0.2
done
grep -q "# step timeout" "$work/err.txt" || { echo "FAIL: the sweep never started:"; cat "$work/err.txt"; exit 1; }
sleep 1
pid=$(rank1_pid) || { echo "FAIL: no process of the job has OMPI_COMM_WORLD_RANK=1"; exit 1; }
kill -STOP "$pid"
stopped_at=$SECONDS
echo "stopped rank 1 (pid $pid)"

# The job must end by itself within the bound.
while kill -0 "$job" 2>/dev/null && ((SECONDS - stopped_at < bound_s)); do sleep 0.5; done
if kill -0 "$job" 2>/dev/null; then
  echo "FAIL: the job still runs ${bound_s} s after rank 1 was stopped (--step-timeout $timeout_s)"
  cat "$work/err.txt"
  exit 1
fi
wait "$job"
rc=$?
job=
elapsed=$((SECONDS - stopped_at))
failed=0
[[ $rc -ne 0 ]] || { echo "FAIL: the job exited 0 with a stopped rank"; failed=1; }
grep -q -- "--step-timeout $timeout_s s: rank(s) 1 did not reach" "$work/err.txt" ||
  grep -q -- "--step-timeout $timeout_s s: rank 0 is stuck in" "$work/err.txt" ||
  { echo "FAIL: no message naming the silent rank:"; cat "$work/err.txt"; failed=1; }
((failed == 0)) || exit 1
grep -- "--step-timeout" "$work/err.txt" | grep -v "^#"
echo "the job ended ${elapsed} s after rank 1 was stopped, exit $rc"
echo "1 passed, 0 failed"
