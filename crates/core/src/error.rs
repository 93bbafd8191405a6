//! Typed errors. Messages are lowercase, one line, and name the key, shard or line at fault.

use std::path::PathBuf;

/// A problem with the configuration, found before any document is read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("config key {key}: {message}")]
    Invalid { key: String, message: String },
}

/// A problem that stops a run as a whole (a failing shard does not: it is recorded and the
/// other shards go on).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Io(#[from] sluice_io::IoError),
    #[error("no input: give --input or set input.paths in the config")]
    NoInput,
    #[error("no output directory: give --output or set output.dir in the config")]
    NoOutput,
    #[error("output directory {} is a file", path.display())]
    OutputIsFile { path: PathBuf },
    #[error(
        "output directory {} is the input {input}: its outputs would be read back as input; \
         write to another directory (one inside the input is fine: it is not read)",
        path.display()
    )]
    OutputIsInput { path: PathBuf, input: String },
    #[error("cannot create output directory {}: {source}", path.display())]
    CreateOutput {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "output directory {} holds a run with another config ({found}); use --force to replace it",
        path.display()
    )]
    ConfigChanged { path: PathBuf, found: String },
    #[error("cannot read manifest {}: {message}", path.display())]
    Manifest { path: PathBuf, message: String },
    #[error("two input shards map to the same output name `{name}`")]
    DuplicateShardName { name: String },
    #[error("cannot start worker threads: {0}")]
    Threads(String),
    /// Another run holds the output directory.
    #[error(transparent)]
    Locked(sluice_io::LockError),
    /// A rank of a run spread over several processes cannot run (see `ranks`).
    #[error(transparent)]
    Rank(#[from] crate::ranks::RankError),
    #[error(
        "interrupted by signal {signal}: {done} shards done, {pending} not finished; run the same \
         command again to resume (finished shards are kept, the others are redone; the output in \
         {} is incomplete until then)",
        path.display()
    )]
    Interrupted {
        signal: usize,
        done: usize,
        pending: usize,
        path: PathBuf,
    },
}
