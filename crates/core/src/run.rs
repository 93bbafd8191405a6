//! A whole run: find the shards, skip those a previous run finished, filter the rest in
//! parallel, and keep `manifest.json` (per-shard status) and `report.json` (everything counted,
//! written at the end) in the output directory.
//!
//! The manifest is written whole at the start and at the end of a run. In between, each finished
//! shard appends its entry to `manifest.journal.jsonl` (one fsync'd line): rewriting the whole
//! manifest after every shard would cost O(shards²) bytes, terabytes for a run of 100,000 shards.
//! Loading applies the journal over the manifest (a torn last line, from a kill mid-append, is
//! ignored), so a killed run's finished shards are still skipped by the next one.
//!
//! Object storage has no append: a run into a URL keeps per-shard completion records instead, as
//! a run over ranks does (it runs as rank 0 of 1), and folds them into the manifest at the end
//! ([`crate::ranks::merge`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sluice_io::{discover, output_name, Compression, DiscoverOptions, Shard};

use crate::config::Config;
use crate::error::RunError;
use crate::output::{LocalDir, Storage, Stream};
use crate::pipeline::gather::GatherOptions;
use crate::pipeline::{Cascade, Permits, Progress, ShardRunner, VERSION};
use crate::stats::{process_cpu_time, Destinations, Flow, ShardStats, Timings};

pub const MANIFEST: &str = "manifest.json";
/// Entries of shards finished since `manifest.json` was last written whole.
pub const JOURNAL: &str = "manifest.journal.jsonl";
pub const REPORT: &str = "report.json";

/// Settings that come from the command line rather than the config.
#[derive(Default)]
pub struct RunOptions<'a> {
    /// Overrides `input.paths` when not empty.
    pub inputs: Vec<String>,
    /// Overrides `output.dir`.
    pub output: Option<PathBuf>,
    /// Overrides `run.threads`; 0 = one per core.
    pub threads: Option<usize>,
    /// Redo every shard, even those a previous run finished, and replace a run of another config.
    pub force: bool,
    pub progress: Option<&'a dyn Progress>,
    /// Set (to the signal's number) to stop the run: no new chunk is read, shards being filtered
    /// stop and stay pending, finished ones stay done; the run then returns
    /// [`RunError::Interrupted`]. The binary sets it on SIGINT and SIGTERM.
    pub stop: Option<&'a AtomicUsize>,
    /// Follow symbolic links to directories inside input directories (`input.follow_symlinks`
    /// or `--follow-symlinks`).
    pub follow_symlinks: bool,
    /// The command line, recorded in the output directory's lock (default `sluice run`).
    pub command: Option<String>,
    /// Run as one rank of a run spread over several processes or machines (see
    /// [`crate::ranks`]): only this rank's share of the shards, with per-shard completion
    /// records instead of `manifest.json`.
    pub rank: Option<crate::ranks::RankRequest>,
    /// With `rank`: re-pin the run to this world size (or changed inputs) once no rank of the
    /// old world runs.
    pub repartition: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShardStatus {
    Pending,
    Done,
    Failed,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShardEntry {
    pub name: String,
    pub path: PathBuf,
    pub status: ShardStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_compression: Option<String>,
    /// Name of this shard's file under each of kept/, dropped/, review/, audit/, errors/.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_name: Option<String>,
    /// Name of its files under audit/ and errors/, where not `output_name`: a Parquet shard's
    /// records are JSONL (`N.jsonl.zst`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_name: Option<String>,
    /// What the input file was when it was filtered: a later run redoes the shard if it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<InputIdentity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<ShardStats>,
    /// The record layout found in the file's first records, with `input.format = "auto"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<crate::document::DetectedLayout>,
}

impl ShardEntry {
    /// The name of this shard's file under `stream`'s directory, once it is done.
    pub fn stream_name(&self, stream: Stream) -> Option<&str> {
        match (stream, &self.records_name) {
            (Stream::Audit | Stream::Errors, Some(records)) => Some(records),
            _ => self.output_name.as_deref(),
        }
    }
}

/// What identifies an input file's content: its size and modification time (checked on resume,
/// without reading the file), and the SHA-256 of its bytes as stored, hashed while the shard was
/// read (for provenance: `sha256sum` of the file gives it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputIdentity {
    pub size: u64,
    /// Nanoseconds since the Unix epoch (absent where the platform has no modification time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// An object's ETag, as listed (objects in object storage only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

impl InputIdentity {
    /// The size and modification time of the file at `path` now.
    pub fn of(path: &Path) -> Option<InputIdentity> {
        let meta = std::fs::metadata(path).ok()?;
        let modified_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as u64);
        Some(InputIdentity {
            size: meta.len(),
            modified_ns,
            sha256: None,
            etag: None,
        })
    }

    /// What a shard is now: a local file's size and modification time, or an object's size,
    /// ETag and last-modified time as listed (no extra request).
    pub fn of_shard(shard: &Shard) -> Option<InputIdentity> {
        match &shard.remote {
            Some(object) => Some(InputIdentity {
                size: object.size,
                modified_ns: object.modified_ns,
                sha256: None,
                etag: object.etag.clone(),
            }),
            None => InputIdentity::of(&shard.path),
        }
    }

    /// Whether `now` is the same content as far as size, time (and an object's ETag) tell.
    fn unchanged(&self, now: &InputIdentity) -> bool {
        self.size == now.size && self.modified_ns == now.modified_ns && self.etag == now.etag
    }
}

