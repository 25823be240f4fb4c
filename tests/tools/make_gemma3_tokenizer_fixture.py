#!/usr/bin/env python3
"""make_gemma3_tokenizer_fixture.py — known-answer token ids for Gemma 3's SentencePiece
vocabulary (262,144 pieces, byte fallback, user-defined and control pieces), made with the
`sentencepiece` library itself over the vocabulary of the real gemma-3-270m-q4_k_m.gguf.
Writes two files for test_tokenizer_gemma3.c:

- tests/data/gemma3_tokenizer_fixture.txt: one line per text,
      encode gemma3 <plain|special> <hex UTF-8 text> <id,id,...>
  "plain" ids treat control pieces written in the text as ordinary text (sentencepiece's
  own behaviour); "special" ids are the text cut at control pieces (<start_of_turn>, ...),
  each piece its id and each stretch between encoded by sentencepiece, which is how
  llama.cpp and Hugging Face treat special tokens. No BOS in either.
- tests/data/gemma3_tokenizer_subset.gguf: a GGUF with only the tokenizer metadata and the
  pieces these texts can reach (every piece that is a substring of a text, raw or with
  spaces as U+2581; the byte pieces; all user-defined pieces; <pad> <eos> <bos> <unk>
  <mask>), in their original order with their scores and types, plus the array
  `test.original_id` giving each one's id in the full vocabulary. A SentencePiece merge
  only ever asks for pieces that are substrings of the text, so the subset gives the same
  segmentation as the full vocabulary: the test runs on every checkout, without the model.

How the reference is configured: model type BPE, byte fallback, no dummy prefix, extra
whitespace kept, and spaces turned into U+2581 by a normalisation rule rather than by
SentencePiece's whitespace escaping, so that user-defined pieces (Gemma's space runs ids
138-167, newline runs 107-137, tab runs, HTML tags) are matched in the raw text first, as
llama.cpp (user-defined pieces split out before SPM) and Hugging Face (added tokens with
normalized=false) do for Gemma. With plain escaping the 30 space-run pieces could never
match. The rule's compiled form is taken from a throwaway model the sentencepiece trainer
builds with normalization_rule_tsv "20 -> 2581".

Run by hand, once, with the model fetched (scripts/fetch-gemma3.sh):

    /usr/bin/python3 -m pip install --target /tmp/tokdeps gguf sentencepiece protobuf
    PYTHONPATH=/tmp/tokdeps /usr/bin/python3 tests/tools/make_gemma3_tokenizer_fixture.py \
        ~/.cache/uniprefill-bench/models/gemma-3-270m-q4_k_m.gguf tests/data
"""
import io
import os
import sys
import tempfile

import sentencepiece as spm
from gguf import GGUFReader, GGUFWriter, GGUFValueType
from sentencepiece import sentencepiece_model_pb2 as sp_model

TEXTS = [
    "Hello, world!",
    "The capital of France is",
    "Monday, Tuesday, Wednesday,",
    "Numbers: 12345 and 3.14159, year 2024, 1,000,000",
    "   leading spaces and trailing   ",
    "multiple     spaces    between  words",
    "tabs\tand\t\tnewlines\n\n\r\nmixed \t \n end\n",
    "code:\n    def f(x):\n        return x**2  # comment\n",
    "\u00dcn\u00efc\u00f6d\u00e9 accents: caf\u00e9, na\u00efve, Stra\u00dfe, \u0153uvre",
    "\u4e2d\u6587\u5b57\u7b26\u6d4b\u8bd5\uff0c\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3001\ud55c\uad6d\uc5b4",
    "emoji \U0001f642\U0001f999 and symbols \u2211\u222b\u221a \u2260 \u2264",
    "private use \U000f0000\U0010fffd falls back to bytes",
    "<b>bold</b> and <table><tr><td>cell</td></tr></table>",
    "\n\n\n\nafter four newlines",
    "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n",
    "text <bos> with <eos> control text <end_of_turn>",
]
CONTROL_IN_TEXT = ["<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>"]
SPACE = "\u2581"
BYTE_TYPE, USER_DEFINED, CONTROL = 6, 4, 3


def read_vocab(path):
    fields = GGUFReader(path).fields

    def array(key, convert):
        f = fields[key]
        return [convert(f.parts[i]) for i in f.data]

    return (array("tokenizer.ggml.tokens", lambda p: bytes(p).decode("utf-8")),
            array("tokenizer.ggml.scores", lambda p: float(p[0])),
            array("tokenizer.ggml.token_type", lambda p: int(p[0])))


def space_rule_charsmap():
    with tempfile.TemporaryDirectory() as tmp:
        rule = os.path.join(tmp, "rule.tsv")
        with open(rule, "w") as f:
            f.write("20\t2581\n")
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(sentence_iterator=iter(["hello world abc def"] * 50), model_writer=model,
                                       vocab_size=20, model_type="bpe", normalization_rule_tsv=rule,
                                       add_dummy_prefix=False, remove_extra_whitespaces=False, minloglevel=2)
    proto = sp_model.ModelProto()
    proto.ParseFromString(model.getvalue())
    return proto.normalizer_spec.precompiled_charsmap


