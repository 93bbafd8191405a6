//! One chunk, line by line: parse, judge, route, record, encode.
//!
//! Each line is parsed into a [`Document`] or becomes an error record. A document goes through
//! the cascade's per-document stages at once. Without a batched stage it is then routed at once;
//! with one, documents wait in a group until enough of them want the batched stage (or too many
//! wait), when the rest of the cascade runs on the whole group and its documents are routed in
//! line order. Where groups are cut depends only on the chunk's content, so outputs stay
//! identical whatever the thread count.
//!
//! Routing a document: its raw line goes to the stream of its destination, its verdict is counted
//! (`ShardStats::count_verdict`), and, when the audit scope asks for it, its audit record is
//! written. Finally the chunk's five streams are encoded as one frame each.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use sluice_io::{Chunk, Line};

use super::{Cascade, ShardError};
use crate::decision::Verdict;
use crate::document::{Document, LineError};
use crate::output::{ChunkStreams, Encoding, Frames, Stream};
use crate::records::{AuditRecord, ErrorRecord};
use crate::stats::{ShardStats, Timings};

/// What every chunk of a shard shares.
pub struct Context<'a> {
    pub cascade: &'a Cascade,
    /// The shard's name, as in records.
    pub shard: &'a str,
    /// Where the shard's oversized lines are kept, relative to the output directory.
    pub spill_name: &'a str,
    pub encoding: Encoding,
}

/// What a worker hands back for one chunk: encoded frames per stream, and counters.
pub struct ChunkOutput {
    pub frames: Frames,
    pub stats: ShardStats,
    pub timings: Timings,
    /// Uncompressed input bytes of the chunk.
    pub bytes: u64,
}

/// Documents held for a batched stage: enough for well-filled batches, few enough that a chunk of
/// tiny documents does not hold 100,000 verdicts at once.
pub const BATCH_DOCUMENTS: usize = 256;
const HELD_DOCUMENTS: usize = 4096;

/// A document of the chunk waiting for the rest of the cascade, and where its line is.
struct Held<'c> {
    line: &'c Line,
    bytes: &'c [u8],
    /// Line bytes with the newline.
    size: u64,
}

/// Judges every line of a chunk and encodes the five streams.
pub fn process(ctx: &Context<'_>, chunk: &Chunk) -> Result<ChunkOutput, ShardError> {
    let started = Instant::now();
    let cascade = ctx.cascade;
    // While this chunk is judged it may hand documents to a gatherer (see `gather.rs`).
    let _at_work = cascade.gatherers().at_work();
    let mut out = Output {
        stats: ShardStats::new(&cascade.stage_stats()),
        timings: Timings::new(cascade.stage_count()),
        streams: ChunkStreams::default(),
        id_buf: String::new(),
    };
    // Most lines usually go to kept: one allocation instead of doubling up to the chunk's size.
    out.streams
        .reserve(Stream::Kept, chunk.data.len() + chunk.lines.len());
    let mut scratch = cascade.new_scratch();
    let mut held: Vec<Held> = Vec::new();
    let mut judged: Vec<(Document, Verdict)> = Vec::new();
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
        let doc = match parsed {
            Ok(doc) => doc,
            Err(error) => {
                out.error(ctx, line, bytes, size, &error)?;
                continue;
            }
        };
        let mut verdict = Verdict::new();
        cascade.judge_until_batch(&doc, &mut verdict, &mut scratch, &mut out.timings.stages);
        if !cascade.has_batched_stage() {
            out.route(ctx, line, bytes, size, &doc, verdict)?;
            continue;
        }
        wanted += usize::from(cascade.wants_first_batch(&verdict));
        held.push(Held { line, bytes, size });
        judged.push((doc, verdict));
        if wanted >= BATCH_DOCUMENTS || held.len() >= HELD_DOCUMENTS {
            out.finish_group(ctx, &mut held, &mut judged, &mut scratch)?;
            wanted = 0;
        }
    }
    out.finish_group(ctx, &mut held, &mut judged, &mut scratch)?;

    let Output {
        stats,
        mut timings,
        mut streams,
        ..
    } = out;
    let compress_started = Instant::now();
    let frames = streams.encode(ctx.encoding)?;
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
struct Output {
    stats: ShardStats,
    timings: Timings,
    streams: ChunkStreams,
    id_buf: String,
}

