#!/usr/bin/env python3
"""make_gguf_seeds.py — writes the seed corpus of fuzz_gguf (tests/fuzz/corpus/gguf/):
small valid GGUF files that reach every metadata value type, string and numeric arrays,
every accepted tensor type and both versions, plus a few files with one defect each.
Run it from anywhere; it rewrites the corpus directory next to it. Standard library only."""
import os
import struct

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
GGML_F32, GGML_F16, GGML_Q4_0, GGML_Q4_1, GGML_Q8_0, GGML_BF16 = 0, 1, 2, 3, 8, 30
GGML_Q5_0, GGML_Q4_K, GGML_Q6_K = 6, 12, 14
GGML_Q5_K = 13  # a real ggml type the reader does not decode
SCALAR_FORMAT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f",
                 BOOL: "<B", U64: "<Q", I64: "<q", F64: "<d"}
BLOCK = {GGML_F32: (1, 4), GGML_F16: (1, 2), GGML_BF16: (1, 2),
         GGML_Q8_0: (32, 34), GGML_Q4_0: (32, 18), GGML_Q4_1: (32, 20),
         GGML_Q5_0: (32, 22), GGML_Q4_K: (256, 144), GGML_Q6_K: (256, 210)}


def gguf_str(s):
    data = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(data)) + data


def value(vtype, v):
    if vtype == STRING:
        return gguf_str(v)
    if vtype == ARRAY:
        elem_type, items = v
        out = struct.pack("<IQ", elem_type, len(items))
        return out + b"".join(value(elem_type, item) for item in items)
    return struct.pack(SCALAR_FORMAT[vtype], v)


