//! Outputs in object storage: an output "directory" that is a URL prefix (`s3://bucket/out/`,
//! `gs://`, `az://`), written through the same client and runtime as the inputs (see the
//! `remote` module).
//!
//! # No rename, no append
//!
//! * An output object is written by an [`ObjectWriter`]: bytes are buffered up to one part
//!   ([`PART_BYTES`]); an object that stays smaller is sent as one PUT when finished, a larger
//!   one by a multipart upload started when its first part is full, with at most
//!   [`PARTS_IN_FLIGHT`] parts uploading at once (the writer waits for one to end before it
//!   buffers more), so memory per object is bounded whatever its size. Either way the object
//!   appears under its name only when complete: a PUT is atomic, and a multipart upload is
//!   invisible until it is completed. A writer dropped unfinished (a failed or stopped shard)
//!   aborts its upload; parts of an upload cut short by a kill (`SIGKILL`, a lost node) stay in
//!   the bucket, invisible and billed, until the bucket's lifecycle rule
//!   (AbortIncompleteMultipartUpload) removes them: see the README.
//! * Records are small objects written whole: [`ObjectDir::put`] (overwrite),
//!   [`ObjectDir::create_new`] (a conditional create, `If-None-Match: *`: what a hard link does
//!   on a local disk) and [`ObjectDir::replace_if`] (a conditional update on the ETag read).
//!
//! # Locks are leases
//!
//! There is no `flock` on a bucket. [`ObjectLock`] is an object created with a conditional
//! create, saying who holds it; its holder rewrites it every [`LEASE_RENEW`] (a conditional
//! update on its own ETag) and deletes it when done. A lock not renewed for [`LEASE_EXPIRY`]
//! (its holder was killed, or its machine lost), or whose holder is a process of this host that
//! no longer exists, is stale: the next taker replaces it with a conditional update on the stale
//! ETag, so that of two takers racing exactly one wins.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{
    ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion, WriteMultipart,
};

use crate::lock::{Holder, LockError};
use crate::remote::{one_line, remote_error, resolve, runtime};
use crate::{IoError, RemoteObject, RemoteReader};

/// The size of each part of a multipart upload (S3's minimum is 5 MiB, but for the last part).
pub const PART_BYTES: usize = 8 << 20;

/// Parts of one object uploading at once.
pub const PARTS_IN_FLIGHT: usize = 2;

/// How often a lock's holder renews its lease.
pub const LEASE_RENEW: Duration = Duration::from_secs(20);

/// A lock not renewed for this long is stale (its holder is gone).
pub const LEASE_EXPIRY: Duration = Duration::from_secs(120);

/// An output prefix in object storage (`s3://bucket/out`): names under it are `/`-separated.
#[derive(Clone)]
pub struct ObjectDir {
    store: Arc<dyn ObjectStore>,
    /// The URL, without a trailing `/`.
    url: String,
    /// The key prefix, without a trailing `/` (empty: the bucket's root).
    prefix: String,
}

impl std::fmt::Debug for ObjectDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectDir").field("url", &self.url).finish()
    }
}

/// A small object read whole, with the version a conditional update names.
pub struct Versioned {
    pub bytes: Bytes,
    pub etag: Option<String>,
    pub version: Option<String>,
}

impl ObjectDir {
    /// The output prefix `url` names. Globs and http(s) URLs are refused: outputs are written.
    pub fn open(url: &str) -> Result<ObjectDir, IoError> {
        let location = resolve(url)?;
        let bad = |message: &str| IoError::Remote {
            url: url.to_string(),
            message: message.to_string(),
        };
        if matches!(location.scheme.as_str(), "http" | "https") {
            return Err(bad(
                "http(s) urls are read only: write outputs to s3://, gs://, az:// or a local directory",
            ));
        }
        if location.raw_path.contains(['*', '?', '[']) {
            return Err(bad("an output url cannot be a glob"));
        }
        let prefix = location.path.to_string();
        let url = match prefix.is_empty() {
            true => location.base.clone(),
            false => format!("{}/{prefix}", location.base),
        };
        Ok(ObjectDir {
            store: location.store,
            url,
            prefix,
        })
    }

