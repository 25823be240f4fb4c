#!/usr/bin/env python3
"""sparse_authors_compare.py — runs the authors' released estimation code of MInference,
FlexPrefill and XAttention on the same q/k as our reference and reports, per method, how
well the selected blocks agree (issue 13, "Against the authors"). For a lent GPU with
PyTorch and Triton; nothing of the authors' code is copied here: the script loads it
from checkouts given on the command line and only calls it.

    sparse_authors_compare.py --minference PATH --flexprefill PATH --xattention PATH \\
        [--minference-csrc DIR] [--lengths 8192,16384,32768] [--heads 4] \\
        [--inputs random,peaked] [--out FILE.tsv] [--device cuda|cpu]

--device cpu runs it without a GPU: PyTorch on the CPU, the authors' Triton kernels in
Triton's interpreter (fp32 copies of the bf16 inputs, which the interpreter mishandles;
XAttention's kernel outputs rounded to bf16 as a GPU stores them), MInference's index
conversion kernel compiled as host C++ from the checkout's csrc/ (its threads share
nothing, so running each in turn is the kernel). Minutes at 8K, about half an hour at 32K.

PATH is a checkout of microsoft/MInference, ByteDance-Seed/FlexPrefill and
mit-han-lab/x-attention (any subset; a method without a path is skipped). A method that
cannot be loaded or fails is reported with its reason as an "error" row and the others
still run; the exit status is 1 if any method failed.
- MInference: only minference/modules/minference_forward.py is loaded, by file path (the
  package's __init__ pulls in serving and quantisation modules that need vLLM, tilelang,
  KV-cache kernels); its parent packages are bare and every sibling module it imports at
  load time is an inert stand-in. Its minference_prefill_kernel then runs per head with
  the sparse kernel replaced by a recorder, so the authors' own estimate (last-64 scores,
  forced entries, top-k) runs and its column and diagonal choices are captured. The
  index conversion (csrc/vertical_slash_index.cu, compiled code) is compared as well
  when it can be had: a compiled minference/cuda*.so in the checkout, else csrc/ built
  with torch.utils.cpp_extension (PATH/csrc or --minference-csrc), else SGLang's or
  vLLM's convert_vertical_slash_indexes, else the kernel's source compiled for the host
  (g++); otherwise the rows say why not.
- FlexPrefill: flex_prefill.ops.flex_prefill_attention.get_active_blocks (pure
  PyTorch + Triton), with GQA as the authors call it.
- XAttention: xattn.src.Xattention.xattn_estimate (Triton path; needs a GPU whose name
  contains "100", as the authors' code checks), K repeated to the query heads as the
  authors' callers do, chunk size as Xattention_prefill picks it. Reported twice: against
  our selection (which reproduces the authors' first-chunk walk, kernels/
  sparse_attention_ops.h) and against BASELINES.md 3.2's walk without it, the size of
  that quirk (docs/kernels/sparse_attention.md, "Against the authors' estimators").
Optional modules the FlexPrefill and XAttention packages import at load time but the
estimates never call (the compiled Block-Sparse-Attention package, vLLM, ...) are
replaced by inert stand-ins when missing; the run prints which.
Ours: tests/reference/sparse_estimates.py, the NumPy port whose selections the C CPU
reference matches exactly on the committed fixtures (tests/test_sparse_fixtures.c).

Agreement per (method, input, length, head): the Jaccard index of the two block sets
(MInference: of the column sets and of the diagonal sets; with the conversion, of the
computed 64 x 64 tiles plus extra keys), printed as a table and optionally written as TSV.
Settings: MInference v=512 s=2048 (--minference-sizes); FlexPrefill gamma 0.95 tau 0.1 min_budget 1024;
XAttention stride 8 threshold 0.9 — the suite's defaults.
"""
import argparse
import glob
import importlib
import importlib.machinery
import importlib.util
import math
import os
import sys
import traceback
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import sparse_estimates as ours  # noqa: E402

H, HKV, D = 32, 8, 128  # Llama-3.1-8B attention shape


DEVICE = "cuda"  # --device


