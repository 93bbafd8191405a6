//! The files of a run spread over ranks, all under `OUT/ranks/`:
//!
//! * `run.json` ([`RunRecord`]): the world size, config and listing fingerprint every rank
//!   checks; created once (create-if-absent), replaced only by `--repartition` or `--force`.
//! * `listing.json` ([`Listing`]): the global shard list with sizes, for `sluice merge`.
//! * `done/NAME.json` ([`CompletionRecord`]): one per finished shard, written after its outputs.
//! * `rank-RRRRR-of-WWWWW.json` ([`RankRecord`]): a rank's failures and figures, when it ends.
//! * `locks/rank-RRRRR-of-WWWWW.lock`: each rank's own lock (two processes for the same rank are
//!   refused); the whole-directory lock `OUT/.sluice.lock` is kept by one-process runs and
//!   merges, and ranks only check that nobody holds it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_io::{Discovery, LockError, Shard, LOCK_FILE};

use super::{assign, RankError, RankRequest, RankSource, WorldSource};
use crate::config::Config;
use crate::output::{HeldLock, Storage, Stored};
use crate::run::{Report, ShardEntry, SkippedInput, JOURNAL, MANIFEST, REPORT};

pub const RANKS_DIR: &str = "ranks";
pub const RUN_RECORD: &str = "ranks/run.json";
pub const LISTING: &str = "ranks/listing.json";
pub const DONE_DIR: &str = "ranks/done";
pub const LOCKS_DIR: &str = "ranks/locks";
/// The derived files a merge writes; a rank that starts removes them (they no longer tell the
/// truth once it writes).
pub const MERGED: [&str; 4] = [MANIFEST, JOURNAL, REPORT, "report.html"];

/// `ranks/run.json`: what every rank of the run must agree on.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunRecord {
    pub sluice_version: String,
    pub world_size: usize,
    pub config_hash: String,
    pub config: Config,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_dir: Option<PathBuf>,
    pub inputs: Vec<String>,
    /// Shards, bytes and SHA-256 of the listing (names and sizes) the partition is made from.
    pub listing: ListingSummary,
    /// 0 for the first partition, one more at each `--repartition`.
    pub partition: u32,
    /// Who wrote this record: `rank 0 of 4 (SLURM_ARRAY_TASK_ID) on host h`.
    pub pinned_by: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingSummary {
    pub shards: usize,
    pub bytes: u64,
    pub sha256: String,
}

impl std::fmt::Display for ListingSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} shards, {} bytes, sha256 {}",
            self.shards,
            self.bytes,
            &self.sha256[..12.min(self.sha256.len())]
        )
    }
}

/// `ranks/listing.json`: the global shard set as listed when the run was pinned.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Listing {
    pub shards: Vec<ListedShard>,
    /// Entries that should have been shards but cannot be opened: failed shards of rank 0.
    #[serde(default)]
    pub failed: Vec<ListedFailure>,
    #[serde(default)]
    pub skipped: Vec<SkippedInput>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ListedShard {
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ListedFailure {
    pub name: String,
    pub path: PathBuf,
    pub error: String,
}

impl Listing {
    pub fn of(discovery: &Discovery, skipped: Vec<SkippedInput>) -> Listing {
        Listing {
            shards: discovery
                .shards
                .iter()
                .map(|s| ListedShard {
                    name: s.name.clone(),
                    path: s.path.clone(),
                    size: s.size,
                })
                .collect(),
            failed: discovery
                .failed
                .iter()
                .map(|f| ListedFailure {
                    name: f.name.clone(),
                    path: f.path.clone(),
                    error: f.error.to_string(),
                })
                .collect(),
            skipped,
        }
    }

    /// Names and sizes (paths differ with the working directory; names do not).
    pub fn summary(&self) -> ListingSummary {
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        for s in &self.shards {
            hash.update(s.name.as_bytes());
            hash.update([0]);
            hash.update(s.size.to_le_bytes());
        }
        for f in &self.failed {
            hash.update(b"failed\0");
            hash.update(f.name.as_bytes());
            hash.update([0]);
        }
        ListingSummary {
            shards: self.shards.len(),
            bytes: self.shards.iter().map(|s| s.size).sum(),
            sha256: crate::config::hex(&hash.finalize()),
        }
    }

    /// Each shard's rank under `world_size`.
    pub fn assignment(&self, world_size: usize) -> Vec<usize> {
        let sizes: Vec<u64> = self.shards.iter().map(|s| s.size).collect();
        assign(&sizes, world_size)
    }
}

/// `ranks/done/NAME.json`: one finished shard, as its manifest entry will read.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CompletionRecord {
    pub config_hash: String,
    pub rank: usize,
    pub world_size: usize,
    /// Wall time of the shard.
    pub seconds: f64,
    pub entry: ShardEntry,
}

