//! What the `term_list` fuzz target (`fuzz/fuzz_targets/term_list.rs`) runs, here so that the
//! crate's tests run every committed corpus file through the same code without a nightly
//! toolchain. Built only for tests and with the `fuzzing` feature.

use std::path::Path;

use crate::fold::normalize;
use crate::list::parse_term_list;
use crate::{Boundary, CaseMode, Engine, MatcherOptions, TermMatcher, WordChars};

/// One fuzz input: `flags`, then a term list, then (after the first `0xFF` byte, which valid
/// UTF-8 never holds) a text to search. The list is parsed; when it parses, every entry must be
/// well-formed, and the matcher built from it (options from `flags`) must find spans that lie on
/// char boundaries, in order and without overlap, each of whose folded text contains its folded
/// term; and every ASCII term alone as the text is found whole. Panics when an invariant fails.
pub fn term_list(data: &[u8]) {
    let [flags, rest @ ..] = data else {
        return;
    };
    let (list, text) = match rest.iter().position(|&b| b == 0xFF) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let default_category = (flags & 1 == 1).then_some("default");
    let Ok(entries) = parse_term_list(list, Path::new("fuzz.tsv"), default_category) else {
        return;
    };
    for e in &entries {
        assert!(!e.term.is_empty());
        assert_eq!(e.term, e.term.trim());
        assert!(!e.term.contains(['\t', '\n']));
        assert!(!e.term.starts_with('#'));
        assert!(e.weight.is_finite() && e.weight >= 0.0, "{e:?}");
        if let Some(c) = &e.category {
            assert!(!c.is_empty() && !c.contains(['\t', '\n']), "{e:?}");
        }
    }
    let options = MatcherOptions {
        whole_word: flags & 2 != 0,
        case_insensitive: flags & 4 != 0,
        normalize_nfkc: flags & 8 != 0,
        engine: [Engine::Auto, Engine::Dfa, Engine::Nfa, Engine::Words]
            [usize::from(flags >> 4 & 3)],
        // Bit 6: the Python peer semantics of word chars and boundaries; bit 7: Python's lower().
        word_chars: if flags & 64 != 0 {
            WordChars::Python
        } else {
            WordChars::Unicode
        },
        boundary: if flags & 64 != 0 {
            Boundary::Flanked
        } else {
            Boundary::WordEdges
        },
        case: if flags & 128 != 0 {
            CaseMode::Lower
        } else {
            CaseMode::Fold
        },
    };
    let (mapping, nfkc) = (options.mapping(), options.normalize_nfkc);
    let Ok(matcher) = TermMatcher::new(entries, options) else {
        return;
    };
    let text = String::from_utf8_lossy(text);
    let check = |text: &str| {
        let found = matcher.find_all(text);
        let mut last_end = 0;
        for m in &found {
            assert!(
                m.start < m.end && m.end <= text.len(),
                "{m:?} in {}",
                text.len()
            );
            assert!(text.is_char_boundary(m.start) && text.is_char_boundary(m.end));
            assert!(
                m.start >= last_end,
                "overlapping or unordered spans: {found:?}"
            );
            last_end = m.end;
            let term = &matcher.terms()[m.term as usize].term;
            let folded_span = normalize(&text[m.start..m.end], mapping, nfkc);
            let folded_term = normalize(term, mapping, nfkc);
            assert!(
                folded_span.contains(&folded_term),
                "span {:?} does not hold term {term:?}",
                &text[m.start..m.end]
            );
        }
        found
    };
    check(&text);
    for term in matcher
        .terms()
        .iter()
        .map(|t| t.term.clone())
        .collect::<Vec<_>>()
    {
        if term.is_ascii() {
            let found = check(&term);
            assert!(
                found.iter().any(|m| m.start == 0 && m.end == term.len()),
                "term {term:?} alone is not found: {found:?}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every committed corpus file of the `term_list` fuzz target, through the same function.
    #[test]
    fn fuzz_corpus_runs_clean() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/term_list");
        let mut count = 0;
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries {
                let path = entry.unwrap().path();
                super::term_list(&std::fs::read(&path).unwrap());
                count += 1;
            }
        }
        assert!(count > 0, "no corpus in {}", dir.display());
    }
}
