//! Matcher tests: every match is checked against the original substring it should cover.

use crate::fold::normalize_str;
use crate::*;
use proptest::prelude::*;

fn opts(whole_word: bool, case_insensitive: bool, normalize_nfkc: bool) -> MatcherOptions {
    MatcherOptions {
        whole_word,
        case_insensitive,
        normalize_nfkc,
        engine: Engine::Auto,
        ..MatcherOptions::default()
    }
}

fn matcher(terms: &[&str], options: MatcherOptions) -> TermMatcher {
    TermMatcher::new(terms.iter().map(|t| TermEntry::new(*t)).collect(), options).expect("builds")
}

/// Matches as (term, original substring), asserting spans are char boundaries, ordered and
/// non-overlapping. Also checks that a reused scratch gives the same answer.
fn found<'t>(m: &TermMatcher, text: &'t str) -> Vec<(String, &'t str)> {
    let mut scratch = MatchScratch::default();
    let mut out = Vec::new();
    m.find_into(text, &mut scratch, &mut out);
    let mut again = vec![TermMatch {
        term: 0,
        start: 0,
        end: 0,
    }];
    m.find_into(text, &mut scratch, &mut again);
    assert_eq!(&again[1..], &out[..], "scratch reuse changes the result");
    let mut last = 0;
    out.iter()
        .map(|tm| {
            assert!(tm.start < tm.end && tm.start >= last, "{out:?}");
            last = tm.end;
            let span = text.get(tm.start..tm.end).expect("span on char boundaries");
            (m.terms()[tm.term as usize].term.clone(), span)
        })
        .collect()
}

fn pairs<'a>(v: &[(&str, &'a str)]) -> Vec<(String, &'a str)> {
    v.iter().map(|(t, s)| (t.to_string(), *s)).collect()
}

#[test]
fn ascii_case_insensitive_substring() {
    let m = matcher(&["sarin", "VX", "nerve agent"], opts(false, true, false));
    let text = "SARIN, Sarin and vx; a NERVE AGENT. xsarinx";
    assert_eq!(
        found(&m, text),
        pairs(&[
            ("sarin", "SARIN"),
            ("sarin", "Sarin"),
            ("VX", "vx"),
            ("nerve agent", "NERVE AGENT"),
            ("sarin", "sarin"),
        ])
    );
    // Case-sensitive mode only finds exact case.
    let m = matcher(&["sarin", "VX"], opts(false, false, false));
    assert_eq!(
        found(&m, "SARIN sarin vx VX"),
        pairs(&[("sarin", "sarin"), ("VX", "VX")])
    );
}

#[test]
fn whole_word_vs_substring() {
    let terms = ["anthrax", "nerve agent", "nerve agents"];
    let text = "xanthrax anthrax anthraxes nerve agentsx nerve agents, nerve agent";
    let m = matcher(&terms, opts(true, true, false));
    assert_eq!(
        found(&m, text),
        pairs(&[
            ("anthrax", "anthrax"),
            ("nerve agents", "nerve agents"),
            ("nerve agent", "nerve agent"),
        ])
    );
    let m = matcher(&terms, opts(false, true, false));
    assert_eq!(
        found(&m, text),
        pairs(&[
            ("anthrax", "anthrax"),
            ("anthrax", "anthrax"),
            ("anthrax", "anthrax"),
            ("nerve agents", "nerve agents"),
            ("nerve agents", "nerve agents"),
            ("nerve agent", "nerve agent"),
        ])
    );
}

#[test]
fn failed_longest_candidate_falls_back_to_shorter_term() {
    // "anthrax spores" fails its end test in "anthrax sporesfoo", "anthrax" at the same start is
    // still a whole word.
    let m = matcher(&["anthrax spores", "anthrax"], opts(true, true, false));
    assert_eq!(
        found(&m, "anthrax sporesfoo"),
        pairs(&[("anthrax", "anthrax")])
    );
    // A failed candidate's tail can hold the next valid match.
    let m = matcher(&["ab cd", "cd ef"], opts(true, true, false));
    assert_eq!(found(&m, "xab cd ef"), pairs(&[("cd ef", "cd ef")]));
}

