//! Tests of `word_chars = Python`, `case = Lower` and `boundary = Flanked`: the semantics of
//! datatrove's `C4BadWordsFilter`, a regex `(?:\W|^)(term|…)(?:\W|$)` searched in `text.lower()`.

use crate::fold::{normalize, Mapping};
use crate::python::lower_str;
use crate::python_cases::CASES;
use crate::*;
use proptest::prelude::*;

/// The C4 preset: whole words, case-insensitive by Python's `lower()`, Python's `\w`, both sides
/// flanked, no NFKC.
fn python() -> MatcherOptions {
    MatcherOptions {
        whole_word: true,
        case_insensitive: true,
        normalize_nfkc: false,
        engine: Engine::Auto,
        word_chars: WordChars::Python,
        case: CaseMode::Lower,
        boundary: Boundary::Flanked,
    }
}

/// Today's defaults without NFKC (what `configs/c4-badwords.toml` did before).
fn unicode() -> MatcherOptions {
    MatcherOptions {
        normalize_nfkc: false,
        ..MatcherOptions::default()
    }
}

fn matcher(terms: &[&str], options: MatcherOptions) -> TermMatcher {
    TermMatcher::new(terms.iter().map(|t| TermEntry::new(*t)).collect(), options).expect("builds")
}

/// The matched substrings of `text`, checking spans are on char boundaries, ordered, disjoint.
fn spans<'t>(m: &TermMatcher, text: &'t str) -> Vec<&'t str> {
    let mut last = 0;
    m.find_all(text)
        .iter()
        .map(|tm| {
            assert!(tm.start < tm.end && tm.start >= last, "{text:?}");
            last = tm.end;
            text.get(tm.start..tm.end).expect("span on char boundaries")
        })
        .collect()
}

/// Boundary cases written from the rules (Python's `\w` is `isalnum() or "_"`; `lower()` is not
/// folding; C4 wants a non-word char or the text's edge on both sides), with what the Python
/// semantics find and what the Unicode defaults find: (terms, text, python, unicode).
type BoundaryCase = (
    &'static [&'static str],
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

