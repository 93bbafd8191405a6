//! `sluice bench`: run the cascade on a corpus (given, or generated) at one or more thread counts
//! and report where the time goes, per step and per stage, with peak memory.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sluice_core::config::StageConfig;
use sluice_core::run::RunOptions;
use sluice_core::synthetic::{parse_size, write_corpus, SyntheticOptions};
use sluice_core::{Config, Report};

use crate::args::BenchArgs;
use crate::EXIT_OK;

#[derive(Serialize, Deserialize)]
struct BenchReport {
    config: String,
    input: InputSummary,
    runs: Vec<BenchRun>,
    /// End-to-end throughput of each run relative to the first (thread scaling).
    scaling: Vec<f64>,
}

#[derive(Serialize, Deserialize)]
struct InputSummary {
    shards: usize,
    documents: u64,
    bytes: u64,
    compressed_bytes: u64,
    generated: bool,
}

#[derive(Serialize, Deserialize)]
struct BenchRun {
    threads: usize,
    wall_seconds: f64,
    mb_per_second: f64,
    docs_per_second: f64,
    /// Peak resident memory of the process during the run (Linux; 0 elsewhere).
    peak_memory_bytes: u64,
    /// Each pipeline step: CPU seconds (summed over threads), share, and MB/s on one core.
    steps: Vec<sluice_core::run::StepTime>,
    stages: Vec<StageBench>,
}

#[derive(Serialize, Deserialize)]
struct StageBench {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    documents: u64,
    cpu_seconds: f64,
    share: f64,
    docs_per_second: f64,
    text_mb_per_second: f64,
    /// Classifier only: tokens scored, and per second of the stage's time.
    #[serde(skip_serializing_if = "Option::is_none")]
    tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tokens_per_second: Option<f64>,
}

pub fn bench(args: BenchArgs) -> Result<u8> {
    let config = crate::common::load_config(&args.config, args.device.as_deref())?;
    config.build_stages()?;
    let work = match &args.work_dir {
        Some(dir) => WorkDir::Kept(dir.clone()),
        None => WorkDir::Temp(tempfile::tempdir().context("cannot create a temporary directory")?),
    };
    let (inputs, generated) = match &args.generate {
        Some(size) => {
            let total_bytes = parse_size(size)
                .with_context(|| format!("invalid --generate {size:?} (try 500MB, 5MiB, 1GB)"))?;
            let corpus = work.path().join("corpus");
            let options = SyntheticOptions {
                seed: args.seed,
                total_bytes,
                shards: args.shards,
                hit_rate: args.hit_rate,
                terms: config_terms(&config)?,
                compression: sluice_io::Compression::Zstd,
                level: 3,
            };
            if !args.json {
                eprintln!(
                    "sluice bench: generating {size} of synthetic documents (seed {})",
                    args.seed
                );
            }
            write_corpus(&corpus, &options)?;
            (vec![corpus.to_string_lossy().into_owned()], true)
        }
        None if args.input.is_empty() => bail!("give --input SHARDS or --generate SIZE"),
        None => (args.input.clone(), false),
    };
    let compressed_bytes = sluice_io::discover_shards(&inputs)?
        .iter()
        .map(|s| s.size)
        .sum();

    let mut runs = Vec::new();
    let mut input = None;
    if let [threads] = args.threads[..] {
        let (report, peak) = run_here(&config, &inputs, threads, &work, args.work_dir.is_some())?;
        input = Some(InputSummary {
            shards: report.shards.total,
            documents: report.input.documents,
            bytes: report.input.bytes,
            compressed_bytes,
            generated,
        });
        runs.push(bench_run(&report, peak));
    } else {
        // Each thread count in a fresh process, like separate `sluice run`s: peak memory is then
        // each run's own (the allocator keeps what an earlier run freed), and no run inherits
        // another's warm caches or threads.
        for &threads in &args.threads {
            let mut child = bench_in_child(&args, &inputs, threads)?;
            input.get_or_insert(InputSummary {
                compressed_bytes,
                generated,
                ..child.input
            });
            runs.push(child.runs.remove(0));
        }
    }
    let first = runs.first().map_or(1.0, |r| r.mb_per_second);
    let result = BenchReport {
        config: args.config.display().to_string(),
        input: input.context("no --threads given")?,
        scaling: runs.iter().map(|r| r.mb_per_second / first).collect(),
        runs,
    };
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&result)?)?;
    } else {
        print_table(&result)?;
    }
    Ok(EXIT_OK)
}

/// One run at `threads` in this process: its report and peak memory.
fn run_here(
    config: &Config,
    inputs: &[String],
    threads: usize,
    work: &WorkDir,
    keep: bool,
) -> Result<(Report, u64)> {
    let output = work.path().join(format!("out-{threads}"));
    crate::common::cap_model_threads(threads);
    reset_peak_memory();
    let options = RunOptions {
        inputs: inputs.to_vec(),
        output: Some(output.clone()),
        threads: Some(threads),
        force: true,
        progress: None,
        ..Default::default()
    };
    let report = sluice_core::run(config, &options)?;
    let peak = peak_memory_bytes();
    if report.failed() {
        bail!(
            "{} shards failed: {}",
            report.shards.failed,
            report.failed_shards[0].error
        );
    }
    if !keep {
        let _ = std::fs::remove_dir_all(&output);
    }
    Ok((report, peak))
}

