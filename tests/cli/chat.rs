//! Chat, instruction and multi-field records end to end: every preset with `sluice run` and
//! `sluice screen`, role-limited stages, the no-match-across-parts guarantee, errors, `audit show`,
//! the HTML report, `rethreshold`, `eval` and `train`, on `fixtures/chat/`.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use super::{json_lines, lines, path_str as path, read_json, repo, run_ok, sluice, stderr, tree};

const SCREEN: &str = "configs/finetune-screen.toml";

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fixture(name: &str) -> PathBuf {
    repo().join("fixtures/chat").join(name)
}

/// The screen config as a plain run config (the `[screen]` table left out), lists by absolute
/// path so that it can live in `dir`; `edits` are `(from, to)` replacements.
pub(super) fn screen_as_run_config(dir: &Path, edits: &[(&str, &str)]) -> PathBuf {
    let mut text = std::fs::read_to_string(repo().join(SCREEN)).unwrap();
    let start = text.find("\n[screen]").unwrap();
    let end = text.find("\n[input]").unwrap();
    text.replace_range(start..end, "");
    text = text.replace(
        "\"lists/",
        &format!("\"{}/", repo().join("configs/lists").display()),
    );
    // The chat preset as these tests knew it: one layout, ids by file and line.
    text = text
        .replace("format = \"auto\"", "format = \"chat\"")
        .replace("\nid_field = \"id\"", "\n# id_field");
    for (from, to) in edits {
        assert!(text.contains(from), "config has no {from:?}");
        text = text.replace(from, to);
    }
    let config = dir.join("screen-run.toml");
    std::fs::write(&config, text).unwrap();
    config
}

/// The line numbers (1-based) of `shard`'s input lines found in `out/dest/shard`.
fn line_numbers(out: &Path, dest: &str, shard: &str) -> Vec<usize> {
    let input = lines(&fixture(shard));
    lines(&out.join(dest).join(shard))
        .iter()
        .map(|l| input.iter().position(|i| i == l).expect("an input line") + 1)
        .collect()
}

fn destinations(out: &Path, shard: &str) -> [Vec<usize>; 3] {
    ["kept", "dropped", "review"].map(|d| line_numbers(out, d, shard))
}

fn error_kinds(out: &Path, shard: &str) -> Vec<(u64, String, String)> {
    json_lines(&out.join("errors").join(shard))
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap(),
                e["kind"].as_str().unwrap().to_string(),
                e["error"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn stage<'r>(report: &'r Value, id: &str) -> &'r Value {
    report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap()
}

/// The entry of stage `id` in an audit record.
fn stage_entry<'r>(record: &'r Value, id: &str) -> &'r Value {
    record["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["stage"] == id)
        .unwrap_or_else(|| panic!("no stage {id} in {record}"))
}

