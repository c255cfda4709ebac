//! Every API at every version the broker advertises, through a raw protocol client: the
//! request is encoded at that version and the response must decode cleanly at it.

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use kafka_protocol::ResponseError;

use crate::support::{RawClient, TestBroker};

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

pub fn batch(values: &[&str]) -> Bytes {
    batch_from(values, -1, -1, -1, Compression::None)
}

/// A v2 record batch as a producer builds it.
pub fn batch_from(
    values: &[&str],
    producer_id: i64,
    epoch: i16,
    first_seq: i32,
    compression: Compression,
) -> Bytes {
    use kafka_protocol::records::*;
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if first_seq < 0 {
                i as i32 - 1
            } else {
                first_seq + i as i32
            },
            timestamp: 1_700_000_000_000 + i as i64,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(v.to_string())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    buf.freeze()
}

pub fn produce_request(topic: &str, partition: i32, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(records)),
            ])])
}

fn create_topics(name: &str, partitions: i32) -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(1)])
}

async fn advertised(client: &mut RawClient) -> Vec<(i16, i16, i16)> {
    let response = client
        .send(
            3,
            &ApiVersionsRequest::default()
                .with_client_software_name(s("tests"))
                .with_client_software_version(s("1")),
        )
        .await;
    assert_eq!(response.error_code, 0);
    response
        .api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_lists_only_the_implemented_apis() {
    let broker = TestBroker::start().await;
    let mut client = RawClient::connect(&broker.addr()).await;
    let keys: Vec<i16> = advertised(&mut client).await.iter().map(|k| k.0).collect();
    let mut expected: Vec<i16> = [
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::ListOffsets,
        ApiKey::Metadata,
        ApiKey::ApiVersions,
        ApiKey::CreateTopics,
        ApiKey::DeleteTopics,
        ApiKey::DeleteRecords,
        ApiKey::InitProducerId,
        ApiKey::DescribeConfigs,
        ApiKey::AlterConfigs,
        ApiKey::CreatePartitions,
        ApiKey::IncrementalAlterConfigs,
        ApiKey::DescribeCluster,
        ApiKey::FindCoordinator,
        ApiKey::JoinGroup,
        ApiKey::SyncGroup,
        ApiKey::Heartbeat,
        ApiKey::LeaveGroup,
        ApiKey::OffsetCommit,
        ApiKey::OffsetFetch,
        ApiKey::ListGroups,
        ApiKey::DescribeGroups,
        ApiKey::DeleteGroups,
        ApiKey::OffsetDelete,
        ApiKey::SaslHandshake,
        ApiKey::SaslAuthenticate,
        ApiKey::CreateAcls,
        ApiKey::DescribeAcls,
        ApiKey::DeleteAcls,
        ApiKey::DescribeUserScramCredentials,
        ApiKey::AlterUserScramCredentials,
    ]
    .iter()
    .map(|k| *k as i16)
    .collect();
    expected.sort_unstable();
    let mut keys_sorted = keys.clone();
    keys_sorted.sort_unstable();
    assert_eq!(keys_sorted, expected);
    // An ApiVersions version from the future gets UNSUPPORTED_VERSION in a v0 response
    // that still lists what is supported (KIP-511).
    let id = client.next_id();
    let mut frame = crate::support::encode_request(&ApiVersionsRequest::default(), 0, id);
    frame[6..8].copy_from_slice(&99i16.to_be_bytes());
    tokio::io::AsyncWriteExt::write_all(&mut client.stream, &frame)
        .await
        .unwrap();
    let mut body = client.read_frame().await.unwrap();
    let header =
        <ResponseHeader as kafka_protocol::protocol::Decodable>::decode(&mut body, 0).unwrap();
    assert_eq!(header.correlation_id, id);
    let response =
        <ApiVersionsResponse as kafka_protocol::protocol::Decodable>::decode(&mut body, 0).unwrap();
    assert_eq!(
        response.error_code,
        ResponseError::UnsupportedVersion.code()
    );
    assert!(!response.api_keys.is_empty());
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_advertised_version_answers() {
    // Groups complete their first rebalance at once, so JoinGroup answers without waiting.
    let broker = TestBroker::start_with(|c| c.group_initial_rebalance_delay_ms = 0).await;
    let mut client = RawClient::connect(&broker.addr()).await;
    let apis = advertised(&mut client).await;
    let created = client.send(7, &create_topics("versions", 2)).await;
    assert_eq!(created.topics[0].error_code, 0);
    for (key, min, max) in apis {
        let key = ApiKey::try_from(key).unwrap();
        for v in min..=max {
            let ok = |code: i16, what: &str| {
                assert_eq!(
                    code,
                    0,
                    "{key:?} v{v}: {what} failed with {:?}",
                    ResponseError::try_from_code(code)
                )
            };
            match key {
                ApiKey::ApiVersions => {
                    let mut req = ApiVersionsRequest::default();
                    if v >= 3 {
                        req = req
                            .with_client_software_name(s("t"))
                            .with_client_software_version(s("1"));
                    }
                    ok(client.send(v, &req).await.error_code, "api versions");
                }
                ApiKey::Metadata => {
                    let req = MetadataRequest::default()
                        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                        )
                        .with_name(Some(topic_name("versions")))]));
                    let resp = client.send(v, &req).await;
                    assert_eq!(resp.topics.len(), 1, "{key:?} v{v}");
                    ok(resp.topics[0].error_code, "metadata");
                    assert_eq!(resp.topics[0].partitions.len(), 2);
                    assert_eq!(
                        resp.brokers[0].port,
                        broker.broker.as_ref().unwrap().local_addr().port() as i32
                    );
                }
                ApiKey::Produce => {
                    let resp = client
                        .send(v, &produce_request("versions", 0, batch(&["a", "b"])))
                        .await;
                    let p = &resp.responses[0].partition_responses[0];
                    ok(p.error_code, "produce");
                    assert!(p.base_offset >= 0);
                }
                ApiKey::Fetch => {
                    let req = FetchRequest::default()
                        .with_max_wait_ms(0)
                        .with_min_bytes(1)
                        .with_max_bytes(1 << 20)
                        .with_session_epoch(-1)
                        .with_topics(vec![fetch_request::FetchTopic::default()
                            .with_topic(topic_name("versions"))
                            .with_partitions(vec![fetch_request::FetchPartition::default()
                                .with_partition(0)
                                .with_fetch_offset(0)
                                .with_partition_max_bytes(1 << 20)])]);
                    let resp = client.send(v, &req).await;
                    let p = &resp.responses[0].partitions[0];
                    ok(p.error_code, "fetch");
                    assert!(
                        p.records.as_ref().is_some_and(|r| !r.is_empty()),
                        "{key:?} v{v}: no records"
                    );
                }
                ApiKey::ListOffsets => {
                    let req = ListOffsetsRequest::default()
                        .with_replica_id(BrokerId(-1))
                        .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                            .with_name(topic_name("versions"))
                            .with_partitions(vec![
                                list_offsets_request::ListOffsetsPartition::default()
                                    .with_partition_index(0)
                                    .with_timestamp(-1),
                            ])]);
                    let resp = client.send(v, &req).await;
                    let p = &resp.topics[0].partitions[0];
                    ok(p.error_code, "list offsets");
                    assert!(p.offset > 0);
                }
                ApiKey::CreateTopics => {
                    let resp = client
                        .send(v, &create_topics(&format!("created-v{v}"), 1))
                        .await;
                    ok(resp.topics[0].error_code, "create topics");
                }
                ApiKey::DeleteTopics => {
                    let name = format!("doomed-v{v}");
                    client.send(7, &create_topics(&name, 1)).await;
                    let req = if v >= 6 {
                        DeleteTopicsRequest::default()
                            .with_topics(vec![delete_topics_request::DeleteTopicState::default()
                                .with_name(Some(topic_name(&name)))])
                    } else {
                        DeleteTopicsRequest::default().with_topic_names(vec![topic_name(&name)])
                    };
                    ok(
                        client.send(v, &req).await.responses[0].error_code,
                        "delete topics",
                    );
                }
                ApiKey::DeleteRecords => {
                    let req = DeleteRecordsRequest::default()
                        .with_timeout_ms(1000)
                        .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
                            .with_name(topic_name("versions"))
                            .with_partitions(vec![
                                delete_records_request::DeleteRecordsPartition::default()
                                    .with_partition_index(1)
                                    .with_offset(0),
                            ])]);
                    let resp = client.send(v, &req).await;
                    ok(resp.topics[0].partitions[0].error_code, "delete records");
                }
                ApiKey::InitProducerId => {
                    let mut req = InitProducerIdRequest::default()
                        .with_transactional_id(None)
                        .with_transaction_timeout_ms(1000);
                    if v >= 3 {
                        req = req.with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
                    }
                    let resp = client.send(v, &req).await;
                    ok(resp.error_code, "init producer id");
                    assert!(resp.producer_id.0 >= 0);
                }
                ApiKey::DescribeConfigs => {
                    let req = DescribeConfigsRequest::default().with_resources(vec![
                        describe_configs_request::DescribeConfigsResource::default()
                            .with_resource_type(2)
                            .with_resource_name(s("versions"))
                            .with_configuration_keys(None),
                    ]);
                    let resp = client.send(v, &req).await;
                    ok(resp.results[0].error_code, "describe configs");
                    assert!(resp.results[0]
                        .configs
                        .iter()
                        .any(|c| c.name.as_str() == "cleanup.policy"));
                }
                ApiKey::AlterConfigs => {
                    let req = AlterConfigsRequest::default().with_resources(vec![
                        alter_configs_request::AlterConfigsResource::default()
                            .with_resource_type(2)
                            .with_resource_name(s("versions"))
                            .with_configs(vec![alter_configs_request::AlterableConfig::default()
                                .with_name(s("retention.ms"))
                                .with_value(Some(s("1000000")))]),
                    ]);
                    ok(
                        client.send(v, &req).await.responses[0].error_code,
                        "alter configs",
                    );
                }
                ApiKey::IncrementalAlterConfigs => {
                    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
                        incremental_alter_configs_request::AlterConfigsResource::default()
                            .with_resource_type(2)
                            .with_resource_name(s("versions"))
                            .with_configs(vec![
                                incremental_alter_configs_request::AlterableConfig::default()
                                    .with_name(s("segment.ms"))
                                    .with_config_operation(0)
                                    .with_value(Some(s("3600000"))),
                            ]),
                    ]);
                    ok(
                        client.send(v, &req).await.responses[0].error_code,
                        "incremental alter configs",
                    );
                }
                ApiKey::CreatePartitions => {
                    let name = format!("grow-v{v}");
                    client.send(7, &create_topics(&name, 1)).await;
                    let req = CreatePartitionsRequest::default()
                        .with_timeout_ms(1000)
                        .with_topics(vec![
                            create_partitions_request::CreatePartitionsTopic::default()
                                .with_name(topic_name(&name))
                                .with_count(3)
                                .with_assignments(None),
                        ]);
                    ok(
                        client.send(v, &req).await.results[0].error_code,
                        "create partitions",
                    );
                }
                ApiKey::DescribeCluster => {
                    let mut req = DescribeClusterRequest::default();
                    if v >= 1 {
                        req = req.with_endpoint_type(1);
                    }
                    let resp = client.send(v, &req).await;
                    ok(resp.error_code, "describe cluster");
                    assert_eq!(resp.brokers.len(), 1);
                }
                ApiKey::FindCoordinator
                | ApiKey::JoinGroup
                | ApiKey::SyncGroup
                | ApiKey::Heartbeat
                | ApiKey::LeaveGroup
                | ApiKey::OffsetCommit
                | ApiKey::OffsetFetch
                | ApiKey::ListGroups
                | ApiKey::DescribeGroups
                | ApiKey::DeleteGroups
                | ApiKey::OffsetDelete => {
                    let port = broker.broker.as_ref().unwrap().local_addr().port() as i32;
                    group_api_answers(&mut client, key, v, port).await;
                }
                // On a PLAINTEXT listener: Kafka's ILLEGAL_SASL_STATE, connection kept.
                ApiKey::SaslHandshake => {
                    let req = SaslHandshakeRequest::default().with_mechanism(s("PLAIN"));
                    assert_eq!(client.send(v, &req).await.error_code, 34, "{key:?} v{v}");
                }
                ApiKey::SaslAuthenticate => {
                    let req = SaslAuthenticateRequest::default();
                    assert_eq!(client.send(v, &req).await.error_code, 34, "{key:?} v{v}");
                }
                // Without an authorizer: SECURITY_DISABLED, as Kafka answers.
                ApiKey::DescribeAcls => {
                    let resp = client.send(v, &DescribeAclsRequest::default()).await;
                    assert_eq!(resp.error_code, 54, "{key:?} v{v}");
                }
                ApiKey::CreateAcls => {
                    let req = CreateAclsRequest::default()
                        .with_creations(vec![create_acls_request::AclCreation::default()]);
                    assert_eq!(client.send(v, &req).await.results[0].error_code, 54);
                }
                ApiKey::DeleteAcls => {
                    let req = DeleteAclsRequest::default()
                        .with_filters(vec![delete_acls_request::DeleteAclsFilter::default()]);
                    assert_eq!(client.send(v, &req).await.filter_results[0].error_code, 54);
                }
                ApiKey::AlterUserScramCredentials => {
                    let req = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
                        alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
                            .with_name(s("versions-user"))
                            .with_mechanism(1)
                            .with_iterations(4096)
                            .with_salt(Bytes::from_static(b"salt"))
                            .with_salted_password(Bytes::from_static(&[7; 32])),
                    ]);
                    let resp = client.send(v, &req).await;
                    ok(resp.results[0].error_code, "alter user scram credentials");
                }
                ApiKey::DescribeUserScramCredentials => {
                    let resp = client
                        .send(v, &DescribeUserScramCredentialsRequest::default())
                        .await;
                    ok(resp.error_code, "describe user scram credentials");
                }
                other => panic!("{other:?} is advertised but has no test here"),
            }
        }
    }
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_configs_round_trip_and_bad_ones_are_named() {
    let broker = TestBroker::start().await;
    let mut client = RawClient::connect(&broker.addr()).await;
    let mut req = create_topics("compacted", 1);
    req.topics[0].configs = vec![create_topics_request::CreatableTopicConfig::default()
        .with_name(s("cleanup.policy"))
        .with_value(Some(s("compact")))];
    let resp = client.send(7, &req).await;
    assert_eq!(resp.topics[0].error_code, 0);
    let configs = resp.topics[0].configs.as_ref().unwrap();
    assert!(configs
        .iter()
        .any(|c| c.name.as_str() == "cleanup.policy"
            && c.value.as_ref().unwrap().as_str() == "compact"));

    let mut bad = create_topics("bad-config", 1);
    bad.topics[0].configs = vec![create_topics_request::CreatableTopicConfig::default()
        .with_name(s("cleanup.policy"))
        .with_value(Some(s("shred")))];
    let resp = client.send(7, &bad).await;
    assert_eq!(
        resp.topics[0].error_code,
        ResponseError::InvalidConfig.code()
    );
    let message = resp.topics[0]
        .error_message
        .as_ref()
        .unwrap()
        .as_str()
        .to_owned();
    assert!(
        message.contains("cleanup.policy") && message.contains("compact"),
        "{message}"
    );

    let mut bad = create_topics("bad-rf", 1);
    bad.topics[0].replication_factor = 3;
    let resp = client.send(7, &bad).await;
    assert_eq!(
        resp.topics[0].error_code,
        ResponseError::InvalidReplicationFactor.code()
    );

    let resp = client.send(7, &create_topics("compacted", 1)).await;
    assert_eq!(
        resp.topics[0].error_code,
        ResponseError::TopicAlreadyExists.code()
    );

    // Incremental APPEND to a list config, then DescribeConfigs shows it as a topic override.
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("compacted"))
            .with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(s("cleanup.policy"))
                    .with_config_operation(2)
                    .with_value(Some(s("delete"))),
            ]),
    ]);
    assert_eq!(client.send(1, &req).await.responses[0].error_code, 0);
    let req = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("compacted"))
            .with_configuration_keys(Some(vec![s("cleanup.policy"), s("retention.ms")])),
    ]);
    let resp = client.send(4, &req).await;
    let configs = &resp.results[0].configs;
    assert_eq!(configs.len(), 2);
    let policy = configs
        .iter()
        .find(|c| c.name.as_str() == "cleanup.policy")
        .unwrap();
    assert_eq!(policy.value.as_ref().unwrap().as_str(), "compact,delete");
    assert_eq!(policy.config_source, 1, "dynamic topic config");
    let retention = configs
        .iter()
        .find(|c| c.name.as_str() == "retention.ms")
        .unwrap();
    assert_eq!(retention.config_source, 5, "default config");
    broker.stop().await;
}

