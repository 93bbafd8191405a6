//! Screening a fine-tuning dataset: run the cascade, then give one verdict a CI job can act on.
//!
//! The screen config is a sluice config with one more table, `[screen]`, holding the limits
//! (see `configs/finetune-screen.toml`). *Flagged* documents are those the cascade dropped or
//! sent to review. The verdict is `reject` when the flagged count or fraction crosses a reject
//! limit (a dataset that looks built to strip safety behaviour), else `review` when more than
//! `review_above` documents are flagged (they are listed for a person), else `accept`.
//!
//! **Signals.** Beyond the flagged count, `[[screen.signals]]` name what the screen looks for
//! (harmful compliance, identity shifting, safety data, ...) by stage id and rule id: a document
//! shows a signal when one of its stages fired on it (any outcome but `pass`; an outcome
//! suppressed by `unless`/`only_if` did not fire), through one of its `rules` when given, and
//! all of its `with_stages` fired too. Each signal is counted over the dataset and has its own
//! limits (`review_count`, `reject_count`, `reject_fraction`); the verdict is the strictest of
//! the flagged limits, the signals' and the dataset-level signals' ([`DatasetSignal`]: statistics
//! over the whole dataset rather than one document, such as a trigger table).
//!
//! **Fail closed.** A screen must never accept what it could not read: lines that are not
//! readable records (`errors/`) count as flagged unless `errors_are_flagged = false`, and a
//! dataset of which more than `max_error_fraction` (default a half) is unreadable, or that has no
//! line at all, gets no verdict but an error (exit 3): it is probably in a layout the config
//! does not describe.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sluice_core::decision::Outcome;
use sluice_core::stats::Destination;
use sluice_core::{Config, ConfigError};

use crate::{AuditError, OutDir, Record};

/// The `[screen]` table.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScreenLimits {
    /// Reject when more than this fraction of the documents is flagged.
    #[serde(default)]
    pub reject_fraction: Option<f64>,
    /// Reject when more than this many documents are flagged.
    #[serde(default)]
    pub reject_count: Option<u64>,
    /// Review when more than this many documents are flagged (default 0: any).
    #[serde(default)]
    pub review_above: u64,
    /// Lines that are not documents (errors/) also count as flagged (the default: a screen
    /// fails closed).
    #[serde(default = "yes")]
    pub errors_are_flagged: bool,
    /// More than this fraction of unreadable lines is an error, not a verdict.
    #[serde(default = "half")]
    pub max_error_fraction: f64,
    /// `[screen.triggers]`: the trigger table's limits (see `triggers.rs`).
    #[serde(default)]
    pub triggers: crate::triggers::TriggerLimits,
    /// What the screen counts per document, each with its own limits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signals: Vec<SignalConfig>,
}

/// One `[[screen.signals]]` table.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SignalConfig {
    pub id: String,
    /// Stage ids: the signal shows when one of them fired on the document.
    pub stages: Vec<String>,
    /// Rule ids (or other reason keys a stage records): only these rules of those stages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    /// Stage ids that must all have fired on the document as well.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub with_stages: Vec<String>,
    /// Review when at least this many documents show the signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_count: Option<u64>,
    /// Reject when at least this many documents show the signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject_count: Option<u64>,
    /// Reject when more than this fraction of the documents show the signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject_fraction: Option<f64>,
}

impl SignalConfig {
    /// Whether the document of `record` shows the signal.
    pub fn shows(&self, record: &Record) -> bool {
        let fired = |id: &str| {
            record
                .entry(id)
                .is_some_and(|e| e.evidence.outcome() != Outcome::Pass)
        };
        let through_rules = |id: &str| {
            self.rules.is_empty()
                || record.reasons.iter().any(|r| {
                    r.stage == id
                        && r.rule
                            .as_ref()
                            .is_some_and(|rule| self.rules.contains(rule))
                })
        };
        self.stages.iter().any(|id| fired(id) && through_rules(id))
            && self.with_stages.iter().all(|id| fired(id))
    }