/// One run at `threads` by a child `sluice bench` on the same inputs, read from its `--json`.
fn bench_in_child(args: &BenchArgs, inputs: &[String], threads: usize) -> Result<BenchReport> {
    let exe = std::env::current_exe().context("cannot find the sluice executable")?;
    let mut command = std::process::Command::new(&exe);
    command
        .arg("bench")
        .arg("--config")
        .arg(&args.config)
        .arg("--threads")
        .arg(threads.to_string())
        .arg("--json");
    for input in inputs {
        command.arg("--input").arg(input);
    }
    if let Some(dir) = &args.work_dir {
        command.arg("--work-dir").arg(dir);
    }
    if let Some(device) = &args.device {
        command.arg("--device").arg(device);
    }
    let output = command
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    if !output.status.success() {
        bail!("the run at {threads} threads failed ({})", output.status);
    }
    serde_json::from_slice(&output.stdout)
        .with_context(|| format!("cannot read the report of the run at {threads} threads"))
}

fn bench_run(report: &Report, peak: u64) -> BenchRun {
    let stages = report
        .stages
        .iter()
        .map(|stage| {
            let step = report
                .timings
                .iter()
                .find(|t| t.step == format!("stage:{}", stage.id));
            let seconds = step.map_or(0.0, |t| t.cpu_seconds);
            let per = |x: f64| if seconds > 0.0 { x / seconds } else { 0.0 };
            StageBench {
                id: stage.id.clone(),
                kind: stage.kind.clone(),
                documents: stage.evaluated,
                cpu_seconds: seconds,
                share: step.map_or(0.0, |t| t.share),
                docs_per_second: per(stage.evaluated as f64),
                text_mb_per_second: per(stage.text_bytes as f64 / 1e6),
                tokens: (stage.kind == "classifier").then_some(stage.tokens),
                tokens_per_second: (stage.kind == "classifier").then(|| per(stage.tokens as f64)),
            }
        })
        .collect();
    BenchRun {
        threads: report.throughput.threads,
        wall_seconds: report.throughput.wall_seconds,
        mb_per_second: report.throughput.mb_per_second,
        docs_per_second: report.throughput.docs_per_second,
        peak_memory_bytes: peak,
        steps: report.timings.clone(),
        stages,
    }
}

fn print_table(result: &BenchReport) -> std::io::Result<()> {
    let i = &result.input;
    outln!(
        "sluice bench: {} ({:.1} MB uncompressed, {:.1} MB on disk, {} shards, {} documents{})",
        result.config,
        i.bytes as f64 / 1e6,
        i.compressed_bytes as f64 / 1e6,
        i.shards,
        i.documents,
        if i.generated { ", generated" } else { "" }
    )?;
    for (run, scale) in result.runs.iter().zip(&result.scaling) {
        outln!()?;
        outln!(
            "threads {}: {:.1} MB/s end to end, {:.0} docs/s, {:.2} s wall, peak memory {:.0} MB, {:.2}x the first run",
            run.threads,
            run.mb_per_second,
            run.docs_per_second,
            run.wall_seconds,
            run.peak_memory_bytes as f64 / 1e6,
            scale
        )?;
        outln!(
            "  {:<28} {:>8} {:>7} {:>10}",
            "step",
            "cpu s",
            "share",
            "MB/s/core"
        )?;
        for step in &run.steps {
            outln!(
                "  {:<28} {:>8.2} {:>6.1}% {:>10.1}",
                step.step,
                step.cpu_seconds,
                step.share * 100.0,
                step.mb_per_second
            )?;
        }
        outln!(
            "  {:<28} {:>10} {:>12} {:>14} {:>12}",
            "stage",
            "documents",
            "docs/s/core",
            "text MB/s/core",
            "tokens/s"
        )?;
        for stage in &run.stages {
            outln!(
                "  {:<28} {:>10} {:>12.0} {:>14.1} {:>12}",
                format!("{} ({})", stage.id, stage.kind),
                stage.documents,
                stage.docs_per_second,
                stage.text_mb_per_second,
                stage
                    .tokens_per_second
                    .map_or(String::new(), |t| format!("{t:.0}"))
            )?;
        }
    }
    Ok(())
}

/// Terms of the config's term stages, planted in generated documents.
fn config_terms(config: &Config) -> Result<Vec<String>> {
    let mut terms = Vec::new();
    for stage in &config.stages {
        if let StageConfig::Terms(t) = stage {
            for list in &t.lists {
                let path = config.base_dir.join(list);
                terms.extend(
                    sluice_terms::load_term_list(&path, None)?
                        .into_iter()
                        .map(|e| e.term),
                );
            }
        }
    }
    Ok(terms)
}

enum WorkDir {
    Kept(PathBuf),
    Temp(tempfile::TempDir),
}

impl WorkDir {
    fn path(&self) -> &Path {
        match self {
            WorkDir::Kept(p) => p,
            WorkDir::Temp(t) => t.path(),
        }
    }
}

/// Resets the kernel's peak-RSS counter so each run's peak is its own (Linux only).
fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
