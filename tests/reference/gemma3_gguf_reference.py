#!/usr/bin/env python3
"""gemma3_gguf_reference.py — writes tests/data/gemma3_270m/reference.txt, the fixture the
engine's Gemma 3 forward on the real GGUF checkpoint is checked against
(tests/tools/gemma3_fixture_check.c). It is run once by hand, not by the tests.

Independence: the tensors are read and dequantised by llama.cpp's gguf-py (the PyPI
`gguf` package), not by the project's C dequantisers, and the float64 forward is the one
of tests/reference/gemma3_hf_reference.py (written from ../shared/HYBRIDS.md B.3), imported
here rather than written again. This file only maps the GGUF onto that forward: GGUF
names onto Hugging Face names, norm weights minus 1 (the GGUF converter stores 1 + w,
the forward applies 1 + w), q/k rows as stored (Gemma's GGUF does not permute them), tied
embeddings, the window and layer pattern (every 6th layer global, rope base from
gemma3.rope.freq_base; sliding layers 10,000, which GGUF does not record), and
query_pre_attn_scalar = head_dim (GGUF has no such key; llama.cpp uses head_dim too).

Per prompt the fixture pins the token ids (from the engine's tokenizer:
`build/tests/gemma3_fixture_check tokenize MODEL TEXT_FILE`), the reference's top-20
logits with ids, the logsumexp and RMS of all logits, and the greedy continuation (each
step reruns the whole forward: slow but no second code path).

Environment (numpy 1.24 of the system Python, gguf-py without its dependencies):
    pip install --no-deps --target /tmp/gguf-py gguf
    PYTHONPATH=/tmp/gguf-py /usr/bin/python3 tests/reference/gemma3_gguf_reference.py \\
        ~/.cache/uniprefill-bench/models/gemma-3-270m-q4_k_m.gguf \\
        --prompt capital:20:<ids> ... --out tests/data/gemma3_270m/reference.txt
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gemma3_hf_reference as hf  # noqa: E402  (the shared float64 forward)

try:
    import gguf
except ImportError:
    sys.exit("gemma3_gguf_reference.py needs the PyPI gguf package (see the docstring)")

TOP_K = 20
LAYER_NAMES = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "attn_output": "self_attn.o_proj",
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "post_ffw_norm": "post_feedforward_layernorm",
}


def field(reader, key):
    f = reader.fields.get(key)
    if f is None:
        sys.exit(f"GGUF key {key} is missing")
    return f.contents()


def hf_name(gguf_name):
    if gguf_name == "token_embd.weight":
        return "model.embed_tokens.weight"
    if gguf_name == "output_norm.weight":
        return "model.norm.weight"
    blk, layer, kind, suffix = gguf_name.split(".")
    if blk != "blk" or kind not in LAYER_NAMES:
        sys.exit(f"unexpected tensor {gguf_name}")
    return f"model.layers.{layer}.{LAYER_NAMES[kind]}.{suffix}"


def load(path):
    reader = gguf.GGUFReader(path)
    if field(reader, "general.architecture") != "gemma3":
        sys.exit(f"{path} is not a gemma3 GGUF")
    cfg = {
        "hidden_size": int(field(reader, "gemma3.embedding_length")),
        "num_hidden_layers": int(field(reader, "gemma3.block_count")),
        "num_attention_heads": int(field(reader, "gemma3.attention.head_count")),
        "num_key_value_heads": int(field(reader, "gemma3.attention.head_count_kv")),
        "head_dim": int(field(reader, "gemma3.attention.key_length")),
        "rms_norm_eps": float(field(reader, "gemma3.attention.layer_norm_rms_epsilon")),
        "sliding_window": int(field(reader, "gemma3.attention.sliding_window")),
        "rope_theta": float(field(reader, "gemma3.rope.freq_base")),
        "rope_local_base_freq": 10000.0,
        "sliding_window_pattern": 6,
        "tie_word_embeddings": True,
    }
    cfg["query_pre_attn_scalar"] = cfg["head_dim"]
    weights = {}
    for t in reader.tensors:
        arr = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64)
        name = hf_name(t.name)
        if name.endswith("norm.weight"):
            arr = arr - 1.0
        weights[name] = arr
    return cfg, weights


def describe(name, cfg, weights, ids, n_greedy):
    logits = hf.forward(cfg, weights, ids)
    top = np.argsort(-logits, kind="stable")[:TOP_K]
    peak = logits.max()
    lse = peak + np.log(np.exp(logits - peak).sum())
    rms = np.sqrt(np.mean(logits * logits))
    greedy, context = [], list(ids)
    for step in range(n_greedy):
        step_logits = logits if step == 0 else hf.forward(cfg, weights, context)
        greedy.append(int(np.argmax(step_logits)))
        context.append(greedy[-1])
    print(f"{name}: {len(ids)} tokens, top-1 {int(top[0])} ({peak:.6f}), greedy {greedy}", file=sys.stderr)
    return "\n".join([
        f"prompt {name}",
        "ids " + ",".join(str(i) for i in ids),
        f"logsumexp {lse:.12g}",
        f"logit_rms {rms:.12g}",
        "top " + " ".join(f"{int(i)}:{logits[i]:.12g}" for i in top),
        "greedy " + ",".join(str(i) for i in greedy),
        "end",
    ])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("gguf")
    ap.add_argument("--prompt", action="append", required=True, metavar="NAME:N_GREEDY:IDS",
                    help="a prompt's name, how many greedy tokens to record, and its comma-separated ids")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    cfg, weights = load(args.gguf)
    blocks = []
    for spec in args.prompt:
        name, n_greedy, ids = spec.split(":", 2)
        blocks.append(describe(name, cfg, weights, [int(i) for i in ids.split(",")], int(n_greedy)))
    header = ("# Gemma 3 270M (gemma-3-270m-q4_k_m.gguf) last-position logits: written by\n"
              "# tests/reference/gemma3_gguf_reference.py (float64 numpy, gguf-py dequantisation).\n"
              "# Do not edit; rerun the script. Text of each prompt: tests/data/gemma3_270m/NAME.txt\n")
    with open(args.out, "w") as f:
        f.write(header + "\n\n".join(blocks) + "\n")


if __name__ == "__main__":
    main()
