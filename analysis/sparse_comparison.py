#!/usr/bin/env python3
"""sparse_comparison.py — the comparison the UniPrefill paper makes between dense
prefill, UniPrefill and the sparse-attention baselines (MInference, FlexPrefill,
XAttention; issue 13), as two figures and a table from uniprefill-bench run files.

Owns this comparison only: reading is analysis/runfile.py's, the plotting plumbing
(colours, panels, captions) figures.py's, and every number comes from the files.

  sparse_speedup_vs_ctx      TTFT speedup over dense (`speedup_vs_dense`, solid) and
                             the speed model's prediction (`predicted_speedup`, dashed:
                             tokens kept per layer, a sparse method's kept tiles and its
                             estimation, ../shared/BASELINES.md 4) against prompt length,
                             a line per method, a panel per concurrency; at 128K the
                             paper's Llama-3.1-8B speedups are stars in the method's
                             colour (needs sweep rows at two or more lengths)
  sparse_accuracy_vs_speedup `--eval` accuracy (task "all", over every eval context,
                             weighted by samples) against the measured speedup at the
                             longest swept length (the lowest concurrency there), a
                             point per method label found in both a sweep and an eval
                             run (needs both: an --eval run has no sweep rows, so give
                             a sweep file and an eval file)

The table printed to stdout has, per method and swept length, the measured and
predicted speedups, and the eval accuracy and top-1 agreement beside them.

    /usr/bin/python3 analysis/sparse_comparison.py SWEEP.h5 [EVAL.h5 ...] -o DIR
"""
import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import figures  # noqa: E402  (the plotting plumbing lives beside this script)
import runfile  # noqa: E402

# The UniPrefill paper's 128K TTFT speedups over dense on Llama-3.1-8B (issue 13),
# keyed by method name (the label before any ':').
PAPER_CTX = 131072
PAPER_SPEEDUP_128K = {"minference": 1.34, "flexprefill": 1.46, "xattention": 1.38, "uniprefill": 2.26}


def family(label):
    return label.split(":", 1)[0]


def sweep_rows(runs):
    """Finished sweep rows with a measured speedup (closed-loop points only)."""
    return [r for run in runs for r in run.summary
            if r["workload"] == runfile.CLOSED_LOOP and figures.finite(r.get("speedup_vs_dense"))]


def eval_accuracy(runs):
    """method -> (accuracy, top-1 agreement, samples) over every eval context, task "all"."""
    totals = {}
    for run in runs:
        for r in run.eval.summary:
            if r["task"] != figures.EVAL_ALL_TASKS or r["n_samples"] <= 0:
                continue
            acc, top1, n = totals.get(r["method"], (0.0, 0.0, 0))
            totals[r["method"]] = (acc + r["accuracy"] * r["n_samples"], top1 + r["top1_agreement"] * r["n_samples"],
                                   n + r["n_samples"])
    return {m: (acc / n, top1 / n, n) for m, (acc, top1, n) in totals.items()}