/// An input entry a run passed over (hidden, not a shard name, a link not followed, ...).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SkippedInput {
    pub path: PathBuf,
    /// `hidden`, `not_a_shard_name`, `symlinked_directory`, `excluded`, ...
    pub reason: String,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub sluice_version: String,
    pub config_hash: String,
    pub config: Config,
    /// Where the config file was (absolute): its relative term list and model paths resolve
    /// against it, so `sluice rethreshold` can find them again. Absent in older manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_dir: Option<PathBuf>,
    pub inputs: Vec<String>,
    pub shards: Vec<ShardEntry>,
    /// Entries under the inputs that are not shards, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedInput>,
}

impl Manifest {
    /// The manifest at `path` (`DIR/manifest.json`) with its journal applied.
    pub fn load(path: &Path) -> Result<Option<Manifest>, RunError> {
        let dir = path.parent().unwrap_or(Path::new(""));
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_else(|| MANIFEST.into());
        Manifest::load_named(&LocalDir::new(dir), &name)
    }

    /// The manifest of an output directory or URL, with its journal applied.
    pub fn load_from(storage: &dyn Storage) -> Result<Option<Manifest>, RunError> {
        Manifest::load_named(storage, MANIFEST)
    }

    fn load_named(storage: &dyn Storage, name: &str) -> Result<Option<Manifest>, RunError> {
        let error = |name: &str, message: String| RunError::Manifest {
            path: PathBuf::from(storage.describe(name)),
            message,
        };
        let Some(stored) = storage.read(name).map_err(|e| error(name, e.to_string()))? else {
            return Ok(None);
        };
        let mut manifest: Manifest =
            serde_json::from_slice(&stored.bytes).map_err(|e| error(name, e.to_string()))?;
        let journal = match name.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/{JOURNAL}"),
            None => JOURNAL.to_string(),
        };
        if let Some(stored) = storage
            .read(&journal)
            .map_err(|e| error(&journal, e.to_string()))?
        {
            manifest.apply_journal(&stored.bytes);
        }
        let path = PathBuf::from(storage.describe(name));
        let path = path.as_path();
        // Every name read back becomes a path under the output directory: none may lead out.
        for entry in &manifest.shards {
            let names = std::iter::once(&entry.name)
                .chain(&entry.output_name)
                .chain(&entry.records_name);
            for name in names {
                sluice_io::validate_relative_name(name).map_err(|e| RunError::Manifest {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?;
            }
        }
        Ok(Some(manifest))
    }

    /// Applies journal lines (later lines win); a line that does not parse — the torn end of an
    /// append cut short by a kill — is ignored, which only means that shard is redone.
    fn apply_journal(&mut self, bytes: &[u8]) {
        let index: BTreeMap<String, usize> = self
            .shards
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name.clone(), i))
            .collect();
        for line in bytes.split(|b| *b == b'\n') {
            let Ok(entry) = serde_json::from_slice::<ShardEntry>(line) else {
                continue;
            };
            if let Some(&i) = index.get(&entry.name) {
                self.shards[i] = entry;
            }
        }
    }

    /// Writes the whole manifest and empties the journal, whose entries it now holds.
    #[cfg(test)]
    pub(crate) fn write(&self, dir: &Path) -> Result<(), RunError> {
        self.write_to(&LocalDir::new(dir))
    }

    /// [`Manifest::write`] into an output directory or URL.
    pub(crate) fn write_to(&self, storage: &dyn Storage) -> Result<(), RunError> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("manifest serializes");
        bytes.push(b'\n');
        storage.replace(MANIFEST, &bytes, None)?;
        storage.remove(JOURNAL).map_err(|e| RunError::Manifest {
            path: PathBuf::from(storage.describe(JOURNAL)),
            message: e.to_string(),
        })
    }
}

/// Appends one finished shard's entry to the journal, durably.
fn append_journal(dir: &Path, entry: &ShardEntry) -> Result<(), RunError> {
    use std::io::Write;
    let path = dir.join(JOURNAL);
    let io_error = |e: std::io::Error| RunError::Manifest {
        path: path.clone(),
        message: e.to_string(),
    };
    let mut line = serde_json::to_vec(entry).expect("manifest entry serializes");
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io_error)?;
    file.write_all(&line).map_err(io_error)?;
    file.sync_data().map_err(io_error)
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShardCounts {
    pub total: usize,
    pub done: usize,
    /// Finished by an earlier run and not redone.
    pub skipped: usize,
    pub failed: usize,
    /// Finished by an earlier run, but the input file changed since (or another file has the
    /// name): redone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Throughput {
    /// Documents and bytes filtered by this invocation (skipped shards excluded).
    pub documents: u64,
    pub bytes: u64,
    pub wall_seconds: f64,
    pub docs_per_second: f64,
    pub mb_per_second: f64,
    pub threads: usize,
}

