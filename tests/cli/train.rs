//! `sluice train` and `sluice eval` end to end: train on fixtures/labeled, use the model in a
//! cascade with `sluice run`, measure the same cascade with `sluice eval`.

use std::path::Path;

use serde_json::Value;

use super::{path_str as path, read_json, repo, sluice, stderr};

const TRAIN: &str = "fixtures/labeled/hazard-train.jsonl";
const EVAL: &str = "fixtures/labeled/hazard-eval.jsonl";

/// `sluice eval --config CONFIG --data EVAL --json - EXTRA...`, which must succeed: its JSON (and
/// nothing else on stdout).
fn eval_json(config: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "eval",
        "--config",
        path(config),
        "--data",
        EVAL,
        "--json",
        "-",
    ];
    args.extend_from_slice(extra);
    let out = sluice(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("--json - prints only JSON")
}

/// A small hashed-ngram model (4,096 buckets keep the debug-build test fast).
fn train_hashed(out: &Path, seed: &str) -> std::process::Output {
    sluice(&[
        "train",
        "--kind",
        "hashed-ngram",
        "--data",
        TRAIN,
        "--output",
        path(out),
        "--positive",
        "hazard",
        "--buckets",
        "4096",
        "--dim",
        "16",
        "--seed",
        seed,
    ])
}

/// The hazard term stage escalating into a classifier stage on `model`.
fn cascade_config(dir: &Path, model: &Path, extra: &str) -> std::path::PathBuf {
    let terms = repo().join("configs/lists/hazard-terms.tsv");
    let config = dir.join("cascade.toml");
    std::fs::write(
        &config,
        format!(
            r#"[input]
id_field = "id"

[[stages]]
type = "terms"
id = "hazard-terms"
lists = [{terms:?}]
whole_word = true
case_insensitive = true
min_distinct = 2
action = "escalate"

[[stages]]
type = "classifier"
id = "hazard-model"
model = {model:?}
drop_threshold = 0.8
review_threshold = 0.5
{extra}
"#,
            terms = terms.to_str().unwrap(),
            model = path(model),
        ),
    )
    .unwrap();
    config
}

