//! # sluice-review: people decide the borderline documents
//!
//! The cascade sends what it cannot settle to `review/`, "for a person". This crate is that
//! person's side: `sluice review OUT` serves a queue of those documents (and, for quality
//! control, seeded samples of `kept/` and `dropped/`) to a browser, records each decision, and
//! puts the decisions to use.
//!
//! **The queue** ([`index`]) is built by one walk of the output directory at start (the
//! walker of `sluice-audit`, so JSONL, compressed and Parquet outputs alike). It keeps a compact
//! entry per document in memory: shard and line, score, reason and category keys, the hash of
//! its audit record, and where its line and record lie in two unnamed temporary files the walk
//! copies them to. A page asks for one document at a time, by its position in the filtered
//! queue, so 100,000 queued documents cost an index, not a page holding them all.
//!
//! **Decisions** ([`decisions`]) are append-only JSONL under `OUT/reviews/`, a file per
//! reviewer: who, when, the document's id, shard and line, where the cascade sent it, the hash
//! of the audit record it was decided on, keep / drop / skip / undo, and a note. Nothing is
//! rewritten (an undo is a record too), so a restart reads the same state back, several
//! reviewers never write the same file, and a decision made on evidence that has since changed
//! (a rethreshold, a rerun) is recognised by its hash and not applied. Two reviewers on one
//! document are both recorded; when one keeps and the other drops, the document is a
//! *disagreement*: listed, and left where the cascade put it.
//!
//! **What the decisions do** ([`outcome`]): `apply` writes a new output directory through
//! `sluice-audit`'s rethreshold, which re-decides every audited document with the run's own
//! decision code and writer; the agreed decisions on documents of `review/` move them to kept or
//! dropped there, cite the decision records in their audit records, and are counted in the
//! report (`reviewed`). With no decision, `apply` is byte for byte `rethreshold` with unchanged
//! settings. `export-labels` writes the decided documents as labeled JSONL for `sluice train`
//! and `sluice eval`; `verdict` recounts a screen's flagged documents with the decisions.
//!
//! **The server** ([`server`]) is axum on tokio. Its page, script and style are written for it
//! and compiled into the binary; nothing is fetched from elsewhere. Security model: bound to
//! 127.0.0.1 unless told otherwise; a 256-bit token from the operating system's random source is
//! required on every request (the printed address carries it; the page sends it as a header);
//! every response carries a Content-Security-Policy of `default-src 'none'` with script, style
//! and API calls from the server only, and no inline script at all. Corpus text reaches the page
//! only as JSON strings the script puts into the page with `textContent`: it never becomes
//! markup, so a document holding `<script>` shows those characters and runs nothing.

pub mod decisions;
pub mod index;
pub mod outcome;
pub mod server;

use std::path::{Path, PathBuf};

pub use server::{ServeOptions, Server};

/// What can go wrong reviewing. Messages are lowercase and name the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error(transparent)]
    Audit(#[from] sluice_audit::AuditError),
    #[error("cannot read {}: {message}", path.display())]
    Read { path: PathBuf, message: String },
    #[error("cannot write {}: {message}", path.display())]
    Write { path: PathBuf, message: String },
    #[error("{}: line {line}: {message}", path.display())]
    Decision {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("invalid {what}: {message}")]
    Usage { what: String, message: String },
    #[error("cannot serve the review queue: {0}")]
    Serve(String),
}

impl ReviewError {
    pub fn usage(what: impl Into<String>, message: impl Into<String>) -> ReviewError {
        ReviewError::Usage {
            what: what.into(),
            message: message.into(),
        }
    }

    fn read(path: &Path, e: impl std::fmt::Display) -> ReviewError {
        ReviewError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }

    fn write(path: &Path, e: impl std::fmt::Display) -> ReviewError {
        ReviewError::Write {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }

    /// Whether the user can fix it (a flag, a name, a directory that is not an output).
    pub fn is_usage(&self) -> bool {
        match self {
            ReviewError::Usage { .. } => true,
            ReviewError::Audit(e) => e.is_usage(),
            _ => false,
        }
    }
}
