#!/usr/bin/env python3
"""sparse_estimates.py — an independent NumPy port of the three sparse baselines'
estimation steps, written from ../shared/BASELINES.md (sections 1.3-1.4, 2.3, 3.2) and
not from the C code, and the writer of the small fixtures that tests/test_sparse_fixtures.c
compares the C CPU reference with (inputs -> selected blocks).

    sparse_estimates.py --write DIR      # (re)write the fixtures into DIR
    sparse_estimates.py --check DIR      # recompute and compare with DIR's fixtures

Inputs are not stored: q and k come from a counter-based generator both sides implement
(`generate` below; tests/test_sparse_fixtures.c has the C twin), rounded to bfloat16 as
the authors' tensors are, optionally with planted structure (a few key columns aligned
with every query) so that the inputs are "peaked" as well as random. Every quantity is
computed in float64 except where the authors' code rounds: bf16 after each bf16 product
and the fp32 softmax probabilities, exactly as the C reference documents. Ties in a
ranking go to the lower index on both sides.

Runs on /usr/bin/python3 with numpy 1.24; needs nothing else.
"""
import argparse
import math
import os
import sys

import numpy as np

M64 = (1 << 64) - 1


def bf16(x):
    """Round float values to the nearest bfloat16 (ties to even), kept as float64."""
    a = np.atleast_1d(np.asarray(x, dtype=np.float32))
    bits = a.view(np.uint32).astype(np.uint64)
    rounded = (bits + np.uint64(0x7FFF) + ((bits >> np.uint64(16)) & np.uint64(1))) & np.uint64(0xFFFF0000)
    out = rounded.astype(np.uint32).view(np.float32)
    out = np.where(np.isnan(a), a, out).astype(np.float64)
    return out.reshape(np.shape(x))


