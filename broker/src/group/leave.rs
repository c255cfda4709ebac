//! LeaveGroup: members leave (a consumer closing), or an admin removes static members.

use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use kafka_protocol::ResponseError;
use tokio::time::Instant;

use super::rebalance::{validate_current_member, NONE};
use super::state::{Group, GroupState};
use super::GroupCoordinator;

impl GroupCoordinator {
    /// Handles LeaveGroup (v0-v5). v0-v2 name one member; v3+ a batch, where a member given
    /// only by `group.instance.id` is removed administratively.
    pub async fn leave_group(
        &self,
        version: i16,
        request: LeaveGroupRequest,
    ) -> LeaveGroupResponse {
        let leaving: Vec<MemberIdentity> = if version >= 3 {
            request.members
        } else {
            vec![MemberIdentity::default().with_member_id(request.member_id)]
        };
        let (top_error, results) = self.leave_group_locked(request.group_id.0.as_str(), &leaving);
        self.timers_changed.notify_one();
        if version >= 3 {
            LeaveGroupResponse::default()
                .with_error_code(top_error)
                .with_members(results)
        } else {
            // Before v3 the one member's error is the response's error.
            let error = if top_error != NONE {
                top_error
            } else {
                results.first().map_or(NONE, |r| r.error_code)
            };
            LeaveGroupResponse::default().with_error_code(error)
        }
    }

    fn leave_group_locked(
        &self,
        group_id: &str,
        leaving: &[MemberIdentity],
    ) -> (i16, Vec<MemberResponse>) {
        if group_id.is_empty() {
            return (ResponseError::InvalidGroupId.code(), Vec::new());
        }
        let now = Instant::now();
        let mut state = self.state.lock();
        let Some(group) = state.groups.get_mut(group_id) else {
            let results = leaving
                .iter()
                .map(|m| member_response(m, ResponseError::UnknownMemberId.code()))
                .collect();
            return (NONE, results);
        };
        if group.is(GroupState::Dead) {
            return (ResponseError::CoordinatorNotAvailable.code(), Vec::new());
        }
        let results = leaving
            .iter()
            .map(|m| {
                let error = self.remove_leaving_member(group, m, now);
                member_response(m, error)
            })
            .collect();
        (NONE, results)
    }

    fn remove_leaving_member(
        &self,
        group: &mut Group,
        leaving: &MemberIdentity,
        now: Instant,
    ) -> i16 {
        let member_id = leaving.member_id.as_str();
        let instance = leaving.group_instance_id.as_deref();
        let reason = leaving.reason.as_deref().unwrap_or("not provided");
        if member_id.is_empty() {
            // Administrative removal by instance id (kafka-consumer-groups --delete-members).
            let Some(current) = instance.and_then(|i| group.current_static_member_id(i)) else {
                return ResponseError::UnknownMemberId.code();
            };
            let current = current.to_owned();
            self.remove_current_member(group, &current, reason, now);
            return NONE;
        }
        if group.is_pending_member(member_id) {
            tracing::info!(
                group = %group.group_id,
                member = member_id,
                reason,
                "pending member left the group"
            );
            self.remove_pending_member_and_update_group(group, member_id, now);
            return NONE;
        }
        match validate_current_member(group, member_id, instance) {
            Ok(()) => {
                self.remove_current_member(group, member_id, reason, now);
                NONE
            }
            Err(error) => error.code(),
        }
    }

    fn remove_current_member(
        &self,
        group: &mut Group,
        member_id: &str,
        reason: &str,
        now: Instant,
    ) {
        tracing::info!(
            group = %group.group_id,
            member = member_id,
            reason,
            "member left the group"
        );
        let why = format!("removing member {member_id} on LeaveGroup; client reason: {reason}");
        self.remove_member_and_update_group(group, member_id, &why, now);
    }
}

fn member_response(member: &MemberIdentity, error: i16) -> MemberResponse {
    MemberResponse::default()
        .with_member_id(member.member_id.clone())
        .with_group_instance_id(member.group_instance_id.clone())
        .with_error_code(error)
}

#[cfg(test)]
mod tests {
    use super::super::state::GroupState;
    use super::super::testing::*;
    use super::*;
    use kafka_protocol::messages::GroupId;