    /// The signal's verdict when `count` of `documents` show it, and the limit that decided.
    pub fn verdict(&self, count: u64, documents: u64) -> (Verdict, Option<String>) {
        let fraction = share(count, documents);
        if let Some(n) = self.reject_count.filter(|n| count >= *n) {
            return (Verdict::Reject, Some(format!("at least reject_count {n}")));
        }
        if let Some(f) = self.reject_fraction.filter(|f| count > 0 && fraction > *f) {
            return (
                Verdict::Reject,
                Some(format!("over reject_fraction {:.2}%", f * 100.0)),
            );
        }
        if let Some(n) = self.review_count.filter(|n| count >= *n) {
            return (Verdict::Review, Some(format!("at least review_count {n}")));
        }
        (Verdict::Accept, None)
    }
}

fn share(count: u64, of: u64) -> f64 {
    if of == 0 {
        0.0
    } else {
        count as f64 / of as f64
    }
}

impl Default for ScreenLimits {
    fn default() -> Self {
        ScreenLimits {
            reject_fraction: None,
            reject_count: None,
            review_above: 0,
            errors_are_flagged: true,
            max_error_fraction: half(),
            triggers: Default::default(),
            signals: Vec::new(),
        }
    }
}

fn yes() -> bool {
    true
}
fn half() -> f64 {
    0.5
}

/// Ordered by strictness: the dataset's verdict is the strictest of its parts' (a signal or
/// the trigger table can only make it stricter).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Accept,
    Review,
    Reject,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Accept => "accept",
            Verdict::Review => "review",
            Verdict::Reject => "reject",
        }
    }
}

/// Reads a screen config: the `[screen]` limits and the cascade config around them.
pub fn load_config(path: &Path) -> Result<(Config, ScreenLimits), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.to_path_buf(),
        source: e,
    })?;
    let parse_error = |message: String| ConfigError::Parse {
        path: path.to_path_buf(),
        message: message.trim_end().replace('\n', " "),
    };
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| parse_error(e.to_string()))?;
    let limits = match table.remove("screen") {
        Some(value) => ScreenLimits::deserialize(value).map_err(|e| ConfigError::Invalid {
            key: "screen".into(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?,
        None => ScreenLimits::default(),
    };
    for (key, value) in [
        ("screen.reject_fraction", limits.reject_fraction),
        ("screen.max_error_fraction", Some(limits.max_error_fraction)),
    ] {
        if value.is_some_and(|f| !(0.0..=1.0).contains(&f)) {
            return Err(ConfigError::Invalid {
                key: key.into(),
                message: "must be between 0 and 1".into(),
            });
        }
    }
    if let Some((key, message)) = limits.triggers.invalid() {
        return Err(ConfigError::Invalid {
            key: format!("screen.triggers.{key}"),
            message: message.into(),
        });
    }
    let rest = toml::to_string(&table).map_err(|e| parse_error(e.to_string()))?;
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| ".".into());
    let config = Config::from_toml(&rest, &base).map_err(|e| match e {
        ConfigError::Parse { message, .. } => parse_error(message),
        other => other,
    })?;
    check_signals(&limits, &config)?;
    Ok((config, limits))
}

/// Signals name stages of the config (a typo would silently never fire), ids are unique and
/// fractions are fractions.
fn check_signals(limits: &ScreenLimits, config: &Config) -> Result<(), ConfigError> {
    let mut seen = std::collections::BTreeSet::new();
    for (i, signal) in limits.signals.iter().enumerate() {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: format!("screen.signals[{i}] ({}).{key}", signal.id),
            message,
        };
        if signal.id.is_empty() || !seen.insert(signal.id.as_str()) {
            return Err(invalid("id", "must be a non-empty id, used once".into()));
        }
        if signal.stages.is_empty() {
            return Err(invalid("stages", "name at least one stage id".into()));
        }
        for (key, ids) in [
            ("stages", &signal.stages),
            ("with_stages", &signal.with_stages),
        ] {
            if let Some(unknown) = ids
                .iter()
                .find(|id| !config.stages.iter().any(|s| s.id() == id.as_str()))
            {
                return Err(invalid(key, format!("no stage has the id `{unknown}`")));
            }
        }
        if signal
            .reject_fraction
            .is_some_and(|f| !(0.0..=1.0).contains(&f))
        {
            return Err(invalid("reject_fraction", "must be between 0 and 1".into()));
        }
    }
    Ok(())
}

