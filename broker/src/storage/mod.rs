//! Storage: topics, partitions, segments and the durable metadata of the data dir.
//!
//! Data dir layout:
//! ```text
//! <data_dir>/
//!   meta/cluster.json              cluster id
//!   meta/producer-ids.json         upper bound of handed-out producer ids
//!   meta/topics/<topic>.json       topic id, partition count, config overrides
//!   <topic>-<partition>/           one directory per partition (see `partition`)
//!     00000000000000000000.log     segments named by base offset, with .index/.timeindex
//!     partition.metadata           topic id, as Kafka writes it
//!     sluice-partition.json        log start offset
//!     producer-state.json          idempotent producer snapshot
//! ```
//! A topic exists when its `meta/topics/<topic>.json` exists: creation writes the partition
//! directories first and the metadata file last; deletion removes the metadata file first.

pub(crate) mod batch;
pub(crate) mod cleaner;
pub mod config;
pub(crate) mod flush;
pub(crate) mod offset_map;
pub(crate) mod partition;
pub(crate) mod producer;
pub(crate) mod retention;
pub(crate) mod segment;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kafka_protocol::ResponseError;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use uuid::Uuid;

use self::config::LogConfig;
use self::partition::{write_atomically, Partition};
use crate::config::BrokerConfig;
use crate::error::{Error, IoContext, Result};

/// Longest topic name Kafka allows.
pub(crate) const MAX_TOPIC_NAME_LEN: usize = 249;
/// Producer ids are handed out in blocks; the bound is persisted before a block is used.
const PRODUCER_ID_BLOCK: i64 = 1000;
/// Most partitions one topic may have (keeps a bad request from exhausting file handles).
pub(crate) const MAX_PARTITIONS: i32 = 10_000;

