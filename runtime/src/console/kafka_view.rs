//! What the console shows of the Kafka cluster: topics with their partitions, offsets and
//! configs, records from an offset or a time (dead letters with their `__connect.errors.*`
//! headers decoded), replay of dead letters, and consumer groups with their lag.
//!
//! librdkafka's consumer calls block, so each request runs them on the blocking pool with a
//! deadline ([`DEADLINE`]). Consumers here only `assign` (they never join a group or commit)
//! and never ask for topics to be created: a topic that does not exist is a 404.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use base64::Engine as _;
use rdkafka::admin::{AdminOptions, ResourceSpecifier};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::metadata::Metadata;
use rdkafka::producer::FutureRecord;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::util::Timeout;
use serde_json::{json, Value};

use crate::errors::{
    HEADER_CLASS_NAME, HEADER_CONNECTOR_NAME, HEADER_EXCEPTION_CLASS_NAME,
    HEADER_EXCEPTION_MESSAGE, HEADER_EXCEPTION_STACKTRACE, HEADER_OFFSET, HEADER_PARTITION,
    HEADER_STAGE, HEADER_TASK_ID, HEADER_TOPIC,
};
use crate::kafka::KafkaClients;

/// Deadline of each call to the cluster a console request makes.
pub const DEADLINE: Duration = Duration::from_secs(10);
/// How long a message read waits for records that are not there yet.
const READ_WAIT: Duration = Duration::from_secs(5);
/// Records per read unless the page asks for another number.
pub const DEFAULT_LIMIT: usize = 50;
/// At most this many records per read.
const MAX_LIMIT: usize = 500;
/// Bytes of each key, value and header shown unless the page asks for more ("show all").
pub const DEFAULT_MAX_BYTES: usize = 4096;
/// The most a page may ask to see of one value.
const MAX_MAX_BYTES: usize = 16 * 1024 * 1024;
/// The prefix of Kafka Connect's dead letter context headers, dropped when replaying.
const CONTEXT_HEADER_PREFIX: &str = "__connect.errors.";
/// The consumer group id of the console's readers (they assign partitions; they never join
/// the group or commit).
const READER_GROUP: &str = "sluice-console";

/// Why a console request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The topic is not in the cluster's metadata.
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    /// The request asked for something that cannot be done.
    #[error("{0}")]
    BadRequest(String),
    /// The cluster refused or did not answer in time.
    #[error("the Kafka cluster did not answer: {0}")]
    Kafka(#[from] KafkaError),
    /// The worker could not build a client.
    #[error(transparent)]
    Client(#[from] crate::error::Error),
}

impl Error {
    /// The HTTP status the console API answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnknownTopic(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Kafka(_) | Self::Client(_) => StatusCode::BAD_GATEWAY,
        }
    }
}

/// This module's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where to start reading and how much to show.
#[derive(Debug, Clone)]
pub struct MessageQuery {
    /// One partition, or every partition when `None`.
    pub partition: Option<i32>,
    /// Start at this offset (in each partition read).
    pub offset: Option<i64>,
    /// Start at the first record at or after this time (ms since the epoch).
    pub timestamp: Option<i64>,
    /// At most this many records.
    pub limit: usize,
    /// Bytes shown of each key, value and header.
    pub max_bytes: usize,
}

/// One dead letter to replay.
#[derive(Debug, Clone, Copy)]
pub struct ReplayTarget {
    /// Its partition in the dead letter topic.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
}

async fn blocking<R: Send + 'static>(f: impl FnOnce() -> Result<R> + Send + 'static) -> Result<R> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::BadRequest(format!("a console read stopped: {e}")))?
}

/// The client of the console's metadata reads (topics, groups, watermarks), made on first
/// use and kept: a fresh client spends 0.1 s connecting, and listing groups on one can wait
/// a second more for its brokers to come up. Message reads use clients of their own.
#[derive(Clone)]
pub struct Lister {
    clients: KafkaClients,
    cached: std::sync::Arc<std::sync::Mutex<Option<std::sync::Arc<BaseConsumer>>>>,
}

impl std::fmt::Debug for Lister {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lister")
            .field("bootstrap", &self.clients.bootstrap())
            .finish_non_exhaustive()
    }
}

