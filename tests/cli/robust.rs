//! Nothing lost, nothing let through: locks, input identity, outputs inside inputs, what
//! discovery passes over (issue 11), through the real binary.

use super::*;

fn write_shard(dir: &Path, name: &str, texts: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    let lines: Vec<String> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| serde_json::json!({"id": format!("{name}-{i}"), "text": t}).to_string())
        .collect();
    std::fs::write(dir.join(name), lines.join("\n") + "\n").unwrap();
}

fn cascade() -> PathBuf {
    repo().join("configs/hazard-cascade.toml")
}

#[test]
fn a_second_writer_of_an_output_directory_is_refused_while_the_first_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    generate_corpus(&corpus, 12, 1500, 3);
    let config = test_config(tmp.path(), "zstd_level = 19");
    let out = tmp.path().join("out");
    let first = Command::new(BIN)
        .args([
            "run",
            "-c",
            path_str(&config),
            "-i",
            path_str(&corpus),
            "-o",
            path_str(&out),
        ])
        .args(["-j", "1", "-q"])
        .spawn()
        .unwrap();
    let lock = out.join(".sluice.lock");
    for _ in 0..4000 {
        if lock.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let second = run_with(&config, &[&corpus], &out, &["-j", "1"]);
    let message = stderr(&second);
    let mut first = first;
    let first_status = first.wait().unwrap();
    assert_eq!(second.status.code(), Some(2), "{message}");
    assert!(
        message.contains(&first.id().to_string()) && message.contains("sluice run"),
        "the refusal names the holder: {message}"
    );
    assert!(first_status.success());
    // The first run's outputs are whole, and the lock is gone with it.
    assert!(!out.join(".sluice.lock").exists());
    let again = run_with(&config, &[&corpus], &out, &["-j", "1"]);
    assert!(again.status.success(), "{}", stderr(&again));
}

#[test]
fn a_changed_input_or_another_file_of_the_same_name_is_redone_not_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    write_shard(&a, "part.jsonl", &["an ordinary note", "another note"]);
    write_shard(
        &b,
        "part.jsonl",
        &["sarin and tabun, step by step", "a note"],
    );
    let out = tmp.path().join("out");
    let report = run_ok(&cascade(), &[&a], &out, &[]);
    assert_eq!(report["destinations"]["review"]["documents"], 0);
    let manifest = read_json(&out.join("manifest.json"));
    let input = &manifest["shards"][0]["input"];
    assert_eq!(
        input["size"],
        std::fs::metadata(a.join("part.jsonl")).unwrap().len()
    );
    let sha = input["sha256"].as_str().unwrap();
    assert_eq!(sha.len(), 64, "{input}");

    // Another input set with a same-named shard: redone, and said so.
    let result = run_with(&cascade(), &[&b], &out, &[]);
    assert!(result.status.success(), "{}", stderr(&result));
    assert!(
        stderr(&result).contains("1 shard redone"),
        "{}",
        stderr(&result)
    );
    let report = read_json(&out.join("report.json"));
    assert_eq!(report["shards"]["changed"][0], "part.jsonl");
    assert_eq!(report["destinations"]["review"]["documents"], 1);
    assert_ne!(
        read_json(&out.join("manifest.json"))["shards"][0]["input"]["sha256"],
        sha
    );

    // Edited in place (a line added): redone again.
    let mut text = std::fs::read_to_string(b.join("part.jsonl")).unwrap();
    text.push_str("{\"id\": \"new\", \"text\": \"ricin and soman\"}\n");
    std::fs::write(b.join("part.jsonl"), text).unwrap();
    let report = run_ok(&cascade(), &[&b], &out, &[]);
    assert_eq!(report["shards"]["changed"][0], "part.jsonl");
    assert_eq!(report["destinations"]["review"]["documents"], 2);
    // Unchanged: skipped as before.
    let report = run_ok(&cascade(), &[&b], &out, &[]);
    assert_eq!(report["shards"]["skipped"], 1);
    assert!(report["shards"].get("changed").is_none());
}

#[test]
fn an_output_directory_inside_the_input_is_not_read_back() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    write_shard(&corpus, "a.jsonl", &["one note", "two notes"]);
    let out = corpus.join("out");
    for run in 0..3 {
        let report = run_ok(&cascade(), &[&corpus], &out, &["--force"]);
        assert_eq!(report["input"]["documents"], 2, "{report}");
        assert_eq!(report["shards"]["total"], 1);
        if run > 0 {
            // Its manifest, reports and outputs are there now, and not read.
            assert_eq!(report["skipped_inputs"]["excluded"], 1, "{report}");
        }
    }
    // The input directory itself as the output: refused before anything is written.
    let result = run_with(&cascade(), &[&corpus], &corpus, &[]);
    assert_eq!(result.status.code(), Some(2));
    assert!(
        stderr(&result).contains("would be read back"),
        "{}",
        stderr(&result)
    );
    assert!(!corpus.join("manifest.json").exists());
}

