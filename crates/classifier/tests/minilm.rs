//! Real-model test: all-MiniLM-L6-v2 loaded as a sentence-transformers encoder must reproduce the
//! embeddings of the PyTorch model (mean pooling + L2 normalize) within 1e-4.
//!
//! The model is not committed: `crates/classifier/scripts/fetch-minilm.sh` puts it in
//! `<repo>/.cache/models/all-MiniLM-L6-v2` (or `$SLUICE_MODEL_CACHE/all-MiniLM-L6-v2`). Without
//! it this test prints "skipped: ..." and passes. The reference vectors are committed in
//! `fixtures/models/minilm-reference.json`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sluice_classifier::{Architecture, Classifier, ClassifierOptions};

#[derive(Deserialize)]
struct Reference {
    documents: Vec<Doc>,
}

#[derive(Deserialize)]
struct Doc {
    text: String,
    embedding: Vec<f32>,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn model_dir() -> PathBuf {
    let cache = std::env::var_os("SLUICE_MODEL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".cache/models"));
    cache.join("all-MiniLM-L6-v2")
}

#[test]
fn minilm_embeddings_match_pytorch() {
    let dir = model_dir();
    if !dir.join("model.safetensors").is_file() {
        eprintln!(
            "skipped: all-MiniLM-L6-v2 not found in {} (run crates/classifier/scripts/fetch-minilm.sh)",
            dir.display()
        );
        return;
    }
    let reference: Reference = serde_json::from_str(
        &std::fs::read_to_string(repo().join("fixtures/models/minilm-reference.json")).unwrap(),
    )
    .unwrap();
    let mut options = ClassifierOptions::new(&dir);
    options.max_tokens = 256; // sentence_bert_config.json's max_seq_length
    options.batch_size = 2;
    let model = Classifier::load(options).unwrap();
    assert_eq!(model.architecture(), Architecture::SentenceTransformer);
    assert!(model.labels().is_none());

    let texts: Vec<&str> = reference
        .documents
        .iter()
        .map(|d| d.text.as_str())
        .collect();
    let batched = model.embed(&texts).unwrap();
    let mut max_diff = 0f32;
    for (doc, got) in reference.documents.iter().zip(&batched) {
        assert_eq!(got.len(), 384);
        for (a, b) in got.iter().zip(&doc.embedding) {
            max_diff = max_diff.max((a - b).abs());
        }
        // Alone, with no padding, gives the very same vector.
        let alone = &model.embed(&[&doc.text]).unwrap()[0];
        for (a, b) in got.iter().zip(alone) {
            // Bit for bit: the encoder's products sum in an order that does not depend on the
            // batch (see `fixed_rows_matmul` in bert_encoder.rs).
            assert_eq!(a.to_bits(), b.to_bits(), "batched vs alone: {a} vs {b}");
        }
    }
    eprintln!("all-MiniLM-L6-v2: max |embedding - reference| = {max_diff:.2e}");
    assert!(
        max_diff < 1e-4,
        "embeddings differ from PyTorch by {max_diff}"
    );
}
