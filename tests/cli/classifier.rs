//! The classifier stage inside `sluice run`: the tiny random-weight BERT of `fixtures/models/bert`
//! (its scores mean nothing, but they are deterministic, which is all these tests need).

use super::*;

/// `test_config` plus a classifier stage on the fixture BERT, scoring the `toxic` output.
fn classifier_config(dir: &Path, mode: &str, drop: f64, review: f64) -> PathBuf {
    let path = test_config(dir, "zstd_level = 3");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        r#"
[[stages]]
type = "classifier"
id = "hazard-model"
model = {:?}
label = "toxic"
mode = "{mode}"
drop_threshold = {drop}
review_threshold = {review}
max_tokens = 32
stride = 8
batch_size = 4
"#,
        repo().join("fixtures/models/bert")
    ));
    std::fs::write(&path, text).unwrap();
    path
}

fn run(config: &Path, input: &Path, out: &Path, threads: &str) -> Value {
    super::run_ok(config, &[input], out, &["-j", threads])
}

fn audit_records(out: &Path) -> Vec<Value> {
    let mut records = Vec::new();
    for entry in std::fs::read_dir(out.join("audit")).unwrap() {
        records.extend(json_lines(&entry.unwrap().path()));
    }
    records
}

fn classifier_entry(record: &Value) -> Option<&Value> {
    record["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "classifier")
}

/// Checks one record's classifier evidence against its decision; returns the stage outcome.
fn check_decision(record: &Value) -> Option<String> {
    let entry = classifier_entry(record)?;
    let windows: Vec<f64> = entry["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_f64().unwrap())
        .collect();
    let score = entry["score"].as_f64().unwrap();
    assert!(!windows.is_empty(), "{record}");
    let max = windows.iter().cloned().fold(f64::MIN, f64::max);
    assert_eq!(score, max, "the default aggregate is max: {record}");
    assert!(entry["tokens"].as_u64().unwrap() > 0);
    assert_eq!(entry["model_hash"].as_str().unwrap().len(), 64);
    let (drop, review) = (
        entry["drop_threshold"].as_f64().unwrap(),
        entry["review_threshold"].as_f64().unwrap(),
    );
    let outcome = entry["outcome"].as_str().unwrap().to_string();
    // The recorded score is an f32; the thresholds compare in f64 as the stage does.
    let expected = if score >= drop {
        "drop"
    } else if score >= review {
        "review"
    } else {
        "pass"
    };
    assert_eq!(outcome, expected, "{record}");
    let decision = record["decision"].as_str().unwrap();
    let expected_decision = match expected {
        "drop" => "dropped",
        "review" => "review",
        _ => "kept",
    };
    assert_eq!(decision, expected_decision, "{record}");
    Some(outcome)
}

#[test]
fn the_classifier_judges_escalated_documents_only_and_decides_by_its_thresholds() {
    let tmp = tempfile::tempdir().unwrap();
    let config = classifier_config(tmp.path(), "escalated", 0.30, 0.25);
    let out = tmp.path().join("out");
    let report = run(&config, &repo().join("fixtures/corpus"), &out, "2");

    let records = audit_records(&out);
    let mut scored = 0;
    for record in &records {
        let escalated = record["escalated"].as_bool().unwrap();
        match check_decision(record) {
            Some(_) => {
                assert!(escalated, "only escalated documents are scored: {record}");
                scored += 1;
            }
            None => assert!(
                !escalated || record["decision"] == "dropped",
                "an escalated document that was not dropped earlier must be scored: {record}"
            ),
        }
    }
    // The fixture corpus escalates 9 documents (they went to review without a classifier).
    assert_eq!(scored, 9);
    let stage = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "hazard-model")
        .expect("the classifier stage is in the report");
    assert_eq!(stage["type"], "classifier");
    assert_eq!(stage["evaluated"], 9);
    assert!(stage["tokens"].as_u64().unwrap() > 9);
    let reviewed = stage["reviewed"].as_u64().unwrap_or(0);
    let dropped = stage["dropped"].as_u64().unwrap();
    let passed = stage["passed"].as_u64().unwrap();
    assert_eq!(reviewed + dropped + passed, 9);
    // Still every document in exactly one place: 31 in, 7 errors.
    let destinations = &report["destinations"];
    let total: u64 = ["kept", "dropped", "review", "errors"]
        .iter()
        .map(|d| destinations[d]["documents"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 31);
    assert_eq!(destinations["errors"]["documents"], 7);
    assert!(report["timings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["step"] == "stage:hazard-model"));
}

#[test]
fn with_a_classifier_outputs_are_identical_whatever_the_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    generate_corpus(&corpus, 3, 400, 11);
    let config = classifier_config(tmp.path(), "all", 0.30, 0.25);
    let mut trees = Vec::new();
    for (i, threads) in ["1", "4", "2"].iter().enumerate() {
        let out = tmp.path().join(format!("out-{i}"));
        run(&config, &corpus, &out, threads);
        trees.push(tree(&out));
        if i == 0 {
            // mode = "all": every parsed document that no rule dropped gets a score; the
            // thresholds here split them three ways.
            let mut outcomes = BTreeSet::new();
            for record in audit_records(&out) {
                outcomes.extend(check_decision(&record));
            }
            assert_eq!(
                outcomes,
                ["drop", "pass", "review"].map(String::from).into(),
                "thresholds should split the generated corpus three ways"
            );
        }
    }
    for t in &trees[1..] {
        assert!(t == &trees[0], "outputs differ between thread counts");
    }

    // Calls gathered across chunks (the fixture BERT's scores do not depend on the batch): the
    // same outputs, in far fewer calls than chunks. The manifest records the config, which now
    // has the gather keys: compared apart, without them.
    let gathered_config = tmp.path().join("gathered.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "chunk_bytes = 4096",
        "chunk_bytes = 4096\ngather_documents = 512\ngather_wait_ms = 500",
    );
    std::fs::write(&gathered_config, text).unwrap();
    let out = tmp.path().join("out-gathered");
    let result = run_with(&gathered_config, &[&corpus], &out, &["-j", "3", "-v"]);
    assert!(result.status.success(), "{}", stderr(&result));
    let log = stderr(&result);
    assert!(
        !log.contains('\x1b'),
        "colour codes in a log that is not a terminal: {log}"
    );
    let calls: u64 = log
        .lines()
        .find(|l| l.contains("gathered calls"))
        .and_then(|l| l.split("calls=").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no gathered calls in the log: {log}"));
    // Without gathering there is a call (at least) for each chunk with a scored document: each
    // chunk closes at its first line end at or after 4096 bytes.
    let mut chunks = 0;
    for shard in std::fs::read_dir(&corpus).unwrap() {
        let mut bytes = 0;
        for line in lines(&shard.unwrap().path()) {
            bytes += line.len() + 1;
            if bytes >= 4096 {
                chunks += 1;
                bytes = 0;
            }
        }
        chunks += usize::from(bytes > 0);
    }
    let mut gathered = tree(&out);
    let mut plain = trees[0].clone();
    let manifest = |t: &mut BTreeMap<String, Vec<u8>>| -> Value {
        serde_json::from_slice(&t.remove("manifest.json").unwrap()).unwrap()
    };
    assert_eq!(
        manifest(&mut gathered)["shards"],
        manifest(&mut plain)["shards"]
    );
    assert!(gathered == plain, "gathering changed the outputs");
    assert!(
        calls > 0 && (calls as usize) < chunks,
        "{calls} calls for {chunks} chunks"
    );

    // One chunk per shard (400 documents): the pipeline cuts each chunk into several classifier
    // calls, which must not depend on the thread count either.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("chunk_bytes = 4096", "chunk_bytes = 4194304");
    std::fs::write(&config, text).unwrap();
    let big: Vec<_> = ["1", "3"]
        .iter()
        .map(|threads| {
            let out = tmp.path().join(format!("big-{threads}"));
            let report = run(&config, &corpus, &out, threads);
            // Every parsed document the rules did not drop: > 256 per shard, so more than one
            // classifier call per chunk.
            let parsed = 1200
                - report["destinations"]["errors"]["documents"]
                    .as_u64()
                    .unwrap();
            let scored = parsed - report["stages"][0]["dropped"].as_u64().unwrap();
            assert_eq!(report["stages"][2]["evaluated"], scored);
            assert!(scored > 3 * 256, "{scored}");
            tree(&out)
        })
        .collect();
    assert!(big[0] == big[1], "outputs differ between thread counts");
}

#[test]
fn a_device_this_build_lacks_is_a_config_error_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let config = classifier_config(tmp.path(), "escalated", 0.9, 0.5);
    let checked = sluice(&["check", "-c", config.to_str().unwrap()]);
    assert!(checked.status.success(), "{}", stderr(&checked));
    let stdout = String::from_utf8_lossy(&checked.stdout);
    assert!(
        stdout.contains("stage hazard-model (type classifier)") && stdout.contains("(toxic)"),
        "{stdout}"
    );

    let out = tmp.path().join("out");
    for (device, needle) in [("tpu", "unknown device"), ("metal", "metal")] {
        let result = sluice(&[
            "run",
            "-c",
            config.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--device",
            device,
            "-q",
        ]);
        assert_eq!(result.status.code(), Some(2), "{}", stderr(&result));
        let message = stderr(&result);
        assert!(
            message.contains("(hazard-model).device") && message.contains(needle),
            "{message}"
        );
        assert!(
            !out.exists(),
            "nothing is written before the config is valid"
        );
    }
}

/// A copy of the hashed-ngram fixture whose classifier bias is NaN: it loads, and scores NaN.
fn nan_model(dir: &Path) -> PathBuf {
    let model = dir.join("nan-model");
    std::fs::create_dir_all(&model).unwrap();
    let src = repo().join("fixtures/models/hashed-ngram");
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(src.join(file), model.join(file)).unwrap();
    }
    let bytes = std::fs::read(model.join("model.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut owned: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let mut data = view.data().to_vec();
            if name == "classifier.bias" {
                for value in data.chunks_mut(4) {
                    value.copy_from_slice(&f32::NAN.to_le_bytes());
                }
            }
            (name, view.dtype(), view.shape().to_vec(), data)
        })
        .collect();
    owned.sort_by(|a, b| a.0.cmp(&b.0));
    let views: Vec<(String, safetensors::tensor::TensorView)> = owned
        .iter()
        .map(|(name, dtype, shape, data)| {
            let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), data).unwrap();
            (name.clone(), view)
        })
        .collect();
    let out = safetensors::serialize(views, None).unwrap();
    std::fs::write(model.join("model.safetensors"), out).unwrap();
    model
}

