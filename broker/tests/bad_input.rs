//! Bad input gets an error response or a closed connection, never a panic; the broker keeps
//! serving other clients afterwards.

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tokio::io::AsyncWriteExt;

use crate::protocol::{batch, produce_request};
use crate::support::{RawClient, TestBroker};

async fn still_serving(addr: &str) {
    let mut client = RawClient::connect(addr).await;
    let response = client.send(0, &ApiVersionsRequest::default()).await;
    assert_eq!(response.error_code, 0, "broker stopped serving");
}

async fn closes_after(addr: &str, bytes: &[u8]) {
    let mut client = RawClient::connect(addr).await;
    client.stream.write_all(bytes).await.unwrap();
    assert!(
        client.is_closed().await,
        "connection stayed open after {:?}...",
        &bytes[..bytes.len().min(16)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impossible_lengths_and_garbage_close_the_connection() {
    let broker = TestBroker::start().await;
    let addr = broker.addr();
    // A 2 GB length prefix: refused before any allocation.
    closes_after(&addr, &0x7fff_ffffi32.to_be_bytes()).await;
    // Just over socket_request_max_bytes, and negative.
    closes_after(&addr, &(100 * 1024 * 1024 + 1i32).to_be_bytes()).await;
    closes_after(&addr, &(-5i32).to_be_bytes()).await;
    // An unknown API key.
    let mut frame = 10i32.to_be_bytes().to_vec();
    frame.extend_from_slice(&[0x03, 0xe7, 0, 0, 0, 0, 0, 1, 0xff, 0xff]);
    closes_after(&addr, &frame).await;
    // A frame shorter than any header.
    closes_after(&addr, &[0, 0, 0, 3, 0, 3, 0]).await;
    // A Metadata v9 request whose body is cut off.
    let mut frame = 12i32.to_be_bytes().to_vec();
    frame.extend_from_slice(&[0, 3, 0, 9, 0, 0, 0, 7, 0, 0, 0, 0xff]);
    closes_after(&addr, &frame).await;
    // A Metadata v1 request declaring 2^31-1 topics in a 14-byte frame (found by the fuzz
    // target): refused without trying to allocate for them.
    let mut frame = 14i32.to_be_bytes().to_vec();
    frame.extend_from_slice(&[0, 3, 0, 1, 0, 0, 0, 9, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff]);
    closes_after(&addr, &frame).await;
    // The same through a CreateTopics v2 replica-assignment array.
    let mut body = vec![0, 19, 0, 2, 0, 0, 0, 10, 0xff, 0xff, 0, 0, 0, 1, 0, 1, b't'];
    body.extend_from_slice(&[0, 0, 0, 1, 0, 1, 0x7f, 0xff, 0xff, 0xff]);
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    closes_after(&addr, &frame).await;
    still_serving(&addr).await;
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_frames_never_take_the_broker_down() {
    let broker = TestBroker::start().await;
    let addr = broker.addr();
    // A small deterministic generator keeps the test reproducible.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..200 {
        let len = (next() % 200) as usize + 8;
        let mut body: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Aim at real API keys and versions most of the time.
        let key = (next() % 70) as i16;
        let version = (next() % 14) as i16;
        body[0..2].copy_from_slice(&key.to_be_bytes());
        body[2..4].copy_from_slice(&version.to_be_bytes());
        let mut frame = (len as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        let mut client = RawClient::connect(&addr).await;
        client.stream.write_all(&frame).await.unwrap();
        client.stream.shutdown().await.unwrap();
        // Either an answer or a close; both are fine, a hang or a crash is not.
        let _ = client.read_frame().await;
        if round % 50 == 0 {
            still_serving(&addr).await;
        }
    }
    still_serving(&addr).await;
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_crc_is_refused_with_corrupt_message() {
    let broker = TestBroker::start().await;
    let mut client = RawClient::connect(&broker.addr()).await;
    client
        .send(
            9,
            &MetadataRequest::default()
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(TopicName(StrBytes::from_static_str("crc"))))])),
        )
        .await;
    let mut records = batch(&["payload"]).to_vec();
    let last = records.len() - 1;
    records[last] ^= 0x40;
    let resp = client
        .send(9, &produce_request("crc", 0, records.into()))
        .await;
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, ResponseError::CorruptMessage.code());
    assert!(
        p.error_message.as_ref().unwrap().contains("CRC"),
        "{:?}",
        p.error_message
    );
    // Truncated batch: also refused, connection still usable.
    let records = batch(&["payload"]);
    let resp = client
        .send(
            9,
            &produce_request("crc", 0, records.slice(..records.len() - 3)),
        )
        .await;
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code,
        ResponseError::CorruptMessage.code()
    );
    let resp = client
        .send(9, &produce_request("crc", 0, batch(&["fine"])))
        .await;
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(
        (p.error_code, p.base_offset),
        (0, 0),
        "nothing of the bad batches was stored"
    );
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_topic_names_are_refused() {
    let broker = TestBroker::start().await;
    let mut client = RawClient::connect(&broker.addr()).await;
    for name in ["bad/name", "has space", "..", &"x".repeat(250)] {
        let req = CreateTopicsRequest::default().with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.to_owned())))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ]);
        let resp = client.send(7, &req).await;
        assert_eq!(
            resp.topics[0].error_code,
            ResponseError::InvalidTopicException.code(),
            "{name}"
        );
        let req = MetadataRequest::default()
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
            )
            .with_name(Some(TopicName(StrBytes::from_string(name.to_owned()))))]));
        let resp = client.send(12, &req).await;
        assert_eq!(
            resp.topics[0].error_code,
            ResponseError::InvalidTopicException.code(),
            "{name}"
        );
    }
    // Nothing was created on disk for them.
    let resp = client
        .send(12, &MetadataRequest::default().with_topics(None))
        .await;
    assert!(resp.topics.is_empty());
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_batches_get_message_too_large() {
    let broker = TestBroker::start().await;
    let mut client = RawClient::connect(&broker.addr()).await;
    let req = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("small")))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(vec![create_topics_request::CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str("max.message.bytes"))
                .with_value(Some(StrBytes::from_static_str("2048")))]),
    ]);
    assert_eq!(client.send(7, &req).await.topics[0].error_code, 0);
    let big = "x".repeat(4000);
    let resp = client
        .send(9, &produce_request("small", 0, batch(&[&big])))
        .await;
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code,
        ResponseError::MessageTooLarge.code()
    );
    let resp = client
        .send(9, &produce_request("small", 0, batch(&["fits"])))
        .await;
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    // An unknown partition and unknown topic.
    let resp = client
        .send(9, &produce_request("small", 7, batch(&["x"])))
        .await;
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    broker.stop().await;
}