#[rustfmt::skip]
const BOUNDARY: &[BoundaryCase] = &[
    // Combining marks are word chars for Unicode `\w`, not for Python's.
    (&["ass"], "ass\u{0301}", &["ass"], &[]),
    (&["ass"], "\u{0301}ass", &["ass"], &[]),
    (&["ass"], "e\u{0301}ass", &["ass"], &[]),      // decomposed é: the mark is the left neighbour
    (&["ass"], "éass", &[], &[]),                    // precomposed é is a letter in both
    (&["ass"], "ass\u{0345}", &["ass"], &[]),        // ypogegrammeni: a mark (and cased)
    (&["cafe\u{0301}"], "CAFE\u{0301}", &["CAFE\u{0301}"], &["CAFE\u{0301}"]),
    // ZWJ / ZWNJ are join controls (Unicode `\w`), not alphanumeric.
    (&["ass"], "ass\u{200D}x", &["ass"], &[]),
    (&["ass"], "x\u{200D}ass", &["ass"], &[]),
    (&["ass"], "ass\u{200C}", &["ass"], &[]),
    // `‿` is connector punctuation: Unicode `\w`, not Python's (only `_` is).
    (&["ass"], "ass\u{203F}x", &["ass"], &[]),
    (&["ass"], "_ass", &[], &[]),
    (&["ass"], "ass_", &[], &[]),
    (&["a_b"], "A_B", &["A_B"], &["A_B"]),
    // `²`, `½` are numbers (No): Python word chars, not Unicode `\w`; `Ⅻ` (Nl) is both.
    (&["ass"], "ass²", &[], &["ass"]),
    (&["ass"], "½ass", &[], &["ass"]),
    (&["ass"], "Ⅻass", &[], &[]),
    (&["x²"], "X²", &["X²"], &["X²"]),
    // Digits of other scripts are word chars in both.
    (&["ass"], "٣ass", &[], &[]),
    (&["ass"], "ass०", &[], &[]),
    (&["٣"], "x ٣ y", &["٣"], &["٣"]),
    // `ſ` stays `ſ` under lower(); folding makes it `s`.
    (&["ass"], "Aſſ", &[], &["Aſſ"]),
    (&["aſs"], "AſS", &["AſS"], &["AſS"]),
    // `İ` lowers to `i` + U+0307 (a mark: not a word char); it has no simple folding.
    (&["ass"], "İass", &["ass"], &[]),
    (&["ass"], "assİ", &[], &[]),
    (&["assi"], "ASSİ", &["ASSİ"], &[]),
    (&["assi"], "ASSİX", &["ASSİ"], &[]),            // "assi̇x": U+0307 ends the word
    (&["i\u{0307}"], "İ", &["İ"], &[]),
    (&["i"], "x İ", &["İ"], &[]),                    // a match inside one char's expansion: the whole char
    // `ẞ` lowers and folds to `ß`, never to `ss`.
    (&["straße"], "STRAẞE", &["STRAẞE"], &["STRAẞE"]),
    (&["strasse"], "STRAẞE", &[], &[]),
    // Greek final sigma: lower() gives `ς` at a word's end; folding gives `σ` everywhere.
    (&["σας"], "ΣΑΣ", &["ΣΑΣ"], &["ΣΑΣ"]),
    (&["σασ"], "ΣΑΣ", &[], &["ΣΑΣ"]),
    (&["σας"], "ΣΑΣ'Α", &[], &["ΣΑΣ"]),              // `'` is case-ignorable: not final before Α
    (&["σασ"], "ΣΑΣ'Α", &["ΣΑΣ"], &["ΣΑΣ"]),
    (&["σας"], "ΣΑΣ.", &["ΣΑΣ"], &["ΣΑΣ"]),
    (&["σ"], "Σ", &["Σ"], &["Σ"]),                   // no cased char before: `σ`
    // Apostrophes are non-word chars in both.
    (&["ass"], "ass's", &["ass"], &["ass"]),
    (&["don't"], "DON'T", &["DON'T"], &["DON'T"]),
    (&["ass"], "\u{2019}ass\u{2019}", &["ass"], &["ass"]),
    // A term with non-word edges: C4 still wants non-word chars around it.
    (&["🖕"], "x🖕", &[], &["🖕"]),
    (&["🖕"], "🖕x", &[], &["🖕"]),
    (&["🖕"], "🖕🖕", &["🖕", "🖕"], &["🖕", "🖕"]),
    (&["🖕"], " 🖕 ", &["🖕"], &["🖕"]),
    (&["c++"], "c++x", &[], &["c++"]),
    // Other case mappings, the same under both.
    (&["kass"], "\u{212A}ASS", &["\u{212A}ASS"], &["\u{212A}ASS"]), // KELVIN SIGN
    (&["ǆ"], "ǅ", &["ǅ"], &["ǅ"]),
    (&["ꭰ"], "Ꭰ", &["Ꭰ"], &["Ꭰ"]),                   // Cherokee: lower() and folding agree
    (&["ss"], "Ⓐss", &["ss"], &[]),                  // circled letters: alphabetic, not alnum
    (&["ass"], "ASS\u{00AD}", &["ASS"], &["ASS"]),   // soft hyphen: a non-word char in both
    (&["2 girls 1 cup"], "2 GIRLS 1 CUP!", &["2 GIRLS 1 CUP"], &["2 GIRLS 1 CUP"]),
    (&["2 girls 1 cup"], "12 girls 1 cup", &[], &[]),
    (&["ass"], "", &[], &[]),
];

#[test]
fn boundary_cases() {
    assert!(BOUNDARY.len() >= 30);
    let mut differ = 0;
    for &(terms, text, want_python, want_unicode) in BOUNDARY {
        let got = spans(&matcher(terms, python()), text);
        assert_eq!(got, want_python, "python semantics: {terms:?} in {text:?}");
        let got = spans(&matcher(terms, unicode()), text);
        assert_eq!(
            got, want_unicode,
            "unicode semantics: {terms:?} in {text:?}"
        );
        differ += usize::from(want_python.is_empty() != want_unicode.is_empty());
    }
    // The cases where the two give a different keep/drop decision.
    assert_eq!(differ, 22);
}

