//! What the decisions do: `apply` (a new output directory in which decided documents of review/
//! went where the reviewers said, written by `rethreshold`'s code), `export-labels` (labeled
//! JSONL for `sluice train` and `sluice eval`), disagreements, and a screen's verdict again.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use sluice_audit::outdir::Item;
use sluice_audit::rethreshold::{self, Decided};
use sluice_audit::OutDir;
use sluice_core::records::ReviewCitation;
use sluice_core::stats::Destination;
use sluice_core::Report;

use crate::decisions::{self, agreement, Agreement, DocKey, Standing};
use crate::index::hash_of;
use crate::ReviewError;

/// A decided document, found in the output directory.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub key: DocKey,
    pub id: String,
    /// Where the cascade sent it.
    pub source: Destination,
    pub agreement: Agreement,
    /// The standing decisions, whatever evidence they were made on.
    pub standing: Vec<Standing>,
    /// How many of them were made on evidence that has changed since (not counted).
    pub stale: usize,
    /// The document's line.
    pub raw: Vec<u8>,
}

/// Every document with a standing decision, in shard and line order, with the reviewers'
/// agreement on its current evidence. Walks only the shards that hold one.
pub fn resolve(out: &OutDir) -> Result<Vec<Resolved>, ReviewError> {
    let log = decisions::load(&out.path)?;
    let mut standing = decisions::standing(&log);
    let extractor = out.extractor();
    let mut found = Vec::new();
    for entry in out.done_shards() {
        if !standing.keys().any(|(shard, _)| shard == &entry.name) {
            continue;
        }
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
            let Some(by) = standing.remove(&(entry.name.clone(), line)) else {
                continue;
            };
            let (hash, id) = match &record {
                Some(r) => (
                    hash_of(&serde_json::to_vec(r).expect("a record serializes")),
                    r.id.to_string(),
                ),
                None => (
                    hash_of(raw),
                    extractor
                        .extract(raw)
                        .ok()
                        .and_then(|d| d.id)
                        .unwrap_or_default(),
                ),
            };
            let stale = by.values().filter(|s| s.record_hash != hash).count();
            found.push(Resolved {
                key: (entry.name.clone(), line),
                id,
                source: destination,
                agreement: agreement(&by, &hash),
                standing: by.into_values().collect(),
                stale,
                raw: raw.to_vec(),
            });
        }
    }
    Ok(found)
}

/// Documents on which standing keep and drop decisions meet, whatever evidence they were made on.
pub fn disagreements(resolved: &[Resolved]) -> Vec<&Resolved> {
    resolved
        .iter()
        .filter(|r| {
            let mut kinds = r
                .standing
                .iter()
                .filter_map(|s| s.decision.destination())
                .collect::<Vec<_>>();
            kinds.sort_by_key(|d| d.name());
            kinds.dedup();
            kinds.len() > 1
        })
        .collect()
}

/// What `apply` did.
#[derive(Debug, Default, PartialEq)]
pub struct Applied {
    pub kept: u64,
    pub dropped: u64,
    /// Documents of review/ left there: the reviewers disagree.
    pub disagreed: u64,
    /// Decisions made on evidence that changed since (not applied).
    pub stale: u64,
    /// Decisions on sampled kept/dropped documents (quality control: not moved), and how many
    /// of them overrule the cascade.
    pub sampled: u64,
    pub overruled: u64,
}

