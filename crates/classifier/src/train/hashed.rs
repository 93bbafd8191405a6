//! Training `hashed-ngram` end to end: the embedding bag and the linear layer learn together, as
//! in fastText, with the tokenizer and hashing the loader uses (`backend/hashed.rs`), so that a
//! trained model scores at inference exactly the features it was trained on.

use std::path::Path;

use candle_core::{Device, Tensor, Var};
use candle_nn::{Embedding, Linear, Module};

use super::rng::SplitMix64;
use super::{fit, label_config, save_tensors, uniform_var, write_json, Job, Outcome, TrainError};
use super::{TrainKind, Trainable};
use crate::backend::hashed::HashedTokenizer;
use crate::backend::masked_mean;
use crate::truncate_to_bytes;

struct HashedTrainer {
    /// Bucket ids of each example (its first `max_tokens` words).
    features: Vec<Vec<u32>>,
    embedding: Var,
    weight: Var,
    bias: Var,
    dim: usize,
}

impl Trainable for HashedTrainer {
    fn vars(&self) -> Vec<Var> {
        vec![
            self.embedding.clone(),
            self.weight.clone(),
            self.bias.clone(),
        ]
    }

    fn logits(&self, examples: &[usize]) -> candle_core::Result<Tensor> {
        let len = examples
            .iter()
            .map(|&i| self.features[i].len())
            .max()
            .unwrap_or(0)
            .max(1);
        let mut ids = Vec::with_capacity(examples.len() * len);
        let mut mask = Vec::with_capacity(examples.len() * len);
        for &i in examples {
            let f = &self.features[i];
            ids.extend_from_slice(f);
            ids.extend(std::iter::repeat_n(0u32, len - f.len()));
            mask.extend(std::iter::repeat_n(1u32, f.len()));
            mask.extend(std::iter::repeat_n(0u32, len - f.len()));
        }
        let ids = Tensor::from_vec(ids, (examples.len(), len), &Device::Cpu)?;
        let mask = Tensor::from_vec(mask, (examples.len(), len), &Device::Cpu)?;
        let embedded =
            Embedding::new(self.embedding.as_tensor().clone(), self.dim).forward(&ids)?;
        let bag = masked_mean(&embedded, &mask)?;
        Linear::new(
            self.weight.as_tensor().clone(),
            Some(self.bias.as_tensor().clone()),
        )
        .forward(&bag)
    }
}

pub(crate) fn train(
    job: &Job<'_>,
    rng: &mut SplitMix64,
    dir: &Path,
) -> Result<Outcome, TrainError> {
    let TrainKind::HashedNgram {
        buckets,
        dim,
        word_ngrams,
    } = job.options.kind
    else {
        unreachable!("called for hashed-ngram only")
    };
    let tokenizer = HashedTokenizer::new(buckets as u64, word_ngrams, true);
    let features = job
        .examples
        .iter()
        .map(|e| {
            let mut words = tokenizer.words(truncate_to_bytes(&e.text, job.options.max_bytes));
            words.truncate(job.options.max_tokens);
            tokenizer.bucket_ids(&words)
        })
        .collect();
    let classes = job.classes.len();
    // fastText's initialization for the input table; PyTorch's nn.Linear bound for the output.
    let trainer = HashedTrainer {
        features,
        embedding: uniform_var(rng, &[buckets, dim], 1.0 / dim as f32)?,
        weight: uniform_var(rng, &[classes, dim], 1.0 / (dim as f32).sqrt())?,
        bias: Var::from_tensor(&Tensor::zeros(
            classes,
            candle_core::DType::F32,
            &Device::Cpu,
        )?)?,
        dim,
    };
    let (epoch_losses, validation) = fit(job, &trainer, rng)?;

    let mut config = serde_json::Map::new();
    config.insert(
        "architectures".into(),
        serde_json::json!(["HashedNgramClassifier"]),
    );
    config.insert("model_type".into(), "hashed-ngram".into());
    config.insert("num_buckets".into(), buckets.into());
    config.insert("embedding_dim".into(), dim.into());
    config.insert("word_ngrams".into(), word_ngrams.into());
    config.insert("lowercase".into(), true.into());
    config.extend(label_config(job.classes));
    write_json(&dir.join("config.json"), &config)?;
    save_tensors(
        &dir.join("model.safetensors"),
        vec![
            ("embedding.weight", trainer.embedding.as_tensor().clone()),
            ("classifier.weight", trainer.weight.as_tensor().clone()),
            ("classifier.bias", trainer.bias.as_tensor().clone()),
        ],
    )?;
    Ok(Outcome {
        epoch_losses,
        validation,
        embeddings_cached: None,
    })
}
