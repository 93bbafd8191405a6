//! The queue: every document of `review/` (and seeded samples of `kept/` and `dropped/`), found
//! by one walk of the output directory at start. What stays in memory is a compact entry per
//! document (where its line and record are, its score, reason and category keys); the lines and
//! records themselves are copied, decompressed, into two unnamed temporary files (gone when the
//! process ends), from which one document is read per request at its offset. A compressed shard
//! cannot be read at an offset, and the queue is a small part of the corpus, so copying it once
//! is cheaper than decompressing a shard from its start for every page.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;

use sha2::{Digest, Sha256};
use sluice_audit::outdir::Item;
use sluice_audit::select::Reservoir;
use sluice_audit::{OutDir, Record};
use sluice_core::stats::Destination;

use crate::ReviewError;

/// Which documents are queued.
#[derive(Clone, Debug, Default)]
pub struct QueueOptions {
    /// A uniform sample of this many kept documents, for quality control.
    pub sample_kept: usize,
    /// A uniform sample of this many dropped documents.
    pub sample_dropped: usize,
    /// The samples' seed: the same seed and directory give the same samples.
    pub seed: u64,
}

/// Where a piece is in a spill file.
#[derive(Clone, Copy, Debug)]
struct Span {
    offset: u64,
    len: u32,
}

/// One queued document.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Index into [`Queue::shards`].
    pub shard: u32,
    pub line: u64,
    pub source: Destination,
    /// `sha256:` of the audit record's line (of the document's line when it has no record).
    pub hash: String,
    pub score: Option<f32>,
    /// Indices into [`Queue::reasons`] and [`Queue::categories`].
    pub reasons: Vec<u32>,
    pub categories: Vec<u32>,
    doc: Span,
    record: Option<Span>,
}

/// The review queue of an output directory.
pub struct Queue {
    pub shards: Vec<String>,
    pub entries: Vec<Entry>,
    /// Reason keys (`stage` or `stage/rule`) and term categories, with their document counts.
    pub reasons: Vec<(String, u64)>,
    pub categories: Vec<(String, u64)>,
    docs: File,
    records: File,
}

/// A queued document read back.
pub struct Fetched {
    pub raw: Vec<u8>,
    pub record: Option<Record>,
}

