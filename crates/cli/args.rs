//! Command-line arguments. Flags override the config file's keys.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Streaming, auditable filtering of training data: regex rules, large term lists, classifiers.
#[derive(Parser, Debug)]
#[command(name = "sluice", version, about, long_about = None)]
pub struct Args {
    /// More log output on stderr (-v: info, -vv: debug). SLUICE_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Filter a corpus (JSONL or Parquet shards): every input line or row goes to kept/,
    /// dropped/, review/ or errors/ (lines too long to judge also whole to oversized/), flagged
    /// documents get an audit record, and manifest.json, report.json and report.html describe the
    /// run.
    Run(RunArgs),
    /// Combine the records of a run spread over ranks (`run --rank`) into the manifest.json,
    /// report.json and report.html a one-machine run writes; list the shards missing or failed
    /// and the ranks to re-run (exit 1 when incomplete).
    Merge(MergeArgs),
    /// Check a config without processing anything: parse it, compile rules, load term lists and
    /// the classifier's model.
    Check(CheckArgs),
    /// Write a synthetic corpus (deterministic for a seed) for benchmarks and trials.
    Generate(GenerateArgs),
    /// Measure throughput: run the cascade at one or more thread counts and report, per step and
    /// per stage, CPU time, share and MB/s (tokens/s for a classifier), with end-to-end MB/s,
    /// docs/s and peak memory.
    Bench(BenchArgs),
    /// Read what a run removed and why: summary, show (text with matches marked), export.
    Audit(crate::audit_cmd::AuditArgs),
    /// Write OUT_DIR/report.html: charts and sampled dropped documents, self-contained.
    Report(crate::audit_cmd::ReportArgs),
    /// Re-decide a finished run under new thresholds from its audit records, without running
    /// any stage, into a new output directory identical to a fresh run.
    Rethreshold(crate::audit_cmd::RethresholdArgs),
    /// Screen a fine-tuning dataset: verdict accept (exit 0), review (1) or reject (2).
    Screen(crate::audit_cmd::ScreenArgs),
    /// People decide the documents in review/: serve the review queue to a browser (prints its
    /// address; opens nothing), then apply the decisions, export them as labels, list
    /// disagreements, or re-decide a screen's verdict.
    Review(crate::review_cmd::ReviewArgs),
    /// Train a classifier from labeled JSONL into a model directory the classifier stage loads.
    Train(crate::train_cmd::TrainArgs),
    /// Measure the configured cascade on labeled JSONL: per-stage and overall precision/recall,
    /// ROC AUC of the classifier score, recall lost by the prefilter, a threshold sweep.
    Eval(crate::eval_cmd::EvalArgs),
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The TOML config (see configs/ and the README).
    #[arg(short, long)]
    pub config: PathBuf,
    /// Input shards (JSONL, optionally .zst/.zstd/.gz, or Parquet): files, directories or glob
    /// patterns (quote globs). Also URLs in object storage, read as streams: s3://bucket/prefix/
    /// (listed like a directory), s3://bucket/prefix/*.jsonl.zst, single objects, gs://, az://,
    /// abfs://, https:// (one object); JSONL only (not Parquet yet); credentials and endpoint from
    /// the environment (AWS_*, AWS_ENDPOINT_URL, GOOGLE_*, AZURE_*). Overrides input.paths.
    #[arg(short, long, num_args = 1..)]
    pub input: Vec<String>,
    /// Output directory, or a URL in object storage (outputs too): s3://bucket/prefix/, gs://,
    /// az://; each output object uploaded as it is written (multipart, 8 MiB parts) and visible
    /// only when complete; resume state kept as one completion object per shard. Overrides
    /// output.dir.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Worker threads (0 = one per core). Overrides run.threads.
    #[arg(short = 'j', long)]
    pub threads: Option<usize>,
    /// Redo every shard, even those an earlier run in the same output directory finished, and
    /// replace an earlier run made with another config. With a rank: redo its share, and re-pin
    /// the run to this config (every rank must then be re-run).
    #[arg(long)]
    pub force: bool,
    /// Follow symbolic links to directories inside input directories (loops are detected and
    /// reported); without it they are skipped and listed in the manifest.
    #[arg(long)]
    pub follow_symlinks: bool,
    /// No progress display and no summary; errors are still printed.
    #[arg(short, long)]
    pub quiet: bool,
    /// Device of the classifier stage: cpu, cuda, cuda:N or metal (cuda and metal need a build
    /// with that feature). Overrides the stage's `device`.
    #[arg(long)]
    pub device: Option<String>,
    /// Record layout: text, chat, sharegpt, alpaca, prompt-completion, auto. Overrides input.format.
    #[arg(long)]
    pub format: Option<sluice_core::document::InputFormat>,
    /// Run as rank R (0 to W-1) of a run spread over W processes or machines writing into one
    /// output directory: this rank filters its share of the shards (by bytes). Without it the
    /// rank is read from SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs) or
    /// SLURM_PROCID (in an srun step) when set. `sluice merge OUT` then writes the manifest and
    /// reports.
    #[arg(long, value_name = "R")]
    pub rank: Option<usize>,
    /// The number of ranks W. Needed by the first rank of an array or Indexed Job; later ranks
    /// may leave it out (OUT/ranks/run.json pins it). srun's SLURM_NTASKS gives it under srun.
    #[arg(long, value_name = "W")]
    pub world_size: Option<usize>,
    /// With a rank: accept another world size (or changed inputs) than the run was pinned to,
    /// once no rank of the old world runs: finished shards are kept, the rest re-partitioned.
    #[arg(long)]
    pub repartition: bool,
}

