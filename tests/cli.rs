//! End-to-end tests: the real `sluice` binary on `fixtures/` and on corpora generated here.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sluice(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(repo())
        .output()
        .expect("sluice runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Decompresses by magic bytes, like sluice does.
fn read_any(path: &Path) -> Vec<u8> {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if raw.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::decode_all(&raw[..]).unwrap()
    } else if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        raw
    }
}

fn lines(path: &Path) -> Vec<Vec<u8>> {
    let data = read_any(path);
    let mut out: Vec<Vec<u8>> = data.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    if out.last().is_some_and(Vec::is_empty) {
        out.pop();
    }
    out
}

fn json_lines(path: &Path) -> Vec<Value> {
    lines(path)
        .iter()
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Every regular file under `dir`, relative path → bytes, minus the run's timing report.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                // The reports hold wall times; everything else must be reproducible.
                if rel != "report.json" && rel != "report.html" {
                    out.insert(rel, std::fs::read(&path).unwrap());
                }
            }
        }
    }
    out
}

const SHARDS: [&str; 4] = [
    "clean.jsonl",
    "hazard.jsonl.zst",
    "malformed.jsonl",
    "unicode.jsonl.gz",
];

/// `sluice run -c CONFIG -i INPUTS... -o OUT -q EXTRA...`, unchecked (failures are tested too).
fn run_with(config: &Path, inputs: &[&Path], out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "run",
        "-c",
        path_str(config),
        "-o",
        path_str(out),
        "-q",
        "-i",
    ];
    args.extend(inputs.iter().map(|p| path_str(p)));
    args.extend_from_slice(extra);
    sluice(&args)
}

