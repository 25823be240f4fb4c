#!/usr/bin/env python3
"""compare_logits.py — compares two raw little-endian float32 logit dumps (the C engine's
against llama_gguf_reference.py's) and says whether they agree within a tolerance.

    compare_logits.py A.f32 B.f32 --max-rel-err X [--vocab V] [--require-argmax]

Prints the normalised error ||a - b|| / ||b|| (B is the reference), the largest absolute
difference and argmax agreement: over the whole array, or per row of V logits with
--vocab (dumps of several positions). Exit 0 when the normalised error is at most X (and,
with --require-argmax, every argmax agrees); 1 when not, or when either side holds a
NaN or an infinity; 2 for unreadable or mismatched inputs.
"""
import argparse
import os
import sys

import numpy as np


def load(path):
    try:
        size = os.path.getsize(path)
        raw = np.fromfile(path, dtype="<f4")
    except OSError as err:
        raise ValueError(f"cannot read {path}: {err}") from err
    if size == 0 or size % 4:
        raise ValueError(f"{path}: {size} bytes is not a non-empty array of float32")
    return raw.astype(np.float64)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", help="logits under test (raw float32)")
    parser.add_argument("b", help="reference logits (raw float32)")
    parser.add_argument("--max-rel-err", type=float, required=True, metavar="X",
                        help="largest allowed ||a - b|| / ||b||")
    parser.add_argument("--vocab", type=int, default=0, metavar="V",
                        help="logits per position: compare argmax row by row")
    parser.add_argument("--require-argmax", action="store_true",
                        help="also fail when any row's argmax differs")
    args = parser.parse_args(argv)
    if not args.max_rel_err >= 0:
        parser.error("--max-rel-err must be >= 0")
    if args.vocab < 0:
        parser.error("--vocab must be >= 0")

    try:
        a, b = load(args.a), load(args.b)
    except ValueError as err:
        print(f"compare_logits: {err}", file=sys.stderr)
        return 2
    if a.size != b.size:
        print(f"compare_logits: {args.a} has {a.size} values, {args.b} {b.size}", file=sys.stderr)
        return 2
    vocab = args.vocab or a.size
    if a.size % vocab:
        print(f"compare_logits: {a.size} values are not whole rows of --vocab {vocab}", file=sys.stderr)
        return 2

    for name, x in ((args.a, a), (args.b, b)):
        bad = np.count_nonzero(~np.isfinite(x))
        if bad:
            print(f"FAIL: {name} holds {bad} NaN or infinite values")
            return 1

    norm_b = np.linalg.norm(b)
    rel_err = np.linalg.norm(a - b) / norm_b if norm_b > 0 else np.linalg.norm(a - b)
    max_abs = float(np.max(np.abs(a - b)))
    arg_a = np.argmax(a.reshape(-1, vocab), axis=1)
    arg_b = np.argmax(b.reshape(-1, vocab), axis=1)
    agree = int(np.count_nonzero(arg_a == arg_b))
    rows = arg_a.size
    print(f"normalised error ||a-b||/||b|| = {rel_err:.3e} (tolerance {args.max_rel_err:.3e})")
    print(f"max abs diff = {max_abs:.3e}")
    print(f"argmax agreement = {agree}/{rows}" + ("" if agree == rows else
          f" (first mismatch row {int(np.argmax(arg_a != arg_b))}: "
          f"{int(arg_a[arg_a != arg_b][0])} vs {int(arg_b[arg_a != arg_b][0])})"))

    failed = rel_err > args.max_rel_err or (args.require_argmax and agree != rows)
    print("FAIL" if failed else "ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
