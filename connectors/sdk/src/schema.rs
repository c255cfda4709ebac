//! Kafka Connect schemas: primitive, container and logical types.
//!
//! A [`Schema`] describes a [`Value`](crate::Value) the way
//! `org.apache.kafka.connect.data.Schema` does. Logical types are a physical type plus a
//! well-known name, exactly as Kafka Connect defines them, so data written by sluice reads
//! back correctly in Kafka Connect and the other way round:
//!
//! | logical type | physical type | value |
//! |---|---|---|
//! | [`DECIMAL`] | bytes | big-endian two's complement unscaled integer; `scale` parameter |
//! | [`DATE`] | int32 | days since 1970-01-01 |
//! | [`TIME`] | int32 | milliseconds since midnight |
//! | [`TIMESTAMP`] | int64 | milliseconds since 1970-01-01T00:00:00Z |

use std::collections::BTreeMap;
use std::sync::Arc;

/// Logical name of Kafka Connect's Decimal (`bytes`, parameter `scale`).
pub const DECIMAL: &str = "org.apache.kafka.connect.data.Decimal";
/// Logical name of Kafka Connect's Date (`int32` days since the epoch).
pub const DATE: &str = "org.apache.kafka.connect.data.Date";
/// Logical name of Kafka Connect's Time (`int32` milliseconds since midnight).
pub const TIME: &str = "org.apache.kafka.connect.data.Time";
/// Logical name of Kafka Connect's Timestamp (`int64` milliseconds since the epoch).
pub const TIMESTAMP: &str = "org.apache.kafka.connect.data.Timestamp";
/// The parameter of a Decimal schema that holds its scale.
pub const DECIMAL_SCALE_PARAM: &str = "scale";
/// The parameter some producers set for a Decimal's precision (informational).
pub const DECIMAL_PRECISION_PARAM: &str = "connect.decimal.precision";

/// A schema shared between many records.
pub type SchemaRef = Arc<Schema>;

/// The physical type of a schema, with the inner schemas of containers.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaType {
    /// 8-bit signed integer.
    Int8,
    /// 16-bit signed integer.
    Int16,
    /// 32-bit signed integer.
    Int32,
    /// 64-bit signed integer.
    Int64,
    /// 32-bit IEEE 754 float.
    Float32,
    /// 64-bit IEEE 754 float.
    Float64,
    /// true or false.
    Boolean,
    /// UTF-8 text.
    String,
    /// Raw bytes.
    Bytes,
    /// A list of values of one schema.
    Array(Box<Schema>),
    /// A map from key schema to value schema.
    Map(Box<Schema>, Box<Schema>),
    /// Named fields in a fixed order.
    Struct(Vec<Field>),
}

impl SchemaType {
    /// The name Kafka Connect uses for this type (`int32`, `struct`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Int8 => "int8",
            Self::Int16 => "int16",
            Self::Int32 => "int32",
            Self::Int64 => "int64",
            Self::Float32 => "float32",
            Self::Float64 => "float64",
            Self::Boolean => "boolean",
            Self::String => "string",
            Self::Bytes => "bytes",
            Self::Array(_) => "array",
            Self::Map(..) => "map",
            Self::Struct(_) => "struct",
        }
    }
}

/// One field of a struct schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The field's name.
    pub name: String,
    /// The field's schema.
    pub schema: Schema,
}

/// A Kafka Connect schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    /// Physical type (with inner schemas for containers).
    pub ty: SchemaType,
    /// Whether the value may be null.
    pub optional: bool,
    /// Schema name; logical types use the well-known names in this module.
    pub name: Option<String>,
    /// Schema version.
    pub version: Option<i32>,
    /// Documentation.
    pub doc: Option<String>,
    /// Free-form parameters (`scale` for Decimal, enum values, ...).
    pub parameters: BTreeMap<String, String>,
    /// Default value, used by converters when a field is missing.
    pub default: Option<Box<crate::Value>>,
}

impl Schema {
    /// A required schema of type `ty` with no name.
    pub fn new(ty: SchemaType) -> Self {
        Self {
            ty,
            optional: false,
            name: None,
            version: None,
            doc: None,
            parameters: BTreeMap::new(),
            default: None,
        }
    }

