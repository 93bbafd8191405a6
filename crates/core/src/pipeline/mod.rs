//! How one shard flows from its file to verdicts and output shards. Three files, in flow order:
//!
//! 1. **this file**, the shard: a reader thread cuts the decompressed shard into chunks (each
//!    taken with a permit), chunk tasks run on the worker pool, and the shard thread appends
//!    their frames in chunk order through a [`ShardWriter`](crate::output::ShardWriter);
//! 2. [`chunk`]: one chunk: each line is parsed (`document.rs`) or becomes an error record;
//!    documents go through the cascade, then each raw line goes to its destination stream, its
//!    audit record is written and its verdict counted; the five streams are encoded as frames;
//! 3. [`parquet`]: a Parquet shard takes the same path with row batches for chunks;
//! 4. [`cascade`]: one document (or a batch of them) through the stages, in order, each measuring
//!    and its config deciding (`decision.rs` combines the outcomes).
//!
//! ```text
//!  reader thread                 worker pool (rayon)                   shard thread
//!  ─────────────                 ───────────────────                   ────────────
//!  decompress, cut lines   ──▶   per chunk: parse, cascade (text  ──▶  reorder by chunk index,
//!  into ~4 MiB chunks            stages per document, batched          append frames to kept/
//!  (waits for a permit);         stages per group of documents),       dropped/review/audit/
//!  long lines → oversized/       route, records, encode frames         errors, release permit
//! ```
//!
//! * **Bounded memory.** A chunk is read only after taking a permit from a pool shared by all
//!   shards; the permit comes back when the chunk's output has been written. Memory is about
//!   `permits × chunk size × ~5`, whatever the shard size or count; permits are capped by
//!   bytes, not by threads (see `run::IN_FLIGHT_BYTES`).
//! * **Determinism.** Chunk boundaries depend only on the input bytes; each chunk's outputs are
//!   encoded as self-contained frames and appended in chunk order. The output is therefore
//!   byte-identical for any thread count and from run to run.
//! * **Nothing lost.** Every line becomes exactly one of kept / dropped / review / errors, and
//!   is counted there; an output shard appears under its final name only once it is complete.
//!   A line too long to hold (`input.max_line_bytes`) is streamed by the reader into
//!   `oversized/S` whole, and its error record points there.

pub mod cascade;
pub mod chunk;
pub mod gather;
pub mod parquet;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use sluice_io::{
    open_shard_observed, output_name, Chunk, ChunkerOptions, Compression, IoError, LineChunker,
    Shard,
};

use crate::config::Config;
use crate::output::{Encoding, ShardWriter, Storage, StreamSinks, WriteError};
use crate::stage::StageError;
use crate::stats::{ShardStats, Timings};

pub use cascade::Cascade;
use chunk::ChunkOutput;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why a shard failed. The run records it and goes on with the other shards.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// The shard cannot be opened or read (missing, corrupt, truncated).
    #[error(transparent)]
    Read(#[from] IoError),
    #[error(transparent)]
    Write(#[from] WriteError),
    /// A stage failed on a whole batch (a model error with `on_error = "fail"`).
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error("cannot write a record: {0}")]
    Record(#[from] serde_json::Error),
    /// A bug: a chunk task panicked.
    #[error("internal error: {0}")]
    Internal(String),
    /// The run was told to stop (a signal) before the shard was finished.
    #[error("interrupted")]
    Interrupted,
}

/// A counting semaphore shared by every shard: a chunk is read only with a permit in hand.
pub struct Permits {
    give: Sender<()>,
    take: Receiver<()>,
}

impl Permits {
    pub fn new(count: usize) -> Permits {
        let (give, take) = bounded(count);
        for _ in 0..count {
            give.send(()).expect("channel has room");
        }
        Permits { give, take }
    }
    fn acquire(&self) {
        self.take.recv().expect("permits outlive their users");
    }
    fn release(&self) {
        let _ = self.give.send(());
    }
}

/// Called as chunks complete, for progress display.
pub trait Progress: Send + Sync {
    fn chunk_done(&self, uncompressed_bytes: u64);
}

/// Everything a shard run needs, shared across shards.
pub struct ShardRunner<'a> {
    pub cascade: &'a Cascade,
    pub config: &'a Config,
    pub pool: &'a rayon::ThreadPool,
    pub permits: &'a Permits,
    pub storage: &'a dyn Storage,
    pub progress: Option<&'a dyn Progress>,
    /// Set when the run must stop (see `RunOptions::stop`).
    pub stop: Option<&'a std::sync::atomic::AtomicUsize>,
}