/// A Kafka error code with a human message, returned to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) code: ResponseError,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(code: ResponseError, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Checks a topic name as Kafka does: 1 to 249 characters of `[a-zA-Z0-9._-]`, not `.`/`..`.
pub(crate) fn validate_topic_name(name: &str) -> Result<(), ApiError> {
    let invalid = |why: String| Err(ApiError::new(ResponseError::InvalidTopicException, why));
    if name.is_empty() {
        return invalid("topic name is empty".to_owned());
    }
    if name == "." || name == ".." {
        return invalid(format!("topic name '{name}' is not allowed"));
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return invalid(format!(
            "topic name is {} characters long; the limit is {MAX_TOPIC_NAME_LEN}",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return invalid(format!(
            "topic name '{}' contains '{}'; only ASCII letters, digits, '.', '_' and '-' are allowed",
            name.escape_debug(),
            bad.escape_debug()
        ));
    }
    Ok(())
}

/// What `meta/topics/<topic>.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TopicMetadata {
    name: String,
    topic_id: Uuid,
    partitions: i32,
    configs: BTreeMap<String, String>,
}

/// A topic: its id, config overrides and partitions.
#[derive(Debug)]
pub(crate) struct Topic {
    pub(crate) name: String,
    pub(crate) id: Uuid,
    configs: RwLock<BTreeMap<String, String>>,
    partitions: RwLock<Vec<Arc<Partition>>>,
}

impl Topic {
    pub(crate) fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().clone()
    }

    pub(crate) fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.read().get(i).cloned())
    }

    pub(crate) fn partition_count(&self) -> i32 {
        self.partitions.read().len() as i32
    }

    /// Config overrides set on this topic.
    pub(crate) fn config_overrides(&self) -> BTreeMap<String, String> {
        self.configs.read().clone()
    }

    fn metadata(&self) -> TopicMetadata {
        TopicMetadata {
            name: self.name.clone(),
            topic_id: self.id,
            partitions: self.partition_count(),
            configs: self.config_overrides(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct ClusterMetadata {
    cluster_id: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct ProducerIdBlock {
    next_unallocated: i64,
}

#[derive(Debug)]
struct ProducerIds {
    next: i64,
    bound: i64,
}

/// All topics of the broker and the durable metadata around them.
#[derive(Debug)]
pub(crate) struct LogManager {
    pub(crate) config: BrokerConfig,
    meta_dir: PathBuf,
    pub(crate) cluster_id: String,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    /// Serialises topic creation, deletion and partition changes.
    admin: Mutex<()>,
    producer_ids: Mutex<ProducerIds>,
}

impl LogManager {
    /// Opens (or initialises) the data dir and loads every topic.
    pub(crate) fn open(config: BrokerConfig) -> Result<Self> {
        let data_dir = config.data_dir.clone();
        let meta_dir = data_dir.join("meta");
        fs::create_dir_all(meta_dir.join("topics")).at(&meta_dir)?;
        let cluster_path = meta_dir.join("cluster.json");
        let cluster_id = match fs::read(&cluster_path) {
            Ok(bytes) => {
                let stored: ClusterMetadata =
                    serde_json::from_slice(&bytes).map_err(|e| Error::CorruptMetadata {
                        path: cluster_path.clone(),
                        reason: e.to_string(),
                    })?;
                if let Some(wanted) = &config.cluster_id {
                    if *wanted != stored.cluster_id {
                        return Err(Error::Config(format!(
                            "cluster_id '{wanted}' does not match '{}' stored in the data dir; \
                             remove the setting or use another data dir",
                            stored.cluster_id
                        )));
                    }
                }
                stored.cluster_id
            }
            Err(_) => {
                let id = config
                    .cluster_id
                    .clone()
                    .unwrap_or_else(|| short_uuid(Uuid::new_v4()));
                let meta = ClusterMetadata {
                    cluster_id: id.clone(),
                };
                write_atomically(&cluster_path, &serde_json::to_vec(&meta).expect("json"))
                    .at(&cluster_path)?;
                id
            }
        };
        let ids_path = meta_dir.join("producer-ids.json");
        let next_unallocated = match fs::read(&ids_path) {
            Ok(bytes) => {
                serde_json::from_slice::<ProducerIdBlock>(&bytes)
                    .map_err(|e| Error::CorruptMetadata {
                        path: ids_path.clone(),
                        reason: e.to_string(),
                    })?
                    .next_unallocated
            }
            Err(_) => 0,
        };
        let manager = Self {
            config,
            meta_dir,
            cluster_id,
            topics: RwLock::new(HashMap::new()),
            admin: Mutex::new(()),
            producer_ids: Mutex::new(ProducerIds {
                next: next_unallocated,
                bound: next_unallocated,
            }),
        };
        manager.load_topics()?;
        Ok(manager)
    }

    fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    fn topic_meta_path(&self, name: &str) -> PathBuf {
        self.meta_dir.join("topics").join(format!("{name}.json"))
    }

    fn load_topics(&self) -> Result<()> {
        let dir = self.meta_dir.join("topics");
        let mut topics = HashMap::new();
        for entry in fs::read_dir(&dir).at(&dir)? {
            let path = entry.at(&dir)?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let bytes = fs::read(&path).at(&path)?;
            let meta: TopicMetadata =
                serde_json::from_slice(&bytes).map_err(|e| Error::CorruptMetadata {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            let log_config = LogConfig::resolve(&self.config, &meta.configs);
            let mut partitions = Vec::new();
            for index in 0..meta.partitions {
                partitions.push(Arc::new(Partition::open(
                    self.data_dir(),
                    &meta.name,
                    meta.topic_id,
                    index,
                    log_config.clone(),
                )?));
            }
            info!(topic = %meta.name, partitions = meta.partitions, "topic loaded");
            topics.insert(
                meta.name.clone(),
                Arc::new(Topic {
                    name: meta.name,
                    id: meta.topic_id,
                    configs: RwLock::new(meta.configs),
                    partitions: RwLock::new(partitions),
                }),
            );
        }
        *self.topics.write() = topics;
        Ok(())
    }

    pub(crate) fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(name).cloned()
    }

    pub(crate) fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics.read().values().find(|t| t.id == id).cloned()
    }

    /// Every topic, sorted by name.
    pub(crate) fn topics(&self) -> Vec<Arc<Topic>> {
        let mut all: Vec<_> = self.topics.read().values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Every partition of every topic.
    pub(crate) fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.topics().iter().flat_map(|t| t.partitions()).collect()
    }

    /// Validates a creation request without creating anything.
    pub(crate) fn validate_new_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &BTreeMap<String, String>,
    ) -> Result<i32, ApiError> {
        validate_topic_name(name)?;
        if self.topic(name).is_some() {
            return Err(ApiError::new(
                ResponseError::TopicAlreadyExists,
                format!("topic '{name}' already exists"),
            ));
        }
        let partitions = if partitions == -1 {
            self.config.num_partitions
        } else {
            partitions
        };
        if !(1..=MAX_PARTITIONS).contains(&partitions) {
            return Err(ApiError::new(
                ResponseError::InvalidPartitions,
                format!(
                    "partition count must be between 1 and {MAX_PARTITIONS} (got {partitions})"
                ),
            ));
        }
        if replication_factor != -1 && replication_factor != 1 {
            return Err(ApiError::new(
                ResponseError::InvalidReplicationFactor,
                format!(
                    "replication factor must be 1 on this single-node broker (got {replication_factor})"
                ),
            ));
        }
        for (key, value) in configs {
            config::validate_override(key, value)
                .map_err(|why| ApiError::new(ResponseError::InvalidConfig, why))?;
        }
        Ok(partitions)
    }

    /// Creates a topic. `partitions` -1 means the broker default.
    pub(crate) fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, ApiError> {
        let _admin = self.admin.lock();
        let partitions = self.validate_new_topic(name, partitions, replication_factor, &configs)?;
        let id = Uuid::new_v4();
        let log_config = LogConfig::resolve(&self.config, &configs);
        let storage = |e: Error| ApiError::new(ResponseError::KafkaStorageError, e.to_string());
        let mut parts = Vec::new();
        for index in 0..partitions {
            parts.push(Arc::new(
                Partition::create(self.data_dir(), name, id, index, log_config.clone())
                    .map_err(storage)?,
            ));
        }
        let topic = Arc::new(Topic {
            name: name.to_owned(),
            id,
            configs: RwLock::new(configs),
            partitions: RwLock::new(parts),
        });
        self.write_topic_metadata(&topic).map_err(storage)?;
        self.topics
            .write()
            .insert(name.to_owned(), Arc::clone(&topic));
        info!(topic = name, partitions, "topic created");
        Ok(topic)
    }

    /// The topic, created with defaults if missing and auto-creation is on.
    pub(crate) fn get_or_auto_create(&self, name: &str) -> Result<Arc<Topic>, ApiError> {
        if let Some(topic) = self.topic(name) {
            return Ok(topic);
        }
        if !self.config.auto_create_topics_enable {
            return Err(ApiError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("topic '{name}' does not exist and auto.create.topics.enable is off"),
            ));
        }
        match self.create_topic(name, -1, -1, BTreeMap::new()) {
            Err(e) if e.code == ResponseError::TopicAlreadyExists => self
                .topic(name)
                .ok_or_else(|| ApiError::new(ResponseError::UnknownTopicOrPartition, e.message)),
            other => other,
        }
    }

    fn write_topic_metadata(&self, topic: &Topic) -> Result<()> {
        let path = self.topic_meta_path(&topic.name);
        let bytes = serde_json::to_vec_pretty(&topic.metadata()).expect("json");
        write_atomically(&path, &bytes).at(&path)
    }

    /// Deletes a topic and its data.
    pub(crate) fn delete_topic(&self, name: &str) -> Result<Uuid, ApiError> {
        let _admin = self.admin.lock();
        let Some(topic) = self.topics.write().remove(name) else {
            return Err(ApiError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("topic '{name}' does not exist"),
            ));
        };
        let path = self.topic_meta_path(name);
        if let Err(e) = fs::remove_file(&path) {
            warn!(error = %e, path = %path.display(), "cannot remove topic metadata");
        }
        for partition in topic.partitions() {
            if let Err(e) = partition.delete_dir() {
                warn!(error = %e, topic = name, partition = partition.index, "cannot remove partition directory");
            }
        }
        info!(topic = name, "topic deleted");
        Ok(topic.id)
    }

    /// Grows a topic to `count` partitions.
    pub(crate) fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        let _admin = self.admin.lock();
        let topic = self.topic(name).ok_or_else(|| {
            ApiError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("topic '{name}' does not exist"),
            )
        })?;
        let current = topic.partition_count();
        if count <= current {
            return Err(ApiError::new(
                ResponseError::InvalidPartitions,
                format!("topic '{name}' has {current} partitions; the new count must be larger (got {count})"),
            ));
        }
        if count > MAX_PARTITIONS {
            return Err(ApiError::new(
                ResponseError::InvalidPartitions,
                format!("partition count must be at most {MAX_PARTITIONS} (got {count})"),
            ));
        }
        if validate_only {
            return Ok(());
        }
        let log_config = LogConfig::resolve(&self.config, &topic.config_overrides());
        let storage = |e: Error| ApiError::new(ResponseError::KafkaStorageError, e.to_string());
        for index in current..count {
            let partition =
                Partition::create(self.data_dir(), name, topic.id, index, log_config.clone())
                    .map_err(storage)?;
            topic.partitions.write().push(Arc::new(partition));
        }
        self.write_topic_metadata(&topic).map_err(storage)?;
        info!(topic = name, from = current, to = count, "partitions added");
        Ok(())
    }

    /// Replaces (or, with `incremental`, edits) a topic's config overrides.
    /// `changes` maps a name to `Some(value)` to set or `None` to remove.
    pub(crate) fn alter_topic_configs(
        &self,
        name: &str,
        changes: &[(String, Option<String>)],
        incremental: bool,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        let _admin = self.admin.lock();
        let topic = self.topic(name).ok_or_else(|| {
            ApiError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("topic '{name}' does not exist"),
            )
        })?;
        let mut configs = if incremental {
            topic.config_overrides()
        } else {
            BTreeMap::new()
        };
        for (key, value) in changes {
            match value {
                Some(value) => {
                    config::validate_override(key, value)
                        .map_err(|why| ApiError::new(ResponseError::InvalidConfig, why))?;
                    configs.insert(key.clone(), value.clone());
                }
                None => {
                    if config::find_def(key).is_none() {
                        return Err(ApiError::new(
                            ResponseError::InvalidConfig,
                            format!("unknown topic config '{key}'"),
                        ));
                    }
                    configs.remove(key);
                }
            }
        }
        if validate_only {
            return Ok(());
        }
        *topic.configs.write() = configs.clone();
        let log_config = LogConfig::resolve(&self.config, &configs);
        for partition in topic.partitions() {
            partition.set_config(log_config.clone());
        }
        self.write_topic_metadata(&topic)
            .map_err(|e| ApiError::new(ResponseError::KafkaStorageError, e.to_string()))?;
        info!(topic = name, ?configs, "topic configs altered");
        Ok(())
    }

    /// Hands out a fresh producer id; the block bound is persisted before use, so ids are
    /// never reused across restarts.
    pub(crate) fn allocate_producer_id(&self) -> Result<i64, ApiError> {
        let mut ids = self.producer_ids.lock();
        if ids.next >= ids.bound {
            let bound = ids.next + PRODUCER_ID_BLOCK;
            let path = self.meta_dir.join("producer-ids.json");
            let block = ProducerIdBlock {
                next_unallocated: bound,
            };
            write_atomically(&path, &serde_json::to_vec(&block).expect("json"))
                .map_err(|e| ApiError::new(ResponseError::KafkaStorageError, e.to_string()))?;
            ids.bound = bound;
        }
        let id = ids.next;
        ids.next += 1;
        Ok(id)
    }

    /// Flushes every partition and writes producer snapshots (clean shutdown).
    pub(crate) fn close(&self) {
        for partition in self.all_partitions() {
            if let Err(e) = partition.close() {
                warn!(error = %e, topic = %partition.topic, partition = partition.index, "cannot close partition cleanly");
            }
        }
    }
}

