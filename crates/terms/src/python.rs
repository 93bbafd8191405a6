//! Python's semantics, for presets that reproduce a Python peer exactly: `\w` of the `re` module on
//! `str` patterns (`c.isalnum() or c == "_"`) and `str.lower()` (the full lowercase mapping with the
//! Final_Sigma rule, nothing else context-dependent).
//!
//! The tables are generated from CPython by `crates/terms/scripts/python_unicode.py` (see its
//! docstring for how each is derived and checked); the committed ones reproduce CPython 3.11
//! (Unicode 14.0.0). `python_cases.rs` holds CPython's answers on test cases and a digest of its
//! per-char behaviour over every code point, which the tests recompute from these lookups.

#[path = "python_tables.rs"]
mod tables;

pub use tables::{PYTHON_VERSION, UNICODE_VERSION};

const SIGMA: char = '\u{03A3}';

#[inline]
fn in_ranges(table: &[(u32, u32)], cp: u32) -> bool {
    let i = table.partition_point(|&(lo, _)| lo <= cp);
    i > 0 && table[i - 1].1 >= cp
}

/// Python's `\w`: `c.isalnum() or c == "_"` (letters of categories L*, numbers N*, `_`).
/// Combining marks, ZWJ/ZWNJ and connector punctuation other than `_` (`‿`) are not word chars;
/// `²`, `½` and `Ⅻ` are.
#[inline]
pub(crate) fn is_word(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || c == '_';
    }
    in_ranges(tables::WORD, c as u32)
}

/// `c.lower()` of one char out of context (`Σ` gives `σ`, as `"Σ".lower()` does).
pub(crate) enum Lowered {
    One(char),
    Many(&'static str),
}

#[inline]
pub(crate) fn lower_char(c: char) -> Lowered {
    if c.is_ascii() {
        return Lowered::One(c.to_ascii_lowercase());
    }
    if c == SIGMA {
        return Lowered::One('σ');
    }
    let cp = c as u32;
    if let Ok(i) = tables::LOWER.binary_search_by_key(&cp, |&(from, _)| from) {
        return Lowered::One(char::from_u32(tables::LOWER[i].1).unwrap_or(c));
    }
    match tables::LOWER_MULTI.iter().find(|&&(from, _)| from == cp) {
        Some(&(_, s)) => Lowered::Many(s),
        None => Lowered::One(c),
    }
}

/// How a char takes part in the Final_Sigma rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SigmaClass {
    /// Neither cased nor case-ignorable: ends a scan, not cased.
    Other,
    /// Cased and not case-ignorable: ends a scan, cased.
    Cased,
    /// Case-ignorable: skipped by the scans.
    Ignorable,
}

#[inline]
pub(crate) fn sigma_class(c: char) -> SigmaClass {
    let cp = c as u32;
    if in_ranges(tables::CASE_IGNORABLE, cp) {
        SigmaClass::Ignorable
    } else if in_ranges(tables::CASED, cp) {
        SigmaClass::Cased
    } else {
        SigmaClass::Other
    }
}

/// Whether a `Σ` occupying `text[start..end]` lowers to `ς`: CPython's `handle_capital_sigma`,
/// `\p{cased} \p{case-ignorable}* Σ !(\p{case-ignorable}* \p{cased})`. Each scan stops at the first
/// char that is not case-ignorable, and every `Σ` is such a char, so scanning every `Σ` of a text
/// costs linear time in total.
pub(crate) fn final_sigma(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start]
        .chars()
        .rev()
        .find(|&c| sigma_class(c) != SigmaClass::Ignorable);
    if before.is_none_or(|c| sigma_class(c) != SigmaClass::Cased) {
        return false;
    }
    let after = text[end..]
        .chars()
        .find(|&c| sigma_class(c) != SigmaClass::Ignorable);
    after.is_none_or(|c| sigma_class(c) != SigmaClass::Cased)
}

/// Appends Python's `lower()` of the char at `text[i..]` (`c`) to `out`; a `Σ` is judged in the
/// context of `text`.
#[inline]
pub(crate) fn push_lower(out: &mut String, text: &str, i: usize, c: char) {
    if c == SIGMA {
        out.push(if final_sigma(text, i, i + c.len_utf8()) {
            'ς'
        } else {
            'σ'
        });
        return;
    }
    match lower_char(c) {
        Lowered::One(l) => out.push(l),
        Lowered::Many(s) => out.push_str(s),
    }
}

/// Appends `lower()` of `d`, one char of the NFKC form of the segment `text[start..end]`; a `Σ`
/// is judged on the original text around the segment.
#[inline]
pub(crate) fn push_lower_in_segment(
    out: &mut String,
    text: &str,
    start: usize,
    end: usize,
    d: char,
) {
    if d == SIGMA {
        out.push(if final_sigma(text, start, end) {
            'ς'
        } else {
            'σ'
        });
        return;
    }
    match lower_char(d) {
        Lowered::One(l) => out.push(l),
        Lowered::Many(s) => out.push_str(s),
    }
}

/// Python's `s.lower()`.
pub(crate) fn lower_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.char_indices() {
        push_lower(&mut out, s, i, c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::python_cases as cases;

    /// The lookups reproduce CPython on every code point: the digest the script computed from
    /// `isalnum`, `lower` and the Final_Sigma probes, recomputed here from the tables.
    #[test]
    fn every_code_point_matches_cpython() {
        let mut h: u64 = 0xCBF2_9CE4_8422_2325;
        let mut feed = |b: u8| {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
        };
        let mut buf = String::new();
        for cp in 0..0x11_0000u32 {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            let class = match sigma_class(c) {
                SigmaClass::Other => 0u8,
                SigmaClass::Cased => 1,
                SigmaClass::Ignorable => 2,
            };
            feed(u8::from(is_word(c)) | class << 1);
            buf.clear();
            match lower_char(c) {
                Lowered::One(l) => buf.push(l),
                Lowered::Many(s) => buf.push_str(s),
            }
            for &b in buf.as_bytes() {
                feed(b);
            }
            feed(0xFF);
        }
        assert_eq!(
            h,
            cases::DIGEST,
            "tables differ from CPython {PYTHON_VERSION}"
        );
    }

    #[test]
    fn lower_matches_cpython_on_cases() {
        for &(_, text, lower, _, _) in cases::CASES {
            assert_eq!(lower_str(text), lower, "{text:?}");
        }
    }

    #[test]
    fn rules_from_the_python_docs() {
        // Word chars: isalnum() or "_".
        for c in [
            'a', 'Z', '0', '_', 'é', 'σ', '中', '²', '½', 'Ⅻ', '٣', '〇', 'ª',
        ] {
            assert!(is_word(c), "{c:?}");
        }
        for c in [
            '\u{0301}', '\u{0345}', '\u{200D}', '\u{200C}', '‿', '-', '\'', ' ', 'Ⓐ',
        ] {
            assert!(!is_word(c), "{c:?}");
        }
        // lower(), not case folding.
        assert_eq!(lower_str("ſ ẞ İ K Ǆ ǅ Ꭰ Ⓐ"), "ſ ß i\u{307} k ǆ ǆ ꭰ ⓐ");
        // Final sigma.
        assert_eq!(
            lower_str("Σ ΑΣ ΑΣΑ ΑΣ' ΑΣ'Α ΑΣ\u{0301}"),
            "σ ας ασα ας' ασ'α ας\u{0301}"
        );
        assert_eq!(lower_str("'Σ"), "'σ");
    }
}
