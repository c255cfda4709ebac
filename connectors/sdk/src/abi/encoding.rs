//! What crosses the plugin ABI: the record batch encoding, and the JSON forms of
//! descriptions, configurations and option errors.
//!
//! # Batch encoding (ABI version 2)
//! A batch is a byte buffer. Integers are little-endian; `string` and `bytes` are a `u32`
//! length then that many bytes (UTF-8 for strings); `opt<T>` is a `u8` 0 (absent) or 1
//! followed by a `T`.
//!
//! ```text
//! batch         = kind:u8 (1 source, 2 sink, 3 transform)  count:u32  record*count
//! source record = partition  offset:string  topic:string  kafka_partition:opt<i32>
//!                 key_schema:schema_ref  key:value  value_schema:schema_ref  value:value
//!                 timestamp:opt<i64>  headers
//! sink record   = topic:string  kafka_partition:i32  kafka_offset:i64
//!                 key_schema:schema_ref  key:value  value_schema:schema_ref  value:value
//!                 timestamp:opt<i64>  timestamp_type:u8 (0 none, 1 create, 2 log append)
//!                 headers
//! transform record = topic:string  kafka_partition:opt<i32>  kafka_offset:opt<i64>
//!                 key_schema:schema_ref  key:value  value_schema:schema_ref  value:value
//!                 timestamp:opt<i64>  headers
//! data          = kind:u8 4  schema:schema_ref  value:value   (a converter's Connect side)
//! bytes buffer  = kind:u8 5  opt<bytes>                       (a converter's Kafka side)
//! partition     = u8 0 (same source partition as the previous record)
//!               | u8 1  string (the source partition as a JSON object)
//! offset        = the source offset as a JSON object (Kafka Connect's offset form)
//! schema_ref    = u8 0 (no schema)
//!               | u8 1  string (a new schema in Kafka Connect's JSON envelope form, see
//!                       [`crate::json::schema_to_abi_json`]; it gets the next schema number)
//!               | u8 2  u32 (the schema of that number, defined earlier in this batch)
//! headers       = count:u32  (key:string  value:opt<bytes>)*count
//! value         = tag:u8 payload, by tag:
//!                 0 null | 1 int8 i8 | 2 int16 i16 | 3 int32 i32 | 4 int64 i64
//!                 | 5 float32 f32 | 6 float64 f64 | 7 boolean u8 | 8 string string
//!                 | 9 bytes bytes | 10 array count:u32 value*count
//!                 | 11 map count:u32 (key:value value:value)*count
//!                 | 12 struct count:u32 (name:string value:value)*count
//! ```
//!
//! Values are tagged, so a schemaless `int32` stays an `int32`; schemas cross once per batch
//! however many records share them, and records of one source partition name it once.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Map, Value as Json};

use crate::config::{ConfigDef, ConfigKey, ConfigType, Importance, Props, Validator};
use crate::error::{ConfigError, ConfigErrors, Error, Result};
use crate::json::{schema_from_json, schema_to_abi_json};
use crate::record::{Header, SinkRecord, SourceRecord, TimestampType, TopicPartition};
use crate::schema::{Schema, SchemaRef};
use crate::transform::TransformRecord;
use crate::value::{Struct, Value};

const KIND_SOURCE: u8 = 1;
const KIND_SINK: u8 = 2;
const KIND_TRANSFORM: u8 = 3;
const KIND_DATA: u8 = 4;
const KIND_BYTES: u8 = 5;
/// Schemas compared by value with a new one before it is written again.
const MAX_COMPARED_SCHEMAS: usize = 8;
/// Deepest nesting of arrays, maps and structs a batch may hold.
const MAX_DEPTH: usize = 100;

/// Encodes source records as a batch.
pub fn encode_source_batch(records: &[SourceRecord]) -> Vec<u8> {
    let mut w = Writer::with_capacity(64 + records.len() * 96);
    w.u8(KIND_SOURCE);
    w.u32(records.len() as u32);
    let mut previous_partition: Option<&Map<String, Json>> = None;
    for r in records {
        if previous_partition == Some(&r.source_partition) {
            w.u8(0);
        } else {
            w.u8(1);
            w.json(&r.source_partition);
            previous_partition = Some(&r.source_partition);
        }
        w.json(&r.source_offset);
        w.str(&r.topic);
        w.opt(r.kafka_partition, |w, p| w.i32(p));
        w.schema(r.key_schema.as_ref());
        w.value(&r.key);
        w.schema(r.value_schema.as_ref());
        w.value(&r.value);
        w.opt(r.timestamp, |w, t| w.i64(t));
        w.headers(&r.headers);
    }
    w.buf
}