/// Writes `output`: the run of `out_dir` with every agreed decision on a document of review/
/// applied (see [`rethreshold::rethreshold`], which writes it, byte for byte as a run would).
pub fn apply(
    out_dir: &Path,
    output: &Path,
    config_dir: Option<PathBuf>,
) -> Result<(Report, Applied), ReviewError> {
    let out = OutDir::open(out_dir)?;
    let mut applied = Applied::default();
    let mut decided = Decided::new();
    for r in resolve(&out)? {
        if r.source == Destination::Review {
            applied.stale += r.stale as u64;
        }
        match (&r.agreement, r.source) {
            (Agreement::Disagreed, Destination::Review) => applied.disagreed += 1,
            (
                Agreement::Agreed {
                    destination,
                    by,
                    citations,
                },
                Destination::Review,
            ) => {
                match destination {
                    Destination::Kept => applied.kept += 1,
                    _ => applied.dropped += 1,
                }
                decided.insert(
                    r.key.clone(),
                    ReviewCitation {
                        decision: *destination,
                        by: by.clone(),
                        decisions: citations.clone(),
                    },
                );
            }
            (Agreement::Agreed { destination, .. }, source) => {
                applied.sampled += 1;
                applied.overruled += u64::from(*destination != source);
            }
            _ => {}
        }
    }
    let options = rethreshold::Options {
        settings: Vec::new(),
        output: output.to_path_buf(),
        config_dir,
        reviewed: decided,
    };
    let report = rethreshold::rethreshold(out_dir, &options)?;
    // The history goes along: the audit records cite it, and it is all there is of who decided.
    copy_reviews(out_dir, output)?;
    Ok((report, applied))
}

/// Copies `OUT/reviews/*.jsonl` to `NEW/reviews/`, byte for byte.
fn copy_reviews(out_dir: &Path, output: &Path) -> Result<(), ReviewError> {
    let from = out_dir.join(decisions::REVIEWS_DIR);
    let Ok(entries) = std::fs::read_dir(&from) else {
        return Ok(());
    };
    let to = output.join(decisions::REVIEWS_DIR);
    std::fs::create_dir_all(&to).map_err(|e| ReviewError::write(&to, e))?;
    for entry in entries {
        let path = entry.map_err(|e| ReviewError::read(&from, e))?.path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            let target = to.join(path.file_name().expect("a file in a directory has a name"));
            std::fs::copy(&path, &target).map_err(|e| ReviewError::write(&target, e))?;
        }
    }
    Ok(())
}

/// Labels of `export-labels`.
#[derive(Clone, Debug)]
pub struct LabelOptions {
    /// The field the label goes to (dots descend into objects).
    pub label_field: String,
    pub keep_label: String,
    pub drop_label: String,
}

/// What `export-labels` wrote.
#[derive(Debug, Default, PartialEq)]
pub struct Exported {
    pub keep: u64,
    pub drop: u64,
    /// Left out: the reviewers disagree.
    pub disagreed: u64,
}

/// Writes every agreed document (of review/ and of the samples) to `to` as labeled JSONL: the
/// document's own JSON object (so that `sluice train` and `sluice eval` read its text, or its
/// chat parts, as the run did) with the label set at `label_field`.
pub fn export_labels(
    out_dir: &Path,
    to: &Path,
    options: &LabelOptions,
) -> Result<Exported, ReviewError> {
    let out = OutDir::open(out_dir)?;
    if options.label_field.is_empty() || options.label_field.split('.').any(str::is_empty) {
        return Err(ReviewError::usage(
            "--label-field",
            format!("`{}` is not a field path", options.label_field),
        ));
    }
    let mut exported = Exported::default();
    let mut lines = Vec::new();
    for r in resolve(&out)? {
        let destination = match &r.agreement {
            Agreement::Agreed { destination, .. } => *destination,
            Agreement::Disagreed => {
                exported.disagreed += 1;
                continue;
            }
            Agreement::Undecided => continue,
        };
        let mut object: serde_json::Value =
            serde_json::from_slice(&r.raw).map_err(|e| ReviewError::Decision {
                path: out_dir.join(&r.key.0),
                line: r.key.1,
                message: format!("the document is not a JSON object: {e}"),
            })?;
        let label = if destination == Destination::Kept {
            exported.keep += 1;
            &options.keep_label
        } else {
            exported.drop += 1;
            &options.drop_label
        };
        set_field(&mut object, &options.label_field, label.as_str().into()).map_err(|m| {
            ReviewError::Decision {
                path: out_dir.join(&r.key.0),
                line: r.key.1,
                message: m,
            }
        })?;
        serde_json::to_writer(&mut lines, &object).expect("a json value serializes");
        lines.push(b'\n');
    }
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(to)?;
        file.write_all(&lines)?;
        file.sync_data()
    };
    write().map_err(|e| ReviewError::write(to, e))?;
    Ok(exported)
}

