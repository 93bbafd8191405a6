//! Model backends: one trait, one implementation per architecture family.
//!
//! A backend receives a padded batch of token windows (right padding, `attention_mask` 1 for real
//! tokens) on the device chosen at construction and returns one row of outputs per window:
//! classification logits ([`Backend::logits`]) or, for sentence encoders, pooled embeddings
//! ([`Backend::embed`]). Everything else (tokenizing, windowing, batching, label selection and
//! aggregation) is shared and lives in the crate root.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::config::{HeadConfig, Labels, ModelFiles};
use crate::error::{weights_error, ClassifierError, Result};

pub(crate) mod bert;
pub(crate) mod bert_encoder;
pub(crate) mod deberta;
pub(crate) mod distilbert;
pub(crate) mod hashed;
mod kernels;
pub(crate) mod modernbert;
pub(crate) mod sentence;
pub(crate) mod xlm_roberta;

/// One padded batch of windows.
pub(crate) struct Batch {
    /// `(batch, len)` u32 token ids, padded with the backend's pad id.
    pub input_ids: Tensor,
    /// `(batch, len)` u32, 1 for real tokens and 0 for padding.
    pub attention_mask: Tensor,
    /// `(batch, len)` u32 zeros (single-sequence inputs).
    pub token_type_ids: Tensor,
}

/// A loaded model, text-embeddings-inference style: the device is fixed at load time.
pub(crate) trait Backend: Send + Sync {
    /// `(batch, outputs)` f32 logits (raw head outputs, before softmax/sigmoid).
    fn logits(&self, batch: &Batch) -> Result<Tensor>;

    /// `(batch, hidden)` f32 sentence embeddings, or `None` for a model that has none (only
    /// sentence-transformers encoders do). The caller reports that, naming the architecture.
    fn embed(&self, _batch: &Batch) -> Option<Result<Tensor>> {
        None
    }
}

/// What the shared code needs to know about a model, read from its config at load time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ModelInfo {
    /// Short name of the architecture family.
    pub name: &'static str,
    /// Token id used for padding (matters for models that derive positions from it).
    pub pad_id: u32,
    /// Size of the token embedding table: ids at or above it are rejected before the forward
    /// pass (a tokenizer that does not belong to the weights), instead of failing inside it.
    pub vocab_size: usize,
    /// The longest window, in tokens, the model accepts (its position table), if limited.
    pub max_tokens: Option<usize>,
}

/// A backend plus what the shared code needs to know about it.
pub(crate) struct Loaded {
    pub backend: Box<dyn Backend>,
    pub info: ModelInfo,
    /// `None` for an encoder without a classification head.
    pub labels: Option<Labels>,
}

/// Loads `model.safetensors` into a VarBuilder (kept in memory: no unsafe mmap).
pub(crate) fn var_builder(
    weights: Vec<u8>,
    files: &ModelFiles,
    device: &Device,
) -> Result<VarBuilder<'static>> {
    VarBuilder::from_buffered_safetensors(weights, DType::F32, device)
        .map_err(|e| weights_error(e, &files.weights()))
}

/// Parses an architecture-specific config from `config.json` bytes.
pub(crate) fn parse_config<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    files: &ModelFiles,
) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| ClassifierError::Json {
        path: files.config(),
        source,
    })
}

/// Number of outputs a head config declares, for sizing the classifier layer.
pub(crate) fn declared_labels(head: &HeadConfig, files: &ModelFiles) -> Result<Labels> {
    Labels::from_head(head, None, &files.config())
}

/// Turns a candle loading error into a typed error naming the weights file.
pub(crate) fn load_err(files: &ModelFiles) -> impl Fn(candle_core::Error) -> ClassifierError + '_ {
    move |e| weights_error(e, &files.weights())
}

/// `(batch, len, hidden)` → `(batch, hidden)`: the first token's state.
pub(crate) fn first_token(hidden: &Tensor) -> candle_core::Result<Tensor> {
    hidden.narrow(1, 0, 1)?.squeeze(1)?.contiguous()
}

/// Masked mean over the sequence: `(batch, len, hidden)` with `(batch, len)` u32 mask.
pub(crate) fn masked_mean(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let mask = mask.to_dtype(hidden.dtype())?.unsqueeze(2)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?.clamp(1.0, f64::MAX)?;
    summed.broadcast_div(&counts)
}

/// Parses an architecture-specific config after filling in fields that newer `transformers`
/// versions no longer write (their values are the old defaults).
pub(crate) fn parse_config_with_defaults<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    files: &ModelFiles,
    defaults: &[(&str, serde_json::Value)],
) -> Result<T> {
    let mut value: serde_json::Value = parse_config(bytes, files)?;
    if let Some(object) = value.as_object_mut() {
        for (key, default) in defaults {
            if object.get(*key).is_none_or(serde_json::Value::is_null) {
                object.insert((*key).to_string(), default.clone());
            }
        }
    }
    serde_json::from_value(value).map_err(|source| ClassifierError::Json {
        path: files.config(),
        source,
    })
}
