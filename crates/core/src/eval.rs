//! Measuring a cascade on labeled data (`sluice eval`).
//!
//! Every labeled document goes through the same [`Cascade`] a run builds, deciding through the
//! same code ([`Cascade::judge_all`]: per-document stages, then the classifier in batches), so the
//! verdicts are those `sluice run` would give. What is
//! measured, with a document's label as the truth ("positive" = the `--positive` label):
//!
//! * **Per stage**, over all documents: a text stage *flags* a document it drops or escalates;
//!   the classifier flags one it drops (and, unless review counts as negative, one it sends to
//!   review). Precision, recall (of all positives), F1 and false-positive rate of that flag, and
//!   the fractions of documents each stage escalates and drops.
//! * **The whole cascade**: a document is flagged when it ends in `dropped/` (or `review/`).
//! * **The classifier's score**: ROC AUC over the documents it scored. In `mode = "escalated"`
//!   the others have no score, so this AUC describes the model on what the prefilter sends it,
//!   not on the corpus; with `score_all` every document is also scored (without changing any
//!   verdict) and a second AUC over all of them shows the model alone.
//! * **Recall lost by the prefilter**: positives that the text stages neither dropped nor sent to
//!   the classifier, which end up kept whatever the model would have said, over all positives.
//! * **A threshold sweep**: for each threshold, what the cascade and the classifier alone would
//!   flag if documents scoring at or above it were dropped.
//!
//! The labeled set is held in memory (texts and per-document outcomes): evaluation sets are
//! thousands of documents, not corpora.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::time::Duration;

use serde::Serialize;
use sluice_classifier::metrics::{roc_auc, BinaryMetrics, Confusion};

use crate::decision::{Outcome, Verdict};
use crate::document::{Document, FieldPath};
use crate::labeled::read_documents;
use crate::pipeline::Cascade;
use crate::stages::classifier::{ClassifierMode, ClassifierStage, OnError};
use crate::stages::StageConfig;
use crate::stats::plural;
use crate::stats::Destination;

/// What can stop an evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A line of the labeled data is unusable.
    #[error("{file}:{line}: {message}")]
    Data {
        /// The data file.
        file: String,
        /// 1-based line number (0: the file as a whole).
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// The options do not fit the data.
    #[error("{0}")]
    Options(String),
    /// The classifier failed and its `on_error` is `fail`.
    #[error("classifier {stage}: {message}")]
    Classifier {
        /// The stage id.
        stage: String,
        /// The model's error.
        message: String,
    },
}

/// How to evaluate.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Field holding the label (dots descend into objects).
    pub label_field: String,
    /// The label that counts as positive; `None`: see [`positive_label`].
    pub positive: Option<String>,
    /// Whether `review` (the classifier's middle band, or escalation without a classifier)
    /// counts as flagged.
    pub review_is_positive: bool,
    /// Also score documents the classifier would not see, for the AUC and the sweep.
    pub score_all: bool,
    /// Thresholds of the sweep; `None`: 0.05 to 0.95 by 0.05 (or 19 steps across the observed
    /// scores when they leave `[0, 1]`, as regression heads' do).
    pub thresholds: Option<Vec<f64>>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            label_field: "label".into(),
            positive: None,
            review_is_positive: true,
            score_all: false,
            thresholds: None,
        }
    }
}

/// One labeled document after the cascade.
#[derive(Debug, Clone, PartialEq)]
pub struct DocOutcome {
    /// Truth.
    pub positive: bool,
    /// Each stage's outcome (`None`: no evidence, or not reached).
    pub stages: Vec<Option<Outcome>>,
    /// Whether each stage looked at it.
    pub reached: Vec<bool>,
    /// Where the stages before the classifier send it.
    pub before_classifier: Destination,
    /// Whether the classifier stage judged it (scored, or failed on it).
    pub judged: bool,
    /// The classifier's outcome for it, when judged.
    pub classifier: Option<Outcome>,
    /// The score it used, when judged and the model did not fail.
    pub score: Option<f32>,
    /// With `score_all`: the model's score whether or not the stage would have judged it.
    pub score_all: Option<f32>,
    /// The final destination.
    pub destination: Destination,
}

