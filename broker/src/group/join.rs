//! JoinGroup: a member (re)joins its group; the answer comes when the rebalance completes.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::rebalance::{validate_current_member, NONE};
use super::state::{Group, GroupState, JoinOutcome, Member};
use super::{new_member_id, ClientContext, GroupCoordinator};

/// A JoinGroup request with the fields its version carries, defaults applied.
#[derive(Debug)]
struct JoinParams {
    group_id: String,
    member_id: String,
    group_instance_id: Option<String>,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocol_type: String,
    protocols: Vec<(String, Bytes)>,
    reason: String,
    /// v4+: a dynamic member without an id is given one and asked to join again with it.
    require_known_member_id: bool,
    /// v9+: a rejoining static leader can be told to skip running the assignment.
    supports_skipping_assignment: bool,
    client: ClientContext,
}

/// The answer is known now, or comes later through the channel.
enum Pending {
    Ready(JoinOutcome),
    Waiting(oneshot::Receiver<JoinOutcome>),
}

impl GroupCoordinator {
    /// Handles JoinGroup (v0-v9). Waits, for up to the rebalance timeout, until the rebalance
    /// this member takes part in completes.
    pub async fn join_group(
        &self,
        client: &ClientContext,
        version: i16,
        request: JoinGroupRequest,
    ) -> JoinGroupResponse {
        let session_timeout_ms = request.session_timeout_ms;
        // v0 has no rebalance timeout: the session timeout served as both.
        let rebalance_timeout_ms = if version == 0 {
            session_timeout_ms
        } else {
            request.rebalance_timeout_ms
        };
        let group_instance_id = if version >= 5 {
            request.group_instance_id.map(|s| s.to_string())
        } else {
            None
        };
        let params = JoinParams {
            group_id: request.group_id.0.to_string(),
            member_id: request.member_id.to_string(),
            require_known_member_id: version >= 4 && group_instance_id.is_none(),
            group_instance_id,
            session_timeout: Duration::from_millis(session_timeout_ms.max(0) as u64),
            rebalance_timeout: Duration::from_millis(rebalance_timeout_ms.max(0) as u64),
            protocol_type: request.protocol_type.to_string(),
            protocols: request
                .protocols
                .into_iter()
                .map(|p| (p.name.to_string(), p.metadata))
                .collect(),
            reason: request
                .reason
                .map(|r| r.to_string())
                .unwrap_or_else(|| "not provided".to_owned()),
            supports_skipping_assignment: version >= 9,
            client: client.clone(),
        };
        let session_ok = session_timeout_ms >= 0
            && params.session_timeout >= self.config.min_session_timeout
            && params.session_timeout <= self.config.max_session_timeout;
        let outcome = if params.group_id.is_empty() {
            JoinOutcome::error(
                params.member_id.clone(),
                ResponseError::InvalidGroupId.code(),
            )
        } else if !session_ok {
            JoinOutcome::error(
                params.member_id.clone(),
                ResponseError::InvalidSessionTimeout.code(),
            )
        } else {
            let member_id = params.member_id.clone();
            let pending = {
                let mut state = self.state.lock();
                self.join_group_locked(&mut state.groups, params)
            };
            self.timers_changed.notify_one();
            match pending {
                Pending::Ready(outcome) => outcome,
                // The member joined again (or was replaced) while this request waited: the
                // client stopped waiting for this answer; tell it to rejoin should it read it.
                Pending::Waiting(receiver) => receiver.await.unwrap_or_else(|_| {
                    JoinOutcome::error(member_id, ResponseError::RebalanceInProgress.code())
                }),
            }
        };
        join_response(version, outcome)
    }

    fn join_group_locked(
        &self,
        groups: &mut std::collections::HashMap<String, Group>,
        params: JoinParams,
    ) -> Pending {
        let now = Instant::now();
        let is_unknown_member = params.member_id.is_empty();
        if !groups.contains_key(&params.group_id) {
            // A group is created by a member without an id; a member id for a group that does
            // not exist is stale.
            if !is_unknown_member {
                return Pending::Ready(JoinOutcome::error(
                    params.member_id,
                    ResponseError::UnknownMemberId.code(),
                ));
            }
            groups.insert(
                params.group_id.clone(),
                Group::new(params.group_id.clone(), self.clock.now_ms()),
            );
        }
        let group = groups.get_mut(&params.group_id).expect("inserted above");
        let pending = if !self.accept_joining_member(group, &params.member_id) {
            tracing::info!(
                group = %group.group_id,
                member = %params.member_id,
                max = self.config.max_group_size,
                "group is full; member rejected"
            );
            group.remove_member(&params.member_id);
            Pending::Ready(JoinOutcome::error(
                "",
                ResponseError::GroupMaxSizeReached.code(),
            ))
        } else if is_unknown_member {
            self.join_new_member(group, params, now)
        } else {
            self.join_current_member(group, params, now)
        };
        if group.is(GroupState::PreparingRebalance) {
            self.try_complete_join(group, now);
        }
        pending
    }

