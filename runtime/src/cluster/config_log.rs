//! The `connect-configs` topic as the shared truth of a Connect cluster: Kafka Connect's record
//! formats, a `ClusterConfigState`-like snapshot, and a reader that follows the topic.
//!
//! Every worker of a group follows this log on its own consumer and applies its records in
//! order, as Kafka Connect's `KafkaConfigBackingStore` does; the leader compares the members'
//! [config offsets](ClusterConfigSnapshot::offset) before it assigns.
//!
//! # Record formats
//! Kafka Connect writes these values through a `JsonConverter` with `schemas.enable=false`
//! (`ConnectDistributed`), so each value is compact JSON (Jackson, no spaces) whose fields come
//! in the order of the record's schema in `KafkaConfigBackingStore`:
//!
//! | key | value |
//! |---|---|
//! | `connector-<c>` | `{"properties":{...}}`, null when the connector is deleted |
//! | `task-<c>-<n>` | `{"properties":{...}}` |
//! | `commit-<c>` | `{"tasks":N}` |
//! | `target-state-<c>` | `{"state":"STARTED\|PAUSED","state.v2":"STARTED\|PAUSED\|STOPPED"}`, null when deleted |
//! | `session-key` | `{"key":"<base64>","algorithm":"HmacSHA256","creation-timestamp":ms}` |
//! | `restart-connector-<c>` | `{"include-tasks":bool,"only-failed":bool}` |
//! | `tasks-fencing-<c>` | `{"task-count":N}` (exactly-once sources) |
//! | `logger-cluster-<ns>` | `{"level":"DEBUG"}` |
//!
//! The one place where bytes may differ from Kafka Connect's is the order of keys *inside*
//! `properties`: Kafka writes its Java map's iteration order, which no reader depends on; this
//! module writes them sorted. Strings are escaped as Jackson escapes them (control characters
//! other than `\b \t \n \f \r` as `\u00XX` with upper-case hex; non-ASCII as UTF-8).
//!
//! Reading accepts what Kafka Connect accepts: a v0 target state with `state` only (older
//! workers, which know no `STOPPED`), a `state.v2` that is not a string (then `state` is used),
//! integral numbers where an int is expected, a session key in base64 with or without padding,
//! a literal JSON `null` as a tombstone. A record Kafka Connect would reject (not JSON, a field
//! of the wrong type, an unknown state, a key with an unknown prefix) is logged at `error` and
//! skipped; nothing a record holds can make the reader panic. Beyond Kafka Connect, a
//! non-string property value is kept as its JSON text and a null property value is dropped
//! (Kafka keeps such values in a `Map<String, String>` where they would fail later).
//!
//! # Deferred task configs
//! `task-<c>-<n>` records are held back until the `commit-<c>` record that follows them: only
//! then do they become visible in the snapshot, all at once. A commit for `N` tasks whose held
//! configs do not include tasks `0..N` (compaction can remove them, or a leader can die
//! between writing tasks and commit) marks the connector
//! [inconsistent](ClusterConfigSnapshot::inconsistent) and applies nothing, as Kafka does; the
//! held configs are dropped either way. A commit for a connector that has no config (deleted,
//! and compaction removed the tombstone) is ignored.
//!
//! # How the herder uses this
//! The [herder](crate::herder) starts one [`ConfigLog`] per worker and reads it to its end
//! before it starts; its group loop puts [`ClusterConfigSnapshot::offset`] in the member
//! metadata, the leader assigns from the snapshot current when it assigns (a leader behind a
//! member answers CONFIG_MISMATCH and everyone catches up), and a member reads up to the
//! assignment's offset before applying it (or backs off and rejoins). Snapshot changes are
//! applied as they are read; only the leader calls [`ConfigLog::put_task_configs`].
//!
//! The herder's leader writes and renews the session key ([`ConfigLog::put_session_key`],
//! KIP-507), every worker acts on `restart-connector-<c>` records newer than the offset it had
//! read at start ([`ClusterConfigSnapshot::restart_requests`]), and config provider references
//! stay unresolved in what is written here. Still to do in the herder: regenerate task configs
//! of connectors listed in [`ClusterConfigSnapshot::inconsistent`].
//!
//! Not carried over from Kafka's `ClusterConfigState`: the per-connector task config
//! generations and the set of connectors pending zombie fencing. Exactly-once source support
//! (fencing with `tasks-fencing-<c>` and a transactional config producer) is read but not
//! written here.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use serde_json::Value as Json;
use sluice_sdk::Props;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::kafka::{KafkaClients, SharedProducer};
use crate::task::TargetState;

/// Key prefix of a connector's configuration.
pub const CONNECTOR_PREFIX: &str = "connector-";
/// Key prefix of a task's configuration (`task-<connector>-<n>`).
pub const TASK_PREFIX: &str = "task-";
/// Key prefix of the record that makes a connector's task configs visible.
pub const COMMIT_TASKS_PREFIX: &str = "commit-";
/// Key prefix of a connector's target state.
pub const TARGET_STATE_PREFIX: &str = "target-state-";
/// Key of the session key record (KIP-507).
pub const SESSION_KEY_KEY: &str = "session-key";
/// Key prefix of a restart request.
pub const RESTART_PREFIX: &str = "restart-connector-";
/// Key prefix of a task count record (exactly-once sources, KIP-618).
pub const TASK_COUNT_RECORD_PREFIX: &str = "tasks-fencing-";
/// Key prefix of a cluster-wide logger level (KIP-976).
pub const LOGGER_CLUSTER_PREFIX: &str = "logger-cluster-";

/// How long a write waits for its acknowledgement and read-back, as Kafka Connect's
/// `READ_WRITE_TOTAL_TIMEOUT_MS`.
pub const READ_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the reader's consumer waits in one poll; bounds how late it notices a stop.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// What can go wrong while following or writing the config log.
#[derive(Debug, thiserror::Error)]
pub enum ConfigLogError {
    /// The Kafka client failed.
    #[error("config topic '{topic}': {source}")]
    Kafka {
        /// The config topic.
        topic: String,
        /// The client's error.
        source: KafkaError,
    },
    /// The config topic does not exist or has not exactly one partition.
    #[error(
        "config topic '{topic}' has {partitions} partitions; Kafka Connect's config topic must \
         exist with exactly one (create it with one partition and cleanup.policy=compact)"
    )]
    Partitions {
        /// The config topic.
        topic: String,
        /// How many it has (0: it does not exist).
        partitions: usize,
    },
    /// The log was not read up to `target` in time.
    #[error(
        "config topic '{topic}': read up to offset {reached} of {target} within {timeout:?}; \
         the broker may be slow or unreachable"
    )]
    ReadTimeout {
        /// The config topic.
        topic: String,
        /// The offset waited for.
        target: i64,
        /// The offset reached.
        reached: i64,
        /// How long it waited.
        timeout: Duration,
    },
    /// The reader has stopped (shut down, or its thread could not continue).
    #[error("config topic '{topic}': the reader has stopped")]
    Stopped {
        /// The config topic.
        topic: String,
    },
}

impl ConfigLogError {
    /// True when trying again later can help: a timeout, or a client error that says the
    /// broker was unreachable, slow or moving its leadership.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::ReadTimeout { .. } => true,
            Self::Kafka { source, .. } => {
                use rdkafka::types::RDKafkaErrorCode as Code;
                matches!(
                    source.rdkafka_error_code(),
                    Some(
                        Code::MessageTimedOut
                            | Code::RequestTimedOut
                            | Code::OperationTimedOut
                            | Code::BrokerTransportFailure
                            | Code::AllBrokersDown
                            | Code::NotLeaderForPartition
                            | Code::LeaderNotAvailable
                            | Code::NotEnoughReplicas
                            | Code::NetworkException
                            | Code::QueueFull
                    )
                )
            }
            Self::Partitions { .. } | Self::Stopped { .. } => false,
        }
    }
}

/// `Result` with [`ConfigLogError`].
pub type Result<T, E = ConfigLogError> = std::result::Result<T, E>;

/// The key that signs internal REST requests (KIP-507), as the leader distributes it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey {
    /// The raw key bytes.
    pub key: Vec<u8>,
    /// The JCA algorithm name, `HmacSHA256` by default.
    pub algorithm: String,
    /// When the leader created it, in ms since the epoch.
    pub creation_timestamp: i64,
}

impl std::fmt::Debug for SessionKey {
    // The key is a secret: never in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKey")
            .field("key", &"<redacted>")
            .field("algorithm", &self.algorithm)
            .field("creation_timestamp", &self.creation_timestamp)
            .finish()
    }
}

/// A `restart-connector-<c>` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartRequest {
    /// Restart the tasks too.
    pub include_tasks: bool,
    /// Restart only what has failed.
    pub only_failed: bool,
}

/// One record of the config topic, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigRecord {
    /// A connector's configuration; `None` deletes the connector.
    Connector {
        /// Connector name.
        connector: String,
        /// Its properties, `None` for a tombstone.
        props: Option<Props>,
    },
    /// One task's configuration, visible only after the next commit.
    Task {
        /// Connector name.
        connector: String,
        /// Task number.
        task: u32,
        /// Its properties.
        props: Props,
    },
    /// Makes a connector's held task configs visible.
    Commit {
        /// Connector name.
        connector: String,
        /// How many tasks the connector now has.
        tasks: u32,
    },
    /// A connector's target state; `None` removes it.
    TargetState {
        /// Connector name.
        connector: String,
        /// The state, `None` for a tombstone.
        state: Option<TargetState>,
    },
    /// The session key.
    SessionKey(SessionKey),
    /// A restart request.
    Restart {
        /// Connector name.
        connector: String,
        /// What to restart.
        request: RestartRequest,
    },
    /// A task count record (exactly-once sources).
    TaskCount {
        /// Connector name.
        connector: String,
        /// The number of tasks fenced.
        task_count: u32,
    },
    /// A cluster-wide logger level.
    LoggerLevel {
        /// Logger namespace.
        namespace: String,
        /// Level name.
        level: String,
    },
}

