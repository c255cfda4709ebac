//! The group coordinator's APIs (FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups, OffsetDelete), handed
//! to [`crate::group::GroupCoordinator`], which has one file per API under `group/`.
//!
//! Every answer is given as [`Reply::Later`]: JoinGroup and SyncGroup wait for the rest of the
//! group, commits and deletions for their fsync, and the connection keeps reading meanwhile.

use std::collections::HashSet;
use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorResponse, GroupId, HeartbeatResponse, JoinGroupResponse,
    LeaveGroupResponse, OffsetCommitResponse, OffsetDeleteResponse, OffsetFetchResponse,
    RequestKind, ResponseKind, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{Reply, RequestContext};
use crate::group::ClientContext;
use crate::security::acl::{AclOperation, ResourceType};
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
    let request = match authorize(ctx, request) {
        Ok(request) => request,
        Err(denied) => return Reply::Now(denied),
    };
    let listener = Arc::clone(&ctx.session.listener);
    let may_group = |op: AclOperation, group: &str| ctx.authorized(op, ResourceType::Group, group);
    let may_topic = |op: AclOperation, topic: &str| ctx.topic_authorized(op, topic);
    // What to take out of the coordinator's answer, decided now (the checks need the context).
    // Without Describe on the cluster, only the groups the principal may describe are listed.
    let list_authz = (matches!(request, RequestKind::ListGroups(_))
        && !ctx.cluster_authorized(AclOperation::Describe))
    .then(|| ctx.authz());
    let mut hidden_topics: HashSet<String> = HashSet::new();
    let mut denied_keys: HashSet<String> = HashSet::new();
    let mut denied_groups: Vec<String> = Vec::new();
    let mut denied_commits: Vec<OffsetCommitRequestTopic> = Vec::new();
    let request = match request {
        RequestKind::FindCoordinator(r) => {
            let keys: Vec<String> = if r.coordinator_keys.is_empty() {
                vec![r.key.to_string()]
            } else {
                r.coordinator_keys.iter().map(|k| k.to_string()).collect()
            };
            if r.key_type == 0 {
                denied_keys = keys
                    .into_iter()
                    .filter(|k| !may_group(AclOperation::Describe, k))
                    .collect();
            }
            RequestKind::FindCoordinator(r)
        }
        RequestKind::DescribeGroups(mut r) => {
            let (allowed, denied): (Vec<_>, Vec<_>) = r
                .groups
                .into_iter()
                .partition(|g| may_group(AclOperation::Describe, g.as_str()));
            r.groups = allowed;
            denied_groups = denied.into_iter().map(|g| g.as_str().to_owned()).collect();
            RequestKind::DescribeGroups(r)
        }
        RequestKind::DeleteGroups(mut r) => {
            let (allowed, denied): (Vec<_>, Vec<_>) = r
                .groups_names
                .into_iter()
                .partition(|g| may_group(AclOperation::Delete, g.as_str()));
            r.groups_names = allowed;
            denied_groups = denied.into_iter().map(|g| g.as_str().to_owned()).collect();
            RequestKind::DeleteGroups(r)
        }
        RequestKind::OffsetCommit(mut r) => {
            let (allowed, denied): (Vec<_>, Vec<_>) = r
                .topics
                .into_iter()
                .partition(|t| may_topic(AclOperation::Read, t.name.as_str()));
            r.topics = allowed;
            denied_commits = denied;
            RequestKind::OffsetCommit(r)
        }
        RequestKind::OffsetFetch(mut r) => {
            // v8+: several groups; a refused one is answered on its own.
            let (allowed, denied): (Vec<_>, Vec<_>) = r
                .groups
                .into_iter()
                .partition(|g| may_group(AclOperation::Describe, g.group_id.as_str()));
            r.groups = allowed;
            denied_groups = denied
                .into_iter()
                .map(|g| g.group_id.as_str().to_owned())
                .collect();
            let mut names: Vec<String> = Vec::new();
            for t in r.topics.iter().flatten() {
                names.push(t.name.as_str().to_owned());
            }
            for g in &r.groups {
                for t in g.topics.iter().flatten() {
                    names.push(t.name.as_str().to_owned());
                }
            }
            hidden_topics = names
                .into_iter()
                .filter(|t| !may_topic(AclOperation::Describe, t))
                .collect();
            RequestKind::OffsetFetch(r)
        }
        other => other,
    };
    Reply::Later(Box::pin(async move {
        let response: ResponseKind = match request {
            RequestKind::FindCoordinator(r) => {
                let mut response = groups.find_coordinator(version, r).await;
                advertise_listener(&mut response, &listener);
                deny_coordinators(&mut response, &denied_keys);
                response.into()
            }
            RequestKind::JoinGroup(r) => groups.join_group(&client, version, r).await.into(),
            RequestKind::SyncGroup(r) => groups.sync_group(version, r).await.into(),
            RequestKind::Heartbeat(r) => groups.heartbeat(version, r).await.into(),
            RequestKind::LeaveGroup(r) => groups.leave_group(version, r).await.into(),
            RequestKind::OffsetCommit(r) => {
                let mut response = groups.offset_commit(version, r).await;
                for topic in denied_commits {
                    response.topics.push(
                        OffsetCommitResponseTopic::default()
                            .with_name(topic.name)
                            .with_partitions(
                                topic
                                    .partitions
                                    .iter()
                                    .map(|p| {
                                        OffsetCommitResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(TOPIC_DENIED)
                                    })
                                    .collect(),
                            ),
                    );
                }
                response.into()
            }
            RequestKind::OffsetFetch(r) => {
                let mut response = if r.groups.is_empty() && !denied_groups.is_empty() {
                    OffsetFetchResponse::default()
                } else {
                    groups.offset_fetch(version, r).await
                };
                for group in denied_groups {
                    response.groups.push(
                        OffsetFetchResponseGroup::default()
                            .with_group_id(GroupId(StrBytes::from_string(group)))
                            .with_error_code(GROUP_DENIED),
                    );
                }
                for topic in &mut response.topics {
                    if hidden_topics.contains(topic.name.as_str()) {
                        for p in &mut topic.partitions {
                            p.committed_offset = -1;
                            p.metadata = None;
                            p.error_code = TOPIC_DENIED;
                        }
                    }
                }
                for group in &mut response.groups {
                    for topic in &mut group.topics {
                        if hidden_topics.contains(topic.name.as_str()) {
                            for p in &mut topic.partitions {
                                p.committed_offset = -1;
                                p.metadata = None;
                                p.error_code = TOPIC_DENIED;
                            }
                        }
                    }
                }
                response.into()
            }
            RequestKind::ListGroups(r) => {
                let mut response = groups.list_groups(version, r).await;
                if let Some(authz) = &list_authz {
                    response
                        .groups
                        .retain(|g| authz.group(AclOperation::Describe, g.group_id.as_str()));
                }
                response.into()
            }
            RequestKind::DescribeGroups(r) => {
                let mut response = groups.describe_groups(version, r).await;
                for group in denied_groups {
                    response.groups.push(
                        DescribedGroup::default()
                            .with_group_id(GroupId(StrBytes::from_string(group)))
                            .with_error_code(GROUP_DENIED),
                    );
                }
                response.into()
            }
            RequestKind::DeleteGroups(r) => {
                let mut response = groups.delete_groups(version, r).await;
                for group in denied_groups {
                    response.results.push(
                        DeletableGroupResult::default()
                            .with_group_id(GroupId(StrBytes::from_string(group)))
                            .with_error_code(GROUP_DENIED),
                    );
                }
                response.into()
            }
            RequestKind::OffsetDelete(r) => groups.offset_delete(version, r).await.into(),
            other => unreachable!("not a group request: {:?}", std::mem::discriminant(&other)),
        };
        response
    }))
}

