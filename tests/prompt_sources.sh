#!/usr/bin/env bash
# prompt_sources.sh — --prompt-source end to end on a checkpoint with a tokenizer
# (the tiny random Llama-2 GGUF, fast; SmolLM2-135M when the tiny one is absent; exit 77
# when neither is there): the default (text with --model PATH, random with a preset), text and
# text:PATHS, a JSONL file of text and ids lines in the closed loop (cut or repeated to
# --ctx) and the open loop (its own lengths), each checked in the run file (every
# request's prompt_len, the prompt_source attribute) and in the `# prompts:` line; text
# prompts give the same records on two ranks as on one; bad choices exit 2 naming the
# flag or the file and line.
# Usage: prompt_sources.sh BINARY PYTHON MPIEXEC COMPARE_SCRIPT TINY_GGUF
set -eu
bin=$(realpath "$1") python=$2 mpiexec=$3 compare=$(realpath "$4") tiny=$5
model=$tiny
[[ -f $model ]] || model=${UNIPREFILL_MODEL_CACHE:-$HOME/.cache/uniprefill-bench/models}/SmolLM2-135M-Instruct.Q4_1.gguf
if [[ ! -f $model ]]; then
  echo "skip: neither SmolLM2 nor the tiny GGUF ($tiny) is present"
  exit 77
fi
model=$(realpath "$model")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
small=(--concurrency 2 --method dense --output-len 1 --warmup 0 --threads 1 --repetitions 1)

# check FILE SOURCE LENGTHS...: every point's prompt_source and its requests' prompt lengths.
check() {
  "$python" - "$@" <<'PY'
import sys
import h5py
path, source, want = sys.argv[1], sys.argv[2], [int(x) for x in sys.argv[3:]]
with h5py.File(path, "r") as f:
    got = []
    for name in sorted(f["points"]):
        point = f["points"][name]
        assert point.attrs["prompt_source"] == source, (name, point.attrs["prompt_source"], source)
        requests = point["requests"][()]
        assert all(requests["status"] == 2), requests["status"]
        got += [int(x) for x in sorted(requests["prompt_len"])]
    assert got == want, f"prompt lengths {got}, expected {want}"
    print(f"{path}: prompt_source {source}, prompt lengths {got}")
PY
}

# expect_error MESSAGE ARGS...: exit 2 with MESSAGE on stderr.
expect_error() {
  local message=$1 rc=0
  shift
  "$bin" "$@" --threads 1 --quiet -o "$work/never.h5" >"$work/out.txt" 2>"$work/err.txt" || rc=$?
  if [[ $rc -ne 2 ]] || ! grep -qF -- "$message" "$work/err.txt"; then
    echo "expected exit 2 with '$message' from: $*"; echo "got $rc:"; cat "$work/err.txt"; exit 1
  fi
  [[ ! -e $work/never.h5 ]] || { echo "a results file was written by: $*"; exit 1; }
}

echo "== the default: text with --model PATH, random with a preset"
"$bin" --model "$model" --ctx 100,200 "${small[@]}" -o default.h5 >/dev/null 2>default.err
grep -q "^# prompts: text: [0-9]* tokens of prose" default.err || { cat default.err; exit 1; }
check default.h5 text 100 100 200 200
"$bin" --ctx 100 "${small[@]}" -o preset.h5 >/dev/null 2>preset.err
grep -q "^# prompts: random token ids from (seed, request id) (the default: the model is a preset" preset.err \
  || { cat preset.err; exit 1; }
check preset.h5 random 100 100

echo "== random and text:PATHS by name"
"$bin" --model "$model" --ctx 150 "${small[@]}" --prompt-source random --quiet -o random.h5 >/dev/null
check random.h5 random 150 150
printf 'A first sentence of prose for the test. And here is a second one that follows it.\n' >prose.txt
gzip -c prose.txt >prose.txt.gz
"$bin" --model "$model" --ctx 300 "${small[@]}" --prompt-source text:prose.txt,prose.txt.gz --quiet \
  -o text-paths.h5 >/dev/null
check text-paths.h5 text:prose.txt,prose.txt.gz 300 300

echo "== text prompts are the same on two ranks as on one"
args=(--model "$model" --ctx 128 --concurrency 1,3 --requests 4 --method dense,uniprefill:keep=0.3:layers=0
      --output-len 2 --warmup 0 --threads 1 --quiet --prompt-source text)