/// CPython's answers on the generated cases (`scripts/python_unicode.py`): datatrove's regex on
/// `text.lower()` finds a term exactly when the matcher does; the lowered buffer is
/// `text.lower()`; word counts are `len(re.findall(r"\w+", text))`.
#[test]
fn agrees_with_cpython_on_generated_cases() {
    let mut found = 0;
    for &(terms, text, lower, expected, words) in CASES {
        let m = matcher(terms, python());
        let got = spans(&m, text);
        assert_eq!(
            !got.is_empty(),
            expected,
            "{terms:?} in {text:?} (lower {lower:?})"
        );
        found += usize::from(expected);
        assert_eq!(count_words_with(text, WordChars::Python), words, "{text:?}");
        assert_eq!(m.count_words(text), words, "{text:?}");
        let mut scratch = MatchScratch::default();
        scratch.map_text(text, Mapping::Lower, false);
        assert_eq!(scratch.buf.to_ascii_lowercase(), lower, "{text:?}");
        // Each span, lowered on its own, holds its term (up to the final sigma, which depends
        // on the span's surroundings).
        for tm in m.find_all(text) {
            let sigma = |s: String| s.replace('ς', "σ");
            let span = sigma(lower_str(&text[tm.start..tm.end]));
            let term = sigma(lower_str(&m.terms()[tm.term as usize].term));
            assert!(span.contains(&term), "{span:?} / {term:?}");
        }
    }
    assert!(
        found > 100 && found < CASES.len() - 100,
        "{found} of {}",
        CASES.len()
    );
}

#[test]
fn python_word_chars_and_lower_are_independent_options() {
    // Python word chars with folding: `‿` ends a word, `ſ` folds to `s`.
    let opts = MatcherOptions {
        word_chars: WordChars::Python,
        ..unicode()
    };
    assert_eq!(spans(&matcher(&["ass"], opts.clone()), "aſs‿x"), ["aſs"]);
    // lower() with Unicode word chars and word-edge boundaries: `İ` no longer hides "ass" only
    // because the lowered neighbour is a mark... which is a Unicode word char.
    let opts = MatcherOptions {
        case: CaseMode::Lower,
        ..unicode()
    };
    assert!(spans(&matcher(&["ass"], opts.clone()), "İass").is_empty());
    assert!(spans(&matcher(&["ass"], opts.clone()), "aſs").is_empty());
    assert_eq!(spans(&matcher(&["c++"], opts), "c++x"), ["c++"]);
    // Flanked alone.
    let opts = MatcherOptions {
        boundary: Boundary::Flanked,
        ..unicode()
    };
    assert!(spans(&matcher(&["#tag"], opts.clone()), "a#tag").is_empty());
    assert_eq!(spans(&matcher(&["#tag"], opts), "a #tag."), ["#tag"]);
    // `case` does nothing when case-sensitive.
    let opts = MatcherOptions {
        case_insensitive: false,
        ..python()
    };
    assert!(spans(&matcher(&["ass"], opts.clone()), "ASS").is_empty());
    assert_eq!(spans(&matcher(&["ΣΑΣ"], opts), "ΣΑΣ"), ["ΣΑΣ"]);
}

#[test]
fn terms_are_lowered_like_the_text() {
    // Terms go through lower() as whole strings: "ΣΑΣ" becomes "σας".
    let m = matcher(&["ΣΑΣ", "İx", "ASS"], python());
    let terms: Vec<String> = m
        .terms()
        .iter()
        .map(|t| normalize(&t.term, Mapping::Lower, false))
        .collect();
    assert_eq!(terms, ["σας", "i\u{0307}x", "ass"]);
    assert_eq!(spans(&m, "σας ΣΑΣ İX ass"), ["σας", "ΣΑΣ", "İX", "ass"]);
    // Terms equal after lower() merge; after folding they would merge more.
    let m = matcher(&["ass", "ASS", "aſs"], python());
    assert_eq!(m.duplicates_merged(), 1);
    let m = matcher(&["ass", "ASS", "aſs"], unicode());
    assert_eq!(m.duplicates_merged(), 2);
}

