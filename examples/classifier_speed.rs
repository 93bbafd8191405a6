//! Prints the classifier's throughput directly, in tokens/s and documents/s: the figures of the
//! README's "Classifier speed" table (criterion's `benches/classifier.rs` measures the same work).
//!
//! ```text
//! RAYON_NUM_THREADS=1 cargo run --release --example classifier_speed -- [MODEL] [TOKENS,...]
//! ```
//!
//! MODEL is `minilm` (default; all-MiniLM-L6-v2 from `$SLUICE_MODEL_CACHE`), `hashed-ngram` (a
//! generated 2^20-bucket model), or a model directory. TOKENS are window lengths, special tokens
//! included (default `64,128,256,512`); each shape is a batch of 32 one-window documents, except
//! 512 tokens, which is also run as 8 × 512 (PyTorch's published shape). Every figure is the best
//! of `SLUICE_SPEED_RUNS` (default 5) passes, each at least ~1 s of work, tokenizing included; the
//! share of tokenizing alone is printed beside it.
//!
//! Threads: candle's matrix products use `RAYON_NUM_THREADS` threads (default: physical cores) and
//! its element-wise ops a pool of `CANDLE_NUM_THREADS` (default: the same). Like the `sluice`
//! binary, this calls `sluice_classifier::tune_allocator()` first; `SLUICE_SPEED_NO_TUNE=1` skips it
//! for comparisons.

#[path = "../benches/classifier_inputs.rs"]
mod classifier_inputs;

use std::time::{Duration, Instant};

use classifier_inputs::{documents, minilm_dir, write_hashed_ngram};
use sluice_classifier::{Architecture, Classifier, ClassifierOptions, LabelSelector};

fn main() {
    if std::env::var_os("SLUICE_SPEED_NO_TUNE").is_none() {
        sluice_classifier::tune_allocator();
    }
    let mut args = std::env::args().skip(1);
    let model = args.next().unwrap_or_else(|| "minilm".into());
    let lengths: Vec<usize> = args
        .next()
        .unwrap_or_else(|| "64,128,256,512".into())
        .split(',')
        .map(|s| s.parse().expect("token lengths: comma-separated numbers"))
        .collect();
    let runs: usize = std::env::var("SLUICE_SPEED_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);

    let _generated; // keeps a generated model's directory alive
    let dir = match model.as_str() {
        "minilm" => minilm_dir().unwrap_or_else(|| {
            eprintln!("all-MiniLM-L6-v2 not found: set SLUICE_MODEL_CACHE");
            std::process::exit(2)
        }),
        "hashed-ngram" => {
            let dir = tempfile::tempdir().unwrap();
            write_hashed_ngram(dir.path());
            let path = dir.path().to_path_buf();
            _generated = dir;
            path
        }
        other => other.into(),
    };
    println!(
        "model {} | threads: matmul {}, element-wise pool {}",
        dir.display(),
        candle_threads("RAYON_NUM_THREADS"),
        candle_threads("CANDLE_NUM_THREADS"),
    );
    let mut shapes: Vec<(usize, usize)> = lengths.iter().map(|&n| (32, n)).collect();
    if lengths.contains(&512) {
        shapes.push((8, 512));
    }
    for (batch, tokens) in shapes {
        let mut options = ClassifierOptions::new(&dir);
        options.batch_size = batch;
        options.max_tokens = tokens;
        options.stride = 0;
        // Any output will do for timing (models with 3+ outputs make `Auto` refuse to pick).
        options.label = LabelSelector::Index(0);
        let model = Classifier::load(options).unwrap();
        // Two special tokens per window for the transformers; hashed-ngram counts words.
        let words = match model.architecture() {
            Architecture::HashedNgram => tokens,
            _ => tokens - 2,
        };
        let texts = documents(batch, words, tokens as u64);
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let windows = model.windows(&texts).unwrap();
        let window_tokens: usize = windows.iter().flatten().map(Vec::len).sum();
        let window_count: usize = windows.iter().map(Vec::len).sum();
        let run = |texts: &[&str]| {
            if model.labels().is_some() {
                model.score(texts).unwrap();
            } else {
                model.embed(texts).unwrap();
            }
        };
        run(&texts); // warm-up
        let one = time(|| run(&texts));
        let reps = (1.0 / one.as_secs_f64()).ceil().max(1.0) as usize;
        let best = (0..runs)
            .map(|_| time(|| (0..reps).for_each(|_| run(&texts))) / reps as u32)
            .min()
            .unwrap();
        let tokenize_reps = reps * 4;
        let tokenize = (0..runs)
            .map(|_| {
                time(|| {
                    (0..tokenize_reps).for_each(|_| {
                        model.windows(&texts).unwrap();
                    })
                }) / tokenize_reps as u32
            })
            .min()
            .unwrap();
        let seconds = best.as_secs_f64();
        println!(
            "{batch:>3} x {tokens:<4} ({window_count} windows, {window_tokens} tokens): \
             {:>9.0} tokens/s {:>8.1} docs/s | {:.1} ms per batch, tokenizing {:.1}%",
            window_tokens as f64 / seconds,
            batch as f64 / seconds,
            seconds * 1e3,
            100.0 * tokenize.as_secs_f64() / seconds,
        );
    }
}

fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn candle_threads(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| "default".into())
}
