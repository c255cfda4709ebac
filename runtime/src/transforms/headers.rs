//! `Filter` and the header transforms: `InsertHeader`, `DropHeaders`, `HeaderFrom`.
//!
//! Headers travel as bytes (as on the wire). A value moved into a header is written as the text
//! Kafka's `SimpleHeaderConverter` writes (`Values.convertToString`): strings as they are,
//! numbers and booleans as Java prints them, logical dates in ISO 8601, bytes in base64,
//! arrays, maps and structs in a JSON-like form.

use base64::Engine;
use sluice_sdk::{
    Config, ConfigDef, ConfigErrors, ConfigKey, ConfigType, Decimal, Field, Header, Importance,
    LogicalType, Schema, SchemaType, Struct, Validator, Value,
};

use super::timestamp::iso_text;
use super::{
    field_value, java_double, java_float, replace_null_with_default_key, Side, Transform,
    TransformPlugin, TransformRecord,
};

pub(super) fn plugins() -> Vec<TransformPlugin> {
    let mut out = vec![
        super::kafka_transform(
            "Filter",
            "Drops every record; give it a predicate to drop only the records that match.",
            ConfigDef::new(),
            |_| Ok(Box::new(Filter)),
        ),
        super::kafka_transform(
            "InsertHeader",
            "Adds a header with a literal value to every record.",
            ConfigDef::new()
                .define(
                    ConfigKey::new(
                        "header",
                        ConfigType::String,
                        Importance::High,
                        "The name of the header.",
                    )
                    .validator(Validator::NonEmpty),
                )
                .define(ConfigKey::new(
                    "value.literal",
                    ConfigType::String,
                    Importance::High,
                    "The literal value of the header.",
                )),
            |c| {
                Ok(Box::new(InsertHeader {
                    header: c.get_str("header").unwrap_or_default().to_string(),
                    value: c
                        .get_str("value.literal")
                        .unwrap_or_default()
                        .as_bytes()
                        .to_vec(),
                }))
            },
        ),
        super::kafka_transform(
            "DropHeaders",
            "Removes every header with one of the given names.",
            ConfigDef::new().define(
                ConfigKey::new(
                    "headers",
                    ConfigType::List,
                    Importance::High,
                    "The name of the headers to be removed.",
                )
                .validator(Validator::NonEmpty),
            ),
            |c| {
                Ok(Box::new(DropHeaders {
                    headers: c.get_list("headers"),
                }))
            },
        ),
    ];
    for side in Side::BOTH {
        out.push(super::kafka_transform(
            &format!("HeaderFrom{}", side.suffix()),
            "Copies or moves fields of the key or value into headers.",
            ConfigDef::new()
                .define(ConfigKey::new("fields", ConfigType::List, Importance::High, "Field names in the record whose values are to be copied or moved to headers.").validator(Validator::NonEmpty))
                .define(ConfigKey::new("headers", ConfigType::List, Importance::High, "Header names, in the same order as the field names listed in the fields configuration property.").validator(Validator::NonEmpty))
                .define(ConfigKey::new("operation", ConfigType::String, Importance::High, "Either move if the fields are to be moved to the headers (removed from the key/value), or copy if the fields are to be copied to the headers (retained in the key/value).").validator(Validator::one_of(&["move", "copy"])))
                .define(replace_null_with_default_key()),
            move |c| HeaderFrom::new(side, c).map(|t| Box::new(t) as Box<dyn Transform>),
        ));
    }
    out
}

/// Kafka Connect's `Filter`: drops the record (used with a predicate).
#[derive(Debug)]
struct Filter;

impl Transform for Filter {
    fn apply(&self, _record: TransformRecord) -> Result<Option<TransformRecord>, String> {
        Ok(None)
    }
}

/// Kafka Connect's `InsertHeader`.
#[derive(Debug)]
struct InsertHeader {
    header: String,
    value: Vec<u8>,
}

impl Transform for InsertHeader {
    fn apply(&self, mut r: TransformRecord) -> Result<Option<TransformRecord>, String> {
        r.headers.push(Header {
            key: self.header.clone(),
            value: Some(self.value.clone()),
        });
        Ok(Some(r))
    }
}

