//! Source and sink records, headers, and source partitions/offsets.

use crate::{SchemaRef, Value};

/// Where a source record came from, e.g. `{"protocol":"1","table":"db.public.orders"}`.
///
/// Stored as the second element of the `connect-offsets` key
/// (`["<connector>", {source partition}]`), exactly as Kafka Connect stores it.
pub type SourcePartition = serde_json::Map<String, serde_json::Value>;

/// How far a source has read within one [`SourcePartition`], e.g. `{"incrementing": 42}`.
pub type SourceOffset = serde_json::Map<String, serde_json::Value>;

/// One Kafka record header. Values are raw bytes (`None` is a null header value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header name.
    pub key: String,
    /// Header value bytes.
    pub value: Option<Vec<u8>>,
}

impl Header {
    /// A header with a UTF-8 text value.
    pub fn text(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: Some(value.into().into_bytes()),
        }
    }
}

/// A topic and a partition of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
}

impl TopicPartition {
    /// `topic`-`partition`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// A record a source task hands to the runtime.
///
/// The runtime converts key and value with the connector's converters, produces the record,
/// and once Kafka has acknowledged it (and every earlier record of the same source partition)
/// writes `source_offset` to `connect-offsets`.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    /// Which part of the source this record belongs to; offsets are tracked per partition.
    pub source_partition: SourcePartition,
    /// The position to resume from after this record.
    pub source_offset: SourceOffset,
    /// Destination topic.
    pub topic: String,
    /// Destination partition; `None` lets the producer choose by key.
    pub kafka_partition: Option<i32>,
    /// Key schema (`None` for schemaless keys).
    pub key_schema: Option<SchemaRef>,
    /// Key ([`Value::Null`] for no key).
    pub key: Value,
    /// Value schema (`None` for schemaless values).
    pub value_schema: Option<SchemaRef>,
    /// Value ([`Value::Null`] for a tombstone).
    pub value: Value,
    /// Record timestamp in milliseconds since the epoch; `None` means "now".
    pub timestamp: Option<i64>,
    /// Headers.
    pub headers: Vec<Header>,
}

impl SourceRecord {
    /// A record for `topic` with no key, no headers and no timestamp.
    pub fn new(
        source_partition: SourcePartition,
        source_offset: SourceOffset,
        topic: impl Into<String>,
        value_schema: Option<SchemaRef>,
        value: Value,
    ) -> Self {
        Self {
            source_partition,
            source_offset,
            topic: topic.into(),
            kafka_partition: None,
            key_schema: None,
            key: Value::Null,
            value_schema,
            value,
            timestamp: None,
            headers: Vec::new(),
        }
    }

    /// The same record with a key.
    pub fn with_key(mut self, key_schema: Option<SchemaRef>, key: Value) -> Self {
        self.key_schema = key_schema;
        self.key = key;
        self
    }

    /// The same record with a timestamp.
    pub fn with_timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp = Some(timestamp_ms);
        self
    }
}

/// How a sink record's timestamp was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampType {
    /// No timestamp.
    #[default]
    NoTimestamp,
    /// Set by the producer.
    CreateTime,
    /// Set by the broker.
    LogAppendTime,
}

/// A record the runtime hands to a sink task.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkRecord {
    /// Topic the record was read from.
    pub topic: String,
    /// Partition it was read from.
    pub kafka_partition: i32,
    /// Its offset in that partition.
    pub kafka_offset: i64,
    /// Key schema (`None` for schemaless keys).
    pub key_schema: Option<SchemaRef>,
    /// Key.
    pub key: Value,
    /// Value schema (`None` for schemaless values).
    pub value_schema: Option<SchemaRef>,
    /// Value ([`Value::Null`] for a tombstone).
    pub value: Value,
    /// Timestamp in milliseconds since the epoch.
    pub timestamp: Option<i64>,
    /// How the timestamp was set.
    pub timestamp_type: TimestampType,
    /// Headers.
    pub headers: Vec<Header>,
}

impl SinkRecord {
    /// The topic-partition the record came from.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic.clone(), self.kafka_partition)
    }
}

/// A JSON object's keys sorted at every level, so equal partitions give equal text.
///
/// The runtime looks offsets up by this text; connectors rarely need it.
pub fn canonical_json(value: &serde_json::Value) -> String {
    fn sorted(value: &serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                serde_json::Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), sorted(v)))
                        .collect(),
                )
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(sorted).collect())
            }
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_ignores_key_order() {
        let a = serde_json::json!({"table": "t", "protocol": "1", "n": {"b": 1, "a": 2}});
        let b = serde_json::json!({"protocol": "1", "n": {"a": 2, "b": 1}, "table": "t"});
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_ne!(
            canonical_json(&a),
            canonical_json(&serde_json::json!({"table": "u"}))
        );
    }
}
