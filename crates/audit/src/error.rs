//! Typed errors. Messages are lowercase, one line, and name the file, shard or key at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{} is not a sluice output directory (no manifest.json)", path.display())]
    NotAnOutput { path: PathBuf },
    #[error(
        "{} holds a run spread over ranks that is not merged (or a rank ran since the last \
         merge): run `sluice merge {}` first",
        path.display(),
        path.display()
    )]
    Unmerged { path: PathBuf },
    #[error("cannot read {}: {message}", path.display())]
    Read { path: PathBuf, message: String },
    #[error("cannot write {}: {message}", path.display())]
    Write { path: PathBuf, message: String },
    #[error("{}: line {line}: {message}", path.display())]
    Record {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("shard {shard}: {message}")]
    Inconsistent { shard: String, message: String },
    #[error("invalid {what}: {message}")]
    Usage { what: String, message: String },
    #[error("cannot re-threshold: {0}")]
    Rethreshold(String),
    #[error(transparent)]
    Config(#[from] sluice_core::ConfigError),
    #[error(transparent)]
    Run(#[from] sluice_core::RunError),
}

impl AuditError {
    pub fn usage(what: impl Into<String>, message: impl Into<String>) -> AuditError {
        AuditError::Usage {
            what: what.into(),
            message: message.into(),
        }
    }

    /// Whether the error is the user's to fix (bad flag, key or selection) rather than a broken
    /// directory or I/O.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            AuditError::Usage { .. }
                | AuditError::Rethreshold(_)
                | AuditError::NotAnOutput { .. }
                | AuditError::Unmerged { .. }
                | AuditError::Config(_)
        )
    }
}
