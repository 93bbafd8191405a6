//! Reading a document out of one JSONL line.
//!
//! Only the configured fields are materialised: the line is walked once with a serde visitor
//! that borrows the text straight from the line when it has no escapes, descends only into the
//! objects on a configured path, and skips (while still validating) everything else. There is no
//! intermediate `Value` tree.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use smallvec::{smallvec, SmallVec};

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

/// What parts are joined with in [`Document::text`]. No match can cross it: a term list is one
/// term per line, so no term holds a `\n` (word-boundary and substring terms alike), and regex
/// rules are run on each part on its own (no separator could stop `\s+` or `(?s).`).
pub const PART_SEPARATOR: &str = "\n\n";

/// One text part of a multi-part document (a chat message, an Alpaca field).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part<'a> {
    /// Where it came from, with array indices: `messages[2].content`.
    pub path: String,
    /// The speaker (`user`, `assistant`, `system`, ...), when the input says.
    pub role: Option<Cow<'a, str>>,
    /// Its bytes in [`Document::text`].
    pub range: Range<usize>,
}

/// The one document type every input format produces: the text the stages judge, the id, and,
/// for inputs with several text sources, the parts that text is made of.
#[derive(Clone, Debug)]
pub struct Document<'a> {
    /// The text judged: the one text field, or the parts joined with [`PART_SEPARATOR`].
    pub text: Cow<'a, str>,
    pub id: Option<String>,
    /// Empty for a one-text document (`input.text_field`); else every part, in order.
    pub parts: Vec<Part<'a>>,
}

/// How a role-limited stage sees a document (see [`Document::with_roles`]).
pub enum RoleView<'d, 'a> {
    /// No part has one of the roles: the stage does not look at the document.
    Nothing,
    /// Every part has one of them: the document as it is.
    Whole(&'d Document<'a>),
    /// The parts with one of them, joined anew.
    Some(Document<'d>),
}

impl<'a> Document<'a> {
    /// A one-text document (no parts): what `input.text_field` reads.
    pub fn single(text: impl Into<Cow<'a, str>>, id: Option<String>) -> Document<'a> {
        Document {
            text: text.into(),
            id,
            parts: Vec::new(),
        }
    }

    /// A multi-part document from `(path, role, text)` in order, joined with
    /// [`PART_SEPARATOR`]. One part keeps its text borrowed.
    pub fn from_parts(
        id: Option<String>,
        parts: impl IntoIterator<Item = (String, Option<Cow<'a, str>>, Cow<'a, str>)>,
    ) -> Document<'a> {
        let mut texts: Vec<(String, Option<Cow<'a, str>>, Cow<'a, str>)> =
            parts.into_iter().collect();
        if texts.len() == 1 {
            let (path, role, text) = texts.pop().expect("one part");
            let range = 0..text.len();
            return Document {
                text,
                id,
                parts: vec![Part { path, role, range }],
            };
        }
        let size = texts.iter().map(|(_, _, t)| t.len()).sum::<usize>()
            + PART_SEPARATOR.len() * texts.len().saturating_sub(1);
        let mut text = String::with_capacity(size);
        let mut out = Vec::with_capacity(texts.len());
        for (i, (path, role, part)) in texts.into_iter().enumerate() {
            if i > 0 {
                text.push_str(PART_SEPARATOR);
            }
            let start = text.len();
            text.push_str(&part);
            out.push(Part {
                path,
                role,
                range: start..text.len(),
            });
        }
        Document {
            text: Cow::Owned(text),
            id,
            parts: out,
        }
    }

    /// The byte ranges of [`text`](Self::text) that are judged each on its own: every part, or
    /// the whole text of a one-text document.
    pub fn part_ranges(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        let whole = self.parts.is_empty().then(|| 0..self.text.len());
        whole
            .into_iter()
            .chain(self.parts.iter().map(|p| p.range.clone()))
    }

    /// The text of `part`.
    pub fn part_text(&self, part: &Part<'_>) -> &str {
        &self.text[part.range.clone()]
    }

    /// The part holding bytes `start..end` of the text, if any (a span never crosses parts).
    pub fn part_at(&self, start: usize, end: usize) -> Option<&Part<'a>> {
        let i = self
            .parts
            .partition_point(|p| p.range.end < end.max(start + 1));
        self.parts
            .get(i)
            .filter(|p| p.range.start <= start && end <= p.range.end)
    }

    /// The document as a stage limited to `roles` sees it.
    pub fn with_roles<'d>(&'d self, roles: &[String]) -> RoleView<'d, 'a> {
        let wanted = |p: &Part| {
            p.role
                .as_deref()
                .is_some_and(|r| roles.iter().any(|w| w == r))
        };
        let count = self.parts.iter().filter(|p| wanted(p)).count();
        if count == 0 {
            RoleView::Nothing
        } else if count == self.parts.len() {
            RoleView::Whole(self)
        } else {
            RoleView::Some(Document::from_parts(
                self.id.clone(),
                self.parts.iter().filter(|p| wanted(p)).map(|p| {
                    (
                        p.path.clone(),
                        p.role.as_deref().map(Cow::Borrowed),
                        Cow::Borrowed(self.part_text(p)),
                    )
                }),
            ))
        }
    }

    /// The roles of the parts, each once, in order of first appearance.
    pub fn roles(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for role in self.parts.iter().filter_map(|p| p.role.as_deref()) {
            if !out.contains(&role) {
                out.push(role);
            }
        }
        out
    }

    /// The same document owning its text.
    pub fn into_owned(self) -> Document<'static> {
        Document {
            text: Cow::Owned(self.text.into_owned()),
            id: self.id,
            parts: self
                .parts
                .into_iter()
                .map(|p| Part {
                    path: p.path,
                    role: p.role.map(|r| Cow::Owned(r.into_owned())),
                    range: p.range,
                })
                .collect(),
        }
    }
}

