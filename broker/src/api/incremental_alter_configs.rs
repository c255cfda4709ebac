//! IncrementalAlterConfigs (key 44): SET, DELETE, APPEND and SUBTRACT on topic configs.

use std::sync::Arc;

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::ResponseError;

use super::alter_configs::not_alterable;
use super::describe_configs::RESOURCE_TOPIC;
use super::{blocking, message, RequestContext};
use crate::security::acl::AclOperation;
use crate::server::BrokerState;
use crate::storage::ApiError;

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

pub(crate) async fn handle(
    ctx: &RequestContext,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let state = Arc::clone(&ctx.state);
    let authz = ctx.authz();
    let cluster_alter = ctx.cluster_authorized(AclOperation::AlterConfigs);
    let responses = blocking(move || {
        request
            .resources
            .iter()
            .map(|resource| {
                let response = AlterConfigsResourceResponse::default()
                    .with_resource_type(resource.resource_type)
                    .with_resource_name(resource.resource_name.clone())
                    .with_error_message(None);
                let allowed = if resource.resource_type == RESOURCE_TOPIC {
                    authz.topic(AclOperation::AlterConfigs, resource.resource_name.as_str())
                } else {
                    cluster_alter
                };
                let outcome = if !allowed {
                    Err(ApiError::new(
                        if resource.resource_type == RESOURCE_TOPIC {
                            ResponseError::TopicAuthorizationFailed
                        } else {
                            ResponseError::ClusterAuthorizationFailed
                        },
                        "altering these configs needs AlterConfigs",
                    ))
                } else if resource.resource_type == RESOURCE_TOPIC {
                    apply(&state, resource, request.validate_only)
                } else {
                    Err(not_alterable(resource.resource_type))
                };
                match outcome {
                    Ok(()) => response,
                    Err(e) => response
                        .with_error_code(e.code.code())
                        .with_error_message(message(&e)),
                }
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

fn apply(
    state: &BrokerState,
    resource: &kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource,
    validate_only: bool,
) -> Result<(), ApiError> {
    let name = resource.resource_name.as_str();
    let topic = state.logs.topic(name).ok_or_else(|| {
        ApiError::new(
            ResponseError::UnknownTopicOrPartition,
            format!("topic '{name}' does not exist"),
        )
    })?;
    let current = topic.config_overrides();
    let mut changes = Vec::new();
    for c in &resource.configs {
        let key = c.name.as_str().to_owned();
        let value = c.value.as_ref().map(|v| v.as_str().to_owned());
        let list = || -> Vec<String> {
            current
                .get(&key)
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        let change = match c.config_operation {
            SET => (key.clone(), Some(value.unwrap_or_default())),
            DELETE => (key.clone(), None),
            APPEND => {
                let mut items = list();
                for v in value.unwrap_or_default().split(',').map(str::trim) {
                    if !v.is_empty() && !items.iter().any(|i| i == v) {
                        items.push(v.to_owned());
                    }
                }
                (key.clone(), Some(items.join(",")))
            }
            SUBTRACT => {
                let remove: Vec<String> = value.unwrap_or_default().split(',').map(|s| s.trim().to_owned()).collect();
                let items: Vec<String> = list().into_iter().filter(|i| !remove.contains(i)).collect();
                if items.is_empty() {
                    (key.clone(), None)
                } else {
                    (key.clone(), Some(items.join(",")))
                }
            }
            other => {
                return Err(ApiError::new(
                    ResponseError::InvalidRequest,
                    format!("config operation {other} on '{key}' is unknown (0 SET, 1 DELETE, 2 APPEND, 3 SUBTRACT)"),
                ))
            }
        };
        changes.push(change);
    }
    state
        .logs
        .alter_topic_configs(name, &changes, true, validate_only)
}