    /// `int8`.
    pub fn int8() -> Self {
        Self::new(SchemaType::Int8)
    }
    /// `int16`.
    pub fn int16() -> Self {
        Self::new(SchemaType::Int16)
    }
    /// `int32`.
    pub fn int32() -> Self {
        Self::new(SchemaType::Int32)
    }
    /// `int64`.
    pub fn int64() -> Self {
        Self::new(SchemaType::Int64)
    }
    /// `float32`.
    pub fn float32() -> Self {
        Self::new(SchemaType::Float32)
    }
    /// `float64`.
    pub fn float64() -> Self {
        Self::new(SchemaType::Float64)
    }
    /// `boolean`.
    pub fn boolean() -> Self {
        Self::new(SchemaType::Boolean)
    }
    /// `string`.
    pub fn string() -> Self {
        Self::new(SchemaType::String)
    }
    /// `bytes`.
    pub fn bytes() -> Self {
        Self::new(SchemaType::Bytes)
    }
    /// `array` of `items`.
    pub fn array(items: Schema) -> Self {
        Self::new(SchemaType::Array(Box::new(items)))
    }
    /// `map` from `keys` to `values`.
    pub fn map(keys: Schema, values: Schema) -> Self {
        Self::new(SchemaType::Map(Box::new(keys), Box::new(values)))
    }
    /// `struct` with `fields` in order.
    pub fn struct_of(fields: Vec<Field>) -> Self {
        Self::new(SchemaType::Struct(fields))
    }

    /// Kafka Connect's Decimal with `scale` digits after the point.
    pub fn decimal(scale: i32) -> Self {
        let mut s = Self::bytes().named(DECIMAL).with_version(1);
        s.parameters
            .insert(DECIMAL_SCALE_PARAM.to_string(), scale.to_string());
        s
    }
    /// Kafka Connect's Date (days since the epoch).
    pub fn date() -> Self {
        Self::int32().named(DATE).with_version(1)
    }
    /// Kafka Connect's Time (milliseconds since midnight).
    pub fn time() -> Self {
        Self::int32().named(TIME).with_version(1)
    }
    /// Kafka Connect's Timestamp (milliseconds since the epoch, UTC).
    pub fn timestamp() -> Self {
        Self::int64().named(TIMESTAMP).with_version(1)
    }

    /// The same schema, optional.
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }
    /// The same schema with `name`.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// The same schema with `version`.
    pub fn with_version(mut self, version: i32) -> Self {
        self.version = Some(version);
        self
    }
    /// The same schema with `doc`.
    pub fn with_doc(mut self, doc: impl Into<String>) -> Self {
        self.doc = Some(doc.into());
        self
    }
    /// The same schema with one more parameter.
    pub fn with_parameter(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.parameters.insert(key.into(), value.into());
        self
    }

    /// The logical type this schema carries, if any.
    pub fn logical(&self) -> Option<LogicalType> {
        match (self.name.as_deref()?, &self.ty) {
            (DECIMAL, SchemaType::Bytes) => Some(LogicalType::Decimal {
                scale: self
                    .parameters
                    .get(DECIMAL_SCALE_PARAM)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
            }),
            (DATE, SchemaType::Int32) => Some(LogicalType::Date),
            (TIME, SchemaType::Int32) => Some(LogicalType::Time),
            (TIMESTAMP, SchemaType::Int64) => Some(LogicalType::Timestamp),
            _ => None,
        }
    }

    /// The fields of a struct schema (empty for other types).
    pub fn fields(&self) -> &[Field] {
        match &self.ty {
            SchemaType::Struct(fields) => fields,
            _ => &[],
        }
    }

    /// The field called `name` of a struct schema.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields().iter().find(|f| f.name == name)
    }
}

impl Field {
    /// A field called `name` with `schema`.
    pub fn new(name: impl Into<String>, schema: Schema) -> Self {
        Self {
            name: name.into(),
            schema,
        }
    }
}

/// The Kafka Connect logical types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogicalType {
    /// Arbitrary-precision decimal with a fixed scale.
    Decimal {
        /// Digits after the decimal point.
        scale: i32,
    },
    /// A calendar date.
    Date,
    /// A time of day.
    Time,
    /// An instant.
    Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logical_types_are_recognised_only_on_their_physical_type() {
        assert_eq!(
            Schema::decimal(2).logical(),
            Some(LogicalType::Decimal { scale: 2 })
        );
        assert_eq!(Schema::date().logical(), Some(LogicalType::Date));
        assert_eq!(Schema::time().logical(), Some(LogicalType::Time));
        assert_eq!(Schema::timestamp().logical(), Some(LogicalType::Timestamp));
        assert_eq!(Schema::int32().named(TIMESTAMP).logical(), None);
        assert_eq!(Schema::string().logical(), None);
    }

    #[test]
    fn struct_fields_are_found_by_name() {
        let s = Schema::struct_of(vec![
            Field::new("id", Schema::int64()),
            Field::new("name", Schema::string().optional()),
        ]);
        assert_eq!(s.fields().len(), 2);
        assert!(s.field("name").unwrap().schema.optional);
        assert!(s.field("missing").is_none());
    }
}