/// Sets `value` at the dotted `path` of `object`.
fn set_field(
    object: &mut serde_json::Value,
    path: &str,
    value: serde_json::Value,
) -> Result<(), String> {
    let mut here = object;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let serde_json::Value::Object(map) = here else {
            return Err(format!(
                "cannot set the label at `{path}`: not an object there"
            ));
        };
        if parts.peek().is_none() {
            map.insert(part.to_string(), value);
            return Ok(());
        }
        here = map
            .entry(part.to_string())
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
    }
    Ok(())
}

/// A dataset's flagged count with the reviewers' decisions taken in (see [`flagged_after`]).
#[derive(Debug, PartialEq)]
pub struct Recount {
    pub documents: u64,
    pub errors: u64,
    pub flagged_before: u64,
    pub flagged: u64,
    /// Flagged documents the reviewers kept, and kept ones they dropped.
    pub cleared: u64,
    pub added: u64,
    /// The documents the reviewers agreed to keep (shard, line).
    pub kept: std::collections::HashSet<DocKey>,
}

/// The flagged count (dropped + review, + errors when `errors_are_flagged`) after the agreed
/// decisions: a flagged document the reviewers kept is no longer flagged, a kept one they
/// dropped is. Undecided and disputed documents stay as the cascade put them (fail closed).
pub fn flagged_after(out: &OutDir, errors_are_flagged: bool) -> Result<Recount, ReviewError> {
    let report = out.report.as_ref().ok_or_else(|| {
        ReviewError::usage(
            "output directory",
            format!(
                "{} has no report.json (the run did not finish)",
                out.path.display()
            ),
        )
    })?;
    let d = |d: Destination| report.destinations.get(d).documents;
    let errors = d(Destination::Errors);
    let mut flagged = d(Destination::Dropped) + d(Destination::Review);
    if errors_are_flagged {
        flagged += errors;
    }
    let before = flagged;
    let (mut cleared, mut added) = (0, 0);
    let mut kept = std::collections::HashSet::new();
    for r in resolve(out)? {
        if let Agreement::Agreed { destination, .. } = r.agreement {
            if destination == Destination::Kept {
                kept.insert(r.key.clone());
            }
            let was_flagged = r.source != Destination::Kept;
            let is_flagged = destination == Destination::Dropped;
            if was_flagged && !is_flagged {
                cleared += 1;
            } else if !was_flagged && is_flagged {
                added += 1;
            }
        }
    }
    Ok(Recount {
        documents: report.input.documents,
        errors,
        flagged_before: before,
        flagged: before - cleared + added,
        cleared,
        added,
        kept,
    })
}

