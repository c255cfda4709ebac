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
                    if !missing.is_empty()
                        && self
                            .log_limit
                            .admit("incomplete assignments from group leaders", &group.group_id)
                    {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::state::GroupState;
    use super::super::testing::*;
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn followers_wait_for_the_leaders_assignment() {
        let f = Fixture::new(test_config());
        let a = f.member_id_for("a").await;
        let b = f.member_id_for("b").await;
        let join_a = f.spawn_join("a", 9, range_join(&a));
        let join_b = f.spawn_join("b", 9, range_join(&b));
        let (ja, _) = (join_a.await.unwrap(), join_b.await.unwrap());
        let leader = ja.leader.to_string();
        let follower = if leader == a { b.clone() } else { a.clone() };
        let follower_sync = f.spawn_sync(&follower, 1, &[]);
        f.wait_for("follower waits", |g| {
            g.members[&follower].is_awaiting_sync()
        })
        .await;
        assert!(!follower_sync.is_finished());
        // The leader leaves itself out of the assignment: it gets an empty one.
        let leader_sync = f
            .c()
            .sync_group(
                5,
                sync_request(&leader, 1, &[(&follower, b"partitions 0-5")]),
            )
            .await;
        assert_eq!(leader_sync.error_code, 0);
        assert!(leader_sync.assignment.is_empty());
        assert_eq!(leader_sync.protocol_type.as_deref(), Some("consumer"));
        assert_eq!(leader_sync.protocol_name.as_deref(), Some("range"));
        let follower_sync = follower_sync.await.unwrap();
        assert_eq!(follower_sync.assignment.as_ref(), b"partitions 0-5");
        assert_eq!(f.group_state(), Some(GroupState::Stable));
        // A late repeat in the stable group returns the same assignment.
        let again = f.c().sync_group(0, sync_request(&follower, 1, &[])).await;
        assert_eq!(again.assignment.as_ref(), b"partitions 0-5");
        assert_eq!(again.protocol_type, None, "v0 carries no protocol type");
    }

    #[tokio::test(start_paused = true)]
    async fn sync_errors_follow_kafka() {
        let f = Fixture::new(test_config());
        let r = f.c().sync_group(5, sync_request("nobody", 1, &[])).await;
        assert_eq!(r.error_code, ResponseError::UnknownMemberId.code());
        let (a, b) = f.stable_pair().await;
        let r = f.c().sync_group(5, sync_request(&a, 7, &[])).await;
        assert_eq!(r.error_code, ResponseError::IllegalGeneration.code());
        let r = f.c().sync_group(5, sync_request("nobody", 1, &[])).await;
        assert_eq!(r.error_code, ResponseError::UnknownMemberId.code());
        let r = f
            .c()
            .sync_group(
                5,
                sync_request(&a, 1, &[]).with_protocol_name(Some(str("roundrobin"))),
            )
            .await;
        assert_eq!(
            r.error_code,
            ResponseError::InconsistentGroupProtocol.code()
        );
        let r = f
            .c()
            .sync_group(
                5,
                sync_request(&a, 1, &[]).with_protocol_type(Some(str("connect"))),
            )
            .await;
        assert_eq!(
            r.error_code,
            ResponseError::InconsistentGroupProtocol.code()
        );
        let mut empty_group = sync_request(&a, 1, &[]);
        empty_group.group_id = GroupId(str(""));
        assert_eq!(
            f.c().sync_group(5, empty_group).await.error_code,
            ResponseError::InvalidGroupId.code()
        );
        // While the group rebalances, SyncGroup says so.
        let _leader_rejoin = f.spawn_join("a", 9, range_join(&a));
        f.wait_for("rebalancing", |g| g.is(GroupState::PreparingRebalance))
            .await;
        let r = f.c().sync_group(5, sync_request(&b, 1, &[])).await;
        assert_eq!(r.error_code, ResponseError::RebalanceInProgress.code());
    }

    #[tokio::test(start_paused = true)]
    async fn a_rebalance_cancels_syncs_waiting_for_the_leader() {
        let f = Fixture::new(test_config());
        let a = f.member_id_for("a").await;
        let b = f.member_id_for("b").await;
        let join_a = f.spawn_join("a", 9, range_join(&a));
        let join_b = f.spawn_join("b", 9, range_join(&b));
        let (ja, _) = (join_a.await.unwrap(), join_b.await.unwrap());
        let follower = if ja.leader.as_str() == a {
            b.clone()
        } else {
            a.clone()
        };
        let follower_sync = f.spawn_sync(&follower, 1, &[]);
        f.wait_for("follower waits", |g| {
            g.members[&follower].is_awaiting_sync()
        })
        .await;
        // A third member arrives before the leader syncs.
        let c = f.member_id_for("c").await;
        let _join_c = f.spawn_join("c", 9, range_join(&c));
        assert_eq!(
            follower_sync.await.unwrap().error_code,
            ResponseError::RebalanceInProgress.code()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn members_that_never_sync_are_removed_after_the_rebalance_timeout() {
        let f = Fixture::new(test_config());
        let a = f.member_id_for("a").await;
        let b = f.member_id_for("b").await;
        let join_a = f.spawn_join("a", 9, range_join(&a));
        let join_b = f.spawn_join("b", 9, range_join(&b));
        let (ja, _) = (join_a.await.unwrap(), join_b.await.unwrap());
        let leader = ja.leader.to_string();
        let follower = if leader == a { b.clone() } else { a.clone() };
        let start = tokio::time::Instant::now();
        // The leader syncs; the follower never does (but keeps heartbeating, which does not
        // count as a sync).
        let sync = f.c().sync_group(5, sync_request(&leader, 1, &[])).await;
        assert_eq!(sync.error_code, 0);
        loop {
            tokio::time::sleep(Duration::from_millis(3_000)).await;
            if f.heartbeat(&follower, 1).await != 0 {
                break;
            }
            assert_eq!(f.heartbeat(&leader, 1).await, 0);
        }
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(REBALANCE_MS as u64),
            "{elapsed:?}"
        );
        assert_eq!(
            f.heartbeat(&follower, 1).await,
            ResponseError::UnknownMemberId.code()
        );
        assert!(!f.c().state.lock().groups[GROUP].has_member(&follower));
        // The leader is told to rejoin.
        assert_eq!(
            f.heartbeat(&leader, 1).await,
            ResponseError::RebalanceInProgress.code()
        );
    }
}
