//! A `sluice worker` process for end-to-end tests: its own directory (configs/, data/), free
//! ports for the embedded broker and the REST API, SIGKILL and restart on the same data,
//! and a Kafka consumer (librdkafka) to read what arrived.
#![allow(unreachable_pub, dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::Message;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A worker process (restartable on the same directory and ports).
#[derive(Debug)]
pub struct Worker {
    dir: PathBuf,
    broker_port: u16,
    rest_port: u16,
    child: Option<Child>,
    starts: usize,
}

impl Worker {
    /// A worker rooted at `dir` (created), not started yet.
    pub fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir.join("configs")).expect("configs dir");
        std::fs::create_dir_all(dir.join("data")).expect("data dir");
        Self {
            dir: dir.to_path_buf(),
            broker_port: free_port(),
            rest_port: free_port(),
            child: None,
            starts: 0,
        }
    }

    /// `host:port` of the embedded broker.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.broker_port)
    }

    /// Writes connector JSON `name.json` into the watched configs folder.
    pub fn put_connector(&self, name: &str, config: &serde_json::Value) {
        let body = serde_json::json!({"name": name, "config": config});
        let tmp = self.dir.join(format!("{name}.json.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(&body).unwrap()).unwrap();
        std::fs::rename(&tmp, self.dir.join("configs").join(format!("{name}.json"))).unwrap();
    }

    /// Starts the worker and waits until its REST API answers.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "worker already running");
        self.starts += 1;
        let log = std::fs::File::create(self.dir.join(format!("worker-{}.log", self.starts)))
            .expect("worker log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
        // The worker rejects SLUICE_* variables it does not know; pass only ours.
        for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("SLUICE_")) {
            command.env_remove(name);
        }
        let child = command
            .arg("worker")
            .current_dir(&self.dir)
            .env("SLUICE_BROKER_LISTEN", self.bootstrap())
            .env("SLUICE_REST_PORT", self.rest_port.to_string())
            .env("SLUICE_DATA_DIR", self.dir.join("data"))
            .env("SLUICE_CONFIG_DIR", self.dir.join("configs"))
            .env("SLUICE_OFFSET_FLUSH_INTERVAL_MS", "200")
            .env("SLUICE_SCHEMA_REGISTRY_LISTEN", "")
            // SLUICE_LOG is rejected as an unknown worker setting (runtime bug), so RUST_LOG.
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start sluice worker");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.rest_port)).is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("worker exited with {status}: {}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "worker REST API not up: {}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the worker with SIGKILL (no chance to flush or commit) and reaps it.
    pub fn sigkill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL the worker");
            child.wait().expect("reap the worker");
        }
    }

    /// Every log the worker wrote, for failure messages.
    pub fn logs(&self) -> String {
        (1..=self.starts)
            .map(|i| {
                std::fs::read_to_string(self.dir.join(format!("worker-{i}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n----- restart -----\n")
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.sigkill();
    }
}

/// Reads a topic from the beginning through librdkafka.
pub struct TopicReader {
    consumer: BaseConsumer,
    /// How many times each row id arrived.
    pub ids: BTreeMap<i64, usize>,
    /// Messages read.
    pub messages: usize,
}

impl std::fmt::Debug for TopicReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicReader")
            .field("messages", &self.messages)
            .finish()
    }
}

impl TopicReader {
    /// A reader of `topic` on `bootstrap`.
    pub fn new(bootstrap: &str, topic: &str) -> Self {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", format!("test-reader-{}", std::process::id()))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("topic.metadata.refresh.interval.ms", "500")
            .create()
            .expect("consumer");
        // Assigned, not subscribed: the test reads partition 0 (the connector's topics have
        // one) without depending on the group protocol.
        let mut assignment = rdkafka::TopicPartitionList::new();
        assignment
            .add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
            .expect("partition 0");
        consumer.assign(&assignment).expect("assign");
        Self {
            consumer,
            ids: BTreeMap::new(),
            messages: 0,
        }
    }

    /// Reads until `done(self)` holds, failing after `limit` with `what`.
    pub fn read_until(&mut self, limit: Duration, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + limit;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {} messages, {} distinct ids",
                self.messages,
                self.ids.len()
            );
            if let Some(message) = self.consumer.poll(Duration::from_millis(200)) {
                // The topic may not exist yet, and the broker is gone while the worker is
                // down: such errors carry no data, so reading just goes on.
                let Ok(message) = message else { continue };
                let value: serde_json::Value =
                    serde_json::from_slice(message.payload().expect("a value")).expect("JSON");
                let row = value.get("payload").unwrap_or(&value);
                let id = row["id"].as_i64().expect("an id");
                *self.ids.entry(id).or_default() += 1;
                self.messages += 1;
            }
        }
    }

    /// Ids in `1..=n` that never arrived.
    pub fn missing(&self, n: i64) -> Vec<i64> {
        (1..=n).filter(|id| !self.ids.contains_key(id)).collect()
    }
}