/// `ranks/rank-RRRRR-of-WWWWW.json`: how a rank's last invocation ended.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RankRecord {
    pub rank: usize,
    pub world_size: usize,
    pub rank_source: RankSource,
    pub world_source: WorldSource,
    pub host: String,
    pub pid: u32,
    pub started: String,
    pub ended: String,
    /// Shards and input bytes (as stored) of the rank's share.
    pub shards: usize,
    pub bytes: u64,
    /// Set when a signal stopped it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<usize>,
    /// Its report: counts over its share, its failed shards, its throughput and timings.
    pub report: Report,
}

pub fn completion_name(shard: &str) -> String {
    format!("{DONE_DIR}/{shard}.json")
}

pub fn rank_record_name(rank: usize, world_size: usize) -> String {
    format!("{RANKS_DIR}/rank-{rank:05}-of-{world_size:05}.json")
}

/// `ranks/locks/rank-RRRRR-of-WWWWW.lock`.
pub fn lock_name(rank: usize, world_size: usize) -> String {
    format!("{LOCKS_DIR}/rank-{rank:05}-of-{world_size:05}.lock")
}

/// Reads a JSON record of a local directory; `None` when it does not exist.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, RankError> {
    let error = |message: String| RankError::Read {
        path: path.to_path_buf(),
        message,
    };
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| error(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(error(e.to_string())),
    }
}

/// Reads the JSON record `name` of an output directory or URL; `None` when it does not exist.
pub fn read_record<T: serde::de::DeserializeOwned>(
    storage: &dyn Storage,
    name: &str,
) -> Result<Option<T>, RankError> {
    Ok(read_versioned(storage, name)?.map(|(value, _)| value))
}

/// [`read_record`], with what a conditional replace of it needs.
fn read_versioned<T: serde::de::DeserializeOwned>(
    storage: &dyn Storage,
    name: &str,
) -> Result<Option<(T, Stored)>, RankError> {
    let error = |message: String| RankError::Read {
        path: PathBuf::from(storage.describe(name)),
        message,
    };
    match storage.read(name).map_err(|e| error(e.to_string()))? {
        Some(stored) => serde_json::from_slice(&stored.bytes)
            .map(|value| Some((value, stored)))
            .map_err(|e| error(e.to_string())),
        None => Ok(None),
    }
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("records serialize");
    bytes.push(b'\n');
    bytes
}

fn write_error(storage: &dyn Storage, name: &str) -> impl Fn(sluice_io::IoError) -> RankError {
    let path = PathBuf::from(storage.describe(name));
    move |e| RankError::Write {
        path: path.clone(),
        message: e.to_string(),
    }
}

/// Writes a record whole through `storage` (a temp file renamed, or one PUT).
fn put(storage: &dyn Storage, name: &str, bytes: &[u8]) -> Result<(), RankError> {
    let mut sink = storage.create(name)?;
    std::io::Write::write_all(&mut sink, bytes).map_err(|e| RankError::Write {
        path: PathBuf::from(storage.describe(name)),
        message: e.to_string(),
    })?;
    sink.finish()?;
    Ok(())
}

/// Creates `name` with `bytes` unless it exists (another rank created it first): a hard link
/// on a filesystem, a conditional create (`If-None-Match: *`) on object storage.
fn create_new(storage: &dyn Storage, name: &str, bytes: &[u8]) -> Result<bool, RankError> {
    storage
        .create_new(name, bytes)
        .map_err(write_error(storage, name))
}

