//! Sink records to bulk actions: the index, the document id, the operation and the document.
//!
//! # Documents
//! A record value becomes a JSON object following its Connect schema, with Decimal written as
//! a JSON number (Kafka Connect's `decimal.format=NUMERIC`), bytes as base64, and the time
//! types as text Elasticsearch's `date` fields read with their default formats:
//! Timestamp as `2024-03-01T12:34:56.789Z`, Date as `2024-03-01`, Time as `12:34:56.789`.
//! (Confluent writes epoch numbers, and a Date's day count is misread as milliseconds by a
//! `date` field; text is also what dynamic mapping recognises as a date when
//! `schema.ignore=true`.) Maps with string keys are objects (`compact.map.entries=true`),
//! other maps arrays of `{"key": k, "value": v}`. A value that is not a struct or map is not a
//! document and is reported as an invalid record.
//!
//! # Document ids
//! With `key.ignore=false` the id is the record key: an integer or a string as text; a struct
//! (or schemaless map) with one field gives that field's value, so a Postgres primary key
//! `{"id": 42}` becomes `42`; a struct with several fields gives its compact JSON text with
//! the field names sorted (`{"line":2,"order_id":1}`), which is unique and stable. Null, empty, floating-point,
//! boolean, bytes and array keys are refused, as Confluent refuses them. With `key.ignore=true`
//! the id is `topic+partition+offset`.

use std::hash::{Hash, Hasher};

use serde_json::{json, Map, Value as Json};
use sluice_sdk::json::{value_to_json, DecimalFormat};
use sluice_sdk::{LogicalType, Schema, SchemaRef, SchemaType, SinkRecord, Value};

use crate::config::{
    ElasticsearchSinkConfig, NullValueBehavior, WriteMethod, BEHAVIOR_ON_NULL_VALUES, KEY_IGNORE,
};

/// The write a record turns into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `index`: create or replace the document.
    Index,
    /// `update` with `doc_as_upsert`: create or merge.
    Update,
    /// `delete`.
    Delete,
}

impl Operation {
    /// The bulk action name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Index => "index",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }
}

/// One record's bulk action, encoded.
#[derive(Debug, Clone)]
pub struct BulkAction {
    /// Target index.
    pub index: String,
    /// Document id.
    pub id: String,
    /// What is done.
    pub op: Operation,
    /// Whether the write carries `version_type=external` (the record offset), so that a
    /// version conflict means a newer record is already in.
    pub external_version: bool,
    /// The value schema to build the index mapping from, when the topic's schema is used.
    pub schema: Option<SchemaRef>,
    /// The NDJSON lines: action metadata, then the source for index and update.
    pub lines: Vec<u8>,
}

impl BulkAction {
    /// A hash of (index, id): actions with the same key must reach the cluster in order.
    pub fn ordering_key(&self) -> u64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.index.hash(&mut hasher);
        self.id.hash(&mut hasher);
        hasher.finish()
    }
}

