#!/usr/bin/env bash
# prefill_chunk.sh — chunked dense prefill (--prefill-chunk N) on tiny-llama gives every
# request the same first generated token (the argmax of its logits) as whole-prompt
# prefill, for chunk sizes that divide the 300-token prompt and ones that do not; each
# request's record says how many steps its prompt took (ceil(300 / N)); with a step
# budget the chunks are cut to it, no step holds more tokens than the budget, and
# chunks share steps with other requests' decodes. A method that drops tokens keeps
# whole-prompt prefill and the point says so (prefill_chunk 0). Bad values exit 2
# naming the flag. Usage: prefill_chunk.sh BINARY PYTHON
set -eu
bin=$(realpath "$1") python=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
args=(--ctx 300 --concurrency 3 --requests 6 --output-len 3 --method dense,uniprefill:keep=0.3:layers=0
      --warmup 0 --repetitions 1 --threads 1 --quiet)
for chunk in 0 100 64 37 1000; do
  "$bin" "${args[@]}" --prefill-chunk "$chunk" -o "$work/chunk$chunk.h5" >"$work/table$chunk.md"
done
# The table says which prefill each point ran, only when chunks were asked for.
grep -q "| chunk 100 |" "$work/table100.md" && grep -q "| whole  *|" "$work/table100.md" \
  || { echo "FAIL: the table does not show the prefill policy:"; cat "$work/table100.md"; exit 1; }
! grep -q "prefill " "$work/table0.md" || { echo "FAIL: a run without chunks shows a prefill column"; exit 1; }
echo "table: 'chunk 100' for dense, 'whole' for UniPrefill; no column without --prefill-chunk"
"$bin" "${args[@]}" --prefill-chunk 100 --max-batch-tokens 128 -o "$work/budget.h5" >/dev/null

for bad in -1 abc 1.5; do
  rc=0
  "$bin" --ctx 300 --prefill-chunk "$bad" --quiet -o "$work/bad.h5" >/dev/null 2>"$work/bad.err" || rc=$?
  [ "$rc" -eq 2 ] || { echo "FAIL: --prefill-chunk $bad exited $rc, expected 2"; exit 1; }
  grep -q -- "--prefill-chunk" "$work/bad.err" || { echo "FAIL: the error does not name the flag:"; cat "$work/bad.err"; exit 1; }
done
echo "--prefill-chunk -1, abc, 1.5: exit 2 naming the flag"

"$python" - "$work" <<'PY'
import math
import sys
import h5py
work = sys.argv[1]
passed = 0

def points(name):
    with h5py.File(f"{work}/{name}.h5", "r") as f:
        out = {}
        for key in sorted(f["points"]):
            g = f["points"][key]
            out[g.attrs["method"].decode() if isinstance(g.attrs["method"], bytes) else g.attrs["method"]] = (
                dict(g.attrs), g["requests"][()], g["steps"][()])
        return out

whole = points("chunk0")
dense_attrs, dense_req, _ = whole["dense"]
assert dense_attrs["prefill_chunk"] == 0
assert list(dense_req["status"]) == [2] * 6, dense_req["status"]
assert list(dense_req["prefill_steps"]) == [1] * 6, dense_req["prefill_steps"]
first = list(dense_req["first_token"])
for chunk in (100, 64, 37, 1000):
    run = points(f"chunk{chunk}")
    attrs, req, steps = run["dense"]
    assert attrs["prefill_chunk"] == chunk, attrs["prefill_chunk"]
    assert list(req["status"]) == [2] * 6, req["status"]
    assert list(req["first_token"]) == first, (chunk, list(req["first_token"]), first)
    expect = math.ceil(300 / chunk)
    assert list(req["prefill_steps"]) == [expect] * 6, (chunk, list(req["prefill_steps"]))
    assert list(req["kept_len"]) == [300] * 6, req["kept_len"]
    uni_attrs, uni_req, _ = run["uniprefill:keep=0.3:layers=0"]
    assert uni_attrs["prefill_chunk"] == 0, "a dropping method must keep whole-prompt prefill"
    assert list(uni_req["prefill_steps"]) == [1] * 6, uni_req["prefill_steps"]
    assert list(uni_req["first_token"]) == list(whole["uniprefill:keep=0.3:layers=0"][1]["first_token"])
    print(f"--prefill-chunk {chunk}: same first tokens as whole-prompt prefill, {expect} step(s) per prompt; "
          f"uniprefill kept whole-prompt prefill")
    passed += 1

attrs, req, steps = points("budget")["dense"]
assert list(req["first_token"]) == first, (list(req["first_token"]), first)
tokens = steps["prefill_tokens"] + steps["decode_tokens"]
assert tokens.max() <= 128, tokens.max()
mixed = ((steps["prefill_tokens"] > 0) & (steps["decode_tokens"] > 0)).sum()
assert mixed > 0, "no step carried a prefill chunk beside decodes"
assert all(s >= 3 for s in req["prefill_steps"]), list(req["prefill_steps"])
print(f"--prefill-chunk 100 --max-batch-tokens 128: same first tokens, steps of at most {tokens.max()} tokens, "
      f"{mixed} step(s) mixing prefill chunks and decodes, prefill steps {list(req['prefill_steps'])}")
passed += 1
print(f"{passed + 1} passed, 0 failed")
PY
