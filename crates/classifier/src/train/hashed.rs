//! Training `hashed-ngram` end to end: the embedding bag and the linear layer learn together, as
//! in fastText, with the tokenizer and hashing the loader uses (`backend/hashed.rs`), so that a
//! trained model scores at inference exactly the features it was trained on.
//!
//! The step is written out by hand instead of going through candle's autograd and dense AdamW: a
//! batch touches only the bucket rows of its own n-grams, but a dense optimizer reads and writes
//! the whole `buckets × dim` table (and its two moment tables) every step, so a 2^20 × 64 model
//! took ~30 s a step. Here the embedding rows a batch touches get a lazy AdamW update (their
//! moments move only when they have a gradient, as in PyTorch's `SparseAdam`); the small linear
//! layer gets the same dense AdamW update as candle's. Validation and saving still go through
//! the candle model, so inference and training share one definition of the logits.
//!
//! Each example is split into word windows exactly as the stage splits it
//! ([`HashedTokenizer::encode`]: `max_tokens` words overlapping by `stride`, bigrams inside a
//! window), every window gets its logits, and the document's logits are the stage's aggregation
//! of them ([`super::aggregate_logits`]); the hand-written gradient goes back through that
//! aggregation (tested against candle's autograd for each).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor, Var};
use candle_nn::{Embedding, Linear, Module};

use super::{fit_with, label_config, save_tensors, uniform_var, write_json, Job, Outcome};
use super::{Step, TrainError, TrainKind, Trainable, DEFAULT_WINDOW};
use crate::backend::hashed::HashedTokenizer;
use crate::backend::masked_mean;
use crate::rng::SplitMix64;
use crate::{truncate_to_bytes, Aggregate, Scoring};

struct HashedTrainer {
    /// Bucket ids of each window of each example, as the stage windows it.
    features: Vec<Vec<Vec<u32>>>,
    aggregate: Aggregate,
    embedding: Var,
    weight: Var,
    bias: Var,
    dim: usize,
}

impl Trainable for HashedTrainer {
    fn logits(&self, examples: &[usize]) -> candle_core::Result<Tensor> {
        let windows: Vec<&Vec<u32>> = examples.iter().flat_map(|&i| &self.features[i]).collect();
        let counts: Vec<usize> = examples.iter().map(|&i| self.features[i].len()).collect();
        let len = windows.iter().map(|w| w.len()).max().unwrap_or(0).max(1);
        let mut ids = Vec::with_capacity(windows.len() * len);
        let mut mask = Vec::with_capacity(windows.len() * len);
        for f in &windows {
            ids.extend_from_slice(f);
            ids.extend(std::iter::repeat_n(0u32, len - f.len()));
            mask.extend(std::iter::repeat_n(1u32, f.len()));
            mask.extend(std::iter::repeat_n(0u32, len - f.len()));
        }
        let ids = Tensor::from_vec(ids, (windows.len(), len), &Device::Cpu)?;
        let mask = Tensor::from_vec(mask, (windows.len(), len), &Device::Cpu)?;
        let embedded =
            Embedding::new(self.embedding.as_tensor().clone(), self.dim).forward(&ids)?;
        let bag = masked_mean(&embedded, &mask)?;
        let logits = Linear::new(
            self.weight.as_tensor().clone(),
            Some(self.bias.as_tensor().clone()),
        )
        .forward(&bag)?;
        super::aggregate_logits(&logits, &counts, self.aggregate)
    }
}

