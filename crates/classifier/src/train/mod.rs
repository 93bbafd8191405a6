//! Training the two model formats this crate can write: a classification head on a frozen
//! sentence-transformers encoder ([`TrainKind::Head`]) and the fastText-style `hashed-ngram`
//! model ([`TrainKind::HashedNgram`]), both with candle on the CPU.
//!
//! Both follow one recipe: read labeled examples ([`data`]), map labels to class ids, split off a
//! stratified validation set, turn each example into features (cached sentence embeddings, or
//! hashed n-gram bucket ids), fit with AdamW on cross-entropy in shuffled mini-batches (for
//! hashed-ngram a hand-written step that updates only the rows a batch touches), measure
//! the validation set, and write a model directory that [`crate::Classifier::load`] (and so the
//! `classifier` stage) loads as it is. The directory is written under a temporary name and
//! renamed into place, and is then loaded once as a check, so a failed run leaves nothing behind
//! that looks like a model.
//!
//! **Determinism.** Everything random (initial weights, the split, the batch order) comes from
//! one seeded SplitMix64 stream ([`crate::rng`]), candle's CPU kernels reduce in a fixed order, and the
//! files written hold no times or absolute paths: the same data, options and seed give the same
//! bytes. (Embeddings computed on a GPU may differ in the last bits from CPU ones; the head
//! trained on them is then deterministic per device.)
//!
//! **Train as you serve.** Both kinds learn from every example exactly as the `classifier` stage
//! will score it: the text cut to `max_bytes`, split into windows of `max_tokens` tokens (words
//! for hashed-ngram) overlapping by `stride`, each window scored, and the window scores combined
//! by the same [`Aggregate`]: `max` trains the positive class's largest window probability
//! (multiple-instance learning: a document is positive when any part is), `mean` the mean of the
//! windows' probability vectors, `first` the first window alone. The probability training reports
//! for an example is the score the stage gives that document. The model directory records these
//! settings ([`Scoring`], `scoring` in `head.json` / `config.json`), and the stage uses them
//! unless its config overrides them.
//!
//! Each directory also gets `training.json`: the options, the data's SHA-256, the classes and the
//! validation metrics, so that a model can be traced to what made it.

pub mod data;
mod hashed;
mod head;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::metrics::{multi_class, BinaryMetrics, Confusion, MultiClassMetrics};
use crate::rng::SplitMix64;
use crate::{Aggregate, ClassifierError, DeviceSpec, Scoring};
pub use data::Example;

/// The window (tokens, or words for hashed-ngram) when neither `--max-tokens` nor the encoder
/// gives one: the classifier stage's default `max_tokens`.
pub const DEFAULT_WINDOW: usize = 512;

/// Most hash buckets of a hashed-ngram model (2^24: a larger table would mostly hold rows no
/// training example touched).
pub const MAX_BUCKETS: usize = 1 << 24;
/// Most weights in a hashed-ngram embedding table (2^30: 4 GiB of f32, ~16 GiB with training
/// state).
pub const MAX_TABLE_WEIGHTS: usize = 1 << 30;

