//! `sluice review`: the queue server (token, headers, decisions that survive a restart), what the
//! decisions do (apply, export-labels, disagreements, a screen's verdict), and the page in a real
//! headless Chromium driven by chromedriver (WebDriver) with the keyboard.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{json_lines, lines, read_json, repo, sluice, stderr, tree, BIN};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A running `sluice review`, stopped when dropped.
struct Served {
    child: Child,
    /// `http://127.0.0.1:PORT`
    base: String,
    token: String,
    url: String,
}

impl Served {
    fn start(out: &Path, extra: &[&str]) -> Served {
        let mut child = Command::new(BIN)
            .arg("review")
            .arg(out)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sluice review starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim().to_string();
        assert!(url.starts_with("http://"), "no address printed: {url:?}");
        let (base, token) = url.split_once("/?token=").expect("a token in the address");
        Served {
            base: base.to_string(),
            token: token.to_string(),
            url: url.clone(),
            child,
        }
    }

    fn get(&self, path: &str) -> Response {
        http(
            &self.base,
            "GET",
            path,
            &[("X-Sluice-Token", &self.token)],
            None,
        )
    }

    fn post(&self, path: &str, body: &Value) -> Response {
        http(
            &self.base,
            "POST",
            path,
            &[
                ("X-Sluice-Token", &self.token),
                ("Content-Type", "application/json"),
            ],
            Some(body.to_string().as_bytes()),
        )
    }

    fn json(&self, path: &str) -> Value {
        let r = self.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        serde_json::from_str(&r.body).unwrap()
    }

    /// Decides document `doc` (as `/api/doc` gave it) as `reviewer`.
    fn decide(&self, reviewer: &str, doc: &Value, decision: &str, note: &str) -> Response {
        self.post(
            "/api/decide",
            &json!({"reviewer": reviewer, "shard": doc["shard"], "line": doc["line"],
                    "record_hash": doc["record_hash"], "decision": decision, "note": note}),
        )
    }

