//! Heartbeat: a member says it is alive and learns whether a rebalance started.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use kafka_protocol::ResponseError;
use tokio::time::Instant;

use super::rebalance::{validate_current_member, NONE};
use super::state::GroupState;
use super::GroupCoordinator;

impl GroupCoordinator {
    /// Handles Heartbeat (v0-v4).
    pub async fn heartbeat(&self, version: i16, request: HeartbeatRequest) -> HeartbeatResponse {
        let error = self.heartbeat_error(version, &request);
        self.timers_changed.notify_one();
        HeartbeatResponse::default().with_error_code(error)
    }

    fn heartbeat_error(&self, version: i16, request: &HeartbeatRequest) -> i16 {
        let group_id = request.group_id.0.as_str();
        if group_id.is_empty() {
            return ResponseError::InvalidGroupId.code();
        }
        let member_id = request.member_id.as_str();
        let instance = if version >= 3 {
            request.group_instance_id.as_deref()
        } else {
            None
        };
        let mut state = self.state.lock();
        let Some(group) = state.groups.get_mut(group_id) else {
            return ResponseError::UnknownMemberId.code();
        };
        if group.is(GroupState::Dead) {
            return ResponseError::CoordinatorNotAvailable.code();
        }
        if let Err(error) = validate_current_member(group, member_id, instance) {
            return error.code();
        }
        if request.generation_id != group.generation_id {
            return ResponseError::IllegalGeneration.code();
        }
        let now = Instant::now();
        match group.state {
            GroupState::Empty | GroupState::Dead => ResponseError::UnknownMemberId.code(),
            // Members may heartbeat between their JoinGroup and SyncGroup answers.
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.schedule_heartbeat(group, member_id, now);
                NONE
            }
            GroupState::PreparingRebalance => {
                self.schedule_heartbeat(group, member_id, now);
                ResponseError::RebalanceInProgress.code()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::state::GroupState;
    use super::super::testing::*;
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn heartbeats_keep_a_member_past_many_session_timeouts() {
        let f = Fixture::new(test_config());
        let (a, b) = f.stable_pair().await;
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(SESSION_MS as u64 / 2)).await;
            assert_eq!(f.heartbeat(&a, 1).await, 0);
            assert_eq!(f.heartbeat(&b, 1).await, 0);
        }
        assert_eq!(f.generation(), 1);
        assert_eq!(f.group_state(), Some(GroupState::Stable));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_member_is_evicted_after_its_session_timeout_and_the_group_rebalances() {
        let f = Fixture::new(test_config());
        let (a, b) = f.stable_pair().await;
        let start = tokio::time::Instant::now();
        // b dies; a heartbeats every 3 s until told to rejoin.
        let mut error = 0;
        while error == 0 {
            tokio::time::sleep(Duration::from_millis(3_000)).await;
            error = f.heartbeat(&a, 1).await;
        }
        assert_eq!(error, ResponseError::RebalanceInProgress.code());
        let noticed = start.elapsed();
        assert!(
            noticed >= Duration::from_millis(SESSION_MS as u64)
                && noticed <= Duration::from_millis(SESSION_MS as u64 + 3_000),
            "{noticed:?}"
        );
        // a rejoins alone: the rebalance completes at once (b is gone).
        let rejoined = f.c().join_group(&client("a"), 9, range_join(&a)).await;
        assert_eq!(rejoined.generation_id, 2);
        assert_eq!(rejoined.members.len(), 1);
        assert_eq!(
            f.heartbeat(&b, 1).await,
            ResponseError::UnknownMemberId.code()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeat_errors_follow_kafka() {
        let f = Fixture::new(test_config());
        assert_eq!(
            f.heartbeat("x", 1).await,
            ResponseError::UnknownMemberId.code()
        );
        let (a, _b) = f.stable_pair().await;
        assert_eq!(
            f.heartbeat(&a, 0).await,
            ResponseError::IllegalGeneration.code()
        );
        assert_eq!(
            f.heartbeat("x", 1).await,
            ResponseError::UnknownMemberId.code()
        );
        let empty = f
            .c()
            .heartbeat(4, HeartbeatRequest::default().with_member_id(str(&a)))
            .await;
        assert_eq!(empty.error_code, ResponseError::InvalidGroupId.code());
        // A static instance id that does not belong to the member.
        let hb = f
            .c()
            .heartbeat(
                4,
                HeartbeatRequest::default()
                    .with_group_id(GroupId(str(GROUP)))
                    .with_member_id(str(&a))
                    .with_generation_id(1)
                    .with_group_instance_id(Some(str("unknown-instance"))),
            )
            .await;
        assert_eq!(hb.error_code, ResponseError::UnknownMemberId.code());
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeat_between_join_and_sync_is_accepted() {
        let f = Fixture::new(test_config());
        let a = f.member_id_for("a").await;
        let joined = f.c().join_group(&client("a"), 9, range_join(&a)).await;
        assert_eq!(f.group_state(), Some(GroupState::CompletingRebalance));
        assert_eq!(f.heartbeat(&a, joined.generation_id).await, 0);
    }
}