// ---------------------------------------------------------------------------------------------
// Encoding: what Kafka Connect's JsonConverter (schemas.enable=false) writes.

/// serde_json's compact output with Jackson's escapes (upper-case hex in `\u00XX`).
struct JacksonFormatter;

impl serde_json::ser::Formatter for JacksonFormatter {
    fn write_char_escape<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        char_escape: serde_json::ser::CharEscape,
    ) -> std::io::Result<()> {
        use serde_json::ser::CharEscape;
        let s: &[u8] = match char_escape {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            CharEscape::Solidus => b"\\/",
            CharEscape::Backspace => b"\\b",
            CharEscape::FormFeed => b"\\f",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Tab => b"\\t",
            CharEscape::AsciiControl(byte) => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                let bytes = [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(byte >> 4)],
                    HEX[usize::from(byte & 0xF)],
                ];
                return writer.write_all(&bytes);
            }
        };
        writer.write_all(s)
    }
}

fn to_jackson_bytes(value: &impl Serialize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, JacksonFormatter);
    value
        .serialize(&mut serializer)
        .expect("string maps, strings and integers always serialize");
    out
}

#[derive(Serialize)]
struct PropertiesValue<'a> {
    properties: &'a Props,
}

#[derive(Serialize)]
struct CommitValue {
    tasks: u32,
}

#[derive(Serialize)]
struct TargetStateValue {
    state: &'static str,
    #[serde(rename = "state.v2")]
    state_v2: &'static str,
}

#[derive(Serialize)]
struct SessionKeyValue<'a> {
    key: String,
    algorithm: &'a str,
    #[serde(rename = "creation-timestamp")]
    creation_timestamp: i64,
}

#[derive(Serialize)]
struct LoggerLevelValue<'a> {
    level: &'a str,
}

#[derive(Serialize)]
struct RestartValue {
    #[serde(rename = "include-tasks")]
    include_tasks: bool,
    #[serde(rename = "only-failed")]
    only_failed: bool,
}

/// The value of `connector-<c>`: `{"properties":{...}}`.
pub fn encode_connector_config(props: &Props) -> Vec<u8> {
    to_jackson_bytes(&PropertiesValue { properties: props })
}

/// The value of `task-<c>-<n>`: `{"properties":{...}}`.
pub fn encode_task_config(props: &Props) -> Vec<u8> {
    encode_connector_config(props)
}

/// The value of `commit-<c>`: `{"tasks":N}`.
pub fn encode_commit(tasks: u32) -> Vec<u8> {
    to_jackson_bytes(&CommitValue { tasks })
}

/// The value of `target-state-<c>`: `state` for older workers, which know no `STOPPED` (so
/// `PAUSED` stands in for it), and the exact state in `state.v2`.
pub fn encode_target_state(state: TargetState) -> Vec<u8> {
    let legacy = match state {
        TargetState::Started => TargetState::Started.name(),
        TargetState::Paused | TargetState::Stopped => TargetState::Paused.name(),
    };
    to_jackson_bytes(&TargetStateValue {
        state: legacy,
        state_v2: state.name(),
    })
}

/// The value of `session-key`.
pub fn encode_session_key(key: &SessionKey) -> Vec<u8> {
    to_jackson_bytes(&SessionKeyValue {
        key: base64::engine::general_purpose::STANDARD.encode(&key.key),
        algorithm: &key.algorithm,
        creation_timestamp: key.creation_timestamp,
    })
}

/// The value of `logger-cluster-<namespace>` (KIP-976).
pub fn encode_logger_level(level: &str) -> Vec<u8> {
    to_jackson_bytes(&LoggerLevelValue { level })
}

/// The key of a cluster-wide logger level.
pub fn logger_key(namespace: &str) -> String {
    format!("{LOGGER_CLUSTER_PREFIX}{namespace}")
}

/// The value of `restart-connector-<c>`.
pub fn encode_restart_request(request: RestartRequest) -> Vec<u8> {
    to_jackson_bytes(&RestartValue {
        include_tasks: request.include_tasks,
        only_failed: request.only_failed,
    })
}

/// The key of a connector's configuration.
pub fn connector_key(connector: &str) -> String {
    format!("{CONNECTOR_PREFIX}{connector}")
}

/// The key of a task's configuration.
pub fn task_key(connector: &str, task: u32) -> String {
    format!("{TASK_PREFIX}{connector}-{task}")
}

/// The key of a connector's task commit.
pub fn commit_key(connector: &str) -> String {
    format!("{COMMIT_TASKS_PREFIX}{connector}")
}

/// The key of a connector's target state.
pub fn target_state_key(connector: &str) -> String {
    format!("{TARGET_STATE_PREFIX}{connector}")
}

/// The key of a connector's restart request.
pub fn restart_key(connector: &str) -> String {
    format!("{RESTART_PREFIX}{connector}")
}

// ---------------------------------------------------------------------------------------------
// Decoding: what Kafka Connect accepts.

/// Why a record was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedRecord {
    /// The value is not JSON: Kafka's converter refuses it, and the config offset does not
    /// move past it.
    #[error("value is not JSON: {0}")]
    NotJson(String),
    /// The value is JSON of the wrong shape, or the key is unknown: Kafka skips it after its
    /// converter accepted it, so the config offset moves past it.
    #[error("{0}")]
    Invalid(String),
}

fn malformed(message: impl Into<String>) -> MalformedRecord {
    MalformedRecord::Invalid(message.into())
}

/// Decodes a value as Kafka's JsonConverter does: no bytes or a JSON `null` is a tombstone.
///
/// # Errors
/// When the bytes are not JSON.
fn decode_json(value: Option<&[u8]>) -> Result<Option<Json>, MalformedRecord> {
    let Some(bytes) = value else {
        return Ok(None);
    };
    match serde_json::from_slice::<Json>(bytes) {
        Ok(Json::Null) => Ok(None),
        Ok(json) => Ok(Some(json)),
        Err(e) => Err(MalformedRecord::NotJson(e.to_string())),
    }
}

fn json_kind(value: Option<&Json>) -> &'static str {
    match value {
        None | Some(Json::Null) => "null",
        Some(Json::Bool(_)) => "a boolean",
        Some(Json::Number(_)) => "a number",
        Some(Json::String(_)) => "a string",
        Some(Json::Array(_)) => "an array",
        Some(Json::Object(_)) => "an object",
    }
}

fn object<'a>(
    value: &'a Json,
    what: &str,
) -> Result<&'a serde_json::Map<String, Json>, MalformedRecord> {
    value.as_object().ok_or_else(|| {
        malformed(format!(
            "{what} is not an object but {}",
            json_kind(Some(value))
        ))
    })
}

fn properties(value: &Json, what: &str) -> Result<Props, MalformedRecord> {
    let fields = object(value, what)?;
    let Some(Json::Object(props)) = fields.get("properties") else {
        return Err(malformed(format!(
            "{what}: 'properties' should be an object but is {}",
            json_kind(fields.get("properties"))
        )));
    };
    Ok(props
        .iter()
        .filter_map(|(k, v)| match v {
            Json::Null => None,
            Json::String(s) => Some((k.clone(), s.clone())),
            other => Some((k.clone(), other.to_string())),
        })
        .collect())
}

fn int_field(
    fields: &serde_json::Map<String, Json>,
    name: &str,
    what: &str,
) -> Result<u32, MalformedRecord> {
    fields
        .get(name)
        .and_then(Json::as_i64)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            malformed(format!(
                "{what}: '{name}' should be a non-negative int but is {}",
                fields
                    .get(name)
                    .map_or_else(|| "missing".to_string(), Json::to_string)
            ))
        })
}

fn parse_target_state(name: &str) -> Option<TargetState> {
    match name {
        "STARTED" => Some(TargetState::Started),
        "PAUSED" => Some(TargetState::Paused),
        "STOPPED" => Some(TargetState::Stopped),
        _ => None,
    }
}

/// `task-<connector>-<n>` as Kafka splits it: the connector is everything between the first
/// and the last `-`.
fn parse_task_key(key: &str) -> Option<(String, u32)> {
    let rest = key.strip_prefix(TASK_PREFIX)?;
    let (connector, task) = rest.rsplit_once('-')?;
    Some((connector.to_string(), task.parse().ok()?))
}