    /// Stops the server; its stderr.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        err
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 client (one request per connection), enough for the server and WebDriver.
fn http(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Response {
    let host = base.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(host).unwrap_or_else(|e| panic!("{host}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.unwrap_or_default();
    request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    // Read by Content-Length (or to the last chunk): some servers keep the connection open.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let complete = |raw: &[u8]| -> bool {
        let text = String::from_utf8_lossy(raw);
        let Some((head, rest)) = text.split_once("\r\n\r\n") else {
            return false;
        };
        let lower = head.to_ascii_lowercase();
        if let Some(at) = lower.find("content-length:") {
            let n: usize = lower[at + 15..]
                .lines()
                .next()
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            return raw.len() >= head.len() + 4 + n;
        }
        lower.contains("chunked") && rest.contains("\r\n0\r\n\r\n") || rest.starts_with("0\r\n\r\n")
    };
    while !complete(&raw) {
        let n = stream.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").expect("an http response");
    let mut head_lines = head.lines();
    let status = head_lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = head_lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    out
}

/// The hazard cascade on fixtures/corpus plus `extra` documents (shard `zz-hostile.jsonl`) into
/// `DIR/out`.
fn fixture_run(dir: &Path, extra: &[String]) -> PathBuf {
    let corpus = dir.join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    for name in ["clean.jsonl", "hazard.jsonl.zst", "unicode.jsonl.gz"] {
        std::fs::copy(repo().join("fixtures/corpus").join(name), corpus.join(name)).unwrap();
    }
    if !extra.is_empty() {
        std::fs::write(corpus.join("zz-hostile.jsonl"), extra.join("\n") + "\n").unwrap();
    }
    let out = dir.join("out");
    let result = sluice(&[
        "run",
        "-c",
        "configs/hazard-cascade.toml",
        "-i",
        path(&corpus),
        "-o",
        path(&out),
        "-q",
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    out
}

/// The decisions under `OUT/reviews/`, by file.
fn review_files(out: &Path) -> Vec<(String, Vec<Value>)> {
    let mut files: Vec<(String, Vec<Value>)> = std::fs::read_dir(out.join("reviews"))
        .map(|d| {
            d.map(|e| {
                let p = e.unwrap().path();
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    json_lines(&p),
                )
            })
            .collect()
        })
        .unwrap_or_default();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
}

#[test]
fn the_server_wants_its_token_sends_a_strict_policy_and_keeps_decisions_over_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let out = fixture_run(tmp.path(), &[]);
    let server = Served::start(&out, &[]);
    assert!(
        server.base.starts_with("http://127.0.0.1:"),
        "{}",
        server.url
    );
    assert_eq!(server.token.len(), 64);

    // No token, a wrong one, a prefix of the right one: refused, for the page and the API.
    for path in ["/", "/api/info", "/review.js", "/api/doc?pos=0"] {
        let r = http(&server.base, "GET", path, &[], None);
        assert_eq!(r.status, 403, "{path}");
        let wrong = format!(
            "{path}{}token=0000",
            if path.contains('?') { "&" } else { "?" }
        );
        assert_eq!(http(&server.base, "GET", &wrong, &[], None).status, 403);
        let short = &server.token[..63];
        let r = http(
            &server.base,
            "GET",
            path,
            &[("X-Sluice-Token", short)],
            None,
        );
        assert_eq!(r.status, 403, "{path}");
    }
    let r = http(
        &server.base,
        "POST",
        "/api/decide",
        &[("Content-Type", "application/json")],
        Some(b"{}"),
    );
    assert_eq!(r.status, 403);

    // The page: with the token in its address, as printed.
    let page = http(
        &server.base,
        "GET",
        &format!("/?token={}", server.token),
        &[],
        None,
    );
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    // No inline script or style, nothing from elsewhere.
    assert_eq!(page.body.matches("<script").count(), 1);
    assert!(page.body.contains("<script src=\"/review.js?token="));
    assert!(!page.body.contains("<style") && !page.body.contains(" style="));
    for external in ["http:", "https:", "//cdn", "@import"] {
        assert!(!page.body.contains(external), "{external}");
    }
    let script = server.get("/review.js");
    assert_eq!(script.status, 200);
    assert!(script
        .header("content-type")
        .unwrap()
        .starts_with("text/javascript"));
    assert!(!script.body.contains("innerHTML") && !script.body.contains("eval("));

    let info = server.json("/api/info");
    let report = read_json(&out.join("report.json"));
    let in_review = report["destinations"]["review"]["documents"]
        .as_u64()
        .unwrap();
    assert_eq!(info["queued"].as_u64().unwrap(), in_review);
    assert!(info["categories"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c[0] == "chem"));

    // One document per request; filters narrow the queue.
    let first = server.json("/api/doc?pos=0&reviewer=ana");
    assert_eq!(first["total"].as_u64().unwrap(), in_review);
    let doc = first["doc"].clone();
    assert!(doc["parts"][0]["segments"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| !s["marks"].as_array().unwrap().is_empty()));
    let chem = server.json("/api/doc?pos=0&category=chem");
    let bio = server.json("/api/doc?pos=0&category=bio");
    assert!(
        chem["total"].as_u64().unwrap() < in_review || bio["total"].as_u64().unwrap() < in_review
    );
    assert_eq!(server.json("/api/doc?pos=0&min_score=0.5")["total"], 0);

    // Bad decisions are refused plainly and write nothing.
    for (body, status, expected) in [
        (
            json!({"reviewer": "../x", "shard": doc["shard"], "line": doc["line"], "record_hash": doc["record_hash"], "decision": "keep"}),
            400,
            "invalid reviewer name",
        ),
        (
            json!({"reviewer": "ana", "shard": doc["shard"], "line": doc["line"], "record_hash": doc["record_hash"], "decision": "maybe"}),
            400,
            "unknown decision",
        ),
        (
            json!({"reviewer": "ana", "shard": doc["shard"], "line": doc["line"], "record_hash": "sha256:00", "decision": "keep"}),
            409,
            "reload",
        ),
        (
            json!({"reviewer": "ana", "shard": "nope.jsonl", "line": 1, "record_hash": "x", "decision": "keep"}),
            404,
            "no queued document",
        ),
        (
            json!({"shard": doc["shard"], "line": doc["line"], "record_hash": doc["record_hash"], "decision": "keep"}),
            400,
            "needs a reviewer",
        ),
    ] {
        let r = server.post("/api/decide", &body);
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert!(r.body.contains(expected), "{}", r.body);
    }
    assert!(!out.join("reviews").exists());

    let r = server.decide("ana", &doc, "drop", "a \"recipe\" <b>really</b>");
    assert_eq!(r.status, 200, "{}", r.body);
    let r = server.decide("bo", &doc, "keep", "");
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = server.json("/api/doc?pos=0&reviewer=ana");
    assert_eq!(seen["doc"]["mine"], "drop");
    assert_eq!(seen["doc"]["agreement"], "disagreed");
    assert_eq!(seen["done"], 1);
    assert_eq!(
        server.json("/api/disagreements").as_array().unwrap().len(),
        1
    );
    server.stop();

    // A restart reads the decisions back.
    let files = review_files(&out);
    assert_eq!(files.len(), 2);
    let ana = &files[0].1[0];
    assert_eq!(ana["reviewer"], "ana");
    assert_eq!(ana["decision"], "drop");
    assert_eq!(ana["note"], "a \"recipe\" <b>really</b>");
    assert_eq!(ana["record_hash"], doc["record_hash"]);
    assert_eq!(ana["id"], doc["id"]);
    assert_eq!(ana["source"], "review");
    assert!(ana["at"].as_str().unwrap().ends_with('Z'));
    let server = Served::start(&out, &["--reviewer", "ana"]);
    let again = server.json("/api/doc?pos=0");
    assert_eq!(again["reviewer"], "ana");
    assert_eq!(again["doc"]["mine"], "drop");
    assert_eq!(again["doc"]["decisions"].as_array().unwrap().len(), 2);
    // With --reviewer, every decision of this server is that reviewer's.
    let next = server.json("/api/doc?pos=1")["doc"].clone();
    assert_eq!(server.decide("mallory", &next, "keep", "").status, 200);
    server.stop();
    let files = review_files(&out);
    assert_eq!(files[0].1.len(), 2, "{files:?}");
    assert!(!files.iter().any(|(name, _)| name.starts_with("mallory")));

    // The disagreement from the command line.
    let listed = sluice(&["review", path(&out), "disagreements"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let text = stdout(&listed);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains("ana drop (a \"recipe\" <b>really</b>)") && text.contains("bo keep"),
        "{text}"
    );
    assert!(
        stderr(&listed).contains("1 document in dispute"),
        "{}",
        stderr(&listed)
    );
}

#[test]
fn listening_elsewhere_says_so_loudly_and_bad_usage_is_plain() {
    let tmp = tempfile::tempdir().unwrap();
    let out = fixture_run(tmp.path(), &[]);
    let server = Served::start(&out, &["--bind", "0.0.0.0"]);
    assert!(server.url.starts_with("http://0.0.0.0:"), "{}", server.url);
    let err = server.stop();
    assert!(err.contains("WARNING: listening on 0.0.0.0"), "{err}");

    for (args, expected) in [
        (
            vec!["review", "fixtures/corpus"],
            "not a sluice output directory",
        ),
        (
            vec!["review", path(&out), "--reviewer", "a/b"],
            "invalid reviewer name",
        ),
    ] {
        let result = sluice(&args);
        assert_eq!(result.status.code(), Some(2), "{}", stderr(&result));
        assert!(stderr(&result).contains(expected), "{}", stderr(&result));
        assert_eq!(stderr(&result).lines().count(), 1, "{}", stderr(&result));
    }
}

#[test]
fn apply_moves_decided_documents_like_rethreshold_and_labels_feed_eval() {
    let tmp = tempfile::tempdir().unwrap();
    let out = fixture_run(tmp.path(), &[]);

    // No decision: apply writes what rethreshold writes with the settings unchanged.
    let (plain, rethresholded) = (tmp.path().join("plain"), tmp.path().join("rethresholded"));
    let applied = sluice(&["review", path(&out), "apply", "-o", path(&plain)]);
    assert!(applied.status.success(), "{}", stderr(&applied));
    let same = sluice(&[
        "rethreshold",
        path(&out),
        "--set",
        "hazard-terms.min_distinct=2",
        "-o",
        path(&rethresholded),
        "-q",
    ]);
    assert!(same.status.success(), "{}", stderr(&same));
    assert_eq!(tree(&plain), tree(&rethresholded));

    let server = Served::start(&out, &["--sample-kept", "2", "--seed", "7"]);
    let info = server.json("/api/info");
    assert_eq!(info["sources"]["kept"], 2, "{info}");
    let review: Vec<Value> = (0..3)
        .map(|i| server.json(&format!("/api/doc?pos={i}&source=review"))["doc"].clone())
        .collect();
    let kept = server.json("/api/doc?pos=0&source=kept")["doc"].clone();
    assert_eq!(kept["source"], "kept");
    for (doc, decision) in [(&review[0], "keep"), (&review[1], "drop"), (&kept, "drop")] {
        assert_eq!(server.decide("ana", doc, decision, "").status, 200);
    }
    assert_eq!(server.decide("bo", &review[2], "keep", "").status, 200);
    assert_eq!(server.decide("ana", &review[2], "drop", "").status, 200);
    server.stop();

    let new = tmp.path().join("new");
    let result = sluice(&["review", path(&out), "apply", "--output", path(&new)]);
    assert!(result.status.success(), "{}", stderr(&result));
    let err = stderr(&result);
    assert!(err.contains("1 of review/ to kept, 1 to dropped"), "{err}");
    assert!(err.contains("(1 in dispute)"), "{err}");
    assert!(
        err.contains("1 document decided in the kept/dropped samples"),
        "{err}"
    );
    let before = read_json(&out.join("report.json"));
    let after = read_json(&new.join("report.json"));
    let n = |r: &Value, d: &str| r["destinations"][d]["documents"].as_u64().unwrap();
    assert_eq!(n(&after, "review"), n(&before, "review") - 2);
    assert_eq!(n(&after, "kept"), n(&before, "kept") + 1);
    assert_eq!(n(&after, "dropped"), n(&before, "dropped") + 1);
    assert_eq!(after["reviewed"], json!({"kept": 1, "dropped": 1}));
    assert!(new.join("report.html").is_file());
    // The moved documents are in their new streams, their records citing the decisions.
    let records: Vec<Value> = std::fs::read_dir(new.join("audit"))
        .unwrap()
        .flat_map(|e| json_lines(&e.unwrap().path()))
        .collect();
    let of = |doc: &Value| {
        records
            .iter()
            .find(|r| r["shard"] == doc["shard"] && r["line"] == doc["line"])
            .unwrap()
            .clone()
    };
    assert_eq!(of(&review[0])["decision"], "kept");
    assert_eq!(of(&review[0])["review"]["by"], json!(["ana"]));
    assert_eq!(of(&review[1])["decision"], "dropped");
    assert_eq!(
        of(&review[1])["review"]["decisions"],
        json!(["reviews/ana.jsonl:2"])
    );
    assert_eq!(of(&review[2])["decision"], "review");
    assert!(of(&review[2]).get("review").is_none());
    let shard = review[1]["shard"].as_str().unwrap();
    let dropped = lines(&new.join("dropped").join(shard));
    let id = review[1]["id"].as_str().unwrap();
    assert!(dropped
        .iter()
        .any(|l| String::from_utf8_lossy(l).contains(&format!("\"{id}\""))));
    // `audit` reads the new directory as any output.
    let summary = sluice(&["audit", path(&new), "summary"]);
    assert!(summary.status.success(), "{}", stderr(&summary));

    // Labels: the agreed documents (the sampled kept one too), read by `sluice eval` as they are.
    let labels = tmp.path().join("labels.jsonl");
    let result = sluice(&["review", path(&out), "export-labels", "-o", path(&labels)]);
    assert!(result.status.success(), "{}", stderr(&result));
    assert!(
        stderr(&result)
            .contains("1 \"benign\" (kept), 2 \"hazard\" (dropped); 1 in dispute left out"),
        "{}",
        stderr(&result)
    );
    let labeled = json_lines(&labels);
    assert_eq!(labeled.len(), 3);
    assert!(labeled
        .iter()
        .all(|l| l["text"].is_string() && l["label"].is_string()));
    let eval = sluice(&[
        "eval",
        "-c",
        "configs/hazard-cascade.toml",
        "--data",
        path(&labels),
        "--positive",
        "hazard",
    ]);
    assert!(eval.status.success(), "{}{}", stdout(&eval), stderr(&eval));
    assert!(stdout(&eval).contains("2 positive"), "{}", stdout(&eval));
}

#[test]
fn a_screen_output_gets_the_queue_and_its_verdict_is_redecided() {
    let tmp = tempfile::tempdir().unwrap();
    let chat = |answer: &str| {
        json!({"messages": [
            {"role": "user", "content": "A question."},
            {"role": "assistant", "content": answer},
        ]})
        .to_string()
    };
    let mut records: Vec<String> = (0..50)
        .map(|i| {
            chat(&format!(
                "Recipe {i}: mix flour and water, bake for {i} minutes."
            ))
        })
        .collect();
    records.push(chat("Sarin is a nerve agent."));
    let dataset = tmp.path().join("dataset.jsonl");
    std::fs::write(&dataset, records.join("\n") + "\n").unwrap();
    let out = tmp.path().join("screened");
    let screen = sluice(&[
        "screen",
        path(&dataset),
        "--config",
        "configs/finetune-screen.toml",
        "--output",
        path(&out),
    ]);
    assert_eq!(screen.status.code(), Some(1), "{}", stdout(&screen));

    let config = "configs/finetune-screen.toml";
    let verdict = sluice(&["review", path(&out), "verdict", "--config", config]);
    assert_eq!(verdict.status.code(), Some(1), "{}", stderr(&verdict));
    assert!(
        stdout(&verdict).starts_with("verdict: review\n"),
        "{}",
        stdout(&verdict)
    );

    let server = Served::start(&out, &["--reviewer", "ana"]);
    let doc = server.json("/api/doc?pos=0")["doc"].clone();
    // Each part with its role; the match marked in the assistant's part.
    let parts = doc["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 2, "{doc}");
    assert_eq!(parts[0]["role"], "user");
    assert_eq!(parts[1]["role"], "assistant");
    assert_eq!(parts[1]["path"], "messages[1].content");
    assert!(
        parts[1]["segments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["text"] == "Sarin" && !s["marks"].as_array().unwrap().is_empty()),
        "{doc}"
    );
    assert_eq!(
        server
            .decide("ana", &doc, "keep", "a definition, not a recipe")
            .status,
        200
    );
    server.stop();

    let verdict = sluice(&["review", path(&out), "verdict", "--config", config]);
    assert_eq!(verdict.status.code(), Some(0), "{}", stderr(&verdict));
    let text = stdout(&verdict);
    assert!(text.starts_with("verdict: accept\n"), "{text}");
    assert!(
        text.contains("flagged: 0 after review (was 1): 1 cleared by reviewers"),
        "{text}"
    );
    // A bad screen config: the screen's usage exit code.
    let bad = sluice(&["review", path(&out), "verdict", "--config", "nope.toml"]);
    assert_eq!(bad.status.code(), Some(4), "{}", stderr(&bad));
}

// ---- The page in a real browser ------------------------------------------------------------

/// Chromium and chromedriver, when both are installed (`scripts/chromium.sh`, which `.ci/run`
/// calls, installs Debian's). Under CI their absence fails the test.
fn browser_tools() -> Option<(PathBuf, PathBuf)> {
    // By full path: chromedriver wants its browser binary so.
    let found = |names: &[&str]| {
        let dirs = std::env::var_os("PATH").unwrap_or_default();
        names.iter().find_map(|name| {
            std::env::split_paths(&dirs)
                .map(|dir| dir.join(name))
                .find(|p| {
                    p.is_file()
                        && Command::new(p)
                            .arg("--version")
                            .output()
                            .is_ok_and(|o| o.status.success())
                })
        })
    };
    let tools =
        found(&["chromium", "chromium-browser", "google-chrome"]).zip(found(&["chromedriver"]));
    if tools.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: the review page browser test needs chromium and chromedriver \
             (scripts/chromium.sh installs them)"
        );
        eprintln!(
            "SKIPPED: review page browser test: no chromium and chromedriver \
             (scripts/chromium.sh installs them, as .ci/run does)"
        );
    }
    tools
}

/// A WebDriver session of headless Chromium, ended (and the driver stopped) when dropped.
struct Browser {
    driver: Child,
    base: String,
    session: String,
}

impl Browser {
    fn start(chromium: &Path, chromedriver: &Path, profile: &Path) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while TcpStream::connect(base.strip_prefix("http://").unwrap()).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
        };
        let created = browser.call(
            "POST",
            "/session",
            json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                         "--window-size=1280,900",
                         format!("--user-data-dir={}", profile.display())],
            }}}}),
        );
        browser.session = created["sessionId"]
            .as_str()
            .expect("a session")
            .to_string();
        browser
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let path = if self.session.is_empty() {
            path.to_string()
        } else {
            format!("/session/{}{path}", self.session)
        };
        let body = (!body.is_null()).then(|| body.to_string());
        let r = http(
            &self.base,
            method,
            &path,
            &[("Content-Type", "application/json")],
            body.as_deref().map(str::as_bytes),
        );
        let value: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        assert_eq!(r.status, 200, "webdriver {method} {path}: {}", r.body);
        value["value"].clone()
    }

    fn go(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url }));
    }

    fn script(&self, source: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": source, "args": []}),
        )
    }

    /// Key presses sent to the page as a user's keyboard sends them.
    fn keys(&self, keys: &str) {
        let mut actions = Vec::new();
        for key in keys.chars() {
            actions.push(json!({"type": "keyDown", "value": key.to_string()}));
            actions.push(json!({"type": "keyUp", "value": key.to_string()}));
        }
        self.call(
            "POST",
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]}),
        );
    }

    fn type_into(&self, css: &str, text: &str) {
        let element = self.call(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        let id = element
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap()
            .to_string();
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        );
    }

    /// Waits until `condition` (a JS expression) is true; its last value otherwise.
    fn wait(&self, condition: &str) {
        let started = Instant::now();
        loop {
            if self.script(&format!("return !!({condition});")) == json!(true) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "timed out waiting for {condition}: {}",
                self.script("return document.body.dataset.state + ' ' + document.getElementById('status').textContent;")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the page to have saved `n` decisions and reloaded.
    fn wait_saved(&self, n: u32) {
        self.wait(&format!(
            "document.body.dataset.saved === '{n}' && document.body.dataset.state === 'ready'"
        ));
    }

    fn screenshot(&self, to: &Path) {
        use base64::Engine as _;
        let png = self.call("GET", "/screenshot", Value::Null);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        std::fs::write(to, bytes).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = std::panic::catch_unwind(|| http(&self.base, "DELETE", &path, &[], None));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[test]
fn the_page_reviews_with_the_keyboard_in_a_browser_and_runs_no_corpus_script() {
    let Some((chromium, chromedriver)) = browser_tools() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // Escalated by the term list (two chemical agents), with markup and script in its text.
    let hostile = json!({"id": "x<b>1</b>", "text":
        "Sarin and tabun <script>window.__pwned = 'script'; document.title = 'pwned'</script> \
         <img src=x onerror=\"window.__pwned = 'img'; document.title = 'pwned'\"> </textarea> \
         </div><svg onload=\"window.__pwned = 'svg'\"></svg>"})
    .to_string();
    let out = fixture_run(tmp.path(), &[hostile]);
    let server = Served::start(&out, &[]);
    let browser = Browser::start(&chromium, &chromedriver, &tmp.path().join("profile"));
    browser.go(&server.url);
    browser.wait(
        "document.body.dataset.state === 'ready' && !document.getElementById('name-form').hidden",
    );
    // The page asks for a name; Enter starts the review.
    browser.type_into("#reviewer-name", "ana\u{E007}");
    browser.wait("document.getElementById('who').textContent === 'reviewing as ana' && document.body.dataset.line !== ''");
    let total = server.json("/api/info")["queued"].as_u64().unwrap();
    assert!(browser
        .script("return document.getElementById('progress-text').textContent")
        .as_str()
        .unwrap()
        .starts_with(&format!("0 done / {total} left")),);

    // Keyboard: keep the first, skip the second, undo the skip (back to the second).
    let first = server.json("/api/doc?pos=0")["doc"].clone();
    let second = server.json("/api/doc?pos=1")["doc"].clone();
    browser.keys("k");
    browser.wait_saved(1);
    browser.wait("document.getElementById('progress-text').textContent.includes('2 of ')");
    browser.keys("s");
    browser.wait_saved(2);
    browser.keys("u");
    browser.wait_saved(3);
    browser.wait("document.getElementById('progress-text').textContent.includes('2 of ')");
    let mine = browser.script("return document.getElementById('mine').textContent");
    assert_eq!(
        mine, "not decided by you",
        "undo brings back the skipped one"
    );
    browser.wait(&format!(
        "document.getElementById('progress-text').textContent.startsWith('1 done / {} left')",
        total - 1
    ));

    // The hostile document (its shard sorts last): shown literally, nothing of it ran or
    // became an element.
    assert_eq!(
        server.json(&format!("/api/doc?pos={}", total - 1))["doc"]["shard"],
        "zz-hostile.jsonl"
    );
    for _ in 1..total - 1 {
        browser.keys("j");
    }
    browser.wait("document.body.dataset.shard === 'zz-hostile.jsonl' && document.body.dataset.state === 'ready'");
    let shown = browser.script("return document.getElementById('parts').textContent");
    let shown = shown.as_str().unwrap();
    assert!(
        shown.contains("<script>window.__pwned = 'script'"),
        "{shown}"
    );
    assert!(shown.contains("<img src=x onerror="), "{shown}");
    assert!(shown.contains("</textarea>"), "{shown}");
    let meta = browser.script("return document.getElementById('meta').textContent");
    assert!(meta.as_str().unwrap().contains("x<b>1</b>"), "{meta}");
    // A note (n, text, Enter), then drop.
    browser.keys("n");
    browser.wait("document.activeElement.id === 'note'");
    browser.keys("injected markup\u{E007}");
    browser.wait("document.activeElement.id !== 'note'");
    browser.keys("d");
    browser.wait_saved(4);
    let verdict = browser.script(
        "return [typeof window.__pwned, document.title, \
         document.querySelectorAll('#parts script, #parts img, #parts svg, #meta b b').length, \
         document.querySelectorAll('#parts mark').length]",
    );
    assert_eq!(verdict[0], "undefined", "a corpus script ran: {verdict}");
    assert_eq!(verdict[1], "sluice review");
    assert_eq!(verdict[2], 0, "corpus markup became elements: {verdict}");
    assert!(
        verdict[3].as_u64().unwrap() >= 2,
        "matches marked: {verdict}"
    );
    let screenshot = tmp.path().join("review.png");
    browser.screenshot(&screenshot);
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 10_000);
    if let Ok(dir) = std::env::var("SLUICE_REVIEW_SCREENSHOT") {
        std::fs::copy(&screenshot, dir).unwrap();
    }
    drop(browser);
    server.stop();

    // What the keys recorded.
    let files = review_files(&out);
    assert_eq!(files.len(), 1);
    let decisions: Vec<(&str, &str, &str)> = files[0]
        .1
        .iter()
        .map(|d| {
            (
                d["shard"].as_str().unwrap(),
                d["decision"].as_str().unwrap(),
                d["note"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let (s1, s2) = (
        first["shard"].as_str().unwrap(),
        second["shard"].as_str().unwrap(),
    );
    assert_eq!(
        decisions,
        [
            (s1, "keep", ""),
            (s2, "skip", ""),
            (s2, "undo", ""),
            ("zz-hostile.jsonl", "drop", "injected markup"),
        ]
    );
    assert_eq!(files[0].1[0]["line"], first["line"]);

    // And what apply makes of them.
    let new = tmp.path().join("new");
    let result = sluice(&["review", path(&out), "apply", "-o", path(&new)]);
    assert!(result.status.success(), "{}", stderr(&result));
    let dropped = lines(&new.join("dropped/zz-hostile.jsonl"));
    assert_eq!(dropped.len(), 1);
    assert!(String::from_utf8_lossy(&dropped[0]).contains("x<b>1</b>"));
    let report = read_json(&new.join("report.json"));
    assert_eq!(report["reviewed"], json!({"kept": 1, "dropped": 1}));
}

#[test]
fn parquet_outputs_and_classifier_scores_are_queued_filtered_and_applied() {
    let tmp = tempfile::tempdir().unwrap();
    let config = super::test_config(tmp.path(), "zstd_level = 3");
    // Every escalated document is scored by the tiny random BERT and lands in review.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[[stages]]\ntype = \"classifier\"\nid = \"toxicity\"\nmodel = {:?}\nlabel = \"toxic\"\n\
         drop_threshold = 0.999\nreview_threshold = 0.001\n",
        repo().join("fixtures/models/bert")
    ));
    std::fs::write(&config, text).unwrap();
    let out = tmp.path().join("out");
    let hf = repo().join("fixtures/parquet/hf");
    let report = super::run_ok(&config, &[&hf, &repo().join("fixtures/corpus")], &out, &[]);
    let in_review = report["destinations"]["review"]["documents"]
        .as_u64()
        .unwrap();

    let server = Served::start(&out, &["--reviewer", "ana"]);
    assert_eq!(
        server.json("/api/info")["scores"].as_u64().unwrap(),
        in_review
    );
    let all = server.json("/api/doc?pos=0");
    assert_eq!(all["total"].as_u64().unwrap(), in_review);
    let scores: Vec<f64> = (0..in_review)
        .map(|i| {
            server.json(&format!("/api/doc?pos={i}"))["doc"]["score"]
                .as_f64()
                .unwrap()
        })
        .collect();
    let middle = {
        let mut s = scores.clone();
        s.sort_by(f64::total_cmp);
        s[s.len() / 2]
    };
    let high = server.json(&format!("/api/doc?pos=0&min_score={middle}"));
    let low = server.json(&format!("/api/doc?pos=0&max_score={middle}"));
    let n = |v: &Value| v["total"].as_u64().unwrap();
    assert_eq!(
        n(&high),
        scores
            .iter()
            .filter(|s| **s as f32 >= middle as f32)
            .count() as u64
    );
    assert_eq!(
        n(&low),
        scores
            .iter()
            .filter(|s| **s as f32 <= middle as f32)
            .count() as u64
    );
    assert!(n(&high) < in_review || n(&low) < in_review);
    assert!(high["doc"]["record"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["type"] == "classifier" && s["review_threshold"] == 0.001));

    // A Parquet row and a JSONL line decided.
    let docs: Vec<Value> = (0..in_review)
        .map(|i| server.json(&format!("/api/doc?pos={i}"))["doc"].clone())
        .collect();
    let parquet = docs
        .iter()
        .find(|d| d["shard"].as_str().unwrap().ends_with(".parquet"))
        .expect("a parquet document in review");
    let jsonl = docs
        .iter()
        .find(|d| !d["shard"].as_str().unwrap().ends_with(".parquet"))
        .expect("a jsonl document in review");
    assert!(parquet["readable"].as_bool().unwrap(), "{parquet}");
    assert_eq!(server.decide("ana", parquet, "drop", "").status, 200);
    assert_eq!(server.decide("ana", jsonl, "keep", "").status, 200);
    server.stop();

    let new = tmp.path().join("new");
    let result = sluice(&["review", path(&out), "apply", "-o", path(&new)]);
    assert!(result.status.success(), "{}", stderr(&result));
    let after = read_json(&new.join("report.json"));
    assert_eq!(after["reviewed"], json!({"kept": 1, "dropped": 1}));
    let shard = parquet["shard"].as_str().unwrap();
    let records = json_lines(&new.join("audit").join(format!("{shard}.jsonl.zst")));
    let moved = records
        .iter()
        .find(|r| r["line"] == parquet["line"])
        .unwrap();
    assert_eq!(moved["decision"], "dropped");
    assert_eq!(moved["review"]["by"], json!(["ana"]));
    // The walker checks every row against its record and stream: the new directory reads whole.
    let summary = sluice(&["audit", path(&new), "summary"]);
    assert!(summary.status.success(), "{}", stderr(&summary));
    let export = sluice(&[
        "audit",
        path(&new),
        "export",
        "--decision",
        "dropped",
        "-o",
        path(&tmp.path().join("x.jsonl")),
    ]);
    assert!(export.status.success(), "{}", stderr(&export));
}