#[test]
fn whole_word_edges_that_are_not_word_chars() {
    let m = matcher(&["c++", "#tag", ".net"], opts(true, true, false));
    let text = "c++ c++x xc++ a#tag #tagged use.net .NET";
    // "c++x": the term ends in '+', so the end is not tested; "xc++" fails the start test.
    assert_eq!(
        found(&m, text),
        pairs(&[
            ("c++", "c++"),
            ("c++", "c++"),
            ("#tag", "#tag"),
            (".net", ".net"),
            (".net", ".NET"),
        ])
    );
}

#[test]
fn unicode_simple_case_folding() {
    let m = matcher(
        &["σαριν", "kelvin", "strasse", "straße", "ǆ"],
        opts(true, true, false),
    );
    let text = "ΣΑΡΙΝ σαρις ΣΑΡΙΝΑ \u{212A}ELVIN ſtraſſe STRAẞE Ǆ ǅ";
    assert_eq!(
        found(&m, text),
        pairs(&[
            ("σαριν", "ΣΑΡΙΝ"),
            ("kelvin", "\u{212A}ELVIN"),
            ("strasse", "ſtraſſe"),
            ("straße", "STRAẞE"),
            ("ǆ", "Ǆ"),
            ("ǆ", "ǅ"),
        ])
    );
    // Terms are folded too.
    let m = matcher(&["ΣΑΡΙΝ", "STRAẞE"], opts(false, true, false));
    assert_eq!(
        found(&m, "σαριν, straße"),
        pairs(&[("ΣΑΡΙΝ", "σαριν"), ("STRAẞE", "straße")])
    );
    // Simple folding never changes lengths: "ß" does not match "ss".
    let m = matcher(&["strasse"], opts(false, true, false));
    assert!(found(&m, "straße").is_empty());
}

#[test]
fn non_ascii_text_with_ascii_terms_keeps_offsets() {
    let m = matcher(&["sarin", "vx"], opts(true, true, false));
    let text = "日本語 — SARIN «vx» café sariné";
    assert_eq!(found(&m, text), pairs(&[("sarin", "SARIN"), ("vx", "vx")]));
    // Case-sensitive, no NFKC: non-ASCII text is searched in place.
    let m = matcher(&["café"], opts(true, false, false));
    assert_eq!(found(&m, "un café, CAFÉ"), pairs(&[("café", "café")]));
}

#[test]
fn nfkc_fullwidth_and_ligatures_map_back() {
    let m = matcher(&["sarin", "fire", "ﬁne"], opts(true, true, true));
    let text = "ｓａｒｉｎ and ＳＡＲＩＮ, a ﬁre, ﬁne fine";
    assert_eq!(
        found(&m, text),
        pairs(&[
            ("sarin", "ｓａｒｉｎ"),
            ("sarin", "ＳＡＲＩＮ"),
            ("fire", "ﬁre"),
            ("ﬁne", "ﬁne"),
            ("ﬁne", "fine"),
        ])
    );
    // Without NFKC the fullwidth text does not match.
    let m = matcher(&["sarin"], opts(true, true, false));
    assert!(found(&m, "ｓａｒｉｎ").is_empty());
}

#[test]
fn nfkc_combining_marks_belong_to_their_segment() {
    // "café" as e + COMBINING ACUTE in the text, precomposed in the term, and vice versa.
    let m = matcher(&["café", "nai\u{0308}ve"], opts(true, true, true));
    let text = "CAFE\u{0301} naïve cafe";
    assert_eq!(
        found(&m, text),
        pairs(&[("café", "CAFE\u{0301}"), ("nai\u{0308}ve", "naïve")])
    );
    // In substring mode "cafe" does not match inside "café": the "e" composes with the accent.
    let m = matcher(&["cafe"], opts(false, true, true));
    assert_eq!(found(&m, "cafe\u{0301} cafe"), pairs(&[("cafe", "cafe")]));
    // Whole-word: a trailing combining mark is a word char, so "cafe" + U+0301 is not "cafe"
    // even without NFKC.
    let m = matcher(&["cafe"], opts(true, true, false));
    assert!(found(&m, "cafe\u{0301}").is_empty());
}

