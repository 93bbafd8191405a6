//! Parquet shards: the pyarrow-written fixtures (`fixtures/parquet/`, see its make_parquet.py),
//! read back by pyarrow (`tests/parquet/check_outputs.py`) and by sluice's own reader; files
//! written here with sluice's writer for the larger cases; every format with every compression.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use serde_json::Value;
use sluice_io::arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use sluice_io::arrow_select::concat::concat_batches;
use sluice_io::{ParquetCodec, ParquetOptions, ParquetReader, ParquetWriter};

use super::{
    generate_corpus, json_lines, lines, path_str, read_any, read_json, repo, run_ok, run_with,
    sluice, stderr, test_config, tree,
};

fn fixtures() -> PathBuf {
    repo().join("fixtures/parquet")
}

/// python3 with pyarrow (installed by tests/parquet/fetch-pyarrow.sh, as .ci/run does); `None`,
/// saying so, where it is missing outside CI.
fn pyarrow() -> Option<Command> {
    let site = repo().join(".cache/python/pyarrow");
    let mut python = Command::new("python3");
    python.env("PYTHONPATH", &site).current_dir(repo());
    let works = Command::new("python3")
        .env("PYTHONPATH", &site)
        .args(["-c", "import pyarrow.parquet"])
        .output()
        .is_ok_and(|o| o.status.success());
    if works {
        return Some(python);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "pyarrow missing in CI: tests/parquet/fetch-pyarrow.sh installs it"
    );
    eprintln!("SKIPPED: pyarrow read-back: run tests/parquet/fetch-pyarrow.sh first");
    None
}

/// Checks `out`'s Parquet outputs against their inputs with pyarrow (see check_outputs.py).
pub(super) fn pyarrow_check(out: &Path, limits: &[&str]) {
    let Some(mut python) = pyarrow() else { return };
    let result = python
        .arg("tests/parquet/check_outputs.py")
        .arg(out)
        .args(limits)
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "pyarrow read-back: {}{}",
        String::from_utf8_lossy(&result.stdout),
        stderr(&result)
    );
}

/// Every row of a Parquet file, as one batch.
fn read_all(path: &Path) -> RecordBatch {
    let reader = ParquetReader::open(path).unwrap();
    let mut batches = Vec::new();
    for group in 0..reader.row_groups() {
        for batch in reader.batches(group, 1000).unwrap() {
            batches.push(batch.unwrap());
        }
    }
    concat_batches(&reader.schema(), &batches).unwrap()
}

/// Each input row's destination by the run's records: `kept` unless an audit or error record
/// says otherwise.
fn destinations(out: &Path, shard: &str, rows: usize) -> Vec<String> {
    let mut to = vec!["kept".to_string(); rows];
    for record in json_lines(&out.join("audit").join(format!("{shard}.jsonl.zst"))) {
        let row = record["row"].as_u64().unwrap() as usize;
        assert_eq!(record["line"].as_u64().unwrap() as usize, row + 1);
        to[row] = record["decision"].as_str().unwrap().to_string();
    }
    for record in json_lines(&out.join("errors").join(format!("{shard}.jsonl.zst"))) {
        to[record["row"].as_u64().unwrap() as usize] = "errors".into();
    }
    to
}

/// Sluice's own check beside pyarrow's: each output has the input's schema and exactly the input
/// rows its destination got, in order. Returns the rows per destination.
fn assert_outputs_are_the_input_split(out: &Path, input: &Path, shard: &str) -> [usize; 4] {
    let whole = read_all(input);
    let to = destinations(out, shard, whole.num_rows());
    let mut counts = [0; 4];
    for (i, stream) in ["kept", "dropped", "review"].iter().enumerate() {
        let path = out.join(stream).join(shard);
        let written = read_all(&path);
        assert_eq!(
            written.schema(),
            whole.schema(),
            "{stream}: the input's schema"
        );
        let mask: sluice_io::arrow_array::BooleanArray =
            to.iter().map(|d| Some(d == stream)).collect();
        let expected = sluice_io::arrow_select::filter::filter_record_batch(&whole, &mask).unwrap();
        assert_eq!(written.num_rows(), expected.num_rows(), "{stream} rows");
        for (a, b) in written.columns().iter().zip(expected.columns()) {
            assert_eq!(a.to_data(), b.to_data(), "{stream}: a column differs");
        }
        counts[i] = written.num_rows();
    }
    counts[3] = to.iter().filter(|d| *d == "errors").count();
    assert_eq!(counts.iter().sum::<usize>(), whole.num_rows());
    counts
}

