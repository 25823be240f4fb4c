#!/usr/bin/env python3
"""record_fingerprint.py — the deterministic part of a uniprefill-bench run file as JSON
text, so a refactor can be held to "no change in behaviour": for a sweep, every point's
attributes that describe it and, per request, id, status, prompt, kept and output
lengths, first token and the prompt tokens entering each layer; for an --eval run, per
sample the method, context, task, score, first token, generated text and the prompt
rows entering each layer. Timings are left out. Usage:
  record_fingerprint.py RUN.h5            print the fingerprint
  record_fingerprint.py RUN.h5 EXPECTED   exit 1 (naming the first difference) unless equal"""
import json
import sys

import h5py

REQUEST_FIELDS = ("id", "status", "prompt_len", "kept_len", "output_len", "first_token", "kv_bytes",
                  "kv_held_bytes", "kv_dense_bytes")
POINT_ATTRS = ("method", "ctx", "concurrency", "requests")
SAMPLE_FIELDS = ("method", "ctx", "task", "sample", "prompt_tokens", "score", "first_token",
                 "dense_first_token", "generated_tokens", "generated")


def plain(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if hasattr(value, "tolist"):
        return plain(value.tolist())
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def fingerprint(path):
    out = {"points": {}, "eval_samples": []}
    with h5py.File(path, "r") as f:
        for name in sorted(f.get("points", {})):
            group = f["points"][name]
            point = {key: plain(group.attrs[key]) for key in POINT_ATTRS if key in group.attrs}
            requests = group["requests"][()]
            layers = group["request_layer_tokens"][()]
            point["requests_rows"] = [
                {field: plain(row[field]) for field in REQUEST_FIELDS if field in requests.dtype.names}
                | {"layer_tokens": plain(layers[i])}
                for i, row in enumerate(requests)]
            out["points"][name] = point
        if "eval_samples" in f:
            samples = f["eval_samples"][()]
            layer_rows = []
            for name in sorted(f.get("eval_layer_rows", {})):
                layer_rows.extend(plain(f["eval_layer_rows"][name][()]))
            for i, row in enumerate(samples):
                rec = {field: plain(row[field]) for field in SAMPLE_FIELDS if field in samples.dtype.names}
                if i < len(layer_rows):
                    rec["layer_rows"] = layer_rows[i]
                out["eval_samples"].append(rec)
    return out


def first_difference(a, b, where="$"):
    if type(a) is not type(b):
        return f"{where}: {a!r} vs {b!r}"
    if isinstance(a, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{where}.{key}: present on one side only"
            diff = first_difference(a[key], b[key], f"{where}.{key}")
            if diff:
                return diff
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{where}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            diff = first_difference(x, y, f"{where}[{i}]")
            if diff:
                return diff
        return None
    return None if a == b else f"{where}: {a!r} vs {b!r}"


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    got = fingerprint(argv[1])
    if len(argv) == 2:
        json.dump(got, sys.stdout, indent=1, sort_keys=True)
        print()
        return 0
    with open(argv[2]) as fh:
        expected = json.load(fh)
    diff = first_difference(expected, got)
    if diff:
        print(f"records differ from {argv[2]} (expected vs got) at {diff}")
        return 1
    n_req = sum(len(p["requests_rows"]) for p in got["points"].values())
    print(f"records equal: {len(got['points'])} points, {n_req} requests, {len(got['eval_samples'])} eval samples")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