def need_torch():
    if DEVICE == "cpu":
        # before triton is first imported: its kernels then run in its NumPy interpreter
        os.environ["TRITON_INTERPRET"] = "1"
    try:
        import torch
    except ImportError:
        sys.exit("sparse_authors_compare.py needs PyTorch (and Triton)")
    if DEVICE == "cuda" and not torch.cuda.is_available():
        sys.exit("sparse_authors_compare.py: no CUDA GPU here (--device cpu runs the authors' Triton kernels "
                 "in Triton's interpreter instead)")
    if DEVICE == "cpu":
        send_cuda_to_cpu(torch)
    return torch


def send_cuda_to_cpu(torch):
    """--device cpu: the authors' code names the device "cuda" outright (module-level
    tensors, .to("cuda"), XAttention's check for a GPU name containing "100"). Each
    device argument "cuda" becomes "cpu", and the device queries answer as an H100 would,
    so the same code runs on the CPU: PyTorch ops natively, Triton kernels interpreted."""
    import functools

    def to_cpu(value):
        if isinstance(value, str) and value.startswith("cuda"):
            return "cpu"
        if isinstance(value, torch.device) and value.type == "cuda":
            return torch.device("cpu")
        return value

    def wrap(fn):
        @functools.wraps(fn)
        def call(*args, **kwargs):
            if "device" in kwargs:
                kwargs["device"] = to_cpu(kwargs["device"])
            return fn(*[to_cpu(a) for a in args], **kwargs)
        return call

    for name in ("arange", "full", "zeros", "ones", "empty", "tensor", "randn", "randint", "linspace",
                 "zeros_like", "ones_like", "empty_like", "full_like"):
        setattr(torch, name, wrap(getattr(torch, name)))
    torch.Tensor.to = wrap(torch.Tensor.to)
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.cuda.is_available = lambda: True
    torch.cuda.current_device = lambda: 0
    torch.cuda.get_device_name = lambda *a: "NVIDIA H100 (Triton interpreter on the CPU)"
    torch.cuda.get_device_capability = lambda *a: (9, 0)
    torch.cuda.get_device_properties = lambda *a: types.SimpleNamespace(
        name="NVIDIA H100 (Triton interpreter on the CPU)", major=9, minor=0, multi_processor_count=132)
    torch.cuda.synchronize = lambda *a: None


def make_qk(torch, kind, n, seed):
    """bf16 q [n, H, D] and k [n, HKV, D]; 'peaked' adds key columns every query
    attends to and a local (diagonal) bias, so selections are not near-uniform."""
    g = torch.Generator(device=DEVICE).manual_seed(seed)
    q = torch.randn(n, H, D, device=DEVICE, generator=g)
    k = torch.randn(n, HKV, D, device=DEVICE, generator=g)
    if kind == "peaked":
        direction = torch.randn(D, device=DEVICE, generator=g)
        direction /= direction.norm()
        q += 2.0 * direction
        cols = torch.randint(0, n, (16,), device=DEVICE, generator=g)
        k[cols] += 6.0 * direction
        # a slowly varying component makes nearby tokens more alike: diagonal mass
        pos = torch.arange(n, device=DEVICE, dtype=torch.float32)[:, None]
        freq = torch.linspace(1e-3, 2e-2, D, device=DEVICE)[None, :]
        q[:, :, :] += 1.5 * torch.sin(pos * freq)[:, None, :]
        k[:, :, :] += 1.5 * torch.sin(pos * freq)[:, None, :]
    return q.to(torch.bfloat16), k.to(torch.bfloat16)


def jaccard(a, b):
    a, b = set(a), set(b)
    return 1.0 if not a and not b else len(a & b) / len(a | b)


def as_np(t):
    return t.float().cpu().numpy().astype(np.float64)


# ---- importing the authors' code --------------------------------------------------------

class MethodFailed(Exception):
    """One method cannot be compared: the message says why; the others still run."""