impl ConfigRecord {
    /// Decodes one record of the config topic as Kafka Connect's `KafkaConfigBackingStore` does.
    ///
    /// # Errors
    /// When Kafka Connect would skip the record: its value is not JSON or has the wrong
    /// shape, or its key has no known prefix.
    pub fn decode(key: &str, value: Option<&[u8]>) -> Result<Self, MalformedRecord> {
        let json = decode_json(value)?;
        // The order of these tests is Kafka's: `target-state-` before `connector-`.
        if let Some(connector) = key.strip_prefix(TARGET_STATE_PREFIX) {
            let state = match &json {
                None => None,
                Some(v) => {
                    let fields = object(v, "target state")?;
                    let name = match fields.get("state.v2") {
                        Some(Json::String(s)) => s.as_str(),
                        // Written by an older worker, or unreadable: fall back on `state`.
                        _ => match fields.get("state") {
                            Some(Json::String(s)) => s.as_str(),
                            other => {
                                return Err(malformed(format!(
                                    "target state: 'state' should be a string but is {}",
                                    json_kind(other)
                                )))
                            }
                        },
                    };
                    Some(parse_target_state(name).ok_or_else(|| {
                        malformed(format!("target state: unknown state '{name}'"))
                    })?)
                }
            };
            Ok(Self::TargetState {
                connector: connector.to_string(),
                state,
            })
        } else if let Some(connector) = key.strip_prefix(CONNECTOR_PREFIX) {
            let props = json
                .as_ref()
                .map(|v| properties(v, "connector config"))
                .transpose()?;
            Ok(Self::Connector {
                connector: connector.to_string(),
                props,
            })
        } else if key.starts_with(TASK_PREFIX) {
            let (connector, task) = parse_task_key(key)
                .ok_or_else(|| malformed("not a task config key (task-<connector>-<n>)"))?;
            let json = json.ok_or_else(|| malformed("task config is unexpectedly null"))?;
            Ok(Self::Task {
                connector,
                task,
                props: properties(&json, "task config")?,
            })
        } else if let Some(connector) = key.strip_prefix(COMMIT_TASKS_PREFIX) {
            let json = json.ok_or_else(|| malformed("task commit is unexpectedly null"))?;
            let fields = object(&json, "task commit")?;
            Ok(Self::Commit {
                connector: connector.to_string(),
                tasks: int_field(fields, "tasks", "task commit")?,
            })
        } else if let Some(connector) = key.strip_prefix(RESTART_PREFIX) {
            let json = json.ok_or_else(|| malformed("restart request is unexpectedly null"))?;
            let fields = object(&json, "restart request")?;
            // Kafka defaults a missing or non-boolean flag to false.
            let flag = |name: &str| fields.get(name).and_then(Json::as_bool).unwrap_or(false);
            Ok(Self::Restart {
                connector: connector.to_string(),
                request: RestartRequest {
                    include_tasks: flag("include-tasks"),
                    only_failed: flag("only-failed"),
                },
            })
        } else if let Some(connector) = key.strip_prefix(TASK_COUNT_RECORD_PREFIX) {
            let json = json.ok_or_else(|| malformed("task count is unexpectedly null"))?;
            let fields = object(&json, "task count")?;
            Ok(Self::TaskCount {
                connector: connector.to_string(),
                task_count: int_field(fields, "task-count", "task count")?,
            })
        } else if key == SESSION_KEY_KEY {
            let json = json.ok_or_else(|| malformed("session key is unexpectedly null"))?;
            let fields = object(&json, "session key")?;
            let Some(Json::String(encoded)) = fields.get("key") else {
                return Err(malformed("session key: 'key' should be a string"));
            };
            // Java's basic decoder: standard alphabet, padding optional.
            let engine = GeneralPurpose::new(
                &base64::alphabet::STANDARD,
                GeneralPurposeConfig::new()
                    .with_decode_padding_mode(DecodePaddingMode::Indifferent),
            );
            let key = engine
                .decode(encoded)
                .map_err(|e| malformed(format!("session key: 'key' is not base64: {e}")))?;
            let Some(Json::String(algorithm)) = fields.get("algorithm") else {
                return Err(malformed("session key: 'algorithm' should be a string"));
            };
            let creation_timestamp = fields
                .get("creation-timestamp")
                .and_then(Json::as_i64)
                .ok_or_else(|| malformed("session key: 'creation-timestamp' should be a long"))?;
            Ok(Self::SessionKey(SessionKey {
                key,
                algorithm: algorithm.clone(),
                creation_timestamp,
            }))
        } else if let Some(namespace) = key.strip_prefix(LOGGER_CLUSTER_PREFIX) {
            let json = json.ok_or_else(|| malformed("logger level is unexpectedly null"))?;
            let fields = object(&json, "logger level")?;
            let Some(Json::String(level)) = fields.get("level") else {
                return Err(malformed("logger level: 'level' should be a string"));
            };
            Ok(Self::LoggerLevel {
                namespace: namespace.to_string(),
                level: level.clone(),
            })
        } else {
            Err(malformed("unknown key"))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The snapshot.

/// The latest cluster-wide level of a logger namespace and where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggerLevelRecord {
    /// Offset of the `logger-cluster-<namespace>` record.
    pub offset: i64,
    /// The level, as written (`DEBUG`, `INFO`, ...).
    pub level: String,
}

/// The latest restart request of a connector and where it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartRecord {
    /// Offset of the `restart-connector-<c>` record.
    pub offset: i64,
    /// What to restart.
    pub request: RestartRequest,
}

/// What the config topic says, up to [`Self::offset`]: Kafka Connect's `ClusterConfigState`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfigSnapshot {
    /// The offset after the last record applied; `-1` before any. Members report it in their
    /// metadata and the leader's assignment names the one it assigned from.
    pub offset: i64,
    /// The session key, once the leader has written one.
    pub session_key: Option<SessionKey>,
    /// Connector configurations by name.
    pub connector_configs: BTreeMap<String, Props>,
    /// Target states by connector name; every connector has one (`STARTED` by default).
    pub target_states: BTreeMap<String, TargetState>,
    /// Committed task counts by connector name.
    pub task_counts: BTreeMap<String, u32>,
    /// Committed task configurations by connector and task number. May hold configs of tasks
    /// beyond a connector's count (left from before it shrank); use [`Self::task_config`].
    pub task_configs: BTreeMap<(String, u32), Props>,
    /// The connector config that was current when each connector's task configs were last
    /// committed (Kafka's `AppliedConnectorConfig`).
    pub applied_connector_configs: BTreeMap<String, Props>,
    /// Connectors whose last commit did not find all its task configs; their tasks must be
    /// regenerated by the leader before they can run.
    pub inconsistent: BTreeSet<String>,
    /// The latest restart request per connector.
    pub restart_requests: BTreeMap<String, RestartRecord>,
    /// Task count records (exactly-once sources) by connector name.
    pub task_count_records: BTreeMap<String, u32>,
    /// Cluster-wide logger levels by namespace.
    pub logger_levels: BTreeMap<String, LoggerLevelRecord>,
}

impl Default for ClusterConfigSnapshot {
    fn default() -> Self {
        Self {
            offset: -1,
            session_key: None,
            connector_configs: BTreeMap::new(),
            target_states: BTreeMap::new(),
            task_counts: BTreeMap::new(),
            task_configs: BTreeMap::new(),
            applied_connector_configs: BTreeMap::new(),
            inconsistent: BTreeSet::new(),
            restart_requests: BTreeMap::new(),
            task_count_records: BTreeMap::new(),
            logger_levels: BTreeMap::new(),
        }
    }
}

impl ClusterConfigSnapshot {
    /// The connectors, by name.
    pub fn connectors(&self) -> impl Iterator<Item = &str> {
        self.connector_configs.keys().map(String::as_str)
    }

    /// A connector's configuration.
    pub fn connector_config(&self, connector: &str) -> Option<&Props> {
        self.connector_configs.get(connector)
    }

    /// A connector's target state (`None` when there is no such connector).
    pub fn target_state(&self, connector: &str) -> Option<TargetState> {
        self.connector_configs.contains_key(connector).then(|| {
            self.target_states
                .get(connector)
                .copied()
                .unwrap_or(TargetState::Started)
        })
    }

    /// A connector's committed task count (0 when none was committed).
    pub fn task_count(&self, connector: &str) -> u32 {
        self.task_counts.get(connector).copied().unwrap_or(0)
    }

    /// A connector's task numbers, `0..count`; none while it is inconsistent, as in Kafka.
    pub fn tasks(&self, connector: &str) -> Vec<u32> {
        if self.inconsistent.contains(connector) {
            return Vec::new();
        }
        (0..self.task_count(connector)).collect()
    }

    /// A task's committed configuration, if the task is within the connector's count.
    pub fn task_config(&self, connector: &str, task: u32) -> Option<&Props> {
        if task >= self.task_count(connector) {
            return None;
        }
        self.task_configs.get(&(connector.to_string(), task))
    }
}

/// The snapshot plus the task configs held back until their commit.
#[derive(Debug, Default)]
struct ConfigState {
    snapshot: ClusterConfigSnapshot,
    deferred: BTreeMap<String, BTreeMap<u32, Props>>,
}

impl ConfigState {
    /// Applies the record at `offset` of the log; a malformed one is logged and skipped.
    fn apply(&mut self, offset: i64, key: Option<&[u8]>, value: Option<&[u8]>) {
        let Some(key) = key.and_then(|k| std::str::from_utf8(k).ok()) else {
            error!(offset, "skipping config record without a UTF-8 key");
            // Kafka's converter has seen the value; only its key is useless.
            if decode_json(value).is_ok() {
                self.snapshot.offset = offset + 1;
            }
            return;
        };
        match ConfigRecord::decode(key, value) {
            Ok(record) => {
                self.snapshot.offset = offset + 1;
                self.apply_record(offset, record);
            }
            Err(e) => {
                if matches!(e, MalformedRecord::Invalid(_)) {
                    self.snapshot.offset = offset + 1;
                }
                error!(offset, key, error = %e, "skipping malformed config record");
            }
        }
    }