const GROUP_DENIED: i16 = ResponseError::GroupAuthorizationFailed.code();
const TOPIC_DENIED: i16 = ResponseError::TopicAuthorizationFailed.code();

/// The checks that refuse a whole request: `Read` on the group for membership and commits,
/// `Describe` on it for OffsetFetch, `Delete` for OffsetDelete. `Err` is the refusal.
#[allow(clippy::result_large_err)]
fn authorize(ctx: &RequestContext, request: RequestKind) -> Result<RequestKind, ResponseKind> {
    let may =
        |op: AclOperation, group: &GroupId| ctx.authorized(op, ResourceType::Group, group.as_str());
    match request {
        RequestKind::JoinGroup(r) if !may(AclOperation::Read, &r.group_id) => {
            Err(JoinGroupResponse::default()
                .with_error_code(GROUP_DENIED)
                .into())
        }
        RequestKind::SyncGroup(r) if !may(AclOperation::Read, &r.group_id) => {
            Err(SyncGroupResponse::default()
                .with_error_code(GROUP_DENIED)
                .into())
        }
        RequestKind::Heartbeat(r) if !may(AclOperation::Read, &r.group_id) => {
            Err(HeartbeatResponse::default()
                .with_error_code(GROUP_DENIED)
                .into())
        }
        RequestKind::LeaveGroup(r) if !may(AclOperation::Read, &r.group_id) => {
            Err(LeaveGroupResponse::default()
                .with_error_code(GROUP_DENIED)
                .into())
        }
        RequestKind::OffsetDelete(r) if !may(AclOperation::Delete, &r.group_id) => {
            Err(OffsetDeleteResponse::default()
                .with_error_code(GROUP_DENIED)
                .into())
        }
        RequestKind::OffsetCommit(r) if !may(AclOperation::Read, &r.group_id) => {
            Err(OffsetCommitResponse::default()
                .with_topics(
                    r.topics
                        .iter()
                        .map(|t| {
                            OffsetCommitResponseTopic::default()
                                .with_name(t.name.clone())
                                .with_partitions(
                                    t.partitions
                                        .iter()
                                        .map(|p| {
                                            OffsetCommitResponsePartition::default()
                                                .with_partition_index(p.partition_index)
                                                .with_error_code(GROUP_DENIED)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                )
                .into())
        }
        RequestKind::OffsetFetch(r)
            if r.groups.is_empty() && !may(AclOperation::Describe, &r.group_id) =>
        {
            Err(OffsetFetchResponse::default()
                .with_error_code(GROUP_DENIED)
                .into())
        }
        other => Ok(other),
    }
}

/// Refuses the coordinator look-up of groups the principal may not describe.
fn deny_coordinators(response: &mut FindCoordinatorResponse, denied: &HashSet<String>) {
    if denied.is_empty() {
        return;
    }
    if response.coordinators.is_empty() {
        response.error_code = GROUP_DENIED;
        response.node_id = BrokerId(-1);
        response.host = StrBytes::default();
        response.port = -1;
        return;
    }
    for c in &mut response.coordinators {
        if denied.contains(c.key.as_str()) {
            c.error_code = GROUP_DENIED;
            c.node_id = BrokerId(-1);
            c.host = StrBytes::default();
            c.port = -1;
        }
    }
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
