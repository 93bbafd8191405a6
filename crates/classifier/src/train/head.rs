//! Training a head on a frozen sentence-transformers encoder.
//!
//! The encoder embeds every window of every example once, windowed as the stage windows it
//! (`max_bytes`, `max_tokens`, `stride`; the first window only for `aggregate = first`), pooled
//! and normalized as the encoder's modules say: exactly what [`crate::Classifier::embed_windows`]
//! returns. The embeddings are cached under `cache_dir/<encoder hash>-<texts and windowing
//! hash>.safetensors` (the window rows, and each example's window count), so a second run with
//! other head settings skips the encoder. The head (linear, or one hidden ReLU layer) then scores
//! each window and trains through the stage's aggregation ([`super::aggregate_logits`]), in
//! milliseconds per epoch.
//!
//! The model directory written is the encoder's directory (its config, weights, tokenizer and
//! module folders, copied) plus `head.safetensors` and `head.json`, the format
//! `backend/sentence.rs` documents: self-contained, so the `classifier` stage loads it alone.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Linear, Module};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{fit, hex, io_err, label_config, save_tensors, uniform_var, write_json};
use super::{Job, Outcome, TrainError, TrainKind, Trainable};
use crate::backend::sentence::{HEAD_CONFIG, HEAD_WEIGHTS};
use crate::rng::SplitMix64;
use crate::{Architecture, Classifier, ClassifierOptions, Scoring};

/// Examples embedded per call, between progress reports.
const EMBED_CHUNK: usize = 64;

struct HeadTrainer {
    /// `(windows, hidden)` sentence embeddings of every example's windows, in example order.
    embeddings: Tensor,
    /// Index of each example's first window in `embeddings`, and one past the last.
    offsets: Vec<usize>,
    aggregate: crate::Aggregate,
    hidden: Option<(Var, Var)>,
    weight: Var,
    bias: Var,
}

impl HeadTrainer {
    fn vars(&self) -> Vec<Var> {
        let mut vars = vec![self.weight.clone(), self.bias.clone()];
        if let Some((w, b)) = &self.hidden {
            vars.extend([w.clone(), b.clone()]);
        }
        vars
    }
}

impl Trainable for HeadTrainer {
    fn logits(&self, examples: &[usize]) -> candle_core::Result<Tensor> {
        let mut index: Vec<u32> = Vec::new();
        let mut counts = Vec::with_capacity(examples.len());
        for &i in examples {
            let (start, end) = (self.offsets[i], self.offsets[i + 1]);
            index.extend((start..end).map(|w| w as u32));
            counts.push(end - start);
        }
        let index = Tensor::from_vec(index, counts.iter().sum::<usize>(), &Device::Cpu)?;
        let mut x = self.embeddings.index_select(&index, 0)?;
        if let Some((w, b)) = &self.hidden {
            x = Linear::new(w.as_tensor().clone(), Some(b.as_tensor().clone()))
                .forward(&x)?
                .relu()?;
        }
        let windows = Linear::new(
            self.weight.as_tensor().clone(),
            Some(self.bias.as_tensor().clone()),
        )
        .forward(&x)?;
        super::aggregate_logits(&windows, &counts, self.aggregate)
    }
}

pub(crate) fn train(
    job: &Job<'_>,
    rng: &mut SplitMix64,
    dir: &Path,
) -> Result<Outcome, TrainError> {
    let TrainKind::Head {
        encoder,
        hidden,
        cache_dir,
        device,
    } = &job.options.kind
    else {
        unreachable!("called for heads only")
    };
    let files = encoder_files(encoder)?;
    let max_tokens = match job.options.max_tokens {
        Some(m) => m,
        None => encoder_max_seq_length(encoder)?.unwrap_or(super::DEFAULT_WINDOW),
    };
    if job.options.stride >= max_tokens {
        return Err(TrainError::Options(format!(
            "--stride {} must be less than the window of {max_tokens} tokens",
            job.options.stride
        )));
    }
    let classifier = Classifier::load(ClassifierOptions {
        device: *device,
        max_tokens,
        stride: job.options.stride,
        max_bytes: job.options.max_bytes,
        aggregate: job.aggregate,
        ..ClassifierOptions::new(encoder)
    })?;
    // What the stage will use: the window as lowered to the encoder's position limit.
    let scoring = Scoring {
        max_tokens: classifier.max_tokens(),
        stride: classifier.stride(),
        max_bytes: job.options.max_bytes,
        aggregate: job.aggregate,
    };
    if classifier.architecture() != Architecture::SentenceTransformer {
        return Err(TrainError::Options(format!(
            "--encoder {} is a {} model, not a sentence-transformers encoder (modules.json)",
            encoder.display(),
            classifier.architecture().name()
        )));
    }
    let (embeddings, offsets, cached) = embeddings(job, &classifier, encoder, &files, cache_dir)?;
    let (_, width) = embeddings.dims2()?;
    let classes = job.classes.len();
    let hidden_vars = match hidden {
        Some(units) => {
            let bound = 1.0 / (width as f32).sqrt();
            Some((
                uniform_var(rng, &[*units, width], bound)?,
                uniform_var(rng, &[*units], bound)?,
            ))
        }
        None => None,
    };
    let into_out = hidden.unwrap_or(width);
    let bound = 1.0 / (into_out as f32).sqrt();
    let trainer = HeadTrainer {
        embeddings,
        offsets,
        aggregate: job.aggregate,
        hidden: hidden_vars,
        weight: uniform_var(rng, &[classes, into_out], bound)?,
        bias: uniform_var(rng, &[classes], bound)?,
    };
    let (epoch_losses, validation) = fit(job, &trainer, trainer.vars(), rng)?;

    copy_encoder(encoder, &files, dir)?;
    let mut tensors = vec![
        ("weight", trainer.weight.as_tensor().clone()),
        ("bias", trainer.bias.as_tensor().clone()),
    ];
    let mut head = label_config(job.classes);
    if let Some((w, b)) = &trainer.hidden {
        tensors.push(("hidden.weight", w.as_tensor().clone()));
        tensors.push(("hidden.bias", b.as_tensor().clone()));
        head.insert("head_activation".into(), "relu".into());
    }
    head.insert(
        crate::SCORING_KEY.into(),
        serde_json::to_value(scoring).expect("scoring serializes"),
    );
    save_tensors(&dir.join(HEAD_WEIGHTS), tensors)?;
    write_json(&dir.join(HEAD_CONFIG), &head)?;
    Ok(Outcome {
        epoch_losses,
        validation,
        embeddings_cached: Some(cached),
        scoring,
    })
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    #[serde(default)]
    max_seq_length: Option<usize>,
}