#[test]
fn hugging_face_layout_is_read_and_every_column_carried_over_as_pyarrow_reads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let config = repo().join("configs/hazard-cascade.toml");
    let report = run_ok(&config, &[&fixtures().join("hf")], &out, &[]);
    assert_eq!(report["shards"]["done"], 2, "{report}");
    // Names are relative to the files' deepest common directory (hf/data).
    let shards = [
        "train-00000-of-00002.parquet",
        "train-00001-of-00002.parquet",
    ];
    let mut total = [0; 4];
    for shard in shards {
        let input = fixtures().join("hf/data").join(shard);
        let counts = assert_outputs_are_the_input_split(&out, &input, shard);
        for (t, c) in total.iter_mut().zip(counts) {
            *t += c;
        }
        // Key-value metadata (Hugging Face's own) comes through.
        let kept = ParquetReader::open(&out.join("kept").join(shard)).unwrap();
        assert_eq!(kept.schema().metadata()["origin"], "sluice fixture");
        assert!(kept.schema().metadata().contains_key("huggingface"));
    }
    // The fixture's documents land as the JSONL fixtures' do; one row's text is null.
    let d = &report["destinations"];
    assert_eq!(
        [&d["kept"], &d["dropped"], &d["review"], &d["errors"]]
            .map(|v| v["documents"].as_u64().unwrap() as usize),
        total
    );
    assert!(total[1] >= 1 && total[2] >= 3, "{total:?}");
    assert_eq!(total[3], 1);
    let errors = json_lines(&out.join("errors/train-00000-of-00002.parquet.jsonl.zst"));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["row"], 5);
    assert_eq!(errors[0]["row_group"], 0);
    assert_eq!(errors[0]["kind"], "text_not_string");
    assert_eq!(errors[0]["error"], "field `text` is null, not a string");
    // Audit records point at the row and its row group (row groups of 8 rows in the fixture).
    let audit = json_lines(&out.join("audit/train-00000-of-00002.parquet.jsonl.zst"));
    assert!(!audit.is_empty());
    for record in &audit {
        let row = record["row"].as_u64().unwrap();
        assert_eq!(record["row_group"].as_u64().unwrap(), row / 8);
    }
    assert!(audit.iter().any(|r| r["row_group"] != 0), "{audit:?}");
    let manifest = read_json(&out.join("manifest.json"));
    assert_eq!(
        manifest["shards"][0]["records_name"],
        "train-00000-of-00002.parquet.jsonl.zst"
    );
    // The HTML report reads the Parquet outputs too (the run wrote it; `sluice report` again).
    std::fs::remove_file(out.join("report.html")).unwrap();
    let result = sluice(&["report", path_str(&out)]);
    assert!(result.status.success(), "{}", stderr(&result));
    assert!(!stderr(&result).contains("warning"), "{}", stderr(&result));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("dirty bomb"),
        "the sampled dropped document's text"
    );
    pyarrow_check(&out, &["1048576", "ZSTD"]);
}

