//! Debezium's change event: key and value schemas per table shape, the `source` block, and
//! the records (`c`, `u`, `d`, `r`, the tombstone after a delete, heartbeats).

use std::sync::Arc;

use sluice_sdk::{
    Field, Schema, SchemaRef, SchemaType, SourceOffset, SourcePartition, SourceRecord, Struct,
    Value,
};

use super::config::PostgresCdcConfig;
use super::pgoutput::TupleValue;
use super::types::{column_type, CatalogType, Decoder};

/// `source.connector`.
pub const CONNECTOR_NAME: &str = "postgresql";
/// The `source` block's schema name.
pub const SOURCE_SCHEMA_NAME: &str = "io.debezium.connector.postgresql.Source";
/// What Debezium writes for a TOASTed value that did not change and was not sent.
pub const UNAVAILABLE_VALUE: &str = "__debezium_unavailable_value";
/// Heartbeat key schema name.
pub const HEARTBEAT_KEY_SCHEMA: &str = "io.debezium.connector.common.ServerNameKey";
/// Heartbeat value schema name.
pub const HEARTBEAT_VALUE_SCHEMA: &str = "io.debezium.connector.common.Heartbeat";

/// What the catalog says about one column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    /// Name.
    pub name: String,
    /// Type OID.
    pub type_oid: u32,
    /// Type modifier.
    pub modifier: i32,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// Whether it is part of the primary key.
    pub primary_key: bool,
}

/// One column of a table's current shape.
#[derive(Debug, Clone)]
pub struct ShapeColumn {
    /// Column name.
    pub name: String,
    /// Decoder of its text.
    pub decoder: Decoder,
    /// Its field schema (optional when nullable).
    pub schema: Schema,
    /// Whether it is part of the key.
    pub key: bool,
    /// Whether events carry it (`column.exclude.list`).
    pub included: bool,
}

/// A table's shape and the schemas of its events.
#[derive(Debug, Clone)]
pub struct TableShape {
    /// Schema name.
    pub schema_name: String,
    /// Table name.
    pub table: String,
    /// The events' topic.
    pub topic: String,
    /// Columns in table order.
    pub columns: Vec<ShapeColumn>,
    /// `<topic>.Key`; `None` for a table without a primary key (null keys).
    pub key_schema: Option<SchemaRef>,
    /// `<topic>.Value` (optional, as `before` and `after`).
    pub row_schema: Schema,
    /// `<topic>.Envelope`.
    pub envelope_schema: SchemaRef,
}

/// The `source` block's schema.
pub fn source_schema() -> Schema {
    let opt_i64 = || Schema::int64().optional();
    Schema::struct_of(vec![
        Field::new("version", Schema::string()),
        Field::new("connector", Schema::string()),
        Field::new("name", Schema::string()),
        Field::new("ts_ms", Schema::int64()),
        Field::new(
            "snapshot",
            Schema::string()
                .optional()
                .named(super::types::names::ENUM)
                .with_version(1)
                .with_parameter(
                    "allowed",
                    "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental",
                ),
        ),
        Field::new("db", Schema::string()),
        Field::new("sequence", Schema::string().optional()),
        Field::new("ts_us", opt_i64()),
        Field::new("ts_ns", opt_i64()),
        Field::new("schema", Schema::string()),
        Field::new("table", Schema::string()),
        Field::new("txId", opt_i64()),
        Field::new("lsn", opt_i64()),
        Field::new("xmin", opt_i64()),
    ])
    .named(SOURCE_SCHEMA_NAME)
}

fn transaction_schema() -> Schema {
    Schema::struct_of(vec![
        Field::new("id", Schema::string()),
        Field::new("total_order", Schema::int64()),
        Field::new("data_collection_order", Schema::int64()),
    ])
    .named("event.block")
    .with_version(1)
    .optional()
}

/// The zero value Debezium puts in a required column it has no value for (the non-key
/// columns of a key-only old row image).
fn fallback(schema: &Schema) -> Value {
    if schema.optional {
        return Value::Null;
    }
    match &schema.ty {
        SchemaType::Int8 => Value::Int8(0),
        SchemaType::Int16 => Value::Int16(0),
        SchemaType::Int32 => Value::Int32(0),
        SchemaType::Int64 => Value::Int64(0),
        SchemaType::Float32 => Value::Float32(0.0),
        SchemaType::Float64 => Value::Float64(0.0),
        SchemaType::Boolean => Value::Boolean(false),
        SchemaType::String => Value::String(String::new()),
        SchemaType::Bytes => Value::Bytes(vec![0]),
        SchemaType::Array(_) => Value::Array(Vec::new()),
        SchemaType::Map(..) => Value::Map(Vec::new()),
        SchemaType::Struct(fields) => Value::Struct(fields.iter().fold(Struct::new(), |s, f| {
            s.with(f.name.clone(), fallback(&f.schema))
        })),
    }
}

