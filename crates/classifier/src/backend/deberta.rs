//! `DebertaV2ForSequenceClassification`, using candle-transformers' implementation including its
//! context pooler and classifier.

use candle_core::{Device, Tensor};
use candle_transformers::models::debertav2::{Config, DebertaV2SeqClassificationModel};

use super::{
    declared_labels, load_err, parse_config, var_builder, Backend, Batch, Loaded, ModelInfo,
};
use crate::config::{HeadConfig, ModelFiles};
use crate::error::{ClassifierError, Result};

pub(crate) struct DebertaClassifier {
    model: DebertaV2SeqClassificationModel,
}

pub(crate) fn load(
    files: &ModelFiles,
    config_bytes: &[u8],
    weights: Vec<u8>,
    head: &HeadConfig,
    device: &Device,
) -> Result<Loaded> {
    let mut config: Config = parse_config(config_bytes, files)?;
    let labels = declared_labels(head, files)?;
    if config.pooler_hidden_size.is_none() || config.pooler_hidden_act.is_none() {
        return Err(ClassifierError::Config {
            path: files.config(),
            message: "pooler_hidden_size and pooler_hidden_act are required".into(),
        });
    }
    config.pooler_dropout.get_or_insert(0.0);
    // Size the classifier from the labels this crate resolved (id2label or num_labels).
    config.id2label = Some(
        labels
            .names()
            .iter()
            .enumerate()
            .map(|(i, n)| (i as u32, n.clone()))
            .collect(),
    );
    let vb = var_builder(weights, files, device)?;
    let model = DebertaV2SeqClassificationModel::load(vb.pp("deberta"), &config, None)
        .map_err(load_err(files))?;
    // With relative attention and no absolute positions the length is not bounded by a table.
    let max_tokens = config
        .position_biased_input
        .then_some(config.max_position_embeddings);
    Ok(Loaded {
        backend: Box::new(DebertaClassifier { model }),
        info: ModelInfo {
            name: "deberta-v2",
            pad_id: config.pad_token_id.unwrap_or(0) as u32,
            vocab_size: config.vocab_size,
            max_tokens,
        },
        labels: Some(labels),
    })
}

impl Backend for DebertaClassifier {
    fn logits(&self, batch: &Batch) -> Result<Tensor> {
        Ok(self.model.forward(
            &batch.input_ids,
            Some(batch.token_type_ids.clone()),
            Some(batch.attention_mask.clone()),
        )?)
    }
}
