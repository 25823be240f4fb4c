#!/usr/bin/env bash
# gpu-ab.sh — a before/after check on a lent GPU machine, in one command: build this tree
# ("after") and an older commit ("before", unpacked in .carry/before) side by side, run
# `ctest -L gpu` on the tree, dense Llama-3.1-8B 1 x E2E_CTX (default 32k) alternating
# before / after / before / after, then optionally a --kernels run (KERNELS: its flags).
# Prepare here, then carry .carry with the call:
#   mkdir -p .carry/before .carry/debs && git archive COMMIT | tar -x -C .carry/before
#   (cd .carry/debs && apt-get download libcjson1 libcjson-dev libpcre2-dev)
# The GPU machine lacks cJSON (and maybe PCRE2's headers): their Debian packages are
# unpacked there only when pkg-config cannot find them. Environment: AFTER, BEFORE (the
# commits' names for the run files), AFTER_ARGS (flags only the newer binary knows, e.g.
# --repetitions 1), KERNELS, E2E_CTX. Logs go to $OUT/w, packed into $OUT/ab.tgz.
set -uo pipefail
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
w=$OUT/w; mkdir -p "$w"
trap 'tar czf "$OUT/ab.tgz" -C "$OUT" w' EXIT
pkg-config --exists libcjson || for f in .carry/debs/libcjson*.deb; do dpkg -x "$f" /; done
pkg-config --exists libpcre2-8 || dpkg -x .carry/debs/libpcre2-dev*.deb /
ldconfig
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.limit --format=csv | tee "$w/gpu.txt"
build() { # dir commit log
  (cd "$1" && UNIPREFILL_GIT_COMMIT=$2 cmake -S . -B build-gpu -DUNIPREFILL_CUDA=ON -DCMAKE_BUILD_TYPE=Release \
     && cmake --build build-gpu -j16) >"$w/$3" 2>&1 || { echo "BUILD FAILED $1"; grep -E "error" "$w/$3" | head -20; return 1; }
}
build . "${AFTER:-after}" build_after.log & build .carry/before "${BEFORE:-before}" build_before.log & wait
[[ -x build-gpu/uniprefill-bench && -x .carry/before/build-gpu/uniprefill-bench ]] || exit 1
timeout ${CTEST_TIMEOUT:-300} ctest --test-dir build-gpu -L gpu --output-on-failure >"$w/ctest_gpu.log" 2>&1; echo "ctest -L gpu rc=$?"
grep -E "tests passed|Failed|Skipped|\*\*\*" "$w/ctest_gpu.log"
for i in 1 2; do for side in before after; do
  bin=build-gpu/uniprefill-bench; extra=${AFTER_ARGS:-}
  [[ $side == before ]] && { bin=.carry/before/build-gpu/uniprefill-bench; extra=; }
  # shellcheck disable=SC2086
  $bin $extra --backend cuda --model llama-3.1-8b --ctx ${E2E_CTX:-32k} --concurrency 1 --method dense --requests 3 --output-len 1 \
    --format csv -o "$w/e2e_${side}_$i.h5" >"$w/e2e_${side}_$i.csv" 2>"$w/e2e_${side}_$i.log"
  echo "$side $i rc=$? $(tail -n +2 "$w/e2e_${side}_$i.csv" | cut -d, -f1-2,6-8 | tr '\n' ' ')"
done; done
if [[ -n ${KERNELS:-} ]]; then
  timeout ${KERNELS_TIMEOUT:-300} build-gpu/uniprefill-bench --kernels --backend cuda --model llama-3.1-8b $KERNELS \
    -o "$w/kernels.h5" >"$w/kernels.md" 2>"$w/kernels.log"; echo "kernels rc=$?"; cat "$w/kernels.md"
fi
