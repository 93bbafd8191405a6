//! Training a head on a frozen sentence-transformers encoder.
//!
//! The encoder embeds every example once (its first `max_tokens` tokens, pooled and normalized as
//! the encoder's modules say: exactly what [`crate::Classifier::embed`] returns); the embeddings
//! are cached under `cache_dir/<encoder hash>-<texts hash>.safetensors`, so a second run with
//! other head settings skips the encoder. The head (linear, or one hidden ReLU layer) then trains
//! on the cached matrix in milliseconds per epoch.
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
use crate::{Architecture, Classifier, ClassifierOptions};

/// Examples embedded per call, between progress reports.
const EMBED_CHUNK: usize = 64;

struct HeadTrainer {
    /// `(examples, hidden)` sentence embeddings.
    embeddings: Tensor,
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
        let index: Vec<u32> = examples.iter().map(|&i| i as u32).collect();
        let index = Tensor::from_vec(index, examples.len(), &Device::Cpu)?;
        let mut x = self.embeddings.index_select(&index, 0)?;
        if let Some((w, b)) = &self.hidden {
            x = Linear::new(w.as_tensor().clone(), Some(b.as_tensor().clone()))
                .forward(&x)?
                .relu()?;
        }
        Linear::new(
            self.weight.as_tensor().clone(),
            Some(self.bias.as_tensor().clone()),
        )
        .forward(&x)
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
    let classifier = Classifier::load(ClassifierOptions {
        device: *device,
        max_tokens: job.options.max_tokens,
        max_bytes: job.options.max_bytes,
        ..ClassifierOptions::new(encoder)
    })?;
    if classifier.architecture() != Architecture::SentenceTransformer {
        return Err(TrainError::Options(format!(
            "--encoder {} is a {} model, not a sentence-transformers encoder (modules.json)",
            encoder.display(),
            classifier.architecture().name()
        )));
    }
    let (embeddings, cached) = embeddings(job, &classifier, encoder, &files, cache_dir)?;
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
    save_tensors(&dir.join(HEAD_WEIGHTS), tensors)?;
    write_json(&dir.join(HEAD_CONFIG), &head)?;
    Ok(Outcome {
        epoch_losses,
        validation,
        embeddings_cached: Some(cached),
    })
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

/// The `(examples, hidden)` embedding matrix, from the cache or the encoder; `true` when cached.
fn embeddings(
    job: &Job<'_>,
    classifier: &Classifier,
    encoder: &Path,
    files: &[PathBuf],
    cache_dir: &Option<PathBuf>,
) -> Result<(Tensor, bool), TrainError> {
    let n = job.examples.len();
    let cache_path = match cache_dir {
        Some(dir) => {
            let mut texts = Sha256::new();
            texts.update(format!(
                "max_tokens={} max_bytes={}\n",
                classifier.max_tokens(),
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
        // A cache entry that does not read back as an (n, _) matrix is recomputed.
        if let Ok(mut tensors) = candle_core::safetensors::load(path, &Device::Cpu) {
            if let Some(t) = tensors.remove("embeddings") {
                if t.dims().len() == 2 && t.dims()[0] == n {
                    job.progress
                        .message(&format!("embeddings: cached in {}", path.display()));
                    return Ok((t.to_dtype(DType::F32)?, true));
                }
            }
        }
    }
    job.progress.message(&format!(
        "embedding {n} examples with {} (first {} tokens each)",
        encoder.display(),
        classifier.max_tokens()
    ));
    let mut rows: Vec<f32> = Vec::new();
    let mut width = 0;
    let mut done = 0;
    job.progress.embedding(0, n);
    for chunk in job.examples.chunks(EMBED_CHUNK) {
        let texts: Vec<&str> = chunk.iter().map(|e| e.text.as_str()).collect();
        for row in classifier.embed(&texts)? {
            width = row.len();
            rows.extend(row);
        }
        done += chunk.len();
        job.progress.embedding(done, n);
    }
    let matrix = Tensor::from_vec(rows, (n, width), &Device::Cpu)?;
    if let Some(path) = cache_path {
        let dir = path.parent().expect("cache file has a directory");
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let partial = path.with_extension("partial");
        save_tensors(&partial, vec![("embeddings", matrix.clone())])?;
        std::fs::rename(&partial, &path).map_err(io_err(&path))?;
        job.progress
            .message(&format!("embeddings: cached in {}", path.display()));
    }
    Ok((matrix, false))
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
