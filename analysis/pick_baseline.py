#!/usr/bin/env python3
"""pick_baseline.py — choose the most typical of several runs of one sweep as the
regression baseline: the run whose within-run ratios (each point's mean TTFT / its
dense twin's, the ratios compare.py tracks) stay closest to the per-point medians over
all the runs, i.e. the smallest largest |log(ratio / median)|. One run alone can land
in a noisy moment; the median run gives compare.py's tolerance room on both sides.

Owns the choice only; reading is runfile.py's and the ratios are compare.py's.

    pick_baseline.py RUN1.h5 RUN2.h5 ... -o BASELINE.h5
"""
import argparse
import math
import os
import shutil
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402
import runfile  # noqa: E402


def main(argv):
    parser = argparse.ArgumentParser(prog="pick_baseline.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="RUN.h5")
    parser.add_argument("-o", "--output", required=True, metavar="BASELINE.h5")
    args = parser.parse_args(argv)
    try:
        ratios = {path: compare.dense_ratios(compare.rows_by_key(runfile.load_run(path, with_points=False)))
                  for path in args.runs}
    except (compare.BadInput, runfile.RunFileError) as exc:
        print(f"pick_baseline.py: error: {exc}", file=sys.stderr)
        return 2
    keys = set.intersection(*(set(r) for r in ratios.values()))
    keys = [k for k in keys if all(math.isfinite(ratios[p][k]) and ratios[p][k] > 0 for p in args.runs)]
    if not keys:
        print("pick_baseline.py: error: the runs share no point with a dense twin", file=sys.stderr)
        return 2
    median = {k: statistics.median(ratios[p][k] for p in args.runs) for k in keys}
    spread = {p: max(abs(math.log(ratios[p][k] / median[k])) for k in keys) for p in args.runs}
    best = min(args.runs, key=spread.get)
    for path in args.runs:
        print(f"{path}: largest deviation from the median ratios {100.0 * math.expm1(spread[path]):.1f}%"
              + ("  <- baseline" if path == best else ""))
    shutil.copyfile(best, args.output)
    print(f"wrote {args.output} ({os.path.getsize(args.output)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
