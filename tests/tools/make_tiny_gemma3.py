#!/usr/bin/env python3
"""make_tiny_gemma3.py — writes a tiny random Gemma 3 text checkpoint as transformers
lays one out (config.json with model_type gemma3_text, one model.safetensors of F32
tensors named as Gemma3ForCausalLM saves them), for the engine-against-reference check
(tests/gemma3_reference_check.sh, tests/reference/gemma3_hf_reference.py).

The shapes keep what makes Gemma 3 Gemma 3 and keep it small: 8 layers of the period-6
pattern (layer 5 global, the rest sliding), a window of 16 so short prompts outrun it,
q width (4 x 32) above the hidden size (64), GQA (2 kv heads), a query_pre_attn_scalar
other than head_dim, linear x8 RoPE scaling on the global layer, tied embeddings, and
norm weights that are not zero (Hugging Face stores w for a norm that multiplies by
1 + w). Weights are drawn from a seeded generator, so the same seed writes the same
bytes.

Usage: make_tiny_gemma3.py OUT_DIR [--seed N] [--legacy-rope] [--gguf OUT.gguf]
--legacy-rope writes rope_theta / rope_local_base_freq / rope_scaling (transformers 4)
instead of rope_parameters (transformers 5).
--gguf also writes the same model as llama.cpp's converter would (HYBRIDS.md A.2, A.4):
F32 tensors under GGUF names, 1 added to every norm weight, no output.weight (tied),
and, like the real 270M file, neither the sliding pattern nor the local RoPE base
(the reader must default them to 6 and 10,000).
"""
import argparse
import json
import os
import struct

import numpy as np

CONFIG = {
    "architectures": ["Gemma3ForCausalLM"],
    "model_type": "gemma3_text",
    "num_hidden_layers": 8,
    "hidden_size": 64,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "intermediate_size": 96,
    "vocab_size": 300,
    "max_position_embeddings": 512,
    "rms_norm_eps": 1e-6,
    "query_pre_attn_scalar": 24,
    "sliding_window": 16,
    "sliding_window_pattern": 6,
    "hidden_activation": "gelu_pytorch_tanh",
    "tie_word_embeddings": True,
    "attention_bias": False,
    "final_logit_softcapping": None,
    "attn_logit_softcapping": None,
    "torch_dtype": "float32",
}
FULL_THETA, SLIDING_THETA, LINEAR_FACTOR = 1000000.0, 10000.0, 8.0


def tensors(cfg, rng):
    """name -> float32 array, in the layout transformers saves ([out, in])."""
    h, n_h, n_kv, hd = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    inter, vocab = cfg["intermediate_size"], cfg["vocab_size"]

    def linear(out_dim, in_dim):
        return (rng.standard_normal((out_dim, in_dim)) / np.sqrt(in_dim)).astype(np.float32)

    def norm(dim):  # w around 0: the effective weight 1 + w around 1
        return (0.3 * rng.standard_normal(dim)).astype(np.float32)

    out = {"model.embed_tokens.weight": (0.5 * rng.standard_normal((vocab, h))).astype(np.float32),
           "model.norm.weight": norm(h)}
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        out[p + "input_layernorm.weight"] = norm(h)
        out[p + "self_attn.q_proj.weight"] = linear(n_h * hd, h)
        out[p + "self_attn.k_proj.weight"] = linear(n_kv * hd, h)
        out[p + "self_attn.v_proj.weight"] = linear(n_kv * hd, h)
        out[p + "self_attn.o_proj.weight"] = linear(h, n_h * hd)
        out[p + "self_attn.q_norm.weight"] = norm(hd)
        out[p + "self_attn.k_norm.weight"] = norm(hd)
        out[p + "post_attention_layernorm.weight"] = norm(h)
        out[p + "pre_feedforward_layernorm.weight"] = norm(h)
        out[p + "mlp.gate_proj.weight"] = linear(inter, h)
        out[p + "mlp.up_proj.weight"] = linear(inter, h)
        out[p + "mlp.down_proj.weight"] = linear(h, inter)
        out[p + "post_feedforward_layernorm.weight"] = norm(h)
    return out


