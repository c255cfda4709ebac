//! `Cast`: casts fields, or the whole key or value, to another primitive type.
//!
//! `spec` is either one type (the whole key or value) or `field:type` pairs. Targets: int8,
//! int16, int32, int64, float32, float64, boolean, string. Inputs: those types, bytes (to
//! string, base64), Decimal (numbers truncate, string prints it) and Date, Time and Timestamp
//! (numbers take the days or milliseconds, string prints ISO 8601 as Kafka's `Values` does).

use std::sync::Arc;

use base64::Engine;
use sluice_sdk::{
    Config, ConfigDef, ConfigErrors, ConfigKey, ConfigType, Decimal, Field, Importance,
    LogicalType, Schema, SchemaType, Struct, Validator, Value,
};

use super::timestamp::date_value_text;
use super::{
    field_value, java_double, java_float, replace_null_with_default_key, SchemaCache, Side,
    Transform, TransformPlugin, TransformRecord,
};

const TARGETS: &str = "int8, int16, int32, int64, float32, float64, boolean, string";

pub(super) fn plugins() -> Vec<TransformPlugin> {
    Side::BOTH
        .into_iter()
        .map(|side| {
            super::kafka_transform(
                &format!("Cast{}", side.suffix()),
                "Casts fields, or the whole key or value, to another primitive type.",
                ConfigDef::new()
                    .define(ConfigKey::new("spec", ConfigType::List, Importance::High, "List of fields and the type to cast them to of the form field1:type,field2:type to cast fields of Maps or Structs. A single type to cast the entire value. Valid types are int8, int16, int32, int64, float32, float64, boolean, and string.").validator(Validator::NonEmpty))
                    .define(replace_null_with_default_key()),
                move |c| Cast::new(side, c).map(|t| Box::new(t) as Box<dyn Transform>),
            )
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Boolean,
    String,
}

impl Target {
    fn parse(text: &str) -> Option<Self> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "int8" => Self::Int8,
            "int16" => Self::Int16,
            "int32" => Self::Int32,
            "int64" => Self::Int64,
            "float32" => Self::Float32,
            "float64" => Self::Float64,
            "boolean" => Self::Boolean,
            "string" => Self::String,
            _ => return None,
        })
    }

    fn schema(self) -> Schema {
        match self {
            Self::Int8 => Schema::int8(),
            Self::Int16 => Schema::int16(),
            Self::Int32 => Schema::int32(),
            Self::Int64 => Schema::int64(),
            Self::Float32 => Schema::float32(),
            Self::Float64 => Schema::float64(),
            Self::Boolean => Schema::boolean(),
            Self::String => Schema::string(),
        }
    }
}

/// Kafka Connect's `Cast`.
#[derive(Debug)]
struct Cast {
    side: Side,
    whole: Option<Target>,
    fields: Vec<(String, Target)>,
    replace_null_with_default: bool,
    cache: SchemaCache,
}

impl Cast {
    fn new(side: Side, c: &Config) -> Result<Self, ConfigErrors> {
        let mut errors = ConfigErrors::default();
        let spec = c.get_list("spec");
        let mut whole = None;
        let mut fields = Vec::new();
        for item in &spec {
            match item.split_once(':') {
                None => match Target::parse(item) {
                    Some(t) if spec.len() == 1 => whole = Some(t),
                    Some(_) => errors.push("spec", format!("casts the whole value to '{item}' and also names fields; a whole-value cast must be the only entry")),
                    None => errors.push("spec", format!("has an invalid type '{item}'; valid types are {TARGETS}")),
                },
                Some((field, ty)) => match Target::parse(ty) {
                    Some(t) => fields.push((field.trim().to_string(), t)),
                    None => errors.push("spec", format!("has an invalid type '{}' for field '{}'; valid types are {TARGETS}", ty.trim(), field.trim())),
                },
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            side,
            whole,
            fields,
            replace_null_with_default: c.get_bool("replace.null.with.default").unwrap_or(true),
            cache: SchemaCache::default(),
        })
    }

    fn target_of(&self, field: &str) -> Option<Target> {
        self.fields
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, t)| *t)
    }

    fn cast_schema(&self, from: &Schema, to: Target) -> Result<Schema, String> {
        check_input(Some(from), None)?;
        let mut s = to.schema();
        s.optional = from.optional;
        if let Some(d) = &from.default {
            s.default = Some(Box::new(cast_value(Some(from), d, to)?));
        }
        Ok(s)
    }
}

