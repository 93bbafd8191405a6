//! # sluice-classifier: the model stage of the sluice cascade
//!
//! sluice filters training data in a cascade: cheap regex rules first, then large term lists, and
//! only the documents those stages escalate reach a model. This crate is that model: it loads a
//! small classifier from a local checkpoint directory and turns documents into scores in `[0, 1]`
//! (or raw values for regression heads) that a pipeline stage can threshold and record.
//!
//! ## Loading
//!
//! A model is a directory, never a hub id: nothing here touches the network. It holds a Hugging
//! Face `config.json`, `model.safetensors` and `tokenizer.json`. The architecture comes from
//! `config.json` (`architectures[0]`), the labels from `id2label` (or `num_labels`), and how
//! logits become probabilities from `problem_type`: softmax for `single_label_classification`,
//! sigmoid for `multi_label_classification`, the raw value for `regression` or a single output.
//! Supported: BERT, DistilBERT, XLM-RoBERTa (and RoBERTa), ModernBERT and DeBERTa-v2 sequence
//! classifiers; sentence-transformers encoders (`modules.json`, mean/CLS/max pooling read from the
//! Pooling module's config, optional Normalize) with a linear head in `head.safetensors`; and
//! `hashed-ngram`, a fastText-style model (see [below](#hashed-ngram)) for the cheapest tier.
//! Sentence-transformers encoders are BERT-family only for now. BERT, DistilBERT and
//! sentence-transformers run on this crate's own BERT encoder (`backend/bert_encoder.rs`, fused
//! CPU kernels, see [Performance](#performance)); XLM-R, ModernBERT and DeBERTa-v2 on
//! `candle-transformers`' encoders. The classification heads candle lacks (BERT, DistilBERT,
//! ModernBERT) are written here.
//!
//! Every problem with a model directory is a typed [`ClassifierError`] naming the file, and for
//! weights the tensor, at fault (missing tensors, shape mismatches, unsupported architectures);
//! nothing in loading or scoring panics on user data.
//!
//! ## One backend trait
//!
//! As in text-embeddings-inference, each architecture is a backend behind one internal trait: it
//! receives a padded batch of token windows already on the device and returns one row of logits
//! per window (sentence encoders can also return pooled embeddings). The device is chosen once, in
//! [`ClassifierOptions::device`]; `cuda` and `metal` need the crate features of those names, and
//! asking for one in a build without it is an error rather than a quiet CPU fallback. All `cfg`
//! for accelerators stays inside this crate (in `device.rs`).
//!
//! ## From document to score
//!
//! 1. The text is cut to [`ClassifierOptions::max_bytes`] (backing off to a char boundary) before
//!    tokenizing, so a pathological document costs bounded time.
//! 2. It is tokenized with the model's `tokenizer.json` and split into windows of at most
//!    [`ClassifierOptions::max_tokens`] tokens, special tokens included, consecutive windows
//!    overlapping by [`ClassifierOptions::stride`] tokens (the `tokenizers` overflow semantics,
//!    the same as Python's `return_overflowing_tokens=True, stride=...`). `max_tokens` is lowered
//!    to the model's position limit when it exceeds it.
//! 3. Windows from all documents of a call are sorted by length and cut into batches of
//!    [`ClassifierOptions::batch_size`], so that each batch pads to nearly its own length.
//! 4. Each window's score is the probability (or raw value) of the configured label
//!    ([`LabelSelector`]); the document's score aggregates them ([`Aggregate`]: max by default,
//!    mean, or first window).
//!
//! **Batch independence.** Padding is right-side, masked out of attention and pooling, and uses the
//! model's pad id (which XLM-R needs for its position ids), so a document's score does not depend
//! on which other documents share its batch, beyond float rounding from different matrix shapes
//! (the tests check agreement within 1e-5).
//!
//! ## Audit
//!
//! [`Classifier::model_hash`] is the SHA-256 of `model.safetensors` followed by `config.json`
//! (followed by `head.safetensors` and `head.json` where a sentence-transformers head exists):
//! `cat model.safetensors config.json | sha256sum` reproduces it. The tokenizer is not part of it.
//!
//! ## Performance
//!
//! Inference is f32. The crate declares `gemm` with `x86-v4` so candle's matrix products use
//! AVX-512 kernels where the CPU has them (run-time dispatch). [`tune_allocator`] sets glibc's
//! malloc so large tensor buffers are reused instead of being returned to the OS after every op;
//! it is process-wide, so the binary, not this library, decides to call it at start-up.
//!
//! The BERT encoder runs each layer as four matrix products (query, key and value as one) and
//! three fused passes: attention per (document, head) over real tokens only (padding is skipped,
//! not masked) with a vectorized softmax, `gelu(x + bias)` with a vectorized exact-form `erf`,
//! and `layer_norm(x + bias + residual)`, the last two in place on the matrix product they
//! follow. The projections' weights are transposed to `(in, out)` once at load time and each
//! product is one `gemm` call into an output buffer that is not zeroed first. These kernels run on
//! rayon's pool, the one candle's matrix products use; on GPUs the same maths runs as ordinary
//! candle ops. `benches/ort/run.sh` times the encoder against ONNX Runtime on the same inputs. Windows are batched
//! by length, so padding stays small; with [`Aggregate::First`] only first windows reach the
//! model, and [`Classifier::embed`] tokenizes only a prefix long enough for the first window.
//! Threads: matrix products and these kernels run on the calling rayon pool (a `sluice run`
//! worker pool); candle's remaining element-wise ops on candle's own pool, sized once from
//! `CANDLE_NUM_THREADS`, else `RAYON_NUM_THREADS`, else one per core.
//!
//! ## hashed-ngram
//!
//! Words (maximal runs of alphanumeric chars, lowercased) hash with 64-bit FNV-1a into
//! `num_buckets` buckets, unigrams and bigrams alike; the mean of their embeddings goes through
//! one linear layer. Windows for it are counted in words. Its `config.json` carries
//! `"model_type": "hashed-ngram"`, `num_buckets`, `embedding_dim`, `word_ngrams` (1 or 2),
//! `lowercase`, `id2label` and `problem_type`; its weights are `embedding.weight`,
//! `classifier.weight` and `classifier.bias`.
//!
//! ## Training
//!
//! [`train`] writes the two formats this crate can train: a head (linear or one hidden layer) on
//! a frozen sentence-transformers encoder, and the hashed-ngram model, both with candle's AdamW on
//! the CPU, deterministic for a seed. Both learn from every window of each example, windowed and
//! aggregated as scoring will window and aggregate it, and record that in the model directory
//! ([`Scoring`], read back by [`trained_scoring`]) so that a pipeline scores as trained.
//! [`metrics`] holds the precision/recall/F1 and ROC AUC code
//! that training's validation and `sluice eval` share.
//!
//! ## Testing
//!
//! `fixtures/models/<name>/` holds a tiny random-weight checkpoint per architecture with
//! `reference.json`: input texts, their token windows and the logits of the PyTorch
//! `transformers` implementation, computed one window at a time (no padding). `tests/reference.rs`
//! checks token ids exactly and logits within 1e-4, and that scoring a document alone or in a
//! padded mixed batch agrees within 1e-5. Regenerate them with
//! `crates/classifier/scripts/make_fixtures.py` (needs torch + transformers; see its header).
//! `tests/minilm.rs` checks all-MiniLM-L6-v2 embeddings against committed PyTorch values when
//! `crates/classifier/scripts/fetch-minilm.sh` has fetched the model, and prints "skipped" when
//! not. `SLUICE_TEST_DEVICE=cuda:0` runs the reference tests on a GPU (with `--features cuda`).

