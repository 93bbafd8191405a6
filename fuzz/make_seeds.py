#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/) from fixtures/ and
configs/lists/. Run from anywhere: python3 fuzz/make_seeds.py. Needs the `zstd` and (optionally)
`pzstd` command-line tools. The seeds are committed; rerun only to change them."""

import gzip
import json
import random
import shutil
import struct
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
MODELS = ROOT / "fixtures" / "models"
# Must match sluice_classifier::fuzzing::FIXTURES.
FIXTURES = ["bert", "distilbert", "xlm-roberta", "modernbert", "deberta-v2", "hashed-ngram", "st-mean"]


def write(target, name, data):
    path = CORPUS / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def chunker():
    # Header: mode, name, target, max_line (x2), cut_a, cut_b, reader capacity.
    corpus = ROOT / "fixtures" / "corpus"
    clean = (corpus / "clean.jsonl").read_bytes()
    malformed = (corpus / "malformed.jsonl").read_bytes()
    hazard_zst = (corpus / "hazard.jsonl.zst").read_bytes()
    unicode_gz = (corpus / "unicode.jsonl.gz").read_bytes()
    hazard = subprocess.run(["zstd", "-dc"], input=hazard_zst, capture_output=True, check=True).stdout
    unicode = gzip.decompress(unicode_gz)
    h = lambda mode, name, target=64, max_line=100, a=50, b=120, cap=7: bytes(
        [mode, name, target, max_line, a, b, cap]
    )
    write("chunker", "plain-clean", h(0, 0) + clean)
    write("chunker", "plain-malformed", h(0, 0, 0, 20) + malformed)
    write("chunker", "file-zstd", h(0, 1) + hazard_zst)
    write("chunker", "file-gzip", h(0, 2) + unicode_gz)
    write("chunker", "file-empty-zst", h(0, 1))
    write("chunker", "zstd-frames", h(1, 0, 200, 255, 10, 90, 1) + hazard)
    write("chunker", "gzip-frames", h(2, 0, 16, 30, 3, 7, 255) + unicode)
    write("chunker", "damaged-zstd", h(3, 0, 2, 9) + clean)
    write("chunker", "damaged-gzip", h(3, 1, 3, 9) + clean)
    write("chunker", "crlf-long-lines", h(0, 0, 8, 4) + b"{}\r\n\n" + b"x" * 300 + b"\n\r\nend")
    skippable = struct.pack("<II", 0x184D2A50, 4) + b"meta"
    frame = subprocess.run(["zstd", "-c", "-q"], input=b'{"a":1}\n', capture_output=True, check=True).stdout
    write("chunker", "skippable-frames", h(0, 1) + skippable + frame + struct.pack("<II", 0x184D2A5F, 0) + frame)
    if shutil.which("pzstd"):
        p = subprocess.run(["pzstd", "-c", "-q", "-p", "1"], input=clean, capture_output=True, check=True)
        write("chunker", "pzstd", h(0, 1) + p.stdout)


def term_list():
    lists = ROOT / "configs" / "lists"
    hazard = (lists / "hazard-terms.tsv").read_bytes()
    badwords = (lists / "ldnoobw-en.txt").read_bytes()
    text = (ROOT / "fixtures" / "corpus" / "clean.jsonl").read_bytes()
    unicode = gzip.decompress((ROOT / "fixtures" / "corpus" / "unicode.jsonl.gz").read_bytes())
    # flags: 1 default category, 2 whole word, 4 case-insensitive, 8 NFKC, bits 4-5 engine.
    write("term_list", "hazard-default", bytes([0b0000_1111]) + hazard + b"\xff" + text)
    write("term_list", "hazard-dfa-unicode", bytes([0b0001_1110]) + hazard + b"\xff" + unicode)
    write("term_list", "hazard-nfa-substring", bytes([0b0010_0100]) + hazard + b"\xff" + unicode)
    write("term_list", "badwords-words", bytes([0b0011_0110]) + badwords + b"\xff" + text)
    write(
        "term_list",
        "columns",
        bytes([0b0000_1011])
        + "\ufeff# comment\nsarin\n\n  nerve agent \tchem\t2.5\r\nricin\t\t0.5\nvx\tchem\t\nＳａｒｉｎ\tx\t0\n".encode()
        + b"\xff"
        + "Sarin and ＳＡＲＩＮ, nerve  agent; ricin! vx.".encode(),
    )
    write("term_list", "bad-weight", bytes([0b0000_0110]) + b"a\tc\t-1\n" + b"\xff" + b"a")


def safetensors(tensors):
    """Bytes of a safetensors file of f32 tensors {name: (shape, values)}."""
    header, data = {}, b""
    for name, (shape, values) in tensors.items():
        raw = struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def tensors(shapes, seed):
    rng = random.Random(seed)
    out = {}
    for name, shape in shapes.items():
        n = 1
        for d in shape:
            n *= d
        out[name] = (shape, [round(rng.uniform(-0.5, 0.5), 3) for _ in range(n)])
    return out


def tiny_bert():
    h, i, v = 4, 8, 164
    config = {
        "architectures": ["BertForSequenceClassification"], "model_type": "bert",
        "vocab_size": v, "hidden_size": h, "num_hidden_layers": 1, "num_attention_heads": 1,
        "intermediate_size": i, "max_position_embeddings": 16, "type_vocab_size": 2,
        "hidden_act": "gelu", "layer_norm_eps": 1e-12, "pad_token_id": 0,
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "initializer_range": 0.02,
        "id2label": {"0": "clean", "1": "bad"},
    }
    p = "bert.encoder.layer.0."
    shapes = {
        "bert.embeddings.word_embeddings.weight": [v, h],
        "bert.embeddings.position_embeddings.weight": [16, h],
        "bert.embeddings.token_type_embeddings.weight": [2, h],
        "bert.embeddings.LayerNorm.weight": [h], "bert.embeddings.LayerNorm.bias": [h],
        p + "attention.self.query.weight": [h, h], p + "attention.self.query.bias": [h],
        p + "attention.self.key.weight": [h, h], p + "attention.self.key.bias": [h],
        p + "attention.self.value.weight": [h, h], p + "attention.self.value.bias": [h],
        p + "attention.output.dense.weight": [h, h], p + "attention.output.dense.bias": [h],
        p + "attention.output.LayerNorm.weight": [h], p + "attention.output.LayerNorm.bias": [h],
        p + "intermediate.dense.weight": [i, h], p + "intermediate.dense.bias": [i],
        p + "output.dense.weight": [h, i], p + "output.dense.bias": [h],
        p + "output.LayerNorm.weight": [h], p + "output.LayerNorm.bias": [h],
        "bert.pooler.dense.weight": [h, h], "bert.pooler.dense.bias": [h],
        "classifier.weight": [2, h], "classifier.bias": [2],
    }
    return config, safetensors(tensors(shapes, 1))


def tiny_hashed():
    config = {
        "architectures": ["HashedNgramClassifier"], "model_type": "hashed-ngram",
        "num_buckets": 16, "embedding_dim": 4, "word_ngrams": 2, "lowercase": True,
        "id2label": {"0": "clean", "1": "bad"}, "problem_type": "single_label_classification",
    }
    shapes = {"embedding.weight": [16, 4], "classifier.weight": [2, 4], "classifier.bias": [2]}
    return config, safetensors(tensors(shapes, 2))


def model_loader():
    for i, name in enumerate(FIXTURES):
        write("model_loader", f"config-{name}", bytes([i, 0]) + (MODELS / name / "config.json").read_bytes())
    for name in ["bert", "xlm-roberta"]:
        i = FIXTURES.index(name)
        write("model_loader", f"tokenizer-{name}", bytes([i, 3]) + (MODELS / name / "tokenizer.json").read_bytes())
    for name, (config, weights) in [("bert", tiny_bert()), ("hashed-ngram", tiny_hashed())]:
        text = json.dumps(config, indent=1).encode()
        both = struct.pack("<H", len(text)) + text + weights
        write("model_loader", f"tiny-{name}", bytes([FIXTURES.index(name), 2]) + both)
        write("model_loader", f"weights-tiny-{name}", bytes([FIXTURES.index(name), 1]) + weights)


if __name__ == "__main__":
    for target in ["chunker", "term_list", "model_loader"]:
        shutil.rmtree(CORPUS / target, ignore_errors=True)
    chunker()
    term_list()
    model_loader()
    for target in sorted(CORPUS.iterdir()):
        files = list(target.iterdir())
        print(f"{target.name}: {len(files)} files, {sum(f.stat().st_size for f in files)} bytes")
