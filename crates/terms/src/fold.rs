//! Case folding, NFKC normalization into a scratch buffer, and the map from folded offsets back
//! to the original text.
//!
//! # Fold table
//!
//! Simple case folding (CaseFolding.txt statuses C and S: one char to one char, so `ẞ` folds to
//! `ß`, never to `ss`) comes from `unicode-case-mapping` (YesLogic, generated from the UCD by
//! their `ucd-generate`; Unicode 16). It exposes exactly the C+S mapping as
//! `case_folded(char)`. The alternatives were weaker fits: `regex-syntax` only exposes the
//! *closure* of case-equivalent chars (no canonical representative), `unicase` and `caseless`
//! implement *full* folding (`ß` → `ss`, length-changing), and `char::to_lowercase` is not folding
//! (it leaves `ς` and Cherokee alone, maps `İ` to two chars). A generated table in this crate would
//! have to be kept in sync by hand. The crate compiles to a `match`, looked up only for non-ASCII
//! chars.

use unicode_normalization::char::{canonical_combining_class, decompose_compatible};
use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

/// Whether `c` is a word char: exactly the regex crate's Unicode `\w` (alphabetic, marks `Mn`/`Mc`/
/// `Me`, decimal numbers, connector punctuation like `_`, join controls).
#[inline]
pub(crate) fn is_word_char(c: char) -> bool {
    if c.is_ascii() {
        return is_ascii_word_byte(c as u8);
    }
    // The `unicode-perl` feature is enabled in Cargo.toml, so this never errs; fall back to a
    // close approximation rather than panic if it ever did.
    regex_syntax::try_is_word_character(c).unwrap_or_else(|_| c.is_alphanumeric())
}

#[inline]
pub(crate) fn is_ascii_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Simple (C + S) case folding of one char.
#[inline]
pub(crate) fn fold_char(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    match unicode_case_mapping::case_folded(c) {
        Some(n) => char::from_u32(n.get()).unwrap_or(c),
        None => c,
    }
}

/// NFKC_Quick_Check = Yes for a single char: `c` is unchanged by NFKC and nothing before it can
/// compose with it.
#[inline]
fn nfkc_qc_yes(c: char) -> bool {
    c.is_ascii() || matches!(is_nfkc_quick(std::iter::once(c)), IsNormalized::Yes)
}

/// Whether NFKC can never combine `c` with anything before it, so that
/// `nfkc(a + b) == nfkc(a) + nfkc(b)` whenever `b` starts with such a char. This is ICU's
/// "composition boundary before": the first char of `c`'s full compatibility decomposition is a
/// starter (ccc = 0) whose NFKC quick check is Yes (the Maybe chars are exactly those that can be
/// the second half of a composition, such as Hangul V/T jamo or U+0B3E).
#[inline]
pub(crate) fn starts_segment(c: char) -> bool {
    if c.is_ascii() {
        return true;
    }
    let mut first = None;
    decompose_compatible(c, |d| {
        if first.is_none() {
            first = Some(d);
        }
    });
    let d = first.unwrap_or(c);
    canonical_combining_class(d) == 0 && nfkc_qc_yes(d)
}

/// What happens to the case of terms and text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mapping {
    /// Case-sensitive: chars are kept.
    Keep,
    /// Simple case folding ([`fold_char`]).
    Fold,
    /// Python's `str.lower()` (see `python.rs`).
    Lower,
}

impl Mapping {
    #[cfg(test)]
    pub(crate) fn from_case_insensitive(case_insensitive: bool) -> Self {
        if case_insensitive {
            Mapping::Fold
        } else {
            Mapping::Keep
        }
    }
}

/// The fold/normalize pipeline applied to a whole string (tests use it on spans).
#[cfg(test)]
pub(crate) fn normalize_str(s: &str, case_insensitive: bool, nfkc: bool) -> String {
    normalize(s, Mapping::from_case_insensitive(case_insensitive), nfkc)
}

