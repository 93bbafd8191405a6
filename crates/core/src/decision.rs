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
//! A stage's `unless` / `only_if` keys suppress its outcome on a document (one of its `unless`
//! stages fired earlier, or one of its `only_if` stages did not): its evidence is recorded with
//! outcome `pass` and what suppressed it, and it decides nothing: it neither moves the document
//! nor, for a classifier, settles an earlier escalation, whether it scored drop, review or pass
//! (the document stays in review, as if the classifier had not judged it). A suppressed stage has
//! not fired, for the `unless` / `only_if` of later stages.
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

    /// Stage `index` (configured by `stages[index]`) looked at the document and found
    /// `evidence`, already decided: the cascade's combine rule (see the module docs). When one
    /// of the stage's `unless` stages fired earlier on the document, its outcome is suppressed
    /// first (recorded, `pass`), as when one of its `only_if` stages did not fire: done here,
    /// once, so that runs, `eval` and `rethreshold` agree.
    pub fn record(&mut self, index: usize, stages: &[StageConfig], evidence: Option<Evidence>) {
        self.reached |= 1 << index;
        let Some(mut evidence) = evidence else { return };
        let config = &stages[index];
        // A pass decides nothing, except from a stage that settles escalations (it keeps them).
        if evidence.outcome() != Outcome::Pass || config.settles_escalation() {
            let fired = |id: &str| {
                self.evidence
                    .iter()
                    .any(|(i, e)| stages[*i].id() == id && e.outcome() != Outcome::Pass)
            };
            let by: Vec<String> = config
                .unless()
                .iter()
                .filter(|id| fired(id))
                .cloned()
                .collect();
            let missing: Vec<String> = config
                .only_if()
                .iter()
                .filter(|id| !fired(id))
                .cloned()
                .collect();
            if !by.is_empty() || !missing.is_empty() {
                evidence.suppress(by, missing);
            }
        }
        // A suppressed stage decides nothing, not even by passing: a suppressed classifier
        // leaves an earlier escalation in review instead of settling it back to kept.
        if evidence.suppressed().is_some() {
            self.evidence.push((index, evidence));
            return;
        }
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
            stats.suppressed += u64::from(evidence.suppressed().is_some());
            evidence.count(stats);
            count_roles(evidence, stats);
        }
        self.flow_mut(verdict.destination).add(line_bytes);
        self.escalated += u64::from(verdict.escalated);
        self.audited += u64::from(audited);
    }
}

