//! Inputs in object storage: `s3://`, `gs://`, `az://` / `abfs://` URLs (listed like directories,
//! globs allowed) and `https://` single objects, read as streams.
//!
//! # One runtime, sync callers
//!
//! The pipeline is synchronous (rayon workers, a reader thread per shard); the object store
//! client (`object_store`, from the Apache Arrow project) is async. One static multi-thread
//! tokio runtime serves every request, and the sync side waits on it with `block_on`, one GET
//! stream chunk (a few hundred KiB at most) at a time: a shard is never held whole, in memory or
//! on disk.
//!
//! # Credentials only from the environment
//!
//! Each store is built by its builder's `from_env()` (`AWS_*` with `AWS_ENDPOINT_URL` and
//! `AWS_ALLOW_HTTP` for S3-compatible servers, `GOOGLE_*`, `AZURE_*`), then given the URL. No
//! secret is read from a config file, and none is ever in a message: errors name the URL and
//! what the server said.
//!
//! # Retries and resuming
//!
//! Every request is retried by the client with exponential back-off (100 ms doubling to 15 s,
//! 10 retries, 3 minutes at most) on throttling (429, `SlowDown`), 5xx and dropped or refused
//! connections. A GET stream that fails part-way (a connection dropped mid-object) is re-requested
//! from the byte it stopped at (a ranged GET, `If-Match` the ETag listed, so a changed object is
//! an error, never a splice of two versions), up to [`MAX_RESUMES`] times per object.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures::stream::{BoxStream, StreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, GetOptions, GetRange, ObjectStore, ObjectStoreExt, RetryConfig};

use crate::discover::{is_shard_file_name, SkipReason, TEMP_SUFFIX};
use crate::IoError;

/// The URL schemes sluice reads (`object_store`'s names for S3, GCS, Azure and HTTP).
pub const URL_SCHEMES: &[&str] = &[
    "s3", "s3a", "gs", "az", "adl", "azure", "abfs", "abfss", "http", "https",
];

/// How many times one object's GET stream is resumed after failing part-way before the shard
/// fails.
pub const MAX_RESUMES: u32 = 10;

/// How many times a GET is sent before its object's shard fails, when the client's own retries
/// (a few seconds) were not enough.
pub const MAX_ATTEMPTS: u32 = 10;

/// Whether another try could mend a failed request: throttling, 5xx, a refused or dropped
/// connection; not credentials, a missing object or a changed one.
fn is_transient(error: &object_store::Error) -> bool {
    use object_store::Error as E;
    match error {
        E::NotFound { .. }
        | E::PermissionDenied { .. }
        | E::Unauthenticated { .. }
        | E::Precondition { .. }
        | E::InvalidPath { .. }
        | E::NotSupported { .. }
        | E::NotImplemented { .. } => false,
        _ => {
            let text = one_line(error);
            let client_error = (400..500)
                .filter(|code| *code != 429)
                .any(|code| text.contains(&format!("status code: {code}")));
            !client_error
        }
    }
}

/// One object of an input in object storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteObject {
    /// The object's URL (`s3://bucket/key`), as listed.
    pub url: String,
    /// Its size in bytes, as listed.
    pub size: u64,
    /// Its ETag, as listed (where the store gives one).
    pub etag: Option<String>,
    /// Its last-modified time, nanoseconds since the Unix epoch.
    pub modified_ns: Option<u64>,
}

/// Whether an input names a URL (`scheme://...`) rather than a local path.
pub fn is_url(input: &str) -> bool {
    input.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.')
    })
}

/// An object found under an input URL, with the path its shard name is computed from.
pub(crate) struct Listed {
    /// `/<scheme>:/<bucket>/<key>`: a virtual absolute path, so that names are computed as for
    /// local files (relative to the deepest common "directory") and never collide with them.
    pub key: PathBuf,
    pub object: RemoteObject,
}

/// What one input URL holds.
#[derive(Default)]
pub(crate) struct Listing {
    pub objects: Vec<Listed>,
    pub skipped: Vec<(PathBuf, SkipReason)>,
}

