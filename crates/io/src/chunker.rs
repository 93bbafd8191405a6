//! Splitting a decompressed byte stream into chunks of whole lines, in bounded memory.

use std::io::{self, BufRead, Write};
use std::ops::Range;

use crate::IoError;

/// How many leading bytes of an oversized line are kept (as its `range`).
pub const OVERSIZED_PREFIX_BYTES: usize = 1024;

/// Most lines in one chunk. A chunk's work and outputs grow with its line count as well as its
/// bytes: 4 MiB of 45-byte documents, every one flagged, is 93,000 audit records (~85 MB) held
/// by one worker. Past this many lines the chunk closes early; with web-sized documents
/// (~1–5 KB) the byte target closes it first.
pub const MAX_CHUNK_LINES: usize = 16_384;

/// The chunk cut: whether a chunk holding `lines` lines and `bytes` stream bytes (line bytes plus
/// their `'\n'`) closes after its last line. Whatever re-cuts a shard's lines into the same
/// chunks (`sluice rethreshold`) asks this too.
pub fn chunk_is_full(bytes: u64, lines: usize, target_chunk_bytes: usize) -> bool {
    bytes >= target_chunk_bytes as u64 || lines >= MAX_CHUNK_LINES
}

/// Room beyond the target reserved for a chunk's last line, which ends after the target.
const CHUNK_SLACK_BYTES: usize = 64 << 10;

/// Smallest [`ChunkerOptions::target_chunk_bytes`] a configuration should accept
/// (`run.chunk_bytes`): below it, per-chunk overhead (a frame per output stream) dominates.
pub const MIN_CHUNK_BYTES: usize = 4096;

/// Largest [`ChunkerOptions::target_chunk_bytes`] a configuration should accept
/// (`run.chunk_bytes`). At least 4 chunks are in flight whatever the thread count, so this keeps
/// their bytes within 64 MiB (the run's promise is 96 MiB); the chunker itself never reserves
/// more than this up front, whatever the target.
pub const MAX_CHUNK_BYTES: usize = 16 << 20;

/// Smallest [`ChunkerOptions::max_line_bytes`] a configuration should accept
/// (`input.max_line_bytes`): an oversized line keeps its first [`OVERSIZED_PREFIX_BYTES`].
pub const MIN_LINE_BYTES: usize = OVERSIZED_PREFIX_BYTES;

/// Largest [`ChunkerOptions::max_line_bytes`] a configuration should accept
/// (`input.max_line_bytes`). A line up to this length is held whole in a chunk (and parsed), so
/// one chunk can hold `target_chunk_bytes + max_line_bytes`; longer lines are streamed to the
/// spill writer and never held. 256 MiB is eight times the default (32 MiB).
pub const MAX_LINE_BYTES: usize = 256 << 20;

/// Options of a [`LineChunker`].
#[derive(Clone, Copy, Debug)]
pub struct ChunkerOptions {
    /// A chunk closes at the first line end at or after this many stream bytes (line bytes plus
    /// their `'\n'`) since the chunk started. `0` makes every line its own chunk.
    pub target_chunk_bytes: usize,
    /// Lines longer than this (without their `'\n'`) are oversized: only their first
    /// [`OVERSIZED_PREFIX_BYTES`] bytes are kept, the rest is skipped while counting.
    pub max_line_bytes: usize,
}

/// One line of a [`Chunk`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// 1-based line number in the stream.
    pub number: u64,
    /// Byte offset of the line start in the decompressed stream.
    pub offset: u64,
    /// Where the line's bytes (without `'\n'`) lie in [`Chunk::data`]; for an oversized line,
    /// its first [`OVERSIZED_PREFIX_BYTES`] bytes.
    pub range: Range<usize>,
    /// `Some(total length without '\n')` when the line was longer than
    /// [`ChunkerOptions::max_line_bytes`].
    pub oversized: Option<u64>,
    /// For an oversized line read with a spill writer ([`LineChunker::next_chunk_spilling`]):
    /// its 1-based line number in the spill stream, which holds it whole.
    pub spill_line: Option<u64>,
}