/// Why a dataset gets no verdict.
pub fn unreadable(limits: &ScreenLimits, lines: u64, errors: u64) -> Option<String> {
    if lines == 0 {
        return Some("the dataset has no line to screen".into());
    }
    let fraction = errors as f64 / lines as f64;
    (fraction > limits.max_error_fraction).then(|| {
        format!(
            "{errors} of {lines} lines ({:.1}%) are not readable records, over \
             screen.max_error_fraction ({}): is the dataset in the layout the config describes \
             (input.format, input.text_fields or input.text_field)? See errors/ with --output",
            fraction * 100.0,
            limits.max_error_fraction
        )
    })
}

/// The verdict of the flagged limits on `documents` lines of which `flagged` were flagged.
pub fn verdict(limits: &ScreenLimits, documents: u64, flagged: u64) -> Verdict {
    let fraction = if documents == 0 {
        0.0
    } else {
        flagged as f64 / documents as f64
    };
    if limits.reject_count.is_some_and(|n| flagged > n)
        || limits.reject_fraction.is_some_and(|f| fraction > f)
    {
        Verdict::Reject
    } else if flagged > limits.review_above {
        Verdict::Review
    } else {
        Verdict::Accept
    }
}

/// A signal's figures over the dataset.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SignalResult {
    pub id: String,
    /// Documents that show it.
    pub documents: u64,
    /// Of all the dataset's documents.
    pub fraction: f64,
    pub verdict: Verdict,
    /// The limit that decided a verdict other than accept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    #[serde(flatten)]
    pub config: SignalConfig,
    /// The first documents that show it (`id` or `shard:line`).
    pub examples: Vec<String>,
}

/// A signal computed over the whole dataset rather than per document (a statistic such as the
/// trigger table: strings over-represented among flagged examples), with its own verdict.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DatasetSignal {
    pub id: String,
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// Its figures, as the signal defines them.
    pub figures: serde_json::Value,
    /// Its own lines for the text verdict (the trigger table), when it has more to say than
    /// its figures.
    #[serde(skip)]
    pub text: Option<String>,
}

/// The layout `input.format = "auto"` found in one input file.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FileLayout {
    pub shard: String,
    /// `chat`, `sharegpt`, `alpaca`, `prompt-completion`, `text`; `unknown` when none of its
    /// first records has a known layout (or the file is not a local JSONL file).
    pub layout: String,
    /// Of the first records looked at, how many have that layout.
    pub agreeing: usize,
    pub looked_at: usize,
}

/// One flagged document, for a person.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FlaggedDocument {
    pub id: String,
    pub shard: String,
    pub line: u64,
    pub decision: String,
    pub reasons: Vec<String>,
    pub signals: Vec<String>,
}

/// The whole verdict on a dataset, as `sluice screen --json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct Screening {
    pub verdict: Verdict,
    /// Why it is not `accept`: the limits crossed.
    pub why: Vec<String>,
    pub documents: u64,
    pub flagged: u64,
    pub flagged_fraction: f64,
    pub dropped: u64,
    pub review: u64,
    pub errors: u64,
    pub limits: ScreenLimitsView,
    pub signals: Vec<SignalResult>,
    /// Dataset-level signals. Each dataset-level statistic adds its entry in
    /// [`dataset_signals`]; the verdict takes the strictest.
    pub dataset_signals: Vec<DatasetSignal>,
    pub files: Vec<FileLayout>,
    /// Per reason (`stage` or `stage/rule`): audited documents.
    pub reasons: BTreeMap<String, u64>,
    /// The first flagged documents (at most `--list`).
    pub flagged_documents: Vec<FlaggedDocument>,
}

/// The flagged-count limits, as the verdict shows them.
#[derive(Clone, Debug, Serialize)]
pub struct ScreenLimitsView {
    pub reject_fraction: Option<f64>,
    pub reject_count: Option<u64>,
    pub review_above: u64,
    pub errors_are_flagged: bool,
}

