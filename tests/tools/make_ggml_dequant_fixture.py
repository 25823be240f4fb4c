#!/usr/bin/env python3
"""make_ggml_dequant_fixture.py — writes tests/data/ggml_dequant_fixture.txt: a few raw
quantisation blocks of every type in the real Gemma 3 270M GGUF (Q5_0, Q8_0, Q4_K, Q6_K,
F32) with the floats an independent implementation decodes them to, so test_ggml_dequant.c
can check the engine's decoders on real data without the 253 MB file.

The independent implementation is llama.cpp's gguf-py (PyPI `gguf`, whose gguf/quants.py
ports ggml's dequantize_row_* to numpy), used both to read the file and to decode. Nothing
of the engine is used. Run once, with the model fetched (scripts/fetch-gemma3.sh):

    python3 -m pip install --target /tmp/gguf-py gguf     # any throwaway location
    PYTHONPATH=/tmp/gguf-py /usr/bin/python3 tests/tools/make_ggml_dequant_fixture.py \
        ~/.cache/uniprefill-bench/models/gemma-3-270m-q4_k_m.gguf tests/data/ggml_dequant_fixture.txt

Format (text, one record per block): a line
    block TYPE_NAME TYPE_ID TENSOR BLOCK_INDEX N_BYTES HEX
followed by a line `values` and the block's decoded floats, printed with 9 significant
digits (enough to round-trip a float32).
"""
import sys

import numpy as np
from gguf import GGUFReader, GGMLQuantizationType
from gguf.quants import dequantize
from gguf.constants import GGML_QUANT_SIZES

# Blocks taken: the first, one in the middle and the last of each tensor named, so the
# reading covers offsets 0, odd block positions and the tensor end.
PICKS = [
    ("blk.0.attn_q.weight", "Q5_0"),
    ("blk.2.attn_v.weight", "Q5_0"),
    ("blk.0.attn_v.weight", "Q8_0"),
    ("token_embd.weight", "Q8_0"),
    ("blk.0.attn_output.weight", "Q4_K"),
    ("blk.2.ffn_down.weight", "Q4_K"),
    ("blk.0.ffn_down.weight", "Q6_K"),
    ("blk.17.ffn_down.weight", "Q6_K"),
    ("blk.0.attn_q_norm.weight", "F32"),
]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    reader = GGUFReader(sys.argv[1])
    tensors = {t.name: t for t in reader.tensors}
    lines = ["# ggml_dequant_fixture.txt — written by tests/tools/make_ggml_dequant_fixture.py from",
             "# gemma-3-270m-q4_k_m.gguf (sha256 a5fd3b62...6818) with gguf-py's gguf.quants.dequantize.",
             "# block TYPE_NAME TYPE_ID TENSOR BLOCK_INDEX N_BYTES HEX, then 'values' and the decoded floats."]
    for name, type_name in PICKS:
        t = tensors[name]
        qtype = GGMLQuantizationType[type_name]
        if t.tensor_type != qtype:
            sys.exit(f"{name} is {t.tensor_type.name}, expected {type_name}")
        block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
        raw = np.asarray(t.data).view(np.uint8).reshape(-1)
        n_blocks = raw.size // block_bytes
        for b in sorted({0, n_blocks // 2 + 1, n_blocks - 1}):
            block = raw[b * block_bytes:(b + 1) * block_bytes].copy()
            values = dequantize(block, qtype).astype(np.float32).reshape(-1)
            if values.size != block_elems:
                sys.exit(f"{name} block {b}: {values.size} values, expected {block_elems}")
            lines.append(f"block {type_name} {int(qtype)} {name} {b} {block_bytes} {block.tobytes().hex()}")
            lines.append("values " + " ".join(f"{float(v):.9g}" for v in values))
    with open(sys.argv[2], "w") as out:
        out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
