//! Re-deciding a finished run under new thresholds, from its audit records alone.
//!
//! A document's fate depends on thresholds only through evidence that the audit records hold:
//! a rule's `matches` against its `min_matches`, a term stage's `distinct`, `total`, `weight`,
//! `density` and per-category counts against its `min_*`, a model's score. So every audited
//! document is **decided again** — by the very code a run decides with: each stage config's
//! `decide` and the cascade's combine rule in `sluice_core::decision`, walking the stages over the
//! recorded evidence instead of measuring — and the new output directory is written by walking
//! the old one in input order (see [`crate::outdir::ShardWalker`]) through the run's own shard
//! writer: the same lines cut into the same chunks (`sluice_io::chunk_is_full`), each chunk's
//! streams encoded as one frame. The result is byte-identical to a fresh `sluice run` with the
//! new config (`report.json` aside, whose timings differ by nature). Counters are updated by
//! taking each re-decided document's old contribution out and its new one in
//! (`ShardStats::count_verdict`, as the run counts).
//!
//! **What is supported, and why.** Exactness needs complete evidence, and the run decides how
//! complete it is:
//!
//! * `output.audit = "matched"`: every document with any evidence has a record; documents without
//!   a record had none and stay kept under any threshold. Thresholds may go up or down.
//! * `output.audit = "flagged"`: documents whose evidence stayed below every threshold were not
//!   recorded. Raising thresholds is exact (below stays below); a setting that could flag
//!   documents below the old thresholds (each stage says which: `StageKind::set`) is refused,
//!   since those documents have no record. The classifier's thresholds may be lowered in its
//!   default `mode = "escalated"` (every scored document was escalated, so it has a record);
//!   with `mode = "all"`, `review_threshold` may not go below its old value.
//! * A drop ends the cascade: a document dropped by stage *k* has no evidence from later stages.
//!   When new thresholds would let it reach a stage that never saw it, it cannot be re-decided
//!   and the command fails naming it (rerun `sluice run` instead). Likewise a document the
//!   classifier did not score (not escalated) has no score: if new text thresholds escalate it,
//!   the command fails.
//! * A document the model failed on keeps its `on_error` outcome.
//!
//! **Reviewers' decisions** (`Options::reviewed`, given by `sluice review apply`) stand over the
//! cascade's `review`: a document the new verdict sends to review goes where its reviewers
//! agreed, its record citing them (`review`), counted in `ShardStats::reviewed`. A record that
//! already cites a review (an output of `review apply`) keeps it, so re-thresholding such an
//! output does not undo what people decided.
//!
//! Settings are each stage's own (`StageKind::set`): `STAGE.min_distinct`, `STAGE.min_total`,
//! `STAGE.min_weight`, `STAGE.min_density`, `STAGE.min_per_category.CAT` (terms),
//! `STAGE.RULE.min_matches` (rules), `STAGE.min_confidence` (language), `STAGE.drop_threshold`,
//! `STAGE.review_threshold` (classifier), `STAGE.INNER.KEY` (an inner stage of an encoded
//! stage: `encoded.decoded-hazard-terms.min_distinct`). `STAGE` is a stage id, or the stage's type (`terms`,
//! `rules`, ...) when exactly one stage has that type.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sluice_core::config::AuditScope;
use sluice_core::decision::Verdict;
use sluice_core::output::{
    ChunkStreams, Encoding, LocalDir, ShardWriter, Storage, Stream, OVERSIZED_DIR,
};
use sluice_core::records::{AuditRecord, ReviewCitation};
use sluice_core::run::{ShardStatus, MANIFEST, REPORT};
use sluice_core::stage::StageStats;
use sluice_core::stages::StageConfig;
use sluice_core::stats::{Destination, Flow, ShardStats};
use sluice_core::{Config, Manifest, Report, VERSION};
use sluice_io::chunk_is_full;

use crate::outdir::{Item, OutDir};
use crate::AuditError;

/// What the command line gives.
pub struct Options {
    /// `KEY=VALUE` settings.
    pub settings: Vec<String>,
    pub output: PathBuf,
    /// Directory that relative term list and model paths of the run's config resolve against
    /// (the directory of the config file the run was made with); by default the one the run
    /// recorded in its manifest, else the working directory.
    pub config_dir: Option<PathBuf>,
    /// Reviewers' decisions on documents of review/, by shard and line (`sluice review apply`):
    /// each such document goes where its citation says, citing it in its audit record.
    pub reviewed: Decided,
}

