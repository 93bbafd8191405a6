//! `DistilBertForSequenceClassification`.
//!
//! candle-transformers' DistilBERT computes `"gelu"` with the tanh approximation where PyTorch
//! uses the exact erf form (logits differ by ~5e-4 on the fixture), so this backend runs
//! DistilBERT's weights through candle's BERT encoder instead: the two share one layer structure
//! (post-norm self-attention and feed-forward blocks, learned absolute positions); DistilBERT just
//! names the tensors differently and has no token-type embeddings (a zero table stands in).
//! The `pre_classifier` → ReLU → `classifier` head is written here.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::{Linear, VarBuilder};
use candle_transformers::models::bert::{Config as BertConfig, HiddenAct};

use super::bert_encoder::{fixed_rows_linear, BertEncoder};
use serde::Deserialize;

use super::{declared_labels, parse_config, Backend, Batch, Loaded, ModelInfo};
use crate::config::{HeadConfig, ModelFiles};
use crate::error::{weights_error, ClassifierError, Result};

#[derive(Deserialize)]
struct Config {
    vocab_size: usize,
    dim: usize,
    n_layers: usize,
    n_heads: usize,
    hidden_dim: usize,
    #[serde(default = "default_activation")]
    activation: String,
    max_position_embeddings: usize,
    #[serde(default)]
    pad_token_id: Option<usize>,
    #[serde(default)]
    sinusoidal_pos_embds: bool,
}

fn default_activation() -> String {
    "gelu".into()
}

pub(crate) struct DistilBertClassifier {
    model: BertEncoder,
    pre_classifier: Linear,
    classifier: Linear,
}

/// DistilBERT tensor name → the BERT name candle's encoder asks for.
fn to_bert(name: &str) -> Option<String> {
    let rest = name.strip_prefix("distilbert.")?;
    if let Some(e) = rest.strip_prefix("embeddings.") {
        return Some(format!("embeddings.{e}"));
    }
    let rest = rest.strip_prefix("transformer.layer.")?;
    let (layer, tail) = rest.split_once('.')?;
    let mapped = [
        ("attention.q_lin.", "attention.self.query."),
        ("attention.k_lin.", "attention.self.key."),
        ("attention.v_lin.", "attention.self.value."),
        ("attention.out_lin.", "attention.output.dense."),
        ("sa_layer_norm.", "attention.output.LayerNorm."),
        ("ffn.lin1.", "intermediate.dense."),
        ("ffn.lin2.", "output.dense."),
        ("output_layer_norm.", "output.LayerNorm."),
    ]
    .iter()
    .find_map(|(from, to)| tail.strip_prefix(from).map(|p| format!("{to}{p}")))?;
    Some(format!("encoder.layer.{layer}.{mapped}"))
}

/// The inverse of [`to_bert`], for naming a missing tensor in errors.
fn to_distilbert(name: &str) -> String {
    if let Some(e) = name.strip_prefix("embeddings.") {
        return format!("distilbert.embeddings.{e}");
    }
    if let Some(rest) = name.strip_prefix("encoder.layer.") {
        if let Some((layer, tail)) = rest.split_once('.') {
            for (to, from) in [
                ("attention.q_lin.", "attention.self.query."),
                ("attention.k_lin.", "attention.self.key."),
                ("attention.v_lin.", "attention.self.value."),
                ("attention.out_lin.", "attention.output.dense."),
                ("sa_layer_norm.", "attention.output.LayerNorm."),
                ("ffn.lin1.", "intermediate.dense."),
                ("ffn.lin2.", "output.dense."),
                ("output_layer_norm.", "output.LayerNorm."),
            ] {
                if let Some(p) = tail.strip_prefix(from) {
                    return format!("distilbert.transformer.layer.{layer}.{to}{p}");
                }
            }
        }
    }
    name.to_string()
}

fn rename_error(err: ClassifierError) -> ClassifierError {
    match err {
        ClassifierError::MissingTensor { tensor, path } => ClassifierError::MissingTensor {
            tensor: to_distilbert(&tensor),
            path,
        },
        ClassifierError::TensorShape {
            tensor,
            path,
            expected,
            actual,
        } => ClassifierError::TensorShape {
            tensor: to_distilbert(&tensor),
            path,
            expected,
            actual,
        },
        other => other,
    }
}

