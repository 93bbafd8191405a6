//! Input and output plumbing of sluice: finding the shards of a corpus, streaming them
//! (decompressed) as chunks of whole lines in bounded memory, and writing compressed outputs
//! that are complete or absent.
//!
//! # Frames per chunk
//!
//! Filtering is parallel, but a shard's output must be byte-identical whatever the thread count.
//! The [`LineChunker`] cuts the decompressed stream into [`Chunk`]s whose boundaries depend only
//! on the input bytes and the [`ChunkerOptions`] (never on buffer sizes or timing). Each chunk's
//! surviving documents are compressed by [`compress_frame`] into a *self-contained* frame — a
//! complete zstd frame or a complete gzip member — on whichever worker thread handled the chunk,
//! and the frames are written in chunk order. Concatenated zstd frames and concatenated gzip
//! members are each one valid stream (every standard decoder reads them all), so compression
//! runs in parallel without a shared encoder, and the output bytes are a pure function of the
//! input, the options and the level. A destination that gets no document is written as
//! [`empty_stream`], so every output file decompresses cleanly.
//!
//! # Magic bytes, not names
//!
//! Corpora are renamed, re-hosted and mislabelled. [`open_shard`] trusts the first bytes of the
//! file (zstd `28 B5 2F FD` or a zstd skippable frame `5? 2A 4D 18`, gzip `1F 8B`) to pick the
//! decoder, so a compressed file without a compression extension still reads correctly. When the
//! name *claims* a compression that the bytes contradict, that is reported as an error rather than
//! guessed around: it usually means a broken download or a wrong rename, and feeding compressed
//! bytes to the JSON parser would otherwise turn into millions of bogus "invalid JSON" rejections.
//! Truncated or corrupt streams are errors from `read` (the decoders' end-of-frame checks plus zstd
//! frame checksums and gzip CRCs), never a silent early end of file that would quietly drop the
//! tail of a shard.
//!
//! # Bounded memory
//!
//! Nothing here holds a whole shard. The chunker works on the reader's buffer with
//! `fill_buf`/`consume` and `memchr`, reuses the chunk's buffers, and never buffers more than
//! about `target_chunk_bytes + max_line_bytes` per chunk: a line longer than `max_line_bytes`
//! (a 10 GB line of a broken dump) keeps only its first [`OVERSIZED_PREFIX_BYTES`] bytes and is
//! skipped while counting, flagged as [`Line::oversized`] for the caller to report; with
//! [`LineChunker::next_chunk_spilling`] it is also streamed whole into a writer (such as a
//! [`CompressedFile`], or a [`LazyCompressedFile`] when such lines are rare) as it goes by.
//!
//! # Parquet
//!
//! [`shard_format`] tells a Parquet shard (`PAR1`) from a JSONL one; [`ParquetReader`] reads it
//! one row group, a bounded batch of rows at a time, and [`ParquetWriter`] writes batches back
//! with the input's schema. A Parquet file inside zstd or gzip is refused, not guessed at.
//!
//! # Object storage
//!
//! Inputs may be URLs in object storage (S3, GCS, Azure; HTTP(S) single objects): [`discover`]
//! lists them with the rules of a local directory or glob, and [`open_remote_shard_observed`]
//! streams an object through [`RemoteReader`] (retried on throttling, 5xx and refused
//! connections; resumed by a ranged GET from the failed byte). Credentials come only from the
//! environment. Parquet objects are read by ranged GETs of their footer and row groups
//! ([`ParquetReader::open_remote`]). Outputs may be written there too ([`ObjectDir`]: multipart
//! uploads, conditional puts, lease locks). See the `remote` and `objects` modules' docs.
//!
//! # Atomic outputs
//!
//! Outputs are written through [`AtomicFile`]: under `<final>.tmp-sluice`, then flushed, synced
//! and renamed into place by [`AtomicFile::finish`]. A crashed or interrupted run leaves no
//! truncated file under a final name (a truncated compressed output would be indistinguishable
//! from a short one at a frame boundary), and discovery never mistakes our temp files for input.

mod atomic;
mod chunker;
mod compression;
mod discover;
mod error;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod lock;
mod objects;
mod parquet;
mod paths;
mod remote;

pub use atomic::{temp_path, write_atomic, AtomicFile};
pub use chunker::{
    chunk_is_full, Chunk, ChunkerOptions, Line, LineChunker, MAX_CHUNK_BYTES, MAX_CHUNK_LINES,
    MAX_LINE_BYTES, MIN_CHUNK_BYTES, MIN_LINE_BYTES, OVERSIZED_PREFIX_BYTES,
};
pub use compression::{
    compress_frame, drain_to_end, empty_stream, gzip_level, open_remote_shard_observed, open_shard,
    open_shard_observed, open_written, open_written_reader, output_name, CompressedFile,
    CompressedWriter, Compression, LazyCompressedFile, READ_BUFFER_BYTES,
};
pub use discover::{
    discover, discover_shards, is_shard_file_name, DiscoverOptions, Discovery, FailedEntry, Shard,
    SkipReason, Skipped, TEMP_SUFFIX,
};
pub use error::IoError;
pub use lock::{hostname, utc_timestamp, Holder, LockError, OutputLock, LOCK_FILE};
pub use objects::{
    ObjectDir, ObjectLock, ObjectWriter, Versioned, LEASE_EXPIRY, LEASE_RENEW, PARTS_IN_FLIGHT,
    PART_BYTES,
};
pub use parquet::{
    is_parquet_name, is_parquet_output, parquet_output_name, shard_format, ParquetCodec,
    ParquetOptions, ParquetReader, ParquetWriter, RowGroupBatches, ShardFormat, PARQUET_MAGIC,
    WRITE_ROWS,
};
pub use paths::{join_under, validate_relative_name, UnsafeName};
pub use remote::{
    is_url, remote_shard_format, RemoteChunks, RemoteObject, RemoteReader, MAX_ATTEMPTS,
    MAX_RESUMES, URL_SCHEMES,
};
/// The Arrow crates Parquet batches are made of, for callers that handle them.
pub use {arrow_array, arrow_schema, arrow_select};
