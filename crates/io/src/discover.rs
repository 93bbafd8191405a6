//! Finding the shards of a corpus: files, directories searched recursively, glob patterns.
//!
//! [`discover`] returns, beside the shards, every entry it passed over and why ([`Skipped`]), and
//! the would-be shards it could not even look at ([`FailedEntry`]: a dangling or looping
//! symbolic link), so that a run can list them instead of losing them without a word.
//! [`discover_shards`] is the older, shards-only form.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::error::Describe;
use crate::IoError;

/// The suffix of our own temporary output files (see [`crate::AtomicFile`]); never a shard.
pub const TEMP_SUFFIX: &str = ".tmp-sluice";

/// One input file of the corpus.
#[derive(Clone, Debug)]
pub struct Shard {
    /// The path to open (as reached from the input that named it).
    pub path: PathBuf,
    /// The path relative to the deepest common ancestor directory of all shards,
    /// `'/'`-separated (a single file: its file name). Unique within one discovery.
    pub name: String,
    /// File size in bytes (compressed size for compressed shards).
    pub size: u64,
    /// Where the shard is an object in object storage (`path` is then its URL): what was listed.
    pub remote: Option<crate::RemoteObject>,
}

/// How [`discover`] searches.
#[derive(Clone, Debug, Default)]
pub struct DiscoverOptions {
    /// Follow symbolic links to directories met while searching a directory (or while matching a
    /// `**` pattern). Off by default: such links are skipped ([`SkipReason::SymlinkedDirectory`]).
    /// When on, a link back to the directory holding it or to one of its ancestors is a cycle
    /// ([`SkipReason::SymlinkLoop`]), and a link to a directory searched already is not searched
    /// twice ([`SkipReason::AlreadySearched`]); a file reached under two paths is taken once.
    /// Links to files are always followed, and an input (or a glob match) that is a link to a
    /// directory is always searched: the user named it.
    pub follow_symlinks: bool,
    /// Directories never searched (say, the run's own output directory when it lies inside an
    /// input directory): met while searching, such a directory is [`SkipReason::Excluded`].
    /// Compared after resolving symbolic links; paths that do not exist are ignored.
    pub exclude: Vec<PathBuf>,
}

/// Why an entry found while searching is not a shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// A file or directory whose name starts with `.` (a directory's contents are not searched).
    Hidden,
    /// A file whose name is not `*.jsonl` / `*.ndjson` / `*.json` / `*.parquet` (optionally
    /// `.zst` / `.zstd` / `.gz`), met while searching a directory.
    NotAShardName,
    /// One of sluice's own temporary files (`*.tmp-sluice`).
    TempFile,
    /// A symbolic link to a directory, not followed ([`DiscoverOptions::follow_symlinks`] off).
    SymlinkedDirectory,
    /// A symbolic link to a directory that holds it (a cycle): never followed.
    SymlinkLoop,
    /// A directory (through a symbolic link) or file searched already under another path: the
    /// string is that path.
    AlreadySearched(String),
    /// A symbolic link that leads nowhere (dangling, or a loop of links) and whose name is not a
    /// shard's (one named like a shard is a [`FailedEntry`]); the string says what is wrong.
    BrokenSymlink(String),
    /// A shard-named entry that is not a regular file (a FIFO, a socket, a device): reading one
    /// could block forever.
    NotARegularFile,
    /// A directory of [`DiscoverOptions::exclude`].
    Excluded,
    /// A file whose name relative to the corpus is not a safe relative name (a backslash, a
    /// control character, ...: see [`crate::validate_relative_name`]); the string says why.
    UnsafeName(String),
}

impl SkipReason {
    /// A stable snake_case code for manifests and reports: `hidden`, `not_a_shard_name`,
    /// `temp_file`, `symlinked_directory`, `symlink_loop`, `already_searched`, `broken_symlink`,
    /// `not_a_regular_file`, `excluded`, `unsafe_name`.
    pub fn code(&self) -> &'static str {
        match self {
            SkipReason::Hidden => "hidden",
            SkipReason::NotAShardName => "not_a_shard_name",
            SkipReason::TempFile => "temp_file",
            SkipReason::SymlinkedDirectory => "symlinked_directory",
            SkipReason::SymlinkLoop => "symlink_loop",
            SkipReason::AlreadySearched(_) => "already_searched",
            SkipReason::BrokenSymlink(_) => "broken_symlink",
            SkipReason::NotARegularFile => "not_a_regular_file",
            SkipReason::Excluded => "excluded",
            SkipReason::UnsafeName(_) => "unsafe_name",
        }
    }
}

impl fmt::Display for SkipReason {
    /// A lowercase phrase: `hidden`, `symbolic link to a directory, not followed (see
    /// follow_symlinks)`, `already searched as corpus/a`, ...
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Hidden => f.write_str("hidden"),
            SkipReason::NotAShardName => f.write_str(
                "not a shard name (*.jsonl, *.ndjson, *.json, optionally .zst/.gz, or *.parquet)",
            ),
            SkipReason::TempFile => f.write_str("a sluice temporary file"),
            SkipReason::SymlinkedDirectory => {
                f.write_str("symbolic link to a directory, not followed (see follow_symlinks)")
            }
            SkipReason::SymlinkLoop => {
                f.write_str("symbolic link to a directory that contains it (a cycle)")
            }
            SkipReason::AlreadySearched(other) => write!(f, "already searched as {other}"),
            SkipReason::BrokenSymlink(what) => write!(f, "broken symbolic link: {what}"),
            SkipReason::NotARegularFile => f.write_str("not a regular file"),
            SkipReason::Excluded => f.write_str("excluded (the run's output directory)"),
            SkipReason::UnsafeName(why) => write!(f, "unsafe name: {why}"),
        }
    }
}

/// An entry [`discover`] passed over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The entry, as reached from the input that named it.
    pub path: PathBuf,
    /// Why it is not a shard.
    pub reason: SkipReason,
}

/// A would-be shard that cannot be opened at all: a shard-named symbolic link that is dangling or
/// part of a loop of links (or, in a glob's matches, any such link). A run should record it as
/// one failed shard (status `failed` with [`FailedEntry::error`] as its error, counted in the
/// report's failed shards, exit 1), not stop: the other shards are fine.
#[derive(Debug)]
pub struct FailedEntry {
    /// The entry, as reached from the input that named it.
    pub path: PathBuf,
    /// Its name, relative to the same ancestor as the shards' names and unique with them (so the
    /// name stays the same once the link is repaired).
    pub name: String,
    /// What is wrong, naming the path: `cannot open corpus/x.jsonl: dangling symbolic link (to
    /// ../gone.jsonl)`.
    pub error: IoError,
}

