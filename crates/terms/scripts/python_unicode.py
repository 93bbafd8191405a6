#!/usr/bin/env python3
"""Generates the Python-semantics tables of the terms crate from the CPython that runs it.

    python3 crates/terms/scripts/python_unicode.py          # rewrite both files
    python3 crates/terms/scripts/python_unicode.py --check  # exit 1 if they would change

Writes
  crates/terms/src/python_tables.rs  the tables `word_chars = "python"` and `case = "lower"` use
  crates/terms/src/python_cases.rs   test cases with CPython's answers (compiled into tests only)

The committed files were made with CPython 3.11.7, whose Unicode database is 14.0.0; run it with
another CPython to match that one (3.12: Unicode 15.0, 3.13: 15.1, 3.14: 16.0).

What is reproduced, and how each table is derived:

* Python's `\\w` (the `re` module on `str` patterns) is `c.isalnum() or c == "_"`. CPython's
  `str.isalnum` is `isalpha() or isdecimal() or isdigit() or isnumeric()` on each char
  (Objects/unicodectype.c, `_PyUnicode_IsAlpha` etc.); its tables come from
  Tools/unicode/makeunicodedata.py: ALPHA = general category Lm, Lt, Lu, Ll or Lo; DECIMAL, DIGIT,
  NUMERIC = a value in UnicodeData.txt fields 6, 7, 8 (and, for NUMERIC, Unihan's numeric fields).
  So the table is derived from the Unicode data CPython ships (`unicodedata.category` and
  `unicodedata.numeric`) by that rule, and then checked against `str.isalnum()` on every code point:
  the script stops if a single one differs. (Result: isalnum == categories L* and N*.)

* `str.lower()` is the full lowercase mapping (UnicodeData.txt simple mappings and the
  unconditional ones of SpecialCasing.txt, so `İ` -> `i` + U+0307), char by char, except for
  U+03A3 `Σ`, which CPython lowers with the Final_Sigma context (Objects/unicodeobject.c,
  `handle_capital_sigma`): `ς` when a cased char comes before it (skipping case-ignorable chars)
  and no cased char after it (likewise), else `σ`. CPython implements no other context (no
  Lithuanian, Turkish or Azeri rules). The per-char mapping is `chr(cp).lower()` for every code
  point; the script checks that `lower()` of strings is the concatenation of these except at `Σ`
  (every code point between two letters, and random strings).

* Case_Ignorable and Cased, which the Final_Sigma rule needs, are not exposed by `unicodedata`.
  They are read from `lower()` itself: `(" " + c + "Σ").lower()` ends in `ς` exactly when `c` is
  cased and not case-ignorable, `("A" + c + "Σ").lower()` when `c` is case-ignorable or cased.
  (Whether a case-ignorable char is also cased never matters to the rule: it is skipped.) The
  script checks the result against what the Unicode definitions imply: every Mn, Me, Cf, Lm and
  Sk char is case-ignorable, every Lu, Ll and Lt char cased.

Surrogate code points (U+D800..U+DFFF) are skipped: Rust strings cannot hold them.
"""

import random
import re
import sys
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
TABLES = ROOT / "crates/terms/src/python_tables.rs"
CASES = ROOT / "crates/terms/src/python_cases.rs"
MAX = 0x110000
SIGMA = "\u03a3"


def code_points():
    return (cp for cp in range(MAX) if not 0xD800 <= cp <= 0xDFFF)


def derived_word(c):
    if c == "_" or unicodedata.category(c) in ("Lm", "Lt", "Lu", "Ll", "Lo"):
        return True
    try:
        unicodedata.numeric(c)
        return True
    except ValueError:
        return False


def sigma_class(c):
    """0: neither, 1: cased and not case-ignorable, 2: case-ignorable."""
    if (" " + c + SIGMA).lower()[-1] == "\u03c2":
        return 1
    if ("A" + c + SIGMA).lower()[-1] == "\u03c2":
        return 2
    return 0


def ranges(pred):
    out, start, prev = [], None, None
    for cp in code_points():
        if pred(cp):
            if start is None or cp != prev + 1:
                if start is not None:
                    out.append((start, prev))
                start = cp
            prev = cp
    if start is not None:
        out.append((start, prev))
    return out