#![deny(missing_docs)]

mod backend;
mod config;
mod device;
mod error;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod metrics;
pub mod rng;
mod text;
pub mod train;

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use sha2::{Digest, Sha256};

use backend::{Backend, Batch, ModelInfo};
use config::{detect_architecture, read_file, HeadConfig, ModelFiles};
pub use config::{Architecture, Labels, ProblemType, SUPPORTED_ARCHITECTURES};
pub use device::DeviceSpec;
pub use error::{ClassifierError, Result};
pub use text::truncate_to_bytes;
use text::TextEncoder;

/// Which output of the model is "the" score.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LabelSelector {
    /// Output 0 for single-output models, output 1 for two-output models (the usual "positive"
    /// class); an error for models with more outputs.
    #[default]
    Auto,
    /// An output index.
    Index(usize),
    /// An `id2label` name.
    Name(String),
}

/// How a document's window scores combine into its score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    /// The highest window score: a document is as bad as its worst part.
    #[default]
    Max,
    /// The mean of the window scores.
    Mean,
    /// The first window's score only.
    First,
}

impl Aggregate {
    fn apply(self, scores: &[f32]) -> f32 {
        match self {
            Aggregate::Max => scores.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            Aggregate::Mean => scores.iter().sum::<f32>() / scores.len().max(1) as f32,
            Aggregate::First => scores.first().copied().unwrap_or(f32::NAN),
        }
    }
}

