#!/usr/bin/env python3
"""Writes a random-weight BERT classifier with all-MiniLM-L6-v2's shape (6 layers, 384 wide, 12
heads, 1536 intermediate, 512 positions, two labels) and a WordPiece tokenizer whose vocabulary is
the most frequent words of a plain-JSONL corpus, for speed measurements where the real model
cannot travel (a GPU machine that reaches nothing). Speed does not depend on the weights' values.

    python3 benches/gpu/make_model.py CORPUS_DIR MODEL_DIR     # CORPUS_DIR: *.jsonl (plain)

Needs numpy, safetensors and tokenizers (present on the GPU machines).
"""

import collections
import json
import re
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

HIDDEN, LAYERS, HEADS, INTERMEDIATE, POSITIONS, VOCAB = 384, 6, 12, 1536, 512, 30522
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def vocabulary(corpus: Path) -> list:
    counts = collections.Counter()
    for shard in sorted(corpus.glob("*.jsonl")):
        with open(shard, encoding="utf-8") as f:
            for line in f:
                counts.update(re.findall(r"\w+", json.loads(line)["text"].lower()))
    pieces = [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789")
    vocab = SPECIALS + chars + pieces
    seen = set(vocab)
    for word, _ in counts.most_common():
        if len(vocab) == VOCAB:
            break
        if word not in seen:
            vocab.append(word)
            seen.add(word)
    while len(vocab) < VOCAB:
        vocab.append(f"[unused{len(vocab)}]")
    return vocab


def tokenizer(vocab: list) -> Tokenizer:
    t = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    t.normalizer = normalizers.BertNormalizer(lowercase=True)
    t.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    t.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    return t


def weights(rng) -> dict:
    def normal(*shape):
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    def norm(prefix, out):
        out[f"{prefix}.weight"] = np.ones(HIDDEN, np.float32)
        out[f"{prefix}.bias"] = np.zeros(HIDDEN, np.float32)

    def linear(prefix, n_out, n_in, out):
        out[f"{prefix}.weight"] = normal(n_out, n_in)
        out[f"{prefix}.bias"] = np.zeros(n_out, np.float32)

    w = {
        "bert.embeddings.word_embeddings.weight": normal(VOCAB, HIDDEN),
        "bert.embeddings.position_embeddings.weight": normal(POSITIONS, HIDDEN),
        "bert.embeddings.token_type_embeddings.weight": normal(2, HIDDEN),
    }
    norm("bert.embeddings.LayerNorm", w)
    for i in range(LAYERS):
        p = f"bert.encoder.layer.{i}"
        for name in ("query", "key", "value"):
            linear(f"{p}.attention.self.{name}", HIDDEN, HIDDEN, w)
        linear(f"{p}.attention.output.dense", HIDDEN, HIDDEN, w)
        norm(f"{p}.attention.output.LayerNorm", w)
        linear(f"{p}.intermediate.dense", INTERMEDIATE, HIDDEN, w)
        linear(f"{p}.output.dense", HIDDEN, INTERMEDIATE, w)
        norm(f"{p}.output.LayerNorm", w)
    linear("bert.pooler.dense", HIDDEN, HIDDEN, w)
    linear("classifier", 2, HIDDEN, w)
    return w


def main() -> None:
    corpus, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    tokenizer(vocabulary(corpus)).save(str(out / "tokenizer.json"))
    save_file(weights(np.random.default_rng(0)), str(out / "model.safetensors"))
    config = {
        "architectures": ["BertForSequenceClassification"],
        "model_type": "bert",
        "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "intermediate_size": INTERMEDIATE,
        "hidden_act": "gelu",
        "max_position_embeddings": POSITIONS,
        "type_vocab_size": 2,
        "vocab_size": VOCAB,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02,
        "id2label": {"0": "clean", "1": "hazard"},
        "label2id": {"clean": 0, "hazard": 1},
        "problem_type": "single_label_classification",
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    print(f"wrote {out}: random BERT {LAYERS}x{HIDDEN}, vocabulary {VOCAB}")


if __name__ == "__main__":
    main()
