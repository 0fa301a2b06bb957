//! The columns of a record type, for Parquet and ORC output (`format: parquet`).
//!
//! Firehose converts JSON records to Parquet or ORC against the columns of an AWS Glue table
//! ("Convert input data format in Amazon Data Firehose",
//! <https://docs.aws.amazon.com/firehose/latest/dev/record-format-conversion.html>). kpipe
//! derives those columns from the destination's record type instead of asking for them: the
//! type is traced through its `Deserialize` implementation (with `serde_arrow`, feature
//! `parquet`), so `#[serde(rename)]`, `Option` and nested types are seen as the JSON has them.
//!
//! | Rust (as serde sees it) | Glue (Hive) column | Parquet (Arrow) |
//! |---|---|---|
//! | `bool` | `boolean` | Boolean |
//! | `i8` / `i16` / `i32` / `i64` | `tinyint` / `smallint` / `int` / `bigint` | Int8 / Int16 / Int32 / Int64 |
//! | `u8` / `u16` / `u32` | `smallint` / `int` / `bigint` | Int16 / Int32 / Int64 |
//! | `u64` | `bigint` (a value over `i64::MAX` fails conversion) | Int64 |
//! | `f32` / `f64` | `float` / `double` | Float32 / Float64 |
//! | `String`, unit-only enum | `string` | Utf8 |
//! | a field named in `timestamps: [...]` (`i64` ms since the epoch, or an RFC 3339 `String`) | `timestamp` | Timestamp(ms, UTC) |
//! | `Option<T>` | `T`'s column, null when `None` | nullable |
//! | `Vec<T>` | `array<T>` | List |
//! | a struct | `struct<name:type,...>` | Struct |
//! | `HashMap<K, V>` / `BTreeMap<K, V>` | `map<K,V>` | Map |
//!
//! Every column is nullable, as in a Glue table. A field of another kind (an enum with data,
//! `()`, bytes, 128-bit integers) is a [`SchemaError`] naming the field, reported by
//! `synth`, `plan` and when the engine starts.

use serde::{Serialize, Serializer};
use std::fmt;

/// The columns of a record type, in field order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Schema {
    /// Top-level columns.
    pub columns: Vec<Column>,
    /// The top-level `timestamp` columns whose field is an integer (milliseconds since the
    /// epoch), not an RFC 3339 string: the writer reads them as integers.
    #[serde(skip)]
    pub(crate) integer_timestamps: Vec<String>,
}

#[cfg(feature = "parquet")]
impl Schema {
    /// The Arrow schema of the Parquet files kpipe writes for these columns: every field
    /// nullable, as Glue columns are.
    pub fn to_arrow(&self) -> arrow_schema::Schema {
        arrow_schema::Schema::new(arrow_fields(self))
    }
}

/// One column (or one field of a `struct` column).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Column {
    /// The name: the field's name as serde writes it.
    pub name: String,
    /// Its type.
    #[serde(rename = "type", serialize_with = "as_hive")]
    pub ty: ColumnType,
}

fn as_hive<S: Serializer>(ty: &ColumnType, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(ty)
}

/// A Glue (Hive) column type. `Display` writes it as Glue takes it (`array<struct<a:int>>`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum ColumnType {
    Boolean,
    Tinyint,
    Smallint,
    Int,
    Bigint,
    Float,
    Double,
    String,
    Timestamp,
    Array(Box<ColumnType>),
    Map(Box<ColumnType>, Box<ColumnType>),
    Struct(Vec<Column>),
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::Boolean => f.write_str("boolean"),
            ColumnType::Tinyint => f.write_str("tinyint"),
            ColumnType::Smallint => f.write_str("smallint"),
            ColumnType::Int => f.write_str("int"),
            ColumnType::Bigint => f.write_str("bigint"),
            ColumnType::Float => f.write_str("float"),
            ColumnType::Double => f.write_str("double"),
            ColumnType::String => f.write_str("string"),
            ColumnType::Timestamp => f.write_str("timestamp"),
            ColumnType::Array(t) => write!(f, "array<{t}>"),
            ColumnType::Map(k, v) => write!(f, "map<{k},{v}>"),
            ColumnType::Struct(cols) => {
                f.write_str("struct<")?;
                for (i, c) in cols.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{}:{}", c.name, c.ty)?;
                }
                f.write_str(">")
            }
        }
    }
}

/// Why a record type has no Glue columns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchemaError {
    /// A field whose type no Glue column holds.
    Field {
        /// The record type.
        record: String,
        /// The field's path (`meta.kind`).
        path: String,
        /// What is wrong, and what to write instead.
        reason: String,
    },
    /// The type itself cannot be traced (not a struct, or serde_arrow refused it).
    Type {
        /// The record type.
        record: String,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaError::Field {
                record,
                path,
                reason,
            } => write!(
                f,
                "field `{path}` of `{record}` cannot be a Glue column: {reason}"
            ),
            SchemaError::Type { record, reason } => {
                write!(f, "`{record}` has no Glue columns: {reason}")
            }
        }
    }
}

