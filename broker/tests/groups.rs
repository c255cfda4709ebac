//! Consumer groups with real clients: librdkafka consumers in separate processes sharing
//! partitions and surviving a member's SIGKILL, committed offsets surviving a broker SIGKILL,
//! and `kcat -G` in the same group as an rdkafka consumer.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, DefaultConsumerContext, Rebalance,
};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

use crate::common::*;

const SESSION_TIMEOUT_MS: u64 = 6_000;
const HEARTBEAT_MS: &str = "500";

/// Not a test: the entry point through which the tests above re-run this binary as a child
/// process (a consumer, or a broker to SIGKILL). Without the role variable it returns at once.
#[test]
fn child_process_entry() {
    match std::env::var(CHILD_ROLE).as_deref() {
        Ok("consumer") => run_consumer_child(),
        Ok("broker") => run_broker_child(),
        _ => {}
    }
}

/// Prints the consumer's whole assignment after every rebalance, as `assigned <p>,<p>`.
struct PrintAssignment;

impl ClientContext for PrintAssignment {}

impl ConsumerContext for PrintAssignment {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, _rebalance: &Rebalance<'_>) {
        let partitions: Vec<String> = consumer
            .assignment()
            .map(|tpl| {
                tpl.elements()
                    .iter()
                    .map(|e| e.partition().to_string())
                    .collect()
            })
            .unwrap_or_default();
        println!("@@assigned {}", partitions.join(","));
    }
}

/// A consumer that prints `msg <partition> <offset>` for each record it processes and
/// commits the record's offset synchronously after printing it.
fn run_consumer_child() {
    let var = |name: &str| std::env::var(name).unwrap();
    let consumer: BaseConsumer<PrintAssignment> = ClientConfig::new()
        .set("bootstrap.servers", var("BOOTSTRAP"))
        .set("group.id", var("GROUP"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", SESSION_TIMEOUT_MS.to_string())
        .set("heartbeat.interval.ms", HEARTBEAT_MS)
        .set("partition.assignment.strategy", var("STRATEGY"))
        .create_with_context(PrintAssignment)
        .unwrap();
    consumer.subscribe(&[&var("TOPIC")]).unwrap();
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                println!("@@msg {} {}", message.partition(), message.offset());
                if let Err(e) = consumer.commit_message(&message, CommitMode::Sync) {
                    eprintln!("commit failed: {e}");
                }
            }
            Some(Err(e)) => eprintln!("consumer error: {e}"),
            None => {}
        }
    }
}

/// A broker on `DATA_DIR`, printing `bootstrap <host:port>`, running until killed.
fn run_broker_child() {
    let dir = std::env::var("DATA_DIR").unwrap();
    let broker = TestBroker::start(broker_config(std::path::Path::new(&dir)));
    println!("@@bootstrap {}", broker.bootstrap);
    loop {
        std::thread::park();
    }
}

/// Child processes killed (SIGKILL) when the test ends, pass or fail.
#[derive(Default)]
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What one consumer process has said.
#[derive(Default)]
struct Seen {
    assignment: Option<BTreeSet<i32>>,
    records: HashSet<(i32, i64)>,
}

/// Reads every line the consumers have printed so far.
fn drain(outputs: &[Receiver<String>], seen: &mut [Seen]) {
    for (output, seen) in outputs.iter().zip(seen.iter_mut()) {
        while let Ok(line) = output.try_recv() {
            apply_line(&line, seen);
        }
    }
}

/// The part of a child's line after its `@@` marker (the test harness may print its own text
/// before it on the same line).
fn marked(line: &str) -> Option<&str> {
    line.split_once("@@").map(|(_, rest)| rest)
}

fn apply_line(line: &str, seen: &mut Seen) {
    let Some(line) = marked(line) else {
        return;
    };
    if let Some(list) = line.strip_prefix("assigned ") {
        seen.assignment = Some(
            list.split(',')
                .filter(|p| !p.is_empty())
                .map(|p| p.trim().parse().unwrap())
                .collect(),
        );
    } else if let Some(rest) = line.strip_prefix("msg ") {
        let mut parts = rest.split_whitespace();
        let partition = parts.next().unwrap().parse().unwrap();
        let offset = parts.next().unwrap().parse().unwrap();
        seen.records.insert((partition, offset));
    }
}

