//! Measures what docs/broker.md reports for consumer groups and compaction:
//!
//! - rebalance time of a 3-member librdkafka group over a 6-partition topic, after a member
//!   is SIGKILLed (the survivors own every partition) and after a member joins (all three
//!   own their share), with `session.timeout.ms=6000` and `heartbeat.interval.ms=500`;
//! - compaction throughput: MB of log read per second by one cleaner pass over a partition of
//!   keyed records with many overwrites.
//!
//! `cargo bench -p sluice-broker --bench groups` (members run as child processes of this
//! binary, started with `--consumer-child`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientContext;
use sluice_broker::{Broker, BrokerConfig};

const ROUNDS: usize = 3;
const TOPIC: &str = "bench-rebalance";

struct PrintAssignment;
impl ClientContext for PrintAssignment {}
impl ConsumerContext for PrintAssignment {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, _: &Rebalance<'_>) {
        let partitions: Vec<String> = consumer
            .assignment()
            .map(|t| {
                t.elements()
                    .iter()
                    .map(|e| e.partition().to_string())
                    .collect()
            })
            .unwrap_or_default();
        println!("@@assigned {}", partitions.join(","));
    }
}

fn consumer_child(bootstrap: &str, group: &str) {
    let consumer: BaseConsumer<PrintAssignment> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("enable.auto.commit", "false")
        .create_with_context(PrintAssignment)
        .unwrap();
    consumer.subscribe(&[TOPIC]).unwrap();
    loop {
        let _ = consumer.poll(Duration::from_millis(100));
    }
}

struct Member {
    child: Child,
    lines: Receiver<String>,
    assignment: Option<BTreeSet<i32>>,
}

impl Member {
    fn start(bootstrap: &str, group: &str) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--consumer-child", bootstrap, group])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            assignment: None,
        }
    }

    fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            if let Some(list) = line.strip_prefix("@@assigned ") {
                self.assignment = Some(
                    list.split(',')
                        .filter(|p| !p.is_empty())
                        .map(|p| p.parse().unwrap())
                        .collect(),
                );
            }
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the members own the six partitions exactly once, each at least one.
fn wait_settled(members: &mut [Member]) -> Duration {
    let start = Instant::now();
    loop {
        let mut owner = BTreeMap::new();
        let mut ok = true;
        for (i, member) in members.iter_mut().enumerate() {
            member.drain();
            match &member.assignment {
                Some(a) if !a.is_empty() => {
                    for p in a {
                        ok &= owner.insert(*p, i).is_none();
                    }
                }
                _ => ok = false,
            }
        }
        if ok && owner.keys().copied().eq(0..6) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the group never settled"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn bench_rebalance(runtime: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let broker = runtime
        .block_on(Broker::start(BrokerConfig {
            group_initial_rebalance_delay_ms: 0,
            ..BrokerConfig::new("127.0.0.1:0", dir.path())
        }))
        .unwrap();
    let bootstrap = broker.bootstrap_servers();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    runtime
        .block_on(admin.create_topics(
            [&NewTopic::new(TOPIC, 6, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ))
        .unwrap();
    let mut killed = Vec::new();
    let mut joined = Vec::new();
    for round in 0..ROUNDS {
        let group = format!("bench-{round}");
        let mut members: Vec<Member> = (0..3).map(|_| Member::start(&bootstrap, &group)).collect();
        wait_settled(&mut members);
        // A member is SIGKILLed: the others own everything once the session timeout evicts it.
        let start = Instant::now();
        let mut victim = members.remove(0);
        victim.child.kill().unwrap();
        victim.child.wait().unwrap();
        for m in &mut members {
            m.assignment = None;
        }
        wait_settled(&mut members);
        killed.push(start.elapsed());
        // A member joins: all three own their share.
        let start = Instant::now();
        members.push(Member::start(&bootstrap, &group));
        for m in &mut members {
            m.drain();
        }
        let before: Vec<_> = members.iter().map(|m| m.assignment.clone()).collect();
        loop {
            wait_settled(&mut members);
            let after: Vec<_> = members.iter().map(|m| m.assignment.clone()).collect();
            if after != before {
                break;
            }
        }
        joined.push(start.elapsed());
    }
    println!(
        "rebalance after a member is SIGKILLed (session.timeout.ms=6000): median {:?} of {:?}",
        median(killed.clone()),
        killed
    );
    println!(
        "rebalance after a member joins (process start included): median {:?} of {:?}",
        median(joined.clone()),
        joined
    );
    runtime.block_on(broker.shutdown()).unwrap();
}

fn bench_compaction(runtime: &tokio::runtime::Runtime) {
    const RECORDS: usize = 400_000;
    const KEYS: usize = 200_000;
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig {
        log_cleaner_enable: false,
        ..BrokerConfig::new("127.0.0.1:0", dir.path())
    };
    let broker = runtime.block_on(Broker::start(config.clone())).unwrap();
    let bootstrap = broker.bootstrap_servers();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    runtime
        .block_on(
            admin.create_topics(
                [
                    &NewTopic::new("bench-compact", 1, TopicReplication::Fixed(1))
                        .set("cleanup.policy", "compact")
                        .set("segment.bytes", &(8 * 1024 * 1024).to_string()),
                ],
                &AdminOptions::new(),
            ),
        )
        .unwrap();
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "20")
        .set("batch.size", "262144")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let value = "v".repeat(100);
    for i in 0..RECORDS {
        let key = format!("key-{:08}", i % KEYS);
        let mut record = BaseRecord::<String, String>::to("bench-compact")
            .key(&key)
            .payload(&value);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    producer.poll(Duration::from_millis(5));
                    record = back;
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120)).unwrap();
    drop(producer);
    runtime.block_on(broker.shutdown()).unwrap();
    let (read, before, after, took) =
        sluice_broker::bench_support::compact_partition(config, "bench-compact", 0).unwrap();
    println!(
        "compaction: {:.1} MB read, {:.1} MB of sealed segments rewritten to {:.2} MB in {:?}: {:.1} MB/s",
        read as f64 / 1e6,
        before as f64 / 1e6,
        after as f64 / 1e6,
        took,
        read as f64 / 1e6 / took.as_secs_f64()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--consumer-child") {
        consumer_child(&args[2], &args[3]);
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let only = args.iter().skip(1).find(|a| !a.starts_with('-')).cloned();
    if only.as_deref().is_none_or(|o| "rebalance".contains(o)) {
        bench_rebalance(&runtime);
    }
    if only.as_deref().is_none_or(|o| "compaction".contains(o)) {
        bench_compaction(&runtime);
    }
}
