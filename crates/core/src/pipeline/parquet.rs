//! A Parquet shard: the same flow as a JSONL one (`mod.rs`), with row batches for chunks.
//!
//! ```text
//!  reader thread                   worker pool                          shard thread
//!  ─────────────                   ───────────                          ────────────
//!  per row group, a batch of rows  per batch: each row's text (and id)  reorder by batch index,
//!  of ~run.chunk_bytes decoded     borrowed from its column, judged;    write the row batches to
//!  (waits for a permit)            rows split into kept / dropped /     kept/ dropped/ review/
//!                                  review batches; audit and error      (Parquet), append the
//!                                  records encoded as JSONL frames      record frames
//! ```
//!
//! * **Bounded memory.** A batch is read only with a permit (the pool shared with JSONL shards);
//!   batch sizes come from the row group's uncompressed size per row, so a batch is about
//!   `run.chunk_bytes` decoded; the writers hold at most one row group each
//!   (`output.parquet.row_group_bytes`).
//! * **Carried unchanged.** Outputs get the input's Arrow schema (types, nullability, key-value
//!   metadata) and its rows, every column, in input order; row groups are cut by the writer's
//!   row and byte limits, which depend only on the rows written: byte-identical for any thread
//!   count.
//! * **Nothing lost.** Every row is exactly one of kept / dropped / review / errors. Audit and
//!   error records (JSONL, `audit/N.jsonl.zst`, `errors/N.jsonl.zst`) point at the row: `row`,
//!   `row_group`, and `line = row + 1`. An error row stays in the input, which sluice never
//!   changes.

use std::borrow::Cow;
use std::io::{Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, Sender};
use sluice_io::arrow_array::{BooleanArray, RecordBatch};
use sluice_io::arrow_schema::SchemaRef;
use sluice_io::{
    empty_stream, parquet_output_name, Compression, IoError, ParquetOptions, ParquetReader,
    ParquetWriter, Shard,
};

use super::{panic_message, Judged, Message, ShardDone, ShardError, ShardRunner};
use crate::decision::Verdict;
use crate::document::{Document, LineError};
use crate::output::{Encoding, Sink, Storage, Stream, WriteError};
use crate::records::{AuditRecord, ErrorRecord};
use crate::rows::RowFields;
use crate::stats::{Destination, ShardStats, Timings};

use super::chunk::BATCH_DOCUMENTS;
use super::Cascade;

const HELD_DOCUMENTS: usize = 4096;

/// The name of a Parquet output's `audit/` and `errors/` files: `N.jsonl` and the records'
/// compression extension (`train.parquet` → `train.parquet.jsonl.zst`).
pub fn records_name(output_name: &str, compression: Compression) -> String {
    format!("{output_name}.jsonl{}", compression.extension())
}

/// What every batch of a shard shares.
struct Context<'a> {
    cascade: &'a Cascade,
    shard: &'a str,
    fields: &'a RowFields,
}

/// Where a batch is in its file.
#[derive(Clone, Copy)]
struct Position {
    row_group: u64,
    /// Index in the file of the batch's first row.
    first_row: u64,
}

/// A judged batch: its rows split by destination, its records, its counters.
struct BatchOutput {
    /// Kept, dropped and review rows (none: no row went there).
    rows: [Option<RecordBatch>; 3],
    /// Audit and error records, JSON lines.
    records: [Vec<u8>; 2],
    row_group: u64,
    stats: ShardStats,
    timings: Timings,
    bytes: u64,
}

impl Judged for BatchOutput {
    fn counts(&self) -> (&ShardStats, &Timings, u64) {
        (&self.stats, &self.timings, self.bytes)
    }
}

