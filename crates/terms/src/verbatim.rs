//! When a non-ASCII text can be searched as it is, without building its folded copy.
//!
//! Folding (or lowering, or NFKC) a text that is not pure ASCII means copying it into a scratch
//! buffer with an offset map, char by char: on multilingual real text that cost as much as the
//! search itself. But most non-ASCII chars change nothing a search can see. Searching the original
//! bytes (the automaton folds ASCII itself) finds exactly the matches the folded copy gives when
//! every non-ASCII char `c` of the text is *verbatim*:
//!
//! * with NFKC, `c` is unchanged by it and cannot combine with its neighbours (NFKC quick check
//!   Yes, a starter with nothing before it to compose with), so NFKC leaves the text as it is;
//! * and either the mapping keeps `c`, or `c` maps to chars that no term can use (no ASCII char,
//!   no char that occurs in a folded term) with the word-ness of `c` on both edges (so the
//!   whole-word tests give the same answers on either side of it).
//!
//! Then every match in the folded copy lies inside runs the mapping kept, where both texts agree
//! up to ASCII case, and every boundary char has the same word-ness: the searches agree (the
//! property test `verbatim_search_equals_the_folded_search` checks it against the slow path).
//! `İ` (lowers to `i` + U+0307), `K` (Kelvin: folds to `k`), `ſ` (folds to `s`), combining marks
//! and compatibility chars (`ﬁ`, `½`, fullwidth letters) are not verbatim, and a text holding one
//! takes the folded path.
//!
//! The answer per char is cached in the matcher (two bits of state per code point below
//! U+20000, filled on first sight; racing threads compute the same value), so a text's check is
//! one table load per non-ASCII char.

use std::sync::atomic::{AtomicU8, Ordering};

use unicode_normalization::char::canonical_combining_class;

use crate::fold::{fold_char, nfkc_qc_yes, starts_segment, Mapping};
use crate::python::{lower_char, Lowered};
use crate::WordChars;

/// Code points below this have a cache slot (the BMP and plane 1: scripts, symbols, emoji).
const CACHED: u32 = 0x2_0000;
const UNKNOWN: u8 = 0;
const VERBATIM: u8 = 1;
const FOLDED: u8 = 2;

/// Which non-ASCII chars leave a search of the original text exact; see the module docs.
pub(crate) struct VerbatimChars {
    mapping: Mapping,
    nfkc: bool,
    word_chars: WordChars,
    /// Sorted, deduplicated non-ASCII chars of the folded terms.
    term_chars: Vec<char>,
    cache: Box<[AtomicU8]>,
}

impl VerbatimChars {
    pub(crate) fn new<'a>(
        folded_terms: impl IntoIterator<Item = &'a String>,
        mapping: Mapping,
        nfkc: bool,
        word_chars: WordChars,
    ) -> Self {
        let mut term_chars: Vec<char> = folded_terms
            .into_iter()
            .flat_map(|t| t.chars())
            .filter(|c| !c.is_ascii())
            .collect();
        term_chars.sort_unstable();
        term_chars.dedup();
        VerbatimChars {
            mapping,
            nfkc,
            word_chars,
            term_chars,
            // Zeroed memory (UNKNOWN): pages are only touched for the scripts a corpus uses.
            cache: (0..CACHED).map(|_| AtomicU8::new(UNKNOWN)).collect(),
        }
    }

    /// Heap memory: the per-char cache (allocated whole, touched only where a corpus has chars).
    pub(crate) fn memory_usage(&self) -> usize {
        self.cache.len() + self.term_chars.len() * std::mem::size_of::<char>()
    }

    /// Whether every non-ASCII char of `text` is verbatim.
    pub(crate) fn allows(&self, text: &str) -> bool {
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            // Skip ASCII eight bytes at a time.
            if let Some(word) = bytes.get(i..i + 8) {
                let mut eight = [0u8; 8];
                eight.copy_from_slice(word);
                if u64::from_le_bytes(eight) & 0x8080_8080_8080_8080 == 0 {
                    i += 8;
                    continue;
                }
            }
            if bytes[i].is_ascii() {
                i += 1;
                continue;
            }
            let Some(c) = text.get(i..).and_then(|rest| rest.chars().next()) else {
                return false;
            };
            if !self.is_verbatim(c) {
                return false;
            }
            i += c.len_utf8();
        }
        true
    }

    #[inline]
    fn is_verbatim(&self, c: char) -> bool {
        let Some(slot) = self.cache.get(c as usize) else {
            return self.compute(c);
        };
        match slot.load(Ordering::Relaxed) {
            VERBATIM => true,
            FOLDED => false,
            _ => {
                let verbatim = self.compute(c);
                slot.store(if verbatim { VERBATIM } else { FOLDED }, Ordering::Relaxed);
                verbatim
            }
        }
    }

    fn compute(&self, c: char) -> bool {
        if c.is_ascii() {
            return true;
        }
        if self.nfkc && !(nfkc_qc_yes(c) && canonical_combining_class(c) == 0 && starts_segment(c))
        {
            return false;
        }
        let mut mapped: Vec<char> = Vec::with_capacity(2);
        match self.mapping {
            Mapping::Keep => return true,
            Mapping::Fold => mapped.push(fold_char(c)),
            Mapping::Lower if c == 'Σ' => mapped.extend(['σ', 'ς']),
            Mapping::Lower => match lower_char(c) {
                Lowered::One(l) => mapped.push(l),
                Lowered::Many(s) => mapped.extend(s.chars()),
            },
        }
        if mapped == [c] {
            return true;
        }
        let usable_by_a_term = |d: &char| d.is_ascii() || self.term_chars.binary_search(d).is_ok();
        if usable_by_a_term(&c) || mapped.iter().any(usable_by_a_term) {
            return false;
        }
        let word = self.word_chars.is_word(c);
        // Σ's two lowercase forms are one char each: first and last are the same char.
        mapped.iter().all(|&d| self.word_chars.is_word(d) == word)
    }
}

impl std::fmt::Debug for VerbatimChars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerbatimChars")
            .field("mapping", &self.mapping)
            .field("nfkc", &self.nfkc)
            .field("term_chars", &self.term_chars.len())
            .finish()
    }
}
