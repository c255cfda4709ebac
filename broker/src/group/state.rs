//! One group: its members, generation and state machine (Kafka's `GroupMetadata`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::store::{CommittedOffset, LoadedGroup, StoredGroup, StoredMember};
use super::CONSUMER_PROTOCOL_TYPE;

/// The state of a group, named as Kafka names them in DescribeGroups and ListGroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members; the group may still hold committed offsets.
    Empty,
    /// A rebalance started: waiting for members to (re)join.
    PreparingRebalance,
    /// Everyone joined: waiting for the leader's assignment (SyncGroup).
    CompletingRebalance,
    /// Members have their assignment and heartbeat.
    Stable,
    /// The group is being removed.
    Dead,
}

impl GroupState {
    /// The name Kafka uses for the state.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
            Self::Dead => "Dead",
        }
    }
}

impl fmt::Display for GroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a waiting JoinGroup is eventually answered with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JoinOutcome {
    pub(crate) error: i16,
    pub(crate) member_id: String,
    pub(crate) generation_id: i32,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) leader_id: String,
    pub(crate) skip_assignment: bool,
    /// Every member's metadata for the selected protocol; only the leader gets them.
    pub(crate) members: Vec<JoinedMember>,
}

/// A member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JoinedMember {
    pub(crate) member_id: String,
    pub(crate) group_instance_id: Option<String>,
    pub(crate) metadata: Bytes,
}

impl JoinOutcome {
    /// An error answer, as Kafka's `JoinGroupResult(memberId, error)`.
    pub(crate) fn error(member_id: impl Into<String>, error: i16) -> Self {
        Self {
            error,
            member_id: member_id.into(),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader_id: String::new(),
            skip_assignment: false,
            members: Vec::new(),
        }
    }
}

/// What a waiting SyncGroup is eventually answered with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyncOutcome {
    pub(crate) error: i16,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) assignment: Bytes,
}

impl SyncOutcome {
    pub(crate) fn error(error: i16) -> Self {
        Self {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// One member of a group.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) member_id: String,
    pub(crate) group_instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) rebalance_timeout: Duration,
    pub(crate) session_timeout: Duration,
    pub(crate) protocol_type: String,
    /// Supported protocols in the member's order of preference, with their metadata.
    pub(crate) protocols: Vec<(String, Bytes)>,
    pub(crate) assignment: Bytes,
    /// The pending JoinGroup, answered when the rebalance completes.
    pub(crate) awaiting_join: Option<oneshot::Sender<JoinOutcome>>,
    /// The pending SyncGroup, answered when the leader's assignment arrives.
    pub(crate) awaiting_sync: Option<oneshot::Sender<SyncOutcome>>,
    /// Joined during the current rebalance and has not yet received a JoinGroup answer.
    pub(crate) is_new: bool,
    /// When the member is evicted unless it is heard from; `None` while nothing is scheduled.
    pub(crate) heartbeat_deadline: Option<Instant>,
}

impl Member {
    pub(crate) fn is_awaiting_join(&self) -> bool {
        self.awaiting_join.is_some()
    }

    pub(crate) fn is_awaiting_sync(&self) -> bool {
        self.awaiting_sync.is_some()
    }

    pub(crate) fn is_static(&self) -> bool {
        self.group_instance_id.is_some()
    }

    /// The member's metadata for `protocol`.
    pub(crate) fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }

    /// Same protocols with the same metadata, in the same order.
    pub(crate) fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// The protocol this member prefers among `candidates`.
    fn vote(&self, candidates: &HashSet<&str>) -> Option<&str> {
        self.protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .find(|name| candidates.contains(name))
    }

    /// Answers the pending JoinGroup, if any.
    pub(crate) fn complete_join(&mut self, outcome: JoinOutcome) {
        if let Some(waiter) = self.awaiting_join.take() {
            // The client may have given up; nothing to do then.
            let _ = waiter.send(outcome);
        }
    }

    /// Answers the pending SyncGroup, if any.
    pub(crate) fn complete_sync(&mut self, outcome: SyncOutcome) {
        if let Some(waiter) = self.awaiting_sync.take() {
            let _ = waiter.send(outcome);
        }
    }
}

/// A timer that completes the join phase of a rebalance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JoinTimer {
    pub(crate) deadline: Instant,
    /// Set for the first rebalance of an empty group (`group.initial.rebalance.delay.ms`): the
    /// join phase waits out the delay even when everyone has joined, and each new member
    /// extends it by up to the delay until `remaining` is used up.
    pub(crate) initial: Option<InitialDelay>,
}

