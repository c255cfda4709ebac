//! The group's statuses, read back from the status topic (Kafka Connect's
//! `KafkaStatusBackingStore` read side): every worker follows `connect-status` from its
//! beginning, so `GET /connectors/{c}/status` on any worker shows the connector and each task
//! with the state and `worker_id` their owner last wrote, wherever they run.
//!
//! Active topics (KIP-558) are records of the same topic: key
//! `status-topic-<topic>:connector-<c>`, value `{"topic":{"name":..,"connector":..,"task":..,
//! "discoverTimestamp":..}}`, a tombstone when the connector's topics are reset; so
//! `GET /connectors/{c}/topics` answers the same on every worker.
//!
//! Records: key `status-connector-<c>` or `status-task-<c>-<n>`, value
//! `{"state":..,"trace":..,"worker_id":..,"generation":..}`, a tombstone when the connector is
//! deleted. `generation` is the worker group's generation when the record was written.
//!
//! Which record of a key counts follows Kafka Connect's generation rules:
//! - a record replaces the one before it (one key always lands on one partition, so the topic
//!   orders its records), except
//! - a task's UNASSIGNED does not replace its RUNNING of the same or a newer generation
//!   (Kafka Connect's `readTaskStatus`: a worker that stopped a task it no longer owns must
//!   not hide the new owner's RUNNING);
//! - and, beyond what Kafka Connect's reader checks, a FAILED or UNASSIGNED (the states
//!   Kafka Connect writes with `putSafe`) from another worker than the current record's,
//!   with an older generation, is a stale owner's late write ([`can_write_safely`] failing
//!   on read): it is ignored, so it cannot replace the new owner's status on any worker.
//!
//! The same cache answers [`StatusCache::can_write_safely`] for this worker's own safe writes
//! (`putSafe`). What a worker runs itself it shows from its own, fresher view.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Deserialize;
use tracing::{debug, info, warn};

use crate::kafka::KafkaClients;

/// One status as its owner last wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StatusRecord {
    /// `RUNNING`, `FAILED`, ...
    pub state: String,
    /// Why it failed.
    #[serde(default)]
    pub trace: Option<String>,
    /// The worker that wrote it.
    pub worker_id: String,
    /// The worker group's generation when it was written.
    pub generation: i32,
}

/// Kafka Connect's `CacheEntry.canWriteSafely`: whether `worker_id`, in group generation
/// `generation`, may write a FAILED or UNASSIGNED status over `current` (the latest record of
/// its key): yes when there is none, when `current` is its own, or when `current` is not from
/// a newer generation. Otherwise `current` is a newer owner's and this worker's view is stale.
pub fn can_write_safely(current: Option<&StatusRecord>, worker_id: &str, generation: i32) -> bool {
    current.is_none_or(|c| c.worker_id == worker_id || c.generation <= generation)
}

/// The states Kafka Connect writes with `putSafe` (`onFailure`, `onShutdown`).
pub fn is_safe_write_state(state: &str) -> bool {
    state == "FAILED" || state == "UNASSIGNED"
}

/// Whether `incoming` (a record read from the topic) replaces `current` for a connector
/// (`task`: false) or a task.
fn replaces(current: Option<&StatusRecord>, incoming: &StatusRecord, task: bool) -> bool {
    let Some(current) = current else { return true };
    // Kafka Connect's readTaskStatus rule.
    if task
        && incoming.state == "UNASSIGNED"
        && current.state == "RUNNING"
        && current.generation >= incoming.generation
    {
        return false;
    }
    // A stale owner's late putSafe write.
    if is_safe_write_state(&incoming.state)
        && current.worker_id != incoming.worker_id
        && current.generation > incoming.generation
    {
        return false;
    }
    true
}

/// The prefix of a connector's status key.
pub const CONNECTOR_STATUS_PREFIX: &str = "status-connector-";
/// The prefix of a task's status key.
pub const TASK_STATUS_PREFIX: &str = "status-task-";

