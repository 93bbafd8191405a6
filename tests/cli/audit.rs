//! `sluice audit`, `report`, `rethreshold` and `screen`, driven through the real binary.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use super::{
    generate_corpus, json_lines, lines, path_str as path, read_json, repo, sluice, stderr,
    test_config, tree,
};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `sluice run -c CONFIG -i INPUTS... -o OUT -q`, which must succeed.
fn run(config: &Path, inputs: &[&Path], out: &Path) {
    super::run_ok(config, inputs, out, &[]);
}

/// The test config (see `test_config`) with `(from, to)` replacements, written as `dir/name`.
fn edited_config(dir: &Path, name: &str, edits: &[(&str, &str)], append: &str) -> PathBuf {
    let base = test_config(dir, "zstd_level = 3");
    let mut text = std::fs::read_to_string(&base).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "config has no {from:?}");
        text = text.replace(from, to);
    }
    text.push_str(append);
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A classifier stage on the tiny random BERT fixture, appended after the terms stage.
fn classifier_stage(mode: &str, drop: f64, review: f64) -> String {
    format!(
        "\n[[stages]]\ntype = \"classifier\"\nid = \"toxicity\"\nmodel = {:?}\nlabel = \"toxic\"\n\
         mode = \"{mode}\"\ndrop_threshold = {drop}\nreview_threshold = {review}\n",
        repo().join("fixtures/models/bert")
    )
}

/// Input texts of the fixture corpus by id.
fn fixture_texts() -> std::collections::BTreeMap<String, String> {
    let mut texts = std::collections::BTreeMap::new();
    for shard in super::SHARDS {
        for line in lines(&repo().join("fixtures/corpus").join(shard)) {
            if let Ok(v) = serde_json::from_slice::<Value>(&line) {
                if let (Some(id), Some(text)) = (v["id"].as_str(), v["text"].as_str()) {
                    texts.insert(id.to_string(), text.to_string());
                }
            }
        }
    }
    texts
}

#[test]
fn summary_counts_every_shard_reason_and_term() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    assert!(super::run_fixtures(&out, &[]).status.success());
    let result = sluice(&["audit", path(&out), "summary"]);
    assert!(result.status.success(), "{}", stderr(&result));
    let text = stdout(&result);
    let report = read_json(&out.join("report.json"));
    // The per-shard table has one row per shard with the manifest's counts.
    let table: Vec<&str> = text
        .split("per shard:\n")
        .nth(1)
        .expect("per-shard section")
        .lines()
        .skip(1)
        .collect();
    let rows: Vec<Vec<&str>> = table
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            ["clean.jsonl", "6", "6", "0", "0", "0", "1"],
            ["hazard.jsonl.zst", "8", "2", "1", "5", "0", "6"],
            ["malformed.jsonl", "11", "3", "1", "0", "7", "1"],
            ["unicode.jsonl.gz", "6", "2", "0", "4", "0", "4"],
        ]
    );
    assert!(text.contains(&format!(
        "audit records: {}",
        report["audited"].as_u64().unwrap()
    )));
    for expected in [
        "keyword-rules/stepwise-weapon-instructions",
        "hazard-terms",
        "per term category",
        "chem",
        "sarin",
        "(no record has a classifier score)",
    ] {
        assert!(text.contains(expected), "no {expected:?} in\n{text}");
    }
    let dropped = text
        .lines()
        .find(|l| l.trim_start().starts_with("dropped"))
        .unwrap();
    assert_eq!(dropped.split_whitespace().nth(1), Some("2"));
    // `sarin` is the most frequent term: in 4 documents.
    let top = text.split("top matched terms:\n").nth(1).unwrap();
    assert!(top.lines().next().unwrap().trim().starts_with("sarin"));
    assert!(top.lines().next().unwrap().contains(" 4 documents"));
}

