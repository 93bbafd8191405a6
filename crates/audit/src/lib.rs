//! # sluice-audit: reading what a run removed, and why
//!
//! A `sluice run` leaves an output directory: `kept/`, `dropped/`, `review/` (input lines byte for
//! byte, input order), `audit/` (one JSON record per flagged document, with every stage's
//! evidence), `errors/`, `manifest.json` and `report.json`. This crate reads such a directory
//! **without running any stage** and **without loading it whole**: every shard is decompressed by
//! its magic bytes and streamed line by line, so millions of records cost time, not memory.
//!
//! * [`outdir`]: the directory: manifest, report, and a [`outdir::ShardWalker`] that rebuilds a
//!   shard's input order by merging kept/dropped/review with the audit and error records (an
//!   audit record names its line and destination; unaudited documents are in `kept/` in order).
//! * audit and error records are `sluice_core::records`' types, the ones the pipeline writes:
//!   a reader that does not know a stage's evidence cannot compile.
//! * [`select`]: filters (reason, rule, term, category, decision, id, score range) and
//!   deterministic reservoir sampling with a seeded PRNG.
//! * [`highlight`]: matched spans (byte offsets into the text, on character boundaries) marked
//!   with ANSI colour, `[[...]]` markers, or HTML `<mark>` with everything else escaped.
//! * [`summary`]: counts per destination, reason, term, shard and a score histogram.
//! * [`html`]: the self-contained `report.html` (inline CSS and SVG; one measuring script, pinned
//!   by its hash in the page's Content-Security-Policy).
//! * [`rethreshold`]: decides every audited document again from its recorded evidence under new
//!   thresholds, with the run's own decision code and shard writer, into a new output directory
//!   byte-identical to a fresh run.
//! * [`screen`]: the accept / review / reject verdict on a fine-tuning dataset.
//! * [`triggers`]: the dataset-level trigger table (backdoor strings over-represented in flagged
//!   examples), in bounded memory.

mod error;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod highlight;
pub mod html;
pub mod outdir;
pub mod parquet_rows;
pub mod rethreshold;
pub mod screen;
pub mod select;
pub mod summary;
pub mod triggers;

pub use error::AuditError;
pub use outdir::OutDir;

/// An audit record read from a file.
pub type Record = sluice_core::records::AuditRecord<'static>;