    /// `s3://bucket/out`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL of `name` under this prefix.
    pub fn url_of(&self, name: &str) -> String {
        format!("{}/{name}", self.url)
    }

    fn path(&self, name: &str) -> ObjectPath {
        // `Path::from` keeps the `/`s (`join` would percent-encode them).
        match self.prefix.is_empty() {
            true => ObjectPath::from(name),
            false => ObjectPath::from(format!("{}/{name}", self.prefix)),
        }
    }

    /// One listing request under the prefix: fails now, with one clear error, where the
    /// credentials are refused or the bucket does not exist, before any work is done.
    pub fn check(&self) -> Result<(), IoError> {
        let prefix = (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.as_str()));
        runtime()?
            .block_on(async {
                let mut listing = self.store.list(prefix.as_ref());
                match listing.next().await {
                    Some(Err(e)) => Err(e),
                    _ => Ok(()),
                }
            })
            .map_err(|e| remote_error(&self.url, e))
    }

    /// A new output object, visible under `name` only once [`ObjectWriter::finish`] completes.
    pub fn create(&self, name: &str) -> ObjectWriter {
        ObjectWriter {
            store: self.store.clone(),
            path: self.path(name),
            url: self.url_of(name),
            buffer: Vec::new(),
            upload: None,
            finished: false,
        }
    }

    /// `name` read whole (small records only), or `None` where there is no such object.
    pub fn read(&self, name: &str) -> Result<Option<Versioned>, IoError> {
        let path = self.path(name);
        let result = runtime()?.block_on(async {
            let result = self.store.get(&path).await?;
            let (etag, version) = (result.meta.e_tag.clone(), result.meta.version.clone());
            let bytes = result.bytes().await?;
            Ok::<_, object_store::Error>(Versioned {
                bytes,
                etag,
                version,
            })
        });
        match result {
            Ok(versioned) => Ok(Some(versioned)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(remote_error(&self.url_of(name), e)),
        }
    }

    /// The object `name` as an input is listed (for a streamed read), or `None`.
    pub fn object(&self, name: &str) -> Result<Option<RemoteObject>, IoError> {
        match runtime()?.block_on(self.store.head(&self.path(name))) {
            Ok(meta) => Ok(Some(RemoteObject {
                url: self.url_of(name),
                size: meta.size,
                etag: meta.e_tag,
                modified_ns: meta
                    .last_modified
                    .timestamp_nanos_opt()
                    .and_then(|n| u64::try_from(n).ok()),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(remote_error(&self.url_of(name), e)),
        }
    }

    /// A streamed reader of `name` (resumed by ranged GETs where its stream fails).
    pub fn reader(&self, name: &str) -> Result<RemoteReader, IoError> {
        let object = self.object(name)?.ok_or_else(|| IoError::Remote {
            url: self.url_of(name),
            message: "not found".into(),
        })?;
        RemoteReader::open(&object)
    }

    /// Whether `name` exists (one HEAD).
    pub fn exists(&self, name: &str) -> Result<bool, IoError> {
        Ok(self.object(name)?.is_some())
    }

    /// Writes `name` whole, replacing what is there.
    pub fn put(&self, name: &str, bytes: &[u8]) -> Result<(), IoError> {
        match self.put_mode(name, bytes, PutMode::Overwrite) {
            Ok(_) => Ok(()),
            Err(PutFailed::Other(e)) => Err(e),
            Err(PutFailed::Conflict) => Err(IoError::Remote {
                url: self.url_of(name),
                message: "the write was refused (412)".into(),
            }),
        }
    }

    /// Creates `name` unless it exists (a conditional create): `false` when another writer
    /// created it first.
    pub fn create_new(&self, name: &str, bytes: &[u8]) -> Result<bool, IoError> {
        match self.put_mode(name, bytes, PutMode::Create) {
            Ok(_) => Ok(true),
            Err(PutFailed::Conflict) => Ok(false),
            Err(PutFailed::Other(e)) => Err(e),
        }
    }

    /// Replaces `name` if it is still the version `read` returned (a conditional update):
    /// `false` when another writer changed or removed it meanwhile.
    pub fn replace_if(&self, name: &str, bytes: &[u8], read: &Versioned) -> Result<bool, IoError> {
        let version = UpdateVersion {
            e_tag: read.etag.clone(),
            version: read.version.clone(),
        };
        match self.put_mode(name, bytes, PutMode::Update(version)) {
            Ok(_) => Ok(true),
            Err(PutFailed::Conflict) => Ok(false),
            Err(PutFailed::Other(e)) => Err(e),
        }
    }

    fn put_mode(
        &self,
        name: &str,
        bytes: &[u8],
        mode: PutMode,
    ) -> Result<object_store::PutResult, PutFailed> {
        let path = self.path(name);
        let payload = PutPayload::from(Bytes::copy_from_slice(bytes));
        let update = matches!(mode, PutMode::Update(_));
        let options = PutOptions::from(mode);
        let result = runtime()
            .map_err(PutFailed::Other)?
            .block_on(self.store.put_opts(&path, payload, options));
        result.map_err(|e| match e {
            object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. } => PutFailed::Conflict,
            // An update of an object removed meanwhile.
            object_store::Error::NotFound { .. } if update => PutFailed::Conflict,
            e => PutFailed::Other(remote_error(&self.url_of(name), e)),
        })
    }

    /// Removes `name` where it exists.
    pub fn remove(&self, name: &str) -> Result<(), IoError> {
        match runtime()?.block_on(self.store.delete(&self.path(name))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(remote_error(&self.url_of(name), e)),
        }
    }
}

enum PutFailed {
    /// The condition did not hold (the object exists, or changed).
    Conflict,
    Other(IoError),
}

/// One output object being written (see the module docs): buffered to one part, then a
/// multipart upload with bounded parts in flight; aborted when dropped unfinished.
pub struct ObjectWriter {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    url: String,
    buffer: Vec<u8>,
    upload: Option<WriteMultipart>,
    finished: bool,
}

impl ObjectWriter {
    /// The object's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends the buffered part: starts the upload on the first one, waits while
    /// [`PARTS_IN_FLIGHT`] parts are uploading.
    fn send_part(&mut self) -> Result<(), object_store::Error> {
        let part = Bytes::from(std::mem::take(&mut self.buffer));
        let runtime = runtime().map_err(|e| object_store::Error::Generic {
            store: "sluice",
            source: Box::new(e),
        })?;
        runtime.block_on(async {
            if self.upload.is_none() {
                let upload = self.store.put_multipart(&self.path).await?;
                self.upload = Some(WriteMultipart::new_with_chunk_size(upload, PART_BYTES));
            }
            let upload = self.upload.as_mut().expect("started");
            upload.wait_for_capacity(PARTS_IN_FLIGHT).await?;
            upload.put(part);
            Ok(())
        })
    }

    /// Completes the object: one PUT when it fits in a part, else the upload's last part and
    /// its completion. On failure nothing is left under the name (the upload is aborted).
    pub fn finish(mut self) -> Result<(), IoError> {
        let runtime = runtime()?;
        let result = match self.upload.take() {
            None => {
                let payload = PutPayload::from(Bytes::from(std::mem::take(&mut self.buffer)));
                runtime
                    .block_on(self.store.put(&self.path, payload))
                    .map(|_| ())
            }
            Some(mut upload) => {
                let rest = Bytes::from(std::mem::take(&mut self.buffer));
                runtime
                    .block_on(async {
                        // Inside the runtime: the rest may fill one more part, sent by a task.
                        upload.put(rest);
                        // `finish` aborts the upload itself when a part or the completion fails.
                        upload.finish().await
                    })
                    .map(|_| ())
            }
        };
        self.finished = true;
        result.map_err(|e| remote_error(&self.url, e))
    }
}

impl Write for ObjectWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        if self.buffer.len() >= PART_BYTES {
            self.send_part().map_err(|e| {
                io::Error::other(format!("upload of {} failed: {}", self.url, one_line(&e)))
            })?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if let (Some(upload), Ok(runtime)) = (self.upload.take(), runtime()) {
            if let Err(e) = runtime.block_on(upload.abort()) {
                tracing::warn!(url = %self.url, error = %one_line(&e), "cannot abort the unfinished upload: its parts stay until the bucket's lifecycle rule removes them");
            }
        }
    }
}

/// A lock held on object storage (see the module docs): an object renewed while held, removed
/// when dropped.
pub struct ObjectLock {
    dir: ObjectDir,
    name: String,
    stale: Option<Holder>,
    stop: Option<mpsc::Sender<()>>,
    renewer: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for ObjectLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectLock")
            .field("url", &self.dir.url_of(&self.name))
            .finish()
    }
}

