//! Classification metrics shared by `sluice train` (validation split) and `sluice eval` (the
//! cascade on labeled data): binary confusion counts with the ratios derived from them, and ROC
//! AUC of a score.
//!
//! Ratios whose denominator is zero (precision with nothing flagged, recall with no positives)
//! are `None`, never `NaN` or a made-up 0: a report prints them as "-" and JSON as `null`.

use serde::Serialize;

/// Counts of a binary decision against binary truth.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Confusion {
    /// Positives flagged.
    pub tp: u64,
    /// Negatives flagged.
    pub fp: u64,
    /// Positives not flagged.
    pub fn_: u64,
    /// Negatives not flagged.
    pub tn: u64,
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

impl Confusion {
    /// Adds one decision.
    pub fn add(&mut self, positive: bool, flagged: bool) {
        match (positive, flagged) {
            (true, true) => self.tp += 1,
            (false, true) => self.fp += 1,
            (true, false) => self.fn_ += 1,
            (false, false) => self.tn += 1,
        }
    }

    /// Counts from `(positive, flagged)` pairs.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (bool, bool)>) -> Confusion {
        let mut c = Confusion::default();
        for (positive, flagged) in pairs {
            c.add(positive, flagged);
        }
        c
    }

    /// All decisions counted.
    pub fn total(&self) -> u64 {
        self.tp + self.fp + self.fn_ + self.tn
    }

    /// tp / (tp + fp).
    pub fn precision(&self) -> Option<f64> {
        ratio(self.tp, self.tp + self.fp)
    }

    /// tp / (tp + fn).
    pub fn recall(&self) -> Option<f64> {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// Harmonic mean of precision and recall; 0 when both are 0.
    pub fn f1(&self) -> Option<f64> {
        let (p, r) = (self.precision()?, self.recall()?);
        Some(if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        })
    }

    /// fp / (fp + tn): the share of negatives flagged.
    pub fn false_positive_rate(&self) -> Option<f64> {
        ratio(self.fp, self.fp + self.tn)
    }

    /// (tp + tn) / total.
    pub fn accuracy(&self) -> Option<f64> {
        ratio(self.tp + self.tn, self.total())
    }

    /// The counts with every derived ratio, for reports.
    pub fn summary(&self) -> BinaryMetrics {
        BinaryMetrics {
            tp: self.tp,
            fp: self.fp,
            fn_: self.fn_,
            tn: self.tn,
            precision: self.precision(),
            recall: self.recall(),
            f1: self.f1(),
            false_positive_rate: self.false_positive_rate(),
            accuracy: self.accuracy(),
        }
    }
}

/// [`Confusion`] plus its ratios, as written to JSON reports.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BinaryMetrics {
    /// Positives flagged.
    pub tp: u64,
    /// Negatives flagged.
    pub fp: u64,
    /// Positives not flagged.
    #[serde(rename = "fn")]
    pub fn_: u64,
    /// Negatives not flagged.
    pub tn: u64,
    /// tp / (tp + fp).
    pub precision: Option<f64>,
    /// tp / (tp + fn).
    pub recall: Option<f64>,
    /// Harmonic mean of precision and recall.
    pub f1: Option<f64>,
    /// fp / (fp + tn).
    pub false_positive_rate: Option<f64>,
    /// (tp + tn) / total.
    pub accuracy: Option<f64>,
}

/// Area under the ROC curve of `scores` for `positives` (same length): the probability that a
/// random positive scores above a random negative, ties counting one half (the Mann-Whitney U
/// statistic). `None` without both classes or with a NaN score.
pub fn roc_auc(scores: &[f32], positives: &[bool]) -> Option<f64> {
    assert_eq!(scores.len(), positives.len(), "one label per score");
    if scores.iter().any(|s| s.is_nan()) {
        return None;
    }
    let n_pos = positives.iter().filter(|&&p| p).count() as f64;
    let n_neg = positives.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Ranks from 1, tied scores sharing the mean of their ranks.
    let mut positive_rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mean_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            if positives[k] {
                positive_rank_sum += mean_rank;
            }
        }
        i = j + 1;
    }
    Some((positive_rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg))
}

/// Per-class and macro-averaged metrics of a multi-class prediction (one-vs-rest per class).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MultiClassMetrics {
    /// Correct predictions / all.
    pub accuracy: Option<f64>,
    /// Mean of the per-class precisions that are defined.
    pub macro_precision: Option<f64>,
    /// Mean of the per-class recalls that are defined.
    pub macro_recall: Option<f64>,
    /// Mean of the per-class F1 scores that are defined.
    pub macro_f1: Option<f64>,
    /// One entry per class, in class order.
    pub classes: Vec<ClassMetrics>,
}

/// One class's one-vs-rest metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassMetrics {
    /// The class name.
    pub label: String,
    /// Examples of this class.
    pub support: u64,
    /// This class against the rest.
    #[serde(flatten)]
    pub metrics: BinaryMetrics,
}

fn mean(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let defined: Vec<f64> = values.flatten().collect();
    (!defined.is_empty()).then(|| defined.iter().sum::<f64>() / defined.len() as f64)
}

