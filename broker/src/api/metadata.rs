//! Metadata (key 3): the broker, the topics asked for (or all) and their partitions.
//! Unknown topics are created when auto-creation is on and the request allows it.

use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::{blocking, RequestContext};
use crate::security::acl::AclOperation;
use crate::server::{BrokerState, NODE_ID};
use crate::storage::{validate_topic_name, Topic};

/// Kafka's "authorized operations not requested" marker.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

pub(crate) async fn handle(ctx: &RequestContext, request: MetadataRequest) -> MetadataResponse {
    let version = ctx.version();
    let state = &ctx.state;
    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let all = match &request.topics {
        None => true,
        Some(topics) => topics.is_empty() && version == 0,
    };
    let auto_create = version < 4 || request.allow_auto_topic_creation;
    let mut topics = Vec::new();
    if all {
        for topic in state.logs.topics() {
            // Topics the principal may not describe are left out, as Kafka does.
            if ctx.topic_authorized(AclOperation::Describe, &topic.name) {
                topics.push(describe_topic(&topic, version));
            }
        }
    } else {
        let may_create_any = ctx.cluster_authorized(AclOperation::Create);
        for requested in request.topics.unwrap_or_default() {
            // A topic asked for by id is authorized by the name it has.
            let known_name = match &requested.name {
                Some(name) => Some(name.as_str().to_owned()),
                None => state
                    .logs
                    .topic_by_id(requested.topic_id)
                    .map(|t| t.name.clone()),
            };
            if let Some(name) = &known_name {
                if !ctx.topic_authorized(AclOperation::Describe, name) {
                    topics.push(
                        MetadataResponseTopic::default()
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                            .with_name(requested.name.clone())
                            .with_topic_id(requested.topic_id),
                    );
                    continue;
                }
            }
            let may_create = requested.name.as_ref().is_some_and(|name| {
                may_create_any || ctx.topic_authorized(AclOperation::Create, name.as_str())
            });
            topics.push(
                lookup(
                    state,
                    requested.name,
                    requested.topic_id,
                    auto_create,
                    may_create,
                    version,
                )
                .await,
            );
        }
    }
    let mut response = MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(NODE_ID))
            .with_host(StrBytes::from_string(
                ctx.session.listener.advertised_host.clone(),
            ))
            .with_port(ctx.session.listener.advertised_port)])
        .with_topics(topics);
    if version >= 1 {
        response.controller_id = BrokerId(NODE_ID);
    }
    if version >= 2 {
        response.cluster_id = Some(StrBytes::from_string(state.logs.cluster_id.clone()));
    }
    if (8..=10).contains(&version) {
        response.cluster_authorized_operations = OPERATIONS_NOT_REQUESTED;
    }
    response
}

async fn lookup(
    state: &Arc<BrokerState>,
    name: Option<TopicName>,
    topic_id: Uuid,
    auto_create: bool,
    may_create: bool,
    version: i16,
) -> MetadataResponseTopic {
    let Some(name) = name else {
        return match state.logs.topic_by_id(topic_id) {
            Some(topic) => describe_topic(&topic, version),
            None => MetadataResponseTopic::default()
                .with_error_code(ResponseError::UnknownTopicId.code())
                .with_topic_id(topic_id)
                .with_name(None),
        };
    };
    let error = |code: ResponseError| {
        MetadataResponseTopic::default()
            .with_error_code(code.code())
            .with_name(Some(name.clone()))
    };
    if validate_topic_name(name.as_str()).is_err() {
        return error(ResponseError::InvalidTopicException);
    }
    if let Some(topic) = state.logs.topic(name.as_str()) {
        return describe_topic(&topic, version);
    }
    if !auto_create || !state.config().auto_create_topics_enable {
        return error(ResponseError::UnknownTopicOrPartition);
    }
    if !may_create {
        return error(ResponseError::TopicAuthorizationFailed);
    }
    let shared = Arc::clone(state);
    let topic_name = name.as_str().to_owned();
    match blocking(move || shared.logs.get_or_auto_create(&topic_name)).await {
        Ok(Ok(topic)) => describe_topic(&topic, version),
        Ok(Err(e)) | Err(e) => error(e.code),
    }
}

pub(crate) fn describe_topic(topic: &Topic, version: i16) -> MetadataResponseTopic {
    let partitions = (0..topic.partition_count())
        .map(|index| {
            let mut partition = MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(BrokerId(NODE_ID))
                .with_replica_nodes(vec![BrokerId(NODE_ID)])
                .with_isr_nodes(vec![BrokerId(NODE_ID)]);
            if version >= 7 {
                partition.leader_epoch = 0;
            }
            partition
        })
        .collect();
    let mut response = MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_partitions(partitions);
    if version >= 10 {
        response.topic_id = topic.id;
    }
    if version >= 8 {
        response.topic_authorized_operations = OPERATIONS_NOT_REQUESTED;
    }
    response
}
