//! Reviewers' decisions: append-only JSONL under `OUT/reviews/`, one file per reviewer
//! (`reviews/NAME.jsonl`), one record per key press. Nothing is ever rewritten: an undo is a new
//! record, so the files are the whole history and two processes never edit the same bytes.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sluice_core::stats::Destination;

use crate::ReviewError;

/// The directory of an output directory that holds the decisions.
pub const REVIEWS_DIR: &str = "reviews";

/// What a reviewer pressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Keep,
    Drop,
    /// Looked at, not decided (counts as done for the reviewer, decides nothing).
    Skip,
    /// Takes back the reviewer's latest decision on the document.
    Undo,
}

impl Decision {
    pub fn parse(s: &str) -> Option<Decision> {
        Some(match s {
            "keep" => Decision::Keep,
            "drop" => Decision::Drop,
            "skip" => Decision::Skip,
            "undo" => Decision::Undo,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Decision::Keep => "keep",
            Decision::Drop => "drop",
            Decision::Skip => "skip",
            Decision::Undo => "undo",
        }
    }

    /// Where a keep or a drop sends the document.
    pub fn destination(self) -> Option<Destination> {
        match self {
            Decision::Keep => Some(Destination::Kept),
            Decision::Drop => Some(Destination::Dropped),
            Decision::Skip | Decision::Undo => None,
        }
    }
}

/// One line of `reviews/NAME.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionRecord {
    pub reviewer: String,
    /// When, in UTC (RFC 3339, seconds).
    pub at: String,
    pub id: String,
    pub shard: String,
    pub line: u64,
    /// Where the cascade sent the document: `review`, or `kept`/`dropped` for a sampled one.
    pub source: Destination,
    /// `sha256:` of the audit record's line (of the document's line for an unaudited kept
    /// document): a decision is about that evidence, and is not applied to a record that changed.
    pub record_hash: String,
    pub decision: Decision,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// A decision as read back, with where it is written.
#[derive(Clone, Debug, PartialEq)]
pub struct Logged {
    pub record: DecisionRecord,
    /// `reviews/NAME.jsonl:LINE`.
    pub citation: String,
}

/// A reviewer name: it names a file, so letters, digits, `.`, `_` and `-` only.
pub fn check_reviewer(name: &str) -> Result<(), ReviewError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ReviewError::usage(
            "reviewer name",
            format!(
                "`{name}`: use 1 to 64 letters, digits, `.`, `_` or `-` (not starting with `.`)"
            ),
        ))
    }
}

/// Every decision under `OUT/reviews/`, in file-name then line order.
pub fn load(out: &Path) -> Result<Vec<Logged>, ReviewError> {
    let dir = out.join(REVIEWS_DIR);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ReviewError::read(&dir, e)),
    };
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let file = std::fs::File::open(&path).map_err(|e| ReviewError::read(&path, e))?;
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| ReviewError::read(&path, e))?;
            if line.trim().is_empty() {
                continue;
            }
            let record: DecisionRecord =
                serde_json::from_str(&line).map_err(|e| ReviewError::Decision {
                    path: path.clone(),
                    line: i as u64 + 1,
                    message: e.to_string(),
                })?;
            out.push(Logged {
                record,
                citation: format!("{REVIEWS_DIR}/{name}:{}", i + 1),
            });
        }
    }
    Ok(out)
}

/// Appends decisions to their reviewers' files.
pub struct Writer {
    dir: PathBuf,
    /// Lines in each reviewer's file, counted once (for the citations).
    lines: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

impl Writer {
    pub fn new(out: &Path) -> Writer {
        Writer {
            dir: out.join(REVIEWS_DIR),
            lines: Default::default(),
        }
    }

