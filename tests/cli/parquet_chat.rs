//! Chat, instruction and multi-field records in Parquet shards: each `fixtures/parquet/chat/`
//! dataset (written by pyarrow, see fixtures/parquet/make_parquet.py) is judged as the same
//! records in JSONL are, row for row; role-limited stages, errors, `audit show`, the HTML report
//! and `rethreshold` on them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sluice_io::ParquetReader;

use super::{json_lines, lines, path_str as path, read_json, repo, run_ok, sluice, stderr, tree};

fn fixture(name: &str) -> PathBuf {
    repo().join("fixtures/parquet/chat").join(name)
}

/// The screen config (configs/finetune-screen.toml: role-limited stages) as a run config with
/// `format`, in `dir`; `edits` are `(from, to)` replacements.
fn config(dir: &Path, format: &str, edits: &[(&str, &str)]) -> PathBuf {
    let mut text = std::fs::read_to_string(repo().join("configs/finetune-screen.toml")).unwrap();
    let start = text.find("\n[screen]").unwrap();
    let end = text.find("\n[input]").unwrap();
    text.replace_range(start..end, "");
    text = text
        .replace(
            "\"lists/",
            &format!("\"{}/", repo().join("configs/lists").display()),
        )
        .replace(
            "format = \"auto\"\nid_field = \"id\"",
            &format!("format = {format:?}\nid_field = \"id\""),
        );
    for (from, to) in edits {
        assert!(text.contains(from), "config has no {from:?}");
        text = text.replace(from, to);
    }
    let path = dir.join(format!("{format}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// The one file under `out/dir`.
fn only_file(out: &Path, dir: &str) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(out.join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{dir}: {files:?}");
    files.pop().unwrap()
}

/// Records without what says where in which shard they are (`shard`, `line`, `offset`, `row`,
/// `row_group`, and the shard's name in a default id, `shard:line`).
fn placeless(records: Vec<Value>) -> Vec<Value> {
    records
        .into_iter()
        .map(|mut r| {
            let object = r.as_object_mut().unwrap();
            let shard = object["shard"].as_str().unwrap().to_string();
            if let Some(line) = object["id"].as_str().and_then(|id| id.strip_prefix(&shard)) {
                object["id"] = line.into();
            }
            for key in ["shard", "line", "offset", "row", "row_group", "bytes"] {
                object.remove(key);
            }
            r
        })
        .collect()
}

/// The rows of a kept/dropped/review output as JSON values: a JSONL output's lines, a Parquet
/// output's rows (every column).
fn rows(file: &Path) -> Vec<Value> {
    if !file.to_string_lossy().ends_with(".parquet") {
        return lines(file)
            .iter()
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
    }
    let reader = ParquetReader::open(file).unwrap();
    let columns: Vec<String> = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut out = Vec::new();
    for group in 0..reader.row_groups() {
        for batch in reader.batches(group, 100).unwrap() {
            let batch = batch.unwrap();
            for row in 0..batch.num_rows() {
                out.push(sluice_core::rows::row_json(&batch, row, &columns));
            }
        }
    }
    out
}

/// What a run of `input` came to: its report and, per destination, its rows and records.
struct Outcome {
    report: Value,
    /// kept, dropped, review rows.
    rows: [Vec<Value>; 3],
    audit: Vec<Value>,
    errors: Vec<Value>,
}

fn run(config: &Path, input: &Path, out: &Path) -> Outcome {
    let report = run_ok(config, &[input], out, &[]);
    Outcome {
        report,
        rows: ["kept", "dropped", "review"].map(|d| rows(&only_file(out, d))),
        audit: json_lines(&only_file(out, "audit")),
        errors: json_lines(&only_file(out, "errors")),
    }
}

fn ids(rows: &[Value]) -> Vec<&str> {
    rows.iter()
        .map(|r| r["id"].as_str().unwrap_or("?"))
        .collect()
}

fn errors(outcome: &Outcome) -> Vec<(u64, &str, &str)> {
    outcome
        .errors
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap(),
                e["kind"].as_str().unwrap(),
                e["error"].as_str().unwrap(),
            )
        })
        .collect()
}

