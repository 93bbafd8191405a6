//! An output directory of `sluice run`, read shard by shard, in bounded memory.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sluice_core::output::Storage;
use sluice_core::records::ErrorRecord;
use sluice_core::run::{ShardEntry, ShardStatus, MANIFEST, REPORT};
use sluice_core::stats::Destination;
use sluice_core::{Manifest, Report};
use sluice_io::open_written;

use crate::{AuditError, Record};

/// A run's output directory (or URL in object storage): its manifest and report, and readers
/// for its shards.
pub struct OutDir {
    /// The directory or URL, as given (for messages).
    pub path: PathBuf,
    /// Where its files are read from.
    pub storage: Box<dyn Storage>,
    pub manifest: Manifest,
    /// `None` while a run is in progress or was killed before writing it.
    pub report: Option<Report>,
}

impl OutDir {
    /// The output directory at `path`, or in object storage where `path` is a URL
    /// (`s3://bucket/out/`).
    pub fn open(path: &Path) -> Result<OutDir, AuditError> {
        let read_error = |name: &str, message: String| AuditError::Read {
            path: path.join(name),
            message,
        };
        let storage =
            sluice_core::output::open_output(path).map_err(|e| read_error("", e.to_string()))?;
        let manifest = Manifest::load_from(&*storage)?;
        let manifest = match manifest {
            Some(manifest) => manifest,
            // A run spread over ranks has no manifest until `sluice merge` folds their records.
            None => {
                let ranked = storage
                    .exists(sluice_core::ranks::records::RUN_RECORD)
                    .map_err(|e| read_error(MANIFEST, e.to_string()))?;
                return Err(match ranked {
                    true => AuditError::Unmerged {
                        path: path.to_path_buf(),
                    },
                    false => AuditError::NotAnOutput {
                        path: path.to_path_buf(),
                    },
                });
            }
        };
        let report = match storage
            .read(REPORT)
            .map_err(|e| read_error(REPORT, e.to_string()))?
        {
            Some(stored) => Some(
                serde_json::from_slice(&stored.bytes)
                    .map_err(|e| read_error(REPORT, e.to_string()))?,
            ),
            None => None,
        };
        Ok(OutDir {
            path: path.to_path_buf(),
            storage,
            manifest,
            report,
        })
    }

    /// Whether the outputs are in object storage.
    pub fn is_remote(&self) -> bool {
        self.storage.local_dir().is_none()
    }

    /// Shards whose outputs are complete, in manifest order.
    pub fn done_shards(&self) -> impl Iterator<Item = &ShardEntry> {
        self.manifest
            .shards
            .iter()
            .filter(|e| e.status == ShardStatus::Done && e.output_name.is_some())
    }

    /// `DIR/NAME` of a shard's output stream (`kept`, `dropped`, `review`, `audit`, `errors`,
    /// `oversized`): a Parquet shard's records are under their own name (`N.jsonl.zst`).
    pub fn stream_path(&self, dir: &str, entry: &ShardEntry) -> PathBuf {
        self.path.join(self.stream_name(dir, entry))
    }

    /// `DIR/NAME` of a shard's output stream, relative to the output directory.
    pub fn stream_name(&self, dir: &str, entry: &ShardEntry) -> String {
        let name = match (dir, &entry.records_name) {
            ("audit" | "errors", Some(records)) => records,
            _ => entry.output_name.as_deref().unwrap_or(&entry.name),
        };
        format!("{dir}/{name}")
    }

    /// The bytes of a shard's output stream as stored (compressed), streamed.
    pub fn open_raw(
        &self,
        dir: &str,
        entry: &ShardEntry,
    ) -> Result<Box<dyn std::io::Read + Send>, AuditError> {
        self.storage
            .open(&self.stream_name(dir, entry))
            .map_err(|e| AuditError::Read {
                path: self.stream_path(dir, entry),
                message: e.to_string(),
            })
    }

    /// Whether a shard's kept/dropped/review outputs are Parquet files.
    pub fn is_parquet(entry: &ShardEntry) -> bool {
        entry
            .output_name
            .as_deref()
            .is_some_and(sluice_io::is_parquet_output)
    }

