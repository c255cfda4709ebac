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

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::GroupId;

    use super::super::testing::*;
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn only_empty_groups_are_deleted_and_stay_deleted() {
        let f = Fixture::new(test_config());
        let (a, b) = f.stable_pair().await;
        f.commit(&a, 1, 0, 10).await;
        let request = DeleteGroupsRequest::default()
            .with_groups_names(vec![GroupId(str(GROUP)), GroupId(str("nope"))]);
        let r = f.c().delete_groups(2, request.clone()).await;
        let errors: Vec<i16> = r.results.iter().map(|r| r.error_code).collect();
        assert_eq!(
            errors,
            vec![
                ResponseError::NonEmptyGroup.code(),
                ResponseError::GroupIdNotFound.code()
            ]
        );
        for member in [&a, &b] {
            f.c()
                .leave_group(
                    0,
                    kafka_protocol::messages::LeaveGroupRequest::default()
                        .with_group_id(GroupId(str(GROUP)))
                        .with_member_id(str(member)),
                )
                .await;
        }
        f.wait_for("empty", |g| g.is(GroupState::Empty)).await;
        let r = f.c().delete_groups(2, request).await;
        assert_eq!(r.results[0].error_code, 0);
        assert_eq!(f.group_state(), None);
        let f = f.restart().await;
        assert_eq!(f.group_state(), None, "the deletion is durable");
    }
}
