//! How one shard flows from its file to verdicts and output shards. Read this file top to bottom
//! to follow a document.
//!
//! ```text
//!  reader thread                 worker pool (rayon)                  shard thread
//!  ─────────────                 ───────────────────                  ────────────
//!  decompress, cut lines   ──▶   per chunk: parse fields, run the  ──▶  reorder by chunk index,
//!  into ~4 MiB chunks            text stages, score the escalated       append frames to
//!  (waits for a permit)          ones with the classifier in batches,   kept/dropped/review/
//!                                route each raw line, write audit/      audit/errors, release permit
//!                                error records, compress each stream
//!                                as one frame
//! ```
//!
//! `process_chunk` is the verdict: a line is parsed (`document.rs`), judged by the text stages in
//! order (`Cascade::judge`: the first drop wins, an escalate sends it on), and held until enough
//! documents need the classifier for one batched call (`finish_documents`), which decides them by
//! its thresholds; then each document's raw line goes to its destination and its audit record is
//! written.
//!
//! * **Bounded memory.** A chunk is read only after taking a permit from a pool shared by all
//!   shards; the permit comes back when the chunk's output has been written. Memory is about
//!   `permits × chunk size × ~5`, whatever the shard size or count; permits are capped by
//!   bytes, not by threads (see `run::IN_FLIGHT_BYTES`).
//! * **Determinism.** Chunk boundaries depend only on the input bytes; each chunk's outputs are
//!   compressed as self-contained frames and appended in chunk order. The output is therefore
//!   byte-identical for any thread count and from run to run.
//! * **Nothing lost.** Every line becomes exactly one of kept / dropped / review / errors, and
//!   is counted there; an output shard appears under its final name only once it is complete.
//!   A line too long to hold (`input.max_line_bytes`) is streamed by the reader into
//!   `oversized/S` whole, and its error record points there.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use serde::Serialize;
use sluice_io::{
    compress_frame, empty_stream, open_shard, output_name, AtomicFile, Chunk, ChunkerOptions,
    Compression, LazyCompressedFile, Line, LineChunker, Shard,
};

use crate::config::{AuditScope, Config};
use crate::document::{Document, FieldExtractor, LineError};
use crate::stage::{Detail, Evidence, Outcome, Reason, Scratch, Stage, StageStats};
use crate::stages::ClassifierStage;
use crate::stats::{Destination, ShardStats, Timings};

/// The built cascade: stages plus everything needed to turn a line into a verdict and records.
pub struct Cascade {
    /// The text stages, in order.
    pub stages: Vec<Box<dyn Stage>>,
    /// The classifier, always last; its stats and timings sit at index `stages.len()`.
    pub classifier: Option<ClassifierStage>,
    pub extractor: FieldExtractor,
    pub audit: AuditScope,
    pub config_hash: String,
    pub max_line_bytes: usize,
    pub chunk_bytes: usize,
}

/// The decision about one document, with the evidence behind it.
pub struct Verdict {
    pub destination: Destination,
    pub escalated: bool,
    /// `(stage index, evidence)` for every stage that saw something.
    pub evidence: Vec<(usize, Evidence)>,
}

impl Cascade {
    pub fn new(config: &Config) -> Result<Cascade, crate::ConfigError> {
        Ok(Cascade {
            stages: config.build_stages()?,
            classifier: config.build_classifier()?,
            extractor: FieldExtractor::new(
                &config.input.text_field,
                config.input.id_field.as_deref(),
            ),
            audit: config.output.audit,
            config_hash: config.hash()?,
            max_line_bytes: config.input.max_line_bytes,
            chunk_bytes: config.run.chunk_bytes,
        })
    }

    /// Empty counters, one per stage (the classifier last), in cascade order.
    pub fn stage_stats(&self) -> Vec<StageStats> {
        (0..self.stage_count())
            .map(|i| {
                let (id, kind) = self.stage_name(i);
                StageStats::new(id, kind)
            })
            .collect()
    }

    /// Text stages plus the classifier, if any.
    pub fn stage_count(&self) -> usize {
        self.stages.len() + usize::from(self.classifier.is_some())
    }

    /// `(id, type)` of stage `i`; the classifier is the last index.
    pub fn stage_name(&self, i: usize) -> (&str, &'static str) {
        match (self.stages.get(i), &self.classifier) {
            (Some(stage), _) => (stage.id(), stage.kind()),
            (None, Some(classifier)) => (classifier.id(), "classifier"),
            (None, None) => ("?", "?"),
        }
    }

