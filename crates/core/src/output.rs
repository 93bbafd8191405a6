//! Where a shard's outputs go, written once for `run` and `rethreshold`.
//!
//! Two separate axes:
//!
//! * **how records are encoded** ([`Encoding`]): a chunk's five streams ([`ChunkStreams`]) become
//!   five self-contained frames ([`Frames`]); today JSONL lines compressed as zstd / gzip frames
//!   (or plain), a columnar format would be another encoding of the same streams;
//! * **where bytes live** ([`Storage`]): a [`Sink`] per output file that appears under its final
//!   name only when finished, and leaves nothing when dropped unfinished. [`LocalDir`] is a
//!   directory (temp file + rename); [`ObjectStorage`] a prefix in object storage (one PUT, or a
//!   multipart upload completed at the end and aborted when dropped).
//!
//! A [`ShardWriter`] joins them: it opens a shard's five sinks, appends frames in chunk order,
//! writes a valid empty stream where a destination got nothing, creates the shard's `oversized/`
//! spill only when a line needs it, and on [`ShardWriter::finish`] puts everything in place (the
//! spill first, so that a failure leaves none of the five).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sluice_io::{
    compress_frame, empty_stream, AtomicFile, CompressedWriter, Compression, IoError, LockError,
    ObjectDir, ObjectLock, ObjectWriter, OutputLock,
};

use crate::stats::Destination;

/// A shard's output streams, in their order on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Kept,
    Dropped,
    Review,
    Audit,
    Errors,
}

impl Stream {
    pub const ALL: [Stream; 5] = [
        Stream::Kept,
        Stream::Dropped,
        Stream::Review,
        Stream::Audit,
        Stream::Errors,
    ];

