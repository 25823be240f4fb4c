#!/usr/bin/env python3
"""minference_table.py — converts one of MInference's per-head pattern files (the
authors' `*_best_pattern*.json`: a list with one object per layer mapping a head number
to [pattern type, vertical size, slash size, score]) into the table the `minference`
method's `table=FILE` option reads: one "LAYER HEAD V S" line per layer and head
(engine/methods/head_table.h).

    minference_table.py BEST_PATTERN.json > table.txt

Every entry must be "vertical_and_slash" (all released Llama tables are, see
../shared/BASELINES.md 1.2); any other pattern type is refused by name, exit 2.
"""
import json
import sys


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    path = sys.argv[1]
    try:
        with open(path) as f:
            layers = json.load(f)
    except (OSError, ValueError) as err:
        print(f"minference_table.py: cannot read {path}: {err}", file=sys.stderr)
        return 2
    if not isinstance(layers, list):
        print(f"minference_table.py: {path} is not a list of layers", file=sys.stderr)
        return 2
    out = [f"# from {path}: LAYER HEAD V S"]
    for layer, heads in enumerate(layers):
        for head in sorted(heads, key=int):
            entry = heads[head]
            if entry[0] != "vertical_and_slash":
                print(f"minference_table.py: {path} layer {layer} head {head} is '{entry[0]}', "
                      "not vertical_and_slash", file=sys.stderr)
                return 2
            out.append(f"{layer} {int(head)} {int(entry[1])} {int(entry[2])}")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
