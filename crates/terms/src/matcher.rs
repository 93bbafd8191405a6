//! The multi-term matcher.

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, AhoCorasickKind, Input, MatchKind};

use crate::fold::{is_ascii_word_byte, normalize, FoldedMap, Mapping, MatchScratch};
use crate::verbatim::VerbatimChars;
use crate::word_starts::WordStartSearch;
use crate::words::WordIndex;
use crate::{TermEntry, TermMatch, TermsError, WordChars};

/// Which Aho-Corasick automaton to build.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Engine {
    /// A DFA up to [`DFA_MAX_TERMS`] terms / [`DFA_MAX_PATTERN_BYTES`] pattern bytes, a
    /// contiguous NFA beyond.
    #[default]
    Auto,
    /// Always a DFA: fastest search, but memory grows with states × byte classes.
    Dfa,
    /// Always a contiguous NFA: compact, somewhat slower search.
    Nfa,
    /// The word index (see `words.rs`) for ASCII text, whatever the list size; the automaton for
    /// the rest. Needs whole-word matching and terms that start with a word char.
    Words,
}

/// From this many terms, [`Engine::Auto`] uses the word index for ASCII text (when whole-word
/// matching allows it) instead of the contiguous NFA: measured on 50 MB of generated web-like
/// text, 100,000 terms, 170–180 MB/s vs 80–120 MB/s for the NFA. Up to [`DFA_MAX_TERMS`] the DFA
/// is faster (5,000 terms: DFA 335 MB/s, word index 197 MB/s, NFA 113 MB/s, in isolation).
pub const WORDS_MIN_TERMS: usize = DFA_MAX_TERMS + 1;

/// Largest term count for which [`Engine::Auto`] builds a DFA.
///
/// Measured (release, 2-core AMD EPYC VM with 1 MiB L2 / 32 MiB L3, busy with other builds) on
/// 2 MB of prose-like text with 1–3-word terms of ~16 bytes, whole-word and substring mode
/// (`measure_engines` in the tests), ASCII text, MB/s DFA vs contiguous NFA:
///
/// | terms   | DFA build / memory | NFA build / memory | DFA MB/s | NFA MB/s |
/// |---------|--------------------|--------------------|----------|----------|
/// | 1,000   | 20 ms / 3.5 MiB    | 10 ms / 0.4 MiB    | 170–220  | 85       |
/// | 3,000   | 55–85 ms / 10 MiB  | 20 ms / 0.9 MiB    | 100–150  | 105      |
/// | 5,000   | 100–125 ms / 17 MiB| 40 ms / 1.4 MiB    | 115–125  | 85–100   |
/// | 10,000  | 230–300 ms / 34 MiB| 85–115 ms / 2.7 MiB| 50–65    | 80–85    |
/// | 20,000  | 0.6 s / 67 MiB     | 0.3 s / 5.2 MiB    | 24–45    | 63–72    |
/// | 50,000  | 1.7–2 s / 163 MiB  | 0.8–1.6 s / 12.6 MiB | 17–35  | 19–55    |
/// | 100,000 | —                  | 2–3 s / 25 MiB     | —        | 25–50    |
///
/// The DFA's transition table (states × byte classes × 4 bytes) stops fitting in cache around
/// 10–20 MiB, after which the compact NFA is *faster*; so the DFA is used only while it wins.
pub const DFA_MAX_TERMS: usize = 5_000;

/// Largest total folded pattern size (bytes) for which [`Engine::Auto`] builds a DFA; DFA size
/// follows the number of automaton states, which is bounded by the total pattern bytes
/// (~32 bytes × [`DFA_MAX_TERMS`]: multi-word terms average ~20 bytes). At 100,000 it left
/// `benches/terms-5000.tsv` (101,063 bytes) on the NFA: its terms stage ran at 141 MB/s instead
/// of 467 MB/s with the DFA (+13 MiB), on the 200 MB generated corpus of `benches/compare.sh`.
pub const DFA_MAX_PATTERN_BYTES: usize = 160_000;

/// How case-insensitive matching maps the case of terms and text (with `case_insensitive`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CaseMode {
    /// Unicode simple case folding (CaseFolding.txt C + S: `ſ` → `s`, `ẞ` → `ß`, `ς` → `σ`).
    #[default]
    Fold,
    /// Python's `str.lower()`: the full lowercase mapping (`İ` → `i̇`, `ẞ` → `ß`, `ſ` stays
    /// `ſ`) with the Final_Sigma rule (`Σ` → `ς` at a word's end), as CPython 3.11 does it.
    Lower,
}