/// `report.json`: what happened to every document of the run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub sluice_version: String,
    pub config_hash: String,
    pub shards: ShardCounts,
    /// Documents and bytes in, and per destination; in = kept + dropped + review + errors.
    pub input: Flow,
    pub destinations: Destinations,
    pub escalated: u64,
    pub audited: u64,
    pub error_kinds: BTreeMap<String, u64>,
    pub stages: Vec<crate::stage::StageStats>,
    /// Documents of review/ moved to kept or dropped by reviewers' decisions
    /// (`sluice review apply`), counted in `destinations` where they went.
    #[serde(default, skip_serializing_if = "crate::stats::Reviewed::is_empty")]
    pub reviewed: crate::stats::Reviewed,
    pub failed_shards: Vec<FailedShard>,
    /// With `input.format = "auto"`: the shards of each detected layout (see the manifest's
    /// shard entries for how many of the first records agreed).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub layouts: BTreeMap<String, Vec<String>>,
    /// Input entries that are not shards, by reason (the manifest lists them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub skipped_inputs: BTreeMap<String, u64>,
    pub throughput: Throughput,
    /// Where this invocation's time went, step by step.
    pub timings: Vec<StepTime>,
    /// A merged run's ranks: each one's share, bytes and time (`sluice merge`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranks: Vec<crate::ranks::merge::RankFigures>,
}

/// One step of the pipeline: CPU time summed over threads, the throughput of that step alone on
/// one core (processed input bytes / its CPU time), and its share of all steps' time. Steps are
/// timed by the threads doing them (busy time); when the run's threads outnumber the cores that
/// includes time spent waiting for a core, so the busy times are scaled to add up to the
/// process's measured CPU time (see [`step_times`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepTime {
    pub step: String,
    pub cpu_seconds: f64,
    pub mb_per_second: f64,
    pub share: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FailedShard {
    pub name: String,
    pub error: String,
}

impl Report {
    pub fn failed(&self) -> bool {
        self.shards.failed > 0
    }
}