#[test]
fn nfkc_partial_segment_matches_widen_and_never_overlap() {
    // "½" normalizes to "1⁄2": both "1" and "2" match inside one segment.
    let m = matcher(&["1", "2"], opts(false, false, true));
    assert_eq!(found(&m, "a½b"), pairs(&[("1", "½")]));
    // Whole-word inside a segment is judged on the normalized neighbours: "f" in "ﬁ" is part of
    // the word "fi".
    let m = matcher(&["f"], opts(true, true, true));
    assert!(found(&m, "ﬁ").is_empty());
    assert_eq!(found(&m, "ｆ"), pairs(&[("f", "ｆ")]));
}

#[test]
fn duplicates_are_merged_after_folding() {
    let entries = vec![
        TermEntry {
            term: "Sarin".into(),
            category: Some("chem".into()),
            weight: 2.0,
        },
        TermEntry::new("SARIN"),
        TermEntry::new("ｓａｒｉｎ"),
        TermEntry::new("vx"),
        TermEntry::new("sarin"),
    ];
    let m = TermMatcher::new(entries.clone(), opts(true, true, true)).expect("builds");
    assert_eq!(m.duplicates_merged(), 3);
    assert_eq!(m.terms(), &[entries[0].clone(), entries[3].clone()]);
    assert_eq!(found(&m, "sarin"), pairs(&[("Sarin", "sarin")]));
    assert_eq!(m.find_all("vx sarin")[1].term, 0);

    // Without NFKC the fullwidth form is a distinct term; case-sensitive keeps all case variants.
    let m = TermMatcher::new(entries.clone(), opts(true, true, false)).expect("builds");
    assert_eq!(m.duplicates_merged(), 2);
    let m = TermMatcher::new(entries, opts(true, false, false)).expect("builds");
    assert_eq!(m.duplicates_merged(), 0);
}

#[test]
fn empty_terms_are_errors() {
    for bad in ["", "   ", "\u{3000}"] {
        let err = TermMatcher::new(vec![TermEntry::new(bad)], opts(true, true, true))
            .expect_err("empty term");
        assert!(matches!(err, TermsError::EmptyTerm { .. }), "{err:?}");
        assert!(err.to_string().starts_with("term "), "{err}");
    }
}

#[test]
fn negative_and_non_finite_weights_are_refused_by_the_matcher() {
    for weight in [
        -1.0,
        -f32::MIN_POSITIVE,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ] {
        let entry = TermEntry {
            weight,
            ..TermEntry::new("sarin")
        };
        let err = TermMatcher::new(vec![entry], opts(true, true, true)).expect_err("bad weight");
        assert!(matches!(err, TermsError::BadTermWeight { .. }), "{err:?}");
        assert!(
            err.to_string().starts_with("term \"sarin\" has weight "),
            "{err}"
        );
    }
    let zero = TermEntry {
        weight: 0.0,
        ..TermEntry::new("sarin")
    };
    assert!(TermMatcher::new(vec![zero], opts(true, true, true)).is_ok());
}

#[test]
fn empty_matcher_and_empty_text() {
    let m = matcher(&[], opts(true, true, true));
    assert!(found(&m, "anything at all ΣΑΡΙΝ").is_empty());
    let m = matcher(&["x"], opts(true, true, true));
    assert!(found(&m, "").is_empty());
}

