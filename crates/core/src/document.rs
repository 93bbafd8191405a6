//! Reading a document out of one JSONL line.
//!
//! Only the configured fields are materialised: the line is walked once with a serde visitor
//! that borrows the text straight from the line when it has no escapes, descends only into the
//! objects on a configured path, and skips (while still validating) everything else. There is no
//! intermediate `Value` tree.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

/// A field path: dots descend into nested objects (`metadata.body`), split once at build time.
/// The one definition for runs (`input.text_field`), `sluice train` and `sluice eval`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldPath(Vec<String>);

impl FieldPath {
    /// Parses `a.b.c`; every part must be non-empty.
    pub fn parse(path: &str) -> Result<FieldPath, String> {
        if path.split('.').any(str::is_empty) {
            return Err(format!("field {path:?} must be a non-empty dotted path"));
        }
        Ok(FieldPath(path.split('.').map(str::to_string).collect()))
    }

    /// The path's names, outermost first.
    pub fn parts(&self) -> &[String] {
        &self.0
    }

    /// The value at this path in a parsed JSON value, if any.
    pub fn get<'v>(&self, value: &'v serde_json::Value) -> Option<&'v serde_json::Value> {
        self.0.iter().try_fold(value, |v, key| v.get(key))
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

/// Why a line is not a usable document. `kind` is the stable counter key in the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    pub kind: &'static str,
    pub message: String,
}

impl LineError {
    fn new(kind: &'static str, message: impl Into<String>) -> LineError {
        LineError {
            kind,
            message: message.into(),
        }
    }
}

/// The fields of one document that the cascade needs.
#[derive(Debug)]
pub struct Document<'a> {
    pub text: Cow<'a, str>,
    pub id: Option<String>,
}

impl<'a> Document<'a> {
    /// A document of a text borrowed from elsewhere (a Parquet column).
    pub fn of_text(text: &'a str, id: Option<String>) -> Document<'a> {
        Document {
            text: Cow::Borrowed(text),
            id,
        }
    }
}

/// Extracts text and id from lines. Built once per run.
#[derive(Clone, Debug)]
pub struct FieldExtractor {
    text: FieldPath,
    id: Option<FieldPath>,
    text_name: String,
}

impl FieldExtractor {
    /// An extractor of `text_field` and `id_field` (paths the config validated; an invalid one
    /// simply finds nothing).
    pub fn new(text_field: &str, id_field: Option<&str>) -> FieldExtractor {
        let path = |p: &str| FieldPath(p.split('.').map(str::to_string).collect());
        FieldExtractor {
            text: path(text_field),
            id: id_field.map(path),
            text_name: text_field.to_string(),
        }
    }

    /// The configured text field, as written (`metadata.body`).
    pub fn text_field(&self) -> &str {
        &self.text_name
    }