#[test]
fn hidden_entries_and_links_are_listed_and_a_dangling_link_fails_one_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    write_shard(&corpus, "a.jsonl", &["one note"]);
    write_shard(&corpus, ".hidden.jsonl", &["sarin and tabun"]);
    write_shard(&corpus.join(".git"), "x.jsonl", &["sarin and tabun"]);
    write_shard(
        &tmp.path().join("elsewhere"),
        "b.jsonl",
        &["ricin and soman together"],
    );
    std::fs::write(corpus.join("notes.txt"), "not a shard").unwrap();
    std::os::unix::fs::symlink(tmp.path().join("elsewhere"), corpus.join("linked")).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("gone.jsonl"), corpus.join("dangling.jsonl"))
        .unwrap();
    let out = tmp.path().join("out");
    let result = run_with(&cascade(), &[&corpus], &out, &[]);
    // One shard failed (the dangling link), the other was filtered: exit 1, not 3.
    assert_eq!(result.status.code(), Some(1), "{}", stderr(&result));
    let message = stderr(&result);
    assert_eq!(
        message
            .lines()
            .filter(|l| l.contains("dangling.jsonl"))
            .count(),
        1,
        "each failure is printed once: {message}"
    );
    let report = read_json(&out.join("report.json"));
    assert_eq!(report["input"]["documents"], 1);
    assert_eq!(report["shards"]["failed"], 1);
    let skipped = &report["skipped_inputs"];
    assert_eq!(skipped["hidden"], 2, "{skipped}");
    assert_eq!(skipped["not_a_shard_name"], 1, "{skipped}");
    assert_eq!(skipped["symlinked_directory"], 1, "{skipped}");
    let manifest = read_json(&out.join("manifest.json"));
    let listed: Vec<&str> = manifest["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    assert!(
        listed.iter().any(|p| p.ends_with(".hidden.jsonl")),
        "{listed:?}"
    );
    assert!(listed.iter().any(|p| p.ends_with("linked")), "{listed:?}");

    // Asked to, the run follows the link.
    let result = run_with(
        &cascade(),
        &[&corpus],
        &out,
        &["--follow-symlinks", "--force"],
    );
    assert_eq!(result.status.code(), Some(1));
    let report = read_json(&out.join("report.json"));
    assert_eq!(report["input"]["documents"], 2);
    assert_eq!(report["destinations"]["review"]["documents"], 1);
}

#[test]
fn force_with_another_input_set_leaves_no_file_of_the_earlier_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    write_shard(&a, "old.jsonl", &["one note"]);
    write_shard(&b, "new.jsonl", &["another note"]);
    let out = tmp.path().join("out");
    run_ok(&cascade(), &[&a], &out, &[]);
    assert!(out.join("kept/old.jsonl").exists());
    run_ok(&cascade(), &[&b], &out, &["--force"]);
    assert!(!out.join("kept/old.jsonl").exists());
    assert!(out.join("kept/new.jsonl").exists());
}

#[test]
fn a_manifest_naming_paths_outside_the_output_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    write_shard(&corpus, "a.jsonl", &["sarin and tabun"]);
    let out = tmp.path().join("out");
    run_ok(&cascade(), &[&corpus], &out, &[]);
    let path = out.join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "\"output_name\": \"a.jsonl\"",
        "\"output_name\": \"../../esc/x.jsonl\"",
    );
    std::fs::write(&path, text).unwrap();
    for args in [
        vec!["audit", path_str(&out), "summary"],
        vec!["report", path_str(&out)],
        vec![
            "rethreshold",
            path_str(&out),
            "--set",
            "terms.min_distinct=3",
            "-o",
            path_str(&tmp.path().join("new")),
        ],
    ] {
        let result = sluice(&args);
        assert_ne!(result.status.code(), Some(0), "{args:?}");
        assert!(
            stderr(&result).contains("esc/x.jsonl"),
            "{args:?}: {}",
            stderr(&result)
        );
    }
    let result = run_with(&cascade(), &[&corpus], &out, &[]);
    assert_ne!(result.status.code(), Some(0));
    assert!(!tmp.path().join("esc").exists());
}