#[test]
fn show_marks_unicode_spans_and_colours_only_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    assert!(super::run_fixtures(&out, &[]).status.success());

    // Piped: plain markers, exactly around the multi-byte matches of the gzip shard.
    let result = sluice(&["audit", path(&out), "show", "--id", "u1"]);
    assert!(result.status.success(), "{}", stderr(&result));
    let text = stdout(&result);
    assert!(!text.contains('\x1b'), "colour on a pipe: {text:?}");
    assert!(
        text.contains("[[Ｓａｒｉｎ]] und [[Tabun]] sind Nervenkampfstoffe."),
        "{text}"
    );
    assert!(text.contains("hazard-terms (terms): escalate"), "{text}");
    let result = sluice(&["audit", path(&out), "show", "--id", "u4"]);
    assert!(stdout(&result).contains("（[[sarin]]）") || stdout(&result).contains("([[sarin]])"));
    assert!(stdout(&result).contains("[[VX nerve agent]]"));

    // Forced colour.
    let result = sluice(&[
        "audit",
        path(&out),
        "show",
        "--id",
        "u1",
        "--color",
        "always",
    ]);
    assert!(stdout(&result).contains("\x1b[1;31mＳａｒｉｎ\x1b[0m"));

    // On a real terminal (util-linux `script` gives the command a pty), colour by default.
    if Command::new("script").arg("--version").output().is_ok() {
        let command = format!("{} audit {} show --id u1", super::BIN, path(&out));
        let result = Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .output()
            .unwrap();
        let text = stdout(&result);
        assert!(
            text.contains("\x1b[1;31mＳａｒｉｎ\x1b[0m"),
            "no colour on a terminal: {text:?}"
        );
    } else {
        eprintln!("SKIPPED: terminal colour check: `script` (util-linux) is not installed");
    }

    // Filters: a rule, a decision, a term, a category.
    let list = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["audit", path(&out), "show", "--list"];
        args.extend_from_slice(extra);
        let result = sluice(&args);
        assert!(result.status.success(), "{}", stderr(&result));
        stdout(&result)
            .lines()
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .collect()
    };
    assert_eq!(list(&["--decision", "dropped"]), ["h2", "m8"]);
    assert_eq!(
        list(&["--reason", "stepwise-weapon-instructions"]),
        ["h2", "m8"]
    );
    assert_eq!(list(&["--term", "SARIN"]), ["h1", "u1", "u4", "u6"]);
    assert_eq!(list(&["--category", "nuc"]).len(), 1);
    assert_eq!(
        list(&["--stage", "keyword-rules", "--decision", "kept"]),
        ["c5"]
    );
    assert!(list(&["--min-score", "0.5"]).is_empty());
    let bad = sluice(&["audit", path(&out), "show", "--decision", "lost"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn show_writes_terminal_controls_from_the_corpus_visibly() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    std::fs::create_dir(&corpus).unwrap();
    // An id and a text with clear-screen, window-title and clipboard (OSC 52) sequences, a CR
    // and a right-to-left override around two hazard terms.
    let line = serde_json::json!({
        "id": "evil\u{1b}[2J",
        "text": "\u{1b}]0;pwned\u{7}sarin\rand tabun\u{1b}]52;c;ZXZpbA==\u{7} \u{202e}txt",
    });
    std::fs::write(corpus.join("evil.jsonl"), format!("{line}\n")).unwrap();
    let out = tmp.path().join("out");
    run(
        &repo().join("configs/hazard-cascade.toml"),
        &[&corpus],
        &out,
    );
    for color in ["never", "always"] {
        let result = sluice(&["audit", path(&out), "show", "--color", color]);
        assert!(result.status.success(), "{}", stderr(&result));
        let text = stdout(&result);
        assert!(text.contains("evil\\x1b[2J"), "{text:?}");
        assert!(
            text.contains("\\x1b]0;pwned\\x07") && text.contains("\\r"),
            "{text:?}"
        );
        assert!(!text.contains('\r') && !text.contains('\u{7}') && !text.contains('\u{202e}'));
        // The only escape sequences left are the marks of the two terms, in colour.
        let expected = if color == "always" { 4 } else { 0 };
        assert_eq!(text.matches('\x1b').count(), expected, "{color}: {text:?}");
    }
}

#[test]
fn samples_are_deterministic_per_seed() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    assert!(super::run_fixtures(&out, &[]).status.success());
    let sample = |seed: &str| -> Vec<String> {
        let result = sluice(&[
            "audit",
            path(&out),
            "show",
            "--list",
            "--sample",
            "4",
            "--seed",
            seed,
        ]);
        assert!(result.status.success(), "{}", stderr(&result));
        stdout(&result).lines().map(str::to_string).collect()
    };
    let first = sample("7");
    assert_eq!(first.len(), 4);
    assert_eq!(first, sample("7"), "same seed, same sample");
    let distinct: BTreeSet<Vec<String>> = (1..6).map(|s| sample(&s.to_string())).collect();
    assert!(distinct.len() > 1, "the seed changes the sample");
    // Sample members come out in corpus order, each at most once.
    let ids: BTreeSet<&String> = first.iter().collect();
    assert_eq!(ids.len(), 4);
    // More than there are: all of them.
    let result = sluice(&["audit", path(&out), "show", "--list", "--sample", "100"]);
    assert_eq!(stdout(&result).lines().count(), 12);
}