    /// Parses `line` (without its newline). Invalid UTF-8, invalid JSON, a non-object line and
    /// a missing or non-string text field are errors; a missing id is not.
    ///
    /// A `\uD800`-style escape of a lone UTF-16 surrogate (no pair) is not valid JSON text for
    /// serde_json, but Python's `json.loads` reads it, so datasets carry them. Such a line is
    /// read with each lone surrogate decoded as U+FFFD (what Python's text becomes when it is
    /// encoded with `errors="replace"`): the rest of the text is judged as it is, instead of the
    /// whole line going to `errors/` unread. The line itself is still written out as it was.
    pub fn extract<'a>(&self, line: &'a [u8]) -> Result<Document<'a>, LineError> {
        match self.extract_exact(line) {
            // Only lines that failed are scanned: no cost on valid ones.
            Err(e) if e.kind == "invalid_json" => {
                let Some(fixed) = std::str::from_utf8(line)
                    .ok()
                    .and_then(replace_lone_surrogates)
                else {
                    return Err(e);
                };
                let doc = self.extract_exact(fixed.as_bytes())?;
                Ok(Document {
                    text: Cow::Owned(doc.text.into_owned()),
                    id: doc.id,
                })
            }
            other => other,
        }
    }

    fn extract_exact<'a>(&self, line: &'a [u8]) -> Result<Document<'a>, LineError> {
        // A UTF-8 byte order mark (files saved by some Windows tools start with one) is not JSON;
        // the line is parsed without it (and written out as it was).
        let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        let trimmed = trim_ascii(line);
        if trimmed.is_empty() {
            return Err(LineError::new("empty_line", "empty line"));
        }
        let line = std::str::from_utf8(line).map_err(|e| {
            LineError::new(
                "invalid_utf8",
                format!("invalid utf-8 at byte {}", e.valid_up_to()),
            )
        })?;
        let mut wanted: Vec<(&[String], Slot)> = vec![(&self.text.0, Slot::Text)];
        if let Some(id) = &self.id {
            wanted.push((&id.0, Slot::Id));
        }
        let mut found = Found::default();
        let mut de = serde_json::Deserializer::from_str(line);
        let seed = ObjectSeed {
            wanted: &wanted,
            depth: 0,
            found: &mut found,
            top: true,
        };
        seed.deserialize(&mut de)
            .and_then(|()| de.end())
            .map_err(|e| {
                if found.not_object {
                    LineError::new("not_an_object", "line is not a json object")
                } else {
                    LineError::new("invalid_json", format!("invalid json: {e}"))
                }
            })?;
        let text = match found.text {
            Some(Field::Str(s)) => s,
            Some(Field::Number(_)) => {
                return Err(LineError::new(
                    "text_not_string",
                    format!("field `{}` is a number, not a string", self.text_name),
                ))
            }
            Some(Field::Other(kind)) => {
                return Err(LineError::new(
                    "text_not_string",
                    format!("field `{}` is {kind}, not a string", self.text_name),
                ))
            }
            None => {
                return Err(LineError::new(
                    "missing_text",
                    format!("field `{}` is missing", self.text_name),
                ))
            }
        };
        let id = match found.id {
            Some(Field::Str(s)) => Some(s.into_owned()),
            Some(Field::Number(n)) => Some(n),
            _ => None,
        };
        Ok(Document { text, id })
    }
}

/// `line` with every `\uXXXX` escape of an unpaired UTF-16 surrogate replaced by `\ufffd`;
/// `None` when it has none. Escaped backslashes (`\\ud800` is a backslash and text) are skipped.
fn replace_lone_surrogates(line: &str) -> Option<String> {
    let bytes = line.as_bytes();
    let escape_at = |i: usize| -> Option<u32> {
        let hex = line.get(i + 2..i + 6)?;
        (bytes.get(i) == Some(&b'\\') && bytes.get(i + 1) == Some(&b'u'))
            .then(|| u32::from_str_radix(hex, 16).ok())
            .flatten()
    };
    let mut out = String::with_capacity(line.len());
    let (mut i, mut copied, mut changed) = (0, 0, false);
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        let Some(code) = escape_at(i) else {
            i += 2; // another escape (`\\`, `\"`, `\n`...): skip both bytes
            continue;
        };
        let high = (0xD800..0xDC00).contains(&code);
        let paired = high && escape_at(i + 6).is_some_and(|low| (0xDC00..0xE000).contains(&low));
        if paired {
            i += 12;
        } else if (0xD800..0xE000).contains(&code) {
            out.push_str(&line[copied..i]);
            out.push_str("\\ufffd");
            i += 6;
            copied = i;
            changed = true;
        } else {
            i += 6;
        }
    }
    changed.then(|| {
        out.push_str(&line[copied..]);
        out
    })
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |p| p + 1);
    &bytes[start..end]
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Text,
    Id,
}

enum Field<'a> {
    Str(Cow<'a, str>),
    Number(String),
    Other(&'static str),
}

#[derive(Default)]
struct Found<'a> {
    text: Option<Field<'a>>,
    id: Option<Field<'a>>,
    not_object: bool,
}

impl<'a> Found<'a> {
    fn set(&mut self, slot: Slot, field: Field<'a>) {
        match slot {
            Slot::Text => self.text = Some(field),
            Slot::Id => self.id = Some(field),
        }
    }

    fn clear(&mut self, slot: Slot) {
        match slot {
            Slot::Text => self.text = None,
            Slot::Id => self.id = None,
        }
    }
}

