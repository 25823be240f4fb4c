#!/usr/bin/env python3
"""check_eval_file.py — checks the tables a `uniprefill-bench --eval` run writes.

  check_eval_file.py FILE --rows N --ctx C --layers L --methods M1,M2 --max-new K [--accuracy X]
      /eval_samples has N rows, every listed method one per (ctx, task, sample); dense's
      rows are the reference (KL 0, top-1 agrees, nothing dropped) and every other
      method's dense_first_token is dense's first token for the same prompt; prompts fit
      their context; /eval_summary's rows are the means of the sample rows, per task and
      "all"; each /eval_layer_rows/NNNN is [rows of that context, L] and starts at the
      prompt length, and each /eval_layer_density/NNNN has the same shape, its values in
      (0, 1] or NaN. The diagnostic fields hold together: the content step and token are
      dense's, a content top-1 of 1 means the same tokens up to it and a finite KL, an
      answer that differs before it has none; same_answer means dense's text; needle
      survival counts lie between -1 (no needle) and the method's drop layers, and the
      summary's rates are the rows' shares. With --accuracy, every method's accuracy
      must be at least X.
  check_eval_file.py --same A B
      two runs of the same evaluation (any rank counts) have the same sample rows,
      per-layer rows and summaries once sorted by (method, ctx, task, sample); wall times
      are ignored, and NaN equals NaN.
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


def layer_rows_in_file_order(f, group_name="eval_layer_rows"):
    """Per-layer rows (or densities) of every sample row, concatenated over the context groups."""
    group = f[group_name]
    return np.concatenate([group[name][()] for name in sorted(group)], axis=0)


class Failure(Exception):
    pass


def require(condition, message):
    if not condition:
        raise Failure(message)


def same_values(a, b):
    """Equal arrays, NaN where both have NaN counting as equal."""
    if a.dtype.kind == "f":
        return np.array_equal(a, b, equal_nan=True)
    return np.array_equal(a, b)


def survival_rates(value):
    return [float(x) for x in text(value).split(",")] if text(value) else []


def check_diagnostics(path, samples):
    """Per-row rules of the content-token, same-answer and needle fields."""
    dense = {sample_key(r)[1:]: r for r in samples if text(r["method"]) == "dense"}
    for r in samples:
        key = sample_key(r)
        d = dense[key[1:]]
        where = f"{path}: {key}"
        require(r["content_step"] == d["content_step"], f"{where}: content_step is not dense's")
        require(r["dense_content_token"] == d["content_token"], f"{where}: dense_content_token is not dense's")
        agrees, kl = int(r["top1_content_agrees"]), float(r["kl_content"])
        if r["content_step"] < 0:
            require(agrees == -1 and np.isnan(kl) and r["dense_content_token"] == -1,
                    f"{where}: no content step, yet top-1 {agrees} / KL {kl}")
        else:
            require(agrees in (0, 1), f"{where}: top1_content_agrees {agrees}")
            require(agrees == 0 or (r["content_token"] == r["dense_content_token"] and kl >= -1e-9),
                    f"{where}: agrees at the content step without the same token or a KL")
            require(np.isnan(kl) or kl >= -1e-9, f"{where}: negative content KL {kl}")
        require(r["same_answer"] in (0, 1), f"{where}: same_answer {r['same_answer']}")
        if r["same_answer"]:
            require(r["generated"] == d["generated"] and r["generated_tokens"] == d["generated_tokens"],
                    f"{where}: same_answer, yet {text(r['generated'])!r} vs dense's {text(d['generated'])!r}")
            require(agrees != 0 and (r["content_step"] < 0 or not np.isnan(kl)), f"{where}: same answer disagrees")
        if text(r["method"]) == "dense":
            require(r["same_answer"] == 1 and agrees in (-1, 1), f"{where}: dense differs from itself")
            require(r["content_step"] < 0 or kl == 0.0, f"{where}: dense content KL {kl}")
            require(r["needle_drops_survived"] in (-1, 0), f"{where}: dense drops nothing")
        require(r["needle_drops_survived"] >= -1, f"{where}: needle_drops_survived {r['needle_drops_survived']}")
        require((r["needle_tokens"] > 0) == (r["needle_drops_survived"] >= 0),
                f"{where}: needle_tokens {r['needle_tokens']} with survival {r['needle_drops_survived']}")


def check_summary_diagnostics(where, s, chosen):
    same = float(np.mean([r["same_answer"] for r in chosen]))
    require(abs(s["same_answer"] - same) < 1e-9, f"{where}: same_answer {s['same_answer']} vs {same}")
    counted = [r["top1_content_agrees"] for r in chosen if r["top1_content_agrees"] >= 0]
    expected = float(np.mean(counted)) if counted else float("nan")
    require(same_values(np.array([s["top1_content_agreement"]]), np.array([expected])),
            f"{where}: top1_content_agreement {s['top1_content_agreement']} vs {expected}")
    kls = [float(r["kl_content"]) for r in chosen if not np.isnan(r["kl_content"])]
    require(s["n_kl_content"] == len(kls), f"{where}: n_kl_content {s['n_kl_content']} vs {len(kls)}")
    expected = float(np.mean(kls)) if kls else float("nan")
    require(same_values(np.array([s["kl_content_mean"]]), np.array([expected])),
            f"{where}: kl_content_mean {s['kl_content_mean']} vs {expected}")
    known = [int(r["needle_drops_survived"]) for r in chosen if r["needle_drops_survived"] >= 0]
    require(s["n_needle_samples"] == len(known), f"{where}: n_needle_samples {s['n_needle_samples']} vs {len(known)}")
    rates = survival_rates(s["needle_survival"])
    if not known:
        require(not rates and np.isnan(s["needle_survival_all"]), f"{where}: needle rates without needles")
        return
    require(all(v <= len(rates) for v in known), f"{where}: a sample survived more drops than {len(rates)}")
    for d, rate in enumerate(rates):
        share = sum(v > d for v in known) / len(known)
        require(abs(rate - share) < 1e-3, f"{where}: needle survival at drop {d}: {rate} vs {share}")
    require(all(a >= b for a, b in zip(rates, rates[1:])), f"{where}: needle survival rises: {rates}")
    share = sum(v >= len(rates) for v in known) / len(known)
    require(abs(s["needle_survival_all"] - share) < 1e-9, f"{where}: needle_survival_all {s['needle_survival_all']}")


def check_file(path, rows, ctx, layers, methods, max_new, min_accuracy):
    with h5py.File(path, "r") as f:
        samples = f["eval_samples"][()]
        summary = f["eval_summary"][()]
        layer_rows = layer_rows_in_file_order(f)
        group_names = sorted(f["eval_layer_rows"])
        density = layer_rows_in_file_order(f, "eval_layer_density")
        require(sorted(f["eval_layer_density"]) == group_names,
                f"{path}: eval_layer_density groups {sorted(f['eval_layer_density'])}, eval_layer_rows {group_names}")
    require(len(samples) == rows, f"{path}: {len(samples)} eval_samples rows, expected {rows}")
    require(layer_rows.shape == (rows, layers),
            f"{path}: eval_layer_rows is {layer_rows.shape}, expected ({rows}, {layers})")
    require(density.shape == (rows, layers),
            f"{path}: eval_layer_density is {density.shape}, expected ({rows}, {layers})")
    # computed over causal pairs: in (0, 1] where a layer attended, NaN where it saw no causal pairs
    finite = density[~np.isnan(density)]
    require(finite.size > 0 and np.all(finite > 0.0) and np.all(finite <= 1.0 + 1e-12),
            f"{path}: eval_layer_density outside (0, 1]: {finite.min() if finite.size else 'all NaN'} .. "
            f"{finite.max() if finite.size else ''}")
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
    check_diagnostics(path, samples)
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
        check_summary_diagnostics(where, s, chosen)
        if min_accuracy is not None:
            require(s["accuracy"] >= min_accuracy, f"{where}: accuracy {s['accuracy']} < {min_accuracy}; "
                    f"answers {[text(r['generated']) for r in chosen]} for {[text(r['expected']) for r in chosen]}")
    for r in samples:
        print(f"{text(r['method'])} {text(r['task'])} ctx {r['ctx']} sample {r['sample']}: {r['prompt_tokens']} "
              f"prompt tokens, expected {text(r['expected'])!r}, generated {text(r['generated'])!r}, "
              f"score {r['score']}, KL {r['kl_vs_dense']:.3g}, kept {r['kept_fraction']:.3f}, "
              f"content top-1 {r['top1_content_agrees']} KL {r['kl_content']:.3g}, same answer {r['same_answer']}, "
              f"needle drops survived {r['needle_drops_survived']}")
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


def check_same(a_path, b_path):
    sa, la, ua = sorted_tables(a_path)
    sb, lb, ub = sorted_tables(b_path)
    require(len(sa) == len(sb), f"{len(sa)} vs {len(sb)} sample rows")
    for field in sa.dtype.names:
        if field in TIMING_FIELDS:
            continue
        differ = [sample_key(sa[i]) for i in range(len(sa)) if not same_values(sa[field][i:i + 1], sb[field][i:i + 1])]
        require(not differ, f"field {field} differs for {differ}")
    require(np.array_equal(la, lb), "per-layer rows differ")
    require(len(ua) == len(ub) and all(same_values(ua[n], ub[n]) for n in ua.dtype.names), "summaries differ")
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