#[test]
fn engines_agree() {
    let terms = [
        "sarin",
        "nerve agent",
        "nerve agents",
        "σαριν",
        "ﬁre",
        "c++",
    ];
    let text = "ΣΑΡΙΝ, sarin; NERVE AGENTS ﬁre c++ nerve agentx";
    let mut results = Vec::new();
    for engine in [Engine::Auto, Engine::Dfa, Engine::Nfa] {
        let m = TermMatcher::new(
            terms.iter().map(|t| TermEntry::new(*t)).collect(),
            MatcherOptions {
                engine,
                ..MatcherOptions::default()
            },
        )
        .expect("builds");
        assert_eq!(m.is_dfa(), !matches!(engine, Engine::Nfa));
        results.push(m.find_all(text));
    }
    assert_eq!(results[0].len(), 5);
    assert_eq!(results[0], results[1]);
    assert_eq!(results[0], results[2]);
}

/// Found by the `term_list` fuzz target: the word index skipped terms whose first word is longer
/// than its 64-byte key, and text words that long, so such a term (a SHA-512 in hex, say) was
/// never found in ASCII text while the automaton engines found it.
#[test]
fn terms_with_a_first_word_over_64_bytes_are_found_by_every_engine() {
    let sha512 = "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce\
                  47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e";
    let long = format!("{} second", "b".repeat(125) + "t");
    let terms = [sha512, long.as_str(), "short"];
    let text = format!(
        "see {} and {} or SHORT; {}x",
        sha512.to_uppercase(),
        long,
        sha512
    );
    let mut results = Vec::new();
    for engine in [Engine::Words, Engine::Dfa, Engine::Nfa, Engine::Auto] {
        let m = TermMatcher::new(
            terms.iter().map(|t| TermEntry::new(*t)).collect(),
            MatcherOptions {
                engine,
                ..MatcherOptions::default()
            },
        )
        .expect("builds");
        let found: Vec<&str> = m
            .find_all(&text)
            .iter()
            .map(|t| &text[t.start..t.end])
            .collect();
        results.push(found);
        // Alone, each term is found whole.
        for term in terms {
            let alone = m.find_all(term);
            assert_eq!(alone.len(), 1, "{engine:?}: {term}");
            assert_eq!((alone[0].start, alone[0].end), (0, term.len()));
        }
    }
    let upper = sha512.to_uppercase();
    assert_eq!(results[0], vec![upper.as_str(), long.as_str(), "SHORT"]);
    for other in &results[1..] {
        assert_eq!(other, &results[0]);
    }
}

#[test]
fn matcher_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<TermMatcher>();
    check::<MatchScratch>();
}

#[test]
fn counts_words() {
    assert_eq!(count_words(""), 0);
    assert_eq!(count_words("  "), 0);
    assert_eq!(count_words("hello, world_2 -- ok"), 3);
    assert_eq!(count_words("c++ #tag"), 2);
    assert_eq!(count_words("σαριν και café naïve"), 4);
    assert_eq!(count_words("日本語 テキスト"), 2);
    assert_eq!(count_words("e\u{0301}tude—x"), 2);
}

/// The matcher of generated `terms`, or `None` when one folds to nothing (an error by design).
fn matcher_unless_empty(terms: &[String], options: MatcherOptions) -> Option<TermMatcher> {
    match TermMatcher::new(terms.iter().map(TermEntry::new).collect(), options) {
        Ok(m) => Some(m),
        Err(TermsError::EmptyTerm { .. }) => None,
        Err(e) => panic!("{e}"),
    }
}

/// Text pieces that stress folding, normalization and word boundaries.
fn text_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(" ".to_string()),
        Just("-".to_string()),
        Just("x".to_string()),
        Just("\u{0301}".to_string()),
        Just("\u{0308}".to_string()),
        Just("ﬁ".to_string()),
        Just("½".to_string()),
        Just("ẞ".to_string()),
        Just("\u{212A}".to_string()),
        Just("ſ".to_string()),
        Just("Σ".to_string()),
        Just("ς".to_string()),
        Just("\u{1161}".to_string()),
        Just("ᄀ".to_string()),
        Just("ｓ".to_string()),
        "[a-zA-Z]{1,3}",
        "\\PC{1,3}",
        any::<char>().prop_map(String::from),
    ]
}