    /// The documents of one of a shard's kept/dropped/review outputs, in order: its lines, or
    /// for a Parquet output each row as a JSON line (as a JSONL shard's line would hold it): for
    /// one text field, the row's text and id at the run's `text_field` and `id_field`; for
    /// several text sources, the columns they read, as JSON.
    fn documents(&self, dir: &str, entry: &ShardEntry) -> Result<DocumentReader, AuditError> {
        if !OutDir::is_parquet(entry) {
            return Ok(DocumentReader::Lines(self.lines(dir, entry)?));
        }
        let input = &self.manifest.config.input;
        let fields = self.row_fields();
        // Only the columns holding the text and the id are read.
        let roots = fields.roots();
        Ok(DocumentReader::Parquet {
            rows: Box::new(crate::parquet_rows::ParquetRows::open_in(
                self,
                &self.stream_name(dir, entry),
                Some(roots.clone()),
            )?),
            single: fields.is_single(),
            fields,
            roots,
            text_field: input.text_field.clone(),
            id_field: input.id_field.clone(),
            line: Vec::new(),
        })
    }

    /// The run's fields of a Parquet row (as [`extractor`](Self::extractor)).
    pub fn row_fields(&self) -> sluice_core::rows::RowFields {
        let config = &self.manifest.config;
        config.row_fields().unwrap_or_else(|_| {
            let input = &config.input;
            sluice_core::rows::RowFields::new(&input.text_field, input.id_field.as_deref())
        })
    }

    /// The lines of one output stream, decompressed.
    pub fn lines(&self, dir: &str, entry: &ShardEntry) -> Result<LineReader, AuditError> {
        match self.storage.local_dir() {
            Some(_) => LineReader::open(&self.stream_path(dir, entry)),
            None => {
                LineReader::from_reader(&self.stream_path(dir, entry), self.open_raw(dir, entry)?)
            }
        }
    }

    /// The audit records of one shard, in line order.
    pub fn records(&self, entry: &ShardEntry) -> Result<Records<Record>, AuditError> {
        Ok(Records {
            lines: self.lines("audit", entry)?,
            _kind: std::marker::PhantomData,
        })
    }

    /// The error records of one shard.
    pub fn errors(&self, entry: &ShardEntry) -> Result<Records<ErrorRecord<'static>>, AuditError> {
        Ok(Records {
            lines: self.lines("errors", entry)?,
            _kind: std::marker::PhantomData,
        })
    }

    /// Every document of a shard in input order (see [`ShardWalker`]).
    pub fn walk(&self, entry: &ShardEntry) -> Result<ShardWalker, AuditError> {
        ShardWalker::new(self, entry)
    }
}

/// Lines of a (possibly compressed) file, without their `'\n'`.
pub struct LineReader {
    path: PathBuf,
    reader: Box<dyn BufRead + Send>,
    buf: Vec<u8>,
    number: u64,
}