impl Aggregate {
    /// The name in configs and model files: `max`, `mean`, `first`.
    pub fn name(self) -> &'static str {
        match self {
            Aggregate::Max => "max",
            Aggregate::Mean => "mean",
            Aggregate::First => "first",
        }
    }
}

impl std::str::FromStr for Aggregate {
    type Err = ClassifierError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "max" => Ok(Aggregate::Max),
            "mean" => Ok(Aggregate::Mean),
            "first" => Ok(Aggregate::First),
            _ => Err(ClassifierError::InvalidOptions(format!(
                "unknown aggregate {s:?} (expected max, mean or first)"
            ))),
        }
    }
}

/// Everything [`Classifier::load`] needs. Build with [`ClassifierOptions::new`] and adjust fields.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierOptions {
    /// The checkpoint directory.
    pub model_dir: PathBuf,
    /// Where to run (default CPU).
    pub device: DeviceSpec,
    /// Which output is the score (default [`LabelSelector::Auto`]).
    pub label: LabelSelector,
    /// Tokens per window, special tokens included (default 512). When it exceeds the model's
    /// position limit it is lowered to that limit, and `stride` to at most half of it.
    /// For hashed-ngram: words per window.
    pub max_tokens: usize,
    /// Tokens shared by consecutive windows (default 64).
    pub stride: usize,
    /// Bytes of each document kept before tokenizing (default 100,000).
    pub max_bytes: usize,
    /// Windows per forward pass (default 32).
    pub batch_size: usize,
    /// How window scores combine (default [`Aggregate::Max`]).
    pub aggregate: Aggregate,
}

impl ClassifierOptions {
    /// Defaults for the model in `model_dir`.
    pub fn new(model_dir: impl Into<PathBuf>) -> Self {
        ClassifierOptions {
            model_dir: model_dir.into(),
            device: DeviceSpec::Cpu,
            label: LabelSelector::Auto,
            max_tokens: 512,
            stride: 64,
            max_bytes: 100_000,
            batch_size: 32,
            aggregate: Aggregate::Max,
        }
    }
}

/// How a model's documents are windowed and their window scores combined: what `sluice train`
/// trained the model on, recorded in the model directory (the `scoring` object of `head.json`
/// for a head, of `config.json` for hashed-ngram) so that the classifier stage scores the way the
/// model learned. See [`trained_scoring`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scoring {
    /// Tokens per window, special tokens included (words for hashed-ngram).
    pub max_tokens: usize,
    /// Tokens shared by consecutive windows.
    pub stride: usize,
    /// Bytes of each document kept before tokenizing.
    pub max_bytes: usize,
    /// How window scores become the document's score.
    pub aggregate: Aggregate,
}

/// The key of [`Scoring`] in `head.json` / `config.json`.
pub const SCORING_KEY: &str = "scoring";