impl Lister {
    /// A lister over `clients`; no client is made until the first read.
    pub fn new(clients: KafkaClients) -> Self {
        Self {
            clients,
            cached: std::sync::Arc::default(),
        }
    }

    /// The client configurations.
    pub fn clients(&self) -> &KafkaClients {
        &self.clients
    }

    fn get(&self) -> Result<std::sync::Arc<BaseConsumer>> {
        let mut cached = self.cached.lock().expect("lister lock");
        if let Some(consumer) = cached.as_ref() {
            return Ok(consumer.clone());
        }
        let consumer = std::sync::Arc::new(reader(&self.clients)?);
        *cached = Some(consumer.clone());
        Ok(consumer)
    }
}

fn reader(clients: &KafkaClients) -> Result<BaseConsumer> {
    let mut config = clients.consumer_config(READER_GROUP, &BTreeMap::new());
    config
        .set("allow.auto.create.topics", "false")
        .set("enable.partition.eof", "false");
    Ok(config.create().map_err(crate::error::Error::from)?)
}

/// Partition ids of `topic`, or [`Error::UnknownTopic`].
fn partitions_of(metadata: &Metadata, topic: &str) -> Result<Vec<i32>> {
    metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| {
            let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
            ids.sort_unstable();
            ids
        })
        .ok_or_else(|| Error::UnknownTopic(topic.to_string()))
}

/// Every topic with its partitions' low and high offsets and its record count.
///
/// # Errors
/// When the cluster does not answer within [`DEADLINE`].
pub async fn list_topics(lister: &Lister) -> Result<Value> {
    let consumer = lister.get()?;
    blocking(move || {
        let metadata = consumer.fetch_metadata(None, DEADLINE)?;
        let mut topics = Vec::new();
        for t in metadata.topics() {
            if t.error().is_some() {
                continue;
            }
            let mut partitions = Vec::new();
            let mut records = 0i64;
            let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
            ids.sort_unstable();
            for p in ids {
                let (low, high) = consumer.fetch_watermarks(t.name(), p, DEADLINE)?;
                records += (high - low).max(0);
                partitions.push(json!({"partition": p, "low": low, "high": high}));
            }
            topics.push(json!({
                "name": t.name(),
                "internal": t.name().starts_with("__") || t.name().starts_with("connect-") || t.name() == "_schemas",
                "partitions": partitions,
                "records": records,
            }));
        }
        topics.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        Ok(json!({"topics": topics}))
    })
    .await
}

/// One topic: partitions with offsets, and its configuration as the cluster describes it.
///
/// # Errors
/// [`Error::UnknownTopic`], or when the cluster does not answer within [`DEADLINE`].
pub async fn describe_topic(lister: &Lister, topic: &str) -> Result<Value> {
    let consumer = lister.get()?;
    let name = topic.to_string();
    let partitions = blocking(move || {
        let metadata = consumer.fetch_metadata(Some(&name), DEADLINE)?;
        let mut out = Vec::new();
        for p in partitions_of(&metadata, &name)? {
            let (low, high) = consumer.fetch_watermarks(&name, p, DEADLINE)?;
            out.push(json!({"partition": p, "low": low, "high": high}));
        }
        Ok(out)
    })
    .await?;
    let admin = lister.clients().admin()?;
    let opts = AdminOptions::new().request_timeout(Some(Timeout::After(DEADLINE)));
    let described = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &opts)
        .await;
    crate::kafka::release(admin);
    let mut configs = Vec::new();
    for resource in described? {
        match resource {
            Ok(resource) => {
                for e in resource.entries {
                    configs.push(json!({
                        "name": e.name,
                        "value": if e.is_sensitive { None } else { e.value },
                        "default": e.is_default,
                        "sensitive": e.is_sensitive,
                    }));
                }
            }
            Err(code) => configs.push(json!({"name": "(error)", "value": code.to_string()})),
        }
    }
    Ok(json!({"name": topic, "partitions": partitions, "configs": configs}))
}

