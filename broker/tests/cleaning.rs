//! Log cleaning with real clients: compaction leaves the newest value per live key, retention
//! moves the log start offset.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use crate::common::*;

fn cleaning_broker(dir: &std::path::Path) -> TestBroker {
    TestBroker::start(sluice_broker::BrokerConfig {
        log_cleaner_backoff_ms: 100,
        log_retention_check_interval_ms: 100,
        ..broker_config(dir)
    })
}

#[test]
fn compaction_keeps_exactly_the_newest_value_of_each_live_key() {
    let dir = tempfile::tempdir().unwrap();
    let broker = cleaning_broker(dir.path());
    let topic = "compacted";
    create_topic(
        &broker.bootstrap,
        topic,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "1024"),
            ("delete.retention.ms", "0"),
        ],
    );
    let mut records = Vec::new();
    for round in 0..10 {
        for key in 0..50 {
            records.push((format!("key-{key}"), Some(format!("value-{key}-{round}"))));
        }
    }
    for key in 0..10 {
        records.push((format!("key-{key}"), None));
    }
    // Fresh keys after the tombstones push them out of the active segment.
    for filler in 0..50 {
        records.push((format!("filler-{filler}"), Some("x".repeat(40))));
    }
    // Fifty records per request: each lands as its own batch, and segments roll between them.
    for chunk in records.chunks(50) {
        produce_records(&broker.bootstrap, topic, chunk, None);
    }

    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    for (key, value) in &records {
        match value {
            Some(value) => expected.insert(key.clone(), value.clone()),
            None => expected.remove(key),
        };
    }
    let mut last = Vec::new();
    wait_until(
        "the compacted log to hold one record per live key",
        Duration::from_secs(60),
        || {
            last = read_all(&broker.bootstrap, topic);
            let read: BTreeMap<String, String> = last
                .iter()
                .filter_map(|(_, key, value)| Some((key.clone(), value.clone()?)))
                .collect();
            (last.len() == expected.len() && read == expected).then_some(())
        },
    );
    assert!(
        last.iter().all(|(_, _, value)| value.is_some()),
        "tombstones are gone"
    );
    let offsets: Vec<i64> = last.iter().map(|r| r.0).collect();
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "offsets keep their order"
    );
    assert_eq!(
        *offsets.last().unwrap(),
        records.len() as i64 - 1,
        "offsets are kept, not renumbered"
    );
}

#[test]
fn retention_deletes_old_segments_and_moves_the_log_start_offset() {
    let dir = tempfile::tempdir().unwrap();
    let broker = cleaning_broker(dir.path());
    let topic = "retained";
    create_topic(
        &broker.bootstrap,
        topic,
        1,
        &[("retention.ms", "60000"), ("segment.bytes", "1024")],
    );
    let an_hour_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 3_600_000;
    let old: Vec<_> = (0..100)
        .map(|i| (format!("old-{i}"), Some("o".repeat(40))))
        .collect();
    let new: Vec<_> = (0..20)
        .map(|i| (format!("new-{i}"), Some("n".repeat(40))))
        .collect();
    produce_records(&broker.bootstrap, topic, &old, Some(an_hour_ago));
    produce_records(&broker.bootstrap, topic, &new, None);

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("group.id", "retention-reader")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "error")
        .create()
        .unwrap();
    let low = wait_until(
        "the log start offset to move",
        Duration::from_secs(60),
        || {
            let (low, _) = consumer
                .fetch_watermarks(topic, 0, Duration::from_secs(5))
                .ok()?;
            (low > 0).then_some(low)
        },
    );
    assert!(
        low <= 100,
        "records newer than retention.ms stay (log start {low})"
    );

    // A consumer reading from the beginning starts at the new log start offset.
    let records = read_all(&broker.bootstrap, topic);
    assert_eq!(records.first().unwrap().0, low);
    assert_eq!(records.len() as i64, 120 - low);
    assert!(records
        .iter()
        .rev()
        .take(20)
        .all(|(_, key, _)| key.starts_with("new-")));

    // A fetch below the log start offset is out of range.
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Offset(0))
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let error = wait_until(
        "an out-of-range error",
        Duration::from_secs(30),
        || match consumer.poll(Duration::from_millis(100)) {
            Some(Err(error)) => Some(error),
            _ => None,
        },
    );
    assert!(
        matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset)
        ),
        "{error:?}"
    );
}