    /// The stream's directory under the output directory.
    pub fn dir(self) -> &'static str {
        match self {
            Stream::Kept => "kept",
            Stream::Dropped => "dropped",
            Stream::Review => "review",
            Stream::Audit => "audit",
            Stream::Errors => "errors",
        }
    }

    /// The stream a document's line goes to.
    pub fn of(destination: Destination) -> Stream {
        match destination {
            Destination::Kept => Stream::Kept,
            Destination::Dropped => Stream::Dropped,
            Destination::Review => Stream::Review,
            Destination::Errors => Stream::Errors,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Where a shard's lines over `input.max_line_bytes` are kept whole, under the output directory.
pub const OVERSIZED_DIR: &str = "oversized";

/// How a shard's streams are encoded: the compression of its frames and its level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Encoding {
    pub compression: Compression,
    pub level: i32,
}

/// One chunk's output before encoding: the bytes of each stream.
#[derive(Default)]
pub struct ChunkStreams {
    buffers: [Vec<u8>; 5],
}

impl ChunkStreams {
    /// Room for `bytes` more in `stream` (the chunk's size in `kept`, where most lines go).
    pub fn reserve(&mut self, stream: Stream, bytes: usize) {
        self.buffers[stream.index()].reserve(bytes);
    }

    /// Appends a raw line and its `'\n'`.
    pub fn line(&mut self, stream: Stream, raw: &[u8]) {
        let buffer = &mut self.buffers[stream.index()];
        buffer.extend_from_slice(raw);
        buffer.push(b'\n');
    }

    /// Appends a JSON record and its `'\n'`.
    pub fn record(&mut self, stream: Stream, record: &impl Serialize) -> serde_json::Result<()> {
        let buffer = &mut self.buffers[stream.index()];
        serde_json::to_writer(&mut *buffer, record)?;
        buffer.push(b'\n');
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.buffers.iter().all(Vec::is_empty)
    }

    /// Encodes each stream as one self-contained frame (none for an empty stream) and empties the
    /// streams. Uncompressed, a stream's bytes are its frame: moved, not copied.
    pub fn encode(&mut self, encoding: Encoding) -> Result<Frames, IoError> {
        let mut frames = Frames::default();
        for (data, frame) in self.buffers.iter_mut().zip(frames.0.iter_mut()) {
            if encoding.compression == Compression::None {
                *frame = std::mem::take(data);
                continue;
            }
            compress_frame(data, encoding.compression, encoding.level, frame)?;
            data.clear();
        }
        Ok(frames)
    }
}

/// One chunk's encoded frames, one per stream (empty: nothing for that stream).
#[derive(Default, Debug)]
pub struct Frames([Vec<u8>; 5]);

impl Frames {
    /// The encoded frame of `stream`.
    pub fn of(&self, stream: Stream) -> &[u8] {
        &self.0[stream.index()]
    }
}

/// Where output bytes live (see the module docs). Names are relative, `/`-separated.
///
/// Besides the shards' outputs, a run keeps small records here (its manifest, a run over ranks'
/// `ranks/` files): written whole, created only if absent, replaced, and locks. On a local disk
/// these are a temp file renamed, a hard link, `flock`; on object storage one PUT, a
/// conditional create (`If-None-Match: *`), a conditional update on the ETag read, a lease
/// object (see [`sluice_io::ObjectLock`]).
pub trait Storage: Send + Sync {
    /// A new output that appears under `name` only when finished.
    fn create(&self, name: &str) -> Result<Box<dyn Sink>, IoError>;
    /// Removes `name` if it exists (a stale output of an earlier run).
    fn remove(&self, name: &str) -> Result<(), IoError>;
    /// For messages: where `name` is.
    fn describe(&self, name: &str) -> String;
    /// The output directory or URL, for messages.
    fn root(&self) -> PathBuf;
    /// The local directory, where the outputs are on a local (or network) filesystem.
    fn local_dir(&self) -> Option<&Path>;
    /// The record `name`, read whole; `None` where there is none.
    fn read(&self, name: &str) -> Result<Option<Stored>, IoError>;
    /// Whether `name` exists.
    fn exists(&self, name: &str) -> Result<bool, IoError>;
    /// Creates `name` with `bytes` unless it exists: `false` when another writer created it
    /// first.
    fn create_new(&self, name: &str, bytes: &[u8]) -> Result<bool, IoError>;
    /// Writes `name` whole. With `read`, only if it is still what was read (on object storage:
    /// a conditional update on its ETag; `false` when another writer changed it meanwhile; a
    /// local rename has no such check, the callers' locks serialize it there).
    fn replace(&self, name: &str, bytes: &[u8], read: Option<&Stored>) -> Result<bool, IoError>;
    /// Takes the lock `name` (`.sluice.lock`, `ranks/locks/rank-R-of-W.lock`) for `command`.
    fn lock(&self, name: &str, command: &str) -> Result<HeldLock, LockError>;
    /// Fails with [`LockError::Held`] while a live holder holds the lock `name`.
    fn check_lock_free(&self, name: &str) -> Result<(), LockError>;
    /// A reader of the output `name`, as stored (compressed).
    fn open(&self, name: &str) -> Result<Box<dyn io::Read + Send>, IoError>;
    /// Fails where the storage cannot be used at all (credentials, a missing bucket).
    fn check(&self) -> Result<(), IoError> {
        Ok(())
    }
    /// The object `name` is, as listed (object storage only; `None` on a local disk).
    fn remote_object(&self, _name: &str) -> Result<Option<sluice_io::RemoteObject>, IoError> {
        Ok(None)
    }
}

/// A record read whole, with what a conditional replace needs.
pub struct Stored {
    pub bytes: Vec<u8>,
    version: Option<sluice_io::Versioned>,
}

/// A lock held in an output directory, released when dropped.
#[derive(Debug)]
pub enum HeldLock {
    Local(OutputLock),
    Object(ObjectLock),
}

impl HeldLock {
    /// The holder of a stale lock taken over (a process that is gone).
    pub fn stale(&self) -> Option<&sluice_io::Holder> {
        match self {
            HeldLock::Local(lock) => lock.stale(),
            HeldLock::Object(lock) => lock.stale(),
        }
    }
}

/// The storage of an output directory or URL (`s3://bucket/out/`, `gs://`, `az://`): an
/// [`ObjectStorage`] for a URL, else a [`LocalDir`].
pub fn open_output(output: &Path) -> Result<Box<dyn Storage>, IoError> {
    match output.to_str().filter(|text| sluice_io::is_url(text)) {
        Some(url) => Ok(Box::new(ObjectStorage {
            dir: ObjectDir::open(url)?,
        })),
        None => Ok(Box::new(LocalDir::new(output))),
    }
}

/// Whether `output` names an object storage URL rather than a local directory.
pub fn is_remote(output: &Path) -> bool {
    output.to_str().is_some_and(sluice_io::is_url)
}

/// One output being written: [`Sink::finish`] puts it in place; dropped unfinished, it leaves
/// nothing under its final name.
pub trait Sink: Write + Send {
    fn finish(self: Box<Self>) -> Result<(), IoError>;
}

/// A local output directory: files are written under a temporary name and renamed when finished
/// ([`AtomicFile`]).
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    pub fn new(root: &Path) -> LocalDir {
        LocalDir {
            root: root.to_path_buf(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn write_error(&self, name: &str, action: &'static str, error: io::Error) -> IoError {
        IoError::Write {
            path: self.path(name),
            action,
            error,
        }
    }
}

/// Splits `ranks/locks/x.lock` into its directory and file name.
fn split_name(name: &str) -> (&str, &str) {
    name.rsplit_once('/').unwrap_or(("", name))
}

impl Storage for LocalDir {
    fn create(&self, name: &str) -> Result<Box<dyn Sink>, IoError> {
        Ok(Box::new(AtomicFile::create(&self.path(name))?))
    }

    fn remove(&self, name: &str) -> Result<(), IoError> {
        match std::fs::remove_file(self.path(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(self.write_error(name, "remove stale", e))
            }
            _ => Ok(()),
        }
    }

    fn describe(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    fn root(&self) -> PathBuf {
        self.root.clone()
    }

    fn local_dir(&self) -> Option<&Path> {
        Some(&self.root)
    }

    fn read(&self, name: &str) -> Result<Option<Stored>, IoError> {
        match std::fs::read(self.path(name)) {
            Ok(bytes) => Ok(Some(Stored {
                bytes,
                version: None,
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(IoError::Read {
                path: self.path(name),
                error: e,
            }),
        }
    }

    fn exists(&self, name: &str) -> Result<bool, IoError> {
        Ok(self.path(name).is_file())
    }

    /// A hard link from a temporary file of this process: atomic on POSIX filesystems and NFS.
    fn create_new(&self, name: &str, bytes: &[u8]) -> Result<bool, IoError> {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| self.write_error(name, "create directory for", e))?;
        }
        let temp = unique_temp(&path);
        write_synced(&temp, bytes).map_err(|e| self.write_error(name, "write", e))?;
        let linked = std::fs::hard_link(&temp, &path);
        let _ = std::fs::remove_file(&temp);
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(self.write_error(name, "create", e)),
        }
    }

    /// From a temporary file of this process (several ranks may write one file at once: each
    /// its own temp file), renamed over.
    fn replace(&self, name: &str, bytes: &[u8], _read: Option<&Stored>) -> Result<bool, IoError> {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| self.write_error(name, "create directory for", e))?;
        }
        let temp = unique_temp(&path);
        let result = write_synced(&temp, bytes).and_then(|()| std::fs::rename(&temp, &path));
        result.map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            self.write_error(name, "write", e)
        })?;
        Ok(true)
    }

    fn lock(&self, name: &str, command: &str) -> Result<HeldLock, LockError> {
        let (dir, file) = split_name(name);
        OutputLock::acquire_file(&self.root.join(dir), file, command).map(HeldLock::Local)
    }

    fn check_lock_free(&self, name: &str) -> Result<(), LockError> {
        let (dir, file) = split_name(name);
        OutputLock::check_free(&self.root.join(dir), file)
    }

    fn open(&self, name: &str) -> Result<Box<dyn io::Read + Send>, IoError> {
        let path = self.path(name);
        let file = std::fs::File::open(&path).map_err(|e| IoError::Read { path, error: e })?;
        Ok(Box::new(file))
    }
}

