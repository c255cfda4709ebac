//! The rebalance steps several APIs share (Kafka's `GroupCoordinator` internals): preparing
//! and completing the join phase, propagating assignments, removing members and firing timers.
//!
//! Every function here runs with the coordinator's state locked; answers to waiting JoinGroup
//! and SyncGroup requests are sent through their channels, never awaited.

use std::collections::HashMap;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::time::Instant;

use super::state::{Group, GroupState, InitialDelay, JoinOutcome, JoinTimer, SyncOutcome};
use super::store::StoreRecord;
use super::GroupCoordinator;

pub(crate) const NONE: i16 = 0;

/// Checks that `member_id` (and `group.instance.id`, if given) is a current member (Kafka's
/// `validateCurrentMember`): a static instance mapped to another member id is fenced.
pub(crate) fn validate_current_member(
    group: &Group,
    member_id: &str,
    group_instance_id: Option<&str>,
) -> Result<(), ResponseError> {
    if let Some(instance) = group_instance_id {
        match group.current_static_member_id(instance) {
            Some(current) if current != member_id => {
                tracing::info!(
                    group = %group.group_id,
                    member = member_id,
                    instance,
                    current,
                    "request from a static member is fenced by the instance's current member id"
                );
                return Err(ResponseError::FencedInstanceId);
            }
            Some(_) => {}
            None => return Err(ResponseError::UnknownMemberId),
        }
    }
    if group.has_member(member_id) {
        Ok(())
    } else {
        Err(ResponseError::UnknownMemberId)
    }
}

impl GroupCoordinator {
    /// Restarts the member's session timer.
    pub(crate) fn schedule_heartbeat(&self, group: &mut Group, member_id: &str, now: Instant) {
        if let Some(member) = group.members.get_mut(member_id) {
            member.heartbeat_deadline = Some(now + member.session_timeout);
        }
    }

    /// Starts a rebalance if the group's state allows it (Kafka's `maybePrepareRebalance`).
    pub(crate) fn maybe_prepare_rebalance(&self, group: &mut Group, reason: &str, now: Instant) {
        if matches!(
            group.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        ) {
            self.prepare_rebalance(group, reason, now);
        }
    }

    /// Starts a rebalance (Kafka's `prepareRebalance`): members waiting for their assignment are
    /// told to rejoin, and the join phase starts with its timer.
    pub(crate) fn prepare_rebalance(&self, group: &mut Group, reason: &str, now: Instant) {
        if group.is(GroupState::CompletingRebalance) {
            reset_and_propagate_assignment_error(group, ResponseError::RebalanceInProgress.code());
        }
        group.sync_deadline = None;
        let rebalance_timeout = group.rebalance_timeout();
        group.join_timer = Some(if group.is(GroupState::Empty) {
            let delay = self.config.initial_rebalance_delay;
            JoinTimer {
                deadline: now + delay,
                initial: Some(InitialDelay {
                    configured: delay,
                    current: delay,
                    remaining: rebalance_timeout.saturating_sub(delay),
                }),
            }
        } else {
            JoinTimer {
                deadline: now + rebalance_timeout,
                initial: None,
            }
        });
        group.transition_to(GroupState::PreparingRebalance, self.clock.now_ms());
        tracing::info!(
            group = %group.group_id,
            generation = group.generation_id,
            reason,
            "preparing to rebalance group"
        );
        self.try_complete_join(group, now);
    }

    /// Completes the join phase now if every member has rejoined (the initial delay, though,
    /// always runs its course).
    pub(crate) fn try_complete_join(&self, group: &mut Group, now: Instant) {
        let regular_timer = group.join_timer.is_some_and(|t| t.initial.is_none());
        if group.is(GroupState::PreparingRebalance)
            && regular_timer
            && group.has_all_members_joined()
        {
            self.complete_join(group, now);
        }
    }