#[test]
fn chat_records_are_judged_by_role_and_every_line_is_accounted_for() {
    let tmp = tempfile::tempdir().unwrap();
    let config = screen_as_run_config(tmp.path(), &[]);
    let out = tmp.path().join("out");
    let report = run_ok(&config, &[&fixture("chat.jsonl")], &out, &[]);
    // c3: stepwise instructions in the answer, dropped; c4: terms in an answer given as a list
    // of parts, review; c2 and c11: hazardous requests refused, kept (tagged); c5: "nerve" and
    // "agent" in two messages, kept; c6: a tool call with null content, kept.
    let [kept, dropped, review] = destinations(&out, "chat.jsonl");
    assert_eq!(kept, [1, 2, 5, 6, 11]);
    assert_eq!(dropped, [3]);
    assert_eq!(review, [4]);
    assert_eq!(
        error_kinds(&out, "chat.jsonl"),
        [
            (
                7,
                "text_not_string".into(),
                "field `messages[1].content` is a number, not a string".into()
            ),
            (
                8,
                "missing_role".into(),
                "field `messages[1].role` is missing".into()
            ),
            (
                9,
                "missing_text".into(),
                "no text in messages[*].content: the fields are missing, null or empty".into()
            ),
            (
                10,
                "invalid_json".into(),
                error_kinds(&out, "chat.jsonl")[3].2.clone()
            ),
        ]
    );
    assert_eq!(report["input"]["documents"], 11);
    assert_eq!(report["destinations"]["errors"]["documents"], 4);
    // Counters per role: the request stage saw user (and system) turns, the others answers.
    let requests = stage(&report, "request-terms");
    assert_eq!(requests["roles"]["user"]["docs"], 2);
    assert_eq!(requests["roles"]["user"]["hits"], 3);
    assert_eq!(requests["roles"]["user"]["tagged"], 2);
    assert!(requests["roles"].get("assistant").is_none());
    let answers = stage(&report, "hazard-terms");
    assert_eq!(answers["roles"]["assistant"]["escalated"], 1);
    assert_eq!(answers["terms"]["anthrax"]["docs"], 1);
    assert!(
        answers["terms"].get("sarin").is_none(),
        "sarin is asked, not answered"
    );
    assert_eq!(
        stage(&report, "keyword-rules")["roles"]["assistant"]["dropped"],
        1
    );
    // Audit spans name their part and role, with offsets within the part.
    let audit = json_lines(&out.join("audit/chat.jsonl"));
    let c4 = audit.iter().find(|r| r["line"] == 4).unwrap();
    let terms = stage_entry(c4, "hazard-terms");
    assert_eq!(terms["roles"], serde_json::json!(["assistant"]));
    let text = "The label reads: anthrax culture, and a vial of ricin.";
    for span in terms["spans"].as_array().unwrap() {
        assert_eq!(span["part"], "messages[1].content[1].text");
        assert_eq!(span["role"], "assistant");
        let (start, end) = (
            span["start"].as_u64().unwrap() as usize,
            span["end"].as_u64().unwrap() as usize,
        );
        assert_eq!(&text[start..end], span["term"].as_str().unwrap());
    }
    let c2 = audit.iter().find(|r| r["line"] == 2).unwrap();
    let span = &stage_entry(c2, "request-terms")["spans"][0];
    assert_eq!(
        (&span["part"], &span["role"], &span["start"]),
        (&"messages[0].content".into(), &"user".into(), &20.into())
    );
}

/// A preset's case: format, shard, kept, dropped and review lines, error lines and kinds.
type Preset<'a> = (
    &'a str,
    &'a str,
    &'a [usize],
    &'a [usize],
    &'a [usize],
    &'a [(u64, &'a str)],
);

