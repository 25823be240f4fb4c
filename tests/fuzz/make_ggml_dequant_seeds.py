#!/usr/bin/env python3
"""make_ggml_dequant_seeds.py — writes the seed corpus of fuzz_ggml_dequant
(tests/fuzz/corpus/ggml_dequant/): one input per real block of
tests/data/ggml_dequant_fixture.txt (Gemma 3 270M's Q5_0, Q8_0, Q4_K, Q6_K and F32 data),
in the target's format — type id byte, little-endian u16 element count, the block — plus
a truncated and an unknown-type variant. Standard library only; rewrites the directory."""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_gguf_seeds import write_corpus  # noqa: E402  (beside this file)

BLOCK_ELEMS = {"F32": 1, "Q5_0": 32, "Q8_0": 32, "Q4_K": 256, "Q6_K": 256}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    fixture = os.path.join(here, "..", "data", "ggml_dequant_fixture.txt")
    corpus = os.path.join(here, "corpus", "ggml_dequant")
    seeds = {}
    with open(fixture) as f:
        for line in f:
            if not line.startswith("block "):
                continue
            _, type_name, type_id, tensor, index, _, hexdata = line.split()
            block = bytes.fromhex(hexdata)
            n = BLOCK_ELEMS[type_name]
            if type_name == "F32":
                n = len(block) // 4
            seeds[f"{type_name}_{tensor}_{index}"] = struct.pack("<BH", int(type_id), n) + block
            seeds.setdefault(f"bad_truncated_{type_name}", struct.pack("<BH", int(type_id), n) + block[:-1])
    q4k = next(v for k, v in seeds.items() if k.startswith("Q4_K_"))
    seeds["bad_unknown_type_13"] = bytes([13]) + q4k[1:]
    write_corpus(corpus, seeds)


if __name__ == "__main__":
    main()
