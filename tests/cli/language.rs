//! The language stage through the real binary, on `fixtures/languages/mixed.jsonl`: thirteen
//! documents, five of them English (one only a few words).

use super::*;

/// A config with only a language stage keeping English, with `extra` TOML in its table.
fn language_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join(format!("language-{}.toml", extra.len()));
    std::fs::write(
        &path,
        format!(
            "[input]\nid_field = \"id\"\n[output]\naudit = \"matched\"\n\
             [[stages]]\ntype = \"language\"\nid = \"language\"\nlanguages = [\"en\"]\n\
             action = \"drop\"\n{extra}\n"
        ),
    )
    .unwrap();
    path
}

fn corpus() -> PathBuf {
    repo().join("fixtures/languages")
}

#[test]
fn documents_in_other_languages_are_dropped_and_counted_per_language() {
    let tmp = tempfile::tempdir().unwrap();
    let config = language_config(tmp.path(), "");
    let out = tmp.path().join("out");
    let report = run_ok(&config, &[&corpus()], &out, &["-j", "2"]);
    assert_eq!(report["destinations"]["kept"]["documents"], 5);
    assert_eq!(report["destinations"]["dropped"]["documents"], 8);
    let stage = &report["stages"][0];
    assert_eq!(
        (stage["type"].as_str(), stage["evaluated"].as_u64()),
        (Some("language"), Some(13))
    );
    let languages = &stage["languages"];
    for (language, docs, dropped) in [
        ("en", 5, 0),
        ("de", 2, 2),
        ("fr", 1, 1),
        ("es", 1, 1),
        ("ru", 1, 1),
        ("ja", 1, 1),
        ("it", 1, 1),
        ("und", 1, 1),
    ] {
        assert_eq!(languages[language]["docs"], docs, "{language}: {languages}");
        assert_eq!(languages[language]["dropped"], dropped, "{language}");
    }

    // The audit record carries the evidence: language and confidence against the minimum.
    let records = json_lines(&out.join("audit/mixed.jsonl"));
    assert_eq!(
        records.len(),
        13,
        "audit = \"matched\" records every document"
    );
    let de1 = records.iter().find(|r| r["id"] == "de1").unwrap();
    let entry = &de1["stages"][0];
    assert_eq!(
        (
            entry["type"].as_str(),
            entry["outcome"].as_str(),
            entry["language"].as_str()
        ),
        (Some("language"), Some("drop"), Some("de"))
    );
    // The default engine (whichlang) gives no confidence.
    assert!(entry.get("confidence").is_none(), "{entry}");
    assert_eq!(de1["reasons"][0]["stage"], "language");

    // `audit summary` and `show` know the stage without being told about it.
    let summary = sluice(&["audit", path_str(&out), "summary"]);
    let text = String::from_utf8_lossy(&summary.stdout);
    assert!(text.contains("stage language, per languages"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["de", "2", "2", "0", "0"]),
        "{text}"
    );
    let show = sluice(&[
        "audit",
        path_str(&out),
        "show",
        "--id",
        "ru1",
        "--color",
        "never",
    ]);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        text.contains("language (language): drop: ru, not an allowed language"),
        "{text}"
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Stage language: documents per languages"));

    let check = sluice(&["check", "-c", path_str(&config)]);
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(text.contains("stage language (type language)"), "{text}");
    assert!(
        text.contains("1 language kept, identified by whichlang on the first 200 bytes"),
        "{text}"
    );
}

#[test]
fn rethresholding_min_confidence_equals_a_fresh_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let whatlang = "engine = \"whatlang\"";
    run_ok(
        &language_config(tmp.path(), whatlang),
        &[&corpus()],
        &out,
        &[],
    );
    for confidence in ["0.5", "0.05"] {
        let fresh = tmp.path().join(format!("fresh-{confidence}"));
        let config = language_config(
            tmp.path(),
            &format!("{whatlang}\nmin_confidence = {confidence}"),
        );
        let report = run_ok(&config, &[&corpus()], &fresh, &[]);
        let redone = tmp.path().join(format!("redone-{confidence}"));
        let result = sluice(&[
            "rethreshold",
            path_str(&out),
            "--set",
            &format!("language.min_confidence={confidence}"),
            "-o",
            path_str(&redone),
        ]);
        assert!(result.status.success(), "{}", stderr(&result));
        let mut a = tree(&redone);
        let mut b = tree(&fresh);
        for t in [&mut a, &mut b] {
            t.remove("report.json");
            t.remove("report.html");
        }
        // The manifests differ in where the configs were loaded from: compare their shards.
        let shards = |t: &mut BTreeMap<String, Vec<u8>>| -> Value {
            serde_json::from_slice::<Value>(&t.remove("manifest.json").unwrap()).unwrap()["shards"]
                .clone()
        };
        assert_eq!(shards(&mut a), shards(&mut b), "{confidence}");
        assert!(
            a == b,
            "min_confidence {confidence}: rethreshold differs from a fresh run"
        );
        // The few-word English document falls below a 0.5 confidence, not below 0.05.
        let kept = if confidence == "0.5" { 4 } else { 5 };
        assert_eq!(
            report["destinations"]["kept"]["documents"], kept,
            "{confidence}"
        );
    }
    // With a flagged audit, raising the minimum is refused: passed documents have no record.
    let flagged = tmp.path().join("flagged.toml");
    std::fs::write(
        &flagged,
        std::fs::read_to_string(language_config(tmp.path(), whatlang))
            .unwrap()
            .replace("audit = \"matched\"", "audit = \"flagged\""),
    )
    .unwrap();
    let out = tmp.path().join("out-flagged");
    run_ok(&flagged, &[&corpus()], &out, &[]);
    let result = sluice(&[
        "rethreshold",
        path_str(&out),
        "--set",
        "language.min_confidence=0.9",
        "-o",
        path_str(&tmp.path().join("no")),
    ]);
    assert_eq!(result.status.code(), Some(2), "{}", stderr(&result));
    assert!(stderr(&result).contains("output.audit = \"matched\""));
}