/// The hash a decision cites: of the record's line as the run wrote it, else of the document's.
pub fn hash_of(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The positions (0-based, among all documents sent to `destination` in shard order) of a
/// seeded uniform sample of `n` of them.
fn sample_positions(out: &OutDir, destination: Destination, n: usize, seed: u64) -> Vec<u64> {
    if n == 0 {
        return Vec::new();
    }
    let total: u64 = out
        .done_shards()
        .filter_map(|e| e.stats.as_ref())
        .map(|s| s.flow(destination).documents)
        .sum();
    let mut reservoir = Reservoir::new(n, seed);
    for i in 0..total {
        reservoir.offer(i);
    }
    reservoir.into_sorted()
}

struct Spill {
    writer: BufWriter<File>,
    at: u64,
}

impl Spill {
    fn new() -> Result<Spill, ReviewError> {
        let file = tempfile::tempfile().map_err(|e| ReviewError::Serve(e.to_string()))?;
        Ok(Spill {
            writer: BufWriter::new(file),
            at: 0,
        })
    }

    fn put(&mut self, bytes: &[u8]) -> Result<Span, ReviewError> {
        let len = u32::try_from(bytes.len())
            .map_err(|_| ReviewError::Serve("a document over 4 GiB".into()))?;
        self.writer
            .write_all(bytes)
            .map_err(|e| ReviewError::Serve(format!("cannot write a temporary file: {e}")))?;
        let span = Span {
            offset: self.at,
            len,
        };
        self.at += bytes.len() as u64;
        Ok(span)
    }

    fn finish(self) -> Result<File, ReviewError> {
        self.writer
            .into_inner()
            .map_err(|e| ReviewError::Serve(format!("cannot write a temporary file: {e}")))
    }
}

impl Queue {
    /// Walks `out` once: every document of review/, and the sampled kept and dropped ones.
    pub fn build(out: &OutDir, options: &QueueOptions) -> Result<Queue, ReviewError> {
        let kept_sample =
            sample_positions(out, Destination::Kept, options.sample_kept, options.seed);
        // Another stream of the generator for the dropped sample, so that the two are unrelated.
        let dropped_sample = sample_positions(
            out,
            Destination::Dropped,
            options.sample_dropped,
            options.seed ^ 0x9e37_79b9_7f4a_7c15,
        );
        let (mut kept_at, mut dropped_at) = (0u64, 0u64);
        let (mut kept_next, mut dropped_next) = (0usize, 0usize);
        let (mut docs, mut records) = (Spill::new()?, Spill::new()?);
        let mut shards = Vec::new();
        let mut entries = Vec::new();
        let mut reasons: BTreeMap<String, (u32, u64)> = BTreeMap::new();
        let mut categories: BTreeMap<String, (u32, u64)> = BTreeMap::new();
        let mut reason_names = Vec::new();
        let mut category_names = Vec::new();
        for entry in out.done_shards() {
            let stats = entry.stats.as_ref();
            let count = |d: Destination| stats.map_or(0, |s| s.flow(d).documents);
            let wants_kept = kept_next < kept_sample.len()
                && kept_sample[kept_next] < kept_at + count(Destination::Kept);
            let wants_dropped = dropped_next < dropped_sample.len()
                && dropped_sample[dropped_next] < dropped_at + count(Destination::Dropped);
            if count(Destination::Review) == 0 && !wants_kept && !wants_dropped {
                kept_at += count(Destination::Kept);
                dropped_at += count(Destination::Dropped);
                continue;
            }
            let shard = shards.len() as u32;
            shards.push(entry.name.clone());
            let mut walker = out.walk(entry)?;
            while let Some(item) = walker.next_item()? {
                let Item::Document {
                    line,
                    raw,
                    destination,
                    record,
                } = item
                else {
                    continue;
                };
                let queued = match destination {
                    Destination::Review => true,
                    Destination::Kept => {
                        let take = kept_sample.get(kept_next) == Some(&kept_at);
                        kept_next += usize::from(take);
                        kept_at += 1;
                        take
                    }
                    Destination::Dropped => {
                        let take = dropped_sample.get(dropped_next) == Some(&dropped_at);
                        dropped_next += usize::from(take);
                        dropped_at += 1;
                        take
                    }
                    Destination::Errors => false,
                };
                if !queued {
                    continue;
                }
                let doc = docs.put(raw)?;
                let (hash, record_span, score, mut reason_ids, mut category_ids) = match &record {
                    Some(record) => {
                        // A record read back serializes to the bytes the run wrote.
                        let bytes = serde_json::to_vec(record).expect("a record serializes");
                        let intern = |map: &mut BTreeMap<String, (u32, u64)>,
                                      names: &mut Vec<String>,
                                      key: &str| {
                            let next = names.len() as u32;
                            let slot = map.entry(key.to_string()).or_insert_with(|| {
                                names.push(key.to_string());
                                (next, 0)
                            });
                            slot.1 += 1;
                            slot.0
                        };
                        let r: Vec<u32> = record
                            .reason_keys()
                            .iter()
                            .map(|k| intern(&mut reasons, &mut reason_names, k))
                            .collect();
                        let c: Vec<u32> = record
                            .keys("categories")
                            .iter()
                            .map(|k| intern(&mut categories, &mut category_names, k))
                            .collect();
                        (
                            hash_of(&bytes),
                            Some(records.put(&bytes)?),
                            record.score(),
                            r,
                            c,
                        )
                    }
                    None => (hash_of(raw), None, None, Vec::new(), Vec::new()),
                };
                reason_ids.sort_unstable();
                reason_ids.dedup();
                category_ids.sort_unstable();
                category_ids.dedup();
                entries.push(Entry {
                    shard,
                    line,
                    source: destination,
                    hash,
                    score,
                    reasons: reason_ids,
                    categories: category_ids,
                    doc,
                    record: record_span,
                });
            }
        }
        let counted = |names: Vec<String>, map: &BTreeMap<String, (u32, u64)>| {
            names
                .into_iter()
                .map(|n| {
                    let count = map[&n].1;
                    (n, count)
                })
                .collect()
        };
        Ok(Queue {
            shards,
            entries,
            reasons: counted(reason_names, &reasons),
            categories: counted(category_names, &categories),
            docs: docs.finish()?,
            records: records.finish()?,
        })
    }

    /// The line and record of entry `i`, read from the spill files.
    pub fn fetch(&self, i: usize) -> Result<Fetched, ReviewError> {
        let entry = &self.entries[i];
        let read = |file: &File, span: Span| -> Result<Vec<u8>, ReviewError> {
            let mut buf = vec![0; span.len as usize];
            file.read_exact_at(&mut buf, span.offset)
                .map_err(|e| ReviewError::Serve(format!("cannot read a temporary file: {e}")))?;
            Ok(buf)
        };
        let raw = read(&self.docs, entry.doc)?;
        let record = match entry.record {
            Some(span) => Some(
                serde_json::from_slice(&read(&self.records, span)?)
                    .map_err(|e| ReviewError::Serve(format!("a spilled record: {e}")))?,
            ),
            None => None,
        };
        Ok(Fetched { raw, record })
    }

    /// The entry of document `(shard, line)`, if queued.
    pub fn find(&self, shard: &str, line: u64) -> Option<usize> {
        let s = self.shards.iter().position(|n| n == shard)? as u32;
        // Entries are in shard, then line order.
        self.entries
            .binary_search_by(|e| (e.shard, e.line).cmp(&(s, line)))
            .ok()
    }

    pub fn shard(&self, entry: &Entry) -> &str {
        &self.shards[entry.shard as usize]
    }
}
