#!/usr/bin/env python3
"""qwen3_next_fixtures.py — writes tiny random Qwen3-Next checkpoints and what Hugging Face
transformers' own Qwen3-Next code computes on them: the independent check of the engine's
Qwen3-Next (issue 14, ../shared/HYBRIDS.md Part C).

For each configuration below it builds Qwen3NextForCausalLM in fp32 on the CPU, draws its
weights from a seeded generator (at scales that keep every layer's activations near unit
size, so the logits are not a flat near-zero vector), and writes
tests/data/qwen3_next/<name>/ as a Hugging Face checkpoint directory: config.json and one
model.safetensors with the tensors named as the released checkpoints name them, routed
experts one tensor per expert (mlp.experts.<e>.{gate,up,down}_proj.weight, which
transformers 5 fuses into gate_up_proj / down_proj on load). Projections are stored BF16
and norms, A_log and dt_bias F32, as mixed as a real file may be.

The reference is then computed from the files, not from the model in memory: the directory
is loaded back with Qwen3NextForCausalLM.from_pretrained (no missing or unexpected tensor
allowed), in fp32, eager attention, with neither fla nor causal_conv1d installed, so the
delta rule runs transformers' torch fallback (torch_chunk_gated_delta_rule for the prompt,
torch_recurrent_gated_delta_rule for each decoded token). Per prompt, reference.txt pins
the token ids, the last position's top-64 logits with their ids, the logsumexp and RMS of
all the logits, and the greedy continuation from generate() with the cache — the format
tests/tools/gemma3_fixture_check.c reads. A fixture is written only when every greedy step
and every router top-k choice on the way has a clear margin in the logits (printed in the header), so
that rounding differences of a correct engine cannot flip them.

Usage: qwen3_next_fixtures.py [--out tests/data/qwen3_next]   (needs torch, transformers,
safetensors; the versions used go in each header). Rerun it rather than editing fixtures.
"""
import argparse
import importlib.util
import json
import os
import shutil
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import Qwen3NextConfig, Qwen3NextForCausalLM

TOP_K_RECORDED = 64  # gemma3_fixture_check holds at most 64 top logits per prompt
GREEDY_STEPS = 6
# Smallest top-1 lead over the runner-up, relative to the logits' RMS, at every greedy
# step; and smallest gap between the k-th and (k+1)-th router logit of any token.
# Both at fp32's scale: a bf16 engine can flip a router gap of a few 1e-2 (three bf16
# spacings at logits of ~5); the GPU check leaves the prompts whose answer such a flip
# decides unjudged (qwen3_next_numpy.py --bf16-fragile) rather than this script
# refusing every prompt with a gap that small, which is most of them.
MIN_GREEDY_MARGIN = 1e-3
MIN_ROUTER_GAP = 1e-4
SEED_TRIES = 40