    /// Kafka's `acceptJoiningMember`: members already waiting always get in; new ones only
    /// while the group is below `group.max.size`.
    fn accept_joining_member(&self, group: &Group, member_id: &str) -> bool {
        match group.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                group
                    .members
                    .get(member_id)
                    .is_some_and(|m| m.is_awaiting_join())
                    || group.num_awaiting_join() < self.config.max_group_size
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                group.has_member(member_id) || group.members.len() < self.config.max_group_size
            }
        }
    }

    fn join_new_member(&self, group: &mut Group, params: JoinParams, now: Instant) -> Pending {
        if group.is(GroupState::Dead) {
            return Pending::Ready(JoinOutcome::error(
                "",
                ResponseError::CoordinatorNotAvailable.code(),
            ));
        }
        if !group.supports_protocols(&params.protocol_type, &params.protocols) {
            return Pending::Ready(JoinOutcome::error(
                "",
                ResponseError::InconsistentGroupProtocol.code(),
            ));
        }
        let prefix = params
            .group_instance_id
            .clone()
            .unwrap_or_else(|| params.client.client_id.clone());
        let new_id = new_member_id(&prefix);
        match params.group_instance_id.clone() {
            Some(instance) => match group.current_static_member_id(&instance) {
                Some(old_id) => {
                    let old_id = old_id.to_owned();
                    tracing::info!(
                        group = %group.group_id,
                        instance = %instance,
                        old_member = %old_id,
                        new_member = %new_id,
                        state = %group.state,
                        "static member joins again with an unknown member id; replacing the previous member id"
                    );
                    self.update_static_member_and_rebalance(
                        group, &instance, &old_id, new_id, params, now,
                    )
                }
                None => {
                    tracing::info!(
                        group = %group.group_id,
                        instance = %instance,
                        member = %new_id,
                        state = %group.state,
                        "static member joins the group"
                    );
                    self.add_member_and_rebalance(group, new_id, params, now)
                }
            },
            None if params.require_known_member_id => {
                tracing::debug!(
                    group = %group.group_id,
                    member = %new_id,
                    "dynamic member without a member id: asking it to join again with one"
                );
                group
                    .pending_members
                    .insert(new_id.clone(), now + params.session_timeout);
                Pending::Ready(JoinOutcome::error(
                    new_id,
                    ResponseError::MemberIdRequired.code(),
                ))
            }
            None => self.add_member_and_rebalance(group, new_id, params, now),
        }
    }

    fn join_current_member(&self, group: &mut Group, params: JoinParams, now: Instant) -> Pending {
        let member_id = params.member_id.clone();
        if group.is(GroupState::Dead) {
            return Pending::Ready(JoinOutcome::error(
                member_id,
                ResponseError::CoordinatorNotAvailable.code(),
            ));
        }
        if !group.supports_protocols(&params.protocol_type, &params.protocols) {
            return Pending::Ready(JoinOutcome::error(
                member_id,
                ResponseError::InconsistentGroupProtocol.code(),
            ));
        }
        if group.is_pending_member(&member_id) {
            if params.group_instance_id.is_some() {
                // Only dynamic members are ever pending; a static instance id with such an id is
                // a confused client.
                return Pending::Ready(JoinOutcome::error(
                    member_id,
                    ResponseError::UnknownMemberId.code(),
                ));
            }
            tracing::debug!(
                group = %group.group_id,
                member = %member_id,
                "pending member joins with its member id"
            );
            return self.add_member_and_rebalance(group, member_id, params, now);
        }
        if let Err(error) =
            validate_current_member(group, &member_id, params.group_instance_id.as_deref())
        {
            return Pending::Ready(JoinOutcome::error(member_id, error.code()));
        }
        let member = group.members.get(&member_id).expect("validated");
        let matches = member.matches(&params.protocols);
        match group.state {
            GroupState::PreparingRebalance => {
                let reason = format!(
                    "member {member_id} joining group during PreparingRebalance; client reason: {}",
                    params.reason
                );
                self.update_member_and_rebalance(group, params, &reason, now)
            }
            GroupState::CompletingRebalance if matches => {
                // The member lost the JoinGroup answer: give it the current generation again.
                Pending::Ready(self.current_generation_outcome(group, &member_id, true))
            }
            GroupState::CompletingRebalance => {
                let reason = format!(
                    "updating metadata for member {member_id} during CompletingRebalance; client reason: {}",
                    params.reason
                );
                self.update_member_and_rebalance(group, params, &reason, now)
            }
            GroupState::Stable if group.is_leader(&member_id) => {
                // A leader rejoining asks for a rebalance: the assignment may depend on things
                // the member metadata does not show (topic metadata).
                let reason = format!(
                    "leader {member_id} re-joining group during Stable; client reason: {}",
                    params.reason
                );
                self.update_member_and_rebalance(group, params, &reason, now)
            }
            GroupState::Stable if !matches => {
                let reason = format!(
                    "updating metadata for member {member_id} during Stable; client reason: {}",
                    params.reason
                );
                self.update_member_and_rebalance(group, params, &reason, now)
            }
            GroupState::Stable => {
                Pending::Ready(self.current_generation_outcome(group, &member_id, false))
            }
            GroupState::Empty | GroupState::Dead => {
                if self
                    .log_limit
                    .admit("rejoins of groups in an unexpected state", &group.group_id)
                {
                    tracing::warn!(
                        group = %group.group_id,
                        member = %member_id,
                        state = %group.state,
                        "rejoining member of a group in an unexpected state; asking it to join anew"
                    );
                }
                Pending::Ready(JoinOutcome::error(
                    member_id,
                    ResponseError::UnknownMemberId.code(),
                ))
            }
        }
    }

    fn current_generation_outcome(
        &self,
        group: &Group,
        member_id: &str,
        members_for_leader: bool,
    ) -> JoinOutcome {
        JoinOutcome {
            error: NONE,
            member_id: member_id.to_owned(),
            generation_id: group.generation_id,
            protocol_type: group.protocol_type.clone(),
            protocol_name: group.protocol_name.clone(),
            leader_id: group.leader_id.clone().unwrap_or_default(),
            skip_assignment: false,
            members: if members_for_leader && group.is_leader(member_id) {
                group.current_member_metadata()
            } else {
                Vec::new()
            },
        }
    }

    fn add_member_and_rebalance(
        &self,
        group: &mut Group,
        member_id: String,
        params: JoinParams,
        now: Instant,
    ) -> Pending {
        let (sender, receiver) = oneshot::channel();
        let member = Member {
            member_id: member_id.clone(),
            group_instance_id: params.group_instance_id.clone(),
            client_id: params.client.client_id.clone(),
            client_host: params.client.client_host.clone(),
            rebalance_timeout: params.rebalance_timeout,
            session_timeout: params.session_timeout,
            protocol_type: params.protocol_type.clone(),
            protocols: params.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(sender),
            awaiting_sync: None,
            is_new: true,
            // A new member cannot heartbeat before its JoinGroup is answered, and its socket
            // is busy waiting; a client that gave up and retried would leave it behind forever,
            // so it gets this long to be answered.
            heartbeat_deadline: Some(now + self.config.new_member_join_timeout),
        };
        if group.is(GroupState::PreparingRebalance) && group.generation_id == 0 {
            group.new_member_added = true;
        }
        group.add_member(member);
        let reason = format!(
            "adding new member {member_id} with group instance id {:?}; client reason: {}",
            params.group_instance_id, params.reason
        );
        self.maybe_prepare_rebalance(group, &reason, now);
        Pending::Waiting(receiver)
    }

    fn update_member_and_rebalance(
        &self,
        group: &mut Group,
        params: JoinParams,
        reason: &str,
        now: Instant,
    ) -> Pending {
        let (sender, receiver) = oneshot::channel();
        let member = group
            .members
            .get_mut(&params.member_id)
            .expect("caller checked membership");
        member.protocols = params.protocols;
        member.rebalance_timeout = params.rebalance_timeout;
        member.session_timeout = params.session_timeout;
        member.client_id = params.client.client_id;
        member.client_host = params.client.client_host;
        member.awaiting_join = Some(sender);
        self.maybe_prepare_rebalance(group, reason, now);
        Pending::Waiting(receiver)
    }

    /// A static member came back without its member id: it takes over its old entry under a
    /// new id; a stable group only rebalances if the protocol choice would change (Kafka's
    /// `updateStaticMemberAndRebalance`).
    fn update_static_member_and_rebalance(
        &self,
        group: &mut Group,
        instance: &str,
        old_member_id: &str,
        new_member_id: String,
        params: JoinParams,
        now: Instant,
    ) -> Pending {
        let current_leader = group.leader_id.clone().unwrap_or_default();
        group.replace_static_member(instance, old_member_id, &new_member_id);
        let (sender, receiver) = oneshot::channel();
        let member = group
            .members
            .get_mut(&new_member_id)
            .expect("replaced above");
        member.heartbeat_deadline = Some(now + params.session_timeout);
        member.protocols = params.protocols;
        member.rebalance_timeout = params.rebalance_timeout;
        member.session_timeout = params.session_timeout;
        member.client_id = params.client.client_id;
        member.client_host = params.client.client_host;
        member.awaiting_join = Some(sender);
        match group.state {
            GroupState::Stable => {
                if group.select_protocol() == group.protocol_name {
                    tracing::info!(
                        group = %group.group_id,
                        instance,
                        "static member rejoined a stable group without changing the protocol; no rebalance"
                    );
                    self.store_group(group);
                    let is_leader = group.is_leader(&new_member_id);
                    let skip = params.supports_skipping_assignment;
                    let outcome = JoinOutcome {
                        error: NONE,
                        member_id: new_member_id.clone(),
                        generation_id: group.generation_id,
                        protocol_type: group.protocol_type.clone(),
                        protocol_name: group.protocol_name.clone(),
                        // Older clients are given the old leader id so that a returning leader
                        // does not compute an assignment a stable group would never send out;
                        // v9 clients are told explicitly to skip it.
                        leader_id: if skip {
                            group.leader_id.clone().unwrap_or_default()
                        } else {
                            current_leader
                        },
                        skip_assignment: is_leader && skip,
                        members: if is_leader && skip {
                            group.current_member_metadata()
                        } else {
                            Vec::new()
                        },
                    };
                    if let Some(member) = group.members.get_mut(&new_member_id) {
                        member.complete_join(outcome);
                    }
                } else {
                    let reason = format!(
                        "group's selected protocol will change because static member {new_member_id} with instance id {instance} joined with other protocols; client reason: {}",
                        params.reason
                    );
                    self.maybe_prepare_rebalance(group, &reason, now);
                }
            }
            GroupState::CompletingRebalance => {
                let reason = format!(
                    "updating metadata for static member {new_member_id} with instance id {instance}; client reason: {}",
                    params.reason
                );
                self.maybe_prepare_rebalance(group, &reason, now);
            }
            // The member takes part in the rebalance under way.
            GroupState::PreparingRebalance => {}
            GroupState::Empty | GroupState::Dead => {
                // Cannot happen: a static member is mapped only while the group has members.
                if let Some(member) = group.members.get_mut(&new_member_id) {
                    member.complete_join(JoinOutcome::error(
                        new_member_id.clone(),
                        ResponseError::UnknownMemberId.code(),
                    ));
                }
            }
        }
        Pending::Waiting(receiver)
    }
}