fn unique_temp(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{}{}", std::process::id(), sluice_io::TEMP_SUFFIX));
    PathBuf::from(name)
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_data()
}

impl Sink for AtomicFile {
    fn finish(self: Box<Self>) -> Result<(), IoError> {
        AtomicFile::finish(*self)
    }
}

/// An output prefix in object storage: each output a multipart upload (or one PUT), visible
/// when complete (see [`sluice_io::ObjectWriter`]).
pub struct ObjectStorage {
    dir: ObjectDir,
}

impl Storage for ObjectStorage {
    /// One listing request: wrong credentials or a missing bucket fail here, before any work.
    fn check(&self) -> Result<(), IoError> {
        self.dir.check()
    }

    fn create(&self, name: &str) -> Result<Box<dyn Sink>, IoError> {
        Ok(Box::new(self.dir.create(name)))
    }

    fn remove(&self, name: &str) -> Result<(), IoError> {
        self.dir.remove(name)
    }

    fn describe(&self, name: &str) -> String {
        self.dir.url_of(name)
    }

    fn root(&self) -> PathBuf {
        PathBuf::from(self.dir.url())
    }

    fn local_dir(&self) -> Option<&Path> {
        None
    }

    fn read(&self, name: &str) -> Result<Option<Stored>, IoError> {
        Ok(self.dir.read(name)?.map(|found| Stored {
            bytes: found.bytes.to_vec(),
            version: Some(found),
        }))
    }

