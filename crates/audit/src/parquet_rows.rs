//! The rows of a Parquet output (`kept/N`, `dropped/N`, `review/N` of a Parquet shard), one at a
//! time in file order, a bounded batch in memory.

use std::path::{Path, PathBuf};

use sluice_io::arrow_array::RecordBatch;
use sluice_io::arrow_schema::SchemaRef;
use sluice_io::{ParquetReader, RowGroupBatches};

use crate::AuditError;

/// Rows decoded per batch: few enough to hold, many enough to decode efficiently.
const BATCH_BYTES: usize = 4 << 20;

pub struct ParquetRows {
    path: PathBuf,
    reader: ParquetReader,
    /// Read only these top-level columns (all when `None`).
    columns: Option<Vec<String>>,
    /// The next row group to open.
    group: usize,
    batches: Option<RowGroupBatches>,
    batch: Option<RecordBatch>,
    /// The next row of `batch`.
    row: usize,
}

impl ParquetRows {
    /// Every column of the file at `path`.
    pub fn open(path: &Path) -> Result<ParquetRows, AuditError> {
        ParquetRows::open_columns(path, None)
    }

    /// Only the top-level `columns` (those that exist) of the file at `path`, or all of them.
    pub fn open_columns(
        path: &Path,
        columns: Option<Vec<String>>,
    ) -> Result<ParquetRows, AuditError> {
        let reader = ParquetReader::open(path).map_err(|e| read_error(path, e))?;
        Ok(ParquetRows::of(path, reader, columns))
    }

    /// [`ParquetRows::open_columns`] of the output `name` of an output directory or URL (an
    /// object is read by ranged GETs).
    pub fn open_in(
        out: &crate::OutDir,
        name: &str,
        columns: Option<Vec<String>>,
    ) -> Result<ParquetRows, AuditError> {
        let path = out.path.join(name);
        if out.storage.local_dir().is_some() {
            return ParquetRows::open_columns(&path, columns);
        }
        let object = out
            .storage
            .remote_object(name)
            .and_then(|found| {
                found.ok_or_else(|| sluice_io::IoError::Remote {
                    url: path.display().to_string(),
                    message: "not found".into(),
                })
            })
            .map_err(|e| read_error(&path, e))?;
        let reader = ParquetReader::open_remote(&object).map_err(|e| read_error(&path, e))?;
        Ok(ParquetRows::of(&path, reader, columns))
    }

    fn of(path: &Path, reader: ParquetReader, columns: Option<Vec<String>>) -> ParquetRows {
        ParquetRows {
            path: path.to_path_buf(),
            reader,
            columns,
            group: 0,
            batches: None,
            batch: None,
            row: 0,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn schema(&self) -> SchemaRef {
        self.reader.schema()
    }

    /// The next row: the batch holding it and its index there; `None` after the last.
    pub fn next_row(&mut self) -> Result<Option<(&RecordBatch, usize)>, AuditError> {
        loop {
            if self.batch.as_ref().is_some_and(|b| self.row < b.num_rows()) {
                self.row += 1;
                return Ok(self.batch.as_ref().map(|b| (b, self.row - 1)));
            }
            self.batch = None;
            self.row = 0;
            if let Some(batches) = &mut self.batches {
                match batches.next() {
                    Some(batch) => {
                        self.batch = Some(batch.map_err(|e| read_error(&self.path, e))?);
                        continue;
                    }
                    None => self.batches = None,
                }
            }
            if self.group >= self.reader.row_groups() {
                return Ok(None);
            }
            let rows = self.reader.batch_rows(self.group, BATCH_BYTES);
            let batches = match &self.columns {
                None => self.reader.batches(self.group, rows),
                Some(columns) => {
                    let names: Vec<&str> = columns.iter().map(String::as_str).collect();
                    self.reader.projected_batches(self.group, rows, &names)
                }
            };
            self.batches = Some(batches.map_err(|e| read_error(&self.path, e))?);
            self.group += 1;
        }
    }
}

fn read_error(path: &Path, error: sluice_io::IoError) -> AuditError {
    let message = error.to_string();
    // Parquet errors name the file already.
    let message = message
        .strip_prefix(&format!("{}: ", path.display()))
        .map_or(message.clone(), str::to_string);
    AuditError::Read {
        path: path.to_path_buf(),
        message,
    }
}
