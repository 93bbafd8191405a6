//! `BertForSequenceClassification`: candle's BERT encoder plus the pooler + classifier head,
//! written here because candle-transformers has no sequence-classification head for BERT.

use candle_core::Tensor;
use candle_nn::Linear;
use candle_transformers::models::bert::Config;

use super::bert_encoder::{fixed_rows_linear, BertEncoder};

use super::{
    declared_labels, load_err, parse_config, var_builder, Backend, Batch, Loaded, ModelInfo,
};
use crate::config::{HeadConfig, ModelFiles};
use crate::error::Result;

pub(crate) struct BertClassifier {
    model: BertEncoder,
    pooler: Linear,
    classifier: Linear,
}

pub(crate) fn load(
    files: &ModelFiles,
    config_bytes: &[u8],
    weights: Vec<u8>,
    head: &HeadConfig,
    device: &candle_core::Device,
) -> Result<Loaded> {
    let config: Config = parse_config(config_bytes, files)?;
    let labels = declared_labels(head, files)?;
    let vb = var_builder(weights, files, device)?;
    let err = load_err(files);
    let model = BertEncoder::load(vb.pp("bert"), &config).map_err(&err)?;
    let pooler = candle_nn::linear(
        config.hidden_size,
        config.hidden_size,
        vb.pp("bert.pooler.dense"),
    )
    .map_err(&err)?;
    let classifier = candle_nn::linear(
        config.hidden_size,
        labels.names().len(),
        vb.pp("classifier"),
    )
    .map_err(&err)?;
    Ok(Loaded {
        backend: Box::new(BertClassifier {
            model,
            pooler,
            classifier,
        }),
        info: ModelInfo {
            name: "bert",
            pad_id: config.pad_token_id as u32,
            vocab_size: config.vocab_size,
            max_tokens: Some(config.max_position_embeddings),
        },
        labels: Some(labels),
    })
}

impl Backend for BertClassifier {
    fn logits(&self, batch: &Batch) -> Result<Tensor> {
        let hidden = self.model.forward(
            &batch.input_ids,
            &batch.token_type_ids,
            &batch.attention_mask,
        )?;
        let pooled = fixed_rows_linear(&self.pooler, &super::first_token(&hidden)?)?.tanh()?;
        Ok(fixed_rows_linear(&self.classifier, &pooled)?)
    }
}