/// Kafka Connect's `DropHeaders`.
#[derive(Debug)]
struct DropHeaders {
    headers: Vec<String>,
}

impl Transform for DropHeaders {
    fn apply(&self, mut r: TransformRecord) -> Result<Option<TransformRecord>, String> {
        r.headers.retain(|h| !self.headers.contains(&h.key));
        Ok(Some(r))
    }
}

/// Kafka Connect's `HeaderFrom`: copies or moves fields into headers.
#[derive(Debug)]
struct HeaderFrom {
    side: Side,
    pairs: Vec<(String, String)>,
    moving: bool,
    replace_null_with_default: bool,
}

impl HeaderFrom {
    fn new(side: Side, c: &Config) -> Result<Self, ConfigErrors> {
        let fields = c.get_list("fields");
        let headers = c.get_list("headers");
        if fields.len() != headers.len() {
            let mut e = ConfigErrors::default();
            e.push(
                "headers",
                format!(
                    "must name as many headers as 'fields' names fields ({} fields, {} headers)",
                    fields.len(),
                    headers.len()
                ),
            );
            return Err(e);
        }
        Ok(Self {
            side,
            pairs: fields.into_iter().zip(headers).collect(),
            moving: c
                .get_str("operation")
                .is_some_and(|o| o.eq_ignore_ascii_case("move")),
            replace_null_with_default: c.get_bool("replace.null.with.default").unwrap_or(true),
        })
    }
}

impl Transform for HeaderFrom {
    fn apply(&self, mut r: TransformRecord) -> Result<Option<TransformRecord>, String> {
        let (schema, value) = self.side.get(&r);
        let mut added = Vec::with_capacity(self.pairs.len());
        let replaced = match (schema, value) {
            (_, Value::Null) => return Ok(Some(r)),
            (Some(schema), Value::Struct(s)) => {
                for (field, header) in &self.pairs {
                    let f = schema
                        .field(field)
                        .ok_or_else(|| format!("HeaderFrom: the record has no field '{field}'"))?;
                    let v = field_value(&f.schema, s.get(field), self.replace_null_with_default);
                    added.push(Header {
                        key: header.clone(),
                        value: value_text(Some(&f.schema), &v).map(String::into_bytes),
                    });
                }
                self.moving.then(|| {
                    let moved = |name: &str| self.pairs.iter().any(|(f, _)| f == name);
                    let fields: Vec<Field> = schema
                        .fields()
                        .iter()
                        .filter(|f| !moved(&f.name))
                        .cloned()
                        .collect();
                    let mut new_schema = schema.clone();
                    new_schema.ty = SchemaType::Struct(fields);
                    let kept: Struct = s
                        .fields()
                        .iter()
                        .filter(|(n, _)| !moved(n))
                        .fold(Struct::new(), |st, (n, v)| st.with(n.clone(), v.clone()));
                    (Some(new_schema), Value::Struct(kept))
                })
            }
            (None, Value::Map(entries)) => {
                for (field, header) in &self.pairs {
                    let v = super::map_get(entries, field).unwrap_or(&Value::Null);
                    added.push(Header {
                        key: header.clone(),
                        value: value_text(None, v).map(String::into_bytes),
                    });
                }
                self.moving.then(|| {
                    let kept = entries
                        .iter()
                        .filter(|(k, _)| !self.pairs.iter().any(|(f, _)| k.as_str() == Some(f)))
                        .cloned()
                        .collect();
                    (None, Value::Map(kept))
                })
            }
            (_, other) => {
                return Err(format!(
                    "HeaderFrom needs a struct or map, got {}",
                    other.type_name()
                ))
            }
        };
        r.headers.extend(added);
        if let Some((schema, value)) = replaced {
            self.side.set(&mut r, schema, value);
        }
        Ok(Some(r))
    }
}

/// The text Kafka's `Values.convertToString` gives a value; `None` for null.
pub(super) fn value_text(schema: Option<&Schema>, v: &Value) -> Option<String> {
    if v.is_null() {
        return None;
    }
    let mut out = String::new();
    append_text(&mut out, schema, v, false);
    Some(out)
}