#[test]
fn a_model_that_scores_nan_is_a_model_failure_not_a_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let model = nan_model(tmp.path());
    let config = test_config(tmp.path(), "zstd_level = 3");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[[stages]]\ntype = \"classifier\"\nid = \"nan-model\"\nmodel = {model:?}\nlabel = \"toxic\"\n\
         mode = \"escalated\"\ndrop_threshold = 0.9\nreview_threshold = 0.5\non_error = \"review\"\n"
    ));
    std::fs::write(&config, text).unwrap();
    // `check` warns.
    let checked = sluice(&["check", "-c", config.to_str().unwrap()]);
    assert!(checked.status.success(), "{}", stderr(&checked));
    let message = stderr(&checked);
    assert!(
        message.contains("stage nan-model: the model fails on a probe text")
            && message.contains("on_error = \"review\""),
        "{message}"
    );
    // A run applies on_error to every escalated document: review, with the error recorded.
    let out = tmp.path().join("out");
    let report = run_ok(&config, &[&repo().join("fixtures/corpus")], &out, &[]);
    let stage = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "nan-model")
        .unwrap();
    assert_eq!(stage["failed"], stage["evaluated"], "{stage}");
    assert_eq!(stage["passed"], 0, "{stage}");
    for record in audit_records(&out) {
        if let Some(entry) = classifier_entry(&record) {
            assert!(entry.get("score").is_none(), "{entry}");
            assert!(
                entry["error"].is_string(),
                "the model's error is recorded: {entry}"
            );
            assert_eq!(record["decision"], "review");
        }
    }
}