pub(crate) fn remote_error(url: &str, error: object_store::Error) -> IoError {
    let text = one_line(&error);
    let between = |open: &str, close: &str| {
        let start = text.find(open)? + open.len();
        let end = text[start..].find(close)? + start;
        Some(text[start..end].to_string())
    };
    // object_store wraps most failed requests as `Generic`: the status and the server's error
    // code say what happened.
    let status = [401u16, 403, 404, 412]
        .into_iter()
        .find(|code| text.contains(&format!("status code: {code}")));
    let what = match (&error, status) {
        (
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. },
            _,
        )
        | (_, Some(401 | 403)) => "access denied: check the credentials (AWS_*, GOOGLE_*, AZURE_*)",
        (object_store::Error::Precondition { .. }, _) | (_, Some(412)) => {
            "the object changed while it was read"
        }
        _ if text.contains("NoSuchBucket") => "no such bucket",
        (object_store::Error::NotFound { .. }, _) | (_, Some(404)) => "not found",
        _ => "request failed",
    };
    let message = match (
        between("<Code>", "</Code>"),
        between("<Message>", "</Message>"),
    ) {
        (Some(code), Some(said)) => format!("{what} (the server said {code}: {said})"),
        _ => format!("{what}: {text}"),
    };
    IoError::Remote {
        url: url.to_string(),
        message,
    }
}

/// The error and its sources on one line (the server's XML body included, without newlines).
pub(crate) fn one_line(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let more = inner.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = inner.source();
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(crate) fn runtime() -> Result<&'static tokio::runtime::Runtime, IoError> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("sluice-object-store")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|message| IoError::Remote {
            url: String::new(),
            message: format!("cannot start the object store runtime: {message}"),
        })
}

fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(15),
            base: 2.0,
        },
        max_retries: 10,
        retry_timeout: Duration::from_secs(180),
    }
}

/// A store and the object path inside it a URL names.
pub(crate) struct Location {
    pub(crate) store: Arc<dyn ObjectStore>,
    /// `scheme://authority`, for rebuilding object URLs.
    pub(crate) base: String,
    pub(crate) scheme: String,
    pub(crate) authority: String,
    pub(crate) path: ObjectPath,
    /// The path as written (percent-decoded), to tell `prefix/` from `prefix` and find globs.
    pub(crate) raw_path: String,
}

pub(crate) fn resolve(input: &str) -> Result<Location, IoError> {
    let bad = |message: String| IoError::Remote {
        url: input.to_string(),
        message,
    };
    let url = url::Url::parse(input).map_err(|e| bad(format!("not a valid url: {e}")))?;
    let scheme = url.scheme().to_ascii_lowercase();
    if !URL_SCHEMES.contains(&scheme.as_str()) {
        return Err(bad(format!(
            "unsupported url scheme `{scheme}` (sluice reads s3://, gs://, az://, abfs:// and https://)"
        )));
    }
    let authority = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    if authority.is_empty() {
        return Err(bad("the url names no bucket or host".into()));
    }
    let base = format!("{scheme}://{authority}");
    // Globs are matched against decoded keys; `url` percent-encodes `*`-free oddities only.
    let raw_path = percent_decode(url.path().trim_start_matches('/'));
    let path = ObjectPath::parse(raw_path.trim_end_matches('/'))
        .map_err(|e| bad(format!("not a valid object path: {e}")))?;
    static STORES: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
    let mut stores = STORES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let store = match stores.get(&base) {
        Some(store) => store.clone(),
        None => {
            let store = build_store(&scheme, &base).map_err(|e| IoError::Remote {
                url: input.to_string(),
                message: format!("cannot set up the client: {}", one_line(&e)),
            })?;
            stores.insert(base.clone(), store.clone());
            store
        }
    };
    Ok(Location {
        store,
        base,
        scheme,
        authority,
        path,
        raw_path,
    })
}

