#!/usr/bin/env python3
"""test_llama_gguf_reference.py — checks the numpy reference itself, so that a mismatch
with the C engine points at the engine. A plain script: exits 1 on the first failure.

    test_llama_gguf_reference.py TINY_LLAMA.gguf
        hand-built quantized blocks dequantize to the values the ggml layouts define;
        GGUF-native RoPE on converter-permuted q/k rows gives the attention scores of
        HF rotate-half on the original rows; the tiny Llama-2 GGUF parses (metadata,
        shapes, SentencePiece split) and a truncated copy is refused; the KV-cached
        forward equals the one-shot forward and is causal.
    test_llama_gguf_reference.py --smollm2 MODEL.gguf
        SmolLM2-135M-Instruct answers the ChatML question "What is the capital of France?"
        with a greedy continuation naming Paris. Exit 77 (skip) when MODEL is absent.
"""
import os
import struct
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_gguf_reference as ref  # noqa: E402  (the module under test sits beside this file)

SKIP = 77
CHATML_FRANCE = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
                 "Hugging Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?"
                 "<|im_end|>\n<|im_start|>assistant\n")


def check(condition, message):
    """Stops the script at the first broken expectation, naming it."""
    if not condition:
        print(f"FAIL: {message}")
        sys.exit(1)


def f16_bytes(value):
    return np.float16(value).tobytes()


def test_dequantize_blocks():
    # Q8_0: fp16 scale, then 32 int8.
    qs = np.arange(-16, 16, dtype=np.int8)
    raw = np.frombuffer(f16_bytes(0.5) + qs.tobytes(), dtype=np.uint8)
    check(np.array_equal(ref.dequantize("Q8_0", raw, 32), qs * 0.5), "Q8_0 block")
    # Q4_0: fp16 d, byte j = element j (low nibble) and element j + 16 (high nibble), value (q - 8) d.
    low, high = np.arange(16), 15 - np.arange(16)
    packed = (low | (high << 4)).astype(np.uint8)
    raw = np.frombuffer(f16_bytes(2.0) + packed.tobytes(), dtype=np.uint8)
    expect = np.concatenate([(low - 8) * 2.0, (high - 8) * 2.0])
    check(np.array_equal(ref.dequantize("Q4_0", raw, 32), expect), "Q4_0 block")
    # Q4_1: fp16 d, fp16 m, the same nibble order, value q d + m.
    raw = np.frombuffer(f16_bytes(0.25) + f16_bytes(-1.0) + packed.tobytes(), dtype=np.uint8)
    expect = np.concatenate([low * 0.25 - 1.0, high * 0.25 - 1.0])
    check(np.array_equal(ref.dequantize("Q4_1", raw, 32), expect), "Q4_1 block")
    # Two blocks in a row keep their own scales.
    two = np.concatenate([raw, np.frombuffer(f16_bytes(1.0) + f16_bytes(0.0) + packed.tobytes(),
                                             dtype=np.uint8)])
    check(np.array_equal(ref.dequantize("Q4_1", two, 64)[32:], np.concatenate([low, high])),
          "Q4_1 second block")
    # BF16 is the top half of a float32; F16 is IEEE half.
    raw = np.frombuffer(struct.pack("<HH", 0x3FC0, 0xC120), dtype=np.uint8)
    check(np.array_equal(ref.dequantize("BF16", raw, 2), [1.5, -10.0]), "BF16 values")
    raw = np.frombuffer(f16_bytes(-0.125) + f16_bytes(3.0), dtype=np.uint8)
    check(np.array_equal(ref.dequantize("F16", raw, 2), [-0.125, 3.0]), "F16 values")
    print("ok: Q8_0, Q4_0, Q4_1, BF16 and F16 blocks dequantize to the ggml layouts' values")


def rotate_half(x, positions, inv_freq):
    """HF Llama RoPE: dims i and i + d/2 form pair i."""
    half = x.shape[-1] // 2
    angles = positions[:, None] * inv_freq[None, :]
    cos, sin = np.cos(angles), np.sin(angles)
    first, second = x[..., :half], x[..., half:]
    return np.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)


