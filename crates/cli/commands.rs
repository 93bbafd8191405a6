//! One function per subcommand. They return an exit code, or an error for `main` to print.

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use sluice_core::ranks::{RankError, RankRequest};
use sluice_core::stats::{plural, Destination};
use sluice_core::{run::RunOptions, ConfigError, Progress, Report, RunError};

use crate::args::{CheckArgs, Command, GenerateArgs, RunArgs};
use crate::{EXIT_CONFIG, EXIT_ERROR, EXIT_OK, EXIT_SHARDS_FAILED};

pub fn dispatch(command: Command) -> Result<u8> {
    match command {
        Command::Run(args) => run(args),
        Command::Merge(args) => crate::merge_cmd::merge(args),
        Command::Check(args) => check(args),
        Command::Generate(args) => generate(args),
        Command::Bench(args) => crate::bench::bench(args),
        Command::Audit(args) => crate::audit_cmd::audit(args),
        Command::Report(args) => crate::audit_cmd::report(args),
        Command::Rethreshold(args) => crate::audit_cmd::rethreshold(args),
        Command::Screen(args) => crate::audit_cmd::screen(args),
        Command::Review(args) => crate::review_cmd::review(args),
        Command::Train(args) => crate::train_cmd::train_command(args),
        Command::Eval(args) => crate::eval_cmd::eval_command(args),
    }
}

/// Config problems (and missing input/output) are usage errors: nothing was processed.
pub fn exit_code_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.downcast_ref::<ConfigError>().is_some() {
            return EXIT_CONFIG;
        }
        if let Some(rank) = cause.downcast_ref::<RankError>() {
            return crate::merge_cmd::exit_code_for(rank);
        }
        if let Some(run) = cause.downcast_ref::<RunError>() {
            return match run {
                // As a shell reports a command a signal ended: 130 for SIGINT, 143 for SIGTERM.
                RunError::Interrupted { signal, .. } => 128 + *signal as u8,
                RunError::Config(_)
                | RunError::NoInput
                | RunError::NoOutput
                | RunError::ConfigChanged { .. }
                | RunError::DuplicateShardName { .. }
                | RunError::OutputIsFile { .. }
                | RunError::OutputIsInput { .. }
                | RunError::Locked(_) => EXIT_CONFIG,
                RunError::Rank(rank) => crate::merge_cmd::exit_code_for(rank),
                _ => EXIT_ERROR,
            };
        }
    }
    EXIT_ERROR
}

struct Bar {
    bar: ProgressBar,
    bytes: AtomicU64,
}

impl Progress for Bar {
    fn chunk_done(&self, bytes: u64) {
        let total = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.bar.set_position(total);
    }
}

fn run(args: RunArgs) -> Result<u8> {
    let mut config = crate::common::load_config(&args.config, args.device.as_deref())?;
    if let Some(format) = args.format {
        config.input.format = Some(format);
    }
    crate::common::cap_model_threads(args.threads.unwrap_or(config.run.threads));
    let rank = RankRequest::resolve(args.rank, args.world_size, |var| std::env::var(var).ok())?;
    if args.repartition && rank.is_none() {
        anyhow::bail!(RunError::Config(ConfigError::Invalid {
            key: "--repartition".into(),
            message: "needs --rank (or a scheduler's rank variable)".into(),
        }));
    }
    let bar = (!args.quiet).then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {elapsed_precise} {binary_bytes} filtered ({binary_bytes_per_sec})",
            )
            .expect("valid template"),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Bar {
            bar,
            bytes: AtomicU64::new(0),
        }
    });
    let options = RunOptions {
        inputs: args.input,
        output: args.output,
        threads: args.threads,
        force: args.force,
        progress: bar.as_ref().map(|b| b as &dyn Progress),
        stop: Some(crate::common::stop_on_signals()),
        follow_symlinks: args.follow_symlinks,
        command: Some(crate::common::command_line()),
        rank: rank.clone(),
        repartition: args.repartition,
    };
    let out_dir = options.output.clone().or_else(|| config.output.dir.clone());
    // First, so that a log says which rank this was even if it is killed.
    if let (Some(rank), Some(out_dir), false) = (&rank, &out_dir, args.quiet) {
        eprintln!("{}", crate::merge_cmd::rank_line(rank, out_dir));
    }
    let result = sluice_core::run(&config, &options);
    if let Some(bar) = &bar {
        bar.bar.finish_and_clear();
    }
    let report = result?;
    match (&rank, &out_dir) {
        (None, Some(out_dir)) => crate::audit_cmd::report_after_run(out_dir),
        (Some(_), Some(out_dir)) if !args.quiet => eprintln!(
            "sluice: once every rank has ended, `sluice merge {}` writes the manifest and reports",
            out_dir.display()
        ),
        _ => {}
    }
    if !args.quiet {
        eprintln!("{}", summary(&report));
        if !report.layouts.is_empty() {
            // input.format = "auto": what each file turned out to be.
            let layouts: Vec<String> = report
                .layouts
                .iter()
                .map(|(layout, shards)| {
                    let named = shards.iter().take(5).cloned().collect::<Vec<_>>().join(" ");
                    let more = if shards.len() > 5 { " …" } else { "" };
                    format!(
                        "{layout} {} ({named}{more})",
                        plural(shards.len() as u64, "shard")
                    )
                })
                .collect();
            eprintln!(
                "sluice: layouts detected: {} (report.json, manifest.json)",
                layouts.join("; ")
            );
        }
        if !report.skipped_inputs.is_empty() {
            let reasons: Vec<String> = report
                .skipped_inputs
                .iter()
                .map(|(reason, n)| format!("{reason}: {n}"))
                .collect();
            eprintln!(
                "sluice: {} under the inputs not read ({}): listed in manifest.json",
                plural(report.skipped_inputs.values().sum(), "path"),
                reasons.join(", ")
            );
        }
    }
    if !report.shards.changed.is_empty() {
        eprintln!(
            "sluice: warning: {} redone, their input changed since the earlier run: {}",
            plural(report.shards.changed.len() as u64, "shard"),
            report.shards.changed.join(", ")
        );
    }
    for failed in &report.failed_shards {
        eprintln!(
            "sluice: error: shard {} failed: {}",
            failed.name, failed.error
        );
    }
    Ok(if report.failed() {
        EXIT_SHARDS_FAILED
    } else {
        EXIT_OK
    })
}