fn str_bytes(value: String) -> StrBytes {
    StrBytes::from_string(value)
}

/// Builds the JoinGroup response for `version`, leaving out what the version cannot carry.
fn join_response(version: i16, outcome: JoinOutcome) -> JoinGroupResponse {
    let protocol_name = match outcome.protocol_name {
        Some(name) => Some(str_bytes(name)),
        // Before v7 the protocol name is not nullable.
        None if version < 7 => Some(StrBytes::default()),
        None => None,
    };
    JoinGroupResponse::default()
        .with_error_code(outcome.error)
        .with_generation_id(outcome.generation_id)
        .with_protocol_type(if version >= 7 {
            outcome.protocol_type.map(str_bytes)
        } else {
            None
        })
        .with_protocol_name(protocol_name)
        .with_leader(str_bytes(outcome.leader_id))
        .with_skip_assignment(version >= 9 && outcome.skip_assignment)
        .with_member_id(str_bytes(outcome.member_id))
        .with_members(
            outcome
                .members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(m.member_id))
                        .with_group_instance_id(if version >= 5 {
                            m.group_instance_id.map(str_bytes)
                        } else {
                            None
                        })
                        .with_metadata(m.metadata)
                })
                .collect(),
        )
}

#[cfg(test)]
mod tests {
    use super::super::state::GroupState;
    use super::super::testing::*;
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn first_join_asks_for_a_member_id_then_forms_generation_one() {
        let f = Fixture::new(test_config());
        let member = f.member_id_for("consumer-1").await;
        assert_eq!(f.group_state(), Some(GroupState::Empty));
        let metadata = subscription(&[ORDERS]);
        let response = f
            .c()
            .join_group(
                &client("consumer-1"),
                9,
                join_request(&member, &[("range", metadata.clone())]),
            )
            .await;
        assert_eq!(response.error_code, 0);
        assert_eq!(response.generation_id, 1);
        assert_eq!(response.member_id.as_str(), member);
        assert_eq!(response.leader.as_str(), member);
        assert_eq!(response.protocol_type.as_deref(), Some("consumer"));
        assert_eq!(response.protocol_name.as_deref(), Some("range"));
        assert_eq!(response.members.len(), 1);
        assert_eq!(
            response.members[0].metadata, metadata,
            "metadata relayed byte for byte"
        );
        assert_eq!(f.group_state(), Some(GroupState::CompletingRebalance));
    }

