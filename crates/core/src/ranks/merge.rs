//! `sluice merge OUT`: the ranks' records folded into the `manifest.json` and `report.json` a
//! one-machine run writes (the caller adds `report.html`), with each rank's bytes and time, and
//! what is missing: the shards with no completion record, the failed ones, the ranks to re-run.
//!
//! Reads `run.json`, `listing.json`, one completion record per listed shard (on rayon's pool,
//! so that round trips to a network filesystem overlap) and one record per rank: O(shards)
//! small reads, no listing of the directory.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_io::{LockError, LOCK_FILE};

use super::records::{
    completion_name, lock_name, rank_record_name, read_record, CompletionRecord, Listing,
    RankRecord, RunRecord, LISTING, RUN_RECORD,
};
use super::{RankError, RankSource};
use crate::output::Storage;
use crate::run::{
    step_times, FailedShard, InputIdentity, Manifest, Report, ShardEntry, ShardStatus, MANIFEST,
    REPORT,
};
use crate::stage::StageStats;
use crate::stats::Flow;

/// One rank's figures in the merged report.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RankFigures {
    pub rank: usize,
    /// Shards and input bytes (as stored) of its share.
    pub shards: usize,
    pub bytes: u64,
    /// Its share's shards done and failed.
    pub done: usize,
    pub failed: usize,
    /// What its last invocation filtered (bytes uncompressed), in how long; absent when it left
    /// no record (killed, or never started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<RankSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The signal that stopped its last invocation, if one did (its share is then incomplete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<usize>,
}

/// What a merge found.
pub struct MergeOutcome {
    pub report: Report,
    pub world_size: usize,
    /// Shards with no completion record (nor a failure): not filtered yet.
    pub missing: Vec<String>,
    /// Shards whose last attempt failed.
    pub failed: Vec<FailedShard>,
    /// Ranks whose share is not all done, to be re-run.
    pub rerun: Vec<usize>,
}

impl MergeOutcome {
    pub fn complete(&self) -> bool {
        self.missing.is_empty() && self.failed.is_empty()
    }
}