/// Runs the cascade over every shard. Errors here stop the run before or outside shard work; a
/// shard that fails is recorded in the manifest and report while the others complete.
pub fn run(config: &Config, options: &RunOptions) -> Result<Report, RunError> {
    let started = Instant::now();
    if options
        .threads
        .is_some_and(|n| n > crate::config::MAX_THREADS)
    {
        return Err(RunError::Config(crate::ConfigError::Invalid {
            key: "--threads".into(),
            message: format!(
                "must be at most {} (0: one per core)",
                crate::config::MAX_THREADS
            ),
        }));
    }
    let mut cascade = Cascade::new(config)?;
    let inputs = if options.inputs.is_empty() {
        config.input.paths.clone()
    } else {
        options.inputs.clone()
    };
    if inputs.is_empty() {
        return Err(RunError::NoInput);
    }
    let output = options
        .output
        .clone()
        .or_else(|| config.output.dir.clone())
        .ok_or(RunError::NoOutput)?;
    let storage = crate::output::open_output(&output)?;
    let remote = storage.local_dir().is_none();
    // On object storage there is no append (the journal) nor rename: a one-process run keeps
    // its state as a run over ranks does, one completion record per shard, as rank 0 of 1, and
    // folds them into manifest.json and report.json when it ends.
    let implicit_rank = (remote && options.rank.is_none()).then_some(crate::ranks::RankRequest {
        rank: 0,
        world_size: Some(1),
        rank_source: crate::ranks::RankSource::Single,
        world_source: crate::ranks::WorldSource::Single,
    });
    let rank_request = options.rank.clone().or(implicit_rank.clone());
    if remote {
        // One request first: wrong credentials or a missing bucket fail before any work.
        storage.check()?;
    }
    // The run's own output directory is never an input, even inside an input directory; and it
    // cannot be an input directory itself (its kept/, manifest.json... would be read back). An
    // output URL is excluded from the inputs' listings instead.
    let canonical_output = match remote {
        true => None,
        false => std::fs::canonicalize(&output).ok(),
    };
    if let Some(out) = canonical_output {
        if let Some(input) = inputs
            .iter()
            .find(|i| std::fs::canonicalize(i).is_ok_and(|i| i == out))
        {
            return Err(RunError::OutputIsInput {
                path: output.clone(),
                input: input.clone(),
            });
        }
    }
    let discovery = discover(
        &inputs,
        &DiscoverOptions {
            follow_symlinks: options.follow_symlinks || config.input.follow_symlinks,
            exclude: vec![output.clone()],
        },
    )?;
    check_output_names(config, &discovery.shards)?;
    if !remote {
        prepare_output_dir(&output)?;
    }
    let command = options.command.as_deref().unwrap_or("sluice run");
    let skipped_inputs: Vec<SkippedInput> = discovery
        .skipped
        .iter()
        .map(|s| SkippedInput {
            path: s.path.clone(),
            reason: s.reason.code().to_string(),
            detail: s.reason.to_string(),
        })
        .collect();
    for s in skipped_inputs.iter().filter(|s| s.reason == "excluded") {
        tracing::warn!(path = %s.path.display(), "the output directory lies inside an input: it is not read as input");
    }
    // A rank locks only its own share (see `ranks`); a one-process run, the whole directory: a
    // second writer is refused, naming the first.
    let mut lock = None;
    let claim = match &rank_request {
        Some(request) => Some(crate::ranks::claim(
            &*storage,
            request,
            &crate::ranks::records::Listing::of(&discovery, skipped_inputs.clone()),
            &crate::ranks::records::Pin {
                config_hash: &cascade.config_hash,
                config,
                config_dir: std::path::absolute(&config.base_dir).ok(),
                inputs: &inputs,
            },
            crate::ranks::records::ClaimOptions {
                repartition: options.repartition,
                force: options.force,
            },
            command,
        )?),
        None => {
            let held = storage
                .lock(sluice_io::LOCK_FILE, command)
                .map_err(RunError::Locked)?;
            if let Some(holder) = held.stale() {
                tracing::warn!(%holder, "taking over the lock of a sluice that is no longer running");
            }
            crate::ranks::records::refuse_single(&*storage)?;
            lock = Some(held);
            None
        }
    };
    let _lock = lock;
    let (shards, failed_entries) = match &claim {
        Some(claim) => {
            tracing::info!(
                rank = claim.rank,
                world_size = claim.world_size,
                rank_from = claim.rank_source.variable(),
                world_size_from = claim.world_source.variable(),
                "running as one rank"
            );
            let failed = if claim.owns_failed_entries() {
                &discovery.failed[..]
            } else {
                &[]
            };
            (claim.share(discovery.shards.clone()), failed)
        }
        None => (discovery.shards.clone(), &discovery.failed[..]),
    };
    // A rank's earlier work is in its shards' completion records.
    let completed = match &claim {
        Some(claim) if !options.force => claim.completed(&*storage, &shards)?,
        _ => Vec::new(),
    };

    let previous = match claim {
        Some(_) => None,
        None => Manifest::load_from(&*storage)?,
    };
    if let Some(previous) = &previous {
        if previous.config_hash != cascade.config_hash && !options.force {
            return Err(RunError::ConfigChanged {
                path: output.clone(),
                found: previous.config_hash.clone(),
            });
        }
    }
    if let (Some(previous), true) = (&previous, options.force) {
        // Replacing an earlier run: none of its files may outlive it (another input set would
        // leave them in kept/ beside the new ones).
        remove_outputs(&*storage, previous)?;
    }
    let finished: BTreeMap<&str, &ShardEntry> = match (&previous, options.force) {
        (Some(p), false) => p.shards.iter(),
        _ => [].iter(),
    }
    .chain(&completed)
    .filter(|e| e.status == ShardStatus::Done)
    .map(|e| Ok((e, outputs_exist(&*storage, e)?)))
    .collect::<Result<Vec<_>, sluice_io::IoError>>()?
    .into_iter()
    .filter(|(_, outputs)| *outputs)
    .map(|(e, _)| (e.name.as_str(), e))
    .collect();

    let mut entries = Vec::with_capacity(shards.len() + failed_entries.len());
    let mut todo = Vec::new();
    let mut changed = Vec::new();
    for (i, shard) in shards.iter().enumerate() {
        let now = InputIdentity::of_shard(shard);
        match finished.get(shard.name.as_str()) {
            Some(done) if same_input(done, shard, now.as_ref()) => entries.push((*done).clone()),
            found => {
                if found.is_some() {
                    tracing::warn!(shard = %shard.name, "the input changed since it was filtered: redone");
                    changed.push(shard.name.clone());
                }
                todo.push(i);
                entries.push(ShardEntry {
                    name: shard.name.clone(),
                    path: shard.path.clone(),
                    status: ShardStatus::Pending,
                    error: None,
                    input_compression: None,
                    output_name: None,
                    records_name: None,
                    input: now,
                    stats: None,
                    layout: None,
                });
            }
        }
    }
    // Entries that should have been shards but cannot be opened (a dangling link): one failed
    // shard each, the others go on.
    for failed in failed_entries {
        tracing::info!(shard = %failed.name, error = %failed.error, "shard failed");
        entries.push(ShardEntry {
            name: failed.name.clone(),
            path: failed.path.clone(),
            status: ShardStatus::Failed,
            error: Some(failed.error.to_string()),
            input_compression: None,
            output_name: None,
            records_name: None,
            input: None,
            stats: None,
            layout: None,
        });
    }
    let skipped = shards.len() - todo.len();
    let manifest = Mutex::new(Manifest {
        sluice_version: VERSION.to_string(),
        config_hash: cascade.config_hash.clone(),
        config: config.clone(),
        config_dir: std::path::absolute(&config.base_dir).ok(),
        inputs: inputs.clone(),
        shards: entries,
        skipped: skipped_inputs,
    });
    if claim.is_none() {
        manifest
            .lock()
            .expect("manifest lock")
            .write_to(&*storage)?;
    }

    let threads = match options.threads.unwrap_or(config.run.threads) {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("sluice-worker-{i}"))
        .build()
        .map_err(|e| RunError::Threads(e.to_string()))?;
    if config.run.gather_documents > 0 {
        let (gathering, not) = cascade
            .start_gathering(
                GatherOptions {
                    documents: config.run.gather_documents,
                    wait: Duration::from_millis(config.run.gather_wait_ms),
                },
                threads,
            )
            .map_err(RunError::Threads)?;
        tracing::info!(stages = ?gathering, "batched stages gather their calls across chunks");
        if !not.is_empty() {
            tracing::warn!(
                stages = ?not,
                "these stages' scores depend on their batch: their calls stay per chunk, so that \
                 outputs stay byte-identical (run.gather_documents does not apply to them)"
            );
        }
    }
    let cascade = cascade;
    let permits = Permits::new(chunks_in_flight(threads, cascade.chunk_bytes));
    let runner = ShardRunner {
        cascade: &cascade,
        config,
        pool: &pool,
        permits: &permits,
        storage: &*storage,
        progress: options.progress,
        stop: options.stop,
    };
    tracing::info!(
        shards = shards.len(),
        to_do = todo.len(),
        skipped,
        threads,
        config_hash = %cascade.config_hash,
        "run starts"
    );

    // Shard workers pull shards from a shared queue; each runs one shard at a time, its chunks
    // going to the shared pool. With many shards several are in flight; with one big shard its
    // chunks alone keep every worker busy.
    let next = AtomicUsize::new(0);
    let timings = Mutex::new(Timings::new(cascade.stage_count()));
    let manifest_error: Mutex<Option<RunError>> = Mutex::new(None);
    // One shard more than threads: while a finished shard syncs its outputs to disk (tens of
    // milliseconds each), the next one is already being read and judged.
    let shard_workers = (threads + 1).min(todo.len()).max(1);
    let cpu_started = process_cpu_time();
    std::thread::scope(|scope| {
        for _ in 0..shard_workers {
            scope.spawn(|| loop {
                if stopped(options.stop).is_some() {
                    break;
                }
                let slot = next.fetch_add(1, Ordering::SeqCst);
                let Some(&index) = todo.get(slot) else { break };
                let shard = &shards[index];
                let shard_started = Instant::now();
                let layout = detect_layout_of(config, shard);
                let result = runner.run(shard);
                let mut m = manifest.lock().expect("manifest lock");
                let entry = &mut m.shards[index];
                entry.layout = layout;
                match result {
                    // Stopped part-way: the shard stays pending, and is redone by the next run.
                    Err(crate::ShardError::Interrupted) => continue,
                    Ok(done) => {
                        tracing::info!(
                            shard = %shard.name,
                            layout = entry.layout.as_ref().map_or("", |l| l.layout.as_str()),
                            documents = done.stats.input.documents,
                            dropped = done.stats.dropped.documents,
                            review = done.stats.review.documents,
                            errors = done.stats.errors.documents,
                            "shard done"
                        );
                        timings.lock().expect("timings lock").merge(&done.timings);
                        entry.status = ShardStatus::Done;
                        entry.input_compression = Some(done.input_compression.name().into());
                        entry.output_name = Some(done.output_name);
                        entry.records_name = done.records_name;
                        if let Some(input) = &mut entry.input {
                            input.sha256 = Some(done.input_sha256);
                        }
                        entry.stats = Some(done.stats);
                    }
                    Err(error) => {
                        // The run's summary lists every failed shard: logged once, at -v.
                        tracing::info!(shard = %shard.name, %error, "shard failed");
                        entry.status = ShardStatus::Failed;
                        entry.error = Some(error.to_string());
                    }
                }
                let recorded = match &claim {
                    Some(claim) if entry.status == ShardStatus::Done => claim
                        .complete(&*storage, entry, shard_started.elapsed().as_secs_f64())
                        .map_err(RunError::from),
                    Some(_) => Ok(()), // a failure goes in the rank's record
                    None => append_journal(&output, &m.shards[index]),
                };
                if let Err(e) = recorded {
                    manifest_error.lock().expect("lock").get_or_insert(e);
                }
            });
        }
    });
    let cpu = cpu_started.and_then(|start| Some(process_cpu_time()?.saturating_sub(start)));
    for (stage, calls, documents) in cascade.gatherers().calls() {
        tracing::info!(
            stage = cascade.stage_id(stage),
            calls,
            documents,
            "gathered calls"
        );
    }
    if let Some(e) = manifest_error.into_inner().expect("lock") {
        return Err(e);
    }
    let manifest = manifest.into_inner().expect("manifest lock");
    let timings = timings.into_inner().expect("timings lock");
    let mut report = build_report(&cascade, &manifest, &todo, threads, started, &timings, cpu);
    report.shards.changed = changed;
    match &claim {
        Some(claim) => claim.finish(&*storage, &shards, &report, stopped(options.stop))?,
        None => manifest.write_to(&*storage)?,
    }
    // The rank's lock is released before the fold, which takes the whole output's.
    drop(claim);
    if let Some(signal) = stopped(options.stop) {
        let done = manifest
            .shards
            .iter()
            .filter(|e| e.status == ShardStatus::Done)
            .count();
        return Err(RunError::Interrupted {
            signal,
            done,
            pending: manifest.shards.len() - done,
            path: output,
        });
    }
    if implicit_rank.is_some() {
        crate::ranks::merge(&*storage, command)?;
    } else if options.rank.is_none() {
        let mut bytes = serde_json::to_vec_pretty(&report).expect("report serializes");
        bytes.push(b'\n');
        storage.replace(REPORT, &bytes, None)?;
    }
    Ok(report)
}

