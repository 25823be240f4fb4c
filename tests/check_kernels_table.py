#!/usr/bin/env python3
"""check_kernels_table.py — checks the /kernels table of a `uniprefill-bench --kernels`
run file against the schema of results/README.md: every row timed (positive, ordered
min <= median <= max), FLOPs and bytes equal to the shape formulas, rates consistent
with them, floors present exactly when the device's peaks are known, targets only on
a GPU, verdicts that follow from the measured numbers, and every case's sample within
its error limit of the CPU reference (0 on the CPU, which is the reference).

    check_kernels_table.py RUN.h5 [--cases N]

--cases N: the number of distinct cases the run was asked for (each benching rank adds
N rows). Exit 0 with an "ok" line, 1 with every problem listed. Used by
tests/kernels_mode.sh (CPU) and scripts/gpu-suite.sh (GPU). Needs h5py and numpy.
"""
import argparse
import math
import sys

import h5py
import numpy as np

KINDS = ("gemm", "attention", "decode", "selection", "sparse", "sparse_estimate", "deltanet", "moe")
ESTIMATE_LAST_Q = {"minference": 64, "flexprefill": 128}  # the estimators' last queries
XATTENTION_STRIDE = 8  # the estimate cases' stride (launcher/kernels/kernel_cases.c)
DELTA_RULE_CHUNK = 64  # rows per chunk of the chunked delta rule (engine/model/layer_cost.h)
ELEMENT_BYTES = {"cpu": 4, "cuda": 2}  # activation dtype per backend: fp32, bf16


def text(value):
    return value.decode() if isinstance(value, (bytes, np.bytes_)) else str(value)


def close(a, b, rel=1e-9):
    return math.isclose(a, b, rel_tol=rel, abs_tol=0.0)


def sliding_window(row):
    """The window of a sliding-window attention row (its shape ends in ' wW'), else 0."""
    last = text(row["shape"]).split()[-1]
    return float(last[1:]) if last.startswith("w") and last[1:].isdigit() else 0.0


def sparse_density(row):
    """(block, density) of a sparse row, from its shape's last two words 'bB pP'."""
    words = text(row["shape"]).split()
    return int(words[-2][1:]), float(words[-1][1:])


def sparse_pairs(length, block, density):
    """The (row, key) pairs a sparse case's pattern covers on average (kernel_cases.h)."""
    pairs, i = 0.0, 0
    while i * block < length:
        rows = min(block, length - i * block)
        earlier = 0.0 if i == 0 else 1.0 + density * (i - 1)
        pairs += rows * (rows + 1) / 2 + rows * block * earlier
        i += 1
    return pairs


def expected_work(row, elem, last_q):
    """(flop, bytes) of one call by the formulas of results/README.md."""
    kind = text(row["kernel"])
    m, n, k = (float(row[f]) for f in ("m", "n", "k"))
    batch, length, tokens = float(row["batch"]), float(row["seq_len"]), float(row["tokens"])
    heads, kv_heads, d = float(row["n_heads"]), float(row["n_kv_heads"]), float(row["head_dim"])
    q_dim, kv_dim = heads * d, kv_heads * d
    if kind == "gemm":
        return 2 * m * n * k, elem * (m * k + n * k + m * n)
    if kind == "attention":
        window = sliding_window(row)
        pairs = length * window - window ** 2 / 2 if 0 < window < length else length ** 2 / 2
        return batch * 4 * pairs * d * heads, batch * elem * (2 * length * q_dim + 2 * length * kv_dim)
    if kind == "decode":
        return batch * 4 * length * d * heads, batch * elem * (2 * q_dim + 2 * length * kv_dim)
    if kind == "sparse":
        block, density = sparse_density(row)
        flop = 4 * sparse_pairs(length, block, density) * d * heads
        return flop, batch * elem * (2 * length * q_dim + 2 * length * kv_dim)
    if kind == "sparse_estimate":  # the method is the shape's last word (kernel_cases.h)
        method = text(row["shape"]).split()[-1]
        if method == "xattention":
            return length * length * d * heads / XATTENTION_STRIDE, elem * length * (q_dim + kv_dim)
        lq = min(ESTIMATE_LAST_Q[method], length)
        nbytes = elem * (length * kv_dim + lq * q_dim) if method == "minference" else elem * length * (q_dim + kv_dim)
        return 2 * lq * length * d * heads, nbytes
    if kind == "moe":  # m routed rows, n an expert's intermediate, k hidden; heads: experts
        return 6 * m * n * k, elem * (3 * heads * n * k + 2 * m * k)
    if kind == "deltanet":  # heads: value heads, kv heads: key heads
        flop = tokens * heads * (6 * d * d + 5 * DELTA_RULE_CHUNK * d)
        return flop, tokens * (elem * 2 * (kv_heads + heads) * d + 8 * heads) + 8 * heads * d * d
    return tokens * 2 * d * heads * last_q, tokens * 2 * elem * kv_dim  # one score pass


def expected_error_limit(row, block):
    """The error a case accepts (launcher/kernels/kernel_cases.h)."""
    if text(row["kernel"]) == "selection":
        return 2.0 * block / float(row["seq_len"])  # one block swapped at the boundary per sequence
    return 2e-2  # normalised error of bf16 outputs against fp32


