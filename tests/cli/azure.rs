//! `az://` inputs and outputs against Azurite (Microsoft's storage emulator) on 127.0.0.1,
//! started by `scripts/azurite.sh start` (as `.ci/run` does). sluice finds it through the
//! standard variables only (`AZURE_STORAGE_USE_EMULATOR`, `AZURITE_BLOB_STORAGE_URL`,
//! `AZURE_STORAGE_ACCOUNT_*`); blobs are uploaded and downloaded with the Python
//! azure-storage-blob SDK, not with sluice's own client. Where Azurite is not running the tests
//! say SKIPPED, except when `SLUICE_AZURE_TESTS=require` (set by `.ci/run`): then they fail.
//!
//! Each test works under its own blob-name prefix.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use super::s3::{
    answers, client_env, inputs_are_read_like_the_files_on_disk, ok, outputs, run_args_to,
    staged_corpus, Staged, TestBucket,
};
use super::{path_str, read_json, stderr};

struct Azurite {
    env: BTreeMap<String, String>,
}

/// upload ROOT PREFIX | download PREFIX ROOT | delete NAME... | clear PREFIX, in the container.
const CLIENT: &str = r#"
import os, sys
from azure.storage.blob import BlobServiceClient
account = os.environ["AZURE_STORAGE_ACCOUNT_NAME"]
service = BlobServiceClient(os.environ["AZURITE_BLOB_STORAGE_URL"] + "/" + account,
                            credential={"account_name": account,
                                        "account_key": os.environ["AZURE_STORAGE_ACCOUNT_KEY"]})
container = service.get_container_client(os.environ["SLUICE_TEST_AZURE_CONTAINER"])
action, args = sys.argv[1], sys.argv[2:]
if action == "upload":
    root, prefix = args
    for here, _, files in os.walk(root):
        for name in files:
            path = os.path.join(here, name)
            blob = prefix + "/" + os.path.relpath(path, root).replace(os.sep, "/")
            with open(path, "rb") as f:
                container.upload_blob(blob, f, overwrite=True)
elif action == "download":
    prefix, root = args
    for blob in container.list_blobs(name_starts_with=prefix + "/"):
        rel = blob.name[len(prefix) + 1:]
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(container.download_blob(blob.name).readall())
        print("key", rel)
    # Blocks staged but never committed (a multipart upload left open) show as blobs here only.
    listed = container.list_blobs(name_starts_with=prefix + "/", include=["uncommittedblobs"])
    committed = {b.name for b in container.list_blobs(name_starts_with=prefix + "/")}
    print("uploads", len([b for b in listed if b.name not in committed]))
elif action == "delete":
    for name in args:
        container.delete_blob(name)
elif action == "clear":
    (prefix,) = args
    for blob in container.list_blobs(name_starts_with=prefix + "/"):
        container.delete_blob(blob.name)
"#;

impl Azurite {
    fn find() -> Option<Azurite> {
        let env = client_env(".cache/azurite/env").filter(|env| {
            env.get("AZURITE_BLOB_STORAGE_URL")
                .is_some_and(|u| answers(u))
        });
        if env.is_none() {
            assert!(
                std::env::var("SLUICE_AZURE_TESTS").as_deref() != Ok("require"),
                "SLUICE_AZURE_TESTS=require but Azurite does not answer: scripts/azurite.sh start"
            );
            eprintln!("SKIPPED: no Azurite (run scripts/azurite.sh start)");
        }
        env.map(|env| Azurite { env })
    }

    fn client(&self, args: &[&str]) -> String {
        let out = Command::new(&self.env["SLUICE_TEST_AZURE_PYTHON"])
            .envs(&self.env)
            .args(["-c", CLIENT])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Downloads every blob under `prefix/` into `dir`; returns the names (relative to the
    /// prefix) and how many blobs have blocks staged but never committed.
    fn download(&self, prefix: &str, dir: &Path) -> (Vec<String>, usize) {
        let text = self.client(&["download", prefix, path_str(dir)]);
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
}

impl TestBucket for Azurite {
    fn env(&self) -> &BTreeMap<String, String> {
        &self.env
    }

    fn url(&self, key: &str) -> String {
        format!("az://{}/{key}", self.env["SLUICE_TEST_AZURE_CONTAINER"])
    }

    fn upload(&self, dir: &Path, prefix: &str) {
        self.client(&["upload", path_str(dir), prefix]);
    }
}

#[test]
fn blobs_are_filtered_like_the_same_files_on_disk_and_resume_by_etag() {
    let Some(azurite) = Azurite::find() else {
        return;
    };
    azurite.client(&["clear", "inputs"]);
    inputs_are_read_like_the_files_on_disk(&azurite, "inputs");
}

/// `--output az://...`: every output blob equals the local run's file, none left uncommitted,
/// no lock left; a rerun skips every shard by its completion record and redoes the one whose
/// record is gone; `sluice audit` and `sluice report` read the URL as they read the directory.
#[test]
fn outputs_written_to_azure_equal_a_local_run() {
    let Some(azurite) = Azurite::find() else {
        return;
    };
    azurite.client(&["clear", "outputs"]);
    let Staged {
        tmp,
        config,
        reference,
        ..
    } = staged_corpus(&azurite, "outputs");

    let out_url = azurite.url("outputs/out/");
    let input = azurite.url("outputs/corpus/");
    let mut args = run_args_to(&config, &[&input], &out_url);
    args.push("--threads=2");
    args.retain(|a| *a != "-q");
    ok(&azurite.sluice(&args));
    let downloaded = tmp.path().join("downloaded");
    let (keys, uploads) = azurite.download("outputs/out", &downloaded);
    assert_eq!(uploads, 0, "a blob was left with uncommitted blocks");
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
        "a lock blob was left: {keys:?}"
    );
    let report = read_json(&downloaded.join("report.json"));
    assert_eq!(report["shards"]["done"], 7, "{report:#}");

    let rerun = azurite.sluice(&args);
    ok(&rerun);
    assert!(
        stderr(&rerun).contains("7 shards (0 done, 7 skipped, 0 failed)"),
        "{}",
        stderr(&rerun)
    );
    azurite.client(&["delete", "outputs/out/ranks/done/clean.jsonl.json"]);
    let rerun = azurite.sluice(&args);
    ok(&rerun);
    assert!(
        stderr(&rerun).contains("7 shards (1 done, 6 skipped, 0 failed)"),
        "{}",
        stderr(&rerun)
    );
    let again = tmp.path().join("again");
    azurite.download("outputs/out", &again);
    assert_eq!(outputs(&again), outputs(&reference));

    for command in [
        vec!["audit", "OUT", "summary"],
        vec!["audit", "OUT", "export", "--format", "jsonl"],
        vec!["report", "OUT"],
    ] {
        let on = |out: &str| -> String {
            let args: Vec<&str> = command
                .iter()
                .map(|a| if *a == "OUT" { out } else { a })
                .collect();
            let result = azurite.sluice(&args);
            ok(&result);
            String::from_utf8_lossy(&result.stdout).into_owned()
        };
        assert_eq!(
            on(&out_url).replace(out_url.trim_end_matches('/'), "OUT"),
            on(path_str(&reference)).replace(path_str(&reference), "OUT"),
            "{command:?}"
        );
    }
}
