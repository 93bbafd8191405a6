//! What a stage of the cascade is: three traits that one stage file implements, and the counters
//! every stage shares.
//!
//! A stage type lives in one file under `stages/` and is registered by one line in
//! `stages/mod.rs`. It has three parts, kept apart as in vector's sources and sinks:
//!
//! * its **config** ([`StageKind`]): plain serde data (`deny_unknown_fields`), which documents it
//!   judges ([`StageKind::wants`]), **the decision** from evidence to outcome under its thresholds
//!   ([`StageKind::decide`]), and which thresholds `sluice rethreshold --set` may change
//!   ([`StageKind::set`]). Because the decision belongs to the config, `run`, `eval` and
//!   `rethreshold` decide with the very same function: re-thresholding is deciding again;
//! * its **runtime** ([`StageRuntime`]), built from the config before any document is read: it
//!   *measures* a document (rule matches, term counts, a model score) without applying any
//!   threshold, one document at a time or, for a model, a batch at a time;
//! * its **evidence** ([`StageEvidence`]): what it measured, serialized flat into the stage's entry
//!   of an audit record, and how that is counted, explained (`sluice audit show`, the HTML report)
//!   and searched (`--term`, `--rule`, `--category`).
//!
//! The evidence enum of all stages is generated from the registry, so an audit reader that does
//! not know a stage's evidence cannot exist: it is a compile error, not a parse failure at run time.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::decision::{Outcome, Reason, Verdict};
use crate::document::Document;
use crate::error::ConfigError;

/// The config half of a stage type (see the module docs).
pub trait StageKind: Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The runtime stage built from this config.
    type Runtime: StageRuntime<Evidence = Self::Evidence>;
    /// What the stage records about a document.
    type Evidence: StageEvidence;

    /// The stage's `id`, unique in a config.
    fn id(&self) -> &str;

    /// Checks the config and builds the runtime stage (compiles patterns, loads lists and models).
    /// Errors name the key at fault, prefixed by `ctx.key`.
    fn build(&self, ctx: &BuildContext) -> Result<Self::Runtime, ConfigError>;

    /// Bytes beyond the config text that decide the stage's behaviour (term lists, a model), as
    /// `(name, bytes)`, for the config hash. Names must not depend on where the config was loaded.
    fn hashed_inputs(&self, _ctx: &BuildContext) -> Result<Vec<(String, Vec<u8>)>, ConfigError> {
        Ok(Vec::new())
    }

    /// Whether the stage judges a document, given the verdict of the stages before it (the
    /// cascade never shows a stage a dropped document). By default every one.
    fn wants(&self, _verdict: &Verdict) -> bool {
        true
    }

    /// Whether the stage's outcome settles an escalation: a judge (the classifier) whose `pass`
    /// keeps a document the text stages escalated, instead of leaving it for review.
    fn settles_escalation(&self) -> bool {
        false
    }

    /// **The decision**: the stage's outcome for `evidence` under this config's thresholds. Where
    /// the evidence records the thresholds it was compared with, they are updated to this config's.
    fn decide(&self, evidence: &mut Self::Evidence) -> Outcome;

    /// Sets the device a model stage runs on (`--device`); other stages ignore it.
    fn set_device(&mut self, _device: &str) {}

    /// Reads the files the config names to be part of it (a rules stage's `rule_files`), once,
    /// when the config is read, relative to `base_dir`; `key` names the stage in errors. Most
    /// stages have none.
    fn read_files(&mut self, _base_dir: &Path, _key: &str) -> Result<(), ConfigError> {
        Ok(())
    }

    /// Applies `sluice rethreshold --set ID.KEY=VALUE` to this config. `Err` says why the key or
    /// value is not accepted (listing the keys that are).
    fn set(&mut self, key: &str, _value: &str) -> Result<Setting, String> {
        Err(format!(
            "`{key}`: a {} stage has no threshold to re-set",
            std::any::type_name::<Self>()
                .rsplit("::")
                .next()
                .unwrap_or("")
        ))
    }
}

/// What a `--set` did to a stage's config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The change can flag documents whose evidence stayed below every threshold before: with
    /// `output.audit = "flagged"` those have no audit record, so it cannot be re-decided.
    pub loosens: bool,
}