"$bin" "${args[@]}" -o one.h5 >/dev/null
"$mpiexec" -np 2 --oversubscribe --bind-to none "$bin" "${args[@]}" -o two.h5 >/dev/null
"$python" "$compare" one.h5 two.h5

echo "== a JSONL file: cut or repeated to --ctx in the closed loop, its own lengths in the open loop"
{
  echo '{"text": "One line of text to tokenize."}'
  echo '{"ids": [5, 6, 7, 8, 9, 10, 11]}'
  echo
  echo '{"ids": [12, 13, 14]}'
} >prompts.jsonl
"$bin" --model "$model" --ctx 4,64 --concurrency 3 --method dense --output-len 1 --warmup 0 --threads 1 --quiet --repetitions 1 \
  --prompt-source prompts.jsonl -o file-closed.h5 >/dev/null
check file-closed.h5 prompts.jsonl 4 4 4 64 64 64
"$bin" --model "$model" --request-rate inf --requests 3 --concurrency 3 --method dense --warmup 0 --threads 1 \
  --prompt-source prompts.jsonl -o file-open.h5 >/dev/null 2>file-open.err
grep -q "^# prompts: prompts.jsonl: 3 prompts" file-open.err || { cat file-open.err; exit 1; }
text_len=$(sed -n 's/.*3 prompts, the longest \([0-9]*\) tokens.*/\1/p' file-open.err)
"$python" - file-open.h5 <<'PY'
import sys
import h5py
with h5py.File(sys.argv[1], "r") as f:
    requests = f["points/0000/requests"][()]
    lengths = dict(zip(requests["id"].tolist(), requests["prompt_len"].tolist()))
    assert lengths[1] == 7 and lengths[2] == 3 and lengths[0] >= 5, lengths
    assert f["points/0000"].attrs["ctx"] == 0
    print(f"{sys.argv[1]}: open-loop prompt lengths {lengths}")
PY
# ids need no tokenizer: a preset replays them too.
echo '{"ids": [1, 2, 3]}' >ids.jsonl
"$bin" --ctx 8 "${small[@]}" --prompt-source ids.jsonl --quiet -o ids.h5 >/dev/null
check ids.h5 ids.jsonl 8 8

echo "== bad choices exit 2"
expect_error "--prompt-source: 'bogus' is not random, text, text:PATHS or a FILE.jsonl" --prompt-source bogus
expect_error "--prompt-source text needs the checkpoint's tokenizer, but the model is a preset" \
  --prompt-source text --ctx 64
echo '{"text": "hello"}' >text.jsonl
expect_error "text.jsonl:1: a \"text\" prompt needs the checkpoint's tokenizer" --prompt-source text.jsonl --ctx 64
expect_error "in the closed loop needs --ctx" --prompt-source prompts.jsonl
expect_error "--prompt-source prompts.jsonl and --trace cannot be combined" --prompt-source prompts.jsonl \
  --trace prompts.jsonl
expect_error "--eval and --prompt-source cannot be combined" --eval niah_single --model "$model" \
  --prompt-source text
printf '{"ids": [1]}\n{"ids": [1], "ids": [2]}\n' >dup.jsonl
expect_error "prompt file dup.jsonl:2: duplicate key 'ids'" --model "$model" --prompt-source dup.jsonl --ctx 64
printf '{"ids": [1, 99999999]}\n' >big.jsonl
expect_error "prompt file big.jsonl:1: \"ids\"[1] = 99999999 is outside the model's vocabulary" --model "$model" \
  --prompt-source big.jsonl --ctx 64
expect_error "--prompt-source text:missing.txt: haystack corpus missing.txt" --model "$model" \
  --prompt-source text:missing.txt --ctx 64
cp prompts.jsonl victim.jsonl
rc=0
"$bin" --ctx 8 "${small[@]}" --prompt-source victim.jsonl --quiet -o victim.jsonl >/dev/null 2>err.txt || rc=$?
[[ $rc -eq 2 ]] && grep -qF -- "-o victim.jsonl is the --prompt-source file victim.jsonl" err.txt \
  || { echo "-o over the prompt file: exit $rc"; cat err.txt; exit 1; }
cmp -s prompts.jsonl victim.jsonl || { echo "the prompt file was overwritten"; exit 1; }
echo "prompt_sources: all checks passed"
