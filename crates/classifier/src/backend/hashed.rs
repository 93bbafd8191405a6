//! `hashed-ngram`: a fastText-style classifier implemented directly in candle.
//!
//! Text → words → hashed word uni- and bigrams → mean of their embeddings (an "embedding bag") →
//! one linear layer. Its `config.json`:
//!
//! ```json
//! { "model_type": "hashed-ngram", "architectures": ["HashedNgramClassifier"],
//!   "num_buckets": 4096, "embedding_dim": 16, "word_ngrams": 2, "lowercase": true,
//!   "id2label": {"0": "keep", "1": "drop"}, "problem_type": "single_label_classification" }
//! ```
//!
//! and its `model.safetensors` holds `embedding.weight` `(num_buckets, embedding_dim)`,
//! `classifier.weight` `(labels, embedding_dim)` and `classifier.bias` `(labels,)`.
//!
//! Words are maximal runs of characters for which Rust's `char::is_alphanumeric` holds, lowercased
//! with `str::to_lowercase` when `lowercase` is set. A unigram's bucket is the 64-bit FNV-1a hash
//! of the word's UTF-8 bytes modulo `num_buckets`; a bigram's hashes `first + " " + second`.
//! Windows are counted in words; bigrams never cross a window edge. An empty bag embeds to zeros
//! (so its logits are the bias), as in PyTorch's `EmbeddingBag(mode="mean")`.

use candle_core::{Device, Tensor};
use candle_nn::{Embedding, Linear, Module};
use serde::Deserialize;

use super::{
    declared_labels, load_err, parse_config, var_builder, Backend, Batch, Loaded, ModelInfo,
};
use crate::config::{HeadConfig, ModelFiles};
use crate::error::{ClassifierError, Result};

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct HashedConfig {
    pub num_buckets: usize,
    pub embedding_dim: usize,
    #[serde(default = "default_ngrams")]
    pub word_ngrams: usize,
    #[serde(default = "default_true")]
    pub lowercase: bool,
}

fn default_ngrams() -> usize {
    2
}

fn default_true() -> bool {
    true
}

/// Splits text into words and hashes them into buckets.
#[derive(Debug, Clone)]
pub(crate) struct HashedTokenizer {
    num_buckets: u64,
    word_ngrams: usize,
    lowercase: bool,
}

pub(crate) fn fnv1a64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

impl HashedTokenizer {
    /// A tokenizer hashing into `num_buckets` (> 0) buckets; `word_ngrams` 1 or 2.
    pub fn new(num_buckets: u64, word_ngrams: usize, lowercase: bool) -> HashedTokenizer {
        HashedTokenizer {
            num_buckets,
            word_ngrams,
            lowercase,
        }
    }

    /// The words of a text.
    pub fn words(&self, text: &str) -> Vec<String> {
        let mut words = Vec::new();
        for word in text.split(|c: char| !c.is_alphanumeric()) {
            if word.is_empty() {
                continue;
            }
            words.push(if self.lowercase {
                word.to_lowercase()
            } else {
                word.to_string()
            });
        }
        words
    }

    /// Bucket ids of a window of words: every unigram, then every bigram inside the window.
    pub fn bucket_ids(&self, words: &[String]) -> Vec<u32> {
        let bucket = |h: u64| (h % self.num_buckets) as u32;
        let mut ids: Vec<u32> = words
            .iter()
            .map(|w| bucket(fnv1a64(&[w.as_bytes()])))
            .collect();
        if self.word_ngrams >= 2 {
            ids.extend(
                words
                    .windows(2)
                    .map(|p| bucket(fnv1a64(&[p[0].as_bytes(), b" ", p[1].as_bytes()]))),
            );
        }
        ids
    }

    /// Words of `text` split into windows of `max_words` overlapping by `stride`, as bucket ids,
    /// plus the number of words.
    pub fn encode(&self, text: &str, max_words: usize, stride: usize) -> (Vec<Vec<u32>>, usize) {
        let words = self.words(text);
        let n = words.len();
        if n <= max_words {
            return (vec![self.bucket_ids(&words)], n);
        }
        let step = max_words - stride;
        let mut windows = Vec::new();
        let mut start = 0;
        loop {
            let stop = (start + max_words).min(n);
            windows.push(self.bucket_ids(&words[start..stop]));
            if stop == n {
                break;
            }
            start += step;
        }
        (windows, n)
    }
}

pub(crate) struct HashedNgram {
    embedding: Embedding,
    classifier: Linear,
}

