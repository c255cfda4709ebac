//! Connector and task status: kept in memory for the REST API and written to the
//! `connect-status` topic in Kafka Connect's format (`status-connector-<name>`,
//! `status-task-<name>-<id>`, values `{"state":..,"trace":..,"worker_id":..,"generation":..}`).
//!
//! As Kafka Connect's `AbstractHerder` and `KafkaStatusBackingStore`: `generation` is the
//! worker group's generation when the record is written (0 before the first join), and
//! FAILED and UNASSIGNED are written with `putSafe`: not at all when the latest record of the
//! key, as this worker has read it from the topic, is another worker's of a newer generation
//! (this worker's view is stale: the work has moved). Every other state is written as is.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::producer::FutureRecord;

use crate::cluster::status_log::{topic_status_key, StatusCache};
use crate::kafka::SharedProducer;
use serde::Serialize;
use sluice_sdk::TaskStatusReporter;
use tracing::{debug, info, warn};

/// A connector's or task's state, as Kafka Connect names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    /// Not running yet.
    Unassigned,
    /// Running.
    Running,
    /// Paused by the user.
    Paused,
    /// Stopped by the user (configuration kept, no tasks).
    Stopped,
    /// Failed; see the trace.
    Failed,
    /// Being restarted.
    Restarting,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unassigned => "UNASSIGNED",
            Self::Running => "RUNNING",
            Self::Paused => "PAUSED",
            Self::Stopped => "STOPPED",
            Self::Failed => "FAILED",
            Self::Restarting => "RESTARTING",
        })
    }
}

impl std::str::FromStr for State {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text {
            "UNASSIGNED" => Self::Unassigned,
            "RUNNING" => Self::Running,
            "PAUSED" => Self::Paused,
            "STOPPED" => Self::Stopped,
            "FAILED" => Self::Failed,
            "RESTARTING" => Self::Restarting,
            other => return Err(format!("unknown state {other}")),
        })
    }
}

/// The status of one connector or task.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Current state.
    pub state: State,
    /// Why it failed (FAILED only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// A problem the task is working around while RUNNING (an outage it retries through).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl Status {
    /// A status in `state`, without trace or problem.
    pub fn new(state: State) -> Self {
        Self {
            state,
            trace: None,
            problem: None,
        }
    }
}

#[derive(Debug, Clone)]
struct ConnectorEntry {
    kind: &'static str,
    connector: Status,
    tasks: BTreeMap<u32, Status>,
    /// Per task: time spent in each state, for the running and pause ratios.
    clocks: BTreeMap<u32, StateClock>,
}

/// How long a task has been in the running and paused states since it first had a status.
#[derive(Debug, Clone)]
struct StateClock {
    born: Instant,
    state: State,
    since: Instant,
    running: Duration,
    paused: Duration,
}

impl StateClock {
    fn new(state: State) -> Self {
        let now = Instant::now();
        Self {
            born: now,
            state,
            since: now,
            running: Duration::ZERO,
            paused: Duration::ZERO,
        }
    }

    fn enter(&mut self, state: State) {
        let now = Instant::now();
        let spent = now.duration_since(self.since);
        match self.state {
            State::Running => self.running += spent,
            State::Paused => self.paused += spent,
            _ => {}
        }
        self.state = state;
        self.since = now;
    }

    /// Fractions of its life spent running and paused.
    fn ratios(&self) -> (f64, f64) {
        let now = Instant::now();
        let life = now.duration_since(self.born).as_secs_f64();
        if life <= 0.0 {
            return (0.0, 0.0);
        }
        let current = now.duration_since(self.since);
        let (mut running, mut paused) = (self.running, self.paused);
        match self.state {
            State::Running => running += current,
            State::Paused => paused += current,
            _ => {}
        }
        (running.as_secs_f64() / life, paused.as_secs_f64() / life)
    }
}