#[test]
fn lower_with_nfkc() {
    let opts = MatcherOptions {
        normalize_nfkc: true,
        ..python()
    };
    let m = matcher(&["sarin", "ass"], opts);
    assert_eq!(spans(&m, "ＳＡＲＩＮ x ａｓｓ²"), ["ＳＡＲＩＮ"]);
    // U+1D6BA MATHEMATICAL BOLD CAPITAL SIGMA is Σ under NFKC, then lowered in context.
    let m = matcher(
        &["σας"],
        MatcherOptions {
            normalize_nfkc: true,
            ..python()
        },
    );
    assert_eq!(spans(&m, "ΣΑ\u{1D6BA} x"), ["ΣΑ\u{1D6BA}"]);
}

#[test]
fn engines_agree_with_python_options() {
    let terms = ["ass", "ass hat", "🖕", "2 girls 1 cup", "a_b", "x²"];
    let texts = [
        "ASS hat ass hats x🖕 🖕 2 girls 1 cup a_b x² x²y",
        "İass ass\u{0301} ass‿x ΣΑΣ ass",
    ];
    for text in texts {
        let mut results = Vec::new();
        for engine in [Engine::Auto, Engine::Dfa, Engine::Nfa] {
            let m = matcher(&terms, MatcherOptions { engine, ..python() });
            results.push(m.find_all(text));
        }
        assert_eq!(results[0], results[1], "{text}");
        assert_eq!(results[0], results[2], "{text}");
    }
    // The word index (ASCII text) needs terms that start with a word char; with 🖕 it is not
    // used, and asking for it is an error.
    let err = TermMatcher::new(
        terms.iter().map(|t| TermEntry::new(*t)).collect(),
        MatcherOptions {
            engine: Engine::Words,
            ..python()
        },
    );
    assert!(matches!(err, Err(TermsError::WordsEngine)));
    let ascii = ["ass", "ass hat", "2 girls 1 cup", "a_b"];
    let text = "ASS hat ass hats xass 2 girls 1 cup a_b a_bc ass_ ass. c";
    let words = matcher(
        &ascii,
        MatcherOptions {
            engine: Engine::Words,
            ..python()
        },
    );
    assert!(words.uses_word_index());
    assert_eq!(
        words.find_all(text),
        matcher(
            &ascii,
            MatcherOptions {
                engine: Engine::Dfa,
                ..python()
            }
        )
        .find_all(text)
    );
}

/// Chars that matter to Python's semantics.
fn piece() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "ass", "ASS", "Ass", "ss", "a", " ", "'", ".", "-", "_", "\u{0301}", "\u{0307}",
        "\u{0345}", "\u{200D}", "\u{203F}", "²", "½", "Ⅻ", "٣", "İ", "ı", "ſ", "ẞ", "ß",
        "\u{212A}", "Σ", "σ", "ς", "Α", "α", "ǅ", "ʰ", "\u{00AD}", "🖕", "Ⓐ", "x", "X", "i", "I",
    ])
    .prop_map(String::from)
}