/// A stage's line of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageEval {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Documents the stage looked at.
    pub evaluated: u64,
    pub escalated: u64,
    pub dropped: u64,
    /// The classifier's review band.
    pub reviewed: u64,
    pub tagged: u64,
    /// `escalated / documents`.
    pub escalated_fraction: f64,
    /// `dropped / documents`.
    pub dropped_fraction: f64,
    /// Flagged (see the module docs) against truth, over all documents.
    pub metrics: BinaryMetrics,
}

/// The classifier's part of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassifierEval {
    pub id: String,
    pub mode: ClassifierMode,
    pub drop_threshold: f64,
    pub review_threshold: f64,
    /// Documents it judged.
    pub judged: u64,
    /// Judged documents that are positive.
    pub judged_positives: u64,
    /// Documents it failed on (handled by `on_error`).
    pub failed: u64,
    /// ROC AUC over the documents it scored.
    pub roc_auc: Option<f64>,
    /// What `roc_auc` is computed on.
    pub roc_auc_scope: String,
    /// With `score_all`: ROC AUC over every document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roc_auc_all_documents: Option<f64>,
    /// Its flag against truth on the documents it scored.
    pub metrics_on_judged: BinaryMetrics,
    /// Positives dropped by the text stages (caught before the classifier).
    pub positives_dropped_before: u64,
    /// Positives the text stages neither dropped nor sent to the classifier: kept unseen.
    pub positives_missed_by_prefilter: u64,
    /// `positives_missed_by_prefilter / positives`.
    pub recall_lost_by_prefilter: Option<f64>,
}

/// The cascade as a whole.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CascadeEval {
    pub kept: u64,
    pub dropped: u64,
    pub review: u64,
    pub metrics: BinaryMetrics,
}

/// One threshold of the sweep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepRow {
    pub threshold: f64,
    /// Text-stage drops plus classifier scores at or above the threshold (and failures that
    /// `on_error` drops or reviews), over all documents.
    pub cascade: BinaryMetrics,
    /// The classifier alone, on the documents it judged.
    pub classifier: BinaryMetrics,
    /// With `score_all`: the classifier alone on every document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classifier_all_documents: Option<BinaryMetrics>,
}

/// Everything `sluice eval` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    pub data: String,
    pub config_hash: String,
    pub documents: u64,
    pub positives: u64,
    pub negatives: u64,
    pub positive_label: String,
    /// Documents per label.
    pub labels: BTreeMap<String, u64>,
    pub review_counts_as_positive: bool,
    pub stages: Vec<StageEval>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classifier: Option<ClassifierEval>,
    pub cascade: CascadeEval,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sweep: Vec<SweepRow>,
}

/// Documents scored per classifier call.
const SCORE_BATCH: usize = 256;

/// The classifier stage of a cascade: its index, settings and runtime (`sluice eval` measures one).
fn classifier_of(
    cascade: &Cascade,
) -> Result<Option<(usize, ClassifierSetup, &ClassifierStage)>, EvalError> {
    let mut found = None;
    for i in 0..cascade.stage_count() {
        let (StageConfig::Classifier(config), Some(stage)) = (
            cascade.stage_config(i),
            cascade.stage(i).downcast::<ClassifierStage>(),
        ) else {
            continue;
        };
        if found.is_some() {
            return Err(EvalError::Options(
                "sluice eval measures one classifier stage; this config has several".into(),
            ));
        }
        let setup = ClassifierSetup {
            mode: config.mode,
            drop_threshold: config.drop_threshold,
            review_threshold: config.review_threshold,
            on_error: config.on_error,
        };
        found = Some((i, setup, stage));
    }
    Ok(found)
}

