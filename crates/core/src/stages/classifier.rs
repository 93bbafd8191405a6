//! `type = "classifier"`: a transformer (or hashed-n-gram) model judges documents, by default
//! only those an earlier stage escalated.
//!
//! It is an ordinary stage with a batch entry point: the pipeline holds the documents that want a
//! score and hands them over in batches (gathering several chunks' worth when the model's scores
//! do not depend on the batch, see `pipeline/gather.rs`); the model crate groups windows by
//! length to waste little padding. Its decision, from the recorded score: score >=
//! `drop_threshold` → dropped, score >= `review_threshold` → review, else kept, even when an
//! earlier stage escalated the document (the classifier settles escalations). A model error gives
//! the `on_error` outcome. The audit records every window's score and the aggregate with both
//! thresholds, so a maintainer can re-threshold without recomputing.
//!
//! **Scoring as trained.** A model written by `sluice train` records the windowing and
//! aggregation it learned with (`sluice_classifier::Scoring`); `max_tokens`, `stride`,
//! `max_bytes` and `aggregate` left out of the config take those values (else 512, 64, 100,000,
//! max). A config that sets one to something else is obeyed, with a warning at start-up and in
//! `sluice check`: scores then no longer mean what validation measured.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sluice_classifier::{
    Aggregate, Classifier, ClassifierError, ClassifierOptions, DeviceSpec, LabelSelector,
};

use crate::decision::{Outcome, Verdict};
use crate::error::ConfigError;
use crate::stage::{
    parse_finite, BuildContext, Setting, StageError, StageEvidence, StageKind, StageRuntime,
    StageStats,
};

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClassifierMode {
    /// Only documents an earlier stage escalated (the cascade).
    #[default]
    Escalated,
    /// Every document that was not dropped earlier.
    All,
}

/// What a model error does to the documents it was scoring.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    Drop,
    /// Fail closed for a human (the default).
    #[default]
    Review,
    Keep,
    /// The shard fails.
    Fail,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AggregateConfig {
    #[default]
    Max,
    Mean,
    First,
}

/// The label whose probability is the score: an index or an `id2label` name.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum LabelConfig {
    Index(usize),
    Name(String),
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierConfig {
    pub id: String,
    /// Model directory (`config.json`, `model.safetensors`, `tokenizer.json`), relative to the
    /// config file. Never downloaded.
    pub model: PathBuf,
    /// Label whose probability is the score; by default output 1 of a two-label model, output 0
    /// of a one-output (regression) model.
    #[serde(default)]
    pub label: Option<LabelConfig>,
    #[serde(default)]
    pub mode: ClassifierMode,
    pub drop_threshold: f64,
    pub review_threshold: f64,
    #[serde(default)]
    pub on_error: OnError,
    /// Tokens per window, special tokens included; unset: as the model was trained, else 512.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<usize>,
    /// Tokens shared by consecutive windows; unset: as trained, else 64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stride: Option<usize>,
    /// Bytes of text kept before tokenizing, so cost stays bounded on huge documents; unset: as
    /// trained, else 100,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<usize>,
    /// Windows per forward pass.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Unset: as trained, else max.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<AggregateConfig>,
    /// `cpu`, `cuda`, `cuda:N`, `metal`; `--device` overrides.
    #[serde(default = "default_device")]
    pub device: String,
}

fn default_batch_size() -> usize {
    32
}
fn default_device() -> String {
    "cpu".into()
}

/// The classifier's evidence about one document.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ClassifierEvidence {
    /// The aggregate score (absent when the model failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// Every window's score, in text order.
    pub windows: Vec<f32>,
    pub tokens: usize,
    /// The thresholds the score was compared with (filled in by the decision).
    pub drop_threshold: f64,
    pub review_threshold: f64,
    pub model_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub struct ClassifierStage {
    id: String,
    classifier: Classifier,
    config: ClassifierConfig,
    /// Where the config overrides what the model was trained with (see the module docs).
    mismatches: Vec<String>,
}

