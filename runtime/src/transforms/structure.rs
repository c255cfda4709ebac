//! `Flatten`, `MaskField` and `SetSchemaMetadata`.

use sluice_sdk::{
    Config, ConfigDef, ConfigErrors, ConfigKey, ConfigType, Decimal, Field, Importance,
    LogicalType, Schema, SchemaType, Struct, Validator, Value,
};

use super::{SchemaCache, Side, Transform, TransformPlugin, TransformRecord};

pub(super) fn plugins() -> Vec<TransformPlugin> {
    let mut out = Vec::new();
    for side in Side::BOTH {
        out.push(super::kafka_transform(
            &format!("Flatten{}", side.suffix()),
            "Flattens nested structs and maps into one level, joining names with the delimiter.",
            ConfigDef::new().define(
                ConfigKey::new("delimiter", ConfigType::String, Importance::Medium, "Delimiter to insert between field names from the input record when generating field names for the output record.")
                    .default_value("."),
            ),
            move |c| {
                Ok(Box::new(Flatten {
                    side,
                    cache: SchemaCache::default(),
                    // The delimiter is taken as written: "_" and even " " are legal.
                    delimiter: c.originals().get("delimiter").cloned().unwrap_or_else(|| ".".into()),
                }))
            },
        ));
        out.push(super::kafka_transform(
            &format!("MaskField{}", side.suffix()),
            "Replaces fields with the empty value of their type, or with a replacement.",
            ConfigDef::new()
                .define(ConfigKey::new("fields", ConfigType::List, Importance::High, "Names of fields to mask.").validator(Validator::NonEmpty))
                .define(ConfigKey::new("replacement", ConfigType::String, Importance::Low, "Custom value replacement, that will be applied to all 'fields' values (numeric or non-empty string values only).").optional()),
            move |c| MaskField::new(side, c).map(|t| Box::new(t) as Box<dyn Transform>),
        ));
        out.push(super::kafka_transform(
            &format!("SetSchemaMetadata{}", side.suffix()),
            "Sets the name and/or version of the key or value schema.",
            ConfigDef::new()
                .define(ConfigKey::new("schema.name", ConfigType::String, Importance::High, "Schema name to set.").optional())
                .define(ConfigKey::new("schema.version", ConfigType::Int, Importance::High, "Schema version to set.").optional()),
            move |c| {
                let name = c.get_str("schema.name").filter(|s| !s.is_empty()).map(str::to_string);
                let version = c.get_i64("schema.version").and_then(|v| i32::try_from(v).ok());
                if name.is_none() && version.is_none() {
                    let mut e = ConfigErrors::default();
                    e.push("schema.name", "or schema.version must be set: neither schema name nor version is configured");
                    return Err(e);
                }
                Ok(Box::new(SetSchemaMetadata { side, name, version, cache: SchemaCache::default() }))
            },
        ));
    }
    out
}

/// Kafka Connect's `Flatten`.
#[derive(Debug)]
struct Flatten {
    side: Side,
    delimiter: String,
    cache: SchemaCache,
}

impl Flatten {
    fn name(&self, prefix: &str, name: &str) -> String {
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}{}{name}", self.delimiter)
        }
    }

    fn flatten_map(
        &self,
        entries: Vec<(Value, Value)>,
        prefix: &str,
        out: &mut Vec<(Value, Value)>,
    ) -> Result<(), String> {
        for (k, v) in entries {
            let key = match &k {
                Value::String(s) => s.clone(),
                other => super::headers::value_text(None, other).unwrap_or_else(|| "null".into()),
            };
            let name = self.name(prefix, &key);
            match v {
                Value::Map(inner) => self.flatten_map(inner, &name, out)?,
                Value::Struct(_) => {
                    return Err(format!(
                    "Flatten does not support structs in records without schemas (field {name})"
                ))
                }
                v => out.push((Value::String(name), v)),
            }
        }
        Ok(())
    }

    fn flatten_schema(&self, schema: &Schema, prefix: &str, optional: bool, out: &mut Vec<Field>) {
        for f in schema.fields() {
            let name = self.name(prefix, &f.name);
            let optional = optional || f.schema.optional;
            if let SchemaType::Struct(_) = f.schema.ty {
                self.flatten_schema(&f.schema, &name, optional, out);
            } else {
                let mut s = f.schema.clone();
                s.optional = optional;
                out.push(Field::new(name, s));
            }
        }
    }

    fn flatten_struct(
        &self,
        schema: &Schema,
        value: Option<&Struct>,
        prefix: &str,
        out: &mut Struct,
    ) {
        for f in schema.fields() {
            let name = self.name(prefix, &f.name);
            let v = value.and_then(|s| s.get(&f.name));
            if let SchemaType::Struct(_) = f.schema.ty {
                self.flatten_struct(&f.schema, v.and_then(Value::as_struct), &name, out);
            } else {
                out.put(name, v.cloned().unwrap_or_default());
            }
        }
    }
}