/// The [`Scoring`] a model directory records, or `None` for a model that records none (any model
/// not trained by `sluice train`, or trained before it recorded one). A head's `head.json` is
/// read when present, else `config.json`; a `scoring` object that does not parse is an error
/// naming the file.
pub fn trained_scoring(model_dir: &std::path::Path) -> Result<Option<Scoring>> {
    let head = model_dir.join(backend::sentence::HEAD_CONFIG);
    let path = if head.is_file() {
        head
    } else {
        model_dir.join("config.json")
    };
    if !path.is_file() {
        return Ok(None);
    }
    let json: serde_json::Value = config::read_json(&path)?;
    match json.get(SCORING_KEY) {
        None => Ok(None),
        Some(value) => serde_json::from_value(value.clone())
            .map(Some)
            .map_err(|e| ClassifierError::Config {
                path,
                message: format!("`{SCORING_KEY}`: {e}"),
            }),
    }
}

/// The score of one document.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentScore {
    /// Score of each window, in document order.
    pub windows: Vec<f32>,
    /// The aggregate of `windows`.
    pub score: f32,
    /// Tokens of the (byte-truncated) document, special tokens excluded; words for hashed-ngram.
    pub tokens: usize,
}

/// The text [`Classifier::probe`] scores: short, plain, with a few non-ASCII characters.
pub const PROBE_TEXT: &str =
    "The quick brown fox jumps over the lazy dog. Naïve café owners in São Paulo read 42 books.";

/// What [`Classifier::probe`] found: the model's outputs on [`PROBE_TEXT`] are finite.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// The probe text's score, or `None` for an encoder without a head (probed by embedding).
    pub score: Option<f32>,
    /// Windows that went through the model.
    pub windows: usize,
}

/// Raw model outputs for one document (for audits and reference tests).
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentLogits {
    /// Token ids of each window, special tokens included.
    pub window_ids: Vec<Vec<u32>>,
    /// Logits of each window.
    pub windows: Vec<Vec<f32>>,
    /// As in [`DocumentScore::tokens`].
    pub tokens: usize,
}

/// A loaded classifier. Cheap to share across threads by reference (`Send + Sync`).
pub struct Classifier {
    backend: Box<dyn Backend>,
    info: ModelInfo,
    text: TextEncoder,
    labels: Option<Labels>,
    label_index: Option<usize>,
    architecture: Architecture,
    device: Device,
    max_tokens: usize,
    stride: usize,
    options: ClassifierOptions,
    model_hash: String,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("architecture", &self.architecture)
            .field("labels", &self.labels)
            .field("max_tokens", &self.max_tokens)
            .field("options", &self.options)
            .field("model_hash", &self.model_hash)
            .finish_non_exhaustive()
    }
}

/// The files of the model in `dir` that define its scores (those present of `config.json`,
/// `model.safetensors`, `tokenizer.json`, a sentence-transformers head and pooling config): what a
/// pipeline hashes into its config hash.
pub fn model_files(dir: &std::path::Path) -> Vec<PathBuf> {
    [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        backend::sentence::HEAD_WEIGHTS,
        backend::sentence::HEAD_CONFIG,
        "1_Pooling/config.json",
    ]
    .iter()
    .map(|f| dir.join(f))
    .filter(|p| p.is_file())
    .collect()
}