impl From<AggregateConfig> for Aggregate {
    fn from(a: AggregateConfig) -> Aggregate {
        match a {
            AggregateConfig::Max => Aggregate::Max,
            AggregateConfig::Mean => Aggregate::Mean,
            AggregateConfig::First => Aggregate::First,
        }
    }
}

impl ClassifierConfig {
    pub fn model_dir(&self, ctx: &BuildContext) -> PathBuf {
        ctx.resolve(&self.model)
    }
}

impl StageKind for ClassifierConfig {
    type Runtime = ClassifierStage;
    type Evidence = ClassifierEvidence;

    fn id(&self) -> &str {
        &self.id
    }

    /// The model's files, streamed through sha256.
    fn hashed_inputs(&self, ctx: &BuildContext) -> Result<Vec<(String, Vec<u8>)>, ConfigError> {
        let files = sluice_classifier::model_files(&self.model_dir(ctx));
        let digest = hash_files(&files)
            .map_err(|e| ctx.invalid("model", format!("cannot read model: {e}")))?;
        Ok(vec![("model".into(), digest)])
    }

    fn build(&self, ctx: &BuildContext) -> Result<ClassifierStage, ConfigError> {
        for (key, value) in [
            ("drop_threshold", self.drop_threshold),
            ("review_threshold", self.review_threshold),
        ] {
            if !value.is_finite() {
                return Err(ctx.invalid(key, format!("must be a finite number, not {value}")));
            }
        }
        if self.review_threshold > self.drop_threshold {
            return Err(ctx.invalid(
                "review_threshold",
                "must be at most drop_threshold",
            ));
        }
        let dir = self.model_dir(ctx);
        if !dir.is_dir() {
            return Err(ctx.invalid(
                "model",
                format!("model directory {} does not exist", dir.display()),
            ));
        }
        let device: DeviceSpec = self
            .device
            .parse()
            .map_err(|e| ctx.invalid("device", format!("{e}")))?;
        let trained = sluice_classifier::trained_scoring(&dir)
            .map_err(|e| ctx.invalid("model", e.to_string()))?;
        let defaults = ClassifierOptions::new(&dir);
        let mut mismatches = Vec::new();
        // The config's value, else the trained one, else the default; a config value that
        // differs from the trained one is noted.
        let mut pick = |key: &str, set: Option<usize>, trained: Option<usize>, default: usize| {
            if let (Some(set), Some(trained)) = (set, trained) {
                if set != trained {
                    mismatches.push(format!("{key} = {set} (trained with {trained})"));
                }
            }
            set.or(trained).unwrap_or(default)
        };
        let max_tokens = pick(
            "max_tokens",
            self.max_tokens,
            trained.map(|t| t.max_tokens),
            defaults.max_tokens,
        );
        let stride = pick(
            "stride",
            self.stride,
            trained.map(|t| t.stride),
            defaults.stride,
        );
        let max_bytes = pick(
            "max_bytes",
            self.max_bytes,
            trained.map(|t| t.max_bytes),
            defaults.max_bytes,
        );
        let aggregate = match (self.aggregate.map(Aggregate::from), trained) {
            (Some(set), Some(t)) if set != t.aggregate => {
                mismatches.push(format!(
                    "aggregate = \"{}\" (trained with \"{}\")",
                    set.name(),
                    t.aggregate.name()
                ));
                set
            }
            (Some(set), _) => set,
            (None, Some(t)) => t.aggregate,
            (None, None) => defaults.aggregate,
        };
        let options = ClassifierOptions {
            model_dir: dir,
            device,
            label: match &self.label {
                None => LabelSelector::Auto,
                Some(LabelConfig::Index(i)) => LabelSelector::Index(*i),
                Some(LabelConfig::Name(n)) => LabelSelector::Name(n.clone()),
            },
            max_tokens,
            stride,
            max_bytes,
            batch_size: self.batch_size,
            aggregate,
        };
        let classifier = Classifier::load(options).map_err(|e| {
            let key = match e {
                ClassifierError::DeviceUnavailable { .. } => "device",
                ClassifierError::UnknownLabel { .. } => "label",
                _ => "model",
            };
            ctx.invalid(key, e.to_string())
        })?;
        // Probabilities lie in [0, 1]: a threshold outside would never (or always) hold. A
        // regression head's raw value has no such range.
        let probability = classifier
            .labels()
            .is_none_or(|l| l.problem_type() != sluice_classifier::ProblemType::Regression);
        if probability {
            for (key, value) in [
                ("review_threshold", self.review_threshold),
                ("drop_threshold", self.drop_threshold),
            ] {
                if !(0.0..=1.0).contains(&value) {
                    return Err(ctx.invalid(
                        key,
                        format!(
                            "must be between 0 and 1 (the score is a probability), not {value}"
                        ),
                    ));
                }
            }
        }
        if !mismatches.is_empty() {
            tracing::warn!(
                stage = %self.id,
                "the config scores otherwise than the model was trained: {}",
                mismatches.join(", ")
            );
        }
        Ok(ClassifierStage {
            id: self.id.clone(),
            classifier,
            config: self.clone(),
            mismatches,
        })
    }

