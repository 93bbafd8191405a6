//! What every stage of the cascade is: a function from a document to optional evidence.
//!
//! A stage never decides a document's destination by itself. It returns [`Evidence`] whose
//! [`Outcome`] says what it wants (`tag`, `escalate`, `drop`, or `pass` when it saw something
//! below its thresholds); the cascade in [`crate::pipeline`] combines the outcomes: the first
//! `drop` wins, an `escalate` sends the document on to review (or a classifier), `tag` only
//! records.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sluice_terms::{MatchScratch, TermMatch};

use crate::document::Document;
use crate::stages::{ClassifierEvidence, RulesEvidence, TermsEvidence};

/// What a stage wants done with a document, ordered by strength.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Something matched, but no threshold was crossed (audited only with `output.audit = "matched"`).
    Pass,
    Tag,
    Escalate,
    /// The classifier's middle band: a person decides.
    Review,
    Drop,
}

/// The action a rule or term stage takes when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Drop,
    Escalate,
    Tag,
}

impl From<Action> for Outcome {
    fn from(action: Action) -> Outcome {
        match action {
            Action::Drop => Outcome::Drop,
            Action::Escalate => Outcome::Escalate,
            Action::Tag => Outcome::Tag,
        }
    }
}

/// One reason in an audit record: which stage (and rule) fired, with which action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    pub stage: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    pub action: Outcome,
}

/// A stage's evidence about one document.
#[derive(Clone, Debug)]
pub struct Evidence {
    pub outcome: Outcome,
    pub reasons: Vec<Reason>,
    pub detail: Detail,
}

/// Stage-specific evidence, serialized flat into the stage's entry of the audit record.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Detail {
    Rules(RulesEvidence),
    Terms(TermsEvidence),
    Classifier(ClassifierEvidence),
}

/// Per-thread buffers that stages reuse from document to document.
#[derive(Default)]
pub struct Scratch {
    pub term_scratch: MatchScratch,
    pub term_matches: Vec<TermMatch>,
}

/// Documents and hits counted under one key (a rule id, a term, a category).
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
    pub fn add_doc(&mut self, hits: u64, outcome: Outcome) {
        self.docs += 1;
        self.hits += hits;
        match outcome {
            Outcome::Drop => self.dropped += 1,
            Outcome::Escalate | Outcome::Review => self.escalated += 1,
            Outcome::Tag => self.tagged += 1,
            Outcome::Pass => {}
        }
    }

    fn merge(&mut self, other: &KeyCounts) {
        self.docs += other.docs;
        self.hits += other.hits;
        self.tagged += other.tagged;
        self.escalated += other.escalated;
        self.dropped += other.dropped;
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
    /// Documents the classifier sent to review.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reviewed: u64,
    pub dropped: u64,
    /// Tokens the classifier scored.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tokens: u64,
    /// Documents the classifier failed on (handled by its `on_error`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rules: BTreeMap<String, KeyCounts>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub terms: BTreeMap<String, KeyCounts>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub categories: BTreeMap<String, KeyCounts>,
}

impl StageStats {
    pub fn new(id: &str, kind: &str) -> StageStats {
        StageStats {
            id: id.to_string(),
            kind: kind.to_string(),
            ..StageStats::default()
        }
    }

    pub fn record_outcome(&mut self, outcome: Outcome) {
        self.matched += 1;
        match outcome {
            Outcome::Pass => self.passed += 1,
            Outcome::Tag => self.tagged += 1,
            Outcome::Escalate => self.escalated += 1,
            Outcome::Review => self.reviewed += 1,
            Outcome::Drop => self.dropped += 1,
        }
    }

    pub fn merge(&mut self, other: &StageStats) {
        self.evaluated += other.evaluated;
        self.text_bytes += other.text_bytes;
        self.matched += other.matched;
        self.passed += other.passed;
        self.tagged += other.tagged;
        self.escalated += other.escalated;
        self.reviewed += other.reviewed;
        self.dropped += other.dropped;
        self.tokens += other.tokens;
        self.failed += other.failed;
        for (mine, theirs) in [
            (&mut self.rules, &other.rules),
            (&mut self.terms, &other.terms),
            (&mut self.categories, &other.categories),
        ] {
            for (key, counts) in theirs {
                mine.entry(key.clone()).or_default().merge(counts);
            }
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Adds one document to `map[key]`, allocating the key only the first time it is seen.
pub fn count_key(map: &mut BTreeMap<String, KeyCounts>, key: &str, hits: u64, outcome: Outcome) {
    if let Some(counts) = map.get_mut(key) {
        counts.add_doc(hits, outcome);
    } else {
        let mut counts = KeyCounts::default();
        counts.add_doc(hits, outcome);
        map.insert(key.to_string(), counts);
    }
}

/// A built, ready-to-run stage. Shared by all worker threads.
pub trait Stage: Send + Sync {
    fn id(&self) -> &str;
    /// The config `type` of the stage (`rules`, `terms`, ...).
    fn kind(&self) -> &'static str;
    /// Looks at one document. `None` when nothing in it concerns this stage. The stage adds its
    /// per-rule / per-term counts to `stats`; the cascade counts outcomes.
    fn evaluate(
        &self,
        doc: &Document<'_>,
        scratch: &mut Scratch,
        stats: &mut StageStats,
    ) -> Option<Evidence>;
}
