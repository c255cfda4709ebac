//! Helpers for the coordinator's unit tests: a coordinator on a temporary directory with its
//! timers running, request builders and a client-side view of the join/sync dance.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
pub(crate) use kafka_protocol::messages::{
    ConsumerProtocolSubscription, GroupId, HeartbeatRequest, JoinGroupRequest, JoinGroupResponse,
    OffsetCommitRequest, OffsetCommitResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::ResponseError;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::state::{Group, GroupState};
pub(crate) use super::{ClientContext, GroupConfig, GroupCoordinator, TopicLookup};

pub(crate) const GROUP: &str = "group-1";
pub(crate) const ORDERS: &str = "orders";
pub(crate) const PAYMENTS: &str = "payments";
pub(crate) const SESSION_MS: i32 = 10_000;
pub(crate) const REBALANCE_MS: i32 = 30_000;

/// Topics `orders` (6 partitions) and `payments` (3).
#[derive(Debug)]
pub(crate) struct TestTopics(HashMap<String, i32>);

impl TestTopics {
    pub(crate) fn orders_and_payments() -> Self {
        Self(HashMap::from([
            (ORDERS.to_owned(), 6),
            (PAYMENTS.to_owned(), 3),
        ]))
    }
}

impl TopicLookup for TestTopics {
    fn partition_count(&self, topic: &str) -> Option<i32> {
        self.0.get(topic).copied()
    }
}

/// Kafka's defaults (the initial rebalance delay of 3 s costs nothing in paused time).
pub(crate) fn test_config() -> GroupConfig {
    GroupConfig::default()
}

pub(crate) fn str(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

pub(crate) fn client(id: &str) -> ClientContext {
    ClientContext::new(id, std::net::IpAddr::from([127, 0, 0, 1]))
}

/// A consumer's subscription as the Java client and librdkafka encode it (version 1).
pub(crate) fn subscription(topics: &[&str]) -> Bytes {
    let body = ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| str(t)).collect())
        .with_user_data(Some(Bytes::from_static(b"opaque user data")));
    let mut buf = BytesMut::new();
    buf.put_i16(1);
    body.encode(&mut buf, 1).unwrap();
    buf.freeze()
}

/// A JoinGroup of a `consumer` with the given protocols.
pub(crate) fn join_request(member_id: &str, protocols: &[(&str, Bytes)]) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(str(GROUP)))
        .with_session_timeout_ms(SESSION_MS)
        .with_rebalance_timeout_ms(REBALANCE_MS)
        .with_member_id(str(member_id))
        .with_protocol_type(str("consumer"))
        .with_protocols(
            protocols
                .iter()
                .map(|(name, metadata)| {
                    JoinGroupRequestProtocol::default()
                        .with_name(str(name))
                        .with_metadata(metadata.clone())
                })
                .collect(),
        )
}

/// A JoinGroup with the `range` protocol subscribing to `orders`.
pub(crate) fn range_join(member_id: &str) -> JoinGroupRequest {
    join_request(member_id, &[("range", subscription(&[ORDERS]))])
}

pub(crate) struct Fixture {
    pub(crate) coordinator: Arc<GroupCoordinator>,
    pub(crate) dir: tempfile::TempDir,
    config: GroupConfig,
    cancel: CancellationToken,
}

impl Fixture {
    pub(crate) fn new(config: GroupConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (coordinator, cancel) = open(&dir, config.clone());
        Self {
            coordinator,
            dir,
            config,
            cancel,
        }
    }

    /// Stops the coordinator cleanly (log flushed) and opens it again on the same directory.
    pub(crate) async fn restart(mut self) -> Self {
        self.cancel.cancel();
        self.coordinator.close().await;
        let (coordinator, cancel) = open(&self.dir, self.config.clone());
        self.coordinator = coordinator;
        self.cancel = cancel;
        self
    }

    /// Opens the coordinator again without closing it first, as after a SIGKILL: only what
    /// was acknowledged is promised to be there.
    pub(crate) fn crash(mut self) -> Self {
        self.cancel.cancel();
        let (coordinator, cancel) = open(&self.dir, self.config.clone());
        self.coordinator = coordinator;
        self.cancel = cancel;
        self
    }

    pub(crate) fn c(&self) -> &GroupCoordinator {
        &self.coordinator
    }

    pub(crate) fn spawn_join(
        &self,
        client_id: &str,
        version: i16,
        request: JoinGroupRequest,
    ) -> JoinHandle<JoinGroupResponse> {
        let coordinator = self.coordinator.clone();
        let client = client(client_id);
        tokio::spawn(async move { coordinator.join_group(&client, version, request).await })
    }

    /// A new dynamic member's first JoinGroup (v9): answered MEMBER_ID_REQUIRED with its id.
    pub(crate) async fn member_id_for(&self, client_id: &str) -> String {
        let response = self
            .c()
            .join_group(&client(client_id), 9, range_join(""))
            .await;
        assert_eq!(response.error_code, ResponseError::MemberIdRequired.code());
        assert!(response.member_id.starts_with(&format!("{client_id}-")));
        response.member_id.to_string()
    }

