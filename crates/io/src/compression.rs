//! Compression formats: detection by magic bytes, streaming decompression of shards, and
//! compression of self-contained frames.

use std::cell::RefCell;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Cursor, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::Describe;
use crate::{AtomicFile, IoError};

/// Buffer size of the reader [`open_shard`] returns (decompressed side) and of the compressed
/// input side.
pub const READ_BUFFER_BYTES: usize = 256 * 1024;

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
const GZIP_MAGIC: [u8; 2] = [0x1F, 0x8B];

/// A compression format of inputs and outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Plain bytes.
    None,
    /// Zstandard (`.zst`).
    Zstd,
    /// gzip (`.gz`).
    Gzip,
}

impl Compression {
    /// The file extension outputs of this compression get: `""`, `".zst"` or `".gz"`.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Zstd => ".zst",
            Compression::Gzip => ".gz",
        }
    }

    /// The compression a file name (or a bare extension) claims: a name ending in `.zst` or
    /// `.zstd` → [`Compression::Zstd`], `.gz` → [`Compression::Gzip`] (ASCII case-insensitive),
    /// anything else → `None`.
    pub fn from_extension(name: &str) -> Option<Compression> {
        compression_suffix(name).map(|(compression, _)| compression)
    }

    /// The lowercase name used in messages and on the command line: `none`, `zstd`, `gzip`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
        }
    }
}

