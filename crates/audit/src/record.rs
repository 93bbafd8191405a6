//! The audit record as typed data. Reading a record and writing it back gives the same bytes as
//! the pipeline wrote (same field order, same flattening, floats read back exactly), which is what
//! lets [`crate::rethreshold`] produce records identical to a fresh run.

use serde::{Deserialize, Serialize};
use sluice_core::stage::{Outcome, Reason};
use sluice_core::stages::{ClassifierEvidence, RulesEvidence, TermsEvidence};
use sluice_core::stats::Destination;

/// Category of terms listed without one (as the terms stage counts them).
pub const UNCATEGORIZED: &str = "uncategorized";

/// One line of `audit/S`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AuditRecord {
    pub id: String,
    pub shard: String,
    pub line: u64,
    pub offset: u64,
    pub decision: Destination,
    pub escalated: bool,
    pub reasons: Vec<Reason>,
    pub stages: Vec<StageRecord>,
    pub config_hash: String,
    pub sluice_version: String,
}

/// One stage's entry of a record.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StageRecord {
    pub stage: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub outcome: Outcome,
    #[serde(flatten)]
    pub evidence: StageEvidence,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum StageEvidence {
    Rules(RulesEvidence),
    Terms(TermsEvidence),
    Classifier(ClassifierEvidence),
}

/// A highlighted span: `[start, end)` bytes of the text and what matched there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabeledSpan {
    pub start: usize,
    pub end: usize,
    pub label: String,
}

impl AuditRecord {
    /// Every span of every stage: rule spans labeled `stage/rule`, term spans by their term.
    pub fn spans(&self) -> Vec<LabeledSpan> {
        let mut out = Vec::new();
        for stage in &self.stages {
            match &stage.evidence {
                StageEvidence::Rules(r) => {
                    for hit in &r.rules {
                        for s in &hit.spans {
                            out.push(LabeledSpan {
                                start: s.start,
                                end: s.end,
                                label: format!("{}/{}", stage.stage, hit.id),
                            });
                        }
                    }
                }
                StageEvidence::Terms(t) => {
                    for s in &t.spans {
                        out.push(LabeledSpan {
                            start: s.start,
                            end: s.end,
                            label: s.term.clone(),
                        });
                    }
                }
                StageEvidence::Classifier(_) => {}
            }
        }
        out.sort_by_key(|s| (s.start, s.end));
        out
    }

    /// The classifier's aggregate score, when a classifier scored the document.
    pub fn score(&self) -> Option<f32> {
        self.stages.iter().find_map(|s| match &s.evidence {
            StageEvidence::Classifier(c) => c.score,
            _ => None,
        })
    }

    /// Reason keys: `stage` for a stage-level reason, `stage/rule` for a rule.
    pub fn reason_keys(&self) -> Vec<String> {
        self.reasons
            .iter()
            .map(|r| match &r.rule {
                Some(rule) => format!("{}/{rule}", r.stage),
                None => r.stage.clone(),
            })
            .collect()
    }

    /// `(term, category, count)` of every matched term.
    pub fn terms(&self) -> impl Iterator<Item = (&str, &str, usize)> {
        self.stages.iter().flat_map(|s| match &s.evidence {
            StageEvidence::Terms(t) => t
                .terms
                .iter()
                .map(|c| {
                    (
                        c.term.as_str(),
                        c.category.as_deref().unwrap_or(UNCATEGORIZED),
                        c.count,
                    )
                })
                .collect::<Vec<_>>(),
            _ => Vec::new(),
        })
    }

    /// Ids of every rule that matched (fired or not).
    pub fn rules(&self) -> impl Iterator<Item = &str> {
        self.stages.iter().flat_map(|s| match &s.evidence {
            StageEvidence::Rules(r) => r.rules.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
            _ => Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_to_the_same_bytes() {
        let line = r#"{"id":"h1","shard":"hazard.jsonl.zst","line":1,"offset":0,"decision":"review","escalated":true,"reasons":[{"stage":"hazard-terms","action":"escalate"}],"stages":[{"stage":"keyword-rules","type":"rules","outcome":"pass","rules":[{"id":"x","action":"drop","fired":false,"matches":1,"min_matches":2,"spans":[{"start":0,"end":3}]}]},{"stage":"hazard-terms","type":"terms","outcome":"escalate","distinct":3,"total":3,"weight":3.700000047683716,"words":9,"density":333.3333333333333,"categories":{"chem":3},"terms":[{"term":"sarin","category":"chem","count":1}],"spans":[{"term":"sarin","start":0,"end":5}],"spans_truncated":false,"thresholds":[{"name":"min_distinct","required":2.0,"actual":3.0,"crossed":true}]}],"config_hash":"sha256:44","sluice_version":"0.1.0"}"#;
        let record: AuditRecord = serde_json::from_str(line).unwrap();
        assert!(matches!(record.stages[0].evidence, StageEvidence::Rules(_)));
        assert!(matches!(record.stages[1].evidence, StageEvidence::Terms(_)));
        assert_eq!(serde_json::to_string(&record).unwrap(), line);
        assert_eq!(record.reason_keys(), ["hazard-terms"]);
        assert_eq!(record.spans().len(), 2);
    }
}
