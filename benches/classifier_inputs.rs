//! Inputs shared by `benches/classifier.rs` and `examples/classifier_speed.rs`: where the models
//! are, documents of a chosen token length, and a realistic-size hashed-ngram model.

#![allow(dead_code)] // each user takes a different subset

use std::path::{Path, PathBuf};

/// Common English words that are single WordPiece tokens in BERT's uncased vocabulary, so that a
/// document of `n` of them is `n + 2` tokens for MiniLM ([CLS] and [SEP] added).
const WORDS: &str = "the of and to in a is that for it as was with be by on not he this are or \
    his from at which but have an they you were her she there one all we their has been would \
    will more its so who if no out up about into them can only other time new some could these \
    two may first then do any like my now over such our man me even most made after also did \
    many before must through back years where much your way well down should because each just \
    those people how too state good very make world still own see men work long here get both \
    between life being under never day same another know while last might us great old year off \
    come since against go came right used take three";

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// all-MiniLM-L6-v2 under `$SLUICE_MODEL_CACHE` (default `<repo>/.cache/models`), if present.
pub fn minilm_dir() -> Option<PathBuf> {
    let cache = std::env::var_os("SLUICE_MODEL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".cache/models"));
    let dir = cache.join("all-MiniLM-L6-v2");
    dir.join("model.safetensors").is_file().then_some(dir)
}

/// A tiny fixture model by name (`bert`, `hashed-ngram`, ...).
pub fn fixture(name: &str) -> PathBuf {
    repo().join("fixtures/models").join(name)
}

/// `count` documents of `words` words each, seeded and reproducible.
pub fn documents(count: usize, words: usize, seed: u64) -> Vec<String> {
    let vocab: Vec<&str> = WORDS.split_whitespace().collect();
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..count)
        .map(|_| {
            let mut doc = String::with_capacity(words * 6);
            for i in 0..words {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                if i > 0 {
                    doc.push(' ');
                }
                doc.push_str(vocab[(state >> 33) as usize % vocab.len()]);
            }
            doc
        })
        .collect()
}

/// Writes a hashed-ngram model of fastText-like size (2^20 buckets × 64, 256 MiB; two labels)
/// with seeded pseudo-random weights into `dir`.
pub fn write_hashed_ngram(dir: &Path) {
    const BUCKETS: usize = 1 << 20;
    const DIM: usize = 64;
    let config = serde_json::json!({
        "architectures": ["HashedNgramClassifier"],
        "model_type": "hashed-ngram",
        "num_buckets": BUCKETS,
        "embedding_dim": DIM,
        "word_ngrams": 2,
        "lowercase": true,
        "id2label": {"0": "keep", "1": "drop"},
        "problem_type": "single_label_classification"
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let mut state = 1u64;
    let mut random = |n: usize| -> Vec<u8> {
        (0..n)
            .flat_map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2).to_le_bytes()
            })
            .collect()
    };
    let embedding = random(BUCKETS * DIM);
    let weight = random(2 * DIM);
    let bias = random(2);
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;
    let tensors = [
        (
            "embedding.weight",
            TensorView::new(Dtype::F32, vec![BUCKETS, DIM], &embedding).unwrap(),
        ),
        (
            "classifier.weight",
            TensorView::new(Dtype::F32, vec![2, DIM], &weight).unwrap(),
        ),
        (
            "classifier.bias",
            TensorView::new(Dtype::F32, vec![2], &bias).unwrap(),
        ),
    ];
    safetensors::serialize_to_file(tensors, None, &dir.join("model.safetensors")).unwrap();
}
