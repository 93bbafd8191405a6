//! What the `model_loader` fuzz target (`fuzz/fuzz_targets/model_loader.rs`) runs, here so that
//! the crate's tests run every committed corpus file through the same code without a nightly
//! toolchain. Built only for tests and with the `fuzzing` feature.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::{Classifier, ClassifierOptions, LabelSelector};

/// The fixture checkpoints (`fixtures/models/`) a fuzz input can start from.
pub const FIXTURES: [&str; 7] = [
    "bert",
    "distilbert",
    "xlm-roberta",
    "modernbert",
    "deberta-v2",
    "hashed-ngram",
    "st-mean",
];

/// One fuzz input: `fixture`, `mode`, then bytes that replace files of that fixture's checkpoint
/// in a scratch directory:
///
/// - `mode % 4 == 0`: the rest is `config.json`;
/// - `1`: the rest is `model.safetensors`;
/// - `2`: the rest is a little-endian `u16` length, `config.json` of that length, then
///   `model.safetensors`;
/// - `3`: the rest is `tokenizer.json`.
///
/// The directory is then loaded and, when it loads, scored, probed and embedded. Any outcome is
/// fine except a panic, an abort or a huge allocation (the fuzzer's memory limit catches those).
pub fn model_loader(data: &[u8]) {
    let [fixture, mode, rest @ ..] = data else {
        return;
    };
    unwind_tokenizers_panics();
    let name = FIXTURES[usize::from(*fixture) % FIXTURES.len()];
    let dir = scratch_dir();
    let files = fixture_files(name);
    for entry in std::fs::read_dir(dir).expect("scratch dir") {
        let path = entry.expect("scratch entry").path();
        let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
    }
    for (relative, bytes) in files {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("scratch subdir");
        }
        std::fs::write(path, bytes).expect("write fixture file");
    }
    let write = |file: &str, bytes: &[u8]| std::fs::write(dir.join(file), bytes).expect("write");
    match mode % 4 {
        0 => write("config.json", rest),
        1 => write("model.safetensors", rest),
        2 => {
            let [a, b, rest @ ..] = rest else {
                return;
            };
            let len = usize::from(u16::from_le_bytes([*a, *b])).min(rest.len());
            write("config.json", &rest[..len]);
            write("model.safetensors", &rest[len..]);
        }
        _ => write("tokenizer.json", rest),
    }
    let mut options = ClassifierOptions::new(dir);
    options.label = LabelSelector::Index(0);
    options.max_tokens = 16;
    options.stride = 2;
    options.batch_size = 2;
    let verbose = std::env::var_os("SLUICE_FUZZ_VERBOSE").is_some();
    match Classifier::load(options) {
        Ok(classifier) => {
            let texts = [
                "the quick brown fox jumps over the lazy dog again and again",
                "",
            ];
            let scored = classifier.score(&texts);
            let _ = classifier.score_each(&texts);
            let _ = classifier.probe();
            let _ = classifier.embed(&texts);
            if verbose {
                eprintln!("{name} mode {}: loaded, scores {scored:?}", mode % 4);
            }
        }
        Err(e) if verbose => eprintln!("{name} mode {}: {e}", mode % 4),
        Err(_) => {}
    }
}

/// The tokenizers crate panics on some tokenizer files (an `expect` on a missing key); sluice
/// catches those panics (`catch_unwind` around loading and encoding) and reports them as
/// errors. libFuzzer's panic hook aborts on every panic, caught or not: this hook lets the
/// panics raised inside the tokenizers crate unwind to sluice's handler, and passes every other
/// one to the hook it replaces. A tokenizers panic that sluice failed to catch still ends the
/// fuzz run (libfuzzer-sys aborts on a panic leaving the target).
fn unwind_tokenizers_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_tokenizers = info
                .location()
                .is_some_and(|l| l.file().contains("/tokenizers-"));
            if !in_tokenizers {
                previous(info);
            }
        }));
    });
}

/// A checkpoint's files: (path relative to the checkpoint, bytes).
type Files = Vec<(PathBuf, Vec<u8>)>;

/// The files of a fixture checkpoint, read once.
fn fixture_files(name: &str) -> &'static Files {
    static CACHE: OnceLock<Vec<Files>> = OnceLock::new();
    let all = CACHE.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models");
        FIXTURES
            .iter()
            .map(|name| {
                let base = root.join(name);
                let mut files = Vec::new();
                let mut pending = vec![base.clone()];
                while let Some(dir) = pending.pop() {
                    for entry in std::fs::read_dir(&dir).expect("fixture dir") {
                        let path = entry.expect("fixture entry").path();
                        if path.is_dir() {
                            pending.push(path);
                        } else if path.file_name().is_some_and(|n| n != "reference.json") {
                            let relative = path.strip_prefix(&base).expect("under").to_path_buf();
                            files.push((relative, std::fs::read(&path).expect("fixture file")));
                        }
                    }
                }
                files
            })
            .collect()
    });
    let index = FIXTURES.iter().position(|n| *n == name).expect("a fixture");
    &all[index]
}

/// A directory for this process's scratch checkpoint (rewritten every run).
fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"))
        .path()
}

#[cfg(test)]
mod tests {
    /// Every committed corpus file of the `model_loader` fuzz target, through the same function.
    #[test]
    fn fuzz_corpus_runs_clean() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/model_loader");
        let mut count = 0;
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries {
                let path = entry.unwrap().path();
                super::model_loader(&std::fs::read(&path).unwrap());
                count += 1;
            }
        }
        assert!(count > 0, "no corpus in {}", dir.display());
    }
}