#[test]
fn nested_struct_fields_name_text_and_id_and_nulls_are_error_records() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("nested.toml");
    let text = std::fs::read_to_string(repo().join("configs/hazard-cascade.toml"))
        .unwrap()
        .replace("text_field = \"text\"", "text_field = \"doc.body\"")
        .replace("id_field = \"id\"", "id_field = \"doc.id\"")
        .replace(
            "lists/",
            &format!("{}/", repo().join("configs/lists").display()),
        );
    std::fs::write(&config, text).unwrap();
    let out = tmp.path().join("out");
    let input = fixtures().join("nested/nested.parquet");
    run_ok(&config, &[&input], &out, &["-j", "2"]);
    let counts = assert_outputs_are_the_input_split(&out, &input, "nested.parquet");
    assert_eq!(counts, [2, 1, 1, 2], "kept, dropped, review, errors");
    let errors = json_lines(&out.join("errors/nested.parquet.jsonl.zst"));
    let kinds: Vec<(u64, &str)> = errors
        .iter()
        .map(|e| (e["row"].as_u64().unwrap(), e["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds, [(2, "missing_text"), (3, "text_not_string")]);
    assert_eq!(errors[1]["row_group"], 0);
    // The id comes from the struct too (an integer column).
    let audit = json_lines(&out.join("audit/nested.parquet.jsonl.zst"));
    let ids: Vec<&str> = audit.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["1", "5"]);
    let dropped = json_lines(&out.join("audit/nested.parquet.jsonl.zst"));
    assert_eq!(
        dropped[1]["row_group"], 1,
        "row 4 is in the second group of 4"
    );
    // `sluice audit show` joins the text from the Parquet output.
    let shown = sluice(&["audit", path_str(&out), "show"]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("dirty bomb]] at home"), "{shown}");
    assert!(shown.contains("organophosphorus"), "{shown}");
    pyarrow_check(&out, &[]);
}

#[test]
fn parquet_records_follow_output_compression() {
    let tmp = tempfile::tempdir().unwrap();
    for (compression, name, magic) in [
        ("gzip", "nested.parquet.jsonl.gz", &[0x1f, 0x8b][..]),
        ("none", "nested.parquet.jsonl", &b"{"[..]),
        (
            "same",
            "nested.parquet.jsonl.zst",
            &[0x28, 0xb5, 0x2f, 0xfd][..],
        ),
    ] {
        let config = tmp.path().join(format!("{compression}.toml"));
        let text = std::fs::read_to_string(repo().join("configs/hazard-cascade.toml"))
            .unwrap()
            .replace(
                "compression = \"same\"",
                &format!("compression = \"{compression}\""),
            )
            .replace(
                "lists/",
                &format!("{}/", repo().join("configs/lists").display()),
            );
        std::fs::write(&config, text).unwrap();
        let out = tmp.path().join(compression);
        run_ok(&config, &[&fixtures().join("nested")], &out, &[]);
        // No text column at `text`: every row is an error, no record is an audit one.
        let errors = std::fs::read(out.join("errors").join(name)).unwrap();
        assert!(errors.starts_with(magic), "errors/{name}");
        assert!(
            read_any(&out.join("audit").join(name)).is_empty(),
            "audit/{name}"
        );
        assert_eq!(
            lines(&out.join("errors").join(name)).len(),
            6,
            "no text column"
        );
        let manifest = read_json(&out.join("manifest.json"));
        assert_eq!(manifest["shards"][0]["records_name"], name);
        // Parquet outputs are Parquet whatever output.compression says.
        assert!(std::fs::read(out.join("kept/nested.parquet"))
            .unwrap()
            .starts_with(b"PAR1"));
        pyarrow_check(&out, &[]);
    }
}

#[test]
fn a_text_column_that_is_not_text_sends_every_row_to_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let input = fixtures().join("bad/int-text.parquet");
    let config = repo().join("configs/hazard-cascade.toml");
    let report = run_ok(&config, &[&input], &out, &[]);
    assert_eq!(report["destinations"]["errors"]["documents"], 3);
    let errors = json_lines(&out.join("errors/int-text.parquet.jsonl.zst"));
    let rows: Vec<u64> = errors.iter().map(|e| e["row"].as_u64().unwrap()).collect();
    assert_eq!(rows, [0, 1, 2]);
    assert_eq!(errors[0]["error"], "field `text` is int64, not a string");
    assert_eq!(errors[2]["error"], "field `text` is null, not a string");
    // The outputs exist, empty, with the input's schema.
    let kept = ParquetReader::open(&out.join("kept/int-text.parquet")).unwrap();
    assert_eq!(kept.rows(), 0);
    assert_eq!(kept.schema().fields().len(), 2);
}