/// One configured text source (`input.text_fields`): a path, and where the role of its parts
/// comes from. Written as a string (the path) or a table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TextSource {
    /// Dotted path; `[*]` walks every element of an array, `[N]` one: `messages[*].content`.
    pub path: String,
    /// A fixed role for its parts (Alpaca's `output` is `assistant`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The field beside the text that holds its role (`role` for chat, `from` for ShareGPT),
    /// relative to the object holding the text. `human` reads as `user`, `gpt` and `chatgpt`
    /// as `assistant`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_field: Option<String>,
}

impl<'de> Deserialize<'de> for TextSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            path: String,
            #[serde(default)]
            role: Option<String>,
            #[serde(default)]
            role_field: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Path(String),
            Table(Table),
        }
        Ok(
            match Either::deserialize(d).map_err(|_| {
                de::Error::custom(
                    "a text source is a path string or a table {path, role, role_field}",
                )
            })? {
                Either::Path(path) => TextSource::path(&path),
                Either::Table(t) => TextSource {
                    path: t.path,
                    role: t.role,
                    role_field: t.role_field,
                },
            },
        )
    }
}

impl TextSource {
    /// A source without a role.
    pub fn path(path: &str) -> TextSource {
        TextSource {
            path: path.to_string(),
            role: None,
            role_field: None,
        }
    }

    fn with_role(path: &str, role: &str) -> TextSource {
        TextSource {
            role: Some(role.to_string()),
            ..TextSource::path(path)
        }
    }

    fn with_role_field(path: &str, role_field: &str) -> TextSource {
        TextSource {
            role_field: Some(role_field.to_string()),
            ..TextSource::path(path)
        }
    }

    /// Whether its parts have a role.
    pub fn has_role(&self) -> bool {
        self.role.is_some() || self.role_field.is_some()
    }
}

/// The common record layouts (`input.format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputFormat {
    /// One text field (`input.text_field`): the default.
    Text,
    /// OpenAI chat: `{"messages": [{"role", "content"}]}`, `content` a string or a list of
    /// parts (`{"type": "text", "text"}` judged, other types skipped).
    Chat,
    /// `{"conversations": [{"from", "value"}]}`, `human`/`gpt` read as `user`/`assistant`.
    Sharegpt,
    /// `instruction`, `input` (`user`) and `output` (`assistant`).
    Alpaca,
    /// `prompt` (`user`) and `completion` (`assistant`).
    PromptCompletion,
    /// Any of `chat`, `sharegpt`, `alpaca` and `prompt-completion`, whichever fields a record
    /// has: their sources together (a record has those of one layout, the others find nothing).
    /// [`detect_layout`] names the layout of a file from its first records.
    Auto,
}

/// The four layouts `auto` reads, in the order their fields are looked for.
pub const AUTO_LAYOUTS: [InputFormat; 4] = [
    InputFormat::Chat,
    InputFormat::Sharegpt,
    InputFormat::Alpaca,
    InputFormat::PromptCompletion,
];

impl std::str::FromStr for InputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<InputFormat, String> {
        use serde::de::IntoDeserializer;
        InputFormat::deserialize(IntoDeserializer::<de::value::Error>::into_deserializer(s))
            .map_err(|_| {
                format!(
                    "unknown format {s:?} (text, chat, sharegpt, alpaca, prompt-completion, auto)"
                )
            })
    }
}

impl InputFormat {
    /// The text sources of the layout (`None` for `text`: the one `text_field`).
    pub fn sources(self) -> Option<Vec<TextSource>> {
        Some(match self {
            InputFormat::Text => return None,
            InputFormat::Chat => vec![TextSource::with_role_field("messages[*].content", "role")],
            InputFormat::Sharegpt => {
                vec![TextSource::with_role_field(
                    "conversations[*].value",
                    "from",
                )]
            }
            InputFormat::Alpaca => vec![
                TextSource::with_role("instruction", "user"),
                TextSource::with_role("input", "user"),
                TextSource::with_role("output", "assistant"),
            ],
            InputFormat::PromptCompletion => vec![
                TextSource::with_role("prompt", "user"),
                TextSource::with_role("completion", "assistant"),
            ],
            InputFormat::Auto => AUTO_LAYOUTS
                .iter()
                .flat_map(|f| f.sources().expect("a layout of parts"))
                .collect(),
        })
    }

    /// Its name in configs (`prompt-completion`).
    pub fn name(self) -> &'static str {
        match self {
            InputFormat::Text => "text",
            InputFormat::Chat => "chat",
            InputFormat::Sharegpt => "sharegpt",
            InputFormat::Alpaca => "alpaca",
            InputFormat::PromptCompletion => "prompt-completion",
            InputFormat::Auto => "auto",
        }
    }

    /// The layout of one record, from its top-level keys: `messages` chat, `conversations`
    /// ShareGPT, `instruction`/`output` Alpaca, `prompt`/`completion` prompt-completion, `text`
    /// one text field; `None` for a line that is not a JSON object or has none of these.
    pub fn of_record(line: &str) -> Option<InputFormat> {
        let line = line.strip_prefix('\u{feff}').unwrap_or(line);
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line).ok()?;
        let has = |key: &str| object.contains_key(key);
        Some(if has("messages") {
            InputFormat::Chat
        } else if has("conversations") {
            InputFormat::Sharegpt
        } else if has("instruction") || has("output") {
            InputFormat::Alpaca
        } else if has("prompt") || has("completion") {
            InputFormat::PromptCompletion
        } else if has("text") {
            InputFormat::Text
        } else {
            return None;
        })
    }
}

/// How many of a file's first readable records [`detect_layout`] looks at.
pub const DETECT_RECORDS: usize = 20;