/// The pipeline with any [`Mapping`]: NFKC (if on), then the mapping. With [`Mapping::Lower`]
/// this is Python's `unicodedata.normalize("NFKC", s).lower()` (or `s.lower()`).
pub(crate) fn normalize(s: &str, mapping: Mapping, nfkc: bool) -> String {
    let fold = |c: char| {
        if mapping == Mapping::Fold {
            fold_char(c)
        } else {
            c
        }
    };
    match (mapping, nfkc) {
        (Mapping::Lower, true) => crate::python::lower_str(&s.nfkc().collect::<String>()),
        (Mapping::Lower, false) => crate::python::lower_str(s),
        (_, true) => s.nfkc().map(fold).collect(),
        (_, false) => s.chars().map(fold).collect(),
    }
}

/// A run of the folded buffer and the original bytes it came from. Pieces are contiguous and in
/// order on both sides; the folded end of a piece is the next piece's `folded_start`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Piece {
    pub(crate) folded_start: usize,
    pub(crate) orig_start: usize,
    pub(crate) orig_end: usize,
    /// Folded bytes equal the original bytes (offsets map one to one). Otherwise the piece is one
    /// normalization segment, mapped as a whole.
    pub(crate) identity: bool,
}

/// What the fold pipeline needs to know about one non-ASCII char.
#[derive(Clone, Copy, Debug)]
struct CharInfo {
    c: char,
    fold: char,
    starts_segment: bool,
    nfkc_qc_yes: bool,
}

impl CharInfo {
    fn compute(c: char) -> Self {
        CharInfo {
            c,
            fold: fold_char(c),
            starts_segment: starts_segment(c),
            nfkc_qc_yes: nfkc_qc_yes(c),
        }
    }
}

const CACHE_BITS: u32 = 10;

/// A direct-mapped cache of [`CharInfo`]: the table lookups behind one non-ASCII char cost tens
/// of nanoseconds, and real text reuses a small alphabet. Allocated on first use.
#[derive(Clone, Debug, Default)]
struct CharCache {
    entries: Vec<CharInfo>,
}

impl CharCache {
    #[inline]
    fn get(&mut self, c: char) -> CharInfo {
        if c.is_ascii() {
            return CharInfo {
                c,
                fold: c.to_ascii_lowercase(),
                starts_segment: true,
                nfkc_qc_yes: true,
            };
        }
        if self.entries.is_empty() {
            // '\0' is ASCII and never looked up, so it marks an empty slot.
            self.entries = vec![CharInfo::compute('\0'); 1 << CACHE_BITS];
        }
        let slot = ((c as u32).wrapping_mul(0x9E37_79B9) >> (32 - CACHE_BITS)) as usize;
        match self.entries.get_mut(slot) {
            Some(e) if e.c == c => *e,
            Some(e) => {
                *e = CharInfo::compute(c);
                *e
            }
            None => CharInfo::compute(c),
        }
    }
}

/// Reusable buffers for [`crate::TermMatcher::find_into`]: the folded/normalized text, its
/// offset map and a small cache of per-char Unicode properties. Keep one per thread; after the
/// first few documents no call allocates (except NFKC segments of more than four chars, i.e. long
/// runs of combining marks).
#[derive(Clone, Debug, Default)]
pub struct MatchScratch {
    pub(crate) buf: String,
    pub(crate) pieces: Vec<Piece>,
    cache: CharCache,
}

impl MatchScratch {
    /// Fresh, empty buffers (same as `Default`).
    pub fn new() -> Self {
        Self::default()
    }

    #[inline]
    fn push_identity(&mut self, orig_start: usize, orig_end: usize) {
        if let Some(last) = self.pieces.last_mut() {
            if last.identity && last.orig_end == orig_start {
                last.orig_end = orig_end;
                return;
            }
        }
        self.pieces.push(Piece {
            folded_start: self.buf.len() - (orig_end - orig_start),
            orig_start,
            orig_end,
            identity: true,
        });
    }

    /// [`map_text`](Self::map_text) with folding or none (tests).
    #[cfg(test)]
    pub(crate) fn fold_text(&mut self, text: &str, case_insensitive: bool, nfkc: bool) {
        self.map_text(text, Mapping::from_case_insensitive(case_insensitive), nfkc);
    }