/// The C4 rule by brute force on `lower_str(text)` (checked against CPython above): is there a
/// position where a lowered term starts with a non-word char or the start before it and a
/// non-word char or the end after it?
fn c4_reference(terms: &[String], text: &str) -> bool {
    let lowered = lower_str(text);
    let is_w = |c: Option<char>| c.is_some_and(|c| WordChars::Python.is_word(c));
    let terms: Vec<String> = terms.iter().map(|t| lower_str(t)).collect();
    lowered.char_indices().any(|(i, _)| {
        terms.iter().any(|t| {
            lowered[i..].starts_with(t.as_str())
                && !is_w(lowered[..i].chars().next_back())
                && !is_w(lowered[i + t.len()..].chars().next())
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn finds_a_match_exactly_when_the_c4_regex_would(
        terms in prop::collection::vec(prop::collection::vec(piece(), 1..3).prop_map(|v| v.concat()), 1..4),
        text in prop::collection::vec(piece(), 0..14).prop_map(|v| v.concat()),
    ) {
        let entries: Vec<TermEntry> = terms.iter().map(TermEntry::new).collect();
        let m = match TermMatcher::new(entries, python()) {
            Ok(m) => m,
            Err(TermsError::EmptyTerm { .. }) => return Ok(()),
            Err(e) => panic!("{e}"),
        };
        let got = m.find_all(&text);
        // Terms are trimmed of whitespace by the list loader, not here: a term with a space at
        // an edge can still match, the reference sees it the same way.
        prop_assert_eq!(!got.is_empty(), c4_reference(&terms, &text), "{:?} in {:?}", terms, text);
        let mut last = 0;
        for tm in &got {
            prop_assert!(tm.start < tm.end && tm.start >= last);
            prop_assert!(text.is_char_boundary(tm.start) && text.is_char_boundary(tm.end));
            last = tm.end;
        }
    }
}

/// Throughput of the default options and of the Python options, on the LDNOOBW list and
/// prose-like ASCII and non-ASCII text. Run with
/// `cargo test --release -p sluice-terms -- --ignored --nocapture measure_python_options`.
#[test]
#[ignore]
fn measure_python_options() {
    let list = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../configs/lists/ldnoobw-en.txt"
    ))
    .expect("list");
    let entries: Vec<TermEntry> = list.lines().map(TermEntry::new).collect();
    let words = [
        "the",
        "of",
        "and",
        "a",
        "to",
        "in",
        "is",
        "was",
        "that",
        "for",
        "it",
        "with",
        "as",
        "his",
        "on",
        "be",
        "at",
        "by",
        "had",
        "this",
        "not",
        "are",
        "but",
        "from",
        "or",
        "have",
        "an",
        "they",
        "which",
        "one",
        "you",
        "were",
        "her",
        "all",
        "she",
        "there",
        "would",
        "their",
        "we",
        "him",
        "been",
        "has",
        "when",
        "who",
        "will",
        "more",
        "no",
        "if",
        "out",
        "so",
        "function",
        "returns",
        "option",
        "file",
        "directory",
        "manual",
        "page",
        "value",
        "string",
    ];
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut ascii = String::new();
    let mut i = 0usize;
    while ascii.len() < 4_000_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ascii.push_str(words[(state % words.len() as u64) as usize]);
        ascii.push_str(if i % 11 == 10 { ". " } else { " " });
        i += 1;
    }
    let docs: Vec<&str> = ascii
        .as_bytes()
        .chunks(600)
        .map(|c| std::str::from_utf8(c).unwrap_or(""))
        .collect();
    let uni = ascii.replace(". ", " — «Σοφία» café. ");
    let uni_docs: Vec<&str> = {
        let mut out = Vec::new();
        let mut start = 0;
        while start < uni.len() {
            let mut end = (start + 600).min(uni.len());
            while !uni.is_char_boundary(end) {
                end += 1;
            }
            out.push(&uni[start..end]);
            start = end;
        }
        out
    };
    for (name, opts) in [("default (no nfkc)", unicode()), ("python", python())] {
        let m = TermMatcher::new(entries.clone(), opts).expect("builds");
        for (kind, docs) in [("ascii", &docs), ("non-ascii", &uni_docs)] {
            let mut scratch = MatchScratch::default();
            let mut out = Vec::new();
            let bytes: usize = docs.iter().map(|d| d.len()).sum();
            let mut best = f64::MAX;
            let mut found = 0;
            for _ in 0..5 {
                let t = std::time::Instant::now();
                found = 0;
                for d in docs.iter() {
                    out.clear();
                    m.find_into(d, &mut scratch, &mut out);
                    found += out.len();
                }
                best = best.min(t.elapsed().as_secs_f64());
            }
            println!(
                "{name:>18} {kind:>9}: {:.0} MB/s ({found} matches)",
                bytes as f64 / best / 1e6
            );
        }
    }
}
