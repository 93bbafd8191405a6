//! `gs://` inputs against fake-gcs-server on 127.0.0.1, started by `scripts/gcs.sh start` (as
//! `.ci/run` does). sluice finds it through the standard `GOOGLE_SERVICE_ACCOUNT` only (a
//! service-account file naming the emulator as `gcs_base_url`); objects are uploaded with
//! Python's urllib over the JSON API, not with sluice's own client. Where the emulator is not
//! running the tests say SKIPPED, except when `SLUICE_GCS_TESTS=require` (set by `.ci/run`):
//! then they fail.
//!
//! Reads only: fake-gcs-server 1.54 refuses the XML API PUTs object_store writes with (see
//! `scripts/gcs.sh`), so `gs://` outputs are not tested against it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use super::s3::{answers, client_env, inputs_are_read_like_the_files_on_disk, TestBucket};
use super::{path_str, stderr};

struct FakeGcs {
    env: BTreeMap<String, String>,
}

/// upload ROOT PREFIX | clear PREFIX, in the bucket, over the JSON API (the emulator wants no
/// credentials).
const CLIENT: &str = r#"
import json, os, sys, urllib.parse, urllib.request
base, bucket = os.environ["SLUICE_TEST_GCS_URL"], os.environ["SLUICE_TEST_GCS_BUCKET"]
action, args = sys.argv[1], sys.argv[2:]
def call(method, url, data=None):
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(request) as response:
        return response.read()
if action == "upload":
    root, prefix = args
    for here, _, files in os.walk(root):
        for name in files:
            path = os.path.join(here, name)
            key = prefix + "/" + os.path.relpath(path, root).replace(os.sep, "/")
            with open(path, "rb") as f:
                call("POST", f"{base}/upload/storage/v1/b/{bucket}/o?uploadType=media&name="
                     + urllib.parse.quote(key, safe=""), f.read())
elif action == "clear":
    (prefix,) = args
    listing = json.loads(call("GET", f"{base}/storage/v1/b/{bucket}/o?prefix="
                              + urllib.parse.quote(prefix + "/", safe="")))
    for item in listing.get("items", []):
        call("DELETE", f"{base}/storage/v1/b/{bucket}/o/" + urllib.parse.quote(item["name"], safe=""))
"#;

impl FakeGcs {
    fn find() -> Option<FakeGcs> {
        let env = client_env(".cache/gcs/env")
            .filter(|env| env.get("SLUICE_TEST_GCS_URL").is_some_and(|u| answers(u)));
        if env.is_none() {
            assert!(
                std::env::var("SLUICE_GCS_TESTS").as_deref() != Ok("require"),
                "SLUICE_GCS_TESTS=require but fake-gcs-server does not answer: scripts/gcs.sh start"
            );
            eprintln!("SKIPPED: no GCS emulator (run scripts/gcs.sh start)");
        }
        env.map(|env| FakeGcs { env })
    }

    fn client(&self, args: &[&str]) {
        let out = Command::new(&self.env["SLUICE_TEST_GCS_PYTHON"])
            .envs(&self.env)
            .args(["-c", CLIENT])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
}

impl TestBucket for FakeGcs {
    fn env(&self) -> &BTreeMap<String, String> {
        &self.env
    }

    fn url(&self, key: &str) -> String {
        format!("gs://{}/{key}", self.env["SLUICE_TEST_GCS_BUCKET"])
    }

    fn upload(&self, dir: &Path, prefix: &str) {
        self.client(&["upload", path_str(dir), prefix]);
    }
}

#[test]
fn gcs_objects_are_filtered_like_the_same_files_on_disk_and_resume_by_etag() {
    let Some(gcs) = FakeGcs::find() else {
        return;
    };
    gcs.client(&["clear", "inputs"]);
    inputs_are_read_like_the_files_on_disk(&gcs, "inputs");
}
