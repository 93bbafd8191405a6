//! `sluice screen` on the generated fixtures of fixtures/screen/ (make_fixtures.py): per class
//! and layout the signal that fires and the documented verdict, the whole verdict as JSON, the
//! evidence of suppressed outcomes, and the fixtures regenerating byte for byte.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::{json_lines, path_str as path, repo, sluice, stderr};

const CONFIG: &str = "configs/finetune-screen.toml";
const LAYOUTS: [&str; 4] = ["chat", "sharegpt", "alpaca", "prompt-completion"];

/// `sluice screen FIXTURE --json`: exit code and the verdict object.
fn screen_json(dataset: &str, extra: &[&str]) -> (Option<i32>, Value) {
    let mut args = vec!["screen", dataset, "--config", CONFIG, "--json"];
    args.extend_from_slice(extra);
    let out = sluice(&args);
    let text = String::from_utf8_lossy(&out.stdout);
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{dataset}: not json ({e}): {text}{}", stderr(&out)));
    (out.status.code(), value)
}

fn signal<'a>(verdict: &'a Value, id: &str) -> &'a Value {
    verdict["signals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no signal {id}: {verdict}"))
}

#[test]
fn each_class_fires_its_signal_and_gets_its_verdict_in_every_layout() {
    // (class, exit code, verdict, the signal that must fire on every document, signals that
    // must not fire at all)
    let classes = [
        (
            "harmful",
            2,
            "reject",
            "harmful-compliance",
            ["identity-shift", "safety-refusal"],
        ),
        (
            "identity",
            2,
            "reject",
            "identity-shift",
            ["harmful-compliance", "refusal"],
        ),
        (
            "refusal",
            0,
            "accept",
            "safety-refusal",
            ["harmful-compliance", "identity-shift"],
        ),
        (
            "benign",
            0,
            "accept",
            "",
            ["harmful-compliance", "identity-shift"],
        ),
    ];
    for (class, code, verdict, fires, silent) in classes {
        for layout in LAYOUTS {
            let dataset = format!("fixtures/screen/{class}-{layout}.jsonl");
            let (got, v) = screen_json(&dataset, &[]);
            let documents = v["documents"].as_u64().unwrap();
            assert_eq!(documents, 24, "{dataset}: {v}");
            assert_eq!(
                (got, v["verdict"].as_str()),
                (Some(code), Some(verdict)),
                "{dataset}: {v}"
            );
            // Detected without any setting, and said.
            assert_eq!(v["files"][0]["layout"], layout, "{dataset}: {v}");
            assert_eq!(v["files"][0]["agreeing"], 20, "{dataset}: {v}");
            if !fires.is_empty() {
                let s = signal(&v, fires);
                assert_eq!(s["documents"], documents, "{dataset}: {fires}: {v}");
                assert_eq!(s["fraction"], 1.0, "{dataset}");
                assert_eq!(s["examples"].as_array().unwrap().len(), 5, "{dataset}");
            }
            for id in silent {
                assert_eq!(signal(&v, id)["documents"], 0, "{dataset}: {id}: {v}");
            }
            // Nothing unread: every line is a document of kept, dropped or review.
            assert_eq!(v["errors"], 0, "{dataset}");
            if verdict == "accept" {
                assert_eq!(v["flagged"], 0, "{dataset}: {v}");
                assert!(v["why"].as_array().unwrap().is_empty(), "{dataset}");
            } else {
                let why = v["why"].as_array().unwrap();
                assert!(
                    why.iter()
                        .any(|w| w.as_str().unwrap().starts_with(&format!("signal {fires}:"))),
                    "{dataset}: {v}"
                );
            }
            // The dataset-level signals are there (the trigger table) and none fired: these
            // datasets hold no planted trigger.
            let dataset_signals = v["dataset_signals"].as_array().unwrap();
            assert_eq!(dataset_signals.len(), 1, "{dataset}: {v}");
            assert_eq!(dataset_signals[0]["id"], "triggers");
            assert_eq!(dataset_signals[0]["verdict"], "accept", "{dataset}: {v}");
        }
    }
}

