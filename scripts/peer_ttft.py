#!/usr/bin/env python3
"""peer_ttft.py — the peers our GPU numbers are compared with, timed on the same GPU in
the same command: Hugging Face transformers' own model code (random bf16 weights at the
published shapes) for prefill TTFT, and PyTorch SDPA (cuDNN or FlashAttention backend)
for causal prefill attention alone. For the lent GPU machine, which has torch and
transformers but no network: shapes are written here from the published configs, not
downloaded.

    peer_ttft.py model --model gemma-3-12b --ctx 8k,32k [--batch 1] [--layers N]
                       [--attn sdpa|cudnn|flash|eager] [--repeats 3]
    peer_ttft.py attention --heads 32 --kv-heads 8 --head-dim 128 --ctx 8k,32k
                       [--batch 1] [--window W] [--backend cudnn|flash|efficient]

Prints one CSV row per case (peer, model or shape, ctx, batch, ms per forward, TFLOP/s
for attention); --out appends the rows to a file. The prefill times the whole forward
of a batch of ctx-token prompts with only the last position's logits computed (what
TTFT needs), after one warm-up, as the median of --repeats runs.
"""
import argparse
import csv
import statistics
import sys
import time

# Published text-model shapes (config.json of each Hugging Face checkpoint). Only the
# fields that set the cost; the rest keep the config class's defaults.
MODELS = {
    "llama-3.1-8b": ("llama", dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                                   num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                                   rope_theta=500000.0, max_position_embeddings=131072)),
    "llama-3.1-70b": ("llama", dict(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
                                    num_attention_heads=64, num_key_value_heads=8, vocab_size=128256,
                                    rope_theta=500000.0, max_position_embeddings=131072)),
    "gemma-3-1b": ("gemma3", dict(hidden_size=1152, intermediate_size=6912, num_hidden_layers=26,
                                  num_attention_heads=4, num_key_value_heads=1, head_dim=256,
                                  sliding_window=512, query_pre_attn_scalar=256, vocab_size=262144,
                                  max_position_embeddings=32768)),
    "gemma-3-4b": ("gemma3", dict(hidden_size=2560, intermediate_size=10240, num_hidden_layers=34,
                                  num_attention_heads=8, num_key_value_heads=4, head_dim=256,
                                  sliding_window=1024, query_pre_attn_scalar=256, vocab_size=262208,
                                  max_position_embeddings=131072)),
    "gemma-3-12b": ("gemma3", dict(hidden_size=3840, intermediate_size=15360, num_hidden_layers=48,
                                   num_attention_heads=16, num_key_value_heads=8, head_dim=256,
                                   sliding_window=1024, query_pre_attn_scalar=256, vocab_size=262208,
                                   max_position_embeddings=131072)),
    "gemma-3-27b": ("gemma3", dict(hidden_size=5376, intermediate_size=21504, num_hidden_layers=62,
                                   num_attention_heads=32, num_key_value_heads=16, head_dim=128,
                                   sliding_window=1024, query_pre_attn_scalar=168, vocab_size=262208,
                                   max_position_embeddings=131072)),
    "qwen3-next-80b-a3b": ("qwen3_next", dict(hidden_size=2048, intermediate_size=5120, num_hidden_layers=48,
                                              num_attention_heads=16, num_key_value_heads=2, head_dim=256,
                                              linear_num_key_heads=16, linear_num_value_heads=32,
                                              linear_key_head_dim=128, linear_value_head_dim=128,
                                              linear_conv_kernel_dim=4, num_experts=512,
                                              num_experts_per_tok=10, moe_intermediate_size=512,
                                              shared_expert_intermediate_size=512, full_attention_interval=4,
                                              partial_rotary_factor=0.25, rope_theta=10000000.0,
                                              vocab_size=151936, max_position_embeddings=262144)),
}


def parse_ctx(text):
    out = []
    for item in text.split(","):
        item = item.strip().lower()
        out.append(int(item[:-1]) * 1024 if item.endswith("k") else int(item))
    return out


def need_torch():
    try:
        import torch
    except ImportError:
        sys.exit("peer_ttft.py needs PyTorch")
    if not torch.cuda.is_available():
        sys.exit("peer_ttft.py needs a CUDA GPU")
    return torch


def build_model(torch, name, layers, attn, device="cuda"):
    import transformers
    family, fields = MODELS[name]
    fields = dict(fields)
    if layers:
        if family == "qwen3_next" and layers % 4:
            sys.exit(f"--layers {layers}: Qwen3-Next keeps its 3:1 pattern only at multiples of 4")
        fields["num_hidden_layers"] = layers
    if family == "llama":
        config = transformers.LlamaConfig(**fields)
        cls = transformers.LlamaForCausalLM
    elif family == "gemma3":
        if "4b" in name or "12b" in name or "27b" in name:
            fields["rope_scaling"] = {"rope_type": "linear", "factor": 8.0}
        config = transformers.Gemma3TextConfig(**fields)
        cls = transformers.Gemma3ForCausalLM
    else:
        config = transformers.Qwen3NextConfig(**fields)
        cls = transformers.Qwen3NextForCausalLM
    impl = "sdpa" if attn in ("cudnn", "flash") else attn
    config._attn_implementation = impl
    # Built on the GPU in bf16 directly (27B in fp32 would not fit); the config class's
    # own initialisation draws the weights, and rotary buffers are made in fp32 as usual.
    torch.manual_seed(0)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    with torch.device(device):
        model = cls(config)
    torch.set_default_dtype(default_dtype)
    model.eval()
    return model