pub(crate) fn train(
    job: &Job<'_>,
    rng: &mut SplitMix64,
    dir: &Path,
) -> Result<Outcome, TrainError> {
    let TrainKind::HashedNgram {
        buckets,
        dim,
        word_ngrams,
    } = job.options.kind
    else {
        unreachable!("called for hashed-ngram only")
    };
    let tokenizer = HashedTokenizer::new(buckets as u64, word_ngrams, true);
    let o = job.options;
    let max_words = o.max_tokens.unwrap_or(DEFAULT_WINDOW);
    if o.stride >= max_words {
        return Err(TrainError::Options(format!(
            "--stride {} must be less than the window of {max_words} words",
            o.stride
        )));
    }
    let features = job
        .examples
        .iter()
        .map(|e| {
            let text = truncate_to_bytes(&e.text, o.max_bytes);
            let (mut windows, _) = tokenizer.encode(text, max_words, o.stride);
            if job.aggregate == Aggregate::First {
                windows.truncate(1);
            }
            windows
        })
        .collect();
    let scoring = Scoring {
        max_tokens: max_words,
        stride: o.stride,
        max_bytes: o.max_bytes,
        aggregate: job.aggregate,
    };
    let classes = job.classes.len();
    // fastText's initialization for the input table; PyTorch's nn.Linear bound for the output.
    let trainer = HashedTrainer {
        features,
        aggregate: job.aggregate,
        embedding: uniform_var(rng, &[buckets, dim], 1.0 / dim as f32)?,
        weight: uniform_var(rng, &[classes, dim], 1.0 / (dim as f32).sqrt())?,
        bias: Var::from_tensor(&Tensor::zeros(
            classes,
            candle_core::DType::F32,
            &Device::Cpu,
        )?)?,
        dim,
    };
    let mut step = SparseAdamW::new(job, &trainer)?;
    let (epoch_losses, validation) = fit_with(job, &trainer, rng, &mut step)?;

    let mut config = serde_json::Map::new();
    config.insert(
        "architectures".into(),
        serde_json::json!(["HashedNgramClassifier"]),
    );
    config.insert("model_type".into(), "hashed-ngram".into());
    config.insert("num_buckets".into(), buckets.into());
    config.insert("embedding_dim".into(), dim.into());
    config.insert("word_ngrams".into(), word_ngrams.into());
    config.insert("lowercase".into(), true.into());
    config.extend(label_config(job.classes));
    config.insert(
        crate::SCORING_KEY.into(),
        serde_json::to_value(scoring).expect("scoring serializes"),
    );
    write_json(&dir.join("config.json"), &config)?;
    save_tensors(
        &dir.join("model.safetensors"),
        vec![
            ("embedding.weight", trainer.embedding.as_tensor().clone()),
            ("classifier.weight", trainer.weight.as_tensor().clone()),
            ("classifier.bias", trainer.bias.as_tensor().clone()),
        ],
    )?;
    Ok(Outcome {
        epoch_losses,
        validation,
        embeddings_cached: None,
        scoring,
    })
}

/// AdamW moments of one parameter block, and the update candle's `AdamW` applies.
struct Moments {
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Moments {
    fn new(len: usize) -> Moments {
        Moments {
            m: vec![0.0; len],
            v: vec![0.0; len],
        }
    }
}

/// The constants of one optimizer step `t` (1-based).
struct AdamStep {
    lr: f32,
    decay: f32,
    scale_m: f32,
    scale_v: f32,
}

const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const EPS: f32 = 1e-8;

impl AdamStep {
    fn new(lr: f64, weight_decay: f64, t: i32) -> AdamStep {
        AdamStep {
            lr: lr as f32,
            decay: (1.0 - lr * weight_decay) as f32,
            scale_m: (1.0 / (1.0 - f64::from(BETA1).powi(t))) as f32,
            scale_v: (1.0 / (1.0 - f64::from(BETA2).powi(t))) as f32,
        }
    }

    /// `theta`, `m`, `v` and `grad` are the same slice of one block.
    fn apply(&self, theta: &mut [f32], m: &mut [f32], v: &mut [f32], grad: &[f32]) {
        for (((t, m), v), &g) in theta.iter_mut().zip(m).zip(v).zip(grad) {
            *m = BETA1 * *m + (1.0 - BETA1) * g;
            *v = BETA2 * *v + (1.0 - BETA2) * g * g;
            let m_hat = *m * self.scale_m;
            let v_hat = *v * self.scale_v;
            *t = *t * self.decay - self.lr * (m_hat / (v_hat.sqrt() + EPS));
        }
    }
}

/// The model's parameters as plain row-major vectors while fitting.
struct Weights {
    /// `(buckets, dim)`.
    table: Vec<f32>,
    /// `(classes, dim)`.
    weight: Vec<f32>,
    bias: Vec<f32>,
    dim: usize,
}

impl Weights {
    fn of(model: &HashedTrainer) -> candle_core::Result<Weights> {
        Ok(Weights {
            table: model.embedding.as_tensor().flatten_all()?.to_vec1()?,
            weight: model.weight.as_tensor().flatten_all()?.to_vec1()?,
            bias: model.bias.as_tensor().to_vec1()?,
            dim: model.dim,
        })
    }
}

/// The gradients of one batch's mean cross-entropy on the aggregated document logits: dense for
/// the linear layer, and for the embedding table only the rows the batch touches (`touched[k]`
/// has `rows[k * dim..]`), in first-seen order. Buffers are reused from batch to batch.
#[derive(Default)]
struct BatchGradients {
    weight: Vec<f32>,
    bias: Vec<f32>,
    touched: Vec<u32>,
    rows: Vec<f32>,
    slots: HashMap<u32, usize>,
    /// Per window of the current example: its bag `(windows, dim)`, logits and their gradient
    /// `(windows, classes)`, and (for `mean`) its softmax.
    bags: Vec<f32>,
    logits: Vec<f32>,
    window_grads: Vec<f32>,
    probabilities: Vec<f32>,
    document: Vec<f32>,
    document_grad: Vec<f32>,
    bag_grad: Vec<f32>,
}

/// Softmax cross-entropy of `logits` against `target`: returns the loss and writes its gradient
/// with respect to the logits, `(softmax - one-hot) * scale`, into `grad`.
fn cross_entropy(logits: &[f32], target: usize, scale: f32, grad: &mut [f32]) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|l| (l - max).exp()).sum();
    for (c, (g, &l)) in grad.iter_mut().zip(logits).enumerate() {
        let p = (l - max).exp() / sum;
        *g = (p - f32::from(u8::from(c == target))) * scale;
    }
    f64::from(max + sum.ln() - logits[target])
}