def check_row(row, elem, last_q, block, on_gpu, problems):
    label = text(row["label"])

    def expect(cond, message):
        if not cond:
            problems.append(f"{label} (rank {row['rank']}): {message}")

    kind = text(row["kernel"])
    expect(kind in KINDS, f"kernel '{kind}' is not one of {KINDS}")
    times = [float(row[f]) for f in ("min_ms", "median_ms", "max_ms")]
    expect(all(math.isfinite(t) and t > 0 for t in times), f"times {times} not all positive")
    expect(times[0] <= times[1] <= times[2], f"times {times} not ordered min <= median <= max")
    expect(row["repeats"] >= 1 and row["warmup"] >= 0, f"repeats {row['repeats']}, warmup {row['warmup']}")
    flop, nbytes = expected_work(row, elem, last_q)
    expect(close(float(row["flop"]), flop), f"flop {row['flop']} != shape formula {flop}")
    expect(close(float(row["bytes"]), nbytes), f"bytes {row['bytes']} != shape formula {nbytes}")
    seconds = times[1] * 1e-3
    expect(close(float(row["tflops_per_s"]), flop / seconds / 1e12), "tflops_per_s is not flop / median")
    expect(close(float(row["gb_per_s"]), nbytes / seconds / 1e9), "gb_per_s is not bytes / median")
    if kind == "gemm":
        expect(row["tokens"] == row["m"] and row["head_dim"] == 0, "a GEMM's tokens are its m, no heads")
    elif kind == "moe":
        expect(row["m"] == row["tokens"] * row["n_kv_heads"] and row["head_dim"] == 0,
               "the routed rows are tokens x top-k, no heads")
    else:
        expect(row["m"] == 0 and row["head_dim"] > 0, "attention-type rows have heads and no GEMM dims")
    peaks_known = math.isfinite(float(row["peak_tflops_per_s"]))
    expect(peaks_known == math.isfinite(float(row["floor_ms"])), "floor present iff the device's peaks are known")
    if peaks_known:
        floor = max(flop / (row["peak_tflops_per_s"] * 1e12), nbytes / (row["peak_gb_per_s"] * 1e9)) * 1e3
        expect(close(float(row["floor_ms"]), floor), f"floor_ms {row['floor_ms']} != {floor}")
        expect(close(float(row["floor_fraction"]), floor / times[1]), "floor_fraction is not floor / median")
    kept = float(row["kept_fraction"])
    if kind == "selection":
        expect(0.0 < kept <= 1.0, f"kept_fraction {kept} outside (0, 1]")
    else:
        expect(math.isnan(kept), "kept_fraction set on a case that selects nothing")
    target_tflops, target_ms = float(row["target_tflops_per_s"]), float(row["target_ms"])
    if not on_gpu:
        expect(math.isnan(target_tflops) and math.isnan(target_ms) and row["target_met"] == -1,
               "a target on the CPU")
    if math.isfinite(target_ms):
        expect(row["target_met"] == int(times[1] <= target_ms), "target_met disagrees with the median")
    elif math.isfinite(target_tflops):
        expect(row["target_met"] == int(row["tflops_per_s"] >= target_tflops), "target_met disagrees with the rate")
    else:
        expect(row["target_met"] == -1 and text(row["target"]) == "", "a verdict without a target")
    expect((row["flush_bytes"] > 0) == on_gpu, f"flush_bytes {row['flush_bytes']} on the {'GPU' if on_gpu else 'CPU'}")
    error, limit = float(row["error"]), float(row["error_limit"])
    expect(close(limit, expected_error_limit(row, block)), f"error_limit {limit} != {expected_error_limit(row, block)}")
    if on_gpu and kind == "sparse_estimate" and math.isnan(error):
        return  # timed unchecked: its CPU reference would take minutes (kernel_cases.h)
    expect(math.isfinite(error) and error >= 0.0, f"error {error} is not a finite non-negative number")
    if on_gpu:
        expect(error <= limit, f"error {error:.3g} above its limit {limit:.3g}: the backend disagrees with the CPU")
    else:
        expect(error == 0.0, f"error {error} on the CPU backend, which is the reference")


def check(path, n_cases):
    problems = []
    with h5py.File(path, "r") as f:
        if text(f.attrs.get("tool", "")) != "uniprefill-bench":
            return [f"{path} is not a uniprefill-bench run file"]
        if "kernels" not in f:
            return [f"{path} has no /kernels table"]
        backend = text(f.attrs["backend"])
        world = int(f.attrs["world_size"])
        table = f["kernels"]
        rows = table[...]
        last_q = int(table.attrs["last_q"])
        block = int(table.attrs["block"])
    elem = ELEMENT_BYTES.get(backend)
    if elem is None:
        return [f"unknown backend '{backend}'"]
    if len(rows) == 0:
        return ["/kernels has no rows"]
    if list(rows["index"]) != list(range(len(rows))):
        problems.append(f"index column is not 0..{len(rows) - 1}: {list(rows['index'])}")
    ranks = sorted(set(int(r) for r in rows["rank"]))
    if not all(0 <= r < world for r in ranks):
        problems.append(f"ranks {ranks} outside 0..{world - 1}")
    for rank in ranks:
        labels = [text(r["label"]) for r in rows if r["rank"] == rank]
        if len(set(labels)) != len(labels):
            problems.append(f"rank {rank} has a label twice: {labels}")
        if n_cases is not None and len(labels) != n_cases:
            problems.append(f"rank {rank} has {len(labels)} cases, expected {n_cases}")
    for field in ("error", "error_limit"):
        if field not in rows.dtype.names:
            return [f"/kernels has no {field} column (written before the CPU check existed?)"]
    for row in rows:
        check_row(row, elem, last_q, block, backend == "cuda", problems)
    if not problems:
        print(f"ok: {path}: {len(rows)} kernel rows from rank(s) {ranks} on {backend}")
    return problems


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run")
    parser.add_argument("--cases", type=int, default=None, help="distinct cases per benching rank")
    args = parser.parse_args(argv[1:])
    problems = check(args.run, args.cases)
    for p in problems:
        print(f"FAIL: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
