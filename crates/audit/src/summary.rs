//! Counts over a run's audit records, in one streaming pass.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Deserialize;
use sluice_core::stats::{Destination, Destinations};

use crate::outdir::OutDir;
use crate::AuditError;
use sluice_core::stage::{KeyCounts, StageStats};
use sluice_core::stages::terms::UNCATEGORIZED;
use std::borrow::Cow;

/// Bins of the score histogram over `[0, 1]`.
pub const SCORE_BINS: usize = 10;

#[derive(Clone, Debug, Default)]
pub struct ShardCounts {
    pub name: String,
    pub documents: u64,
    pub kept: u64,
    pub dropped: u64,
    pub review: u64,
    pub errors: u64,
    pub audited: u64,
}

/// Per key: audited documents, and how many of them were dropped / sent to review.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub documents: u64,
    pub dropped: u64,
    pub review: u64,
    pub hits: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Documents per destination (from the manifest's shard counts).
    pub destinations: Destinations,
    pub audited: u64,
    /// Per reason (`stage` or `stage/rule`).
    pub reasons: BTreeMap<String, Tally>,
    /// Per stage among the reasons.
    pub stages: BTreeMap<String, Tally>,
    /// Per term category.
    pub categories: BTreeMap<String, Tally>,
    /// Per matched term.
    pub terms: BTreeMap<String, Tally>,
    pub shards: Vec<ShardCounts>,
    /// Classifier scores in [`SCORE_BINS`] bins over `[0, 1]`; empty when no record has one.
    pub scores: Vec<u64>,
    pub scored: u64,
    /// `(drop, review)` thresholds of the classifier, when records carry them.
    pub thresholds: Option<(f64, f64)>,
    /// Every stage's counters over all documents of the done shards (from the manifest): its
    /// per-key counts (`languages`, `rules`, ...) include documents without an audit record.
    pub stage_counts: Vec<StageStats>,
}

/// Key families the summary shows from audit records (terms, with their categories), so its
/// per-stage tables leave them out.
const FROM_RECORDS: [&str; 2] = ["terms", "categories"];

/// Only what the summary needs of an audit record, borrowed from the line where possible: spans,
/// thresholds and windows are skipped unparsed. About twice as fast as reading whole records.
#[derive(Deserialize)]
pub struct RecordView<'a> {
    pub decision: Destination,
    #[serde(borrow)]
    pub reasons: Vec<ReasonView<'a>>,
    #[serde(borrow)]
    pub stages: Vec<StageView<'a>>,
}

#[derive(Deserialize)]
pub struct ReasonView<'a> {
    #[serde(borrow)]
    pub stage: Cow<'a, str>,
    #[serde(borrow, default)]
    pub rule: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub struct StageView<'a> {
    #[serde(borrow, default)]
    pub terms: Vec<TermView<'a>>,
    #[serde(default)]
    pub score: Option<f32>,
    #[serde(default)]
    pub drop_threshold: Option<f64>,
    #[serde(default)]
    pub review_threshold: Option<f64>,
}

#[derive(Deserialize)]
pub struct TermView<'a> {
    #[serde(borrow)]
    pub term: Cow<'a, str>,
    #[serde(borrow, default)]
    pub category: Option<Cow<'a, str>>,
    pub count: usize,
}

/// Adds one document with `hits` to `map[key]`, allocating the key only the first time.
fn bump(map: &mut BTreeMap<String, Tally>, key: &str, hits: u64, decision: Destination) {
    let t = match map.get_mut(key) {
        Some(t) => t,
        None => map.entry(key.to_string()).or_default(),
    };
    t.documents += 1;
    t.hits += hits;
    match decision {
        Destination::Dropped => t.dropped += 1,
        Destination::Review => t.review += 1,
        _ => {}
    }
}

impl Summary {
    /// Reads every done shard's audit records once.
    pub fn collect(out: &OutDir) -> Result<Summary, AuditError> {
        Summary::collect_with(out, |_, _| {})
    }