fn build_store(scheme: &str, base: &str) -> Result<Arc<dyn ObjectStore>, object_store::Error> {
    Ok(match scheme {
        "s3" | "s3a" => Arc::new(
            object_store::aws::AmazonS3Builder::from_env()
                .with_url(base)
                .with_retry(retry_config())
                .build()?,
        ),
        "gs" => Arc::new(
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(base)
                .with_retry(retry_config())
                .build()?,
        ),
        "http" | "https" => Arc::new(
            object_store::http::HttpBuilder::new()
                .with_url(base)
                // An http:// URL asks for plain HTTP itself.
                .with_client_options(
                    object_store::ClientOptions::new().with_allow_http(scheme == "http"),
                )
                .with_retry(retry_config())
                .build()?,
        ),
        _ => Arc::new(
            object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(base)
                .with_retry(retry_config())
                .build()?,
        ),
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Location {
    fn url_of(&self, key: &str) -> String {
        format!("{}/{key}", self.base)
    }

    fn virtual_key(&self, key: &str) -> PathBuf {
        let mut path = PathBuf::from(format!("/{}:", self.scheme));
        path.push(&self.authority);
        for part in key.split('/') {
            path.push(part);
        }
        path
    }

    fn listed(&self, meta: object_store::ObjectMeta) -> Listed {
        let key = meta.location.to_string();
        Listed {
            key: self.virtual_key(&key),
            object: RemoteObject {
                url: self.url_of(&key),
                size: meta.size,
                etag: meta.e_tag,
                modified_ns: meta
                    .last_modified
                    .timestamp_nanos_opt()
                    .and_then(|n| u64::try_from(n).ok()),
            },
        }
    }

    /// Every object under `prefix` (a "directory": `prefix/...`), sorted by key.
    fn list(
        &self,
        input: &str,
        prefix: &ObjectPath,
    ) -> Result<Vec<object_store::ObjectMeta>, IoError> {
        let prefix = (!prefix.as_ref().is_empty()).then_some(prefix);
        // An outage longer than the client's own retries (a server restarting) is waited out, as
        // for a GET (see `RemoteReader::request`); the listing starts again from its first page.
        let mut attempt = 0;
        let mut objects = loop {
            let listed = runtime()?.block_on(async {
                let mut stream = self.store.list(prefix);
                let mut objects = Vec::new();
                while let Some(meta) = stream.next().await {
                    objects.push(meta?);
                }
                Ok::<_, object_store::Error>(objects)
            });
            match listed {
                Ok(objects) => break objects,
                Err(error) if is_transient(&error) && attempt + 1 < MAX_ATTEMPTS => {
                    attempt += 1;
                    tracing::warn!(url = %input, attempt, error = %one_line(&error), "listing failed: retrying");
                    std::thread::sleep(Duration::from_millis(100 << attempt.min(7)));
                }
                Err(error) => return Err(remote_error(input, error)),
            }
        };
        objects.sort_by(|a, b| a.location.as_ref().cmp(b.location.as_ref()));
        Ok(objects)
    }
}

/// Lists what `input` (a URL) names, as [`crate::discover`] does for a local path: one object
/// (taken whatever its name), a prefix ending in `/` or naming no object (searched like a
/// directory: shard-named objects, not hidden ones), or a glob over keys (`*`, `?`, `[...]`
/// within a path component, `**` across them; matched objects are taken whatever their name,
/// matched "directories" searched). An input holding nothing is [`IoError::NoMatch`]; a request
/// that fails (credentials, a missing bucket) is [`IoError::Remote`].
pub(crate) fn list_input(input: &str) -> Result<Listing, IoError> {
    let location = resolve(input)?;
    let glob_at = location
        .raw_path
        .split('/')
        .position(|c| c.contains(['*', '?', '[']));
    let http = matches!(location.scheme.as_str(), "http" | "https");
    let mut listing = Listing::default();
    if http {
        if glob_at.is_some() || location.raw_path.ends_with('/') || location.raw_path.is_empty() {
            return Err(IoError::Remote {
                url: input.to_string(),
                message: "http(s) inputs are single objects: they cannot be listed or globbed"
                    .into(),
            });
        }
        let meta = runtime()?
            .block_on(location.store.head(&location.path))
            .map_err(|e| remote_error(input, e))?;
        listing.objects.push(location.listed(meta));
        return Ok(listing);
    }
    if let Some(at) = glob_at {
        let components: Vec<&str> = location.raw_path.split('/').collect();
        let prefix = components[..at].join("/");
        let pattern_text = components[at..].join("/");
        let pattern_text = pattern_text.trim_end_matches('/');
        let pattern = glob::Pattern::new(pattern_text).map_err(|e| IoError::BadPattern {
            pattern: input.to_string(),
            message: e.msg.to_string(),
        })?;
        let prefix_path = ObjectPath::parse(&prefix).map_err(|e| IoError::Remote {
            url: input.to_string(),
            message: format!("not a valid object path: {e}"),
        })?;
        let options = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: true,
        };
        for meta in location.list(input, &prefix_path)? {
            let key = meta.location.to_string();
            let relative = if prefix.is_empty() {
                key.as_str()
            } else {
                &key[prefix.len() + 1..]
            };
            let parts: Vec<&str> = relative.split('/').collect();
            // The shortest leading run of components the pattern matches: the object itself
            // (taken whatever its name) or a "directory" above it (searched).
            let Some(matched) =
                (1..=parts.len()).find(|&k| pattern.matches_with(&parts[..k].join("/"), options))
            else {
                continue;
            };
            let dir_prefix = (!prefix.is_empty()).then_some(prefix.as_str());
            if matched == parts.len() {
                let name = parts[parts.len() - 1];
                if name.starts_with('.') {
                    listing
                        .skipped
                        .push((location.virtual_key(&key), SkipReason::Hidden));
                } else if name.ends_with(TEMP_SUFFIX) {
                    listing
                        .skipped
                        .push((location.virtual_key(&key), SkipReason::TempFile));
                } else {
                    listing.objects.push(location.listed(meta));
                }
            } else {
                let searched = join_key(dir_prefix, &parts[..matched].join("/"));
                search_entry(&location, &mut listing, &searched, &parts[matched..], meta);
            }
        }
        if listing.objects.is_empty() {
            return Err(IoError::NoMatch {
                input: input.to_string(),
                reason: "pattern matches no object",
            });
        }
        return Ok(listing);
    }
    if !location.raw_path.ends_with('/') && !location.raw_path.is_empty() {
        match runtime()?.block_on(location.store.head(&location.path)) {
            Ok(meta) => {
                listing.objects.push(location.listed(meta));
                return Ok(listing);
            }
            // No such object: a prefix, searched like a directory.
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(remote_error(input, e)),
        }
    }
    let prefix = location.path.to_string();
    for meta in location.list(input, &location.path)? {
        let key = meta.location.to_string();
        let relative = if prefix.is_empty() {
            key.clone()
        } else {
            key[prefix.len() + 1..].to_string()
        };
        let parts: Vec<&str> = relative.split('/').collect();
        let searched = prefix.clone();
        search_entry(&location, &mut listing, &searched, &parts, meta);
    }
    if listing.objects.is_empty() {
        return Err(IoError::NoMatch {
            input: input.to_string(),
            reason: "no *.jsonl, *.ndjson, *.json or *.parquet object under this prefix",
        });
    }
    Ok(listing)
}

fn join_key(prefix: Option<&str>, rest: &str) -> String {
    match prefix {
        Some(prefix) => format!("{prefix}/{rest}"),
        None => rest.to_string(),
    }
}

/// An object met while searching the "directory" `searched`, at `parts` below it: hidden
/// components are skipped (the hidden "directory" listed once), then the name decides, as for a
/// local directory.
fn search_entry(
    location: &Location,
    listing: &mut Listing,
    searched: &str,
    parts: &[&str],
    meta: object_store::ObjectMeta,
) {
    let dir = (!searched.is_empty()).then_some(searched);
    if let Some(hidden) = parts.iter().position(|p| p.starts_with('.')) {
        let key = join_key(dir, &parts[..=hidden].join("/"));
        let key = location.virtual_key(&key);
        if !listing.skipped.iter().any(|(k, _)| *k == key) {
            listing.skipped.push((key, SkipReason::Hidden));
        }
        return;
    }
    let name = parts[parts.len() - 1];
    let key = location.virtual_key(meta.location.as_ref());
    if name.ends_with(TEMP_SUFFIX) {
        listing.skipped.push((key, SkipReason::TempFile));
    } else if !is_shard_file_name(name) {
        listing.skipped.push((key, SkipReason::NotAShardName));
    } else {
        listing.objects.push(location.listed(meta));
    }
}

/// The URL a virtual key of [`Listed::key`] stands for (for skipped entries' paths).
pub(crate) fn url_of_virtual_key(key: &std::path::Path) -> PathBuf {
    let text = key.to_string_lossy();
    let text = text.trim_start_matches('/');
    match text.split_once(":/") {
        Some((scheme, rest)) => PathBuf::from(format!("{scheme}://{rest}")),
        None => key.to_path_buf(),
    }
}

/// A streaming reader of one object, resumed by a ranged GET where its stream fails.
pub struct RemoteReader {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    url: String,
    size: u64,
    etag: Option<String>,
    offset: u64,
    stream: Option<BoxStream<'static, object_store::Result<Bytes>>>,
    chunk: Bytes,
    resumes: u32,
    /// Tests: fail the stream once when this offset is reached (a dropped connection).
    #[cfg(test)]
    fail_at: Option<u64>,
}

impl std::fmt::Debug for RemoteReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteReader")
            .field("url", &self.url)
            .field("offset", &self.offset)
            .field("resumes", &self.resumes)
            .finish()
    }
}

