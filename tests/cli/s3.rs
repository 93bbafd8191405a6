//! Inputs in object storage, against a real S3-compatible server: SeaweedFS on 127.0.0.1,
//! started by `scripts/s3.sh start` (as `.ci/run` does). Shards are uploaded with boto3 (from
//! the same venv), not with sluice's own client. Where the server is not running the tests say
//! SKIPPED, except when `SLUICE_S3_TESTS=require` (set by `.ci/run`): then they fail.
//!
//! Each test works under its own key prefix; the one that kills the server holds the lock
//! alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use serde_json::Value;

use super::{generate_corpus, path_str, read_json, repo, stderr, test_config, tree, BIN};

static SERVER: RwLock<()> = RwLock::new(());

pub(super) struct Server {
    /// The client environment `scripts/s3.sh` wrote (`AWS_*`, the bucket, its python).
    pub(super) env: BTreeMap<String, String>,
}

/// The client environment a server script wrote (`export K=V` lines), if it did.
pub(super) fn client_env(file: &str) -> Option<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(repo().join(file)).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// Whether something listens at an `http://host:port` endpoint.
pub(super) fn answers(endpoint: &str) -> bool {
    std::net::TcpStream::connect(endpoint.trim_start_matches("http://")).is_ok()
}

fn reachable(env: &BTreeMap<String, String>) -> bool {
    env.get("AWS_ENDPOINT_URL").is_some_and(|e| answers(e))
}

impl Server {
    fn find() -> Option<Server> {
        let env = client_env(".cache/s3/env").filter(reachable);
        if env.is_none() {
            assert!(
                std::env::var("SLUICE_S3_TESTS").as_deref() != Ok("require"),
                "SLUICE_S3_TESTS=require but no S3 server answers: scripts/s3.sh start"
            );
            eprintln!("SKIPPED: no S3 test server (run scripts/s3.sh start)");
        }
        env.map(|env| Server { env })
    }

    /// The server, shared with the other tests.
    pub(super) fn shared() -> Option<(Server, RwLockReadGuard<'static, ()>)> {
        let guard = SERVER.read().unwrap_or_else(|p| p.into_inner());
        Server::find().map(|s| (s, guard))
    }

    /// The server, alone (a test that stops it).
    fn exclusive() -> Option<(Server, RwLockWriteGuard<'static, ()>)> {
        let guard = SERVER.write().unwrap_or_else(|p| p.into_inner());
        Server::find().map(|s| (s, guard))
    }

    fn bucket(&self) -> &str {
        &self.env["SLUICE_TEST_S3_BUCKET"]
    }

    pub(super) fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket())
    }

    /// Uploads every file under `dir` to `prefix/<relative path>` with boto3.
    pub(super) fn upload(&self, dir: &Path, prefix: &str) {
        let script = r#"
import os, sys, boto3
root, bucket, prefix = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
for here, _, files in os.walk(root):
    for name in files:
        path = os.path.join(here, name)
        key = prefix + "/" + os.path.relpath(path, root).replace(os.sep, "/")
        s3.upload_file(path, bucket, key)
"#;
        let out = Command::new(&self.env["SLUICE_TEST_S3_PYTHON"])
            .envs(&self.env)
            .args(["-c", script, path_str(dir), self.bucket(), prefix])
            .output()
            .unwrap();
        assert!(out.status.success(), "upload: {}", stderr(&out));
    }

    /// Downloads every object under `prefix/` into `dir` (keys relative to the prefix); returns
    /// the keys, with the multipart uploads still open under the prefix (none, once every
    /// writer finished or aborted).
    pub(super) fn download(&self, prefix: &str, dir: &Path) -> (Vec<String>, usize) {
        let script = r#"
import os, sys, boto3
bucket, prefix, root = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
    for o in page.get("Contents", []):
        rel = o["Key"][len(prefix) + 1:]
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        s3.download_file(bucket, o["Key"], path)
        print("key", rel)
uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix + "/").get("Uploads", [])
print("uploads", len(uploads))
"#;
        let out = Command::new(&self.env["SLUICE_TEST_S3_PYTHON"])
            .envs(&self.env)
            .args(["-c", script, self.bucket(), prefix, path_str(dir)])
            .output()
            .unwrap();
        assert!(out.status.success(), "download: {}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let keys = text
            .lines()
            .filter_map(|l| l.strip_prefix("key "))
            .map(str::to_string)
            .collect();
        let uploads = text
            .lines()
            .find_map(|l| l.strip_prefix("uploads "))
            .and_then(|n| n.parse().ok())
            .unwrap_or(usize::MAX);
        (keys, uploads)
    }

    /// Deletes every object under `prefix/` (what an earlier test run left).
    pub(super) fn clear(&self, prefix: &str) {
        let script = r#"
import os, sys, boto3
bucket, prefix = sys.argv[1:3]
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
    for o in page.get("Contents", []):
        s3.delete_object(Bucket=bucket, Key=o["Key"])
"#;
        let out = Command::new(&self.env["SLUICE_TEST_S3_PYTHON"])
            .envs(&self.env)
            .args(["-c", script, self.bucket(), prefix])
            .output()
            .unwrap();
        assert!(out.status.success(), "clear: {}", stderr(&out));
    }

    /// Deletes the objects `keys`.
    fn delete(&self, keys: &[String]) {
        let script = r#"
import os, sys, boto3
bucket = sys.argv[1]
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
for key in sys.argv[2:]:
    s3.delete_object(Bucket=bucket, Key=key)
"#;
        let mut args = vec!["-c", script, self.bucket()];
        args.extend(keys.iter().map(String::as_str));
        let out = Command::new(&self.env["SLUICE_TEST_S3_PYTHON"])
            .envs(&self.env)
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success(), "delete: {}", stderr(&out));
    }

    fn sluice(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
        Command::new(BIN)
            .envs(&self.env)
            .envs(extra_env.iter().copied())
            .args(args)
            .current_dir(repo())
            .output()
            .unwrap()
    }

    fn script(&self, action: &str) {
        let out = Command::new(&self.env["SLUICE_TEST_S3_SCRIPT"])
            .arg(action)
            .output()
            .unwrap();
        assert!(out.status.success(), "s3.sh {action}: {}", stderr(&out));
    }
}

