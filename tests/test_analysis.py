#!/usr/bin/env python3
"""test_analysis.py — the analysis scripts against real run files, without pytest (a
plain script: it exits non-zero on the first failure).

- compare.py: a baseline against itself exits 0; copies edited with h5py (UniPrefill
  TTFT inflated, a kept fraction or KV fraction moved, a failure added) exit 1; a faster copy exits 0;
  foreign, missing or disjoint files and a bad threshold exit 2.
- figures.py: on the baseline every figure it can make exists as PNG and PDF (those of
  fields it predates are skipped with a note), the trace figures appear once points
  carry a "trace..." workload, and a one-context run skips the figure that needs two.
  A small sweep over context x concurrency x methods draws every summary figure:
  speedup, measured / predicted speedup, kept fraction, KV per request, residents,
  throughput.
- A fresh run of the binary: schema 2, token_offsets / token_times consistent with the
  request table, and the summary's ITL and goodput recomputed from them; each request's
  KV bytes recomputed from its per-layer token counts, and the summary's KV means.
- A `--kernels` run: summarize.py prints its kernels section, figures.py draws the
  attention figure (with the target lines once the rows carry targets) and none of
  the sweep figures; a sweep skips the attention figure.
- An `--eval` run of the tiny random Llama-2 GGUF (SHARED_DIR/models): its tables pair
  up, summarize.py prints the eval section, figures.py draws the eval figures and none
  of the sweep's; a sweep skips the eval figures; a copy whose /eval_layer_rows lost a
  row is refused by name.

    test_analysis.py BINARY ANALYSIS_DIR BASELINE.h5 SHARED_DIR
"""
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

PYTHON = sys.executable
SUMMARY_FIGURES = ("ttft_vs_ctx", "speedup_vs_concurrency", "throughput_vs_concurrency", "ttft_cdf",
                   "kept_per_layer", "kept_fraction")
# Figures of fields the committed baseline predates (the speed model's prediction, the
# KV footprint, residents): a run of today's binary has them.
NEW_FIELD_FIGURES = ("speedup_vs_predicted", "kv_per_request", "resident_vs_concurrency")
TRACE_FIGURES = ("trace_ttft_over_time", "trace_queue_over_time")
EVAL_FIGURES = ("eval_accuracy_vs_ctx", "eval_kl_vs_ctx", "eval_kept_per_layer", "eval_accuracy_vs_kept")
TINY_GGUF = os.path.join("models", "llama-2-tiny-random.gguf")


