//! ListGroups: every group the coordinator knows.

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::rebalance::NONE;
use super::GroupCoordinator;

/// The group type of every group here: the classic protocol (KIP-848's "consumer" groups are
/// not implemented).
pub const CLASSIC_GROUP_TYPE: &str = "classic";

impl GroupCoordinator {
    /// Handles ListGroups (v0-v5), with the state filter (v4+) and type filter (v5+), both
    /// case-insensitive.
    pub async fn list_groups(
        &self,
        version: i16,
        request: ListGroupsRequest,
    ) -> ListGroupsResponse {
        let states: Vec<String> = if version >= 4 {
            request
                .states_filter
                .iter()
                .map(|s| s.to_lowercase())
                .collect()
        } else {
            Vec::new()
        };
        let types: Vec<String> = if version >= 5 {
            request
                .types_filter
                .iter()
                .map(|s| s.to_lowercase())
                .collect()
        } else {
            Vec::new()
        };
        if !types.is_empty() && !types.iter().any(|t| t == CLASSIC_GROUP_TYPE) {
            return ListGroupsResponse::default().with_error_code(NONE);
        }
        let state = self.state.lock();
        let mut groups: Vec<ListedGroup> = state
            .groups
            .values()
            .filter(|g| states.is_empty() || states.contains(&g.state.as_str().to_lowercase()))
            .map(|g| {
                let mut listed = ListedGroup::default()
                    .with_group_id(GroupId(StrBytes::from_string(g.group_id.clone())))
                    .with_protocol_type(StrBytes::from_string(
                        g.protocol_type.clone().unwrap_or_default(),
                    ));
                if version >= 4 {
                    listed = listed.with_group_state(StrBytes::from_static_str(g.state.as_str()));
                }
                if version >= 5 {
                    listed = listed.with_group_type(StrBytes::from_static_str(CLASSIC_GROUP_TYPE));
                }
                listed
            })
            .collect();
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        ListGroupsResponse::default()
            .with_error_code(NONE)
            .with_groups(groups)
    }
}
