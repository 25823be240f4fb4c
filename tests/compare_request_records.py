#!/usr/bin/env python3
"""compare_request_records.py — checks that two uniprefill-bench runs of the same sweep
produced the same per-request records, whatever their rank counts: same points, and per
request the same id, status, prompt, kept and output lengths, first token, KV bytes, kept
tokens per layer and number of recorded output-token times (token_offsets, which the
multi-rank gather rebuilds), and the same per-request KV means in the summary. Timing
values are ignored. Exit 0 when equal, 1 otherwise."""
import sys

import h5py
import numpy as np

FIELDS = ("id", "status", "prompt_len", "kept_len", "output_len", "first_token", "kv_bytes", "kv_held_bytes",
          "kv_dense_bytes")
# Per-request KV means of the summary: the same requests give the same means on any
# rank count (max_resident is not among them: each rank has its own pool).
SUMMARY_FIELDS = ("kv_bytes_per_request", "kv_held_bytes_per_request", "kv_dense_bytes_per_request",
                  "kv_fraction_of_dense")


def main(a_path, b_path):
    with h5py.File(a_path, "r") as a, h5py.File(b_path, "r") as b:
        pa, pb = sorted(a["points"]), sorted(b["points"])
        if pa != pb:
            print(f"different points: {pa} vs {pb}")
            return 1
        sa, sb = a["summary"][()], b["summary"][()]
        for field in SUMMARY_FIELDS:
            if not np.allclose(sa[field], sb[field], rtol=1e-12, equal_nan=True):
                print(f"summary field {field} differs: {sa[field]} vs {sb[field]}")
                return 1
        ranks = set()
        for name in pa:
            ra, rb = a["points"][name]["requests"][()], b["points"][name]["requests"][()]
            if len(ra) != len(rb):
                print(f"{name}: {len(ra)} vs {len(rb)} requests")
                return 1
            for field in FIELDS:
                if not np.array_equal(ra[field], rb[field]):
                    print(f"{name}: field {field} differs: {ra[field]} vs {rb[field]}")
                    return 1
            la = a["points"][name]["request_layer_tokens"][()]
            lb = b["points"][name]["request_layer_tokens"][()]
            if not np.array_equal(la, lb):
                print(f"{name}: kept tokens per layer differ")
                return 1
            ca = np.diff(a["points"][name]["token_offsets"][()])
            cb = np.diff(b["points"][name]["token_offsets"][()])
            if not np.array_equal(ca, cb) or not np.array_equal(cb, rb["output_len"]):
                print(f"{name}: token times per request differ: {ca} vs {cb}")
                return 1
            ranks.update(int(r) for r in rb["rank"])
        print(f"{len(pa)} points equal; second run's requests came from ranks {sorted(ranks)}")
        # Requests spread over data-parallel replicas: every rank, or with --tp a
        # tensor-parallel group whose leader records (files before --tp lack dp_size).
        replicas = b.attrs["dp_size"] if "dp_size" in b.attrs else b.attrs["world_size"]
        if replicas > 1 and len(ranks) < 2:
            print("the multi-replica run did not spread requests over its replicas")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
