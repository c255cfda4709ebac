//! Kafka Connect's JSON forms of schemas and values, as `JsonConverter` writes them.
//!
//! Schemas use the converter's envelope schema format
//! (`{"type":"struct","fields":[{"field":"id","type":"int64","optional":false}],...}`);
//! values follow the schema (bytes as base64, Decimal as base64 or a plain number, map with
//! non-string keys as an array of pairs). Without a schema, values map the natural way
//! (objects to maps with string keys, integers to int64, other numbers to float64).

use base64::Engine;
use serde_json::{json, Map, Number, Value as Json};

use crate::schema::{Field, LogicalType, Schema, SchemaType};
use crate::value::{Decimal, Struct, Value};

/// How a Decimal is written in JSON (`decimal.format` of Kafka Connect's `JsonConverter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DecimalFormat {
    /// Base64 of the unscaled bytes (Kafka Connect's default).
    #[default]
    Base64,
    /// A JSON number with the decimal's digits.
    Numeric,
}

/// A schema in Kafka Connect's JSON envelope format, as its `JsonConverter` writes it (which
/// names the float types `float` and `double`).
pub fn schema_to_json(schema: &Schema) -> Json {
    schema_json(schema, true)
}

/// A schema as the plugin ABI carries it: as [`schema_to_json`], with the float types named
/// `float32` and `float64` (the names plugins built with earlier SDKs read).
pub fn schema_to_abi_json(schema: &Schema) -> Json {
    schema_json(schema, false)
}

fn schema_json(schema: &Schema, kafka_names: bool) -> Json {
    let mut obj = Map::new();
    let ty = match (&schema.ty, kafka_names) {
        (SchemaType::Float32, true) => "float",
        (SchemaType::Float64, true) => "double",
        (ty, _) => ty.name(),
    };
    obj.insert("type".into(), Json::from(ty));
    match &schema.ty {
        SchemaType::Array(items) => {
            obj.insert("items".into(), schema_json(items, kafka_names));
        }
        SchemaType::Map(keys, values) => {
            obj.insert("keys".into(), schema_json(keys, kafka_names));
            obj.insert("values".into(), schema_json(values, kafka_names));
        }
        SchemaType::Struct(fields) => {
            let fields = fields
                .iter()
                .map(|f| {
                    let mut fj = schema_json(&f.schema, kafka_names);
                    if let Json::Object(m) = &mut fj {
                        m.insert("field".into(), Json::from(f.name.clone()));
                    }
                    fj
                })
                .collect();
            obj.insert("fields".into(), Json::Array(fields));
        }
        _ => {}
    }
    obj.insert("optional".into(), Json::Bool(schema.optional));
    if let Some(name) = &schema.name {
        obj.insert("name".into(), Json::from(name.clone()));
    }
    if let Some(version) = schema.version {
        obj.insert("version".into(), Json::from(version));
    }
    if let Some(doc) = &schema.doc {
        obj.insert("doc".into(), Json::from(doc.clone()));
    }
    if !schema.parameters.is_empty() {
        obj.insert(
            "parameters".into(),
            Json::Object(
                schema
                    .parameters
                    .iter()
                    .map(|(k, v)| (k.clone(), Json::from(v.clone())))
                    .collect(),
            ),
        );
    }
    if let Some(default) = &schema.default {
        if let Ok(d) = value_to_json(Some(schema), default, DecimalFormat::Base64) {
            obj.insert("default".into(), d);
        }
    }
    Json::Object(obj)
}

