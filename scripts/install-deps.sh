#!/usr/bin/env bash
# install-deps.sh — installs the Debian packages uniprefill-bench builds and runs with,
# only those missing. As root it runs apt-get; otherwise it prints the exact command
# and stops, so `make` never half-builds on a machine that lacks a library.
set -euo pipefail

packages=(
  cmake make gcc pkg-config
  clang libclang-rt-14-dev
  libopenmpi-dev openmpi-bin
  libhdf5-dev
  libopenblas-dev
  libcjson-dev
  libpcre2-dev
  libcriterion-dev
  zlib1g-dev
  gnu-standards  # prose for the eval tasks' haystacks (workloads/eval/haystack_corpus.h)
  python3 python3-h5py python3-numpy python3-matplotlib
)

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: missing packages (${missing[*]}) and no apt-get: install them with your package manager" >&2
  exit 1
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing Debian packages. Run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