/// How Debezium marks an unchanged TOASTed value it was not sent.
fn unavailable(schema: &Schema) -> Value {
    match &schema.ty {
        SchemaType::String => Value::String(UNAVAILABLE_VALUE.to_string()),
        SchemaType::Bytes if schema.name.is_none() => {
            Value::Bytes(UNAVAILABLE_VALUE.as_bytes().to_vec())
        }
        SchemaType::Array(inner) if inner.ty == SchemaType::String => {
            Value::Array(vec![Value::String(UNAVAILABLE_VALUE.to_string())])
        }
        _ => fallback(schema),
    }
}

impl TableShape {
    /// The shape of `schema_name`.`table` with `columns`.
    pub fn new(
        config: &PostgresCdcConfig,
        schema_name: &str,
        table: &str,
        columns: &[ColumnInfo],
        lookup: &dyn Fn(u32) -> CatalogType,
    ) -> Self {
        let topic = config.topic(schema_name, table);
        let columns: Vec<ShapeColumn> = columns
            .iter()
            .map(|c| {
                let ty = column_type(
                    c.type_oid,
                    c.modifier,
                    config.decimal_handling,
                    config.time_precision,
                    lookup,
                );
                let schema = if c.nullable && !c.primary_key {
                    ty.schema.optional()
                } else {
                    ty.schema
                };
                ShapeColumn {
                    name: c.name.clone(),
                    decoder: ty.decoder,
                    schema,
                    key: c.primary_key,
                    included: c.primary_key || !config.excludes_column(schema_name, table, &c.name),
                }
            })
            .collect();
        let key_fields: Vec<Field> = columns
            .iter()
            .filter(|c| c.key)
            .map(|c| Field::new(c.name.clone(), c.schema.clone()))
            .collect();
        let key_schema = (!key_fields.is_empty())
            .then(|| Arc::new(Schema::struct_of(key_fields).named(format!("{topic}.Key"))));
        let row_schema = Schema::struct_of(
            columns
                .iter()
                .filter(|c| c.included)
                .map(|c| Field::new(c.name.clone(), c.schema.clone()))
                .collect(),
        )
        .named(format!("{topic}.Value"))
        .optional();
        let envelope_schema = Arc::new(
            Schema::struct_of(vec![
                Field::new("before", row_schema.clone()),
                Field::new("after", row_schema.clone()),
                Field::new("source", source_schema()),
                Field::new("transaction", transaction_schema()),
                Field::new("op", Schema::string()),
                Field::new("ts_ms", Schema::int64().optional()),
                Field::new("ts_us", Schema::int64().optional()),
                Field::new("ts_ns", Schema::int64().optional()),
            ])
            .named(format!("{topic}.Envelope"))
            .with_version(1),
        );
        Self {
            schema_name: schema_name.to_string(),
            table: table.to_string(),
            topic,
            columns,
            key_schema,
            row_schema,
            envelope_schema,
        }
    }

    /// A row image from text values in column order (`None` is NULL). With `key_only`, only
    /// the key columns are meaningful and the others get Debezium's fallback values.
    ///
    /// # Errors
    /// A value its type's decoder rejects, naming the column.
    pub fn row(&self, values: &[TupleValue], key_only: bool) -> Result<Struct, String> {
        if values.len() != self.columns.len() {
            return Err(format!(
                "table {}.{} has {} columns but the row has {}",
                self.schema_name,
                self.table,
                self.columns.len(),
                values.len()
            ));
        }
        let mut row = Struct::with_capacity(self.columns.len());
        for (column, value) in self.columns.iter().zip(values) {
            if !column.included {
                continue;
            }
            let v = match value {
                _ if key_only && !column.key => fallback(&column.schema),
                TupleValue::Null => Value::Null,
                TupleValue::UnchangedToast => unavailable(&column.schema),
                TupleValue::Text(text) => column.decoder.decode(text).map_err(|e| {
                    format!(
                        "column {}.{}.{}: {e}",
                        self.schema_name, self.table, column.name
                    )
                })?,
                TupleValue::Binary(_) => {
                    return Err(format!(
                        "column {}.{}.{} arrived in binary format",
                        self.schema_name, self.table, column.name
                    ))
                }
            };
            row.put(column.name.clone(), v);
        }
        Ok(row)
    }

    /// The key of a row image (null for a table without a primary key).
    pub fn key(&self, row: &Struct) -> Value {
        if self.key_schema.is_none() {
            return Value::Null;
        }
        let mut key = Struct::new();
        for c in self.columns.iter().filter(|c| c.key) {
            key.put(
                c.name.clone(),
                row.get(&c.name).cloned().unwrap_or(Value::Null),
            );
        }
        Value::Struct(key)
    }
}

/// Where in the log an event was, for `source` and the offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The change's LSN (for snapshot records, the slot's consistent point).
    pub lsn: u64,
    /// The commit LSN of its transaction.
    pub commit_lsn: u64,
    /// The transaction id.
    pub xid: Option<u32>,
    /// Commit time in microseconds since the Unix epoch.
    pub commit_micros: i64,
}