/// Replaces `name` with `bytes` (if still `read`, where given: see [`Storage::replace`]).
fn replace(
    storage: &dyn Storage,
    name: &str,
    bytes: &[u8],
    read: Option<&Stored>,
) -> Result<bool, RankError> {
    storage
        .replace(name, bytes, read)
        .map_err(write_error(storage, name))
}

/// What the run record pins besides the world size.
pub struct Pin<'a> {
    pub config_hash: &'a str,
    pub config: &'a Config,
    pub config_dir: Option<PathBuf>,
    pub inputs: &'a [String],
}

/// How a rank may proceed when the run record disagrees.
#[derive(Clone, Copy, Default)]
pub struct ClaimOptions {
    /// Re-pin another world size or listing (when no rank of the old world runs).
    pub repartition: bool,
    /// Re-pin another config; redo this rank's shards.
    pub force: bool,
}

/// A rank's hold on its share of the run: its lock, the pinned record, which shards are its.
pub struct Claim {
    pub rank: usize,
    pub world_size: usize,
    pub rank_source: RankSource,
    pub world_source: WorldSource,
    pub record: RunRecord,
    /// Per listed shard (in listing order): whether it is this rank's.
    owned: Vec<bool>,
    started: String,
    _lock: HeldLock,
}

/// Takes rank `request` of the run in `dir`: its own lock (refusing a second process for the
/// same rank), then the run record, created if absent, else checked: the same world size,
/// listing and config, or, with `--repartition` (`--force` for the config), re-pinned once no
/// rank of the old world holds its lock. The old world's locks are all taken while the record is
/// replaced, and every rank takes its lock before reading the record, so a rank of the old world
/// either makes the re-partition fail or is refused by the new record: two worlds never run at
/// once.
pub fn claim(
    storage: &dyn Storage,
    request: &RankRequest,
    listing: &Listing,
    pin: &Pin<'_>,
    options: ClaimOptions,
    command: &str,
) -> Result<Claim, RankError> {
    let dir = storage.root();
    let dir = dir.as_path();
    let summary = listing.summary();
    // A record re-pinned between reading it and locking: read again (a few times at most).
    for _ in 0..20 {
        let existing: Option<RunRecord> = read_record(storage, RUN_RECORD)?;
        if existing.is_none() && storage.exists(MANIFEST)? && !options.force {
            return Err(RankError::SingleRunHere {
                dir: dir.to_path_buf(),
            });
        }
        let (world, world_source) = match (request.world_size, &existing) {
            (Some(w), _) => (w, request.world_source),
            (None, Some(record)) => (record.world_size, WorldSource::RunRecord),
            (None, None) => {
                return Err(RankError::NoWorldSize {
                    variable: request.rank_source.variable(),
                })
            }
        };
        if request.rank >= world {
            return Err(RankError::RankOutOfRange {
                rank: request.rank,
                variable: request.rank_source.variable(),
                world,
                world_source: world_source.variable(),
            });
        }
        let lock = storage
            .lock(&lock_name(request.rank, world), command)
            .map_err(|e| match e {
                LockError::Held { holder, .. } => RankError::RankRunning {
                    dir: dir.to_path_buf(),
                    rank: request.rank,
                    world,
                    holder: holder.map_or_else(|| "holder unknown".into(), |h| h.to_string()),
                },
                other => RankError::Locked(other),
            })?;
        // A one-process run or a merge holds the whole directory.
        storage
            .check_lock_free(LOCK_FILE)
            .map_err(RankError::Locked)?;
        let pinned_by = format!(
            "rank {} of {world} ({}) on host {}",
            request.rank,
            request.rank_source.variable(),
            sluice_io::hostname()
        );
        let fresh = |partition| RunRecord {
            sluice_version: crate::VERSION.to_string(),
            world_size: world,
            config_hash: pin.config_hash.to_string(),
            config: pin.config.clone(),
            config_dir: pin.config_dir.clone(),
            inputs: pin.inputs.to_vec(),
            listing: summary.clone(),
            partition,
            pinned_by: pinned_by.clone(),
        };
        let current: Option<(RunRecord, Stored)> = read_versioned(storage, RUN_RECORD)?;
        let record = match current {
            None => {
                if !create_new(storage, RUN_RECORD, &to_json(&fresh(0)))? {
                    continue; // another rank created it first: check against theirs
                }
                tracing::info!(world, listing = %summary, "pinned the run record");
                fresh(0)
            }
            Some((current, _))
                if world_source == WorldSource::RunRecord && current.world_size != world =>
            {
                continue; // re-pinned meanwhile: lock the right rank
            }
            Some((current, stored)) => {
                let world_changed = current.world_size != world;
                let listing_changed = current.listing != summary;
                let config_changed = current.config_hash != pin.config_hash;
                if world_changed && !options.repartition {
                    return Err(RankError::WorldChanged {
                        dir: dir.to_path_buf(),
                        pinned: current.world_size,
                        rank: request.rank,
                        world,
                    });
                }
                if listing_changed && !options.repartition {
                    return Err(RankError::ListingChanged {
                        dir: dir.to_path_buf(),
                        pinned: current.listing.to_string(),
                        listed: summary.to_string(),
                    });
                }
                if config_changed && !options.force {
                    return Err(RankError::ConfigChanged {
                        dir: dir.to_path_buf(),
                        found: current.config_hash.clone(),
                    });
                }
                if world_changed || listing_changed || config_changed {
                    let record = fresh(current.partition + 1);
                    if !repin(storage, &current, &stored, &record, listing, command)? {
                        continue; // another rank re-pinned meanwhile: check against theirs
                    }
                    tracing::warn!(
                        from = current.world_size,
                        to = world,
                        listing = %summary,
                        "re-pinned the run record: finished shards are kept, the rest re-partitioned"
                    );
                    record
                } else {
                    current
                }
            }
        };
        if record.listing == summary && !storage.exists(LISTING)? {
            replace(storage, LISTING, &to_json(listing), None)?;
        }
        // A merge's files describe the directory before this rank writes: remove them, so that
        // readers say "merge first" instead of showing a stale picture.
        for name in MERGED {
            storage.remove(name).map_err(write_error(storage, name))?;
        }
        let owned = listing
            .assignment(world)
            .into_iter()
            .map(|r| r == request.rank)
            .collect();
        return Ok(Claim {
            rank: request.rank,
            world_size: world,
            rank_source: request.rank_source,
            world_source,
            record,
            owned,
            started: sluice_io::utc_timestamp(std::time::SystemTime::now()),
            _lock: lock,
        });
    }
    Err(RankError::Read {
        path: PathBuf::from(storage.describe(RUN_RECORD)),
        message: "it keeps being replaced".into(),
    })
}

