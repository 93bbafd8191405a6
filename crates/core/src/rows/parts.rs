//! Documents of parts out of Arrow rows: `input.format` / `input.text_fields` on a Parquet shard.
//!
//! Each source path is resolved once per batch against the batch's columns: keys descend into
//! struct columns, `[*]` / `[N]` into list columns (list, large list, fixed-size list). Every row
//! is then read as its JSON form would be by the JSONL walk (`document.rs`): a null struct, list
//! or text finds nothing, a role is normalized the same way, an OpenAI-style content list
//! (`list<struct<type, text, ...>>`) gives its `text` parts, and the parts, paths, roles, joined
//! text and error messages are the same as for the same record in JSONL. What JSON cannot say
//! is a column whose type can never hold the text (`messages` an int64 column, `content` a
//! column of floats): every row of the batch is an error naming the column's type, never a
//! silent skip.

use std::borrow::Cow;
use std::ops::Range;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, FixedSizeListArray, GenericListArray, StructArray};
use arrow_schema::DataType;

use super::{is_string, Value, Values};
use crate::document::{
    normalize_role, parse_segments, Document, LineError, Seg, TextSource, MAX_INDICES,
};

/// The configured text sources (validated: see [`Sources::new`]).
#[derive(Clone, Debug)]
pub(super) struct Sources {
    sources: Vec<Source>,
    /// The source paths, comma-separated, for messages (as the JSONL walk writes them).
    names: String,
}

#[derive(Clone, Debug)]
struct Source {
    segs: Vec<Seg>,
    role: Option<String>,
    /// The path of the role beside the text (`messages[*].role`).
    role_segs: Option<Vec<Seg>>,
}

impl Sources {
    /// Sources that `FieldExtractor::with_sources` accepted.
    pub(super) fn new(sources: &[TextSource]) -> Result<Sources, String> {
        let mut out = Vec::with_capacity(sources.len());
        for source in sources {
            let segs = parse_segments(&source.path)?;
            let role_segs = match &source.role_field {
                Some(field) => {
                    let mut role = segs[..segs.len().saturating_sub(1)].to_vec();
                    role.extend(parse_segments(field)?);
                    Some(role)
                }
                None => None,
            };
            out.push(Source {
                segs,
                role: source.role.clone(),
                role_segs,
            });
        }
        Ok(Sources {
            names: sources
                .iter()
                .map(|s| s.path.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            sources: out,
        })
    }

    /// The top-level columns the sources read.
    pub(super) fn roots(&self) -> impl Iterator<Item = &str> {
        self.sources.iter().filter_map(|s| match s.segs.first() {
            Some(Seg::Key(k)) => Some(k.as_str()),
            _ => None,
        })
    }

    /// The sources resolved against `batch`'s columns.
    pub(super) fn resolve<'b>(&'b self, batch: &'b arrow_array::RecordBatch) -> BatchSources<'b> {
        BatchSources {
            sources: self,
            resolved: self
                .sources
                .iter()
                .map(|s| Resolved {
                    text: Path::resolve(batch, &s.segs, Want::Text),
                    role: s
                        .role_segs
                        .as_ref()
                        .map(|segs| Path::resolve(batch, segs, Want::Role)),
                })
                .collect(),
        }
    }
}

/// The sources of one batch.
pub(super) struct BatchSources<'b> {
    sources: &'b Sources,
    resolved: Vec<Resolved<'b>>,
}

struct Resolved<'b> {
    text: Path<'b>,
    role: Option<Path<'b>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Text,
    Role,
}

/// Where a source is in a batch.
enum Path<'b> {
    /// A column or struct field on the way is not there: nothing, as a missing JSON key.
    Missing,
    /// A column on the way (or at the end) has a type that can never hold what is wanted: the
    /// error every row gets.
    Mismatch(LineError),
    Found {
        steps: Vec<Step<'b>>,
        leaf: Leaf<'b>,
    },
}