# "tiny": the 80B's shape in miniature (three DeltaNet layers then one full-attention layer,
# 2 value heads per key head, GQA, partial rotary of a quarter, routed + shared experts),
# config.json as transformers 5 writes it (rope_parameters, layer_types).
# "interval3": a deeper stack of period 3, 3 value heads per key head, a single key head,
# a wider top-k, config.json in the released checkpoints' older form
# (rope_theta, partial_rotary_factor and full_attention_interval at the top, no layer_types).
# Attention head_dim is 64 so the CUDA attention kernels (64, 128, 256) run it too.
CONFIGS = {
    "tiny": dict(
        seed=14, legacy_json=False, prompt_lengths=[3, 64, 100],
        config=dict(vocab_size=128, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                    num_key_value_heads=1, head_dim=64, linear_num_key_heads=2, linear_num_value_heads=4,
                    linear_key_head_dim=32, linear_value_head_dim=32, linear_conv_kernel_dim=4, num_experts=8,
                    num_experts_per_tok=2, moe_intermediate_size=16, shared_expert_intermediate_size=16,
                    norm_topk_prob=True, rms_norm_eps=1e-6, tie_word_embeddings=False,
                    max_position_embeddings=4096,
                    rope_parameters=dict(rope_type="default", rope_theta=1e7, partial_rotary_factor=0.25)),
    ),
    "interval3": dict(
        seed=1403, legacy_json=True, prompt_lengths=[17, 150],
        config=dict(vocab_size=96, hidden_size=32, num_hidden_layers=6, num_attention_heads=4,
                    num_key_value_heads=1, head_dim=64, linear_num_key_heads=1, linear_num_value_heads=3,
                    linear_key_head_dim=32, linear_value_head_dim=32, linear_conv_kernel_dim=4, num_experts=12,
                    num_experts_per_tok=3, moe_intermediate_size=8, shared_expert_intermediate_size=16,
                    norm_topk_prob=True, rms_norm_eps=1e-6, tie_word_embeddings=False,
                    max_position_embeddings=4096, full_attention_interval=3,
                    rope_parameters=dict(rope_type="default", rope_theta=1e6, partial_rotary_factor=0.5)),
    ),
}


def check_torch_fallback():
    """The reference must be transformers' own torch code, not a fused kernel package."""
    for package in ("fla", "causal_conv1d"):
        if importlib.util.find_spec(package) is not None:
            sys.exit(f"qwen3_next_fixtures: package {package} is installed; transformers would use it instead of "
                     "its torch fallback. Run in an environment without it.")


def draw_weights(model, cfg, seed):
    """Replace every parameter with a seeded draw, rounded to what the file stores."""
    gen = torch.Generator().manual_seed(seed)
    layers = cfg.num_hidden_layers
    residual = (2.0 * layers) ** -0.5  # writers into the residual stream keep it O(1)

    def normal(shape, std):
        return torch.randn(shape, generator=gen) * std

    for name, p in model.named_parameters():
        shape, fan_in = p.shape, p.shape[-1]
        if name.endswith("embed_tokens.weight"):
            value = normal(shape, 1.0)
        elif name.endswith("lm_head.weight"):
            value = normal(shape, 2.0 / fan_in ** 0.5)
        elif name.endswith("linear_attn.norm.weight"):  # plain w
            value = 1.0 + normal(shape, 0.2)
        elif "norm" in name.rsplit(".", 2)[-2]:  # (1 + w) norms: q_norm, k_norm, layer norms, final norm
            value = normal(shape, 0.2)
        elif name.endswith("A_log"):  # decay rates exp(A_log) from 0.05 (slow) to 8 (fast)
            value = torch.empty(shape).uniform_(0.05, 8.0, generator=gen).log()
        elif name.endswith("dt_bias"):
            value = normal(shape, 0.5)
        elif name.endswith("conv1d.weight"):
            value = normal(shape, 0.5)
        elif name.endswith("mlp.gate.weight"):  # router: clear preferences
            value = normal(shape, 3.0 / fan_in ** 0.5)
        elif name.endswith("experts.gate_up_proj"):
            value = normal(shape, fan_in ** -0.5)
        elif name.endswith("experts.down_proj"):
            value = normal(shape, residual * fan_in ** -0.5)
        elif name.endswith(("o_proj.weight", "out_proj.weight", "down_proj.weight")):
            value = normal(shape, residual * fan_in ** -0.5)
        else:  # input projections, shared expert gate/up, shared expert gate
            value = normal(shape, fan_in ** -0.5)
        with torch.no_grad():
            p.copy_(value.to(stored_dtype(name)).float())


def stored_dtype(name):
    small = name.endswith(("A_log", "dt_bias")) or "norm" in name
    return torch.float32 if small else torch.bfloat16


