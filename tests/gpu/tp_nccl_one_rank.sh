#!/usr/bin/env bash
# tp_nccl_one_rank.sh — issue 15's one-GPU check of the nccl transport in the real run:
# the same dense and UniPrefill sweep on the cuda backend with --tp 1 through the group
# of one (--comm self, today's path) and through a one-rank NCCL communicator (--comm
# nccl) gives the same per-request records (tools/request_records_diff.c: ids, status,
# lengths, first token, KV bytes, kept tokens per layer, output-token counts; timings
# ignored; C, so that no h5py is needed), and the nccl run records the transport and its
# library and prints the probe's one row. Exits 77 without a GPU.
# Usage: tp_nccl_one_rank.sh BINARY MPIEXEC REQUEST_RECORDS_DIFF TP_COMM_CHECK
set -eu
bin=$(realpath "$1") mpiexec=$2 diff_tool=$(realpath "$3") check=$(realpath "$4")
if (($("$check" --count-gpus) == 0)); then
  echo "SKIP: no CUDA device visible"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
args=(--backend cuda --tp 1 --ctx 300,700 --concurrency 1,3 --requests 4 --repetitions 1 --output-len 3
      --method dense,uniprefill:keep=0.3 --warmup 0)
"$mpiexec" -np 1 --bind-to none "$bin" "${args[@]}" --quiet --comm self -o "$work/self.h5" >"$work/self.txt"
"$mpiexec" -np 1 --bind-to none "$bin" "${args[@]}" --comm nccl -o "$work/nccl.h5" >"$work/nccl.txt" \
  2>"$work/nccl.err"
"$diff_tool" "$work/self.h5" "$work/nccl.h5"
"$diff_tool" --attr "$work/nccl.h5" tp_transport nccl
"$diff_tool" --attr "$work/nccl.h5" tp_transport_version "NCCL "
# The probe's one row: group 0 of 1 rank through nccl, busbw 0 for one rank.
if ! grep -Eq '^# +0 +1 +nccl .* 0\.00$' "$work/nccl.err"; then
  echo "FAIL: the nccl run printed no probe row for its group of one:" >&2
  cat "$work/nccl.err" >&2
  exit 1
fi
grep -E '^# +0 +1 +nccl ' "$work/nccl.err"
echo "ok: --tp 1 through a one-rank NCCL communicator gives the records of the group of one"
