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
//! * [`record`]: the audit record as typed data, readable and re-writable byte for byte.
//! * [`select`]: filters (reason, rule, term, category, decision, id, score range) and
//!   deterministic reservoir sampling with a seeded PRNG.
//! * [`highlight`]: matched spans (byte offsets into the text, on character boundaries) marked
//!   with ANSI colour, `[[...]]` markers, or HTML `<mark>` with everything else escaped.
//! * [`summary`]: counts per destination, reason, term, shard and a score histogram.
//! * [`html`]: the self-contained `report.html` (inline CSS and SVG; one measuring script, pinned
//!   by its hash in the page's Content-Security-Policy).
//! * [`rethreshold`]: re-decides every audited document from its recorded evidence under new
//!   thresholds and writes a new output directory byte-identical to a fresh run.
//! * [`screen`]: the accept / review / reject verdict on a fine-tuning dataset.

mod error;
pub mod highlight;
pub mod html;
pub mod outdir;
pub mod record;
pub mod rethreshold;
pub mod screen;
pub mod select;
pub mod summary;

pub use error::AuditError;
pub use outdir::OutDir;