fn summary(report: &Report) -> String {
    let d = |d: Destination| report.destinations.get(d).documents;
    let t = &report.throughput;
    format!(
        "sluice: {} ({} done, {} skipped, {} failed); {}: {} kept, {} dropped, \
         {} review, {} errors; {}; {:.1} MB in {:.2}s ({:.1} MB/s, {:.0} docs/s, {})",
        plural(report.shards.total as u64, "shard"),
        report.shards.done,
        report.shards.skipped,
        report.shards.failed,
        plural(report.input.documents, "document"),
        d(Destination::Kept),
        d(Destination::Dropped),
        d(Destination::Review),
        d(Destination::Errors),
        plural(report.audited, "audit record"),
        t.bytes as f64 / 1e6,
        t.wall_seconds,
        t.mb_per_second,
        t.docs_per_second,
        plural(t.threads as u64, "thread"),
    )
}

fn check(args: CheckArgs) -> Result<u8> {
    // A screen config (`sluice screen`) carries a `[screen]` table of limits beside the run's.
    let screen = std::fs::read_to_string(&args.config)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .is_some_and(|table| table.contains_key("screen"));
    let config = if screen {
        let (mut config, _limits) = sluice_audit::screen::load_config(&args.config)?;
        if let Some(device) = args.device.as_deref() {
            config.set_device(device);
        }
        config
    } else {
        crate::common::load_config(&args.config, args.device.as_deref())?
    };
    // Builds every stage, the classifier's model included, exactly as `run` would.
    let cascade = sluice_core::Cascade::new(&config)
        .with_context(|| format!("config {}", args.config.display()))?;
    outln!("config {} is valid", args.config.display())?;
    outln!("config hash: {}", config.hash()?)?;
    if !cascade.extractor.is_single() {
        outln!(
            "input: documents of parts from {}{}",
            cascade.extractor.text_field(),
            if cascade.extractor.has_roles() {
                " (with roles)"
            } else {
                ""
            }
        )?;
    }
    let mut warned = false;
    for i in 0..cascade.stage_count() {
        let stage = cascade.stage_config(i);
        outln!("stage {} (type {})", stage.id(), stage.kind())?;
        outln!("  {}", cascade.stage(i).describe())?;
        if !stage.roles().is_empty() {
            outln!("  judges the parts of roles {}", stage.roles().join(", "))?;
        }
        for warning in cascade.stage(i).check() {
            eprintln!("sluice: warning: stage {}: {warning}", stage.id());
            warned = true;
        }
    }
    if warned {
        eprintln!(
            "sluice: warning: the config is valid, but see the warnings above before a long run"
        );
    }
    Ok(EXIT_OK)
}

fn generate(args: GenerateArgs) -> Result<u8> {
    use sluice_core::synthetic::{parse_size, write_corpus, SyntheticOptions};
    let total_bytes = parse_size(&args.size)
        .with_context(|| format!("invalid --size {:?} (try 200MB, 5MiB, 1GB)", args.size))?;
    let compression = match args.compression.as_str() {
        "zstd" => sluice_io::Compression::Zstd,
        "gzip" => sluice_io::Compression::Gzip,
        "none" => sluice_io::Compression::None,
        other => anyhow::bail!("invalid --compression {other:?}: zstd, gzip or none"),
    };
    let terms = sluice_terms::load_term_list(&args.terms, None)?
        .into_iter()
        .map(|t| t.term)
        .collect();
    let options = SyntheticOptions {
        seed: args.seed,
        total_bytes,
        shards: args.shards,
        hit_rate: args.hit_rate,
        terms,
        compression,
        level: 3,
    };
    let paths = write_corpus(&args.output, &options)?;
    eprintln!(
        "sluice: wrote {}, {:.1} MB uncompressed, to {}",
        plural(paths.len() as u64, "shard"),
        total_bytes as f64 / 1e6,
        args.output.display()
    );
    Ok(EXIT_OK)
}