/// A run of whole lines.
///
/// `data` holds the line bytes back to back WITHOUT their `'\n'` (a `'\r'` before `'\n'` stays
/// in the line); `lines[i].range` indexes `data`.
#[derive(Default, Debug)]
pub struct Chunk {
    /// 0-based index of the chunk in the stream.
    pub index: u64,
    /// The lines' bytes, back to back.
    pub data: Vec<u8>,
    /// The lines, in stream order.
    pub lines: Vec<Line>,
}

impl Chunk {
    /// The bytes of line `i` (its kept prefix when oversized).
    pub fn line_bytes(&self, i: usize) -> &[u8] {
        &self.data[self.lines[i].range.clone()]
    }
}

/// Reads whole lines from a [`BufRead`] into reusable [`Chunk`]s.
///
/// Chunk boundaries depend only on the input bytes and the options, never on how the reader
/// happens to hand out its bytes (buffer sizes, short reads) or on timing.
pub struct LineChunker<R: BufRead> {
    reader: R,
    options: ChunkerOptions,
    /// Decompressed bytes consumed so far.
    consumed: u64,
    /// Number of lines returned so far.
    lines_done: u64,
    /// Index the next chunk gets.
    next_index: u64,
    /// End of input was reached.
    done: bool,
    /// Oversized lines written to a spill writer so far.
    spilled: u64,
}

/// The line being assembled.
struct Partial {
    /// Where the line starts in `chunk.data`.
    start: usize,
    /// Stream offset of the line start.
    offset: u64,
    /// Line length so far (all bytes, kept or skipped), without '\n'.
    len: u64,
    oversized: bool,
}

impl<R: BufRead> LineChunker<R> {
    /// Creates a chunker reading from `reader`.
    pub fn new(reader: R, options: ChunkerOptions) -> Self {
        LineChunker {
            reader,
            options,
            consumed: 0,
            lines_done: 0,
            next_index: 0,
            done: false,
            spilled: 0,
        }
    }