#[test]
fn export_joins_text_from_compressed_shards_as_jsonl_and_csv() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    assert!(super::run_fixtures(&out, &[]).status.success());
    let texts = fixture_texts();

    let file = tmp.path().join("export.jsonl");
    let result = sluice(&["audit", path(&out), "export", "-o", path(&file)]);
    assert!(result.status.success(), "{}", stderr(&result));
    let rows = json_lines(&file);
    assert_eq!(rows.len(), 12);
    for row in &rows {
        let id = row["id"].as_str().unwrap();
        // From the zstd, gzip and plain shards alike: the exact input text.
        assert_eq!(row["text"].as_str(), Some(texts[id].as_str()), "{id}");
        assert_eq!(row["record"]["id"], row["id"]);
        assert!(row["reasons"].as_array().is_some_and(|r| !r.is_empty()));
    }
    assert!(rows.iter().any(|r| r["shard"] == "hazard.jsonl.zst"));
    assert!(rows.iter().any(|r| r["shard"] == "unicode.jsonl.gz"));

    let result = sluice(&[
        "audit",
        path(&out),
        "export",
        "--format",
        "csv",
        "--decision",
        "review",
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    let csv = stdout(&result);
    let mut csv_lines = csv.lines();
    assert_eq!(
        csv_lines.next(),
        Some("id,shard,line,decision,escalated,reasons,terms,score,text")
    );
    let body: Vec<&str> = csv_lines.collect();
    assert_eq!(body.len(), 9);
    let u2 = body.iter().find(|l| l.starts_with("u2,")).unwrap();
    assert!(u2.ends_with(&texts["u2"]), "{u2}");
    assert!(
        u2.contains(",review,true,hazard-terms,ANTHRAX;RICIN,")
            || u2.contains(",review,true,hazard-terms,")
    );
    // A field with a comma is quoted, quotes doubled.
    let quoted: Vec<&&str> = body.iter().filter(|l| l.contains(",\"")).collect();
    for line in quoted {
        assert!(line.ends_with('"'), "{line}");
    }
}

/// A config as `edited_config` makes it: replacements, then text appended.
pub(crate) type Edits<'a> = (&'a [(&'a str, &'a str)], &'a str);

/// In `dir` (created), runs the test config with the `old` and with the `new` edits on `inputs`;
/// re-thresholds the first run with `settings`; asserts the result equals the second run byte
/// for byte (reports aside). Returns the report.
pub(crate) fn assert_rethreshold_equals_fresh_run(
    dir: &Path,
    old: Edits<'_>,
    new: Edits<'_>,
    inputs: &[&Path],
    settings: &[&str],
) -> Value {
    std::fs::create_dir_all(dir).unwrap();
    let config = edited_config(dir, "old.toml", old.0, old.1);
    let new_config = edited_config(dir, "new.toml", new.0, new.1);
    let (config, new_config) = (config.as_path(), new_config.as_path());
    let old = dir.join("old");
    let fresh = dir.join("fresh");
    let redone = dir.join("redone");
    run(config, inputs, &old);
    run(new_config, inputs, &fresh);
    let mut args = vec!["rethreshold", path(&old), "-o", path(&redone)];
    for s in settings {
        args.extend(["--set", s]);
    }
    let result = sluice(&args);
    assert!(result.status.success(), "{}", stderr(&result));
    let (a, b) = (tree(&redone), tree(&fresh));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "same files"
    );
    for (name, bytes) in &a {
        assert!(bytes == &b[name], "{name} differs from a fresh run");
    }
    // The verdicts did change: the test would catch a copy of the old run.
    let old_report = read_json(&old.join("report.json"));
    let new_report = read_json(&redone.join("report.json"));
    assert_ne!(old_report["destinations"], new_report["destinations"]);
    assert_eq!(
        new_report["destinations"],
        read_json(&fresh.join("report.json"))["destinations"]
    );
    assert!(redone.join("report.html").is_file());
    new_report
}