fn check_input(schema: Option<&Schema>, v: Option<&Value>) -> Result<(), String> {
    let name = match (schema.map(|s| &s.ty), v) {
        (Some(SchemaType::Array(_) | SchemaType::Map(..) | SchemaType::Struct(_)), _) => {
            schema.map(|s| s.ty.name())
        }
        (None, Some(v @ (Value::Array(_) | Value::Map(_) | Value::Struct(_)))) => {
            Some(v.type_name())
        }
        _ => None,
    };
    match name {
        Some(n) => Err(format!("Cast transformation does not support casting from {}; supported types are int8, int16, int32, int64, float32, float64, boolean, string, bytes", n.to_uppercase())),
        None => Ok(()),
    }
}

/// A number as the `Number` Java sees after logical types are encoded.
enum Num {
    Int(i64),
    Float(f64),
    Decimal(Decimal),
}

fn number_of(schema: Option<&Schema>, v: &Value) -> Option<Num> {
    if let (Some(LogicalType::Decimal { scale }), Value::Bytes(b)) =
        (schema.and_then(Schema::logical), v)
    {
        return Some(Num::Decimal(Decimal::from_unscaled_bytes(b.clone(), scale)));
    }
    match v {
        Value::Float32(f) => Some(Num::Float(f64::from(*f))),
        Value::Float64(f) => Some(Num::Float(*f)),
        Value::Boolean(b) => Some(Num::Int(i64::from(*b))),
        v => v.as_i64().map(Num::Int),
    }
}

fn cast_value(schema: Option<&Schema>, v: &Value, to: Target) -> Result<Value, String> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    check_input(schema, Some(v))?;
    let unexpected = || {
        format!(
            "Unexpected type in Cast transformation: cannot cast a {} to {to:?}",
            v.type_name()
        )
        .replace("Int", "int")
        .replace("Float", "float")
    };
    if to == Target::String {
        let logical = schema.and_then(Schema::logical);
        return Ok(Value::String(match (logical, v) {
            (Some(LogicalType::Decimal { scale }), Value::Bytes(b)) => {
                Decimal::from_unscaled_bytes(b.clone(), scale).to_string()
            }
            (Some(LogicalType::Date), Value::Int32(days)) => {
                date_value_text(i64::from(*days) * 86_400_000)
            }
            (Some(LogicalType::Time), Value::Int32(ms)) => date_value_text(i64::from(*ms)),
            (Some(LogicalType::Timestamp), Value::Int64(ms)) => date_value_text(*ms),
            (_, Value::String(s)) => s.clone(),
            (_, Value::Bytes(b)) => base64::engine::general_purpose::STANDARD.encode(b),
            (_, Value::Float32(f)) => java_float(*f),
            (_, Value::Float64(f)) => java_double(*f),
            (_, Value::Boolean(b)) => b.to_string(),
            (_, other) => other
                .as_i64()
                .map(|i| i.to_string())
                .ok_or_else(unexpected)?,
        }));
    }
    if let Value::String(s) = v {
        let s = s.trim();
        let bad = || {
            format!(
                "Cast transformation could not parse '{s}' as {}",
                to.schema().ty.name()
            )
        };
        return Ok(match to {
            Target::Int8 => Value::Int8(s.parse().map_err(|_| bad())?),
            Target::Int16 => Value::Int16(s.parse().map_err(|_| bad())?),
            Target::Int32 => Value::Int32(s.parse().map_err(|_| bad())?),
            Target::Int64 => Value::Int64(s.parse().map_err(|_| bad())?),
            Target::Float32 => Value::Float32(s.parse().map_err(|_| bad())?),
            Target::Float64 => Value::Float64(s.parse().map_err(|_| bad())?),
            // Java's Boolean.parseBoolean: true ignoring case, anything else false.
            Target::Boolean => Value::Boolean(s.eq_ignore_ascii_case("true")),
            Target::String => unreachable!("handled above"),
        });
    }
    let n = number_of(schema, v).ok_or_else(unexpected)?;
    // Java's Number.longValue / intValue / ...: floats truncate toward zero and saturate at
    // the int or long range, narrower integers keep the low bits.
    let as_long = |n: &Num| match n {
        Num::Int(i) => *i,
        Num::Float(f) => *f as i64,
        Num::Decimal(d) => d
            .to_string()
            .split('.')
            .next()
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or_else(|| d.to_f64() as i64),
    };
    let as_int = |n: &Num| match n {
        Num::Float(f) => *f as i32,
        other => as_long(other) as i32,
    };
    let as_double = |n: &Num| match n {
        Num::Int(i) => *i as f64,
        Num::Float(f) => *f,
        Num::Decimal(d) => d.to_f64(),
    };
    Ok(match to {
        Target::Int8 => Value::Int8(as_int(&n) as i8),
        Target::Int16 => Value::Int16(as_int(&n) as i16),
        Target::Int32 => Value::Int32(as_int(&n)),
        Target::Int64 => Value::Int64(as_long(&n)),
        Target::Float32 => Value::Float32(as_double(&n) as f32),
        Target::Float64 => Value::Float64(as_double(&n)),
        Target::Boolean => Value::Boolean(as_long(&n) != 0),
        Target::String => unreachable!("handled above"),
    })
}