#[test]
fn parquet_chat_rows_are_the_documents_their_jsonl_records_are() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, format) in [
        ("chat", "chat"),
        ("parts", "chat"),
        ("sharegpt", "sharegpt"),
        ("alpaca", "alpaca"),
        ("prompt-completion", "prompt-completion"),
    ] {
        let dir = tmp.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        let config = config(
            &dir,
            format,
            &[("audit = \"flagged\"", "audit = \"matched\"")],
        );
        let jsonl = run(
            &config,
            &fixture(&format!("{name}.jsonl")),
            &dir.join("jsonl"),
        );
        let parquet = run(
            &config,
            &fixture(&format!("{name}.parquet")),
            &dir.join("parquet"),
        );
        assert!(!jsonl.audit.is_empty(), "{name}: every document audited");
        assert_eq!(
            placeless(parquet.audit.clone()),
            placeless(jsonl.audit.clone()),
            "{name}: the same verdicts, evidence, spans, parts and roles"
        );
        // Each record points at its row.
        for record in &parquet.audit {
            assert_eq!(
                record["line"],
                record["row"].as_u64().unwrap() + 1,
                "{name}"
            );
        }
        assert_eq!(errors(&parquet), errors(&jsonl), "{name}: the same errors");
        assert_eq!(parquet.rows, jsonl.rows, "{name}: the same rows everywhere");
        // And pyarrow reads the outputs back as the input split by the records.
        super::parquet::pyarrow_check(&dir.join("parquet"), &[]);
        // Counts are equal (bytes are not: a JSONL shard counts its lines, a Parquet one its
        // texts).
        for key in ["kept", "dropped", "review", "errors"] {
            let documents = |o: &Outcome| o.report["destinations"][key]["documents"].clone();
            assert_eq!(documents(&parquet), documents(&jsonl), "{name}: {key}");
        }
        assert_eq!(
            parquet.report["input"]["documents"],
            jsonl.report["input"]["documents"]
        );
        assert_eq!(parquet.report["error_kinds"], jsonl.report["error_kinds"]);
        assert_eq!(
            parquet.report["stages"], jsonl.report["stages"],
            "{name}: stages"
        );
        let accounted: u64 = ["kept", "dropped", "review", "errors"]
            .iter()
            .map(|d| {
                parquet.report["destinations"][d]["documents"]
                    .as_u64()
                    .unwrap()
            })
            .sum();
        assert_eq!(
            accounted,
            parquet.report["input"]["documents"].as_u64().unwrap()
        );
    }
}

#[test]
fn role_limited_stages_judge_parquet_chat_rows_by_role() {
    let tmp = tempfile::tempdir().unwrap();
    let sharegpt_config = config(tmp.path(), "sharegpt", &[]);
    let config = config(tmp.path(), "chat", &[]);
    let out = tmp.path().join("out");
    let chat = run(&config, &fixture("chat.parquet"), &out);
    // c3: stepwise instructions in the answer, dropped; c2 and c9: hazardous requests (user
    // turns) refused, kept and tagged; c4: "nerve" and "agent" in two messages, kept.
    let [kept, dropped, review] = &chat.rows;
    assert_eq!(ids(kept), ["c1", "c2", "c4", "c5", "c9"]);
    assert_eq!(ids(dropped), ["c3"]);
    assert!(review.is_empty());
    assert_eq!(
        errors(&chat),
        [
            (
                6,
                "role_not_string",
                "field `messages[1].role` is null, not a string"
            ),
            (
                7,
                "missing_text",
                "no text in messages[*].content: the fields are missing, null or empty"
            ),
            (
                8,
                "missing_text",
                "no text in messages[*].content: the fields are missing, null or empty"
            ),
        ]
    );
    let tagged: Vec<&str> = chat
        .audit
        .iter()
        .filter(|r| r["decision"] == "kept")
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(tagged, ["c2", "c9"]);
    let c3 = chat.audit.iter().find(|r| r["id"] == "c3").unwrap();
    let spans = c3.to_string();
    assert!(
        spans.contains("\"part\":\"messages[1].content\""),
        "{spans}"
    );
    assert!(spans.contains("\"role\":\"assistant\""), "{spans}");
    let stage = |id: &str| {
        chat.report["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(stage("request-terms")["roles"]["user"]["docs"], 2);
    assert!(stage("request-terms")["roles"]["assistant"].is_null());
    // OpenAI content parts: the answer's second text part is escalated to review.
    let parts = run(
        &config,
        &fixture("parts.parquet"),
        &tmp.path().join("parts"),
    );
    assert_eq!(ids(&parts.rows[2]), ["p1"]);
    let p1 = parts
        .audit
        .iter()
        .find(|r| r["id"] == "p1")
        .unwrap()
        .to_string();
    assert!(
        p1.contains("\"part\":\"messages[1].content[1].text\""),
        "{p1}"
    );
    assert_eq!(
        errors(&parts),
        [(
            3,
            "text_not_string",
            "field `messages[1].content[0]` is a text part whose `text` is null, not a string"
        )]
    );
    // ShareGPT's `human`/`gpt` (dictionary-encoded in a large list) read as user/assistant.
    let sharegpt = run(
        &sharegpt_config,
        &fixture("sharegpt.parquet"),
        &tmp.path().join("sharegpt"),
    );
    assert_eq!(ids(&sharegpt.rows[2]), ["s3"]);
    assert_eq!(
        errors(&sharegpt),
        [(
            4,
            "missing_text",
            "no text in conversations[*].value: the fields are missing, null or empty"
        )]
    );
}

#[test]
fn a_column_that_can_never_hold_the_text_makes_every_row_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path(), "chat", &[]);
    let out = tmp.path().join("out");
    let outcome = run(&config, &fixture("int-messages.parquet"), &out);
    let message = "field `messages[*].content` cannot be read: `messages` is a column of int64, \
                   not of lists";
    assert_eq!(
        errors(&outcome),
        [
            (1, "text_not_string", message),
            (2, "text_not_string", message)
        ]
    );
    assert_eq!(outcome.report["destinations"]["errors"]["documents"], 2);
}

