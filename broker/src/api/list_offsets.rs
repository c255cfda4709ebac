//! ListOffsets (key 2): earliest (-2), latest (-1), max timestamp (-3) and offsets by
//! timestamp, found through the time index.

use std::collections::HashSet;
use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;

use super::{blocking, RequestContext};
use crate::security::acl::AclOperation;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
/// KIP-1005: earliest offset still on local storage (all of it, here).
const EARLIEST_LOCAL: i64 = -4;

pub(crate) async fn handle(
    ctx: &RequestContext,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let state = Arc::clone(&ctx.state);
    let version = ctx.version();
    let denied: HashSet<String> = request
        .topics
        .iter()
        .map(|t| t.name.to_string())
        .filter(|topic| !ctx.topic_authorized(AclOperation::Describe, topic))
        .collect();
    let result = blocking(move || {
        request
            .topics
            .iter()
            .map(|t| {
                let topic = state.logs.topic(t.name.as_str());
                let allowed = !denied.contains(t.name.as_str());
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let mut answer = ListOffsetsPartitionResponse::default()
                            .with_partition_index(p.partition_index);
                        if !allowed {
                            return answer
                                .with_error_code(ResponseError::TopicAuthorizationFailed.code());
                        }
                        let Some(partition) =
                            topic.as_ref().and_then(|t| t.partition(p.partition_index))
                        else {
                            return answer
                                .with_error_code(ResponseError::UnknownTopicOrPartition.code());
                        };
                        if version >= 4 {
                            answer.leader_epoch = 0;
                        }
                        let found = match p.timestamp {
                            LATEST => Ok(Some((partition.high_watermark(), -1))),
                            EARLIEST | EARLIEST_LOCAL => {
                                Ok(Some((partition.log_start_offset(), -1)))
                            }
                            MAX_TIMESTAMP => Ok(partition.max_timestamp_offset()),
                            ts if ts >= 0 => partition.offset_for_timestamp(ts),
                            other => {
                                return answer
                                    .with_error_code(ResponseError::InvalidRequest.code())
                                    .with_offset(other.min(-1));
                            }
                        };
                        match found {
                            Ok(Some((offset, timestamp))) => {
                                answer.with_offset(offset).with_timestamp(timestamp)
                            }
                            Ok(None) => answer.with_offset(-1).with_timestamp(-1),
                            Err(e) => answer.with_error_code(e.code.code()),
                        }
                    })
                    .collect();
                ListOffsetsTopicResponse::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions)
            })
            .collect::<Vec<_>>()
    })
    .await;
    ListOffsetsResponse::default().with_topics(result.unwrap_or_default())
}
