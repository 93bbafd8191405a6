//! `sluice audit`, `sluice report`, `sluice rethreshold` and `sluice screen`: thin wrappers over
//! the `sluice-audit` crate.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};
use sluice_audit::highlight::{highlight_document, visible, Style};
use sluice_audit::outdir::Joined;
use sluice_audit::screen::Verdict;
use sluice_audit::select::Filter;
use sluice_audit::summary::Summary;
use sluice_audit::{AuditError, OutDir};
use sluice_core::stats::{plural, Destination};

use crate::{EXIT_CONFIG, EXIT_ERROR, EXIT_OK};

/// `sluice screen`: a bad screen config or bad usage (2 means reject there).
pub const EXIT_SCREEN_CONFIG: u8 = 4;

#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    /// Output directory of a `sluice run` (or its URL in object storage: s3://bucket/prefix/).
    pub out_dir: PathBuf,
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Documents per destination, reason, term category and shard; top terms; score histogram.
    Summary(SummaryArgs),
    /// Print selected audited documents: evidence and text with the matches marked.
    Show(ShowArgs),
    /// Write selected records joined with their document text, as JSONL or CSV.
    Export(ExportArgs),
}

#[derive(clap::Args, Debug)]
pub struct SummaryArgs {
    /// How many of the most frequent terms to list.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
}