def generate(seed, stream, count, gain):
    """gain * (2u - 1) with u from a splitmix-style hash of (seed, stream, index), as bf16."""
    i = np.arange(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        h = i * np.uint64(0x9E3779B97F4A7C15) + np.uint64((seed * 0xBF58476D1CE4E5B9) & M64) + np.uint64(
            (stream * 0x94D049BB133111EB) & M64)
        h ^= h >> np.uint64(31)
        h *= np.uint64(0xD6E9F9A1B5D0A7E3)
        h ^= h >> np.uint64(29)
    u = (h >> np.uint64(40)).astype(np.float64) / float(1 << 24)
    return bf16((gain * (2.0 * u - 1.0)).astype(np.float32))


def make_inputs(case):
    n, d = case["n"], case["d"]
    q = generate(case["seed"], 1, n * d, case["gain"]).reshape(n, d)
    k = generate(case["seed"], 2, n * d, 1.0).reshape(n, d)
    if case["planted"]:  # key columns every query attends to
        q[:, 0] = bf16(np.float32(case["peak"]))
    for j in case["planted"]:
        k[j, 0] = bf16(np.float32(case["peak"]))
    return q, k


def ranked(scores):
    """Indices by descending score, ties to the lower index."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


def f32(x):
    return np.asarray(x, dtype=np.float32).astype(np.float64)


# ---- MInference (BASELINES.md 1.3, 1.4) ------------------------------------------------------

def minference_select(q, k, v, s, last_q=64, forced_columns=30, forced_diagonals=100):
    n, d = q.shape
    lq = min(last_q, n)
    nv, ns = min(n, max(v, 30)), min(n, max(s, 50))
    logits = bf16(bf16(q[n - lq:] @ k.T) * np.float64(np.float32(1.0) / np.float32(math.sqrt(d))))
    rows = np.arange(n - lq, n)[:, None]
    cols = np.arange(n)[None, :]
    logits = np.where(cols <= rows, logits, -np.inf)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = f32(e / e.sum(axis=1, keepdims=True))
    vertical = p.sum(axis=0)
    slash = np.zeros(n)
    for r in range(lq):  # offset o = i - j of each entry
        i = n - lq + r
        slash[: i + 1] += p[r, i::-1]
    vertical[: min(forced_columns, n)] = np.inf
    slash[: min(forced_diagonals, n)] = np.inf
    columns = sorted(ranked(vertical)[:nv])
    offsets = sorted(ranked(slash)[:ns], reverse=True)
    return columns, offsets


def minference_convert(n, columns, offsets, block=64):
    """Per 64-row block: (range starts, extra keys), walked as convert_vertical_slash_indexes does."""
    out = []
    for m0 in range(0, n, block):
        end_m = m0 + block
        live = [o for o in offsets if o < end_m]  # offsets past the block's last row are skipped
        ends = [max(end_m - o, block) for o in live]
        ranges, extra = [], []
        if ends:
            start, stop = ends[0] - block, ends[0]
        else:  # no diagonal reaches this block: a range just past it (never read)
            start, stop = end_m, end_m + block
        col_iter = iter(columns)
        col = next(col_iter, end_m + block)
        e_iter = iter(ends[1:])
        while True:
            if col < stop:
                if col < start:
                    extra.append(col)
                col = next(col_iter, end_m + block)
                continue
            e = next(e_iter, None)
            if e is None:
                ranges.extend(range(start, stop, block))
                break
            if e > stop + block:
                ranges.extend(range(start, stop, block))
                start, stop = e - block, e
            elif e > stop:
                stop += block
        out.append((ranges, extra))
    return out


# ---- FlexPrefill (BASELINES.md 2.3) ----------------------------------------------------------

def cover_count(scores, gamma):
    s = np.sort(scores)[::-1]
    return int(np.sum(np.cumsum(s) <= gamma)) + 1


def flexprefill_mask(q, k, gamma, tau, min_budget, max_budget=0, block=128):
    n, d = q.shape
    nb = -(-n // block)
    lq = min(block, n)
    qs = bf16(q[n - lq:] * (1.0 / math.sqrt(d)))
    logits = bf16(qs @ k.T)
    rows = np.arange(n - lq, n)[:, None]
    logits = np.where(np.arange(n)[None, :] <= rows, logits, -np.inf)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = f32(e / e.sum(axis=1, keepdims=True))
    vert = (p / lq).sum(axis=0)
    by_offset = np.zeros(n)
    for r in range(lq):
        i = n - lq + r
        by_offset[: i + 1] += p[r, i::-1] / lq
    slash = by_offset[::-1]  # token t <-> offset n-1-t
    min_b = -(-min_budget // block)
    max_b = min(-(-max_budget // block) if max_budget > 0 else nb, nb)
    n_v = min(max(cover_count(vert, gamma) // 128 + 1, min_b), max_b)
    n_s = min(max(cover_count(slash, gamma) // 128 + 1, min_b), max_b)
    pad = nb * block - n
    vert_b = np.concatenate([vert, np.zeros(pad)]).reshape(nb, block).sum(axis=1)
    slash_b = np.concatenate([slash, np.zeros(pad)]).reshape(nb, block).sum(axis=1)
    kbar = np.stack([bf16(k[b * block:min(n, (b + 1) * block)].mean(axis=0)) for b in range(nb)])
    qbar = bf16(qs.mean(axis=0))
    a = bf16(kbar @ qbar)
    a = f32(np.exp(a - a.max()) / np.exp(a - a.max()).sum())
    m = (a + vert_b) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = math.sqrt(0.5 * np.sum(a * np.log(a / m)) + 0.5 * np.sum(vert_b * np.log(vert_b / m)))
    query_aware = bool(dist < tau)  # NaN compares false
    if query_aware:
        n_v = n_s = min(min_b, nb)
    vert_b[0] = np.inf
    slash_b[nb - 1] = np.inf
    mask = np.zeros((nb, nb), dtype=bool)
    for v in ranked(vert_b)[:n_v]:
        mask[v:, v] = True
    for g in ranked(slash_b)[:n_s]:
        off = nb - 1 - g
        for r in range(off, nb):
            mask[r, r - off] = True
    mask[0, 0] = True
    if query_aware:
        att = np.zeros((nb, nb))
        for i in range(nb):
            lo, hi = i * block, min(n, (i + 1) * block)
            qb = bf16(q[lo:hi].sum(axis=0) / block)
            if hi - lo < block:
                qb = bf16(bf16(qb * block) / (hi - lo))
            qb = bf16(qb * (1.0 / math.sqrt(d)))
            row = bf16(kbar[: i + 1] @ qb)
            w = np.exp(row - row.max())
            att[i, : i + 1] = f32(w / w.sum())
        flat = att.reshape(-1)
        cum = 0.0
        for idx in ranked(flat):
            cum += flat[idx]
            if cum > gamma * nb:
                break
            mask[idx // nb, idx % nb] = True
    return mask, query_aware


# ---- XAttention (BASELINES.md 3.2, Triton path) ------------------------------------------------

def xattention_scores(q, k, stride, block=128):
    n, d = q.shape
    S = stride
    nb = -(-n // block)
    n_r = -(-n // S)
    pad = n_r * S - n
    qp = np.concatenate([q, np.zeros((pad, d))]).reshape(n_r, S, d)
    kp = np.concatenate([k, np.zeros((pad, d))]).reshape(n_r, S, d)
    # R[r, c] = sum_i q[rS + S-1-i] . k[cS + i]: queries reversed inside their tile
    r_mat = np.einsum("rid,cid->rc", qp[:, ::-1, :], kp)
    logits = bf16(r_mat) * (1.0 / (math.sqrt(d) * S))
    causal = np.arange(n_r)[None, :] <= np.arange(n_r)[:, None]
    logits = np.where(causal, logits, -np.inf)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = f32(e / e.sum(axis=1, keepdims=True))
    per = block // S
    w = np.zeros((nb, nb))
    for r in range(n_r):
        w[r // per] += np.bincount(np.arange(n_r) // per, weights=p[r], minlength=nb)[:nb]
    return bf16(w)


def xattention_first_chunk_blocks(n, block=128):
    """Query-block rows of the authors' first estimation chunk for a prompt of n tokens:
    Xattention_prefill's chunk max(min(max(2048, P), 2^28 / P), 2048), P the next power of
    two >= n (BASELINES.md 3.2, line 210)."""
    p = 1 << max(n - 1, 0).bit_length()
    return max(min(max(2048, p), (1 << 28) // p), 2048) // block


def xattention_mask(w, threshold, first_chunk_blocks=0):
    """Rows 1 .. first_chunk_blocks-1 walk as the authors' first chunk does: there
    find_blocks_chunked's diagonal identity overwrites block 0's forcing (utils.py L99-106)
    while its running sum keeps two forced slots (L115-139), so only the diagonal's mass
    comes first, block 0 is ranked with the others, and one block past the crossing one
    is kept; block 0 stays kept (L142-145). 0 gives BASELINES.md 3.2's walk everywhere."""
    nb = w.shape[0]
    mask = np.zeros((nb, nb), dtype=bool)
    for qb in range(nb):
        total = w[qb].sum()
        mask[qb, 0] = mask[qb, qb] = True
        first_chunk = 0 < qb < first_chunk_blocks
        lo = 0 if first_chunk else 1
        before = w[qb, qb] + (0.0 if first_chunk or qb == 0 else w[qb, 0])
        order = sorted(range(lo, qb), key=lambda j: (-w[qb, j], j))
        kept = 0
        while kept < len(order) and before < total * threshold:
            before += w[qb, order[kept]]
            kept += 1
        if first_chunk and kept < len(order):
            kept += 1
        mask[qb, order[:kept]] = True
    return mask


# ---- fixtures ------------------------------------------------------------------------------------

CASES = [
    dict(name="minference_random", method="minference", n=700, d=16, seed=3, gain=2.0, planted=[], peak=0.0,
         v=40, s=120),
    dict(name="minference_peaked", method="minference", n=640, d=16, seed=4, gain=1.0, planted=[77, 300], peak=3.0,
         v=33, s=104),
    dict(name="flexprefill_random", method="flexprefill", n=1100, d=16, seed=5, gain=2.0, planted=[], peak=0.0,
         gamma=0.6, tau=0.0, min_budget=0),
    dict(name="flexprefill_query_aware", method="flexprefill", n=900, d=16, seed=6, gain=1.0, planted=[], peak=0.0,
         gamma=0.9, tau=1.0, min_budget=128),
    dict(name="flexprefill_peaked", method="flexprefill", n=1000, d=16, seed=7, gain=1.0, planted=[400, 401, 402],
         peak=3.0, gamma=0.9, tau=0.1, min_budget=0),
    dict(name="xattention_random", method="xattention", n=900, d=16, seed=8, gain=3.0, planted=[], peak=0.0,
         stride=8, threshold=0.5),
    dict(name="xattention_peaked_s16", method="xattention", n=777, d=16, seed=9, gain=1.0, planted=[200, 530],
         peak=3.0, stride=16, threshold=0.8),
    # past 16384 tokens the authors' first chunk (8192 tokens, 64 rows here) ends inside the
    # prompt: rows 1-63 take the first chunk's walk, rows 64-128 BASELINES.md 3.2's
    dict(name="xattention_past_first_chunk", method="xattention", n=16500, d=16, seed=10, gain=3.0,
         planted=[3000, 9000], peak=3.0, stride=8, threshold=0.3),
]

PARAM_KEYS = ["n", "d", "seed", "gain", "peak", "v", "s", "gamma", "tau", "min_budget", "stride", "threshold"]


def as_option(x):
    """A real option as the C side stores it (a float)."""
    return float(np.float32(x))


def compute(case):
    q, k = make_inputs(case)
    lines = []
    if case["method"] == "minference":
        columns, offsets = minference_select(q, k, case["v"], case["s"])
        for b, (ranges, extra) in enumerate(minference_convert(case["n"], columns, offsets)):
            lines.append(f"{b} ranges {' '.join(map(str, ranges))} | extra {' '.join(map(str, extra))}".rstrip())
    else:
        if case["method"] == "flexprefill":
            mask, qa = flexprefill_mask(q, k, as_option(case["gamma"]), as_option(case["tau"]), case["min_budget"])
            lines.append(f"query_aware {int(qa)}")
        else:
            mask = xattention_mask(xattention_scores(q, k, case["stride"]), as_option(case["threshold"]),
                                   xattention_first_chunk_blocks(case["n"]))
        for qb in range(mask.shape[0]):
            lines.append(f"{qb} blocks {' '.join(str(j) for j in np.nonzero(mask[qb])[0])}".rstrip())
    return lines


def header(case):
    params = " ".join(f"{key} {case[key]}" for key in PARAM_KEYS if key in case)
    planted = " ".join(map(str, case["planted"]))
    return [f"# written by tests/reference/sparse_estimates.py; checked by tests/test_sparse_fixtures.c",
            f"method {case['method']}", f"params {params}", f"planted {len(case['planted'])} {planted}".rstrip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", metavar="DIR")
    group.add_argument("--check", metavar="DIR")
    args = ap.parse_args()
    bad = 0
    for case in CASES:
        text = "\n".join(header(case) + compute(case)) + "\n"
        if args.write:
            os.makedirs(args.write, exist_ok=True)
            with open(os.path.join(args.write, case["name"] + ".txt"), "w") as f:
                f.write(text)
        else:
            with open(os.path.join(args.check, case["name"] + ".txt")) as f:
                if f.read() != text:
                    print(f"{case['name']}: differs from the committed fixture", file=sys.stderr)
                    bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