pub(crate) fn load(
    files: &ModelFiles,
    config_bytes: &[u8],
    weights: Vec<u8>,
    head: &HeadConfig,
    device: &Device,
) -> Result<(Loaded, HashedTokenizer)> {
    let config: HashedConfig = parse_config(config_bytes, files)?;
    if config.num_buckets == 0 || config.num_buckets > u32::MAX as usize {
        return Err(ClassifierError::Config {
            path: files.config(),
            message: format!("num_buckets {} out of range", config.num_buckets),
        });
    }
    if !(1..=2).contains(&config.word_ngrams) {
        return Err(ClassifierError::Config {
            path: files.config(),
            message: format!("word_ngrams must be 1 or 2, not {}", config.word_ngrams),
        });
    }
    let labels = declared_labels(head, files)?;
    let vb = var_builder(weights, files, device)?;
    let err = load_err(files);
    let embedding =
        candle_nn::embedding(config.num_buckets, config.embedding_dim, vb.pp("embedding"))
            .map_err(&err)?;
    let classifier = candle_nn::linear(
        config.embedding_dim,
        labels.names().len(),
        vb.pp("classifier"),
    )
    .map_err(&err)?;
    let tokenizer = HashedTokenizer {
        num_buckets: config.num_buckets as u64,
        word_ngrams: config.word_ngrams,
        lowercase: config.lowercase,
    };
    Ok((
        Loaded {
            backend: Box::new(HashedNgram {
                embedding,
                classifier,
            }),
            info: ModelInfo {
                name: "hashed-ngram",
                pad_id: 0,
                vocab_size: config.num_buckets,
                max_tokens: None,
            },
            labels: Some(labels),
        },
        tokenizer,
    ))
}

impl Backend for HashedNgram {
    fn logits(&self, batch: &Batch) -> Result<Tensor> {
        let embedded = self.embedding.forward(&batch.input_ids)?;
        // The bag is exact whatever the padding (padded rows add zeros); the head runs in fixed
        // row blocks so that a document's logits do not depend on its batch either.
        let bag = super::masked_mean(&embedded, &batch.attention_mask)?;
        Ok(super::bert_encoder::fixed_rows_linear(
            &self.classifier,
            &bag,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok() -> HashedTokenizer {
        HashedTokenizer {
            num_buckets: 1000,
            word_ngrams: 2,
            lowercase: true,
        }
    }

    /// A batch of documents `ids`, right-padded with 0 to the longest.
    fn batch(ids: &[Vec<u32>]) -> Batch {
        let len = ids.iter().map(Vec::len).max().unwrap_or(1);
        let (mut flat, mut mask) = (Vec::new(), Vec::new());
        for doc in ids {
            flat.extend(doc.iter().copied().chain(std::iter::repeat(0)).take(len));
            mask.extend((0..len).map(|i| u32::from(i < doc.len())));
        }
        let shape = (ids.len(), len);
        Batch {
            input_ids: Tensor::from_vec(flat, shape, &Device::Cpu).unwrap(),
            attention_mask: Tensor::from_vec(mask, shape, &Device::Cpu).unwrap(),
            token_type_ids: Tensor::zeros(shape, candle_core::DType::U32, &Device::Cpu).unwrap(),
        }
    }

    #[test]
    fn logits_do_not_depend_on_the_batch_to_the_bit() {
        // Real-size shapes (gemm picks its summation order from a product's shape: one row, or
        // at most 64 rows and columns, take other paths than a large batch).
        let (buckets, dim, labels) = (5000, 100, 2);
        let embedding = Embedding::new(
            Tensor::randn(0f32, 1.0, (buckets, dim), &Device::Cpu).unwrap(),
            dim,
        );
        let classifier = Linear::new(
            Tensor::randn(0f32, 1.0, (labels, dim), &Device::Cpu).unwrap(),
            Some(Tensor::randn(0f32, 1.0, labels, &Device::Cpu).unwrap()),
        );
        let model = HashedNgram {
            embedding,
            classifier,
        };
        let docs: Vec<Vec<u32>> = (0..150u32)
            .map(|d| {
                (0..(1 + d * 7 % 90))
                    .map(|t| (d * 131 + t * 17) % 5000)
                    .collect()
            })
            .collect();
        let together: Vec<Vec<f32>> = model.logits(&batch(&docs)).unwrap().to_vec2().unwrap();
        for (i, doc) in docs.iter().enumerate().step_by(7) {
            let alone: Vec<Vec<f32>> = model
                .logits(&batch(std::slice::from_ref(doc)))
                .unwrap()
                .to_vec2()
                .unwrap();
            let a: Vec<u32> = alone[0].iter().map(|x| x.to_bits()).collect();
            let b: Vec<u32> = together[i].iter().map(|x| x.to_bits()).collect();
            assert_eq!(
                a, b,
                "document {i}: alone {:?} vs batched {:?}",
                alone[0], together[i]
            );
        }
    }

    #[test]
    fn fnv_matches_reference_values() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(&[b""]), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(&[b"a"]), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(&[b"foo", b"bar"]), fnv1a64(&[b"foobar"]));
    }

    #[test]
    fn words_and_buckets() {
        let t = tok();
        assert_eq!(t.words("Hello, wörld! 42x"), ["hello", "wörld", "42x"]);
        assert_eq!(t.bucket_ids(&t.words("a b c")).len(), 5);
        assert!(t.bucket_ids(&[]).is_empty());
    }

    #[test]
    fn windows_overlap_by_stride() {
        let t = tok();
        let (w, n) = t.encode("a b c d e f g", 3, 1);
        assert_eq!(n, 7);
        // a b c | c d e | e f g
        assert_eq!(w.len(), 3);
        assert_eq!(w[1][0], t.bucket_ids(&["c".to_string()])[0]);
        let (w, n) = t.encode("", 3, 1);
        assert_eq!((w.len(), n), (1, 0));
    }
}