    /// Not a document an earlier stage dropped (the cascade sees to that) and, in
    /// `mode = "escalated"`, only one an earlier stage escalated.
    fn wants(&self, verdict: &Verdict) -> bool {
        verdict.escalated || self.mode == ClassifierMode::All
    }

    fn settles_escalation(&self) -> bool {
        true
    }

    fn set_device(&mut self, device: &str) {
        self.device = device.to_string();
    }

    fn decide(&self, e: &mut ClassifierEvidence) -> Outcome {
        e.drop_threshold = self.drop_threshold;
        e.review_threshold = self.review_threshold;
        match (e.score, &e.error) {
            (Some(score), None) => {
                let score = f64::from(score);
                if score >= self.drop_threshold {
                    Outcome::Drop
                } else if score >= self.review_threshold {
                    Outcome::Review
                } else {
                    Outcome::Pass
                }
            }
            // The model failed on it: `on_error` decides, whatever the thresholds.
            _ => match self.on_error {
                OnError::Drop => Outcome::Drop,
                OnError::Review | OnError::Fail => Outcome::Review,
                OnError::Keep => Outcome::Pass,
            },
        }
    }

    fn set(&mut self, key: &str, value: &str) -> Result<Setting, String> {
        let old_review = self.review_threshold;
        // The range is checked with the other thresholds when the stage is built.
        let x = parse_finite(value)?;
        match key {
            "drop_threshold" => self.drop_threshold = x,
            "review_threshold" => self.review_threshold = x,
            other => {
                return Err(format!(
                    "classifier stage `{}` has no threshold `{other}` (drop_threshold, review_threshold)",
                    self.id
                ))
            }
        }
        // In mode = "all", scored documents below the old review threshold may have no record;
        // they stay unflagged as long as neither threshold goes below it. In the default mode
        // every scored document was escalated, so it has a record.
        Ok(Setting {
            loosens: self.mode == ClassifierMode::All
                && self.review_threshold.min(self.drop_threshold) < old_review,
        })
    }
}

impl ClassifierStage {
    pub fn model_hash(&self) -> &str {
        self.classifier.model_hash()
    }

    /// The name of the model output whose probability is the score (`hazard`, `LABEL_1`).
    pub fn score_label(&self) -> Option<&str> {
        let names = self.classifier.labels()?.names();
        names
            .get(self.classifier.label_index()?)
            .map(String::as_str)
    }
}

impl StageRuntime for ClassifierStage {
    type Evidence = ClassifierEvidence;
    type Scratch = ();

    fn measure(
        &self,
        doc: &crate::document::Document<'_>,
        scratch: &mut (),
    ) -> Option<ClassifierEvidence> {
        // One document is a batch of one; an `on_error = "fail"` error has nowhere to go here
        // and is recorded as the document's error (the pipeline always calls `measure_batch`).
        match self.measure_batch(&[&doc.text], scratch) {
            Ok(mut all) => all.pop().flatten(),
            Err(error) => Some(self.failed(error.message)),
        }
    }

    fn batched(&self) -> bool {
        true
    }