/// The partitions of the live consumers if each is assigned to exactly one of them and
/// together they cover `0..partitions`.
fn exactly_once_assignment(seen: &[&Seen], partitions: i32) -> Option<BTreeMap<i32, usize>> {
    let mut owner = BTreeMap::new();
    for (i, s) in seen.iter().enumerate() {
        for p in s.assignment.as_ref()? {
            if owner.insert(*p, i).is_some() {
                return None;
            }
        }
    }
    (owner.len() == partitions as usize && owner.keys().copied().eq(0..partitions)).then_some(owner)
}

fn consumer_child(
    bootstrap: &str,
    group: &str,
    topic: &str,
    strategy: &str,
) -> (Child, Receiver<String>) {
    spawn_child(
        "consumer",
        "groups::child_process_entry",
        &[
            ("BOOTSTRAP", bootstrap),
            ("GROUP", group),
            ("TOPIC", topic),
            ("STRATEGY", strategy),
        ],
    )
}

#[test]
fn three_consumer_processes_share_six_partitions_and_take_over_from_a_killed_one() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(broker_config(dir.path()));
    let topic = "rebalance-topic";
    create_topic(&broker.bootstrap, topic, 6, &[]);
    produce(&broker.bootstrap, topic, 0..600);

    let mut children = Children::default();
    let mut outputs = Vec::new();
    for _ in 0..3 {
        let (child, output) =
            consumer_child(&broker.bootstrap, "three", topic, "cooperative-sticky");
        children.0.push(child);
        outputs.push(output);
    }
    let mut seen: Vec<Seen> = (0..3).map(|_| Seen::default()).collect();
    let owners = wait_until(
        "every partition assigned exactly once",
        Duration::from_secs(60),
        || {
            drain(&outputs, &mut seen);
            let all: Vec<&Seen> = seen.iter().collect();
            exactly_once_assignment(&all, 6)
                .filter(|o| o.values().collect::<BTreeSet<_>>().len() == 3)
        },
    );
    println!("assignment of three members: {owners:?}");
    let total = |seen: &[Seen]| {
        seen.iter()
            .flat_map(|s| s.records.iter())
            .collect::<HashSet<_>>()
            .len()
    };
    wait_until(
        "the first 600 records consumed",
        Duration::from_secs(60),
        || {
            drain(&outputs, &mut seen);
            (total(&seen) == 600).then_some(())
        },
    );

    // SIGKILL one member; records keep arriving meanwhile.
    let killed_at = Instant::now();
    sigkill(&mut children.0[0]);
    produce(&broker.bootstrap, topic, 600..1200);
    let takeover = wait_until(
        "the two survivors own all six partitions",
        Duration::from_secs(60),
        || {
            drain(&outputs, &mut seen);
            exactly_once_assignment(&[&seen[1], &seen[2]], 6).map(|_| killed_at.elapsed())
        },
    );
    println!("takeover after SIGKILL: {takeover:?}");
    assert!(
        takeover <= Duration::from_millis(SESSION_TIMEOUT_MS + 4_000),
        "partitions of the killed member taken over in {takeover:?} (session timeout {SESSION_TIMEOUT_MS} ms)"
    );
    wait_until(
        "all 1200 records consumed, none lost",
        Duration::from_secs(60),
        || {
            drain(&outputs, &mut seen);
            (total(&seen) == 1200).then_some(())
        },
    );
}