    /// Ends the join phase (Kafka's `onCompleteJoin`): dynamic members that did not rejoin are
    /// dropped, a leader is chosen among those that did, the generation is bumped and every
    /// waiting JoinGroup is answered.
    pub(crate) fn complete_join(&self, group: &mut Group, now: Instant) {
        group.join_timer = None;
        let not_rejoined: Vec<String> = group
            .members
            .values()
            .filter(|m| !m.is_awaiting_join() && !m.is_static())
            .map(|m| m.member_id.clone())
            .collect();
        if !not_rejoined.is_empty() {
            tracing::info!(
                group = %group.group_id,
                members = ?not_rejoined,
                "removing dynamic members that did not rejoin in time"
            );
            for member_id in &not_rejoined {
                group.remove_member(member_id);
            }
        }
        if group.is(GroupState::Dead) {
            return;
        }
        if !maybe_elect_new_joined_leader(group) && !group.members.is_empty() {
            // Only static members that have not rejoined are left: wait another rebalance
            // timeout for them (their session timeout removes them if they are gone).
            tracing::warn!(
                group = %group.group_id,
                "cannot complete the rebalance because no member rejoined"
            );
            group.join_timer = Some(JoinTimer {
                deadline: now + group.rebalance_timeout(),
                initial: None,
            });
            return;
        }
        group.init_next_generation(self.clock.now_ms());
        if group.is(GroupState::Empty) {
            tracing::info!(
                group = %group.group_id,
                generation = group.generation_id,
                "group is now empty"
            );
            self.store_group(group);
            return;
        }
        tracing::info!(
            group = %group.group_id,
            generation = group.generation_id,
            members = group.members.len(),
            protocol = group.protocol_name.as_deref().unwrap_or_default(),
            "stabilized group"
        );
        let leader_members = group.current_member_metadata();
        let generation_id = group.generation_id;
        let protocol_type = group.protocol_type.clone();
        let protocol_name = group.protocol_name.clone();
        let leader_id = group.leader_id.clone().unwrap_or_default();
        let member_ids: Vec<String> = group.members.keys().cloned().collect();
        for member_id in member_ids {
            let is_leader = member_id == leader_id;
            let member = group.members.get_mut(&member_id).expect("listed above");
            member.complete_join(JoinOutcome {
                error: NONE,
                member_id: member_id.clone(),
                generation_id,
                protocol_type: protocol_type.clone(),
                protocol_name: protocol_name.clone(),
                leader_id: leader_id.clone(),
                skip_assignment: false,
                members: if is_leader {
                    leader_members.clone()
                } else {
                    Vec::new()
                },
            });
            member.heartbeat_deadline = Some(now + member.session_timeout);
            member.is_new = false;
            group.pending_sync_members.insert(member_id);
        }
        group.sync_deadline = Some(now + group.rebalance_timeout());
    }

    /// Installs the leader's assignment and answers every waiting SyncGroup with its share
    /// (Kafka's `setAndPropagateAssignment`).
    pub(crate) fn set_and_propagate_assignment(
        &self,
        group: &mut Group,
        mut assignment: HashMap<String, Bytes>,
        now: Instant,
    ) {
        let protocol_type = group.protocol_type.clone();
        let protocol_name = group.protocol_name.clone();
        for member in group.members.values_mut() {
            member.assignment = assignment.remove(&member.member_id).unwrap_or_default();
            if member.is_awaiting_sync() {
                member.complete_sync(SyncOutcome {
                    error: NONE,
                    protocol_type: protocol_type.clone(),
                    protocol_name: protocol_name.clone(),
                    assignment: member.assignment.clone(),
                });
                member.heartbeat_deadline = Some(now + member.session_timeout);
            }
        }
    }

