//! librdkafka (rdkafka) producer -> broker -> consumer round trips.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};

use crate::support::{consume, producer, TestBroker};

pub async fn create_topic(addr: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .create()
        .unwrap();
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let result = admin
        .create_topics(
            &[topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap();
    result[0].as_ref().unwrap();
}

async fn send(producer: &FutureProducer, record: FutureRecord<'_, str, [u8]>) -> (i32, i64) {
    producer
        .send(record, Duration::from_secs(30))
        .await
        .map(|d| (d.partition, d.offset))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_headers_and_null_values_survive() {
    let broker = TestBroker::start().await;
    let addr = broker.addr();
    create_topic(&addr, "basics", 1, &[]).await;
    let producer = producer(&addr, &[]);
    for i in 0..50 {
        let key = format!("key-{i}");
        let value = format!("value-{i}").into_bytes();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "trace",
                value: Some(format!("t{i}").as_bytes()),
            })
            .insert(Header {
                key: "empty",
                value: None::<&[u8]>,
            });
        let mut record = FutureRecord::to("basics")
            .key(key.as_str())
            .headers(headers);
        if i % 10 != 0 {
            record = record.payload(value.as_slice());
        }
        let (_, offset) = send(&producer, record).await;
        assert_eq!(offset, i);
    }
    let messages = consume(&addr, "basics", &[0], 50).await;
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(m.offset(), i as i64);
        assert_eq!(m.key(), Some(format!("key-{i}").as_bytes()));
        if i % 10 == 0 {
            assert_eq!(m.payload(), None, "null value at {i}");
        } else {
            assert_eq!(m.payload(), Some(format!("value-{i}").as_bytes()));
        }
        let headers = m.headers().unwrap();
        assert_eq!(headers.count(), 2);
        assert_eq!(headers.get(0).key, "trace");
        assert_eq!(headers.get(0).value, Some(format!("t{i}").as_bytes()));
        assert_eq!(headers.get(1).value, None);
    }
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_compression_codec_passes_through() {
    let broker = TestBroker::start().await;
    let addr = broker.addr();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        create_topic(&addr, &topic, 1, &[]).await;
        let producer = producer(&addr, &[("compression.codec", codec), ("linger.ms", "50")]);
        let values: Vec<Vec<u8>> = (0..300)
            .map(|i| format!("{codec} record {i} {}", "abc".repeat(i % 40)).into_bytes())
            .collect();
        let futures: Vec<_> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                producer
                    .send_result(
                        FutureRecord::<str, [u8]>::to(&topic)
                            .key(&*i.to_string())
                            .payload(v),
                    )
                    .unwrap()
            })
            .collect();
        for f in futures {
            f.await.unwrap().unwrap();
        }
        let messages = consume(&addr, &topic, &[0], values.len()).await;
        for (m, v) in messages.iter().zip(&values) {
            assert_eq!(m.payload(), Some(v.as_slice()), "codec {codec}");
        }
    }
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_partitions_keep_per_key_order_with_idempotence() {
    let broker = TestBroker::start().await;
    let addr = broker.addr();
    create_topic(&addr, "wide", 16, &[]).await;
    let producer = producer(
        &addr,
        &[("enable.idempotence", "true"), ("linger.ms", "10")],
    );
    let mut futures = Vec::new();
    for i in 0..2000u32 {
        let key = format!("k{}", i % 64);
        let value = format!("{key}:{i}");
        futures.push(
            producer
                .send_result(
                    FutureRecord::<str, str>::to("wide")
                        .key(&key)
                        .payload(&value),
                )
                .unwrap(),
        );
    }
    for f in futures {
        f.await.unwrap().unwrap();
    }
    let partitions: Vec<i32> = (0..16).collect();
    let messages = consume(&addr, "wide", &partitions, 2000).await;
    let mut last: BTreeMap<String, (i32, u32)> = BTreeMap::new();
    let mut used = std::collections::BTreeSet::new();
    for m in &messages {
        let text = std::str::from_utf8(m.payload().unwrap()).unwrap();
        let (key, n) = text.split_once(':').unwrap();
        let n: u32 = n.parse().unwrap();
        used.insert(m.partition());
        if let Some((partition, prev)) = last.get(key) {
            assert_eq!(*partition, m.partition(), "key {key} moved partitions");
            assert!(n > *prev, "key {key}: {n} after {prev}");
        }
        last.insert(key.to_owned(), (m.partition(), n));
    }
    assert!(
        used.len() > 8,
        "keys spread over only {} partitions",
        used.len()
    );
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_larger_than_a_batch_and_than_the_default_limit() {
    let broker = TestBroker::start().await;
    let addr = broker.addr();
    create_topic(&addr, "large", 1, &[("max.message.bytes", "5000000")]).await;
    let producer = producer(
        &addr,
        &[("batch.size", "16384"), ("message.max.bytes", "6000000")],
    );
    let sizes = [100usize, 200_000, 3_000_000, 50, 1_000_000];
    for (i, size) in sizes.iter().enumerate() {
        let value: Vec<u8> = (0..*size).map(|b| (b % 251) as u8 ^ i as u8).collect();
        send(
            &producer,
            FutureRecord::to("large").key("k").payload(value.as_slice()),
        )
        .await;
    }
    let messages = consume(&addr, "large", &[0], sizes.len()).await;
    for (i, (m, size)) in messages.iter().zip(sizes).enumerate() {
        let expected: Vec<u8> = (0..size).map(|b| (b % 251) as u8 ^ i as u8).collect();
        assert_eq!(m.payload().map(<[u8]>::len), Some(size));
        assert_eq!(m.payload(), Some(expected.as_slice()));
    }
    // Over the topic's limit: refused with MESSAGE_TOO_LARGE.
    let too_big = vec![0u8; 5_500_000];
    let err = producer
        .send(
            FutureRecord::<str, [u8]>::to("large").payload(too_big.as_slice()),
            Duration::from_secs(30),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.0.rdkafka_error_code(),
        Some(rdkafka::types::RDKafkaErrorCode::MessageSizeTooLarge),
        "{err:?}"
    );
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_creation_uses_the_default_partition_count_and_can_be_off() {
    let broker = TestBroker::start_with(|c| c.num_partitions = 3).await;
    let addr = broker.addr();
    let producer = producer(&addr, &[]);
    send(
        &producer,
        FutureRecord::to("auto").key("k").payload(b"v".as_slice()),
    )
    .await;
    let consumer: rdkafka::consumer::BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &addr)
        .create()
        .unwrap();
    let metadata = rdkafka::consumer::Consumer::fetch_metadata(
        &consumer,
        Some("auto"),
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(metadata.topics()[0].partitions().len(), 3);
    broker.stop().await;

    let broker = TestBroker::start_with(|c| c.auto_create_topics_enable = false).await;
    let producer = crate::support::producer(&broker.addr(), &[("message.timeout.ms", "2000")]);
    let err = producer
        .send(
            FutureRecord::<str, [u8]>::to("not-there").payload(b"v".as_slice()),
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.0.rdkafka_error_code(),
            Some(
                rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition
                    | rdkafka::types::RDKafkaErrorCode::UnknownTopic
                    | rdkafka::types::RDKafkaErrorCode::MessageTimedOut
            )
        ),
        "{err:?}"
    );
    broker.stop().await;
}