#[test]
fn rethreshold_terms_is_byte_identical_to_a_fresh_run() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    generate_corpus(&corpus, 3, 300, 11);
    let fixtures = repo().join("fixtures/corpus");
    // A shard with a line over max_line_bytes (4096 below): its spill file is carried over too.
    let long = tmp.path().join("long");
    std::fs::create_dir_all(&long).unwrap();
    std::fs::write(
        long.join("long.jsonl"),
        format!(
            "{{\"text\":\"sarin and ricin\"}}\n{{\"text\":\"{}\"}}\n",
            "x".repeat(5000)
        ),
    )
    .unwrap();
    let inputs = [corpus.as_path(), fixtures.as_path(), long.as_path()];
    let small_lines = ("max_line_bytes = 33554432", "max_line_bytes = 4096");

    // Raising a threshold works from the default flagged audit.
    let dir = tmp.path().join("raise");
    assert_rethreshold_equals_fresh_run(
        &dir,
        (&[small_lines], ""),
        (
            &[small_lines, ("min_distinct = 2 ", "min_distinct = 3 ")],
            "",
        ),
        &inputs,
        &["hazard-terms.min_distinct=3"],
    );
    let redone = tree(&dir.join("redone"));
    assert!(
        redone
            .keys()
            .any(|k| k.starts_with("oversized/") && k.ends_with("long/long.jsonl")),
        "the spill file was carried over: {:?}",
        redone.keys().collect::<Vec<_>>()
    );

    // Lowering one needs the below-threshold evidence: output.audit = "matched".
    let matched = ("audit = \"flagged\"", "audit = \"matched\"");
    assert_rethreshold_equals_fresh_run(
        &tmp.path().join("lower"),
        (&[matched], ""),
        (&[matched, ("min_distinct = 2 ", "min_distinct = 1 ")], ""),
        &inputs,
        &["terms.min_distinct=1"],
    );
}