def model_lower(s, lower1, classes):
    """str.lower() as the Rust code does it: per char, Σ by context."""
    out = []
    for i, c in enumerate(s):
        if c != SIGMA:
            out.append(lower1.get(c, c))
            continue
        j = i - 1
        while j >= 0 and classes.get(s[j], 0) == 2:
            j -= 1
        final = j >= 0 and classes.get(s[j], 0) == 1
        if final:
            j = i + 1
            while j < len(s) and classes.get(s[j], 0) == 2:
                j += 1
            final = j == len(s) or classes.get(s[j], 0) != 1
        out.append("\u03c2" if final else "\u03c3")
    return "".join(out)


def fnv64(data, h=0xCBF29CE484222325):
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def rust_str(s):
    out = []
    for c in s:
        cat = unicodedata.category(c)
        if c in '"\\' or (cat[0] in "CMZ" and c != " ") or cat == "Cn":
            out.append("\\u{%x}" % ord(c))
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def build_tables():
    word_mismatch = [cp for cp in code_points() if derived_word(chr(cp)) != (chr(cp).isalnum() or cp == 0x5F)]
    if word_mismatch:
        sys.exit(f"derived word chars differ from str.isalnum() at {[hex(c) for c in word_mismatch[:20]]}")
    word = ranges(lambda cp: derived_word(chr(cp)))

    lower1, multi = {}, {}
    for cp in code_points():
        c = chr(cp)
        lo = c.lower()
        if cp == 0x3A3 or lo == c:
            continue
        if len(lo) == 1:
            lower1[c] = lo
        else:
            multi[c] = lo
    classes = {}
    for cp in code_points():
        k = sigma_class(chr(cp))
        if k:
            classes[chr(cp)] = k
    for cp in code_points():
        c = chr(cp)
        cat = unicodedata.category(c)
        if cat in ("Mn", "Me", "Cf", "Lm", "Sk") and classes.get(c) != 2:
            sys.exit(f"U+{cp:04X} ({cat}) should be case-ignorable")
        if cat in ("Lu", "Ll", "Lt") and classes.get(c) not in (1, 2):
            sys.exit(f"U+{cp:04X} ({cat}) should be cased")
    lower1_all = dict(lower1)
    lower1_all.update(multi)
    # lower() of a string is the per-char mapping except at Σ: every char between two letters...
    for cp in code_points():
        c = chr(cp)
        s = "a" + c + "B"
        if c != SIGMA and s.lower() != model_lower(s, lower1_all, classes):
            sys.exit(f"lower() of {s!r} is not per char")
    # ... and random strings over chars that matter to the Final_Sigma rule.
    rng = random.Random(14)
    pool = [SIGMA, "\u03c3", "\u03c2", "A", "a", " ", "'", ".", ":", "\u0301", "\u0345", "\u00ad",
            "\u02b0", "\u0130", "1", "\u2160", "\u24b6", "\u00aa", "-", "\u200d", "\u03b1", "\u0391"]
    for _ in range(200_000):
        s = "".join(rng.choice(pool) for _ in range(rng.randint(1, 8)))
        if s.lower() != model_lower(s, lower1_all, classes):
            sys.exit(f"the Final_Sigma model differs from lower() on {s!r}")
    return word, lower1, multi, classes


def digest(word_ranges, classes):
    """FNV-1a 64 over, per code point: flags (word | class << 1), chr(cp).lower() in UTF-8, 0xFF.

    Computed from CPython directly (isalnum, lower, the probes), not from the tables; the Rust
    test recomputes it from its lookups over every char."""
    h = 0xCBF29CE484222325
    for cp in code_points():
        c = chr(cp)
        flags = (c.isalnum() or c == "_") | (sigma_class(c) << 1)
        h = fnv64(bytes([flags]) + c.lower().encode("utf-8") + b"\xff", h)
    return h


def fmt_ranges(name, doc, items):
    lines = [f"/// {doc}", "#[rustfmt::skip]", f"pub(crate) static {name}: &[(u32, u32)] = &["]
    row = []
    for a, b in items:
        row.append(f"(0x{a:X}, 0x{b:X}),")
        if len(row) == 6:
            lines.append("    " + " ".join(row))
            row = []
    if row:
        lines.append("    " + " ".join(row))
    lines.append("];")
    return "\n".join(lines)