/// A connector's status with its tasks', as `/connectors/{name}/status` shows it.
#[derive(Debug, Clone)]
pub struct ConnectorStatusView {
    /// `source` or `sink`.
    pub kind: &'static str,
    /// The connector's own status.
    pub connector: Status,
    /// Each task's status.
    pub tasks: BTreeMap<u32, Status>,
    /// The worker running the connector, when another one than this (from the status topic).
    pub connector_worker: Option<String>,
    /// The workers running tasks, for tasks another worker runs (from the status topic).
    pub task_workers: BTreeMap<u32, String>,
}

/// Per task id: the fractions of its life spent running and paused.
pub type TaskRatios = BTreeMap<u32, (f64, f64)>;

/// Every status of this worker, published to the status topic.
#[derive(Debug)]
pub struct StatusStore {
    worker_id: String,
    topic: String,
    producer: Option<SharedProducer>,
    entries: Mutex<BTreeMap<String, ConnectorEntry>>,
    /// The worker group's current generation; held while a record is enqueued, to keep
    /// them in order.
    generation: Mutex<i32>,
    /// The status topic as read back, for safe writes (`None`: every write is made).
    cache: Option<StatusCache>,
}

/// Whether `state` is written with Kafka Connect's `putSafe` (its `onFailure` and
/// `onShutdown`); every other state is written with `put`.
fn is_safe_write(state: State) -> bool {
    matches!(state, State::Failed | State::Unassigned)
}

/// A status record's value, in Kafka Connect's field order (its `STATUS_SCHEMA_V0` through
/// the JSON converter without schemas: an absent trace is `null`).
#[derive(Serialize)]
struct StatusValue<'a> {
    state: State,
    trace: Option<&'a str>,
    worker_id: &'a str,
    generation: i32,
}

/// An active topic's record value, in Kafka Connect's field order (its
/// `TOPIC_STATUS_SCHEMA_V0` through the JSON converter without schemas).
#[derive(Serialize)]
struct TopicValue<'a> {
    topic: TopicFields<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TopicFields<'a> {
    name: &'a str,
    connector: &'a str,
    task: u32,
    discover_timestamp: u64,
}

/// The value of an active topic's record, byte for byte as Kafka Connect writes it.
fn topic_value(topic: &str, connector: &str, task: u32, discovered_ms: u64) -> String {
    serde_json::to_string(&TopicValue {
        topic: TopicFields {
            name: topic,
            connector,
            task,
            discover_timestamp: discovered_ms,
        },
    })
    .expect("a topic value serializes")
}

/// The value of a status record, byte for byte as Kafka Connect writes it.
fn status_value(state: State, trace: Option<&str>, worker_id: &str, generation: i32) -> String {
    serde_json::to_string(&StatusValue {
        state,
        trace,
        worker_id,
        generation,
    })
    .expect("a status value serializes")
}

impl StatusStore {
    /// A store publishing to `topic` through `producer` (`None`: memory only, for tests).
    pub fn new(
        worker_id: impl Into<String>,
        topic: impl Into<String>,
        producer: Option<SharedProducer>,
    ) -> Self {
        Self {
            worker_id: worker_id.into(),
            topic: topic.into(),
            producer,
            entries: Mutex::new(BTreeMap::new()),
            generation: Mutex::new(0),
            cache: None,
        }
    }

    /// Makes FAILED and UNASSIGNED writes safe ones, checked against `cache` (the status
    /// topic as this worker reads it).
    pub fn with_cache(mut self, cache: Option<StatusCache>) -> Self {
        self.cache = cache;
        self
    }

    /// Sets the worker group's generation that the next records carry: the generation of
    /// the assignment this worker applies.
    pub fn set_generation(&self, generation: i32) {
        *self.generation.lock().expect("status generation lock") = generation;
    }

    /// The generation the next records carry.
    pub fn generation(&self) -> i32 {
        *self.generation.lock().expect("status generation lock")
    }