/// Everything that can stop a training run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// An option is out of range or inconsistent with the data.
    #[error("{0}")]
    Options(String),
    /// The encoder could not be loaded or run, or the written model does not load.
    #[error(transparent)]
    Model(#[from] ClassifierError),
    /// A tensor computation failed.
    #[error("training computation failed: {0}")]
    Compute(#[from] candle_core::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

pub(crate) fn io_err(path: &Path) -> impl Fn(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Which model to train, with its own settings.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainKind {
    /// A head on a frozen sentence-transformers encoder.
    Head {
        /// The encoder directory (BERT-family sentence-transformers, as the classifier loads).
        encoder: PathBuf,
        /// Units of a hidden ReLU layer; `None` for a linear head.
        hidden: Option<usize>,
        /// Where embeddings are cached, keyed by encoder and data hash; `None`: no cache.
        cache_dir: Option<PathBuf>,
        /// Device the encoder runs on (the head itself trains on the CPU).
        device: DeviceSpec,
    },
    /// The fastText-style hashed n-gram model.
    HashedNgram {
        /// Hash buckets shared by unigrams and bigrams.
        buckets: usize,
        /// Embedding width.
        dim: usize,
        /// 1: words only; 2: words and bigrams.
        word_ngrams: usize,
    },
}

impl TrainKind {
    /// The name used on the command line and in `training.json`.
    pub fn name(&self) -> &'static str {
        match self {
            TrainKind::Head { .. } => "head",
            TrainKind::HashedNgram { .. } => "hashed-ngram",
        }
    }
}

/// Options of a training run. [`TrainOptions::new`] gives the defaults for a kind.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    /// What to train.
    pub kind: TrainKind,
    /// The model directory to write.
    pub output: PathBuf,
    /// Replace `output` when it exists.
    pub force: bool,
    /// Seed of every random choice.
    pub seed: u64,
    /// Passes over the training set.
    pub epochs: usize,
    /// AdamW learning rate.
    pub learning_rate: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Examples per optimizer step.
    pub batch_size: usize,
    /// Fraction of each class held out for validation (0 for none).
    pub validation: f64,
    /// Tokens (words for hashed-ngram) per window, as the stage's `max_tokens`, lowered to the
    /// encoder's position limit. `None`: for a head the encoder's own `max_seq_length`
    /// (`sentence_bert_config.json`, what sentence-transformers truncates to: 256 for
    /// all-MiniLM-L6-v2), else 512, the stage's default; 512 words for hashed-ngram.
    pub max_tokens: Option<usize>,
    /// Tokens shared by consecutive windows, as the stage's `stride` (default 64).
    pub stride: usize,
    /// How window scores combine, as the stage's `aggregate`; `None`: `max` for two classes,
    /// `mean` for more (`max` needs a positive class).
    pub aggregate: Option<Aggregate>,
    /// Bytes of each example kept before tokenizing, as the stage's `max_bytes`.
    pub max_bytes: usize,
    /// Class order; `None`: derived from the data (see [`data`]).
    pub labels: Option<Vec<String>>,
    /// For two classes: the class given id 1, the one the classifier stage scores by default.
    pub positive: Option<String>,
}

impl TrainOptions {
    /// Defaults for `kind`: 10 epochs at 1e-2 for hashed-ngram (fastText's regime), 30 epochs at
    /// 1e-2 for a head (a few hundred parameters per class learn slowly from unit-norm inputs).
    pub fn new(kind: TrainKind, output: impl Into<PathBuf>) -> TrainOptions {
        let epochs = match kind {
            TrainKind::Head { .. } => 30,
            TrainKind::HashedNgram { .. } => 10,
        };
        TrainOptions {
            kind,
            output: output.into(),
            force: false,
            seed: 0,
            epochs,
            learning_rate: 1e-2,
            weight_decay: 0.0,
            batch_size: 32,
            validation: 0.1,
            max_tokens: None,
            stride: 64,
            aggregate: None,
            max_bytes: 100_000,
            labels: None,
            positive: None,
        }
    }

    fn check(&self) -> Result<(), TrainError> {
        let bad = |m: &str| Err(TrainError::Options(m.to_string()));
        if self.epochs == 0 {
            return bad("--epochs must be at least 1");
        }
        if self.batch_size == 0 {
            return bad("--batch-size must be at least 1");
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad("--lr must be a positive number");
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return bad("--weight-decay must be zero or positive");
        }
        if !(0.0..0.9).contains(&self.validation) {
            return bad("--validation must be in [0, 0.9)");
        }
        if self.max_tokens == Some(0) || self.max_bytes == 0 {
            return bad("--max-tokens and --max-bytes must be at least 1");
        }
        if self.max_tokens.is_some_and(|m| self.stride >= m) {
            return bad("--stride must be less than --max-tokens");
        }
        match &self.kind {
            TrainKind::HashedNgram {
                buckets,
                dim,
                word_ngrams,
            } => {
                if *buckets == 0 || *buckets > MAX_BUCKETS {
                    return bad(&format!("--buckets must be between 1 and {MAX_BUCKETS}"));
                }
                if *dim == 0 || *dim > 4096 {
                    return bad("--dim must be between 1 and 4096");
                }
                // The embedding table, its gradient and AdamW's two moments: 4 floats a weight.
                let table = buckets.saturating_mul(*dim);
                if table > MAX_TABLE_WEIGHTS {
                    return bad(&format!(
                        "--buckets x --dim is {table} weights, over {MAX_TABLE_WEIGHTS} (the \
                         table and its training state would take over 16 GiB): use fewer buckets \
                         or a smaller --dim"
                    ));
                }
                if !(1..=2).contains(word_ngrams) {
                    return bad("--word-ngrams must be 1 or 2");
                }
            }
            TrainKind::Head { hidden, .. } => {
                if *hidden == Some(0) {
                    return bad("--hidden must be at least 1");
                }
            }
        }
        Ok(())
    }
}

/// Reports training as it goes (the CLI draws progress bars from it). Every method has an empty
/// default.
pub trait TrainProgress {
    /// A one-line status message.
    fn message(&self, _text: &str) {}
    /// `done` of `total` examples embedded.
    fn embedding(&self, _done: usize, _total: usize) {}
    /// Fitting starts: `epochs × steps_per_epoch` steps will follow.
    fn fitting(&self, _epochs: usize, _steps_per_epoch: usize) {}
    /// One optimizer step done, with its batch loss.
    fn step(&self, _epoch: usize, _loss: f32) {}
    /// An epoch is done: mean training loss and, with a validation set, its loss and accuracy.
    fn epoch(&self, _epoch: usize, _train_loss: f32, _validation: Option<(f32, f64)>) {}
}

/// No progress output.
pub struct Silent;
impl TrainProgress for Silent {}

/// Metrics of the model on the held-out examples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Validation {
    /// Held-out examples.
    pub examples: usize,
    /// Mean cross-entropy.
    pub loss: f32,
    /// Accuracy and per-class / macro precision, recall, F1 (argmax prediction).
    pub metrics: MultiClassMetrics,
    /// For two classes: class 1 (the positive) against class 0, flagged when its probability is
    /// at least 0.5.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub positive: Option<PositiveClass>,
    /// Each held-out example's index in the data and its class probabilities, in class order:
    /// for two classes, `[1]` is the score the classifier stage gives the document.
    #[serde(skip)]
    pub predictions: Vec<(usize, Vec<f32>)>,
}