def checkpoint_tensors(model, cfg):
    """The state dict under the released checkpoints' names, experts one tensor each."""
    out = {}
    inter = cfg.moe_intermediate_size
    for name, p in model.state_dict().items():
        if cfg.tie_word_embeddings and name == "lm_head.weight":
            continue
        if name.endswith("mlp.experts.gate_up_proj"):
            stem = name[: -len("gate_up_proj")]
            for e in range(p.shape[0]):
                out[f"{stem}{e}.gate_proj.weight"] = p[e, :inter]
                out[f"{stem}{e}.up_proj.weight"] = p[e, inter:]
        elif name.endswith("mlp.experts.down_proj"):
            stem = name[: -len("down_proj")]
            for e in range(p.shape[0]):
                out[f"{stem}{e}.down_proj.weight"] = p[e]
        else:
            out[name] = p
    return {k: v.detach().to(stored_dtype(k)).contiguous().clone() for k, v in out.items()}


def legacy_config_json(spec):
    """config.json as the released Qwen3-Next-80B-A3B writes it (transformers 4 keys)."""
    c = dict(spec["config"])
    rope = c.pop("rope_parameters")
    c.update(architectures=["Qwen3NextForCausalLM"], model_type="qwen3_next", hidden_act="silu",
             rope_theta=rope["rope_theta"], partial_rotary_factor=rope["partial_rotary_factor"],
             rope_scaling=None, decoder_sparse_step=1, mlp_only_layers=[], attention_bias=False,
             use_sliding_window=False, router_aux_loss_coef=0.001, output_router_logits=False,
             intermediate_size=5120, torch_dtype="bfloat16")
    return c


def write_checkpoint(directory, spec):
    cfg_args = dict(spec["config"])
    interval = cfg_args.pop("full_attention_interval", None)
    config = Qwen3NextConfig(**cfg_args, **({"full_attention_interval": interval} if interval else {}))
    config.architectures = ["Qwen3NextForCausalLM"]
    model = Qwen3NextForCausalLM(config).float().eval()
    draw_weights(model, config, spec["seed"])
    if os.path.isdir(directory):
        shutil.rmtree(directory)
    os.makedirs(directory)
    if spec["legacy_json"]:
        with open(os.path.join(directory, "config.json"), "w") as f:
            json.dump(legacy_config_json(spec), f, indent=2, sort_keys=True)
            f.write("\n")
    else:
        config.save_pretrained(directory)
    save_file(checkpoint_tensors(model, config), os.path.join(directory, "model.safetensors"),
              metadata={"format": "pt"})
    return config


def load_reference(directory):
    model, info = Qwen3NextForCausalLM.from_pretrained(directory, dtype=torch.float32, attn_implementation="eager",
                                                       output_loading_info=True)
    problems = {k: v for k, v in info.items() if v and k != "error_msgs"} or info.get("error_msgs")
    if problems:
        sys.exit(f"qwen3_next_fixtures: transformers did not load {directory} cleanly: {problems}")
    return model.eval()


class RouterGaps:
    """Smallest gap between the k-th and (k+1)-th router logit over every call (the softmax keeps
    their order; rounding moves logits, not probabilities, by a relative amount)."""

    def __init__(self, model):
        self.smallest = float("inf")
        k = model.config.num_experts_per_tok
        def hook(_module, _inputs, output):
            top = torch.topk(output[0].float(), k + 1, dim=-1).values
            self.smallest = min(self.smallest, float((top[:, k - 1] - top[:, k]).min()))
        self.handles = [m.register_forward_hook(hook) for m in model.modules()
                        if type(m).__name__ == "Qwen3NextTopKRouter"]
        if not self.handles:
            sys.exit("qwen3_next_fixtures: no Qwen3NextTopKRouter found to watch")


