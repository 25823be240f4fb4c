#!/usr/bin/env python3
"""test_sparse_comparison.py — analysis/sparse_comparison.py against real run files of
the sparse baselines, without pytest (exits non-zero on the first failure).

- A small CPU sweep (tiny-llama, 512 and 1k tokens, dense, MInference and a capped
  XAttention) records, for the sparse methods, a measured speedup and a speed-model
  prediction above 1 (their kept tiles and estimation are under dense attention's),
  and 1 for dense.
- A small --eval run of the shared tiny Llama-2 GGUF with the same method labels.
- sparse_comparison.py on both draws both figures and prints each method's row with
  its eval accuracy; on the sweep alone it skips the accuracy figure, on a one-length
  sweep the speedup figure; a file that is not a run exits 2 naming it.

    test_sparse_comparison.py BINARY ANALYSIS_DIR SHARED_DIR
"""
import os
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_analysis import PYTHON, check, run  # noqa: E402  (the shared plain-script helpers)

METHODS = ("dense", "minference:v=30:s=64", "xattention:density=0.3")
FIGURES = ("sparse_speedup_vs_ctx", "sparse_accuracy_vs_speedup")


def drawn(out_dir, name):
    return all(os.path.isfile(os.path.join(out_dir, f"{name}.{ext}")) for ext in ("png", "pdf"))


def sweep(binary, path, ctxs):
    run([binary, "--ctx", ctxs, "--concurrency", "1", "--method", ",".join(METHODS), "--output-len", "2",
         "--warmup", "0", "--repetitions", "1", "--threads", "1", "--quiet", "-o", path], 0, f"binary: sweep {ctxs}")


def main(argv):
    if len(argv) != 4:
        sys.exit("usage: test_sparse_comparison.py BINARY ANALYSIS_DIR SHARED_DIR")
    binary, analysis, shared = (os.path.abspath(a) for a in argv[1:])
    script = os.path.join(analysis, "sparse_comparison.py")
    with tempfile.TemporaryDirectory(prefix="up_sparse_comparison_") as tmp:
        os.environ.setdefault("MPLCONFIGDIR", os.path.join(tmp, "mpl"))
        sweep_h5 = os.path.join(tmp, "sweep.h5")
        sweep(binary, sweep_h5, "512,1k")
        with h5py.File(sweep_h5, "r") as f:
            summary = f["summary"][...]
        methods = np.array([m.decode() for m in summary["method"]])
        check(len(summary) == 6, f"{len(summary)} points, expected 2 lengths x 3 methods")
        dense, sparse = summary[methods == "dense"], summary[methods != "dense"]
        check(np.all(dense["predicted_speedup"] == 1.0), "dense must predict 1")
        check(np.all(np.isfinite(sparse["speedup_vs_dense"])), "a sparse point lacks a measured speedup")
        check(np.all(sparse["predicted_speedup"] > 1.0),
              f"the sparse methods' kept tiles and estimation must predict a speedup: {sparse['predicted_speedup']}")

        eval_h5 = os.path.join(tmp, "eval.h5")
        model = os.path.join(shared, "models", "llama-2-tiny-random.gguf")
        check(os.path.isfile(model), f"{model} is missing (the shared tiny model is always present)")
        run([binary, "--model", model, "--eval", "niah_single", "--ctx", "256", "--eval-samples", "1",
             "--eval-max-new", "2", "--method", ",".join(METHODS), "--threads", "1", "--quiet", "-o", eval_h5], 0,
            "binary: small --eval run")

        out = os.path.join(tmp, "both")
        proc = run([PYTHON, script, sweep_h5, eval_h5, "-o", out], 0, "sparse_comparison: sweep and eval")
        for name in FIGURES:
            check(drawn(out, name), f"{name} not drawn from a sweep and an eval run:\n{proc.stdout}")
        for method in METHODS:
            check(any(line.startswith(f"| {method} | 1k | 1 |") and line.count("|") == 8 and " - |" not in line
                      for line in proc.stdout.splitlines()),
                  f"no table row of {method} at 1k with its eval accuracy:\n{proc.stdout}")

        out = os.path.join(tmp, "sweep_only")
        proc = run([PYTHON, script, sweep_h5, "-o", out], 0, "sparse_comparison: sweep only")
        check(drawn(out, FIGURES[0]) and "skipped sparse_accuracy_vs_speedup" in proc.stdout,
              f"a sweep alone draws the speedup figure and skips the accuracy one:\n{proc.stdout}")

        short_h5 = os.path.join(tmp, "short.h5")
        sweep(binary, short_h5, "300")
        proc = run([PYTHON, script, short_h5, "-o", os.path.join(tmp, "short")], 0, "sparse_comparison: one length")
        check("skipped sparse_speedup_vs_ctx" in proc.stdout, f"one length must skip the speedup figure:\n{proc.stdout}")

        not_a_run = os.path.join(tmp, "not_a_run.h5")
        with h5py.File(not_a_run, "w") as f:
            f.attrs["something"] = 1
        proc = run([PYTHON, script, not_a_run, "-o", os.path.join(tmp, "bad")], 2, "sparse_comparison: not a run")
        check(not_a_run in proc.stderr, f"the file that is not a run is not named:\n{proc.stderr}")
        print("all sparse comparison checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