/// The layout of a file from its first lines: the layout most of its first [`DETECT_RECORDS`]
/// readable records have (ties: the earliest seen), with how many records agreed and how many
/// were looked at; `None` when no line is a record of a known layout.
pub fn detect_layout<'a>(
    lines: impl IntoIterator<Item = &'a str>,
) -> Option<(InputFormat, usize, usize)> {
    let mut seen: Vec<(InputFormat, usize)> = Vec::new();
    let mut looked = 0;
    for layout in lines.into_iter().filter_map(InputFormat::of_record) {
        looked += 1;
        match seen.iter_mut().find(|(l, _)| *l == layout) {
            Some((_, n)) => *n += 1,
            None => seen.push((layout, 1)),
        }
        if looked == DETECT_RECORDS {
            break;
        }
    }
    let best = seen.iter().map(|(_, n)| *n).max()?;
    let (layout, agreed) = seen.into_iter().find(|(_, n)| *n == best)?;
    Some((layout, agreed, looked))
}

/// The layout found in one input file, as a run records it for `input.format = "auto"` (the
/// manifest's shard entry, the report, the log) and `sluice screen` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectedLayout {
    /// `chat`, `sharegpt`, `alpaca`, `prompt-completion`, `text`; `unknown` when none of the
    /// file's first records has a known layout.
    pub layout: String,
    /// Of the first records looked at, how many have that layout (fewer: a mixed file).
    pub agreeing: usize,
    pub looked_at: usize,
}

/// [`detect_layout`] on the first lines of a local JSONL file (any compression); `None` for a
/// Parquet file (its columns, not its records, say what it holds) or one that cannot be opened
/// (the run reports that as the shard's error).
pub fn detect_file_layout(path: &std::path::Path) -> Option<DetectedLayout> {
    use std::io::BufRead;
    if !path.is_file() || path.extension().is_some_and(|e| e == "parquet") {
        return None;
    }
    let (_, reader) = sluice_io::open_shard(path).ok()?;
    let mut lines = Vec::new();
    // Blank and unreadable lines do not count as records: look a little further than needed.
    for line in reader.split(b'\n').take(4 * DETECT_RECORDS) {
        let Ok(line) = line else { break };
        // A line too long to be worth parsing here is left to the run's own errors.
        if line.len() <= 1 << 20 {
            lines.push(String::from_utf8_lossy(&line).into_owned());
        }
    }
    Some(match detect_layout(lines.iter().map(String::as_str)) {
        Some((layout, agreeing, looked_at)) => DetectedLayout {
            layout: layout.name().to_string(),
            agreeing,
            looked_at,
        },
        None => DetectedLayout {
            layout: "unknown".to_string(),
            agreeing: 0,
            looked_at: 0,
        },
    })
}

/// A role as the input spells it, in sluice's names: ShareGPT's `human` is `user`, `gpt` (and
/// `chatgpt`) `assistant`; any other role as it is.
pub(crate) fn normalize_role(role: Cow<'_, str>) -> Cow<'_, str> {
    match role.as_ref() {
        "human" => Cow::Borrowed("user"),
        "gpt" | "chatgpt" => Cow::Borrowed("assistant"),
        _ => role,
    }
}

/// Extracts text and id from lines. Built once per run.
#[derive(Clone, Debug)]
pub struct FieldExtractor {
    text: FieldPath,
    id: Option<FieldPath>,
    text_name: String,
    /// Several text sources (`input.text_fields` or a format): the multi-part walk.
    multi: Option<MultiFields>,
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
            multi: None,
        }
    }

    /// An extractor of several text sources (and `id_field`). `Err` says which source path is
    /// not valid.
    pub fn with_sources(
        sources: &[TextSource],
        id_field: Option<&str>,
    ) -> Result<FieldExtractor, String> {
        let multi = MultiFields::new(sources, id_field)?;
        let mut extractor = FieldExtractor::new(&multi.names, id_field);
        extractor.multi = Some(multi);
        Ok(extractor)
    }

    /// Whether it reads the one `text_field` (documents without parts).
    pub fn is_single(&self) -> bool {
        self.multi.is_none()
    }

    /// Whether documents have parts with roles (some source names a role).
    pub fn has_roles(&self) -> bool {
        self.multi.as_ref().is_some_and(|m| m.has_roles)
    }

    /// The configured text field, as written (`metadata.body`; the sources, comma-separated).
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
                Ok(self.extract_exact(fixed.as_bytes())?.into_owned())
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
        // SIMD validation (several times std's speed on non-ASCII text); std's only to name the
        // bad byte.
        let line = match simdutf8::basic::from_utf8(line) {
            Ok(line) => line,
            Err(_) => {
                let valid_up_to =
                    std::str::from_utf8(line).map_or_else(|e| e.valid_up_to(), str::len);
                return Err(LineError::new(
                    "invalid_utf8",
                    format!("invalid utf-8 at byte {valid_up_to}"),
                ));
            }
        };
        if let Some(multi) = &self.multi {
            return multi.extract(line);
        }
        // On the stack: one document, two paths at most (text and id); no allocation per line.
        let mut wanted: SmallVec<[(&[String], Slot); 2]> =
            smallvec![(&self.text.0[..], Slot::Text)];
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
        Ok(Document::single(text, id))
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
        let mut here: SmallVec<[(&[String], Slot); 2]> = SmallVec::new();
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

/// Array indices a multi-part walk can hold: at most this many `[*]`/`[N]` in a source path.
pub(crate) const MAX_INDICES: usize = 4;

/// The array indices on the way to a value (one per `[*]` or `[N]` passed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Indices {
    at: [u32; MAX_INDICES],
    len: u8,
}