fn lock_io(dir: &ObjectDir, name: &str, action: &'static str, error: IoError) -> LockError {
    LockError::Io {
        path: PathBuf::from(dir.url_of(name)),
        action,
        error: io::Error::other(error.to_string()),
    }
}

/// Why an existing lock object may be taken over, if it may.
fn stale_reason(dir: &ObjectDir, name: &str, holder: Option<&Holder>) -> Option<&'static str> {
    if holder.is_some_and(|h| h.host == crate::hostname() && !h.is_alive()) {
        return Some("its process is gone");
    }
    let path = dir.path(name);
    let modified = runtime()
        .ok()?
        .block_on(dir.store.head(&path))
        .ok()?
        .last_modified;
    let age = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs_f64()
        - modified.timestamp() as f64;
    (age > LEASE_EXPIRY.as_secs_f64()).then_some("its lease expired")
}

impl ObjectLock {
    /// Takes the lock `name` under `dir` for this process, recording `command`. A live holder:
    /// [`LockError::Held`]; a stale one (see the module docs) is replaced and returned by
    /// [`ObjectLock::stale`].
    pub fn acquire(dir: &ObjectDir, name: &str, command: &str) -> Result<ObjectLock, LockError> {
        let me = Holder::current(command).to_file();
        let put = |mode| match dir.put_mode(name, me.as_bytes(), mode) {
            Ok(result) => Ok(Some(Versioned {
                bytes: Bytes::new(),
                etag: result.e_tag,
                version: result.version,
            })),
            Err(PutFailed::Conflict) => Ok(None),
            Err(PutFailed::Other(e)) => Err(lock_io(dir, name, "write lock object", e)),
        };
        for _ in 0..20 {
            if let Some(mine) = put(PutMode::Create)? {
                return Ok(ObjectLock::held(dir, name, me, mine, None));
            }
            let Some(found) = dir
                .read(name)
                .map_err(|e| lock_io(dir, name, "read lock object", e))?
            else {
                continue; // released meanwhile: create it again
            };
            let holder = Holder::parse(&String::from_utf8_lossy(&found.bytes));
            if stale_reason(dir, name, holder.as_ref()).is_none() {
                return Err(LockError::Held {
                    dir: PathBuf::from(dir.url()),
                    lock_file: PathBuf::from(dir.url_of(name)),
                    holder: holder.map(Box::new),
                });
            }
            let version = UpdateVersion {
                e_tag: found.etag.clone(),
                version: found.version.clone(),
            };
            if let Some(mine) = put(PutMode::Update(version))? {
                return Ok(ObjectLock::held(dir, name, me, mine, holder));
            }
            // Another taker won the race: look again.
        }
        Err(lock_io(
            dir,
            name,
            "lock",
            IoError::Remote {
                url: dir.url_of(name),
                message: "the lock object keeps being replaced".into(),
            },
        ))
    }

