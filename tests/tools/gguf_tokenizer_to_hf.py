#!/usr/bin/env python3
"""gguf_tokenizer_to_hf.py — writes a GGUF file's byte-level BPE tokenizer as a Hugging
Face pair, tokenizer.json and tokenizer_config.json, in the `tokenizers` library's schema,
so test_tokenizer_hf.c can check that the engine's tokenizer.json reader gives the same
ids as its GGUF reader on the same vocabulary. Standard library only, with its own GGUF
metadata reader (nothing shared with the engine's C reader, so a shared misreading
cannot hide).

Usage:
  gguf_tokenizer_to_hf.py MODEL.gguf OUT_DIR [--merges pairs|strings]

What it maps (only what a byte-level GGUF tokenizer holds; anything else is an error):
- tokenizer.ggml.tokens -> model.vocab (id = index); tokenizer.ggml.merges -> model.merges,
  as ["a", "b"] pairs (tokenizers >= 0.20 writes these) or as "a b" strings (older files);
- tokenizer.ggml.token_type 3 (control) and 4 (user-defined) -> added_tokens, with
  "special" true for control tokens;
- tokenizer.ggml.pre -> pre_tokenizer as the checkpoints' own tokenizer.json files write
  it: "smollm" = Sequence[Digits(individual_digits), ByteLevel(use_regex)], "llama-bpe" =
  Sequence[Split(Llama-3's regex, Isolated), ByteLevel(no regex)] with model.ignore_merges,
  "gpt2" = ByteLevel(use_regex);
- bos/eos/unknown/padding ids -> tokenizer_config.json's bos_token (a string), eos_token
  (an AddedToken object, as older transformers wrote it), unk_token, pad_token;
  add_bos_token when the GGUF says; tokenizer.chat_template -> chat_template, as a list
  of named templates [{"name": "default", ...}] so that form is read too.
"""
import json
import os
import struct
import sys

GGUF_MAGIC = b"GGUF"
# Metadata value type -> struct format of a scalar (8 = string and 9 = array apart).
SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
TYPE_STRING, TYPE_ARRAY = 8, 9

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")


class Reader:
    """Sequential little-endian reads over the file's bytes."""

    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        value = struct.unpack_from(fmt, self.data, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return value

    def string(self):
        n = self.take("<Q")
        raw = self.data[self.pos:self.pos + n]
        if len(raw) != n:
            raise ValueError("string runs past the end of the file")
        self.pos += n
        return raw.decode("utf-8")

    def value(self, kind):
        if kind == TYPE_STRING:
            return self.string()
        if kind == TYPE_ARRAY:
            elem, n = self.take("<I"), self.take("<Q")
            return [self.value(elem) for _ in range(n)]
        if kind not in SCALARS:
            raise ValueError(f"metadata value type {kind} is unknown")
        return self.take(SCALARS[kind])


def read_metadata(path):
    with open(path, "rb") as f:
        data = f.read()
    r = Reader(data)
    if data[:4] != GGUF_MAGIC:
        raise ValueError(f"{path}: not a GGUF file")
    r.pos = 4
    version = r.take("<I")
    if version < 2:
        raise ValueError(f"{path}: GGUF version {version} is too old")
    r.take("<Q")  # tensor count
    n_kv = r.take("<Q")
    meta = {}
    for _ in range(n_kv):
        key = r.string()
        meta[key] = r.value(r.take("<I"))
    return meta


def pre_tokenizer_for(pre):
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True}
    if pre in ("smollm", "starcoder"):
        return {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True},
                                                      dict(byte_level, use_regex=True)]}
    if pre == "llama-bpe":
        split = {"type": "Split", "pattern": {"Regex": LLAMA3_REGEX}, "behavior": "Isolated", "invert": False}
        return {"type": "Sequence", "pretokenizers": [split, dict(byte_level, use_regex=False)]}
    if pre == "gpt2":
        return dict(byte_level, use_regex=True)
    raise ValueError(f"tokenizer.ggml.pre {pre!r} has no tokenizer.json form here")


def convert(meta, merge_form):
    if meta.get("tokenizer.ggml.model") != "gpt2":
        raise ValueError("only byte-level BPE (tokenizer.ggml.model gpt2) is converted")
    tokens = meta["tokenizer.ggml.tokens"]
    types = meta.get("tokenizer.ggml.token_type", [1] * len(tokens))
    vocab = {}
    for i, t in enumerate(tokens):
        if t in vocab:
            raise ValueError(f"token {t!r} appears twice (ids {vocab[t]} and {i})")
        vocab[t] = i
    merges = []
    for m in meta["tokenizer.ggml.merges"]:
        left, right = m.split(" ", 1)
        merges.append([left, right] if merge_form == "pairs" else f"{left} {right}")
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": types[i] == 4, "special": types[i] == 3}
             for i, t in enumerate(tokens) if types[i] in (3, 4)]
    pre = meta.get("tokenizer.ggml.pre", "gpt2")
    model = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
             "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
             "ignore_merges": pre == "llama-bpe", "vocab": vocab, "merges": merges}
    byte_level = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True}
    tokenizer = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
                 "pre_tokenizer": pre_tokenizer_for(pre), "post_processor": dict(byte_level, trim_offsets=True),
                 "decoder": byte_level, "model": model}

    def token(key):
        i = meta.get(f"tokenizer.ggml.{key}_token_id")
        return tokens[i] if i is not None and i < len(tokens) else None

    config = {"bos_token": token("bos"), "unk_token": token("unknown"), "pad_token": token("padding"),
              "model_max_length": 8192, "tokenizer_class": "GPT2Tokenizer"}
    eos = token("eos")
    config["eos_token"] = None if eos is None else {"__type": "AddedToken", "content": eos, "lstrip": False,
                                                    "normalized": False, "rstrip": False, "single_word": False}
    if "tokenizer.ggml.add_bos_token" in meta:
        config["add_bos_token"] = bool(meta["tokenizer.ggml.add_bos_token"])
    if "tokenizer.chat_template" in meta:
        config["chat_template"] = [{"name": "default", "template": meta["tokenizer.chat_template"]}]
    return tokenizer, config


def main(argv):
    if len(argv) not in (3, 5) or (len(argv) == 5 and (argv[3] != "--merges" or argv[4] not in ("pairs", "strings"))):
        print(__doc__.split("Usage:")[1].split("What")[0].strip(), file=sys.stderr)
        return 2
    merge_form = argv[4] if len(argv) == 5 else "pairs"
    try:
        tokenizer, config = convert(read_metadata(argv[1]), merge_form)
    except (OSError, ValueError, KeyError, struct.error) as e:
        print(f"gguf_tokenizer_to_hf.py: {argv[1]}: {e}", file=sys.stderr)
        return 1
    os.makedirs(argv[2], exist_ok=True)
    for name, obj in (("tokenizer.json", tokenizer), ("tokenizer_config.json", config)):
        with open(os.path.join(argv[2], name), "w", encoding="utf-8") as f:
            json.dump(obj, f, ensure_ascii=False, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