impl ShardRunner<'_> {
    /// Filters one Parquet shard (see the module docs). On error nothing appears under a final
    /// name.
    pub(super) fn run_parquet(&self, shard: &Shard) -> Result<ShardDone, ShardError> {
        let reader = match &shard.remote {
            Some(object) => ParquetReader::open_remote(object)?,
            None => ParquetReader::open(&shard.path)?,
        };
        let name = parquet_output_name(&shard.name);
        let records_compression = self.config.parquet_records_compression();
        let records = records_name(&name, records_compression);
        let encoding = Encoding {
            compression: records_compression,
            level: self.config.compression_level(records_compression),
        };
        let mut writer = ParquetShardWriter::create(
            self.storage,
            &name,
            &records,
            reader.schema(),
            self.config.parquet_options(),
            encoding,
        )?;
        let fields = self
            .config
            .row_fields()
            .map_err(|e| ShardError::Internal(e.to_string()))?;
        let context = Context {
            cascade: self.cascade,
            shard: &shard.name,
            fields: &fields,
        };
        let (tx, rx) = unbounded::<Message<BatchOutput>>();
        let (collected, digest) = std::thread::scope(|scope| {
            // The reader seeks about the file: its bytes are hashed in one pass beside it (for an
            // object, one more streamed GET of it).
            let digest = scope.spawn(|| sha256_shard(shard));
            scope.spawn(|| self.read_batches(&reader, &context, tx));
            let collected = self.collect_batches(&rx, &mut writer);
            (collected, digest.join())
        });
        let (stats, mut timings) = collected?;
        let digest = digest.map_err(|p| ShardError::Internal(panic_message(p)))??;
        let write_started = Instant::now();
        writer.finish()?;
        timings.write += write_started.elapsed();
        Ok(ShardDone {
            stats,
            timings,
            input_compression: Compression::None,
            output_compression: records_compression,
            output_name: name,
            records_name: Some(records),
            input_sha256: digest,
        })
    }

    /// The reader thread: a permit, then a batch of rows, handed to the pool; at the end (or on
    /// a read error) says how many batches there were.
    fn read_batches(
        &self,
        reader: &ParquetReader,
        context: &Context<'_>,
        tx: Sender<Message<BatchOutput>>,
    ) {
        let mut batches = 0u64;
        let mut read_time = Duration::ZERO;
        let mut first_row = 0u64;
        let error = self.pool.in_place_scope(|tasks| {
            for row_group in 0..reader.row_groups() {
                let batch_rows = reader.batch_rows(row_group, context.cascade.chunk_bytes);
                let mut group = match reader.batches(row_group, batch_rows) {
                    Ok(group) => group,
                    Err(e) => return Some(ShardError::Read(e)),
                };
                loop {
                    self.permits.acquire();
                    if crate::run::stopped(self.stop).is_some() {
                        self.permits.release();
                        return Some(ShardError::Interrupted);
                    }
                    let started = Instant::now();
                    let next = group.next();
                    read_time += started.elapsed();
                    let batch = match next {
                        Some(Ok(batch)) => batch,
                        Some(Err(e)) => {
                            self.permits.release();
                            return Some(ShardError::Read(e));
                        }
                        None => {
                            self.permits.release();
                            break;
                        }
                    };
                    let position = Position {
                        row_group: row_group as u64,
                        first_row,
                    };
                    first_row += batch.num_rows() as u64;
                    let index = batches;
                    batches += 1;
                    let tx = tx.clone();
                    tasks.spawn(move |_| {
                        let result = catch_unwind(AssertUnwindSafe(|| {
                            process_batch(context, &batch, position)
                        }))
                        .unwrap_or_else(|panic| Err(ShardError::Internal(panic_message(panic))))
                        .map(Box::new);
                        let _ = tx.send(Message::Piece(index, result));
                    });
                }
            }
            None
        });
        let _ = tx.send(Message::End {
            pieces: batches,
            error,
            read_time,
        });
    }

    /// The shard thread: writes batch outputs in batch order.
    fn collect_batches(
        &self,
        rx: &Receiver<Message<BatchOutput>>,
        writer: &mut ParquetShardWriter,
    ) -> Result<(ShardStats, Timings), ShardError> {
        self.collect_in_order(rx, |out, timings| {
            let write_started = Instant::now();
            let written = writer.write_batch(&out);
            timings.write += write_started.elapsed();
            // The permit covers the batch until its rows are encoded.
            drop(out);
            self.permits.release();
            written
        })
    }
}

/// SHA-256 (hex) of a file's bytes.
fn sha256_shard(shard: &Shard) -> Result<String, ShardError> {
    use sha2::Digest;
    let path = &shard.path;
    let read_error = |error| {
        ShardError::Read(IoError::Read {
            path: path.to_path_buf(),
            error,
        })
    };
    let mut file: Box<dyn Read> = match &shard.remote {
        Some(object) => Box::new(sluice_io::RemoteReader::open(object)?),
        None => Box::new(std::fs::File::open(path).map_err(read_error)?),
    };
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_error(e)),
        }
    }
    Ok(crate::config::hex(&hasher.finalize()))
}

/// A row of the batch waiting for the rest of the cascade.
struct Held {
    row: usize,
    size: u64,
}

