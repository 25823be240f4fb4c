#!/usr/bin/env python3
"""check_eval_file_samples.py — checks the /eval_samples rows an `--eval-file` run writes.

  check_eval_file_samples.py RUN.h5 --methods M1,M2 --files F1,F2 --ctx C [--expect-lines N]
      every method has one row per sample line of the files that ran (N lines in all
      when given); each row's source_file and source_line name a line of one of the
      files, whose answers are the row's expected text; task is the line's "dataset"
      or the file's name; RULER rows are scored by string match (every answer contained,
      partial = share contained, any_found = one contained) and LongBench-like rows by exact match (after
      stripping and ASCII case folding), recomputed here from the generated text; ctx is
      C for every file row (0: samples at their own lengths), and /eval_summary's
      per-task sample counts add up.
Exit 0 when every check holds, 1 (with the reason) otherwise."""
import argparse
import json
import os
import sys

import h5py


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def fail(message):
    print(f"check_eval_file_samples: {message}", file=sys.stderr)
    sys.exit(1)


def file_lines(paths):
    """(path, line) -> the parsed sample, for every non-blank line that parses."""
    lines = {}
    for path in paths:
        with open(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                try:
                    lines[(path, number)] = json.loads(raw)
                except ValueError:
                    pass
    return lines


def recomputed(sample, generated):
    """(score, partial, any_found, scoring) by the rule of the sample's layout, ASCII-only case."""
    out = generated.encode().lower()
    answers = sample.get("outputs", sample.get("answers"))
    contained = [a.encode().lower() in out for a in answers]
    partial, any_found = sum(contained) / len(contained), float(any(contained))
    if "outputs" in sample:
        return float(all(contained)), partial, any_found, "string_match"
    exact = any(a.encode().strip().lower() == out.strip() and a.strip() for a in answers)
    return float(exact), partial, any_found, "exact"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("--methods", required=True)
    parser.add_argument("--files", required=True)
    parser.add_argument("--ctx", type=int, required=True)
    parser.add_argument("--expect-lines", type=int)
    args = parser.parse_args()
    methods = args.methods.split(",")
    paths = args.files.split(",")
    lines = file_lines(paths)
    with h5py.File(args.run, "r") as f:
        rows = [r for r in f["eval_samples"][()] if text(r["source_file"])]
        summary = f["eval_summary"][()]
    seen = {m: set() for m in methods}
    for r in rows:
        method, source, line = text(r["method"]), text(r["source_file"]), int(r["source_line"])
        if method not in seen:
            fail(f"row of unexpected method {method}")
        if (source, line) not in lines:
            fail(f"row names {source}:{line}, which is no sample line of {paths}")
        if (source, line) in seen[method]:
            fail(f"{method} has two rows for {source}:{line}")
        seen[method].add((source, line))
        sample = lines[(source, line)]
        answers = sample.get("outputs", sample.get("answers"))
        if text(r["expected"]) != "|".join(answers):
            fail(f"{source}:{line}: expected '{text(r['expected'])}', the line has {answers}")
        task = sample.get("dataset", os.path.splitext(os.path.basename(source))[0])
        if text(r["task"]) != task:
            fail(f"{source}:{line}: task '{text(r['task'])}', expected '{task}'")
        if int(r["ctx"]) != args.ctx:
            fail(f"{source}:{line}: ctx {int(r['ctx'])}, expected {args.ctx}")
        if args.ctx and int(r["prompt_tokens"]) + 1 > args.ctx:
            fail(f"{source}:{line}: {int(r['prompt_tokens'])} prompt tokens do not leave room in ctx {args.ctx}")
        score, partial, any_found, scoring = recomputed(sample, text(r["generated"]))
        if (text(r["scoring"]) != scoring or float(r["score"]) != score or float(r["any_found"]) != any_found
                or abs(float(r["partial"]) - partial) > 1e-6):
            fail(f"{source}:{line} ({method}): scoring {text(r['scoring'])} score {r['score']} partial "
                 f"{r['partial']} any {r['any_found']}, recomputed {scoring} {score} {partial} {any_found} "
                 f"from '{text(r['generated'])}'")
    counts = {len(s) for s in seen.values()}
    if len(counts) != 1:
        fail(f"methods ran different sample counts: { {m: len(s) for m, s in seen.items()} }")
    n = counts.pop()
    if args.expect_lines is not None and n != args.expect_lines:
        fail(f"{n} sample lines ran, expected {args.expect_lines}")
    for m in methods:
        per_task = sum(int(s["n_samples"]) for s in summary
                       if text(s["method"]) == m and int(s["ctx"]) == args.ctx and text(s["task"]) != "all"
                       and text(s["task"]) in {text(r["task"]) for r in rows})
        if per_task != n:
            fail(f"{m}: eval_summary counts {per_task} file samples at ctx {args.ctx}, the rows {n}")
    print(f"{args.run}: {n} eval-file samples x {len(methods)} methods check out")


if __name__ == "__main__":
    main()
