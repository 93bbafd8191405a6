//! # sluice-core: the filtering cascade
//!
//! A corpus is a set of JSONL shards; a run sends every line of every shard to exactly one of
//! `kept/`, `dropped/`, `review/` or `errors/`, and writes an audit record for every document a
//! stage flagged. This crate holds everything between the command line and the bytes:
//!
//! * [`config`]: the TOML config (serde structs with `deny_unknown_fields`), validated and
//!   compiled into stages before any document is read.
//! * [`stage`]: the `Stage` trait: a document in, optional [`stage::Evidence`] out, with an
//!   [`stage::Outcome`] (`pass`, `tag`, `escalate`, `drop`).
//! * [`stages`]: one file per stage type (`rules`: a `RegexSet` pass; `terms`: large term
//!   lists on aho-corasick via `sluice-terms`).
//! * [`pipeline`]: **the one file that shows how a document flows** from a shard to a verdict:
//!   reader thread → chunk tasks on a rayon pool → ordered writer; the cascade's decision rule.
//! * [`eval`]: the cascade measured on labeled JSONL (`sluice eval`): per-stage and overall
//!   precision/recall, ROC AUC of the classifier score, recall lost by the prefilter, sweeps.
//! * [`run`](mod@run): many shards, resume from `manifest.json`, the final `report.json`.
//!
//! Design rules: outputs are byte-identical whatever the thread count (chunk boundaries depend
//! only on input bytes, each chunk is compressed as its own frame); memory is bounded by a fixed
//! number of chunks in flight; lines are copied to outputs byte for byte, never re-serialized;
//! every outcome is counted by reason.

pub mod config;
pub mod document;
mod error;
pub mod eval;
pub mod pipeline;
pub mod run;
pub mod stage;
pub mod stages;
pub mod stats;
pub mod synthetic;

pub use config::Config;
pub use error::{ConfigError, RunError};
pub use pipeline::{Cascade, Progress, VERSION};
pub use run::{run, Manifest, Report, RunOptions};
