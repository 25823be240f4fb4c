#!/usr/bin/env python3
"""Writes tests/data/tokenizer_fixture.txt: expected token ids for test_tokenizer.c, made
by implementations independent of ours. Run by hand (not by CI), in a throwaway venv:

    python3 -m venv /tmp/tokvenv
    /tmp/tokvenv/bin/pip install tokenizers sentencepiece protobuf gguf
    /tmp/tokvenv/bin/python tests/data/make_tokenizer_fixture.py \
        ~/.cache/uniprefill-bench/models/SmolLM2-135M-Instruct.Q4_1.gguf \
        ../shared/models/llama-2-tiny-random.gguf tests/data/tokenizer_fixture.txt

- SmolLM2 (byte-level BPE): a Hugging Face `tokenizers` BPE over the GGUF vocabulary and
  merges, with SmolLM2's pre-tokenizer (Digits(individual_digits) then ByteLevel with
  GPT-2's regex) and its control tokens registered as special added tokens. "plain" ids
  come with encode_special_tokens=True (special tokens are ordinary text), "special" ids
  with special tokens recognised.
- Llama-2 (SentencePiece BPE): a `sentencepiece` ModelProto built from the GGUF pieces,
  scores and types (model type BPE, byte fallback, identity normalizer, dummy prefix,
  extra whitespace kept), as Llama-2's tokenizer.model is configured; sentencepiece never
  parses control tokens in text, so only "plain" ids are produced.
- Pre-tokenizer splits for "gpt2", "smollm", "llama-bpe" and "default" come from Hugging
  Face pre-tokenizers: ByteLevel's built-in GPT-2 regex, Digits + ByteLevel, Llama-3's
  tokenizer.json Split regex, and llama.cpp's four "default" regexes as chained Splits.

Line formats (text and pieces hex-encoded UTF-8, '-' for an empty list):
    encode <model> <plain|special> <hex text> <id,id,...>
    split <pre> <hex text> <hex piece,hex piece,...>
"""
import sys

from gguf import GGUFReader
from sentencepiece import SentencePieceProcessor
from sentencepiece import sentencepiece_model_pb2 as sp_model
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

TEXTS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "don't I'll we've they're she's I'm he'd DON'T",
    "Numbers: 12345 and 3.14159, year 2024, 1,000,000",
    "   leading spaces and trailing   ",
    "tabs\tand\nnewlines\n\n\r\nmixed \t \n end",
    "multiple     spaces    between\u00a0nbsp",
    "\u00dcn\u00efc\u00f6d\u00e9 \u00e0ccents: caf\u00e9, na\u00efve, Stra\u00dfe, \u0153uvre",
    "\u4e2d\u6587\u5b57\u7b26\u6d4b\u8bd5\uff0c\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3001\ud55c\uad6d\uc5b4",
    "emoji \U0001F600\U0001F389\U0001F44D\U0001F3FD and ZWJ \U0001F468\u200d\U0001F469\u200d\U0001F467",
    "code: def f(x):\n    return x**2 + 1  # comment\n",
    "punctuation!!! ??? ... --- *** (parens) [brackets] {braces}",
    "URL https://example.com/path?q=1&r=2#frag",
    "\u03a9\u2248\u00e7\u221a\u222b \u2264\u2265\u00f7 math \u2211\u2202 \u00b2\u00b3 \u2153",
    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    "<s>Hello</s> <unk>",
    "a",
    " ",
    "",
]

PATTERN_LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
PATTERNS_LLAMACPP_DEFAULT = [r"[\p{P}\$\+<=>\^~\|]+",
                             r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
                             r"\p{N}+", r"[0-9][0-9][0-9]"]


def read_vocab(path):
    r = GGUFReader(path)

    def array(key, convert):
        f = r.fields[key]
        return [convert(f.parts[i]) for i in f.data]

    fields = {
        "tokens": array("tokenizer.ggml.tokens", lambda p: bytes(p).decode("utf-8")),
        "types": array("tokenizer.ggml.token_type", lambda p: int(p[0])),
    }
    if "tokenizer.ggml.merges" in r.fields:
        fields["merges"] = array("tokenizer.ggml.merges", lambda p: bytes(p).decode("utf-8"))
    if "tokenizer.ggml.scores" in r.fields:
        fields["scores"] = array("tokenizer.ggml.scores", lambda p: float(p[0]))
    return fields


def hf_byte_level_bpe(v):
    vocab = {t: i for i, t in enumerate(v["tokens"])}
    merges = [tuple(m.split(" ", 1)) for m in v["merges"]]
    tk = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=False))
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False)
                           for t, ty in zip(v["tokens"], v["types"]) if ty == 3])
    return tk


def sentencepiece_bpe(v):
    m = sp_model.ModelProto()
    m.trainer_spec.model_type = sp_model.TrainerSpec.BPE
    m.trainer_spec.byte_fallback = True
    m.trainer_spec.vocab_size = len(v["tokens"])
    m.normalizer_spec.name = "identity"
    m.normalizer_spec.add_dummy_prefix = True
    m.normalizer_spec.remove_extra_whitespaces = False
    m.normalizer_spec.escape_whitespaces = True
    for t, s, ty in zip(v["tokens"], v["scores"], v["types"]):
        p = m.pieces.add()
        p.piece, p.score, p.type = t, s, ty
    sp = SentencePieceProcessor()
    sp.LoadFromSerializedProto(m.SerializeToString())
    return sp


def byte_level_to_bytes(piece):
    bs = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    inverse = {chr(c): b for b, c in zip(bs, cs)}
    return bytes(inverse[ch] for ch in piece)


def split_pieces(pre, text, byte_level):
    pieces = [p for p, _ in pre.pre_tokenize_str(text)]
    return [byte_level_to_bytes(p) if byte_level else p.encode("utf-8") for p in pieces]


def hexs(b):
    return b.hex() if b else "-"


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    smol, llama, out_path = sys.argv[1:]
    lines = ["# Expected tokenizer outputs from independent implementations; see",
             "# tests/data/make_tokenizer_fixture.py for how (HF tokenizers, sentencepiece)."]

    smol_tk = hf_byte_level_bpe(read_vocab(smol))
    for text in TEXTS:
        for mode in ("plain", "special"):
            smol_tk.encode_special_tokens = mode == "plain"
            ids = smol_tk.encode(text, add_special_tokens=False).ids
            lines.append(f"encode smollm2 {mode} {hexs(text.encode())} {','.join(map(str, ids)) or '-'}")

    sp = sentencepiece_bpe(read_vocab(llama))
    for text in TEXTS:
        ids = sp.EncodeAsIds(text)
        lines.append(f"encode llama2 plain {hexs(text.encode())} {','.join(map(str, ids)) or '-'}")

    splitters = {
        "gpt2": (pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), True),
        "smollm": (pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]), True),
        "llama-bpe": (pre_tokenizers.Split(Regex(PATTERN_LLAMA3), behavior="isolated"), False),
        "default": (pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(p), behavior="isolated")
                                             for p in PATTERNS_LLAMACPP_DEFAULT]), False),
    }
    for name, (pre, byte_level) in splitters.items():
        for text in TEXTS:
            pieces = split_pieces(pre, text, byte_level)
            lines.append(f"split {name} {hexs(text.encode())} {','.join(hexs(p) for p in pieces) or '-'}")

    with open(out_path, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