/// Counter family `roles` of a document made of roled parts: per role, the document if the
/// evidence was found in a part of that role (its recorded spans say where; evidence without
/// spans, a model score, was found in every role it judged), with the spans there as hits.
fn count_roles(evidence: &Evidence, stats: &mut crate::stage::StageStats) {
    let roles = evidence.roles();
    if roles.is_empty() {
        return;
    }
    let mut spans = Vec::new();
    evidence.spans("", &mut spans);
    for role in roles {
        let hits = spans
            .iter()
            .filter(|s| s.role.as_deref() == Some(role.as_str()))
            .count() as u64;
        if hits > 0 || spans.is_empty() {
            stats.count_key("roles", role, hits, evidence.outcome());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::classifier::{ClassifierConfig, ClassifierEvidence};
    use crate::stages::rules::{RuleHit, RulesEvidence};
    use crate::stages::Judged;

    fn rules_stage(id: &str) -> StageConfig {
        StageConfig::Rules(toml::from_str(&format!("id = '{id}'")).unwrap())
    }

    fn classifier(mode: &str) -> StageConfig {
        StageConfig::Classifier(
            toml::from_str::<ClassifierConfig>(&format!(
                "id = 'model'\nmodel = 'm'\nmode = '{mode}'\ndrop_threshold = 0.8\nreview_threshold = 0.5"
            ))
            .unwrap()
            .into(),
        )
    }

    fn rules_evidence(outcome: Outcome, rule: &str) -> Evidence {
        Evidence::Rules(Judged {
            outcome,
            roles: Vec::new(),
            suppressed: None,
            evidence: RulesEvidence {
                rules: vec![RuleHit {
                    id: rule.into(),
                    action: Action::Drop,
                    fired: outcome != Outcome::Pass,
                    matches: 1,
                    min_matches: 1,
                    spans: vec![],
                }],
            },
        })
    }

    fn scored(outcome: Outcome) -> Evidence {
        Evidence::Classifier(Judged {
            outcome,
            roles: Vec::new(),
            suppressed: None,
            evidence: ClassifierEvidence {
                score: Some(0.1),
                windows: vec![0.1],
                tokens: 3,
                drop_threshold: 0.8,
                review_threshold: 0.5,
                model_hash: "h".into(),
                error: None,
            },
        })
    }

    #[test]
    fn the_first_drop_wins_and_ends_the_cascade() {
        let (a, b) = (rules_stage("a"), rules_stage("b"));
        let mut v = Verdict::new();
        assert!(v.wants(&a));
        v.record(
            0,
            &[a.clone(), b.clone()],
            Some(rules_evidence(Outcome::Drop, "x")),
        );
        assert_eq!(v.destination, Destination::Dropped);
        // No stage sees a dropped document.
        assert!(!v.wants(&b));
        assert!(v.reached(0) && !v.reached(1));
    }

    #[test]
    fn escalation_goes_to_review_unless_a_judge_settles_it() {
        let (terms, model) = (rules_stage("t"), classifier("escalated"));
        let stages = [terms.clone(), model.clone(), rules_stage("t2")];
        let mut v = Verdict::new();
        assert!(
            !v.wants(&model),
            "the default mode sees escalated documents only"
        );
        v.record(0, &stages, Some(rules_evidence(Outcome::Escalate, "x")));
        assert_eq!((v.destination, v.escalated), (Destination::Review, true));
        assert!(v.wants(&model));
        // The classifier's pass keeps it; a text stage's pass would not have.
        let mut settled = v.clone();
        settled.record(1, &stages, Some(scored(Outcome::Pass)));
        assert_eq!(
            (settled.destination, settled.escalated),
            (Destination::Kept, true)
        );
        let mut kept_for_review = v.clone();
        kept_for_review.record(2, &stages, Some(rules_evidence(Outcome::Pass, "y")));
        assert_eq!(kept_for_review.destination, Destination::Review);
        // Review and drop from the judge.
        let mut review = v.clone();
        review.record(1, &stages, Some(scored(Outcome::Review)));
        assert_eq!(review.destination, Destination::Review);
        // mode = "all" sees what was not escalated too.
        assert!(Verdict::new().wants(&classifier("all")));
    }

    #[test]
    fn audit_scope_reasons_and_counting() {
        let a = rules_stage("a");
        let mut passed = Verdict::new();
        passed.record(
            0,
            std::slice::from_ref(&a),
            Some(rules_evidence(Outcome::Pass, "x")),
        );
        assert!(!passed.audited(AuditScope::Flagged));
        assert!(passed.audited(AuditScope::Matched));
        assert!(!Verdict::new().audited(AuditScope::Matched));
        let mut dropped = Verdict::new();
        dropped.record(
            0,
            std::slice::from_ref(&a),
            Some(rules_evidence(Outcome::Drop, "x")),
        );
        let reasons = dropped.reasons(&|_| "a");
        assert_eq!(
            reasons,
            [Reason {
                stage: "a".into(),
                rule: Some("x".into()),
                action: Outcome::Drop
            }]
        );
        // Counting: reached stages, outcomes, per-key counts, destination.
        let stages = vec![
            crate::stage::StageStats::new("a", "rules"),
            crate::stage::StageStats::new("b", "rules"),
        ];
        let mut stats = ShardStats::new(&stages);
        stats.count_verdict(&dropped, 10, 21, true);
        stats.count_verdict(&passed, 5, 11, false);
        let a_stats = &stats.stages[0];
        assert_eq!(
            (
                a_stats.evaluated,
                a_stats.text_bytes,
                a_stats.matched,
                a_stats.dropped,
                a_stats.passed
            ),
            (2, 15, 2, 1, 1)
        );
        assert_eq!(a_stats.keys.get("rules").unwrap()["x"].docs, 2);
        assert_eq!(stats.stages[1].evaluated, 0);
        assert_eq!((stats.dropped.documents, stats.dropped.bytes), (1, 21));
        assert_eq!((stats.kept.documents, stats.audited), (1, 1));
    }

    #[test]
    fn an_unless_stage_that_fired_suppresses_the_outcome_but_keeps_the_evidence() {
        let refusal = StageConfig::Rules(toml::from_str("id = 'refusal'").unwrap());
        let hazard =
            StageConfig::Rules(toml::from_str("id = 'hazard'\nunless = ['refusal']").unwrap());
        assert_eq!(hazard.unless(), ["refusal"]);
        let stages = [refusal, hazard];
        // The refusal fired (tag): the hazard's drop does not apply, and says why.
        let mut v = Verdict::new();
        v.record(0, &stages, Some(rules_evidence(Outcome::Tag, "sorry")));
        v.record(1, &stages, Some(rules_evidence(Outcome::Drop, "sarin")));
        assert_eq!(v.destination, Destination::Kept);
        let hazard = v.evidence_of(1).unwrap();
        assert_eq!(hazard.outcome(), Outcome::Pass);
        let suppressed = hazard.suppressed().unwrap();
        assert_eq!(
            (suppressed.outcome, &suppressed.by[..]),
            (Outcome::Drop, &["refusal".to_string()][..])
        );
        assert_eq!(
            v.reasons(&|i| stages[i].id()).len(),
            1,
            "only the refusal's reason"
        );
        // Counted: the stage passed it, suppressed.
        let mut stats = ShardStats::new(&[
            crate::stage::StageStats::new("refusal", "rules"),
            crate::stage::StageStats::new("hazard", "rules"),
        ]);
        stats.count_verdict(&v, 1, 2, true);
        assert_eq!((stats.stages[1].passed, stats.stages[1].suppressed), (1, 1));
        // A refusal that found something below its thresholds (pass) suppresses nothing.
        let mut v = Verdict::new();
        v.record(0, &stages, Some(rules_evidence(Outcome::Pass, "sorry")));
        v.record(1, &stages, Some(rules_evidence(Outcome::Drop, "sarin")));
        assert_eq!(v.destination, Destination::Dropped);
        assert!(v.evidence_of(1).unwrap().suppressed().is_none());
        // Deciding again (rethreshold) clears the mark; recording applies it anew.
        let mut again = v.evidence_of(1).unwrap().clone();
        again.suppress(vec!["refusal".into()], vec![]);
        assert!(stages[1].decide(&mut again));
        assert_eq!((again.outcome(), again.suppressed()), (Outcome::Drop, None));
    }

    #[test]
    fn a_suppressed_classifier_does_not_settle_an_escalation() {
        let mut model = classifier("escalated");
        if let StageConfig::Classifier(staged) = &mut model {
            staged.unless = vec!["refusal".into()];
        }
        let stages = [rules_stage("refusal"), rules_stage("terms"), model];
        let judge = |refusal: Outcome, score: Outcome| {
            let mut v = Verdict::new();
            v.record(0, &stages, Some(rules_evidence(refusal, "sorry")));
            v.record(1, &stages, Some(rules_evidence(Outcome::Escalate, "sarin")));
            v.record(2, &stages, Some(scored(score)));
            v
        };
        // Not suppressed: the classifier settles the escalation, as always.
        assert_eq!(
            judge(Outcome::Pass, Outcome::Pass).destination,
            Destination::Kept
        );
        assert_eq!(
            judge(Outcome::Pass, Outcome::Drop).destination,
            Destination::Dropped
        );
        // Suppressed by the refusal: neither its pass nor its drop decides; the escalation stands.
        for score in [Outcome::Pass, Outcome::Review, Outcome::Drop] {
            let v = judge(Outcome::Tag, score);
            assert_eq!(
                (v.destination, v.escalated),
                (Destination::Review, true),
                "{score:?}"
            );
            let model = v.evidence_of(2).unwrap();
            assert_eq!(model.outcome(), Outcome::Pass);
            let why = model.suppressed().expect("marked");
            assert_eq!(
                (why.outcome, &why.by[..]),
                (score, &["refusal".to_string()][..])
            );
        }
        // A rules stage's pass is not marked: it decides nothing anyway.
        let stages = [rules_stage("refusal"), {
            StageConfig::Rules(toml::from_str("id = 'h'\nunless = ['refusal']").unwrap())
        }];
        let mut v = Verdict::new();
        v.record(0, &stages, Some(rules_evidence(Outcome::Tag, "sorry")));
        v.record(1, &stages, Some(rules_evidence(Outcome::Pass, "x")));
        assert!(v.evidence_of(1).unwrap().suppressed().is_none());
    }

    #[test]
    fn an_only_if_stage_applies_only_after_its_stages_fired() {
        let stage = |t: &str| StageConfig::Rules(toml::from_str(t).unwrap());
        let stages = [
            stage("id = 'request'"),
            stage("id = 'refusal'"),
            stage("id = 'answered'\nonly_if = ['request']\nunless = ['refusal']"),
        ];
        let judge = |request: Outcome, refusal: Outcome| {
            let mut v = Verdict::new();
            v.record(0, &stages, Some(rules_evidence(request, "hazard")));
            v.record(1, &stages, Some(rules_evidence(refusal, "sorry")));
            v.record(2, &stages, Some(rules_evidence(Outcome::Review, "answer")));
            v
        };
        // A hazardous request answered: review.
        assert_eq!(
            judge(Outcome::Tag, Outcome::Pass).destination,
            Destination::Review
        );
        // Refused: kept, suppressed by the refusal.
        let refused = judge(Outcome::Tag, Outcome::Tag);
        assert_eq!(refused.destination, Destination::Kept);
        assert_eq!(
            refused.evidence_of(2).unwrap().suppressed().unwrap().by,
            ["refusal"]
        );
        // No hazardous request: kept, the request is missing.
        let benign = judge(Outcome::Pass, Outcome::Pass);
        assert_eq!(benign.destination, Destination::Kept);
        let why = benign.evidence_of(2).unwrap().suppressed().unwrap();
        assert_eq!(
            (why.by.len(), &why.missing[..]),
            (0, &["request".to_string()][..])
        );
    }
}
