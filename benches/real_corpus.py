#!/usr/bin/env python3
"""Builds the real-text benchmark corpus from unpacked Debian packages (see benches/real-corpus.sh).

    real_corpus.py UNPACKED_DIR OUTPUT_DIR

UNPACKED_DIR holds one directory per package (`dpkg-deb -x`), named PACKAGE. Writes
OUTPUT_DIR/real-0.jsonl .. real-7.jsonl (uncompressed; the shell script compresses them), one
`{"id": ..., "text": ...}` per line, and prints per-source counts.

Documents are the natural units of each source where it has them (a dictionary entry, a fortune)
and otherwise runs of whole paragraphs (documentation, manual pages, books) cut at a length drawn
from a fixed log-uniform sequence between 200 bytes and 6 KB (median ~1.1 KB), so documents have
real sizes. Everything is deterministic: files are read in sorted order, the sequence of lengths is
seeded by each file's path, a document goes to shard `sha256(id) mod 8` and each shard is ordered
by `sha256(id)`, so sources are mixed. Only the Python standard library is used.
"""

import gzip
import hashlib
import html.parser
import json
import math
import os
import re
import sys

SHARDS = 8

FORTUNE_FILES = r"usr/share/games/fortunes[^/]*/(?:[^/]+/)*(?![^/]*\.dat$)[^/]+$"

# (package, path regex within the package, format). Formats: dictd, fortune, roff, text, html.
SOURCES = [
    ("dict-gcide", r"usr/share/dictd/gcide\.dict\.dz$", "dictd"),
    ("dict-wn", r"usr/share/dictd/wn\.dict\.dz$", "dictd"),
    ("dict-foldoc", r"usr/share/dictd/foldoc\.dict\.dz$", "dictd"),
    ("dict-jargon", r"usr/share/dictd/jargon\.dict\.dz$", "dictd"),
    ("dict-devil", r"usr/share/dictd/devil\.dict\.dz$", "dictd"),
    ("dict-vera", r"usr/share/dictd/vera\.dict\.dz$", "dictd"),
    ("dict-elements", r"usr/share/dictd/elements\.dict\.dz$", "dictd"),
    ("fortunes", FORTUNE_FILES, "fortune"),
    ("fortunes-min", FORTUNE_FILES, "fortune"),
    ("fortunes-mario", FORTUNE_FILES, "fortune"),
    ("fortunes-de", FORTUNE_FILES, "fortune"),
    ("fortunes-es", FORTUNE_FILES, "fortune"),
    ("fortunes-it", FORTUNE_FILES, "fortune"),
    ("fortunes-ru", FORTUNE_FILES, "fortune"),
    ("fortunes-pl", FORTUNE_FILES, "fortune"),
    ("fortunes-cs", FORTUNE_FILES, "fortune"),
    ("fortunes-eo", FORTUNE_FILES, "fortune"),
    ("manpages", r"usr/share/man/.*\.gz$", "roff"),
    ("manpages-dev", r"usr/share/man/.*\.gz$", "roff"),
    ("manpages-de", r"usr/share/man/.*\.gz$", "roff"),
    ("manpages-fr", r"usr/share/man/.*\.gz$", "roff"),
    ("manpages-es", r"usr/share/man/.*\.gz$", "roff"),
    ("manpages-it", r"usr/share/man/.*\.gz$", "roff"),
    ("manpages-ja", r"usr/share/man/.*\.gz$", "roff"),
    ("manpages-nl", r"usr/share/man/.*\.gz$", "roff"),
    ("manpages-pl", r"usr/share/man/.*\.gz$", "roff"),
    ("manpages-ru", r"usr/share/man/.*\.gz$", "roff"),
    ("freebsd-manpages", r"usr/share/man/.*\.gz$", "roff"),
    ("perl-doc", r"usr/share/perl/.*\.pod$", "text"),
    ("linux-doc-6.1", r"usr/share/doc/linux-doc-6\.1/Documentation/.*\.(rst|txt)\.gz$", "text"),
    ("python3.11-doc", r"usr/share/doc/python3\.11/html/_sources/.*\.txt$", "text"),
    ("python-sqlalchemy-doc", r"usr/share/doc/.*\.rst$", "text"),
    ("sphinx-doc", r"usr/share/doc/sphinx-doc/html/_sources/.*\.txt$", "text"),
    ("git-doc", r"usr/share/doc/git-doc/.*\.txt$", "text"),
    ("vim-runtime", r"usr/share/vim/vim90/doc/.*\.txt$", "text"),
    ("emacs-common", r"usr/share/emacs/28\.2/etc/(NEWS.*|.*-NEWS|PROBLEMS|DEBUG|MACHINES|TODO|tutorials/TUTORIAL.*)$", "text"),
    ("python-django-doc", r"usr/share/doc/python-django-doc/html/.*\.html$", "html"),
    ("postgresql-doc-15", r"usr/share/doc/postgresql-doc-15/html/.*\.html$", "html"),
    ("libreoffice-help-en-us", r"usr/share/libreoffice/help/.*\.html$", "html"),
    ("debian-handbook", r"usr/share/doc/debian-handbook/html/.*\.html$", "html"),
    ("debian-reference-en", r"usr/share/debian-reference/.*\.html$", "html"),
    ("debian-reference-de", r"usr/share/debian-reference/.*\.html$", "html"),
    ("debian-reference-fr", r"usr/share/debian-reference/.*\.html$", "html"),
    ("debian-reference-ja", r"usr/share/debian-reference/.*\.html$", "html"),
    ("developers-reference", r"usr/share/developers-reference/.*\.html$", "html"),
    ("maint-guide", r"usr/share/doc/maint-guide/.*\.html$", "html"),
    ("debian-faq", r"usr/share/doc/debian/FAQ/.*\.html$", "html"),
    ("libreoffice-help-de", r"usr/share/libreoffice/help/.*\.html$", "html"),
    ("libreoffice-help-es", r"usr/share/libreoffice/help/.*\.html$", "html"),
    ("libreoffice-help-fr", r"usr/share/libreoffice/help/.*\.html$", "html"),
    ("gimp-help-en", r"usr/share/gimp/2\.0/help/en/.*\.html$", "html"),
    ("octave-doc", r"usr/share/doc/octave/.*\.html$", "html"),
    ("maxima-doc", r"usr/share/doc/maxima-doc/.*\.html$", "html"),
    # Mallard XML in 41 languages; read like HTML.
    ("gnome-user-docs", r"usr/share/help/.*\.page$", "html"),
]