/// [`run_with`], which must succeed: the run's `report.json`.
fn run_ok(config: &Path, inputs: &[&Path], out: &Path, extra: &[&str]) -> Value {
    let result = run_with(config, inputs, out, extra);
    assert!(result.status.success(), "{}", stderr(&result));
    read_json(&out.join("report.json"))
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn run_fixtures(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "run",
        "--config",
        "configs/hazard-cascade.toml",
        "--input",
        "fixtures/corpus",
        "--output",
        out.to_str().unwrap(),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    sluice(&args)
}

#[test]
fn fixtures_land_where_expected_and_everything_is_accounted_for() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let result = run_fixtures(&out, &[]);
    assert!(result.status.success(), "{}", stderr(&result));

    let mut input_lines = BTreeSet::new();
    let mut input_count = 0;
    for shard in SHARDS {
        for line in lines(&repo().join("fixtures/corpus").join(shard)) {
            input_count += 1;
            input_lines.insert(line);
        }
    }
    let mut seen = 0;
    for dest in ["kept", "dropped", "review"] {
        for shard in SHARDS {
            for line in lines(&out.join(dest).join(shard)) {
                assert!(
                    input_lines.contains(&line),
                    "output line not byte-identical to input"
                );
                let doc: Value = serde_json::from_slice(&line).unwrap();
                assert_eq!(doc["expect"], dest, "{} went to {dest}", doc["id"]);
                seen += 1;
            }
        }
    }
    let errors = json_lines(&out.join("errors/malformed.jsonl"));
    let kinds: BTreeSet<&str> = errors.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(errors.len(), 7);
    assert_eq!(
        kinds,
        BTreeSet::from([
            "empty_line",
            "invalid_json",
            "invalid_utf8",
            "missing_text",
            "not_an_object",
            "text_not_string"
        ])
    );
    for shard in ["clean.jsonl", "hazard.jsonl.zst", "unicode.jsonl.gz"] {
        assert!(lines(&out.join("errors").join(shard)).is_empty());
    }
    assert_eq!(seen + errors.len(), input_count);

    let report = read_json(&out.join("report.json"));
    let d = |name: &str| report["destinations"][name]["documents"].as_u64().unwrap();
    assert_eq!(report["input"]["documents"], input_count as u64);
    assert_eq!(
        d("kept") + d("dropped") + d("review") + d("errors"),
        input_count as u64
    );
    assert_eq!((d("dropped"), d("review"), d("errors")), (2, 9, 7));
    let bytes = |name: &str| report["destinations"][name]["bytes"].as_u64().unwrap();
    assert_eq!(
        bytes("kept") + bytes("dropped") + bytes("review") + bytes("errors"),
        report["input"]["bytes"].as_u64().unwrap()
    );
    assert_eq!(report["shards"]["done"], 4);
    let stages = report["stages"].as_array().unwrap();
    assert_eq!(
        stages[0]["rules"]["stepwise-weapon-instructions"]["dropped"],
        2
    );
    assert_eq!(stages[1]["terms"]["sarin"]["docs"], 5);

    let manifest = read_json(&out.join("manifest.json"));
    for shard in manifest["shards"].as_array().unwrap() {
        assert_eq!(shard["status"], "done");
    }
    assert!(manifest["config_hash"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
}

#[test]
fn audit_records_carry_reasons_and_exact_unicode_spans() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    assert!(run_fixtures(&out, &[]).status.success());
    let texts: BTreeMap<String, String> = lines(&repo().join("fixtures/corpus/unicode.jsonl.gz"))
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_slice(l).unwrap();
            (
                v["id"].as_str().unwrap().to_string(),
                v["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let audit = json_lines(&out.join("audit/unicode.jsonl.gz"));
    let mut spans: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for record in &audit {
        assert_eq!(record["decision"], "review");
        assert_eq!(record["sluice_version"], env!("CARGO_PKG_VERSION"));
        assert!(record["config_hash"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"));
        assert_eq!(record["reasons"][0]["stage"], "hazard-terms");
        let id = record["id"].as_str().unwrap();
        let text = &texts[id];
        for stage in record["stages"].as_array().unwrap() {
            for span in stage["spans"].as_array().into_iter().flatten() {
                let (start, end) = (
                    span["start"].as_u64().unwrap(),
                    span["end"].as_u64().unwrap(),
                );
                let matched = text
                    .get(start as usize..end as usize)
                    .expect("span on char boundaries");
                spans
                    .entry(id.into())
                    .or_default()
                    .push(matched.to_string());
            }
        }
    }
    assert_eq!(spans["u1"], ["Ｓａｒｉｎ", "Tabun"]);
    assert_eq!(spans["u2"], ["ANTHRAX", "RICIN"]);
    assert_eq!(spans["u4"], ["sarin", "VX nerve agent"]);
    assert_eq!(spans["u6"], ["Soman", "SARIN"]);
    assert_eq!(audit.len(), 4);

    // Rule evidence, and a tag-only document audited while kept.
    let clean = json_lines(&out.join("audit/clean.jsonl"));
    assert_eq!(clean.len(), 1);
    assert_eq!(clean[0]["id"], "c5");
    assert_eq!(clean[0]["decision"], "kept");
    assert_eq!(clean[0]["reasons"][0]["rule"], "boilerplate");
    let hazard = json_lines(&out.join("audit/hazard.jsonl.zst"));
    let h2 = hazard.iter().find(|r| r["id"] == "h2").unwrap();
    assert_eq!(h2["decision"], "dropped");
    assert_eq!(
        h2["stages"].as_array().unwrap().len(),
        1,
        "a drop ends the cascade"
    );
    let span = &h2["stages"][0]["rules"][0]["spans"][0];
    assert_eq!(
        (&span["start"], &span["end"]),
        (&Value::from(0), &Value::from(41))
    );
    // A document without an id is named by shard and line.
    let malformed = json_lines(&out.join("errors/malformed.jsonl"));
    assert_eq!(malformed[0]["line"], 2);
}

/// Writes `shards` shards of generated documents built from the fixtures, mixed at random.
fn generate_corpus(dir: &Path, shards: usize, docs_per_shard: usize, seed: u64) {
    let mut pool = Vec::new();
    for shard in SHARDS {
        pool.extend(lines(&repo().join("fixtures/corpus").join(shard)));
    }
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    std::fs::create_dir_all(dir).unwrap();
    for s in 0..shards {
        let mut data = Vec::new();
        for _ in 0..docs_per_shard {
            data.extend_from_slice(&pool[next() % pool.len()]);
            data.push(b'\n');
        }
        let name = dir.join(format!("part-{s:03}.jsonl.zst"));
        std::fs::write(name, zstd::encode_all(&data[..], 1).unwrap()).unwrap();
    }
}

/// The hazard cascade with small chunks (so even small shards are cut into many) and the given
/// extra TOML appended.
fn test_config(dir: &Path, extra: &str) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("configs/hazard-cascade.toml"))
        .unwrap()
        .replace(
            "lists = [\"lists/hazard-terms.tsv\"]",
            &format!(
                "lists = [{:?}]",
                repo().join("configs/lists/hazard-terms.tsv")
            ),
        )
        .replace("chunk_bytes = 4194304", "chunk_bytes = 4096")
        .replace("zstd_level = 3", extra);
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn outputs_are_byte_identical_whatever_the_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    generate_corpus(&corpus, 3, 3000, 7);
    let config = test_config(tmp.path(), "zstd_level = 3");
    let mut trees = Vec::new();
    for (i, threads) in ["1", "8", "8", "3"].iter().enumerate() {
        let out = tmp.path().join(format!("out-{i}"));
        run_ok(&config, &[&corpus], &out, &["-j", threads]);
        trees.push(tree(&out));
    }
    assert_eq!(trees[0].len(), 3 * 5 + 1);
    for t in &trees[1..] {
        assert!(
            t == &trees[0],
            "outputs differ between thread counts or runs"
        );
    }
    // Many chunks were written as concatenated frames and still decode as one stream.
    let kept = lines(&tmp.path().join("out-0/kept/part-000.jsonl.zst"));
    assert!(kept.len() > 1000);
}

/// A run long enough to stop part-way (24 shards, zstd level 19 on one thread), with the outputs
/// of an uninterrupted one to compare with.
struct SlowRun {
    tmp: tempfile::TempDir,
    corpus: PathBuf,
    config: PathBuf,
}

impl SlowRun {
    fn new() -> SlowRun {
        let tmp = tempfile::tempdir().unwrap();
        let corpus = tmp.path().join("corpus");
        generate_corpus(&corpus, 24, 1500, 11);
        let config = test_config(tmp.path(), "zstd_level = 19");
        SlowRun {
            tmp,
            corpus,
            config,
        }
    }

    fn args(&self, out: &Path) -> Vec<String> {
        [
            "run",
            "-c",
            path_str(&self.config),
            "-i",
            path_str(&self.corpus),
        ]
        .into_iter()
        .chain(["-o", path_str(out), "-j", "1", "-q"])
        .map(str::to_string)
        .collect()
    }

    /// The outputs of the run done whole.
    fn reference(&self) -> PathBuf {
        let reference = self.tmp.path().join("reference");
        let result = Command::new(BIN)
            .args(self.args(&reference))
            .output()
            .unwrap();
        assert!(result.status.success(), "{}", stderr(&result));
        reference
    }
}

#[test]
fn a_killed_run_resumes_to_byte_identical_outputs() {
    let slow = SlowRun::new();
    let (tmp, args, reference) = (&slow.tmp, |out: &Path| slow.args(out), slow.reference());

    let resumed = tmp.path().join("resumed");
    let mut child = Command::new(BIN).args(args(&resumed)).spawn().unwrap();
    // Finished shards are appended to the manifest's journal while a run goes on.
    let journal = resumed.join("manifest.journal.jsonl");
    let mut killed_with_done = None;
    for _ in 0..6000 {
        std::thread::sleep(std::time::Duration::from_millis(5));
        if let Some(status) = child.try_wait().unwrap() {
            panic!("run finished ({status}) before it could be killed: make the corpus bigger");
        }
        let Ok(bytes) = std::fs::read(&journal) else {
            continue;
        };
        let done = bytes
            .split(|b| *b == b'\n')
            .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
            .filter(|s| s["status"] == "done")
            .count();
        if done >= 2 {
            child.kill().unwrap(); // SIGKILL: no cleanup runs
            child.wait().unwrap();
            killed_with_done = Some(done);
            break;
        }
    }
    let done_at_kill = killed_with_done.expect("the run was killed part-way");
    assert!(done_at_kill < 24);

    let result = Command::new(BIN).args(args(&resumed)).output().unwrap();
    assert!(result.status.success(), "{}", stderr(&result));
    let report = read_json(&resumed.join("report.json"));
    assert!(report["shards"]["skipped"].as_u64().unwrap() >= done_at_kill as u64);
    assert_eq!(tree(&resumed), tree(&reference));
    assert!(!tree(&resumed).keys().any(|k| k.ends_with(".tmp-sluice")));
}

#[test]
fn sigterm_and_sigint_stop_cleanly_and_the_rerun_resumes_to_the_same_outputs() {
    let slow = SlowRun::new();
    let (tmp, args, reference) = (&slow.tmp, |out: &Path| slow.args(out), slow.reference());
    for (signal, code) in [("TERM", 143), ("INT", 130)] {
        let out = tmp.path().join(format!("stopped-{signal}"));
        let child = Command::new(BIN)
            .args(args(&out))
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Once a shard is done, ask the run to stop.
        let journal = out.join("manifest.journal.jsonl");
        for _ in 0..6000 {
            if journal.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()
            .unwrap()
            .success());
        let result = child.wait_with_output().unwrap();
        let message = stderr(&result);
        assert_eq!(result.status.code(), Some(code), "{signal}: {message}");
        assert!(
            message.contains("run the same command again to resume"),
            "{message}"
        );
        assert_eq!(message.lines().count(), 1, "{message}");
        // Nothing half-written, the manifest says what is left.
        assert!(!tree(&out).keys().any(|k| k.ends_with(".tmp-sluice")));
        let manifest = read_json(&out.join("manifest.json"));
        let pending = manifest["shards"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == "pending")
            .count();
        assert!(pending > 0 && pending < 24, "{pending} pending");
        // The same command again finishes the job, byte for byte as if never stopped.
        let resumed = Command::new(BIN).args(args(&out)).output().unwrap();
        assert!(resumed.status.success(), "{}", stderr(&resumed));
        assert_eq!(tree(&out), tree(&reference), "{signal}");
    }
}

#[test]
fn rerun_skips_finished_shards_force_redoes_and_a_new_config_needs_force() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    assert!(run_fixtures(&out, &[]).status.success());
    assert!(run_fixtures(&out, &[]).status.success());
    let report = read_json(&out.join("report.json"));
    assert_eq!(report["shards"]["skipped"], 4);
    assert_eq!(
        report["input"]["documents"], 31,
        "skipped shards still count in totals"
    );
    assert!(run_fixtures(&out, &["--force"]).status.success());
    assert_eq!(read_json(&out.join("report.json"))["shards"]["skipped"], 0);

    let config = test_config(tmp.path(), "zstd_level = 5");
    let other = run_with(&config, &[Path::new("fixtures/corpus")], &out, &[]);
    assert_eq!(other.status.code(), Some(2));
    assert!(
        stderr(&other).contains("another config"),
        "{}",
        stderr(&other)
    );
}

#[test]
fn a_rerun_without_oversized_lines_removes_the_old_spill_file() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    std::fs::create_dir(&corpus).unwrap();
    let long = format!("{{\"text\":\"{}\"}}\n", "y".repeat(3000));
    std::fs::write(
        corpus.join("s.jsonl"),
        format!("{{\"text\":\"a\"}}\n{long}"),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let config = test_config(tmp.path(), "zstd_level = 3");
    let small = tmp.path().join("small.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &small,
        text.replace("max_line_bytes = 33554432", "max_line_bytes = 2048"),
    )
    .unwrap();
    run_ok(&small, &[&corpus], &out, &[]);
    let spill = out.join("oversized/s.jsonl");
    assert_eq!(std::fs::read_to_string(&spill).unwrap(), long);
    run_ok(
        &tmp.path().join("config.toml"),
        &[&corpus],
        &out,
        &["--force"],
    );
    assert!(!spill.exists(), "the line fits now: no stale spill file");
    assert_eq!(lines(&out.join("kept/s.jsonl")).len(), 2);
}

#[test]
fn broken_shards_fail_alone_and_bad_lines_go_to_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    let good = std::fs::read(repo().join("fixtures/corpus/hazard.jsonl.zst")).unwrap();
    std::fs::write(corpus.join("good.jsonl.zst"), &good).unwrap();
    let big = zstd::encode_all(&vec![b'{'; 200_000][..], 3).unwrap();
    std::fs::write(corpus.join("truncated.jsonl.zst"), &big[..big.len() / 2]).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&lines(&repo().join("fixtures/corpus/clean.jsonl")).concat())
        .unwrap();
    let gz = gz.finish().unwrap();
    std::fs::write(corpus.join("truncated.jsonl.gz"), &gz[..gz.len() - 9]).unwrap();
    std::fs::write(corpus.join("notzstd.jsonl.zst"), b"{\"text\": \"plain\"}\n").unwrap();
    // A file that cannot be opened, even by root: a unix socket.
    std::fs::create_dir_all(corpus.join("sub")).unwrap();
    let _socket =
        std::os::unix::net::UnixListener::bind(corpus.join("sub/unreadable.jsonl")).unwrap();
    let mut with_long_line = b"{\"id\":\"a\",\"text\":\"before\"}\n".to_vec();
    with_long_line.extend_from_slice(b"{\"text\":\"");
    with_long_line.extend(std::iter::repeat_n(b'x', 50 << 20));
    with_long_line.extend_from_slice(b"\"}\n{\"id\":\"b\",\"text\":\"after\"}\n");
    std::fs::write(corpus.join("long.jsonl"), &with_long_line).unwrap();

    let out = tmp.path().join("out");
    let inputs: Vec<PathBuf> = [
        "good.jsonl.zst",
        "truncated.jsonl.zst",
        "truncated.jsonl.gz",
        "notzstd.jsonl.zst",
        "sub/unreadable.jsonl",
        "long.jsonl",
    ]
    .iter()
    .map(|n| corpus.join(n))
    .collect();
    let inputs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    let result = run_with(Path::new("configs/hazard-cascade.toml"), &inputs, &out, &[]);
    assert_eq!(result.status.code(), Some(1), "{}", stderr(&result));
    let err = stderr(&result);
    for name in [
        "truncated.jsonl.zst",
        "truncated.jsonl.gz",
        "notzstd.jsonl.zst",
        "unreadable.jsonl",
    ] {
        assert!(err.contains(name), "stderr names {name}: {err}");
    }
    let manifest = read_json(&out.join("manifest.json"));
    let status: BTreeMap<&str, &str> = manifest["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(status["good.jsonl.zst"], "done");
    assert_eq!(status["long.jsonl"], "done");
    for name in [
        "truncated.jsonl.zst",
        "truncated.jsonl.gz",
        "notzstd.jsonl.zst",
        "sub/unreadable.jsonl",
    ] {
        assert_eq!(status[name], "failed", "{name}");
        assert!(
            !out.join("kept").join(name).exists(),
            "no output under a final name for {name}"
        );
    }
    let errors = json_lines(&out.join("errors/long.jsonl"));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["kind"], "line_too_long");
    assert_eq!(errors[0]["line"], 2);
    assert_eq!(errors[0]["bytes"], (50 << 20) + 11);
    // Too long to judge, but not lost: the whole line is in oversized/, where the record
    // says, byte for byte.
    assert_eq!(errors[0]["spilled_to"], "oversized/long.jsonl");
    assert_eq!(errors[0]["spill_line"], 1);
    let spilled = std::fs::read(out.join("oversized/long.jsonl")).unwrap();
    let start = with_long_line.iter().position(|&b| b == b'\n').unwrap() + 1;
    let end = start + (50 << 20) + 11 + 1;
    assert!(
        spilled == with_long_line[start..end],
        "the spilled line is the input line"
    );
    // Shards without an oversized line get no spill file.
    assert_eq!(std::fs::read_dir(out.join("oversized")).unwrap().count(), 1);
    assert_eq!(lines(&out.join("kept/long.jsonl")).len(), 2);
    let report = read_json(&out.join("report.json"));
    assert_eq!(report["shards"]["failed"], 4);
    assert_eq!(report["error_kinds"]["line_too_long"], 1);
}