/// Parses a schema written in Kafka Connect's JSON envelope format.
///
/// # Errors
/// A description of what is malformed.
pub fn schema_from_json(json: &Json) -> Result<Schema, String> {
    let obj = json
        .as_object()
        .ok_or_else(|| format!("a schema must be a JSON object, got {json}"))?;
    let ty_name = obj
        .get("type")
        .and_then(Json::as_str)
        .ok_or("a schema needs a \"type\" string")?;
    let sub = |key: &str| -> Result<Box<Schema>, String> {
        obj.get(key)
            .ok_or_else(|| format!("a {ty_name} schema needs \"{key}\""))
            .and_then(schema_from_json)
            .map(Box::new)
    };
    let ty = match ty_name {
        "int8" => SchemaType::Int8,
        "int16" => SchemaType::Int16,
        "int32" => SchemaType::Int32,
        "int64" => SchemaType::Int64,
        // Kafka's JsonConverter writes `float` and `double`; `float32` and `float64` (Connect's
        // type names) are read too.
        "float" | "float32" => SchemaType::Float32,
        "double" | "float64" => SchemaType::Float64,
        "boolean" => SchemaType::Boolean,
        "string" => SchemaType::String,
        "bytes" => SchemaType::Bytes,
        "array" => SchemaType::Array(sub("items")?),
        "map" => SchemaType::Map(sub("keys")?, sub("values")?),
        "struct" => {
            let fields = obj
                .get("fields")
                .and_then(Json::as_array)
                .ok_or("a struct schema needs a \"fields\" array")?;
            let mut out = Vec::with_capacity(fields.len());
            for f in fields {
                let name = f
                    .get("field")
                    .and_then(Json::as_str)
                    .ok_or("each struct field needs a \"field\" name")?;
                out.push(Field::new(name, schema_from_json(f)?));
            }
            SchemaType::Struct(out)
        }
        other => return Err(format!("unknown schema type '{other}'")),
    };
    let mut schema = Schema::new(ty);
    schema.optional = obj.get("optional").and_then(Json::as_bool).unwrap_or(false);
    schema.name = obj.get("name").and_then(Json::as_str).map(str::to_string);
    schema.version = obj
        .get("version")
        .and_then(Json::as_i64)
        .and_then(|v| i32::try_from(v).ok());
    schema.doc = obj.get("doc").and_then(Json::as_str).map(str::to_string);
    if let Some(params) = obj.get("parameters").and_then(Json::as_object) {
        for (k, v) in params {
            let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            schema.parameters.insert(k.clone(), text);
        }
    }
    if let Some(default) = obj.get("default").filter(|d| !d.is_null()) {
        let value = value_from_json(Some(&schema), default)?;
        schema.default = Some(Box::new(value));
    }
    Ok(schema)
}

/// A value as JSON, following `schema` when there is one.
///
/// # Errors
/// When the value does not match the schema (a null in a required field, a string where an
/// int32 is declared, ...).
pub fn value_to_json(
    schema: Option<&Schema>,
    value: &Value,
    decimal_format: DecimalFormat,
) -> Result<Json, String> {
    let Some(schema) = schema else {
        return schemaless_to_json(value);
    };
    if value.is_null() {
        if let Some(default) = &schema.default {
            return value_to_json(Some(schema), default, decimal_format);
        }
        if schema.optional {
            return Ok(Json::Null);
        }
        return Err(format!(
            "null value for a required {} schema",
            schema.ty.name()
        ));
    }
    if let (Some(LogicalType::Decimal { scale }), Value::Bytes(bytes)) = (schema.logical(), value) {
        return Ok(match decimal_format {
            DecimalFormat::Base64 => {
                Json::from(base64::engine::general_purpose::STANDARD.encode(bytes))
            }
            DecimalFormat::Numeric => {
                let text = Decimal::from_unscaled_bytes(bytes.clone(), scale).to_string();
                serde_json::from_str::<Number>(&text)
                    .map(Json::Number)
                    .unwrap_or(Json::String(text))
            }
        });
    }
    let mismatch = || {
        format!(
            "a {} value does not match the {} schema{}",
            value.type_name(),
            schema.ty.name(),
            schema
                .name
                .as_deref()
                .map(|n| format!(" '{n}'"))
                .unwrap_or_default()
        )
    };
    Ok(match (&schema.ty, value) {
        (SchemaType::Int8, Value::Int8(v)) => json!(v),
        (SchemaType::Int16, Value::Int16(v)) => json!(v),
        (SchemaType::Int32, Value::Int32(v)) => json!(v),
        (SchemaType::Int64, Value::Int64(v)) => json!(v),
        (SchemaType::Float32, Value::Float32(v)) => float_json(f64::from(*v)),
        (SchemaType::Float64, Value::Float64(v)) => float_json(*v),
        (SchemaType::Boolean, Value::Boolean(v)) => json!(v),
        (SchemaType::String, Value::String(v)) => json!(v),
        (SchemaType::Bytes, Value::Bytes(v)) => {
            Json::from(base64::engine::general_purpose::STANDARD.encode(v))
        }
        (SchemaType::Array(items), Value::Array(values)) => Json::Array(
            values
                .iter()
                .map(|v| value_to_json(Some(items), v, decimal_format))
                .collect::<Result<_, _>>()?,
        ),
        (SchemaType::Map(ks, vs), Value::Map(entries)) => {
            if ks.ty == SchemaType::String {
                let mut m = Map::new();
                for (k, v) in entries {
                    let key = k.as_str().ok_or_else(mismatch)?.to_string();
                    m.insert(key, value_to_json(Some(vs), v, decimal_format)?);
                }
                Json::Object(m)
            } else {
                Json::Array(
                    entries
                        .iter()
                        .map(|(k, v)| {
                            Ok(json!([
                                value_to_json(Some(ks), k, decimal_format)?,
                                value_to_json(Some(vs), v, decimal_format)?
                            ]))
                        })
                        .collect::<Result<_, String>>()?,
                )
            }
        }
        (SchemaType::Struct(fields), Value::Struct(s)) => {
            let mut m = Map::new();
            for f in fields {
                let v = s.get(&f.name).unwrap_or(&Value::Null);
                let j = value_to_json(Some(&f.schema), v, decimal_format)
                    .map_err(|e| format!("field '{}': {e}", f.name))?;
                m.insert(f.name.clone(), j);
            }
            Json::Object(m)
        }
        _ => return Err(mismatch()),
    })
}