fn term_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z]{1,4}",
        "[a-z]{1,2}[ ][a-z]{1,2}",
        "[σΣςa-cſ\u{212A}ßẞ]{1,4}",
        "[a-cｓｆﬁ½\u{0301}é]{1,4}",
        "\\PC{1,3}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Random Unicode text with the terms inserted: every span is on char boundaries, in order,
    /// non-overlapping, and (unless it cuts an NFKC expansion) its text, run through the same
    /// pipeline, equals the matched term's folded form. Inserted terms flanked by spaces are found.
    #[test]
    fn spans_are_exact(
        terms in prop::collection::vec(term_strategy(), 1..6),
        pieces in prop::collection::vec(text_piece(), 0..30),
        inserts in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..6),
        whole_word in any::<bool>(),
        case_insensitive in any::<bool>(),
        normalize_nfkc in any::<bool>(),
    ) {
        let options = opts(whole_word, case_insensitive, normalize_nfkc);
        let Some(m) = matcher_unless_empty(&terms, options) else {
            return Ok(());
        };
        let mut pieces = pieces;
        for (at, which) in &inserts {
            let t = &terms[which.index(terms.len())];
            pieces.insert(at.index(pieces.len() + 1), format!(" {t} "));
        }
        let text: String = pieces.concat();
        let mut scratch = MatchScratch::default();
        let mut out = Vec::new();
        m.find_into(&text, &mut scratch, &mut out);
        let mut last = 0;
        for tm in &out {
            prop_assert!(tm.start < tm.end && tm.start >= last);
            last = tm.end;
            let span = text.get(tm.start..tm.end);
            prop_assert!(span.is_some(), "span {}..{} not on char boundaries", tm.start, tm.end);
            let span = span.unwrap_or_default();
            let got = normalize_str(span, case_insensitive, normalize_nfkc);
            let want = normalize_str(&m.terms()[tm.term as usize].term, case_insensitive, normalize_nfkc);
            if normalize_nfkc {
                // A match may start or end inside one char's expansion ("1" in "½"); the span then
                // covers that whole char.
                prop_assert!(got.contains(&want), "{span:?} -> {got:?} does not contain {want:?}");
            } else {
                prop_assert_eq!(got, want);
            }
        }
        // A term inserted as " term " is found (or a longer/earlier match covers that place),
        // unless its own edges merge with its neighbours under NFKC (a leading combining mark).
        for (at, which) in &inserts {
            let _ = at;
            let t = &terms[which.index(terms.len())];
            let folded = normalize_str(t, case_insensitive, normalize_nfkc);
            let starts_with_mark = t.chars().next().is_some_and(|c| !crate::fold::starts_segment(c));
            if !starts_with_mark && folded.trim() == folded {
                prop_assert!(!out.is_empty(), "inserted {t:?} not found in {text:?}");
            }
        }
    }

    /// Whole-word mode equals a brute-force reference: all valid matches, then greedy
    /// leftmost-longest non-overlapping selection. Covers the in-place path (case-sensitive) and
    /// the folded path (case-insensitive on non-ASCII text), terms with non-word edges.
    #[test]
    fn whole_word_matches_brute_force(
        terms in prop::collection::vec("[abé-]{1,3}( [abé]{1,2})?", 1..6),
        text in "[abé -]{0,40}",
        case_insensitive in any::<bool>(),
    ) {
        let m = matcher(
            &terms.iter().map(String::as_str).collect::<Vec<_>>(),
            opts(true, case_insensitive, false),
        );
        let got: Vec<(usize, usize)> = m.find_all(&text).iter().map(|t| (t.start, t.end)).collect();
        let is_w = |c: Option<char>| c.is_some_and(crate::fold::is_word_char);
        let mut want = Vec::new();
        let mut pos = 0;
        while pos < text.len() {
            let before = text[..pos].chars().next_back();
            let best = m
                .terms()
                .iter()
                .filter(|t| text[pos..].starts_with(&t.term))
                .filter(|t| !(is_w(t.term.chars().next()) && is_w(before)))
                .map(|t| (t, pos + t.term.len()))
                .filter(|(t, end)| !(is_w(t.term.chars().next_back()) && is_w(text[*end..].chars().next())))
                .map(|(_, end)| end)
                .max();
            match best {
                Some(end) => {
                    want.push((pos, end));
                    pos = end;
                }
                None => pos += text[pos..].chars().next().map_or(1, char::len_utf8),
            }
        }
        prop_assert_eq!(got, want);
    }
}