def decode(data):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".gz") or path.endswith(".dz"):
        data = gzip.decompress(data)
    return decode(data)


B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def b64num(s):
    n = 0
    for c in s:
        n = n * 64 + B64[c]
    return n


def dictd_entries(path):
    """Entries of a dictd database, in the order of the .dict file, without its 00-database-* ones."""
    with open(path, "rb") as f:
        data = gzip.decompress(f.read())
    spans = set()
    with open(path[: -len(".dict.dz")] + ".index", "rb") as f:
        for line in f:
            parts = line.rstrip(b"\n").split(b"\t")
            if len(parts) < 3 or parts[0].startswith(b"00-database") or parts[0].startswith(b"00database"):
                continue
            spans.add((b64num(parts[1].decode()), b64num(parts[2].decode())))
    for start, length in sorted(spans):
        yield decode(data[start : start + length])


def fortunes(path):
    text = read(path)
    for f in re.split(r"\n%\n", text.replace("\r\n", "\n")):
        yield f


ESCAPES = [
    (re.compile(r"\\f(\[[^\]]*\]|\(..|.)"), ""),
    (re.compile(r"\\s[+-]?\d"), ""),
    (re.compile(r"\\\*(\[[^\]]*\]|\(..|.)"), ""),
    (re.compile(r"\\\((em|en)"), "-"),
    (re.compile(r"\\\((lq|rq|dq)"), '"'),
    (re.compile(r"\\\((oq|cq|aq)"), "'"),
    (re.compile(r"\\\(bu"), "*"),
    (re.compile(r"\\\(..|\\\[[^\]]*\]"), ""),
    (re.compile(r"\\[-]"), "-"),
    (re.compile(r"\\e"), "\\\\"),
    (re.compile(r"\\[&|^:%]"), ""),
    (re.compile(r"\\ "), " "),
    (re.compile(r'\\".*'), ""),
    (re.compile(r"\\(.)"), r"\1"),
]


def unescape_roff(s):
    for rx, rep in ESCAPES:
        s = rx.sub(rep, s)
    return s


def roff_to_text(src):
    """A crude, deterministic rendering of man(7)/mdoc(7) source: macros dropped, their text kept,
    headings and paragraph macros as paragraph breaks."""
    out = []
    for line in src.replace("\r\n", "\n").split("\n"):
        if line.startswith(".\\\"") or line.startswith("'\\\"") or line.startswith('.\\"'):
            continue
        if line.startswith(".") or line.startswith("'"):
            m = re.match(r"[.'](\S+)\s*(.*)", line)
            if not m:
                out.append("")
                continue
            macro, args = m.group(1), m.group(2)
            if macro in ("SH", "SS", "Sh", "Ss"):
                out += ["", unescape_roff(args.replace('"', "")), ""]
            elif macro in ("PP", "P", "LP", "Pp", "TP", "IP", "sp", "br", "HP", "Bl", "El", "It"):
                out.append("")
                if macro in ("IP", "It") and args:
                    out.append(unescape_roff(args.replace('"', "")))
            elif macro in ("B", "I", "BR", "RB", "BI", "IB", "IR", "RI", "SM", "SB", "Nm", "Ar", "Fl",
                           "Xr", "Pa", "Em", "Dq", "Ql", "Va", "Fn", "Ic", "Cm", "Op", "Li", "Sy", "Nd",
                           "Dv", "Er", "Ev", "Fa", "Ft", "Ad", "An", "Lk", "Mt", "Sq", "Pq", "Aq", "Tn"):
                words = re.findall(r'"[^"]*"|\S+', args)
                out.append(" ".join(unescape_roff(w.strip('"')) for w in words))
            continue
        out.append(unescape_roff(line))
    return "\n".join(out)