/// Counts of standing decisions per reviewer: keep, drop, skip.
pub fn per_reviewer(resolved: &[Resolved]) -> BTreeMap<String, [u64; 3]> {
    let mut out: BTreeMap<String, [u64; 3]> = BTreeMap::new();
    for r in resolved {
        for s in &r.standing {
            let slot = out.entry(s.reviewer.clone()).or_default();
            match s.decision {
                decisions::Decision::Keep => slot[0] += 1,
                decisions::Decision::Drop => slot[1] += 1,
                _ => slot[2] += 1,
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decisions::{DecisionRecord, Writer};
    use std::collections::BTreeMap as Map;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// The hazard cascade on fixtures/corpus into `out`.
    fn run_fixture(out: &Path) {
        let config =
            sluice_core::Config::from_file(&repo().join("configs/hazard-cascade.toml")).unwrap();
        let options = sluice_core::RunOptions {
            inputs: vec![repo()
                .join("fixtures/corpus")
                .to_string_lossy()
                .into_owned()],
            output: Some(out.to_path_buf()),
            threads: Some(1),
            force: true,
            progress: None,
            ..Default::default()
        };
        sluice_core::run(&config, &options).unwrap();
    }

    /// Every file under `dir` but the reports (their timings differ), by relative path.
    fn files(dir: &Path) -> Map<String, Vec<u8>> {
        let mut out = Map::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let rel = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if rel != "report.json" && rel != "report.html" {
                    out.insert(rel, std::fs::read(&path).unwrap());
                }
            }
        }
        out
    }

    /// The queued review documents of `out`: (shard, line, id, record hash).
    fn queued(out: &Path) -> Vec<(String, u64, String, String)> {
        let dir = OutDir::open(out).unwrap();
        let queue = crate::index::Queue::build(&dir, &Default::default()).unwrap();
        (0..queue.entries.len())
            .map(|i| {
                let e = &queue.entries[i];
                let record = queue.fetch(i).unwrap().record.unwrap();
                (
                    queue.shard(e).to_string(),
                    e.line,
                    record.id.to_string(),
                    e.hash.clone(),
                )
            })
            .collect()
    }

    fn decide(out: &Path, who: &str, doc: &(String, u64, String, String), decision: Decision) {
        Writer::new(out)
            .append(&DecisionRecord {
                reviewer: who.into(),
                at: decisions::now_utc(),
                id: doc.2.clone(),
                shard: doc.0.clone(),
                line: doc.1,
                source: Destination::Review,
                record_hash: doc.3.clone(),
                decision,
                note: String::new(),
            })
            .unwrap();
    }

    use crate::decisions::Decision;

    #[test]
    fn apply_without_decisions_is_rethreshold_with_unchanged_settings() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        run_fixture(&out);
        let (a, b) = (tmp.path().join("applied"), tmp.path().join("rethresholded"));
        let (report, applied) = apply(&out, &a, None).unwrap();
        assert_eq!(applied, Applied::default());
        let options = rethreshold::Options {
            settings: Vec::new(),
            output: b.clone(),
            config_dir: None,
            reviewed: Decided::new(),
        };
        let again = rethreshold::rethreshold(&out, &options).unwrap();
        assert_eq!(report.destinations, again.destinations);
        assert!(report.reviewed.is_empty());
        assert_eq!(files(&a), files(&b));
        // ... which is the run itself, byte for byte.
        assert_eq!(files(&a), files(&out));
    }

    #[test]
    fn agreed_decisions_move_documents_cite_them_and_are_counted() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        run_fixture(&out);
        let docs = queued(&out);
        assert!(docs.len() >= 4, "{docs:?}");
        decide(&out, "ana", &docs[0], Decision::Keep);
        decide(&out, "bo", &docs[0], Decision::Keep);
        decide(&out, "ana", &docs[1], Decision::Drop);
        // Disputed: stays in review.
        decide(&out, "ana", &docs[2], Decision::Keep);
        decide(&out, "bo", &docs[2], Decision::Drop);
        // Undone: as if never decided.
        decide(&out, "bo", &docs[3], Decision::Drop);
        decide(&out, "bo", &docs[3], Decision::Undo);
        // Decided on a record that is not this one: not applied.
        let mut stale = docs[3].clone();
        stale.3 = "sha256:00".into();
        decide(&out, "cy", &stale, Decision::Keep);

        let before: Report =
            serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
        let new = tmp.path().join("new");
        let (report, applied) = apply(&out, &new, None).unwrap();
        assert_eq!((applied.kept, applied.dropped), (1, 1));
        assert_eq!((applied.disagreed, applied.stale), (1, 1));
        let d = |r: &Report, d: Destination| r.destinations.get(d).documents;
        assert_eq!(
            d(&report, Destination::Review),
            d(&before, Destination::Review) - 2
        );
        assert_eq!(
            d(&report, Destination::Kept),
            d(&before, Destination::Kept) + 1
        );
        assert_eq!(
            d(&report, Destination::Dropped),
            d(&before, Destination::Dropped) + 1
        );
        assert_eq!((report.reviewed.kept, report.reviewed.dropped), (1, 1));
        assert_eq!(report.input, before.input);

        // The moved documents' records cite the decisions; the directory reads as any output.
        let dir = OutDir::open(&new).unwrap();
        let mut cited = Map::new();
        dir.select(&Default::default(), None, |j| {
            if let Some(c) = &j.record.review {
                cited.insert(j.record.id.to_string(), (j.record.decision, c.clone()));
            }
            Ok(())
        })
        .unwrap();
        let (decision, citation) = &cited[&docs[0].2];
        assert_eq!(*decision, Destination::Kept);
        assert_eq!(citation.by, ["ana", "bo"]);
        assert_eq!(
            citation.decisions,
            ["reviews/ana.jsonl:1", "reviews/bo.jsonl:1"]
        );
        assert_eq!(cited[&docs[1].2].0, Destination::Dropped);
        assert_eq!(cited.len(), 2);
        assert_eq!(
            std::fs::read(new.join("reviews/ana.jsonl")).unwrap(),
            std::fs::read(out.join("reviews/ana.jsonl")).unwrap()
        );
        // The disputed document is still queued in the new directory; the moved ones are not.
        let left: Vec<String> = queued(&new).into_iter().map(|d| d.2).collect();
        assert!(left.contains(&docs[2].2) && !left.contains(&docs[0].2));

        // A rethreshold of the applied output keeps the reviewers' decisions.
        let again = tmp.path().join("again");
        let options = rethreshold::Options {
            settings: Vec::new(),
            output: again.clone(),
            config_dir: None,
            reviewed: Decided::new(),
        };
        let report2 = rethreshold::rethreshold(&new, &options).unwrap();
        assert_eq!(report2.destinations, report.destinations);
        assert_eq!(report2.reviewed, report.reviewed);
        let (mut a, mut b) = (files(&new), files(&again));
        a.retain(|k, _| !k.starts_with("reviews/"));
        b.retain(|k, _| !k.starts_with("reviews/"));
        assert_eq!(a, b);
    }

    #[test]
    fn exported_labels_are_read_by_train_and_eval_as_they_are() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        run_fixture(&out);
        let docs = queued(&out);
        decide(&out, "ana", &docs[0], Decision::Keep);
        decide(&out, "ana", &docs[1], Decision::Drop);
        decide(&out, "ana", &docs[2], Decision::Skip);
        let labels = tmp.path().join("labels.jsonl");
        let options = LabelOptions {
            label_field: "label".into(),
            keep_label: "benign".into(),
            drop_label: "hazard".into(),
        };
        let exported = export_labels(&out, &labels, &options).unwrap();
        assert_eq!(
            (exported.keep, exported.drop, exported.disagreed),
            (1, 1, 0)
        );
        let dir = OutDir::open(&out).unwrap();
        let file = std::fs::File::open(&labels).unwrap();
        let examples = sluice_core::labeled::read_examples(
            std::io::BufReader::new(file),
            "labels.jsonl",
            &dir.extractor(),
            &sluice_core::document::FieldPath::parse("label").unwrap(),
        )
        .unwrap();
        let got: Vec<&str> = examples.iter().map(|e| e.label.as_str()).collect();
        assert_eq!(got.len(), 2);
        assert!(got.contains(&"benign") && got.contains(&"hazard"));
        // A label path through a non-object is an error naming the document.
        let bad = LabelOptions {
            label_field: "text.label".into(),
            ..options
        };
        let err = export_labels(&out, &labels, &bad).unwrap_err().to_string();
        assert!(err.contains("not an object there"), "{err}");
    }

    #[test]
    fn a_screen_verdict_is_recounted_with_the_decisions() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        run_fixture(&out);
        let docs = queued(&out);
        let dir = OutDir::open(&out).unwrap();
        let before = flagged_after(&dir, true).unwrap();
        assert_eq!(before.flagged, before.flagged_before);
        decide(&out, "ana", &docs[0], Decision::Keep);
        decide(&out, "ana", &docs[1], Decision::Drop);
        let after = flagged_after(&dir, true).unwrap();
        assert_eq!((after.cleared, after.added), (1, 0));
        assert_eq!(after.flagged, before.flagged - 1);
    }
}