    /// Runs the text stages in order. The first `drop` wins and ends the cascade; an `escalate`
    /// sends the document on to the classifier (or, without one, to review); otherwise the
    /// document is kept. `stats` and `stage_time` have one entry per stage.
    pub fn judge(
        &self,
        doc: &Document<'_>,
        scratch: &mut Scratch,
        stats: &mut [StageStats],
        stage_time: &mut [Duration],
    ) -> Verdict {
        let mut evidence = Vec::new();
        let mut escalated = false;
        let mut dropped = false;
        for (i, stage) in self.stages.iter().enumerate() {
            stats[i].evaluated += 1;
            stats[i].text_bytes += doc.text.len() as u64;
            let started = Instant::now();
            let found = stage.evaluate(doc, scratch, &mut stats[i]);
            stage_time[i] += started.elapsed();
            let Some(e) = found else {
                continue;
            };
            stats[i].record_outcome(e.outcome);
            escalated |= e.outcome == Outcome::Escalate;
            dropped = e.outcome == Outcome::Drop;
            evidence.push((i, e));
            if dropped {
                break;
            }
        }
        let destination = if dropped {
            Destination::Dropped
        } else if escalated {
            Destination::Review
        } else {
            Destination::Kept
        };
        Verdict {
            destination,
            escalated,
            evidence,
        }
    }

    /// Whether the classifier stage will score this document.
    fn wants_classifier(&self, verdict: &Verdict) -> bool {
        self.classifier
            .as_ref()
            .is_some_and(|c| c.wants(verdict.destination, verdict.escalated))
    }

    fn audits(&self, verdict: &Verdict) -> bool {
        match self.audit {
            AuditScope::Flagged => verdict
                .evidence
                .iter()
                .any(|(_, e)| e.outcome != Outcome::Pass),
            AuditScope::Matched => !verdict.evidence.is_empty(),
        }
    }
}

/// One audit line: a flagged document and every reason.
#[derive(Serialize)]
struct AuditRecord<'a> {
    id: &'a str,
    shard: &'a str,
    line: u64,
    offset: u64,
    decision: Destination,
    escalated: bool,
    reasons: Vec<&'a Reason>,
    stages: Vec<StageEntry<'a>>,
    config_hash: &'a str,
    sluice_version: &'a str,
}

#[derive(Serialize)]
struct StageEntry<'a> {
    stage: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    outcome: Outcome,
    #[serde(flatten)]
    detail: &'a Detail,
}

/// One line of `errors/`: enough to find and recover the line.
#[derive(Serialize)]
struct ErrorRecord<'a> {
    shard: &'a str,
    line: u64,
    offset: u64,
    bytes: u64,
    kind: &'a str,
    error: &'a str,
    /// The line itself when it is valid UTF-8 and not over the size limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<&'a str>,
    /// The line, base64-encoded, when it is not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_base64: Option<String>,
    /// A line over `input.max_line_bytes`: the file (relative to the output directory) that holds
    /// it whole, and its line number there.
    #[serde(skip_serializing_if = "Option::is_none")]
    spilled_to: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    spill_line: Option<u64>,
}

/// Where a shard's lines over `input.max_line_bytes` are kept whole, under the output directory.
pub const OVERSIZED_DIR: &str = "oversized";

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The five output streams of a shard, in this order on disk: `OUTPUT_DIRS[i]`.
pub const OUTPUT_DIRS: [&str; 5] = ["kept", "dropped", "review", "audit", "errors"];
const AUDIT: usize = 3;
const ERRORS: usize = 4;

fn stream_of(destination: Destination) -> usize {
    match destination {
        Destination::Kept => 0,
        Destination::Dropped => 1,
        Destination::Review => 2,
        Destination::Errors => ERRORS,
    }
}

/// What a worker hands back for one chunk: compressed frames per stream, and counters.
struct ChunkOutput {
    frames: [Vec<u8>; 5],
    stats: ShardStats,
    timings: Timings,
    bytes: u64,
}

/// A document of the chunk after the text stages, waiting for the classifier and its output.
struct Judged<'a> {
    line: &'a Line,
    bytes: &'a [u8],
    size: u64,
    doc: Document<'a>,
    verdict: Verdict,
}

/// Documents held between the text stages and the classifier: enough for well-filled classifier
/// batches, few enough that a chunk of tiny documents does not hold 100,000 verdicts at once.
const CLASSIFIER_CALL_DOCUMENTS: usize = 256;
const HELD_DOCUMENTS: usize = 4096;