/// The binary view of a two-class validation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PositiveClass {
    /// Its name.
    pub label: String,
    /// Counts and ratios at probability 0.5.
    #[serde(flatten)]
    pub metrics: BinaryMetrics,
    /// ROC AUC of its probability.
    pub roc_auc: Option<f64>,
}

/// What a training run produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainReport {
    /// The model directory written.
    #[serde(skip)]
    pub model_dir: PathBuf,
    /// `head` or `hashed-ngram`.
    pub kind: &'static str,
    /// Class names by id.
    pub classes: Vec<String>,
    /// The windowing and aggregation trained with, recorded in the model directory.
    pub scoring: Scoring,
    /// Examples per class, in class order.
    pub class_counts: Vec<usize>,
    /// SHA-256 of the examples (text and label of each, in order).
    pub data_sha256: String,
    /// Examples trained on.
    pub train_examples: usize,
    /// Mean training loss of each epoch.
    pub epoch_losses: Vec<f32>,
    /// The held-out metrics (absent with `validation = 0`).
    pub validation: Option<Validation>,
    /// For heads: whether the embeddings came from the cache.
    #[serde(skip)]
    pub embeddings_cached: Option<bool>,
}

/// Trains a model on `examples` and writes it to `options.output`.
pub fn train(
    examples: &[Example],
    options: &TrainOptions,
    progress: &dyn TrainProgress,
) -> Result<TrainReport, TrainError> {
    options.check()?;
    prepare_output(&options.output, options.force)?;
    let classes = data::class_names(
        examples,
        options.labels.as_deref(),
        options.positive.as_deref(),
    )?;
    let aggregate = match options.aggregate {
        Some(Aggregate::Max) if classes.len() != 2 => {
            return Err(TrainError::Options(format!(
                "--aggregate max needs two classes (a document scores as its most positive \
                 window); the data has {}: use --aggregate mean or first",
                classes.len()
            )))
        }
        Some(a) => a,
        None if classes.len() == 2 => Aggregate::Max,
        None => Aggregate::Mean,
    };
    let targets = data::class_ids(examples, &classes);
    let (train_idx, val_idx) = data::split(&targets, options.validation, options.seed);
    let class_counts = (0..classes.len())
        .map(|c| targets.iter().filter(|&&t| t == c).count())
        .collect();
    let data_sha256 = hash_examples(examples);
    progress.message(&format!(
        "{} examples ({} train, {} validation); classes: {}",
        examples.len(),
        train_idx.len(),
        val_idx.len(),
        classes
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{i}={c}"))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    let mut rng = SplitMix64::new(options.seed);
    let staging = staging_dir(&options.output);
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(io_err(&staging))?;
    let result = (|| {
        let job = Job {
            examples,
            targets: &targets,
            train_idx: &train_idx,
            val_idx: &val_idx,
            classes: &classes,
            options,
            aggregate,
            progress,
        };
        let outcome = match &options.kind {
            TrainKind::HashedNgram { .. } => hashed::train(&job, &mut rng, &staging)?,
            TrainKind::Head { .. } => head::train(&job, &mut rng, &staging)?,
        };
        let report = TrainReport {
            model_dir: options.output.clone(),
            kind: options.kind.name(),
            classes: classes.clone(),
            scoring: outcome.scoring,
            class_counts,
            data_sha256,
            train_examples: train_idx.len(),
            epoch_losses: outcome.epoch_losses,
            validation: outcome.validation,
            embeddings_cached: outcome.embeddings_cached,
        };
        write_training_json(&staging, options, &report)?;
        // The written directory must load as the stage will load it.
        crate::Classifier::load(crate::ClassifierOptions::new(&staging))?;
        Ok(report)
    })();
    match result {
        Ok(report) => {
            if options.output.exists() {
                std::fs::remove_dir_all(&options.output).map_err(io_err(&options.output))?;
            }
            std::fs::rename(&staging, &options.output).map_err(io_err(&options.output))?;
            Ok(report)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(e)
        }
    }
}

/// Refuses to overwrite a non-empty directory (or any file) without `force`.
fn prepare_output(output: &Path, force: bool) -> Result<(), TrainError> {
    if output.is_file() {
        return Err(TrainError::Options(format!(
            "output {} is a file, not a directory",
            output.display()
        )));
    }
    let non_empty = output
        .read_dir()
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if non_empty && !force {
        return Err(TrainError::Options(format!(
            "output directory {} is not empty (use --force to replace it)",
            output.display()
        )));
    }
    if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    Ok(())
}

fn staging_dir(output: &Path) -> PathBuf {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    output.with_file_name(format!(".{name}.partial"))
}

fn hash_examples(examples: &[Example]) -> String {
    let mut hasher = Sha256::new();
    for e in examples {
        for part in [e.text.as_bytes(), e.label.as_bytes()] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
    }
    hex(&hasher.finalize())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_training_json(
    dir: &Path,
    options: &TrainOptions,
    report: &TrainReport,
) -> Result<(), TrainError> {
    let kind = match &options.kind {
        TrainKind::Head {
            encoder, hidden, ..
        } => serde_json::json!({
            "kind": "head",
            "encoder": encoder.file_name().map(|n| n.to_string_lossy().into_owned()),
            "hidden": hidden,
        }),
        TrainKind::HashedNgram {
            buckets,
            dim,
            word_ngrams,
        } => serde_json::json!({
            "kind": "hashed-ngram",
            "buckets": buckets,
            "dim": dim,
            "word_ngrams": word_ngrams,
        }),
    };
    let json = serde_json::json!({
        "sluice_version": env!("CARGO_PKG_VERSION"),
        "model": kind,
        "options": {
            "seed": options.seed,
            "epochs": options.epochs,
            "learning_rate": options.learning_rate,
            "weight_decay": options.weight_decay,
            "batch_size": options.batch_size,
            "validation": options.validation,
            "max_tokens": report.scoring.max_tokens,
            "stride": report.scoring.stride,
            "max_bytes": options.max_bytes,
            "aggregate": report.scoring.aggregate,
        },
        "report": report,
    });
    write_json(&dir.join("training.json"), &json)
}

pub(crate) fn write_json(path: &Path, value: &impl Serialize) -> Result<(), TrainError> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("json values serialize");
    bytes.push(b'\n');
    std::fs::write(path, bytes).map_err(io_err(path))
}

/// `id2label`, `label2id` and `problem_type` as a Hugging Face config writes them.
pub(crate) fn label_config(classes: &[String]) -> serde_json::Map<String, serde_json::Value> {
    let mut map = serde_json::Map::new();
    map.insert(
        "id2label".into(),
        classes
            .iter()
            .enumerate()
            .map(|(i, c)| (i.to_string(), serde_json::Value::from(c.as_str())))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    );
    map.insert(
        "label2id".into(),
        classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), serde_json::Value::from(i)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    );
    map.insert("problem_type".into(), "single_label_classification".into());
    map
}

/// What the kinds share: the examples and how they are split.
pub(crate) struct Job<'a> {
    pub examples: &'a [Example],
    pub targets: &'a [usize],
    pub train_idx: &'a [usize],
    pub val_idx: &'a [usize],
    pub classes: &'a [String],
    pub options: &'a TrainOptions,
    /// The aggregation trained with (the option, or its default for the class count).
    pub aggregate: Aggregate,
    pub progress: &'a dyn TrainProgress,
}