/// What a status key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusKey<'a> {
    Connector(&'a str),
    Task(&'a str, u32),
}

impl<'a> StatusKey<'a> {
    /// `None` for other keys (topic statuses, ...) and malformed ones.
    fn parse(key: &'a str) -> Option<Self> {
        if let Some(connector) = key.strip_prefix(CONNECTOR_STATUS_PREFIX) {
            return (!connector.is_empty()).then_some(Self::Connector(connector));
        }
        key.strip_prefix(TASK_STATUS_PREFIX)
            .and_then(|rest| rest.rsplit_once('-'))
            .and_then(|(c, t)| t.parse::<u32>().ok().map(|t| Self::Task(c, t)))
    }
}

#[derive(Debug, Default)]
struct Statuses {
    connectors: BTreeMap<String, StatusRecord>,
    tasks: BTreeMap<String, BTreeMap<u32, StatusRecord>>,
    /// Each connector's active topics (KIP-558).
    topics: BTreeMap<String, BTreeSet<String>>,
}

/// The prefix of an active topic's key (KIP-558): `status-topic-<topic>:connector-<c>`.
pub const TOPIC_STATUS_PREFIX: &str = "status-topic-";
/// What separates the topic from the connector in an active topic's key.
pub const TOPIC_STATUS_SEPARATOR: &str = ":connector-";

/// The key of `connector`'s active topic `topic`, as Kafka Connect writes it.
pub fn topic_status_key(topic: &str, connector: &str) -> String {
    format!("{TOPIC_STATUS_PREFIX}{topic}{TOPIC_STATUS_SEPARATOR}{connector}")
}

/// `(topic, connector)` of an active topic's key, as Kafka Connect's `readTopicStatus` reads
/// it (the topic ends at the first `:`, which no topic name has).
fn parse_topic_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(TOPIC_STATUS_PREFIX)?;
    let (topic, connector) = rest.split_once(':')?;
    let connector = connector.strip_prefix(&TOPIC_STATUS_SEPARATOR[1..])?;
    (!topic.is_empty() && !connector.is_empty()).then_some((topic, connector))
}

impl Statuses {
    fn get(&self, key: StatusKey<'_>) -> Option<&StatusRecord> {
        match key {
            StatusKey::Connector(c) => self.connectors.get(c),
            StatusKey::Task(c, t) => self.tasks.get(c).and_then(|tasks| tasks.get(&t)),
        }
    }

    fn apply(&mut self, key: &str, value: Option<&[u8]>) {
        if let Some((topic, connector)) = parse_topic_key(key) {
            self.apply_topic(key, topic, connector, value);
            return;
        }
        let Some(parsed) = StatusKey::parse(key) else {
            return;
        };
        let record = match value.map(serde_json::from_slice::<StatusRecord>) {
            None => None,
            Some(Ok(record)) => Some(record),
            Some(Err(e)) => {
                debug!(key, error = %e, "skipping a status record that is not a connector or task status");
                return;
            }
        };
        if let Some(r) = &record {
            let task = matches!(parsed, StatusKey::Task(..));
            if !replaces(self.get(parsed), r, task) {
                debug!(key, state = %r.state, worker = %r.worker_id, generation = r.generation, "ignoring a stale status record");
                return;
            }
        }
        match (parsed, record) {
            (StatusKey::Connector(c), Some(r)) => {
                self.connectors.insert(c.to_string(), r);
            }
            (StatusKey::Connector(c), None) => {
                // As Kafka Connect's `remove(connector)`: its tasks' statuses go with it.
                self.connectors.remove(c);
                self.tasks.remove(c);
            }
            (StatusKey::Task(c, t), Some(r)) => {
                self.tasks.entry(c.to_string()).or_default().insert(t, r);
            }
            (StatusKey::Task(c, t), None) => {
                if let Some(tasks) = self.tasks.get_mut(c) {
                    tasks.remove(&t);
                    if tasks.is_empty() {
                        self.tasks.remove(c);
                    }
                }
            }
        }
    }