#[test]
fn each_preset_reads_its_layout_in_run_and_screen() {
    let tmp = tempfile::tempdir().unwrap();
    let config = screen_as_run_config(tmp.path(), &[]);
    let cases: [Preset; 4] = [
        (
            "chat",
            "chat.jsonl",
            &[1, 2, 5, 6, 11],
            &[3],
            &[4],
            &[
                (7, "text_not_string"),
                (8, "missing_role"),
                (9, "missing_text"),
                (10, "invalid_json"),
            ],
        ),
        (
            "sharegpt",
            "sharegpt.jsonl",
            &[1, 2],
            &[],
            &[3],
            &[(4, "text_not_string"), (5, "missing_role")],
        ),
        (
            "alpaca",
            "alpaca.jsonl",
            &[1, 3, 4],
            &[],
            &[2],
            &[(5, "text_not_string"), (6, "missing_text")],
        ),
        (
            "prompt-completion",
            "prompt-completion.jsonl",
            &[1, 3],
            &[2],
            &[],
            &[(4, "missing_text")],
        ),
    ];
    for (format, shard, kept, dropped, review, errors) in cases {
        let out = tmp.path().join(format);
        run_ok(&config, &[&fixture(shard)], &out, &["--format", format]);
        let [k, d, r] = destinations(&out, shard);
        assert_eq!(
            (&k[..], &d[..], &r[..]),
            (kept, dropped, review),
            "{format}"
        );
        let got: Vec<(u64, String)> = error_kinds(&out, shard)
            .into_iter()
            .map(|(line, kind, _)| (line, kind))
            .collect();
        let want: Vec<(u64, String)> = errors.iter().map(|(l, k)| (*l, k.to_string())).collect();
        assert_eq!(got, want, "{format}");
        // The screen judges the same way: flagged = dropped + review + errors.
        let screened = sluice(&[
            "screen",
            path(&fixture(shard)),
            "--config",
            SCREEN,
            "--format",
            format,
        ]);
        let text = stdout(&screened);
        assert_eq!(
            screened.status.code(),
            Some(2),
            "{format}: {text}{}",
            stderr(&screened)
        );
        let flagged = dropped.len() + review.len() + errors.len();
        assert!(
            text.contains(&format!(
                "documents: {}, flagged: {flagged} (",
                lines(&fixture(shard)).len()
            )),
            "{format}: {text}"
        );
    }
    // ShareGPT's human/gpt are user/assistant; Alpaca's fields have fixed roles.
    let first_span = |record: &Value, stage: &str| {
        let entry = record["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["stage"] == stage)
            .unwrap_or_else(|| panic!("no {stage}: {record}"));
        entry["spans"][0].clone()
    };
    let audit = json_lines(&tmp.path().join("sharegpt/audit/sharegpt.jsonl"));
    let s3 = audit.iter().find(|r| r["line"] == 3).unwrap();
    let span = first_span(s3, "hazard-terms");
    assert_eq!(span["part"], "conversations[1].value");
    assert_eq!(span["role"], "assistant");
    let audit = json_lines(&tmp.path().join("alpaca/audit/alpaca.jsonl"));
    let a4 = audit.iter().find(|r| r["line"] == 4).unwrap();
    let span = first_span(a4, "request-terms");
    assert_eq!(span["part"], "instruction");
    assert_eq!(span["role"], "user");
}

#[test]
fn a_dataset_of_refused_requests_is_accepted_and_compliance_is_not() {
    let tmp = tempfile::tempdir().unwrap();
    let all = lines(&fixture("chat.jsonl"));
    let refusals = tmp.path().join("refusals.jsonl");
    let keep = [0, 1, 4, 5, 10];
    let text: Vec<u8> = keep
        .iter()
        .flat_map(|&i| all[i].iter().copied().chain([b'\n']))
        .collect();
    std::fs::write(&refusals, &text).unwrap();
    let screened = sluice(&["screen", path(&refusals), "--config", SCREEN]);
    let text = stdout(&screened);
    assert_eq!(
        screened.status.code(),
        Some(0),
        "{text}{}",
        stderr(&screened)
    );
    assert!(text.starts_with("verdict: accept\n"), "{text}");
    assert!(text.contains("documents: 5, flagged: 0"), "{text}");
    // Without roles the same requests would be flagged: the roles are what tells them apart.
    let config = screen_as_run_config(tmp.path(), &[("roles = [\"user\", \"system\"]", "")]);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("roles = [\"assistant\"]", "")
        .replace("action = \"tag\"", "action = \"escalate\"");
    std::fs::write(&config, text).unwrap();
    let report = run_ok(&config, &[&refusals], &tmp.path().join("out"), &[]);
    assert_eq!(report["destinations"]["review"]["documents"], 2);
}

#[test]
fn no_term_or_regex_matches_across_parts() {
    let tmp = tempfile::tempdir().unwrap();
    let list = tmp.path().join("terms.tsv");
    std::fs::write(&list, "nerve agent\tchem\nsarin\tchem\n").unwrap();
    let config = tmp.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"[input]
text_fields = ["a", "b", "turns[*].text"]
id_field = "id"

[[stages]]
type = "terms"
id = "words"
lists = [{list:?}]
whole_word = true
action = "escalate"

[[stages]]
type = "terms"
id = "substrings"
lists = [{list:?}]
whole_word = false
action = "tag"

[[stages]]
type = "rules"
id = "regex"

[[stages.rules]]
id = "spaced"
pattern = 'sarin\s+tabun'
action = "tag"

[[stages.rules]]
id = "anything"
pattern = '(?s)nerve.*agent'
action = "tag"

[[stages.rules]]
id = "anchored"
pattern = '^agent$'
action = "tag"
"#
        ),
    )
    .unwrap();
    let data = tmp.path().join("d.jsonl");
    std::fs::write(
        &data,
        concat!(
            // Split across two fields: a word-boundary term, a substring term, regexes.
            r#"{"id": "split", "a": "the nerve", "b": "agent; xsa", "turns": [{"text": "rin tabun"}]}"#,
            "\n",
            r#"{"id": "split2", "a": "sarin", "turns": [{"text": "tabun"}, {"text": "nerve"}, {"text": "agent"}]}"#,
            "\n",
            // The same words inside one part: every stage matches.
            r#"{"id": "whole", "a": "the nerve agent", "b": "xsarin tabun", "turns": []}"#,
            "\n",
        ),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let report = run_ok(&config, &[&data], &out, &[]);
    let audit = json_lines(&out.join("audit/d.jsonl"));
    let ids: Vec<&str> = audit.iter().map(|r| r["id"].as_str().unwrap()).collect();
    // `split2` has "sarin" whole in its first part (substring and word stages), nothing else.
    assert_eq!(ids, ["split2", "whole"]);
    let split2 = &audit[0];
    let stages: Vec<&str> = split2["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["words", "substrings", "regex"]);
    let rules: Vec<&str> = split2["stages"][2]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    // `^agent` matches at the start of its own part (a part is a text of its own).
    assert_eq!(rules, ["anchored"]);
    assert_eq!(
        split2["stages"][2]["rules"][0]["spans"][0]["part"],
        "turns[2].text"
    );
    for stage in ["words", "substrings"] {
        let terms = &split2["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stage"] == stage)
            .unwrap()["terms"];
        assert_eq!(
            terms,
            &serde_json::json!([{"term": "sarin", "category": "chem", "count": 1}]),
            "{stage}"
        );
    }
    let whole = &audit[1];
    let fired: Vec<&str> = whole["stages"][2]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(fired, ["spaced", "anything"]);
    assert_eq!(stage(&report, "words")["terms"]["nerve agent"]["docs"], 1);
    assert_eq!(stage(&report, "substrings")["terms"]["sarin"]["docs"], 2);
}

