#!/usr/bin/env bash
# gemma3_bad_input.sh — bad Gemma 3 input ends with exit code 2, a message naming the
# file, tensor, key or flag, and no results file (issue 12's list): a sliding window
# larger than the context (Hugging Face config.json and GGUF metadata), a missing, an
# unknown and a misshapen tensor, a tensor in a quantisation type the engine does not
# decode, a drop layer that is a sliding layer (on a checkpoint, and on a preset) and an
# unknown UniPrefill window semantics. The checkpoints
# are the tiny random ones tests/tools/make_tiny_gemma3.py writes, patched.
# Usage: gemma3_bad_input.sh BINARY PYTHON TESTS_DIR. Exit 77 (skip) without numpy.
set -u
bin=$(realpath "$1") python=$2 tests=$(realpath "$3")
"$python" -c "import numpy" 2>/dev/null || { echo "SKIP: $python has no numpy"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
failures=0

# expect_error PATTERN ARGS...: exit 2, PATTERN (grep -E) in stderr, no -o file written.
expect_error() {
  local pattern=$1; shift
  "$bin" "$@" -o "$work/out.h5" >"$work/stdout" 2>"$work/stderr"
  local rc=$?
  if [[ $rc -ne 2 ]]; then
    echo "FAIL: '$*' exited $rc, expected 2; its stderr:"; head -n 40 "$work/stderr"; failures=$((failures + 1))
  elif ! grep -qE -- "$pattern" "$work/stderr"; then
    echo "FAIL: '$*' stderr lacks '$pattern':"; cat "$work/stderr"; failures=$((failures + 1))
  elif [[ -e "$work/out.h5" ]]; then
    echo "FAIL: '$*' left a results file behind"; failures=$((failures + 1))
  else
    echo "ok: '$*' -> $(grep -E -- "$pattern" "$work/stderr" | head -n1)"
  fi
  rm -f "$work/out.h5"
}

# patch FILE STRING SKIP BYTES: BYTES (printf escapes) written SKIP bytes after the first
# occurrence of STRING (a metadata key or a tensor name) in FILE.
patch() {
  local at
  at=$(grep -obUa -- "$2" "$1" | head -n1 | cut -d: -f1)
  printf "$4" | dd of="$1" bs=1 seek=$((at + ${#2} + $3)) conv=notrunc status=none
}

"$python" "$tests/tools/make_tiny_gemma3.py" hf --gguf tiny.gguf >/dev/null || { echo "FAIL: make_tiny_gemma3.py"; exit 1; }
run=(--prompt-source random --ctx 32 --concurrency 1 --requests 1)

# A window larger than the context: config.json's sliding_window, GGUF's attention.sliding_window.
cp -r hf hf-wide-window
"$python" - hf-wide-window/config.json <<'EOF'
import json, sys
cfg = json.load(open(sys.argv[1]))
cfg["sliding_window"] = cfg["max_position_embeddings"] + 1
json.dump(cfg, open(sys.argv[1], "w"))
EOF
expect_error "sliding_window 513 is larger than the context" --model hf-wide-window "${run[@]}"
cp tiny.gguf wide-window.gguf
patch wide-window.gguf gemma3.attention.sliding_window 4 '\x00\x04\x00\x00' # u32 1024 > context_length 512
expect_error "model wide-window: sliding_window 1024 is larger than the context" \
  --model wide-window.gguf "${run[@]}"

# A tensor left out of model.safetensors (HF), one renamed in the GGUF (an unknown name
# there), one of swapped dims, one of an undecoded type.
cp -r hf hf-missing
"$python" - hf-missing/model.safetensors <<'PY'
import json, struct, sys
blob = open(sys.argv[1], "rb").read()
size = struct.unpack("<Q", blob[:8])[0]
header, data = json.loads(blob[8:8 + size]), blob[8 + size:]
del header["model.layers.1.self_attn.q_norm.weight"]
header.pop("__metadata__", None)
repacked, offset = {}, 0
for name, info in header.items():
    begin, end = info["data_offsets"]
    repacked[name] = dict(info, data_offsets=[offset, offset + end - begin])
    offset += end - begin
text = json.dumps(repacked).encode()
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text)
    for info in header.values():
        f.write(data[info["data_offsets"][0]:info["data_offsets"][1]])
PY
expect_error "hf-missing: tensor 'model\.layers\.1\.self_attn\.q_norm\.weight' is missing" --model hf-missing "${run[@]}"
cp tiny.gguf renamed.gguf
patch renamed.gguf blk.1.attn_q_norm 0 '\x58' # blk.1.attn_q_norm.weight -> blk.1.attn_q_normXweight
expect_error "renamed.gguf: tensor 'blk\.1\.attn_q_normXweight' is not a weight of this 8-layer gemma3 model" \
  --model renamed.gguf "${run[@]}"
# Tensor infos: name, n_dims (u32), the dims (u64 each), ggml type (u32), data offset (u64).
cp tiny.gguf misshapen.gguf
patch misshapen.gguf blk.0.ffn_gate.weight 4 '\x60\x00\x00\x00\x00\x00\x00\x00\x40\x00\x00\x00\x00\x00\x00\x00'
expect_error "misshapen.gguf: tensor 'blk\.0\.ffn_gate\.weight' has ggml dims" --model misshapen.gguf "${run[@]}"
cp tiny.gguf unknown-type.gguf
patch unknown-type.gguf blk.0.ffn_up.weight 20 '\x0d\x00\x00\x00' # Q5_K (13): not decoded
expect_error "unknown-type.gguf.*tensor 'blk\.0\.ffn_up\.weight': unsupported ggml type Q5_K" --model unknown-type.gguf "${run[@]}"

# A drop layer that is a sliding layer: refused with the flag, on a checkpoint and a preset.
expect_error "drop layer 0 of .* is not a full-attention layer \(it is sliding-window; the full-attention layers are 5\)" \
  --model tiny.gguf --method uniprefill --drop-layers 0 "${run[@]}"
expect_error "drop layer 4 of gemma-3-270m-6layers is not a full-attention layer \(it is sliding-window" --model gemma-3-270m --layers 6 \
  --method uniprefill --drop-layers 4 --ctx 32 --concurrency 1 --requests 1
expect_error "'sideways' is not one of kept\|original" --model tiny.gguf --method uniprefill:window=sideways "${run[@]}"

if [[ $failures -ne 0 ]]; then echo "$failures case(s) failed"; exit 1; fi
echo "gemma3 bad input: every case exits 2 with its message and writes nothing"