    /// Decompressed bytes consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.consumed
    }

    /// The options this chunker was created with.
    pub fn options(&self) -> ChunkerOptions {
        self.options
    }

    /// Fills `chunk` (cleared first, its buffers reused) with the next lines; `Ok(false)` at the
    /// end of input (the chunk is then empty).
    ///
    /// A chunk closes at the first line end at or after `target_chunk_bytes` stream bytes, or
    /// after [`MAX_CHUNK_LINES`] lines, whichever comes first. A
    /// final line without `'\n'` is a line; nothing after a final `'\n'` is. A line longer than
    /// `max_line_bytes` is never buffered whole: its first [`OVERSIZED_PREFIX_BYTES`] bytes are
    /// kept as its `range`, the rest is skipped while counting, and `oversized` is set to its
    /// total length. Empty lines are returned as lines with an empty range. Read errors
    /// (including truncated or corrupt compressed input) are returned as [`IoError::Stream`].
    pub fn next_chunk(&mut self, chunk: &mut Chunk) -> Result<bool, IoError> {
        self.next_chunk_spilling(chunk, None::<&mut io::Sink>)
    }

    /// [`next_chunk`](Self::next_chunk), and every oversized line is also written whole, with a
    /// `'\n'`, to `spill` as it streams past (still never buffered whole): the spill stream is
    /// JSONL of the lines too long to judge, and each such [`Line`] says where it is there.
    /// A failed write to `spill` is an [`IoError::Spill`].
    pub fn next_chunk_spilling<W: Write + ?Sized>(
        &mut self,
        chunk: &mut Chunk,
        mut spill: Option<&mut W>,
    ) -> Result<bool, IoError> {
        chunk.data.clear();
        chunk.lines.clear();
        // One allocation for a fresh chunk instead of doubling up to the target: each regrowth
        // copies everything read so far (measured: realloc copies ~1% of a run's CPU time).
        // Bounded: a huge target (1 TiB) must not be allocated before a byte is read.
        chunk.data.reserve(
            self.options
                .target_chunk_bytes
                .min(MAX_CHUNK_BYTES)
                .saturating_add(CHUNK_SLACK_BYTES),
        );
        chunk.index = self.next_index;
        if self.done {
            return Ok(false);
        }
        let chunk_start = self.consumed;
        loop {
            let ended_with_newline = self.read_line(chunk, spill.as_deref_mut())?;
            if !ended_with_newline {
                self.done = true;
                break;
            }
            let bytes = self.consumed - chunk_start;
            if chunk_is_full(bytes, chunk.lines.len(), self.options.target_chunk_bytes) {
                break;
            }
        }
        if chunk.lines.is_empty() {
            return Ok(false);
        }
        self.next_index += 1;
        Ok(true)
    }

    /// Reads one line into `chunk`. Returns whether it ended with '\n' (false: end of input; a
    /// non-empty final line without '\n' has been pushed).
    fn read_line<W: Write + ?Sized>(
        &mut self,
        chunk: &mut Chunk,
        mut spill: Option<&mut W>,
    ) -> Result<bool, IoError> {
        let spill_err = |error| IoError::Spill { error };
        let max = self.options.max_line_bytes as u64;
        let mut line = Partial {
            start: chunk.data.len(),
            offset: self.consumed,
            len: 0,
            oversized: false,
        };
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(IoError::Stream { error }),
            };
            if buf.is_empty() {
                if line.len > 0 {
                    if let (true, Some(w)) = (line.oversized, spill.as_deref_mut()) {
                        w.write_all(b"\n").map_err(spill_err)?;
                    }
                    self.push_line(chunk, &line, spill.is_some());
                }
                return Ok(false);
            }
            let (piece, newline) = match memchr::memchr(b'\n', buf) {
                Some(i) => (&buf[..i], true),
                None => (buf, false),
            };
            let new_len = line.len + piece.len() as u64;
            if !line.oversized && new_len > max {
                line.oversized = true;
                if let Some(w) = spill.as_deref_mut() {
                    // Everything before this piece is still in the chunk: spill it first.
                    w.write_all(&chunk.data[line.start..]).map_err(spill_err)?;
                }
                let kept = (line.len as usize).min(OVERSIZED_PREFIX_BYTES);
                chunk.data.truncate(line.start + kept);
            }
            if line.oversized {
                if let Some(w) = spill.as_deref_mut() {
                    w.write_all(piece).map_err(spill_err)?;
                    if newline {
                        w.write_all(b"\n").map_err(spill_err)?;
                    }
                }
                let have = chunk.data.len() - line.start;
                if have < OVERSIZED_PREFIX_BYTES {
                    let take = (OVERSIZED_PREFIX_BYTES - have).min(piece.len());
                    chunk.data.extend_from_slice(&piece[..take]);
                }
            } else {
                chunk.data.extend_from_slice(piece);
            }
            line.len = new_len;
            let used = piece.len() + usize::from(newline);
            self.reader.consume(used);
            self.consumed += used as u64;
            if newline {
                self.push_line(chunk, &line, spill.is_some());
                return Ok(true);
            }
        }
    }

    fn push_line(&mut self, chunk: &mut Chunk, line: &Partial, spilling: bool) {
        self.lines_done += 1;
        let spill_line = (line.oversized && spilling).then(|| {
            self.spilled += 1;
            self.spilled
        });
        chunk.lines.push(Line {
            number: self.lines_done,
            offset: line.offset,
            range: line.start..chunk.data.len(),
            oversized: line.oversized.then_some(line.len),
            spill_line,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Read};

    fn opts(target: usize, max: usize) -> ChunkerOptions {
        ChunkerOptions {
            target_chunk_bytes: target,
            max_line_bytes: max,
        }
    }

    /// All chunks as (index, [(number, offset, bytes, oversized)]).
    type Flat = Vec<(u64, Vec<(u64, u64, Vec<u8>, Option<u64>)>)>;

    fn collect<R: BufRead>(reader: R, options: ChunkerOptions) -> Flat {
        let mut chunker = LineChunker::new(reader, options);
        let mut chunk = Chunk::default();
        let mut out = Vec::new();
        while chunker.next_chunk(&mut chunk).unwrap() {
            let lines = chunk
                .lines
                .iter()
                .map(|l| {
                    (
                        l.number,
                        l.offset,
                        chunk.data[l.range.clone()].to_vec(),
                        l.oversized,
                    )
                })
                .collect();
            out.push((chunk.index, lines));
        }
        assert!(chunk.lines.is_empty() && chunk.data.is_empty());
        // Further calls keep saying end of input.
        assert!(!chunker.next_chunk(&mut chunk).unwrap());
        out
    }

    /// A huge target (a config's `run.chunk_bytes = 1 TiB`) does not reserve it up front: the
    /// reservation is bounded, and the chunk grows only with the lines actually read.
    #[test]
    fn a_huge_target_does_not_reserve_it_up_front() {
        let input = b"{\"a\":1}\n{\"b\":2}\n";
        for target in [1usize << 30, 1 << 40, usize::MAX] {
            let mut chunker = LineChunker::new(&input[..], opts(target, 1 << 20));
            let mut chunk = Chunk::default();
            assert!(chunker.next_chunk(&mut chunk).unwrap());
            assert_eq!(chunk.lines.len(), 2);
            assert!(
                chunk.data.capacity() <= MAX_CHUNK_BYTES + CHUNK_SLACK_BYTES,
                "target {target}: reserved {}",
                chunk.data.capacity()
            );
            assert!(!chunker.next_chunk(&mut chunk).unwrap());
        }
    }

    #[test]
    fn a_chunk_of_tiny_lines_closes_at_max_chunk_lines() {
        let lines = 2 * MAX_CHUNK_LINES + 7;
        let data: Vec<u8> = (0..lines)
            .flat_map(|i| format!("{i}\n").into_bytes())
            .collect();
        let chunks = collect(&data[..], opts(1 << 30, 1 << 20));
        let sizes: Vec<usize> = chunks.iter().map(|(_, l)| l.len()).collect();
        assert_eq!(sizes, [MAX_CHUNK_LINES, MAX_CHUNK_LINES, 7]);
        assert_eq!(
            chunks[1].1[0].0,
            MAX_CHUNK_LINES as u64 + 1,
            "numbering runs on"
        );
    }

    fn lines_of(flat: &Flat) -> Vec<(u64, u64, Vec<u8>, Option<u64>)> {
        flat.iter().flat_map(|(_, l)| l.iter().cloned()).collect()
    }

    #[test]
    fn numbers_offsets_crlf_and_empty_lines() {
        let input = b"{\"a\":1}\r\n\n{\"b\":2}\n\n\nlast";
        let flat = collect(&input[..], opts(1 << 20, 1 << 20));
        assert_eq!(flat.len(), 1);
        assert_eq!(flat[0].0, 0);
        let lines = lines_of(&flat);
        let expected: Vec<(u64, u64, Vec<u8>, Option<u64>)> = vec![
            (1, 0, b"{\"a\":1}\r".to_vec(), None),
            (2, 9, b"".to_vec(), None),
            (3, 10, b"{\"b\":2}".to_vec(), None),
            (4, 18, b"".to_vec(), None),
            (5, 19, b"".to_vec(), None),
            (6, 20, b"last".to_vec(), None),
        ];
        assert_eq!(lines, expected);
    }

    #[test]
    fn trailing_newline_ends_the_last_line() {
        let flat = collect(&b"a\nb\n"[..], opts(1 << 20, 1 << 20));
        assert_eq!(lines_of(&flat).len(), 2);
        let flat = collect(&b"a\nb"[..], opts(1 << 20, 1 << 20));
        assert_eq!(lines_of(&flat).len(), 2);
        assert_eq!(lines_of(&flat)[1].2, b"b");
        // Empty input: no chunk, no line; a lone newline is one empty line.
        assert!(collect(&b""[..], opts(10, 10)).is_empty());
        let flat = collect(&b"\n"[..], opts(10, 10));
        assert_eq!(lines_of(&flat), vec![(1, 0, Vec::new(), None)]);
    }

    #[test]
    fn chunks_close_at_first_line_end_at_or_after_target() {
        // Lines of 9 bytes + '\n' = 10 stream bytes each.
        let input: Vec<u8> = (0..10)
            .flat_map(|i| format!("line-{i:04}\n").into_bytes())
            .collect();
        let flat = collect(&input[..], opts(25, 100));
        let sizes: Vec<usize> = flat.iter().map(|(_, l)| l.len()).collect();
        assert_eq!(sizes, vec![3, 3, 3, 1]);
        let indexes: Vec<u64> = flat.iter().map(|(i, _)| *i).collect();
        assert_eq!(indexes, vec![0, 1, 2, 3]);
        // Exactly at the target: closes there.
        let flat = collect(&input[..], opts(20, 100));
        assert!(flat.iter().all(|(_, l)| l.len() == 2));
        // Target 0: one line per chunk.
        let flat = collect(&input[..], opts(0, 100));
        assert_eq!(flat.len(), 10);
        // Numbers and offsets run on across chunks.
        let lines = lines_of(&collect(&input[..], opts(25, 100)));
        for (i, line) in lines.iter().enumerate() {
            assert_eq!(line.0, i as u64 + 1);
            assert_eq!(line.1, 10 * i as u64);
        }
    }

    /// Reads `reader` to its end with a spill writer: the lines' spill numbers, and the spill.
    fn spilled<R: BufRead>(reader: R, options: ChunkerOptions) -> (Vec<Option<u64>>, Vec<u8>) {
        let mut chunker = LineChunker::new(reader, options);
        let (mut chunk, mut spill, mut numbers) = (Chunk::default(), Vec::new(), Vec::new());
        while chunker
            .next_chunk_spilling(&mut chunk, Some(&mut spill))
            .unwrap()
        {
            numbers.extend(chunk.lines.iter().map(|l| l.spill_line));
        }
        (numbers, spill)
    }

    #[test]
    fn oversized_lines_are_spilled_whole_and_numbered() {
        let mut input = b"short\n".to_vec();
        input.extend_from_slice(&[b'x'; 5000]);
        input.extend_from_slice(b"\nafter\n");
        input.extend_from_slice(&[b'y'; 3000]); // final oversized line without '\n'
        for capacity in [1, 7, 64, 1000, 8192] {
            let reader = BufReader::with_capacity(capacity, &input[..]);
            let (numbers, spill) = spilled(reader, opts(1 << 20, 2000));
            assert_eq!(numbers, [None, Some(1), None, Some(2)]);
            let mut want = vec![b'x'; 5000];
            want.push(b'\n');
            want.extend_from_slice(&[b'y'; 3000]);
            want.push(b'\n');
            assert!(spill == want, "capacity {capacity}");
        }
        // Without a spill writer nothing is numbered.
        let flat = collect(&input[..], opts(1 << 20, 2000));
        assert_eq!(flat[0].1.len(), 4);
        let mut chunker = LineChunker::new(&input[..], opts(1 << 20, 2000));
        let mut chunk = Chunk::default();
        chunker.next_chunk(&mut chunk).unwrap();
        assert!(chunk.lines.iter().all(|l| l.spill_line.is_none()));
    }

    #[test]
    fn a_failing_spill_is_an_error() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut chunker = LineChunker::new(&b"abcdef\n"[..], opts(100, 3));
        let err = chunker
            .next_chunk_spilling(&mut Chunk::default(), Some(&mut Full))
            .unwrap_err();
        assert!(matches!(err, IoError::Spill { .. }), "{err}");
        assert!(err.to_string().contains("disk full"), "{err}");
    }

    #[test]
    fn oversized_lines_keep_a_prefix_and_count_the_rest() {
        let long = vec![b'x'; 5000];
        let mut input = b"short\n".to_vec();
        input.extend_from_slice(&long);
        input.extend_from_slice(b"\nafter\n");
        input.extend_from_slice(&vec![b'y'; 3000]); // final oversized line without '\n'
        for capacity in [1, 7, 64, 1000, 8192] {
            let reader = BufReader::with_capacity(capacity, &input[..]);
            let lines = lines_of(&collect(reader, opts(1 << 20, 2000)));
            assert_eq!(lines.len(), 4);
            assert_eq!(lines[0], (1, 0, b"short".to_vec(), None));
            assert_eq!(
                lines[1],
                (2, 6, vec![b'x'; OVERSIZED_PREFIX_BYTES], Some(5000))
            );
            assert_eq!(lines[2], (3, 5007, b"after".to_vec(), None));
            assert_eq!(
                lines[3],
                (4, 5013, vec![b'y'; OVERSIZED_PREFIX_BYTES], Some(3000))
            );
        }
        // Exactly max_line_bytes is not oversized; one more is.
        let lines = lines_of(&collect(&b"abcd\nabcde\n"[..], opts(100, 4)));
        assert_eq!(lines[0].3, None);
        assert_eq!(lines[1], (2, 5, b"abcde".to_vec(), Some(5)));
        // max_line_bytes 0: every non-empty line is oversized, empty lines are not.
        let lines = lines_of(&collect(&b"a\n\n"[..], opts(100, 0)));
        assert_eq!(lines[0].3, Some(1));
        assert_eq!(lines[1].3, None);
    }

    /// A reader producing `remaining` bytes of 'a' (no newline), without holding them.
    struct Endless {
        remaining: u64,
    }

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = (buf.len() as u64).min(self.remaining) as usize;
            buf[..n].fill(b'a');
            self.remaining -= n as u64;
            Ok(n)
        }
    }

    #[test]
    fn a_huge_line_is_not_buffered() {
        const TOTAL: u64 = 50 * 1024 * 1024;
        let reader = BufReader::with_capacity(64 * 1024, Endless { remaining: TOTAL });
        let mut chunker = LineChunker::new(reader, opts(1 << 20, 1 << 20));
        let mut chunk = Chunk::default();
        assert!(chunker.next_chunk(&mut chunk).unwrap());
        assert_eq!(chunk.lines.len(), 1);
        assert_eq!(chunk.lines[0].oversized, Some(TOTAL));
        assert_eq!(chunk.lines[0].range, 0..OVERSIZED_PREFIX_BYTES);
        assert!(
            chunk.data.capacity() <= 4 << 20,
            "data capacity grew to {}",
            chunk.data.capacity()
        );
        assert_eq!(chunker.bytes_read(), TOTAL);
        assert!(!chunker.next_chunk(&mut chunk).unwrap());

        // Followed by more lines: those are read normally.
        let reader = BufReader::new(Endless { remaining: TOTAL }.chain(&b"\n{}\n"[..]));
        let lines = lines_of(&collect(reader, opts(1 << 20, 1 << 20)));
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].3, Some(TOTAL));
        assert_eq!(lines[1], (2, TOTAL + 1, b"{}".to_vec(), None));
    }

    #[test]
    fn buffers_are_reused() {
        let input: Vec<u8> = (0..1000)
            .flat_map(|i| format!("{{\"i\":{i}}}\n").into_bytes())
            .collect();
        let mut chunker = LineChunker::new(&input[..], opts(1000, 100));
        let mut chunk = Chunk::default();
        assert!(chunker.next_chunk(&mut chunk).unwrap());
        let (data_ptr, lines_ptr) = (chunk.data.as_ptr(), chunk.lines.as_ptr());
        let mut count = chunk.lines.len();
        let mut stable = 0;
        while chunker.next_chunk(&mut chunk).unwrap() {
            count += chunk.lines.len();
            if chunk.data.as_ptr() == data_ptr && chunk.lines.as_ptr() == lines_ptr {
                stable += 1;
            }
            assert_eq!(chunk.line_bytes(0).first(), Some(&b'{'));
        }
        assert_eq!(count, 1000);
        assert!(stable > 0);
        assert_eq!(chunker.bytes_read(), input.len() as u64);
    }

    /// A reader that fails after `ok` bytes.
    struct Failing<'a> {
        data: &'a [u8],
    }

    impl Read for Failing<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.data.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "x.zst: truncated zstd stream",
                ));
            }
            let n = buf.len().min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn read_errors_are_returned() {
        let reader = BufReader::new(Failing { data: b"a\nb\nc" });
        let mut chunker = LineChunker::new(reader, opts(1 << 20, 100));
        let mut chunk = Chunk::default();
        let err = chunker.next_chunk(&mut chunk).unwrap_err();
        assert_eq!(err.to_string(), "read failed: x.zst: truncated zstd stream");
        assert_eq!(err.kind(), Some(io::ErrorKind::UnexpectedEof));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

        /// Chunk boundaries, lines and offsets do not depend on how the reader hands out bytes.
        #[test]
        fn boundaries_do_not_depend_on_buffer_capacity(
            input in proptest::collection::vec(
                proptest::prop_oneof![
                    8 => proptest::prelude::Just(b'a'),
                    3 => proptest::prelude::Just(b'\n'),
                    1 => proptest::prelude::Just(b'\r'),
                    1 => proptest::prelude::any::<u8>(),
                ],
                0..3000,
            ),
            target in 0usize..400,
            max_line in 0usize..1500,
            cap_a in 1usize..64,
            cap_b in 64usize..5000,
        ) {
            let options = opts(target, max_line);
            let reference = collect(&input[..], options);
            let a = collect(BufReader::with_capacity(cap_a, &input[..]), options);
            let b = collect(BufReader::with_capacity(cap_b, &input[..]), options);
            proptest::prop_assert_eq!(&reference, &a);
            proptest::prop_assert_eq!(&reference, &b);

            // With a spill writer: the same chunks, and the spill holds exactly the oversized
            // lines, whole, each with a '\n', numbered in order.
            let (numbers, spill) = spilled(BufReader::with_capacity(cap_a, &input[..]), options);
            let (numbers_b, spill_b) = spilled(BufReader::with_capacity(cap_b, &input[..]), options);
            proptest::prop_assert_eq!(&numbers, &numbers_b);
            proptest::prop_assert_eq!(&spill, &spill_b);
            let mut want_spill = Vec::new();
            let mut want_numbers = Vec::new();
            let mut next = 0u64;
            for (_, off, _, oversized) in lines_of(&reference) {
                match oversized {
                    Some(len) => {
                        want_spill.extend_from_slice(&input[off as usize..(off + len) as usize]);
                        want_spill.push(b'\n');
                        next += 1;
                        want_numbers.push(Some(next));
                    }
                    None => want_numbers.push(None),
                }
            }
            proptest::prop_assert_eq!(numbers, want_numbers);
            proptest::prop_assert_eq!(spill, want_spill);

            // The lines reassemble the input (for non-oversized lines), offsets are consistent.
            let lines = lines_of(&reference);
            let mut offset = 0u64;
            for (i, (number, off, bytes, oversized)) in lines.iter().enumerate() {
                proptest::prop_assert_eq!(*number, i as u64 + 1);
                proptest::prop_assert_eq!(*off, offset);
                let len = oversized.unwrap_or(bytes.len() as u64);
                let start = offset as usize;
                let end = start + len as usize;
                proptest::prop_assert!(!input[start..end].contains(&b'\n'));
                match oversized {
                    None => {
                        proptest::prop_assert!(len as usize <= max_line);
                        proptest::prop_assert_eq!(&input[start..end], &bytes[..]);
                    }
                    Some(_) => {
                        proptest::prop_assert!(len as usize > max_line);
                        let kept = (len as usize).min(OVERSIZED_PREFIX_BYTES);
                        proptest::prop_assert_eq!(&input[start..start + kept], &bytes[..]);
                    }
                }
                offset = end as u64 + 1;
            }
            // Everything was consumed: the last line ends at the input end (or just before a
            // final '\n').
            let total = input.len() as u64;
            proptest::prop_assert!(offset == total + 1 || offset == total || (lines.is_empty() && total == 0));
            // Chunks close at the first line end at or after the target.
            for (_, chunk_lines) in &reference[..reference.len().saturating_sub(1)] {
                let bytes: u64 = chunk_lines
                    .iter()
                    .map(|(_, _, b, o)| o.unwrap_or(b.len() as u64) + 1)
                    .sum();
                let last = chunk_lines.last().map(|(_, _, b, o)| o.unwrap_or(b.len() as u64) + 1).unwrap_or(0);
                proptest::prop_assert!(bytes >= target as u64);
                proptest::prop_assert!(bytes - last < target as u64 || chunk_lines.len() == 1);
            }
        }
    }
}
