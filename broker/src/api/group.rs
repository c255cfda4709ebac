//! The group coordinator's APIs (FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups, OffsetDelete), handed
//! to [`crate::group::GroupCoordinator`], which has one file per API under `group/`.
//!
//! Every answer is given as [`Reply::Later`]: JoinGroup and SyncGroup wait for the rest of the
//! group, commits and deletions for their fsync, and the connection keeps reading meanwhile.

use std::sync::Arc;

use kafka_protocol::messages::{FindCoordinatorResponse, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use super::{Reply, RequestContext};
use crate::group::ClientContext;
use crate::security::Listener;

/// Runs one group-coordinator request. Other requests are answered with nothing.
pub(crate) fn handle(ctx: &RequestContext, request: RequestKind) -> Reply {
    let groups = Arc::clone(&ctx.state.groups);
    let version = ctx.version();
    let client = ClientContext::new(
        ctx.header
            .client_id
            .as_deref()
            .unwrap_or_default()
            .to_owned(),
        ctx.peer.ip(),
    );
    let listener = Arc::clone(&ctx.session.listener);
    Reply::Later(Box::pin(async move {
        let response: ResponseKind = match request {
            RequestKind::FindCoordinator(r) => {
                let mut response = groups.find_coordinator(version, r).await;
                advertise_listener(&mut response, &listener);
                response.into()
            }
            RequestKind::JoinGroup(r) => groups.join_group(&client, version, r).await.into(),
            RequestKind::SyncGroup(r) => groups.sync_group(version, r).await.into(),
            RequestKind::Heartbeat(r) => groups.heartbeat(version, r).await.into(),
            RequestKind::LeaveGroup(r) => groups.leave_group(version, r).await.into(),
            RequestKind::OffsetCommit(r) => groups.offset_commit(version, r).await.into(),
            RequestKind::OffsetFetch(r) => groups.offset_fetch(version, r).await.into(),
            RequestKind::ListGroups(r) => groups.list_groups(version, r).await.into(),
            RequestKind::DescribeGroups(r) => groups.describe_groups(version, r).await.into(),
            RequestKind::DeleteGroups(r) => groups.delete_groups(version, r).await.into(),
            RequestKind::OffsetDelete(r) => groups.offset_delete(version, r).await.into(),
            other => unreachable!("not a group request: {:?}", std::mem::discriminant(&other)),
        };
        response
    }))
}

/// The coordinator is this broker, reached through the listener the client is connected to
/// (the coordinator itself knows only the first listener).
fn advertise_listener(response: &mut FindCoordinatorResponse, listener: &Listener) {
    // v0-3 answer at the top level, v4+ in `coordinators` (the top-level fields must then
    // stay at their defaults to encode).
    if response.coordinators.is_empty() && response.node_id.0 >= 0 {
        response.host = StrBytes::from_string(listener.advertised_host.clone());
        response.port = listener.advertised_port;
    }
    for coordinator in &mut response.coordinators {
        if coordinator.node_id.0 >= 0 {
            coordinator.host = StrBytes::from_string(listener.advertised_host.clone());
            coordinator.port = listener.advertised_port;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::api::supported_versions;
    use crate::group::GROUP_API_VERSIONS;

    #[test]
    fn every_group_api_is_advertised_with_the_coordinators_versions() {
        for &(key, min, max) in GROUP_API_VERSIONS {
            assert_eq!(supported_versions(key), Some((min, max)), "{key:?}");
        }
    }
}