#[test]
fn hashed_ngram_trains_deterministically_and_serves_run_and_eval() {
    let tmp = tempfile::tempdir().unwrap();
    // Where configs/hazard-classifier.toml expects it, relative to a copy of configs/.
    let model = tmp.path().join("models/hazard-ngram");
    let out = train_hashed(&model, "7");
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("validation (40 examples)"), "{stdout}");
    assert!(stdout.contains("scores \"hazard\" by default"), "{stdout}");
    // Progress goes to stderr, one line per epoch when it is not a terminal.
    assert!(
        stderr(&out).contains("epoch 10: train loss"),
        "{}",
        stderr(&out)
    );

    let training = read_json(&model.join("training.json"));
    let validation = &training["report"]["validation"];
    let accuracy = validation["metrics"]["accuracy"].as_f64().unwrap();
    // 4% of the fixture's labels are flipped on purpose, so perfection is not expected.
    assert!(accuracy >= 0.85, "validation accuracy {accuracy}");
    assert!(validation["positive"]["roc_auc"].as_f64().unwrap() >= 0.9);
    let config = read_json(&model.join("config.json"));
    assert_eq!(config["model_type"], "hashed-ngram");
    assert_eq!(config["id2label"]["1"], "hazard");

    // The same seed writes the same bytes; another seed does not.
    let again = tmp.path().join("again");
    assert!(train_hashed(&again, "7").status.success());
    for file in ["config.json", "model.safetensors", "training.json"] {
        assert_eq!(
            std::fs::read(model.join(file)).unwrap(),
            std::fs::read(again.join(file)).unwrap(),
            "{file} differs between two runs with --seed 7"
        );
    }
    let other = tmp.path().join("other");
    assert!(train_hashed(&other, "8").status.success());
    assert_ne!(
        std::fs::read(model.join("model.safetensors")).unwrap(),
        std::fs::read(other.join("model.safetensors")).unwrap()
    );

    // The model in a cascade: `sluice run`.
    let config = cascade_config(tmp.path(), &model, "");
    let run_dir = tmp.path().join("run");
    let report = super::run_ok(&config, &[Path::new(EVAL)], &run_dir, &[]);
    let destination = |name: &str| report["destinations"][name]["documents"].as_u64().unwrap();

    // `sluice eval` on the same cascade and data reaches the same verdicts.
    let json = tmp.path().join("eval.json");
    let csv = tmp.path().join("sweep.csv");
    let out = sluice(&[
        "eval",
        "--config",
        path(&config),
        "--data",
        EVAL,
        "--json",
        path(&json),
        "--sweep",
        path(&csv),
        "--score-all",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "hazard-terms",
        "hazard-model",
        "cascade",
        "ROC AUC",
        "recall lost",
        "0.95",
    ] {
        assert!(
            table.contains(expected),
            "{expected:?} missing from:\n{table}"
        );
    }
    let eval = read_json(&json);
    assert_eq!(eval["documents"], 200);
    assert_eq!(eval["positive_label"], "hazard");
    assert_eq!(
        eval["cascade"]["dropped"].as_u64(),
        Some(destination("dropped"))
    );
    assert_eq!(
        eval["cascade"]["review"].as_u64(),
        Some(destination("review"))
    );
    assert_eq!(eval["cascade"]["kept"].as_u64(), Some(destination("kept")));
    let run_terms = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "hazard-terms")
        .unwrap();
    let stages = eval["stages"].as_array().unwrap();
    assert_eq!(stages[0]["escalated"], run_terms["escalated"]);
    assert_eq!(stages[1]["evaluated"], run_terms["escalated"]);

    let classifier = &eval["classifier"];
    assert!(
        classifier["roc_auc"].as_f64().unwrap() >= 0.8,
        "{classifier}"
    );
    assert!(classifier["roc_auc_all_documents"].as_f64().unwrap() >= 0.8);
    assert!(classifier["roc_auc_scope"]
        .as_str()
        .unwrap()
        .contains("escalated"));
    // Positives without two distinct listed terms never reach the model: recall lost.
    let missed = classifier["positives_missed_by_prefilter"]
        .as_u64()
        .unwrap();
    let positives = eval["positives"].as_u64().unwrap();
    assert!(missed > 0);
    let lost = classifier["recall_lost_by_prefilter"].as_f64().unwrap();
    assert!((lost - missed as f64 / positives as f64).abs() < 1e-12);
    // Cascade recall can never exceed what the prefilter lets through.
    let recall = eval["cascade"]["metrics"]["recall"].as_f64().unwrap();
    assert!(recall <= 1.0 - lost + 1e-12, "{recall} vs lost {lost}");

    let sweep = eval["sweep"].as_array().unwrap();
    assert_eq!(sweep.len(), 19);
    let csv = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 20);
    assert!(lines[0].starts_with("threshold,cascade_flagged,"));
    assert!(lines[0].ends_with(",all_precision,all_recall,all_f1,all_fpr"));
    // Raising the threshold never flags more documents.
    let flagged: Vec<u64> = lines[1..]
        .iter()
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert!(flagged.windows(2).all(|w| w[0] >= w[1]), "{flagged:?}");

    // mode = "all": the classifier sees every document, so the prefilter loses nothing.
    let all_dir = tmp.path().join("all");
    std::fs::create_dir(&all_dir).unwrap();
    let config = cascade_config(&all_dir, &model, "mode = \"all\"");
    let eval = eval_json(&config, &[]);
    assert_eq!(eval["classifier"]["judged"], 200);
    assert_eq!(eval["classifier"]["positives_missed_by_prefilter"], 0);
    assert_eq!(eval["classifier"]["recall_lost_by_prefilter"], 0.0);

    // The example config, verbatim, with the model trained where its header says.
    let configs = tmp.path().join("configs");
    std::fs::create_dir_all(configs.join("lists")).unwrap();
    for file in ["hazard-classifier.toml", "lists/hazard-terms.tsv"] {
        std::fs::copy(repo().join("configs").join(file), configs.join(file)).unwrap();
    }
    let example = configs.join("hazard-classifier.toml");
    let eval = eval_json(&example, &[]);
    assert_eq!(eval["stages"].as_array().unwrap().len(), 3);
    assert_eq!(eval["classifier"]["id"], "hazard-model");
    let out = super::run_with(
        &example,
        &[Path::new("fixtures/corpus")],
        &tmp.path().join("example-run"),
        &[],
    );
    // fixtures/corpus has malformed lines and a broken shard on purpose: exit 0 or 1, never 2/3.
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(&out));
}

