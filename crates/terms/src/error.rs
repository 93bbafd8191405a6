//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while loading a term list or building a [`crate::TermMatcher`].
///
/// Messages are lowercase and name the file and 1-based line, or the offending term.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TermsError {
    /// The term list could not be read at all.
    #[error("cannot read term list {}: {source}", path.display())]
    Io {
        /// The file that failed.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The term list does not exist.
    #[error("term list {} does not exist", path.display())]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The term list is a directory.
    #[error("term list {} is a directory, not a file", path.display())]
    IsADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// A line is not valid UTF-8.
    #[error("{}:{line}: invalid utf-8", path.display())]
    InvalidUtf8 {
        /// The term list.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// A line has an empty term column.
    #[error("{}:{line}: empty term", path.display())]
    EmptyTermLine {
        /// The term list.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// The weight column is not a finite number at least 0.
    #[error("{}:{line}: bad weight {value:?} (expected a finite number, 0 or more)", path.display())]
    BadWeight {
        /// The term list.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The weight column as written.
        value: String,
    },
    /// A line has more than the three `term<TAB>category<TAB>weight` columns.
    #[error("{}:{line}: {columns} tab-separated columns (expected at most 3: term, category, weight)", path.display())]
    TooManyColumns {
        /// The term list.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// How many columns the line has.
        columns: usize,
    },
    /// A term given to [`crate::TermMatcher::new`] has a weight that is negative, NaN or
    /// infinite (lists read by [`crate::load_term_list`] are refused earlier, with their line).
    #[error("term {term:?} has weight {weight}, expected a finite number, 0 or more")]
    BadTermWeight {
        /// The term as given.
        term: String,
        /// Its weight.
        weight: f32,
    },
    /// A term is empty (or only whitespace) after normalization and case folding.
    #[error("term {term:?} is empty after normalization")]
    EmptyTerm {
        /// The term as given.
        term: String,
    },
    /// More unique terms than a `u32` index can address.
    #[error("too many terms: {count} (at most {} are supported)", u32::MAX)]
    TooManyTerms {
        /// How many unique terms were given.
        count: usize,
    },
    /// The Aho-Corasick automaton could not be built (e.g. it exceeds the automaton's size limits).
    #[error("engine \"words\" needs whole_word = true and terms that start with a word character")]
    WordsEngine,
    #[error("cannot build the term automaton: {0}")]
    Build(#[from] aho_corasick::BuildError),
}
