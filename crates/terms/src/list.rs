//! Term-list files: one term per line, optional `term<TAB>category<TAB>weight` columns.

use std::path::Path;

use crate::TermsError;

/// One term of a term list, with its optional category and its weight.
#[derive(Clone, Debug, PartialEq)]
pub struct TermEntry {
    /// The term as written (trimmed when loaded from a file).
    pub term: String,
    /// The category column, or the list's default category.
    pub category: Option<String>,
    /// The weight column; 1.0 when absent.
    pub weight: f32,
}

impl TermEntry {
    /// A term with no category and weight 1.0.
    pub fn new(term: impl Into<String>) -> Self {
        TermEntry {
            term: term.into(),
            category: None,
            weight: 1.0,
        }
    }
}

/// Load a term list.
///
/// Format: UTF-8 text, one term per line, with optional TAB-separated columns
/// `term<TAB>category<TAB>weight` (category and weight optional; weight defaults to 1.0; an
/// empty category column counts as absent). Lines whose first non-space character is `#` are
/// comments (so a term cannot itself start with `#`), blank lines are skipped, columns are
/// trimmed, `\r\n` line ends and a leading byte-order mark are accepted.
/// `default_category` applies when a line has no category column.
///
/// Errors name the file and the 1-based line: invalid UTF-8, an empty term, a weight that is not a
/// finite number at least 0 (negative, NaN and infinite weights are refused: a negative weight
/// would let one term cancel another's evidence), more than three columns. A missing path and a
/// directory have errors of their own ([`TermsError::NotFound`], [`TermsError::IsADirectory`]).
pub fn load_term_list(
    path: &Path,
    default_category: Option<&str>,
) -> Result<Vec<TermEntry>, TermsError> {
    let io_error = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::NotFound => TermsError::NotFound {
            path: path.to_path_buf(),
        },
        std::io::ErrorKind::IsADirectory => TermsError::IsADirectory {
            path: path.to_path_buf(),
        },
        _ => TermsError::Io {
            path: path.to_path_buf(),
            source,
        },
    };
    // Reading a directory fails with "is a directory" on Linux but not everywhere: ask first.
    if std::fs::metadata(path).map_err(io_error)?.is_dir() {
        return Err(TermsError::IsADirectory {
            path: path.to_path_buf(),
        });
    }
    let bytes = std::fs::read(path).map_err(io_error)?;
    parse_term_list(&bytes, path, default_category)
}

