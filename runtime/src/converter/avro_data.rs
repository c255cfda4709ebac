//! Kafka Connect data <-> Avro, as Confluent's `AvroData` maps them, so Java's
//! `KafkaAvroDeserializer`, Python's `AvroDeserializer` and Confluent's converter read what
//! sluice writes and the other way round:
//!
//! | Connect | Avro |
//! |---|---|
//! | int8 / int16 | `int` with `connect.type` `int8` / `int16` |
//! | int32, int64, float32, float64, boolean, string, bytes | int, long, float, double, boolean, string, bytes |
//! | Decimal | `bytes`, `logicalType` decimal, `scale`, `precision` (64 unless `connect.decimal.precision`) |
//! | Date / Time / Timestamp | `int` date / `int` time-millis / `long` timestamp-millis |
//! | struct | record named by the schema name (`io.confluent.connect.avro.ConnectDefault` when none) |
//! | map with string keys | map; other keys: array of `io.confluent.connect.avro.MapEntry` records |
//! | optional | union with null first and default null (the type first when it has a default) |
//! | struct `io.confluent.connect.avro.Union` | union of its fields' types (null first when optional) |
//!
//! An Avro union of several non-null types (`["null","int","string"]`, `["string", {record}]`)
//! is, as in `AvroData` with its default options, a Connect struct named
//! `io.confluent.connect.avro.Union`, optional when the union holds null, with one optional
//! field per member type: named after the type (`int`, `string`, `array`, `map`, ...) or, for
//! a record, enum or fixed, after its name without the namespace. A value has exactly one
//! field set, the member it was written as; writing such a struct picks the member named by its
//! first non-null field.
//!
//! Every named, versioned or documented schema carries `connect.name`, `connect.version`,
//! `connect.doc`, `connect.parameters` and `connect.default`, and they are read back.

use std::collections::{BTreeMap, HashMap, HashSet};

use apache_avro::schema::{Name, Schema as AvroSchema};
use apache_avro::types::Value as AvroValue;
use serde_json::{json, Map, Value as Json};
use sluice_sdk::schema::{LogicalType, DECIMAL_PRECISION_PARAM};
use sluice_sdk::{Field, Schema, SchemaType, Struct, Value};

/// Confluent's namespace for the records it makes up.
pub const NAMESPACE: &str = "io.confluent.connect.avro";
/// Name of a struct schema that has none.
pub const DEFAULT_SCHEMA_NAME: &str = "ConnectDefault";
/// Record of a map entry when the keys are not strings.
pub const MAP_ENTRY_TYPE_NAME: &str = "MapEntry";
/// Name of the Connect struct an Avro union of several non-null types maps to.
pub const UNION_TYPE_NAME: &str = "io.confluent.connect.avro.Union";
const CONNECT_NAME_PROP: &str = "connect.name";
const CONNECT_DOC_PROP: &str = "connect.doc";
const CONNECT_VERSION_PROP: &str = "connect.version";
const CONNECT_DEFAULT_VALUE_PROP: &str = "connect.default";
const CONNECT_PARAMETERS_PROP: &str = "connect.parameters";
const CONNECT_TYPE_PROP: &str = "connect.type";
const CONNECT_INTERNAL_TYPE_NAME: &str = "connect.internal.type";
const AVRO_RECORD_DOC_PROP: &str = "io.confluent.connect.avro.record.doc";
const AVRO_TYPE_ENUM: &str = "io.confluent.connect.avro.Enum";
const CONNECT_AVRO_FIXED_SIZE_PROP: &str = "connect.fixed.size";
/// Precision written for a Decimal that names none.
const DECIMAL_PRECISION_DEFAULT: i64 = 64;

// ---------------------------------------------------------------------------------------
// Connect schema -> Avro schema JSON
// ---------------------------------------------------------------------------------------

/// The Avro schema (JSON) of a Connect schema.
pub fn avro_schema_json(schema: &Schema) -> Json {
    FromConnect::default().schema(schema, false)
}

#[derive(Default)]
struct FromConnect {
    default_names: usize,
    defined: HashSet<String>,
}

fn split_name(full: &str) -> (Option<&str>, &str) {
    match full.rsplit_once('.') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, full),
    }
}

impl FromConnect {
    fn next_default_name(&mut self) -> String {
        self.default_names += 1;
        if self.default_names > 1 {
            format!("{NAMESPACE}.{DEFAULT_SCHEMA_NAME}{}", self.default_names)
        } else {
            format!("{NAMESPACE}.{DEFAULT_SCHEMA_NAME}")
        }
    }

    /// A named record's definition, or its name when it was defined before in this schema.
    fn record(&mut self, full: String, build: impl FnOnce(&mut Self) -> Map<String, Json>) -> Json {
        if !self.defined.insert(full.clone()) {
            return Json::String(full);
        }
        let (ns, name) = split_name(&full);
        let mut record = Map::new();
        record.insert("type".into(), json!("record"));
        record.insert("name".into(), json!(name));
        if let Some(ns) = ns {
            record.insert("namespace".into(), json!(ns));
        }
        record.extend(build(self));
        Json::Object(record)
    }

    fn field(&mut self, name: &str, schema: &Schema) -> Json {
        let mut field = Map::new();
        field.insert("name".into(), json!(name));
        field.insert("type".into(), self.schema(schema, false));
        if let Some(default) = &schema.default {
            if let Some(d) = union_default_json(schema, default) {
                field.insert("default".into(), d);
            } else if !is_union(schema) {
                field.insert("default".into(), default_json(schema, default));
            }
        } else if schema.optional {
            field.insert("default".into(), Json::Null);
        }
        Json::Object(field)
    }

    fn schema(&mut self, schema: &Schema, ignore_optional: bool) -> Json {
        let mut connect_type = None;
        let mut props = Map::new();
        let base: Json = match &schema.ty {
            SchemaType::Int8 => {
                connect_type = Some("int8");
                json!("int")
            }
            SchemaType::Int16 => {
                connect_type = Some("int16");
                json!("int")
            }
            SchemaType::Int32 => json!("int"),
            SchemaType::Int64 => json!("long"),
            SchemaType::Float32 => json!("float"),
            SchemaType::Float64 => json!("double"),
            SchemaType::Boolean => json!("boolean"),
            SchemaType::String => json!("string"),
            SchemaType::Bytes => json!("bytes"),
            SchemaType::Array(items) => {
                json!({"type": "array", "items": self.schema(items, false)})
            }
            SchemaType::Map(keys, values) => {
                if keys.ty == SchemaType::String && !keys.optional {
                    json!({"type": "map", "values": self.schema(values, false)})
                } else {
                    let full = match &schema.name {
                        None => format!("{NAMESPACE}.{MAP_ENTRY_TYPE_NAME}"),
                        Some(n) => n.clone(),
                    };
                    let named = schema.name.is_some();
                    let entry = self.record(full, |me| {
                        let mut m = Map::new();
                        m.insert(
                            "fields".into(),
                            json!([me.field("key", keys), me.field("value", values)]),
                        );
                        if named {
                            m.insert(
                                CONNECT_INTERNAL_TYPE_NAME.into(),
                                json!(MAP_ENTRY_TYPE_NAME),
                            );
                        }
                        m
                    });
                    json!({"type": "array", "items": entry})
                }
            }
            SchemaType::Struct(fields) if is_union(schema) => {
                // Unions carry no metadata; null first when optional, as AvroData.
                let mut members = Vec::with_capacity(fields.len() + 1);
                if schema.optional {
                    members.push(json!("null"));
                }
                for f in fields {
                    let mut member = f.schema.clone();
                    member.optional = false;
                    members.push(self.schema(&member, true));
                }
                return Json::Array(members);
            }
            SchemaType::Struct(fields) => {
                if schema.optional && !ignore_optional {
                    // The union carries no metadata: the record inside does.
                    let mut inner = schema.clone();
                    inner.optional = false;
                    return json!(["null", self.schema(&inner, false)]);
                }
                let full = match &schema.name {
                    Some(n) => n.clone(),
                    None => self.next_default_name(),
                };
                let doc = schema.parameters.get(AVRO_RECORD_DOC_PROP).cloned();
                let record = self.record(full, |me| {
                    let mut m = Map::new();
                    if let Some(doc) = doc {
                        m.insert("doc".into(), json!(doc));
                    }
                    let fields: Vec<Json> = fields
                        .iter()
                        .map(|f| me.field(&f.name, &f.schema))
                        .collect();
                    m.insert("fields".into(), Json::Array(fields));
                    m
                });
                match record {
                    // Defined before: a reference carries no properties.
                    Json::String(_) => return record,
                    Json::Object(m) => {
                        props = m;
                        Json::Null
                    }
                    _ => unreachable!("a record is an object or a name"),
                }
            }
        };
        if let Json::Object(m) = base {
            props = m;
        } else if !base.is_null() {
            props.insert("type".into(), base);
        }
        if let Some(doc) = &schema.doc {
            props.insert(CONNECT_DOC_PROP.into(), json!(doc));
        }
        if let Some(version) = schema.version {
            props.insert(CONNECT_VERSION_PROP.into(), json!(version));
        }
        if !schema.parameters.is_empty() {
            props.insert(CONNECT_PARAMETERS_PROP.into(), json!(schema.parameters));
        }
        if let Some(default) = &schema.default {
            props.insert(
                CONNECT_DEFAULT_VALUE_PROP.into(),
                default_json(schema, default),
            );
        }
        if let Some(name) = &schema.name {
            props.insert(CONNECT_NAME_PROP.into(), json!(name));
        }
        if let Some(t) = connect_type {
            props.insert(CONNECT_TYPE_PROP.into(), json!(t));
        }
        match schema.logical() {
            Some(LogicalType::Decimal { scale }) => {
                let precision = schema
                    .parameters
                    .get(DECIMAL_PRECISION_PARAM)
                    .and_then(|p| p.parse::<i64>().ok())
                    .unwrap_or(DECIMAL_PRECISION_DEFAULT);
                props.insert("scale".into(), json!(scale));
                props.insert("precision".into(), json!(precision));
                props.insert("logicalType".into(), json!("decimal"));
            }
            Some(LogicalType::Time) => {
                props.insert("logicalType".into(), json!("time-millis"));
            }
            Some(LogicalType::Timestamp) => {
                props.insert("logicalType".into(), json!("timestamp-millis"));
            }
            Some(LogicalType::Date) => {
                props.insert("logicalType".into(), json!("date"));
            }
            None => {}
        }
        for (k, v) in &schema.parameters {
            if k.starts_with("avro") {
                props.insert(k.clone(), json!(v));
            }
        }
        let base = if props.len() == 1 && props.contains_key("type") {
            props.remove("type").expect("checked")
        } else {
            Json::Object(props)
        };
        if schema.optional && !ignore_optional {
            if schema.default.is_some() {
                json!([base, "null"])
            } else {
                json!(["null", base])
            }
        } else {
            base
        }
    }
}

