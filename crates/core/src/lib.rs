//! # sluice-core: the filtering cascade
//!
//! A corpus is a set of JSONL or Parquet shards; a run sends every line (row) of every shard to
//! exactly one of `kept/`, `dropped/`, `review/` or `errors/`, and writes an audit record for
//! every document a stage flagged. This crate holds everything between the command line and the bytes:
//!
//! * [`config`]: the TOML config (serde structs with `deny_unknown_fields`), validated and
//!   compiled into stages before any document is read.
//! * [`stage`]: what a stage is: its config decides, its runtime measures, its evidence is
//!   recorded, counted and explained (three traits, see the module essay).
//! * [`stages`]: one file per stage type and the registry (one line per type) that generates the
//!   enums the rest works with.
//! * [`decision`]: **the cascade's rule**, written once: outcomes, how they combine into a
//!   verdict, how a verdict is counted. `run`, `eval` and `rethreshold` decide through it.
//! * [`pipeline`]: how a document flows from a shard to a verdict, in three files in flow order:
//!   the shard (reader thread, worker pool, ordered writer), the chunk, the cascade; a Parquet
//!   shard takes the same path with row batches for chunks (`pipeline::parquet`).
//! * [`rows`]: the documents of an Arrow row batch (a Parquet shard's text and id columns).
//! * [`records`]: audit and error records, one type each for writing and reading.
//! * [`output`]: a shard's output streams, their encoding and where the bytes live.
//! * [`eval`]: the cascade measured on labeled JSONL (`sluice eval`); [`labeled`] reads it.
//! * [`run`](mod@run): many shards, resume from `manifest.json`, the final `report.json`.
//! * [`ranks`]: one run spread over many machines: ranks, completion records, `merge`.
//!
//! Design rules: outputs are byte-identical whatever the thread count (chunk boundaries depend
//! only on input bytes, each chunk is compressed as its own frame); memory is bounded by a fixed
//! number of chunks in flight; lines are copied to outputs byte for byte, never re-serialized;
//! every outcome is counted by reason.

pub mod config;
pub mod decision;
pub mod document;
mod error;
pub mod eval;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod labeled;
pub mod output;
pub mod pipeline;
pub mod ranks;
pub mod records;
pub mod rows;
pub mod run;
pub mod stage;
pub mod stages;
pub mod stats;
pub mod synthetic;

/// The seeded generator sluice uses wherever a seed must give the same numbers (samples,
/// synthetic corpora, training), from the classifier crate.
pub use sluice_classifier::rng;

pub use config::Config;
pub use error::{ConfigError, RunError};
pub use pipeline::{Cascade, Progress, ShardError, VERSION};
pub use run::{run, Manifest, Report, RunOptions};