impl RemoteReader {
    /// Opens `object` for reading from its first byte; the first GET is sent now, so that an
    /// object that cannot be read fails here.
    pub fn open(object: &RemoteObject) -> Result<RemoteReader, IoError> {
        let location = resolve(&object.url)?;
        RemoteReader::open_in(location.store, location.path, object, 0)
    }

    fn open_in(
        store: Arc<dyn ObjectStore>,
        path: ObjectPath,
        object: &RemoteObject,
        offset: u64,
    ) -> Result<RemoteReader, IoError> {
        let mut reader = RemoteReader {
            store,
            path,
            url: object.url.clone(),
            size: object.size,
            etag: object.etag.clone(),
            offset: offset.min(object.size),
            stream: None,
            chunk: Bytes::new(),
            resumes: 0,
            #[cfg(test)]
            fail_at: None,
        };
        if reader.size > reader.offset {
            reader.stream = Some(reader.request()?);
        }
        Ok(reader)
    }

    /// How many times the stream was resumed after failing part-way.
    pub fn resumes(&self) -> u32 {
        self.resumes
    }

    /// A GET of the rest of the object, from `offset`, if it is still the object listed.
    ///
    /// The client retries each request for a few seconds; an outage longer than that (a server
    /// restarting) is waited out here, with back-off from 200 ms doubling to 12.8 s over
    /// [`MAX_ATTEMPTS`] attempts (about a minute and a half in all). Errors that another try
    /// cannot mend (credentials, not found, a changed object: 4xx but 429) are not retried.
    fn request(&self) -> Result<BoxStream<'static, object_store::Result<Bytes>>, IoError> {
        let mut attempt = 0;
        loop {
            let options = GetOptions {
                // The first GET asks for the whole object: plain HTTP servers without range
                // support can serve it.
                range: (self.offset > 0).then_some(GetRange::Bounded(self.offset..self.size)),
                if_match: self.etag.clone(),
                ..Default::default()
            };
            match runtime()?.block_on(self.store.get_opts(&self.path, options)) {
                Ok(result) => return self.checked(result),
                Err(error) if is_transient(&error) && attempt + 1 < MAX_ATTEMPTS => {
                    attempt += 1;
                    tracing::warn!(url = %self.url, attempt, error = %one_line(&error), "object request failed: retrying");
                    std::thread::sleep(Duration::from_millis(100 << attempt.min(7)));
                }
                Err(error) => return Err(remote_error(&self.url, error)),
            }
        }
    }

    /// The GET's answer, if it is still the object listed.
    fn checked(
        &self,
        result: object_store::GetResult,
    ) -> Result<BoxStream<'static, object_store::Result<Bytes>>, IoError> {
        // Servers that ignore If-Match still return the ETag: check it too.
        let etag_changed =
            matches!((&self.etag, &result.meta.e_tag), (Some(a), Some(b)) if !same_etag(a, b));
        if etag_changed {
            return Err(IoError::Remote {
                url: self.url.clone(),
                message: "the object changed while it was read (its etag differs)".into(),
            });
        }
        if result.meta.size != self.size {
            return Err(IoError::Remote {
                url: self.url.clone(),
                message: format!(
                    "the object changed while it was read ({} bytes listed, {} now)",
                    self.size, result.meta.size
                ),
            });
        }
        Ok(result.into_stream())
    }

    /// After a failed or short stream: back off, then resume from `offset`.
    fn resume(&mut self, why: String) -> io::Result<()> {
        self.stream = None;
        if self.resumes >= MAX_RESUMES {
            return Err(io::Error::other(format!(
                "{}: gave up after {MAX_RESUMES} resumed reads (at byte {} of {}): {why}",
                self.url, self.offset, self.size
            )));
        }
        self.resumes += 1;
        tracing::warn!(url = %self.url, offset = self.offset, size = self.size, error = %why, "object read failed part-way: resuming there");
        std::thread::sleep(Duration::from_millis(100 << self.resumes.min(4)));
        match self.request() {
            Ok(stream) => {
                self.stream = Some(stream);
                Ok(())
            }
            Err(e) => Err(io::Error::other(e.to_string())),
        }
    }
}