/// Whether `schema` is the Connect form of an Avro union of several types.
pub fn is_union(schema: &Schema) -> bool {
    schema.name.as_deref() == Some(UNION_TYPE_NAME) && matches!(schema.ty, SchemaType::Struct(_))
}

/// The Avro default of a union field: its first member's value, when that member is the one
/// set (Avro defaults must match a union's first type).
fn union_default_json(schema: &Schema, default: &Value) -> Option<Json> {
    if !is_union(schema) || schema.optional {
        return None;
    }
    let first = schema.fields().first()?;
    let value = default.as_struct()?.get(&first.name)?;
    (!value.is_null()).then(|| default_json(&first.schema, value))
}

/// A default value as Avro writes defaults (bytes as ISO-8859-1 text).
fn default_json(schema: &Schema, value: &Value) -> Json {
    match (value, &schema.ty) {
        (Value::Null, _) => Json::Null,
        (Value::Bytes(b), _) => Json::String(b.iter().map(|&c| char::from(c)).collect()),
        (Value::Struct(s), SchemaType::Struct(fields)) => Json::Object(
            fields
                .iter()
                .map(|f| {
                    let v = s.get(&f.name).cloned().unwrap_or_default();
                    (f.name.clone(), default_json(&f.schema, &v))
                })
                .collect(),
        ),
        (Value::Array(items), SchemaType::Array(item)) => {
            Json::Array(items.iter().map(|v| default_json(item, v)).collect())
        }
        (Value::Map(entries), SchemaType::Map(_, vs)) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().map_or_else(|| format!("{k:?}"), str::to_string),
                        default_json(vs, v),
                    )
                })
                .collect(),
        ),
        (Value::Int8(v), _) => json!(v),
        (Value::Int16(v), _) => json!(v),
        (Value::Int32(v), _) => json!(v),
        (Value::Int64(v), _) => json!(v),
        (Value::Float32(v), _) => json!(v),
        (Value::Float64(v), _) => json!(v),
        (Value::Boolean(v), _) => json!(v),
        (Value::String(v), _) => json!(v),
        _ => Json::Null,
    }
}

// ---------------------------------------------------------------------------------------
// Avro schema JSON -> Connect schema
// ---------------------------------------------------------------------------------------

/// The Connect schema of a writer's Avro schema (JSON), as Confluent's `toConnectSchema`.
///
/// # Errors
/// A schema shape Connect cannot hold (a union whose members share a name, an undefined type).
pub fn connect_schema_of(avro: &Json) -> Result<Schema, String> {
    connect_schema_with_references(avro, &[])
}

/// [`connect_schema_of`] for a schema that names types defined in `references` (the
/// registry's referenced schemas, each before the schemas that name its types).
///
/// # Errors
/// As [`connect_schema_of`], for the schema or one of its references.
pub fn connect_schema_with_references(avro: &Json, references: &[Json]) -> Result<Schema, String> {
    let mut to_connect = ToConnect::default();
    for reference in references {
        to_connect
            .schema(reference, None, None)
            .map_err(|e| format!("in the referenced schema {reference}: {e}"))?;
    }
    to_connect.schema(avro, None, None)
}

#[derive(Default)]
struct ToConnect {
    named: HashMap<String, Schema>,
}

fn full_name(name: &str, namespace: Option<&str>) -> String {
    match namespace.filter(|ns| !ns.is_empty() && !name.contains('.')) {
        Some(ns) => format!("{ns}.{name}"),
        None => name.to_string(),
    }
}

fn is_null_json(schema: &Json) -> bool {
    schema == "null" || schema.get("type").is_some_and(|t| t == "null")
}

/// The last part of a dotted name.
fn short_name(full: &str) -> &str {
    split_name(full).1
}

/// The Connect field name of a union member (AvroData's `unionMemberFieldName` with its
/// default options): the type's name, or a named type's name without its namespace.
fn union_member_name_json(member: &Json) -> Result<String, String> {
    match member {
        Json::String(name) if primitive(name).is_some() || name == "null" => Ok(name.clone()),
        // A reference to a record, enum or fixed defined before (or in a referenced schema).
        Json::String(name) => Ok(short_name(name).to_string()),
        Json::Object(o) => match o.get("type") {
            Some(Json::String(t)) if matches!(t.as_str(), "record" | "enum" | "fixed") => o
                .get("name")
                .and_then(Json::as_str)
                .map(|n| short_name(n).to_string())
                .ok_or_else(|| format!("the Avro {t} {member} has no name")),
            Some(Json::String(t))
                if matches!(t.as_str(), "array" | "map") || primitive(t).is_some() =>
            {
                Ok(t.clone())
            }
            Some(inner) => union_member_name_json(inner),
            None => Err(format!("the Avro schema {member} has no type")),
        },
        other => Err(format!("{other} cannot be a member of an Avro union")),
    }
}

fn primitive(name: &str) -> Option<Schema> {
    Some(match name {
        "int" => Schema::int32(),
        "long" => Schema::int64(),
        "float" => Schema::float32(),
        "double" => Schema::float64(),
        "boolean" => Schema::boolean(),
        "string" => Schema::string(),
        "bytes" => Schema::bytes(),
        _ => return None,
    })
}

impl ToConnect {
    fn schema(
        &mut self,
        avro: &Json,
        namespace: Option<&str>,
        field_default: Option<&Json>,
    ) -> Result<Schema, String> {
        match avro {
            Json::String(name) => {
                if let Some(s) = primitive(name) {
                    return Ok(s);
                }
                if name == "null" {
                    return Ok(Schema::string().optional());
                }
                let full = full_name(name, namespace);
                self.named
                    .get(&full)
                    .or_else(|| self.named.get(name))
                    .cloned()
                    .ok_or_else(|| format!("the Avro schema names an undefined type '{name}'"))
            }
            Json::Array(branches) => {
                let non_null: Vec<&Json> = branches.iter().filter(|b| !is_null_json(b)).collect();
                if branches.len() == 1 && non_null.len() == 1 {
                    // AvroData flattens a union of one type (flatten.singleton.unions).
                    return self.schema(non_null[0], namespace, field_default);
                }
                if non_null.len() == 1 && branches.len() == 2 {
                    let mut s = self.schema(non_null[0], namespace, None)?;
                    s.optional = true;
                    if let Some(d) = field_default.filter(|d| !d.is_null()) {
                        s.default = json_default(&s, d).map(Box::new);
                    }
                    return Ok(s);
                }
                self.union(branches, namespace, field_default)
            }
            Json::Object(o) => self.object(o, namespace),
            other => Err(format!("{other} is not an Avro schema")),
        }
    }

