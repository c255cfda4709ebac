//! Produce (key 0): validate and append record batches; with acks=all and the default
//! `log.flush = sync`, answer only after the data is fsync'd (group commit).
//!
//! The append happens in the request's first stage, in the order requests arrive on the
//! connection; the wait for fsync is the second stage, so a pipelining client's next
//! request is appended while this one's fsync is under way.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tracing::warn;

use super::{blocking, Reply, RequestContext};
use crate::config::LogFlush;
use crate::security::acl::AclOperation;
use crate::server::BrokerState;
use crate::server::{REFUSED_PRODUCE_REQUESTS, TRANSACTIONAL_REQUESTS};
use crate::storage::partition::Partition;
use crate::storage::ApiError;

/// acks=-1: the leader waits for the full in-sync replica set (here: for durability).
const ACKS_ALL: i16 = -1;

struct PartitionWork {
    topic: usize,
    index: i32,
    records: Option<Bytes>,
    target: Result<Arc<Partition>, ApiError>,
}

pub(crate) async fn handle(ctx: RequestContext, request: ProduceRequest) -> Reply {
    let acks = request.acks;
    let version = ctx.version();
    let state = Arc::clone(&ctx.state);
    if request.transactional_id.is_some()
        && state.log_limit.admit(TRANSACTIONAL_REQUESTS, ctx.peer.ip())
    {
        warn!(peer = %ctx.peer, "transactional produce refused: transactions are not supported");
    }
    let mut responses: Vec<TopicProduceResponse> = Vec::new();
    let mut work = Vec::new();
    for (t, topic_data) in request.topic_data.into_iter().enumerate() {
        let name = topic_data.name.clone();
        responses.push(TopicProduceResponse::default().with_name(name.clone()));
        let topic = state.logs.topic(name.as_str());
        let authorized = ctx.topic_authorized(AclOperation::Write, name.as_str());
        for partition in topic_data.partition_data {
            let target = if !authorized {
                Err(ApiError::new(
                    ResponseError::TopicAuthorizationFailed,
                    format!(
                        "{} may not write to topic '{}'",
                        ctx.session.principal,
                        name.as_str()
                    ),
                ))
            } else if !matches!(acks, 0 | 1 | ACKS_ALL) {
                Err(ApiError::new(
                    ResponseError::InvalidRequiredAcks,
                    format!("acks must be 0, 1 or -1 (got {acks})"),
                ))
            } else if request.transactional_id.is_some() {
                Err(ApiError::new(
                    ResponseError::TransactionalIdAuthorizationFailed,
                    "transactions are not supported by this broker",
                ))
            } else {
                match &topic {
                    Some(topic) => topic.partition(partition.index).ok_or_else(|| {
                        ApiError::new(
                            ResponseError::UnknownTopicOrPartition,
                            format!(
                                "topic '{}' has no partition {}",
                                name.as_str(),
                                partition.index
                            ),
                        )
                    }),
                    None => Err(ApiError::new(
                        ResponseError::UnknownTopicOrPartition,
                        format!("topic '{}' does not exist", name.as_str()),
                    )),
                }
            };
            work.push(PartitionWork {
                topic: t,
                index: partition.index,
                records: partition.records,
                target,
            });
        }
    }
    // Stage one: the appends, off the async workers, in one blocking call for the request.
    let appended = blocking(move || {
        work.into_iter()
            .map(|w| {
                let result = w.target.and_then(|partition| {
                    let records = w.records.unwrap_or_default();
                    let info = partition.append(&records)?;
                    Ok((partition, info))
                });
                (w.topic, w.index, result)
            })
            .collect::<Vec<_>>()
    })
    .await;
    let appended = match appended {
        Ok(appended) => appended,
        Err(e) => {
            warn!(error = %e.message, "produce failed");
            Vec::new()
        }
    };
    state.appended.notify_waiters();
    let mut to_sync = Vec::new();
    let mut results = Vec::with_capacity(appended.len());
    for (topic, index, result) in appended {
        match result {
            Ok((partition, info)) => {
                // A duplicate is synced too: its original may still await its fsync.
                let _ = info.appended;
                to_sync.push(Arc::clone(&partition));
                results.push((topic, index, Ok(info), Some(partition)));
            }
            Err(e) => {
                if !matches!(
                    e.code,
                    ResponseError::UnknownTopicOrPartition
                        | ResponseError::TopicAuthorizationFailed
                ) && state
                    .log_limit
                    .admit(REFUSED_PRODUCE_REQUESTS, ctx.peer.ip())
                {
                    warn!(peer = %ctx.peer, code = ?e.code, error = %e.message, "produce refused");
                }
                results.push((topic, index, Err(e), None));
            }
        }
    }
    if acks == 0 {
        return Reply::Nothing;
    }
    let must_sync = acks == ACKS_ALL && state.config().log_flush == LogFlush::Sync;
    let finish = move |synced: bool| {
        for (topic, index, result, _) in results {
            let mut partition = PartitionProduceResponse::default().with_index(index);
            match result {
                Ok(info) if synced || !must_sync => {
                    partition.base_offset = info.base_offset;
                    if version >= 5 {
                        partition.log_start_offset = info.log_start_offset;
                    }
                }
                Ok(_) => {
                    partition.error_code = ResponseError::KafkaStorageError.code();
                    partition.base_offset = -1;
                    if version >= 8 {
                        partition.error_message =
                            Some(StrBytes::from_static_str("fsync of the log failed"));
                    }
                }
                Err(e) => {
                    partition.error_code = e.code.code();
                    partition.base_offset = -1;
                    if version >= 8 {
                        partition.error_message = Some(StrBytes::from_string(e.message));
                    }
                }
            }
            responses[topic].partition_responses.push(partition);
        }
        ResponseKind::Produce(ProduceResponse::default().with_responses(responses))
    };
    if !must_sync || to_sync.is_empty() {
        return Reply::Now(finish(true));
    }
    Reply::Later(Box::pin(wait_and_answer(state, to_sync, finish)))
}

async fn wait_and_answer(
    state: Arc<BrokerState>,
    to_sync: Vec<Arc<Partition>>,
    finish: impl FnOnce(bool) -> ResponseKind,
) -> ResponseKind {
    let synced = state.commit.wait_durable(to_sync).await.is_ok();
    finish(synced)
}
