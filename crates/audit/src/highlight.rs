//! Marking matched spans in a document's text.
//!
//! Spans are byte offsets into the text and may cut nowhere but at character boundaries; spans
//! from a damaged record are clamped to the text and moved back to the previous boundary rather
//! than trusted (slicing a `str` inside a character would panic). Overlapping spans (a rule and a
//! term on the same words) are merged.

use sluice_core::document::Part;
use sluice_core::stage::LabeledSpan;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Bold red on a terminal.
    Ansi,
    /// `[[...]]`, for pipes and files.
    Markers,
    /// `<mark>...</mark>`, everything HTML-escaped.
    Html,
}

/// Merged, clamped `[start, end)` ranges on character boundaries, sorted.
pub fn ranges(text: &str, spans: &[LabeledSpan]) -> Vec<(usize, usize)> {
    let floor = |mut i: usize| {
        i = i.min(text.len());
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let mut out: Vec<(usize, usize)> = spans
        .iter()
        .map(|s| (floor(s.start), floor(s.end)))
        .filter(|(a, b)| a < b)
        .collect();
    out.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(out.len());
    for (a, b) in out {
        match merged.last_mut() {
            Some((_, end)) if a <= *end => *end = (*end).max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
}

/// The text with every span marked in `style`.
pub fn highlight(text: &str, spans: &[LabeledSpan], style: Style) -> String {
    let (open, close) = match style {
        Style::Ansi => ("\x1b[1;31m", "\x1b[0m"),
        Style::Markers => ("[[", "]]"),
        Style::Html => ("<mark>", "</mark>"),
    };
    let piece = |out: &mut String, s: &str| match style {
        Style::Html => escape_into(out, s),
        _ => visible_into(out, s),
    };
    let mut out = String::with_capacity(text.len() + 16 * spans.len());
    let mut at = 0;
    for (a, b) in ranges(text, spans) {
        piece(&mut out, &text[at..a]);
        out.push_str(open);
        piece(&mut out, &text[a..b]);
        out.push_str(close);
        at = b;
    }
    piece(&mut out, &text[at..]);
    out
}

/// A document's text with its spans marked, at most about `limit` bytes of it (`true` when
/// some was left out): a one-text document as [`highlight`] marks it; a document of parts part
/// by part, each under a line naming it and its role (`── messages[1].content (user)`), with
/// the spans recorded in that part.
pub fn highlight_document(
    text: &str,
    parts: &[Part<'_>],
    spans: &[LabeledSpan],
    style: Style,
    limit: usize,
) -> (String, bool) {
    let cut = |s: &str, budget: usize| {
        let mut end = s.len().min(budget);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        end
    };
    if parts.is_empty() {
        let end = cut(text, limit);
        return (highlight(&text[..end], spans, style), end < text.len());
    }
    let mut out = String::new();
    let mut budget = limit;
    for (i, part) in parts.iter().enumerate() {
        let Some(body) = text.get(part.range.clone()) else {
            continue;
        };
        if budget == 0 {
            return (out, true);
        }
        let head = match &part.role {
            Some(role) => format!("{} ({role})", part.path),
            None => part.path.clone(),
        };
        let own: Vec<LabeledSpan> = spans
            .iter()
            .filter(|s| s.part.as_deref() == Some(part.path.as_str()))
            .cloned()
            .collect();
        let end = cut(body, budget);
        budget -= end;
        let marked = highlight(&body[..end], &own, style);
        match style {
            Style::Html => {
                out.push_str("<div class=\"part\"><b>");
                escape_into(&mut out, &head);
                out.push_str("</b>\n");
                out.push_str(&marked);
                out.push_str("</div>");
            }
            _ => {
                if i > 0 {
                    out.push('\n');
                }
                out.push_str("── ");
                visible_into(&mut out, &head);
                out.push('\n');
                out.push_str(&marked);
            }
        }
        if end < body.len() {
            return (out, true);
        }
    }
    (out, false)
}

/// Appends `s` with every character that could act on a terminal shown instead: C0 and C1
/// control characters but newline and tab (escape sequences that clear the screen, set the window
/// title or write the clipboard start with ESC or a C1 code; a CR overwrites the line), DEL, and
/// the bidirectional overrides and isolates (which reorder what is displayed). They are written
/// as `\x1b`, `\r`, `\u{202e}`: the reader sees that they are there and what they are.
pub fn visible_into(out: &mut String, s: &str) {
    use std::fmt::Write;
    for c in s.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || (0x7f..=0x9f).contains(&(c as u32)) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// `s` with terminal controls made visible (see [`visible_into`]), for ids, names and one-line
/// fields printed to a terminal.
pub fn visible(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    visible_into(&mut out, s);
    out
}

/// Appends `s` HTML-escaped: safe in element content and in quoted attribute values.
pub fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// `s` HTML-escaped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: usize, end: usize) -> LabeledSpan {
        LabeledSpan {
            part: None,
            role: None,
            start,
            end,
            label: String::new(),
        }
    }

    #[test]
    fn multibyte_spans_are_marked_exactly() {
        let text = "Ｓａｒｉｎ and Tabun — «ricin»";
        let sarin = (0, "Ｓａｒｉｎ".len());
        let tabun = text.find("Tabun").unwrap();
        let ricin = text.find("ricin").unwrap();
        let spans = [
            span(sarin.0, sarin.1),
            span(tabun, tabun + 5),
            span(ricin, ricin + 5),
        ];
        assert_eq!(
            highlight(text, &spans, Style::Markers),
            "[[Ｓａｒｉｎ]] and [[Tabun]] — «[[ricin]]»"
        );
        assert_eq!(
            highlight(text, &spans[1..2], Style::Ansi),
            "Ｓａｒｉｎ and \x1b[1;31mTabun\x1b[0m — «ricin»"
        );
    }

    #[test]
    fn overlapping_and_damaged_spans_are_merged_and_clamped() {
        let text = "ééé abc";
        // 1 is inside the first 'é'; 99 is past the end; 4..6 overlaps 5..9.
        let spans = [span(1, 4), span(4, 6), span(5, 9), span(99, 120)];
        assert_eq!(ranges(text, &spans), vec![(0, 9)]);
        assert_eq!(highlight(text, &spans, Style::Markers), "[[ééé ab]]c");
    }

    #[test]
    fn html_escapes_everything_from_the_corpus() {
        let text = "<script>document.title='pwned'</script> & \"sarin\"";
        let at = text.find("sarin").unwrap();
        let html = highlight(text, &[span(at, at + 5)], Style::Html);
        assert_eq!(
            html,
            "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt; &amp; &quot;<mark>sarin</mark>&quot;"
        );
        assert!(
            !html.contains('<')
                || !html
                    .replace("<mark>", "")
                    .replace("</mark>", "")
                    .contains('<')
        );
        assert_eq!(escape("a<b>&'\""), "a&lt;b&gt;&amp;&#39;&quot;");
    }

    #[test]
    fn terminal_controls_in_the_corpus_are_shown_not_obeyed() {
        // Clear screen, set the window title, OSC 52 clipboard write, CR, a C1 CSI, RTL override.
        let text =
            "a\x1b[2Jb\x1b]0;owned\x07c\x1b]52;c;ZXZpbA==\x07\rd\u{9b}31m\u{202e}txt\tend\nnext";
        for style in [Style::Markers, Style::Ansi] {
            let shown = highlight(text, &[], style);
            assert!(!shown.contains('\x1b') && !shown.contains('\r') && !shown.contains('\u{9b}'));
            assert!(
                !shown.contains('\u{202e}') && !shown.contains('\x07'),
                "{shown:?}"
            );
            assert!(
                shown.contains("\\x1b[2J") && shown.contains("\\r") && shown.contains("\\u{202e}")
            );
            assert!(shown.contains("\tend\nnext"), "tab and newline stay");
        }
        // The marks themselves are the only escape sequences in the Ansi style.
        let at = text.find("txt").unwrap();
        let shown = highlight(text, &[span(at, at + 3)], Style::Ansi);
        assert_eq!(shown.matches('\x1b').count(), 2, "{shown:?}");
        assert_eq!(visible("id\x1b[31m"), "id\\x1b[31m");
    }
}
