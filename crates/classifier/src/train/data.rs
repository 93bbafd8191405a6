//! Labeled examples (read by `sluice_core::labeled`): mapping labels to class ids, splitting off a
//! validation set.
//!
//! Each distinct label is a class named by its text (`1`, `true`, `hazard`). Class ids are
//! assigned in this order: the order given by
//! `--labels` when there is one; otherwise integer-valued names in numeric order, other names in
//! byte order; then, for two classes, the `--positive` class is moved to id 1 (the output the
//! classifier stage scores by default).

use super::TrainError;
use crate::rng::SplitMix64;
use std::collections::{BTreeMap, BTreeSet};

/// One labeled example: a text and the class name of its label.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The text.
    pub text: String,
    /// The label's class name (`hazard`, `1`, `true`).
    pub label: String,
}

/// Class names in id order (see the module docs for the rules).
pub fn class_names(
    examples: &[Example],
    explicit: Option<&[String]>,
    positive: Option<&str>,
) -> Result<Vec<String>, TrainError> {
    let seen: BTreeSet<&str> = examples.iter().map(|e| e.label.as_str()).collect();
    let mut names: Vec<String> = match explicit {
        Some(list) => {
            let listed: BTreeSet<&str> = list.iter().map(String::as_str).collect();
            if listed.len() != list.len() {
                return Err(TrainError::Options("--labels lists a label twice".into()));
            }
            if let Some(extra) = seen.iter().find(|l| !listed.contains(*l)) {
                return Err(TrainError::Options(format!(
                    "the data has label {extra:?}, which --labels does not list"
                )));
            }
            list.to_vec()
        }
        None => {
            let mut names: Vec<String> = seen.iter().map(|s| s.to_string()).collect();
            if names.iter().all(|n| n.parse::<i64>().is_ok()) {
                names.sort_by_key(|n| n.parse::<i64>().unwrap_or(0));
            }
            names
        }
    };
    if names.len() < 2 {
        return Err(TrainError::Options(format!(
            "need at least two classes, the data has only {:?}",
            names
        )));
    }
    if let Some(positive) = positive {
        let Some(at) = names.iter().position(|n| n == positive) else {
            return Err(TrainError::Options(format!(
                "--positive {positive:?} is not a label of the data (labels: {})",
                names.join(", ")
            )));
        };
        if names.len() == 2 {
            let name = names.remove(at);
            names.push(name);
        }
    }
    Ok(names)
}

/// Class id of every example.
pub fn class_ids(examples: &[Example], names: &[String]) -> Vec<usize> {
    let index: BTreeMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    examples.iter().map(|e| index[e.label.as_str()]).collect()
}

/// Splits example indices into (train, validation), stratified: each class gives
/// `round(fraction × its count)` examples to validation (at least one when it has two or more
/// and `fraction > 0`), chosen by a seeded shuffle. Both lists are sorted.
pub fn split(classes: &[usize], fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut by_class: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, &c) in classes.iter().enumerate() {
        by_class.entry(c).or_default().push(i);
    }
    let mut rng = SplitMix64::new(seed ^ SPLIT_STREAM);
    let (mut train, mut validation) = (Vec::new(), Vec::new());
    for members in by_class.values_mut() {
        rng.shuffle(members);
        let mut take = (fraction * members.len() as f64).round() as usize;
        if fraction > 0.0 && take == 0 && members.len() >= 2 {
            take = 1;
        }
        take = take.min(members.len().saturating_sub(1));
        validation.extend_from_slice(&members[..take]);
        train.extend_from_slice(&members[take..]);
    }
    train.sort_unstable();
    validation.sort_unstable();
    (train, validation)
}

/// Mixed into the split's seed so that it does not draw the same stream as weight initialization.
const SPLIT_STREAM: u64 = 0x9e37_79b9_7f4a_7c15;

#[cfg(test)]
mod tests {
    use super::*;

    fn examples(labels: &[&str]) -> Vec<Example> {
        labels
            .iter()
            .map(|l| Example {
                text: format!("text {l}"),
                label: l.to_string(),
            })
            .collect()
    }

    #[test]
    fn class_order() {
        let ints = examples(&["10", "2", "2", "1"]);
        assert_eq!(class_names(&ints, None, None).unwrap(), ["1", "2", "10"]);
        let words = examples(&["safe", "hazard", "safe"]);
        assert_eq!(class_names(&words, None, None).unwrap(), ["hazard", "safe"]);
        // --positive moves the positive class to id 1 in a binary task.
        assert_eq!(
            class_names(&words, None, Some("hazard")).unwrap(),
            ["safe", "hazard"]
        );
        assert!(class_names(&words, None, Some("spam")).is_err());
        let explicit = [
            "safe".to_string(),
            "hazard".to_string(),
            "other".to_string(),
        ];
        assert_eq!(
            class_names(&words, Some(&explicit), None).unwrap(),
            explicit
        );
        assert!(class_names(&words, Some(&explicit[..1]), None).is_err());
        assert!(class_names(&examples(&["a", "a"]), None, None).is_err());
        let names = class_names(&words, None, Some("hazard")).unwrap();
        assert_eq!(class_ids(&words, &names), [0, 1, 0]);
    }

    #[test]
    fn split_is_stratified_and_seeded() {
        let classes: Vec<usize> = (0..100).map(|i| usize::from(i % 4 == 0)).collect();
        let (train, val) = split(&classes, 0.2, 7);
        assert_eq!(train.len() + val.len(), 100);
        assert_eq!(val.iter().filter(|&&i| classes[i] == 1).count(), 5);
        assert_eq!(val.iter().filter(|&&i| classes[i] == 0).count(), 15);
        assert_eq!(split(&classes, 0.2, 7), (train.clone(), val.clone()));
        assert_ne!(split(&classes, 0.2, 8).1, val);
        let (train, val) = split(&classes, 0.0, 7);
        assert!(val.is_empty());
        assert_eq!(train.len(), 100);
    }
}
