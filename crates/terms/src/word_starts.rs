//! Whole-word search of ASCII text from word starts, with a prefix filter.
//!
//! When every term starts with a word char, a whole-word match can only start at a word start:
//! a word byte after a non-word byte (or at the text's start). In prose that is one byte in
//! seven, and at most of them no term can start: of the word starts of real English text, 11%
//! begin with the first three letters of one of C4's 403 bad words and 5% with those of the
//! 5,000-term hazard list. The unanchored automaton instead makes a dependent table load for
//! every byte (about five cycles a byte; a large list's automaton also misses cache).
//!
//! So, for ASCII text: a 64-byte block's word bytes become a bit mask (one table load per byte,
//! no branches), its word starts are `word & !(word << 1)`, and each start's first three bytes,
//! case-folded, are looked up in a 64 Ki-bit set of the terms' first three bytes (hashed; a
//! collision only costs a walk). Only starts that pass are walked in an anchored automaton (the
//! terms' trie), which notes each term ending where it stands whose end test passes; the last
//! noted is the longest valid match at that start, exactly what the leftmost-longest search with
//! its prefix fallback picks (`TermMatcher::search`; property test
//! `word_start_search_equals_the_automaton`).

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::nfa::contiguous::NFA;
use aho_corasick::{Anchored, MatchKind};

use crate::fold::is_ascii_word_byte;
use crate::matcher::TermInfo;
use crate::{TermMatch, TermsError};

/// Bits of the prefix set (64 Ki bits: 8 KiB, stays in L1).
const KEY_BITS: u32 = 16;

pub(crate) struct WordStartSearch {
    trie: NFA,
    start: StateID,
    /// Bit `h` set: some term's first three bytes (folded) hash to `h`.
    prefixes: Box<[u64]>,
    /// Some term of one or two bytes starts with this (folded) byte: always walk.
    short_first: [bool; 256],
    /// ASCII lowercasing when case-insensitive, else the identity.
    fold: [u8; 256],
    word: [u8; 256],
}

#[inline]
fn key_hash(a: u8, b: u8, c: u8) -> usize {
    let key = u32::from(a) | u32::from(b) << 8 | u32::from(c) << 16;
    (key.wrapping_mul(0x9E37_79B1) >> (32 - KEY_BITS)) as usize
}

impl WordStartSearch {
    /// `None` when some term starts with an ASCII non-word byte (such a term can start inside
    /// a run of non-word bytes, not only at word starts).
    pub(crate) fn new(
        patterns: &[String],
        case_insensitive: bool,
    ) -> Result<Option<Self>, TermsError> {
        if patterns.iter().any(|p| {
            p.as_bytes()
                .first()
                .is_some_and(|&b| b.is_ascii() && !is_ascii_word_byte(b))
        }) {
            return Ok(None);
        }
        let mut fold = [0u8; 256];
        let mut word = [0u8; 256];
        for b in 0..=255u8 {
            fold[usize::from(b)] = if case_insensitive {
                b.to_ascii_lowercase()
            } else {
                b
            };
            word[usize::from(b)] = u8::from(is_ascii_word_byte(b));
        }
        let mut prefixes = vec![0u64; (1 << KEY_BITS) / 64].into_boxed_slice();
        let mut short_first = [false; 256];
        for p in patterns {
            // Terms that start with a non-ASCII char never match ASCII text.
            match *p.as_bytes() {
                [a, ..] if !a.is_ascii() => {}
                [a, b, c, ..] => {
                    let h = key_hash(
                        fold[usize::from(a)],
                        fold[usize::from(b)],
                        fold[usize::from(c)],
                    );
                    prefixes[h / 64] |= 1 << (h % 64);
                }
                [a, ..] => short_first[usize::from(fold[usize::from(a)])] = true,
                [] => {}
            }
        }
        let trie = NFA::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .ascii_case_insensitive(case_insensitive)
            .prefilter(false)
            .build(patterns)?;
        let start = trie
            .start_state(Anchored::Yes)
            .map_err(|_| TermsError::WordsEngine)?;
        Ok(Some(WordStartSearch {
            trie,
            start,
            prefixes,
            short_first,
            fold,
            word,
        }))
    }

    pub(crate) fn memory_usage(&self) -> usize {
        self.trie.memory_usage() + self.prefixes.len() * 8
    }

    /// Whether some term may start at word start `p`.
    #[inline]
    fn may_start(&self, text: &[u8], p: usize) -> bool {
        let a = self.fold[usize::from(text[p])];
        if self.short_first[usize::from(a)] {
            return true;
        }
        match (text.get(p + 1), text.get(p + 2)) {
            (Some(&b), Some(&c)) => {
                let h = key_hash(a, self.fold[usize::from(b)], self.fold[usize::from(c)]);
                self.prefixes[h / 64] & (1 << (h % 64)) != 0
            }
            // Fewer than three bytes left: only a short term could match, checked above.
            _ => false,
        }
    }

    /// Every non-overlapping whole-word match of ASCII `text`, in order.
    pub(crate) fn find(&self, text: &[u8], info: &[TermInfo], out: &mut Vec<TermMatch>) {
        let n = text.len();
        let mut prev_word = 0u64;
        let mut next_allowed = 0;
        for (block_index, block) in text.chunks(64).enumerate() {
            let base = block_index * 64;
            let mut word = 0u64;
            for (k, &b) in block.iter().enumerate() {
                word |= u64::from(self.word[usize::from(b)]) << k;
            }
            let mut starts = word & !((word << 1) | prev_word);
            prev_word = (word >> (block.len() - 1)) & 1;
            while starts != 0 {
                let p = base + starts.trailing_zeros() as usize;
                starts &= starts - 1;
                if p < next_allowed || !self.may_start(text, p) {
                    continue;
                }
                if let Some((term, end)) = self.walk(text, p, n, info) {
                    out.push(TermMatch {
                        term,
                        start: p,
                        end,
                    });
                    next_allowed = end;
                }
            }
        }
    }

    /// The longest term matching at word start `start` whose end test passes (its start test
    /// passes: a non-word byte or nothing is before it).
    #[inline]
    fn walk(&self, text: &[u8], start: usize, n: usize, info: &[TermInfo]) -> Option<(u32, usize)> {
        let mut sid = self.start;
        let mut best = None;
        for (at, &b) in text.iter().enumerate().skip(start) {
            sid = self.trie.next_state(Anchored::Yes, sid, b);
            if !self.trie.is_special(sid) {
                continue;
            }
            if self.trie.is_dead(sid) {
                break;
            }
            if !self.trie.is_match(sid) {
                continue;
            }
            let end = at + 1;
            for i in 0..self.trie.match_len(sid) {
                let pid = self.trie.match_pattern(sid, i);
                if self.trie.pattern_len(pid) != end - start {
                    continue;
                }
                let Some(term) = info.get(pid.as_usize()) else {
                    continue;
                };
                let end_ok = !term.last_word || end >= n || self.word[usize::from(text[end])] == 0;
                if end_ok {
                    best = Some((pid.as_u32(), end));
                }
            }
        }
        best
    }
}

impl std::fmt::Debug for WordStartSearch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WordStartSearch")
            .field("memory_usage", &self.memory_usage())
            .finish()
    }
}