/// The compression extension `name` ends with and its length in bytes.
fn compression_suffix(name: &str) -> Option<(Compression, usize)> {
    const SUFFIXES: [(&str, Compression); 3] = [
        (".zst", Compression::Zstd),
        (".zstd", Compression::Zstd),
        (".gz", Compression::Gzip),
    ];
    let bytes = name.as_bytes();
    SUFFIXES.iter().find_map(|&(suffix, compression)| {
        let bare = &suffix[1..];
        let matches = |s: &str| {
            bytes.len() >= s.len()
                && bytes[bytes.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
        };
        if matches(suffix) {
            Some((compression, suffix.len()))
        } else if name.eq_ignore_ascii_case(bare) {
            Some((compression, bare.len()))
        } else {
            None
        }
    })
}

/// The output file name for a shard written with `compression`: a compression extension is
/// stripped from `name` and `compression.extension()` appended.
/// `"a/x.jsonl.zst"` + gzip → `"a/x.jsonl.gz"`; `"a/x.jsonl"` + zstd → `"a/x.jsonl.zst"`.
pub fn output_name(name: &str, compression: Compression) -> String {
    let stem = match compression_suffix(name) {
        // Only strip a real extension ("x.gz"), never a whole bare name ("gz").
        Some((_, len)) if len < name.len() && name.as_bytes()[name.len() - len] == b'.' => {
            &name[..name.len() - len]
        }
        _ => name,
    };
    let mut out = String::with_capacity(stem.len() + 4);
    out.push_str(stem);
    out.push_str(compression.extension());
    out
}

/// Whether `prefix` starts with the magic number of a zstd skippable frame: `0x184D2A50` to
/// `0x184D2A5F`, little-endian (`5? 2A 4D 18`). A zstd stream may start with one (`pzstd` writes
/// one before every frame, and some tools put metadata there); decoders skip them.
fn is_zstd_skippable(prefix: &[u8]) -> bool {
    prefix.len() >= 4 && prefix[0] & 0xF0 == 0x50 && prefix[1..4] == [0x2A, 0x4D, 0x18]
}

/// The compression announced by the first bytes of a stream.
pub(crate) fn detect(prefix: &[u8]) -> Compression {
    if prefix.starts_with(&ZSTD_MAGIC) || is_zstd_skippable(prefix) {
        Compression::Zstd
    } else if prefix.starts_with(&GZIP_MAGIC) {
        Compression::Gzip
    } else {
        Compression::None
    }
}

/// Opens a shard for streaming.
///
/// The compression is detected from the magic bytes (zstd `28 B5 2F FD` or a zstd skippable frame
/// `5? 2A 4D 18`, gzip `1F 8B`), not from
/// the name; but when the file name claims a compression that the magic bytes contradict, this is
/// an [`IoError::CompressionMismatch`] ("x.jsonl.zst: extension says zstd but the file is not a
/// zstd stream"). A zero-byte file is an empty shard (no line) with the compression its name
/// claims, not a mismatch. Returns the detected compression and a buffered reader
/// ([`READ_BUFFER_BYTES`]) of the decompressed bytes.
///
/// Multi-frame zstd and multi-member gzip streams are read to their end; zstd skippable frames
/// are skipped wherever they are (first, between frames, last). A truncated or corrupt
/// stream (including trailing garbage after the last frame/member) surfaces as an `Err` from
/// `read`, never as an early end of file; the error's message names the file.
pub fn open_shard(path: &Path) -> Result<(Compression, Box<dyn BufRead + Send>), IoError> {
    open_stream(path, true, |raw| raw)
}

/// [`open_shard`], with the file's bytes (compressed, as stored) passing through `observe`
/// before they are decompressed: what a run uses to hash each input as it reads it, without a
/// second pass over the file.
pub fn open_shard_observed(
    path: &Path,
    observe: impl FnOnce(Box<dyn Read + Send>) -> Box<dyn Read + Send>,
) -> Result<(Compression, Box<dyn BufRead + Send>), IoError> {
    open_stream(path, true, observe)
}

/// Opens a file sluice wrote itself (an output stream of a run: `kept/S`, `audit/S`, ...), as
/// [`open_shard`] does, except that a zero-byte file whose name claims a compression is an
/// [`IoError::CompressionMismatch`]: sluice writes a destination that got nothing as a valid
/// empty stream ([`empty_stream`]), never as zero bytes, so zero bytes there mean the file was
/// truncated or replaced.
pub fn open_written(path: &Path) -> Result<(Compression, Box<dyn BufRead + Send>), IoError> {
    open_stream(path, false, |raw| raw)
}

/// [`open_written`] over the bytes of `reader` (an output in object storage); `name` names it
/// in errors and its file name claims a compression.
pub fn open_written_reader(
    name: &Path,
    reader: Box<dyn Read + Send>,
) -> Result<(Compression, Box<dyn BufRead + Send>), IoError> {
    open_reader(name, reader, false, |raw| raw)
}

/// [`open_shard_observed`] for an object in object storage: streamed from the store (see
/// [`crate::RemoteReader`]), its compression detected from its first bytes as for a file. A
/// Parquet object is read by [`crate::ParquetReader::open_remote`] instead (see
/// [`crate::remote_shard_format`]).
pub fn open_remote_shard_observed(
    object: &crate::RemoteObject,
    observe: impl FnOnce(Box<dyn Read + Send>) -> Box<dyn Read + Send>,
) -> Result<(Compression, Box<dyn BufRead + Send>), IoError> {
    let path = PathBuf::from(&object.url);
    let reader = crate::RemoteReader::open(object)?;
    open_reader(&path, Box::new(reader), true, observe)
}

fn open_stream(
    path: &Path,
    empty_is_a_stream: bool,
    observe: impl FnOnce(Box<dyn Read + Send>) -> Box<dyn Read + Send>,
) -> Result<(Compression, Box<dyn BufRead + Send>), IoError> {
    let file = File::open(path).map_err(|e| IoError::open(path, e))?;
    open_reader(path, Box::new(file), empty_is_a_stream, observe)
}

/// The decompressing reader over `file`'s bytes; `path` names it in errors and its file name
/// claims a compression.
fn open_reader(
    path: &Path,
    mut file: Box<dyn Read + Send>,
    empty_is_a_stream: bool,
    observe: impl FnOnce(Box<dyn Read + Send>) -> Box<dyn Read + Send>,
) -> Result<(Compression, Box<dyn BufRead + Send>), IoError> {
    // Read the magic bytes (looping: a read may return fewer bytes than asked for), then put them
    // back in front of the file so that nothing needs to seek (works for pipes too).
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < magic.len() {
        match file.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(IoError::Read {
                    path: path.to_path_buf(),
                    error: e,
                })
            }
        }
    }
    let prefix = &magic[..got];
    let detected = detect(prefix);

    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let claimed = Compression::from_extension(&file_name);
    if got == 0 && (empty_is_a_stream || claimed.is_none()) {
        // A zero-byte file is an empty shard (zero lines), whatever its name claims: there is no
        // stream to contradict the extension, and the outputs are named as for the claim.
        let compression = claimed.unwrap_or(Compression::None);
        return Ok((
            compression,
            Box::new(BufReader::new(observe(Box::new(io::empty())))),
        ));
    }
    if let Some(claimed) = claimed {
        if claimed != detected {
            return Err(IoError::CompressionMismatch {
                path: path.to_path_buf(),
                claimed,
                detected,
            });
        }
    }

    let raw = observe(Box::new(Cursor::new(prefix.to_vec()).chain(file)));
    let raw = BufReader::with_capacity(READ_BUFFER_BYTES, raw);
    let path = path.to_path_buf();
    let reader: Box<dyn BufRead + Send> = match detected {
        Compression::None => Box::new(ContextReader::new(raw, path, detected)),
        Compression::Zstd => {
            let decoder =
                zstd::stream::read::Decoder::with_buffer(raw).map_err(|e| IoError::Read {
                    path: path.clone(),
                    error: e,
                })?;
            Box::new(BufReader::with_capacity(
                READ_BUFFER_BYTES,
                ContextReader::new(decoder, path, detected),
            ))
        }
        Compression::Gzip => {
            let decoder = flate2::bufread::MultiGzDecoder::new(raw);
            Box::new(BufReader::with_capacity(
                READ_BUFFER_BYTES,
                ContextReader::new(decoder, path, detected),
            ))
        }
    };
    Ok((detected, reader))
}

