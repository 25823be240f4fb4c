#!/usr/bin/env python3
"""summarize.py — print one uniprefill-bench run file as markdown: the producer and
machine (root attributes), the /summary table, one row per sweep point, for a
`--kernels` run a "kernels" section, one row per timed kernel case, and for an `--eval`
run an "eval" section: per method and context (all tasks pooled) the accuracy, top-1
agreement and KL(dense || method) at the answer position and the kept fractions, then
the accuracy of each task.

Owns only formatting; reading and schema checks are analysis/runfile.py's, the schema
is documented in results/README.md. Needs h5py and numpy (Debian's /usr/bin/python3
has both).

    python3 analysis/summarize.py results/runs/20240501T120000Z.h5
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import runfile  # noqa: E402  (the shared reader lives beside this script)


def format_cell(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        # Large values (throughputs) keep their integer digits; small ones 4 significant.
        return f"{value:.1f}" if abs(value) >= 100 else f"{value:.4g}"
    return str(value)


def markdown_table(names, rows):
    lines = ["| " + " | ".join(names) + " |",
             "|" + "|".join("---" for _ in names) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(format_cell(row.get(n)) for n in names) + " |")
    return "\n".join(lines)


# The /kernels columns worth reading at a glance (the file has every field; a column an
# older file lacks shows "-"). error is the case's normalised error against the CPU
# reference, measured before it was timed.
KERNEL_COLUMNS = ("label", "shape", "rank", "median_ms", "min_ms", "tflops_per_s", "gb_per_s", "floor_ms",
                  "floor_fraction", "error", "error_limit", "kept_fraction", "target", "target_met", "goal_met")
VERDICTS = {1: "met", 0: "missed"}


def kernels_section(run):
    """The kernel cases as markdown, verdicts in words; "-" where a field has no value."""
    rows = []
    for row in run.kernels:
        shown = dict(row)
        for name in ("target_met", "goal_met"):
            shown[name] = VERDICTS.get(row[name])
        shown["target"] = row["target"] or None
        rows.append(shown)
    settings = ", ".join(f"{name} {format_cell(value)}" for name, value in sorted(run.kernel_attrs.items()))
    return f"## kernels\n\n{settings}\n\n" + markdown_table(KERNEL_COLUMNS, rows)


# The /eval_summary columns of the pooled ("all") rows, in display order.
EVAL_COLUMNS = ("method", "ctx", "n_samples", "prompt_tokens_mean", "accuracy", "top1_agreement", "kl_mean",
                "kl_max", "top1_content_agreement", "kl_content_mean", "same_answer", "needle_survival",
                "kept_fraction", "kept_after_drops")
# Columns run files written before the fidelity diagnostics lack: shown as "-".
EVAL_OPTIONAL_COLUMNS = ("top1_content_agreement", "kl_content_mean", "same_answer", "needle_survival")
EVAL_ALL_TASKS = "all"


def eval_section(run):
    """The eval summary as markdown: one row per method and context over every task
    (KL in nats; dense, the reference, drops nothing and shows "-" after drops), then
    one row per method and context with each task's accuracy."""
    pooled = []
    for row in run.eval.summary:
        if row["task"] == EVAL_ALL_TASKS:
            shown = dict(row)
            shown["kept_after_drops"] = row["kept_after_drops"] or None
            for name in EVAL_OPTIONAL_COLUMNS:
                value = row.get(name)
                shown[name] = None if value in ("", b"") else value  # 0 is a value, "" is none
            pooled.append(shown)
    tasks = list(dict.fromkeys(r["task"] for r in run.eval.summary if r["task"] != EVAL_ALL_TASKS))
    per_task = {}  # (method, ctx) -> a row with one accuracy column per task
    for row in run.eval.summary:
        if row["task"] != EVAL_ALL_TASKS:
            entry = per_task.setdefault((row["method"], row["ctx"]),
                                        dict({"method": row["method"], "ctx": row["ctx"]}, **dict.fromkeys(tasks)))
            entry[row["task"]] = row["accuracy"]
    text = ("## eval\n\nAll tasks pooled; top-1 agreement and KL(dense || method, nats) at the answer "
            "position, and at the first answer token that carries content (dense's); same answer = share "
            "of answers identical to dense's; needle survival = share of samples whose needle tokens all "
            "survived each drop layer; kept fraction = prompt rows over all layers / (layers x prompt tokens); "
            "kept after drops = rows entering the layer after each drop layer / prompt tokens.\n\n"
            + markdown_table(EVAL_COLUMNS, pooled))
    if tasks:
        text += "\n\nAccuracy per task:\n\n" + markdown_table(("method", "ctx") + tuple(tasks), per_task.values())
    return text


def summarize(path):
    try:
        run = runfile.load_run(path, with_points=False)
    except runfile.RunFileError as exc:
        sys.exit(f"summarize.py: {exc}")
    print(f"# {path}\n")
    for name in runfile.ROOT_ATTRS:
        if name in run.attrs:
            print(f"- {name}: {run.attrs[name]}")
    print(f"- schema_version: {run.schema_version}\n")
    if run.summary:
        names = list(run.summary_fields)
        # runfile gives every row a workload (CLOSED_LOOP for runs that predate the attribute).
        names.insert(names.index("method") + 1, "workload")
        print(markdown_table(names, run.summary))
    elif not run.kernels and not run.eval:
        print("(no points finished)")
    if run.kernels:
        print(("\n" if run.summary else "") + kernels_section(run))
    if run.eval:
        print(("\n" if run.summary or run.kernels else "") + eval_section(run))


def main(argv):
    if len(argv) != 2:
        sys.exit("usage: summarize.py RUN.h5")
    summarize(argv[1])


if __name__ == "__main__":
    main(sys.argv)
