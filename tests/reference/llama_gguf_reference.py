#!/usr/bin/env python3
"""llama_gguf_reference.py — an independent numpy recomputation of a llama-architecture
GGUF model's logits, the yardstick the C engine's forward pass is checked against.

It owns its own GGUF parser, the dequantization of F32/F16/BF16/Q8_0/Q4_0/Q4_1 and a
plain float64 llama forward; it imports nothing from the project (nor the `gguf`
package), so a shared misreading cannot hide. RoPE is applied in GGUF's native layout
(llama.cpp's "normal" rope: adjacent pairs x[2i], x[2i+1] rotate by pos * base^(-2i/d)).
The HF->GGUF converter permuted the q/k rows so that this equals HF's rotate-half on the
original weights; applying the native rule to the unmodified GGUF weights therefore
checks independently whatever un-permutation the engine does.

Usage (numpy only, run with /usr/bin/python3):
  llama_gguf_reference.py MODEL.gguf --tokens 1,2,3 [--positions-all] --out logits.f32
  llama_gguf_reference.py MODEL.gguf --text "<|im_start|>user\\nHi<|im_end|>" --greedy 20 --decode

--out writes the logits of the last prompt position (every position with
--positions-all, row-major [positions][vocab]) as raw little-endian float32.
--greedy N prints N greedily decoded token ids, comma-separated, on one line.

--text is not a full tokenizer: it splits the text at special tokens, then into GPT-2
style pre-tokens (a word with its leading space, a digit, a run of punctuation, a newline)
and looks each one up whole in the vocabulary ('Ġ' is space and 'Ċ' newline in byte-level
BPE, '▁' is space in SentencePiece). A byte-level piece that is not one entry is split by
the file's merge list; a SentencePiece piece that is not one entry is an error. No BOS is
added: write it (<s>, <|im_start|>...) in the text. For prompts of common words this
gives the ids a real tokenizer gives; --show-pieces prints the split to check by eye.
"""
import argparse
import json
import re
import struct
import sys

import numpy as np


class GGUFError(Exception):
    """A GGUF file this reader cannot use: malformed, truncated or unsupported."""


# --- GGUF container ---------------------------------------------------------------

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32

# Metadata value types: id -> struct format of a scalar (strings and arrays apart).
SCALAR_FORMATS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
                  10: "<Q", 11: "<q", 12: "<d"}
TYPE_STRING, TYPE_ARRAY = 8, 9

# ggml tensor types this reader dequantizes: id -> (name, elements per block, bytes per block).
GGML_TYPES = {0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
              8: ("Q8_0", 32, 34), 30: ("BF16", 1, 2)}