/// Reviewers' decisions, by `(shard, line)`.
pub type Decided = std::collections::HashMap<(String, u64), ReviewCitation>;

/// A person's decision stands over the cascade's `review`: a verdict that sends the document to
/// review goes where `citation` says (a decision on a document the cascade now keeps or drops
/// by itself is moot). Returns the citation that took effect.
fn apply_review(
    verdict: &mut Verdict,
    citation: Option<&ReviewCitation>,
) -> Option<ReviewCitation> {
    let citation = citation?;
    if verdict.destination != Destination::Review
        || !matches!(citation.decision, Destination::Kept | Destination::Dropped)
    {
        return None;
    }
    verdict.destination = citation.decision;
    Some(citation.clone())
}

/// Re-decides one audited document: its verdict under the run's config (with the review it
/// already cites, for an output `review apply` wrote) and under the new one (with a new
/// decision from `decided`, else the one it cites). Counts both into `removed` and `added`, and
/// returns the new verdict, its citation and whether it gets a record.
fn redecide(
    old: &Config,
    config: &Config,
    record: &AuditRecord,
    decided: &Decided,
    counts: (&mut ShardStats, &mut ShardStats),
    (text_len, size): (u64, u64),
) -> Result<(Verdict, Option<ReviewCitation>, bool), AuditError> {
    let (removed, added) = counts;
    let mut before = replay(&old.stages, record, None)?;
    let cited = apply_review(&mut before, record.review.as_ref());
    let mut after = replay(&config.stages, record, Some(&before))?;
    let new = decided
        .get(&(record.shard.to_string(), record.line))
        .or(record.review.as_ref());
    let citation = apply_review(&mut after, new);
    // A decided document always keeps its record: the citation lives there, and a document
    // moved to dropped/ must have one for readers to find it.
    let audited = after.audited(config.output.audit) || citation.is_some();
    removed.count_verdict(&before, text_len, size, true);
    if let Some(c) = &cited {
        removed.reviewed.count(c.decision);
    }
    added.count_verdict(&after, text_len, size, audited);
    if let Some(c) = &citation {
        added.reviewed.count(c.decision);
    }
    Ok((after, citation, audited))
}

fn refuse(message: impl Into<String>) -> AuditError {
    AuditError::Rethreshold(message.into())
}

/// Applies `KEY=VALUE` settings to `config`, each by the stage it names. Returns the settings
/// that could flag documents a run with `output.audit = "flagged"` has no record of (see the
/// module doc).
pub fn apply_settings(config: &mut Config, settings: &[String]) -> Result<Vec<String>, AuditError> {
    let mut loosened = Vec::new();
    for setting in settings {
        let (key, value) = setting.split_once('=').ok_or_else(|| {
            AuditError::usage("--set", format!("`{setting}`: expected KEY=VALUE"))
        })?;
        let bad = |message: String| AuditError::usage(format!("--set {key}"), message);
        let (stage_id, rest) = key
            .split_once('.')
            .ok_or_else(|| bad("expected STAGE.KEY".into()))?;
        let index = find_stage(config, stage_id).map_err(bad)?;
        if config.stages[index].set(rest, value).map_err(bad)?.loosens {
            loosened.push(key.to_string());
        }
    }
    Ok(loosened)
}