#[test]
fn rethreshold_classifier_is_byte_identical_to_a_fresh_run() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    generate_corpus(&corpus, 2, 60, 5);
    let fixtures = repo().join("fixtures/corpus");
    let inputs = [corpus.as_path(), fixtures.as_path()];

    // Every document scored (mode = "all"), all evidence recorded; lower both thresholds. The
    // random fixture model scores between about 0.1 and 0.35.
    let matched = ("audit = \"flagged\"", "audit = \"matched\"");
    let report = assert_rethreshold_equals_fresh_run(
        &tmp.path().join("all"),
        (&[matched], &classifier_stage("all", 0.9, 0.5)),
        (&[matched], &classifier_stage("all", 0.25, 0.2)),
        &inputs,
        &[
            "classifier.drop_threshold=0.25",
            "toxicity.review_threshold=0.2",
        ],
    );
    let classifier = &report["stages"][2];
    assert_eq!(classifier["id"], "toxicity");
    assert!(classifier["dropped"].as_u64().unwrap() > 0);
    assert!(classifier["reviewed"].as_u64().unwrap() > 0);

    // The cascade (only escalated documents scored) with the default flagged audit: every
    // scored document was escalated, hence recorded, so the thresholds may go down too.
    assert_rethreshold_equals_fresh_run(
        &tmp.path().join("escalated"),
        (&[], &classifier_stage("escalated", 0.9, 0.5)),
        (&[], &classifier_stage("escalated", 0.25, 0.18)),
        &inputs,
        &[
            "toxicity.drop_threshold=0.25",
            "toxicity.review_threshold=0.18",
        ],
    );

    // A text threshold and the classifier's together: fewer documents reach the model, so the
    // fresh run batches them differently; a document's score must not depend on its batch.
    let report = assert_rethreshold_equals_fresh_run(
        &tmp.path().join("together"),
        (&[], &classifier_stage("escalated", 0.9, 0.5)),
        (
            &[("min_distinct = 2 ", "min_distinct = 3 ")],
            &classifier_stage("escalated", 0.25, 0.18),
        ),
        &inputs,
        &[
            "hazard-terms.min_distinct=3",
            "toxicity.drop_threshold=0.25",
            "toxicity.review_threshold=0.18",
        ],
    );
    assert!(report["stages"][2]["evaluated"].as_u64().unwrap() > 0);
}

#[test]
fn rethreshold_finds_relative_term_lists_through_the_recorded_config_dir() {
    // `configs/hazard-cascade.toml` names its list relative to itself; the run is made from the
    // repository and re-thresholded from elsewhere, with no --config-dir.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    run(
        Path::new("configs/hazard-cascade.toml"),
        &[Path::new("fixtures/corpus")],
        &out,
    );
    let manifest = read_json(&out.join("manifest.json"));
    assert_eq!(
        Path::new(manifest["config_dir"].as_str().unwrap()),
        std::path::absolute(repo().join("configs")).unwrap()
    );
    let elsewhere = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(args)
            .current_dir(tmp.path())
            .output()
            .unwrap()
    };
    let redone = elsewhere(&[
        "rethreshold",
        "out",
        "--set",
        "hazard-terms.min_distinct=3",
        "-o",
        "redone",
        "-q",
    ]);
    assert!(redone.status.success(), "{}", stderr(&redone));
    // An explicit --config-dir still wins, and a wrong one is refused, naming where it looked.
    let wrong = elsewhere(&[
        "rethreshold",
        "out",
        "--set",
        "hazard-terms.min_distinct=3",
        "-o",
        "wrong",
        "--config-dir",
        ".",
    ]);
    assert_eq!(wrong.status.code(), Some(2), "{}", stderr(&wrong));
    assert!(
        stderr(&wrong).contains("--config-dir"),
        "{}",
        stderr(&wrong)
    );
}

#[test]
fn rethreshold_refuses_what_the_audit_cannot_tell_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let config = edited_config(
        tmp.path(),
        "c.toml",
        &[],
        &classifier_stage("all", 0.9, 0.5),
    );
    run(&config, &[&repo().join("fixtures/corpus")], &out);
    let new = tmp.path().join("new");
    let attempt = |setting: &str| {
        let result = sluice(&[
            "rethreshold",
            path(&out),
            "--set",
            setting,
            "-o",
            path(&new),
        ]);
        assert!(!new.exists(), "{setting}: output left behind");
        (result.status.code(), stderr(&result))
    };
    // Flagged audit: documents with one term (below min_distinct = 2) have no record.
    let (code, message) = attempt("hazard-terms.min_distinct=1");
    assert_eq!(code, Some(2));
    assert!(message.contains("output.audit = \"matched\""), "{message}");
    // mode = "all" with a flagged audit: unflagged scored documents have no record either.
    let (code, message) = attempt("toxicity.review_threshold=0.1");
    assert_eq!(code, Some(2), "{message}");
    assert!(message.contains("toxicity.review_threshold"), "{message}");
    // A document dropped by the rules has no evidence from the stages after them.
    let (code, message) = attempt("keyword-rules.stepwise-weapon-instructions.min_matches=5");
    assert_eq!(code, Some(2));
    assert!(
        message.contains("was dropped by stage keyword-rules"),
        "{message}"
    );
    // Unknown stage and key, bad value, inverted thresholds.
    for (setting, expected) in [
        ("nosuch.min_distinct=3", "no stage `nosuch`"),
        ("hazard-terms.max_distinct=3", "no threshold `max_distinct`"),
        ("hazard-terms.min_distinct=x", "not an integer"),
        ("toxicity.review_threshold=0.95", "at most drop_threshold"),
        ("min_distinct", "expected KEY=VALUE"),
    ] {
        let (code, message) = attempt(setting);
        assert_eq!(code, Some(2), "{setting}: {message}");
        assert!(message.contains(expected), "{setting}: {message}");
        assert_eq!(message.lines().count(), 1, "{message}");
    }
}