fn hash_files(paths: &[PathBuf], first: &[u8]) -> Result<String> {
    let mut hasher = Sha256::new();
    hasher.update(first);
    for path in paths {
        hasher.update(read_file(path)?);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

impl Classifier {
    /// Loads the model in `options.model_dir` onto `options.device`.
    pub fn load(options: ClassifierOptions) -> Result<Classifier> {
        if options.batch_size == 0 {
            return Err(ClassifierError::InvalidOptions(
                "batch_size must be at least 1".into(),
            ));
        }
        if options.max_tokens == 0 {
            return Err(ClassifierError::InvalidOptions(
                "max_tokens must be at least 1".into(),
            ));
        }
        let files = ModelFiles {
            dir: options.model_dir.clone(),
        };
        let device = options.device.open()?;
        let config_bytes = read_file(&files.config())?;
        let head: HeadConfig =
            serde_json::from_slice(&config_bytes).map_err(|source| ClassifierError::Json {
                path: files.config(),
                source,
            })?;
        let architecture = detect_architecture(&files.dir, &head)?;
        let weights = read_file(&files.weights())?;
        config::check_dimensions(&config_bytes, weights.len(), &files.config())?;

        let mut extra = vec![files.config()];
        for name in [
            backend::sentence::HEAD_WEIGHTS,
            backend::sentence::HEAD_CONFIG,
        ] {
            let path = files.dir.join(name);
            if architecture == Architecture::SentenceTransformer && path.is_file() {
                extra.push(path);
            }
        }
        let model_hash = hash_files(&extra, &weights)?;

        let mut hashed_tokenizer = None;
        let loaded = match architecture {
            Architecture::Bert => {
                backend::bert::load(&files, &config_bytes, weights, &head, &device)?
            }
            Architecture::DistilBert => {
                backend::distilbert::load(&files, &config_bytes, weights, &head, &device)?
            }
            Architecture::XlmRoberta => {
                backend::xlm_roberta::load(&files, &config_bytes, weights, &head, &device)?
            }
            Architecture::ModernBert => {
                backend::modernbert::load(&files, &config_bytes, weights, &head, &device)?
            }
            Architecture::DebertaV2 => {
                backend::deberta::load(&files, &config_bytes, weights, &head, &device)?
            }
            Architecture::SentenceTransformer => {
                backend::sentence::load(&files, &config_bytes, weights, &device)?
            }
            Architecture::HashedNgram => {
                let (loaded, tok) =
                    backend::hashed::load(&files, &config_bytes, weights, &head, &device)?;
                hashed_tokenizer = Some(tok);
                loaded
            }
        };
        // A window longer than the model's position table is lowered to it; the stride is then
        // capped at half the window so that windows still advance.
        let (max_tokens, stride) = match loaded.info.max_tokens {
            Some(limit) if options.max_tokens > limit => (limit, options.stride.min(limit / 2)),
            _ => (options.max_tokens, options.stride),
        };
        let text = match hashed_tokenizer {
            Some(tok) => TextEncoder::hashed(tok, max_tokens, stride)?,
            None => TextEncoder::hugging_face(&files.tokenizer(), max_tokens, stride)?,
        };
        // Ids beyond the embedding table would fail every text holding them: refuse now.
        if let Some(max_id) = text.max_token_id() {
            let tokenizer_size = max_id as usize + 1;
            if tokenizer_size > loaded.info.vocab_size {
                return Err(ClassifierError::VocabularyMismatch {
                    tokenizer: files.tokenizer(),
                    config: files.config(),
                    tokenizer_size,
                    model_size: loaded.info.vocab_size,
                });
            }
        }
        let label_index = match &loaded.labels {
            Some(labels) => Some(labels.resolve(&options.label)?),
            None => None,
        };
        Ok(Classifier {
            backend: loaded.backend,
            info: loaded.info,
            text,
            labels: loaded.labels,
            label_index,
            architecture,
            device,
            max_tokens,
            stride,
            options,
            model_hash,
        })
    }

    /// Scores documents: one [`DocumentScore`] per input, in order. With [`Aggregate::First`]
    /// only each document's first window goes through the model (the others could not change
    /// its score), so [`DocumentScore::windows`] holds that one score.
    ///
    /// Every score returned is finite: a document whose window score or aggregate is NaN or
    /// infinite fails the whole call with [`ClassifierError::NonFiniteScore`] (naming the first
    /// such document). [`Classifier::score_each`] fails only the documents at fault.
    pub fn score(&self, texts: &[&str]) -> Result<Vec<DocumentScore>> {
        self.score_each(texts)?.into_iter().collect()
    }

    /// [`Classifier::score`], with a result per document: the outer error fails the whole call
    /// (tokenizing, the forward pass), an inner [`ClassifierError::NonFiniteScore`] only the
    /// document whose score is NaN or infinite, so that a caller can apply its error policy to
    /// exactly those documents.
    pub fn score_each(&self, texts: &[&str]) -> Result<Vec<Result<DocumentScore>>> {
        let (Some(labels), Some(index)) = (&self.labels, self.label_index) else {
            return Err(ClassifierError::NoHead(self.options.model_dir.clone()));
        };
        let first_only = self.options.aggregate == Aggregate::First;
        Ok(self
            .logits_of(texts, first_only)?
            .into_iter()
            .enumerate()
            .map(|(document, doc)| {
                let windows: Vec<f32> = doc
                    .windows
                    .iter()
                    .map(|row| labels.score(row, index))
                    .collect();
                if let Some((window, &value)) =
                    windows.iter().enumerate().find(|(_, v)| !v.is_finite())
                {
                    return Err(ClassifierError::NonFiniteScore {
                        document,
                        window: Some(window),
                        value,
                    });
                }
                let score = self.options.aggregate.apply(&windows);
                if !score.is_finite() {
                    return Err(ClassifierError::NonFiniteScore {
                        document,
                        window: None,
                        value: score,
                    });
                }
                Ok(DocumentScore {
                    score,
                    windows,
                    tokens: doc.tokens,
                })
            })
            .collect())
    }

    /// Runs the model on [`PROBE_TEXT`], as `sluice check` should before a long run: a model
    /// whose weights hold NaN or infinity loads fine but scores NaN, which this returns as
    /// [`ClassifierError::NonFiniteScore`]. An encoder without a head is probed through its
    /// embeddings (every component must be finite) and reports no score. Costs one forward pass
    /// of one short window.
    pub fn probe(&self) -> Result<Probe> {
        if self.labels.is_none() {
            let embeddings = self.embed(&[PROBE_TEXT])?;
            let row = embeddings.first().map_or(&[][..], Vec::as_slice);
            if let Some(&value) = row.iter().find(|v| !v.is_finite()) {
                return Err(ClassifierError::NonFiniteScore {
                    document: 0,
                    window: Some(0),
                    value,
                });
            }
            // Embeddings come from the first window only.
            return Ok(Probe {
                score: None,
                windows: 1,
            });
        }
        let scored = self.score(&[PROBE_TEXT])?.remove(0);
        Ok(Probe {
            score: Some(scored.score),
            windows: scored.windows.len(),
        })
    }

    /// Raw logits of every window of every document.
    pub fn logits(&self, texts: &[&str]) -> Result<Vec<DocumentLogits>> {
        self.logits_of(texts, false)
    }

    /// Logits of every window, or of each document's first window only.
    fn logits_of(&self, texts: &[&str], first_only: bool) -> Result<Vec<DocumentLogits>> {
        if self.labels.is_none() {
            return Err(ClassifierError::NoHead(self.options.model_dir.clone()));
        }
        let encoded = self.encode_windows(texts, first_only)?;
        let windows: Vec<&[u32]> = encoded
            .iter()
            .flat_map(|e| e.windows.iter().map(Vec::as_slice))
            .collect();
        let mut rows = self
            .run_batched(&windows, |batch| self.backend.logits(batch))?
            .into_iter();
        Ok(encoded
            .into_iter()
            .map(|e| DocumentLogits {
                windows: rows.by_ref().take(e.windows.len()).collect(),
                window_ids: e.windows,
                tokens: e.tokens,
            })
            .collect())
    }

    /// Sentence embeddings (sentence-transformers encoders only): one vector per document, from
    /// its first window (like sentence-transformers, which truncates), after pooling and, when the
    /// model has a Normalize module, L2 normalization.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let cut: Vec<&str> = texts
            .iter()
            .map(|t| truncate_to_bytes(t, self.options.max_bytes))
            .collect();
        let encoded = self.text.encode_first_windows(&cut)?;
        let windows: Vec<&[u32]> = encoded
            .iter()
            .map(|e| e.windows.first().map_or(&[][..], Vec::as_slice))
            .collect();
        self.run_batched(&windows, |batch| {
            self.backend
                .embed(batch)
                .unwrap_or(Err(ClassifierError::NoEmbeddings(self.info.name)))
        })
    }

    /// Sentence embeddings of every window of each document (sentence-transformers encoders
    /// only), windowed exactly as [`Classifier::score`] windows it (byte budget, `max_tokens`,
    /// `stride`): what a head scores window by window. With [`Aggregate::First`] only the first
    /// window of each, as scoring then sees.
    pub fn embed_windows(&self, texts: &[&str]) -> Result<Vec<Vec<Vec<f32>>>> {
        let encoded = self.encode_windows(texts, self.options.aggregate == Aggregate::First)?;
        let windows: Vec<&[u32]> = encoded
            .iter()
            .flat_map(|e| e.windows.iter().map(Vec::as_slice))
            .collect();
        let mut rows = self
            .run_batched(&windows, |batch| {
                self.backend
                    .embed(batch)
                    .unwrap_or(Err(ClassifierError::NoEmbeddings(self.info.name)))
            })?
            .into_iter();
        Ok(encoded
            .iter()
            .map(|e| rows.by_ref().take(e.windows.len()).collect())
            .collect())
    }

    /// The stride in use (the option, capped at half the window when `max_tokens` was lowered
    /// to the model's limit).
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// The token windows the model would see for each document (ids, special tokens included),
    /// without running it: for inspecting windowing and for timing tokenization alone.
    pub fn windows(&self, texts: &[&str]) -> Result<Vec<Vec<Vec<u32>>>> {
        Ok(self.encode(texts)?.into_iter().map(|e| e.windows).collect())
    }

    /// SHA-256 (hex) of the weights and config, for audit records (see the crate docs).
    pub fn model_hash(&self) -> &str {
        &self.model_hash
    }

    /// The model's labels, or `None` for an encoder without a head.
    pub fn labels(&self) -> Option<&Labels> {
        self.labels.as_ref()
    }

    /// The output index whose probability is the score, or `None` without a head.
    pub fn label_index(&self) -> Option<usize> {
        self.label_index
    }

    /// The architecture family.
    pub fn architecture(&self) -> Architecture {
        self.architecture
    }

    /// The window length in use (the option, lowered to the model's limit).
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// The options the classifier was loaded with.
    pub fn options(&self) -> &ClassifierOptions {
        &self.options
    }

    /// Whether a document's score is bit-for-bit independent of the other documents in its call.
    /// True on the CPU for the encoders and heads this crate writes (BERT, DistilBERT,
    /// sentence-transformers, hashed-ngram: their products sum in a batch-independent order);
    /// false for candle's own encoders (XLM-R, ModernBERT, DeBERTa-v2) and on accelerators, where
    /// it is not established.
    pub fn batch_exact(&self) -> bool {
        matches!(self.device, Device::Cpu)
            && matches!(
                self.architecture,
                Architecture::Bert
                    | Architecture::DistilBert
                    | Architecture::SentenceTransformer
                    | Architecture::HashedNgram
            )
    }

    /// [`encode`](Self::encode), keeping only each document's first window with `first_only`.
    fn encode_windows(&self, texts: &[&str], first_only: bool) -> Result<Vec<text::Encoded>> {
        let mut encoded = self.encode(texts)?;
        if first_only {
            for e in &mut encoded {
                e.windows.truncate(1);
            }
        }
        Ok(encoded)
    }

    fn encode(&self, texts: &[&str]) -> Result<Vec<text::Encoded>> {
        let cut: Vec<&str> = texts
            .iter()
            .map(|t| truncate_to_bytes(t, self.options.max_bytes))
            .collect();
        self.text.encode_batch(&cut)
    }

    /// Runs `forward` over `windows` in length-sorted batches; returns one row per window, in the
    /// order of `windows`.
    fn run_batched(
        &self,
        windows: &[&[u32]],
        forward: impl Fn(&Batch) -> Result<Tensor>,
    ) -> Result<Vec<Vec<f32>>> {
        let mut order: Vec<usize> = (0..windows.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(windows[i].len()));
        let mut rows: Vec<Vec<f32>> = vec![Vec::new(); windows.len()];
        for chunk in order.chunks(self.options.batch_size) {
            let batch = self.make_batch(chunk.iter().map(|&i| windows[i]))?;
            let out = forward(&batch)?
                .to_dtype(candle_core::DType::F32)?
                .to_vec2::<f32>()?;
            for (&i, row) in chunk.iter().zip(out) {
                rows[i] = row;
            }
        }
        Ok(rows)
    }

    fn make_batch<'a>(&self, windows: impl Iterator<Item = &'a [u32]> + Clone) -> Result<Batch> {
        let b = windows.clone().count();
        let len = windows.clone().map(<[u32]>::len).max().unwrap_or(0).max(1);
        let pad = self.info.pad_id;
        let vocab = self.info.vocab_size;
        if let Some(&id) = windows.clone().flatten().find(|&&id| id as usize >= vocab) {
            return Err(ClassifierError::Tokenizer {
                path: self.options.model_dir.join("tokenizer.json"),
                message: format!(
                    "token id {id} is outside the model's vocabulary of {vocab}: \
                     tokenizer.json does not belong to these weights"
                ),
            });
        }
        let mut ids = Vec::with_capacity(b * len);
        let mut mask = Vec::with_capacity(b * len);
        for w in windows {
            ids.extend_from_slice(w);
            ids.extend(std::iter::repeat_n(pad, len - w.len()));
            mask.extend(std::iter::repeat_n(1u32, w.len()));
            mask.extend(std::iter::repeat_n(0u32, len - w.len()));
        }
        Ok(Batch {
            input_ids: Tensor::from_vec(ids, (b, len), &self.device)?,
            attention_mask: Tensor::from_vec(mask, (b, len), &self.device)?,
            token_type_ids: Tensor::zeros((b, len), candle_core::DType::U32, &self.device)?,
        })
    }
}