    /// A union of several non-null types: AvroData's `io.confluent.connect.avro.Union` struct.
    fn union(
        &mut self,
        branches: &[Json],
        namespace: Option<&str>,
        field_default: Option<&Json>,
    ) -> Result<Schema, String> {
        let mut fields: Vec<Field> = Vec::with_capacity(branches.len());
        let mut optional = false;
        for branch in branches {
            if is_null_json(branch) {
                optional = true;
                continue;
            }
            let name = union_member_name_json(branch)?;
            if fields.iter().any(|f| f.name == name) {
                return Err(format!(
                    "the Avro union {} has two members named '{name}' (a Kafka Connect union struct names its fields after the member types, without namespaces)",
                    Json::Array(branches.to_vec())
                ));
            }
            let mut member = self.schema(branch, namespace, None)?;
            member.optional = true;
            fields.push(Field::new(name, member));
        }
        let mut schema = Schema::struct_of(fields).named(UNION_TYPE_NAME);
        schema.optional = optional;
        // A field's default is a value of the union's first type.
        if let (Some(d), Some(first)) = (field_default, branches.first()) {
            if !d.is_null() && !is_null_json(first) {
                let member = &schema.fields()[0];
                if let Some(v) = json_default(&member.schema, d) {
                    let mut value = Struct::with_capacity(schema.fields().len());
                    for f in schema.fields() {
                        value.put(f.name.clone(), Value::Null);
                    }
                    value.put(member.name.clone(), v);
                    schema.default = Some(Box::new(Value::Struct(value)));
                }
            }
        }
        Ok(schema)
    }

    fn object(&mut self, o: &Map<String, Json>, namespace: Option<&str>) -> Result<Schema, String> {
        let ty = o.get("type").ok_or("an Avro schema object has no type")?;
        let logical = o.get("logicalType").and_then(Json::as_str);
        let connect_type = o.get(CONNECT_TYPE_PROP).and_then(Json::as_str);
        let mut schema = match ty.as_str() {
            Some("record") => return self.record(o, namespace),
            Some("enum") => {
                let name = full_name(
                    o.get("name").and_then(Json::as_str).unwrap_or(""),
                    namespace,
                );
                let mut s = Schema::string().with_parameter(AVRO_TYPE_ENUM, name.clone());
                for sym in o
                    .get("symbols")
                    .and_then(Json::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(sym) = sym.as_str() {
                        s = s.with_parameter(format!("{AVRO_TYPE_ENUM}.{sym}"), sym);
                    }
                }
                self.named.insert(name, s.clone());
                s
            }
            Some("fixed") => {
                let name = full_name(
                    o.get("name").and_then(Json::as_str).unwrap_or(""),
                    namespace,
                );
                let size = o.get("size").and_then(Json::as_i64).unwrap_or(0);
                let mut s = decimal_or_bytes(o, logical);
                s.parameters
                    .insert(CONNECT_AVRO_FIXED_SIZE_PROP.into(), size.to_string());
                self.named.insert(name, s.clone());
                s
            }
            Some("array") => {
                let items = o.get("items").ok_or("an Avro array has no items")?;
                let item = self.schema(items, namespace, None)?;
                let is_entry = item.name.as_deref()
                    == Some(&format!("{NAMESPACE}.{MAP_ENTRY_TYPE_NAME}"))
                    || items.get(CONNECT_INTERNAL_TYPE_NAME).and_then(Json::as_str)
                        == Some(MAP_ENTRY_TYPE_NAME);
                match (is_entry, item.field("key"), item.field("value")) {
                    (true, Some(k), Some(v)) => Schema::map(k.schema.clone(), v.schema.clone()),
                    _ => Schema::array(item),
                }
            }
            Some("map") => {
                let values = o.get("values").ok_or("an Avro map has no values")?;
                Schema::map(Schema::string(), self.schema(values, namespace, None)?)
            }
            Some("bytes") => decimal_or_bytes(o, logical),
            Some("int") => match (logical, connect_type) {
                (Some("date"), _) => Schema::date(),
                (Some("time-millis"), _) => Schema::time(),
                (_, Some("int8")) => Schema::int8(),
                (_, Some("int16")) => Schema::int16(),
                _ => Schema::int32(),
            },
            Some("long") => match logical {
                Some("timestamp-millis") => Schema::timestamp(),
                _ => Schema::int64(),
            },
            Some(name) => self.schema(&Json::String(name.to_string()), namespace, None)?,
            // `{"type": {...}}` or `{"type": [...]}`: the inner schema.
            None => self.schema(ty, namespace, None)?,
        };
        apply_connect_props(&mut schema, o);
        Ok(schema)
    }

    fn record(&mut self, o: &Map<String, Json>, namespace: Option<&str>) -> Result<Schema, String> {
        let name = o
            .get("name")
            .and_then(Json::as_str)
            .unwrap_or(DEFAULT_SCHEMA_NAME);
        let ns = o.get("namespace").and_then(Json::as_str).or(namespace);
        let full = full_name(name, ns);
        let record_ns = split_name(&full).0.map(str::to_string);
        // Registered before the fields, so a recursive reference resolves (to a shell).
        self.named.insert(
            full.clone(),
            Schema::struct_of(Vec::new()).named(full.clone()),
        );
        let mut fields = Vec::new();
        for f in o
            .get("fields")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            let fname = f
                .get("name")
                .and_then(Json::as_str)
                .ok_or("an Avro field has no name")?;
            let ftype = f.get("type").ok_or("an Avro field has no type")?;
            let fschema = self.schema(ftype, record_ns.as_deref(), f.get("default"))?;
            fields.push(Field::new(fname, fschema));
        }
        let mut schema = Schema::struct_of(fields);
        if !full.starts_with(&format!("{NAMESPACE}.{DEFAULT_SCHEMA_NAME}")) {
            schema.name = Some(full.clone());
        }
        if let Some(doc) = o.get("doc").and_then(Json::as_str) {
            schema
                .parameters
                .insert(AVRO_RECORD_DOC_PROP.into(), doc.to_string());
        }
        apply_connect_props(&mut schema, o);
        self.named.insert(full, schema.clone());
        Ok(schema)
    }
}

fn decimal_or_bytes(o: &Map<String, Json>, logical: Option<&str>) -> Schema {
    if logical == Some("decimal") {
        let scale = o.get("scale").and_then(Json::as_i64).unwrap_or(0);
        let mut s = Schema::decimal(i32::try_from(scale).unwrap_or(0));
        if let Some(p) = o.get("precision").and_then(Json::as_i64) {
            if p != DECIMAL_PRECISION_DEFAULT {
                s.parameters
                    .insert(DECIMAL_PRECISION_PARAM.into(), p.to_string());
            }
        }
        s
    } else {
        Schema::bytes()
    }
}

/// `connect.name`, `connect.version`, `connect.doc`, `connect.parameters`, `connect.default`.
fn apply_connect_props(schema: &mut Schema, o: &Map<String, Json>) {
    if let Some(name) = o.get(CONNECT_NAME_PROP).and_then(Json::as_str) {
        schema.name = Some(name.to_string());
    }
    if let Some(v) = o.get(CONNECT_VERSION_PROP).and_then(Json::as_i64) {
        schema.version = i32::try_from(v).ok();
    }
    if let Some(doc) = o.get(CONNECT_DOC_PROP).and_then(Json::as_str) {
        schema.doc = Some(doc.to_string());
    }
    if let Some(params) = o.get(CONNECT_PARAMETERS_PROP).and_then(Json::as_object) {
        for (k, v) in params {
            let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            schema.parameters.insert(k.clone(), text);
        }
    }
    if let Some(d) = o.get(CONNECT_DEFAULT_VALUE_PROP) {
        schema.default = json_default(schema, d).map(Box::new);
    }
}

