//! A synthetic corpus for benchmarks and tests: deterministic for a seed, with web-like document
//! lengths (log-normal, median ~3 KB, a long tail to ~100 KB), a few percent of non-ASCII
//! documents, and a controllable fraction of documents that contain terms from a given list.

use std::io::Write;
use std::path::{Path, PathBuf};

use sluice_classifier::rng::SplitMix64 as Rng;
use sluice_io::{compress_frame, AtomicFile, Compression};

const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "was",
    "for",
    "that",
    "with",
    "as",
    "on",
    "by",
    "it",
    "from",
    "at",
    "this",
    "be",
    "are",
    "an",
    "which",
    "or",
    "have",
    "has",
    "had",
    "were",
    "not",
    "but",
    "their",
    "they",
    "his",
    "her",
    "its",
    "one",
    "two",
    "three",
    "first",
    "new",
    "more",
    "time",
    "year",
    "people",
    "way",
    "day",
    "world",
    "life",
    "part",
    "place",
    "case",
    "week",
    "company",
    "system",
    "program",
    "question",
    "work",
    "government",
    "number",
    "night",
    "point",
    "home",
    "water",
    "room",
    "mother",
    "area",
    "money",
    "story",
    "fact",
    "month",
    "lot",
    "right",
    "study",
    "book",
    "eye",
    "job",
    "word",
    "business",
    "issue",
    "side",
    "kind",
    "head",
    "house",
    "service",
    "friend",
    "father",
    "power",
    "hour",
    "game",
    "line",
    "end",
    "member",
    "law",
    "car",
    "city",
    "community",
    "name",
    "president",
    "team",
    "minute",
    "idea",
    "kid",
    "body",
    "information",
    "back",
    "parent",
    "face",
    "others",
    "level",
    "office",
    "door",
    "health",
    "person",
    "art",
    "war",
    "history",
    "party",
    "result",
    "change",
    "morning",
    "reason",
    "research",
    "girl",
    "guy",
    "moment",
    "air",
    "teacher",
    "force",
    "education",
    "report",
    "recipe",
    "garden",
    "river",
    "market",
    "school",
    "student",
    "music",
    "film",
    "science",
    "energy",
    "data",
    "model",
    "network",
    "software",
    "library",
    "museum",
    "travel",
    "weather",
    "said",
    "made",
    "found",
    "used",
    "called",
    "known",
    "shown",
    "built",
    "described",
    "became",
    "good",
    "small",
    "large",
    "great",
    "local",
    "public",
    "social",
    "national",
    "important",
    "early",
    "young",
    "different",
    "major",
    "recent",
    "little",
    "old",
    "best",
    "high",
    "long",
    "however",
    "also",
    "only",
    "still",
    "often",
    "never",
    "always",
    "usually",
    "again",
    "very",
    "about",
    "after",
    "before",
    "during",
    "between",
    "under",
    "through",
    "without",
    "against",
];

const ACCENTED: &[&str] = &[
    "café",
    "naïve",
    "façade",
    "über",
    "straße",
    "niño",
    "smörgåsbord",
    "déjà",
    "jalapeño",
    "crème",
    "brûlée",
    "Ελλάδα",
    "Москва",
    "東京",
    "😀",
];

/// Standard normal (Box-Muller).
fn normal(rng: &mut Rng) -> f64 {
    let u = rng.next_f64().max(1e-12);
    let v = rng.next_f64();
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct SyntheticOptions {
    pub seed: u64,
    /// Total uncompressed bytes, spread over `shards` shards.
    pub total_bytes: u64,
    pub shards: usize,
    /// Fraction of documents that get 1–3 terms from `terms` inserted.
    pub hit_rate: f64,
    pub terms: Vec<String>,
    pub compression: Compression,
    pub level: i32,
}

/// One JSON line (without newline) of document number `n`.
fn document(rng: &mut Rng, n: u64, options: &SyntheticOptions, out: &mut String) {
    // Log-normal length: median e^8 ≈ 3 KB.
    let target = (8.0 + 0.9 * normal(rng)).exp().clamp(200.0, 100_000.0) as usize;
    let accented = rng.next_f64() < 0.05;
    let mut text = String::with_capacity(target + 64);
    let mut sentence_start = true;
    while text.len() < target {
        let word = if accented && rng.below(8) == 0 {
            ACCENTED[rng.below(ACCENTED.len())]
        } else {
            WORDS[rng.below(WORDS.len())]
        };
        if sentence_start {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                text.extend(first.to_uppercase());
                text.push_str(chars.as_str());
            }
        } else {
            text.push_str(word);
        }
        sentence_start = false;
        match rng.below(16) {
            0 => {
                text.push_str(". ");
                sentence_start = true;
            }
            1 => text.push_str(", "),
            2 if rng.below(8) == 0 => {
                text.push_str(".\n\n");
                sentence_start = true;
            }
            _ => text.push(' '),
        }
    }
    if !options.terms.is_empty() && rng.next_f64() < options.hit_rate {
        for _ in 0..1 + rng.below(3) {
            let term = &options.terms[rng.below(options.terms.len())];
            // Insert at a word boundary inside the text.
            let at = text.as_bytes()[..rng.below(text.len())]
                .iter()
                .rposition(|&b| b == b' ')
                .map_or(0, |p| p + 1);
            text.insert_str(at, &format!("{term} "));
        }
    }
    out.clear();
    out.push_str("{\"id\":\"doc-");
    out.push_str(&n.to_string());
    out.push_str("\",\"url\":\"https://example.com/");
    out.push_str(&format!("{:x}", rng.next_u64() & 0xffff_ffff));
    out.push_str("\",\"text\":");
    out.push_str(&serde_json::to_string(&text).expect("strings serialize"));
    out.push('}');
}