/// Examples listed per signal.
pub const SIGNAL_EXAMPLES: usize = 5;

/// What reviewers decided about a screened dataset (`sluice review OUT verdict`): the flagged
/// count after their agreed decisions, and the documents they agreed to keep, by shard and line.
#[derive(Clone, Debug, Default)]
pub struct Reviewed {
    pub flagged: u64,
    pub kept: std::collections::HashSet<(String, u64)>,
}

/// Screens the finished run in `out`: counts, signals, dataset-level signals, the layout of each
/// input file, the first `list` flagged documents, and the verdict of them all.
pub fn screen(out: &OutDir, limits: &ScreenLimits, list: usize) -> Result<Screening, AuditError> {
    screen_reviewed(out, limits, list, None)
}

/// [`screen`], with reviewers' decisions when given: the flagged count is theirs, and a document
/// they agreed to keep shows no signal and is not listed (a person judged it fine). The trigger
/// table still compares the cascade's flagged and unflagged examples.
pub fn screen_reviewed(
    out: &OutDir,
    limits: &ScreenLimits,
    list: usize,
    reviewed: Option<&Reviewed>,
) -> Result<Screening, AuditError> {
    let report = out.report.as_ref().ok_or_else(|| {
        AuditError::usage("output", "the run has no report.json: it did not finish")
    })?;
    let d = |d: Destination| report.destinations.get(d).documents;
    let documents = report.input.documents;
    let (dropped, review, errors) = (
        d(Destination::Dropped),
        d(Destination::Review),
        d(Destination::Errors),
    );
    let flagged = match reviewed {
        Some(reviewed) => reviewed.flagged,
        None => dropped + review + if limits.errors_are_flagged { errors } else { 0 },
    };
    let mut counts = vec![0u64; limits.signals.len()];
    let mut examples: Vec<Vec<String>> = vec![Vec::new(); limits.signals.len()];
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    let mut flagged_documents = Vec::new();
    for entry in out.done_shards() {
        for record in out.records(entry)? {
            let record = record?;
            let kept_by_reviewers =
                reviewed.is_some_and(|r| r.kept.contains(&(record.shard.to_string(), record.line)));
            if kept_by_reviewers {
                continue;
            }
            let place = format!("{}:{}", record.shard, record.line);
            let name = if record.id == place {
                place
            } else {
                record.id.to_string()
            };
            let mut shown = Vec::new();
            for (i, signal) in limits.signals.iter().enumerate() {
                if signal.shows(&record) {
                    counts[i] += 1;
                    if examples[i].len() < SIGNAL_EXAMPLES {
                        examples[i].push(name.clone());
                    }
                    shown.push(signal.id.clone());
                }
            }
            let keys = record.reason_keys();
            for key in &keys {
                *reasons.entry(key.clone()).or_default() += 1;
            }
            let is_flagged = matches!(record.decision, Destination::Dropped | Destination::Review);
            if is_flagged && flagged_documents.len() < list {
                flagged_documents.push(FlaggedDocument {
                    id: name,
                    shard: record.shard.to_string(),
                    line: record.line,
                    decision: record.decision.name().to_string(),
                    reasons: keys,
                    signals: shown,
                });
            }
        }
    }
    let mut why = Vec::new();
    let mut overall = verdict(limits, documents, flagged);
    if overall != Verdict::Accept {
        why.push(format!("{flagged} flagged of {documents} documents"));
    }
    let signals: Vec<SignalResult> = limits
        .signals
        .iter()
        .zip(counts)
        .zip(examples)
        .map(|((config, count), examples)| {
            let (verdict, reason) = config.verdict(count, documents);
            if let Some(reason) = &reason {
                why.push(format!("signal {}: {count} documents, {reason}", config.id));
            }
            overall = overall.max(verdict);
            SignalResult {
                id: config.id.clone(),
                documents: count,
                fraction: share(count, documents),
                verdict,
                why: reason,
                config: config.clone(),
                examples,
            }
        })
        .collect();
    let dataset_signals = dataset_signals(out, limits)?;
    for signal in &dataset_signals {
        overall = overall.max(signal.verdict);
        if let Some(reason) = &signal.why {
            why.push(format!("dataset signal {}: {reason}", signal.id));
        }
    }
    Ok(Screening {
        verdict: overall,
        why,
        documents,
        flagged,
        flagged_fraction: share(flagged, documents),
        dropped,
        review,
        errors,
        limits: ScreenLimitsView {
            reject_fraction: limits.reject_fraction,
            reject_count: limits.reject_count,
            review_above: limits.review_above,
            errors_are_flagged: limits.errors_are_flagged,
        },
        signals,
        dataset_signals,
        files: file_layouts(out),
        reasons,
        flagged_documents,
    })
}