/// Replaces the run record under the re-partition lock, holding every lock of an old world of
/// another size while it does, so that none of its ranks runs meanwhile. `false` when the record
/// changed since `read` (on object storage the replace is conditional on its ETag).
fn repin(
    storage: &dyn Storage,
    current: &RunRecord,
    read: &Stored,
    record: &RunRecord,
    listing: &Listing,
    command: &str,
) -> Result<bool, RankError> {
    let dir = storage.root();
    // Held for milliseconds by whichever rank re-pins: wait for it.
    let mut attempts = 0;
    let _repartition = loop {
        match storage.lock(&format!("{LOCKS_DIR}/repartition.lock"), command) {
            Ok(lock) => break lock,
            Err(LockError::Held { .. }) if attempts < 200 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(RankError::Locked(e)),
        }
    };
    let now: Option<(RunRecord, Stored)> = read_versioned(storage, RUN_RECORD)?;
    if now.as_ref().is_some_and(|(now, _)| {
        now.world_size == record.world_size
            && now.listing == record.listing
            && now.config_hash == record.config_hash
    }) {
        return Ok(true); // another rank of the new world did it
    }
    let (old, read) = match &now {
        Some((now, stored)) => (now, stored),
        None => (current, read),
    };
    let mut held = Vec::new();
    // Under the same world size the other ranks are most likely this relaunch's own, started at
    // the same moment: their locks say nothing about which record they read.
    let old_ranks = if old.world_size == record.world_size {
        0
    } else {
        old.world_size
    };
    for rank in 0..old_ranks {
        match storage.lock(&lock_name(rank, old.world_size), command) {
            Ok(lock) => held.push(lock),
            Err(LockError::Held { holder, .. }) => {
                return Err(RankError::OldRankRunning {
                    dir,
                    rank,
                    world: old.world_size,
                    holder: holder.map_or_else(|| "holder unknown".into(), |h| h.to_string()),
                })
            }
            Err(e) => return Err(RankError::Locked(e)),
        }
    }
    // The listing first: a record never names a listing that is not there.
    replace(storage, LISTING, &to_json(listing), None)?;
    replace(storage, RUN_RECORD, &to_json(record), Some(read))
}

