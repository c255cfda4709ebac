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
