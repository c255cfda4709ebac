//! DeleteGroups: remove groups without members, with their committed offsets.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use kafka_protocol::ResponseError;

use super::rebalance::NONE;
use super::state::GroupState;
use super::store::StoreRecord;
use super::GroupCoordinator;

impl GroupCoordinator {
    /// Handles DeleteGroups (v0-v2): `NON_EMPTY_GROUP` while a group has members,
    /// `GROUP_ID_NOT_FOUND` for an unknown one. Answered once the deletion is on disk.
    pub async fn delete_groups(
        &self,
        _version: i16,
        request: DeleteGroupsRequest,
    ) -> DeleteGroupsResponse {
        let mut results = Vec::new();
        let mut records = Vec::new();
        {
            let mut state = self.state.lock();
            for group_id in request.groups_names {
                let name = group_id.0.to_string();
                let error = match state.groups.get(&name).map(|g| g.state) {
                    None | Some(GroupState::Dead) => ResponseError::GroupIdNotFound.code(),
                    Some(GroupState::Empty) => {
                        state.groups.remove(&name);
                        tracing::info!(group = %name, "group deleted");
                        records.push(StoreRecord::GroupTombstone { group: name });
                        NONE
                    }
                    Some(_) => ResponseError::NonEmptyGroup.code(),
                };
                results.push(
                    DeletableGroupResult::default()
                        .with_group_id(group_id)
                        .with_error_code(error),
                );
            }
        }
        if !records.is_empty() {
            let written = matches!(self.store.append(records).await, Ok(Ok(())));
            if !written {
                for result in &mut results {
                    if result.error_code == NONE {
                        result.error_code = ResponseError::UnknownServerError.code();
                    }
                }
            }
        }
        DeleteGroupsResponse::default().with_results(results)
    }
}