/// Where a whole-word match needs a non-word char (or the text's start or end) beside it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Boundary {
    /// Only on the sides where the term's own edge char is a word char, like `\b`: `c++` matches
    /// in `c++x`, `#tag` in `a#tag`.
    #[default]
    WordEdges,
    /// On both sides whatever the term's edges: C4's `(?:\W|^)(term)(?:\W|$)`, so `🖕` does not
    /// match in `x🖕`.
    Flanked,
}

/// How a [`TermMatcher`] compares terms with text.
#[derive(Clone, Debug)]
pub struct MatcherOptions {
    /// Only report matches that are not part of a larger word (see [`TermMatcher`]).
    pub whole_word: bool,
    /// Case-insensitive matching, by [`case`](Self::case).
    pub case_insensitive: bool,
    /// NFKC-normalize terms and text before folding.
    pub normalize_nfkc: bool,
    /// Which automaton to build.
    pub engine: Engine,
    /// Which chars are word chars (whole words and [`TermMatcher::count_words`]).
    pub word_chars: WordChars,
    /// Folding or Python's `lower()`, when `case_insensitive`. With [`CaseMode::Lower`] the
    /// whole-word test looks at the lowered text, as a regex run on `text.lower()` does.
    pub case: CaseMode,
    /// Which sides of a whole-word match need a boundary.
    pub boundary: Boundary,
}

impl Default for MatcherOptions {
    /// Whole words, case-insensitive, NFKC, automatic engine: the settings for hazard term lists.
    fn default() -> Self {
        MatcherOptions {
            whole_word: true,
            case_insensitive: true,
            normalize_nfkc: true,
            engine: Engine::Auto,
            word_chars: WordChars::Unicode,
            case: CaseMode::Fold,
            boundary: Boundary::WordEdges,
        }
    }
}

impl MatcherOptions {
    pub(crate) fn mapping(&self) -> Mapping {
        match (self.case_insensitive, self.case) {
            (false, _) => Mapping::Keep,
            (true, CaseMode::Fold) => Mapping::Fold,
            (true, CaseMode::Lower) => Mapping::Lower,
        }
    }
}

/// Per-term facts the search loop needs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TermInfo {
    /// Length of the folded pattern in bytes.
    len: u32,
    /// The start needs a word boundary: the folded term's first char is a word char, or
    /// [`Boundary::Flanked`].
    pub(crate) first_word: bool,
    /// The end needs a word boundary (likewise).
    pub(crate) last_word: bool,
}

/// A set of terms compiled into one Aho-Corasick automaton. Built once, `Send + Sync`, shared by
/// all threads; each thread brings its own [`MatchScratch`].
///
/// See the crate documentation for the matching pipeline.
pub struct TermMatcher {
    ac: AhoCorasick,
    terms: Vec<TermEntry>,
    info: Vec<TermInfo>,
    /// Whole-word mode: for term `t`, `prefix_ids[prefix_offsets[t]..prefix_offsets[t + 1]]` are
    /// the other terms whose folded form is a proper prefix of `t`'s, longest first.
    prefix_offsets: Vec<u32>,
    prefix_ids: Vec<u32>,
    duplicates: usize,
    options: MatcherOptions,
    engine: AhoCorasickKind,
    /// Whole-word search of ASCII text by word lookups, when chosen.
    words: Option<WordIndex>,
    /// Which non-ASCII texts can be searched without their folded copy (with folding or NFKC).
    verbatim: Option<VerbatimChars>,
    /// Whole-word search of ASCII text from word starts, when the automaton is a DFA and every
    /// term starts with a word char (see `word_starts.rs`).
    pub(crate) word_starts: Option<WordStartSearch>,
}

impl std::fmt::Debug for TermMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TermMatcher")
            .field("terms", &self.terms.len())
            .field("duplicates_merged", &self.duplicates)
            .field("options", &self.options)
            .field("engine", &self.engine)
            .field("memory_usage", &self.ac.memory_usage())
            .finish()
    }
}