impl Indices {
    fn push(mut self, i: u32) -> Indices {
        self.at[usize::from(self.len)] = i;
        self.len += 1;
        self
    }
    fn as_slice(&self) -> &[u32] {
        &self.at[..usize::from(self.len)]
    }
    fn starts_with(&self, prefix: &Indices) -> bool {
        self.as_slice().starts_with(prefix.as_slice())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Each,
    Index(u32),
}

/// Parses `messages[*].content`, `a.b[2].c`: dotted keys, each followed by any `[*]` / `[N]`.
pub(crate) fn parse_segments(path: &str) -> Result<Vec<Seg>, String> {
    let bad = |why: &str| format!("field {path:?}: {why}");
    let mut segs = Vec::new();
    for piece in path.split('.') {
        let (key, mut rest) = piece.split_at(piece.find('[').unwrap_or(piece.len()));
        if key.is_empty() {
            return Err(bad("every dotted part must start with a field name"));
        }
        segs.push(Seg::Key(key.to_string()));
        while !rest.is_empty() {
            let close = rest
                .find(']')
                .filter(|_| rest.starts_with('['))
                .ok_or_else(|| bad("brackets hold `*` or an index: `messages[*].content`"))?;
            segs.push(match &rest[1..close] {
                "*" => Seg::Each,
                n => Seg::Index(
                    n.parse()
                        .map_err(|_| bad("brackets hold `*` or an index: `messages[*].content`"))?,
                ),
            });
            rest = &rest[close + 1..];
        }
    }
    if segs.iter().filter(|s| !matches!(s, Seg::Key(_))).count() > MAX_INDICES {
        return Err(bad(&format!("at most {MAX_INDICES} array steps")));
    }
    Ok(segs)
}

/// `segs` written out with the indices of `at` (and a content part's index).
fn format_path(segs: &[Seg], at: &Indices, sub: Option<u32>) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut indices = at.as_slice().iter();
    for seg in segs {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Each | Seg::Index(_) => {
                let _ = write!(out, "[{}]", indices.next().copied().unwrap_or(0));
            }
        }
    }
    if let Some(j) = sub {
        let _ = write!(out, "[{j}].text");
    }
    out
}

/// What a walked path is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    Text(u16),
    Role(u16),
    Id,
}

#[derive(Clone, Debug)]
struct SourceSpec {
    segs: Vec<Seg>,
    role: Option<String>,
    role_segs: Option<Vec<Seg>>,
}

/// The multi-part walk: every source's text (and role) paths and the id path, walked at once.
#[derive(Clone, Debug)]
struct MultiFields {
    wants: Vec<(Vec<Seg>, Want)>,
    sources: Vec<SourceSpec>,
    /// The source paths, comma-separated, for messages.
    names: String,
    has_roles: bool,
}

impl MultiFields {
    fn new(sources: &[TextSource], id_field: Option<&str>) -> Result<MultiFields, String> {
        if sources.is_empty() {
            return Err("name at least one text source".into());
        }
        if sources.len() > usize::from(u16::MAX) {
            return Err("too many text sources".into());
        }
        let mut wants = Vec::new();
        let mut specs = Vec::new();
        for (i, source) in sources.iter().enumerate() {
            let segs = parse_segments(&source.path)?;
            let role_segs = match (&source.role, &source.role_field) {
                (Some(_), Some(_)) => {
                    return Err(format!(
                        "source {:?}: give `role` or `role_field`, not both",
                        source.path
                    ))
                }
                (Some(role), None) if role.is_empty() => {
                    return Err(format!("source {:?}: `role` is empty", source.path))
                }
                (_, Some(field)) => {
                    if !matches!(segs.last(), Some(Seg::Key(_))) {
                        return Err(format!(
                            "source {:?}: `role_field` needs a path that ends with a field name",
                            source.path
                        ));
                    }
                    let own = parse_segments(field)?;
                    if own.iter().any(|s| !matches!(s, Seg::Key(_))) {
                        return Err(format!("role_field {field:?}: a dotted path, no brackets"));
                    }
                    let mut role = segs[..segs.len() - 1].to_vec();
                    role.extend(own);
                    wants.push((role.clone(), Want::Role(i as u16)));
                    Some(role)
                }
                _ => None,
            };
            wants.push((segs.clone(), Want::Text(i as u16)));
            specs.push(SourceSpec {
                segs,
                role: source.role.clone(),
                role_segs,
            });
        }
        if let Some(id) = id_field {
            let segs = parse_segments(id)?;
            if segs.iter().any(|s| !matches!(s, Seg::Key(_))) {
                return Err(format!("id field {id:?}: a dotted path, no brackets"));
            }
            wants.push((segs, Want::Id));
        }
        Ok(MultiFields {
            wants,
            names: sources
                .iter()
                .map(|s| s.path.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            has_roles: sources.iter().any(TextSource::has_role),
            sources: specs,
        })
    }

    fn extract<'a>(&self, line: &'a str) -> Result<Document<'a>, LineError> {
        let wanted: Vec<(&[Seg], Want)> = self
            .wants
            .iter()
            .map(|(segs, want)| (segs.as_slice(), *want))
            .collect();
        let mut found = MultiFound::default();
        let mut de = serde_json::Deserializer::from_str(line);
        Walk {
            wanted: &wanted,
            depth: 0,
            at: Indices::default(),
            found: &mut found,
            top: true,
        }
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| {
            if found.not_object {
                LineError::new("not_an_object", "line is not a json object")
            } else {
                LineError::new("invalid_json", format!("invalid json: {e}"))
            }
        })?;
        let mut id = None;
        let mut texts = Vec::new();
        let mut roles = Vec::new();
        // The first unusable field in part order is the one reported.
        let mut bad: Option<BadField> = None;
        let mut note_bad = |b: BadField| {
            if bad.as_ref().is_none_or(|old| b.order() < old.order()) {
                bad = Some(b);
            }
        };
        for (want, at, value) in found.items {
            match (want, value) {
                (Want::Id, Got::Str(s)) => id = Some(s.into_owned()),
                (Want::Id, Got::Number(n)) => id = Some(n),
                (Want::Id, _) => {}
                (Want::Text(src), Got::Str(s)) => texts.push((src, at, None, s)),
                (Want::Text(src), Got::Part(j, s)) => texts.push((src, at, Some(j), s)),
                (Want::Text(_), Got::Null) => {}
                (Want::Text(src), Got::Bad(sub, kind, what)) => note_bad(BadField {
                    src,
                    at,
                    sub,
                    is_role: false,
                    kind,
                    what,
                }),
                (Want::Text(src), other @ (Got::Number(_) | Got::Other(_) | Got::Parts(_))) => {
                    note_bad(BadField {
                        src,
                        at,
                        sub: None,
                        is_role: false,
                        kind: "text_not_string",
                        what: format!("is {}, not a string", other.kind()),
                    })
                }
                (Want::Role(src), Got::Str(s)) => roles.push((src, at, normalize_role(s))),
                (Want::Role(src), other) => note_bad(BadField {
                    src,
                    at,
                    sub: None,
                    is_role: true,
                    kind: "role_not_string",
                    what: format!("is {}, not a string", other.kind()),
                }),
            }
        }
        texts.sort_by(|a, b| (a.0, a.1.as_slice(), a.2).cmp(&(b.0, b.1.as_slice(), b.2)));
        for (src, at, _, _) in &texts {
            let spec = &self.sources[usize::from(*src)];
            if spec.role_segs.is_some() && !roles.iter().any(|(s, a, _)| s == src && a == at) {
                note_bad(BadField {
                    src: *src,
                    at: *at,
                    sub: None,
                    is_role: true,
                    kind: "missing_role",
                    what: "is missing".into(),
                });
            }
        }
        if let Some(b) = bad {
            let spec = &self.sources[usize::from(b.src)];
            let path = match (&spec.role_segs, b.is_role) {
                (Some(role), true) => format_path(role, &b.at, None),
                _ => match b.sub {
                    // A content part: `messages[1].content[0]`, not `.text` (it may lack one).
                    Some(j) => format!("{}[{j}]", format_path(&spec.segs, &b.at, None)),
                    None => format_path(&spec.segs, &b.at, None),
                },
            };
            return Err(LineError::new(b.kind, format!("field `{path}` {}", b.what)));
        }
        if texts.is_empty() {
            return Err(LineError::new(
                "missing_text",
                format!(
                    "no text in {}: the fields are missing, null or empty",
                    self.names
                ),
            ));
        }
        let parts = texts.into_iter().map(|(src, at, sub, text)| {
            let spec = &self.sources[usize::from(src)];
            let role = match &spec.role {
                Some(fixed) => Some(Cow::Owned(fixed.clone())),
                None => roles
                    .iter()
                    .find(|(s, a, _)| *s == src && *a == at)
                    .map(|(_, _, r)| r.clone()),
            };
            (format_path(&spec.segs, &at, sub), role, text)
        });
        Ok(Document::from_parts(id, parts))
    }
}

