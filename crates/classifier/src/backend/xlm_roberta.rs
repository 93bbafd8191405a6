//! `XLMRobertaForSequenceClassification` (and RoBERTa, which has the same layout), using
//! candle-transformers' implementation including its classification head.

use candle_core::Tensor;
use candle_transformers::models::xlm_roberta::{Config, XLMRobertaForSequenceClassification};

use super::{
    declared_labels, load_err, parse_config_with_defaults, var_builder, Backend, Batch, Loaded,
    ModelInfo,
};
use crate::config::{HeadConfig, ModelFiles};
use crate::error::{ClassifierError, Result};

pub(crate) struct XlmRobertaClassifier {
    model: XLMRobertaForSequenceClassification,
}

pub(crate) fn load(
    files: &ModelFiles,
    config_bytes: &[u8],
    weights: Vec<u8>,
    head: &HeadConfig,
    device: &candle_core::Device,
) -> Result<Loaded> {
    let config: Config = parse_config_with_defaults(
        config_bytes,
        files,
        &[("position_embedding_type", "absolute".into())],
    )?;
    if config.position_embedding_type != "absolute" {
        return Err(ClassifierError::Config {
            path: files.config(),
            message: format!(
                "position_embedding_type {:?} is not supported (only \"absolute\")",
                config.position_embedding_type
            ),
        });
    }
    let labels = declared_labels(head, files)?;
    let vb = var_builder(weights, files, device)?;
    let model = XLMRobertaForSequenceClassification::new(labels.names().len(), &config, vb)
        .map_err(load_err(files))?;
    Ok(Loaded {
        backend: Box::new(XlmRobertaClassifier { model }),
        info: ModelInfo {
            name: "xlm-roberta",
            pad_id: config.pad_token_id,
            vocab_size: config.vocab_size,
            // Positions start after the padding index: ids pad+1 ..= pad+len.
            max_tokens: Some(
                config
                    .max_position_embeddings
                    .saturating_sub(config.pad_token_id as usize + 1),
            ),
        },
        labels: Some(labels),
    })
}

impl Backend for XlmRobertaClassifier {
    fn logits(&self, batch: &Batch) -> Result<Tensor> {
        Ok(self.model.forward(
            &batch.input_ids,
            &batch.attention_mask,
            &batch.token_type_ids,
        )?)
    }
}