/// What [`discover`] found.
#[derive(Debug, Default)]
pub struct Discovery {
    /// The shards, sorted by name.
    pub shards: Vec<Shard>,
    /// Entries that should have been shards but cannot be opened, sorted by name.
    pub failed: Vec<FailedEntry>,
    /// Entries passed over, sorted by path. Hidden directories and directories not followed are
    /// listed once, not their contents.
    pub skipped: Vec<Skipped>,
}

/// Whether a file found while searching a directory is a shard: `*.jsonl`, `*.ndjson`, `*.json`
/// or `*.parquet`, each optionally followed by `.zst`, `.zstd` or `.gz` (ASCII case-insensitive;
/// a compressed Parquet file is found so that the run can refuse it by name); hidden files and
/// our temp files are not.
pub fn is_shard_file_name(name: &str) -> bool {
    if name.starts_with('.') || name.ends_with(TEMP_SUFFIX) {
        return false;
    }
    let lower = name.to_ascii_lowercase();
    let stem = [".zst", ".zstd", ".gz"]
        .iter()
        .find_map(|c| lower.strip_suffix(c))
        .unwrap_or(&lower);
    [".jsonl", ".ndjson", ".json", ".parquet"]
        .iter()
        .any(|ext| stem.len() > ext.len() && stem.ends_with(ext))
}

/// Finds the shards named by `inputs` with the default [`DiscoverOptions`] (symbolic links to
/// directories are not followed) and returns only them: [`discover`] without the skipped
/// entries. A [`FailedEntry`] (a dangling shard-named link) is returned as its error.
pub fn discover_shards(inputs: &[String]) -> Result<Vec<Shard>, IoError> {
    let discovery = discover(inputs, &DiscoverOptions::default())?;
    if let Some(failed) = discovery.failed.into_iter().next() {
        return Err(failed.error);
    }
    Ok(discovery.shards)
}

/// Finds the shards named by `inputs`, and what was passed over.
///
/// An input that is a URL (`s3://`, `gs://`, `az://`, `abfs://`, `https://`: see
/// [`crate::is_url`]) is listed in object storage with the same rules as a local path (a prefix
/// like a directory, a glob over keys, one object); its shards carry [`Shard::remote`], and their
/// names are computed with the local ones, so the same files give the same names either way.
///
/// Each input is an existing file (taken whatever its extension), a directory (searched
/// recursively for files named `*.jsonl` / `*.ndjson` / `*.json`, each optionally followed by
/// `.zst` / `.zstd` / `.gz`; see [`SkipReason`] for what is passed over and
/// [`DiscoverOptions::follow_symlinks`] for links), or a glob pattern (`*`, `?`, `[...]` within
/// a path component, `**` for any number of directories; matched files are taken whatever their
/// extension, except hidden and temp files; matched directories are searched as above). An
/// input that matches nothing is an error naming it, and so is one that does not exist. Entries
/// that cannot be opened do not stop discovery: see [`FailedEntry`]. Duplicates (the same path,
/// reached through several inputs) are removed.
///
/// `name` is the path relative to the deepest common ancestor directory of all shards (and
/// failed entries), `'/'`-separated (a single file: its file name). The result is sorted and
/// does not depend on directory listing order.
pub fn discover(inputs: &[String], options: &DiscoverOptions) -> Result<Discovery, IoError> {
    if inputs.is_empty() {
        return Err(IoError::NoInputs);
    }
    let mut walker = Walker::new(options);
    // Per input: the paths whose subtree must hold something for the input to count as a match.
    let mut roots: Vec<(&String, Vec<PathBuf>, &'static str)> = Vec::new();
    for input in inputs {
        if crate::is_url(input) {
            walker.add_listing(crate::remote::list_input(input)?);
            continue;
        }
        let path = Path::new(input);
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                walker.search(path, 0)?;
                roots.push((
                    input,
                    vec![walker.key(path)],
                    "directory contains no *.jsonl, *.ndjson, *.json or *.parquet file",
                ));
            }
            Ok(meta) => walker.add_file(path.to_path_buf(), meta.len(), 0),
            Err(error) if !is_glob(input) => return Err(IoError::open(path, error)),
            Err(_) => {
                let matched = walker.glob(input)?;
                roots.push((input, matched, "pattern matches no file"));
            }
        }
    }
    // Symbolic links to directories, found while searching, after every real tree: a tree
    // reachable both directly and through a link is named as reached directly.
    walker.follow_links()?;

    for (input, keys, reason) in roots {
        if !keys.iter().any(|key| walker.has_entry_under(key)) {
            return Err(IoError::NoMatch {
                input: input.clone(),
                reason,
            });
        }
    }
    walker.finish()
}

/// Whether `input` looks like a glob pattern.
fn is_glob(input: &str) -> bool {
    input.contains(['*', '?', '['])
}

/// A found file: the path to open, its size, and how many followed directory links lie on its
/// path (fewer wins when one file is reached under several paths).
struct Found {
    path: PathBuf,
    size: u64,
    links: u32,
    remote: Option<crate::RemoteObject>,
}

/// One component of a glob pattern after its literal prefix.
enum Part {
    /// `**`: any number of directories (not hidden ones).
    Any,
    /// A pattern for one path component.
    One(glob::Pattern),
}

struct Walker<'a> {
    options: &'a DiscoverOptions,
    cwd: Option<PathBuf>,
    /// Keyed by the normalized absolute path: removes duplicates, keeps the first path seen.
    found: BTreeMap<PathBuf, Found>,
    failed: BTreeMap<PathBuf, (PathBuf, IoError)>,
    skipped: BTreeMap<PathBuf, Skipped>,
    /// Directories searched so far: canonical path → the key (absolute path) searched under.
    searched: BTreeMap<PathBuf, PathBuf>,
    /// Symbolic links to directories met while searching, to follow once the real trees are
    /// done: key → (path, followed links on the way including this one, canonical parent).
    links: BTreeMap<PathBuf, (PathBuf, u32, PathBuf)>,
    /// Canonical paths of [`DiscoverOptions::exclude`].
    exclude: Vec<PathBuf>,
    /// The URLs of [`DiscoverOptions::exclude`] (an output in object storage), as prefixes
    /// ending in `/`.
    exclude_urls: Vec<String>,
}

