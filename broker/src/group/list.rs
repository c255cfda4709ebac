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

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn groups_are_listed_with_state_and_type_filters() {
        let f = Fixture::new(test_config());
        let _ = f.stable_pair().await;
        let mut standalone = commit_request("", -1, &[(ORDERS, 0, 1)]);
        standalone.group_id = GroupId(str("standalone"));
        f.c().offset_commit(9, standalone).await;

        let all = f.c().list_groups(5, ListGroupsRequest::default()).await;
        let listed: Vec<(String, String, String, String)> = all
            .groups
            .iter()
            .map(|g| {
                (
                    g.group_id.0.to_string(),
                    g.protocol_type.to_string(),
                    g.group_state.to_string(),
                    g.group_type.to_string(),
                )
            })
            .collect();
        assert_eq!(
            listed,
            vec![
                (
                    GROUP.into(),
                    "consumer".into(),
                    "Stable".into(),
                    "classic".into()
                ),
                (
                    "standalone".into(),
                    "".into(),
                    "Empty".into(),
                    "classic".into()
                ),
            ]
        );
        let stable = f
            .c()
            .list_groups(
                4,
                ListGroupsRequest::default().with_states_filter(vec![str("stable")]),
            )
            .await;
        assert_eq!(stable.groups.len(), 1);
        let consumer_type = f
            .c()
            .list_groups(
                5,
                ListGroupsRequest::default().with_types_filter(vec![str("consumer")]),
            )
            .await;
        assert!(consumer_type.groups.is_empty(), "no KIP-848 groups here");
        let v0 = f.c().list_groups(0, ListGroupsRequest::default()).await;
        assert_eq!(v0.groups.len(), 2);
        assert!(v0.groups[0].group_state.is_empty());
    }
}