/// The budget of an initial rebalance delay (Kafka's `InitialDelayedJoin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InitialDelay {
    /// `group.initial.rebalance.delay.ms`.
    pub(crate) configured: Duration,
    /// The length of the current wait.
    pub(crate) current: Duration,
    /// What is left of the rebalance timeout after the current wait.
    pub(crate) remaining: Duration,
}

/// One consumer group.
#[derive(Debug)]
pub struct Group {
    pub(crate) group_id: String,
    pub(crate) state: GroupState,
    /// When the group entered its state, in milliseconds since the Unix epoch.
    pub(crate) state_timestamp_ms: i64,
    pub(crate) generation_id: i32,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) leader_id: Option<String>,
    /// Members in join order (the first remaining one takes over as leader).
    pub(crate) members: IndexMap<String, Member>,
    /// `group.instance.id` -> member id of the static members.
    pub(crate) static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined, with their expiry.
    pub(crate) pending_members: HashMap<String, Instant>,
    /// Members of the new generation that have not sent SyncGroup yet.
    pub(crate) pending_sync_members: HashSet<String>,
    /// A new member joined during the initial rebalance delay.
    pub(crate) new_member_added: bool,
    pub(crate) join_timer: Option<JoinTimer>,
    /// When members that have not sent SyncGroup are dropped.
    pub(crate) sync_deadline: Option<Instant>,
    /// Topics the members subscribe to, when the group is a consumer group whose subscriptions
    /// could be read.
    pub(crate) subscribed_topics: Option<HashSet<String>>,
    /// Committed offsets by (topic, partition).
    pub(crate) offsets: BTreeMap<(String, i32), CommittedOffset>,
}

impl Group {
    /// A new, empty group.
    pub(crate) fn new(group_id: String, now_ms: i64) -> Self {
        Self {
            group_id,
            state: GroupState::Empty,
            state_timestamp_ms: now_ms,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: IndexMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            pending_sync_members: HashSet::new(),
            new_member_added: false,
            join_timer: None,
            sync_deadline: None,
            subscribed_topics: None,
            offsets: BTreeMap::new(),
        }
    }

    /// The group as the log left it: empty, or stable with the stored members, each given a
    /// full session timeout from `now` to heartbeat again (Kafka does the same when a
    /// coordinator loads a group).
    pub(crate) fn from_stored(group_id: String, loaded: LoadedGroup, now: Instant) -> Self {
        let mut group = Self::new(group_id, 0);
        group.offsets = loaded.offsets;
        if let Some(stored) = loaded.metadata {
            group.generation_id = stored.generation_id;
            group.protocol_type = stored.protocol_type;
            group.state_timestamp_ms = stored.state_timestamp_ms;
            if !stored.members.is_empty() {
                group.state = GroupState::Stable;
                group.protocol_name = stored.protocol_name.clone();
                let protocol = stored.protocol_name.unwrap_or_default();
                for stored_member in stored.members {
                    let session_timeout =
                        Duration::from_millis(stored_member.session_timeout_ms.max(0) as u64);
                    if let Some(instance) = &stored_member.group_instance_id {
                        group
                            .static_members
                            .insert(instance.clone(), stored_member.member_id.clone());
                    }
                    let member = Member {
                        member_id: stored_member.member_id.clone(),
                        group_instance_id: stored_member.group_instance_id,
                        client_id: stored_member.client_id,
                        client_host: stored_member.client_host,
                        rebalance_timeout: Duration::from_millis(
                            stored_member.rebalance_timeout_ms.max(0) as u64,
                        ),
                        session_timeout,
                        protocol_type: group.protocol_type.clone().unwrap_or_default(),
                        protocols: vec![(protocol.clone(), stored_member.subscription)],
                        assignment: stored_member.assignment,
                        awaiting_join: None,
                        awaiting_sync: None,
                        is_new: false,
                        heartbeat_deadline: Some(now + session_timeout),
                    };
                    group.members.insert(stored_member.member_id, member);
                }
                group.leader_id = stored
                    .leader_id
                    .filter(|leader| group.members.contains_key(leader))
                    .or_else(|| group.members.keys().next().cloned());
                group.subscribed_topics = group.compute_subscribed_topics();
            }
        }
        group
    }