/// A directory's entries, sorted by name: (name, path, type without following links).
fn read_dir_sorted(dir: &Path) -> Result<Vec<(String, PathBuf, fs::FileType)>, IoError> {
    let list_err = |error| IoError::List {
        path: dir.to_path_buf(),
        error,
    };
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).map_err(list_err)? {
        let entry = entry.map_err(list_err)?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(|e| IoError::open(&path, e))?;
        entries.push((
            entry.file_name().to_string_lossy().into_owned(),
            path,
            file_type,
        ));
    }
    entries.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(entries)
}

/// What is wrong with a symbolic link that `fs::metadata` cannot follow.
fn broken_link_message(path: &Path, error: &io::Error) -> String {
    let target = fs::read_link(path)
        .map(|t| t.display().to_string())
        .unwrap_or_else(|_| "?".into());
    if error.kind() == io::ErrorKind::NotFound {
        format!("dangling symbolic link (to {target})")
    } else {
        format!("{} (symbolic link to {target})", Describe(error))
    }
}

impl<'a> Walker<'a> {
    fn new(options: &'a DiscoverOptions) -> Self {
        Walker {
            options,
            cwd: std::env::current_dir().ok(),
            found: BTreeMap::new(),
            failed: BTreeMap::new(),
            skipped: BTreeMap::new(),
            searched: BTreeMap::new(),
            links: BTreeMap::new(),
            exclude: options
                .exclude
                .iter()
                .filter_map(|p| fs::canonicalize(p).ok())
                .collect(),
            exclude_urls: options
                .exclude
                .iter()
                .filter_map(|p| p.to_str().filter(|t| crate::is_url(t)))
                .map(|url| format!("{}/", url.trim_end_matches('/')))
                .collect(),
        }
    }

    fn key(&self, path: &Path) -> PathBuf {
        absolute(path, &self.cwd)
    }

    fn add_file(&mut self, path: PathBuf, size: u64, links: u32) {
        let key = self.key(&path);
        self.found.entry(key).or_insert(Found {
            path,
            size,
            links,
            remote: None,
        });
    }

    /// The objects and skipped entries of an input URL, under their virtual keys (see
    /// [`crate::remote`]): named like files, never confused with them.
    fn add_listing(&mut self, listing: crate::remote::Listing) {
        for listed in listing.objects {
            // The run's own output prefix inside an input prefix: never read back.
            let excluded = self
                .exclude_urls
                .iter()
                .any(|prefix| listed.object.url.starts_with(prefix.as_str()));
            if excluded {
                let path = crate::remote::url_of_virtual_key(&listed.key);
                self.skipped.entry(listed.key).or_insert(Skipped {
                    path,
                    reason: SkipReason::Excluded,
                });
                continue;
            }
            self.found.entry(listed.key).or_insert(Found {
                path: PathBuf::from(&listed.object.url),
                size: listed.object.size,
                links: 0,
                remote: Some(listed.object),
            });
        }
        for (key, reason) in listing.skipped {
            let path = crate::remote::url_of_virtual_key(&key);
            self.skipped.entry(key).or_insert(Skipped { path, reason });
        }
    }

    fn skip(&mut self, path: PathBuf, reason: SkipReason) {
        let key = self.key(&path);
        self.skipped.entry(key).or_insert(Skipped { path, reason });
    }

    fn fail(&mut self, path: PathBuf, error: IoError) {
        let key = self.key(&path);
        self.failed.entry(key).or_insert((path, error));
    }

    /// Whether a shard or failed entry at or below `key` has been found (keys sharing a path
    /// prefix are contiguous in the maps' component-wise order).
    fn has_entry_under(&self, key: &Path) -> bool {
        let start = key.to_path_buf();
        self.found
            .range(start.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(key))
            || self
                .failed
                .range(start..)
                .next()
                .is_some_and(|(k, _)| k.starts_with(key))
    }

    /// Searches the directory `root` (an input, a glob match or a followed link) recursively.
    /// Symbolic links to directories are queued for [`Walker::follow_links`] (or skipped).
    fn search(&mut self, root: &Path, links: u32) -> Result<(), IoError> {
        let canonical = fs::canonicalize(root).map_err(|error| IoError::List {
            path: root.to_path_buf(),
            error,
        })?;
        let mut pending = vec![(root.to_path_buf(), canonical)];
        while let Some((dir, canonical)) = pending.pop() {
            let key = self.key(&dir);
            match self.searched.get(&canonical) {
                // The same directory under the same path (overlapping inputs): nothing new.
                Some(earlier) if *earlier == key => continue,
                Some(earlier) => {
                    let earlier = earlier.display().to_string();
                    self.skip(dir, SkipReason::AlreadySearched(earlier));
                    continue;
                }
                None => {}
            }
            self.searched.insert(canonical.clone(), key);
            for (name, path, file_type) in read_dir_sorted(&dir)? {
                if name.starts_with('.') {
                    self.skip(path, SkipReason::Hidden);
                } else if file_type.is_dir() {
                    let sub = canonical.join(&name);
                    if self.exclude.contains(&sub) {
                        self.skip(path, SkipReason::Excluded);
                    } else {
                        pending.push((path, sub));
                    }
                } else if file_type.is_symlink() {
                    self.symlink(path, &name, links, &canonical);
                } else {
                    self.file_entry(path, &name, file_type.is_file(), links);
                }
            }
        }
        Ok(())
    }

    /// A file met while searching a directory (`regular`: not a FIFO, socket or device).
    fn file_entry(&mut self, path: PathBuf, name: &str, regular: bool, links: u32) {
        if name.ends_with(TEMP_SUFFIX) {
            self.skip(path, SkipReason::TempFile);
        } else if !is_shard_file_name(name) {
            self.skip(path, SkipReason::NotAShardName);
        } else if !regular {
            self.skip(path, SkipReason::NotARegularFile);
        } else {
            match fs::metadata(&path) {
                Ok(meta) => self.add_file(path, meta.len(), links),
                Err(error) => {
                    let error = IoError::open(&path, error);
                    self.fail(path, error);
                }
            }
        }
    }