/// What a kind's training returns to [`train`].
pub(crate) struct Outcome {
    pub epoch_losses: Vec<f32>,
    pub validation: Option<Validation>,
    pub embeddings_cached: Option<bool>,
    /// The windowing and aggregation used (recorded in the model directory).
    pub scoring: Scoring,
}

/// Document logits from window logits, such that the softmax of a document's row is its class
/// probabilities as the classifier stage computes them from the windows' softmax: `windows` is
/// `(total windows, classes)`, the windows of each document consecutive, `counts[i]` how many
/// document `i` has (at least one).
///
/// - `first`: the first window's logits.
/// - `max` (two classes): `[0, d]` with `d` the largest `logit1 - logit0` over the windows, so
///   that the softmax's second entry is the largest window probability of class 1.
/// - `mean`: `log` of the mean of the windows' softmax (a log-sum-exp, stable), whose softmax is
///   that mean.
pub(crate) fn aggregate_logits(
    windows: &Tensor,
    counts: &[usize],
    aggregate: Aggregate,
) -> candle_core::Result<Tensor> {
    let mut rows = Vec::with_capacity(counts.len());
    let mut start = 0;
    for &n in counts {
        let w = windows.narrow(0, start, n)?;
        rows.push(match aggregate {
            Aggregate::First => w.narrow(0, 0, 1)?,
            Aggregate::Max => {
                let d = (w.narrow(1, 1, 1)? - w.narrow(1, 0, 1)?)?.max_keepdim(0)?;
                Tensor::cat(&[d.zeros_like()?, d], 1)?
            }
            Aggregate::Mean => {
                let log_p = candle_nn::ops::log_softmax(&w, 1)?;
                let top = log_p.max_keepdim(0)?.detach();
                let sum = log_p.broadcast_sub(&top)?.exp()?.sum_keepdim(0)?.log()?;
                ((sum + top)? - (n as f64).ln())?
            }
        });
        start += n;
    }
    Tensor::cat(&rows, 0)
}