    /// Fold or lower (and optionally NFKC-normalize) `text` into `self.buf`, recording the offset
    /// map.
    ///
    /// ASCII runs are copied verbatim (the automaton is ASCII-case-insensitive when folding or
    /// lowering is on); each other char, or with NFKC each segment (a char that starts a segment
    /// plus the following chars that may combine with it), is normalized and mapped on its own.
    /// Segments whose output equals their input join the surrounding identity run.
    ///
    /// With [`Mapping::Lower`] each char gets Python's `lower()`, which may be longer (`İ` →
    /// `i̇`: the piece maps as a whole, like an NFKC expansion); a `Σ` is judged by the
    /// Final_Sigma rule on the original text, so without NFKC the buffer is exactly
    /// `text.lower()` up to ASCII case. With NFKC, a `Σ` that a segment normalizes to is judged
    /// on the original chars around that segment.
    pub(crate) fn map_text(&mut self, text: &str, mapping: Mapping, nfkc: bool) {
        self.buf.clear();
        self.pieces.clear();
        let bytes = text.as_bytes();
        let n = bytes.len();
        let mut i = 0;
        while i < n {
            if bytes[i].is_ascii() {
                let mut j = i + 1;
                while j < n && bytes[j].is_ascii() {
                    j += 1;
                }
                // With NFKC the last ASCII char may compose with what follows ("e" + U+0301).
                let run_end = if nfkc
                    && j < n
                    && !text[j..]
                        .chars()
                        .next()
                        .is_some_and(|c| self.cache.get(c).starts_segment)
                {
                    j - 1
                } else {
                    j
                };
                if run_end > i {
                    self.buf.push_str(&text[i..run_end]);
                    self.push_identity(i, run_end);
                }
                i = run_end;
                if run_end == j {
                    continue;
                }
            }
            let Some(c) = text[i..].chars().next() else {
                break;
            };
            let info = self.cache.get(c);
            let mut seg_end = i + c.len_utf8();
            if nfkc {
                while let Some(d) = text[seg_end..].chars().next() {
                    if self.cache.get(d).starts_segment {
                        break;
                    }
                    seg_end += d.len_utf8();
                }
            }
            let out_start = self.buf.len();
            let single = seg_end == i + c.len_utf8();
            if single && (!nfkc || info.nfkc_qc_yes) {
                match mapping {
                    Mapping::Keep => self.buf.push(c),
                    Mapping::Fold => self.buf.push(info.fold),
                    Mapping::Lower => crate::python::push_lower(&mut self.buf, text, i, c),
                }
            } else {
                for d in text[i..seg_end].nfkc() {
                    match mapping {
                        Mapping::Keep => self.buf.push(d),
                        Mapping::Fold => {
                            let f = self.cache.get(d).fold;
                            self.buf.push(f);
                        }
                        Mapping::Lower => {
                            crate::python::push_lower_in_segment(&mut self.buf, text, i, seg_end, d)
                        }
                    }
                }
            }
            if self.buf.as_bytes()[out_start..] == bytes[i..seg_end] {
                self.push_identity(i, seg_end);
            } else if self.buf.len() > out_start {
                self.pieces.push(Piece {
                    folded_start: out_start,
                    orig_start: i,
                    orig_end: seg_end,
                    identity: false,
                });
            }
            i = seg_end;
        }
    }
}

/// Maps offsets of the folded buffer back to the original text.
pub(crate) struct FoldedMap<'a> {
    pub(crate) pieces: &'a [Piece],
    pub(crate) folded_len: usize,
}

