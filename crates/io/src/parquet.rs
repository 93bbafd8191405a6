//! Parquet shards: telling them apart from JSONL, reading them a bounded batch of rows at a time,
//! and writing row batches back as Parquet with the input's schema.
//!
//! * **Magic bytes.** A Parquet file starts (and ends) with `PAR1`. [`shard_format`] trusts that,
//!   not the name; a Parquet file wrapped in zstd or gzip (`x.parquet.gz`) is refused with
//!   [`IoError::CompressedParquet`]: Parquet compresses inside the file, and reading it needs the
//!   footer at the end, which a compressed stream cannot reach without decompressing all of it.
//! * **Bounded memory.** [`ParquetReader::batches`] reads one row group, `batch_rows` rows at a
//!   time, page by page from the file: memory is about one batch of decoded rows plus the pages
//!   being decoded, whatever the file or row-group size.
//! * **Carried unchanged.** [`ParquetWriter`] writes batches with the reader's Arrow schema (its
//!   key-value metadata included, and the embedded `ARROW:schema`, so types and nullability read
//!   back the same), in row groups bounded by rows and by bytes.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ArrowWriter;
use parquet::basic::{GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::{Compression, IoError};

/// The first (and last) four bytes of a Parquet file.
pub const PARQUET_MAGIC: [u8; 4] = *b"PAR1";

/// What a shard file holds, by its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardFormat {
    /// JSON lines, plain or compressed as the bytes say (see [`crate::open_shard`]).
    Jsonl,
    /// A Parquet file.
    Parquet,
}

/// Whether `name` is a Parquet file name: `*.parquet`, optionally followed by a compression
/// extension (`x.parquet.gz`: found, so that it can be refused by name rather than skipped).
pub fn is_parquet_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".parquet", ".parquet.zst", ".parquet.zstd", ".parquet.gz"]
        .iter()
        .any(|suffix| lower.ends_with(suffix) && lower.len() > suffix.len())
}

/// The output name of a Parquet shard: the name itself when it ends in `.parquet`, else with
/// `.parquet` appended (a Parquet file named `x.jsonl` writes `kept/x.jsonl.parquet`), so that
/// every Parquet output is recognised by its name.
pub fn parquet_output_name(name: &str) -> String {
    if name.to_ascii_lowercase().ends_with(".parquet") {
        name.to_string()
    } else {
        format!("{name}.parquet")
    }
}

/// Whether an output name is that of a Parquet output (see [`parquet_output_name`]).
pub fn is_parquet_output(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".parquet")
}

/// Tells a Parquet shard from a JSONL one by its first bytes. A compressed stream whose content
/// starts with `PAR1` is [`IoError::CompressedParquet`]; a file named `*.parquet` that is not
/// Parquet is [`IoError::NotParquet`] (rather than being read as JSON lines of binary garbage).
pub fn shard_format(path: &Path) -> Result<ShardFormat, IoError> {
    let mut file = File::open(path).map_err(|e| IoError::open(path, e))?;
    let prefix = read_prefix(&mut file, path)?;
    if prefix == PARQUET_MAGIC {
        return Ok(ShardFormat::Parquet);
    }
    let named_parquet = path
        .file_name()
        .is_some_and(|n| is_parquet_name(&n.to_string_lossy()));
    let compression = crate::compression::detect(&prefix);
    if compression != Compression::None {
        // Peek at what the compressed stream holds (a few bytes decompressed, nothing more).
        let inner = decompressed_prefix(path, compression);
        if inner.as_deref() == Some(&PARQUET_MAGIC[..]) || named_parquet {
            return Err(IoError::CompressedParquet {
                path: path.to_path_buf(),
                compression,
            });
        }
        return Ok(ShardFormat::Jsonl);
    }
    if named_parquet {
        return Err(IoError::NotParquet {
            path: path.to_path_buf(),
        });
    }
    Ok(ShardFormat::Jsonl)
}