/// The stage a setting names: by id, or by type when exactly one stage has that type.
fn find_stage(config: &Config, name: &str) -> Result<usize, String> {
    if let Some(i) = config.stages.iter().position(|s| s.id() == name) {
        return Ok(i);
    }
    let of_type: Vec<usize> = (0..config.stages.len())
        .filter(|&i| config.stages[i].kind() == name)
        .collect();
    match of_type[..] {
        [i] => Ok(i),
        [] => Err(format!(
            "no stage `{name}` in the run's config (stages: {})",
            config
                .stages
                .iter()
                .map(|s| s.id())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        _ => Err(format!(
            "several stages have type `{name}`: name one by its id"
        )),
    }
}

/// The cascade walked again over a record's evidence: stage `i`, when the verdict so far lets it
/// see the document, gets its recorded entry decided by `stages[i]`, through the run's own
/// decision code. With `before`, the verdict of the run that wrote the record: a stage that would
/// now see the document but never did (it was dropped earlier, or not escalated) has no evidence
/// to decide with, and the document cannot be re-decided.
fn replay(
    stages: &[StageConfig],
    record: &AuditRecord,
    before: Option<&Verdict>,
) -> Result<Verdict, AuditError> {
    let mut verdict = Verdict::new();
    for (i, config) in stages.iter().enumerate() {
        if !verdict.wants(config) {
            if verdict.is_dropped() {
                break;
            }
            continue;
        }
        let evidence = match record.entry(config.id()) {
            Some(entry) => {
                let mut evidence = entry.evidence.clone();
                if !config.decide(&mut evidence) {
                    return Err(AuditError::Inconsistent {
                        shard: record.shard.to_string(),
                        message: format!(
                            "line {}: the record's evidence of stage {} is of type {}, not {}",
                            record.line,
                            config.id(),
                            entry.evidence.kind(),
                            config.kind()
                        ),
                    });
                }
                Some(evidence)
            }
            None => {
                if let Some(before) = before.filter(|b| !b.reached(i)) {
                    return Err(never_saw(record, stages, before, i));
                }
                None
            }
        };
        verdict.record(i, stages, evidence);
    }
    Ok(verdict)
}

/// Why a document that would now reach stage `i` cannot be re-decided.
fn never_saw(
    record: &AuditRecord,
    stages: &[StageConfig],
    before: &Verdict,
    i: usize,
) -> AuditError {
    let place = format!("document {} ({}:{})", record.id, record.shard, record.line);
    let stage = stages[i].id();
    match before
        .evidence
        .iter()
        .find(|(_, e)| e.outcome() == sluice_core::decision::Outcome::Drop)
    {
        Some((k, _)) => refuse(format!(
            "{place} was dropped by stage {} and has no evidence from stage {stage}, which it \
             would now reach: rerun sluice run with the new config",
            stages[*k].id()
        )),
        None => refuse(format!(
            "{place} was not seen by stage {stage} (it was not escalated), and would now be: \
             there is no evidence to re-decide with; rerun sluice run with the new config"
        )),
    }
}

/// Re-decides the run in `out_dir` under `options.settings` into `options.output`.
pub fn rethreshold(out_dir: &Path, options: &Options) -> Result<Report, AuditError> {
    let started = Instant::now();
    let out = OutDir::open(out_dir)?;
    let manifest = &out.manifest;
    if let Some(e) = manifest
        .shards
        .iter()
        .find(|e| e.status == ShardStatus::Pending)
    {
        return Err(refuse(format!(
            "the run in {} is not finished (shard {} is pending)",
            out_dir.display(),
            e.name
        )));
    }
    let config_dir = options
        .config_dir
        .clone()
        .or_else(|| manifest.config_dir.clone())
        .unwrap_or_else(|| PathBuf::from("."));
    let mut old = manifest.config.clone();
    old.base_dir = config_dir.clone();
    let old_hash = old.hash().map_err(|e| {
        refuse(format!(
            "{e} (give --config-dir, the directory of the config file the run was made with: \
             relative term list and model paths resolve against it)"
        ))
    })?;
    if old_hash != manifest.config_hash {
        return Err(refuse(format!(
            "the run's config with term lists under {} hashes to {old_hash}, not {} as recorded: \
             the lists moved or changed (give --config-dir, the directory of the run's config file)",
            config_dir.display(),
            manifest.config_hash
        )));
    }
    let mut config = old.clone();
    let loosened = apply_settings(&mut config, &options.settings)?;
    if !loosened.is_empty() && config.output.audit == AuditScope::Flagged {
        return Err(refuse(format!(
            "{} lowers a threshold, but the run used output.audit = \"flagged\", so documents \
             below the old thresholds have no record to re-decide: raise thresholds only, or rerun \
             sluice run with output.audit = \"matched\" (then any threshold can be re-set)",
            loosened.join(", ")
        )));
    }
    config.build_stages()?;
    let hash = config.hash()?;

    let output = &options.output;
    if same_dir(output, out_dir) {
        return Err(AuditError::usage(
            "--output",
            "must differ from the run's directory",
        ));
    }
    if sluice_core::output::is_remote(output) {
        return rethreshold_to_url(
            &out,
            &old,
            &config,
            &hash,
            output,
            &options.reviewed,
            started,
        );
    }
    if output.is_file() {
        return Err(AuditError::usage(
            "--output",
            format!("{} is a file", output.display()),
        ));
    }
    if std::fs::read_dir(output).is_ok_and(|mut d| d.next().is_some()) {
        return Err(AuditError::usage(
            "--output",
            format!("{} is not empty", output.display()),
        ));
    }
    let existed = output.exists();
    let write_err = |e: std::io::Error| AuditError::Write {
        path: output.to_path_buf(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(output).map_err(write_err)?;
    let result = write_output(
        &out,
        &old,
        &config,
        &hash,
        &LocalDir::new(output),
        output,
        &options.reviewed,
        started,
    );
    if result.is_err() {
        // Leave nothing half-written behind: the directory was absent or empty before.
        if existed {
            for stream in Stream::ALL {
                let _ = std::fs::remove_dir_all(output.join(stream.dir()));
            }
            let _ = std::fs::remove_dir_all(output.join(OVERSIZED_DIR));
            let _ = std::fs::remove_file(output.join(MANIFEST));
        } else {
            let _ = std::fs::remove_dir_all(output);
        }
    }
    result
}

/// [`rethreshold`] into a URL in object storage: refused where a run is there already; on
/// failure the objects written are removed (none has a final name without the others: the
/// manifest is written last).
fn rethreshold_to_url(
    out: &OutDir,
    old: &Config,
    config: &Config,
    hash: &str,
    output: &Path,
    decided: &Decided,
    started: Instant,
) -> Result<Report, AuditError> {
    let storage = sluice_core::output::open_output(output)
        .map_err(|e| AuditError::usage("--output", e.to_string()))?;
    storage
        .check()
        .map_err(|e| AuditError::usage("--output", e.to_string()))?;
    for name in [MANIFEST, sluice_core::ranks::records::RUN_RECORD] {
        let there = storage.exists(name).map_err(|e| AuditError::Read {
            path: output.join(name),
            message: e.to_string(),
        })?;
        if there {
            return Err(AuditError::usage(
                "--output",
                format!("{} holds a run already ({name})", output.display()),
            ));
        }
    }
    let result = write_output(out, old, config, hash, &*storage, output, decided, started);
    if result.is_err() {
        for entry in &out.manifest.shards {
            for stream in Stream::ALL {
                let _ = storage.remove(&out.stream_name(stream.dir(), entry));
            }
            let _ = storage.remove(&out.stream_name(OVERSIZED_DIR, entry));
        }
    }
    result
}

/// Times of the steps rethreshold does: read, encode, write.
#[derive(Default)]
struct Times {
    read: Duration,
    compress: Duration,
    write: Duration,
}

/// Writes the re-decided run into the (empty) output directory or URL `output`.
#[allow(clippy::too_many_arguments)]
fn write_output(
    out: &OutDir,
    old: &Config,
    config: &Config,
    hash: &str,
    storage: &dyn Storage,
    output: &Path,
    decided: &Decided,
    started: Instant,
) -> Result<Report, AuditError> {
    let manifest = &out.manifest;
    let write_err = |path: &Path, e: &dyn std::fmt::Display| AuditError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    // One writer per output directory, as for a run.
    let _lock = storage
        .lock(sluice_io::LOCK_FILE, "sluice rethreshold")
        .map_err(|e| AuditError::usage("--output", e.to_string()))?;
    let mut times = Times::default();
    let mut shards = Vec::with_capacity(manifest.shards.len());
    for entry in &manifest.shards {
        if entry.status != ShardStatus::Done {
            shards.push(entry.clone());
            continue;
        }
        let name = entry.output_name.clone().unwrap_or_default();
        if OutDir::is_parquet(entry) {
            let stats = redecide_parquet_shard(
                out, entry, old, config, hash, decided, storage, &mut times,
            )?;
            let mut entry = entry.clone();
            entry.stats = Some(stats);
            shards.push(entry);
            continue;
        }
        let kept = out.stream_path(Stream::Kept.dir(), entry);
        let (compression, _) = sluice_io::open_written_reader(&kept, out.open_raw("kept", entry)?)
            .map_err(|e| AuditError::Read {
                path: kept.clone(),
                message: e.to_string(),
            })?;
        let encoding = Encoding {
            compression,
            level: config.compression_level(compression),
        };
        let mut writer = ShardWriter::create(storage, &name, encoding)
            .map_err(|e| write_err(&output.join(&name), &e))?;
        let stats = redecide_shard(
            out,
            entry,
            old,
            config,
            hash,
            decided,
            encoding,
            &mut writer,
            &mut times,
        )?;
        // Unparseable lines and lines too long to judge are carried over as they are, streamed
        // (either can be large); a shard has an oversized/ file only if it had such lines.
        let copy = |dir: &str| -> Result<Option<Box<dyn std::io::Read + Send>>, AuditError> {
            if dir == OVERSIZED_DIR {
                let there = out
                    .storage
                    .exists(&out.stream_name(dir, entry))
                    .map_err(|e| AuditError::Read {
                        path: out.stream_path(dir, entry),
                        message: e.to_string(),
                    })?;
                if !there {
                    return Ok(None);
                }
            }
            out.open_raw(dir, entry).map(Some)
        };
        let t = Instant::now();
        if let Some(mut file) = copy(Stream::Errors.dir())? {
            writer
                .copy(Stream::Errors, &mut file)
                .map_err(|e| write_err(&output.join(&name), &e))?;
        }
        if let Some(mut file) = copy(OVERSIZED_DIR)? {
            writer
                .copy_spill(&mut file)
                .map_err(|e| write_err(&output.join(&name), &e))?;
        }
        writer
            .finish()
            .map_err(|e| write_err(&output.join(&name), &e))?;
        times.write += t.elapsed();
        if !stats.balanced() {
            return Err(AuditError::Inconsistent {
                shard: entry.name.clone(),
                message: "re-decided counts do not add up".into(),
            });
        }
        let mut entry = entry.clone();
        entry.stats = Some(stats);
        shards.push(entry);
    }

    let new_manifest = Manifest {
        sluice_version: VERSION.to_string(),
        config_hash: hash.to_string(),
        config: config.clone(),
        config_dir: std::path::absolute(&config.base_dir).ok(),
        inputs: manifest.inputs.clone(),
        shards,
        skipped: manifest.skipped.clone(),
    };
    let report = build_report(config, &new_manifest, started, &times);
    // The report first, the manifest last: a directory with a manifest is whole.
    for (name, bytes) in [
        (
            REPORT,
            serde_json::to_vec_pretty(&report).expect("report serializes"),
        ),
        (
            MANIFEST,
            serde_json::to_vec_pretty(&new_manifest).expect("manifest serializes"),
        ),
    ] {
        let mut bytes = bytes;
        bytes.push(b'\n');
        let path = output.join(name);
        storage
            .replace(name, &bytes, None)
            .map_err(|e| write_err(&path, &e))?;
    }
    Ok(report)
}

/// One shard: every line in input order, audited documents re-decided, lines routed to their new
/// streams and cut into the run's chunks. Returns the shard's new counters.
#[allow(clippy::too_many_arguments)]
fn redecide_shard(
    out: &OutDir,
    entry: &sluice_core::run::ShardEntry,
    old: &Config,
    config: &Config,
    hash: &str,
    decided: &Decided,
    encoding: Encoding,
    writer: &mut ShardWriter<'_>,
    times: &mut Times,
) -> Result<ShardStats, AuditError> {
    let write_err = |e: &dyn std::fmt::Display| AuditError::Write {
        path: out.path.join(&entry.name),
        message: e.to_string(),
    };
    let extractor = out.extractor();
    let empty: Vec<StageStats> = config
        .stages
        .iter()
        .map(|s| StageStats::new(s.id(), s.kind()))
        .collect();
    let (mut removed, mut added) = (ShardStats::new(&empty), ShardStats::new(&empty));
    let mut streams = ChunkStreams::default();
    let mut flush = |streams: &mut ChunkStreams, times: &mut Times| -> Result<(), AuditError> {
        let t = Instant::now();
        let frames = streams.encode(encoding).map_err(|e| write_err(&e))?;
        times.compress += t.elapsed();
        let t = Instant::now();
        writer.write(&frames).map_err(|e| write_err(&e))?;
        times.write += t.elapsed();
        Ok(())
    };
    let mut walker = out.walk(entry)?;
    let (mut offset, mut in_chunk, mut lines_in_chunk) = (0u64, 0u64, 0usize);
    loop {
        let t = Instant::now();
        let item = walker.next_item()?;
        times.read += t.elapsed();
        let Some(item) = item else { break };
        // Each record says where its line was: a check that the walk is in step with the run.
        let (recorded, size) = match item {
            Item::Error(e) => (Some(("error", e.line, e.offset)), e.bytes + 1),
            Item::Document {
                raw, record: None, ..
            } => {
                streams.line(Stream::Kept, raw);
                (None, raw.len() as u64 + 1)
            }
            Item::Document {
                raw,
                record: Some(record),
                ..
            } => {
                let size = raw.len() as u64 + 1;
                let text_len = extractor
                    .extract(raw)
                    .map(|d| d.text.len() as u64)
                    .unwrap_or(0);
                let (after, citation, audited) = redecide(
                    old,
                    config,
                    &record,
                    decided,
                    (&mut removed, &mut added),
                    (text_len, size),
                )?;
                streams.line(Stream::of(after.destination), raw);
                if audited {
                    let mut new = AuditRecord::of_verdict(
                        &record.id,
                        &record.shard,
                        record.line,
                        record.offset,
                        after,
                        |i| config.stages[i].id(),
                        hash,
                    );
                    new.review = citation;
                    streams
                        .record(Stream::Audit, &new)
                        .map_err(|e| write_err(&e))?;
                }
                (Some(("audit", record.line, record.offset)), size)
            }
        };
        if let Some((kind, line, at)) = recorded.filter(|(_, _, at)| *at != offset) {
            return Err(AuditError::Inconsistent {
                shard: entry.name.clone(),
                message: format!(
                    "{kind} record of line {line} is at offset {at}, expected {offset}"
                ),
            });
        }
        offset += size;
        in_chunk += size;
        lines_in_chunk += 1;
        if chunk_is_full(in_chunk, lines_in_chunk, config.run.chunk_bytes) {
            flush(&mut streams, times)?;
            (in_chunk, lines_in_chunk) = (0, 0);
        }
    }
    flush(&mut streams, times)?;
    let mut stats = entry.stats.clone().unwrap_or_default();
    stats.merge(&added);
    stats.subtract(&removed);
    Ok(stats)
}

/// A Parquet shard: its rows walked in input order (read back from kept/dropped/review), audited
/// ones re-decided, each written to its new output through the run's own writer, which makes the
/// same bytes of the same rows whatever batches they come in (`sluice_io::WRITE_ROWS`); records
/// are cut into frames by row group, as the run cuts them. The error records are carried over.
#[allow(clippy::too_many_arguments)]
fn redecide_parquet_shard(
    out: &OutDir,
    entry: &sluice_core::run::ShardEntry,
    old: &Config,
    config: &Config,
    hash: &str,
    decided: &Decided,
    storage: &dyn Storage,
    times: &mut Times,
) -> Result<ShardStats, AuditError> {
    use crate::parquet_rows::ParquetRows;
    use sluice_core::pipeline::parquet::ParquetShardWriter;

    let inconsistent = |message: String| AuditError::Inconsistent {
        shard: entry.name.clone(),
        message,
    };
    let name = entry.output_name.clone().unwrap_or_default();
    let records_name = entry
        .records_name
        .clone()
        .ok_or_else(|| inconsistent("the manifest names no audit/errors files".into()))?;
    let write_err = |e: &dyn std::fmt::Display| AuditError::Write {
        path: out.path.join(&name),
        message: e.to_string(),
    };
    let total = entry
        .stats
        .as_ref()
        .map(|s| s.input.documents)
        .ok_or_else(|| inconsistent("the manifest has no counts for it".into()))?;
    let mut sources = [
        ParquetRows::open_in(out, &out.stream_name(Stream::Kept.dir(), entry), None)?,
        ParquetRows::open_in(out, &out.stream_name(Stream::Dropped.dir(), entry), None)?,
        ParquetRows::open_in(out, &out.stream_name(Stream::Review.dir(), entry), None)?,
    ];
    let records_compression = sluice_io::Compression::from_extension(&records_name)
        .unwrap_or(sluice_io::Compression::None);
    let encoding = Encoding {
        compression: records_compression,
        level: config.compression_level(records_compression),
    };
    let mut writer = ParquetShardWriter::create(
        storage,
        &name,
        &records_name,
        sources[0].schema(),
        config.parquet_options(),
        encoding,
    )
    .map_err(|e| write_err(&e))?;
    let fields = out.row_fields();
    let empty: Vec<StageStats> = config
        .stages
        .iter()
        .map(|s| StageStats::new(s.id(), s.kind()))
        .collect();
    let (mut removed, mut added) = (ShardStats::new(&empty), ShardStats::new(&empty));
    let mut records = out.records(entry)?.peekable();
    let mut errors = out.errors(entry)?.peekable();
    let mut line = Vec::new();
    let started = Instant::now();
    for n in 1..=total {
        if let Some(Ok(error)) = errors.peek() {
            if error.line == n {
                errors.next();
                continue;
            }
        }
        if let Some(Err(_)) = errors.peek() {
            return Err(errors.next().expect("peeked").expect_err("peeked"));
        }
        let record = match records.peek() {
            Some(Ok(r)) if r.line == n => Some(records.next().expect("peeked")?),
            Some(Ok(r)) if r.line < n => {
                return Err(inconsistent(format!(
                    "audit record for row {} is out of order",
                    r.line - 1
                )))
            }
            Some(Err(_)) => return Err(records.next().expect("peeked").expect_err("peeked")),
            _ => None,
        };
        if let Some(record) = &record {
            if record.row != Some(n - 1) {
                return Err(inconsistent(format!(
                    "the audit record of line {n} does not point at row {}",
                    n - 1
                )));
            }
        }
        let from = record.as_ref().map_or(Destination::Kept, |r| r.decision);
        let index = match from {
            Destination::Kept => 0,
            Destination::Dropped => 1,
            Destination::Review => 2,
            Destination::Errors => {
                return Err(inconsistent(format!(
                    "row {}: audit record says errors",
                    n - 1
                )))
            }
        };
        let Some((batch, row)) = sources[index].next_row()? else {
            return Err(inconsistent(format!(
                "{} ends before row {}",
                from.name(),
                n - 1
            )));
        };
        let text_len = fields
            .columns(batch)
            .document(row)
            .map(|d| d.text.len() as u64)
            .map_err(|e| inconsistent(format!("row {}: {}", n - 1, e.message)))?;
        let to = match &record {
            None => Destination::Kept,
            Some(record) => {
                let (after, citation, audited) = redecide(
                    old,
                    config,
                    record,
                    decided,
                    (&mut removed, &mut added),
                    (text_len, text_len),
                )?;
                let to = after.destination;
                if audited {
                    let mut new = AuditRecord::of_verdict(
                        &record.id,
                        &record.shard,
                        record.line,
                        record.offset,
                        after,
                        |i| config.stages[i].id(),
                        hash,
                    );
                    new.row = record.row;
                    new.row_group = record.row_group;
                    new.review = citation;
                    line.clear();
                    serde_json::to_writer(&mut line, &new).map_err(|e| write_err(&e))?;
                    line.push(b'\n');
                    writer
                        .write_records(Stream::Audit, record.row_group.unwrap_or(0), &line)
                        .map_err(|e| write_err(&e))?;
                }
                to
            }
        };
        writer
            .write_rows(Stream::of(to), &batch.slice(row, 1))
            .map_err(|e| write_err(&e))?;
    }
    // Every row of the outputs was walked; a row left over means the manifest is wrong.
    for (source, stream) in sources.iter_mut().zip(["kept", "dropped", "review"]) {
        if source.next_row()?.is_some() {
            return Err(inconsistent(format!(
                "{stream} has rows beyond the {total} the manifest counts"
            )));
        }
    }
    if records.next().is_some() || errors.next().is_some() {
        return Err(inconsistent(format!(
            "records beyond the {total} rows the manifest counts"
        )));
    }
    times.read += started.elapsed();
    let t = Instant::now();
    let mut file = out.open_raw(Stream::Errors.dir(), entry)?;
    writer
        .copy_records(Stream::Errors, &mut file)
        .map_err(|e| write_err(&e))?;
    writer.finish().map_err(|e| write_err(&e))?;
    times.write += t.elapsed();
    let mut stats = entry.stats.clone().unwrap_or_default();
    stats.merge(&added);
    stats.subtract(&removed);
    if !stats.balanced() {
        return Err(inconsistent("re-decided counts do not add up".into()));
    }
    Ok(stats)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    let text = |p: &Path| p.to_string_lossy().trim_end_matches('/').to_string();
    if sluice_core::output::is_remote(a) || sluice_core::output::is_remote(b) {
        return text(a) == text(b);
    }
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The report a fresh run would write, with this command's own throughput and timings.
fn build_report(config: &Config, manifest: &Manifest, started: Instant, times: &Times) -> Report {
    let stages: Vec<StageStats> = config
        .stages
        .iter()
        .map(|s| StageStats::new(s.id(), s.kind()))
        .collect();
    let mut processed = Flow::default();
    for entry in &manifest.shards {
        if let (ShardStatus::Done, Some(stats)) = (&entry.status, &entry.stats) {
            processed.merge(&stats.input);
        }
    }
    let wall = started.elapsed().as_secs_f64().max(1e-9);
    let mut steps = vec![
        ("read".to_string(), times.read),
        ("parse".into(), Duration::ZERO),
    ];
    for s in &config.stages {
        steps.push((format!("stage:{}", s.id()), Duration::ZERO));
    }
    steps.extend([
        ("route".to_string(), Duration::ZERO),
        ("compress".into(), times.compress),
        ("write".into(), times.write),
    ]);
    let timings = sluice_core::run::step_times(steps, processed.bytes, None);
    Report::from_manifest(manifest, stages, 0, processed, wall, 1, timings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outdir::tests::run_fixture;
    use std::collections::BTreeMap;

    /// Every file under `dir` but the reports, by relative path.
    fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let rel = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if rel != REPORT && rel != "report.html" {
                    out.insert(rel, std::fs::read(&path).unwrap());
                }
            }
        }
        out
    }

    fn terms_mut(config: &mut Config) -> &mut sluice_core::stages::terms::TermsConfig {
        config
            .stages
            .iter_mut()
            .find_map(|s| match s {
                StageConfig::Terms(t) => Some(t),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn rethresholded_output_equals_a_fresh_run() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let corpus = repo.join("fixtures/corpus");
        let tmp = tempfile::tempdir().unwrap();
        let matched = |c: &mut Config| c.output.audit = AuditScope::Matched;
        for (setting, value) in [
            ("hazard-terms.min_distinct=3", 3),
            ("terms.min_distinct=1", 1),
        ] {
            let (old, fresh, new) = (
                tmp.path().join(format!("old{value}")),
                tmp.path().join(format!("fresh{value}")),
                tmp.path().join(format!("new{value}")),
            );
            run_fixture(&corpus, &old, matched);
            run_fixture(&corpus, &fresh, |c| {
                matched(c);
                terms_mut(c).min_distinct = value;
            });
            let options = Options {
                settings: vec![setting.to_string()],
                output: new.clone(),
                config_dir: Some(repo.join("configs")),
                reviewed: Decided::new(),
            };
            let report = rethreshold(&old, &options).unwrap();
            let fresh_report: Report =
                serde_json::from_slice(&std::fs::read(fresh.join(REPORT)).unwrap()).unwrap();
            assert_eq!(report.destinations, fresh_report.destinations);
            assert_eq!(report.stages, fresh_report.stages);
            let (a, b) = (files(&new), files(&fresh));
            assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
            for (name, bytes) in &a {
                assert!(bytes == &b[name], "{setting}: {name} differs");
            }
            let old_report: Report =
                serde_json::from_slice(&std::fs::read(old.join(REPORT)).unwrap()).unwrap();
            assert_ne!(old_report.destinations, report.destinations, "{setting}");
        }
    }

    #[test]
    fn settings_name_stages_by_id_or_type_and_report_loosening() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut config = Config::from_file(&repo.join("configs/hazard-cascade.toml")).unwrap();
        let loosened = apply_settings(
            &mut config,
            &[
                "terms.min_distinct=3".into(),
                "hazard-terms.min_total=2".into(),
            ],
        )
        .unwrap();
        assert!(loosened.is_empty());
        assert_eq!(terms_mut(&mut config).min_distinct, 3);
        let loosened = apply_settings(
            &mut config,
            &[
                "keyword-rules.boilerplate.min_matches=1".into(),
                "terms.min_distinct=2".into(),
            ],
        )
        .unwrap();
        assert_eq!(loosened, ["terms.min_distinct"]);
        let err = apply_settings(&mut config, &["classifier.drop_threshold=0.5".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no stage `classifier`"), "{err}");
    }
}