/// A one-process run refuses a directory that holds a run over ranks.
pub fn refuse_single(storage: &dyn Storage) -> Result<(), RankError> {
    match read_record::<RunRecord>(storage, RUN_RECORD)? {
        Some(record) => Err(RankError::RankedRunHere {
            dir: storage.root(),
            world: record.world_size,
        }),
        None => Ok(()),
    }
}

impl Claim {
    /// This rank's shards, in listing order.
    pub fn share(&self, shards: Vec<Shard>) -> Vec<Shard> {
        shards
            .into_iter()
            .zip(&self.owned)
            .filter(|(_, owned)| **owned)
            .map(|(shard, _)| shard)
            .collect()
    }

    /// Entries that cannot be opened are failed shards of rank 0.
    pub fn owns_failed_entries(&self) -> bool {
        self.rank == 0
    }

    /// The completion records of `shards` made under the pinned config: those finished by an
    /// earlier invocation, of any world size. One read per shard of this rank's share, so a
    /// whole job reads each record once.
    pub fn completed(
        &self,
        storage: &dyn Storage,
        shards: &[Shard],
    ) -> Result<Vec<ShardEntry>, RankError> {
        let mut entries = Vec::new();
        for shard in shards {
            let name = completion_name(&shard.name);
            if let Some(record) = read_record::<CompletionRecord>(storage, &name)? {
                if record.config_hash == self.record.config_hash && record.entry.name == shard.name
                {
                    entries.push(record.entry);
                }
            }
        }
        Ok(entries)
    }

    /// Records a finished shard, after its outputs are in place.
    pub fn complete(
        &self,
        storage: &dyn Storage,
        entry: &ShardEntry,
        seconds: f64,
    ) -> Result<(), RankError> {
        let record = CompletionRecord {
            config_hash: self.record.config_hash.clone(),
            rank: self.rank,
            world_size: self.world_size,
            seconds,
            entry: entry.clone(),
        };
        put(
            storage,
            &completion_name(&entry.name),
            &serde_json::to_vec(&record).expect("record serializes"),
        )
    }

