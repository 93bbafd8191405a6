//! What the `audit_record` and `settings` fuzz targets (`fuzz/fuzz_targets/`) run, here so that
//! the crate's tests run every committed corpus file through the same code without a nightly
//! toolchain. Built only for tests and with the `fuzzing` feature.

use std::path::Path;

use crate::rethreshold::apply_settings;
use crate::Record;

/// One fuzz input: an audit record's line. Parsing must never panic; a record that parses
/// writes back to a line that parses to the same record, and what readers ask of it (spans,
/// score, reasons, keys) never panics.
pub fn audit_record(data: &[u8]) {
    let Ok(record) = serde_json::from_slice::<Record>(data) else {
        return;
    };
    let line = serde_json::to_vec(&record).expect("a record serializes");
    let back: Record = serde_json::from_slice(&line).expect("a written record reads back");
    assert_eq!(back, record);
    let _ = (record.spans(), record.score(), record.reason_keys());
    for family in ["rules", "terms", "categories", "languages"] {
        let _ = record.keys(family);
    }
}

/// The config `settings` are applied to: the hazard cascade with a classifier and a language
/// stage, whose lists and model are never read here.
const CONFIG: &str = r#"
[[stages]]
type = "language"
id = "language"
languages = ["en"]
engine = "whatlang"
action = "drop"
[[stages]]
type = "rules"
id = "keyword-rules"
[[stages.rules]]
id = "r"
pattern = "x"
action = "drop"
[[stages]]
type = "terms"
id = "hazard-terms"
lists = ["lists/hazard-terms.tsv"]
min_distinct = 2
action = "escalate"
[[stages]]
type = "classifier"
id = "model"
model = "m"
mode = "all"
drop_threshold = 0.8
review_threshold = 0.5
"#;

/// One fuzz input: `--set` arguments, one per line. Applying them to [`CONFIG`] must never
/// panic: each is accepted or refused with a message; an accepted one changes only its key.
pub fn settings(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut config = sluice_core::Config::from_toml(CONFIG, Path::new(".")).expect("valid");
    let settings: Vec<String> = text.lines().map(str::to_string).collect();
    if apply_settings(&mut config, &settings).is_ok() {
        let _ = config.validate();
        let _ = serde_json::to_vec(&config).expect("a config serializes");
    }
}

#[cfg(test)]
mod tests {
    fn corpus(target: &str, each: fn(&[u8])) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus")
            .join(target);
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            each(&std::fs::read(entry.unwrap().path()).unwrap());
            count += 1;
        }
        assert!(count > 0, "no corpus in {}", dir.display());
    }

    /// Every committed corpus file of the audit fuzz targets, through the same functions.
    #[test]
    fn fuzz_corpus_runs_clean() {
        corpus("audit_record", super::audit_record);
        corpus("settings", super::settings);
    }
}