fn float_json(v: f64) -> Json {
    Number::from_f64(v).map_or_else(|| Json::from(v.to_string()), Json::Number)
}

fn schemaless_to_json(value: &Value) -> Result<Json, String> {
    Ok(match value {
        Value::Null => Json::Null,
        Value::Int8(v) => json!(v),
        Value::Int16(v) => json!(v),
        Value::Int32(v) => json!(v),
        Value::Int64(v) => json!(v),
        Value::Float32(v) => float_json(f64::from(*v)),
        Value::Float64(v) => float_json(*v),
        Value::Boolean(v) => json!(v),
        Value::String(v) => json!(v),
        Value::Bytes(v) => Json::from(base64::engine::general_purpose::STANDARD.encode(v)),
        Value::Array(items) => Json::Array(
            items
                .iter()
                .map(schemaless_to_json)
                .collect::<Result<_, _>>()?,
        ),
        Value::Map(entries) => {
            if entries.iter().all(|(k, _)| k.as_str().is_some()) {
                let mut m = Map::new();
                for (k, v) in entries {
                    m.insert(
                        k.as_str().unwrap_or_default().to_string(),
                        schemaless_to_json(v)?,
                    );
                }
                Json::Object(m)
            } else {
                Json::Array(
                    entries
                        .iter()
                        .map(|(k, v)| Ok(json!([schemaless_to_json(k)?, schemaless_to_json(v)?])))
                        .collect::<Result<_, String>>()?,
                )
            }
        }
        Value::Struct(s) => {
            let mut m = Map::new();
            for (k, v) in s.fields() {
                m.insert(k.clone(), schemaless_to_json(v)?);
            }
            Json::Object(m)
        }
    })
}