#[test]
fn a_codec_sluice_lacks_and_wrapped_parquet_fail_their_shard_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    let parquet = std::fs::read(fixtures().join("nested/nested.parquet")).unwrap();
    std::fs::copy(
        fixtures().join("brotli/brotli.parquet"),
        corpus.join("brotli.parquet"),
    )
    .unwrap();
    std::fs::write(
        corpus.join("a.parquet.zst"),
        zstd::encode_all(&parquet[..], 1).unwrap(),
    )
    .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &parquet).unwrap();
    let gz = gz.finish().unwrap();
    std::fs::write(corpus.join("b.parquet.gz"), &gz).unwrap();
    // Misnamed: gzip-compressed Parquet called JSONL is not read as lines of garbage.
    std::fs::write(corpus.join("c.jsonl.gz"), &gz).unwrap();
    // JSON lines called Parquet.
    std::fs::write(corpus.join("d.parquet"), b"{\"text\": \"x\"}\n").unwrap();
    std::fs::write(corpus.join("ok.jsonl"), b"{\"text\": \"fine\"}\n").unwrap();
    let out = tmp.path().join("out");
    let config = repo().join("configs/hazard-cascade.toml");
    let result = run_with(&config, &[&corpus], &out, &[]);
    assert!(!result.status.success(), "failed shards fail the run");
    let report = read_json(&out.join("report.json"));
    assert_eq!(
        report["shards"]["done"], 1,
        "the good shard is done: {report}"
    );
    let failed: Vec<(String, String)> = report["failed_shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["error"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let error = |name: &str| {
        failed
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} failed: {failed:?}"))
            .1
            .clone()
    };
    assert!(error("brotli.parquet").contains("brotli"), "{failed:?}");
    assert!(
        error("a.parquet.zst").contains("zstd-compressed parquet cannot be streamed"),
        "{failed:?}"
    );
    for name in ["b.parquet.gz", "c.jsonl.gz"] {
        assert!(
            error(name).contains("gzip-compressed parquet cannot be streamed")
                && error(name).contains("decompress it first"),
            "{failed:?}"
        );
    }
    assert!(
        error("d.parquet").contains("not a parquet file"),
        "{failed:?}"
    );
    assert!(
        !out.join("kept/brotli.parquet").exists(),
        "nothing half-written"
    );
}

/// The test config (small chunks) with `settings` for its `[output.parquet]` table.
fn parquet_config(dir: &Path, settings: &str) -> PathBuf {
    let path = test_config(dir, "zstd_level = 3");
    let text = std::fs::read_to_string(&path).unwrap();
    let header = "[output.parquet]";
    let (before, after) = text.split_once(header).expect("the config has the table");
    // The table's keys run to the first blank line.
    let rest = &after[after.find("\n\n").unwrap()..];
    std::fs::write(&path, format!("{before}{header}\n{settings}{rest}")).unwrap();
    path
}

/// Writes `docs` (the generated corpus' lines) as a Parquet file with an id, the text and a
/// number column, in row groups of `row_group_rows`.
fn write_parquet(path: &Path, docs: &[Value], row_group_rows: usize, codec: ParquetCodec) {
    let ids: Vec<Option<&str>> = docs.iter().map(|d| d["id"].as_str()).collect();
    let texts: Vec<Option<&str>> = docs.iter().map(|d| d["text"].as_str()).collect();
    let numbers: Vec<i64> = (0..docs.len() as i64).collect();
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(StringArray::from(ids)) as ArrayRef),
        ("text", Arc::new(StringArray::from(texts)) as ArrayRef),
        ("n", Arc::new(Int64Array::from(numbers)) as ArrayRef),
    ])
    .unwrap();
    let options = ParquetOptions {
        codec,
        level: if codec == ParquetCodec::Gzip { 6 } else { 3 },
        row_group_rows,
        row_group_bytes: 64 << 20,
    };
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ParquetWriter::new(file, batch.schema(), options, "test").unwrap();
    writer.write(&batch).unwrap();
    writer.finish().unwrap();
}

/// The documents of a generated corpus' shards, in order.
fn generated(dir: &Path) -> Vec<Value> {
    let mut shards: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    shards.sort();
    shards
        .iter()
        .flat_map(|s| lines(s))
        .filter_map(|l| serde_json::from_slice(&l).ok())
        .collect()
}