/// Judges every row of a batch, splits the rows by destination and encodes the records.
fn process_batch(
    ctx: &Context<'_>,
    batch: &RecordBatch,
    position: Position,
) -> Result<BatchOutput, ShardError> {
    let started = Instant::now();
    let cascade = ctx.cascade;
    let _at_work = cascade.gatherers().at_work();
    let fields = ctx.fields.columns(batch);
    let mut out = Output {
        stats: ShardStats::new(&cascade.stage_stats()),
        timings: Timings::new(cascade.stage_count()),
        audit: Vec::new(),
        errors: Vec::new(),
        destinations: vec![Destination::Errors; batch.num_rows()],
        id_buf: String::new(),
        position,
    };
    let mut scratch = cascade.new_scratch();
    let mut held: Vec<Held> = Vec::new();
    let mut judged: Vec<(Document, Verdict)> = Vec::new();
    let mut wanted = 0;
    let mut bytes = 0u64;
    for row in 0..batch.num_rows() {
        let parse_started = Instant::now();
        let parsed = fields.document(row);
        out.timings.parse += parse_started.elapsed();
        let doc = match parsed {
            Ok(doc) => doc,
            Err(error) => {
                out.stats.input.add(0);
                out.error(ctx, row, &error)?;
                continue;
            }
        };
        let size = doc.text.len() as u64;
        bytes += size;
        out.stats.input.add(size);
        let mut verdict = Verdict::new();
        cascade.judge_until_batch(&doc, &mut verdict, &mut scratch, &mut out.timings.stages);
        if !cascade.has_batched_stage() {
            out.route(ctx, row, size, &doc, verdict)?;
            continue;
        }
        wanted += usize::from(cascade.wants_first_batch(&verdict));
        held.push(Held { row, size });
        judged.push((doc, verdict));
        if wanted >= BATCH_DOCUMENTS || held.len() >= HELD_DOCUMENTS {
            out.finish_group(ctx, &mut held, &mut judged, &mut scratch)?;
            wanted = 0;
        }
    }
    out.finish_group(ctx, &mut held, &mut judged, &mut scratch)?;

    let split_started = Instant::now();
    let rows = split(batch, &out.destinations)?;
    let Output {
        stats,
        mut timings,
        audit,
        errors,
        ..
    } = out;
    timings.compress = split_started.elapsed();
    let accounted = timings.parse + timings.stages.iter().sum::<Duration>() + timings.compress;
    timings.route = started.elapsed().saturating_sub(accounted);
    Ok(BatchOutput {
        rows,
        records: [audit, errors],
        row_group: position.row_group,
        stats,
        timings,
        bytes,
    })
}

/// The batch's kept, dropped and review rows, in order (the batch itself where every row went
/// to one of them).
fn split(
    batch: &RecordBatch,
    destinations: &[Destination],
) -> Result<[Option<RecordBatch>; 3], ShardError> {
    let mut rows: [Option<RecordBatch>; 3] = [None, None, None];
    for (slot, destination) in [Destination::Kept, Destination::Dropped, Destination::Review]
        .into_iter()
        .enumerate()
    {
        let count = destinations.iter().filter(|d| **d == destination).count();
        rows[slot] = match count {
            0 => None,
            n if n == batch.num_rows() => Some(batch.clone()),
            _ => {
                let mask: BooleanArray = destinations
                    .iter()
                    .map(|d| Some(*d == destination))
                    .collect();
                let filtered =
                    sluice_io::arrow_select::filter::filter_record_batch(batch, &mask)
                        .map_err(|e| ShardError::Internal(format!("cannot split a batch: {e}")))?;
                Some(filtered)
            }
        };
    }
    Ok(rows)
}

/// What a batch has produced so far.
struct Output {
    stats: ShardStats,
    timings: Timings,
    /// Audit and error records, JSON lines.
    audit: Vec<u8>,
    errors: Vec<u8>,
    /// Each row's destination.
    destinations: Vec<Destination>,
    id_buf: String,
    position: Position,
}