#[test]
fn export_never_truncates_a_file_of_the_run_it_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    assert!(run_fixtures(&out, &[]).status.success());
    let shard = out.join("kept/hazard.jsonl.zst");
    let before = std::fs::read(&shard).unwrap();
    let result = sluice(&["audit", path_str(&out), "export", "-o", path_str(&shard)]);
    assert_eq!(result.status.code(), Some(2), "{}", stderr(&result));
    assert!(stderr(&result).contains("inside the output directory"));
    assert_eq!(
        std::fs::read(&shard).unwrap(),
        before,
        "the shard is untouched"
    );
    // Elsewhere: written whole, and no temporary file is left.
    let export = tmp.path().join("export.jsonl");
    let result = sluice(&["audit", path_str(&out), "export", "-o", path_str(&export)]);
    assert!(result.status.success(), "{}", stderr(&result));
    assert!(json_lines(&export).len() > 3);
    assert!(!tmp.path().join("export.jsonl.tmp-sluice").exists());
}

#[test]
fn sizes_and_counts_beyond_what_memory_can_hold_are_refused_up_front() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    for (extra, key) in [
        ("chunk_bytes = 1099511627776", "run.chunk_bytes"),
        ("threads = 100000", "run.threads"),
    ] {
        let config = tmp.path().join("c.toml");
        let text = std::fs::read_to_string(cascade())
            .unwrap()
            .replace(
                "lists/hazard-terms.tsv",
                path_str(&repo().join("configs/lists/hazard-terms.tsv")),
            )
            .replace("chunk_bytes = 4194304", extra)
            .replace(
                "threads = 0",
                if extra.starts_with("threads") {
                    ""
                } else {
                    "threads = 0"
                },
            );
        std::fs::write(&config, text).unwrap();
        let result = run_with(&config, &[&repo().join("fixtures/corpus")], &out, &[]);
        assert_eq!(
            result.status.code(),
            Some(2),
            "{extra}: {}",
            stderr(&result)
        );
        assert!(
            stderr(&result).contains(key),
            "{extra}: {}",
            stderr(&result)
        );
        assert!(!out.exists(), "nothing written");
    }
    let result = run_with(
        &cascade(),
        &[&repo().join("fixtures/corpus")],
        &out,
        &["-j", "100000"],
    );
    assert_eq!(result.status.code(), Some(2), "{}", stderr(&result));
    assert!(stderr(&result).contains("--threads"));
    assert!(!out.exists());
    let model = tmp.path().join("model");
    let result = sluice(&[
        "train",
        "--kind",
        "hashed-ngram",
        "--data",
        path_str(&repo().join("fixtures/labeled/hazard-train.jsonl")),
        "--positive",
        "hazard",
        "--buckets",
        "4294967295",
        "--output",
        path_str(&model),
    ]);
    assert_eq!(result.status.code(), Some(2), "{}", stderr(&result));
    assert!(stderr(&result).contains("--buckets"), "{}", stderr(&result));
    assert!(std::fs::read_dir(tmp.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains("partial")));
}

#[test]
fn a_truncated_audit_shard_fails_every_command_that_reads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    std::fs::create_dir(&corpus).unwrap();
    std::fs::copy(
        repo().join("fixtures/corpus/unicode.jsonl.gz"),
        corpus.join("unicode.jsonl.gz"),
    )
    .unwrap();
    let out = tmp.path().join("out");
    run_ok(&cascade(), &[&corpus], &out, &[]);
    // Cut inside the gzip trailer (CRC and length): every line is still there.
    let audit = out.join("audit/unicode.jsonl.gz");
    let bytes = std::fs::read(&audit).unwrap();
    std::fs::write(&audit, &bytes[..bytes.len() - 4]).unwrap();
    for args in [
        vec!["audit", path_str(&out), "summary"],
        vec!["audit", path_str(&out), "show"],
        vec!["audit", path_str(&out), "export"],
        vec![
            "rethreshold",
            path_str(&out),
            "--set",
            "terms.min_distinct=3",
            "-o",
            path_str(&tmp.path().join("new")),
        ],
    ] {
        let result = sluice(&args);
        assert_eq!(
            result.status.code(),
            Some(3),
            "{args:?}: {}",
            stderr(&result)
        );
        assert!(
            stderr(&result).contains("unicode.jsonl.gz"),
            "{args:?}: {}",
            stderr(&result)
        );
    }
}

/// The reader of a pipe closing early is not an error (`sluice check CFG | head`): the command
/// ends quietly instead of panicking in `println!`.
#[test]
fn a_closed_stdout_pipe_ends_a_command_quietly() {
    use std::process::{Command, Stdio};
    for config in [
        "configs/hazard-classifier.toml",
        "configs/finetune-screen.toml",
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .current_dir(repo())
            .args(["check", "-c", config])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Closed before the config is even loaded (the classifier's model takes a while).
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{config}: {err}");
        assert_eq!(out.status.code(), Some(0), "{config}: {err}");
    }
}