    fn exists(&self, name: &str) -> Result<bool, IoError> {
        self.dir.exists(name)
    }

    fn create_new(&self, name: &str, bytes: &[u8]) -> Result<bool, IoError> {
        self.dir.create_new(name, bytes)
    }

    fn replace(&self, name: &str, bytes: &[u8], read: Option<&Stored>) -> Result<bool, IoError> {
        match read.and_then(|r| r.version.as_ref()) {
            Some(version) => self.dir.replace_if(name, bytes, version),
            None => self.dir.put(name, bytes).map(|()| true),
        }
    }

    fn lock(&self, name: &str, command: &str) -> Result<HeldLock, LockError> {
        ObjectLock::acquire(&self.dir, name, command).map(HeldLock::Object)
    }

    fn check_lock_free(&self, name: &str) -> Result<(), LockError> {
        ObjectLock::check_free(&self.dir, name)
    }

    fn open(&self, name: &str) -> Result<Box<dyn io::Read + Send>, IoError> {
        Ok(Box::new(self.dir.reader(name)?))
    }

    fn remote_object(&self, name: &str) -> Result<Option<sluice_io::RemoteObject>, IoError> {
        self.dir.object(name)
    }
}

impl Sink for ObjectWriter {
    fn finish(self: Box<Self>) -> Result<(), IoError> {
        ObjectWriter::finish(*self)
    }
}

/// A failure to write a shard's outputs, naming the output.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {output}: {error}")]
pub struct WriteError {
    pub output: String,
    pub error: io::Error,
}

/// The five outputs of one shard (and its spill), written in chunk order.
pub struct ShardWriter<'s> {
    streams: StreamSinks<'s>,
    spill: Spill<'s>,
}

/// The five outputs of a shard, without the spill.
pub struct StreamSinks<'s> {
    storage: &'s dyn Storage,
    name: String,
    encoding: Encoding,
    files: Vec<Box<dyn Sink>>,
    written: [bool; 5],
}

