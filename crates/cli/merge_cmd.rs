//! `sluice merge OUT` and what `sluice run --rank` prints.

use std::path::Path;

use anyhow::Result;
use sluice_core::ranks::records::{read_record, RunRecord, RUN_RECORD};
use sluice_core::ranks::{join_numbers, RankError, RankRequest};
use sluice_core::stats::{plural, Destination};

use crate::args::MergeArgs;
use crate::{EXIT_CONFIG, EXIT_ERROR, EXIT_OK, EXIT_SHARDS_FAILED};

/// Shards named at most in a message; the manifest lists them all.
const LISTED: usize = 10;

pub fn merge(args: MergeArgs) -> Result<u8> {
    let started = std::time::Instant::now();
    let storage = sluice_core::output::open_output(&args.out_dir)?;
    let outcome = sluice_core::ranks::merge(&*storage, &crate::common::command_line())?;
    sluice_audit::html::write_report(&args.out_dir)?;
    let report = &outcome.report;
    if !args.quiet {
        let d = |d: Destination| report.destinations.get(d).documents;
        eprintln!(
            "sluice: merged {} in {:.2}s: {} ({} done, {} failed, {} missing); {}: {} kept, {} \
             dropped, {} review, {} errors; {}",
            plural(outcome.world_size as u64, "rank"),
            started.elapsed().as_secs_f64(),
            plural(report.shards.total as u64, "shard"),
            report.shards.done,
            outcome.failed.len(),
            outcome.missing.len(),
            plural(report.input.documents, "document"),
            d(Destination::Kept),
            d(Destination::Dropped),
            d(Destination::Review),
            d(Destination::Errors),
            plural(report.audited, "audit record"),
        );
        for r in &report.ranks {
            let ran = match (r.processed_bytes, r.wall_seconds) {
                (Some(bytes), Some(wall)) => format!(
                    "last run filtered {:.1} MB in {wall:.2}s{}{}",
                    bytes as f64 / 1e6,
                    r.source
                        .map(|s| format!(" (rank from {})", s.variable()))
                        .unwrap_or_default(),
                    r.interrupted
                        .map(|s| format!(", interrupted by signal {s}"))
                        .unwrap_or_default()
                ),
                _ => "no record (killed, or never ran)".into(),
            };
            eprintln!(
                "  rank {}: {} of {:.1} MB, {} done, {} failed; {ran}",
                r.rank,
                plural(r.shards as u64, "shard"),
                r.bytes as f64 / 1e6,
                r.done,
                r.failed
            );
        }
    }
    if !outcome.missing.is_empty() {
        eprintln!(
            "sluice: error: {} not filtered yet: {}",
            plural(outcome.missing.len() as u64, "shard"),
            first(&outcome.missing)
        );
    }
    for failed in outcome.failed.iter().take(LISTED) {
        eprintln!(
            "sluice: error: shard {} failed: {}",
            failed.name, failed.error
        );
    }
    if outcome.failed.len() > LISTED {
        eprintln!(
            "sluice: error: ... and {} more failed shards (listed in manifest.json)",
            outcome.failed.len() - LISTED
        );
    }
    if !outcome.rerun.is_empty() {
        eprintln!(
            "sluice: re-run {} {} (with --world-size {}), then merge again",
            if outcome.rerun.len() == 1 {
                "rank"
            } else {
                "ranks"
            },
            join_numbers(&outcome.rerun),
            outcome.world_size
        );
    }
    Ok(if outcome.complete() {
        EXIT_OK
    } else {
        EXIT_SHARDS_FAILED
    })
}

fn first(names: &[String]) -> String {
    let mut text = names
        .iter()
        .take(LISTED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > LISTED {
        text.push_str(&format!(
            " and {} more (manifest.json lists them)",
            names.len() - LISTED
        ));
    }
    text
}

/// `sluice: rank 1 of 4 (rank from SLURM_ARRAY_TASK_ID, world size from ranks/run.json)`, said
/// before the run (the world size from the run's record, when one pins it).
pub fn rank_line(rank: &RankRequest, out_dir: &Path) -> String {
    let record: Option<RunRecord> = sluice_core::output::open_output(out_dir)
        .ok()
        .and_then(|storage| read_record(&*storage, RUN_RECORD).ok().flatten());
    let world = rank
        .world_size
        .or(record.map(|r| r.world_size))
        .map_or_else(|| "?".into(), |w| w.to_string());
    let world_from = if rank.world_size.is_some() {
        rank.world_source.variable()
    } else {
        "ranks/run.json"
    };
    format!(
        "sluice: rank {} of {world} (rank from {}, world size from {world_from})",
        rank.rank,
        rank.rank_source.variable(),
    )
}

/// Refusals are the user's to fix (exit 2); unreadable records are other errors (exit 3).
pub fn exit_code_for(err: &RankError) -> u8 {
    match err {
        RankError::Read { .. }
        | RankError::Write { .. }
        | RankError::Io(_)
        | RankError::Locked(sluice_io::LockError::Io { .. }) => EXIT_ERROR,
        _ => EXIT_CONFIG,
    }
}
