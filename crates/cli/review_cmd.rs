//! `sluice review`: a thin wrapper over sluice-review (the queue server and what the decisions
//! do).

use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Result;
use sluice_core::stats::{plural, Destination};
use sluice_review::decisions::Decision;
use sluice_review::outcome::{self, LabelOptions};
use sluice_review::{ReviewError, ServeOptions, Server};

use crate::audit_cmd::EXIT_SCREEN_CONFIG;
use crate::{EXIT_CONFIG, EXIT_OK};

#[derive(clap::Args, Debug)]
pub struct ReviewArgs {
    /// Output directory of a finished `sluice run` (or of `sluice screen --output`).
    pub out_dir: PathBuf,
    #[command(subcommand)]
    pub action: Option<ReviewAction>,
    /// Listen on this address instead of 127.0.0.1: anyone who can reach it and has the token
    /// can read the queued documents and record decisions.
    #[arg(long, value_name = "ADDRESS")]
    pub bind: Option<IpAddr>,
    /// Port to listen on (0: any free port; the address is printed).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Record every decision of this server as this reviewer's (else the page asks each
    /// reviewer for a name). Letters, digits, `.`, `_`, `-`.
    #[arg(long)]
    pub reviewer: Option<String>,
    /// Also queue a uniform random sample of this many kept documents (quality control).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub sample_kept: usize,
    /// Also queue a uniform random sample of this many dropped documents.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub sample_dropped: usize,
    /// Seed of the samples: the same seed gives the same samples.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(clap::Subcommand, Debug)]
pub enum ReviewAction {
    /// Write a new output directory in which every document of review/ the reviewers agreed on
    /// went to kept or dropped (the rest stay in review), its audit record citing the decisions
    /// and report.json counting them; byte for byte as `sluice rethreshold` writes.
    Apply {
        /// The new output directory (must not exist or be empty).
        #[arg(short, long)]
        output: PathBuf,
        /// Directory of the config file the run was made with (as for `rethreshold`).
        #[arg(long)]
        config_dir: Option<PathBuf>,
        /// No summary.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Write the documents the reviewers agreed on as labeled JSONL for `sluice train` and
    /// `sluice eval`: each document's own JSON object with the label added.
    ExportLabels {
        /// The labeled JSONL file to write.
        #[arg(short, long)]
        output: PathBuf,
        /// Field the label goes to (dots descend into objects).
        #[arg(long, default_value = "label")]
        label_field: String,
        /// Label of documents the reviewers kept.
        #[arg(long, default_value = "benign")]
        keep_label: String,
        /// Label of documents the reviewers dropped.
        #[arg(long, default_value = "hazard")]
        drop_label: String,
    },
    /// List the documents on which reviewers disagree (one keeps, another drops).
    Disagreements,
    /// For the output of `sluice screen --output`: the dataset's verdict again, with the
    /// reviewers' decisions taken in (kept ones are no longer flagged, dropped kept ones are).
    /// Exit 0 accept, 1 review, 2 reject, as `sluice screen`.
    Verdict {
        /// The screen config the dataset was screened with (its [screen] limits).
        #[arg(short, long)]
        config: PathBuf,
    },
}

/// Usage errors exit `code`; others go to `main`.
fn usage_or(result: Result<u8>, code: u8) -> Result<u8> {
    match result {
        Err(err)
            if err.chain().any(|c| {
                c.downcast_ref::<ReviewError>()
                    .is_some_and(ReviewError::is_usage)
                    || c.downcast_ref::<sluice_audit::AuditError>()
                        .is_some_and(sluice_audit::AuditError::is_usage)
            }) =>
        {
            eprintln!("sluice: error: {err:#}");
            Ok(code)
        }
        other => other,
    }
}

pub fn review(args: ReviewArgs) -> Result<u8> {
    let code = match &args.action {
        Some(ReviewAction::Verdict { .. }) => EXIT_SCREEN_CONFIG,
        _ => EXIT_CONFIG,
    };
    usage_or(review_inner(args), code)
}

fn review_inner(args: ReviewArgs) -> Result<u8> {
    match args.action {
        None => serve(
            &args.out_dir,
            ServeOptions {
                bind: args.bind.unwrap_or(IpAddr::from([127, 0, 0, 1])),
                port: args.port,
                reviewer: args.reviewer,
                queue: sluice_review::index::QueueOptions {
                    sample_kept: args.sample_kept,
                    sample_dropped: args.sample_dropped,
                    seed: args.seed,
                },
            },
        ),
        Some(ReviewAction::Apply {
            output,
            config_dir,
            quiet,
        }) => {
            let (report, applied) = outcome::apply(&args.out_dir, &output, config_dir)?;
            sluice_audit::html::write_report(&output)?;
            if !quiet {
                let d = |d: Destination| report.destinations.get(d).documents;
                eprintln!(
                    "sluice: applied the reviewers' decisions: {} of review/ to kept, {} to \
                     dropped; {} left in review ({} in dispute); now {} kept, {} dropped, {} \
                     review, {} errors; written to {}",
                    applied.kept,
                    applied.dropped,
                    d(Destination::Review),
                    applied.disagreed,
                    d(Destination::Kept),
                    d(Destination::Dropped),
                    d(Destination::Review),
                    d(Destination::Errors),
                    output.display()
                );
                if applied.sampled > 0 {
                    eprintln!(
                        "sluice: {} decided in the kept/dropped samples (not moved); the \
                         reviewers overrule the cascade on {}",
                        plural(applied.sampled, "document"),
                        applied.overruled
                    );
                }
                if applied.stale > 0 {
                    eprintln!(
                        "sluice: warning: {} made on an audit record that has changed since, \
                         not applied",
                        plural(applied.stale, "decision")
                    );
                }
            }
            Ok(EXIT_OK)
        }
        Some(ReviewAction::ExportLabels {
            output,
            label_field,
            keep_label,
            drop_label,
        }) => {
            let exported = outcome::export_labels(
                &args.out_dir,
                &output,
                &LabelOptions {
                    label_field,
                    keep_label: keep_label.clone(),
                    drop_label: drop_label.clone(),
                },
            )?;
            eprintln!(
                "sluice: wrote {} to {}: {} {keep_label:?} (kept), {} {drop_label:?} (dropped); \
                 {} in dispute left out",
                plural(exported.keep + exported.drop, "labeled document"),
                output.display(),
                exported.keep,
                exported.drop,
                exported.disagreed
            );
            Ok(EXIT_OK)
        }
        Some(ReviewAction::Disagreements) => {
            let out = sluice_audit::OutDir::open(&args.out_dir)?;
            let resolved = outcome::resolve(&out)?;
            let disputed = outcome::disagreements(&resolved);
            for r in &disputed {
                let who: Vec<String> = r
                    .standing
                    .iter()
                    .filter(|s| s.decision != Decision::Skip)
                    .map(|s| {
                        let note = if s.note.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", sluice_audit::highlight::visible(&s.note))
                        };
                        format!("{} {}{note}", s.reviewer, s.decision.name())
                    })
                    .collect();
                outln!(
                    "{}:{}\t{}\tfrom {}\t{}",
                    r.key.0,
                    r.key.1,
                    sluice_audit::highlight::visible(&r.id),
                    r.source.name(),
                    who.join(", ")
                )?;
            }
            let reviewers = outcome::per_reviewer(&resolved);
            let summary: Vec<String> = reviewers
                .iter()
                .map(|(name, [keep, drop, skip])| {
                    format!("{name}: {keep} keep, {drop} drop, {skip} skip")
                })
                .collect();
            eprintln!(
                "sluice: {} in dispute of {} decided; {}",
                plural(disputed.len() as u64, "document"),
                resolved.len(),
                if summary.is_empty() {
                    "no decisions yet".to_string()
                } else {
                    summary.join("; ")
                }
            );
            Ok(EXIT_OK)
        }
        Some(ReviewAction::Verdict { config }) => {
            let (_, limits) = sluice_audit::screen::load_config(&config)
                .map_err(|e| ReviewError::usage("--config", e.to_string()))?;
            let out = sluice_audit::OutDir::open(&args.out_dir)?;
            let recount = outcome::flagged_after(&out, limits.errors_are_flagged)?;
            // The whole screen again (signals, dataset-level signals), with the reviewers'
            // flagged count and without the documents they agreed to keep.
            let reviewed = sluice_audit::screen::Reviewed {
                flagged: recount.flagged,
                kept: recount.kept.clone(),
            };
            let screening =
                sluice_audit::screen::screen_reviewed(&out, &limits, 0, Some(&reviewed))?;
            let verdict = screening.verdict;
            outln!(
                "verdict: {}\ndocuments: {}, flagged: {} after review (was {}): {} cleared by \
                 reviewers, {} added",
                verdict.name(),
                recount.documents,
                recount.flagged,
                recount.flagged_before,
                recount.cleared,
                recount.added
            )?;
            for why in &screening.why {
                outln!("  because: {why}")?;
            }
            Ok(match verdict {
                sluice_audit::screen::Verdict::Accept => 0,
                sluice_audit::screen::Verdict::Review => 1,
                sluice_audit::screen::Verdict::Reject => 2,
            })
        }
    }
}

fn serve(out_dir: &std::path::Path, options: ServeOptions) -> Result<u8> {
    let loopback = options.bind.is_loopback();
    let server = Server::new(out_dir, &options)?;
    let queued = server.queued();
    if !loopback {
        eprintln!(
            "sluice: WARNING: listening on {} (not 127.0.0.1): anyone who can reach this address \
             and has the token can read the queued documents and record decisions; the \
             connection is plain HTTP, not encrypted",
            options.bind
        );
    }
    // The address first, alone on stdout, so that scripts can read it.
    outln!("{}", server.url())?;
    std::io::stdout().flush()?;
    let counts: Vec<String> = queued.iter().map(|(k, n)| format!("{n} {k}")).collect();
    eprintln!(
        "sluice: review queue of {}: {}; decisions go to {}; Ctrl-C stops",
        out_dir.display(),
        if counts.is_empty() {
            "empty".to_string()
        } else {
            counts.join(", ")
        },
        out_dir
            .join(sluice_review::decisions::REVIEWS_DIR)
            .display()
    );
    server.run()?;
    Ok(EXIT_OK)
}