impl Transform for Flatten {
    fn apply(&self, mut r: TransformRecord) -> Result<Option<TransformRecord>, String> {
        let (schema, value) = self.side.take(&mut r);
        let (schema, value) = match (schema, value) {
            (None, Value::Null) => (None, Value::Null),
            (None, Value::Map(entries)) => {
                let mut out = Vec::with_capacity(entries.len());
                self.flatten_map(entries, "", &mut out)?;
                (None, Value::Map(out))
            }
            (Some(schema), v @ (Value::Struct(_) | Value::Null))
                if matches!(schema.ty, SchemaType::Struct(_)) =>
            {
                let new_schema = self.cache.get_or_build(&schema, |schema| {
                    let mut fields = Vec::new();
                    self.flatten_schema(schema, "", schema.optional, &mut fields);
                    let mut new_schema = schema.clone();
                    new_schema.ty = SchemaType::Struct(fields);
                    Ok(new_schema)
                })?;
                let v = match v {
                    Value::Struct(s) => {
                        let mut out = Struct::new();
                        self.flatten_struct(&schema, Some(&s), "", &mut out);
                        Value::Struct(out)
                    }
                    _ => Value::Null,
                };
                (Some(new_schema), v)
            }
            (Some(_), other) => {
                return Err(format!(
                    "Only Struct objects supported for [flattening], found: {}",
                    other.type_name()
                ))
            }
            (None, other) => {
                return Err(format!(
                    "Only Map objects supported in absence of schema for [flattening], found: {}",
                    other.type_name()
                ))
            }
        };
        self.side.put(&mut r, schema, value);
        Ok(Some(r))
    }
}

/// Kafka Connect's `MaskField`.
#[derive(Debug)]
struct MaskField {
    side: Side,
    fields: Vec<String>,
    replacement: Option<String>,
}

impl MaskField {
    fn new(side: Side, c: &Config) -> Result<Self, ConfigErrors> {
        let replacement = c.get_str("replacement").map(str::to_string);
        if replacement.as_deref() == Some("") {
            let mut e = ConfigErrors::default();
            e.push(
                "replacement",
                "must not be empty; leave it out to mask with the empty value of each field's type",
            );
            return Err(e);
        }
        Ok(Self {
            side,
            fields: c.get_list("fields"),
            replacement,
        })
    }

    fn masked(&self, schema: Option<&Schema>, v: &Value) -> Result<Value, String> {
        if v.is_null() {
            return Ok(Value::Null);
        }
        let decimal_scale = match schema.and_then(Schema::logical) {
            Some(LogicalType::Decimal { scale }) => Some(scale),
            _ => None,
        };
        let Some(text) = &self.replacement else {
            return Ok(match v {
                Value::Int8(_) => Value::Int8(0),
                Value::Int16(_) => Value::Int16(0),
                Value::Int32(_) => Value::Int32(0),
                Value::Int64(_) => Value::Int64(0),
                Value::Float32(_) => Value::Float32(0.0),
                Value::Float64(_) => Value::Float64(0.0),
                Value::Boolean(_) => Value::Boolean(false),
                Value::String(_) => Value::from(""),
                Value::Bytes(_) if decimal_scale.is_some() => {
                    Decimal::from_i128(0, decimal_scale.unwrap_or(0)).into_value()
                }
                Value::Array(_) => Value::Array(Vec::new()),
                Value::Map(_) => Value::Map(Vec::new()),
                other => return Err(format!("Cannot mask value of type: {}", other.type_name())),
            });
        };
        let bad = || format!("Unable to convert {text} to a {}", v.type_name());
        Ok(match v {
            Value::Int8(_) => Value::Int8(text.parse().map_err(|_| bad())?),
            Value::Int16(_) => Value::Int16(text.parse().map_err(|_| bad())?),
            Value::Int32(_) => Value::Int32(text.parse().map_err(|_| bad())?),
            Value::Int64(_) => Value::Int64(text.parse().map_err(|_| bad())?),
            Value::Float32(_) => Value::Float32(text.parse().map_err(|_| bad())?),
            Value::Float64(_) => Value::Float64(text.parse().map_err(|_| bad())?),
            Value::String(_) => Value::from(text.as_str()),
            Value::Bytes(_) if decimal_scale.is_some() => Decimal::parse(text)
                .ok_or_else(bad)?
                .rescale(decimal_scale.unwrap_or(0))
                .into_value(),
            other => {
                return Err(format!(
                    "Cannot mask value of type {} with custom replacement.",
                    other.type_name()
                ))
            }
        })
    }
}