impl Output {
    /// Runs the rest of the cascade on the held group, then routes its documents in line order.
    fn finish_group(
        &mut self,
        ctx: &Context<'_>,
        held: &mut Vec<Held>,
        judged: &mut Vec<(Document, Verdict)>,
        scratch: &mut [crate::stages::Scratch],
    ) -> Result<(), ShardError> {
        if held.is_empty() {
            return Ok(());
        }
        ctx.cascade
            .judge_rest(judged, scratch, &mut self.timings.stages)?;
        for (h, (doc, verdict)) in held.drain(..).zip(judged.drain(..)) {
            self.route(ctx, h.line, h.bytes, h.size, &doc, verdict)?;
        }
        Ok(())
    }

    /// Sends a judged document's line to its destination, counts its verdict and writes its
    /// audit record when the scope asks for one.
    fn route(
        &mut self,
        ctx: &Context<'_>,
        line: &Line,
        bytes: &[u8],
        size: u64,
        doc: &Document<'_>,
        verdict: Verdict,
    ) -> Result<(), ShardError> {
        let cascade = ctx.cascade;
        self.streams.line(Stream::of(verdict.destination), bytes);
        let audited = verdict.audited(cascade.audit);
        self.stats
            .count_verdict(&verdict, doc.text.len() as u64, size, audited);
        if !audited {
            return Ok(());
        }
        let id: &str = match &doc.id {
            Some(id) => id,
            None => {
                self.id_buf.clear();
                use std::fmt::Write;
                let _ = write!(self.id_buf, "{}:{}", ctx.shard, line.number);
                &self.id_buf
            }
        };
        let record = AuditRecord::of_verdict(
            id,
            ctx.shard,
            line.number,
            line.offset,
            verdict,
            |i| cascade.stage_id(i),
            &cascade.config_hash,
        );
        self.streams.record(Stream::Audit, &record)?;
        Ok(())
    }