/// A dynamic member joins `group` (JoinGroup at `version`, with the MEMBER_ID_REQUIRED round
/// trip from v4) and gets generation 1; returns its member id.
async fn join_group(client: &mut RawClient, group: &str, version: i16) -> String {
    let join = |member: &str| {
        JoinGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(s(member))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
            )
            .with_name(s("range"))
            .with_metadata(Bytes::from_static(b"metadata"))])
    };
    let mut response = client.send(version, &join("")).await;
    if version >= 4 {
        assert_eq!(
            response.error_code,
            ResponseError::MemberIdRequired.code(),
            "JoinGroup v{version}"
        );
        let member = response.member_id.to_string();
        response = client.send(version, &join(&member)).await;
    }
    assert_eq!(response.error_code, 0, "JoinGroup v{version}");
    assert_eq!(response.generation_id, 1);
    assert_eq!(response.members.len(), 1, "the leader gets the members");
    assert_eq!(response.members[0].metadata.as_ref(), b"metadata");
    response.member_id.to_string()
}

/// Joins and syncs `group` with fixed versions; returns the member id.
async fn stable_member(client: &mut RawClient, group: &str) -> String {
    let member = join_group(client, group, 5).await;
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(1)
        .with_member_id(s(&member))
        .with_assignments(vec![
            sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(s(&member))
                .with_assignment(Bytes::from_static(b"assignment")),
        ]);
    assert_eq!(client.send(3, &sync).await.error_code, 0);
    member
}

