//! Criterion benchmarks of the classifier stage, in tokens per second (criterion prints
//! "elem/s"; an element is one token of a window, special tokens included, as in PyTorch's
//! `batch × length` figures).
//!
//! * `minilm`: all-MiniLM-L6-v2 (BERT, 6 layers, 384 hidden) from `$SLUICE_MODEL_CACHE`
//!   (default `.cache/models`), embedding batches of 32 one-window documents of 64, 128, 256 and
//!   512 tokens, and 8 × 512; tokenizing included. Skipped with a message when the model is not
//!   cached (`crates/classifier/scripts/fetch-minilm.sh` fetches it).
//! * `minilm_tokenize`: tokenizing and windowing the same batches alone.
//! * `hashed_ngram`: scoring 32 documents of 512 words with a generated 2^20-bucket × 64 model,
//!   and with the tiny `fixtures/models/hashed-ngram`.
//! * `tiny_bert`: the random 2-layer `fixtures/models/bert` at 32 × 64 (its position limit), so
//!   that the bench runs without the model cache.
//!
//! Threads come from the environment (`RAYON_NUM_THREADS`, see `examples/classifier_speed.rs`).
//! Run: `cargo bench --bench classifier`, one group with `cargo bench --bench classifier -- minilm/`.

#[path = "classifier_inputs.rs"]
mod classifier_inputs;

use std::path::Path;

use classifier_inputs::{documents, fixture, minilm_dir, write_hashed_ngram};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sluice_classifier::{Classifier, ClassifierOptions, LabelSelector};

/// Loads `dir` for windows of `tokens` tokens, batches of `batch`.
fn load(dir: &Path, batch: usize, tokens: usize) -> Classifier {
    let mut options = ClassifierOptions::new(dir);
    options.batch_size = batch;
    options.max_tokens = tokens;
    options.stride = 0;
    // Any output will do for timing (the fixtures have three, where `Auto` refuses to pick).
    options.label = LabelSelector::Index(0);
    Classifier::load(options).unwrap()
}

/// Tokens in all windows of `texts`.
fn window_tokens(model: &Classifier, texts: &[&str]) -> u64 {
    let windows = model.windows(texts).unwrap();
    windows.iter().flatten().map(Vec::len).sum::<usize>() as u64
}

fn minilm(c: &mut Criterion) {
    let Some(dir) = minilm_dir() else {
        eprintln!(
            "minilm: skipped, all-MiniLM-L6-v2 not found (set SLUICE_MODEL_CACHE or run \
             crates/classifier/scripts/fetch-minilm.sh)"
        );
        return;
    };
    let mut group = c.benchmark_group("minilm");
    group.sample_size(10);
    let mut tokenize = Vec::new();
    for (batch, tokens) in [(32, 64), (32, 128), (32, 256), (32, 512), (8, 512)] {
        let model = load(&dir, batch, tokens);
        let owned = documents(batch, tokens - 2, tokens as u64);
        let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
        group.throughput(Throughput::Elements(window_tokens(&model, &texts)));
        group.bench_function(format!("{batch}x{tokens}"), |b| {
            b.iter(|| black_box(model.embed(black_box(&texts)).unwrap()))
        });
        tokenize.push((batch, tokens, model, owned));
    }
    group.finish();

    let mut group = c.benchmark_group("minilm_tokenize");
    for (batch, tokens, model, owned) in &tokenize {
        let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
        let texts = &texts;
        group.throughput(Throughput::Elements(window_tokens(model, texts)));
        group.bench_function(format!("{batch}x{tokens}"), |b| {
            b.iter(|| black_box(model.windows(black_box(texts)).unwrap()))
        });
    }
    group.finish();
}

fn hashed_ngram(c: &mut Criterion) {
    let generated = tempfile::tempdir().unwrap();
    write_hashed_ngram(generated.path());
    let mut group = c.benchmark_group("hashed_ngram");
    let texts = documents(32, 512, 7);
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    for (name, dir) in [
        ("2^20x64/32x512", generated.path().to_path_buf()),
        ("fixture/32x512", fixture("hashed-ngram")),
    ] {
        let model = load(&dir, 32, 512);
        group.throughput(Throughput::Elements(window_tokens(&model, &texts)));
        group.bench_function(name, |b| {
            b.iter(|| black_box(model.score(black_box(&texts)).unwrap()))
        });
    }
    group.finish();
}

fn tiny_bert(c: &mut Criterion) {
    let model = load(&fixture("bert"), 32, 64);
    let texts = documents(32, 62, 3);
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut group = c.benchmark_group("tiny_bert");
    group.throughput(Throughput::Elements(window_tokens(&model, &texts)));
    group.bench_function("32x64", |b| {
        b.iter(|| black_box(model.score(black_box(&texts)).unwrap()))
    });
    group.finish();
}

fn setup() -> Criterion {
    sluice_classifier::tune_allocator();
    Criterion::default()
}

criterion_group! {
    name = benches;
    config = setup();
    targets = minilm, hashed_ngram, tiny_bert
}
criterion_main!(benches);