/// A default value (Avro's JSON form) of a primitive schema.
fn json_default(schema: &Schema, d: &Json) -> Option<Value> {
    Some(match (&schema.ty, d) {
        (SchemaType::Int8, Json::Number(n)) => Value::Int8(i8::try_from(n.as_i64()?).ok()?),
        (SchemaType::Int16, Json::Number(n)) => Value::Int16(i16::try_from(n.as_i64()?).ok()?),
        (SchemaType::Int32, Json::Number(n)) => Value::Int32(i32::try_from(n.as_i64()?).ok()?),
        (SchemaType::Int64, Json::Number(n)) => Value::Int64(n.as_i64()?),
        (SchemaType::Float32, Json::Number(n)) => Value::Float32(n.as_f64()? as f32),
        (SchemaType::Float64, Json::Number(n)) => Value::Float64(n.as_f64()?),
        (SchemaType::Boolean, Json::Bool(b)) => Value::Boolean(*b),
        (SchemaType::String, Json::String(s)) => Value::String(s.clone()),
        (SchemaType::Bytes, Json::String(s)) => Value::Bytes(
            s.chars()
                .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
                .collect(),
        ),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------

/// Named types of an Avro schema, to follow references.
pub type Names = HashMap<Name, AvroSchema>;

/// The named types defined in `schema`.
pub fn names_of(schema: &AvroSchema) -> Names {
    names_of_all([schema])
}

/// The named types defined in `schemas` (a schema and the ones it references).
pub fn names_of_all<'a>(schemas: impl IntoIterator<Item = &'a AvroSchema>) -> Names {
    let mut names = Names::new();
    for schema in schemas {
        collect_names(schema, &mut names);
    }
    names
}

fn collect_names(schema: &AvroSchema, names: &mut Names) {
    match schema {
        AvroSchema::Record(r) => {
            names.insert(r.name.clone(), schema.clone());
            for f in &r.fields {
                collect_names(&f.schema, names);
            }
        }
        AvroSchema::Enum(e) => {
            names.insert(e.name.clone(), schema.clone());
        }
        AvroSchema::Fixed(f) => {
            names.insert(f.name.clone(), schema.clone());
        }
        AvroSchema::Array(a) => collect_names(&a.items, names),
        AvroSchema::Map(m) => collect_names(&m.types, names),
        AvroSchema::Union(u) => {
            for v in u.variants() {
                collect_names(v, names);
            }
        }
        _ => {}
    }
}

/// A Connect value as the Avro value of `schema` (the writer's schema).
///
/// # Errors
/// A value that does not fit the schema, with the path to it.
pub fn to_avro(schema: &AvroSchema, names: &Names, value: &Value) -> Result<AvroValue, String> {
    to_avro_at(schema, names, value, "")
}

/// The Connect field name of a union member, as [`union_member_name_json`].
fn union_member_name(member: &AvroSchema) -> &str {
    match member {
        AvroSchema::Record(r) => &r.name.name,
        AvroSchema::Enum(e) => &e.name.name,
        AvroSchema::Fixed(f) => &f.name.name,
        AvroSchema::Ref { name } => &name.name,
        AvroSchema::Decimal(d) => union_member_name(&d.inner),
        AvroSchema::Null => "null",
        AvroSchema::Boolean => "boolean",
        AvroSchema::Int | AvroSchema::Date | AvroSchema::TimeMillis => "int",
        AvroSchema::Long
        | AvroSchema::TimeMicros
        | AvroSchema::TimestampMillis
        | AvroSchema::TimestampMicros
        | AvroSchema::TimestampNanos
        | AvroSchema::LocalTimestampMillis
        | AvroSchema::LocalTimestampMicros
        | AvroSchema::LocalTimestampNanos => "long",
        AvroSchema::Float => "float",
        AvroSchema::Double => "double",
        AvroSchema::Bytes | AvroSchema::BigDecimal => "bytes",
        AvroSchema::String | AvroSchema::Uuid => "string",
        AvroSchema::Array(_) => "array",
        AvroSchema::Map(_) => "map",
        AvroSchema::Union(_) => "union",
        AvroSchema::Duration => "fixed",
    }
}

/// When `value` is a union struct (`io.confluent.connect.avro.Union`) for `variants` (every
/// field named after a member), the member to write: its index and value, or `None` when no
/// field is set. `None` when `value` is not such a struct.
fn union_struct_member<'v>(
    variants: &[AvroSchema],
    value: &'v Value,
) -> Option<Option<(usize, &'v Value)>> {
    let Value::Struct(s) = value else {
        return None;
    };
    let member = |name: &str| variants.iter().position(|v| union_member_name(v) == name);
    if variants
        .iter()
        .filter(|v| !matches!(v, AvroSchema::Null))
        .count()
        < 2
        || s.fields().is_empty()
        || !s.fields().iter().all(|(name, _)| member(name).is_some())
    {
        return None;
    }
    // As AvroData: the first field set decides.
    Some(
        s.fields()
            .iter()
            .find(|(_, v)| !v.is_null())
            .and_then(|(name, v)| Some((member(name)?, v))),
    )
}

fn mismatch(path: &str, schema: &AvroSchema, value: &Value) -> String {
    let at = if path.is_empty() {
        "the value".to_string()
    } else {
        format!("field '{path}'")
    };
    format!(
        "{at}: a {} does not fit the Avro type {:?}",
        value.type_name(),
        apache_avro::schema::SchemaKind::from(schema)
    )
}

fn to_avro_at(
    schema: &AvroSchema,
    names: &Names,
    value: &Value,
    path: &str,
) -> Result<AvroValue, String> {
    let int = || value.as_i64().ok_or_else(|| mismatch(path, schema, value));
    Ok(match schema {
        AvroSchema::Ref { name } => {
            let target = names
                .get(name)
                .ok_or_else(|| format!("the Avro schema refers to an undefined type {name:?}"))?;
            return to_avro_at(target, names, value, path);
        }
        AvroSchema::Union(u) => {
            let variants = u.variants();
            if value.is_null() {
                let i = variants
                    .iter()
                    .position(|v| matches!(v, AvroSchema::Null))
                    .ok_or_else(|| {
                        format!(
                            "{}: null for a schema that is not optional",
                            if path.is_empty() { "the value" } else { path }
                        )
                    })?;
                return Ok(AvroValue::Union(i as u32, Box::new(AvroValue::Null)));
            }
            if let Some(chosen) = union_struct_member(variants, value) {
                return Ok(match chosen {
                    Some((i, member_value)) => AvroValue::Union(
                        i as u32,
                        Box::new(to_avro_at(&variants[i], names, member_value, path)?),
                    ),
                    None => {
                        let i = variants
                            .iter()
                            .position(|v| matches!(v, AvroSchema::Null))
                            .ok_or_else(|| {
                                format!(
                                    "{}: a union struct with no field set for a union without null",
                                    if path.is_empty() { "the value" } else { path }
                                )
                            })?;
                        AvroValue::Union(i as u32, Box::new(AvroValue::Null))
                    }
                });
            }
            let mut last = None;
            for (i, v) in variants.iter().enumerate() {
                if matches!(v, AvroSchema::Null) {
                    continue;
                }
                match to_avro_at(v, names, value, path) {
                    Ok(inner) => return Ok(AvroValue::Union(i as u32, Box::new(inner))),
                    Err(e) => last = Some(e),
                }
            }
            return Err(last.unwrap_or_else(|| mismatch(path, schema, value)));
        }
        AvroSchema::Null if value.is_null() => AvroValue::Null,
        AvroSchema::Boolean => match value {
            Value::Boolean(b) => AvroValue::Boolean(*b),
            _ => return Err(mismatch(path, schema, value)),
        },
        AvroSchema::Int | AvroSchema::Date | AvroSchema::TimeMillis => {
            AvroValue::Int(i32::try_from(int()?).map_err(|_| mismatch(path, schema, value))?)
        }
        AvroSchema::Long
        | AvroSchema::TimestampMillis
        | AvroSchema::TimestampMicros
        | AvroSchema::TimeMicros
        | AvroSchema::LocalTimestampMillis
        | AvroSchema::LocalTimestampMicros => AvroValue::Long(int()?),
        AvroSchema::Float => match value {
            Value::Float32(f) => AvroValue::Float(*f),
            v => AvroValue::Float(v.as_f64().ok_or_else(|| mismatch(path, schema, value))? as f32),
        },
        AvroSchema::Double => AvroValue::Double(
            value
                .as_f64()
                .ok_or_else(|| mismatch(path, schema, value))?,
        ),
        AvroSchema::String | AvroSchema::Uuid => match value {
            Value::String(s) => AvroValue::String(s.clone()),
            _ => return Err(mismatch(path, schema, value)),
        },
        AvroSchema::Bytes => match value {
            Value::Bytes(b) => AvroValue::Bytes(b.clone()),
            _ => return Err(mismatch(path, schema, value)),
        },
        AvroSchema::Decimal(_) => match value {
            Value::Bytes(b) => AvroValue::Decimal(apache_avro::Decimal::from(b)),
            _ => return Err(mismatch(path, schema, value)),
        },
        AvroSchema::Fixed(f) => match value {
            Value::Bytes(b) if b.len() == f.size => AvroValue::Fixed(f.size, b.clone()),
            _ => return Err(mismatch(path, schema, value)),
        },
        AvroSchema::Enum(e) => match value {
            Value::String(s) => {
                let i = e.symbols.iter().position(|sym| sym == s).ok_or_else(|| {
                    format!("{path}: '{s}' is not a symbol of the Avro enum {}", e.name)
                })?;
                AvroValue::Enum(i as u32, s.clone())
            }
            _ => return Err(mismatch(path, schema, value)),
        },
        AvroSchema::Array(a) => match value {
            Value::Array(items) => AvroValue::Array(
                items
                    .iter()
                    .map(|v| to_avro_at(&a.items, names, v, path))
                    .collect::<Result<_, _>>()?,
            ),
            // A map with keys that are not strings: an array of key/value records.
            Value::Map(entries) => AvroValue::Array(
                entries
                    .iter()
                    .map(|(k, v)| {
                        let entry = Value::Struct(
                            Struct::new()
                                .with("key", k.clone())
                                .with("value", v.clone()),
                        );
                        to_avro_at(&a.items, names, &entry, path)
                    })
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(mismatch(path, schema, value)),
        },
        AvroSchema::Map(m) => match value {
            Value::Map(entries) => AvroValue::Map(
                entries
                    .iter()
                    .map(|(k, v)| {
                        let key = k
                            .as_str()
                            .ok_or_else(|| mismatch(path, schema, k))?
                            .to_string();
                        Ok((key, to_avro_at(&m.types, names, v, path)?))
                    })
                    .collect::<Result<_, String>>()?,
            ),
            _ => return Err(mismatch(path, schema, value)),
        },
        AvroSchema::Record(r) => match value {
            Value::Struct(s) => {
                let mut fields = Vec::with_capacity(r.fields.len());
                for f in &r.fields {
                    let sub = if path.is_empty() {
                        f.name.clone()
                    } else {
                        format!("{path}.{}", f.name)
                    };
                    let v = match s.get(&f.name) {
                        Some(v) => to_avro_at(&f.schema, names, v, &sub)?,
                        None => match &f.default {
                            Some(d) => AvroValue::from(d.clone())
                                .resolve(&f.schema)
                                .map_err(|e| format!("{sub}: {e}"))?,
                            None => to_avro_at(&f.schema, names, &Value::Null, &sub)?,
                        },
                    };
                    fields.push((f.name.clone(), v));
                }
                AvroValue::Record(fields)
            }
            _ => return Err(mismatch(path, schema, value)),
        },
        _ => return Err(mismatch(path, schema, value)),
    })
}

/// Why [`write_avro`] gave up: a data error (as [`to_avro`] reports it), or a value it leaves
/// to apache-avro's general writer (a record field filled from its schema default).
#[derive(Debug, PartialEq, Eq)]
pub enum WriteError {
    /// The value does not fit the schema.
    Data(String),
    /// Write it with [`to_avro`] and apache-avro instead.
    Fallback,
}

/// Where in the value a field is, rendered only for an error message.
#[derive(Clone, Copy)]
struct At<'a> {
    parent: Option<&'a At<'a>>,
    name: &'a str,
}

impl At<'_> {
    const ROOT: At<'static> = At {
        parent: None,
        name: "",
    };

    fn render(&self) -> String {
        match self.parent {
            None => self.name.to_string(),
            Some(p) if p.parent.is_none() && p.name.is_empty() => self.name.to_string(),
            Some(p) => format!("{}.{}", p.render(), self.name),
        }
    }
}