/// A model being fitted: its logits for a batch of example indices (validation, and the loss
/// of candle's autograd step).
pub(crate) trait Trainable {
    fn logits(&self, examples: &[usize]) -> candle_core::Result<Tensor>;
}

/// A variable of `shape` drawn uniform in `[-bound, bound)`.
pub(crate) fn uniform_var(
    rng: &mut SplitMix64,
    shape: &[usize],
    bound: f32,
) -> candle_core::Result<Var> {
    let values: Vec<f32> = (0..shape.iter().product())
        .map(|_| rng.symmetric(bound))
        .collect();
    Var::from_tensor(&Tensor::from_vec(values, shape, &Device::Cpu)?)
}

/// One optimizer step on a batch of example indices, returning the batch's mean loss.
pub(crate) trait Step {
    fn step(&mut self, batch: &[usize]) -> Result<f32, TrainError>;
    /// Makes the model's variables current before validation (for a step that keeps the
    /// weights elsewhere while fitting).
    fn sync(&mut self) -> Result<(), TrainError> {
        Ok(())
    }
}

/// Candle's autograd and AdamW on cross-entropy.
struct CandleAdamW<'a> {
    job: &'a Job<'a>,
    model: &'a dyn Trainable,
    optimizer: AdamW,
}

impl Step for CandleAdamW<'_> {
    fn step(&mut self, batch: &[usize]) -> Result<f32, TrainError> {
        let targets = target_tensor(self.job, batch)?;
        let loss = candle_nn::loss::cross_entropy(&self.model.logits(batch)?, &targets)?;
        self.optimizer.backward_step(&loss)?;
        Ok(loss.to_scalar::<f32>()?)
    }
}