/// A shard that completed: its counters and output names.
pub struct ShardDone {
    pub stats: ShardStats,
    pub timings: Timings,
    pub input_compression: Compression,
    pub output_compression: Compression,
    pub output_name: String,
    /// The name of its `audit/` and `errors/` files where it is not `output_name` (a Parquet
    /// shard's records are JSONL: `N.jsonl.zst`).
    pub records_name: Option<String>,
    /// SHA-256 (hex) of the input file's bytes as stored, hashed as they were read.
    pub input_sha256: String,
}

/// Hashes the bytes it passes on (the shard file as stored, before decompression).
struct Hashing {
    inner: Box<dyn std::io::Read + Send>,
    hasher: std::sync::Arc<std::sync::Mutex<sha2::Sha256>>,
}

impl std::io::Read for Hashing {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use sha2::Digest;
        let n = self.inner.read(buf)?;
        self.hasher.lock().expect("hasher lock").update(&buf[..n]);
        Ok(n)
    }
}

/// What a shard's reader sends the shard thread: each judged piece (a JSONL chunk, a Parquet
/// batch) under its index, then how many there were.
enum Message<T> {
    Piece(u64, Result<Box<T>, ShardError>),
    End {
        pieces: u64,
        error: Option<ShardError>,
        read_time: Duration,
    },
}

/// The counts of a judged piece, which the shard thread adds up whatever the format.
trait Judged {
    fn counts(&self) -> (&ShardStats, &Timings, u64);
}

impl Judged for ChunkOutput {
    fn counts(&self) -> (&ShardStats, &Timings, u64) {
        (&self.stats, &self.timings, self.bytes)
    }
}

