//! Term lists and a fast, Unicode-aware, span-exact multi-term matcher.
//!
//! The second stage of the sluice cascade looks for tens of thousands of terms in every document.
//! [`load_term_list`] reads the lists; [`TermMatcher`] compiles all terms into one Aho-Corasick
//! automaton (leftmost-longest) that every worker thread shares; [`TermMatcher::find_into`]
//! reports matches as byte spans of the *original* text.
//!
//! # Fold / normalize pipeline
//!
//! Terms and text go through the same pipeline: optional NFKC (`ｓａｒｉｎ` → `sarin`,
//! `ﬁ` → `fi`, `K` (Kelvin) → `K`), then optional Unicode *simple* case folding (CaseFolding.txt
//! statuses C and S, one char to one char: `ΣΑΡΙΝ` and `σαριΝ` → `σαριν`, `ſ` → `s`,
//! `ẞ` → `ß`). Terms that coincide after the pipeline are merged, keeping the first.
//!
//! Text is processed per *segment*: a char after which nothing can be composed into what came
//! before (ICU's "composition boundary before": its decomposition starts with a starter whose NFKC
//! quick check is Yes) together with the combining chars that follow it. NFKC of a string is the
//! concatenation of the NFKC of its segments and folding is per char, so normalizing segment by
//! segment gives exactly the term pipeline's result, and each folded byte knows the original
//! segment it came from.
//!
//! # ASCII fast path
//!
//! The automaton is built from the folded terms with ASCII case-insensitivity. For ASCII text
//! (checked with `str::is_ascii`, a word-at-a-time scan) NFKC is the identity and simple folding
//! is ASCII lowercasing, which the automaton already does, so the original bytes are searched
//! directly: no copy, no fold, offsets are the identity. Whole-word search of ASCII text, when
//! every term starts with a word char and the automaton is a DFA, goes from word start to word
//! start instead (`word_starts.rs`: a prefix filter, then a walk of the terms' trie only where a
//! term can begin). The same holds for text whose non-ASCII
//! chars are all *verbatim* (`verbatim.rs`: NFKC-stable, and either unchanged by the mapping or
//! mapped to chars no term can use, keeping their word-ness: `é`, `É`, Cyrillic, CJK, emoji when
//! the terms are English), one cached table load per non-ASCII char. Only other text (when
//! folding or NFKC is on) is folded into a reusable [`MatchScratch`]; even then ASCII runs and
//! chars that neither fold nor normalize are copied verbatim and recorded as *identity runs*.
//!
//! # Span mapping
//!
//! The offset map is a sorted list of pieces (identity runs and single changed segments); a
//! match's folded offsets are mapped with a binary search, only per match. A start maps to the
//! start of the original segment that produced it, an end to the end of the segment that produced
//! its last byte, so spans always fall on char boundaries and `text[start..end]`, run through the
//! pipeline, equals the term's folded form. (The exception is a match that starts or ends *inside*
//! the expansion of one char, such as `1` in `½` → `1⁄2`: the span widens to the whole segment;
//! spans that would then overlap an earlier one are dropped.)
//!
//! # Whole words
//!
//! Word chars are by default the regex crate's Unicode `\w` ([`count_words`] uses the same
//! definition; see [`WordChars`] and [`Boundary`] for the alternatives). A
//! match is kept only if the original chars just before and after it are not word chars, tested
//! only on the sides where the term's own edge char is a word char (so `c++` or `#tag` behave).
//! A candidate that fails does not hide other matches: the search tries the shorter terms that
//! start at the same place, longest first, then resumes one char later; the argument that this
//! yields exactly the leftmost-longest valid matches is in the source.
//!
//! # Peer semantics
//!
//! Three options reproduce a Python peer exactly (datatrove's `C4BadWordsFilter`, a regex
//! `(?:\W|^)(term|…)(?:\W|$)` searched in `text.lower()`): [`WordChars::Python`] (Python's `\w`,
//! `c.isalnum() or c == "_"`), [`CaseMode::Lower`] (`str.lower()`: the full lowercase mapping and
//! the Final_Sigma rule; the whole-word test then looks at the lowered text, whose `İ` ends in a
//! combining mark) and [`Boundary::Flanked`] (a non-word char or the text's edge on both sides of
//! every match, whatever the term's edge chars). Their tables are generated from CPython 3.11
//! (Unicode 14.0.0) by `scripts/python_unicode.py`, which checks them on every code point; the
//! tests compare the matcher with CPython's answers on generated cases. `İ` → `i̇` makes the
//! lowered text longer: such a char is one piece of the offset map, like an NFKC expansion, so
//! spans still fall on the original text's char boundaries.
//!
//! # Engine
//!
//! [`Engine::Auto`] builds a DFA up to [`DFA_MAX_TERMS`] terms and [`DFA_MAX_PATTERN_BYTES`]
//! pattern bytes, and a contiguous NFA beyond. Measured here, the DFA searches about twice as fast
//! with a thousand terms, but its table (states × byte classes) outgrows the CPU caches near ten
//! thousand terms (~30 MiB), after which the compact NFA is faster as well as ten times smaller;
//! see [`DFA_MAX_TERMS`] for the numbers. The NFA builds 100,000 terms in 2–3 s
//! (release, on a busy 2-core box).

mod error;
mod fold;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod list;
mod matcher;
mod python;
mod verbatim;
mod word_starts;
mod words;

pub use error::TermsError;
pub use fold::MatchScratch;
pub use fold::WordChars;
pub use list::{load_term_list, TermEntry};
pub use matcher::{
    Boundary, CaseMode, Engine, MatcherOptions, TermMatcher, DFA_MAX_PATTERN_BYTES, DFA_MAX_TERMS,
    WORDS_MIN_TERMS,
};
pub use python::{PYTHON_VERSION, UNICODE_VERSION as PYTHON_UNICODE_VERSION};

/// Number of words in `text`: maximal runs of word chars (the regex crate's Unicode `\w`, the
/// same definition the whole-word test uses by default).
pub fn count_words(text: &str) -> usize {
    count_words_with(text, WordChars::Unicode)
}

/// Number of words in `text` under `word_chars`: maximal runs of word chars. With
/// [`WordChars::Python`] this is `len(re.findall(r"\w+", text))`.
pub fn count_words_with(text: &str, word_chars: WordChars) -> usize {
    if text.is_ascii() {
        let mut count = 0;
        let mut in_word = false;
        for &b in text.as_bytes() {
            let w = fold::is_ascii_word_byte(b);
            count += usize::from(w && !in_word);
            in_word = w;
        }
        return count;
    }
    let mut count = 0;
    let mut in_word = false;
    for c in text.chars() {
        let w = word_chars.is_word(c);
        count += usize::from(w && !in_word);
        in_word = w;
    }
    count
}

/// One match: the index of the term in [`TermMatcher::terms`] and a byte span of the original
/// text, always on char boundaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TermMatch {
    /// Index into [`TermMatcher::terms`].
    pub term: u32,
    /// Start byte offset in the original text.
    pub start: usize,
    /// End byte offset (exclusive) in the original text.
    pub end: usize,
}

#[cfg(test)]
mod python_cases;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_python;
