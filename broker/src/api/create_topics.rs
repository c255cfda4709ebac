//! CreateTopics (key 19): partitions, replication factor (1 only), config overrides.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tracing::info;

use super::describe_configs::topic_config_entries;
use super::{blocking, message, RequestContext};
use crate::security::acl::AclOperation;
use crate::server::NODE_ID;
use crate::storage::ApiError;

pub(crate) async fn handle(
    ctx: &RequestContext,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let version = ctx.version();
    let state = Arc::clone(&ctx.state);
    let peer = ctx.peer;
    // Kafka: Create on the cluster covers every topic, else Create on the topic itself.
    let cluster_create = ctx.cluster_authorized(AclOperation::Create);
    let denied: std::collections::HashSet<String> = request
        .topics
        .iter()
        .map(|t| t.name.to_string())
        .filter(|name| !cluster_create && !ctx.topic_authorized(AclOperation::Create, name))
        .collect();
    let results = blocking(move || {
        let mut seen = std::collections::HashSet::new();
        request
            .topics
            .iter()
            .map(|t| {
                let name = t.name.as_str().to_owned();
                let mut result = CreatableTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_message(None);
                let outcome = (|| {
                    if denied.contains(&name) {
                        return Err(ApiError::new(
                            ResponseError::TopicAuthorizationFailed,
                            format!("not allowed to create topic '{name}' (needs Create on the cluster or the topic)"),
                        ));
                    }
                    if !seen.insert(name.clone()) {
                        return Err(ApiError::new(
                            ResponseError::InvalidRequest,
                            format!("topic '{name}' appears twice in the request"),
                        ));
                    }
                    let mut configs = BTreeMap::new();
                    for c in &t.configs {
                        let Some(value) = &c.value else { continue };
                        configs.insert(c.name.as_str().to_owned(), value.as_str().to_owned());
                    }
                    let mut partitions = t.num_partitions;
                    let mut replication = t.replication_factor;
                    if !t.assignments.is_empty() {
                        if partitions != -1 || replication != -1 {
                            return Err(ApiError::new(
                                ResponseError::InvalidRequest,
                                "give either a replica assignment or partitions and replication factor, not both",
                            ));
                        }
                        for a in &t.assignments {
                            if a.broker_ids.iter().any(|b| b.0 != NODE_ID) || a.broker_ids.len() != 1 {
                                return Err(ApiError::new(
                                    ResponseError::InvalidReplicaAssignment,
                                    format!("every partition must be assigned to broker {NODE_ID} alone on this single-node broker"),
                                ));
                            }
                        }
                        partitions = t.assignments.len() as i32;
                        replication = 1;
                    }
                    let partitions = if request.validate_only {
                        state.logs.validate_new_topic(&name, partitions, replication, &configs)?
                    } else {
                        state
                            .logs
                            .create_topic(&name, partitions, replication, configs.clone())?
                            .partition_count()
                    };
                    Ok((partitions, configs))
                })();
                match outcome {
                    Ok((partitions, overrides)) => {
                        if version >= 7 {
                            if let Some(topic) = state.logs.topic(&name) {
                                result.topic_id = topic.id;
                            }
                        }
                        if version >= 5 {
                            result.num_partitions = partitions;
                            result.replication_factor = 1;
                            result.configs = Some(
                                topic_config_entries(state.config(), &overrides)
                                    .into_iter()
                                    .map(|e| {
                                        CreatableTopicConfigs::default()
                                            .with_name(StrBytes::from_static_str(e.name))
                                            .with_value(Some(StrBytes::from_string(e.value)))
                                            .with_config_source(e.source as i8)
                                            .with_read_only(false)
                                    })
                                    .collect(),
                            );
                        }
                        if !request.validate_only {
                            info!(%peer, topic = %name, partitions, "created topic on request");
                        }
                    }
                    Err(e) => {
                        result.error_code = e.code.code();
                        if version >= 1 {
                            result.error_message = message(&e);
                        }
                        if version >= 5 {
                            result.num_partitions = -1;
                            result.replication_factor = -1;
                        }
                    }
                }
                result
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    CreateTopicsResponse::default().with_topics(results)
}