#[test]
fn audit_show_the_html_report_and_rethreshold_read_parquet_chat_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let matched = [("audit = \"flagged\"", "audit = \"matched\"")];
    let chat_config = config(tmp.path(), "chat", &matched);
    let out = tmp.path().join("out");
    run_ok(&chat_config, &[&fixture("parts.parquet")], &out, &[]);
    let shown = sluice(&["audit", path(&out), "show", "--color", "never"]);
    let text = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(shown.status.success(), "{}", stderr(&shown));
    assert!(
        text.contains(
            "── messages[1].content[0].text (assistant)\nIt shows a lab bench.\n\
             ── messages[1].content[1].text (assistant)\nThe label reads: [[anthrax]] culture, and a vial of [[ricin]].\n"
        ),
        "{text}"
    );
    // The HTML report samples dropped documents: c3 of chat.parquet.
    let chat = tmp.path().join("chat");
    run_ok(&chat_config, &[&fixture("chat.parquet")], &chat, &[]);
    let html = std::fs::read_to_string(chat.join("report.html")).unwrap();
    assert!(
        html.contains(
            "<div class=\"part\"><b>messages[1].content (assistant)</b>\nSure: a <mark>step by \
             step guide to nerve agents</mark>"
        ),
        "{html}"
    );
    // Rethreshold: the same outputs as a fresh run of the edited config.
    let re = tmp.path().join("re");
    let result = sluice(&[
        "rethreshold",
        path(&out),
        "--set",
        "hazard-terms.min_distinct=3",
        "--output",
        path(&re),
        "-q",
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    let dir = tmp.path().join("fresh-config");
    std::fs::create_dir(&dir).unwrap();
    let edited = config(&dir, "chat", &matched);
    let text = std::fs::read_to_string(&edited).unwrap();
    let (head, tail) = text.split_at(text.find("id = \"hazard-terms\"").unwrap());
    std::fs::write(
        &edited,
        format!(
            "{head}{}",
            tail.replacen("min_distinct = 1", "min_distinct = 3", 1)
        ),
    )
    .unwrap();
    let fresh = tmp.path().join("fresh");
    run_ok(&edited, &[&fixture("parts.parquet")], &fresh, &[]);
    let strip = |t: BTreeMap<String, Vec<u8>>| {
        t.into_iter()
            .filter(|(k, _)| !k.starts_with("manifest"))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(strip(tree(&re)), strip(tree(&fresh)));
    let report = read_json(&re.join("report.json"));
    assert_eq!(report["destinations"]["review"]["documents"], 0);
}

#[test]
fn screen_reads_parquet_chat_shards_and_eval_refuses_parquet_plainly() {
    let screened = sluice(&[
        "screen",
        path(&fixture("sharegpt.parquet")),
        "--config",
        "configs/finetune-screen.toml",
        "--format",
        "sharegpt",
    ]);
    let text = String::from_utf8_lossy(&screened.stdout).into_owned();
    assert_eq!(
        screened.status.code(),
        Some(2),
        "{text}{}",
        stderr(&screened)
    );
    assert!(text.starts_with("verdict: reject\n"), "{text}");
    assert!(
        text.contains("documents: 4, flagged: 2 (50.00%): 0 dropped, 1 review, 1 errors"),
        "{text}"
    );
    assert!(
        text.contains("sharegpt.parquet:3  review  hazard-terms"),
        "{text}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path(), "chat", &[]);
    let eval = sluice(&[
        "eval",
        "--config",
        path(&config),
        "--data",
        path(&fixture("chat.parquet")),
    ]);
    assert!(!eval.status.success());
    assert!(
        stderr(&eval).contains("a parquet file: labeled data is read as jsonl"),
        "{}",
        stderr(&eval)
    );
}