#[test]
fn config_problems_are_reported_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        ("[[stages]]\ntype='rules'\nid='r'\n[[stages.rules]]\nid='bad'\npattern='(x'\naction='drop'", "stages[0] (r).rules[0] (bad)"),
        ("[[stages]]\ntype='terms'\nid='t'\nlists=['missing.txt']\naction='drop'", "stages[0] (t).lists[0]"),
        ("[input]\ntext_feild='x'", "unknown field `text_feild`"),
    ];
    for (i, (toml, needle)) in cases.iter().enumerate() {
        let config = tmp.path().join(format!("c{i}.toml"));
        std::fs::write(&config, toml).unwrap();
        let out = tmp.path().join(format!("out{i}"));
        let result = run_with(&config, &[Path::new("fixtures/corpus")], &out, &[]);
        assert_eq!(result.status.code(), Some(2), "{toml}");
        let err = stderr(&result);
        assert!(err.contains(needle), "{err} should name {needle}");
        assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
        assert!(!out.exists(), "nothing was written");
    }
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let result = run_fixtures(&file, &[]);
    assert_eq!(result.status.code(), Some(2));
    assert!(stderr(&result).contains("is a file"));
    let result = sluice(&["check", "-c", "configs/c4-badwords.toml"]);
    assert!(result.status.success(), "{}", stderr(&result));
}

