//! Fail-closed numbers: a model that outputs NaN or infinity is a model failure, never a score;
//! a tokenizer that does not fit the weights is refused at load.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use sluice_classifier::{Classifier, ClassifierError, ClassifierOptions, LabelSelector};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models")
}

/// A copy of a fixture in a temp dir, so a test can damage it.
fn copy_fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = fixtures().join(name);
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
    }
    dir
}

/// Rewrites tensor `name` of the copy's `model.safetensors` with `edit`.
fn edit_tensor(dir: &Path, name: &str, edit: impl FnOnce(Vec<f32>, &[usize]) -> Vec<f32>) {
    let weights = dir.join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&weights, &Device::Cpu).unwrap();
    let t = &tensors[name];
    let shape = t.dims().to_vec();
    let values = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let edited = Tensor::from_vec(edit(values, &shape), shape.as_slice(), &Device::Cpu).unwrap();
    tensors.insert(name.to_string(), edited);
    candle_core::safetensors::save(&tensors, &weights).unwrap();
}

fn load(dir: &Path, label: usize) -> Classifier {
    let mut o = ClassifierOptions::new(dir);
    o.label = LabelSelector::Index(label);
    o.max_tokens = 16;
    o.stride = 4;
    Classifier::load(o).unwrap()
}

fn token_id(dir: &Path, token: &str) -> usize {
    let text = std::fs::read_to_string(dir.join("tokenizer.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["model"]["vocab"][token]
        .as_u64()
        .expect("token in vocab") as usize
}

#[test]
fn nan_weights_fail_the_batch_instead_of_scoring() {
    let dir = copy_fixture("bert");
    edit_tensor(dir.path(), "classifier.bias", |v, _| {
        vec![f32::NAN; v.len()]
    });
    let c = load(dir.path(), 1);
    let err = c
        .score(&["the quick brown fox", "the lazy dog"])
        .unwrap_err();
    assert!(
        matches!(err, ClassifierError::NonFiniteScore { document: 0, .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("NaN"), "{message}");
    assert!(message.contains("document 0"), "{message}");
    // The probe `sluice check` runs says the same.
    let probe = c.probe().unwrap_err();
    assert!(
        matches!(probe, ClassifierError::NonFiniteScore { .. }),
        "{probe:?}"
    );
}

#[test]
fn infinite_outputs_are_errors_too() {
    // A regression head's raw output: +inf is not a score.
    let dir = copy_fixture("bert-regression");
    edit_tensor(dir.path(), "classifier.bias", |v, _| {
        vec![f32::INFINITY; v.len()]
    });
    let c = load(dir.path(), 0);
    let err = c.score(&["the quick brown fox"]).unwrap_err();
    assert!(
        matches!(err, ClassifierError::NonFiniteScore { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("inf"), "{err}");
    // A softmax over an infinite logit is NaN.
    let dir = copy_fixture("distilbert");
    edit_tensor(dir.path(), "classifier.bias", |mut v, _| {
        v[0] = f32::INFINITY;
        v
    });
    let err = load(dir.path(), 1)
        .score(&["the quick brown fox"])
        .unwrap_err();
    assert!(
        matches!(err, ClassifierError::NonFiniteScore { .. }),
        "{err:?}"
    );
}

#[test]
fn only_the_documents_that_hit_nan_fail_in_score_each() {
    let dir = copy_fixture("bert");
    let fox = token_id(dir.path(), "fox");
    edit_tensor(
        dir.path(),
        "bert.embeddings.word_embeddings.weight",
        |mut v, shape| {
            let hidden = shape[1];
            v[fox * hidden..(fox + 1) * hidden].fill(f32::NAN);
            v
        },
    );
    let c = load(dir.path(), 1);
    // A long document: the NaN token is in its second window only.
    let long = format!("{} fox", "the lazy dog ".repeat(8));
    let each = c
        .score_each(&["the lazy dog", "the quick brown fox", &long])
        .unwrap();
    assert_eq!(each.len(), 3);
    let ok = each[0]
        .as_ref()
        .expect("a document without the token scores");
    assert!(ok.score.is_finite());
    match &each[1] {
        Err(ClassifierError::NonFiniteScore {
            document: 1,
            window: Some(0),
            ..
        }) => {}
        other => panic!("expected NonFiniteScore for document 1, got {other:?}"),
    }
    match &each[2] {
        Err(ClassifierError::NonFiniteScore {
            document: 2,
            window: Some(w),
            ..
        }) => assert!(*w > 0, "window {w}"),
        other => panic!("expected NonFiniteScore for document 2, got {other:?}"),
    }
    // The healthy model's probe passes and reports a score.
    let healthy = load(&fixtures().join("bert"), 1);
    let probe = healthy.probe().unwrap();
    assert!(probe.score.is_some_and(f32::is_finite));
    assert!(probe.windows >= 1);
}

#[test]
fn nan_embeddings_of_an_encoder_without_a_head_fail_the_probe() {
    let dir = copy_fixture("st-mean");
    std::fs::create_dir(dir.path().join("1_Pooling")).unwrap();
    std::fs::copy(
        fixtures().join("st-mean/1_Pooling/config.json"),
        dir.path().join("1_Pooling/config.json"),
    )
    .unwrap();
    std::fs::remove_file(dir.path().join("head.safetensors")).unwrap();
    let c = Classifier::load(ClassifierOptions::new(dir.path())).unwrap();
    let probe = c.probe().unwrap();
    assert_eq!(probe.score, None, "no head: embeddings only");
    let name = "embeddings.LayerNorm.bias";
    edit_tensor(dir.path(), name, |v, _| vec![f32::NAN; v.len()]);
    let c = Classifier::load(ClassifierOptions::new(dir.path())).unwrap();
    let err = c.probe().unwrap_err();
    assert!(
        matches!(err, ClassifierError::NonFiniteScore { .. }),
        "{err:?}"
    );
}

#[test]
fn a_tokenizer_beyond_the_vocabulary_fails_at_load_naming_both_sizes() {
    let dir = copy_fixture("bert");
    let config_path = dir.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["vocab_size"] = serde_json::json!(20);
    std::fs::write(&config_path, config.to_string()).unwrap();
    let weights = dir.path().join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&weights, &Device::Cpu).unwrap();
    let name = "bert.embeddings.word_embeddings.weight";
    let small = tensors[name].narrow(0, 0, 20).unwrap();
    tensors.insert(name.to_string(), small);
    candle_core::safetensors::save(&tensors, &weights).unwrap();
    let mut o = ClassifierOptions::new(dir.path());
    o.label = LabelSelector::Index(0);
    let err = Classifier::load(o).unwrap_err();
    match &err {
        ClassifierError::VocabularyMismatch {
            tokenizer_size,
            model_size,
            ..
        } => {
            assert_eq!(*tokenizer_size, 164);
            assert_eq!(*model_size, 20);
        }
        other => panic!("expected VocabularyMismatch, got {other}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("164") && message.contains("20"),
        "{message}"
    );
    assert!(message.contains("tokenizer.json"), "{message}");
}