    /// Appends `record` to `reviews/REVIEWER.jsonl` in one write (so that appends of two
    /// processes never interleave) and flushes it to disk: a decision survives a crash.
    /// Returns its citation.
    pub fn append(&self, record: &DecisionRecord) -> Result<String, ReviewError> {
        check_reviewer(&record.reviewer)?;
        std::fs::create_dir_all(&self.dir).map_err(|e| ReviewError::write(&self.dir, e))?;
        let name = format!("{}.jsonl", record.reviewer);
        let path = self.dir.join(&name);
        let mut line = serde_json::to_vec(record).expect("a decision serializes");
        line.push(b'\n');
        let mut counts = self.lines.lock().expect("line counts lock");
        let lines = counts
            .entry(name.clone())
            .or_insert_with(|| match std::fs::read(&path) {
                Ok(bytes) => bytes.iter().filter(|b| **b == b'\n').count(),
                Err(_) => 0,
            });
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| ReviewError::write(&path, e))?;
        file.write_all(&line)
            .and_then(|()| file.sync_data())
            .map_err(|e| ReviewError::write(&path, e))?;
        *lines += 1;
        Ok(format!("{REVIEWS_DIR}/{name}:{lines}"))
    }
}

/// A reviewer's standing decision on a document: the last not taken back by an undo.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Standing {
    pub reviewer: String,
    pub decision: Decision,
    pub note: String,
    pub at: String,
    pub record_hash: String,
    #[serde(skip)]
    pub citation: String,
}

/// `(shard, line)`: a document of the output directory.
pub type DocKey = (String, u64);

/// The history of decisions, as stacks per document and reviewer (an undo pops).
#[derive(Default)]
pub struct History {
    stacks: BTreeMap<DocKey, BTreeMap<String, Vec<Standing>>>,
}

impl History {
    pub fn of_log(log: &[Logged]) -> History {
        let mut history = History::default();
        for logged in log {
            history.push(logged);
        }
        history
    }

    pub fn push(&mut self, logged: &Logged) {
        let r = &logged.record;
        let stack = self
            .stacks
            .entry((r.shard.clone(), r.line))
            .or_default()
            .entry(r.reviewer.clone())
            .or_default();
        match r.decision {
            Decision::Undo => {
                stack.pop();
            }
            decision => stack.push(Standing {
                reviewer: r.reviewer.clone(),
                decision,
                note: r.note.clone(),
                at: r.at.clone(),
                record_hash: r.record_hash.clone(),
                citation: logged.citation.clone(),
            }),
        }
    }