/// A `--set` value that must be an integer of at least `min`.
pub fn parse_count(value: &str, min: usize) -> Result<usize, String> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| *n >= min)
        .ok_or_else(|| format!("`{value}` is not an integer of at least {min}"))
}

/// A `--set` value that must be a finite number in `[min, max]`.
pub fn parse_number(value: &str, min: f64, max: f64) -> Result<f64, String> {
    value
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && (min..=max).contains(x))
        .ok_or_else(|| {
            if max == f64::MAX {
                format!("`{value}` is not a number of at least {min}")
            } else {
                format!("`{value}` is not a number between {min} and {max}")
            }
        })
}

/// A `--set` value that must be a finite number.
pub fn parse_finite(value: &str) -> Result<f64, String> {
    value
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .ok_or_else(|| format!("`{value}` is not a finite number"))
}

/// The runtime half of a stage type: measures documents, shared by every worker thread.
pub trait StageRuntime: Send + Sync {
    /// The evidence type ([`StageKind::Evidence`]).
    type Evidence;
    /// Buffers a worker reuses from document to document.
    type Scratch: Default + Send;

    /// Looks at one document: `None` when nothing in it concerns the stage. No threshold is
    /// applied here; the cascade calls [`StageKind::decide`] next.
    fn measure(&self, doc: &Document<'_>, scratch: &mut Self::Scratch) -> Option<Self::Evidence>;

    /// Whether the stage wants documents in batches ([`measure_batch`](Self::measure_batch)): the
    /// pipeline then holds documents until enough want it, and may gather several chunks' worth.
    fn batched(&self) -> bool {
        false
    }

    /// Measures many documents at once, one result per document, in order. An `Err` concerns the
    /// whole batch and fails the shard (a model error the stage does not turn into evidence).
    fn measure_batch(
        &self,
        texts: &[&str],
        scratch: &mut Self::Scratch,
    ) -> Result<Vec<Option<Self::Evidence>>, StageError> {
        Ok(texts
            .iter()
            .map(|text| {
                let doc = Document::single(*text, None);
                self.measure(&doc, scratch)
            })
            .collect())
    }

    /// Whether a document's measurement is bit-for-bit independent of the batch it shares: only
    /// then may the pipeline gather documents of several chunks into one call.
    fn batch_exact(&self) -> bool {
        true
    }

    /// One line about the built stage for `sluice check` ("4 rules", the loaded model).
    fn describe(&self) -> String;

    /// What `sluice check` should warn about after trying the built stage (a model that scores
    /// NaN on a probe text).
    fn check(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A stage failure that concerns a whole batch (see [`StageRuntime::measure_batch`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StageError {
    pub message: String,
}

/// A stage's evidence about one document (see the module docs).
pub trait StageEvidence:
    Clone + Debug + PartialEq + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// The reasons this evidence gives for `outcome`: by default, when the stage did more than
    /// pass, one reason naming the stage.
    fn reasons(&self, stage: &str, outcome: Outcome, out: &mut Vec<Reason>) {
        if outcome != Outcome::Pass {
            out.push(Reason {
                stage: stage.to_string(),
                rule: None,
                action: outcome,
            });
        }
    }

    /// Adds the evidence's per-key counts (rules, terms, languages...) and stage-specific
    /// counters to `stats`; the cascade counts outcomes itself.
    fn count(&self, _outcome: Outcome, _stats: &mut StageStats) {}

    /// One line for a reviewer: `sluice audit show` and the HTML report.
    fn describe(&self) -> String;

    /// Marked spans of the document text, labeled, for highlighting.
    fn spans(&self, _stage: &str, _out: &mut Vec<LabeledSpan>) {}

    /// The evidence's keys of counter family `family` (`rules`, `terms`, `categories`,
    /// `languages`): what `--rule`, `--term`, `--category` select on and exports list.
    fn keys(&self, _family: &str) -> Vec<&str> {
        Vec::new()
    }

    /// A model score, for score filters and histograms.
    fn score(&self) -> Option<f32> {
        None
    }

    /// Calls `place` on every span, so that the cascade can turn offsets into the judged text
    /// into offsets within a document part (and name the part and its role). Evidence with
    /// spans must implement it; the cascade calls it only for documents made of parts.
    fn place_spans(&mut self, _place: &dyn Fn(&mut SpanPlace)) {}
}

/// A span of evidence as the cascade places it in a document part: offsets in, offsets within
/// the part out, with the part's path and role filled in.
pub struct SpanPlace<'s> {
    pub start: &'s mut usize,
    pub end: &'s mut usize,
    pub part: &'s mut Option<String>,
    pub role: &'s mut Option<String>,
}

/// A span `[start, end)` of the document text (bytes, on character boundaries) and what matched;
/// in a document made of parts, of the text of part `part` (with its role).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabeledSpan {
    pub start: usize,
    pub end: usize,
    pub label: String,
    pub part: Option<String>,
    pub role: Option<String>,
}

/// What a stage needs to build itself.
pub struct BuildContext<'a> {
    pub base_dir: &'a Path,
    pub max_spans: usize,
    /// Config key prefix for error messages, e.g. `stages[1] (hazard-terms)`.
    pub key: String,
}

impl BuildContext<'_> {
    /// `path` relative to the config file's directory (absolute paths as they are).
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    /// A config error at `KEY.name`.
    pub fn invalid(&self, name: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: format!("{}.{name}", self.key),
            message: message.into(),
        }
    }
}

