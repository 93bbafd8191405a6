#!/usr/bin/env python3
"""Builds benign instruction data from real text: documentation and dictionary Q&A in OpenAI
chat records, for measuring the screen's false-reject rate (README, "False rejects on real
benign data").

    benches/screen/benign_qa.py OUT.jsonl [CORPUS_DIR] [N]

Reads the real-text corpus (default .cache/real-corpus/corpus, built by benches/real-corpus.sh
from pinned Debian packages: manual pages, Linux, Python, Django, PostgreSQL and Debian
documentation, WordNet, GCIDE and FOLDOC), keeps English documentation and dictionary entries,
and makes each one an exchange: a question about the entry's subject (from templates, with the
page or headword named) answered by the entry's own text (at most 3,000 characters, cut at a
paragraph). N (default 5000) documents are taken evenly over the corpus; the output is the same
on every run. Needs zstd on PATH.
"""
import glob
import json
import os
import random
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENGLISH = re.compile(
    r"^(manpages/usr/share/man/man|freebsd-manpages/|linux-doc-[\d.]+/|python3\.\d+-doc/|"
    r"python-django-doc/|python-sqlalchemy-doc/|postgresql-doc|debian-handbook/.*/en-US/|"
    r"gnome-user-docs/usr/share/help/C/|libreoffice-help-en-us/|dict-wn/|dict-gcide/|"
    r"dict-foldoc/|git-doc/|perl-doc/|vim-doc/|sphinx-doc/)")
ASK = [
    "What is {s}?", "Can you explain {s}?", "Tell me about {s}.", "What does {s} mean?",
    "I'm reading about {s}. What should I know?", "Give me an overview of {s}.",
    "How does {s} work?", "Could you describe {s} for me?",
]


def subject(doc_id, text):
    if doc_id.startswith("dict-"):
        return text.strip().split("\n", 1)[0].strip()[:60] or "this word"
    stem = os.path.basename(doc_id.split("#")[0])
    for suffix in (".gz", ".html", ".txt", ".rst", ".page"):
        stem = stem[: -len(suffix)] if stem.endswith(suffix) else stem
    return stem.replace("_", " ").replace("-", " ")[:60]


def answer(text, limit=3000):
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text.rfind("\n\n", 0, limit)
    return text[: cut if cut > 200 else limit].rstrip()


def main():
    out = sys.argv[1]
    corpus = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, ".cache/real-corpus/corpus")
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 5000
    candidates = []
    for shard in sorted(glob.glob(os.path.join(corpus, "*.jsonl.zst"))):
        raw = subprocess.run(["zstd", "-dc", shard], check=True, capture_output=True).stdout
        for line in raw.decode("utf-8").splitlines():
            record = json.loads(line)
            if ENGLISH.match(record["id"]) and len(record["text"].strip()) >= 80:
                candidates.append((record["id"], record["text"]))
    step = max(1, len(candidates) // n)
    rng = random.Random(7)
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        for doc_id, text in candidates[::step][:n]:
            question = rng.choice(ASK).format(s=subject(doc_id, text))
            record = {"id": doc_id, "messages": [
                {"role": "user", "content": question},
                {"role": "assistant", "content": answer(text)},
            ]}
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"{min(n, len(candidates[::step]))} exchanges from {len(candidates)} English entries")


if __name__ == "__main__":
    main()