/// What becomes of one record.
#[derive(Debug)]
pub enum Conversion {
    /// Write this.
    Write(BulkAction),
    /// Nothing to do (a tombstone ignored, or one without a key to delete).
    Skip(&'static str),
}

/// Turns `record` into its bulk action.
///
/// # Errors
/// Why the record cannot become a document (null or unusable key, null value with
/// `behavior.on.null.values=fail`, value not matching its schema, value not an object).
pub fn convert_record(
    config: &ElasticsearchSinkConfig,
    record: &SinkRecord,
    retry_on_conflict: usize,
) -> Result<Conversion, String> {
    let index = config.index_for(&record.topic);
    let ignore_key = config.ignores_key(&record.topic);
    let tombstone = record.value.is_null();
    if tombstone {
        match config.null_values {
            NullValueBehavior::Ignore => return Ok(Conversion::Skip("null value ignored")),
            NullValueBehavior::Fail => {
                return Err(format!(
                    "the record has a null value (a tombstone); to delete the document with its \
                     key set {BEHAVIOR_ON_NULL_VALUES}=delete, to skip such records set \
                     {BEHAVIOR_ON_NULL_VALUES}=ignore"
                ))
            }
            NullValueBehavior::Delete if record.key.is_null() => {
                // Without a key there is no document to delete.
                return Ok(Conversion::Skip("null value without a key"));
            }
            NullValueBehavior::Delete => {}
        }
    }
    let id = if ignore_key {
        format!(
            "{}+{}+{}",
            record.topic, record.kafka_partition, record.kafka_offset
        )
    } else {
        document_id(record.key_schema.as_deref(), &record.key)?
    };
    // Confluent versions inserts and deletes by offset when ids come from keys, so replayed or
    // reordered records never overwrite newer ones. Upserts cannot carry external versions, and
    // a delete versioned by offset could lose against an upserted document's own version, so
    // with upserts the writer's per-id ordering keeps them right instead.
    let external_version = !ignore_key && config.write_method == WriteMethod::Insert;
    let mut meta = Map::new();
    meta.insert("_index".into(), Json::from(index.clone()));
    meta.insert("_id".into(), Json::from(id.clone()));
    if external_version {
        meta.insert("version".into(), Json::from(record.kafka_offset));
        meta.insert("version_type".into(), Json::from("external"));
    }
    let op = if tombstone {
        Operation::Delete
    } else {
        match config.write_method {
            WriteMethod::Insert => Operation::Index,
            WriteMethod::Upsert => {
                meta.insert("retry_on_conflict".into(), Json::from(retry_on_conflict));
                Operation::Update
            }
        }
    };
    let mut lines = Vec::with_capacity(256);
    let action = json!({ op.name(): meta });
    serde_json::to_writer(&mut lines, &action).map_err(|e| e.to_string())?;
    lines.push(b'\n');
    let mut schema = None;
    if !tombstone {
        let doc = document(
            record.value_schema.as_deref(),
            &record.value,
            config.compact_map_entries,
        )?;
        if !doc.is_object() {
            return Err(format!(
                "the record value is {}, not a struct or map: an Elasticsearch document must be \
                 a JSON object",
                describe(&doc)
            ));
        }
        let source = match op {
            Operation::Update => json!({"doc": doc, "doc_as_upsert": true}),
            _ => doc,
        };
        serde_json::to_writer(&mut lines, &source).map_err(|e| e.to_string())?;
        lines.push(b'\n');
        if !config.ignores_schema(&record.topic) {
            schema = record.value_schema.clone();
        }
    }
    Ok(Conversion::Write(BulkAction {
        index,
        id,
        op,
        external_version,
        schema,
        lines,
    }))
}

fn describe(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// The document id for a record key.
///
/// # Errors
/// When the key cannot name a document (see the module docs).
pub fn document_id(schema: Option<&Schema>, key: &Value) -> Result<String, String> {
    let refuse = |what: &str| {
        Err(format!(
            "the record key is {what}, which cannot be a document id; give the records integer \
             or string keys, or set {KEY_IGNORE}=true to use topic+partition+offset ids"
        ))
    };
    match key {
        Value::Null => refuse("null"),
        Value::Int8(v) => Ok(v.to_string()),
        Value::Int16(v) => Ok(v.to_string()),
        Value::Int32(v) => Ok(v.to_string()),
        Value::Int64(v) => Ok(v.to_string()),
        Value::String(s) if s.is_empty() => refuse("an empty string"),
        Value::String(s) => Ok(s.clone()),
        Value::Struct(s) => {
            if let [(_, only)] = s.fields() {
                let field_schema = schema.and_then(|sc| sc.fields().first()).map(|f| &f.schema);
                return document_id(field_schema, only);
            }
            let json = value_to_json(schema, key, DecimalFormat::Numeric)?;
            Ok(json.to_string())
        }
        Value::Map(entries) => {
            if let [(_, only)] = entries.as_slice() {
                let value_schema = match schema.map(|s| &s.ty) {
                    Some(SchemaType::Map(_, values)) => Some(values.as_ref()),
                    _ => None,
                };
                return document_id(value_schema, only);
            }
            if entries.is_empty() {
                return refuse("an empty map");
            }
            let json = value_to_json(schema, key, DecimalFormat::Numeric)?;
            Ok(json.to_string())
        }
        Value::Float32(_) | Value::Float64(_) => refuse("a floating-point number"),
        Value::Boolean(_) => refuse("a boolean"),
        Value::Bytes(_) => refuse("bytes"),
        Value::Array(_) => refuse("an array"),
    }
}

/// A record value as the JSON document Elasticsearch stores (see the module docs).
///
/// # Errors
/// When the value does not match its schema, naming the field.
pub fn document(
    schema: Option<&Schema>,
    value: &Value,
    compact_maps: bool,
) -> Result<Json, String> {
    let Some(schema) = schema else {
        return value_to_json(None, value, DecimalFormat::Numeric);
    };
    if value.is_null() {
        if let Some(default) = schema.default.as_deref() {
            return document(Some(schema), default, compact_maps);
        }
        if schema.optional {
            return Ok(Json::Null);
        }
        return Err(format!(
            "null value for a required {} field",
            schema.ty.name()
        ));
    }
    if let Some(logical) = schema.logical() {
        return logical_to_json(schema, logical, value).ok_or_else(|| {
            format!(
                "a {} value does not match the {} schema '{}' or is out of range",
                value.type_name(),
                schema.ty.name(),
                schema.name.as_deref().unwrap_or_default()
            )
        });
    }
    match (&schema.ty, value) {
        (SchemaType::Struct(fields), Value::Struct(s)) => {
            let mut out = Map::new();
            for field in fields {
                let v = s.get(&field.name).unwrap_or(&Value::Null);
                let j = document(Some(&field.schema), v, compact_maps)
                    .map_err(|e| format!("field '{}': {e}", field.name))?;
                out.insert(field.name.clone(), j);
            }
            Ok(Json::Object(out))
        }
        (SchemaType::Array(items), Value::Array(values)) => values
            .iter()
            .map(|v| document(Some(items), v, compact_maps))
            .collect::<Result<Vec<_>, _>>()
            .map(Json::Array),
        (SchemaType::Map(keys, values), Value::Map(entries)) => {
            if keys.ty == SchemaType::String && compact_maps {
                let mut out = Map::new();
                for (k, v) in entries {
                    let key = k
                        .as_str()
                        .ok_or_else(|| format!("a map key is {}, not a string", k.type_name()))?;
                    out.insert(key.to_string(), document(Some(values), v, compact_maps)?);
                }
                Ok(Json::Object(out))
            } else {
                entries
                    .iter()
                    .map(|(k, v)| {
                        Ok(json!({
                            "key": document(Some(keys), k, compact_maps)?,
                            "value": document(Some(values), v, compact_maps)?,
                        }))
                    })
                    .collect::<Result<Vec<_>, String>>()
                    .map(Json::Array)
            }
        }
        _ => value_to_json(Some(schema), value, DecimalFormat::Numeric),
    }
}

/// The JSON of a value of a logical type, or `None` when the value does not fit.
pub(crate) fn logical_to_json(
    schema: &Schema,
    logical: LogicalType,
    value: &Value,
) -> Option<Json> {
    match (logical, value) {
        (LogicalType::Decimal { .. }, Value::Bytes(_)) => {
            value_to_json(Some(schema), value, DecimalFormat::Numeric).ok()
        }
        (LogicalType::Timestamp, Value::Int64(ms)) => chrono::DateTime::from_timestamp_millis(*ms)
            .map(|t| Json::from(t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())),
        (LogicalType::Date, Value::Int32(days)) => {
            let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?;
            let day = if *days >= 0 {
                epoch.checked_add_days(chrono::Days::new(u64::from(days.unsigned_abs())))
            } else {
                epoch.checked_sub_days(chrono::Days::new(u64::from(days.unsigned_abs())))
            }?;
            Some(Json::from(day.format("%Y-%m-%d").to_string()))
        }
        (LogicalType::Time, Value::Int32(ms)) if (0..86_400_000).contains(ms) => {
            let ms = *ms;
            Some(Json::from(format!(
                "{:02}:{:02}:{:02}.{:03}",
                ms / 3_600_000,
                ms / 60_000 % 60,
                ms / 1000 % 60,
                ms % 1000
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::{Decimal, Field, Struct, TimestampType};
    use std::collections::BTreeMap;
    use std::sync::Arc;

    fn config(pairs: &[(&str, &str)]) -> ElasticsearchSinkConfig {
        let mut props: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        props.insert("connection.url".into(), "http://es:9200".into());
        ElasticsearchSinkConfig::parse(&props).unwrap()
    }

    fn order_schema() -> SchemaRef {
        Arc::new(Schema::struct_of(vec![
            Field::new("id", Schema::int64()),
            Field::new("total", Schema::decimal(2)),
            Field::new("placed", Schema::timestamp()),
            Field::new("day", Schema::date()),
            Field::new("at", Schema::time()),
            Field::new("note", Schema::string().optional()),
            Field::new("counts", Schema::map(Schema::int32(), Schema::int64())),
        ]))
    }

    fn record(key: Value, value: Value) -> SinkRecord {
        SinkRecord {
            topic: "Orders".into(),
            kafka_partition: 2,
            kafka_offset: 41,
            key_schema: None,
            key,
            value_schema: if value.is_null() {
                None
            } else {
                Some(order_schema())
            },
            value,
            timestamp: None,
            timestamp_type: TimestampType::NoTimestamp,
            headers: Vec::new(),
        }
    }

    fn order() -> Value {
        Value::Struct(
            Struct::new()
                .with("id", 7i64)
                .with("total", Decimal::parse("12.50").unwrap().into_value())
                .with("placed", 1_700_000_000_123i64)
                .with("day", Value::Int32(19_723))
                .with("at", Value::Int32(45_296_789))
                .with("note", Value::Null)
                .with(
                    "counts",
                    Value::Map(vec![(Value::Int32(1), Value::Int64(2))]),
                ),
        )
    }

    fn lines(action: &BulkAction) -> Vec<Json> {
        action
            .lines
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    #[test]
    fn documents_carry_readable_dates_and_numeric_decimals() {
        let doc = document(Some(&order_schema()), &order(), true).unwrap();
        assert_eq!(
            doc,
            json!({
                "id": 7, "total": 12.5, "placed": "2023-11-14T22:13:20.123Z",
                "day": "2024-01-01", "at": "12:34:56.789", "note": null,
                "counts": [{"key": 1, "value": 2}]
            })
        );
    }

    #[test]
    fn inserts_are_versioned_by_offset() {
        let c = config(&[]);
        let Conversion::Write(action) =
            convert_record(&c, &record(Value::Int64(7), order()), 5).unwrap()
        else {
            panic!("expected a write")
        };
        assert_eq!(action.index, "orders");
        assert_eq!(action.id, "7");
        assert_eq!(action.op, Operation::Index);
        let l = lines(&action);
        assert_eq!(
            l[0],
            json!({"index": {"_index": "orders", "_id": "7", "version": 41, "version_type": "external"}})
        );
        assert_eq!(l[1]["total"], json!(12.5));
        assert!(action.schema.is_some());
    }

    #[test]
    fn upserts_merge_and_ignore_key_uses_offsets() {
        let c = config(&[("write.method", "upsert"), ("key.ignore", "true")]);
        let Conversion::Write(action) =
            convert_record(&c, &record(Value::Null, order()), 3).unwrap()
        else {
            panic!("expected a write")
        };
        assert_eq!(action.id, "Orders+2+41");
        let l = lines(&action);
        assert_eq!(
            l[0],
            json!({"update": {"_index": "orders", "_id": "Orders+2+41", "retry_on_conflict": 3}})
        );
        assert_eq!(l[1]["doc_as_upsert"], json!(true));
        assert_eq!(l[1]["doc"]["id"], json!(7));
        assert!(!action.external_version);
    }

    #[test]
    fn tombstones_follow_behavior_on_null_values() {
        let tombstone = record(Value::String("k1".into()), Value::Null);
        let err = convert_record(&config(&[]), &tombstone, 1).unwrap_err();
        assert!(err.contains("behavior.on.null.values=delete"), "{err}");
        assert!(matches!(
            convert_record(
                &config(&[("behavior.on.null.values", "ignore")]),
                &tombstone,
                1
            ),
            Ok(Conversion::Skip(_))
        ));
        let Conversion::Write(action) = convert_record(
            &config(&[("behavior.on.null.values", "delete")]),
            &tombstone,
            1,
        )
        .unwrap() else {
            panic!("expected a delete")
        };
        assert_eq!(action.op, Operation::Delete);
        assert_eq!(
            lines(&action),
            vec![
                json!({"delete": {"_index": "orders", "_id": "k1", "version": 41, "version_type": "external"}})
            ]
        );
        let keyless = record(Value::Null, Value::Null);
        assert!(matches!(
            convert_record(
                &config(&[("behavior.on.null.values", "delete")]),
                &keyless,
                1
            ),
            Ok(Conversion::Skip(_))
        ));
    }

    #[test]
    fn keys_become_ids() {
        assert_eq!(document_id(None, &Value::Int32(5)).unwrap(), "5");
        assert_eq!(
            document_id(None, &Value::String("a b".into())).unwrap(),
            "a b"
        );
        let pk = Schema::struct_of(vec![Field::new("id", Schema::int64())]);
        assert_eq!(
            document_id(Some(&pk), &Value::Struct(Struct::new().with("id", 42i64))).unwrap(),
            "42"
        );
        let composite = Value::Struct(Struct::new().with("order_id", 1i64).with("line", 2i32));
        assert_eq!(
            document_id(None, &composite).unwrap(),
            r#"{"line":2,"order_id":1}"#
        );
        let map_key = Value::Map(vec![(Value::String("id".into()), Value::Int64(9))]);
        assert_eq!(document_id(None, &map_key).unwrap(), "9");
        for bad in [
            Value::Null,
            Value::Float64(1.5),
            Value::String(String::new()),
        ] {
            let err = document_id(None, &bad).unwrap_err();
            assert!(err.contains("key.ignore=true"), "{err}");
        }
    }

    #[test]
    fn values_that_are_not_objects_are_refused() {
        let mut r = record(Value::Int64(1), Value::String("plain".into()));
        r.value_schema = Some(Arc::new(Schema::string()));
        let err = convert_record(&config(&[]), &r, 1).unwrap_err();
        assert!(err.contains("a string, not a struct or map"), "{err}");
        let mut r = record(
            Value::Int64(1),
            Value::Struct(Struct::new().with("id", "x")),
        );
        r.value_schema = Some(order_schema());
        let err = convert_record(&config(&[]), &r, 1).unwrap_err();
        assert!(err.contains("field 'id'"), "{err}");
    }

    #[test]
    fn dates_before_the_epoch_and_bad_times() {
        let d = Schema::date();
        assert_eq!(
            logical_to_json(&d, LogicalType::Date, &Value::Int32(-1)),
            Some(json!("1969-12-31"))
        );
        let t = Schema::time();
        assert_eq!(
            logical_to_json(&t, LogicalType::Time, &Value::Int32(86_400_000)),
            None
        );
        let err = document(Some(&t), &Value::Int32(-5), true).unwrap_err();
        assert!(err.contains("out of range"), "{err}");
    }
}
