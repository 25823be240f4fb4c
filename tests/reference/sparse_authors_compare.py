#!/usr/bin/env python3
"""sparse_authors_compare.py — runs the authors' released estimation code of MInference,
FlexPrefill and XAttention on the same q/k as our reference and reports, per method, how
well the selected blocks agree (issue 13, "Against the authors"). For a lent GPU with
PyTorch and Triton; nothing of the authors' code is copied here: the script imports it
from checkouts given on the command line and only calls it.

    sparse_authors_compare.py --minference PATH --flexprefill PATH --xattention PATH \\
        [--lengths 8192,16384,32768] [--heads 4] [--inputs random,peaked] [--out FILE.tsv]

PATH is a checkout of microsoft/MInference, ByteDance-Seed/FlexPrefill and
mit-han-lab/x-attention (any subset; a method without a path is skipped).
- MInference: minference.modules.minference_forward.minference_prefill_kernel is called
  per head with its sparse kernel replaced by a recorder, so the authors' own estimate
  (last-64 scores, forced entries, top-k) runs and its column and diagonal choices are
  captured. If the compiled minference.cuda extension is importable, its
  convert_vertical_slash_indexes turns them into 64-wide ranges as well.
- FlexPrefill: flex_prefill.ops.flex_prefill_attention.get_active_blocks (pure
  PyTorch + Triton), with GQA as the authors call it.
- XAttention: xattn.src.Xattention.xattn_estimate (Triton path; needs a GPU whose name
  contains "100", as the authors' code checks), K repeated to the query heads as the
  authors' callers do.
Optional modules the authors' packages import at load time but the estimates never call
(the compiled Block-Sparse-Attention package, KV-cache quantisation kernels, vLLM, ...)
are replaced by inert stand-ins when missing; the run prints which.
Ours: tests/reference/sparse_estimates.py, the NumPy port whose selections the C CPU
reference matches exactly on the committed fixtures (tests/test_sparse_fixtures.c).

Agreement per (method, input, length, head): the Jaccard index of the two block sets
(MInference: of the column sets and of the diagonal sets; with the extension, of the
computed 64 x 64 tiles), printed as a table and optionally written as TSV.
Settings: MInference v=512 s=2048; FlexPrefill gamma 0.95 tau 0.1 min_budget 1024;
XAttention stride 8 threshold 0.9 — the suite's defaults.
"""
import argparse
import importlib
import importlib.machinery
import math
import os
import sys
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import sparse_estimates as ours  # noqa: E402

H, HKV, D = 32, 8, 128  # Llama-3.1-8B attention shape


def need_torch():
    try:
        import torch
    except ImportError:
        sys.exit("sparse_authors_compare.py needs PyTorch (and Triton) on a CUDA GPU")
    if not torch.cuda.is_available():
        sys.exit("sparse_authors_compare.py needs a CUDA GPU")
    return torch


