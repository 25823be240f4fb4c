#!/usr/bin/env python3
"""summarize.py — print one uniprefill-bench run file as markdown: the producer and
machine (root attributes) and the /summary table, one row per sweep point.

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
        lines.append("| " + " | ".join(format_cell(row[n]) for n in names) + " |")
    return "\n".join(lines)


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
    if not run.summary:
        print("(no points finished)")
        return
    names = list(run.summary_fields)
    # runfile gives every row a workload (CLOSED_LOOP for runs that predate the attribute).
    names.insert(names.index("method") + 1, "workload")
    print(markdown_table(names, run.summary))


def main(argv):
    if len(argv) != 2:
        sys.exit("usage: summarize.py RUN.h5")
    summarize(argv[1])


if __name__ == "__main__":
    main(sys.argv)
