//! What the `field_extractor` and `config` fuzz targets (`fuzz/fuzz_targets/`) run, here so that
//! the crate's tests run every committed corpus file through the same code without a nightly
//! toolchain. Built only for tests and with the `fuzzing` feature.

use std::path::Path;

use crate::config::Config;
use crate::document::{FieldExtractor, InputFormat, TextSource, PART_SEPARATOR};

/// The field paths a `field_extractor` input's first byte chooses from.
const PATHS: [(&str, Option<&str>); 4] = [
    ("text", None),
    ("text", Some("id")),
    ("meta.body", Some("meta.id")),
    ("a.b.c", Some("text")),
];

/// One fuzz input: a byte choosing the text and id fields, then one JSONL line. Extraction
/// must never panic; when it succeeds and the line is JSON that serde_json reads as a whole, the
/// text is the string at the text path and the id the string or number at the id path (a lone
/// surrogate escape is the one thing sluice reads that serde_json refuses). A first byte of
/// 0x80 or more chooses a multi-part layout instead (see [`parts_extractor`]).
pub fn field_extractor(data: &[u8]) {
    let [choice, line @ ..] = data else {
        return;
    };
    if *choice >= 0x80 {
        return parts_extractor(*choice, line);
    }
    let (text_field, id_field) = PATHS[usize::from(*choice) % PATHS.len()];
    let extractor = FieldExtractor::new(text_field, id_field);
    let Ok(doc) = extractor.extract(line) else {
        return;
    };
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(line) else {
        return;
    };
    let at = |path: &str| {
        path.split('.')
            .try_fold(&value, |v, key| v.as_object()?.get(key))
    };
    assert_eq!(
        at(text_field).and_then(|v| v.as_str()),
        Some(&*doc.text),
        "text of {text_field}"
    );
    if let Some(id_field) = id_field {
        let expected = at(id_field).and_then(|v| match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        // serde_json's Value and sluice's visitor may spell a float differently: compare values.
        match (&expected, &doc.id) {
            (Some(a), Some(b)) if a != b => {
                let (x, y) = (a.parse::<f64>().ok(), b.parse::<f64>().ok());
                assert!(x.is_some() && x == y, "id {a:?} vs {b:?}");
            }
            _ => assert_eq!(expected.is_some(), doc.id.is_some(), "id of {id_field}"),
        }
    }
}

/// The multi-part layouts of `field_extractor` inputs from 0x80 on.
fn layouts() -> [Vec<TextSource>; 4] {
    [
        InputFormat::Chat.sources().expect("sources"),
        InputFormat::Sharegpt.sources().expect("sources"),
        InputFormat::Alpaca.sources().expect("sources"),
        vec![
            TextSource::path("a.b[*]"),
            TextSource::path("c[1].d"),
            TextSource::path("text"),
        ],
    ]
}

/// A multi-part extraction: when it succeeds, the parts tile the text (joined by the
/// separator), and on a line serde_json reads, each part's text is the string at its path.
fn parts_extractor(choice: u8, line: &[u8]) {
    let sources = &layouts()[usize::from(choice) % 4];
    let extractor = FieldExtractor::with_sources(sources, Some("id")).expect("valid sources");
    let Ok(doc) = extractor.extract(line) else {
        return;
    };
    assert!(!doc.parts.is_empty(), "a document of parts has parts");
    let mut at = 0;
    for (i, part) in doc.parts.iter().enumerate() {
        if i > 0 {
            assert_eq!(&doc.text[at..part.range.start], PART_SEPARATOR);
        }
        at = part.range.end;
    }
    assert_eq!(at, doc.text.len());
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(line) else {
        return;
    };
    for part in &doc.parts {
        assert_eq!(
            value_at(&value, &part.path).and_then(|v| v.as_str()),
            Some(doc.part_text(part)),
            "part {}",
            part.path
        );
    }
}

/// The value at a part path (`messages[2].content[0].text`) in a parsed line.
fn value_at<'v>(value: &'v serde_json::Value, path: &str) -> Option<&'v serde_json::Value> {
    let mut v = value;
    for piece in path.split('.') {
        let (key, mut rest) = piece.split_at(piece.find('[').unwrap_or(piece.len()));
        v = v.as_object()?.get(key)?;
        while let Some(close) = rest.find(']') {
            v = v.as_array()?.get(rest[1..close].parse::<usize>().ok()?)?;
            rest = &rest[close + 1..];
        }
    }
    Some(v)
}

/// One fuzz input: a config file's text. Parsing and validation must never panic; a config
/// that validates hashes the same after the round trip through its manifest form (JSON), and
/// its stages (none of which may read a file: such a config fails at build, which is fine)
/// build or fail with an error.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = Config::from_toml(text, Path::new("/nonexistent-fuzz-dir")) else {
        return;
    };
    if config.validate().is_err() {
        return;
    }
    let Ok(hash) = config.hash() else {
        return;
    };
    let json = serde_json::to_vec(&config).expect("a config serializes");
    let mut back: Config = serde_json::from_slice(&json).expect("a serialized config reads back");
    back.base_dir = config.base_dir.clone();
    assert_eq!(
        back.hash().ok(),
        Some(hash),
        "the manifest's config hashes as the file"
    );
    let _ = config.build_stages();
}

#[cfg(test)]
mod tests {
    fn corpus(target: &str, each: fn(&[u8])) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus")
            .join(target);
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            each(&std::fs::read(entry.unwrap().path()).unwrap());
            count += 1;
        }
        assert!(count > 0, "no corpus in {}", dir.display());
    }

    /// Every committed corpus file of the core fuzz targets, through the same functions.
    #[test]
    fn fuzz_corpus_runs_clean() {
        corpus("field_extractor", super::field_extractor);
        corpus("config", super::config);
    }
}