impl ShardRunner<'_> {
    /// Filters one shard into its five outputs. On error nothing appears under a final name; the
    /// caller marks the shard failed and goes on.
    pub fn run(&self, shard: &Shard) -> Result<ShardDone, ShardError> {
        let format = match &shard.remote {
            Some(object) => sluice_io::remote_shard_format(object)?,
            None => sluice_io::shard_format(&shard.path)?,
        };
        if format == sluice_io::ShardFormat::Parquet {
            return self.run_parquet(shard);
        }
        // The input is hashed as it is read (SHA-256 runs at ~1.2 GB/s with SHA-NI, over the
        // compressed bytes: ~3% of a core at 100 MB/s of uncompressed input).
        let hasher =
            std::sync::Arc::new(std::sync::Mutex::new(<sha2::Sha256 as sha2::Digest>::new()));
        let hashing = |raw| -> Box<dyn std::io::Read + Send> {
            Box::new(Hashing {
                inner: raw,
                hasher: hasher.clone(),
            })
        };
        let (input_compression, reader) = match &shard.remote {
            Some(object) => sluice_io::open_remote_shard_observed(object, hashing)?,
            None => open_shard_observed(&shard.path, hashing)?,
        };
        let compression = self.config.output_compression(input_compression);
        let encoding = Encoding {
            compression,
            level: self.config.compression_level(compression),
        };
        let name = output_name(&shard.name, compression);
        let mut writer = ShardWriter::create(self.storage, &name, encoding)?;
        let spill_name = writer.spill_name().to_string();
        let chunker = LineChunker::new(
            reader,
            ChunkerOptions {
                target_chunk_bytes: self.cascade.chunk_bytes,
                max_line_bytes: self.cascade.max_line_bytes,
            },
        );
        let (tx, rx) = unbounded::<Message<ChunkOutput>>();
        let (streams, spill) = writer.parts();
        let context = chunk::Context {
            cascade: self.cascade,
            shard: &shard.name,
            spill_name: &spill_name,
            encoding,
        };
        let collected = std::thread::scope(|scope| {
            scope.spawn(|| self.read(chunker, spill, &context, tx));
            self.collect(&rx, streams)
        });
        let (stats, timings) = collected?;
        // Not timed: the fsync is waiting for the disk, not CPU, and the steps' times are scaled
        // to the process's CPU time (`run::step_times`).
        writer.finish()?;
        let digest = std::mem::take(&mut *hasher.lock().expect("hasher lock"));
        Ok(ShardDone {
            stats,
            timings,
            input_compression,
            output_compression: compression,
            output_name: name,
            records_name: None,
            input_sha256: crate::config::hex(&sha2::Digest::finalize(digest)),
        })
    }

    /// The reader thread: takes a permit, reads a chunk (streaming oversized lines into the
    /// spill), hands it to the pool; at the end (or on a read error) says how many chunks there
    /// were.
    fn read<R: std::io::BufRead>(
        &self,
        mut chunker: LineChunker<R>,
        spill: &mut crate::output::Spill<'_>,
        context: &chunk::Context<'_>,
        tx: Sender<Message<ChunkOutput>>,
    ) {
        let mut chunks = 0u64;
        let mut read_time = Duration::ZERO;
        let error = self.pool.in_place_scope(|tasks| loop {
            self.permits.acquire();
            if crate::run::stopped(self.stop).is_some() {
                self.permits.release();
                break Some(ShardError::Interrupted);
            }
            let mut chunk = Chunk::default();
            let started = Instant::now();
            let read = chunker.next_chunk_spilling(&mut chunk, Some(&mut *spill));
            read_time += started.elapsed();
            match read {
                Ok(true) => {
                    let index = chunks;
                    chunks += 1;
                    let tx = tx.clone();
                    tasks.spawn(move |_| {
                        let result =
                            catch_unwind(AssertUnwindSafe(|| chunk::process(context, &chunk)))
                                .unwrap_or_else(|panic| {
                                    Err(ShardError::Internal(panic_message(panic)))
                                })
                                .map(Box::new);
                        let _ = tx.send(Message::Piece(index, result));
                    });
                }
                Ok(false) => {
                    self.permits.release();
                    break None;
                }
                Err(e) => {
                    self.permits.release();
                    break Some(ShardError::Read(e));
                }
            }
        });
        let _ = tx.send(Message::End {
            pieces: chunks,
            error,
            read_time,
        });
    }

    /// The shard thread: writes chunk results in chunk order.
    fn collect(
        &self,
        rx: &Receiver<Message<ChunkOutput>>,
        streams: &mut StreamSinks<'_>,
    ) -> Result<(ShardStats, Timings), ShardError> {
        self.collect_in_order(rx, |out, timings| {
            // The frames are encoded: the chunk's memory is no longer needed.
            self.permits.release();
            let write_started = Instant::now();
            let written = streams.write(&out.frames).map_err(ShardError::from);
            timings.write += write_started.elapsed();
            written
        })
    }

    /// Receives a shard's judged pieces, hands them to `write` in index order and adds up their
    /// counts. `write` returns the piece's permit when its memory is free; a piece not written
    /// (after a failure) returns it here. Keeps draining after a failure so that every permit
    /// comes back; the first failure is the shard's.
    fn collect_in_order<T: Judged>(
        &self,
        rx: &Receiver<Message<T>>,
        mut write: impl FnMut(Box<T>, &mut Timings) -> Result<(), ShardError>,
    ) -> Result<(ShardStats, Timings), ShardError> {
        let mut stats = ShardStats::new(&self.cascade.stage_stats());
        let mut timings = Timings::new(self.cascade.stage_count());
        let mut failure: Option<ShardError> = None;
        let mut pending = BTreeMap::new();
        let mut next = 0u64;
        let mut total: Option<u64> = None;
        while total != Some(next) {
            match rx.recv() {
                Ok(Message::Piece(index, result)) => {
                    pending.insert(index, result);
                }
                Ok(Message::End {
                    pieces,
                    error,
                    read_time,
                }) => {
                    timings.read += read_time;
                    total = Some(pieces);
                    if failure.is_none() {
                        failure = error;
                    }
                }
                Err(_) => {
                    failure.get_or_insert(ShardError::Internal("reader vanished".into()));
                    break;
                }
            }
            while let Some(result) = pending.remove(&next) {
                next += 1;
                match result {
                    Ok(out) if failure.is_none() => {
                        let (piece_stats, piece_timings, bytes) = out.counts();
                        stats.merge(piece_stats);
                        timings.merge(piece_timings);
                        if let Some(p) = self.progress {
                            p.chunk_done(bytes);
                        }
                        if let Err(e) = write(out, &mut timings) {
                            failure = Some(e);
                        }
                    }
                    Ok(_) => self.permits.release(),
                    Err(e) => {
                        self.permits.release();
                        failure.get_or_insert(e);
                    }
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok((stats, timings)),
        }
    }
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
