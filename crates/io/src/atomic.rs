//! Output files that appear under their final name only once complete.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::discover::TEMP_SUFFIX;
use crate::error::Describe;
use crate::IoError;

/// Buffer size of an [`AtomicFile`].
const WRITE_BUFFER_BYTES: usize = 1024 * 1024;

/// A file written under a temporary name (`<final>.tmp-sluice`, parent directories created) and
/// renamed to its final name only by [`AtomicFile::finish`], after a flush and `sync_data`.
/// Dropping it without `finish` removes the temporary file, so an interrupted run never leaves a
/// truncated output under a final name (and discovery skips `*.tmp-sluice` files).
///
/// Writes are buffered; their errors name the temporary file.
pub struct AtomicFile {
    path: PathBuf,
    temp: PathBuf,
    /// `None` once finished (or after a failed finish).
    writer: Option<BufWriter<File>>,
}

/// The temporary name of `path`: `<path>.tmp-sluice`.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(TEMP_SUFFIX);
    PathBuf::from(name)
}

impl AtomicFile {
    /// Creates (truncating a stale one) `<path>.tmp-sluice`, creating parent directories.
    pub fn create(path: &Path) -> Result<Self, IoError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent)
                .map_err(|e| IoError::write(parent, "create directory", e))?;
        }
        let temp = temp_path(path);
        let file = File::create(&temp).map_err(|e| IoError::write(&temp, "create", e))?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            temp,
            writer: Some(BufWriter::with_capacity(WRITE_BUFFER_BYTES, file)),
        })
    }

    /// The final path (where the file appears after [`AtomicFile::finish`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary path being written.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Flushes, syncs the data to disk and renames the file to its final name (replacing an
    /// existing file). On failure the temporary file is removed.
    pub fn finish(mut self) -> Result<(), IoError> {
        let Some(writer) = self.writer.take() else {
            return Err(IoError::write(
                &self.temp,
                "finish",
                io::Error::other("already finished"),
            ));
        };
        let result = Self::complete(writer, &self.temp, &self.path);
        if result.is_err() {
            let _ = fs::remove_file(&self.temp);
        }
        result
    }

    fn complete(writer: BufWriter<File>, temp: &Path, path: &Path) -> Result<(), IoError> {
        let file = writer
            .into_inner()
            .map_err(|e| IoError::write(temp, "write", e.into_error()))?;
        file.sync_data()
            .map_err(|e| IoError::write(temp, "sync", e))?;
        drop(file);
        fs::rename(temp, path).map_err(|e| IoError::Write {
            path: path.to_path_buf(),
            action: "rename temporary file to",
            error: e,
        })?;
        // Make the rename itself durable (best effort: not every platform can open directories).
        #[cfg(unix)]
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if let Ok(dir) = File::open(parent) {
                let _ = dir.sync_all();
            }
        }
        Ok(())
    }

    fn annotate(&self, error: io::Error) -> io::Error {
        io::Error::new(
            error.kind(),
            format!("cannot write {}: {}", self.temp.display(), Describe(&error)),
        )
    }

    fn writer(&mut self) -> io::Result<&mut BufWriter<File>> {
        self.writer
            .as_mut()
            .ok_or_else(|| io::Error::other("write after finish"))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.writer().and_then(|w| w.write(buf)) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => Err(self.annotate(e)),
            other => other,
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self.writer().and_then(|w| w.write_all(buf)) {
            Err(e) => Err(self.annotate(e)),
            ok => ok,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.writer().and_then(|w| w.flush()) {
            Err(e) => Err(self.annotate(e)),
            ok => ok,
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            // Unfinished: discard the buffer (no point flushing) and the temporary file.
            let (file, _unflushed) = writer.into_parts();
            drop(file);
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// Writes `bytes` to `path` atomically (see [`AtomicFile`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    let mut file = AtomicFile::create(path)?;
    let written = file.writer().and_then(|w| w.write_all(bytes));
    written.map_err(|e| IoError::write(file.temp_path(), "write", e))?;
    file.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_renames_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out/nested/x.jsonl.zst");
        let mut file = AtomicFile::create(&path).unwrap();
        assert_eq!(file.path(), path);
        let temp = dir.path().join("out/nested/x.jsonl.zst.tmp-sluice");
        assert_eq!(file.temp_path(), temp);
        assert!(temp.exists());
        assert!(!path.exists());
        file.write_all(b"hello ").unwrap();
        file.write_all(b"world\n").unwrap();
        file.flush().unwrap();
        assert!(!path.exists());
        file.finish().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"hello world\n");
        assert!(!temp.exists());
    }

    #[test]
    fn finish_replaces_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.txt");
        fs::write(&path, b"old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        // Empty contents are fine.
        write_atomic(&path, b"").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"");
    }

    #[test]
    fn drop_without_finish_removes_the_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("y.jsonl");
        fs::write(&path, b"previous run").unwrap();
        {
            let mut file = AtomicFile::create(&path).unwrap();
            file.write_all(&vec![b'z'; 3 << 20]).unwrap();
            assert!(file.temp_path().exists());
        }
        assert!(!temp_path(&path).exists());
        // The previous final file is untouched.
        assert_eq!(fs::read(&path).unwrap(), b"previous run");
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1);
    }

    #[test]
    fn errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        // A parent that is a file: creating the directory fails.
        let blocker = dir.path().join("blocker");
        fs::write(&blocker, b"").unwrap();
        let path = blocker.join("x.jsonl");
        let err = AtomicFile::create(&path).err().unwrap();
        let message = err.to_string();
        assert!(message.starts_with("cannot create directory "), "{message}");
        assert!(
            message.contains(&blocker.display().to_string()),
            "{message}"
        );
        // The final path is a directory: the rename fails, the temp file is cleaned up.
        let target = dir.path().join("target-dir");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("inside"), b"x").unwrap();
        let err = write_atomic(&target, b"data").unwrap_err();
        assert!(err.to_string().contains("target-dir"), "{err}");
        assert!(!temp_path(&target).exists());
    }
}