fn read_prefix(file: &mut File, path: &Path) -> Result<Vec<u8>, IoError> {
    let mut prefix = Vec::with_capacity(4);
    file.take(4)
        .read_to_end(&mut prefix)
        .map_err(|error| IoError::Read {
            path: path.to_path_buf(),
            error,
        })?;
    Ok(prefix)
}

/// The first four decompressed bytes of a compressed file, if they can be had.
fn decompressed_prefix(path: &Path, compression: Compression) -> Option<Vec<u8>> {
    let file = File::open(path).ok()?;
    let reader: Box<dyn Read> = match compression {
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(file).ok()?),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
        Compression::None => Box::new(file),
    };
    let mut prefix = Vec::with_capacity(4);
    reader.take(4).read_to_end(&mut prefix).ok()?;
    Some(prefix)
}

/// A Parquet shard opened for reading: its footer parsed once, row groups read on demand.
pub struct ParquetReader {
    path: PathBuf,
    source: Source,
    metadata: ArrowReaderMetadata,
}

/// Where a Parquet file's bytes are read from.
enum Source {
    File(File),
    /// An object in object storage, by ranged GETs: the footer, then each row group's column
    /// chunks (a row group at a time, as from a file).
    Object(crate::RemoteChunks),
}

impl ParquetReader {
    pub fn open(path: &Path) -> Result<ParquetReader, IoError> {
        let file = File::open(path).map_err(|e| IoError::open(path, e))?;
        let metadata = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())
            .map_err(|e| parquet_error(path, e))?;
        Ok(ParquetReader {
            path: path.to_path_buf(),
            source: Source::File(file),
            metadata,
        })
    }

    /// A Parquet object in object storage, read by ranged GETs (its footer now).
    pub fn open_remote(object: &crate::RemoteObject) -> Result<ParquetReader, IoError> {
        let chunks = crate::RemoteChunks::open(object)?;
        let path = PathBuf::from(&object.url);
        let metadata = ArrowReaderMetadata::load(&chunks, ArrowReaderOptions::new())
            .map_err(|e| parquet_error(&path, e))?;
        Ok(ParquetReader {
            path,
            source: Source::Object(chunks),
            metadata,
        })
    }

    /// The file's Arrow schema, with its key-value metadata.
    pub fn schema(&self) -> SchemaRef {
        self.metadata.schema().clone()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn row_groups(&self) -> usize {
        self.metadata.metadata().num_row_groups()
    }

    /// Rows of row group `index`.
    pub fn row_group_rows(&self, index: usize) -> u64 {
        self.metadata.metadata().row_group(index).num_rows().max(0) as u64
    }

    /// Rows of the whole file.
    pub fn rows(&self) -> u64 {
        (0..self.row_groups()).map(|i| self.row_group_rows(i)).sum()
    }

    /// How many rows of row group `index` make about `target_bytes` decoded: its uncompressed
    /// size spread evenly over its rows, at least one row and at most 65,536. Depends only on
    /// the file, so batch boundaries (and the outputs) do not depend on timing.
    pub fn batch_rows(&self, index: usize, target_bytes: usize) -> usize {
        let group = self.metadata.metadata().row_group(index);
        let rows = group.num_rows().max(1) as u64;
        let per_row = (group.total_byte_size().max(1) as u64)
            .div_ceil(rows)
            .max(1);
        ((target_bytes as u64 / per_row) as usize).clamp(1, 1 << 16)
    }

    /// The rows of row group `index`, `batch_rows` at a time, every column.
    pub fn batches(&self, index: usize, batch_rows: usize) -> Result<RowGroupBatches, IoError> {
        self.batches_of(index, batch_rows, None)
    }

    /// [`ParquetReader::batches`] of only the named top-level columns (those that exist): the
    /// other columns are not read at all.
    pub fn projected_batches(
        &self,
        index: usize,
        batch_rows: usize,
        columns: &[&str],
    ) -> Result<RowGroupBatches, IoError> {
        let schema = self.schema();
        let roots: Vec<usize> = columns
            .iter()
            .filter_map(|name| schema.index_of(name).ok())
            .collect();
        self.batches_of(index, batch_rows, Some(roots))
    }

    fn batches_of(
        &self,
        index: usize,
        batch_rows: usize,
        roots: Option<Vec<usize>>,
    ) -> Result<RowGroupBatches, IoError> {
        let mask = roots.map(|roots| {
            parquet::arrow::ProjectionMask::roots(
                self.metadata.metadata().file_metadata().schema_descr(),
                roots,
            )
        });
        let reader = match &self.source {
            Source::File(file) => {
                let file = file.try_clone().map_err(|error| IoError::Read {
                    path: self.path.clone(),
                    error,
                })?;
                self.build(file, index, batch_rows, mask)?
            }
            Source::Object(chunks) => self.build(chunks.clone(), index, batch_rows, mask)?,
        };
        Ok(RowGroupBatches {
            path: self.path.clone(),
            reader,
        })
    }
}