    fn apply_record(&mut self, offset: i64, record: ConfigRecord) {
        let snap = &mut self.snapshot;
        match record {
            ConfigRecord::TargetState {
                connector,
                state: Some(state),
            } => {
                debug!(connector, state = state.name(), "target state");
                snap.target_states.insert(connector, state);
            }
            ConfigRecord::TargetState {
                connector,
                state: None,
            } => {
                snap.target_states.remove(&connector);
                // A connector that still has a config always has a target state.
                if snap.connector_configs.contains_key(&connector) {
                    snap.target_states.insert(connector, TargetState::Started);
                }
            }
            ConfigRecord::Connector {
                connector,
                props: Some(props),
            } => {
                debug!(connector, "connector config");
                snap.target_states
                    .entry(connector.clone())
                    .or_insert(TargetState::Started);
                snap.connector_configs.insert(connector, props);
            }
            ConfigRecord::Connector {
                connector,
                props: None,
            } => {
                info!(connector, "connector removed");
                self.remove_connector(&connector);
            }
            ConfigRecord::Task {
                connector,
                task,
                props,
            } => {
                debug!(connector, task, "task config held until its commit");
                self.deferred
                    .entry(connector)
                    .or_default()
                    .insert(task, props);
            }
            ConfigRecord::Commit { connector, tasks } => self.commit_tasks(connector, tasks),
            ConfigRecord::SessionKey(key) => {
                debug!(
                    creation_timestamp = key.creation_timestamp,
                    "session key updated"
                );
                snap.session_key = Some(key);
            }
            ConfigRecord::Restart { connector, request } => {
                snap.restart_requests
                    .insert(connector, RestartRecord { offset, request });
            }
            ConfigRecord::TaskCount {
                connector,
                task_count,
            } => {
                snap.task_count_records.insert(connector, task_count);
            }
            ConfigRecord::LoggerLevel { namespace, level } => {
                snap.logger_levels
                    .insert(namespace, LoggerLevelRecord { offset, level });
            }
        }
    }

    fn remove_connector(&mut self, connector: &str) {
        let snap = &mut self.snapshot;
        snap.connector_configs.remove(connector);
        snap.task_counts.remove(connector);
        snap.task_configs.retain(|(c, _), _| c != connector);
        snap.applied_connector_configs.remove(connector);
        self.deferred.remove(connector);
    }

    fn commit_tasks(&mut self, connector: String, tasks: u32) {
        let Some(applied) = self.snapshot.connector_configs.get(&connector).cloned() else {
            // Deleted before these tasks were committed, and compaction removed its config
            // and tombstone: nothing to apply.
            debug!(
                connector,
                "ignoring task commit of a connector without config"
            );
            self.remove_connector(&connector);
            return;
        };
        // Always drop the held configs: an incomplete set must be followed by a fresh one.
        let deferred = self.deferred.remove(&connector).unwrap_or_default();
        let snap = &mut self.snapshot;
        // Only 0..tasks must be there; extra ones are left from compacted history.
        if (0..tasks).all(|n| deferred.contains_key(&n)) {
            for (task, props) in deferred {
                snap.task_configs.insert((connector.clone(), task), props);
            }
            snap.inconsistent.remove(&connector);
            snap.applied_connector_configs
                .insert(connector.clone(), applied);
            debug!(connector, tasks, "task configs committed");
        } else {
            warn!(
                connector,
                tasks,
                present = deferred.len(),
                "task commit without all its task configs; the connector is inconsistent until \
                 its tasks are written again"
            );
            snap.inconsistent.insert(connector.clone());
        }
        snap.task_counts.insert(connector, tasks);
    }
}

// ---------------------------------------------------------------------------------------------
// The reader and writers.

/// A question for the reader thread: the log-end offset of the config partition.
type EndOffsetRequest = tokio::sync::oneshot::Sender<Result<i64, KafkaError>>;

/// Follows the config topic on its own consumer (assigned, no group) and writes to it.
///
/// A dedicated thread owns the consumer, so librdkafka's blocking calls (poll, watermark
/// queries, destroy) never run on the async threads; it applies records in offset order and
/// publishes a new [`ClusterConfigSnapshot`] after each batch. Dropping the `ConfigLog` stops
/// the thread; [`Self::shutdown`] also waits for it.
#[derive(Debug)]
pub struct ConfigLog {
    topic: String,
    producer: SharedProducer,
    snapshot: watch::Receiver<Arc<ClusterConfigSnapshot>>,
    /// The offset after the last record consumed, skipped ones included (or the consumer's
    /// position, which also moves past transaction markers).
    position: watch::Receiver<i64>,
    end_offsets: std::sync::mpsc::Sender<EndOffsetRequest>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ConfigLog {
    /// Starts following `topic` from its beginning. Returns at once; use
    /// [`Self::read_to_end`] to wait until what the topic holds has been read.
    ///
    /// # Errors
    /// When the consumer cannot be created, or the topic does not have exactly one partition
    /// (Kafka Connect refuses any other config topic, since records must stay in order).
    pub async fn start(
        clients: &KafkaClients,
        producer: SharedProducer,
        topic: &str,
    ) -> Result<Self> {
        let kafka = |source| ConfigLogError::Kafka {
            topic: topic.to_string(),
            source,
        };
        let mut config = clients.consumer_config("sluice-config-log", &BTreeMap::new());
        // A 100 ms long poll: 500 ms (librdkafka's default) made a worker's start to its
        // first record take a median of 640-710 ms in two of four runs of the worker bench.
        config
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "100");
        let consumer: BaseConsumer = config.create().map_err(kafka)?;
        let name = topic.to_string();
        let consumer = tokio::task::spawn_blocking(move || -> Result<BaseConsumer> {
            let kafka = |source| ConfigLogError::Kafka {
                topic: name.clone(),
                source,
            };
            let metadata = consumer
                .fetch_metadata(Some(&name), Duration::from_secs(10))
                .map_err(kafka)?;
            let partitions = metadata
                .topics()
                .iter()
                .find(|t| t.name() == name && t.error().is_none())
                .map_or(0, |t| t.partitions().len());
            if partitions != 1 {
                return Err(ConfigLogError::Partitions {
                    topic: name,
                    partitions,
                });
            }
            let mut assignment = TopicPartitionList::new();
            assignment
                .add_partition_offset(&name, 0, Offset::Beginning)
                .map_err(kafka)?;
            consumer.assign(&assignment).map_err(kafka)?;
            Ok(consumer)
        })
        .await
        .map_err(|_| ConfigLogError::Stopped {
            topic: topic.to_string(),
        })??;

        let (snapshot_tx, snapshot) = watch::channel(Arc::new(ClusterConfigSnapshot::default()));
        let (position_tx, position) = watch::channel(0);
        let (end_offsets, requests) = std::sync::mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let follower = Follower {
            topic: topic.to_string(),
            consumer,
            state: ConfigState::default(),
            snapshot: snapshot_tx,
            position: position_tx,
            requests,
            stop: stop.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("config-log".to_string())
            .spawn(move || follower.run())
            .map_err(|e| {
                error!(topic, error = %e, "cannot start the config log reader thread");
                ConfigLogError::Stopped {
                    topic: topic.to_string(),
                }
            })?;
        info!(topic, "following the config topic");
        Ok(Self {
            topic: topic.to_string(),
            producer,
            snapshot,
            position,
            end_offsets,
            stop,
            thread: Some(thread),
        })
    }

    /// The config topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> Arc<ClusterConfigSnapshot> {
        self.snapshot.borrow().clone()
    }

    /// A receiver that sees every new snapshot (changes may be coalesced).
    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterConfigSnapshot>> {
        self.snapshot.clone()
    }