/// Reads what is left of a stream to its end and returns how many (decompressed) bytes that was.
///
/// A reader that stops once it has what it wants (the last line it needed) has not seen the end
/// of the stream, and a compressed stream is only verified there: a gzip member cut inside its
/// 8-byte trailer, or a zstd frame cut inside its checksum, yields every line and fails only on
/// the read after the last one. Call this when done with a stream that must be whole (the output
/// streams an audit command walks): truncation or corruption is an [`IoError::Stream`] naming
/// the file; a non-zero count means data the caller did not expect after what it read.
pub fn drain_to_end<R: BufRead + ?Sized>(reader: &mut R) -> Result<u64, IoError> {
    let mut left = 0u64;
    loop {
        let n = match reader.fill_buf() {
            Ok([]) => return Ok(left),
            Ok(buf) => buf.len(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(IoError::Stream { error }),
        };
        reader.consume(n);
        left += n as u64;
    }
}

/// Wraps a (decompressing) reader so that its errors name the file and the format.
///
/// Truncation detection itself is done by the decoders and verified by this module's tests:
/// `zstd::stream::read::Decoder` (0.13) reports an `UnexpectedEof` "incomplete frame" error when
/// its input ends inside a frame, and flate2's `MultiGzDecoder` reports `UnexpectedEof` (or a
/// checksum error) when a member's deflate data or trailer is cut.
struct ContextReader<R> {
    inner: R,
    path: PathBuf,
    compression: Compression,
}

impl<R> ContextReader<R> {
    fn new(inner: R, path: PathBuf, compression: Compression) -> Self {
        ContextReader {
            inner,
            path,
            compression,
        }
    }

    fn annotate(&self, error: io::Error) -> io::Error {
        let message = match self.compression {
            Compression::None => {
                format!("cannot read {}: {}", self.path.display(), Describe(&error))
            }
            compression if error.kind() == io::ErrorKind::UnexpectedEof => format!(
                "{}: truncated {} stream ({})",
                self.path.display(),
                compression.name(),
                Describe(&error)
            ),
            compression => format!(
                "{}: corrupt {} stream ({})",
                self.path.display(),
                compression.name(),
                Describe(&error)
            ),
        };
        io::Error::new(error.kind(), message)
    }
}

impl<R: Read> Read for ContextReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => Err(self.annotate(e)),
            other => other,
        }
    }
}

impl<R: BufRead> BufRead for ContextReader<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        // Split borrow: annotate needs `self` while `inner` is borrowed by the Ok slice.
        let failed = self.inner.fill_buf().err();
        match failed {
            Some(e) if e.kind() != io::ErrorKind::Interrupted => Err(self.annotate(e)),
            Some(e) => Err(e),
            None => self.inner.fill_buf(),
        }
    }

    fn consume(&mut self, amount: usize) {
        self.inner.consume(amount);
    }
}

thread_local! {
    /// One zstd compression context per thread, reused across frames (creating a context per
    /// chunk would allocate its tables every time).
    static ZSTD_COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
}

/// Maps the shared `level` to a gzip level: `0` → the default (6), negative → 1, otherwise
/// clamped to `1..=9`.
pub fn gzip_level(level: i32) -> u32 {
    match level {
        0 => 6,
        l if l < 0 => 1,
        l => l.min(9) as u32,
    }
}

/// Appends to `out` a self-contained compressed frame of `data`: a complete zstd frame (with
/// content size and checksum) or a complete gzip member; [`Compression::None`] copies the bytes.
///
/// Concatenated frames form one valid stream, which is how chunks are compressed in parallel and
/// written in order. Empty `data` appends nothing. The zstd `level` is passed through (1..=22,
/// 0 = zstd's default, negative = fast levels); for gzip see [`gzip_level`]. The output depends
/// only on `data`, `compression` and `level`.
pub fn compress_frame(
    data: &[u8],
    compression: Compression,
    level: i32,
    out: &mut Vec<u8>,
) -> Result<(), IoError> {
    if data.is_empty() {
        return Ok(());
    }
    match compression {
        Compression::None => {
            out.extend_from_slice(data);
            Ok(())
        }
        Compression::Zstd => {
            zstd_frame(data, level, out).map_err(|error| IoError::Compress { compression, error })
        }
        Compression::Gzip => {
            gzip_member(data, level, out).map_err(|error| IoError::Compress { compression, error })
        }
    }
}

fn zstd_frame(data: &[u8], level: i32, out: &mut Vec<u8>) -> io::Result<()> {
    ZSTD_COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if !matches!(&*slot, Some((l, _)) if *l == level) {
            *slot = None;
            let mut compressor = zstd::bulk::Compressor::new(level)?;
            compressor.include_checksum(true)?;
            compressor.include_contentsize(true)?;
            *slot = Some((level, compressor));
        }
        let Some((_, compressor)) = slot.as_mut() else {
            return Err(io::Error::other("zstd context unavailable"));
        };
        let start = out.len();
        // Compress into the spare capacity after `start` (a cursor there): zero-filling the
        // whole bound first would write and fault in ~3x the bytes the frame needs.
        out.reserve(zstd::zstd_safe::compress_bound(data.len()));
        let mut cursor = io::Cursor::new(&mut *out);
        cursor.set_position(start as u64);
        match compressor.compress_to_buffer(data, &mut cursor) {
            Ok(written) => {
                debug_assert_eq!(out.len(), start + written);
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                // The context may be in an odd state after a failure: drop it.
                *slot = None;
                Err(e)
            }
        }
    })
}

fn gzip_member(data: &[u8], level: i32, out: &mut Vec<u8>) -> io::Result<()> {
    let start = out.len();
    let mut encoder =
        flate2::write::GzEncoder::new(&mut *out, flate2::Compression::new(gzip_level(level)));
    let result = encoder.write_all(data).and_then(|()| encoder.try_finish());
    drop(encoder);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// A writer through a streaming encoder, for output too large to compress as one frame in
/// memory: the same `compression` and `level` rules as [`compress_frame`].
/// [`finish`](Self::finish) ends the compressed stream and hands back the inner writer.
pub struct CompressedWriter<W: Write> {
    encoder: Encoder<W>,
}

enum Encoder<W: Write> {
    Plain(W),
    Zstd(zstd::stream::write::Encoder<'static, W>),
    Gzip(flate2::write::GzEncoder<W>),
}

impl<W: Write> CompressedWriter<W> {
    pub fn new(inner: W, compression: Compression, level: i32) -> Result<Self, IoError> {
        let compress_err = |error| IoError::Compress { compression, error };
        let encoder = match compression {
            Compression::None => Encoder::Plain(inner),
            Compression::Zstd => {
                let mut e =
                    zstd::stream::write::Encoder::new(inner, level).map_err(compress_err)?;
                e.include_checksum(true).map_err(compress_err)?;
                Encoder::Zstd(e)
            }
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                inner,
                flate2::Compression::new(gzip_level(level)),
            )),
        };
        Ok(CompressedWriter { encoder })
    }

    /// Ends the compressed stream; returns the inner writer.
    pub fn finish(self) -> Result<W, IoError> {
        match self.encoder {
            Encoder::Plain(w) => Ok(w),
            Encoder::Zstd(e) => e.finish().map_err(|error| IoError::Compress {
                compression: Compression::Zstd,
                error,
            }),
            Encoder::Gzip(e) => e.finish().map_err(|error| IoError::Compress {
                compression: Compression::Gzip,
                error,
            }),
        }
    }
}

