//! DeleteTopics (key 20): by name, or (v6) by topic id.

use std::sync::Arc;

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::{blocking, message, RequestContext};
use crate::security::acl::AclOperation;

pub(crate) async fn handle(
    ctx: &RequestContext,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let version = ctx.version();
    let state = Arc::clone(&ctx.state);
    let targets: Vec<(Option<TopicName>, Uuid)> = if version >= 6 {
        request
            .topics
            .iter()
            .map(|t| (t.name.clone(), t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|n| (Some(n.clone()), Uuid::nil()))
            .collect()
    };
    let authz = ctx.authz();
    let responses = blocking(move || {
        targets
            .into_iter()
            .map(|(name, id)| {
                let name = match name {
                    Some(name) => Some(name),
                    None => state
                        .logs
                        .topic_by_id(id)
                        .map(|t| TopicName(StrBytes::from_string(t.name.clone()))),
                };
                let mut result = DeletableTopicResult::default()
                    .with_name(name.clone())
                    .with_error_message(None);
                let Some(name) = name else {
                    // Only v6+ names topics by id, and every version from 5 has the message.
                    return result
                        .with_error_code(ResponseError::UnknownTopicId.code())
                        .with_error_message(Some(StrBytes::from_string(format!(
                            "no topic has the id {id}"
                        ))))
                        .with_topic_id(id);
                };
                if !authz.topic(AclOperation::Delete, name.as_str()) {
                    result.error_code = ResponseError::TopicAuthorizationFailed.code();
                    if version >= 5 {
                        result.error_message = Some(StrBytes::from_string(format!(
                            "not allowed to delete topic '{}'",
                            name.as_str()
                        )));
                    }
                    return result;
                }
                match state.logs.delete_topic(name.as_str()) {
                    Ok(deleted_id) => {
                        if version >= 6 {
                            result.topic_id = deleted_id;
                        }
                        result
                    }
                    Err(e) => {
                        result.error_code = e.code.code();
                        if version >= 5 {
                            result.error_message = message(&e);
                        }
                        result
                    }
                }
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    DeleteTopicsResponse::default().with_responses(responses)
}
