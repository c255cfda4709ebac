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
