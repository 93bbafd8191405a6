//! The word index: whole-word matching on ASCII text at a cost that does not grow with the list.
//!
//! An automaton over thousands of terms is a table of many megabytes, and scanning text with it
//! misses cache on most bytes (the DFA falls from ~400 MB/s at dozens of terms to ~100 MB/s at
//! 5,000 and the NFA to ~30 MB/s at 100,000). But a whole-word match can only start at a word
//! start, and there the text's word must equal the term's first word (a term's first word is
//! followed, inside the term, by a non-word char or by the term's end, which the text must then
//! match too). So it is enough to walk the words of the text and, for each, look up its folded
//! form among the terms' first words; the rare hits verify their candidate terms longest first.
//! That is exactly the automaton's leftmost-longest whole-word result, for any list size, at the
//! cost of one table probe per word (a small bitmap on word length and first/last letter turns
//! most probes away before hashing).
//!
//! Used for ASCII text only (non-ASCII text goes through folding and the automaton), and only
//! when every term starts with a word char.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::fold::is_ascii_word_byte;
use crate::{TermMatch, WordChars};

/// `WORD[b]`: whether ASCII byte `b` is a word byte (`[0-9A-Za-z_]`); non-ASCII bytes never
/// reach the word index.
static WORD: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric() || b == b'_' as usize;
        b += 1;
    }
    table
};

/// Longest text word folded into the stack buffer; longer words (rare: hashes, long tokens) are
/// folded into a heap buffer instead. Every first word is indexed whatever its length.
const MAX_KEY: usize = 64;

pub(crate) struct WordIndex {
    /// Folded first word → terms starting with it, longest folded pattern first.
    first_words: HashMap<Box<[u8]>, Vec<u32>, BuildHasherDefault<FxHasher>>,
    /// `filter[key(word)]` is false when no first word has that length and first/last byte.
    filter: Vec<bool>,
    /// Folded patterns (ASCII ones only are reachable from ASCII text) and their end rule.
    patterns: Vec<Box<[u8]>>,
    last_is_word: Vec<bool>,
    fold: bool,
}

fn filter_key(word: &[u8]) -> usize {
    let first = (word[0] | 0x20) as usize & 31;
    let last = (word[word.len() - 1] | 0x20) as usize & 31;
    (word.len().min(31) << 10) | (first << 5) | last
}

impl WordIndex {
    /// `None` unless every pattern starts with a word char (a term starting with `#` or `.` can
    /// start mid-word, which word starts would miss). `flanked`: every match needs a non-word
    /// char (or the text's end) after it, whatever the term's last char.
    pub(crate) fn new(
        patterns: &[String],
        fold: bool,
        word_chars: WordChars,
        flanked: bool,
    ) -> Option<WordIndex> {
        let mut first_words: HashMap<Box<[u8]>, Vec<u32>, BuildHasherDefault<FxHasher>> =
            HashMap::default();
        let mut filter = vec![false; 32 << 10];
        for (id, pattern) in patterns.iter().enumerate() {
            let bytes = pattern.as_bytes();
            if !pattern
                .chars()
                .next()
                .is_some_and(|c| word_chars.is_word(c))
            {
                return None;
            }
            if !pattern.is_ascii() {
                continue; // cannot occur in ASCII text
            }
            let first_len = bytes.iter().take_while(|&&b| is_ascii_word_byte(b)).count();
            let key = &bytes[..first_len];
            filter[filter_key(key)] = true;
            first_words.entry(key.into()).or_default().push(id as u32);
        }
        for ids in first_words.values_mut() {
            ids.sort_by_key(|&id| std::cmp::Reverse(patterns[id as usize].len()));
        }
        Some(WordIndex {
            first_words,
            filter,
            patterns: patterns.iter().map(|p| p.as_bytes().into()).collect(),
            last_is_word: patterns
                .iter()
                .map(|p| flanked || p.chars().next_back().is_some_and(|c| word_chars.is_word(c)))
                .collect(),
            fold,
        })
    }