    /// A symbolic link met while searching a directory whose canonical path is `parent`.
    fn symlink(&mut self, path: PathBuf, name: &str, links: u32, parent: &Path) {
        match fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => {
                if self.options.follow_symlinks {
                    let key = self.key(&path);
                    self.links
                        .entry(key)
                        .or_insert((path, links + 1, parent.to_path_buf()));
                } else {
                    self.skip(path, SkipReason::SymlinkedDirectory);
                }
            }
            Ok(meta) => self.file_entry(path, name, meta.is_file(), links),
            Err(error) => self.broken_link(path, name, &error, false),
        }
    }

    /// A link `fs::metadata` cannot follow: a failed entry when it is named like a shard (or was
    /// matched by a pattern), else a skipped one.
    fn broken_link(&mut self, path: PathBuf, name: &str, error: &io::Error, matched: bool) {
        let message = broken_link_message(&path, error);
        if name.ends_with(TEMP_SUFFIX) {
            self.skip(path, SkipReason::TempFile);
        } else if matched || is_shard_file_name(name) {
            let error = IoError::open(&path, io::Error::new(error.kind(), message));
            self.fail(path, error);
        } else {
            self.skip(path, SkipReason::BrokenSymlink(message));
        }
    }

    /// Searches the symbolic links to directories queued while searching, in path order, until
    /// none is left (a followed tree can queue more).
    fn follow_links(&mut self) -> Result<(), IoError> {
        while let Some((_, (path, links, parent))) = self.links.pop_first() {
            let target = match fs::canonicalize(&path) {
                Ok(target) => target,
                Err(error) => {
                    let message = broken_link_message(&path, &error);
                    self.skip(path, SkipReason::BrokenSymlink(message));
                    continue;
                }
            };
            if parent.starts_with(&target) {
                self.skip(path, SkipReason::SymlinkLoop);
            } else if self.exclude.contains(&target) {
                self.skip(path, SkipReason::Excluded);
            } else if let Some(earlier) = self.searched.get(&target) {
                let earlier = earlier.display().to_string();
                self.skip(path, SkipReason::AlreadySearched(earlier));
            } else {
                self.search(&path, links)?;
            }
        }
        Ok(())
    }

    /// Matches the glob `pattern`; returns the keys of what it matched (files, failed entries
    /// and directories, which are searched).
    fn glob(&mut self, pattern: &str) -> Result<Vec<PathBuf>, IoError> {
        let bad = |message: String| IoError::BadPattern {
            pattern: pattern.to_string(),
            message,
        };
        glob::Pattern::new(pattern).map_err(|e| bad(e.msg.to_string()))?;
        let mut prefix = PathBuf::from(if pattern.starts_with('/') { "/" } else { "" });
        let mut components = pattern.split('/').filter(|c| !c.is_empty()).peekable();
        while let Some(literal) = components.next_if(|c| !is_glob(c)) {
            prefix.push(literal);
        }
        let mut parts = Vec::new();
        for component in components {
            parts.push(match component {
                "**" => Part::Any,
                "." => continue,
                ".." => return Err(bad("`..` after a wildcard is not supported".into())),
                c => Part::One(glob::Pattern::new(c).map_err(|e| bad(e.msg.to_string()))?),
            });
        }
        let list_dir = if prefix.as_os_str().is_empty() {
            Path::new(".")
        } else {
            prefix.as_path()
        };
        let mut matched = Vec::new();
        let Ok(canonical) = fs::canonicalize(list_dir) else {
            return Ok(matched);
        };
        if !canonical.is_dir() {
            return Ok(matched);
        }
        let options = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: true,
        };
        let closure = |mut states: Vec<usize>| {
            let mut i = 0;
            while i < states.len() {
                let s = states[i];
                if matches!(parts.get(s), Some(Part::Any)) && !states.contains(&(s + 1)) {
                    states.push(s + 1);
                }
                i += 1;
            }
            states.sort_unstable();
            states.dedup();
            states
        };
        let end = parts.len();
        // (canonical directory, pattern states) pairs visited, so that links cannot make a `**`
        // pattern visit a directory twice in the same state.
        let mut visited: HashSet<(PathBuf, Vec<usize>)> = HashSet::new();
        let mut pending = vec![(prefix.clone(), canonical, closure(vec![0]), 0u32)];
        while let Some((dir, canonical, states, links)) = pending.pop() {
            if !visited.insert((canonical.clone(), states.clone())) {
                continue;
            }
            let list_from = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir.as_path()
            };
            for (name, _, file_type) in read_dir_sorted(list_from)? {
                let path = dir.join(&name);
                let hidden = name.starts_with('.');
                let mut next = Vec::new();
                let mut within_any = false;
                for &s in &states {
                    match parts.get(s) {
                        Some(Part::Any) if !hidden => next.push(s),
                        Some(Part::Any) => within_any = true,
                        Some(Part::One(p)) if p.matches_with(&name, options) => next.push(s + 1),
                        _ => {}
                    }
                }
                let next = closure(next);
                let is_dir = if file_type.is_symlink() {
                    fs::metadata(&path).map(|m| m.is_dir()).ok()
                } else {
                    Some(file_type.is_dir())
                };
                if next.is_empty() {
                    if within_any && is_dir == Some(true) {
                        self.skip(path, SkipReason::Hidden);
                    }
                    continue;
                }
                let full = next.contains(&end);
                let deeper: Vec<usize> = next.iter().copied().filter(|&s| s < end).collect();
                if full {
                    matched.push(self.key(&path));
                    self.glob_match(&path, &name, file_type, links)?;
                }
                if deeper.is_empty() || is_dir != Some(true) {
                    continue;
                }
                if file_type.is_symlink() {
                    if !self.options.follow_symlinks {
                        if !full {
                            self.skip(path, SkipReason::SymlinkedDirectory);
                        }
                        continue;
                    }
                    let Ok(target) = fs::canonicalize(&path) else {
                        continue;
                    };
                    if canonical.starts_with(&target) {
                        self.skip(path, SkipReason::SymlinkLoop);
                    } else {
                        pending.push((path, target, deeper, links + 1));
                    }
                } else {
                    let sub = canonical.join(&name);
                    if self.exclude.contains(&sub) {
                        self.skip(path, SkipReason::Excluded);
                    } else {
                        pending.push((path, sub, deeper, links));
                    }
                }
            }
        }
        Ok(matched)
    }

    /// An entry a glob pattern matched whole: a file is taken whatever its name (not hidden or
    /// temp files), a directory searched.
    fn glob_match(
        &mut self,
        path: &Path,
        name: &str,
        file_type: fs::FileType,
        links: u32,
    ) -> Result<(), IoError> {
        let path = path.to_path_buf();
        let meta = match fs::metadata(&path) {
            Ok(meta) => meta,
            Err(error) if file_type.is_symlink() => {
                self.broken_link(path, name, &error, true);
                return Ok(());
            }
            Err(error) => {
                let error = IoError::open(&path, error);
                self.fail(path, error);
                return Ok(());
            }
        };
        if meta.is_dir() {
            let canonical = fs::canonicalize(&path).ok();
            if canonical.is_some_and(|c| self.exclude.contains(&c)) {
                self.skip(path, SkipReason::Excluded);
                return Ok(());
            }
            return self.search(&path, links + u32::from(file_type.is_symlink()));
        }
        if name.starts_with('.') {
            self.skip(path, SkipReason::Hidden);
        } else if name.ends_with(TEMP_SUFFIX) {
            self.skip(path, SkipReason::TempFile);
        } else if !meta.is_file() {
            self.skip(path, SkipReason::NotARegularFile);
        } else {
            self.add_file(path, meta.len(), links);
        }
        Ok(())
    }

    /// Names, duplicates reached through links, unsafe names; the sorted result.
    fn finish(mut self) -> Result<Discovery, IoError> {
        // One file reached under several paths through followed links: keep the path with the
        // fewest links (then the first), so the choice never depends on listing order.
        if self.found.values().any(|f| f.links > 0) {
            let mut best: BTreeMap<PathBuf, (u32, PathBuf)> = BTreeMap::new();
            let mut canonical_of = Vec::new();
            for (key, f) in &self.found {
                let Ok(canonical) = fs::canonicalize(&f.path) else {
                    continue;
                };
                let candidate = (f.links, key.clone());
                match best.get(&canonical) {
                    Some(current) if *current <= candidate => {}
                    _ => {
                        best.insert(canonical.clone(), candidate);
                    }
                }
                canonical_of.push((key.clone(), canonical));
            }
            for (key, canonical) in canonical_of {
                let keep = &best[&canonical].1;
                let group_has_links = self.found[keep].links > 0 || self.found[&key].links > 0;
                if *keep != key && group_has_links {
                    let keep = keep.display().to_string();
                    if let Some(f) = self.found.remove(&key) {
                        self.skipped.entry(key).or_insert(Skipped {
                            path: f.path,
                            reason: SkipReason::AlreadySearched(keep),
                        });
                    }
                }
            }
        }

        // The deepest common ancestor directory of all shards and failed entries.
        let mut ancestor: Option<PathBuf> = None;
        for absolute in self.found.keys().chain(self.failed.keys()) {
            let parent = absolute.parent().unwrap_or(Path::new("/"));
            ancestor = Some(match ancestor {
                None => parent.to_path_buf(),
                Some(current) => common_prefix(&current, parent),
            });
        }
        let ancestor = ancestor.unwrap_or_default();
        let name_of = |absolute: &Path| -> Result<String, String> {
            let relative = absolute.strip_prefix(&ancestor).unwrap_or(absolute);
            let mut parts = Vec::new();
            for component in relative.components() {
                if let Component::Normal(part) = component {
                    parts.push(part.to_str().ok_or("not valid UTF-8")?);
                }
            }
            let name = parts.join("/");
            match crate::validate_relative_name(&name) {
                Ok(_) => Ok(name),
                Err(e) => Err(e.reason.to_string()),
            }
        };

        let mut discovery = Discovery::default();
        for (key, f) in std::mem::take(&mut self.found) {
            match name_of(&key) {
                Ok(name) => discovery.shards.push(Shard {
                    path: f.path,
                    name,
                    size: f.size,
                    remote: f.remote,
                }),
                Err(why) => self.skip(f.path, SkipReason::UnsafeName(why)),
            }
        }
        for (key, (path, error)) in std::mem::take(&mut self.failed) {
            match name_of(&key) {
                Ok(name) => discovery.failed.push(FailedEntry { path, name, error }),
                Err(why) => self.skip(path, SkipReason::UnsafeName(why)),
            }
        }
        discovery
            .shards
            .sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.path.cmp(&b.path)));
        discovery.failed.sort_by(|a, b| a.name.cmp(&b.name));
        let mut seen = BTreeSet::new();
        discovery.skipped = self
            .skipped
            .into_values()
            .filter(|s| seen.insert(s.path.clone()))
            .collect();
        discovery.skipped.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(discovery)
    }
}