class GGUFReader:
    """Header, metadata and tensor directory of one GGUF file; tensor data read on demand
    from a memory map, so nothing is dequantized until asked for."""

    def __init__(self, path):
        self.path = path
        try:
            self.data = np.memmap(path, dtype=np.uint8, mode="r")
        except (OSError, ValueError) as err:
            raise GGUFError(f"{path}: cannot open: {err}") from err
        self.pos = 0
        if bytes(self._take(4)) != GGUF_MAGIC:
            raise GGUFError(f"{path}: not a GGUF file (no 'GGUF' magic)")
        version = self._scalar("<I")
        if version not in (2, 3):
            raise GGUFError(f"{path}: GGUF version {version} unsupported (2 or 3 expected)")
        n_tensors, n_kv = self._scalar("<Q"), self._scalar("<Q")
        self.metadata = {}
        for _ in range(n_kv):
            key = self._string()
            self.metadata[key] = self._value(self._scalar("<I"), key)
        self.tensors = {}
        for _ in range(n_tensors):
            name = self._string()
            n_dims = self._scalar("<I")
            if not 1 <= n_dims <= 4:
                raise GGUFError(f"{path}: tensor {name}: {n_dims} dimensions")
            dims = tuple(self._scalar("<Q") for _ in range(n_dims))
            ggml_type, offset = self._scalar("<I"), self._scalar("<Q")
            self.tensors[name] = (dims, ggml_type, offset)
        alignment = self.metadata.get("general.alignment", DEFAULT_ALIGNMENT)
        if not isinstance(alignment, int) or alignment <= 0:
            raise GGUFError(f"{path}: general.alignment {alignment!r} is not a positive integer")
        self.data_start = (self.pos + alignment - 1) // alignment * alignment

    def _take(self, n):
        if self.pos + n > len(self.data):
            raise GGUFError(f"{self.path}: truncated at byte {self.pos} (wanted {n} more)")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def _scalar(self, fmt):
        return struct.unpack(fmt, bytes(self._take(struct.calcsize(fmt))))[0]

    def _string(self):
        raw = bytes(self._take(self._scalar("<Q")))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise GGUFError(f"{self.path}: string at byte {self.pos - len(raw)} is not UTF-8") from err

    def _value(self, value_type, key):
        if value_type in SCALAR_FORMATS:
            return self._scalar(SCALAR_FORMATS[value_type])
        if value_type == TYPE_STRING:
            return self._string()
        if value_type == TYPE_ARRAY:
            item_type, count = self._scalar("<I"), self._scalar("<Q")
            if item_type in SCALAR_FORMATS and item_type != 7:
                fmt = SCALAR_FORMATS[item_type]
                raw = self._take(count * struct.calcsize(fmt))
                return np.frombuffer(bytes(raw), dtype=np.dtype(fmt)).tolist()
            return [self._value(item_type, key) for _ in range(count)]
        raise GGUFError(f"{self.path}: metadata {key}: unknown value type {value_type}")

    def tensor(self, name):
        """The named tensor dequantized to float32, shaped in row-major order: ggml dims
        [ne0, ne1] become ne1 rows of ne0 elements (a weight is [out][in])."""
        if name not in self.tensors:
            raise GGUFError(f"{self.path}: no tensor {name}")
        dims, ggml_type, offset = self.tensors[name]
        if ggml_type not in GGML_TYPES:
            raise GGUFError(f"{self.path}: tensor {name}: ggml type {ggml_type} unsupported "
                            f"(supported: {', '.join(t[0] for t in GGML_TYPES.values())})")
        type_name, block_elems, block_bytes = GGML_TYPES[ggml_type]
        n_elems = int(np.prod(dims))
        if dims[0] % block_elems:
            raise GGUFError(f"{self.path}: tensor {name}: row of {dims[0]} elements is not a "
                            f"whole number of {type_name} blocks of {block_elems}")
        n_bytes = n_elems // block_elems * block_bytes
        start = self.data_start + offset
        if start + n_bytes > len(self.data):
            raise GGUFError(f"{self.path}: tensor {name}: data [{start}, {start + n_bytes}) "
                            f"past the end of the file ({len(self.data)} bytes)")
        raw = self.data[start:start + n_bytes]
        values = dequantize(type_name, raw, n_elems)
        return values.reshape(tuple(reversed(dims)))