    /// Asks the broker for the config topic's log-end offset (the offset the next write gets).
    ///
    /// # Errors
    /// When the broker does not answer, or the reader has stopped.
    pub async fn end_offset(&self) -> Result<i64> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let stopped = || ConfigLogError::Stopped {
            topic: self.topic.clone(),
        };
        self.end_offsets.send(reply).map_err(|_| stopped())?;
        answer
            .await
            .map_err(|_| stopped())?
            .map_err(|source| ConfigLogError::Kafka {
                topic: self.topic.clone(),
                source,
            })
    }

    /// Waits until everything the topic held when called has been read, up to `timeout`, and
    /// returns the snapshot then: Kafka Connect's `readToEnd`, as the herder's
    /// `refreshConfigSnapshot` uses it with `worker.sync.timeout.ms`.
    ///
    /// # Errors
    /// [`ConfigLogError::ReadTimeout`] when the end is not reached in time; a Kafka error when
    /// the end offset cannot be fetched.
    pub async fn read_to_end(&self, timeout: Duration) -> Result<Arc<ClusterConfigSnapshot>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let end = match tokio::time::timeout_at(deadline, self.end_offset()).await {
            Ok(end) => end?,
            Err(_) => {
                return Err(ConfigLogError::ReadTimeout {
                    topic: self.topic.clone(),
                    target: -1,
                    reached: *self.position.borrow(),
                    timeout,
                })
            }
        };
        self.wait_until_read(end, deadline, timeout).await
    }

    /// Waits until the reader has read past `offset - 1` (the offset after the last record of
    /// interest, as in an assignment's config offset), up to `timeout`.
    ///
    /// # Errors
    /// [`ConfigLogError::ReadTimeout`] when it is not reached in time.
    pub async fn wait_for_offset(
        &self,
        offset: i64,
        timeout: Duration,
    ) -> Result<Arc<ClusterConfigSnapshot>> {
        let deadline = tokio::time::Instant::now() + timeout;
        self.wait_until_read(offset, deadline, timeout).await
    }

    async fn wait_until_read(
        &self,
        target: i64,
        deadline: tokio::time::Instant,
        timeout: Duration,
    ) -> Result<Arc<ClusterConfigSnapshot>> {
        let mut position = self.position.clone();
        let reached = tokio::time::timeout_at(deadline, async {
            position.wait_for(|p| *p >= target).await.map(drop)
        })
        .await;
        match reached {
            Ok(Ok(())) => Ok(self.snapshot()),
            Ok(Err(_)) => Err(ConfigLogError::Stopped {
                topic: self.topic.clone(),
            }),
            Err(_) => Err(ConfigLogError::ReadTimeout {
                topic: self.topic.clone(),
                target,
                reached: *self.position.borrow(),
                timeout,
            }),
        }
    }

    /// Writes a connector's configuration, after its initial target state when one is given
    /// (KIP-980), and waits until it has been read back.
    ///
    /// # Errors
    /// When Kafka does not acknowledge the write or it is not read back within
    /// [`READ_WRITE_TIMEOUT`].
    pub async fn put_connector(
        &self,
        connector: &str,
        props: &Props,
        target_state: Option<TargetState>,
    ) -> Result<()> {
        let deadline = tokio::time::Instant::now() + READ_WRITE_TIMEOUT;
        let mut records = Vec::with_capacity(2);
        if let Some(state) = target_state {
            records.push((
                target_state_key(connector),
                Some(encode_target_state(state)),
            ));
        }
        records.push((
            connector_key(connector),
            Some(encode_connector_config(props)),
        ));
        let end = self.send(records, deadline).await?;
        self.wait_until_read(end, deadline, READ_WRITE_TIMEOUT)
            .await
            .map(drop)
    }

    /// Deletes a connector: a tombstone for its config, then one for its target state, as
    /// Kafka Connect writes them; waits until they have been read back. Its task configs stay
    /// in the topic (Kafka Connect does not remove them either) but leave the snapshot.
    ///
    /// # Errors
    /// When Kafka does not acknowledge the writes or they are not read back within
    /// [`READ_WRITE_TIMEOUT`].
    pub async fn delete_connector(&self, connector: &str) -> Result<()> {
        let deadline = tokio::time::Instant::now() + READ_WRITE_TIMEOUT;
        let end = self
            .send(
                vec![
                    (connector_key(connector), None),
                    (target_state_key(connector), None),
                ],
                deadline,
            )
            .await?;
        self.wait_until_read(end, deadline, READ_WRITE_TIMEOUT)
            .await
            .map(drop)
    }

    /// Writes a connector's task configurations, then the commit that makes them visible, as
    /// Kafka Connect does: read to the end first, write `task-<c>-0..n`, read them back, write
    /// `commit-<c>` and read it back. Only the leader may call this.
    ///
    /// # Errors
    /// When Kafka does not acknowledge a write or the log is not read within
    /// [`READ_WRITE_TIMEOUT`] in total.
    pub async fn put_task_configs(&self, connector: &str, configs: &[Props]) -> Result<()> {
        let deadline = tokio::time::Instant::now() + READ_WRITE_TIMEOUT;
        let end = tokio::time::timeout_at(deadline, self.end_offset())
            .await
            .map_err(|_| ConfigLogError::ReadTimeout {
                topic: self.topic.clone(),
                target: -1,
                reached: *self.position.borrow(),
                timeout: READ_WRITE_TIMEOUT,
            })??;
        self.wait_until_read(end, deadline, READ_WRITE_TIMEOUT)
            .await?;
        let count = u32::try_from(configs.len()).unwrap_or(u32::MAX);
        if count > 0 {
            let records = (0..count)
                .zip(configs)
                .map(|(n, props)| (task_key(connector, n), Some(encode_task_config(props))))
                .collect();
            let end = self.send(records, deadline).await?;
            self.wait_until_read(end, deadline, READ_WRITE_TIMEOUT)
                .await?;
        }
        debug!(connector, tasks = count, "committing task configs");
        let end = self
            .send(
                vec![(commit_key(connector), Some(encode_commit(count)))],
                deadline,
            )
            .await?;
        self.wait_until_read(end, deadline, READ_WRITE_TIMEOUT)
            .await
            .map(drop)
    }

    /// Removes a connector's target state (a tombstone) and waits until it has been read back:
    /// for a connector that has no `connector-<c>` record (one a worker's file defines).
    ///
    /// # Errors
    /// When Kafka does not acknowledge the write or it is not read back within
    /// [`READ_WRITE_TIMEOUT`].
    pub async fn delete_target_state(&self, connector: &str) -> Result<()> {
        let deadline = tokio::time::Instant::now() + READ_WRITE_TIMEOUT;
        let end = self
            .send(vec![(target_state_key(connector), None)], deadline)
            .await?;
        self.wait_until_read(end, deadline, READ_WRITE_TIMEOUT)
            .await
            .map(drop)
    }

    /// Writes a connector's target state. Like Kafka Connect, it waits for the acknowledgement
    /// only, not for the read-back.
    ///
    /// # Errors
    /// When Kafka does not acknowledge the write within [`READ_WRITE_TIMEOUT`].
    pub async fn put_target_state(&self, connector: &str, state: TargetState) -> Result<()> {
        let deadline = tokio::time::Instant::now() + READ_WRITE_TIMEOUT;
        self.send(
            vec![(
                target_state_key(connector),
                Some(encode_target_state(state)),
            )],
            deadline,
        )
        .await
        .map(drop)
    }

    /// Writes the session key and waits until it has been read back. Only the leader may
    /// call this.
    ///
    /// # Errors
    /// When Kafka does not acknowledge the write or it is not read back within
    /// [`READ_WRITE_TIMEOUT`].
    pub async fn put_session_key(&self, key: &SessionKey) -> Result<()> {
        let deadline = tokio::time::Instant::now() + READ_WRITE_TIMEOUT;
        let end = self
            .send(
                vec![(SESSION_KEY_KEY.to_string(), Some(encode_session_key(key)))],
                deadline,
            )
            .await?;
        self.wait_until_read(end, deadline, READ_WRITE_TIMEOUT)
            .await
            .map(drop)
    }

    /// Writes a cluster-wide logger level (KIP-976); every worker applies it when it reads it.
    ///
    /// # Errors
    /// When Kafka does not acknowledge the write within [`READ_WRITE_TIMEOUT`].
    pub async fn put_logger_level(&self, namespace: &str, level: &str) -> Result<()> {
        let deadline = tokio::time::Instant::now() + READ_WRITE_TIMEOUT;
        self.send(
            vec![(logger_key(namespace), Some(encode_logger_level(level)))],
            deadline,
        )
        .await
        .map(drop)
    }

    /// Writes a restart request and waits until it has been read back.
    ///
    /// # Errors
    /// When Kafka does not acknowledge the write or it is not read back within
    /// [`READ_WRITE_TIMEOUT`].
    pub async fn put_restart_request(
        &self,
        connector: &str,
        request: RestartRequest,
    ) -> Result<()> {
        let deadline = tokio::time::Instant::now() + READ_WRITE_TIMEOUT;
        let end = self
            .send(
                vec![(
                    restart_key(connector),
                    Some(encode_restart_request(request)),
                )],
                deadline,
            )
            .await?;
        self.wait_until_read(end, deadline, READ_WRITE_TIMEOUT)
            .await
            .map(drop)
    }

    /// Sends `records` in order (all enqueued before any is awaited, on one idempotent
    /// producer, so they land in this order) and returns the offset after the last one.
    async fn send(
        &self,
        records: Vec<(String, Option<Vec<u8>>)>,
        deadline: tokio::time::Instant,
    ) -> Result<i64> {
        let kafka = |source| ConfigLogError::Kafka {
            topic: self.topic.clone(),
            source,
        };
        let mut deliveries = Vec::with_capacity(records.len());
        for (key, value) in &records {
            let mut record = FutureRecord::<String, Vec<u8>>::to(&self.topic)
                .key(key)
                .partition(0);
            if let Some(value) = value {
                record = record.payload(value);
            }
            let delivery = self.producer.send_result(record).map_err(|(e, _)| {
                warn!(topic = %self.topic, key, error = %e, "config write refused");
                kafka(e)
            })?;
            deliveries.push((key, delivery));
        }
        let mut end = -1;
        for (key, delivery) in deliveries {
            match tokio::time::timeout_at(deadline, delivery).await {
                Ok(Ok(Ok(delivery))) => end = delivery.offset + 1,
                Ok(Ok(Err((e, _)))) => {
                    warn!(topic = %self.topic, key, error = %e, "config write failed");
                    return Err(kafka(e));
                }
                Ok(Err(_)) => return Err(kafka(KafkaError::Canceled)),
                Err(_) => {
                    warn!(topic = %self.topic, key, "config write not acknowledged in time");
                    return Err(kafka(KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::MessageTimedOut,
                    )));
                }
            }
        }
        Ok(end)
    }

    /// Stops the reader and waits for its thread (which destroys the consumer) to end.
    pub async fn shutdown(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for ConfigLog {
    fn drop(&mut self) {
        // The thread sees this within one poll and destroys the consumer itself.
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The reader thread's side.
struct Follower {
    topic: String,
    consumer: BaseConsumer,
    state: ConfigState,
    snapshot: watch::Sender<Arc<ClusterConfigSnapshot>>,
    position: watch::Sender<i64>,
    requests: std::sync::mpsc::Receiver<EndOffsetRequest>,
    stop: Arc<AtomicBool>,
}

impl Follower {
    /// Most records applied before a snapshot is published, so a long log still shows
    /// progress.
    const MAX_BATCH: usize = 1000;

    fn run(mut self) {
        let topic = self.topic.clone();
        // A broker that is down makes every poll fail: say so once until a record arrives.
        let mut last_error: Option<String> = None;
        while !self.stop.load(Ordering::Relaxed) {
            while let Ok(reply) = self.requests.try_recv() {
                let end = self
                    .consumer
                    .fetch_watermarks(&topic, 0, Duration::from_secs(10))
                    .map(|(_, high)| high);
                let _ = reply.send(end);
            }
            match self.consumer.poll(POLL_INTERVAL) {
                None => {
                    // Idle: the consumer's position also moves past transaction markers,
                    // which are never handed out as records.
                    if let Ok(positions) = self.consumer.position() {
                        if let Some(Offset::Offset(p)) =
                            positions.find_partition(&topic, 0).map(|tp| tp.offset())
                        {
                            self.position.send_if_modified(|current| {
                                let moved = p > *current;
                                if moved {
                                    *current = p;
                                }
                                moved
                            });
                        }
                    }
                }
                Some(Err(e)) => report_read_error(&topic, &mut last_error, &e),
                Some(Ok(first)) => {
                    last_error = None;
                    let mut next = first.offset() + 1;
                    self.state
                        .apply(first.offset(), first.key(), first.payload());
                    drop(first);
                    for _ in 1..Self::MAX_BATCH {
                        match self.consumer.poll(Duration::ZERO) {
                            Some(Ok(m)) => {
                                next = m.offset() + 1;
                                self.state.apply(m.offset(), m.key(), m.payload());
                            }
                            Some(Err(e)) => {
                                report_read_error(&topic, &mut last_error, &e);
                                break;
                            }
                            None => break,
                        }
                    }
                    // Snapshot first: whoever sees the position finds the records applied.
                    self.snapshot
                        .send_replace(Arc::new(self.state.snapshot.clone()));
                    self.position.send_modify(|p| *p = (*p).max(next));
                }
            }
        }
        debug!(topic, "config log reader stopped");
    }
}

/// Logs a read error at `warn` the first time in a row, at `debug` when it repeats.
fn report_read_error(topic: &str, last_error: &mut Option<String>, error: &KafkaError) {
    let text = error.to_string();
    if last_error.as_deref() == Some(text.as_str()) {
        debug!(topic, error = %text, "config topic read error");
    } else {
        warn!(topic, error = %text, "config topic read error");
        *last_error = Some(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> Props {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    fn state_from(records: &[(&str, Option<&str>)]) -> ConfigState {
        let mut state = ConfigState::default();
        for (offset, (key, value)) in records.iter().enumerate() {
            state.apply(
                i64::try_from(offset).unwrap(),
                Some(key.as_bytes()),
                value.map(str::as_bytes),
            );
        }
        state
    }

    // What Kafka Connect's JsonConverter (schemas.enable=false) writes for the structs of
    // KafkaConfigBackingStore: compact JSON, fields in schema order.
    #[test]
    fn values_are_written_as_kafka_connect_writes_them() {
        assert_eq!(
            encode_connector_config(&props(&[("connector.class", "FileStreamSource")])),
            br#"{"properties":{"connector.class":"FileStreamSource"}}"#
        );
        assert_eq!(encode_commit(2), br#"{"tasks":2}"#);
        assert_eq!(
            encode_target_state(TargetState::Started),
            br#"{"state":"STARTED","state.v2":"STARTED"}"#
        );
        assert_eq!(
            encode_target_state(TargetState::Paused),
            br#"{"state":"PAUSED","state.v2":"PAUSED"}"#
        );
        assert_eq!(
            encode_target_state(TargetState::Stopped),
            br#"{"state":"PAUSED","state.v2":"STOPPED"}"#
        );
        let key = SessionKey {
            key: b"0123456789abcdef".to_vec(),
            algorithm: "HmacSHA256".to_string(),
            creation_timestamp: 1_700_000_000_000,
        };
        assert_eq!(
            encode_session_key(&key),
            br#"{"key":"MDEyMzQ1Njc4OWFiY2RlZg==","algorithm":"HmacSHA256","creation-timestamp":1700000000000}"#
        );
        assert_eq!(
            encode_restart_request(RestartRequest {
                include_tasks: true,
                only_failed: false
            }),
            br#"{"include-tasks":true,"only-failed":false}"#
        );
        assert_eq!(task_key("my-conn", 3), "task-my-conn-3");
    }

    #[test]
    fn strings_are_escaped_as_jackson_escapes_them() {
        let value = encode_connector_config(&props(&[("k", "a\"b\\c/\n\t\u{1}é")]));
        assert_eq!(
            value,
            "{\"properties\":{\"k\":\"a\\\"b\\\\c/\\n\\t\\u0001é\"}}".as_bytes()
        );
    }

    #[test]
    fn every_record_round_trips() {
        let p = props(&[("a", "1"), ("b", "two")]);
        let key = SessionKey {
            key: vec![0, 1, 2, 255],
            algorithm: "HmacSHA256".to_string(),
            creation_timestamp: 42,
        };
        let cases = vec![
            (
                connector_key("c"),
                Some(encode_connector_config(&p)),
                ConfigRecord::Connector {
                    connector: "c".into(),
                    props: Some(p.clone()),
                },
            ),
            (
                task_key("c-x", 7),
                Some(encode_task_config(&p)),
                ConfigRecord::Task {
                    connector: "c-x".into(),
                    task: 7,
                    props: p.clone(),
                },
            ),
            (
                commit_key("c"),
                Some(encode_commit(3)),
                ConfigRecord::Commit {
                    connector: "c".into(),
                    tasks: 3,
                },
            ),
            (
                target_state_key("c"),
                Some(encode_target_state(TargetState::Stopped)),
                ConfigRecord::TargetState {
                    connector: "c".into(),
                    state: Some(TargetState::Stopped),
                },
            ),
            (
                SESSION_KEY_KEY.to_string(),
                Some(encode_session_key(&key)),
                ConfigRecord::SessionKey(key.clone()),
            ),
            (
                restart_key("c"),
                Some(encode_restart_request(RestartRequest {
                    include_tasks: false,
                    only_failed: true,
                })),
                ConfigRecord::Restart {
                    connector: "c".into(),
                    request: RestartRequest {
                        include_tasks: false,
                        only_failed: true,
                    },
                },
            ),
        ];
        for (key, value, expected) in cases {
            assert_eq!(
                ConfigRecord::decode(&key, value.as_deref()).unwrap(),
                expected,
                "{key}"
            );
        }
    }

    #[test]
    fn older_and_tolerated_forms_are_read() {
        // v0 target state, from workers before KIP-875.
        assert_eq!(
            ConfigRecord::decode("target-state-c", Some(br#"{"state":"PAUSED"}"#)).unwrap(),
            ConfigRecord::TargetState {
                connector: "c".into(),
                state: Some(TargetState::Paused)
            }
        );
        // A state.v2 that is not a string falls back on state.
        assert_eq!(
            ConfigRecord::decode(
                "target-state-c",
                Some(br#"{"state":"STARTED","state.v2":5}"#)
            )
            .unwrap(),
            ConfigRecord::TargetState {
                connector: "c".into(),
                state: Some(TargetState::Started)
            }
        );
        // JSON null is a tombstone, as no value is.
        assert_eq!(
            ConfigRecord::decode("connector-c", Some(b"null")).unwrap(),
            ConfigRecord::Connector {
                connector: "c".into(),
                props: None
            }
        );
        // Session key without padding; restart request flags default to false.
        assert!(matches!(
            ConfigRecord::decode(
                "session-key",
                Some(br#"{"key":"AAEC","algorithm":"HmacSHA256","creation-timestamp":1}"#)
            ),
            Ok(ConfigRecord::SessionKey(_))
        ));
        assert_eq!(
            ConfigRecord::decode("restart-connector-c", Some(br#"{"only-failed":"yes"}"#)).unwrap(),
            ConfigRecord::Restart {
                connector: "c".into(),
                request: RestartRequest {
                    include_tasks: false,
                    only_failed: false
                }
            }
        );
        assert_eq!(
            ConfigRecord::decode("tasks-fencing-c", Some(br#"{"task-count":4}"#)).unwrap(),
            ConfigRecord::TaskCount {
                connector: "c".into(),
                task_count: 4
            }
        );
        assert_eq!(
            ConfigRecord::decode("logger-cluster-org.foo", Some(br#"{"level":"DEBUG"}"#)).unwrap(),
            ConfigRecord::LoggerLevel {
                namespace: "org.foo".into(),
                level: "DEBUG".into()
            }
        );
        // Non-string property values keep their JSON text; null ones are dropped.
        assert_eq!(
            ConfigRecord::decode(
                "connector-c",
                Some(br#"{"properties":{"n":3,"s":"x","z":null}}"#)
            )
            .unwrap(),
            ConfigRecord::Connector {
                connector: "c".into(),
                props: Some(props(&[("n", "3"), ("s", "x")]))
            }
        );
    }

    #[test]
    fn malformed_records_are_refused() {
        let cases: &[(&str, Option<&[u8]>)] = &[
            ("connector-c", Some(b"{not json")),
            ("connector-c", Some(br#"{"properties":"x"}"#)),
            ("connector-c", Some(b"[1]")),
            ("task-c-0", None),
            ("task-c", Some(br#"{"properties":{}}"#)),
            ("task-c-x", Some(br#"{"properties":{}}"#)),
            ("commit-c", Some(br#"{"tasks":-1}"#)),
            ("commit-c", Some(br#"{"tasks":1.5}"#)),
            ("commit-c", None),
            ("target-state-c", Some(br#"{"state":"RUNNING"}"#)),
            ("target-state-c", Some(br#"{"state.v2":1}"#)),
            (
                "session-key",
                Some(br#"{"key":"!!","algorithm":"x","creation-timestamp":1}"#),
            ),
            (
                "session-key",
                Some(br#"{"key":"AA==","algorithm":"x","creation-timestamp":"1"}"#),
            ),
            ("something-else", Some(b"{}")),
            ("connector-c", Some(&[0xff, 0xfe])),
        ];
        for (key, value) in cases {
            assert!(
                ConfigRecord::decode(key, *value).is_err(),
                "{key} {:?}",
                value.map(String::from_utf8_lossy)
            );
        }
    }

    #[test]
    fn task_configs_are_invisible_until_their_commit() {
        let connector = r#"{"properties":{"connector.class":"x"}}"#;
        let task = r#"{"properties":{"t":"0"}}"#;
        let mut state = state_from(&[("connector-c", Some(connector)), ("task-c-0", Some(task))]);
        assert_eq!(state.snapshot.offset, 2);
        assert_eq!(state.snapshot.target_state("c"), Some(TargetState::Started));
        assert!(state.snapshot.tasks("c").is_empty());
        assert!(state.snapshot.task_config("c", 0).is_none());
        state.apply(2, Some(b"commit-c"), Some(br#"{"tasks":1}"#));
        assert_eq!(state.snapshot.tasks("c"), vec![0]);
        assert_eq!(
            state.snapshot.task_config("c", 0),
            Some(&props(&[("t", "0")]))
        );
        assert_eq!(
            state.snapshot.applied_connector_configs.get("c"),
            Some(&props(&[("connector.class", "x")]))
        );
    }

    #[test]
    fn a_commit_without_its_tasks_marks_the_connector_inconsistent() {
        let connector = r#"{"properties":{"connector.class":"x"}}"#;
        let task = r#"{"properties":{}}"#;
        let mut state = state_from(&[
            ("connector-c", Some(connector)),
            // Task 0 compacted away.
            ("task-c-1", Some(task)),
            ("commit-c", Some(r#"{"tasks":2}"#)),
        ]);
        assert!(state.snapshot.inconsistent.contains("c"));
        assert_eq!(state.snapshot.task_count("c"), 2);
        assert!(state.snapshot.tasks("c").is_empty());
        // Rewritten in full, it becomes consistent again.
        state.apply(3, Some(b"task-c-0"), Some(task.as_bytes()));
        state.apply(4, Some(b"task-c-1"), Some(task.as_bytes()));
        state.apply(5, Some(b"commit-c"), Some(br#"{"tasks":2}"#));
        assert!(!state.snapshot.inconsistent.contains("c"));
        assert_eq!(state.snapshot.tasks("c"), vec![0, 1]);
        // Shrinking keeps old configs out of view.
        state.apply(6, Some(b"task-c-0"), Some(task.as_bytes()));
        state.apply(7, Some(b"commit-c"), Some(br#"{"tasks":1}"#));
        assert_eq!(state.snapshot.tasks("c"), vec![0]);
        assert!(state.snapshot.task_config("c", 1).is_none());
    }

    #[test]
    fn deletion_removes_the_connector_and_its_tasks() {
        let connector = r#"{"properties":{"connector.class":"x"}}"#;
        let state = state_from(&[
            ("connector-c", Some(connector)),
            (
                "target-state-c",
                Some(r#"{"state":"PAUSED","state.v2":"STOPPED"}"#),
            ),
            ("task-c-0", Some(r#"{"properties":{}}"#)),
            ("commit-c", Some(r#"{"tasks":1}"#)),
            ("connector-c", None),
            ("target-state-c", None),
            // A commit of a connector that no longer exists is ignored.
            ("commit-c", Some(r#"{"tasks":1}"#)),
        ]);
        let snap = &state.snapshot;
        assert!(snap.connector_configs.is_empty());
        assert!(snap.target_states.is_empty());
        assert!(snap.task_configs.is_empty());
        assert!(snap.task_counts.is_empty());
        assert_eq!(snap.offset, 7);
    }

    #[test]
    fn malformed_records_are_skipped_and_move_the_offset_as_kafka_does() {
        let state = state_from(&[
            (
                "connector-c",
                Some(r#"{"properties":{"connector.class":"x"}}"#),
            ),
            // Valid JSON of the wrong shape: skipped, offset moves.
            ("target-state-c", Some(r#"{"state":"BOGUS"}"#)),
        ]);
        assert_eq!(state.snapshot.offset, 2);
        assert_eq!(state.snapshot.target_state("c"), Some(TargetState::Started));
        let mut state = state;
        // Not JSON: Kafka's converter refuses it before the offset moves.
        state.apply(2, Some(b"connector-d"), Some(b"{"));
        assert_eq!(state.snapshot.offset, 2);
        state.apply(3, None, Some(b"{}"));
        assert_eq!(state.snapshot.offset, 4);
        assert_eq!(state.snapshot.connectors().collect::<Vec<_>>(), vec!["c"]);
    }

    proptest::proptest! {
        // Whatever a record holds, applying it never panics.
        #[test]
        fn any_record_is_applied_without_panic(
            key in proptest::prelude::any::<Vec<u8>>(),
            prefix in proptest::sample::select(vec![
                "", "connector-", "task-", "commit-", "target-state-", "session-key",
                "restart-connector-", "tasks-fencing-", "logger-cluster-",
            ]),
            value in proptest::option::of(proptest::prelude::any::<Vec<u8>>()),
            json in "\\{\"(properties|tasks|state|state.v2|key|task-count)\":(1|-1|\"x\"|null|\\{\\}|\\[\\])\\}",
        ) {
            let mut state = ConfigState::default();
            let mut full_key = prefix.as_bytes().to_vec();
            full_key.extend_from_slice(&key);
            state.apply(0, Some(&full_key), value.as_deref());
            state.apply(1, Some(prefix.as_bytes()), Some(json.as_bytes()));
        }
    }
}

/// Against a real bundled broker, in-process.
#[cfg(test)]
mod broker_tests {
    use rdkafka::producer::FutureRecord;
    use sluice_broker::{Broker, BrokerConfig};

    use super::*;
    use crate::settings::WorkerSettings;

    const TOPIC: &str = "connect-configs";
    /// Long enough for a loaded machine.
    const WAIT: Duration = Duration::from_secs(20);

    struct Cluster {
        broker: Broker,
        clients: KafkaClients,
        _dir: tempfile::TempDir,
    }

    impl Cluster {
        async fn start() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let broker = Broker::start(BrokerConfig::new("127.0.0.1:0", dir.path()))
                .await
                .unwrap();
            let clients = KafkaClients::new(broker.bootstrap_servers(), &WorkerSettings::default());
            clients.ensure_topic(TOPIC, 1, true).await.unwrap();
            Self {
                broker,
                clients,
                _dir: dir,
            }
        }

        async fn log(&self) -> ConfigLog {
            let producer = self.clients.internal_producer().unwrap();
            ConfigLog::start(&self.clients, producer, TOPIC)
                .await
                .unwrap()
        }

        /// Writes one raw record with a producer of its own; returns its offset.
        async fn produce(&self, key: &str, value: Option<&[u8]>) -> i64 {
            let producer = self.clients.internal_producer().unwrap();
            let mut record = FutureRecord::<str, [u8]>::to(TOPIC).key(key);
            if let Some(value) = value {
                record = record.payload(value);
            }
            let delivery = producer.send(record, WAIT).await.unwrap();
            crate::kafka::release(producer);
            delivery.offset
        }

        /// Every record of the topic, read with a plain consumer.
        async fn raw_records(&self) -> Vec<(String, Option<String>)> {
            let consumer = self.clients.reader().unwrap();
            let records =
                tokio::task::spawn_blocking(move || crate::offsets::read_topic(&consumer, TOPIC))
                    .await
                    .unwrap()
                    .unwrap();
            records
                .into_iter()
                .map(|(k, v)| {
                    (
                        String::from_utf8(k).unwrap(),
                        v.map(|v| String::from_utf8(v).unwrap()),
                    )
                })
                .collect()
        }

        async fn stop(self, logs: Vec<ConfigLog>) {
            for log in logs {
                log.shutdown().await;
            }
            self.broker.shutdown().await.unwrap();
        }
    }

    fn props(pairs: &[(&str, &str)]) -> Props {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_reader_sees_what_a_writer_wrote() {
        let cluster = Cluster::start().await;
        let writer = cluster.log().await;
        writer.read_to_end(WAIT).await.unwrap();
        let source = props(&[("connector.class", "file-source"), ("topic", "lines")]);
        let sink = props(&[("connector.class", "file-sink"), ("topics", "lines")]);
        writer.put_connector("source", &source, None).await.unwrap();
        writer
            .put_connector("sink", &sink, Some(TargetState::Paused))
            .await
            .unwrap();
        writer
            .put_task_configs(
                "source",
                &[props(&[("task", "0")]), props(&[("task", "1")])],
            )
            .await
            .unwrap();
        writer
            .put_target_state("sink", TargetState::Stopped)
            .await
            .unwrap();
        let key = SessionKey {
            key: vec![7; 32],
            algorithm: "HmacSHA256".to_string(),
            creation_timestamp: 1_700_000_000_000,
        };
        writer.put_session_key(&key).await.unwrap();
        writer
            .put_restart_request(
                "source",
                RestartRequest {
                    include_tasks: true,
                    only_failed: true,
                },
            )
            .await
            .unwrap();
        let written = writer.read_to_end(WAIT).await.unwrap();

        let reader = cluster.log().await;
        let read = reader.read_to_end(WAIT).await.unwrap();
        assert_eq!(read, written);
        assert_eq!(read.connector_config("source"), Some(&source));
        assert_eq!(read.connector_config("sink"), Some(&sink));
        assert_eq!(read.target_state("source"), Some(TargetState::Started));
        assert_eq!(read.target_state("sink"), Some(TargetState::Stopped));
        assert_eq!(read.tasks("source"), vec![0, 1]);
        assert_eq!(
            read.task_config("source", 1),
            Some(&props(&[("task", "1")]))
        );
        assert!(read.tasks("sink").is_empty());
        assert_eq!(read.session_key.as_ref(), Some(&key));
        assert_eq!(
            read.restart_requests.get("source").map(|r| r.request),
            Some(RestartRequest {
                include_tasks: true,
                only_failed: true
            })
        );
        // 2 connectors + 1 initial state + 2 tasks + commit + state + key + restart.
        assert_eq!(read.offset, 9);
        cluster.stop(vec![writer, reader]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn task_configs_appear_with_their_commit_and_leave_with_their_connector() {
        let cluster = Cluster::start().await;
        let log = cluster.log().await;
        log.put_connector("c", &props(&[("connector.class", "x")]), None)
            .await
            .unwrap();
        // The leader's task records, written by another producer, before its commit.
        cluster
            .produce("task-c-0", Some(br#"{"properties":{"n":"0"}}"#))
            .await;
        cluster
            .produce("task-c-1", Some(br#"{"properties":{"n":"1"}}"#))
            .await;
        let before = log.read_to_end(WAIT).await.unwrap();
        assert_eq!(before.offset, 3);
        assert!(before.tasks("c").is_empty());
        assert!(before.task_configs.is_empty());

        cluster.produce("commit-c", Some(br#"{"tasks":2}"#)).await;
        let after = log.read_to_end(WAIT).await.unwrap();
        assert_eq!(after.tasks("c"), vec![0, 1]);
        assert_eq!(after.task_config("c", 0), Some(&props(&[("n", "0")])));

        log.delete_connector("c").await.unwrap();
        let deleted = log.snapshot();
        assert!(deleted.connector_config("c").is_none());
        assert!(deleted.target_state("c").is_none());
        assert!(deleted.task_configs.is_empty());
        assert_eq!(deleted.task_count("c"), 0);
        // A reader starting now agrees.
        let late = cluster.log().await;
        assert_eq!(late.read_to_end(WAIT).await.unwrap(), deleted);
        // The tombstones Kafka Connect writes, in its order.
        let raw = cluster.raw_records().await;
        assert_eq!(
            raw[raw.len() - 2..],
            [
                ("connector-c".to_string(), None),
                ("target-state-c".to_string(), None)
            ]
        );
        cluster.stop(vec![log, late]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn read_to_end_reaches_a_record_another_producer_just_wrote() {
        let cluster = Cluster::start().await;
        let log = cluster.log().await;
        assert_eq!(log.read_to_end(WAIT).await.unwrap().offset, -1);
        // Malformed records first: logged and skipped.
        cluster.produce("connector-bad", Some(b"{not json")).await;
        cluster
            .produce("commit-bad", Some(br#"{"tasks":"x"}"#))
            .await;
        cluster.produce("no-such-kind", Some(b"{}")).await;
        cluster.produce("task-bad", None).await;
        cluster
            .produce(
                "session-key",
                Some(br#"{"key":"%%%","algorithm":"a","creation-timestamp":1}"#),
            )
            .await;
        let offset = cluster
            .produce(
                "connector-good",
                Some(br#"{"properties":{"connector.class":"file-source"}}"#),
            )
            .await;
        let snapshot = log.read_to_end(WAIT).await.unwrap();
        assert_eq!(snapshot.offset, offset + 1);
        assert_eq!(snapshot.connectors().collect::<Vec<_>>(), vec!["good"]);
        assert!(snapshot.session_key.is_none());
        // And the reader keeps following, telling its subscribers.
        let mut updates = log.subscribe();
        updates.mark_unchanged();
        let offset = cluster
            .produce("target-state-good", Some(br#"{"state":"PAUSED"}"#))
            .await;
        let snapshot = log.read_to_end(WAIT).await.unwrap();
        assert_eq!(snapshot.offset, offset + 1);
        assert_eq!(snapshot.target_state("good"), Some(TargetState::Paused));
        tokio::time::timeout(WAIT, updates.changed())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(updates.borrow().offset, offset + 1);
        cluster.stop(vec![log]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_are_written_in_kafka_connects_exact_json() {
        let cluster = Cluster::start().await;
        let log = cluster.log().await;
        let class = props(&[(
            "connector.class",
            "org.apache.kafka.connect.file.FileStreamSourceConnector",
        )]);
        log.put_connector("local-file-source", &class, Some(TargetState::Stopped))
            .await
            .unwrap();
        log.put_task_configs("local-file-source", &[props(&[("file", "test.txt")])])
            .await
            .unwrap();
        log.put_target_state("local-file-source", TargetState::Paused)
            .await
            .unwrap();
        log.put_target_state("local-file-source", TargetState::Started)
            .await
            .unwrap();
        log.put_session_key(&SessionKey {
            key: b"0123456789abcdef0123456789abcdef".to_vec(),
            algorithm: "HmacSHA256".to_string(),
            creation_timestamp: 1_700_000_000_123,
        })
        .await
        .unwrap();
        log.put_restart_request(
            "local-file-source",
            RestartRequest {
                include_tasks: false,
                only_failed: true,
            },
        )
        .await
        .unwrap();
        log.put_task_configs("local-file-source", &[])
            .await
            .unwrap();

        let expected: Vec<(&str, Option<&str>)> = vec![
            (
                "target-state-local-file-source",
                Some(r#"{"state":"PAUSED","state.v2":"STOPPED"}"#),
            ),
            (
                "connector-local-file-source",
                Some(
                    r#"{"properties":{"connector.class":"org.apache.kafka.connect.file.FileStreamSourceConnector"}}"#,
                ),
            ),
            (
                "task-local-file-source-0",
                Some(r#"{"properties":{"file":"test.txt"}}"#),
            ),
            ("commit-local-file-source", Some(r#"{"tasks":1}"#)),
            (
                "target-state-local-file-source",
                Some(r#"{"state":"PAUSED","state.v2":"PAUSED"}"#),
            ),
            (
                "target-state-local-file-source",
                Some(r#"{"state":"STARTED","state.v2":"STARTED"}"#),
            ),
            (
                "session-key",
                Some(
                    r#"{"key":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=","algorithm":"HmacSHA256","creation-timestamp":1700000000123}"#,
                ),
            ),
            (
                "restart-connector-local-file-source",
                Some(r#"{"include-tasks":false,"only-failed":true}"#),
            ),
            ("commit-local-file-source", Some(r#"{"tasks":0}"#)),
        ];
        let expected: Vec<(String, Option<String>)> = expected
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect();
        assert_eq!(cluster.raw_records().await, expected);
        let snapshot = log.read_to_end(WAIT).await.unwrap();
        assert!(snapshot.tasks("local-file-source").is_empty());
        assert_eq!(snapshot.task_count("local-file-source"), 0);
        cluster.stop(vec![log]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_config_topic_with_several_partitions_is_refused() {
        let cluster = Cluster::start().await;
        cluster
            .clients
            .ensure_topic("configs-2", 2, true)
            .await
            .unwrap();
        let producer = cluster.clients.internal_producer().unwrap();
        let refused = ConfigLog::start(&cluster.clients, producer.clone(), "configs-2")
            .await
            .unwrap_err();
        assert!(
            matches!(refused, ConfigLogError::Partitions { partitions: 2, .. }),
            "{refused}"
        );
        assert!(refused.to_string().contains("exactly one"), "{refused}");
        crate::kafka::release(producer);
        cluster.stop(vec![]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_is_bounded_when_the_broker_is_gone() {
        let cluster = Cluster::start().await;
        let log = cluster.log().await;
        let offset = cluster
            .produce("connector-c", Some(br#"{"properties":{}}"#))
            .await;
        let snapshot = log.wait_for_offset(offset + 1, WAIT).await.unwrap();
        assert_eq!(snapshot.connectors().collect::<Vec<_>>(), vec!["c"]);

        let Cluster { broker, _dir, .. } = cluster;
        broker.shutdown().await.unwrap();
        let timeout = Duration::from_secs(1);
        let started = tokio::time::Instant::now();
        let err = log.read_to_end(timeout).await.unwrap_err();
        assert!(matches!(err, ConfigLogError::ReadTimeout { .. }), "{err}");
        assert!(err.is_retriable());
        let err = log.wait_for_offset(offset + 5, timeout).await.unwrap_err();
        assert!(
            matches!(err, ConfigLogError::ReadTimeout { target, reached, .. }
                if target == offset + 5 && reached == offset + 1),
            "{err}"
        );
        assert!(started.elapsed() < WAIT);
        // What was read stays available.
        assert_eq!(log.snapshot(), snapshot);
        log.shutdown().await;
    }
}