    /// Scores the batch; a model error concerns the whole batch: with `on_error = "fail"` it
    /// fails the shard, otherwise every document records it (and `on_error` decides them).
    fn measure_batch(
        &self,
        texts: &[&str],
        _scratch: &mut (),
    ) -> Result<Vec<Option<ClassifierEvidence>>, StageError> {
        match self.classifier.score(texts) {
            Ok(scores) => Ok(scores
                .into_iter()
                .map(|s| {
                    Some(ClassifierEvidence {
                        score: Some(s.score),
                        windows: s.windows,
                        tokens: s.tokens,
                        drop_threshold: 0.0,
                        review_threshold: 0.0,
                        model_hash: self.model_hash().to_string(),
                        error: None,
                    })
                })
                .collect()),
            Err(error) if self.config.on_error == OnError::Fail => Err(StageError {
                message: format!("classifier {}: {error}", self.id),
            }),
            Err(error) => Ok(texts
                .iter()
                .map(|_| Some(self.failed(error.to_string())))
                .collect()),
        }
    }

    fn batch_exact(&self) -> bool {
        self.classifier.batch_exact()
    }

    /// Scores a probe text: a model with NaN or infinite weights loads fine but scores NaN, and
    /// every document it judged would get `on_error`.
    fn check(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if !self.mismatches.is_empty() {
            warnings.push(format!(
                "scores otherwise than the model was trained ({}): its scores and thresholds no \
                 longer mean what training measured; remove the keys to score as trained",
                self.mismatches.join(", ")
            ));
        }
        match self.classifier.probe() {
            Ok(_) => warnings,
            Err(e) => warnings.into_iter().chain([format!(
                "the model fails on a probe text ({e}): every document it judges would get \
                 on_error = \"{}\"",
                match self.config.on_error {
                    OnError::Drop => "drop",
                    OnError::Review => "review",
                    OnError::Keep => "keep",
                    OnError::Fail => "fail",
                }
            )]).collect(),
        }
    }

    /// One line about the loaded model, for `sluice check` and logs.
    fn describe(&self) -> String {
        let c = &self.classifier;
        let label = match (c.labels(), c.label_index()) {
            (Some(labels), Some(i)) => format!(
                "score = output {i} ({})",
                labels.names().get(i).map_or("unnamed", String::as_str)
            ),
            _ => "no head".to_string(),
        };
        let o = c.options();
        format!(
            "{} on {}, {label}, windows of {} tokens (stride {}) of the first {} bytes, aggregate {}, mode {:?}, drop >= {}, review >= {}, model sha256 {}",
            c.architecture().name(),
            self.config.device,
            c.max_tokens(),
            c.stride(),
            o.max_bytes,
            o.aggregate.name(),
            self.config.mode,
            self.config.drop_threshold,
            self.config.review_threshold,
            c.model_hash(),
        )
    }
}

impl ClassifierStage {
    fn failed(&self, error: String) -> ClassifierEvidence {
        ClassifierEvidence {
            score: None,
            windows: Vec::new(),
            tokens: 0,
            drop_threshold: 0.0,
            review_threshold: 0.0,
            model_hash: self.model_hash().to_string(),
            error: Some(error),
        }
    }
}

impl StageEvidence for ClassifierEvidence {
    fn count(&self, _outcome: Outcome, stats: &mut StageStats) {
        stats.tokens += self.tokens as u64;
        stats.failed += u64::from(self.error.is_some());
    }

    fn describe(&self) -> String {
        format!(
            "score {} (review >= {}, drop >= {}){}",
            self.score.map_or("-".into(), |s| s.to_string()),
            self.review_threshold,
            self.drop_threshold,
            self.error
                .as_deref()
                .map_or(String::new(), |x| format!("; error: {x}"))
        )
    }

    fn score(&self) -> Option<f32> {
        self.score
    }
}