fn append_text(out: &mut String, schema: Option<&Schema>, v: &Value, embedded: bool) {
    if let Some(logical) = schema.and_then(Schema::logical) {
        match (logical, v) {
            (LogicalType::Decimal { scale }, Value::Bytes(b)) => {
                out.push_str(&Decimal::from_unscaled_bytes(b.clone(), scale).to_string());
                return;
            }
            (LogicalType::Date | LogicalType::Time | LogicalType::Timestamp, _) => {
                if let Some(t) = iso_text(logical, v) {
                    out.push_str(&t);
                    return;
                }
            }
            _ => {}
        }
    }
    match v {
        Value::Null => out.push_str("null"),
        Value::Int8(x) => out.push_str(&x.to_string()),
        Value::Int16(x) => out.push_str(&x.to_string()),
        Value::Int32(x) => out.push_str(&x.to_string()),
        Value::Int64(x) => out.push_str(&x.to_string()),
        Value::Float32(x) => out.push_str(&java_float(*x)),
        Value::Float64(x) => out.push_str(&java_double(*x)),
        Value::Boolean(x) => out.push_str(if *x { "true" } else { "false" }),
        Value::String(s) if embedded => {
            out.push('"');
            out.push_str(&s.replace('\\', "\\\\").replace('"', "\\\""));
            out.push('"');
        }
        Value::String(s) => out.push_str(s),
        Value::Bytes(b) => out.push_str(&base64::engine::general_purpose::STANDARD.encode(b)),
        Value::Array(items) => {
            let inner = match schema.map(|s| &s.ty) {
                Some(SchemaType::Array(i)) => Some(&**i),
                _ => None,
            };
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                append_text(out, inner, item, true);
            }
            out.push(']');
        }
        Value::Map(entries) => {
            let (ks, vs) = match schema.map(|s| &s.ty) {
                Some(SchemaType::Map(k, v)) => (Some(&**k), Some(&**v)),
                _ => (None, None),
            };
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                append_text(out, ks, k, true);
                out.push(':');
                append_text(out, vs, v, true);
            }
            out.push('}');
        }
        Value::Struct(s) => {
            out.push('{');
            for (i, (name, v)) in s.fields().iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                append_text(out, None, &Value::from(name.as_str()), true);
                out.push(':');
                let fs = schema.and_then(|sc| sc.field(name)).map(|f| &f.schema);
                append_text(out, fs, v, true);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::tests::{apply_one, record, try_one};
    use super::*;

    fn header(k: &str, v: &str) -> Header {
        Header::text(k, v)
    }

    #[test]
    fn filter_drops_every_record() {
        assert_eq!(
            try_one("Filter", &[], record(None, Value::from("x"))).unwrap(),
            None
        );
    }

    #[test]
    fn insert_header_appends_a_literal() {
        // Kafka's docs: header=sourceSystem, value.literal=legacy.
        let mut r = record(None, Value::from("x"));
        r.headers.push(header("sourceSystem", "old"));
        let out = apply_one(
            "org.apache.kafka.connect.transforms.InsertHeader",
            &[("header", "sourceSystem"), ("value.literal", "legacy")],
            r,
        );
        assert_eq!(
            out.headers,
            vec![
                header("sourceSystem", "old"),
                header("sourceSystem", "legacy")
            ]
        );
    }

    #[test]
    fn drop_headers_removes_every_header_of_the_names() {
        let mut r = record(None, Value::from("x"));
        r.headers = vec![
            header("a", "1"),
            header("b", "2"),
            header("a", "3"),
            header("c", "4"),
        ];
        let out = apply_one("DropHeaders", &[("headers", "a,c")], r);
        assert_eq!(out.headers, vec![header("b", "2")]);
    }

    fn schema_and_value() -> (Schema, Value) {
        let schema = Schema::struct_of(vec![
            Field::new("id", Schema::int32()),
            Field::new("ts", Schema::timestamp()),
            Field::new("name", Schema::string()),
        ])
        .named("Order");
        let value = Struct::new()
            .with("id", 42)
            .with("ts", Value::Int64(1_700_000_000_123))
            .with("name", "anne");
        (schema, Value::Struct(value))
    }

    #[test]
    fn header_from_moves_fields_with_schema() {
        // Kafka's docs: fields=id,ts headers=record_id,event_timestamp operation=move.
        let (schema, value) = schema_and_value();
        let out = apply_one(
            "HeaderFrom$Value",
            &[
                ("fields", "id,ts"),
                ("headers", "record_id,event_timestamp"),
                ("operation", "move"),
            ],
            record(Some(schema), value),
        );
        assert_eq!(
            out.headers,
            vec![
                header("record_id", "42"),
                header("event_timestamp", "2023-11-14T22:13:20.123Z")
            ]
        );
        let s = out.value_schema.unwrap();
        assert_eq!(s.name.as_deref(), Some("Order"));
        assert_eq!(
            s.fields()
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>(),
            ["name"]
        );
        assert_eq!(out.value, Value::Struct(Struct::new().with("name", "anne")));
    }

    #[test]
    fn header_from_copies_schemaless_fields() {
        let value = Value::Map(vec![
            (Value::from("id"), Value::Int64(7)),
            (
                Value::from("tags"),
                Value::Array(vec![Value::from("a"), Value::from("b")]),
            ),
        ]);
        let out = apply_one(
            "HeaderFrom$Value",
            &[
                ("fields", "id,tags,missing"),
                ("headers", "h1,h2,h3"),
                ("operation", "copy"),
            ],
            record(None, value.clone()),
        );
        assert_eq!(out.value, value, "copy keeps the fields");
        assert_eq!(
            out.headers,
            vec![
                header("h1", "7"),
                header("h2", "[\"a\",\"b\"]"),
                Header {
                    key: "h3".into(),
                    value: None
                }
            ]
        );
    }

    #[test]
    fn header_from_on_the_key() {
        let mut r = record(None, Value::Null);
        r.key_schema = Some(Arc::new(Schema::struct_of(vec![Field::new(
            "k",
            Schema::float64(),
        )])));
        r.key = Value::Struct(Struct::new().with("k", 2.5));
        let out = apply_one(
            "HeaderFrom$Key",
            &[("fields", "k"), ("headers", "key"), ("operation", "copy")],
            r,
        );
        assert_eq!(out.headers, vec![header("key", "2.5")]);
    }

    #[test]
    fn header_from_needs_as_many_headers_as_fields() {
        let err = super::super::tests::chain_error(&[
            ("transforms", "h"),
            ("transforms.h.type", "HeaderFrom$Value"),
            ("transforms.h.fields", "a,b"),
            ("transforms.h.headers", "x"),
            ("transforms.h.operation", "copy"),
        ]);
        assert!(
            err.contains("option 'transforms.h.headers' must name as many headers"),
            "{err}"
        );
        let err = super::super::tests::chain_error(&[
            ("transforms", "h"),
            ("transforms.h.type", "HeaderFrom$Value"),
            ("transforms.h.fields", "a"),
            ("transforms.h.headers", "x"),
            ("transforms.h.operation", "swap"),
        ]);
        assert!(
            err.contains("option 'transforms.h.operation' must be one of move, copy (got 'swap')"),
            "{err}"
        );
    }

    #[test]
    fn value_text_follows_kafka_values() {
        assert_eq!(value_text(None, &Value::Null), None);
        assert_eq!(value_text(None, &Value::Float64(1.0)).unwrap(), "1.0");
        assert_eq!(
            value_text(
                Some(&Schema::decimal(2)),
                &sluice_sdk::Decimal::from_i128(-12345, 2).into_value()
            )
            .unwrap(),
            "-123.45"
        );
        assert_eq!(
            value_text(Some(&Schema::date()), &Value::Int32(19_000)).unwrap(),
            "2022-01-08"
        );
        assert_eq!(
            value_text(None, &Value::Bytes(b"hi".to_vec())).unwrap(),
            "aGk="
        );
        let m = Value::Map(vec![(Value::from("a\"b"), Value::Boolean(true))]);
        assert_eq!(value_text(None, &m).unwrap(), "{\"a\\\"b\":true}");
    }
}
