//! What the `chunker` fuzz target (`fuzz/fuzz_targets/chunker.rs`) runs, here so that the crate's
//! tests run every committed corpus file through the same code without a nightly toolchain.
//! Built only for tests and with the `fuzzing` feature.

use std::io::{BufRead, BufReader};
use std::path::Path;

use crate::{compress_frame, open_shard, Chunk, ChunkerOptions, Compression, LineChunker};

/// One fuzz input. The first bytes choose what to do with the rest (`payload`):
///
/// - `mode % 4 == 0`: the payload is a file, opened with [`open_shard`] under a name claiming
///   no compression, zstd or gzip, and chunked;
/// - `1`, `2`: the payload is compressed with zstd / gzip in several frames (cut where the input
///   says) and read back: the lines must reassemble the payload exactly;
/// - `3`: as 1 or 2, then one byte is flipped or the stream cut: reading may fail, but only with
///   an error.
///
/// Chunk options are small (targets up to 255 bytes, line limits up to 511) so that every path
/// of the chunker (chunk boundaries, oversized lines, spilling) is reached by short inputs.
/// Panics when an invariant does not hold.
pub fn chunker(data: &[u8]) {
    let [mode, name, target, max_line, cut_a, cut_b, capacity, payload @ ..] = data else {
        return;
    };
    let options = ChunkerOptions {
        target_chunk_bytes: usize::from(*target),
        max_line_bytes: usize::from(*max_line) * 2,
    };
    let capacity = usize::from(*capacity).max(1);
    match mode % 4 {
        0 => {
            let name = ["x.jsonl", "x.jsonl.zst", "x.jsonl.gz"][usize::from(*name % 3)];
            let dir = scratch_dir();
            let path = dir.join(name);
            std::fs::write(&path, payload).expect("write the fuzz input");
            let Ok((compression, reader)) = open_shard(&path) else {
                return;
            };
            let plain = compression == Compression::None;
            if let Ok(lines) = read_lines(BufReader::with_capacity(capacity, reader), options) {
                if plain {
                    check_lines(payload, &lines, options);
                }
            }
        }
        m => {
            let compression = if (m == 1) != (name % 2 == 0) {
                Compression::Zstd
            } else {
                Compression::Gzip
            };
            let mut stream = Vec::new();
            let cuts = [usize::from(*cut_a), usize::from(*cut_b)];
            let mut start = 0;
            for cut in cuts.into_iter().chain([payload.len()]) {
                let end = (start + cut).min(payload.len());
                compress_frame(&payload[start..end], compression, 1, &mut stream)
                    .expect("compress");
                start = end;
            }
            if m == 3 && !stream.is_empty() {
                let at = usize::from(*cut_a) * 256 + usize::from(*cut_b);
                if *target % 2 == 0 {
                    stream.truncate(at % stream.len());
                } else {
                    let at = at % stream.len();
                    stream[at] ^= max_line | 1;
                }
            }
            let dir = scratch_dir();
            let path = dir.join(format!("x.jsonl{}", compression.extension()));
            std::fs::write(&path, &stream).expect("write the fuzz input");
            let opened = open_shard(&path);
            if m == 3 {
                if let Ok((_, reader)) = opened {
                    let _ = read_lines(BufReader::with_capacity(capacity, reader), options);
                }
                return;
            }
            let (detected, reader) = opened.expect("our own stream opens");
            if !payload.is_empty() {
                assert_eq!(detected, compression);
            }
            let lines = read_lines(BufReader::with_capacity(capacity, reader), options)
                .expect("our own stream reads");
            check_lines(payload, &lines, options);
        }
    }
}

/// A line as the checks need it: (number, offset, kept bytes, oversized length, spill line).
type Flat = (u64, u64, Vec<u8>, Option<u64>, Option<u64>);

/// Every line of `reader` (through chunks and a spill writer), and the spill stream; also checks
/// the chunks' own invariants.
fn read_lines<R: BufRead>(
    reader: R,
    options: ChunkerOptions,
) -> Result<(Vec<Flat>, Vec<u8>), crate::IoError> {
    let mut chunker = LineChunker::new(reader, options);
    let mut chunk = Chunk::default();
    let mut spill = Vec::new();
    let mut lines = Vec::new();
    let mut index = 0;
    while chunker.next_chunk_spilling(&mut chunk, Some(&mut spill))? {
        assert_eq!(chunk.index, index, "chunks are numbered in order");
        index += 1;
        assert!(!chunk.lines.is_empty(), "a chunk returned has lines");
        assert!(chunk.lines.len() <= crate::MAX_CHUNK_LINES);
        for (i, line) in chunk.lines.iter().enumerate() {
            assert!(line.range.end <= chunk.data.len());
            assert_eq!(chunk.line_bytes(i), &chunk.data[line.range.clone()]);
            lines.push((
                line.number,
                line.offset,
                chunk.line_bytes(i).to_vec(),
                line.oversized,
                line.spill_line,
            ));
        }
    }
    assert!(chunk.lines.is_empty() && chunk.data.is_empty());
    assert!(!chunker.next_chunk(&mut chunk)?, "the end stays the end");
    Ok((lines, spill))
}

/// The lines reassemble `input`: numbered from 1, each starting where the previous one ended
/// (plus its `'\n'`), oversized lines keep their prefix and are whole in the spill, in order.
fn check_lines(input: &[u8], (lines, spill): &(Vec<Flat>, Vec<u8>), options: ChunkerOptions) {
    let mut offset = 0usize;
    let mut want_spill = Vec::new();
    let mut spilled = 0;
    for (i, (number, off, bytes, oversized, spill_line)) in lines.iter().enumerate() {
        assert_eq!(*number, i as u64 + 1);
        assert_eq!(*off, offset as u64);
        let len = oversized.map_or(bytes.len(), |l| l as usize);
        let line = &input[offset..offset + len];
        assert!(!line.contains(&b'\n'));
        match oversized {
            None => {
                assert!(len <= options.max_line_bytes);
                assert_eq!(line, &bytes[..]);
                assert_eq!(*spill_line, None);
            }
            Some(_) => {
                assert!(len > options.max_line_bytes);
                let kept = len.min(crate::OVERSIZED_PREFIX_BYTES);
                assert_eq!(&line[..kept], &bytes[..]);
                spilled += 1;
                assert_eq!(*spill_line, Some(spilled));
                want_spill.extend_from_slice(line);
                want_spill.push(b'\n');
            }
        }
        offset += len;
        if offset < input.len() {
            assert_eq!(input[offset], b'\n');
            offset += 1;
        }
    }
    assert_eq!(offset, input.len(), "every byte is in a line");
    assert_eq!(spill, &want_spill);
}

/// A directory for this process's fuzz files (one file at a time, rewritten every run).
fn scratch_dir() -> &'static Path {
    use std::sync::OnceLock;
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"))
        .path()
}

#[cfg(test)]
mod tests {
    /// Every committed corpus file of the `chunker` fuzz target, through the same function.
    #[test]
    fn fuzz_corpus_runs_clean() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/chunker");
        let mut count = 0;
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries {
                let path = entry.unwrap().path();
                super::chunker(&std::fs::read(&path).unwrap());
                count += 1;
            }
        }
        assert!(count > 0, "no corpus in {}", dir.display());
    }
}