/// A value read from JSON, following `schema` when there is one.
///
/// # Errors
/// When the JSON does not match the schema.
pub fn value_from_json(schema: Option<&Schema>, json: &Json) -> Result<Value, String> {
    let Some(schema) = schema else {
        return Ok(schemaless_from_json(json));
    };
    if json.is_null() {
        if let Some(default) = &schema.default {
            return Ok((**default).clone());
        }
        if schema.optional {
            return Ok(Value::Null);
        }
        return Err(format!("null for a required {} schema", schema.ty.name()));
    }
    let mismatch = || format!("expected {} but found {json}", schema.ty.name());
    let int = || json.as_i64().ok_or_else(mismatch);
    if let Some(LogicalType::Decimal { scale }) = schema.logical() {
        return match json {
            Json::String(s) => base64::engine::general_purpose::STANDARD
                .decode(s)
                .map(Value::Bytes)
                .map_err(|e| format!("a Decimal must be base64 text or a number: {e}")),
            Json::Number(n) => Decimal::parse(&n.to_string())
                .map(|d| d.rescale(scale).into_value())
                .ok_or_else(|| format!("cannot read {n} as a Decimal")),
            _ => Err(mismatch()),
        };
    }
    Ok(match &schema.ty {
        SchemaType::Int8 => Value::Int8(i8::try_from(int()?).map_err(|_| mismatch())?),
        SchemaType::Int16 => Value::Int16(i16::try_from(int()?).map_err(|_| mismatch())?),
        SchemaType::Int32 => Value::Int32(i32::try_from(int()?).map_err(|_| mismatch())?),
        SchemaType::Int64 => Value::Int64(int()?),
        SchemaType::Float32 => Value::Float32(json_f64(json).ok_or_else(mismatch)? as f32),
        SchemaType::Float64 => Value::Float64(json_f64(json).ok_or_else(mismatch)?),
        SchemaType::Boolean => Value::Boolean(json.as_bool().ok_or_else(mismatch)?),
        SchemaType::String => Value::String(json.as_str().ok_or_else(mismatch)?.to_string()),
        SchemaType::Bytes => Value::Bytes(
            base64::engine::general_purpose::STANDARD
                .decode(json.as_str().ok_or_else(mismatch)?)
                .map_err(|e| format!("bytes must be base64 text: {e}"))?,
        ),
        SchemaType::Array(items) => Value::Array(
            json.as_array()
                .ok_or_else(mismatch)?
                .iter()
                .map(|j| value_from_json(Some(items), j))
                .collect::<Result<_, _>>()?,
        ),
        SchemaType::Map(ks, vs) => match json {
            Json::Object(m) => Value::Map(
                m.iter()
                    .map(|(k, v)| {
                        Ok((
                            value_from_json(Some(ks), &Json::String(k.clone()))?,
                            value_from_json(Some(vs), v)?,
                        ))
                    })
                    .collect::<Result<_, String>>()?,
            ),
            Json::Array(pairs) => Value::Map(
                pairs
                    .iter()
                    .map(|p| match p.as_array().map(Vec::as_slice) {
                        Some([k, v]) => {
                            Ok((value_from_json(Some(ks), k)?, value_from_json(Some(vs), v)?))
                        }
                        _ => Err(
                            "a map with non-string keys must be an array of [key, value] pairs"
                                .to_string(),
                        ),
                    })
                    .collect::<Result<_, String>>()?,
            ),
            _ => return Err(mismatch()),
        },
        SchemaType::Struct(fields) => {
            let obj = json.as_object().ok_or_else(mismatch)?;
            let mut s = Struct::with_capacity(fields.len());
            for f in fields {
                let j = obj.get(&f.name).unwrap_or(&Json::Null);
                let v = value_from_json(Some(&f.schema), j)
                    .map_err(|e| format!("field '{}': {e}", f.name))?;
                s.put(f.name.clone(), v);
            }
            Value::Struct(s)
        }
    })
}

fn json_f64(json: &Json) -> Option<f64> {
    match json {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn schemaless_from_json(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => n
            .as_i64()
            .map(Value::Int64)
            .unwrap_or_else(|| Value::Float64(n.as_f64().unwrap_or(f64::NAN))),
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => Value::Array(items.iter().map(schemaless_from_json).collect()),
        Json::Object(m) => Value::Map(
            m.iter()
                .map(|(k, v)| (Value::String(k.clone()), schemaless_from_json(v)))
                .collect(),
        ),
    }
}

/// Appends the JSON text of a value to `out`: byte for byte what
/// `serde_json::to_vec(&value_to_json(schema, value, decimal_format)?)` gives, written
/// straight from the value without building a JSON tree (no allocation per field), for
/// converters that write one record after another.
///
/// # Errors
/// As [`value_to_json`], with the same message; `out` is then left as it was.
pub fn write_value_json(
    out: &mut Vec<u8>,
    schema: Option<&Schema>,
    value: &Value,
    decimal_format: DecimalFormat,
) -> Result<(), String> {
    let start = out.len();
    let written = serde::Serialize::serialize(
        &ValueJson {
            schema,
            value,
            decimal_format,
        },
        &mut serde_json::Serializer::new(&mut *out),
    );
    if written.is_ok() {
        return Ok(());
    }
    // Failures are rare: the tree path words them (the field path included).
    out.truncate(start);
    let json = value_to_json(schema, value, decimal_format)?;
    serde_json::to_writer(out, &json).map_err(|e| e.to_string())
}

/// A value and its schema, serialised as [`value_to_json`] would render them.
struct ValueJson<'a> {
    schema: Option<&'a Schema>,
    value: &'a Value,
    decimal_format: DecimalFormat,
}