impl<W: Write> Write for CompressedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.encoder {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Zstd(w) => w.write(buf),
            Encoder::Gzip(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.encoder {
            Encoder::Plain(w) => w.flush(),
            Encoder::Zstd(w) => w.flush(),
            Encoder::Gzip(w) => w.flush(),
        }
    }
}

/// A file written through a streaming encoder ([`CompressedWriter`] over an [`AtomicFile`]):
/// nothing appears under `path` until [`finish`](Self::finish); dropped unfinished, it leaves
/// nothing behind.
pub struct CompressedFile {
    writer: CompressedWriter<AtomicFile>,
}

impl CompressedFile {
    pub fn create(path: &Path, compression: Compression, level: i32) -> Result<Self, IoError> {
        Ok(CompressedFile {
            writer: CompressedWriter::new(AtomicFile::create(path)?, compression, level)?,
        })
    }

    /// Ends the compressed stream, then syncs and renames the file into place.
    pub fn finish(self) -> Result<(), IoError> {
        self.writer.finish()?.finish()
    }
}

impl Write for CompressedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

/// A [`CompressedFile`] that is created on the first write, for a stream that is usually empty
/// (a shard's oversized lines): no write, no file. [`finish`](Self::finish) with nothing written
/// removes a file an earlier run left under the same path, so the directory says what this run
/// wrote.
pub struct LazyCompressedFile {
    path: PathBuf,
    compression: Compression,
    level: i32,
    file: Option<CompressedFile>,
}

impl LazyCompressedFile {
    pub fn new(path: PathBuf, compression: Compression, level: i32) -> Self {
        LazyCompressedFile {
            path,
            compression,
            level,
            file: None,
        }
    }

    pub fn finish(self) -> Result<(), IoError> {
        match self.file {
            Some(file) => file.finish(),
            None => match fs::remove_file(&self.path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    Err(IoError::write(&self.path, "remove stale", e))
                }
                _ => Ok(()),
            },
        }
    }
}

impl Write for LazyCompressedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                if let Some(dir) = self.path.parent() {
                    fs::create_dir_all(dir)?;
                }
                let file = CompressedFile::create(&self.path, self.compression, self.level)
                    .map_err(io::Error::other)?;
                self.file.insert(file)
            }
        };
        file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().map_or(Ok(()), |f| f.flush())
    }
}

/// Bytes of a valid, empty compressed stream: an empty zstd frame or an empty gzip member (an
/// empty `Vec` for [`Compression::None`]). Written when a destination got no document, so that
/// every output file decompresses cleanly.
pub fn empty_stream(compression: Compression) -> Vec<u8> {
    match compression {
        Compression::None => Vec::new(),
        // An empty frame from the same kind of context compress_frame uses (content size 0,
        // checksum); the fallback is a minimal valid empty frame without checksum.
        Compression::Zstd => {
            let mut out = Vec::new();
            match zstd::bulk::Compressor::new(0)
                .and_then(|mut c| c.include_checksum(true).map(|()| c))
                .and_then(|mut c| c.compress(&[]))
            {
                Ok(frame) => out = frame,
                Err(_) => {
                    out.extend_from_slice(&[0x28, 0xB5, 0x2F, 0xFD, 0x20, 0x00, 0x01, 0x00, 0x00])
                }
            }
            out
        }
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            match encoder.try_finish() {
                Ok(()) => encoder.finish().unwrap_or_default(),
                Err(_) => EMPTY_GZIP.to_vec(),
            }
        }
    }
}