/// Kafka's textual form of an id: URL-safe base64 of the 16 bytes, without padding.
pub(crate) fn short_uuid(id: Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    let mut bits = 0u32;
    let mut count = 0;
    for &b in bytes {
        bits = (bits << 8) | u32::from(b);
        count += 8;
        while count >= 6 {
            count -= 6;
            out.push(ALPHABET[((bits >> count) & 63) as usize] as char);
        }
    }
    if count > 0 {
        out.push(ALPHABET[((bits << (6 - count)) & 63) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        validate_topic_name("connect-offsets").unwrap();
        validate_topic_name("a.b_c-9").unwrap();
        for bad in ["", ".", "..", "has space", "slash/x", "ünïcode"] {
            let err = validate_topic_name(bad).unwrap_err();
            assert_eq!(err.code, ResponseError::InvalidTopicException, "{bad}");
        }
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
    }

    #[test]
    fn short_uuid_is_22_url_safe_chars() {
        let s = short_uuid(Uuid::from_bytes([0xff; 16]));
        assert_eq!(s.len(), 22);
        assert!(s.chars().all(|c| c == '_' || c == 'w'), "{s}");
    }

    #[test]
    fn topics_configs_and_producer_ids_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let config = BrokerConfig::new("127.0.0.1:0", dir.path());
        let first_id;
        {
            let logs = LogManager::open(config.clone()).unwrap();
            let mut configs = BTreeMap::new();
            configs.insert("cleanup.policy".to_owned(), "compact".to_owned());
            logs.create_topic("t", 3, 1, configs).unwrap();
            first_id = logs.allocate_producer_id().unwrap();
            logs.close();
        }
        let logs = LogManager::open(config).unwrap();
        let topic = logs.topic("t").unwrap();
        assert_eq!(topic.partition_count(), 3);
        assert_eq!(topic.config_overrides()["cleanup.policy"], "compact");
        assert!(logs.allocate_producer_id().unwrap() > first_id);
        assert_eq!(
            logs.create_topic("t", 1, 1, BTreeMap::new())
                .unwrap_err()
                .code,
            ResponseError::TopicAlreadyExists
        );
    }
}