/// Sets glibc malloc so that large tensor buffers stay in the process instead of being unmapped
/// and faulted in again after every operation (measured +17% to +81% on CPU inference).
/// Process-wide: call once at start-up from the binary, before loading models. Returns whether the
/// settings were applied (always `false` off glibc Linux).
pub fn tune_allocator() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; these are valid parameter numbers
        // and values for glibc, and it is documented as callable at any time.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1
                && libc::mallopt(libc::M_TOP_PAD, 256 << 20) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates() {
        let s = [0.2, 0.9, 0.4];
        assert_eq!(Aggregate::Max.apply(&s), 0.9);
        assert!((Aggregate::Mean.apply(&s) - 0.5).abs() < 1e-6);
        assert_eq!(Aggregate::First.apply(&s), 0.2);
        assert_eq!("mean".parse::<Aggregate>().unwrap(), Aggregate::Mean);
        assert!("median".parse::<Aggregate>().is_err());
    }

    #[test]
    fn trained_scoring_is_read_from_head_json_else_config_json() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(trained_scoring(d).unwrap(), None);
        std::fs::write(d.join("config.json"), r#"{"model_type": "hashed-ngram"}"#).unwrap();
        assert_eq!(trained_scoring(d).unwrap(), None);
        let scoring = Scoring {
            max_tokens: 128,
            stride: 16,
            max_bytes: 5000,
            aggregate: Aggregate::Mean,
        };
        let json = serde_json::json!({ SCORING_KEY: scoring });
        std::fs::write(d.join("config.json"), json.to_string()).unwrap();
        assert_eq!(trained_scoring(d).unwrap(), Some(scoring));
        // A head's head.json wins over the encoder's config.json.
        std::fs::write(
            d.join("head.json"),
            r#"{"scoring": {"max_tokens": 64, "stride": 8, "max_bytes": 10, "aggregate": "median"}}"#,
        )
        .unwrap();
        let err = trained_scoring(d).unwrap_err();
        assert!(
            matches!(&err, ClassifierError::Config { path, .. } if path.ends_with("head.json")),
            "{err}"
        );
        assert!(err.to_string().contains("median"), "{err}");
    }

    #[test]
    fn classifier_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Classifier>();
    }

    #[test]
    fn missing_directory_is_an_io_error() {
        let err = Classifier::load(ClassifierOptions::new("/nonexistent/model")).unwrap_err();
        assert!(matches!(err, ClassifierError::Io { .. }), "{err}");
    }

    #[test]
    fn allocator_tuning_does_not_fail() {
        let _ = tune_allocator();
    }
}