/// Key map of the multi-pass tests: 128 KiB holds 4,915 keys a pass (24 bytes a key, load
/// factor 0.9), a tenth of the keys written.
const SMALL_DEDUPE_BUFFER: u64 = 128 * 1024;
const KEYS: usize = 50_000;
const VERSIONS: usize = 3;
const SEGMENT_BYTES: &str = "131072";

/// `KEYS` keys written `VERSIONS` times, every tenth key deleted in the last version, then
/// fresh keys with 1-KiB values that push the last version out of the active segment.
fn versioned_records() -> Vec<(String, Option<String>)> {
    let mut records = Vec::with_capacity(KEYS * VERSIONS + 200);
    for version in 0..VERSIONS {
        for key in 0..KEYS {
            let value =
                (version + 1 < VERSIONS || key % 10 != 0).then(|| format!("value-{key}-{version}"));
            records.push((format!("key-{key}"), value));
        }
    }
    for filler in 0..200 {
        records.push((format!("filler-{filler}"), Some("f".repeat(1024))));
    }
    records
}

/// Produces `records` in order (idempotent producer: offsets are the records' indexes).
/// Not `common::produce_records`: with one request in flight and no linger these 150,000
/// records land in small batches, and the multi-pass clean then takes over 300 s.
fn produce_in_order(bootstrap: &str, topic: &str, records: &[(String, Option<String>)]) {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for (key, value) in records {
        let mut record = BaseRecord::<String, String>::to(topic).key(key);
        if let Some(value) = value {
            record = record.payload(value);
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
    producer.flush(Duration::from_secs(60)).unwrap();
}

fn create_small_segment_topic(bootstrap: &str, topic: &str) {
    create_topic(
        bootstrap,
        topic,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", SEGMENT_BYTES),
            ("delete.retention.ms", "0"),
        ],
    );
}

type Log = Vec<(i64, String, Option<String>)>;

/// What a compacted log holds: the newest record of each key whose newest value is not a
/// tombstone, at its offset, in offset order.
fn compacted(records: &[(String, Option<String>)]) -> Log {
    let mut newest: BTreeMap<&str, usize> = BTreeMap::new();
    for (offset, (key, _)) in records.iter().enumerate() {
        newest.insert(key, offset);
    }
    records
        .iter()
        .enumerate()
        .filter(|(offset, (key, value))| newest[key.as_str()] == *offset && value.is_some())
        .map(|(offset, (key, value))| (offset as i64, key.clone(), value.clone()))
        .collect()
}

/// Nothing the cleaner may not drop is gone from `log`: the newest value of every key is
/// there at its offset, and no deleted key shows an older value.
fn assert_nothing_lost(records: &[(String, Option<String>)], log: &Log) {
    let mut newest: BTreeMap<&str, usize> = BTreeMap::new();
    for (offset, (key, _)) in records.iter().enumerate() {
        newest.insert(key, offset);
    }
    let present: std::collections::HashSet<&(i64, String, Option<String>)> = log.iter().collect();
    for (key, offset) in &newest {
        let value = &records[*offset].1;
        if value.is_some() {
            let record = (*offset as i64, key.to_string(), value.clone());
            assert!(present.contains(&record), "lost {record:?}");
        }
    }
    for (offset, key, value) in log {
        let newest = newest[key.as_str()];
        assert_eq!(
            records[*offset as usize],
            (key.clone(), value.clone()),
            "record at {offset} changed"
        );
        // A deleted key may keep older records only while its tombstone is there.
        if records[newest].1.is_none() {
            let tombstone = (newest as i64, key.clone(), None);
            assert!(
                present.contains(&tombstone),
                "deleted key {key} came back (offset {offset})"
            );
        }
    }
}

/// Reads the whole log every second until it is `expected`, for up to `timeout`.
fn wait_for_log(bootstrap: &str, topic: &str, expected: &Log, timeout: Duration) {
    let mut last = Vec::new();
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        last = read_all(bootstrap, topic);
        if &last == expected {
            return;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!(
        "after {timeout:?} the log holds {} records, {} expected",
        last.len(),
        expected.len()
    );
}

#[test]
fn compaction_with_ten_times_more_keys_than_the_key_map_holds_keeps_the_newest_of_each() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(sluice_broker::BrokerConfig {
        log_cleaner_backoff_ms: 100,
        log_cleaner_dedupe_buffer_size: SMALL_DEDUPE_BUFFER,
        ..broker_config(dir.path())
    });
    let topic = "many-keys";
    create_small_segment_topic(&broker.bootstrap, topic);
    let records = versioned_records();
    produce_in_order(&broker.bootstrap, topic, &records);
    let expected = compacted(&records);
    assert_eq!(expected.len(), KEYS - KEYS / 10 + 200);
    wait_for_log(
        &broker.bootstrap,
        topic,
        &expected,
        Duration::from_secs(300),
    );
}

/// The role under which the SIGKILL test re-runs itself as a broker process.
const CLEANING_BROKER_ROLE: &str = "cleaning-broker";
const SIGKILL_TEST: &str =
    "cleaning::a_sigkill_during_a_multi_pass_clean_loses_nothing_and_the_next_clean_finishes";

/// A broker on `DATA_DIR` with the small key map, its cleaner on when `CLEANER` is `on`,
/// printing `@@bootstrap <host:port>` and running until killed.
fn run_cleaning_broker_child() {
    let dir = std::env::var("DATA_DIR").unwrap();
    let broker = TestBroker::start(sluice_broker::BrokerConfig {
        log_cleaner_enable: std::env::var("CLEANER").as_deref() == Ok("on"),
        log_cleaner_backoff_ms: 100,
        log_cleaner_dedupe_buffer_size: SMALL_DEDUPE_BUFFER,
        ..broker_config(std::path::Path::new(&dir))
    });
    println!("@@bootstrap {}", broker.bootstrap);
    loop {
        std::thread::park();
    }
}

/// A child process, SIGKILLed when dropped (when the test fails, too).
struct BrokerChild(std::process::Child);

impl Drop for BrokerChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a broker child on `dir` and returns it with its bootstrap address.
fn start_broker_child(dir: &std::path::Path, cleaner: bool) -> (BrokerChild, String) {
    let (mut child, output) = spawn_child(
        CLEANING_BROKER_ROLE,
        SIGKILL_TEST,
        &[
            ("DATA_DIR", dir.to_str().unwrap()),
            ("CLEANER", if cleaner { "on" } else { "off" }),
        ],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let bootstrap = loop {
        let line = match output
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
        {
            Ok(line) => line,
            Err(error) => {
                let _ = child.kill();
                panic!("the broker child did not start: {error}");
            }
        };
        if let Some((_, address)) = line.split_once("@@bootstrap ") {
            break address.trim().to_owned();
        }
    };
    (BrokerChild(child), bootstrap)
}

/// `.cleaned` files in the partition directory right now.
fn cleaned_files(partition_dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(partition_dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".cleaned"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_sigkill_during_a_multi_pass_clean_loses_nothing_and_the_next_clean_finishes() {
    if std::env::var(CHILD_ROLE).as_deref() == Ok(CLEANING_BROKER_ROLE) {
        run_cleaning_broker_child();
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let topic = "killed-mid-clean";
    let records = versioned_records();
    let expected = compacted(&records);

    // Fill the log with the cleaner off, so that the whole log waits for one round.
    let (mut child, bootstrap) = start_broker_child(dir.path(), false);
    create_small_segment_topic(&bootstrap, topic);
    produce_in_order(&bootstrap, topic, &records);
    sigkill(&mut child.0);

    // Start it with the cleaner on; kill it once it has rewritten a few segments (the first
    // round of this log takes some 30 passes of 4,915 keys).
    let (mut child, _) = start_broker_child(dir.path(), true);
    let partition_dir = dir.path().join(format!("{topic}-0"));
    let mut seen = std::collections::BTreeSet::new();
    wait_until(
        "the cleaner to write five cleaned segments",
        Duration::from_secs(120),
        || {
            seen.extend(cleaned_files(&partition_dir));
            (seen.len() >= 5).then_some(())
        },
    );
    sigkill(&mut child.0);

    // Without a cleaner: the log is part way through its clean and nothing is lost.
    let (mut child, bootstrap) = start_broker_child(dir.path(), false);
    let log = read_all(&bootstrap, topic);
    assert!(
        log.len() < records.len() && log.len() > expected.len(),
        "killed part way through the clean: {} records of {} ({} once clean)",
        log.len(),
        records.len(),
        expected.len()
    );
    assert_nothing_lost(&records, &log);
    sigkill(&mut child.0);

    // With the cleaner: the next round, from the log start, finishes the job.
    let (mut child, bootstrap) = start_broker_child(dir.path(), true);
    wait_for_log(&bootstrap, topic, &expected, Duration::from_secs(300));
    sigkill(&mut child.0);
}