/// Random lowercase ASCII terms, 3–25 bytes, some multi-word.
fn synthetic_terms(n: usize, seed: u64) -> Vec<TermEntry> {
    let mut state = seed;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..n)
        .map(|_| {
            let len = 3 + (next() % 23) as usize;
            let term: String = (0..len)
                .map(|i| {
                    let r = next();
                    if i > 0 && i + 1 < len && r % 9 == 0 {
                        ' '
                    } else {
                        (b'a' + (r % 26) as u8) as char
                    }
                })
                .collect();
            TermEntry::new(term)
        })
        .collect()
}

#[test]
fn builds_with_100k_terms() {
    let entries = synthetic_terms(100_000, 0x9E37_79B9_7F4A_7C15);
    let start = std::time::Instant::now();
    let m = TermMatcher::new(entries, MatcherOptions::default()).expect("builds");
    let took = start.elapsed();
    assert!(!m.is_dfa(), "100k terms should use the NFA");
    assert!(m.terms().len() + m.duplicates_merged() == 100_000);
    let probe = m.terms()[12_345].term.clone();
    let text = format!("some text, then {probe}. and more");
    let found = m.find_all(&text);
    assert!(found.iter().any(|t| text[t.start..t.end] == probe));
    // Generous: debug builds on a loaded 2-core box.
    assert!(took.as_secs() < 60, "build took {took:?}");
}