/// Judges every line of a chunk and compresses the five streams. Each line is parsed and run
/// through the text stages (errors are written at once); the documents then wait in `held` until
/// enough need the classifier (or too many wait), when [`finish_documents`] scores them in one
/// batched call and writes them out in line order. Where the groups are cut depends only on the
/// chunk's content, so outputs stay identical whatever the thread count.
fn process_chunk(
    cascade: &Cascade,
    shard: &str,
    spill_file: &str,
    chunk: &Chunk,
    compression: Compression,
    level: i32,
) -> Result<ChunkOutput, String> {
    let started = Instant::now();
    let mut out = ChunkState {
        stats: ShardStats::new(&cascade.stage_stats()),
        timings: Timings::new(cascade.stage_count()),
        raw: Default::default(),
        id_buf: String::new(),
    };
    // Most lines usually go to kept: one allocation instead of doubling up to the chunk's size.
    out.raw[stream_of(Destination::Kept)].reserve(chunk.data.len() + chunk.lines.len());
    let mut scratch = Scratch::default();
    let mut held = Vec::new();
    let mut wanted = 0;
    for line in &chunk.lines {
        let bytes = &chunk.data[line.range.clone()];
        let size = line.oversized.unwrap_or(bytes.len() as u64) + 1;
        out.stats.input.add(size);
        let parse_started = Instant::now();
        let parsed = match line.oversized {
            Some(len) => Err(LineError {
                kind: "line_too_long",
                message: format!(
                    "line is {len} bytes, over input.max_line_bytes ({})",
                    cascade.max_line_bytes
                ),
            }),
            None => cascade.extractor.extract(bytes),
        };
        out.timings.parse += parse_started.elapsed();
        match parsed {
            Ok(doc) => {
                let verdict = cascade.judge(
                    &doc,
                    &mut scratch,
                    &mut out.stats.stages,
                    &mut out.timings.stages,
                );
                wanted += usize::from(cascade.wants_classifier(&verdict));
                held.push(Judged {
                    line,
                    bytes,
                    size,
                    doc,
                    verdict,
                });
                if cascade.classifier.is_none()
                    || wanted >= CLASSIFIER_CALL_DOCUMENTS
                    || held.len() >= HELD_DOCUMENTS
                {
                    finish_documents(cascade, shard, &mut held, &mut out)?;
                    wanted = 0;
                }
            }
            Err(error) => {
                write_error(
                    &mut out.raw[ERRORS],
                    shard,
                    spill_file,
                    line,
                    bytes,
                    size,
                    &error,
                )?;
                out.stats.errors.add(size);
                *out.stats
                    .error_kinds
                    .entry(error.kind.to_string())
                    .or_default() += 1;
            }
        }
    }
    finish_documents(cascade, shard, &mut held, &mut out)?;

    let ChunkState {
        stats,
        mut timings,
        raw,
        ..
    } = out;
    let compress_started = Instant::now();
    let mut frames: [Vec<u8>; 5] = Default::default();
    for (data, frame) in raw.iter().zip(frames.iter_mut()) {
        compress_frame(data, compression, level, frame).map_err(|e| e.to_string())?;
    }
    timings.compress = compress_started.elapsed();
    let accounted = timings.parse + timings.stages.iter().sum::<Duration>() + timings.compress;
    timings.route = started.elapsed().saturating_sub(accounted);
    Ok(ChunkOutput {
        frames,
        stats,
        timings,
        bytes: chunk.data.len() as u64,
    })
}

/// What a chunk has produced so far.
struct ChunkState {
    stats: ShardStats,
    timings: Timings,
    raw: [Vec<u8>; 5],
    id_buf: String,
}