    pub(crate) async fn heartbeat(&self, member_id: &str, generation: i32) -> i16 {
        self.c()
            .heartbeat(
                4,
                HeartbeatRequest::default()
                    .with_group_id(GroupId(str(GROUP)))
                    .with_member_id(str(member_id))
                    .with_generation_id(generation),
            )
            .await
            .error_code
    }

    pub(crate) fn spawn_sync(
        &self,
        member_id: &str,
        generation: i32,
        assignments: &[(&str, &[u8])],
    ) -> JoinHandle<SyncGroupResponse> {
        let coordinator = self.coordinator.clone();
        let request = sync_request(member_id, generation, assignments);
        tokio::spawn(async move { coordinator.sync_group(5, request).await })
    }

    pub(crate) async fn commit(
        &self,
        member_id: &str,
        generation: i32,
        partition: i32,
        offset: i64,
    ) -> OffsetCommitResponse {
        self.c()
            .offset_commit(
                9,
                commit_request(member_id, generation, &[(ORDERS, partition, offset)]),
            )
            .await
    }

    /// Runs `check` on the group until it holds, letting spawned requests make progress.
    pub(crate) async fn wait_for(&self, what: &str, check: impl Fn(&Group) -> bool) {
        for _ in 0..10_000 {
            if self
                .coordinator
                .state
                .lock()
                .groups
                .get(GROUP)
                .is_some_and(&check)
            {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("group never reached: {what}");
    }

    pub(crate) fn group_state(&self) -> Option<GroupState> {
        self.coordinator
            .state
            .lock()
            .groups
            .get(GROUP)
            .map(|g| g.state)
    }

    pub(crate) fn generation(&self) -> i32 {
        self.coordinator.state.lock().groups[GROUP].generation_id
    }

    /// Two dynamic members `a` (the leader) and `b` in a stable group, generation 1; returns
    /// their member ids.
    pub(crate) async fn stable_pair(&self) -> (String, String) {
        let a = self.member_id_for("a").await;
        let b = self.member_id_for("b").await;
        let join_a = self.spawn_join("a", 9, range_join(&a));
        self.wait_for("a waits", |g| g.num_awaiting_join() == 1)
            .await;
        let join_b = self.spawn_join("b", 9, range_join(&b));
        let (ja, jb) = (join_a.await.unwrap(), join_b.await.unwrap());
        assert_eq!((ja.error_code, jb.error_code), (0, 0));
        assert_eq!(ja.leader.as_str(), a);
        let sync_b = self.spawn_sync(&b, 1, &[]);
        let sync_a = self.spawn_sync(&a, 1, &[(&a, b"for a"), (&b, b"for b")]);
        assert_eq!(sync_a.await.unwrap().error_code, 0);
        assert_eq!(sync_b.await.unwrap().assignment.as_ref(), b"for b");
        assert_eq!(self.group_state(), Some(GroupState::Stable));
        (a, b)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn open(
    dir: &tempfile::TempDir,
    config: GroupConfig,
) -> (Arc<GroupCoordinator>, CancellationToken) {
    let topics = Arc::new(TestTopics::orders_and_payments());
    let coordinator = GroupCoordinator::open(dir.path(), config, topics).unwrap();
    let cancel = CancellationToken::new();
    tokio::spawn(coordinator.clone().run_timers(cancel.clone()));
    (coordinator, cancel)
}

pub(crate) fn sync_request(
    member_id: &str,
    generation: i32,
    assignments: &[(&str, &[u8])],
) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(GroupId(str(GROUP)))
        .with_member_id(str(member_id))
        .with_generation_id(generation)
        .with_assignments(
            assignments
                .iter()
                .map(|(member, assignment)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(str(member))
                        .with_assignment(Bytes::copy_from_slice(assignment))
                })
                .collect(),
        )
}

pub(crate) fn commit_request(
    member_id: &str,
    generation: i32,
    offsets: &[(&str, i32, i64)],
) -> OffsetCommitRequest {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (topic, partition, offset) in offsets {
        let partition = OffsetCommitRequestPartition::default()
            .with_partition_index(*partition)
            .with_committed_offset(*offset)
            .with_committed_metadata(Some(str("meta")));
        match topics.iter_mut().find(|t| t.name.0.as_str() == *topic) {
            Some(t) => t.partitions.push(partition),
            None => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(str(topic)))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    OffsetCommitRequest::default()
        .with_group_id(GroupId(str(GROUP)))
        .with_member_id(str(member_id))
        .with_generation_id_or_member_epoch(generation)
        .with_topics(topics)
}

/// The error codes of a commit response, flattened.
pub(crate) fn commit_errors(response: &OffsetCommitResponse) -> Vec<i16> {
    response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect()
}