impl Transform for MaskField {
    fn apply(&self, mut r: TransformRecord) -> Result<Option<TransformRecord>, String> {
        let (schema, value) = self.side.take(&mut r);
        let value = match (schema.as_deref(), value) {
            (_, Value::Null) => Value::Null,
            (Some(s), Value::Struct(st)) => {
                let mut out = Struct::with_capacity(st.fields().len());
                for (name, v) in st.into_fields() {
                    if self.fields.contains(&name) {
                        let v = self.masked(s.field(&name).map(|f| &f.schema), &v)?;
                        out.put(name, v);
                    } else {
                        out.put(name, v);
                    }
                }
                Value::Struct(out)
            }
            (None, Value::Map(mut entries)) => {
                // As Kafka does, a listed field the map lacks is added as null.
                for name in &self.fields {
                    match entries.iter_mut().find(|(k, _)| k.as_str() == Some(name)) {
                        Some(slot) => slot.1 = self.masked(None, &slot.1)?,
                        None => entries.push((Value::from(name.as_str()), Value::Null)),
                    }
                }
                Value::Map(entries)
            }
            (_, other) => {
                return Err(format!(
                    "MaskField needs a struct or map, got {}",
                    other.type_name()
                ))
            }
        };
        self.side.put(&mut r, schema, value);
        Ok(Some(r))
    }
}

/// Kafka Connect's `SetSchemaMetadata`.
#[derive(Debug)]
struct SetSchemaMetadata {
    side: Side,
    name: Option<String>,
    version: Option<i32>,
    cache: SchemaCache,
}