/// Fits `model`'s `vars` with candle's autograd and AdamW on cross-entropy; returns the mean
/// loss of each epoch and the validation metrics of the final weights.
pub(crate) fn fit(
    job: &Job<'_>,
    model: &dyn Trainable,
    vars: Vec<Var>,
    rng: &mut SplitMix64,
) -> Result<(Vec<f32>, Option<Validation>), TrainError> {
    let o = job.options;
    let optimizer = AdamW::new(
        vars,
        ParamsAdamW {
            lr: o.learning_rate,
            weight_decay: o.weight_decay,
            ..ParamsAdamW::default()
        },
    )?;
    let mut step = CandleAdamW {
        job,
        model,
        optimizer,
    };
    fit_with(job, model, rng, &mut step)
}

/// The training loop: shuffled mini-batches, a `step` each, progress, the divergence check,
/// and validation of `model` after every epoch.
pub(crate) fn fit_with(
    job: &Job<'_>,
    model: &dyn Trainable,
    rng: &mut SplitMix64,
    step: &mut dyn Step,
) -> Result<(Vec<f32>, Option<Validation>), TrainError> {
    let o = job.options;
    let steps = job.train_idx.len().div_ceil(o.batch_size);
    job.progress.fitting(o.epochs, steps);
    let mut order = job.train_idx.to_vec();
    let mut epoch_losses = Vec::with_capacity(o.epochs);
    let mut validation = None;
    for epoch in 1..=o.epochs {
        rng.shuffle(&mut order);
        let mut total = 0.0f64;
        for batch in order.chunks(o.batch_size) {
            let loss = step.step(batch)?;
            if !loss.is_finite() {
                return Err(TrainError::Options(format!(
                    "the loss diverged (epoch {epoch}); lower --lr"
                )));
            }
            total += f64::from(loss) * batch.len() as f64;
            job.progress.step(epoch, loss);
        }
        let mean = (total / job.train_idx.len().max(1) as f64) as f32;
        epoch_losses.push(mean);
        step.sync()?;
        validation = validate(job, model)?;
        job.progress.epoch(
            epoch,
            mean,
            validation
                .as_ref()
                .map(|v| (v.loss, v.metrics.accuracy.unwrap_or(0.0))),
        );
    }
    Ok((epoch_losses, validation))
}

fn target_tensor(job: &Job<'_>, batch: &[usize]) -> candle_core::Result<Tensor> {
    let t: Vec<u32> = batch.iter().map(|&i| job.targets[i] as u32).collect();
    Tensor::from_vec(t, batch.len(), &Device::Cpu)
}

/// Loss and metrics on the validation examples.
fn validate(job: &Job<'_>, model: &dyn Trainable) -> Result<Option<Validation>, TrainError> {
    if job.val_idx.is_empty() {
        return Ok(None);
    }
    let mut loss_sum = 0.0f64;
    let mut probabilities: Vec<Vec<f32>> = Vec::with_capacity(job.val_idx.len());
    for batch in job.val_idx.chunks(256) {
        let logits = model.logits(batch)?.detach();
        let loss = candle_nn::loss::cross_entropy(&logits, &target_tensor(job, batch)?)?;
        loss_sum += f64::from(loss.to_scalar::<f32>()?) * batch.len() as f64;
        let probs = candle_nn::ops::softmax_last_dim(&logits)?.to_dtype(DType::F32)?;
        probabilities.extend(probs.to_vec2::<f32>()?);
    }
    let truth: Vec<usize> = job.val_idx.iter().map(|&i| job.targets[i]).collect();
    let predicted: Vec<usize> = probabilities
        .iter()
        .map(|p| {
            p.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                    if v > best.1 {
                        (i, v)
                    } else {
                        best
                    }
                })
                .0
        })
        .collect();
    let positive = (job.classes.len() == 2).then(|| {
        let scores: Vec<f32> = probabilities.iter().map(|p| p[1]).collect();
        let is_positive: Vec<bool> = truth.iter().map(|&t| t == 1).collect();
        let confusion = Confusion::from_pairs(
            is_positive
                .iter()
                .zip(&scores)
                .map(|(&p, &s)| (p, s >= 0.5)),
        );
        PositiveClass {
            label: job.classes[1].clone(),
            metrics: confusion.summary(),
            roc_auc: crate::metrics::roc_auc(&scores, &is_positive),
        }
    });
    Ok(Some(Validation {
        examples: job.val_idx.len(),
        loss: (loss_sum / job.val_idx.len() as f64) as f32,
        metrics: multi_class(job.classes, &truth, &predicted),
        positive,
        predictions: job.val_idx.iter().copied().zip(probabilities).collect(),
    }))
}