/// The `max_seq_length` of the encoder's `sentence_bert_config.json`, the length
/// sentence-transformers truncates to (and the encoder was trained at), if it has one.
fn encoder_max_seq_length(encoder: &Path) -> Result<Option<usize>, TrainError> {
    let path = encoder.join("sentence_bert_config.json");
    if !path.is_file() {
        return Ok(None);
    }
    let bytes = std::fs::read(&path).map_err(io_err(&path))?;
    let config: SentenceBertConfig = serde_json::from_slice(&bytes)
        .map_err(|e| TrainError::Options(format!("{}: {e}", path.display())))?;
    Ok(config.max_seq_length.filter(|&m| m > 0))
}

#[derive(Deserialize)]
struct ModuleEntry {
    #[serde(default)]
    path: String,
}

/// Weight files in formats other than safetensors, which the copy leaves out.
const OTHER_WEIGHT_EXTENSIONS: &[&str] = &["bin", "h5", "msgpack", "ot", "onnx", "pt", "pth"];

/// The encoder's files to copy, relative and sorted: the top-level files (minus any head, other
/// weight formats and dotfiles) and everything in the module folders modules.json names.
fn encoder_files(encoder: &Path) -> Result<Vec<PathBuf>, TrainError> {
    let modules_path = encoder.join("modules.json");
    let modules: Vec<ModuleEntry> =
        serde_json::from_slice(&std::fs::read(&modules_path).map_err(|e| {
            TrainError::Options(format!(
                "--encoder {} is not a sentence-transformers directory: {}: {e}",
                encoder.display(),
                modules_path.display()
            ))
        })?)
        .map_err(|e| TrainError::Options(format!("{}: {e}", modules_path.display())))?;
    let mut files = Vec::new();
    let mut dirs = vec![PathBuf::new()];
    dirs.extend(
        modules
            .iter()
            .filter(|m| !m.path.is_empty())
            .map(|m| PathBuf::from(&m.path)),
    );
    while let Some(rel) = dirs.pop() {
        let top = rel.as_os_str().is_empty();
        let abs = encoder.join(&rel);
        let Ok(entries) = std::fs::read_dir(&abs) else {
            // A Normalize module has no folder of its own.
            continue;
        };
        for entry in entries {
            let entry = entry.map_err(io_err(&abs))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = rel.join(&name);
            let kind = entry.file_type().map_err(io_err(&abs))?;
            if name.starts_with('.') {
                continue;
            }
            if kind.is_dir() {
                if !top {
                    dirs.push(path);
                }
                continue;
            }
            let extension = Path::new(&name)
                .extension()
                .map(|e| e.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            let skip = top
                && (name == HEAD_WEIGHTS
                    || name == HEAD_CONFIG
                    || name == "training.json"
                    || OTHER_WEIGHT_EXTENSIONS.contains(&extension.as_str()));
            if !skip {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn copy_encoder(encoder: &Path, files: &[PathBuf], dir: &Path) -> Result<(), TrainError> {
    for rel in files {
        let to = dir.join(rel);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        std::fs::copy(encoder.join(rel), &to).map_err(io_err(&to))?;
    }
    Ok(())
}

/// SHA-256 of the encoder's files (names and contents), streamed.
fn hash_encoder(encoder: &Path, files: &[PathBuf]) -> Result<String, TrainError> {
    let mut hasher = Sha256::new();
    for rel in files {
        let path = encoder.join(rel);
        hasher.update(rel.to_string_lossy().as_bytes());
        let mut file = std::fs::File::open(&path).map_err(io_err(&path))?;
        std::io::copy(&mut file, &mut hasher).map_err(io_err(&path))?;
    }
    Ok(hex(&hasher.finalize()))
}

/// The `(windows, hidden)` embedding matrix of every example's windows and each example's first
/// row (plus one past the end), from the cache or the encoder; `true` when cached.
fn embeddings(
    job: &Job<'_>,
    classifier: &Classifier,
    encoder: &Path,
    files: &[PathBuf],
    cache_dir: &Option<PathBuf>,
) -> Result<(Tensor, Vec<usize>, bool), TrainError> {
    let n = job.examples.len();
    let first_only = job.aggregate == crate::Aggregate::First;
    let cache_path = match cache_dir {
        Some(dir) => {
            let mut texts = Sha256::new();
            // Everything that decides the windows is in the key.
            texts.update(format!(
                "windows max_tokens={} stride={} max_bytes={} first_only={first_only}\n",
                classifier.max_tokens(),
                classifier.stride(),
                job.options.max_bytes
            ));
            for e in job.examples {
                texts.update((e.text.len() as u64).to_le_bytes());
                texts.update(e.text.as_bytes());
            }
            let key = format!(
                "{}-{}",
                &hash_encoder(encoder, files)?[..16],
                &hex(&texts.finalize())[..16]
            );
            Some(dir.join(format!("{key}.safetensors")))
        }
        None => None,
    };
    if let Some(path) = cache_path.as_ref().filter(|p| p.is_file()) {
        // A cache entry that does not read back as consistent windows is recomputed.
        if let Ok(mut tensors) = candle_core::safetensors::load(path, &Device::Cpu) {
            if let (Some(t), Some(counts)) =
                (tensors.remove("embeddings"), tensors.remove("windows"))
            {
                let counts: Vec<u32> = counts.to_vec1().unwrap_or_default();
                let offsets = offsets_of(counts.iter().map(|&c| c as usize));
                if t.dims().len() == 2 && counts.len() == n && offsets[n] == t.dims()[0] {
                    job.progress
                        .message(&format!("embeddings: cached in {}", path.display()));
                    return Ok((t.to_dtype(DType::F32)?, offsets, true));
                }
            }
        }
    }
    job.progress.message(&format!(
        "embedding {n} examples with {} ({} windows of {} tokens, stride {}, as the stage scores them)",
        encoder.display(),
        if first_only { "first" } else { "all" },
        classifier.max_tokens(),
        classifier.stride()
    ));
    let mut rows: Vec<f32> = Vec::new();
    let mut counts: Vec<u32> = Vec::with_capacity(n);
    let mut width = 0;
    let mut done = 0;
    job.progress.embedding(0, n);
    for chunk in job.examples.chunks(EMBED_CHUNK) {
        let texts: Vec<&str> = chunk.iter().map(|e| e.text.as_str()).collect();
        for windows in classifier.embed_windows(&texts)? {
            counts.push(windows.len() as u32);
            for row in windows {
                width = row.len();
                rows.extend(row);
            }
        }
        done += chunk.len();
        job.progress.embedding(done, n);
    }
    let offsets = offsets_of(counts.iter().map(|&c| c as usize));
    let matrix = Tensor::from_vec(rows, (offsets[n], width), &Device::Cpu)?;
    if let Some(path) = cache_path {
        let dir = path.parent().expect("cache file has a directory");
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let partial = path.with_extension("partial");
        let windows = Tensor::from_vec(counts, n, &Device::Cpu)?;
        save_tensors(
            &partial,
            vec![("embeddings", matrix.clone()), ("windows", windows)],
        )?;
        std::fs::rename(&partial, &path).map_err(io_err(&path))?;
        job.progress
            .message(&format!("embeddings: cached in {}", path.display()));
    }
    Ok((matrix, offsets, false))
}

/// Running sums of `counts`, from 0: each example's first window, then the total.
fn offsets_of(counts: impl Iterator<Item = usize>) -> Vec<usize> {
    let mut offsets = vec![0];
    for c in counts {
        offsets.push(offsets.last().expect("starts with 0") + c);
    }
    offsets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoder_files_leave_out_heads_and_other_formats() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("modules.json"),
            r#"[{"path": ""}, {"path": "1_Pooling"}, {"path": "2_Normalize"}]"#,
        )
        .unwrap();
        for f in [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "head.safetensors",
            "head.json",
            "pytorch_model.bin",
            ".gitattributes",
        ] {
            std::fs::write(d.join(f), "x").unwrap();
        }
        std::fs::create_dir_all(d.join("1_Pooling")).unwrap();
        std::fs::write(d.join("1_Pooling/config.json"), "{}").unwrap();
        std::fs::create_dir_all(d.join("onnx")).unwrap();
        std::fs::write(d.join("onnx/model.onnx"), "x").unwrap();
        let files = encoder_files(d).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "1_Pooling/config.json",
                "config.json",
                "model.safetensors",
                "modules.json",
                "tokenizer.json"
            ]
        );
        let err = encoder_files(&d.join("1_Pooling")).unwrap_err().to_string();
        assert!(
            err.contains("not a sentence-transformers directory"),
            "{err}"
        );
    }
}