/// The signal that stopped the run, if one did.
pub fn stopped(stop: Option<&AtomicUsize>) -> Option<usize> {
    stop.map(|s| s.load(Ordering::SeqCst)).filter(|&s| s != 0)
}

/// Input bytes of all chunks in flight at once, whatever the thread count: with the chunks'
/// outputs and buffers, peak memory stays around 5× this (measured 672 MB at 16 threads before
/// the cap, when 34 chunks were allowed).
pub const IN_FLIGHT_BYTES: usize = 96 << 20;

/// Two chunks per worker (one being judged, one read ahead), plus two, within
/// [`IN_FLIGHT_BYTES`], and never fewer than 4.
fn chunks_in_flight(threads: usize, chunk_bytes: usize) -> usize {
    (2 * threads + 2).min(IN_FLIGHT_BYTES / chunk_bytes).max(4)
}

impl Report {
    /// The report of an output directory: totals over the manifest's finished shards (those
    /// `skipped` were finished by an earlier run), with `processed` — the input this invocation
    /// handled — timed by `wall`, `threads` and `timings`. `stages` are the cascade's empty
    /// counters.
    pub fn from_manifest(
        manifest: &Manifest,
        stages: Vec<crate::stage::StageStats>,
        skipped: usize,
        processed: Flow,
        wall: f64,
        threads: usize,
        timings: Vec<StepTime>,
    ) -> Report {
        let mut total = ShardStats::new(&stages);
        let mut failed_shards = Vec::new();
        let mut done = 0;
        for entry in &manifest.shards {
            match (&entry.status, &entry.stats) {
                (ShardStatus::Done, Some(stats)) => {
                    done += 1;
                    total.merge(stats);
                }
                (ShardStatus::Failed, _) => failed_shards.push(FailedShard {
                    name: entry.name.clone(),
                    error: entry.error.clone().unwrap_or_default(),
                }),
                _ => {}
            }
        }
        Report {
            sluice_version: VERSION.to_string(),
            config_hash: manifest.config_hash.clone(),
            shards: ShardCounts {
                total: manifest.shards.len(),
                done: done - skipped,
                skipped,
                failed: failed_shards.len(),
                changed: Vec::new(),
            },
            input: total.input,
            destinations: total.destinations(),
            escalated: total.escalated,
            audited: total.audited,
            error_kinds: total.error_kinds,
            stages: total.stages,
            reviewed: total.reviewed,
            failed_shards,
            layouts: manifest
                .shards
                .iter()
                .fold(BTreeMap::new(), |mut m, entry| {
                    if let Some(found) = &entry.layout {
                        m.entry(found.layout.clone())
                            .or_insert_with(Vec::new)
                            .push(entry.name.clone());
                    }
                    m
                }),
            skipped_inputs: manifest.skipped.iter().fold(BTreeMap::new(), |mut m, s| {
                *m.entry(s.reason.clone()).or_default() += 1;
                m
            }),
            throughput: Throughput {
                documents: processed.documents,
                bytes: processed.bytes,
                wall_seconds: wall,
                docs_per_second: processed.documents as f64 / wall,
                mb_per_second: processed.bytes as f64 / 1e6 / wall,
                threads,
            },
            timings,
            ranks: Vec::new(),
        }
    }
}