impl TestBucket for Server {
    fn env(&self) -> &BTreeMap<String, String> {
        &self.env
    }
    fn url(&self, key: &str) -> String {
        Server::url(self, key)
    }
    fn upload(&self, dir: &Path, prefix: &str) {
        Server::upload(self, dir, prefix)
    }
}

pub(super) fn run_args<'a>(config: &'a Path, inputs: &[&'a str], out: &'a Path) -> Vec<&'a str> {
    run_args_to(config, inputs, path_str(out))
}

pub(super) fn run_args_to<'a>(config: &'a Path, inputs: &[&'a str], out: &'a str) -> Vec<&'a str> {
    let mut args = vec!["run", "-c", path_str(config), "-o", out, "-q", "-i"];
    args.extend_from_slice(inputs);
    args
}

pub(super) fn local_run(config: &Path, inputs: &[&str], out: &Path) {
    let mut args = run_args(config, inputs, out);
    args.push("--threads=2");
    let result = Command::new(BIN)
        .args(&args)
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(result.status.success(), "{}", stderr(&result));
}

/// The output files minus the manifest (it names the inputs as given), and the manifest's shard
/// entries minus what names where the input was (path, its time and ETag).
pub(super) fn outputs(dir: &Path) -> (BTreeMap<String, Vec<u8>>, Vec<Value>) {
    let mut files = tree(dir);
    files.remove("manifest.json");
    // A run into object storage keeps its state as completion records (a local one-process
    // run in its journal, folded into the manifest).
    files.retain(|name, _| !name.starts_with("ranks/"));
    let manifest = read_json(&dir.join("manifest.json"));
    let shards = manifest["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|shard| {
            let mut shard = shard.clone();
            let entry = shard.as_object_mut().unwrap();
            entry.remove("path");
            if let Some(input) = entry.get_mut("input").and_then(Value::as_object_mut) {
                input.remove("modified_ns");
                input.remove("etag");
            }
            shard
        })
        .collect();
    (files, shards)
}

