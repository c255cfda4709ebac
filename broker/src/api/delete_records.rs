//! DeleteRecords (key 21): move a partition's log start offset forward; whole segments
//! below it are removed.

use std::sync::Arc;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use kafka_protocol::ResponseError;

use super::{blocking, RequestContext};
use crate::security::acl::AclOperation;

pub(crate) async fn handle(
    ctx: &RequestContext,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let state = Arc::clone(&ctx.state);
    let authz = ctx.authz();
    let topics = blocking(move || {
        request
            .topics
            .iter()
            .map(|t| {
                let topic = state.logs.topic(t.name.as_str());
                let allowed = authz.topic(AclOperation::Delete, t.name.as_str());
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let result = DeleteRecordsPartitionResult::default()
                            .with_partition_index(p.partition_index);
                        if !allowed {
                            return result
                                .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                                .with_low_watermark(-1);
                        }
                        match topic.as_ref().and_then(|t| t.partition(p.partition_index)) {
                            None => result
                                .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                                .with_low_watermark(-1),
                            Some(partition) => match partition.delete_records_before(p.offset) {
                                Ok(low) => result.with_low_watermark(low),
                                Err(e) => {
                                    result.with_error_code(e.code.code()).with_low_watermark(-1)
                                }
                            },
                        }
                    })
                    .collect();
                DeleteRecordsTopicResult::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions)
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    DeleteRecordsResponse::default().with_topics(topics)
}