def converter_permute(weight, n_head):
    """The HF -> GGUF q/k row permutation: within each head, row r of the first half and
    row r of the second half become rows 2r and 2r + 1."""
    out_dim = weight.shape[0]
    return (weight.reshape(n_head, 2, out_dim // n_head // 2, -1)
            .swapaxes(1, 2).reshape(weight.shape))


def test_rope_convention():
    rng = np.random.default_rng(7)
    n_head, head_dim, n_embd, n_tok = 3, 16, 24, 9
    inv_freq = 10000.0 ** (-np.arange(0, head_dim, 2) / head_dim)
    positions = np.arange(5, 5 + n_tok)
    x = rng.standard_normal((n_tok, n_embd))
    wq, wk = rng.standard_normal((2, n_head * head_dim, n_embd))

    def heads(w):
        return (x @ w.T).reshape(n_tok, n_head, head_dim).transpose(1, 0, 2)

    q_hf, k_hf = rotate_half(heads(wq), positions, inv_freq), rotate_half(heads(wk), positions, inv_freq)
    q_gg = ref.rope_adjacent_pairs(heads(converter_permute(wq, n_head)), positions, inv_freq)
    k_gg = ref.rope_adjacent_pairs(heads(converter_permute(wk, n_head)), positions, inv_freq)
    scores_hf = q_hf @ k_hf.transpose(0, 2, 1)
    scores_gg = q_gg @ k_gg.transpose(0, 2, 1)
    check(np.allclose(scores_hf, scores_gg, rtol=1e-12, atol=1e-10),
          "native RoPE on permuted rows does not give HF's attention scores")
    # A wrong convention (native RoPE on the unpermuted rows) must be caught by this check.
    q_wrong = ref.rope_adjacent_pairs(heads(wq), positions, inv_freq)
    k_wrong = ref.rope_adjacent_pairs(heads(wk), positions, inv_freq)
    check(not np.allclose(scores_hf, q_wrong @ k_wrong.transpose(0, 2, 1), rtol=1e-6),
          "the RoPE check cannot tell the conventions apart")
    print("ok: GGUF-native RoPE on converter-permuted q/k equals HF rotate-half on the originals")


def test_tiny_llama_parse(path):
    gguf = ref.GGUFReader(path)
    meta = gguf.metadata
    check(meta["general.architecture"] == "llama", "architecture")
    check(meta["llama.embedding_length"] == 8 and meta["llama.block_count"] == 1, "tiny llama dims")
    check(len(meta["tokenizer.ggml.tokens"]) == 32000, "32000 vocab strings")
    check(gguf.tensors["token_embd.weight"][0] == (8, 32000), "ggml dims of token_embd")
    embd = gguf.tensor("token_embd.weight")
    check(embd.shape == (32000, 8) and embd.dtype == np.float32, f"token_embd read as {embd.shape}")
    check(gguf.tensor("blk.0.ffn_down.weight").shape == (8, 32), "ffn_down is [out 8][in 32]")
    vocab = ref.Vocab(gguf)
    ids = [i for _, i in vocab.split("<s>Hello world, this is a test")]
    # The Llama-2 SentencePiece ids of this sentence, with BOS.
    check(ids == [1, 15043, 3186, 29892, 445, 338, 263, 1243], f"SentencePiece split {ids}")
    check(vocab.decode(ids[1:]) == " Hello world, this is a test", "SentencePiece decode")
    with tempfile.NamedTemporaryFile(suffix=".gguf") as cut:
        with open(path, "rb") as src:
            cut.write(src.read(os.path.getsize(path) // 2))
        cut.flush()
        refusal = ""
        try:
            ref.GGUFReader(cut.name).tensor("output.weight")
        except ref.GGUFError as err:
            refusal = str(err)
        check("truncated" in refusal or "past the end" in refusal,
              f"a GGUF cut in half: expected a truncation error, got {refusal or 'none'!r}")
    print("ok: tiny Llama-2 GGUF metadata, shapes, SentencePiece split; truncated copy refused")


def test_kv_cache_and_causality(path):
    model = ref.LlamaReference(ref.GGUFReader(path))
    tokens = [1, 15043, 3186, 29892, 445, 338, 263, 1243, 29889, 13]
    one_shot = model.forward(tokens)
    model.reset()
    stepwise = np.concatenate([model.forward(tokens[:4]), model.forward(tokens[4:7]),
                               model.forward(tokens[7:])])
    check(one_shot.shape == (len(tokens), 32000), f"logits shape {one_shot.shape}")
    check(np.allclose(one_shot, stepwise, rtol=0, atol=1e-12), "KV-cached forward differs")
    model.reset()
    prefix = model.forward(tokens[:5])
    check(np.allclose(prefix, one_shot[:5], rtol=0, atol=1e-12), "later tokens changed earlier logits")
    print("ok: KV-cached forward equals the one-shot forward; attention is causal")


def test_smollm2_paris(path):
    if not os.path.exists(path):
        print(f"SKIP: {path} is absent (scripts/fetch-smollm2.sh fetches it)")
        return SKIP
    gguf = ref.GGUFReader(path)
    model = ref.LlamaReference(gguf, cache_weights=True)
    vocab = ref.Vocab(gguf)
    ids = [i for _, i in vocab.split(CHATML_FRANCE)]
    check(ids[-4:] == [1, 520, 9531, 198], f"'<|im_start|>assistant\\n' split as {ids[-4:]}")
    logits = model.forward(ids)
    generated = []
    for _ in range(12):
        generated.append(int(np.argmax(logits[-1])))
        if generated[-1] == gguf.metadata["tokenizer.ggml.eos_token_id"]:
            break
        logits = model.forward(generated[-1:])
    answer = vocab.decode(generated)
    check("Paris" in answer, f"greedy answer {answer!r} does not name Paris")
    print(f"ok: SmolLM2 greedy answer {answer!r}")
    return 0


def main(argv):
    if len(argv) == 2 and argv[0] == "--smollm2":
        return test_smollm2_paris(argv[1])
    if len(argv) != 1:
        sys.exit("usage: test_llama_gguf_reference.py TINY_LLAMA.gguf | --smollm2 MODEL.gguf")
    test_dequantize_blocks()
    test_rope_convention()
    test_tiny_llama_parse(argv[0])
    test_kv_cache_and_causality(argv[0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