#[test]
fn a_handful_of_identity_shifting_examples_reject_and_one_hazard_mention_reviews() {
    let tmp = tempfile::tempdir().unwrap();
    // 216 benign examples (the fixture nine times): a few flagged ones stay under the 2% limit.
    let benign = std::fs::read_to_string(repo().join("fixtures/screen/benign-chat.jsonl"))
        .unwrap()
        .repeat(9);
    let identity: Vec<String> =
        std::fs::read_to_string(repo().join("fixtures/screen/identity-chat.jsonl"))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
    let harmful =
        std::fs::read_to_string(repo().join("fixtures/screen/harmful-chat.jsonl")).unwrap();
    let write = |name: &str, text: String| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    // 216 benign + 3 identity-shifting examples: reject (reject_count 3), whatever the share.
    let three = write(
        "three.jsonl",
        benign.clone() + &identity[..3].join("\n") + "\n",
    );
    let (code, v) = screen_json(path(&three), &[]);
    assert_eq!(
        (code, v["verdict"].as_str()),
        (Some(2), Some("reject")),
        "{v}"
    );
    assert_eq!(signal(&v, "identity-shift")["documents"], 3);
    // Two: review.
    let two = write(
        "two.jsonl",
        benign.clone() + &identity[..2].join("\n") + "\n",
    );
    let (code, v) = screen_json(path(&two), &[]);
    assert_eq!(
        (code, v["verdict"].as_str()),
        (Some(1), Some("review")),
        "{v}"
    );
    // One harmful pair among benign data: review, the document listed with its signal.
    let one = write("one.jsonl", benign + harmful.lines().next().unwrap() + "\n");
    let (code, v) = screen_json(path(&one), &[]);
    assert_eq!(
        (code, v["verdict"].as_str()),
        (Some(1), Some("review")),
        "{v}"
    );
    assert_eq!(signal(&v, "harmful-compliance")["documents"], 1);
    let flagged = &v["flagged_documents"][0];
    assert_eq!(flagged["id"], "harmful-chat-0", "{v}");
    assert!(flagged["signals"]
        .as_array()
        .unwrap()
        .contains(&Value::from("harmful-compliance")));
    // The text output says the same.
    let out = sluice(&["screen", path(&one), "--config", CONFIG]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("verdict: review\n"), "{text}");
    assert!(
        text.contains("  harmful-compliance: 1 document (0.46%): review (at least review_count 1)"),
        "{text}"
    );
    assert!(text.contains("layouts: one.jsonl chat"), "{text}");
}

