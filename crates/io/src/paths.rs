//! Names read back from a manifest, a journal or an audit record (`kept/<name>`, `audit/<name>`)
//! are data, not trusted paths: before one is joined under an output directory it must be a
//! plain relative path that cannot leave that directory.

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a name is not a safe relative path (see [`validate_relative_name`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsafeName {
    /// The name as given.
    pub name: String,
    /// What is wrong with it, as a phrase ("has a `..` component").
    pub reason: &'static str,
}

impl fmt::Display for UnsafeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug formatting: control characters (a NUL, an escape sequence) are shown escaped.
        write!(
            f,
            "unsafe name {:?}: {} (expected a relative path like a/b.jsonl)",
            self.name, self.reason
        )
    }
}

impl std::error::Error for UnsafeName {}

/// Checks that `name` is a plain relative path, `'/'`-separated, that stays under whatever
/// directory it is joined to, on Unix and on Windows alike: not empty, not absolute (no leading
/// `/`), no `..` or `.` component, no empty component (`a//b`, a trailing `/`), no NUL or other
/// ASCII control character, no backslash (a separator on Windows), and no drive prefix (`C:x`,
/// `c:/x`: a first component that starts with a letter and `:`, which Windows reads as a drive).
/// Returns `name` unchanged.
///
/// This is what names sluice writes look like (shard names are `'/'`-joined normal components),
/// so it rejects only names that a run could not have written.
pub fn validate_relative_name(name: &str) -> Result<&str, UnsafeName> {
    let unsafe_name = |reason| UnsafeName {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(unsafe_name("is empty"));
    }
    if name.contains('\0') {
        return Err(unsafe_name("contains a NUL byte"));
    }
    if name.chars().any(|c| c.is_ascii_control()) {
        return Err(unsafe_name("contains a control character"));
    }
    if name.contains('\\') {
        return Err(unsafe_name("contains a backslash"));
    }
    if name.starts_with('/') {
        return Err(unsafe_name("is absolute"));
    }
    for (i, component) in name.split('/').enumerate() {
        match component {
            "" => return Err(unsafe_name("has an empty component")),
            "." => return Err(unsafe_name("has a `.` component")),
            ".." => return Err(unsafe_name("has a `..` component")),
            c if i == 0
                && c.len() >= 2
                && c.as_bytes()[0].is_ascii_alphabetic()
                && c.as_bytes()[1] == b':' =>
            {
                return Err(unsafe_name("starts with a drive prefix (`x:`)"))
            }
            _ => {}
        }
    }
    Ok(name)
}

/// `root` joined with `name` after [`validate_relative_name`]: a path that lies lexically under
/// `root`. (A symbolic link inside `root` can still point elsewhere; that is the owner's choice
/// of layout, not something a name read from a file can do.)
pub fn join_under(root: &Path, name: &str) -> Result<PathBuf, UnsafeName> {
    let name = validate_relative_name(name)?;
    let mut path = root.to_path_buf();
    for component in name.split('/') {
        path.push(component);
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Component;

    #[test]
    fn plain_relative_names_pass() {
        for name in [
            "x.jsonl",
            "a/b/c.jsonl.zst",
            "part-00000.jsonl.gz",
            "..x.jsonl",
            "x..jsonl",
            "...",
            ".hidden/x.jsonl",
            "a/.b",
            "dir/2024-01-01T00:00.jsonl",
            "日本語/ファイル.jsonl",
            "a b/c d.jsonl",
        ] {
            assert_eq!(validate_relative_name(name), Ok(name), "{name}");
        }
    }

    #[test]
    fn hostile_names_are_refused() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("../../esc/x.jsonl", "`..`"),
            ("..", "`..`"),
            ("a/..", "`..`"),
            ("a/../../b", "`..`"),
            ("a/b/../../../c", "`..`"),
            ("/etc/passwd", "absolute"),
            ("//server/share/x", "absolute"),
            ("/", "absolute"),
            ("a\0b", "NUL"),
            ("x.jsonl\0../../etc", "NUL"),
            ("C:\\x", "backslash"),
            ("..\\..\\x", "backslash"),
            ("a\\b", "backslash"),
            ("C:x", "drive"),
            ("c:/x", "drive"),
            ("./a", "`.`"),
            ("a/./b", "`.`"),
            (".", "`.`"),
            ("a//b", "empty component"),
            ("a/", "empty component"),
            ("a\nb", "control"),
            ("\x1b[2Jx", "control"),
        ];
        for &(name, why) in cases {
            let err = validate_relative_name(name).expect_err(name);
            assert!(err.to_string().contains(why), "{name:?}: {err}");
            assert!(join_under(Path::new("/out"), name).is_err(), "{name:?}");
            // The message shows control characters escaped.
            assert!(!err.to_string().contains('\0'));
            assert!(!err.to_string().contains('\x1b'));
        }
        // Other colons are ordinary characters (names of timestamps).
        for name in [
            "a/b:c.jsonl",
            "2024-01-01T00:00.jsonl",
            "ab:c/x.jsonl",
            "1:x",
        ] {
            assert!(validate_relative_name(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn joined_names_stay_under_the_root() {
        let root = Path::new("/out/kept");
        let joined = join_under(root, "a/b/c.jsonl").unwrap();
        assert_eq!(joined, Path::new("/out/kept/a/b/c.jsonl"));
        assert!(joined.starts_with(root));
        assert!(joined
            .strip_prefix(root)
            .unwrap()
            .components()
            .all(|c| matches!(c, Component::Normal(_))));
        assert_eq!(
            join_under(Path::new("rel"), "x.jsonl").unwrap(),
            Path::new("rel/x.jsonl")
        );
    }
}