/// The layout of a local JSONL shard's first records, when the config reads `input.format =
/// "auto"` (each record by its own fields: this says what the file mostly is), logged.
fn detect_layout_of(config: &Config, shard: &Shard) -> Option<crate::document::DetectedLayout> {
    if config.input.format != Some(crate::document::InputFormat::Auto) || shard.remote.is_some() {
        return None;
    }
    let found = crate::document::detect_file_layout(&shard.path)?;
    tracing::info!(
        shard = %shard.name,
        layout = %found.layout,
        agreeing = found.agreeing,
        looked_at = found.looked_at,
        "layout detected"
    );
    Some(found)
}

/// Each step's CPU time with its share of the total and the MB/s of `bytes` it amounts to.
/// `steps` are busy times; with `cpu`, the process's CPU time over the same work, each is scaled
/// by `cpu / sum(steps)`, which keeps the shares and makes the seconds add up to what the
/// process really used (busy time overstates CPU time when threads wait for a core).
pub fn step_times(
    steps: Vec<(String, Duration)>,
    bytes: u64,
    cpu: Option<Duration>,
) -> Vec<StepTime> {
    let busy: f64 = steps.iter().map(|(_, t)| t.as_secs_f64()).sum();
    let scale = match cpu {
        Some(cpu) if busy > 0.0 && cpu > Duration::ZERO => cpu.as_secs_f64() / busy,
        _ => 1.0,
    };
    let total_cpu = busy * scale;
    steps
        .into_iter()
        .map(|(step, time)| {
            let seconds = time.as_secs_f64() * scale;
            StepTime {
                step,
                cpu_seconds: seconds,
                mb_per_second: if seconds > 0.0 {
                    bytes as f64 / 1e6 / seconds
                } else {
                    0.0
                },
                share: if total_cpu > 0.0 {
                    seconds / total_cpu
                } else {
                    0.0
                },
            }
        })
        .collect()
}