/// Bytes as the page shows them: text when they are UTF-8 (marked `json` when they parse as
/// JSON), otherwise base64; cut at `max` bytes with `truncated` set and the full `size`.
fn shown(bytes: &[u8], max: usize) -> Value {
    let truncated = bytes.len() > max;
    let head = &bytes[..bytes.len().min(max)];
    let text = match std::str::from_utf8(head) {
        Ok(s) => Some(s),
        // A cut in the middle of a character still leaves text.
        Err(e) if truncated && e.error_len().is_none() => {
            Some(std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default())
        }
        Err(_) => None,
    };
    match text {
        Some(s) => {
            let is_json = !truncated && serde_json::from_slice::<Value>(bytes).is_ok();
            json!({"size": bytes.len(), "truncated": truncated,
                   "format": if is_json { "json" } else { "text" }, "text": s})
        }
        None => json!({"size": bytes.len(), "truncated": truncated, "format": "binary",
                       "base64": base64::engine::general_purpose::STANDARD.encode(head)}),
    }
}

/// A record read back, owned.
#[derive(Debug, Clone)]
struct Record {
    partition: i32,
    offset: i64,
    timestamp: Option<i64>,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Record {
    fn from_message(m: &rdkafka::message::BorrowedMessage<'_>) -> Self {
        Self {
            partition: m.partition(),
            offset: m.offset(),
            timestamp: m.timestamp().to_millis(),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers: m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    fn header_text(&self, key: &str) -> Option<String> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Kafka Connect's dead letter context, when the record carries it.
    fn dead_letter(&self) -> Option<Value> {
        let topic = self.header_text(HEADER_TOPIC)?;
        let fields = [
            ("partition", HEADER_PARTITION),
            ("offset", HEADER_OFFSET),
            ("connector", HEADER_CONNECTOR_NAME),
            ("task", HEADER_TASK_ID),
            ("stage", HEADER_STAGE),
            ("class", HEADER_CLASS_NAME),
            ("exception", HEADER_EXCEPTION_CLASS_NAME),
            ("message", HEADER_EXCEPTION_MESSAGE),
            ("stacktrace", HEADER_EXCEPTION_STACKTRACE),
        ];
        let mut out = serde_json::Map::new();
        out.insert("topic".into(), json!(topic));
        for (name, header) in fields {
            out.insert(name.into(), json!(self.header_text(header)));
        }
        Some(Value::Object(out))
    }

    fn to_json(&self, max_bytes: usize) -> Value {
        json!({
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": self.timestamp,
            "key": self.key.as_deref().map(|b| shown(b, max_bytes)),
            "value": self.value.as_deref().map(|b| shown(b, max_bytes)),
            "headers": self.headers.iter().map(|(k, v)| json!({
                "key": k, "value": v.as_deref().map(|b| shown(b, max_bytes)),
            })).collect::<Vec<_>>(),
            "dead_letter": self.dead_letter(),
        })
    }
}

/// Reads up to `limit` records from each chosen partition's start, stopping at the high
/// offsets seen when the read began (so it never waits for records that do not exist).
fn read_records(
    consumer: &BaseConsumer,
    topic: &str,
    query: &MessageQuery,
) -> Result<(Vec<Record>, Vec<Value>)> {
    let metadata = consumer.fetch_metadata(Some(topic), DEADLINE)?;
    let all = partitions_of(&metadata, topic)?;
    let chosen: Vec<i32> = match query.partition {
        Some(p) if all.contains(&p) => vec![p],
        Some(p) => {
            return Err(Error::BadRequest(format!(
                "topic '{topic}' has no partition {p} (it has {})",
                all.len()
            )))
        }
        None => all,
    };
    let mut starts = BTreeMap::new();
    let mut ranges = Vec::new();
    let mut by_time = TopicPartitionList::new();
    for &p in &chosen {
        let (low, high) = consumer.fetch_watermarks(topic, p, DEADLINE)?;
        ranges.push(json!({"partition": p, "low": low, "high": high}));
        let start = query.offset.map_or(low, |o| o.clamp(low, high));
        starts.insert(p, (start, high));
        if let Some(ts) = query.timestamp {
            by_time.add_partition_offset(topic, p, Offset::Offset(ts))?;
        }
    }
    if query.timestamp.is_some() {
        let found = consumer.offsets_for_times(by_time, DEADLINE)?;
        for e in found.elements() {
            if let Some((start, high)) = starts.get_mut(&e.partition()) {
                *start = match e.offset() {
                    Offset::Offset(o) => o.clamp(*start, *high),
                    // No record at or after that time.
                    _ => *high,
                };
            }
        }
    }
    let mut assignment = TopicPartitionList::new();
    let mut pending = BTreeSet::new();
    for (&p, &(start, high)) in &starts {
        if start < high {
            assignment.add_partition_offset(topic, p, Offset::Offset(start))?;
            pending.insert(p);
        }
    }
    let mut records = Vec::new();
    if pending.is_empty() {
        return Ok((records, ranges));
    }
    consumer.assign(&assignment)?;
    let mut per_partition: BTreeMap<i32, usize> = BTreeMap::new();
    let deadline = Instant::now() + READ_WAIT;
    while !pending.is_empty() && Instant::now() < deadline {
        let Some(polled) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = polled?;
        let p = m.partition();
        let (_, high) = starts[&p];
        let count = per_partition.entry(p).or_default();
        if pending.contains(&p) && *count < query.limit && m.offset() < high {
            records.push(Record::from_message(&m));
            *count += 1;
        }
        if *count >= query.limit || m.offset() + 1 >= high {
            pending.remove(&p);
        }
    }
    records.sort_by_key(|r| (r.timestamp, r.partition, r.offset));
    records.truncate(query.limit);
    Ok((records, ranges))
}

/// Records of `topic` from an offset or a time; see [`MessageQuery`].
///
/// # Errors
/// [`Error::UnknownTopic`], [`Error::BadRequest`] for a partition the topic lacks, or when
/// the cluster does not answer within [`DEADLINE`].
pub async fn messages(clients: &KafkaClients, topic: &str, query: MessageQuery) -> Result<Value> {
    let query = MessageQuery {
        limit: query.limit.clamp(1, MAX_LIMIT),
        max_bytes: query.max_bytes.clamp(16, MAX_MAX_BYTES),
        ..query
    };
    let consumer = reader(clients)?;
    let topic = topic.to_string();
    blocking(move || {
        let (records, partitions) = read_records(&consumer, &topic, &query)?;
        Ok(json!({
            "topic": topic,
            "partitions": partitions,
            "records": records.iter().map(|r| r.to_json(query.max_bytes)).collect::<Vec<_>>(),
        }))
    })
    .await
}

/// Produces each chosen dead letter of `dlq_topic` again to its original topic (from its
/// `__connect.errors.topic` header), with its key, value, timestamp and its own headers (the
/// context headers dropped), to its original partition when it had one. Replaying a record
/// twice produces it twice.
///
/// # Errors
/// [`Error::UnknownTopic`] for a missing dead letter or original topic, [`Error::BadRequest`]
/// for a record that is not there or has no context headers, or a failed produce.
pub async fn replay(
    clients: &KafkaClients,
    dlq_topic: &str,
    targets: Vec<ReplayTarget>,
) -> Result<Value> {
    let consumer = reader(clients)?;
    let topic = dlq_topic.to_string();
    let (records, known_topics) = blocking(move || {
        let mut records = Vec::with_capacity(targets.len());
        for target in targets {
            let query = MessageQuery {
                partition: Some(target.partition),
                offset: Some(target.offset),
                timestamp: None,
                limit: 1,
                max_bytes: MAX_MAX_BYTES,
            };
            let (found, _) = read_records(&consumer, &topic, &query)?;
            let record = found
                .into_iter()
                .find(|r| r.offset == target.offset)
                .ok_or_else(|| {
                    Error::BadRequest(format!(
                        "topic '{topic}' has no record at partition {} offset {}",
                        target.partition, target.offset
                    ))
                })?;
            records.push(record);
        }
        let metadata = consumer.fetch_metadata(None, DEADLINE)?;
        let known: BTreeMap<String, usize> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| (t.name().to_string(), t.partitions().len()))
            .collect();
        Ok((records, known))
    })
    .await?;
    let producer = clients.internal_producer()?;
    let mut replayed = Vec::with_capacity(records.len());
    let mut failure = None;
    for record in &records {
        let Some(original) = record.header_text(HEADER_TOPIC) else {
            failure = Some(Error::BadRequest(format!(
                "record at partition {} offset {} has no {HEADER_TOPIC} header, so its original topic is unknown (enable errors.deadletterqueue.context.headers.enable)",
                record.partition, record.offset
            )));
            break;
        };
        let Some(&partitions) = known_topics.get(&original) else {
            failure = Some(Error::UnknownTopic(original));
            break;
        };
        let mut headers = OwnedHeaders::new();
        for (k, v) in &record.headers {
            if !k.starts_with(CONTEXT_HEADER_PREFIX) {
                headers = headers.insert(Header {
                    key: k,
                    value: v.as_deref(),
                });
            }
        }
        let mut out = FutureRecord::<[u8], [u8]>::to(&original).headers(headers);
        if let Some(p) = record
            .header_text(HEADER_PARTITION)
            .and_then(|p| p.parse::<i32>().ok())
            .filter(|p| *p >= 0 && (*p as usize) < partitions)
        {
            out = out.partition(p);
        }
        if let Some(k) = &record.key {
            out = out.key(k);
        }
        if let Some(v) = &record.value {
            out = out.payload(v);
        }
        if let Some(ts) = record.timestamp {
            out = out.timestamp(ts);
        }
        match producer.send(out, DEADLINE).await {
            Ok(delivery) => replayed.push(json!({
                "from": {"partition": record.partition, "offset": record.offset},
                "topic": original,
                "partition": delivery.partition,
                "offset": delivery.offset,
            })),
            Err((e, _)) => {
                failure = Some(Error::Kafka(e));
                break;
            }
        }
    }
    crate::kafka::release(producer);
    match failure {
        // Say what went through before the failure, so a retry does not produce it again.
        Some(e) if !replayed.is_empty() => Err(Error::BadRequest(format!(
            "{e}; {} record(s) before it were replayed: {}",
            replayed.len(),
            Value::Array(replayed)
        ))),
        Some(e) => Err(e),
        None => Ok(json!({"replayed": replayed})),
    }
}

/// `n` bytes of `bytes` at `*at`, moving `*at` past them.
fn take<'a>(bytes: &'a [u8], at: &mut usize, n: usize) -> Option<&'a [u8]> {
    let s = bytes.get(*at..at.checked_add(n)?)?;
    *at += n;
    Some(s)
}

