//! Idempotent producers at the protocol level: InitProducerId, duplicates answered with the
//! original offset and not stored twice, gaps refused with OUT_OF_ORDER_SEQUENCE_NUMBER,
//! stale epochs refused.

use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;
use kafka_protocol::ResponseError;

use crate::protocol::{batch_from, produce_request};
use crate::support::{RawClient, TestBroker};

pub async fn init_producer(client: &mut RawClient) -> i64 {
    let resp = client
        .send(
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        )
        .await;
    assert_eq!(resp.error_code, 0);
    assert_eq!(resp.producer_epoch, 0);
    resp.producer_id.0
}

/// Produces `values` as one idempotent batch; returns (error code, base offset).
pub async fn produce_seq(
    client: &mut RawClient,
    topic: &str,
    pid: i64,
    epoch: i16,
    seq: i32,
    values: &[&str],
) -> (i16, i64) {
    let records = batch_from(values, pid, epoch, seq, Compression::None);
    let resp = client.send(9, &produce_request(topic, 0, records)).await;
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

pub async fn high_watermark(client: &mut RawClient, topic: &str) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
            .with_name(TopicName(topic.to_owned().into()))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1),
            ])]);
    client.send(7, &req).await.topics[0].partitions[0].offset
}

pub async fn create(client: &mut RawClient, topic: &str) {
    let req = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(topic.to_owned().into()))
            .with_num_partitions(1)
            .with_replication_factor(1),
    ]);
    assert_eq!(client.send(7, &req).await.topics[0].error_code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_dropped_and_gaps_refused() {
    let broker = TestBroker::start().await;
    let mut client = RawClient::connect(&broker.addr()).await;
    create(&mut client, "idem").await;
    let pid = init_producer(&mut client).await;
    let other = init_producer(&mut client).await;
    assert_ne!(pid, other, "producer ids are unique");

    assert_eq!(
        produce_seq(&mut client, "idem", pid, 0, 0, &["a", "b", "c"]).await,
        (0, 0)
    );
    assert_eq!(
        produce_seq(&mut client, "idem", pid, 0, 3, &["d"]).await,
        (0, 3)
    );
    // A retry of the first batch: success with the original offset, nothing appended.
    assert_eq!(
        produce_seq(&mut client, "idem", pid, 0, 0, &["a", "b", "c"]).await,
        (0, 0)
    );
    assert_eq!(high_watermark(&mut client, "idem").await, 4);
    // A gap: sequence 5 when 4 is expected.
    let (code, _) = produce_seq(&mut client, "idem", pid, 0, 5, &["f"]).await;
    assert_eq!(code, ResponseError::OutOfOrderSequenceNumber.code());
    // Another producer interleaves freely.
    assert_eq!(
        produce_seq(&mut client, "idem", other, 0, 0, &["x"]).await,
        (0, 4)
    );
    // The expected sequence still works after the refusal.
    assert_eq!(
        produce_seq(&mut client, "idem", pid, 0, 4, &["e"]).await,
        (0, 5)
    );
    // A bumped epoch starts again at 0; the old epoch is then fenced.
    assert_eq!(
        produce_seq(&mut client, "idem", pid, 1, 0, &["g"]).await,
        (0, 6)
    );
    let (code, _) = produce_seq(&mut client, "idem", pid, 0, 5, &["h"]).await;
    assert_eq!(code, ResponseError::InvalidProducerEpoch.code());
    assert_eq!(high_watermark(&mut client, "idem").await, 7);
    broker.stop().await;
}