def sdpa_context(torch, attn):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    if attn == "cudnn":
        return sdpa_kernel(SDPBackend.CUDNN_ATTENTION)
    if attn == "flash":
        return sdpa_kernel(SDPBackend.FLASH_ATTENTION)
    if attn == "efficient":
        return sdpa_kernel(SDPBackend.EFFICIENT_ATTENTION)
    import contextlib
    return contextlib.nullcontext()


def timed(torch, fn, repeats):
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def run_model(args, torch, writer):
    model = build_model(torch, args.model, args.layers, args.attn)
    label = args.model + (f":layers={args.layers}" if args.layers else "")
    for ctx in parse_ctx(args.ctx):
        ids = torch.randint(0, model.config.vocab_size, (args.batch, ctx), device="cuda")

        def forward():
            with torch.no_grad(), sdpa_context(torch, args.attn):
                try:
                    model(input_ids=ids, use_cache=False, logits_to_keep=1)
                except TypeError:
                    model(input_ids=ids, use_cache=False, num_logits_to_keep=1)
        try:
            ms = timed(torch, forward, args.repeats)
        except torch.cuda.OutOfMemoryError:
            writer.writerow(["transformers-" + args.attn, label, ctx, args.batch, "out of memory", ""])
            torch.cuda.empty_cache()
            continue
        writer.writerow(["transformers-" + args.attn, label, ctx, args.batch, f"{ms:.2f}", ""])
        sys.stdout.flush()


def run_attention(args, torch, writer):
    import torch.nn.functional as F
    for ctx in parse_ctx(args.ctx):
        q = torch.randn(args.batch, args.heads, ctx, args.head_dim, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(args.batch, args.kv_heads, ctx, args.head_dim, device="cuda", dtype=torch.bfloat16)
        v = torch.randn_like(k)
        if args.kv_heads != args.heads:  # SDPA's cuDNN path wants equal head counts: expand as callers do
            rep = args.heads // args.kv_heads
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        mask = None
        if args.window:
            i = torch.arange(ctx, device="cuda")
            mask = (i[None, :] <= i[:, None]) & (i[None, :] > i[:, None] - args.window)

        def attend():
            with sdpa_context(torch, args.backend):
                if mask is None:
                    F.scaled_dot_product_attention(q, k, v, is_causal=True)
                else:
                    F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        ms = timed(torch, attend, args.repeats)
        # Causal: half the square (the window: ctx x window minus its triangle), 4 flops per MAC pair.
        keys = ctx * (ctx + 1) / 2 if not args.window else ctx * args.window - args.window * (args.window - 1) / 2
        flops = 4.0 * args.batch * args.heads * args.head_dim * keys
        shape = f"{args.heads}/{args.kv_heads}x{args.head_dim}" + (f" w{args.window}" if args.window else "")
        writer.writerow(["sdpa-" + args.backend, shape, ctx, args.batch, f"{ms:.3f}", f"{flops / ms / 1e9:.1f}"])
        sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    m = sub.add_parser("model")
    m.add_argument("--model", required=True, choices=sorted(MODELS))
    m.add_argument("--layers", type=int, default=0)
    m.add_argument("--attn", default="sdpa", choices=["sdpa", "cudnn", "flash", "eager"])
    a = sub.add_parser("attention")
    a.add_argument("--heads", type=int, default=32)
    a.add_argument("--kv-heads", type=int, default=8)
    a.add_argument("--head-dim", type=int, default=128)
    a.add_argument("--window", type=int, default=0)
    a.add_argument("--backend", default="cudnn", choices=["cudnn", "flash", "efficient"])
    for p in (m, a):
        p.add_argument("--ctx", default="32k")
        p.add_argument("--batch", type=int, default=1)
        p.add_argument("--repeats", type=int, default=3)
        p.add_argument("--out")
    args = ap.parse_args()
    torch = need_torch()
    sink = open(args.out, "a", newline="") if args.out else sys.stdout
    writer = csv.writer(sink)
    if not args.out or sink.tell() == 0:
        writer.writerow(["peer", "case", "ctx", "batch", "ms", "tflops"])
    print(f"# torch {torch.__version__}, {torch.cuda.get_device_name()}", file=sys.stderr)
    (run_model if args.mode == "model" else run_attention)(args, torch, writer)


if __name__ == "__main__":
    main()