/// Parse the bytes of a term list; `path` is only used in error messages.
pub(crate) fn parse_term_list(
    bytes: &[u8],
    path: &Path,
    default_category: Option<&str>,
) -> Result<Vec<TermEntry>, TermsError> {
    let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
    let mut entries = Vec::new();
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_no = index + 1;
        let line = std::str::from_utf8(raw).map_err(|_| TermsError::InvalidUtf8 {
            path: path.to_path_buf(),
            line: line_no,
        })?;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let columns: Vec<&str> = line.split('\t').map(str::trim).collect();
        if columns.len() > 3 {
            return Err(TermsError::TooManyColumns {
                path: path.to_path_buf(),
                line: line_no,
                columns: columns.len(),
            });
        }
        let term = columns[0];
        if term.is_empty() {
            return Err(TermsError::EmptyTermLine {
                path: path.to_path_buf(),
                line: line_no,
            });
        }
        let category = match columns.get(1) {
            Some(c) if !c.is_empty() => Some((*c).to_string()),
            _ => default_category.map(str::to_string),
        };
        let weight = match columns.get(2) {
            Some(w) if !w.is_empty() => match w.parse::<f32>() {
                // `-0` is 0; NaN fails every comparison, so it is refused here too.
                Ok(v) if v.is_finite() && v >= 0.0 => v + 0.0,
                _ => {
                    return Err(TermsError::BadWeight {
                        path: path.to_path_buf(),
                        line: line_no,
                        value: (*w).to_string(),
                    })
                }
            },
            _ => 1.0,
        };
        entries.push(TermEntry {
            term: term.to_string(),
            category,
            weight,
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(content: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(content).expect("write");
        f
    }

    fn entry(term: &str, category: Option<&str>, weight: f32) -> TermEntry {
        TermEntry {
            term: term.into(),
            category: category.map(Into::into),
            weight,
        }
    }

    #[test]
    fn parses_columns_comments_and_blank_lines() {
        let f = write(
            "\u{feff}# a comment\n\
             sarin\n\
             \n\
             \x20  # indented comment\n\
             \x20 nerve agent  \tchem\t2.5\r\n\
             anthrax\tbio\n\
             ricin\t\t0.5\n\
             vx\tchem\t\n\
             \t\t\n"
                .as_bytes(),
        );
        let got = load_term_list(f.path(), Some("default")).expect("parses");
        assert_eq!(
            got,
            vec![
                entry("sarin", Some("default"), 1.0),
                entry("nerve agent", Some("chem"), 2.5),
                entry("anthrax", Some("bio"), 1.0),
                entry("ricin", Some("default"), 0.5),
                entry("vx", Some("chem"), 1.0),
            ]
        );
        let got = load_term_list(f.path(), None).expect("parses");
        assert_eq!(got[0], entry("sarin", None, 1.0));
    }

    #[test]
    fn empty_file_is_an_empty_list() {
        let f = write(b"");
        assert!(load_term_list(f.path(), None).expect("parses").is_empty());
    }

    #[test]
    fn bad_weight_names_file_and_line() {
        let f = write(b"a\nb\tcat\theavy\n");
        let err = load_term_list(f.path(), None).expect_err("bad weight");
        let msg = err.to_string();
        assert!(
            matches!(err, TermsError::BadWeight { line: 2, .. }),
            "{err:?}"
        );
        assert!(msg.contains(&format!("{}:2:", f.path().display())), "{msg}");
        assert!(msg.contains("bad weight \"heavy\""), "{msg}");

        let f = write(b"a\tcat\tNaN\n");
        assert!(matches!(
            load_term_list(f.path(), None),
            Err(TermsError::BadWeight { line: 1, .. })
        ));
    }

    #[test]
    fn invalid_utf8_names_line() {
        let f = write(b"ok\nalso ok\nbad \xff\xfe here\n");
        let err = load_term_list(f.path(), None).expect_err("invalid utf-8");
        assert!(
            matches!(err, TermsError::InvalidUtf8 { line: 3, .. }),
            "{err:?}"
        );
        assert!(err
            .to_string()
            .ends_with(&format!("{}:3: invalid utf-8", f.path().display())));
    }

    #[test]
    fn empty_term_and_extra_columns_are_errors() {
        let f = write(b"a\n\tchem\t1\n");
        let err = load_term_list(f.path(), None).expect_err("empty term");
        assert!(
            matches!(err, TermsError::EmptyTermLine { line: 2, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(":2: empty term"));

        let f = write(b"a\tb\t1\td\n");
        let err = load_term_list(f.path(), None).expect_err("too many columns");
        assert!(matches!(
            err,
            TermsError::TooManyColumns {
                line: 1,
                columns: 4,
                ..
            }
        ));
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("nope.txt");
        let err = load_term_list(&path, None).expect_err("missing");
        assert!(matches!(err, TermsError::NotFound { .. }));
        assert!(err.to_string().contains("nope.txt"));
    }

    #[test]
    fn negative_and_non_finite_weights_are_errors() {
        for (weight, line) in [
            ("-1", 2),
            ("-0.5", 2),
            ("NaN", 2),
            ("inf", 2),
            ("-inf", 2),
            ("1e39", 2),
        ] {
            let f = write(format!("ok\tc\t1\nbad\tc\t{weight}\n").as_bytes());
            let err = load_term_list(f.path(), None).expect_err(weight);
            assert!(
                matches!(&err, TermsError::BadWeight { line: l, value, .. } if *l == line && value == weight),
                "{weight}: {err:?}"
            );
            let msg = err.to_string();
            assert_eq!(
                msg,
                format!(
                    "{}:{line}: bad weight {weight:?} (expected a finite number, 0 or more)",
                    f.path().display()
                )
            );
        }
        // Zero is a weight (a term that counts but weighs nothing).
        let f = write(b"a\tc\t0\nb\tc\t-0\n");
        let got = load_term_list(f.path(), None).unwrap();
        assert_eq!(got[0].weight, 0.0);
        assert_eq!(got[1].weight, 0.0);
        assert!(got[1].weight.is_sign_positive(), "-0 is stored as 0");
    }

    #[test]
    fn a_directory_is_named_as_such() {
        let dir = tempfile::tempdir().expect("dir");
        let err = load_term_list(dir.path(), None).expect_err("a directory");
        assert!(matches!(err, TermsError::IsADirectory { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "term list {} is a directory, not a file",
                dir.path().display()
            )
        );
        let missing = dir.path().join("nope.txt");
        let err = load_term_list(&missing, None).expect_err("missing");
        assert!(matches!(err, TermsError::NotFound { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("term list {} does not exist", missing.display())
        );
    }
}