impl<'s> ShardWriter<'s> {
    /// Opens `DIR/name` for each stream.
    pub fn create(
        storage: &'s dyn Storage,
        name: &str,
        encoding: Encoding,
    ) -> Result<ShardWriter<'s>, IoError> {
        let mut files = Vec::with_capacity(Stream::ALL.len());
        for stream in Stream::ALL {
            files.push(storage.create(&format!("{}/{name}", stream.dir()))?);
        }
        Ok(ShardWriter {
            streams: StreamSinks {
                storage,
                name: name.to_string(),
                encoding,
                files,
                written: [false; 5],
            },
            spill: Spill {
                storage,
                name: format!("{OVERSIZED_DIR}/{name}"),
                encoding,
                file: SpillFile::None,
            },
        })
    }

    /// The shard's spill file, relative to the output directory (`oversized/NAME`).
    pub fn spill_name(&self) -> &str {
        &self.spill.name
    }

    /// The stream sinks and the spill, to be used from two threads (the shard's collector
    /// appends frames while its reader streams oversized lines).
    pub fn parts(&mut self) -> (&mut StreamSinks<'s>, &mut Spill<'s>) {
        (&mut self.streams, &mut self.spill)
    }

    /// Appends one chunk's frames.
    pub fn write(&mut self, frames: &Frames) -> Result<(), WriteError> {
        self.streams.write(frames)
    }

    /// Copies an encoded stream from `reader` into `stream` as it is, streamed (a stream carried
    /// over whole).
    pub fn copy(&mut self, stream: Stream, reader: &mut impl io::Read) -> Result<(), WriteError> {
        self.streams.copy(stream, reader)
    }

    /// Carries an already encoded spill file over as it is, streamed (instead of writing lines
    /// to the spill).
    pub fn copy_spill(&mut self, reader: &mut impl io::Read) -> Result<(), WriteError> {
        let error = |error| WriteError {
            output: self.spill.storage.describe(&self.spill.name),
            error,
        };
        let mut sink = self
            .spill
            .storage
            .create(&self.spill.name)
            .map_err(|e| error(io::Error::other(e)))?;
        io::copy(reader, &mut sink).map_err(error)?;
        self.spill.file = SpillFile::Carried(sink);
        Ok(())
    }

    /// Writes an empty stream where nothing was written, then puts the spill (or removes a stale
    /// one) and the five outputs in place.
    pub fn finish(self) -> Result<(), IoError> {
        let ShardWriter { mut streams, spill } = self;
        let empty = empty_stream(streams.encoding.compression);
        for stream in Stream::ALL {
            if !streams.written[stream.index()] {
                streams.append(stream, &empty).map_err(|e| IoError::Write {
                    path: PathBuf::from(e.output),
                    action: "write",
                    error: e.error,
                })?;
            }
        }
        spill.finish()?;
        for file in streams.files {
            file.finish()?;
        }
        Ok(())
    }
}

impl StreamSinks<'_> {
    /// Appends one chunk's frames.
    pub fn write(&mut self, frames: &Frames) -> Result<(), WriteError> {
        for stream in Stream::ALL {
            let frame = &frames.0[stream.index()];
            if !frame.is_empty() {
                self.append(stream, frame)?;
            }
        }
        Ok(())
    }

    fn append(&mut self, stream: Stream, bytes: &[u8]) -> Result<(), WriteError> {
        let i = stream.index();
        self.files[i]
            .write_all(bytes)
            .map_err(|error| self.error(stream, error))?;
        self.written[i] = true;
        Ok(())
    }

    fn copy(&mut self, stream: Stream, reader: &mut impl io::Read) -> Result<(), WriteError> {
        let i = stream.index();
        io::copy(reader, &mut self.files[i]).map_err(|error| self.error(stream, error))?;
        self.written[i] = true;
        Ok(())
    }

    fn error(&self, stream: Stream, error: io::Error) -> WriteError {
        WriteError {
            output: self
                .storage
                .describe(&format!("{}/{}", stream.dir(), self.name)),
            error,
        }
    }
}

/// A shard's `oversized/` file: created on the first write (most shards have no line over the
/// limit), compressed like the shard's outputs. Finished with nothing written, it removes a file
/// an earlier run left under the same name, so the directory says what this run wrote.
pub struct Spill<'s> {
    storage: &'s dyn Storage,
    name: String,
    encoding: Encoding,
    file: SpillFile,
}

enum SpillFile {
    None,
    Writing(Box<CompressedWriter<Box<dyn Sink>>>),
    /// An encoded spill copied over whole ([`ShardWriter::copy_spill`]).
    Carried(Box<dyn Sink>),
}

