#!/usr/bin/env python3
"""figures.py — paper-style figures of one or more uniprefill-bench runs, written
headless (matplotlib Agg) as PNG and PDF into one directory.

Owns plotting only: reading is analysis/runfile.py's, the metrics come from the files.
Figures, each skipped with a printed note when the runs lack what it needs:

  ttft_vs_ctx               mean TTFT against prompt length, a line per method, a panel
                            per concurrency (needs two or more context lengths)
  speedup_vs_concurrency    TTFT speedup over dense against concurrency, a line per
                            context length, a panel per method (needs two or more
                            concurrencies and dense twins)
  throughput_vs_concurrency prefill throughput against concurrency, a line per method,
                            a panel per context length (needs two or more concurrencies)
  speedup_vs_predicted      measured TTFT speedup over dense / the speed model's predicted
                            speedup against concurrency, a line per method, a panel per
                            context length (1 = the implementation turns every FLOP saved
                            into time; the band is +-10%)
  kept_fraction             prompt tokens kept after the last layer and KV bytes kept
                            relative to dense, against prompt length, a line per method
  kv_per_request            KV cache MiB a request holds after its prefill against prompt
                            length, a line per method, beside dense's for the same prompts
  resident_vs_concurrency   most requests holding KV at once against concurrency, a line
                            per method, a panel per context length (below the diagonal:
                            the KV pool, not the workload, capped the batch)
  ttft_cdf                  TTFT distribution of the successful requests per method, a
                            panel per context length (concurrencies pooled)
  kept_per_layer            mean fraction of prompt tokens entering each layer, a line
                            per method, a panel per context length
  trace_ttft_over_time      TTFT of each request at its arrival time, per method, a
                            panel per trace, context length and concurrency, for points
                            whose `workload` attribute starts with "trace"
  trace_queue_over_time     requests arrived but not yet admitted, over time, for those
                            points (from the request table's arrival and admission times)
  attention_tflops_vs_ctx   `--kernels` runs: causal prefill attention TFLOP/s (median)
                            against context length, a line per run and rank, with the
                            issue's target and goal and the published reference where
                            the file has them (needs two or more attention lengths)
  eval_accuracy_vs_ctx      `--eval` runs: exact-match accuracy against prompt length, a
                            line per method, a panel per task plus "all" (tasks pooled)
  eval_kl_vs_ctx            `--eval` runs: mean KL(dense || method) at the answer
                            position against prompt length, a line per non-dense method,
                            a panel per task plus "all"
  eval_kept_per_layer       `--eval` runs: mean fraction of prompt tokens entering each
                            layer (/eval_layer_rows), a line per method, a panel per
                            context length; the steps sit after each drop layer
  eval_accuracy_vs_kept     `--eval` runs: the accuracy/kept trade-off, a point per method
                            (tasks pooled) at its mean kept fraction, a panel per context
                            length; a top-p sweep (uniprefill:p=0.95,...) traces the
                            front, dense sits at 1

Runs written before the KV fields existed (kv_*, max_resident) skip the figures that
need them. Methods keep one colour in every figure (dense always dark grey, the others from a
fixed palette in sorted label order); with several runs, each run has its own line
style. Each figure's last line names the runs' model, device and commit.

    /usr/bin/python3 analysis/figures.py RUN.h5 [RUN2.h5 ...] -o DIR
"""
import argparse
import math
import os
import sys
import textwrap

import matplotlib

matplotlib.use("Agg")  # headless: CI and SSH sessions have no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import runfile  # noqa: E402  (the shared reader lives beside this script)

DENSE = "dense"
DENSE_COLOR = "#404040"
# tab10 without its grey, which is dense's.
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#bcbd22", "#17becf")
RUN_STYLES = ("-", "--", ":", "-.")
PANEL_W, PANEL_H = 4.2, 3.2
MAX_PANEL_COLS = 3


# ---- shared plumbing ------------------------------------------------------------

def method_colors(runs):
    """One colour per method label over all runs (sweep and eval rows), the same in
    every figure."""
    labels = sorted({row["method"] for run in runs for row in run.summary + run.eval.summary} - {DENSE})
    colors = {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(labels)}
    colors[DENSE] = DENSE_COLOR
    return colors