    /// The standing decisions on one document, by reviewer.
    pub fn of(&self, shard: &str, line: u64) -> BTreeMap<String, Standing> {
        self.stacks
            .get(&(shard.to_string(), line))
            .map(|by| {
                by.iter()
                    .filter_map(|(name, stack)| stack.last().map(|s| (name.clone(), s.clone())))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Every document's standing decisions, one per reviewer (by name), from the history.
pub fn standing(log: &[Logged]) -> BTreeMap<DocKey, BTreeMap<String, Standing>> {
    let history = History::of_log(log);
    history
        .stacks
        .keys()
        .map(|key| (key.clone(), history.of(&key.0, key.1)))
        .filter(|(_, by)| !by.is_empty())
        .collect()
}

/// What the reviewers decided about one document, together.
#[derive(Clone, Debug, PartialEq)]
pub enum Agreement {
    /// Nobody kept or dropped it (only skips).
    Undecided,
    /// Every keep/drop decision says the same.
    Agreed {
        destination: Destination,
        by: Vec<String>,
        citations: Vec<String>,
    },
    /// Some keep, some drop: it stays where the cascade put it, and is listed.
    Disagreed,
}

/// The agreement of `by`'s decisions that were made on the evidence hashed `hash` (decisions on
/// evidence that changed since are left out).
pub fn agreement(by: &BTreeMap<String, Standing>, hash: &str) -> Agreement {
    let mut destination = None;
    let (mut names, mut citations) = (Vec::new(), Vec::new());
    for s in by.values().filter(|s| s.record_hash == hash) {
        let Some(d) = s.decision.destination() else {
            continue;
        };
        match destination {
            Some(other) if other != d => return Agreement::Disagreed,
            _ => destination = Some(d),
        }
        names.push(s.reviewer.clone());
        citations.push(s.citation.clone());
    }
    match destination {
        None => Agreement::Undecided,
        Some(destination) => Agreement::Agreed {
            destination,
            by: names,
            citations,
        },
    }
}

/// The time now in UTC, RFC 3339 to the second (`2026-12-01T14:23:08Z`), as lock files say it.
pub fn now_utc() -> String {
    sluice_io::utc_timestamp(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(reviewer: &str, line: u64, decision: Decision) -> DecisionRecord {
        DecisionRecord {
            reviewer: reviewer.into(),
            at: now_utc(),
            id: format!("d{line}"),
            shard: "s.jsonl".into(),
            line,
            source: Destination::Review,
            record_hash: "sha256:aa".into(),
            decision,
            note: String::new(),
        }
    }

    #[test]
    fn times_are_rfc3339_utc() {
        let at = |secs| {
            sluice_io::utc_timestamp(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        };
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_796_138_588), "2026-12-01T15:23:08Z");
    }

    #[test]
    fn reviewer_names_must_be_file_names() {
        for good in ["ana", "bo.b", "r_2-x"] {
            check_reviewer(good).unwrap();
        }
        for bad in ["", "../x", "a/b", ".hidden", "a b", &"x".repeat(65)] {
            let err = check_reviewer(bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid reviewer name"), "{err}");
        }
    }

    #[test]
    fn decisions_survive_reading_back_undo_pops_and_disagreement_is_seen() {
        let tmp = tempfile::tempdir().unwrap();
        let writer = Writer::new(tmp.path());
        let mut noted = record("ana", 1, Decision::Drop);
        noted.note = "a \"recipe\"\nreally".into();
        for r in [
            record("ana", 1, Decision::Keep),
            noted.clone(),
            record("ana", 2, Decision::Keep),
            record("ana", 2, Decision::Undo),
            record("bo", 1, Decision::Keep),
            record("bo", 3, Decision::Skip),
            record("ana", 3, Decision::Drop),
        ] {
            writer.append(&r).unwrap();
        }
        let log = load(tmp.path()).unwrap();
        assert_eq!(log.len(), 7);
        assert_eq!(log[1].record, noted);
        assert_eq!(log[1].citation, "reviews/ana.jsonl:2");
        assert_eq!(log[5].citation, "reviews/bo.jsonl:1");
        let standing = standing(&log);
        let one = &standing[&("s.jsonl".to_string(), 1)];
        assert_eq!(one["ana"].decision, Decision::Drop);
        assert_eq!(one["bo"].decision, Decision::Keep);
        assert_eq!(agreement(one, "sha256:aa"), Agreement::Disagreed);
        // ana's keep of line 2 was undone: nobody stands on it.
        assert!(!standing.contains_key(&("s.jsonl".to_string(), 2)));
        let three = &standing[&("s.jsonl".to_string(), 3)];
        match agreement(three, "sha256:aa") {
            Agreement::Agreed {
                destination,
                by,
                citations,
            } => {
                assert_eq!(destination, Destination::Dropped);
                assert_eq!(by, ["ana"]);
                assert_eq!(citations, ["reviews/ana.jsonl:5"]);
            }
            other => panic!("{other:?}"),
        }
        // A decision on other evidence is not counted.
        assert_eq!(agreement(three, "sha256:bb"), Agreement::Undecided);
    }

    #[test]
    fn a_broken_line_is_an_error_naming_its_file_and_line() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(REVIEWS_DIR);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("x.jsonl"), "{\"reviewer\":\"x\"}\n").unwrap();
        let err = load(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("x.jsonl: line 1: missing field"), "{err}");
    }
}
