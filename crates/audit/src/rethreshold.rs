//! Re-deciding a finished run under new thresholds, from its audit records alone.
//!
//! A document's fate depends on thresholds only through evidence that the audit records hold:
//! a rule's `matches` against its `min_matches`, a term stage's `distinct`, `total`, `weight`,
//! `density` and per-category counts against its `min_*`. So every audited document can be
//! re-decided without running a stage, and the new output directory is written by walking the
//! old one in input order (see [`crate::outdir::ShardWalker`]): the same lines cut into the same
//! chunks (`run.chunk_bytes` over the same line lengths, at most `MAX_CHUNK_LINES` lines, as
//! `sluice_io::LineChunker` cuts them),
//! each chunk's streams compressed as one frame. The result is byte-identical to a fresh
//! `sluice run` with the new config (`report.json` aside, whose timings differ by nature).
//!
//! **What is supported, and why.** Exactness needs complete evidence, and the run decides how
//! complete it is:
//!
//! * `output.audit = "matched"`: every document with any evidence has a record; documents without
//!   a record had none and stay kept under any threshold. Thresholds may go up or down.
//! * `output.audit = "flagged"`: documents whose evidence stayed below every threshold were not
//!   recorded. Raising thresholds is exact (below stays below); lowering a text stage's threshold
//!   is refused, since the documents it would catch have no record. The classifier's thresholds
//!   may be lowered in its default `mode = "escalated"` (every scored document was escalated, so
//!   it has a record); with `mode = "all"`, `review_threshold` may not go below its old value.
//! * A drop ends the cascade: a document dropped by stage *k* has no evidence from later stages.
//!   When new thresholds would let it past stage *k*, it cannot be re-decided and the command
//!   fails naming it (rerun `sluice run` instead). Likewise a document the classifier did not
//!   score (not escalated) has no score: if new text thresholds escalate it, the command fails.
//! * The classifier is re-decided from its recorded aggregate score (the per-window scores are
//!   recorded too, for the reader): `score >= drop_threshold` drops, `score >= review_threshold`
//!   sends to review, as in the stage itself. A document the model failed on keeps its
//!   `on_error` outcome.
//!
//! Settings: `STAGE.min_distinct`, `STAGE.min_total`, `STAGE.min_weight`, `STAGE.min_density`,
//! `STAGE.min_per_category.CAT` (terms stages), `STAGE.RULE.min_matches` (rules stages),
//! `STAGE.drop_threshold`, `STAGE.review_threshold` (the classifier). `STAGE` is a stage id, or
//! the stage's type (`classifier`, `terms`, `rules`) when exactly one stage has that type.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sluice_core::config::{AuditScope, StageConfig};
use sluice_core::pipeline::{OUTPUT_DIRS, OVERSIZED_DIR};
use sluice_core::run::{ShardStatus, MANIFEST, REPORT};
use sluice_core::stage::{KeyCounts, Outcome, Reason, StageStats};
use sluice_core::stages::{ClassifierConfig, ClassifierMode};
use sluice_core::stats::{Destination, Flow, ShardStats};
use sluice_core::{Config, Manifest, Report, VERSION};
use sluice_io::{
    compress_frame, empty_stream, open_shard, write_atomic, AtomicFile, MAX_CHUNK_LINES,
};

use crate::outdir::{Item, OutDir};
use crate::record::{AuditRecord, StageEvidence, StageRecord, UNCATEGORIZED};
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
}

fn refuse(message: impl Into<String>) -> AuditError {
    AuditError::Rethreshold(message.into())
}