#[test]
fn head_trains_on_a_sentence_encoder_with_cached_embeddings() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let train = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--kind",
            "head",
            "--encoder",
            "fixtures/models/st-mean",
            "--data",
            TRAIN,
            "--output",
            path(out),
            "--positive",
            "hazard",
            "--cache-dir",
            path(&cache),
            "--epochs",
            "5",
        ];
        args.extend_from_slice(extra);
        sluice(&args)
    };
    let linear = tmp.path().join("linear");
    let out = train(&linear, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("embedding 400 examples"),
        "{}",
        stderr(&out)
    );
    let mlp = tmp.path().join("mlp");
    let out = train(&mlp, &["--hidden", "8"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("embeddings: cached"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("embedding 400"), "{}", stderr(&out));
    // Self-contained: the encoder's files are copied beside the head.
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "modules.json",
        "1_Pooling/config.json",
        "head.safetensors",
        "head.json",
        "training.json",
    ] {
        assert!(mlp.join(file).is_file(), "{file} missing");
    }
    assert_eq!(read_json(&mlp.join("head.json"))["head_activation"], "relu");
    // The stage loads it (a random 16-wide encoder: only that it runs is asserted).
    let config = cascade_config(tmp.path(), &mlp, "mode = \"all\"");
    let eval = eval_json(&config, &[]);
    assert_eq!(eval["classifier"]["judged"], 200);
    assert_eq!(eval["classifier"]["failed"], 0);
}