def fig_speedup_vs_ctx(runs, colors, out_dir, written):
    rows = sweep_rows(runs)
    ctxs = figures.distinct(r["ctx"] for r in rows)
    if len(ctxs) < 2:
        return "needs sweep rows with a dense twin at two or more context lengths"
    concs = figures.distinct(r["concurrency"] for r in rows)
    fig, axes = figures.panel_grid(len(concs), "TTFT speedup over dense vs prompt length")
    for ax, conc in zip(axes, concs):
        at = [r for r in rows if r["concurrency"] == conc]
        # The paper's "128K": a prompt of 131,072 tokens plus an output token exceeds
        # Llama-3.1-8B's context, so runs sweep 131,000; stars go at such a length.
        paper_ctx = next((c for c in ctxs if abs(c - PAPER_CTX) <= PAPER_CTX // 100), None)
        starred = set()
        for method in figures.distinct(r["method"] for r in at):
            pts = sorted((r["ctx"], r["speedup_vs_dense"], r.get("predicted_speedup", math.nan)) for r in at
                         if r["method"] == method)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=colors[method], label=method)
            predicted = [(p[0], p[2]) for p in pts if figures.finite(p[2])]
            if predicted and method != figures.DENSE:
                ax.plot([p[0] for p in predicted], [p[1] for p in predicted], marker="o", markerfacecolor="none",
                        linestyle="--", color=colors[method])
            paper = PAPER_SPEEDUP_128K.get(family(method))
            if paper and paper_ctx and family(method) not in starred:  # once per method, its first label's colour
                starred.add(family(method))
                ax.plot([paper_ctx], [paper], marker="*", markersize=11, linestyle="none", color=colors[method])
        ax.axhline(1.0, color=figures.DENSE_COLOR, linewidth=0.8, linestyle=":")
        figures.log2_axis(ax, ctxs, [figures.size_label(c) for c in ctxs], "prompt length (tokens)")
        title = f"concurrency {conc}; dashed: speed model" + ("; stars: paper, 128K" if paper_ctx else "")
        figures.finish_panel(ax, "speedup over dense (×, mean TTFT)", title)
    figures.save(fig, out_dir, "sparse_speedup_vs_ctx", runs, written)
    return None


def speedups_at_longest(rows):
    """method -> measured speedup at the longest swept length, lowest concurrency there."""
    longest = max(r["ctx"] for r in rows)
    conc = min(r["concurrency"] for r in rows if r["ctx"] == longest)
    return longest, conc, {r["method"]: r["speedup_vs_dense"] for r in rows
                           if r["ctx"] == longest and r["concurrency"] == conc}


def fig_accuracy_vs_speedup(runs, colors, out_dir, written):
    rows = sweep_rows(runs)
    accuracy = eval_accuracy(runs)
    if not rows or not accuracy:
        return "needs sweep rows with a dense twin and --eval rows (a sweep file and an eval file)"
    longest, conc, speedup = speedups_at_longest(rows)
    methods = [m for m in figures.distinct(speedup) if m in accuracy]
    if not methods:
        return "no method label appears in both the sweep and the eval rows"
    fig, axes = figures.panel_grid(1, "Accuracy vs TTFT speedup")
    ax = axes[0]
    for method in methods:
        ax.plot([speedup[method]], [accuracy[method][0]], marker="o", linestyle="none", color=colors[method],
                label=method)
    ax.set_xlabel(f"TTFT speedup over dense at {figures.size_label(longest)}, concurrency {conc} (×)")
    ax.set_ylim(-0.03, 1.05)
    figures.finish_panel(ax, "eval accuracy, all tasks and contexts", "each method's point")
    figures.save(fig, out_dir, "sparse_accuracy_vs_speedup", runs, written)
    return None


def print_table(runs):
    rows = sweep_rows(runs)
    accuracy = eval_accuracy(runs)
    print("| method | ctx | concurrency | speedup | predicted | eval accuracy | eval top-1 = dense |")
    print("|---|---|---|---|---|---|---|")
    shown = set()
    for r in sorted(rows, key=lambda r: (r["method"] != figures.DENSE, r["method"], r["ctx"], r["concurrency"])):
        acc = accuracy.get(r["method"])
        shown.add(r["method"])
        print(f"| {r['method']} | {figures.size_label(r['ctx'])} | {r['concurrency']} | {r['speedup_vs_dense']:.2f} | "
              f"{r.get('predicted_speedup', math.nan):.2f} | {f'{acc[0]:.3f}' if acc else '-'} | "
              f"{f'{acc[1]:.3f}' if acc else '-'} |")
    for method, (acc, top1, _) in sorted(accuracy.items()):
        if method not in shown:
            print(f"| {method} | - | - | - | - | {acc:.3f} | {top1:.3f} |")


FIGURES = (("sparse_speedup_vs_ctx", fig_speedup_vs_ctx), ("sparse_accuracy_vs_speedup", fig_accuracy_vs_speedup))


def read_runs(paths):
    """The run files without their point groups; None after saying why they cannot
    be compared (a file that is not a run, or nothing to plot)."""
    try:
        runs = [runfile.load_run(path, with_points=False) for path in paths]
    except runfile.RunFileError as exc:
        print(f"sparse_comparison.py: error: {exc}", file=sys.stderr)
        return None
    if sweep_rows(runs) or eval_accuracy(runs):
        return runs
    print("sparse_comparison.py: error: no sweep row with a speedup over dense and no --eval row", file=sys.stderr)
    return None


def main(argv):
    parser = argparse.ArgumentParser(prog="sparse_comparison.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="directory for the figures")
    parser.add_argument("runs", nargs="+", metavar="RUN.h5", help="sweep and --eval run files")
    args = parser.parse_args(argv)
    if (runs := read_runs(args.runs)) is None:
        return 2
    os.makedirs(args.output, exist_ok=True)
    colors, written = figures.method_colors(runs), []
    skipped = [(name, make(runs, colors, args.output, written)) for name, make in FIGURES]
    print("".join(f"sparse_comparison.py: note: skipped {name}: {why}\n" for name, why in skipped if why), end="")
    print_table(runs)
    print("".join(f"wrote {path}\n" for path in written), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