def tables_source(word, lower1, multi, classes):
    header = f"""// @generated by crates/terms/scripts/python_unicode.py from CPython {sys.version.split()[0]}
// (Unicode {unicodedata.unidata_version}). Do not edit: rerun the script.

/// The Unicode version of the CPython these tables reproduce.
pub const UNICODE_VERSION: &str = "{unicodedata.unidata_version}";

/// The CPython the tables were generated with.
pub const PYTHON_VERSION: &str = "{sys.version.split()[0]}";
"""
    parts = [header.rstrip("\n")]
    parts.append(fmt_ranges("WORD", "Python's `\\w`: `c.isalnum() or c == '_'`, as inclusive code point ranges.", word))
    pairs = sorted((ord(a), ord(b)) for a, b in lower1.items())
    lines = ["/// `c.lower()` where it is one char other than `c` (not U+03A3, which depends on context).",
             "#[rustfmt::skip]", "pub(crate) static LOWER: &[(u32, u32)] = &["]
    row = []
    for a, b in pairs:
        row.append(f"(0x{a:X}, 0x{b:X}),")
        if len(row) == 6:
            lines.append("    " + " ".join(row))
            row = []
    if row:
        lines.append("    " + " ".join(row))
    lines.append("];")
    parts.append("\n".join(lines))
    lines = ["/// `c.lower()` where it is more than one char.", "#[rustfmt::skip]",
             "pub(crate) static LOWER_MULTI: &[(u32, &str)] = &["]
    for a, b in sorted(multi.items()):
        lines.append(f"    (0x{ord(a):X}, {rust_str(b)}),")
    lines.append("];")
    parts.append("\n".join(lines))
    cased = ranges(lambda cp: classes.get(chr(cp)) == 1)
    ignorable = ranges(lambda cp: classes.get(chr(cp)) == 2)
    parts.append(fmt_ranges("CASED", "Cased and not case-ignorable (what ends a Final_Sigma scan as cased).", cased))
    parts.append(fmt_ranges("CASE_IGNORABLE", "Case-ignorable (skipped by the Final_Sigma scans).", ignorable))
    return "\n\n".join(parts) + "\n"


# Test cases: term lists (lowercase, as datatrove's list is) and texts, with CPython's answers.
HAND = [
    # (terms, text)
    (["ass"], "ass"), (["ass"], "ASS!"), (["ass"], "class"), (["ass"], "ass\u0301"),
    (["ass"], "\u0301ass"), (["ass"], "ass\u200dx"), (["ass"], "x\u200dass"), (["ass"], "ass\u203fx"),
    (["ass"], "ass\u00b2"), (["ass"], "\u00b2ass"), (["ass"], "a\u017fs"), (["ass"], "A\u017f\u017f"),
    (["a\u017fs"], "a\u017fs"), (["ass"], "\u0130ass"), (["ass"], "ass\u0130"), (["assi"], "ASS\u0130"),
    (["assi"], "ASS\u0130X"), (["i\u0307"], "\u0130"), (["i"], "\u0130"), (["stra\u00dfe"], "STRA\u1e9eE"),
    (["strasse"], "STRA\u1e9eE"), (["\u03c3\u03b1\u03c2"], "\u03a3\u0391\u03a3"), (["\u03c3\u03b1\u03c3"], "\u03a3\u0391\u03a3"),
    (["\u03c3\u03b1\u03c3"], "\u03a3\u0391\u03a3'\u0391"), (["\u03c3\u03b1\u03c2"], "\u03a3\u0391\u03a3."),
    (["\u03c3"], "\u03a3"), (["\u03c2"], "A\u03a3"), (["ass"], "\u0663ass"), (["ass"], "ass\u0966"),
    (["ass"], "_ass"), (["ass"], "ass_"), (["ass"], "ass's"), (["ass"], "\u2019ass\u2019"),
    (["\U0001f595"], "\U0001f595"), (["\U0001f595"], "x\U0001f595"), (["\U0001f595"], "\U0001f595x"),
    (["\U0001f595"], "\U0001f595\U0001f595"), (["\U0001f595"], " \U0001f595 "), (["2 girls 1 cup"], "2 GIRLS 1 CUP"),
    (["2 girls 1 cup"], "12 girls 1 cup"), (["ass"], "\u24b6SS"), (["ass"], "\uff21SS"), (["\u01c6"], "\u01c4"),
    (["\u01c6"], "\u01c5"), (["\uab70"], "\u13a0"), (["\u10d0"], "\u1c90"), (["ass"], "ASS\u00ad"),
    (["ass"], "ass\u2160"), (["ass"], ""), (["ass"], "\u212aass"), (["kass"], "\u212aASS"),
    (["a"], "\u00aa"), (["ass"], "ass\u0345"), (["ass"], "\u0345ass"), (["don't"], "DON'T"),
]

