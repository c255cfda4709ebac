//! SyncGroup: the leader hands in the assignment; every member waits for its share.

use std::collections::HashMap;

use bytes::Bytes;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::rebalance::{validate_current_member, NONE};
use super::state::{Group, GroupState, SyncOutcome};
use super::GroupCoordinator;

enum Pending {
    Ready(SyncOutcome),
    Waiting(oneshot::Receiver<SyncOutcome>),
}

impl GroupCoordinator {
    /// Handles SyncGroup (v0-v5). A member's request waits until the leader's assignment
    /// arrives (or the rebalance is abandoned).
    pub async fn sync_group(&self, version: i16, request: SyncGroupRequest) -> SyncGroupResponse {
        let group_id = request.group_id.0.to_string();
        let outcome = if group_id.is_empty() {
            SyncOutcome::error(ResponseError::InvalidGroupId.code())
        } else {
            let pending = {
                let mut state = self.state.lock();
                match state.groups.get_mut(&group_id) {
                    None => {
                        Pending::Ready(SyncOutcome::error(ResponseError::UnknownMemberId.code()))
                    }
                    Some(group) => self.sync_group_locked(group, version, request),
                }
            };
            self.timers_changed.notify_one();
            match pending {
                Pending::Ready(outcome) => outcome,
                Pending::Waiting(receiver) => receiver.await.unwrap_or_else(|_| {
                    SyncOutcome::error(ResponseError::RebalanceInProgress.code())
                }),
            }
        };
        let mut response = SyncGroupResponse::default()
            .with_error_code(outcome.error)
            .with_assignment(outcome.assignment);
        if version >= 5 {
            response = response
                .with_protocol_type(outcome.protocol_type.map(StrBytes::from_string))
                .with_protocol_name(outcome.protocol_name.map(StrBytes::from_string));
        }
        response
    }

    fn sync_group_locked(
        &self,
        group: &mut Group,
        version: i16,
        request: SyncGroupRequest,
    ) -> Pending {
        let now = Instant::now();
        let member_id = request.member_id.to_string();
        let instance = if version >= 3 {
            request.group_instance_id.as_deref()
        } else {
            None
        };
        if group.is(GroupState::Dead) {
            return Pending::Ready(SyncOutcome::error(
                ResponseError::CoordinatorNotAvailable.code(),
            ));
        }
        if let Err(error) = validate_current_member(group, &member_id, instance) {
            return Pending::Ready(SyncOutcome::error(error.code()));
        }
        if request.generation_id != group.generation_id {
            return Pending::Ready(SyncOutcome::error(ResponseError::IllegalGeneration.code()));
        }
        if version >= 5 {
            let type_mismatch = request
                .protocol_type
                .as_deref()
                .is_some_and(|t| group.protocol_type.as_deref() != Some(t));
            let name_mismatch = request
                .protocol_name
                .as_deref()
                .is_some_and(|n| group.protocol_name.as_deref() != Some(n));
            if type_mismatch || name_mismatch {
                return Pending::Ready(SyncOutcome::error(
                    ResponseError::InconsistentGroupProtocol.code(),
                ));
            }
        }
        match group.state {
            GroupState::Empty => {
                Pending::Ready(SyncOutcome::error(ResponseError::UnknownMemberId.code()))
            }
            GroupState::PreparingRebalance => Pending::Ready(SyncOutcome::error(
                ResponseError::RebalanceInProgress.code(),
            )),
            GroupState::CompletingRebalance => {
                let (sender, receiver) = oneshot::channel();
                group
                    .members
                    .get_mut(&member_id)
                    .expect("validated")
                    .awaiting_sync = Some(sender);
                self.remove_pending_sync_member(group, &member_id);
                if group.is_leader(&member_id) {
                    let mut assignment: HashMap<String, Bytes> = request
                        .assignments
                        .into_iter()
                        .map(|a| (a.member_id.to_string(), a.assignment))
                        .collect();
                    let missing: Vec<&String> = group
                        .members
                        .keys()
                        .filter(|id| !assignment.contains_key(*id))
                        .collect();
                    if !missing.is_empty() {
                        tracing::warn!(
                            group = %group.group_id,
                            generation = group.generation_id,
                            members = ?missing,
                            "leader sent no assignment for some members; they get an empty one"
                        );
                    }
                    assignment.retain(|id, _| group.members.contains_key(id));
                    tracing::info!(
                        group = %group.group_id,
                        generation = group.generation_id,
                        leader = %member_id,
                        members = group.members.len(),
                        static_members = group.static_members.len(),
                        "assignment received from the leader"
                    );
                    self.set_and_propagate_assignment(group, assignment, now);
                    group.transition_to(GroupState::Stable, self.clock.now_ms());
                    self.store_group(group);
                }
                Pending::Waiting(receiver)
            }
            GroupState::Stable => {
                self.remove_pending_sync_member(group, &member_id);
                self.schedule_heartbeat(group, &member_id, now);
                let member = group.members.get(&member_id).expect("validated");
                Pending::Ready(SyncOutcome {
                    error: NONE,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol_name.clone(),
                    assignment: member.assignment.clone(),
                })
            }
            GroupState::Dead => unreachable!("checked above"),
        }
    }
}
