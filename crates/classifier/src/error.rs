//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while loading a classifier or scoring documents.
///
/// Loading errors name the file (and, for weights, the tensor) at fault; scoring errors are rare
/// (tokenizer failures on pathological input, device errors) and never panics.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClassifierError {
    /// A file of the model directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file of the model directory is not valid JSON or lacks a required field.
    #[error("cannot parse {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// A configuration file is well-formed JSON but describes something this crate cannot run.
    #[error("invalid model configuration {path}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// `config.json` names an architecture this crate does not implement.
    #[error(
        "unsupported architecture {architecture:?} in {path} (supported: {})",
        crate::SUPPORTED_ARCHITECTURES.join(", ")
    )]
    UnsupportedArchitecture {
        /// The architecture named by the checkpoint.
        architecture: String,
        /// The config file naming it.
        path: PathBuf,
    },
    /// The weights file lacks a tensor the architecture needs.
    #[error("missing tensor `{tensor}` in {path}")]
    MissingTensor {
        /// Full dotted name of the tensor.
        tensor: String,
        /// The weights file.
        path: PathBuf,
    },
    /// A tensor of the weights file has a shape that disagrees with the configuration.
    #[error("tensor `{tensor}` in {path} has shape {actual:?}, expected {expected:?}")]
    TensorShape {
        /// Full dotted name of the tensor (empty when candle did not report it).
        tensor: String,
        /// The weights file.
        path: PathBuf,
        /// Shape implied by the configuration.
        expected: Vec<usize>,
        /// Shape found in the file.
        actual: Vec<usize>,
    },
    /// Building the model from its weights failed for another reason.
    #[error("cannot load weights from {path}: {message}")]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// candle's description of the failure.
        message: String,
    },
    /// `tokenizer.json` could not be loaded or configured, or tokenizing failed.
    #[error("tokenizer {path}: {message}")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The configured label is not one of the model's outputs.
    #[error("label {label} is not an output of this model (labels: {available})")]
    UnknownLabel {
        /// The label asked for, as written.
        label: String,
        /// The labels the model has, comma-separated.
        available: String,
    },
    /// The requested device cannot be used by this build or this machine.
    #[error("device {device} is unavailable: {reason}")]
    DeviceUnavailable {
        /// The device asked for, e.g. `cuda:0`.
        device: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A [`crate::ClassifierOptions`] value is out of range.
    #[error("invalid classifier options: {0}")]
    InvalidOptions(String),
    /// The model is an encoder without a classification head: it can embed but not score.
    #[error("the model in {0} has no classification head (add head.safetensors to score with it)")]
    NoHead(PathBuf),
    /// The model cannot produce sentence embeddings (only sentence-transformers encoders can).
    #[error("the {0} backend does not produce sentence embeddings")]
    NoEmbeddings(&'static str),
    /// The model's output for a document is NaN or infinite (NaN or infinite weights, or an input
    /// that overflows): a model failure, never a score. `window` is the window whose score it is,
    /// `None` when the windows are finite but their aggregate is not (a mean that overflows).
    #[error(
        "the model scored {value} for document {document}{}: a model failure, not a score (are \
         its weights finite? `sluice check` probes for this)",
        window.map_or_else(String::new, |w| format!(", window {w}"))
    )]
    NonFiniteScore {
        /// Index of the document in the call.
        document: usize,
        /// Index of the window in the document, when one window is at fault.
        window: Option<usize>,
        /// The value (NaN, inf or -inf).
        value: f32,
    },
    /// `tokenizer.json` has token ids beyond the model's vocabulary: it does not belong to these
    /// weights (every text containing such a token would fail).
    #[error(
        "{} has {tokenizer_size} token ids (0 to {}) but the model's vocabulary has \
         {model_size} entries (vocab_size in {}, rows of the embedding table): the tokenizer does \
         not belong to these weights",
        tokenizer.display(),
        tokenizer_size.saturating_sub(1),
        config.display()
    )]
    VocabularyMismatch {
        /// The tokenizer file.
        tokenizer: PathBuf,
        /// The model's config file.
        config: PathBuf,
        /// One more than the tokenizer's largest token id (added tokens included).
        tokenizer_size: usize,
        /// The model's vocabulary size.
        model_size: usize,
    },
    /// A tensor computation failed while scoring.
    #[error("model computation failed: {0}")]
    Compute(#[from] candle_core::Error),
}

/// Shorthand for results of this crate.
pub type Result<T, E = ClassifierError> = std::result::Result<T, E>;

/// Turns a candle error raised while building a model into a typed loading error.
pub(crate) fn weights_error(err: candle_core::Error, path: &std::path::Path) -> ClassifierError {
    let path = path.to_path_buf();
    match innermost(&err) {
        candle_core::Error::CannotFindTensor { path: tensor }
        | candle_core::Error::SafeTensor(safetensors::SafeTensorError::TensorNotFound(tensor)) => {
            ClassifierError::MissingTensor {
                tensor: tensor.clone(),
                path,
            }
        }
        candle_core::Error::UnexpectedShape { msg, expected, got } => {
            ClassifierError::TensorShape {
                tensor: msg
                    .strip_prefix("shape mismatch for ")
                    .unwrap_or(msg)
                    .to_string(),
                path,
                expected: expected.dims().to_vec(),
                actual: got.dims().to_vec(),
            }
        }
        other => ClassifierError::Weights {
            path,
            message: other.to_string(),
        },
    }
}

fn innermost(err: &candle_core::Error) -> &candle_core::Error {
    match err {
        candle_core::Error::WithBacktrace { inner, .. }
        | candle_core::Error::WithPath { inner, .. }
        | candle_core::Error::Context { inner, .. } => innermost(inner),
        other => other,
    }
}