impl TermMatcher {
    /// Compile `entries`.
    ///
    /// Terms are normalized (NFKC if enabled) and folded (if case-insensitive); terms that are
    /// identical afterwards are merged: the first is kept and the later ones are counted in
    /// [`duplicates_merged`](Self::duplicates_merged). A term that is empty or only whitespace
    /// afterwards is an error.
    pub fn new(entries: Vec<TermEntry>, options: MatcherOptions) -> Result<Self, TermsError> {
        let ci = options.case_insensitive;
        let nfkc = options.normalize_nfkc;
        let mapping = options.mapping();
        let wc = options.word_chars;
        let flanked = options.boundary == Boundary::Flanked;
        let mut seen: HashMap<String, u32> = HashMap::with_capacity(entries.len());
        let mut terms = Vec::with_capacity(entries.len());
        let mut patterns: Vec<String> = Vec::with_capacity(entries.len());
        let mut duplicates = 0;
        for entry in entries {
            if !(entry.weight.is_finite() && entry.weight >= 0.0) {
                return Err(TermsError::BadTermWeight {
                    term: entry.term,
                    weight: entry.weight,
                });
            }
            let folded = normalize(&entry.term, mapping, nfkc);
            if folded.trim().is_empty() {
                return Err(TermsError::EmptyTerm { term: entry.term });
            }
            if seen.contains_key(&folded) {
                duplicates += 1;
                continue;
            }
            let id = u32::try_from(terms.len()).map_err(|_| TermsError::TooManyTerms {
                count: terms.len() + 1,
            })?;
            seen.insert(folded.clone(), id);
            patterns.push(folded);
            terms.push(entry);
        }

        let info = patterns
            .iter()
            .map(|p| TermInfo {
                len: u32::try_from(p.len()).unwrap_or(u32::MAX),
                first_word: flanked || p.chars().next().is_some_and(|c| wc.is_word(c)),
                last_word: flanked || p.chars().next_back().is_some_and(|c| wc.is_word(c)),
            })
            .collect();

        let (prefix_offsets, prefix_ids) = if options.whole_word {
            prefix_table(&patterns, &seen)
        } else {
            (Vec::new(), Vec::new())
        };

        let words = match options.engine {
            _ if !options.whole_word => None,
            Engine::Words => {
                Some(WordIndex::new(&patterns, ci, wc, flanked).ok_or(TermsError::WordsEngine)?)
            }
            Engine::Auto if patterns.len() >= WORDS_MIN_TERMS => {
                WordIndex::new(&patterns, ci, wc, flanked)
            }
            _ => None,
        };
        if options.engine == Engine::Words && !options.whole_word {
            return Err(TermsError::WordsEngine);
        }
        let total_bytes: usize = patterns.iter().map(String::len).sum();
        let engine = match options.engine {
            Engine::Dfa => AhoCorasickKind::DFA,
            Engine::Nfa | Engine::Words => AhoCorasickKind::ContiguousNFA,
            Engine::Auto
                if patterns.len() <= DFA_MAX_TERMS && total_bytes <= DFA_MAX_PATTERN_BYTES =>
            {
                AhoCorasickKind::DFA
            }
            Engine::Auto => AhoCorasickKind::ContiguousNFA,
        };
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            // Patterns are folded already; for the ASCII part of the text (the whole text on the
            // fast path) ASCII case-insensitivity is exactly simple case folding (and Python's
            // lower()).
            .ascii_case_insensitive(ci)
            .kind(Some(engine))
            .build(&patterns)?;

        let verbatim = (ci || nfkc).then(|| VerbatimChars::new(&patterns, mapping, nfkc, wc));
        let word_starts = if options.whole_word && engine == AhoCorasickKind::DFA {
            WordStartSearch::new(&patterns, ci)?
        } else {
            None
        };
        Ok(TermMatcher {
            ac,
            terms,
            info,
            prefix_offsets,
            prefix_ids,
            duplicates,
            options,
            engine,
            words,
            verbatim,
            word_starts,
        })
    }

    /// Whether ASCII text is searched with the word index instead of the automaton.
    pub fn uses_word_index(&self) -> bool {
        self.words.is_some()
    }

    /// The unique terms, in first-seen order; [`TermMatch::term`] indexes this.
    pub fn terms(&self) -> &[TermEntry] {
        &self.terms
    }

    /// How many terms were dropped as duplicates of an earlier term after normalization.
    pub fn duplicates_merged(&self) -> usize {
        self.duplicates
    }

    /// The options the matcher was built with.
    pub fn options(&self) -> &MatcherOptions {
        &self.options
    }

    /// Whether [`Engine::Auto`] (or the explicit engine) produced a DFA.
    pub fn is_dfa(&self) -> bool {
        self.engine == AhoCorasickKind::DFA
    }

    /// Number of words in `text` under the matcher's [`WordChars`] (see [`crate::count_words`]).
    pub fn count_words(&self, text: &str) -> usize {
        crate::count_words_with(text, self.options.word_chars)
    }

    /// Heap memory used by the automata, in bytes.
    pub fn memory_usage(&self) -> usize {
        self.ac.memory_usage()
            + self
                .word_starts
                .as_ref()
                .map_or(0, WordStartSearch::memory_usage)
            + self
                .verbatim
                .as_ref()
                .map_or(0, VerbatimChars::memory_usage)
    }

