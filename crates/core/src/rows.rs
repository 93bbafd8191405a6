//! Documents out of Arrow record batches: the rows of a Parquet shard.
//!
//! `input.text_field` and `input.id_field` name columns; dots descend into struct columns
//! (`meta.body`). Each row's text is borrowed from the batch's string column (plain, large, view
//! or dictionary-encoded), never copied. A row whose text is null, whose text column is not a
//! string column, or that has no such column (or a null struct on the path) is an error for that
//! row, with the same kinds and messages as a JSONL line: `text_not_string`, `missing_text`.
//!
//! With several text sources (`input.format`, `input.text_fields`) a row is a document of parts,
//! read as the JSONL walk reads the same record (see [`parts`]).

mod parts;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef, LargeStringArray, RecordBatch, StringArray, StringViewArray};
use arrow_schema::DataType;

use crate::document::{Document, FieldExtractor, FieldPath, LineError, TextSource};

/// The configured fields, resolved against each batch's columns.
#[derive(Clone, Debug)]
pub struct RowFields {
    text: FieldPath,
    id: Option<FieldPath>,
    /// Several text sources: documents of parts.
    parts: Option<parts::Sources>,
}

impl RowFields {
    /// Fields of a validated config (an invalid path simply finds no column).
    pub fn new(text_field: &str, id_field: Option<&str>) -> RowFields {
        let path = |p: &str| {
            FieldPath::parse(p).unwrap_or_else(|_| FieldPath::parse("\u{0}").expect("one part"))
        };
        RowFields {
            text: path(text_field),
            id: id_field.map(path),
            parts: None,
        }
    }

    /// Fields of several text sources (and `id_field`), valid as for
    /// [`FieldExtractor::with_sources`]: `Err` says which path is not.
    pub fn with_sources(
        sources: &[TextSource],
        id_field: Option<&str>,
    ) -> Result<RowFields, String> {
        FieldExtractor::with_sources(sources, id_field)?;
        let mut fields = RowFields::new("\u{0}", id_field);
        fields.parts = Some(parts::Sources::new(sources)?);
        Ok(fields)
    }

    /// Whether it reads the one `text_field` (documents without parts).
    pub fn is_single(&self) -> bool {
        self.parts.is_none()
    }

    /// The top-level columns the fields read (text sources and id), each once.
    pub fn roots(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let texts: Vec<&str> = match &self.parts {
            Some(parts) => parts.roots().collect(),
            None => vec![self.text.parts()[0].as_str()],
        };
        let id = self.id.as_ref().map(|id| id.parts()[0].as_str());
        for root in texts.into_iter().chain(id) {
            if !out.iter().any(|r| r == root) {
                out.push(root.to_string());
            }
        }
        out
    }

    /// The text and id columns of `batch`.
    pub fn columns<'b>(&'b self, batch: &'b RecordBatch) -> BatchFields<'b> {
        BatchFields {
            text: match self.parts {
                Some(_) => Column::Missing,
                None => Column::find(batch, self.text.parts()),
            },
            id: self.id.as_ref().map(|id| Column::find(batch, id.parts())),
            text_name: self.text.to_string(),
            parts: self.parts.as_ref().map(|p| p.resolve(batch)),
        }
    }
}

/// The fields of one batch (see [`RowFields::columns`]).
pub struct BatchFields<'b> {
    text: Column<'b>,
    id: Option<Column<'b>>,
    text_name: String,
    parts: Option<parts::BatchSources<'b>>,
}

impl<'b> BatchFields<'b> {
    /// Row `row` as a document, or why it is not one.
    pub fn document(&self, row: usize) -> Result<Document<'b>, LineError> {
        if let Some(parts) = &self.parts {
            return parts.document(row, self.id(row));
        }
        let error = |kind, message: String| LineError { kind, message };
        let name = &self.text_name;
        let text = match &self.text {
            Column::Missing => {
                return Err(error("missing_text", format!("field `{name}` is missing")))
            }
            Column::Found { parents, values } => {
                if parents.iter().any(|p| p.is_null(row)) {
                    return Err(error("missing_text", format!("field `{name}` is missing")));
                }
                match values.get(row) {
                    Value::Str(text) => text,
                    Value::Null => {
                        return Err(error(
                            "text_not_string",
                            format!("field `{name}` is null, not a string"),
                        ))
                    }
                    Value::Other(kind) => {
                        return Err(error(
                            "text_not_string",
                            format!("field `{name}` is {kind}, not a string"),
                        ))
                    }
                }
            }
        };
        Ok(Document::single(text, self.id(row)))
    }

    /// Row `row`'s id: a string, or an integer's digits.
    fn id(&self, row: usize) -> Option<String> {
        match &self.id {
            Some(Column::Found { parents, values }) if !parents.iter().any(|p| p.is_null(row)) => {
                match values.get(row) {
                    Value::Str(id) => Some(id.to_string()),
                    _ => values.integer(row),
                }
            }
            _ => None,
        }
    }
}

/// Where a field is in a batch: its values and the struct columns above it (whose nulls hide it).
enum Column<'b> {
    Missing,
    Found {
        parents: Vec<&'b dyn Array>,
        values: Values<'b>,
    },
}