/// Headless Chromium, when installed (`.ci/run` installs Debian's `chromium`).
fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find(|name| {
            Command::new(name)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(PathBuf::from)
}

/// The DOM after load, as the browser serializes it.
fn dump_dom(browser: &Path, page: &Path) -> String {
    let result = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--virtual-time-budget=5000",
            &format!(
                "--user-data-dir={}",
                page.parent().unwrap().join("chromium-profile").display()
            ),
            "--dump-dom",
        ])
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(result.status.success(), "{}", stderr(&result));
    stdout(&result)
}

/// The attributes of the element whose `id` is `id`, from a serialized DOM.
fn element<'a>(dom: &'a str, id: &str) -> Option<&'a str> {
    let at = dom.find(&format!("id=\"{id}\""))?;
    let start = dom[..at].rfind('<')?;
    let end = at + dom[at..].find('>')?;
    Some(&dom[start..end])
}

fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    Some(&tag[at..at + tag[at..].find('"')?])
}

#[test]
fn report_html_renders_in_a_browser_and_runs_no_corpus_script() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    // Dropped by the rules, so it is in the sampled table; a term document for the charts.
    let hostile = [
        r#"{"id":"x1","text":"A step-by-step plan for nerve agents <script>document.title='pwned-script'</script> <img src=x onerror=\"document.title='pwned-img'\"> & sarin"}"#,
        r#"{"id":"x2","text":"Sarin and tabun</td></tr></table><script>document.title='pwned-2'</script>"}"#,
        r#"{"id":"x3","text":"nothing to see"}"#,
    ];
    std::fs::write(corpus.join("hostile.jsonl"), hostile.join("\n") + "\n").unwrap();
    let out = tmp.path().join("out");
    let config = edited_config(
        tmp.path(),
        "c.toml",
        &[],
        &classifier_stage("escalated", 0.9, 0.1),
    );
    run(&config, &[&corpus, &repo().join("fixtures/corpus")], &out);
    let page = out.join("report.html");
    let html = std::fs::read_to_string(&page).unwrap();

    // Self-contained: nothing fetched, no script but the page's own.
    for external in [
        "src=\"http",
        "href=\"http",
        "src=\"//",
        "<link",
        "@import",
        "url(",
    ] {
        assert!(!html.contains(external), "report.html holds {external:?}");
    }
    assert_eq!(html.matches("<script>").count(), 1, "one inline script");
    assert!(!html.contains("<script>document"), "corpus text is escaped");
    assert!(html.contains("&lt;script&gt;document.title=&#39;pwned-script&#39;&lt;/script&gt;"));
    assert!(html.contains("<mark>"), "matches are highlighted");
    assert!(
        html.contains(">review 0.1</text>") && html.contains(">drop 0.9</text>"),
        "thresholds marked"
    );
    // `sluice report` rewrites the same page.
    std::fs::remove_file(&page).unwrap();
    let result = sluice(&["report", path(&out)]);
    assert!(result.status.success(), "{}", stderr(&result));
    assert!(page.is_file());

    let Some(browser) = chromium() else {
        eprintln!(
            "SKIPPED: report.html browser check: no chromium (apt-get install chromium, as .ci/run does)"
        );
        return;
    };
    let dom = dump_dom(&browser, &page);
    // The page's own script ran (so scripts were not merely all disabled) ...
    let html_tag = &dom[dom.find("<html").unwrap()..];
    let html_tag = &html_tag[..html_tag.find('>').unwrap()];
    // Every chart of the page, the fixed ones and one per stage key family (the terms stage's
    // categories here).
    let charts: Vec<&str> = html
        .split("data-chart=\"")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .collect();
    for fixed in [
        "destinations",
        "reasons",
        "categories",
        "terms",
        "scores",
        "timings",
    ] {
        assert!(charts.contains(&fixed), "no chart {fixed} in {charts:?}");
    }
    assert!(
        charts.iter().any(|id| id.starts_with("keys-")),
        "no per-stage chart in {charts:?}"
    );
    assert_eq!(
        attribute(html_tag, "data-charts-rendered"),
        Some(charts.len().to_string().as_str()),
        "{html_tag} for {charts:?}"
    );
    // ... and measured every chart drawn, with bars, at a non-zero size.
    for &chart in &charts {
        let tag = element(&dom, chart).unwrap_or_else(|| panic!("no chart {chart}"));
        let size = attribute(tag, "data-rendered").unwrap_or_else(|| panic!("{chart} unmeasured"));
        let (w, h) = size.split_once('x').unwrap();
        assert!(
            w.parse::<u32>().unwrap() > 100 && h.parse::<u32>().unwrap() > 10,
            "{chart}: {size}"
        );
        let bars: u32 = attribute(tag, "data-bars-drawn").unwrap().parse().unwrap();
        assert!(bars > 0, "{chart}: no bar drawn");
    }
    // No script from the corpus ran: the title is the page's own, the payloads are text.
    assert!(
        dom.contains("<title>sluice report</title>"),
        "title changed"
    );
    assert!(!dom.contains("pwned-script</title>") && !dom.contains("<title>pwned"));
    assert!(dom.contains("&lt;script&gt;document.title="));
    assert!(dom.contains("&lt;img src=x onerror="));

    // The check itself can fail: the same payload, unescaped and without the policy, runs.
    let control = tmp.path().join("control.html");
    std::fs::write(
        &control,
        "<!DOCTYPE html><html><head><title>control</title></head><body><script>document.title='pwned-script'</script></body></html>",
    )
    .unwrap();
    assert!(dump_dom(&browser, &control).contains("<title>pwned-script</title>"));
}