/// The positive label: the one given; else the classifier's score label when the data has it;
/// else `1` or `true` when the labels are 0/1 or false/true.
pub fn positive_label(
    labels: &BTreeMap<String, u64>,
    given: Option<&str>,
    score_label: Option<&str>,
) -> Result<String, EvalError> {
    let list = || labels.keys().cloned().collect::<Vec<_>>().join(", ");
    if let Some(given) = given {
        return if labels.contains_key(given) {
            Ok(given.to_string())
        } else {
            Err(EvalError::Options(format!(
                "--positive {given:?} is not a label of the data (labels: {})",
                list()
            )))
        };
    }
    if let Some(label) = score_label.filter(|l| labels.contains_key(*l)) {
        return Ok(label.to_string());
    }
    for (negative, positive) in [("0", "1"), ("false", "true")] {
        if labels.keys().all(|k| k == negative || k == positive) && labels.contains_key(positive) {
            return Ok(positive.to_string());
        }
    }
    Err(EvalError::Options(format!(
        "which label is positive? pass --positive (labels: {})",
        list()
    )))
}

/// Runs `cascade` on the labeled JSONL in `reader` and measures it.
pub fn evaluate(
    cascade: &Cascade,
    reader: impl BufRead,
    source: &str,
    options: &EvalOptions,
) -> Result<EvalReport, EvalError> {
    // 1. Read every labeled document, the way `sluice train` reads its data (one parse per line).
    let label_field = FieldPath::parse(&options.label_field).map_err(|_| {
        EvalError::Options(format!(
            "--label-field {:?} must be a non-empty dotted path",
            options.label_field
        ))
    })?;
    let examples =
        read_documents(reader, source, &cascade.extractor, &label_field).map_err(|e| {
            EvalError::Data {
                file: e.file,
                line: e.line,
                message: e.message,
            }
        })?;
    let (documents, labels): (Vec<Document<'static>>, Vec<String>) = examples.into_iter().unzip();
    let mut label_counts: BTreeMap<String, u64> = BTreeMap::new();
    for l in &labels {
        *label_counts.entry(l.clone()).or_default() += 1;
    }
    let classifier = classifier_of(cascade)?;
    let score_label = classifier.as_ref().and_then(|(_, _, c)| c.score_label());
    let positive = positive_label(&label_counts, options.positive.as_deref(), score_label)?;

    // 2. The cascade, exactly as in a run (the batched classifier in calls of SCORE_BATCH).
    let mut times = vec![Duration::ZERO; cascade.stage_count()];
    let mut scratch = cascade.new_scratch();
    let mut judged: Vec<(Document, Verdict)> = documents
        .into_iter()
        .map(|doc| (doc, Verdict::new()))
        .collect();
    for group in judged.chunks_mut(SCORE_BATCH) {
        cascade
            .judge_all(group, &mut scratch, &mut times)
            .map_err(|e| EvalError::Classifier {
                stage: classifier
                    .as_ref()
                    .map_or("?", |(i, _, _)| cascade.stage_id(*i))
                    .to_string(),
                message: e.message,
            })?;
    }
    let index = classifier.as_ref().map(|(i, _, _)| *i);
    let mut docs: Vec<DocOutcome> = judged
        .iter()
        .zip(&labels)
        .map(|((_, verdict), label)| {
            let stages: Vec<Option<Outcome>> = (0..cascade.stage_count())
                .map(|i| verdict.evidence_of(i).map(|e| e.outcome()))
                .collect();
            // The verdict of the stages before the classifier, by the cascade's own rule.
            let mut before = Verdict::new();
            for (i, e) in &verdict.evidence {
                if index.is_none_or(|c| *i < c) {
                    before.record(*i, cascade.stage_configs(), Some(e.clone()));
                }
            }
            let judged = index.is_some_and(|c| verdict.reached(c));
            DocOutcome {
                positive: *label == positive,
                reached: (0..cascade.stage_count())
                    .map(|i| verdict.reached(i))
                    .collect(),
                before_classifier: before.destination,
                judged,
                classifier: index.and_then(|c| stages[c]),
                score: index
                    .and_then(|c| verdict.evidence_of(c))
                    .and_then(|e| e.score()),
                score_all: None,
                destination: verdict.destination,
                stages,
            }
        })
        .collect();

    // 3. With score_all, the model's score of every document, verdicts unchanged.
    if let (true, Some((i, _, _))) = (options.score_all, &classifier) {
        let stage = cascade.stage(*i);
        for (batch, outcomes) in judged.chunks(SCORE_BATCH).zip(docs.chunks_mut(SCORE_BATCH)) {
            // What the stage would judge: a role-limited one, the parts of its roles.
            let texts: Vec<Option<std::borrow::Cow<str>>> = batch
                .iter()
                .map(|(doc, _)| cascade.stage_text(*i, doc))
                .collect();
            let batch: Vec<&str> = texts.iter().flatten().map(|t| &**t).collect();
            let scored = stage.measure_batch(&batch, &mut scratch[*i]).map_err(|e| {
                EvalError::Classifier {
                    stage: cascade.stage_id(*i).to_string(),
                    message: e.message,
                }
            })?;
            let mut scored = scored.into_iter();
            for (d, text) in outcomes.iter_mut().zip(&texts) {
                if text.is_some() {
                    d.score_all = scored.next().flatten().and_then(|e| e.score());
                }
            }
        }
    }

    let names: Vec<(String, String)> = (0..cascade.stage_count())
        .map(|i| {
            let c = cascade.stage_config(i);
            (c.id().to_string(), c.kind().to_string())
        })
        .collect();
    let setup = classifier.map(|(i, setup, _)| (i, setup));
    let mut report = compute(&names, setup.as_ref(), &docs, options);
    report.data = source.to_string();
    report.config_hash = cascade.config_hash.clone();
    report.positive_label = positive;
    report.labels = label_counts;
    Ok(report)
}

/// The classifier settings the report needs.
#[derive(Debug, Clone)]
pub struct ClassifierSetup {
    pub mode: ClassifierMode,
    pub drop_threshold: f64,
    pub review_threshold: f64,
    pub on_error: OnError,
}

fn fraction(n: u64, of: u64) -> f64 {
    if of == 0 {
        0.0
    } else {
        n as f64 / of as f64
    }
}

/// The report from per-document outcomes. `stages` names every stage; `classifier` is the
/// classifier stage's index and settings, when there is one.
pub fn compute(
    stages: &[(String, String)],
    classifier: Option<&(usize, ClassifierSetup)>,
    docs: &[DocOutcome],
    options: &EvalOptions,
) -> EvalReport {
    let n = docs.len() as u64;
    let positives = docs.iter().filter(|d| d.positive).count() as u64;
    let review_flags = options.review_is_positive;

    let mut stage_evals = Vec::new();
    for (i, (id, kind)) in stages.iter().enumerate() {
        let outcome_of = |d: &DocOutcome| d.stages[i];
        let reached = |d: &DocOutcome| d.reached[i];
        let count = |o: Outcome| docs.iter().filter(|d| outcome_of(d) == Some(o)).count() as u64;
        let flagged = |d: &DocOutcome| match outcome_of(d) {
            Some(Outcome::Drop | Outcome::Escalate) => true,
            Some(Outcome::Review) => review_flags,
            _ => false,
        };
        let (escalated, dropped) = (count(Outcome::Escalate), count(Outcome::Drop));
        stage_evals.push(StageEval {
            id: id.clone(),
            kind: kind.clone(),
            evaluated: docs.iter().filter(|d| reached(d)).count() as u64,
            escalated,
            dropped,
            reviewed: count(Outcome::Review),
            tagged: count(Outcome::Tag),
            escalated_fraction: fraction(escalated, n),
            dropped_fraction: fraction(dropped, n),
            metrics: Confusion::from_pairs(docs.iter().map(|d| (d.positive, flagged(d)))).summary(),
        });
    }

    let final_flag = |destination: Destination| match destination {
        Destination::Dropped => true,
        Destination::Review => review_flags,
        _ => false,
    };
    let count_dest = |dest: Destination| docs.iter().filter(|d| d.destination == dest).count();
    let cascade = CascadeEval {
        kept: count_dest(Destination::Kept) as u64,
        dropped: count_dest(Destination::Dropped) as u64,
        review: count_dest(Destination::Review) as u64,
        metrics: Confusion::from_pairs(
            docs.iter().map(|d| (d.positive, final_flag(d.destination))),
        )
        .summary(),
    };

    let (classifier_eval, sweep) = match classifier {
        None => (None, Vec::new()),
        Some((index, setup)) => {
            let judged: Vec<&DocOutcome> = docs.iter().filter(|d| d.judged).collect();
            let scored: Vec<(f32, bool)> = judged
                .iter()
                .filter_map(|d| d.score.map(|s| (s, d.positive)))
                .collect();
            let (scores, truth): (Vec<f32>, Vec<bool>) = scored.iter().copied().unzip();
            let all: Vec<(f32, bool)> = docs
                .iter()
                .filter_map(|d| d.score_all.map(|s| (s, d.positive)))
                .collect();
            let roc_auc_all = options.score_all.then(|| {
                let (s, t): (Vec<f32>, Vec<bool>) = all.iter().copied().unzip();
                roc_auc(&s, &t)
            });
            let missed = docs
                .iter()
                .filter(|d| d.positive && !d.judged && d.before_classifier != Destination::Dropped)
                .count() as u64;
            let classifier_flag = |d: &DocOutcome| match d.classifier {
                Some(Outcome::Drop) => true,
                Some(Outcome::Review) => review_flags,
                _ => false,
            };
            let id = stages[*index].0.clone();
            let eval = ClassifierEval {
                id,
                mode: setup.mode,
                drop_threshold: setup.drop_threshold,
                review_threshold: setup.review_threshold,
                judged: judged.len() as u64,
                judged_positives: judged.iter().filter(|d| d.positive).count() as u64,
                failed: judged.iter().filter(|d| d.score.is_none()).count() as u64,
                roc_auc: roc_auc(&scores, &truth),
                roc_auc_scope: match setup.mode {
                    ClassifierMode::Escalated => format!(
                        "the {} the stage scored (mode = \"escalated\": documents the \
                         text stages did not escalate have no score)",
                        plural(scores.len() as u64, "document")
                    ),
                    ClassifierMode::All => format!(
                        "the {} the stage scored (all that the text stages did not drop)",
                        plural(scores.len() as u64, "document")
                    ),
                },
                roc_auc_all_documents: roc_auc_all.flatten(),
                metrics_on_judged: Confusion::from_pairs(
                    judged.iter().map(|d| (d.positive, classifier_flag(d))),
                )
                .summary(),
                positives_dropped_before: docs
                    .iter()
                    .filter(|d| d.positive && d.before_classifier == Destination::Dropped)
                    .count() as u64,
                positives_missed_by_prefilter: missed,
                recall_lost_by_prefilter: (positives > 0).then(|| missed as f64 / positives as f64),
            };
            let observed: Vec<f32> = if options.score_all {
                all.iter().map(|p| p.0).collect()
            } else {
                scores.clone()
            };
            let thresholds = options
                .thresholds
                .clone()
                .unwrap_or_else(|| default_thresholds(&observed));
            let failure_flags = match setup.on_error {
                OnError::Drop => true,
                OnError::Review | OnError::Fail => review_flags,
                OnError::Keep => false,
            };
            let sweep = thresholds
                .iter()
                .map(|&t| {
                    let at = |s: f32| f64::from(s) >= t;
                    let cascade = Confusion::from_pairs(docs.iter().map(|d| {
                        let flagged = if d.before_classifier == Destination::Dropped {
                            true
                        } else if d.judged {
                            d.score.map_or(failure_flags, at)
                        } else {
                            // Kept, or (without a classifier judging it) review.
                            final_flag(d.destination)
                        };
                        (d.positive, flagged)
                    }));
                    SweepRow {
                        threshold: t,
                        cascade: cascade.summary(),
                        classifier: Confusion::from_pairs(scored.iter().map(|&(s, p)| (p, at(s))))
                            .summary(),
                        classifier_all_documents: options.score_all.then(|| {
                            Confusion::from_pairs(all.iter().map(|&(s, p)| (p, at(s)))).summary()
                        }),
                    }
                })
                .collect();
            (Some(eval), sweep)
        }
    };

    EvalReport {
        data: String::new(),
        config_hash: String::new(),
        documents: n,
        positives,
        negatives: n - positives,
        positive_label: String::new(),
        labels: BTreeMap::new(),
        review_counts_as_positive: review_flags,
        stages: stage_evals,
        classifier: classifier_eval,
        cascade,
        sweep,
    }
}

/// 0.05..=0.95 by 0.05 for probabilities; 19 even steps inside the observed range otherwise.
fn default_thresholds(scores: &[f32]) -> Vec<f64> {
    let (lo, hi) = scores
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &s| {
            (lo.min(f64::from(s)), hi.max(f64::from(s)))
        });
    if scores.is_empty() || (lo >= 0.0 && hi <= 1.0) {
        (1..20).map(|i| f64::from(i) * 0.05).map(round6).collect()
    } else {
        (1..20)
            .map(|i| round6(lo + (hi - lo) * f64::from(i) / 20.0))
            .collect()
    }
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(positive: bool, text_outcome: Option<Outcome>, score: Option<f32>) -> DocOutcome {
        let before = match text_outcome {
            Some(Outcome::Drop) => Destination::Dropped,
            Some(Outcome::Escalate) => Destination::Review,
            _ => Destination::Kept,
        };
        let judged = score.is_some();
        let classifier = score.map(|s| {
            if s >= 0.8 {
                Outcome::Drop
            } else if s >= 0.5 {
                Outcome::Review
            } else {
                Outcome::Pass
            }
        });
        let destination = match classifier {
            Some(Outcome::Drop) => Destination::Dropped,
            Some(Outcome::Review) => Destination::Review,
            Some(_) => Destination::Kept,
            None => before,
        };
        DocOutcome {
            positive,
            stages: vec![text_outcome, classifier],
            reached: vec![true, judged],
            before_classifier: before,
            judged,
            classifier,
            score,
            score_all: None,
            destination,
        }
    }

    fn setup() -> (usize, ClassifierSetup) {
        (
            1,
            ClassifierSetup {
                mode: ClassifierMode::Escalated,
                drop_threshold: 0.8,
                review_threshold: 0.5,
                on_error: OnError::Review,
            },
        )
    }

    fn names() -> Vec<(String, String)> {
        vec![
            ("terms".into(), "terms".into()),
            ("model".into(), "classifier".into()),
        ]
    }

    /// 4 positives: one dropped by terms, two escalated (scores 0.9, 0.3), one missed.
    /// 4 negatives: two escalated (scores 0.6, 0.1), two untouched.
    fn docs() -> Vec<DocOutcome> {
        vec![
            doc(true, Some(Outcome::Drop), None),
            doc(true, Some(Outcome::Escalate), Some(0.9)),
            doc(true, Some(Outcome::Escalate), Some(0.3)),
            doc(true, None, None),
            doc(false, Some(Outcome::Escalate), Some(0.6)),
            doc(false, Some(Outcome::Escalate), Some(0.1)),
            doc(false, None, None),
            doc(false, None, None),
        ]
    }

    #[test]
    fn stage_cascade_and_prefilter_figures() {
        let r = compute(&names(), Some(&setup()), &docs(), &EvalOptions::default());
        assert_eq!((r.documents, r.positives, r.negatives), (8, 4, 4));
        let terms = &r.stages[0];
        assert_eq!((terms.escalated, terms.dropped, terms.evaluated), (4, 1, 8));
        assert_eq!(terms.escalated_fraction, 0.5);
        // Flags 5 documents, 3 of them positive.
        assert_eq!((terms.metrics.tp, terms.metrics.fp), (3, 2));
        assert_eq!(terms.metrics.recall, Some(0.75));
        let model = &r.stages[1];
        assert_eq!((model.evaluated, model.dropped, model.reviewed), (4, 1, 1));
        // Flags 0.9 (positive) and 0.6 (negative, review).
        assert_eq!((model.metrics.tp, model.metrics.fp), (1, 1));
        let c = r.classifier.as_ref().unwrap();
        assert_eq!((c.judged, c.judged_positives), (4, 2));
        // Scored: positives 0.9, 0.3; negatives 0.6, 0.1 → 3 of 4 pairs ordered right.
        assert_eq!(c.roc_auc, Some(0.75));
        assert_eq!(c.positives_dropped_before, 1);
        assert_eq!(c.positives_missed_by_prefilter, 1);
        assert_eq!(c.recall_lost_by_prefilter, Some(0.25));
        // Cascade: dropped = {terms drop, 0.9}, review = {0.6}.
        assert_eq!(
            (r.cascade.dropped, r.cascade.review, r.cascade.kept),
            (2, 1, 5)
        );
        assert_eq!((r.cascade.metrics.tp, r.cascade.metrics.fp), (2, 1));
        // Review as negative: only drops count.
        let strict = EvalOptions {
            review_is_positive: false,
            ..EvalOptions::default()
        };
        let r = compute(&names(), Some(&setup()), &docs(), &strict);
        assert_eq!((r.cascade.metrics.tp, r.cascade.metrics.fp), (2, 0));
    }

    #[test]
    fn sweep_moves_with_the_threshold() {
        let options = EvalOptions {
            thresholds: Some(vec![0.05, 0.5, 0.95]),
            ..EvalOptions::default()
        };
        let r = compute(&names(), Some(&setup()), &docs(), &options);
        let rows: Vec<(u64, u64, u64, u64)> = r
            .sweep
            .iter()
            .map(|s| (s.cascade.tp, s.cascade.fp, s.classifier.tp, s.classifier.fp))
            .collect();
        // 0.05: every scored doc flagged; 0.5: 0.9 and 0.6; 0.95: none (the terms drop stays).
        assert_eq!(rows, [(3, 2, 2, 2), (2, 1, 1, 1), (1, 0, 0, 0)]);
        // The missed positive caps cascade recall at 3/4 at any threshold.
        assert!(r.sweep.iter().all(|s| s.cascade.recall <= Some(0.75)));
    }

    #[test]
    fn default_thresholds_follow_the_scores() {
        let t = default_thresholds(&[0.1, 0.9]);
        assert_eq!(t.len(), 19);
        assert_eq!((t[0], t[18]), (0.05, 0.95));
        let t = default_thresholds(&[-2.0, 3.0]);
        assert_eq!((t[0], t[18]), (-1.75, 2.75));
    }

    #[test]
    fn positive_label_rules() {
        let counts = |labels: &[&str]| -> BTreeMap<String, u64> {
            labels.iter().map(|l| (l.to_string(), 1)).collect()
        };
        assert_eq!(
            positive_label(&counts(&["0", "1"]), None, None).unwrap(),
            "1"
        );
        assert_eq!(
            positive_label(&counts(&["false", "true"]), None, None).unwrap(),
            "true"
        );
        assert_eq!(
            positive_label(&counts(&["benign", "hazard"]), None, Some("hazard")).unwrap(),
            "hazard"
        );
        let err = positive_label(&counts(&["benign", "hazard"]), None, Some("LABEL_1"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--positive") && err.contains("benign, hazard"),
            "{err}"
        );
        assert!(positive_label(&counts(&["a", "b"]), Some("c"), None).is_err());
        assert_eq!(
            positive_label(&counts(&["a", "b"]), Some("a"), None).unwrap(),
            "a"
        );
    }
}
