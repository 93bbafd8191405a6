//! Labeled JSONL, as `sluice train` and `sluice eval` read it: one JSON object per line with a
//! text field and a label field (dotted paths, as `input.text_field`). A label may be a JSON
//! string, integer or boolean; it becomes a class named by its text (`hazard`, `1`, `true`).
//! Blank lines are skipped; any other line that does not fit is an error naming its line. The
//! set is read whole: labeled sets are thousands of examples, not corpora.

use std::io::BufRead;

use serde_json::Value;
use sluice_classifier::train::Example;

use crate::document::{Document, FieldExtractor, FieldPath};

/// A line of labeled data that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct LabeledError {
    /// The data file.
    pub file: String,
    /// 1-based line number (0: the file as a whole).
    pub line: u64,
    pub message: String,
}

/// The class name of a label value: strings as they are, integers and booleans as written in
/// JSON. `None` for other types (null, floats, arrays, objects).
pub fn label_name(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// Reads labeled JSONL from `reader` (`source` names it in errors): the text as a run's
/// `[input]` reads it (`extractor`: one field, or the parts of a chat or instruction record,
/// joined as the cascade judges them).
pub fn read_examples(
    reader: impl BufRead,
    source: &str,
    extractor: &FieldExtractor,
    label_field: &FieldPath,
) -> Result<Vec<Example>, LabeledError> {
    Ok(read_documents(reader, source, extractor, label_field)?
        .into_iter()
        .map(|(doc, label)| Example {
            text: doc.text.into_owned(),
            label,
        })
        .collect())
}

/// Reads labeled JSONL as documents (with their parts and roles, for `sluice eval`'s cascade)
/// and their labels.
pub fn read_documents(
    reader: impl BufRead,
    source: &str,
    extractor: &FieldExtractor,
    label_field: &FieldPath,
) -> Result<Vec<(Document<'static>, String)>, LabeledError> {
    let mut reader = reader;
    // Parquet is read by runs, not here: said plainly rather than as invalid JSON on line 1.
    if reader.fill_buf().is_ok_and(|b| b.starts_with(b"PAR1")) {
        return Err(LabeledError {
            file: source.to_string(),
            line: 0,
            message: "a parquet file: labeled data is read as jsonl (export it to jsonl first)"
                .into(),
        });
    }
    let mut examples = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let bad = |message: String| LabeledError {
            file: source.to_string(),
            line: i as u64 + 1,
            message,
        };
        let line = line.map_err(|e| bad(format!("cannot read: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value =
            serde_json::from_str(&line).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let doc = if extractor.is_single() {
            let text_field = extractor.text_field();
            match FieldPath::parse(text_field)
                .ok()
                .and_then(|p| p.get(&value).cloned())
            {
                Some(Value::String(s)) => Document::single(s, None),
                Some(_) => return Err(bad(format!("field {text_field} is not a string"))),
                None => return Err(bad(format!("no field {text_field}"))),
            }
        } else {
            extractor
                .extract(line.as_bytes())
                .map_err(|e| bad(e.message))?
                .into_owned()
        };
        let label = match label_field.get(&value) {
            Some(v) => label_name(v).ok_or_else(|| {
                bad(format!(
                    "label field {label_field} is {v}, not a string, integer or boolean"
                ))
            })?,
            None => return Err(bad(format!("no field {label_field}"))),
        };
        examples.push((doc, label));
    }
    if examples.is_empty() {
        return Err(LabeledError {
            file: source.to_string(),
            line: 0,
            message: "no examples".into(),
        });
    }
    Ok(examples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_strings_ints_and_bools() {
        let data = b"{\"text\": \"a\", \"label\": \"hazard\"}\n{\"text\": \"b\", \"label\": 1}\n\n";
        let text = FieldExtractor::new("text", None);
        let label = FieldPath::parse("label").unwrap();
        let got = read_examples(&data[..], "d.jsonl", &text, &label).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].label, "hazard");
        assert_eq!(got[1].label, "1");
        let nested_line = br#"{"meta": {"body": "c"}, "label": true}"#;
        let err = read_examples(&nested_line[..], "d.jsonl", &text, &label).unwrap_err();
        assert_eq!(err.to_string(), "d.jsonl:1: no field text");
        let nested = FieldExtractor::new("meta.body", None);
        let got = read_examples(&nested_line[..], "d.jsonl", &nested, &label).unwrap();
        assert_eq!((got[0].text.as_str(), got[0].label.as_str()), ("c", "true"));
        assert!(read_examples(&b"\n"[..], "e", &text, &label).is_err());
        for bad in [
            &br#"{"text": "a", "label": 0.5}"#[..],
            br#"{"text": 3, "label": 1}"#,
            b"not json",
        ] {
            let err = read_examples(bad, "x", &text, &label)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("x:1: "), "{err}");
        }
        assert!(FieldPath::parse("a..b").is_err());
    }

    #[test]
    fn a_parquet_file_is_refused_plainly() {
        let e = read_documents(
            &b"PAR1\x15\x04rest"[..],
            "d.parquet",
            &FieldExtractor::new("text", None),
            &FieldPath::parse("label").unwrap(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "d.parquet:0: a parquet file: labeled data is read as jsonl (export it to jsonl first)"
        );
    }

    #[test]
    fn chat_records_are_read_as_their_joined_parts() {
        let sources = crate::document::InputFormat::Chat.sources().unwrap();
        let chat = FieldExtractor::with_sources(&sources, None).unwrap();
        let label = FieldPath::parse("label").unwrap();
        let data = br#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], "label": 0}"#;
        let got = read_examples(&data[..], "c.jsonl", &chat, &label).unwrap();
        assert_eq!(got[0].text, "hi\n\nhello");
        let docs = read_documents(&data[..], "c.jsonl", &chat, &label).unwrap();
        assert_eq!(docs[0].0.parts[1].role.as_deref(), Some("assistant"));
        let err = read_examples(
            &br#"{"messages": [{"role": "user", "content": 3}], "label": 0}"#[..],
            "c.jsonl",
            &chat,
            &label,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "c.jsonl:1: field `messages[0].content` is a number, not a string"
        );
    }
}