/// Merges the run in `dir` (see the module docs). Holds the directory's lock, so no rank starts
/// meanwhile, and refuses while a rank of the pinned world runs, or when records were made with
/// different configs.
pub fn merge(storage: &dyn Storage, command: &str) -> Result<MergeOutcome, RankError> {
    let dir = storage.root();
    let Some(record) = read_record::<RunRecord>(storage, RUN_RECORD)? else {
        return Err(RankError::NotRanked {
            dir,
            single: storage.exists(MANIFEST)?,
        });
    };
    let _lock = storage
        .lock(LOCK_FILE, command)
        .map_err(RankError::Locked)?;
    let world = record.world_size;
    let running: Vec<usize> = (0..world)
        .filter(|&rank| {
            matches!(
                storage.check_lock_free(&lock_name(rank, world)),
                Err(LockError::Held { .. })
            )
        })
        .collect();
    if !running.is_empty() {
        return Err(RankError::StillRunning {
            dir,
            ranks: running,
        });
    }
    let listing_path = || PathBuf::from(storage.describe(LISTING));
    let listing: Listing = read_record(storage, LISTING)?.ok_or_else(|| RankError::Read {
        path: listing_path(),
        message: "missing (the rank that pinned the run stopped before writing it): re-run any \
                  rank, it writes it"
            .into(),
    })?;
    if listing.summary() != record.listing {
        return Err(RankError::Read {
            path: listing_path(),
            message: "does not match ranks/run.json: re-run any rank, it rewrites it".into(),
        });
    }
    let assignment = listing.assignment(world);
    let ranks: Vec<Option<RankRecord>> = (0..world)
        .map(|rank| read_record(storage, &rank_record_name(rank, world)))
        .collect::<Result<_, _>>()?;

    // Mixed configs: records made before a `--force` re-pin of the config.
    let mut foreign: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    // Read in parallel, with whether the shard's outputs are all there: on a network
    // filesystem or object storage each read waits on a round trip.
    let read: Vec<(Option<CompletionRecord>, bool)> = {
        use rayon::prelude::*;
        listing
            .shards
            .par_iter()
            .with_min_len(16)
            .map(|shard| {
                let completion: Option<CompletionRecord> =
                    read_record(storage, &completion_name(&shard.name))?;
                let outputs = match &completion {
                    Some(c) => crate::run::outputs_exist(storage, &c.entry)?,
                    None => false,
                };
                Ok::<_, RankError>((completion, outputs))
            })
            .collect::<Result<_, _>>()?
    };
    let mut completions = Vec::with_capacity(listing.shards.len());
    for (i, (shard, (completion, outputs))) in listing.shards.iter().zip(read).enumerate() {
        if let Some(c) = &completion {
            if c.config_hash != record.config_hash {
                foreign
                    .entry(c.config_hash.clone())
                    .or_default()
                    .insert(assignment[i]);
            }
        }
        completions.push(completion.filter(|c| c.entry.name == shard.name && outputs));
    }
    for r in ranks.iter().flatten() {
        if r.report.config_hash != record.config_hash {
            foreign
                .entry(r.report.config_hash.clone())
                .or_default()
                .insert(r.rank);
        }
    }
    if !foreign.is_empty() {
        let ranks: BTreeSet<usize> = foreign.values().flatten().copied().collect();
        let details = foreign
            .iter()
            .map(|(hash, ranks)| {
                format!(
                    "{hash} in records of ranks {}",
                    super::join_numbers(&ranks.iter().copied().collect::<Vec<_>>())
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        return Err(RankError::MixedConfigs {
            dir,
            pinned: record.config_hash.clone(),
            details,
            ranks: ranks.into_iter().collect(),
        });
    }

    let failures: BTreeMap<&str, &str> = ranks
        .iter()
        .flatten()
        .flat_map(|r| &r.report.failed_shards)
        .map(|f| (f.name.as_str(), f.error.as_str()))
        .collect();
    let mut entries = Vec::with_capacity(listing.shards.len() + listing.failed.len());
    let mut missing = Vec::new();
    let mut failed = Vec::new();
    let mut rerun = BTreeSet::new();
    let mut figures: Vec<RankFigures> = (0..world)
        .map(|rank| RankFigures {
            rank,
            shards: 0,
            bytes: 0,
            done: 0,
            failed: 0,
            processed_bytes: None,
            wall_seconds: None,
            source: None,
            host: None,
            interrupted: None,
        })
        .collect();
    for ((shard, completion), &rank) in listing.shards.iter().zip(completions).zip(&assignment) {
        let figure = &mut figures[rank];
        figure.shards += 1;
        figure.bytes += shard.size;
        match completion {
            Some(c) => {
                figure.done += 1;
                entries.push(c.entry);
            }
            _ => {
                rerun.insert(rank);
                let mut entry = ShardEntry {
                    name: shard.name.clone(),
                    path: shard.path.clone(),
                    status: ShardStatus::Pending,
                    error: None,
                    input_compression: None,
                    output_name: None,
                    records_name: None,
                    input: InputIdentity::of(&shard.path),
                    stats: None,
                    layout: None,
                };
                match failures.get(shard.name.as_str()) {
                    Some(error) => {
                        figure.failed += 1;
                        entry.status = ShardStatus::Failed;
                        entry.error = Some(error.to_string());
                        failed.push(FailedShard {
                            name: shard.name.clone(),
                            error: error.to_string(),
                        });
                    }
                    None => missing.push(shard.name.clone()),
                }
                entries.push(entry);
            }
        }
    }
    // Entries that cannot be opened: failed as in a one-machine run; re-running does not help
    // until the input is repaired.
    for f in &listing.failed {
        figures[0].failed += 1;
        failed.push(FailedShard {
            name: f.name.clone(),
            error: f.error.clone(),
        });
        entries.push(ShardEntry {
            name: f.name.clone(),
            path: f.path.clone(),
            status: ShardStatus::Failed,
            error: Some(f.error.clone()),
            input_compression: None,
            output_name: None,
            records_name: None,
            input: None,
            stats: None,
            layout: None,
        });
    }

    let manifest = Manifest {
        sluice_version: crate::VERSION.to_string(),
        config_hash: record.config_hash.clone(),
        config: record.config.clone(),
        config_dir: record.config_dir.clone(),
        inputs: record.inputs.clone(),
        shards: entries,
        skipped: listing.skipped.clone(),
    };

    // This run's throughput and timings: every rank's last invocation, side by side.
    let mut processed = Flow::default();
    let mut wall: f64 = 0.0;
    let mut threads = 0;
    let mut steps: Vec<(String, Duration)> = Vec::new();
    for r in ranks.iter().flatten() {
        let t = &r.report.throughput;
        processed.merge(&Flow {
            documents: t.documents,
            bytes: t.bytes,
        });
        wall = wall.max(t.wall_seconds);
        threads += t.threads;
        for (i, step) in r.report.timings.iter().enumerate() {
            let time = Duration::from_secs_f64(step.cpu_seconds.max(0.0));
            match steps.iter_mut().find(|(name, _)| *name == step.step) {
                Some((_, total)) => *total += time,
                None => steps.insert(i.min(steps.len()), (step.step.clone(), time)),
            }
        }
        let figure = &mut figures[r.rank.min(world - 1)];
        figure.processed_bytes = Some(t.bytes);
        figure.wall_seconds = Some(t.wall_seconds);
        figure.source = Some(r.rank_source);
        figure.host = Some(r.host.clone());
        figure.interrupted = r.interrupted;
    }
    let stages: Vec<StageStats> = record
        .config
        .stages
        .iter()
        .map(|s| StageStats::new(s.id(), s.kind()))
        .collect();
    let timings = step_times(steps, processed.bytes, None);
    let mut report = Report::from_manifest(
        &manifest,
        stages,
        0,
        processed,
        wall.max(1e-9),
        threads,
        timings,
    );
    report.ranks = figures;
    manifest.write_to(storage).map_err(|e| RankError::Write {
        path: PathBuf::from(storage.describe(MANIFEST)),
        message: e.to_string(),
    })?;
    let mut bytes = serde_json::to_vec_pretty(&report).expect("report serializes");
    bytes.push(b'\n');
    storage.replace(REPORT, &bytes, None)?;
    Ok(MergeOutcome {
        report,
        world_size: world,
        missing,
        failed,
        rerun: rerun.into_iter().collect(),
    })
}