/// `r` events' place in the snapshot (`source.snapshot`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMark {
    /// Not a snapshot event.
    No,
    /// The first of the snapshot.
    First,
    /// Inside it.
    Middle,
    /// The last of a table.
    LastInTable,
    /// The last of the snapshot.
    Last,
}

impl SnapshotMark {
    fn text(self) -> &'static str {
        match self {
            Self::No => "false",
            Self::First => "first",
            Self::Middle => "true",
            Self::LastInTable => "last_in_data_collection",
            Self::Last => "last",
        }
    }
}

/// Builds the events of one connector.
#[derive(Debug, Clone)]
pub struct EventBuilder {
    /// `topic.prefix`.
    pub server: String,
    /// Database name.
    pub db: String,
    /// The source partition of every event: `{"server": <topic.prefix>}`, as Debezium's.
    pub partition: SourcePartition,
    /// Whether deletes are followed by tombstones.
    pub tombstones: bool,
    /// The connector's version, for `source.version`.
    pub version: String,
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl EventBuilder {
    /// A builder for `config`.
    pub fn new(config: &PostgresCdcConfig) -> Self {
        let mut partition = SourcePartition::new();
        partition.insert("server".into(), config.topic_prefix.clone().into());
        Self {
            server: config.topic_prefix.clone(),
            db: config.dbname.clone(),
            partition,
            tombstones: config.tombstones_on_delete,
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    fn source(&self, shape: &TableShape, at: Position, snapshot: SnapshotMark) -> Value {
        let micros = at.commit_micros;
        Value::Struct(
            Struct::with_capacity(14)
                .with("version", self.version.clone())
                .with("connector", CONNECTOR_NAME)
                .with("name", self.server.clone())
                .with("ts_ms", Value::Int64(micros.div_euclid(1000)))
                .with("snapshot", snapshot.text())
                .with("db", self.db.clone())
                .with(
                    "sequence",
                    if snapshot == SnapshotMark::No {
                        Value::String(format!("[\"{}\",\"{}\"]", at.commit_lsn, at.lsn))
                    } else {
                        Value::Null
                    },
                )
                .with("ts_us", Value::Int64(micros))
                .with("ts_ns", Value::Int64(micros.saturating_mul(1000)))
                .with("schema", shape.schema_name.clone())
                .with("table", shape.table.clone())
                .with(
                    "txId",
                    at.xid
                        .map(|x| Value::Int64(i64::from(x)))
                        .unwrap_or(Value::Null),
                )
                .with("lsn", Value::Int64(at.lsn as i64))
                .with("xmin", Value::Null),
        )
    }

    /// The change event for `op` (`c`, `u`, `d`, `r`) with its offset.
    #[allow(clippy::too_many_arguments)]
    pub fn change(
        &self,
        shape: &TableShape,
        op: &str,
        before: Option<Struct>,
        after: Option<Struct>,
        at: Position,
        snapshot: SnapshotMark,
        offset: SourceOffset,
    ) -> SourceRecord {
        let key = match (&after, &before) {
            (Some(row), _) | (None, Some(row)) => shape.key(row),
            (None, None) => Value::Null,
        };
        let now = now_micros();
        let value = Struct::with_capacity(8)
            .with("before", before.map(Value::Struct).unwrap_or(Value::Null))
            .with("after", after.map(Value::Struct).unwrap_or(Value::Null))
            .with("source", self.source(shape, at, snapshot))
            .with("transaction", Value::Null)
            .with("op", op)
            .with("ts_ms", Value::Int64(now.div_euclid(1000)))
            .with("ts_us", Value::Int64(now))
            .with("ts_ns", Value::Int64(now.saturating_mul(1000)));
        SourceRecord::new(
            self.partition.clone(),
            offset,
            shape.topic.clone(),
            Some(shape.envelope_schema.clone()),
            Value::Struct(value),
        )
        .with_key(shape.key_schema.clone(), key)
    }

    /// The tombstone that follows a delete: its key, a null value.
    pub fn tombstone(&self, delete: &SourceRecord, offset: SourceOffset) -> SourceRecord {
        SourceRecord::new(
            self.partition.clone(),
            offset,
            delete.topic.clone(),
            None,
            Value::Null,
        )
        .with_key(delete.key_schema.clone(), delete.key.clone())
    }

    /// A heartbeat record on `topic`, Debezium's shape.
    pub fn heartbeat(&self, topic: &str, offset: SourceOffset) -> SourceRecord {
        let key_schema = Arc::new(
            Schema::struct_of(vec![Field::new("serverName", Schema::string())])
                .named(HEARTBEAT_KEY_SCHEMA),
        );
        let value_schema = Arc::new(
            Schema::struct_of(vec![Field::new("ts_ms", Schema::int64())])
                .named(HEARTBEAT_VALUE_SCHEMA),
        );
        SourceRecord::new(
            self.partition.clone(),
            offset,
            topic,
            Some(value_schema),
            Value::Struct(Struct::new().with("ts_ms", Value::Int64(now_micros() / 1000))),
        )
        .with_key(
            Some(key_schema),
            Value::Struct(Struct::new().with("serverName", self.server.clone())),
        )
    }
}
