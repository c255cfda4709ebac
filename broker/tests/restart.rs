//! A restart keeps topics, configs, offsets (log end and log start) and producer state.

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::idempotence::{create, high_watermark, init_producer, produce_seq};
use crate::support::{RawClient, TestBroker};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_topics_configs_offsets_and_producer_state() {
    let mut broker = TestBroker::start_with(|c| c.log_segment_bytes = 1024).await;
    let mut client = RawClient::connect(&broker.addr()).await;
    create(&mut client, "kept").await;
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("kept"))
            .with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(StrBytes::from_static_str("cleanup.policy"))
                    .with_config_operation(0)
                    .with_value(Some(StrBytes::from_static_str("compact"))),
            ]),
    ]);
    assert_eq!(client.send(1, &req).await.responses[0].error_code, 0);
    let pid = init_producer(&mut client).await;
    let value = "v".repeat(300);
    // Enough batches to roll several 1 KiB segments.
    for seq in 0..10 {
        assert_eq!(
            produce_seq(&mut client, "kept", pid, 0, seq, &[&value]).await,
            (0, i64::from(seq))
        );
    }
    let req = DeleteRecordsRequest::default().with_topics(vec![
        delete_records_request::DeleteRecordsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("kept")))
            .with_partitions(vec![
                delete_records_request::DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(4),
            ]),
    ]);
    assert_eq!(
        client.send(2, &req).await.topics[0].partitions[0].low_watermark,
        4
    );
    let segments_before = std::fs::read_dir(broker.dir.path().join("kept-0"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count();
    assert!(
        segments_before >= 2,
        "expected rolled segments, found {segments_before}"
    );
    let ids_before = init_producer(&mut client).await;

    broker.restart().await;
    let mut client = RawClient::connect(&broker.addr()).await;
    assert_eq!(high_watermark(&mut client, "kept").await, 10);
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("kept")))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-2),
            ])]);
    assert_eq!(
        client.send(7, &req).await.topics[0].partitions[0].offset,
        4,
        "log start offset kept"
    );
    let req = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("kept"))
            .with_configuration_keys(Some(vec![StrBytes::from_static_str("cleanup.policy")])),
    ]);
    let resp = client.send(4, &req).await;
    assert_eq!(
        resp.results[0].configs[0].value.as_ref().unwrap().as_str(),
        "compact"
    );
    // Producer state: a retry of the last batch is still recognised, a gap still refused.
    assert_eq!(
        produce_seq(&mut client, "kept", pid, 0, 9, &[&value]).await,
        (0, 9)
    );
    let (code, _) = produce_seq(&mut client, "kept", pid, 0, 11, &["x"]).await;
    assert_eq!(code, ResponseError::OutOfOrderSequenceNumber.code());
    assert_eq!(
        produce_seq(&mut client, "kept", pid, 0, 10, &["y"]).await,
        (0, 10)
    );
    // Producer ids are not reused after a restart.
    assert!(init_producer(&mut client).await > ids_before);
    broker.stop().await;
}
