//! A sentence-transformers encoder (`modules.json`: Transformer → Pooling [→ Normalize]) with an
//! optional linear head stored beside it.
//!
//! The head lives in `head.safetensors` (tensors `weight`, shape `(outputs, hidden)`, and `bias`,
//! shape `(outputs,)`), with an optional `head.json` carrying `id2label` and `problem_type` like a
//! Hugging Face config. Without a head the model can still [`embed`](crate::Classifier::embed).
//!
//! A head may have one hidden layer (what `sluice train --kind head --hidden N` writes): then
//! `head.safetensors` also holds `hidden.weight` `(N, hidden)` and `hidden.bias` `(N,)`, `weight`
//! is `(outputs, N)`, and `head.json`'s `head_activation` names the activation between the two
//! layers (`relu`, the default, `gelu` or `tanh`).

use std::path::Path;

use candle_core::{DType, Tensor};
use candle_nn::Linear;
use candle_transformers::models::bert::Config;

use super::bert_encoder::{fixed_rows_linear, BertEncoder};
use serde::Deserialize;

use super::{load_err, parse_config, var_builder, Backend, Batch, Loaded, ModelInfo};
use crate::config::{read_file, read_json, HeadConfig, Labels, ModelFiles};
use crate::error::{weights_error, ClassifierError, Result};

/// File name of the linear head's weights.
pub const HEAD_WEIGHTS: &str = "head.safetensors";
/// File name of the linear head's label configuration.
pub const HEAD_CONFIG: &str = "head.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pooling {
    Cls,
    Mean,
    Max,
}