impl LineReader {
    pub fn open(path: &Path) -> Result<LineReader, AuditError> {
        // Outputs sluice wrote: a zero-byte compressed file there is a truncated one.
        let (_, reader) = open_written(path).map_err(|e| AuditError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(LineReader {
            path: path.to_path_buf(),
            reader,
            buf: Vec::new(),
            number: 0,
        })
    }

    /// Lines of an output's bytes read from `raw` (an object), decompressed.
    pub fn from_reader(
        path: &Path,
        raw: Box<dyn std::io::Read + Send>,
    ) -> Result<LineReader, AuditError> {
        let (_, reader) =
            sluice_io::open_written_reader(path, raw).map_err(|e| AuditError::Read {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        Ok(LineReader {
            path: path.to_path_buf(),
            reader,
            buf: Vec::new(),
            number: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next line, or `None` at the end.
    pub fn next_line(&mut self) -> Result<Option<&[u8]>, AuditError> {
        self.buf.clear();
        let n = self
            .reader
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| AuditError::Read {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
        if n == 0 {
            return Ok(None);
        }
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
        }
        self.number += 1;
        Ok(Some(&self.buf))
    }
}

/// The documents of a kept/dropped/review output (see [`OutDir::documents`]).
enum DocumentReader {
    Lines(LineReader),
    Parquet {
        rows: Box<crate::parquet_rows::ParquetRows>,
        fields: sluice_core::rows::RowFields,
        /// One text field (else the `roots` columns are written out as JSON).
        single: bool,
        roots: Vec<String>,
        text_field: String,
        id_field: Option<String>,
        line: Vec<u8>,
    },
}

impl DocumentReader {
    fn next_line(&mut self) -> Result<Option<&[u8]>, AuditError> {
        match self {
            DocumentReader::Lines(lines) => lines.next_line(),
            DocumentReader::Parquet {
                rows,
                fields,
                single,
                roots,
                text_field,
                id_field,
                line,
            } => {
                let path = rows.path().to_path_buf();
                let Some((batch, row)) = rows.next_row()? else {
                    return Ok(None);
                };
                let object =
                    if *single {
                        let doc = fields.columns(batch).document(row).map_err(|e| {
                            AuditError::Record {
                                path,
                                line: row as u64 + 1,
                                message: e.message,
                            }
                        })?;
                        let mut object = serde_json::Value::Object(Default::default());
                        insert(&mut object, text_field, doc.text.as_ref().into());
                        if let (Some(field), Some(id)) = (id_field.as_deref(), doc.id) {
                            insert(&mut object, field, id.into());
                        }
                        object
                    } else {
                        // The run's extractor reads this line as the run read the row.
                        sluice_core::rows::row_json(batch, row, roots)
                    };
                line.clear();
                serde_json::to_writer(&mut *line, &object).expect("a json value serializes");
                Ok(Some(line))
            }
        }
    }
}

/// Sets `value` at the dotted `path` in `object`, making the objects on the way.
fn insert(object: &mut serde_json::Value, path: &str, value: serde_json::Value) {
    let mut here = object;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let map = match here {
            serde_json::Value::Object(map) => map,
            _ => return,
        };
        if parts.peek().is_none() {
            map.insert(part.to_string(), value);
            return;
        }
        here = map
            .entry(part.to_string())
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
    }
}

/// A stream of JSON records, one per line.
pub struct Records<T> {
    lines: LineReader,
    _kind: std::marker::PhantomData<T>,
}

impl<T: for<'de> Deserialize<'de>> Iterator for Records<T> {
    type Item = Result<T, AuditError>;
    fn next(&mut self) -> Option<Self::Item> {
        let line = match self.lines.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => return None,
            Err(e) => return Some(Err(e)),
        };
        Some(
            serde_json::from_slice(line).map_err(|e| AuditError::Record {
                path: self.lines.path.clone(),
                line: self.lines.number,
                message: e.to_string(),
            }),
        )
    }
}

/// One line of a shard, in input order.
pub enum Item<'a> {
    /// A document: its raw line, where it went, and its audit record when it has one.
    Document {
        line: u64,
        raw: &'a [u8],
        destination: Destination,
        record: Option<Record>,
    },
    /// A line in `errors/`.
    Error(ErrorRecord<'static>),
}

/// Rebuilds a shard's input order: line `n` is an error when an error record names it, the
/// document of an audit record naming it (read from the record's destination stream), or else the
/// next line of `kept/` (every unaudited document is kept, and each stream keeps input order).
pub struct ShardWalker {
    shard: String,
    total: u64,
    next: u64,
    streams: [DocumentReader; 3],
    records: std::iter::Peekable<Records<Record>>,
    errors: std::iter::Peekable<Records<ErrorRecord<'static>>>,
}

impl ShardWalker {
    fn new(out: &OutDir, entry: &ShardEntry) -> Result<ShardWalker, AuditError> {
        let total = entry
            .stats
            .as_ref()
            .map(|s| s.input.documents)
            .ok_or_else(|| AuditError::Inconsistent {
                shard: entry.name.clone(),
                message: "the manifest has no counts for it".into(),
            })?;
        Ok(ShardWalker {
            shard: entry.name.clone(),
            total,
            next: 1,
            streams: [
                out.documents("kept", entry)?,
                out.documents("dropped", entry)?,
                out.documents("review", entry)?,
            ],
            records: out.records(entry)?.peekable(),
            errors: out.errors(entry)?.peekable(),
        })
    }

    /// After the last line: every stream is read to its end, so that a file cut inside its last
    /// gzip or zstd trailer is an error, not a quiet success, and a stream with lines left over
    /// is inconsistent with the manifest.
    fn finish(&mut self) -> Result<(), AuditError> {
        let mut extra = 0u64;
        for record in self.records.by_ref() {
            record?;
            extra += 1;
        }
        for error in self.errors.by_ref() {
            error?;
            extra += 1;
        }
        for stream in &mut self.streams {
            while stream.next_line()?.is_some() {
                extra += 1;
            }
        }
        if extra > 0 {
            return Err(self.inconsistent(format!(
                "{extra} lines beyond the {} the manifest counts",
                self.total
            )));
        }
        Ok(())
    }

    fn inconsistent(&self, message: String) -> AuditError {
        AuditError::Inconsistent {
            shard: self.shard.clone(),
            message,
        }
    }

    /// The next line in input order, `None` after the last.
    pub fn next_item(&mut self) -> Result<Option<Item<'_>>, AuditError> {
        let n = self.next;
        if n > self.total {
            if n == self.total + 1 {
                self.next += 1;
                self.finish()?;
            }
            return Ok(None);
        }
        self.next += 1;
        if let Some(Ok(error)) = self.errors.peek() {
            if error.line == n {
                let Some(Ok(error)) = self.errors.next() else {
                    unreachable!()
                };
                return Ok(Some(Item::Error(error)));
            }
        }
        if let Some(Err(_)) = self.errors.peek() {
            return Err(self.errors.next().expect("peeked").expect_err("peeked"));
        }
        let record = match self.records.peek() {
            Some(Ok(r)) if r.line == n => Some(self.records.next().expect("peeked")?),
            Some(Ok(r)) if r.line < n => {
                let line = r.line;
                return Err(
                    self.inconsistent(format!("audit record for line {line} is out of order"))
                );
            }
            Some(Err(_)) => return Err(self.records.next().expect("peeked").expect_err("peeked")),
            _ => None,
        };
        let destination = record.as_ref().map_or(Destination::Kept, |r| r.decision);
        let index = match destination {
            Destination::Kept => 0,
            Destination::Dropped => 1,
            Destination::Review => 2,
            Destination::Errors => {
                return Err(self.inconsistent(format!("line {n}: audit record says errors")))
            }
        };
        let shard = self.shard.clone();
        let raw = self.streams[index]
            .next_line()?
            .ok_or_else(|| AuditError::Inconsistent {
                shard,
                message: format!("{} ends before line {n}", destination.name()),
            })?;
        Ok(Some(Item::Document {
            line: n,
            raw,
            destination,
            record,
        }))
    }
}

/// A selected record with its document's text (decoded from the joined line).
pub struct Joined {
    pub record: Record,
    /// The raw line as it is in the output shard.
    pub raw: Vec<u8>,
    /// The document text, when the line yields one with the run's `[input]` fields.
    pub text: Option<String>,
    /// The parts of `text`, for a document of parts (chat messages, instruction fields).
    pub parts: Vec<sluice_core::document::Part<'static>>,
}

/// The text and parts of a raw line, as the run's extractor reads it.
fn read_text(
    extractor: &sluice_core::document::FieldExtractor,
    raw: &[u8],
) -> (Option<String>, Vec<sluice_core::document::Part<'static>>) {
    match extractor.extract(raw) {
        Ok(doc) => {
            let doc = doc.into_owned();
            (Some(doc.text.into_owned()), doc.parts)
        }
        Err(_) => (None, Vec::new()),
    }
}

impl OutDir {
    /// The run's field extractor (its `text_field` or text sources, and `id_field`).
    pub fn extractor(&self) -> sluice_core::document::FieldExtractor {
        let config = &self.manifest.config;
        config.extractor().unwrap_or_else(|_| {
            let input = &config.input;
            sluice_core::document::FieldExtractor::new(&input.text_field, input.id_field.as_deref())
        })
    }

    /// Joins records with their documents' lines: each shard with a wanted record is walked once,
    /// up to its last wanted line. The result keeps `records`' order.
    pub fn join(&self, records: Vec<Record>) -> Result<Vec<Joined>, AuditError> {
        let extractor = self.extractor();
        let mut by_shard: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
        for (i, r) in records.iter().enumerate() {
            by_shard.entry(r.shard.to_string()).or_default().push(i);
        }
        let mut raws: Vec<Option<Vec<u8>>> = vec![None; records.len()];
        for (shard, mut wanted) in by_shard {
            let Some(entry) = self.done_shards().find(|e| e.name == shard) else {
                continue;
            };
            wanted.sort_by_key(|&i| records[i].line);
            let mut walker = self.walk(entry)?;
            let mut next = 0;
            while next < wanted.len() {
                let Some(item) = walker.next_item()? else {
                    break;
                };
                if let Item::Document { line, raw, .. } = item {
                    while next < wanted.len() && records[wanted[next]].line == line {
                        raws[wanted[next]] = Some(raw.to_vec());
                        next += 1;
                    }
                }
            }
        }
        Ok(records
            .into_iter()
            .zip(raws)
            .map(|(record, raw)| {
                let raw = raw.unwrap_or_default();
                let (text, parts) = read_text(&extractor, &raw);
                Joined {
                    record,
                    raw,
                    text,
                    parts,
                }
            })
            .collect())
    }
}

impl OutDir {
    /// Calls `each` on every record that `filter` selects, joined with its document, in shard and
    /// line order. With `sample = Some((n, seed))`, on a deterministic uniform sample of `n` of
    /// them instead (reservoir sampling: one pass over the audit records, then one walk of the
    /// shards that hold a sampled record).
    pub fn select(
        &self,
        filter: &crate::select::Filter,
        sample: Option<(usize, u64)>,
        mut each: impl FnMut(Joined) -> Result<(), AuditError>,
    ) -> Result<(), AuditError> {
        if let Some((n, seed)) = sample {
            let mut reservoir = crate::select::Reservoir::new(n, seed);
            for entry in self.done_shards() {
                for record in self.records(entry)? {
                    let record = record?;
                    if filter.matches(&record) {
                        reservoir.offer(record);
                    }
                }
            }
            for joined in self.join(reservoir.into_sorted())? {
                each(joined)?;
            }
            return Ok(());
        }
        let extractor = self.extractor();
        for entry in self.done_shards() {
            if entry.stats.as_ref().is_some_and(|s| s.audited == 0) {
                continue;
            }
            let mut walker = self.walk(entry)?;
            while let Some(item) = walker.next_item()? {
                if let Item::Document {
                    raw,
                    record: Some(record),
                    ..
                } = item
                {
                    if filter.matches(&record) {
                        let (text, parts) = read_text(&extractor, raw);
                        each(Joined {
                            record,
                            raw: raw.to_vec(),
                            text,
                            parts,
                        })?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Runs the hazard cascade on `corpus` into `out`, the config first edited by `edit`.
    pub(crate) fn run_fixture(
        corpus: &Path,
        out: &Path,
        edit: impl FnOnce(&mut sluice_core::Config),
    ) {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut config =
            sluice_core::Config::from_file(&repo.join("configs/hazard-cascade.toml")).unwrap();
        edit(&mut config);
        let options = sluice_core::RunOptions {
            inputs: vec![corpus.to_string_lossy().into_owned()],
            output: Some(out.to_path_buf()),
            threads: Some(1),
            force: true,
            progress: None,
            ..Default::default()
        };
        sluice_core::run(&config, &options).unwrap();
    }

    #[test]
    fn the_walker_rebuilds_input_order() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        run_fixture(&repo.join("fixtures/corpus"), &out, |_| {});
        let dir = OutDir::open(&out).unwrap();
        let entry = dir
            .done_shards()
            .find(|e| e.name == "malformed.jsonl")
            .unwrap();
        let input = std::fs::read(repo.join("fixtures/corpus/malformed.jsonl")).unwrap();
        let mut walker = dir.walk(entry).unwrap();
        let mut rebuilt = Vec::new();
        let mut errors = 0;
        while let Some(item) = walker.next_item().unwrap() {
            match item {
                Item::Document { raw, .. } => rebuilt.push(raw.to_vec()),
                Item::Error(_) => {
                    errors += 1;
                    rebuilt.push(Vec::new())
                }
            }
        }
        let lines: Vec<&[u8]> = input
            .strip_suffix(b"\n")
            .unwrap_or(&input)
            .split(|b| *b == b'\n')
            .collect();
        assert_eq!(rebuilt.len(), lines.len());
        for (a, b) in rebuilt.iter().zip(&lines) {
            if !a.is_empty() {
                assert_eq!(a, b);
            }
        }
        assert_eq!(errors, 7);
    }
}