/// One step down from a column: a struct (whose nulls hide what is below) or a list.
enum Step<'b> {
    Struct(&'b dyn Array),
    List(ListOf<'b>, Option<u32>),
}

/// What is at the end of a path.
enum Leaf<'b> {
    Strings(Values<'b>),
    /// A column of the null type: every value null.
    Null,
    Content(Content<'b>),
}

/// An OpenAI-style list of content parts: `{type, text, ...}` structs.
struct Content<'b> {
    list: ListOf<'b>,
    parts: &'b StructArray,
    kind: Option<(Values<'b>, &'b DataType)>,
    text: Option<(Values<'b>, &'b DataType)>,
}

#[derive(Clone, Copy)]
enum ListOf<'b> {
    Small(&'b GenericListArray<i32>),
    Large(&'b GenericListArray<i64>),
    Fixed(&'b FixedSizeListArray),
}

impl<'b> ListOf<'b> {
    fn of(array: &'b ArrayRef) -> Option<ListOf<'b>> {
        if let Some(list) = array.as_list_opt::<i32>() {
            Some(ListOf::Small(list))
        } else if let Some(list) = array.as_list_opt::<i64>() {
            Some(ListOf::Large(list))
        } else {
            array.as_fixed_size_list_opt().map(ListOf::Fixed)
        }
    }

    fn values(self) -> &'b ArrayRef {
        match self {
            ListOf::Small(l) => l.values(),
            ListOf::Large(l) => l.values(),
            ListOf::Fixed(l) => l.values(),
        }
    }

    fn is_valid(self, i: usize) -> bool {
        match self {
            ListOf::Small(l) => l.is_valid(i),
            ListOf::Large(l) => l.is_valid(i),
            ListOf::Fixed(l) => l.is_valid(i),
        }
    }

    /// The positions in [`values`](Self::values) of row `i`'s elements.
    fn range(self, i: usize) -> Range<usize> {
        match self {
            ListOf::Small(l) => {
                let o = l.value_offsets();
                o[i] as usize..o[i + 1] as usize
            }
            ListOf::Large(l) => {
                let o = l.value_offsets();
                o[i] as usize..o[i + 1] as usize
            }
            ListOf::Fixed(l) => {
                let start = l.value_offset(i) as usize;
                start..start + l.value_length() as usize
            }
        }
    }
}

/// `segs` written out, `[*]` for a walked array (for messages about a whole column).
fn spell(segs: &[Seg]) -> String {
    let mut out = String::new();
    for seg in segs {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Each => out.push_str("[*]"),
            Seg::Index(n) => out.push_str(&format!("[{n}]")),
        }
    }
    out
}

/// A column type in messages: `int64`, `lists`, `structs`.
fn column_type(data_type: &DataType) -> String {
    match data_type {
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(..)
        | DataType::ListView(_)
        | DataType::LargeListView(_) => "lists".into(),
        DataType::Struct(_) => "structs".into(),
        DataType::Map(..) => "maps".into(),
        other => other.to_string().to_lowercase(),
    }
}

/// What a value of this type is in JSON, as the JSONL walk says it (`a number`, `an array`).
fn json_kind(data_type: &DataType) -> String {
    match data_type {
        t if t.is_numeric() => "a number".into(),
        DataType::Boolean => "a boolean".into(),
        DataType::Null => "null".into(),
        DataType::Struct(_) | DataType::Map(..) => "an object".into(),
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(..)
        | DataType::ListView(_)
        | DataType::LargeListView(_) => "an array".into(),
        t if is_string(t) => "a string".into(),
        DataType::Dictionary(_, v) => json_kind(v),
        other => other.to_string().to_lowercase(),
    }
}

impl<'b> Path<'b> {
    fn resolve(batch: &'b arrow_array::RecordBatch, segs: &[Seg], want: Want) -> Path<'b> {
        let Some(Seg::Key(column)) = segs.first() else {
            return Path::Missing;
        };
        let Some(mut array) = batch.column_by_name(column) else {
            return Path::Missing;
        };
        let (kind, wanted) = match want {
            Want::Text => ("text_not_string", "strings or content-part lists"),
            Want::Role => ("role_not_string", "strings"),
        };
        let mismatch = |upto: usize, array: &ArrayRef, of: &str| {
            let message = if upto == segs.len() {
                format!(
                    "field `{}` is a column of {}, not of {of}",
                    spell(segs),
                    column_type(array.data_type())
                )
            } else {
                format!(
                    "field `{}` cannot be read: `{}` is a column of {}, not of {of}",
                    spell(segs),
                    spell(&segs[..upto]),
                    column_type(array.data_type())
                )
            };
            Path::Mismatch(LineError { kind, message })
        };
        let mut steps = Vec::new();
        for (n, seg) in segs.iter().enumerate().skip(1) {
            // A column of the null type (pyarrow's type for a column of nothing but nulls)
            // holds nothing below, as JSON's `null` does.
            if array.data_type() == &DataType::Null {
                return Path::Missing;
            }
            match seg {
                Seg::Key(name) => {
                    let Some(parent) = array.as_struct_opt() else {
                        return mismatch(n, array, "structs");
                    };
                    let Some(child) = parent.column_by_name(name) else {
                        return Path::Missing;
                    };
                    steps.push(Step::Struct(array.as_ref()));
                    array = child;
                }
                Seg::Each | Seg::Index(_) => {
                    let Some(list) = ListOf::of(array) else {
                        return mismatch(n, array, "lists");
                    };
                    let index = match seg {
                        Seg::Index(i) => Some(*i),
                        _ => None,
                    };
                    steps.push(Step::List(list, index));
                    array = list.values();
                }
            }
        }
        let data_type = array.data_type();
        let leaf = match data_type {
            DataType::Null => Leaf::Null,
            t if is_string(t) => Leaf::Strings(Values::of(array)),
            DataType::Dictionary(_, v) if is_string(v) => Leaf::Strings(Values::of(array)),
            _ if want == Want::Text => match ListOf::of(array) {
                Some(list) => match list.values().as_struct_opt() {
                    Some(parts) => {
                        let field = |name: &str| {
                            parts
                                .column_by_name(name)
                                .map(|c| (Values::of(c), c.data_type()))
                        };
                        Leaf::Content(Content {
                            list,
                            parts,
                            kind: field("type"),
                            text: field("text"),
                        })
                    }
                    None => return mismatch(segs.len(), array, wanted),
                },
                None => return mismatch(segs.len(), array, wanted),
            },
            _ => return mismatch(segs.len(), array, wanted),
        };
        Path::Found { steps, leaf }
    }

    /// Calls `f` with the position and the indices of every value on the path in row `row`.
    fn each(&self, row: usize, mut f: impl FnMut(&Leaf<'b>, usize, At)) {
        if let Path::Found { steps, leaf } = self {
            walk(steps, row, At::default(), &mut |i, at| f(leaf, i, at));
        }
    }
}

fn walk(steps: &[Step<'_>], i: usize, at: At, f: &mut impl FnMut(usize, At)) {
    match steps.split_first() {
        None => f(i, at),
        Some((Step::Struct(array), rest)) => {
            if array.is_valid(i) {
                walk(rest, i, at, f);
            }
        }
        Some((Step::List(list, index), rest)) => {
            if !list.is_valid(i) {
                return;
            }
            let range = list.range(i);
            match index {
                None => {
                    for (j, k) in range.enumerate() {
                        walk(rest, k, at.push(j as u32), f);
                    }
                }
                Some(n) if (*n as usize) < range.len() => {
                    walk(rest, range.start + *n as usize, at.push(*n), f);
                }
                Some(_) => {}
            }
        }
    }
}

/// The array indices on the way to a value (one per `[*]` or `[N]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
struct At {
    len: u8,
    at: [u32; MAX_INDICES],
}

impl At {
    fn push(mut self, i: u32) -> At {
        self.at[usize::from(self.len)] = i;
        self.len += 1;
        self
    }
    fn as_slice(&self) -> &[u32] {
        &self.at[..usize::from(self.len)]
    }
}

/// `segs` written out with the indices of `at`: `messages[2].content`.
fn format_path(segs: &[Seg], at: &At) -> String {
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
    out
}

/// The first unusable text or role of a row, in part order (as the JSONL walk reports it).
struct Bad {
    order: (usize, At, Option<u32>),
    error: LineError,
}

impl<'b> BatchSources<'b> {
    /// Row `row` as a document of parts, or why it is not one.
    pub(super) fn document(
        &self,
        row: usize,
        id: Option<String>,
    ) -> Result<Document<'b>, LineError> {
        let mut texts: Vec<(usize, At, Option<u32>, &'b str)> = Vec::new();
        let mut roles: Vec<(usize, At, Cow<'b, str>)> = Vec::new();
        let mut bad: Option<Bad> = None;
        let mut note = |order: (usize, At, Option<u32>), kind: &'static str, message: String| {
            let earlier = |old: &Bad| {
                (old.order.0, old.order.1.as_slice(), old.order.2)
                    <= (order.0, order.1.as_slice(), order.2)
            };
            if !bad.as_ref().is_some_and(earlier) {
                bad = Some(Bad {
                    order,
                    error: LineError { kind, message },
                });
            }
        };
        for (src, (source, resolved)) in self.sources.sources.iter().zip(&self.resolved).enumerate()
        {
            // A text column that cannot be read is what is reported, before its role's.
            if let Path::Mismatch(e) = &resolved.text {
                note((src, At::default(), None), e.kind, e.message.clone());
            }
            if let (Some(path), Some(role_segs)) = (&resolved.role, &source.role_segs) {
                if let Path::Mismatch(e) = path {
                    note((src, At::default(), None), e.kind, e.message.clone());
                }
                path.each(row, |leaf, i, at| {
                    let value = match leaf {
                        Leaf::Strings(values) => values.get(i),
                        _ => Value::Null,
                    };
                    match value {
                        Value::Str(role) => {
                            roles.push((src, at, normalize_role(Cow::Borrowed(role))))
                        }
                        Value::Null => note(
                            (src, at, None),
                            "role_not_string",
                            format!(
                                "field `{}` is null, not a string",
                                format_path(role_segs, &at)
                            ),
                        ),
                        Value::Other(kind) => note(
                            (src, at, None),
                            "role_not_string",
                            format!(
                                "field `{}` is {kind}, not a string",
                                format_path(role_segs, &at)
                            ),
                        ),
                    }
                });
            }
            resolved.text.each(row, |leaf, i, at| match leaf {
                Leaf::Null => {}
                Leaf::Strings(values) => {
                    if let Value::Str(text) = values.get(i) {
                        texts.push((src, at, None, text));
                    }
                }
                Leaf::Content(content) => {
                    if !content.list.is_valid(i) {
                        return;
                    }
                    for (j, k) in content.list.range(i).enumerate() {
                        let j = j as u32;
                        match content.part(k) {
                            Ok(Some(text)) => texts.push((src, at, Some(j), text)),
                            Ok(None) => {}
                            Err(what) => note(
                                (src, at, Some(j)),
                                "text_not_string",
                                format!("field `{}[{j}]` {what}", format_path(&source.segs, &at)),
                            ),
                        }
                    }
                }
            });
        }
        for &(src, at, _, _) in &texts {
            let source = &self.sources.sources[src];
            if let Some(role_segs) = &source.role_segs {
                if !roles.iter().any(|(s, a, _)| *s == src && *a == at) {
                    note(
                        (src, at, None),
                        "missing_role",
                        format!("field `{}` is missing", format_path(role_segs, &at)),
                    );
                }
            }
        }
        if let Some(bad) = bad {
            return Err(bad.error);
        }
        if texts.is_empty() {
            return Err(LineError {
                kind: "missing_text",
                message: format!(
                    "no text in {}: the fields are missing, null or empty",
                    self.sources.names
                ),
            });
        }
        let parts = texts.into_iter().map(|(src, at, sub, text)| {
            let source = &self.sources.sources[src];
            let role = match &source.role {
                Some(fixed) => Some(Cow::Owned(fixed.clone())),
                None => roles
                    .iter()
                    .find(|(s, a, _)| *s == src && *a == at)
                    .map(|(_, _, r)| r.clone()),
            };
            let mut path = format_path(&source.segs, &at);
            if let Some(j) = sub {
                path.push_str(&format!("[{j}].text"));
            }
            (path, role, Cow::Borrowed(text))
        });
        Ok(Document::from_parts(id, parts))
    }
}

impl<'b> Content<'b> {
    /// Content part `k` (a position in the parts struct): its text, `None` for a part that is
    /// not text (an image), or what is wrong with it (as the JSONL walk says it).
    fn part(&self, k: usize) -> Result<Option<&'b str>, String> {
        if self.parts.is_null(k) {
            return Err("is null, not a content part".into());
        }
        let is_text = match self.kind.as_ref().map(|(v, _)| v.get(k)) {
            Some(Value::Str(kind)) => kind == "text",
            _ => return Err("is a content part without a string `type`".into()),
        };
        if !is_text {
            return Ok(None);
        }
        match &self.text {
            None => Err("is a text part without `text`".into()),
            Some((values, data_type)) => match values.get(k) {
                Value::Str(text) => Ok(Some(text)),
                Value::Null => Err("is a text part whose `text` is null, not a string".into()),
                Value::Other(_) => Err(format!(
                    "is a text part whose `text` is {}, not a string",
                    json_kind(data_type)
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{row_json, RowFields};
    use crate::document::{FieldExtractor, InputFormat, TextSource};
    use arrow_array::builder::StringDictionaryBuilder;
    use arrow_array::types::Int8Type;
    use arrow_array::{
        ArrayRef, FixedSizeListArray, Int64Array, LargeListArray, ListArray, NullArray,
        RecordBatch, StringArray, StringViewArray, StructArray,
    };
    use arrow_buffer::{NullBuffer, OffsetBuffer};
    use arrow_schema::{Field, Fields};
    use std::sync::Arc;

    fn strings(values: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringArray::from(values.to_vec()))
    }

    fn structs(fields: Vec<(&str, ArrayRef)>, valid: Option<Vec<bool>>) -> ArrayRef {
        let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) = fields
            .into_iter()
            .map(|(name, a)| (Field::new(name, a.data_type().clone(), true), a))
            .unzip();
        Arc::new(StructArray::new(
            Fields::from(fields),
            arrays,
            valid.map(NullBuffer::from),
        ))
    }

    /// A list column of `values`, row `i` holding `lengths[i]` of them (`None`: a null list).
    fn list(values: ArrayRef, lengths: &[Option<usize>]) -> ArrayRef {
        let offsets = OffsetBuffer::from_lengths(lengths.iter().map(|l| l.unwrap_or(0)));
        let nulls = NullBuffer::from(lengths.iter().map(Option::is_some).collect::<Vec<_>>());
        let field = Arc::new(Field::new("item", values.data_type().clone(), true));
        Arc::new(ListArray::new(field, offsets, values, Some(nulls)))
    }

    fn large_list(values: ArrayRef, lengths: &[usize]) -> ArrayRef {
        let offsets = OffsetBuffer::from_lengths(lengths.iter().copied());
        let field = Arc::new(Field::new("item", values.data_type().clone(), true));
        Arc::new(LargeListArray::new(field, offsets, values, None))
    }

    /// For every row: the row's document (paths, roles, texts, text, id) or error, as read from
    /// the batch and as the JSONL extractor reads the row's JSON.
    fn both(
        batch: &RecordBatch,
        sources: &[TextSource],
        id: Option<&str>,
    ) -> Vec<(String, String)> {
        let fields = RowFields::with_sources(sources, id).unwrap();
        let extractor = FieldExtractor::with_sources(sources, id).unwrap();
        let columns = fields.columns(batch);
        let show =
            |doc: Result<crate::document::Document<'_>, crate::document::LineError>| match doc {
                Ok(doc) => format!(
                    "{:?} {:?} {:?}",
                    doc.text,
                    doc.id,
                    doc.parts
                        .iter()
                        .map(|p| (p.path.clone(), p.role.clone(), p.range.clone()))
                        .collect::<Vec<_>>()
                ),
                Err(e) => format!("{}: {}", e.kind, e.message),
            };
        (0..batch.num_rows())
            .map(|row| {
                let line = row_json(batch, row, &fields.roots()).to_string();
                (
                    show(columns.document(row)),
                    show(extractor.extract(line.as_bytes())),
                )
            })
            .collect()
    }

    fn assert_same(pairs: &[(String, String)]) {
        for (row, (parquet, jsonl)) in pairs.iter().enumerate() {
            assert_eq!(parquet, jsonl, "row {row}");
        }
    }

    #[test]
    fn chat_rows_are_the_documents_their_json_is() {
        // Messages: row 0 three, row 1 one with a null content, row 2 an empty list, row 3 a null
        // list, row 4 a null role, row 5 a null message, row 6 ShareGPT-style names.
        let roles = strings(&[
            Some("system"),
            Some("user"),
            Some("assistant"),
            Some("user"),
            None,
            Some("user"),
            Some("human"),
            Some("gpt"),
        ]);
        let contents = strings(&[
            Some("be kind"),
            Some("hi"),
            Some("hello"),
            None,
            Some("who?"),
            Some("x"),
            Some("q"),
            Some("r"),
        ]);
        let messages = structs(
            vec![("role", roles), ("content", contents)],
            Some(vec![true, true, true, true, true, false, true, true]),
        );
        let batch = RecordBatch::try_from_iter([
            (
                "messages",
                list(
                    messages,
                    &[Some(3), Some(1), Some(0), None, Some(1), Some(1), Some(2)],
                ),
            ),
            (
                "id",
                Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5, 6, 7])) as ArrayRef,
            ),
        ])
        .unwrap();
        let pairs = both(&batch, &InputFormat::Chat.sources().unwrap(), Some("id"));
        assert_same(&pairs);
        assert!(pairs[0].0.contains("messages[2].content"), "{}", pairs[0].0);
        assert!(pairs[1].0.starts_with("missing_text"), "{}", pairs[1].0);
        assert!(pairs[3].0.starts_with("missing_text"));
        assert_eq!(
            pairs[4].0,
            "role_not_string: field `messages[0].role` is null, not a string"
        );
        // A null message is nothing (a JSON null in the array): the row has no text.
        assert!(pairs[5].0.starts_with("missing_text"));
        assert!(pairs[6].0.contains("\"assistant\""), "{}", pairs[6].0);
    }

    #[test]
    fn content_part_lists_nested_paths_indices_and_fixed_roles() {
        // Content parts: row 0 text, image, text; row 1 a null `type`; row 2 a `text` part
        // whose text is null; row 3 only an image.
        let kinds = strings(&[
            Some("text"),
            Some("image_url"),
            Some("text"),
            None,
            Some("text"),
            Some("image_url"),
        ]);
        let texts = strings(&[Some("a"), None, Some("b"), Some("c"), None, None]);
        let parts = structs(vec![("type", kinds), ("text", texts)], None);
        let content = list(parts, &[Some(3), Some(1), Some(1), Some(1)]);
        let role = Arc::new(StringViewArray::from(vec!["user"; 4])) as ArrayRef;
        let mut from = StringDictionaryBuilder::<Int8Type>::new();
        for _ in 0..4 {
            from.append_value("gpt");
        }
        let who = structs(vec![("name", Arc::new(from.finish()) as ArrayRef)], None);
        let turn = structs(
            vec![("content", content), ("role", role), ("who", who)],
            None,
        );
        let turns = large_list(turn, &[1, 1, 1, 1]);
        let title = structs(
            vec![(
                "title",
                strings(&[Some("t0"), None, Some("t2"), Some("t3")]),
            )],
            Some(vec![true, true, false, true]),
        );
        let pair = Arc::new(FixedSizeListArray::new(
            Arc::new(Field::new("item", arrow_schema::DataType::Utf8, true)),
            2,
            strings(&[
                Some("p0"),
                Some("q0"),
                Some("p1"),
                None,
                Some("p2"),
                Some("q2"),
                None,
                Some("q3"),
            ]),
            None,
        )) as ArrayRef;
        let batch = RecordBatch::try_from_iter([
            ("turns", turns),
            ("meta", title),
            ("pair", pair),
            ("nothing", Arc::new(NullArray::new(4)) as ArrayRef),
        ])
        .unwrap();
        let sources: Vec<TextSource> = toml::from_str::<toml::Table>(
            r#"s = [
                "meta.title",
                {path = "turns[*].content", role_field = "role"},
                {path = "turns[*].content", role_field = "who.name"},
                {path = "pair[1]", role = "assistant"},
                "nothing",
                "nothing[*].deeper",
                "nothing.deeper",
                "absent",
                "meta.absent",
            ]"#,
        )
        .unwrap()["s"]
            .clone()
            .try_into()
            .unwrap();
        let pairs = both(&batch, &sources, None);
        assert_same(&pairs);
        assert!(
            pairs[0].0.contains("turns[0].content[2].text"),
            "{}",
            pairs[0].0
        );
        assert_eq!(
            pairs[1].0,
            "text_not_string: field `turns[0].content[0]` is a content part without a string \
             `type`"
        );
        assert_eq!(
            pairs[2].0,
            "text_not_string: field `turns[0].content[0]` is a text part whose `text` is null, \
             not a string"
        );
        assert!(pairs[3].0.starts_with("\"t3\\n\\nq3\""), "{}", pairs[3].0);
    }

    #[test]
    fn columns_that_can_never_hold_the_text_or_role_are_errors_for_every_row() {
        let batch = RecordBatch::try_from_iter([
            (
                "messages",
                Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef,
            ),
            (
                "input",
                Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef,
            ),
            (
                "chat",
                list(
                    structs(
                        vec![
                            ("role", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
                            ("content", strings(&[Some("a"), Some("b")])),
                        ],
                        None,
                    ),
                    &[Some(1), Some(1)],
                ),
            ),
            (
                "words",
                list(strings(&[Some("a"), Some("b")]), &[Some(1), Some(1)]),
            ),
        ])
        .unwrap();
        let read = |sources: &[TextSource]| {
            let fields = RowFields::with_sources(sources, None).unwrap();
            let columns = fields.columns(&batch);
            (0..2)
                .map(|row| {
                    let e = columns.document(row).unwrap_err();
                    format!("{}: {}", e.kind, e.message)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            read(&InputFormat::Chat.sources().unwrap()),
            ["text_not_string: field `messages[*].content` cannot be read: `messages` is a \
                 column of int64, not of lists"; 2]
        );
        assert_eq!(
            read(&[TextSource::path("input")]),
            ["text_not_string: field `input` is a column of int64, not of strings or \
              content-part lists"; 2]
        );
        let chat_roles = [TextSource {
            role_field: Some("role".into()),
            ..TextSource::path("chat[*].content")
        }];
        assert_eq!(
            read(&chat_roles),
            ["role_not_string: field `chat[*].role` is a column of int64, not of strings"; 2]
        );
        assert_eq!(
            read(&[TextSource::path("words")]),
            ["text_not_string: field `words` is a column of lists, not of strings or \
              content-part lists"; 2]
        );
    }
}
