//! DescribeGroups: state, protocol and members of groups.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::rebalance::NONE;
use super::state::{Group, GroupState};
use super::GroupCoordinator;

/// `authorized_operations` when not asked for.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;
/// Without an authorizer every group operation is allowed: READ (3), DELETE (6), DESCRIBE (8).
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

impl GroupCoordinator {
    /// Handles DescribeGroups (v0-v6). Member metadata and assignments are only given for a
    /// stable group, as Kafka does. An unknown group is `Dead` (v6+: `GROUP_ID_NOT_FOUND`).
    pub async fn describe_groups(
        &self,
        version: i16,
        request: DescribeGroupsRequest,
    ) -> DescribeGroupsResponse {
        let with_operations = version >= 3 && request.include_authorized_operations;
        let state = self.state.lock();
        let groups = request
            .groups
            .into_iter()
            .map(|group_id| {
                let described = match state.groups.get(group_id.0.as_str()) {
                    Some(group) => describe(group, version),
                    None if version >= 6 => DescribedGroup::default()
                        .with_error_code(ResponseError::GroupIdNotFound.code())
                        .with_error_message(Some(StrBytes::from_string(format!(
                            "Group {} not found.",
                            group_id.0
                        ))))
                        .with_group_state(StrBytes::from_static_str(GroupState::Dead.as_str())),
                    None => DescribedGroup::default()
                        .with_group_state(StrBytes::from_static_str(GroupState::Dead.as_str())),
                };
                described
                    .with_group_id(group_id)
                    .with_authorized_operations(if with_operations {
                        GROUP_OPERATIONS
                    } else {
                        AUTHORIZED_OPERATIONS_OMITTED
                    })
            })
            .collect();
        DescribeGroupsResponse::default().with_groups(groups)
    }
}

fn describe(group: &Group, version: i16) -> DescribedGroup {
    let stable = group.is(GroupState::Stable);
    let protocol = if stable {
        group.protocol_name.clone().unwrap_or_default()
    } else {
        String::new()
    };
    let members = group
        .members
        .values()
        .map(|member| {
            let mut described = DescribedGroupMember::default()
                .with_member_id(StrBytes::from_string(member.member_id.clone()))
                .with_client_id(StrBytes::from_string(member.client_id.clone()))
                .with_client_host(StrBytes::from_string(member.client_host.clone()));
            if version >= 4 {
                described = described.with_group_instance_id(
                    member.group_instance_id.clone().map(StrBytes::from_string),
                );
            }
            if stable {
                described = described
                    .with_member_metadata(member.metadata(&protocol))
                    .with_member_assignment(member.assignment.clone());
            }
            described
        })
        .collect();
    DescribedGroup::default()
        .with_error_code(NONE)
        .with_group_state(StrBytes::from_static_str(group.state.as_str()))
        .with_protocol_type(StrBytes::from_string(
            group.protocol_type.clone().unwrap_or_default(),
        ))
        .with_protocol_data(StrBytes::from_string(protocol))
        .with_members(members)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::GroupId;

    use super::super::state::GroupState;
    use super::super::testing::*;
    use super::*;

    fn request(groups: &[&str]) -> DescribeGroupsRequest {
        DescribeGroupsRequest::default()
            .with_groups(groups.iter().map(|g| GroupId(str(g))).collect())
    }

    #[tokio::test(start_paused = true)]
    async fn stable_groups_show_members_with_metadata_and_assignment() {
        let f = Fixture::new(test_config());
        let (a, b) = f.stable_pair().await;
        let r = f
            .c()
            .describe_groups(
                5,
                request(&[GROUP]).with_include_authorized_operations(true),
            )
            .await;
        let g = &r.groups[0];
        assert_eq!(g.error_code, 0);
        assert_eq!(g.group_state.as_str(), "Stable");
        assert_eq!(g.protocol_type.as_str(), "consumer");
        assert_eq!(g.protocol_data.as_str(), "range");
        assert_eq!(g.authorized_operations, GROUP_OPERATIONS);
        let mut members: Vec<_> = g
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.client_id.to_string(),
                    m.client_host.to_string(),
                    m.member_assignment.clone(),
                )
            })
            .collect();
        members.sort();
        let mut expected = vec![
            (
                a,
                "a".to_owned(),
                "/127.0.0.1".to_owned(),
                bytes::Bytes::from_static(b"for a"),
            ),
            (
                b,
                "b".to_owned(),
                "/127.0.0.1".to_owned(),
                bytes::Bytes::from_static(b"for b"),
            ),
        ];
        expected.sort();
        assert_eq!(members, expected);
        assert_eq!(g.members[0].member_metadata, subscription(&[ORDERS]));
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_groups_are_dead_or_not_found_by_version() {
        let f = Fixture::new(test_config());
        let r = f.c().describe_groups(5, request(&["nope"])).await;
        assert_eq!(r.groups[0].error_code, 0);
        assert_eq!(r.groups[0].group_state.as_str(), "Dead");
        assert_eq!(r.groups[0].authorized_operations, i32::MIN);
        let r = f.c().describe_groups(6, request(&["nope"])).await;
        assert_eq!(
            r.groups[0].error_code,
            ResponseError::GroupIdNotFound.code()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn rebalancing_groups_hide_member_metadata() {
        let f = Fixture::new(test_config());
        let (a, _b) = f.stable_pair().await;
        let _rejoin = f.spawn_join("a", 9, range_join(&a));
        f.wait_for("rebalancing", |g| g.is(GroupState::PreparingRebalance))
            .await;
        let r = f.c().describe_groups(5, request(&[GROUP])).await;
        let g = &r.groups[0];
        assert_eq!(g.group_state.as_str(), "PreparingRebalance");
        assert_eq!(g.protocol_data.as_str(), "");
        assert_eq!(g.members.len(), 2);
        assert!(g.members.iter().all(|m| m.member_metadata.is_empty()));
    }
}