impl ValueJson<'_> {
    fn with<'b>(&self, schema: Option<&'b Schema>, value: &'b Value) -> ValueJson<'b> {
        ValueJson {
            schema,
            value,
            decimal_format: self.decimal_format,
        }
    }
}

/// The positions of `keys` in the order a JSON object (a `BTreeMap`) lists them; `None` when
/// a key repeats (left to the tree path, which decides which value wins and which errors).
fn object_order<'k>(keys: impl Iterator<Item = &'k str>) -> Option<Vec<(&'k str, usize)>> {
    let mut order: Vec<(&str, usize)> = keys.enumerate().map(|(i, k)| (k, i)).collect();
    if !order.windows(2).all(|w| w[0].0 < w[1].0) {
        order.sort_unstable_by(|a, b| a.0.cmp(b.0));
        if order.windows(2).any(|w| w[0].0 == w[1].0) {
            return None;
        }
    }
    Some(order)
}

fn serialize_float<S: serde::Serializer>(v: f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_finite() {
        s.serialize_f64(v)
    } else {
        s.serialize_str(&v.to_string())
    }
}

impl serde::Serialize for ValueJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeMap, SerializeSeq};
        let value = self.value;
        let repeated = || S::Error::custom("a key repeats");
        let Some(schema) = self.schema else {
            return match value {
                Value::Null => s.serialize_unit(),
                Value::Int8(v) => s.serialize_i8(*v),
                Value::Int16(v) => s.serialize_i16(*v),
                Value::Int32(v) => s.serialize_i32(*v),
                Value::Int64(v) => s.serialize_i64(*v),
                Value::Float32(v) => serialize_float(f64::from(*v), s),
                Value::Float64(v) => serialize_float(*v, s),
                Value::Boolean(v) => s.serialize_bool(*v),
                Value::String(v) => s.serialize_str(v),
                Value::Bytes(v) => {
                    s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
                }
                Value::Array(items) => {
                    let mut seq = s.serialize_seq(Some(items.len()))?;
                    for item in items {
                        seq.serialize_element(&self.with(None, item))?;
                    }
                    seq.end()
                }
                Value::Map(entries) => {
                    if entries.iter().all(|(k, _)| k.as_str().is_some()) {
                        let order = object_order(
                            entries.iter().map(|(k, _)| k.as_str().unwrap_or_default()),
                        )
                        .ok_or_else(repeated)?;
                        let mut map = s.serialize_map(Some(order.len()))?;
                        for (key, i) in order {
                            map.serialize_entry(key, &self.with(None, &entries[i].1))?;
                        }
                        map.end()
                    } else {
                        let mut seq = s.serialize_seq(Some(entries.len()))?;
                        for (k, v) in entries {
                            seq.serialize_element(&[self.with(None, k), self.with(None, v)])?;
                        }
                        seq.end()
                    }
                }
                Value::Struct(st) => {
                    let fields = st.fields();
                    let order = object_order(fields.iter().map(|(k, _)| k.as_str()))
                        .ok_or_else(repeated)?;
                    let mut map = s.serialize_map(Some(order.len()))?;
                    for (key, i) in order {
                        map.serialize_entry(key, &self.with(None, &fields[i].1))?;
                    }
                    map.end()
                }
            };
        };
        if value.is_null() {
            if let Some(default) = &schema.default {
                return self.with(Some(schema), default).serialize(s);
            }
            if schema.optional {
                return s.serialize_unit();
            }
            return Err(S::Error::custom("null value for a required schema"));
        }
        if let (Some(LogicalType::Decimal { scale }), Value::Bytes(bytes)) =
            (schema.logical(), value)
        {
            return match self.decimal_format {
                DecimalFormat::Base64 => {
                    s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
                }
                DecimalFormat::Numeric => {
                    let text = Decimal::from_unscaled_bytes(bytes.clone(), scale).to_string();
                    match serde_json::from_str::<Number>(&text) {
                        Ok(n) => n.serialize(s),
                        Err(_) => s.serialize_str(&text),
                    }
                }
            };
        }
        let mismatch = || S::Error::custom("a value does not match its schema");
        match (&schema.ty, value) {
            (SchemaType::Int8, Value::Int8(v)) => s.serialize_i8(*v),
            (SchemaType::Int16, Value::Int16(v)) => s.serialize_i16(*v),
            (SchemaType::Int32, Value::Int32(v)) => s.serialize_i32(*v),
            (SchemaType::Int64, Value::Int64(v)) => s.serialize_i64(*v),
            (SchemaType::Float32, Value::Float32(v)) => serialize_float(f64::from(*v), s),
            (SchemaType::Float64, Value::Float64(v)) => serialize_float(*v, s),
            (SchemaType::Boolean, Value::Boolean(v)) => s.serialize_bool(*v),
            (SchemaType::String, Value::String(v)) => s.serialize_str(v),
            (SchemaType::Bytes, Value::Bytes(v)) => {
                s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
            }
            (SchemaType::Array(items), Value::Array(values)) => {
                let mut seq = s.serialize_seq(Some(values.len()))?;
                for v in values {
                    seq.serialize_element(&self.with(Some(items), v))?;
                }
                seq.end()
            }
            (SchemaType::Map(ks, vs), Value::Map(entries)) => {
                if ks.ty == SchemaType::String {
                    let mut keys = Vec::with_capacity(entries.len());
                    for (k, _) in entries {
                        keys.push(k.as_str().ok_or_else(mismatch)?);
                    }
                    let order = object_order(keys.into_iter()).ok_or_else(repeated)?;
                    let mut map = s.serialize_map(Some(order.len()))?;
                    for (key, i) in order {
                        map.serialize_entry(key, &self.with(Some(vs), &entries[i].1))?;
                    }
                    map.end()
                } else {
                    let mut seq = s.serialize_seq(Some(entries.len()))?;
                    for (k, v) in entries {
                        seq.serialize_element(&[self.with(Some(ks), k), self.with(Some(vs), v)])?;
                    }
                    seq.end()
                }
            }
            (SchemaType::Struct(fields), Value::Struct(st)) => {
                let order =
                    object_order(fields.iter().map(|f| f.name.as_str())).ok_or_else(repeated)?;
                let values = st.fields();
                let mut map = s.serialize_map(Some(order.len()))?;
                for (key, i) in order {
                    // Records usually list their fields in the schema's order.
                    let v = match values.get(i) {
                        Some((name, v)) if name == key => v,
                        _ => st.get(key).unwrap_or(&Value::Null),
                    };
                    map.serialize_entry(key, &self.with(Some(&fields[i].schema), v))?;
                }
                map.end()
            }
            _ => Err(mismatch()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Field;

    fn order_schema() -> Schema {
        Schema::struct_of(vec![
            Field::new("id", Schema::int64()),
            Field::new("total", Schema::decimal(2)),
            Field::new("placed", Schema::timestamp()),
            Field::new("note", Schema::string().optional()),
            Field::new("tags", Schema::array(Schema::string())),
            Field::new("counts", Schema::map(Schema::int32(), Schema::int64())),
        ])
        .named("orders")
    }

    #[test]
    fn schema_json_matches_kafka_connect_and_round_trips() {
        let schema = order_schema();
        let j = schema_to_json(&schema);
        assert_eq!(j["type"], "struct");
        assert_eq!(j["name"], "orders");
        assert_eq!(
            j["fields"][0],
            json!({"type":"int64","optional":false,"field":"id"})
        );
        assert_eq!(
            j["fields"][1],
            json!({"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2"},"field":"total"})
        );
        assert_eq!(schema_from_json(&j).unwrap(), schema);
    }

    /// Kafka's JsonConverter names FLOAT32 `float` and FLOAT64 `double` in its envelope.
    #[test]
    fn float_types_carry_kafkas_json_names() {
        let schema = Schema::struct_of(vec![
            Field::new("f", Schema::float32()),
            Field::new("d", Schema::float64()),
        ]);
        let j = schema_to_json(&schema);
        assert_eq!(j["fields"][0]["type"], "float");
        assert_eq!(j["fields"][1]["type"], "double");
        assert_eq!(schema_from_json(&j).unwrap(), schema);
        let abi = schema_to_abi_json(&schema);
        assert_eq!(abi["fields"][0]["type"], "float32");
        assert_eq!(abi["fields"][1]["type"], "float64");
        assert_eq!(schema_from_json(&abi).unwrap(), schema);
    }

    #[test]
    fn values_round_trip_through_json() {
        let schema = order_schema();
        let value = Value::Struct(
            Struct::new()
                .with("id", 7i64)
                .with("total", Decimal::parse("12.50").unwrap().into_value())
                .with("placed", 1_700_000_000_000i64)
                .with("note", Value::Null)
                .with("tags", Value::Array(vec!["a".into(), "b".into()]))
                .with(
                    "counts",
                    Value::Map(vec![(Value::Int32(1), Value::Int64(2))]),
                ),
        );
        let j = value_to_json(Some(&schema), &value, DecimalFormat::Base64).unwrap();
        assert_eq!(j["total"], "BOI=");
        assert_eq!(j["counts"], json!([[1, 2]]));
        assert_eq!(value_from_json(Some(&schema), &j).unwrap(), value);
        let numeric = value_to_json(Some(&schema), &value, DecimalFormat::Numeric).unwrap();
        // A JSON number keeps the value, not trailing zeros; reading it back restores the scale.
        assert_eq!(numeric["total"], json!(12.5));
        assert_eq!(value_from_json(Some(&schema), &numeric).unwrap(), value);
    }

    #[test]
    fn mismatches_name_the_field() {
        let schema = order_schema();
        let err = value_from_json(Some(&schema), &json!({"id": "x"})).unwrap_err();
        assert!(err.contains("field 'id'"), "{err}");
        let err = value_to_json(
            Some(&schema),
            &Value::Struct(Struct::new()),
            DecimalFormat::Base64,
        )
        .unwrap_err();
        assert!(err.contains("field 'id'"), "{err}");
    }

    #[test]
    fn schemaless_json_maps_naturally() {
        let j = json!({"a": 1, "b": [true, 1.5, null], "c": "x"});
        let v = value_from_json(None, &j).unwrap();
        assert_eq!(value_to_json(None, &v, DecimalFormat::Base64).unwrap(), j);
    }

    /// What `write_value_json` must match: the tree, then its text.
    fn tree_text(
        schema: Option<&Schema>,
        value: &Value,
        f: DecimalFormat,
    ) -> Result<Vec<u8>, String> {
        value_to_json(schema, value, f).map(|j| serde_json::to_vec(&j).unwrap())
    }

    fn written(
        schema: Option<&Schema>,
        value: &Value,
        f: DecimalFormat,
    ) -> Result<Vec<u8>, String> {
        let mut out = b"prefix".to_vec();
        let result = write_value_json(&mut out, schema, value, f);
        match result {
            Ok(()) => Ok(out.split_off(6)),
            Err(e) => {
                assert_eq!(out, b"prefix", "a failed write leaves the buffer as it was");
                Err(e)
            }
        }
    }

    #[test]
    fn written_json_is_the_trees_text() {
        let schema = order_schema();
        let value = Value::Struct(
            Struct::new()
                .with("tags", Value::Array(vec!["a\"\n".into(), "é".into()]))
                .with("id", 7i64)
                .with("total", Decimal::parse("-12.50").unwrap().into_value())
                .with("placed", 1_700_000_000_000i64)
                .with("note", Value::Null)
                .with(
                    "counts",
                    Value::Map(vec![(Value::Int32(1), Value::Int64(2))]),
                ),
        );
        for f in [DecimalFormat::Base64, DecimalFormat::Numeric] {
            assert_eq!(
                written(Some(&schema), &value, f),
                tree_text(Some(&schema), &value, f)
            );
            assert_eq!(written(None, &value, f), tree_text(None, &value, f));
        }
        // Errors keep the tree path's words, the field included.
        let bad = Value::Struct(Struct::new().with("id", "x"));
        let err = written(Some(&schema), &bad, DecimalFormat::Base64).unwrap_err();
        assert!(err.contains("field 'id'"), "{err}");
        assert_eq!(
            Err(err),
            tree_text(Some(&schema), &bad, DecimalFormat::Base64)
        );
        // Repeated keys: the tree decides (the last value wins).
        let map = Value::Map(vec![("b".into(), 1i64.into()), ("b".into(), 2i64.into())]);
        assert_eq!(
            written(None, &map, DecimalFormat::Base64).unwrap(),
            br#"{"b":2}"#
        );
        let floats = Value::Array(vec![
            Value::Float32(0.1),
            Value::Float64(f64::NAN),
            Value::Float64(f64::NEG_INFINITY),
            Value::Float64(-0.0),
            Value::Float64(1e300),
        ]);
        assert_eq!(
            written(None, &floats, DecimalFormat::Base64),
            tree_text(None, &floats, DecimalFormat::Base64)
        );
    }

    mod written_json {
        use super::*;
        use proptest::prelude::*;

        fn leaf() -> impl Strategy<Value = Value> {
            prop_oneof![
                Just(Value::Null),
                any::<i8>().prop_map(Value::Int8),
                any::<i16>().prop_map(Value::Int16),
                any::<i32>().prop_map(Value::Int32),
                any::<i64>().prop_map(Value::Int64),
                any::<f32>().prop_map(Value::Float32),
                any::<f64>().prop_map(Value::Float64),
                any::<bool>().prop_map(Value::Boolean),
                ".{0,8}".prop_map(Value::String),
                proptest::collection::vec(any::<u8>(), 0..6).prop_map(Value::Bytes),
            ]
        }

        fn name() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("a".to_string()),
                Just("b".to_string()),
                "[a-zé\"]{0,3}"
            ]
        }

        fn value() -> impl Strategy<Value = Value> {
            leaf().prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    proptest::collection::vec((inner.clone(), inner.clone()), 0..3)
                        .prop_map(Value::Map),
                    proptest::collection::vec((name(), inner.clone()), 0..3).prop_map(|pairs| {
                        Value::Map(
                            pairs
                                .into_iter()
                                .map(|(k, v)| (Value::String(k), v))
                                .collect(),
                        )
                    }),
                    proptest::collection::vec((name(), inner), 0..4).prop_map(|fields| {
                        let mut s = Struct::new();
                        for (k, v) in fields {
                            s.put(k, v);
                        }
                        Value::Struct(s)
                    }),
                ]
            })
        }

        /// A schema that fits `value` (a guess at its shape), with optionality and defaults
        /// from `bits`, sometimes a Decimal over bytes, and sometimes a wrong type.
        fn schema_for(value: &Value, bits: u32) -> Schema {
            let mut schema = match value {
                Value::Null | Value::String(_) => Schema::string(),
                Value::Int8(_) => Schema::int8(),
                Value::Int16(_) => Schema::int16(),
                Value::Int32(_) => Schema::int32(),
                Value::Int64(_) if bits & 8 != 0 => Schema::int32(),
                Value::Int64(_) => Schema::int64(),
                Value::Float32(_) => Schema::float32(),
                Value::Float64(_) => Schema::float64(),
                Value::Boolean(_) => Schema::boolean(),
                Value::Bytes(_) if bits & 16 != 0 => {
                    Schema::decimal(i32::try_from(bits % 5).unwrap())
                }
                Value::Bytes(_) => Schema::bytes(),
                Value::Array(items) => Schema::array(
                    items
                        .first()
                        .map_or_else(Schema::string, |i| schema_for(i, bits >> 1))
                        .optional(),
                ),
                Value::Map(entries) => match entries.first() {
                    Some((k, v)) => Schema::map(
                        schema_for(k, bits >> 2),
                        schema_for(v, bits >> 3).optional(),
                    ),
                    None => Schema::map(Schema::string(), Schema::string()),
                },
                Value::Struct(s) => {
                    let mut fields: Vec<Field> = s
                        .fields()
                        .iter()
                        .enumerate()
                        .map(|(i, (k, v))| {
                            Field::new(
                                k.clone(),
                                schema_for(v, bits.rotate_right(u32::try_from(i).unwrap() + 1)),
                            )
                        })
                        .collect();
                    if bits & 32 != 0 {
                        fields.reverse();
                        fields.push(Field::new("missing", Schema::string().optional()));
                    }
                    Schema::struct_of(fields)
                }
            };
            if bits & 1 != 0 {
                schema = schema.optional();
            }
            if bits & 2 != 0 && value.is_null() {
                schema.default = Some(Box::new(Value::from("d")));
            }
            schema
        }

        proptest! {
            #[test]
            fn matches_the_tree(v in value(), bits in any::<u32>(), numeric in any::<bool>()) {
                let f = if numeric { DecimalFormat::Numeric } else { DecimalFormat::Base64 };
                prop_assert_eq!(written(None, &v, f), tree_text(None, &v, f));
                let schema = schema_for(&v, bits);
                prop_assert_eq!(written(Some(&schema), &v, f), tree_text(Some(&schema), &v, f));
            }
        }
    }
}