#[test]
fn bad_training_and_eval_input_fails_with_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("bad.jsonl");
    std::fs::write(
        &data,
        "{\"text\": \"fine\", \"label\": \"a\"}\n{\"text\": \"no label\"}\n",
    )
    .unwrap();
    let model = tmp.path().join("m");
    let out = sluice(&[
        "train",
        "--kind",
        "hashed-ngram",
        "--data",
        path(&data),
        "--output",
        path(&model),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("bad.jsonl:2: no field label"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!model.exists());

    // --kind head needs an encoder.
    let out = sluice(&[
        "train",
        "--kind",
        "head",
        "--data",
        TRAIN,
        "--output",
        path(&model),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--encoder"), "{}", stderr(&out));

    // An existing model directory is not replaced without --force.
    std::fs::create_dir(&model).unwrap();
    std::fs::write(model.join("precious.txt"), "x").unwrap();
    let out = train_hashed(&model, "1");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert!(model.join("precious.txt").is_file());

    // Eval: a label set without an obvious positive asks for --positive.
    let config = tmp.path().join("rules.toml");
    std::fs::write(
        &config,
        "[[stages]]\ntype = \"rules\"\nid = \"r\"\n[[stages.rules]]\nid = \"x\"\npattern = \"sarin\"\naction = \"drop\"\n",
    )
    .unwrap();
    let out = sluice(&["eval", "--config", path(&config), "--data", EVAL]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--positive"), "{}", stderr(&out));
    // Without a classifier: per-stage and cascade figures only.
    let eval = eval_json(&config, &["--positive", "hazard"]);
    assert!(eval.get("classifier").is_none());
    assert!(eval.get("sweep").is_none());
    assert_eq!(eval["stages"][0]["id"], "r");
    let out = sluice(&["eval", "--config", path(&config), "--data", path(&data)]);
    assert!(
        stderr(&out).contains("bad.jsonl:2: no field label"),
        "{}",
        stderr(&out)
    );
}

/// Labeled documents longer than one window: six fixture texts each, a "hazard" document holding
/// exactly one hazardous text among benign ones (anywhere), a "benign" one none.
fn long_documents(path: &Path) {
    let examples: Vec<Value> = std::fs::read_to_string(repo().join(TRAIN))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let text = |label: &str| -> Vec<String> {
        examples
            .iter()
            .filter(|e| e["label"] == label)
            .map(|e| e["text"].as_str().unwrap().to_string())
            .collect()
    };
    let (hazard, benign) = (text("hazard"), text("benign"));
    let mut out = String::new();
    for d in 0..80 {
        let positive = d % 5 < 2;
        let mut parts: Vec<&str> = (0..6)
            .map(|k| benign[(d * 7 + k * 13) % benign.len()].as_str())
            .collect();
        if positive {
            parts[(d * 3) % 6] = &hazard[d % hazard.len()];
        }
        let label = if positive { "hazard" } else { "benign" };
        out.push_str(
            &serde_json::json!({"id": format!("d{d}"), "text": parts.join(" "), "label": label})
                .to_string(),
        );
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

/// The classifier stage's score of every document of `data` in a real `sluice run` (mode =
/// "all", every document audited), by id, with its window count.
fn stage_scores(
    dir: &Path,
    model: &Path,
    data: &Path,
    extra: &str,
) -> std::collections::HashMap<String, (f64, usize)> {
    let config = dir.join("score.toml");
    std::fs::write(
        &config,
        format!(
            "[input]\nid_field = \"id\"\n[output]\naudit = \"matched\"\n\n[[stages]]\ntype = \"classifier\"\n\
             id = \"m\"\nmodel = {:?}\nmode = \"all\"\ndrop_threshold = 1.0\nreview_threshold = 0.0\n{extra}\n",
            path(model)
        ),
    )
    .unwrap();
    let out = dir.join("out");
    let _ = std::fs::remove_dir_all(&out);
    super::run_ok(&config, &[data], &out, &["--force"]);
    super::json_lines(&out.join("audit").join(data.file_name().unwrap()))
        .into_iter()
        .map(|record| {
            let stage = &record["stages"][0];
            let id = record["id"].as_str().unwrap().to_string();
            (
                id,
                (
                    stage["score"].as_f64().unwrap(),
                    stage["windows"].as_array().unwrap().len(),
                ),
            )
        })
        .collect()
}

/// Train as you serve: for both kinds and every aggregation, the probability training reports
/// for each validation example (`--predictions`) is the score the classifier stage gives that
/// document in a `sluice run` of a config that sets no windowing (so the model's recorded
/// scoring applies), within 1e-5, on documents of several windows. A config that overrides the
/// aggregation scores otherwise, and `sluice check` says so.
#[test]
fn training_probabilities_are_the_stage_scores() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("long.jsonl");
    long_documents(&data);
    // The head's window comes from the encoder's sentence_bert_config.json (no --max-tokens).
    let encoder = tmp.path().join("encoder");
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "modules.json",
        "1_Pooling/config.json",
    ] {
        let to = encoder.join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(repo().join("fixtures/models/st-mean").join(file), to).unwrap();
    }
    std::fs::write(
        encoder.join("sentence_bert_config.json"),
        r#"{"max_seq_length": 32}"#,
    )
    .unwrap();
    let kinds: [(&str, &[&str]); 2] = [
        (
            "hashed-ngram",
            &[
                "--buckets",
                "4096",
                "--dim",
                "16",
                "--max-tokens",
                "24",
                "--stride",
                "4",
            ],
        ),
        (
            "head",
            &[
                "--encoder",
                path(&encoder),
                "--no-cache",
                "--stride",
                "8",
                "--lr",
                "0.05",
            ],
        ),
    ];
    for (kind, kind_args) in kinds {
        for aggregate in ["max", "mean", "first"] {
            let what = format!("{kind} {aggregate}");
            let model = tmp.path().join(format!("{kind}-{aggregate}"));
            let predictions = tmp.path().join(format!("{kind}-{aggregate}.jsonl"));
            let mut args = vec![
                "train",
                "--kind",
                kind,
                "--data",
                path(&data),
                "--output",
                path(&model),
                "--positive",
                "hazard",
                "--validation",
                "0.5",
                "--epochs",
                "4",
                "--aggregate",
                aggregate,
                "--predictions",
                path(&predictions),
                "--quiet",
            ];
            args.extend_from_slice(kind_args);
            let out = sluice(&args);
            assert!(out.status.success(), "{what}: {}", stderr(&out));
            let scoring_file = if kind == "head" {
                "head.json"
            } else {
                "config.json"
            };
            let scoring = &read_json(&model.join(scoring_file))["scoring"];
            assert_eq!(scoring["aggregate"], aggregate, "{what}: {scoring}");
            let window = if kind == "head" { 32 } else { 24 };
            assert_eq!(scoring["max_tokens"], window, "{what}: {scoring}");
            let scores = stage_scores(tmp.path(), &model, &data, "");
            let predicted = super::json_lines(&predictions);
            assert_eq!(predicted.len(), 40, "{what}");
            let mut several = 0;
            for p in &predicted {
                let id = format!("d{}", p["example"]);
                let (score, windows) = scores[&id];
                let trained = p["score"].as_f64().unwrap();
                assert!(
                    (score - trained).abs() < 1e-5,
                    "{what} {id}: the stage scores {score}, training reported {trained}"
                );
                several += usize::from(windows > 1);
            }
            // Every document is several windows long (the stage scores only the first with
            // aggregate = "first").
            if aggregate != "first" {
                assert_eq!(several, 40, "{what}");
            }
            if (kind, aggregate) == ("hashed-ngram", "max") {
                // Overriding the trained aggregation changes the scores, with a warning.
                let first = stage_scores(tmp.path(), &model, &data, "aggregate = \"first\"");
                let moved = predicted
                    .iter()
                    .filter(|p| {
                        let id = format!("d{}", p["example"]);
                        (first[&id].0 - p["score"].as_f64().unwrap()).abs() > 1e-3
                    })
                    .count();
                assert!(moved > 0, "aggregate = \"first\" gave the trained scores");
                let check = sluice(&["check", "-c", path(&tmp.path().join("score.toml"))]);
                assert!(check.status.success(), "{}", stderr(&check));
                let said = format!(
                    "{}{}",
                    String::from_utf8_lossy(&check.stdout),
                    stderr(&check)
                );
                assert!(
                    said.contains("scores otherwise than the model was trained (aggregate = \"first\" (trained with \"max\"))"),
                    "{said}"
                );
            }
        }
    }
}
