//! Debezium's `io.debezium.transforms.ExtractNewRecordState` (the "unwrap" SMT): a change
//! event's envelope becomes the row after the change, so sinks get flat rows; deletes and
//! tombstones are handled per `delete.tombstone.handling.mode` (or the older
//! `delete.handling.mode` and `drop.tombstones`), and envelope or `source` fields can be
//! copied into the row (`add.fields`) or headers (`add.headers`).
//!
//! With none of the delete options set, deletes become tombstones and the connector's own
//! tombstones are dropped (`delete.tombstone.handling.mode=tombstone`, Debezium 3's default).
//! Records that are not change events (no `.Envelope` schema, e.g. heartbeats) pass unchanged.

use std::sync::Arc;

use sluice_sdk::{
    Config, ConfigDef, ConfigErrors, ConfigKey, ConfigType, Field, Header, Importance, Schema,
    SchemaType, TransformPlugin, Validator, Value,
};

use super::{map_get, Transform, TransformRecord};

/// The class name.
pub(super) const EXTRACT_NEW_RECORD_STATE: &str = "io.debezium.transforms.ExtractNewRecordState";
const DELETED_FIELD: &str = "__deleted";
const ENVELOPE_SUFFIX: &str = ".Envelope";

/// What happens to deletes and tombstones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeleteMode {
    /// Deletes and tombstones are dropped.
    Drop,
    /// Deletes become tombstones (null value); the connector's tombstones are dropped.
    Tombstone,
    /// Deletes become the old row with `__deleted=true` (others `false`); tombstones dropped.
    Rewrite,
    /// As `Rewrite`, and tombstones are kept.
    RewriteWithTombstone,
    /// Legacy: deletes per `delete.handling.mode`, tombstones per `drop.tombstones`.
    Legacy {
        deletes: LegacyDeletes,
        drop_tombstones: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegacyDeletes {
    Drop,
    None,
    Rewrite,
}

/// One `add.fields` / `add.headers` entry: where to read, and the name to write.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldReference {
    /// `None`: the envelope itself; else a struct field of it (`source`, `transaction`).
    parent: Option<String>,
    field: String,
    name: String,
}

const ENVELOPE_FIELDS: &[&str] = &["op", "ts_ms", "ts_us", "ts_ns"];

impl FieldReference {
    fn parse(spec: &str, prefix: &str) -> Self {
        let (path, rename) = match spec.split_once(':') {
            Some((p, r)) => (p.trim(), Some(r.trim())),
            None => (spec.trim(), None),
        };
        let (parent, field) = match path.split_once('.') {
            Some((p, f)) => (Some(p.to_string()), f.to_string()),
            None if ENVELOPE_FIELDS.contains(&path) => (None, path.to_string()),
            None => (Some("source".to_string()), path.to_string()),
        };
        let name = match rename {
            Some(r) => format!("{prefix}{r}"),
            None => format!("{prefix}{}", path.replace('.', "_")),
        };
        Self {
            parent,
            field,
            name,
        }
    }

    fn schema<'a>(&self, envelope: &'a Schema) -> Option<&'a Schema> {
        match &self.parent {
            None => envelope.field(&self.field).map(|f| &f.schema),
            Some(p) => envelope
                .field(p)
                .and_then(|f| f.schema.field(&self.field))
                .map(|f| &f.schema),
        }
    }

    fn value(&self, envelope: &Value) -> Value {
        let get = |v: &Value, name: &str| -> Option<Value> {
            match v {
                Value::Struct(s) => s.get(name).cloned(),
                Value::Map(entries) => map_get(entries, name).cloned(),
                _ => None,
            }
        };
        match &self.parent {
            None => get(envelope, &self.field),
            Some(p) => get(envelope, p).and_then(|parent| get(&parent, &self.field)),
        }
        .unwrap_or(Value::Null)
    }
}

#[derive(Debug)]
struct ExtractNewRecordState {
    mode: DeleteMode,
    fields: Vec<FieldReference>,
    headers: Vec<FieldReference>,
}

fn field_of<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    match value {
        Value::Struct(s) => s.get(name),
        Value::Map(entries) => map_get(entries, name),
        _ => None,
    }
}