    /// This worker's id (`host:port` of its REST API).
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Sets the connector's status (creating its entry).
    pub fn set_connector(
        &self,
        name: &str,
        kind: &'static str,
        state: State,
        trace: Option<String>,
    ) {
        {
            let mut entries = self.entries.lock().expect("status lock");
            let entry = entries
                .entry(name.to_string())
                .or_insert_with(|| ConnectorEntry {
                    kind,
                    connector: Status::new(State::Unassigned),
                    tasks: BTreeMap::new(),
                    clocks: BTreeMap::new(),
                });
            entry.kind = kind;
            entry.connector = Status {
                state,
                trace: trace.clone(),
                problem: None,
            };
        }
        info!(connector = name, state = %state, "connector state");
        self.publish(format!("status-connector-{name}"), state, trace);
    }

    /// Sets a task's status.
    pub fn set_task(&self, name: &str, task: u32, state: State, trace: Option<String>) {
        {
            let mut entries = self.entries.lock().expect("status lock");
            if let Some(entry) = entries.get_mut(name) {
                entry.tasks.insert(
                    task,
                    Status {
                        state,
                        trace: trace.clone(),
                        problem: None,
                    },
                );
                entry
                    .clocks
                    .entry(task)
                    .and_modify(|c| c.enter(state))
                    .or_insert_with(|| StateClock::new(state));
            }
        }
        match &trace {
            Some(t) => warn!(connector = name, task, state = %state, trace = %t, "task state"),
            None => info!(connector = name, task, state = %state, "task state"),
        }
        self.publish(format!("status-task-{name}-{task}"), state, trace);
    }

    /// Sets the status of a task of a connector this worker cannot run (its entry made if
    /// needed, without a connector status of its own: the connector may run elsewhere).
    pub fn set_unrunnable_task(&self, name: &str, task: u32, state: State, trace: Option<String>) {
        self.entries
            .lock()
            .expect("status lock")
            .entry(name.to_string())
            .or_insert_with(|| ConnectorEntry {
                kind: "unknown",
                connector: Status::new(State::Unassigned),
                tasks: BTreeMap::new(),
                clocks: BTreeMap::new(),
            });
        self.set_task(name, task, state, trace);
    }

    /// Records (or clears) a problem a running task is working around.
    pub fn set_task_problem(&self, name: &str, task: u32, problem: Option<String>) {
        let mut entries = self.entries.lock().expect("status lock");
        if let Some(status) = entries.get_mut(name).and_then(|e| e.tasks.get_mut(&task)) {
            if status.problem != problem {
                match &problem {
                    Some(p) => {
                        warn!(connector = name, task, problem = %p, "task reports a problem")
                    }
                    None => info!(connector = name, task, "task problem resolved"),
                }
                status.problem = problem;
            }
        }
    }

    /// Drops this worker's tasks numbered `count` and above (after a reconfiguration, or all
    /// of them when the connector is stopped) and tombstones their status records, as Kafka
    /// Connect's `onDeletion(task)` does: a removed task is no longer listed anywhere.
    pub fn retain_tasks(&self, name: &str, count: u32) {
        let dropped: Vec<u32> = {
            let mut entries = self.entries.lock().expect("status lock");
            let Some(entry) = entries.get_mut(name) else {
                return;
            };
            let dropped = entry
                .tasks
                .keys()
                .filter(|id| **id >= count)
                .copied()
                .collect();
            entry.tasks.retain(|id, _| *id < count);
            entry.clocks.retain(|id, _| *id < count);
            dropped
        };
        for id in dropped {
            self.tombstone(format!("status-task-{name}-{id}"));
        }
    }