    /// Appends the leftmost-longest, non-overlapping whole-word matches in ASCII `text`.
    pub(crate) fn find_ascii(&self, text: &[u8], out: &mut Vec<TermMatch>) {
        let n = text.len();
        let mut key = [0u8; MAX_KEY];
        let mut long_key = Vec::new();
        let mut i = 0;
        while i < n {
            while i < n && !WORD[text[i] as usize] {
                i += 1;
            }
            let start = i;
            while i < n && WORD[text[i] as usize] {
                i += 1;
            }
            let len = i - start;
            if len == 0 || !self.filter[filter_key(&text[start..i])] {
                continue;
            }
            let word = if len <= MAX_KEY {
                &mut key[..len]
            } else {
                long_key.clear();
                long_key.resize(len, 0);
                &mut long_key[..]
            };
            word.copy_from_slice(&text[start..i]);
            if self.fold {
                word.make_ascii_lowercase();
            }
            let Some(candidates) = self.first_words.get(&*word) else {
                continue;
            };
            for &id in candidates {
                let pattern = &self.patterns[id as usize];
                let end = start + pattern.len();
                let same = end <= n
                    && if self.fold {
                        text[start..end].eq_ignore_ascii_case(pattern)
                    } else {
                        text[start..end] == **pattern
                    };
                let ends_ok = || {
                    !self.last_is_word[id as usize] || end == n || !is_ascii_word_byte(text[end])
                };
                if same && ends_ok() {
                    out.push(TermMatch {
                        term: id,
                        start,
                        end,
                    });
                    i = end;
                    break;
                }
            }
        }
    }
}

/// rustc's FxHash: a multiply-rotate hash, several times faster than SipHash on short keys. Keys
/// are terms from a trusted config, so hash flooding is not a concern.
#[derive(Default)]
pub(crate) struct FxHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, mut bytes: &[u8]) {
        while bytes.len() >= 8 {
            self.add(u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")));
            bytes = &bytes[8..];
        }
        if bytes.len() >= 4 {
            self.add(u64::from(u32::from_le_bytes(
                bytes[..4].try_into().expect("4 bytes"),
            )));
            bytes = &bytes[4..];
        }
        for &b in bytes {
            self.add(u64::from(b));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use crate::{Engine, MatcherOptions, TermEntry, TermMatcher};
    use proptest::prelude::*;

    fn matcher(terms: &[&str], engine: Engine, case_insensitive: bool) -> TermMatcher {
        TermMatcher::new(
            terms.iter().map(|t| TermEntry::new(*t)).collect(),
            MatcherOptions {
                whole_word: true,
                case_insensitive,
                normalize_nfkc: true,
                engine,
                ..MatcherOptions::default()
            },
        )
        .unwrap()
    }

    const TERMS: &[&str] = &[
        "nerve",
        "nerve agent",
        "nerve agents",
        "sarin",
        "c++",
        "x-ray",
        "weapons-grade plutonium",
        "VX nerve agent",
        "a",
        "ab",
        "abc d",
        "Ünï",
        "dirty bomb",
        "bomb_maker",
        "42",
    ];

    #[test]
    fn word_index_is_used_only_when_it_applies() {
        assert!(matcher(TERMS, Engine::Words, true).uses_word_index());
        assert!(!matcher(TERMS, Engine::Dfa, true).uses_word_index());
        assert!(
            !matcher(TERMS, Engine::Auto, true).uses_word_index(),
            "few terms: automaton"
        );
        let err = TermMatcher::new(
            vec![TermEntry::new("#tag")],
            MatcherOptions {
                engine: Engine::Words,
                ..MatcherOptions::default()
            },
        );
        assert!(err.is_err());
    }

    #[test]
    fn same_matches_as_the_automaton_on_examples() {
        for text in [
            "Nerve agents and a nerve agent; VX NERVE AGENT, nerve.",
            "c++ x-ray weapons-grade plutonium weapons-grade  plutonium",
            "abc d ab abx a_b bomb_maker bomb_makers 42 421 4242",
            "xsarin sarinx _sarin sarin_ sarin",
        ] {
            for ci in [true, false] {
                let a = matcher(TERMS, Engine::Words, ci).find_all(text);
                let b = matcher(TERMS, Engine::Dfa, ci).find_all(text);
                assert_eq!(a, b, "{text} (case-insensitive: {ci})");
            }
        }
    }

    proptest! {
        #[test]
        fn same_matches_as_the_automaton(
            words in prop::collection::vec(prop::sample::select(vec![
                "nerve", "agent", "agents", "Nerve", "AGENT", "sarin", "c", "++", "x", "-", "ray",
                "weapons", "grade", "plutonium", "vx", "VX", "a", "ab", "abc", "d", "42", "_",
                "bomb", "dirty", "maker", "zz",
            ]), 0..40),
            seps in prop::collection::vec(prop::sample::select(vec!["", " ", "  ", "-", ", ", "_", "."]), 40),
            ci in any::<bool>(),
        ) {
            let mut text = String::new();
            for (w, s) in words.iter().zip(&seps) {
                text.push_str(w);
                text.push_str(s);
            }
            let a = matcher(TERMS, Engine::Words, ci).find_all(&text);
            let b = matcher(TERMS, Engine::Dfa, ci).find_all(&text);
            prop_assert_eq!(a, b, "{:?}", text);
        }
    }
}
