//! Reading the parts of a checkpoint directory that are common to every architecture:
//! which architecture it is, its labels and how its outputs become probabilities.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::{ClassifierError, Result};

/// The architectures this crate can run, as named in `config.json` (`architectures[0]`), plus the
/// two that are recognised otherwise: a sentence-transformers directory (`modules.json`) and
/// `hashed-ngram` (`model_type`).
pub const SUPPORTED_ARCHITECTURES: &[&str] = &[
    "BertForSequenceClassification",
    "DistilBertForSequenceClassification",
    "XLMRobertaForSequenceClassification",
    "ModernBertForSequenceClassification",
    "DebertaV2ForSequenceClassification",
    "sentence-transformers (BertModel + Pooling [+ Normalize] + head.safetensors)",
    "hashed-ngram",
];

/// The model family, decided from the checkpoint directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// `BertForSequenceClassification`.
    Bert,
    /// `DistilBertForSequenceClassification`.
    DistilBert,
    /// `XLMRobertaForSequenceClassification` (also `RobertaForSequenceClassification`).
    XlmRoberta,
    /// `ModernBertForSequenceClassification`.
    ModernBert,
    /// `DebertaV2ForSequenceClassification`.
    DebertaV2,
    /// A sentence-transformers encoder with an optional linear head in `head.safetensors`.
    SentenceTransformer,
    /// The fastText-style hashed n-gram model of this crate.
    HashedNgram,
}

impl Architecture {
    /// A short stable name, used in errors and audit records.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Bert => "bert",
            Architecture::DistilBert => "distilbert",
            Architecture::XlmRoberta => "xlm-roberta",
            Architecture::ModernBert => "modernbert",
            Architecture::DebertaV2 => "deberta-v2",
            Architecture::SentenceTransformer => "sentence-transformers",
            Architecture::HashedNgram => "hashed-ngram",
        }
    }
}

/// How logits become the probability of a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemType {
    /// Softmax across outputs.
    SingleLabel,
    /// Independent sigmoid per output.
    MultiLabel,
    /// Raw output value.
    Regression,
}

/// The head-related fields of a Hugging Face `config.json` (or of a `head.json`).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct HeadConfig {
    #[serde(default)]
    pub architectures: Option<Vec<String>>,
    #[serde(default)]
    pub model_type: Option<String>,
    #[serde(default)]
    pub num_labels: Option<usize>,
    #[serde(default)]
    pub id2label: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub problem_type: Option<String>,
}

pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = read_file(path)?;
    serde_json::from_slice(&bytes).map_err(|source| ClassifierError::Json {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| ClassifierError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Largest value accepted for a size in `config.json` (hidden size, vocabulary, positions,
/// layers, labels, ...): 16,777,216. Real checkpoints stay far below (a 250,000-token vocabulary,
/// 8,192 positions); anything larger is a damaged or hostile file.
pub const MAX_DIMENSION: u64 = 1 << 24;

/// Most outputs (labels) a classifier may declare.
pub const MAX_LABELS: usize = 1 << 16;

/// Checks the sizes of an encoder's `config.json` before candle builds anything from them, so
/// that a damaged file is an error naming its key rather than a division by zero (candle divides
/// the hidden size by the head count) or a table far larger than the weights (rotary and
/// relative-position tables are computed from the config, not read from the file).
/// `weights_len` is the size of `model.safetensors` in bytes. Keys that are absent, or not
/// non-negative integers, are left to the architecture's own parsing.
pub(crate) fn check_dimensions(config: &[u8], weights_len: usize, path: &Path) -> Result<()> {
    let Ok(serde_json::Value::Object(config)) = serde_json::from_slice(config) else {
        return Ok(());
    };
    let bad = |message: String| ClassifierError::Config {
        path: path.to_path_buf(),
        message,
    };
    let get = |key: &str| config.get(key).and_then(serde_json::Value::as_u64);
    for key in [
        "hidden_size",
        "dim",
        "intermediate_size",
        "hidden_dim",
        "vocab_size",
        "type_vocab_size",
        "num_hidden_layers",
        "n_layers",
        "num_attention_heads",
        "n_heads",
        "max_position_embeddings",
        "num_labels",
        "position_buckets",
        "max_relative_positions",
        "local_attention",
        "global_attn_every_n_layers",
        "embedding_dim",
    ] {
        if let Some(value) = get(key) {
            if value > MAX_DIMENSION {
                return Err(bad(format!(
                    "{key} is {value}, more than the {MAX_DIMENSION} this crate accepts"
                )));
            }
        }
    }
    for (hidden_key, heads_key) in [("hidden_size", "num_attention_heads"), ("dim", "n_heads")] {
        let Some(heads) = get(heads_key) else {
            continue;
        };
        if heads == 0 {
            return Err(bad(format!("{heads_key} is 0")));
        }
        if let Some(hidden) = get(hidden_key) {
            if hidden == 0 || hidden % heads != 0 {
                return Err(bad(format!(
                    "{hidden_key} ({hidden}) is not a positive multiple of {heads_key} ({heads})"
                )));
            }
        }
    }
    if let (Some(positions), Some(hidden)) = (
        get("max_position_embeddings"),
        get("hidden_size").or_else(|| get("dim")),
    ) {
        // A position table of `positions × hidden` values, when computed, must be of the order
        // of the weights, not beyond them.
        let budget = (weights_len as u64).max(MAX_DIMENSION);
        if positions.saturating_mul(hidden) > budget {
            return Err(bad(format!(
                "max_position_embeddings ({positions}) × hidden size ({hidden}) is more than \
                 the weights ({weights_len} bytes) could use"
            )));
        }
    }
    Ok(())
}

/// Decides the architecture of a checkpoint directory.
pub(crate) fn detect_architecture(dir: &Path, head: &HeadConfig) -> Result<Architecture> {
    let config_path = dir.join("config.json");
    if head.model_type.as_deref() == Some("hashed-ngram") {
        return Ok(Architecture::HashedNgram);
    }
    if dir.join("modules.json").is_file() {
        return Ok(Architecture::SentenceTransformer);
    }
    let Some(name) = head.architectures.as_ref().and_then(|a| a.first()) else {
        return Err(ClassifierError::Config {
            path: config_path,
            message:
                "no `architectures` entry (and no modules.json for a sentence-transformers encoder)"
                    .into(),
        });
    };
    Ok(match name.as_str() {
        "HashedNgramClassifier" => Architecture::HashedNgram,
        "BertForSequenceClassification" => Architecture::Bert,
        "DistilBertForSequenceClassification" => Architecture::DistilBert,
        "XLMRobertaForSequenceClassification" | "RobertaForSequenceClassification" => {
            Architecture::XlmRoberta
        }
        "ModernBertForSequenceClassification" => Architecture::ModernBert,
        "DebertaV2ForSequenceClassification" => Architecture::DebertaV2,
        other => {
            return Err(ClassifierError::UnsupportedArchitecture {
                architecture: other.to_string(),
                path: config_path,
            })
        }
    })
}

/// The labels of a model and how to turn its outputs into probabilities.
#[derive(Debug, Clone, PartialEq)]
pub struct Labels {
    names: Vec<String>,
    problem_type: ProblemType,
}

impl Labels {
    /// Builds the label set from a head config. `outputs` is the number of outputs, when known
    /// from the weights; it must agree with `id2label`/`num_labels` when those are given.
    pub(crate) fn from_head(
        head: &HeadConfig,
        outputs: Option<usize>,
        path: &Path,
    ) -> Result<Labels> {
        let config_err = |message: String| ClassifierError::Config {
            path: path.to_path_buf(),
            message,
        };
        let mut by_index: BTreeMap<usize, String> = BTreeMap::new();
        if let Some(map) = &head.id2label {
            for (k, v) in map {
                let index = k
                    .parse::<usize>()
                    .map_err(|_| config_err(format!("id2label key {k:?} is not an integer")))?;
                by_index.insert(index, v.clone());
            }
        }
        let count = match (outputs, head.num_labels, by_index.len()) {
            (Some(n), _, _) => n,
            (None, Some(n), _) => n,
            (None, None, 0) => 2,
            (None, None, n) => n,
        };
        if count == 0 {
            return Err(config_err("the model has no outputs".into()));
        }
        if count > MAX_LABELS {
            return Err(config_err(format!(
                "num_labels is {count}, more than the {MAX_LABELS} outputs this crate accepts"
            )));
        }
        if let Some(n) = head.num_labels {
            if n != count {
                return Err(config_err(format!(
                    "num_labels is {n} but the classifier has {count} outputs"
                )));
            }
        }
        if !by_index.is_empty() && by_index.len() != count {
            return Err(config_err(format!(
                "id2label has {} entries but the classifier has {count} outputs",
                by_index.len()
            )));
        }
        let names = (0..count)
            .map(|i| match by_index.get(&i) {
                Some(name) => Ok(name.clone()),
                None if by_index.is_empty() => Ok(format!("LABEL_{i}")),
                None => Err(config_err(format!("id2label has no entry for index {i}"))),
            })
            .collect::<Result<Vec<_>>>()?;
        let problem_type = match head.problem_type.as_deref() {
            Some("single_label_classification") if count > 1 => ProblemType::SingleLabel,
            Some("single_label_classification") | Some("regression") => ProblemType::Regression,
            Some("multi_label_classification") => ProblemType::MultiLabel,
            None if count == 1 => ProblemType::Regression,
            None => ProblemType::SingleLabel,
            Some(other) => return Err(config_err(format!("unknown problem_type {other:?}"))),
        };
        Ok(Labels {
            names,
            problem_type,
        })
    }

    /// Label names by output index.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// How outputs become probabilities.
    pub fn problem_type(&self) -> ProblemType {
        self.problem_type
    }

    /// Resolves a selector to an output index.
    pub(crate) fn resolve(&self, selector: &crate::LabelSelector) -> Result<usize> {
        let unknown = |label: String| ClassifierError::UnknownLabel {
            label,
            available: self.names.join(", "),
        };
        match selector {
            crate::LabelSelector::Auto => match self.names.len() {
                1 => Ok(0),
                2 => Ok(1),
                n => Err(unknown(format!(
                    "(automatic: the model has {n} outputs, name one explicitly)"
                ))),
            },
            crate::LabelSelector::Index(i) if *i < self.names.len() => Ok(*i),
            crate::LabelSelector::Index(i) => Err(unknown(format!("#{i}"))),
            crate::LabelSelector::Name(name) => self
                .names
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| unknown(format!("{name:?}"))),
        }
    }

    /// The score of output `index` for one row of logits.
    pub(crate) fn score(&self, logits: &[f32], index: usize) -> f32 {
        let x = logits[index];
        match self.problem_type {
            ProblemType::Regression => x,
            ProblemType::MultiLabel => sigmoid(x),
            ProblemType::SingleLabel => {
                let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let sum: f32 = logits.iter().map(|&v| (v - max).exp()).sum();
                (x - max).exp() / sum
            }
        }
    }
}

fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Paths of a checkpoint directory.
#[derive(Debug, Clone)]
pub(crate) struct ModelFiles {
    pub dir: PathBuf,
}

impl ModelFiles {
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.json")
    }
    pub fn weights(&self) -> PathBuf {
        self.dir.join("model.safetensors")
    }
    pub fn tokenizer(&self) -> PathBuf {
        self.dir.join("tokenizer.json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LabelSelector;

    fn head(json: &str) -> HeadConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn labels_from_id2label() {
        let h = head(r#"{"id2label": {"0": "clean", "1": "toxic"}}"#);
        let labels = Labels::from_head(&h, None, Path::new("c.json")).unwrap();
        assert_eq!(labels.names(), ["clean", "toxic"]);
        assert_eq!(labels.problem_type(), ProblemType::SingleLabel);
        assert_eq!(labels.resolve(&LabelSelector::Auto).unwrap(), 1);
        assert_eq!(
            labels
                .resolve(&LabelSelector::Name("clean".into()))
                .unwrap(),
            0
        );
        assert!(labels.resolve(&LabelSelector::Name("spam".into())).is_err());
        assert!(labels.resolve(&LabelSelector::Index(2)).is_err());
    }

    #[test]
    fn one_output_is_regression_and_mismatch_is_an_error() {
        let h = head(r#"{"id2label": {"0": "LABEL_0"}}"#);
        let labels = Labels::from_head(&h, Some(1), Path::new("c.json")).unwrap();
        assert_eq!(labels.problem_type(), ProblemType::Regression);
        assert_eq!(labels.score(&[2.5], 0), 2.5);
        assert!(Labels::from_head(&h, Some(3), Path::new("c.json")).is_err());
    }

    #[test]
    fn softmax_and_sigmoid_scores() {
        let single = Labels {
            names: vec!["a".into(), "b".into()],
            problem_type: ProblemType::SingleLabel,
        };
        let p = single.score(&[0.0, 1000.0], 1);
        assert!((p - 1.0).abs() < 1e-6);
        let p = single.score(&[1.0, 1.0], 0);
        assert!((p - 0.5).abs() < 1e-6);
        let multi = Labels {
            problem_type: ProblemType::MultiLabel,
            ..single
        };
        assert!((multi.score(&[0.0, -1000.0], 0) - 0.5).abs() < 1e-6);
        assert!(multi.score(&[0.0, -1000.0], 1) >= 0.0);
    }

    #[test]
    fn unknown_architecture_is_typed() {
        let dir = tempfile::tempdir().unwrap();
        let h = head(r#"{"architectures": ["GPT2LMHeadModel"]}"#);
        let err = detect_architecture(dir.path(), &h).unwrap_err();
        assert!(
            matches!(err, ClassifierError::UnsupportedArchitecture { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("GPT2LMHeadModel"));
    }
}