/// Scores the held documents that need the classifier in one batched call, then routes every
/// held document and writes its audit record, in line order, and empties `held`.
fn finish_documents(
    cascade: &Cascade,
    shard: &str,
    held: &mut Vec<Judged<'_>>,
    out: &mut ChunkState,
) -> Result<(), String> {
    if let Some(classifier) = &cascade.classifier {
        let index = cascade.stages.len();
        let wanted: Vec<usize> = (0..held.len())
            .filter(|&i| cascade.wants_classifier(&held[i].verdict))
            .collect();
        if !wanted.is_empty() {
            let texts: Vec<&str> = wanted.iter().map(|&i| &*held[i].doc.text).collect();
            let classify_started = Instant::now();
            let scores = classifier.score_each(&texts);
            out.timings.stages[index] += classify_started.elapsed();
            let stage_stats = &mut out.stats.stages[index];
            let scores = scores?;
            for (&i, scored) in wanted.iter().zip(scores) {
                let j = &mut held[i];
                stage_stats.evaluated += 1;
                stage_stats.text_bytes += j.doc.text.len() as u64;
                let evidence = classifier.decide(scored, stage_stats);
                stage_stats.record_outcome(evidence.outcome);
                j.verdict.destination = ClassifierStage::destination(evidence.outcome);
                j.verdict.evidence.push((index, evidence));
            }
        }
    }

    for j in held.drain(..) {
        let verdict = &j.verdict;
        let stream = &mut out.raw[stream_of(verdict.destination)];
        stream.extend_from_slice(j.bytes);
        stream.push(b'\n');
        out.stats.flow_mut(verdict.destination).add(j.size);
        out.stats.escalated += u64::from(verdict.escalated);
        if cascade.audits(verdict) {
            let id: &str = match &j.doc.id {
                Some(id) => id,
                None => {
                    out.id_buf.clear();
                    use std::fmt::Write;
                    let _ = write!(out.id_buf, "{shard}:{}", j.line.number);
                    &out.id_buf
                }
            };
            let record = AuditRecord {
                id,
                shard,
                line: j.line.number,
                offset: j.line.offset,
                decision: verdict.destination,
                escalated: verdict.escalated,
                reasons: verdict
                    .evidence
                    .iter()
                    .flat_map(|(_, e)| e.reasons.iter())
                    .collect(),
                stages: verdict
                    .evidence
                    .iter()
                    .map(|(i, e)| {
                        let (stage, kind) = cascade.stage_name(*i);
                        StageEntry {
                            stage,
                            kind,
                            outcome: e.outcome,
                            detail: &e.detail,
                        }
                    })
                    .collect(),
                config_hash: &cascade.config_hash,
                sluice_version: VERSION,
            };
            serde_json::to_writer(&mut out.raw[AUDIT], &record).map_err(|e| e.to_string())?;
            out.raw[AUDIT].push(b'\n');
            out.stats.audited += 1;
        }
    }
    Ok(())
}

fn write_error(
    out: &mut Vec<u8>,
    shard: &str,
    spill_file: &str,
    line: &Line,
    bytes: &[u8],
    size: u64,
    error: &LineError,
) -> Result<(), String> {
    let utf8 = std::str::from_utf8(bytes).ok();
    let record = ErrorRecord {
        shard,
        line: line.number,
        offset: line.offset,
        bytes: size - 1,
        kind: error.kind,
        error: &error.message,
        raw: utf8.filter(|_| line.oversized.is_none()),
        raw_base64: match (utf8, line.oversized) {
            (None, None) => Some(base64_encode(bytes)),
            _ => None,
        },
        spilled_to: line.spill_line.map(|_| spill_file),
        spill_line: line.spill_line,
    };
    serde_json::to_writer(&mut *out, &record).map_err(|e| e.to_string())?;
    out.push(b'\n');
    Ok(())
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
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
    pub output_dir: &'a Path,
    pub progress: Option<&'a dyn Progress>,
}

/// A shard that completed: its counters and output names.
pub struct ShardDone {
    pub stats: ShardStats,
    pub timings: Timings,
    pub input_compression: Compression,
    pub output_compression: Compression,
    pub output_name: String,
}

enum Message {
    Chunk(u64, Result<Box<ChunkOutput>, String>),
    End {
        chunks: u64,
        error: Option<String>,
        read_time: Duration,
    },
}