/// A minimal valid empty gzip member (header, empty final stored block, CRC 0, size 0).
const EMPTY_GZIP: [u8; 20] = [
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00,
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn read_all(path: &Path) -> (Compression, io::Result<Vec<u8>>) {
        let (compression, mut reader) = open_shard(path).expect("open");
        let mut out = Vec::new();
        let result = reader.read_to_end(&mut out).map(|_| out);
        (compression, result)
    }

    fn sample(lines: usize) -> Vec<u8> {
        let mut data = Vec::new();
        for i in 0..lines {
            data.extend_from_slice(
                format!("{{\"id\":{i},\"text\":\"line number {i} with some words\"}}\n").as_bytes(),
            );
        }
        data
    }

    /// Three frames/members of `data` split in thirds.
    fn multi_frame(data: &[u8], compression: Compression) -> Vec<u8> {
        let mut out = Vec::new();
        let third = data.len() / 3;
        for part in [&data[..third], &data[third..2 * third], &data[2 * third..]] {
            compress_frame(part, compression, 3, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn extensions_and_names() {
        assert_eq!(Compression::None.extension(), "");
        assert_eq!(Compression::Zstd.extension(), ".zst");
        assert_eq!(Compression::Gzip.extension(), ".gz");
        assert_eq!(Compression::Zstd.name(), "zstd");
        assert_eq!(Compression::Gzip.name(), "gzip");
        assert_eq!(Compression::None.name(), "none");
        assert_eq!(Compression::from_extension(".zst"), Some(Compression::Zstd));
        assert_eq!(
            Compression::from_extension(".zstd"),
            Some(Compression::Zstd)
        );
        assert_eq!(Compression::from_extension(".gz"), Some(Compression::Gzip));
        assert_eq!(Compression::from_extension("zst"), Some(Compression::Zstd));
        assert_eq!(
            Compression::from_extension("a/x.jsonl.ZST"),
            Some(Compression::Zstd)
        );
        assert_eq!(
            Compression::from_extension("x.jsonl.gz"),
            Some(Compression::Gzip)
        );
        assert_eq!(Compression::from_extension("x.jsonl"), None);
        assert_eq!(Compression::from_extension("x.tgz.bak"), None);
        assert_eq!(Compression::from_extension(""), None);
    }

    #[test]
    fn output_names() {
        assert_eq!(
            output_name("a/x.jsonl.zst", Compression::Gzip),
            "a/x.jsonl.gz"
        );
        assert_eq!(
            output_name("a/x.jsonl.zstd", Compression::Zstd),
            "a/x.jsonl.zst"
        );
        assert_eq!(output_name("a/x.jsonl.gz", Compression::None), "a/x.jsonl");
        assert_eq!(output_name("a/x.jsonl", Compression::Zstd), "a/x.jsonl.zst");
        assert_eq!(output_name("x.jsonl", Compression::None), "x.jsonl");
        assert_eq!(output_name("x.json.gz", Compression::Gzip), "x.json.gz");
        assert_eq!(output_name("gz", Compression::Zstd), "gz.zst");
    }

    #[test]
    fn detects_by_magic_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let data = sample(100);
        let mut zst = Vec::new();
        compress_frame(&data, Compression::Zstd, 3, &mut zst).unwrap();
        let mut gz = Vec::new();
        compress_frame(&data, Compression::Gzip, 6, &mut gz).unwrap();

        // Right extension, and no compression extension at all: detected from the content.
        for (name, bytes, expected) in [
            ("a.jsonl.zst", &zst, Compression::Zstd),
            ("a.jsonl.gz", &gz, Compression::Gzip),
            ("plain.jsonl", &data, Compression::None),
            ("hidden-zstd.jsonl", &zst, Compression::Zstd),
            ("hidden-gzip.jsonl", &gz, Compression::Gzip),
        ] {
            let path = dir.path().join(name);
            fs::write(&path, bytes).unwrap();
            let (compression, result) = read_all(&path);
            assert_eq!(compression, expected, "{name}");
            assert_eq!(result.unwrap(), data, "{name}");
        }

        // Tiny files (shorter than a magic number) and empty files.
        for (name, bytes) in [("tiny.jsonl", &b"{}"[..]), ("empty.jsonl", &b""[..])] {
            let path = dir.path().join(name);
            fs::write(&path, bytes).unwrap();
            let (compression, result) = read_all(&path);
            assert_eq!(compression, Compression::None);
            assert_eq!(result.unwrap(), bytes);
        }
    }

    #[test]
    fn extension_contradicted_by_magic_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let data = sample(10);
        let mut gz = Vec::new();
        compress_frame(&data, Compression::Gzip, 6, &mut gz).unwrap();

        let cases: [(&str, &[u8], &str); 5] = [
            ("x.jsonl.zst", &data, "zstd"),
            ("y.jsonl.zst", &gz, "zstd"),
            ("z.jsonl.gz", &data, "gzip"),
            // Shorter than a magic number, but not empty.
            ("t.jsonl.gz", b"\x1f", "gzip"),
            ("u.jsonl.zst", b"\x28\xb5", "zstd"),
        ];
        for (name, bytes, claimed) in cases {
            let path = dir.path().join(name);
            fs::write(&path, bytes).unwrap();
            let err = open_shard(&path).err().expect("mismatch must fail");
            assert!(
                matches!(err, IoError::CompressionMismatch { .. }),
                "{err:?}"
            );
            assert_eq!(
                err.to_string(),
                format!(
                    "{}: extension says {claimed} but the file is not a {claimed} stream",
                    path.display()
                )
            );
        }
    }

    #[test]
    fn missing_file_is_an_open_error() {
        let err = open_shard(Path::new("/nonexistent/dir/a.jsonl"))
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "cannot open /nonexistent/dir/a.jsonl: no such file or directory"
        );
    }

    #[test]
    fn multi_frame_and_multi_member_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let data = sample(5000);
        for compression in [Compression::Zstd, Compression::Gzip, Compression::None] {
            let bytes = multi_frame(&data, compression);
            let path = dir
                .path()
                .join(format!("m.jsonl{}", compression.extension()));
            fs::write(&path, &bytes).unwrap();
            let (detected, result) = read_all(&path);
            assert_eq!(detected, compression);
            assert_eq!(result.unwrap(), data, "{compression:?}");

            // An empty stream followed by data, and data followed by an empty stream, still
            // decode to the data.
            let mut with_empty = empty_stream(compression);
            with_empty.extend_from_slice(&bytes);
            with_empty.extend_from_slice(&empty_stream(compression));
            fs::write(&path, &with_empty).unwrap();
            assert_eq!(read_all(&path).1.unwrap(), data, "{compression:?}");
        }
    }

    #[test]
    fn empty_streams_decode_to_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(empty_stream(Compression::None).is_empty());
        for compression in [Compression::Zstd, Compression::Gzip] {
            let bytes = empty_stream(compression);
            assert!(!bytes.is_empty());
            let path = dir
                .path()
                .join(format!("e.jsonl{}", compression.extension()));
            fs::write(&path, &bytes).unwrap();
            let (detected, result) = read_all(&path);
            assert_eq!(detected, compression);
            assert!(result.unwrap().is_empty());
        }
        // The fallback constants are valid too.
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&EMPTY_GZIP[..])
            .read_to_end(&mut out)
            .unwrap();
        assert!(out.is_empty());
        let decoded =
            zstd::stream::decode_all(&[0x28, 0xB5, 0x2F, 0xFD, 0x20, 0x00, 0x01, 0x00, 0x00][..])
                .unwrap();
        assert!(decoded.is_empty());
    }

    #[test]
    fn compressed_file_streams_and_appears_only_when_finished() {
        let dir = tempfile::tempdir().unwrap();
        let data = sample(5000);
        let formats = [
            (Compression::None, "s.jsonl"),
            (Compression::Zstd, "s.jsonl.zst"),
            (Compression::Gzip, "s.jsonl.gz"),
        ];
        for (finished, (compression, name)) in formats.into_iter().enumerate() {
            let path = dir.path().join(name);
            let mut file = CompressedFile::create(&path, compression, 3).unwrap();
            for piece in data.chunks(777) {
                file.write_all(piece).unwrap();
            }
            assert!(
                !path.exists(),
                "{name}: nothing under the final name before finish"
            );
            file.finish().unwrap();
            let (detected, read) = read_all(&path);
            assert_eq!(detected, compression);
            assert!(read.unwrap() == data, "{name}: round trip");

            let mut abandoned =
                CompressedFile::create(&dir.path().join("abandoned"), compression, 3).unwrap();
            abandoned.write_all(&data).unwrap();
            drop(abandoned);
            let files = fs::read_dir(dir.path()).unwrap().count();
            assert_eq!(
                files,
                finished + 1,
                "{name}: an unfinished file leaves nothing"
            );
        }
    }

    #[test]
    fn a_lazy_file_exists_only_once_written_and_clears_a_stale_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/s.jsonl.zst");
        let mut file = LazyCompressedFile::new(path.clone(), Compression::Zstd, 3);
        file.write_all(b"{\"text\":\"x\"}\n").unwrap();
        file.finish().unwrap();
        assert_eq!(read_all(&path).1.unwrap(), b"{\"text\":\"x\"}\n");
        // A later run of the same shard that writes nothing leaves nothing.
        LazyCompressedFile::new(path.clone(), Compression::Zstd, 3)
            .finish()
            .unwrap();
        assert!(!path.exists());
        LazyCompressedFile::new(path.clone(), Compression::Zstd, 3)
            .finish()
            .unwrap();
    }

    #[test]
    fn compress_frame_appends_and_skips_empty() {
        for compression in [Compression::Zstd, Compression::Gzip, Compression::None] {
            let mut out = b"prefix".to_vec();
            compress_frame(b"", compression, 3, &mut out).unwrap();
            assert_eq!(out, b"prefix");
            compress_frame(b"hello\n", compression, 3, &mut out).unwrap();
            assert!(out.starts_with(b"prefix"));
            assert!(out.len() > 6);
        }
        // Deterministic, and levels (including odd ones) are accepted.
        let data = sample(200);
        for level in [-5, 0, 1, 3, 19, 22, 100] {
            for compression in [Compression::Zstd, Compression::Gzip] {
                let mut a = Vec::new();
                let mut b = Vec::new();
                let result = compress_frame(&data, compression, level, &mut a);
                if compression == Compression::Zstd && level == 100 {
                    // zstd clamps out-of-range levels itself; either way no panic.
                    if result.is_err() {
                        continue;
                    }
                }
                result.unwrap();
                compress_frame(&data, compression, level, &mut b).unwrap();
                assert_eq!(a, b, "{compression:?} {level}");
            }
        }
        assert_eq!(gzip_level(0), 6);
        assert_eq!(gzip_level(-3), 1);
        assert_eq!(gzip_level(4), 4);
        assert_eq!(gzip_level(22), 9);
    }

    /// Every proper prefix of a compressed stream that cuts inside a frame/member must be an
    /// error from `read`, never a silent early end of file.
    fn assert_truncations_fail(compression: Compression) {
        let dir = tempfile::tempdir().unwrap();
        let data = sample(3000);
        let full = multi_frame(&data, compression);
        let path = dir
            .path()
            .join(format!("t.jsonl{}", compression.extension()));

        // Frame/member boundaries: cutting exactly there yields a valid (shorter) stream.
        let mut boundaries = vec![0];
        let third = data.len() / 3;
        let mut acc = Vec::new();
        for part in [&data[..third], &data[third..2 * third], &data[2 * third..]] {
            compress_frame(part, compression, 3, &mut acc).unwrap();
            boundaries.push(acc.len());
        }
        assert_eq!(acc, full);

        let mut cuts: Vec<usize> = (1..64.min(full.len())).collect();
        cuts.extend((64..full.len()).step_by(97));
        cuts.extend(full.len().saturating_sub(40)..full.len());
        for &b in &boundaries[1..boundaries.len() - 1] {
            cuts.extend([b - 1, b + 1, b + 5]);
        }
        let mut checked = 0;
        for cut in cuts {
            if cut == 0 || cut >= full.len() || boundaries.contains(&cut) {
                continue;
            }
            fs::write(&path, &full[..cut]).unwrap();
            match open_shard(&path) {
                // A cut inside the magic number of the first frame: the extension catches it.
                Err(IoError::CompressionMismatch { .. }) => assert!(cut < 4),
                Err(other) => panic!("unexpected open error {other}"),
                Ok((_, mut reader)) => {
                    let mut out = Vec::new();
                    let err = reader.read_to_end(&mut out).expect_err(&format!(
                        "{compression:?} cut at {cut}/{} read fine",
                        full.len()
                    ));
                    let message = err.to_string();
                    assert!(message.contains(&path.display().to_string()), "{message}");
                    assert!(message.contains(compression.name()), "{message}");
                    // And through the chunker, it is an Err too.
                    let (_, reader) = open_shard(&path).unwrap();
                    let mut chunker = crate::LineChunker::new(
                        reader,
                        crate::ChunkerOptions {
                            target_chunk_bytes: 1 << 20,
                            max_line_bytes: 1 << 20,
                        },
                    );
                    let mut chunk = crate::Chunk::default();
                    let outcome = loop {
                        match chunker.next_chunk(&mut chunk) {
                            Ok(true) => continue,
                            Ok(false) => break Ok(()),
                            Err(e) => break Err(e),
                        }
                    };
                    let err = outcome.expect_err("chunker must surface the truncation");
                    assert!(
                        err.to_string().contains("truncated")
                            || err.to_string().contains("corrupt")
                    );
                }
            }
            checked += 1;
        }
        assert!(checked > 100, "only {checked} cuts checked");

        // Cutting at a frame boundary is (unavoidably) a valid, shorter stream.
        fs::write(&path, &full[..boundaries[1]]).unwrap();
        assert_eq!(read_all(&path).1.unwrap(), &data[..third]);
    }

    #[test]
    fn truncated_zstd_is_an_error() {
        assert_truncations_fail(Compression::Zstd);
        // The exact message for a cut in the middle.
        let dir = tempfile::tempdir().unwrap();
        let mut full = Vec::new();
        compress_frame(&sample(1000), Compression::Zstd, 3, &mut full).unwrap();
        let path = dir.path().join("cut.jsonl.zst");
        fs::write(&path, &full[..full.len() / 2]).unwrap();
        let err = read_all(&path).1.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(
            err.to_string(),
            format!(
                "{}: truncated zstd stream (incomplete frame)",
                path.display()
            )
        );
    }

    #[test]
    fn truncated_gzip_is_an_error() {
        assert_truncations_fail(Compression::Gzip);
    }

    #[test]
    fn corrupt_streams_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let data = sample(2000);
        for compression in [Compression::Zstd, Compression::Gzip] {
            let full = multi_frame(&data, compression);
            let path = dir
                .path()
                .join(format!("c.jsonl{}", compression.extension()));

            // Flipped bytes in the middle of the payload (checksums catch what decoding doesn't).
            for at in [full.len() / 5, full.len() / 2, full.len() - 6] {
                let mut bad = full.clone();
                bad[at] ^= 0x55;
                fs::write(&path, &bad).unwrap();
                assert!(read_all(&path).1.is_err(), "{compression:?} flip at {at}");
            }

            // Trailing garbage after the last frame/member.
            let mut bad = full.clone();
            bad.extend_from_slice(b"garbage after the end\n");
            fs::write(&path, &bad).unwrap();
            assert!(
                read_all(&path).1.is_err(),
                "{compression:?} trailing garbage"
            );
        }
    }

    /// A zstd skippable frame (magic `0x184D2A50 + nibble`, little-endian size, payload).
    fn skippable(nibble: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = (0x184D_2A50u32 + u32::from(nibble)).to_le_bytes().to_vec();
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn zstd_skippable_frames_are_skipped_anywhere() {
        let dir = tempfile::tempdir().unwrap();
        let data = sample(300);
        let frames = multi_frame(&data, Compression::Zstd);
        let mut first = Vec::new();
        compress_frame(&data, Compression::Zstd, 3, &mut first).unwrap();
        let twice = [data.clone(), data.clone()].concat();
        let cases: Vec<(&str, Vec<u8>, &[u8])> = vec![
            // Leading skippable frame (what pzstd writes), every magic nibble, empty payloads.
            (
                "lead.jsonl.zst",
                [skippable(0, b"meta"), first.clone()].concat(),
                &data,
            ),
            (
                "lead-f.jsonl.zst",
                [skippable(0xF, b""), first.clone()].concat(),
                &data,
            ),
            // No extension: detected from the skippable magic all the same.
            (
                "lead-noext.jsonl",
                [skippable(7, b"x"), first.clone()].concat(),
                &data,
            ),
            // Between, and after, data frames.
            (
                "middle.jsonl.zst",
                [
                    skippable(1, &[0u8; 300]),
                    frames.clone(),
                    skippable(2, b"tail"),
                    first.clone(),
                    skippable(3, b""),
                ]
                .concat(),
                &twice,
            ),
            // Only skippable frames: zero lines.
            (
                "only.jsonl.zst",
                [skippable(0, b"a"), skippable(5, b"b")].concat(),
                b"",
            ),
        ];
        for (name, bytes, want) in cases {
            let path = dir.path().join(name);
            fs::write(&path, &bytes).unwrap();
            let (compression, result) = read_all(&path);
            assert_eq!(compression, Compression::Zstd, "{name}");
            assert_eq!(result.unwrap(), want, "{name}");
        }

        // A skippable frame cut short is a truncation, not a silent end.
        let mut cut = [skippable(0, &[7u8; 100]), first.clone()].concat();
        cut.truncate(50);
        let path = dir.path().join("cut.jsonl.zst");
        fs::write(&path, &cut).unwrap();
        assert!(read_all(&path).1.is_err());
    }

    /// `pzstd` (zstd's parallel CLI) puts a skippable frame before every frame.
    #[test]
    fn pzstd_output_reads() {
        let dir = tempfile::tempdir().unwrap();
        let data = sample(2000);
        let plain = dir.path().join("p.jsonl");
        fs::write(&plain, &data).unwrap();
        let out = dir.path().join("p.jsonl.zst");
        let status = std::process::Command::new("pzstd")
            .args(["-q", "-p", "2", "-f"])
            .arg(&plain)
            .arg("-o")
            .arg(&out)
            .status();
        match status {
            Ok(s) if s.success() => {}
            _ => {
                eprintln!("skipped: no pzstd on PATH");
                return;
            }
        }
        let bytes = fs::read(&out).unwrap();
        assert_eq!(
            &bytes[1..4],
            &[0x2A, 0x4D, 0x18],
            "pzstd starts with a skippable frame"
        );
        let (compression, result) = read_all(&out);
        assert_eq!(compression, Compression::Zstd);
        assert_eq!(result.unwrap(), data);
    }

    /// A zero-byte file is an empty shard whatever its extension (`sluice generate --size 0`
    /// writes such `.zst` files): zero lines, with the compression its name claims.
    #[test]
    fn zero_byte_files_are_empty_shards() {
        let dir = tempfile::tempdir().unwrap();
        for (name, expected) in [
            ("e.jsonl.zst", Compression::Zstd),
            ("e.jsonl.zstd", Compression::Zstd),
            ("e.jsonl.gz", Compression::Gzip),
            ("e.jsonl", Compression::None),
        ] {
            let path = dir.path().join(name);
            fs::write(&path, b"").unwrap();
            let (compression, result) = read_all(&path);
            assert_eq!(compression, expected, "{name}");
            assert!(result.unwrap().is_empty(), "{name}");
            let (_, reader) = open_shard(&path).unwrap();
            let mut chunker = crate::LineChunker::new(
                reader,
                crate::ChunkerOptions {
                    target_chunk_bytes: 4096,
                    max_line_bytes: 4096,
                },
            );
            assert!(!chunker.next_chunk(&mut crate::Chunk::default()).unwrap());
        }
    }

    /// A stream cut inside its last trailer gives every line back and fails only at the end:
    /// only a reader that reads to the end (or calls `drain_to_end`) sees the truncation.
    #[test]
    fn a_cut_trailer_fails_only_at_the_end_and_drain_to_end_sees_it() {
        let dir = tempfile::tempdir().unwrap();
        let data = sample(50);
        for compression in [Compression::Gzip, Compression::Zstd] {
            let full = multi_frame(&data, compression);
            let path = dir
                .path()
                .join(format!("t.jsonl{}", compression.extension()));
            // gzip: CRC + size (8 bytes); zstd: the 4-byte checksum.
            let trailer = if compression == Compression::Gzip {
                8
            } else {
                4
            };
            for cut in 1..=trailer {
                fs::write(&path, &full[..full.len() - cut]).unwrap();
                let (_, mut reader) = open_shard(&path).unwrap();
                let mut lines = 0;
                let mut line = Vec::new();
                while lines < 50 {
                    line.clear();
                    reader.read_until(b'\n', &mut line).unwrap();
                    lines += 1;
                }
                assert_eq!(line.last(), Some(&b'\n'));
                let err = drain_to_end(&mut reader).unwrap_err();
                assert!(
                    err.to_string().contains("truncated"),
                    "{compression:?} {cut}: {err}"
                );
            }
            // Whole: nothing left, no error; data left over is counted.
            fs::write(&path, &full).unwrap();
            let (_, mut reader) = open_shard(&path).unwrap();
            let mut line = Vec::new();
            reader.read_until(b'\n', &mut line).unwrap();
            let left = drain_to_end(&mut reader).unwrap();
            assert_eq!(left as usize, data.len() - line.len());
            assert_eq!(drain_to_end(&mut reader).unwrap(), 0);
        }
    }

    #[test]
    fn open_written_refuses_a_zero_byte_compressed_file() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.jsonl.zst", "a.jsonl.gz"] {
            let path = dir.path().join(name);
            fs::write(&path, b"").unwrap();
            let err = open_written(&path)
                .err()
                .expect("zero bytes is not a stream we wrote");
            assert!(
                matches!(err, IoError::CompressionMismatch { .. }),
                "{err:?}"
            );
            // What sluice does write for an empty destination opens fine.
            let compression = Compression::from_extension(name).unwrap();
            fs::write(&path, empty_stream(compression)).unwrap();
            let (got, mut reader) = open_written(&path).unwrap();
            assert_eq!(got, compression);
            assert_eq!(drain_to_end(&mut reader).unwrap(), 0);
        }
        let plain = dir.path().join("a.jsonl");
        fs::write(&plain, b"").unwrap();
        assert_eq!(open_written(&plain).unwrap().0, Compression::None);
    }
}