/// Documents and hits counted under one key (a rule id, a term, a category, a language).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyCounts {
    pub docs: u64,
    pub hits: u64,
    #[serde(default)]
    pub tagged: u64,
    #[serde(default)]
    pub escalated: u64,
    #[serde(default)]
    pub dropped: u64,
}

impl KeyCounts {
    fn add_doc(&mut self, hits: u64, outcome: Outcome) {
        self.docs += 1;
        self.hits += hits;
        match outcome {
            Outcome::Drop => self.dropped += 1,
            Outcome::Escalate | Outcome::Review => self.escalated += 1,
            Outcome::Tag => self.tagged += 1,
            Outcome::Pass => {}
        }
    }

    fn combine(&mut self, other: &KeyCounts, op: fn(u64, u64) -> u64) {
        self.docs = op(self.docs, other.docs);
        self.hits = op(self.hits, other.hits);
        self.tagged = op(self.tagged, other.tagged);
        self.escalated = op(self.escalated, other.escalated);
        self.dropped = op(self.dropped, other.dropped);
    }
}

/// Per-key counters of a stage, by family (`rules`, `terms`, `categories`, `languages`), in the
/// order the stage first counted them: serialized flat into the stage's counters, empty families
/// left out, so that `report.json` reads `"terms": {...}, "categories": {...}`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KeyFamilies(Vec<(String, BTreeMap<String, KeyCounts>)>);

impl KeyFamilies {
    /// The family named `name`, if counted.
    pub fn get(&self, name: &str) -> Option<&BTreeMap<String, KeyCounts>> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, map)| map)
    }

    /// Every family with at least one key, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &BTreeMap<String, KeyCounts>)> {
        self.0
            .iter()
            .filter(|(_, map)| !map.is_empty())
            .map(|(n, map)| (n.as_str(), map))
    }

    fn family_mut(&mut self, name: &str) -> &mut BTreeMap<String, KeyCounts> {
        match self.0.iter().position(|(n, _)| n == name) {
            Some(i) => &mut self.0[i].1,
            None => {
                self.0.push((name.to_string(), BTreeMap::new()));
                &mut self.0.last_mut().expect("just pushed").1
            }
        }
    }
}

impl Serialize for KeyFamilies {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        for (name, keys) in self.iter() {
            map.serialize_entry(name, keys)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for KeyFamilies {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = KeyFamilies;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("per-key counters by family")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut m: M,
            ) -> Result<KeyFamilies, M::Error> {
                let mut families = Vec::new();
                while let Some((name, keys)) =
                    m.next_entry::<String, BTreeMap<String, KeyCounts>>()?
                {
                    families.push((name, keys));
                }
                Ok(KeyFamilies(families))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

/// Counters for one stage. `matched` counts documents with any evidence; the outcome counters
/// count documents by the stage's own outcome.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StageStats {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Documents the stage looked at (a drop earlier in the cascade skips later stages).
    pub evaluated: u64,
    /// Bytes of document text the stage looked at.
    #[serde(default)]
    pub text_bytes: u64,
    pub matched: u64,
    pub passed: u64,
    pub tagged: u64,
    pub escalated: u64,
    /// Documents the stage sent to review (the classifier's middle band).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reviewed: u64,
    pub dropped: u64,
    /// Tokens a model scored.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tokens: u64,
    /// Documents a model failed on (handled by its `on_error`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed: u64,
    /// Documents whose outcome was suppressed by an `unless` stage (counted as `passed`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub suppressed: u64,
    /// Per-key counts: `rules`, `terms`, `categories`, `languages`, ...
    #[serde(flatten)]
    pub keys: KeyFamilies,
}

impl StageStats {
    pub fn new(id: &str, kind: &str) -> StageStats {
        StageStats {
            id: id.to_string(),
            kind: kind.to_string(),
            ..StageStats::default()
        }
    }