/// A chat record: a user's question and `answer` from the assistant.
fn chat_record(answer: &str) -> String {
    serde_json::json!({"messages": [
        {"role": "user", "content": "A question."},
        {"role": "assistant", "content": answer},
    ]})
    .to_string()
}

#[test]
fn screen_gives_verdicts_and_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    // The screen config reads chat records and judges what the assistant says.
    let clean: Vec<String> = (0..100)
        .map(|i| {
            chat_record(&format!(
                "Recipe {i}: mix flour and water, bake for {i} minutes."
            ))
        })
        .collect();
    let accept = tmp.path().join("accept.jsonl");
    std::fs::write(&accept, clean.join("\n") + "\n").unwrap();
    let review = tmp.path().join("review.jsonl");
    std::fs::write(
        &review,
        clean.join("\n") + "\n" + &chat_record("Sarin is a nerve agent.") + "\n",
    )
    .unwrap();
    // The corpus fixture's documents as answers.
    let hazard = tmp.path().join("hazard.jsonl");
    let answers: Vec<String> = json_lines(&repo().join("fixtures/corpus/hazard.jsonl.zst"))
        .iter()
        .map(|v| chat_record(v["text"].as_str().unwrap()))
        .collect();
    std::fs::write(&hazard, answers.join("\n") + "\n").unwrap();
    let screen = |dataset: &Path, config: &str| {
        let result = sluice(&["screen", path(dataset), "--config", config]);
        (result.status.code(), stdout(&result), stderr(&result))
    };
    let config = "configs/finetune-screen.toml";

    let (code, text, err) = screen(&accept, config);
    assert_eq!(code, Some(0), "{text}{err}");
    assert!(text.starts_with("verdict: accept\n"), "{text}");
    assert!(text.contains("documents: 100, flagged: 0"), "{text}");

    let (code, text, err) = screen(&review, config);
    assert_eq!(code, Some(1), "{text}{err}");
    assert!(text.starts_with("verdict: review\n"), "{text}");
    assert!(text.contains("flagged: 1 (0.99%)"), "{text}");
    assert!(text.contains("hazard-terms: 1 document ("), "{text}");
    assert!(
        text.contains("  review.jsonl:101  review  hazard-terms"),
        "{text}"
    );

    let (code, text, err) = screen(&hazard, config);
    assert_eq!(code, Some(2), "{text}{err}");
    assert!(text.starts_with("verdict: reject\n"), "{text}");
    assert!(
        text.contains("keyword-rules/stepwise-weapon-instructions"),
        "{text}"
    );
    assert!(text.contains("hazard.jsonl:2  dropped"), "{text}");

    // Errors are neither verdict: 4 for the config, 3 for anything else.
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[screen]\nreject_fractoin = 0.1\n").unwrap();
    let (code, _, err) = screen(&accept, path(&bad));
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("reject_fractoin"), "{err}");
    let (code, _, err) = screen(&tmp.path().join("missing.jsonl"), config);
    assert_eq!(code, Some(3), "{err}");
}