    /// Like [`Summary::collect`], handing each record (and its raw line) to `each` as well, so
    /// that a caller needing another pass (the report's sample) reads the records only once.
    pub fn collect_with(
        out: &OutDir,
        mut each: impl FnMut(&RecordView<'_>, &[u8]),
    ) -> Result<Summary, AuditError> {
        let mut s = Summary::default();
        let mut key = String::new();
        for entry in out.done_shards() {
            let mut counts = ShardCounts {
                name: entry.name.clone(),
                ..ShardCounts::default()
            };
            if let Some(stats) = &entry.stats {
                if s.stage_counts.is_empty() {
                    s.stage_counts = stats.stages.clone();
                } else {
                    for (mine, theirs) in s.stage_counts.iter_mut().zip(&stats.stages) {
                        mine.merge(theirs);
                    }
                }
                counts.documents = stats.input.documents;
                counts.kept = stats.kept.documents;
                counts.dropped = stats.dropped.documents;
                counts.review = stats.review.documents;
                counts.errors = stats.errors.documents;
            }
            if let Some(stats) = &entry.stats {
                s.destinations.merge(&stats.destinations());
            }
            let mut lines = out.lines("audit", entry)?;
            let mut number = 0u64;
            while let Some(line) = lines.next_line()? {
                number += 1;
                let view: RecordView =
                    serde_json::from_slice(line).map_err(|e| AuditError::Record {
                        path: out.stream_path("audit", entry),
                        line: number,
                        message: e.to_string(),
                    })?;
                counts.audited += 1;
                s.add(&view, &mut key);
                each(&view, line);
            }
            s.shards.push(counts);
        }
        Ok(s)
    }

    fn add(&mut self, r: &RecordView<'_>, key: &mut String) {
        self.audited += 1;
        let d = r.decision;
        let mut previous: Option<(&str, Option<&str>)> = None;
        for reason in &r.reasons {
            let this = (&*reason.stage, reason.rule.as_deref());
            if previous == Some(this) {
                continue;
            }
            previous = Some(this);
            key.clear();
            key.push_str(&reason.stage);
            if let Some(rule) = &reason.rule {
                key.push('/');
                key.push_str(rule);
            }
            bump(&mut self.reasons, key, 1, d);
        }
        let mut previous: Option<&str> = None;
        for reason in &r.reasons {
            if previous != Some(&*reason.stage) {
                bump(&mut self.stages, &reason.stage, 1, d);
            }
            previous = Some(&reason.stage);
        }
        let mut categories: Vec<(&str, u64)> = Vec::new();
        for stage in &r.stages {
            for t in &stage.terms {
                bump(&mut self.terms, &t.term, t.count as u64, d);
                let category = t.category.as_deref().unwrap_or(UNCATEGORIZED);
                match categories.iter_mut().find(|(c, _)| *c == category) {
                    Some((_, hits)) => *hits += t.count as u64,
                    None => categories.push((category, t.count as u64)),
                }
            }
        }
        categories.sort_unstable();
        for (category, hits) in categories {
            bump(&mut self.categories, category, hits, d);
        }
        for stage in &r.stages {
            if let Some(score) = stage.score {
                if self.scores.is_empty() {
                    self.scores = vec![0; SCORE_BINS];
                }
                let bin = ((f64::from(score) * SCORE_BINS as f64) as usize).min(SCORE_BINS - 1);
                self.scores[bin] += 1;
                self.scored += 1;
            }
            if let (Some(drop), Some(review)) = (stage.drop_threshold, stage.review_threshold) {
                self.thresholds = Some((drop, review));
            }
        }
    }

    /// `(stage id, family, counts)` of every stage's per-key counters but those shown from the
    /// audit records (terms and categories), in cascade order.
    pub fn stage_key_counts(&self) -> Vec<(&str, &str, &BTreeMap<String, KeyCounts>)> {
        self.stage_counts
            .iter()
            .flat_map(|s| {
                s.keys
                    .iter()
                    .filter(|(family, _)| !FROM_RECORDS.contains(family))
                    .map(move |(family, keys)| (s.id.as_str(), family, keys))
            })
            .collect()
    }

    /// The most frequent terms by documents (then hits, then name).
    pub fn top_terms(&self, n: usize) -> Vec<(&str, Tally)> {
        let mut terms: Vec<(&str, Tally)> =
            self.terms.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        terms.sort_by(|a, b| {
            (b.1.documents, b.1.hits)
                .cmp(&(a.1.documents, a.1.hits))
                .then(a.0.cmp(b.0))
        });
        terms.truncate(n);
        terms
    }

    /// The summary as text for a terminal.
    pub fn render(&self, top: usize) -> String {
        let mut o = String::new();
        let total = self.destinations.total().documents;
        let _ = writeln!(o, "documents: {total}");
        for d in [
            Destination::Kept,
            Destination::Dropped,
            Destination::Review,
            Destination::Errors,
        ] {
            let n = self.destinations.get(d).documents;
            let _ = writeln!(o, "  {:<8} {n:>10}  {:>6.2}%", d.name(), pct(n, total));
        }
        let _ = writeln!(o, "audit records: {}", self.audited);
        let tallies = |map: &BTreeMap<String, Tally>| -> Vec<(String, Vec<u64>)> {
            map.iter()
                .map(|(k, t)| (k.clone(), vec![t.documents, t.dropped, t.review]))
                .collect()
        };
        let columns = ["documents", "dropped", "review"];
        table(
            &mut o,
            "per reason (stage, stage/rule)",
            &columns,
            tallies(&self.reasons),
        );
        table(
            &mut o,
            "per term category",
            &columns,
            tallies(&self.categories),
        );
        for (stage, family, keys) in self.stage_key_counts() {
            let rows = keys
                .iter()
                .map(|(k, c)| (k.clone(), vec![c.docs, c.dropped, c.escalated, c.tagged]))
                .collect();
            table(
                &mut o,
                &format!("stage {stage}, per {family} (all documents)"),
                &["documents", "dropped", "escalated", "tagged"],
                rows,
            );
        }
        let _ = writeln!(o, "\ntop matched terms:");
        let terms = self.top_terms(top);
        if terms.is_empty() {
            let _ = writeln!(o, "  (none)");
        }
        for (term, t) in terms {
            let _ = writeln!(
                o,
                "  {term:<24} {:>8} documents {:>8} hits",
                t.documents, t.hits
            );
        }
        let _ = writeln!(o, "\nclassifier scores:");
        if self.scores.is_empty() {
            let _ = writeln!(o, "  (no record has a classifier score)");
        } else {
            let max = self.scores.iter().copied().max().unwrap_or(1).max(1);
            for (i, n) in self.scores.iter().enumerate() {
                let lo = i as f64 / SCORE_BINS as f64;
                let bar = "#".repeat(((*n * 40).div_ceil(max)) as usize);
                let _ = writeln!(o, "  {lo:.1}-{:.1} {n:>8} {bar}", lo + 0.1);
            }
            if let Some((drop, review)) = self.thresholds {
                let _ = writeln!(o, "  thresholds: review >= {review}, drop >= {drop}");
            }
        }
        let _ = writeln!(o, "\nper shard:");
        let width = self
            .shards
            .iter()
            .map(|s| s.name.chars().count())
            .max()
            .unwrap_or(0)
            .max(5);
        let _ = writeln!(
            o,
            "  {:<width$} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "shard", "documents", "kept", "dropped", "review", "errors", "audited"
        );
        for s in &self.shards {
            let _ = writeln!(
                o,
                "  {:<width$} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                s.name, s.documents, s.kept, s.dropped, s.review, s.errors, s.audited
            );
        }
        o
    }
}

/// A titled table: one row per key, a column per count.
fn table(o: &mut String, title: &str, columns: &[&str], rows: Vec<(String, Vec<u64>)>) {
    let _ = writeln!(o, "\n{title}:");
    if rows.is_empty() {
        let _ = writeln!(o, "  (none)");
    }
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0)
        .max(8);
    let _ = write!(o, "  {:<width$}", "");
    for c in columns {
        let _ = write!(o, " {c:>10}");
    }
    o.push('\n');
    for (key, counts) in rows {
        let _ = write!(o, "  {key:<width$}");
        for n in counts {
            let _ = write!(o, " {n:>10}");
        }
        o.push('\n');
    }
}

fn pct(n: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        n as f64 * 100.0 / total as f64
    }
}