/// An unusable text part or role: where it is, and what is wrong.
struct BadField {
    src: u16,
    at: Indices,
    /// The element of a content list.
    sub: Option<u32>,
    is_role: bool,
    kind: &'static str,
    what: String,
}

impl BadField {
    fn order(&self) -> (u16, &[u32], Option<u32>) {
        (self.src, self.at.as_slice(), self.sub)
    }
}

/// A value found on a wanted path.
#[derive(Clone, Debug)]
enum Got<'a> {
    Str(Cow<'a, str>),
    Number(String),
    Null,
    /// Text part `j` of a content list.
    Part(u32, Cow<'a, str>),
    /// Not usable: (content part index, error kind, what is wrong).
    Bad(Option<u32>, &'static str, String),
    /// A boolean, an array, an object (for a role or an id).
    Other(&'static str),
    /// Several text parts of a content list ([`Got::Part`] each).
    Parts(Vec<Got<'a>>),
}

impl Got<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Got::Str(_) | Got::Part(..) => "a string",
            Got::Parts(_) => "an array",
            Got::Number(_) => "a number",
            Got::Null => "null",
            Got::Bad(..) => "not a string",
            Got::Other(kind) => kind,
        }
    }
}

#[derive(Default)]
struct MultiFound<'a> {
    items: Vec<(Want, Indices, Got<'a>)>,
    not_object: bool,
}

/// Visits a value on the way along wanted paths (the multi-part walk).
struct Walk<'w, 'f, 'a> {
    wanted: &'w [(&'w [Seg], Want)],
    depth: usize,
    at: Indices,
    found: &'f mut MultiFound<'a>,
    top: bool,
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for Walk<'_, '_, 'a> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'a> Walk<'_, '_, 'a> {
    fn leaf(&mut self, here: &[(&[Seg], Want)], at: Indices, value: Got<'a>) {
        for &(_, want) in here.iter().filter(|(p, _)| p.len() == self.depth + 1) {
            match (want, &value) {
                // Only text takes a content list; for a role or id a list is just an array.
                (Want::Text(_), Got::Parts(parts)) => {
                    for part in parts {
                        self.found.items.push((want, at, part.clone()));
                    }
                }
                (Want::Text(_), _) => self.found.items.push((want, at, value.clone())),
                (_, Got::Part(..) | Got::Parts(_) | Got::Bad(..)) => {
                    self.found.items.push((want, at, Got::Other("an array")))
                }
                _ => self.found.items.push((want, at, value.clone())),
            }
        }
    }

    fn not_top<E: de::Error>(&mut self) -> Result<(), E> {
        if self.top {
            self.found.not_object = true;
            Err(E::custom("line is not a json object"))
        } else {
            Ok(())
        }
    }
}