impl Transform for SetSchemaMetadata {
    fn apply(&self, mut r: TransformRecord) -> Result<Option<TransformRecord>, String> {
        let (schema, value) = self.side.take(&mut r);
        let Some(schema) = schema else {
            return Err(
                "Schema required for [updating schema metadata]: the record has none".into(),
            );
        };
        let schema = self.cache.get_or_build(&schema, |schema| {
            let mut s = schema.clone();
            if let Some(n) = &self.name {
                s.name = Some(n.clone());
            }
            if let Some(v) = self.version {
                s.version = Some(v);
            }
            Ok(s)
        })?;
        self.side.put(&mut r, Some(schema), value);
        Ok(Some(r))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{apply_one, chain_error, record, try_one};
    use super::*;

    fn m(pairs: Vec<(&str, Value)>) -> Value {
        Value::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (Value::from(k), v))
                .collect(),
        )
    }

    #[test]
    fn flatten_schemaless_nested_maps() {
        // Kafka's docs: {"content": {"id": 42, "name": {"first": "David", "middle": null, "last": "Wong"}}}
        let v = m(vec![(
            "content",
            m(vec![
                ("id", Value::Int64(42)),
                (
                    "name",
                    m(vec![
                        ("first", Value::from("David")),
                        ("middle", Value::Null),
                        ("last", Value::from("Wong")),
                    ]),
                ),
            ]),
        )]);
        let out = apply_one("Flatten$Value", &[], record(None, v.clone()));
        assert_eq!(
            out.value,
            m(vec![
                ("content.id", Value::Int64(42)),
                ("content.name.first", Value::from("David")),
                ("content.name.middle", Value::Null),
                ("content.name.last", Value::from("Wong")),
            ])
        );
        let out = apply_one("Flatten$Value", &[("delimiter", "_")], record(None, v));
        assert!(matches!(&out.value, Value::Map(e) if e[0].0 == Value::from("content_id")));
        assert!(
            try_one("Flatten$Value", &[], record(None, Value::from("x")))
                .unwrap_err()
                .message
                .contains("Only Map objects supported")
        );
    }

    #[test]
    fn flatten_schema_and_optional_parents() {
        let inner = Schema::struct_of(vec![
            Field::new("int16", Schema::int16()),
            Field::new("s", Schema::string()),
        ])
        .optional();
        let schema = Schema::struct_of(vec![
            Field::new("A", inner.clone()),
            Field::new("B", Schema::int32()),
        ])
        .named("Outer");
        let v = Value::Struct(
            Struct::new()
                .with(
                    "A",
                    Struct::new().with("int16", Value::Int16(2)).with("s", "x"),
                )
                .with("B", 1),
        );
        let out = apply_one("Flatten$Value", &[], record(Some(schema.clone()), v));
        let s = out.value_schema.unwrap();
        assert_eq!(s.name.as_deref(), Some("Outer"));
        assert_eq!(
            s.fields(),
            &[
                Field::new("A.int16", Schema::int16().optional()),
                Field::new("A.s", Schema::string().optional()),
                Field::new("B", Schema::int32()),
            ]
        );
        assert_eq!(
            out.value,
            Value::Struct(
                Struct::new()
                    .with("A.int16", Value::Int16(2))
                    .with("A.s", "x")
                    .with("B", 1)
            )
        );
        // A null inner struct leaves its flattened fields null.
        let v = Value::Struct(Struct::new().with("A", Value::Null).with("B", 1));
        let out = apply_one("Flatten$Value", &[], record(Some(schema), v));
        assert_eq!(
            out.value,
            Value::Struct(
                Struct::new()
                    .with("A.int16", Value::Null)
                    .with("A.s", Value::Null)
                    .with("B", 1)
            )
        );
    }

    #[test]
    fn mask_field_with_empty_values_and_replacements() {
        let schema = Schema::struct_of(vec![
            Field::new("id", Schema::int32()),
            Field::new("name", Schema::string()),
            Field::new("amount", Schema::decimal(2)),
            Field::new("flag", Schema::boolean()),
            Field::new("keep", Schema::string()),
        ]);
        let v = Value::Struct(
            Struct::new()
                .with("id", 5)
                .with("name", "anne")
                .with("amount", Decimal::from_i128(1234, 2).into_value())
                .with("flag", true)
                .with("keep", "k"),
        );
        let out = apply_one(
            "MaskField$Value",
            &[("fields", "id,name,amount,flag")],
            record(Some(schema.clone()), v.clone()),
        );
        assert_eq!(
            out.value,
            Value::Struct(
                Struct::new()
                    .with("id", 0)
                    .with("name", "")
                    .with("amount", Decimal::from_i128(0, 2).into_value())
                    .with("flag", false)
                    .with("keep", "k")
            )
        );
        // Kafka's docs: fields=ip_address, replacement=0.0.0.0 (a string).
        let out = apply_one(
            "MaskField$Value",
            &[("fields", "name,id,amount"), ("replacement", "42")],
            record(Some(schema.clone()), v.clone()),
        );
        let st = out.value.as_struct().unwrap();
        assert_eq!(st.get("name"), Some(&Value::from("42")));
        assert_eq!(st.get("id"), Some(&Value::Int32(42)));
        assert_eq!(
            st.get("amount"),
            Some(&Decimal::from_i128(4200, 2).into_value())
        );
        let err = try_one(
            "MaskField$Value",
            &[("fields", "id"), ("replacement", "abc")],
            record(Some(schema.clone()), v.clone()),
        )
        .unwrap_err();
        assert!(err.message.contains("Unable to convert abc"), "{err}");
        let err = try_one(
            "MaskField$Value",
            &[("fields", "flag"), ("replacement", "x")],
            record(Some(schema), v),
        )
        .unwrap_err();
        assert!(err.message.contains("with custom replacement"), "{err}");
    }

    #[test]
    fn mask_field_schemaless() {
        let v = m(vec![
            ("ip_address", Value::from("10.1.2.3")),
            ("n", Value::Int64(9)),
        ]);
        let out = apply_one(
            "MaskField$Value",
            &[("fields", "ip_address,absent"), ("replacement", "0.0.0.0")],
            record(None, v),
        );
        assert_eq!(
            out.value,
            m(vec![
                ("ip_address", Value::from("0.0.0.0")),
                ("n", Value::Int64(9)),
                ("absent", Value::Null)
            ])
        );
        assert!(chain_error(&[
            ("transforms", "m"),
            ("transforms.m.type", "MaskField$Value")
        ])
        .contains("option 'transforms.m.fields' is required"));
    }

    #[test]
    fn set_schema_metadata_renames_and_versions() {
        // Kafka's docs: schema.name=com.example.Order, schema.version=2.
        let schema = Schema::struct_of(vec![Field::new("id", Schema::int32())]).named("old");
        let v = Value::Struct(Struct::new().with("id", 1));
        let out = apply_one(
            "SetSchemaMetadata$Value",
            &[
                ("schema.name", "com.example.Order"),
                ("schema.version", "2"),
            ],
            record(Some(schema.clone()), v.clone()),
        );
        let s = out.value_schema.unwrap();
        assert_eq!(
            (s.name.as_deref(), s.version),
            (Some("com.example.Order"), Some(2))
        );
        assert_eq!(s.fields(), schema.fields());
        assert_eq!(out.value, v);
        let err = try_one(
            "SetSchemaMetadata$Value",
            &[("schema.version", "3")],
            record(None, Value::Null),
        )
        .unwrap_err();
        assert!(err.message.contains("Schema required"), "{err}");
        let err = chain_error(&[
            ("transforms", "s"),
            ("transforms.s.type", "SetSchemaMetadata$Key"),
        ]);
        assert!(
            err.contains("option 'transforms.s.schema.name' or schema.version must be set"),
            "{err}"
        );
        let err = chain_error(&[
            ("transforms", "s"),
            ("transforms.s.type", "SetSchemaMetadata$Key"),
            ("transforms.s.schema.version", "two"),
        ]);
        assert!(
            err.contains("option 'transforms.s.schema.version' must be a whole number"),
            "{err}"
        );
    }
}
