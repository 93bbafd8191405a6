//! The crate's one error type.
//!
//! Every message is a single lowercase line that names the path involved and what failed, e.g.
//! `cannot open corpus/a.jsonl: permission denied`. The underlying [`std::io::Error`] is kept
//! (see [`IoError::io_error`]) but deliberately *not* exposed through
//! [`std::error::Error::source`]: its text is already part of the message, and exposing it again
//! would make `anyhow`'s `{:#}` print it twice.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::Compression;

/// Errors of shard discovery, decompression, chunking, compression and atomic output.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// A file or directory could not be opened (or its metadata read).
    #[error("cannot open {}: {}", path.display(), Describe(error))]
    Open { path: PathBuf, error: io::Error },
    /// A directory could not be listed while searching for shards.
    #[error("cannot list directory {}: {}", path.display(), Describe(error))]
    List { path: PathBuf, error: io::Error },
    /// Reading a file failed (outside of the decompressing reader).
    #[error("cannot read {}: {}", path.display(), Describe(error))]
    Read { path: PathBuf, error: io::Error },
    /// Creating, writing, syncing or renaming an output failed.
    #[error("cannot {action} {}: {}", path.display(), Describe(error))]
    Write {
        path: PathBuf,
        action: &'static str,
        error: io::Error,
    },
    /// A directory input holding no shard, or a glob pattern matching no file.
    #[error("input {input}: {reason}")]
    NoMatch { input: String, reason: &'static str },
    /// No input was given at all.
    #[error("no input given")]
    NoInputs,
    /// A glob pattern could not be parsed.
    #[error("invalid glob pattern {pattern}: {message}")]
    BadPattern { pattern: String, message: String },
    /// The file name claims a compression that the file's magic bytes contradict.
    #[error(
        "{}: extension says {} but the file is not a {} stream",
        path.display(),
        claimed.name(),
        claimed.name()
    )]
    CompressionMismatch {
        path: PathBuf,
        claimed: Compression,
        detected: Compression,
    },
    /// Reading the (decompressed) stream failed: truncated or corrupt data, or an I/O error. When
    /// the stream comes from [`crate::open_shard`] the message names the file.
    #[error("read failed: {}", Describe(error))]
    Stream { error: io::Error },
    /// Writing an oversized line to its spill file failed (the error names the file).
    #[error("cannot spill an oversized line: {}", Describe(error))]
    Spill { error: io::Error },
    /// A Parquet file inside a zstd or gzip stream: it cannot be read as a stream.
    #[error(
        "{}: {}-compressed parquet cannot be streamed (parquet compresses inside the file and is \
         read from its footer); decompress it first, e.g. `{} -d`",
        path.display(),
        compression.name(),
        compression.name()
    )]
    CompressedParquet {
        path: PathBuf,
        compression: Compression,
    },
    /// A request to object storage failed (listing, HEAD, GET): the URL and what the server or
    /// client said; never a credential.
    #[error("{url}: {message}")]
    Remote { url: String, message: String },
    /// A file named `*.parquet` that does not start with `PAR1`.
    #[error("{}: not a parquet file (it does not start with PAR1)", path.display())]
    NotParquet { path: PathBuf },
    /// The Parquet reader or writer failed (a corrupt file, an unsupported codec).
    #[error("{}: {message}", path.display())]
    Parquet { path: PathBuf, message: String },
    /// Compressing a frame failed.
    #[error("cannot compress a {} frame: {}", compression.name(), Describe(error))]
    Compress {
        compression: Compression,
        error: io::Error,
    },
}

impl IoError {
    /// The underlying I/O error, when there is one.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            IoError::Open { error, .. }
            | IoError::List { error, .. }
            | IoError::Read { error, .. }
            | IoError::Write { error, .. }
            | IoError::Stream { error }
            | IoError::Spill { error }
            | IoError::Compress { error, .. } => Some(error),
            IoError::NoMatch { .. }
            | IoError::NoInputs
            | IoError::BadPattern { .. }
            | IoError::CompressionMismatch { .. }
            | IoError::CompressedParquet { .. }
            | IoError::NotParquet { .. }
            | IoError::Parquet { .. }
            | IoError::Remote { .. } => None,
        }
    }

    /// The kind of the underlying I/O error, when there is one.
    pub fn kind(&self) -> Option<io::ErrorKind> {
        self.io_error().map(io::Error::kind)
    }

    pub(crate) fn open(path: &Path, error: io::Error) -> Self {
        IoError::Open {
            path: path.to_path_buf(),
            error,
        }
    }

    pub(crate) fn write(path: &Path, action: &'static str, error: io::Error) -> Self {
        IoError::Write {
            path: path.to_path_buf(),
            action,
            error,
        }
    }
}

/// Displays an [`io::Error`] as a lowercase phrase without the `(os error N)` suffix:
/// `permission denied`, `no such file or directory`.
pub(crate) struct Describe<'a>(pub(crate) &'a io::Error);

impl fmt::Display for Describe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let error = self.0;
        // Errors we built ourselves (custom payload) already carry a good message.
        if error.raw_os_error().is_none() && error.get_ref().is_some() {
            return f.write_str(&lowercase_first(&error.to_string()));
        }
        let text = match error.kind() {
            io::ErrorKind::NotFound => "no such file or directory".to_string(),
            io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            io::ErrorKind::AlreadyExists => "already exists".to_string(),
            io::ErrorKind::UnexpectedEof => "unexpected end of file".to_string(),
            _ => {
                let text = error.to_string();
                let text = match text.rfind(" (os error ") {
                    Some(at) if text.ends_with(')') => text[..at].to_string(),
                    _ => text,
                };
                lowercase_first(&text)
            }
        };
        f.write_str(&text)
    }
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        // Keep acronyms ("IO error") intact: only lowercase a capital followed by a lowercase.
        Some(first) if first.is_uppercase() && !chars.next().is_some_and(char::is_uppercase) => {
            first
                .to_lowercase()
                .chain(text[first.len_utf8()..].chars())
                .collect()
        }
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_and_name_the_path() {
        let e = IoError::open(
            Path::new("corpus/a.jsonl"),
            io::Error::from_raw_os_error(13),
        );
        assert_eq!(
            e.to_string(),
            "cannot open corpus/a.jsonl: permission denied"
        );
        assert_eq!(e.kind(), Some(io::ErrorKind::PermissionDenied));

        let e = IoError::open(Path::new("x"), io::Error::from(io::ErrorKind::NotFound));
        assert_eq!(e.to_string(), "cannot open x: no such file or directory");

        let e = IoError::CompressionMismatch {
            path: PathBuf::from("x.jsonl.zst"),
            claimed: Compression::Zstd,
            detected: Compression::None,
        };
        assert_eq!(
            e.to_string(),
            "x.jsonl.zst: extension says zstd but the file is not a zstd stream"
        );
        assert!(std::error::Error::source(&e).is_none());

        let e = IoError::Stream {
            error: io::Error::other("Corrupt deflate stream"),
        };
        assert_eq!(e.to_string(), "read failed: corrupt deflate stream");
        let e = IoError::Stream {
            error: io::Error::other("IO error"),
        };
        assert_eq!(e.to_string(), "read failed: IO error");
    }
}