/// Metrics of predicted class ids against true class ids.
pub fn multi_class(labels: &[String], truth: &[usize], predicted: &[usize]) -> MultiClassMetrics {
    assert_eq!(truth.len(), predicted.len(), "one prediction per example");
    let classes: Vec<ClassMetrics> = labels
        .iter()
        .enumerate()
        .map(|(c, label)| {
            let confusion =
                Confusion::from_pairs(truth.iter().zip(predicted).map(|(&t, &p)| (t == c, p == c)));
            ClassMetrics {
                label: label.clone(),
                support: confusion.tp + confusion.fn_,
                metrics: confusion.summary(),
            }
        })
        .collect();
    let correct = truth.iter().zip(predicted).filter(|(t, p)| t == p).count() as u64;
    MultiClassMetrics {
        accuracy: ratio(correct, truth.len() as u64),
        macro_precision: mean(classes.iter().map(|c| c.metrics.precision)),
        macro_recall: mean(classes.iter().map(|c| c.metrics.recall)),
        macro_f1: mean(classes.iter().map(|c| c.metrics.f1)),
        classes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12)
    }

    #[test]
    fn confusion_ratios() {
        // 3 tp, 1 fp, 2 fn, 4 tn
        let mut c = Confusion::default();
        for (p, f, n) in [
            (true, true, 3),
            (false, true, 1),
            (true, false, 2),
            (false, false, 4),
        ] {
            for _ in 0..n {
                c.add(p, f);
            }
        }
        assert_eq!(c.total(), 10);
        assert!(close(c.precision(), 0.75));
        assert!(close(c.recall(), 0.6));
        assert!(close(c.f1(), 2.0 * 0.75 * 0.6 / 1.35));
        assert!(close(c.false_positive_rate(), 0.2));
        assert!(close(c.accuracy(), 0.7));
    }

    #[test]
    fn undefined_ratios_are_none() {
        let c = Confusion::from_pairs([(false, false), (false, false)]);
        assert_eq!(c.precision(), None);
        assert_eq!(c.recall(), None);
        assert_eq!(c.f1(), None);
        assert!(close(c.false_positive_rate(), 0.0));
        let c = Confusion::from_pairs([(true, false), (false, true)]);
        assert!(close(c.f1(), 0.0));
        let json = serde_json::to_value(Confusion::default().summary()).unwrap();
        assert!(json["precision"].is_null());
        assert_eq!(json["fn"], 0);
    }

    #[test]
    fn auc_on_known_values() {
        // Perfect, inverted, and the sklearn docs example (0.75).
        assert_eq!(
            roc_auc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            Some(1.0)
        );
        assert_eq!(
            roc_auc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]),
            Some(0.0)
        );
        assert_eq!(
            roc_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]),
            Some(0.75)
        );
        // All tied: chance.
        assert_eq!(roc_auc(&[0.5; 4], &[false, true, false, true]), Some(0.5));
        // One tie between a positive and a negative counts one half: pairs (p, n) =
        // (0.5 vs 0.5: 1/2), (0.5 vs 0.1: 1), (0.9 vs 0.5: 1), (0.9 vs 0.1: 1) → 3.5 / 4.
        assert_eq!(
            roc_auc(&[0.5, 0.9, 0.5, 0.1], &[true, true, false, false]),
            Some(0.875)
        );
    }

    #[test]
    fn auc_brute_force_agrees() {
        let scores = [0.3, 0.1, 0.7, 0.7, 0.2, 0.9, 0.3, 0.5, 0.05, 0.7];
        let labels = [
            true, false, true, false, false, true, false, true, false, true,
        ];
        let mut wins = 0.0;
        let mut pairs = 0.0;
        for i in 0..scores.len() {
            for j in 0..scores.len() {
                if labels[i] && !labels[j] {
                    pairs += 1.0;
                    wins += match scores[i].partial_cmp(&scores[j]).unwrap() {
                        std::cmp::Ordering::Greater => 1.0,
                        std::cmp::Ordering::Equal => 0.5,
                        std::cmp::Ordering::Less => 0.0,
                    };
                }
            }
        }
        let auc = roc_auc(&scores, &labels).unwrap();
        assert!(
            (auc - wins / pairs).abs() < 1e-12,
            "{auc} vs {}",
            wins / pairs
        );
    }

    #[test]
    fn auc_needs_both_classes() {
        assert_eq!(roc_auc(&[0.1, 0.2], &[true, true]), None);
        assert_eq!(roc_auc(&[], &[]), None);
        assert_eq!(roc_auc(&[f32::NAN, 0.2], &[true, false]), None);
    }

    #[test]
    fn multi_class_macro_averages() {
        let labels: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let truth = [0, 0, 1, 1, 2, 2];
        let predicted = [0, 1, 1, 1, 2, 0];
        let m = multi_class(&labels, &truth, &predicted);
        assert!(close(m.accuracy, 4.0 / 6.0));
        // precision: a 1/2, b 2/3, c 1/1; recall: a 1/2, b 1, c 1/2
        assert!(close(m.macro_precision, (0.5 + 2.0 / 3.0 + 1.0) / 3.0));
        assert!(close(m.macro_recall, (0.5 + 1.0 + 0.5) / 3.0));
        assert_eq!(m.classes[1].support, 2);
    }
}