    /// Appends to `out` every non-overlapping leftmost-longest match, in text order.
    ///
    /// Spans are byte offsets into the original `text`, always on char boundaries. `scratch` is
    /// only used (and then reused) when the text is not ASCII and folding or NFKC is on.
    pub fn find_into(&self, text: &str, scratch: &mut MatchScratch, out: &mut Vec<TermMatch>) {
        if text.is_empty() || self.terms.is_empty() {
            return;
        }
        let ascii = text.is_ascii();
        if let (Some(word_starts), true) = (&self.word_starts, ascii) {
            word_starts.find(text.as_bytes(), &self.info, out);
        } else if let (Some(words), true) = (&self.words, ascii) {
            words.find_ascii(text.as_bytes(), out);
        } else if ascii || self.verbatim.as_ref().is_none_or(|v| v.allows(text)) {
            // ASCII text is NFKC-stable and its simple folding (and lower()) is ASCII
            // lowercasing, which the automaton does itself; non-ASCII chars that change nothing
            // a search can see are verbatim (see `verbatim.rs`): search the original bytes,
            // offsets are the identity.
            self.search(text, text, None, out);
        } else {
            self.search_folded(text, scratch, out);
        }
    }

    /// The unanchored automaton's search of `text` as it is (tests compare the word-start search
    /// with it).
    #[cfg(test)]
    pub(crate) fn search_unanchored(&self, text: &str, out: &mut Vec<TermMatch>) {
        self.search(text, text, None, out);
    }

    /// The general path: search the folded (lowered, normalized) copy of `text`.
    pub(crate) fn search_folded(
        &self,
        text: &str,
        scratch: &mut MatchScratch,
        out: &mut Vec<TermMatch>,
    ) {
        let o = &self.options;
        scratch.map_text(text, o.mapping(), o.normalize_nfkc);
        let map = FoldedMap {
            pieces: &scratch.pieces,
            folded_len: scratch.buf.len(),
        };
        self.search(text, &scratch.buf, Some(&map), out);
    }

    /// Convenience wrapper around [`find_into`](Self::find_into) that allocates.
    pub fn find_all(&self, text: &str) -> Vec<TermMatch> {
        let mut out = Vec::new();
        self.find_into(text, &mut MatchScratch::default(), &mut out);
        out
    }