impl BatchGradients {
    /// Fills the gradients at `weights` for `batch` (example indices into `features`, each a
    /// list of windows) under `aggregate`, and returns the mean loss.
    fn compute(
        &mut self,
        features: &[Vec<Vec<u32>>],
        targets: &[usize],
        batch: &[usize],
        weights: &Weights,
        aggregate: Aggregate,
    ) -> f64 {
        let Weights {
            table,
            weight,
            bias,
            dim,
        } = weights;
        let dim = *dim;
        let classes = bias.len();
        let scale = 1.0 / batch.len() as f32;
        self.weight.clear();
        self.weight.resize(weight.len(), 0.0);
        self.bias.clear();
        self.bias.resize(classes, 0.0);
        self.touched.clear();
        self.rows.clear();
        self.slots.clear();
        self.document.resize(classes, 0.0);
        self.document_grad.resize(classes, 0.0);
        self.bag_grad.resize(dim, 0.0);
        let mut loss = 0.0f64;
        for &example in batch {
            let windows = &features[example];
            let n = windows.len();
            self.bags.clear();
            self.bags.resize(n * dim, 0.0);
            self.logits.clear();
            self.logits.resize(n * classes, 0.0);
            for (w, ids) in windows.iter().enumerate() {
                let bag = &mut self.bags[w * dim..(w + 1) * dim];
                for &id in ids {
                    let row = &table[id as usize * dim..(id as usize + 1) * dim];
                    bag.iter_mut().zip(row).for_each(|(b, r)| *b += r);
                }
                let count = ids.len().max(1) as f32;
                bag.iter_mut().for_each(|b| *b /= count);
                for c in 0..classes {
                    let wc = &weight[c * dim..(c + 1) * dim];
                    self.logits[w * classes + c] =
                        bias[c] + wc.iter().zip(bag.iter()).map(|(a, b)| a * b).sum::<f32>();
                }
            }
            // The document's logits, the loss on them, and its gradient back to each window's
            // logits (as in `aggregate_logits`).
            let target = targets[example];
            self.window_grads.clear();
            self.window_grads.resize(n * classes, 0.0);
            match aggregate {
                Aggregate::First => {
                    loss += cross_entropy(
                        &self.logits[..classes],
                        target,
                        scale,
                        &mut self.window_grads[..classes],
                    );
                }
                Aggregate::Max => {
                    let margin = |w: usize| self.logits[w * 2 + 1] - self.logits[w * 2];
                    let top = (0..n).map(margin).fold(f32::NEG_INFINITY, f32::max);
                    self.document[0] = 0.0;
                    self.document[1] = top;
                    loss += cross_entropy(&self.document, target, scale, &mut self.document_grad);
                    // candle's max passes the gradient to every window at the maximum.
                    let g = self.document_grad[1];
                    for w in (0..n).filter(|&w| margin(w) == top) {
                        self.window_grads[w * 2 + 1] += g;
                        self.window_grads[w * 2] -= g;
                    }
                }
                Aggregate::Mean => {
                    // log p of each window, then per class a log-sum-exp over the windows.
                    self.probabilities.clear();
                    for w in 0..n {
                        let l = &self.logits[w * classes..(w + 1) * classes];
                        let max = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                        let lse = max + l.iter().map(|x| (x - max).exp()).sum::<f32>().ln();
                        self.probabilities.extend(l.iter().map(|x| x - lse));
                    }
                    let log_p = &self.probabilities;
                    for c in 0..classes {
                        let top = (0..n)
                            .map(|w| log_p[w * classes + c])
                            .fold(f32::NEG_INFINITY, f32::max);
                        let sum: f32 = (0..n).map(|w| (log_p[w * classes + c] - top).exp()).sum();
                        self.document[c] = top + sum.ln() - (n as f32).ln();
                    }
                    loss += cross_entropy(&self.document, target, scale, &mut self.document_grad);
                    // z_c = log mean_w p_wc: dz_c/dl_wk = r_wc (δ_ck - p_wk), with r_wc =
                    // p_wc / Σ_v p_vc the window's share of class c.
                    for w in 0..n {
                        let mut shared = 0.0f32;
                        for c in 0..classes {
                            let r = (log_p[w * classes + c] - self.document[c]).exp() / n as f32;
                            let gr = self.document_grad[c] * r;
                            self.window_grads[w * classes + c] += gr;
                            shared += gr;
                        }
                        for k in 0..classes {
                            self.window_grads[w * classes + k] -=
                                log_p[w * classes + k].exp() * shared;
                        }
                    }
                }
            }
            for (w, ids) in windows.iter().enumerate() {
                let g = &self.window_grads[w * classes..(w + 1) * classes];
                if g.iter().all(|&x| x == 0.0) {
                    continue;
                }
                let bag = &self.bags[w * dim..(w + 1) * dim];
                self.bag_grad.fill(0.0);
                for (c, &gc) in g.iter().enumerate() {
                    self.bias[c] += gc;
                    let wc = &weight[c * dim..(c + 1) * dim];
                    let gw = &mut self.weight[c * dim..(c + 1) * dim];
                    for j in 0..dim {
                        gw[j] += gc * bag[j];
                        self.bag_grad[j] += gc * wc[j];
                    }
                }
                // The bag is a mean: each occurrence of a row gets bag_grad / count.
                let count = ids.len().max(1) as f32;
                for &id in ids {
                    let slot = *self.slots.entry(id).or_insert_with(|| {
                        self.touched.push(id);
                        self.rows.resize(self.rows.len() + dim, 0.0);
                        self.touched.len() - 1
                    });
                    let row = &mut self.rows[slot * dim..(slot + 1) * dim];
                    row.iter_mut()
                        .zip(&self.bag_grad)
                        .for_each(|(r, b)| *r += b / count);
                }
            }
        }
        loss / batch.len() as f64
    }
}

