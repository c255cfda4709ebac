//! Shared helpers: a broker on its own runtime (in this process or in a child process that can
//! be SIGKILLed), topic creation and production with rdkafka, child processes and waiting on
//! conditions with deadlines.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use sluice_broker::{Broker, BrokerConfig};

/// Environment variable naming the role a re-executed test binary plays.
pub(crate) const CHILD_ROLE: &str = "SLUICE_TEST_CHILD_ROLE";

/// A broker running on a runtime of its own, so test bodies can block freely.
pub(crate) struct TestBroker {
    runtime: tokio::runtime::Runtime,
    broker: Option<Broker>,
    pub(crate) bootstrap: String,
}

impl TestBroker {
    pub(crate) fn start(config: BrokerConfig) -> Self {
        // RUST_LOG=sluice_broker=debug shows what the broker did when a test fails.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let broker = runtime.block_on(Broker::start(config)).unwrap();
        let bootstrap = broker.bootstrap_servers();
        Self {
            runtime,
            broker: Some(broker),
            bootstrap,
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(broker) = self.broker.take() {
            let _ = self.runtime.block_on(broker.shutdown());
        }
    }
}

/// A broker config for tests: loopback, free port, `dir` as data dir, groups that settle fast.
pub(crate) fn broker_config(dir: &Path) -> BrokerConfig {
    BrokerConfig {
        group_initial_rebalance_delay_ms: 500,
        group_min_session_timeout_ms: 1_000,
        ..BrokerConfig::new("127.0.0.1:0", dir)
    }
}

pub(crate) fn create_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let mut new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (key, value) in configs {
        new_topic = new_topic.set(key, value);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let results = runtime
        .block_on(admin.create_topics([&new_topic], &AdminOptions::new()))
        .unwrap();
    for result in results {
        result.unwrap();
    }
}

/// Produces `count` records `key-<i>` / `value-<i>` with acks=all and waits for them.
pub(crate) fn produce(bootstrap: &str, topic: &str, range: std::ops::Range<usize>) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for i in range {
        let key = format!("key-{i}");
        let value = format!("value-{i}");
        let mut record = BaseRecord::to(topic).key(&key).payload(&value);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, returned)) => {
                    producer.poll(Duration::from_millis(10));
                    record = returned;
                }
            }
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// Re-runs this test binary as a child playing `role` (see the `child_*` entry points), with
/// `vars` in its environment; its stdout lines arrive on the returned channel.
pub(crate) fn spawn_child(
    role: &str,
    entry: &str,
    vars: &[(&str, &str)],
) -> (Child, mpsc::Receiver<String>) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([entry, "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ROLE, role)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (key, value) in vars {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if std::env::var_os("SLUICE_TEST_ECHO_CHILDREN").is_some() {
                eprintln!("child> {line}");
            }
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    (child, receiver)
}

/// Kills a child with SIGKILL (what `Child::kill` sends on Unix) and reaps it.
pub(crate) fn sigkill(child: &mut Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Polls `check` until it returns `Some`, failing with `what` after `timeout`.
pub(crate) fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Fails with the package to install when a command-line tool is missing.
pub(crate) fn require_tool(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`{tool}` is not installed: install the Debian package `{package}` (scripts/test does)"
    );
}

/// Produces `(key, value)` records in order (a `None` value is a tombstone), each with
/// `timestamp` when given, and waits for them.
pub(crate) fn produce_records(
    bootstrap: &str,
    topic: &str,
    records: &[(String, Option<String>)],
    timestamp: Option<i64>,
) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("max.in.flight.requests.per.connection", "1")
        .create()
        .unwrap();
    for (key, value) in records {
        let mut record = BaseRecord::<String, String>::to(topic).key(key);
        if let Some(value) = value {
            record = record.payload(value);
        }
        if let Some(timestamp) = timestamp {
            record = record.timestamp(timestamp);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, returned)) => {
                    producer.poll(Duration::from_millis(10));
                    record = returned;
                }
            }
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// Reads partition 0 of `topic` from its first offset to its end with a plain consumer (no
/// group): (offset, key, value) of every record.
pub(crate) fn read_all(bootstrap: &str, topic: &str) -> Vec<(i64, String, Option<String>)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Message, Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.auto.commit", "false")
        .set("group.id", "unused-read-all")
        .create()
        .unwrap();
    let (low, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Offset(low))
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut next = low;
    while next < high {
        assert!(
            Instant::now() < deadline,
            "reading {topic} stalled at offset {next} of {high}"
        );
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.unwrap();
            next = message.offset() + 1;
            records.push((
                message.offset(),
                String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
                message
                    .payload()
                    .map(|v| String::from_utf8_lossy(v).into_owned()),
            ));
        }
    }
    records
}