def fail(message):
    print(f"FAIL: {message}")
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def run(args, expect_rc, what):
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != expect_rc:
        fail(f"{what}: exit {proc.returncode}, expected {expect_rc}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    print(f"ok: {what} (exit {expect_rc})")
    return proc


def edited_copy(src, dst, edit):
    """Copy a run file and let edit(summary_array, h5file) change it in place."""
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        table = f["summary"][...]
        edit(table, f)
        f["summary"][...] = table
    return dst


def methods_of(table):
    return np.array([m.decode() for m in table["method"]])


def test_compare(compare, baseline, fresh, tmp):
    cmp = [PYTHON, compare]
    run(cmp + [baseline, baseline], 0, "compare: baseline against itself")

    def slower_uniprefill(table, _f):
        table["ttft_mean_ms"][methods_of(table) != "dense"] *= 2.0

    slow = edited_copy(baseline, os.path.join(tmp, "slow.h5"), slower_uniprefill)
    out = run(cmp + [baseline, slow, "--max-regress", "40%"], 1, "compare: UniPrefill TTFT doubled (CI tolerance)")
    check("uniprefill" in out.stdout and "REGRESSED" in out.stdout, "the regressed rows are not named")
    # The same slowdown passes a threshold above it: the verdict follows the threshold.
    run(cmp + [baseline, slow, "--max-regress", "150%"], 0, "compare: doubled TTFT under a 150% threshold")

    def faster_uniprefill(table, _f):
        table["ttft_mean_ms"][methods_of(table) != "dense"] *= 0.5

    fast = edited_copy(baseline, os.path.join(tmp, "fast.h5"), faster_uniprefill)
    out = run(cmp + [baseline, fast], 0, "compare: UniPrefill TTFT halved")
    check("better" in out.stdout, "an improvement is not marked")

    def slower_dense(table, _f):
        # Dense slower, UniPrefill unchanged: the ratio shrinks, no regression; the
        # absolute times (--absolute) do regress.
        table["ttft_mean_ms"][methods_of(table) == "dense"] *= 2.0

    dense_slow = edited_copy(baseline, os.path.join(tmp, "dense_slow.h5"), slower_dense)
    run(cmp + [baseline, dense_slow], 0, "compare: only dense slower, ratios only")
    run(cmp + [baseline, dense_slow, "--absolute"], 1, "compare: only dense slower, --absolute")

    def kept_moved(table, _f):
        rows = methods_of(table) != "dense"
        table["kept_fraction"][rows] += 0.05

    kept = edited_copy(baseline, os.path.join(tmp, "kept.h5"), kept_moved)
    run(cmp + [baseline, kept], 1, "compare: kept fraction moved by 0.05")

    def one_failure(table, _f):
        table["n_failed"][0] += 1

    failed = edited_copy(baseline, os.path.join(tmp, "failed.h5"), one_failure)
    run(cmp + [baseline, failed], 1, "compare: a request failed")

    # The committed baseline predates the KV fields; a fresh run has them. Compared with
    # itself a fresh run tracks its KV fraction, and a moved one regresses.
    out = run(cmp + [fresh, fresh], 0, "compare: fresh run with KV fields against itself")
    check("kv_fraction_of_dense" in out.stdout, "the KV fraction is not tracked")

    def kv_moved(table, _f):
        table["kv_fraction_of_dense"][methods_of(table) != "dense"] -= 0.05

    kv = edited_copy(fresh, os.path.join(tmp, "kv.h5"), kv_moved)
    run(cmp + [fresh, kv], 1, "compare: KV fraction moved by 0.05")

    def other_ctx(table, _f):
        table["ctx"] += 1

    disjoint = edited_copy(baseline, os.path.join(tmp, "disjoint.h5"), other_ctx)
    run(cmp + [baseline, disjoint], 2, "compare: no point in common")

    def one_point_moved(table, _f):
        table["ctx"][0] += 1

    # The new run lacks one of the baseline's points (and has one the baseline lacks):
    # everything it kept passes, yet the lost point fails the comparison, by name.
    partial = edited_copy(baseline, os.path.join(tmp, "partial.h5"), one_point_moved)
    out = run(cmp + [baseline, partial], 1, "compare: a baseline point missing from the new run")
    check("missing from the new run" in out.stdout and "REGRESSED" not in out.stdout,
          "the missing point is not the reason given")
    with h5py.File(baseline, "r") as f:
        first = f["summary"][0]
    lost = f"{first['method'].decode()} ctx={first['ctx']} conc={first['concurrency']}"
    check(lost in out.stdout, f"the missing point '{lost}' is not listed")
    run(cmp + [partial, baseline], 1, "compare: the other way round, the moved point is missing")

    not_h5 = os.path.join(tmp, "not_a_run.h5")
    with open(not_h5, "w") as f:
        f.write("not HDF5\n")
    run(cmp + [baseline, not_h5], 2, "compare: not an HDF5 file")
    run(cmp + [baseline, os.path.join(tmp, "missing.h5")], 2, "compare: missing file")
    run(cmp + [baseline, baseline, "--max-regress", "five"], 2, "compare: bad threshold")

    def future_schema(_table, f):
        f.attrs["schema_version"] = np.int32(99)

    future = edited_copy(baseline, os.path.join(tmp, "future.h5"), future_schema)
    run(cmp + [baseline, future], 2, "compare: unknown schema version")


def expect_figures(out_dir, names, absent=()):
    for name in names:
        for ext in ("png", "pdf"):
            path = os.path.join(out_dir, f"{name}.{ext}")
            check(os.path.isfile(path) and os.path.getsize(path) > 1000, f"{path} missing or empty")
    for name in absent:
        check(not os.path.exists(os.path.join(out_dir, f"{name}.png")), f"{name} drawn without its data")


def test_figures(figures, baseline, fresh, tmp):
    out = os.path.join(tmp, "fig_base")
    proc = run([PYTHON, figures, baseline, "-o", out], 0, "figures: baseline")
    expect_figures(out, SUMMARY_FIGURES, absent=TRACE_FIGURES + NEW_FIELD_FIGURES)
    check("skipped trace_ttft_over_time" in proc.stdout, "the trace figure's skip is not reported")
    for name in NEW_FIELD_FIGURES:
        check(f"skipped {name}" in proc.stdout, f"the skip of {name} on an older run is not reported")

    def as_trace(_table, f):
        for name in f["points"]:
            f["points"][name].attrs["workload"] = "trace:test.jsonl"

    trace = edited_copy(baseline, os.path.join(tmp, "trace.h5"), as_trace)
    out = os.path.join(tmp, "fig_trace")
    run([PYTHON, figures, trace, "-o", out], 0, "figures: trace workload")
    expect_figures(out, SUMMARY_FIGURES + TRACE_FIGURES)

    out = os.path.join(tmp, "fig_two")
    run([PYTHON, figures, baseline, trace, "-o", out], 0, "figures: two runs")
    expect_figures(out, SUMMARY_FIGURES + TRACE_FIGURES)

    out = os.path.join(tmp, "fig_fresh")
    proc = run([PYTHON, figures, fresh, "-o", out], 0, "figures: one context length")
    check("skipped ttft_vs_ctx" in proc.stdout, "a one-context run must skip ttft_vs_ctx")
    expect_figures(out, ("speedup_vs_concurrency", "ttft_cdf", "kept_per_layer") + NEW_FIELD_FIGURES,
                   absent=("ttft_vs_ctx",))
    run([PYTHON, figures, os.path.join(tmp, "missing.h5"), "-o", out], 2, "figures: missing file")

    # A fresh run beside the older baseline: figures of the new fields come from it alone.
    out = os.path.join(tmp, "fig_mixed")
    run([PYTHON, figures, baseline, fresh, "-o", out], 0, "figures: an older and a fresh run")
    expect_figures(out, SUMMARY_FIGURES + NEW_FIELD_FIGURES)


def test_sweep_figures(binary, figures, tmp):
    """Issue 5's sweep figures from a small CPU sweep over context x concurrency x
    methods: every summary figure is drawn, and the values they plot are there."""
    sweep = os.path.join(tmp, "sweep.h5")
    # Two rounds per point: the figures read a repeated run's summary as any other.
    run([binary, "--ctx", "512,1k", "--concurrency", "1,2", "--method", "dense,uniprefill:keep=0.3",
         "--output-len", "2", "--warmup", "0", "--repetitions", "2", "--threads", "1", "--quiet", "-o", sweep], 0,
        "binary: ctx x concurrency x method sweep")
    with h5py.File(sweep, "r") as f:
        summary = f["summary"][...]
    check(len(summary) == 8, f"{len(summary)} points, expected 2 x 2 x 2")
    uni = summary[methods_of(summary) != "dense"]
    check(np.all(np.isfinite(uni["speedup_vs_dense"])) and np.all(uni["predicted_speedup"] > 1.0),
          "UniPrefill points lack a measured or predicted speedup")
    check(np.all(uni["kv_fraction_of_dense"] < 1.0) and np.all(uni["kept_fraction"] < 1.0),
          "UniPrefill kept everything at 512 and 1k tokens")
    check(np.all(summary["max_resident"] == summary["concurrency"]), "the default pool held back requests")
    out = os.path.join(tmp, "fig_sweep")
    proc = run([PYTHON, figures, sweep, "-o", out], 0, "figures: sweep")
    expect_figures(out, SUMMARY_FIGURES + NEW_FIELD_FIGURES, absent=TRACE_FIGURES)
    for name in SUMMARY_FIGURES + NEW_FIELD_FIGURES:
        check(f"skipped {name}" not in proc.stdout, f"{name} skipped on a full sweep")


def test_fresh_run(binary, fresh):
    slo_ttft_ms = 1e5  # generous: every request is good
    # One round: the checks recompute duration and goodput from the requests' own clock,
    # which a point run in rounds has one of per round.
    args = [binary, "--ctx", "300", "--concurrency", "1,2", "--requests", "3", "--output-len", "4",
            "--method", "dense,uniprefill:keep=0.5", "--warmup", "0", "--repetitions", "1", "--threads", "1", "--quiet",
            "--slo", f"ttft:{slo_ttft_ms:g}", "-o", fresh]
    run(args, 0, "binary: small sweep with --slo")
    with h5py.File(fresh, "r") as f:
        check(int(f.attrs["schema_version"]) == 2, "schema_version is not 2")
        summary = f["summary"][...]
        for row in summary:
            point = f["points"][f"{row['point_index']:04d}"]
            req = point["requests"][...]
            offsets, times = point["token_offsets"][...], point["token_times"][...]
            check(offsets.dtype == np.int64 and times.dtype == np.float64, "token dataset types")
            check(len(offsets) == len(req) + 1 and offsets[0] == 0 and offsets[-1] == len(times),
                  "token_offsets do not frame token_times")
            check(np.array_equal(np.diff(offsets), req["output_len"]), "token counts differ from output_len")
            first = times[offsets[:-1]]
            last = times[offsets[1:] - 1]
            check(np.allclose(first, req["first_token_s"]) and np.allclose(last, req["finish_s"]),
                  "token times do not start at the first token and end at the finish")
            gaps = np.concatenate([np.diff(times[a:b]) for a, b in zip(offsets[:-1], offsets[1:])]) * 1e3
            check(np.isclose(gaps.mean(), row["itl_mean_ms"]) and np.isclose(np.median(gaps), row["itl_p50_ms"]),
                  "summary ITL differs from the token times")
            check(np.isclose(np.percentile(gaps, 99), row["itl_p99_ms"]), "summary ITL p99 differs")
            tpot = (req["e2e_ms"] - req["ttft_ms"]) / (req["output_len"] - 1)
            check(np.isclose(tpot.mean(), row["tpot_mean_ms"]) and np.isclose(tpot.std(), row["tpot_std_ms"]),
                  "summary TPOT differs from the requests")
            check(row["slo_ttft_ms"] == slo_ttft_ms and np.isnan(row["slo_tpot_ms"]), "SLO not recorded")
            check(row["n_good"] == len(req), "every request should meet the generous SLO")
            duration = req["finish_s"].max() - req["arrival_s"].min()
            check(np.isclose(row["duration_s"], duration), "duration differs")
            check(np.isclose(row["goodput_requests_per_s"], len(req) / duration), "goodput differs")
    print("ok: fresh run's token times and serving metrics")
    check_kv_footprint(fresh)


def check_kv_footprint(path):
    """Each request's KV bytes against its per-layer token counts and the point's block
    size; the summary's KV means and fraction against the requests."""
    with h5py.File(path, "r") as f:
        for row in f["summary"][...]:
            point = f["points"][f"{row['point_index']:04d}"]
            req = point["requests"][...]
            layers = point["request_layer_tokens"][...]
            block_tokens = int(point.attrs["kv_block_tokens"])
            entry = int(point.attrs["kv_block_bytes"]) // block_tokens
            n_layers = layers.shape[1]
            check(np.array_equal(req["kv_bytes"], layers.sum(axis=1) * entry), "kv_bytes differ from the layer counts")
            check(np.array_equal(req["kv_dense_bytes"], req["prompt_len"].astype(np.int64) * n_layers * entry),
                  "kv_dense_bytes differ from prompt x layers x entry bytes")
            blocks = -(-(layers.astype(np.int64) + req["output_len"][:, None] - 1) // block_tokens)
            check(np.array_equal(req["kv_held_bytes"], blocks.sum(axis=1) * block_tokens * entry),
                  "kv_held_bytes differ from the block-rounded layer counts")
            method = row["method"].decode()
            fraction = req["kv_bytes"].sum() / req["kv_dense_bytes"].sum()
            check(np.isclose(row["kv_fraction_of_dense"], fraction), "summary kv_fraction_of_dense differs")
            check(np.isclose(row["kv_bytes_per_request"], req["kv_bytes"].mean()), "summary kv bytes differ")
            # Dense holds every token; UniPrefill less as soon as it dropped any.
            expect_less = method != "dense" and row["kept_fraction"] < 1.0
            check(fraction < 1.0 if expect_less else fraction == 1.0, f"{method}: KV fraction {fraction}")
            check(1 <= row["max_resident"] <= row["concurrency"], "max_resident outside 1..concurrency")
    print("ok: fresh run's KV bytes per request")


def test_kernels_run(binary, analysis, baseline, tmp):
    kern = os.path.join(tmp, "kernels.h5")
    run([binary, "--kernels", "--backend", "cpu", "--threads", "1", "--kernel-tokens", "64", "--ctx", "300,512",
         "--kernel-batches", "2x300", "--kernel-repeats", "2", "--kernel-warmup", "0", "--quiet", "-o", kern],
        0, "binary: small --kernels run")
    proc = run([PYTHON, os.path.join(analysis, "summarize.py"), kern], 0, "summarize: kernels run")
    for text in ("## kernels", "| selection 2x300 |", "| gemm gate_up |", "top_p 0.99", "last_q 128"):
        check(text in proc.stdout, f"summarize output lacks '{text}':\n{proc.stdout}")
    check("(no points finished)" not in proc.stdout, "a kernels run is reported as an empty sweep")
    proc = run([PYTHON, os.path.join(analysis, "summarize.py"), baseline], 0, "summarize: sweep")
    check("## kernels" not in proc.stdout, "a sweep has no kernels section")

    figures = os.path.join(analysis, "figures.py")
    out = os.path.join(tmp, "fig_kernels")
    run([PYTHON, figures, kern, "-o", out], 0, "figures: kernels run")
    expect_figures(out, ("attention_tflops_vs_ctx",), absent=SUMMARY_FIGURES)

    def with_targets(_table, f):
        rows = f["kernels"][...]
        attention = rows["kernel"] == b"attention"
        rows["target_tflops_per_s"][attention] = 350.0
        rows["goal_tflops_per_s"][attention] = 600.0
        rows["reference_tflops_per_s"][attention] = 238.0
        f["kernels"][...] = rows

    targeted = edited_copy(kern, os.path.join(tmp, "kernels_targets.h5"), with_targets)
    out = os.path.join(tmp, "fig_kernels_targets")
    run([PYTHON, figures, targeted, "-o", out], 0, "figures: kernels run with targets")
    expect_figures(out, ("attention_tflops_vs_ctx",))
    proc = run([PYTHON, figures, baseline, "-o", os.path.join(tmp, "fig_sweep")], 0, "figures: sweep")
    check("skipped attention_tflops_vs_ctx" in proc.stdout, "a sweep must skip the attention figure")


def test_eval_run(binary, analysis, baseline, shared, tmp):
    model = os.path.join(shared, TINY_GGUF)
    check(os.path.isfile(model), f"{model} is missing (the shared tiny model is always present)")
    ev = os.path.join(tmp, "eval.h5")
    methods = ("dense", "uniprefill:keep=0.3")
    run([binary, "--model", model, "--eval", "niah_single", "--ctx", "256", "--eval-samples", "1",
         "--eval-max-new", "2", "--method", ",".join(methods), "--threads", "1", "--quiet", "-o", ev],
        0, "binary: small --eval run")
    with h5py.File(ev, "r") as f:
        check(int(f.attrs["schema_version"]) == 2, "an --eval run's schema_version is not 2")
        check(len(f["summary"]) == 0 and len(f["points"]) == 0, "an --eval run must leave /summary and /points empty")
        samples = f["eval_samples"][...]
        check([m.decode() for m in samples["method"]] == list(methods), "one sample row per method, dense first")
        layer_rows = f["eval_layer_rows"]["0000"][...]
        check(layer_rows.shape[0] == len(samples), "/eval_layer_rows/0000 does not pair with /eval_samples")
        check(np.array_equal(layer_rows[:, 0], samples["prompt_tokens"]), "every prompt row enters layer 0")
        tasks = {t.decode() for t in f["eval_summary"][...]["task"]}
        check(tasks == {"niah_single", "all"}, f"eval_summary tasks {tasks}")

    summarize = os.path.join(analysis, "summarize.py")
    proc = run([PYTHON, summarize, ev], 0, "summarize: eval run")
    for text in ("## eval", "| uniprefill:keep=0.3 | 256 |", "top1_agreement", "kept_after_drops",
                 "Accuracy per task", "niah_single"):
        check(text in proc.stdout, f"summarize output lacks '{text}':\n{proc.stdout}")
    check("(no points finished)" not in proc.stdout, "an eval run is reported as an empty sweep")
    proc = run([PYTHON, summarize, baseline], 0, "summarize: sweep without eval tables")
    check("## eval" not in proc.stdout, "a sweep has no eval section")

    figures = os.path.join(analysis, "figures.py")
    out = os.path.join(tmp, "fig_eval")
    run([PYTHON, figures, ev, "-o", out], 0, "figures: eval run")
    expect_figures(out, EVAL_FIGURES, absent=SUMMARY_FIGURES)
    proc = run([PYTHON, figures, baseline, "-o", os.path.join(tmp, "fig_sweep_eval")], 0, "figures: sweep, no eval")
    for name in EVAL_FIGURES:
        check(f"skipped {name}" in proc.stdout, f"a sweep must skip {name}")

    def lose_layer_row(_table, f):
        rows = f["eval_layer_rows"]["0000"][...]
        del f["eval_layer_rows"]["0000"]
        f["eval_layer_rows"]["0000"] = rows[:-1]

    broken = edited_copy(ev, os.path.join(tmp, "eval_unpaired.h5"), lose_layer_row)
    proc = run([PYTHON, summarize, broken], 1, "summarize: eval layer rows that do not pair")
    check("/eval_layer_rows" in proc.stderr, f"the unpaired table is not named:\n{proc.stderr}")


def main(argv):
    if len(argv) != 5:
        sys.exit("usage: test_analysis.py BINARY ANALYSIS_DIR BASELINE.h5 SHARED_DIR")
    binary, analysis, baseline, shared = (os.path.abspath(a) for a in argv[1:])
    compare = os.path.join(analysis, "compare.py")
    figures = os.path.join(analysis, "figures.py")
    tmp = tempfile.mkdtemp(prefix="up_analysis_")
    # Matplotlib's font cache goes to a writable, throwaway place.
    os.environ.setdefault("MPLCONFIGDIR", os.path.join(tmp, "mpl"))
    try:
        fresh = os.path.join(tmp, "fresh.h5")
        test_fresh_run(binary, fresh)
        test_compare(compare, baseline, fresh, tmp)
        test_figures(figures, baseline, fresh, tmp)
        test_kernels_run(binary, analysis, baseline, tmp)
        test_sweep_figures(binary, figures, tmp)
        test_eval_run(binary, analysis, baseline, shared, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("all analysis checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