def write_safetensors(path, named):
    header, offset, blobs = {}, 0, []
    for name in sorted(named):
        data = np.ascontiguousarray(named[name], dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(named[name].shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


GGUF_NAMES = {  # HF suffix -> GGUF stem (per layer)
    "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm",
    "self_attn.k_norm": "attn_k_norm", "post_attention_layernorm": "post_attention_norm",
    "pre_feedforward_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down", "post_feedforward_layernorm": "post_ffw_norm",
}


def gguf_tensors(named):
    out = {}
    for name, arr in named.items():
        if name == "model.embed_tokens.weight":
            gguf = "token_embd.weight"
        elif name == "model.norm.weight":
            gguf = "output_norm.weight"
        else:
            layer, rest = name[len("model.layers."):].split(".", 1)
            gguf = f"blk.{layer}.{GGUF_NAMES[rest[:-len('.weight')]]}.weight"
        out[gguf] = arr + np.float32(1.0) if name.endswith("norm.weight") else arr
    return out


def write_gguf(path, cfg, named):
    def string(s):
        b = s.encode()
        return struct.pack("<Q", len(b)) + b

    u32, f32, str_type = 4, 6, 8
    kv = [("general.architecture", str_type, "gemma3"), ("gemma3.context_length", u32, cfg["max_position_embeddings"]),
          ("gemma3.embedding_length", u32, cfg["hidden_size"]), ("gemma3.block_count", u32, cfg["num_hidden_layers"]),
          ("gemma3.feed_forward_length", u32, cfg["intermediate_size"]),
          ("gemma3.attention.head_count", u32, cfg["num_attention_heads"]),
          ("gemma3.attention.head_count_kv", u32, cfg["num_key_value_heads"]),
          ("gemma3.attention.key_length", u32, cfg["head_dim"]), ("gemma3.attention.value_length", u32, cfg["head_dim"]),
          ("gemma3.attention.layer_norm_rms_epsilon", f32, cfg["rms_norm_eps"]),
          ("gemma3.rope.freq_base", f32, FULL_THETA), ("gemma3.attention.sliding_window", u32, cfg["sliding_window"]),
          ("gemma3.rope.scaling.type", str_type, "linear"), ("gemma3.rope.scaling.factor", f32, LINEAR_FACTOR)]
    body = b"GGUF" + struct.pack("<IQQ", 3, len(named), len(kv))
    for key, kind, value in kv:
        body += string(key) + struct.pack("<I", kind)
        body += string(value) if kind == str_type else struct.pack("<I" if kind == u32 else "<f", value)
    offset, blobs = 0, []
    for name in sorted(named):
        arr = np.ascontiguousarray(named[name], dtype="<f4")
        body += string(name) + struct.pack("<I", arr.ndim) + b"".join(struct.pack("<Q", d) for d in arr.shape[::-1])
        body += struct.pack("<IQ", 0, offset)  # ggml type F32, offset in the data section
        blobs.append(arr.tobytes() + b"\0" * (-arr.nbytes % 32))
        offset += len(blobs[-1])
    body += b"\0" * (-len(body) % 32)
    with open(path, "wb") as f:
        f.write(body + b"".join(blobs))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--legacy-rope", action="store_true")
    ap.add_argument("--gguf", help="also write the model as a GGUF file here")
    ap.add_argument("--query-pre-attn-scalar", type=float, default=24,
                    help="GGUF carries none (llama.cpp uses head_dim, 32 here, except for 62 layers): "
                         "pass 32 with --gguf so both files describe one model")
    args = ap.parse_args()
    cfg = dict(CONFIG, query_pre_attn_scalar=args.query_pre_attn_scalar)
    if args.legacy_rope:
        cfg.update(rope_theta=FULL_THETA, rope_local_base_freq=SLIDING_THETA,
                   rope_scaling={"rope_type": "linear", "factor": LINEAR_FACTOR})
    else:
        cfg["rope_parameters"] = {
            "full_attention": {"rope_type": "linear", "factor": LINEAR_FACTOR, "rope_theta": FULL_THETA},
            "sliding_attention": {"rope_type": "default", "rope_theta": SLIDING_THETA},
        }
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    named = tensors(cfg, np.random.default_rng(args.seed))
    write_safetensors(os.path.join(args.out_dir, "model.safetensors"), named)
    if args.gguf:
        write_gguf(args.gguf, cfg, gguf_tensors(named))


if __name__ == "__main__":
    main()