/// Build time, memory and throughput per engine, on prose-like text: words drawn (Zipf-like)
/// from a random vocabulary; terms are 1–3-word phrases over the same vocabulary. Run with
/// `cargo test --release -p sluice-terms -- --ignored --nocapture measure_engines`.
#[test]
#[ignore]
// `is_multiple_of` is newer than the workspace's rust-version (1.85).
#[allow(clippy::manual_is_multiple_of)]
fn measure_engines() {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let vocab: Vec<String> = (0..50_000)
        .map(|_| {
            let len = 2 + (next() % 10) as usize;
            (0..len)
                .map(|_| (b'a' + (next() % 26) as u8) as char)
                .collect()
        })
        .collect();
    // Zipf-like: index = n^(u^2) concentrates on small indices.
    let zipf = |next: &mut dyn FnMut() -> u64| {
        let u = (next() % 1_000_000) as f64 / 1_000_000.0;
        ((vocab.len() as f64).powf(u * u) as usize).min(vocab.len() - 1)
    };
    let mut text = String::new();
    let mut i = 0usize;
    while text.len() < 2_000_000 {
        let w = &vocab[zipf(&mut next)];
        if i % 7 == 0 {
            let mut cs = w.chars();
            if let Some(c) = cs.next() {
                text.push(c.to_ascii_uppercase());
                text.push_str(cs.as_str());
            }
        } else {
            text.push_str(w);
        }
        text.push_str(if i % 12 == 11 { ". " } else { " " });
        i += 1;
    }
    let uni = text.replace(". ", " — “Σ” ");
    let mut scratch = MatchScratch::default();
    let t = std::time::Instant::now();
    for _ in 0..5 {
        scratch.fold_text(&uni, true, true);
    }
    println!(
        "fold_text (ci + nfkc): {:.0} MB/s",
        (uni.len() * 5) as f64 / t.elapsed().as_secs_f64() / 1e6
    );
    for n in [
        1_000usize, 3_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000,
    ] {
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let k = 1 + (next() % 3) as usize;
            // Mostly words absent from the text (hazard terms are rare), 1 in 20 from its
            // vocabulary.
            let phrase: Vec<String> = (0..k)
                .map(|_| {
                    if next() % 20 == 0 {
                        vocab[(next() % vocab.len() as u64) as usize].clone()
                    } else {
                        let len = 3 + (next() % 10) as usize;
                        (0..len)
                            .map(|_| (b'a' + (next() % 26) as u8) as char)
                            .collect()
                    }
                })
                .collect();
            entries.push(TermEntry::new(phrase.join(" ")));
        }
        for engine in [Engine::Dfa, Engine::Nfa] {
            if n > 50_000 && matches!(engine, Engine::Dfa) {
                continue;
            }
            for whole_word in [true, false] {
                let t0 = std::time::Instant::now();
                let m = TermMatcher::new(
                    entries.clone(),
                    MatcherOptions {
                        engine,
                        whole_word,
                        ..MatcherOptions::default()
                    },
                )
                .expect("builds");
                let build = t0.elapsed();
                let mut scratch = MatchScratch::default();
                let mut out = Vec::new();
                let mut rates = Vec::new();
                for hay in [&text, &uni] {
                    let t1 = std::time::Instant::now();
                    let reps = 3;
                    for _ in 0..reps {
                        out.clear();
                        m.find_into(hay, &mut scratch, &mut out);
                    }
                    let secs = t1.elapsed().as_secs_f64();
                    rates.push((hay.len() * reps) as f64 / secs / 1e6);
                }
                println!(
                    "{n:>7} terms {engine:?} whole_word={whole_word}: build {:.0} ms, {:.1} MiB, ascii {:.0} MB/s, non-ascii {:.0} MB/s, {} matches",
                    build.as_secs_f64() * 1e3,
                    m.memory_usage() as f64 / (1 << 20) as f64,
                    rates[0],
                    rates[1],
                    out.len()
                );
            }
        }
    }
    let t = std::time::Instant::now();
    let mut words = 0;
    for _ in 0..5 {
        words += count_words(&text);
    }
    println!(
        "count_words ascii: {:.0} MB/s ({words})",
        (text.len() * 5) as f64 / t.elapsed().as_secs_f64() / 1e6
    );
    let t = std::time::Instant::now();
    for _ in 0..5 {
        words += count_words(&uni);
    }
    println!(
        "count_words non-ascii: {:.0} MB/s ({words})",
        (uni.len() * 5) as f64 / t.elapsed().as_secs_f64() / 1e6
    );
}