impl<'b> Column<'b> {
    fn find(batch: &'b RecordBatch, path: &[String]) -> Column<'b> {
        let Some(mut array) = batch.column_by_name(&path[0]) else {
            return Column::Missing;
        };
        let mut parents: Vec<&'b dyn Array> = Vec::new();
        for name in &path[1..] {
            // A path through something that is not a struct finds nothing, as in JSON.
            let Some(parent) = array.as_struct_opt() else {
                return Column::Missing;
            };
            let Some(child) = parent.column_by_name(name) else {
                return Column::Missing;
            };
            parents.push(array.as_ref());
            array = child;
        }
        Column::Found {
            parents,
            values: Values::of(array),
        }
    }
}

/// A column's values, as strings where it holds strings.
enum Values<'b> {
    Utf8(&'b StringArray),
    LargeUtf8(&'b LargeStringArray),
    Utf8View(&'b StringViewArray),
    /// Dictionary-encoded strings: each row's key, and the dictionary.
    Dictionary {
        array: &'b dyn Array,
        keys: Vec<usize>,
        values: Box<Values<'b>>,
    },
    Other(&'b ArrayRef),
}

enum Value<'b> {
    Str(&'b str),
    Null,
    /// Not a string: what it is (`int64`, `a list`).
    Other(String),
}

impl<'b> Values<'b> {
    fn of(array: &'b ArrayRef) -> Values<'b> {
        match array.data_type() {
            DataType::Utf8 => Values::Utf8(array.as_string()),
            DataType::LargeUtf8 => Values::LargeUtf8(array.as_string()),
            DataType::Utf8View => Values::Utf8View(array.as_string_view()),
            DataType::Dictionary(_, value) if is_string(value) => {
                let dictionary = array.as_any_dictionary();
                Values::Dictionary {
                    array: array.as_ref(),
                    keys: dictionary.normalized_keys(),
                    values: Box::new(Values::of(dictionary.values())),
                }
            }
            _ => Values::Other(array),
        }
    }

    fn get(&self, row: usize) -> Value<'b> {
        match self {
            Values::Utf8(a) if a.is_valid(row) => Value::Str(a.value(row)),
            Values::LargeUtf8(a) if a.is_valid(row) => Value::Str(a.value(row)),
            Values::Utf8View(a) if a.is_valid(row) => Value::Str(a.value(row)),
            Values::Dictionary {
                array,
                keys,
                values,
            } if array.is_valid(row) => values.get(keys[row]),
            Values::Other(a) if a.is_valid(row) => Value::Other(describe(a.data_type())),
            _ => Value::Null,
        }
    }

    /// An integer id as its decimal digits.
    fn integer(&self, row: usize) -> Option<String> {
        let Values::Other(array) = self else {
            return None;
        };
        if array.is_null(row) {
            return None;
        }
        macro_rules! integers {
            ($($t:ty),*) => {$(
                if let Some(a) = array.as_primitive_opt::<$t>() {
                    return Some(a.value(row).to_string());
                }
            )*};
        }
        integers!(
            Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type,
            UInt64Type
        );
        None
    }
}

fn is_string(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// The `columns` of row `row` (those the batch has) as a JSON object, as the row's record would
/// be in a JSONL shard: strings (dictionary-encoded too), numbers, booleans, structs as objects,
/// lists as arrays, nulls; values of other types (binary, dates, maps) as null. What `sluice
/// audit` shows of a Parquet row of parts, read back with the run's extractor.
pub fn row_json(batch: &RecordBatch, row: usize, columns: &[String]) -> serde_json::Value {
    let mut object = serde_json::Map::new();
    for name in columns {
        if let Some(column) = batch.column_by_name(name) {
            object.insert(name.clone(), value_json(column, row));
        }
    }
    serde_json::Value::Object(object)
}

fn value_json(array: &ArrayRef, i: usize) -> serde_json::Value {
    use serde_json::Value as Json;
    if array.is_null(i) {
        return Json::Null;
    }
    macro_rules! numbers {
        ($($t:ty),*) => {$(
            if let Some(a) = array.as_primitive_opt::<$t>() {
                return Json::from(a.value(i));
            }
        )*};
    }
    numbers!(
        Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type
    );
    if let Some(a) = array.as_primitive_opt::<arrow_array::types::Float32Type>() {
        return Json::from(f64::from(a.value(i)));
    }
    if let Some(a) = array.as_primitive_opt::<arrow_array::types::Float64Type>() {
        return Json::from(a.value(i));
    }
    match array.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(..) => {
            match Values::of(array) {
                // One value: a dictionary's keys are normalized for just this row.
                Values::Dictionary { .. } => match Values::of(&array.slice(i, 1)).get(0) {
                    Value::Str(s) => Json::from(s),
                    _ => Json::Null,
                },
                values => match values.get(i) {
                    Value::Str(s) => Json::from(s),
                    _ => Json::Null,
                },
            }
        }
        DataType::Boolean => Json::from(array.as_boolean().value(i)),
        DataType::Struct(_) => {
            let parent = array.as_struct();
            let mut object = serde_json::Map::new();
            for (field, child) in parent.fields().iter().zip(parent.columns()) {
                object.insert(field.name().clone(), value_json(child, i));
            }
            Json::Object(object)
        }
        DataType::List(_) => list_json(&array.as_list::<i32>().value(i)),
        DataType::LargeList(_) => list_json(&array.as_list::<i64>().value(i)),
        DataType::FixedSizeList(..) => list_json(&array.as_fixed_size_list().value(i)),
        _ => Json::Null,
    }
}

fn list_json(values: &ArrayRef) -> serde_json::Value {
    serde_json::Value::Array((0..values.len()).map(|j| value_json(values, j)).collect())
}

/// A column type in messages: `int64`, `binary`, `a list`, `a struct`.
fn describe(data_type: &DataType) -> String {
    match data_type {
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => "a list".into(),
        DataType::Struct(_) => "a struct".into(),
        DataType::Map(..) => "a map".into(),
        other => other.to_string().to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::builder::StringDictionaryBuilder;
    use arrow_array::types::Int32Type as Key;
    use arrow_array::{BooleanArray, Int64Array, StructArray};
    use arrow_schema::{Field, Fields};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let body = Arc::new(StringArray::from(vec![
            Some("nested a"),
            None,
            Some("nested c"),
        ]));
        let meta = StructArray::new(
            Fields::from(vec![Field::new("body", DataType::Utf8, true)]),
            vec![body as ArrayRef],
            Some(vec![true, true, false].into()),
        );
        let mut dictionary = StringDictionaryBuilder::<Key>::new();
        dictionary.append_value("same");
        dictionary.append_null();
        dictionary.append_value("same");
        RecordBatch::try_from_iter(vec![
            (
                "text",
                Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])) as ArrayRef,
            ),
            ("id", Arc::new(Int64Array::from(vec![7, 8, 9])) as ArrayRef),
            (
                "large",
                Arc::new(LargeStringArray::from(vec!["x", "y", "z"])) as ArrayRef,
            ),
            (
                "view",
                Arc::new(StringViewArray::from(vec!["v1", "v2", "v3"])) as ArrayRef,
            ),
            ("dict", Arc::new(dictionary.finish()) as ArrayRef),
            ("meta", Arc::new(meta) as ArrayRef),
            (
                "flag",
                Arc::new(BooleanArray::from(vec![true, false, true])) as ArrayRef,
            ),
        ])
        .unwrap()
    }

    fn texts(text: &str, id: Option<&str>) -> Vec<Result<(String, Option<String>), String>> {
        let batch = batch();
        let fields = RowFields::new(text, id);
        let columns = fields.columns(&batch);
        (0..3)
            .map(|row| {
                columns
                    .document(row)
                    .map(|d| (d.text.into_owned(), d.id))
                    .map_err(|e| format!("{}: {}", e.kind, e.message))
            })
            .collect()
    }

    #[test]
    fn string_columns_of_every_kind_are_read_and_nulls_are_errors() {
        assert_eq!(
            texts("text", Some("id")),
            [
                Ok(("a".into(), Some("7".into()))),
                Err("text_not_string: field `text` is null, not a string".into()),
                Ok(("c".into(), Some("9".into()))),
            ]
        );
        assert_eq!(texts("large", None)[2], Ok(("z".into(), None)));
        assert_eq!(
            texts("view", Some("text"))[0],
            Ok(("v1".into(), Some("a".into())))
        );
        assert_eq!(texts("dict", None)[2], Ok(("same".into(), None)));
        assert!(texts("dict", None)[1]
            .as_ref()
            .unwrap_err()
            .contains("null"));
    }

    #[test]
    fn dotted_paths_reach_struct_fields_and_a_null_struct_hides_them() {
        assert_eq!(
            texts("meta.body", Some("id")),
            [
                Ok(("nested a".into(), Some("7".into()))),
                Err("text_not_string: field `meta.body` is null, not a string".into()),
                Err("missing_text: field `meta.body` is missing".into()),
            ]
        );
        assert_eq!(
            texts("meta.nothing", None)[0],
            Err("missing_text: field `meta.nothing` is missing".into())
        );
        assert_eq!(
            texts("text.deeper", None)[0],
            Err("missing_text: field `text.deeper` is missing".into())
        );
    }

    #[test]
    fn a_column_that_is_not_text_is_an_error_per_row() {
        assert_eq!(
            texts("id", None)[0],
            Err("text_not_string: field `id` is int64, not a string".into())
        );
        assert_eq!(
            texts("meta", None)[0],
            Err("text_not_string: field `meta` is a struct, not a string".into())
        );
        assert_eq!(
            texts("flag", None)[1],
            Err("text_not_string: field `flag` is boolean, not a string".into())
        );
        assert_eq!(
            texts("absent", None)[0],
            Err("missing_text: field `absent` is missing".into())
        );
        // A boolean id is no id.
        assert_eq!(texts("text", Some("flag"))[0], Ok(("a".into(), None)));
    }
}
