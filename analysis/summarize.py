#!/usr/bin/env python3
"""summarize.py — print one uniprefill-bench run file as markdown: the producer and
machine (root attributes) and the /summary table, one row per sweep point.

Owns only reading and formatting; the schema is defined by launcher/results_h5.c and
documented in results/README.md. Needs h5py and numpy (Debian's /usr/bin/python3 has
both).

    python3 analysis/summarize.py results/runs/20240501T120000Z.h5
"""
import math
import sys

import h5py
import numpy as np

# Readers of this script understand exactly this schema; the writer bumps it on any
# incompatible change (results/README.md, "Schema version").
SUPPORTED_SCHEMA_VERSION = 1

ROOT_ATTRS = ("tool", "tool_version", "git_commit", "model", "backend", "world_size",
              "device_names", "hostnames", "library_versions", "started_utc", "argv")


def as_text(value):
    """Attributes are UTF-8 str from h5py, but fixed-length strings arrive as bytes."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.shape == ():
        return as_text(value[()])
    return str(value)


def format_cell(value):
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("utf-8", "replace").rstrip("\0")
    if isinstance(value, (float, np.floating)):
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
        f = h5py.File(path, "r")
    except OSError as exc:
        sys.exit(f"summarize.py: cannot read '{path}' as HDF5: {exc}")
    with f:
        if "schema_version" not in f.attrs:
            sys.exit(f"summarize.py: '{path}' is not a uniprefill-bench run (no schema_version attribute)")
        version = int(f.attrs["schema_version"])
        if version != SUPPORTED_SCHEMA_VERSION:
            sys.exit(f"summarize.py: '{path}' has schema_version {version}; "
                     f"this script reads version {SUPPORTED_SCHEMA_VERSION}")
        if "summary" not in f:
            sys.exit(f"summarize.py: '{path}' has no /summary table")
        print(f"# {path}\n")
        for name in ROOT_ATTRS:
            if name in f.attrs:
                print(f"- {name}: {as_text(f.attrs[name])}")
        print(f"- schema_version: {version}\n")
        summary = f["summary"][...]
        if summary.shape[0] == 0:
            print("(no points finished)")
        else:
            print(markdown_table(summary.dtype.names, summary))


def main(argv):
    if len(argv) != 2:
        sys.exit("usage: summarize.py RUN.h5")
    summarize(argv[1])


if __name__ == "__main__":
    main(sys.argv)