/// `path` made absolute (against the current directory) and lexically normalized (`.` removed,
/// `..` applied). Symbolic links are not resolved, so names follow the paths as the user sees
/// them.
fn absolute(path: &Path, cwd: &Option<PathBuf>) -> PathBuf {
    let joined;
    let path = if path.is_absolute() {
        path
    } else {
        joined = match cwd {
            Some(cwd) => cwd.join(path),
            None => path.to_path_buf(),
        };
        &joined
    };
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push(component);
                }
            }
            other => out.push(other),
        }
    }
    out
}

fn common_prefix(a: &Path, b: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for (x, y) in a.components().zip(b.components()) {
        if x != y {
            break;
        }
        out.push(x);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path, bytes: &[u8]) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }

    fn names(shards: &[Shard]) -> Vec<&str> {
        shards.iter().map(|s| s.name.as_str()).collect()
    }

    fn s(path: &Path) -> String {
        path.to_string_lossy().into_owned()
    }

    /// corpus/{a.jsonl, b.ndjson.zst, c.json.gz, d.jsonl.zstd, notes.txt, .hidden.jsonl,
    /// x.jsonl.tmp-sluice, sub/e.jsonl, sub/deeper/f.jsonl.gz, .git/g.jsonl}
    fn corpus() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("corpus");
        for name in [
            "a.jsonl",
            "b.ndjson.zst",
            "c.json.gz",
            "d.jsonl.zstd",
            "notes.txt",
            ".hidden.jsonl",
            "x.jsonl.tmp-sluice",
            "sub/e.jsonl",
            "sub/deeper/f.jsonl.gz",
            ".git/g.jsonl",
        ] {
            touch(&c.join(name), name.as_bytes());
        }
        dir
    }

    #[test]
    fn shard_file_names() {
        for yes in [
            "a.jsonl",
            "a.ndjson",
            "a.json",
            "a.jsonl.zst",
            "a.JSONL.GZ",
            "a.json.zstd",
            "train-00000-of-00042.parquet",
            "a.parquet.gz",
        ] {
            assert!(is_shard_file_name(yes), "{yes}");
        }
        for no in [
            ".a.jsonl",
            "a.jsonl.tmp-sluice",
            "a.txt",
            "a.jsonl.bz2",
            "jsonl",
            ".jsonl",
            "a.jsonl.zst.tmp-sluice",
            "a.zst",
            ".parquet",
        ] {
            assert!(!is_shard_file_name(no), "{no}");
        }
    }

    #[test]
    fn directories_are_searched_recursively() {
        let dir = corpus();
        let shards = discover_shards(&[s(&dir.path().join("corpus"))]).unwrap();
        assert_eq!(
            names(&shards),
            vec![
                "a.jsonl",
                "b.ndjson.zst",
                "c.json.gz",
                "d.jsonl.zstd",
                "sub/deeper/f.jsonl.gz",
                "sub/e.jsonl"
            ]
        );
        let a = &shards[0];
        assert_eq!(a.path, dir.path().join("corpus").join("a.jsonl"));
        assert_eq!(a.size, "a.jsonl".len() as u64);
    }

    #[test]
    fn single_file_is_named_by_its_file_name_whatever_its_extension() {
        let dir = corpus();
        let notes = dir.path().join("corpus/notes.txt");
        let shards = discover_shards(&[s(&notes)]).unwrap();
        assert_eq!(names(&shards), vec!["notes.txt"]);
        assert_eq!(shards[0].path, notes);
        let deep = dir.path().join("corpus/sub/deeper/f.jsonl.gz");
        assert_eq!(
            names(&discover_shards(&[s(&deep)]).unwrap()),
            vec!["f.jsonl.gz"]
        );
    }

    #[test]
    fn names_are_relative_to_the_deepest_common_ancestor() {
        let dir = corpus();
        let c = dir.path().join("corpus");
        // Two files in different subdirectories: ancestor is corpus/sub.
        let shards = discover_shards(&[
            s(&c.join("sub/deeper/f.jsonl.gz")),
            s(&c.join("sub/e.jsonl")),
        ])
        .unwrap();
        assert_eq!(names(&shards), vec!["deeper/f.jsonl.gz", "e.jsonl"]);
        // A directory whose shards all lie deeper: ancestor is that deeper directory.
        let shards = discover_shards(&[s(&c.join("sub/deeper"))]).unwrap();
        assert_eq!(names(&shards), vec!["f.jsonl.gz"]);
        // Mixed: file + directory.
        let shards = discover_shards(&[s(&c.join("sub")), s(&c.join("a.jsonl"))]).unwrap();
        assert_eq!(
            names(&shards),
            vec!["a.jsonl", "sub/deeper/f.jsonl.gz", "sub/e.jsonl"]
        );
    }

    #[test]
    fn globs_and_duplicates() {
        let dir = corpus();
        let c = dir.path().join("corpus");
        let shards = discover_shards(&[s(&c.join("*.jsonl*"))]).unwrap();
        // Hidden and temp files are skipped even when the pattern matches them.
        assert_eq!(names(&shards), vec!["a.jsonl", "d.jsonl.zstd"]);

        // A glob matching a directory searches it; overlapping inputs are deduplicated.
        let shards = discover_shards(&[
            s(&c.join("s?b")),
            s(&c.join("sub/e.jsonl")),
            s(&c.join("sub/./deeper/../e.jsonl")),
            s(&c.join("sub/**/*.gz")),
        ])
        .unwrap();
        assert_eq!(names(&shards), vec!["deeper/f.jsonl.gz", "e.jsonl"]);

        // The same input twice.
        let a = s(&c.join("a.jsonl"));
        assert_eq!(discover_shards(&[a.clone(), a]).unwrap().len(), 1);
    }

    #[test]
    fn relative_inputs() {
        let dir = corpus();
        // Relative to the current directory: make an input relative by walking up from cwd.
        let cwd = std::env::current_dir().unwrap();
        let depth = cwd.components().count() - 1;
        let up = "../".repeat(depth);
        let rel = format!(
            "{up}{}",
            dir.path()
                .join("corpus")
                .display()
                .to_string()
                .trim_start_matches('/')
        );
        let shards = discover_shards(std::slice::from_ref(&rel)).unwrap();
        assert_eq!(shards.len(), 6);
        assert!(shards[0].path.starts_with(&rel));
        // Same directory once relative, once absolute: one set.
        let shards = discover_shards(&[rel, s(&dir.path().join("corpus"))]).unwrap();
        assert_eq!(shards.len(), 6);
    }

    #[test]
    fn nothing_matched_is_an_error_naming_the_input() {
        let dir = corpus();
        let c = dir.path().join("corpus");

        let missing = s(&c.join("missing.jsonl"));
        let err = discover_shards(std::slice::from_ref(&missing)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot open {missing}: no such file or directory")
        );

        let pattern = s(&c.join("*.parquet"));
        let err = discover_shards(std::slice::from_ref(&pattern)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("input {pattern}: pattern matches no file")
        );

        let empty = dir.path().join("empty");
        fs::create_dir_all(empty.join("nested")).unwrap();
        touch(&empty.join("readme.md"), b"x");
        let err = discover_shards(&[s(&empty)]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("input {}: ", empty.display())),
            "{err}"
        );

        let err = discover_shards(&[s(&c.join("[unclosed"))]).unwrap_err();
        assert!(matches!(err, IoError::BadPattern { .. }), "{err:?}");

        assert!(discover_shards(&[]).is_err());

        // A good input does not excuse a bad one.
        let err = discover_shards(&[s(&c), pattern.clone()]).unwrap_err();
        assert!(err.to_string().contains(&pattern));
    }

    #[test]
    fn result_is_sorted_and_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        let mut expected = Vec::new();
        for i in (0..50).rev() {
            let name = format!("d{}/s{:03}.jsonl", i % 3, i);
            touch(&dir.path().join(&name), b"{}\n");
            expected.push(name);
        }
        expected.sort();
        let first = discover_shards(&[s(dir.path())]).unwrap();
        assert_eq!(
            names(&first),
            expected.iter().map(String::as_str).collect::<Vec<_>>()
        );
        let second = discover_shards(&[s(dir.path())]).unwrap();
        assert_eq!(
            first.iter().map(|s| &s.path).collect::<Vec<_>>(),
            second.iter().map(|s| &s.path).collect::<Vec<_>>()
        );
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_to_files_are_followed_but_not_to_directories() {
        let dir = corpus();
        let c = dir.path().join("corpus");
        std::os::unix::fs::symlink(c.join("a.jsonl"), c.join("link.jsonl")).unwrap();
        std::os::unix::fs::symlink(&c, c.join("loop")).unwrap();
        let shards = discover_shards(&[s(&c)]).unwrap();
        assert!(names(&shards).contains(&"link.jsonl"));
        assert!(!names(&shards).iter().any(|n| n.starts_with("loop")));
    }

    fn skipped(d: &Discovery, root: &Path) -> Vec<(String, String)> {
        d.skipped
            .iter()
            .map(|s| {
                let rel = s.path.strip_prefix(root).unwrap_or(&s.path);
                (rel.display().to_string(), s.reason.code().to_string())
            })
            .collect()
    }

    fn follow() -> DiscoverOptions {
        DiscoverOptions {
            follow_symlinks: true,
            ..DiscoverOptions::default()
        }
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn skipped_entries_are_listed_with_their_reason() {
        let dir = corpus();
        let c = dir.path().join("corpus");
        let d = discover(&[s(&c)], &DiscoverOptions::default()).unwrap();
        assert_eq!(d.shards.len(), 6);
        assert!(d.failed.is_empty());
        assert_eq!(
            skipped(&d, &c),
            pairs(&[
                (".git", "hidden"),
                (".hidden.jsonl", "hidden"),
                ("notes.txt", "not_a_shard_name"),
                ("x.jsonl.tmp-sluice", "temp_file"),
            ])
        );
        assert_eq!(
            d.skipped[2].reason.to_string(),
            "not a shard name (*.jsonl, *.ndjson, *.json, optionally .zst/.gz, or *.parquet)"
        );
        // Glob matches that are hidden or temp files are listed too.
        let d = discover(&[s(&c.join("*.jsonl*"))], &DiscoverOptions::default()).unwrap();
        assert_eq!(names(&d.shards), vec!["a.jsonl", "d.jsonl.zstd"]);
        assert_eq!(
            skipped(&d, &c),
            pairs(&[("x.jsonl.tmp-sluice", "temp_file")])
        );
        let d = discover(&[s(&c.join(".h*"))], &DiscoverOptions::default());
        assert!(
            d.is_err(),
            "a pattern matching only hidden files matches no shard"
        );
    }

    #[cfg(unix)]
    #[test]
    fn symlinked_directories_are_listed_and_followed_on_request() {
        use std::os::unix::fs::symlink;
        let dir = corpus();
        let c = dir.path().join("corpus");
        let elsewhere = dir.path().join("elsewhere");
        touch(&elsewhere.join("x.jsonl"), b"{}\n");
        touch(&elsewhere.join("deep/y.jsonl"), b"{}\n");
        symlink(&elsewhere, c.join("linked")).unwrap();

        let d = discover(&[s(&c)], &DiscoverOptions::default()).unwrap();
        assert!(!names(&d.shards).iter().any(|n| n.starts_with("linked")));
        assert!(skipped(&d, &c).contains(&("linked".into(), "symlinked_directory".into())));

        let d = discover(&[s(&c)], &follow()).unwrap();
        let got = names(&d.shards);
        assert!(got.contains(&"linked/x.jsonl"), "{got:?}");
        assert!(got.contains(&"linked/deep/y.jsonl"), "{got:?}");
        assert_eq!(d.shards.len(), 8);
        let x = d
            .shards
            .iter()
            .find(|s| s.name == "linked/x.jsonl")
            .unwrap();
        assert_eq!(x.path, c.join("linked/x.jsonl"));
    }

    #[cfg(unix)]
    #[test]
    fn symlink_cycles_are_reported_not_followed() {
        use std::os::unix::fs::symlink;
        let dir = corpus();
        let c = dir.path().join("corpus");
        // To itself's directory, to an ancestor, and a two-directory cycle outside the input.
        symlink(".", c.join("self")).unwrap();
        symlink("../..", c.join("sub/deeper/up")).unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        touch(&a.join("in-a.jsonl"), b"{}\n");
        touch(&b.join("in-b.jsonl"), b"{}\n");
        symlink(&b, a.join("to-b")).unwrap();
        symlink(&a, b.join("to-a")).unwrap();
        symlink(&a, c.join("to-a")).unwrap();

        let d = discover(&[s(&c)], &follow()).unwrap();
        assert_eq!(
            names(&d.shards),
            vec![
                "a.jsonl",
                "b.ndjson.zst",
                "c.json.gz",
                "d.jsonl.zstd",
                "sub/deeper/f.jsonl.gz",
                "sub/e.jsonl",
                "to-a/in-a.jsonl",
                "to-a/to-b/in-b.jsonl",
            ]
        );
        let got = skipped(&d, &c);
        for want in [
            ("self", "symlink_loop"),
            ("sub/deeper/up", "symlink_loop"),
            ("to-a/to-b/to-a", "already_searched"),
        ] {
            assert!(
                got.contains(&(want.0.into(), want.1.into())),
                "{want:?} in {got:?}"
            );
        }
        // Not following: the same links are listed as not followed.
        let d = discover(&[s(&c)], &DiscoverOptions::default()).unwrap();
        assert_eq!(d.shards.len(), 6);
        assert!(skipped(&d, &c).contains(&("self".into(), "symlinked_directory".into())));
    }

    #[cfg(unix)]
    #[test]
    fn a_directory_reached_directly_and_through_a_link_is_searched_once() {
        use std::os::unix::fs::symlink;
        let dir = corpus();
        let c = dir.path().join("corpus");
        // Sorted before "sub": without care it would be searched first and name the shards.
        symlink(c.join("sub"), c.join("alias")).unwrap();
        symlink(c.join("sub/e.jsonl"), c.join("sub/deeper/e-link.jsonl")).unwrap();
        for _ in 0..3 {
            let d = discover(&[s(&c)], &follow()).unwrap();
            assert!(!names(&d.shards).iter().any(|n| n.starts_with("alias")));
            assert!(names(&d.shards).contains(&"sub/e.jsonl"));
            // A link to a file is a shard of its own (the user made it), as before.
            assert!(names(&d.shards).contains(&"sub/deeper/e-link.jsonl"));
            let alias = d
                .skipped
                .iter()
                .find(|s| s.path.ends_with("alias"))
                .unwrap();
            assert_eq!(
                alias.reason,
                SkipReason::AlreadySearched(c.join("sub").display().to_string())
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn broken_links_do_not_stop_discovery() {
        use std::os::unix::fs::symlink;
        let dir = corpus();
        let c = dir.path().join("corpus");
        symlink("gone.jsonl", c.join("dangling.jsonl")).unwrap();
        symlink("self-loop.jsonl", c.join("self-loop.jsonl")).unwrap();
        symlink("nowhere", c.join("dangling-dir")).unwrap();
        for options in [DiscoverOptions::default(), follow()] {
            let d = discover(&[s(&c)], &options).unwrap();
            assert_eq!(d.shards.len(), 6, "the other shards are found");
            let failed: Vec<&str> = d.failed.iter().map(|f| f.name.as_str()).collect();
            assert_eq!(failed, vec!["dangling.jsonl", "self-loop.jsonl"]);
            assert_eq!(d.failed[0].path, c.join("dangling.jsonl"));
            assert_eq!(
                d.failed[0].error.to_string(),
                format!(
                    "cannot open {}: dangling symbolic link (to gone.jsonl)",
                    c.join("dangling.jsonl").display()
                )
            );
            let loop_error = d.failed[1].error.to_string();
            assert!(loop_error.contains("symbolic link"), "{loop_error}");
            assert!(skipped(&d, &c).contains(&("dangling-dir".into(), "broken_symlink".into())));
        }
        // The shards-only entry point reports the first one as its error, as it always did.
        let err = discover_shards(&[s(&c)]).unwrap_err();
        assert!(err.to_string().contains("dangling.jsonl"), "{err}");

        // A failed entry counts in the names' common ancestor: names do not change once the
        // link is repaired.
        let other = dir.path().join("other");
        touch(&other.join("o.jsonl"), b"{}\n");
        symlink("gone", other.join("z.jsonl")).unwrap();
        let d = discover(
            &[s(&other.join("o.jsonl")), s(&other.join("*.jsonl"))],
            &follow(),
        );
        let d = d.unwrap();
        assert_eq!(names(&d.shards), vec!["o.jsonl"]);
        assert_eq!(d.failed[0].name, "z.jsonl");
    }

    #[cfg(unix)]
    #[test]
    fn recursive_globs_survive_symlink_loops() {
        use std::os::unix::fs::symlink;
        let dir = corpus();
        let c = dir.path().join("corpus");
        // Two links back to the top: a naive `**` walk goes 2^40 ways.
        symlink(&c, c.join("sub/l1")).unwrap();
        symlink(&c, c.join("sub/l2")).unwrap();
        let pattern = s(&c.join("**/*.jsonl"));
        for options in [DiscoverOptions::default(), follow()] {
            let started = std::time::Instant::now();
            let d = discover(std::slice::from_ref(&pattern), &options).unwrap();
            assert!(started.elapsed().as_secs() < 10);
            assert_eq!(names(&d.shards), vec!["a.jsonl", "sub/e.jsonl"]);
            let got = skipped(&d, &c);
            let reason = if options.follow_symlinks {
                "symlink_loop"
            } else {
                "symlinked_directory"
            };
            assert!(got.contains(&("sub/l1".into(), reason.into())), "{got:?}");
        }
    }

    #[test]
    fn globs_match_per_component() {
        let dir = corpus();
        let c = dir.path().join("corpus");
        let d = |p: &str| {
            discover(&[s(&c.join(p))], &DiscoverOptions::default()).map(|d| {
                names(&d.shards)
                    .iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(
            d("**/*.gz").unwrap(),
            vec!["c.json.gz", "sub/deeper/f.jsonl.gz"]
        );
        assert_eq!(d("*/*.jsonl").unwrap(), vec!["e.jsonl"]);
        assert_eq!(d("s*/d*/*").unwrap(), vec!["f.jsonl.gz"]);
        // `**` never descends into hidden directories; `*` never matches a leading dot.
        assert_eq!(d("**/g.jsonl").ok(), None);
        assert_eq!(d("*/g.jsonl").ok(), None);
        // A file matched by a pattern is taken whatever its extension.
        assert_eq!(d("n*").unwrap(), vec!["notes.txt"]);
        // Several patterns over the same directories each match in full.
        let both = discover(
            &[s(&c.join("*/e.jsonl")), s(&c.join("s*/d*/*"))],
            &DiscoverOptions::default(),
        )
        .unwrap();
        assert_eq!(names(&both.shards), vec!["deeper/f.jsonl.gz", "e.jsonl"]);
        // Relative patterns, from the current directory.
        let cwd = std::env::current_dir().unwrap();
        let up = "../".repeat(cwd.components().count() - 1);
        let rel = format!(
            "{up}{}/corpus/s?b/**/*.gz",
            dir.path().display().to_string().trim_start_matches('/')
        );
        let got = discover(std::slice::from_ref(&rel), &DiscoverOptions::default()).unwrap();
        assert_eq!(names(&got.shards), vec!["f.jsonl.gz"]);
        assert!(got.shards[0].path.starts_with(&up));
    }

    #[test]
    fn excluded_directories_are_not_searched() {
        let dir = corpus();
        let c = dir.path().join("corpus");
        touch(&c.join("out/kept/a.jsonl"), b"{}\n");
        touch(&c.join("out/manifest.json"), b"{}\n");
        let options = DiscoverOptions {
            exclude: vec![c.join("out"), dir.path().join("does-not-exist")],
            ..DiscoverOptions::default()
        };
        let d = discover(&[s(&c)], &options).unwrap();
        assert_eq!(d.shards.len(), 6);
        assert!(skipped(&d, &c).contains(&("out".into(), "excluded".into())));
        let d = discover(&[s(&c.join("*"))], &options).unwrap();
        assert!(!names(&d.shards).iter().any(|n| n.contains("out")));
        let d = discover(&[s(&c)], &DiscoverOptions::default()).unwrap();
        assert!(names(&d.shards).contains(&"out/manifest.json"));
    }

    #[cfg(unix)]
    #[test]
    fn unusable_names_and_special_files_are_listed() {
        use std::os::unix::ffi::OsStrExt;
        let dir = corpus();
        let c = dir.path().join("corpus");
        touch(&c.join("back\\slash.jsonl"), b"{}\n");
        touch(&c.join("new\nline.jsonl"), b"{}\n");
        touch(
            &c.join(std::ffi::OsStr::from_bytes(b"latin-\xe9.jsonl")),
            b"{}\n",
        );
        let fifo = c.join("pipe.jsonl");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        let d = discover(&[s(&c)], &DiscoverOptions::default()).unwrap();
        assert_eq!(d.shards.len(), 6, "{:?}", names(&d.shards));
        let got = skipped(&d, &c);
        for name in [
            "back\\slash.jsonl",
            "new\nline.jsonl",
            "latin-\u{fffd}.jsonl",
        ] {
            assert!(
                got.contains(&(name.into(), "unsafe_name".into())),
                "{name:?} {got:?}"
            );
        }
        if made.is_ok_and(|s| s.success()) {
            assert!(got.contains(&("pipe.jsonl".into(), "not_a_regular_file".into())));
        }
    }
}