def dequantize(type_name, raw, n_elems):
    """Raw ggml tensor bytes -> flat float32 array of n_elems values."""
    if type_name == "F32":
        return raw.view("<f4").astype(np.float32)
    if type_name == "F16":
        return raw.view("<f2").astype(np.float32)
    if type_name == "BF16":
        return (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
    if type_name == "Q8_0":
        blocks = raw.view(np.dtype([("d", "<f2"), ("qs", "i1", 32)]))
        values = blocks["d"].astype(np.float32)[:, None] * blocks["qs"].astype(np.float32)
        return values.reshape(n_elems)
    # Q4_0 and Q4_1: byte j of a block holds element j in its low nibble, j + 16 in its high.
    if type_name == "Q4_0":
        blocks = raw.view(np.dtype([("d", "<f2"), ("qs", "u1", 16)]))
    else:
        blocks = raw.view(np.dtype([("d", "<f2"), ("m", "<f2"), ("qs", "u1", 16)]))
    nibbles = np.concatenate([blocks["qs"] & 0x0F, blocks["qs"] >> 4], axis=1).astype(np.float32)
    d = blocks["d"].astype(np.float32)[:, None]
    if type_name == "Q4_0":
        values = (nibbles - 8.0) * d
    else:
        values = nibbles * d + blocks["m"].astype(np.float32)[:, None]
    return values.reshape(n_elems)


# --- the llama forward ------------------------------------------------------------

def rope_adjacent_pairs(x, positions, inv_freq):
    """GGUF-native ("normal") RoPE. x is [heads][tokens][head_dim]; pair i of the first
    2 * len(inv_freq) dims, (x[2i], x[2i+1]), turns by positions * inv_freq[i]; the
    remaining dims pass through."""
    n_rot = 2 * len(inv_freq)
    angles = positions[:, None].astype(np.float64) * inv_freq[None, :]
    cos, sin = np.cos(angles), np.sin(angles)
    even, odd = x[..., 0:n_rot:2], x[..., 1:n_rot:2]
    out = x.copy()
    out[..., 0:n_rot:2] = even * cos - odd * sin
    out[..., 1:n_rot:2] = even * sin + odd * cos
    return out


class LlamaReference:
    """The llama forward of a GGUF model in float64, with a KV cache so greedy decoding
    recomputes only the new token. Layer weights are dequantized when a layer runs unless
    cache_weights keeps them (then about 4 bytes per parameter stay resident)."""

    def __init__(self, gguf, cache_weights=False):
        self.gguf = gguf
        meta = gguf.metadata
        arch = meta.get("general.architecture")
        if arch != "llama":
            raise GGUFError(f"{gguf.path}: general.architecture is {arch!r}, only 'llama' is supported")

        def need(key):
            if f"llama.{key}" not in meta:
                raise GGUFError(f"{gguf.path}: metadata llama.{key} missing")
            return meta[f"llama.{key}"]

        self.n_layer = need("block_count")
        self.n_embd = need("embedding_length")
        self.n_head = need("attention.head_count")
        self.n_head_kv = meta.get("llama.attention.head_count_kv", self.n_head)
        self.head_dim = meta.get("llama.attention.key_length", self.n_embd // self.n_head)
        self.n_rot = meta.get("llama.rope.dimension_count", self.head_dim)
        self.rope_base = float(meta.get("llama.rope.freq_base", 10000.0))
        self.eps = float(need("attention.layer_norm_rms_epsilon"))
        scaling = meta.get("llama.rope.scaling.type", "none")
        if scaling != "none":
            raise GGUFError(f"{gguf.path}: rope scaling {scaling!r} is not implemented here")
        if self.n_head % self.n_head_kv:
            raise GGUFError(f"{gguf.path}: {self.n_head} heads not a multiple of {self.n_head_kv} KV heads")
        if self.n_rot % 2 or self.n_rot > self.head_dim:
            raise GGUFError(f"{gguf.path}: rope.dimension_count {self.n_rot} vs head_dim {self.head_dim}")

        self.token_embd = gguf.tensor("token_embd.weight")
        self.vocab_size = self.token_embd.shape[0]
        self.output_norm = gguf.tensor("output_norm.weight").astype(np.float64)
        # Tied embeddings when the file carries no separate LM head.
        self.lm_head = (gguf.tensor("output.weight") if "output.weight" in gguf.tensors
                        else self.token_embd)
        self.cache_weights = cache_weights
        self.layer_cache = {}
        self.inv_freq = self.rope_base ** (-np.arange(0, self.n_rot, 2, dtype=np.float64) / self.n_rot)
        self.reset()

    def reset(self):
        """Forget the KV cache: the next forward starts at position 0."""
        self.kv = [None] * self.n_layer
        self.n_past = 0

    def layer(self, i):
        if i in self.layer_cache:
            return self.layer_cache[i]
        names = ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                 "ffn_norm", "ffn_gate", "ffn_up", "ffn_down")
        w = {n: self.gguf.tensor(f"blk.{i}.{n}.weight") for n in names}
        for n in ("attn_q", "attn_k", "attn_v", "attn_output"):
            bias = f"blk.{i}.{n}.bias"
            w[n + ".bias"] = self.gguf.tensor(bias) if bias in self.gguf.tensors else None
        if self.cache_weights:
            self.layer_cache[i] = w
        return w

    def rms_norm(self, x, weight):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * weight

    @staticmethod
    def linear(x, weight, bias):
        y = x @ weight.T.astype(np.float64)
        return y if bias is None else y + bias

    def attention(self, i, w, x, positions):
        n = x.shape[0]
        q = self.linear(x, w["attn_q"], w["attn_q.bias"])
        k = self.linear(x, w["attn_k"], w["attn_k.bias"])
        v = self.linear(x, w["attn_v"], w["attn_v.bias"])
        q = rope_adjacent_pairs(q.reshape(n, self.n_head, self.head_dim).transpose(1, 0, 2),
                                positions, self.inv_freq)
        k = rope_adjacent_pairs(k.reshape(n, self.n_head_kv, self.head_dim).transpose(1, 0, 2),
                                positions, self.inv_freq)
        v = v.reshape(n, self.n_head_kv, self.head_dim).transpose(1, 0, 2)
        if self.kv[i] is not None:
            k = np.concatenate([self.kv[i][0], k], axis=1)
            v = np.concatenate([self.kv[i][1], v], axis=1)
        self.kv[i] = (k, v)
        group = self.n_head // self.n_head_kv
        k_per_head, v_per_head = np.repeat(k, group, axis=0), np.repeat(v, group, axis=0)
        scores = q @ k_per_head.transpose(0, 2, 1) / np.sqrt(self.head_dim)
        key_positions = np.arange(k.shape[1])
        scores[:, key_positions[None, :] > positions[:, None]] = -np.inf
        scores -= scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        out = (probs @ v_per_head).transpose(1, 0, 2).reshape(n, self.n_head * self.head_dim)
        return self.linear(out, w["attn_output"], w["attn_output.bias"])

    def forward(self, tokens):
        """Runs the new tokens after those already in the KV cache; returns their
        logits, float64 [len(tokens)][vocab]."""
        tokens = np.asarray(tokens, dtype=np.int64)
        positions = np.arange(self.n_past, self.n_past + len(tokens))
        x = self.token_embd[tokens].astype(np.float64)
        for i in range(self.n_layer):
            w = self.layer(i)
            x = x + self.attention(i, w, self.rms_norm(x, w["attn_norm"]), positions)
            h = self.rms_norm(x, w["ffn_norm"])
            gate = self.linear(h, w["ffn_gate"], None)
            up = self.linear(h, w["ffn_up"], None)
            x = x + self.linear(gate / (1.0 + np.exp(-gate)) * up, w["ffn_down"], None)
        self.n_past += len(tokens)
        x = self.rms_norm(x, self.output_norm)
        # The LM head in slices, so its float64 copy never exists whole.
        logits = np.empty((len(tokens), self.vocab_size))
        for lo in range(0, self.vocab_size, 8192):
            logits[:, lo:lo + 8192] = x @ self.lm_head[lo:lo + 8192].T.astype(np.float64)
        return logits


# --- vocabulary: hand-split prompts in, readable text out ----------------------------

def gpt2_byte_to_unicode():
    """GPT-2's byte-level BPE alphabet: printable bytes stand for themselves, the others
    (space, control bytes...) for code points from 256 up, so ' ' is 'Ġ' and '\\n' is 'Ċ'."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    mapping, extra = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED = 3, 4
PRE_TOKEN = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d| ?[^\s\w]+|\n| +(?! )| +")


class Vocab:
    """The token strings of a GGUF file and the two directions this script needs."""

    def __init__(self, gguf):
        meta = gguf.metadata
        self.tokens = meta.get("tokenizer.ggml.tokens")
        if not self.tokens:
            raise GGUFError(f"{gguf.path}: no tokenizer.ggml.tokens in the metadata")
        self.model = meta.get("tokenizer.ggml.model", "gpt2")
        # SentencePiece models read text as if it began with a space unless told not to.
        self.add_space_prefix = meta.get("tokenizer.ggml.add_space_prefix", self.model == "llama")
        types = meta.get("tokenizer.ggml.token_type", [1] * len(self.tokens))
        self.special = {t for t, kind in zip(self.tokens, types)
                        if kind in (TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED)}
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        merges = meta.get("tokenizer.ggml.merges", [])
        self.merge_rank = {tuple(m.split(" ", 1)): rank for rank, m in enumerate(merges)}
        self.byte_to_char = gpt2_byte_to_unicode()
        self.char_to_byte = {c: b for b, c in self.byte_to_char.items()}

    def piece_spelling(self, piece):
        """How a pre-token is spelt in the vocabulary."""
        if self.model == "gpt2":
            return "".join(self.byte_to_char[b] for b in piece.encode("utf-8"))
        if self.model == "llama":
            return piece.replace(" ", "\u2581") if piece != "\n" else "<0x0A>"
        raise GGUFError(f"tokenizer model {self.model!r}: --text supports gpt2 and llama vocabularies")

    def split(self, text):
        """(piece, id) pairs for text: special tokens whole, other text by PRE_TOKEN, each
        piece looked up whole; a piece missing from the vocabulary is an error."""
        specials = sorted(self.special, key=len, reverse=True)
        parts = re.split("(" + "|".join(map(re.escape, specials)) + ")", text) if specials else [text]
        pairs = []
        space_prefix = self.model == "llama" and self.add_space_prefix
        for part in parts:
            if part in self.special:
                pairs.append((part, self.ids[part]))
                continue
            if space_prefix and part:
                part = part if part.startswith(" ") else " " + part
                space_prefix = False
            for piece in PRE_TOKEN.findall(part):
                spelt = self.piece_spelling(piece)
                for sub in ([spelt] if spelt in self.ids else self.bpe(spelt)):
                    if sub not in self.ids:
                        raise GGUFError(f"--text: piece {piece!r} (vocab spelling {sub!r}) is not a "
                                        "vocabulary entry; give --tokens instead")
                    pairs.append((sub, self.ids[sub]))
        return pairs

    def bpe(self, spelt):
        """Byte-level BPE of one pre-token not in the vocabulary whole: merge the adjacent
        pair of lowest merge rank until none is left (gpt2 vocabularies only)."""
        if self.model != "gpt2" or not self.merge_rank:
            return [spelt]
        parts = list(spelt)
        while len(parts) > 1:
            ranks = [self.merge_rank.get((a, b)) for a, b in zip(parts, parts[1:])]
            best = min((r, j) for j, r in enumerate(ranks) if r is not None) if any(
                r is not None for r in ranks) else None
            if best is None:
                break
            j = best[1]
            parts[j:j + 2] = [parts[j] + parts[j + 1]]
        return parts

    def decode(self, ids):
        out = bytearray()
        for i in ids:
            token = self.tokens[i]
            if token in self.special:
                out += token.encode("utf-8")
            elif self.model == "gpt2":
                out += bytes(self.char_to_byte.get(c, ord("?")) for c in token)
            elif re.fullmatch(r"<0x[0-9A-Fa-f]{2}>", token):
                out.append(int(token[3:5], 16))
            else:
                out += token.replace("\u2581", " ").encode("utf-8")
        return out.decode("utf-8", errors="replace")


# --- command line ---------------------------------------------------------------------

def parse_token_list(text, vocab_size):
    try:
        ids = [int(t) for t in text.split(",") if t.strip()]
    except ValueError as err:
        raise GGUFError(f"--tokens {text!r}: not a comma list of integers") from err
    bad = [i for i in ids if not 0 <= i < vocab_size]
    if bad or not ids:
        raise GGUFError(f"--tokens: need at least one id, each in [0, {vocab_size}); got {bad or 'none'}")
    return ids


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a llama-architecture GGUF file")
    prompt = parser.add_mutually_exclusive_group(required=True)
    prompt.add_argument("--tokens", help="prompt token ids, comma-separated")
    prompt.add_argument("--text", help="prompt text split into whole vocabulary entries (see above)")
    parser.add_argument("--out", help="write the prompt's logits here (raw little-endian float32)")
    parser.add_argument("--positions-all", action="store_true",
                        help="--out holds every prompt position, not only the last")
    parser.add_argument("--greedy", type=int, default=0, metavar="N",
                        help="print N greedily decoded token ids after the prompt")
    parser.add_argument("--stop-at-eos", action="store_true", help="end --greedy at the EOS token")
    parser.add_argument("--decode", action="store_true", help="also print the --greedy ids as text")
    parser.add_argument("--show-pieces", action="store_true",
                        help="print the prompt's (vocab entry, id) pairs to stderr")
    args = parser.parse_args(argv)
    if args.greedy < 0:
        parser.error("--greedy must be >= 0")
    if not args.out and not args.greedy and not args.show_pieces:
        parser.error("nothing to do: give --out, --greedy or --show-pieces")

    try:
        gguf = GGUFReader(args.model)
        model = LlamaReference(gguf, cache_weights=args.greedy > 1)
        vocab = Vocab(gguf) if (args.text or args.decode or args.show_pieces) else None
        if args.text is not None:
            pairs = vocab.split(args.text)
            if not pairs:
                raise GGUFError("--text: empty prompt")
            ids = [i for _, i in pairs]
        else:
            ids = parse_token_list(args.tokens, model.vocab_size)
            pairs = [(vocab.tokens[i] if vocab else "", i) for i in ids]
    except GGUFError as err:
        print(f"llama_gguf_reference: {err}", file=sys.stderr)
        return 1
    if args.show_pieces:
        print(" ".join(f"{p!r}={i}" for p, i in pairs), file=sys.stderr)
        print("prompt ids: " + ",".join(map(str, ids)), file=sys.stderr)

    if not args.out and not args.greedy:
        return 0
    logits = model.forward(ids)
    if args.out:
        rows = logits if args.positions_all else logits[-1:]
        try:
            rows.astype("<f4").tofile(args.out)
        except OSError as err:
            print(f"llama_gguf_reference: cannot write {args.out}: {err}", file=sys.stderr)
            return 1
    if args.greedy:
        eos = gguf.metadata.get("tokenizer.ggml.eos_token_id")
        generated = []
        next_id = int(np.argmax(logits[-1]))
        while True:
            generated.append(next_id)
            if len(generated) == args.greedy or (args.stop_at_eos and next_id == eos):
                break
            next_id = int(np.argmax(model.forward([next_id])[-1]))
        print(",".join(map(str, generated)))
        if args.decode:
            print(json.dumps(vocab.decode(generated), ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
