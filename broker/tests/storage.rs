//! Storage behaviour seen from a client: segment roll by size and time, ListOffsets by
//! timestamp through the time index, fetch across segments, DeleteRecords.

use std::time::Duration;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;

use crate::protocol::{batch, produce_request};
use crate::support::{RawClient, TestBroker};

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

async fn create(client: &mut RawClient, topic: &str, configs: &[(&str, &str)]) {
    let req = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        create_topics_request::CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.to_string()))
                            .with_value(Some(StrBytes::from_string(v.to_string())))
                    })
                    .collect(),
            ),
    ]);
    assert_eq!(client.send(7, &req).await.topics[0].error_code, 0);
}

fn segment_count(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count()
}

async fn fetch_all(
    client: &mut RawClient,
    topic: &str,
    mut offset: i64,
    end: i64,
) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    while offset < end {
        let req = FetchRequest::default()
            .with_max_wait_ms(100)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(name(topic))
                .with_partitions(vec![fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(700)])]);
        let resp = client.send(12, &req).await;
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 0);
        let mut records = p.records.clone().unwrap();
        for set in RecordBatchDecoder::decode_all(&mut records).unwrap() {
            for r in set.records {
                if r.offset >= offset {
                    out.push((
                        r.offset,
                        String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
                    ));
                }
            }
        }
        offset = out.last().map_or(offset, |(o, _)| o + 1);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_roll_by_size_and_fetch_reads_across_them() {
    let broker = TestBroker::start().await;
    let mut client = RawClient::connect(&broker.addr()).await;
    create(&mut client, "rolling", &[("segment.bytes", "2048")]).await;
    for i in 0..40 {
        let value = format!("record-{i:03}-{}", "p".repeat(100));
        let resp = client
            .send(9, &produce_request("rolling", 0, batch(&[&value])))
            .await;
        assert_eq!(resp.responses[0].partition_responses[0].base_offset, i);
    }
    let dir = broker.dir.path().join("rolling-0");
    assert!(
        segment_count(&dir) >= 3,
        "only {} segments",
        segment_count(&dir)
    );
    assert!(dir.join("00000000000000000000.log").exists());
    assert!(dir.join("00000000000000000000.index").exists());
    assert!(dir.join("00000000000000000000.timeindex").exists());
    let records = fetch_all(&mut client, "rolling", 0, 40).await;
    assert_eq!(records.len(), 40);
    for (i, (offset, value)) in records.iter().enumerate() {
        assert_eq!(*offset, i as i64);
        assert!(value.starts_with(&format!("record-{i:03}-")));
    }
    // Fetching from the middle starts at the right record.
    let middle = fetch_all(&mut client, "rolling", 23, 40).await;
    assert_eq!(middle[0].0, 23);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_roll_by_time() {
    let broker = TestBroker::start().await;
    let mut client = RawClient::connect(&broker.addr()).await;
    create(&mut client, "aging", &[("segment.ms", "1")]).await;
    let dir = broker.dir.path().join("aging-0");
    // The batch timestamps in `batch()` are from 2023, so every segment is older than 1 ms.
    for i in 0..3 {
        let resp = client
            .send(9, &produce_request("aging", 0, batch(&["x"])))
            .await;
        assert_eq!(resp.responses[0].partition_responses[0].base_offset, i);
    }
    assert_eq!(segment_count(&dir), 3);
    assert!(dir.join("00000000000000000002.log").exists());
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_by_timestamp_uses_the_time_index() {
    let broker = TestBroker::start_with(|c| c.log_index_interval_bytes = 128).await;
    let mut client = RawClient::connect(&broker.addr()).await;
    create(&mut client, "timed", &[("segment.bytes", "4096")]).await;
    // 30 batches of 4 records; batch b's records have timestamps base + 1000*b + i.
    for b in 0..30i64 {
        let records: Vec<kafka_protocol::records::Record> = (0..4)
            .map(|i| kafka_protocol::records::Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: kafka_protocol::records::TimestampType::Creation,
                offset: i,
                sequence: i as i32 - 1,
                timestamp: 1_000_000 + 1000 * b + i,
                key: None,
                value: Some(bytes::Bytes::from(vec![b as u8; 40])),
                headers: Default::default(),
            })
            .collect();
        let mut buf = bytes::BytesMut::new();
        kafka_protocol::records::RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &kafka_protocol::records::RecordEncodeOptions {
                version: 2,
                compression: kafka_protocol::records::Compression::Lz4,
            },
        )
        .unwrap();
        client
            .send(9, &produce_request("timed", 0, buf.freeze()))
            .await;
    }
    let lookup = |ts: i64| {
        ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                .with_name(name("timed"))
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(ts),
                ])])
    };
    for (ts, offset) in [
        (0, 0),
        (1_000_000, 0),
        (1_000_002, 2),
        (1_017_001, 69),
        (1_017_004, 72),
        (1_029_003, 119),
    ] {
        let resp = client.send(8, &lookup(ts)).await;
        let p = &resp.topics[0].partitions[0];
        assert_eq!(p.error_code, 0);
        assert_eq!(p.offset, offset, "timestamp {ts}");
        assert!(p.timestamp >= ts);
    }
    let resp = client.send(8, &lookup(2_000_000)).await;
    assert_eq!(
        resp.topics[0].partitions[0].offset, -1,
        "after the last record: none"
    );
    let resp = client.send(8, &lookup(-3)).await;
    assert_eq!(
        resp.topics[0].partitions[0].timestamp, 1_029_003,
        "max timestamp"
    );
    assert!(segment_count(&broker.dir.path().join("timed-0")) >= 2);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_long_polls_until_data_arrives() {
    let broker = TestBroker::start().await;
    let addr = broker.addr();
    let mut client = RawClient::connect(&addr).await;
    create(&mut client, "poll", &[]).await;
    let waiter = tokio::spawn(async move {
        let req = FetchRequest::default()
            .with_max_wait_ms(20_000)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(name("poll"))
                .with_partitions(vec![fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20)])]);
        let started = std::time::Instant::now();
        let resp = client.send(12, &req).await;
        (
            resp.responses[0].partitions[0]
                .records
                .clone()
                .unwrap()
                .len(),
            started.elapsed(),
        )
    });
    // Whether the produce lands before or after the fetch is parked, the fetch must come
    // back with data long before its 20 s deadline.
    let mut producer = RawClient::connect(&addr).await;
    producer
        .send(9, &produce_request("poll", 0, batch(&["wake up"])))
        .await;
    let (bytes, elapsed) = waiter.await.unwrap();
    assert!(bytes > 0, "the long poll returned no data");
    assert!(
        elapsed < Duration::from_secs(15),
        "the long poll was not woken by the append"
    );
    broker.stop().await;
}