    /// Writes the rank's record as it ends (finished or interrupted).
    pub fn finish(
        &self,
        storage: &dyn Storage,
        shards: &[Shard],
        report: &Report,
        interrupted: Option<usize>,
    ) -> Result<(), RankError> {
        let record = RankRecord {
            rank: self.rank,
            world_size: self.world_size,
            rank_source: self.rank_source,
            world_source: self.world_source,
            host: sluice_io::hostname(),
            pid: std::process::id(),
            started: self.started.clone(),
            ended: sluice_io::utc_timestamp(std::time::SystemTime::now()),
            shards: shards.len(),
            bytes: shards.iter().map(|s| s.size).sum(),
            interrupted,
            report: report.clone(),
        };
        put(
            storage,
            &rank_record_name(self.rank, self.world_size),
            &to_json(&record),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(sizes: &[u64]) -> Listing {
        Listing {
            shards: sizes
                .iter()
                .enumerate()
                .map(|(i, &size)| ListedShard {
                    name: format!("s{i}.jsonl"),
                    path: format!("in/s{i}.jsonl").into(),
                    size,
                })
                .collect(),
            failed: vec![],
            skipped: vec![],
        }
    }

    fn request(rank: usize, world: Option<usize>) -> RankRequest {
        RankRequest {
            rank,
            world_size: world,
            rank_source: RankSource::Flag,
            world_source: WorldSource::Flag,
        }
    }

    #[test]
    fn a_repartition_waits_for_the_old_world_and_rewrites_the_listing() {
        let dir = tempfile::tempdir().unwrap();
        let storage = crate::output::LocalDir::new(dir.path());
        let config: Config = toml::from_str("[[stages]]\ntype = \"rules\"\nid = \"r\"\n").unwrap();
        let pin = Pin {
            config_hash: "h",
            config: &config,
            config_dir: None,
            inputs: &[],
        };
        let four = listing(&[5, 4, 3, 2, 1]);
        let old = claim(
            &storage,
            &request(1, Some(2)),
            &four,
            &pin,
            ClaimOptions::default(),
            "a",
        )
        .unwrap();
        assert_eq!(old.owned, [false, true, true, false, false]);
        // The same rank twice is refused; another rank of the same world is not.
        let twice = claim(
            &storage,
            &request(1, None),
            &four,
            &pin,
            ClaimOptions::default(),
            "b",
        );
        assert!(matches!(twice, Err(RankError::RankRunning { .. })));
        let other = claim(
            &storage,
            &request(0, None),
            &four,
            &pin,
            ClaimOptions::default(),
            "c",
        )
        .unwrap();
        assert_eq!(other.world_source, WorldSource::RunRecord);
        drop(other);
        // Another world size: refused, and with --repartition refused while rank 1 of 2 runs.
        let changed = claim(
            &storage,
            &request(0, Some(3)),
            &four,
            &pin,
            ClaimOptions::default(),
            "d",
        );
        assert!(matches!(
            changed,
            Err(RankError::WorldChanged { pinned: 2, .. })
        ));
        let repartition = ClaimOptions {
            repartition: true,
            force: false,
        };
        let busy = claim(
            &storage,
            &request(0, Some(3)),
            &four,
            &pin,
            repartition,
            "e",
        );
        assert!(
            matches!(
                busy,
                Err(RankError::OldRankRunning {
                    rank: 1,
                    world: 2,
                    ..
                })
            ),
            "{:?}",
            busy.err()
        );
        drop(old);
        // New inputs and a new world: the listing is rewritten with the record.
        let five = listing(&[5, 4, 3, 2, 1, 9]);
        let new = claim(
            &storage,
            &request(2, Some(3)),
            &five,
            &pin,
            repartition,
            "f",
        )
        .unwrap();
        assert_eq!((new.record.world_size, new.record.partition), (3, 1));
        let written: Listing = read_json(&dir.path().join(LISTING)).unwrap().unwrap();
        assert_eq!(written.summary(), five.summary());
        // A straggler of the old world is refused by the new record.
        let straggler = claim(
            &storage,
            &request(1, Some(2)),
            &four,
            &pin,
            ClaimOptions::default(),
            "g",
        );
        assert!(matches!(
            straggler,
            Err(RankError::WorldChanged { pinned: 3, .. })
        ));
    }

    #[test]
    fn create_new_creates_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.json");
        let storage = crate::output::LocalDir::new(dir.path());
        assert!(create_new(&storage, "run.json", b"first").unwrap());
        assert!(!create_new(&storage, "run.json", b"second").unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        // No temporary file is left behind either way.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn the_listing_summary_depends_on_names_and_sizes_only() {
        let shard = |name: &str, path: &str, size| ListedShard {
            name: name.into(),
            path: path.into(),
            size,
        };
        let listing = |shards| Listing {
            shards,
            failed: vec![],
            skipped: vec![],
        };
        let a = listing(vec![shard("a.jsonl", "in/a.jsonl", 3)]).summary();
        let moved = listing(vec![shard("a.jsonl", "/abs/in/a.jsonl", 3)]).summary();
        let grown = listing(vec![shard("a.jsonl", "in/a.jsonl", 4)]).summary();
        assert_eq!(a, moved);
        assert_ne!(a, grown);
        assert_eq!((a.shards, a.bytes), (1, 3));
    }
}