#[test]
fn roles_need_an_input_with_roles_and_bad_sources_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let check = |input: &str, stage_extra: &str| {
        let config = tmp.path().join("c.toml");
        std::fs::write(
            &config,
            format!(
                "[input]\n{input}\n[[stages]]\ntype = 'rules'\nid = 'r'\n{stage_extra}\n\
                 [[stages.rules]]\nid = 'x'\npattern = 'x'\naction = 'drop'\n"
            ),
        )
        .unwrap();
        let out = sluice(&["check", "--config", path(&config)]);
        (out.status.success(), stderr(&out))
    };
    let (ok, err) = check("text_field = 'text'", "roles = ['user']");
    assert!(
        !ok && err.contains("stages[0].roles") && err.contains("no roles"),
        "{err}"
    );
    let (ok, err) = check("text_fields = ['a', 'b']", "roles = ['user']");
    assert!(!ok && err.contains("stages[0].roles"), "{err}");
    assert!(check("format = 'alpaca'", "roles = ['assistant']").0);
    let (ok, err) = check("format = 'chat'\ntext_fields = ['a']", "");
    assert!(!ok && err.contains("not both"), "{err}");
    let (ok, err) = check("format = 'chat'\ntext_field = 'body'", "");
    assert!(!ok && err.contains("input.text_field"), "{err}");
    let (ok, err) = check("text_fields = ['messages[x].content']", "");
    assert!(
        !ok && err.contains("input.text_fields") && err.contains("brackets"),
        "{err}"
    );
    let (ok, err) = check("format = 'chats'", "");
    assert!(!ok && err.contains("chats"), "{err}");
    // A stage's own keys are still checked with `roles` among them.
    let (ok, err) = check("format = 'chat'", "roles = ['user']\ncolour = 1");
    assert!(!ok && err.contains("colour"), "{err}");
}