    fn leave_v0(member_id: &str) -> LeaveGroupRequest {
        LeaveGroupRequest::default()
            .with_group_id(GroupId(str(GROUP)))
            .with_member_id(str(member_id))
    }

    fn leave_batch(members: &[(&str, Option<&str>)]) -> LeaveGroupRequest {
        LeaveGroupRequest::default()
            .with_group_id(GroupId(str(GROUP)))
            .with_members(
                members
                    .iter()
                    .map(|(member, instance)| {
                        MemberIdentity::default()
                            .with_member_id(str(member))
                            .with_group_instance_id(instance.map(str))
                            .with_reason(Some(str("the consumer is closing")))
                    })
                    .collect(),
            )
    }

    #[tokio::test(start_paused = true)]
    async fn a_leaving_member_makes_the_rest_rebalance() {
        let f = Fixture::new(test_config());
        let (a, b) = f.stable_pair().await;
        let left = f.c().leave_group(0, leave_v0(&b)).await;
        assert_eq!(left.error_code, 0);
        assert_eq!(f.group_state(), Some(GroupState::PreparingRebalance));
        assert_eq!(
            f.heartbeat(&a, 1).await,
            ResponseError::RebalanceInProgress.code()
        );
        let rejoined = f.c().join_group(&client("a"), 9, range_join(&a)).await;
        assert_eq!(rejoined.generation_id, 2);
        assert_eq!(rejoined.members.len(), 1);
        // The last member leaving empties the group.
        f.c().sync_group(5, sync_request(&a, 2, &[])).await;
        let left = f.c().leave_group(5, leave_batch(&[(&a, None)])).await;
        assert_eq!(left.members[0].error_code, 0);
        f.wait_for("empty", |g| g.is(GroupState::Empty)).await;
        assert_eq!(f.generation(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn leave_errors_per_member_and_per_version() {
        let f = Fixture::new(test_config());
        let r = f.c().leave_group(0, leave_v0("ghost")).await;
        assert_eq!(r.error_code, ResponseError::UnknownMemberId.code());
        let (a, _b) = f.stable_pair().await;
        let r = f.c().leave_group(2, leave_v0("ghost")).await;
        assert_eq!(r.error_code, ResponseError::UnknownMemberId.code());
        let r = f
            .c()
            .leave_group(5, leave_batch(&[("ghost", None), (&a, None)]))
            .await;
        assert_eq!(r.error_code, 0);
        let errors: Vec<i16> = r.members.iter().map(|m| m.error_code).collect();
        assert_eq!(errors, vec![ResponseError::UnknownMemberId.code(), 0]);
        let mut empty = leave_v0(&a);
        empty.group_id = GroupId(str(""));
        assert_eq!(
            f.c().leave_group(0, empty).await.error_code,
            ResponseError::InvalidGroupId.code()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn static_members_can_be_removed_by_instance_id() {
        let f = Fixture::new(test_config());
        let joined = f
            .c()
            .join_group(
                &client("a"),
                9,
                range_join("").with_group_instance_id(Some(str("instance-a"))),
            )
            .await;
        let a = joined.member_id.to_string();
        f.c().sync_group(5, sync_request(&a, 1, &[])).await;
        // A wrong member id for the instance is fenced.
        let r = f
            .c()
            .leave_group(4, leave_batch(&[("wrong", Some("instance-a"))]))
            .await;
        assert_eq!(
            r.members[0].error_code,
            ResponseError::FencedInstanceId.code()
        );
        // What kafka-consumer-groups --delete-members sends: the instance id alone.
        let r = f
            .c()
            .leave_group(4, leave_batch(&[("", Some("instance-a"))]))
            .await;
        assert_eq!(r.members[0].error_code, 0);
        f.wait_for("empty", |g| g.is(GroupState::Empty)).await;
        let r = f
            .c()
            .leave_group(4, leave_batch(&[("", Some("instance-a"))]))
            .await;
        assert_eq!(
            r.members[0].error_code,
            ResponseError::UnknownMemberId.code()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_pending_member_can_leave() {
        let f = Fixture::new(test_config());
        let a = f.member_id_for("a").await;
        let r = f.c().leave_group(3, leave_batch(&[(&a, None)])).await;
        assert_eq!(r.members[0].error_code, 0);
        f.wait_for("no pending member", |g| g.pending_members.is_empty())
            .await;
    }
}