#[derive(Deserialize)]
struct Module_ {
    #[serde(default)]
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

/// The classification head: linear, or with one hidden layer.
struct Head {
    hidden: Option<(Linear, Activation)>,
    output: Linear,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Activation {
    Relu,
    Gelu,
    Tanh,
}

/// The part of head.json that only hidden-layer heads use.
#[derive(Deserialize)]
struct HeadShape {
    #[serde(default)]
    head_activation: Option<Activation>,
}

impl Head {
    fn forward(&self, pooled: &Tensor) -> candle_core::Result<Tensor> {
        match &self.hidden {
            None => fixed_rows_linear(&self.output, pooled),
            Some((layer, activation)) => {
                let x = fixed_rows_linear(layer, pooled)?;
                let x = match activation {
                    Activation::Relu => x.relu()?,
                    Activation::Gelu => x.gelu_erf()?,
                    Activation::Tanh => x.tanh()?,
                };
                fixed_rows_linear(&self.output, &x)
            }
        }
    }
}

#[derive(Deserialize)]
struct EncoderKind {
    #[serde(default)]
    model_type: Option<String>,
}

pub(crate) struct SentenceEncoder {
    model: BertEncoder,
    pooling: Pooling,
    normalize: bool,
    head: Option<Head>,
}

/// Reads modules.json and the pooling config: (pooling, normalize).
fn read_modules(dir: &Path) -> Result<(Pooling, bool)> {
    let modules_path = dir.join("modules.json");
    let modules: Vec<Module_> = read_json(&modules_path)?;
    let mut pooling = None;
    let mut normalize = false;
    for m in &modules {
        if m.kind.ends_with(".Pooling") {
            let path = dir.join(&m.path).join("config.json");
            let cfg: PoolingConfig = read_json(&path)?;
            let mode = match (
                cfg.pooling_mode_cls_token,
                cfg.pooling_mode_mean_tokens,
                cfg.pooling_mode_max_tokens,
                cfg.pooling_mode_mean_sqrt_len_tokens,
            ) {
                (true, false, false, false) => Pooling::Cls,
                (false, true, false, false) => Pooling::Mean,
                (false, false, true, false) => Pooling::Max,
                _ => {
                    return Err(ClassifierError::Config {
                        path,
                        message:
                            "exactly one of pooling_mode_cls_token, pooling_mode_mean_tokens, \
                                  pooling_mode_max_tokens must be set"
                                .into(),
                    })
                }
            };
            pooling = Some(mode);
        } else if m.kind.ends_with(".Normalize") {
            normalize = true;
        } else if !m.kind.ends_with(".Transformer") {
            return Err(ClassifierError::Config {
                path: modules_path,
                message: format!("unsupported sentence-transformers module {}", m.kind),
            });
        }
    }
    let pooling = pooling.ok_or_else(|| ClassifierError::Config {
        path: modules_path,
        message: "no Pooling module".into(),
    })?;
    Ok((pooling, normalize))
}

pub(crate) fn load(
    files: &ModelFiles,
    config_bytes: &[u8],
    weights: Vec<u8>,
    device: &candle_core::Device,
) -> Result<Loaded> {
    let kind: EncoderKind = parse_config(config_bytes, files)?;
    if kind.model_type.as_deref().unwrap_or("bert") != "bert" {
        return Err(ClassifierError::UnsupportedArchitecture {
            architecture: format!(
                "sentence-transformers encoder of model_type {:?} (only bert)",
                kind.model_type.unwrap_or_default()
            ),
            path: files.config(),
        });
    }
    let config: Config = parse_config(config_bytes, files)?;
    let (pooling, normalize) = read_modules(&files.dir)?;
    let vb = var_builder(weights, files, device)?;
    let model = BertEncoder::load(vb, &config).map_err(load_err(files))?;

    let head_path = files.dir.join(HEAD_WEIGHTS);
    let (head, labels) = if head_path.is_file() {
        let bytes = read_file(&head_path)?;
        let vb = candle_nn::VarBuilder::from_buffered_safetensors(bytes, DType::F32, device)
            .map_err(|e| weights_error(e, &head_path))?;
        let tensor = |name: &str, shape: Option<Vec<usize>>| -> Result<Tensor> {
            let t = match shape {
                Some(shape) => vb.get(shape, name),
                None => vb.get_unchecked(name),
            };
            t.map_err(|e| weights_error(e, &head_path))
        };
        let head_cfg_path = files.dir.join(HEAD_CONFIG);
        let (head_cfg, shape): (HeadConfig, HeadShape) = if head_cfg_path.is_file() {
            (read_json(&head_cfg_path)?, read_json(&head_cfg_path)?)
        } else {
            (
                HeadConfig::default(),
                HeadShape {
                    head_activation: None,
                },
            )
        };
        // With a hidden layer, the output layer's input is that layer's width.
        let (hidden, input_width) = if vb.contains_tensor("hidden.weight") {
            let w = tensor("hidden.weight", None)?;
            let (units, width) = w.dims2().map_err(|e| weights_error(e, &head_path))?;
            if width != config.hidden_size {
                return Err(ClassifierError::TensorShape {
                    tensor: "hidden.weight".into(),
                    path: head_path,
                    expected: vec![units, config.hidden_size],
                    actual: vec![units, width],
                });
            }
            let b = tensor("hidden.bias", Some(vec![units]))?;
            let activation = shape.head_activation.unwrap_or(Activation::Relu);
            (Some((Linear::new(w, Some(b)), activation)), units)
        } else {
            (None, config.hidden_size)
        };
        let weight = tensor("weight", None)?;
        let (outputs, width) = weight.dims2().map_err(|e| weights_error(e, &head_path))?;
        if width != input_width {
            return Err(ClassifierError::TensorShape {
                tensor: "weight".into(),
                path: head_path,
                expected: vec![outputs, input_width],
                actual: vec![outputs, width],
            });
        }
        let bias = tensor("bias", Some(vec![outputs]))?;
        let labels = Labels::from_head(&head_cfg, Some(outputs), &head_cfg_path)?;
        let head = Head {
            hidden,
            output: Linear::new(weight, Some(bias)),
        };
        (Some(head), Some(labels))
    } else {
        (None, None)
    };

    Ok(Loaded {
        backend: Box::new(SentenceEncoder {
            model,
            pooling,
            normalize,
            head,
        }),
        info: ModelInfo {
            name: "sentence-transformers",
            pad_id: config.pad_token_id as u32,
            vocab_size: config.vocab_size,
            max_tokens: Some(config.max_position_embeddings),
        },
        labels,
    })
}

impl SentenceEncoder {
    fn sentence_embeddings(&self, batch: &Batch) -> candle_core::Result<Tensor> {
        let hidden = self.model.forward(
            &batch.input_ids,
            &batch.token_type_ids,
            &batch.attention_mask,
        )?;
        let pooled = match self.pooling {
            Pooling::Cls => super::first_token(&hidden)?,
            Pooling::Mean => super::masked_mean(&hidden, &batch.attention_mask)?,
            Pooling::Max => {
                // Padding positions get a large negative value so they never win the max.
                let mask = batch
                    .attention_mask
                    .to_dtype(hidden.dtype())?
                    .unsqueeze(2)?;
                let penalty = ((mask.ones_like()? - &mask)? * -1e9)?;
                hidden.broadcast_add(&penalty)?.max(1)?
            }
        };
        if self.normalize {
            let norm = pooled
                .sqr()?
                .sum_keepdim(1)?
                .sqrt()?
                .clamp(1e-12, f64::MAX)?;
            pooled.broadcast_div(&norm)
        } else {
            Ok(pooled)
        }
    }
}

impl Backend for SentenceEncoder {
    fn logits(&self, batch: &Batch) -> Result<Tensor> {
        let Some(head) = &self.head else {
            // Unreachable through Classifier (it checks for labels first); kept typed anyway.
            return Err(ClassifierError::NoEmbeddings(
                "sentence-transformers (no head)",
            ));
        };
        Ok(head.forward(&self.sentence_embeddings(batch)?)?)
    }

    fn embed(&self, batch: &Batch) -> Option<Result<Tensor>> {
        Some(self.sentence_embeddings(batch).map_err(Into::into))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pooling_and_normalize() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("modules.json"),
            r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
                {"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},
                {"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}]"#,
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("1_Pooling")).unwrap();
        std::fs::write(
            dir.path().join("1_Pooling/config.json"),
            r#"{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}"#,
        )
        .unwrap();
        assert_eq!(read_modules(dir.path()).unwrap(), (Pooling::Cls, true));
        std::fs::write(
            dir.path().join("1_Pooling/config.json"),
            r#"{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": true}"#,
        )
        .unwrap();
        assert!(read_modules(dir.path()).is_err());
    }
}