#[test]
fn audit_show_and_the_html_report_show_each_part_with_its_role() {
    let tmp = tempfile::tempdir().unwrap();
    let config = screen_as_run_config(tmp.path(), &[]);
    let out = tmp.path().join("out");
    run_ok(&config, &[&fixture("chat.jsonl")], &out, &[]);
    let shown = sluice(&["audit", path(&out), "show", "--color", "never"]);
    let text = stdout(&shown);
    assert!(shown.status.success(), "{}", stderr(&shown));
    assert!(
        text.contains(
            "── messages[1].content[0].text (assistant)\nIt shows a lab bench.\n\
             ── messages[1].content[1].text (assistant)\nThe label reads: [[anthrax]] culture, and a vial of [[ricin]].\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("── messages[0].content (user)\nExplain how to make [[sarin]] at home.\n── messages[1].content (assistant)\n[[I can't help]]"),
        "{text}"
    );
    assert!(text.contains("judged roles: system, user"), "{text}");
    // Suppressed stages say why, and their spans are not highlighted (they decided nothing).
    assert!(
        text.contains(
            "answered-hazard-request (rules): pass: answered x1 (min 1, fired)\n      \
                       suppressed review: refusal fired\n      judged roles: assistant\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("suppressed review: request-terms did not fire"),
        "{text}"
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("<div class=\"part\"><b>messages[1].content (assistant)</b>\nSure: a <mark>step by step guide to nerve agents</mark>"),
        "{html}"
    );
    // Counters per role, charted per stage.
    assert!(
        html.contains("Stage request-terms: documents per roles"),
        "{html}"
    );
    assert!(
        html.contains("<title>user: 2 (0 dropped, 0 escalated, 2 tagged)</title>"),
        "{html}"
    );
}

#[test]
fn rethreshold_replays_chat_evidence_as_a_fresh_run_would_decide() {
    let tmp = tempfile::tempdir().unwrap();
    let matched = [("audit = \"flagged\"", "audit = \"matched\"")];
    let config = screen_as_run_config(tmp.path(), &matched);
    let out = tmp.path().join("out");
    run_ok(&config, &[&fixture("chat.jsonl")], &out, &[]);
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
    // The same as a run of the edited config.
    let dir = tmp.path().join("fresh-config");
    std::fs::create_dir(&dir).unwrap();
    let edited = screen_as_run_config(&dir, &matched);
    let text = std::fs::read_to_string(&edited).unwrap();
    let at = text.find("id = \"hazard-terms\"").unwrap();
    let (head, tail) = text.split_at(at);
    std::fs::write(
        &edited,
        format!(
            "{head}{}",
            tail.replacen("min_distinct = 1", "min_distinct = 3", 1)
        ),
    )
    .unwrap();
    let fresh = tmp.path().join("fresh");
    run_ok(&edited, &[&fixture("chat.jsonl")], &fresh, &[]);
    let strip = |t: std::collections::BTreeMap<String, Vec<u8>>| {
        t.into_iter()
            .filter(|(k, _)| !k.starts_with("manifest"))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    assert_eq!(strip(tree(&re)), strip(tree(&fresh)));
    assert_eq!(line_numbers(&re, "kept", "chat.jsonl"), [1, 2, 4, 5, 6, 11]);
    let report = read_json(&re.join("report.json"));
    assert_eq!(
        stage(&report, "hazard-terms")["roles"]["assistant"]["escalated"],
        0
    );
    assert_eq!(
        stage(&report, "hazard-terms")["roles"]["assistant"]["docs"],
        1
    );
}

#[test]
fn eval_and_train_read_chat_records_by_role() {
    let tmp = tempfile::tempdir().unwrap();
    let data = fixture("labeled-chat.jsonl");
    let config = tmp.path().join("c.toml");
    let write = |roles: &str| {
        std::fs::write(
            &config,
            format!(
                "[input]\nformat = \"chat\"\n[[stages]]\ntype = \"terms\"\nid = \"answers\"\n{roles}\n\
                 lists = [{:?}]\naction = \"escalate\"\n",
                repo().join("configs/lists/hazard-terms.tsv")
            ),
        )
        .unwrap();
    };
    let eval = || {
        let out = sluice(&[
            "eval",
            "--config",
            path(&config),
            "--data",
            path(&data),
            "--positive",
            "hazard",
            "--json",
            "-",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        report["cascade"]["metrics"].clone()
    };
    write("roles = [\"assistant\"]");
    let by_role = eval();
    assert_eq!((&by_role["tp"], &by_role["fp"]), (&4.into(), &0.into()));
    // Judging whole conversations flags the refused requests too.
    write("");
    let whole = eval();
    assert_eq!((&whole["tp"], &whole["fp"]), (&4.into(), &3.into()));
    // Training reads the same records (the parts joined as a run judges them).
    let model = tmp.path().join("model");
    let trained = sluice(&[
        "train",
        "--kind",
        "hashed-ngram",
        "--data",
        path(&data),
        "--output",
        path(&model),
        "--format",
        "chat",
        "--positive",
        "hazard",
        "--buckets",
        "1024",
        "--dim",
        "8",
        "--validation",
        "0",
        "--json",
    ]);
    assert!(trained.status.success(), "{}", stderr(&trained));
    let report: Value = serde_json::from_slice(&trained.stdout).unwrap();
    assert_eq!(report["train_examples"], 8, "{report}");
    let wrong = sluice(&[
        "train",
        "--kind",
        "hashed-ngram",
        "--data",
        path(&data),
        "--output",
        path(&tmp.path().join("m2")),
    ]);
    assert!(!wrong.status.success());
    assert!(
        stderr(&wrong).contains("no field text"),
        "{}",
        stderr(&wrong)
    );
}

#[test]
fn a_role_limited_classifier_scores_only_the_parts_of_its_roles() {
    let tmp = tempfile::tempdir().unwrap();
    let model = repo().join("fixtures/models/hashed-ngram");
    let stage = format!(
        "[[stages]]\ntype = \"classifier\"\nid = \"model\"\nmodel = {model:?}\nlabel = \"toxic\"\n\
         mode = \"all\"\ndrop_threshold = 0.99\nreview_threshold = 0.98\n"
    );
    let chat = tmp.path().join("chat.toml");
    std::fs::write(
        &chat,
        format!("[input]\nformat = \"chat\"\n[output]\naudit = \"matched\"\n{stage}roles = [\"assistant\"]\n"),
    )
    .unwrap();
    let text = tmp.path().join("text.toml");
    std::fs::write(&text, format!("[output]\naudit = \"matched\"\n{stage}")).unwrap();
    let answer = "You are an idiot and I hate you, you stupid fool.";
    let chat_data = tmp.path().join("chat.jsonl");
    std::fs::write(
        &chat_data,
        serde_json::json!({"messages": [
            {"role": "user", "content": "Please say something kind about my garden."},
            {"role": "assistant", "content": answer},
        ]})
        .to_string()
            + "\n",
    )
    .unwrap();
    let text_data = tmp.path().join("text.jsonl");
    std::fs::write(
        &text_data,
        serde_json::json!({ "text": answer }).to_string() + "\n",
    )
    .unwrap();
    run_ok(&chat, &[&chat_data], &tmp.path().join("a"), &[]);
    run_ok(&text, &[&text_data], &tmp.path().join("b"), &[]);
    let by_role = &json_lines(&tmp.path().join("a/audit/chat.jsonl"))[0]["stages"][0];
    let alone = &json_lines(&tmp.path().join("b/audit/text.jsonl"))[0]["stages"][0];
    assert_eq!(by_role["roles"], serde_json::json!(["assistant"]));
    assert!(by_role["score"].is_number(), "{by_role}");
    // The model saw the answer alone: the very score of the answer as a document of its own.
    assert_eq!(by_role["score"], alone["score"]);
    assert_eq!(by_role["tokens"], alone["tokens"]);
    let checked = sluice(&["check", "--config", path(&chat)]);
    let out = stdout(&checked);
    assert!(
        out.contains("input: documents of parts from messages[*].content (with roles)"),
        "{out}"
    );
    assert!(out.contains("judges the parts of roles assistant"), "{out}");
}
