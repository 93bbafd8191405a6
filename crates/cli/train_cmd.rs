//! `sluice train`: arguments, progress bars and the printed summary around
//! `sluice_classifier::train`.

use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use sluice_classifier::metrics::BinaryMetrics;
use sluice_classifier::train::{
    train, TrainError, TrainKind, TrainOptions, TrainProgress, TrainReport,
};
use sluice_classifier::DeviceSpec;

use crate::{EXIT_CONFIG, EXIT_OK};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A linear (or one-hidden-layer) head on a frozen sentence-transformers encoder.
    Head,
    /// The fastText-style hashed word uni/bigram model, trained end to end.
    HashedNgram,
}

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// What to train.
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// Labeled JSONL (optionally .zst or .gz): one object per line with a text and a label.
    #[arg(long)]
    pub data: PathBuf,
    /// The model directory to write; the classifier stage's `model` key loads it.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Field holding the text (dots descend into objects).
    #[arg(long, default_value = "text")]
    pub text_field: String,
    /// Record layout, as the config's input.format: chat, sharegpt, alpaca, prompt-completion
    /// (the parts are joined as a run judges them).
    #[arg(long, conflicts_with = "text_fields")]
    pub format: Option<sluice_core::document::InputFormat>,
    /// Several text sources, comma-separated, as the config's input.text_fields
    /// (`messages[*].content`, `instruction,input,output`).
    #[arg(long, value_delimiter = ',')]
    pub text_fields: Option<Vec<String>>,
    /// Field holding the label: a string, integer or boolean.
    #[arg(long, default_value = "label")]
    pub label_field: String,
    /// Class order, comma-separated (default: integer labels numerically, others sorted).
    #[arg(long, value_delimiter = ',')]
    pub labels: Option<Vec<String>>,
    /// With two classes: the label given output 1, the one the classifier stage scores by default.
    #[arg(long)]
    pub positive: Option<String>,
    /// Sentence-transformers encoder directory (--kind head), e.g. all-MiniLM-L6-v2.
    #[arg(long, required_if_eq("kind", "head"))]
    pub encoder: Option<PathBuf>,
    /// Hidden ReLU layer of this many units in the head (--kind head; default: linear head).
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Embedding cache (--kind head) [default: $XDG_CACHE_HOME/sluice/embeddings].
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Do not read or write the embedding cache.
    #[arg(long, conflicts_with = "cache_dir")]
    pub no_cache: bool,
    /// Device the encoder runs on (--kind head): cpu, cuda, cuda:N, metal.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Hash buckets (--kind hashed-ngram).
    #[arg(long, default_value_t = 131_072)]
    pub buckets: usize,
    /// Embedding width (--kind hashed-ngram).
    #[arg(long, default_value_t = 32)]
    pub dim: usize,
    /// 1: words; 2: words and word bigrams (--kind hashed-ngram).
    #[arg(long, default_value_t = 2)]
    pub word_ngrams: usize,
    /// Seed of initialization, split and batch order: the same seed gives the same model bytes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Passes over the training set [default: 30 for head, 10 for hashed-ngram].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// AdamW learning rate.
    #[arg(long, default_value_t = 1e-2)]
    pub lr: f64,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Examples per step.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Fraction of each class held out for validation (0 for none).
    #[arg(long, default_value_t = 0.1)]
    pub validation: f64,
    /// Tokens (words for hashed-ngram) per window, special tokens included, as the classifier
    /// stage's max_tokens (lowered to the encoder's position limit) [default: head: the
    /// encoder's max_seq_length (sentence_bert_config.json), else 512; hashed-ngram: 512].
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// Tokens shared by consecutive windows, as the stage's stride.
    #[arg(long, default_value_t = 64)]
    pub stride: usize,
    /// Bytes of each example kept before tokenizing, as the stage's max_bytes.
    #[arg(long, default_value_t = 100_000)]
    pub max_bytes: usize,
    /// How window scores make the document's, as the stage's aggregate: max (the positive class's
    /// most positive window), mean, first [default: max for two classes, mean for more].
    #[arg(long, value_parser = ["max", "mean", "first"])]
    pub aggregate: Option<String>,
    /// Write each validation example's probabilities here (JSONL: its 0-based index in the
    /// data, label, probability per class and, for two classes, the stage's score).
    #[arg(long)]
    pub predictions: Option<PathBuf>,
    /// Replace the output directory if it exists.
    #[arg(long)]
    pub force: bool,
    /// Print the report as JSON on stdout instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// No progress bars or messages.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Progress bars on stderr: one while embedding, one while fitting.