pub(crate) fn load(
    files: &ModelFiles,
    config_bytes: &[u8],
    weights: Vec<u8>,
    head: &HeadConfig,
    device: &Device,
) -> Result<Loaded> {
    let config: Config = parse_config(config_bytes, files)?;
    let hidden_act = match config.activation.as_str() {
        "gelu" => HiddenAct::Gelu,
        "relu" => HiddenAct::Relu,
        other => {
            return Err(ClassifierError::Config {
                path: files.config(),
                message: format!("unsupported DistilBERT activation {other:?}"),
            })
        }
    };
    let _ = config.sinusoidal_pos_embds; // the table is stored in the weights either way
    let labels = declared_labels(head, files)?;
    let weights_path = files.weights();
    let err = |e| weights_error(e, &weights_path);
    let stored = candle_core::safetensors::load_buffer(&weights, device).map_err(err)?;
    let mut tensors: HashMap<String, Tensor> = HashMap::with_capacity(stored.len() + 1);
    let mut head_tensors: HashMap<String, Tensor> = HashMap::new();
    for (name, tensor) in stored {
        let tensor = tensor.to_dtype(DType::F32).map_err(err)?;
        match to_bert(&name) {
            Some(bert_name) => {
                tensors.insert(bert_name, tensor);
            }
            None => {
                head_tensors.insert(name, tensor);
            }
        }
    }
    tensors.insert(
        "embeddings.token_type_embeddings.weight".into(),
        Tensor::zeros((1, config.dim), DType::F32, device).map_err(err)?,
    );
    let bert_config = BertConfig {
        vocab_size: config.vocab_size,
        hidden_size: config.dim,
        num_hidden_layers: config.n_layers,
        num_attention_heads: config.n_heads,
        intermediate_size: config.hidden_dim,
        hidden_act,
        hidden_dropout_prob: 0.0,
        max_position_embeddings: config.max_position_embeddings,
        type_vocab_size: 1,
        initializer_range: 0.02,
        layer_norm_eps: 1e-12,
        pad_token_id: config.pad_token_id.unwrap_or(0),
        position_embedding_type: Default::default(),
        use_cache: false,
        classifier_dropout: None,
        model_type: None,
    };
    let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
    let model = BertEncoder::load(vb, &bert_config).map_err(|e| rename_error(err(e)))?;
    let vb = VarBuilder::from_tensors(head_tensors, DType::F32, device);
    let pre_classifier =
        candle_nn::linear(config.dim, config.dim, vb.pp("pre_classifier")).map_err(err)?;
    let classifier =
        candle_nn::linear(config.dim, labels.names().len(), vb.pp("classifier")).map_err(err)?;
    Ok(Loaded {
        backend: Box::new(DistilBertClassifier {
            model,
            pre_classifier,
            classifier,
        }),
        info: ModelInfo {
            name: "distilbert",
            pad_id: config.pad_token_id.unwrap_or(0) as u32,
            vocab_size: config.vocab_size,
            max_tokens: Some(config.max_position_embeddings),
        },
        labels: Some(labels),
    })
}

impl Backend for DistilBertClassifier {
    fn logits(&self, batch: &Batch) -> Result<Tensor> {
        let hidden = self.model.forward(
            &batch.input_ids,
            &batch.token_type_ids,
            &batch.attention_mask,
        )?;
        let pooled =
            fixed_rows_linear(&self.pre_classifier, &super::first_token(&hidden)?)?.relu()?;
        Ok(fixed_rows_linear(&self.classifier, &pooled)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in [
            "distilbert.embeddings.word_embeddings.weight",
            "distilbert.transformer.layer.3.attention.q_lin.bias",
            "distilbert.transformer.layer.0.sa_layer_norm.weight",
            "distilbert.transformer.layer.11.ffn.lin2.weight",
            "distilbert.transformer.layer.1.output_layer_norm.bias",
        ] {
            let bert = to_bert(name).unwrap();
            assert_eq!(to_distilbert(&bert), name);
        }
        assert_eq!(to_bert("pre_classifier.weight"), None);
    }
}