/// Visits an object, descending only along wanted paths.
struct ObjectSeed<'w, 'f, 'a> {
    wanted: &'w [(&'w [String], Slot)],
    depth: usize,
    found: &'f mut Found<'a>,
    top: bool,
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for ObjectSeed<'_, '_, 'a> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for ObjectSeed<'_, '_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a json object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
        let mut here: Vec<(&[String], Slot)> = Vec::with_capacity(self.wanted.len());
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            here.clear();
            here.extend(
                self.wanted
                    .iter()
                    .filter(|(path, _)| path[self.depth] == key.as_ref())
                    .copied(),
            );
            if here.is_empty() {
                map.next_value::<IgnoredAny>()?;
            } else if let Some(&(_, slot)) = here.iter().find(|(p, _)| p.len() == self.depth + 1) {
                // A leaf (text and id on the same field is allowed: the id copies the text).
                let field = map.next_value::<LeafValue>()?.0;
                if let (Field::Str(s), true) = (&field, here.len() > 1) {
                    for &(_, other) in here.iter().filter(|(_, o)| *o != slot) {
                        self.found.set(other, Field::Str(s.clone()));
                    }
                }
                self.found.set(slot, field);
            } else {
                // A repeated key replaces the earlier one wholly, as in Python's json.loads and
                // serde_json: what the earlier object held on the path is forgotten.
                for &(_, slot) in &here {
                    self.found.clear(slot);
                }
                map.next_value_seed(ObjectSeed {
                    wanted: &here,
                    depth: self.depth + 1,
                    found: &mut *self.found,
                    top: false,
                })?;
            }
        }
        Ok(())
    }

    // Anything but an object: fine below the top (the path simply is not there), an error on top.
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.not_top()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.not_top()
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.not_top()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.not_top()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.not_top()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.not_top()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.not_top()
    }
}

impl ObjectSeed<'_, '_, '_> {
    fn not_top<E: de::Error>(self) -> Result<(), E> {
        if self.top {
            self.found.not_object = true;
            Err(E::custom("line is not a json object"))
        } else {
            Ok(())
        }
    }
}

struct LeafValue<'a>(Field<'a>);

impl<'de: 'a, 'a> de::Deserialize<'de> for LeafValue<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LeafVisitor(std::marker::PhantomData))
    }
}