impl Transform for Cast {
    fn apply(&self, mut r: TransformRecord) -> Result<Option<TransformRecord>, String> {
        let (schema, value) = self.side.take(&mut r);
        let (schema, value) = match (schema, self.whole) {
            (Some(schema), Some(to)) => {
                let v = cast_value(Some(&schema), &value, to)?;
                let mut s = self.cast_schema(&schema, to)?;
                // Kafka copies name, version, doc and parameters; a logical type's name would
                // now lie about the value, so only a plain schema's are kept.
                if schema.logical().is_none() {
                    s.name.clone_from(&schema.name);
                    s.version = schema.version;
                    s.doc.clone_from(&schema.doc);
                    s.parameters.clone_from(&schema.parameters);
                }
                (Some(Arc::new(s)), v)
            }
            (None, Some(to)) => (None, cast_value(None, &value, to)?),
            (Some(schema), None) => {
                if !matches!(schema.ty, SchemaType::Struct(_)) {
                    return Err(format!(
                        "Cast of fields needs a struct, got a {} schema",
                        schema.ty.name()
                    ));
                }
                let new_schema = self.cache.get_or_build(&schema, |schema| {
                    let mut fields = Vec::with_capacity(schema.fields().len());
                    for f in schema.fields() {
                        fields.push(match self.target_of(&f.name) {
                            Some(to) => {
                                Field::new(f.name.clone(), self.cast_schema(&f.schema, to)?)
                            }
                            None => f.clone(),
                        });
                    }
                    let mut new_schema = schema.clone();
                    new_schema.ty = SchemaType::Struct(fields);
                    Ok(new_schema)
                })?;
                let v = match value {
                    Value::Null => Value::Null,
                    Value::Struct(s) => {
                        // Fields move across; only the cast ones are rebuilt.
                        let mut out = Struct::with_capacity(schema.fields().len());
                        for (name, v) in s.into_fields() {
                            let v = match (self.target_of(&name), schema.field(&name)) {
                                (Some(to), Some(f)) => {
                                    let v = field_value(
                                        &f.schema,
                                        Some(&v),
                                        self.replace_null_with_default,
                                    );
                                    cast_value(Some(&f.schema), &v, to)?
                                }
                                (None, Some(f))
                                    if v.is_null() && self.replace_null_with_default =>
                                {
                                    field_value(&f.schema, None, true)
                                }
                                _ => v,
                            };
                            out.put(name, v);
                        }
                        Value::Struct(out)
                    }
                    other => {
                        return Err(format!(
                            "Only Struct objects supported for [cast types], found: {}",
                            other.type_name()
                        ))
                    }
                };
                (Some(new_schema), v)
            }
            (None, None) => match value {
                Value::Null => (None, Value::Null),
                Value::Map(entries) => {
                    let mut out = Vec::with_capacity(entries.len());
                    for (k, v) in entries {
                        let v = match k.as_str().and_then(|k| self.target_of(k)) {
                            Some(to) => cast_value(None, &v, to)?,
                            None => v,
                        };
                        out.push((k, v));
                    }
                    (None, Value::Map(out))
                }
                other => {
                    return Err(format!(
                    "Only Map objects supported in absence of schema for [cast types], found: {}",
                    other.type_name()
                ))
                }
            },
        };
        self.side.put(&mut r, schema, value);
        Ok(Some(r))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{apply_one, chain_error, record, try_one};
    use super::*;

    fn cast(spec: &str, schema: Option<Schema>, v: Value) -> (Option<Schema>, Value) {
        let out = apply_one("Cast$Value", &[("spec", spec)], record(schema, v));
        (out.value_schema.map(|s| (*s).clone()), out.value)
    }

    #[test]
    fn whole_value_casts_with_schema_as_in_kafkas_tests() {
        assert_eq!(
            cast("int8", Some(Schema::int32()), Value::Int32(42)),
            (Some(Schema::int8()), Value::Int8(42))
        );
        assert_eq!(
            cast("int16", Some(Schema::int32()), Value::Int32(42)),
            (Some(Schema::int16()), Value::Int16(42))
        );
        assert_eq!(
            cast("int64", Some(Schema::int32()), Value::Int32(42)),
            (Some(Schema::int64()), Value::Int64(42))
        );
        assert_eq!(
            cast("float32", Some(Schema::int32()), Value::Int32(42)),
            (Some(Schema::float32()), Value::Float32(42.0))
        );
        assert_eq!(
            cast("float64", Some(Schema::int32()), Value::Int32(42)),
            (Some(Schema::float64()), Value::Float64(42.0))
        );
        assert_eq!(
            cast("boolean", Some(Schema::int32()), Value::Int32(42)),
            (Some(Schema::boolean()), Value::Boolean(true))
        );
        assert_eq!(
            cast("boolean", Some(Schema::int32()), Value::Int32(0)),
            (Some(Schema::boolean()), Value::Boolean(false))
        );
        assert_eq!(
            cast("string", Some(Schema::int32()), Value::Int32(42)),
            (Some(Schema::string()), Value::from("42"))
        );
        assert_eq!(
            cast("int32", Some(Schema::string()), Value::from("42")),
            (Some(Schema::int32()), Value::Int32(42))
        );
        assert_eq!(
            cast("boolean", Some(Schema::string()), Value::from("TRUE")).1,
            Value::Boolean(true)
        );
        assert_eq!(
            cast("string", Some(Schema::float64()), Value::Float64(42.0)).1,
            Value::from("42.0")
        );
        assert_eq!(
            cast("int32", Some(Schema::float64()), Value::Float64(-42.9)).1,
            Value::Int32(-42)
        );
        assert_eq!(
            cast("int8", Some(Schema::int64()), Value::Int64(300)).1,
            Value::Int8(44),
            "Java's byteValue keeps the low bits"
        );
        assert_eq!(
            cast("int64", Some(Schema::float64()), Value::Float64(1e30)).1,
            Value::Int64(i64::MAX)
        );
        assert_eq!(
            cast("string", Some(Schema::bytes()), Value::Bytes(vec![1, 2, 3])).1,
            Value::from("AQID")
        );
        assert_eq!(
            cast("int32", Some(Schema::int64().optional()), Value::Null),
            (Some(Schema::int32().optional()), Value::Null)
        );
    }

    #[test]
    fn whole_value_casts_schemaless() {
        assert_eq!(
            cast("int8", None, Value::Int64(42)),
            (None, Value::Int8(42))
        );
        assert_eq!(
            cast("float64", None, Value::from("3.5")).1,
            Value::Float64(3.5)
        );
        assert_eq!(
            cast("string", None, Value::Boolean(false)).1,
            Value::from("false")
        );
        let err = try_one(
            "Cast$Value",
            &[("spec", "int32")],
            record(None, Value::from("forty")),
        )
        .unwrap_err();
        assert!(
            err.message.contains("could not parse 'forty' as int32"),
            "{err}"
        );
    }

    #[test]
    fn decimal_and_dates_as_inputs() {
        let d = Decimal::from_i128(-123_456, 3).into_value(); // -123.456
        assert_eq!(
            cast("int32", Some(Schema::decimal(3)), d.clone()).1,
            Value::Int32(-123)
        );
        assert_eq!(
            cast("float64", Some(Schema::decimal(3)), d.clone()).1,
            Value::Float64(-123.456)
        );
        assert_eq!(
            cast("string", Some(Schema::decimal(3)), d.clone()),
            (Some(Schema::string()), Value::from("-123.456"))
        );
        assert_eq!(
            cast("boolean", Some(Schema::decimal(3)), d).1,
            Value::Boolean(true)
        );
        assert_eq!(
            cast(
                "int64",
                Some(Schema::timestamp()),
                Value::Int64(1_494_897_825_678)
            ),
            (Some(Schema::int64()), Value::Int64(1_494_897_825_678))
        );
        assert_eq!(
            cast(
                "string",
                Some(Schema::timestamp()),
                Value::Int64(1_494_897_825_678)
            )
            .1,
            Value::from("2017-05-16T01:23:45.678Z")
        );
        assert_eq!(
            cast("string", Some(Schema::date()), Value::Int32(17_302)).1,
            Value::from("2017-05-16")
        );
        assert_eq!(
            cast("int32", Some(Schema::date()), Value::Int32(17_302)).1,
            Value::Int32(17_302)
        );
    }

    #[test]
    fn field_casts_with_schema_as_in_kafkas_docs() {
        // Kafka's docs: spec=age:int8,score:float32 ...
        let schema = Schema::struct_of(vec![
            Field::new("age", Schema::int32()),
            Field::new("score", Schema::float64().optional()),
            Field::new("name", Schema::string()),
            Field::new("active", Schema::int32()),
        ])
        .named("Person")
        .with_version(3);
        let v = Value::Struct(
            Struct::new()
                .with("age", 42)
                .with("score", Value::Null)
                .with("name", "x")
                .with("active", 1),
        );
        let (s, out) = cast(
            "age:int8,score:float32,active:boolean,missing:string",
            Some(schema),
            v,
        );
        let s = s.unwrap();
        assert_eq!((s.name.as_deref(), s.version), (Some("Person"), Some(3)));
        assert_eq!(s.field("age").unwrap().schema, Schema::int8());
        assert_eq!(
            s.field("score").unwrap().schema,
            Schema::float32().optional()
        );
        assert_eq!(s.field("name").unwrap().schema, Schema::string());
        assert_eq!(
            out,
            Value::Struct(
                Struct::new()
                    .with("age", Value::Int8(42))
                    .with("score", Value::Null)
                    .with("name", "x")
                    .with("active", true)
            )
        );
    }

    #[test]
    fn field_casts_schemaless() {
        let v = Value::Map(vec![
            (Value::from("a"), Value::Int64(1)),
            (Value::from("b"), Value::Float64(2.5)),
            (Value::from("c"), Value::from("x")),
        ]);
        let (_, out) = cast("a:string,b:int64", None, v);
        assert_eq!(
            out,
            Value::Map(vec![
                (Value::from("a"), Value::from("1")),
                (Value::from("b"), Value::Int64(2)),
                (Value::from("c"), Value::from("x"))
            ])
        );
    }

    #[test]
    fn complex_inputs_and_bad_specs_are_refused() {
        let schema = Schema::struct_of(vec![Field::new("list", Schema::array(Schema::int32()))]);
        let err = try_one(
            "Cast$Value",
            &[("spec", "list:string")],
            record(
                Some(schema),
                Value::Struct(Struct::new().with("list", Value::Array(vec![]))),
            ),
        )
        .unwrap_err();
        assert!(
            err.message.contains("does not support casting from ARRAY"),
            "{err}"
        );
        let err = chain_error(&[
            ("transforms", "c"),
            ("transforms.c.type", "Cast$Value"),
            ("transforms.c.spec", "a:int128,int32"),
        ]);
        assert!(
            err.contains("option 'transforms.c.spec' has an invalid type 'int128' for field 'a'"),
            "{err}"
        );
        assert!(
            err.contains(
                "option 'transforms.c.spec' casts the whole value to 'int32' and also names fields"
            ),
            "{err}"
        );
        let err = chain_error(&[("transforms", "c"), ("transforms.c.type", "Cast$Key")]);
        assert!(
            err.contains("option 'transforms.c.spec' is required"),
            "{err}"
        );
    }
}
