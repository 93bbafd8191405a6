//! Finding the shards of a corpus: files, directories searched recursively, glob patterns.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Component, Path, PathBuf};

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
}

/// Whether a file found while searching a directory is a shard: `*.jsonl`, `*.ndjson` or
/// `*.json`, each optionally followed by `.zst`, `.zstd` or `.gz` (ASCII case-insensitive);
/// hidden files and our temp files are not.
pub fn is_shard_file_name(name: &str) -> bool {
    if name.starts_with('.') || name.ends_with(TEMP_SUFFIX) {
        return false;
    }
    let lower = name.to_ascii_lowercase();
    let stem = [".zst", ".zstd", ".gz"]
        .iter()
        .find_map(|c| lower.strip_suffix(c))
        .unwrap_or(&lower);
    [".jsonl", ".ndjson", ".json"]
        .iter()
        .any(|ext| stem.len() > ext.len() && stem.ends_with(ext))
}

/// Finds the shards named by `inputs`.
///
/// Each input is an existing file (taken whatever its extension), a directory (searched
/// recursively for files named `*.jsonl` / `*.ndjson` / `*.json`, each optionally followed by
/// `.zst` / `.zstd` / `.gz`; hidden files and directories, our own temp files `*.tmp-sluice`
/// and symbolic links to directories are skipped), or a glob pattern (matched files are taken
/// whatever their extension, except hidden and temp files; matched directories are searched as
/// above). An input that matches nothing is an error naming it. Duplicates (the same absolute
/// path, reached through several inputs) are removed.
///
/// `name` is the path relative to the deepest common ancestor directory of all shards,
/// `'/'`-separated (a single file: its file name). The result is sorted by name and does not
/// depend on directory listing order.
pub fn discover_shards(inputs: &[String]) -> Result<Vec<Shard>, IoError> {
    let cwd = std::env::current_dir().ok();
    // Keyed by the normalized absolute path: removes duplicates, keeps the first path seen.
    let mut found: BTreeMap<PathBuf, (PathBuf, u64)> = BTreeMap::new();

    if inputs.is_empty() {
        return Err(IoError::NoInputs);
    }
    for input in inputs {
        let path = Path::new(input);
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                walk_dir(path, &cwd, &mut found)?;
                // Nothing new may only mean an earlier input already found these shards.
                if !has_shard_under(path, &cwd, &found) {
                    return Err(IoError::NoMatch {
                        input: input.clone(),
                        reason: "directory contains no *.jsonl, *.ndjson or *.json file",
                    });
                }
                continue;
            }
            Ok(meta) => {
                add(&mut found, path.to_path_buf(), meta.len(), &cwd);
                continue;
            }
            Err(error) if !is_glob(input) => return Err(IoError::open(path, error)),
            Err(_) => {}
        }

        // A glob pattern.
        let options = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: true,
        };
        let paths = glob::glob_with(input, options).map_err(|e| IoError::BadPattern {
            pattern: input.clone(),
            message: e.msg.to_string(),
        })?;
        let mut hit = false;
        for entry in paths {
            let entry = entry.map_err(|e| {
                let path = e.path().to_path_buf();
                IoError::open(&path, e.into())
            })?;
            let meta = fs::metadata(&entry).map_err(|e| IoError::open(&entry, e))?;
            if meta.is_dir() {
                walk_dir(&entry, &cwd, &mut found)?;
                hit |= has_shard_under(&entry, &cwd, &found);
            } else {
                let file_name = entry
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default();
                if file_name.starts_with('.') || file_name.ends_with(TEMP_SUFFIX) {
                    continue;
                }
                add(&mut found, entry, meta.len(), &cwd);
                hit = true;
            }
        }
        if !hit {
            return Err(IoError::NoMatch {
                input: input.clone(),
                reason: "pattern matches no file",
            });
        }
    }

    // The deepest common ancestor directory of all shards.
    let mut ancestor: Option<PathBuf> = None;
    for absolute in found.keys() {
        let parent = absolute.parent().unwrap_or(Path::new("/"));
        ancestor = Some(match ancestor {
            None => parent.to_path_buf(),
            Some(current) => common_prefix(&current, parent),
        });
    }
    let ancestor = ancestor.unwrap_or_default();

    let mut shards: Vec<Shard> = found
        .into_iter()
        .map(|(absolute, (path, size))| {
            let relative = absolute.strip_prefix(&ancestor).unwrap_or(&absolute);
            let name = relative
                .components()
                .filter_map(|c| match c {
                    Component::Normal(part) => Some(part.to_string_lossy()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("/");
            Shard { path, name, size }
        })
        .collect();
    shards.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.path.cmp(&b.path)));
    Ok(shards)
}

/// Whether `input` looks like a glob pattern.
fn is_glob(input: &str) -> bool {
    input.contains(['*', '?', '['])
}

/// Whether a shard at or below `dir` has been found (keys sharing a path prefix are contiguous
/// in the map's component-wise order).
fn has_shard_under(
    dir: &Path,
    cwd: &Option<PathBuf>,
    found: &BTreeMap<PathBuf, (PathBuf, u64)>,
) -> bool {
    let dir = absolute(dir, cwd);
    found
        .range(dir.clone()..)
        .next()
        .is_some_and(|(key, _)| key.starts_with(&dir))
}

fn add(
    found: &mut BTreeMap<PathBuf, (PathBuf, u64)>,
    path: PathBuf,
    size: u64,
    cwd: &Option<PathBuf>,
) {
    let key = absolute(&path, cwd);
    found.entry(key).or_insert((path, size));
}

/// Searches `dir` recursively for shard files.
fn walk_dir(
    dir: &Path,
    cwd: &Option<PathBuf>,
    found: &mut BTreeMap<PathBuf, (PathBuf, u64)>,
) -> Result<(), IoError> {
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = fs::read_dir(&dir).map_err(|error| IoError::List {
            path: dir.clone(),
            error,
        })?;
        for entry in entries {
            let entry = entry.map_err(|error| IoError::List {
                path: dir.clone(),
                error,
            })?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            let file_type = entry.file_type().map_err(|e| IoError::open(&path, e))?;
            if file_type.is_dir() {
                pending.push(path);
                continue;
            }
            if !is_shard_file_name(&name) {
                continue;
            }
            // Follows symbolic links to files; links to directories are not descended into (no
            // cycles), dangling links are errors.
            let meta = fs::metadata(&path).map_err(|e| IoError::open(&path, e))?;
            if meta.is_file() {
                add(found, path, meta.len(), cwd);
            }
        }
    }
    Ok(())
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
}