/// A corpus of every compression (the fixtures) and generated shards in a subdirectory, with a
/// hidden directory and a file that is not a shard beside them.
pub(super) fn corpus(dir: &Path) {
    generate_corpus(&dir.join("generated"), 3, 1500, 11);
    for entry in std::fs::read_dir(repo().join("fixtures/corpus")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::create_dir_all(dir.join(".hidden")).unwrap();
    std::fs::copy(dir.join("clean.jsonl"), dir.join(".hidden/clean.jsonl")).unwrap();
    std::fs::write(dir.join("notes.txt"), "not a shard\n").unwrap();
}

/// A test server of another service (Azurite, fake-gcs-server): what the shared scenarios
/// below need of it.
pub(super) trait TestBucket {
    /// The client environment its script wrote, given to sluice and to the uploader.
    fn env(&self) -> &BTreeMap<String, String>;
    /// The URL of `key` in the test bucket or container.
    fn url(&self, key: &str) -> String;
    /// Uploads every file under `dir` to `prefix/<relative path>`, with a client that is not
    /// sluice's.
    fn upload(&self, dir: &Path, prefix: &str);

    fn sluice(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .envs(self.env())
            .args(args)
            .current_dir(repo())
            .output()
            .unwrap()
    }
}

/// A test's corpus on disk and in the bucket, its config, and the local run to compare with.
pub(super) struct Staged {
    pub(super) tmp: tempfile::TempDir,
    /// The corpus on disk (see [`corpus`]), uploaded to `PREFIX/corpus/`.
    pub(super) local: PathBuf,
    pub(super) config: PathBuf,
    /// The local run of `local`.
    pub(super) reference: PathBuf,
}

/// Writes the test corpus, uploads it to `prefix/corpus/` and runs it locally.
pub(super) fn staged_corpus(server: &impl TestBucket, prefix: &str) -> Staged {
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("corpus");
    corpus(&local);
    server.upload(&local, &format!("{prefix}/corpus"));
    let config = test_config(tmp.path(), "zstd_level = 3");
    let reference = tmp.path().join("local");
    local_run(&config, &[path_str(&local)], &reference);
    Staged {
        tmp,
        local,
        config,
        reference,
    }
}

/// Shards read from the server (a prefix, a glob, one object) give the outputs of the same
/// files on disk; a rerun skips them by their ETags, and a replaced object alone is redone.
/// Returns the staging, with the prefix run's outputs in `tmp/remote`.
pub(super) fn inputs_are_read_like_the_files_on_disk(
    server: &impl TestBucket,
    prefix: &str,
) -> Staged {
    let staged = staged_corpus(server, prefix);
    let (tmp, local, config, reference) = (
        &staged.tmp,
        &staged.local,
        &staged.config,
        &staged.reference,
    );

    let remote = tmp.path().join("remote");
    let input = server.url(&format!("{prefix}/corpus/"));
    let mut args = run_args(config, &[&input], &remote);
    args.push("--threads=2");
    ok(&server.sluice(&args));
    assert_eq!(outputs(&remote), outputs(reference));
    let manifest = read_json(&remote.join("manifest.json"));
    let shards = manifest["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 7, "{manifest:#}");
    assert!(shards.iter().all(|s| s["input"]["etag"].is_string()));
    assert_eq!(
        shards[0]["path"],
        server.url(&format!("{prefix}/corpus/clean.jsonl"))
    );

    // A rerun does nothing; a replaced object (new ETag) is redone, the others are not.
    let rerun = server.sluice(&args);
    ok(&rerun);
    assert_eq!(
        read_json(&remote.join("report.json"))["shards"]["skipped"],
        7
    );
    let changed = tmp.path().join("changed");
    std::fs::create_dir_all(&changed).unwrap();
    std::fs::write(
        changed.join("clean.jsonl"),
        "{\"text\": \"a new document\"}\n",
    )
    .unwrap();
    server.upload(&changed, &format!("{prefix}/corpus"));
    ok(&server.sluice(&args));
    let report = read_json(&remote.join("report.json"));
    assert_eq!(report["shards"]["skipped"], 6, "{report:#}");
    assert_eq!(report["shards"]["done"], 1, "{report:#}");

    // A glob over keys and one object, as the same glob and file on disk.
    for (remote_input, local_input) in [
        (
            server.url(&format!("{prefix}/corpus/generated/*.jsonl.zst")),
            format!("{}/generated/*.jsonl.zst", path_str(local)),
        ),
        (
            server.url(&format!("{prefix}/corpus/hazard.jsonl.zst")),
            format!("{}/hazard.jsonl.zst", path_str(local)),
        ),
    ] {
        let reference = tmp.path().join("local-one");
        let remote = tmp.path().join("remote-one");
        let _ = std::fs::remove_dir_all(&reference);
        let _ = std::fs::remove_dir_all(&remote);
        local_run(config, &[&local_input], &reference);
        ok(&server.sluice(&run_args(config, &[&remote_input], &remote)));
        assert_eq!(outputs(&remote), outputs(&reference), "{remote_input}");
    }
    staged
}

#[test]
fn objects_are_filtered_like_the_same_files_on_disk_and_resume_by_etag() {
    let Some((server, _guard)) = Server::shared() else {
        return;
    };
    let staged = inputs_are_read_like_the_files_on_disk(&server, "same-as-local");
    let (tmp, local, config) = (&staged.tmp, &staged.local, &staged.config);
    // The prefix is searched like a directory: hidden keys and non-shards are skipped, named.
    let manifest = read_json(&tmp.path().join("remote/manifest.json"));
    let skipped: Vec<&str> = manifest["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["reason"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, ["hidden", "not_a_shard_name"], "{manifest:#}");

    // Local paths and URLs mixed: every shard read once, names distinct.
    let mixed = tmp.path().join("mixed");
    let glob = server.url("same-as-local/corpus/generated/*");
    let local_file = format!("{}/clean.jsonl", path_str(local));
    let result = server.sluice(&run_args(config, &[&local_file, &glob], &mixed), &[]);
    assert!(result.status.success(), "{}", stderr(&result));
    let manifest = read_json(&mixed.join("manifest.json"));
    let names: Vec<&str> = manifest["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(
        names.iter().any(|n| n.ends_with("/clean.jsonl")),
        "{names:?}"
    );
}

#[test]
fn wrong_credentials_are_one_clear_error_before_any_work() {
    let Some((server, _guard)) = Server::shared() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("corpus");
    std::fs::create_dir_all(&local).unwrap();
    std::fs::copy(
        repo().join("fixtures/corpus/clean.jsonl"),
        local.join("clean.jsonl"),
    )
    .unwrap();
    server.upload(&local, "credentials");
    let config = test_config(tmp.path(), "zstd_level = 3");
    let out = tmp.path().join("out");
    let input = server.url("credentials/");
    let secret = "not-the-secret-4242";
    let result = server.sluice(
        &run_args(&config, &[&input], &out),
        &[("AWS_SECRET_ACCESS_KEY", secret)],
    );
    assert_eq!(result.status.code(), Some(3), "{}", stderr(&result));
    let message = stderr(&result);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(
        message.contains("access denied: check the credentials"),
        "{message}"
    );
    assert!(message.contains(&input), "{message}");
    assert!(!message.contains(secret), "{message}");
    assert!(!out.exists(), "no work done, nothing written");
    // Into a URL: refused by the first request, before the listing, naming the output.
    let out_url = server.url("credentials-out/");
    let result = server.sluice(
        &run_args_to(&config, &[path_str(&local)], &out_url),
        &[("AWS_SECRET_ACCESS_KEY", secret)],
    );
    assert_eq!(result.status.code(), Some(3), "{}", stderr(&result));
    let message = stderr(&result);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(message.contains("access denied"), "{message}");
    assert!(message.contains("credentials-out"), "{message}");
    assert!(!message.contains(secret), "{message}");
}

#[test]
fn a_missing_bucket_or_prefix_is_a_clear_error() {
    let Some((server, _guard)) = Server::shared() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let config = test_config(tmp.path(), "zstd_level = 3");
    let out = tmp.path().join("out");
    for (input, expected) in [
        ("s3://sluice-no-such-bucket/corpus/", "no such bucket"),
        (
            &*server.url("no-such-prefix/"),
            "no *.jsonl, *.ndjson, *.json or *.parquet object under this prefix",
        ),
        (
            &*server.url("no-such-prefix/*.jsonl"),
            "pattern matches no object",
        ),
    ] {
        let result = server.sluice(&run_args(&config, &[input], &out), &[]);
        assert_eq!(result.status.code(), Some(3), "{}", stderr(&result));
        let message = stderr(&result);
        assert!(message.contains(input), "{message}");
        assert!(message.contains(expected), "{message}");
        assert!(!out.exists());
    }
}

/// Parquet objects (found by their `PAR1` magic, whatever their name) are read by ranged GETs
/// of their footer and row groups: the outputs equal those of the same files on disk, into a
/// local directory and into the bucket (Parquet outputs uploaded too), and the readers read the
/// Parquet outputs in the bucket.
#[test]
fn parquet_objects_are_read_like_the_files_on_disk() {
    let Some((server, _guard)) = Server::shared() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("corpus");
    std::fs::create_dir_all(&local).unwrap();
    let parquet = repo().join("fixtures/parquet/hf/data/train-00000-of-00002.parquet");
    std::fs::copy(&parquet, local.join("rows.parquet")).unwrap();
    // Named as JSONL: Parquet by its PAR1 magic, as on disk.
    std::fs::copy(&parquet, local.join("renamed.jsonl")).unwrap();
    std::fs::copy(
        repo().join("fixtures/corpus/clean.jsonl"),
        local.join("clean.jsonl"),
    )
    .unwrap();
    server.clear("parquet");
    server.upload(&local, "parquet/corpus");
    let config = test_config(tmp.path(), "zstd_level = 3");
    let reference = tmp.path().join("local");
    local_run(&config, &[path_str(&local)], &reference);
    let input = server.url("parquet/corpus/");

    let out = tmp.path().join("out");
    ok(&server.sluice(&run_args(&config, &[&input], &out), &[]));
    assert_eq!(outputs(&out), outputs(&reference));
    let manifest = read_json(&out.join("manifest.json"));
    assert!(
        manifest["shards"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] == "done" && s["input"]["sha256"].is_string()),
        "{manifest:#}"
    );
    assert_eq!(
        manifest["shards"][2]["input"]["sha256"],
        read_json(&reference.join("manifest.json"))["shards"][2]["input"]["sha256"]
    );

    let out_url = server.url("parquet/out");
    ok(&server.sluice(&run_args_to(&config, &[&input], &out_url), &[]));
    let downloaded = tmp.path().join("downloaded");
    let (keys, _) = server.download("parquet/out", &downloaded);
    assert!(keys.iter().any(|k| k == "kept/rows.parquet"), "{keys:?}");
    assert_eq!(outputs(&downloaded), outputs(&reference));
    let summary = |out: &str| {
        let result = server.sluice(&["audit", out, "export"], &[]);
        ok(&result);
        result.stdout
    };
    assert_eq!(summary(&out_url), summary(path_str(&reference)));
}

/// The server killed (SIGKILL) part-way through a run and started again: the run resumes its
/// reads or fails its shards cleanly; a rerun completes; the outputs equal a local run's.
#[test]
fn the_server_killed_and_restarted_mid_run() {
    let Some((server, _guard)) = Server::exclusive() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("corpus");
    generate_corpus(&local, 4, 40_000, 5);
    server.upload(&local, "killed");
    let config = test_config(tmp.path(), "zstd_level = 3");
    let reference = tmp.path().join("local");
    local_run(&config, &[path_str(&local)], &reference);

    let out = tmp.path().join("out");
    let input = server.url("killed/");
    let mut args = run_args(&config, &[&input], &out);
    args.retain(|a| *a != "-q");
    args.push("--threads=1");
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let mut child = Command::new(BIN)
        .envs(&server.env)
        .args(&args)
        .current_dir(repo())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the listing is done (the manifest is written after it), while shards are read.
    for _ in 0..600 {
        if out.join("manifest.json").is_file() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run finished before the server was killed: make the corpus bigger"
    );
    server.script("kill");
    // Down longer than a shard takes here (~4 s): the next GET meets a refused connection and
    // is retried with back-off until the server is back.
    std::thread::sleep(Duration::from_millis(5000));
    server.script("start");
    let first = child.wait_with_output().unwrap();
    eprintln!("first run: {:?}\n{}", first.status, stderr(&first));
    // Done (reads resumed) or failed shards (exit 1): never a crash, never a partial output.
    assert!(
        matches!(first.status.code(), Some(0 | 1)),
        "{:?}: {}",
        first.status,
        stderr(&first)
    );
    assert!(!tree(&out).keys().any(|k| k.ends_with(".tmp-sluice")));

    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let rerun = server.sluice(&args, &[]);
    assert!(rerun.status.success(), "{}", stderr(&rerun));
    assert_eq!(outputs(&out), outputs(&reference));
}

pub(super) fn ok(result: &Output) {
    assert!(result.status.success(), "{}", stderr(result));
}

/// `--output s3://...`: every output object equals the local run's file byte for byte (the
/// manifest too, minus where the inputs were), uploaded whole (no upload left open; objects
/// bigger than a part are tested in sluice-io's `objects` module), with the
/// manifest and reports folded from the completion records; a rerun skips the shards by their
/// records and redoes a shard whose record is gone; `sluice report` and `sluice audit` read the
/// URL as they read the directory.
#[test]
fn outputs_written_to_object_storage_equal_a_local_run() {
    let Some((server, _guard)) = Server::shared() else {
        return;
    };
    server.clear("outputs");
    let Staged {
        tmp,
        local,
        config,
        reference,
    } = staged_corpus(&server, "outputs");

    let out_url = server.url("outputs/out/");
    let input = server.url("outputs/corpus/");
    let mut args = run_args_to(&config, &[&input], &out_url);
    args.push("--threads=2");
    args.retain(|a| *a != "-q");
    ok(&server.sluice(&args, &[]));
    let downloaded = tmp.path().join("downloaded");
    let (keys, uploads) = server.download("outputs/out", &downloaded);
    assert_eq!(uploads, 0, "an upload was left open");
    assert_eq!(outputs(&downloaded), outputs(&reference));
    for key in [
        "manifest.json",
        "report.json",
        "report.html",
        "ranks/run.json",
    ] {
        assert!(keys.iter().any(|k| k == key), "{key} missing: {keys:?}");
    }
    assert!(
        !keys.iter().any(|k| k.contains("lock")),
        "a lock object was left: {keys:?}"
    );
    let report = read_json(&downloaded.join("report.json"));
    let expected = read_json(&reference.join("report.json"));
    for key in ["input", "destinations", "error_kinds", "audited"] {
        assert_eq!(report[key], expected[key], "{key}");
    }
    assert_eq!(report["shards"]["done"], 7, "{report:#}");

    // A rerun skips every shard by its completion record; one record removed: that shard alone
    // is redone, and the outputs are the same.
    let rerun = server.sluice(&args, &[]);
    ok(&rerun);
    assert!(
        stderr(&rerun).contains("7 shards (0 done, 7 skipped, 0 failed)"),
        "{}",
        stderr(&rerun)
    );
    server.delete(&["outputs/out/ranks/done/clean.jsonl.json".to_string()]);
    let rerun = server.sluice(&args, &[]);
    ok(&rerun);
    assert!(
        stderr(&rerun).contains("7 shards (1 done, 6 skipped, 0 failed)"),
        "{}",
        stderr(&rerun)
    );
    let again = tmp.path().join("again");
    server.download("outputs/out", &again);
    assert_eq!(outputs(&again), outputs(&reference));

    // The readers, on the URL as on the directory.
    for command in [
        vec!["audit", "OUT", "summary"],
        vec!["audit", "OUT", "show", "--sample", "3", "--color", "never"],
        vec!["audit", "OUT", "export", "--format", "jsonl"],
        vec!["report", "OUT"],
    ] {
        let on = |out: &str| -> String {
            let args: Vec<&str> = command
                .iter()
                .map(|a| if *a == "OUT" { out } else { a })
                .collect();
            let result = server.sluice(&args, &[]);
            ok(&result);
            String::from_utf8_lossy(&result.stdout).into_owned()
        };
        let remote = on(&out_url);
        let local = on(path_str(&reference));
        assert_eq!(
            remote.replace(out_url.trim_end_matches('/'), "OUT"),
            local.replace(path_str(&reference), "OUT"),
            "{command:?}"
        );
    }

    // rethreshold from the URL into another URL, as from the directory into a directory.
    server.clear("outputs/redone");
    let redone_url = server.url("outputs/redone/");
    let set = ["--set", "hazard-terms.min_distinct=3", "-q"];
    let mut args = vec!["rethreshold", &out_url, "-o", &redone_url];
    args.extend(set);
    ok(&server.sluice(&args, &[]));
    let local_redone = tmp.path().join("local-redone");
    let mut args = vec![
        "rethreshold",
        path_str(&reference),
        "-o",
        path_str(&local_redone),
    ];
    args.extend(set);
    ok(&server.sluice(&args, &[]));
    let redone = tmp.path().join("redone");
    let (keys, _) = server.download("outputs/redone", &redone);
    assert!(keys.iter().any(|k| k == "report.html"), "{keys:?}");
    assert_eq!(outputs(&redone), outputs(&local_redone));
    // Not over a run that is there.
    let mut args = vec!["rethreshold", &out_url, "-o", &redone_url];
    args.extend(set);
    let again = server.sluice(&args, &[]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("holds a run already"),
        "{}",
        stderr(&again)
    );

    // screen: a dataset in the bucket, its outputs kept there, the verdict as for the files.
    let screened_url = server.url("outputs/screened/");
    let screen = |dataset: &str, extra: &[&str]| {
        let mut args = vec!["screen", dataset, "-c", "configs/finetune-screen.toml"];
        args.extend(extra);
        let result = server.sluice(&args, &[]);
        (
            result.status.code(),
            String::from_utf8_lossy(&result.stdout).into_owned(),
        )
    };
    let remote = screen(&input, &["-o", &screened_url]);
    let local = screen(path_str(&local), &[]);
    assert_eq!(remote, local);
    let (keys, _) = server.download("outputs/screened", &tmp.path().join("screened"));
    assert!(keys.iter().any(|k| k == "manifest.json"), "{keys:?}");
}

/// An output prefix inside the input prefix is never read back as input.
#[test]
fn an_output_prefix_inside_the_input_is_not_read_back() {
    let Some((server, _guard)) = Server::shared() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("corpus");
    std::fs::create_dir_all(&local).unwrap();
    std::fs::copy(
        repo().join("fixtures/corpus/clean.jsonl"),
        local.join("clean.jsonl"),
    )
    .unwrap();
    server.clear("inside");
    server.upload(&local, "inside");
    let config = test_config(tmp.path(), "zstd_level = 3");
    let input = server.url("inside/");
    let out_url = server.url("inside/out/");
    for _ in 0..2 {
        ok(&server.sluice(&run_args_to(&config, &[&input], &out_url), &[]));
    }
    let downloaded = tmp.path().join("downloaded");
    server.download("inside/out", &downloaded);
    let manifest = read_json(&downloaded.join("manifest.json"));
    // Only the input shard: none of the outputs the first run wrote under inside/out/.
    assert_eq!(
        manifest["shards"].as_array().unwrap().len(),
        1,
        "{manifest:#}"
    );
    assert_eq!(manifest["shards"][0]["name"], "clean.jsonl");
}

/// Two ranks writing into one URL, then `sluice merge` on it: the merged outputs equal a local
/// one-process run.
#[test]
fn two_ranks_write_to_one_url_and_merge_there() {
    let Some((server, _guard)) = Server::shared() else {
        return;
    };
    server.clear("ranks");
    let Staged {
        tmp,
        config,
        reference,
        ..
    } = staged_corpus(&server, "ranks");
    let out_url = server.url("ranks/out");
    let input = server.url("ranks/corpus/");
    let children: Vec<_> = ["0", "1"]
        .iter()
        .map(|rank| {
            let mut args = run_args_to(&config, &[&input], &out_url);
            args.extend(["--rank", rank, "--world-size", "2", "--threads=1"]);
            Command::new(BIN)
                .envs(&server.env)
                .args(&args)
                .current_dir(repo())
                .output()
                .unwrap()
        })
        .collect();
    for child in &children {
        ok(child);
    }
    // Not merged yet: the readers say so.
    let unmerged = server.sluice(&["audit", &out_url, "summary"], &[]);
    assert!(
        stderr(&unmerged).contains("sluice merge"),
        "{}",
        stderr(&unmerged)
    );
    let merged = server.sluice(&["merge", &out_url], &[]);
    ok(&merged);
    assert!(
        stderr(&merged).contains("merged 2 ranks"),
        "{}",
        stderr(&merged)
    );
    let downloaded = tmp.path().join("downloaded");
    let (keys, _) = server.download("ranks/out", &downloaded);
    assert!(keys.iter().any(|k| k == "report.html"), "{keys:?}");
    assert_eq!(outputs(&downloaded), outputs(&reference));
    let report = read_json(&downloaded.join("report.json"));
    assert_eq!(report["ranks"].as_array().unwrap().len(), 2, "{report:#}");
}

/// The server killed (SIGKILL) part-way through a run writing into it, and started again: the
/// run retries or fails its shards cleanly, no object is left half-written under a final name
/// (every output object there is the local run's, byte for byte), and a rerun completes with the
/// local run's outputs (taking over the lock the first run could not remove).
#[test]
fn the_server_killed_and_restarted_while_outputs_are_written() {
    let Some((server, _guard)) = Server::exclusive() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("corpus");
    generate_corpus(&local, 4, 40_000, 9);
    server.clear("killed-out");
    server.upload(&local, "killed-out/corpus");
    let config = test_config(tmp.path(), "zstd_level = 3");
    let reference = tmp.path().join("local");
    local_run(&config, &[path_str(&local)], &reference);

    let out_url = server.url("killed-out/out/");
    let input = server.url("killed-out/corpus/");
    let mut args = run_args_to(&config, &[&input], &out_url);
    args.retain(|a| *a != "-q");
    args.push("--threads=1");
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let child = Command::new(BIN)
        .envs(&server.env)
        .args(&args)
        .current_dir(repo())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // After the first shard's outputs are written, during the second's.
    std::thread::sleep(Duration::from_millis(5000));
    server.script("kill");
    std::thread::sleep(Duration::from_millis(3000));
    server.script("start");
    let first = child.wait_with_output().unwrap();
    eprintln!("first run: {:?}\n{}", first.status, stderr(&first));
    assert!(
        matches!(first.status.code(), Some(0 | 1 | 3)),
        "{:?}: {}",
        first.status,
        stderr(&first)
    );
    let partial = tmp.path().join("partial");
    server.download("killed-out/out", &partial);
    let expected = tree(&reference);
    for (name, bytes) in tree(&partial) {
        if name == "manifest.json" {
            continue; // it names the inputs where they were
        }
        if let Some(want) = expected.get(&name) {
            assert!(*want == bytes, "{name} differs from the local run's");
        }
    }

    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let rerun = server.sluice(&args, &[]);
    ok(&rerun);
    let downloaded = tmp.path().join("downloaded");
    let (_, uploads) = server.download("killed-out/out", &downloaded);
    assert_eq!(uploads, 0, "an upload was left open");
    assert_eq!(outputs(&downloaded), outputs(&reference));
}

/// A second run into the same URL while one runs is refused, naming the holder; the lock is
/// an object, removed when the run ends.
#[test]
fn a_second_run_into_a_busy_url_is_refused() {
    let Some((server, _guard)) = Server::shared() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("corpus");
    generate_corpus(&local, 2, 20_000, 4);
    server.clear("busy");
    server.upload(&local, "busy/corpus");
    let config = test_config(tmp.path(), "zstd_level = 3");
    let out_url = server.url("busy/out");
    let input = server.url("busy/corpus/");
    let mut args = run_args_to(&config, &[&input], &out_url);
    args.push("--threads=1");
    let first = Command::new(BIN)
        .envs(&server.env)
        .args(&args)
        .current_dir(repo())
        .spawn()
        .unwrap();
    let lock_key = "busy/out/ranks/locks/rank-00000-of-00001.lock";
    let mut seen = false;
    for _ in 0..100 {
        let (keys, _) = server.download("busy/out", &tmp.path().join("peek"));
        if keys.iter().any(|k| format!("busy/out/{k}") == lock_key) {
            seen = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(seen, "the first run's lock object never appeared");
    let second = server.sluice(&args, &[]);
    let mut first = first;
    let status = first.wait().unwrap();
    assert!(status.success());
    assert_eq!(second.status.code(), Some(2), "{}", stderr(&second));
    let message = stderr(&second);
    assert!(message.contains("already running"), "{message}");
    assert!(
        message.contains(&format!("pid {}", first.id())),
        "{message}"
    );
    let (keys, _) = server.download("busy/out", &tmp.path().join("after"));
    assert!(!keys.iter().any(|k| k.contains("lock")), "{keys:?}");
}

#[test]
fn help_says_what_object_storage_supports() {
    let out = Command::new(BIN).args(["run", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("s3://"), "{help}");
    assert!(help.contains("outputs too"), "{help}");
    let _: PathBuf = repo();
}

/// `http://` (and `https://`) single objects, from Python's own HTTP server (no range support,
/// no ETag): the same outputs as the file on disk; a prefix is refused (nothing to list).
#[test]
fn http_objects_are_read_like_the_file_on_disk() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().unwrap();
    let served = tmp.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    for name in ["unicode.jsonl.gz", "hazard.jsonl.zst"] {
        std::fs::copy(repo().join("fixtures/corpus").join(name), served.join(name)).unwrap();
    }
    let mut httpd = Command::new("python3")
        .args(["-u", "-m", "http.server", "0", "--bind", "127.0.0.1"])
        .current_dir(&served)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(httpd.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // "Serving HTTP on 127.0.0.1 port 43567 (http://127.0.0.1:43567/) ..."
    let port: u16 = first
        .split_whitespace()
        .skip_while(|w| *w != "port")
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("http.server said {first:?}"));
    let config = test_config(tmp.path(), "zstd_level = 3");
    for name in ["unicode.jsonl.gz", "hazard.jsonl.zst"] {
        let reference = tmp.path().join(format!("local-{name}"));
        local_run(&config, &[path_str(&served.join(name))], &reference);
        let remote = tmp.path().join(format!("http-{name}"));
        let url = format!("http://127.0.0.1:{port}/{name}");
        let result = Command::new(BIN)
            .args(run_args(&config, &[&url], &remote))
            .output()
            .unwrap();
        assert!(result.status.success(), "{}", stderr(&result));
        assert_eq!(outputs(&remote), outputs(&reference), "{url}");
    }
    let out = tmp.path().join("prefix");
    let url = format!("http://127.0.0.1:{port}/");
    let result = Command::new(BIN)
        .args(run_args(&config, &[&url], &out))
        .output()
        .unwrap();
    httpd.kill().unwrap();
    httpd.wait().unwrap();
    assert_eq!(result.status.code(), Some(3), "{}", stderr(&result));
    assert!(
        stderr(&result).contains("http(s) inputs are single objects"),
        "{}",
        stderr(&result)
    );
}