#[test]
fn c4_badwords_drops_whole_words_only() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("c4.jsonl");
    std::fs::write(
        &corpus,
        "{\"text\":\"A perfectly clean sentence about Scunthorpe.\"}\n\
         {\"text\":\"This one says 2 Girls 1 Cup out loud.\"}\n\
         {\"text\":\"Bukkakes? No: the list matches whole words, and this has none.\"}\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    run_ok(Path::new("configs/c4-badwords.toml"), &[&corpus], &out, &[]);
    assert_eq!(lines(&out.join("kept/c4.jsonl")).len(), 2);
    assert_eq!(lines(&out.join("dropped/c4.jsonl")).len(), 1);
    let audit = json_lines(&out.join("audit/c4.jsonl"));
    assert_eq!(audit[0]["stages"][0]["terms"][0]["term"], "2 girls 1 cup");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn line() -> impl Strategy<Value = Vec<u8>> {
        let word = prop::sample::select(vec![
            "the",
            "sarin",
            "Tabun",
            "ANTHRAX",
            "ricin",
            "ｓａｒｉｎ",
            "nerve agent",
            "café",
            "step by step",
            "dirty bomb",
            "weaponize",
            "Σ",
            "\\n",
            "\\\"",
            "🌍",
            "botnet",
        ]);
        let text = prop::collection::vec(word, 0..30).prop_map(|w| w.join(" "));
        prop_oneof![
            6 => text.clone().prop_map(|t| format!("{{\"id\":1,\"text\":\"{t}\"}}").into_bytes()),
            1 => text.prop_map(|t| format!("{{\"text\":\"{t}\"").into_bytes()),
            1 => Just(Vec::new()),
            1 => Just(b"{\"id\": 2}".to_vec()),
            1 => prop::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..40),
        ]
    }

    fn run_once(
        corpus: &Path,
        out: &Path,
        chunk_bytes: usize,
        threads: usize,
    ) -> sluice_core::Report {
        let mut config =
            sluice_core::Config::from_file(&repo().join("configs/hazard-cascade.toml")).unwrap();
        config.run.chunk_bytes = chunk_bytes;
        let options = sluice_core::RunOptions {
            inputs: vec![corpus.to_string_lossy().into_owned()],
            output: Some(out.to_path_buf()),
            threads: Some(threads),
            force: false,
            progress: None,
            ..Default::default()
        };
        sluice_core::run(&config, &options).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        #[test]
        fn every_line_is_accounted_for_and_thread_count_changes_nothing(
            lines in prop::collection::vec(line(), 0..300),
            chunk_bytes in 4096usize..12_000,
            zstd in any::<bool>(),
        ) {
            let tmp = tempfile::tempdir().unwrap();
            let corpus = tmp.path().join("corpus");
            std::fs::create_dir_all(&corpus).unwrap();
            let data = lines.join(&b'\n');
            if zstd {
                std::fs::write(corpus.join("p.jsonl.zst"), zstd::encode_all(&data[..], 1).unwrap()).unwrap();
            } else {
                std::fs::write(corpus.join("p.jsonl"), &data).unwrap();
            }
            let one = run_once(&corpus, &tmp.path().join("one"), chunk_bytes, 1);
            let four = run_once(&corpus, &tmp.path().join("four"), chunk_bytes, 4);
            // A trailing empty "line" after the last newline is not a line.
            let expected = if data.is_empty() { 0 } else {
                lines.len() - usize::from(data.ends_with(b"\n") && lines.last().is_some_and(Vec::is_empty))
            };
            prop_assert_eq!(one.input.documents, expected as u64);
            prop_assert_eq!(one.destinations.total(), one.input);
            prop_assert_eq!(tree(&tmp.path().join("one")), tree(&tmp.path().join("four")));
            prop_assert_eq!(one.destinations, four.destinations);
        }
    }
}