# Modules this comparison needs for real; any other module the authors' packages import at
# load time (KV-cache quantisation, serving engines, decode kernels: code the estimates never
# call) is replaced by an inert stand-in when it is missing here.
ESSENTIAL_MODULES = ("torch", "triton", "numpy", "transformers", "einops")
STAND_INS = []


class _Inert:
    """Whatever a module-level statement asks of a missing optional dependency; false in a
    test, so that "is X available" checks take their fallback."""

    def __call__(self, *args, **kwargs):
        return self

    def __getattr__(self, name):
        return self

    def __bool__(self):
        return False


def _inert_module(name):
    module = types.ModuleType(name)
    module.__path__ = []  # a package with nothing under it: its submodules are stood in too
    module.__getattr__ = lambda attr: _Inert()
    module.__version__ = "0"
    # inspect.getmodule (which torch.library calls while the authors' modules load) reads
    # every module's __file__: an _Inert one is false and reads as a built-in module
    module.__file__ = f"<stand-in for {name}>"
    module.__all__ = []  # `from X import *` asks for it
    module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)  # find_spec() asks for it
    return module


def _stand_in(name):
    sys.modules[name] = _inert_module(name)
    STAND_INS.append(name)


def import_authors(what, path, load):
    """load() with stand-ins for missing optional modules; raises MethodFailed naming the
    first missing essential module (or any other failure)."""
    if not os.path.isdir(path):
        raise MethodFailed(f"{what}: {path} is not a directory")
    if path not in sys.path:
        sys.path.insert(0, path)
    for _ in range(32):
        try:
            return load()
        except ModuleNotFoundError as err:
            missing = err.name or ""
            if not missing or missing.split(".")[0] in ESSENTIAL_MODULES or missing in sys.modules:
                raise MethodFailed(f"cannot import {what} from {path}: {err}") from err
            _stand_in(missing)
        except MethodFailed:
            raise
        except Exception as err:  # noqa: BLE001 - say why the import failed
            raise MethodFailed(f"cannot import {what} from {path}: {type(err).__name__}: {err}") from err
    raise MethodFailed(f"cannot import {what} from {path}: too many missing modules ({', '.join(STAND_INS)})")


def load_file_alone(what, module_name, file_path, bare_packages, star_exports):
    """Execute one source file as module_name with its parent packages bare (their
    __init__ not run, nothing found under them) so that every module it imports that is
    missing here (its siblings included) becomes an inert stand-in; star_exports are
    the names a stand-in hands to a `from X import *`. sys.modules is restored after, so
    no stand-in reaches the other methods. Only torch, triton and numpy must be real."""
    if not os.path.isfile(file_path):
        raise MethodFailed(f"{what}: no {file_path}")
    saved, standing_in = {}, []

    def put(name, module):
        saved.setdefault(name, sys.modules.get(name))
        sys.modules[name] = module

    try:
        for name in bare_packages:
            put(name, _inert_module(name))
        for _ in range(48):
            spec = importlib.util.spec_from_file_location(module_name, file_path)
            module = importlib.util.module_from_spec(spec)
            put(module_name, module)
            try:
                spec.loader.exec_module(module)
                break
            except ImportError as err:  # a module missing, or a name its real module lacks here
                missing = err.name or ""
                if not missing or missing.split(".")[0] in ("torch", "triton", "numpy") or missing in standing_in:
                    raise MethodFailed(f"cannot load {what} ({file_path}): {err}") from err
                stand_in = _inert_module(missing)
                for key, value in star_exports.items():
                    setattr(stand_in, key, value)
                stand_in.__all__ = list(star_exports)
                put(missing, stand_in)
                standing_in.append(missing)
            except Exception as err:  # noqa: BLE001 - say why the load failed
                raise MethodFailed(f"cannot load {what} ({file_path}): {type(err).__name__}: {err}") from err
        else:
            raise MethodFailed(f"cannot load {what}: too many missing modules ({', '.join(standing_in)})")
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
    STAND_INS.extend(f"{name} (for {what})" for name in standing_in)
    return module


# ---- MInference -------------------------------------------------------------------------

MINFERENCE = {}  # the loaded estimate module and conversion, once per run


