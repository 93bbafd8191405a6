//! An exclusive lock on an output directory, so that two runs never write into the same one.
//!
//! The lock is an advisory `flock(2)` on `DIR/.sluice.lock`, a small text file that says who
//! holds it (pid, host, start time, command). The kernel drops a `flock` when its holder exits,
//! however it exits, so a crashed or `kill -9`ed run never leaves a directory locked: its lock
//! *file* stays behind, and the next [`OutputLock::acquire`] takes it over and reports it
//! ([`OutputLock::stale`]) for the caller to warn about. Refusing such a file would make every
//! resume after a crash need a manual clean-up, while the `flock` already proves that its writer
//! is gone.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::Describe;

/// The name of the lock file inside a locked directory.
pub const LOCK_FILE: &str = ".sluice.lock";

/// Who holds (or held) a lock, as its lock file says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holder {
    /// Process id.
    pub pid: u32,
    /// Host name.
    pub host: String,
    /// When it took the lock, UTC, `2026-12-01T08:30:00Z`.
    pub started: String,
    /// What it was doing (the command line it was given).
    pub command: String,
}

impl Holder {
    pub(crate) fn current(command: &str) -> Holder {
        Holder {
            pid: std::process::id(),
            host: hostname(),
            started: utc_timestamp(SystemTime::now()),
            command: command.replace(['\n', '\r'], " "),
        }
    }

    pub(crate) fn to_file(&self) -> String {
        format!(
            "pid={}\nhost={}\nstarted={}\ncommand={}\n",
            self.pid, self.host, self.started, self.command
        )
    }

    /// Parses a lock file; `None` when it holds no pid (empty, or not ours).
    pub(crate) fn parse(text: &str) -> Option<Holder> {
        let mut holder = Holder::default();
        let mut pid = None;
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            match key {
                "pid" => pid = value.trim().parse().ok(),
                "host" => holder.host = value.to_string(),
                "started" => holder.started = value.to_string(),
                "command" => holder.command = value.to_string(),
                _ => {}
            }
        }
        holder.pid = pid?;
        Some(holder)
    }

    /// Whether this process still exists (only meaningful on this host).
    pub(crate) fn is_alive(&self) -> bool {
        #[cfg(unix)]
        {
            let Ok(pid) = libc::pid_t::try_from(self.pid) else {
                return false;
            };
            // SAFETY: kill with signal 0 only checks whether the process exists.
            let rc = unsafe { libc::kill(pid, 0) };
            rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
        }
        #[cfg(not(unix))]
        {
            true
        }
    }
}

impl fmt::Display for Holder {
    /// `pid 123 on host h, started 2026-12-01T08:30:00Z, command "sluice run ..."`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pid {} on host {}, started {}, command {:?}",
            self.pid, self.host, self.started, self.command
        )
    }
}

/// Why [`OutputLock::acquire`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live process holds the lock.
    #[error(
        "output directory {} is in use by another sluice ({}); wait for it to finish, or use \
         another output directory (lock file {})",
        dir.display(),
        holder.as_ref().map_or_else(|| "holder unknown".to_string(), |h| h.to_string()),
        lock_file.display()
    )]
    Held {
        /// The directory.
        dir: PathBuf,
        /// Its lock file.
        lock_file: PathBuf,
        /// What the lock file says (`None` while the holder is still writing it).
        holder: Option<Box<Holder>>,
    },
    /// The filesystem does not support locks (some network and FUSE filesystems).
    #[error(
        "cannot lock output directory {}: the filesystem does not support file locks ({}); \
         use an output directory on a local filesystem",
        dir.display(),
        Describe(error)
    )]
    Unsupported {
        /// The directory.
        dir: PathBuf,
        /// What `flock` said.
        error: io::Error,
    },
    /// Creating the directory or the lock file, or writing it, failed.
    #[error("cannot {action} {}: {}", path.display(), Describe(error))]
    Io {
        /// The path involved.
        path: PathBuf,
        /// What was being done: `create directory`, `open lock file`, ...
        action: &'static str,
        /// The underlying error.
        error: io::Error,
    },
}

/// An exclusive lock on an output directory, held until dropped (the lock file is then removed).
#[derive(Debug)]
pub struct OutputLock {
    file: Option<File>,
    path: PathBuf,
    stale: Option<Holder>,
}