def reference_processor(tokens, scores, types, unk_id):
    m = sp_model.ModelProto()
    m.trainer_spec.model_type = sp_model.TrainerSpec.BPE
    m.trainer_spec.byte_fallback = True
    m.trainer_spec.vocab_size = len(tokens)
    m.trainer_spec.unk_id, m.trainer_spec.bos_id, m.trainer_spec.eos_id, m.trainer_spec.pad_id = unk_id, 2, 1, 0
    m.normalizer_spec.name = "user_defined"
    m.normalizer_spec.precompiled_charsmap = space_rule_charsmap()
    m.normalizer_spec.add_dummy_prefix = False
    m.normalizer_spec.remove_extra_whitespaces = False
    m.normalizer_spec.escape_whitespaces = False
    for i, (t, s, ty) in enumerate(zip(tokens, scores, types)):
        p = m.pieces.add()
        # The GGUF marks <unk> as control; sentencepiece needs exactly one UNKNOWN piece.
        p.piece, p.score, p.type = t, s, (sp_model.ModelProto.SentencePiece.UNKNOWN if i == unk_id else ty)
    return spm.SentencePieceProcessor(model_proto=m.SerializeToString())


def special_ids(sp, text, vocab_id):
    out, rest = [], text
    while rest:
        hits = [(rest.find(c), c) for c in CONTROL_IN_TEXT if rest.find(c) >= 0]
        if not hits:
            out += sp.encode(rest)
            break
        at, piece = min(hits)
        if at:
            out += sp.encode(rest[:at])
        out.append(vocab_id[piece])
        rest = rest[at + len(piece):]
    return out


def reachable_ids(tokens, types, vocab_id):
    keep = {0, 1, 2, 3, 4}
    keep |= {i for i, t in enumerate(types) if t in (BYTE_TYPE, USER_DEFINED)}
    for text in TEXTS:
        for form in (text, text.replace(" ", SPACE)):
            for a in range(len(form)):
                for b in range(a + 1, len(form) + 1):
                    i = vocab_id.get(form[a:b])
                    if i is not None:
                        keep.add(i)
    return sorted(keep)


def write_subset(path, tokens, scores, types, keep):
    w = GGUFWriter(path, arch="gemma3-tokenizer-subset")
    w.add_string("tokenizer.ggml.model", "llama")
    w.add_string("tokenizer.ggml.pre", "default")
    w.add_array("tokenizer.ggml.tokens", [tokens[i] for i in keep])
    w.add_array("tokenizer.ggml.scores", [float(scores[i]) for i in keep])
    w.add_array("tokenizer.ggml.token_type", [int(types[i]) for i in keep])
    new_id = {old: new for new, old in enumerate(keep)}
    w.add_uint32("tokenizer.ggml.bos_token_id", new_id[2])
    w.add_uint32("tokenizer.ggml.eos_token_id", new_id[1])
    w.add_uint32("tokenizer.ggml.unknown_token_id", new_id[3])
    w.add_uint32("tokenizer.ggml.padding_token_id", new_id[0])
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    w.add_bool("tokenizer.ggml.add_eos_token", False)
    w.add_bool("tokenizer.ggml.add_space_prefix", False)
    w.add_key_value("test.original_id", [int(i) for i in keep], GGUFValueType.ARRAY)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    tokens, scores, types = read_vocab(sys.argv[1])
    vocab_id = {}
    for i, t in enumerate(tokens):
        vocab_id.setdefault(t, i)
    sp = reference_processor(tokens, scores, types, unk_id=3)
    lines = ["# Gemma 3 token ids from the sentencepiece library over gemma-3-270m-q4_k_m.gguf's vocabulary;",
             "# see tests/tools/make_gemma3_tokenizer_fixture.py. encode gemma3 <plain|special> <hex text> <ids>"]
    byte_fallback_seen = False
    for text in TEXTS:
        plain = sp.encode(text)
        byte_fallback_seen |= any(types[i] == BYTE_TYPE for i in plain)
        hex_text = text.encode("utf-8").hex()
        lines.append(f"encode gemma3 plain {hex_text} {','.join(map(str, plain))}")
        if any(c in text for c in CONTROL_IN_TEXT):
            special = special_ids(sp, text, vocab_id)
            lines.append(f"encode gemma3 special {hex_text} {','.join(map(str, special))}")
    if not byte_fallback_seen:
        sys.exit("no text exercises byte fallback: pick characters the vocabulary lacks")
    out_dir = sys.argv[2]
    with open(os.path.join(out_dir, "gemma3_tokenizer_fixture.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    keep = reachable_ids(tokens, types, vocab_id)
    write_subset(os.path.join(out_dir, "gemma3_tokenizer_subset.gguf"), tokens, scores, types, keep)
    print(f"{len(TEXTS)} texts, subset of {len(keep)} pieces")


if __name__ == "__main__":
    main()