#[derive(clap::Args, Debug, Clone)]
pub struct SelectArgs {
    #[command(flatten)]
    pub filter: Filter,
    /// A uniform random sample of N of the selected records.
    #[arg(long)]
    pub sample: Option<usize>,
    /// Seed of --sample: the same seed gives the same sample.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl SelectArgs {
    fn sample(&self) -> Option<(usize, u64)> {
        self.sample.map(|n| (n, self.seed))
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// Colour the matches: auto (when stdout is a terminal), always, never ([[...]] markers).
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
    /// One line per document (id, place, decision, reasons), without evidence and text.
    #[arg(long)]
    pub list: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Jsonl,
    Csv,
}

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,
    /// Write here instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// Output directory of a `sluice run` (or its s3:// / gs:// / az:// URL); report.html is
    /// written there.
    pub out_dir: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct RethresholdArgs {
    /// Output directory of a finished `sluice run` (or its s3:// / gs:// / az:// URL).
    pub out_dir: PathBuf,
    /// STAGE_ID.KEY=VALUE: STAGE.min_distinct, .min_total, .min_weight, .min_density,
    /// .min_per_category.CAT (terms stages), STAGE.RULE_ID.min_matches (rules stages),
    /// STAGE.INNER_ID.KEY (an encoded stage's inner stages). Repeatable.
    #[arg(long = "set", required = true, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// The new output directory (must not exist or be empty), or a URL in object storage
    /// holding no run yet.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Directory of the config file the run was made with: its relative term list and model
    /// paths resolve against it (they are checked against the run's config hash). By default the
    /// directory the run recorded in its manifest.
    #[arg(long)]
    pub config_dir: Option<PathBuf>,
    /// No summary.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(clap::Args, Debug)]
pub struct ScreenArgs {
    /// The dataset: files, directories or globs, as for `sluice run --input`.
    #[arg(required = true, num_args = 1..)]
    pub dataset: Vec<String>,
    /// Screen config: a sluice config with a [screen] table (configs/finetune-screen.toml).
    #[arg(short, long)]
    pub config: PathBuf,
    /// Keep the run's outputs here, a directory or an s3:// / gs:// / az:// URL (by default a
    /// temporary directory, removed).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Flagged documents listed at most.
    #[arg(long, default_value_t = 50)]
    pub list: usize,
    /// Worker threads (0 = one per core).
    #[arg(short = 'j', long)]
    pub threads: Option<usize>,
    /// Record layout: text, chat, sharegpt, alpaca, prompt-completion, auto. Overrides
    /// input.format.
    #[arg(long)]
    pub format: Option<sluice_core::document::InputFormat>,
    /// Print the whole verdict as one JSON object (counts, signals and their figures,
    /// dataset-level signals, each file's layout, flagged documents) for a CI job.
    #[arg(long)]
    pub json: bool,
}

/// Usage errors of these commands exit `usage_code`; other errors go to `main`.
fn usage_or(result: Result<u8>, usage_code: u8) -> Result<u8> {
    match result {
        Err(err)
            if err.chain().any(|c| {
                c.downcast_ref::<AuditError>()
                    .is_some_and(AuditError::is_usage)
            }) =>
        {
            eprintln!("sluice: error: {err:#}");
            Ok(usage_code)
        }
        other => other,
    }
}

pub fn audit(args: AuditArgs) -> Result<u8> {
    usage_or(audit_inner(args), EXIT_CONFIG)
}

fn audit_inner(args: AuditArgs) -> Result<u8> {
    let out = OutDir::open(&args.out_dir)?;
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    match args.command {
        AuditCommand::Summary(a) => {
            let summary = Summary::collect(&out)?;
            w.write_all(summary.render(a.top).as_bytes())?;
        }
        AuditCommand::Show(a) => {
            let style = match a.color {
                Color::Always => Style::Ansi,
                Color::Never => Style::Markers,
                Color::Auto if std::io::stdout().is_terminal() => Style::Ansi,
                Color::Auto => Style::Markers,
            };
            let shown = write_each(&out, &a.select, |j| show(&mut w, j, style, a.list))?;
            w.flush()?;
            eprintln!("sluice: {}", plural(shown, "document"));
        }
        AuditCommand::Export(a) => match &a.output {
            // Written under a temporary name and renamed when complete: a failed export leaves
            // nothing, and never truncates a file first. A file of the output directory is an
            // input of the command: refused.
            Some(path) => {
                let inside = |p: &std::path::Path| {
                    std::fs::canonicalize(p.parent().unwrap_or(std::path::Path::new(".")))
                        .ok()
                        .zip(std::fs::canonicalize(&out.path).ok())
                        .is_some_and(|(dir, out)| dir.starts_with(out))
                };
                if inside(path) {
                    return Err(AuditError::usage(
                        "-o",
                        format!(
                            "{} is inside the output directory being read: write the export elsewhere",
                            path.display()
                        ),
                    )
                    .into());
                }
                let mut file = sluice_io::AtomicFile::create(path)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                let count = export(&out, &a, &mut file)?;
                file.finish()?;
                eprintln!("sluice: exported {count} records");
            }
            None => {
                let count = export(&out, &a, &mut w)?;
                eprintln!("sluice: exported {count} records");
            }
        },
    }
    w.flush()?;
    Ok(EXIT_OK)
}

/// Writes the selected records to `file`; returns how many.
fn export(out: &OutDir, a: &ExportArgs, file: &mut dyn Write) -> Result<u64> {
    if let Format::Csv = a.format {
        writeln!(
            file,
            "id,shard,line,decision,escalated,reasons,terms,score,text"
        )?;
    }
    let count = write_each(out, &a.select, |j| match a.format {
        Format::Jsonl => export_json(&mut &mut *file, j),
        Format::Csv => export_csv(&mut &mut *file, j),
    })?;
    file.flush()?;
    Ok(count)
}

/// Calls `write` on each selected record joined with its text; returns how many. A write error
/// (a closed pipe, a full disk) stops the walk and is returned as it is.
fn write_each(
    out: &OutDir,
    select: &SelectArgs,
    mut write: impl FnMut(&Joined) -> std::io::Result<()>,
) -> Result<u64> {
    let mut io_error = None;
    let mut count = 0u64;
    out.select(&select.filter, select.sample(), |j| {
        count += 1;
        if let Err(e) = write(&j) {
            io_error = Some(e);
            return Err(AuditError::usage("output", "stopped"));
        }
        Ok(())
    })
    .or_else(|e| if io_error.is_some() { Ok(()) } else { Err(e) })?;
    match io_error {
        Some(e) => Err(e.into()),
        None => Ok(count),
    }
}

fn show(w: &mut impl Write, j: &Joined, style: Style, list: bool) -> std::io::Result<()> {
    let r = &j.record;
    // Everything from the corpus or the run is written with terminal controls made visible.
    let mut head = visible(&format!(
        "{}  {}:{}  {}{}  reasons: {}",
        r.id,
        r.shard,
        r.line,
        r.decision.name(),
        if r.escalated { " (escalated)" } else { "" },
        r.reason_keys().join(", ")
    ));
    if list {
        head.push('\n');
        return w.write_all(head.as_bytes());
    }
    writeln!(w, "== {head}")?;
    for stage in &r.stages {
        let line = format!(
            "   {} ({}): {}: {}",
            stage.stage,
            stage.evidence.kind(),
            serde_json::to_value(stage.evidence.outcome())
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            stage.evidence.describe()
        );
        writeln!(w, "{}", visible(&line))?;
        if let Some(why) = stage.evidence.suppressed() {
            writeln!(w, "      {}", visible(&suppressed_line(why)))?;
        }
        if !stage.evidence.roles().is_empty() {
            writeln!(
                w,
                "      judged roles: {}",
                visible(&stage.evidence.roles().join(", "))
            )?;
        }
    }
    match &j.text {
        Some(text) => writeln!(
            w,
            "{}\n",
            highlight_document(text, &j.parts, &r.spans(), style, usize::MAX).0
        ),
        None => writeln!(w, "(document text not found)\n"),
    }
}

/// Why a stage's outcome did not apply: "suppressed drop: refusal fired" or "suppressed review:
/// request-terms did not fire".
fn suppressed_line(why: &sluice_core::stages::Suppressed) -> String {
    let outcome = serde_json::to_value(why.outcome)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut causes = Vec::new();
    if !why.by.is_empty() {
        causes.push(format!("{} fired", why.by.join(", ")));
    }
    if !why.missing.is_empty() {
        causes.push(format!("{} did not fire", why.missing.join(", ")));
    }
    format!("suppressed {outcome}: {}", causes.join("; "))
}

/// One line of `export --format jsonl`: the fields a labelling tool wants first, then the whole
/// audit record.
#[derive(serde::Serialize)]
struct ExportLine<'a> {
    id: &'a str,
    shard: &'a str,
    line: u64,
    decision: Destination,
    escalated: bool,
    reasons: Vec<String>,
    terms: Vec<&'a str>,
    score: Option<f32>,
    text: Option<&'a str>,
    record: &'a sluice_audit::Record,
}

fn export_json(w: &mut impl Write, j: &Joined) -> std::io::Result<()> {
    let r = &j.record;
    let line = ExportLine {
        id: &r.id,
        shard: &r.shard,
        line: r.line,
        decision: r.decision,
        escalated: r.escalated,
        reasons: r.reason_keys(),
        terms: r.keys("terms"),
        score: r.score(),
        text: j.text.as_deref(),
        record: r,
    };
    serde_json::to_writer(&mut *w, &line)?;
    w.write_all(b"\n")
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn export_csv(w: &mut impl Write, j: &Joined) -> std::io::Result<()> {
    let r = &j.record;
    let fields = [
        r.id.to_string(),
        r.shard.to_string(),
        r.line.to_string(),
        r.decision.name().to_string(),
        r.escalated.to_string(),
        r.reason_keys().join(";"),
        r.keys("terms").join(";"),
        r.score().map_or(String::new(), |s| s.to_string()),
        j.text.clone().unwrap_or_default(),
    ];
    let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
    writeln!(w, "{}", line.join(","))
}

pub fn report(args: ReportArgs) -> Result<u8> {
    usage_or(
        (|| {
            let path = sluice_audit::html::write_report(&args.out_dir)?;
            eprintln!("sluice: wrote {}", path.display());
            Ok(EXIT_OK)
        })(),
        EXIT_CONFIG,
    )
}

/// Called by `sluice run` once report.json exists. A failure is a warning: the run itself is done.
pub fn report_after_run(out_dir: &std::path::Path) {
    if let Err(e) = sluice_audit::html::write_report(out_dir) {
        eprintln!("sluice: warning: cannot write report.html: {e}");
    }
}

pub fn rethreshold(args: RethresholdArgs) -> Result<u8> {
    usage_or(
        (|| {
            let options = sluice_audit::rethreshold::Options {
                settings: args.set.clone(),
                output: args.output.clone(),
                config_dir: args.config_dir.clone(),
                reviewed: Default::default(),
            };
            let report = sluice_audit::rethreshold::rethreshold(&args.out_dir, &options)?;
            sluice_audit::html::write_report(&args.output)?;
            if !args.quiet {
                let d = |d: Destination| report.destinations.get(d).documents;
                eprintln!(
                    "sluice: re-decided {}: {} kept, {} dropped, {} review, {} errors; {}; written to {}",
                    plural(report.input.documents, "document"),
                    d(Destination::Kept),
                    d(Destination::Dropped),
                    d(Destination::Review),
                    d(Destination::Errors),
                    plural(report.audited, "audit record"),
                    args.output.display()
                );
            }
            Ok(EXIT_OK)
        })(),
        EXIT_CONFIG,
    )
}

/// Exit codes: 0 accept, 1 review, 2 reject, 3 other errors, 4 bad config or usage.
pub fn screen(args: ScreenArgs) -> Result<u8> {
    match screen_inner(args) {
        Ok(code) => Ok(code),
        Err(err) => {
            eprintln!("sluice: error: {err:#}");
            let usage = err.chain().any(|c| {
                c.downcast_ref::<sluice_core::ConfigError>().is_some()
                    || c.downcast_ref::<AuditError>()
                        .is_some_and(AuditError::is_usage)
                    || c.downcast_ref::<sluice_core::RunError>().is_some_and(|r| {
                        matches!(
                            r,
                            sluice_core::RunError::Config(_)
                                | sluice_core::RunError::NoInput
                                | sluice_core::RunError::OutputIsFile { .. }
                                | sluice_core::RunError::ConfigChanged { .. }
                                | sluice_core::RunError::DuplicateShardName { .. }
                        )
                    })
            });
            Ok(if usage {
                EXIT_SCREEN_CONFIG
            } else {
                EXIT_ERROR
            })
        }
    }
}

fn screen_inner(args: ScreenArgs) -> Result<u8> {
    let (mut config, limits) = sluice_audit::screen::load_config(&args.config)?;
    if let Some(format) = args.format {
        config.input.format = Some(format);
    }
    config.build_stages()?;
    let tmp;
    let output = match &args.output {
        Some(path) => path.clone(),
        None => {
            tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
            tmp.path().join("out")
        }
    };
    let options = sluice_core::RunOptions {
        inputs: args.dataset.clone(),
        output: Some(output.clone()),
        threads: args.threads,
        force: true,
        progress: None,
        stop: Some(crate::common::stop_on_signals()),
        command: Some(crate::common::command_line()),
        ..Default::default()
    };
    let report = sluice_core::run(&config, &options)?;
    if report.failed() {
        for f in &report.failed_shards {
            eprintln!("sluice: error: shard {} failed: {}", f.name, f.error);
        }
        anyhow::bail!("the dataset could not be read whole");
    }
    let d = |d: Destination| report.destinations.get(d).documents;
    let documents = report.input.documents;
    // Fail closed: what could not be read is not accepted.
    if let Some(why) = sluice_audit::screen::unreadable(&limits, documents, d(Destination::Errors))
    {
        anyhow::bail!("no verdict: {why}");
    }
    let out = OutDir::open(&output)?;
    let screening = sluice_audit::screen::screen(&out, &limits, args.list)?;
    let verdict = screening.verdict;
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    if args.json {
        serde_json::to_writer_pretty(&mut w, &screening)?;
        writeln!(w)?;
    } else {
        write_screening(&mut w, &screening, &limits, &out, args.list)?;
    }
    w.flush()?;
    Ok(match verdict {
        Verdict::Accept => 0,
        Verdict::Review => 1,
        Verdict::Reject => 2,
    })
}

/// The verdict for a person: counts, limits, signals, layouts, reasons, flagged documents.
fn write_screening(
    w: &mut impl Write,
    screening: &sluice_audit::screen::Screening,
    limits: &sluice_audit::screen::ScreenLimits,
    out: &OutDir,
    list: usize,
) -> Result<()> {
    let s = screening;
    writeln!(
        w,
        "verdict: {}\ndocuments: {}, flagged: {} ({:.2}%): {} dropped, {} review, {} errors",
        s.verdict.name(),
        s.documents,
        s.flagged,
        s.flagged_fraction * 100.0,
        s.dropped,
        s.review,
        s.errors,
    )?;
    for why in &s.why {
        writeln!(w, "  because: {why}")?;
    }
    writeln!(
        w,
        "limits: reject above {} flagged or {} of the documents; review above {} flagged",
        limits.reject_count.map_or("-".into(), |n| n.to_string()),
        limits
            .reject_fraction
            .map_or("-".into(), |f| format!("{:.2}%", f * 100.0)),
        limits.review_above
    )?;
    if !s.signals.is_empty() {
        writeln!(w, "signals:")?;
        for signal in &s.signals {
            writeln!(
                w,
                "  {}: {} ({:.2}%): {}{}",
                signal.id,
                plural(signal.documents, "document"),
                signal.fraction * 100.0,
                signal.verdict.name(),
                signal
                    .why
                    .as_ref()
                    .map_or(String::new(), |why| format!(" ({why})"))
            )?;
        }
    }
    for signal in &s.dataset_signals {
        match &signal.text {
            Some(text) => w.write_all(text.as_bytes())?,
            None => writeln!(
                w,
                "dataset signal {}: {} {}",
                signal.id,
                signal.verdict.name(),
                signal.figures
            )?,
        }
    }
    if !s.files.is_empty() {
        let files: Vec<String> = s
            .files
            .iter()
            .map(|f| format!("{} {}", f.shard, f.layout))
            .collect();
        writeln!(w, "layouts: {}", files.join(", "))?;
    }
    let summary = Summary::collect(out)?;
    if !summary.reasons.is_empty() {
        writeln!(w, "reasons:")?;
        for (key, t) in &summary.reasons {
            writeln!(
                w,
                "  {key}: {} ({} dropped, {} review)",
                plural(t.documents, "document"),
                t.dropped,
                t.review
            )?;
        }
    }
    let terms = summary.top_terms(10);
    if !terms.is_empty() {
        let terms: Vec<String> = terms
            .iter()
            .map(|(term, t)| format!("{term} ({})", t.documents))
            .collect();
        writeln!(w, "top terms (documents): {}", terms.join(", "))?;
    }
    if !summary.scores.is_empty() {
        writeln!(
            w,
            "classifier: {} scored with an audit record",
            plural(summary.scored, "document")
        )?;
    }
    if s.verdict != Verdict::Accept && list > 0 && !s.flagged_documents.is_empty() {
        writeln!(w, "flagged documents (first {list}):")?;
        for doc in &s.flagged_documents {
            let place = format!("{}:{}", doc.shard, doc.line);
            let id = if doc.id == place {
                String::new()
            } else {
                format!("{}  ", doc.id)
            };
            writeln!(
                w,
                "  {id}{place}  {}  {}",
                doc.decision,
                doc.reasons.join(", ")
            )?;
        }
    }
    Ok(())
}