impl OutputLock {
    /// Takes the lock on `dir` (created if missing) for this process, recording `command` (what
    /// the caller is doing, such as its command line) for whoever finds the directory locked.
    ///
    /// Another live holder: [`LockError::Held`], naming its pid, host, start time and command.
    /// A lock file left by a process that is gone (crashed, killed) is taken over; it is
    /// returned by [`OutputLock::stale`] so that the caller can say so.
    pub fn acquire(dir: &Path, command: &str) -> Result<OutputLock, LockError> {
        OutputLock::acquire_file(dir, LOCK_FILE, command)
    }

    /// [`OutputLock::acquire`] on the lock file `DIR/file_name` instead of `DIR/.sluice.lock`:
    /// one of several locks in one directory (the ranks of a run spread over machines each lock
    /// their own).
    pub fn acquire_file(
        dir: &Path,
        file_name: &str,
        command: &str,
    ) -> Result<OutputLock, LockError> {
        let io_err = |path: &Path, action, error| LockError::Io {
            path: path.to_path_buf(),
            action,
            error,
        };
        fs::create_dir_all(dir).map_err(|e| io_err(dir, "create directory", e))?;
        let path = dir.join(file_name);
        // The holder removes the file when done: if it does so between our open and our lock, we
        // hold a lock on a file nobody else will ever open. Check, and start again.
        for _ in 0..100 {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| io_err(&path, "open lock file", e))?;
            match try_lock(&file) {
                Ok(true) => {}
                Ok(false) => {
                    let holder = read_holder(&mut file).map(Box::new);
                    return Err(LockError::Held {
                        dir: dir.to_path_buf(),
                        lock_file: path,
                        holder,
                    });
                }
                Err(error) if is_unsupported(&error) => {
                    return Err(LockError::Unsupported {
                        dir: dir.to_path_buf(),
                        error,
                    })
                }
                Err(error) => return Err(io_err(&path, "lock", error)),
            }
            if !same_file(&file, &path) {
                continue;
            }
            let previous = read_holder(&mut file);
            let me = Holder::current(command);
            let written = file
                .set_len(0)
                .and_then(|()| file.rewind())
                .and_then(|()| file.write_all(me.to_file().as_bytes()))
                .and_then(|()| file.sync_data());
            written.map_err(|e| io_err(&path, "write lock file", e))?;
            return Ok(OutputLock {
                file: Some(file),
                path,
                stale: previous,
            });
        }
        Err(io_err(
            &path,
            "lock",
            io::Error::other("the lock file keeps being replaced"),
        ))
    }

    /// Fails with [`LockError::Held`] while a live process holds the lock on `DIR/file_name`;
    /// takes nothing. Checked with a *shared* lock, so that any number of processes may check
    /// at once without refusing each other; only an exclusive holder makes it fail.
    pub fn check_free(dir: &Path, file_name: &str) -> Result<(), LockError> {
        let path = dir.join(file_name);
        let mut file = match OpenOptions::new().read(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => {
                return Err(LockError::Io {
                    path,
                    action: "open lock file",
                    error,
                })
            }
        };
        match try_lock_mode(&file, false) {
            Ok(true) => Ok(()),
            Ok(false) => Err(LockError::Held {
                dir: dir.to_path_buf(),
                holder: read_holder(&mut file).map(Box::new),
                lock_file: path,
            }),
            Err(error) if is_unsupported(&error) => Err(LockError::Unsupported {
                dir: dir.to_path_buf(),
                error,
            }),
            Err(error) => Err(LockError::Io {
                path,
                action: "lock",
                error,
            }),
        }
    }

    /// The holder a stale lock file named, when one was taken over: a process that is gone,
    /// whose run did not finish. Worth a warning: "taking over the lock of a sluice that is no
    /// longer running: pid 123 on host h, started ..., command ...".
    pub fn stale(&self) -> Option<&Holder> {
        self.stale.as_ref()
    }

    /// Whether the stale holder's pid is (again) a live process on this host: then its pid was
    /// reused, or it is a process that never held the lock. For the warning's wording only.
    pub fn stale_pid_is_alive(&self) -> bool {
        self.stale
            .as_ref()
            .is_some_and(|h| h.host == hostname() && h.is_alive())
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            // Remove the file while still holding the lock (so nobody takes a lock on it in
            // between), and only if it is still ours.
            if same_file(&file, &self.path) {
                let _ = fs::remove_file(&self.path);
            }
            drop(file);
        }
    }
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.take(64 << 10).read_to_string(&mut text).ok()?;
    Holder::parse(&text)
}