def size_label(tokens):
    return f"{tokens // 1024}k" if tokens >= 1024 and tokens % 1024 == 0 else str(tokens)


def ctx_label(ctx):
    """Panel label for a prompt length; 0 marks timed workloads (open loop, traces),
    whose prompts have many lengths."""
    return f"prompt length {size_label(ctx)} tokens" if ctx > 0 else "prompts of mixed lengths"


def series_label(method, run, runs):
    return method if len(runs) == 1 else f"{method} ({run.name})"


def panel_grid(n, title):
    """A figure with n panels in rows of at most MAX_PANEL_COLS; returns (fig, axes)."""
    cols = min(n, MAX_PANEL_COLS)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(PANEL_W * cols, PANEL_H * rows + 0.6), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    fig.suptitle(title)
    return fig, list(axes.flat[:n])


def save(fig, out_dir, name, runs, written):
    """Caption, layout, PNG and PDF; records the written paths."""
    fig.text(0.01, 0.005, "; ".join(run.caption() for run in runs), fontsize=7, color="#555555",
             ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    for ext in ("png", "pdf"):
        path = os.path.join(out_dir, f"{name}.{ext}")
        fig.savefig(path, dpi=150)
        written.append(path)
    plt.close(fig)


def legend(ax):
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(fontsize=7, frameon=False)


def distinct(values):
    return sorted(set(values))


def run_style(run_index):
    return RUN_STYLES[run_index % len(RUN_STYLES)]


def log2_axis(ax, ticks, labels, xlabel):
    """A log-2 x axis labelled only at the swept values."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, labels)
    ax.minorticks_off()
    ax.set_xlabel(xlabel)


def finish_panel(ax, ylabel, title, title_color="black"):
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9, color=title_color)
    ax.grid(alpha=0.3)
    legend(ax)


def plot_method_lines(ax, runs, colors, x, y, keep):
    """One line per method and run through the summary rows keep() accepts: y over x."""
    for ri, run in enumerate(runs):
        for method in distinct(r["method"] for r in run.summary):
            pts = sorted((r[x], r[y]) for r in run.summary
                         if r["method"] == method and keep(r) and math.isfinite(r[y]))
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=colors[method],
                        linestyle=run_style(ri), label=series_label(method, run, runs))


# ---- summary figures ------------------------------------------------------------

def fig_ttft_vs_ctx(runs, colors, out_dir, written):
    rows = [r for run in runs for r in run.summary]
    ctxs = distinct(r["ctx"] for r in rows)
    if len(ctxs) < 2:
        return "needs two or more context lengths"
    concs = distinct(r["concurrency"] for r in rows)
    fig, axes = panel_grid(len(concs), "Time to first token vs prompt length")
    for ax, conc in zip(axes, concs):
        plot_method_lines(ax, runs, colors, "ctx", "ttft_mean_ms", lambda r, c=conc: r["concurrency"] == c)
        log2_axis(ax, ctxs, [size_label(c) for c in ctxs], "prompt length (tokens)")
        finish_panel(ax, "TTFT, mean (ms)", f"concurrency {conc}")
    save(fig, out_dir, "ttft_vs_ctx", runs, written)
    return None


def fig_speedup_vs_concurrency(runs, colors, out_dir, written):
    rows = [r for run in runs for r in run.summary]
    concs = distinct(r["concurrency"] for r in rows)
    if len(concs) < 2:
        return "needs two or more concurrencies"
    methods = distinct(r["method"] for r in rows
                       if r["method"] != DENSE and math.isfinite(r["speedup_vs_dense"]))
    if not methods:
        return "needs a non-dense method with a dense twin"
    ctxs = distinct(r["ctx"] for r in rows)
    cmap = plt.get_cmap("viridis")
    ctx_color = {c: cmap(0.85 * i / max(1, len(ctxs) - 1)) for i, c in enumerate(ctxs)}
    fig, axes = panel_grid(len(methods), "TTFT speedup over dense vs concurrency")
    for ax, method in zip(axes, methods):
        # Here lines are context lengths; the method is the panel (titled in its colour).
        for ri, run in enumerate(runs):
            for ctx in ctxs:
                pts = sorted((r["concurrency"], r["speedup_vs_dense"]) for r in run.summary
                             if r["method"] == method and r["ctx"] == ctx and math.isfinite(r["speedup_vs_dense"]))
                if pts:
                    label = f"ctx {size_label(ctx)}" + ("" if len(runs) == 1 else f" ({run.name})")
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=ctx_color[ctx],
                            linestyle=run_style(ri), label=label)
        ax.axhline(1.0, color=DENSE_COLOR, linewidth=0.8, linestyle=":")
        log2_axis(ax, concs, [str(c) for c in concs], "concurrency (requests in flight)")
        finish_panel(ax, "speedup over dense (×, mean TTFT)", method, colors[method])
    save(fig, out_dir, "speedup_vs_concurrency", runs, written)
    return None


def fig_throughput_vs_concurrency(runs, colors, out_dir, written):
    rows = [r for run in runs for r in run.summary]
    concs = distinct(r["concurrency"] for r in rows)
    if len(concs) < 2:
        return "needs two or more concurrencies"
    ctxs = distinct(r["ctx"] for r in rows)
    fig, axes = panel_grid(len(ctxs), "Prefill throughput vs concurrency")
    for ax, ctx in zip(axes, ctxs):
        plot_method_lines(ax, runs, colors, "concurrency", "prefill_tokens_per_s", lambda r, c=ctx: r["ctx"] == c)
        log2_axis(ax, concs, [str(c) for c in concs], "concurrency (requests in flight)")
        ax.set_ylim(bottom=0)
        finish_panel(ax, "prefill throughput (prompt tokens/s)", ctx_label(ctx))
    save(fig, out_dir, "throughput_vs_concurrency", runs, written)
    return None


def finite(value):
    return isinstance(value, (int, float)) and math.isfinite(value)


def rows_with(runs, *fields):
    """Summary rows of all runs (with their run) that have every field, finite."""
    return [(run, r) for run in runs for r in run.summary if all(finite(r.get(f)) for f in fields)]


def ctx_axis(ax, ctxs):
    """Prompt lengths as evenly spaced categories (a timed workload's 0 included)."""
    ax.set_xticks(range(len(ctxs)), [size_label(c) if c > 0 else "mixed" for c in ctxs])
    ax.set_xlim(-0.5, len(ctxs) - 0.5)
    ax.set_xlabel("prompt length (tokens)")


def plot_over_ctx(ax, runs, rows, colors, ctxs, value, methods=None, linestyle=None, label_suffix=""):
    """One line per method and run: value(row) against the prompt-length category, the
    mean over the run's points at that length (concurrencies pooled: what is kept
    depends on the prompts, not on the load)."""
    for ri, run in enumerate(runs):
        for method in methods or distinct(r["method"] for rr, r in rows if rr is run):
            xs, ys = [], []
            for i, ctx in enumerate(ctxs):
                vals = [value(r) for rr, r in rows if rr is run and r["method"] == method and r["ctx"] == ctx]
                if vals:
                    xs.append(i)
                    ys.append(float(np.mean(vals)))
            if xs:
                ax.plot(xs, ys, marker="o", color=colors[method], linestyle=linestyle or run_style(ri),
                        label=series_label(method, run, runs) + label_suffix)


def fig_speedup_vs_predicted(runs, colors, out_dir, written):
    rows = [(run, r) for run, r in rows_with(runs, "speedup_vs_dense", "predicted_speedup")
            if r["method"] != DENSE and r["predicted_speedup"] > 0]
    if not rows:
        return "needs a non-dense point with a dense twin and a predicted speedup"
    ctxs = distinct(r["ctx"] for _, r in rows)
    concs = distinct(r["concurrency"] for _, r in rows)
    fig, axes = panel_grid(len(ctxs), "Measured TTFT speedup / speed-model prediction")
    for ax, ctx in zip(axes, ctxs):
        for ri, run in enumerate(runs):
            for method in distinct(r["method"] for rr, r in rows if rr is run):
                pts = sorted((r["concurrency"], r["speedup_vs_dense"] / r["predicted_speedup"]) for rr, r in rows
                             if rr is run and r["method"] == method and r["ctx"] == ctx)
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=colors[method],
                            linestyle=run_style(ri), label=series_label(method, run, runs))
        ax.axhspan(0.9, 1.1, color=DENSE_COLOR, alpha=0.08, linewidth=0)
        ax.axhline(1.0, color=DENSE_COLOR, linewidth=0.8, linestyle=":")
        log2_axis(ax, concs, [str(c) for c in concs], "concurrency (requests in flight)")
        finish_panel(ax, "measured / predicted speedup", ctx_label(ctx))
    save(fig, out_dir, "speedup_vs_predicted", runs, written)
    return None


def fig_kept_fraction(runs, colors, out_dir, written):
    kept = rows_with(runs, "kept_fraction")
    if not kept:
        return "no point with a kept fraction"
    kv = rows_with(runs, "kv_fraction_of_dense")
    ctxs = distinct(r["ctx"] for _, r in kept)
    panels = [("kept_fraction", kept, "prompt tokens kept after the last layer", "tokens kept (fraction)")]
    if kv:
        panels.append(("kv_fraction_of_dense", kv, "KV bytes held after prefill, relative to dense",
                       "KV kept (fraction of dense)"))
    fig, axes = panel_grid(len(panels), "What the methods keep")
    for ax, (field, rows, title, ylabel) in zip(axes, panels):
        plot_over_ctx(ax, runs, rows, colors, ctxs, lambda r, f=field: r[f])
        ctx_axis(ax, ctxs)
        ax.set_ylim(0, 1.05)
        finish_panel(ax, ylabel, title)
    save(fig, out_dir, "kept_fraction", runs, written)
    return None


def fig_kv_per_request(runs, colors, out_dir, written):
    rows = rows_with(runs, "kv_bytes_per_request")
    if not rows:
        return "no point records KV bytes per request (a run written before those fields)"
    ctxs = distinct(r["ctx"] for _, r in rows)
    fig, axes = panel_grid(1, "KV cache per request after its prefill")
    ax = axes[0]
    plot_over_ctx(ax, runs, rows, colors, ctxs, lambda r: r["kv_bytes_per_request"] / 2**20)
    # What dense prefill of the same prompts holds, for runs without a dense point.
    dense = [(run, r) for run, r in rows_with(runs, "kv_dense_bytes_per_request") if r["method"] != DENSE]
    if dense:
        methods = distinct(r["method"] for _, r in dense)
        plot_over_ctx(ax, runs, [(run, dict(r, method=DENSE)) for run, r in dense if r["method"] == methods[0]],
                      colors, ctxs, lambda r: r["kv_dense_bytes_per_request"] / 2**20, methods=[DENSE],
                      linestyle=":", label_suffix=" equivalent")
    ctx_axis(ax, ctxs)
    ax.set_ylim(bottom=0)
    finish_panel(ax, "KV cache per request (MiB, mean)", "K and V of every layer, tokens each layer kept")
    save(fig, out_dir, "kv_per_request", runs, written)
    return None


def fig_resident_vs_concurrency(runs, colors, out_dir, written):
    rows = rows_with(runs, "max_resident")
    if not rows:
        return "no point records max_resident (a run written before that field)"
    ctxs = distinct(r["ctx"] for _, r in rows)
    concs = distinct(r["concurrency"] for _, r in rows)
    fig, axes = panel_grid(len(ctxs), "Requests resident at once (holding KV)")
    for ax, ctx in zip(axes, ctxs):
        plot_method_lines(ax, runs, colors, "concurrency", "max_resident", lambda r, c=ctx: r["ctx"] == c
                          and "max_resident" in r)
        ax.plot(concs, concs, color=DENSE_COLOR, linewidth=0.8, linestyle=":", label="every request in flight")
        log2_axis(ax, concs, [str(c) for c in concs], "concurrency (requests in flight)")
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        finish_panel(ax, "most requests resident at once", ctx_label(ctx))
    save(fig, out_dir, "resident_vs_concurrency", runs, written)
    return None


# ---- request-level figures --------------------------------------------------------

def points_of(runs):
    return [(run, p) for run in runs for p in run.points if p.requests is not None]


def fig_ttft_cdf(runs, colors, out_dir, written):
    pts = points_of(runs)
    if not any(p.ok_mask().any() for _, p in pts):
        return "no successful request to plot"
    ctxs = distinct(p.ctx for _, p in pts)
    fig, axes = panel_grid(len(ctxs), "TTFT distribution (successful requests, concurrencies pooled)")
    for ax, ctx in zip(axes, ctxs):
        for ri, run in enumerate(runs):
            for method in distinct(p.method for p in run.points):
                values = [p.requests["ttft_ms"][p.ok_mask()] for p in run.points
                          if p.method == method and p.ctx == ctx and p.requests is not None]
                ttft = np.sort(np.concatenate(values)) if values else np.zeros(0)
                if ttft.size == 0:
                    continue
                frac = np.arange(1, ttft.size + 1) / ttft.size
                ax.step(ttft, frac, where="post", color=colors[method],
                        linestyle=run_style(ri), label=series_label(method, run, runs))
        ax.set_xlabel("TTFT (ms)")
        ax.set_ylim(0, 1.02)
        finish_panel(ax, "fraction of requests", ctx_label(ctx))
    save(fig, out_dir, "ttft_cdf", runs, written)
    return None


def plot_kept_curve(ax, kept, color, style, label):
    """Fraction of prompt tokens entering each layer, stepped so a drop shows as a step."""
    ax.plot(np.arange(kept.size), kept, marker="o", markersize=3, color=color, linestyle=style,
            drawstyle="steps-mid", label=label)


def finish_kept_panel(ax, n_layers, title):
    ax.set_xlabel("layer (0-indexed)")
    ax.set_ylim(0, 1.05)
    ax.set_xticks(range(0, n_layers, max(1, n_layers // 8)))
    finish_panel(ax, "prompt tokens entering the layer (fraction)", title)


def fig_kept_per_layer(runs, colors, out_dir, written):
    pts = [(run, p) for run, p in points_of(runs)
           if p.request_layer_tokens is not None and p.request_layer_tokens.ndim == 2
           and p.request_layer_tokens.shape[1] > 0 and p.ok_mask().any()]
    if not pts:
        return "no per-layer token counts of successful requests"
    ctxs = distinct(p.ctx for _, p in pts)
    fig, axes = panel_grid(len(ctxs), "Prompt tokens kept per layer")
    for ax, ctx in zip(axes, ctxs):
        n_layers = 0
        for ri, run in enumerate(runs):
            for method in distinct(p.method for r, p in pts if r is run):
                rows = [p.request_layer_tokens[p.ok_mask()] / p.requests["prompt_len"][p.ok_mask()][:, None]
                        for r, p in pts if r is run and p.method == method and p.ctx == ctx]
                if not rows:
                    continue
                kept = np.concatenate(rows).mean(axis=0)
                n_layers = max(n_layers, kept.size)
                plot_kept_curve(ax, kept, colors[method], run_style(ri), series_label(method, run, runs))
        finish_kept_panel(ax, n_layers, ctx_label(ctx))
    save(fig, out_dir, "kept_per_layer", runs, written)
    return None


def trace_points(runs):
    return [(run, p) for run, p in points_of(runs)
            if p.workload is not None and p.workload.startswith("trace") and len(p.requests) > 0]


def trace_panels(runs):
    """Trace points grouped into one panel per (workload, ctx, concurrency), so a panel
    holds one point per method and run."""
    panels = {}
    for run, p in trace_points(runs):
        panels.setdefault((p.workload, p.ctx, p.concurrency), []).append((run, p))
    return panels


def trace_title(workload, ctx, conc):
    """Wrapped, since trace descriptions are longer than a panel is wide."""
    text = f"{workload}, {ctx_label(ctx)}, concurrency {conc}"
    return "\n".join(textwrap.wrap(text, 48))


def fig_trace_ttft(runs, colors, out_dir, written):
    panels = trace_panels(runs)
    if not panels:
        return "no point has a workload attribute starting with 'trace'"
    fig, axes = panel_grid(len(panels), "TTFT over a trace replay")
    for ax, ((workload, ctx, conc), pts) in zip(axes, sorted(panels.items())):
        for run, p in pts:
            ok = p.ok_mask()
            ri = runs.index(run)
            ax.plot(p.requests["arrival_s"][ok], p.requests["ttft_ms"][ok], marker="o", markersize=3,
                    linestyle=run_style(ri), linewidth=0.6, color=colors[p.method],
                    label=series_label(p.method, run, runs))
        ax.set_xlabel("arrival time (s from the point's start)")
        finish_panel(ax, "TTFT (ms)", trace_title(workload, ctx, conc))
    save(fig, out_dir, "trace_ttft_over_time", runs, written)
    return None


def queue_length(requests):
    """Step times and the number of requests arrived but not yet admitted after each;
    a request never admitted (failed) leaves the queue when it fails."""
    arrive = requests["arrival_s"]
    leave = np.where(np.isfinite(requests["admitted_s"]), requests["admitted_s"], requests["finish_s"])
    times = np.concatenate([arrive, leave])
    deltas = np.concatenate([np.ones_like(arrive), -np.ones_like(leave)])
    # At equal times admissions go first, so a request admitted on arrival never counts.
    order = np.lexsort((deltas, times))
    return times[order], np.cumsum(deltas[order])


def fig_trace_queue(runs, colors, out_dir, written):
    panels = trace_panels(runs)
    if not panels:
        return "no point has a workload attribute starting with 'trace'"
    fig, axes = panel_grid(len(panels), "Waiting queue over a trace replay")
    for ax, ((workload, ctx, conc), pts) in zip(axes, sorted(panels.items())):
        longest = 0
        for run, p in pts:
            t, q = queue_length(p.requests)
            longest = max(longest, int(q.max()) if q.size else 0)
            ri = runs.index(run)
            ax.step(np.concatenate([[0.0], t]), np.concatenate([[0], q]), where="post", color=colors[p.method],
                    linestyle=run_style(ri), label=series_label(p.method, run, runs))
        ax.set_xlabel("time (s from the point's start)")
        ax.set_ylim(0, max(1, longest) * 1.1)  # an empty queue still shows a 0..1 axis
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        finish_panel(ax, "requests waiting for admission", trace_title(workload, ctx, conc))
    save(fig, out_dir, "trace_queue_over_time", runs, written)
    return None


# ---- kernel figures ---------------------------------------------------------------

def fig_attention_tflops(runs, colors, out_dir, written):
    series = {}
    for ri, run in enumerate(runs):
        for row in run.kernels:
            if row["kernel"] == "attention" and row["batch"] == 1:
                series.setdefault((ri, row["rank"]), []).append(row)
    lengths = distinct(row["seq_len"] for rows in series.values() for row in rows)
    if len(lengths) < 2:
        return "needs a --kernels run with two or more attention lengths"
    fig, axes = panel_grid(1, "Causal attention, batch 1")
    ax = axes[0]
    several_ranks = len({rank for _, rank in series}) > 1
    for i, ((ri, rank), rows) in enumerate(sorted(series.items())):
        rows = sorted(rows, key=lambda r: r["seq_len"])
        label = runs[ri].name if len(runs) > 1 else "measured"
        if several_ranks:
            label += f", rank {rank}"
        ax.plot([r["seq_len"] for r in rows], [r["tflops_per_s"] for r in rows], marker="o",
                color=PALETTE[i % len(PALETTE)], linestyle=run_style(ri), label=label)
    rows = [row for rows in series.values() for row in rows]
    for field, name, style in (("target_tflops_per_s", "target", "--"), ("goal_tflops_per_s", "goal", ":")):
        values = distinct(r[field] for r in rows if math.isfinite(r[field]))
        for value in values:
            ax.axhline(value, color=DENSE_COLOR, linewidth=0.9, linestyle=style, label=f"{name} {value:g}")
    refs = sorted({(r["seq_len"], r["reference_tflops_per_s"]) for r in rows
                   if math.isfinite(r["reference_tflops_per_s"])})
    if refs:
        ax.plot([p[0] for p in refs], [p[1] for p in refs], linestyle="none", marker="x", color=DENSE_COLOR,
                label="reference (ALGORITHMS.md)")
    ax.set_ylim(bottom=0)
    log2_axis(ax, lengths, [size_label(n) for n in lengths], "context (tokens)")
    heads = rows[0]
    finish_panel(ax, "TFLOP/s (median)", f"{heads['n_heads']} q / {heads['n_kv_heads']} kv heads, "
                                         f"head_dim {heads['head_dim']}")
    save(fig, out_dir, "attention_tflops_vs_ctx", runs, written)
    return None


# ---- eval figures (--eval runs) -----------------------------------------------------

EVAL_ALL_TASKS = "all"


def eval_task_panels(runs):
    """The tasks of the eval summaries in file order, "all" (tasks pooled) last."""
    tasks = dict.fromkeys(r["task"] for run in runs for r in run.eval.summary if r["task"] != EVAL_ALL_TASKS)
    return list(tasks) + [EVAL_ALL_TASKS]


def eval_ctx_axis(ax, runs):
    ctxs = distinct(r["ctx"] for run in runs for r in run.eval.summary)
    log2_axis(ax, ctxs, [size_label(c) for c in ctxs], "prompt length (tokens)")


# Accuracy takes few distinct values, so methods often coincide; dodging each line
# sideways by this share of an octave keeps every one visible.
EVAL_DODGE_OCTAVES = 0.04


def eval_method_lines(ax, runs, colors, field, task, methods_shown, dodge=False):
    """One line per method and run through the eval summary rows of `task`: field over
    ctx, for the methods methods_shown() accepts, each line shifted sideways when dodge;
    returns the values drawn."""
    series = []
    for ri, run in enumerate(runs):
        rows = [r for r in run.eval.summary if r["task"] == task and r["n_samples"] > 0]
        for method in distinct(r["method"] for r in rows):
            pts = sorted((r["ctx"], r[field]) for r in rows if r["method"] == method and math.isfinite(r[field]))
            if pts and methods_shown(method):
                series.append((ri, run, method, pts))
    for k, (ri, run, method, pts) in enumerate(series):
        shift = 2.0 ** (EVAL_DODGE_OCTAVES * (k - (len(series) - 1) / 2)) if dodge else 1.0
        ax.plot([p[0] * shift for p in pts], [p[1] for p in pts], marker="o", color=colors[method],
                linestyle=run_style(ri), label=series_label(method, run, runs))
    return [p[1] for *_, pts in series for p in pts]


def task_title(task):
    return "all tasks" if task == EVAL_ALL_TASKS else task


def fig_eval_accuracy(runs, colors, out_dir, written):
    if not any(run.eval.summary for run in runs):
        return "no run has --eval tables"
    tasks = eval_task_panels(runs)
    fig, axes = panel_grid(len(tasks), "Answer accuracy vs prompt length")
    for ax, task in zip(axes, tasks):
        eval_method_lines(ax, runs, colors, "accuracy", task, lambda m: True, dodge=True)
        eval_ctx_axis(ax, runs)
        ax.set_ylim(-0.03, 1.05)
        finish_panel(ax, "accuracy (exact match)", task_title(task))
    save(fig, out_dir, "eval_accuracy_vs_ctx", runs, written)
    return None


def fig_eval_kl(runs, colors, out_dir, written):
    rows = [r for run in runs for r in run.eval.summary if r["method"] != DENSE and r["n_samples"] > 0]
    if not rows:
        return "no run has --eval rows of a method other than dense"
    tasks = eval_task_panels(runs)
    fig, axes = panel_grid(len(tasks), "KL(dense || method) at the answer position vs prompt length")
    for ax, task in zip(axes, tasks):
        # Dense is the reference (KL 0 by definition), so it has no line.
        values = eval_method_lines(ax, runs, colors, "kl_mean", task, lambda m: m != DENSE)
        # KL spans orders of magnitude between methods; a log axis needs positive values.
        if values and min(values) > 0:
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
        eval_ctx_axis(ax, runs)
        finish_panel(ax, "KL, mean over samples (nats)", task_title(task))
    save(fig, out_dir, "eval_kl_vs_ctx", runs, written)
    return None


def fig_eval_kept_per_layer(runs, colors, out_dir, written):
    usable = [run for run in runs if run.eval.samples and run.eval.layer_rows is not None]
    if not usable:
        return "no run has --eval per-layer rows (/eval_layer_rows)"
    ctxs = distinct(s["ctx"] for run in usable for s in run.eval.samples)
    fig, axes = panel_grid(len(ctxs), "Prompt tokens kept per layer (eval prompts)")
    for ax, ctx in zip(axes, ctxs):
        n_layers = 0
        for run in usable:
            ri = runs.index(run)
            samples = run.eval.samples
            prompt = np.array([s["prompt_tokens"] for s in samples], dtype=float)
            for method in distinct(s["method"] for s in samples):
                pick = np.array([s["method"] == method and s["ctx"] == ctx for s in samples])
                if not pick.any():
                    continue
                kept = (run.eval.layer_rows[pick] / prompt[pick][:, None]).mean(axis=0)
                n_layers = max(n_layers, kept.size)
                plot_kept_curve(ax, kept, colors[method], run_style(ri), series_label(method, run, runs))
        finish_kept_panel(ax, n_layers, ctx_label(ctx))
    save(fig, out_dir, "eval_kept_per_layer", runs, written)
    return None


def fig_eval_accuracy_vs_kept(runs, colors, out_dir, written):
    rows = [(ri, r) for ri, run in enumerate(runs) for r in run.eval.summary
            if r["task"] == EVAL_ALL_TASKS and r["n_samples"] > 0 and math.isfinite(r["kept_fraction"])]
    if not any(r["method"] != DENSE for _, r in rows):
        return "no run has --eval rows of a method other than dense"
    ctxs = distinct(r["ctx"] for _, r in rows)
    fig, axes = panel_grid(len(ctxs), "Accuracy vs kept fraction")
    for ax, ctx in zip(axes, ctxs):
        for ri, r in rows:
            if r["ctx"] != ctx:
                continue
            ax.plot(r["kept_fraction"], r["accuracy"], marker=("o", "s", "^", "D")[ri % 4], linestyle="none",
                    color=colors[r["method"]], label=series_label(r["method"], runs[ri], runs))
        ax.set_xlim(right=1.02)
        ax.set_ylim(-0.03, 1.05)
        ax.set_xlabel("kept fraction (prompt rows over all layers)")
        finish_panel(ax, "accuracy (exact match)", ctx_label(ctx))
    save(fig, out_dir, "eval_accuracy_vs_kept", runs, written)
    return None


FIGURES = (
    ("ttft_vs_ctx", fig_ttft_vs_ctx),
    ("speedup_vs_concurrency", fig_speedup_vs_concurrency),
    ("throughput_vs_concurrency", fig_throughput_vs_concurrency),
    ("speedup_vs_predicted", fig_speedup_vs_predicted),
    ("kept_fraction", fig_kept_fraction),
    ("kv_per_request", fig_kv_per_request),
    ("resident_vs_concurrency", fig_resident_vs_concurrency),
    ("ttft_cdf", fig_ttft_cdf),
    ("kept_per_layer", fig_kept_per_layer),
    ("trace_ttft_over_time", fig_trace_ttft),
    ("trace_queue_over_time", fig_trace_queue),
    ("attention_tflops_vs_ctx", fig_attention_tflops),
    ("eval_accuracy_vs_ctx", fig_eval_accuracy),
    ("eval_kl_vs_ctx", fig_eval_kl),
    ("eval_kept_per_layer", fig_eval_kept_per_layer),
    ("eval_accuracy_vs_kept", fig_eval_accuracy_vs_kept),
)


def main(argv):
    parser = argparse.ArgumentParser(prog="figures.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="RUN.h5", help="run files")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="directory for the figures")
    args = parser.parse_args(argv)
    try:
        runs = [runfile.load_run(path) for path in args.runs]
    except runfile.RunFileError as exc:
        print(f"figures.py: error: {exc}", file=sys.stderr)
        return 2
    if not any(run.summary or run.kernels or run.eval for run in runs):
        print("figures.py: error: no run has a finished point, kernel case or eval row", file=sys.stderr)
        return 2
    os.makedirs(args.output, exist_ok=True)
    colors = method_colors(runs)
    written = []
    for name, make in FIGURES:
        why_not = make(runs, colors, args.output, written)
        if why_not:
            print(f"figures.py: note: skipped {name}: {why_not}")
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
