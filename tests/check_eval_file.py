#!/usr/bin/env python3
"""check_eval_file.py — checks the tables a `uniprefill-bench --eval` run writes.

  check_eval_file.py FILE --rows N --ctx C --layers L --methods M1,M2 --max-new K [--accuracy X]
      /eval_samples has N rows, every listed method one per (ctx, task, sample); dense's
      rows are the reference (KL 0, top-1 agrees, nothing dropped) and every other
      method's dense_first_token is dense's first token for the same prompt; prompts fit
      their context; /eval_summary's rows are the means of the sample rows, per task and
      "all"; each /eval_layer_rows/NNNN is [rows of that context, L] and starts at the
      prompt length. With --accuracy, every method's accuracy must be at least X.
  check_eval_file.py --same A B
      two runs of the same evaluation (any rank counts) have the same sample rows,
      per-layer rows and summaries once sorted by (method, ctx, task, sample); wall times
      are ignored.
Exit 0 when every check holds, 1 (with the reason) otherwise."""
import argparse
import sys

import h5py
import numpy as np

TIMING_FIELDS = {"prefill_decode_ms"}


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def sample_key(row):
    return (text(row["method"]), int(row["ctx"]), text(row["task"]), int(row["sample"]))


def layer_rows_in_file_order(f):
    """Per-layer rows of every sample row, concatenated over the context groups."""
    group = f["eval_layer_rows"]
    return np.concatenate([group[name][()] for name in sorted(group)], axis=0)


class Failure(Exception):
    pass


def require(condition, message):
    if not condition:
        raise Failure(message)