/// Applies `KEY=VALUE` settings to `config`. Returns the settings that lower a threshold below
/// what a run with `output.audit = "flagged"` recorded evidence for (see the module doc).
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
        let stage = &mut config.stages[index];
        let count = |v: &str, min: usize| -> Result<usize, AuditError> {
            v.parse::<usize>()
                .ok()
                .filter(|n| *n >= min)
                .ok_or_else(|| bad(format!("`{v}` is not an integer of at least {min}")))
        };
        let real = |v: &str| -> Result<f64, AuditError> {
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| bad(format!("`{v}` is not a number of at least 0")))
        };
        let loosens;
        match stage {
            StageConfig::Terms(t) => match rest {
                "min_distinct" => {
                    let n = count(value, 1)?;
                    loosens = n < t.min_distinct;
                    t.min_distinct = n;
                }
                "min_total" => {
                    let n = count(value, 1)?;
                    loosens = n < t.min_total;
                    t.min_total = n;
                }
                "min_weight" => {
                    let x = real(value)?;
                    loosens = x < t.min_weight;
                    t.min_weight = x;
                }
                "min_density" => {
                    let x = real(value)?;
                    loosens = x < t.min_density;
                    t.min_density = x;
                }
                other => match other.strip_prefix("min_per_category.") {
                    Some(category) if !category.is_empty() => {
                        let n = count(value, 0)?;
                        loosens = n < t.min_per_category.get(category).copied().unwrap_or(0);
                        t.min_per_category.insert(category.to_string(), n);
                    }
                    _ => return Err(bad(format!(
                        "terms stage `{}` has no threshold `{other}` (min_distinct, min_total, min_weight, min_density, min_per_category.CAT)",
                        t.id
                    ))),
                },
            },
            StageConfig::Rules(r) => {
                let rule_id = rest.strip_suffix(".min_matches").ok_or_else(|| {
                    bad(format!(
                        "rules stage `{}`: only RULE_ID.min_matches can be set",
                        r.id
                    ))
                })?;
                let stage_id = r.id.clone();
                let rule = r
                    .rules
                    .iter_mut()
                    .find(|x| x.id == rule_id)
                    .ok_or_else(|| bad(format!("no rule `{rule_id}` in stage `{stage_id}`")))?;
                let n = count(value, 1)?;
                loosens = n < rule.min_matches;
                rule.min_matches = n;
            }
            StageConfig::Classifier(c) => {
                let x = real(value)?;
                let old_review = c.review_threshold;
                match rest {
                    "drop_threshold" => c.drop_threshold = x,
                    "review_threshold" => c.review_threshold = x,
                    other => {
                        return Err(bad(format!(
                            "classifier stage `{}` has no threshold `{other}` (drop_threshold, review_threshold)",
                            c.id
                        )))
                    }
                }
                // Unrecorded scored documents (mode = "all") scored below the old review
                // threshold; they stay unflagged as long as neither threshold goes below it.
                loosens = c.mode == ClassifierMode::All
                    && c.review_threshold.min(c.drop_threshold) < old_review;
            }
        }
        if loosens {
            loosened.push(key.to_string());
        }
    }
    for stage in &config.stages {
        if let StageConfig::Classifier(c) = stage {
            if !(0.0..=1.0).contains(&c.review_threshold) || c.review_threshold > c.drop_threshold {
                return Err(AuditError::usage(
                    format!("--set {}.review_threshold", c.id),
                    format!(
                        "review_threshold ({}) must be between 0 and 1 and at most drop_threshold ({})",
                        c.review_threshold, c.drop_threshold
                    ),
                ));
            }
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

/// A document re-decided.
struct Decided {
    record: AuditRecord,
    audited: bool,
}

/// How a text stage re-decides its recorded evidence.
fn redecide_stage(config: &StageConfig, entry: &StageRecord) -> (StageRecord, Vec<Reason>) {
    let mut entry = entry.clone();
    let mut reasons = Vec::new();
    match (config, &mut entry.evidence) {
        (StageConfig::Rules(c), StageEvidence::Rules(e)) => {
            let mut outcome = Outcome::Pass;
            for hit in &mut e.rules {
                if let Some(rule) = c.rules.iter().find(|r| r.id == hit.id) {
                    hit.min_matches = rule.min_matches;
                }
                hit.fired = hit.matches >= hit.min_matches;
                if hit.fired {
                    let action = Outcome::from(hit.action);
                    outcome = outcome.max(action);
                    reasons.push(Reason {
                        stage: entry.stage.clone(),
                        rule: Some(hit.id.clone()),
                        action,
                    });
                }
            }
            entry.outcome = outcome;
        }
        (StageConfig::Terms(c), StageEvidence::Terms(e)) => {
            let t = c.thresholds(e.distinct, e.total, e.weight, e.density, &e.categories);
            let fired = t.iter().all(|x| x.crossed);
            e.thresholds = t;
            entry.outcome = if fired {
                Outcome::from(c.action)
            } else {
                Outcome::Pass
            };
            if fired {
                reasons.push(Reason {
                    stage: entry.stage.clone(),
                    rule: None,
                    action: entry.outcome,
                });
            }
        }
        _ => {}
    }
    (entry, reasons)
}

/// Index of the stage that dropped the document, if one did.
fn drop_stage(record: &AuditRecord, stages: &[StageConfig]) -> Option<usize> {
    let entry = record.stages.iter().find(|s| s.outcome == Outcome::Drop)?;
    stages.iter().position(|s| s.id() == entry.stage)
}

/// The classifier's entry under new thresholds, from its recorded score.
fn redecide_classifier(c: &ClassifierConfig, entry: &StageRecord) -> (StageRecord, Vec<Reason>) {
    let mut entry = entry.clone();
    if let StageEvidence::Classifier(e) = &mut entry.evidence {
        e.drop_threshold = c.drop_threshold;
        e.review_threshold = c.review_threshold;
        // Without a score the model failed, and `on_error` decided: no threshold matters.
        if let (Some(score), None) = (e.score, &e.error) {
            let score = f64::from(score);
            entry.outcome = if score >= c.drop_threshold {
                Outcome::Drop
            } else if score >= c.review_threshold {
                Outcome::Review
            } else {
                Outcome::Pass
            };
        }
    }
    let reasons = if entry.outcome == Outcome::Pass {
        Vec::new()
    } else {
        vec![Reason {
            stage: entry.stage.clone(),
            rule: None,
            action: entry.outcome,
        }]
    };
    (entry, reasons)
}

fn redecide(
    record: &AuditRecord,
    config: &Config,
    scope: AuditScope,
    config_hash: &str,
) -> Result<Decided, AuditError> {
    let stages = &config.stages;
    let old_drop = drop_stage(record, stages);
    let mut entries = Vec::new();
    let mut reasons = Vec::new();
    let mut escalated = false;
    let mut dropped = false;
    let mut classified = None;
    let place = || format!("document {} ({}:{})", record.id, record.shard, record.line);
    for (i, stage) in stages.iter().enumerate() {
        if let StageConfig::Classifier(c) = stage {
            // As in the pipeline: it scores what was not dropped, escalated or all.
            if !(escalated || c.mode == ClassifierMode::All) {
                break;
            }
            let Some(entry) = record.stages.iter().find(|s| s.stage == stage.id()) else {
                return Err(refuse(format!(
                    "{} was not scored by classifier {} (it was {}), and would now be: there is \
                     no score to re-decide; rerun sluice run with the new config",
                    place(),
                    stage.id(),
                    if old_drop.is_some() {
                        "dropped before it"
                    } else {
                        "not escalated"
                    }
                )));
            };
            let (entry, why) = redecide_classifier(c, entry);
            classified = Some(entry.outcome);
            reasons.extend(why);
            entries.push(entry);
            break;
        }
        if let Some(k) = old_drop.filter(|k| i > *k) {
            return Err(refuse(format!(
                "{} was dropped by stage {} and has no evidence from stage {}, which it would now \
                 reach: rerun sluice run with the new config",
                place(),
                stages[k].id(),
                stage.id()
            )));
        }
        let Some(entry) = record.stages.iter().find(|s| s.stage == stage.id()) else {
            continue;
        };
        let (entry, why) = redecide_stage(stage, entry);
        escalated |= entry.outcome == Outcome::Escalate;
        dropped = entry.outcome == Outcome::Drop;
        reasons.extend(why);
        entries.push(entry);
        if dropped {
            break;
        }
    }
    let audited = match scope {
        AuditScope::Flagged => entries.iter().any(|e| e.outcome != Outcome::Pass),
        AuditScope::Matched => !entries.is_empty(),
    };
    let decision = match classified {
        Some(Outcome::Drop) => Destination::Dropped,
        Some(Outcome::Review) => Destination::Review,
        Some(_) => Destination::Kept,
        None if dropped => Destination::Dropped,
        None if escalated => Destination::Review,
        None => Destination::Kept,
    };
    Ok(Decided {
        record: AuditRecord {
            id: record.id.clone(),
            shard: record.shard.clone(),
            line: record.line,
            offset: record.offset,
            decision,
            escalated,
            reasons,
            stages: entries,
            config_hash: config_hash.to_string(),
            sluice_version: VERSION.to_string(),
        },
        audited,
    })
}

/// Adds (`neg = false`) or removes a document's contribution to a shard's counters: the stages
/// it reached, its evidence's per-key counts, its destination. Wrapping arithmetic: removals and
/// additions balance out over a shard.
fn contribute(
    stats: &mut ShardStats,
    record: &AuditRecord,
    config: &Config,
    text_len: u64,
    size: u64,
    audited: bool,
    neg: bool,
) {
    let add = |v: &mut u64, n: u64| {
        *v = if neg {
            v.wrapping_sub(n)
        } else {
            v.wrapping_add(n)
        }
    };
    // Every text stage up to a drop saw the document; the classifier only what it scored.
    let text_stages = config
        .stages
        .iter()
        .take_while(|s| !matches!(s, StageConfig::Classifier(_)))
        .count();
    let reached =
        drop_stage(record, &config.stages).map_or(text_stages, |k| (k + 1).min(text_stages));
    for s in stats.stages.iter_mut().take(reached) {
        add(&mut s.evaluated, 1);
        add(&mut s.text_bytes, text_len);
    }
    for entry in &record.stages {
        let Some(i) = config.stages.iter().position(|s| s.id() == entry.stage) else {
            continue;
        };
        let s: &mut StageStats = &mut stats.stages[i];
        add(&mut s.matched, 1);
        match entry.outcome {
            Outcome::Pass => add(&mut s.passed, 1),
            Outcome::Tag => add(&mut s.tagged, 1),
            Outcome::Escalate => add(&mut s.escalated, 1),
            Outcome::Review => add(&mut s.reviewed, 1),
            Outcome::Drop => add(&mut s.dropped, 1),
        }
        let key = |map: &mut BTreeMap<String, KeyCounts>, k: &str, hits: u64, outcome: Outcome| {
            let c = map.entry(k.to_string()).or_default();
            add(&mut c.docs, 1);
            add(&mut c.hits, hits);
            match outcome {
                Outcome::Drop => add(&mut c.dropped, 1),
                Outcome::Escalate | Outcome::Review => add(&mut c.escalated, 1),
                Outcome::Tag => add(&mut c.tagged, 1),
                Outcome::Pass => {}
            }
        };
        match &entry.evidence {
            StageEvidence::Rules(r) => {
                for hit in &r.rules {
                    let outcome = if hit.fired {
                        Outcome::from(hit.action)
                    } else {
                        Outcome::Pass
                    };
                    key(&mut s.rules, &hit.id, hit.matches as u64, outcome);
                }
            }
            StageEvidence::Terms(t) => {
                let mut per_category: BTreeMap<&str, u64> = BTreeMap::new();
                for c in &t.terms {
                    key(&mut s.terms, &c.term, c.count as u64, entry.outcome);
                    *per_category
                        .entry(c.category.as_deref().unwrap_or(UNCATEGORIZED))
                        .or_default() += c.count as u64;
                }
                for (category, hits) in per_category {
                    key(&mut s.categories, category, hits, entry.outcome);
                }
            }
            StageEvidence::Classifier(c) => {
                add(&mut s.evaluated, 1);
                add(&mut s.text_bytes, text_len);
                add(&mut s.tokens, c.tokens as u64);
                add(&mut s.failed, u64::from(c.error.is_some()));
            }
        }
    }
    let flow = stats.flow_mut(record.decision);
    add(&mut flow.documents, 1);
    add(&mut flow.bytes, size);
    add(&mut stats.escalated, u64::from(record.escalated));
    add(&mut stats.audited, u64::from(audited));
}

/// Keys no document counts any more are gone, as in a run that never saw them.
fn prune(stats: &mut ShardStats) {
    for s in &mut stats.stages {
        for map in [&mut s.rules, &mut s.terms, &mut s.categories] {
            map.retain(|_, c| c.docs != 0);
        }
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
    let result = write_output(&out, &old, &config, &hash, output, started);
    if result.is_err() {
        // Leave nothing half-written behind: the directory was absent or empty before.
        if existed {
            for dir in OUTPUT_DIRS {
                let _ = std::fs::remove_dir_all(output.join(dir));
            }
            let _ = std::fs::remove_file(output.join(MANIFEST));
        } else {
            let _ = std::fs::remove_dir_all(output);
        }
    }
    result
}

/// Writes the re-decided run into the (empty) `output` directory.
fn write_output(
    out: &OutDir,
    old: &Config,
    config: &Config,
    hash: &str,
    output: &Path,
    started: Instant,
) -> Result<Report, AuditError> {
    let manifest = &out.manifest;
    let write_err = |path: &Path, e: &dyn std::fmt::Display| AuditError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    for dir in OUTPUT_DIRS {
        let path = output.join(dir);
        std::fs::create_dir_all(&path).map_err(|e| write_err(&path, &e))?;
    }

    let extractor = out.extractor();
    let chunk_bytes = config.run.chunk_bytes as u64;
    let mut times = [Duration::ZERO; 3]; // read, compress, write
    let mut shards = Vec::with_capacity(manifest.shards.len());
    for entry in &manifest.shards {
        if entry.status != ShardStatus::Done {
            shards.push(entry.clone());
            continue;
        }
        let name = entry.output_name.clone().unwrap_or_default();
        let (compression, _) =
            open_shard(&out.stream_path("kept", entry)).map_err(|e| AuditError::Read {
                path: out.stream_path("kept", entry),
                message: e.to_string(),
            })?;
        let level = config.compression_level(compression);
        let mut stats = entry.stats.clone().unwrap_or_default();
        let mut files = Vec::with_capacity(4);
        for dir in &OUTPUT_DIRS[..4] {
            let path = output.join(dir).join(&name);
            files.push(AtomicFile::create(&path).map_err(|e| write_err(&path, &e))?);
        }
        let mut written = [false; 4];
        let mut buffers: [Vec<u8>; 4] = Default::default();
        let mut frame = Vec::new();
        let mut flush = |buffers: &mut [Vec<u8>; 4],
                         files: &mut Vec<AtomicFile>,
                         times: &mut [Duration; 3]|
         -> Result<(), AuditError> {
            for (i, data) in buffers.iter_mut().enumerate() {
                if data.is_empty() {
                    continue;
                }
                let t = Instant::now();
                frame.clear();
                compress_frame(data, compression, level, &mut frame)
                    .map_err(|e| write_err(files[i].path(), &e))?;
                times[1] += t.elapsed();
                let t = Instant::now();
                files[i]
                    .write_all(&frame)
                    .map_err(|e| write_err(files[i].path(), &e))?;
                times[2] += t.elapsed();
                written[i] = true;
                data.clear();
            }
            Ok(())
        };
        let mut walker = out.walk(entry)?;
        let (mut offset, mut in_chunk, mut lines_in_chunk) = (0u64, 0u64, 0usize);
        loop {
            let t = Instant::now();
            let item = walker.next_item()?;
            times[0] += t.elapsed();
            let Some(item) = item else { break };
            let size = match item {
                Item::Error(e) => {
                    if e.offset != offset {
                        return Err(AuditError::Inconsistent {
                            shard: entry.name.clone(),
                            message: format!(
                                "error record of line {} is at offset {}, expected {offset}",
                                e.line, e.offset
                            ),
                        });
                    }
                    e.bytes + 1
                }
                Item::Document {
                    raw, record, line, ..
                } => {
                    let size = raw.len() as u64 + 1;
                    let stream = match record {
                        None => 0,
                        Some(record) => {
                            if record.offset != offset {
                                return Err(AuditError::Inconsistent {
                                    shard: entry.name.clone(),
                                    message: format!("audit record of line {line} is at offset {}, expected {offset}", record.offset),
                                });
                            }
                            let text_len = extractor
                                .extract(raw)
                                .map(|d| d.text.len() as u64)
                                .unwrap_or(0);
                            let new = redecide(&record, config, config.output.audit, hash)?;
                            contribute(&mut stats, &record, old, text_len, size, true, true);
                            contribute(
                                &mut stats,
                                &new.record,
                                config,
                                text_len,
                                size,
                                new.audited,
                                false,
                            );
                            if new.audited {
                                serde_json::to_writer(&mut buffers[3], &new.record)
                                    .map_err(|e| write_err(files[3].path(), &e))?;
                                buffers[3].push(b'\n');
                            }
                            match new.record.decision {
                                Destination::Dropped => 1,
                                Destination::Review => 2,
                                _ => 0,
                            }
                        }
                    };
                    buffers[stream].extend_from_slice(raw);
                    buffers[stream].push(b'\n');
                    size
                }
            };
            offset += size;
            in_chunk += size;
            lines_in_chunk += 1;
            if in_chunk >= chunk_bytes || lines_in_chunk >= MAX_CHUNK_LINES {
                flush(&mut buffers, &mut files, &mut times)?;
                in_chunk = 0;
                lines_in_chunk = 0;
            }
        }
        flush(&mut buffers, &mut files, &mut times)?;
        for (file, written) in files.iter_mut().zip(written) {
            if !written {
                file.write_all(&empty_stream(compression))
                    .map_err(|e| write_err(file.path(), &e))?;
            }
        }
        for file in files {
            file.finish().map_err(|e| AuditError::Write {
                path: output.join(&name),
                message: e.to_string(),
            })?;
        }
        // Unparseable lines and lines too long to judge are carried over as they are, streamed
        // (either can be large); a shard has an oversized/ file only if it had such lines.
        for (dir, always) in [("errors", true), (OVERSIZED_DIR, false)] {
            let from = out.stream_path(dir, entry);
            if always || from.is_file() {
                let to = output.join(dir).join(&name);
                copy_atomic(&from, &to).map_err(|e| write_err(&to, &e))?;
            }
        }
        prune(&mut stats);
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
    };
    let mut bytes = serde_json::to_vec_pretty(&new_manifest).expect("manifest serializes");
    bytes.push(b'\n');
    let path = output.join(MANIFEST);
    write_atomic(&path, &bytes).map_err(|e| write_err(&path, &e))?;
    let report = build_report(config, &new_manifest, started, times);
    let mut bytes = serde_json::to_vec_pretty(&report).expect("report serializes");
    bytes.push(b'\n');
    let path = output.join(REPORT);
    write_atomic(&path, &bytes).map_err(|e| write_err(&path, &e))?;
    Ok(report)
}

/// Copies `from` to `to`, streamed; `to` appears only when whole.
fn copy_atomic(from: &Path, to: &Path) -> std::io::Result<()> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut source = std::fs::File::open(from).map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot read {}: {e}", from.display()))
    })?;
    let mut file = AtomicFile::create(to).map_err(std::io::Error::other)?;
    std::io::copy(&mut source, &mut file)?;
    file.finish().map_err(std::io::Error::other)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The report a fresh run would write, with this command's own throughput and timings.
fn build_report(
    config: &Config,
    manifest: &Manifest,
    started: Instant,
    times: [Duration; 3],
) -> Report {
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
        ("read".to_string(), times[0]),
        ("parse".into(), Duration::ZERO),
    ];
    for s in &config.stages {
        steps.push((format!("stage:{}", s.id()), Duration::ZERO));
    }
    steps.extend([
        ("route".to_string(), Duration::ZERO),
        ("compress".into(), times[1]),
        ("write".into(), times[2]),
    ]);
    let timings = sluice_core::run::step_times(steps, processed.bytes, None);
    Report::from_manifest(manifest, stages, 0, processed, wall, 1, timings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outdir::tests::run_fixture;

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

    fn terms_mut(config: &mut Config) -> &mut sluice_core::stages::TermsConfig {
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