def make_qk(torch, kind, n, seed):
    """bf16 q [n, H, D] and k [n, HKV, D]; 'peaked' adds key columns every query
    attends to and a local (diagonal) bias, so selections are not near-uniform."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    q = torch.randn(n, H, D, device="cuda", generator=g)
    k = torch.randn(n, HKV, D, device="cuda", generator=g)
    if kind == "peaked":
        direction = torch.randn(D, device="cuda", generator=g)
        direction /= direction.norm()
        q += 2.0 * direction
        cols = torch.randint(0, n, (16,), device="cuda", generator=g)
        k[cols] += 6.0 * direction
        # a slowly varying component makes nearby tokens more alike: diagonal mass
        pos = torch.arange(n, device="cuda", dtype=torch.float32)[:, None]
        freq = torch.linspace(1e-3, 2e-2, D, device="cuda")[None, :]
        q[:, :, :] += 1.5 * torch.sin(pos * freq)[:, None, :]
        k[:, :, :] += 1.5 * torch.sin(pos * freq)[:, None, :]
    return q.to(torch.bfloat16), k.to(torch.bfloat16)


def jaccard(a, b):
    a, b = set(a), set(b)
    return 1.0 if not a and not b else len(a & b) / len(a | b)


def as_np(t):
    return t.float().cpu().numpy().astype(np.float64)


# ---- importing the authors' packages ------------------------------------------------------

# Modules this comparison needs for real; any other module the authors' packages import at
# load time (KV-cache quantisation, serving engines, decode kernels: code the estimates never
# call) is replaced by an inert stand-in when it is missing here.
ESSENTIAL_MODULES = ("torch", "triton", "numpy", "transformers", "einops")
STAND_INS = []


class _Inert:
    """Whatever a module-level statement asks of a missing optional dependency."""

    def __call__(self, *args, **kwargs):
        return self

    def __getattr__(self, name):
        return self


def _stand_in(name):
    module = types.ModuleType(name)
    module.__path__ = []  # a package, so that its submodules can be stood in for too
    module.__getattr__ = lambda attr: _Inert()
    module.__version__ = "0"
    module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)  # find_spec() asks for it
    sys.modules[name] = module
    STAND_INS.append(name)


def import_authors(what, path, load):
    """load() with stand-ins for missing optional modules; exits naming the first missing
    essential one (or any other failure)."""
    sys.path.insert(0, path)
    for _ in range(32):
        try:
            return load()
        except ModuleNotFoundError as err:
            missing = err.name or ""
            if not missing or missing.split(".")[0] in ESSENTIAL_MODULES or missing in sys.modules:
                sys.exit(f"cannot import {what} from {path}: {err}")
            _stand_in(missing)
        except Exception as err:  # noqa: BLE001 - say why the import failed, then stop
            sys.exit(f"cannot import {what} from {path}: {err}")
    sys.exit(f"cannot import {what} from {path}: too many missing modules ({', '.join(STAND_INS)})")


# ---- MInference -------------------------------------------------------------------------

def minference_authors(path, torch, q, k, heads, v, s):
    # The package first: its __init__ imports the forward module through a cycle that only
    # resolves in that order.
    mf = import_authors("MInference", path, lambda: (importlib.import_module("minference"),
                                                    importlib.import_module("minference.modules.minference_forward"))[1])
    captured = {}

    def recorder(q_, k_, v_, vertical_topk, slash):
        captured["columns"] = sorted(vertical_topk.reshape(-1).tolist())
        captured["offsets"] = sorted(slash.reshape(-1).tolist(), reverse=True)
        return torch.zeros_like(q_)

    mf.vertical_slash_sparse_attention = recorder
    config = {"best_pattern": {0: {0: ("vertical_and_slash", v, s, 1)}}}
    try:
        from minference.cuda import convert_vertical_slash_indexes as convert
    except Exception:  # noqa: BLE001 - the extension is optional
        convert = None
    if any(name == "minference" or name.startswith("minference.") for name in STAND_INS):
        convert = None  # stood in for: not the authors' conversion
    out = []
    n = q.shape[0]
    for h in heads:
        qh = q[:, h, :][None, None]
        kh = k[:, h // (H // HKV), :][None, None]
        mf.minference_prefill_kernel(qh, kh, kh, 0, 0, config)
        tiles = None
        if convert is not None:
            seqlens = torch.tensor([n], dtype=torch.int32, device="cuda")
            vi = torch.tensor(captured["columns"], dtype=torch.int32, device="cuda")[None, None]
            si = torch.tensor(captured["offsets"], dtype=torch.int32, device="cuda")[None, None]
            cnt, off, ccnt, cidx = convert(seqlens, vi, si, n, 64, 64)
            tiles = set()
            for b in range(cnt.shape[2]):
                tiles |= {(b, int(x)) for x in off[0, 0, b, : int(cnt[0, 0, b])].tolist()}
                tiles |= {(b, "c", int(x)) for x in cidx[0, 0, b, : int(ccnt[0, 0, b])].tolist()}
        out.append((dict(captured), tiles))
    return out


def minference_ours(q, k, heads, v, s):
    res = []
    for h in heads:
        qh, kh = as_np(q[:, h, :]), as_np(k[:, h // (H // HKV), :])
        columns, offsets = ours.minference_select(qh, kh, v, s)
        tiles = set()
        for b, (ranges, extra) in enumerate(ours.minference_convert(qh.shape[0], columns, offsets)):
            tiles |= {(b, a) for a in ranges}
            tiles |= {(b, "c", j) for j in extra}
        res.append(({"columns": columns, "offsets": offsets}, tiles))
    return res


# ---- FlexPrefill --------------------------------------------------------------------------

def flexprefill_authors(path, torch, q, k, heads, gamma, tau, min_budget):
    get_active_blocks = import_authors(
        "FlexPrefill", path,
        lambda: importlib.import_module("flex_prefill.ops.flex_prefill_attention")).get_active_blocks
    n, block = q.shape[0], 128
    nb = math.ceil(n / block)
    block_idx = get_active_blocks(q[None], k[None], k[None], block, gamma, math.ceil(min_budget / block),
                                  math.ceil(2147483647 / block), tau, False)
    return [{(int(x) // nb, int(x) % nb) for x in block_idx[0][h].tolist()} for h in heads]


def flexprefill_ours(q, k, heads, gamma, tau, min_budget):
    res = []
    for h in heads:
        mask, _ = ours.flexprefill_mask(as_np(q[:, h, :]), as_np(k[:, h // (H // HKV), :]), gamma, tau, min_budget)
        res.append({(int(i), int(j)) for i, j in zip(*np.nonzero(mask))})
    return res


# ---- XAttention ---------------------------------------------------------------------------

def xattention_authors(path, torch, q, k, heads, stride, threshold):
    xattn_estimate = import_authors(
        "XAttention", path, lambda: importlib.import_module("xattn.src.Xattention")).xattn_estimate
    n = q.shape[0]
    qh = q[:, heads, :].permute(1, 0, 2)[None].contiguous()
    kh = k[:, [h // (H // HKV) for h in heads], :].permute(1, 0, 2)[None].contiguous()
    p = 1 << (n - 1).bit_length()
    chunk = int(max(min(max(2048, p), 128 * 1024 * 2048 // p), 2048))  # as Xattention_prefill picks it
    _, mask = xattn_estimate(qh, kh, block_size=128, stride=stride, norm=1, threshold=threshold,
                             chunk_size=chunk, use_triton=True, causal=True)
    nb = math.ceil(n / 128)
    return [{(int(i), int(j)) for i, j in zip(*np.nonzero(mask[0, i_h, :nb, :nb].cpu().numpy()))}
            for i_h in range(len(heads))]


def xattention_ours(q, k, heads, stride, threshold):
    res = []
    for h in heads:
        w = ours.xattention_scores(as_np(q[:, h, :]), as_np(k[:, h // (H // HKV), :]), stride)
        mask = ours.xattention_mask(w, threshold)
        res.append({(int(i), int(j)) for i, j in zip(*np.nonzero(mask))})
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minference")
    ap.add_argument("--flexprefill")
    ap.add_argument("--xattention")
    ap.add_argument("--lengths", default="8192,16384,32768")
    ap.add_argument("--heads", type=int, default=4, help="query heads compared per case (0, H/n, ...)")
    ap.add_argument("--inputs", default="random,peaked")
    ap.add_argument("--out", help="also write the rows as TSV")
    args = ap.parse_args()
    if not (args.minference or args.flexprefill or args.xattention):
        ap.error("give at least one of --minference, --flexprefill, --xattention")
    torch = need_torch()
    heads = [i * (H // args.heads) for i in range(args.heads)]
    rows = [("method", "inputs", "n", "head", "agreement", "what", "ours", "authors")]
    for kind in args.inputs.split(","):
        for n in (int(x) for x in args.lengths.split(",")):
            q, k = make_qk(torch, kind, n, seed=n + (7 if kind == "peaked" else 0))
            if args.minference:
                theirs = minference_authors(args.minference, torch, q, k, heads, 512, 2048)
                mine = minference_ours(q, k, heads, 512, 2048)
                for h, (a, b) in zip(heads, zip(mine, theirs)):
                    rows.append(("minference", kind, n, h, jaccard(a[0]["columns"], b[0]["columns"]), "columns",
                                 len(a[0]["columns"]), len(b[0]["columns"])))
                    rows.append(("minference", kind, n, h, jaccard(a[0]["offsets"], b[0]["offsets"]), "diagonals",
                                 len(a[0]["offsets"]), len(b[0]["offsets"])))
                    if b[1] is not None:
                        rows.append(("minference", kind, n, h, jaccard(a[1], b[1]), "tiles+extra keys", len(a[1]),
                                     len(b[1])))
            if args.flexprefill:
                theirs = flexprefill_authors(args.flexprefill, torch, q, k, heads, 0.95, 0.1, 1024)
                mine = flexprefill_ours(q, k, heads, 0.95, 0.1, 1024)
                for h, a, b in zip(heads, mine, theirs):
                    rows.append(("flexprefill", kind, n, h, jaccard(a, b), "blocks", len(a), len(b)))
            if args.xattention:
                theirs = xattention_authors(args.xattention, torch, q, k, heads, 8, 0.9)
                mine = xattention_ours(q, k, heads, 8, 0.9)
                for h, a, b in zip(heads, mine, theirs):
                    rows.append(("xattention", kind, n, h, jaccard(a, b), "blocks", len(a), len(b)))
    if STAND_INS:
        print(f"# stand-ins for missing optional modules: {', '.join(STAND_INS)}")
    for r in rows:
        print("\t".join(f"{x:.4f}" if isinstance(x, float) else str(x) for x in r))
    if args.out:
        with open(args.out, "w") as f:
            for r in rows:
                f.write("\t".join(str(x) for x in r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
