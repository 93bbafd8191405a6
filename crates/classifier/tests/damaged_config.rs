//! Configurations that would make candle divide by zero, or build tables far larger than the
//! weights, are refused at load with an error naming the key: never a panic or an abort.

use std::path::{Path, PathBuf};

use sluice_classifier::{Classifier, ClassifierError, ClassifierOptions, LabelSelector};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models")
}

/// A copy of fixture `name` whose config.json has `key` set to `value`; the load error.
fn load_with(name: &str, key: &str, value: serde_json::Value) -> ClassifierError {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixtures().join(name)).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
    }
    let path = dir.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config[key] = value;
    std::fs::write(&path, config.to_string()).unwrap();
    let mut o = ClassifierOptions::new(dir.path());
    o.label = LabelSelector::Index(0);
    match Classifier::load(o) {
        Ok(_) => panic!("{name} with {key} edited loaded"),
        Err(e) => e,
    }
}

fn assert_config_error(err: &ClassifierError, key: &str) {
    assert!(
        matches!(err, ClassifierError::Config { .. }),
        "expected a config error naming {key}, got {err:?}"
    );
    assert!(err.to_string().contains(key), "{err}");
}

/// Found by the `model_loader` fuzz target: candle's ModernBERT divides by the head count.
#[test]
fn zero_attention_heads() {
    for (name, key) in [
        ("modernbert", "num_attention_heads"),
        ("bert", "num_attention_heads"),
        ("xlm-roberta", "num_attention_heads"),
        ("deberta-v2", "num_attention_heads"),
        ("distilbert", "n_heads"),
        ("st-mean", "num_attention_heads"),
    ] {
        let err = load_with(name, key, serde_json::json!(0));
        assert_config_error(&err, key);
    }
}

#[test]
fn hidden_size_not_a_multiple_of_the_heads() {
    let err = load_with("modernbert", "num_attention_heads", serde_json::json!(5));
    assert_config_error(&err, "hidden_size");
    let err = load_with("distilbert", "n_heads", serde_json::json!(3));
    assert_config_error(&err, "dim");
}

/// Position tables are computed from the config, not read from the weights: a position count
/// far beyond what the weights could use must not be allocated.
#[test]
fn huge_position_counts() {
    for name in ["modernbert", "bert", "deberta-v2"] {
        let err = load_with(
            name,
            "max_position_embeddings",
            serde_json::json!(1u64 << 40),
        );
        assert_config_error(&err, "max_position_embeddings");
    }
}

/// `num_labels` without `id2label` names the labels LABEL_0..: not 10^15 of them.
#[test]
fn huge_label_counts() {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixtures().join("bert")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let path = dir.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config.as_object_mut().unwrap().remove("id2label");
    config["num_labels"] = serde_json::json!(1u64 << 50);
    std::fs::write(&path, config.to_string()).unwrap();
    let mut o = ClassifierOptions::new(dir.path());
    o.label = LabelSelector::Index(0);
    let err = Classifier::load(o).unwrap_err();
    assert_config_error(&err, "num_labels");
}