/// Decodes a batch written by [`encode_source_batch`].
///
/// # Errors
/// [`Error::Fatal`] describing where the batch is malformed.
pub fn decode_source_batch(bytes: &[u8]) -> Result<Vec<SourceRecord>> {
    let mut r = Reader::new(bytes);
    let count = r.header(KIND_SOURCE, "source")?;
    let mut out = Vec::with_capacity(count.min(1 << 16));
    let mut previous_partition: Option<Map<String, Json>> = None;
    for _ in 0..count {
        let source_partition = match r.u8()? {
            0 => previous_partition
                .clone()
                .ok_or_else(|| r.error("the first record refers to a previous partition"))?,
            1 => {
                let p = r.json_object()?;
                previous_partition = Some(p.clone());
                p
            }
            other => return Err(r.error(&format!("unknown partition tag {other}"))),
        };
        let source_offset = r.json_object()?;
        let topic = r.string()?;
        let kafka_partition = r.opt(Reader::i32)?;
        let key_schema = r.schema()?;
        let key = r.value(0)?;
        let value_schema = r.schema()?;
        let value = r.value(0)?;
        let timestamp = r.opt(Reader::i64)?;
        let headers = r.headers()?;
        out.push(SourceRecord {
            source_partition,
            source_offset,
            topic,
            kafka_partition,
            key_schema,
            key,
            value_schema,
            value,
            timestamp,
            headers,
        });
    }
    r.finish()?;
    Ok(out)
}

/// Encodes sink records as a batch.
pub fn encode_sink_batch(records: &[SinkRecord]) -> Vec<u8> {
    let mut w = Writer::with_capacity(64 + records.len() * 96);
    w.u8(KIND_SINK);
    w.u32(records.len() as u32);
    for r in records {
        w.str(&r.topic);
        w.i32(r.kafka_partition);
        w.i64(r.kafka_offset);
        w.schema(r.key_schema.as_ref());
        w.value(&r.key);
        w.schema(r.value_schema.as_ref());
        w.value(&r.value);
        w.opt(r.timestamp, |w, t| w.i64(t));
        w.u8(match r.timestamp_type {
            TimestampType::NoTimestamp => 0,
            TimestampType::CreateTime => 1,
            TimestampType::LogAppendTime => 2,
        });
        w.headers(&r.headers);
    }
    w.buf
}

/// Decodes a batch written by [`encode_sink_batch`].
///
/// # Errors
/// [`Error::Fatal`] describing where the batch is malformed.
pub fn decode_sink_batch(bytes: &[u8]) -> Result<Vec<SinkRecord>> {
    let mut r = Reader::new(bytes);
    let count = r.header(KIND_SINK, "sink")?;
    let mut out = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        let topic = r.string()?;
        let kafka_partition = r.i32()?;
        let kafka_offset = r.i64()?;
        let key_schema = r.schema()?;
        let key = r.value(0)?;
        let value_schema = r.schema()?;
        let value = r.value(0)?;
        let timestamp = r.opt(Reader::i64)?;
        let timestamp_type = match r.u8()? {
            0 => TimestampType::NoTimestamp,
            1 => TimestampType::CreateTime,
            2 => TimestampType::LogAppendTime,
            other => return Err(r.error(&format!("unknown timestamp type {other}"))),
        };
        let headers = r.headers()?;
        out.push(SinkRecord {
            topic,
            kafka_partition,
            kafka_offset,
            key_schema,
            key,
            value_schema,
            value,
            timestamp,
            timestamp_type,
            headers,
        });
    }
    r.finish()?;
    Ok(out)
}

/// Encodes records for transforms and predicates as a batch.
pub fn encode_transform_batch(records: &[TransformRecord]) -> Vec<u8> {
    let mut w = Writer::with_capacity(64 + records.len() * 96);
    w.u8(KIND_TRANSFORM);
    w.u32(records.len() as u32);
    for r in records {
        w.str(&r.topic);
        w.opt(r.kafka_partition, |w, p| w.i32(p));
        w.opt(r.kafka_offset, |w, o| w.i64(o));
        w.schema(r.key_schema.as_ref());
        w.value(&r.key);
        w.schema(r.value_schema.as_ref());
        w.value(&r.value);
        w.opt(r.timestamp, |w, t| w.i64(t));
        w.headers(&r.headers);
    }
    w.buf
}