    /// An active topic's record: `{"topic":{"name":..,"connector":..,"task":..,
    /// "discoverTimestamp":..}}`, or a tombstone when the topics were reset.
    fn apply_topic(&mut self, key: &str, topic: &str, connector: &str, value: Option<&[u8]>) {
        let Some(value) = value else {
            if let Some(topics) = self.topics.get_mut(connector) {
                topics.remove(topic);
                if topics.is_empty() {
                    self.topics.remove(connector);
                }
            }
            return;
        };
        let named = serde_json::from_slice::<serde_json::Value>(value)
            .ok()
            .is_some_and(|v| v["topic"]["name"].is_string());
        if !named {
            debug!(key, "skipping an active topic record without a topic name");
            return;
        }
        self.topics
            .entry(connector.to_string())
            .or_default()
            .insert(topic.to_string());
    }
}

/// What a [`StatusLog`] has read so far, shared with this worker's status writer so that its
/// FAILED and UNASSIGNED writes follow Kafka Connect's `putSafe`.
#[derive(Debug, Clone, Default)]
pub struct StatusCache(Arc<Mutex<Statuses>>);

impl StatusCache {
    /// Whether `worker_id`, in group generation `generation`, may write a FAILED or
    /// UNASSIGNED record under `key` ([`can_write_safely`] over the latest record read of
    /// it). Keys that are not connector or task statuses may always be written.
    pub fn can_write_safely(&self, key: &str, worker_id: &str, generation: i32) -> bool {
        let Some(parsed) = StatusKey::parse(key) else {
            return true;
        };
        let statuses = self.0.lock().expect("status log lock");
        can_write_safely(statuses.get(parsed), worker_id, generation)
    }

    /// Applies one record of the status topic (`None`: a tombstone), as the reader does.
    pub fn apply(&self, key: &str, value: Option<&[u8]>) {
        self.0.lock().expect("status log lock").apply(key, value);
    }

    /// The active topics of `connector` read so far (KIP-558).
    pub fn topics(&self, connector: &str) -> BTreeSet<String> {
        let statuses = self.0.lock().expect("status log lock");
        statuses.topics.get(connector).cloned().unwrap_or_default()
    }
}