impl Output {
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
            self.route(ctx, h.row, h.size, &doc, verdict)?;
        }
        Ok(())
    }

    fn route(
        &mut self,
        ctx: &Context<'_>,
        row: usize,
        size: u64,
        doc: &Document<'_>,
        verdict: Verdict,
    ) -> Result<(), ShardError> {
        let cascade = ctx.cascade;
        self.destinations[row] = verdict.destination;
        let audited = verdict.audited(cascade.audit);
        self.stats
            .count_verdict(&verdict, doc.text.len() as u64, size, audited);
        if !audited {
            return Ok(());
        }
        let index = self.position.first_row + row as u64;
        let id: &str = match &doc.id {
            Some(id) => id,
            None => {
                self.id_buf.clear();
                use std::fmt::Write;
                let _ = write!(self.id_buf, "{}:{}", ctx.shard, index + 1);
                &self.id_buf
            }
        };
        let mut record = AuditRecord::of_verdict(
            id,
            ctx.shard,
            index + 1,
            0,
            verdict,
            |i| cascade.stage_id(i),
            &cascade.config_hash,
        );
        record.row = Some(index);
        record.row_group = Some(self.position.row_group);
        serde_json::to_writer(&mut self.audit, &record)?;
        self.audit.push(b'\n');
        Ok(())
    }

    fn error(
        &mut self,
        ctx: &Context<'_>,
        row: usize,
        error: &LineError,
    ) -> Result<(), ShardError> {
        let index = self.position.first_row + row as u64;
        let record = ErrorRecord {
            shard: Cow::Borrowed(ctx.shard),
            line: index + 1,
            offset: 0,
            row: Some(index),
            row_group: Some(self.position.row_group),
            bytes: 0,
            kind: Cow::Borrowed(error.kind),
            error: Cow::Borrowed(&error.message),
            raw: None,
            raw_base64: None,
            spilled_to: None,
            spill_line: None,
        };
        serde_json::to_writer(&mut self.errors, &record)?;
        self.errors.push(b'\n');
        self.stats.errors.add(0);
        *self
            .stats
            .error_kinds
            .entry(error.kind.to_string())
            .or_default() += 1;
        Ok(())
    }
}

/// The outputs of a Parquet shard: three Parquet files of rows, two JSONL record streams. Records
/// are encoded as one frame per row group (not per batch), so that `sluice rethreshold`, which
/// knows each record's row group but not the run's batches, writes the same frames.
pub struct ParquetShardWriter {
    /// `kept/N`, `dropped/N`, `review/N`.
    rows: Vec<ParquetWriter<Box<dyn Sink>>>,
    /// `audit/R`, `errors/R`.
    records: Vec<RecordSink>,
    encoding: Encoding,
}

struct RecordSink {
    output: String,
    sink: Box<dyn Sink>,
    /// Lines of the row group `group`, not yet encoded.
    pending: Vec<u8>,
    group: u64,
    written: bool,
}

impl RecordSink {
    fn write(&mut self, bytes: &[u8]) -> Result<(), WriteError> {
        self.sink.write_all(bytes).map_err(|error| WriteError {
            output: self.output.clone(),
            error,
        })?;
        self.written = true;
        Ok(())
    }

    /// Encodes the pending lines as one frame.
    fn flush(&mut self, encoding: Encoding) -> Result<(), ShardError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut frame = Vec::new();
        sluice_io::compress_frame(
            &self.pending,
            encoding.compression,
            encoding.level,
            &mut frame,
        )?;
        self.pending.clear();
        self.write(&frame)?;
        Ok(())
    }
}

fn rows_index(stream: Stream) -> usize {
    match stream {
        Stream::Kept => 0,
        Stream::Dropped => 1,
        Stream::Review => 2,
        _ => unreachable!("rows go to kept, dropped or review"),
    }
}

fn records_index(stream: Stream) -> usize {
    match stream {
        Stream::Audit => 0,
        Stream::Errors => 1,
        _ => unreachable!("records go to audit or errors"),
    }
}

impl ParquetShardWriter {
    /// Opens `kept/N`, `dropped/N`, `review/N` (Parquet, with `schema`) and `audit/R`,
    /// `errors/R` (records, with `encoding`).
    pub fn create(
        storage: &dyn Storage,
        name: &str,
        records_name: &str,
        schema: SchemaRef,
        options: ParquetOptions,
        encoding: Encoding,
    ) -> Result<ParquetShardWriter, IoError> {
        let mut rows = Vec::with_capacity(3);
        for stream in [Stream::Kept, Stream::Dropped, Stream::Review] {
            let output = format!("{}/{name}", stream.dir());
            let sink = storage.create(&output)?;
            rows.push(ParquetWriter::new(
                sink,
                schema.clone(),
                options,
                &storage.describe(&output),
            )?);
        }
        let mut records = Vec::with_capacity(2);
        for stream in [Stream::Audit, Stream::Errors] {
            let output = format!("{}/{records_name}", stream.dir());
            records.push(RecordSink {
                output: storage.describe(&output),
                sink: storage.create(&output)?,
                pending: Vec::new(),
                group: 0,
                written: false,
            });
        }
        Ok(ParquetShardWriter {
            rows,
            records,
            encoding,
        })
    }

    /// Appends rows to `kept`, `dropped` or `review`.
    pub fn write_rows(&mut self, stream: Stream, batch: &RecordBatch) -> Result<(), ShardError> {
        self.rows[rows_index(stream)].write(batch)?;
        Ok(())
    }