impl<'de: 'a, 'a> Visitor<'de> for Walk<'_, '_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a json object")
    }

    fn visit_map<M: MapAccess<'de>>(mut self, mut map: M) -> Result<(), M::Error> {
        let mut here: Vec<(&[Seg], Want)> = Vec::with_capacity(self.wanted.len());
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            here.clear();
            here.extend(
                self.wanted
                    .iter()
                    .filter(|(p, _)| matches!(&p[self.depth], Seg::Key(k) if k == key.as_ref()))
                    .copied(),
            );
            if here.is_empty() {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            // A repeated key replaces the earlier one wholly (as in Python's json.loads).
            let at = self.at;
            self.found.items.retain(|(want, item_at, _)| {
                !(here.iter().any(|(_, w)| w == want) && item_at.starts_with(&at))
            });
            if here.iter().any(|(p, _)| p.len() == self.depth + 1) {
                let value = map.next_value_seed(LeafSeed)?;
                self.leaf(&here, at, value);
            } else {
                map.next_value_seed(Walk {
                    wanted: &here,
                    depth: self.depth + 1,
                    at,
                    found: &mut *self.found,
                    top: false,
                })?;
            }
        }
        Ok(())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        if self.top {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return self.not_top();
        }
        let mut here: Vec<(&[Seg], Want)> = Vec::with_capacity(self.wanted.len());
        let mut i: u32 = 0;
        loop {
            here.clear();
            here.extend(
                self.wanted
                    .iter()
                    .filter(|(p, _)| match p[self.depth] {
                        Seg::Each => true,
                        Seg::Index(n) => n == i,
                        Seg::Key(_) => false,
                    })
                    .copied(),
            );
            let at = self.at.push(i);
            let more = if here.is_empty() {
                seq.next_element::<IgnoredAny>()?.is_some()
            } else if here.iter().any(|(p, _)| p.len() == self.depth + 1) {
                match seq.next_element_seed(LeafSeed)? {
                    Some(value) => {
                        self.leaf(&here, at, value);
                        true
                    }
                    None => false,
                }
            } else {
                seq.next_element_seed(Walk {
                    wanted: &here,
                    depth: self.depth + 1,
                    at,
                    found: &mut *self.found,
                    top: false,
                })?
                .is_some()
            };
            if !more {
                return Ok(());
            }
            i = i.saturating_add(1);
        }
    }
    fn visit_str<E: de::Error>(mut self, _: &str) -> Result<(), E> {
        self.not_top()
    }
    fn visit_bool<E: de::Error>(mut self, _: bool) -> Result<(), E> {
        self.not_top()
    }
    fn visit_i64<E: de::Error>(mut self, _: i64) -> Result<(), E> {
        self.not_top()
    }
    fn visit_u64<E: de::Error>(mut self, _: u64) -> Result<(), E> {
        self.not_top()
    }
    fn visit_f64<E: de::Error>(mut self, _: f64) -> Result<(), E> {
        self.not_top()
    }
    fn visit_unit<E: de::Error>(mut self) -> Result<(), E> {
        self.not_top()
    }
}

/// A value at the end of a wanted path: a string, or an OpenAI-style list of content parts.
struct LeafSeed;