impl ParquetReader {
    fn build<T: parquet::file::reader::ChunkReader + 'static>(
        &self,
        source: T,
        index: usize,
        batch_rows: usize,
        mask: Option<parquet::arrow::ProjectionMask>,
    ) -> Result<ParquetRecordBatchReader, IoError> {
        let mut builder =
            ParquetRecordBatchReaderBuilder::new_with_metadata(source, self.metadata.clone())
                .with_row_groups(vec![index])
                .with_batch_size(batch_rows.max(1));
        if let Some(mask) = mask {
            builder = builder.with_projection(mask);
        }
        builder.build().map_err(|e| parquet_error(&self.path, e))
    }
}

/// The batches of one row group (see [`ParquetReader::batches`]).
pub struct RowGroupBatches {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
}

impl Iterator for RowGroupBatches {
    type Item = Result<RecordBatch, IoError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.reader.next().map(|batch| {
            batch.map_err(|e| IoError::Parquet {
                path: self.path.clone(),
                message: lowercase(e.to_string()),
            })
        })
    }
}

/// The compression inside Parquet outputs (`output.parquet.compression`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParquetCodec {
    None,
    Snappy,
    Zstd,
    Gzip,
    Lz4,
}

/// How Parquet outputs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParquetOptions {
    pub codec: ParquetCodec,
    /// The zstd or gzip level.
    pub level: i32,
    /// Rows per row group, at most.
    pub row_group_rows: usize,
    /// Encoded bytes per row group, about (the writer's estimate), at most.
    pub row_group_bytes: usize,
}

/// Rows handed to the Arrow writer at a time. The writer's pages and row groups are cut where
/// writes end, so rows go to it in slices of exactly this many, whatever batches they came in:
/// the file is then a function of the rows alone (a run and a rethreshold, cutting their batches
/// differently, write the same bytes).
pub const WRITE_ROWS: usize = 1024;

/// Writes record batches as one Parquet file: row groups bounded by [`ParquetOptions`], the
/// schema (and key-value metadata) given at creation, the bytes independent of how the rows were
/// batched (see [`WRITE_ROWS`]).
pub struct ParquetWriter<W: Write + Send> {
    name: String,
    schema: SchemaRef,
    writer: ArrowWriter<W>,
    /// Rows not yet handed to the writer (fewer than [`WRITE_ROWS`] after each write).
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    rows: u64,
}