impl Read for RemoteReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            #[cfg(test)]
            if self.fail_at.is_some_and(|at| self.offset >= at) {
                self.fail_at = None;
                self.chunk = Bytes::new();
                self.resume("connection dropped (test)".into())?;
                continue;
            }
            if !self.chunk.is_empty() {
                let n = buf.len().min(self.chunk.len());
                #[cfg(test)]
                let n = match self.fail_at {
                    Some(at) if self.offset + n as u64 > at && self.offset < at => {
                        (at - self.offset) as usize
                    }
                    _ => n,
                };
                buf[..n].copy_from_slice(&self.chunk[..n]);
                self.chunk.advance(n);
                self.offset += n as u64;
                return Ok(n);
            }
            if self.offset >= self.size {
                return Ok(0);
            }
            let Some(stream) = self.stream.as_mut() else {
                self.resume("no stream".into())?;
                continue;
            };
            let next = runtime()
                .map_err(|e| io::Error::other(e.to_string()))?
                .block_on(stream.next());
            match next {
                Some(Ok(bytes)) => self.chunk = bytes,
                Some(Err(e)) => self.resume(one_line(&e))?,
                None => self.resume("the stream ended early".into())?,
            }
        }
    }
}

/// Whether two ETags name one version. Listings and GET headers quote them differently (Azure
/// and GCS list `0x8D…` where the GET says `"0x8D…"`): compared without the quotes.
fn same_etag(listed: &str, got: &str) -> bool {
    let bare = |etag: &str| {
        let etag = etag.trim();
        let etag = etag.strip_prefix("W/").unwrap_or(etag);
        etag.trim_matches('"').to_string()
    };
    bare(listed) == bare(got)
}