def minference_load(path, csrc, torch):
    if "module" not in MINFERENCE:
        import torch.nn as nn
        import torch.nn.functional as F
        # minference_forward.py has torch, math, nn and F only through `from .snapkv import *`
        # (modules/snapkv.py L6-10): the stand-ins hand them on.
        MINFERENCE["module"] = load_file_alone(
            "MInference's estimate", "minference.modules.minference_forward",
            os.path.join(path, "minference", "modules", "minference_forward.py"),
            ("minference", "minference.modules"), {"torch": torch, "math": math, "nn": nn, "F": F})
        MINFERENCE["convert"], MINFERENCE["convert_from"] = minference_conversion(path, csrc, torch)
        print(f"# MInference index conversion: {MINFERENCE['convert_from']}", file=sys.stderr)
    return MINFERENCE["module"], MINFERENCE["convert"], MINFERENCE["convert_from"]


def minference_conversion(path, csrc, torch):
    """The authors' convert_vertical_slash_indexes as f(seqlens, v_idx, s_idx, n) ->
    (block_count, block_offset, column_count, column_index), and where it came from; None
    and why not when there is none."""
    if DEVICE == "cpu":
        return minference_conversion_on_host(path, csrc, [])
    why = []
    for so in sorted(glob.glob(os.path.join(path, "minference", "cuda*.so"))):
        try:
            spec = importlib.util.spec_from_file_location("minference.cuda", so)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return (lambda sl, vi, si, n: module.convert_vertical_slash_indexes(sl, vi, si, n, 64, 64)), so
        except Exception as err:  # noqa: BLE001 - try the next source
            why.append(f"{so}: {err}")
    csrc = csrc or os.path.join(path, "csrc")
    sources = [os.path.join(csrc, "kernels.cpp"), os.path.join(csrc, "vertical_slash_index.cu")]
    if all(os.path.isfile(x) for x in sources):
        try:
            from torch.utils.cpp_extension import load
            module = load(name="minference_vertical_slash_index", sources=sources, verbose=False)
            return ((lambda sl, vi, si, n: module.convert_vertical_slash_indexes(sl, vi, si, n, 64, 64)),
                    f"built from {csrc}")
        except Exception as err:  # noqa: BLE001 - try the next source
            why.append(f"building {csrc}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
    else:
        why.append(f"no {sources[0]} / {sources[1]}")
    for module_name in ("sgl_kernel.sparse_flash_attn", "vllm._custom_ops"):
        try:
            fn = importlib.import_module(module_name).convert_vertical_slash_indexes
            return (lambda sl, vi, si, n: fn(sl, sl, vi, si, n, 64, 64, causal=True)), module_name
        except Exception as err:  # noqa: BLE001 - optional
            why.append(f"{module_name}: {type(err).__name__}")
    return minference_conversion_on_host(path, csrc, why)


# The kernel's threads share nothing (no shared memory, no barrier): each walks one
# 64-row block alone, so running every (block, thread) in turn on the host is the kernel.
HOST_PRELUDE = """
#include <algorithm>
struct host_dim3 { int x, y, z; };
static host_dim3 blockIdx, threadIdx, blockDim;
using std::max;
using std::min;
#define __device__ static
#define __global__ static
"""
HOST_DRIVER = """
extern "C" void convert_on_host(const int *seqlens, const int *v, const int *s, int *block_count,
                                int *block_offset, int *column_count, int *column_index, int batch,
                                int heads, int rows, int nnz_v, int nnz_s) {
  blockDim = {64, 1, 1};  /* as convert_vertical_slash_indexes_64x64 launches it */
  for (int z = 0; z < (rows + 63) / 64; ++z)
    for (int y = 0; y < batch; ++y)
      for (int x = 0; x < heads; ++x)
        for (int t = 0; t < 64; ++t) {
          blockIdx = {x, y, z};
          threadIdx = {t, 0, 0};
          convert_vertical_slash_indexes_kernel(seqlens, v, s, block_count, block_offset, column_count,
                                                column_index, heads, rows, 64, 64, nnz_v, nnz_s);
        }
}
"""


def minference_conversion_on_host(path, csrc, why):
    """The authors' convert_vertical_slash_indexes_kernel, taken from their csrc/ at run
    time and compiled as host C++ (g++), every thread of its 64x64 launch run in turn."""
    import ctypes
    import subprocess
    import tempfile
    import torch
    source = os.path.join(csrc or os.path.join(path, "csrc"), "vertical_slash_index.cu")
    try:
        text = open(source).read()
        kernel = text[text.index("__device__ void save_blocks"):text.index("void convert_vertical_slash_indexes_64x64")]
        work = tempfile.mkdtemp(prefix="minference_host_")
        cpp, lib = os.path.join(work, "convert.cpp"), os.path.join(work, "convert.so")
        with open(cpp, "w") as f:
            f.write(HOST_PRELUDE + kernel + HOST_DRIVER)
        subprocess.run(["g++", "-O2", "-shared", "-fPIC", "-o", lib, cpp], check=True, capture_output=True, text=True)
        host = ctypes.CDLL(lib)
    except (OSError, ValueError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", "") or str(err)
        why.append(f"host build of {source}: {type(err).__name__}: {detail.splitlines()[0] if detail else ''}")
        return None, "none (" + "; ".join(why) + ")"

    def convert(seqlens, vi, si, n):
        sl, v, s = (x.to("cpu", torch.int32).contiguous() for x in (seqlens, vi, si))
        batch, heads, nnz_v = v.shape
        nnz_s, rows = s.shape[2], (n + 63) // 64
        out = [torch.zeros(batch, heads, rows, dtype=torch.int32), torch.zeros(batch, heads, rows, nnz_s, dtype=torch.int32),
               torch.zeros(batch, heads, rows, dtype=torch.int32), torch.zeros(batch, heads, rows, nnz_v, dtype=torch.int32)]
        ptr = lambda t: ctypes.c_void_p(t.data_ptr())
        host.convert_on_host(ptr(sl), ptr(v), ptr(s), *(ptr(t) for t in out), batch, heads, rows, nnz_v, nnz_s)
        return out

    return convert, f"{source}, compiled for the host (each CUDA thread run in turn)"


def minference_authors(path, csrc, torch, q, k, heads, v, s):
    mf, convert, _ = minference_load(path, csrc, torch)
    captured = {}

    def recorder(q_, k_, v_, vertical_topk, slash):
        captured["columns"] = sorted(vertical_topk.reshape(-1).tolist())
        captured["offsets"] = sorted(slash.reshape(-1).tolist(), reverse=True)
        return torch.zeros_like(q_)

    mf.vertical_slash_sparse_attention = recorder
    # the head's entry is looked up as best_pattern[layer][str(head)] (minference_forward.py
    # L620-621); a missing one silently falls back to (1000, 6096)
    config = {"best_pattern": {0: {"0": ("vertical_and_slash", v, s, 1)}}}
    out = []
    n = q.shape[0]
    for h in heads:
        captured.clear()
        qh = q[:, h, :][None, None].contiguous()
        kh = k[:, h // (H // HKV), :][None, None].contiguous()
        mf.minference_prefill_kernel(qh, kh, kh, 0, 0, config)
        if "columns" not in captured:
            raise MethodFailed("MInference's minference_prefill_kernel never reached the vertical-slash kernel")
        tiles = None
        if convert is not None:
            seqlens = torch.tensor([n], dtype=torch.int32, device="cuda")
            vi = torch.tensor(captured["columns"], dtype=torch.int32, device="cuda")[None, None].contiguous()
            si = torch.tensor(captured["offsets"], dtype=torch.int32, device="cuda")[None, None].contiguous()
            cnt, off, ccnt, cidx = (x.cpu() for x in convert(seqlens, vi, si, n))
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

def interpreter_inputs(q, k):
    """On --device cpu the authors' Triton kernels get fp32 copies of the bf16 inputs (the
    same values): Triton 3.9's interpreter computes wrongly from bf16 tensors (XAttention's
    estimate at 2K, random inputs: 67 blocks from bf16, 136 from the same values in fp32
    or fp16 and from its PyTorch path, and 136 ours). Their intermediate results are then
    fp32 where a GPU rounds them to bf16: near-ties may fall the other way."""
    return (q.float(), k.float()) if DEVICE == "cpu" else (q, k)


def flexprefill_authors(path, torch, q, k, heads, gamma, tau, min_budget):
    get_active_blocks = import_authors(
        "FlexPrefill", path,
        lambda: importlib.import_module("flex_prefill.ops.flex_prefill_attention")).get_active_blocks
    n, block = q.shape[0], 128
    nb = math.ceil(n / block)
    q, k = interpreter_inputs(q, k)
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
    module = import_authors("XAttention", path, lambda: importlib.import_module("xattn.src.Xattention"))
    if DEVICE == "cpu" and not getattr(module, "_bf16_outputs", False):
        # fp32 inputs for the interpreter (interpreter_inputs); each kernel's output rounded
        # to bf16, as it is stored on a GPU from bf16 inputs (its accumulators are fp32 there too)
        for name in ("flat_group_gemm_fuse_reshape", "softmax_fuse_block_sum"):
            kernel = getattr(module, name)
            setattr(module, name, lambda *a, _k=kernel, **kw: _k(*a, **kw).to(torch.bfloat16).float())
        module._bf16_outputs = True
    xattn_estimate = module.xattn_estimate
    n = q.shape[0]
    q, k = interpreter_inputs(q, k)
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
    """Per head: our selection (the authors' first-chunk walk included) and BASELINES.md
    3.2's walk without it."""
    res = []
    n = q.shape[0]
    for h in heads:
        w = ours.xattention_scores(as_np(q[:, h, :]), as_np(k[:, h // (H // HKV), :]), stride)
        faithful = ours.xattention_mask(w, threshold, ours.xattention_first_chunk_blocks(n))
        plain = ours.xattention_mask(w, threshold, 0)
        res.append(tuple({(int(i), int(j)) for i, j in zip(*np.nonzero(m))} for m in (faithful, plain)))
    return res


def compare_method(name, failures, rows, kind, n, run):
    """run() -> rows of this method. A method that cannot be loaded (MethodFailed) gets one
    error row and is not tried again; any other failure gets an error row for this case
    and the next case tries again. The other methods go on either way."""
    if name in failures and failures[name][0]:
        return
    try:
        rows.extend(run())
        return
    except MethodFailed as err:
        failures[name] = (True, str(err))
    except Exception as err:  # noqa: BLE001 - report, go on
        traceback.print_exc()
        failures[name] = (False, f"{kind} n={n}: {type(err).__name__}: {err}")
    print(f"# {name}: {failures[name][1]}", file=sys.stderr)
    rows.append((name, kind, n, "-", float("nan"), "error: " + failures[name][1], "-", "-"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minference")
    ap.add_argument("--minference-csrc", help="folder of MInference's csrc/ to build the index conversion from "
                                               "(default: MINFERENCE/csrc)")
    ap.add_argument("--flexprefill")
    ap.add_argument("--xattention")
    ap.add_argument("--lengths", default="8192,16384,32768")
    ap.add_argument("--heads", type=int, default=4, help="query heads compared per case (0, H/n, ...)")
    ap.add_argument("--inputs", default="random,peaked")
    ap.add_argument("--out", help="also write the rows as TSV")
    ap.add_argument("--minference-sizes", default="512,2048", metavar="V,S",
                    help="MInference's columns and diagonals per head (default the authors' Llama-3.1-8B 512,2048; "
                         "smaller ones make sparser patterns for the index conversion)")
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                    help="cpu: the authors' code on the CPU, its Triton kernels in Triton's interpreter (slow; "
                         "the random inputs differ from a GPU run's, drawn by another generator)")
    args = ap.parse_args()
    global DEVICE
    DEVICE = args.device
    if not (args.minference or args.flexprefill or args.xattention):
        ap.error("give at least one of --minference, --flexprefill, --xattention")
    try:
        lengths = [int(x) for x in args.lengths.split(",")]
    except ValueError:
        ap.error(f"--lengths: '{args.lengths}' is not a comma-separated list of token counts")
    if any(x < 128 for x in lengths):
        ap.error("--lengths: each length must be at least 128 tokens")
    if not 1 <= args.heads <= H:
        ap.error(f"--heads: {args.heads} is not in 1..{H}")
    try:
        mi_v, mi_s = (int(x) for x in args.minference_sizes.split(","))
    except ValueError:
        ap.error(f"--minference-sizes: '{args.minference_sizes}' is not V,S (two counts)")
    if mi_v < 30 or mi_s < 100:
        ap.error("--minference-sizes: MInference forces 30 columns and 100 diagonals; V >= 30 and S >= 100")
    kinds = args.inputs.split(",")
    if any(x not in ("random", "peaked") for x in kinds):
        ap.error(f"--inputs: '{args.inputs}' is not a list of random, peaked")
    torch = need_torch()
    heads = [i * (H // args.heads) for i in range(args.heads)]
    rows = [("method", "inputs", "n", "head", "agreement", "what", "ours", "authors")]
    failures = {}
    for kind in kinds:
        for n in lengths:
            q, k = make_qk(torch, kind, n, seed=n + (7 if kind == "peaked" else 0))

            def run_minference():
                theirs = minference_authors(args.minference, args.minference_csrc, torch, q, k, heads, mi_v, mi_s)
                mine = minference_ours(q, k, heads, mi_v, mi_s)
                out = []
                for h, (a, b) in zip(heads, zip(mine, theirs)):
                    out.append(("minference", kind, n, h, jaccard(a[0]["columns"], b[0]["columns"]), "columns",
                                len(a[0]["columns"]), len(b[0]["columns"])))
                    out.append(("minference", kind, n, h, jaccard(a[0]["offsets"], b[0]["offsets"]), "diagonals",
                                len(a[0]["offsets"]), len(b[0]["offsets"])))
                    if b[1] is not None:
                        out.append(("minference", kind, n, h, jaccard(a[1], b[1]), "tiles+extra keys", len(a[1]),
                                    len(b[1])))
                return out

            def run_flexprefill():
                theirs = flexprefill_authors(args.flexprefill, torch, q, k, heads, 0.95, 0.1, 1024)
                mine = flexprefill_ours(q, k, heads, 0.95, 0.1, 1024)
                return [("flexprefill", kind, n, h, jaccard(a, b), "blocks", len(a), len(b))
                        for h, a, b in zip(heads, mine, theirs)]

            def run_xattention():
                theirs = xattention_authors(args.xattention, torch, q, k, heads, 8, 0.9)
                mine = xattention_ours(q, k, heads, 8, 0.9)
                out = []
                for h, (faithful, plain), b in zip(heads, mine, theirs):
                    out.append(("xattention", kind, n, h, jaccard(faithful, b), "blocks", len(faithful), len(b)))
                    out.append(("xattention", kind, n, h, jaccard(plain, b), "blocks, BASELINES 3.2 walk "
                                "without the first-chunk rule", len(plain), len(b)))
                return out

            if args.minference:
                compare_method("minference", failures, rows, kind, n, run_minference)
            if args.flexprefill:
                compare_method("flexprefill", failures, rows, kind, n, run_flexprefill)
            if args.xattention:
                compare_method("xattention", failures, rows, kind, n, run_xattention)
    if STAND_INS:
        print(f"# stand-ins for missing optional modules: {', '.join(STAND_INS)}")
    if MINFERENCE:
        print(f"# MInference index conversion: {MINFERENCE.get('convert_from')}")
    for r in rows:
        print("\t".join(f"{x:.4f}" if isinstance(x, float) else str(x) for x in r))
    if args.out:
        with open(args.out, "w") as f:
            for r in rows:
                f.write("\t".join(str(x) for x in r) + "\n")
    for name, (stopped, why) in failures.items():
        print(f"# {name}: {'not compared' if stopped else 'failed (last failure)'}: {why}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
