#!/usr/bin/env python3
"""gemma3_hf_reference.py — an independent numpy recomputation of a Hugging Face Gemma 3
text checkpoint's logits (config.json with model_type gemma3_text, F32/BF16/F16
safetensors), the yardstick the C engine's Gemma 3 forward is checked against.

It reads the files itself (no transformers, no safetensors package, nothing from the
project) and runs the forward of ../shared/HYBRIDS.md B.3 in float64, written from that
description: embeddings times sqrt(hidden); per layer an RMSNorm with (1 + w), q/k/v
projections, an RMSNorm of every query and key head with (1 + w), rotate-half RoPE
with the layer type's base (sliding: rope_local_base_freq / rope_parameters'
sliding_attention; full: rope_theta with linear scaling), softmax over keys the causal
mask allows and, on sliding layers, only the window's (a query at p sees p - W + 1 .. p),
scaled by query_pre_attn_scalar^-1/2; the output projection and its post-norm, added to
the residual; the pre-FFN norm, down(gelu_tanh(gate) * up), its post-norm, added; the
final norm and the tied head.

Usage: gemma3_hf_reference.py CHECKPOINT_DIR --tokens 2,17,40 --out logits.f32
writes the last position's logits as raw little-endian float32.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

DTYPES = {"F32": "<f4", "F16": "<f2"}


def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            start, end = info["data_offsets"]
            f.seek(base + start)
            raw = f.read(end - start)
            if info["dtype"] == "BF16":
                bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
                arr = bits.view(np.float32)
            elif info["dtype"] in DTYPES:
                arr = np.frombuffer(raw, dtype=DTYPES[info["dtype"]])
            else:
                raise ValueError(f"{path}: tensor {name} has dtype {info['dtype']}")
            out[name] = arr.astype(np.float64).reshape(info["shape"])
    return out


def load(ckpt_dir):
    with open(os.path.join(ckpt_dir, "config.json")) as f:
        cfg = json.load(f)
    weights = {}
    for name in sorted(os.listdir(ckpt_dir)):
        if name.endswith(".safetensors"):
            weights.update(read_safetensors(os.path.join(ckpt_dir, name)))
    return cfg, weights


def rope_settings(cfg):
    """(full theta, full linear factor, sliding theta)."""
    params = cfg.get("rope_parameters")
    if params:
        full, sliding = params["full_attention"], params["sliding_attention"]
        factor = full.get("factor", 1.0) if full.get("rope_type", "default") == "linear" else 1.0
        return full.get("rope_theta", 1e6), factor, sliding.get("rope_theta", 1e4)
    scaling = cfg.get("rope_scaling") or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    factor = scaling.get("factor", 1.0) if kind == "linear" else 1.0
    return cfg.get("rope_theta", 1e6), factor, cfg.get("rope_local_base_freq", 1e4)


def layer_is_sliding(cfg, layer):
    types = cfg.get("layer_types")
    if types:
        return types[layer] == "sliding_attention"
    return (layer + 1) % cfg.get("sliding_window_pattern", 6) != 0


def rms(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * (1.0 + w)


def rope(x, positions, theta, factor):
    """x [T, heads, d], rotate-half pairs (i, i + d/2)."""
    d = x.shape[-1]
    inv_freq = 1.0 / theta ** (np.arange(0, d, 2, dtype=np.float64) / d) / factor
    ang = positions[:, None] * inv_freq[None, :]
    cos = np.concatenate([np.cos(ang)] * 2, axis=-1)[:, None, :]
    sin = np.concatenate([np.sin(ang)] * 2, axis=-1)[:, None, :]
    rotated = np.concatenate([-x[..., d // 2:], x[..., :d // 2]], axis=-1)
    return x * cos + rotated * sin


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def forward(cfg, w, tokens):
    t_len = len(tokens)
    h_dim, n_h, n_kv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim", 256)
    eps = cfg.get("rms_norm_eps", 1e-6)
    window = cfg.get("sliding_window", 4096)
    scale = cfg.get("query_pre_attn_scalar", 256) ** -0.5
    full_theta, factor, sliding_theta = rope_settings(cfg)
    pos = np.arange(t_len, dtype=np.float64)
    causal = pos[None, :] <= pos[:, None]
    in_window = pos[None, :] > pos[:, None] - window
    emb = w["model.embed_tokens.weight"]
    x = emb[np.array(tokens)] * np.sqrt(h_dim)
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        sliding = layer_is_sliding(cfg, layer)
        a = rms(x, w[p + "input_layernorm.weight"], eps)
        q = (a @ w[p + "self_attn.q_proj.weight"].T).reshape(t_len, n_h, hd)
        k = (a @ w[p + "self_attn.k_proj.weight"].T).reshape(t_len, n_kv, hd)
        v = (a @ w[p + "self_attn.v_proj.weight"].T).reshape(t_len, n_kv, hd)
        q = rms(q, w[p + "self_attn.q_norm.weight"], eps)
        k = rms(k, w[p + "self_attn.k_norm.weight"], eps)
        theta, f = (sliding_theta, 1.0) if sliding else (full_theta, factor)
        q, k = rope(q, pos, theta, f), rope(k, pos, theta, f)
        allowed = causal & in_window if sliding else causal
        out = np.empty((t_len, n_h, hd))
        for head in range(n_h):
            kv = head // (n_h // n_kv)
            s = (q[:, head, :] @ k[:, kv, :].T) * scale
            s = np.where(allowed, s, -np.inf)
            s = np.exp(s - s.max(axis=1, keepdims=True))
            out[:, head, :] = (s / s.sum(axis=1, keepdims=True)) @ v[:, kv, :]
        o = out.reshape(t_len, n_h * hd) @ w[p + "self_attn.o_proj.weight"].T
        x = x + rms(o, w[p + "post_attention_layernorm.weight"], eps)
        m = rms(x, w[p + "pre_feedforward_layernorm.weight"], eps)
        g = gelu_tanh(m @ w[p + "mlp.gate_proj.weight"].T) * (m @ w[p + "mlp.up_proj.weight"].T)
        f_out = g @ w[p + "mlp.down_proj.weight"].T
        x = x + rms(f_out, w[p + "post_feedforward_layernorm.weight"], eps)
    last = rms(x[-1], w["model.norm.weight"], eps)
    head = w.get("lm_head.weight", emb) if not cfg.get("tie_word_embeddings", True) else emb
    logits = head @ last
    cap = cfg.get("final_logit_softcapping")
    return cap * np.tanh(logits / cap) if cap else logits


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--tokens", required=True, help="comma-separated token ids")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    cfg, weights = load(args.checkpoint)
    if cfg.get("model_type") != "gemma3_text":
        sys.exit(f"{args.checkpoint}: model_type {cfg.get('model_type')} is not gemma3_text")
    tokens = [int(t) for t in args.tokens.split(",")]
    logits = forward(cfg, weights, tokens)
    logits.astype("<f4").tofile(args.out)
    print(f"reference: {len(tokens)} tokens, top-1 {int(np.argmax(logits))} ({logits.max():.6f})")


if __name__ == "__main__":
    main()
