//! InitProducerId (key 22): a fresh producer id for an idempotent producer. Transactions are
//! not supported, so a transactional id is refused.

use std::sync::Arc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;
use tracing::{debug, warn};

use super::{blocking, RequestContext};
use crate::security::acl::{AclOperation, ResourceType};
use crate::server::TRANSACTIONAL_REQUESTS;

pub(crate) async fn handle(
    ctx: &RequestContext,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    if let Some(id) = &request.transactional_id {
        if ctx
            .state
            .log_limit
            .admit(TRANSACTIONAL_REQUESTS, ctx.peer.ip())
        {
            warn!(peer = %ctx.peer, transactional_id = id.as_str(), "transactions are not supported; refusing InitProducerId");
        }
        return InitProducerIdResponse::default()
            .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    // KIP-679: IdempotentWrite on the cluster, or Write on any topic.
    let host = ctx.peer.ip();
    if !ctx.cluster_authorized(AclOperation::IdempotentWrite)
        && !ctx.state.authorizer.authorize_any(
            &ctx.session.principal,
            host,
            AclOperation::Write,
            ResourceType::Topic,
        )
    {
        return InitProducerIdResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    let state = Arc::clone(&ctx.state);
    match blocking(move || state.logs.allocate_producer_id()).await {
        Ok(Ok(id)) => {
            // Debug, not info: every producer start asks, and a peer can ask in a loop.
            debug!(peer = %ctx.peer, producer_id = id, "producer id allocated");
            InitProducerIdResponse::default()
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(0)
        }
        Ok(Err(e)) | Err(e) => InitProducerIdResponse::default().with_error_code(e.code.code()),
    }
}
