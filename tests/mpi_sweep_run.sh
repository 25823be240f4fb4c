# mpi_sweep_run.sh — sourced by the CTest scripts that run the launcher's sweep under
# mpirun and compare its run files (tp_sweep.sh, request_records_diff.sh): run NP FILE
# ARGS... runs "$bin" on NP ranks with the caller's "${sweep[@]}" options and ARGS into
# FILE, with stdout and stderr in out.txt and err.txt; a failed sweep ends the test
# (exit 1) showing its stderr.
run() {
  local np=$1 file=$2
  shift 2
  if ! timeout 300 "$mpiexec" -np "$np" --oversubscribe --bind-to none "$bin" "${sweep[@]}" "$@" -o "$file" \
    >out.txt 2>err.txt; then
    echo "FAIL: -np $np $*: the sweep failed" >&2
    cat err.txt >&2
    exit 1
  fi
}