    /// Appends record lines of row group `group` to `audit` or `errors`.
    pub fn write_records(
        &mut self,
        stream: Stream,
        group: u64,
        lines: &[u8],
    ) -> Result<(), ShardError> {
        let sink = &mut self.records[records_index(stream)];
        if group != sink.group {
            sink.flush(self.encoding)?;
            sink.group = group;
        }
        sink.pending.extend_from_slice(lines);
        Ok(())
    }

    /// Carries an encoded record stream over as it is (instead of writing records to it).
    pub fn copy_records(
        &mut self,
        stream: Stream,
        reader: &mut impl Read,
    ) -> Result<(), ShardError> {
        let sink = &mut self.records[records_index(stream)];
        std::io::copy(reader, &mut sink.sink).map_err(|error| WriteError {
            output: sink.output.clone(),
            error,
        })?;
        sink.written = true;
        Ok(())
    }

    fn write_batch(&mut self, out: &BatchOutput) -> Result<(), ShardError> {
        for (stream, batch) in [Stream::Kept, Stream::Dropped, Stream::Review]
            .into_iter()
            .zip(&out.rows)
        {
            if let Some(batch) = batch {
                self.write_rows(stream, batch)?;
            }
        }
        for (stream, lines) in [Stream::Audit, Stream::Errors]
            .into_iter()
            .zip(&out.records)
        {
            if !lines.is_empty() {
                self.write_records(stream, out.row_group, lines)?;
            }
        }
        Ok(())
    }

    /// Writes the Parquet footers, the last record frames (or valid empty streams), then puts
    /// all five in place.
    pub fn finish(self) -> Result<(), ShardError> {
        let mut sinks = Vec::with_capacity(5);
        for writer in self.rows {
            sinks.push(writer.finish()?);
        }
        let empty = empty_stream(self.encoding.compression);
        for mut records in self.records {
            records.flush(self.encoding)?;
            if !records.written {
                records.write(&empty)?;
            }
            sinks.push(records.sink);
        }
        for sink in sinks {
            sink.finish()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::LocalDir;
    use sluice_io::arrow_array::{ArrayRef, StringArray};
    use std::sync::Arc;

    fn batch(texts: &[&str]) -> RecordBatch {
        RecordBatch::try_from_iter([(
            "text",
            Arc::new(StringArray::from(texts.to_vec())) as ArrayRef,
        )])
        .unwrap()
    }

    #[test]
    fn records_are_one_frame_per_row_group_and_rows_go_to_their_stream() {
        let dir = tempfile::tempdir().unwrap();
        for stream in Stream::ALL {
            std::fs::create_dir_all(dir.path().join(stream.dir())).unwrap();
        }
        let storage = LocalDir::new(dir.path());
        let encoding = Encoding {
            compression: Compression::Zstd,
            level: 3,
        };
        let options = ParquetOptions {
            codec: sluice_io::ParquetCodec::Zstd,
            level: 1,
            row_group_rows: 10,
            row_group_bytes: 1 << 20,
        };
        let records = records_name("s.parquet", Compression::Zstd);
        assert_eq!(records, "s.parquet.jsonl.zst");
        let mut writer = ParquetShardWriter::create(
            &storage,
            "s.parquet",
            &records,
            batch(&[]).schema(),
            options,
            encoding,
        )
        .unwrap();
        writer
            .write_rows(Stream::Kept, &batch(&["a", "b"]))
            .unwrap();
        writer.write_rows(Stream::Review, &batch(&["c"])).unwrap();
        for (group, line) in [(0, "{\"a\":1}\n"), (0, "{\"b\":2}\n"), (2, "{\"c\":3}\n")] {
            writer
                .write_records(Stream::Audit, group, line.as_bytes())
                .unwrap();
        }
        writer.finish().unwrap();
        let frame = |text: &str| {
            let mut out = Vec::new();
            sluice_io::compress_frame(text.as_bytes(), Compression::Zstd, 3, &mut out).unwrap();
            out
        };
        let audit = std::fs::read(dir.path().join("audit/s.parquet.jsonl.zst")).unwrap();
        assert_eq!(
            audit,
            [frame("{\"a\":1}\n{\"b\":2}\n"), frame("{\"c\":3}\n")].concat(),
            "one frame per row group"
        );
        let errors = std::fs::read(dir.path().join("errors/s.parquet.jsonl.zst")).unwrap();
        assert_eq!(errors, empty_stream(Compression::Zstd));
        let rows = |stream: &str| {
            ParquetReader::open(&dir.path().join(stream).join("s.parquet"))
                .unwrap()
                .rows()
        };
        assert_eq!((rows("kept"), rows("dropped"), rows("review")), (2, 0, 1));
    }
}