struct Bars {
    quiet: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl Bars {
    fn replace(&self, bar: Option<ProgressBar>) {
        let mut slot = self.bar.lock().expect("progress lock");
        if let Some(old) = slot.take() {
            old.finish_and_clear();
        }
        *slot = bar;
    }

    fn with(&self, f: impl FnOnce(&ProgressBar)) {
        if let Some(bar) = self.bar.lock().expect("progress lock").as_ref() {
            f(bar);
        }
    }

    /// A line above the bar, or on stderr when there is no visible bar (not a terminal).
    fn say(&self, line: &str) {
        if self.quiet {
            return;
        }
        let slot = self.bar.lock().expect("progress lock");
        match slot.as_ref().filter(|bar| !bar.is_hidden()) {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn new_bar(&self, len: u64, template: &str) -> Option<ProgressBar> {
        (!self.quiet).then(|| {
            let bar = ProgressBar::new(len);
            bar.set_style(
                ProgressStyle::with_template(template)
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar
        })
    }
}

impl TrainProgress for Bars {
    fn message(&self, text: &str) {
        self.say(&format!("sluice: {text}"));
    }

    fn embedding(&self, done: usize, total: usize) {
        if done == 0 {
            self.replace(self.new_bar(
                total as u64,
                "embedding [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})",
            ));
        } else {
            self.with(|bar| bar.set_position(done as u64));
            if done == total {
                self.replace(None);
            }
        }
    }

    fn fitting(&self, epochs: usize, steps_per_epoch: usize) {
        self.replace(self.new_bar(
            (epochs * steps_per_epoch) as u64,
            "training [{bar:30}] {pos}/{len} steps {msg}",
        ));
    }

    fn step(&self, epoch: usize, loss: f32) {
        self.with(|bar| {
            bar.inc(1);
            bar.set_message(format!("epoch {epoch} loss {loss:.4}"));
        });
    }

    fn epoch(&self, epoch: usize, train_loss: f32, validation: Option<(f32, f64)>) {
        if self.quiet {
            return;
        }
        let line = match validation {
            Some((loss, accuracy)) => format!(
                "epoch {epoch}: train loss {train_loss:.4}, validation loss {loss:.4}, accuracy {accuracy:.3}"
            ),
            None => format!("epoch {epoch}: train loss {train_loss:.4}"),
        };
        self.say(&format!("sluice: {line}"));
    }
}

fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("sluice").join("embeddings"))
}

pub fn train_command(args: TrainArgs) -> Result<u8> {
    let kind = match args.kind {
        Kind::Head => TrainKind::Head {
            encoder: args
                .encoder
                .clone()
                .context("--kind head needs --encoder")?,
            hidden: args.hidden,
            cache_dir: if args.no_cache {
                None
            } else {
                args.cache_dir.clone().or_else(default_cache_dir)
            },
            device: args
                .device
                .parse::<DeviceSpec>()
                .with_context(|| format!("invalid --device {:?}", args.device))?,
        },
        Kind::HashedNgram => {
            if args.encoder.is_some() || args.hidden.is_some() {
                anyhow::bail!("--encoder and --hidden are for --kind head");
            }
            TrainKind::HashedNgram {
                buckets: args.buckets,
                dim: args.dim,
                word_ngrams: args.word_ngrams,
            }
        }
    };
    let mut options = TrainOptions::new(kind, &args.output);
    options.force = args.force;
    options.seed = args.seed;
    if let Some(epochs) = args.epochs {
        options.epochs = epochs;
    }
    options.max_tokens = args.max_tokens;
    options.stride = args.stride;
    options.aggregate = args
        .aggregate
        .as_deref()
        .map(str::parse)
        .transpose()
        .context("--aggregate")?;
    options.learning_rate = args.lr;
    options.weight_decay = args.weight_decay;
    options.batch_size = args.batch_size;
    options.validation = args.validation;
    options.max_bytes = args.max_bytes;
    options.labels = args.labels.clone();
    options.positive = args.positive.clone();

    let label_field = match sluice_core::document::FieldPath::parse(&args.label_field) {
        Ok(l) => l,
        Err(e) => return usage_error(e),
    };
    let mut input = sluice_core::config::InputConfig {
        text_field: args.text_field.clone(),
        format: args.format,
        ..Default::default()
    };
    if let Some(fields) = &args.text_fields {
        input.text_fields = fields
            .iter()
            .map(|p| sluice_core::document::TextSource::path(p))
            .collect();
    }
    let config = sluice_core::Config {
        input,
        ..sluice_core::Config::from_toml("", std::path::Path::new("."))?
    };
    if let Err(e) = sluice_core::document::FieldPath::parse(&args.text_field) {
        return usage_error(e);
    }
    let extractor = match config.extractor() {
        Ok(extractor) => extractor,
        Err(e) => return usage_error(e),
    };
    let (_, reader) = sluice_io::open_shard(&args.data)
        .with_context(|| format!("cannot open --data {}", args.data.display()))?;
    let examples = match sluice_core::labeled::read_examples(
        reader,
        &args.data.display().to_string(),
        &extractor,
        &label_field,
    ) {
        Ok(examples) => examples,
        Err(e) => return usage_error(e),
    };
    let bars = Bars {
        quiet: args.quiet || args.json,
        bar: Mutex::new(None),
    };
    let started = std::time::Instant::now();
    let result = train(&examples, &options, &bars);
    bars.replace(None);
    let report = match result {
        Ok(report) => report,
        // Bad options or data: nothing was written, a usage error like a bad config.
        Err(e @ TrainError::Options(_)) => return usage_error(e),
        Err(e) => return Err(e.into()),
    };
    if let (Some(path), Some(v)) = (&args.predictions, &report.validation) {
        write_predictions(path, &examples, &report, &v.predictions)?;
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        print!("{}", summary(&report, started.elapsed().as_secs_f64()));
    }
    Ok(EXIT_OK)
}

/// The `--predictions` file: one line per validation example.
fn write_predictions(
    path: &std::path::Path,
    examples: &[sluice_classifier::train::Example],
    report: &TrainReport,
    predictions: &[(usize, Vec<f32>)],
) -> Result<()> {
    use std::io::Write;
    let file = std::fs::File::create(path)
        .with_context(|| format!("cannot write --predictions {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for (index, probabilities) in predictions {
        let mut line = serde_json::json!({
            "example": index,
            "label": examples[*index].label,
            "probabilities": report
                .classes
                .iter()
                .zip(probabilities)
                .map(|(c, &p)| (c.clone(), serde_json::Value::from(p)))
                .collect::<serde_json::Map<_, _>>(),
        });
        if report.classes.len() == 2 {
            line["score"] = probabilities[1].into();
        }
        writeln!(out, "{line}")?;
    }
    out.flush()
        .with_context(|| format!("cannot write --predictions {}", path.display()))
}

/// Prints the one-line error and exits 2: bad input or options, nothing was written.
pub fn usage_error(e: impl std::fmt::Display) -> Result<u8> {
    eprintln!("sluice: error: {e}");
    Ok(EXIT_CONFIG)
}

fn num(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{v:.3}"))
}

fn binary_line(m: &BinaryMetrics) -> String {
    format!(
        "precision {} recall {} F1 {} false-positive rate {}",
        num(m.precision),
        num(m.recall),
        num(m.f1),
        num(m.false_positive_rate)
    )
}

fn summary(report: &TrainReport, seconds: f64) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "trained {} on {} examples in {seconds:.1}s; final train loss {}",
        report.kind,
        report.train_examples,
        report
            .epoch_losses
            .last()
            .map_or("-".into(), |l| format!("{l:.4}"))
    );
    match &report.validation {
        None => {
            let _ = writeln!(s, "no validation split (--validation 0)");
        }
        Some(v) => {
            let _ = writeln!(
                s,
                "validation ({} examples): loss {:.4}, accuracy {}, macro precision {} recall {} F1 {}",
                v.examples,
                v.loss,
                num(v.metrics.accuracy),
                num(v.metrics.macro_precision),
                num(v.metrics.macro_recall),
                num(v.metrics.macro_f1)
            );
            let width = v
                .metrics
                .classes
                .iter()
                .map(|c| c.label.len())
                .max()
                .unwrap_or(5)
                .max(5);
            let _ = writeln!(
                s,
                "  {:width$}  {:>7}  {:>9}  {:>6}  {:>6}",
                "class", "support", "precision", "recall", "f1"
            );
            for c in &v.metrics.classes {
                let _ = writeln!(
                    s,
                    "  {:width$}  {:>7}  {:>9}  {:>6}  {:>6}",
                    c.label,
                    c.support,
                    num(c.metrics.precision),
                    num(c.metrics.recall),
                    num(c.metrics.f1)
                );
            }
            if let Some(p) = &v.positive {
                let _ = writeln!(
                    s,
                    "  positive class {:?} (probability >= 0.5): {}, ROC AUC {}",
                    p.label,
                    binary_line(&p.metrics),
                    num(p.roc_auc)
                );
            }
        }
    }
    let score_label = if report.classes.len() == 2 {
        format!(
            "scores {:?} by default (label = {:?})",
            report.classes[1], report.classes[1]
        )
    } else {
        "needs `label` set to one of its classes".into()
    };
    let sc = &report.scoring;
    let _ = writeln!(
        s,
        "trained on windows of {} tokens (stride {}) of the first {} bytes, aggregate {:?}: the \
         stage scores so unless its config sets max_tokens, stride, max_bytes or aggregate",
        sc.max_tokens,
        sc.stride,
        sc.max_bytes,
        sc.aggregate.name()
    );
    let _ = writeln!(
        s,
        "wrote {}: a classifier stage with model = {:?} {score_label}",
        report.model_dir.display(),
        report.model_dir.display().to_string()
    );
    s
}
