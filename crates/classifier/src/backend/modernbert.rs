//! `ModernBertForSequenceClassification`: candle-transformers' ModernBERT encoder with the
//! classification head written here.
//!
//! candle's own `ModernBertForSequenceClassification` applies a softmax inside `forward`, which
//! hides the logits (and is wrong for regression or multi-label heads), so only its encoder is
//! used. The head follows `transformers`: CLS or masked-mean pooling (`classifier_pooling`) →
//! `head.dense` (bias per `classifier_bias`) → activation (`classifier_activation`) → `head.norm`
//! (LayerNorm, bias per `norm_bias`) → `classifier`.
//!
//! Newer `transformers` configs describe RoPE with `rope_parameters` and attention with
//! `layer_types`; older ones with `global_rope_theta` / `local_rope_theta`; both are read. The
//! layer pattern must be the regular "global every n layers" one that candle implements.

use candle_core::{Device, Tensor};
use candle_nn::{LayerNorm, Linear, Module};
use candle_transformers::models::modernbert::{Config, ModernBert};
use serde::Deserialize;
use serde_json::Value;

use super::{
    declared_labels, load_err, parse_config, var_builder, Backend, Batch, Loaded, ModelInfo,
};
use crate::config::{HeadConfig, ModelFiles};
use crate::error::{ClassifierError, Result};

#[derive(Deserialize)]
struct HeadOptions {
    #[serde(default = "default_pooling")]
    classifier_pooling: String,
    #[serde(default)]
    classifier_bias: bool,
    #[serde(default = "default_gelu")]
    classifier_activation: String,
    #[serde(default)]
    norm_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default = "default_gelu")]
    hidden_activation: String,
    #[serde(default)]
    pad_token_id: Option<u32>,
}

fn default_pooling() -> String {
    "cls".into()
}

fn default_gelu() -> String {
    "gelu".into()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pooling {
    Cls,
    Mean,
}

pub(crate) struct ModernBertClassifier {
    model: ModernBert,
    dense: Linear,
    norm: LayerNorm,
    classifier: Linear,
    pooling: Pooling,
    gelu_tanh: bool,
}

/// Rewrites a `transformers` 4.x/5.x ModernBERT config into the fields candle's `Config` reads.
fn normalize(mut value: Value, files: &ModelFiles) -> Result<Value> {
    let bad = |message: String| ClassifierError::Config {
        path: files.config(),
        message,
    };
    let Some(obj) = value.as_object_mut() else {
        return Err(bad("config.json is not an object".into()));
    };
    if !obj.contains_key("layer_norm_eps") {
        let eps = obj.get("norm_eps").cloned().unwrap_or(Value::from(1e-5));
        obj.insert("layer_norm_eps".into(), eps);
    }
    for (key, kind) in [
        ("global_rope_theta", "full_attention"),
        ("local_rope_theta", "sliding_attention"),
    ] {
        if obj.get(key).is_none_or(Value::is_null) {
            let theta = obj
                .get("rope_parameters")
                .and_then(|r| r.get(kind))
                .and_then(|r| r.get("rope_theta"))
                .cloned()
                .ok_or_else(|| bad(format!("no {key} and no rope_parameters.{kind}.rope_theta")))?;
            obj.insert(key.into(), theta);
        }
    }
    if let Some(Value::Array(types)) = obj.get("layer_types") {
        let full: Vec<bool> = types
            .iter()
            .map(|t| t.as_str() == Some("full_attention"))
            .collect();
        let n = match obj
            .get("global_attn_every_n_layers")
            .and_then(Value::as_u64)
        {
            Some(n) if n > 0 => n as usize,
            _ => full
                .iter()
                .skip(1)
                .position(|&f| f)
                .map_or(full.len().max(1), |p| p + 1),
        };
        if full.iter().enumerate().any(|(i, &f)| f != (i % n == 0)) {
            return Err(bad(format!(
                "layer_types is not \"global attention every {n} layers\", the only pattern supported"
            )));
        }
        obj.insert("global_attn_every_n_layers".into(), Value::from(n));
    }
    // candle's optional classifier config is not used here; drop the keys it would misread.
    for key in ["id2label", "label2id", "classifier_pooling"] {
        obj.remove(key);
    }
    Ok(value)
}

pub(crate) fn load(
    files: &ModelFiles,
    config_bytes: &[u8],
    weights: Vec<u8>,
    head: &HeadConfig,
    device: &Device,
) -> Result<Loaded> {
    let raw: Value = parse_config(config_bytes, files)?;
    let options: HeadOptions = parse_config(config_bytes, files)?;
    let config: Config =
        serde_json::from_value(normalize(raw, files)?).map_err(|source| ClassifierError::Json {
            path: files.config(),
            source,
        })?;
    let unsupported = |message: String| ClassifierError::Config {
        path: files.config(),
        message,
    };
    if options.mlp_bias || options.attention_bias || options.norm_bias {
        return Err(unsupported(
            "mlp_bias, attention_bias and norm_bias must be false (candle's ModernBERT has no biases)"
                .into(),
        ));
    }
    if options.hidden_activation != "gelu" {
        return Err(unsupported(format!(
            "hidden_activation {:?} is not supported (only \"gelu\")",
            options.hidden_activation
        )));
    }
    let pooling = match options.classifier_pooling.as_str() {
        "cls" => Pooling::Cls,
        "mean" => Pooling::Mean,
        other => {
            return Err(unsupported(format!(
                "classifier_pooling {other:?} is not supported"
            )))
        }
    };
    let gelu_tanh = match options.classifier_activation.as_str() {
        "gelu" => false,
        "gelu_pytorch_tanh" | "gelu_new" => true,
        other => {
            return Err(unsupported(format!(
                "classifier_activation {other:?} is not supported"
            )))
        }
    };
    let labels = declared_labels(head, files)?;
    let vb = var_builder(weights, files, device)?;
    let err = load_err(files);
    let model = ModernBert::load(vb.clone(), &config).map_err(&err)?;
    let h = config.hidden_size;
    let dense = if options.classifier_bias {
        candle_nn::linear(h, h, vb.pp("head.dense"))
    } else {
        candle_nn::linear_no_bias(h, h, vb.pp("head.dense"))
    }
    .map_err(&err)?;
    let norm_weight = vb.get(h, "head.norm.weight").map_err(&err)?;
    let norm = LayerNorm::new_no_bias(norm_weight, config.layer_norm_eps);
    let classifier =
        candle_nn::linear(h, labels.names().len(), vb.pp("classifier")).map_err(&err)?;
    Ok(Loaded {
        backend: Box::new(ModernBertClassifier {
            model,
            dense,
            norm,
            classifier,
            pooling,
            gelu_tanh,
        }),
        info: ModelInfo {
            name: "modernbert",
            pad_id: options.pad_token_id.unwrap_or(config.pad_token_id),
            vocab_size: config.vocab_size,
            max_tokens: Some(config.max_position_embeddings),
        },
        labels: Some(labels),
    })
}

impl Backend for ModernBertClassifier {
    fn logits(&self, batch: &Batch) -> Result<Tensor> {
        let hidden = self
            .model
            .forward(&batch.input_ids, &batch.attention_mask)?;
        let pooled = match self.pooling {
            Pooling::Cls => super::first_token(&hidden)?,
            Pooling::Mean => super::masked_mean(&hidden, &batch.attention_mask)?,
        };
        let x = self.dense.forward(&pooled)?;
        let x = if self.gelu_tanh {
            x.gelu()?
        } else {
            x.gelu_erf()?
        };
        let x = self.norm.forward(&x)?;
        Ok(self.classifier.forward(&x)?)
    }
}
