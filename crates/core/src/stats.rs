//! Counters. Every outcome is counted by reason, per shard, and merged into the run report;
//! the invariant `documents == kept + dropped + review + errors` is checked in tests.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::stage::StageStats;

/// Documents and uncompressed bytes (newline included) that went one way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    pub documents: u64,
    pub bytes: u64,
}

impl Flow {
    pub fn add(&mut self, bytes: u64) {
        self.documents += 1;
        self.bytes += bytes;
    }
    pub fn merge(&mut self, other: &Flow) {
        self.documents += other.documents;
        self.bytes += other.bytes;
    }
}

/// Where a document ends up. Every input line goes to exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Destination {
    Kept,
    Dropped,
    Review,
    Errors,
}

impl Destination {
    pub const ALL: [Destination; 4] = [
        Destination::Kept,
        Destination::Dropped,
        Destination::Review,
        Destination::Errors,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Destination::Kept => "kept",
            Destination::Dropped => "dropped",
            Destination::Review => "review",
            Destination::Errors => "errors",
        }
    }
}

/// Documents and bytes per destination (the fields in the order `report.json` has them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destinations {
    pub dropped: Flow,
    pub errors: Flow,
    pub kept: Flow,
    pub review: Flow,
}

impl Destinations {
    pub fn get(&self, destination: Destination) -> Flow {
        match destination {
            Destination::Kept => self.kept,
            Destination::Dropped => self.dropped,
            Destination::Review => self.review,
            Destination::Errors => self.errors,
        }
    }

    /// All documents: kept + dropped + review + errors.
    pub fn total(&self) -> Flow {
        let mut total = Flow::default();
        for d in Destination::ALL {
            total.merge(&self.get(d));
        }
        total
    }

    pub fn merge(&mut self, other: &Destinations) {
        self.dropped.merge(&other.dropped);
        self.errors.merge(&other.errors);
        self.kept.merge(&other.kept);
        self.review.merge(&other.review);
    }
}

/// Counters of one shard (or, merged, of a run).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardStats {
    pub input: Flow,
    pub kept: Flow,
    pub dropped: Flow,
    pub review: Flow,
    pub errors: Flow,
    /// Documents escalated by some stage (they are in `review` until a classifier judges them).
    pub escalated: u64,
    /// Audit records written.
    pub audited: u64,
    /// Error lines by kind (`invalid_json`, `line_too_long`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub error_kinds: BTreeMap<String, u64>,
    pub stages: Vec<StageStats>,
    /// Documents of review/ that reviewers' decisions moved (`sluice review apply`).
    #[serde(default, skip_serializing_if = "Reviewed::is_empty")]
    pub reviewed: Reviewed,
}

/// Documents the cascade sent to review that people decided: to kept and to dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reviewed {
    pub kept: u64,
    pub dropped: u64,
}

impl Reviewed {
    pub fn is_empty(&self) -> bool {
        self.kept == 0 && self.dropped == 0
    }

    /// Counts one decided document that went to `destination`.
    pub fn count(&mut self, destination: Destination) {
        match destination {
            Destination::Kept => self.kept += 1,
            Destination::Dropped => self.dropped += 1,
            Destination::Review | Destination::Errors => {}
        }
    }
}

impl ShardStats {
    pub fn new(stages: &[StageStats]) -> ShardStats {
        ShardStats {
            stages: stages.to_vec(),
            ..ShardStats::default()
        }
    }

    pub fn flow_mut(&mut self, destination: Destination) -> &mut Flow {
        match destination {
            Destination::Kept => &mut self.kept,
            Destination::Dropped => &mut self.dropped,
            Destination::Review => &mut self.review,
            Destination::Errors => &mut self.errors,
        }
    }

    pub fn flow(&self, destination: Destination) -> Flow {
        match destination {
            Destination::Kept => self.kept,
            Destination::Dropped => self.dropped,
            Destination::Review => self.review,
            Destination::Errors => self.errors,
        }
    }

    /// Documents and bytes per destination.
    pub fn destinations(&self) -> Destinations {
        Destinations {
            dropped: self.dropped,
            errors: self.errors,
            kept: self.kept,
            review: self.review,
        }
    }

    /// Whether every input document is accounted for in exactly one destination.
    pub fn balanced(&self) -> bool {
        let out: u64 = Destination::ALL
            .iter()
            .map(|d| self.flow(*d).documents)
            .sum();
        let bytes: u64 = Destination::ALL.iter().map(|d| self.flow(*d).bytes).sum();
        out == self.input.documents && bytes == self.input.bytes
    }