impl<W: Write + Send> ParquetWriter<W> {
    /// `name` is for messages.
    pub fn new(
        sink: W,
        schema: SchemaRef,
        options: ParquetOptions,
        name: &str,
    ) -> Result<ParquetWriter<W>, IoError> {
        let codec = match options.codec {
            ParquetCodec::None => parquet::basic::Compression::UNCOMPRESSED,
            ParquetCodec::Snappy => parquet::basic::Compression::SNAPPY,
            ParquetCodec::Lz4 => parquet::basic::Compression::LZ4_RAW,
            ParquetCodec::Zstd => parquet::basic::Compression::ZSTD(
                ZstdLevel::try_new(options.level).map_err(|e| parquet_error(name, e))?,
            ),
            ParquetCodec::Gzip => parquet::basic::Compression::GZIP(
                GzipLevel::try_new(options.level.clamp(0, 9) as u32)
                    .map_err(|e| parquet_error(name, e))?,
            ),
        };
        let properties = WriterProperties::builder()
            .set_compression(codec)
            .set_max_row_group_row_count(Some(options.row_group_rows.max(1)))
            .set_max_row_group_bytes(Some(options.row_group_bytes.max(1)))
            // The same bytes whatever parquet-rs version wrote them is too much to ask, but at
            // least say who wrote the file.
            .set_created_by(format!("sluice {}", env!("CARGO_PKG_VERSION")))
            .build();
        let writer = ArrowWriter::try_new(sink, schema.clone(), Some(properties))
            .map_err(|e| parquet_error(name, e))?;
        Ok(ParquetWriter {
            name: name.to_string(),
            schema,
            writer,
            pending: Vec::new(),
            pending_rows: 0,
            rows: 0,
        })
    }

    /// Appends `batch`'s rows (its schema must be the writer's).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), IoError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows += batch.num_rows() as u64;
        self.pending.push(batch.clone());
        self.pending_rows += batch.num_rows();
        if self.pending_rows >= WRITE_ROWS {
            self.hand_over(false)?;
        }
        Ok(())
    }

    /// Hands pending rows to the writer in slices of [`WRITE_ROWS`] (and the rest too, when
    /// `all`). What is left is copied out of the batches it came from, so that a few pending
    /// rows do not hold whole batches.
    fn hand_over(&mut self, all: bool) -> Result<(), IoError> {
        let whole = match self.pending.len() {
            0 => return Ok(()),
            1 => self.pending.pop().expect("one"),
            _ => arrow_select::concat::concat_batches(&self.schema, &self.pending)
                .map_err(|e| parquet_error(&self.name, e))?,
        };
        self.pending.clear();
        let rows = whole.num_rows();
        let mut at = 0;
        while rows - at >= WRITE_ROWS || (all && at < rows) {
            let take = WRITE_ROWS.min(rows - at);
            self.writer
                .write(&whole.slice(at, take))
                .map_err(|e| parquet_error(&self.name, e))?;
            at += take;
        }
        self.pending_rows = rows - at;
        if at < rows {
            let rest = whole.slice(at, rows - at);
            let rest = arrow_select::concat::concat_batches(&self.schema, [&rest])
                .map_err(|e| parquet_error(&self.name, e))?;
            self.pending.push(rest);
        }
        Ok(())
    }

    /// Rows written so far (pending, buffered or flushed).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes what is pending and buffered and the footer; returns the sink.
    pub fn finish(mut self) -> Result<W, IoError> {
        self.hand_over(true)?;
        let ParquetWriter { name, writer, .. } = self;
        writer.into_inner().map_err(|e| parquet_error(&name, e))
    }
}

/// An [`IoError::Parquet`] naming `path`.
fn parquet_error(path: impl AsRef<Path>, error: impl std::fmt::Display) -> IoError {
    IoError::Parquet {
        path: path.as_ref().to_path_buf(),
        message: lowercase(error.to_string()),
    }
}