    /// The record that stores this group's current generation.
    pub(crate) fn to_stored(&self) -> StoredGroup {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        StoredGroup {
            protocol_type: self.protocol_type.clone(),
            generation_id: self.generation_id,
            protocol_name: self.protocol_name.clone(),
            leader_id: self.leader_id.clone(),
            state_timestamp_ms: self.state_timestamp_ms,
            members: self
                .members
                .values()
                .map(|member| StoredMember {
                    member_id: member.member_id.clone(),
                    group_instance_id: member.group_instance_id.clone(),
                    client_id: member.client_id.clone(),
                    client_host: member.client_host.clone(),
                    rebalance_timeout_ms: duration_ms(member.rebalance_timeout),
                    session_timeout_ms: duration_ms(member.session_timeout),
                    subscription: member.metadata(&protocol),
                    assignment: member.assignment.clone(),
                })
                .collect(),
        }
    }

    pub(crate) fn is(&self, state: GroupState) -> bool {
        self.state == state
    }

    pub(crate) fn transition_to(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_timestamp_ms = now_ms;
    }

    pub(crate) fn has_member(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    pub(crate) fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }

    pub(crate) fn is_pending_member(&self, member_id: &str) -> bool {
        self.pending_members.contains_key(member_id)
    }

    pub(crate) fn current_static_member_id(&self, instance_id: &str) -> Option<&str> {
        self.static_members.get(instance_id).map(String::as_str)
    }