/// Streams `paths` through sha256 (models are hundreds of megabytes: never read whole).
pub fn hash_files(paths: &[PathBuf]) -> Result<Vec<u8>, std::io::Error> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for path in paths {
        let mut file = std::fs::File::open(path)?;
        hasher.update(file_name(path).as_bytes());
        std::io::copy(&mut file, &mut hasher)?;
    }
    Ok(hasher.finalize().to_vec())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(on_error: &str) -> ClassifierConfig {
        toml::from_str(&format!(
            "id = 'm'\nmodel = 'x'\ndrop_threshold = 0.8\nreview_threshold = 0.5\non_error = '{on_error}'"
        ))
        .unwrap()
    }

    fn evidence(score: Option<f32>, error: Option<&str>) -> ClassifierEvidence {
        ClassifierEvidence {
            score,
            windows: score.into_iter().collect(),
            tokens: 4,
            drop_threshold: 0.0,
            review_threshold: 0.0,
            model_hash: "h".into(),
            error: error.map(str::to_string),
        }
    }

    #[test]
    fn scores_decide_by_the_thresholds_and_record_them() {
        let c = config("review");
        for (score, outcome) in [
            (0.9, Outcome::Drop),
            (0.8, Outcome::Drop),
            (0.6, Outcome::Review),
            (0.5, Outcome::Review),
            (0.1, Outcome::Pass),
        ] {
            let mut e = evidence(Some(score), None);
            assert_eq!(c.decide(&mut e), outcome, "{score}");
            assert_eq!((e.drop_threshold, e.review_threshold), (0.8, 0.5));
        }
    }

    #[test]
    fn a_model_error_gets_the_on_error_outcome_whatever_the_thresholds() {
        for (on_error, outcome) in [
            ("drop", Outcome::Drop),
            ("review", Outcome::Review),
            ("fail", Outcome::Review),
            ("keep", Outcome::Pass),
        ] {
            let mut e = evidence(None, Some("model failed"));
            assert_eq!(config(on_error).decide(&mut e), outcome, "{on_error}");
        }
    }

    #[test]
    fn thresholds_can_be_re_set_and_loosening_depends_on_the_mode() {
        let mut c = config("review");
        assert_eq!(c.set("drop_threshold", "0.7"), Ok(Setting { loosens: false }));
        assert_eq!(c.set("review_threshold", "0.2"), Ok(Setting { loosens: false }));
        let mut all = config("review");
        all.mode = ClassifierMode::All;
        assert_eq!(all.set("review_threshold", "0.2"), Ok(Setting { loosens: true }));
        assert_eq!(all.set("review_threshold", "0.6"), Ok(Setting { loosens: false }));
        assert!(c.set("drop_threshold", "nan").is_err());
        assert!(c.set("threshold", "0.5").unwrap_err().contains("no threshold `threshold`"));
        // Counted: tokens and failures.
        let mut stats = StageStats::new("m", "classifier");
        evidence(Some(0.1), None).count(Outcome::Pass, &mut stats);
        evidence(None, Some("x")).count(Outcome::Review, &mut stats);
        assert_eq!((stats.tokens, stats.failed), (8, 1));
    }

    #[test]
    fn thresholds_must_be_finite_and_probabilities_between_0_and_1() {
        let fixture = |name: &str| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../fixtures/models")
                .join(name)
        };
        let build = |model: &str, drop: &str, review: &str| {
            let config: ClassifierConfig = toml::from_str(&format!(
                "id = 'm'\nmodel = {:?}\nlabel = 0\ndrop_threshold = {drop}\nreview_threshold = {review}",
                fixture(model)
            ))
            .unwrap();
            config
                .build(&BuildContext {
                    base_dir: std::path::Path::new("."),
                    max_spans: 1,
                    key: "stages[2] (m)".into(),
                })
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(build("hashed-ngram", "0.8", "0.5"), None);
        for (drop, review, key) in [
            ("nan", "0.5", "drop_threshold: must be a finite number"),
            ("0.8", "inf", "review_threshold: must be a finite number"),
            ("1.5", "0.5", "drop_threshold: must be between 0 and 1"),
            ("0.8", "-0.1", "review_threshold: must be between 0 and 1"),
            ("0.4", "0.5", "review_threshold: must be at most drop_threshold"),
        ] {
            let err = build("hashed-ngram", drop, review).expect("refused");
            assert!(err.contains(&format!("stages[2] (m).{key}")), "{drop} {review}: {err}");
        }
        // A regression head's raw value is not a probability: any finite thresholds.
        assert_eq!(build("bert-regression", "3.5", "-2"), None);
    }
}