#[test]
fn committed_offsets_survive_a_broker_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_owned();
    let start_broker = |children: &mut Children| {
        let (child, output) = spawn_child(
            "broker",
            "groups::child_process_entry",
            &[("DATA_DIR", &data_dir)],
        );
        children.0.push(child);
        wait_until(
            "the broker child to print its address",
            Duration::from_secs(30),
            || {
                output
                    .try_recv()
                    .ok()
                    .and_then(|line| marked(&line)?.strip_prefix("bootstrap ").map(str::to_owned))
            },
        )
    };
    let mut children = Children::default();
    let bootstrap = start_broker(&mut children);
    let topic = "durable-offsets";
    create_topic(&bootstrap, topic, 1, &[]);
    produce(&bootstrap, topic, 0..100);

    let consumer_config = |bootstrap: &str| {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "durable")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", SESSION_TIMEOUT_MS.to_string())
            .set("heartbeat.interval.ms", HEARTBEAT_MS);
        config
    };
    {
        let consumer: BaseConsumer<DefaultConsumerContext> =
            consumer_config(&bootstrap).create().unwrap();
        consumer.subscribe(&[topic]).unwrap();
        let mut read = 0;
        wait_until("40 records read", Duration::from_secs(60), || {
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
                assert_eq!(message.offset(), read);
                read += 1;
            }
            (read == 40).then_some(())
        });
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset(topic, 0, Offset::Offset(40))
            .unwrap();
        offsets
            .find_partition(topic, 0)
            .unwrap()
            .set_metadata("processed up to 39");
        consumer.commit(&offsets, CommitMode::Sync).unwrap();
    }

    sigkill(&mut children.0[0]);
    let bootstrap = start_broker(&mut children);

    let consumer: BaseConsumer<DefaultConsumerContext> =
        consumer_config(&bootstrap).create().unwrap();
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition(topic, 0);
    let committed = consumer
        .committed_offsets(wanted, Duration::from_secs(30))
        .unwrap();
    let element = committed.find_partition(topic, 0).unwrap();
    assert_eq!(element.offset(), Offset::Offset(40));
    assert_eq!(element.metadata(), "processed up to 39");
    consumer.subscribe(&[topic]).unwrap();
    let first = wait_until(
        "the first record after the restart",
        Duration::from_secs(60),
        || match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => Some(message.offset()),
            _ => None,
        },
    );
    assert_eq!(first, 40, "the consumer resumes where it committed");
}

#[test]
fn kcat_consumes_as_a_group_member_alongside_an_rdkafka_consumer() {
    require_tool("kcat", "kcat");
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(broker_config(dir.path()));
    let topic = "kcat-topic";
    create_topic(&broker.bootstrap, topic, 4, &[]);
    produce(&broker.bootstrap, topic, 0..200);

    let mut children = Children::default();
    let (rdkafka_child, rdkafka_output) =
        consumer_child(&broker.bootstrap, "mixed", topic, "roundrobin");
    children.0.push(rdkafka_child);
    let mut kcat = Command::new("kcat")
        .args([
            "-u",
            "-b",
            &broker.bootstrap,
            "-G",
            "mixed",
            topic,
            "-f",
            "@@msg %p %o\\n",
            "-X",
            "auto.offset.reset=earliest",
            "-X",
            &format!("session.timeout.ms={SESSION_TIMEOUT_MS}"),
            "-X",
            &format!("heartbeat.interval.ms={HEARTBEAT_MS}"),
            "-X",
            "partition.assignment.strategy=roundrobin",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let kcat_out = lines_of(kcat.stdout.take().unwrap());
    let kcat_err = lines_of(kcat.stderr.take().unwrap());
    children.0.push(kcat);

    let mut rdkafka_seen = Seen::default();
    let mut kcat_seen = Seen::default();
    wait_until(
        "the two members split four partitions",
        Duration::from_secs(60),
        || {
            while let Ok(line) = rdkafka_output.try_recv() {
                apply_line(&line, &mut rdkafka_seen);
            }
            while let Ok(line) = kcat_out.try_recv() {
                apply_line(&line, &mut kcat_seen);
            }
            while let Ok(line) = kcat_err.try_recv() {
                // "% Group mixed rebalanced (memberid ...): assigned: kcat-topic [0], kcat-topic [2]"
                if let Some(list) = line.split("assigned: ").nth(1) {
                    kcat_seen.assignment = Some(
                        list.split(',')
                            .filter_map(|p| {
                                p.split('[')
                                    .nth(1)?
                                    .trim_end_matches(']')
                                    .trim()
                                    .parse()
                                    .ok()
                            })
                            .collect(),
                    );
                } else if line.contains("revoked") {
                    kcat_seen.assignment = None;
                }
            }
            let both = [&rdkafka_seen, &kcat_seen];
            let split = exactly_once_assignment(&both, 4)?;
            let all: HashSet<_> = rdkafka_seen.records.union(&kcat_seen.records).collect();
            (split.values().collect::<BTreeSet<_>>().len() == 2 && all.len() == 200).then_some(())
        },
    );
    assert!(!kcat_seen.records.is_empty() && !rdkafka_seen.records.is_empty());
}

fn lines_of(stream: impl std::io::Read + Send + 'static) -> Receiver<String> {
    use std::io::BufRead;
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if std::env::var_os("SLUICE_TEST_ECHO_CHILDREN").is_some() {
                eprintln!("kcat> {line}");
            }
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}