/// Avro's variable-length zig-zag encoding of an `int` or a `long` (the same bytes for a value
/// in `int`'s range).
fn write_long(n: i64, out: &mut Vec<u8>) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn write_bytes(b: &[u8], out: &mut Vec<u8>) {
    write_long(b.len() as i64, out);
    out.extend_from_slice(b);
}

/// Writes `value` as the Avro binary datum of `schema` straight into `out`: the same bytes as
/// apache-avro's `to_avro_datum` of [`to_avro`]'s value (maps aside, whose entries keep the
/// Connect map's order), without building that value or resolving the schema per record.
/// On an error `out` may hold part of the datum.
///
/// # Errors
/// [`WriteError::Data`] as [`to_avro`] would fail; [`WriteError::Fallback`] for a record
/// field missing from the struct that has a default.
pub fn write_avro(
    schema: &AvroSchema,
    names: &Names,
    value: &Value,
    out: &mut Vec<u8>,
) -> Result<(), WriteError> {
    write_at(schema, names, value, &At::ROOT, out)
}

fn write_at(
    schema: &AvroSchema,
    names: &Names,
    value: &Value,
    at: &At<'_>,
    out: &mut Vec<u8>,
) -> Result<(), WriteError> {
    let fail = || WriteError::Data(mismatch(&at.render(), schema, value));
    let int = || value.as_i64().ok_or_else(fail);
    match schema {
        AvroSchema::Ref { name } => {
            let target = names.get(name).ok_or_else(|| {
                WriteError::Data(format!(
                    "the Avro schema refers to an undefined type {name:?}"
                ))
            })?;
            return write_at(target, names, value, at, out);
        }
        AvroSchema::Union(u) => {
            let variants = u.variants();
            let null_index = || variants.iter().position(|v| matches!(v, AvroSchema::Null));
            let path = || {
                let p = at.render();
                if p.is_empty() {
                    "the value".to_string()
                } else {
                    p
                }
            };
            if value.is_null() {
                let i = null_index().ok_or_else(|| {
                    WriteError::Data(format!(
                        "{}: null for a schema that is not optional",
                        path()
                    ))
                })?;
                write_long(i as i64, out);
                return Ok(());
            }
            if let Some(chosen) = union_struct_member(variants, value) {
                return match chosen {
                    Some((i, member_value)) => {
                        write_long(i as i64, out);
                        write_at(&variants[i], names, member_value, at, out)
                    }
                    None => {
                        let i = null_index().ok_or_else(|| {
                            WriteError::Data(format!(
                                "{}: a union struct with no field set for a union without null",
                                path()
                            ))
                        })?;
                        write_long(i as i64, out);
                        Ok(())
                    }
                };
            }
            let mut last = None;
            for (i, v) in variants.iter().enumerate() {
                if matches!(v, AvroSchema::Null) {
                    continue;
                }
                let mark = out.len();
                write_long(i as i64, out);
                match write_at(v, names, value, at, out) {
                    Ok(()) => return Ok(()),
                    Err(WriteError::Fallback) => return Err(WriteError::Fallback),
                    Err(e) => {
                        out.truncate(mark);
                        last = Some(e);
                    }
                }
            }
            return Err(last.unwrap_or_else(fail));
        }
        AvroSchema::Null if value.is_null() => {}
        AvroSchema::Boolean => match value {
            Value::Boolean(b) => out.push(u8::from(*b)),
            _ => return Err(fail()),
        },
        AvroSchema::Int | AvroSchema::Date | AvroSchema::TimeMillis => {
            let n = i32::try_from(int()?).map_err(|_| fail())?;
            write_long(i64::from(n), out);
        }
        AvroSchema::Long
        | AvroSchema::TimestampMillis
        | AvroSchema::TimestampMicros
        | AvroSchema::TimeMicros
        | AvroSchema::LocalTimestampMillis
        | AvroSchema::LocalTimestampMicros => write_long(int()?, out),
        AvroSchema::Float => {
            let f = match value {
                Value::Float32(f) => *f,
                v => v.as_f64().ok_or_else(fail)? as f32,
            };
            out.extend_from_slice(&f.to_le_bytes());
        }
        AvroSchema::Double => {
            let f = value.as_f64().ok_or_else(fail)?;
            out.extend_from_slice(&f.to_le_bytes());
        }
        AvroSchema::String | AvroSchema::Uuid => match value {
            Value::String(s) => write_bytes(s.as_bytes(), out),
            _ => return Err(fail()),
        },
        AvroSchema::Bytes => match value {
            Value::Bytes(b) => write_bytes(b, out),
            _ => return Err(fail()),
        },
        AvroSchema::Decimal(d) => match (value, &*d.inner) {
            (Value::Bytes(b), AvroSchema::Bytes) => write_bytes(b, out),
            (Value::Bytes(b), AvroSchema::Fixed(f)) if b.len() <= f.size => {
                // Sign-extended to the fixed size, as apache-avro writes it.
                let fill = if b.first().is_some_and(|x| x & 0x80 != 0) {
                    0xff
                } else {
                    0
                };
                out.extend(std::iter::repeat_n(fill, f.size - b.len()));
                out.extend_from_slice(b);
            }
            (Value::Bytes(_), _) => return Err(WriteError::Fallback),
            _ => return Err(fail()),
        },
        AvroSchema::Fixed(f) => match value {
            Value::Bytes(b) if b.len() == f.size => out.extend_from_slice(b),
            _ => return Err(fail()),
        },
        AvroSchema::Enum(e) => match value {
            Value::String(s) => {
                let i = e.symbols.iter().position(|sym| sym == s).ok_or_else(|| {
                    WriteError::Data(format!(
                        "{}: '{s}' is not a symbol of the Avro enum {}",
                        at.render(),
                        e.name
                    ))
                })?;
                write_long(i as i64, out);
            }
            _ => return Err(fail()),
        },
        AvroSchema::Array(a) => match value {
            Value::Array(items) => {
                if !items.is_empty() {
                    write_long(items.len() as i64, out);
                    for v in items {
                        write_at(&a.items, names, v, at, out)?;
                    }
                }
                write_long(0, out);
            }
            // A map with keys that are not strings: an array of key/value records.
            Value::Map(entries) => {
                if !entries.is_empty() {
                    write_long(entries.len() as i64, out);
                    for (k, v) in entries {
                        let entry = Value::Struct(
                            Struct::new()
                                .with("key", k.clone())
                                .with("value", v.clone()),
                        );
                        write_at(&a.items, names, &entry, at, out)?;
                    }
                }
                write_long(0, out);
            }
            _ => return Err(fail()),
        },
        AvroSchema::Map(m) => match value {
            Value::Map(entries) => {
                if !entries.is_empty() {
                    write_long(entries.len() as i64, out);
                    for (k, v) in entries {
                        let key = k
                            .as_str()
                            .ok_or_else(|| WriteError::Data(mismatch(&at.render(), schema, k)))?;
                        write_bytes(key.as_bytes(), out);
                        write_at(&m.types, names, v, at, out)?;
                    }
                }
                write_long(0, out);
            }
            _ => return Err(fail()),
        },
        AvroSchema::Record(r) => match value {
            Value::Struct(s) => {
                for f in &r.fields {
                    let sub = At {
                        parent: Some(at),
                        name: &f.name,
                    };
                    match s.get(&f.name) {
                        Some(v) => write_at(&f.schema, names, v, &sub, out)?,
                        None if f.default.is_some() => return Err(WriteError::Fallback),
                        None => write_at(&f.schema, names, &Value::Null, &sub, out)?,
                    }
                }
            }
            _ => return Err(fail()),
        },
        _ => return Err(fail()),
    }
    Ok(())
}