    /// Counts one document under the stage's `outcome` (it had evidence).
    pub fn count_outcome(&mut self, outcome: Outcome) {
        self.matched += 1;
        match outcome {
            Outcome::Pass => self.passed += 1,
            Outcome::Tag => self.tagged += 1,
            Outcome::Escalate => self.escalated += 1,
            Outcome::Review => self.reviewed += 1,
            Outcome::Drop => self.dropped += 1,
        }
    }

    /// Adds one document with `hits` under `family[key]`, allocating the key only once.
    pub fn count_key(&mut self, family: &str, key: &str, hits: u64, outcome: Outcome) {
        let map = self.keys.family_mut(family);
        match map.get_mut(key) {
            Some(counts) => counts.add_doc(hits, outcome),
            None => map
                .entry(key.to_string())
                .or_default()
                .add_doc(hits, outcome),
        }
    }

    /// Adds `other` in.
    pub fn merge(&mut self, other: &StageStats) {
        self.combine(other, u64::wrapping_add);
    }

    /// Takes `other` out (re-thresholding replaces a document's old contribution by its new one),
    /// then forgets keys no document counts any more, as a run that never saw them would.
    pub fn subtract(&mut self, other: &StageStats) {
        self.combine(other, u64::wrapping_sub);
        for (_, map) in &mut self.keys.0 {
            map.retain(|_, c| c.docs != 0);
        }
    }

    fn combine(&mut self, other: &StageStats, op: fn(u64, u64) -> u64) {
        for (mine, theirs) in [
            (&mut self.evaluated, other.evaluated),
            (&mut self.text_bytes, other.text_bytes),
            (&mut self.matched, other.matched),
            (&mut self.passed, other.passed),
            (&mut self.tagged, other.tagged),
            (&mut self.escalated, other.escalated),
            (&mut self.reviewed, other.reviewed),
            (&mut self.dropped, other.dropped),
            (&mut self.tokens, other.tokens),
            (&mut self.failed, other.failed),
            (&mut self.suppressed, other.suppressed),
        ] {
            *mine = op(*mine, theirs);
        }
        for (family, theirs) in &other.keys.0 {
            let mine = self.keys.family_mut(family);
            for (key, counts) in theirs {
                mine.entry(key.clone()).or_default().combine(counts, op);
            }
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_families_serialize_in_counting_order_and_skip_empty_ones() {
        let mut s = StageStats::new("t", "terms");
        s.count_key("terms", "sarin", 2, Outcome::Escalate);
        s.count_key("categories", "chem", 2, Outcome::Escalate);
        s.keys.family_mut("languages");
        let json = serde_json::to_string(&s).unwrap();
        assert!(
            json.ends_with(r#""terms":{"sarin":{"docs":1,"hits":2,"tagged":0,"escalated":1,"dropped":0}},"categories":{"chem":{"docs":1,"hits":2,"tagged":0,"escalated":1,"dropped":0}}}"#),
            "{json}"
        );
        let back: StageStats = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }

    #[test]
    fn subtract_undoes_merge_and_forgets_keys_nobody_counts() {
        let mut a = StageStats::new("r", "rules");
        a.evaluated = 10;
        a.count_outcome(Outcome::Drop);
        a.count_key("rules", "x", 1, Outcome::Drop);
        let mut b = StageStats::new("r", "rules");
        b.evaluated = 1;
        b.count_outcome(Outcome::Pass);
        b.count_key("rules", "y", 3, Outcome::Pass);
        let before = a.clone();
        a.merge(&b);
        assert_eq!(a.keys.get("rules").unwrap().len(), 2);
        a.subtract(&b);
        assert_eq!(a, before);
    }
}