ALPHABET = ["ASS", "ass", "Ass", " ", "  ", "'", ".", "-", "_", "\u0301", "\u0307", "\u0345", "\u200d",
            "\u200c", "\u203f", "\u00b2", "\u00bd", "\u2160", "\u3007", "\u0663", "\u0966", "\u0130",
            "\u0131", "\u017f", "\u1e9e", "\u00df", "\u212a", "\u03a3", "\u03c3", "\u03c2", "\u0391",
            "\u03b1", "\u01c5", "\u02b0", "\u00ad", "\U0001f595", "\u24b6", "\u13a0", "\u1c90", "x", "X",
            "1", "\n", "\u3000", "\uff41", "\u0625", "\u4e2d"]
TERM_POOL = ["ass", "\u03c3\u03b1\u03c2", "\u03c3\u03b1\u03c3", "a\u017fs", "i\u0307x", "x\u00b2", "a_b",
             "don't", "\U0001f595", "2 girls 1 cup", "stra\u00dfe", "\u01c6", "x", "\u03c2", "\u0131ss",
             "ss", "ass ass", "\u0301x", "a\u0301"]


def random_cases(rng, n):
    out = []
    for _ in range(n):
        terms = sorted(set(rng.sample(TERM_POOL, rng.randint(1, 3))))
        pieces = [rng.choice(ALPHABET) for _ in range(rng.randint(0, 8))]
        for _ in range(rng.randint(0, 2)):
            t = rng.choice(terms)
            t = rng.choice([t, t.upper(), t.title()])
            pieces.insert(rng.randint(0, len(pieces)), t)
        out.append((terms, "".join(pieces)))
    return out


def c4_match(terms, text):
    """datatrove's C4BadWordsFilter regex (non-ja/th/zh) on text.lower()."""
    regex = re.compile(r"(?:\W|^)({})(?:\W|$)".format("|".join(re.escape(w) for w in terms)))
    return regex.search(text.lower()) is not None


def cases_source(h):
    rng = random.Random(16)
    cases = HAND + random_cases(rng, 600)
    for terms, _ in cases:
        for t in terms:
            assert t == t.lower() and t == t.strip() and t, t
    lines = [
        f"// @generated by crates/terms/scripts/python_unicode.py from CPython {sys.version.split()[0]}",
        f"// (Unicode {unicodedata.unidata_version}). Do not edit: rerun the script.",
        "",
        "/// FNV-1a 64 over every code point's (isalnum or '_', Final_Sigma class, lower()), from",
        "/// CPython directly; see the script.",
        f"pub(crate) const DIGEST: u64 = 0x{h:016X};",
        "",
        "/// (terms, text, text.lower(), datatrove's C4 regex `(?:\\W|^)(terms)(?:\\W|$)` finds one in",
        "/// text.lower(), number of `\\w+` runs in text).",
        "#[rustfmt::skip]",
        "pub(crate) static CASES: &[(&[&str], &str, &str, bool, usize)] = &[",
    ]
    for terms, text in cases:
        t = ", ".join(rust_str(x) for x in terms)
        words = len(re.findall(r"\w+", text))
        lines.append(f"    (&[{t}], {rust_str(text)}, {rust_str(text.lower())}, {str(c4_match(terms, text)).lower()}, {words}),")
    lines.append("];")
    return "\n".join(lines) + "\n"


def main():
    word, lower1, multi, classes = build_tables()
    outputs = {
        TABLES: tables_source(word, lower1, multi, classes),
        CASES: cases_source(digest(word, classes)),
    }
    check = "--check" in sys.argv[1:]
    stale = False
    for path, text in outputs.items():
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                print(f"{path.relative_to(ROOT)} is out of date", file=sys.stderr)
                stale = True
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    print(f"CPython {sys.version.split()[0]}, Unicode {unicodedata.unidata_version}: {len(word)} word ranges, "
          f"{len(lower1)} + {len(multi)} lowercase mappings, {sum(1 for k in classes.values() if k == 1)} cased, "
          f"{sum(1 for k in classes.values() if k == 2)} case-ignorable")
    sys.exit(1 if stale else 0)


if __name__ == "__main__":
    main()
