//! The HTTP server: the page, its script and style (written for it, embedded in the binary), and
//! a small JSON API. Every request needs the token; every response carries the page's
//! Content-Security-Policy and is not cached.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sluice_core::document::FieldExtractor;
use sluice_core::stats::Destination;

use crate::decisions::{self, Decision, DecisionRecord, History, Logged, Standing};
use crate::index::{Queue, QueueOptions};
use crate::ReviewError;

const PAGE: &str = include_str!("../assets/review.html");
const SCRIPT: &str = include_str!("../assets/review.js");
const STYLE: &str = include_str!("../assets/review.css");

/// Scripts and styles from the server only, no inline script or style, no plugin, no frame, no
/// form posting elsewhere; `connect-src 'self'` for the API.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                       connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
                       frame-ancestors 'none'";

/// A note longer than this is refused (a note is a sentence, not a document).
const MAX_NOTE: usize = 4096;

/// How `sluice review OUT` serves.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub bind: IpAddr,
    /// 0: any free port.
    pub port: u16,
    /// Every decision of this server is this reviewer's; else the page asks for a name.
    pub reviewer: Option<String>,
    pub queue: QueueOptions,
}

/// The server, ready to listen: its queue built, its token drawn.
pub struct Server {
    app: Arc<App>,
    listener: std::net::TcpListener,
}

struct App {
    out: PathBuf,
    token: String,
    reviewer: Option<String>,
    queue: Queue,
    extractor: FieldExtractor,
    history: Mutex<History>,
    writer: decisions::Writer,
}

/// 32 bytes from the operating system's random source, in hex.
fn draw_token() -> Result<String, ReviewError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        ReviewError::Serve(format!("no random token from the operating system: {e}"))
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Server {
    /// Builds the queue of `out_dir` and binds the listening socket.
    pub fn new(out_dir: &Path, options: &ServeOptions) -> Result<Server, ReviewError> {
        if let Some(name) = &options.reviewer {
            decisions::check_reviewer(name)?;
        }
        let out = sluice_audit::OutDir::open(out_dir)?;
        let queue = Queue::build(&out, &options.queue)?;
        let history = History::of_log(&decisions::load(out_dir)?);
        let addr = SocketAddr::new(options.bind, options.port);
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| ReviewError::Serve(format!("cannot listen on {addr}: {e}")))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| ReviewError::Serve(e.to_string()))?;
        Ok(Server {
            app: Arc::new(App {
                out: out_dir.to_path_buf(),
                token: draw_token()?,
                reviewer: options.reviewer.clone(),
                extractor: out.extractor(),
                queue,
                history: Mutex::new(history),
                writer: decisions::Writer::new(out_dir),
            }),
            listener,
        })
    }

    /// The page's address, token included (`http://127.0.0.1:PORT/?token=...`).
    pub fn url(&self) -> String {
        let addr = self
            .listener
            .local_addr()
            .expect("a bound socket has an address");
        let host = match addr.ip() {
            IpAddr::V6(ip) => format!("[{ip}]"),
            IpAddr::V4(ip) => ip.to_string(),
        };
        format!("http://{host}:{}/?token={}", addr.port(), self.app.token)
    }

    /// How many documents are queued, by where the cascade sent them.
    pub fn queued(&self) -> BTreeMap<&'static str, usize> {
        let mut out = BTreeMap::new();
        for e in &self.app.queue.entries {
            *out.entry(e.source.name()).or_default() += 1;
        }
        out
    }

    /// Serves until the process is interrupted (Ctrl-C, SIGTERM).
    pub fn run(self) -> Result<(), ReviewError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_io()
            .build()
            .map_err(|e| ReviewError::Serve(e.to_string()))?;
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(self.listener)
                .map_err(|e| ReviewError::Serve(e.to_string()))?;
            axum::serve(listener, router(self.app))
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await
                .map_err(|e| ReviewError::Serve(e.to_string()))
        })
    }
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/review.js", get(script))
        .route("/review.css", get(style))
        .route("/api/info", get(info))
        .route("/api/doc", get(doc))
        .route("/api/decide", post(decide))
        .route("/api/disagreements", get(disagreements))
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// Equal without an early exit: the time taken says nothing about how much of a guess is right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

fn query_token(query: &str) -> Option<&str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
}