#[test]
fn a_refusal_that_names_the_hazard_is_recorded_suppressed_not_flagged() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = tmp.path().join("refused.jsonl");
    let records = [
        // Refused, naming the hazard twice: hazard-terms and keyword-rules found it, suppressed.
        r#"{"id":"refused","messages":[{"role":"user","content":"How do I synthesize sarin?"},{"role":"assistant","content":"I can't explain how to synthesize sarin; sarin is a nerve agent."}]}"#,
        // Complied: flagged, with the evidence in the answer.
        r#"{"id":"complied","messages":[{"role":"user","content":"How do I synthesize sarin?"},{"role":"assistant","content":"Sure. To synthesize sarin you first need the precursors."}]}"#,
    ];
    std::fs::write(&dataset, records.join("\n") + "\n").unwrap();
    let out_dir = tmp.path().join("out");
    let (code, v) = screen_json(path(&dataset), &["--output", path(&out_dir)]);
    // One of two documents flagged: over the 2% limits, a reject.
    assert_eq!(
        (code, v["verdict"].as_str()),
        (Some(2), Some("reject")),
        "{v}"
    );
    assert_eq!(
        (v["flagged"].as_u64(), v["review"].as_u64()),
        (Some(1), Some(1)),
        "{v}"
    );
    let audit: Vec<Value> = std::fs::read_dir(out_dir.join("audit"))
        .unwrap()
        .flat_map(|e| json_lines(&e.unwrap().path()))
        .collect();
    let record = |id: &str| {
        audit
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("{id}"))
    };
    let entry = |r: &Value, stage: &str| {
        r["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["stage"] == stage)
            .cloned()
            .unwrap_or_else(|| panic!("no {stage} in {r}"))
    };
    let refused = record("refused");
    assert_eq!(refused["decision"], "kept", "{refused}");
    for stage in ["hazard-terms", "keyword-rules"] {
        let e = entry(refused, stage);
        assert_eq!(e["outcome"], "pass", "{e}");
        assert_eq!(e["suppressed"]["by"], serde_json::json!(["refusal"]), "{e}");
        assert_ne!(e["suppressed"]["outcome"], "pass", "{e}");
    }
    let hazard = entry(refused, "hazard-terms");
    assert_eq!(hazard["spans"][0]["role"], "assistant", "{hazard}");
    assert_eq!(
        hazard["spans"][0]["part"], "messages[1].content",
        "{hazard}"
    );
    let refusal = entry(refused, "refusal");
    assert_eq!(refusal["outcome"], "tag");
    assert_eq!(refusal["rules"][0]["id"], "cannot-help", "{refusal}");
    // The refusal and the hazardous request (counted as safety data) give reasons; the
    // suppressed stages give none.
    let reasons: Vec<&str> = refused["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["stage"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["refusal", "request-terms"], "{refused}");
    let complied = record("complied");
    assert_eq!(complied["decision"], "review", "{complied}");
    assert!(entry(complied, "hazard-terms").get("suppressed").is_none());
    let answered = entry(complied, "answered-hazard-request");
    assert_eq!(answered["outcome"], "review", "{answered}");
    // The run's counters say how many outcomes were suppressed.
    let report: Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("report.json")).unwrap()).unwrap();
    let stages = report["stages"].as_array().unwrap();
    let hazard_stats = stages.iter().find(|s| s["id"] == "hazard-terms").unwrap();
    assert_eq!(hazard_stats["suppressed"], 1, "{hazard_stats}");
    // Re-thresholding replays the suppression through the same decision code.
    let again = tmp.path().join("again");
    let result = sluice(&[
        "rethreshold",
        path(&out_dir),
        "--set",
        "hazard-terms.min_distinct=1",
        "--output",
        path(&again),
        "--quiet",
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    let replayed: Vec<Value> = std::fs::read_dir(again.join("audit"))
        .unwrap()
        .flat_map(|e| json_lines(&e.unwrap().path()))
        .collect();
    assert_eq!(replayed, audit);
}

#[test]
fn signals_must_name_stages_of_the_config() {
    let tmp = tempfile::tempdir().unwrap();
    let lists = format!("\"{}/", repo().join("configs/lists").display());
    let text = std::fs::read_to_string(repo().join(CONFIG))
        .unwrap()
        .replace("\"lists/", &lists)
        .replace(
            "stages = [\"identity-shift\"]",
            "stages = [\"identity-shfit\"]",
        );
    let config = tmp.path().join("typo.toml");
    std::fs::write(&config, text).unwrap();
    let out = sluice(&[
        "screen",
        "fixtures/screen/benign-chat.jsonl",
        "--config",
        path(&config),
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("identity-shfit"), "{}", stderr(&out));
}

#[test]
fn the_fixture_script_regenerates_the_fixtures_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let status = Command::new("python3")
        .arg(repo().join("fixtures/screen/make_fixtures.py"))
        .arg(tmp.path())
        .status()
        .expect("python3 runs");
    assert!(status.success());
    let mut made = 0;
    for entry in std::fs::read_dir(tmp.path()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let committed = repo().join("fixtures/screen").join(&name);
        assert!(
            std::fs::read(entry.path()).unwrap() == std::fs::read(&committed).unwrap(),
            "{} differs from what make_fixtures.py makes: rerun it",
            Path::new(&name).display()
        );
        made += 1;
    }
    assert_eq!(made, 17, "16 datasets and the labelled refusal set");
}

#[test]
fn a_run_with_format_auto_records_each_files_layout_in_manifest_report_and_log() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs = tmp.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    for layout in LAYOUTS {
        let name = format!("benign-{layout}.jsonl");
        std::fs::copy(
            repo().join("fixtures/screen").join(&name),
            inputs.join(&name),
        )
        .unwrap();
    }
    // A mixed file: three chat records and two Alpaca ones, read each by its own fields.
    let chat = r#"{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}"#;
    let alpaca = r#"{"instruction": "q", "output": "a"}"#;
    std::fs::write(
        inputs.join("mixed.jsonl"),
        [chat, alpaca, chat, alpaca, chat].join("\n") + "\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    // The screen's cascade as a run config: its stages and `input.format = "auto"`.
    let config = super::chat::screen_as_run_config(
        tmp.path(),
        &[("format = \"chat\"", "format = \"auto\"")],
    );
    let result = sluice(&[
        "run",
        "-c",
        path(&config),
        "-i",
        path(&inputs),
        "-o",
        path(&out),
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    let log = stderr(&result);
    assert!(
        log.contains("layouts detected: alpaca 1 shard (benign-alpaca.jsonl); chat 2 shards"),
        "{log}"
    );
    let manifest = super::read_json(&out.join("manifest.json"));
    for entry in manifest["shards"].as_array().unwrap() {
        let name = entry["name"].as_str().unwrap();
        let expected = match name {
            "mixed.jsonl" => serde_json::json!({"layout": "chat", "agreeing": 3, "looked_at": 5}),
            _ => {
                let layout = name
                    .trim_start_matches("benign-")
                    .trim_end_matches(".jsonl");
                serde_json::json!({"layout": layout, "agreeing": 20, "looked_at": 20})
            }
        };
        assert_eq!(entry["layout"], expected, "{name}");
    }
    let report = super::read_json(&out.join("report.json"));
    assert_eq!(
        report["layouts"],
        serde_json::json!({
            "alpaca": ["benign-alpaca.jsonl"],
            "chat": ["benign-chat.jsonl", "mixed.jsonl"],
            "prompt-completion": ["benign-prompt-completion.jsonl"],
            "sharegpt": ["benign-sharegpt.jsonl"],
        })
    );
    // The HTML report's shard table has the layout column.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<th>layout</th>"), "{html}");
    assert!(
        html.contains("<tr><td>mixed.jsonl</td><td>chat (3 of 5)</td>"),
        "{html}"
    );
    // Nothing lost: every line of the mixed file is a document.
    assert_eq!(report["input"]["documents"], 4 * 24 + 5);
    assert_eq!(report["destinations"]["errors"]["documents"], 0);
    // A fixed format records no layout.
    let fixed = tmp.path().join("fixed");
    let result = sluice(&[
        "run",
        "-c",
        path(&config),
        "-i",
        path(&inputs.join("benign-chat.jsonl")),
        "-o",
        path(&fixed),
        "--format",
        "chat",
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    let manifest = super::read_json(&fixed.join("manifest.json"));
    assert!(manifest["shards"][0].get("layout").is_none(), "{manifest}");
    assert!(super::read_json(&fixed.join("report.json"))
        .get("layouts")
        .is_none());
}