/// Parquet's messages start with a capital ("Parquet error: ..."); ours are lowercase.
fn lowercase(message: String) -> String {
    let message = message
        .strip_prefix("Parquet error: ")
        .map(str::to_string)
        .unwrap_or(message);
    let mut chars = message.chars();
    match chars.next() {
        Some(first) if first.is_uppercase() && !chars.next().is_some_and(char::is_uppercase) => {
            first.to_lowercase().chain(message[1..].chars()).collect()
        }
        _ => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, Int64Array, StringArray, StructArray};
    use arrow_schema::{DataType, Field};
    use std::collections::HashMap;
    use std::sync::Arc;

    fn batch(from: i64, rows: usize) -> RecordBatch {
        let meta: HashMap<String, String> = [("origin".to_string(), "test".to_string())].into();
        let inner = Field::new("url", DataType::Utf8, true);
        let schema = Arc::new(
            arrow_schema::Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("text", DataType::Utf8, true),
                Field::new("meta", DataType::Struct(vec![inner.clone()].into()), true),
            ])
            .with_metadata(meta),
        );
        let ids: Vec<i64> = (from..from + rows as i64).collect();
        let texts: Vec<Option<String>> = ids
            .iter()
            .map(|i| (i % 5 != 0).then(|| format!("document {i}")))
            .collect();
        let urls: Vec<Option<String>> = ids.iter().map(|i| Some(format!("u{i}"))).collect();
        let meta = StructArray::from(vec![(
            Arc::new(inner),
            Arc::new(StringArray::from(urls)) as Arc<dyn Array>,
        )]);
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(texts)),
                Arc::new(meta),
            ],
        )
        .unwrap()
    }

    fn options(rows: usize) -> ParquetOptions {
        ParquetOptions {
            codec: ParquetCodec::Zstd,
            level: 1,
            row_group_rows: rows,
            row_group_bytes: 64 << 20,
        }
    }

    fn write(path: &Path, batches: &[RecordBatch], rows: usize) {
        let file = File::create(path).unwrap();
        let mut writer = ParquetWriter::new(file, batches[0].schema(), options(rows), "t").unwrap();
        for b in batches {
            writer.write(b).unwrap();
        }
        assert_eq!(
            writer.rows(),
            batches.iter().map(|b| b.num_rows() as u64).sum::<u64>()
        );
        writer.finish().unwrap();
    }

    #[test]
    fn written_batches_read_back_the_same_in_bounded_row_groups_and_batches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.parquet");
        let input = [batch(0, 250), batch(250, 100)];
        write(&path, &input, 100);
        assert_eq!(shard_format(&path).unwrap(), ShardFormat::Parquet);
        let reader = ParquetReader::open(&path).unwrap();
        assert_eq!(reader.row_groups(), 4, "350 rows in groups of at most 100");
        assert_eq!(reader.rows(), 350);
        assert_eq!(reader.schema().metadata()["origin"], "test");
        assert_eq!(reader.schema().fields(), input[0].schema().fields());
        let mut read = Vec::new();
        for group in 0..reader.row_groups() {
            for b in reader.batches(group, 30).unwrap() {
                let b = b.unwrap();
                assert!(b.num_rows() <= 30);
                read.push(b);
            }
        }
        let all = arrow_select::concat::concat_batches(&reader.schema(), &read).unwrap();
        let expected = arrow_select::concat::concat_batches(&input[0].schema(), &input).unwrap();
        assert_eq!(all.columns(), expected.columns());
    }

    #[test]
    fn the_bytes_depend_on_the_rows_not_on_how_they_were_batched() {
        let dir = tempfile::tempdir().unwrap();
        let rows = 5000;
        let whole = batch(0, rows);
        let write_cut = |name: &str, cuts: &[usize]| {
            let path = dir.path().join(name);
            let file = File::create(&path).unwrap();
            let mut options = options(1500);
            options.row_group_bytes = 20_000;
            let mut writer = ParquetWriter::new(file, whole.schema(), options, name).unwrap();
            let mut at = 0;
            for &cut in cuts.iter().chain([&rows]) {
                writer.write(&whole.slice(at, cut - at)).unwrap();
                at = cut;
            }
            writer.finish().unwrap();
            std::fs::read(&path).unwrap()
        };
        let one = write_cut("one.parquet", &[]);
        let many = write_cut("many.parquet", &[1, 2, 3, 1000, 1024, 1025, 2047, 4999]);
        let singles: Vec<usize> = (1..rows).step_by(7).collect();
        let small = write_cut("small.parquet", &singles);
        assert!(one == many && one == small, "the same rows, the same bytes");
        let reader = ParquetReader::open(&dir.path().join("one.parquet")).unwrap();
        assert!(
            reader.row_groups() > 4,
            "bounded by bytes: {}",
            reader.row_groups()
        );
        assert_eq!(reader.rows(), rows as u64);
    }

    #[test]
    fn projected_batches_read_only_the_named_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.parquet");
        write(&path, &[batch(0, 50)], 20);
        let reader = ParquetReader::open(&path).unwrap();
        let batch = reader
            .projected_batches(1, 100, &["meta", "absent", "text"])
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let schema = batch.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            ["text", "meta"],
            "file order, the absent one ignored"
        );
        assert_eq!(batch.num_rows(), 20);
    }

    #[test]
    fn batch_rows_follow_the_row_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.parquet");
        write(&path, &[batch(0, 1000)], 1000);
        let reader = ParquetReader::open(&path).unwrap();
        let small = reader.batch_rows(0, 1000);
        let large = reader.batch_rows(0, 100_000);
        assert!(small >= 1 && small < large, "{small} {large}");
        assert_eq!(reader.batch_rows(0, usize::MAX), 1 << 16);
    }

    #[test]
    fn compressed_or_fake_parquet_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.parquet");
        write(&path, &[batch(0, 10)], 10);
        let bytes = std::fs::read(&path).unwrap();
        // A gzip-wrapped Parquet file, whatever it is called.
        for name in ["a.parquet.gz", "a.jsonl.gz", "b"] {
            let wrapped = dir.path().join(name);
            let mut gz = flate2::write::GzEncoder::new(
                File::create(&wrapped).unwrap(),
                flate2::Compression::fast(),
            );
            gz.write_all(&bytes).unwrap();
            gz.finish().unwrap();
            let err = shard_format(&wrapped).unwrap_err();
            assert!(matches!(err, IoError::CompressedParquet { .. }), "{err}");
            assert!(err.to_string().contains("gzip-compressed parquet"), "{err}");
        }
        let zst = dir.path().join("a.parquet.zst");
        std::fs::write(&zst, zstd::encode_all(&bytes[..], 1).unwrap()).unwrap();
        let err = shard_format(&zst).unwrap_err().to_string();
        assert!(err.contains("zstd-compressed parquet"), "{err}");
        // JSON lines named .parquet: not read as JSONL.
        let fake = dir.path().join("c.parquet");
        std::fs::write(&fake, b"{\"text\": \"x\"}\n").unwrap();
        let err = shard_format(&fake).unwrap_err().to_string();
        assert!(err.contains("not a parquet file"), "{err}");
        // Compressed JSON lines are JSONL.
        let jsonl = dir.path().join("d.jsonl.zst");
        std::fs::write(&jsonl, zstd::encode_all(&b"{}\n"[..], 1).unwrap()).unwrap();
        assert_eq!(shard_format(&jsonl).unwrap(), ShardFormat::Jsonl);
    }

    #[test]
    fn a_truncated_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.parquet");
        write(&path, &[batch(0, 10)], 10);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 20]).unwrap();
        let err = ParquetReader::open(&path).err().unwrap().to_string();
        assert!(err.starts_with(&format!("{}: ", path.display())), "{err}");
    }

    #[test]
    fn names() {
        assert!(is_parquet_name("data/train-00000-of-00042.parquet"));
        assert!(is_parquet_name("x.PARQUET.gz"));
        assert!(!is_parquet_name(".parquet"));
        assert!(!is_parquet_name("x.jsonl"));
        assert_eq!(parquet_output_name("a.parquet"), "a.parquet");
        assert_eq!(parquet_output_name("a.jsonl"), "a.jsonl.parquet");
        assert!(is_parquet_output("a/b.parquet"));
    }
}