    /// Removes a member and lets the group react: a stable group rebalances, a rebalancing
    /// group may now be complete (Kafka's `removeMemberAndUpdateGroup`).
    pub(crate) fn remove_member_and_update_group(
        &self,
        group: &mut Group,
        member_id: &str,
        reason: &str,
        now: Instant,
    ) {
        if let Some(member) = group.members.get_mut(member_id) {
            // A new member may time out while its JoinGroup waits: answer it so that the client,
            // if it is still there, joins again.
            member.complete_join(JoinOutcome::error(
                "",
                ResponseError::UnknownMemberId.code(),
            ));
        }
        group.remove_member(member_id);
        match group.state {
            GroupState::Dead | GroupState::Empty => {}
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance(group, reason, now);
            }
            GroupState::PreparingRebalance => self.try_complete_join(group, now),
        }
    }

    /// Forgets a member id handed out with MEMBER_ID_REQUIRED.
    pub(crate) fn remove_pending_member_and_update_group(
        &self,
        group: &mut Group,
        member_id: &str,
        now: Instant,
    ) {
        group.remove_member(member_id);
        if group.is(GroupState::PreparingRebalance) {
            self.try_complete_join(group, now);
        }
    }

    /// Marks a member's SyncGroup as received; the sync timer stops once all have arrived.
    pub(crate) fn remove_pending_sync_member(&self, group: &mut Group, member_id: &str) {
        group.pending_sync_members.remove(member_id);
        if group.pending_sync_members.is_empty() {
            group.sync_deadline = None;
        }
    }

    /// Queues the group's current generation for the log. Not awaited: if the broker dies
    /// before it is written, the previous generation comes back and its members are told to
    /// rejoin, which is safe.
    pub(crate) fn store_group(&self, group: &Group) {
        self.store.append_unacknowledged(vec![StoreRecord::Group {
            group: group.group_id.clone(),
            metadata: group.to_stored(),
        }]);
    }

    /// Fires every timer of `group` that is due at `now`.
    pub(crate) fn fire_group_timers(&self, group: &mut Group, now: Instant) {
        let expired_pending: Vec<String> = group
            .pending_members
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for member_id in expired_pending {
            tracing::info!(
                group = %group.group_id,
                member = %member_id,
                "pending member removed after its session timeout (it never joined with its member id)"
            );
            self.remove_pending_member_and_update_group(group, &member_id, now);
        }

        let expired_members: Vec<String> = group
            .members
            .values()
            .filter(|m| m.heartbeat_deadline.is_some_and(|d| d <= now))
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in expired_members {
            let Some(member) = group.members.get_mut(&member_id) else {
                continue;
            };
            // Members waiting in a rebalance are covered by the rebalance and sync timers; a new
            // member waiting too long for its first JoinGroup answer is not.
            if !member.is_new && (member.is_awaiting_join() || member.is_awaiting_sync()) {
                member.heartbeat_deadline = None;
                continue;
            }
            tracing::info!(
                group = %group.group_id,
                member = %member_id,
                session_timeout_ms = member.session_timeout.as_millis() as u64,
                "member failed to heartbeat within its session timeout; removing it from the group"
            );
            let reason = format!("removing member {member_id} on heartbeat expiration");
            self.remove_member_and_update_group(group, &member_id, &reason, now);
        }

        if let Some(timer) = group.join_timer.filter(|t| t.deadline <= now) {
            match timer.initial {
                Some(initial) if group.new_member_added && !initial.remaining.is_zero() => {
                    group.new_member_added = false;
                    let delay = initial.configured.min(initial.remaining);
                    group.join_timer = Some(JoinTimer {
                        deadline: now + delay,
                        initial: Some(InitialDelay {
                            configured: initial.configured,
                            current: delay,
                            remaining: initial.remaining.saturating_sub(initial.current),
                        }),
                    });
                }
                _ => {
                    if group.is(GroupState::PreparingRebalance) {
                        self.complete_join(group, now);
                    } else {
                        group.join_timer = None;
                    }
                }
            }
        }

        if group.sync_deadline.is_some_and(|d| d <= now) {
            group.sync_deadline = None;
            if matches!(
                group.state,
                GroupState::CompletingRebalance | GroupState::Stable
            ) && !group.pending_sync_members.is_empty()
            {
                let late: Vec<String> = group.pending_sync_members.iter().cloned().collect();
                tracing::info!(
                    group = %group.group_id,
                    members = ?late,
                    "removing members that did not send SyncGroup within the rebalance timeout"
                );
                for member_id in &late {
                    group.remove_member(member_id);
                }
                let reason = format!("removing {late:?} on pending sync request expiration");
                self.prepare_rebalance(group, &reason, now);
            }
        }
    }
}

/// Makes sure the leader is a member that rejoined; false when no member rejoined (Kafka's
/// `maybeElectNewJoinedLeader`).
fn maybe_elect_new_joined_leader(group: &mut Group) -> bool {
    let Some(leader) = group.leader_id.clone() else {
        return false;
    };
    if group
        .members
        .get(&leader)
        .is_some_and(|m| m.is_awaiting_join())
    {
        return true;
    }
    match group.members.values().find(|m| m.is_awaiting_join()) {
        Some(joined) => {
            group.leader_id = Some(joined.member_id.clone());
            true
        }
        None => false,
    }
}

/// Clears the assignments and answers every waiting SyncGroup with `error` (Kafka's
/// `resetAndPropagateAssignmentError`).
pub(crate) fn reset_and_propagate_assignment_error(group: &mut Group, error: i16) {
    for member in group.members.values_mut() {
        member.assignment = Bytes::new();
        member.complete_sync(SyncOutcome::error(error));
    }
}