    /// Records that task `task` of `connector` used `topic` (KIP-558's active topics), unless
    /// the status topic has it already.
    pub fn put_topic(&self, connector: &str, task: u32, topic: &str) {
        if self
            .cache
            .as_ref()
            .is_some_and(|cache| cache.topics(connector).contains(topic))
        {
            return;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let value = topic_value(topic, connector, task, now);
        self.send(topic_status_key(topic, connector), false, move |_, _| {
            Some(value)
        });
    }

    /// Forgets that `connector` used `topic` (its record becomes a tombstone).
    pub fn delete_topic(&self, connector: &str, topic: &str) {
        self.tombstone(topic_status_key(topic, connector));
    }

    /// Forgets a task that now runs on another worker, in memory only: the status topic keeps
    /// what its new owner writes.
    pub fn forget_task(&self, name: &str, task: u32) {
        let mut entries = self.entries.lock().expect("status lock");
        if let Some(entry) = entries.get_mut(name) {
            entry.tasks.remove(&task);
            entry.clocks.remove(&task);
        }
    }

    /// Forgets a deleted connector (and tombstones its status records).
    pub fn remove(&self, name: &str) {
        let removed = self.entries.lock().expect("status lock").remove(name);
        if let Some(entry) = removed {
            self.tombstone(format!("status-connector-{name}"));
            for id in entry.tasks.keys() {
                self.tombstone(format!("status-task-{name}-{id}"));
            }
        }
    }

    /// A connector's status with its tasks'.
    pub fn get(&self, name: &str) -> Option<ConnectorStatusView> {
        let entries = self.entries.lock().expect("status lock");
        entries.get(name).map(|e| ConnectorStatusView {
            kind: e.kind,
            connector: e.connector.clone(),
            tasks: e.tasks.clone(),
            connector_worker: None,
            task_workers: BTreeMap::new(),
        })
    }

    /// Every connector's status, with per task the fractions of its life (since it first had
    /// a status on this worker) spent running and paused.
    pub fn snapshot(&self) -> BTreeMap<String, (ConnectorStatusView, TaskRatios)> {
        let entries = self.entries.lock().expect("status lock");
        entries
            .iter()
            .map(|(name, e)| {
                let view = ConnectorStatusView {
                    kind: e.kind,
                    connector: e.connector.clone(),
                    tasks: e.tasks.clone(),
                    connector_worker: None,
                    task_workers: BTreeMap::new(),
                };
                let ratios = e.clocks.iter().map(|(id, c)| (*id, c.ratios())).collect();
                (name.clone(), (view, ratios))
            })
            .collect()
    }

    fn publish(&self, key: String, state: State, trace: Option<String>) {
        let safe = is_safe_write(state);
        self.send(key, safe, move |generation, worker_id| {
            Some(status_value(state, trace.as_deref(), worker_id, generation))
        });
    }

    fn tombstone(&self, key: String) {
        self.send(key, false, |_, _| None);
    }

    /// Whether a record under `key` is written now: always, unless `safe` and the status
    /// topic's latest record of `key` is another worker's of a newer generation than
    /// `generation` (Kafka Connect's `putSafe`).
    fn admits(&self, key: &str, safe: bool, generation: i32) -> bool {
        !safe
            || self
                .cache
                .as_ref()
                .is_none_or(|cache| cache.can_write_safely(key, &self.worker_id, generation))
    }

    /// Enqueues one status record. The generation is taken, the safe-write check made and
    /// the record handed to the producer under one lock, so records reach the topic in the
    /// order the states changed (a later state never lands before an earlier one, which
    /// compaction would then keep). The delivery is awaited in the background and a failure
    /// logged: status records are informational.
    fn send(&self, key: String, safe: bool, value: impl FnOnce(i32, &str) -> Option<String>) {
        let Some(producer) = self.producer.clone() else {
            return;
        };
        let delivery = {
            let generation = self.generation.lock().expect("status generation lock");
            if !self.admits(&key, safe, *generation) {
                debug!(
                    key,
                    generation = *generation,
                    "not writing a status over a newer owner's"
                );
                return;
            }
            let payload = value(*generation, &self.worker_id);
            let mut record = FutureRecord::<String, String>::to(&self.topic).key(&key);
            if let Some(payload) = payload.as_ref() {
                record = record.payload(payload);
            }
            match producer.send_result(record) {
                Ok(delivery) => delivery,
                Err((e, _)) => {
                    warn!(topic = %self.topic, key, error = %e, "could not publish status");
                    return;
                }
            }
        };
        let topic = self.topic.clone();
        let wait = async move {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => warn!(topic, key, error = %e, "could not publish status"),
                Err(_) => warn!(topic, key, "status record dropped by the producer"),
            }
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(wait);
        }
    }
}

