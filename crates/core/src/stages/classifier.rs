//! `type = "classifier"`: a transformer (or hashed-n-gram) model judges documents, by default
//! only those an earlier stage escalated. It must be the last stage.
//!
//! Unlike the text stages it works on batches: the pipeline collects the documents of a chunk
//! that need a score, scores them in one call (the model crate groups windows by length to waste
//! little padding), then decides each: score ≥ `drop_threshold` → dropped, score ≥
//! `review_threshold` → review, else kept. The audit records every window's score and the
//! aggregate, with both thresholds, so a maintainer can re-threshold without recomputing.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sluice_classifier::{
    Aggregate, Classifier, ClassifierError, ClassifierOptions, DeviceSpec, LabelSelector,
};

use crate::config::BuildContext;
use crate::error::ConfigError;
use crate::stage::{Detail, Evidence, Outcome, Reason, StageStats};
use crate::stats::Destination;

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
    /// Tokens per window, special tokens included.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
    /// Tokens shared by consecutive windows.
    #[serde(default = "default_stride")]
    pub stride: usize,
    /// Bytes of text kept before tokenizing, so cost stays bounded on huge documents.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// Windows per forward pass.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default)]
    pub aggregate: AggregateConfig,
    /// `cpu`, `cuda`, `cuda:N`, `metal`; `--device` overrides.
    #[serde(default = "default_device")]
    pub device: String,
}

fn default_max_tokens() -> usize {
    512
}
fn default_stride() -> usize {
    64
}
fn default_max_bytes() -> usize {
    100_000
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
}

impl ClassifierConfig {
    pub fn model_dir(&self, ctx: &BuildContext) -> PathBuf {
        ctx.resolve(&self.model)
    }

    /// The model's files, for the config hash.
    pub fn model_files(&self, ctx: &BuildContext) -> Vec<PathBuf> {
        let dir = self.model_dir(ctx);
        [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "head.safetensors",
            "head.json",
            "1_Pooling/config.json",
        ]
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.is_file())
        .collect()
    }

    pub fn build(&self, ctx: &BuildContext) -> Result<ClassifierStage, ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: format!("{}.{key}", ctx.key),
            message,
        };
        if !(0.0..=1.0).contains(&self.review_threshold)
            || self.review_threshold > self.drop_threshold
        {
            return Err(invalid(
                "review_threshold",
                "must be between 0 and 1 and at most drop_threshold".into(),
            ));
        }
        let dir = self.model_dir(ctx);
        if !dir.is_dir() {
            return Err(invalid(
                "model",
                format!("model directory {} does not exist", dir.display()),
            ));
        }
        let device: DeviceSpec = self
            .device
            .parse()
            .map_err(|e| invalid("device", format!("{e}")))?;
        let options = ClassifierOptions {
            model_dir: dir,
            device,
            label: match &self.label {
                None => LabelSelector::Auto,
                Some(LabelConfig::Index(i)) => LabelSelector::Index(*i),
                Some(LabelConfig::Name(n)) => LabelSelector::Name(n.clone()),
            },
            max_tokens: self.max_tokens,
            stride: self.stride,
            max_bytes: self.max_bytes,
            batch_size: self.batch_size,
            aggregate: match self.aggregate {
                AggregateConfig::Max => Aggregate::Max,
                AggregateConfig::Mean => Aggregate::Mean,
                AggregateConfig::First => Aggregate::First,
            },
        };
        let classifier = Classifier::load(options).map_err(|e| {
            let key = match e {
                ClassifierError::DeviceUnavailable { .. } => "device",
                ClassifierError::UnknownLabel { .. } => "label",
                _ => "model",
            };
            invalid(key, e.to_string())
        })?;
        Ok(ClassifierStage {
            id: self.id.clone(),
            classifier,
            config: self.clone(),
        })
    }
}

/// One document's score as the model returned it.
pub type Scored = sluice_classifier::DocumentScore;

impl ClassifierStage {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn model_hash(&self) -> &str {
        self.classifier.model_hash()
    }

