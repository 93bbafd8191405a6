//! The records of `audit/` and `errors/`, defined once: the pipeline and `rethreshold` write them
//! with these types and every reader (`sluice audit`, `report`, `rethreshold`) parses them back
//! into the same types. Writing a record read from a file gives back the same bytes (field
//! order, flattening, floats read back exactly with serde_json's `float_roundtrip`), which is
//! what lets a re-decided record be identical to one from a fresh run.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::decision::{Reason, Verdict};
use crate::stage::LabeledSpan;
use crate::stages::Evidence;
use crate::stats::Destination;

/// One line of `audit/S`: a flagged document and every reason.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AuditRecord<'a> {
    pub id: Cow<'a, str>,
    pub shard: Cow<'a, str>,
    /// 1-based line number in the shard.
    pub line: u64,
    /// Byte offset of the line in the decompressed shard (0 for a Parquet row).
    pub offset: u64,
    /// A Parquet shard's row: its index in the file (0-based; `line` is then `row + 1` and
    /// `offset` 0) and the row group holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_group: Option<u64>,
    pub decision: Destination,
    pub escalated: bool,
    pub reasons: Vec<Reason>,
    pub stages: Vec<StageEntry<'a>>,
    /// A person's decision that moved the document out of review (`sluice review apply`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<ReviewCitation>,
    pub config_hash: Cow<'a, str>,
    pub sluice_version: Cow<'a, str>,
}

/// The reviewers' decision on a document the cascade sent to review, as `sluice review apply`
/// cites it: where it went and the decision records behind it (`reviews/FILE:LINE`), which a
/// later `rethreshold` of that output keeps as they are.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ReviewCitation {
    /// `kept` or `dropped`.
    pub decision: Destination,
    /// The reviewers who decided so.
    pub by: Vec<String>,
    /// Each decision record: `reviews/NAME.jsonl:LINE`.
    pub decisions: Vec<String>,
}

/// One stage's entry of an audit record: `{"stage", "type", "outcome", <evidence fields>}`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StageEntry<'a> {
    pub stage: Cow<'a, str>,
    #[serde(flatten)]
    pub evidence: Evidence,
}

impl<'a> AuditRecord<'a> {
    /// The record of a document's verdict (its evidence moved in): what the pipeline writes for
    /// a flagged document, and `rethreshold` for a re-decided one. `stage_id(i)` names stage `i`.
    #[allow(clippy::too_many_arguments)]
    pub fn of_verdict(
        id: &'a str,
        shard: &'a str,
        line: u64,
        offset: u64,
        verdict: Verdict,
        stage_id: impl Fn(usize) -> &'a str,
        config_hash: &'a str,
    ) -> AuditRecord<'a> {
        AuditRecord {
            id: Cow::Borrowed(id),
            shard: Cow::Borrowed(shard),
            line,
            offset,
            row: None,
            row_group: None,
            decision: verdict.destination,
            escalated: verdict.escalated,
            reasons: verdict.reasons(&stage_id),
            stages: verdict
                .evidence
                .into_iter()
                .map(|(i, evidence)| StageEntry {
                    stage: Cow::Borrowed(stage_id(i)),
                    evidence,
                })
                .collect(),
            review: None,
            config_hash: Cow::Borrowed(config_hash),
            sluice_version: Cow::Borrowed(crate::VERSION),
        }
    }

    /// The stage entry of stage `id`, if the record has one.
    pub fn entry(&self, id: &str) -> Option<&StageEntry<'a>> {
        self.stages.iter().find(|s| s.stage == id)
    }

    /// Every span of every stage that decided, in text order: rule spans labeled `stage/rule`,
    /// term spans by their term. A suppressed stage's spans (`unless` / `only_if`) are left
    /// out: it decided nothing, and its evidence still holds them.
    pub fn spans(&self) -> Vec<LabeledSpan> {
        let mut out = Vec::new();
        for entry in self
            .stages
            .iter()
            .filter(|e| e.evidence.suppressed().is_none())
        {
            entry.evidence.spans(&entry.stage, &mut out);
        }
        out.sort_by_key(|s| (s.start, s.end));
        out
    }

    /// The first model score among the stages, when a model scored the document.
    pub fn score(&self) -> Option<f32> {
        self.stages.iter().find_map(|s| s.evidence.score())
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

    /// Whether some stage's evidence has a key of `family` (`rules`, `terms`, `categories`,
    /// `languages`) that `key` accepts.
    pub fn has_key(&self, family: &str, key: impl Fn(&str) -> bool) -> bool {
        self.keys(family).into_iter().any(key)
    }

    /// Every stage's keys of `family`, in stage order (see [`crate::stage::StageEvidence::keys`]).
    pub fn keys(&self, family: &str) -> Vec<&str> {
        self.stages
            .iter()
            .flat_map(|s| s.evidence.keys(family))
            .collect()
    }
}