impl FoldedMap<'_> {
    /// Index of the piece holding folded byte `pos`.
    #[inline]
    fn piece_index(&self, pos: usize) -> usize {
        self.pieces
            .partition_point(|p| p.folded_start <= pos)
            .saturating_sub(1)
    }

    /// Original offset for a match starting at folded `fs`, and whether `fs` is on a segment
    /// boundary (otherwise it maps to the start of the segment that contains it).
    #[inline]
    pub(crate) fn map_start(&self, fs: usize) -> (usize, bool) {
        let Some(p) = self.pieces.get(self.piece_index(fs)) else {
            return (fs, true);
        };
        if p.identity {
            (p.orig_start + (fs - p.folded_start), true)
        } else {
            (p.orig_start, fs == p.folded_start)
        }
    }

    /// If folded byte `pos` lies in an identity run, the folded end of that run.
    #[inline]
    pub(crate) fn identity_run_end(&self, pos: usize) -> Option<usize> {
        let k = self.piece_index(pos);
        let p = self.pieces.get(k)?;
        if !p.identity || pos < p.folded_start {
            return None;
        }
        Some(
            self.pieces
                .get(k + 1)
                .map_or(self.folded_len, |next| next.folded_start),
        )
    }

    /// Original offset for a match ending (exclusive) at folded `fe > 0`, and whether `fe` is on a
    /// segment boundary (otherwise it maps to the end of the segment holding byte `fe - 1`).
    #[inline]
    pub(crate) fn map_end(&self, fe: usize) -> (usize, bool) {
        let k = self.piece_index(fe.saturating_sub(1));
        let Some(p) = self.pieces.get(k) else {
            return (fe, true);
        };
        if p.identity {
            (p.orig_start + (fe - p.folded_start), true)
        } else {
            let folded_end = self
                .pieces
                .get(k + 1)
                .map_or(self.folded_len, |next| next.folded_start);
            (p.orig_end, fe == folded_end)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_folding() {
        assert_eq!(fold_char('Σ'), 'σ');
        assert_eq!(fold_char('ς'), 'σ');
        assert_eq!(fold_char('\u{212A}'), 'k'); // KELVIN SIGN
        assert_eq!(fold_char('ſ'), 's');
        assert_eq!(fold_char('ẞ'), 'ß');
        assert_eq!(fold_char('ß'), 'ß');
        assert_eq!(fold_char('İ'), 'İ'); // only a full (F) / Turkic (T) folding exists
        assert_eq!(fold_char('Ꭰ'), 'Ꭰ'); // Cherokee folds to uppercase
        assert_eq!(fold_char('ꭰ'), 'Ꭰ');
        assert_eq!(fold_char('7'), '7');
    }

    #[test]
    fn word_chars() {
        for c in ['a', 'Z', '0', '_', 'é', 'σ', '中', '\u{0301}', '٣'] {
            assert!(is_word_char(c), "{c:?}");
        }
        for c in [' ', '-', '+', '#', '\u{2044}', '。', '\u{00A0}'] {
            assert!(!is_word_char(c), "{c:?}");
        }
    }

    #[test]
    fn segment_starts() {
        assert!(starts_segment('a'));
        assert!(starts_segment('é'));
        assert!(starts_segment('ﬁ'));
        assert!(starts_segment('가'));
        assert!(!starts_segment('\u{0301}')); // combining acute
        assert!(!starts_segment('\u{1161}')); // Hangul V jamo composes with a preceding L
        assert!(!starts_segment('\u{11A8}')); // Hangul T jamo
        assert!(!starts_segment('\u{0B3E}')); // Oriya vowel sign AA (ccc 0, composes)
        assert!(!starts_segment('\u{0F73}')); // decomposes to a non-starter
    }

    fn check_map(text: &str, ci: bool, nfkc: bool) {
        let mut s = MatchScratch::default();
        s.fold_text(text, ci, nfkc);
        assert_eq!(s.buf, normalize_str(text, ci, nfkc), "{text:?}");
        let map = FoldedMap {
            pieces: &s.pieces,
            folded_len: s.buf.len(),
        };
        // Every aligned folded char boundary maps to an original char boundary and the text between
        // two aligned boundaries normalizes to the folded text between them.
        let bounds: Vec<usize> = s
            .buf
            .char_indices()
            .map(|(i, _)| i)
            .chain(std::iter::once(s.buf.len()))
            .collect();
        for &a in &bounds {
            for &b in &bounds {
                if a >= b {
                    continue;
                }
                let (os, sa) = map.map_start(a);
                let (oe, ea) = map.map_end(b);
                assert!(text.is_char_boundary(os) && text.is_char_boundary(oe));
                assert!(os < oe, "{text:?} {a}..{b} -> {os}..{oe}");
                if sa && ea {
                    assert_eq!(
                        normalize_str(&text[os..oe], ci, nfkc),
                        s.buf[a..b],
                        "{text:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn folded_text_and_offset_map() {
        for text in [
            "plain ascii",
            "ΣΑΡΙΝ and sarin",
            "e\u{0301}te\u{0301} ﬁne ｓａｒｉｎ",
            "\u{0301}leading mark",
            "\u{212A}elvin ſ ẞ",
            "가\u{11A8} 각 ᄀ\u{1161}",
            "x½y①",
            "",
        ] {
            for (ci, nfkc) in [(true, false), (false, true), (true, true)] {
                check_map(text, ci, nfkc);
            }
        }
    }
}
