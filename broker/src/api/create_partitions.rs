//! CreatePartitions (key 37): grow a topic.

use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::ResponseError;

use super::{blocking, message, RequestContext};
use crate::security::acl::AclOperation;
use crate::server::NODE_ID;
use crate::storage::ApiError;

pub(crate) async fn handle(
    ctx: &RequestContext,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let state = Arc::clone(&ctx.state);
    let authz = ctx.authz();
    let results = blocking(move || {
        request
            .topics
            .iter()
            .map(|t| {
                let result = CreatePartitionsTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_message(None);
                let bad_assignment = t.assignments.as_ref().is_some_and(|a| {
                    a.iter()
                        .any(|p| p.broker_ids.len() != 1 || p.broker_ids[0].0 != NODE_ID)
                });
                let outcome = if !authz.topic(AclOperation::Alter, t.name.as_str()) {
                    Err(ApiError::new(
                        ResponseError::TopicAuthorizationFailed,
                        format!(
                            "not allowed to add partitions to topic '{}'",
                            t.name.as_str()
                        ),
                    ))
                } else if bad_assignment {
                    Err(ApiError::new(
                        ResponseError::InvalidReplicaAssignment,
                        format!("new partitions must be assigned to broker {NODE_ID} alone"),
                    ))
                } else {
                    state
                        .logs
                        .create_partitions(t.name.as_str(), t.count, request.validate_only)
                };
                match outcome {
                    Ok(()) => result,
                    Err(e) => result
                        .with_error_code(e.code.code())
                        .with_error_message(message(&e)),
                }
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    CreatePartitionsResponse::default().with_results(results)
}