impl std::error::Error for SchemaError {}

/// How a destination's record type becomes columns: a function `pipeline!` instantiates for
/// the type, called with the declared timestamp fields. Two compare equal when they derive
/// the same columns.
#[derive(Clone, Copy)]
pub struct RecordSchema(#[doc(hidden)] pub fn(&[&str]) -> Result<Schema, SchemaError>);

impl RecordSchema {
    /// The columns, with `timestamps` as `timestamp` columns.
    ///
    /// # Errors
    /// A field that cannot be a Glue column.
    pub fn derive(&self, timestamps: &[&str]) -> Result<Schema, SchemaError> {
        (self.0)(timestamps)
    }
}

impl fmt::Debug for RecordSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecordSchema(..)")
    }
}

impl PartialEq for RecordSchema {
    fn eq(&self, other: &Self) -> bool {
        self.derive(&[]) == other.derive(&[])
    }
}

impl Eq for RecordSchema {}

#[cfg(feature = "parquet")]
pub(crate) use self::trace::{arrow_fields, trace};

/// Why one record did not become a row.
#[cfg(feature = "parquet")]
#[derive(Debug)]
#[cfg_attr(not(feature = "engine"), allow(dead_code))]
pub(crate) enum RowError {
    /// It is not JSON of the record type; the builder is as it was.
    Decode(String),
    /// A value did not fit its column (a `u64` over `i64::MAX`, a timestamp that does not
    /// parse); the builder may hold part of the row.
    Push(String),
}

/// Decodes one record's JSON as the destination's record type and appends it as a row.
#[cfg(feature = "parquet")]
pub(crate) type PushRow = fn(&[u8], &mut serde_arrow::ArrayBuilder) -> Result<(), RowError>;

#[cfg(feature = "parquet")]
pub(crate) fn push_row<T: crate::Record>(
    json: &[u8],
    builder: &mut serde_arrow::ArrayBuilder,
) -> Result<(), RowError> {
    // The record codec's reader (kpipe's, serde_json for what it leaves), as every record is read.
    let record: T = crate::json::decode(json).map_err(|e| RowError::Decode(e.to_string()))?;
    builder.push(&record).map_err(|e| {
        let text = e.to_string();
        RowError::Push(text.lines().next().unwrap_or(&text).to_owned())
    })
}

#[cfg(feature = "parquet")]
mod trace {
    use super::{Column, ColumnType, Schema, SchemaError};
    use arrow_schema::{DataType, Field, FieldRef, Fields, TimeUnit};
    use serde_arrow::schema::{SchemaLike, TracingOptions};
    use std::sync::Arc;

    /// The columns of `T`, traced from its `Deserialize` implementation.
    pub(crate) fn trace<T: crate::Record>(timestamps: &[&str]) -> Result<Schema, SchemaError> {
        let record = std::any::type_name::<T>()
            .rsplit("::")
            .next()
            .unwrap_or("record")
            .to_owned();
        let options = TracingOptions::default()
            .map_as_struct(false)
            .enums_without_data_as_strings(true)
            .strings_as_large_utf8(false)
            .sequence_as_large_list(false);
        let fields = Vec::<FieldRef>::from_type::<T>(options).map_err(|e| SchemaError::Type {
            record: record.clone(),
            reason: format!(
                "{}; kpipe reads the columns from the type's `Deserialize`, so the record type of a Parquet or ORC destination is a struct of typed fields (one JSON object per record), without `#[serde(flatten)]` or `serde_json::Value`",
                first_line(&e.to_string())
            ),
        })?;
        let mut columns = Vec::with_capacity(fields.len());
        let mut integer_timestamps = Vec::new();
        for f in &fields {
            let c = column(&record, "", f, timestamps)?;
            if c.ty == ColumnType::Timestamp && f.data_type().is_integer() {
                integer_timestamps.push(c.name.clone());
            }
            columns.push(c);
        }
        for ts in timestamps {
            if !has_path(&columns, ts) {
                return Err(SchemaError::Field {
                    record,
                    path: (*ts).to_owned(),
                    reason: "it is declared in `timestamps` but the type has no such field"
                        .to_owned(),
                });
            }
        }
        Ok(Schema {
            columns,
            integer_timestamps,
        })
    }

    fn first_line(s: &str) -> &str {
        s.lines().next().unwrap_or(s)
    }

    fn has_path(columns: &[Column], path: &str) -> bool {
        let (head, rest) = path.split_once('.').unwrap_or((path, ""));
        columns.iter().any(|c| {
            c.name == head
                && match (&c.ty, rest) {
                    (_, "") => true,
                    (ColumnType::Struct(inner), rest) => has_path(inner, rest),
                    _ => false,
                }
        })
    }

