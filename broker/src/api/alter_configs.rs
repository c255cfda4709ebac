//! AlterConfigs (key 33): replace a topic's config overrides. Broker settings come from the
//! config file and cannot be altered at run time.

use std::sync::Arc;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::ResponseError;

use super::describe_configs::RESOURCE_TOPIC;
use super::{blocking, message, RequestContext};
use crate::security::acl::AclOperation;
use crate::storage::ApiError;

pub(crate) async fn handle(
    ctx: &RequestContext,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
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
                    let changes: Vec<(String, Option<String>)> = resource
                        .configs
                        .iter()
                        .map(|c| {
                            (
                                c.name.as_str().to_owned(),
                                c.value.as_ref().map(|v| v.as_str().to_owned()),
                            )
                        })
                        .collect();
                    state.logs.alter_topic_configs(
                        resource.resource_name.as_str(),
                        &changes,
                        false,
                        request.validate_only,
                    )
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
    AlterConfigsResponse::default().with_responses(responses)
}

pub(crate) fn not_alterable(resource_type: i8) -> ApiError {
    ApiError::new(
        ResponseError::InvalidRequest,
        format!(
            "config resource type {resource_type} cannot be altered: only topic configs (type 2) \
             can; broker settings come from the config file and need a restart"
        ),
    )
}
