//! The cascade's decision, written once: outcomes, how they combine into a document's verdict,
//! and how a verdict is counted. `run`, `eval` and `rethreshold` all decide through here.
//!
//! A stage never picks a document's destination. It measures evidence, its config decides an
//! [`Outcome`] from it ([`crate::stage::StageKind::decide`]), and [`Verdict::record`] combines the
//! outcomes in cascade order:
//!
//! * `drop` wins and ends the cascade: later stages never see the document;
//! * `escalate` sends the document to review, unless a later stage that settles escalations (the
//!   classifier) judges it: then that stage's outcome decides (`drop`, `review`, or `pass` = kept);
//! * `review` sends it to review; `tag` and `pass` only record.
//!
//! Which stages see a document is the stages' own business ([`crate::stage::StageKind::wants`]:
//! the classifier, in its default mode, only escalated documents), asked through
//! [`Verdict::wants`], which never lets a stage see a dropped document.

use serde::{Deserialize, Serialize};

use crate::config::AuditScope;
use crate::stages::{Evidence, StageConfig};
use crate::stats::{Destination, ShardStats};

/// What a stage wants done with a document, ordered by strength.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Something was found, but no threshold was crossed (audited only with
    /// `output.audit = "matched"`).
    Pass,
    Tag,
    Escalate,
    /// The classifier's middle band: a person decides.
    Review,
    Drop,
}

/// The action a rule, term or language stage takes when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Drop,
    Escalate,
    Tag,
    /// Straight to review, for a person (without escalating to a classifier).
    Review,
}

impl From<Action> for Outcome {
    fn from(action: Action) -> Outcome {
        match action {
            Action::Drop => Outcome::Drop,
            Action::Escalate => Outcome::Escalate,
            Action::Tag => Outcome::Tag,
            Action::Review => Outcome::Review,
        }
    }
}

/// `action` when `fired`, else `pass`.
pub fn fire(fired: bool, action: Action) -> Outcome {
    if fired {
        Outcome::from(action)
    } else {
        Outcome::Pass
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

/// A document's verdict so far, and the evidence behind it.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub destination: Destination,
    /// Whether some stage escalated it.
    pub escalated: bool,
    /// `(stage index, evidence)` of every stage that found something, in cascade order.
    pub evidence: Vec<(usize, Evidence)>,
    /// Bit `i`: stage `i` looked at the document.
    pub reached: u64,
}

impl Default for Verdict {
    fn default() -> Self {
        Verdict::new()
    }
}

impl Verdict {
    /// Before any stage: kept.
    pub fn new() -> Verdict {
        Verdict {
            destination: Destination::Kept,
            escalated: false,
            evidence: Vec::new(),
            reached: 0,
        }
    }

    pub fn is_dropped(&self) -> bool {
        self.destination == Destination::Dropped
    }

    /// Whether the stage `config` looks at the document next: never after a drop, otherwise as
    /// the stage says.
    pub fn wants(&self, config: &StageConfig) -> bool {
        !self.is_dropped() && config.wants(self)
    }

    /// Stage `index` (configured by `config`) looked at the document and found `evidence`,
    /// already decided: the cascade's combine rule (see the module docs).
    pub fn record(&mut self, index: usize, config: &StageConfig, evidence: Option<Evidence>) {
        self.reached |= 1 << index;
        let Some(evidence) = evidence else { return };
        match evidence.outcome() {
            Outcome::Drop => self.destination = Destination::Dropped,
            Outcome::Escalate => {
                self.escalated = true;
                self.destination = Destination::Review;
            }
            Outcome::Review => self.destination = Destination::Review,
            Outcome::Tag | Outcome::Pass => {
                if config.settles_escalation() {
                    self.destination = Destination::Kept;
                }
            }
        }
        self.evidence.push((index, evidence));
    }

    /// Whether stage `index` looked at the document.
    pub fn reached(&self, index: usize) -> bool {
        self.reached & (1 << index) != 0
    }

    /// The evidence of stage `index`, if it found something.
    pub fn evidence_of(&self, index: usize) -> Option<&Evidence> {
        self.evidence
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, e)| e)
    }

    /// Whether the document gets an audit record under `scope`.
    pub fn audited(&self, scope: AuditScope) -> bool {
        match scope {
            AuditScope::Flagged => self
                .evidence
                .iter()
                .any(|(_, e)| e.outcome() != Outcome::Pass),
            AuditScope::Matched => !self.evidence.is_empty(),
        }
    }

    /// Every reason of the verdict, in cascade order. `stage_id(i)` names stage `i`.
    pub fn reasons<'a>(&self, stage_id: &impl Fn(usize) -> &'a str) -> Vec<Reason> {
        let mut out = Vec::new();
        for (i, e) in &self.evidence {
            e.reasons(stage_id(*i), &mut out);
        }
        out
    }
}

impl ShardStats {
    /// Counts one document's verdict: the stages it reached (`evaluated`, `text_bytes`), each
    /// stage's outcome and per-key counts, its destination (`line_bytes` with the newline), and
    /// whether it was escalated and audited. `input` is counted by the reader of the line.
    pub fn count_verdict(
        &mut self,
        verdict: &Verdict,
        text_bytes: u64,
        line_bytes: u64,
        audited: bool,
    ) {
        let mut reached = verdict.reached;
        while reached != 0 {
            let i = reached.trailing_zeros() as usize;
            reached &= reached - 1;
            let stats = &mut self.stages[i];
            stats.evaluated += 1;
            stats.text_bytes += text_bytes;
        }
        for (i, evidence) in &verdict.evidence {
            let stats = &mut self.stages[*i];
            stats.count_outcome(evidence.outcome());
            evidence.count(stats);
        }
        self.flow_mut(verdict.destination).add(line_bytes);
        self.escalated += u64::from(verdict.escalated);
        self.audited += u64::from(audited);
    }
}