#[test]
fn bench_reports_every_step_stage_and_run_as_json() {
    let result = sluice(&[
        "bench",
        "-c",
        "configs/hazard-cascade.toml",
        "--generate",
        "5MB",
        "--seed",
        "3",
        "-j",
        "1,2",
        "--json",
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    let report: Value = serde_json::from_slice(&result.stdout).unwrap();
    assert!(report["input"]["bytes"].as_u64().unwrap() >= 5_000_000);
    assert!(report["input"]["compressed_bytes"].as_u64().unwrap() > 0);
    assert_eq!(report["input"]["generated"], true);
    assert_eq!(report["scaling"].as_array().unwrap().len(), 2);
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for (run, threads) in runs.iter().zip([1, 2]) {
        assert_eq!(run["threads"], threads);
        for key in ["wall_seconds", "mb_per_second", "docs_per_second"] {
            assert!(run[key].as_f64().unwrap() > 0.0, "{key}");
        }
        assert!(run["peak_memory_bytes"].as_u64().unwrap() > 1_000_000);
        let steps: Vec<&str> = run["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["step"].as_str().unwrap())
            .collect();
        assert_eq!(
            steps,
            [
                "read",
                "parse",
                "stage:keyword-rules",
                "stage:hazard-terms",
                "route",
                "compress",
                "write"
            ]
        );
        let share: f64 = run["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["share"].as_f64().unwrap())
            .sum();
        assert!((share - 1.0).abs() < 1e-6);
        for stage in run["stages"].as_array().unwrap() {
            for key in [
                "documents",
                "cpu_seconds",
                "share",
                "docs_per_second",
                "text_mb_per_second",
            ] {
                assert!(
                    stage[key].as_f64().unwrap() > 0.0,
                    "{key} of {}",
                    stage["id"]
                );
            }
        }
    }
}

// The crate root is tests/cli.rs, so a module under tests/cli/ needs its path spelled out.
#[path = "cli/audit.rs"]
mod audit;
#[path = "cli/azure.rs"]
mod azure;
#[path = "cli/chat.rs"]
mod chat;
#[path = "cli/classifier.rs"]
mod classifier;
#[path = "cli/gcs.rs"]
mod gcs;
#[path = "cli/language.rs"]
mod language;
#[path = "cli/parquet.rs"]
mod parquet;
#[path = "cli/parquet_chat.rs"]
mod parquet_chat;
#[path = "cli/ranks.rs"]
mod ranks;
#[path = "cli/review.rs"]
mod review;
#[path = "cli/robust.rs"]
mod robust;
#[path = "cli/s3.rs"]
mod s3;
#[path = "cli/screen_covert.rs"]
mod screen_covert;
#[path = "cli/screen_signals.rs"]
mod screen_signals;
#[path = "cli/slurm.rs"]
mod slurm;
#[path = "cli/train.rs"]
mod train;