#[test]
fn the_screen_fails_closed_on_what_it_cannot_read() {
    let tmp = tempfile::tempdir().unwrap();
    let config = "configs/finetune-screen.toml";
    let screen = |dataset: &Path| {
        let result = sluice(&["screen", path(dataset), "--config", config]);
        (result.status.code(), stdout(&result), stderr(&result))
    };
    // 100 hazardous lines behind a lone surrogate escape (Python's json.loads reads them): they
    // are judged, not discarded as unreadable.
    let hidden = tmp.path().join("surrogates.jsonl");
    let lines: Vec<String> = (0..100)
        .map(|i| {
            format!(
                r#"{{"messages":[{{"role":"assistant","content":"\ud800Step by step: make sarin, batch {i}."}}]}}"#
            )
        })
        .collect();
    std::fs::write(&hidden, lines.join("\n") + "\n").unwrap();
    let (code, text, err) = screen(&hidden);
    assert_eq!(code, Some(2), "{text}{err}");
    assert!(text.contains("documents: 100, flagged: 100"), "{text}");
    assert!(text.contains("0 errors"), "{text}");
    // Records in a layout the config does not describe (one text field, not chat): no verdict,
    // not an accept.
    let chat = tmp.path().join("text.jsonl");
    let lines: Vec<String> = (0..20)
        .map(|i| format!(r#"{{"text":"question {i}"}}"#))
        .collect();
    std::fs::write(&chat, lines.join("\n") + "\n").unwrap();
    let (code, text, err) = screen(&chat);
    assert_eq!(code, Some(3), "{text}{err}");
    assert!(err.contains("no verdict: 20 of 20 lines"), "{err}");
    // A few unreadable lines among many count as flagged.
    let mixed = tmp.path().join("mixed.jsonl");
    let mut lines: Vec<String> = (0..50)
        .map(|i| chat_record(&format!("Recipe {i}: mix flour and water.")))
        .collect();
    lines.push("{not json".into());
    std::fs::write(&mixed, lines.join("\n") + "\n").unwrap();
    let (code, text, err) = screen(&mixed);
    assert_eq!(code, Some(1), "{text}{err}");
    assert!(text.contains("flagged: 1 ("), "{text}");
    // An empty dataset is not accepted either.
    let empty = tmp.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    assert_eq!(screen(&empty).0, Some(3));
}

#[test]
fn audit_commands_reject_what_is_not_an_output_directory() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [
        vec!["audit", path(tmp.path()), "summary"],
        vec!["report", path(tmp.path())],
    ] {
        let result = sluice(&args);
        assert_eq!(result.status.code(), Some(2));
        assert!(stderr(&result).contains("not a sluice output directory"));
    }
}
