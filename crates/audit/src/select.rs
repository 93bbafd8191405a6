//! Which audit records a command looks at: filters, and deterministic random samples.

use sluice_core::stats::Destination;

use crate::Record;
use sluice_core::rng::SplitMix64 as Rng;

/// Every condition must hold (an unset condition holds for every record). With the `clap`
/// feature it is also the command line's selection options (the doc comments are their help).
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct Filter {
    /// A reason: stage id, `stage/rule`, or rule id.
    #[cfg_attr(feature = "clap", arg(long))]
    pub reason: Option<String>,
    /// A stage id among the reasons.
    #[cfg_attr(feature = "clap", arg(long))]
    pub stage: Option<String>,
    /// A rule that matched (fired or not).
    #[cfg_attr(feature = "clap", arg(long))]
    pub rule: Option<String>,
    /// A matched term (as listed, case-insensitive).
    #[cfg_attr(feature = "clap", arg(long))]
    pub term: Option<String>,
    /// A category of a matched term.
    #[cfg_attr(feature = "clap", arg(long))]
    pub category: Option<String>,
    /// kept, dropped or review.
    #[cfg_attr(feature = "clap", arg(long, value_parser = parse_decision))]
    pub decision: Option<Destination>,
    /// A document id.
    #[cfg_attr(feature = "clap", arg(long))]
    pub id: Option<String>,
    /// Classifier score at least this (records without a score never match a score range).
    #[cfg_attr(feature = "clap", arg(long))]
    pub min_score: Option<f64>,
    /// Classifier score at most this.
    #[cfg_attr(feature = "clap", arg(long))]
    pub max_score: Option<f64>,
}

/// `kept`, `dropped` or `review`: the destinations an audit record can have.
pub fn parse_decision(s: &str) -> Result<Destination, String> {
    match s {
        "kept" => Ok(Destination::Kept),
        "dropped" => Ok(Destination::Dropped),
        "review" => Ok(Destination::Review),
        _ => Err(format!("`{s}`: expected kept, dropped or review")),
    }
}

impl Filter {
    pub fn matches(&self, r: &Record) -> bool {
        if let Some(reason) = &self.reason {
            let hit = r.reasons.iter().any(|x| {
                x.stage == *reason
                    || x.rule.as_deref() == Some(reason.as_str())
                    || x.rule
                        .as_deref()
                        .is_some_and(|rule| format!("{}/{rule}", x.stage) == *reason)
            });
            if !hit {
                return false;
            }
        }
        if let Some(stage) = &self.stage {
            if !r.reasons.iter().any(|x| x.stage == *stage) {
                return false;
            }
        }
        if let Some(rule) = &self.rule {
            if !r.has_key("rules", |id| id == rule) {
                return false;
            }
        }
        if let Some(term) = &self.term {
            if !r.has_key("terms", |t| t.eq_ignore_ascii_case(term) || t == term) {
                return false;
            }
        }
        if let Some(category) = &self.category {
            if !r.has_key("categories", |c| c == category) {
                return false;
            }
        }
        if self.decision.is_some_and(|d| d != r.decision) {
            return false;
        }
        if self.id.as_ref().is_some_and(|id| *id != *r.id) {
            return false;
        }
        if self.min_score.is_some() || self.max_score.is_some() {
            let Some(score) = r.score().map(f64::from) else {
                return false;
            };
            if self.min_score.is_some_and(|m| score < m)
                || self.max_score.is_some_and(|m| score > m)
            {
                return false;
            }
        }
        true
    }
}

/// Reservoir sampling (Algorithm R): a uniform sample of `capacity` items from a stream of
/// unknown length, in memory for `capacity` items only. The same seed and stream give the same
/// sample.
pub struct Reservoir<T> {
    capacity: usize,
    seen: u64,
    rng: Rng,
    items: Vec<(u64, T)>,
}

impl<T> Reservoir<T> {
    pub fn new(capacity: usize, seed: u64) -> Reservoir<T> {
        Reservoir {
            capacity,
            seen: 0,
            rng: Rng::new(seed),
            items: Vec::with_capacity(capacity.min(1 << 16)),
        }
    }

    pub fn offer(&mut self, item: T) {
        let index = self.seen;
        self.seen += 1;
        if self.items.len() < self.capacity {
            self.items.push((index, item));
        } else if self.capacity > 0 {
            let j = self.rng.below_exact(self.seen) as usize;
            if j < self.capacity {
                self.items[j] = (index, item);
            }
        }
    }

    /// How many items were offered.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// The sample, in stream order.
    pub fn into_sorted(mut self) -> Vec<T> {
        self.items.sort_by_key(|(i, _)| *i);
        self.items.into_iter().map(|(_, t)| t).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seed: u64, n: usize, of: u64) -> Vec<u64> {
        let mut r = Reservoir::new(n, seed);
        for i in 0..of {
            r.offer(i);
        }
        r.into_sorted()
    }

    #[test]
    fn sampling_is_deterministic_per_seed_and_covers_the_stream() {
        assert_eq!(sample(7, 10, 10_000), sample(7, 10, 10_000));
        assert_ne!(sample(7, 10, 10_000), sample(8, 10, 10_000));
        assert_eq!(sample(1, 10, 5), vec![0, 1, 2, 3, 4]);
        assert!(sample(3, 0, 100).is_empty());
        // Uniform: every position is drawn about as often.
        let mut counts = [0u32; 10];
        for seed in 0..2000 {
            for i in sample(seed, 3, 10) {
                counts[i as usize] += 1;
            }
        }
        for c in counts {
            assert!((450..750).contains(&c), "{counts:?}");
        }
        // Known values pin the algorithm: a changed generator would silently change samples.
        assert_eq!(Rng::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }
}