/// One line of `errors/S`: enough to find and recover the line (a Parquet row: its `row`, to be
/// read from the input, which sluice leaves unchanged).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ErrorRecord<'a> {
    pub shard: Cow<'a, str>,
    pub line: u64,
    pub offset: u64,
    /// A Parquet shard's row: its index in the file (0-based; `line` is then `row + 1` and
    /// `offset` 0) and the row group holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_group: Option<u64>,
    /// Length of the line without its `'\n'` (of a Parquet row: its text's, when it has one).
    pub bytes: u64,
    pub kind: Cow<'a, str>,
    pub error: Cow<'a, str>,
    /// The line itself when it is valid UTF-8 and not over the size limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<Cow<'a, str>>,
    /// The line, base64-encoded, when it is not valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_base64: Option<String>,
    /// A line over `input.max_line_bytes`: the file (relative to the output directory) that holds
    /// it whole, and its line number there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spilled_to: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spill_line: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_to_the_same_bytes() {
        let line = r#"{"id":"h1","shard":"hazard.jsonl.zst","line":1,"offset":0,"decision":"review","escalated":true,"reasons":[{"stage":"hazard-terms","action":"escalate"}],"stages":[{"stage":"keyword-rules","type":"rules","outcome":"pass","rules":[{"id":"x","action":"drop","fired":false,"matches":1,"min_matches":2,"spans":[{"start":0,"end":3}]}]},{"stage":"hazard-terms","type":"terms","outcome":"escalate","distinct":3,"total":3,"weight":3.700000047683716,"words":9,"density":333.3333333333333,"categories":{"chem":3},"terms":[{"term":"sarin","category":"chem","count":1}],"spans":[{"term":"sarin","start":0,"end":5}],"spans_truncated":false,"thresholds":[{"name":"min_distinct","required":2.0,"actual":3.0,"crossed":true}]},{"stage":"model","type":"classifier","outcome":"review","score":0.61234564,"windows":[0.61234564,0.1],"tokens":12,"drop_threshold":0.8,"review_threshold":0.5,"model_hash":"ab"}],"config_hash":"sha256:44","sluice_version":"0.1.0"}"#;
        let record: AuditRecord = serde_json::from_str(line).unwrap();
        assert!(matches!(record.stages[0].evidence, Evidence::Rules(_)));
        assert!(matches!(record.stages[1].evidence, Evidence::Terms(_)));
        assert_eq!(record.score(), Some(0.61234564));
        assert_eq!(serde_json::to_string(&record).unwrap(), line);
        assert_eq!(record.reason_keys(), ["hazard-terms"]);
        assert_eq!(record.spans().len(), 2);
        assert!(record.has_key("terms", |t| t == "sarin"));
        assert!(record.has_key("rules", |r| r == "x"));
        assert!(!record.has_key("categories", |c| c == "bio"));
    }

    #[test]
    fn evidence_of_an_unknown_stage_type_is_a_parse_error_naming_it() {
        let line = r#"{"id":"a","shard":"s","line":1,"offset":0,"decision":"kept","escalated":false,"reasons":[],"stages":[{"stage":"x","type":"telepathy","outcome":"pass"}],"config_hash":"h","sluice_version":"0"}"#;
        let err = serde_json::from_str::<AuditRecord>(line)
            .unwrap_err()
            .to_string();
        assert!(err.contains("telepathy"), "{err}");
    }
}