/// Decodes a batch written by [`encode_transform_batch`].
///
/// # Errors
/// [`Error::Fatal`] describing where the batch is malformed.
pub fn decode_transform_batch(bytes: &[u8]) -> Result<Vec<TransformRecord>> {
    let mut r = Reader::new(bytes);
    let count = r.header(KIND_TRANSFORM, "transform")?;
    let mut out = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        let topic = r.string()?;
        let kafka_partition = r.opt(Reader::i32)?;
        let kafka_offset = r.opt(Reader::i64)?;
        let key_schema = r.schema()?;
        let key = r.value(0)?;
        let value_schema = r.schema()?;
        let value = r.value(0)?;
        let timestamp = r.opt(Reader::i64)?;
        let headers = r.headers()?;
        out.push(TransformRecord {
            topic,
            kafka_partition,
            kafka_offset,
            key_schema,
            key,
            value_schema,
            value,
            timestamp,
            headers,
        });
    }
    r.finish()?;
    Ok(out)
}

/// Encodes a converter's Connect side: a schema (or none) and a value.
pub fn encode_data(schema: Option<&Schema>, value: &Value) -> Vec<u8> {
    let mut w = Writer::with_capacity(64);
    w.u8(KIND_DATA);
    match schema {
        None => w.u8(0),
        Some(s) => {
            w.u8(1);
            w.str(&schema_to_abi_json(s).to_string());
        }
    }
    w.value(value);
    w.buf
}

/// Decodes what [`encode_data`] wrote.
///
/// # Errors
/// [`Error::Fatal`] describing where the buffer is malformed.
pub fn decode_data(bytes: &[u8]) -> Result<(Option<SchemaRef>, Value)> {
    let mut r = Reader::new(bytes);
    r.kind(KIND_DATA, "data")?;
    let schema = r.schema()?;
    let value = r.value(0)?;
    r.finish()?;
    Ok((schema, value))
}

/// Encodes a converter's Kafka side: bytes, or a Kafka null.
pub fn encode_bytes(bytes: Option<&[u8]>) -> Vec<u8> {
    let mut w = Writer::with_capacity(8 + bytes.map_or(0, <[u8]>::len));
    w.u8(KIND_BYTES);
    w.opt(bytes, |w, b| w.bytes(b));
    w.buf
}

/// Decodes what [`encode_bytes`] wrote.
///
/// # Errors
/// [`Error::Fatal`] describing where the buffer is malformed.
pub fn decode_bytes(bytes: &[u8]) -> Result<Option<Vec<u8>>> {
    let mut r = Reader::new(bytes);
    r.kind(KIND_BYTES, "bytes")?;
    let out = r.opt(|r| r.bytes().map(<[u8]>::to_vec))?;
    r.finish()?;
    Ok(out)
}

struct Writer<'a> {
    buf: Vec<u8>,
    /// Schemas already in the batch, by address (records of one batch share their `Arc`s).
    schemas: HashMap<*const Schema, u32>,
    /// Keeps the schemas alive while their addresses are keys.
    kept: Vec<&'a SchemaRef>,
}

