#!/usr/bin/env bash
# eval_file.sh — uniprefill-bench --eval-file end to end on the tiny random Llama-2 GGUF
# with the fixtures in tests/data/eval_files: RULER and LongBench-like files run at their
# own lengths (ctx 0) and sorted into --ctx buckets beside generated --eval tasks, a
# sample longer than every bucket is skipped and counted, two ranks give the rows of
# one, a malformed line exits 2 naming file and line, and --eval-lenient skips and
# counts it. The rows are checked by tests/check_eval_file_samples.py (sources, tasks,
# scores recomputed from the generated text).
# Usage: eval_file.sh BINARY PYTHON CHECKER SAME_CHECKER MPIEXEC MODEL DATA_DIR
set -eu
bin=$(realpath "$1") python=$2 checker=$(realpath "$3") same=$(realpath "$4") mpiexec=$5 model=$(realpath "$6")
data=$(realpath "$7")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
methods=dense,uniprefill:keep=0.3
args=(--model "$model" --eval-max-new 4 --method "$methods" --threads 1)
ruler=$data/ruler_small.jsonl longbench=$data/longbench_small.jsonl lengths=$data/ruler_lengths.jsonl
bad=$data/ruler_with_bad_lines.jsonl
mpi=("$mpiexec" -np 2 --oversubscribe --bind-to none)

echo "== RULER and LongBench-like files at their own lengths"
"$bin" "${args[@]}" --eval-file "$ruler,$longbench" --quiet -o "$work/own.h5" >"$work/own.txt"
for task in ruler_small toy_qa toy_cls; do
  grep -q "| dense *| *0 | $task " "$work/own.txt" || { echo "no $task row"; cat "$work/own.txt"; exit 1; }
done
"$python" "$checker" "$work/own.h5" --methods "$methods" --files "$ruler,$longbench" --ctx 0 --expect-lines 6

echo "== the same on two ranks"
"${mpi[@]}" "$bin" "${args[@]}" --eval-file "$ruler,$longbench" --quiet -o "$work/own_2ranks.h5" >/dev/null
"$python" "$same" --same "$work/own.h5" "$work/own_2ranks.h5"

echo "== --ctx buckets beside a generated task; the long sample is skipped and counted"
"$bin" "${args[@]}" --eval niah_single --eval-samples 1 --eval-file "$lengths,$longbench" --ctx 128,512 \
  -o "$work/buckets.h5" >"$work/buckets.txt" 2>"$work/buckets.err"
grep -q "eval files: 5 sample(s) from 2 file(s), 4 run; skipped: 0 malformed line(s), 1 longer than every --ctx" \
  "$work/buckets.err" || { cat "$work/buckets.err"; exit 1; }
grep -q "| dense *| 512 | niah_single " "$work/buckets.txt" || { cat "$work/buckets.txt"; exit 1; }
"$python" "$checker" "$work/buckets.h5" --methods "$methods" --files "$lengths,$longbench" --ctx 128 --expect-lines 4

echo "== a malformed line: exit 2 naming file and line, nothing written"
set +e
"$bin" "${args[@]}" --eval-file "$bad" -o "$work/bad.h5" >/dev/null 2>"$work/bad.err"
rc=$?
set -e
[ "$rc" -eq 2 ] || { echo "exit $rc, expected 2"; cat "$work/bad.err"; exit 1; }
grep -q "error: eval file $bad:2: not valid JSON" "$work/bad.err" || { cat "$work/bad.err"; exit 1; }
[ ! -e "$work/bad.h5" ] || { echo "a run file was written"; exit 1; }

echo "== --eval-lenient skips and counts the bad lines"
"$bin" "${args[@]}" --eval-file "$bad" --eval-lenient -o "$work/lenient.h5" >/dev/null 2>"$work/lenient.err"
grep -q "skipped: 5 malformed line(s)" "$work/lenient.err" || { cat "$work/lenient.err"; exit 1; }
"$python" "$checker" "$work/lenient.h5" --methods "$methods" --files "$bad" --ctx 0 --expect-lines 1

echo "== a file task named like a generated task beside it: exit 2"
printf '%s\n' '{"context": "c", "input": "q", "answers": ["a"], "dataset": "niah_single"}' >"$work/clash.jsonl"
set +e
"$bin" "${args[@]}" --eval niah_single --eval-samples 1 --ctx 512 --eval-file "$work/clash.jsonl" -o "$work/clash.h5" \
  >/dev/null 2>"$work/clash.err"
rc=$?
set -e
[ "$rc" -eq 2 ] || { echo "exit $rc, expected 2"; cat "$work/clash.err"; exit 1; }
grep -q "clash.jsonl:1: its task 'niah_single' is also a generated --eval task" "$work/clash.err" || {
  cat "$work/clash.err"
  exit 1
}

echo "== -o naming an eval file is refused and leaves it intact"
cp "$ruler" "$work/input.jsonl"
set +e
"$bin" "${args[@]}" --eval-file "$work/input.jsonl" -o "$work/input.jsonl" >/dev/null 2>"$work/self.err"
rc=$?
set -e
[ "$rc" -eq 2 ] || { echo "exit $rc, expected 2"; cat "$work/self.err"; exit 1; }
cmp -s "$ruler" "$work/input.jsonl" || { echo "the eval file was changed"; exit 1; }

echo "== flags: --eval-lenient needs --eval-file; --eval-file runs no sweep"
for extra in "--eval-lenient" "--eval-file $ruler --concurrency 2"; do
  set +e
  # shellcheck disable=SC2086
  "$bin" --model "$model" $extra >/dev/null 2>"$work/flag.err"
  rc=$?
  set -e
  [ "$rc" -eq 2 ] || { echo "'$extra' exited $rc, expected 2"; cat "$work/flag.err"; exit 1; }
done
echo "eval_file: all checks passed"