fn build_report(
    cascade: &Cascade,
    manifest: &Manifest,
    todo: &[usize],
    threads: usize,
    started: Instant,
    timings: &Timings,
    cpu: Option<Duration>,
) -> Report {
    let skipped = manifest.shards.len() - todo.len();
    let mut processed = Flow::default();
    for &i in todo {
        if let Some(stats) = &manifest.shards[i].stats {
            processed.merge(&stats.input);
        }
    }
    let wall = started.elapsed().as_secs_f64().max(1e-9);
    let mut steps = vec![
        ("read".to_string(), timings.read),
        ("parse".into(), timings.parse),
    ];
    for (i, time) in timings.stages.iter().enumerate() {
        steps.push((format!("stage:{}", cascade.stage_id(i)), *time));
    }
    steps.extend([
        ("route".to_string(), timings.route),
        ("compress".into(), timings.compress),
        ("write".into(), timings.write),
    ]);
    let step_times = step_times(steps, processed.bytes, cpu);
    Report::from_manifest(
        manifest,
        cascade.stage_stats(),
        skipped,
        processed,
        wall,
        threads,
        step_times,
    )
}

/// Two shards must not write to the same output files (`a.jsonl` and `a.jsonl.gz` with
/// `compression = "none"`, say). Compression is guessed from the extension here; the run itself
/// trusts magic bytes.
fn check_output_names(config: &Config, shards: &[Shard]) -> Result<(), RunError> {
    let mut seen = std::collections::BTreeSet::new();
    for shard in shards {
        let guessed = guess_compression(&shard.name);
        let name = if sluice_io::is_parquet_output(&shard.name) {
            shard.name.clone()
        } else {
            output_name(&shard.name, config.output_compression(guessed))
        };
        if !seen.insert(name.clone()) {
            return Err(RunError::DuplicateShardName { name });
        }
    }
    Ok(())
}

fn guess_compression(name: &str) -> Compression {
    name.rfind('.')
        .and_then(|dot| Compression::from_extension(&name[dot..]))
        .unwrap_or(Compression::None)
}

fn prepare_output_dir(output: &Path) -> Result<(), RunError> {
    if output.exists() && !output.is_dir() {
        return Err(RunError::OutputIsFile {
            path: output.to_path_buf(),
        });
    }
    for stream in Stream::ALL {
        let path = output.join(stream.dir());
        std::fs::create_dir_all(&path).map_err(|source| {
            if output.is_file() {
                RunError::OutputIsFile {
                    path: output.to_path_buf(),
                }
            } else {
                RunError::CreateOutput { path, source }
            }
        })?;
    }
    Ok(())
}

/// Whether a finished shard's entry is for the file `shard` is now: the same file (path) with
/// the same size and modification time. Entries of older manifests record no identity: the path
/// decides.
fn same_input(entry: &ShardEntry, shard: &Shard, now: Option<&InputIdentity>) -> bool {
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    canonical(&entry.path) == canonical(&shard.path)
        && match (&entry.input, now) {
            (Some(then), Some(now)) => then.unchanged(now),
            (None, _) => true,
            (Some(_), None) => false,
        }
}

