//! Elasticsearch mappings built from Kafka Connect schemas (`schema.ignore=false`).
//!
//! The types follow Confluent's sink so that indices look the same:
//!
//! | Connect schema | Elasticsearch field |
//! |---|---|
//! | boolean | `boolean` |
//! | int8 / int16 / int32 / int64 | `byte` / `short` / `integer` / `long` |
//! | float32 / float64 | `float` / `double` |
//! | string | `text` with a `keyword` sub-field (`ignore_above: 256`) |
//! | bytes | `binary` |
//! | Decimal | `double` |
//! | Timestamp, Date | `date` |
//! | Time | `date` with format `strict_hour_minute_second_fraction` |
//! | array | the element's mapping (Elasticsearch fields hold arrays) |
//! | struct | `properties` of its fields |
//! | map with string keys (compact) | `object` (sub-fields mapped dynamically) |
//! | other maps | `properties` `key` and `value` |
//!
//! Time differs from Confluent (which maps it to a plain `date` and writes milliseconds since
//! midnight) because documents carry times as `HH:mm:ss.SSS` text; see [`crate::convert`].
//! A field's schema default becomes its `null_value`, as Confluent does.

use serde_json::{json, Map, Value as Json};
use sluice_sdk::json::{value_to_json, DecimalFormat};
use sluice_sdk::{LogicalType, Schema, SchemaType};

use crate::convert::logical_to_json;

/// The mapping (`{"properties": {...}}`) for documents of `schema`, or `None` when the schema
/// gives nothing to map (a map with string keys: its fields are only known from the data).
pub fn mapping_for(schema: &Schema, compact_map_entries: bool) -> Option<Json> {
    match &schema.ty {
        SchemaType::Struct(_) => Some(field_mapping(schema, compact_map_entries)),
        SchemaType::Map(keys, _) if keys.ty == SchemaType::String && compact_map_entries => None,
        _ => None,
    }
}

fn field_mapping(schema: &Schema, compact_map_entries: bool) -> Json {
    if let Some(logical) = schema.logical() {
        let mut mapping = match logical {
            LogicalType::Decimal { .. } => json!({"type": "double"}),
            LogicalType::Date | LogicalType::Timestamp => json!({"type": "date"}),
            LogicalType::Time => {
                json!({"type": "date", "format": "strict_hour_minute_second_fraction"})
            }
        };
        if let Some(default) = schema.default.as_deref() {
            if let Some(null_value) = logical_to_json(schema, logical, default) {
                mapping["null_value"] = null_value;
            }
        }
        return mapping;
    }
    match &schema.ty {
        SchemaType::Struct(fields) => {
            let properties: Map<String, Json> = fields
                .iter()
                .map(|f| {
                    (
                        f.name.clone(),
                        field_mapping(&f.schema, compact_map_entries),
                    )
                })
                .collect();
            json!({ "properties": properties })
        }
        SchemaType::Array(items) => field_mapping(items, compact_map_entries),
        SchemaType::Map(keys, _) if keys.ty == SchemaType::String && compact_map_entries => {
            json!({"type": "object"})
        }
        SchemaType::Map(keys, values) => json!({
            "properties": {
                "key": field_mapping(keys, compact_map_entries),
                "value": field_mapping(values, compact_map_entries),
            }
        }),
        SchemaType::String => json!({
            "type": "text",
            "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}
        }),
        SchemaType::Bytes => json!({"type": "binary"}),
        primitive => {
            let ty = match primitive {
                SchemaType::Boolean => "boolean",
                SchemaType::Int8 => "byte",
                SchemaType::Int16 => "short",
                SchemaType::Int32 => "integer",
                SchemaType::Int64 => "long",
                SchemaType::Float32 => "float",
                _ => "double",
            };
            let mut mapping = json!({ "type": ty });
            if let Some(default) = schema.default.as_deref() {
                if let Ok(v) = value_to_json(Some(schema), default, DecimalFormat::Numeric) {
                    if !v.is_null() {
                        mapping["null_value"] = v;
                    }
                }
            }
            mapping
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::{Field, Value};

    #[test]
    fn struct_schemas_map_like_confluent() {
        let schema = Schema::struct_of(vec![
            Field::new("id", Schema::int64()),
            Field::new("small", Schema::int8()),
            Field::new("name", Schema::string()),
            Field::new("total", Schema::decimal(2)),
            Field::new("placed", Schema::timestamp()),
            Field::new("day", Schema::date().optional()),
            Field::new("at", Schema::time()),
            Field::new("blob", Schema::bytes()),
            Field::new("ok", Schema::boolean()),
            Field::new("ratio", Schema::float32()),
            Field::new("tags", Schema::array(Schema::string())),
            Field::new("attrs", Schema::map(Schema::string(), Schema::int32())),
            Field::new("counts", Schema::map(Schema::int32(), Schema::int64())),
            Field::new(
                "address",
                Schema::struct_of(vec![Field::new("city", Schema::string())]),
            ),
        ]);
        let m = mapping_for(&schema, true).unwrap();
        let p = &m["properties"];
        assert_eq!(p["id"], json!({"type": "long"}));
        assert_eq!(p["small"], json!({"type": "byte"}));
        assert_eq!(
            p["name"],
            json!({"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}})
        );
        assert_eq!(p["total"], json!({"type": "double"}));
        assert_eq!(p["placed"], json!({"type": "date"}));
        assert_eq!(p["day"], json!({"type": "date"}));
        assert_eq!(
            p["at"],
            json!({"type": "date", "format": "strict_hour_minute_second_fraction"})
        );
        assert_eq!(p["blob"], json!({"type": "binary"}));
        assert_eq!(p["ok"], json!({"type": "boolean"}));
        assert_eq!(p["ratio"], json!({"type": "float"}));
        assert_eq!(p["tags"]["type"], "text");
        assert_eq!(p["attrs"], json!({"type": "object"}));
        assert_eq!(
            p["counts"],
            json!({"properties": {"key": {"type": "integer"}, "value": {"type": "long"}}})
        );
        assert_eq!(
            p["address"]["properties"]["city"]["fields"]["keyword"]["type"],
            "keyword"
        );
    }

    #[test]
    fn defaults_become_null_values() {
        let mut count = Schema::int32().optional();
        count.default = Some(Box::new(Value::Int32(7)));
        let mut when = Schema::date().optional();
        when.default = Some(Box::new(Value::Int32(19_000)));
        let schema = Schema::struct_of(vec![Field::new("n", count), Field::new("d", when)]);
        let m = mapping_for(&schema, true).unwrap();
        assert_eq!(
            m["properties"]["n"],
            json!({"type": "integer", "null_value": 7})
        );
        assert_eq!(
            m["properties"]["d"],
            json!({"type": "date", "null_value": "2022-01-08"})
        );
    }

    #[test]
    fn non_struct_roots_have_no_mapping() {
        assert!(mapping_for(&Schema::map(Schema::string(), Schema::string()), true).is_none());
        assert!(mapping_for(&Schema::string(), true).is_none());
    }
}