fn take_i16(bytes: &[u8], at: &mut usize) -> Option<i16> {
    Some(i16::from_be_bytes(take(bytes, at, 2)?.try_into().ok()?))
}

fn take_i32(bytes: &[u8], at: &mut usize) -> Option<i32> {
    Some(i32::from_be_bytes(take(bytes, at, 4)?.try_into().ok()?))
}

/// A consumer-protocol member assignment: topic -> partitions.
fn decode_assignment(bytes: &[u8]) -> Option<BTreeMap<String, Vec<i32>>> {
    let at = &mut 0usize;
    let _version = take_i16(bytes, at)?;
    let topics = take_i32(bytes, at)?;
    let mut out = BTreeMap::new();
    for _ in 0..topics.max(0) {
        let len = take_i16(bytes, at)?;
        let name = String::from_utf8_lossy(take(bytes, at, len.max(0) as usize)?).into_owned();
        let count = take_i32(bytes, at)?;
        let mut partitions = Vec::new();
        for _ in 0..count.max(0) {
            partitions.push(take_i32(bytes, at)?);
        }
        out.insert(name, partitions);
    }
    Some(out)
}

/// Every consumer group with its state and member count.
///
/// # Errors
/// When the cluster does not answer within [`DEADLINE`].
pub async fn list_groups(lister: &Lister) -> Result<Value> {
    let consumer = lister.get()?;
    blocking(move || {
        let list = consumer.fetch_group_list(None, DEADLINE)?;
        let mut groups: Vec<Value> = list
            .groups()
            .iter()
            .filter(|g| g.name() != READER_GROUP)
            .map(|g| {
                json!({
                    "name": g.name(),
                    "state": g.state(),
                    "protocol_type": g.protocol_type(),
                    "members": g.members().len(),
                })
            })
            .collect();
        groups.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        Ok(json!({"groups": groups}))
    })
    .await
}