/// An Avro value read with the writer's schema `avro` as the Connect value of `schema` (from
/// [`connect_schema_of`] of the same writer's schema); `names` resolves `avro`'s references.
///
/// # Errors
/// A value of an Avro type the schema does not expect.
pub fn to_connect(
    schema: &Schema,
    avro: &AvroSchema,
    names: &Names,
    value: AvroValue,
) -> Result<Value, String> {
    let avro = resolve(avro, names)?;
    Ok(match value {
        AvroValue::Union(i, inner) => {
            let AvroSchema::Union(u) = avro else {
                return Err(format!("an Avro union value for the Avro type {avro:?}"));
            };
            let member = u
                .variants()
                .get(i as usize)
                .ok_or_else(|| format!("the Avro union has no member {i}"))?;
            if !is_union(schema) {
                return to_connect(schema, member, names, *inner);
            }
            if matches!(*inner, AvroValue::Null) {
                return Ok(Value::Null);
            }
            let name = union_member_name(resolve(member, names)?);
            let field = schema.field(name).ok_or_else(|| {
                format!(
                    "the Kafka Connect union struct has no field '{name}' for an Avro union member"
                )
            })?;
            let mut out = Struct::with_capacity(schema.fields().len());
            for f in schema.fields() {
                out.put(f.name.clone(), Value::Null);
            }
            out.put(
                field.name.clone(),
                to_connect(&field.schema, member, names, *inner)?,
            );
            Value::Struct(out)
        }
        AvroValue::Null => Value::Null,
        AvroValue::Boolean(b) => Value::Boolean(b),
        AvroValue::Int(i) | AvroValue::Date(i) | AvroValue::TimeMillis(i) => match schema.ty {
            SchemaType::Int8 => Value::Int8(i8::try_from(i).map_err(|e| e.to_string())?),
            SchemaType::Int16 => Value::Int16(i16::try_from(i).map_err(|e| e.to_string())?),
            SchemaType::Int64 => Value::Int64(i.into()),
            _ => Value::Int32(i),
        },
        AvroValue::Long(l)
        | AvroValue::TimestampMillis(l)
        | AvroValue::TimestampMicros(l)
        | AvroValue::TimeMicros(l)
        | AvroValue::LocalTimestampMillis(l)
        | AvroValue::LocalTimestampMicros(l) => Value::Int64(l),
        AvroValue::Float(f) => match schema.ty {
            SchemaType::Float64 => Value::Float64(f.into()),
            _ => Value::Float32(f),
        },
        AvroValue::Double(d) => Value::Float64(d),
        AvroValue::Bytes(b) | AvroValue::Fixed(_, b) => Value::Bytes(b),
        AvroValue::Decimal(d) => Value::Bytes(Vec::<u8>::try_from(&d).map_err(|e| e.to_string())?),
        AvroValue::String(s) | AvroValue::Enum(_, s) => Value::String(s),
        AvroValue::Uuid(u) => Value::String(u.to_string()),
        AvroValue::Array(items) => {
            let AvroSchema::Array(a) = avro else {
                return Err(format!("an Avro array value for the Avro type {avro:?}"));
            };
            match &schema.ty {
                SchemaType::Map(k, v) => {
                    let AvroSchema::Record(entry) = resolve(&a.items, names)? else {
                        return Err("a map entry's Avro type is a record".into());
                    };
                    let field_schema = |name: &str| {
                        entry
                            .lookup
                            .get(name)
                            .map(|&i| &entry.fields[i].schema)
                            .ok_or_else(|| format!("the Avro map entry record has no '{name}'"))
                    };
                    let (key_avro, value_avro) = (field_schema("key")?, field_schema("value")?);
                    Value::Map(
                        items
                            .into_iter()
                            .map(|entry| match entry {
                                AvroValue::Record(fields) => {
                                    let mut key = Value::Null;
                                    let mut value = Value::Null;
                                    for (name, f) in fields {
                                        match name.as_str() {
                                            "key" => key = to_connect(k, key_avro, names, f)?,
                                            "value" => {
                                                value = to_connect(v, value_avro, names, f)?;
                                            }
                                            _ => {}
                                        }
                                    }
                                    Ok((key, value))
                                }
                                other => Err(format!("a map entry is a record, not {other:?}")),
                            })
                            .collect::<Result<_, String>>()?,
                    )
                }
                SchemaType::Array(item) => Value::Array(
                    items
                        .into_iter()
                        .map(|v| to_connect(item, &a.items, names, v))
                        .collect::<Result<_, _>>()?,
                ),
                _ => return Err(format!("an Avro array for a Connect {}", schema.ty.name())),
            }
        }
        AvroValue::Map(map) => {
            let (SchemaType::Map(_, v), AvroSchema::Map(m)) = (&schema.ty, avro) else {
                return Err(format!("an Avro map for a Connect {}", schema.ty.name()));
            };
            let sorted: BTreeMap<String, AvroValue> = map.into_iter().collect();
            Value::Map(
                sorted
                    .into_iter()
                    .map(|(k, x)| Ok((Value::String(k), to_connect(v, &m.types, names, x)?)))
                    .collect::<Result<_, String>>()?,
            )
        }
        AvroValue::Record(fields) => {
            let AvroSchema::Record(r) = avro else {
                return Err(format!("an Avro record value for the Avro type {avro:?}"));
            };
            let mut by_name: HashMap<String, (AvroValue, &AvroSchema)> = fields
                .into_iter()
                .filter_map(|(name, v)| {
                    let i = *r.lookup.get(&name)?;
                    Some((name, (v, &r.fields[i].schema)))
                })
                .collect();
            let mut out = Struct::with_capacity(schema.fields().len());
            for f in schema.fields() {
                let v = match by_name.remove(&f.name) {
                    Some((v, field_avro)) => to_connect(&f.schema, field_avro, names, v)?,
                    None => Value::Null,
                };
                out.put(f.name.clone(), v);
            }
            Value::Struct(out)
        }
        other => {
            return Err(format!(
                "the Avro value {other:?} has no Kafka Connect type"
            ))
        }
    })
}