#[derive(clap::Args, Debug)]
pub struct MergeArgs {
    /// The output directory (or object storage URL, s3://bucket/prefix/) the ranks wrote into.
    pub out_dir: PathBuf,
    /// No summary; errors and what is missing are still printed.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The TOML config.
    #[arg(short, long)]
    pub config: PathBuf,
    /// Device of the classifier stage: cpu, cuda, cuda:N or metal (cuda and metal need a build
    /// with that feature). Overrides the stage's `device`.
    #[arg(long)]
    pub device: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// Total uncompressed size, e.g. 200MB, 5MiB, 1GB.
    #[arg(long, default_value = "100MB")]
    pub size: String,
    /// Number of shards to spread it over.
    #[arg(long, default_value_t = 8)]
    pub shards: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Fraction of documents that get 1 to 3 terms from --terms inserted.
    #[arg(long, default_value_t = 0.02)]
    pub hit_rate: f64,
    /// Term list (same format as the terms stage) to draw inserted terms from.
    #[arg(long, default_value = "configs/lists/hazard-terms.tsv")]
    pub terms: PathBuf,
    /// zstd | gzip | none
    #[arg(long, default_value = "zstd")]
    pub compression: String,
    /// Output directory (created).
    #[arg(short, long)]
    pub output: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// The TOML config to benchmark.
    #[arg(short, long)]
    pub config: PathBuf,
    /// Shards to run on: files, directories, glob patterns or object storage URLs (as for run).
    #[arg(short, long, num_args = 1.., conflicts_with = "generate")]
    pub input: Vec<String>,
    /// Generate a synthetic corpus of this size instead (e.g. 500MB), planting the config's terms.
    #[arg(long)]
    pub generate: Option<String>,
    /// Seed of the generated corpus.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Fraction of generated documents that contain terms.
    #[arg(long, default_value_t = 0.02)]
    pub hit_rate: f64,
    /// Shards of the generated corpus.
    #[arg(long, default_value_t = 8)]
    pub shards: usize,
    /// Thread counts to sweep, comma-separated (0 = one per core); with more than one, each runs
    /// in its own process so that its peak memory is its own.
    #[arg(short = 'j', long, value_delimiter = ',', default_value = "1,0")]
    pub threads: Vec<usize>,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Keep the generated corpus and outputs here instead of a removed temporary directory.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Device of the classifier stage: cpu, cuda, cuda:N or metal (cuda and metal need a build
    /// with that feature). Overrides the stage's `device`.
    #[arg(long)]
    pub device: Option<String>,
}