/// Removes every output file an earlier run's manifest lists (and its journal).
fn remove_outputs(storage: &dyn Storage, previous: &Manifest) -> Result<(), RunError> {
    for entry in &previous.shards {
        let files = Stream::ALL
            .iter()
            .filter_map(|s| Some((s.dir(), entry.stream_name(*s)?)))
            .chain(
                entry
                    .output_name
                    .as_deref()
                    .map(|name| (crate::output::OVERSIZED_DIR, name)),
            );
        for (dir, name) in files {
            storage.remove(&format!("{dir}/{name}"))?;
        }
    }
    Ok(())
}

/// Whether all five outputs of a finished shard are there (a HEAD each on object storage).
pub(crate) fn outputs_exist(
    storage: &dyn Storage,
    entry: &ShardEntry,
) -> Result<bool, sluice_io::IoError> {
    for stream in Stream::ALL {
        let Some(name) = entry.stream_name(stream) else {
            return Ok(false);
        };
        if !storage.exists(&format!("{}/{name}", stream.dir()))? {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, status: ShardStatus) -> ShardEntry {
        ShardEntry {
            name: name.into(),
            path: PathBuf::from(name),
            status,
            error: None,
            input_compression: None,
            output_name: None,
            records_name: None,
            input: None,
            stats: None,
            layout: None,
        }
    }

    #[test]
    fn the_journal_applies_over_the_manifest_and_a_torn_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let config: Config = toml::from_str("[[stages]]\ntype = \"rules\"\nid = \"r\"\n").unwrap();
        let manifest = Manifest {
            sluice_version: VERSION.into(),
            config_hash: "h".into(),
            config,
            config_dir: None,
            inputs: vec![],
            shards: ["a", "b", "c"]
                .iter()
                .map(|n| entry(n, ShardStatus::Pending))
                .collect(),
            skipped: vec![],
        };
        manifest.write(dir.path()).unwrap();
        append_journal(dir.path(), &entry("a", ShardStatus::Done)).unwrap();
        append_journal(dir.path(), &entry("c", ShardStatus::Failed)).unwrap();
        // A kill in the middle of the next append leaves half a line.
        let torn = serde_json::to_string(&entry("b", ShardStatus::Done)).unwrap();
        let mut journal = std::fs::read(dir.path().join(JOURNAL)).unwrap();
        journal.extend_from_slice(&torn.as_bytes()[..torn.len() / 2]);
        std::fs::write(dir.path().join(JOURNAL), journal).unwrap();

        let loaded = Manifest::load(&dir.path().join(MANIFEST)).unwrap().unwrap();
        let status: Vec<ShardStatus> = loaded.shards.iter().map(|e| e.status).collect();
        assert_eq!(
            status,
            [ShardStatus::Done, ShardStatus::Pending, ShardStatus::Failed]
        );
        // Writing the whole manifest absorbs and removes the journal.
        loaded.write(dir.path()).unwrap();
        assert!(!dir.path().join(JOURNAL).exists());
        let reloaded = Manifest::load(&dir.path().join(MANIFEST)).unwrap().unwrap();
        assert_eq!(reloaded.shards[0].status, ShardStatus::Done);
    }

    #[test]
    fn step_times_are_scaled_to_the_measured_cpu_time_with_shares_kept() {
        let steps = || {
            vec![
                ("read".to_string(), Duration::from_millis(500)),
                ("compress".to_string(), Duration::from_millis(1500)),
            ]
        };
        let busy = step_times(steps(), 200_000_000, None);
        assert_eq!(busy[1].cpu_seconds, 1.5);
        assert_eq!(busy[1].mb_per_second, 200.0 / 1.5);
        // Threads waited for cores: 2 s busy, 1 s of CPU.
        let cpu = step_times(steps(), 200_000_000, Some(Duration::from_secs(1)));
        assert_eq!(cpu[0].cpu_seconds, 0.25);
        assert_eq!(cpu[1].cpu_seconds, 0.75);
        assert_eq!(cpu[1].mb_per_second, 200.0 / 0.75);
        for (a, b) in busy.iter().zip(&cpu) {
            assert_eq!(a.share, b.share);
        }
        // No CPU figure, or none measured: busy times as they are.
        let zero = step_times(steps(), 1, Some(Duration::ZERO));
        assert_eq!(zero[0].cpu_seconds, 0.5);
    }

    #[test]
    fn chunks_in_flight_is_bounded_whatever_the_thread_count() {
        assert_eq!(chunks_in_flight(1, 4 << 20), 4);
        assert_eq!(chunks_in_flight(2, 4 << 20), 6);
        assert_eq!(chunks_in_flight(16, 4 << 20), 24);
        assert_eq!(chunks_in_flight(256, 4 << 20), 24);
        assert_eq!(chunks_in_flight(64, 64 << 20), 4);
    }
}