/// An object read by ranged GETs, for formats read from their end and by parts (Parquet: the
/// footer, then each row group's column chunks): each GET asks for the bytes it needs, `If-Match`
/// the ETag listed, retried as [`RemoteReader`]'s are.
#[derive(Clone)]
pub struct RemoteChunks {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    object: RemoteObject,
}

impl std::fmt::Debug for RemoteChunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteChunks")
            .field("url", &self.object.url)
            .finish()
    }
}

impl RemoteChunks {
    pub fn open(object: &RemoteObject) -> Result<RemoteChunks, IoError> {
        let location = resolve(&object.url)?;
        Ok(RemoteChunks {
            store: location.store,
            path: location.path,
            object: object.clone(),
        })
    }

    pub fn object(&self) -> &RemoteObject {
        &self.object
    }

    /// Bytes `start..end` of the object.
    pub fn range(&self, start: u64, end: u64) -> Result<Bytes, IoError> {
        let end = end.min(self.object.size);
        if start >= end {
            return Ok(Bytes::new());
        }
        let mut attempt = 0;
        loop {
            let options = GetOptions {
                range: Some(GetRange::Bounded(start..end)),
                if_match: self.object.etag.clone(),
                ..Default::default()
            };
            let result = runtime()?.block_on(async {
                let result = self.store.get_opts(&self.path, options).await?;
                result.bytes().await
            });
            match result {
                Ok(bytes) if bytes.len() as u64 == end - start => return Ok(bytes),
                Ok(bytes) => {
                    return Err(IoError::Remote {
                        url: self.object.url.clone(),
                        message: format!(
                            "asked for bytes {start}..{end}, got {} bytes: the object changed?",
                            bytes.len()
                        ),
                    })
                }
                Err(error) if is_transient(&error) && attempt + 1 < MAX_ATTEMPTS => {
                    attempt += 1;
                    tracing::warn!(url = %self.object.url, attempt, error = %one_line(&error), "object request failed: retrying");
                    std::thread::sleep(Duration::from_millis(100 << attempt.min(7)));
                }
                Err(error) => return Err(remote_error(&self.object.url, error)),
            }
        }
    }