impl<'a> Writer<'a> {
    fn with_capacity(n: usize) -> Self {
        Self {
            buf: Vec::with_capacity(n),
            schemas: HashMap::new(),
            kept: Vec::new(),
        }
    }

    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.buf.extend_from_slice(v);
    }

    fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }

    fn json(&mut self, map: &Map<String, Json>) {
        let at = self.buf.len();
        self.u32(0);
        serde_json::to_writer(&mut self.buf, map).expect("a JSON map always serialises");
        let len = (self.buf.len() - at - 4) as u32;
        self.buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }

    fn opt<T>(&mut self, v: Option<T>, f: impl FnOnce(&mut Self, T)) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                f(self, v);
            }
        }
    }

    fn schema(&mut self, schema: Option<&'a SchemaRef>) {
        let Some(schema) = schema else {
            self.u8(0);
            return;
        };
        let address = Arc::as_ptr(schema);
        // Records of a batch usually share their schemas' `Arc`s; connectors that build a
        // fresh (equal) schema per record are caught by comparing with the few known ones.
        let known = self.schemas.get(&address).copied().or_else(|| {
            (self.kept.len() <= MAX_COMPARED_SCHEMAS)
                .then(|| self.kept.iter().position(|k| ***k == **schema))
                .flatten()
                .map(|n| n as u32)
        });
        if let Some(n) = known {
            self.schemas.insert(address, n);
            self.u8(2);
            self.u32(n);
        } else {
            self.u8(1);
            self.str(&schema_to_abi_json(schema).to_string());
            self.schemas.insert(address, self.kept.len() as u32);
            self.kept.push(schema);
        }
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::Null => self.u8(0),
            Value::Int8(x) => {
                self.u8(1);
                self.buf.extend_from_slice(&x.to_le_bytes());
            }
            Value::Int16(x) => {
                self.u8(2);
                self.buf.extend_from_slice(&x.to_le_bytes());
            }
            Value::Int32(x) => {
                self.u8(3);
                self.i32(*x);
            }
            Value::Int64(x) => {
                self.u8(4);
                self.i64(*x);
            }
            Value::Float32(x) => {
                self.u8(5);
                self.buf.extend_from_slice(&x.to_le_bytes());
            }
            Value::Float64(x) => {
                self.u8(6);
                self.buf.extend_from_slice(&x.to_le_bytes());
            }
            Value::Boolean(x) => {
                self.u8(7);
                self.u8(u8::from(*x));
            }
            Value::String(s) => {
                self.u8(8);
                self.str(s);
            }
            Value::Bytes(b) => {
                self.u8(9);
                self.bytes(b);
            }
            Value::Array(items) => {
                self.u8(10);
                self.u32(items.len() as u32);
                for item in items {
                    self.value(item);
                }
            }
            Value::Map(entries) => {
                self.u8(11);
                self.u32(entries.len() as u32);
                for (k, v) in entries {
                    self.value(k);
                    self.value(v);
                }
            }
            Value::Struct(s) => {
                self.u8(12);
                self.u32(s.fields().len() as u32);
                for (name, v) in s.fields() {
                    self.str(name);
                    self.value(v);
                }
            }
        }
    }

    fn headers(&mut self, headers: &[Header]) {
        self.u32(headers.len() as u32);
        for h in headers {
            self.str(&h.key);
            self.opt(h.value.as_deref(), |w, v| w.bytes(v));
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    schemas: Vec<SchemaRef>,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            pos: 0,
            schemas: Vec::new(),
        }
    }

    fn error(&self, what: &str) -> Error {
        Error::fatal(format!(
            "malformed record batch at byte {}: {what}",
            self.pos
        ))
    }

    fn header(&mut self, kind: u8, name: &str) -> Result<usize> {
        self.kind(kind, name)?;
        Ok(self.u32()? as usize)
    }

    fn kind(&mut self, kind: u8, name: &str) -> Result<()> {
        let found = self.u8()?;
        if found != kind {
            return Err(self.error(&format!(
                "expected a {name} batch (kind {kind}), got kind {found}"
            )));
        }
        Ok(())
    }

    fn finish(&self) -> Result<()> {
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(self.error(&format!("{} bytes left over", self.bytes.len() - self.pos)))
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| self.error(&format!("{n} more bytes needed, the batch ends first")))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn string(&mut self) -> Result<String> {
        let b = self.bytes()?;
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|_| self.error("a string is not UTF-8"))
    }

    fn json_object(&mut self) -> Result<Map<String, Json>> {
        let b = self.bytes()?;
        serde_json::from_slice(b).map_err(|e| self.error(&format!("not a JSON object: {e}")))
    }

    fn opt<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<Option<T>> {
        match self.u8()? {
            0 => Ok(None),
            1 => f(self).map(Some),
            other => Err(self.error(&format!("an optional field has tag {other}"))),
        }
    }

    fn schema(&mut self) -> Result<Option<SchemaRef>> {
        match self.u8()? {
            0 => Ok(None),
            1 => {
                let text = self.string()?;
                let json: Json = serde_json::from_str(&text)
                    .map_err(|e| self.error(&format!("a schema is not JSON: {e}")))?;
                let schema = Arc::new(schema_from_json(&json).map_err(|e| self.error(&e))?);
                self.schemas.push(schema.clone());
                Ok(Some(schema))
            }
            2 => {
                let n = self.u32()? as usize;
                self.schemas
                    .get(n)
                    .cloned()
                    .map(Some)
                    .ok_or_else(|| self.error(&format!("schema {n} is not defined before its use")))
            }
            other => Err(self.error(&format!("unknown schema tag {other}"))),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            return Err(self.error(&format!("values nest deeper than {MAX_DEPTH} levels")));
        }
        Ok(match self.u8()? {
            0 => Value::Null,
            1 => Value::Int8(i8::from_le_bytes(self.array()?)),
            2 => Value::Int16(i16::from_le_bytes(self.array()?)),
            3 => Value::Int32(self.i32()?),
            4 => Value::Int64(self.i64()?),
            5 => Value::Float32(f32::from_le_bytes(self.array()?)),
            6 => Value::Float64(f64::from_le_bytes(self.array()?)),
            7 => Value::Boolean(self.u8()? != 0),
            8 => Value::String(self.string()?),
            9 => Value::Bytes(self.bytes()?.to_vec()),
            10 => {
                let n = self.count()?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            11 => {
                let n = self.count()?;
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let k = self.value(depth + 1)?;
                    let v = self.value(depth + 1)?;
                    entries.push((k, v));
                }
                Value::Map(entries)
            }
            12 => {
                let n = self.count()?;
                let mut s = Struct::with_capacity(n);
                for _ in 0..n {
                    let name = self.string()?;
                    let v = self.value(depth + 1)?;
                    s.put(name, v);
                }
                Value::Struct(s)
            }
            other => return Err(self.error(&format!("unknown value tag {other}"))),
        })
    }

    /// An element count, bounded by the bytes left (each element takes at least one byte).
    fn count(&mut self) -> Result<usize> {
        let n = self.u32()? as usize;
        if n > self.bytes.len() - self.pos {
            return Err(self.error(&format!("a count of {n} exceeds the bytes left")));
        }
        Ok(n)
    }

    fn headers(&mut self) -> Result<Vec<Header>> {
        let n = self.count()?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let key = self.string()?;
            let value = self.opt(|r| r.bytes().map(<[u8]>::to_vec))?;
            out.push(Header { key, value });
        }
        Ok(out)
    }
}

