#!/usr/bin/env python3
"""check_hf_tokenizer_fixtures.py — cross-checks, with Hugging Face's own `tokenizers`
library, the two tokenizer.json inputs test_tokenizer_hf.c relies on:

1. the hand-written tests/data/hf_tokenizer_tiny/tokenizer.json: the library must load
   it and give the ids worked out by hand in test_tokenizer_hf.c (tiny_known_ids);
2. optionally, a directory written by gguf_tokenizer_to_hf.py from the SmolLM2 GGUF: the
   library must load it and give tests/data/tokenizer_fixture.txt's smollm2 ids (which
   came from the library over the GGUF's vocabulary), so the converter writes the
   library's schema as the library reads it.

Run by hand (not by CI: it needs the `tokenizers` wheel), in a throwaway venv:
    python3 -m venv /tmp/tokvenv && /tmp/tokvenv/bin/pip install tokenizers
    /tmp/tokvenv/bin/python tests/tools/check_hf_tokenizer_fixtures.py [CONVERTED_SMOLLM2_DIR]
Exits 0 when everything matches, 1 otherwise.
"""
import os
import sys

from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")

# (text, parse special tokens, ids) as test_tokenizer_hf.c's tiny_known_ids has them.
TINY_CASES = [
    ("abc ab", False, [13, 14]),
    (" a b", False, [12, 7, 4]),
    ("a12", False, [3, 9, 10]),
    ("cc\nd", False, [15, 8, 6]),
    ("ccc", False, [15, 5]),
    ("abcc", False, [13, 5]),
    ("a  b", False, [3, 7, 7, 4]),
    ("bd", False, [4, 6]),
    ("<|im_start|>ab<|im_end|>", True, [1, 11, 2]),
    ("a<tool>b", False, [3, 18, 4]),
    ("<|im_end|>ab", False, [6, 11]),
]


def encode(tok, text, parse_special):
    # The library always matches special tokens unless told to treat them as text.
    tok.encode_special_tokens = not parse_special
    return tok.encode(text, add_special_tokens=False).ids


def check_tiny():
    tok = Tokenizer.from_file(os.path.join(DATA, "hf_tokenizer_tiny", "tokenizer.json"))
    bad = 0
    for text, special, want in TINY_CASES:
        got = encode(tok, text, special)
        if got != want:
            print(f"tiny: {text!r}: tokenizers gives {got}, the test expects {want}")
            bad += 1
    decoded = tok.decode([13, 14, 8, 12])
    if decoded != "abc ab\n a":
        print(f"tiny: decode gives {decoded!r}")
        bad += 1
    print(f"tiny fixture: {len(TINY_CASES) - bad} of {len(TINY_CASES)} cases match")
    return bad


def check_converted(directory):
    tok = Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
    bad = checked = 0
    with open(os.path.join(DATA, "tokenizer_fixture.txt"), encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if len(fields) != 5 or fields[0] != "encode" or fields[1] != "smollm2":
                continue
            text = bytes.fromhex(fields[3]).decode("utf-8") if fields[3] != "-" else ""
            want = [int(x) for x in fields[4].split(",")] if fields[4] != "-" else []
            got = encode(tok, text, fields[2] == "special")
            checked += 1
            if got != want:
                print(f"converted: {text!r} ({fields[2]}): tokenizers gives {got}, the fixture {want}")
                bad += 1
    print(f"converted SmolLM2: {checked - bad} of {checked} fixture lines match")
    return bad + (checked == 0)


def main(argv):
    bad = check_tiny()
    if len(argv) > 1:
        bad += check_converted(argv[1])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