def check_file(path, rows, ctx, layers, methods, max_new, min_accuracy):
    with h5py.File(path, "r") as f:
        samples = f["eval_samples"][()]
        summary = f["eval_summary"][()]
        layer_rows = layer_rows_in_file_order(f)
        group_names = sorted(f["eval_layer_rows"])
    require(len(samples) == rows, f"{path}: {len(samples)} eval_samples rows, expected {rows}")
    require(layer_rows.shape == (rows, layers),
            f"{path}: eval_layer_rows is {layer_rows.shape}, expected ({rows}, {layers})")
    require(len(group_names) >= 1 and group_names[0] == "0000", f"{path}: layer-row groups {group_names}")
    keys = [sample_key(r) for r in samples]
    require(len(set(keys)) == len(keys), f"{path}: duplicate (method, ctx, task, sample) rows")
    found = sorted({k[0] for k in keys})
    require(found == sorted(methods), f"{path}: methods {found}, expected {sorted(methods)}")
    prompts = sorted({k[1:] for k in keys})
    require(len(prompts) * len(methods) == rows, f"{path}: {len(prompts)} prompts x {len(methods)} methods != {rows}")
    dense_first = {}
    for r, lr in zip(samples, layer_rows):
        if text(r["method"]) == "dense":
            key = sample_key(r)[1:]
            require(r["kl_vs_dense"] == 0.0, f"{path}: dense {key} has KL {r['kl_vs_dense']}")
            require(r["top1_agrees"] == 1, f"{path}: dense {key} disagrees with itself")
            require(r["first_token"] == r["dense_first_token"], f"{path}: dense {key} first tokens differ")
            require(r["kept_fraction"] == 1.0, f"{path}: dense {key} kept {r['kept_fraction']}")
            require(np.all(lr == r["prompt_tokens"]), f"{path}: dense {key} layer rows {lr}")
            dense_first[key] = int(r["first_token"])
    for r, lr in zip(samples, layer_rows):
        key = sample_key(r)
        require(0 < r["prompt_tokens"] <= r["ctx"] == ctx, f"{path}: {key}: {r['prompt_tokens']} prompt tokens, ctx {ctx}")
        require(r["prompt_tokens"] >= ctx // 2, f"{path}: {key}: prompt of {r['prompt_tokens']} tokens is far below {ctx}")
        require(1 <= r["generated_tokens"] <= max_new, f"{path}: {key}: {r['generated_tokens']} tokens generated")
        require(r["stopped"] or r["generated_tokens"] == max_new, f"{path}: {key}: ended early without a stop")
        require(r["score"] in (0.0, 1.0) and 0.0 <= r["partial"] <= 1.0, f"{path}: {key}: score {r['score']}")
        require(r["kl_vs_dense"] >= -1e-9, f"{path}: {key}: negative KL {r['kl_vs_dense']}")
        require(r["dense_first_token"] == dense_first[key[1:]], f"{path}: {key}: dense_first_token is not dense's")
        require(r["top1_agrees"] == int(r["first_token"] == r["dense_first_token"]), f"{path}: {key}: top1_agrees")
        require(0.0 < r["kept_fraction"] <= 1.0, f"{path}: {key}: kept fraction {r['kept_fraction']}")
        require(lr[0] == r["prompt_tokens"] and np.all(np.diff(lr) <= 0) and lr[-1] >= 1,
                f"{path}: {key}: layer rows {lr} (layer 0 takes the whole prompt, later layers no more)")
        expected_kept = lr.sum() / (layers * r["prompt_tokens"])
        require(abs(r["kept_fraction"] - expected_kept) < 1e-6, f"{path}: {key}: kept fraction vs layer rows")
    # Summaries: the mean of the sample rows per (method, ctx, task) and per (method, ctx) as "all".
    tasks = sorted({k[2] for k in keys})
    require(len(summary) == len(methods) * (len(tasks) + 1),
            f"{path}: {len(summary)} eval_summary rows for {len(methods)} methods x ({len(tasks)} tasks + all)")
    for s in summary:
        method, task = text(s["method"]), text(s["task"])
        chosen = [r for r in samples if text(r["method"]) == method and r["ctx"] == s["ctx"]
                  and (task == "all" or text(r["task"]) == task)]
        where = f"{path}: summary {method} {s['ctx']} {task}"
        require(s["n_samples"] == len(chosen) > 0, f"{where}: n_samples {s['n_samples']} vs {len(chosen)} rows")
        for field, column in (("accuracy", "score"), ("partial", "partial"), ("top1_agreement", "top1_agrees"),
                              ("kl_mean", "kl_vs_dense"), ("kept_fraction", "kept_fraction"),
                              ("prompt_tokens_mean", "prompt_tokens")):
            mean = float(np.mean([r[column] for r in chosen]))
            require(abs(s[field] - mean) < 1e-6, f"{where}: {field} {s[field]} vs mean {mean}")
        require(abs(s["kl_max"] - max(float(r["kl_vs_dense"]) for r in chosen)) < 1e-9, f"{where}: kl_max")
        if min_accuracy is not None:
            require(s["accuracy"] >= min_accuracy, f"{where}: accuracy {s['accuracy']} < {min_accuracy}; "
                    f"answers {[text(r['generated']) for r in chosen]} for {[text(r['expected']) for r in chosen]}")
    for r in samples:
        print(f"{text(r['method'])} {text(r['task'])} ctx {r['ctx']} sample {r['sample']}: {r['prompt_tokens']} "
              f"prompt tokens, expected {text(r['expected'])!r}, generated {text(r['generated'])!r}, "
              f"score {r['score']}, KL {r['kl_vs_dense']:.3g}, kept {r['kept_fraction']:.3f}")
    print(f"{path}: {rows} sample rows and {len(summary)} summary rows check out")


def sorted_tables(path):
    with h5py.File(path, "r") as f:
        samples = f["eval_samples"][()]
        summary = f["eval_summary"][()]
        layer_rows = layer_rows_in_file_order(f)
    order = sorted(range(len(samples)), key=lambda i: sample_key(samples[i]))
    summary_order = sorted(range(len(summary)),
                           key=lambda i: (text(summary[i]["method"]), int(summary[i]["ctx"]), text(summary[i]["task"])))
    return samples[order], layer_rows[order], summary[summary_order]


def same_value(a, b):
    """Equal, or both NaN (an --eval-file sample has no needle depth)."""
    return a == b or (isinstance(a, (float, np.floating)) and np.isnan(a) and np.isnan(b))


def check_same(a_path, b_path):
    sa, la, ua = sorted_tables(a_path)
    sb, lb, ub = sorted_tables(b_path)
    require(len(sa) == len(sb), f"{len(sa)} vs {len(sb)} sample rows")
    for field in sa.dtype.names:
        if field in TIMING_FIELDS:
            continue
        differ = [sample_key(sa[i]) for i in range(len(sa)) if not same_value(sa[field][i], sb[field][i])]
        require(not differ, f"field {field} differs for {differ}")
    require(np.array_equal(la, lb), "per-layer rows differ")
    require(len(ua) == len(ub) and all(np.array_equal(ua[n], ub[n]) for n in ua.dtype.names), "summaries differ")
    print(f"{a_path} and {b_path}: the same {len(sa)} sample rows, layer rows and {len(ua)} summary rows")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", nargs="?")
    p.add_argument("--rows", type=int)
    p.add_argument("--ctx", type=int)
    p.add_argument("--layers", type=int)
    p.add_argument("--methods")
    p.add_argument("--max-new", type=int)
    p.add_argument("--accuracy", type=float)
    p.add_argument("--same", nargs=2, metavar=("A", "B"))
    args = p.parse_args()
    try:
        if args.same:
            check_same(*args.same)
        else:
            check_file(args.file, args.rows, args.ctx, args.layers, args.methods.split(","), args.max_new,
                       args.accuracy)
    except Failure as e:
        print(f"FAIL: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