/// Writes named tensors as safetensors. The safetensors crate orders tensors by dtype and name,
/// so the bytes are stable; the file gets ordinary permissions (candle's `save` goes through a
/// private temporary file, leaving mode 0600, which would hide a shared model from other users).
pub(crate) fn save_tensors(path: &Path, tensors: Vec<(&str, Tensor)>) -> Result<(), TrainError> {
    let tensors: Vec<(String, Tensor)> = tensors
        .into_iter()
        .map(|(name, t)| Ok((name.to_string(), t.contiguous()?)))
        .collect::<candle_core::Result<_>>()?;
    let bytes = safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), None)
        .map_err(|e| TrainError::Compute(e.into()))?;
    std::fs::write(path, bytes).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Classifier, ClassifierOptions, LabelSelector};

    /// A separable toy task: "bad" words vs "good" words.
    fn toy() -> Vec<Example> {
        let bad = ["poison", "weapon", "toxin", "explosive", "nerve"];
        let good = ["garden", "recipe", "holiday", "music", "river"];
        (0..120)
            .map(|i| {
                let hazard = i % 3 == 0;
                let words = if hazard { &bad } else { &good };
                Example {
                    text: format!(
                        "the {} and the {} today {i}",
                        words[i % 5],
                        words[(i / 5) % 5]
                    ),
                    label: if hazard { "hazard" } else { "benign" }.into(),
                }
            })
            .collect()
    }

    fn hashed_options(dir: &Path) -> TrainOptions {
        let mut o = TrainOptions::new(
            TrainKind::HashedNgram {
                buckets: 1024,
                dim: 8,
                word_ngrams: 2,
            },
            dir,
        );
        o.epochs = 15;
        o.validation = 0.25;
        o.positive = Some("hazard".into());
        o.seed = 3;
        o
    }

    #[test]
    fn hashed_ngram_learns_loads_and_is_deterministic() {
        let tmp = tempfile::tempdir().unwrap();
        let data = toy();
        let a = tmp.path().join("a");
        let report = train(&data, &hashed_options(&a), &Silent).unwrap();
        assert_eq!(report.classes, ["benign", "hazard"]);
        assert_eq!(report.class_counts, [80, 40]);
        let v = report.validation.as_ref().unwrap();
        assert_eq!(v.examples, 30);
        assert_eq!(v.metrics.accuracy, Some(1.0), "{v:?}");
        assert!(report.epoch_losses.last() < report.epoch_losses.first());
        // The stage's loader scores it, and hazard is the default (index 1) label.
        let model = Classifier::load(ClassifierOptions::new(&a)).unwrap();
        let s = model
            .score(&["the poison and the toxin", "the garden and the river"])
            .unwrap();
        assert!(s[0].score > 0.5 && s[1].score < 0.5, "{s:?}");
        assert_eq!(model.labels().unwrap().names(), ["benign", "hazard"]);
        // Weights get the same permissions as the JSON files (not a temporary file's 0600).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |f: &str| std::fs::metadata(a.join(f)).unwrap().permissions().mode();
            assert_eq!(mode("model.safetensors"), mode("config.json"));
        }
        // Same seed: same bytes; another seed: other weights.
        let b = tmp.path().join("b");
        train(&data, &hashed_options(&b), &Silent).unwrap();
        for f in ["config.json", "model.safetensors", "training.json"] {
            assert_eq!(
                std::fs::read(a.join(f)).unwrap(),
                std::fs::read(b.join(f)).unwrap(),
                "{f}"
            );
        }
        let c = tmp.path().join("c");
        let mut other = hashed_options(&c);
        other.seed = 4;
        train(&data, &other, &Silent).unwrap();
        assert_ne!(
            std::fs::read(a.join("model.safetensors")).unwrap(),
            std::fs::read(c.join("model.safetensors")).unwrap()
        );
    }

    #[test]
    fn output_is_not_overwritten_without_force_and_failures_leave_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("m");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("keep.txt"), "x").unwrap();
        let err = train(&toy(), &hashed_options(&out), &Silent).unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
        assert!(out.join("keep.txt").is_file());
        let mut o = hashed_options(&out);
        o.force = true;
        train(&toy(), &o, &Silent).unwrap();
        assert!(!out.join("keep.txt").exists());
        // An option error fails before anything is written.
        let fresh = tmp.path().join("fresh");
        let mut o = hashed_options(&fresh);
        o.learning_rate = 0.0;
        assert!(train(&toy(), &o, &Silent).is_err());
        assert!(!fresh.exists());
        assert!(!tmp.path().join(".fresh.partial").exists());
    }

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/models")
            .join(name)
    }

    #[test]
    fn heads_train_on_a_frozen_encoder_with_a_cache() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = tmp.path().join("cache");
        // The third run (no cache) must write the first run's bytes.
        for (run, hidden) in [None, Some(8), None].into_iter().enumerate() {
            let out = tmp.path().join(format!("head-{run}"));
            let mut o = TrainOptions::new(
                TrainKind::Head {
                    encoder: fixture("st-mean"),
                    hidden,
                    cache_dir: (run < 2).then(|| cache.clone()),
                    device: DeviceSpec::Cpu,
                },
                &out,
            );
            o.epochs = 40;
            o.learning_rate = 0.05;
            o.positive = Some("hazard".into());
            o.validation = 0.0;
            let report = train(&toy(), &o, &Silent).unwrap();
            // The second run reuses the first run's embeddings.
            assert_eq!(report.embeddings_cached, Some(run == 1));
            assert!(report.validation.is_none());
            assert!(report.epoch_losses.last().unwrap() < &report.epoch_losses[0]);
            for f in ["modules.json", "1_Pooling/config.json", "tokenizer.json"] {
                assert!(out.join(f).is_file(), "{f}");
            }
            let head = std::fs::read_to_string(out.join("head.json")).unwrap();
            assert_eq!(head.contains("relu"), hidden.is_some());
            // The loaded model scores like the head in training: positive-class probability.
            let model = Classifier::load(ClassifierOptions {
                label: LabelSelector::Name("hazard".into()),
                ..ClassifierOptions::new(&out)
            })
            .unwrap();
            let s = model.score(&["the poison and the toxin today"]).unwrap();
            assert!((0.0..=1.0).contains(&s[0].score));
        }
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
        // Same data, options and seed: same bytes, embedded windows and all.
        for f in ["head.safetensors", "head.json", "training.json"] {
            assert_eq!(
                std::fs::read(tmp.path().join("head-0").join(f)).unwrap(),
                std::fs::read(tmp.path().join("head-2").join(f)).unwrap(),
                "{f}"
            );
        }
        // A model that is not a sentence-transformers encoder is refused.
        let mut o = TrainOptions::new(
            TrainKind::Head {
                encoder: fixture("bert"),
                hidden: None,
                cache_dir: None,
                device: DeviceSpec::Cpu,
            },
            tmp.path().join("x"),
        );
        o.validation = 0.0;
        let err = train(&toy(), &o, &Silent).unwrap_err().to_string();
        assert!(err.contains("not a sentence-transformers"), "{err}");
    }

    #[test]
    fn hidden_head_shapes_are_checked_on_load() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("m");
        let mut o = TrainOptions::new(
            TrainKind::Head {
                encoder: fixture("st-mean"),
                hidden: Some(4),
                cache_dir: None,
                device: DeviceSpec::Cpu,
            },
            &out,
        );
        o.epochs = 1;
        train(&toy(), &o, &Silent).unwrap();
        // Swap in a head whose output layer does not fit the hidden layer.
        let bad = vec![
            (
                "hidden.weight",
                Tensor::zeros((4, 16), DType::F32, &Device::Cpu).unwrap(),
            ),
            (
                "hidden.bias",
                Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap(),
            ),
            (
                "weight",
                Tensor::zeros((2, 16), DType::F32, &Device::Cpu).unwrap(),
            ),
            ("bias", Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap()),
        ];
        save_tensors(&out.join("head.safetensors"), bad).unwrap();
        let err = Classifier::load(ClassifierOptions::new(&out)).unwrap_err();
        assert!(
            matches!(&err, ClassifierError::TensorShape { tensor, .. } if tensor == "weight"),
            "{err}"
        );
    }
}
