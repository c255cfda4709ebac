//! The group's statuses, read back from the status topic (Kafka Connect's
//! `KafkaStatusBackingStore` read side): every worker follows `connect-status` from its
//! beginning, so `GET /connectors/{c}/status` on any worker shows the connector and each task
//! with the state and `worker_id` their owner last wrote, wherever they run.
//!
//! Records: key `status-connector-<c>` or `status-task-<c>-<n>`, value
//! `{"state":..,"trace":..,"worker_id":..,"generation":..}`, a tombstone when the connector is
//! deleted. The latest record of a key wins (one key always lands on one partition, so the
//! topic orders its records); what a worker runs itself it shows from its own, fresher view.

use std::collections::BTreeMap;
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
}

#[derive(Debug, Default)]
struct Statuses {
    connectors: BTreeMap<String, StatusRecord>,
    tasks: BTreeMap<String, BTreeMap<u32, StatusRecord>>,
}

impl Statuses {
    fn apply(&mut self, key: &str, value: Option<&[u8]>) {
        let record = match value.map(serde_json::from_slice::<StatusRecord>) {
            None => None,
            Some(Ok(record)) => Some(record),
            Some(Err(e)) => {
                debug!(key, error = %e, "skipping a status record that is not a connector or task status");
                return;
            }
        };
        if let Some(connector) = key.strip_prefix("status-connector-") {
            match record {
                Some(r) => {
                    self.connectors.insert(connector.to_string(), r);
                }
                None => {
                    self.connectors.remove(connector);
                }
            }
        } else if let Some((connector, task)) = key
            .strip_prefix("status-task-")
            .and_then(|rest| rest.rsplit_once('-'))
            .and_then(|(c, t)| t.parse::<u32>().ok().map(|t| (c, t)))
        {
            let tasks = self.tasks.entry(connector.to_string()).or_default();
            match record {
                Some(r) => {
                    tasks.insert(task, r);
                }
                None => {
                    tasks.remove(&task);
                }
            }
            if tasks.is_empty() {
                self.tasks.remove(connector);
            }
        }
    }
}

/// A follower of the status topic.
#[derive(Debug)]
pub struct StatusLog {
    statuses: Arc<Mutex<Statuses>>,
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
        let statuses = Arc::new(Mutex::new(Statuses::default()));
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
        let statuses = self.statuses.lock().expect("status log lock");
        (
            statuses.connectors.get(connector).cloned(),
            statuses.tasks.get(connector).cloned().unwrap_or_default(),
        )
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

fn follow(topic: &str, consumer: &BaseConsumer, statuses: &Mutex<Statuses>, stop: &AtomicBool) {
    let mut failing = false;
    while !stop.load(Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                failing = false;
                let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                    continue;
                };
                statuses
                    .lock()
                    .expect("status log lock")
                    .apply(key, m.payload());
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

    #[test]
    fn the_latest_record_of_each_key_wins_and_tombstones_remove() {
        let mut s = Statuses::default();
        let rec = |state: &str, worker: &str| {
            format!(r#"{{"state":"{state}","trace":null,"worker_id":"{worker}","generation":3}}"#)
        };
        s.apply(
            "status-connector-my-conn",
            Some(rec("RUNNING", "w1:8083").as_bytes()),
        );
        s.apply(
            "status-task-my-conn-0",
            Some(rec("RUNNING", "w1:8083").as_bytes()),
        );
        s.apply(
            "status-task-my-conn-1",
            Some(rec("RUNNING", "w2:8083").as_bytes()),
        );
        s.apply(
            "status-task-my-conn-1",
            Some(rec("FAILED", "w3:8083").as_bytes()),
        );
        s.apply(
            "status-topic-orders:connector-my-conn",
            Some(b"{\"topic\":{}}"),
        );
        assert_eq!(s.connectors["my-conn"].worker_id, "w1:8083");
        assert_eq!(s.tasks["my-conn"][&1].state, "FAILED");
        assert_eq!(s.tasks["my-conn"][&1].worker_id, "w3:8083");
        s.apply("status-task-my-conn-0", None);
        s.apply("status-task-my-conn-1", None);
        s.apply("status-connector-my-conn", None);
        assert!(s.connectors.is_empty() && s.tasks.is_empty());
    }
}
