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