/// A follower of the status topic.
#[derive(Debug)]
pub struct StatusLog {
    statuses: StatusCache,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A connector's statuses as the status topic has them: the connector's own and each task's.
pub type ClusterStatus = (Option<StatusRecord>, BTreeMap<u32, StatusRecord>);

impl StatusLog {
    /// Starts following every partition of `topic` from its beginning.
    ///
    /// # Errors
    /// When the consumer cannot be created or the topic's partitions cannot be learnt.
    pub async fn start(clients: &KafkaClients, topic: &str) -> Result<Self, String> {
        let mut config = clients.consumer_config("sluice-status-log", &BTreeMap::new());
        // A 100 ms long poll: 500 ms (librdkafka's default) made a worker's start to its
        // first record take a median of 640-710 ms in two of four runs of the worker bench.
        config
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "100");
        let consumer: BaseConsumer = config
            .create()
            .map_err(|e| format!("cannot read the status topic {topic}: {e}"))?;
        let name = topic.to_string();
        let consumer = tokio::task::spawn_blocking(move || -> Result<BaseConsumer, String> {
            let metadata = consumer
                .fetch_metadata(Some(&name), Duration::from_secs(10))
                .map_err(|e| format!("cannot read the status topic {name}: {e}"))?;
            let partitions: Vec<i32> = metadata
                .topics()
                .iter()
                .find(|t| t.name() == name && t.error().is_none())
                .map(|t| t.partitions().iter().map(|p| p.id()).collect())
                .unwrap_or_default();
            if partitions.is_empty() {
                return Err(format!("the status topic {name} has no partitions"));
            }
            let mut assignment = TopicPartitionList::new();
            for p in partitions {
                assignment
                    .add_partition_offset(&name, p, Offset::Beginning)
                    .map_err(|e| e.to_string())?;
            }
            consumer.assign(&assignment).map_err(|e| e.to_string())?;
            Ok(consumer)
        })
        .await
        .map_err(|e| format!("cannot read the status topic: {e}"))??;
        let statuses = StatusCache::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let statuses = statuses.clone();
            let stop = stop.clone();
            let topic = topic.to_string();
            std::thread::Builder::new()
                .name("status-log".to_string())
                .spawn(move || follow(&topic, &consumer, &statuses, &stop))
                .map_err(|e| format!("cannot start the status topic reader: {e}"))?
        };
        info!(topic, "following the status topic");
        Ok(Self {
            statuses,
            stop,
            thread: Some(thread),
        })
    }

    /// What the status topic says of `connector`.
    pub fn connector(&self, connector: &str) -> ClusterStatus {
        let statuses = self.statuses.0.lock().expect("status log lock");
        (
            statuses.connectors.get(connector).cloned(),
            statuses.tasks.get(connector).cloned().unwrap_or_default(),
        )
    }

    /// The active topics of `connector` as the status topic has them, whichever worker
    /// recorded them (KIP-558).
    pub fn topics(&self, connector: &str) -> BTreeSet<String> {
        self.statuses.topics(connector)
    }

    /// The records read so far, for this worker's safe writes.
    pub fn cache(&self) -> StatusCache {
        self.statuses.clone()
    }

    /// Stops the reader and waits for its thread (which destroys the consumer) to end.
    pub async fn shutdown(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for StatusLog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn follow(topic: &str, consumer: &BaseConsumer, statuses: &StatusCache, stop: &AtomicBool) {
    let mut failing = false;
    while !stop.load(Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                failing = false;
                let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                    continue;
                };
                statuses.apply(key, m.payload());
            }
            Some(Err(e)) if !failing => {
                warn!(topic, error = %e, "cannot read the status topic; other workers' statuses may be stale until it can");
                failing = true;
            }
            Some(Err(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::WorkerSettings;
    use crate::status::{State, StatusStore};
    use rdkafka::producer::FutureRecord;
    use sluice_broker::{Broker, BrokerConfig};

    fn rec(state: &str, worker: &str, generation: i32) -> String {
        format!(
            r#"{{"state":"{state}","trace":null,"worker_id":"{worker}","generation":{generation}}}"#
        )
    }

    fn record(state: &str, worker: &str, generation: i32) -> StatusRecord {
        StatusRecord {
            state: state.to_string(),
            trace: None,
            worker_id: worker.to_string(),
            generation,
        }
    }

    #[test]
    fn the_latest_record_of_each_key_wins_and_tombstones_remove() {
        let mut s = Statuses::default();
        s.apply(
            "status-connector-my-conn",
            Some(rec("RUNNING", "w1:8083", 3).as_bytes()),
        );
        s.apply(
            "status-task-my-conn-0",
            Some(rec("RUNNING", "w1:8083", 3).as_bytes()),
        );
        s.apply(
            "status-task-my-conn-1",
            Some(rec("RUNNING", "w2:8083", 3).as_bytes()),
        );
        s.apply(
            "status-task-my-conn-1",
            Some(rec("FAILED", "w3:8083", 3).as_bytes()),
        );
        s.apply(
            "status-topic-orders:connector-my-conn",
            Some(b"{\"topic\":{}}"),
        );
        assert_eq!(s.connectors["my-conn"].worker_id, "w1:8083");
        assert_eq!(s.tasks["my-conn"][&1].state, "FAILED");
        assert_eq!(s.tasks["my-conn"][&1].worker_id, "w3:8083");
        assert_eq!(s.tasks["my-conn"][&1].generation, 3);
        s.apply("status-task-my-conn-0", None);
        s.apply("status-task-my-conn-1", None);
        s.apply("status-connector-my-conn", None);
        assert!(s.connectors.is_empty() && s.tasks.is_empty());
    }

    /// Kafka Connect's `deleteConnectorState`: the connector's tombstone takes its tasks'
    /// statuses too.
    #[test]
    fn a_connector_tombstone_removes_its_tasks_statuses() {
        let mut s = Statuses::default();
        let running = rec("RUNNING", "w1:8083", 0);
        s.apply("status-connector-conn", Some(running.as_bytes()));
        s.apply("status-task-conn-0", Some(running.as_bytes()));
        s.apply("status-task-conn-other-0", Some(running.as_bytes()));
        s.apply("status-connector-conn", None);
        assert!(!s.connectors.contains_key("conn") && !s.tasks.contains_key("conn"));
        assert_eq!(s.tasks["conn-other"][&0].state, "RUNNING");
    }

    /// Kafka Connect's `readTaskStateShouldIgnoreStaleStatusesFromOtherWorkers`.
    #[test]
    fn a_tasks_unassigned_of_an_older_generation_does_not_replace_running() {
        let mut s = Statuses::default();
        let key = "status-task-conn-0";
        s.apply(key, Some(rec("RUNNING", "anotherhost:8083", 10).as_bytes()));
        s.apply(key, Some(rec("UNASSIGNED", "localhost:8083", 9).as_bytes()));
        assert_eq!(
            s.tasks["conn"][&0],
            record("RUNNING", "anotherhost:8083", 10)
        );
        // Kafka Connect's rule holds for the same worker and generation too: a worker that
        // stops its task writes UNASSIGNED, which readers leave behind the RUNNING.
        s.apply(
            key,
            Some(rec("UNASSIGNED", "anotherhost:8083", 10).as_bytes()),
        );
        assert_eq!(s.tasks["conn"][&0].state, "RUNNING");
        // Any other state replaces, whatever its generation (a group whose generations
        // started again).
        s.apply(
            key,
            Some(rec("RUNNING", "yetanotherhost:8083", 1).as_bytes()),
        );
        assert_eq!(
            s.tasks["conn"][&0],
            record("RUNNING", "yetanotherhost:8083", 1)
        );
        // UNASSIGNED of a newer generation replaces RUNNING.
        s.apply(
            key,
            Some(rec("UNASSIGNED", "anotherhost:8083", 2).as_bytes()),
        );
        assert_eq!(s.tasks["conn"][&0].state, "UNASSIGNED");
    }

    /// A stale owner's late FAILED or UNASSIGNED (Kafka Connect's putSafe states) of an older
    /// generation, from another worker than the current record's, is ignored, for connectors
    /// and tasks; the same worker's, or a newer generation's, is applied.
    #[test]
    fn a_stale_owners_late_safe_write_is_ignored() {
        let mut s = Statuses::default();
        for key in ["status-connector-conn", "status-task-conn-0"] {
            s.apply(key, Some(rec("RUNNING", "new:8083", 5).as_bytes()));
            s.apply(key, Some(rec("FAILED", "old:8083", 4).as_bytes()));
            s.apply(key, Some(rec("UNASSIGNED", "old:8083", 4).as_bytes()));
            assert_eq!(
                s.get(StatusKey::parse(key).unwrap()),
                Some(&record("RUNNING", "new:8083", 5)),
                "{key}"
            );
            // Other states are written with `put`, unconditionally, and read so.
            s.apply(key, Some(rec("PAUSED", "old:8083", 4).as_bytes()));
            assert_eq!(
                s.get(StatusKey::parse(key).unwrap()).unwrap().state,
                "PAUSED"
            );
            s.apply(key, Some(rec("RUNNING", "new:8083", 5).as_bytes()));
            // The current owner's own failure, and a failure of the same generation.
            s.apply(key, Some(rec("FAILED", "new:8083", 3).as_bytes()));
            assert_eq!(
                s.get(StatusKey::parse(key).unwrap()).unwrap().state,
                "FAILED"
            );
            s.apply(key, Some(rec("RUNNING", "new:8083", 5).as_bytes()));
            s.apply(key, Some(rec("FAILED", "other:8083", 5).as_bytes()));
            assert_eq!(
                s.get(StatusKey::parse(key).unwrap()),
                Some(&record("FAILED", "other:8083", 5))
            );
        }
    }

    /// Kafka Connect's `CacheEntry.canWriteSafely`, as its `putSafe*` tests exercise it.
    #[test]
    fn safe_writes_follow_kafka_connects_can_write_safely() {
        // putSafeWithNoPreviousValueIsPropagated
        assert!(can_write_safely(None, "localhost:8083", 0));
        // putSafeConnectorIgnoresStaleStatus
        let other_newer = record("RUNNING", "anotherhost:8083", 1);
        assert!(!can_write_safely(Some(&other_newer), "localhost:8083", 0));
        assert!(can_write_safely(Some(&other_newer), "localhost:8083", 1));
        assert!(can_write_safely(Some(&other_newer), "localhost:8083", 2));
        // putSafeOverridesValueSetBySameWorker
        let own_newer = record("RUNNING", "localhost:8083", 1);
        assert!(can_write_safely(Some(&own_newer), "localhost:8083", 0));

        let cache = StatusCache::default();
        cache.apply(
            "status-connector-conn",
            Some(rec("RUNNING", "anotherhost:8083", 1).as_bytes()),
        );
        assert!(!cache.can_write_safely("status-connector-conn", "localhost:8083", 0));
        assert!(cache.can_write_safely("status-task-conn-0", "localhost:8083", 0));
        assert!(cache.can_write_safely("status-connector-other", "localhost:8083", 0));
    }

    #[test]
    fn active_topic_records_add_and_tombstones_remove() {
        let mut s = Statuses::default();
        let value =
            br#"{"topic":{"name":"orders","connector":"c-1","task":0,"discoverTimestamp":5}}"#;
        s.apply("status-topic-orders:connector-c-1", Some(value));
        s.apply(
            "status-topic-refunds:connector-c-1",
            Some(br#"{"topic":{"name":"refunds"}}"#),
        );
        // Malformed keys and values are skipped.
        s.apply("status-topic-:connector-c-1", Some(value));
        s.apply("status-topic-orders:c-1", Some(value));
        s.apply("status-topic-audit:connector-c-1", Some(b"{}"));
        assert_eq!(
            s.topics["c-1"],
            BTreeSet::from(["orders".to_string(), "refunds".to_string()])
        );
        // Statuses are untouched, and a connector's tombstone keeps its topics (as Kafka).
        assert!(s.connectors.is_empty() && s.tasks.is_empty());
        s.apply("status-connector-c-1", None);
        s.apply("status-topic-orders:connector-c-1", None);
        assert_eq!(s.topics["c-1"], BTreeSet::from(["refunds".to_string()]));
        s.apply("status-topic-refunds:connector-c-1", None);
        assert!(s.topics.is_empty());
        assert_eq!(
            parse_topic_key(&topic_status_key("a.b-c", "conn:x")),
            Some(("a.b-c", "conn:x"))
        );
    }

    #[test]
    fn keys_parse_as_kafka_connect_parses_them() {
        assert_eq!(
            StatusKey::parse("status-connector-my-conn"),
            Some(StatusKey::Connector("my-conn"))
        );
        assert_eq!(
            StatusKey::parse("status-task-my-conn-12"),
            Some(StatusKey::Task("my-conn", 12))
        );
        assert_eq!(StatusKey::parse("status-task-my-conn-x"), None);
        assert_eq!(StatusKey::parse("status-connector-"), None);
        assert_eq!(StatusKey::parse("status-topic-orders:connector-c"), None);
    }

    const TOPIC: &str = "connect-status";
    /// Long enough for a loaded machine.
    const WAIT: Duration = Duration::from_secs(20);

    async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !done() {
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A rebalance moved a connector and its task from `old` (generation 4) to `new`
    /// (generation 5), and `old` has not noticed. Its FAILED and UNASSIGNED writes are not
    /// made (putSafe over what its reader has seen), and the same records written late by a
    /// worker whose reader lagged (here produced raw) do not replace the new owner's RUNNING
    /// on any reader. Every record is checked byte for byte.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stale_owners_late_records_do_not_replace_the_new_owners_running() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::start(BrokerConfig::new("127.0.0.1:0", dir.path()))
            .await
            .unwrap();
        let clients = KafkaClients::new(broker.bootstrap_servers(), &WorkerSettings::default());
        // One partition: every key in one order, so a later record read means every earlier
        // one was.
        clients.ensure_topic(TOPIC, 1, true).await.unwrap();
        let old_log = StatusLog::start(&clients, TOPIC).await.unwrap();
        let new_log = StatusLog::start(&clients, TOPIC).await.unwrap();
        let old = StatusStore::new(
            "old:8083",
            TOPIC,
            Some(clients.internal_producer().unwrap()),
        )
        .with_cache(Some(old_log.cache()));
        let new = StatusStore::new(
            "new:8083",
            TOPIC,
            Some(clients.internal_producer().unwrap()),
        )
        .with_cache(Some(new_log.cache()));

        old.set_generation(4);
        old.set_connector("conn", "source", State::Unassigned, None);
        old.set_connector("conn", "source", State::Running, None);
        old.set_task("conn", 0, State::Running, None);
        wait_for(
            "the old owner's task running on the new owner's reader",
            || new_log.connector("conn").1.get(&0) == Some(&record("RUNNING", "old:8083", 4)),
        )
        .await;

        new.set_generation(5);
        new.set_connector("conn", "source", State::Running, None);
        new.set_task("conn", 0, State::Running, None);
        let moved = (
            Some(record("RUNNING", "new:8083", 5)),
            BTreeMap::from([(0, record("RUNNING", "new:8083", 5))]),
        );
        wait_for("the new owner's statuses on the old owner's reader", || {
            old_log.connector("conn") == moved
        })
        .await;

        // The old owner's task and connector fail and stop, late.
        old.set_task("conn", 0, State::Failed, Some("fenced".to_string()));
        old.set_task("conn", 0, State::Unassigned, None);
        old.set_connector("conn", "source", State::Failed, Some("gone".to_string()));
        old.set_connector("conn", "source", State::Unassigned, None);
        // A worker whose reader lagged writes them all the same.
        let late = [
            ("status-task-conn-0", rec("FAILED", "old:8083", 4)),
            ("status-task-conn-0", rec("UNASSIGNED", "old:8083", 4)),
            ("status-connector-conn", rec("FAILED", "old:8083", 4)),
            ("status-connector-conn", rec("UNASSIGNED", "old:8083", 4)),
        ];
        let producer = clients.internal_producer().unwrap();
        for (key, value) in &late {
            producer
                .send(FutureRecord::to(TOPIC).key(*key).payload(value), WAIT)
                .await
                .unwrap();
        }
        crate::kafka::release(producer);
        // Written after all of them: once read, everything before it was.
        old.set_task("conn", 1, State::Running, None);
        let third_log = StatusLog::start(&clients, TOPIC).await.unwrap();
        for (name, log) in [("old", &old_log), ("new", &new_log), ("third", &third_log)] {
            wait_for("the marker record", || {
                log.connector("conn").1.contains_key(&1)
            })
            .await;
            let (connector, tasks) = log.connector("conn");
            assert_eq!(
                connector, moved.0,
                "connector on the {name} worker's reader"
            );
            assert_eq!(
                tasks[&0], moved.1[&0],
                "task 0 on the {name} worker's reader"
            );
        }

        let consumer = clients.reader().unwrap();
        let records =
            tokio::task::spawn_blocking(move || crate::offsets::read_topic(&consumer, TOPIC))
                .await
                .unwrap()
                .unwrap();
        let records: Vec<(String, String)> = records
            .into_iter()
            .map(|(k, v)| {
                (
                    String::from_utf8(k).unwrap(),
                    String::from_utf8(v.unwrap()).unwrap(),
                )
            })
            .collect();
        let mut expected: Vec<(String, String)> = vec![
            (
                "status-connector-conn".into(),
                r#"{"state":"UNASSIGNED","trace":null,"worker_id":"old:8083","generation":4}"#
                    .into(),
            ),
            (
                "status-connector-conn".into(),
                r#"{"state":"RUNNING","trace":null,"worker_id":"old:8083","generation":4}"#.into(),
            ),
            (
                "status-task-conn-0".into(),
                r#"{"state":"RUNNING","trace":null,"worker_id":"old:8083","generation":4}"#.into(),
            ),
            (
                "status-connector-conn".into(),
                r#"{"state":"RUNNING","trace":null,"worker_id":"new:8083","generation":5}"#.into(),
            ),
            (
                "status-task-conn-0".into(),
                r#"{"state":"RUNNING","trace":null,"worker_id":"new:8083","generation":5}"#.into(),
            ),
        ];
        expected.extend(late.iter().map(|(k, v)| ((*k).to_string(), v.clone())));
        expected.push((
            "status-task-conn-1".into(),
            r#"{"state":"RUNNING","trace":null,"worker_id":"old:8083","generation":4}"#.into(),
        ));
        assert_eq!(records, expected);

        for log in [old_log, new_log, third_log] {
            log.shutdown().await;
        }
        crate::kafka::release(old);
        crate::kafka::release(new);
        broker.shutdown().await.unwrap();
    }
}