    fn column(
        record: &str,
        parent: &str,
        f: &Field,
        timestamps: &[&str],
    ) -> Result<Column, SchemaError> {
        let path = if parent.is_empty() {
            f.name().clone()
        } else {
            format!("{parent}.{}", f.name())
        };
        let ty = if timestamps.contains(&path.as_str()) {
            let nested = !parent.is_empty();
            match f.data_type() {
                dt if nested && dt.is_integer() => {
                    return Err(SchemaError::Field {
                        record: record.to_owned(),
                        path,
                        reason: "a timestamp inside a struct is an RFC 3339 string; only a top-level field may hold milliseconds since the epoch".to_owned(),
                    });
                }
                DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::UInt8
                | DataType::UInt16
                | DataType::UInt32
                | DataType::UInt64
                | DataType::Utf8
                | DataType::LargeUtf8 => ColumnType::Timestamp,
                other => {
                    return Err(SchemaError::Field {
                        record: record.to_owned(),
                        path,
                        reason: format!(
                            "a timestamp is an integer of milliseconds since the epoch or an RFC 3339 string, not {other}"
                        ),
                    });
                }
            }
        } else {
            column_type(record, &path, f.data_type(), timestamps)?
        };
        Ok(Column {
            name: f.name().clone(),
            ty,
        })
    }

    fn column_type(
        record: &str,
        path: &str,
        dt: &DataType,
        timestamps: &[&str],
    ) -> Result<ColumnType, SchemaError> {
        let refuse = |reason: String| SchemaError::Field {
            record: record.to_owned(),
            path: path.to_owned(),
            reason,
        };
        Ok(match dt {
            DataType::Boolean => ColumnType::Boolean,
            DataType::Int8 => ColumnType::Tinyint,
            DataType::Int16 | DataType::UInt8 => ColumnType::Smallint,
            DataType::Int32 | DataType::UInt16 => ColumnType::Int,
            DataType::Int64 | DataType::UInt32 | DataType::UInt64 => ColumnType::Bigint,
            DataType::Float16 | DataType::Float32 => ColumnType::Float,
            DataType::Float64 => ColumnType::Double,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ColumnType::String,
            DataType::Dictionary(_, v) if matches!(**v, DataType::Utf8 | DataType::LargeUtf8) => {
                ColumnType::String
            }
            DataType::List(item) | DataType::LargeList(item) => ColumnType::Array(Box::new(
                column_type(record, path, item.data_type(), timestamps)?,
            )),
            DataType::Struct(fields) => {
                let mut cols = Vec::with_capacity(fields.len());
                for f in fields {
                    cols.push(column(record, path, f, timestamps)?);
                }
                ColumnType::Struct(cols)
            }
            DataType::Map(entries, _) => {
                let DataType::Struct(kv) = entries.data_type() else {
                    return Err(refuse("a map without key and value".to_owned()));
                };
                let key = column_type(record, path, kv[0].data_type(), timestamps)?;
                if matches!(
                    key,
                    ColumnType::Array(_) | ColumnType::Map(..) | ColumnType::Struct(_)
                ) {
                    return Err(refuse(format!(
                        "a map's key is a primitive type in Glue, not {key}"
                    )));
                }
                let value = column_type(record, path, kv[1].data_type(), timestamps)?;
                ColumnType::Map(Box::new(key), Box::new(value))
            }
            DataType::Union(..) => {
                return Err(refuse(
                    "an enum with data has no Glue column type; use a unit-only enum (a string), or a struct with optional fields".to_owned(),
                ));
            }
            DataType::Null => {
                return Err(refuse(
                    "`()` (or a type serde writes as nothing) has no Glue column type".to_owned(),
                ));
            }
            other => {
                return Err(refuse(format!(
                    "serde_arrow traces it as {other}, which kpipe does not map to a Glue column"
                )));
            }
        })
    }

    /// The Arrow fields a Parquet file of these columns has: every field nullable, as the
    /// Glue table's columns are.
    pub(crate) fn arrow_fields(schema: &Schema) -> Vec<FieldRef> {
        schema
            .columns
            .iter()
            .map(|c| Arc::new(Field::new(&c.name, arrow_type(&c.ty), true)))
            .collect()
    }

    fn arrow_type(ty: &ColumnType) -> DataType {
        match ty {
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Tinyint => DataType::Int8,
            ColumnType::Smallint => DataType::Int16,
            ColumnType::Int => DataType::Int32,
            ColumnType::Bigint => DataType::Int64,
            ColumnType::Float => DataType::Float32,
            ColumnType::Double => DataType::Float64,
            ColumnType::String => DataType::Utf8,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            ColumnType::Array(t) => {
                DataType::List(Arc::new(Field::new("element", arrow_type(t), true)))
            }
            ColumnType::Map(k, v) => DataType::Map(
                Arc::new(Field::new(
                    "key_value",
                    DataType::Struct(Fields::from(vec![
                        Field::new("key", arrow_type(k), false),
                        Field::new("value", arrow_type(v), true),
                    ])),
                    false,
                )),
                false,
            ),
            ColumnType::Struct(cols) => DataType::Struct(
                cols.iter()
                    .map(|c| Field::new(&c.name, arrow_type(&c.ty), true))
                    .collect(),
            ),
        }
    }
}