/// Text pieces for the verbatim check: chars that are verbatim under some settings and not
/// others, beside ASCII words and the terms' own chars.
fn verbatim_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(" ".to_string()),
        Just("x".to_string()),
        Just("é".to_string()),
        Just("É".to_string()),
        Just("İ".to_string()),
        Just("\u{212A}".to_string()),
        Just("ſ".to_string()),
        Just("Σ".to_string()),
        Just("σ".to_string()),
        Just("ς".to_string()),
        Just("ß".to_string()),
        Just("ẞ".to_string()),
        Just("\u{0301}".to_string()),
        Just("\u{200D}".to_string()),
        Just("ﬁ".to_string()),
        Just("½".to_string()),
        Just("²".to_string()),
        Just("🖕".to_string()),
        Just("日本".to_string()),
        Just("Ǆ".to_string()),
        "[a-zA-Z]{1,4}",
        any::<char>().prop_map(String::from),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    /// Searching a text as it is (when every non-ASCII char is verbatim) finds exactly what the
    /// search of its folded copy finds, under every mapping, normalization, word-char and boundary
    /// setting.
    #[test]
    fn verbatim_search_equals_the_folded_search(
        terms in prop::collection::vec(prop_oneof![
            "[a-zA-Z]{1,3}",
            "[a-z]{1,2}[ ][a-z]{1,2}",
            "[σςéiskß🖕a-c]{1,3}",
            Just("i\u{0307}".to_string()),
        ], 1..5),
        pieces in prop::collection::vec(verbatim_piece(), 0..24),
        whole_word in any::<bool>(),
        case_insensitive in any::<bool>(),
        normalize_nfkc in any::<bool>(),
        lower in any::<bool>(),
        python in any::<bool>(),
        flanked in any::<bool>(),
    ) {
        let options = MatcherOptions {
            case: if lower { CaseMode::Lower } else { CaseMode::Fold },
            word_chars: if python { WordChars::Python } else { WordChars::Unicode },
            boundary: if flanked { Boundary::Flanked } else { Boundary::WordEdges },
            ..opts(whole_word, case_insensitive, normalize_nfkc)
        };
        let Some(m) = matcher_unless_empty(&terms, options) else {
            return Ok(());
        };
        // Terms inside the text, so that matches happen.
        let mut pieces = pieces;
        for (i, t) in terms.iter().enumerate() {
            pieces.insert((i * 3) % (pieces.len() + 1), format!(" {t} "));
        }
        let text: String = pieces.concat();
        let mut scratch = MatchScratch::default();
        let mut fast = Vec::new();
        m.find_into(&text, &mut scratch, &mut fast);
        if case_insensitive || normalize_nfkc {
            let mut slow = Vec::new();
            m.search_folded(&text, &mut scratch, &mut slow);
            prop_assert_eq!(fast, slow, "text {:?}", text);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// The word-start search of ASCII text finds exactly the unanchored automaton's whole-word
    /// matches (with its prefix fallback), whatever the terms' lengths and edges, case, boundary
    /// and word chars.
    #[test]
    fn word_start_search_equals_the_automaton(
        terms in prop::collection::vec(prop_oneof![
            "[a-cA-C]{1,4}",
            "[a-b]{1,3}[ -][a-b]{1,2}",
            "[a-b_0-1]{1,3}[+#_-]?",
            "[#+-][a-b]{1,2}",
            "[é🖕][a-b]{0,2}",
        ], 1..7),
        pieces in prop::collection::vec(prop_oneof![
            Just(" ".to_string()),
            Just("-".to_string()),
            Just("+".to_string()),
            Just("#".to_string()),
            Just("_".to_string()),
            Just("1".to_string()),
            "[a-cA-C]{1,5}",
            "[a-c ]{60,70}",
        ], 0..30),
        case_insensitive in any::<bool>(),
        python in any::<bool>(),
        flanked in any::<bool>(),
    ) {
        let options = MatcherOptions {
            word_chars: if python { WordChars::Python } else { WordChars::Unicode },
            boundary: if flanked { Boundary::Flanked } else { Boundary::WordEdges },
            ..opts(true, case_insensitive, false)
        };
        let Some(m) = matcher_unless_empty(&terms, options) else {
            return Ok(());
        };
        let mut pieces = pieces;
        for (i, t) in terms.iter().enumerate() {
            if t.is_ascii() {
                pieces.insert((i * 5) % (pieces.len() + 1), t.clone());
            }
        }
        let text: String = pieces.concat();
        let mut fast = Vec::new();
        m.find_into(&text, &mut MatchScratch::default(), &mut fast);
        let mut unanchored = Vec::new();
        m.search_unanchored(&text, &mut unanchored);
        prop_assert_eq!(fast, unanchored, "text {:?}", text);
    }
}

/// The word-start search is used exactly when it applies.
#[test]
fn word_start_search_is_used_when_every_term_starts_with_a_word_char() {
    let m = matcher(&["nerve agent", "sarin"], MatcherOptions::default());
    assert!(m.word_starts.is_some());
    assert_eq!(m.find_all("NERVE AGENTS, a nerve agent; sarin.").len(), 2);
    let m = matcher(&["#tag", "sarin"], MatcherOptions::default());
    assert!(
        m.word_starts.is_none(),
        "a term starting with '#' can start mid-punctuation"
    );
    let m = matcher(&["sarin"], opts(false, true, false));
    assert!(m.word_starts.is_none(), "substring search");
}