    /// Search `hay` (the original text, or its folded form with `map`) and push matches mapped to
    /// `text` offsets.
    fn search(&self, text: &str, hay: &str, map: Option<&FoldedMap<'_>>, out: &mut Vec<TermMatch>) {
        let mut last_end = 0usize;
        let mut push = |term: usize, start: usize, end: usize, last_end: &mut usize| {
            // With NFKC two matches inside one segment (e.g. "1" and "2" in "½") widen to the same
            // span; keep the output non-overlapping.
            if start >= *last_end && start < end {
                out.push(TermMatch {
                    term: term as u32,
                    start,
                    end,
                });
                *last_end = end;
            }
        };
        let map_start = |fs: usize| map.map_or((fs, true), |m| m.map_start(fs));
        let map_end = |fe: usize| map.map_or((fe, true), |m| m.map_end(fe));
        let wc = self.options.word_chars;
        let is_word = |c: char| wc.is_word(c);
        // Python's lower() can change a char's word-ness (`İ` → `i` + U+0307): a regex on
        // `text.lower()` sees the lowered chars, so with it boundaries are judged on `hay`.
        let on_hay = map.is_some() && self.options.mapping() == Mapping::Lower;

        if !self.options.whole_word {
            let Ok(iter) = self.ac.try_find_iter(Input::new(hay)) else {
                return;
            };
            for m in iter {
                let (start, _) = map_start(m.start());
                let (end, _) = map_end(m.end());
                push(m.pattern().as_usize(), start, end, &mut last_end);
            }
            return;
        }

        // Whole-word search. Correctness argument (finds exactly the leftmost-longest
        // non-overlapping sequence among the matches that pass the boundary test):
        // * the automaton returns the leftmost start `s >= pos` at which any term matches, with the
        //   longest such term `t`; every other term matching at `s` is a prefix of the text at
        //   `s` shorter than `t`, hence a proper prefix of `t` (precomputed, longest first);
        // * the start test depends only on `s` and the term's first char, which all these terms
        //   share; the end test is tried on `t`, then its prefixes, and the first that passes is
        //   the longest valid match at `s`;
        // * if none passes, no valid match starts at `s`, and the search resumes one char after
        //   `s` (not after the candidate's end), so "nerve agents" failing on "nerve agentsx"
        //   still lets "nerve agent" be tried, and "anthrax" inside "xanthrax" does not hide a
        //   later "anthrax";
        // * positions with a word char both before and at them are skipped as well: a term
        //   matching there starts with that word char, so its start test would fail. This keeps
        //   whole-word search from restarting at every char of a word that merely contains a
        //   term. On folded text it is only done inside an identity run, where the folded chars
        //   are the original ones the start test looks at (or anywhere when the start test looks
        //   at `hay`). With `Boundary::Flanked` every term starting there fails the start test.
        let mut pos = 0;
        while pos < hay.len() {
            let m = match self.ac.try_find(Input::new(hay).span(pos..hay.len())) {
                Ok(Some(m)) => m,
                _ => break,
            };
            let s = m.start();
            let t = m.pattern().as_usize();
            let (start, start_aligned) = map_start(s);
            let start_ok = !self.info[t].first_word
                || !if start_aligned && !on_hay {
                    text[..start].chars().next_back().is_some_and(is_word)
                } else {
                    // Inside a normalization segment (e.g. "ﬁ"): judge by the folded neighbour.
                    hay[..s].chars().next_back().is_some_and(is_word)
                };
            let mut chosen = None;
            if start_ok {
                for cand in std::iter::once(t).chain(self.prefixes(t)) {
                    let info = self.info[cand];
                    let fe = s + info.len as usize;
                    let (end, end_aligned) = map_end(fe);
                    let end_ok = !info.last_word
                        || !if end_aligned && !on_hay {
                            text[end..].chars().next().is_some_and(is_word)
                        } else {
                            hay[fe..].chars().next().is_some_and(is_word)
                        };
                    if end_ok {
                        chosen = Some((cand, end, fe));
                        break;
                    }
                }
            }
            match chosen {
                Some((cand, end, fe)) => {
                    push(cand, start, end, &mut last_end);
                    pos = fe;
                }
                None => {
                    pos = s + hay[s..].chars().next().map_or(1, char::len_utf8);
                    let limit = match map {
                        None => Some(hay.len()),
                        Some(_) if on_hay => Some(hay.len()),
                        Some(m) => m.identity_run_end(pos - 1),
                    };
                    if let Some(limit) = limit {
                        pos = skip_word_interior(hay, pos, limit, wc);
                    }
                }
            }
        }
    }

    fn prefixes(&self, t: usize) -> impl Iterator<Item = usize> + '_ {
        let (lo, hi) = match (self.prefix_offsets.get(t), self.prefix_offsets.get(t + 1)) {
            (Some(&lo), Some(&hi)) => (lo as usize, hi as usize),
            _ => (0, 0),
        };
        self.prefix_ids[lo..hi].iter().map(|&id| id as usize)
    }
}

/// The first position `>= pos` (and at most `limit`) that does not have a word char both before
/// it and at it: the end of the word run `pos` is inside, or `pos` itself.
fn skip_word_interior(hay: &str, mut pos: usize, limit: usize, wc: WordChars) -> usize {
    let bytes = hay.as_bytes();
    let limit = limit.min(bytes.len());
    let after_word = hay
        .get(..pos)
        .and_then(|before| before.chars().next_back())
        .is_some_and(|c| wc.is_word(c));
    if !after_word {
        return pos;
    }
    while pos < limit {
        let b = bytes[pos];
        let (word, len) = if b.is_ascii() {
            (is_ascii_word_byte(b), 1)
        } else {
            match hay.get(pos..).and_then(|rest| rest.chars().next()) {
                Some(c) => (wc.is_word(c), c.len_utf8()),
                None => break,
            }
        };
        if !word {
            break;
        }
        pos += len;
    }
    pos
}

/// For each pattern, the ids of the other patterns that are proper prefixes of it (at char
/// boundaries), longest first, as CSR offsets + ids.
fn prefix_table(patterns: &[String], ids: &HashMap<String, u32>) -> (Vec<u32>, Vec<u32>) {
    let mut offsets = Vec::with_capacity(patterns.len() + 1);
    let mut prefix_ids = Vec::new();
    offsets.push(0u32);
    for p in patterns {
        for (b, _) in p.char_indices().rev() {
            if b == 0 {
                continue;
            }
            if let Some(&id) = ids.get(&p[..b]) {
                prefix_ids.push(id);
            }
        }
        offsets.push(u32::try_from(prefix_ids.len()).unwrap_or(u32::MAX));
    }
    (offsets, prefix_ids)
}