/// A standalone commit of offset 5 for `versions`-0 into `group`.
async fn simple_commit(client: &mut RawClient, group: &str, version: i16) -> i16 {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(topic_name("versions"))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(5)
                        .with_committed_metadata(Some(s("m"))),
                ]),
        ]);
    client.send(version, &req).await.topics[0].partitions[0].error_code
}

/// One group-coordinator API at version `v`, on a happy path, with its answer checked.
async fn group_api_answers(client: &mut RawClient, key: ApiKey, v: i16, port: i32) {
    let ok = |code: i16, what: &str| {
        assert_eq!(
            code,
            0,
            "{key:?} v{v}: {what} failed with {:?}",
            ResponseError::try_from_code(code)
        )
    };
    let group = format!("{key:?}-v{v}");
    match key {
        ApiKey::FindCoordinator => {
            if v >= 4 {
                let req = FindCoordinatorRequest::default().with_coordinator_keys(vec![s(&group)]);
                let resp = client.send(v, &req).await;
                ok(resp.coordinators[0].error_code, "find coordinator");
                assert_eq!(resp.coordinators[0].port, port);
            } else {
                let resp = client
                    .send(v, &FindCoordinatorRequest::default().with_key(s(&group)))
                    .await;
                ok(resp.error_code, "find coordinator");
                assert_eq!(resp.port, port);
            }
        }
        ApiKey::JoinGroup => {
            join_group(client, &group, v).await;
        }
        ApiKey::SyncGroup => {
            let member = join_group(client, &group, 5).await;
            let mut req = SyncGroupRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_generation_id(1)
                .with_member_id(s(&member))
                .with_assignments(vec![
                    sync_group_request::SyncGroupRequestAssignment::default()
                        .with_member_id(s(&member))
                        .with_assignment(Bytes::from_static(b"assignment")),
                ]);
            if v >= 5 {
                req = req
                    .with_protocol_type(Some(s("consumer")))
                    .with_protocol_name(Some(s("range")));
            }
            let resp = client.send(v, &req).await;
            ok(resp.error_code, "sync group");
            assert_eq!(resp.assignment.as_ref(), b"assignment");
        }
        ApiKey::Heartbeat => {
            let member = stable_member(client, &group).await;
            let req = HeartbeatRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_generation_id(1)
                .with_member_id(s(&member));
            ok(client.send(v, &req).await.error_code, "heartbeat");
        }
        ApiKey::LeaveGroup => {
            let member = stable_member(client, &group).await;
            let mut req = LeaveGroupRequest::default().with_group_id(GroupId(s(&group)));
            if v >= 3 {
                req = req.with_members(vec![
                    leave_group_request::MemberIdentity::default().with_member_id(s(&member))
                ]);
            } else {
                req = req.with_member_id(s(&member));
            }
            let resp = client.send(v, &req).await;
            ok(resp.error_code, "leave group");
            if v >= 3 {
                ok(resp.members[0].error_code, "leave group member");
            }
        }
        ApiKey::OffsetCommit => ok(simple_commit(client, &group, v).await, "offset commit"),
        ApiKey::OffsetFetch => {
            ok(simple_commit(client, &group, 9).await, "offset commit");
            let (offset, metadata) = if v >= 8 {
                let req = OffsetFetchRequest::default().with_groups(vec![
                    offset_fetch_request::OffsetFetchRequestGroup::default()
                        .with_group_id(GroupId(s(&group)))
                        .with_topics(Some(vec![
                            offset_fetch_request::OffsetFetchRequestTopics::default()
                                .with_name(topic_name("versions"))
                                .with_partition_indexes(vec![0]),
                        ])),
                ]);
                let resp = client.send(v, &req).await;
                let p = &resp.groups[0].topics[0].partitions[0];
                ok(p.error_code, "offset fetch");
                (p.committed_offset, p.metadata.clone())
            } else {
                let req = OffsetFetchRequest::default()
                    .with_group_id(GroupId(s(&group)))
                    .with_topics(Some(vec![
                        offset_fetch_request::OffsetFetchRequestTopic::default()
                            .with_name(topic_name("versions"))
                            .with_partition_indexes(vec![0]),
                    ]));
                let resp = client.send(v, &req).await;
                let p = &resp.topics[0].partitions[0];
                ok(p.error_code, "offset fetch");
                (p.committed_offset, p.metadata.clone())
            };
            assert_eq!(
                (offset, metadata.as_deref()),
                (5, Some("m")),
                "{key:?} v{v}"
            );
        }
        ApiKey::ListGroups => {
            ok(simple_commit(client, &group, 9).await, "offset commit");
            let resp = client.send(v, &ListGroupsRequest::default()).await;
            ok(resp.error_code, "list groups");
            assert!(resp.groups.iter().any(|g| g.group_id.0.as_str() == group));
        }
        ApiKey::DescribeGroups => {
            stable_member(client, &group).await;
            let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(&group))]);
            let resp = client.send(v, &req).await;
            ok(resp.groups[0].error_code, "describe groups");
            assert_eq!(resp.groups[0].group_state.as_str(), "Stable");
            assert_eq!(
                resp.groups[0].members[0].member_assignment.as_ref(),
                b"assignment"
            );
        }
        ApiKey::DeleteGroups => {
            ok(simple_commit(client, &group, 9).await, "offset commit");
            let req = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(&group))]);
            ok(
                client.send(v, &req).await.results[0].error_code,
                "delete groups",
            );
        }
        ApiKey::OffsetDelete => {
            ok(simple_commit(client, &group, 9).await, "offset commit");
            let req = OffsetDeleteRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_topics(vec![
                    offset_delete_request::OffsetDeleteRequestTopic::default()
                        .with_name(topic_name("versions"))
                        .with_partitions(vec![
                            offset_delete_request::OffsetDeleteRequestPartition::default()
                                .with_partition_index(0),
                        ]),
                ]);
            let resp = client.send(v, &req).await;
            ok(resp.error_code, "offset delete");
            ok(
                resp.topics[0].partitions[0].error_code,
                "offset delete partition",
            );
        }
        other => unreachable!("{other:?} is not a group API"),
    }
}
