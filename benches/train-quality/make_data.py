#!/usr/bin/env python3
"""Builds the labeled task of benches/train-quality.sh from the real-text corpus.

Usage: make_data.py CORPUS_DIR OUT_DIR [--task passage|natural] [--train N] [--test N] [--seed S]

CORPUS_DIR holds the shards of benches/real-corpus.sh (real-0.jsonl.zst .. real-7.jsonl.zst; each
line {"id": "<debian package>/<path>#<n>", "text": ...}). Writes OUT_DIR/train.jsonl and
OUT_DIR/test.jsonl: {"id", "text", "label"} lines, label "python" or "other".

The task, labeled by construction: every document is real text, 2,500 to 6,000 characters of
English documentation, dictionary entries and fortunes (whole corpus documents, joined by blank
lines), with ONE inserted passage of 300 to 1,500 characters at a uniformly random place among
them. In a "python" document the passage comes from the Python 3.11 documentation
(python3.11-doc); in an "other" document from Perl's, git's or the C library's manual pages
(perl-doc, git-doc, manpages-dev): programming documentation too, so the class is the passage's
language and subject, not "code or not". Documents are longer than one 512-token window, and the
passage is as likely to be in the last window as in the first: a model that reads only the first
256 tokens cannot know.

`--task natural`: the corpus documents themselves, unchanged, labeled by their source: "python"
for the Python 3.11 documentation, "other" for Perl's, git's and the C library's (the same
sources as the passages above; 1,780 characters on average, most of one or two windows): a task
on natural documents, where aligning training with scoring should change little.

The corpus documents are split into a train and a test pool by a hash of their id, so no passage
or filler document of the test set is seen in training. Everything random comes from one seeded
random.Random, and the corpus is read in sorted shard order: the same corpus and seed give the
same bytes. Python's standard library only (zstd is decompressed with the zstd command).
"""

import argparse
import hashlib
import json
import random
import subprocess
import sys
from pathlib import Path

POSITIVE = {"python3.11-doc"}
HARD_NEGATIVE = {"perl-doc", "git-doc", "manpages-dev"}
FILLER = {
    "debian-handbook", "gnome-user-docs", "linux-doc-6.1", "libreoffice-help-en-us",
    "dict-gcide", "dict-wn", "dict-foldoc", "dict-jargon", "dict-devil", "fortunes",
    "vim-runtime", "emacs-common", "manpages", "freebsd-manpages", "octave-doc",
    "maxima-doc", "postgresql-doc-15", "debian-reference-en", "developers-reference",
    "maint-guide", "debian-faq", "gimp-help-en",
}
PASSAGE_MIN, PASSAGE_MAX = 300, 1500
DOC_MIN, DOC_MAX = 2500, 6000
FILLER_MAX = 2500
TEST_SHARE = 0.35


def pool_of(doc_id):
    """'train' or 'test', from a hash of the corpus document's id."""
    h = int.from_bytes(hashlib.sha256(doc_id.encode()).digest()[:8], "big")
    return "test" if h / 2**64 < TEST_SHARE else "train"


def cut_passage(text):
    """The text cut to at most PASSAGE_MAX characters at a line end, or None when too short."""
    text = text.strip()
    if len(text) > PASSAGE_MAX:
        end = text.rfind("\n", 0, PASSAGE_MAX)
        text = text[: end if end >= PASSAGE_MIN else PASSAGE_MAX].rstrip()
    return text if len(text) >= PASSAGE_MIN else None


def read_corpus(corpus):
    kinds = ("pos", "neg", "fill", "natural-pos", "natural-neg")
    pools = {(kind, split): [] for kind in kinds for split in ("train", "test")}
    shards = sorted(Path(corpus).glob("real-*.jsonl.zst"))
    if not shards:
        sys.exit(f"no real-*.jsonl.zst shards in {corpus} (run benches/real-corpus.sh)")
    for shard in shards:
        out = subprocess.run(["zstd", "-dc", str(shard)], check=True, capture_output=True).stdout
        for line in out.decode("utf-8").splitlines():
            doc = json.loads(line)
            source = doc["id"].split("/", 1)[0]
            split = pool_of(doc["id"])
            if source in POSITIVE or source in HARD_NEGATIVE:
                kind = "natural-pos" if source in POSITIVE else "natural-neg"
                if len(doc["text"].strip()) >= PASSAGE_MIN:
                    pools[(kind, split)].append((doc["id"], doc["text"]))
                passage = cut_passage(doc["text"])
                if passage:
                    kind = "pos" if source in POSITIVE else "neg"
                    pools[(kind, split)].append((doc["id"], passage))
            elif source in FILLER:
                text = doc["text"].strip()
                if 40 <= len(text) <= FILLER_MAX:
                    pools[("fill", split)].append((source, text))
    return pools


def make_document(rng, passage, fillers):
    """Filler documents (a source drawn uniformly, then one of its documents, so that the many
    short dictionary entries do not crowd out the rest) up to a drawn length, the passage
    inserted between two of them."""
    target = rng.randint(DOC_MIN, DOC_MAX)
    parts, size = [], len(passage)
    sources = sorted(fillers)
    while size < target:
        text = rng.choice(fillers[rng.choice(sources)])
        parts.append(text)
        size += len(text) + 2
    parts.insert(rng.randint(0, len(parts)), passage)
    return "\n\n".join(parts)


def make_split(rng, pools, split, count, positive_share):
    positives = round(count * positive_share)
    labels = ["python"] * positives + ["other"] * (count - positives)
    rng.shuffle(labels)
    pos = rng.sample(pools[("pos", split)], positives)
    neg = rng.sample(pools[("neg", split)], count - positives)
    fillers = {}
    for source, text in pools[("fill", split)]:
        fillers.setdefault(source, []).append(text)
    rows = []
    for i, label in enumerate(labels):
        source_id, passage = (pos if label == "python" else neg).pop()
        text = make_document(rng, passage, fillers)
        rows.append({"id": f"{split}-{i:05d}", "text": text, "label": label, "passage": source_id})
    return rows


def natural_split(rng, pools, split, count, positive_share):
    positives = round(count * positive_share)
    rows = [
        {"id": doc_id, "text": text, "label": label}
        for kind, label, n in (("pos", "python", positives), ("neg", "other", count - positives))
        for doc_id, text in rng.sample(pools[("natural-" + kind, split)], n)
    ]
    rng.shuffle(rows)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpus")
    ap.add_argument("out")
    ap.add_argument("--train", type=int, default=800)
    ap.add_argument("--test", type=int, default=400)
    ap.add_argument("--positive-share", type=float, default=0.4)
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--task", choices=("passage", "natural"), default="passage")
    args = ap.parse_args()
    pools = read_corpus(args.corpus)
    for key in sorted(pools):
        print(f"pool {key[0]}/{key[1]}: {len(pools[key])} documents", file=sys.stderr)
    # Pools hold documents in shard order; sampling from them is then reproducible.
    rng = random.Random(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", args.train), ("test", args.test)):
        make = make_split if args.task == "passage" else natural_split
        rows = make(rng, pools, split, count, args.positive_share)
        with open(out / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        chars = sum(len(r["text"]) for r in rows) / len(rows)
        print(f"{split}: {len(rows)} documents, {chars:.0f} characters on average", file=sys.stderr)


if __name__ == "__main__":
    main()
