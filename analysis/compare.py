#!/usr/bin/env python3
"""compare.py — regression check of one uniprefill-bench run against a baseline run.

Owns matching points across two runs and the verdict; reading is analysis/runfile.py's.
Points are matched by their parameters: method label, ctx, concurrency, output_len and
workload (closed-loop for runs that predate it). Tracked by default (machine-independent,
so a baseline taken on one machine can judge a run on another):

  ttft_vs_dense   for every point with a dense twin in its own run (same ctx,
                  concurrency, output length, workload): its mean TTFT / the twin's.
                  A regression is this ratio growing by more than --max-regress.
  kept_fraction   prompt tokens kept / prompt tokens, per point. Deterministic for a
                  fixed seed, so a change either way beyond --kept-tol (absolute) is a
                  regression: the method now drops different tokens.
  kv_fraction_of_dense
                  KV bytes held after prefill / dense's for the same prompts, per
                  point, judged like kept_fraction; only where both runs have it (runs
                  written before the field existed lack it).
  n_failed        failed requests; any increase is a regression.

With --absolute also raw times and rates, which only compare on the same machine:
TTFT mean and p99, TPOT, ITL and E2E means (growing is bad), prefill and output token
throughput and request throughput (shrinking is bad), each against --max-regress.

Prints a markdown table of every tracked value (base, new, change, verdict). A point of
the baseline that the new run lacks is a regression too (a run that lost most of its
points must not pass on the few it kept); points only in the new run are noted. Exit
status: 0 when nothing regressed, 1 when something did or points are missing (each
listed), 2 on bad input (unreadable or foreign files, a bad threshold, or no point in
common).

    /usr/bin/python3 analysis/compare.py results/baselines/ci-cpu.h5 new.h5 --max-regress 25%
"""
import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import runfile  # noqa: E402  (the shared reader lives beside this script)

DENSE = "dense"

# Fractions fixed by the seed, judged by absolute drift (--kept-tol).
DETERMINISTIC_FRACTIONS = ("kept_fraction", "kv_fraction_of_dense")

# --absolute metrics: summary field and whether a larger value is worse.
ABSOLUTE_METRICS = (
    ("ttft_mean_ms", True), ("ttft_p99_ms", True), ("tpot_mean_ms", True),
    ("itl_mean_ms", True), ("e2e_mean_ms", True), ("prefill_tokens_per_s", False),
    ("output_tokens_per_s", False), ("requests_per_s", False),
)


class BadInput(Exception):
    """Bad command-line input; exit status 2."""


def parse_threshold(text):
    """'5%' or '0.05' -> 0.05; a non-negative finite fraction."""
    try:
        value = float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        raise BadInput(f"threshold '{text}' is not a number or a percentage like 5%") from None
    if not math.isfinite(value) or value < 0:
        raise BadInput(f"threshold '{text}' must be a non-negative finite number")
    return value


def row_key(row):
    return (row["method"], row["ctx"], row["concurrency"], row["output_len"], row["workload"])


def finite(value):
    return isinstance(value, (int, float)) and math.isfinite(value)


def rows_by_key(run):
    """One summary row per point key; a key that repeats in a run is ambiguous."""
    rows = {}
    for row in run.summary:
        key = row_key(row)
        if key in rows:
            raise BadInput(f"'{run.path}' has two points with the parameters {format_key(key)}")
        rows[key] = row
    return rows


def dense_ratios(rows):
    """ttft_mean_ms / the dense twin's, for every non-dense point that has one."""
    ratios = {}
    for key, row in rows.items():
        if key[0] == DENSE:
            continue
        twin = rows.get((DENSE,) + key[1:])
        if twin is None:
            continue
        num, den = row.get("ttft_mean_ms"), twin.get("ttft_mean_ms")
        ratios[key] = num / den if finite(num) and finite(den) and den > 0 else math.nan
    return ratios


def format_key(key):
    method, ctx, conc, out, workload = key
    text = f"{method} ctx={ctx} conc={conc} out={out}"
    return f"{text} workload={workload}"


class Check:
    """One tracked value of one point in both runs and its verdict."""

    def __init__(self, key, metric, base, new, verdict, change):
        self.key, self.metric, self.base, self.new = key, metric, base, new
        self.verdict, self.change = verdict, change


def relative_check(key, metric, base, new, threshold, larger_is_worse):
    """Verdict on the relative change new / base - 1 against the threshold."""
    if not (finite(base) and finite(new)) or base == 0:
        # A value that went missing (NaN: no successful request) is a regression;
        # one missing in both runs is nothing to judge.
        verdict = "REGRESSED" if finite(base) and not finite(new) else "n/a"
        return Check(key, metric, base, new, verdict, math.nan)
    change = new / base - 1.0
    worse = change if larger_is_worse else -change
    verdict = "REGRESSED" if worse > threshold else ("better" if worse < -threshold else "ok")
    return Check(key, metric, base, new, verdict, change)