    /// A streamed reader of the object from byte `start`.
    pub fn reader_at(&self, start: u64) -> Result<RemoteReader, IoError> {
        RemoteReader::open_in(self.store.clone(), self.path.clone(), &self.object, start)
    }
}

fn parquet_external(error: IoError) -> parquet::errors::ParquetError {
    parquet::errors::ParquetError::External(Box::new(error))
}

impl parquet::file::reader::Length for RemoteChunks {
    fn len(&self) -> u64 {
        self.object.size
    }
}

impl parquet::file::reader::ChunkReader for RemoteChunks {
    type T = RemoteReader;

    fn get_read(&self, start: u64) -> parquet::errors::Result<RemoteReader> {
        self.reader_at(start).map_err(parquet_external)
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.range(start, start + length as u64)
            .map_err(parquet_external)
    }
}

/// Whether an object is a Parquet shard: by its first four bytes (`PAR1`; one ranged GET), or
/// for an http(s) object (servers may not serve ranges) by its name. A `*.parquet` name on
/// something else, or Parquet inside zstd/gzip, is an error, as for a file.
pub fn remote_shard_format(object: &RemoteObject) -> Result<crate::ShardFormat, IoError> {
    let name = object.url.rsplit('/').next().unwrap_or_default();
    let named_parquet = crate::is_parquet_name(name);
    let http = object.url.starts_with("http://") || object.url.starts_with("https://");
    if http || object.size < 4 {
        return Ok(match named_parquet {
            true => crate::ShardFormat::Parquet,
            false => crate::ShardFormat::Jsonl,
        });
    }
    let magic = RemoteChunks::open(object)?.range(0, 4)?;
    if magic.as_ref() == crate::PARQUET_MAGIC {
        return Ok(crate::ShardFormat::Parquet);
    }
    let compression = crate::compression::detect(&magic);
    let path = PathBuf::from(&object.url);
    match (named_parquet, compression) {
        (true, crate::Compression::None) => Err(IoError::NotParquet { path }),
        (true, compression) => Err(IoError::CompressedParquet { path, compression }),
        _ => Ok(crate::ShardFormat::Jsonl),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn urls_are_told_from_paths() {
        assert!(is_url("s3://bucket/prefix/"));
        assert!(is_url("gs://b/x.jsonl"));
        assert!(is_url("abfs://c@a.dfs.core.windows.net/x"));
        assert!(is_url("ftp://x/y"));
        assert!(!is_url("corpus/a.jsonl"));
        assert!(!is_url("/data/s3:/x"));
        assert!(!is_url("://x"));
    }

    #[test]
    fn unsupported_schemes_are_refused_by_name() {
        let error = list_input("ftp://host/x.jsonl").err().unwrap().to_string();
        assert!(error.contains("unsupported url scheme `ftp`"), "{error}");
    }

    #[test]
    fn virtual_keys_map_back_to_urls() {
        let key = PathBuf::from("/s3:/bucket/a/.hidden");
        assert_eq!(
            url_of_virtual_key(&key),
            PathBuf::from("s3://bucket/a/.hidden")
        );
    }

    /// The client settings a server script wrote to `.cache/NAME/env` (`export KEY=VALUE` lines),
    /// if the server at `endpoint_key` answers; else `None`, saying so, or a failure where CI
    /// asked for the server (`require_var=require`, as `.ci/run` sets).
    fn local_test_server(
        name: &str,
        endpoint_key: &str,
        require_var: &str,
        script: &str,
    ) -> Option<HashMap<String, String>> {
        let env_file = format!("{}/../../.cache/{name}/env", env!("CARGO_MANIFEST_DIR"));
        let settings: HashMap<String, String> = std::fs::read_to_string(env_file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let reachable = settings.get(endpoint_key).is_some_and(|endpoint| {
            let address = endpoint.trim_start_matches("http://");
            std::net::TcpStream::connect(address).is_ok()
        });
        if reachable {
            return Some(settings);
        }
        assert!(
            std::env::var(require_var).as_deref() != Ok("require"),
            "{require_var}=require but no {name} server answers: run {script} start"
        );
        eprintln!("SKIPPED: no {name} test server ({script} start)");
        None
    }

    /// The S3 test server's settings (`scripts/s3.sh start`; `SLUICE_S3_TESTS=require` in CI).
    pub(crate) fn test_server() -> Option<HashMap<String, String>> {
        local_test_server("s3", "AWS_ENDPOINT_URL", "SLUICE_S3_TESTS", "scripts/s3.sh")
    }

    pub(crate) fn test_store(settings: &HashMap<String, String>) -> Arc<dyn ObjectStore> {
        Arc::new(
            object_store::aws::AmazonS3Builder::new()
                .with_endpoint(&settings["AWS_ENDPOINT_URL"])
                .with_allow_http(true)
                .with_region("us-east-1")
                .with_bucket_name(&settings["SLUICE_TEST_S3_BUCKET"])
                .with_access_key_id(&settings["AWS_ACCESS_KEY_ID"])
                .with_secret_access_key(&settings["AWS_SECRET_ACCESS_KEY"])
                .build()
                .unwrap(),
        )
    }

    /// Azurite's settings (`scripts/azurite.sh start`; `SLUICE_AZURE_TESTS=require` in CI).
    pub(crate) fn azure_test_server() -> Option<HashMap<String, String>> {
        local_test_server(
            "azurite",
            "AZURITE_BLOB_STORAGE_URL",
            "SLUICE_AZURE_TESTS",
            "scripts/azurite.sh",
        )
    }

    pub(crate) fn azure_test_store(settings: &HashMap<String, String>) -> Arc<dyn ObjectStore> {
        let account = &settings["AZURE_STORAGE_ACCOUNT_NAME"];
        Arc::new(
            object_store::azure::MicrosoftAzureBuilder::new()
                .with_endpoint(format!(
                    "{}/{account}",
                    settings["AZURITE_BLOB_STORAGE_URL"]
                ))
                .with_allow_http(true)
                .with_account(account)
                .with_access_key(&settings["AZURE_STORAGE_ACCOUNT_KEY"])
                .with_container_name(&settings["SLUICE_TEST_AZURE_CONTAINER"])
                .build()
                .unwrap(),
        )
    }

    /// A GET stream that fails part-way is resumed by a ranged GET from the byte it stopped at:
    /// the bytes read are the object's, once each, against the real server.
    #[test]
    fn a_stream_failing_part_way_resumes_at_its_offset() {
        let Some(settings) = test_server() else {
            return;
        };
        let store = test_store(&settings);
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let path = ObjectPath::from("unit/remote-reader/resume.bin");
        let rt = runtime().unwrap();
        rt.block_on(store.put(&path, data.clone().into())).unwrap();
        let meta = rt.block_on(store.head(&path)).unwrap();
        let object = RemoteObject {
            url: format!("s3://{}/{path}", settings["SLUICE_TEST_S3_BUCKET"]),
            size: meta.size,
            etag: meta.e_tag.clone(),
            modified_ns: None,
        };
        for fail_at in [1, 65_536, 1_234_567, 2_999_999] {
            let mut reader =
                RemoteReader::open_in(store.clone(), path.clone(), &object, 0).unwrap();
            reader.fail_at = Some(fail_at);
            let mut read = Vec::new();
            reader.read_to_end(&mut read).unwrap();
            assert_eq!(reader.resumes(), 1, "at {fail_at}");
            assert!(read == data, "at {fail_at}: {} bytes read", read.len());
        }

        // The object replaced between the listing and a resumed read: an error, not a splice.
        let mut reader = RemoteReader::open_in(store.clone(), path.clone(), &object, 0).unwrap();
        reader.fail_at = Some(1_000_000);
        let mut first = vec![0u8; 1_000_000];
        reader.read_exact(&mut first).unwrap();
        let other: Vec<u8> = data.iter().map(|b| b ^ 1).collect();
        rt.block_on(store.put(&path, other.into())).unwrap();
        let error = reader.read_to_end(&mut Vec::new()).unwrap_err().to_string();
        assert!(error.contains("changed"), "{error}");
    }

    #[test]
    fn etags_are_compared_without_their_quotes() {
        assert!(same_etag("0x8DE1234", "\"0x8DE1234\""));
        assert!(same_etag("\"abc\"", "W/\"abc\""));
        assert!(same_etag("abc", "abc"));
        assert!(!same_etag("abc", "\"abd\""));
        assert!(!same_etag("", "\"abc\""));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b/c%2A"), "a b/c*");
        assert_eq!(percent_decode("50%"), "50%");
        assert_eq!(percent_decode("a%zz"), "a%zz");
    }
}