    /// Takes `other`'s counts out: `rethreshold` replaces the old contribution of each
    /// re-decided document by its new one (keys no document counts any more are forgotten).
    pub fn subtract(&mut self, other: &ShardStats) {
        for d in Destination::ALL {
            let (mine, theirs) = (self.flow_mut(d), other.flow(d));
            mine.documents = mine.documents.wrapping_sub(theirs.documents);
            mine.bytes = mine.bytes.wrapping_sub(theirs.bytes);
        }
        self.escalated = self.escalated.wrapping_sub(other.escalated);
        self.audited = self.audited.wrapping_sub(other.audited);
        self.reviewed.kept = self.reviewed.kept.wrapping_sub(other.reviewed.kept);
        self.reviewed.dropped = self.reviewed.dropped.wrapping_sub(other.reviewed.dropped);
        for (mine, theirs) in self.stages.iter_mut().zip(&other.stages) {
            mine.subtract(theirs);
        }
    }

    pub fn merge(&mut self, other: &ShardStats) {
        self.input.merge(&other.input);
        self.kept.merge(&other.kept);
        self.dropped.merge(&other.dropped);
        self.review.merge(&other.review);
        self.errors.merge(&other.errors);
        self.escalated += other.escalated;
        self.audited += other.audited;
        self.reviewed.kept += other.reviewed.kept;
        self.reviewed.dropped += other.reviewed.dropped;
        for (kind, n) in &other.error_kinds {
            *self.error_kinds.entry(kind.clone()).or_default() += n;
        }
        if self.stages.is_empty() {
            self.stages = other.stages.clone();
        } else {
            for (mine, theirs) in self.stages.iter_mut().zip(&other.stages) {
                mine.merge(theirs);
            }
        }
    }
}

/// Where the time went, summed over threads (so with N threads it can exceed wall time N-fold).
/// Kept apart from [`ShardStats`]: timings differ from run to run, counts never do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timings {
    /// Decompressing and cutting lines (the shards' reader threads).
    pub read: Duration,
    /// Finding the text and id fields in each line.
    pub parse: Duration,
    /// Per stage, in cascade order.
    pub stages: Vec<Duration>,
    /// Routing lines and writing audit and error records.
    pub route: Duration,
    /// Compressing the output frames.
    pub compress: Duration,
    /// Appending frames to the output files (a JSONL shard's final fsync is not counted: it is
    /// waiting for the disk).
    pub write: Duration,
}

impl Timings {
    pub fn new(stages: usize) -> Timings {
        Timings {
            stages: vec![Duration::ZERO; stages],
            ..Timings::default()
        }
    }

    pub fn merge(&mut self, other: &Timings) {
        self.read += other.read;
        self.parse += other.parse;
        if self.stages.len() < other.stages.len() {
            self.stages.resize(other.stages.len(), Duration::ZERO);
        }
        for (mine, theirs) in self.stages.iter_mut().zip(&other.stages) {
            *mine += *theirs;
        }
        self.route += other.route;
        self.compress += other.compress;
        self.write += other.write;
    }
}

/// CPU time (user + system) of the whole process so far, all threads together; `None` where the
/// platform has no `getrusage`. Used to turn the steps' busy time into CPU time when threads
/// outnumber cores (see [`crate::run::step_times`]).
pub fn process_cpu_time() -> Option<Duration> {
    #[cfg(unix)]
    {
        // SAFETY: getrusage only writes the struct it is given, which is fully initialized.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
            return None;
        }
        let time = |t: libc::timeval| {
            Duration::new(t.tv_sec.max(0) as u64, (t.tv_usec.max(0) as u32) * 1000)
        };
        Some(time(usage.ru_utime) + time(usage.ru_stime))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// CPU time of the calling thread so far; `None` where the platform has no per-thread clock.
/// Unlike wall-clock time it does not grow while the thread waits for a core, so a measurement
/// made with it holds on a busy machine (the rules stage's speed check).
pub fn thread_cpu_time() -> Option<Duration> {
    #[cfg(unix)]
    {
        // SAFETY: clock_gettime only writes the struct it is given, which is fully initialized.
        let mut now: libc::timespec = unsafe { std::mem::zeroed() };
        if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } != 0 {
            return None;
        }
        Some(Duration::new(
            now.tv_sec.max(0) as u64,
            now.tv_nsec.max(0) as u32,
        ))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// `count` and `noun`, with the noun in the plural unless the count is one: "1 document",
/// "3 documents". For messages only; nouns here take a plain "s".
pub fn plural(count: u64, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn the_thread_clock_does_not_run_while_the_thread_waits() {
        // What makes the rules stage's speed check hold on a busy machine: time off the CPU is
        // not counted.
        let before = thread_cpu_time().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let slept = thread_cpu_time().unwrap().saturating_sub(before);
        assert!(slept < Duration::from_millis(100), "{slept:?}");
        let before = thread_cpu_time().unwrap();
        let mut x = 0u64;
        while thread_cpu_time().unwrap().saturating_sub(before) < Duration::from_millis(5) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(x > 0);
    }

    #[test]
    fn plural_is_singular_only_for_one() {
        assert_eq!(plural(0, "document"), "0 documents");
        assert_eq!(plural(1, "document"), "1 document");
        assert_eq!(plural(2, "audit record"), "2 audit records");
    }
}