    #[tokio::test(start_paused = true)]
    async fn versions_before_4_join_without_a_member_id_round_trip() {
        let f = Fixture::new(test_config());
        let response = f.c().join_group(&client("old"), 3, range_join("")).await;
        assert_eq!(response.error_code, 0);
        assert!(response.member_id.starts_with("old-"));
        assert_eq!(response.generation_id, 1);
        assert_eq!(response.protocol_type, None, "protocol type is a v7+ field");
    }

    #[tokio::test(start_paused = true)]
    async fn v0_uses_the_session_timeout_as_rebalance_timeout() {
        let f = Fixture::new(test_config());
        let response = f.c().join_group(&client("v0"), 0, range_join("")).await;
        assert_eq!(response.error_code, 0);
        let state = f.c().state.lock();
        let member = state.groups[GROUP].members.values().next().unwrap();
        assert_eq!(
            member.rebalance_timeout,
            Duration::from_millis(SESSION_MS as u64)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn leader_gets_every_members_metadata_and_followers_none() {
        let f = Fixture::new(test_config());
        let a = f.member_id_for("a").await;
        let b = f.member_id_for("b").await;
        let join_a = f.spawn_join(
            "a",
            9,
            join_request(&a, &[("range", Bytes::from_static(b"A"))]),
        );
        f.wait_for("a waits", |g| g.num_awaiting_join() == 1).await;
        let join_b = f.spawn_join(
            "b",
            9,
            join_request(&b, &[("range", Bytes::from_static(b"B"))]),
        );
        let (ja, jb) = (join_a.await.unwrap(), join_b.await.unwrap());
        assert_eq!((ja.generation_id, jb.generation_id), (1, 1));
        assert_eq!(ja.leader, jb.leader);
        let leader = if ja.leader.as_str() == a { &ja } else { &jb };
        let follower = if ja.leader.as_str() == a { &jb } else { &ja };
        let mut seen: Vec<(String, Bytes)> = leader
            .members
            .iter()
            .map(|m| (m.member_id.to_string(), m.metadata.clone()))
            .collect();
        seen.sort();
        let mut expected = vec![
            (a.clone(), Bytes::from_static(b"A")),
            (b.clone(), Bytes::from_static(b"B")),
        ];
        expected.sort();
        assert_eq!(seen, expected);
        assert!(follower.members.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn protocol_supported_by_all_with_most_votes_is_selected() {
        let f = Fixture::new(test_config());
        let a = f.member_id_for("a").await;
        let b = f.member_id_for("b").await;
        let meta = subscription(&[ORDERS]);
        let join_a = f.spawn_join(
            "a",
            9,
            join_request(
                &a,
                &[
                    ("cooperative-sticky", meta.clone()),
                    ("range", meta.clone()),
                ],
            ),
        );
        f.wait_for("a waits", |g| g.num_awaiting_join() == 1).await;
        let join_b = f.spawn_join(
            "b",
            9,
            join_request(
                &b,
                &[
                    ("range", meta.clone()),
                    ("cooperative-sticky", meta.clone()),
                ],
            ),
        );
        f.wait_for("b waits", |g| g.num_awaiting_join() == 2).await;
        // Both support both; one vote each: the leader's preference wins the tie.
        let (ja, _) = (join_a.await.unwrap(), join_b.await.unwrap());
        assert_eq!(ja.protocol_name.as_deref(), Some("cooperative-sticky"));

        // A third member that supports only range: range is the only common protocol.
        let c = f.member_id_for("c").await;
        let _join_c = f.spawn_join("c", 9, join_request(&c, &[("range", meta.clone())]));
        f.wait_for("rebalancing", |g| g.is(GroupState::PreparingRebalance))
            .await;
        let join_a = f.spawn_join(
            "a",
            9,
            join_request(
                &a,
                &[
                    ("cooperative-sticky", meta.clone()),
                    ("range", meta.clone()),
                ],
            ),
        );
        let join_b = f.spawn_join(
            "b",
            9,
            join_request(
                &b,
                &[
                    ("range", meta.clone()),
                    ("cooperative-sticky", meta.clone()),
                ],
            ),
        );
        let (ja, jb) = (join_a.await.unwrap(), join_b.await.unwrap());
        assert_eq!(ja.generation_id, 2);
        assert_eq!(ja.protocol_name.as_deref(), Some("range"));
        assert_eq!(jb.protocol_name.as_deref(), Some("range"));
    }

    #[tokio::test(start_paused = true)]
    async fn bad_joins_are_refused_with_kafkas_errors() {
        let f = Fixture::new(test_config());
        let mut request = range_join("");
        request.group_id = GroupId(str(""));
        let r = f.c().join_group(&client("x"), 9, request).await;
        assert_eq!(r.error_code, ResponseError::InvalidGroupId.code());

        let r = f
            .c()
            .join_group(&client("x"), 9, range_join("").with_session_timeout_ms(10))
            .await;
        assert_eq!(r.error_code, ResponseError::InvalidSessionTimeout.code());
        let r = f
            .c()
            .join_group(
                &client("x"),
                9,
                range_join("").with_session_timeout_ms(3_600_000),
            )
            .await;
        assert_eq!(r.error_code, ResponseError::InvalidSessionTimeout.code());

        let r = f
            .c()
            .join_group(&client("x"), 9, range_join("stale-member-id"))
            .await;
        assert_eq!(r.error_code, ResponseError::UnknownMemberId.code());
        assert_eq!(f.group_state(), None, "a stale member id creates no group");

        let r = f
            .c()
            .join_group(&client("x"), 3, join_request("", &[]))
            .await;
        assert_eq!(
            r.error_code,
            ResponseError::InconsistentGroupProtocol.code()
        );

        // A stable group of consumers refuses another protocol type or no common protocol.
        let (_a, _b) = f.stable_pair().await;
        let r = f
            .c()
            .join_group(
                &client("x"),
                3,
                range_join("").with_protocol_type(str("connect")),
            )
            .await;
        assert_eq!(
            r.error_code,
            ResponseError::InconsistentGroupProtocol.code()
        );
        let r = f
            .c()
            .join_group(
                &client("x"),
                3,
                join_request("", &[("roundrobin", subscription(&[ORDERS]))]),
            )
            .await;
        assert_eq!(
            r.error_code,
            ResponseError::InconsistentGroupProtocol.code()
        );
        assert_eq!(f.group_state(), Some(GroupState::Stable));
    }

    #[tokio::test(start_paused = true)]
    async fn initial_delay_gathers_members_that_start_together() {
        let f = Fixture::new(GroupConfig {
            initial_rebalance_delay: Duration::from_millis(3_000),
            ..test_config()
        });
        let start = Instant::now();
        let a = f.member_id_for("a").await;
        let join_a = f.spawn_join("a", 9, range_join(&a));
        f.wait_for("a waits", |g| g.num_awaiting_join() == 1).await;
        tokio::time::advance(Duration::from_millis(2_000)).await;
        let b = f.member_id_for("b").await;
        let join_b = f.spawn_join("b", 9, range_join(&b));
        let (ja, jb) = (join_a.await.unwrap(), join_b.await.unwrap());
        assert_eq!((ja.generation_id, jb.generation_id), (1, 1));
        let waited = start.elapsed();
        // The second member, arriving inside the first delay, extends it by one more delay.
        assert!(
            waited >= Duration::from_millis(6_000) && waited < Duration::from_millis(7_000),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_member_makes_a_stable_group_rebalance() {
        let f = Fixture::new(test_config());
        let (a, b) = f.stable_pair().await;
        let c = f.member_id_for("c").await;
        let join_c = f.spawn_join("c", 9, range_join(&c));
        f.wait_for("rebalancing", |g| g.is(GroupState::PreparingRebalance))
            .await;
        assert_eq!(
            f.heartbeat(&a, 1).await,
            ResponseError::RebalanceInProgress.code()
        );
        assert_eq!(
            f.heartbeat(&b, 1).await,
            ResponseError::RebalanceInProgress.code()
        );
        let join_a = f.spawn_join("a", 9, range_join(&a));
        let join_b = f.spawn_join("b", 9, range_join(&b));
        let (ja, jb, jc) = (
            join_a.await.unwrap(),
            join_b.await.unwrap(),
            join_c.await.unwrap(),
        );
        assert_eq!(
            (ja.generation_id, jb.generation_id, jc.generation_id),
            (2, 2, 2)
        );
        assert_eq!(ja.leader.as_str(), a, "the leader keeps its role");
        assert_eq!(ja.members.len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn members_that_do_not_rejoin_are_dropped_at_the_rebalance_timeout() {
        let f = Fixture::new(test_config());
        let (a, b) = f.stable_pair().await;
        let start = Instant::now();
        // b rejoins with a new subscription (which starts a rebalance); a stays silent.
        let join_b = f.spawn_join(
            "b",
            9,
            join_request(&b, &[("range", subscription(&[ORDERS, PAYMENTS]))]),
        );
        let jb = join_b.await.unwrap();
        assert_eq!(jb.error_code, 0);
        assert_eq!(jb.generation_id, 2);
        assert_eq!(
            jb.leader.as_str(),
            b,
            "leadership passes to a member that rejoined"
        );
        assert_eq!(jb.members.len(), 1);
        // The session timeout (10 s) is shorter than the rebalance timeout (30 s): a silent
        // member is gone when its session ends.
        assert!(
            start.elapsed() <= Duration::from_millis(SESSION_MS as u64 + 1),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(
            f.heartbeat(&a, 1).await,
            ResponseError::UnknownMemberId.code()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_heartbeating_member_that_does_not_rejoin_is_dropped_after_the_rebalance_timeout() {
        let f = Fixture::new(test_config());
        let (a, b) = f.stable_pair().await;
        let start = Instant::now();
        let join_b = f.spawn_join(
            "b",
            9,
            join_request(&b, &[("range", subscription(&[ORDERS, PAYMENTS]))]),
        );
        f.wait_for("rebalancing", |g| g.is(GroupState::PreparingRebalance))
            .await;
        // a keeps heartbeating (it is alive, but busy processing and not rejoining).
        let heartbeats = {
            let coordinator = f.coordinator.clone();
            let a = a.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(3_000)).await;
                    let error = coordinator
                        .heartbeat(
                            4,
                            HeartbeatRequest::default()
                                .with_group_id(GroupId(str(GROUP)))
                                .with_member_id(str(&a))
                                .with_generation_id(1),
                        )
                        .await
                        .error_code;
                    if error != ResponseError::RebalanceInProgress.code() {
                        return error;
                    }
                }
            })
        };
        let jb = join_b.await.unwrap();
        let waited = start.elapsed();
        assert_eq!(jb.generation_id, 2);
        assert!(
            waited >= Duration::from_millis(REBALANCE_MS as u64)
                && waited <= Duration::from_millis(REBALANCE_MS as u64 + 1),
            "{waited:?}"
        );
        assert_eq!(
            heartbeats.await.unwrap(),
            ResponseError::UnknownMemberId.code()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn pending_member_ids_expire_after_the_session_timeout() {
        let f = Fixture::new(test_config());
        let member = f.member_id_for("a").await;
        f.wait_for("pending", |g| g.is_pending_member(&member))
            .await;
        tokio::time::advance(Duration::from_millis(SESSION_MS as u64 + 1)).await;
        f.wait_for("expired", |g| !g.is_pending_member(&member))
            .await;
        let r = f.c().join_group(&client("a"), 9, range_join(&member)).await;
        assert_eq!(r.error_code, ResponseError::UnknownMemberId.code());
    }

    #[tokio::test(start_paused = true)]
    async fn rejoin_with_same_metadata_while_completing_returns_the_current_generation() {
        let f = Fixture::new(test_config());
        let a = f.member_id_for("a").await;
        let first = f.c().join_group(&client("a"), 9, range_join(&a)).await;
        assert_eq!(f.group_state(), Some(GroupState::CompletingRebalance));
        let again = f.c().join_group(&client("a"), 9, range_join(&a)).await;
        assert_eq!(again.generation_id, first.generation_id);
        assert_eq!(again.members.len(), 1, "the leader gets the members again");
        assert_eq!(f.group_state(), Some(GroupState::CompletingRebalance));
    }

    #[tokio::test(start_paused = true)]
    async fn follower_rejoining_a_stable_group_unchanged_gets_the_generation_without_rebalance() {
        let f = Fixture::new(test_config());
        let (_a, b) = f.stable_pair().await;
        let r = f.c().join_group(&client("b"), 9, range_join(&b)).await;
        assert_eq!(r.error_code, 0);
        assert_eq!(r.generation_id, 1);
        assert_eq!(f.group_state(), Some(GroupState::Stable));
    }

    #[tokio::test(start_paused = true)]
    async fn group_max_size_is_enforced() {
        let f = Fixture::new(GroupConfig {
            max_group_size: 2,
            ..test_config()
        });
        let (_a, _b) = f.stable_pair().await;
        let r = f.c().join_group(&client("c"), 3, range_join("")).await;
        assert_eq!(r.error_code, ResponseError::GroupMaxSizeReached.code());
        assert_eq!(f.group_state(), Some(GroupState::Stable));
    }

    fn static_join(instance: &str, member_id: &str) -> JoinGroupRequest {
        range_join(member_id).with_group_instance_id(Some(str(instance)))
    }

    #[tokio::test(start_paused = true)]
    async fn static_member_restart_keeps_the_generation_and_fences_the_old_id() {
        let f = Fixture::new(test_config());
        // Static members need no MEMBER_ID_REQUIRED round trip.
        let join_a = f.spawn_join("a", 9, static_join("instance-a", ""));
        f.wait_for("a waits", |g| g.num_awaiting_join() == 1).await;
        let join_b = f.spawn_join("b", 9, static_join("instance-b", ""));
        let (ja, jb) = (join_a.await.unwrap(), join_b.await.unwrap());
        assert!(ja.member_id.starts_with("instance-a-"));
        let (a, b) = (ja.member_id.to_string(), jb.member_id.to_string());
        let sync_b = f.spawn_sync(&b, 1, &[]);
        let sync_a = f.spawn_sync(&a, 1, &[(&a, b"A"), (&b, b"B")]);
        assert_eq!(sync_a.await.unwrap().error_code, 0);
        assert_eq!(sync_b.await.unwrap().assignment.as_ref(), b"B");

        // b restarts: it knows its instance id but not its member id.
        let rejoined = f
            .c()
            .join_group(&client("b"), 5, static_join("instance-b", ""))
            .await;
        assert_eq!(rejoined.error_code, 0);
        assert_eq!(rejoined.generation_id, 1, "no rebalance");
        assert_ne!(rejoined.member_id.as_str(), b);
        assert_eq!(rejoined.leader.as_str(), a);
        assert_eq!(f.group_state(), Some(GroupState::Stable));
        let new_b = rejoined.member_id.to_string();
        let sync = f
            .c()
            .sync_group(
                3,
                sync_request(&new_b, 1, &[]).with_group_instance_id(Some(str("instance-b"))),
            )
            .await;
        assert_eq!(sync.assignment.as_ref(), b"B", "it keeps its assignment");

        // The old incarnation is fenced.
        let hb = f
            .c()
            .heartbeat(
                4,
                HeartbeatRequest::default()
                    .with_group_id(GroupId(str(GROUP)))
                    .with_member_id(str(&b))
                    .with_generation_id(1)
                    .with_group_instance_id(Some(str("instance-b"))),
            )
            .await;
        assert_eq!(hb.error_code, ResponseError::FencedInstanceId.code());
        assert_eq!(f.heartbeat(&new_b, 1).await, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn static_leader_restart_is_told_to_skip_assignment_on_v9_only() {
        let f = Fixture::new(test_config());
        let ja = f
            .c()
            .join_group(&client("a"), 9, static_join("instance-a", ""))
            .await;
        let a = ja.member_id.to_string();
        let sync = f
            .c()
            .sync_group(5, sync_request(&a, 1, &[(&a, b"A")]))
            .await;
        assert_eq!(sync.error_code, 0);

        let v8 = f
            .c()
            .join_group(&client("a"), 8, static_join("instance-a", ""))
            .await;
        assert_eq!(
            v8.leader.as_str(),
            a,
            "old leader id: the new id must not assign"
        );
        assert!(!v8.skip_assignment);
        assert!(v8.members.is_empty());

        let v9 = f
            .c()
            .join_group(&client("a"), 9, static_join("instance-a", ""))
            .await;
        assert_eq!(v9.leader.as_str(), v9.member_id.as_str());
        assert!(v9.skip_assignment);
        assert_eq!(v9.members.len(), 1);
        assert_eq!(f.generation(), 1);
        assert_eq!(f.group_state(), Some(GroupState::Stable));
    }

    #[tokio::test(start_paused = true)]
    async fn static_member_joining_with_another_protocol_triggers_a_rebalance() {
        let f = Fixture::new(test_config());
        let meta = subscription(&[ORDERS]);
        let join = |protocols: &[&str]| {
            let protocols: Vec<(&str, Bytes)> =
                protocols.iter().map(|p| (*p, meta.clone())).collect();
            join_request("", &protocols).with_group_instance_id(Some(str("i")))
        };
        let ja = f.c().join_group(&client("a"), 9, join(&["range"])).await;
        let a = ja.member_id.to_string();
        f.c().sync_group(5, sync_request(&a, 1, &[])).await;
        // Dropping every protocol the group uses is refused, as in Kafka...
        let refused = f
            .c()
            .join_group(&client("a"), 9, join(&["roundrobin"]))
            .await;
        assert_eq!(
            refused.error_code,
            ResponseError::InconsistentGroupProtocol.code()
        );
        // ...preferring another one the group can use changes the selection.
        let again = f
            .c()
            .join_group(&client("a"), 9, join(&["roundrobin", "range"]))
            .await;
        assert_eq!(again.generation_id, 2);
        assert_eq!(again.protocol_name.as_deref(), Some("roundrobin"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_new_member_is_dropped_after_the_new_member_timeout() {
        let f = Fixture::new(test_config());
        let (a, _b) = f.stable_pair().await;
        // c joins (the group starts rebalancing) but neither a nor b ever rejoins: the
        // rebalance runs into its timeout... and c, too, is bounded.
        let c = f.member_id_for("c").await;
        let join_c = f.spawn_join("c", 9, range_join(&c));
        let jc = join_c.await.unwrap();
        // a and b stopped heartbeating: their sessions end, c completes the rebalance alone.
        assert_eq!(jc.error_code, 0);
        assert_eq!(jc.members.len(), 1);
        assert_eq!(
            f.heartbeat(&a, 1).await,
            ResponseError::UnknownMemberId.code()
        );
    }
}