def gguf_file(kvs, tensors, version=3, alignment=32):
    """kvs: [(key, type, value)]; tensors: [(name, dims, ggml_type)] laid out in order."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for key, vtype, v in kvs:
        out += gguf_str(key) + struct.pack("<I", vtype) + value(vtype, v)
    offset, blobs = 0, []
    for name, dims, ggml_type in tensors:
        out += gguf_str(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", ggml_type, offset)
        n = 1
        for d in dims:
            n *= d
        block, block_bytes = BLOCK[ggml_type]
        nbytes = n // block * block_bytes
        blobs.append(bytes((i * 37 + 11) % 256 for i in range(nbytes)))
        offset += nbytes
        offset += -offset % alignment
    out += b"\0" * (-len(out) % alignment)
    for i, blob in enumerate(blobs):
        out += blob
        if i + 1 < len(blobs):
            out += b"\0" * (-len(out) % alignment)
    return out


def tiny_llama(vocab=8, hidden=8, ffn=32):
    kvs = [("general.architecture", STRING, "llama"), ("general.name", STRING, "seed"),
           ("llama.block_count", U32, 1), ("llama.embedding_length", U32, hidden),
           ("llama.feed_forward_length", U32, ffn), ("llama.attention.head_count", U32, 2),
           ("llama.attention.head_count_kv", U32, 2), ("llama.rope.freq_base", F32, 10000.0),
           ("llama.attention.layer_norm_rms_epsilon", F32, 1e-5), ("tokenizer.ggml.model", STRING, "llama"),
           ("tokenizer.ggml.tokens", ARRAY, (STRING, ["<unk>", "<s>", "</s>"] + [f"t{i}" for i in range(vocab - 3)])),
           ("tokenizer.ggml.scores", ARRAY, (F32, [float(-i) for i in range(vocab)])),
           ("tokenizer.ggml.token_type", ARRAY, (I32, [2, 3, 3] + [1] * (vocab - 3))),
           ("tokenizer.ggml.add_bos_token", BOOL, 1)]
    t = [("token_embd.weight", [hidden, vocab], GGML_F16)]
    for name, dims in [("attn_norm", [hidden]), ("attn_q", [hidden, hidden]), ("attn_k", [hidden, hidden]),
                       ("attn_v", [hidden, hidden]), ("attn_output", [hidden, hidden]), ("ffn_norm", [hidden]),
                       ("ffn_gate", [hidden, ffn]), ("ffn_up", [hidden, ffn]), ("ffn_down", [ffn, hidden])]:
        t.append((f"blk.0.{name}.weight", dims, GGML_F32 if len(dims) == 1 else GGML_F16))
    t += [("output_norm.weight", [hidden], GGML_F32), ("output.weight", [hidden, vocab], GGML_F16)]
    return kvs, t


def main():
    corpus = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "gguf")
    os.makedirs(corpus, exist_ok=True)
    seeds = {}
    kvs, tensors = tiny_llama()
    seeds["tiny_llama_f16.gguf"] = gguf_file(kvs, tensors)

    every_value = [("v.u8", U8, 200), ("v.i8", I8, -100), ("v.u16", U16, 60000), ("v.i16", I16, -30000),
                   ("v.u32", U32, 4000000000), ("v.i32", I32, -5), ("v.f32", F32, 0.5), ("v.bool", BOOL, 0),
                   ("v.str", STRING, "text"), ("v.u64", U64, 2**40), ("v.i64", I64, -(2**40)),
                   ("v.f64", F64, 1e300), ("v.arr_u8", ARRAY, (U8, [1, 2, 3])),
                   ("v.arr_i64", ARRAY, (I64, [-1, 2**33])), ("v.arr_f64", ARRAY, (F64, [0.25, -1e-300])),
                   ("v.arr_bool", ARRAY, (BOOL, [0, 1])), ("v.arr_empty", ARRAY, (STRING, [])),
                   ("general.alignment", U32, 64)]
    quant = [("q8", [64, 2], GGML_Q8_0), ("q4_0", [32, 3], GGML_Q4_0), ("q4_1", [32], GGML_Q4_1),
             ("bf16", [4, 2, 2], GGML_BF16), ("f32", [2, 1, 1, 2], GGML_F32), ("f16", [6], GGML_F16),
             ("q5_0", [64], GGML_Q5_0), ("q4_k", [256, 2], GGML_Q4_K), ("q6_k", [256], GGML_Q6_K)]
    seeds["every_type_align64.gguf"] = gguf_file(every_value, quant, alignment=64)
    seeds["v2_quant.gguf"] = gguf_file([("general.architecture", STRING, "llama")], quant, version=2)
    seeds["metadata_only.gguf"] = gguf_file(every_value[:-1], [])

    # One defect each: the reader must refuse them with a message.
    good = seeds["tiny_llama_f16.gguf"]
    seeds["bad_truncated.gguf"] = good[: len(good) - 5]
    seeds["bad_version1.gguf"] = good[:4] + struct.pack("<I", 1) + good[8:]
    seeds["bad_alignment.gguf"] = gguf_file([("general.alignment", U32, 24)], quant[:1])
    seeds["bad_duplicate_tensor.gguf"] = gguf_file([], [("w", [4], GGML_F32), ("w", [4], GGML_F32)])
    seeds["bad_unknown_type.gguf"] = gguf_file([], [("w", [32], GGML_Q8_0)]).replace(
        struct.pack("<I", GGML_Q8_0) + struct.pack("<Q", 0), struct.pack("<I", GGML_Q5_K) + struct.pack("<Q", 0), 1)
    seeds["bad_nested_array.gguf"] = (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + gguf_str("a") +
                                      struct.pack("<IIQ", ARRAY, ARRAY, 0))

    write_corpus(corpus, seeds)


def write_corpus(corpus, seeds):
    """Replaces the files of the directory corpus by seeds ({name: bytes})."""
    os.makedirs(corpus, exist_ok=True)
    for name in os.listdir(corpus):
        os.remove(os.path.join(corpus, name))
    for name, data in sorted(seeds.items()):
        with open(os.path.join(corpus, name), "wb") as f:
            f.write(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