#[test]
fn parquet_outputs_are_byte_identical_whatever_the_thread_count_and_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let jsonl = tmp.path().join("jsonl");
    generate_corpus(&jsonl, 2, 2500, 5);
    let docs = generated(&jsonl);
    let corpus = tmp.path().join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    let half = docs.len() / 2;
    write_parquet(
        &corpus.join("a.parquet"),
        &docs[..half],
        700,
        ParquetCodec::Snappy,
    );
    write_parquet(
        &corpus.join("b.parquet"),
        &docs[half..],
        300,
        ParquetCodec::Zstd,
    );
    // Small chunks: each row group is read in many batches; small output row groups.
    let config = parquet_config(tmp.path(), "row_group_rows = 300\nrow_group_bytes = 65536");
    let mut trees = Vec::new();
    for (i, threads) in ["1", "8", "3"].iter().enumerate() {
        let out = tmp.path().join(format!("out-{i}"));
        run_ok(&config, &[&corpus], &out, &["-j", threads]);
        trees.push(tree(&out));
    }
    assert_eq!(trees[0].len(), 2 * 5 + 1);
    for t in &trees[1..] {
        assert!(t == &trees[0], "outputs differ between thread counts");
    }
    let out = tmp.path().join("out-0");
    let kept = ParquetReader::open(&out.join("kept/a.parquet")).unwrap();
    assert!(kept.row_groups() > 1, "bounded row groups");
    assert!((0..kept.row_groups()).all(|g| kept.row_group_rows(g) <= 300));
    for shard in ["a.parquet", "b.parquet"] {
        assert_outputs_are_the_input_split(&out, &corpus.join(shard), shard);
    }
    pyarrow_check(&out, &["300", "ZSTD"]);
    // The same documents as JSONL land the same way.
    let same = tmp.path().join("same.jsonl");
    let mut text = String::new();
    for doc in &docs {
        text.push_str(&serde_json::to_string(doc).unwrap());
        text.push('\n');
    }
    std::fs::write(&same, text).unwrap();
    let from_jsonl = run_ok(&config, &[&same], &tmp.path().join("jsonl-out"), &[]);
    let from_parquet = read_json(&out.join("report.json"));
    for d in ["kept", "dropped", "review", "errors"] {
        assert_eq!(
            from_jsonl["destinations"][d]["documents"],
            from_parquet["destinations"][d]["documents"],
            "{d}"
        );
    }
    // A rerun skips both shards; a removed output makes its shard redone, to the same bytes.
    let again = run_ok(&config, &[&corpus], &out, &[]);
    assert_eq!(again["shards"]["skipped"], 2);
    std::fs::remove_file(out.join("audit/b.parquet.jsonl.zst")).unwrap();
    let again = run_ok(&config, &[&corpus], &out, &[]);
    assert_eq!(again["shards"]["skipped"], 1);
    assert!(tree(&out) == trees[0], "resumed to the same outputs");
}

#[test]
fn rethreshold_of_parquet_shards_is_byte_identical_to_a_fresh_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("raise");
    let hf = fixtures().join("hf");
    let nested = fixtures().join("nested");
    let report = super::audit::assert_rethreshold_equals_fresh_run(
        &dir,
        (&[], ""),
        (&[("min_distinct = 2 ", "min_distinct = 3 ")], ""),
        &[&hf, &nested],
        &["hazard-terms.min_distinct=3"],
    );
    assert_eq!(report["shards"]["done"], 3);
    pyarrow_check(&dir.join("redone"), &[]);
}