    /// One line about the loaded model, for `sluice check` and logs.
    pub fn describe(&self) -> String {
        let c = &self.classifier;
        let label = match (c.labels(), c.label_index()) {
            (Some(labels), Some(i)) => format!(
                "score = output {i} ({})",
                labels.names().get(i).map_or("unnamed", String::as_str)
            ),
            _ => "no head".to_string(),
        };
        format!(
            "{} on {}, {label}, windows of {} tokens, mode {:?}, drop >= {}, review >= {}, model sha256 {}",
            c.architecture().name(),
            self.config.device,
            c.max_tokens(),
            self.config.mode,
            self.config.drop_threshold,
            self.config.review_threshold,
            c.model_hash(),
        )
    }

    /// Whether the stage judges a document the text stages sent to `destination`: not one they
    /// dropped, and, in `mode = "escalated"`, only one they escalated.
    pub fn wants(&self, destination: Destination, escalated: bool) -> bool {
        destination != Destination::Dropped
            && (escalated || self.config.mode == ClassifierMode::All)
    }

    /// Where a document goes after the stage's outcome for it.
    pub fn destination(outcome: Outcome) -> Destination {
        match outcome {
            Outcome::Drop => Destination::Dropped,
            Outcome::Review => Destination::Review,
            _ => Destination::Kept,
        }
    }

    /// Scores a batch of texts, one result per text for [`decide`](Self::decide): a model error
    /// concerns the whole batch, and is returned as the `Err` only with `on_error = "fail"`.
    pub fn score_each(&self, texts: &[&str]) -> Result<Vec<Result<Scored, String>>, String> {
        match self.score(texts) {
            Ok(scores) => Ok(scores.into_iter().map(Ok).collect()),
            Err(error) if self.config.on_error == OnError::Fail => {
                Err(format!("classifier {}: {error}", self.id))
            }
            Err(error) => Ok(texts.iter().map(|_| Err(error.clone())).collect()),
        }
    }

    /// Scores a batch of texts; an error concerns the whole batch.
    pub fn score(&self, texts: &[&str]) -> Result<Vec<Scored>, String> {
        self.classifier.score(texts).map_err(|e| e.to_string())
    }

    /// The stage's configuration (thresholds, mode), as written.
    pub fn config(&self) -> &ClassifierConfig {
        &self.config
    }

    /// The name of the model output whose probability is the score (`hazard`, `LABEL_1`).
    pub fn score_label(&self) -> Option<&str> {
        let names = self.classifier.labels()?.names();
        names
            .get(self.classifier.label_index()?)
            .map(String::as_str)
    }

    /// The verdict for one document from its score (or the model's error), counted in `stats`.
    pub fn decide(&self, scored: Result<Scored, String>, stats: &mut StageStats) -> Evidence {
        let c = &self.config;
        let (outcome, evidence) = match scored {
            Ok(s) => {
                let score = f64::from(s.score);
                let outcome = if score >= c.drop_threshold {
                    Outcome::Drop
                } else if score >= c.review_threshold {
                    Outcome::Review
                } else {
                    Outcome::Pass
                };
                stats.tokens += s.tokens as u64;
                (
                    outcome,
                    ClassifierEvidence {
                        score: Some(s.score),
                        windows: s.windows,
                        tokens: s.tokens,
                        drop_threshold: c.drop_threshold,
                        review_threshold: c.review_threshold,
                        model_hash: self.model_hash().to_string(),
                        error: None,
                    },
                )
            }
            Err(error) => {
                stats.failed += 1;
                let outcome = match c.on_error {
                    OnError::Drop => Outcome::Drop,
                    OnError::Review | OnError::Fail => Outcome::Review,
                    OnError::Keep => Outcome::Pass,
                };
                (
                    outcome,
                    ClassifierEvidence {
                        score: None,
                        windows: Vec::new(),
                        tokens: 0,
                        drop_threshold: c.drop_threshold,
                        review_threshold: c.review_threshold,
                        model_hash: self.model_hash().to_string(),
                        error: Some(error),
                    },
                )
            }
        };
        let reasons = if outcome == Outcome::Pass {
            Vec::new()
        } else {
            vec![Reason {
                stage: self.id.clone(),
                rule: None,
                action: outcome,
            }]
        };
        Evidence {
            outcome,
            reasons,
            detail: Detail::Classifier(evidence),
        }
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