/// One group: members with their assignments, and per partition its committed offset, the
/// partition's end offset and the lag between them. For a group without members every
/// topic's committed offsets are looked up.
///
/// # Errors
/// When the cluster does not answer within [`DEADLINE`].
pub async fn describe_group(lister: &Lister, group: &str) -> Result<Value> {
    let offsets_reader: BaseConsumer = lister
        .clients()
        .consumer_config(group, &BTreeMap::new())
        .set("allow.auto.create.topics", "false")
        .create()
        .map_err(crate::error::Error::from)?;
    let lister = lister.get()?;
    let group = group.to_string();
    blocking(move || {
        let list = lister.fetch_group_list(Some(&group), DEADLINE)?;
        let info = list.groups().iter().find(|g| g.name() == group);
        let mut members = Vec::new();
        let mut assigned: BTreeMap<(String, i32), String> = BTreeMap::new();
        let is_consumer = info.is_some_and(|g| g.protocol_type() == "consumer");
        for m in info.map(|g| g.members()).unwrap_or_default() {
            let assignment = if is_consumer {
                m.assignment().and_then(decode_assignment)
            } else {
                None
            };
            for (topic, partitions) in assignment.iter().flatten() {
                for p in partitions {
                    assigned.insert((topic.clone(), *p), m.id().to_string());
                }
            }
            members.push(json!({
                "id": m.id(), "client_id": m.client_id(), "host": m.client_host(),
                "assignment": assignment,
            }));
        }
        let metadata = lister.fetch_metadata(None, DEADLINE)?;
        let assigned_topics: BTreeSet<&str> = assigned.keys().map(|(t, _)| t.as_str()).collect();
        let mut tpl = TopicPartitionList::new();
        for t in metadata.topics() {
            if t.error().is_some()
                || (!assigned_topics.is_empty() && !assigned_topics.contains(t.name()))
            {
                continue;
            }
            for p in t.partitions() {
                tpl.add_partition(t.name(), p.id());
            }
        }
        let committed = offsets_reader.committed_offsets(tpl, Timeout::After(DEADLINE))?;
        let mut partitions = Vec::new();
        for e in committed.elements() {
            let committed = match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            };
            let member = assigned.get(&(e.topic().to_string(), e.partition()));
            if committed.is_none() && member.is_none() {
                continue;
            }
            let (_, high) = lister.fetch_watermarks(e.topic(), e.partition(), DEADLINE)?;
            partitions.push(json!({
                "topic": e.topic(), "partition": e.partition(),
                "committed": committed, "end": high,
                "lag": committed.map(|c| (high - c).max(0)),
                "member": member,
            }));
        }
        Ok(json!({
            "name": group,
            "state": info.map(|g| g.state()),
            "protocol_type": info.map(|g| g.protocol_type()),
            "members": members,
            "partitions": partitions,
        }))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_json_and_binary_are_told_apart() {
        assert_eq!(shown(br#"{"a":1}"#, 100)["format"], "json");
        assert_eq!(shown(b"<script>alert(1)</script>", 100)["format"], "text");
        let binary = shown(&[0xff, 0x00, 0xfe], 100);
        assert_eq!(binary["format"], "binary");
        assert_eq!(binary["base64"], "/wD+");
    }

    #[test]
    fn long_values_are_cut_on_a_character_boundary() {
        let value = "é".repeat(10); // 20 bytes
        let v = shown(value.as_bytes(), 5);
        assert_eq!(v["truncated"], true);
        assert_eq!(v["size"], 20);
        assert_eq!(v["text"], "éé");
        assert_eq!(v["format"], "text");
    }

    #[test]
    fn consumer_assignments_decode() {
        let mut bytes = vec![0, 0, 0, 0, 0, 1, 0, 3];
        bytes.extend_from_slice(b"raw");
        bytes.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
        let decoded = decode_assignment(&bytes).unwrap();
        assert_eq!(decoded["raw"], vec![0, 1]);
        assert!(decode_assignment(&[0, 0, 0]).is_none());
    }
}