def run_prompt(model, ids):
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, -1].double()
        out = model.generate(torch.tensor([ids]), max_new_tokens=GREEDY_STEPS, do_sample=False, use_cache=True,
                             output_scores=True, return_dict_in_generate=True, pad_token_id=0)
    greedy = out.sequences[0, len(ids):].tolist()
    margin = float("inf")
    for step in out.scores:
        s = step[0].double()
        top2 = torch.topk(s, 2).values
        margin = min(margin, float((top2[0] - top2[1]) / s.pow(2).mean().sqrt()))
    if int(torch.argmax(logits)) != greedy[0]:
        sys.exit("qwen3_next_fixtures: generate()'s first token is not the forward's argmax")
    return logits, greedy, margin


def fixture_text(name, spec, config, prompts):
    lines = [
        f"# Qwen3-Next fixture '{name}': last-position logits and greedy continuations computed by Hugging Face",
        f"# transformers {transformers.__version__} (torch {torch.__version__}) from the checkpoint in this directory,",
        "# fp32 on the CPU, eager attention, the torch fallback of the gated delta rule (no fla, no causal_conv1d).",
        f"# Written by tests/reference/qwen3_next_fixtures.py (weight seed {spec['seed']}); do not edit, rerun it.",
        f"# layer_types {','.join(config.layer_types)}",
    ]
    body = []
    for pname, ids, logits, greedy, margin, router_gap in prompts:
        lines.append(f"# prompt {pname}: smallest greedy top-1 lead {margin:.3e} x logit RMS, smallest router "
                     f"top-k gap {router_gap:.3e}")
        order = torch.argsort(logits, descending=True)[:TOP_K_RECORDED].tolist()
        body += [
            f"prompt {pname}",
            "ids " + ",".join(map(str, ids)),
            f"logsumexp {float(torch.logsumexp(logits, 0)):.10g}",
            f"logit_rms {float(logits.pow(2).mean().sqrt()):.10g}",
            "top " + " ".join(f"{i}:{float(logits[i]):.10g}" for i in order),
            "greedy " + ",".join(map(str, greedy)),
            "end",
            "",
        ]
    return "\n".join(lines + [""] + body)


def reference_prompts(directory, spec, config):
    """Each prompt's reference, or None when one of them has a near tie."""
    model = load_reference(directory)
    watch = RouterGaps(model)
    gen = torch.Generator().manual_seed(spec["seed"] + 1)
    prompts = []
    for length in spec["prompt_lengths"]:
        ids = torch.randint(0, config.vocab_size, (length,), generator=gen).tolist()
        watch.smallest = float("inf")
        logits, greedy, margin = run_prompt(model, ids)
        if margin < MIN_GREEDY_MARGIN or watch.smallest < MIN_ROUTER_GAP:
            print(f"  seed {spec['seed']}: prompt of {length} tokens has a near tie (greedy lead {margin:.2e}, "
                  f"router gap {watch.smallest:.2e}); next seed")
            return None
        prompts.append((f"len{length}", ids, logits, greedy, margin, watch.smallest))
    return prompts


def make_fixture(root, name, spec):
    """The first seed from spec's on whose weights and prompts nothing is near a tie."""
    directory = os.path.join(root, name)
    spec = dict(spec)
    for _ in range(SEED_TRIES):
        config = write_checkpoint(directory, spec)
        prompts = reference_prompts(directory, spec, config)
        if prompts:
            break
        spec["seed"] += 1
    else:
        sys.exit(f"qwen3_next_fixtures: {name}: every one of {SEED_TRIES} seeds gives a near tie")
    with open(os.path.join(directory, "reference.txt"), "w") as f:
        f.write(fixture_text(name, spec, config, prompts))
    total = sum(os.path.getsize(os.path.join(directory, n)) for n in os.listdir(directory))
    print(f"{directory}: {len(prompts)} prompts, {total / 1024:.0f} KiB")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "data", "qwen3_next"))
    args = ap.parse_args()
    check_torch_fallback()
    torch.set_num_threads(1)
    for name, spec in CONFIGS.items():
        make_fixture(os.path.normpath(args.out), name, spec)


if __name__ == "__main__":
    main()