/// `schema`, or the type it names.
fn resolve<'a>(schema: &'a AvroSchema, names: &'a Names) -> Result<&'a AvroSchema, String> {
    match schema {
        AvroSchema::Ref { name } => names
            .get(name)
            .ok_or_else(|| format!("the Avro schema refers to an undefined type {name:?}")),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::Decimal;

    fn row_schema() -> Schema {
        Schema::struct_of(vec![
            Field::new("id", Schema::int64()),
            Field::new("small", Schema::int16()),
            Field::new("price", Schema::decimal(2)),
            Field::new("at", Schema::timestamp()),
            Field::new("day", Schema::date().optional()),
            Field::new("note", Schema::string().optional()),
        ])
        .named("orders")
    }

    /// The datum apache-avro writes for [`to_avro`]'s value, checked to be the bytes
    /// [`write_avro`] writes straight from the Connect value.
    fn datum(avro: &AvroSchema, names: &Names, value: &Value) -> Vec<u8> {
        let general =
            apache_avro::to_avro_datum(avro, to_avro(avro, names, value).unwrap()).unwrap();
        let mut direct = Vec::new();
        write_avro(avro, names, value, &mut direct).unwrap();
        assert_eq!(
            direct, general,
            "direct and apache-avro datums of {value:?}"
        );
        general
    }

    /// Every Avro type the mapping writes, through the direct writer and apache-avro's.
    #[test]
    fn the_direct_writer_writes_apache_avros_bytes() {
        let json = serde_json::json!({
            "type": "record", "name": "All", "namespace": "t",
            "fields": [
                {"name": "b", "type": "boolean"},
                {"name": "i", "type": "int"},
                {"name": "l", "type": "long"},
                {"name": "f", "type": "float"},
                {"name": "d", "type": "double"},
                {"name": "s", "type": "string"},
                {"name": "by", "type": "bytes"},
                {"name": "dec", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
                {"name": "fdec", "type": {"type": "fixed", "name": "F8", "size": 8, "logicalType": "decimal", "precision": 18, "scale": 2}},
                {"name": "fx", "type": {"type": "fixed", "name": "F3", "size": 3}},
                {"name": "day", "type": {"type": "int", "logicalType": "date"}},
                {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
                {"name": "e", "type": {"type": "enum", "name": "Mood", "symbols": ["sad", "ok", "happy"]}},
                {"name": "arr", "type": {"type": "array", "items": "long"}},
                {"name": "empty", "type": {"type": "array", "items": "string"}},
                {"name": "m", "type": {"type": "map", "values": "string"}},
                {"name": "opt", "type": ["null", "string"], "default": null},
                {"name": "none", "type": ["null", "long"], "default": null},
                {"name": "multi", "type": ["null", "int", "string"], "default": null},
                {"name": "inner", "type": {"type": "record", "name": "Inner", "fields": [
                    {"name": "x", "type": "int"}, {"name": "again", "type": ["null", "Inner"], "default": null}]}}
            ]
        });
        let avro = AvroSchema::parse(&json).unwrap();
        let names = names_of(&avro);
        let neg = Decimal::parse("-12345.67").unwrap();
        let inner = Value::Struct(
            Struct::new().with("x", Value::Int32(1)).with(
                "again",
                Value::Struct(
                    Struct::new()
                        .with("x", Value::Int32(2))
                        .with("again", Value::Null),
                ),
            ),
        );
        let value = Value::Struct(
            Struct::new()
                .with("b", true)
                .with("i", Value::Int32(-70_000))
                .with("l", i64::MIN)
                .with("f", Value::Float32(-1.25))
                .with("d", Value::Float64(6.02e23))
                .with("s", "h\u{e9}llo")
                .with("by", Value::Bytes(vec![0, 255, 7]))
                .with("dec", Value::Bytes(neg.unscaled_bytes().to_vec()))
                .with("fdec", Value::Bytes(neg.unscaled_bytes().to_vec()))
                .with("fx", Value::Bytes(vec![1, 2, 3]))
                .with("day", Value::Int32(19_000))
                .with("ts", 1_700_000_000_123i64)
                .with("e", "happy")
                .with(
                    "arr",
                    Value::Array(vec![Value::Int64(1), Value::Int64(-1 << 40)]),
                )
                .with("empty", Value::Array(Vec::new()))
                .with("m", Value::Map(vec![(Value::from("k"), Value::from("v"))]))
                .with("opt", "present")
                .with("none", Value::Null)
                .with("multi", "text")
                .with("inner", inner),
        );
        assert!(!datum(&avro, &names, &value).is_empty());
        // A value that fits no type of its field fails the same way on both paths.
        let bad = Value::Struct(Struct::new().with("b", "not a boolean"));
        let general = to_avro(&avro, &names, &bad).unwrap_err();
        let mut out = Vec::new();
        assert_eq!(
            write_avro(&avro, &names, &bad, &mut out),
            Err(WriteError::Data(general))
        );
        // A missing field with a default is left to apache-avro's writer.
        let Value::Struct(full) = &value else {
            unreachable!()
        };
        let mut partial = Struct::new();
        for (name, v) in full.fields().iter().filter(|(name, _)| name != "opt") {
            partial.put(name.clone(), v.clone());
        }
        let partial = Value::Struct(partial);
        let mut out = Vec::new();
        assert_eq!(
            write_avro(&avro, &names, &partial, &mut out),
            Err(WriteError::Fallback)
        );
    }

    #[test]
    fn connect_schemas_map_as_confluents_avro_data() {
        let json = avro_schema_json(&row_schema());
        assert_eq!(
            json,
            json!({
                "type": "record", "name": "orders", "connect.name": "orders",
                "fields": [
                    {"name": "id", "type": "long"},
                    {"name": "small", "type": {"type": "int", "connect.type": "int16"}},
                    {"name": "price", "type": {"type": "bytes", "scale": 2, "precision": 64,
                        "connect.version": 1, "connect.parameters": {"scale": "2"},
                        "connect.name": "org.apache.kafka.connect.data.Decimal",
                        "logicalType": "decimal"}},
                    {"name": "at", "type": {"type": "long", "connect.version": 1,
                        "connect.name": "org.apache.kafka.connect.data.Timestamp",
                        "logicalType": "timestamp-millis"}},
                    {"name": "day", "type": ["null", {"type": "int", "connect.version": 1,
                        "connect.name": "org.apache.kafka.connect.data.Date",
                        "logicalType": "date"}], "default": null},
                    {"name": "note", "type": ["null", "string"], "default": null}
                ]
            })
        );
        let back = connect_schema_of(&json).unwrap();
        assert_eq!(back, row_schema());
        // apache-avro accepts it.
        AvroSchema::parse(&json).unwrap();
        // Unnamed structs get Confluent's default names, numbered after the first.
        let unnamed = Schema::struct_of(vec![Field::new(
            "a",
            Schema::struct_of(vec![Field::new("x", Schema::int32())]),
        )]);
        let json = avro_schema_json(&unnamed);
        assert_eq!(json["name"], "ConnectDefault");
        assert_eq!(json["namespace"], NAMESPACE);
        assert_eq!(json["fields"][0]["type"]["name"], "ConnectDefault2");
    }

    #[test]
    fn values_round_trip_through_avro_bytes() {
        let schema = row_schema();
        let avro = AvroSchema::parse(&avro_schema_json(&schema)).unwrap();
        let names = names_of(&avro);
        let price = Decimal::parse("-12345.67").unwrap();
        let value = Value::Struct(
            Struct::new()
                .with("id", 7i64)
                .with("small", Value::Int16(-3))
                .with("price", Value::Bytes(price.unscaled_bytes().to_vec()))
                .with("at", 1_700_000_000_123i64)
                .with("day", Value::Int32(19_000))
                .with("note", Value::Null),
        );
        let datum = datum(&avro, &names, &value);
        let read = apache_avro::from_avro_datum(&avro, &mut datum.as_slice(), None).unwrap();
        let back = to_connect(&schema, &avro, &names, read).unwrap();
        assert_eq!(back, value);
        let bad = Value::Struct(Struct::new().with("id", "x"));
        let err = to_avro(&avro, &names, &bad).unwrap_err();
        assert!(err.contains("field 'id'"), "{err}");
    }

    #[test]
    fn the_built_in_sources_schemas_round_trip() {
        use sluice_connector_http::stock::schema::{BAR_SCHEMA, KEY_SCHEMA, QUOTE_SCHEMA};
        for schema in [&*QUOTE_SCHEMA, &*BAR_SCHEMA, &*KEY_SCHEMA] {
            let json = avro_schema_json(schema);
            AvroSchema::parse(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(
                &connect_schema_of(&json).unwrap(),
                schema.as_ref(),
                "{json}"
            );
        }
    }

    #[test]
    fn maps_with_other_keys_are_entry_arrays() {
        let schema = Schema::map(Schema::int32(), Schema::string());
        let json = avro_schema_json(&schema);
        assert_eq!(json["type"], "array");
        assert_eq!(json["items"]["name"], MAP_ENTRY_TYPE_NAME);
        let avro = AvroSchema::parse(&json).unwrap();
        let names = names_of(&avro);
        let value = Value::Map(vec![(Value::Int32(1), Value::from("a"))]);
        let datum = datum(&avro, &names, &value);
        let read = apache_avro::from_avro_datum(&avro, &mut datum.as_slice(), None).unwrap();
        let back_schema = connect_schema_of(&json).unwrap();
        assert_eq!(back_schema, schema);
        assert_eq!(
            to_connect(&back_schema, &avro, &names, read).unwrap(),
            value
        );
    }

    /// A datum written with `avro` and read back as Connect data, as the converter does.
    fn through_bytes(avro: &AvroSchema, schema: &Schema, value: &Value) -> Value {
        let names = names_of(avro);
        let datum = datum(avro, &names, value);
        let read = apache_avro::from_avro_datum(avro, &mut datum.as_slice(), None).unwrap();
        to_connect(schema, avro, &names, read).unwrap()
    }

    /// A union struct value with `set` = `value` and every other field null.
    fn union_value(schema: &Schema, set: &str, value: Value) -> Value {
        let mut s = Struct::new();
        for f in schema.fields() {
            s.put(f.name.clone(), Value::Null);
        }
        s.put(set, value);
        Value::Struct(s)
    }

    #[test]
    fn unions_of_several_types_are_union_structs_as_avro_datas_to_connect_union() {
        // AvroDataTest.testToConnectUnion: primitives by type name, records by their name
        // without namespace; every field optional.
        let json = json!([
            "int",
            "string",
            {"type": "record", "name": "Test1", "fields": [{"name": "test", "type": "int"}]},
            {"type": "record", "name": "Test2", "namespace": "io.confluent",
             "fields": [{"name": "test", "type": "int"}]}
        ]);
        let record1 = Schema::struct_of(vec![Field::new("test", Schema::int32())])
            .named("Test1")
            .optional();
        let record2 = Schema::struct_of(vec![Field::new("test", Schema::int32())])
            .named("io.confluent.Test2")
            .optional();
        let expected = Schema::struct_of(vec![
            Field::new("int", Schema::int32().optional()),
            Field::new("string", Schema::string().optional()),
            Field::new("Test1", record1),
            Field::new("Test2", record2),
        ])
        .named(UNION_TYPE_NAME);
        let schema = connect_schema_of(&json).unwrap();
        assert_eq!(schema, expected);
        assert!(!schema.optional);

        let avro = AvroSchema::parse(&json).unwrap();
        for (member, value) in [
            ("int", Value::Int32(12)),
            ("string", Value::from("teststring")),
            ("Test1", Value::Struct(Struct::new().with("test", 12))),
            ("Test2", Value::Struct(Struct::new().with("test", 12))),
        ] {
            let v = union_value(&schema, member, value);
            assert_eq!(through_bytes(&avro, &schema, &v), v, "{member}");
        }
        // The struct picks the member by field name, even where the value would fit another
        // record of the same shape.
        let names = names_of(&avro);
        let v = union_value(
            &schema,
            "Test2",
            Value::Struct(Struct::new().with("test", 1)),
        );
        let AvroValue::Union(i, _) = to_avro(&avro, &names, &v).unwrap() else {
            panic!("a union value");
        };
        assert_eq!(i, 3);
        // A struct with no member set has nowhere to go in a union without null.
        let none = union_value(&schema, "int", Value::Null);
        let err = to_avro(&avro, &names, &none).unwrap_err();
        assert!(err.contains("no field set"), "{err}");
    }

    #[test]
    fn unions_with_null_are_optional_union_structs() {
        let record = json!({
            "type": "record", "name": "Event", "namespace": "shop",
            "fields": [
                {"name": "id", "type": "long"},
                {"name": "payload", "type": ["null", "int", "string"], "default": null},
                {"name": "tags", "type": ["string", {"type": "array", "items": "string"},
                                          {"type": "map", "values": "long"}]}
            ]
        });
        let schema = connect_schema_of(&record).unwrap();
        let payload = &schema.field("payload").unwrap().schema;
        assert_eq!(
            payload,
            &Schema::struct_of(vec![
                Field::new("int", Schema::int32().optional()),
                Field::new("string", Schema::string().optional()),
            ])
            .named(UNION_TYPE_NAME)
            .optional()
        );
        let tags = &schema.field("tags").unwrap().schema;
        let names: Vec<&str> = tags.fields().iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["string", "array", "map"]);

        let avro = AvroSchema::parse(&record).unwrap();
        let row = |payload: Value, tags: Value| {
            Value::Struct(
                Struct::new()
                    .with("id", 1i64)
                    .with("payload", payload)
                    .with("tags", tags),
            )
        };
        let cases = [
            row(
                union_value(payload, "int", Value::Int32(5)),
                union_value(tags, "string", Value::from("a")),
            ),
            row(
                union_value(payload, "string", Value::from("five")),
                union_value(tags, "array", Value::Array(vec![Value::from("x")])),
            ),
            row(
                Value::Null,
                union_value(
                    tags,
                    "map",
                    Value::Map(vec![(Value::from("k"), Value::Int64(9))]),
                ),
            ),
        ];
        for v in cases {
            assert_eq!(through_bytes(&avro, &schema, &v), v);
        }
        // A union struct with no field set is the union's null.
        let names = names_of(&avro);
        let AvroSchema::Record(r) = &avro else {
            panic!("a record");
        };
        let empty = union_value(payload, "int", Value::Null);
        assert_eq!(
            to_avro(&r.fields[1].schema, &names, &empty).unwrap(),
            AvroValue::Union(0, Box::new(AvroValue::Null))
        );
    }

    #[test]
    fn union_structs_become_avro_unions_as_avro_datas_from_connect() {
        let union = Schema::struct_of(vec![
            Field::new("int", Schema::int32().optional()),
            Field::new("string", Schema::string().optional()),
            Field::new(
                "Inner",
                Schema::struct_of(vec![Field::new("x", Schema::int64())])
                    .named("shop.Inner")
                    .optional(),
            ),
        ])
        .named(UNION_TYPE_NAME);
        let outer = Schema::struct_of(vec![
            Field::new("required", union.clone()),
            Field::new("optional", union.clone().optional()),
        ])
        .named("Outer");
        let json = avro_schema_json(&outer);
        assert_eq!(
            json,
            json!({
                "type": "record", "name": "Outer", "connect.name": "Outer",
                "fields": [
                    {"name": "required", "type": ["int", "string", {
                        "type": "record", "name": "Inner", "namespace": "shop",
                        "connect.name": "shop.Inner",
                        "fields": [{"name": "x", "type": "long"}]}]},
                    {"name": "optional", "type": ["null", "int", "string", "shop.Inner"],
                     "default": null}
                ]
            })
        );
        // And back to the same Connect schema.
        assert_eq!(connect_schema_of(&json).unwrap(), outer);
        let avro = AvroSchema::parse(&json).unwrap();
        let v = Value::Struct(
            Struct::new()
                .with(
                    "required",
                    union_value(
                        &union,
                        "Inner",
                        Value::Struct(Struct::new().with("x", 3i64)),
                    ),
                )
                .with("optional", union_value(&union, "string", Value::from("s"))),
        );
        assert_eq!(through_bytes(&avro, &outer, &v), v);
    }

    #[test]
    fn union_members_with_one_name_are_refused_and_singletons_flatten() {
        // AvroDataTest.testToConnectUnionRecordConflict: the same record name in two
        // namespaces cannot name two fields.
        let json = json!([
            {"type": "record", "name": "Test1", "fields": [{"name": "test", "type": "int"}]},
            {"type": "record", "name": "Test1", "namespace": "io.confluent",
             "fields": [{"name": "test", "type": "int"}]}
        ]);
        let err = connect_schema_of(&json).unwrap_err();
        assert!(err.contains("two members named 'Test1'"), "{err}");
        // flatten.singleton.unions (true by default): ["string"] is a string.
        assert_eq!(
            connect_schema_of(&json!(["string"])).unwrap(),
            Schema::string()
        );
        // Enum and fixed members are named after them, logical types after their type.
        let json = json!([
            "null",
            {"type": "enum", "name": "Color", "namespace": "x", "symbols": ["RED"]},
            {"type": "fixed", "name": "Hash", "size": 4},
            {"type": "long", "logicalType": "timestamp-millis"}
        ]);
        let schema = connect_schema_of(&json).unwrap();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["Color", "Hash", "long"]);
        assert!(schema.optional);
        let avro = AvroSchema::parse(&json).unwrap();
        for (member, value) in [
            ("Color", Value::from("RED")),
            ("Hash", Value::Bytes(b"abcd".to_vec())),
            ("long", Value::Int64(1_700_000_000_000)),
        ] {
            let v = union_value(&schema, member, value);
            assert_eq!(through_bytes(&avro, &schema, &v), v, "{member}");
        }
        assert_eq!(through_bytes(&avro, &schema, &Value::Null), Value::Null);
    }

    #[test]
    fn a_union_fields_default_is_its_first_members_value() {
        let json = json!({"type": "record", "name": "R", "fields": [
            {"name": "u", "type": ["string", "int"], "default": "none"}
        ]});
        let schema = connect_schema_of(&json).unwrap();
        let u = &schema.field("u").unwrap().schema;
        assert_eq!(
            u.default.as_deref(),
            Some(&union_value(u, "string", Value::from("none")))
        );
        // Written back as Avro's default of the first member.
        assert_eq!(avro_schema_json(&schema)["fields"][0]["default"], "none");
    }

    #[test]
    fn schemas_naming_types_of_referenced_schemas_map() {
        let address = json!({"type": "record", "name": "Address", "namespace": "shop",
            "fields": [{"name": "city", "type": "string"}]});
        let customer = json!({"type": "record", "name": "Customer", "namespace": "shop",
            "fields": [{"name": "name", "type": "string"},
                       {"name": "home", "type": "shop.Address"},
                       {"name": "work", "type": ["null", "Address"], "default": null}]});
        let schema =
            connect_schema_with_references(&customer, std::slice::from_ref(&address)).unwrap();
        let address_schema =
            Schema::struct_of(vec![Field::new("city", Schema::string())]).named("shop.Address");
        assert_eq!(schema.field("home").unwrap().schema, address_schema);
        assert_eq!(
            schema.field("work").unwrap().schema,
            address_schema.clone().optional()
        );
        // Without the reference the type is unknown.
        assert!(connect_schema_of(&customer).is_err());
        let (avro, referenced) =
            AvroSchema::parse_str_with_list(&customer.to_string(), [address.to_string()]).unwrap();
        let names = names_of_all(std::iter::once(&avro).chain(&referenced));
        let v = Value::Struct(
            Struct::new()
                .with("name", "ann")
                .with("home", Value::Struct(Struct::new().with("city", "Oslo")))
                .with("work", Value::Null),
        );
        let datum = apache_avro::to_avro_datum_schemata(
            &avro,
            referenced.iter().collect(),
            to_avro(&avro, &names, &v).unwrap(),
        )
        .unwrap();
        let read = apache_avro::from_avro_datum_schemata(
            &avro,
            referenced.iter().collect(),
            &mut datum.as_slice(),
            None,
        )
        .unwrap();
        assert_eq!(to_connect(&schema, &avro, &names, read).unwrap(), v);
    }
}