fn header_text(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone().into_bytes()),
        Value::Boolean(b) => Some(b.to_string().into_bytes()),
        other => other
            .as_i64()
            .map(|n| n.to_string().into_bytes())
            .or_else(|| other.as_f64().map(|f| f.to_string().into_bytes())),
    }
}

impl ExtractNewRecordState {
    fn new(c: &Config) -> Result<Self, ConfigErrors> {
        let mut errors = ConfigErrors::default();
        let explicit = c
            .originals()
            .keys()
            .any(|k| k == "delete.tombstone.handling.mode");
        let legacy = c
            .originals()
            .keys()
            .any(|k| k == "delete.handling.mode" || k == "drop.tombstones");
        let mode = if explicit || !legacy {
            match c
                .get_str("delete.tombstone.handling.mode")
                .unwrap_or("tombstone")
                .to_ascii_lowercase()
                .as_str()
            {
                "drop" => DeleteMode::Drop,
                "rewrite" => DeleteMode::Rewrite,
                "rewrite-with-tombstone" => DeleteMode::RewriteWithTombstone,
                "tombstone" => DeleteMode::Tombstone,
                other => {
                    errors.push(
                        "delete.tombstone.handling.mode",
                        format!(
                            "must be one of drop, tombstone, rewrite, rewrite-with-tombstone \
                             (got '{other}')"
                        ),
                    );
                    DeleteMode::Tombstone
                }
            }
        } else {
            let deletes = match c
                .get_str("delete.handling.mode")
                .unwrap_or("drop")
                .to_ascii_lowercase()
                .as_str()
            {
                "none" => LegacyDeletes::None,
                "rewrite" => LegacyDeletes::Rewrite,
                _ => LegacyDeletes::Drop,
            };
            DeleteMode::Legacy {
                deletes,
                drop_tombstones: c.get_bool("drop.tombstones").unwrap_or(true),
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let fields_prefix = c.get_str("add.fields.prefix").unwrap_or("__").to_string();
        let headers_prefix = c.get_str("add.headers.prefix").unwrap_or("__").to_string();
        Ok(Self {
            mode,
            fields: c
                .get_list("add.fields")
                .iter()
                .filter(|s| !s.trim().is_empty())
                .map(|s| FieldReference::parse(s, &fields_prefix))
                .collect(),
            headers: c
                .get_list("add.headers")
                .iter()
                .filter(|s| !s.trim().is_empty())
                .map(|s| FieldReference::parse(s, &headers_prefix))
                .collect(),
        })
    }

    fn rewrite(&self) -> bool {
        matches!(
            self.mode,
            DeleteMode::Rewrite
                | DeleteMode::RewriteWithTombstone
                | DeleteMode::Legacy {
                    deletes: LegacyDeletes::Rewrite,
                    ..
                }
        )
    }

    /// The row `side` (`before`/`after`) of the envelope, with `__deleted` and `add.fields`.
    fn flatten(
        &self,
        envelope_schema: Option<&Schema>,
        envelope: &Value,
        side: &str,
        deleted: bool,
    ) -> Result<(Option<Arc<Schema>>, Value), String> {
        let row = field_of(envelope, side).cloned().unwrap_or(Value::Null);
        let extra = self.rewrite() || !self.fields.is_empty();
        let Some(envelope_schema) = envelope_schema else {
            // Schemaless (a JSON map): the same fields, as map entries.
            let Value::Map(mut entries) = row else {
                return Ok((None, row));
            };
            if self.rewrite() {
                entries.push((DELETED_FIELD.into(), Value::from(deleted.to_string())));
            }
            for f in &self.fields {
                entries.push((f.name.as_str().into(), f.value(envelope)));
            }
            return Ok((None, Value::Map(entries)));
        };
        let row_schema = envelope_schema
            .field(side)
            .map(|f| f.schema.clone())
            .ok_or_else(|| format!("the change event has no '{side}' field"))?;
        if !extra {
            return Ok((Some(Arc::new(row_schema)), row));
        }
        let Value::Struct(row) = row else {
            return Ok((Some(Arc::new(row_schema)), Value::Null));
        };
        let mut fields = row_schema.fields().to_vec();
        let mut out = row;
        if self.rewrite() {
            fields.push(Field::new(DELETED_FIELD, Schema::string().optional()));
            out.put(DELETED_FIELD, deleted.to_string());
        }
        for f in &self.fields {
            let schema = f
                .schema(envelope_schema)
                .ok_or_else(|| {
                    format!(
                        "add.fields names '{}', which the change event does not have",
                        f.field
                    )
                })?
                .clone()
                .optional();
            fields.push(Field::new(f.name.clone(), schema));
            out.put(f.name.clone(), f.value(envelope));
        }
        let mut schema = Schema::struct_of(fields);
        schema.name = row_schema.name.clone();
        schema.version = row_schema.version;
        schema.doc = row_schema.doc.clone();
        schema.optional = row_schema.optional;
        Ok((Some(Arc::new(schema)), Value::Struct(out)))
    }
}

impl Transform for ExtractNewRecordState {
    fn apply(&self, mut r: TransformRecord) -> Result<Option<TransformRecord>, String> {
        if r.value.is_null() {
            let keep = match self.mode {
                DeleteMode::RewriteWithTombstone => true,
                DeleteMode::Legacy {
                    drop_tombstones, ..
                } => !drop_tombstones,
                _ => false,
            };
            return Ok(keep.then_some(r));
        }
        let is_envelope = match r.value_schema.as_deref() {
            Some(s) => {
                s.name
                    .as_deref()
                    .is_some_and(|n| n.ends_with(ENVELOPE_SUFFIX))
                    && matches!(s.ty, SchemaType::Struct(_))
            }
            None => {
                matches!(&r.value, Value::Map(_))
                    && field_of(&r.value, "op").is_some()
                    && field_of(&r.value, "after").is_some()
            }
        };
        if !is_envelope {
            return Ok(Some(r));
        }
        let envelope = std::mem::take(&mut r.value);
        let envelope_schema = r.value_schema.take();
        let op = field_of(&envelope, "op")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        for h in &self.headers {
            r.headers.push(Header {
                key: h.name.clone(),
                value: header_text(&h.value(&envelope)),
            });
        }
        if op == "d" {
            let rewrite = match self.mode {
                DeleteMode::Drop
                | DeleteMode::Legacy {
                    deletes: LegacyDeletes::Drop,
                    ..
                } => return Ok(None),
                DeleteMode::Tombstone
                | DeleteMode::Legacy {
                    deletes: LegacyDeletes::None,
                    ..
                } => false,
                _ => true,
            };
            if !rewrite {
                // The row after a delete: null, with the row's schema.
                r.value_schema = envelope_schema
                    .as_deref()
                    .and_then(|s| s.field("after"))
                    .map(|f| Arc::new(f.schema.clone()));
                r.value = Value::Null;
                return Ok(Some(r));
            }
            let (schema, value) =
                self.flatten(envelope_schema.as_deref(), &envelope, "before", true)?;
            r.value_schema = schema;
            r.value = value;
            return Ok(Some(r));
        }
        if op == "t" {
            return Ok(None);
        }
        let (schema, value) =
            self.flatten(envelope_schema.as_deref(), &envelope, "after", false)?;
        r.value_schema = schema;
        r.value = value;
        Ok(Some(r))
    }
}

/// The Debezium transforms.
pub(super) fn plugins() -> Vec<TransformPlugin> {
    let text =
        |name: &str, doc: &str| ConfigKey::new(name, ConfigType::String, Importance::Medium, doc);
    vec![TransformPlugin::transform(
        EXTRACT_NEW_RECORD_STATE,
        "Replaces a Debezium change event with the row after the change (the 'unwrap' SMT).",
        ConfigDef::new()
            .define(
                text(
                    "delete.tombstone.handling.mode",
                    "drop: drop deletes and tombstones; tombstone: deletes become tombstones, \
                     tombstones are dropped; rewrite: deletes become the old row with \
                     __deleted=true (others get false), tombstones are dropped; \
                     rewrite-with-tombstone: as rewrite, keeping tombstones. Default tombstone.",
                )
                .optional()
                .validator(Validator::one_of(&[
                    "drop",
                    "tombstone",
                    "rewrite",
                    "rewrite-with-tombstone",
                ])),
            )
            .define(
                text(
                    "delete.handling.mode",
                    "Older option, used when delete.tombstone.handling.mode is not set: drop, \
                     none (deletes become null values) or rewrite.",
                )
                .optional()
                .validator(Validator::one_of(&["drop", "none", "rewrite"])),
            )
            .define(
                ConfigKey::new(
                    "drop.tombstones",
                    ConfigType::Boolean,
                    Importance::Low,
                    "Older option, used when delete.tombstone.handling.mode is not set: drop \
                     tombstones (default true).",
                )
                .optional(),
            )
            .define(
                ConfigKey::new(
                    "add.fields",
                    ConfigType::List,
                    Importance::Low,
                    "Fields of the envelope (op, ts_ms) or of source (table, lsn, \
                     source.ts_ms, ...) to add to the row, as <prefix><name>; field:alias \
                     renames.",
                )
                .default_value(""),
            )
            .define(text("add.fields.prefix", "Prefix of added fields.").default_value("__"))
            .define(
                ConfigKey::new(
                    "add.headers",
                    ConfigType::List,
                    Importance::Low,
                    "Like add.fields, as headers.",
                )
                .default_value(""),
            )
            .define(text("add.headers.prefix", "Prefix of added headers.").default_value("__")),
        |c| ExtractNewRecordState::new(c).map(|t| Box::new(t) as Box<dyn Transform>),
    )
    .aliases(["ExtractNewRecordState"])
    .version(env!("CARGO_PKG_VERSION"))]
}

#[cfg(test)]
mod tests {
    use super::super::tests::try_one;
    use super::*;
    use sluice_sdk::Struct;

    fn row_schema() -> Schema {
        Schema::struct_of(vec![
            Field::new("id", Schema::int32()),
            Field::new("name", Schema::string().optional()),
        ])
        .named("db.public.t.Value")
        .optional()
    }

    fn envelope_schema() -> Schema {
        Schema::struct_of(vec![
            Field::new("before", row_schema()),
            Field::new("after", row_schema()),
            Field::new(
                "source",
                Schema::struct_of(vec![
                    Field::new("table", Schema::string()),
                    Field::new("lsn", Schema::int64().optional()),
                    Field::new("ts_ms", Schema::int64()),
                ]),
            ),
            Field::new("op", Schema::string()),
            Field::new("ts_ms", Schema::int64().optional()),
        ])
        .named("db.public.t.Envelope")
    }

    fn row(id: i32, name: &str) -> Value {
        Value::Struct(Struct::new().with("id", id).with("name", name))
    }

    fn event(op: &str, before: Option<Value>, after: Option<Value>) -> TransformRecord {
        let value = Struct::new()
            .with("before", before.unwrap_or(Value::Null))
            .with("after", after.unwrap_or(Value::Null))
            .with(
                "source",
                Struct::new()
                    .with("table", "t")
                    .with("lsn", Value::Int64(42))
                    .with("ts_ms", Value::Int64(1_000)),
            )
            .with("op", op)
            .with("ts_ms", Value::Int64(2_000));
        TransformRecord {
            topic: "db.public.t".into(),
            key: Value::Struct(Struct::new().with("id", 1)),
            value_schema: Some(Arc::new(envelope_schema())),
            value: Value::Struct(value),
            ..TransformRecord::default()
        }
    }

    fn tombstone() -> TransformRecord {
        TransformRecord {
            topic: "db.public.t".into(),
            key: Value::Struct(Struct::new().with("id", 1)),
            ..TransformRecord::default()
        }
    }

    fn run(options: &[(&str, &str)], r: TransformRecord) -> Option<TransformRecord> {
        try_one(EXTRACT_NEW_RECORD_STATE, options, r).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn creates_and_updates_become_the_row_after() {
        for op in ["c", "u", "r"] {
            let out = run(&[], event(op, None, Some(row(1, "a")))).unwrap();
            assert_eq!(out.value, row(1, "a"));
            assert_eq!(out.value_schema.as_deref(), Some(&row_schema()));
            assert_eq!(out.key, Value::Struct(Struct::new().with("id", 1)));
        }
    }

    #[test]
    fn by_default_deletes_become_tombstones_and_tombstones_are_dropped() {
        let out = run(&[], event("d", Some(row(1, "a")), None)).unwrap();
        assert!(out.value.is_null());
        assert!(run(&[], tombstone()).is_none());
    }

    #[test]
    fn drop_mode_drops_deletes_and_tombstones() {
        let o = [("delete.tombstone.handling.mode", "drop")];
        assert!(run(&o, event("d", Some(row(1, "a")), None)).is_none());
        assert!(run(&o, tombstone()).is_none());
    }

    #[test]
    fn rewrite_modes_mark_rows_deleted_or_not() {
        let o = [("delete.tombstone.handling.mode", "rewrite")];
        let deleted = run(&o, event("d", Some(row(1, "a")), None)).unwrap();
        let s = deleted.value.as_struct().unwrap();
        assert_eq!(s.get("__deleted"), Some(&Value::from("true")));
        assert_eq!(s.get("name"), Some(&Value::from("a")));
        assert!(deleted.value_schema.unwrap().field("__deleted").is_some());
        let updated = run(&o, event("u", None, Some(row(1, "b")))).unwrap();
        assert_eq!(
            updated.value.as_struct().unwrap().get("__deleted"),
            Some(&Value::from("false"))
        );
        assert!(run(&o, tombstone()).is_none());
        let keep = [("delete.tombstone.handling.mode", "rewrite-with-tombstone")];
        assert!(run(&keep, tombstone()).is_some());
    }

    #[test]
    fn legacy_options_still_work() {
        let none = [
            ("delete.handling.mode", "none"),
            ("drop.tombstones", "false"),
        ];
        assert!(run(&none, event("d", Some(row(1, "a")), None))
            .unwrap()
            .value
            .is_null());
        assert!(run(&none, tombstone()).is_some());
        let drop = [("drop.tombstones", "true")];
        assert!(run(&drop, event("d", Some(row(1, "a")), None)).is_none());
        assert!(run(&drop, tombstone()).is_none());
    }

    #[test]
    fn add_fields_and_headers_copy_envelope_and_source_fields() {
        let o = [
            ("add.fields", "op,table,source.ts_ms,lsn:position"),
            ("add.headers", "op"),
        ];
        let out = run(&o, event("c", None, Some(row(1, "a")))).unwrap();
        let s = out.value.as_struct().unwrap();
        assert_eq!(s.get("__op"), Some(&Value::from("c")));
        assert_eq!(s.get("__table"), Some(&Value::from("t")));
        assert_eq!(s.get("__source_ts_ms"), Some(&Value::Int64(1_000)));
        assert_eq!(s.get("__position"), Some(&Value::Int64(42)));
        let schema = out.value_schema.unwrap();
        assert_eq!(
            schema.field("__source_ts_ms").unwrap().schema,
            Schema::int64().optional()
        );
        assert_eq!(schema.name.as_deref(), Some("db.public.t.Value"));
        assert_eq!(out.headers, vec![Header::text("__op", "c")]);
    }

    #[test]
    fn other_records_pass_unchanged_and_bad_fields_are_errors() {
        let plain = TransformRecord {
            value_schema: Some(Arc::new(Schema::string())),
            value: "x".into(),
            ..TransformRecord::default()
        };
        assert_eq!(run(&[], plain.clone()), Some(plain));
        let err = try_one(
            EXTRACT_NEW_RECORD_STATE,
            &[("add.fields", "nope")],
            event("c", None, Some(row(1, "a"))),
        )
        .unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn schemaless_envelopes_are_unwrapped_too() {
        let after = Value::Map(vec![("id".into(), Value::Int64(1))]);
        let r = TransformRecord {
            value: Value::Map(vec![
                ("before".into(), Value::Null),
                ("after".into(), after.clone()),
                ("op".into(), "c".into()),
            ]),
            ..TransformRecord::default()
        };
        assert_eq!(run(&[], r).unwrap().value, after);
    }
}