    pub(crate) fn num_awaiting_join(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.is_awaiting_join())
            .count()
    }

    /// Every member has rejoined and no member id handed out is still outstanding.
    pub(crate) fn has_all_members_joined(&self) -> bool {
        self.members.len() == self.num_awaiting_join() && self.pending_members.is_empty()
    }

    /// The largest rebalance timeout of the members.
    pub(crate) fn rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    /// Adds a member (Kafka's `GroupMetadata.add`).
    pub(crate) fn add_member(&mut self, member: Member) {
        if let Some(instance) = &member.group_instance_id {
            self.static_members
                .insert(instance.clone(), member.member_id.clone());
        }
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member.member_id.clone());
        }
        self.pending_members.remove(&member.member_id);
        self.members.insert(member.member_id.clone(), member);
    }

    /// Removes a member (Kafka's `GroupMetadata.remove`); the leadership passes on.
    pub(crate) fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let removed = self.members.shift_remove(member_id);
        if let Some(member) = &removed {
            if let Some(instance) = &member.group_instance_id {
                if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                    self.static_members.remove(instance);
                }
            }
        }
        if self.is_leader(member_id) {
            self.leader_id = self.members.keys().next().cloned();
        }
        self.pending_members.remove(member_id);
        self.pending_sync_members.remove(member_id);
        removed
    }

    /// Moves a static member to a new member id, fencing whatever the old id was waiting for.
    pub(crate) fn replace_static_member(
        &mut self,
        instance_id: &str,
        old_member_id: &str,
        new_member_id: &str,
    ) {
        let Some(mut member) = self.members.shift_remove(old_member_id) else {
            return;
        };
        member.complete_join(JoinOutcome::error(
            old_member_id,
            kafka_protocol::ResponseError::FencedInstanceId.code(),
        ));
        member.complete_sync(SyncOutcome::error(
            kafka_protocol::ResponseError::FencedInstanceId.code(),
        ));
        member.member_id = new_member_id.to_owned();
        self.members.insert(new_member_id.to_owned(), member);
        if self.is_leader(old_member_id) {
            self.leader_id = Some(new_member_id.to_owned());
        }
        if self.pending_sync_members.remove(old_member_id) {
            self.pending_sync_members.insert(new_member_id.to_owned());
        }
        self.static_members
            .insert(instance_id.to_owned(), new_member_id.to_owned());
    }

    /// How many members support each protocol.
    fn protocol_support(&self) -> HashMap<&str, usize> {
        let mut support = HashMap::new();
        for member in self.members.values() {
            let mut seen = HashSet::new();
            for (name, _) in &member.protocols {
                if seen.insert(name.as_str()) {
                    *support.entry(name.as_str()).or_insert(0) += 1;
                }
            }
        }
        support
    }

    /// Whether a member with this protocol type and these protocols may join (Kafka's
    /// `supportsProtocols`): an empty group takes any non-empty type and list; otherwise the
    /// type must match and one protocol must be supported by every current member.
    pub(crate) fn supports_protocols(
        &self,
        protocol_type: &str,
        protocols: &[(String, Bytes)],
    ) -> bool {
        if self.is(GroupState::Empty) {
            !protocol_type.is_empty() && !protocols.is_empty()
        } else {
            let support = self.protocol_support();
            self.protocol_type.as_deref() == Some(protocol_type)
                && protocols
                    .iter()
                    .any(|(name, _)| support.get(name.as_str()) == Some(&self.members.len()))
        }
    }

    /// The protocol every member supports that most members prefer (Kafka's `selectProtocol`);
    /// ties go to the protocol the group leader prefers, then by name, so the choice is stable.
    pub(crate) fn select_protocol(&self) -> Option<String> {
        let support = self.protocol_support();
        let candidates: HashSet<&str> = support
            .iter()
            .filter(|(_, count)| **count == self.members.len())
            .map(|(name, _)| *name)
            .collect();
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for member in self.members.values() {
            if let Some(choice) = member.vote(&candidates) {
                *votes.entry(choice).or_insert(0) += 1;
            }
        }
        let leader_choice = self
            .leader_id
            .as_ref()
            .and_then(|leader| self.members.get(leader))
            .and_then(|leader| leader.vote(&candidates));
        votes
            .into_iter()
            .max_by(|(a_name, a_votes), (b_name, b_votes)| {
                a_votes
                    .cmp(b_votes)
                    .then_with(|| {
                        (Some(*a_name) == leader_choice).cmp(&(Some(*b_name) == leader_choice))
                    })
                    .then_with(|| b_name.cmp(a_name))
            })
            .map(|(name, _)| name.to_owned())
    }

    /// Starts the next generation (Kafka's `initNextGeneration`).
    pub(crate) fn init_next_generation(&mut self, now_ms: i64) {
        self.generation_id += 1;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.subscribed_topics = None;
            self.transition_to(GroupState::Empty, now_ms);
        } else {
            self.protocol_name = self.select_protocol();
            self.subscribed_topics = self.compute_subscribed_topics();
            self.transition_to(GroupState::CompletingRebalance, now_ms);
        }
        self.pending_sync_members.clear();
        self.sync_deadline = None;
    }

    /// Every member's metadata for the selected protocol, for the leader's JoinGroup answer.
    pub(crate) fn current_member_metadata(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        self.members
            .values()
            .map(|member| JoinedMember {
                member_id: member.member_id.clone(),
                group_instance_id: member.group_instance_id.clone(),
                metadata: member.metadata(protocol),
            })
            .collect()
    }

    /// The topics a consumer group's members subscribe to, read from their subscriptions; `None`
    /// when the group is not a consumer group or a subscription cannot be read.
    fn compute_subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = HashSet::new();
        for member in self.members.values() {
            let subscription = decode_subscription(&member.metadata(protocol))?;
            topics.extend(subscription.topics.iter().map(|t| t.to_string()));
        }
        Some(topics)
    }

    /// Whether the group's members subscribe to `topic` (for OffsetDelete).
    pub(crate) fn is_subscribed_to(&self, topic: &str) -> bool {
        self.subscribed_topics
            .as_ref()
            .is_some_and(|topics| topics.contains(topic))
    }

    /// The earliest timer of the group, if any.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let members = self.members.values().filter_map(|m| m.heartbeat_deadline);
        let pending = self.pending_members.values().copied();
        let join = self.join_timer.map(|t| t.deadline);
        members
            .chain(pending)
            .chain(join)
            .chain(self.sync_deadline)
            .min()
    }
}

/// Reads a consumer's subscription (`ConsumerProtocolSubscription`, prefixed by its version).
/// Versions newer than the ones known are read as the newest known, as Kafka does: new fields
/// are only ever appended.
pub(crate) fn decode_subscription(metadata: &Bytes) -> Option<ConsumerProtocolSubscription> {
    if metadata.len() < 2 {
        return None;
    }
    let mut buf = metadata.clone();
    let version = i16::from_be_bytes([buf[0], buf[1]]);
    if version < 0 {
        return None;
    }
    let _ = bytes::Buf::copy_to_bytes(&mut buf, 2);
    ConsumerProtocolSubscription::decode(&mut buf, version.min(3)).ok()
}

pub(crate) fn duration_ms(duration: Duration) -> i32 {
    duration.as_millis().min(i32::MAX as u128) as i32
}