impl<'de> DeserializeSeed<'de> for LeafSeed {
    type Value = Got<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Got<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for LeafSeed {
    type Value = Got<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any json value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Got<'de>, E> {
        Ok(Got::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Got<'de>, E> {
        Ok(Got::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Got<'de>, E> {
        Ok(Got::Str(Cow::Owned(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Got<'de>, E> {
        Ok(Got::Number(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Got<'de>, E> {
        Ok(Got::Number(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Got<'de>, E> {
        Ok(Got::Number(v.to_string()))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Got<'de>, E> {
        Ok(Got::Bad(
            None,
            "text_not_string",
            "is a boolean, not a string".into(),
        ))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Got<'de>, E> {
        Ok(Got::Null)
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Got<'de>, M::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Got::Bad(
            None,
            "text_not_string",
            "is an object, not a string".into(),
        ))
    }
    /// A list of content parts: `{"type": "text", "text": ...}` are read (each its own part),
    /// other types (`image_url`, `input_audio`) skipped. The first unusable element is reported.
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Got<'de>, A::Error> {
        let mut first: Option<Got<'de>> = None;
        let mut texts = Vec::new();
        let mut j: u32 = 0;
        while let Some(part) = seq.next_element::<ContentPart<'de>>()? {
            match part {
                ContentPart::Text(text) => texts.push(Got::Part(j, text)),
                ContentPart::Skip => {}
                ContentPart::Bad(what) => {
                    first.get_or_insert(Got::Bad(Some(j), "text_not_string", what));
                }
            }
            j = j.saturating_add(1);
        }
        Ok(match (first, texts.len()) {
            (Some(bad), _) => bad,
            (None, 0) => Got::Null,
            (None, 1) => texts.pop().expect("one"),
            // Several text parts: carried as a list, unpacked by the caller.
            (None, _) => Got::Parts(texts),
        })
    }
}

/// One element of a content list.
enum ContentPart<'a> {
    Text(Cow<'a, str>),
    Skip,
    Bad(String),
}

impl<'de> Deserialize<'de> for ContentPart<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ContentPartVisitor)
    }
}

struct ContentPartVisitor;

impl<'de> Visitor<'de> for ContentPartVisitor {
    type Value = ContentPart<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a content part")
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<ContentPart<'de>, M::Error> {
        let (mut kind, mut text): (Option<Got<'de>>, Option<Got<'de>>) = (None, None);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "type" => kind = Some(map.next_value_seed(ScalarSeed)?),
                "text" => text = Some(map.next_value_seed(ScalarSeed)?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(match (kind, text) {
            (Some(Got::Str(k)), Some(Got::Str(t))) if k == "text" => ContentPart::Text(t),
            (Some(Got::Str(k)), Some(other)) if k == "text" => ContentPart::Bad(format!(
                "is a text part whose `text` is {}, not a string",
                other.kind()
            )),
            (Some(Got::Str(k)), None) if k == "text" => {
                ContentPart::Bad("is a text part without `text`".into())
            }
            (Some(Got::Str(_)), _) => ContentPart::Skip,
            _ => ContentPart::Bad("is a content part without a string `type`".into()),
        })
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<ContentPart<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(ContentPart::Bad("is an array, not a content part".into()))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<ContentPart<'de>, E> {
        Ok(ContentPart::Bad("is a string, not a content part".into()))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<ContentPart<'de>, E> {
        Ok(ContentPart::Bad("is a boolean, not a content part".into()))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<ContentPart<'de>, E> {
        Ok(ContentPart::Bad("is a number, not a content part".into()))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<ContentPart<'de>, E> {
        Ok(ContentPart::Bad("is a number, not a content part".into()))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<ContentPart<'de>, E> {
        Ok(ContentPart::Bad("is a number, not a content part".into()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<ContentPart<'de>, E> {
        Ok(ContentPart::Bad("is null, not a content part".into()))
    }
}

/// A scalar inside a content part (its `type` or `text`).
struct ScalarSeed;

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = Got<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Got<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarSeed {
    type Value = Got<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any json value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Got<'de>, E> {
        Ok(Got::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Got<'de>, E> {
        Ok(Got::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Got<'de>, E> {
        Ok(Got::Str(Cow::Owned(v)))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Got<'de>, E> {
        Ok(Got::Other("a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Got<'de>, E> {
        Ok(Got::Other("a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Got<'de>, E> {
        Ok(Got::Other("a number"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Got<'de>, E> {
        Ok(Got::Other("a boolean"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Got<'de>, E> {
        Ok(Got::Other("null"))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Got<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Got::Other("an array"))
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Got<'de>, M::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Got::Other("an object"))
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

    fn multi(format: InputFormat) -> FieldExtractor {
        FieldExtractor::with_sources(&format.sources().unwrap(), Some("id")).unwrap()
    }

    fn parts(doc: &Document<'_>) -> Vec<(String, Option<String>, String)> {
        doc.parts
            .iter()
            .map(|p| {
                (
                    p.path.clone(),
                    p.role.as_deref().map(str::to_string),
                    doc.part_text(p).to_string(),
                )
            })
            .collect()
    }

    fn part(path: &str, role: &str, text: &str) -> (String, Option<String>, String) {
        (path.into(), Some(role.into()), text.into())
    }

    #[test]
    fn chat_messages_are_parts_with_roles_joined_by_the_separator() {
        let line = br#"{"id": "c1", "messages": [{"role": "system", "content": "be kind"}, {"content": "hi", "role": "user"}, {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "b"}]}, {"role": "assistant", "content": null, "tool_calls": []}]}"#;
        let doc = multi(InputFormat::Chat).extract(line).unwrap();
        assert_eq!(doc.id.as_deref(), Some("c1"));
        assert_eq!(
            parts(&doc),
            [
                part("messages[0].content", "system", "be kind"),
                part("messages[1].content", "user", "hi"),
                part("messages[2].content[0].text", "assistant", "a"),
                part("messages[2].content[2].text", "assistant", "b"),
            ]
        );
        assert_eq!(doc.text, "be kind\n\nhi\n\na\n\nb");
        assert_eq!(doc.roles(), ["system", "user", "assistant"]);
        // A span maps back to its part; one across the separator to none.
        assert_eq!(doc.part_at(9, 11).unwrap().path, "messages[1].content");
        assert!(doc.part_at(8, 10).is_none());
    }

    #[test]
    fn sharegpt_alpaca_and_prompt_completion() {
        let doc = multi(InputFormat::Sharegpt)
            .extract(br#"{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "r"}, {"from": "system", "value": "s"}]}"#)
            .unwrap();
        assert_eq!(
            parts(&doc),
            [
                part("conversations[0].value", "user", "q"),
                part("conversations[1].value", "assistant", "r"),
                part("conversations[2].value", "system", "s"),
            ]
        );
        // Alpaca: sources in config order whatever the key order; a missing `input` is normal.
        let doc = multi(InputFormat::Alpaca)
            .extract(br#"{"output": "o", "instruction": "i"}"#)
            .unwrap();
        assert_eq!(
            parts(&doc),
            [
                part("instruction", "user", "i"),
                part("output", "assistant", "o")
            ]
        );
        let doc = multi(InputFormat::PromptCompletion)
            .extract(br#"{"prompt": "p", "completion": "c"}"#)
            .unwrap();
        assert_eq!(
            parts(&doc),
            [
                part("prompt", "user", "p"),
                part("completion", "assistant", "c")
            ]
        );
        // One part keeps its text borrowed.
        let doc = multi(InputFormat::Alpaca)
            .extract(br#"{"instruction": "only"}"#)
            .unwrap();
        assert!(matches!(doc.text, Cow::Borrowed("only")));
    }

    #[test]
    fn text_fields_paths_nested_indexed_and_fixed_roles() {
        let sources: Vec<TextSource> = toml::from_str::<toml::Table>(
            r#"s = ["meta.title", {path = "turns[*].msgs[1].text", role_field = "who.name"}]"#,
        )
        .unwrap()["s"]
            .clone()
            .try_into()
            .unwrap();
        let e = FieldExtractor::with_sources(&sources, None).unwrap();
        assert!(e.has_roles());
        let doc = e
            .extract(br#"{"turns": [{"msgs": [{"text": "no"}, {"text": "yes", "who": {"name": "gpt"}}]}], "meta": {"title": "t"}}"#)
            .unwrap();
        assert_eq!(
            parts(&doc),
            [
                ("meta.title".into(), None, "t".into()),
                part("turns[0].msgs[1].text", "assistant", "yes")
            ]
        );
        for bad in ["a..b", "a[x]", "a[*", "[*].a", "a[*][*][*][*][*]"] {
            assert!(
                FieldExtractor::with_sources(&[TextSource::path(bad)], None).is_err(),
                "{bad}"
            );
        }
        assert!(FieldExtractor::with_sources(
            &[TextSource {
                role: Some("user".into()),
                ..TextSource::with_role_field("a", "r")
            }],
            None
        )
        .is_err());
    }

    #[test]
    fn bad_parts_and_roles_are_errors_naming_the_path() {
        let err = |format: InputFormat, line: &str| {
            let e = multi(format).extract(line.as_bytes()).unwrap_err();
            (e.kind, e.message)
        };
        let chat = InputFormat::Chat;
        assert_eq!(
            err(
                chat,
                r#"{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": 7}]}"#
            ),
            (
                "text_not_string",
                "field `messages[1].content` is a number, not a string".into()
            )
        );
        assert_eq!(
            err(chat, r#"{"messages": [{"role": 1, "content": "a"}]}"#),
            (
                "role_not_string",
                "field `messages[0].role` is a number, not a string".into()
            )
        );
        assert_eq!(
            err(chat, r#"{"messages": [{"content": "a"}]}"#),
            ("missing_role", "field `messages[0].role` is missing".into())
        );
        assert_eq!(
            err(chat, r#"{"messages": [{"role": "user", "content": [{"type": "text", "text": 3}]}]}"#),
            (
                "text_not_string",
                "field `messages[0].content[0]` is a text part whose `text` is a number, not a string".into()
            )
        );
        assert_eq!(
            err(
                chat,
                r#"{"messages": [{"role": "user", "content": [{"text": "x"}]}]}"#
            )
            .0,
            "text_not_string"
        );
        for line in [
            r#"{"messages": []}"#,
            r#"{"other": 1}"#,
            r#"{"messages": [{"role": "user", "content": null}]}"#,
        ] {
            assert_eq!(err(chat, line).0, "missing_text", "{line}");
        }
        assert!(
            multi(InputFormat::Alpaca)
                .extract(br#"{"input": ""}"#)
                .is_ok(),
            "an empty string is text"
        );
        assert_eq!(
            err(
                InputFormat::Alpaca,
                r#"{"instruction": "i", "output": true}"#
            ),
            (
                "text_not_string",
                "field `output` is a boolean, not a string".into()
            )
        );
        assert_eq!(err(chat, "[1]").0, "not_an_object");
        assert_eq!(err(chat, r#"{"messages": [1, 2]"#).0, "invalid_json");
    }

    #[test]
    fn repeated_keys_replace_earlier_ones_in_the_multi_walk() {
        let doc = multi(InputFormat::Chat)
            .extract(br#"{"messages": [{"role": "user", "content": "old"}], "messages": [{"role": "user", "content": "a", "content": "new"}]}"#)
            .unwrap();
        assert_eq!(parts(&doc), [part("messages[0].content", "user", "new")]);
    }

    #[test]
    fn role_views_keep_only_the_parts_of_their_roles() {
        let doc = multi(InputFormat::Chat)
            .extract(br#"{"messages": [{"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1"}, {"role": "user", "content": "u2"}]}"#)
            .unwrap();
        match doc.with_roles(&["user".into()]) {
            RoleView::Some(view) => {
                assert_eq!(view.text, "u1\n\nu2");
                assert_eq!(view.parts[1].path, "messages[2].content");
            }
            _ => panic!("a view"),
        }
        assert!(matches!(
            doc.with_roles(&["system".into()]),
            RoleView::Nothing
        ));
        assert!(matches!(
            doc.with_roles(&["user".into(), "assistant".into()]),
            RoleView::Whole(_)
        ));
    }

    #[test]
    fn lone_surrogates_in_chat_records_are_read_too() {
        let doc = multi(InputFormat::Chat)
            .extract(br#"{"messages": [{"role": "user", "content": "\ud800sarin"}]}"#)
            .unwrap();
        assert_eq!(doc.text, "\u{fffd}sarin");
    }

    #[test]
    fn auto_reads_each_layout_with_its_roles_and_detects_the_file_layout() {
        let auto =
            FieldExtractor::with_sources(&InputFormat::Auto.sources().unwrap(), None).unwrap();
        let roles = |line: &str| -> Vec<(String, String)> {
            let doc = auto.extract(line.as_bytes()).unwrap();
            doc.parts
                .iter()
                .map(|p| {
                    (
                        p.role.as_deref().unwrap_or_default().to_string(),
                        doc.text[p.range.clone()].to_string(),
                    )
                })
                .collect()
        };
        let pair = |r: &str, t: &str| (r.to_string(), t.to_string());
        let chat = r#"{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}"#;
        let sharegpt = r#"{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}"#;
        let alpaca = r#"{"instruction": "q", "output": "a"}"#;
        let prompt = r#"{"prompt": "q", "completion": "a"}"#;
        for line in [chat, sharegpt, alpaca, prompt] {
            assert_eq!(
                roles(line),
                [pair("user", "q"), pair("assistant", "a")],
                "{line}"
            );
        }
        // A record of no layout has no text: a line error, as with any format.
        assert_eq!(
            auto.extract(br#"{"body": "x"}"#).unwrap_err().kind,
            "missing_text"
        );
        // Detection: the layout most of the first records have.
        assert_eq!(
            detect_layout([chat, chat, alpaca]),
            Some((InputFormat::Chat, 2, 3))
        );
        assert_eq!(
            detect_layout(["not json", "", prompt]),
            Some((InputFormat::PromptCompletion, 1, 1))
        );
        assert_eq!(detect_layout([sharegpt]).unwrap().0, InputFormat::Sharegpt);
        assert_eq!(
            detect_layout([r#"{"text": "x"}"#]).unwrap().0,
            InputFormat::Text
        );
        assert_eq!(detect_layout(["{}", "[1]"]), None);
        assert_eq!("auto".parse::<InputFormat>(), Ok(InputFormat::Auto));
        assert_eq!(InputFormat::PromptCompletion.name(), "prompt-completion");
    }
}