/// Writes `part-NNNNN.jsonl[.zst|.gz]` shards into `dir` and returns their paths.
pub fn write_corpus(
    dir: &Path,
    options: &SyntheticOptions,
) -> Result<Vec<PathBuf>, sluice_io::IoError> {
    let shards = options.shards.max(1);
    let per_shard = options.total_bytes.div_ceil(shards as u64);
    let mut rng = Rng::new(options.seed);
    let mut paths = Vec::with_capacity(shards);
    let mut line = String::new();
    let mut n = 0u64;
    for s in 0..shards {
        let path = dir.join(format!(
            "part-{s:05}.jsonl{}",
            options.compression.extension()
        ));
        let mut file = AtomicFile::create(&path)?;
        let mut written = 0u64;
        let mut block = Vec::with_capacity(8 << 20);
        let mut frame = Vec::new();
        while written < per_shard {
            document(&mut rng, n, options, &mut line);
            n += 1;
            block.extend_from_slice(line.as_bytes());
            block.push(b'\n');
            written += line.len() as u64 + 1;
            if block.len() >= 8 << 20 || written >= per_shard {
                frame.clear();
                compress_frame(&block, options.compression, options.level, &mut frame)?;
                file.write_all(&frame)
                    .map_err(|e| sluice_io::IoError::Write {
                        path: path.clone(),
                        action: "write",
                        error: e,
                    })?;
                block.clear();
            }
        }
        if written == 0 {
            // An empty shard is still a valid stream (`zstd -d` rejects zero bytes).
            file.write_all(&sluice_io::empty_stream(options.compression))
                .map_err(|e| sluice_io::IoError::Write {
                    path: path.clone(),
                    action: "write",
                    error: e,
                })?;
        }
        file.finish()?;
        paths.push(path);
    }
    Ok(paths)
}

/// Parses sizes like `200MB`, `5MiB`, `1.5GB`, `4096`.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((number * factor) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_size_corpus_is_valid_empty_streams() {
        let dir = tempfile::tempdir().unwrap();
        for compression in [Compression::Zstd, Compression::Gzip, Compression::None] {
            let options = SyntheticOptions {
                seed: 1,
                total_bytes: 0,
                shards: 2,
                hit_rate: 0.0,
                terms: vec![],
                compression,
                level: 3,
            };
            for path in write_corpus(dir.path(), &options).unwrap() {
                let (found, mut reader) = sluice_io::open_written(&path).unwrap();
                assert_eq!(found, compression);
                let mut text = Vec::new();
                std::io::Read::read_to_end(&mut reader, &mut text).unwrap();
                assert!(text.is_empty());
            }
        }
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("200MB"), Some(200_000_000));
        assert_eq!(parse_size("5MiB"), Some(5 << 20));
        assert_eq!(parse_size("1.5gb"), Some(1_500_000_000));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("lots"), None);
    }

    #[test]
    fn corpus_is_deterministic_valid_json_with_the_requested_hit_rate() {
        let options = SyntheticOptions {
            seed: 42,
            total_bytes: 2_000_000,
            shards: 2,
            hit_rate: 0.2,
            terms: vec!["sarin".into(), "anthrax".into()],
            compression: Compression::None,
            level: 0,
        };
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let pa = write_corpus(a.path(), &options).unwrap();
        let pb = write_corpus(b.path(), &options).unwrap();
        assert_eq!(pa.len(), 2);
        let (mut docs, mut hits) = (0, 0);
        for (x, y) in pa.iter().zip(&pb) {
            let data = std::fs::read(x).unwrap();
            assert_eq!(data, std::fs::read(y).unwrap());
            assert!(data.len() >= 1_000_000);
            for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let v: serde_json::Value = serde_json::from_slice(line).unwrap();
                let text = v["text"].as_str().unwrap();
                docs += 1;
                hits += usize::from(text.contains("sarin ") || text.contains("anthrax "));
            }
        }
        let rate = hits as f64 / docs as f64;
        assert!(
            (0.1..0.3).contains(&rate),
            "hit rate {rate} over {docs} docs"
        );
    }
}