    /// A line that is not a document: its error record, counted by kind.
    fn error(
        &mut self,
        ctx: &Context<'_>,
        line: &Line,
        bytes: &[u8],
        size: u64,
        error: &LineError,
    ) -> Result<(), ShardError> {
        let utf8 = std::str::from_utf8(bytes).ok();
        let record = ErrorRecord {
            shard: Cow::Borrowed(ctx.shard),
            line: line.number,
            offset: line.offset,
            row: None,
            row_group: None,
            bytes: size - 1,
            kind: Cow::Borrowed(error.kind),
            error: Cow::Borrowed(&error.message),
            raw: utf8.filter(|_| line.oversized.is_none()).map(Cow::Borrowed),
            raw_base64: match (utf8, line.oversized) {
                (None, None) => Some(base64_encode(bytes)),
                _ => None,
            },
            spilled_to: line.spill_line.map(|_| Cow::Borrowed(ctx.spill_name)),
            spill_line: line.spill_line,
        };
        self.streams.record(Stream::Errors, &record)?;
        self.stats.errors.add(size);
        *self
            .stats
            .error_kinds
            .entry(error.kind.to_string())
            .or_default() += 1;
        Ok(())
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use sluice_io::{Compression, LineChunker};

    fn repo() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// The rules and terms of the hazard cascade, then `extra` stages (TOML).
    fn cascade(extra: &str) -> Cascade {
        let text = std::fs::read_to_string(repo().join("configs/hazard-cascade.toml")).unwrap();
        let config =
            Config::from_toml(&format!("{text}\n{extra}"), &repo().join("configs")).unwrap();
        Cascade::new(&config).unwrap()
    }

    /// `n` documents, every seventh with two hazard terms, every thirteenth not JSON.
    fn chunk(n: usize) -> Chunk {
        let mut data = Vec::new();
        for i in 0..n {
            let line = match (i % 7, i % 13) {
                (_, 12) => format!("not json {i}"),
                (0, _) => format!("{{\"id\": \"d{i}\", \"text\": \"sarin and tabun, note {i}\"}}"),
                _ => format!("{{\"id\": \"d{i}\", \"text\": \"an ordinary note, number {i}\"}}"),
            };
            data.extend_from_slice(line.as_bytes());
            data.push(b'\n');
        }
        let mut chunker = LineChunker::new(
            &data[..],
            sluice_io::ChunkerOptions {
                target_chunk_bytes: 1 << 20,
                max_line_bytes: 1 << 20,
            },
        );
        let mut chunk = Chunk::default();
        assert!(chunker.next_chunk(&mut chunk).unwrap());
        chunk
    }

    fn process_with(cascade: &Cascade, chunk: &Chunk) -> ChunkOutput {
        let ctx = Context {
            cascade,
            shard: "s.jsonl",
            spill_name: "oversized/s.jsonl",
            encoding: Encoding {
                compression: Compression::None,
                level: 0,
            },
        };
        process(&ctx, chunk).unwrap()
    }

    #[test]
    fn every_line_lands_in_one_stream_and_is_counted() {
        let cascade = cascade("");
        assert!(!cascade.has_batched_stage());
        let out = process_with(&cascade, &chunk(100));
        let s = &out.stats;
        assert!(s.balanced(), "{s:?}");
        assert_eq!(s.input.documents, 100);
        // 7 lines are not JSON; of the rest, every seventh escalates (two distinct terms).
        assert_eq!(s.errors.documents, 7);
        assert_eq!(s.review.documents, 14);
        assert_eq!(s.escalated, 14);
        assert_eq!(s.audited, 14);
        assert_eq!(s.error_kinds["invalid_json"], 7);
        let terms = &s.stages[1];
        assert_eq!((terms.evaluated, terms.escalated), (93, 14));
        assert_eq!(terms.keys.get("terms").unwrap()["sarin"].docs, 14);
        // The review stream holds exactly those lines, in order; audit one record each.
        let review = String::from_utf8(out.frames.of(Stream::Review).to_vec()).unwrap();
        assert_eq!(review.lines().count(), 14);
        assert!(review.lines().all(|l| l.contains("sarin")));
        let audit = String::from_utf8(out.frames.of(Stream::Audit).to_vec()).unwrap();
        let first: crate::records::AuditRecord =
            serde_json::from_str(audit.lines().next().unwrap()).unwrap();
        assert_eq!((first.id.as_ref(), first.line), ("d0", 1));
    }

    #[test]
    fn a_batched_stage_sees_groups_and_decides_as_one_document_at_a_time() {
        let model = repo().join("fixtures/models/hashed-ngram");
        let stage = format!(
            "[[stages]]\ntype = 'classifier'\nid = 'model'\nmodel = {model:?}\nlabel = 'toxic'\n\
             mode = 'all'\ndrop_threshold = 0.9\nreview_threshold = 0.2\n"
        );
        let cascade = cascade(&stage);
        assert!(cascade.has_batched_stage());
        // 700 documents: the held group is cut at 256 documents that want the model.
        let chunk = chunk(700);
        let out = process_with(&cascade, &chunk);
        assert!(out.stats.balanced());
        let model_stats = &out.stats.stages[2];
        assert_eq!(
            model_stats.evaluated,
            700 - 53,
            "every parsed document is scored"
        );
        assert_eq!(
            model_stats.passed + model_stats.reviewed + model_stats.dropped,
            model_stats.evaluated
        );
        // The same documents, judged as one group through the whole cascade (as eval does),
        // get the same verdicts: groups do not change a decision.
        let mut scratch = cascade.new_scratch();
        let mut times = vec![std::time::Duration::ZERO; cascade.stage_count()];
        let mut group: Vec<(Document, Verdict)> = (0..chunk.lines.len())
            .filter_map(|i| cascade.extractor.extract(chunk.line_bytes(i)).ok())
            .map(|d| (d, Verdict::new()))
            .collect();
        cascade
            .judge_all(&mut group, &mut scratch, &mut times)
            .unwrap();
        let destinations = |d| group.iter().filter(|(_, v)| v.destination == d).count() as u64;
        assert_eq!(
            destinations(crate::stats::Destination::Kept),
            out.stats.kept.documents
        );
        assert_eq!(
            destinations(crate::stats::Destination::Review),
            out.stats.review.documents
        );
        assert_eq!(
            destinations(crate::stats::Destination::Dropped),
            out.stats.dropped.documents
        );
    }
}