fn try_lock(file: &File) -> io::Result<bool> {
    try_lock_mode(file, true)
}

/// A non-blocking `flock`, exclusive or shared; released when `file` is closed.
#[cfg(unix)]
fn try_lock_mode(file: &File, exclusive: bool) -> io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    let mode = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    };
    loop {
        // SAFETY: flock on a file descriptor this `File` owns.
        let rc = unsafe { libc::flock(file.as_raw_fd(), mode | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(true);
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(code) if code == libc::EWOULDBLOCK || code == libc::EAGAIN => return Ok(false),
            _ => return Err(error),
        }
    }
}

#[cfg(not(unix))]
fn try_lock_mode(_file: &File, _exclusive: bool) -> io::Result<bool> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "output locks are implemented on unix only",
    ))
}

fn is_unsupported(error: &io::Error) -> bool {
    #[cfg(unix)]
    if let Some(code) = error.raw_os_error() {
        return code == libc::ENOLCK || code == libc::ENOSYS || code == libc::EOPNOTSUPP;
    }
    error.kind() == io::ErrorKind::Unsupported
}

/// Whether `path` still names the file `file` has open.
fn same_file(file: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        path.exists() && file.metadata().is_ok()
    }
}

/// This machine's host name (`HOSTNAME`, else `unknown`, where the system gives none).
pub fn hostname() -> String {
    #[cfg(unix)]
    {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it when
        // the name fits, and we stop at the first NUL or the end either way.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if rc == 0 {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            let name = String::from_utf8_lossy(&buf[..end]).into_owned();
            if !name.is_empty() {
                return name;
            }
        }
    }
    std::env::var("HOSTNAME").unwrap_or_else(|_| "unknown".into())
}