impl ShardRunner<'_> {
    /// Filters one shard into its five outputs. On error nothing appears under a final name and
    /// the message says what failed; the caller marks the shard failed and goes on.
    pub fn run(&self, shard: &Shard) -> Result<ShardDone, String> {
        let (input_compression, reader) = open_shard(&shard.path).map_err(|e| e.to_string())?;
        let compression = self.config.output_compression(input_compression);
        let level = self.config.compression_level(compression);
        let name = output_name(&shard.name, compression);
        let mut files = Vec::with_capacity(OUTPUT_DIRS.len());
        for dir in OUTPUT_DIRS {
            files.push(
                AtomicFile::create(&self.output_dir.join(dir).join(&name))
                    .map_err(|e| e.to_string())?,
            );
        }
        let options = ChunkerOptions {
            target_chunk_bytes: self.cascade.chunk_bytes,
            max_line_bytes: self.cascade.max_line_bytes,
        };
        let mut chunker = LineChunker::new(reader, options);
        let (tx, rx) = unbounded::<Message>();
        let shard_name = shard.name.as_str();
        let spill_file = format!("{OVERSIZED_DIR}/{name}");
        let spill_file = spill_file.as_str();
        // Created on the shard's first oversized line; most shards have none.
        let mut spill =
            LazyCompressedFile::new(self.output_dir.join(spill_file), compression, level);

        let collected = std::thread::scope(|scope| {
            scope.spawn(|| {
                let tx = tx;
                let mut chunks = 0u64;
                let mut read_time = Duration::ZERO;
                let error = self.pool.in_place_scope(|tasks| loop {
                    self.permits.acquire();
                    let mut chunk = Chunk::default();
                    let started = Instant::now();
                    let read = chunker.next_chunk_spilling(&mut chunk, Some(&mut spill));
                    read_time += started.elapsed();
                    match read {
                        Ok(true) => {
                            let index = chunks;
                            chunks += 1;
                            let tx = tx.clone();
                            tasks.spawn(move |_| {
                                let result = catch_unwind(AssertUnwindSafe(|| {
                                    process_chunk(
                                        self.cascade,
                                        shard_name,
                                        spill_file,
                                        &chunk,
                                        compression,
                                        level,
                                    )
                                }))
                                .unwrap_or_else(|panic| Err(panic_message(panic)))
                                .map(Box::new);
                                let _ = tx.send(Message::Chunk(index, result));
                            });
                        }
                        Ok(false) => {
                            self.permits.release();
                            break None;
                        }
                        Err(e) => {
                            self.permits.release();
                            break Some(e.to_string());
                        }
                    }
                });
                let _ = tx.send(Message::End {
                    chunks,
                    error,
                    read_time,
                });
            });
            self.collect(&rx, &mut files)
        });
        let Collected {
            stats,
            mut timings,
            written,
            failure,
        } = collected;
        if let Some(message) = failure {
            return Err(message);
        }
        let write_started = Instant::now();
        for (file, written) in files.iter_mut().zip(written) {
            if !written {
                use std::io::Write;
                file.write_all(&empty_stream(compression))
                    .map_err(|e| format!("cannot write {}: {e}", file.path().display()))?;
            }
        }
        // The spill first: if it fails, none of the five outputs is in place yet.
        spill.finish().map_err(|e| e.to_string())?;
        for file in files {
            file.finish().map_err(|e| e.to_string())?;
        }
        timings.write += write_started.elapsed();
        Ok(ShardDone {
            stats,
            timings,
            input_compression,
            output_compression: compression,
            output_name: name,
        })
    }

    /// Receives chunk results, writes them in chunk order, returns permits. Keeps draining after
    /// a failure so that every permit comes back.
    fn collect(&self, rx: &Receiver<Message>, files: &mut [AtomicFile]) -> Collected {
        use std::io::Write;
        let mut stats = ShardStats::new(&self.cascade.stage_stats());
        let mut timings = Timings::new(self.cascade.stage_count());
        let mut written = [false; 5];
        let mut failure: Option<String> = None;
        let mut pending = std::collections::BTreeMap::new();
        let mut next = 0u64;
        let mut total: Option<u64> = None;
        while total != Some(next) {
            match rx.recv() {
                Ok(Message::Chunk(index, result)) => {
                    pending.insert(index, result);
                }
                Ok(Message::End {
                    chunks,
                    error,
                    read_time,
                }) => {
                    timings.read += read_time;
                    total = Some(chunks);
                    if failure.is_none() {
                        failure = error;
                    }
                }
                Err(_) => {
                    failure.get_or_insert_with(|| "internal error: reader vanished".into());
                    break;
                }
            }
            while let Some(result) = pending.remove(&next) {
                next += 1;
                self.permits.release();
                if failure.is_some() {
                    continue;
                }
                match result {
                    Ok(out) => {
                        let write_started = Instant::now();
                        for (i, frame) in out.frames.iter().enumerate() {
                            if frame.is_empty() {
                                continue;
                            }
                            if let Err(e) = files[i].write_all(frame) {
                                failure = Some(format!(
                                    "cannot write {}: {e}",
                                    files[i].path().display()
                                ));
                                break;
                            }
                            written[i] = true;
                        }
                        timings.write += write_started.elapsed();
                        stats.merge(&out.stats);
                        timings.merge(&out.timings);
                        if let Some(p) = self.progress {
                            p.chunk_done(out.bytes);
                        }
                    }
                    Err(e) => failure = Some(e),
                }
            }
        }
        Collected {
            stats,
            timings,
            written,
            failure,
        }
    }
}

/// What the shard thread gathered from the chunk results.
struct Collected {
    stats: ShardStats,
    timings: Timings,
    /// Which of the five streams received at least one frame.
    written: [bool; 5],
    failure: Option<String>,
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("internal error: {message}")
}