/// The same documents in every shard format and compression, judged alike; each output in the
/// format (and, for Parquet, the codec) asked for.
#[test]
fn every_format_with_every_compression_is_read_and_written() {
    let tmp = tempfile::tempdir().unwrap();
    let jsonl = tmp.path().join("jsonl");
    generate_corpus(&jsonl, 1, 400, 9);
    let docs = generated(&jsonl);
    let plain: Vec<u8> = docs
        .iter()
        .flat_map(|d| {
            let mut line = serde_json::to_vec(d).unwrap();
            line.push(b'\n');
            line
        })
        .collect();
    let corpus = tmp.path().join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut e, &plain).unwrap();
        e.finish().unwrap()
    };
    let zst = zstd::encode_all(&plain[..], 3).unwrap();
    let inputs: [(&str, &[u8]); 4] = [
        ("plain.jsonl", &plain),
        ("zst.jsonl.zst", &zst),
        ("zstd.jsonl.zstd", &zst),
        ("gz.jsonl.gz", &gz),
    ];
    for (name, bytes) in inputs {
        std::fs::write(corpus.join(name), bytes).unwrap();
    }
    let codecs = [
        ("none", ParquetCodec::None, "UNCOMPRESSED"),
        ("snappy", ParquetCodec::Snappy, "SNAPPY"),
        ("gzip", ParquetCodec::Gzip, "GZIP"),
        ("lz4", ParquetCodec::Lz4, "LZ4"),
        ("zstd", ParquetCodec::Zstd, "ZSTD"),
    ];
    for (name, codec, _) in codecs {
        write_parquet(&corpus.join(format!("{name}.parquet")), &docs, 150, codec);
    }
    for (output_codec, _, pyarrow_name) in codecs {
        let config = parquet_config(tmp.path(), &format!("compression = \"{output_codec}\""));
        let out = tmp.path().join(format!("out-{output_codec}"));
        let report = run_ok(&config, &[&corpus], &out, &[]);
        assert_eq!(report["shards"]["done"], 9, "{report}");
        let manifest = read_json(&out.join("manifest.json"));
        let mut seen = std::collections::BTreeSet::new();
        for entry in manifest["shards"].as_array().unwrap() {
            let stats = &entry["stats"];
            seen.insert(
                ["kept", "dropped", "review", "errors"]
                    .map(|d| stats[d]["documents"].as_u64().unwrap()),
            );
        }
        assert_eq!(seen.len(), 1, "every format judged alike: {seen:?}");
        // JSONL outputs keep their compression (`.jsonl.zstd` is written `.jsonl.zst`).
        for (name, magic) in [
            ("kept/plain.jsonl", &b"{"[..]),
            ("kept/zst.jsonl.zst", &[0x28, 0xb5, 0x2f, 0xfd][..]),
            ("kept/zstd.jsonl.zst", &[0x28, 0xb5, 0x2f, 0xfd][..]),
            ("kept/gz.jsonl.gz", &[0x1f, 0x8b][..]),
            ("kept/zstd.parquet", &b"PAR1"[..]),
        ] {
            let bytes = std::fs::read(out.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(bytes.starts_with(magic), "{name}");
        }
        for (name, ..) in codecs {
            let shard = format!("{name}.parquet");
            assert_outputs_are_the_input_split(&out, &corpus.join(&shard), &shard);
        }
        pyarrow_check(&out, &["1048576", pyarrow_name]);
    }
}

#[test]
fn parquet_output_settings_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    for (extra, message) in [
        ("compression = \"brotli\"", "unknown variant `brotli`"),
        (
            "compression = \"snappy\"\nlevel = 3",
            "output.parquet.level",
        ),
        ("compression = \"zstd\"\nlevel = 23", "output.parquet.level"),
        ("row_group_rows = 0", "output.parquet.row_group_rows"),
        ("row_group_bytes = 10", "output.parquet.row_group_bytes"),
        ("rows = 10", "unknown field `rows`"),
    ] {
        let config = parquet_config(tmp.path(), extra);
        let result = sluice(&["check", "-c", path_str(&config)]);
        assert!(!result.status.success(), "{extra}");
        assert!(
            stderr(&result).contains(message),
            "{extra}: {}",
            stderr(&result)
        );
    }
}

#[test]
fn array_data_of_every_fixture_column_type_survives() {
    // The fixture has a struct, a list, a map, a dictionary, timestamps, decimals, binary,
    // unsigned 64-bit: all carried (a regression guard on the columns themselves).
    let reader =
        ParquetReader::open(&fixtures().join("hf/data/train-00000-of-00002.parquet")).unwrap();
    let schema = reader.schema();
    let types: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{}", f.data_type()))
        .collect();
    for wanted in [
        "Struct",
        "List",
        "Map",
        "Dictionary",
        "Timestamp",
        "Decimal128",
        "Binary",
        "UInt64",
    ] {
        assert!(
            types.iter().any(|t| t.contains(wanted)),
            "{wanted} in {types:?}"
        );
    }
    assert!(reader.row_groups() > 1);
    let batch = read_all(&fixtures().join("hf/data/train-00000-of-00002.parquet"));
    assert!(batch.column(1).null_count() == 1, "one null text");
}