/// The dataset-level signals of the run in `out`. Each reads what it needs from `out` (the audit
/// records, the kept and flagged outputs) and gives one `DatasetSignal` with its figures and
/// verdict; the trigger table (`triggers.rs`) is the first.
fn dataset_signals(out: &OutDir, limits: &ScreenLimits) -> Result<Vec<DatasetSignal>, AuditError> {
    let mut signals = Vec::new();
    if limits.triggers.enabled {
        let table = crate::triggers::triggers(out, &limits.triggers)?;
        signals.push(DatasetSignal {
            id: "triggers".into(),
            verdict: table.verdict.unwrap_or(Verdict::Accept),
            why: table.verdict.map(|_| {
                format!(
                    "{} over-represented in the user turns of flagged examples",
                    match table.rows.len() {
                        1 => "1 string".to_string(),
                        n => format!("{n} strings"),
                    }
                )
            }),
            text: Some(table.render()),
            figures: serde_json::to_value(&table).unwrap_or(serde_json::Value::Null),
        });
    }
    Ok(signals)
}

/// The layout of each input file: what the run recorded (`input.format = "auto"`), else what
/// the file's first records have, detected here (reported whatever the format: a fixed format
/// that does not match shows here too).
fn file_layouts(out: &OutDir) -> Vec<FileLayout> {
    out.manifest
        .shards
        .iter()
        .map(|entry| {
            let found = entry
                .layout
                .clone()
                .or_else(|| sluice_core::document::detect_file_layout(&entry.path));
            let (layout, agreeing, looked_at) = match found {
                Some(found) => (found.layout, found.agreeing, found.looked_at),
                None => ("unknown".to_string(), 0, 0),
            };
            FileLayout {
                shard: entry.name.clone(),
                layout,
                agreeing,
                looked_at,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_decide_the_verdict() {
        let limits = ScreenLimits {
            reject_fraction: Some(0.05),
            reject_count: Some(100),
            review_above: 0,
            errors_are_flagged: false,
            max_error_fraction: 0.5,
            triggers: Default::default(),
            signals: Vec::new(),
        };
        assert_eq!(verdict(&limits, 1000, 0), Verdict::Accept);
        assert_eq!(verdict(&limits, 1000, 1), Verdict::Review);
        assert_eq!(verdict(&limits, 1000, 50), Verdict::Review);
        assert_eq!(verdict(&limits, 1000, 51), Verdict::Reject);
        assert_eq!(verdict(&limits, 1_000_000, 101), Verdict::Reject);
        assert_eq!(verdict(&ScreenLimits::default(), 10, 0), Verdict::Accept);
        // Unreadable datasets get no verdict.
        let defaults = ScreenLimits::default();
        assert!(defaults.errors_are_flagged);
        assert!(unreadable(&defaults, 0, 0).is_some());
        assert!(unreadable(&defaults, 100, 51).is_some());
        assert!(unreadable(&defaults, 100, 50).is_none());
    }

    #[test]
    fn the_bundled_config_loads_and_unknown_screen_keys_are_named() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let (config, limits) = load_config(&repo.join("configs/finetune-screen.toml")).unwrap();
        assert!(!config.stages.is_empty());
        assert!(limits.reject_fraction.is_some());
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("c.toml");
        std::fs::write(&path, "[screen]\nreject_fractoin = 0.1\n").unwrap();
        let err = load_config(&path).unwrap_err().to_string();
        assert!(
            err.contains("screen") && err.contains("reject_fractoin"),
            "{err}"
        );
    }
}