impl Spill<'_> {
    fn finish(self) -> Result<(), IoError> {
        match self.file {
            SpillFile::Writing(file) => file.finish()?.finish(),
            SpillFile::Carried(sink) => sink.finish(),
            SpillFile::None => self.storage.remove(&self.name),
        }
    }
}

impl Write for Spill<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let SpillFile::None = self.file {
            let sink = self.storage.create(&self.name).map_err(io::Error::other)?;
            let writer =
                CompressedWriter::new(sink, self.encoding.compression, self.encoding.level)
                    .map_err(io::Error::other)?;
            self.file = SpillFile::Writing(Box::new(writer));
        }
        match &mut self.file {
            SpillFile::Writing(file) => file.write(buf),
            _ => Err(io::Error::other("the spill was carried over whole")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            SpillFile::Writing(file) => file.flush(),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoding(compression: Compression) -> Encoding {
        Encoding {
            compression,
            level: 3,
        }
    }

    fn read(path: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut sluice_io::open_shard(path).unwrap().1, &mut out).unwrap();
        out
    }

    #[test]
    fn frames_are_appended_in_order_and_empty_streams_are_valid() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalDir::new(dir.path());
        let mut writer =
            ShardWriter::create(&storage, "a/s.jsonl.zst", encoding(Compression::Zstd)).unwrap();
        for chunk in ["one", "two"] {
            let mut streams = ChunkStreams::default();
            streams.line(Stream::Kept, chunk.as_bytes());
            streams
                .record(Stream::Audit, &serde_json::json!({ "chunk": chunk }))
                .unwrap();
            writer
                .write(&streams.encode(encoding(Compression::Zstd)).unwrap())
                .unwrap();
            assert!(streams.is_empty());
        }
        // Nothing is under a final name before finish.
        assert!(!dir.path().join("kept/a/s.jsonl.zst").exists());
        writer.finish().unwrap();
        assert_eq!(read(&dir.path().join("kept/a/s.jsonl.zst")), b"one\ntwo\n");
        assert_eq!(
            read(&dir.path().join("audit/a/s.jsonl.zst")),
            b"{\"chunk\":\"one\"}\n{\"chunk\":\"two\"}\n"
        );
        for empty in ["dropped", "review", "errors"] {
            let path = dir.path().join(empty).join("a/s.jsonl.zst");
            assert!(path.is_file(), "{empty}");
            assert!(read(&path).is_empty(), "{empty}");
        }
        assert!(!dir.path().join("oversized").exists());
    }

    #[test]
    fn the_spill_appears_only_when_written_and_a_stale_one_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalDir::new(dir.path());
        let mut writer =
            ShardWriter::create(&storage, "s.jsonl.gz", encoding(Compression::Gzip)).unwrap();
        let (_, spill) = writer.parts();
        spill.write_all(b"{\"long\": 1}\n").unwrap();
        writer.finish().unwrap();
        let spilled = dir.path().join("oversized/s.jsonl.gz");
        assert_eq!(read(&spilled), b"{\"long\": 1}\n");
        // A rerun without long lines removes it.
        let writer =
            ShardWriter::create(&storage, "s.jsonl.gz", encoding(Compression::Gzip)).unwrap();
        writer.finish().unwrap();
        assert!(!spilled.exists());
    }

    #[test]
    fn an_unfinished_writer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalDir::new(dir.path());
        {
            let mut writer =
                ShardWriter::create(&storage, "s.jsonl", encoding(Compression::None)).unwrap();
            let mut streams = ChunkStreams::default();
            streams.line(Stream::Dropped, b"x");
            writer
                .write(&streams.encode(encoding(Compression::None)).unwrap())
                .unwrap();
            writer.parts().1.write_all(b"long\n").unwrap();
        }
        let mut left = Vec::new();
        for entry in walk(dir.path()) {
            left.push(entry);
        }
        assert!(left.is_empty(), "{left:?}");
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
        out
    }
}