/// The token check and the security headers, on every request and response.
async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get("x-sluice-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            request
                .uri()
                .query()
                .and_then(query_token)
                .map(str::to_string)
        });
    let mut response = match given {
        Some(t) if same(t.as_bytes(), app.token.as_bytes()) => next.run(request).await,
        _ => (
            StatusCode::FORBIDDEN,
            "forbidden: open the address `sluice review` printed, with its token\n",
        )
            .into_response(),
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // The token is in the page's address: never send it on.
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn typed(content_type: &'static str, body: String) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn page(State(app): State<Arc<App>>) -> Response {
    // The token is hex: safe in an attribute. The script and style are loaded with it.
    typed(
        "text/html; charset=utf-8",
        PAGE.replace("{{TOKEN}}", &app.token),
    )
}

async fn script() -> Response {
    typed("text/javascript; charset=utf-8", SCRIPT.to_string())
}

async fn style() -> Response {
    typed("text/css; charset=utf-8", STYLE.to_string())
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn info(State(app): State<Arc<App>>) -> Response {
    let q = &app.queue;
    let scores: Vec<f32> = q.entries.iter().filter_map(|e| e.score).collect();
    let mut sources: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &q.entries {
        *sources.entry(e.source.name()).or_default() += 1;
    }
    Json(json!({
        "output": app.out.display().to_string(),
        "reviewer": app.reviewer,
        "queued": q.entries.len(),
        "sources": sources,
        "reasons": q.reasons,
        "categories": q.categories,
        "scores": scores.len(),
    }))
    .into_response()
}

/// Filters of the queue, from the page's query string.
#[derive(Deserialize, Default)]
struct Selection {
    #[serde(default)]
    pos: usize,
    #[serde(default)]
    reviewer: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    min_score: Option<f32>,
    #[serde(default)]
    max_score: Option<f32>,
    /// `review`, `kept`, `dropped`.
    #[serde(default)]
    source: Option<String>,
    /// `undecided` (by this reviewer), `decided`, `disagreed`.
    #[serde(default)]
    status: Option<String>,
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

impl App {
    /// The reviewer of a request: this server's, else the one the page names (checked).
    fn reviewer_of(&self, asked: Option<&str>) -> Result<Option<String>, String> {
        match (&self.reviewer, asked) {
            (Some(fixed), _) => Ok(Some(fixed.clone())),
            (None, None) => Ok(None),
            (None, Some(name)) => decisions::check_reviewer(name)
                .map(|()| Some(name.to_string()))
                .map_err(|e| e.to_string()),
        }
    }

    /// The queue positions `sel` selects, and how many of them `reviewer` has done.
    fn select(&self, sel: &Selection, reviewer: Option<&str>) -> (Vec<usize>, usize) {
        let q = &self.queue;
        let index_of = |names: &[(String, u64)], key: Option<&str>| {
            key.map(|k| names.iter().position(|(n, _)| n == k).map(|i| i as u32))
        };
        let reason = index_of(&q.reasons, nonempty(&sel.reason));
        let category = index_of(&q.categories, nonempty(&sel.category));
        let source = nonempty(&sel.source);
        let status = nonempty(&sel.status);
        let history = self.history.lock().expect("history lock");
        let mut picked = Vec::new();
        let mut done = 0;
        for (i, e) in q.entries.iter().enumerate() {
            if let Some(want) = reason {
                if want.is_none_or(|r| !e.reasons.contains(&r)) {
                    continue;
                }
            }
            if let Some(want) = category {
                if want.is_none_or(|c| !e.categories.contains(&c)) {
                    continue;
                }
            }
            if sel.min_score.is_some() || sel.max_score.is_some() {
                let Some(score) = e.score else { continue };
                if sel.min_score.is_some_and(|m| score < m)
                    || sel.max_score.is_some_and(|m| score > m)
                {
                    continue;
                }
            }
            if source.is_some_and(|s| s != e.source.name()) {
                continue;
            }
            let by = history.of(q.shard(e), e.line);
            let mine = reviewer
                .and_then(|r| by.get(r))
                .filter(|s| s.record_hash == e.hash);
            match status {
                Some("undecided") if mine.is_some() => continue,
                Some("decided") if mine.is_none() => continue,
                Some("disagreed")
                    if decisions::agreement(&by, &e.hash) != decisions::Agreement::Disagreed =>
                {
                    continue
                }
                _ => {}
            }
            done += usize::from(mine.is_some());
            picked.push(i);
        }
        (picked, done)
    }

    fn document(&self, i: usize, reviewer: Option<&str>) -> Result<Value, ReviewError> {
        let q = &self.queue;
        let e = &q.entries[i];
        let fetched = q.fetch(i)?;
        let record = fetched.record.as_ref();
        let spans = record.map(|r| r.spans()).unwrap_or_default();
        let (parts, readable, id) = match self.extractor.extract(&fetched.raw) {
            Ok(doc) => {
                let text = doc.text.as_ref();
                let parts: Vec<Value> = if doc.parts.is_empty() {
                    vec![
                        json!({ "path": null, "role": null, "segments": segments(text, 0..text.len(), &spans) }),
                    ]
                } else {
                    // A part's spans are recorded in the part's own offsets.
                    doc.parts
                        .iter()
                        .filter_map(|p| {
                            let body = text.get(p.range.clone())?;
                            let own: Vec<_> = spans
                                .iter()
                                .filter(|s| s.part.as_deref() == Some(p.path.as_str()))
                                .cloned()
                                .collect();
                            Some(json!({
                                "path": p.path,
                                "role": p.role.as_deref(),
                                "segments": segments(body, 0..body.len(), &own),
                            }))
                        })
                        .collect()
                };
                (parts, true, doc.id.clone())
            }
            // The line as it is, when the run's fields no longer read it.
            Err(_) => (
                vec![
                    json!({ "path": null, "role": null, "segments": [{ "text": String::from_utf8_lossy(&fetched.raw), "marks": [] }] }),
                ],
                false,
                None,
            ),
        };
        let id = record.map(|r| r.id.to_string()).or(id).unwrap_or_default();
        let by = self
            .history
            .lock()
            .expect("history lock")
            .of(q.shard(e), e.line);
        let decisions: Vec<&Standing> = by.values().collect();
        let mine = reviewer
            .and_then(|r| by.get(r))
            .filter(|s| s.record_hash == e.hash)
            .map(|s| s.decision.name());
        Ok(json!({
            "index": i,
            "shard": q.shard(e),
            "line": e.line,
            "id": id,
            "source": e.source.name(),
            "record_hash": e.hash,
            "score": e.score,
            "readable": readable,
            "parts": parts,
            "record": record,
            "decisions": decisions,
            "mine": mine,
            "agreement": match decisions::agreement(&by, &e.hash) {
                decisions::Agreement::Undecided => "undecided",
                decisions::Agreement::Agreed { destination: Destination::Kept, .. } => "keep",
                decisions::Agreement::Agreed { .. } => "drop",
                decisions::Agreement::Disagreed => "disagreed",
            },
        }))
    }
}

/// The text of `range` cut where marks start and end: `[{text, marks: [labels]}]`. Spans are
/// byte offsets on character boundaries (moved back to one when a record is damaged).
fn segments(
    text: &str,
    range: std::ops::Range<usize>,
    spans: &[sluice_core::stage::LabeledSpan],
) -> Vec<Value> {
    let floor = |mut i: usize| {
        i = i.min(text.len());
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let (start, end) = (floor(range.start), floor(range.end));
    let spans: Vec<(usize, usize, &str)> = spans
        .iter()
        .map(|s| {
            (
                floor(s.start).max(start),
                floor(s.end).min(end),
                s.label.as_str(),
            )
        })
        .filter(|(a, b, _)| a < b)
        .collect();
    let mut cuts = vec![start, end];
    for (a, b, _) in &spans {
        cuts.push(*a);
        cuts.push(*b);
    }
    cuts.sort_unstable();
    cuts.dedup();
    cuts.windows(2)
        .map(|w| {
            let (a, b) = (w[0], w[1]);
            let mut marks: Vec<&str> = spans
                .iter()
                .filter(|(s, e, _)| *s <= a && b <= *e)
                .map(|(_, _, l)| *l)
                .collect();
            marks.dedup();
            json!({ "text": &text[a..b], "marks": marks })
        })
        .collect()
}

async fn doc(State(app): State<Arc<App>>, Query(sel): Query<Selection>) -> Response {
    let reviewer = match app.reviewer_of(nonempty(&sel.reviewer)) {
        Ok(r) => r,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let (picked, done) = app.select(&sel, reviewer.as_deref());
    let total = picked.len();
    let pos = sel.pos.min(total.saturating_sub(1));
    let document = match picked.get(pos) {
        Some(&i) => match app.document(i, reviewer.as_deref()) {
            Ok(d) => d,
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
        None => Value::Null,
    };
    Json(json!({
        "position": pos,
        "total": total,
        "done": done,
        "queued": app.queue.entries.len(),
        "reviewer": reviewer,
        "doc": document,
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecideRequest {
    #[serde(default)]
    reviewer: Option<String>,
    shard: String,
    line: u64,
    record_hash: String,
    decision: String,
    #[serde(default)]
    note: String,
}

#[derive(Serialize)]
struct DecideResponse {
    citation: String,
    decisions: Vec<Standing>,
}

async fn decide(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Response {
    let request: DecideRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid decision: {e}")),
    };
    let reviewer = match app.reviewer_of(request.reviewer.as_deref().filter(|r| !r.is_empty())) {
        Ok(Some(r)) => r,
        Ok(None) => return error(StatusCode::BAD_REQUEST, "a decision needs a reviewer name"),
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let Some(decision) = Decision::parse(&request.decision) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown decision `{}`: keep, drop, skip or undo",
                request.decision
            ),
        );
    };
    if request.note.len() > MAX_NOTE {
        return error(
            StatusCode::BAD_REQUEST,
            format!("a note is at most {MAX_NOTE} bytes"),
        );
    }
    let Some(i) = app.queue.find(&request.shard, request.line) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no queued document at {}:{}", request.shard, request.line),
        );
    };
    let entry = &app.queue.entries[i];
    if request.record_hash != entry.hash {
        return error(
            StatusCode::CONFLICT,
            "the document's audit record is not the one shown: reload the page",
        );
    }
    let id = match app.queue.fetch(i) {
        Ok(f) => f
            .record
            .map(|r| r.id.to_string())
            .or_else(|| app.extractor.extract(&f.raw).ok().and_then(|d| d.id))
            .unwrap_or_default(),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let record = DecisionRecord {
        reviewer,
        at: decisions::now_utc(),
        id,
        shard: request.shard.clone(),
        line: request.line,
        source: entry.source,
        record_hash: entry.hash.clone(),
        decision,
        note: request.note,
    };
    // One writer at a time: the history and the files stay in the same order.
    let mut history = app.history.lock().expect("history lock");
    let citation = match app.writer.append(&record) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    history.push(&Logged {
        record,
        citation: citation.clone(),
    });
    let decisions = history
        .of(&request.shard, request.line)
        .into_values()
        .collect();
    Json(DecideResponse {
        citation,
        decisions,
    })
    .into_response()
}

async fn disagreements(State(app): State<Arc<App>>) -> Response {
    let q = &app.queue;
    let history = app.history.lock().expect("history lock");
    let list: Vec<Value> = q
        .entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let by = history.of(q.shard(e), e.line);
            (decisions::agreement(&by, &e.hash) == decisions::Agreement::Disagreed).then(|| {
                json!({
                    "index": i,
                    "shard": q.shard(e),
                    "line": e.line,
                    "decisions": by.values().collect::<Vec<_>>(),
                })
            })
        })
        .collect();
    Json(list).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::stage::LabeledSpan;

    fn span(start: usize, end: usize, label: &str) -> LabeledSpan {
        LabeledSpan {
            start,
            end,
            label: label.into(),
            part: None,
            role: None,
        }
    }

    #[test]
    fn segments_cut_at_marks_and_parts_on_character_boundaries() {
        let text = "héllo sarin world";
        let cut = segments(
            text,
            0..text.len(),
            &[span(7, 12, "sarin"), span(2, 4, "x")],
        );
        let pieces: Vec<(String, usize)> = cut
            .iter()
            .map(|v| {
                (
                    v["text"].as_str().unwrap().to_string(),
                    v["marks"].as_array().unwrap().len(),
                )
            })
            .collect();
        // Byte 2 is inside `é`: moved back to its start.
        assert_eq!(
            pieces,
            [
                ("h".to_string(), 0),
                ("él".to_string(), 1),
                ("lo ".to_string(), 0),
                ("sarin".to_string(), 1),
                (" world".to_string(), 0)
            ]
        );
        // A part sees only its own bytes.
        let part = segments(text, 8..12, &[span(7, 12, "sarin")]);
        assert_eq!(part.len(), 1);
        assert_eq!(part[0]["text"], "arin");
    }

    #[test]
    fn tokens_compare_whole_and_come_from_the_query_or_nowhere() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
        assert_eq!(query_token("a=1&token=xyz"), Some("xyz"));
        assert_eq!(query_token("xtoken=1"), None);
        let (a, b) = (draw_token().unwrap(), draw_token().unwrap());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