def missing_points(base_run, new_run):
    """The number of the baseline's points, and the keys of those the new run lacks."""
    base_keys, new_rows = list(rows_by_key(base_run)), rows_by_key(new_run)
    return len(base_keys), [key for key in base_keys if key not in new_rows]


def compare(base_run, new_run, threshold, kept_tol, absolute):
    base_rows, new_rows = rows_by_key(base_run), rows_by_key(new_run)
    common = [k for k in base_rows if k in new_rows]
    for key in new_rows:
        if key not in base_rows:
            print(f"compare.py: note: {format_key(key)} is only in the new run", file=sys.stderr)
    if not common:
        raise BadInput(f"'{base_run.path}' and '{new_run.path}' have no point in common")

    checks = []
    base_ratios, new_ratios = dense_ratios(base_rows), dense_ratios(new_rows)
    for key in common:
        if key in base_ratios and key in new_ratios:
            checks.append(relative_check(key, "ttft_vs_dense", base_ratios[key], new_ratios[key],
                                         threshold, True))
        b, n = base_rows[key], new_rows[key]
        for field in DETERMINISTIC_FRACTIONS:
            bk, nk = b.get(field), n.get(field)
            if finite(bk) and finite(nk):
                drift = abs(nk - bk)
                checks.append(Check(key, field, bk, nk, "REGRESSED" if drift > kept_tol else "ok", nk - bk))
        bf, nf = b.get("n_failed", 0), n.get("n_failed", 0)
        checks.append(Check(key, "n_failed", bf, nf, "REGRESSED" if nf > bf else "ok", nf - bf))
        if absolute:
            for field, larger_is_worse in ABSOLUTE_METRICS:
                if field in b and field in n:
                    checks.append(relative_check(key, field, b[field], n[field], threshold, larger_is_worse))
    return checks


def format_value(value):
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def format_change(check):
    if not finite(check.change):
        return "-"
    if check.metric in DETERMINISTIC_FRACTIONS:
        return f"{check.change:+.4f}"
    if check.metric == "n_failed":
        return f"{check.change:+d}"
    return f"{100.0 * check.change:+.1f}%"


def print_table(checks, with_workload):
    header = ["method", "ctx", "conc", "out"] + (["workload"] if with_workload else []) + \
             ["metric", "base", "new", "change", "verdict"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for c in checks:
        method, ctx, conc, out, workload = c.key
        cells = [method, str(ctx), str(conc), str(out)] + ([workload or "-"] if with_workload else []) + \
                [c.metric, format_value(c.base), format_value(c.new), format_change(c), c.verdict]
        print("| " + " | ".join(cells) + " |")


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="compare.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", metavar="BASE.h5", help="baseline run")
    parser.add_argument("new", metavar="NEW.h5", help="run to judge")
    parser.add_argument("--max-regress", default="5%", metavar="T",
                        help="relative growth of a tracked ratio (or, with --absolute, time) that counts "
                             "as a regression, e.g. 5%% or 0.05 (default 5%%)")
    parser.add_argument("--kept-tol", default="0.01", metavar="F",
                        help="absolute change of kept_fraction or kv_fraction_of_dense that counts as a regression "
                             "(default 0.01)")
    parser.add_argument("--absolute", action="store_true",
                        help="also track absolute times and rates (same machine only)")
    return parser.parse_args(argv)


def main(argv):
    args = parse_args(argv)  # argparse exits 2 on bad usage, as bad input should
    try:
        threshold = parse_threshold(args.max_regress)
        kept_tol = parse_threshold(args.kept_tol)
        base_run = runfile.load_run(args.base, with_points=False)
        new_run = runfile.load_run(args.new, with_points=False)
        checks = compare(base_run, new_run, threshold, kept_tol, args.absolute)
    except (BadInput, runfile.RunFileError) as exc:
        print(f"compare.py: error: {exc}", file=sys.stderr)
        return 2
    with_workload = any(c.key[4] != runfile.CLOSED_LOOP for c in checks)
    print(f"base: {base_run.caption()}\nnew:  {new_run.caption()}\n")
    print_table(checks, with_workload)
    regressed = [c for c in checks if c.verdict == "REGRESSED"]
    limit = f"{100.0 * threshold:g}%"
    n_base, missing = missing_points(base_run, new_run)
    if missing:
        print(f"\n{len(missing)} of the baseline's {n_base} points are missing from the new run:")
        for key in missing:
            print(f"- {format_key(key)}")
    if regressed:
        print(f"\n{len(regressed)} of {len(checks)} tracked values regressed (threshold {limit}, "
              f"kept-fraction tolerance {kept_tol:g})")
    if regressed or missing:
        return 1
    print(f"\nno regression in {len(checks)} tracked values (threshold {limit}, kept-fraction tolerance {kept_tol:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