class HTMLText(html.parser.HTMLParser):
    BLOCK = {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "pre", "tr", "br", "dt", "dd",
             "section", "table", "blockquote", "ul", "ol", "dl", "article", "header", "footer", "title",
             "item", "note", "td", "steps", "terms", "list", "synopsis", "screen"}
    SKIP = {"script", "style", "head", "info"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts = []
        self.skip = 0
        self.pre = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skip += 1
        elif tag in self.BLOCK:
            self.parts.append("\n\n")
        if tag == "pre":
            self.pre += 1

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in self.BLOCK:
            self.parts.append("\n\n")
        if tag == "pre":
            self.pre = max(0, self.pre - 1)

    def handle_data(self, data):
        if self.skip:
            return
        if self.pre:
            self.parts.append(data)
        else:
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(src):
    p = HTMLText()
    p.feed(src)
    p.close()
    return "".join(p.parts)


def lengths(seed_text):
    """A deterministic sequence of document lengths, log-uniform in [200, 6000) bytes."""
    state = int.from_bytes(hashlib.sha256(seed_text.encode()).digest()[:8], "little") | 1
    lo, hi = math.log(200), math.log(6000)
    while True:
        state ^= (state << 13) & 0xFFFFFFFFFFFFFFFF
        state ^= state >> 7
        state ^= (state << 17) & 0xFFFFFFFFFFFFFFFF
        u = (state >> 11) / float(1 << 53)
        yield int(math.exp(lo + u * (hi - lo)))


def paragraphs_to_docs(text, seed):
    paras = [p.strip("\n") for p in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n"))]
    paras = [p for p in paras if p.strip()]
    sizes = lengths(seed)
    target = next(sizes)
    cur, size = [], 0
    for p in paras:
        cur.append(p)
        size += len(p.encode("utf-8")) + 2
        if size >= target:
            yield "\n\n".join(cur)
            cur, size, target = [], 0, next(sizes)
    if cur:
        yield "\n\n".join(cur)


def documents(package, rel, path, fmt):
    if fmt == "dictd":
        yield from dictd_entries(path)
    elif fmt == "fortune":
        yield from fortunes(path)
    elif fmt == "roff":
        yield from paragraphs_to_docs(roff_to_text(read(path)), f"{package}/{rel}")
    elif fmt == "text":
        yield from paragraphs_to_docs(read(path), f"{package}/{rel}")
    elif fmt == "html":
        yield from paragraphs_to_docs(html_to_text(read(path)), f"{package}/{rel}")


def main():
    unpacked, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    shards = [[] for _ in range(SHARDS)]
    total_docs = total_bytes = 0
    for package, pattern, fmt in SOURCES:
        root = os.path.join(unpacked, package)
        if not os.path.isdir(root):
            sys.exit(f"{root} is missing: run benches/real-corpus.sh")
        rx = re.compile(pattern)
        files = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in filenames:
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, root)
                if rx.search(rel) and os.path.isfile(full) and not os.path.islink(full):
                    files.append(rel)
        docs = nbytes = 0
        for rel in sorted(files):
            for n, text in enumerate(documents(package, rel, os.path.join(root, rel), fmt)):
                text = text.strip()
                if not text:
                    continue
                doc_id = f"{package}/{rel}#{n}"
                line = json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n"
                key = hashlib.sha256(doc_id.encode()).digest()
                shards[key[0] % SHARDS].append((key, line))
                docs += 1
                nbytes += len(line.encode("utf-8"))
        print(f"{package:24} {len(files):6} files {docs:8} documents {nbytes / 1e6:8.1f} MB", file=sys.stderr)
        total_docs += docs
        total_bytes += nbytes
    for i, shard in enumerate(shards):
        shard.sort()
        with open(os.path.join(out_dir, f"real-{i}.jsonl"), "w", encoding="utf-8", newline="\n") as f:
            for _, line in shard:
                f.write(line)
    print(f"total: {total_docs} documents, {total_bytes / 1e6:.1f} MB, mean {total_bytes / max(total_docs, 1):.0f} bytes",
          file=sys.stderr)


if __name__ == "__main__":
    main()
