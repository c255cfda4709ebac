//! Fetch (key 1): serve record batches straight from segment files, long-polling up to
//! `max_wait_ms` until `min_bytes` are available. Sessions (KIP-227) are not kept: every
//! response carries session id 0, which tells clients to send full fetches.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ResponseKind};
use kafka_protocol::ResponseError;
use tokio::time::Instant;

use super::{blocking, Reply, RequestContext};
use crate::security::acl::AclOperation;
use crate::server::BrokerState;

/// Longest long poll honoured, whatever the client asks.
const MAX_WAIT: Duration = Duration::from_secs(30);

pub(crate) fn handle(ctx: RequestContext, request: FetchRequest) -> Reply {
    let version = ctx.version();
    let state = Arc::clone(&ctx.state);
    if request.session_id != 0 || request.session_epoch > 0 {
        let code = if request.session_id != 0 {
            ResponseError::FetchSessionIdNotFound
        } else {
            ResponseError::InvalidFetchSessionEpoch
        };
        let mut response = FetchResponse::default();
        if version >= 7 {
            response.error_code = code.code();
        }
        return Reply::Now(ResponseKind::Fetch(response));
    }
    let denied: HashSet<String> = request
        .topics
        .iter()
        .map(|t| t.topic.to_string())
        .filter(|topic| !ctx.topic_authorized(AclOperation::Read, topic))
        .collect();
    Reply::Later(Box::pin(async move {
        ResponseKind::Fetch(fetch_with_wait(state, request, version, Arc::new(denied)).await)
    }))
}

async fn fetch_with_wait(
    state: Arc<BrokerState>,
    request: FetchRequest,
    version: i16,
    denied: Arc<HashSet<String>>,
) -> FetchResponse {
    let wait = Duration::from_millis(request.max_wait_ms.max(0) as u64).min(MAX_WAIT);
    let deadline = Instant::now() + wait;
    let min_bytes = request.min_bytes.max(0) as usize;
    let request = Arc::new(request);
    loop {
        // Register for wake-ups before reading, so an append in between is not missed.
        let appended = state.appended.notified();
        tokio::pin!(appended);
        appended.as_mut().enable();
        let (response, bytes, errors) = read_once(&state, &request, version, &denied).await;
        if bytes >= min_bytes || errors || Instant::now() >= deadline {
            return response;
        }
        tokio::select! {
            () = &mut appended => {}
            () = tokio::time::sleep_until(deadline) => {}
            () = state.shutdown.cancelled() => return response,
        }
    }
}

async fn read_once(
    state: &Arc<BrokerState>,
    request: &Arc<FetchRequest>,
    version: i16,
    denied: &Arc<HashSet<String>>,
) -> (FetchResponse, usize, bool) {
    let shared = Arc::clone(state);
    let req = Arc::clone(request);
    let denied = Arc::clone(denied);
    let result = blocking(move || {
        let mut remaining = req.max_bytes.max(0) as u64;
        let mut total = 0usize;
        let mut errors = false;
        let mut topics = Vec::with_capacity(req.topics.len());
        for fetch_topic in &req.topics {
            let topic = shared.logs.topic(fetch_topic.topic.as_str());
            let allowed = !denied.contains(fetch_topic.topic.as_str());
            let mut partitions = Vec::with_capacity(fetch_topic.partitions.len());
            for p in &fetch_topic.partitions {
                let mut data = PartitionData::default().with_partition_index(p.partition);
                if !allowed {
                    data.error_code = ResponseError::TopicAuthorizationFailed.code();
                    data.high_watermark = -1;
                    errors = true;
                    partitions.push(data);
                    continue;
                }
                let partition = topic.as_ref().and_then(|t| t.partition(p.partition));
                let Some(partition) = partition else {
                    data.error_code = ResponseError::UnknownTopicOrPartition.code();
                    data.high_watermark = -1;
                    errors = true;
                    partitions.push(data);
                    continue;
                };
                // KIP-74: the first batch is returned whole even beyond the limits.
                let limit = if total == 0 {
                    (p.partition_max_bytes.max(0) as u64).min(remaining.max(1))
                } else {
                    (p.partition_max_bytes.max(0) as u64).min(remaining)
                };
                let read = if limit == 0 {
                    Ok(None)
                } else {
                    partition.read(p.fetch_offset, limit).map(Some)
                };
                match read {
                    Ok(Some(read)) => {
                        total += read.records.len();
                        remaining = remaining.saturating_sub(read.records.len() as u64);
                        data.high_watermark = read.high_watermark;
                        data.last_stable_offset = read.high_watermark;
                        if version >= 5 {
                            data.log_start_offset = read.log_start_offset;
                        }
                        data.records = Some(Bytes::from(read.records));
                    }
                    Ok(None) => {
                        data.high_watermark = partition.high_watermark();
                        data.last_stable_offset = data.high_watermark;
                        if version >= 5 {
                            data.log_start_offset = partition.log_start_offset();
                        }
                    }
                    Err(e) => {
                        errors = true;
                        data.error_code = e.code.code();
                        data.high_watermark = partition.high_watermark();
                        data.last_stable_offset = data.high_watermark;
                        if version >= 5 {
                            data.log_start_offset = partition.log_start_offset();
                        }
                    }
                }
                partitions.push(data);
            }
            topics.push(
                FetchableTopicResponse::default()
                    .with_topic(fetch_topic.topic.clone())
                    .with_partitions(partitions),
            );
        }
        (topics, total, errors)
    })
    .await;
    let mut response = FetchResponse::default();
    match result {
        Ok((topics, total, errors)) => {
            response.responses = topics;
            (response, total, errors)
        }
        Err(e) => {
            if version >= 7 {
                response.error_code = e.code.code();
            }
            (response, 0, true)
        }
    }
}
