//! Labeled JSONL, as `sluice train` and `sluice eval` read it: one JSON object per line with a
//! text field and a label field (dotted paths, as `input.text_field`). A label may be a JSON
//! string, integer or boolean; it becomes a class named by its text (`hazard`, `1`, `true`).
//! Blank lines are skipped; any other line that does not fit is an error naming its line. The
//! set is read whole: labeled sets are thousands of examples, not corpora.

use std::io::BufRead;

use serde_json::Value;
use sluice_classifier::train::Example;

use crate::document::FieldPath;

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

/// Reads labeled JSONL from `reader` (`source` names it in errors).
pub fn read_examples(
    reader: impl BufRead,
    source: &str,
    text_field: &FieldPath,
    label_field: &FieldPath,
) -> Result<Vec<Example>, LabeledError> {
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
        let text = match text_field.get(&value) {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(bad(format!("field {text_field} is not a string"))),
            None => return Err(bad(format!("no field {text_field}"))),
        };
        let label = match label_field.get(&value) {
            Some(v) => label_name(v).ok_or_else(|| {
                bad(format!(
                    "label field {label_field} is {v}, not a string, integer or boolean"
                ))
            })?,
            None => return Err(bad(format!("no field {label_field}"))),
        };
        examples.push(Example { text, label });
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
        let text = FieldPath::parse("text").unwrap();
        let label = FieldPath::parse("label").unwrap();
        let got = read_examples(&data[..], "d.jsonl", &text, &label).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].label, "hazard");
        assert_eq!(got[1].label, "1");
        let nested_line = br#"{"meta": {"body": "c"}, "label": true}"#;
        let err = read_examples(&nested_line[..], "d.jsonl", &text, &label).unwrap_err();
        assert_eq!(err.to_string(), "d.jsonl:1: no field text");
        let nested = FieldPath::parse("meta.body").unwrap();
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
}