/// `2026-12-01T08:30:00Z`.
pub fn utc_timestamp(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    use std::time::Duration;

    #[test]
    fn check_free_fails_only_while_an_exclusive_holder_lives() {
        let dir = tempfile::tempdir().unwrap();
        // No lock file at all: free.
        OutputLock::check_free(dir.path(), LOCK_FILE).unwrap();
        let lock = OutputLock::acquire(dir.path(), "sluice run").unwrap();
        let err = OutputLock::check_free(dir.path(), LOCK_FILE).unwrap_err();
        assert!(err.to_string().contains("sluice run"), "{err}");
        // Named lock files beside it are independent.
        let rank = OutputLock::acquire_file(dir.path(), "rank-1.lock", "rank 1").unwrap();
        assert!(OutputLock::acquire_file(dir.path(), "rank-1.lock", "again").is_err());
        drop(lock);
        OutputLock::check_free(dir.path(), LOCK_FILE).unwrap();
        // Checks take shared locks: they never refuse each other.
        let file = File::open(dir.path().join("rank-1.lock")).unwrap();
        drop(rank);
        assert!(try_lock_mode(&file, false).unwrap());
        OutputLock::check_free(dir.path(), "rank-1.lock").unwrap();
    }

    #[test]
    fn a_second_acquire_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let lock = OutputLock::acquire(&out, "sluice run -i A -o out").unwrap();
        assert!(lock.stale().is_none());
        assert_eq!(lock.path(), out.join(LOCK_FILE));
        let text = fs::read_to_string(out.join(LOCK_FILE)).unwrap();
        assert!(
            text.contains(&format!("pid={}\n", std::process::id())),
            "{text}"
        );

        let err = OutputLock::acquire(&out, "sluice run -i B -o out").unwrap_err();
        let LockError::Held { holder, .. } = &err else {
            panic!("expected Held, got {err}");
        };
        let holder = holder.as_ref().unwrap();
        assert_eq!(holder.pid, std::process::id());
        assert_eq!(holder.host, hostname());
        assert_eq!(holder.command, "sluice run -i A -o out");
        let message = err.to_string();
        for part in [
            format!(
                "output directory {} is in use by another sluice",
                out.display()
            ),
            format!("pid {} on host {}", std::process::id(), hostname()),
            "command \"sluice run -i A -o out\"".to_string(),
            "wait for it to finish, or use another output directory".to_string(),
        ] {
            assert!(message.contains(&part), "{part:?} in {message}");
        }

        // Released on drop: the file is gone and the next acquire works, with no stale holder.
        drop(lock);
        assert!(!out.join(LOCK_FILE).exists());
        let again = OutputLock::acquire(&out, "sluice run -i B -o out").unwrap();
        assert!(again.stale().is_none());
    }

    #[test]
    fn a_lock_file_left_by_a_dead_process_is_taken_over_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        // A pid that cannot exist (above the kernel's limit) on this host.
        let dead = Holder {
            pid: 4_000_000_000,
            host: hostname(),
            started: "2026-01-01T00:00:00Z".into(),
            command: "sluice run -o out".into(),
        };
        fs::write(dir.path().join(LOCK_FILE), dead.to_file()).unwrap();
        let lock = OutputLock::acquire(dir.path(), "sluice run again").unwrap();
        assert_eq!(lock.stale(), Some(&dead));
        assert!(!lock.stale_pid_is_alive());
        let text = fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert!(text.contains("command=sluice run again\n"), "{text}");
        drop(lock);
        // An empty or foreign file is not a holder.
        fs::write(dir.path().join(LOCK_FILE), b"").unwrap();
        assert!(OutputLock::acquire(dir.path(), "x")
            .unwrap()
            .stale()
            .is_none());
    }

    #[test]
    fn errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        fs::write(&file, b"").unwrap();
        let err = OutputLock::acquire(&file, "x").unwrap_err();
        assert!(matches!(err, LockError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("a-file"), "{err}");
    }

    #[test]
    fn holder_file_round_trip_and_timestamps() {
        let h = Holder {
            pid: 7,
            host: "h".into(),
            started: "2026-12-01T08:30:00Z".into(),
            command: "a=b c".into(),
        };
        assert_eq!(Holder::parse(&h.to_file()), Some(h));
        assert_eq!(Holder::parse("garbage"), None);
        assert_eq!(Holder::current("a\nb").command, "a b");
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_796_113_800);
        assert_eq!(utc_timestamp(t), "2026-12-01T08:30:00Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc_timestamp(leap), "2000-02-29T00:00:00Z");
    }

    /// Run in a child process by `another_process_is_refused_and_its_crash_releases`: takes the
    /// lock, says so on stdout, and waits to be killed.
    #[test]
    #[ignore = "helper run in a child process"]
    fn child_holds_the_lock() {
        let Some(dir) = std::env::var_os("SLUICE_LOCK_TEST_DIR") else {
            return;
        };
        let _lock = OutputLock::acquire(Path::new(&dir), "child command").unwrap();
        println!("locked {}", std::process::id());
        std::thread::sleep(Duration::from_secs(60));
    }

    #[cfg(unix)]
    #[test]
    fn another_process_is_refused_and_its_crash_releases() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "lock::tests::child_holds_the_lock",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("SLUICE_LOCK_TEST_DIR", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Killed however the test ends, so a failure leaves no process behind.
        struct KillOnDrop(std::process::Child);
        impl Drop for KillOnDrop {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let stdout = child.stdout.take().unwrap();
        let mut child = KillOnDrop(child);
        let mut lines = io::BufReader::new(stdout).lines();
        let child_pid = loop {
            let line = lines.next().expect("child exited before locking").unwrap();
            // libtest may print "test NAME ... " on the same line first.
            if let Some((_, pid)) = line.split_once("locked ") {
                break pid.trim().parse::<u32>().unwrap();
            }
        };
        assert_eq!(child_pid, child.0.id());

        let err = OutputLock::acquire(dir.path(), "parent").unwrap_err();
        match &err {
            LockError::Held {
                holder: Some(holder),
                ..
            } => {
                assert_eq!(holder.pid, child_pid);
                assert_eq!(holder.command, "child command");
            }
            other => panic!("expected Held by the child, got {other}"),
        }
        assert!(
            err.to_string().contains(&format!("pid {child_pid} ")),
            "{err}"
        );

        // SIGKILL: no destructor runs, the lock file stays, the kernel drops the flock.
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        assert!(dir.path().join(LOCK_FILE).exists());
        let lock = OutputLock::acquire(dir.path(), "parent").unwrap();
        let stale = lock
            .stale()
            .expect("the dead child's lock file is reported");
        assert_eq!(stale.pid, child_pid);
        assert_eq!(stale.command, "child command");
        assert!(!lock.stale_pid_is_alive());
    }
}