/// The [`TaskStatusReporter`] a task receives: problems go to the status store and the log.
#[derive(Debug, Clone)]
pub struct TaskProblemReporter {
    /// The store.
    pub store: Arc<StatusStore>,
    /// Connector name.
    pub connector: String,
    /// Task id.
    pub task: u32,
}

impl TaskStatusReporter for TaskProblemReporter {
    fn report_problem(&self, problem: Option<String>) {
        self.store
            .set_task_problem(&self.connector, self.task, problem);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values Kafka Connect's `KafkaStatusBackingStore` writes (its `STATUS_SCHEMA_V0`
    /// through the schemaless JSON converter): fields in schema order, an absent trace null.
    #[test]
    fn values_are_written_as_kafka_connect_writes_them() {
        assert_eq!(
            status_value(State::Running, None, "10.0.0.1:8083", 7),
            r#"{"state":"RUNNING","trace":null,"worker_id":"10.0.0.1:8083","generation":7}"#
        );
        assert_eq!(
            status_value(
                State::Failed,
                Some("boom\n\tat \"here\""),
                "10.0.0.1:8083",
                -1
            ),
            r#"{"state":"FAILED","trace":"boom\n\tat \"here\"","worker_id":"10.0.0.1:8083","generation":-1}"#
        );
    }

    /// KIP-558's active topic records, as Kafka Connect's `serializeTopicStatus` writes them.
    #[test]
    fn active_topics_are_written_as_kafka_connect_writes_them() {
        assert_eq!(
            topic_value("orders", "pg-source", 2, 1_700_000_000_123),
            r#"{"topic":{"name":"orders","connector":"pg-source","task":2,"discoverTimestamp":1700000000123}}"#
        );
        assert_eq!(
            topic_status_key("orders", "pg-source"),
            "status-topic-orders:connector-pg-source"
        );
    }

    /// FAILED and UNASSIGNED are Kafka Connect's putSafe writes: skipped over a newer
    /// generation's record of another worker; the other states are always written.
    #[test]
    fn only_failed_and_unassigned_are_safe_writes() {
        let cache = StatusCache::default();
        cache.apply(
            "status-task-conn-0",
            Some(br#"{"state":"RUNNING","trace":null,"worker_id":"new:8083","generation":5}"#),
        );
        let store = StatusStore::new("old:8083", "connect-status", None).with_cache(Some(cache));
        assert_eq!(store.generation(), 0);
        store.set_generation(4);
        assert_eq!(store.generation(), 4);
        let key = "status-task-conn-0";
        for (state, written) in [
            (State::Failed, false),
            (State::Unassigned, false),
            (State::Running, true),
            (State::Paused, true),
            (State::Stopped, true),
            (State::Restarting, true),
        ] {
            assert_eq!(
                store.admits(key, is_safe_write(state), 4),
                written,
                "{state}"
            );
        }
        // The same generation, a newer one, another key: written.
        assert!(store.admits(key, true, 5));
        assert!(store.admits(key, true, 6));
        assert!(store.admits("status-task-conn-1", true, 4));
        // Without a status topic reader, every write is made.
        let alone = StatusStore::new("old:8083", "connect-status", None);
        assert!(alone.admits(key, true, 0));
    }
}