    /// Fails with [`LockError::Held`] while a live holder holds `name`; takes nothing.
    pub fn check_free(dir: &ObjectDir, name: &str) -> Result<(), LockError> {
        let Some(found) = dir
            .read(name)
            .map_err(|e| lock_io(dir, name, "read lock object", e))?
        else {
            return Ok(());
        };
        let holder = Holder::parse(&String::from_utf8_lossy(&found.bytes));
        match stale_reason(dir, name, holder.as_ref()) {
            Some(_) => Ok(()),
            None => Err(LockError::Held {
                dir: PathBuf::from(dir.url()),
                lock_file: PathBuf::from(dir.url_of(name)),
                holder: holder.map(Box::new),
            }),
        }
    }

    fn held(
        dir: &ObjectDir,
        name: &str,
        text: String,
        mine: Versioned,
        stale: Option<Holder>,
    ) -> ObjectLock {
        let (stop, stopped) = mpsc::channel::<()>();
        let renew_dir = dir.clone();
        let renew_name = name.to_string();
        let renewer = std::thread::Builder::new()
            .name("sluice-lock-lease".into())
            .spawn(move || {
                let mut mine = mine;
                loop {
                    match stopped.recv_timeout(LEASE_RENEW) {
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                    // Rewriting the object, if it is still this holder's version, renews its
                    // last-modified time: the lease.
                    let version = UpdateVersion {
                        e_tag: mine.etag.clone(),
                        version: mine.version.clone(),
                    };
                    let url = renew_dir.url_of(&renew_name);
                    match renew_dir.put_mode(&renew_name, text.as_bytes(), PutMode::Update(version)) {
                        Ok(result) => {
                            mine.etag = result.e_tag;
                            mine.version = result.version;
                        }
                        Err(PutFailed::Conflict) => {
                            tracing::error!(lock = %url, "the lock was taken over by another sluice: this one's lease had expired");
                            return;
                        }
                        Err(PutFailed::Other(e)) => {
                            tracing::warn!(lock = %url, error = %e, "cannot renew the lock's lease")
                        }
                    }
                }
            })
            .ok();
        ObjectLock {
            dir: dir.clone(),
            name: name.to_string(),
            stale,
            stop: Some(stop),
            renewer,
        }
    }

    /// The holder of a stale lock this one replaced.
    pub fn stale(&self) -> Option<&Holder> {
        self.stale.as_ref()
    }
}

impl Drop for ObjectLock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(renewer) = self.renewer.take() {
            let _ = renewer.join();
        }
        if let Err(e) = self.dir.remove(&self.name) {
            tracing::warn!(lock = %self.dir.url_of(&self.name), error = %e, "cannot remove the lock object");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::tests::{azure_test_server, azure_test_store, test_server, test_store};
    use std::collections::HashMap;

    fn test_dir(settings: &HashMap<String, String>, prefix: &str) -> ObjectDir {
        ObjectDir {
            store: test_store(settings),
            url: format!("s3://{}/{prefix}", settings["SLUICE_TEST_S3_BUCKET"]),
            prefix: prefix.to_string(),
        }
    }

    /// Multipart uploads open under `prefix`, as the server lists them (boto3).
    fn open_uploads(settings: &HashMap<String, String>, prefix: &str) -> usize {
        let script = "import os, sys, boto3\n\
            s3 = boto3.client('s3', endpoint_url=os.environ['AWS_ENDPOINT_URL'])\n\
            print(len(s3.list_multipart_uploads(Bucket=sys.argv[1], Prefix=sys.argv[2]).get('Uploads', [])))";
        let out = std::process::Command::new(&settings["SLUICE_TEST_S3_PYTHON"])
            .envs(settings)
            .args(["-c", script, &settings["SLUICE_TEST_S3_BUCKET"], prefix])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }

    fn bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 253) as u8).collect()
    }

    /// Azurite's container under `prefix`.
    fn azure_test_dir(settings: &HashMap<String, String>, prefix: &str) -> ObjectDir {
        ObjectDir {
            store: azure_test_store(settings),
            url: format!("az://{}/{prefix}", settings["SLUICE_TEST_AZURE_CONTAINER"]),
            prefix: prefix.to_string(),
        }
    }

    /// An object bigger than a part goes up in parts, visible only when finished; one smaller
    /// goes up as one PUT at the end; one dropped unfinished leaves no object and no upload.
    #[test]
    fn objects_appear_whole_when_finished_and_dropped_ones_leave_nothing() {
        let Some(settings) = test_server() else {
            return;
        };
        let dir = test_dir(&settings, "unit/objects/writer");
        written_whole_or_not_at_all(&dir);
        assert_eq!(
            open_uploads(&settings, "unit/objects/writer/dropped.bin"),
            0
        );
    }

    /// The same against Azurite: parts are staged blocks, committed by the last request.
    #[test]
    fn blobs_appear_whole_when_finished_and_dropped_ones_leave_nothing() {
        let Some(settings) = azure_test_server() else {
            return;
        };
        written_whole_or_not_at_all(&azure_test_dir(&settings, "unit/objects/writer"));
    }

    fn written_whole_or_not_at_all(dir: &ObjectDir) {
        // Pieces of odd sizes: parts are cut across them, and what is left at the end fills more
        // than a part with what the upload holds.
        for (size, piece) in [
            (0, 1 << 20),
            (1000, 1 << 20),
            (PART_BYTES * 2 + 12_345, 1 << 20),
            (PART_BYTES * 3 + 4_321, (3 << 20) + 7),
        ] {
            let name = format!("out-{size}.bin");
            dir.remove(&name).unwrap();
            let data = bytes(size);
            let mut writer = dir.create(&name);
            for piece in data.chunks(piece) {
                writer.write_all(piece).unwrap();
            }
            if size > PART_BYTES {
                assert!(writer.upload.is_some(), "parts were sent while writing");
            }
            assert!(!dir.exists(&name).unwrap(), "visible before finish");
            writer.finish().unwrap();
            let read = dir.read(&name).unwrap().unwrap();
            assert!(read.bytes.as_ref() == &data[..], "{size} bytes read back");
        }
        let mut writer = dir.create("dropped.bin");
        writer.write_all(&bytes(PART_BYTES + 5)).unwrap();
        assert!(writer.upload.is_some());
        drop(writer);
        assert!(!dir.exists("dropped.bin").unwrap());
    }

    #[test]
    fn conditional_creates_and_updates() {
        let Some(settings) = test_server() else {
            return;
        };
        created_and_updated_only_as_asked(&test_dir(&settings, "unit/objects/conditional"));
    }

    #[test]
    fn conditional_creates_and_updates_of_blobs() {
        let Some(settings) = azure_test_server() else {
            return;
        };
        created_and_updated_only_as_asked(&azure_test_dir(&settings, "unit/objects/conditional"));
    }

    fn created_and_updated_only_as_asked(dir: &ObjectDir) {
        dir.remove("run.json").unwrap();
        assert!(dir.create_new("run.json", b"first").unwrap());
        assert!(!dir.create_new("run.json", b"second").unwrap());
        let read = dir.read("run.json").unwrap().unwrap();
        assert_eq!(read.bytes.as_ref(), b"first");
        assert!(dir.replace_if("run.json", b"third", &read).unwrap());
        // The version read is no longer there: a second writer with it is refused.
        assert!(!dir.replace_if("run.json", b"fourth", &read).unwrap());
        assert_eq!(
            dir.read("run.json").unwrap().unwrap().bytes.as_ref(),
            b"third"
        );
        dir.remove("run.json").unwrap();
        assert!(dir.read("run.json").unwrap().is_none());
    }

    #[test]
    fn locks_are_exclusive_and_a_dead_holder_is_taken_over() {
        let Some(settings) = test_server() else {
            return;
        };
        let dir = test_dir(&settings, "unit/objects/lock");
        dir.remove("x.lock").unwrap();
        let held = ObjectLock::acquire(&dir, "x.lock", "first").unwrap();
        let refused = ObjectLock::acquire(&dir, "x.lock", "second").unwrap_err();
        assert!(
            matches!(&refused, LockError::Held { holder: Some(h), .. } if h.pid == std::process::id()),
            "{refused}"
        );
        assert!(ObjectLock::check_free(&dir, "x.lock").is_err());
        drop(held);
        assert!(!dir.exists("x.lock").unwrap());
        ObjectLock::check_free(&dir, "x.lock").unwrap();
        // A holder of this host whose process is gone: stale, taken over, reported.
        let dead = Holder {
            pid: 999_999_999,
            host: crate::hostname(),
            started: "2026-01-01T00:00:00Z".into(),
            command: "killed".into(),
        };
        dir.put("x.lock", dead.to_file().as_bytes()).unwrap();
        ObjectLock::check_free(&dir, "x.lock").unwrap();
        let taken = ObjectLock::acquire(&dir, "x.lock", "third").unwrap();
        assert_eq!(taken.stale().map(|h| h.pid), Some(999_999_999));
        drop(taken);
        // A live holder on another host, renewed just now: held.
        let elsewhere = Holder {
            host: "another-host".into(),
            ..dead
        };
        dir.put("x.lock", elsewhere.to_file().as_bytes()).unwrap();
        assert!(ObjectLock::acquire(&dir, "x.lock", "fourth").is_err());
        dir.remove("x.lock").unwrap();
    }
}