/// A configuration as a JSON object of strings.
pub fn props_to_json(props: &Props) -> Json {
    Json::Object(
        props
            .iter()
            .map(|(k, v)| (k.clone(), Json::String(v.clone())))
            .collect(),
    )
}

/// A configuration read from a JSON object of strings (other scalars are taken as text).
///
/// # Errors
/// When `json` is not an object.
pub fn props_from_json(json: &Json) -> Result<Props> {
    let obj = json.as_object().ok_or_else(|| {
        Error::fatal(format!("a configuration must be a JSON object, got {json}"))
    })?;
    Ok(obj
        .iter()
        .map(|(k, v)| {
            let text = match v {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect())
}

/// Option errors as `[{"option": .., "message": ..}]`.
pub fn config_errors_to_json(errors: &ConfigErrors) -> Json {
    Json::Array(
        errors
            .0
            .iter()
            .map(|e| json!({"option": e.option, "message": e.message}))
            .collect(),
    )
}

/// Option errors read from `[{"option": .., "message": ..}]`.
///
/// # Errors
/// When `json` does not have that shape.
pub fn config_errors_from_json(json: &Json) -> Result<ConfigErrors> {
    let items = json
        .as_array()
        .ok_or_else(|| Error::fatal(format!("option errors must be a JSON array, got {json}")))?;
    let mut errors = ConfigErrors::default();
    for item in items {
        let option = item.get("option").and_then(Json::as_str);
        let message = item.get("message").and_then(Json::as_str);
        match (option, message) {
            (Some(o), Some(m)) => errors.0.push(ConfigError::new(o, m)),
            _ => {
                return Err(Error::fatal(format!(
                    "an option error needs \"option\" and \"message\" strings, got {item}"
                )))
            }
        }
    }
    Ok(errors)
}

/// Topic-partitions as `[["topic", 0], ..]`.
pub fn partitions_to_json(partitions: &[TopicPartition]) -> Json {
    Json::Array(
        partitions
            .iter()
            .map(|tp| json!([tp.topic, tp.partition]))
            .collect(),
    )
}

/// Topic-partitions read from `[["topic", 0], ..]`.
///
/// # Errors
/// When `json` does not have that shape.
pub fn partitions_from_json(json: &Json) -> Result<Vec<TopicPartition>> {
    let bad = || {
        Error::fatal(format!(
            "partitions must be [[\"topic\", 0], ..], got {json}"
        ))
    };
    json.as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|item| match item.as_array().map(Vec::as_slice) {
            Some([Json::String(topic), partition]) => partition
                .as_i64()
                .and_then(|p| i32::try_from(p).ok())
                .map(|p| TopicPartition::new(topic.clone(), p))
                .ok_or_else(bad),
            _ => Err(bad()),
        })
        .collect()
}

/// An option declaration in the JSON form of `describe` (see
/// [`PluginApi::describe`](super::PluginApi::describe)).
pub fn config_key_to_json(key: &ConfigKey) -> Json {
    let validator = key.validator.as_ref().map(|v| match v {
        Validator::OneOf(values) => json!({"one_of": values}),
        Validator::AtLeast(min) => json!({"at_least": min}),
        Validator::Between(min, max) => json!({"between": [min, max]}),
        Validator::NonEmpty => json!({"non_empty": true}),
        Validator::Custom(_) => json!({"custom": true}),
    });
    json!({
        "name": key.name,
        "type": key.ty.name(),
        "default": key.default,
        "nullable": key.nullable,
        "importance": key.importance.name(),
        "doc": key.doc,
        "group": key.group,
        "display_name": key.display_name,
        "validator": validator,
    })
}

/// An option declaration read from its `describe` JSON form. A custom validator cannot
/// cross; the plugin runs it in `connector_validate`, so the declaration here has none.
///
/// # Errors
/// When a field is missing or has an unknown value.
pub fn config_key_from_json(json: &Json) -> Result<ConfigKey> {
    let text = |field: &str| json.get(field).and_then(Json::as_str);
    let name =
        text("name").ok_or_else(|| Error::fatal(format!("an option needs a \"name\": {json}")))?;
    let bad = |field: &str| {
        Error::fatal(format!(
            "option '{name}': unknown or missing \"{field}\" in {json}"
        ))
    };
    let ty = match text("type").ok_or_else(|| bad("type"))? {
        "BOOLEAN" => ConfigType::Boolean,
        "STRING" => ConfigType::String,
        "INT" => ConfigType::Int,
        "SHORT" => ConfigType::Short,
        "LONG" => ConfigType::Long,
        "DOUBLE" => ConfigType::Double,
        "LIST" => ConfigType::List,
        "CLASS" => ConfigType::Class,
        "PASSWORD" => ConfigType::Password,
        _ => return Err(bad("type")),
    };
    let importance = match text("importance").ok_or_else(|| bad("importance"))? {
        "HIGH" => Importance::High,
        "MEDIUM" => Importance::Medium,
        "LOW" => Importance::Low,
        _ => return Err(bad("importance")),
    };
    let mut key = ConfigKey::new(name, ty, importance, text("doc").unwrap_or_default());
    key.default = text("default").map(str::to_string);
    key.nullable = json
        .get("nullable")
        .and_then(Json::as_bool)
        .unwrap_or(false);
    key.group = text("group").map(str::to_string);
    key.display_name = text("display_name").map(str::to_string);
    key.validator = match json.get("validator") {
        None | Some(Json::Null) => None,
        Some(v) => {
            if let Some(values) = v.get("one_of").and_then(Json::as_array) {
                Some(Validator::OneOf(
                    values
                        .iter()
                        .map(|x| {
                            x.as_str()
                                .map(str::to_string)
                                .ok_or_else(|| bad("validator"))
                        })
                        .collect::<Result<_>>()?,
                ))
            } else if let Some(min) = v.get("at_least").and_then(Json::as_f64) {
                Some(Validator::AtLeast(min))
            } else if let Some([min, max]) =
                v.get("between").and_then(Json::as_array).map(Vec::as_slice)
            {
                Some(Validator::Between(
                    min.as_f64().ok_or_else(|| bad("validator"))?,
                    max.as_f64().ok_or_else(|| bad("validator"))?,
                ))
            } else if v.get("non_empty").is_some() {
                Some(Validator::NonEmpty)
            } else if v.get("custom").is_some() {
                None
            } else {
                return Err(bad("validator"));
            }
        }
    };
    Ok(key)
}

/// A whole option set in its `describe` JSON form.
pub fn config_def_to_json(def: &ConfigDef) -> Json {
    Json::Array(def.keys().iter().map(config_key_to_json).collect())
}

/// An option set read from its `describe` JSON form.
///
/// # Errors
/// When an option is malformed.
pub fn config_def_from_json(json: &Json) -> Result<ConfigDef> {
    let keys = json
        .as_array()
        .ok_or_else(|| Error::fatal(format!("\"options\" must be an array, got {json}")))?;
    keys.iter().try_fold(ConfigDef::new(), |def, k| {
        Ok(def.define(config_key_from_json(k)?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Field;
    use proptest::prelude::*;
    use serde_json::json;

    fn obj(v: Json) -> Map<String, Json> {
        v.as_object().unwrap().clone()
    }

    fn order_schema() -> SchemaRef {
        Arc::new(
            Schema::struct_of(vec![
                Field::new("id", Schema::int64()),
                Field::new("total", Schema::decimal(2)),
                Field::new("note", Schema::string().optional()),
            ])
            .named("orders"),
        )
    }

    #[test]
    fn source_batches_round_trip_and_share_schemas_and_partitions() {
        let schema = order_schema();
        let records: Vec<SourceRecord> = (0..3)
            .map(|i| {
                let value = Value::Struct(
                    Struct::new()
                        .with("id", i64::from(i))
                        .with("total", Value::Bytes(vec![1, 2]))
                        .with("note", Value::Null),
                );
                let mut r = SourceRecord::new(
                    obj(json!({"table": "orders"})),
                    obj(json!({"id": i})),
                    "orders",
                    Some(schema.clone()),
                    value,
                )
                .with_key(Some(Arc::new(Schema::int32())), Value::Int32(i));
                r.headers.push(Header::text("h", "v"));
                r.headers.push(Header {
                    key: "null".into(),
                    value: None,
                });
                if i == 1 {
                    r.kafka_partition = Some(3);
                    r.timestamp = Some(1_700_000_000_000);
                    r.source_partition = obj(json!({"table": "other"}));
                }
                r
            })
            .collect();
        let bytes = encode_source_batch(&records);
        let decoded = decode_source_batch(&bytes).unwrap();
        assert_eq!(decoded, records);
        // Each schema is written once, then referred to by number, even the key schemas
        // that are equal but not shared.
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(text.matches("\"name\":\"orders\"").count(), 1, "{text}");
        assert_eq!(text.matches("\"type\":\"int32\"").count(), 1, "{text}");
        assert!(Arc::ptr_eq(
            decoded[0].value_schema.as_ref().unwrap(),
            decoded[2].value_schema.as_ref().unwrap()
        ));
    }

    #[test]
    fn sink_batches_round_trip() {
        let records = vec![SinkRecord {
            topic: "t".into(),
            kafka_partition: 2,
            kafka_offset: 41,
            key_schema: None,
            key: Value::String("k".into()),
            value_schema: None,
            value: Value::Map(vec![(
                Value::Int8(1),
                Value::Array(vec![Value::Float32(1.5)]),
            )]),
            timestamp: Some(5),
            timestamp_type: TimestampType::LogAppendTime,
            headers: vec![Header::text("a", "b")],
        }];
        assert_eq!(
            decode_sink_batch(&encode_sink_batch(&records)).unwrap(),
            records
        );
        assert_eq!(decode_sink_batch(&encode_sink_batch(&[])).unwrap(), []);
    }

    #[test]
    fn transform_batches_data_and_bytes_round_trip() {
        let schema = order_schema();
        let records = vec![
            TransformRecord {
                topic: "orders".into(),
                kafka_partition: None,
                kafka_offset: None,
                key_schema: None,
                key: Value::Null,
                value_schema: Some(schema.clone()),
                value: Value::Struct(Struct::new().with("id", 7i64)),
                timestamp: None,
                headers: vec![Header::text("h", "v")],
            },
            TransformRecord {
                topic: "t".into(),
                kafka_partition: Some(3),
                kafka_offset: Some(9),
                value_schema: Some(schema.clone()),
                value: Value::Struct(Struct::new().with("id", 8i64)),
                ..TransformRecord::default()
            },
        ];
        let decoded = decode_transform_batch(&encode_transform_batch(&records)).unwrap();
        assert_eq!(decoded, records);
        assert!(
            Arc::ptr_eq(
                decoded[0].value_schema.as_ref().unwrap(),
                decoded[1].value_schema.as_ref().unwrap()
            ),
            "a schema crosses once per batch"
        );

        let (s, v) = decode_data(&encode_data(Some(&schema), &Value::Int32(1))).unwrap();
        assert_eq!((s.as_deref(), v), (Some(&*schema), Value::Int32(1)));
        assert_eq!(
            decode_data(&encode_data(None, &Value::Null)).unwrap(),
            (None, Value::Null)
        );
        assert_eq!(
            decode_bytes(&encode_bytes(Some(b"ab"))).unwrap(),
            Some(b"ab".to_vec())
        );
        assert_eq!(decode_bytes(&encode_bytes(None)).unwrap(), None);
        let wrong = decode_bytes(&encode_data(None, &Value::Null)).unwrap_err();
        assert!(
            wrong.to_string().contains("expected a bytes batch"),
            "{wrong}"
        );
    }

    #[test]
    fn malformed_batches_are_errors_not_panics() {
        let err = decode_sink_batch(&encode_source_batch(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected a sink batch"), "{err}");
        let mut bytes = encode_sink_batch(&[SinkRecord {
            topic: "topic".into(),
            kafka_partition: 0,
            kafka_offset: 0,
            key_schema: None,
            key: Value::Null,
            value_schema: None,
            value: Value::String("x".repeat(20)),
            timestamp: None,
            timestamp_type: TimestampType::NoTimestamp,
            headers: vec![],
        }]);
        bytes.truncate(bytes.len() - 5);
        let err = decode_sink_batch(&bytes).unwrap_err().to_string();
        assert!(err.contains("malformed record batch"), "{err}");
        // A huge count with few bytes behind it is refused before allocating.
        let err = decode_source_batch(&[1, 255, 255, 255, 255])
            .unwrap_err()
            .to_string();
        assert!(err.contains("malformed"), "{err}");
    }

    #[test]
    fn option_declarations_cross_as_json() {
        let def = ConfigDef::new()
            .define(
                ConfigKey::new("mode", ConfigType::String, Importance::High, "Mode.")
                    .default_value("bulk")
                    .validator(Validator::one_of(&["bulk", "incrementing"]))
                    .group("Common"),
            )
            .define(
                ConfigKey::new("rate", ConfigType::Double, Importance::Low, "Rate.")
                    .validator(Validator::Between(0.0, 10.0))
                    .display_name("Rate"),
            )
            .define(
                ConfigKey::new("secret", ConfigType::Password, Importance::Low, "S.").optional(),
            )
            .define(
                ConfigKey::new("even", ConfigType::Int, Importance::Low, "Even.")
                    .default_value("2")
                    .validator(Validator::custom(|_| Ok(()))),
            );
        let back = config_def_from_json(&config_def_to_json(&def)).unwrap();
        assert_eq!(back.keys().len(), 4);
        let mode = back.key("mode").unwrap();
        assert_eq!(mode.default.as_deref(), Some("bulk"));
        assert_eq!(mode.group.as_deref(), Some("Common"));
        assert_eq!(
            mode.validator.as_ref().unwrap().recommended_values(),
            ["bulk", "incrementing"]
        );
        assert_eq!(
            back.key("rate").unwrap().parse_value("11").unwrap_err(),
            "must be between 0 and 10 (got 11)"
        );
        assert!(back.key("secret").unwrap().nullable);
        assert!(back.key("even").unwrap().validator.is_none());
    }

    #[test]
    fn option_errors_and_partitions_cross_as_json() {
        let mut errors = ConfigErrors::default();
        errors.push("rate", "must be at least 1 (got 0)");
        assert_eq!(
            config_errors_from_json(&config_errors_to_json(&errors)).unwrap(),
            errors
        );
        let tps = vec![TopicPartition::new("a", 0), TopicPartition::new("b", 7)];
        assert_eq!(
            partitions_from_json(&partitions_to_json(&tps)).unwrap(),
            tps
        );
        assert!(partitions_from_json(&json!([["a"]])).is_err());
    }

    fn value_strategy() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<i8>().prop_map(Value::Int8),
            any::<i16>().prop_map(Value::Int16),
            any::<i32>().prop_map(Value::Int32),
            any::<i64>().prop_map(Value::Int64),
            any::<f64>()
                .prop_filter("NaN is not equal to itself", |f| !f.is_nan())
                .prop_map(Value::Float64),
            any::<bool>().prop_map(Value::Boolean),
            ".{0,12}".prop_map(Value::String),
            proptest::collection::vec(any::<u8>(), 0..12).prop_map(Value::Bytes),
        ];
        leaf.prop_recursive(3, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec((inner.clone(), inner.clone()), 0..4)
                    .prop_map(Value::Map),
                proptest::collection::vec(("[a-z]{1,6}", inner), 0..4).prop_map(|fields| {
                    let mut s = Struct::new();
                    for (name, v) in fields {
                        s.put(name, v);
                    }
                    Value::Struct(s)
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_sink_record_round_trips(
            key in value_strategy(),
            value in value_strategy(),
            offset in any::<i64>(),
            ts in proptest::option::of(any::<i64>()),
        ) {
            let records = vec![SinkRecord {
                topic: "t".into(),
                kafka_partition: 1,
                kafka_offset: offset,
                key_schema: None,
                key,
                value_schema: None,
                value,
                timestamp: ts,
                timestamp_type: TimestampType::CreateTime,
                headers: vec![],
            }];
            prop_assert_eq!(decode_sink_batch(&encode_sink_batch(&records)).unwrap(), records);
        }

        #[test]
        fn truncated_batches_never_panic(value in value_strategy(), cut in 0usize..64) {
            let bytes = encode_source_batch(&[SourceRecord::new(
                Map::new(), Map::new(), "t", None, value,
            )]);
            let cut = cut.min(bytes.len());
            let _ = decode_source_batch(&bytes[..bytes.len() - cut]);
        }
    }
}
