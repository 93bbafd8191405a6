#!/usr/bin/env python3
"""Boundary cases for the C4 preset, as JSONL {"id", "text"} on stdout (deterministic).

Words of the LDNOOBW English list put between chars that Python's `\\w`, `str.lower()` and C4's
flanking rule treat differently from Unicode `\\w` and case folding (combining marks, ZWJ, `‿`,
`²`, `_`, apostrophes, `İ`, `ſ`, final sigma, digits of other scripts, a term with non-word edges),
in three cases each, plus whole sentences and the empty text. The last line is not valid JSON for
sluice (a lone surrogate escape), to see what each side does with it.
"""

import json
import sys

WORDS = ["ass", "sex", "s&m", "g-spot", "2g1c", "jack off", "\U0001f595", "xxx", "anus", "kike"]
EDGES = ["", " ", "\u0301", "e\u0301", "\u200d", "\u200c", "\u203f", "\u00b2", "\u00bd", "\u216b",
         "_", "'", "\u2019", "\u0130", "x", "\u0663", "\u0966", "-", ".", "\u00ad", "\u0345",
         "\u24b6", "\u03a3", "\u03c2", "\n", "\t", "\U0001f595", "\u3000", "\u00e9", "&"]
VARIANTS = {
    "ass": ["a\u017f\u017f", "A\u017fS", "AS\u0130"],
    "sex": ["\u017fex", "SE\u0130X"],
    "kike": ["\u212aike", "K\u0130KE", "KIKE"],
    "anus": ["ANU\u017f", "anu\u03c3"],
}
SENTENCES = [
    "A perfectly clean sentence about Scunthorpe.",
    "This one says 2 Girls 1 Cup out loud.",
    "Bukkakes? No: the list matches whole words, and this has none.",
    "\u0130stanbul is a city; \u03a3\u039f\u03a6\u0399\u0391\u03a3 is Greek.",
    "d\u00e9j\u00e0 vu, na\u00efve, cr\u00e8me br\u00fbl\u00e9e",
    "Sexual health education, horny toads and the spastic colon: words LDNOOBW added after 25e679f.",
    " ",
    "",
]


def main():
    texts = []
    for w in WORDS:
        forms = [w, w.upper(), w.title()] + VARIANTS.get(w, [])
        for form in forms:
            for pre in EDGES:
                for post in EDGES:
                    texts.append(pre + form + post)
    texts += SENTENCES
    seen = set()
    out = sys.stdout
    n = 0
    for t in texts:
        if t in seen:
            continue
        seen.add(t)
        n += 1
        out.write(json.dumps({"id": f"c{n:05d}", "text": t}, ensure_ascii=False) + "\n")
    out.write('{"id":"surrogate","text":"ass \\ud800"}\n')


if __name__ == "__main__":
    main()