/// The sparse step described in the module docs. The weights live in plain vectors while
/// fitting and are copied into the model's candle variables for validation and saving.
struct SparseAdamW<'a> {
    model: &'a HashedTrainer,
    targets: &'a [usize],
    learning_rate: f64,
    weight_decay: f64,
    weights: Weights,
    table_moments: Moments,
    weight_moments: Moments,
    bias_moments: Moments,
    grads: BatchGradients,
    /// Steps taken (AdamW's bias correction counts them).
    t: i32,
}

impl<'a> SparseAdamW<'a> {
    fn new(job: &'a Job<'a>, model: &'a HashedTrainer) -> candle_core::Result<Self> {
        let weights = Weights::of(model)?;
        Ok(SparseAdamW {
            model,
            targets: job.targets,
            learning_rate: job.options.learning_rate,
            weight_decay: job.options.weight_decay,
            table_moments: Moments::new(weights.table.len()),
            weight_moments: Moments::new(weights.weight.len()),
            bias_moments: Moments::new(weights.bias.len()),
            weights,
            grads: BatchGradients::default(),
            t: 0,
        })
    }
}

impl Step for SparseAdamW<'_> {
    fn step(&mut self, batch: &[usize]) -> Result<f32, TrainError> {
        let loss = self.grads.compute(
            &self.model.features,
            self.targets,
            batch,
            &self.weights,
            self.model.aggregate,
        );
        self.t += 1;
        let step = AdamStep::new(self.learning_rate, self.weight_decay, self.t);
        let (g, w, dim) = (&self.grads, &mut self.weights, self.model.dim);
        let (wm, bm, tm) = (
            &mut self.weight_moments,
            &mut self.bias_moments,
            &mut self.table_moments,
        );
        step.apply(&mut w.weight, &mut wm.m, &mut wm.v, &g.weight);
        step.apply(&mut w.bias, &mut bm.m, &mut bm.v, &g.bias);
        for (slot, &id) in g.touched.iter().enumerate() {
            let rows = id as usize * dim..(id as usize + 1) * dim;
            step.apply(
                &mut w.table[rows.clone()],
                &mut tm.m[rows.clone()],
                &mut tm.v[rows],
                &g.rows[slot * dim..(slot + 1) * dim],
            );
        }
        Ok(loss as f32)
    }

    fn sync(&mut self) -> Result<(), TrainError> {
        let (m, w) = (self.model, &self.weights);
        for (var, values) in [
            (&m.embedding, &w.table),
            (&m.weight, &w.weight),
            (&m.bias, &w.bias),
        ] {
            var.set(&Tensor::from_slice(
                values,
                var.as_tensor().dims(),
                &Device::Cpu,
            )?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// For each aggregation, with one-window and several-window examples (an empty window and
    /// repeated ids among them), the hand-written gradient is candle's autograd of the same loss.
    #[test]
    fn hand_written_gradients_match_candle_autograd() {
        let features = vec![
            vec![vec![1, 2, 2, 7]],
            vec![vec![3], vec![3, 5], vec![8, 1]],
            vec![vec![]],
            vec![vec![7, 9, 11, 1, 40], vec![40, 12]],
        ];
        for (aggregate, classes, targets) in [
            (Aggregate::First, 3, vec![0usize, 2, 1, 2]),
            (Aggregate::Mean, 3, vec![0, 2, 1, 2]),
            (Aggregate::Max, 2, vec![0, 1, 1, 0]),
        ] {
            let what = format!("{aggregate:?}");
            let mut rng = SplitMix64::new(3);
            let (buckets, dim) = (50, 8);
            let model = HashedTrainer {
                features: features.clone(),
                aggregate,
                embedding: uniform_var(&mut rng, &[buckets, dim], 0.5).unwrap(),
                weight: uniform_var(&mut rng, &[classes, dim], 0.5).unwrap(),
                bias: uniform_var(&mut rng, &[classes], 0.5).unwrap(),
                dim,
            };
            let batch = [0, 1, 2, 3];
            let t: Vec<u32> = targets.iter().map(|&t| t as u32).collect();
            let t = Tensor::from_vec(t, 4, &Device::Cpu).unwrap();
            let loss = candle_nn::loss::cross_entropy(&model.logits(&batch).unwrap(), &t).unwrap();
            let store = loss.backward().unwrap();
            let autograd = |v: &Var| -> Vec<f32> {
                store
                    .get(v.as_tensor())
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap()
            };

            let mut grads = BatchGradients::default();
            let mine = grads.compute(
                &features,
                &targets,
                &batch,
                &Weights::of(&model).unwrap(),
                aggregate,
            );
            let close = |a: &[f32], b: &[f32], part: &str| {
                assert_eq!(a.len(), b.len(), "{what} {part}");
                for (x, y) in a.iter().zip(b) {
                    assert!((x - y).abs() < 1e-6, "{what} {part}: {x} vs {y}");
                }
            };
            let theirs = loss.to_scalar::<f32>().unwrap();
            assert!(
                (mine as f32 - theirs).abs() < 1e-6,
                "{what}: {mine} vs {theirs}"
            );
            close(&grads.weight, &autograd(&model.weight), "weight");
            close(&grads.bias, &autograd(&model.bias), "bias");
            let mut table = vec![0f32; buckets * dim];
            for (slot, &id) in grads.touched.iter().enumerate() {
                table[id as usize * dim..(id as usize + 1) * dim]
                    .copy_from_slice(&grads.rows[slot * dim..(slot + 1) * dim]);
            }
            close(&table, &autograd(&model.embedding), "embedding rows");
        }
    }

    #[test]
    fn the_adamw_step_is_candles() {
        // One dense step from the same weights and gradient: candle's AdamW and ours agree.
        use candle_nn::{AdamW, Optimizer, ParamsAdamW};
        let theta = Var::from_slice(&[0.5f32, -1.0, 2.0], 3, &Device::Cpu).unwrap();
        let grad = [0.1f32, -0.2, 0.3];
        let params = ParamsAdamW {
            lr: 0.01,
            weight_decay: 0.05,
            ..ParamsAdamW::default()
        };
        let mut adamw = AdamW::new(vec![theta.clone()], params.clone()).unwrap();
        let mut ours = theta.as_tensor().to_vec1::<f32>().unwrap();
        let mut moments = Moments::new(3);
        for t in 1..=3 {
            let g = Tensor::from_slice(&grad, 3, &Device::Cpu).unwrap();
            // d(sum(theta * g)) / d(theta) = g
            let loss = (theta.as_tensor() * &g).unwrap().sum_all().unwrap();
            adamw.backward_step(&loss).unwrap();
            AdamStep::new(params.lr, params.weight_decay, t).apply(
                &mut ours,
                &mut moments.m,
                &mut moments.v,
                &grad,
            );
        }
        let theirs = theta.as_tensor().to_vec1::<f32>().unwrap();
        for (a, b) in ours.iter().zip(&theirs) {
            assert!((a - b).abs() < 1e-6, "{ours:?} vs {theirs:?}");
        }
    }
}