struct LeafVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for LeafVisitor<'a> {
    type Value = LeafValue<'a>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any json value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(LeafValue(Field::Str(Cow::Borrowed(v))))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(LeafValue(Field::Str(Cow::Owned(v.to_string()))))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(LeafValue(Field::Str(Cow::Owned(v))))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(LeafValue(Field::Number(v.to_string())))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(LeafValue(Field::Number(v.to_string())))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(LeafValue(Field::Number(v.to_string())))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(LeafValue(Field::Other("a boolean")))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(LeafValue(Field::Other("null")))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(LeafValue(Field::Other("an array")))
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(LeafValue(Field::Other("an object")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(text: &str, id: Option<&str>, line: &str) -> Result<(String, Option<String>), LineError> {
        FieldExtractor::new(text, id)
            .extract(line.as_bytes())
            .map(|d| (d.text.into_owned(), d.id))
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_json() {
        assert_eq!(
            ex("text", None, "\u{feff}{\"text\": \"a\"}"),
            Ok(("a".into(), None))
        );
        assert_eq!(ex("text", None, "\u{feff}").unwrap_err().kind, "empty_line");
    }

    #[test]
    fn extracts_top_level_and_nested_fields() {
        let line = r#"{"id": 7, "meta": {"url": "http://x", "n": [1, {"a": 2}]}, "text": "héllo \"q\"\u00e9"}"#;
        assert_eq!(
            ex("text", Some("id"), line).unwrap(),
            ("héllo \"q\"é".to_string(), Some("7".to_string()))
        );
        assert_eq!(
            ex("text", Some("meta.url"), line).unwrap().1.as_deref(),
            Some("http://x")
        );
        let nested = r#"{"doc": {"body": "b", "id": "d1"}, "other": 1}"#;
        assert_eq!(
            ex("doc.body", Some("doc.id"), nested).unwrap(),
            ("b".to_string(), Some("d1".to_string()))
        );
    }

    #[test]
    fn text_is_borrowed_when_it_has_no_escapes() {
        let e = FieldExtractor::new("text", None);
        let line = br#"{"text": "plain words"}"#;
        assert!(matches!(e.extract(line).unwrap().text, Cow::Borrowed(_)));
    }

    #[test]
    fn classifies_bad_lines() {
        let kind = |l: &[u8]| {
            FieldExtractor::new("text", Some("id"))
                .extract(l)
                .unwrap_err()
                .kind
        };
        assert_eq!(kind(b""), "empty_line");
        assert_eq!(kind(b"  \r"), "empty_line");
        assert_eq!(kind(b"{\"text\": \"a\xff\"}"), "invalid_utf8");
        assert_eq!(kind(b"{\"text\": \"a\""), "invalid_json");
        assert_eq!(kind(b"{\"text\": \"a\"} trailing"), "invalid_json");
        assert_eq!(kind(b"[1, 2]"), "not_an_object");
        assert_eq!(kind(b"\"just a string\""), "not_an_object");
        assert_eq!(kind(b"{\"id\": 1}"), "missing_text");
        assert_eq!(kind(b"{\"text\": 5}"), "text_not_string");
        assert_eq!(kind(b"{\"text\": null}"), "text_not_string");
        assert_eq!(kind(b"{\"text\": {\"a\": 1}}"), "text_not_string");
    }

    #[test]
    fn missing_id_and_path_through_non_object_are_fine() {
        assert_eq!(ex("text", Some("id"), r#"{"text": "t"}"#).unwrap().1, None);
        assert_eq!(
            ex("text", Some("meta.id"), r#"{"meta": 3, "text": "t"}"#)
                .unwrap()
                .1,
            None
        );
        assert_eq!(
            ex("a.b", None, r#"{"a": [1]}"#).unwrap_err().kind,
            "missing_text"
        );
    }

    #[test]
    fn lone_surrogates_are_read_as_replacement_characters() {
        // Python's json.loads reads these; the text around them is judged as it is.
        assert_eq!(
            ex("text", None, r#"{"text": "\ud800sarin and tabun"}"#)
                .unwrap()
                .0,
            "\u{fffd}sarin and tabun"
        );
        assert_eq!(
            ex("text", None, r#"{"text": "a\udc00b\ud83d"}"#).unwrap().0,
            "a\u{fffd}b\u{fffd}"
        );
        // A real pair stays a pair; an escaped backslash is text.
        assert_eq!(
            ex("text", None, r#"{"text": "\ud83d\ude00 \\ud800 \ud800"}"#)
                .unwrap()
                .0,
            "😀 \\ud800 \u{fffd}"
        );
        // In a key or the id too; other invalid JSON stays invalid.
        assert_eq!(
            ex("text", Some("id"), r#"{"id": "x\udfff", "text": "t"}"#)
                .unwrap()
                .1
                .as_deref(),
            Some("x\u{fffd}")
        );
        assert_eq!(
            FieldExtractor::new("text", None)
                .extract(br#"{"text": "\ud800 broken"#)
                .unwrap_err()
                .kind,
            "invalid_json"
        );
    }

    #[test]
    fn a_repeated_key_replaces_the_earlier_one_as_in_python() {
        // Found by the field_extractor fuzz target: the first "a" held a.b.c, the last does not.
        let line = r#"{"a": {"b": {"c" :""}}, "a": {"b": {"hhhhhhhhhc" :""}}, "c":" x"}"#;
        assert_eq!(
            ex("a.b.c", Some("text"), line).unwrap_err().kind,
            "missing_text"
        );
        assert_eq!(
            ex(
                "meta.body",
                None,
                r#"{"meta": {"x": 1}, "meta": {"body": "later"}}"#
            )
            .unwrap()
            .0,
            "later"
        );
        assert_eq!(
            ex("text", None, r#"{"text": "first", "text": "last"}"#)
                .unwrap()
                .0,
            "last"
        );
    }

    #[test]
    fn crlf_line_parses() {
        assert_eq!(ex("text", None, "{\"text\": \"x\"}\r").unwrap().0, "x");
    }
}
